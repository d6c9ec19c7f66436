//! Statistics nests (`IPVS_*_ATTR_STATS` and `IPVS_*_ATTR_STATS64`).
//!
//! The kernel emits all ten counters, in attribute order, in both nests:
//! in the legacy `STATS` nest every counter is a u32 except the two byte
//! counters (u64); in `STATS64` every counter is a u64. The u64 attributes
//! are written with `nla_put_u64_64bit`, which on architectures without
//! efficient unaligned access (not x86) inserts `IPVS_STATS_ATTR_PAD`
//! attributes to align the payload: decoding skips them, encoding never
//! emits them (so a padded capture re-encodes to the unpadded form).
//!
//! A missing counter decodes as 0; encoding always emits all ten.

use crate::consts::*;
use crate::error::Result;
use crate::nla::{self, AttrSet, Sink, U32, U64};
use crate::types::RawAttr;

/// Legacy statistics nest (`IPVS_SVC_ATTR_STATS` / `IPVS_DEST_ATTR_STATS`).
///
/// Counters are u32 except the byte counters; the kernel truncates its
/// 64-bit counters into the u32 fields.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct Stats {
    /// Connections scheduled.
    pub conns: u32,
    /// Incoming packets.
    pub inpkts: u32,
    /// Outgoing packets.
    pub outpkts: u32,
    /// Incoming bytes.
    pub inbytes: u64,
    /// Outgoing bytes.
    pub outbytes: u64,
    /// Connection rate.
    pub cps: u32,
    /// Incoming packet rate.
    pub inpps: u32,
    /// Outgoing packet rate.
    pub outpps: u32,
    /// Incoming byte rate.
    pub inbps: u32,
    /// Outgoing byte rate.
    pub outbps: u32,
    /// Attributes not known to this crate (never `IPVS_STATS_ATTR_PAD`).
    pub unknown: Vec<RawAttr>,
}

/// 64-bit statistics nest (`IPVS_SVC_ATTR_STATS64` /
/// `IPVS_DEST_ATTR_STATS64`, Linux 4.1+).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct Stats64 {
    /// Connections scheduled.
    pub conns: u64,
    /// Incoming packets.
    pub inpkts: u64,
    /// Outgoing packets.
    pub outpkts: u64,
    /// Incoming bytes.
    pub inbytes: u64,
    /// Outgoing bytes.
    pub outbytes: u64,
    /// Connection rate.
    pub cps: u64,
    /// Incoming packet rate.
    pub inpps: u64,
    /// Outgoing packet rate.
    pub outpps: u64,
    /// Incoming byte rate.
    pub inbps: u64,
    /// Outgoing byte rate.
    pub outbps: u64,
    /// Attributes not known to this crate (never `IPVS_STATS_ATTR_PAD`).
    pub unknown: Vec<RawAttr>,
}

impl AttrSet for Stats {
    fn visit<S: Sink>(&self, s: &mut S) {
        s.attr(
            "IPVS_STATS_ATTR_CONNS",
            &U32(IPVS_STATS_ATTR_CONNS, self.conns),
        );
        s.attr(
            "IPVS_STATS_ATTR_INPKTS",
            &U32(IPVS_STATS_ATTR_INPKTS, self.inpkts),
        );
        s.attr(
            "IPVS_STATS_ATTR_OUTPKTS",
            &U32(IPVS_STATS_ATTR_OUTPKTS, self.outpkts),
        );
        s.attr(
            "IPVS_STATS_ATTR_INBYTES",
            &U64(IPVS_STATS_ATTR_INBYTES, self.inbytes),
        );
        s.attr(
            "IPVS_STATS_ATTR_OUTBYTES",
            &U64(IPVS_STATS_ATTR_OUTBYTES, self.outbytes),
        );
        s.attr("IPVS_STATS_ATTR_CPS", &U32(IPVS_STATS_ATTR_CPS, self.cps));
        s.attr(
            "IPVS_STATS_ATTR_INPPS",
            &U32(IPVS_STATS_ATTR_INPPS, self.inpps),
        );
        s.attr(
            "IPVS_STATS_ATTR_OUTPPS",
            &U32(IPVS_STATS_ATTR_OUTPPS, self.outpps),
        );
        s.attr(
            "IPVS_STATS_ATTR_INBPS",
            &U32(IPVS_STATS_ATTR_INBPS, self.inbps),
        );
        s.attr(
            "IPVS_STATS_ATTR_OUTBPS",
            &U32(IPVS_STATS_ATTR_OUTBPS, self.outbps),
        );
        nla::visit_unknown(s, "IPVS_STATS unknown attribute", &self.unknown);
    }
}

impl AttrSet for Stats64 {
    fn visit<S: Sink>(&self, s: &mut S) {
        s.attr(
            "IPVS_STATS_ATTR_CONNS",
            &U64(IPVS_STATS_ATTR_CONNS, self.conns),
        );
        s.attr(
            "IPVS_STATS_ATTR_INPKTS",
            &U64(IPVS_STATS_ATTR_INPKTS, self.inpkts),
        );
        s.attr(
            "IPVS_STATS_ATTR_OUTPKTS",
            &U64(IPVS_STATS_ATTR_OUTPKTS, self.outpkts),
        );
        s.attr(
            "IPVS_STATS_ATTR_INBYTES",
            &U64(IPVS_STATS_ATTR_INBYTES, self.inbytes),
        );
        s.attr(
            "IPVS_STATS_ATTR_OUTBYTES",
            &U64(IPVS_STATS_ATTR_OUTBYTES, self.outbytes),
        );
        s.attr("IPVS_STATS_ATTR_CPS", &U64(IPVS_STATS_ATTR_CPS, self.cps));
        s.attr(
            "IPVS_STATS_ATTR_INPPS",
            &U64(IPVS_STATS_ATTR_INPPS, self.inpps),
        );
        s.attr(
            "IPVS_STATS_ATTR_OUTPPS",
            &U64(IPVS_STATS_ATTR_OUTPPS, self.outpps),
        );
        s.attr(
            "IPVS_STATS_ATTR_INBPS",
            &U64(IPVS_STATS_ATTR_INBPS, self.inbps),
        );
        s.attr(
            "IPVS_STATS_ATTR_OUTBPS",
            &U64(IPVS_STATS_ATTR_OUTBPS, self.outbps),
        );
        nla::visit_unknown(s, "IPVS_STATS64 unknown attribute", &self.unknown);
    }
}

impl Stats {
    /// Decode the payload of a `STATS` nest.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut st = Stats::default();
        nla::for_each_attr("IPVS_*_ATTR_STATS", buf, |kind, raw, v| {
            match kind {
                IPVS_STATS_ATTR_CONNS => st.conns = nla::get_u32("IPVS_STATS_ATTR_CONNS", v)?,
                IPVS_STATS_ATTR_INPKTS => st.inpkts = nla::get_u32("IPVS_STATS_ATTR_INPKTS", v)?,
                IPVS_STATS_ATTR_OUTPKTS => st.outpkts = nla::get_u32("IPVS_STATS_ATTR_OUTPKTS", v)?,
                IPVS_STATS_ATTR_INBYTES => st.inbytes = nla::get_u64("IPVS_STATS_ATTR_INBYTES", v)?,
                IPVS_STATS_ATTR_OUTBYTES => {
                    st.outbytes = nla::get_u64("IPVS_STATS_ATTR_OUTBYTES", v)?
                }
                IPVS_STATS_ATTR_CPS => st.cps = nla::get_u32("IPVS_STATS_ATTR_CPS", v)?,
                IPVS_STATS_ATTR_INPPS => st.inpps = nla::get_u32("IPVS_STATS_ATTR_INPPS", v)?,
                IPVS_STATS_ATTR_OUTPPS => st.outpps = nla::get_u32("IPVS_STATS_ATTR_OUTPPS", v)?,
                IPVS_STATS_ATTR_INBPS => st.inbps = nla::get_u32("IPVS_STATS_ATTR_INBPS", v)?,
                IPVS_STATS_ATTR_OUTBPS => st.outbps = nla::get_u32("IPVS_STATS_ATTR_OUTBPS", v)?,
                IPVS_STATS_ATTR_PAD => {}
                _ => st.unknown.push(RawAttr {
                    kind: raw,
                    value: v.to_vec(),
                }),
            }
            Ok(())
        })?;
        Ok(st)
    }
}

impl Stats64 {
    /// Decode the payload of a `STATS64` nest.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut st = Stats64::default();
        nla::for_each_attr("IPVS_*_ATTR_STATS64", buf, |kind, raw, v| {
            let field = match kind {
                IPVS_STATS_ATTR_CONNS => &mut st.conns,
                IPVS_STATS_ATTR_INPKTS => &mut st.inpkts,
                IPVS_STATS_ATTR_OUTPKTS => &mut st.outpkts,
                IPVS_STATS_ATTR_INBYTES => &mut st.inbytes,
                IPVS_STATS_ATTR_OUTBYTES => &mut st.outbytes,
                IPVS_STATS_ATTR_CPS => &mut st.cps,
                IPVS_STATS_ATTR_INPPS => &mut st.inpps,
                IPVS_STATS_ATTR_OUTPPS => &mut st.outpps,
                IPVS_STATS_ATTR_INBPS => &mut st.inbps,
                IPVS_STATS_ATTR_OUTBPS => &mut st.outbps,
                IPVS_STATS_ATTR_PAD => return Ok(()),
                _ => {
                    st.unknown.push(RawAttr {
                        kind: raw,
                        value: v.to_vec(),
                    });
                    return Ok(());
                }
            };
            *field = nla::get_u64(stats64_name(kind), v)?;
            Ok(())
        })?;
        Ok(st)
    }
}

fn stats64_name(kind: u16) -> &'static str {
    match kind {
        IPVS_STATS_ATTR_CONNS => "IPVS_STATS64 CONNS",
        IPVS_STATS_ATTR_INPKTS => "IPVS_STATS64 INPKTS",
        IPVS_STATS_ATTR_OUTPKTS => "IPVS_STATS64 OUTPKTS",
        IPVS_STATS_ATTR_INBYTES => "IPVS_STATS64 INBYTES",
        IPVS_STATS_ATTR_OUTBYTES => "IPVS_STATS64 OUTBYTES",
        IPVS_STATS_ATTR_CPS => "IPVS_STATS64 CPS",
        IPVS_STATS_ATTR_INPPS => "IPVS_STATS64 INPPS",
        IPVS_STATS_ATTR_OUTPPS => "IPVS_STATS64 OUTPPS",
        IPVS_STATS_ATTR_INBPS => "IPVS_STATS64 INBPS",
        _ => "IPVS_STATS64 OUTBPS",
    }
}

nla::attr_set_traits!(Stats);
nla::attr_set_traits!(Stats64);
