//! `keepalive-d run` with `virtual_servers` against the real kernel: the table follows
//! health (fall/rise timing measured), the sorry server takes over when every server is
//! down, a table flushed by hand is repaired within one reconcile interval, services the
//! daemon does not own are never touched, stop removes (or keeps) its services, and a
//! start over an existing table writes nothing (counted on the wire with nlmon).
//!
//! Real servers are TCP listeners on 127.0.0.x inside the test's namespace; traffic through
//! NAT/DR/TUN with real HTTP servers is tested in `lb_*`.

use ipvs_integration::daemon::Daemon;
use ipvs_integration::listener::Listener;
use ipvs_integration::netns::TestNs;
use ipvs_integration::nlmon::{Capture, NETLINK_GENERIC};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The daemon with this test's log level.
/// A stand-in real server on `addr` in `ns`.
fn listen(ns: &TestNs, addr: &str) -> Listener {
    Listener::start(ns, addr.parse().unwrap()).unwrap()
}

fn start(ns: &TestNs, config: &str) -> Daemon {
    Daemon::start(ns, config, "info,keepalive_d::lvs=debug").unwrap()
}

/// SIGTERM; the exit code and the log.
fn stop(d: Daemon) -> (Option<i32>, String) {
    d.stop(Duration::from_secs(20)).unwrap()
}

fn saved(ns: &TestNs) -> BTreeSet<String> {
    ns.run("ipvsadm", &["-S", "-n"])
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn lines(text: &str) -> BTreeSet<String> {
    text.lines().map(str::to_string).collect()
}

/// Polls until the saved table equals `want`; the time it took.
fn wait_table(ns: &TestNs, d: &Daemon, want: &str, within: Duration) -> Duration {
    let want = lines(want);
    let start = Instant::now();
    loop {
        let now = saved(ns);
        if now == want {
            return start.elapsed();
        }
        if start.elapsed() > within {
            panic!(
                "table not as expected within {within:?}\nwant {want:#?}\nhave {now:#?}\nlog:\n{}",
                d.log()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

const FOREIGN: &str = "-A -t 192.0.2.200:22 -s rr\n-a -t 192.0.2.200:22 -r 10.9.9.9:22 -m -w 1\n";

fn config(extra: &str) -> String {
    format!(
        "
virtual_servers:
  - name: web
    vip: 192.0.2.10:80
    scheduler: wrr
    forward: nat
    check: {{ type: tcp, interval: 500ms, timeout: 400ms, rise: 2, fall: 2 }}
    sorry_server: 127.0.0.99:80
    real_servers:
      - {{ address: 127.0.0.11:80, weight: 100 }}
      - {{ address: 127.0.0.12:80, weight: 50 }}
      - {{ address: 127.0.0.13:80, weight: 10 }}
ipvs:
  reconcile_interval: 2s
{extra}"
    )
}

const HEAD: &str = "-A -t 192.0.2.10:80 -s wrr\n";
const RS1: &str = "-a -t 192.0.2.10:80 -r 127.0.0.11:80 -m -w 100\n";
const RS2: &str = "-a -t 192.0.2.10:80 -r 127.0.0.12:80 -m -w 50\n";
const RS3: &str = "-a -t 192.0.2.10:80 -r 127.0.0.13:80 -m -w 10\n";
const SORRY: &str = "-a -t 192.0.2.10:80 -r 127.0.0.99:80 -m -w 1\n";

/// Interval x fall (or rise) plus what TCG, the coalescing delay and one apply may add.
const SLACK: Duration = Duration::from_millis(2500);

#[test]
fn daemon_table_follows_health_sorry_server_drift_and_stop() {
    let ns = TestNs::new("kad-lvs").unwrap();
    ns.run_with_input("ipvsadm", &["-R"], FOREIGN).unwrap();
    let mut rs: Vec<Option<Listener>> = ["127.0.0.11:80", "127.0.0.12:80", "127.0.0.13:80"]
        .iter()
        .map(|a| Some(listen(&ns, a)))
        .collect();
    let d = start(&ns, &config(""));
    let all = format!("{FOREIGN}{HEAD}{RS1}{RS2}{RS3}");
    let t = wait_table(&ns, &d, &all, Duration::from_secs(10));
    eprintln!("start: every server in after {t:?}");

    // A server stops answering: out within fall x interval (2 x 500 ms).
    let interval = Duration::from_millis(500);
    rs[1] = None;
    let t = wait_table(
        &ns,
        &d,
        &format!("{FOREIGN}{HEAD}{RS1}{RS3}"),
        2 * interval + SLACK,
    );
    eprintln!(
        "failure to removal: {t:?} (fall x interval = {:?})",
        2 * interval
    );
    // It comes back after rise x interval.
    rs[1] = Some(listen(&ns, "127.0.0.12:80"));
    let t = wait_table(&ns, &d, &all, 2 * interval + SLACK);
    eprintln!(
        "recovery to return: {t:?} (rise x interval = {:?})",
        2 * interval
    );

    // Every server down: the sorry server alone.
    rs.iter_mut().for_each(|r| *r = None);
    let t = wait_table(
        &ns,
        &d,
        &format!("{FOREIGN}{HEAD}{SORRY}"),
        2 * interval + SLACK,
    );
    eprintln!("all down to sorry server: {t:?}");
    rs[0] = Some(listen(&ns, "127.0.0.11:80"));
    wait_table(
        &ns,
        &d,
        &format!("{FOREIGN}{HEAD}{RS1}"),
        2 * interval + SLACK,
    );
    rs[1] = Some(listen(&ns, "127.0.0.12:80"));
    rs[2] = Some(listen(&ns, "127.0.0.13:80"));
    wait_table(&ns, &d, &all, 2 * interval + SLACK);

    // Flushed by hand: ours is back within one reconcile interval (2 s); the foreign
    // service, gone with the flush, is not ours to restore.
    ns.run("ipvsadm", &["-C"]).unwrap();
    let t = wait_table(
        &ns,
        &d,
        &format!("{HEAD}{RS1}{RS2}{RS3}"),
        Duration::from_secs(2) + SLACK,
    );
    eprintln!("ipvsadm -C to repaired: {t:?} (reconcile interval 2 s)");
    assert!(d.log().contains("drifted"), "{}", d.log());
    // A weight changed by hand is set back too.
    ns.run(
        "ipvsadm",
        &[
            "-e",
            "-t",
            "192.0.2.10:80",
            "-r",
            "127.0.0.13:80",
            "-m",
            "-w",
            "7",
        ],
    )
    .unwrap();
    wait_table(
        &ns,
        &d,
        &format!("{HEAD}{RS1}{RS2}{RS3}"),
        Duration::from_secs(2) + SLACK,
    );

    // Stop: our service goes, a foreign one added meanwhile stays.
    ns.run_with_input("ipvsadm", &["-R"], FOREIGN).unwrap();
    let (code, log) = stop(d);
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(saved(&ns), lines(FOREIGN), "{log}");
    assert!(
        log.contains("removed the configured virtual servers"),
        "{log}"
    );
}

/// IPVS write commands (NEW/SET/DEL service and destination, FLUSH, ZERO) in the
/// generic-netlink requests of `frames`.
fn ipvs_writes(frames: &[ipvs_integration::nlmon::Frame]) -> usize {
    const GENL_ID_CTRL: u16 = 0x10;
    const NLM_F_REQUEST: u16 = 1;
    let writes = [1u8, 2, 3, 5, 6, 7, 16, 17];
    let mut n = 0;
    for f in frames.iter().filter(|f| f.protocol == NETLINK_GENERIC) {
        let mut rest = &f.data[..];
        while rest.len() >= 20 {
            let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let kind = u16::from_ne_bytes([rest[4], rest[5]]);
            let flags = u16::from_ne_bytes([rest[6], rest[7]]);
            if kind != GENL_ID_CTRL && flags & NLM_F_REQUEST != 0 && writes.contains(&rest[16]) {
                n += 1;
            }
            let step = (len + 3) & !3;
            if step < 16 || step > rest.len() {
                break;
            }
            rest = &rest[step..];
        }
    }
    n
}

#[test]
fn daemon_start_over_its_own_table_writes_nothing() {
    let ns = TestNs::new("kad-adopt").unwrap();
    let _rs: Vec<Listener> = ["127.0.0.11:80", "127.0.0.12:80", "127.0.0.13:80"]
        .iter()
        .map(|a| listen(&ns, a))
        .collect();
    let keep = config("  on_stop: keep\n");
    let all = format!("{HEAD}{RS1}{RS2}{RS3}");

    // First run builds the table and leaves it (on_stop: keep).
    let d = start(&ns, &keep);
    wait_table(&ns, &d, &all, Duration::from_secs(10));
    let (code, log) = stop(d);
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(
        saved(&ns),
        lines(&all),
        "on_stop: keep removed entries\n{log}"
    );

    // Second run over that table: count IPVS writes on the wire while it starts, runs
    // its first probes and a periodic reconcile, and stops with on_stop: keep.
    let capture = Capture::start(&ns).unwrap();
    let _ = capture.drain();
    let d = start(&ns, &keep);
    std::thread::sleep(Duration::from_millis(3000));
    assert_eq!(saved(&ns), lines(&all));
    let (code, log) = stop(d);
    assert_eq!(code, Some(0), "{log}");
    let frames = capture.drain();
    assert!(
        frames
            .iter()
            .any(|f| f.protocol == NETLINK_GENERIC && f.is_request()),
        "nlmon saw no generic-netlink request at all: the capture is not working"
    );
    assert_eq!(ipvs_writes(&frames), 0, "writes on adoption\n{log}");
    assert!(log.contains("adopted=1"), "{log}");
    assert!(log.contains("writes=0"), "{log}");
}
