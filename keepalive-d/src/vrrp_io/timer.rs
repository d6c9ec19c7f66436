//! A precise one-shot timer for the state machine's deadlines.
//!
//! tokio's timer wheel counts whole milliseconds and rounds a deadline up, and its
//! driver sleeps in `epoll_wait` with a millisecond timeout: a deadline fires 1 to 2 ms
//! late. That is the whole margin of a failover "at the protocol bound" (BENCHMARKS.md),
//! so the VRRP deadlines (master-down, advert) wait on a `timerfd` instead, which the
//! kernel fires within microseconds. Without a timerfd (it cannot be created), tokio's
//! timer is used.

use std::os::fd::{AsFd, AsRawFd, RawFd};

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

/// A `TimerFd` for `AsyncFd` (which wants `AsRawFd`).
struct Fd(TimerFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// One-shot sleeps to a deadline, on a timerfd (see the module documentation).
pub(crate) struct PreciseTimer {
    fd: Option<AsyncFd<Fd>>,
}

impl PreciseTimer {
    /// A timer on `CLOCK_MONOTONIC` (the clock of [`Instant`]). Must be called within a
    /// tokio runtime.
    pub(crate) fn new() -> Self {
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(std::io::Error::from)
        // SAFETY: the AsyncFd owns the timer, which owns its descriptor: it is neither
        // closed nor replaced while registered.
        .and_then(|t| unsafe { AsyncFd::register(Fd(t)) }.map_err(std::io::Error::from));
        match fd {
            Ok(fd) => PreciseTimer { fd: Some(fd) },
            Err(e) => {
                tracing::warn!("no timerfd ({e}): VRRP timers fire with tokio's 1 ms steps");
                PreciseTimer { fd: None }
            }
        }
    }

    /// Returns at `deadline`, never if `None`. Cancel safe: each call arms the timer
    /// again.
    pub(crate) async fn sleep_until(&self, deadline: Option<Instant>) {
        let Some(deadline) = deadline else {
            return std::future::pending().await;
        };
        let Some(fd) = &self.fd else {
            return tokio::time::sleep_until(deadline).await;
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        // A relative one-shot (a zero value would disarm the timer: `left` is not zero).
        // Arming resets any expiry a cancelled sleep left unread.
        if let Err(e) = fd.get_ref().0.set(
            Expiration::OneShot(TimeSpec::from_duration(left)),
            TimerSetTimeFlags::empty(),
        ) {
            tracing::warn!("timerfd_settime: {e}");
            return tokio::time::sleep_until(deadline).await;
        }
        loop {
            let Ok(mut guard) = fd.readable().await else {
                return tokio::time::sleep_until(deadline).await;
            };
            let mut count = [0u8; 8];
            match guard.try_io(|f| {
                nix::unistd::read(f.get_ref().0.as_fd(), &mut count).map_err(std::io::Error::from)
            }) {
                Ok(Ok(_)) => return,
                // Not expired yet (readiness left over from an earlier arming).
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Ok(Err(e)) => {
                    tracing::warn!("timerfd read: {e}");
                    return tokio::time::sleep_until(deadline).await;
                }
                Err(_would_block) => {}
            }
        }
    }
}

impl std::fmt::Debug for PreciseTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreciseTimer")
            .field("timerfd", &self.fd.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// How late a deadline fired.
    fn lateness(deadline: Instant) -> Duration {
        Instant::now().saturating_duration_since(deadline)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn fires_on_time_and_is_cancel_safe() {
        let t = PreciseTimer::new();
        assert!(t.fd.is_some());
        // A sleep cancelled before its deadline, whose expiry then passes unread: the
        // next sleep is not woken early by it.
        let soon = Instant::now() + Duration::from_millis(5);
        let _ = tokio::time::timeout(Duration::from_millis(1), t.sleep_until(Some(soon))).await;
        std::thread::sleep(Duration::from_millis(10));
        let later = Instant::now() + Duration::from_millis(30);
        t.sleep_until(Some(later)).await;
        assert!(Instant::now() >= later);
        // Precise when the machine runs the task at once (the best of 20 sleeps); never
        // early, and not absurdly late even on a loaded machine.
        let (mut best, mut worst) = (Duration::MAX, Duration::ZERO);
        for _ in 0..20 {
            let d = Instant::now() + Duration::from_micros(2500);
            t.sleep_until(Some(d)).await;
            assert!(Instant::now() >= d);
            best = best.min(lateness(d));
            worst = worst.max(lateness(d));
        }
        assert!(best < Duration::from_millis(1), "{best:?}");
        assert!(worst < Duration::from_millis(500), "{worst:?}");
        // A deadline in the past returns at once.
        t.sleep_until(Some(Instant::now() - Duration::from_millis(1)))
            .await;
    }
}
