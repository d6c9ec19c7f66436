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

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use ipvs::reconcile::{ApplyOptions, ApplyReport, Scope};
use ipvs::{AsyncIpvs, Table};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::StopMode;
use crate::announce::route::RouteTable;
use crate::config::{BgpSettings, IpvsSettings, OnStop, VirtualServer};
use crate::health::{Checkers, Health, ProbeOutcome, ProbeStats, ServerId, Target, Transition};
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
    /// The routing table of announced addresses could not be opened.
    #[error("cannot announce virtual IPs: {0}")]
    Routes(#[source] crate::announce::route::RouteError),
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

/// The published view of one real server (for `keepalive-d status` and metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServerStatus {
    /// Its address.
    pub address: SocketAddr,
    /// Weight in the configuration.
    pub weight: u32,
    /// Whether it has a health check (without one it is always up).
    pub checked: bool,
    /// Its health.
    pub state: ServerState,
    /// Drained by hand (`keepalive-d drain`): weight 0 until undrained.
    pub drained: bool,
    /// The last probe's outcome (result, latency, detail).
    pub last: Option<ProbeOutcome>,
    /// Every probe since its check started (kept across reloads that keep the check);
    /// `None` without a check.
    pub probes: Option<ProbeStats>,
    /// When its health last changed (since the daemon started or reloaded).
    pub since: Option<SystemTime>,
}

/// The published view of one virtual server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    /// Its name in the configuration.
    pub name: String,
    /// Its IPVS key.
    pub key: ipvs::ServiceKey,
    /// Quorum state.
    pub quorum: QuorumState,
    /// The sorry server, if configured.
    pub sorry_server: Option<SocketAddr>,
    /// Its real servers, in configuration order.
    pub real_servers: Vec<RealServerStatus>,
}

/// What the virtual-server program reports on [`LvsCommand::Status`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LvsStatus {
    /// Every configured virtual server.
    pub services: Vec<ServiceStatus>,
    /// Work done so far.
    pub counters: Counters,
    /// Destinations left by a reload, at weight 0 until their connections finish.
    pub draining: Vec<(ipvs::ServiceKey, SocketAddr)>,
    /// Addresses announced now (their routes are in the `bgp` table).
    pub announced: Vec<IpAddr>,
    /// The director is drained (`keepalive-d drain-director`): it announces nothing.
    pub director_drained: bool,
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Real servers whose health carried over.
    pub kept: usize,
    /// Real servers checked afresh (new, or their check changed).
    pub fresh: usize,
    /// IPVS writes the reload made.
    pub writes: usize,
}

/// A request to the running program ([`LvsHandle::commands`]); each carries its reply.
#[derive(Debug)]
pub enum LvsCommand {
    /// The current status.
    Status(oneshot::Sender<LvsStatus>),
    /// Drain (`true`) or undrain (`false`) the real server `addr` of the virtual server
    /// named `service`. The setting survives reloads (while the server stays configured).
    Drain {
        /// Virtual server name.
        service: String,
        /// Real server address.
        addr: SocketAddr,
        /// Drain or undrain.
        drain: bool,
        /// `Err` names what was not found.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Drain (`true`) or undrain (`false`) the whole director: withdraw every announced
    /// address (established connections go on being served), or announce again. The reply
    /// lists the addresses withdrawn (drain) or announced (undrain).
    DrainDirector {
        /// Drain or undrain.
        drain: bool,
        /// The addresses concerned, or why it failed.
        reply: oneshot::Sender<Result<Vec<IpAddr>, String>>,
    },
    /// Apply a new, already validated configuration.
    Reload {
        /// The new virtual servers.
        servers: Vec<VirtualServer>,
        /// The new `ipvs` settings.
        settings: IpvsSettings,
        /// What changed, or why it failed.
        reply: oneshot::Sender<Result<ReloadReport, String>>,
    },
}

/// The other end of a running program: send [`LvsCommand`]s.
#[derive(Debug, Clone)]
pub struct LvsHandle {
    /// Commands to the program.
    pub commands: mpsc::Sender<LvsCommand>,
}

impl LvsHandle {
    /// A handle and the receiver to give to [`run_with`].
    pub fn new() -> (Self, mpsc::Receiver<LvsCommand>) {
        let (tx, rx) = mpsc::channel(16);
        (Self { commands: tx }, rx)
    }

    /// The current status; `None` if the program has stopped.
    pub async fn status(&self) -> Option<LvsStatus> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(LvsCommand::Status(tx)).await.ok()?;
        rx.await.ok()
    }
}

/// How long a destination removed by a reload may keep connections before it is deleted
/// anyway.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);

/// A real server's health before a reload: state, since when, the check that found it and
/// its probe counts.
type KnownHealth = (
    ServerState,
    Option<SystemTime>,
    Option<crate::config::Check>,
    ProbeStats,
);

/// The running program's state.
struct Program {
    servers: Vec<VirtualServer>,
    settings: IpvsSettings,
    owned: BTreeSet<ipvs::ServiceKey>,
    /// Services a reload removed, deleted once their destinations have drained.
    retiring: BTreeSet<ipvs::ServiceKey>,
    /// Destinations a reload removed, at weight 0 until their connections finish.
    draining: Vec<(ipvs::ServiceKey, SocketAddr, Instant)>,
    /// Real servers drained by hand: (virtual server name, address).
    drained: BTreeSet<(String, SocketAddr)>,
    /// A reload happened: reconciles drain instead of deleting until what it removed has
    /// drained.
    drain_pending: bool,
    desired: DesiredTable,
    health: HealthTable,
    since: Vec<Vec<Option<SystemTime>>>,
    ipvs: AsyncIpvs,
    counters: Counters,
    checkers: Option<Checkers>,
    events: mpsc::UnboundedSender<Transition>,
    /// The routes of announced addresses (`None`: the program announces nothing).
    routes: Option<RouteTable>,
    /// Addresses whose routes are installed, as of the last sync.
    announced: BTreeSet<IpAddr>,
    /// `keepalive-d drain-director`: announce nothing.
    director_drained: bool,
}

impl Program {
    fn is_drained(&self, id: ServerId) -> bool {
        self.servers
            .get(id.service)
            .and_then(|vs| {
                let rs = vs.real_servers.get(id.server)?;
                Some(self.drained.contains(&(vs.name.clone(), rs.address)))
            })
            .unwrap_or(false)
    }

    fn options(&self) -> ApplyOptions {
        let mut scope = self.owned.clone();
        scope.extend(self.retiring.iter().copied());
        ApplyOptions {
            scope: Scope::Owned(scope),
            drain: self.drain_pending || !self.draining.is_empty() || !self.retiring.is_empty(),
            ..ApplyOptions::default()
        }
    }

    /// Computes the desired table and applies it; logs what happened. `why` names the
    /// trigger in logs. The number of writes sent.
    fn drained_matrix(&self) -> Vec<Vec<bool>> {
        self.servers
            .iter()
            .map(|vs| {
                vs.real_servers
                    .iter()
                    .map(|rs| self.drained.contains(&(vs.name.clone(), rs.address)))
                    .collect()
            })
            .collect()
    }

    /// The desired table computed with `desired` (the program's own, or a copy).
    fn compute(
        &self,
        desired: &mut DesiredTable,
    ) -> Result<(Table, Vec<desired::QuorumChange>), DesiredError> {
        let drained = self.drained_matrix();
        let health = &self.health;
        desired.compute_with(
            &self.servers,
            |id| health.get(id),
            |id| {
                drained
                    .get(id.service)
                    .and_then(|s| s.get(id.server))
                    .copied()
                    .unwrap_or(false)
            },
        )
    }

    async fn reconcile(&mut self, why: &'static str) -> usize {
        let mut desired = std::mem::replace(&mut self.desired, DesiredTable::new(0));
        let computed = self.compute(&mut desired);
        self.desired = desired;
        let (table, changes) = match computed {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("{e}");
                return 0;
            }
        };
        for change in changes {
            let Some(vs) = self.servers.get(change.service) else {
                continue;
            };
            match change.state {
                QuorumState::Lost => tracing::warn!(
                    service = vs.name.as_str(),
                    up = change.up,
                    "quorum lost{}",
                    if vs.sorry_server.is_some() {
                        ": the sorry server takes over"
                    } else {
                        ""
                    }
                ),
                QuorumState::Met => {
                    tracing::info!(service = vs.name.as_str(), up = change.up, "quorum met")
                }
                QuorumState::Unknown => {}
            }
        }
        let opts = self.options();
        self.counters.reconciles += 1;
        let sent = match self.ipvs.apply(&table, &opts).await {
            Ok(report) => self.account(&report, why),
            Err(e) => {
                tracing::error!(trigger = why, "IPVS reconcile failed: {e}");
                0
            }
        };
        // Announce after the table is written: a route never points at a service that is
        // not programmed yet.
        self.announce();
        sent
    }

    /// Makes the announced routes follow the quorum states (and the director drain).
    fn announce(&mut self) {
        let want = crate::announce::announced(
            &self.servers,
            |i| self.desired.quorum(i),
            self.director_drained,
        );
        self.sync_routes(&want);
    }

    /// Installs exactly the routes of `want`; logs what changed.
    fn sync_routes(&mut self, want: &BTreeSet<IpAddr>) {
        let Some(routes) = self.routes.as_mut() else {
            return;
        };
        let (report, result) = routes.sync(want);
        for addr in &report.added {
            tracing::info!(address = %addr, "announcing: route added");
            self.announced.insert(*addr);
        }
        for addr in &report.removed {
            tracing::warn!(address = %addr, "withdrawn: route removed");
            self.announced.remove(addr);
        }
        match result {
            Ok(()) => self.announced = want.clone(),
            Err(e) => {
                tracing::error!("announcing virtual IPs: {e} (retried at the next reconcile)")
            }
        }
    }

    fn account(&mut self, report: &ApplyReport, why: &'static str) -> usize {
        let sent = report.plan().len() - report.not_sent();
        let failed = report.failures().len();
        self.counters.writes += sent as u64;
        self.counters.failed_writes += failed as u64;
        if sent == 0 {
            tracing::debug!(trigger = why, "IPVS table already as desired");
            return 0;
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
        sent
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
        let changed = self.health.set(t.id, state);
        if changed {
            if let Some(slot) = self
                .since
                .get_mut(t.id.service)
                .and_then(|s| s.get_mut(t.id.server))
            {
                *slot = Some(SystemTime::now());
            }
        }
        changed
    }

    fn status(&self) -> LvsStatus {
        let mut last: BTreeMap<ServerId, ProbeOutcome> = BTreeMap::new();
        let mut probes: BTreeMap<ServerId, ProbeStats> = BTreeMap::new();
        if let Some(c) = &self.checkers {
            for (id, _, outcome) in c.snapshot() {
                if let Some(o) = outcome {
                    last.insert(id, o);
                }
            }
            probes.extend(c.probe_stats());
        }
        let services = self
            .servers
            .iter()
            .enumerate()
            .filter_map(|(si, vs)| {
                let key = desired::service_key(&vs.key).ok()?;
                let real_servers = vs
                    .real_servers
                    .iter()
                    .enumerate()
                    .map(|(ri, rs)| {
                        let id = ServerId {
                            service: si,
                            server: ri,
                        };
                        RealServerStatus {
                            address: rs.address,
                            weight: rs.weight,
                            checked: rs.check.is_some(),
                            state: if rs.check.is_some() {
                                self.health.get(id)
                            } else {
                                ServerState::Up
                            },
                            drained: self.is_drained(id),
                            last: last.get(&id).cloned(),
                            probes: probes.get(&id).copied(),
                            since: self
                                .since
                                .get(si)
                                .and_then(|s| s.get(ri))
                                .copied()
                                .flatten(),
                        }
                    })
                    .collect();
                Some(ServiceStatus {
                    name: vs.name.clone(),
                    key,
                    quorum: self.desired.quorum(si),
                    sorry_server: vs.sorry_server,
                    real_servers,
                })
            })
            .collect();
        LvsStatus {
            services,
            counters: self.counters,
            draining: self.draining.iter().map(|(k, a, _)| (*k, *a)).collect(),
            announced: self.announced.iter().copied().collect(),
            director_drained: self.director_drained,
        }
    }

    /// `keepalive-d drain-director` / `undrain-director`.
    fn drain_director(&mut self, drain: bool) -> Result<Vec<IpAddr>, String> {
        if self.routes.is_none() {
            return Err("this daemon announces no virtual IP (no `announce: bgp`)".to_owned());
        }
        let before = self.announced.clone();
        self.director_drained = drain;
        self.announce();
        let changed: Vec<IpAddr> = if drain {
            before.difference(&self.announced).copied().collect()
        } else {
            self.announced.difference(&before).copied().collect()
        };
        tracing::warn!(
            addresses = changed.len(),
            "{}",
            if drain {
                "director drained: every announcement withdrawn, established connections are still served"
            } else {
                "director undrained: announcing again"
            }
        );
        Ok(changed)
    }

    fn drain(&mut self, service: &str, addr: SocketAddr, drain: bool) -> Result<(), String> {
        let vs = self
            .servers
            .iter()
            .find(|vs| vs.name == service)
            .ok_or_else(|| format!("no virtual server named `{service}`"))?;
        if !vs.real_servers.iter().any(|rs| rs.address == addr) {
            return Err(format!(
                "virtual server `{service}` has no real server {addr}"
            ));
        }
        let entry = (service.to_owned(), addr);
        if drain {
            self.drained.insert(entry);
            tracing::info!(service, "real server {addr} drained by hand (weight 0)");
        } else {
            self.drained.remove(&entry);
            tracing::info!(service, "real server {addr} undrained");
        }
        Ok(())
    }

    /// Replaces the configuration: health carries over for real servers whose service
    /// key, address and check are unchanged; the others are checked afresh (a server the
    /// kernel already has is taken as up). Removed destinations and services are drained
    /// (weight 0) and deleted once their connections finish ([`DRAIN_TIMEOUT`] at most).
    async fn reload(
        &mut self,
        servers: Vec<VirtualServer>,
        settings: IpvsSettings,
    ) -> Result<ReloadReport, LvsError> {
        let owned = desired::owned_keys(&servers)?;
        let kernel = self
            .ipvs
            .table()
            .await
            .map_err(LvsError::Read)?
            .into_table();
        // Old probe counts by server, then old health by (service key, address, check).
        let old_stats: BTreeMap<ServerId, ProbeStats> = self
            .checkers
            .as_ref()
            .map(|c| c.probe_stats().into_iter().collect())
            .unwrap_or_default();
        let mut old: BTreeMap<(ipvs::ServiceKey, SocketAddr), KnownHealth> = BTreeMap::new();
        for (si, vs) in self.servers.iter().enumerate() {
            let Ok(key) = desired::service_key(&vs.key) else {
                continue;
            };
            for (ri, rs) in vs.real_servers.iter().enumerate() {
                let id = ServerId {
                    service: si,
                    server: ri,
                };
                let since = self
                    .since
                    .get(si)
                    .and_then(|s| s.get(ri))
                    .copied()
                    .flatten();
                old.insert(
                    (key, rs.address),
                    (
                        self.health.get(id),
                        since,
                        rs.check.clone(),
                        old_stats.get(&id).copied().unwrap_or_default(),
                    ),
                );
            }
        }
        let mut desired = DesiredTable::new(servers.len());
        let (mut health, mut targets) = adopt(&servers, &kernel, &mut desired)?;
        let mut since: Vec<Vec<Option<SystemTime>>> = servers
            .iter()
            .map(|vs| vec![None; vs.real_servers.len()])
            .collect();
        let mut report = ReloadReport::default();
        let mut stats = Vec::with_capacity(targets.len());
        for t in &mut targets {
            let known = servers
                .get(t.id.service)
                .and_then(|vs| desired::service_key(&vs.key).ok())
                .and_then(|key| old.get(&(key, t.addr)));
            match known {
                Some((state, when, Some(check), probes)) if *check == t.check => {
                    t.initial = match state {
                        ServerState::Up => Some(Health::Up),
                        ServerState::Down => Some(Health::Down),
                        ServerState::Pending => None,
                    };
                    health.set(t.id, *state);
                    if let Some(slot) = since
                        .get_mut(t.id.service)
                        .and_then(|s| s.get_mut(t.id.server))
                    {
                        *slot = *when;
                    }
                    stats.push(*probes);
                    report.kept += 1;
                }
                _ => {
                    stats.push(ProbeStats::default());
                    report.fresh += 1;
                }
            }
        }
        // Keep quorum states of services that stay.
        for (si, vs) in servers.iter().enumerate() {
            if let Some(oi) = self.servers.iter().position(|o| o.key == vs.key) {
                if desired.quorum(si) == QuorumState::Unknown {
                    desired.set_quorum(si, self.desired.quorum(oi));
                }
            }
        }
        if let Some(c) = self.checkers.take() {
            c.stop();
        }
        self.checkers = Some(Checkers::spawn_with_stats(
            targets,
            stats,
            self.events.clone(),
        )?);
        // Services no longer configured retire through a drain.
        for k in &self.owned {
            if !owned.contains(k) {
                self.retiring.insert(*k);
            }
        }
        self.retiring.retain(|k| !owned.contains(k));
        let names: BTreeSet<(String, SocketAddr)> = servers
            .iter()
            .flat_map(|vs| {
                vs.real_servers
                    .iter()
                    .map(|rs| (vs.name.clone(), rs.address))
            })
            .collect();
        self.drained.retain(|d| names.contains(d));
        self.servers = servers;
        self.settings = settings;
        self.owned = owned;
        self.desired = desired;
        self.health = health;
        self.since = since;
        self.drain_pending = true;
        // Drain what the new configuration removes, then see whether it already can go.
        report.writes = self.reconcile("reload").await;
        self.refresh_draining().await;
        Ok(report)
    }

    /// Reads the kernel's counters for the draining destinations; when none has active
    /// connections left (or the drain timeout passed), stops draining so that the next
    /// reconcile deletes them.
    async fn refresh_draining(&mut self) {
        let opts = self.options();
        if !opts.drain {
            return;
        }
        let Ok(observed) = self.ipvs.table().await else {
            return;
        };
        // Which destinations of the retiring services and removed servers are still in
        // the kernel at weight 0.
        let Ok((table, _)) = self.compute(&mut self.desired.clone()) else {
            return;
        };
        let plan = ipvs::reconcile::plan(observed.table(), &table, &opts);
        let now = Instant::now();
        let mut draining = Vec::new();
        for (key, addr) in plan.draining() {
            let since = self
                .draining
                .iter()
                .find(|(k, a, _)| k == key && a == addr)
                .map_or(now, |(_, _, t)| *t);
            draining.push((*key, *addr, since));
        }
        let busy = draining.iter().any(|(key, addr, since)| {
            let active = observed
                .destination_stats(key, *addr)
                .map_or(0, |d| d.active_conns);
            active > 0 && now.duration_since(*since) < DRAIN_TIMEOUT
        });
        if busy {
            self.draining = draining;
            return;
        }
        if !draining.is_empty() {
            tracing::info!(
                destinations = draining.len(),
                "removed destinations have drained; deleting them"
            );
        }
        self.draining.clear();
        self.retiring.clear();
        self.drain_pending = false;
        self.reconcile("drained").await;
    }
}

/// Runs the virtual servers in the current network namespace until `stop` completes:
/// adopts the kernel table, starts the health checks, keeps the table equal to "configured
/// servers that are healthy", and on stop removes the configured services (unless
/// `settings.on_stop` is [`OnStop::Keep`], or `stop` completes with
/// [`StopMode::Handover`]). Returns the counters.
pub async fn run(
    servers: Vec<VirtualServer>,
    settings: IpvsSettings,
    stop: impl Future<Output = ()>,
) -> Result<Counters, LvsError> {
    let (_handle, commands) = LvsHandle::new();
    run_with(servers, settings, commands, stop).await
}

/// [`run`], also answering [`LvsCommand`]s (status, drain, reload) from `commands`.
pub async fn run_with(
    servers: Vec<VirtualServer>,
    settings: IpvsSettings,
    commands: mpsc::Receiver<LvsCommand>,
    stop: impl Future<Output = impl Into<StopMode>>,
) -> Result<Counters, LvsError> {
    run_announcing(servers, settings, None, commands, stop).await
}

/// [`run_with`], also announcing the virtual IPs of `announce: bgp` virtual servers in
/// `bgp`'s routing table while they are in quorum ([`crate::announce`]). With `Some`,
/// routes of the table's protocol that no virtual server wants (left by an earlier run)
/// are removed; every route is withdrawn on stop, before the services are removed (not
/// on a hand-over, [`StopMode::Handover`]).
pub async fn run_announcing(
    servers: Vec<VirtualServer>,
    settings: IpvsSettings,
    bgp: Option<BgpSettings>,
    mut commands: mpsc::Receiver<LvsCommand>,
    stop: impl Future<Output = impl Into<StopMode>>,
) -> Result<Counters, LvsError> {
    let routes = bgp
        .map(RouteTable::open)
        .transpose()
        .map_err(LvsError::Routes)?;
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
    let checkers = Checkers::spawn(targets, tx.clone())?;
    let since = servers
        .iter()
        .map(|vs| vec![None; vs.real_servers.len()])
        .collect();
    let mut program = Program {
        servers,
        settings,
        owned,
        retiring: BTreeSet::new(),
        draining: Vec::new(),
        drained: BTreeSet::new(),
        drain_pending: false,
        desired,
        health,
        since,
        ipvs,
        counters: Counters::default(),
        checkers: Some(checkers),
        events: tx,
        routes,
        announced: BTreeSet::new(),
        director_drained: false,
    };
    program.reconcile("start").await;

    let new_tick = |every: Duration| {
        let mut tick = tokio::time::interval_at(Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick
    };
    let mut tick = new_tick(program.settings.reconcile_interval);
    let mut flush_at: Option<Instant> = None;
    let far = Duration::from_secs(86_400 * 365);
    let mut commands_open = true;
    tokio::pin!(stop);
    let mode = loop {
        let deadline = flush_at.unwrap_or_else(|| Instant::now() + far);
        tokio::select! {
            m = &mut stop => break m.into(),
            t = rx.recv() => match t {
                Some(t) => {
                    if program.on_transition(&t) && flush_at.is_none() {
                        flush_at = Some(Instant::now() + program.settings.coalesce);
                    }
                }
                None => {
                    tracing::error!("the health checks stopped unexpectedly");
                    break StopMode::Resign;
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
                program.refresh_draining().await;
            }
            cmd = commands.recv(), if commands_open => match cmd {
                None => commands_open = false,
                Some(LvsCommand::Status(reply)) => {
                    let _ = reply.send(program.status());
                }
                Some(LvsCommand::Drain { service, addr, drain, reply }) => {
                    let r = program.drain(&service, addr, drain);
                    if r.is_ok() {
                        program.reconcile("drain").await;
                    }
                    let _ = reply.send(r);
                }
                Some(LvsCommand::DrainDirector { drain, reply }) => {
                    let r = program.drain_director(drain);
                    let _ = reply.send(r);
                }
                Some(LvsCommand::Reload { servers, settings, reply }) => {
                    let interval = program.settings.reconcile_interval;
                    let r = program.reload(servers, settings).await.map_err(|e| e.to_string());
                    match &r {
                        Ok(rep) => tracing::info!(
                            kept = rep.kept,
                            fresh = rep.fresh,
                            writes = rep.writes,
                            "virtual servers reloaded"
                        ),
                        Err(e) => tracing::error!("virtual servers reload failed: {e}"),
                    }
                    if r.is_ok()
                        && program.routes.is_none()
                        && crate::announce::any_announced(&program.servers)
                    {
                        tracing::warn!(
                            "`announce` added by a reload to a daemon started without it: \
                             restart to announce"
                        );
                    }
                    if program.settings.reconcile_interval != interval {
                        tick = new_tick(program.settings.reconcile_interval);
                    }
                    let _ = reply.send(r);
                }
            },
        }
    };
    if let Some(c) = program.checkers.take() {
        c.stop();
    }
    let mut counters = program.counters;
    let on_stop = match mode {
        StopMode::Handover => OnStop::Keep,
        StopMode::Resign => program.settings.on_stop,
    };
    if mode == StopMode::Resign {
        // Withdraw first: the peers stop sending before the services go.
        program.sync_routes(&BTreeSet::new());
    }
    match on_stop {
        OnStop::Keep => tracing::info!("leaving the IPVS table as it is (on_stop: keep)"),
        OnStop::Remove => {
            let mut scope = program.owned.clone();
            scope.extend(program.retiring.iter().copied());
            let opts = ApplyOptions {
                scope: Scope::Owned(scope),
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
