//! When each probe is due (sans-IO: times are durations since the checks started).

use std::time::Duration;

/// The probe schedule of one server.
///
/// Times are offsets from the moment the checks started (the engine adds them to its own
/// start instant; tests use plain numbers). The first probe of target `index` out of
/// `count` is due at `interval * index / count`, so that the first probes of all targets
/// are spread evenly over their interval instead of all firing at once; after that, a
/// probe is due `interval` after the previous probe *started* (as long as the timeout is
/// at most the interval, probes of one server never overlap).
///
/// ```
/// use std::time::Duration;
/// use keepalive_d::health::Schedule;
///
/// let second = Duration::from_secs(1);
/// let mut s = Schedule::new(second, 1, 4);
/// assert_eq!(s.due(), Duration::from_millis(250));
/// s.started(Duration::from_millis(260)); // the probe started a little late
/// assert_eq!(s.due(), Duration::from_millis(1260));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    interval: Duration,
    next: Duration,
}

impl Schedule {
    /// The schedule of target `index` (0-based) among `count` targets.
    pub fn new(interval: Duration, index: usize, count: usize) -> Self {
        Self {
            interval,
            next: first_offset(interval, index, count),
        }
    }

    /// The time between probes.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// When the next probe is due.
    pub fn due(&self) -> Duration {
        self.next
    }

    /// A probe started at `at` (normally [`due`](Self::due), later when the runtime was
    /// busy): the next one is due one interval later.
    pub fn started(&mut self, at: Duration) {
        self.next = at.saturating_add(self.interval);
    }
}

/// Start-up spread: the offset of the first probe of target `index` among `count`,
/// `interval * index / count` (0 when `count` is 0; `index` is taken modulo `count`).
pub fn first_offset(interval: Duration, index: usize, count: usize) -> Duration {
    if count == 0 {
        return Duration::ZERO;
    }
    let count = count as u128;
    let index = index as u128 % count;
    let nanos = interval.as_nanos().saturating_mul(index) / count;
    // nanos < interval.as_nanos(), so it fits wherever the interval fits.
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    let sub = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
    Duration::new(secs, sub)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn first_probes_are_spread_evenly_over_the_interval() {
        let offsets: Vec<_> = (0..4).map(|i| first_offset(ms(1000), i, 4)).collect();
        assert_eq!(offsets, [ms(0), ms(250), ms(500), ms(750)]);

        // 2,000 targets every second: one every 500 µs, all within the first interval,
        // in order and without two at the same time.
        let n = 2000;
        let offsets: Vec<_> = (0..n).map(|i| first_offset(ms(1000), i, n)).collect();
        assert_eq!(offsets[0], Duration::ZERO);
        assert_eq!(offsets[1], Duration::from_micros(500));
        assert_eq!(offsets[n - 1], Duration::from_micros(999_500));
        assert!(offsets.windows(2).all(|w| w[0] < w[1]));
        // Every 100 ms slice of the interval gets the same number of first probes.
        for slice in 0..10u32 {
            let lo = ms(100) * slice;
            let hi = lo + ms(100);
            let in_slice = offsets.iter().filter(|o| **o >= lo && **o < hi).count();
            assert_eq!(in_slice, 200, "slice {slice}");
        }
    }

    #[test]
    fn spread_uses_each_targets_own_interval() {
        assert_eq!(first_offset(ms(2000), 1, 2), ms(1000));
        assert_eq!(first_offset(ms(100), 1, 2), ms(50));
        // Not a whole number of nanoseconds: rounded down, deterministic.
        assert_eq!(
            first_offset(Duration::from_nanos(10), 1, 3),
            Duration::from_nanos(3)
        );
    }

    #[test]
    fn degenerate_counts() {
        assert_eq!(first_offset(ms(1000), 0, 0), Duration::ZERO);
        assert_eq!(first_offset(ms(1000), 0, 1), Duration::ZERO);
        assert_eq!(first_offset(ms(1000), 5, 4), ms(250), "index modulo count");
        let huge = Duration::new(u64::MAX, 999_999_999);
        assert!(first_offset(huge, usize::MAX - 1, usize::MAX) < huge);
    }

    #[test]
    fn next_probe_is_one_interval_after_the_previous_start() {
        let mut s = Schedule::new(ms(100), 1, 2);
        assert_eq!(s.interval(), ms(100));
        assert_eq!(s.due(), ms(50));
        // Fake clock: each probe starts when due and takes 30 ms; the next is due 100 ms
        // after the start, not after the end.
        let mut now = Duration::ZERO;
        let mut starts = Vec::new();
        for _ in 0..4 {
            now = now.max(s.due());
            starts.push(now);
            s.started(now);
            now += ms(30);
        }
        assert_eq!(starts, [ms(50), ms(150), ms(250), ms(350)]);

        // A probe that starts late shifts the following ones; it does not cause a burst
        // of catch-up probes.
        s.started(ms(480));
        assert_eq!(s.due(), ms(580));
    }

    #[test]
    fn no_overlap_when_the_timeout_is_at_most_the_interval() {
        let interval = ms(100);
        let timeout = ms(100);
        let mut s = Schedule::new(interval, 0, 1);
        let mut now = Duration::ZERO;
        let mut last_end = Duration::ZERO;
        for _ in 0..10 {
            now = now.max(s.due());
            assert!(
                now >= last_end,
                "a probe started before the previous one ended"
            );
            s.started(now);
            now += timeout; // every probe runs into its timeout
            last_end = now;
        }
    }

    #[test]
    fn far_future_saturates() {
        let mut s = Schedule::new(Duration::MAX, 0, 1);
        s.started(Duration::MAX);
        assert_eq!(s.due(), Duration::MAX);
    }
}
