//! The transport's error type: every failure names the operation and the object.

use crate::message::{Command, IpvsMessage};
use crate::reply::NetlinkError;
use crate::types::{AddressFamily, Protocol};
use std::time::Duration;

/// What a kernel errno means for IPVS, as ipvsadm explains it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `EEXIST`: the service or destination already exists.
    AlreadyExists,
    /// `ESRCH`: the service does not exist.
    NoSuchService,
    /// `ENOENT` on a destination command: the destination does not exist.
    NoSuchDestination,
    /// `ENOENT` on a service command: the scheduler or persistence engine module is not
    /// loaded (or does not exist).
    SchedulerNotFound,
    /// `ENOENT` on a sync daemon command, or `ESRCH`: no such daemon.
    NoSuchDaemon,
    /// `ERANGE`: a value is out of range (weight, thresholds).
    OutOfRange,
    /// `EINVAL`: the kernel refused the request's attributes.
    Invalid,
    /// `EPERM`/`EACCES`: needs `CAP_NET_ADMIN`.
    PermissionDenied,
    /// `EAFNOSUPPORT`: address family not supported (IPv6 without IPv6 support, or a
    /// mixed-family destination that is not tunnelled).
    AddressFamilyNotSupported,
    /// `EOPNOTSUPP`: the operation is not supported (e.g. a dump flag on a non-dump).
    NotSupported,
    /// `EBUSY`: busy (a sync daemon already runs, a dump is in progress).
    Busy,
    /// `ENOMEM`/`ENOBUFS`: out of memory or buffer space.
    NoMemory,
    /// Any other errno.
    Other,
}

impl ErrorKind {
    /// Classifies `errno` as returned for `command`.
    pub fn of(errno: i32, command: Command) -> Self {
        let dest = matches!(
            command,
            Command::NewDest | Command::SetDest | Command::DelDest | Command::GetDest
        );
        let daemon = matches!(command, Command::NewDaemon | Command::DelDaemon);
        match errno {
            libc::EEXIST => Self::AlreadyExists,
            libc::ESRCH if daemon => Self::NoSuchDaemon,
            libc::ESRCH => Self::NoSuchService,
            libc::ENOENT if dest => Self::NoSuchDestination,
            libc::ENOENT if daemon => Self::NoSuchDaemon,
            libc::ENOENT => Self::SchedulerNotFound,
            libc::ERANGE => Self::OutOfRange,
            libc::EINVAL => Self::Invalid,
            libc::EPERM | libc::EACCES => Self::PermissionDenied,
            libc::EAFNOSUPPORT => Self::AddressFamilyNotSupported,
            libc::EOPNOTSUPP => Self::NotSupported,
            libc::EBUSY => Self::Busy,
            libc::ENOMEM | libc::ENOBUFS => Self::NoMemory,
            _ => Self::Other,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Self::AlreadyExists => "already exists",
            Self::NoSuchService => "no such service",
            Self::NoSuchDestination => "no such destination",
            Self::SchedulerNotFound => "scheduler or persistence engine not found",
            Self::NoSuchDaemon => "no such sync daemon",
            Self::OutOfRange => "value out of range",
            Self::Invalid => "invalid argument",
            Self::PermissionDenied => "permission denied (needs CAP_NET_ADMIN)",
            Self::AddressFamilyNotSupported => "address family not supported",
            Self::NotSupported => "operation not supported",
            Self::Busy => "busy",
            Self::NoMemory => "out of memory",
            Self::Other => "kernel error",
        }
    }
}

/// The kernel refused a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{op} {object}: {} ({}{})", kind.text(), errno_name(*errno), ext.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
pub struct KernelError {
    /// The operation, e.g. "add service".
    pub op: &'static str,
    /// The object, e.g. "tcp 192.0.2.10:80".
    pub object: String,
    /// The positive errno.
    pub errno: i32,
    /// What the errno means for this command.
    pub kind: ErrorKind,
    /// The kernel's extended-ACK message, if any.
    pub ext: Option<String>,
}

impl KernelError {
    /// The error for `msg` refused with `err`.
    pub fn new(msg: &IpvsMessage, err: &NetlinkError) -> Self {
        Self {
            op: operation(msg.command),
            object: describe(msg),
            errno: err.errno,
            kind: ErrorKind::of(err.errno, msg.command),
            ext: err.ext_ack_msg.clone(),
        }
    }
}

/// Everything that can go wrong talking to the kernel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The kernel has no IPVS generic-netlink family.
    #[error("IPVS is not available: load the ip_vs module (no generic netlink family \"IPVS\")")]
    IpvsUnavailable,
    /// The kernel refused a request.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// No reply came in time: the request may or may not have been applied. The kernel
    /// does leave some requests unanswered (see the crate docs on `-EINTR`), so check
    /// the state with a dump before retrying.
    #[error("{op}: no reply from the kernel within {timeout:?}")]
    Timeout {
        /// What was waited for.
        op: &'static str,
        /// The timeout.
        timeout: Duration,
    },
    /// A socket call failed.
    #[error("{op}: {source}")]
    Io {
        /// The socket operation.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A request could not be encoded.
    #[error("encode {op} {object}: {source}")]
    Encode {
        /// The operation.
        op: &'static str,
        /// The object.
        object: String,
        /// Why.
        #[source]
        source: crate::Error,
    },
    /// A reply could not be decoded.
    #[error("{op}: bad reply from the kernel: {source}")]
    Decode {
        /// The operation whose reply it was.
        op: &'static str,
        /// Why.
        #[source]
        source: super::exchange::ReplyDecodeError,
    },
    /// The generic-netlink controller's answer was not understood.
    #[error("resolve generic netlink family \"IPVS\": {0}")]
    Resolve(String),
    /// A dump was interrupted by concurrent changes more often than allowed.
    #[error("{op}: dump interrupted by concurrent changes {attempts} times in a row")]
    DumpInterrupted {
        /// The dump.
        op: &'static str,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The calling thread could not enter a network namespace to open the socket.
    #[error("open IPVS socket in network namespace {netns}: {source}")]
    Netns {
        /// The namespace (path or fd).
        netns: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A request's reply was not what the command returns.
    #[error("{op}: unexpected reply: {what}")]
    UnexpectedReply {
        /// The operation.
        op: &'static str,
        /// What was wrong.
        what: &'static str,
    },
}

/// The operation a command performs, in words.
pub fn operation(c: Command) -> &'static str {
    match c {
        Command::NewService => "add service",
        Command::SetService => "edit service",
        Command::DelService => "delete service",
        Command::GetService => "get service",
        Command::NewDest => "add destination",
        Command::SetDest => "edit destination",
        Command::DelDest => "delete destination",
        Command::GetDest => "list destinations of service",
        Command::NewDaemon => "start sync daemon",
        Command::DelDaemon => "stop sync daemon",
        Command::GetDaemon => "list sync daemons",
        Command::SetConfig => "set timeouts",
        Command::GetConfig => "get timeouts",
        Command::SetInfo => "set info",
        Command::GetInfo => "get info",
        Command::Zero => "zero counters of",
        Command::Flush => "flush",
    }
}

/// The object of a request, in words: `tcp 192.0.2.10:80`, `fwmark 7 (ipv4)`,
/// `10.0.0.1:80 in tcp 192.0.2.10:80`, `master on eth0 (syncid 5)`.
pub fn describe(msg: &IpvsMessage) -> String {
    let svc = msg.service().map(|s| {
        if let Some(mark) = s.fwmark {
            let fam = match s.af {
                Some(AddressFamily::INET6) => "ipv6",
                _ => "ipv4",
            };
            format!("fwmark {mark} ({fam})")
        } else {
            let proto = match s.protocol {
                Some(Protocol::TCP) => "tcp".to_string(),
                Some(Protocol::UDP) => "udp".to_string(),
                Some(Protocol::SCTP) => "sctp".to_string(),
                Some(Protocol(p)) => format!("proto {p}"),
                None => "?".to_string(),
            };
            match (s.addr, s.port) {
                (Some(std::net::IpAddr::V6(a)), Some(p)) => format!("{proto} [{a}]:{p}"),
                (Some(a), Some(p)) => format!("{proto} {a}:{p}"),
                _ => proto,
            }
        }
    });
    let dest = msg.dest().map(|d| match (d.addr, d.port) {
        (Some(std::net::IpAddr::V6(a)), Some(p)) => format!("[{a}]:{p}"),
        (Some(a), Some(p)) => format!("{a}:{p}"),
        _ => "?".to_string(),
    });
    if let Some(d) = msg.daemon() {
        let state = match d.state.map(|s| s.0) {
            Some(1) => "master",
            Some(2) => "backup",
            _ => "?",
        };
        return format!(
            "{state} on {} (syncid {})",
            d.mcast_ifn.as_deref().unwrap_or("?"),
            d.sync_id.map_or("?".to_string(), |i| i.to_string())
        );
    }
    match (dest, svc) {
        (Some(d), Some(s)) => format!("{d} in {s}"),
        (None, Some(s)) => s,
        (Some(d), None) => d,
        (None, None) => match msg.command {
            Command::Zero => "all services".into(),
            Command::Flush => "all services".into(),
            _ => String::new(),
        },
    }
}

fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::EEXIST => "EEXIST",
        libc::ESRCH => "ESRCH",
        libc::ENOENT => "ENOENT",
        libc::ERANGE => "ERANGE",
        libc::EINVAL => "EINVAL",
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EBUSY => "EBUSY",
        libc::ENOMEM => "ENOMEM",
        libc::ENOBUFS => "ENOBUFS",
        _ => return format!("errno {errno}"),
    };
    name.to_string()
}
