//! Notify commands end to end with two `keepalive-d run` daemons on a veth pair: each
//! transition runs its command once, in order, and a Master that stops runs its
//! `notify.stop` command to the end (while still advertising) before its Backup takes over
//! and runs `notify.master`. The lab's version with the shipped storage-failover configs
//! is `integration/tests/kernel/example_storage_failover.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ipvs_integration::daemon::Daemon;
use ipvs_integration::netns::TestNs;

const BIN: &str = env!("CARGO_BIN_EXE_keepalive-d");

/// A command that appends `NODE ACTION begin` and `NODE ACTION end` to `record`, sleeping
/// `secs` in between.
fn command(record: &Path, node: &str, action: &str, secs: &str) -> String {
    format!(
        "[/bin/sh, -c, 'echo \"$0 $1 begin\" >> {r}; sleep {secs}; echo \"$0 $1 end\" >> {r}', {node}, {action}]",
        r = record.display()
    )
}

fn config(record: &Path, node: &str, priority: u8, stop_secs: &str) -> String {
    format!(
        "vrrp_instances:
  - name: pair
    interface: eth0
    vrid: 60
    priority: {priority}
    advert_interval: 100ms
    preempt: false
    virtual_ips: [192.0.2.100/24]
    notify:
      master: {master}
      backup: {backup}
      stop: {stop}
      timeout: 5s
",
        master = command(record, node, "promote", "0"),
        backup = command(record, node, "demote", "0"),
        stop = command(record, node, "stop", stop_secs),
    )
}

fn lines(record: &Path) -> Vec<String> {
    std::fs::read_to_string(record)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn wait_for(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

struct Pair {
    a: TestNs,
    b: TestNs,
    dir: PathBuf,
}

impl Pair {
    fn new(tag: &str) -> Self {
        let a = TestNs::new(&format!("{tag}-a")).unwrap();
        let b = TestNs::new(&format!("{tag}-b")).unwrap();
        a.run(
            "ip",
            &[
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                b.name(),
            ],
        )
        .unwrap();
        for (ns, addr) in [(&a, "192.0.2.1/24"), (&b, "192.0.2.2/24")] {
            ns.run("ip", &["addr", "add", addr, "dev", "eth0"]).unwrap();
            ns.run("ip", &["link", "set", "eth0", "up"]).unwrap();
        }
        let dir = std::env::temp_dir().join(format!("kad-notify-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Pair { a, b, dir }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn has_vip(ns: &TestNs) -> bool {
    ns.run("ip", &["-o", "addr", "show", "dev", "eth0"])
        .unwrap_or_default()
        .contains("192.0.2.100/24")
}

#[test]
fn a_stopping_master_demotes_before_its_backup_promotes() {
    let pair = Pair::new("nord");
    let record = pair.dir.join("record");
    // The old Master's stop command takes 1.5 s: more than four times the Backup's
    // master-down interval (3 x 100 ms + skew).
    let a = Daemon::start_exe(BIN, &pair.a, &config(&record, "a", 150, "1.5"), "info").unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || lines(&record)
            .contains(&"a promote end".to_owned())),
        "a never promoted: {:?}\n{}",
        lines(&record),
        a.log()
    );
    let b = Daemon::start_exe(BIN, &pair.b, &config(&record, "b", 100, "0"), "info").unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || lines(&record)
            .contains(&"b demote end".to_owned())),
        "b never started: {:?}",
        lines(&record)
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(has_vip(&pair.a) && !has_vip(&pair.b));

    // Stop a: its stop command runs while it still advertises, then b takes over.
    let stop_started = Instant::now();
    let stopper = std::thread::spawn(move || a.stop(Duration::from_secs(20)));
    // Halfway through the stop command, a still holds the VIP and b has not promoted.
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        lines(&record).contains(&"a stop begin".to_owned()),
        "{:?}",
        lines(&record)
    );
    assert!(
        has_vip(&pair.a),
        "a gave up the VIP before its stop command finished"
    );
    assert!(!has_vip(&pair.b), "b took over while a was demoting");
    let (code, a_log) = stopper.join().unwrap().unwrap();
    assert_eq!(code, Some(0), "{a_log}");
    assert!(
        stop_started.elapsed() >= Duration::from_millis(1500),
        "a did not wait for its stop command"
    );
    assert!(
        a_log.contains("running the stop command before giving up Master"),
        "{a_log}"
    );
    assert!(
        wait_for(Duration::from_secs(5), || lines(&record)
            .contains(&"b promote end".to_owned())),
        "b never promoted: {:?}\n{}",
        lines(&record),
        b.log()
    );
    assert!(has_vip(&pair.b));
    std::thread::sleep(Duration::from_millis(300));
    let (_, b_log) = b.stop(Duration::from_secs(20)).unwrap();

    // Each transition ran its command once, in order; commands never overlapped
    // (each begin is followed by its own end); a's stop ended before b's promote began.
    let all = lines(&record);
    let of = |node: &str| -> Vec<String> {
        all.iter()
            .filter(|l| l.starts_with(&format!("{node} ")))
            .cloned()
            .collect()
    };
    let seq = |v: &[&str]| -> Vec<String> { v.iter().map(|s| (*s).to_owned()).collect() };
    assert_eq!(
        of("a"),
        seq(&[
            "a demote begin",
            "a demote end",
            "a promote begin",
            "a promote end",
            "a stop begin",
            "a stop end",
        ]),
        "{all:?}"
    );
    assert_eq!(
        of("b"),
        seq(&[
            "b demote begin",
            "b demote end",
            "b promote begin",
            "b promote end",
            "b stop begin",
            "b stop end",
        ]),
        "{all:?}\n{b_log}"
    );
    let pos = |l: &str| all.iter().position(|x| x == l).unwrap();
    assert!(pos("a stop end") < pos("b promote begin"), "{all:?}");
}
