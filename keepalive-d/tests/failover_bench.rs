//! The failover benchmark of BENCHMARKS.md ("VRRP failover against keepalived"), run as a
//! test: keepalived and keepalive-d killed and taking over in all four pairs, measured on
//! the wire (kernel timestamps of the frames on the bridge, see
//! `ipvs_integration::vrrp_bench`). Fewer runs than the benchmark and bounds that hold on
//! a loaded machine (a takeover can be late when the machine does not run the Backup at
//! once, never early): no takeover before the Backup's master-down interval
//! (3 x interval + skew), none more than 300 ms after it, the best of three within 20 ms
//! of it, and the first gratuitous ARP within 50 ms of the first advert. The benchmark's
//! target (median within 5 ms of the bound) is checked by `vrrp-failover-bench`, run by
//! hand; `cargo test -p keepalive-d --test failover_bench -- --nocapture` prints the
//! numbers of this test.
//!
//! Needs root and keepalived in `PATH` (host namespaces, no VM).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use ipvs_integration::vrrp_bench::{BACKUP_PRIORITY, Implementation, Scenario, Timing, failover};

const BIN: &str = env!("CARGO_BIN_EXE_keepalive-d");

/// One failover at a time: the two tests of this file would load each other.
static SERIAL: Mutex<()> = Mutex::new(());

/// One failover, checked against the bounds; how long the takeover took.
fn check(scenario: Scenario, timing: Timing, tag: &str) -> Duration {
    let bound = timing.master_down(BACKUP_PRIORITY);
    let s = failover(scenario, timing, Path::new(BIN), tag)
        .unwrap_or_else(|e| panic!("{} ({}): {e}", scenario.label(), timing.label()));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{} | {}: first advert {:.1} ms, first gratuitous ARP {:.1} ms (bound {:.1} ms)",
        timing.label(),
        scenario.label(),
        ms(s.advert),
        ms(s.garp),
        ms(bound)
    );
    // The Backup's timer starts when it has read the last advert, after the wire saw it.
    assert!(
        s.advert + Duration::from_millis(1) >= bound,
        "{}: took over {:.1} ms after the last advert, before the bound {:.1} ms",
        scenario.label(),
        ms(s.advert),
        ms(bound)
    );
    assert!(
        s.advert <= bound + Duration::from_millis(300),
        "{}: took over {:.1} ms after the last advert (bound {:.1} ms)",
        scenario.label(),
        ms(s.advert),
        ms(bound)
    );
    assert!(
        s.garp >= s.advert.saturating_sub(Duration::from_millis(50))
            && s.garp <= s.advert + Duration::from_millis(50),
        "{}: gratuitous ARP at {:.1} ms, advert at {:.1} ms",
        scenario.label(),
        ms(s.garp),
        ms(s.advert)
    );
    s.advert
}

/// VRRPv3 at 100 ms: the four pairs, three times each; the best of three within 20 ms of
/// the bound.
#[test]
fn v3_failover_at_the_protocol_bound() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let bound = Timing::V3_100MS.master_down(BACKUP_PRIORITY);
    let mut best = [Duration::MAX; 4];
    for rep in 0..3 {
        for (i, scenario) in Scenario::ALL.into_iter().enumerate() {
            let t = check(scenario, Timing::V3_100MS, &format!("fb3{rep}"));
            best[i] = best[i].min(t);
        }
    }
    for (scenario, best) in Scenario::ALL.into_iter().zip(best) {
        assert!(
            best <= bound + Duration::from_millis(20),
            "{}: best of three {best:?}, bound {bound:?}",
            scenario.label()
        );
    }
}

/// VRRPv2 at 1 s: keepalive-d taking over from keepalived and from itself, once each.
#[test]
fn v2_failover_at_the_protocol_bound() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    for scenario in Scenario::ALL
        .into_iter()
        .filter(|s| s.takes_over == Implementation::KeepaliveD)
    {
        check(scenario, Timing::V2_1S, "fb2");
    }
}
