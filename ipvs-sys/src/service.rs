//! The service nest (`IPVS_CMD_ATTR_SERVICE`).

use std::net::{IpAddr, SocketAddr};

use crate::consts::*;
use crate::error::Result;
use crate::nla::{self, AttrSet, BeU16, Bytes, CStr, Sink, U16, U32};
use crate::stats::{Stats, Stats64};
use crate::types::{
    AddressFamily, InetAddrBytes, Netmask, Protocol, RawAttr, SvcFlags, check_addr, decode_addr,
};

/// The attributes of a virtual service.
///
/// Every attribute is optional because every command needs a different
/// subset. The kernel identifies a service by `af` + `fwmark`, or by `af` +
/// `protocol` + `addr` + `port` (see [`ServiceAttrs::key`]);
/// `NEW_SERVICE`/`SET_SERVICE` additionally require `sched_name`, `flags`,
/// `timeout` and `netmask`.
///
/// Wire quirks handled here:
/// * `port` is a host-order `u16` in this struct and network order on the
///   wire;
/// * `addr` is sent and received as the 16-byte `union nf_inet_addr` (IPv4
///   zero-padded) and decoded according to `af`;
/// * `netmask` means a mask for IPv4 and a prefix length for IPv6
///   ([`Netmask`]), so it is decoded according to `af` too;
/// * fwmark services come back from the kernel without `protocol`, `addr`
///   and `port`;
/// * dumps report `flags` with [`ServiceFlags::HASHED`](crate::ServiceFlags::HASHED)
///   set and `mask = !0`.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct ServiceAttrs {
    /// `IPVS_SVC_ATTR_AF`.
    pub af: Option<AddressFamily>,
    /// `IPVS_SVC_ATTR_PROTOCOL`.
    pub protocol: Option<Protocol>,
    /// `IPVS_SVC_ATTR_ADDR`.
    pub addr: Option<IpAddr>,
    /// `IPVS_SVC_ATTR_PORT` (host order here, network order on the wire).
    pub port: Option<u16>,
    /// `IPVS_SVC_ATTR_FWMARK`.
    pub fwmark: Option<u32>,
    /// `IPVS_SVC_ATTR_SCHED_NAME` (at most 15 bytes are accepted by the
    /// kernel; the kernel reports `"none"` for a service without scheduler).
    pub sched_name: Option<String>,
    /// `IPVS_SVC_ATTR_FLAGS`.
    pub flags: Option<SvcFlags>,
    /// `IPVS_SVC_ATTR_TIMEOUT`, persistence timeout in seconds.
    pub timeout: Option<u32>,
    /// `IPVS_SVC_ATTR_NETMASK`.
    pub netmask: Option<Netmask>,
    /// `IPVS_SVC_ATTR_STATS` (replies only).
    pub stats: Option<Stats>,
    /// `IPVS_SVC_ATTR_PE_NAME` (e.g. `"sip"`).
    pub pe_name: Option<String>,
    /// `IPVS_SVC_ATTR_STATS64` (replies only).
    pub stats64: Option<Stats64>,
    /// Attributes not known to this crate.
    pub unknown: Vec<RawAttr>,
}

impl ServiceAttrs {
    /// The key of an address-based service: family, protocol, address, port.
    ///
    /// ```
    /// use ipvs_sys::{Protocol, ServiceAttrs};
    /// let svc = ServiceAttrs::addr_key(Protocol::TCP, "192.0.2.10:80".parse().unwrap());
    /// assert_eq!(svc.port, Some(80));
    /// assert_eq!(svc.af, Some(ipvs_sys::AddressFamily::INET));
    /// ```
    pub fn addr_key(protocol: Protocol, addr: SocketAddr) -> Self {
        Self {
            af: Some(AddressFamily::of(&addr.ip())),
            protocol: Some(protocol),
            addr: Some(addr.ip()),
            port: Some(addr.port()),
            ..Self::default()
        }
    }

    /// The key of a firewall-mark service.
    pub fn fwmark_key(af: AddressFamily, fwmark: u32) -> Self {
        Self {
            af: Some(af),
            fwmark: Some(fwmark),
            ..Self::default()
        }
    }

    /// Add the attributes `NEW_SERVICE`/`SET_SERVICE` require, with ipvsadm's
    /// defaults for the ones not given: `flags` set exactly (mask `!0`,
    /// without `HASHED`), `timeout`, and the widest persistence netmask for
    /// the family (`255.255.255.255` or `/128`).
    ///
    /// ```
    /// use ipvs_sys::{Protocol, ServiceAttrs, ServiceFlags};
    /// let svc = ServiceAttrs::addr_key(Protocol::TCP, "192.0.2.10:80".parse().unwrap())
    ///     .with_config("rr", ServiceFlags::EMPTY, 0);
    /// assert_eq!(svc.sched_name.as_deref(), Some("rr"));
    /// ```
    pub fn with_config(
        mut self,
        sched_name: &str,
        flags: crate::ServiceFlags,
        timeout: u32,
    ) -> Self {
        self.sched_name = Some(sched_name.to_owned());
        self.flags = Some(SvcFlags::set_all(flags));
        self.timeout = Some(timeout);
        if self.netmask.is_none() {
            self.netmask = match self.af {
                Some(AddressFamily::INET6) => Some(Netmask::V6Prefix(128)),
                _ => Some(Netmask::V4(std::net::Ipv4Addr::BROADCAST)),
            };
        }
        self
    }

    /// Only the identifying attributes (`af` and `fwmark`, or `af`,
    /// `protocol`, `addr` and `port`): what `DEL_SERVICE`, `GET_SERVICE`,
    /// `ZERO` and the destination commands need.
    pub fn key(&self) -> Self {
        if self.fwmark.is_some_and(|m| m != 0) {
            Self {
                af: self.af,
                fwmark: self.fwmark,
                ..Self::default()
            }
        } else {
            Self {
                af: self.af,
                protocol: self.protocol,
                addr: self.addr,
                port: self.port,
                ..Self::default()
            }
        }
    }

    /// Check that the value can be encoded and decoded back unchanged:
    /// the address and netmask agree with `af`, strings contain no NUL.
    pub fn validate(&self) -> Result<()> {
        if let Some(a) = &self.addr {
            check_addr("IPVS_SVC_ATTR_ADDR", a, self.af)?;
        }
        if let Some(m) = self.netmask {
            m.check(self.af)?;
        }
        if let Some(s) = &self.sched_name {
            nla::check_cstr("IPVS_SVC_ATTR_SCHED_NAME", s)?;
        }
        if let Some(s) = &self.pe_name {
            nla::check_cstr("IPVS_SVC_ATTR_PE_NAME", s)?;
        }
        Ok(())
    }

    /// Decode the payload of an `IPVS_CMD_ATTR_SERVICE` nest.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut svc = ServiceAttrs::default();
        let mut addr: Option<&[u8]> = None;
        let mut netmask: Option<[u8; 4]> = None;
        nla::for_each_attr("IPVS_CMD_ATTR_SERVICE", buf, |kind, raw, v| {
            match kind {
                IPVS_SVC_ATTR_AF => {
                    svc.af = Some(AddressFamily(nla::get_u16("IPVS_SVC_ATTR_AF", v)?))
                }
                IPVS_SVC_ATTR_PROTOCOL => {
                    svc.protocol = Some(Protocol(nla::get_u16("IPVS_SVC_ATTR_PROTOCOL", v)?))
                }
                IPVS_SVC_ATTR_ADDR => addr = Some(v),
                IPVS_SVC_ATTR_PORT => svc.port = Some(nla::get_be16("IPVS_SVC_ATTR_PORT", v)?),
                IPVS_SVC_ATTR_FWMARK => svc.fwmark = Some(nla::get_u32("IPVS_SVC_ATTR_FWMARK", v)?),
                IPVS_SVC_ATTR_SCHED_NAME => {
                    svc.sched_name = Some(nla::get_cstr("IPVS_SVC_ATTR_SCHED_NAME", v)?)
                }
                IPVS_SVC_ATTR_FLAGS => {
                    svc.flags = Some(SvcFlags::from_bytes(nla::get_array(
                        "IPVS_SVC_ATTR_FLAGS",
                        v,
                    )?))
                }
                IPVS_SVC_ATTR_TIMEOUT => {
                    svc.timeout = Some(nla::get_u32("IPVS_SVC_ATTR_TIMEOUT", v)?)
                }
                IPVS_SVC_ATTR_NETMASK => {
                    netmask = Some(nla::get_array("IPVS_SVC_ATTR_NETMASK", v)?)
                }
                IPVS_SVC_ATTR_STATS => svc.stats = Some(Stats::decode(v)?),
                IPVS_SVC_ATTR_PE_NAME => {
                    svc.pe_name = Some(nla::get_cstr("IPVS_SVC_ATTR_PE_NAME", v)?)
                }
                IPVS_SVC_ATTR_STATS64 => svc.stats64 = Some(Stats64::decode(v)?),
                _ => svc.unknown.push(RawAttr {
                    kind: raw,
                    value: v.to_vec(),
                }),
            }
            Ok(())
        })?;
        if let Some(a) = addr {
            svc.addr = Some(decode_addr("IPVS_SVC_ATTR_ADDR", a, svc.af)?);
        }
        if let Some(m) = netmask {
            svc.netmask = Some(Netmask::decode(m, svc.af)?);
        }
        Ok(svc)
    }
}

impl AttrSet for ServiceAttrs {
    // Order of the kernel's ip_vs_genl_fill_service(), so that dumps
    // re-encode byte for byte. ipvsadm sends the same order.
    fn visit<S: Sink>(&self, s: &mut S) {
        if let Some(af) = self.af {
            s.attr("IPVS_SVC_ATTR_AF", &U16(IPVS_SVC_ATTR_AF, af.0));
        }
        if let Some(m) = self.fwmark {
            s.attr("IPVS_SVC_ATTR_FWMARK", &U32(IPVS_SVC_ATTR_FWMARK, m));
        }
        if let Some(p) = self.protocol {
            s.attr("IPVS_SVC_ATTR_PROTOCOL", &U16(IPVS_SVC_ATTR_PROTOCOL, p.0));
        }
        if let Some(a) = &self.addr {
            let b = InetAddrBytes::new(a, self.af);
            s.attr(
                "IPVS_SVC_ATTR_ADDR",
                &Bytes(IPVS_SVC_ATTR_ADDR, b.as_slice()),
            );
        }
        if let Some(p) = self.port {
            s.attr("IPVS_SVC_ATTR_PORT", &BeU16(IPVS_SVC_ATTR_PORT, p));
        }
        if let Some(n) = &self.sched_name {
            s.attr(
                "IPVS_SVC_ATTR_SCHED_NAME",
                &CStr(IPVS_SVC_ATTR_SCHED_NAME, n),
            );
        }
        if let Some(n) = &self.pe_name {
            s.attr("IPVS_SVC_ATTR_PE_NAME", &CStr(IPVS_SVC_ATTR_PE_NAME, n));
        }
        if let Some(f) = self.flags {
            s.attr(
                "IPVS_SVC_ATTR_FLAGS",
                &Bytes(IPVS_SVC_ATTR_FLAGS, &f.to_bytes()),
            );
        }
        if let Some(t) = self.timeout {
            s.attr("IPVS_SVC_ATTR_TIMEOUT", &U32(IPVS_SVC_ATTR_TIMEOUT, t));
        }
        if let Some(m) = self.netmask {
            s.attr(
                "IPVS_SVC_ATTR_NETMASK",
                &Bytes(IPVS_SVC_ATTR_NETMASK, &m.to_bytes()),
            );
        }
        if let Some(st) = &self.stats {
            s.nested("IPVS_SVC_ATTR_STATS", IPVS_SVC_ATTR_STATS, st);
        }
        if let Some(st) = &self.stats64 {
            s.nested("IPVS_SVC_ATTR_STATS64", IPVS_SVC_ATTR_STATS64, st);
        }
        nla::visit_unknown(s, "IPVS_CMD_ATTR_SERVICE unknown attribute", &self.unknown);
    }
}

nla::attr_set_traits!(ServiceAttrs);
