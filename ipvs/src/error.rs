//! Validation errors: every one names the object it is about.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::types::{AddressFamily, ServiceKey};

/// The object a validation [`Error`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Object {
    /// A virtual service.
    Service(ServiceKey),
    /// A real server (destination) of a virtual service.
    Destination {
        /// The service the destination belongs to, when known.
        service: Option<ServiceKey>,
        /// The destination's address.
        addr: SocketAddr,
    },
    /// A scheduler name, on its own.
    Scheduler,
    /// A persistence setting, on its own (before it is attached to a service).
    Persistence,
    /// The global connection timeouts.
    Timeouts,
    /// The connection synchronisation daemon settings.
    SyncDaemon,
    /// A service key, on its own.
    ServiceKey,
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Object::Service(key) => write!(f, "service {key}"),
            Object::Destination {
                service: Some(key),
                addr,
            } => write!(f, "service {key}: destination {addr}"),
            Object::Destination {
                service: None,
                addr,
            } => write!(f, "destination {addr}"),
            Object::Scheduler => f.write_str("scheduler"),
            Object::Persistence => f.write_str("persistence"),
            Object::Timeouts => f.write_str("timeouts"),
            Object::SyncDaemon => f.write_str("sync daemon"),
            Object::ServiceKey => f.write_str("service"),
        }
    }
}

/// What is wrong with an object. See [`Error`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// Firewall mark 0 means "no fwmark" to the kernel; a fwmark service needs a mark > 0.
    #[error("fwmark 0 is invalid (a fwmark service needs a mark greater than 0)")]
    FwmarkZero,
    /// A scheduler name is empty.
    #[error("scheduler name is empty")]
    SchedulerNameEmpty,
    /// A scheduler name does not fit the kernel's `IP_VS_SCHEDNAME_MAXLEN` (16 bytes
    /// including the terminating NUL).
    #[error("scheduler name {0:?} is longer than 15 bytes")]
    SchedulerNameTooLong(String),
    /// A scheduler name holds a character other than ASCII letters, digits, `_` and `-`.
    #[error("scheduler name {0:?} may only hold ASCII letters, digits, '_' and '-'")]
    SchedulerNameInvalid(String),
    /// A scheduler flag that the service's scheduler does not have.
    #[error("scheduler flag {flag} is not valid with scheduler {scheduler}")]
    SchedFlagNotValid {
        /// The flag, as ipvsadm names it for this scheduler.
        flag: String,
        /// The scheduler's name.
        scheduler: String,
    },
    /// An unknown scheduler flag name.
    #[error("unknown scheduler flag {0:?}")]
    SchedFlagUnknown(String),
    /// A persistence timeout of zero.
    #[error("persistence timeout must be at least 1s")]
    PersistenceTimeoutZero,
    /// A persistence timeout longer than the kernel's u32 seconds.
    #[error("persistence timeout {0:?} is longer than {max}s", max = u32::MAX)]
    PersistenceTimeoutTooLong(Duration),
    /// A duration that is not a whole number of seconds.
    #[error("duration {0:?} is not a whole number of seconds")]
    NotWholeSeconds(Duration),
    /// An IPv4 persistence netmask whose one bits are not contiguous from the left.
    #[error("persistence netmask {0} is not contiguous")]
    NetmaskNotContiguous(std::net::Ipv4Addr),
    /// The IPv4 persistence netmask 0.0.0.0.
    #[error("persistence netmask 0.0.0.0 is invalid (it must keep at least one bit)")]
    NetmaskZero,
    /// An IPv6 persistence prefix length outside 1..=128.
    #[error("persistence prefix length {0} is outside 1..=128")]
    NetmaskPrefixOutOfRange(u8),
    /// A persistence netmask of the other address family.
    #[error("persistence netmask {mask} does not match the service family {family}")]
    NetmaskFamilyMismatch {
        /// The netmask, as printed by ipvsadm.
        mask: String,
        /// The service's address family.
        family: AddressFamily,
    },
    /// A persistence engine name that is empty, too long (16 bytes including NUL) or holds
    /// characters other than ASCII letters, digits, `_` and `-`.
    #[error("persistence engine name {0:?} is invalid (1 to 15 ASCII letters, digits, '_' or '-')")]
    PersistenceEngineInvalid(String),
    /// One-packet scheduling on a TCP or SCTP service.
    #[error("one-packet scheduling is only for UDP and fwmark services, not {0}")]
    OnePacketNotUdp(&'static str),
    /// A destination of the other address family without tunnel forwarding.
    #[error("a destination of another address family needs tunnel forwarding")]
    MixedFamilyNeedsTunnel,
    /// A weight above the kernel's maximum (`i32::MAX`).
    #[error("weight {0} is larger than {max}", max = i32::MAX)]
    WeightTooLarge(u32),
    /// A lower threshold above the upper one (the kernel rejects it with ERANGE).
    #[error("lower threshold {lower} is higher than upper threshold {upper}")]
    ThresholdOrder {
        /// The lower threshold.
        lower: u32,
        /// The upper threshold.
        upper: u32,
    },
    /// A GUE tunnel without a destination port.
    #[error("GUE tunnel port must not be 0")]
    GuePortZero,
    /// A tunnel checksum option that the tunnel type does not support.
    #[error("tunnel type {kind} does not support checksum option {checksum}")]
    TunnelChecksumNotSupported {
        /// The tunnel type name (`ipip`, `gue`, `gre`).
        kind: &'static str,
        /// The checksum option (`nocsum`, `csum`, `remcsum`).
        checksum: &'static str,
    },
    /// A service that is already in the table.
    #[error("service already exists")]
    DuplicateService,
    /// A destination that is already in the service.
    #[error("destination already exists")]
    DuplicateDestination,
    /// A connection timeout above the limit ipvsadm enforces (31 days).
    #[error("{which} timeout {value:?} is longer than 31 days")]
    TimeoutTooLong {
        /// Which timeout (`tcp`, `tcpfin`, `udp`).
        which: &'static str,
        /// The value.
        value: Duration,
    },
    /// An interface name that the kernel would not accept.
    #[error("interface name {0:?} is invalid (1 to 15 bytes, no '/', ':' or whitespace)")]
    InterfaceNameInvalid(String),
    /// A sync daemon multicast group that is not a multicast address.
    #[error("multicast group {0} is not a multicast address")]
    NotMulticast(std::net::IpAddr),
    /// A sync daemon multicast port of zero.
    #[error("multicast port must not be 0")]
    McastPortZero,
    /// A sync daemon multicast TTL of zero.
    #[error("multicast TTL must be 1..=255")]
    McastTtlZero,
    /// A sync daemon maximum message length outside 1..=65507.
    #[error("sync message maximum length {0} is outside 1..=65507")]
    SyncMaxlenOutOfRange(u16),
    /// An IPv6 socket address with a scope id or flow label (IPVS keys on address and
    /// port only).
    #[error("an IPv6 scope id or flow label is not supported")]
    Ipv6ScopeOrFlow,
    /// A service key text that does not parse.
    #[error(
        "cannot parse {0:?} (expected e.g. \"tcp 192.0.2.1:80\", \"udp [2001:db8::1]:53\", \"fwmark 7\" or \"fwmark 7 ipv6\")"
    )]
    ServiceKeySyntax(String),
}

/// A validation error: an invalid value for a named object.
///
/// Its text is `OBJECT: PROBLEM`, e.g.
/// `service tcp 192.0.2.1:80: persistence netmask 255.0.255.0 is not contiguous`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{object}: {problem}")]
pub struct Error {
    /// The object the error is about.
    pub object: Object,
    /// What is wrong with it.
    pub problem: Problem,
}

impl Error {
    /// An error about `object`.
    pub fn new(object: Object, problem: Problem) -> Self {
        Error { object, problem }
    }
}
