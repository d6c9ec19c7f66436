//! The I/O side of the engine: one task per target that feeds its probe results to the
//! sans-IO [`HealthState`] on the [`Schedule`].

use std::collections::BTreeSet;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::probe::{AnyProbe, Outcome, Probe, ProbeFactory, probe_bounded, timed_out};
use super::tcp_batch::TcpBatch;
use super::{
    Health, HealthError, HealthState, ProbeOutcome, ProbeStats, Schedule, ServerId, Target,
    Transition,
};

/// Where a schedule beyond what `Instant` can hold ends up (about 30 years, as tokio does).
const FAR_FUTURE: Duration = Duration::from_secs(86400 * 365 * 30);

/// What the tasks publish for [`Checkers::snapshot`].
struct Slot {
    id: ServerId,
    state: Mutex<SlotState>,
}

struct SlotState {
    health: Option<Health>,
    last: Option<Outcome>,
    /// Every probe's result and latency, counted under the same lock as `last`.
    probes: ProbeStats,
}

/// The running checks; dropping it (or calling [`stop`](Self::stop)) aborts every probe
/// task, and with it any probe in flight (an `exec` probe's process group is killed).
pub struct Checkers {
    tasks: JoinSet<()>,
    slots: Arc<[Slot]>,
}

impl std::fmt::Debug for Checkers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkers")
            .field("targets", &self.slots.len())
            .finish()
    }
}

impl Checkers {
    /// Spawns one task per target on the current tokio runtime (which needs its time and
    /// I/O drivers enabled). Transitions are sent on `events`; the first probes of the
    /// targets are spread over their interval (see [`Schedule`]).
    ///
    /// Fails, before anything is spawned, for what can be known without probing: no
    /// runtime, a server listed twice, a zero interval, no port, an https `ca` file that
    /// cannot be read or holds no certificate, a `host` that cannot be a TLS server name.
    pub fn spawn(
        targets: Vec<Target>,
        events: UnboundedSender<Transition>,
    ) -> Result<Checkers, HealthError> {
        Self::spawn_with_stats(targets, Vec::new(), events)
    }

    /// [`spawn`](Self::spawn), each target's [`ProbeStats`] starting from the entry at the
    /// same index of `stats` (from zero past its end): a reload carries over the counts of
    /// the servers whose check it keeps.
    pub fn spawn_with_stats(
        targets: Vec<Target>,
        stats: Vec<ProbeStats>,
        events: UnboundedSender<Transition>,
    ) -> Result<Checkers, HealthError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| HealthError::NoRuntime)?;
        let mut seen = BTreeSet::new();
        let mut factory = ProbeFactory::new();
        let mut probes = Vec::with_capacity(targets.len());
        for target in &targets {
            if !seen.insert(target.id) {
                return Err(HealthError::DuplicateServer { id: target.id });
            }
            if target.check.interval.is_zero() {
                return Err(HealthError::ZeroInterval { id: target.id });
            }
            probes.push(factory.build(target)?);
        }
        drop(factory);
        let mut stats = stats.into_iter();
        let slots: Arc<[Slot]> = targets
            .iter()
            .map(|t| Slot {
                id: t.id,
                state: Mutex::new(SlotState {
                    health: t.initial,
                    last: None,
                    probes: stats.next().unwrap_or_default(),
                }),
            })
            .collect();
        let start = Instant::now();
        let count = targets.len();
        let mut tasks = JoinSet::new();
        let mut tcp = Vec::new();
        for (index, (target, probe)) in targets.into_iter().zip(probes).enumerate() {
            let check = &target.check;
            let task = Task {
                id: target.id,
                addr: target.addr,
                index,
                slots: slots.clone(),
                events: events.clone(),
                start,
                schedule: Schedule::new(check.interval, index, count),
                state: HealthState::new(target.initial, check.rise, check.fall),
                timeout: check.timeout,
            };
            match probe {
                AnyProbe::Tcp(p) => {
                    tcp.push((task, p));
                    continue;
                }
                AnyProbe::Http(p) => tasks.spawn_on(task.run(p), &runtime),
                AnyProbe::Dns(p) => tasks.spawn_on(task.run(p), &runtime),
                AnyProbe::Exec(p) => tasks.spawn_on(task.run(p), &runtime),
            };
        }
        if !tcp.is_empty() {
            // All TCP checks on one task (see `tcp_batch`).
            let batch = {
                let _guard = runtime.enter();
                TcpBatch::new(tcp).map_err(|source| HealthError::EventQueue { source })?
            };
            tasks.spawn_on(batch.run(), &runtime);
        }
        Ok(Checkers { tasks, slots })
    }

    /// The current health and latest probe outcome of each server, in the order of the
    /// targets given to [`spawn`](Self::spawn). The health is the initial one until the
    /// first transition; the outcome is `None` until the first probe ends. Probes are not
    /// blocked (each server's entry is locked for a copy only).
    pub fn snapshot(&self) -> Vec<(ServerId, Option<Health>, Option<ProbeOutcome>)> {
        self.slots
            .iter()
            .map(|slot| {
                let (health, last) = {
                    let state = slot.state.lock().unwrap_or_else(PoisonError::into_inner);
                    (state.health, state.last.clone())
                };
                (slot.id, health, last.as_ref().map(Outcome::to_public))
            })
            .collect()
    }

    /// Every server's probe counts and latency histogram since its check started, in the
    /// order of the targets (each server's entry is locked for a copy only).
    pub fn probe_stats(&self) -> Vec<(ServerId, ProbeStats)> {
        self.slots
            .iter()
            .map(|slot| {
                let probes = slot
                    .state
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .probes;
                (slot.id, probes)
            })
            .collect()
    }

    /// The number of servers checked.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no server is checked.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Aborts every probe task (the same as dropping).
    pub fn stop(mut self) {
        self.tasks.abort_all();
    }
}

/// One target's task: its schedule, its state and where it reports (the TCP checks'
/// batch keeps one per server too, and drives it the same way).
pub(super) struct Task {
    id: ServerId,
    addr: SocketAddr,
    index: usize,
    slots: Arc<[Slot]>,
    events: UnboundedSender<Transition>,
    pub(super) start: Instant,
    pub(super) schedule: Schedule,
    state: HealthState,
    pub(super) timeout: Duration,
}

impl Task {
    /// The task: forever, sleep until the next probe is due, probe, record.
    ///
    /// Written as a plain function returning an `async move` block that uses its
    /// captures in place: an `async fn` would keep a second copy of its arguments in the
    /// future, and the future is what a task holds for its whole life. One timer serves
    /// both the schedule and the probe's timeout.
    // `async fn` measured 216 to 408 bytes more per task (see `tests::task_sizes`).
    #[allow(clippy::manual_async_fn)]
    fn run<P: Probe>(mut self, mut probe: P) -> impl Future<Output = ()> + Send {
        async move {
            let timer = tokio::time::sleep_until(self.at(self.schedule.due()));
            let mut timer = pin!(timer);
            loop {
                timer.as_mut().await;
                let began = Instant::now();
                self.schedule
                    .started(began.saturating_duration_since(self.start));
                let result = if P::OWN_TIMEOUT {
                    probe.probe(self.timeout).await
                } else {
                    timer.as_mut().reset(began + self.timeout);
                    let attempt = probe.probe(self.timeout);
                    let mut attempt = pin!(attempt);
                    poll_fn(|cx| {
                        if let Poll::Ready(result) = attempt.as_mut().poll(cx) {
                            return Poll::Ready(result);
                        }
                        match timer.as_mut().poll(cx) {
                            Poll::Ready(()) => Poll::Ready(Err(timed_out(self.timeout))),
                            Poll::Pending => Poll::Pending,
                        }
                    })
                    .await
                };
                let outcome = Outcome {
                    latency: began.elapsed(),
                    result,
                };
                timer.as_mut().reset(self.at(self.schedule.due()));
                self.record(outcome);
            }
        }
    }

    /// The instant `offset` after the start (far in the future if that overflows).
    pub(super) fn at(&self, offset: Duration) -> Instant {
        self.start
            .checked_add(offset)
            .unwrap_or_else(|| self.start + FAR_FUTURE)
    }

    /// Feeds the state machine, publishes and counts the outcome, reports a transition.
    pub(super) fn record(&mut self, outcome: Outcome) {
        if let Err(why) = &outcome.result {
            tracing::debug!(server = %self.id, addr = %self.addr, "health check failed: {why}");
        }
        let change = self.state.record(outcome.ok());
        let transition = change.map(|health| Transition {
            id: self.id,
            health,
            outcome: outcome.to_public(),
        });
        if let Some(slot) = self.slots.get(self.index) {
            let mut state = slot.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.health = self.state.health();
            state.probes.observe(outcome.ok(), outcome.latency);
            state.last = Some(outcome);
        }
        if let Some(t) = transition {
            // Debug only: the consumer of the transitions logs them with its own context.
            tracing::debug!(
                server = %self.id,
                addr = %self.addr,
                "real server is now {}: {}",
                match t.health {
                    Health::Up => "up",
                    Health::Down => "down",
                },
                t.outcome.detail
            );
            // Nobody listening any more: keep probing for the snapshot.
            let _ = self.events.send(t);
        }
    }
}

/// Runs one probe of `target` now and returns its outcome (for a one-off check from the
/// command line, or tests). Fails for the same reasons as [`Checkers::spawn`].
pub async fn probe_once(target: &Target) -> Result<ProbeOutcome, HealthError> {
    let probe = ProbeFactory::new().build(target)?;
    let timeout = target.check.timeout;
    let began = Instant::now();
    let result = match probe {
        AnyProbe::Tcp(mut p) => probe_bounded(&mut p, timeout).await,
        AnyProbe::Http(mut p) => probe_bounded(&mut p, timeout).await,
        AnyProbe::Dns(mut p) => probe_bounded(&mut p, timeout).await,
        AnyProbe::Exec(mut p) => probe_bounded(&mut p, timeout).await,
    };
    Ok(Outcome {
        latency: began.elapsed(),
        result,
    }
    .to_public())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        Check, CheckKind, Command, DnsCheck, DnsRecordType, DnsTransport, HttpCheck, TcpCheck,
    };

    fn target(kind: CheckKind) -> Target {
        Target {
            id: ServerId {
                service: 0,
                server: 0,
            },
            addr: "127.0.0.1:80".parse().unwrap(),
            check: Check {
                kind,
                interval: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
                rise: 1,
                fall: 1,
                port: None,
                source: None,
            },
            initial: None,
        }
    }

    /// The memory a target's task holds for its whole life is its future: keep each kind's
    /// small (2,000 targets are expected), and a TCP task no bigger than its probe needs.
    #[test]
    fn task_sizes() {
        let http = HttpCheck {
            path: "/".to_owned(),
            expect_status: vec![200],
            expect_body: None,
            host: None,
            ca: None,
        };
        let kinds = [
            ("tcp", CheckKind::Tcp(TcpCheck::default())),
            ("http", CheckKind::Http(http.clone())),
            ("https", CheckKind::Https(http)),
            (
                "dns",
                CheckKind::Dns(DnsCheck {
                    query: "example.test".to_owned(),
                    record: DnsRecordType::A,
                    transport: DnsTransport::Both,
                }),
            ),
            (
                "exec",
                CheckKind::Exec(Command {
                    program: "/bin/true".to_owned(),
                    args: Vec::new(),
                }),
            ),
        ];
        let (events, _rx) = tokio::sync::mpsc::unbounded_channel();
        let slots: Arc<[Slot]> = Arc::from(Vec::new());
        let mut factory = ProbeFactory::new();
        let mut sizes = Vec::new();
        for (name, kind) in kinds {
            let t = target(kind);
            let task = Task {
                id: t.id,
                addr: t.addr,
                index: 0,
                slots: slots.clone(),
                events: events.clone(),
                start: Instant::now(),
                schedule: Schedule::new(t.check.interval, 0, 1),
                state: HealthState::new(None, 1, 1),
                timeout: t.check.timeout,
            };
            let size = match factory.build(&t).unwrap() {
                AnyProbe::Tcp(p) => std::mem::size_of_val(&task.run(p)),
                AnyProbe::Http(p) => std::mem::size_of_val(&task.run(p)),
                AnyProbe::Dns(p) => std::mem::size_of_val(&task.run(p)),
                AnyProbe::Exec(p) => std::mem::size_of_val(&task.run(p)),
            };
            sizes.push((name, size));
        }
        eprintln!("task future sizes (bytes): {sizes:?}");
        // Measured with Rust 1.95 and tokio 1.54: tcp 600, http(s) 576, dns 400, exec 384.
        for (name, size) in &sizes {
            assert!(*size <= 1024, "{name} task: {size} bytes");
        }
    }
}
