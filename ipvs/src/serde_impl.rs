//! serde support: the stable, human-readable JSON/YAML form of the model.
//!
//! Deserialising validates exactly like the constructors do; unknown fields are errors.
//!
//! | type | form |
//! | --- | --- |
//! | [`ServiceKey`] | `"tcp 192.0.2.1:80"`, `"udp [2001:db8::1]:53"`, `"sctp 192.0.2.1:3868"`, `"fwmark 7"`, `"fwmark 7 ipv6"` |
//! | [`Scheduler`] | its name: `"wlc"`, `"mh"`, `"my-custom"` |
//! | durations | `"300s"` (a bare integer is read as seconds too) |
//! | [`PersistenceMask`] | IPv4: `"255.255.255.0"`; IPv6: a prefix length, `64` (checked, with the service's family, when the service is built) |
//! | [`Persistence`] | `{"timeout": "300s", "netmask": "255.255.255.0", "engine": "sip"}` (netmask and engine optional) |
//! | [`Forward`] | `"nat"`, `"dr"`, `"local"`, `"bypass"`, or a tunnel `{"tun": {"type": "ipip"}}`, `{"tun": {"type": "gue", "port": 6080, "checksum": "csum"}}`, `{"tun": {"type": "gre", "checksum": "none"}}`; `"tun"` alone is an IPIP tunnel |
//! | [`TunnelChecksum`] | `"none"`, `"csum"`, `"remcsum"` |
//! | [`Destination`] | `{"address": "10.0.0.1:80", "forward": "nat", "weight": 1, "upper_threshold": 0, "lower_threshold": 0}`; `forward` defaults to `"dr"`, `weight` to 1, thresholds to 0 (and are left out when 0) |
//! | [`Service`] | `{"service": "tcp 192.0.2.1:80", "scheduler": "wlc", "flags": ["sh-port"], "persistence": {...}, "one_packet": false, "destinations": [...]}`; all but `service` optional (scheduler `wlc`) |
//! | [`Table`] | `{"services": [...]}` in key order |
//! | [`Timeouts`] | `{"tcp": "900s", "tcp_fin": "120s", "udp": "300s"}` |
//! | [`SyncDaemon`] | `{"state": "master", "mcast_interface": "eth0", "sync_id": 0, "sync_maxlen": 1472, "mcast_group": "224.0.0.81", "mcast_port": 8848, "mcast_ttl": 1}` (the last four optional) |
//! | [`Stats`] | `{"conns": 0, "inpkts": 0, "outpkts": 0, "inbytes": 0, "outbytes": 0, "cps": 0, "inpps": 0, "outpps": 0, "inbps": 0, "outbps": 0}` |
//! | [`Info`] | `{"version": "1.2.1", "conn_table_size": 4096}` |
//! | [`AddressFamily`], [`Protocol`], [`SyncState`] | `"ipv4"`/`"ipv6"`, `"tcp"`/`"udp"`/`"sctp"`, `"master"`/`"backup"` |
//!
//! ```
//! let svc: ipvs::Service = serde_json::from_str(r#"{
//!     "service": "tcp 192.0.2.1:443",
//!     "scheduler": "mh",
//!     "flags": ["mh-port"],
//!     "persistence": {"timeout": "300s"},
//!     "destinations": [
//!         {"address": "[2001:db8::1]:443", "forward": {"tun": {"type": "gue", "port": 6080}}}
//!     ]
//! }"#).unwrap();
//! assert_eq!(
//!     ipvs::ipvsadm::print_service(&svc),
//!     "-A -t 192.0.2.1:443 -s mh -p 300 -b mh-port\n\
//!      -a -t 192.0.2.1:443 -r [2001:db8::1]:443 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum\n"
//! );
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::kernel::{Info, IpvsVersion, Stats, SyncDaemon, SyncState, Timeouts};
use crate::types::{
    AddressFamily, Destination, Forward, Persistence, PersistenceEngine, PersistenceMask, Protocol,
    SchedFlags, Scheduler, Service, ServiceKey, Table, TunnelChecksum, TunnelKind,
};

/// Durations as `"300s"`.
mod secs {
    use super::*;

    pub fn to_string(d: &Duration) -> String {
        format!("{}s", d.as_secs())
    }

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_string(d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration in seconds such as \"300s\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration::from_secs(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v)
                    .map(Duration::from_secs)
                    .map_err(|_| E::custom("a duration must not be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                let digits = v.strip_suffix('s').unwrap_or(v);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(E::invalid_value(de::Unexpected::Str(v), &self));
                }
                digits
                    .parse()
                    .map(Duration::from_secs)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

macro_rules! via_str {
    ($ty:ty, $expect:literal, $to:expr, $from:expr) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                #[allow(clippy::redundant_closure_call)]
                s.serialize_str(&($to)(self))
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                #[allow(clippy::redundant_closure_call)]
                ($from)(s.as_str())
                    .map_err(|e: String| de::Error::custom(format!("invalid {}: {e}", $expect)))
            }
        }
    };
}

via_str!(
    ServiceKey,
    "service",
    |k: &ServiceKey| k.to_string(),
    |s: &str| s.parse::<ServiceKey>().map_err(|e| e.to_string())
);
via_str!(
    Scheduler,
    "scheduler",
    |k: &Scheduler| k.name().to_owned(),
    |s: &str| Scheduler::new(s).map_err(|e| e.to_string())
);
via_str!(
    PersistenceEngine,
    "persistence engine",
    |k: &PersistenceEngine| k.as_str().to_owned(),
    |s: &str| PersistenceEngine::new(s).map_err(|e| e.to_string())
);
via_str!(
    AddressFamily,
    "address family",
    |k: &AddressFamily| k.to_string(),
    |s: &str| match s {
        "ipv4" => Ok(AddressFamily::Inet),
        "ipv6" => Ok(AddressFamily::Inet6),
        _ => Err(format!("{s:?} (expected ipv4 or ipv6)")),
    }
);
via_str!(
    Protocol,
    "protocol",
    |k: &Protocol| k.name().to_owned(),
    |s: &str| match s {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        "sctp" => Ok(Protocol::Sctp),
        _ => Err(format!("{s:?} (expected tcp, udp or sctp)")),
    }
);
via_str!(
    SyncState,
    "sync daemon state",
    |k: &SyncState| k.name().to_owned(),
    |s: &str| match s {
        "master" => Ok(SyncState::Master),
        "backup" => Ok(SyncState::Backup),
        _ => Err(format!("{s:?} (expected master or backup)")),
    }
);
via_str!(
    TunnelChecksum,
    "tunnel checksum",
    |k: &TunnelChecksum| checksum_name(*k).to_owned(),
    |s: &str| match s {
        "none" => Ok(TunnelChecksum::NoChecksum),
        "csum" => Ok(TunnelChecksum::Checksum),
        "remcsum" => Ok(TunnelChecksum::RemoteChecksum),
        _ => Err(format!("{s:?} (expected none, csum or remcsum)")),
    }
);
via_str!(
    IpvsVersion,
    "IPVS version",
    |k: &IpvsVersion| k.to_string(),
    |s: &str| {
        let parts: Vec<&str> = s.split('.').collect();
        match parts.as_slice() {
            [a, b, c] => match (a.parse::<u8>(), b.parse::<u8>(), c.parse::<u8>()) {
                (Ok(a), Ok(b), Ok(c)) => Ok(IpvsVersion::new(a, b, c)),
                _ => Err(format!("{s:?} (expected MAJOR.MINOR.PATCH)")),
            },
            _ => Err(format!("{s:?} (expected MAJOR.MINOR.PATCH)")),
        }
    }
);

fn checksum_name(c: TunnelChecksum) -> &'static str {
    match c {
        TunnelChecksum::NoChecksum => "none",
        TunnelChecksum::Checksum => "csum",
        TunnelChecksum::RemoteChecksum => "remcsum",
    }
}

impl Serialize for PersistenceMask {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PersistenceMask::V4(m) => s.serialize_str(&m.to_string()),
            PersistenceMask::V6(p) => s.serialize_u8(*p),
        }
    }
}

impl<'de> Deserialize<'de> for PersistenceMask {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PersistenceMask;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an IPv4 netmask such as \"255.255.255.0\" or an IPv6 prefix length")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PersistenceMask, E> {
                let p = u8::try_from(v)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))?;
                Ok(PersistenceMask::V6(p))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PersistenceMask, E> {
                let p = u8::try_from(v)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))?;
                Ok(PersistenceMask::V6(p))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PersistenceMask, E> {
                if let Ok(m) = v.parse::<Ipv4Addr>() {
                    return Ok(PersistenceMask::V4(m));
                }
                match v.parse::<u8>() {
                    Ok(p) => Ok(PersistenceMask::V6(p)),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PersistenceRepr {
    #[serde(with = "secs")]
    timeout: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    netmask: Option<PersistenceMask>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    engine: Option<PersistenceEngine>,
}

impl Serialize for Persistence {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        PersistenceRepr {
            timeout: self.timeout(),
            netmask: self.netmask(),
            engine: self.engine().cloned(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Persistence {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = PersistenceRepr::deserialize(d)?;
        let mut p = Persistence::new(r.timeout).map_err(de::Error::custom)?;
        if let Some(m) = r.netmask {
            p = p.with_netmask(m);
        }
        if let Some(e) = r.engine {
            p = p.with_engine(e);
        }
        Ok(p)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TunnelRepr {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checksum: Option<TunnelChecksum>,
}

fn tunnel_from_repr(r: TunnelRepr) -> Result<Forward, String> {
    let kind = match (r.kind.as_str(), r.port) {
        ("ipip", None) => TunnelKind::Ipip,
        ("gre", None) => TunnelKind::Gre,
        ("gue", Some(port)) => TunnelKind::Gue { port },
        ("gue", None) => return Err("a gue tunnel needs a port".to_owned()),
        ("ipip" | "gre", Some(_)) => {
            return Err(format!("a {} tunnel has no port", r.kind));
        }
        (other, _) => {
            return Err(format!(
                "unknown tunnel type {other:?} (expected ipip, gue or gre)"
            ));
        }
    };
    let f = Forward::Tunnel {
        kind,
        checksum: r.checksum.unwrap_or_default(),
    };
    f.check().map_err(|p| p.to_string())?;
    Ok(f)
}

impl Serialize for Forward {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Forward::Masquerade => s.serialize_str("nat"),
            Forward::DirectRoute => s.serialize_str("dr"),
            Forward::Local => s.serialize_str("local"),
            Forward::Bypass => s.serialize_str("bypass"),
            Forward::Tunnel { kind, checksum } => {
                let repr = TunnelRepr {
                    kind: kind.name().to_owned(),
                    port: match kind {
                        TunnelKind::Gue { port } => Some(*port),
                        _ => None,
                    },
                    checksum: match kind {
                        TunnelKind::Ipip => None,
                        _ => Some(*checksum),
                    },
                };
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("tun", &repr)?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Forward {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Forward;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"nat\", \"dr\", \"tun\", \"local\", \"bypass\" or {\"tun\": {...}}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Forward, E> {
                match v {
                    "nat" => Ok(Forward::Masquerade),
                    "dr" => Ok(Forward::DirectRoute),
                    "tun" => Ok(Forward::IPIP),
                    "local" => Ok(Forward::Local),
                    "bypass" => Ok(Forward::Bypass),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Forward, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(de::Error::custom(
                        "empty forward map (expected {\"tun\": {...}})",
                    ));
                };
                if key != "tun" {
                    return Err(de::Error::unknown_field(&key, &["tun"]));
                }
                let repr: TunnelRepr = map.next_value()?;
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::custom("a forward map has only the key \"tun\""));
                }
                tunnel_from_repr(repr).map_err(de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

fn one() -> u32 {
    1
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DestinationRepr {
    address: SocketAddr,
    #[serde(default)]
    forward: Forward,
    #[serde(default = "one")]
    weight: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    upper_threshold: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    lower_threshold: u32,
}

impl From<&Destination> for DestinationRepr {
    fn from(d: &Destination) -> Self {
        DestinationRepr {
            address: d.addr(),
            forward: d.forward(),
            weight: d.weight(),
            upper_threshold: d.upper_threshold(),
            lower_threshold: d.lower_threshold(),
        }
    }
}

impl TryFrom<DestinationRepr> for Destination {
    type Error = crate::Error;
    fn try_from(r: DestinationRepr) -> Result<Self, crate::Error> {
        Destination::new(r.address, r.forward)?
            .with_weight(r.weight)?
            .with_thresholds(r.upper_threshold, r.lower_threshold)
    }
}

impl Serialize for Destination {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        DestinationRepr::from(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Destination {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Destination::try_from(DestinationRepr::deserialize(d)?).map_err(de::Error::custom)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceRepr {
    service: ServiceKey,
    #[serde(default)]
    scheduler: Scheduler,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    flags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    persistence: Option<Persistence>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    one_packet: bool,
    #[serde(default)]
    destinations: Vec<DestinationRepr>,
}

impl Serialize for Service {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ServiceRepr {
            service: *self.key(),
            scheduler: self.scheduler().clone(),
            flags: self
                .sched_flags()
                .names(self.scheduler())
                .into_iter()
                .map(str::to_owned)
                .collect(),
            persistence: self.persistence().cloned(),
            one_packet: self.one_packet(),
            destinations: self.destinations().map(DestinationRepr::from).collect(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Service {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = ServiceRepr::deserialize(d)?;
        let mut flags = SchedFlags::empty();
        for name in &r.flags {
            let f = SchedFlags::from_name(name).ok_or_else(|| {
                de::Error::custom(crate::Error::new(
                    crate::Object::Service(r.service),
                    crate::Problem::SchedFlagUnknown(name.clone()),
                ))
            })?;
            let required = if name.starts_with("sh-") {
                Some(Scheduler::SourceHashing)
            } else if name.starts_with("mh-") {
                Some(Scheduler::MaglevHashing)
            } else {
                None
            };
            if required.is_some_and(|s| s != r.scheduler) {
                return Err(de::Error::custom(crate::Error::new(
                    crate::Object::Service(r.service),
                    crate::Problem::SchedFlagNotValid {
                        flag: name.clone(),
                        scheduler: r.scheduler.name().to_owned(),
                    },
                )));
            }
            flags |= f;
        }
        let mut b = Service::builder(r.service)
            .scheduler(r.scheduler)
            .sched_flags(flags)
            .one_packet(r.one_packet);
        if let Some(p) = r.persistence {
            b = b.persistence(p);
        }
        let mut svc = b.build().map_err(de::Error::custom)?;
        for dr in r.destinations {
            let dest = Destination::try_from(dr).map_err(|mut e| {
                if let crate::Object::Destination { service, .. } = &mut e.object {
                    *service = Some(r.service);
                }
                de::Error::custom(e)
            })?;
            svc.add_destination(dest).map_err(de::Error::custom)?;
        }
        Ok(svc)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableRepr<S> {
    #[serde(default = "Vec::new")]
    services: Vec<S>,
}

impl Serialize for Table {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TableRepr {
            services: self.services().collect(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Table {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = TableRepr::<Service>::deserialize(d)?;
        let mut t = Table::new();
        for s in r.services {
            t.add_service(s).map_err(de::Error::custom)?;
        }
        Ok(t)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeoutsRepr {
    #[serde(with = "secs")]
    tcp: Duration,
    #[serde(with = "secs")]
    tcp_fin: Duration,
    #[serde(with = "secs")]
    udp: Duration,
}

impl Serialize for Timeouts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TimeoutsRepr {
            tcp: self.tcp(),
            tcp_fin: self.tcp_fin(),
            udp: self.udp(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Timeouts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = TimeoutsRepr::deserialize(d)?;
        Timeouts::new(r.tcp, r.tcp_fin, r.udp).map_err(de::Error::custom)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncDaemonRepr {
    state: SyncState,
    mcast_interface: String,
    sync_id: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sync_maxlen: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mcast_group: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mcast_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mcast_ttl: Option<u8>,
}

impl Serialize for SyncDaemon {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SyncDaemonRepr {
            state: self.state(),
            mcast_interface: self.mcast_ifn().to_owned(),
            sync_id: self.sync_id(),
            sync_maxlen: self.sync_maxlen(),
            mcast_group: self.mcast_group(),
            mcast_port: self.mcast_port(),
            mcast_ttl: self.mcast_ttl(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for SyncDaemon {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = SyncDaemonRepr::deserialize(d)?;
        let mut s =
            SyncDaemon::new(r.state, &r.mcast_interface, r.sync_id).map_err(de::Error::custom)?;
        if let Some(v) = r.sync_maxlen {
            s = s.with_sync_maxlen(v).map_err(de::Error::custom)?;
        }
        if let Some(v) = r.mcast_group {
            s = s.with_mcast_group(v).map_err(de::Error::custom)?;
        }
        if let Some(v) = r.mcast_port {
            s = s.with_mcast_port(v).map_err(de::Error::custom)?;
        }
        if let Some(v) = r.mcast_ttl {
            s = s.with_mcast_ttl(v).map_err(de::Error::custom)?;
        }
        Ok(s)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsRepr {
    conns: u64,
    inpkts: u64,
    outpkts: u64,
    inbytes: u64,
    outbytes: u64,
    cps: u64,
    inpps: u64,
    outpps: u64,
    inbps: u64,
    outbps: u64,
}

impl Serialize for Stats {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Stats {
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
        } = *self;
        StatsRepr {
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
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Stats {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let StatsRepr {
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
        } = StatsRepr::deserialize(d)?;
        Ok(Stats {
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
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct InfoRepr {
    version: IpvsVersion,
    conn_table_size: u32,
}

impl Serialize for Info {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        InfoRepr {
            version: self.version,
            conn_table_size: self.conn_table_size,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Info {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = InfoRepr::deserialize(d)?;
        Ok(Info {
            version: r.version,
            conn_table_size: r.conn_table_size,
        })
    }
}

/// The text form of a duration used by this module (`"300s"`).
pub fn duration_to_string(d: Duration) -> String {
    secs::to_string(&d)
}
