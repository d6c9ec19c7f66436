//! The sync-daemon nest (`IPVS_CMD_ATTR_DAEMON`).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::consts::*;
use crate::error::Result;
use crate::nla::{self, AttrSet, Bytes, CStr, Sink, U8, U16, U32};
use crate::types::{DaemonState, RawAttr};

/// The attributes of a connection-synchronisation daemon.
///
/// `NEW_DAEMON` requires `state`, `mcast_ifn` and `sync_id`; `DEL_DAEMON`
/// requires `state`. The kernel reports each running daemon (master and
/// backup separately) as one `NEW_DAEMON` message of a `GET_DAEMON` dump.
///
/// Wire quirks handled here:
/// * `mcast_port` is **host** order on the wire (`nla_put_u16`), unlike the
///   network-order service and destination ports;
/// * `mcast_group` is a `struct in_addr` (4 bytes, network order) and
///   `mcast_group6` a `struct in6_addr`; the kernel sends one of them.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct DaemonAttrs {
    /// `IPVS_DAEMON_ATTR_STATE`.
    pub state: Option<DaemonState>,
    /// `IPVS_DAEMON_ATTR_MCAST_IFN` (at most 15 bytes accepted).
    pub mcast_ifn: Option<String>,
    /// `IPVS_DAEMON_ATTR_SYNC_ID`.
    pub sync_id: Option<u32>,
    /// `IPVS_DAEMON_ATTR_SYNC_MAXLEN`.
    pub sync_maxlen: Option<u16>,
    /// `IPVS_DAEMON_ATTR_MCAST_GROUP`.
    pub mcast_group: Option<Ipv4Addr>,
    /// `IPVS_DAEMON_ATTR_MCAST_GROUP6`.
    pub mcast_group6: Option<Ipv6Addr>,
    /// `IPVS_DAEMON_ATTR_MCAST_PORT` (host order on the wire).
    pub mcast_port: Option<u16>,
    /// `IPVS_DAEMON_ATTR_MCAST_TTL`.
    pub mcast_ttl: Option<u8>,
    /// Attributes not known to this crate.
    pub unknown: Vec<RawAttr>,
}

impl DaemonAttrs {
    /// Check that the value can be encoded and decoded back unchanged.
    pub fn validate(&self) -> Result<()> {
        if let Some(s) = &self.mcast_ifn {
            nla::check_cstr("IPVS_DAEMON_ATTR_MCAST_IFN", s)?;
        }
        Ok(())
    }

    /// Decode the payload of an `IPVS_CMD_ATTR_DAEMON` nest.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut d = DaemonAttrs::default();
        nla::for_each_attr("IPVS_CMD_ATTR_DAEMON", buf, |kind, raw, v| {
            match kind {
                IPVS_DAEMON_ATTR_STATE => {
                    d.state = Some(DaemonState(nla::get_u32("IPVS_DAEMON_ATTR_STATE", v)?))
                }
                IPVS_DAEMON_ATTR_MCAST_IFN => {
                    d.mcast_ifn = Some(nla::get_cstr("IPVS_DAEMON_ATTR_MCAST_IFN", v)?)
                }
                IPVS_DAEMON_ATTR_SYNC_ID => {
                    d.sync_id = Some(nla::get_u32("IPVS_DAEMON_ATTR_SYNC_ID", v)?)
                }
                IPVS_DAEMON_ATTR_SYNC_MAXLEN => {
                    d.sync_maxlen = Some(nla::get_u16("IPVS_DAEMON_ATTR_SYNC_MAXLEN", v)?)
                }
                IPVS_DAEMON_ATTR_MCAST_GROUP => {
                    d.mcast_group = Some(Ipv4Addr::from(nla::get_array::<4>(
                        "IPVS_DAEMON_ATTR_MCAST_GROUP",
                        v,
                    )?))
                }
                IPVS_DAEMON_ATTR_MCAST_GROUP6 => {
                    d.mcast_group6 = Some(Ipv6Addr::from(nla::get_array::<16>(
                        "IPVS_DAEMON_ATTR_MCAST_GROUP6",
                        v,
                    )?))
                }
                IPVS_DAEMON_ATTR_MCAST_PORT => {
                    d.mcast_port = Some(nla::get_u16("IPVS_DAEMON_ATTR_MCAST_PORT", v)?)
                }
                IPVS_DAEMON_ATTR_MCAST_TTL => {
                    d.mcast_ttl = Some(nla::get_u8("IPVS_DAEMON_ATTR_MCAST_TTL", v)?)
                }
                _ => d.unknown.push(RawAttr {
                    kind: raw,
                    value: v.to_vec(),
                }),
            }
            Ok(())
        })?;
        Ok(d)
    }
}

impl AttrSet for DaemonAttrs {
    // Order of the kernel's ip_vs_genl_fill_daemon(): the group comes last.
    fn visit<S: Sink>(&self, s: &mut S) {
        if let Some(v) = self.state {
            s.attr("IPVS_DAEMON_ATTR_STATE", &U32(IPVS_DAEMON_ATTR_STATE, v.0));
        }
        if let Some(v) = &self.mcast_ifn {
            s.attr(
                "IPVS_DAEMON_ATTR_MCAST_IFN",
                &CStr(IPVS_DAEMON_ATTR_MCAST_IFN, v),
            );
        }
        if let Some(v) = self.sync_id {
            s.attr(
                "IPVS_DAEMON_ATTR_SYNC_ID",
                &U32(IPVS_DAEMON_ATTR_SYNC_ID, v),
            );
        }
        if let Some(v) = self.sync_maxlen {
            s.attr(
                "IPVS_DAEMON_ATTR_SYNC_MAXLEN",
                &U16(IPVS_DAEMON_ATTR_SYNC_MAXLEN, v),
            );
        }
        if let Some(v) = self.mcast_port {
            s.attr(
                "IPVS_DAEMON_ATTR_MCAST_PORT",
                &U16(IPVS_DAEMON_ATTR_MCAST_PORT, v),
            );
        }
        if let Some(v) = self.mcast_ttl {
            s.attr(
                "IPVS_DAEMON_ATTR_MCAST_TTL",
                &U8(IPVS_DAEMON_ATTR_MCAST_TTL, v),
            );
        }
        if let Some(v) = self.mcast_group6 {
            s.attr(
                "IPVS_DAEMON_ATTR_MCAST_GROUP6",
                &Bytes(IPVS_DAEMON_ATTR_MCAST_GROUP6, &v.octets()),
            );
        }
        if let Some(v) = self.mcast_group {
            s.attr(
                "IPVS_DAEMON_ATTR_MCAST_GROUP",
                &Bytes(IPVS_DAEMON_ATTR_MCAST_GROUP, &v.octets()),
            );
        }
        nla::visit_unknown(s, "IPVS_CMD_ATTR_DAEMON unknown attribute", &self.unknown);
    }
}

nla::attr_set_traits!(DaemonAttrs);
