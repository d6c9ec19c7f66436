//! The destination nest (`IPVS_CMD_ATTR_DEST`).

use std::net::{IpAddr, SocketAddr};

use crate::consts::*;
use crate::error::Result;
use crate::nla::{self, AttrSet, BeU16, Bytes, Sink, U8, U16, U32};
use crate::stats::{Stats, Stats64};
use crate::types::{
    AddressFamily, ForwardMethod, InetAddrBytes, RawAttr, TunnelFlags, TunnelType, check_addr,
    decode_addr,
};

/// Largest weight the kernel accepts. `IPVS_DEST_ATTR_WEIGHT` is a u32 on the
/// wire, but the kernel stores it in an `int` and rejects negative values
/// with `ERANGE`, so the valid range is `0..=i32::MAX`. Weight 0 quiesces a
/// destination (no new connections).
pub const MAX_WEIGHT: u32 = i32::MAX as u32;

/// The attributes of a destination (real server).
///
/// The kernel identifies a destination inside its service by `addr` + `port`
/// (+ `addr_family`); `NEW_DEST`/`SET_DEST` also require `fwd_method`,
/// `weight`, `u_thresh` and `l_thresh`.
///
/// Attribute order: next to a service nest (requests) the destination is
/// written as ipvsadm writes it (`ADDR_FAMILY` first); alone (`GET_DEST`
/// dump entries) as the kernel writes it (`ADDR_FAMILY` after the
/// connection counters). Both kinds of captured traffic thus re-encode byte
/// for byte.
///
/// Wire quirks handled here:
/// * `port` and `tun_port` are host-order `u16` here, network order on the
///   wire; `tun_flags` is host order on the wire;
/// * `addr` is the 16-byte `union nf_inet_addr`, decoded according to
///   `addr_family` or, when that is absent (kernels before 3.18, or a request
///   that omits it), the family of the enclosing service;
/// * `weight` is a u32 on the wire but only `0..=`[`MAX_WEIGHT`] is valid;
/// * `active_conns`, `inact_conns`, `persist_conns` and the statistics only
///   appear in replies.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct DestAttrs {
    /// `IPVS_DEST_ATTR_ADDR`.
    pub addr: Option<IpAddr>,
    /// `IPVS_DEST_ATTR_PORT` (host order here, network order on the wire).
    pub port: Option<u16>,
    /// `IPVS_DEST_ATTR_FWD_METHOD`.
    pub fwd_method: Option<ForwardMethod>,
    /// `IPVS_DEST_ATTR_WEIGHT` (valid range `0..=`[`MAX_WEIGHT`]).
    pub weight: Option<u32>,
    /// `IPVS_DEST_ATTR_U_THRESH` (0 = no limit).
    pub u_thresh: Option<u32>,
    /// `IPVS_DEST_ATTR_L_THRESH`.
    pub l_thresh: Option<u32>,
    /// `IPVS_DEST_ATTR_ACTIVE_CONNS` (replies only).
    pub active_conns: Option<u32>,
    /// `IPVS_DEST_ATTR_INACT_CONNS` (replies only).
    pub inact_conns: Option<u32>,
    /// `IPVS_DEST_ATTR_PERSIST_CONNS` (replies only).
    pub persist_conns: Option<u32>,
    /// `IPVS_DEST_ATTR_STATS` (replies only).
    pub stats: Option<Stats>,
    /// `IPVS_DEST_ATTR_ADDR_FAMILY` (may differ from the service's family
    /// for tunnelled destinations).
    pub addr_family: Option<AddressFamily>,
    /// `IPVS_DEST_ATTR_STATS64` (replies only).
    pub stats64: Option<Stats64>,
    /// `IPVS_DEST_ATTR_TUN_TYPE`.
    pub tun_type: Option<TunnelType>,
    /// `IPVS_DEST_ATTR_TUN_PORT` (host order here, network order on the
    /// wire).
    pub tun_port: Option<u16>,
    /// `IPVS_DEST_ATTR_TUN_FLAGS`.
    pub tun_flags: Option<TunnelFlags>,
    /// Attributes not known to this crate.
    pub unknown: Vec<RawAttr>,
}

impl DestAttrs {
    /// The key of a destination: address family, address and port.
    ///
    /// ```
    /// use ipvs_sys::DestAttrs;
    /// let d = DestAttrs::key_of("198.51.100.7:8080".parse().unwrap());
    /// assert_eq!(d.port, Some(8080));
    /// ```
    pub fn key_of(addr: SocketAddr) -> Self {
        Self {
            addr_family: Some(AddressFamily::of(&addr.ip())),
            addr: Some(addr.ip()),
            port: Some(addr.port()),
            ..Self::default()
        }
    }

    /// Add the attributes `NEW_DEST`/`SET_DEST` require (thresholds 0, i.e.
    /// unlimited, as ipvsadm does).
    pub fn with_config(mut self, fwd_method: ForwardMethod, weight: u32) -> Self {
        self.fwd_method = Some(fwd_method);
        self.weight = Some(weight);
        self.u_thresh = Some(self.u_thresh.unwrap_or(0));
        self.l_thresh = Some(self.l_thresh.unwrap_or(0));
        self
    }

    /// Only the identifying attributes (`addr_family`, `addr`, `port`), as
    /// `DEL_DEST` needs.
    pub fn key(&self) -> Self {
        Self {
            addr_family: self.addr_family,
            addr: self.addr,
            port: self.port,
            ..Self::default()
        }
    }

    /// The family the address is encoded and decoded under.
    fn family(&self, hint: Option<AddressFamily>) -> Option<AddressFamily> {
        self.addr_family.or(hint)
    }

    /// Check that the value can be encoded and decoded back unchanged.
    /// `service_family` is the family of the enclosing service, used when
    /// `addr_family` is absent.
    pub fn validate(&self, service_family: Option<AddressFamily>) -> Result<()> {
        if let Some(a) = &self.addr {
            check_addr("IPVS_DEST_ATTR_ADDR", a, self.family(service_family))?;
        }
        Ok(())
    }

    /// Decode the payload of an `IPVS_CMD_ATTR_DEST` nest without a
    /// service-family hint (the address then needs `addr_family`, which
    /// every kernel since 3.18 sends, or a 4-byte payload).
    pub fn decode(buf: &[u8]) -> Result<Self> {
        Self::decode_with_family(buf, None)
    }

    /// Decode the payload of an `IPVS_CMD_ATTR_DEST` nest; `service_family`
    /// interprets the address when `IPVS_DEST_ATTR_ADDR_FAMILY` is absent.
    pub fn decode_with_family(buf: &[u8], service_family: Option<AddressFamily>) -> Result<Self> {
        let mut d = DestAttrs::default();
        let mut addr: Option<&[u8]> = None;
        nla::for_each_attr("IPVS_CMD_ATTR_DEST", buf, |kind, raw, v| {
            match kind {
                IPVS_DEST_ATTR_ADDR => addr = Some(v),
                IPVS_DEST_ATTR_PORT => d.port = Some(nla::get_be16("IPVS_DEST_ATTR_PORT", v)?),
                IPVS_DEST_ATTR_FWD_METHOD => {
                    d.fwd_method =
                        Some(ForwardMethod(nla::get_u32("IPVS_DEST_ATTR_FWD_METHOD", v)?))
                }
                IPVS_DEST_ATTR_WEIGHT => d.weight = Some(nla::get_u32("IPVS_DEST_ATTR_WEIGHT", v)?),
                IPVS_DEST_ATTR_U_THRESH => {
                    d.u_thresh = Some(nla::get_u32("IPVS_DEST_ATTR_U_THRESH", v)?)
                }
                IPVS_DEST_ATTR_L_THRESH => {
                    d.l_thresh = Some(nla::get_u32("IPVS_DEST_ATTR_L_THRESH", v)?)
                }
                IPVS_DEST_ATTR_ACTIVE_CONNS => {
                    d.active_conns = Some(nla::get_u32("IPVS_DEST_ATTR_ACTIVE_CONNS", v)?)
                }
                IPVS_DEST_ATTR_INACT_CONNS => {
                    d.inact_conns = Some(nla::get_u32("IPVS_DEST_ATTR_INACT_CONNS", v)?)
                }
                IPVS_DEST_ATTR_PERSIST_CONNS => {
                    d.persist_conns = Some(nla::get_u32("IPVS_DEST_ATTR_PERSIST_CONNS", v)?)
                }
                IPVS_DEST_ATTR_STATS => d.stats = Some(Stats::decode(v)?),
                IPVS_DEST_ATTR_ADDR_FAMILY => {
                    d.addr_family = Some(AddressFamily(nla::get_u16(
                        "IPVS_DEST_ATTR_ADDR_FAMILY",
                        v,
                    )?))
                }
                IPVS_DEST_ATTR_STATS64 => d.stats64 = Some(Stats64::decode(v)?),
                IPVS_DEST_ATTR_TUN_TYPE => {
                    d.tun_type = Some(TunnelType(nla::get_u8("IPVS_DEST_ATTR_TUN_TYPE", v)?))
                }
                IPVS_DEST_ATTR_TUN_PORT => {
                    d.tun_port = Some(nla::get_be16("IPVS_DEST_ATTR_TUN_PORT", v)?)
                }
                IPVS_DEST_ATTR_TUN_FLAGS => {
                    d.tun_flags = Some(TunnelFlags(nla::get_u16("IPVS_DEST_ATTR_TUN_FLAGS", v)?))
                }
                _ => d.unknown.push(RawAttr {
                    kind: raw,
                    value: v.to_vec(),
                }),
            }
            Ok(())
        })?;
        if let Some(a) = addr {
            d.addr = Some(decode_addr(
                "IPVS_DEST_ATTR_ADDR",
                a,
                d.family(service_family),
            )?);
        }
        Ok(d)
    }

    // Two orders, so that both kinds of real traffic re-encode byte for
    // byte: a destination next to a service nest (a request) is written in
    // ipvsadm/libipvs order, with ADDR_FAMILY first; a destination on its
    // own (a GET_DEST dump entry) in the order of the kernel's
    // ip_vs_genl_fill_dest(), with ADDR_FAMILY after the connection counters.
    // The kernel does not care about the order of what it parses.
    pub(crate) fn visit_with_family<S: Sink>(
        &self,
        s: &mut S,
        hint: Option<AddressFamily>,
        request_order: bool,
    ) {
        if request_order {
            if let Some(af) = self.addr_family {
                s.attr(
                    "IPVS_DEST_ATTR_ADDR_FAMILY",
                    &U16(IPVS_DEST_ATTR_ADDR_FAMILY, af.0),
                );
            }
        }
        if let Some(a) = &self.addr {
            let b = InetAddrBytes::new(a, self.family(hint));
            s.attr(
                "IPVS_DEST_ATTR_ADDR",
                &Bytes(IPVS_DEST_ATTR_ADDR, b.as_slice()),
            );
        }
        if let Some(p) = self.port {
            s.attr("IPVS_DEST_ATTR_PORT", &BeU16(IPVS_DEST_ATTR_PORT, p));
        }
        if let Some(m) = self.fwd_method {
            s.attr(
                "IPVS_DEST_ATTR_FWD_METHOD",
                &U32(IPVS_DEST_ATTR_FWD_METHOD, m.0),
            );
        }
        if let Some(w) = self.weight {
            s.attr("IPVS_DEST_ATTR_WEIGHT", &U32(IPVS_DEST_ATTR_WEIGHT, w));
        }
        if let Some(t) = self.tun_type {
            s.attr("IPVS_DEST_ATTR_TUN_TYPE", &U8(IPVS_DEST_ATTR_TUN_TYPE, t.0));
        }
        if let Some(p) = self.tun_port {
            s.attr(
                "IPVS_DEST_ATTR_TUN_PORT",
                &BeU16(IPVS_DEST_ATTR_TUN_PORT, p),
            );
        }
        if let Some(f) = self.tun_flags {
            s.attr(
                "IPVS_DEST_ATTR_TUN_FLAGS",
                &U16(IPVS_DEST_ATTR_TUN_FLAGS, f.0),
            );
        }
        if let Some(v) = self.u_thresh {
            s.attr("IPVS_DEST_ATTR_U_THRESH", &U32(IPVS_DEST_ATTR_U_THRESH, v));
        }
        if let Some(v) = self.l_thresh {
            s.attr("IPVS_DEST_ATTR_L_THRESH", &U32(IPVS_DEST_ATTR_L_THRESH, v));
        }
        if let Some(v) = self.active_conns {
            s.attr(
                "IPVS_DEST_ATTR_ACTIVE_CONNS",
                &U32(IPVS_DEST_ATTR_ACTIVE_CONNS, v),
            );
        }
        if let Some(v) = self.inact_conns {
            s.attr(
                "IPVS_DEST_ATTR_INACT_CONNS",
                &U32(IPVS_DEST_ATTR_INACT_CONNS, v),
            );
        }
        if let Some(v) = self.persist_conns {
            s.attr(
                "IPVS_DEST_ATTR_PERSIST_CONNS",
                &U32(IPVS_DEST_ATTR_PERSIST_CONNS, v),
            );
        }
        if !request_order {
            if let Some(af) = self.addr_family {
                s.attr(
                    "IPVS_DEST_ATTR_ADDR_FAMILY",
                    &U16(IPVS_DEST_ATTR_ADDR_FAMILY, af.0),
                );
            }
        }
        if let Some(st) = &self.stats {
            s.nested("IPVS_DEST_ATTR_STATS", IPVS_DEST_ATTR_STATS, st);
        }
        if let Some(st) = &self.stats64 {
            s.nested("IPVS_DEST_ATTR_STATS64", IPVS_DEST_ATTR_STATS64, st);
        }
        nla::visit_unknown(s, "IPVS_CMD_ATTR_DEST unknown attribute", &self.unknown);
    }
}

impl AttrSet for DestAttrs {
    fn visit<S: Sink>(&self, s: &mut S) {
        self.visit_with_family(s, None, false)
    }
}

/// A destination in a message: encoded under the family of its service,
/// in request order when the message has a service nest.
pub(crate) struct DestInMessage<'a> {
    pub dest: &'a DestAttrs,
    pub service_family: Option<AddressFamily>,
    pub with_service: bool,
}

impl AttrSet for DestInMessage<'_> {
    fn visit<S: Sink>(&self, s: &mut S) {
        self.dest
            .visit_with_family(s, self.service_family, self.with_service)
    }
}

nla::attr_set_traits!(DestAttrs);
