//! The handle to the kernel's IPVS table: [`Ipvs`] (blocking) and `AsyncIpvs` (tokio,
//! cargo feature `tokio`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::time::Duration;

use ipvs_sys::transport::{
    BatchOptions, BatchReport, ErrorKind, IpvsSocket, KernelError, TransportError,
};
use ipvs_sys::{DestAttrs, IpvsMessage, ServiceAttrs};

use crate::error::{Error, Object};
use crate::kernel::{Info, Stats, SyncDaemon, SyncState, Timeouts};
use crate::netlink::{
    DecodeError, daemon_attrs, daemon_from_attrs, daemon_state_attrs, dest_attrs, dest_key_attrs,
    info_from_attrs, service_attrs, service_key_attrs, service_key_from_attrs,
    service_with_dests_from_attrs, stats_from_attrs, timeouts_from_secs, timeouts_message,
};
use crate::reconcile::{ApplyOptions, ApplyReport, Op, OpFailure, Plan, Scope, normalized};
use crate::types::{Destination, Service, ServiceKey, Table};

/// An error of the [`Ipvs`] handle: an invalid argument, kernel data the model cannot
/// represent, a request the kernel refused, or a failure talking to the kernel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// An argument is invalid (e.g. two destinations that become the same after
    /// [`normalize_dest_ports`](crate::reconcile::normalize_dest_ports)).
    #[error(transparent)]
    Invalid(#[from] Error),
    /// The kernel holds something the model cannot represent.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The kernel refused a request.
    #[error("{error}")]
    Kernel {
        /// The operation, e.g. `add service`.
        op: &'static str,
        /// The object, when the request is about one.
        object: Option<Object>,
        /// The kernel's answer: errno, its meaning ([`KernelError::kind`]) and the
        /// extended-ACK message.
        error: Box<KernelError>,
    },
    /// Talking to the kernel failed (no IPVS, socket error, timeout, bad reply).
    #[error(transparent)]
    Transport(Box<TransportError>),
}

impl ApiError {
    /// What the kernel's errno means, for [`ApiError::Kernel`].
    ///
    /// ```no_run
    /// use ipvs::{Ipvs, ServiceKey};
    /// use ipvs_sys::transport::ErrorKind;
    /// let mut ipvs = Ipvs::open()?;
    /// let err = ipvs.delete_service(&ServiceKey::tcp("192.0.2.1:80".parse()?)).unwrap_err();
    /// assert_eq!(err.kernel_kind(), Some(ErrorKind::NoSuchService));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kernel_kind(&self) -> Option<ErrorKind> {
        match self {
            ApiError::Kernel { error, .. } => Some(error.kind),
            _ => None,
        }
    }

    fn from_transport(e: TransportError, object: Option<Object>) -> Self {
        match e {
            TransportError::Kernel(error) => ApiError::Kernel {
                op: error.op,
                object,
                error: Box::new(error),
            },
            other => ApiError::Transport(Box::new(other)),
        }
    }
}

fn at(object: Object) -> impl FnOnce(TransportError) -> ApiError {
    move |e| ApiError::from_transport(e, Some(object))
}

/// The longest wait for the answer to a sync daemon stop (see [`Ipvs::stop_daemon`]).
pub const STOP_DAEMON_WAIT: Duration = Duration::from_secs(2);

/// After an unanswered stop: success if no daemon of that state runs any more.
fn stopped_or_timeout(
    running: &[ipvs_sys::DaemonAttrs],
    stopped: &ipvs_sys::DaemonAttrs,
    result: Result<(), TransportError>,
) -> Result<(), ApiError> {
    if running.iter().any(|d| d.state == stopped.state) {
        result.map_err(at(Object::SyncDaemon))
    } else {
        Ok(())
    }
}

fn global(e: TransportError) -> ApiError {
    ApiError::from_transport(e, None)
}

/// Counters of a destination.
///
/// ```no_run
/// let mut ipvs = ipvs::Ipvs::open()?;
/// let key = "tcp 192.0.2.1:80".parse()?;
/// if let Some(d) = ipvs.table()?.destination_stats(&key, "10.0.0.1:80".parse()?) {
///     println!("{} active, {} inactive, {} bytes in", d.active_conns, d.inactive_conns, d.stats.inbytes);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DestinationStats {
    /// Traffic counters.
    pub stats: Stats,
    /// Active connections (`ActiveConn`).
    pub active_conns: u32,
    /// Inactive connections (`InActConn`).
    pub inactive_conns: u32,
    /// Persistence templates pointing at it.
    pub persistent_conns: u32,
}

/// Counters of a service and of each of its destinations.
///
/// ```no_run
/// let mut ipvs = ipvs::Ipvs::open()?;
/// if let Some((svc, stats)) = ipvs.service(&"udp 192.0.2.1:53".parse()?)? {
///     println!("{}: {} connections, {} destinations", svc.key(), stats.stats.conns, stats.destinations.len());
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceStats {
    /// Traffic counters of the service.
    pub stats: Stats,
    /// Counters per destination address.
    pub destinations: BTreeMap<SocketAddr, DestinationStats>,
}

/// The kernel's table as observed, with counters ([`Ipvs::table`]).
///
/// ```no_run
/// let mut ipvs = ipvs::Ipvs::open()?;
/// let observed = ipvs.table()?;
/// for svc in observed.table().services() {
///     let conns = observed.service_stats(svc.key()).map_or(0, |s| s.stats.conns);
///     println!("{}: {conns} connections", svc.key());
/// }
/// print!("{}", ipvs::ipvsadm::print(&observed.into_table())); // as ipvsadm -S -n
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    table: Table,
    stats: BTreeMap<ServiceKey, ServiceStats>,
}

impl Observed {
    /// The table (what [`crate::reconcile::plan`] compares).
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The table, without counters.
    pub fn into_table(self) -> Table {
        self.table
    }

    /// Counters of a service and its destinations.
    pub fn service_stats(&self, key: &ServiceKey) -> Option<&ServiceStats> {
        self.stats.get(key)
    }

    /// Counters of one destination: e.g. the active connections of one that drains.
    pub fn destination_stats(
        &self,
        key: &ServiceKey,
        addr: SocketAddr,
    ) -> Option<&DestinationStats> {
        self.stats.get(key)?.destinations.get(&addr)
    }
}

fn dest_stats(d: &DestAttrs) -> DestinationStats {
    DestinationStats {
        stats: stats_from_attrs(d.stats64.as_ref(), d.stats.as_ref()),
        active_conns: d.active_conns.unwrap_or(0),
        inactive_conns: d.inact_conns.unwrap_or(0),
        persistent_conns: d.persist_conns.unwrap_or(0),
    }
}

fn observed_service(
    attrs: &ServiceAttrs,
    dests: &[DestAttrs],
) -> Result<(Service, ServiceStats), DecodeError> {
    let svc = service_with_dests_from_attrs(attrs, dests)?;
    let mut stats = ServiceStats {
        stats: stats_from_attrs(attrs.stats64.as_ref(), attrs.stats.as_ref()),
        destinations: BTreeMap::new(),
    };
    for d in dests {
        if let (Some(ip), Some(port)) = (d.addr, d.port) {
            stats
                .destinations
                .insert(SocketAddr::new(ip, port), dest_stats(d));
        }
    }
    Ok((svc, stats))
}

fn observe(dump: Vec<(ServiceAttrs, Vec<DestAttrs>)>) -> Result<Observed, ApiError> {
    let mut o = Observed::default();
    for (attrs, dests) in dump {
        let (svc, stats) = observed_service(&attrs, &dests)?;
        o.stats.insert(*svc.key(), stats);
        o.table.set_service(svc);
    }
    Ok(o)
}

/// What an apply needs of a dumped service.
enum Need {
    /// Out of scope: never touched.
    Skip,
    /// In scope but not desired, without drain: only its key matters (it is deleted).
    KeyOnly(ServiceKey),
    /// In scope but not desired, with drain: its destinations are drained. If the model
    /// cannot represent it, it is deleted (by key) instead.
    Drain(ServiceKey),
    /// Desired: compared in full, destinations too.
    Full,
}

fn need(attrs: &ServiceAttrs, desired: &Table, opts: &ApplyOptions) -> Result<Need, ApiError> {
    let key = match service_key_from_attrs(attrs) {
        Ok(k) => k,
        // Cannot be in scope unless every service is.
        Err(e) if opts.scope == Scope::FullPrune => return Err(e.into()),
        Err(_) => return Ok(Need::Skip),
    };
    Ok(if desired.service(&key).is_some() {
        Need::Full
    } else if match &opts.scope {
        Scope::Desired => false,
        Scope::Owned(keys) => keys.contains(&key),
        Scope::FullPrune => true,
    } {
        if opts.drain {
            Need::Drain(key)
        } else {
            Need::KeyOnly(key)
        }
    } else {
        Need::Skip
    })
}

fn add_key_only(current: &mut Table, key: ServiceKey) -> Result<(), ApiError> {
    current.set_service(Service::builder(key).build()?);
    Ok(())
}

fn add_full(
    current: &mut Table,
    attrs: &ServiceAttrs,
    dests: &[DestAttrs],
) -> Result<(), ApiError> {
    current.set_service(service_with_dests_from_attrs(attrs, dests)?);
    Ok(())
}

fn add_drained(
    current: &mut Table,
    key: ServiceKey,
    attrs: &ServiceAttrs,
    dests: &[DestAttrs],
) -> Result<(), ApiError> {
    match service_with_dests_from_attrs(attrs, dests) {
        Ok(svc) => {
            current.set_service(svc);
            Ok(())
        }
        Err(_) => add_key_only(current, key),
    }
}

fn batch_options(opts: &ApplyOptions) -> BatchOptions {
    BatchOptions {
        stop_at_first_error: opts.stop_at_first_error,
        ..BatchOptions::default()
    }
}

/// Plans go to the transport this many operations at a time, so that their messages
/// (about 770 bytes each) are built for one piece at a time: a plan of 100,000
/// operations would otherwise build and free 80 MB, which costs more than sending it.
const PIECE: usize = 4096;

/// A plan sent [`PIECE`] operations at a time, and the report of what went so far.
struct Pieces<'a> {
    ops: &'a [Op],
    /// The first operation of the next piece.
    next: usize,
    /// The messages of the piece being sent.
    buf: Vec<IpvsMessage>,
    total: BatchReport,
}

impl<'a> Pieces<'a> {
    fn new(ops: &'a [Op]) -> Self {
        Pieces {
            ops,
            next: 0,
            buf: Vec::new(),
            total: BatchReport::default(),
        }
    }

    /// The messages of the next piece, if any is left.
    fn next_messages(&mut self) -> Option<&[IpvsMessage]> {
        let rest = self.ops.get(self.next..).unwrap_or_default();
        if rest.is_empty() {
            return None;
        }
        self.buf.clear();
        self.buf.extend(rest.iter().take(PIECE).map(Op::to_message));
        Some(&self.buf)
    }

    /// Records what the transport did with the piece of
    /// [`next_messages`](Self::next_messages). False when the rest is not to be sent.
    fn record(&mut self, piece: BatchReport, opts: &ApplyOptions) -> bool {
        let offset = self.next;
        self.next += self.buf.len();
        let rest = self.ops.len().saturating_sub(self.next);
        merge_piece(&mut self.total, piece, offset, rest, opts)
    }
}

/// Adds the report of the piece that began at operation `offset` to `total`, with
/// `rest` operations after the piece. False when the rest is not to be sent
/// ([`ApplyOptions::stop_at_first_error`] after a failure): they count as not sent.
fn merge_piece(
    total: &mut BatchReport,
    piece: BatchReport,
    offset: usize,
    rest: usize,
    opts: &ApplyOptions,
) -> bool {
    let stop = opts.stop_at_first_error && (!piece.failures.is_empty() || piece.not_sent > 0);
    total.handled += piece.handled;
    total.sends += piece.sends;
    total.not_sent += piece.not_sent;
    total
        .failures
        .extend(piece.failures.into_iter().map(|mut f| {
            f.index += offset;
            f
        }));
    if stop {
        total.not_sent += rest;
    }
    !stop
}

fn report(plan: Plan, batch: BatchReport) -> ApplyReport {
    let failures = batch
        .failures
        .into_iter()
        .filter_map(|f| {
            let op = plan.ops().get(f.index)?.clone();
            Some(OpFailure {
                index: f.index,
                error: ApiError::Kernel {
                    op: f.error.op,
                    object: Some(op.object()),
                    error: Box::new(f.error),
                },
                op,
            })
        })
        .collect();
    ApplyReport {
        plan,
        failures,
        not_sent: batch.not_sent,
    }
}

/// The messages that add a service with its destinations.
fn add_service_messages(service: &Service) -> Vec<IpvsMessage> {
    let key = service_key_attrs(service.key());
    std::iter::once(IpvsMessage::new_service(service_attrs(service)))
        .chain(
            service
                .destinations()
                .map(|d| IpvsMessage::new_dest(key.clone(), dest_attrs(d))),
        )
        .collect()
}

fn add_service_result(service: &Service, r: BatchReport) -> Result<(), ApiError> {
    match r.failures.into_iter().next() {
        None => Ok(()),
        Some(f) => {
            let object = match f.index.checked_sub(1) {
                None => Object::Service(*service.key()),
                Some(i) => Object::Destination {
                    service: Some(*service.key()),
                    addr: service
                        .destinations()
                        .nth(i)
                        .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), Destination::addr),
                },
            };
            Err(ApiError::Kernel {
                op: f.error.op,
                object: Some(object),
                error: Box::new(f.error),
            })
        }
    }
}

fn dest_object(service: &ServiceKey, addr: SocketAddr) -> Object {
    Object::Destination {
        service: Some(*service),
        addr,
    }
}

fn no_such_service(e: &TransportError) -> bool {
    matches!(e, TransportError::Kernel(k) if k.kind == ErrorKind::NoSuchService)
}

/// A handle to the IPVS table of one network namespace (blocking).
///
/// ```no_run
/// use ipvs::{Destination, Forward, Ipvs, Scheduler, Service, ServiceKey, Table};
/// use ipvs::reconcile::ApplyOptions;
///
/// let mut ipvs = Ipvs::open()?;
/// let key = ServiceKey::tcp("192.0.2.1:80".parse()?);
/// let mut svc = Service::builder(key).scheduler(Scheduler::WeightedRoundRobin).build()?;
/// svc.add_destination(Destination::new("10.0.0.1:80".parse()?, Forward::Masquerade)?)?;
/// let mut desired = Table::new();
/// desired.add_service(svc)?;
///
/// print!("{}", ipvs.plan(&desired, &ApplyOptions::default())?); // dry run
/// let report = ipvs.apply(&desired, &ApplyOptions::default())?;
/// assert!(report.is_complete(), "{report}");
/// let observed = ipvs.table()?;
/// println!("{} connections", observed.service_stats(&key).map_or(0, |s| s.stats.conns));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Every method makes one round trip to the kernel, except [`table`](Self::table) and
/// [`apply`](Self::apply), which dump the services and the destinations of each
/// service, and [`add_service`](Self::add_service), which sends the service and its
/// destinations in one batch.
#[derive(Debug)]
pub struct Ipvs {
    sock: IpvsSocket,
}

impl Ipvs {
    /// Opens a handle in the calling thread's network namespace (needs
    /// `CAP_NET_ADMIN` to change anything, and the `ip_vs` module).
    pub fn open() -> Result<Self, ApiError> {
        Ok(Ipvs {
            sock: IpvsSocket::open().map_err(global)?,
        })
    }

    /// Opens a handle in the network namespace at `path` (e.g. `/run/netns/NAME`); the
    /// calling thread never moves.
    pub fn open_in_netns(path: impl AsRef<Path>) -> Result<Self, ApiError> {
        Ok(Ipvs {
            sock: IpvsSocket::open_in_netns(path).map_err(global)?,
        })
    }

    /// Opens a handle in the network namespace `fd` refers to (e.g. an open
    /// `/proc/PID/ns/net`).
    pub fn open_in_netns_fd(fd: BorrowedFd<'_>) -> Result<Self, ApiError> {
        Ok(Ipvs {
            sock: IpvsSocket::open_in_netns_fd(fd).map_err(global)?,
        })
    }

    /// How long to wait for each reply (default 10 s).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.sock.set_timeout(timeout);
    }

    /// The whole table with counters: one service dump and one destination dump per
    /// service ([`IpvsSocket::table`](ipvs_sys::transport::IpvsSocket::table)).
    /// Anything the model cannot represent is an [`ApiError::Decode`].
    pub fn table(&mut self) -> Result<Observed, ApiError> {
        observe(self.sock.table().map_err(global)?)
    }

    /// One service with its destinations and counters; `None` if there is no such
    /// service.
    pub fn service(
        &mut self,
        key: &ServiceKey,
    ) -> Result<Option<(Service, ServiceStats)>, ApiError> {
        let attrs = match self.sock.service(&service_key_attrs(key)) {
            Ok(a) => a,
            Err(e) if no_such_service(&e) => return Ok(None),
            Err(e) => return Err(at(Object::Service(*key))(e)),
        };
        let dests = self
            .sock
            .destinations(&attrs)
            .map_err(at(Object::Service(*key)))?;
        Ok(Some(observed_service(&attrs, &dests)?))
    }

    /// Adds a service and its destinations (one batch). The first refusal is the error;
    /// the requests before it took effect.
    ///
    /// ```no_run
    /// use ipvs::{Destination, Forward, Service, ServiceKey};
    /// let mut ipvs = ipvs::Ipvs::open()?;
    /// let mut svc = Service::builder(ServiceKey::tcp("192.0.2.1:80".parse()?)).build()?;
    /// svc.add_destination(Destination::new("10.0.0.1:80".parse()?, Forward::Masquerade)?)?;
    /// ipvs.add_service(&svc)?;
    /// let quiet = svc.destination("10.0.0.1:80".parse()?).unwrap().clone().with_weight(0)?;
    /// ipvs.edit_destination(svc.key(), &quiet)?;
    /// ipvs.delete_service(svc.key())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_service(&mut self, service: &Service) -> Result<(), ApiError> {
        let opts = BatchOptions {
            stop_at_first_error: true,
            ..BatchOptions::default()
        };
        let r = self
            .sock
            .batch(&add_service_messages(service), &opts)
            .map_err(at(Object::Service(*service.key())))?;
        add_service_result(service, r)
    }

    /// Changes a service's scheduler, flags, persistence and one-packet setting to
    /// `service`'s; its destinations are not touched.
    pub fn edit_service(&mut self, service: &Service) -> Result<(), ApiError> {
        self.sock
            .execute(&IpvsMessage::set_service(service_attrs(service)))
            .map_err(at(Object::Service(*service.key())))
    }

    /// Deletes a service and its destinations.
    pub fn delete_service(&mut self, key: &ServiceKey) -> Result<(), ApiError> {
        self.sock
            .execute(&IpvsMessage::del_service(service_key_attrs(key)))
            .map_err(at(Object::Service(*key)))
    }

    /// Adds a destination to a service.
    pub fn add_destination(
        &mut self,
        service: &ServiceKey,
        dest: &Destination,
    ) -> Result<(), ApiError> {
        self.sock
            .execute(&IpvsMessage::new_dest(
                service_key_attrs(service),
                dest_attrs(dest),
            ))
            .map_err(at(dest_object(service, dest.addr())))
    }

    /// Changes a destination's weight, forwarding, thresholds and tunnel to `dest`'s.
    pub fn edit_destination(
        &mut self,
        service: &ServiceKey,
        dest: &Destination,
    ) -> Result<(), ApiError> {
        self.sock
            .execute(&IpvsMessage::set_dest(
                service_key_attrs(service),
                dest_attrs(dest),
            ))
            .map_err(at(dest_object(service, dest.addr())))
    }

    /// Deletes a destination.
    pub fn delete_destination(
        &mut self,
        service: &ServiceKey,
        addr: SocketAddr,
    ) -> Result<(), ApiError> {
        self.sock
            .execute(&IpvsMessage::del_dest(
                service_key_attrs(service),
                dest_key_attrs(addr),
            ))
            .map_err(at(dest_object(service, addr)))
    }

    /// Zeroes the counters of one service, or of every service (`None`).
    ///
    /// ```no_run
    /// let mut ipvs = ipvs::Ipvs::open()?;
    /// ipvs.zero(Some(&"tcp 192.0.2.1:80".parse()?))?;
    /// ipvs.zero(None)?;
    /// ipvs.flush()?; // and delete everything
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn zero(&mut self, service: Option<&ServiceKey>) -> Result<(), ApiError> {
        let msg = IpvsMessage::zero(service.map(service_key_attrs));
        match service {
            Some(k) => self.sock.execute(&msg).map_err(at(Object::Service(*k))),
            None => self.sock.execute(&msg).map_err(global),
        }
    }

    /// Deletes every service (`ipvsadm -C`).
    pub fn flush(&mut self) -> Result<(), ApiError> {
        self.sock.execute(&IpvsMessage::flush()).map_err(global)
    }

    /// The global TCP, TCP FIN and UDP timeouts.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// let mut ipvs = ipvs::Ipvs::open()?;
    /// let t = ipvs::Timeouts::new(Duration::from_secs(900), Duration::ZERO, Duration::ZERO)?;
    /// ipvs.set_timeouts(&t)?; // tcp only; tcpfin and udp unchanged
    /// assert_eq!(ipvs.timeouts()?.tcp(), Duration::from_secs(900));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn timeouts(&mut self) -> Result<Timeouts, ApiError> {
        let (tcp, fin, udp) = self.sock.timeouts().map_err(at(Object::Timeouts))?;
        Ok(timeouts_from_secs(tcp, fin, udp)?)
    }

    /// Sets the global timeouts (a zero one is left unchanged).
    pub fn set_timeouts(&mut self, timeouts: &Timeouts) -> Result<(), ApiError> {
        self.sock
            .execute(&timeouts_message(timeouts))
            .map_err(at(Object::Timeouts))
    }

    /// Starts a connection synchronisation daemon.
    ///
    /// ```no_run
    /// use ipvs::{SyncDaemon, SyncState};
    /// let mut ipvs = ipvs::Ipvs::open()?;
    /// ipvs.start_daemon(&SyncDaemon::new(SyncState::Master, "eth0", 1)?)?;
    /// assert_eq!(ipvs.daemons()?.len(), 1);
    /// ipvs.stop_daemon(SyncState::Master)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start_daemon(&mut self, daemon: &SyncDaemon) -> Result<(), ApiError> {
        self.sock
            .execute(&IpvsMessage::new_daemon(daemon_attrs(daemon)))
            .map_err(at(Object::SyncDaemon))
    }

    /// Stops the master or backup sync daemon.
    ///
    /// The kernel sends no reply at all when it stops a sync thread that has not run yet
    /// (`kthread_stop` returns `-EINTR`, and netlink drops the answer to a handler that
    /// returns `-EINTR`): the daemon is stopped, but the request is never answered. So
    /// the wait is short ([`STOP_DAEMON_WAIT`] at most), and an unanswered stop is
    /// checked against the list of daemons instead of being reported as a failure.
    pub fn stop_daemon(&mut self, state: SyncState) -> Result<(), ApiError> {
        let attrs = daemon_state_attrs(state);
        let timeout = self.sock.timeout();
        self.sock.set_timeout(timeout.min(STOP_DAEMON_WAIT));
        let result = self.sock.execute(&IpvsMessage::del_daemon(attrs.clone()));
        self.sock.set_timeout(timeout);
        match result {
            Err(TransportError::Timeout { .. }) => {
                let running = self.sock.daemons().map_err(at(Object::SyncDaemon))?;
                stopped_or_timeout(&running, &attrs, result)
            }
            other => other.map_err(at(Object::SyncDaemon)),
        }
    }

    /// The running sync daemons (the kernel reports every option, defaults included).
    pub fn daemons(&mut self) -> Result<Vec<SyncDaemon>, ApiError> {
        let ds = self.sock.daemons().map_err(at(Object::SyncDaemon))?;
        Ok(ds.iter().map(daemon_from_attrs).collect::<Result<_, _>>()?)
    }

    /// The IPVS version and connection table size.
    ///
    /// ```no_run
    /// let info = ipvs::Ipvs::open()?.info()?;
    /// println!("IP Virtual Server version {} (size={})", info.version, info.conn_table_size);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn info(&mut self) -> Result<Info, ApiError> {
        let i = self.sock.info().map_err(global)?;
        Ok(info_from_attrs(&i)?)
    }

    /// The current table within `opts.scope`: one service dump, and one destination
    /// dump per desired service and per service to drain (services that are only
    /// deleted need no more than their key). `desired` must already be normalised.
    fn current(&mut self, desired: &Table, opts: &ApplyOptions) -> Result<Table, ApiError> {
        let mut current = Table::new();
        for attrs in self.sock.services().map_err(global)? {
            match need(&attrs, desired, opts)? {
                Need::Skip => {}
                Need::KeyOnly(key) => add_key_only(&mut current, key)?,
                Need::Drain(key) => {
                    let dests = self.sock.destinations(&attrs).map_err(global)?;
                    add_drained(&mut current, key, &attrs, &dests)?;
                }
                Need::Full => {
                    let dests = self.sock.destinations(&attrs).map_err(global)?;
                    add_full(&mut current, &attrs, &dests)?;
                }
            }
        }
        Ok(current)
    }

    /// What [`apply`](Self::apply) would do, without doing it (a dry run: print it for
    /// the `ipvsadm` commands).
    pub fn plan(&mut self, desired: &Table, opts: &ApplyOptions) -> Result<Plan, ApiError> {
        let desired = normalized(desired)?;
        let current = self.current(&desired, opts)?;
        Ok(crate::reconcile::plan(&current, &desired, opts))
    }

    /// Makes the kernel's table match `desired` within `opts.scope`: one dump, the
    /// [plan](crate::reconcile::plan), and its operations in one batch (chunked by the
    /// transport). `desired` is first normalised with
    /// [`normalize_dest_ports`](crate::reconcile::normalize_dest_ports).
    ///
    /// A refused operation does not stop the others (unless
    /// [`ApplyOptions::stop_at_first_error`]); the report lists each with its error. An
    /// error is returned only when nothing could be sent: the dump failed, a desired
    /// service holds something the model cannot represent ([`ApiError::Decode`]; fix or
    /// delete it by hand), or the socket failed. A service that is only to be removed
    /// needs no more than its key (with [`ApplyOptions::drain`], one that the model
    /// cannot represent is deleted instead of drained); with [`Scope::FullPrune`], a
    /// service whose key the model cannot represent is an error too.
    pub fn apply(&mut self, desired: &Table, opts: &ApplyOptions) -> Result<ApplyReport, ApiError> {
        let plan = self.plan(desired, opts)?;
        self.execute(plan, opts)
    }

    /// Sends the operations of `plan` in one batch, as [`apply`](Self::apply) does after
    /// its dump: for a caller that has just read the table (with [`table`](Self::table)
    /// or [`service`](Self::service)) and made the plan with
    /// [`plan`](crate::reconcile::plan) from that reading, so that the table is not read
    /// twice. The plan is as current as that reading (a change made in between by
    /// someone else is not seen). `opts` gives the batch options
    /// ([`ApplyOptions::stop_at_first_error`]).
    ///
    /// ```no_run
    /// use ipvs::reconcile::{ApplyOptions, normalize_dest_ports, plan};
    /// let mut ipvs = ipvs::Ipvs::open()?;
    /// let observed = ipvs.table()?;
    /// let desired = normalize_dest_ports(observed.table())?; // what the caller wants
    /// let opts = ApplyOptions::default();
    /// let report = ipvs.execute(plan(observed.table(), &desired, &opts), &opts)?;
    /// assert!(report.plan().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn execute(&mut self, plan: Plan, opts: &ApplyOptions) -> Result<ApplyReport, ApiError> {
        if plan.is_empty() {
            return Ok(report(plan, BatchReport::default()));
        }
        let sock = &mut self.sock;
        let send = |msgs: &[IpvsMessage]| sock.batch(msgs, &batch_options(opts)).map_err(global);
        let total = if plan.len() >= OVERLAP_MIN_OPS
            && std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
        {
            send_overlapped(plan.ops(), opts, send)?
        } else {
            send_in_pieces(plan.ops(), opts, send)?
        };
        Ok(report(plan, total))
    }
}

/// Sends `ops` with `send`, [`PIECE`] at a time, building the messages of each piece
/// just before sending it.
fn send_in_pieces(
    ops: &[Op],
    opts: &ApplyOptions,
    mut send: impl FnMut(&[IpvsMessage]) -> Result<BatchReport, ApiError>,
) -> Result<BatchReport, ApiError> {
    let mut pieces = Pieces::new(ops);
    while let Some(msgs) = pieces.next_messages() {
        let r = send(msgs)?;
        if !pieces.record(r, opts) {
            break;
        }
    }
    Ok(pieces.total)
}

/// Plans of at least this many operations are sent by [`send_overlapped`].
const OVERLAP_MIN_OPS: usize = 2 * PIECE;

/// [`send_in_pieces`] with the messages of the next piece built on a second thread
/// while the current piece is sent: the kernel handles each request inside `sendmsg`,
/// on the sending thread, so building and sending overlap on two CPUs. Same messages,
/// same report: a piece that stops the batch ([`ApplyOptions::stop_at_first_error`])
/// or an error of `send` ends the builder (its channel closes). Two or three piece
/// buffers circulate between the threads, so no piece allocates anew.
fn send_overlapped(
    ops: &[Op],
    opts: &ApplyOptions,
    mut send: impl FnMut(&[IpvsMessage]) -> Result<BatchReport, ApiError>,
) -> Result<BatchReport, ApiError> {
    let (built_tx, built) = std::sync::mpsc::sync_channel::<Vec<IpvsMessage>>(1);
    let (spent, spent_rx) = std::sync::mpsc::channel::<Vec<IpvsMessage>>();
    std::thread::scope(|s| {
        s.spawn(move || {
            for piece in ops.chunks(PIECE) {
                let mut buf = spent_rx.try_recv().unwrap_or_default();
                buf.clear();
                buf.extend(piece.iter().map(Op::to_message));
                if built_tx.send(buf).is_err() {
                    break; // the sender stopped
                }
            }
        });
        // `built` is dropped when this closure returns, early or not, which ends the
        // builder before the scope joins it.
        let mut total = BatchReport::default();
        let mut offset = 0;
        for msgs in built {
            let r = send(&msgs)?;
            let next = offset + msgs.len();
            let go_on = merge_piece(&mut total, r, offset, ops.len().saturating_sub(next), opts);
            offset = next;
            let _ = spent.send(msgs);
            if !go_on {
                break;
            }
        }
        Ok(total)
    })
}

#[cfg(feature = "tokio")]
pub use self::async_handle::AsyncIpvs;

#[cfg(feature = "tokio")]
mod async_handle {
    use super::*;
    use ipvs_sys::transport::AsyncIpvsSocket;

    /// The tokio twin of [`Ipvs`] (cargo feature `tokio`): the same methods, `async`.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), ipvs::ApiError> {
    /// use ipvs::{AsyncIpvs, Table};
    /// use ipvs::reconcile::ApplyOptions;
    /// let mut ipvs = AsyncIpvs::open()?;
    /// let report = ipvs.apply(&Table::new(), &ApplyOptions::default()).await?;
    /// assert!(report.plan().is_empty());
    /// # Ok(()) }
    /// ```
    #[derive(Debug)]
    pub struct AsyncIpvs {
        sock: AsyncIpvsSocket,
    }

    impl AsyncIpvs {
        /// See [`Ipvs::open`]; needs a tokio runtime with I/O enabled.
        pub fn open() -> Result<Self, ApiError> {
            Ok(AsyncIpvs {
                sock: AsyncIpvsSocket::open().map_err(global)?,
            })
        }

        /// See [`Ipvs::open_in_netns`].
        pub fn open_in_netns(path: impl AsRef<Path>) -> Result<Self, ApiError> {
            Ok(AsyncIpvs {
                sock: AsyncIpvsSocket::open_in_netns(path).map_err(global)?,
            })
        }

        /// See [`Ipvs::open_in_netns_fd`].
        pub fn open_in_netns_fd(fd: BorrowedFd<'_>) -> Result<Self, ApiError> {
            Ok(AsyncIpvs {
                sock: AsyncIpvsSocket::open_in_netns_fd(fd).map_err(global)?,
            })
        }

        /// See [`Ipvs::set_timeout`].
        pub fn set_timeout(&mut self, timeout: Duration) {
            self.sock.set_timeout(timeout);
        }

        /// See [`Ipvs::table`].
        pub async fn table(&mut self) -> Result<Observed, ApiError> {
            observe(self.sock.table().await.map_err(global)?)
        }

        /// See [`Ipvs::service`].
        pub async fn service(
            &mut self,
            key: &ServiceKey,
        ) -> Result<Option<(Service, ServiceStats)>, ApiError> {
            let attrs = match self.sock.service(&service_key_attrs(key)).await {
                Ok(a) => a,
                Err(e) if no_such_service(&e) => return Ok(None),
                Err(e) => return Err(at(Object::Service(*key))(e)),
            };
            let dests = self
                .sock
                .destinations(&attrs)
                .await
                .map_err(at(Object::Service(*key)))?;
            Ok(Some(observed_service(&attrs, &dests)?))
        }

        /// See [`Ipvs::add_service`].
        pub async fn add_service(&mut self, service: &Service) -> Result<(), ApiError> {
            let opts = BatchOptions {
                stop_at_first_error: true,
                ..BatchOptions::default()
            };
            let r = self
                .sock
                .batch(&add_service_messages(service), &opts)
                .await
                .map_err(at(Object::Service(*service.key())))?;
            add_service_result(service, r)
        }

        /// See [`Ipvs::edit_service`].
        pub async fn edit_service(&mut self, service: &Service) -> Result<(), ApiError> {
            self.sock
                .execute(&IpvsMessage::set_service(service_attrs(service)))
                .await
                .map_err(at(Object::Service(*service.key())))
        }

        /// See [`Ipvs::delete_service`].
        pub async fn delete_service(&mut self, key: &ServiceKey) -> Result<(), ApiError> {
            self.sock
                .execute(&IpvsMessage::del_service(service_key_attrs(key)))
                .await
                .map_err(at(Object::Service(*key)))
        }

        /// See [`Ipvs::add_destination`].
        pub async fn add_destination(
            &mut self,
            service: &ServiceKey,
            dest: &Destination,
        ) -> Result<(), ApiError> {
            self.sock
                .execute(&IpvsMessage::new_dest(
                    service_key_attrs(service),
                    dest_attrs(dest),
                ))
                .await
                .map_err(at(dest_object(service, dest.addr())))
        }

        /// See [`Ipvs::edit_destination`].
        pub async fn edit_destination(
            &mut self,
            service: &ServiceKey,
            dest: &Destination,
        ) -> Result<(), ApiError> {
            self.sock
                .execute(&IpvsMessage::set_dest(
                    service_key_attrs(service),
                    dest_attrs(dest),
                ))
                .await
                .map_err(at(dest_object(service, dest.addr())))
        }

        /// See [`Ipvs::delete_destination`].
        pub async fn delete_destination(
            &mut self,
            service: &ServiceKey,
            addr: SocketAddr,
        ) -> Result<(), ApiError> {
            self.sock
                .execute(&IpvsMessage::del_dest(
                    service_key_attrs(service),
                    dest_key_attrs(addr),
                ))
                .await
                .map_err(at(dest_object(service, addr)))
        }

        /// See [`Ipvs::zero`].
        pub async fn zero(&mut self, service: Option<&ServiceKey>) -> Result<(), ApiError> {
            let msg = IpvsMessage::zero(service.map(service_key_attrs));
            let r = self.sock.execute(&msg).await;
            match service {
                Some(k) => r.map_err(at(Object::Service(*k))),
                None => r.map_err(global),
            }
        }

        /// See [`Ipvs::flush`].
        pub async fn flush(&mut self) -> Result<(), ApiError> {
            self.sock
                .execute(&IpvsMessage::flush())
                .await
                .map_err(global)
        }

        /// See [`Ipvs::timeouts`].
        pub async fn timeouts(&mut self) -> Result<Timeouts, ApiError> {
            let (tcp, fin, udp) = self.sock.timeouts().await.map_err(at(Object::Timeouts))?;
            Ok(timeouts_from_secs(tcp, fin, udp)?)
        }

        /// See [`Ipvs::set_timeouts`].
        pub async fn set_timeouts(&mut self, timeouts: &Timeouts) -> Result<(), ApiError> {
            self.sock
                .execute(&timeouts_message(timeouts))
                .await
                .map_err(at(Object::Timeouts))
        }

        /// See [`Ipvs::start_daemon`].
        pub async fn start_daemon(&mut self, daemon: &SyncDaemon) -> Result<(), ApiError> {
            self.sock
                .execute(&IpvsMessage::new_daemon(daemon_attrs(daemon)))
                .await
                .map_err(at(Object::SyncDaemon))
        }

        /// See [`Ipvs::stop_daemon`].
        pub async fn stop_daemon(&mut self, state: SyncState) -> Result<(), ApiError> {
            let attrs = daemon_state_attrs(state);
            let timeout = self.sock.timeout();
            self.sock.set_timeout(timeout.min(STOP_DAEMON_WAIT));
            let result = self
                .sock
                .execute(&IpvsMessage::del_daemon(attrs.clone()))
                .await;
            self.sock.set_timeout(timeout);
            match result {
                Err(TransportError::Timeout { .. }) => {
                    let running = self.sock.daemons().await.map_err(at(Object::SyncDaemon))?;
                    stopped_or_timeout(&running, &attrs, result)
                }
                other => other.map_err(at(Object::SyncDaemon)),
            }
        }

        /// See [`Ipvs::daemons`].
        pub async fn daemons(&mut self) -> Result<Vec<SyncDaemon>, ApiError> {
            let ds = self.sock.daemons().await.map_err(at(Object::SyncDaemon))?;
            Ok(ds.iter().map(daemon_from_attrs).collect::<Result<_, _>>()?)
        }

        /// See [`Ipvs::info`].
        pub async fn info(&mut self) -> Result<Info, ApiError> {
            let i = self.sock.info().await.map_err(global)?;
            Ok(info_from_attrs(&i)?)
        }

        async fn current(
            &mut self,
            desired: &Table,
            opts: &ApplyOptions,
        ) -> Result<Table, ApiError> {
            let mut current = Table::new();
            for attrs in self.sock.services().await.map_err(global)? {
                match need(&attrs, desired, opts)? {
                    Need::Skip => {}
                    Need::KeyOnly(key) => add_key_only(&mut current, key)?,
                    Need::Drain(key) => {
                        let dests = self.sock.destinations(&attrs).await.map_err(global)?;
                        add_drained(&mut current, key, &attrs, &dests)?;
                    }
                    Need::Full => {
                        let dests = self.sock.destinations(&attrs).await.map_err(global)?;
                        add_full(&mut current, &attrs, &dests)?;
                    }
                }
            }
            Ok(current)
        }

        /// See [`Ipvs::plan`].
        pub async fn plan(
            &mut self,
            desired: &Table,
            opts: &ApplyOptions,
        ) -> Result<Plan, ApiError> {
            let desired = normalized(desired)?;
            let current = self.current(&desired, opts).await?;
            Ok(crate::reconcile::plan(&current, &desired, opts))
        }

        /// See [`Ipvs::apply`].
        pub async fn apply(
            &mut self,
            desired: &Table,
            opts: &ApplyOptions,
        ) -> Result<ApplyReport, ApiError> {
            let plan = self.plan(desired, opts).await?;
            self.execute(plan, opts).await
        }

        /// See [`Ipvs::execute`].
        pub async fn execute(
            &mut self,
            plan: Plan,
            opts: &ApplyOptions,
        ) -> Result<ApplyReport, ApiError> {
            if plan.is_empty() {
                return Ok(report(plan, BatchReport::default()));
            }
            let mut pieces = Pieces::new(plan.ops());
            while let Some(msgs) = pieces.next_messages() {
                let r = self
                    .sock
                    .batch(msgs, &batch_options(opts))
                    .await
                    .map_err(global)?;
                if !pieces.record(r, opts) {
                    break;
                }
            }
            let total = pieces.total;
            Ok(report(plan, total))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipvs_sys::transport::{BatchFailure, ErrorKind, KernelError};

    fn failure(index: usize) -> BatchFailure {
        BatchFailure {
            index,
            error: KernelError {
                op: "add service",
                object: "tcp 192.0.2.1:80".into(),
                errno: 17,
                kind: ErrorKind::AlreadyExists,
                ext: None,
            },
        }
    }

    fn piece(handled: usize, failed: &[usize]) -> BatchReport {
        BatchReport {
            handled,
            not_sent: 0,
            failures: failed.iter().copied().map(failure).collect(),
            sends: 1,
        }
    }

    fn ops(n: usize) -> Vec<Op> {
        let service: ServiceKey = "tcp 192.0.2.1:80".parse().unwrap();
        (0..n)
            .map(|i| {
                let ip = std::net::Ipv4Addr::from(0x0a00_0000 + u32::try_from(i).unwrap());
                Op::DeleteDestination {
                    service,
                    addr: SocketAddr::from((ip, 80)),
                }
            })
            .collect()
    }

    /// A fake transport: records every message and refuses those at `fail` (indices in
    /// the whole plan); the piece that holds `broken` is a transport error.
    fn fake<'a>(
        sent: &'a mut Vec<IpvsMessage>,
        fail: &'a [usize],
        broken: Option<usize>,
    ) -> impl FnMut(&[IpvsMessage]) -> Result<BatchReport, ApiError> + 'a {
        move |msgs| {
            let offset = sent.len();
            if broken.is_some_and(|b| (offset..offset + msgs.len()).contains(&b)) {
                return Err(ApiError::Transport(Box::new(TransportError::Timeout {
                    op: "batch",
                    timeout: Duration::from_secs(1),
                })));
            }
            sent.extend_from_slice(msgs);
            let local: Vec<usize> = fail
                .iter()
                .filter_map(|f| f.checked_sub(offset).filter(|i| *i < msgs.len()))
                .collect();
            Ok(piece(msgs.len(), &local))
        }
    }

    /// The overlapped sender sends the same messages and reports the same as the plain
    /// one: failures in several pieces, with and without `stop_at_first_error`, and a
    /// transport error in the middle.
    #[test]
    fn overlapped_sending_equals_sending_in_pieces() {
        let plan = ops(3 * PIECE + 17);
        let stop = ApplyOptions {
            stop_at_first_error: true,
            ..ApplyOptions::default()
        };
        let fails: [&[usize]; 4] = [
            &[],
            &[5, PIECE + 3, 2 * PIECE, 3 * PIECE + 16],
            &[PIECE - 1],
            &[3 * PIECE + 16],
        ];
        for opts in [ApplyOptions::default(), stop] {
            for fail in fails {
                for broken in [None, Some(PIECE + 1), Some(3 * PIECE)] {
                    let (mut a, mut b) = (Vec::new(), Vec::new());
                    let plain = send_in_pieces(&plan, &opts, fake(&mut a, fail, broken));
                    let overlapped = send_overlapped(&plan, &opts, fake(&mut b, fail, broken));
                    match (plain, overlapped) {
                        (Ok(x), Ok(y)) => {
                            assert_eq!(x, y);
                            assert_eq!(x.handled + x.not_sent, plan.len());
                            let indices: Vec<usize> = y.failures.iter().map(|f| f.index).collect();
                            let expected: Vec<usize> =
                                fail.iter().copied().filter(|i| *i < y.handled).collect();
                            assert_eq!(indices, expected);
                        }
                        (Err(x), Err(y)) => assert_eq!(x.to_string(), y.to_string()),
                        other => panic!("{other:?}"),
                    }
                    assert_eq!(a, b);
                    let expected: Vec<IpvsMessage> =
                        plan.iter().take(a.len()).map(Op::to_message).collect();
                    assert_eq!(a, expected);
                }
            }
        }
    }

    /// Failures of later pieces are numbered in the whole plan; after a failure with
    /// `stop_at_first_error` the rest of the plan counts as not sent.
    #[test]
    fn pieces_merge_into_one_report() {
        let go_on = ApplyOptions::default();
        let mut total = BatchReport::default();
        assert!(merge_piece(&mut total, piece(4, &[]), 0, 6, &go_on));
        assert!(merge_piece(&mut total, piece(4, &[1, 3]), 4, 2, &go_on));
        assert!(merge_piece(&mut total, piece(2, &[0]), 8, 0, &go_on));
        let indices: Vec<usize> = total.failures.iter().map(|f| f.index).collect();
        assert_eq!(indices, [5, 7, 8]);
        assert_eq!((total.handled, total.not_sent, total.sends), (10, 0, 3));

        let stop = ApplyOptions {
            stop_at_first_error: true,
            ..ApplyOptions::default()
        };
        let mut total = BatchReport::default();
        assert!(merge_piece(&mut total, piece(4, &[]), 0, 6, &stop));
        let mut second = piece(2, &[1]);
        second.not_sent = 2; // the transport stopped inside the piece
        assert!(!merge_piece(&mut total, second, 4, 2, &stop));
        assert_eq!((total.handled, total.not_sent), (6, 4));
        assert_eq!(total.failures[0].index, 5);
    }
}
