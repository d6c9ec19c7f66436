//! The I/O side of the engine: one task per target that feeds its probe results to the
//! sans-IO [`HealthState`] on the [`Schedule`].

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::probe::{AnyProbe, Outcome, Probe, ProbeFactory};
use super::{
    Health, HealthError, HealthState, ProbeOutcome, Schedule, ServerId, Target, Transition,
};

/// What the tasks publish for [`Checkers::snapshot`].
struct Slot {
    id: ServerId,
    state: Mutex<SlotState>,
}

struct SlotState {
    health: Option<Health>,
    last: Option<Outcome>,
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
        let slots: Arc<[Slot]> = targets
            .iter()
            .map(|t| Slot {
                id: t.id,
                state: Mutex::new(SlotState {
                    health: t.initial,
                    last: None,
                }),
            })
            .collect();
        let start = Instant::now();
        let count = targets.len();
        let mut tasks = JoinSet::new();
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
                AnyProbe::Tcp(p) => tasks.spawn_on(task.run(p), &runtime),
                AnyProbe::Http(p) => tasks.spawn_on(task.run(p), &runtime),
                AnyProbe::Dns(p) => tasks.spawn_on(task.run(p), &runtime),
                AnyProbe::Exec(p) => tasks.spawn_on(task.run(p), &runtime),
            };
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

/// One target's task: its schedule, its state and where it reports.
struct Task {
    id: ServerId,
    addr: SocketAddr,
    index: usize,
    slots: Arc<[Slot]>,
    events: UnboundedSender<Transition>,
    start: Instant,
    schedule: Schedule,
    state: HealthState,
    timeout: Duration,
}

impl Task {
    async fn run<P: Probe>(mut self, mut probe: P) {
        loop {
            match self.start.checked_add(self.schedule.due()) {
                Some(due) => tokio::time::sleep_until(due).await,
                None => std::future::pending().await,
            }
            let began = Instant::now();
            self.schedule
                .started(began.saturating_duration_since(self.start));
            let result = probe.probe(self.timeout).await;
            let outcome = Outcome {
                latency: began.elapsed(),
                result,
            };
            self.record(outcome);
        }
    }

    /// Feeds the state machine, publishes the outcome, reports a transition.
    fn record(&mut self, outcome: Outcome) {
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
            state.last = Some(outcome);
        }
        if let Some(t) = transition {
            tracing::info!(
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
        AnyProbe::Tcp(mut p) => p.probe(timeout).await,
        AnyProbe::Http(mut p) => p.probe(timeout).await,
        AnyProbe::Dns(mut p) => p.probe(timeout).await,
        AnyProbe::Exec(mut p) => p.probe(timeout).await,
    };
    Ok(Outcome {
        latency: began.elapsed(),
        result,
    }
    .to_public())
}
