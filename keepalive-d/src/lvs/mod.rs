//! The virtual-server program: health checks in, one batched IPVS reconcile out.
//!
//! ```text
//!   config.virtual_servers ──┐
//!                            ├─► desired::DesiredTable ──► ipvs::AsyncIpvs::apply ──► kernel
//!   health::Checkers ──────► │     (pure: health, quorum,     (one dump, a diff, the
//!     (Transition events)    │      sorry server, inhibit)     minimal batched writes)
//!   reconcile timer ─────────┘
//! ```
//!
//! - **Adopt on start.** The kernel table is read first. A real server already in it is
//!   taken as up (it needs `fall` failed probes to leave), one that is absent is pending
//!   (its first probe decides), and a service served by its sorry server starts with its
//!   quorum lost. The first apply then writes nothing for entries that already match.
//! - **Coalescing.** Health changes arriving within `ipvs.coalesce` of the first one are
//!   written as one batch.
//! - **Drift repair.** Every `ipvs.reconcile_interval` the table is read and repaired:
//!   a service deleted or flushed by hand comes back.
//! - **Ownership.** Only the configured services are touched (`Scope::Owned`); on stop
//!   they are deleted, unless `ipvs.on_stop: keep`.
//! - A failed write is logged and retried at the next reconcile; the loop never stops on
//!   a kernel error.

pub mod desired;

use std::collections::BTreeSet;
use std::time::Duration;

use ipvs::reconcile::{ApplyOptions, ApplyReport, Scope};
use ipvs::{AsyncIpvs, Table};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::{IpvsSettings, OnStop, VirtualServer};
use crate::health::{Checkers, Health, ServerId, Target, Transition};
use desired::{DesiredError, DesiredTable, QuorumState, ServerState};

/// Why the virtual-server program could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum LvsError {
    /// The IPVS netlink family could not be opened (no IPVS in this kernel, no
    /// CAP_NET_ADMIN, ...).
    #[error("cannot open IPVS: {0}")]
    Open(#[source] ipvs::ApiError),
    /// The kernel table could not be read at start.
    #[error("cannot read the IPVS table: {0}")]
    Read(#[source] ipvs::ApiError),
    /// A virtual server cannot be expressed as an IPVS service.
    #[error(transparent)]
    Desired(#[from] DesiredError),
    /// The health checks could not start.
    #[error("cannot start the health checks: {0}")]
    Health(#[from] crate::health::HealthError),
    /// Removing the daemon's services on stop failed.
    #[error("cannot remove the virtual servers on stop: {0}")]
    Remove(#[source] ipvs::ApiError),
}

/// Counters of what the program did (for logs, status and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Reconciles run (each one dump and at most one write batch).
    pub reconciles: u64,
    /// Write operations sent to the kernel.
    pub writes: u64,
    /// Write operations the kernel refused.
    pub failed_writes: u64,
    /// Periodic reconciles that found and repaired drift.
    pub drift_repairs: u64,
}

/// Health of every real server, indexed `[service][server]`.
#[derive(Debug, Clone)]
struct HealthTable(Vec<Vec<ServerState>>);

impl HealthTable {
    fn get(&self, id: ServerId) -> ServerState {
        self.0
            .get(id.service)
            .and_then(|s| s.get(id.server))
            .copied()
            .unwrap_or(ServerState::Pending)
    }

    fn set(&mut self, id: ServerId, state: ServerState) -> bool {
        match self
            .0
            .get_mut(id.service)
            .and_then(|s| s.get_mut(id.server))
        {
            Some(slot) if *slot != state => {
                *slot = state;
                true
            }
            _ => false,
        }
    }
}

/// What the program starts from: the health of each real server and quorum states taken
/// from the kernel's current table.
fn adopt(
    servers: &[VirtualServer],
    kernel: &Table,
    desired: &mut DesiredTable,
) -> Result<(HealthTable, Vec<Target>), DesiredError> {
    let mut health = Vec::with_capacity(servers.len());
    let mut targets = Vec::new();
    for (si, vs) in servers.iter().enumerate() {
        let key =
            desired::service_key(&vs.key).map_err(|source| DesiredError::new(&vs.name, source))?;
        let in_kernel = kernel.service(&key);
        if let (Some(svc), Some(sorry)) = (in_kernel, vs.sorry_server) {
            let sorry_is_real = vs.real_servers.iter().any(|r| r.address == sorry);
            if !sorry_is_real && svc.destination(sorry).is_some() {
                desired.set_quorum(si, QuorumState::Lost);
            }
        }
        let mut states = Vec::with_capacity(vs.real_servers.len());
        for (ri, rs) in vs.real_servers.iter().enumerate() {
            let id = ServerId {
                service: si,
                server: ri,
            };
            let Some(check) = &rs.check else {
                states.push(ServerState::Up);
                continue;
            };
            let initial = match in_kernel.and_then(|s| s.destination(rs.address)) {
                None => None,
                Some(d) if d.weight() == 0 && rs.weight > 0 && vs.inhibit_on_failure => {
                    Some(Health::Down)
                }
                Some(_) => Some(Health::Up),
            };
            states.push(match initial {
                None => ServerState::Pending,
                Some(Health::Up) => ServerState::Up,
                Some(Health::Down) => ServerState::Down,
            });
            targets.push(Target {
                id,
                addr: rs.address,
                check: check.clone(),
                initial,
            });
        }
        health.push(states);
    }
    Ok((HealthTable(health), targets))
}

/// The running program's state.
struct Program {
    servers: Vec<VirtualServer>,
    owned: BTreeSet<ipvs::ServiceKey>,
    desired: DesiredTable,
    health: HealthTable,
    ipvs: AsyncIpvs,
    counters: Counters,
}

impl Program {
    /// Computes the desired table and applies it; logs what happened. `why` names the
    /// trigger in logs.
    async fn reconcile(&mut self, why: &'static str) {
        let health = &self.health;
        let (table, changes) = match self.desired.compute(&self.servers, |id| health.get(id)) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("{e}");
                return;
            }
        };
        for change in changes {
            let name = self
                .servers
                .get(change.service)
                .map_or("?", |vs| vs.name.as_str());
            match change.state {
                QuorumState::Lost => tracing::warn!(
                    service = name,
                    up = change.up,
                    "quorum lost{}",
                    if self.servers[change.service].sorry_server.is_some() {
                        ": the sorry server takes over"
                    } else {
                        ""
                    }
                ),
                QuorumState::Met => {
                    tracing::info!(service = name, up = change.up, "quorum met")
                }
                QuorumState::Unknown => {}
            }
        }
        let opts = ApplyOptions {
            scope: Scope::Owned(self.owned.clone()),
            ..ApplyOptions::default()
        };
        self.counters.reconciles += 1;
        match self.ipvs.apply(&table, &opts).await {
            Ok(report) => self.account(&report, why),
            Err(e) => tracing::error!(trigger = why, "IPVS reconcile failed: {e}"),
        }
    }

    fn account(&mut self, report: &ApplyReport, why: &'static str) {
        let sent = report.plan().len() - report.not_sent();
        let failed = report.failures().len();
        self.counters.writes += sent as u64;
        self.counters.failed_writes += failed as u64;
        if sent == 0 {
            tracing::debug!(trigger = why, "IPVS table already as desired");
            return;
        }
        if why == "periodic" {
            self.counters.drift_repairs += 1;
            tracing::warn!(
                writes = sent,
                "the IPVS table had drifted from the configuration; repaired"
            );
        }
        for op in report.plan().ops() {
            tracing::debug!(trigger = why, "ipvs: {op}");
        }
        for f in report.failures() {
            tracing::warn!(trigger = why, "IPVS write failed: {} ({})", f.op, f.error);
        }
        tracing::info!(
            trigger = why,
            writes = sent,
            failed,
            "IPVS table updated in one batch"
        );
    }

    fn on_transition(&mut self, t: &Transition) -> bool {
        let state = match t.health {
            Health::Up => ServerState::Up,
            Health::Down => ServerState::Down,
        };
        let (name, addr) = self
            .servers
            .get(t.id.service)
            .and_then(|vs| {
                vs.real_servers
                    .get(t.id.server)
                    .map(|rs| (vs.name.as_str(), rs.address))
            })
            .map_or(("?", None), |(n, a)| (n, Some(a)));
        let addr = addr.map_or_else(|| "?".to_owned(), |a| a.to_string());
        match t.health {
            Health::Up => tracing::info!(
                service = name,
                "real server {addr} is up ({}, {:?})",
                t.outcome.detail,
                t.outcome.latency
            ),
            Health::Down => tracing::warn!(
                service = name,
                "real server {addr} is down ({})",
                t.outcome.detail
            ),
        }
        self.health.set(t.id, state)
    }
}

/// Runs the virtual servers in the current network namespace until `stop` completes:
/// adopts the kernel table, starts the health checks, keeps the table equal to "configured
/// servers that are healthy", and on stop removes the configured services (unless
/// `settings.on_stop` is [`OnStop::Keep`]). Returns the counters.
pub async fn run(
    servers: Vec<VirtualServer>,
    settings: IpvsSettings,
    stop: impl Future<Output = ()>,
) -> Result<Counters, LvsError> {
    let mut ipvs = AsyncIpvs::open().map_err(LvsError::Open)?;
    let owned = desired::owned_keys(&servers)?;
    let kernel = ipvs.table().await.map_err(LvsError::Read)?.into_table();
    let mut desired = DesiredTable::new(servers.len());
    let (health, targets) = adopt(&servers, &kernel, &mut desired)?;
    let adopted = servers
        .iter()
        .filter(|vs| desired::service_key(&vs.key).is_ok_and(|k| kernel.service(&k).is_some()))
        .count();
    tracing::info!(
        virtual_servers = servers.len(),
        adopted,
        checks = targets.len(),
        "programming IPVS"
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    let checkers = Checkers::spawn(targets, tx)?;
    let mut program = Program {
        servers,
        owned,
        desired,
        health,
        ipvs,
        counters: Counters::default(),
    };
    program.reconcile("start").await;

    let mut tick = tokio::time::interval_at(
        Instant::now() + settings.reconcile_interval,
        settings.reconcile_interval,
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut flush_at: Option<Instant> = None;
    let far = Duration::from_secs(86_400 * 365);
    tokio::pin!(stop);
    loop {
        let deadline = flush_at.unwrap_or_else(|| Instant::now() + far);
        tokio::select! {
            () = &mut stop => break,
            t = rx.recv() => match t {
                Some(t) => {
                    if program.on_transition(&t) && flush_at.is_none() {
                        flush_at = Some(Instant::now() + settings.coalesce);
                    }
                }
                None => {
                    tracing::error!("the health checks stopped unexpectedly");
                    break;
                }
            },
            () = tokio::time::sleep_until(deadline), if flush_at.is_some() => {
                // Everything that arrived meanwhile goes into this batch too.
                while let Ok(t) = rx.try_recv() {
                    program.on_transition(&t);
                }
                flush_at = None;
                program.reconcile("health").await;
            }
            _ = tick.tick() => {
                let mut changed = flush_at.take().is_some();
                while let Ok(t) = rx.try_recv() {
                    changed |= program.on_transition(&t);
                }
                program.reconcile(if changed { "health" } else { "periodic" }).await;
            }
        }
    }
    checkers.stop();
    let mut counters = program.counters;
    match settings.on_stop {
        OnStop::Keep => tracing::info!("leaving the IPVS table as it is (on_stop: keep)"),
        OnStop::Remove => {
            let opts = ApplyOptions {
                scope: Scope::Owned(program.owned.clone()),
                ..ApplyOptions::default()
            };
            let report = program
                .ipvs
                .apply(&Table::new(), &opts)
                .await
                .map_err(LvsError::Remove)?;
            let removed = report.plan().len() - report.not_sent();
            counters.writes += removed as u64;
            for f in report.failures() {
                tracing::warn!("IPVS write failed on stop: {} ({})", f.op, f.error);
            }
            tracing::info!(writes = removed, "removed the configured virtual servers");
        }
    }
    Ok(counters)
}

#[cfg(test)]
mod tests;
