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

use ipvs::reconcile::{ApplyOptions, ApplyReport, Op, Scope, normalize_dest_ports};
use ipvs::{AsyncIpvs, Observed, Table};
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
type KnownHealth<'a> = (
    ServerState,
    Option<SystemTime>,
    Option<&'a crate::config::Check>,
    ProbeStats,
);

/// The kernel's table for some services (those read), with the connection entries of
/// each destination: what a reload or a drain check plans from.
#[derive(Debug, Default)]
struct KernelView {
    table: Table,
    /// Active plus inactive connection entries of each destination. Inactive ones count:
    /// an entry (SYN_RECV, FIN_WAIT, TIME_WAIT, a UDP "connection") outlives the deletion
    /// of its destination, and with `expire_nodest_conn=0` (the default) the kernel drops
    /// every packet matching it until it expires: a client that reuses its port gets no
    /// answer (a connect that times out).
    conns: BTreeMap<(ipvs::ServiceKey, SocketAddr), u32>,
}

/// The connection entries of one destination that keep it from being deleted.
fn entries(d: &ipvs::DestinationStats) -> u32 {
    d.active_conns.saturating_add(d.inactive_conns)
}

impl KernelView {
    fn from_observed(observed: Observed) -> Self {
        let mut conns = BTreeMap::new();
        for svc in observed.table().services() {
            let key = *svc.key();
            if let Some(stats) = observed.service_stats(&key) {
                for (addr, d) in &stats.destinations {
                    conns.insert((key, *addr), entries(d));
                }
            }
        }
        Self {
            table: observed.into_table(),
            conns,
        }
    }

    fn conns(&self, key: &ipvs::ServiceKey, addr: SocketAddr) -> u32 {
        self.conns.get(&(*key, addr)).copied().unwrap_or(0)
    }

    /// No destination of `key` has a connection entry (or it has none, or the kernel
    /// does not have the service).
    fn idle(&self, key: &ipvs::ServiceKey) -> bool {
        self.conns
            .range((*key, SocketAddr::from(([0; 4], 0)))..)
            .take_while(|((k, _), _)| k == key)
            .all(|(_, n)| *n == 0)
    }
}

/// What a reload changes in the table.
#[derive(Debug, Default, PartialEq, Eq)]
struct Touched {
    /// Services whose configuration changed, new ones and removed ones.
    touched: BTreeSet<ipvs::ServiceKey>,
    /// Services no longer configured (also in `touched`).
    removed: BTreeSet<ipvs::ServiceKey>,
}

/// The services a reload from `old` to `new` touches. O(n log n): services are matched by
/// key, then compared whole.
fn touched(old: &[VirtualServer], new: &[VirtualServer]) -> Result<Touched, DesiredError> {
    let key = |vs: &VirtualServer| {
        desired::service_key(&vs.key).map_err(|source| DesiredError::new(&vs.name, source))
    };
    let mut before: BTreeMap<ipvs::ServiceKey, &VirtualServer> = BTreeMap::new();
    for vs in old {
        if let Ok(k) = key(vs) {
            before.insert(k, vs);
        }
    }
    let mut out = Touched::default();
    for vs in new {
        let k = key(vs)?;
        if before.remove(&k) != Some(vs) {
            out.touched.insert(k);
        }
    }
    out.removed = before.into_keys().collect();
    out.touched.extend(out.removed.iter().copied());
    Ok(out)
}

/// The services `keys` of `table` (those it has).
fn restrict(table: &Table, keys: &BTreeSet<ipvs::ServiceKey>) -> Table {
    let mut out = Table::new();
    for key in keys {
        if let Some(svc) = table.service(key) {
            out.set_service(svc.clone());
        }
    }
    out
}

/// The running program's state.
struct Program {
    servers: Vec<VirtualServer>,
    settings: IpvsSettings,
    owned: BTreeSet<ipvs::ServiceKey>,
    /// Services a reload removed, deleted once their destinations have drained.
    retiring: BTreeSet<ipvs::ServiceKey>,
    /// Destinations a reload removed, at weight 0 until their connections finish (since
    /// when).
    draining: BTreeMap<(ipvs::ServiceKey, SocketAddr), Instant>,
    /// Real servers drained by hand: (virtual server name, address).
    drained: BTreeSet<(String, SocketAddr)>,
    /// Services whose desired table changed (health, a drain by hand) since the last
    /// reconcile: a health reconcile reads and writes these only.
    dirty: BTreeSet<ipvs::ServiceKey>,
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
            drain: !self.draining.is_empty() || !self.retiring.is_empty(),
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
        let health = &self.health;
        if self.drained.is_empty() {
            return desired.compute(&self.servers, |id| health.get(id));
        }
        let drained = self.drained_matrix();
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
        self.dirty.clear();
        let Some(table) = self.desired_table() else {
            return 0;
        };
        let opts = self.options();
        self.counters.reconciles += 1;
        let sent = match self.ipvs.apply(&table, &opts).await {
            Ok(report) => self.account(&report, why),
            Err(e) => {
                tracing::error!(trigger = why, "IPVS reconcile failed: {e}");
                0
            }
        };
        self.announce();
        sent
    }

    /// Reconciles the services marked dirty only (read, plan, write): what a health
    /// change or a drain by hand needs, without reading the whole table. The number of
    /// writes sent.
    async fn reconcile_dirty(&mut self, why: &'static str) -> usize {
        let keys: BTreeSet<ipvs::ServiceKey> = std::mem::take(&mut self.dirty)
            .into_iter()
            .filter(|k| self.owned.contains(k))
            .collect();
        if keys.is_empty() {
            return 0;
        }
        let kernel = match self.read(&keys).await {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(trigger = why, "IPVS reconcile failed: {e}");
                self.dirty = keys;
                return 0;
            }
        };
        let drain = self.options().drain;
        self.apply_to(&kernel, &keys, &BTreeSet::new(), drain, why)
            .await
            .0
    }

    /// Applies the desired table to the services `keys` only, planned from `kernel` (just
    /// read: the table is not read again) and sent in one batch. With `drain`, what is no
    /// longer desired is set to weight 0 (and tracked in `draining`) instead of deleted;
    /// the services of `delete` are deleted in any case. The number of writes sent, and
    /// the services the kernel refused to delete (`None`: nothing could be sent).
    async fn apply_to(
        &mut self,
        kernel: &KernelView,
        keys: &BTreeSet<ipvs::ServiceKey>,
        delete: &BTreeSet<ipvs::ServiceKey>,
        drain: bool,
        why: &'static str,
    ) -> (usize, Option<BTreeSet<ipvs::ServiceKey>>) {
        // `delete` is part of `keys`: no service, nothing to plan (nor to compute).
        if keys.is_empty() {
            return (0, Some(BTreeSet::new()));
        }
        let Some(table) = self.desired_table() else {
            return (0, None);
        };
        let desired = match normalize_dest_ports(&restrict(&table, keys)) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(trigger = why, "IPVS reconcile failed: {e}");
                return (0, None);
            }
        };
        let opts = ApplyOptions {
            scope: Scope::Owned(keys.difference(delete).copied().collect()),
            drain,
            ..ApplyOptions::default()
        };
        let mut plan = ipvs::reconcile::plan(&kernel.table, &desired, &opts);
        if !delete.is_empty() {
            let gone = ApplyOptions {
                scope: Scope::Owned(delete.clone()),
                ..ApplyOptions::default()
            };
            plan.append(ipvs::reconcile::plan(&kernel.table, &Table::new(), &gone));
        }
        let now = Instant::now();
        for d in plan.draining() {
            self.draining.entry(*d).or_insert(now);
        }
        self.counters.reconciles += 1;
        let result = match self.ipvs.execute(plan, &opts).await {
            Ok(report) => {
                let refused = report
                    .failures()
                    .iter()
                    .filter_map(|f| match &f.op {
                        Op::DeleteService(key) => Some(*key),
                        _ => None,
                    })
                    .collect();
                (self.account(&report, why), Some(refused))
            }
            Err(e) => {
                tracing::error!(trigger = why, "IPVS reconcile failed: {e}");
                (0, None)
            }
        };
        // Announce after the table is written: a route never points at a service that is
        // not programmed yet.
        self.announce();
        result
    }

    /// The desired table of every configured service (quorum changes logged); `None`
    /// (logged) if a virtual server cannot be expressed.
    fn desired_table(&mut self) -> Option<Table> {
        let mut desired = std::mem::replace(&mut self.desired, DesiredTable::new(0));
        let before = desired.clone();
        let computed = self.compute(&mut desired);
        self.desired = desired;
        let (table, changes) = match computed {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("{e}");
                return None;
            }
        };
        for change in changes {
            // Quorum decided for the first time (every service at start or when it
            // appears): not news, and 10,000 lines at start for 10,000 services.
            if change.state == QuorumState::Met
                && before.quorum(change.service) == QuorumState::Unknown
            {
                tracing::debug!(
                    service = self
                        .servers
                        .get(change.service)
                        .map_or("?", |v| v.name.as_str()),
                    up = change.up,
                    "quorum met"
                );
                continue;
            }
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
        Some(table)
    }

    /// The kernel's view of the services `keys`: one at a time (a lookup and a
    /// destination dump each), or the whole table in one dump when that costs fewer
    /// requests (most of the configured services asked for).
    async fn read(
        &mut self,
        keys: &BTreeSet<ipvs::ServiceKey>,
    ) -> Result<KernelView, ipvs::ApiError> {
        if keys.is_empty() {
            return Ok(KernelView::default());
        }
        if keys.len().saturating_mul(2) > self.owned.len().saturating_add(1) {
            return Ok(KernelView::from_observed(self.ipvs.table().await?));
        }
        let mut view = KernelView::default();
        for key in keys {
            if let Some((svc, stats)) = self.ipvs.service(key).await? {
                for (addr, d) in &stats.destinations {
                    view.conns.insert((*key, *addr), entries(d));
                }
                view.table.set_service(svc);
            }
        }
        Ok(view)
    }

    /// Makes the announced routes follow the quorum states (and the director drain).
    /// Called after every write of the table: a route never points at a service that is
    /// not programmed yet.
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
            if let Some(Ok(key)) = self
                .servers
                .get(t.id.service)
                .map(|vs| desired::service_key(&vs.key))
            {
                self.dirty.insert(key);
            }
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
            draining: self.draining.keys().copied().collect(),
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
        if let Ok(key) = desired::service_key(&vs.key) {
            self.dirty.insert(key);
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
        // The kernel is read and written for the services the reload touches only (drift
        // elsewhere is the periodic reconcile's business): an unchanged file costs no IPVS
        // request.
        let old_index: BTreeMap<ipvs::ServiceKey, usize> = self
            .servers
            .iter()
            .enumerate()
            .filter_map(|(i, vs)| Some((desired::service_key(&vs.key).ok()?, i)))
            .collect();
        let Touched { touched, removed } = touched(&self.servers, &servers)?;
        let kernel = self.read(&touched).await.map_err(LvsError::Read)?;
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
                        rs.check.as_ref(),
                        old_stats.get(&id).copied().unwrap_or_default(),
                    ),
                );
            }
        }
        let mut desired = DesiredTable::new(servers.len());
        let (mut health, mut targets) = adopt(&servers, &kernel.table, &mut desired)?;
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
                Some((state, when, Some(check), probes)) if **check == t.check => {
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
            let old = desired::service_key(&vs.key)
                .ok()
                .and_then(|key| old_index.get(&key));
            if let Some(&oi) = old {
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
        // Services no longer configured retire: at once if no destination has a
        // connection entry, else through a drain.
        let (idle, busy): (BTreeSet<ipvs::ServiceKey>, BTreeSet<ipvs::ServiceKey>) =
            removed.iter().partition(|k| kernel.idle(k));
        self.retiring.extend(busy);
        self.retiring.retain(|k| !owned.contains(k));
        self.draining.retain(|(k, _), _| !idle.contains(k));
        if !self.drained.is_empty() {
            let names: BTreeSet<(&str, SocketAddr)> = servers
                .iter()
                .flat_map(|vs| {
                    vs.real_servers
                        .iter()
                        .map(|rs| (vs.name.as_str(), rs.address))
                })
                .collect();
            self.drained
                .retain(|(name, addr)| names.contains(&(name.as_str(), *addr)));
        }
        self.servers = servers;
        self.settings = settings;
        self.owned = owned;
        self.desired = desired;
        self.health = health;
        self.since = since;
        // Write what changed (removed destinations drain), then see whether what drains
        // can already go.
        let (writes, refused) = self
            .apply_to(&kernel, &touched, &idle, true, "reload")
            .await;
        // An idle service the kernel did not delete is retried through the drain path.
        self.retiring.extend(refused.map_or(idle, |r| r));
        report.writes = writes + self.refresh_draining().await;
        Ok(report)
    }

    /// Reads the services with draining destinations (and the retiring ones); when no
    /// draining destination has connection entries left (or the drain timeout passed),
    /// deletes them, planned from that reading. The number of writes sent.
    async fn refresh_draining(&mut self) -> usize {
        if self.draining.is_empty() && self.retiring.is_empty() {
            return 0;
        }
        let mut keys: BTreeSet<ipvs::ServiceKey> = self.draining.keys().map(|(k, _)| *k).collect();
        keys.extend(self.retiring.iter().copied());
        let Ok(kernel) = self.read(&keys).await else {
            return 0;
        };
        // Which destinations of those services are still in the kernel, not desired.
        let Ok((table, _)) = self.compute(&mut self.desired.clone()) else {
            return 0;
        };
        let Ok(desired) = normalize_dest_ports(&restrict(&table, &keys)) else {
            return 0;
        };
        let opts = ApplyOptions {
            scope: Scope::Owned(keys.clone()),
            drain: true,
            ..ApplyOptions::default()
        };
        let plan = ipvs::reconcile::plan(&kernel.table, &desired, &opts);
        let now = Instant::now();
        let draining: BTreeMap<(ipvs::ServiceKey, SocketAddr), Instant> = plan
            .draining()
            .iter()
            .map(|d| (*d, self.draining.get(d).copied().unwrap_or(now)))
            .collect();
        let busy = draining.iter().any(|((key, addr), since)| {
            kernel.conns(key, *addr) > 0 && now.duration_since(*since) < DRAIN_TIMEOUT
        });
        if busy {
            self.draining = draining;
            return 0;
        }
        if !draining.is_empty() {
            tracing::info!(
                destinations = draining.len(),
                "removed destinations have drained; deleting them"
            );
        }
        self.draining.clear();
        let (writes, refused) = self
            .apply_to(&kernel, &keys, &BTreeSet::new(), false, "drained")
            .await;
        // A retiring service stays in scope until it is gone.
        if let Some(refused) = refused {
            self.retiring
                .retain(|k| kernel.table.service(k).is_some() && refused.contains(k));
        }
        writes
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
    let kernel = KernelView::from_observed(ipvs.table().await.map_err(LvsError::Read)?);
    let mut desired = DesiredTable::new(servers.len());
    let (health, targets) = adopt(&servers, &kernel.table, &mut desired)?;
    let adopted = servers
        .iter()
        .filter(|vs| {
            desired::service_key(&vs.key).is_ok_and(|k| kernel.table.service(&k).is_some())
        })
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
        draining: BTreeMap::new(),
        drained: BTreeSet::new(),
        dirty: BTreeSet::new(),
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
    // Planned from the reading adoption used: the table is read once.
    let owned = program.owned.clone();
    program
        .apply_to(&kernel, &owned, &BTreeSet::new(), false, "start")
        .await;
    drop(kernel);

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
                program.reconcile_dirty("health").await;
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
                        program.reconcile_dirty("drain").await;
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
