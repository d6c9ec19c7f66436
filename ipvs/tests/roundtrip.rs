//! Property tests: arbitrary valid tables survive the ipvsadm format and serde.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipvs::ipvsadm::{self, PrintOptions};
use ipvs::{
    AddressFamily, Destination, Forward, Info, IpvsVersion, Persistence, PersistenceEngine,
    PersistenceMask, Protocol, SchedFlags, Scheduler, Service, ServiceKey, Stats, SyncDaemon,
    SyncState, Table, Timeouts, TunnelChecksum, TunnelKind,
};
use proptest::prelude::*;

fn ip(family: AddressFamily) -> BoxedStrategy<IpAddr> {
    match family {
        // Few distinct high bits, so that ordering edge cases (wrapping comparisons,
        // equal first words) come up.
        AddressFamily::Inet => prop_oneof![
            any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
            (0u32..4, 0u32..4).prop_map(|(h, l)| IpAddr::V4(Ipv4Addr::from(h << 30 | l))),
        ]
        .boxed(),
        AddressFamily::Inet6 => prop_oneof![
            any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
            (0u128..4, 0u128..4).prop_map(|(h, l)| IpAddr::V6(Ipv6Addr::from(h << 126 | l))),
        ]
        .boxed(),
    }
}

fn family() -> impl Strategy<Value = AddressFamily> {
    prop_oneof![Just(AddressFamily::Inet), Just(AddressFamily::Inet6)]
}

fn key() -> impl Strategy<Value = ServiceKey> {
    let addr = (
        prop_oneof![
            Just(Protocol::Tcp),
            Just(Protocol::Udp),
            Just(Protocol::Sctp)
        ],
        family().prop_flat_map(ip),
        any::<u16>(),
    )
        .prop_map(|(protocol, ip, port)| ServiceKey::Addr {
            protocol,
            addr: SocketAddr::new(ip, port),
        });
    let fwmark = (family(), 1u32..).prop_map(|(f, m)| ServiceKey::fwmark(f, m).unwrap());
    prop_oneof![3 => addr, 1 => fwmark]
}

fn scheduler() -> impl Strategy<Value = Scheduler> {
    let builtin: Vec<Scheduler> = Scheduler::builtin().collect();
    prop_oneof![
        4 => proptest::sample::select(builtin),
        1 => "[a-z][a-z0-9_-]{0,14}".prop_map(|n| Scheduler::new(&n).unwrap()),
    ]
}

fn mask(family: AddressFamily) -> BoxedStrategy<PersistenceMask> {
    match family {
        AddressFamily::Inet => (1u32..=32)
            .prop_map(|p| PersistenceMask::V4(Ipv4Addr::from(u32::MAX << (32 - p))))
            .boxed(),
        AddressFamily::Inet6 => (1u8..=128).prop_map(PersistenceMask::V6).boxed(),
    }
}

fn persistence(family: AddressFamily) -> impl Strategy<Value = Option<Persistence>> {
    proptest::option::of(
        (
            1u32..,
            proptest::option::of(mask(family)),
            proptest::option::of("[a-z]{1,15}"),
        )
            .prop_map(|(t, m, e)| {
                let mut p = Persistence::new(Duration::from_secs(u64::from(t))).unwrap();
                if let Some(m) = m {
                    p = p.with_netmask(m);
                }
                if let Some(e) = e {
                    p = p.with_engine(PersistenceEngine::new(&e).unwrap());
                }
                p
            }),
    )
}

/// Every forwarding method; `local` only when asked (ipvsadm prints it as `-g`).
fn forward(local: bool) -> impl Strategy<Value = Forward> {
    let checksum = prop_oneof![
        Just(TunnelChecksum::NoChecksum),
        Just(TunnelChecksum::Checksum),
        Just(TunnelChecksum::RemoteChecksum)
    ];
    let tunnel = (0u8..3, 1u16.., checksum).prop_filter_map("invalid tunnel", |(k, port, c)| {
        let kind = match k {
            0 => TunnelKind::Ipip,
            1 => TunnelKind::Gue { port },
            _ => TunnelKind::Gre,
        };
        let f = Forward::Tunnel { kind, checksum: c };
        Destination::new("10.0.0.1:1".parse().unwrap(), f)
            .ok()
            .map(|_| f)
    });
    let local = if local { 1 } else { 0 };
    prop_oneof![
        2 => Just(Forward::Masquerade),
        2 => Just(Forward::DirectRoute),
        2 => tunnel,
        1 => Just(Forward::Bypass),
        local => Just(Forward::Local),
    ]
}

fn destination(svc_family: AddressFamily, local: bool) -> impl Strategy<Value = Destination> {
    (
        forward(local),
        family(),
        any::<u16>(),
        0..=i32::MAX as u32,
        any::<u32>(),
        any::<u32>(),
    )
        .prop_flat_map(move |(fwd, fam, port, weight, a, b)| {
            // Another family only with tunnel forwarding.
            let fam = if fwd.is_tunnel() { fam } else { svc_family };
            ip(fam).prop_map(move |ip| {
                let (upper, lower) = (a.max(b), a.min(b));
                let (upper, lower) = if a % 3 == 0 { (0, 0) } else { (upper, lower) };
                Destination::new(SocketAddr::new(ip, port), fwd)
                    .unwrap()
                    .with_weight(weight)
                    .unwrap()
                    .with_thresholds(upper, lower)
                    .unwrap()
            })
        })
}

fn service(local: bool) -> impl Strategy<Value = Service> {
    key().prop_flat_map(move |k| {
        let fam = k.family();
        (
            scheduler(),
            0u8..8,
            persistence(fam),
            any::<bool>(),
            proptest::collection::vec(destination(fam, local), 0..6),
        )
            .prop_map(move |(sched, bits, pers, ops, dests)| {
                let allowed = sched.allowed_flags();
                let mut flags = SchedFlags::empty();
                for (bit, f) in [
                    (1, SchedFlags::FLAG_1),
                    (2, SchedFlags::FLAG_2),
                    (4, SchedFlags::FLAG_3),
                ] {
                    if bits & bit != 0 && allowed.contains(f) {
                        flags |= f;
                    }
                }
                let ops = ops && !matches!(k.protocol(), Some(Protocol::Tcp | Protocol::Sctp));
                let mut b = Service::builder(k)
                    .scheduler(sched)
                    .sched_flags(flags)
                    .one_packet(ops);
                if let Some(p) = pers {
                    b = b.persistence(p);
                }
                let mut svc = b.build().unwrap();
                for d in dests {
                    svc.set_destination(d).unwrap();
                }
                svc
            })
    })
}

fn table(local: bool) -> impl Strategy<Value = Table> {
    proptest::collection::vec(service(local), 0..8).prop_map(|svcs| {
        let mut t = Table::new();
        for s in svcs {
            t.set_service(s);
        }
        t
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// parse(print(t)) == t, with thresholds printed.
    #[test]
    fn ipvsadm_roundtrip(t in table(false)) {
        let text = ipvsadm::print_with(&t, &PrintOptions { thresholds: true });
        let back = ipvsadm::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(back, t);
    }

    /// The exact ipvsadm form is stable: print(parse(print(t))) == print(t), also with
    /// local forwarding (printed as -g) and thresholds (left out).
    #[test]
    fn ipvsadm_print_is_stable(t in table(true)) {
        let text = ipvsadm::print(&t);
        let back = ipvsadm::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(ipvsadm::print(&back), text);
    }

    /// serde_json round trip of whole tables.
    #[test]
    fn serde_roundtrip(t in table(true)) {
        let json = serde_json::to_string(&t).unwrap();
        let back: Table = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(format!("{e}\n{json}")))?;
        prop_assert_eq!(back, t);
    }

    /// YAML (serde-saphyr) round trip of whole tables.
    #[test]
    fn serde_yaml_roundtrip(t in table(true)) {
        let yaml = serde_saphyr::to_string(&t).unwrap();
        let back: Table = serde_saphyr::from_str(&yaml).map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?;
        prop_assert_eq!(back, t);
    }

    /// The parser never panics, whatever the input.
    #[test]
    fn parse_arbitrary_text(s in "(-[AaEeDdCtufsSpMbrmigwxyo6]|--[a-z-]{2,14}|[0-9.:\\[\\]a-f]{1,12}|\\(null\\)|,| |\n){0,40}") {
        let _ = ipvsadm::parse(&s);
    }

    #[test]
    fn parse_arbitrary_bytes(s in "\\PC{0,200}") {
        let _ = ipvsadm::parse(&s);
    }

    #[test]
    fn service_key_text_roundtrip(k in key()) {
        prop_assert_eq!(k.to_string().parse::<ServiceKey>().unwrap(), k);
    }

    #[test]
    fn timeouts_serde(a in 0u64..=86400*31, b in 0u64..=86400*31, c in 0u64..=86400*31) {
        let t = Timeouts::new(Duration::from_secs(a), Duration::from_secs(b), Duration::from_secs(c)).unwrap();
        let back: Timeouts = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        prop_assert_eq!(back, t);
    }

    #[test]
    fn stats_and_info_serde(v in proptest::array::uniform10(any::<u64>()), ver in any::<u32>(), size in any::<u32>()) {
        let s = Stats { conns: v[0], inpkts: v[1], outpkts: v[2], inbytes: v[3], outbytes: v[4], cps: v[5], inpps: v[6], outpps: v[7], inbps: v[8], outbps: v[9] };
        let back: Stats = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        prop_assert_eq!(back, s);
        let i = Info { version: IpvsVersion(ver & 0xff_ffff), conn_table_size: size };
        let back: Info = serde_json::from_str(&serde_json::to_string(&i).unwrap()).unwrap();
        prop_assert_eq!(back, i);
    }

    #[test]
    fn sync_daemon_serde(
        master in any::<bool>(), ifn in "[a-z0-9]{1,15}", id in any::<u8>(),
        maxlen in proptest::option::of(1u16..=65507), v6 in any::<bool>(),
        group in proptest::option::of(any::<u32>()), port in proptest::option::of(1u16..),
        ttl in proptest::option::of(1u8..),
    ) {
        let state = if master { SyncState::Master } else { SyncState::Backup };
        let mut d = SyncDaemon::new(state, &ifn, id).unwrap();
        if let Some(m) = maxlen { d = d.with_sync_maxlen(m).unwrap(); }
        if let Some(g) = group {
            let ip = if v6 {
                IpAddr::V6(Ipv6Addr::from(0xff00u128 << 112 | u128::from(g)))
            } else {
                IpAddr::V4(Ipv4Addr::from(0xe000_0000 | (g & 0x0fff_ffff)))
            };
            d = d.with_mcast_group(ip).unwrap();
        }
        if let Some(p) = port { d = d.with_mcast_port(p).unwrap(); }
        if let Some(t) = ttl { d = d.with_mcast_ttl(t).unwrap(); }
        let back: SyncDaemon = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        prop_assert_eq!(back, d);
    }
}
