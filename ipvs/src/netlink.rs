//! Conversions between the typed model and the [`ipvs_sys`] netlink attributes.
//!
//! Encoding ([`service_attrs`], [`dest_attrs`], [`daemon_attrs`], ...) cannot fail: every
//! model value is something the kernel accepts. Decoding ([`service_from_attrs`],
//! [`destination_from_attrs`], ...) reads what the kernel reports and drops what the
//! kernel adds on its own, so that a dump compares equal to what was written:
//!
//! * the `HASHED` service flag, statistics and connection counters;
//! * the persistence timeout and netmask of a service that is not persistent;
//! * the tunnel type, port and flags of a destination that is not tunnelled, the tunnel
//!   port of a non-GUE tunnel and the checksum flags of an IPIP tunnel;
//! * a host persistence mask (`255.255.255.255`, `/128`) is no mask.
//!
//! Kernel data the model cannot represent (an unknown forwarding method, address family,
//! tunnel type, flag bit, a value the model's validation rejects) is a [`DecodeError`]
//! naming the object, never a panic. An unknown scheduler name is fine: it decodes as
//! [`Scheduler::Custom`].
//!
//! ```
//! use ipvs::netlink::{service_attrs, service_from_attrs};
//! use ipvs::{Scheduler, Service, ServiceKey};
//!
//! let svc = Service::builder(ServiceKey::tcp("192.0.2.1:80".parse()?))
//!     .scheduler(Scheduler::RoundRobin)
//!     .build()?;
//! let attrs = service_attrs(&svc);
//! assert_eq!(attrs.sched_name.as_deref(), Some("rr"));
//! assert_eq!(service_from_attrs(&attrs)?, svc);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipvs_sys::{
    DaemonAttrs, DaemonState, DestAttrs, ForwardMethod, InfoAttrs, Netmask, ServiceAttrs,
    ServiceFlags, Stats64, TunnelFlags, TunnelType,
};

use crate::error::{Error, Object, Problem};
use crate::kernel::{Info, IpvsVersion, Stats, SyncDaemon, SyncState, Timeouts};
use crate::types::{
    AddressFamily, Destination, Forward, Persistence, PersistenceEngine, PersistenceMask, Protocol,
    SchedFlags, Scheduler, Service, ServiceKey, TunnelChecksum, TunnelKind,
};

/// What in kernel data the model cannot represent. See [`DecodeError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeProblem {
    /// An attribute the kernel always sends is missing.
    #[error("attribute {0} is missing")]
    Missing(&'static str),
    /// An address family other than IPv4 and IPv6.
    #[error("unknown address family {0}")]
    UnknownFamily(u16),
    /// A protocol other than TCP, UDP and SCTP.
    #[error("unknown protocol {0}")]
    UnknownProtocol(u16),
    /// Service flag bits that IPVS does not define.
    #[error("unknown service flag bits {0:#x}")]
    UnknownServiceFlags(u32),
    /// A forwarding method other than masquerade, local, tunnel, route and bypass.
    #[error("unknown forwarding method {0}")]
    UnknownForward(u32),
    /// A tunnel type other than IPIP, GUE and GRE.
    #[error("unknown tunnel type {0}")]
    UnknownTunnelType(u8),
    /// Tunnel flags other than nocsum, csum and remcsum.
    #[error("unknown tunnel flags {0:#x}")]
    UnknownTunnelFlags(u16),
    /// An IPv6 persistence prefix length above 255.
    #[error("persistence prefix length {0} is out of range")]
    PrefixOutOfRange(u32),
    /// A persistence engine on a service that is not persistent (the model keeps the
    /// engine in [`Persistence`]).
    #[error("persistence engine {0:?} on a service that is not persistent")]
    EngineWithoutPersistence(String),
    /// A sync daemon state other than master and backup.
    #[error("unknown sync daemon state {0}")]
    UnknownDaemonState(u32),
    /// A sync id above 255.
    #[error("sync id {0} is above 255")]
    SyncIdOutOfRange(u32),
    /// A value that the model's validation rejects.
    #[error("{0}")]
    Invalid(Problem),
}

/// Kernel data that the model cannot represent, naming the object it is about.
///
/// Its text is `OBJECT: PROBLEM`, e.g. `service tcp 192.0.2.1:80: destination
/// 10.0.0.1:80: unknown forwarding method 7`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {problem}", object.as_ref().map_or("IPVS information".to_owned(), Object::to_string))]
pub struct DecodeError {
    /// The object; `None` for the kernel's global IPVS information.
    pub object: Option<Object>,
    /// What cannot be represented.
    pub problem: DecodeProblem,
}

impl DecodeError {
    fn new(object: Object, problem: DecodeProblem) -> Self {
        DecodeError {
            object: Some(object),
            problem,
        }
    }
}

impl From<Error> for DecodeError {
    fn from(e: Error) -> Self {
        DecodeError::new(e.object, DecodeProblem::Invalid(e.problem))
    }
}

fn sys_family(f: AddressFamily) -> ipvs_sys::AddressFamily {
    match f {
        AddressFamily::Inet => ipvs_sys::AddressFamily::INET,
        AddressFamily::Inet6 => ipvs_sys::AddressFamily::INET6,
    }
}

/// The identifying attributes of a service (what `DEL_SERVICE`, `GET_SERVICE`, `ZERO`
/// and the destination commands need).
///
/// ```
/// use ipvs::{AddressFamily, ServiceKey};
/// let attrs = ipvs::netlink::service_key_attrs(&ServiceKey::fwmark(AddressFamily::Inet6, 7)?);
/// assert_eq!(attrs.fwmark, Some(7));
/// assert_eq!(attrs.af, Some(ipvs_sys::AddressFamily::INET6));
/// # Ok::<(), ipvs::Error>(())
/// ```
pub fn service_key_attrs(key: &ServiceKey) -> ServiceAttrs {
    match key {
        ServiceKey::Addr { protocol, addr } => {
            ServiceAttrs::addr_key(ipvs_sys::Protocol(protocol.to_raw()), *addr)
        }
        ServiceKey::Fwmark { family, mark } => {
            ServiceAttrs::fwmark_key(sys_family(*family), mark.get())
        }
    }
}

/// The attributes `NEW_SERVICE` / `SET_SERVICE` need: the key, the scheduler, the flags
/// (set exactly, with mask `!0`), the persistence timeout (0 when not persistent), the
/// netmask (the host mask when none) and the persistence engine. Destinations are not
/// part of it.
///
/// ```
/// use ipvs::{Persistence, PersistenceMask, Service, ServiceKey};
/// use std::time::Duration;
/// let p = Persistence::new(Duration::from_secs(300))?.with_netmask(PersistenceMask::v6(64)?);
/// let svc = Service::builder(ServiceKey::tcp("[2001:db8::1]:443".parse()?)).persistence(p).build()?;
/// let attrs = ipvs::netlink::service_attrs(&svc);
/// assert_eq!(attrs.timeout, Some(300));
/// assert_eq!(attrs.netmask, Some(ipvs_sys::Netmask::V6Prefix(64)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn service_attrs(service: &Service) -> ServiceAttrs {
    let mut a = service_key_attrs(service.key());
    a.netmask = Some(match service.persistence_netmask() {
        PersistenceMask::V4(m) => Netmask::V4(m),
        PersistenceMask::V6(p) => Netmask::V6Prefix(u32::from(p)),
    });
    let timeout = service.persistence().map_or(0, Persistence::timeout_secs);
    let mut a = a.with_config(
        service.scheduler().name(),
        ServiceFlags(service.kernel_flags()),
        timeout,
    );
    a.pe_name = service
        .persistence()
        .and_then(Persistence::engine)
        .map(|e| e.as_str().to_owned());
    a
}

const SVC_F_PERSISTENT: u32 = 0x1;
const SVC_F_HASHED: u32 = 0x2;
const SVC_F_ONEPACKET: u32 = 0x4;
const SVC_F_SCHED_ALL: u32 = 0x8 | 0x10 | 0x20;

/// The service key of kernel service attributes. Errors name [`Object::ServiceKey`].
///
/// ```
/// use ipvs::netlink::{service_key_attrs, service_key_from_attrs};
/// let key = "sctp 192.0.2.1:3868".parse()?;
/// assert_eq!(service_key_from_attrs(&service_key_attrs(&key))?, key);
/// let mut bad = service_key_attrs(&key);
/// bad.protocol = Some(ipvs_sys::Protocol(99));
/// assert_eq!(service_key_from_attrs(&bad).unwrap_err().to_string(), "service: unknown protocol 99");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn service_key_from_attrs(attrs: &ServiceAttrs) -> Result<ServiceKey, DecodeError> {
    let err = |p| DecodeError::new(Object::ServiceKey, p);
    let af = attrs
        .af
        .ok_or_else(|| err(DecodeProblem::Missing("IPVS_SVC_ATTR_AF")))?;
    let family =
        AddressFamily::from_raw(af.0).ok_or_else(|| err(DecodeProblem::UnknownFamily(af.0)))?;
    if let Some(mark) = attrs.fwmark.filter(|m| *m != 0) {
        return ServiceKey::fwmark(family, mark).map_err(DecodeError::from);
    }
    let proto = attrs
        .protocol
        .ok_or_else(|| err(DecodeProblem::Missing("IPVS_SVC_ATTR_PROTOCOL")))?;
    let protocol =
        Protocol::from_raw(proto.0).ok_or_else(|| err(DecodeProblem::UnknownProtocol(proto.0)))?;
    let ip = attrs
        .addr
        .ok_or_else(|| err(DecodeProblem::Missing("IPVS_SVC_ATTR_ADDR")))?;
    if AddressFamily::of(ip) != family {
        return Err(err(DecodeProblem::UnknownFamily(af.0)));
    }
    let port = attrs
        .port
        .ok_or_else(|| err(DecodeProblem::Missing("IPVS_SVC_ATTR_PORT")))?;
    Ok(ServiceKey::Addr {
        protocol,
        addr: SocketAddr::new(ip, port),
    })
}

/// A service (without destinations) from kernel service attributes; see the
/// [module documentation](self) for what is dropped.
///
/// ```
/// use ipvs_sys::{Protocol, ServiceAttrs, ServiceFlags};
/// // The kernel reports the HASHED flag and a netmask for every service.
/// let mut attrs = ServiceAttrs::addr_key(Protocol::UDP, "192.0.2.1:53".parse()?)
///     .with_config("my-sched", ServiceFlags::HASHED, 0);
/// attrs.flags.as_mut().unwrap().flags = ServiceFlags::HASHED;
/// let svc = ipvs::netlink::service_from_attrs(&attrs)?;
/// assert_eq!(svc.scheduler().name(), "my-sched");
/// assert!(svc.persistence().is_none());
///
/// attrs.flags.as_mut().unwrap().flags = ServiceFlags(0x40);
/// let err = ipvs::netlink::service_from_attrs(&attrs).unwrap_err();
/// assert_eq!(err.to_string(), "service udp 192.0.2.1:53: unknown service flag bits 0x40");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn service_from_attrs(attrs: &ServiceAttrs) -> Result<Service, DecodeError> {
    let key = service_key_from_attrs(attrs)?;
    let err = |p| DecodeError::new(Object::Service(key), p);
    let sched = attrs
        .sched_name
        .as_deref()
        .ok_or_else(|| err(DecodeProblem::Missing("IPVS_SVC_ATTR_SCHED_NAME")))?;
    let scheduler = Scheduler::new(sched).map_err(|e| err(DecodeProblem::Invalid(e.problem)))?;
    let flags = attrs
        .flags
        .ok_or_else(|| err(DecodeProblem::Missing("IPVS_SVC_ATTR_FLAGS")))?
        .flags
        .0;
    let unknown = flags & !(SVC_F_PERSISTENT | SVC_F_HASHED | SVC_F_ONEPACKET | SVC_F_SCHED_ALL);
    if unknown != 0 {
        return Err(err(DecodeProblem::UnknownServiceFlags(unknown)));
    }
    let mut b = Service::builder(key)
        .scheduler(scheduler)
        .sched_flags(SchedFlags::from_kernel_bits(flags))
        .one_packet(flags & SVC_F_ONEPACKET != 0);
    let engine = attrs.pe_name.as_deref().filter(|n| !n.is_empty());
    if flags & SVC_F_PERSISTENT != 0 {
        let timeout = attrs
            .timeout
            .ok_or_else(|| err(DecodeProblem::Missing("IPVS_SVC_ATTR_TIMEOUT")))?;
        let invalid = |e: Error| err(DecodeProblem::Invalid(e.problem));
        let mut p = Persistence::new(Duration::from_secs(u64::from(timeout))).map_err(invalid)?;
        if let Some(m) = attrs.netmask {
            let mask = match m {
                Netmask::V4(m) => PersistenceMask::v4(m).map_err(invalid)?,
                Netmask::V6Prefix(n) => {
                    let n = u8::try_from(n).map_err(|_| err(DecodeProblem::PrefixOutOfRange(n)))?;
                    PersistenceMask::v6(n).map_err(invalid)?
                }
            };
            p = p.with_netmask(mask);
        }
        if let Some(e) = engine {
            p = p.with_engine(PersistenceEngine::new(e).map_err(invalid)?);
        }
        b = b.persistence(p);
    } else if let Some(e) = engine {
        return Err(err(DecodeProblem::EngineWithoutPersistence(e.to_owned())));
    }
    Ok(b.build()?)
}

/// The attributes `NEW_DEST` / `SET_DEST` need: address, port, forwarding method,
/// weight, thresholds, and for a tunnel its type, port and flags.
///
/// ```
/// use ipvs::{Destination, Forward, TunnelChecksum, TunnelKind};
/// let fwd = Forward::Tunnel { kind: TunnelKind::Gue { port: 6080 }, checksum: TunnelChecksum::Checksum };
/// let d = Destination::new("10.0.0.1:80".parse()?, fwd)?.with_weight(5)?;
/// let a = ipvs::netlink::dest_attrs(&d);
/// assert_eq!((a.fwd_method, a.weight, a.tun_port), (Some(ipvs_sys::ForwardMethod::TUNNEL), Some(5), Some(6080)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn dest_attrs(dest: &Destination) -> DestAttrs {
    let mut a = DestAttrs::key_of(dest.addr());
    a.u_thresh = Some(dest.upper_threshold());
    a.l_thresh = Some(dest.lower_threshold());
    let mut a = a.with_config(ForwardMethod(dest.forward().to_kernel()), dest.weight());
    if let Forward::Tunnel { kind, checksum } = dest.forward() {
        let (t, port) = match kind {
            TunnelKind::Ipip => (TunnelType::IPIP, 0),
            TunnelKind::Gue { port } => (TunnelType::GUE, port),
            TunnelKind::Gre => (TunnelType::GRE, 0),
        };
        a.tun_type = Some(t);
        a.tun_port = Some(port);
        a.tun_flags = Some(TunnelFlags(checksum.to_kernel()));
    }
    a
}

/// The identifying attributes of a destination (what `DEL_DEST` needs).
///
/// ```
/// let a = ipvs::netlink::dest_key_attrs("10.0.0.1:80".parse()?);
/// assert_eq!((a.port, a.weight), (Some(80), None));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn dest_key_attrs(addr: SocketAddr) -> DestAttrs {
    DestAttrs::key_of(addr)
}

/// A destination of the service `service` from kernel destination attributes; see the
/// [module documentation](self) for what is dropped. Errors name the destination (or the
/// service, when the address is missing).
///
/// ```
/// use ipvs::{Forward, ServiceKey};
/// use ipvs_sys::{DestAttrs, ForwardMethod};
/// let svc = ServiceKey::tcp("192.0.2.1:80".parse()?);
/// let mut a = DestAttrs::key_of("10.0.0.1:80".parse()?).with_config(ForwardMethod::ROUTE, 3);
/// a.tun_type = Some(ipvs_sys::TunnelType::IPIP); // the kernel reports tunnel fields always
/// let d = ipvs::netlink::destination_from_attrs(&svc, &a)?;
/// assert_eq!((d.forward(), d.weight()), (Forward::DirectRoute, 3));
///
/// a.fwd_method = Some(ForwardMethod(7));
/// let e = ipvs::netlink::destination_from_attrs(&svc, &a).unwrap_err();
/// assert_eq!(e.to_string(), "service tcp 192.0.2.1:80: destination 10.0.0.1:80: unknown forwarding method 7");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn destination_from_attrs(
    service: &ServiceKey,
    attrs: &DestAttrs,
) -> Result<Destination, DecodeError> {
    let svc_err = |p| DecodeError::new(Object::Service(*service), p);
    let ip = attrs
        .addr
        .ok_or_else(|| svc_err(DecodeProblem::Missing("IPVS_DEST_ATTR_ADDR")))?;
    let port = attrs
        .port
        .ok_or_else(|| svc_err(DecodeProblem::Missing("IPVS_DEST_ATTR_PORT")))?;
    let addr = SocketAddr::new(ip, port);
    let object = Object::Destination {
        service: Some(*service),
        addr,
    };
    let err = |p| DecodeError::new(object.clone(), p);
    let invalid = |e: Error| err(DecodeProblem::Invalid(e.problem));
    let fwd = attrs
        .fwd_method
        .ok_or_else(|| err(DecodeProblem::Missing("IPVS_DEST_ATTR_FWD_METHOD")))?;
    let forward = match fwd.0 {
        0 => Forward::Masquerade,
        1 => Forward::Local,
        2 => {
            let kind = match attrs.tun_type.unwrap_or(TunnelType::IPIP) {
                TunnelType::IPIP => TunnelKind::Ipip,
                TunnelType::GUE => TunnelKind::Gue {
                    port: attrs.tun_port.unwrap_or(0),
                },
                TunnelType::GRE => TunnelKind::Gre,
                TunnelType(t) => return Err(err(DecodeProblem::UnknownTunnelType(t))),
            };
            let checksum = match kind {
                // The kernel keeps but never uses checksum flags for IPIP.
                TunnelKind::Ipip => TunnelChecksum::NoChecksum,
                _ => {
                    let f = attrs.tun_flags.unwrap_or(TunnelFlags::NOCSUM).0;
                    TunnelChecksum::from_kernel(f)
                        .ok_or_else(|| err(DecodeProblem::UnknownTunnelFlags(f)))?
                }
            };
            Forward::Tunnel { kind, checksum }
        }
        3 => Forward::DirectRoute,
        4 => Forward::Bypass,
        other => return Err(err(DecodeProblem::UnknownForward(other))),
    };
    let weight = attrs
        .weight
        .ok_or_else(|| err(DecodeProblem::Missing("IPVS_DEST_ATTR_WEIGHT")))?;
    Destination::new(addr, forward)
        .and_then(|d| d.with_weight(weight))
        .and_then(|d| d.with_thresholds(attrs.u_thresh.unwrap_or(0), attrs.l_thresh.unwrap_or(0)))
        .map_err(invalid)
}

/// A service with its destinations from a service and its destinations as the kernel
/// reports them (a `GET_SERVICE` entry and the `GET_DEST` dump of that service).
///
/// ```
/// use ipvs::netlink::{dest_attrs, service_attrs, service_with_dests_from_attrs};
/// let t = ipvs::ipvsadm::parse("-A -f 7 -s rr\n-a -f 7 -r 10.0.0.1:0 -g -w 2\n")?;
/// let svc = t.services().next().unwrap();
/// let dests: Vec<_> = svc.destinations().map(dest_attrs).collect();
/// assert_eq!(&service_with_dests_from_attrs(&service_attrs(svc), &dests)?, svc);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn service_with_dests_from_attrs(
    attrs: &ServiceAttrs,
    dests: &[DestAttrs],
) -> Result<Service, DecodeError> {
    let mut svc = service_from_attrs(attrs)?;
    let key = *svc.key();
    for d in dests {
        let dest = destination_from_attrs(&key, d)?;
        svc.add_destination(dest)?;
    }
    Ok(svc)
}

/// Counters from kernel statistics: the 64-bit ones when present (kernel 4.1 and later),
/// else the legacy 32-bit ones, else zero.
///
/// ```
/// let mut s64 = ipvs_sys::Stats64::default();
/// s64.conns = 5_000_000_000;
/// let s = ipvs::netlink::stats_from_attrs(Some(&s64), Some(&ipvs_sys::Stats::default()));
/// assert_eq!(s.conns, 5_000_000_000);
/// ```
pub fn stats_from_attrs(stats64: Option<&Stats64>, stats: Option<&ipvs_sys::Stats>) -> Stats {
    if let Some(s) = stats64 {
        return Stats {
            conns: s.conns,
            inpkts: s.inpkts,
            outpkts: s.outpkts,
            inbytes: s.inbytes,
            outbytes: s.outbytes,
            cps: s.cps,
            inpps: s.inpps,
            outpps: s.outpps,
            inbps: s.inbps,
            outbps: s.outbps,
        };
    }
    match stats {
        Some(s) => Stats {
            conns: u64::from(s.conns),
            inpkts: u64::from(s.inpkts),
            outpkts: u64::from(s.outpkts),
            inbytes: s.inbytes,
            outbytes: s.outbytes,
            cps: u64::from(s.cps),
            inpps: u64::from(s.inpps),
            outpps: u64::from(s.outpps),
            inbps: u64::from(s.inbps),
            outbps: u64::from(s.outbps),
        },
        None => Stats::default(),
    }
}

/// The kernel's 64-bit statistics nest for counters.
///
/// ```
/// let s = ipvs::Stats { inbytes: 1 << 40, ..ipvs::Stats::default() };
/// let a = ipvs::netlink::stats64_attrs(&s);
/// assert_eq!(ipvs::netlink::stats_from_attrs(Some(&a), None), s);
/// ```
pub fn stats64_attrs(stats: &Stats) -> Stats64 {
    Stats64 {
        conns: stats.conns,
        inpkts: stats.inpkts,
        outpkts: stats.outpkts,
        inbytes: stats.inbytes,
        outbytes: stats.outbytes,
        cps: stats.cps,
        inpps: stats.inpps,
        outpps: stats.outpps,
        inbps: stats.inbps,
        outbps: stats.outbps,
        unknown: Vec::new(),
    }
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// The `SET_CONFIG` request for timeouts (a zero timeout is left out: unchanged).
///
/// ```
/// use ipvs::Timeouts;
/// use std::time::Duration;
/// let t = Timeouts::new(Duration::from_secs(900), Duration::ZERO, Duration::from_secs(60))?;
/// let msg = ipvs::netlink::timeouts_message(&t);
/// let a = msg.cmd_attrs().unwrap();
/// assert_eq!((a.timeout_tcp, a.timeout_tcp_fin, a.timeout_udp), (Some(900), None, Some(60)));
/// # Ok::<(), ipvs::Error>(())
/// ```
pub fn timeouts_message(t: &Timeouts) -> ipvs_sys::IpvsMessage {
    let opt = |d: Duration| Some(secs(d)).filter(|s| *s != 0);
    ipvs_sys::IpvsMessage::set_config(opt(t.tcp()), opt(t.tcp_fin()), opt(t.udp()))
}

/// Timeouts from the kernel's `(tcp, tcp_fin, udp)` seconds.
///
/// ```
/// let t = ipvs::netlink::timeouts_from_secs(900, 120, 300)?;
/// assert_eq!(t.udp().as_secs(), 300);
/// assert!(ipvs::netlink::timeouts_from_secs(u32::MAX, 0, 0).is_err()); // above 31 days
/// # Ok::<(), ipvs::netlink::DecodeError>(())
/// ```
pub fn timeouts_from_secs(tcp: u32, tcp_fin: u32, udp: u32) -> Result<Timeouts, DecodeError> {
    let d = |s| Duration::from_secs(u64::from(s));
    Ok(Timeouts::new(d(tcp), d(tcp_fin), d(udp))?)
}

/// The `NEW_DAEMON` attributes of a sync daemon (unset options are left out: the
/// kernel's defaults).
pub fn daemon_attrs(d: &SyncDaemon) -> DaemonAttrs {
    let (g4, g6) = match d.mcast_group() {
        Some(IpAddr::V4(a)) => (Some(a), None),
        Some(IpAddr::V6(a)) => (None, Some(a)),
        None => (None, None),
    };
    DaemonAttrs {
        state: Some(DaemonState(d.state().to_kernel())),
        mcast_ifn: Some(d.mcast_ifn().to_owned()),
        sync_id: Some(u32::from(d.sync_id())),
        sync_maxlen: d.sync_maxlen(),
        mcast_group: g4,
        mcast_group6: g6,
        mcast_port: d.mcast_port(),
        mcast_ttl: d.mcast_ttl(),
        unknown: Vec::new(),
    }
}

/// The `DEL_DAEMON` attributes for the daemon in `state`.
///
/// ```
/// let a = ipvs::netlink::daemon_state_attrs(ipvs::SyncState::Master);
/// assert_eq!(a.state, Some(ipvs_sys::DaemonState::MASTER));
/// ```
pub fn daemon_state_attrs(state: SyncState) -> DaemonAttrs {
    DaemonAttrs {
        state: Some(DaemonState(state.to_kernel())),
        ..DaemonAttrs::default()
    }
}

/// A sync daemon as the kernel reports it (it reports every option, with its defaults
/// filled in). Errors name [`Object::SyncDaemon`].
///
/// ```
/// use ipvs::{SyncDaemon, SyncState};
/// let d = SyncDaemon::new(SyncState::Backup, "eth1", 9)?.with_mcast_port(8849)?;
/// let back = ipvs::netlink::daemon_from_attrs(&ipvs::netlink::daemon_attrs(&d))?;
/// assert_eq!(back, d);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn daemon_from_attrs(a: &DaemonAttrs) -> Result<SyncDaemon, DecodeError> {
    let err = |p| DecodeError::new(Object::SyncDaemon, p);
    let state = match a
        .state
        .ok_or_else(|| err(DecodeProblem::Missing("IPVS_DAEMON_ATTR_STATE")))?
        .0
    {
        1 => SyncState::Master,
        2 => SyncState::Backup,
        s => return Err(err(DecodeProblem::UnknownDaemonState(s))),
    };
    let ifn = a
        .mcast_ifn
        .as_deref()
        .ok_or_else(|| err(DecodeProblem::Missing("IPVS_DAEMON_ATTR_MCAST_IFN")))?;
    let id = a
        .sync_id
        .ok_or_else(|| err(DecodeProblem::Missing("IPVS_DAEMON_ATTR_SYNC_ID")))?;
    let id = u8::try_from(id).map_err(|_| err(DecodeProblem::SyncIdOutOfRange(id)))?;
    let mut d = SyncDaemon::new(state, ifn, id)?;
    if let Some(len) = a.sync_maxlen {
        d = d.with_sync_maxlen(len)?;
    }
    if let Some(g) = a
        .mcast_group6
        .map(IpAddr::V6)
        .or(a.mcast_group.map(IpAddr::V4))
    {
        d = d.with_mcast_group(g)?;
    }
    if let Some(p) = a.mcast_port {
        d = d.with_mcast_port(p)?;
    }
    if let Some(t) = a.mcast_ttl {
        d = d.with_mcast_ttl(t)?;
    }
    Ok(d)
}

/// The kernel's IPVS information from a `GET_INFO` reply.
///
/// ```
/// let a = ipvs_sys::InfoAttrs { version: Some(0x010201), conn_tab_size: Some(4096), unknown: vec![] };
/// let info = ipvs::netlink::info_from_attrs(&a)?;
/// assert_eq!((info.version.to_string(), info.conn_table_size), ("1.2.1".to_string(), 4096));
/// assert_eq!(ipvs::netlink::info_attrs(&info), a);
/// # Ok::<(), ipvs::netlink::DecodeError>(())
/// ```
pub fn info_from_attrs(a: &InfoAttrs) -> Result<Info, DecodeError> {
    let err = |what| DecodeError {
        object: None,
        problem: DecodeProblem::Missing(what),
    };
    Ok(Info {
        version: IpvsVersion(a.version.ok_or_else(|| err("IPVS_INFO_ATTR_VERSION"))?),
        conn_table_size: a
            .conn_tab_size
            .ok_or_else(|| err("IPVS_INFO_ATTR_CONN_TAB_SIZE"))?,
    })
}

/// The `SET_INFO` attributes of information (what the kernel replies to `GET_INFO`).
pub fn info_attrs(info: &Info) -> InfoAttrs {
    InfoAttrs {
        version: Some(info.version.0),
        conn_tab_size: Some(info.conn_table_size),
        unknown: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{PersistenceEngine, TunnelChecksum};
    use ipvs_sys::{IpvsMessage, Protocol as SysProtocol, SvcFlags};
    use std::net::Ipv4Addr;

    type DestChange = Box<dyn Fn(&mut DestAttrs)>;
    type SvcChange = Box<dyn Fn(&mut ServiceAttrs)>;

    /// Encodes a message to its wire attributes and decodes it back, as the kernel sees
    /// and answers it.
    fn wire(msg: &IpvsMessage) -> IpvsMessage {
        let mut buf = Vec::new();
        let r = ipvs_sys::encode_request(&mut buf, msg, 0x1c, 1, 0).unwrap();
        IpvsMessage::decode_genl(&buf[r.start + 16..r.end], None).unwrap()
    }

    fn svc_wire(s: &Service) -> ServiceAttrs {
        wire(&IpvsMessage::new_service(service_attrs(s)))
            .service()
            .unwrap()
            .clone()
    }

    fn dest_wire(k: &ServiceKey, d: &Destination) -> DestAttrs {
        wire(&IpvsMessage::new_dest(service_key_attrs(k), dest_attrs(d)))
            .dest()
            .unwrap()
            .clone()
    }

    /// What the kernel adds to a service in a dump.
    fn as_dumped(mut a: ServiceAttrs) -> ServiceAttrs {
        let f = a.flags.unwrap();
        a.flags = Some(SvcFlags {
            flags: ServiceFlags(f.flags.0 | 0x2),
            mask: ServiceFlags::ALL,
        });
        a.stats = Some(ipvs_sys::Stats::default());
        a.stats64 = Some(Stats64::default());
        if a.fwmark.is_some() {
            a.protocol = Some(SysProtocol(0));
            a.addr = None;
            a.port = None;
        }
        a
    }

    #[test]
    fn every_scheduler_and_flag_round_trips() {
        let k = ServiceKey::udp("192.0.2.1:53".parse().unwrap());
        let mut scheds: Vec<Scheduler> = Scheduler::builtin().collect();
        scheds.push(Scheduler::new("out-of-tree").unwrap());
        for s in scheds {
            for bits in 0u32..8 {
                let flags = SchedFlags::from_kernel_bits(bits << 3);
                for one_packet in [false, true] {
                    let Ok(svc) = Service::builder(k)
                        .scheduler(s.clone())
                        .sched_flags(flags)
                        .one_packet(one_packet)
                        .build()
                    else {
                        continue;
                    };
                    let a = svc_wire(&svc);
                    assert_eq!(a.sched_name.as_deref(), Some(s.name()));
                    assert_eq!(
                        a.flags.unwrap().flags.0,
                        bits << 3 | if one_packet { 4 } else { 0 }
                    );
                    assert_eq!(a.flags.unwrap().mask, ServiceFlags::ALL);
                    assert_eq!(service_from_attrs(&as_dumped(a)).unwrap(), svc);
                }
            }
        }
    }

    #[test]
    fn persistence_timeout_netmask_and_engine() {
        let v4 = ServiceKey::tcp("192.0.2.1:0".parse().unwrap());
        let p = Persistence::new(Duration::from_secs(1800))
            .unwrap()
            .with_netmask(PersistenceMask::v4(Ipv4Addr::new(255, 255, 255, 0)).unwrap())
            .with_engine(PersistenceEngine::sip());
        let svc = Service::builder(v4).persistence(p).build().unwrap();
        let a = svc_wire(&svc);
        assert_eq!(a.timeout, Some(1800));
        assert_eq!(
            a.netmask,
            Some(Netmask::V4(Ipv4Addr::new(255, 255, 255, 0)))
        );
        assert_eq!(a.pe_name.as_deref(), Some("sip"));
        assert_eq!(a.flags.unwrap().flags.0, 1);
        assert_eq!(service_from_attrs(&as_dumped(a)).unwrap(), svc);

        let v6 = ServiceKey::fwmark(AddressFamily::Inet6, 9).unwrap();
        let p = Persistence::new(Duration::from_secs(60))
            .unwrap()
            .with_netmask(PersistenceMask::v6(48).unwrap());
        let svc = Service::builder(v6).persistence(p).build().unwrap();
        let a = svc_wire(&svc);
        assert_eq!(a.netmask, Some(Netmask::V6Prefix(48)));
        assert_eq!(a.pe_name, None);
        assert_eq!(service_from_attrs(&as_dumped(a)).unwrap(), svc);

        // A host mask is no mask; sent as the host mask.
        let p = Persistence::new(Duration::from_secs(60))
            .unwrap()
            .with_netmask(PersistenceMask::v6(128).unwrap());
        let svc = Service::builder(v6).persistence(p).build().unwrap();
        assert_eq!(svc_wire(&svc).netmask, Some(Netmask::V6Prefix(128)));
        assert_eq!(svc.persistence().unwrap().netmask(), None);
    }

    #[test]
    fn kernel_noise_of_non_persistent_services_is_ignored() {
        let k = ServiceKey::tcp("[2001:db8::1]:80".parse().unwrap());
        let svc = Service::builder(k).build().unwrap();
        let mut a = as_dumped(service_attrs(&svc));
        // What another tool may leave: a timeout and a netmask without persistence.
        a.timeout = Some(300);
        a.netmask = Some(Netmask::V6Prefix(64));
        assert_eq!(service_from_attrs(&a).unwrap(), svc);
        // And the default IPv6 netmask is a prefix length, not a mask.
        assert_eq!(service_attrs(&svc).netmask, Some(Netmask::V6Prefix(128)));
        let v4 = Service::builder(ServiceKey::tcp("192.0.2.1:80".parse().unwrap()))
            .build()
            .unwrap();
        assert_eq!(
            service_attrs(&v4).netmask,
            Some(Netmask::V4(Ipv4Addr::BROADCAST))
        );
    }

    #[test]
    fn fwmark_keys_come_back_without_address() {
        for fam in [AddressFamily::Inet, AddressFamily::Inet6] {
            let k = ServiceKey::fwmark(fam, u32::MAX).unwrap();
            let a = as_dumped(service_key_attrs(&k).with_config("rr", ServiceFlags::EMPTY, 0));
            assert_eq!(service_key_from_attrs(&a).unwrap(), k);
        }
        for (p, k) in [
            (
                SysProtocol::TCP,
                ServiceKey::tcp("192.0.2.1:1".parse().unwrap()),
            ),
            (
                SysProtocol::UDP,
                ServiceKey::udp("192.0.2.1:1".parse().unwrap()),
            ),
            (
                SysProtocol::SCTP,
                ServiceKey::sctp("192.0.2.1:1".parse().unwrap()),
            ),
        ] {
            let a = service_key_attrs(&k);
            assert_eq!(a.protocol, Some(p));
            assert_eq!(service_key_from_attrs(&a).unwrap(), k);
        }
    }

    #[test]
    fn every_forwarding_method_and_tunnel_round_trips() {
        let k = ServiceKey::tcp("192.0.2.1:80".parse().unwrap());
        let mut fwds = vec![
            Forward::Masquerade,
            Forward::DirectRoute,
            Forward::Local,
            Forward::Bypass,
        ];
        for kind in [
            TunnelKind::Ipip,
            TunnelKind::Gue { port: 6080 },
            TunnelKind::Gre,
        ] {
            for checksum in [
                TunnelChecksum::NoChecksum,
                TunnelChecksum::Checksum,
                TunnelChecksum::RemoteChecksum,
            ] {
                fwds.push(Forward::Tunnel { kind, checksum });
            }
        }
        for fwd in fwds {
            let Ok(d) = Destination::new("10.0.0.1:8080".parse().unwrap(), fwd) else {
                continue;
            };
            let d = d
                .with_weight(i32::MAX as u32)
                .unwrap()
                .with_thresholds(1000, 10)
                .unwrap();
            let mut a = dest_wire(&k, &d);
            assert_eq!(a.fwd_method, Some(ForwardMethod(fwd.to_kernel())));
            assert_eq!((a.u_thresh, a.l_thresh), (Some(1000), Some(10)));
            assert_eq!(a.tun_type.is_some(), fwd.is_tunnel());
            // The kernel reports tunnel fields for every destination.
            a.tun_type.get_or_insert(TunnelType::IPIP);
            a.tun_port.get_or_insert(0);
            a.tun_flags.get_or_insert(TunnelFlags::NOCSUM);
            a.active_conns = Some(3);
            assert_eq!(destination_from_attrs(&k, &a).unwrap(), d, "{fwd:?}");
        }
    }

    #[test]
    fn noise_in_tunnel_fields_is_ignored() {
        let k = ServiceKey::tcp("192.0.2.1:80".parse().unwrap());
        let mut a = dest_attrs(
            &Destination::new("10.0.0.1:80".parse().unwrap(), Forward::Masquerade).unwrap(),
        );
        a.tun_type = Some(TunnelType::GUE);
        a.tun_port = Some(99);
        a.tun_flags = Some(TunnelFlags(0x7));
        assert_eq!(
            destination_from_attrs(&k, &a).unwrap().forward(),
            Forward::Masquerade
        );
        a.fwd_method = Some(ForwardMethod::TUNNEL);
        a.tun_type = Some(TunnelType::IPIP);
        assert_eq!(
            destination_from_attrs(&k, &a).unwrap().forward(),
            Forward::IPIP
        );
        a.tun_type = Some(TunnelType::GRE);
        a.tun_flags = Some(TunnelFlags::CSUM);
        assert_eq!(
            destination_from_attrs(&k, &a).unwrap().forward(),
            Forward::Tunnel {
                kind: TunnelKind::Gre,
                checksum: TunnelChecksum::Checksum
            }
        );
    }

    #[test]
    fn unrepresentable_destinations_are_typed_errors() {
        let k = ServiceKey::tcp("192.0.2.1:80".parse().unwrap());
        let base = dest_attrs(
            &Destination::new("10.0.0.1:80".parse().unwrap(), Forward::Masquerade).unwrap(),
        );
        let obj = Object::Destination {
            service: Some(k),
            addr: "10.0.0.1:80".parse().unwrap(),
        };
        let cases: Vec<(DestChange, DecodeProblem)> = vec![
            (
                Box::new(|a| a.fwd_method = Some(ForwardMethod(5))),
                DecodeProblem::UnknownForward(5),
            ),
            (
                Box::new(|a| {
                    a.fwd_method = Some(ForwardMethod::TUNNEL);
                    a.tun_type = Some(TunnelType(9));
                }),
                DecodeProblem::UnknownTunnelType(9),
            ),
            (
                Box::new(|a| {
                    a.fwd_method = Some(ForwardMethod::TUNNEL);
                    a.tun_type = Some(TunnelType::GUE);
                    a.tun_port = Some(1);
                    a.tun_flags = Some(TunnelFlags(8));
                }),
                DecodeProblem::UnknownTunnelFlags(8),
            ),
            (
                Box::new(|a| {
                    a.fwd_method = Some(ForwardMethod::TUNNEL);
                    a.tun_type = Some(TunnelType::GUE);
                    a.tun_port = Some(0);
                }),
                DecodeProblem::Invalid(Problem::GuePortZero),
            ),
            (
                Box::new(|a| a.weight = Some(u32::MAX)),
                DecodeProblem::Invalid(Problem::WeightTooLarge(u32::MAX)),
            ),
            (
                Box::new(|a| {
                    a.u_thresh = Some(1);
                    a.l_thresh = Some(2);
                }),
                DecodeProblem::Invalid(Problem::ThresholdOrder { lower: 2, upper: 1 }),
            ),
            (
                Box::new(|a| a.weight = None),
                DecodeProblem::Missing("IPVS_DEST_ATTR_WEIGHT"),
            ),
        ];
        for (change, problem) in cases {
            let mut a = base.clone();
            change(&mut a);
            let e = destination_from_attrs(&k, &a).unwrap_err();
            assert_eq!(e, DecodeError::new(obj.clone(), problem));
        }
        let mut a = base.clone();
        a.addr = None;
        let e = destination_from_attrs(&k, &a).unwrap_err();
        assert_eq!(e.object, Some(Object::Service(k)));
        // A non-tunnel destination of the other family.
        let mut svc_attrs = service_attrs(&Service::builder(k).build().unwrap());
        svc_attrs.flags = Some(SvcFlags::set_all(ServiceFlags::EMPTY));
        let v6 = dest_attrs(
            &Destination::new("[2001:db8::1]:80".parse().unwrap(), Forward::Masquerade).unwrap(),
        );
        let e = service_with_dests_from_attrs(&svc_attrs, &[v6]).unwrap_err();
        assert_eq!(
            e.problem,
            DecodeProblem::Invalid(Problem::MixedFamilyNeedsTunnel)
        );
    }

    #[test]
    fn unrepresentable_services_are_typed_errors() {
        let k = ServiceKey::tcp("192.0.2.1:80".parse().unwrap());
        let base = as_dumped(service_attrs(&Service::builder(k).build().unwrap()));
        let svc = Some(Object::Service(k));
        let cases: Vec<(SvcChange, Option<Object>, DecodeProblem)> = vec![
            (
                Box::new(|a| a.af = Some(ipvs_sys::AddressFamily(7))),
                Some(Object::ServiceKey),
                DecodeProblem::UnknownFamily(7),
            ),
            (
                Box::new(|a| a.protocol = Some(SysProtocol(50))),
                Some(Object::ServiceKey),
                DecodeProblem::UnknownProtocol(50),
            ),
            (
                Box::new(|a| a.sched_name = Some("a-name-longer-than-15".into())),
                svc.clone(),
                DecodeProblem::Invalid(Problem::SchedulerNameTooLong(
                    "a-name-longer-than-15".into(),
                )),
            ),
            (
                Box::new(|a| a.flags = Some(SvcFlags::set_all(ServiceFlags(0x4)))),
                svc.clone(),
                DecodeProblem::Invalid(Problem::OnePacketNotUdp("tcp")),
            ),
            (
                Box::new(|a| a.flags = Some(SvcFlags::set_all(ServiceFlags(0x8)))),
                svc.clone(),
                DecodeProblem::Invalid(Problem::SchedFlagNotValid {
                    flag: "flag-1".into(),
                    scheduler: "wlc".into(),
                }),
            ),
            (
                Box::new(|a| {
                    a.flags = Some(SvcFlags::set_all(ServiceFlags(0x1)));
                    a.timeout = Some(0);
                }),
                svc.clone(),
                DecodeProblem::Invalid(Problem::PersistenceTimeoutZero),
            ),
            (
                Box::new(|a| {
                    a.flags = Some(SvcFlags::set_all(ServiceFlags(0x1)));
                    a.timeout = Some(10);
                    a.netmask = Some(Netmask::V4(Ipv4Addr::new(255, 0, 255, 0)));
                }),
                svc.clone(),
                DecodeProblem::Invalid(Problem::NetmaskNotContiguous(Ipv4Addr::new(
                    255, 0, 255, 0,
                ))),
            ),
            (
                Box::new(|a| a.pe_name = Some("sip".into())),
                svc.clone(),
                DecodeProblem::EngineWithoutPersistence("sip".into()),
            ),
            (
                Box::new(|a| a.sched_name = None),
                svc.clone(),
                DecodeProblem::Missing("IPVS_SVC_ATTR_SCHED_NAME"),
            ),
        ];
        for (change, object, problem) in cases {
            let mut a = base.clone();
            change(&mut a);
            let e = service_from_attrs(&a).unwrap_err();
            assert_eq!((e.object, e.problem), (object, problem));
        }
        // Unknown scheduler names are fine.
        let mut a = base.clone();
        a.sched_name = Some("none".into());
        assert_eq!(service_from_attrs(&a).unwrap().scheduler().name(), "none");
    }

    #[test]
    fn stats_prefer_64_bit() {
        let mut s32 = ipvs_sys::Stats {
            conns: 1,
            inpkts: 2,
            outpkts: 3,
            inbytes: 4,
            outbytes: 5,
            cps: 6,
            inpps: 7,
            outpps: 8,
            inbps: 9,
            outbps: 10,
            unknown: vec![],
        };
        let from32 = stats_from_attrs(None, Some(&s32));
        assert_eq!(
            [
                from32.conns,
                from32.inpkts,
                from32.outpkts,
                from32.inbytes,
                from32.outbytes
            ],
            [1, 2, 3, 4, 5]
        );
        assert_eq!(
            [
                from32.cps,
                from32.inpps,
                from32.outpps,
                from32.inbps,
                from32.outbps
            ],
            [6, 7, 8, 9, 10]
        );
        let s64 = stats64_attrs(&Stats {
            conns: u64::MAX,
            ..from32
        });
        s32.conns = 0;
        let both = stats_from_attrs(Some(&s64), Some(&s32));
        assert_eq!(both.conns, u64::MAX);
        assert_eq!(both.outbps, 10);
        assert_eq!(stats_from_attrs(None, None), Stats::default());
    }

    #[test]
    fn daemons_timeouts_info() {
        let d = SyncDaemon::new(SyncState::Master, "eth0", 200)
            .unwrap()
            .with_mcast_group("ff02::1:2".parse().unwrap())
            .unwrap()
            .with_mcast_ttl(5)
            .unwrap()
            .with_sync_maxlen(1400)
            .unwrap();
        let a = daemon_attrs(&d);
        assert_eq!(a.mcast_group6, Some("ff02::1:2".parse().unwrap()));
        assert_eq!(a.mcast_group, None);
        assert_eq!(daemon_from_attrs(&a).unwrap(), d);
        let mut bad = a.clone();
        bad.state = Some(DaemonState(3));
        assert_eq!(
            daemon_from_attrs(&bad).unwrap_err().problem,
            DecodeProblem::UnknownDaemonState(3)
        );
        bad = a.clone();
        bad.sync_id = Some(256);
        assert_eq!(
            daemon_from_attrs(&bad).unwrap_err().problem,
            DecodeProblem::SyncIdOutOfRange(256)
        );
        assert_eq!(
            daemon_state_attrs(SyncState::Backup).state,
            Some(DaemonState(2))
        );

        let t = timeouts_from_secs(900, 120, 300).unwrap();
        assert_eq!(t.tcp_fin(), Duration::from_secs(120));
        let m = timeouts_message(&t);
        let c = m.cmd_attrs().unwrap();
        assert_eq!(
            (c.timeout_tcp, c.timeout_tcp_fin, c.timeout_udp),
            (Some(900), Some(120), Some(300))
        );
        let e = timeouts_from_secs(u32::MAX, 0, 0).unwrap_err();
        assert_eq!(e.object, Some(Object::Timeouts));

        let e = info_from_attrs(&InfoAttrs::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "IPVS information: attribute IPVS_INFO_ATTR_VERSION is missing"
        );
    }
}
