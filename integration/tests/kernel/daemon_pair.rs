//! Issue 7 under traffic through a VRRP pair of directors (the DR pair of
//! examples/web-farm-dr, HTTP from the client the whole time):
//!
//! - 100 reloads of each director, alternating two configurations that differ by one
//!   real server: no request fails, no VRRP transition on either director;
//! - SIGKILL of the Master's daemon and an immediate restart: no request fails and there
//!   is no failover (the restarted daemon resumes as Master, the Backup never leaves
//!   Backup);
//! - SIGKILL of the Master's daemon without a restart: the Backup takes over within the
//!   master-down interval, and requests fail only inside that window (counted).

use crate::example_web_farm_dr::{
    MASTER_DOWN, dests, has_vip, report, shipped_config, start_pair, transitions, wait_until,
};
use ipvs_integration::daemon::Daemon;
use std::time::{Duration, Instant};

/// The shipped configuration without the third web server.
fn without_rs2(config: &str) -> String {
    let out: String = config
        .lines()
        .filter(|l| !l.contains("10.0.0.13:80"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(out.len(), config.len(), "10.0.0.13 is in the shipped file");
    out
}

#[test]
fn pair_hundred_reloads_under_traffic_fail_no_request_and_keep_vrrp_state() {
    let (lab, a, b) = start_pair();
    let d2 = lab.director2().unwrap();
    let full = [shipped_config('a'), shipped_config('b')];
    let less = [without_rs2(&full[0]), without_rs2(&full[1])];
    let before = (transitions(&a.log()), transitions(&b.log()));
    let reloads = 100;
    let t0 = Instant::now();
    let (took, spread) = lab.during_traffic(|| {
        let start = Instant::now();
        for i in 0..reloads {
            let set = if i % 2 == 0 { &less } else { &full };
            for (d, text) in [(&a, &set[0]), (&b, &set[1])] {
                let line = d.reload(text, Duration::from_secs(20)).unwrap();
                assert!(line.contains("reloaded:"), "reload {i}: {line}");
            }
        }
        start.elapsed()
    });
    report(
        &format!("{reloads} reloads of each director in {took:?} (t0: first reload)"),
        &spread,
        t0,
    );
    assert_eq!(
        spread.failures, 0,
        "requests failed during reloads: {spread}"
    );
    assert!(spread.ok() > 100, "{spread}");
    // Even count: the last reload put the full file back.
    wait_until(
        "3 web servers in both tables",
        Duration::from_secs(10),
        || dests(&lab, lab.director()) == 3 && dests(&lab, d2) == 3,
    );
    assert_eq!(
        (transitions(&a.log()), transitions(&b.log())),
        before,
        "VRRP changed state during reloads:\n{}\n{}",
        a.log(),
        b.log()
    );
    assert!(has_vip(&lab, lab.director()) && !has_vip(&lab, d2));
}

#[test]
fn pair_master_killed_and_restarted_fails_no_request_and_does_not_fail_over() {
    let (lab, a, b) = start_pair();
    let d1 = lab.director();
    let d2 = lab.director2().unwrap();
    let (a2, spread) = lab.during_traffic(|| {
        std::thread::sleep(Duration::from_secs(1));
        let killed_at = Instant::now();
        let log = a.kill();
        assert!(log.contains("state=master"), "{log}");
        let a2 = Daemon::restart(d1, &shipped_config('a'), "info").unwrap();
        eprintln!("restarted {:?} after the kill", killed_at.elapsed());
        assert!(
            a2.wait_log("state=master", MASTER_DOWN),
            "the restarted daemon did not resume as Master:\n{}",
            a2.log()
        );
        eprintln!(
            "restarted and resumed as Master {:?} after the kill (master-down interval {MASTER_DOWN:?})",
            killed_at.elapsed()
        );
        // Longer than a master-down interval: the Backup would have taken over by now.
        std::thread::sleep(MASTER_DOWN + Duration::from_secs(1));
        a2
    });
    report(
        "traffic through the kill and restart",
        &spread,
        Instant::now(),
    );
    assert_eq!(spread.failures, 0, "{spread}");
    assert!(spread.ok() > 100, "{spread}");
    assert!(
        a2.log().contains("resum"),
        "the restart resumed (not a fresh election):\n{}",
        a2.log()
    );
    assert_eq!(
        transitions(&b.log()),
        1,
        "the Backup changed state (failover):\n{}",
        b.log()
    );
    assert!(has_vip(&lab, d1) && !has_vip(&lab, d2));
    assert_eq!(dests(&lab, d1), 3);
}

#[test]
fn pair_master_killed_without_restart_fails_over_within_the_vrrp_bound() {
    let (lab, a, b) = start_pair();
    let d2 = lab.director2().unwrap();
    let ((killed_at, took_over), spread) = lab.during_traffic(|| {
        std::thread::sleep(Duration::from_secs(1));
        let killed_at = Instant::now();
        let _log = a.kill();
        let took = wait_until("the Backup takes the VIP", Duration::from_secs(10), || {
            has_vip(&lab, d2)
        });
        std::thread::sleep(Duration::from_secs(2));
        (killed_at, killed_at + took)
    });
    let took = took_over - killed_at;
    let window_end = took_over + Duration::from_secs(1);
    let inside = spread.failures - spread.failures_outside(killed_at, window_end);
    eprintln!(
        "Master's daemon killed: the Backup held the VIP {took:?} later (master-down interval {MASTER_DOWN:?}); \
         {inside} requests failed inside the window, {} outside; {spread}",
        spread.failures - inside
    );
    // The Backup's timer runs from the last advert it got, up to one advert interval
    // (1 s) before the kill.
    assert!(
        took + Duration::from_millis(1100) >= MASTER_DOWN
            && took <= MASTER_DOWN + Duration::from_millis(1500),
        "failover after {took:?}, expected the master-down interval {MASTER_DOWN:?} less up to one advert interval\n{}",
        b.log()
    );
    assert_eq!(
        spread.failures_outside(killed_at, window_end),
        0,
        "requests failed outside the failover window: {spread}"
    );
    assert!(spread.ok() > 100, "{spread}");
    assert!(b.log().contains("state=master"), "{}", b.log());
    // The new Master's table serves: requests after the window all succeed.
    let after = lab.client_requests(100);
    assert_eq!(after.failures, 0, "{after}");
}

#[test]
fn pair_master_upgraded_by_sigusr2_hands_over_without_a_failover_or_a_failed_request() {
    let (lab, a, b) = start_pair();
    let d1 = lab.director();
    let d2 = lab.director2().unwrap();
    let before = transitions(&b.log());
    // A successor that fails its check is refused: the daemon runs on as Master.
    a.write_config("vrrp_instances: nope\n").unwrap();
    a.signal(nix::sys::signal::Signal::SIGUSR2).unwrap();
    assert!(
        a.wait_log("hand-over refused", Duration::from_secs(10)),
        "{}",
        a.log()
    );
    a.write_config(&shipped_config('a')).unwrap();
    let pid = a.pid();
    let signalled = std::sync::OnceLock::new();
    let (handed_over_in, spread) = lab.during_traffic(|| {
        std::thread::sleep(Duration::from_secs(1));
        let start = Instant::now();
        let _ = signalled.set(start);
        a.signal(nix::sys::signal::Signal::SIGUSR2).unwrap();
        assert!(
            a.wait_log(
                "resuming as Master without a failover",
                Duration::from_secs(10)
            ),
            "the new process did not resume:\n{}",
            a.log()
        );
        let took = start.elapsed();
        // Longer than a master-down interval: a failover would have happened by now.
        std::thread::sleep(MASTER_DOWN + Duration::from_secs(1));
        took
    });
    // Failure times from the signal.
    let t0 = signalled.get().copied().unwrap_or_else(Instant::now);
    report("traffic through the hand-over (t0 = SIGUSR2)", &spread, t0);
    eprintln!("SIGUSR2 to resumed as Master in the new process: {handed_over_in:?}");
    let log = a.log();
    let steps: Vec<&str> = log
        .lines()
        .skip_while(|l| !l.contains("SIGUSR2: handing over"))
        .filter(|l| l.contains("hand") || l.contains("resum") || l.contains("running"))
        .collect();
    eprintln!("hand-over steps:\n{}", steps.join("\n"));
    assert!(
        log.contains("handing over: executing the new process"),
        "{log}"
    );
    assert_eq!(a.pid(), pid, "the same process id");
    assert_eq!(
        spread.failures,
        0,
        "{spread}\n--- director A:\n{log}\n--- director B:\n{}",
        b.log()
    );
    assert!(spread.ok() > 100, "{spread}");
    assert_eq!(
        transitions(&b.log()),
        before,
        "the Backup changed state:\n{}",
        b.log()
    );
    assert!(has_vip(&lab, d1) && !has_vip(&lab, d2));
    assert_eq!(dests(&lab, d1), 3, "the table stays");
    // The new process is a working daemon: a clean stop resigns.
    let (code, log) = a.stop(Duration::from_secs(20)).unwrap();
    assert_eq!(code, Some(0), "{log}");
    wait_until(
        "the Backup takes over after the stop",
        Duration::from_secs(5),
        || has_vip(&lab, d2),
    );
}
