//! The rise/fall state machine of one real server (sans-IO: probe results in, transitions
//! out).

use super::Health;

/// The health of one server as its probe results come in: `rise` consecutive successes
/// bring a down server up, `fall` consecutive failures bring an up server down.
///
/// An unknown state (`None`) is decided by the first result, whatever `rise` and `fall`
/// are; this is what a freshly started daemon uses when it has no previous state to keep.
///
/// ```
/// use keepalive_d::health::{Health, HealthState};
///
/// let mut state = HealthState::new(Some(Health::Up), 2, 3);
/// assert_eq!(state.record(false), None);
/// assert_eq!(state.record(false), None);
/// assert_eq!(state.record(false), Some(Health::Down));
/// assert_eq!(state.record(true), None);
/// assert_eq!(state.record(true), Some(Health::Up));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthState {
    health: Option<Health>,
    rise: u32,
    fall: u32,
    /// Consecutive results that disagree with `health` (successes while down, failures
    /// while up).
    streak: u32,
}

impl HealthState {
    /// A server in state `initial` (`None`: unknown); `rise` and `fall` below 1 count as 1.
    pub fn new(initial: Option<Health>, rise: u32, fall: u32) -> Self {
        Self {
            health: initial,
            rise: rise.max(1),
            fall: fall.max(1),
            streak: 0,
        }
    }

    /// The current health; `None` until the first result when it started unknown.
    pub fn health(&self) -> Option<Health> {
        self.health
    }

    /// Consecutive results so far that point away from the current health.
    pub fn streak(&self) -> u32 {
        self.streak
    }

    /// Records one probe result; returns the new health when it changes (or when the first
    /// result decides an unknown state).
    pub fn record(&mut self, ok: bool) -> Option<Health> {
        let (needed, target) = match (self.health, ok) {
            (None, true) => return self.set(Health::Up),
            (None, false) => return self.set(Health::Down),
            (Some(Health::Up), true) | (Some(Health::Down), false) => {
                // Agreeing result: any pending change is abandoned.
                self.streak = 0;
                return None;
            }
            (Some(Health::Up), false) => (self.fall, Health::Down),
            (Some(Health::Down), true) => (self.rise, Health::Up),
        };
        self.streak = self.streak.saturating_add(1);
        if self.streak >= needed {
            self.set(target)
        } else {
            None
        }
    }

    fn set(&mut self, health: Health) -> Option<Health> {
        self.health = Some(health);
        self.streak = 0;
        Some(health)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Health::{Down, Up};

    /// Feeds `results` and returns what each one produced.
    fn run(state: &mut HealthState, results: &[bool]) -> Vec<Option<Health>> {
        results.iter().map(|&ok| state.record(ok)).collect()
    }

    #[test]
    fn unknown_is_decided_by_the_first_result_whatever_rise_and_fall() {
        let mut s = HealthState::new(None, 3, 3);
        assert_eq!(s.health(), None);
        assert_eq!(s.record(true), Some(Up));
        assert_eq!(s.health(), Some(Up));

        let mut s = HealthState::new(None, 3, 3);
        assert_eq!(s.record(false), Some(Down));
        assert_eq!(s.health(), Some(Down));
        // After that, the usual rules: three successes to come up.
        assert_eq!(run(&mut s, &[true, true, true]), [None, None, Some(Up)]);
    }

    #[test]
    fn rise_1_2_3() {
        for rise in 1..=3u32 {
            let mut s = HealthState::new(Some(Down), rise, 3);
            for i in 1..rise {
                assert_eq!(s.record(true), None, "rise {rise}, success {i}");
                assert_eq!(s.streak(), i);
            }
            assert_eq!(s.record(true), Some(Up), "rise {rise}");
            assert_eq!(s.health(), Some(Up));
            assert_eq!(s.streak(), 0);
            assert_eq!(s.record(true), None, "already up");
        }
    }

    #[test]
    fn fall_1_2_3() {
        for fall in 1..=3u32 {
            let mut s = HealthState::new(Some(Up), 2, fall);
            for i in 1..fall {
                assert_eq!(s.record(false), None, "fall {fall}, failure {i}");
            }
            assert_eq!(s.record(false), Some(Down), "fall {fall}");
            assert_eq!(s.record(false), None, "already down");
        }
    }

    #[test]
    fn initial_up_needs_fall_failures_and_initial_down_needs_rise_successes() {
        let mut s = HealthState::new(Some(Up), 2, 3);
        assert_eq!(run(&mut s, &[true, true]), [None, None], "up stays up");
        assert_eq!(
            run(&mut s, &[false, false, false]),
            [None, None, Some(Down)]
        );

        let mut s = HealthState::new(Some(Down), 2, 3);
        assert_eq!(run(&mut s, &[false]), [None], "down stays down");
        assert_eq!(run(&mut s, &[true, true]), [None, Some(Up)]);
    }

    #[test]
    fn flapping_resets_the_counters() {
        // Up, fall 3: two failures, one success, two failures: still up.
        let mut s = HealthState::new(Some(Up), 2, 3);
        assert_eq!(
            run(&mut s, &[false, false, true, false, false]),
            [None, None, None, None, None]
        );
        assert_eq!(s.health(), Some(Up));
        assert_eq!(s.record(false), Some(Down), "the third failure in a row");

        // Down, rise 2: success, failure, success: still down; then a second success.
        assert_eq!(run(&mut s, &[true, false, true]), [None, None, None]);
        assert_eq!(s.health(), Some(Down));
        assert_eq!(s.record(true), Some(Up));

        // Alternating forever never changes anything.
        let mut s = HealthState::new(Some(Up), 2, 2);
        for _ in 0..100 {
            assert_eq!(run(&mut s, &[false, true]), [None, None]);
        }
        assert_eq!(s.health(), Some(Up));
    }

    #[test]
    fn zero_rise_or_fall_counts_as_one() {
        let mut s = HealthState::new(Some(Up), 0, 0);
        assert_eq!(s.record(false), Some(Down));
        assert_eq!(s.record(true), Some(Up));
    }

    #[test]
    fn a_transition_is_reported_once() {
        let mut s = HealthState::new(None, 1, 1);
        let changes: Vec<_> = [true, true, false, false, true, false]
            .iter()
            .filter_map(|&ok| s.record(ok))
            .collect();
        assert_eq!(changes, [Up, Down, Up, Down]);
    }
}
