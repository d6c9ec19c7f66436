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

/// Bytes of each counter of a `STATS` nest, in attribute order (1 to 10).
const STATS_WIDTHS: [usize; 10] = [4, 4, 4, 8, 8, 4, 4, 4, 4, 4];
/// Bytes of each counter of a `STATS64` nest.
const STATS64_WIDTHS: [usize; 10] = [8; 10];

/// The ten counters of a nest laid out exactly as the kernel writes it on x86_64:
/// attributes 1 to 10 in order, `widths[i]` bytes each, no flag bits, no padding
/// attribute, nothing else. `None` for any other layout, which the general decoder then
/// reads (for this layout both give the same value; a test checks it).
///
/// A dump carries two statistics nests per entry; reading them at known offsets takes
/// about a fifth of the instructions of the general loop.
#[inline(always)] // with `widths` a constant, the loop unrolls into fixed offsets
fn canonical<const N: usize>(buf: &[u8], widths: &[usize; 10]) -> Option<[u64; 10]> {
    let b: &[u8; N] = buf.try_into().ok()?;
    let mut out = [0u64; 10];
    let mut pos = 0;
    for (kind, (w, v)) in (1u16..).zip(widths.iter().zip(&mut out)) {
        let &[l0, l1, t0, t1] = b.get(pos..pos + 4)? else {
            return None;
        };
        if usize::from(u16::from_ne_bytes([l0, l1])) != 4 + w
            || u16::from_ne_bytes([t0, t1]) != kind
        {
            return None;
        }
        let val = b.get(pos + 4..pos + 4 + w)?;
        *v = match *val {
            [a, b, c, d] => u64::from(u32::from_ne_bytes([a, b, c, d])),
            [a, b, c, d, e, f, g, h] => u64::from_ne_bytes([a, b, c, d, e, f, g, h]),
            _ => return None,
        };
        pos += 4 + w; // 4 and 8 need no padding
    }
    Some(out)
}

/// The statistics of `$ty` from the ten counters of [`canonical`], the narrow ones
/// passed through `$narrow`.
macro_rules! from_counters {
    ($ty:ident, $c:expr, $narrow:expr) => {{
        let [
            conns,
            inpkts,
            outpkts,
            inbytes,
            outbytes,
            cps,
            inpps,
            outpps,
            inbps,
            outbps,
        ] = $c;
        $ty {
            conns: $narrow(conns),
            inpkts: $narrow(inpkts),
            outpkts: $narrow(outpkts),
            inbytes,
            outbytes,
            cps: $narrow(cps),
            inpps: $narrow(inpps),
            outpps: $narrow(outpps),
            inbps: $narrow(inbps),
            outbps: $narrow(outbps),
            unknown: Vec::new(),
        }
    }};
}

/// A counter that [`canonical`] read from 4 bytes.
fn narrow(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl Stats {
    /// Decode the payload of a `STATS` nest.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        if let Some(c) = canonical::<88>(buf, &STATS_WIDTHS) {
            return Ok(from_counters!(Stats, c, narrow));
        }
        Self::decode_general(buf)
    }

    /// Any layout: counters in any order, padding, unknown attributes.
    fn decode_general(buf: &[u8]) -> Result<Self> {
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
        if let Some(c) = canonical::<120>(buf, &STATS64_WIDTHS) {
            return Ok(from_counters!(Stats64, c, u64::from));
        }
        Self::decode_general(buf)
    }

    /// Any layout: counters in any order, padding, unknown attributes.
    fn decode_general(buf: &[u8]) -> Result<Self> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn encoded<T: AttrSet>(st: &T) -> Vec<u8> {
        let mut buf = vec![0; nla::set_len(st)];
        nla::set_emit(st, &mut buf);
        buf
    }

    fn same<T: PartialEq + std::fmt::Debug>(a: Result<T>, b: Result<T>) {
        match (a, b) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("fast {a:?} vs general {b:?}"),
        }
    }

    proptest! {
        /// The kernel's layout, and that layout damaged: the fast path gives what the
        /// general decoder gives.
        #[test]
        fn fast_path_matches_the_general_decoder(
            c in any::<[u64; 10]>(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        ) {
            let st = Stats {
                conns: c[0] as u32, inpkts: c[1] as u32, outpkts: c[2] as u32,
                inbytes: c[3], outbytes: c[4], cps: c[5] as u32, inpps: c[6] as u32,
                outpps: c[7] as u32, inbps: c[8] as u32, outbps: c[9] as u32,
                unknown: Vec::new(),
            };
            let st64 = Stats64 {
                conns: c[0], inpkts: c[1], outpkts: c[2], inbytes: c[3], outbytes: c[4],
                cps: c[5], inpps: c[6], outpps: c[7], inbps: c[8], outbps: c[9],
                unknown: Vec::new(),
            };
            let mut a = encoded(&st);
            let mut b = encoded(&st64);
            prop_assert!(canonical::<88>(&a, &STATS_WIDTHS).is_some());
            prop_assert!(canonical::<120>(&b, &STATS64_WIDTHS).is_some());
            prop_assert_eq!(Stats::decode(&a).unwrap(), st);
            prop_assert_eq!(Stats64::decode(&b).unwrap(), st64);
            for (i, x) in flips {
                let i = i.index(a.len());
                a[i] ^= x;
                b[i] ^= x;
            }
            same(Stats::decode(&a), Stats::decode_general(&a));
            same(Stats64::decode(&b), Stats64::decode_general(&b));
            same(Stats::decode(&b), Stats::decode_general(&b));
            same(Stats64::decode(&a), Stats64::decode_general(&a));
        }
    }
}
