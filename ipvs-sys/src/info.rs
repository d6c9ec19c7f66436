//! The first-level attributes of the `IPVS_CMD_SET_INFO` reply.

use crate::consts::*;
use crate::error::Result;
use crate::nla::{self, AttrSet, Sink, U32};
use crate::types::RawAttr;

/// The reply to `GET_INFO` (command `SET_INFO`).
///
/// Quirk: these attributes sit at the **first level** of the message and
/// reuse the numbers 1 and 2, which in every other command mean
/// `IPVS_CMD_ATTR_SERVICE` and `IPVS_CMD_ATTR_DEST`. The first level of a
/// message is therefore interpreted according to its command.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct InfoAttrs {
    /// `IPVS_INFO_ATTR_VERSION` (see [`IpvsVersion`]).
    pub version: Option<u32>,
    /// `IPVS_INFO_ATTR_CONN_TAB_SIZE`.
    pub conn_tab_size: Option<u32>,
    /// Attributes not known to this crate.
    pub unknown: Vec<RawAttr>,
}

/// An IPVS version code split into its parts (`0x010201` is 1.2.1).
///
/// ```
/// let v = ipvs_sys::IpvsVersion::from_code(0x010201);
/// assert_eq!((v.major, v.minor, v.patch), (1, 2, 1));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct IpvsVersion {
    /// Major version.
    pub major: u8,
    /// Minor version.
    pub minor: u8,
    /// Patch level.
    pub patch: u8,
}

impl IpvsVersion {
    /// Split a version code (`NVERSION()` in the kernel header).
    pub const fn from_code(code: u32) -> Self {
        let [_, major, minor, patch] = code.to_be_bytes();
        Self {
            major,
            minor,
            patch,
        }
    }
}

impl InfoAttrs {
    /// Decode the attributes of a `SET_INFO` message.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut i = InfoAttrs::default();
        nla::for_each_attr("IPVS_CMD_SET_INFO", buf, |kind, raw, v| {
            match kind {
                IPVS_INFO_ATTR_VERSION => {
                    i.version = Some(nla::get_u32("IPVS_INFO_ATTR_VERSION", v)?)
                }
                IPVS_INFO_ATTR_CONN_TAB_SIZE => {
                    i.conn_tab_size = Some(nla::get_u32("IPVS_INFO_ATTR_CONN_TAB_SIZE", v)?)
                }
                _ => i.unknown.push(RawAttr {
                    kind: raw,
                    value: v.to_vec(),
                }),
            }
            Ok(())
        })?;
        Ok(i)
    }

    /// The version, split into its parts.
    pub fn ipvs_version(&self) -> Option<IpvsVersion> {
        self.version.map(IpvsVersion::from_code)
    }
}

impl AttrSet for InfoAttrs {
    fn visit<S: Sink>(&self, s: &mut S) {
        if let Some(v) = self.version {
            s.attr("IPVS_INFO_ATTR_VERSION", &U32(IPVS_INFO_ATTR_VERSION, v));
        }
        if let Some(v) = self.conn_tab_size {
            s.attr(
                "IPVS_INFO_ATTR_CONN_TAB_SIZE",
                &U32(IPVS_INFO_ATTR_CONN_TAB_SIZE, v),
            );
        }
        nla::visit_unknown(s, "IPVS_CMD_SET_INFO unknown attribute", &self.unknown);
    }
}

nla::attr_set_traits!(InfoAttrs);
