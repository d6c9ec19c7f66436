//! `sync_daemon`: the kernel's IPVS connection-sync daemon follows a VRRP instance of
//! `keepalive-d run`: backup while the instance is Backup, master once it is Master, none
//! after the daemon stops; cross-checked with `ipvsadm -L --daemon`.

use ipvs_integration::daemon::Daemon;
use ipvs_integration::netns::TestNs;
use std::time::{Duration, Instant};

fn daemons(ns: &TestNs) -> String {
    ns.run("ipvsadm", &["-L", "--daemon"]).unwrap()
}

/// Waits (at most `within`) until `ipvsadm -L --daemon` in `ns` satisfies `ok`; fails
/// with that output and `d`'s log.
fn wait_daemons(ns: &TestNs, d: &Daemon, within: Duration, ok: impl Fn(&str) -> bool) {
    let start = Instant::now();
    loop {
        let now = daemons(ns);
        if ok(&now) {
            return;
        }
        assert!(start.elapsed() < within, "{now}\n{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A namespace with `eth0` (a veth whose peer `eth1` stays in it) up, holding `addr`.
fn ns_with_eth0(tag: &str, addr: &str) -> TestNs {
    let ns = TestNs::new(tag).unwrap();
    ns.run(
        "ip",
        &[
            "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
        ],
    )
    .unwrap();
    ns.run("ip", &["link", "set", "eth1", "up"]).unwrap();
    ns.run("ip", &["addr", "add", addr, "dev", "eth0"]).unwrap();
    ns.run("ip", &["link", "set", "eth0", "up"]).unwrap();
    ns
}

#[test]
fn sync_daemon_follows_the_vrrp_instance() {
    let ns = ns_with_eth0("kad-sync", "192.0.2.2/24");
    let config = "vrrp_instances:
  - name: vi1
    interface: eth0
    vrid: 51
    priority: 200
    advert_interval: 100ms
    virtual_ips: [192.0.2.10/24]
sync_daemon: { interface: eth0, instance: vi1, sync_id: 7 }
";
    let d = Daemon::start(&ns, config, "info").unwrap();
    assert!(
        d.wait_log("IPVS backup sync daemon started", Duration::from_secs(20)),
        "{}",
        d.log()
    );
    assert!(
        d.wait_log("IPVS master sync daemon started", Duration::from_secs(20)),
        "{}",
        d.log()
    );
    wait_daemons(&ns, &d, Duration::from_secs(10), |now| {
        now.contains("master sync daemon (mcast=eth0, syncid=7,") && !now.contains("backup")
    });
    let (code, log) = d.stop(Duration::from_secs(30)).unwrap();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(daemons(&ns).trim(), "", "{log}");
}

/// Without `instance` (active-active directors behind ECMP) both sync daemons run from
/// the start, with no VRRP at all, and both stop with the daemon.
#[test]
fn sync_daemon_without_an_instance_runs_master_and_backup() {
    let ns = ns_with_eth0("kad-sync-aa", "10.0.0.1/24");
    let config = "virtual_servers:
  - { name: web, vip: 10.0.0.100:80, scheduler: mh, forward: dr, real_servers: [{ address: 10.0.0.11:80 }] }
sync_daemon: { interface: eth0, sync_id: 9 }
";
    let d = Daemon::start(&ns, config, "info").unwrap();
    wait_daemons(&ns, &d, Duration::from_secs(20), |now| {
        now.contains("master sync daemon (mcast=eth0, syncid=9,")
            && now.contains("backup sync daemon (mcast=eth0, syncid=9,")
    });
    let (code, log) = d.stop(Duration::from_secs(30)).unwrap();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(daemons(&ns).trim(), "", "{log}");
}
