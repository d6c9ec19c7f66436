//! The typed model of an IPVS table: services, destinations, schedulers, persistence.
//!
//! Every constructor validates; an invalid value is an [`Error`] naming the object.
//! Types whose every value is valid have public fields; the others keep their fields
//! private and offer getters.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Object, Problem};

/// Kernel `IP_VS_SCHEDNAME_MAXLEN` and `IP_VS_PENAME_MAXLEN`: 16 bytes including the NUL.
pub const NAME_MAXLEN: usize = 16;

/// An address family: IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AddressFamily {
    /// IPv4 (`AF_INET`).
    Inet,
    /// IPv6 (`AF_INET6`).
    Inet6,
}

impl AddressFamily {
    /// The family of an address.
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        }
    }

    /// The kernel's `AF_*` number (2 or 10).
    pub fn to_raw(self) -> u16 {
        match self {
            AddressFamily::Inet => 2,
            AddressFamily::Inet6 => 10,
        }
    }

    /// The family for a kernel `AF_*` number, if it is `AF_INET` or `AF_INET6`.
    pub fn from_raw(af: u16) -> Option<Self> {
        match af {
            2 => Some(AddressFamily::Inet),
            10 => Some(AddressFamily::Inet6),
            _ => None,
        }
    }
}

impl fmt::Display for AddressFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressFamily::Inet => "ipv4",
            AddressFamily::Inet6 => "ipv6",
        })
    }
}

/// The transport protocol of an address-based virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP (`IPPROTO_TCP`, 6).
    Tcp,
    /// UDP (`IPPROTO_UDP`, 17).
    Udp,
    /// SCTP (`IPPROTO_SCTP`, 132).
    Sctp,
}

impl Protocol {
    /// The IP protocol number.
    pub fn to_raw(self) -> u16 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    /// The protocol for an IP protocol number, if IPVS supports it.
    pub fn from_raw(proto: u16) -> Option<Self> {
        match proto {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The lower-case name: `tcp`, `udp` or `sctp`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What identifies a virtual service: protocol + address + port, or a firewall mark.
///
/// Its text form (used by [`Display`](fmt::Display), [`FromStr`] and serde) is
/// `tcp 192.0.2.1:80`, `udp [2001:db8::1]:53`, `sctp 192.0.2.1:3868`, `fwmark 7`
/// (IPv4) or `fwmark 7 ipv6`.
///
/// Keys sort like `ipvsadm -S` sorts services: address services before fwmark
/// services; then IPv4 before IPv6, TCP before UDP before SCTP, by address, by port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceKey {
    /// A TCP, UDP or SCTP service on an address and port.
    Addr {
        /// The transport protocol.
        protocol: Protocol,
        /// The virtual address and port (port 0 = every port; meaningful with persistence).
        addr: SocketAddr,
    },
    /// A firewall-mark service (created with `-f`). Build it with [`ServiceKey::fwmark`].
    Fwmark {
        /// The address family of the packets it matches.
        family: AddressFamily,
        /// The mark (never 0).
        mark: FwMark,
    },
}

/// A firewall mark greater than zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FwMark(std::num::NonZeroU32);

impl FwMark {
    /// A mark; `None` for 0.
    pub fn new(mark: u32) -> Option<Self> {
        std::num::NonZeroU32::new(mark).map(FwMark)
    }

    /// The mark's value.
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl fmt::Display for FwMark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl ServiceKey {
    /// A TCP service.
    pub fn tcp(addr: SocketAddr) -> Self {
        ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr,
        }
    }

    /// A UDP service.
    pub fn udp(addr: SocketAddr) -> Self {
        ServiceKey::Addr {
            protocol: Protocol::Udp,
            addr,
        }
    }

    /// An SCTP service.
    pub fn sctp(addr: SocketAddr) -> Self {
        ServiceKey::Addr {
            protocol: Protocol::Sctp,
            addr,
        }
    }

    /// A firewall-mark service; mark 0 is an error.
    pub fn fwmark(family: AddressFamily, mark: u32) -> Result<Self, Error> {
        let mark = FwMark::new(mark).ok_or(Error::new(Object::ServiceKey, Problem::FwmarkZero))?;
        Ok(ServiceKey::Fwmark { family, mark })
    }

    /// The service's address family.
    pub fn family(&self) -> AddressFamily {
        match self {
            ServiceKey::Addr { addr, .. } => AddressFamily::of(addr.ip()),
            ServiceKey::Fwmark { family, .. } => *family,
        }
    }

    /// The protocol, for an address service.
    pub fn protocol(&self) -> Option<Protocol> {
        match self {
            ServiceKey::Addr { protocol, .. } => Some(*protocol),
            ServiceKey::Fwmark { .. } => None,
        }
    }

    /// The address and port, for an address service.
    pub fn addr(&self) -> Option<SocketAddr> {
        match self {
            ServiceKey::Addr { addr, .. } => Some(*addr),
            ServiceKey::Fwmark { .. } => None,
        }
    }

    /// The port (0 for fwmark services).
    pub fn port(&self) -> u16 {
        self.addr().map_or(0, |a| a.port())
    }

    /// The firewall mark, for a fwmark service.
    pub fn mark(&self) -> Option<u32> {
        match self {
            ServiceKey::Addr { .. } => None,
            ServiceKey::Fwmark { mark, .. } => Some(mark.get()),
        }
    }

    /// The fields ipvsadm (libipvs `ipvs_cmp_services`) sorts by, as 32-bit words:
    /// fwmark (0 for address services), family, protocol, address words, port.
    pub(crate) fn sort_words(&self) -> [u32; 8] {
        let mut w = [0u32; 8];
        w[0] = self.mark().unwrap_or(0);
        w[1] = u32::from(self.family().to_raw());
        w[2] = u32::from(self.protocol().map_or(0, Protocol::to_raw));
        if let Some(a) = self.addr() {
            match a.ip() {
                IpAddr::V4(ip) => w[3] = u32::from(ip),
                IpAddr::V6(ip) => {
                    let o = ip.octets();
                    for (k, c) in o.chunks_exact(4).enumerate() {
                        w[3 + k] = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
                    }
                }
            }
        }
        w[7] = u32::from(self.port());
        w
    }
}

/// Whether an address carries an IPv6 flow label or scope id, which IPVS has no place for.
fn has_scope_or_flow(addr: &SocketAddr) -> bool {
    matches!(addr, SocketAddr::V6(a) if a.scope_id() != 0 || a.flowinfo() != 0)
}

pub(crate) fn push_ip_words(w: &mut Vec<u32>, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => w.push(u32::from(a)),
        IpAddr::V6(a) => {
            let o = a.octets();
            for c in o.chunks_exact(4) {
                w.push(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
            }
        }
    }
}

impl Ord for ServiceKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sort_words().cmp(&other.sort_words())
    }
}

impl PartialOrd for ServiceKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Addr { protocol, addr } => write!(f, "{protocol} {addr}"),
            ServiceKey::Fwmark {
                family: AddressFamily::Inet,
                mark,
            } => write!(f, "fwmark {mark}"),
            ServiceKey::Fwmark {
                family: AddressFamily::Inet6,
                mark,
            } => write!(f, "fwmark {mark} ipv6"),
        }
    }
}

impl FromStr for ServiceKey {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let syntax = || Error::new(Object::ServiceKey, Problem::ServiceKeySyntax(s.to_owned()));
        let mut words = s.split_whitespace();
        let kind = words.next().ok_or_else(syntax)?;
        let arg = words.next().ok_or_else(syntax)?;
        let extra = words.next();
        if words.next().is_some() {
            return Err(syntax());
        }
        let protocol = match kind {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "sctp" => Protocol::Sctp,
            "fwmark" => {
                let mark: u32 = arg.parse().map_err(|_| syntax())?;
                let family = match extra {
                    None | Some("ipv4") => AddressFamily::Inet,
                    Some("ipv6") => AddressFamily::Inet6,
                    Some(_) => return Err(syntax()),
                };
                return ServiceKey::fwmark(family, mark);
            }
            _ => return Err(syntax()),
        };
        if extra.is_some() {
            return Err(syntax());
        }
        let addr: SocketAddr = arg.parse().map_err(|_| syntax())?;
        if has_scope_or_flow(&addr) {
            return Err(Error::new(Object::ServiceKey, Problem::Ipv6ScopeOrFlow));
        }
        Ok(ServiceKey::Addr { protocol, addr })
    }
}

/// A scheduling algorithm.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Scheduler {
    /// `rr`: round robin.
    RoundRobin,
    /// `wrr`: weighted round robin.
    WeightedRoundRobin,
    /// `lc`: least connections.
    LeastConnections,
    /// `wlc`: weighted least connections (ipvsadm's default).
    #[default]
    WeightedLeastConnections,
    /// `lblc`: locality-based least connections.
    LocalityBasedLeastConnections,
    /// `lblcr`: locality-based least connections with replication.
    LocalityBasedLeastConnectionsReplication,
    /// `dh`: destination hashing.
    DestinationHashing,
    /// `sh`: source hashing (flags [`SchedFlags::SH_FALLBACK`], [`SchedFlags::SH_PORT`]).
    SourceHashing,
    /// `sed`: shortest expected delay.
    ShortestExpectedDelay,
    /// `nq`: never queue.
    NeverQueue,
    /// `fo`: weighted failover.
    WeightedFailover,
    /// `ovf`: weighted overflow.
    WeightedOverflow,
    /// `mh`: Maglev hashing (flags [`SchedFlags::MH_FALLBACK`], [`SchedFlags::MH_PORT`]).
    MaglevHashing,
    /// `twos`: weighted random twos choice (kernel 6.2 and later).
    TwoRandomChoices,
    /// Any other (out-of-tree) scheduler, by name; build it with [`Scheduler::new`].
    Custom(SchedulerName),
}

/// The name of a scheduler not built into the kernel: 1 to 15 bytes of ASCII letters,
/// digits, `_` or `-`, and not the name of a built-in scheduler.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SchedulerName(String);

impl SchedulerName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

const BUILTIN_SCHEDULERS: [(&str, Scheduler); 14] = [
    ("rr", Scheduler::RoundRobin),
    ("wrr", Scheduler::WeightedRoundRobin),
    ("lc", Scheduler::LeastConnections),
    ("wlc", Scheduler::WeightedLeastConnections),
    ("lblc", Scheduler::LocalityBasedLeastConnections),
    ("lblcr", Scheduler::LocalityBasedLeastConnectionsReplication),
    ("dh", Scheduler::DestinationHashing),
    ("sh", Scheduler::SourceHashing),
    ("sed", Scheduler::ShortestExpectedDelay),
    ("nq", Scheduler::NeverQueue),
    ("fo", Scheduler::WeightedFailover),
    ("ovf", Scheduler::WeightedOverflow),
    ("mh", Scheduler::MaglevHashing),
    ("twos", Scheduler::TwoRandomChoices),
];

/// Checks a kernel name (scheduler or persistence engine): 1..=15 bytes of
/// `[A-Za-z0-9_-]`.
fn valid_kernel_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < NAME_MAXLEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Scheduler {
    /// The scheduler with this kernel name: a built-in one, or [`Scheduler::Custom`].
    ///
    /// ```
    /// use ipvs::Scheduler;
    /// assert_eq!(Scheduler::new("wrr").unwrap(), Scheduler::WeightedRoundRobin);
    /// assert_eq!(Scheduler::new("my-sched").unwrap().name(), "my-sched");
    /// assert!(Scheduler::new("a-name-longer-than-15").is_err());
    /// ```
    pub fn new(name: &str) -> Result<Self, Error> {
        if let Some((_, s)) = BUILTIN_SCHEDULERS.iter().find(|(n, _)| *n == name) {
            return Ok(s.clone());
        }
        let err = |p| Err(Error::new(Object::Scheduler, p));
        if name.is_empty() {
            return err(Problem::SchedulerNameEmpty);
        }
        if name.len() >= NAME_MAXLEN {
            return err(Problem::SchedulerNameTooLong(name.to_owned()));
        }
        if !valid_kernel_name(name) {
            return err(Problem::SchedulerNameInvalid(name.to_owned()));
        }
        Ok(Scheduler::Custom(SchedulerName(name.to_owned())))
    }

    /// The kernel name (`rr`, `wlc`, ...).
    pub fn name(&self) -> &str {
        match self {
            Scheduler::Custom(n) => n.as_str(),
            other => BUILTIN_SCHEDULERS
                .iter()
                .find(|(_, s)| s == other)
                .map_or("", |(n, _)| n),
        }
    }

    /// Every built-in scheduler.
    pub fn builtin() -> impl Iterator<Item = Scheduler> {
        BUILTIN_SCHEDULERS.iter().map(|(_, s)| s.clone())
    }

    /// The flags this scheduler accepts: `sh` and `mh` their fallback and port flags,
    /// custom schedulers the generic `flag-1`..`flag-3`, the others none.
    pub fn allowed_flags(&self) -> SchedFlags {
        match self {
            Scheduler::SourceHashing | Scheduler::MaglevHashing => {
                SchedFlags(SchedFlags::SCHED1 | SchedFlags::SCHED2)
            }
            Scheduler::Custom(_) => {
                SchedFlags(SchedFlags::SCHED1 | SchedFlags::SCHED2 | SchedFlags::SCHED3)
            }
            _ => SchedFlags::empty(),
        }
    }

    /// The ipvsadm name of one flag bit for this scheduler (`sh-port`, `flag-3`, ...).
    fn flag_name(&self, bit: u8) -> &'static str {
        match (self, bit) {
            (Scheduler::SourceHashing, SchedFlags::SCHED1) => "sh-fallback",
            (Scheduler::SourceHashing, SchedFlags::SCHED2) => "sh-port",
            (Scheduler::MaglevHashing, SchedFlags::SCHED1) => "mh-fallback",
            (Scheduler::MaglevHashing, SchedFlags::SCHED2) => "mh-port",
            (_, SchedFlags::SCHED1) => "flag-1",
            (_, SchedFlags::SCHED2) => "flag-2",
            _ => "flag-3",
        }
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scheduler {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Scheduler::new(s)
    }
}

/// Scheduler flags (the kernel's `IP_VS_SVC_F_SCHED1..3`). Which ones are valid depends
/// on the scheduler, see [`Scheduler::allowed_flags`]; `sh` and `mh` share bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SchedFlags(u8);

impl SchedFlags {
    const SCHED1: u8 = 1;
    const SCHED2: u8 = 2;
    const SCHED3: u8 = 4;
    /// `sh-fallback`: `sh` skips an unavailable server (`IP_VS_SVC_F_SCHED_SH_FALLBACK`).
    pub const SH_FALLBACK: SchedFlags = SchedFlags(Self::SCHED1);
    /// `sh-port`: `sh` hashes the source port too (`IP_VS_SVC_F_SCHED_SH_PORT`).
    pub const SH_PORT: SchedFlags = SchedFlags(Self::SCHED2);
    /// `mh-fallback`: `mh` skips an unavailable server (`IP_VS_SVC_F_SCHED_MH_FALLBACK`).
    pub const MH_FALLBACK: SchedFlags = SchedFlags(Self::SCHED1);
    /// `mh-port`: `mh` hashes the source port too (`IP_VS_SVC_F_SCHED_MH_PORT`).
    pub const MH_PORT: SchedFlags = SchedFlags(Self::SCHED2);
    /// `flag-1`: the generic `IP_VS_SVC_F_SCHED1` (for custom schedulers).
    pub const FLAG_1: SchedFlags = SchedFlags(Self::SCHED1);
    /// `flag-2`: the generic `IP_VS_SVC_F_SCHED2` (for custom schedulers).
    pub const FLAG_2: SchedFlags = SchedFlags(Self::SCHED2);
    /// `flag-3`: the generic `IP_VS_SVC_F_SCHED3` (for custom schedulers).
    pub const FLAG_3: SchedFlags = SchedFlags(Self::SCHED3);

    /// No flag.
    pub const fn empty() -> Self {
        SchedFlags(0)
    }

    /// Whether no flag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: SchedFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The kernel's service flag bits (`IP_VS_SVC_F_SCHED1` = 0x08, `SCHED2` = 0x10,
    /// `SCHED3` = 0x20).
    pub fn to_kernel_bits(self) -> u32 {
        u32::from(self.0) << 3
    }

    /// The scheduler flags among kernel service flag bits; the other bits are ignored.
    pub fn from_kernel_bits(bits: u32) -> Self {
        SchedFlags(((bits >> 3) & 7) as u8)
    }

    /// The flag names as ipvsadm prints them for `scheduler`, in ipvsadm's order.
    pub fn names(self, scheduler: &Scheduler) -> Vec<&'static str> {
        [Self::SCHED1, Self::SCHED2, Self::SCHED3]
            .into_iter()
            .filter(|b| self.0 & b != 0)
            .map(|b| scheduler.flag_name(b))
            .collect()
    }

    /// Parses one ipvsadm flag name (`sh-fallback`, `sh-port`, `mh-fallback`, `mh-port`,
    /// `flag-1`, `flag-2`, `flag-3`).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "sh-fallback" => Self::SH_FALLBACK,
            "sh-port" => Self::SH_PORT,
            "mh-fallback" => Self::MH_FALLBACK,
            "mh-port" => Self::MH_PORT,
            "flag-1" => Self::FLAG_1,
            "flag-2" => Self::FLAG_2,
            "flag-3" => Self::FLAG_3,
            _ => return None,
        })
    }
}

impl std::ops::BitOr for SchedFlags {
    type Output = SchedFlags;
    fn bitor(self, rhs: SchedFlags) -> SchedFlags {
        SchedFlags(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for SchedFlags {
    fn bitor_assign(&mut self, rhs: SchedFlags) {
        self.0 |= rhs.0;
    }
}

/// Which part of the client address persistence keys on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PersistenceMask {
    /// An IPv4 netmask (contiguous, not 0.0.0.0).
    V4(Ipv4Addr),
    /// An IPv6 prefix length, 1..=128.
    V6(u8),
}

impl PersistenceMask {
    /// An IPv4 netmask; it must be contiguous and not 0.0.0.0.
    pub fn v4(mask: Ipv4Addr) -> Result<Self, Error> {
        let m = PersistenceMask::V4(mask);
        m.check().map_err(|p| Error::new(Object::Persistence, p))?;
        Ok(m)
    }

    /// An IPv6 prefix length, 1..=128.
    pub fn v6(prefix: u8) -> Result<Self, Error> {
        let m = PersistenceMask::V6(prefix);
        m.check().map_err(|p| Error::new(Object::Persistence, p))?;
        Ok(m)
    }

    /// The mask covering the whole address of `family` (/32 or /128): persistence per
    /// client address, the default.
    pub fn host(family: AddressFamily) -> Self {
        match family {
            AddressFamily::Inet => PersistenceMask::V4(Ipv4Addr::BROADCAST),
            AddressFamily::Inet6 => PersistenceMask::V6(128),
        }
    }

    /// The family this mask is for.
    pub fn family(self) -> AddressFamily {
        match self {
            PersistenceMask::V4(_) => AddressFamily::Inet,
            PersistenceMask::V6(_) => AddressFamily::Inet6,
        }
    }

    /// The prefix length (`255.255.255.0` is 24).
    pub fn prefix_len(self) -> u8 {
        match self {
            PersistenceMask::V4(m) => u32::from(m).leading_ones() as u8,
            PersistenceMask::V6(p) => p,
        }
    }

    /// The kernel's `IPVS_SVC_ATTR_NETMASK` value: the IPv4 mask in network byte order as
    /// a native u32 (as libipvs passes it), or the IPv6 prefix length.
    pub fn to_kernel(self) -> u32 {
        match self {
            PersistenceMask::V4(m) => u32::from_ne_bytes(m.octets()),
            PersistenceMask::V6(p) => u32::from(p),
        }
    }

    pub(crate) fn check(self) -> Result<(), Problem> {
        match self {
            PersistenceMask::V4(m) => {
                let bits = u32::from(m);
                if bits == 0 {
                    Err(Problem::NetmaskZero)
                } else if bits.leading_ones() + bits.trailing_zeros() != 32 {
                    Err(Problem::NetmaskNotContiguous(m))
                } else {
                    Ok(())
                }
            }
            PersistenceMask::V6(p) if (1..=128).contains(&p) => Ok(()),
            PersistenceMask::V6(p) => Err(Problem::NetmaskPrefixOutOfRange(p)),
        }
    }
}

impl fmt::Display for PersistenceMask {
    /// As ipvsadm prints it: dotted IPv4 mask, or the IPv6 prefix length.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PersistenceMask::V4(m) => write!(f, "{m}"),
            PersistenceMask::V6(p) => write!(f, "{p}"),
        }
    }
}

/// A persistence engine name (e.g. `sip`), 1 to 15 bytes of ASCII letters, digits, `_`
/// or `-` (the kernel's `IP_VS_PENAME_MAXLEN` is 16 including the NUL).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PersistenceEngine(String);

impl PersistenceEngine {
    /// A persistence engine by name.
    pub fn new(name: &str) -> Result<Self, Error> {
        if valid_kernel_name(name) {
            Ok(PersistenceEngine(name.to_owned()))
        } else {
            Err(Error::new(
                Object::Persistence,
                Problem::PersistenceEngineInvalid(name.to_owned()),
            ))
        }
    }

    /// The SIP persistence engine (`ip_vs_pe_sip`).
    pub fn sip() -> Self {
        PersistenceEngine("sip".to_owned())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PersistenceEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Client persistence ("sticky" connections): ipvsadm `-p [timeout] [-M mask] [--pe name]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Persistence {
    timeout: Duration,
    netmask: Option<PersistenceMask>,
    engine: Option<PersistenceEngine>,
}

/// ipvsadm's default persistence timeout (`-p` without a value): 360 s in ipvsadm 1.31
/// (libipvs' `IPVS_SVC_PERSISTENT_TIMEOUT`).
pub const DEFAULT_PERSISTENCE_TIMEOUT: Duration = Duration::from_secs(360);

impl Persistence {
    /// Persistence for `timeout` (whole seconds, 1 s ..= u32::MAX s) on the whole client
    /// address (/32 or /128), without a persistence engine.
    pub fn new(timeout: Duration) -> Result<Self, Error> {
        let p = Persistence {
            timeout,
            netmask: None,
            engine: None,
        };
        p.check_timeout()
            .map_err(|e| Error::new(Object::Persistence, e))?;
        Ok(p)
    }

    /// Persistence with ipvsadm's default timeout, [`DEFAULT_PERSISTENCE_TIMEOUT`].
    pub fn with_default_timeout() -> Self {
        Persistence {
            timeout: DEFAULT_PERSISTENCE_TIMEOUT,
            netmask: None,
            engine: None,
        }
    }

    /// Sets the netmask (validated against the service family when the service is built).
    /// A host mask (255.255.255.255 or 128) is the same as none.
    pub fn with_netmask(mut self, netmask: PersistenceMask) -> Self {
        self.netmask = Some(netmask);
        self
    }

    /// Sets the persistence engine.
    pub fn with_engine(mut self, engine: PersistenceEngine) -> Self {
        self.engine = Some(engine);
        self
    }

    /// The timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The timeout in seconds.
    pub fn timeout_secs(&self) -> u32 {
        u32::try_from(self.timeout.as_secs()).unwrap_or(u32::MAX)
    }

    /// The netmask, `None` when persistence is per whole client address (/32, /128).
    pub fn netmask(&self) -> Option<PersistenceMask> {
        self.netmask
    }

    /// The persistence engine.
    pub fn engine(&self) -> Option<&PersistenceEngine> {
        self.engine.as_ref()
    }

    fn check_timeout(&self) -> Result<(), Problem> {
        if self.timeout.subsec_nanos() != 0 {
            Err(Problem::NotWholeSeconds(self.timeout))
        } else if self.timeout.is_zero() {
            Err(Problem::PersistenceTimeoutZero)
        } else if self.timeout.as_secs() > u64::from(u32::MAX) {
            Err(Problem::PersistenceTimeoutTooLong(self.timeout))
        } else {
            Ok(())
        }
    }

    /// Validates for a service of `family` and normalises a host mask to `None`.
    fn normalize(mut self, family: AddressFamily) -> Result<Self, Problem> {
        self.check_timeout()?;
        if let Some(m) = self.netmask {
            m.check()?;
            if m.family() != family {
                return Err(Problem::NetmaskFamilyMismatch {
                    mask: m.to_string(),
                    family,
                });
            }
            if m == PersistenceMask::host(family) {
                self.netmask = None;
            }
        }
        if let Some(e) = &self.engine {
            if !valid_kernel_name(e.as_str()) {
                return Err(Problem::PersistenceEngineInvalid(e.0.clone()));
            }
        }
        Ok(self)
    }
}

/// The checksum option of a GUE or GRE tunnel (the kernel's
/// `IP_VS_TUNNEL_ENCAP_FLAG_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum TunnelChecksum {
    /// No checksum (`--tun-nocsum`, `IP_VS_TUNNEL_ENCAP_FLAG_NOCSUM` = 0).
    #[default]
    NoChecksum,
    /// Checksum (`--tun-csum`, `IP_VS_TUNNEL_ENCAP_FLAG_CSUM` = 1). GUE and GRE.
    Checksum,
    /// Remote checksum offload (`--tun-remcsum`, `IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM` = 2).
    /// GUE only.
    RemoteChecksum,
}

impl TunnelChecksum {
    /// The short name: `nocsum`, `csum`, `remcsum`.
    pub fn name(self) -> &'static str {
        match self {
            TunnelChecksum::NoChecksum => "nocsum",
            TunnelChecksum::Checksum => "csum",
            TunnelChecksum::RemoteChecksum => "remcsum",
        }
    }

    /// The kernel's tunnel flags value.
    pub fn to_kernel(self) -> u16 {
        match self {
            TunnelChecksum::NoChecksum => 0,
            TunnelChecksum::Checksum => 1,
            TunnelChecksum::RemoteChecksum => 2,
        }
    }

    /// The option for a kernel tunnel flags value (0, 1 or 2).
    pub fn from_kernel(flags: u16) -> Option<Self> {
        match flags {
            0 => Some(TunnelChecksum::NoChecksum),
            1 => Some(TunnelChecksum::Checksum),
            2 => Some(TunnelChecksum::RemoteChecksum),
            _ => None,
        }
    }
}

/// The encapsulation of a tunnel destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum TunnelKind {
    /// IP-in-IP (the default, `--tun-type ipip`).
    #[default]
    Ipip,
    /// Generic UDP Encapsulation to a UDP port (`--tun-type gue --tun-port N`).
    Gue {
        /// The destination UDP port (not 0).
        port: u16,
    },
    /// GRE (`--tun-type gre`).
    Gre,
}

impl TunnelKind {
    /// The ipvsadm name: `ipip`, `gue`, `gre`.
    pub fn name(self) -> &'static str {
        match self {
            TunnelKind::Ipip => "ipip",
            TunnelKind::Gue { .. } => "gue",
            TunnelKind::Gre => "gre",
        }
    }
}

/// How packets reach a destination (the kernel's `IP_VS_CONN_F_FWD_MASK` methods).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Forward {
    /// NAT (`-m`, masquerading).
    Masquerade,
    /// Direct routing (`-g`, gatewaying; ipvsadm's default).
    #[default]
    DirectRoute,
    /// Tunnelling (`-i`) with its encapsulation.
    Tunnel {
        /// The encapsulation.
        kind: TunnelKind,
        /// The checksum option: only [`TunnelChecksum::NoChecksum`] for IPIP, not
        /// [`TunnelChecksum::RemoteChecksum`] for GRE.
        checksum: TunnelChecksum,
    },
    /// Local node (`IP_VS_CONN_F_LOCALNODE`): only settable over netlink (kernel 6.1 does
    /// not set it by itself for a local address); ipvsadm prints it as `-g`, so it reads
    /// back from that text as [`Forward::DirectRoute`].
    Local,
    /// Bypass (`IP_VS_CONN_F_BYPASS`): only settable over netlink; ipvsadm prints
    /// `(null)` for it (and for the meaningless method values 5 to 7, which the kernel
    /// also takes).
    Bypass,
}

impl Forward {
    /// An IPIP tunnel.
    pub const IPIP: Forward = Forward::Tunnel {
        kind: TunnelKind::Ipip,
        checksum: TunnelChecksum::NoChecksum,
    };

    /// The kernel's forwarding method value (`IP_VS_CONN_F_MASQ` = 0, `LOCALNODE` = 1,
    /// `TUNNEL` = 2, `DROUTE` = 3, `BYPASS` = 4).
    pub fn to_kernel(self) -> u32 {
        match self {
            Forward::Masquerade => 0,
            Forward::Local => 1,
            Forward::Tunnel { .. } => 2,
            Forward::DirectRoute => 3,
            Forward::Bypass => 4,
        }
    }

    /// Whether this is tunnel forwarding.
    pub fn is_tunnel(self) -> bool {
        matches!(self, Forward::Tunnel { .. })
    }

    pub(crate) fn check(self) -> Result<(), Problem> {
        if let Forward::Tunnel { kind, checksum } = self {
            let ok = match kind {
                TunnelKind::Ipip => checksum == TunnelChecksum::NoChecksum,
                TunnelKind::Gue { port } => {
                    if port == 0 {
                        return Err(Problem::GuePortZero);
                    }
                    true
                }
                TunnelKind::Gre => checksum != TunnelChecksum::RemoteChecksum,
            };
            if !ok {
                return Err(Problem::TunnelChecksumNotSupported {
                    kind: kind.name(),
                    checksum: checksum.name(),
                });
            }
        }
        Ok(())
    }
}

/// A real server of a virtual service.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    addr: SocketAddr,
    forward: Forward,
    weight: u32,
    upper_threshold: u32,
    lower_threshold: u32,
}

impl Destination {
    /// A destination with weight 1 and no connection thresholds.
    ///
    /// ```
    /// use ipvs::{Destination, Forward};
    /// let d = Destination::new("10.0.0.1:80".parse().unwrap(), Forward::Masquerade)
    ///     .unwrap()
    ///     .with_weight(100)
    ///     .unwrap();
    /// assert_eq!(d.weight(), 100);
    /// ```
    pub fn new(addr: SocketAddr, forward: Forward) -> Result<Self, Error> {
        let d = Destination {
            addr,
            forward,
            weight: 1,
            upper_threshold: 0,
            lower_threshold: 0,
        };
        d.check().map_err(|p| d.error(None, p))?;
        Ok(d)
    }

    /// Sets the weight, 0..=`i32::MAX` (0 quiesces the server).
    pub fn with_weight(mut self, weight: u32) -> Result<Self, Error> {
        self.weight = weight;
        self.check().map_err(|p| self.error(None, p))?;
        Ok(self)
    }

    /// Sets the connection thresholds: upper (0 = no limit) and lower (0 = none; must not
    /// exceed the upper one, the kernel rejects that with ERANGE).
    pub fn with_thresholds(mut self, upper: u32, lower: u32) -> Result<Self, Error> {
        self.upper_threshold = upper;
        self.lower_threshold = lower;
        self.check().map_err(|p| self.error(None, p))?;
        Ok(self)
    }

    /// The address and port.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The forwarding method.
    pub fn forward(&self) -> Forward {
        self.forward
    }

    /// The weight.
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// The upper connection threshold (0 = no limit).
    pub fn upper_threshold(&self) -> u32 {
        self.upper_threshold
    }

    /// The lower connection threshold.
    pub fn lower_threshold(&self) -> u32 {
        self.lower_threshold
    }

    fn check(&self) -> Result<(), Problem> {
        if has_scope_or_flow(&self.addr) {
            return Err(Problem::Ipv6ScopeOrFlow);
        }
        self.forward.check()?;
        if self.weight > i32::MAX as u32 {
            return Err(Problem::WeightTooLarge(self.weight));
        }
        if self.lower_threshold > self.upper_threshold {
            return Err(Problem::ThresholdOrder {
                lower: self.lower_threshold,
                upper: self.upper_threshold,
            });
        }
        Ok(())
    }

    fn error(&self, service: Option<ServiceKey>, problem: Problem) -> Error {
        Error::new(
            Object::Destination {
                service,
                addr: self.addr,
            },
            problem,
        )
    }
}

/// A virtual service with its destinations (in address order).
///
/// ```
/// use ipvs::{Destination, Forward, Persistence, Scheduler, Service, ServiceKey};
/// use std::time::Duration;
///
/// let mut svc = Service::builder(ServiceKey::tcp("192.0.2.1:443".parse().unwrap()))
///     .scheduler(Scheduler::WeightedRoundRobin)
///     .persistence(Persistence::new(Duration::from_secs(600)).unwrap())
///     .build()
///     .unwrap();
/// svc.add_destination(Destination::new("10.0.0.1:443".parse().unwrap(), Forward::DirectRoute).unwrap())
///     .unwrap();
/// assert_eq!(svc.destinations().count(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Service {
    key: ServiceKey,
    scheduler: Scheduler,
    sched_flags: SchedFlags,
    persistence: Option<Persistence>,
    one_packet: bool,
    destinations: BTreeMap<SocketAddr, Destination>,
}

/// Builds a [`Service`]; see [`Service::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ServiceBuilder {
    svc: Service,
}

impl ServiceBuilder {
    /// Sets the scheduler (default `wlc`, as ipvsadm).
    pub fn scheduler(mut self, scheduler: Scheduler) -> Self {
        self.svc.scheduler = scheduler;
        self
    }

    /// Sets the scheduler flags (validated against the scheduler by [`build`](Self::build)).
    pub fn sched_flags(mut self, flags: SchedFlags) -> Self {
        self.svc.sched_flags = flags;
        self
    }

    /// Makes the service persistent.
    pub fn persistence(mut self, persistence: Persistence) -> Self {
        self.svc.persistence = Some(persistence);
        self
    }

    /// Sets one-packet scheduling (ipvsadm `-o`; UDP and fwmark services only).
    pub fn one_packet(mut self, on: bool) -> Self {
        self.svc.one_packet = on;
        self
    }

    /// Validates and builds the service (without destinations).
    pub fn build(self) -> Result<Service, Error> {
        let mut svc = self.svc;
        svc.validate()?;
        Ok(svc)
    }
}

impl Service {
    /// A builder for a service with `key`: scheduler `wlc`, no flags, no persistence.
    pub fn builder(key: ServiceKey) -> ServiceBuilder {
        ServiceBuilder {
            svc: Service {
                key,
                scheduler: Scheduler::default(),
                sched_flags: SchedFlags::empty(),
                persistence: None,
                one_packet: false,
                destinations: BTreeMap::new(),
            },
        }
    }

    /// A builder with this service's settings (and its destinations), to change some.
    pub fn to_builder(&self) -> ServiceBuilder {
        ServiceBuilder { svc: self.clone() }
    }

    fn validate(&mut self) -> Result<(), Error> {
        let key = self.key;
        let err = |p| Error::new(Object::Service(key), p);
        if key.addr().is_some_and(|a| has_scope_or_flow(&a)) {
            return Err(err(Problem::Ipv6ScopeOrFlow));
        }
        let allowed = self.scheduler.allowed_flags();
        for bit in [SchedFlags::SCHED1, SchedFlags::SCHED2, SchedFlags::SCHED3] {
            if self.sched_flags.0 & bit != 0 && allowed.0 & bit == 0 {
                let flag = match (&self.scheduler, bit) {
                    (Scheduler::SourceHashing | Scheduler::MaglevHashing, SchedFlags::SCHED3) => {
                        "flag-3"
                    }
                    _ => Scheduler::Custom(SchedulerName(String::new())).flag_name(bit),
                };
                return Err(err(Problem::SchedFlagNotValid {
                    flag: flag.to_owned(),
                    scheduler: self.scheduler.name().to_owned(),
                }));
            }
        }
        if let Some(p) = self.persistence.take() {
            self.persistence = Some(p.normalize(key.family()).map_err(err)?);
        }
        if self.one_packet {
            if let Some(proto @ (Protocol::Tcp | Protocol::Sctp)) = key.protocol() {
                return Err(err(Problem::OnePacketNotUdp(proto.name())));
            }
        }
        Ok(())
    }

    /// The key.
    pub fn key(&self) -> &ServiceKey {
        &self.key
    }

    /// The scheduler.
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// The scheduler flags.
    pub fn sched_flags(&self) -> SchedFlags {
        self.sched_flags
    }

    /// The persistence settings, if the service is persistent.
    pub fn persistence(&self) -> Option<&Persistence> {
        self.persistence.as_ref()
    }

    /// The effective persistence netmask (the host mask of the family when none is set).
    pub fn persistence_netmask(&self) -> PersistenceMask {
        self.persistence
            .as_ref()
            .and_then(Persistence::netmask)
            .unwrap_or(PersistenceMask::host(self.key.family()))
    }

    /// Whether one-packet scheduling is on.
    pub fn one_packet(&self) -> bool {
        self.one_packet
    }

    /// The kernel's service flags (`IP_VS_SVC_F_PERSISTENT` 0x1, `ONEPACKET` 0x4,
    /// `SCHED1..3` 0x8..0x20).
    pub fn kernel_flags(&self) -> u32 {
        let mut f = self.sched_flags.to_kernel_bits();
        if self.persistence.is_some() {
            f |= 0x1;
        }
        if self.one_packet {
            f |= 0x4;
        }
        f
    }

    /// The service's settings without its destinations (a copy).
    ///
    /// ```
    /// use ipvs::{Destination, Forward, Service, ServiceKey};
    /// let mut svc = Service::builder(ServiceKey::tcp("192.0.2.1:80".parse()?)).build()?;
    /// svc.add_destination(Destination::new("10.0.0.1:80".parse()?, Forward::Masquerade)?)?;
    /// let bare = svc.without_destinations();
    /// assert_eq!(bare.destinations().len(), 0);
    /// assert_eq!(bare.scheduler(), svc.scheduler());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn without_destinations(&self) -> Service {
        Service {
            key: self.key,
            scheduler: self.scheduler.clone(),
            sched_flags: self.sched_flags,
            persistence: self.persistence.clone(),
            one_packet: self.one_packet,
            destinations: BTreeMap::new(),
        }
    }

    /// The destinations, in address order.
    pub fn destinations(&self) -> impl ExactSizeIterator<Item = &Destination> {
        self.destinations.values()
    }

    /// The destination at `addr`.
    pub fn destination(&self, addr: SocketAddr) -> Option<&Destination> {
        self.destinations.get(&addr)
    }

    /// Adds a destination. Errors: one already at that address, or one of the other
    /// address family without tunnel forwarding.
    pub fn add_destination(&mut self, dest: Destination) -> Result<(), Error> {
        self.check_destination(&dest)?;
        match self.destinations.entry(dest.addr) {
            std::collections::btree_map::Entry::Occupied(_) => {
                Err(dest.error(Some(self.key), Problem::DuplicateDestination))
            }
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(dest);
                Ok(())
            }
        }
    }

    /// Adds or replaces the destination at `dest`'s address; returns the old one.
    pub fn set_destination(&mut self, dest: Destination) -> Result<Option<Destination>, Error> {
        self.check_destination(&dest)?;
        Ok(self.destinations.insert(dest.addr, dest))
    }

    /// Removes the destination at `addr`.
    pub fn remove_destination(&mut self, addr: SocketAddr) -> Option<Destination> {
        self.destinations.remove(&addr)
    }

    fn check_destination(&self, dest: &Destination) -> Result<(), Error> {
        dest.check().map_err(|p| dest.error(Some(self.key), p))?;
        if AddressFamily::of(dest.addr.ip()) != self.key.family() && !dest.forward.is_tunnel() {
            return Err(dest.error(Some(self.key), Problem::MixedFamilyNeedsTunnel));
        }
        Ok(())
    }
}

/// An IPVS table (desired or observed): services with their destinations, ordered by key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Table {
    services: BTreeMap<ServiceKey, Service>,
}

impl Table {
    /// An empty table.
    pub fn new() -> Self {
        Table::default()
    }

    /// Adds a service; an error if one with the same key exists.
    pub fn add_service(&mut self, service: Service) -> Result<(), Error> {
        if self.services.contains_key(&service.key) {
            return Err(Error::new(
                Object::Service(service.key),
                Problem::DuplicateService,
            ));
        }
        self.services.insert(service.key, service);
        Ok(())
    }

    /// Adds or replaces a service; returns the old one.
    pub fn set_service(&mut self, service: Service) -> Option<Service> {
        self.services.insert(service.key, service)
    }

    /// Removes a service.
    pub fn remove_service(&mut self, key: &ServiceKey) -> Option<Service> {
        self.services.remove(key)
    }

    /// The service with `key`.
    pub fn service(&self, key: &ServiceKey) -> Option<&Service> {
        self.services.get(key)
    }

    /// The service with `key`, to change its destinations.
    pub fn service_mut(&mut self, key: &ServiceKey) -> Option<&mut Service> {
        self.services.get_mut(key)
    }

    /// The services, in key order.
    pub fn services(&self) -> impl ExactSizeIterator<Item = &Service> {
        self.services.values()
    }

    /// The number of services.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// Whether the table has no service.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// Removes every service.
    pub fn clear(&mut self) {
        self.services.clear();
    }
}

/// Formats an IPv6 address exactly as glibc's `inet_ntop` does (which ipvsadm uses):
/// like RFC 5952 (and Rust's `Display`), except that an address whose first six words
/// are zero (`::a.b.c.d`, IPv4-compatible, e.g. `::1:2` is printed `::0.1.0.2`) keeps a
/// dotted IPv4 tail.
pub fn ipv6_to_string(addr: &Ipv6Addr) -> String {
    let w = addr.segments();
    // Longest run (first one on ties) of at least two zero words.
    let (mut best_base, mut best_len) = (usize::MAX, 0usize);
    let mut i = 0;
    while i < 8 {
        if w[i] == 0 {
            let start = i;
            while i < 8 && w[i] == 0 {
                i += 1;
            }
            if i - start > best_len {
                best_base = start;
                best_len = i - start;
            }
        } else {
            i += 1;
        }
    }
    if best_len < 2 {
        best_base = usize::MAX;
    }
    let mut out = String::new();
    let mut i = 0;
    while i < 8 {
        if best_base != usize::MAX && i >= best_base && i < best_base + best_len {
            if i == best_base {
                out.push(':');
            }
            i += 1;
            continue;
        }
        if i != 0 {
            out.push(':');
        }
        if i == 6 && best_base == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff)) {
            let o = addr.octets();
            out.push_str(&format!("{}.{}.{}.{}", o[12], o[13], o[14], o[15]));
            return out;
        }
        out.push_str(&format!("{:x}", w[i]));
        i += 1;
    }
    if best_base != usize::MAX && best_base + best_len == 8 {
        out.push(':');
    }
    out
}

/// Formats an address and port as ipvsadm does: `192.0.2.1:80`, `[2001:db8::1]:80`.
pub fn socket_addr_to_string(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("[{}]:{}", ipv6_to_string(a.ip()), a.port()),
    }
}
