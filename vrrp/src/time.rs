//! A monotonic point in time, passed in by the caller.
//!
//! The state machine never reads a clock. The daemon picks an epoch (for
//! example the `std::time::Instant` at which it started) and passes
//! `Time::from(epoch.elapsed())` with every event. Tests simply count from
//! zero.

use std::fmt;
use std::ops::Add;
use std::time::Duration;

/// A point in time, as the [`Duration`] elapsed since a caller-chosen epoch.
///
/// ```
/// use std::time::Duration;
/// use vrrp_proto::Time;
///
/// let t = Time::from_millis(1500) + Duration::from_millis(250);
/// assert_eq!(t, Time::from_millis(1750));
/// assert_eq!(t.to_string(), "1.75s");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(Duration);

impl Time {
    /// The epoch itself.
    pub const ZERO: Time = Time(Duration::ZERO);

    /// The time `since_epoch` after the epoch.
    pub const fn from_duration(since_epoch: Duration) -> Self {
        Time(since_epoch)
    }

    /// The time `secs` seconds after the epoch.
    pub const fn from_secs(secs: u64) -> Self {
        Time(Duration::from_secs(secs))
    }

    /// The time `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Time(Duration::from_millis(millis))
    }

    /// The time `micros` microseconds after the epoch.
    pub const fn from_micros(micros: u64) -> Self {
        Time(Duration::from_micros(micros))
    }

    /// The time `nanos` nanoseconds after the epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Time(Duration::from_nanos(nanos))
    }

    /// How long after the epoch this time is.
    pub const fn since_epoch(self) -> Duration {
        self.0
    }

    /// How long after `earlier` this time is, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Time) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl From<Duration> for Time {
    fn from(since_epoch: Duration) -> Self {
        Time(since_epoch)
    }
}

impl Add<Duration> for Time {
    type Output = Time;

    /// Saturates at the largest representable time instead of overflowing.
    fn add(self, rhs: Duration) -> Time {
        Time(self.0.saturating_add(rhs))
    }
}

impl fmt::Display for Time {
    /// Seconds with as many fractional digits as needed (at most 9):
    /// `0s`, `3.609375s`, `1.5s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let nanos = self.0.subsec_nanos();
        if nanos == 0 {
            return write!(f, "{secs}s");
        }
        let frac = format!("{nanos:09}");
        write!(f, "{secs}.{}s", frac.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_trims_trailing_zeros() {
        assert_eq!(Time::ZERO.to_string(), "0s");
        assert_eq!(Time::from_micros(3_609_375).to_string(), "3.609375s");
        assert_eq!(Time::from_nanos(1).to_string(), "0.000000001s");
        assert_eq!(Time::from_secs(12).to_string(), "12s");
    }

    #[test]
    fn add_saturates() {
        let max = Time::from_duration(Duration::MAX);
        assert_eq!(max + Duration::from_secs(1), max);
    }

    #[test]
    fn duration_since() {
        let a = Time::from_millis(100);
        let b = Time::from_millis(350);
        assert_eq!(b.saturating_duration_since(a), Duration::from_millis(250));
        assert_eq!(a.saturating_duration_since(b), Duration::ZERO);
    }
}
