//! examples/web-farm-dr: a web farm behind a director pair using direct routing, run end
//! to end from the shipped files (`director-a.yaml`, `director-b.yaml`, `realserver.sh`)
//! in the lab's DR pair layout (`LbLab::dr_pair`): two `keepalive-d` directors share the
//! VIP by VRRP, three web servers hold it on `lo` with ARP suppressed.
//!
//! Proven here, with HTTP traffic from the client the whole time: a failed web server is
//! routed around (and comes back), and a Master failure (the box goes away: daemon killed
//! and link down) moves the VIP to the Backup within the VRRP bound, with failed requests
//! only inside that window; the old Master coming back takes over again (preempt).
//!
//! The helpers here are shared with `daemon_pair` (issue 7's pair tests).

use ipvs_integration::daemon::Daemon;
use ipvs_integration::lb_lab::{LbLab, Spread};
use ipvs_integration::netns::TestNs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A file of `examples/web-farm-dr/`.
pub(crate) fn example_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/web-farm-dr")
        .join(name)
}

/// The shipped configuration of director `a` or `b`.
pub(crate) fn shipped_config(director: char) -> String {
    let path = example_file(&format!("director-{director}.yaml"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The advert interval and priorities of the shipped files: the Backup's master-down
/// interval is 3 x 1 s + (256 - 100) / 256 x 1 s (RFC 5798 6.1).
pub(crate) const MASTER_DOWN: Duration = Duration::from_millis(3609);

/// Whether `ns` holds the VIP on eth0.
pub(crate) fn has_vip(lab: &LbLab, ns: &TestNs) -> bool {
    let vip = format!(" {}/", lab.vip());
    ns.run("ip", &["-4", "-o", "addr", "show", "dev", "eth0"])
        .map(|out| out.contains(&vip))
        .unwrap_or(false)
}

/// Waits until `cond` holds (polled every 10 ms); the time it took, or a panic with
/// `what` after `within`.
pub(crate) fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if cond() {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Destinations of the web service in `ns`'s IPVS table.
pub(crate) fn dests(lab: &LbLab, ns: &TestNs) -> usize {
    let prefix = format!("-a -t {}:80 -r ", lab.vip());
    ns.run("ipvsadm", &["-S", "-n"])
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .count()
}

/// VRRP transitions logged by a daemon.
pub(crate) fn transitions(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("VRRP state change"))
        .count()
}

/// The DR pair lab with the web servers prepared by the shipped `realserver.sh`, and
/// both directors running the shipped configurations: `a` Master with the VIP, `b`
/// Backup, both tables complete, and requests answered.
pub(crate) fn start_pair() -> (LbLab, Daemon, Daemon) {
    let lab = LbLab::dr_pair(3).unwrap();
    let script = example_file("realserver.sh");
    for i in 0..lab.real_server_count() {
        let rs = lab.real_server(i);
        rs.run(
            "/bin/sh",
            &[
                script.to_str().unwrap(),
                "start",
                &lab.vip().to_string(),
                "eth0",
            ],
        )
        .unwrap();
        let sysctl = rs
            .run("sysctl", &["-n", "net.ipv4.conf.eth0.arp_ignore"])
            .unwrap();
        assert_eq!(sysctl.trim(), "1", "realserver.sh in {}", rs.name());
    }
    let d2 = lab.director2().unwrap();
    // As the README's install step says: a removed server's connection entries expire.
    for d in [lab.director(), d2] {
        d.run("sysctl", &["-qw", "net.ipv4.vs.expire_nodest_conn=1"])
            .unwrap();
    }
    let a = Daemon::start(lab.director(), &shipped_config('a'), "info").unwrap();
    let b = Daemon::start(d2, &shipped_config('b'), "info").unwrap();
    wait_until(
        "director a is Master with the VIP",
        Duration::from_secs(15),
        || has_vip(&lab, lab.director()) && a.log().contains("state=master"),
    );
    wait_until("director b is Backup", Duration::from_secs(15), || {
        b.log().contains("state=backup")
    });
    assert!(!has_vip(&lab, d2), "both directors hold the VIP");
    wait_until(
        "both tables have 3 web servers",
        Duration::from_secs(20),
        || dests(&lab, lab.director()) == 3 && dests(&lab, d2) == 3,
    );
    wait_until(
        "requests through the VIP answered",
        Duration::from_secs(10),
        || lab.client_requests(12).failures == 0,
    );
    (lab, a, b)
}

/// Prints the spread, and when its failed requests started relative to `t0`.
pub(crate) fn report(what: &str, spread: &Spread, t0: Instant) {
    let offsets: Vec<String> = spread
        .failure_times
        .iter()
        .map(|t| format!("{:+.2}s", signed_secs(*t, t0)))
        .collect();
    eprintln!("{what}: {spread}; failed requests started at {offsets:?} from t0");
}

/// `t - t0` in seconds, negative if `t` is earlier.
pub(crate) fn signed_secs(t: Instant, t0: Instant) -> f64 {
    if t >= t0 {
        (t - t0).as_secs_f64()
    } else {
        -(t0 - t).as_secs_f64()
    }
}

#[test]
fn example_web_farm_dr_routes_around_a_failed_web_server() {
    let (mut lab, a, b) = start_pair();
    let before = (transitions(&a.log()), transitions(&b.log()));
    // Health checks: interval 1 s, fall 2, rise 2.
    let ((), spread) = lab.during_traffic(|| std::thread::sleep(Duration::from_secs(1)));
    assert_eq!(spread.failures, 0, "{spread}");
    assert!(spread.count("rs1") > 0, "{spread}");
    lab.stop_backend(1).unwrap();
    let d2 = lab.director2().unwrap();
    let left = wait_until("rs1 leaves both tables", Duration::from_secs(6), || {
        dests(&lab, lab.director()) == 2 && dests(&lab, d2) == 2
    });
    eprintln!("rs1 left both tables {left:?} after it stopped (fall 2 x interval 1 s)");
    let spread = lab.client_requests(200);
    report("with rs1 down", &spread, Instant::now());
    assert_eq!(spread.failures, 0, "{spread}");
    assert_eq!(spread.count("rs1"), 0, "{spread}");
    lab.start_backend(1).unwrap();
    wait_until("rs1 back in both tables", Duration::from_secs(6), || {
        dests(&lab, lab.director()) == 3 && dests(&lab, lab.director2().unwrap()) == 3
    });
    let spread = lab.client_requests(200);
    assert_eq!(spread.failures, 0, "{spread}");
    assert!(spread.count("rs1") > 0, "{spread}");
    // No VRRP change through all of it.
    assert_eq!(
        (transitions(&a.log()), transitions(&b.log())),
        before,
        "{}\n{}",
        a.log(),
        b.log()
    );
}

#[test]
fn example_web_farm_dr_keeps_traffic_flowing_through_a_master_failure() {
    let (lab, a, b) = start_pair();
    let d1 = lab.director();
    let d2 = lab.director2().unwrap();
    let ((failed_at, took_over, back_at, preempted), spread) = lab.during_traffic(|| {
        std::thread::sleep(Duration::from_secs(1));
        // The Master box fails: its daemon dies and its link goes down at once.
        let failed_at = Instant::now();
        let log_a = a.kill();
        d1.run("ip", &["link", "set", "eth0", "down"]).unwrap();
        let took = wait_until("director b takes the VIP", Duration::from_secs(10), || {
            has_vip(&lab, d2)
        });
        let took_over = failed_at + took;
        std::thread::sleep(Duration::from_secs(2));
        // It comes back (link up, daemon restarted): it preempts, b returns to Backup.
        d1.run("ip", &["link", "set", "eth0", "up"]).unwrap();
        let back_at = Instant::now();
        let a2 = Daemon::start(d1, &shipped_config('a'), "info").unwrap();
        let back = wait_until(
            "director a takes the VIP back",
            Duration::from_secs(15),
            || has_vip(&lab, d1) && !has_vip(&lab, d2),
        );
        std::thread::sleep(Duration::from_secs(2));
        (failed_at, took_over, back_at, (back_at + back, log_a, a2))
    });
    let (preempted_at, log_a, a2) = preempted;
    let took = took_over - failed_at;
    eprintln!(
        "Master failure: the Backup held the VIP {took:?} after it (master-down interval {MASTER_DOWN:?}); \
         the old Master took it back {:?} after it returned",
        preempted_at - back_at
    );
    report(
        "traffic through the failure and the return (t0: failure)",
        &spread,
        failed_at,
    );
    eprintln!(
        "t0+{:.2}s VIP on b, t0+{:.2}s a back, t0+{:.2}s VIP on a",
        signed_secs(took_over, failed_at),
        signed_secs(back_at, failed_at),
        signed_secs(preempted_at, failed_at)
    );
    let in_failover =
        spread.failures - spread.failures_outside(failed_at, took_over + Duration::from_secs(1));
    eprintln!(
        "failed requests: {in_failover} inside the failover window, {} in all",
        spread.failures
    );
    assert!(
        took <= MASTER_DOWN + Duration::from_millis(1500),
        "failover took {took:?}, bound {MASTER_DOWN:?}\n{}",
        b.log()
    );
    // Failures only while nobody (reachable) held the VIP, or while it moved back.
    let outside = spread
        .failure_times
        .iter()
        .filter(|t| {
            let in_failover = **t >= failed_at && **t <= took_over + Duration::from_secs(1);
            let in_return = **t >= back_at && **t <= preempted_at + Duration::from_secs(1);
            !in_failover && !in_return
        })
        .count();
    assert_eq!(
        outside, 0,
        "requests failed outside the failover windows: {spread}"
    );
    assert!(spread.ok() > 100, "{spread}");
    assert!(
        transitions(&b.log()) >= 3,
        "b: backup, master, backup:\n{}",
        b.log()
    );
    assert!(log_a.contains("state=master"), "{log_a}");
    assert!(a2.log().contains("state=master"), "{}", a2.log());
}
