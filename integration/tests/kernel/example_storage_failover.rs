//! `examples/storage-failover/`: two `keepalive-d` daemons with the shipped configurations
//! (`node-a.yaml`, `node-b.yaml`; only the script's path and its state directory are
//! changed, as the example's README says) in two namespaces on one L2 segment (a bridge in a
//! namespace of its own). Their notify commands run the shipped `storage-role.sh`, which
//! appends `NODE promote|demote SEQ UPTIME` to a record shared by both nodes (promotions
//! when they start, demotions when they have finished) and keeps `NODE.role`.
//!
//! What each test proves, from that record and the daemons' logs:
//!
//! - a Master stopped cleanly (SIGTERM) finishes its demotion before the Backup promotes,
//!   even when the demotion takes longer than the Backup's master-down interval;
//! - a Master whose link goes down demotes at once (FAULT), before the Backup promotes
//!   after its master-down interval (a matter of timing, not a guarantee: the README says
//!   why);
//! - a Master killed with SIGKILL runs nothing: the Backup promotes and, until the killed
//!   node's daemon is started again, both nodes hold the role (the README's fencing
//!   section); the restarted daemon starts as Backup and demotes;
//! - a split brain (the Backup's bridge port taken off the bridge: the link stays up, the
//!   adverts are lost) makes both promote; once healed, exactly one node keeps the role
//!   and the other has demoted exactly once;
//! - in every case each VRRP transition (as the daemon logs it) ran its command exactly
//!   once, in order.

use ipvs_integration::daemon::Daemon;
use ipvs_integration::netns::TestNs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/storage-failover");
/// The shipped script path and state directory, replaced in the configurations.
const SHIPPED_SCRIPT: &str = "/etc/keepalive-d/storage-role.sh";
const SHIPPED_DIR: &str = "/var/lib/storage-failover";
/// The master-down interval of the shipped configuration: 3 x 1 s + skew (at most 1 s).
const MASTER_DOWN: Duration = Duration::from_secs(4);
/// Generous bound for a failover under TCG (processes start slowly there).
const FAILOVER: Duration = Duration::from_secs(20);

/// One line of the record.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    node: String,
    action: String,
    seq: u64,
    uptime: f64,
}

/// The two nodes, the switch and the shared state directory.
struct Pair {
    sw: TestNs,
    a: TestNs,
    b: TestNs,
    dir: PathBuf,
}

impl Pair {
    fn new(tag: &str) -> Self {
        let sw = TestNs::new(&format!("{tag}-sw")).unwrap();
        let a = TestNs::new(&format!("{tag}-a")).unwrap();
        let b = TestNs::new(&format!("{tag}-b")).unwrap();
        sw.run("ip", &["link", "add", "br0", "type", "bridge"])
            .unwrap();
        sw.run("ip", &["link", "set", "br0", "up"]).unwrap();
        for (ns, port, addr) in [(&a, "a0", "10.0.50.1/24"), (&b, "b0", "10.0.50.2/24")] {
            ns.run(
                "ip",
                &[
                    "link",
                    "add",
                    "eth0",
                    "type",
                    "veth",
                    "peer",
                    "name",
                    port,
                    "netns",
                    sw.name(),
                ],
            )
            .unwrap();
            sw.run("ip", &["link", "set", port, "master", "br0", "up"])
                .unwrap();
            ns.run("ip", &["addr", "add", addr, "dev", "eth0"]).unwrap();
            ns.run("ip", &["link", "set", "eth0", "up"]).unwrap();
        }
        let dir =
            std::env::temp_dir().join(format!("storage-failover-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Pair { sw, a, b, dir }
    }

    /// The shipped configuration of `node` (`node-a`, `node-b`) with this test's script
    /// path and state directory.
    fn config(&self, node: &str) -> String {
        let text =
            std::fs::read_to_string(Path::new(EXAMPLE).join(format!("{node}.yaml"))).unwrap();
        let script = Path::new(EXAMPLE).join("storage-role.sh");
        let script = std::fs::canonicalize(script).unwrap();
        assert!(text.contains(SHIPPED_SCRIPT) && text.contains(SHIPPED_DIR));
        text.replace(SHIPPED_SCRIPT, &script.display().to_string())
            .replace(SHIPPED_DIR, &self.dir.display().to_string())
    }

    fn ns(&self, node: &str) -> &TestNs {
        if node == "node-a" { &self.a } else { &self.b }
    }

    fn start(&self, node: &str) -> Daemon {
        Daemon::start(self.ns(node), &self.config(node), "info").unwrap()
    }

    fn record(&self) -> Vec<Entry> {
        std::fs::read_to_string(self.dir.join("record"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                assert_eq!(f.len(), 4, "bad record line {l:?}");
                Entry {
                    node: f[0].to_owned(),
                    action: f[1].to_owned(),
                    seq: f[2].parse().unwrap(),
                    uptime: f[3].parse().unwrap(),
                }
            })
            .collect()
    }

    /// The actions of `node` in the record, from line `from` on.
    fn actions(&self, node: &str, from: usize) -> Vec<String> {
        self.record()
            .into_iter()
            .skip(from)
            .filter(|e| e.node == node)
            .map(|e| e.action)
            .collect()
    }

    fn role(&self, node: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{node}.role")))
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    fn primaries(&self) -> Vec<&'static str> {
        ["node-a", "node-b"]
            .into_iter()
            .filter(|n| self.role(n) == "primary")
            .collect()
    }

    /// Waits until exactly `want` hold the role (a promotion writes its role file after
    /// its record line).
    fn wait_primaries(&self, want: &[&str]) {
        let start = Instant::now();
        while self.primaries() != want {
            assert!(
                start.elapsed() < FAILOVER,
                "primaries {:?}, not {want:?}, after {FAILOVER:?}\nrecord: {:#?}",
                self.primaries(),
                self.record()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn has_vip(&self, node: &str) -> bool {
        self.ns(node)
            .run("ip", &["-o", "addr", "show", "dev", "eth0"])
            .unwrap_or_default()
            .contains("10.0.50.100/24")
    }

    /// Waits until the record has `n` lines or more of `node` doing `action` (from line
    /// `from` on).
    fn wait_action(&self, node: &str, action: &str, n: usize, from: usize, logs: &str) {
        let start = Instant::now();
        loop {
            let have = self
                .actions(node, from)
                .iter()
                .filter(|a| a.as_str() == action)
                .count();
            if have >= n {
                return;
            }
            assert!(
                start.elapsed() < FAILOVER,
                "{node} did not {action} within {FAILOVER:?}\nrecord: {:#?}\n{logs}",
                self.record()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// node-a Master and promoted, then node-b started and demoted (Backup).
    fn start_pair(&self) -> (Daemon, Daemon) {
        let a = self.start("node-a");
        self.wait_action("node-a", "promote", 1, 0, &a.log());
        let b = self.start("node-b");
        self.wait_action("node-b", "demote", 1, 0, &b.log());
        self.wait_primaries(&["node-a"]);
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(self.primaries(), ["node-a"], "{:#?}", self.record());
        assert!(self.has_vip("node-a") && !self.has_vip("node-b"));
        (a, b)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("record: {:#?}", self.record());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The states a daemon's log says its instance entered, in order.
fn transitions(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("VRRP state change"))
        .filter_map(|l| {
            let s = l.split("state=").nth(1)?;
            Some(s.split_whitespace().next()?.to_owned())
        })
        .collect()
}

/// The action each state's command takes in the shipped configuration.
fn action_of(state: &str) -> &'static str {
    match state {
        "master" => "promote",
        "backup" | "fault" | "initialize" => "demote",
        other => panic!("unknown state {other}"),
    }
}

/// Each transition in `logs` (the logs of every run of `node`'s daemon, in order) ran its
/// command exactly once, in order: the node's actions in the record are exactly the
/// transitions' actions.
fn assert_once_in_order(pair: &Pair, node: &str, logs: &[&str]) {
    let want: Vec<&str> = logs
        .iter()
        .flat_map(|l| transitions(l))
        .map(|s| action_of(&s))
        .collect();
    let have = pair.actions(node, 0);
    assert_eq!(
        have,
        want,
        "{node}: record {:#?}\nlogs:\n{}",
        pair.record(),
        logs.join("\n----\n")
    );
}

fn position(record: &[Entry], node: &str, action: &str, from: usize) -> usize {
    record
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, e)| e.node == node && e.action == action)
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("no {node} {action} after line {from}: {record:#?}"))
}

#[test]
fn example_storage_failover_clean_stop_demotes_before_the_peer_promotes() {
    let pair = Pair::new("sf-stop");
    let (a, b) = pair.start_pair();
    // A slow demotion: longer than node-b's master-down interval. node-a keeps
    // advertising while it runs, so node-b must not take over before it has finished.
    std::fs::write(pair.dir.join("demote-delay"), "6\n").unwrap();
    let before = pair.record().len();
    let stopping = Instant::now();
    let (code, a_log) = a.stop(Duration::from_secs(60)).unwrap();
    let stop_took = stopping.elapsed();
    std::fs::write(pair.dir.join("demote-delay"), "").unwrap();
    assert_eq!(code, Some(0), "{a_log}");
    assert!(
        stop_took >= Duration::from_secs(6),
        "stop took {stop_took:?}"
    );
    pair.wait_action("node-b", "promote", 1, before, &b.log());
    let record = pair.record();
    let demoted = position(&record, "node-a", "demote", before);
    let promoted = position(&record, "node-b", "promote", before);
    assert!(demoted < promoted, "{record:#?}");
    assert!(record[demoted].seq < record[promoted].seq);
    assert!(
        record[demoted].uptime <= record[promoted].uptime,
        "{record:#?}"
    );
    eprintln!(
        "clean stop: node-a's demotion took {stop_took:?}; node-b promoted {:.2} s after it",
        record[promoted].uptime - record[demoted].uptime
    );
    // Exactly once each, after the stop.
    assert_eq!(pair.actions("node-a", before), ["demote"]);
    assert_eq!(pair.actions("node-b", before), ["promote"]);
    pair.wait_primaries(&["node-b"]);
    assert!(pair.has_vip("node-b"));

    // node-a comes back: Backup (no preemption), demotes once, node-b keeps the role.
    let a2 = pair.start("node-a");
    pair.wait_action("node-a", "demote", 2, before, &a2.log());
    std::thread::sleep(MASTER_DOWN);
    assert_eq!(pair.primaries(), ["node-b"], "{:#?}", pair.record());
    assert_eq!(pair.actions("node-b", before), ["promote"]);
    let (_, a2_log) = a2.stop(Duration::from_secs(60)).unwrap();
    let (_, b_log) = b.stop(Duration::from_secs(60)).unwrap();
    assert_once_in_order(&pair, "node-a", &[&a_log, &a2_log]);
    assert_once_in_order(&pair, "node-b", &[&b_log]);
}

#[test]
fn example_storage_failover_link_down_and_sigkill() {
    let pair = Pair::new("sf-kill");
    let (a, b) = pair.start_pair();

    // node-a's link goes down: FAULT, demoted at once; node-b promotes after its
    // master-down interval.
    let before = pair.record().len();
    pair.a.run("ip", &["link", "set", "eth0", "down"]).unwrap();
    pair.wait_action("node-b", "promote", 1, before, &b.log());
    let record = pair.record();
    let demoted = position(&record, "node-a", "demote", before);
    let promoted = position(&record, "node-b", "promote", before);
    assert!(demoted < promoted, "{record:#?}");
    eprintln!(
        "link down: node-b promoted {:.2} s after node-a had demoted",
        record[promoted].uptime - record[demoted].uptime
    );
    pair.wait_primaries(&["node-b"]);
    // The link comes back: node-a leaves FAULT for BACKUP (demotes again), node-b stays.
    let back = pair.record().len();
    pair.a.run("ip", &["link", "set", "eth0", "up"]).unwrap();
    pair.wait_action("node-a", "demote", 1, back, &a.log());
    std::thread::sleep(MASTER_DOWN);
    assert_eq!(pair.actions("node-a", before), ["demote", "demote"]);
    assert_eq!(pair.actions("node-b", before), ["promote"]);
    assert_eq!(pair.primaries(), ["node-b"]);

    // node-b (now Master) is killed: nothing runs on it; node-a promotes. Until node-b's
    // daemon is back, both nodes hold the role: what fencing is for.
    let before = pair.record().len();
    let b_log = b.kill();
    pair.wait_action("node-a", "promote", 1, before, &a.log());
    assert_eq!(pair.actions("node-b", before), Vec::<String>::new());
    pair.wait_primaries(&["node-a", "node-b"]);
    // node-b's daemon restarts (after its master-down interval: no resume as Master). It
    // starts as Backup and demotes: one primary again.
    let b2 = pair.start("node-b");
    pair.wait_action("node-b", "demote", 1, before, &b2.log());
    std::thread::sleep(MASTER_DOWN);
    assert_eq!(pair.primaries(), ["node-a"], "{:#?}", pair.record());
    assert_eq!(pair.actions("node-a", before), ["promote"]);
    assert_eq!(pair.actions("node-b", before), ["demote"]);
    let (_, a_log) = a.stop(Duration::from_secs(60)).unwrap();
    let (_, b2_log) = b2.stop(Duration::from_secs(60)).unwrap();
    assert_once_in_order(&pair, "node-a", &[&a_log]);
    assert_once_in_order(&pair, "node-b", &[&b_log, &b2_log]);
}

#[test]
fn example_storage_failover_split_brain_heals_to_one_primary() {
    let pair = Pair::new("sf-split");
    let (a, b) = pair.start_pair();
    let before = pair.record().len();
    // node-b's bridge port leaves the bridge: its link stays up, but it hears no advert.
    pair.sw
        .run("ip", &["link", "set", "b0", "nomaster"])
        .unwrap();
    pair.wait_action("node-b", "promote", 1, before, &b.log());
    // The split brain: both promoted (VRRP alone cannot prevent it; see the README).
    pair.wait_primaries(&["node-a", "node-b"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(pair.primaries(), ["node-a", "node-b"]);
    assert!(pair.has_vip("node-a") && pair.has_vip("node-b"));

    // Healed: node-b hears node-a's higher priority, goes back to Backup and demotes once;
    // node-a runs nothing.
    let healed = pair.record().len();
    let heal_time = Instant::now();
    pair.sw
        .run("ip", &["link", "set", "b0", "master", "br0"])
        .unwrap();
    pair.wait_action("node-b", "demote", 1, healed, &b.log());
    eprintln!(
        "split brain healed: node-b demoted {:?} after",
        heal_time.elapsed()
    );
    // Stays so.
    std::thread::sleep(MASTER_DOWN + MASTER_DOWN);
    assert_eq!(pair.primaries(), ["node-a"], "{:#?}", pair.record());
    assert_eq!(pair.actions("node-b", healed), ["demote"]);
    assert_eq!(pair.actions("node-a", healed), Vec::<String>::new());
    assert!(pair.has_vip("node-a") && !pair.has_vip("node-b"));
    let (_, a_log) = a.stop(Duration::from_secs(60)).unwrap();
    let (_, b_log) = b.stop(Duration::from_secs(60)).unwrap();
    assert_once_in_order(&pair, "node-a", &[&a_log]);
    assert_once_in_order(&pair, "node-b", &[&b_log]);
}
