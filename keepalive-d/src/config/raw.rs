//! The configuration as deserialized, before validation.
//!
//! Every leaf keeps its source location ([`Spanned`]) so that validation errors can name the
//! line and column. Scalars that need checking (numbers, addresses, durations, enum names)
//! are read as strings and parsed by the validation pass, which lets it report every bad
//! value in one run instead of stopping at the first. Required keys are `Option`s for the
//! same reason: a missing key is reported at the mapping that lacks it.

use serde::Deserialize;
use serde_saphyr::Spanned;

pub(crate) type S<T> = Spanned<T>;
pub(crate) type List<T> = S<Vec<S<T>>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub vrrp_instances: Option<List<RawVrrpInstance>>,
    #[serde(default)]
    pub vrrp_sync_groups: Option<List<RawSyncGroup>>,
    #[serde(default)]
    pub virtual_servers: Option<List<RawVirtualServer>>,
    #[serde(default)]
    pub ipvs: Option<S<RawIpvs>>,
    #[serde(default)]
    pub metrics: Option<S<RawMetrics>>,
    #[serde(default)]
    pub sync_daemon: Option<S<RawSyncDaemon>>,
    #[serde(default)]
    pub bgp: Option<S<RawBgp>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBgp {
    #[serde(default)]
    pub table: Option<S<String>>,
    #[serde(default)]
    pub protocol: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVrrpInstance {
    #[serde(default)]
    pub name: Option<S<String>>,
    #[serde(default)]
    pub interface: Option<S<String>>,
    #[serde(default)]
    pub vrid: Option<S<String>>,
    #[serde(default)]
    pub priority: Option<S<String>>,
    #[serde(default)]
    pub version: Option<S<String>>,
    #[serde(default)]
    pub advert_interval: Option<S<String>>,
    #[serde(default)]
    pub preempt: Option<S<bool>>,
    #[serde(default)]
    pub preempt_delay: Option<S<String>>,
    #[serde(default)]
    pub unicast_source: Option<S<String>>,
    #[serde(default)]
    pub unicast_peers: Option<List<String>>,
    #[serde(default)]
    pub auth_pass: Option<S<String>>,
    #[serde(default)]
    pub virtual_ips: Option<List<String>>,
    #[serde(default)]
    pub track_interfaces: Option<List<String>>,
    #[serde(default)]
    pub track_scripts: Option<List<RawTrackScript>>,
    #[serde(default)]
    pub notify: Option<S<RawNotify>>,
    #[serde(default)]
    pub garp: Option<S<RawGarp>>,
    #[serde(default)]
    pub vmac: Option<S<RawVmac>>,
}

/// `vmac: true`, `vmac: false` or `vmac: { name: NAME }` (a mapping, whose keys the
/// validation checks: a struct would also accept a sequence). Anything else is kept as
/// [`RawVmac::Invalid`] so that validation reports it with the expected forms.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawVmac {
    Enabled(bool),
    Named(std::collections::BTreeMap<String, String>),
    Invalid(serde::de::IgnoredAny),
}

impl RawVmac {
    /// The macvlan's name for virtual router `vrid` of `family`: `None` when off or
    /// malformed (reported by the validation of the instance).
    pub fn name(&self, vrid: u8, family: super::types::AddressFamily) -> Option<String> {
        use super::types::Vmac;
        match self {
            RawVmac::Enabled(true) => Some(Vmac::default_name(vrid, family)),
            RawVmac::Named(map) if map.keys().all(|k| k == "name") => Some(
                map.get("name")
                    .cloned()
                    .unwrap_or_else(|| Vmac::default_name(vrid, family)),
            ),
            RawVmac::Enabled(false) | RawVmac::Named(_) | RawVmac::Invalid(_) => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrackScript {
    #[serde(default)]
    pub command: Option<List<String>>,
    #[serde(default)]
    pub interval: Option<S<String>>,
    #[serde(default)]
    pub timeout: Option<S<String>>,
    #[serde(default)]
    pub weight: Option<S<String>>,
    #[serde(default)]
    pub rise: Option<S<String>>,
    #[serde(default)]
    pub fall: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNotify {
    #[serde(default)]
    pub master: Option<List<String>>,
    #[serde(default)]
    pub backup: Option<List<String>>,
    #[serde(default)]
    pub fault: Option<List<String>>,
    #[serde(default)]
    pub stop: Option<List<String>>,
    #[serde(default)]
    pub timeout: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGarp {
    #[serde(default)]
    pub delay: Option<S<String>>,
    #[serde(default)]
    pub repeat: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSyncGroup {
    #[serde(default)]
    pub name: Option<S<String>>,
    #[serde(default)]
    pub instances: Option<List<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVirtualServer {
    #[serde(default)]
    pub name: Option<S<String>>,
    #[serde(default)]
    pub vip: Option<S<String>>,
    #[serde(default)]
    pub fwmark: Option<S<String>>,
    #[serde(default)]
    pub family: Option<S<String>>,
    #[serde(default)]
    pub protocol: Option<S<String>>,
    #[serde(default)]
    pub scheduler: Option<S<String>>,
    #[serde(default)]
    pub scheduler_flags: Option<List<String>>,
    #[serde(default)]
    pub persistence: Option<S<RawPersistence>>,
    #[serde(default)]
    pub one_packet: Option<S<bool>>,
    #[serde(default)]
    pub forward: Option<S<String>>,
    #[serde(default)]
    pub tunnel: Option<S<RawTunnel>>,
    #[serde(default)]
    pub check: Option<Box<S<RawCheck>>>,
    #[serde(default)]
    pub quorum: Option<S<RawQuorum>>,
    #[serde(default)]
    pub sorry_server: Option<S<String>>,
    #[serde(default)]
    pub inhibit_on_failure: Option<S<bool>>,
    #[serde(default)]
    pub announce: Option<S<String>>,
    #[serde(default)]
    pub real_servers: Option<List<RawRealServer>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPersistence {
    #[serde(default)]
    pub timeout: Option<S<String>>,
    #[serde(default)]
    pub netmask: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTunnel {
    #[serde(default, rename = "type")]
    pub kind: Option<S<String>>,
    #[serde(default)]
    pub port: Option<S<String>>,
    #[serde(default)]
    pub checksum: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    #[serde(default, rename = "type")]
    pub kind: Option<S<String>>,
    #[serde(default)]
    pub interval: Option<S<String>>,
    #[serde(default)]
    pub timeout: Option<S<String>>,
    #[serde(default)]
    pub rise: Option<S<String>>,
    #[serde(default)]
    pub fall: Option<S<String>>,
    #[serde(default)]
    pub port: Option<S<String>>,
    #[serde(default)]
    pub path: Option<S<String>>,
    #[serde(default)]
    pub expect_status: Option<List<String>>,
    #[serde(default)]
    pub expect_body: Option<S<String>>,
    #[serde(default)]
    pub host: Option<S<String>>,
    #[serde(default)]
    pub ca: Option<S<String>>,
    #[serde(default)]
    pub source: Option<S<String>>,
    #[serde(default)]
    pub dns: Option<S<RawDns>>,
    #[serde(default)]
    pub exec: Option<S<RawExec>>,
    #[serde(default)]
    pub close: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDns {
    #[serde(default)]
    pub query: Option<S<String>>,
    #[serde(default)]
    pub record: Option<S<String>>,
    #[serde(default)]
    pub transport: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExec {
    #[serde(default)]
    pub command: Option<List<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQuorum {
    #[serde(default)]
    pub min_up: Option<S<String>>,
    #[serde(default)]
    pub hysteresis: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRealServer {
    #[serde(default)]
    pub address: Option<S<String>>,
    #[serde(default)]
    pub weight: Option<S<String>>,
    /// Boxed: a `RawCheck` is about 1.3 KB inline (every field spanned), and the list
    /// of real servers grows by doubling while it is parsed.
    #[serde(default)]
    pub check: Option<Box<S<RawCheck>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetrics {
    #[serde(default)]
    pub listen: Option<S<String>>,
    #[serde(default)]
    pub allow_remote: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIpvs {
    #[serde(default)]
    pub reconcile_interval: Option<S<String>>,
    #[serde(default)]
    pub coalesce: Option<S<String>>,
    #[serde(default)]
    pub on_stop: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSyncDaemon {
    #[serde(default)]
    pub interface: Option<S<String>>,
    #[serde(default)]
    pub instance: Option<S<String>>,
    #[serde(default)]
    pub sync_id: Option<S<String>>,
}
