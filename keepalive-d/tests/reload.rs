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

/// Two daemons on one link: A (priority 200) is Master, B (100) Backup.
fn pair() -> (TestNs, TestNs) {
    let a = TestNs::new("kad-rs-a").unwrap();
    let b = TestNs::new("kad-rs-b").unwrap();
    let tag = std::process::id() % 100_000;
    let (va, vb) = (format!("ra{tag}"), format!("rb{tag}"));
    let ip = |args: &[&str]| {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb]);
    ip(&["link", "set", &va, "netns", a.name(), "name", "eth0"]);
    ip(&["link", "set", &vb, "netns", b.name(), "name", "eth0"]);
    for (ns, addr) in [(&a, "192.0.2.2/24"), (&b, "192.0.2.3/24")] {
        ns.run("ip", &["addr", "add", addr, "dev", "eth0"]).unwrap();
        ns.run("ip", &["link", "set", "eth0", "up"]).unwrap();
    }
    (a, b)
}

fn instance(priority: u8) -> String {
    format!(
        "vrrp_instances:
  - name: vi1
    interface: eth0
    vrid: 61
    priority: {priority}
    advert_interval: 200ms
    virtual_ips: [192.0.2.10/24]
"
    )
}

fn wait(what: &str, within: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < within, "{what} not within {within:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

/// SIGKILL of the Master's daemon and an immediate restart: it resumes as Master (its
/// address never leaves) and the Backup never takes over. SIGKILL without a restart: the
/// Backup takes over within its master-down interval.
#[test]
fn a_killed_master_restarted_quickly_resumes_without_failover() {
    let exe = env!("CARGO_BIN_EXE_keepalive-d");
    let (a, b) = pair();
    let da = Daemon::start_exe(exe, &a, &instance(200), "info").unwrap();
    wait("A master", Duration::from_secs(10), || {
        da.log().contains("state=master")
    });
    let db = Daemon::start_exe(exe, &b, &instance(100), "info").unwrap();
    wait("B backup", Duration::from_secs(10), || {
        db.log().contains("state=backup")
    });
    std::thread::sleep(Duration::from_millis(500));

    let log_a = da.kill();
    assert!(
        has_addr(&a, "192.0.2.10/24"),
        "SIGKILL left the address: {log_a}"
    );
    let da = Daemon::start_exe(exe, &a, &instance(200), "info").unwrap();
    wait("A resumes", Duration::from_secs(5), || {
        da.log().contains("reason=resume")
    });
    // Well past B's master-down interval (3 x 200 ms + 0.6 x 200 ms = 720 ms).
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !db.log().contains("state=master"),
        "the backup took over:\nA: {}\nB: {}",
        da.log(),
        db.log()
    );
    assert!(has_addr(&a, "192.0.2.10/24"));
    assert!(!has_addr(&b, "192.0.2.10/24"));

    // Killed for good: B takes over within its master-down interval (plus scheduling).
    let _ = da.kill();
    let t = wait("B takes over", Duration::from_secs(5), || {
        db.log().contains("state=master")
    });
    eprintln!("failover after SIGKILL: {t:?} (master-down interval 720 ms)");
    assert!(t < Duration::from_millis(720 + 500), "{t:?}");
    assert!(has_addr(&b, "192.0.2.10/24"));

    // A restarted long after: no resume; it preempts as the RFC says (higher priority).
    let da = Daemon::start_exe(exe, &a, &instance(200), "info").unwrap();
    wait("A master again", Duration::from_secs(10), || {
        da.log().contains("state=master")
    });
    assert!(!da.log().contains("reason=resume"), "{}", da.log());
    let _ = da.stop(Duration::from_secs(10)).unwrap();
    let _ = db.stop(Duration::from_secs(10)).unwrap();
}
