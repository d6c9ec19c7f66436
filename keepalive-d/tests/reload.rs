//! Reload of VRRP instances (SIGHUP) on a veth in a network namespace: an unchanged
//! instance keeps running untouched (no state change, its address stays), a changed one is
//! restarted, a removed one stops and gives up its address, and an invalid file changes
//! nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ipvs_integration::daemon::Daemon;
use ipvs_integration::netns::TestNs;
use std::time::Duration;

fn config(vi2_priority: Option<u8>) -> String {
    let mut c = String::from(
        "vrrp_instances:
  - name: vi1
    interface: eth0
    vrid: 51
    priority: 200
    advert_interval: 100ms
    virtual_ips: [192.0.2.10/24]
",
    );
    if let Some(p) = vi2_priority {
        c.push_str(&format!(
            "  - name: vi2
    interface: eth0
    vrid: 52
    priority: {p}
    advert_interval: 100ms
    virtual_ips: [192.0.2.11/24]
"
        ));
    }
    c
}

fn changes(log: &str, instance: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("VRRP state change") && l.contains(&format!("instance={instance} ")))
        .count()
}

fn has_addr(ns: &TestNs, addr: &str) -> bool {
    ns.run("ip", &["-o", "addr", "show", "dev", "eth0"])
        .unwrap()
        .contains(addr)
}

#[test]
fn reload_keeps_unchanged_instances_and_applies_the_rest() {
    // The daemon binary cargo built for this package.
    let exe = env!("CARGO_BIN_EXE_keepalive-d");
    let ns = TestNs::new("kad-reload").unwrap();
    ns.run(
        "ip",
        &[
            "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
        ],
    )
    .unwrap();
    ns.run("ip", &["link", "set", "eth1", "up"]).unwrap();
    ns.run("ip", &["addr", "add", "192.0.2.2/24", "dev", "eth0"])
        .unwrap();
    ns.run("ip", &["link", "set", "eth0", "up"]).unwrap();

    let d = Daemon::start_exe(exe, &ns, &config(Some(200)), "info").unwrap();
    let both_master = || {
        let log = d.log();
        log.contains("instance=vi1 ") && log.matches("state=master").count() >= 2
    };
    let start = std::time::Instant::now();
    while !both_master() {
        assert!(start.elapsed() < Duration::from_secs(10), "{}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(has_addr(&ns, "192.0.2.10/24") && has_addr(&ns, "192.0.2.11/24"));
    let vi1_before = changes(&d.log(), "vi1");

    // vi2 changes priority: vi2 restarts, vi1 is untouched.
    let line = d
        .reload(&config(Some(150)), Duration::from_secs(10))
        .unwrap();
    assert!(
        line.contains("vrrp: 1 kept, 1 restarted, 0 started, 0 stopped"),
        "{line}"
    );
    // vi2 becomes master again.
    let start = std::time::Instant::now();
    while !(d.log().matches("state=master").count() >= 3 && has_addr(&ns, "192.0.2.11/24")) {
        assert!(start.elapsed() < Duration::from_secs(10), "{}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // The same file again: nothing changes.
    let line = d
        .reload(&config(Some(150)), Duration::from_secs(10))
        .unwrap();
    assert!(line.contains("nothing changed"), "{line}");

    // vi2 removed: it stops and gives its address up; vi1 untouched.
    let line = d.reload(&config(None), Duration::from_secs(10)).unwrap();
    assert!(
        line.contains("vrrp: 1 kept, 0 restarted, 0 started, 1 stopped"),
        "{line}"
    );
    assert!(!has_addr(&ns, "192.0.2.11/24"));

    // A broken file: refused with its position, nothing changes.
    let line = d
        .reload(
            "vrrp_instances:\n  - name: vi1\n    vrid: 0\n",
            Duration::from_secs(10),
        )
        .unwrap();
    assert!(line.contains("reload refused"), "{line}");
    assert!(d.log().contains(":3:11:"), "{}", d.log());

    assert_eq!(
        changes(&d.log(), "vi1"),
        vi1_before,
        "vi1 changed state:\n{}",
        d.log()
    );
    assert!(has_addr(&ns, "192.0.2.10/24"));
    let (code, log) = d.stop(Duration::from_secs(10)).unwrap();
    assert_eq!(code, Some(0), "{log}");
    assert!(!has_addr(&ns, "192.0.2.10/24"), "{log}");
}
