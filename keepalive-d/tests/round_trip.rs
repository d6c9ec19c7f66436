//! Property: a configuration written in the documented syntax parses to exactly the values
//! it was written from (random virtual servers and VRRP instances, all within the rules).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use keepalive_d::config::{
    AddressFamily, CheckKind, Forward, Protocol, Scheduler, ServiceKey, VrrpVersion,
    format_duration, parse_str,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Server {
    protocol: Protocol,
    port: u16,
    scheduler: Scheduler,
    dr: bool,
    persistence: Option<(u64, u8)>,
    check: Option<(&'static str, u64, u64, u32, u32)>,
    weights: Vec<u32>,
}

fn server() -> impl Strategy<Value = Server> {
    (
        prop::sample::select(vec![Protocol::Tcp, Protocol::Udp, Protocol::Sctp]),
        1u16..,
        prop::sample::select(Scheduler::ALL.to_vec()),
        any::<bool>(),
        prop::option::of((1u64..=86_400, 0u8..=32)),
        prop::option::of((
            prop::sample::select(vec!["tcp", "http", "https"]),
            1u64..=600_000,
            1u64..=600_000,
            1u32..=10,
            1u32..=10,
        )),
        prop::collection::vec(0u32..=2_147_483_647, 1..6),
    )
        .prop_map(
            |(protocol, port, scheduler, dr, persistence, check, weights)| Server {
                protocol,
                port,
                scheduler,
                dr,
                persistence,
                check: check.map(|(t, a, b, r, f)| (t, a.max(b), a.min(b), r, f)),
                weights,
            },
        )
}

fn mask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0))
}

fn yaml(servers: &[Server], vrrp: &[(u8, u8, bool, u64)]) -> String {
    let mut out = String::new();
    if !vrrp.is_empty() {
        out.push_str("vrrp_instances:\n");
        for (i, (vrid, priority, v2, interval)) in vrrp.iter().enumerate() {
            let (version, interval) = if *v2 {
                (2, format_duration(Duration::from_secs(*interval % 255 + 1)))
            } else {
                (
                    3,
                    format_duration(Duration::from_millis((*interval % 4095 + 1) * 10)),
                )
            };
            out.push_str(&format!(
                "  - name: vi{i}\n    interface: eth{i}\n    vrid: {vrid}\n    priority: {priority}\n    \
                 version: {version}\n    advert_interval: {interval}\n    virtual_ips: [198.51.100.{i}/24]\n"
            ));
        }
    }
    out.push_str("virtual_servers:\n");
    for (i, s) in servers.iter().enumerate() {
        out.push_str(&format!(
            "  - name: vs{i}\n    vip: 192.0.2.{i}:{}\n    protocol: {}\n    scheduler: {}\n    forward: {}\n",
            s.port,
            s.protocol.as_str(),
            s.scheduler.as_str(),
            if s.dr { "dr" } else { "nat" }
        ));
        if let Some((timeout, prefix)) = s.persistence {
            out.push_str(&format!(
                "    persistence: {{ timeout: {}, netmask: {} }}\n",
                format_duration(Duration::from_secs(timeout)),
                mask(prefix)
            ));
        }
        if let Some((kind, interval, timeout, rise, fall)) = s.check {
            out.push_str(&format!(
                "    check: {{ type: {kind}, interval: {}, timeout: {}, rise: {rise}, fall: {fall} }}\n",
                format_duration(Duration::from_millis(interval)),
                format_duration(Duration::from_millis(timeout))
            ));
        }
        out.push_str("    real_servers:\n");
        for (j, weight) in s.weights.iter().enumerate() {
            out.push_str(&format!(
                "      - {{ address: 10.{i}.{j}.1:{}, weight: {weight} }}\n",
                s.port
            ));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn written_values_are_parsed_values(
        servers in prop::collection::vec(server(), 1..5),
        vrrp in prop::collection::vec((1u8..=255, 1u8..=255, any::<bool>(), any::<u64>()), 0..4),
    ) {
        let text = yaml(&servers, &vrrp);
        let config = match parse_str(&text, "gen.yaml") {
            Ok(config) => config,
            Err(errors) => panic!("{errors}\n---\n{text}"),
        };
        prop_assert_eq!(config.virtual_servers.len(), servers.len());
        for (i, (vs, s)) in config.virtual_servers.iter().zip(&servers).enumerate() {
            let vip = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, u8::try_from(i).unwrap())), s.port);
            prop_assert_eq!(vs.key, ServiceKey::Addr { protocol: s.protocol, vip });
            prop_assert_eq!(vs.key.family(), AddressFamily::Ipv4);
            prop_assert_eq!(vs.scheduler, s.scheduler);
            prop_assert_eq!(vs.forward, if s.dr { Forward::DirectRouting } else { Forward::Nat });
            match s.persistence {
                None => prop_assert!(vs.persistence.is_none()),
                Some((timeout, prefix)) => {
                    let p = vs.persistence.unwrap();
                    prop_assert_eq!(p.timeout, Duration::from_secs(timeout));
                    prop_assert_eq!(p.prefix_len, prefix);
                    prop_assert_eq!(p.ipv4_netmask(), mask(prefix));
                }
            }
            let weights: Vec<u32> = vs.real_servers.iter().map(|r| r.weight).collect();
            prop_assert_eq!(&weights, &s.weights);
            for rs in &vs.real_servers {
                match (s.check, &rs.check) {
                    (None, None) => {}
                    (Some((kind, interval, timeout, rise, fall)), Some(check)) => {
                        let kind_ok = matches!(
                            (kind, &check.kind),
                            ("tcp", CheckKind::Tcp(_)) | ("http", CheckKind::Http(_)) | ("https", CheckKind::Https(_))
                        );
                        prop_assert!(kind_ok);
                        prop_assert_eq!(check.interval, Duration::from_millis(interval));
                        prop_assert_eq!(check.timeout, Duration::from_millis(timeout));
                        prop_assert_eq!((check.rise, check.fall), (rise, fall));
                    }
                    (written, parsed) => prop_assert!(false, "{written:?} vs {parsed:?}"),
                }
            }
        }
        prop_assert_eq!(config.vrrp_instances.len(), vrrp.len());
        for (vi, (vrid, priority, v2, _)) in config.vrrp_instances.iter().zip(&vrrp) {
            prop_assert_eq!((vi.vrid, vi.priority), (*vrid, *priority));
            prop_assert_eq!(vi.version, if *v2 { VrrpVersion::V2 } else { VrrpVersion::V3 });
        }
    }
}
