//! Small value types shared by the attribute sets.
//!
//! Numeric fields whose value space is open-ended on the wire (families,
//! protocols, forwarding methods, ...) are transparent newtypes with named
//! constants rather than closed enums: a value the kernel sends that this
//! crate does not know survives a decode/encode round trip unchanged.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::consts::*;
use crate::error::{Error, Result};

/// An address family (`AF_*`), u16 on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct AddressFamily(pub u16);

impl AddressFamily {
    /// `AF_INET`.
    pub const INET: Self = Self(AF_INET);
    /// `AF_INET6`.
    pub const INET6: Self = Self(AF_INET6);

    /// The family of an address.
    pub fn of(addr: &IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::INET,
            IpAddr::V6(_) => Self::INET6,
        }
    }
}

impl fmt::Debug for AddressFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::INET => f.write_str("AF_INET"),
            Self::INET6 => f.write_str("AF_INET6"),
            Self(n) => write!(f, "AddressFamily({n})"),
        }
    }
}

/// An IP protocol number, u16 on the wire (`IPVS_SVC_ATTR_PROTOCOL`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Protocol(pub u16);

impl Protocol {
    /// TCP.
    pub const TCP: Self = Self(IPPROTO_TCP);
    /// UDP.
    pub const UDP: Self = Self(IPPROTO_UDP);
    /// SCTP.
    pub const SCTP: Self = Self(IPPROTO_SCTP);
}

impl fmt::Debug for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TCP => f.write_str("TCP"),
            Self::UDP => f.write_str("UDP"),
            Self::SCTP => f.write_str("SCTP"),
            Self(n) => write!(f, "Protocol({n})"),
        }
    }
}

/// Service flag bits (`IP_VS_SVC_F_*`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ServiceFlags(pub u32);

impl ServiceFlags {
    /// No flags.
    pub const EMPTY: Self = Self(0);
    /// Persistent service (`-p`).
    pub const PERSISTENT: Self = Self(IP_VS_SVC_F_PERSISTENT);
    /// Service is hashed into the kernel lookup tables. The kernel sets this
    /// on every live service, so dumps report it; it is not a user setting
    /// and must not be sent (see [`ServiceFlags::user_settable`]).
    pub const HASHED: Self = Self(IP_VS_SVC_F_HASHED);
    /// One-packet scheduling (`-o`).
    pub const ONEPACKET: Self = Self(IP_VS_SVC_F_ONEPACKET);
    /// Scheduler flag 1: `sh-fallback` / `mh-fallback`.
    pub const SCHED1: Self = Self(IP_VS_SVC_F_SCHED1);
    /// Scheduler flag 2: `sh-port` / `mh-port`.
    pub const SCHED2: Self = Self(IP_VS_SVC_F_SCHED2);
    /// Scheduler flag 3.
    pub const SCHED3: Self = Self(IP_VS_SVC_F_SCHED3);
    /// Alias of [`Self::SCHED1`] for the sh and mh schedulers.
    pub const SCHED_SH_FALLBACK: Self = Self::SCHED1;
    /// Alias of [`Self::SCHED2`] for the sh and mh schedulers.
    pub const SCHED_SH_PORT: Self = Self::SCHED2;
    /// Alias of [`Self::SCHED1`] for the mh scheduler.
    pub const SCHED_MH_FALLBACK: Self = Self::SCHED1;
    /// Alias of [`Self::SCHED2`] for the mh scheduler.
    pub const SCHED_MH_PORT: Self = Self::SCHED2;
    /// All bits.
    pub const ALL: Self = Self(u32::MAX);

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` without the bits the kernel manages itself ([`Self::HASHED`]).
    /// Compare desired and dumped flags through this.
    pub const fn user_settable(self) -> Self {
        Self(self.0 & !IP_VS_SVC_F_HASHED)
    }
}

impl std::ops::BitOr for ServiceFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl std::ops::BitAnd for ServiceFlags {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self {
        Self(self.0 & rhs.0)
    }
}

impl fmt::Debug for ServiceFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceFlags({:#x})", self.0)
    }
}

/// `struct ip_vs_flags { __u32 flags; __u32 mask; }` in host byte order
/// (`IPVS_SVC_ATTR_FLAGS`).
///
/// The kernel applies `new = (old & !mask) | (flags & mask)`; in dumps it
/// reports `mask = 0xffff_ffff`. ipvsadm always sends `mask = !0`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct SvcFlags {
    /// The flag values.
    pub flags: ServiceFlags,
    /// Which bits of `flags` to apply.
    pub mask: ServiceFlags,
}

impl SvcFlags {
    /// Set exactly `flags` (mask all ones), stripping [`ServiceFlags::HASHED`]
    /// which is the kernel's business: this is what a request should carry.
    pub const fn set_all(flags: ServiceFlags) -> Self {
        Self {
            flags: flags.user_settable(),
            mask: ServiceFlags::ALL,
        }
    }

    pub(crate) fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        let (f, m) = b.split_at_mut(4);
        f.copy_from_slice(&self.flags.0.to_ne_bytes());
        m.copy_from_slice(&self.mask.0.to_ne_bytes());
        b
    }

    pub(crate) fn from_bytes(b: [u8; 8]) -> Self {
        let [f0, f1, f2, f3, m0, m1, m2, m3] = b;
        Self {
            flags: ServiceFlags(u32::from_ne_bytes([f0, f1, f2, f3])),
            mask: ServiceFlags(u32::from_ne_bytes([m0, m1, m2, m3])),
        }
    }
}

/// Forwarding method of a destination (`IPVS_DEST_ATTR_FWD_METHOD`, u32).
///
/// The kernel masks the value with `IP_VS_CONN_F_FWD_MASK` (7).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ForwardMethod(pub u32);

impl ForwardMethod {
    /// Masquerading / NAT (`-m`).
    pub const MASQ: Self = Self(IP_VS_CONN_F_MASQ);
    /// Local node.
    pub const LOCAL: Self = Self(IP_VS_CONN_F_LOCALNODE);
    /// Tunnelling (`-i`).
    pub const TUNNEL: Self = Self(IP_VS_CONN_F_TUNNEL);
    /// Direct routing (`-g`).
    pub const ROUTE: Self = Self(IP_VS_CONN_F_DROUTE);
    /// Cache bypass.
    pub const BYPASS: Self = Self(IP_VS_CONN_F_BYPASS);
}

impl fmt::Debug for ForwardMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::MASQ => f.write_str("MASQ"),
            Self::LOCAL => f.write_str("LOCAL"),
            Self::TUNNEL => f.write_str("TUNNEL"),
            Self::ROUTE => f.write_str("ROUTE"),
            Self::BYPASS => f.write_str("BYPASS"),
            Self(n) => write!(f, "ForwardMethod({n})"),
        }
    }
}

/// Tunnel encapsulation type (`IPVS_DEST_ATTR_TUN_TYPE`, u8).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TunnelType(pub u8);

impl TunnelType {
    /// IP-in-IP.
    pub const IPIP: Self = Self(IP_VS_CONN_F_TUNNEL_TYPE_IPIP);
    /// Generic UDP encapsulation (needs a tunnel port).
    pub const GUE: Self = Self(IP_VS_CONN_F_TUNNEL_TYPE_GUE);
    /// GRE.
    pub const GRE: Self = Self(IP_VS_CONN_F_TUNNEL_TYPE_GRE);
}

impl fmt::Debug for TunnelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::IPIP => f.write_str("IPIP"),
            Self::GUE => f.write_str("GUE"),
            Self::GRE => f.write_str("GRE"),
            Self(n) => write!(f, "TunnelType({n})"),
        }
    }
}

/// Tunnel checksum flags (`IPVS_DEST_ATTR_TUN_FLAGS`, u16 host order).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TunnelFlags(pub u16);

impl TunnelFlags {
    /// No checksum.
    pub const NOCSUM: Self = Self(IP_VS_TUNNEL_ENCAP_FLAG_NOCSUM);
    /// Checksum.
    pub const CSUM: Self = Self(IP_VS_TUNNEL_ENCAP_FLAG_CSUM);
    /// Remote checksum offload.
    pub const REMCSUM: Self = Self(IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM);
}

impl fmt::Debug for TunnelFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TunnelFlags({:#x})", self.0)
    }
}

/// Sync-daemon state (`IPVS_DAEMON_ATTR_STATE`, u32).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DaemonState(pub u32);

impl DaemonState {
    /// Stopped.
    pub const NONE: Self = Self(IP_VS_STATE_NONE);
    /// Master.
    pub const MASTER: Self = Self(IP_VS_STATE_MASTER);
    /// Backup.
    pub const BACKUP: Self = Self(IP_VS_STATE_BACKUP);
}

impl fmt::Debug for DaemonState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NONE => f.write_str("NONE"),
            Self::MASTER => f.write_str("MASTER"),
            Self::BACKUP => f.write_str("BACKUP"),
            Self(n) => write!(f, "DaemonState({n})"),
        }
    }
}

/// Persistence netmask of a service (`IPVS_SVC_ATTR_NETMASK`, 4 bytes).
///
/// The same four bytes mean different things per address family:
/// * `AF_INET`: a netmask in network byte order (`255.255.255.255` by
///   default, i.e. bytes `ff ff ff ff`);
/// * `AF_INET6`: a prefix **length** as a host-order u32, 1..=128 (the kernel
///   rejects other values with `EINVAL`; the default is 128).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Netmask {
    /// IPv4 mask.
    V4(Ipv4Addr),
    /// IPv6 prefix length (valid range 1..=128; any u32 round-trips).
    V6Prefix(u32),
}

impl Netmask {
    pub(crate) fn to_bytes(self) -> [u8; 4] {
        match self {
            Netmask::V4(a) => a.octets(),
            Netmask::V6Prefix(p) => p.to_ne_bytes(),
        }
    }

    pub(crate) fn decode(bytes: [u8; 4], family: Option<AddressFamily>) -> Result<Self> {
        const WHAT: &str = "IPVS_SVC_ATTR_NETMASK";
        match family {
            Some(AddressFamily::INET) => Ok(Netmask::V4(Ipv4Addr::from(bytes))),
            Some(AddressFamily::INET6) => Ok(Netmask::V6Prefix(u32::from_ne_bytes(bytes))),
            Some(AddressFamily(family)) => {
                Err(Error::UnsupportedAddressFamily { what: WHAT, family })
            }
            None => Err(Error::MissingAddressFamily { what: WHAT }),
        }
    }

    pub(crate) fn check(self, family: Option<AddressFamily>) -> Result<()> {
        const WHAT: &str = "IPVS_SVC_ATTR_NETMASK";
        match (family, self) {
            (Some(AddressFamily::INET), Netmask::V4(_)) => Ok(()),
            (Some(AddressFamily::INET6), Netmask::V6Prefix(_)) => Ok(()),
            (Some(AddressFamily(f @ (AF_INET | AF_INET6))), _) => {
                Err(Error::AddressFamilyMismatch {
                    what: WHAT,
                    family: f,
                })
            }
            (Some(AddressFamily(family)), _) => {
                Err(Error::UnsupportedAddressFamily { what: WHAT, family })
            }
            (None, _) => Err(Error::MissingAddressFamily { what: WHAT }),
        }
    }
}

/// An attribute this crate does not know, kept verbatim.
///
/// `kind` is the full `nla_type` field, including the `NLA_F_NESTED` and
/// `NLA_F_NET_BYTEORDER` bits, so that re-encoding reproduces it exactly.
/// Unknown attributes are re-emitted after the known ones of their set.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct RawAttr {
    /// The `nla_type` field.
    pub kind: u16,
    /// The payload, without padding.
    pub value: Vec<u8>,
}

// ---------------------------------------------------------------------------
// Addresses (`union nf_inet_addr`).
// ---------------------------------------------------------------------------

/// Encoded form of an address attribute: 16 bytes (IPv4 zero-padded, as the
/// kernel and ipvsadm send it) when the family is known, 4 bytes for IPv4
/// without a family.
pub(crate) struct InetAddrBytes {
    bytes: [u8; 16],
    len: usize,
}

impl InetAddrBytes {
    pub(crate) fn new(addr: &IpAddr, family: Option<AddressFamily>) -> Self {
        let mut bytes = [0u8; 16];
        let len = match addr {
            IpAddr::V4(a) => {
                if let Some(dst) = bytes.get_mut(..4) {
                    dst.copy_from_slice(&a.octets());
                }
                if family.is_some() { 16 } else { 4 }
            }
            IpAddr::V6(a) => {
                bytes = a.octets();
                16
            }
        };
        Self { bytes, len }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&self.bytes)
    }
}

/// Check, before encoding, that `addr` can be decoded again under `family`.
pub(crate) fn check_addr(
    what: &'static str,
    addr: &IpAddr,
    family: Option<AddressFamily>,
) -> Result<()> {
    match (family, addr) {
        (Some(AddressFamily::INET), IpAddr::V4(_)) => Ok(()),
        (Some(AddressFamily::INET6), IpAddr::V6(_)) => Ok(()),
        (Some(AddressFamily(f @ (AF_INET | AF_INET6))), _) => {
            Err(Error::AddressFamilyMismatch { what, family: f })
        }
        (Some(AddressFamily(family)), _) => Err(Error::UnsupportedAddressFamily { what, family }),
        (None, IpAddr::V4(_)) => Ok(()),
        (None, IpAddr::V6(_)) => Err(Error::MissingAddressFamily { what }),
    }
}

/// Decode an address attribute according to the address family.
///
/// The kernel always sends the full 16-byte `union nf_inet_addr`; for
/// `AF_INET` only the first four bytes are meaningful (the rest is zero).
/// A 4-byte payload is accepted for `AF_INET` too (the kernel accepts it from
/// userspace). Without a family, only a 4-byte payload can be interpreted.
pub(crate) fn decode_addr(
    what: &'static str,
    v: &[u8],
    family: Option<AddressFamily>,
) -> Result<IpAddr> {
    match family {
        Some(AddressFamily::INET) | None if v.len() == 4 || (family.is_some() && v.len() == 16) => {
            let mut o = [0u8; 4];
            if let Some(src) = v.get(..4) {
                o.copy_from_slice(src);
            }
            Ok(IpAddr::V4(Ipv4Addr::from(o)))
        }
        Some(AddressFamily::INET6) if v.len() == 16 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(v);
            Ok(IpAddr::V6(Ipv6Addr::from(o)))
        }
        Some(AddressFamily(f @ (AF_INET | AF_INET6))) => Err(Error::AddrSize {
            what,
            family: f,
            got: v.len(),
        }),
        Some(AddressFamily(family)) => Err(Error::UnsupportedAddressFamily { what, family }),
        None if v.len() == 16 => Err(Error::MissingAddressFamily { what }),
        None => Err(Error::AddrSize {
            what,
            family: 0,
            got: v.len(),
        }),
    }
}
