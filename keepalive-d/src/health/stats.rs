//! Probe statistics of one real server: counts by result and a latency histogram, kept
//! by the server's own task (see [`Checkers::probe_stats`](super::Checkers::probe_stats)).

use std::time::Duration;

/// Upper bounds of the probe latency histogram's buckets; a probe falls in the first
/// bucket whose bound is at least its latency, or in a last, unbounded one (`+Inf`).
pub const PROBE_BUCKETS: [Duration; 12] = [
    Duration::from_micros(500),
    Duration::from_millis(1),
    Duration::from_micros(2500),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(25),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_millis(2500),
];

/// [`PROBE_BUCKETS`] in nanoseconds, for a cheap comparison.
const BUCKET_NANOS: [u64; PROBE_BUCKETS.len()] = {
    let mut out = [0; PROBE_BUCKETS.len()];
    let mut i = 0;
    while i < out.len() {
        // Every bound is a few seconds at most: the conversion is exact.
        out[i] = PROBE_BUCKETS[i].as_nanos() as u64;
        i += 1;
    }
    out
};

/// Probe results and latencies of one real server since its check started (a reload
/// that keeps the check keeps them): the input of the `keepalive_d_check_probes_total`
/// and `keepalive_d_check_duration_seconds` metrics and of the probe counts of
/// `keepalive-d status`. Plain integers, updated by the server's task under the lock it
/// takes anyway to publish its last outcome: counting costs no extra synchronisation,
/// and [`observe`](Self::observe) about 40 instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProbeStats {
    /// Probes that succeeded.
    pub success: u64,
    /// Probes that failed (timeouts included).
    pub failure: u64,
    /// Sum of all probes' latencies, in nanoseconds (saturates after 584 years).
    pub latency_sum_nanos: u64,
    /// Probes per bucket of [`PROBE_BUCKETS`] (not cumulative), then the `+Inf` bucket.
    pub buckets: [u64; PROBE_BUCKETS.len() + 1],
}

impl ProbeStats {
    /// Counts one probe.
    pub fn observe(&mut self, ok: bool, latency: Duration) {
        if ok {
            self.success = self.success.saturating_add(1);
        } else {
            self.failure = self.failure.saturating_add(1);
        }
        // Integer nanoseconds: a third of the instructions of `Duration` arithmetic.
        let nanos = latency
            .as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(latency.subsec_nanos()));
        self.latency_sum_nanos = self.latency_sum_nanos.saturating_add(nanos);
        let i = BUCKET_NANOS.partition_point(|b| *b < nanos);
        if let Some(b) = self.buckets.get_mut(i) {
            *b = b.saturating_add(1);
        }
    }

    /// Probes counted (successes and failures).
    pub fn count(&self) -> u64 {
        self.success.saturating_add(self.failure)
    }

    /// Sum of all probes' latencies.
    pub fn latency_sum(&self) -> Duration {
        Duration::from_nanos(self.latency_sum_nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_result_and_bucket() {
        let mut s = ProbeStats::default();
        for (ok, us) in [
            (true, 0),
            (true, 500),
            (true, 501),
            (false, 1_000_000),
            (false, 2_500_000),
            (false, 2_500_001),
            (true, 60_000_000),
        ] {
            s.observe(ok, Duration::from_micros(us));
        }
        assert_eq!((s.success, s.failure, s.count()), (4, 3, 7));
        // 0 and 500 µs in the first bucket (bounds are inclusive), 501 µs in the second,
        // 1 s and 2.5 s at their bounds, above 2.5 s in +Inf.
        let mut want = [0; 13];
        want[0] = 2;
        want[1] = 1;
        want[10] = 1;
        want[11] = 1;
        want[12] = 2;
        assert_eq!(s.buckets, want);
        assert_eq!(s.buckets.iter().sum::<u64>(), s.count());
        assert_eq!(s.latency_sum(), Duration::from_micros(66_001_002));
    }

    #[test]
    fn saturates_instead_of_overflowing() {
        let mut s = ProbeStats {
            success: u64::MAX,
            latency_sum_nanos: u64::MAX - 1,
            ..ProbeStats::default()
        };
        s.observe(true, Duration::from_secs(1));
        assert_eq!((s.success, s.latency_sum_nanos), (u64::MAX, u64::MAX));
        assert_eq!(s.count(), u64::MAX);
        // A latency beyond what u64 nanoseconds hold lands in +Inf.
        s.observe(false, Duration::MAX);
        assert_eq!((s.buckets[10], s.buckets[12]), (1, 1));
    }
}
