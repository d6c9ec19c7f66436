//! Property tests of the reconcile plan and the netlink conversions, on arbitrary tables
//! drawn from a small pool of keys and addresses (so that current and desired overlap).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipvs::ipvsadm::{self, PrintOptions};
use ipvs::netlink::{dest_attrs, service_attrs, service_key_attrs, service_with_dests_from_attrs};
use ipvs::reconcile::{ApplyOptions, Op, Scope, plan};
use ipvs::{
    AddressFamily, Destination, Forward, Persistence, PersistenceEngine, PersistenceMask,
    SchedFlags, Scheduler, Service, ServiceKey, Table, TunnelChecksum, TunnelKind,
};
use proptest::prelude::*;

fn pool_keys() -> Vec<ServiceKey> {
    vec![
        "tcp 192.0.2.1:80".parse().unwrap(),
        "udp 192.0.2.1:53".parse().unwrap(),
        "fwmark 5".parse().unwrap(),
        "tcp [2001:db8::1]:443".parse().unwrap(),
    ]
}

fn pool_addrs(key: &ServiceKey) -> Vec<SocketAddr> {
    let port = key.port();
    let ips: Vec<IpAddr> = match key.family() {
        AddressFamily::Inet => vec!["10.0.0.1", "10.0.0.2", "10.0.0.3"],
        AddressFamily::Inet6 => vec!["2001:db8:1::1", "2001:db8:1::2", "2001:db8:1::3"],
    }
    .into_iter()
    .map(|s| s.parse().unwrap())
    .collect();
    ips.into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect()
}

fn forward() -> impl Strategy<Value = Forward> {
    prop_oneof![
        Just(Forward::Masquerade),
        Just(Forward::DirectRoute),
        Just(Forward::IPIP),
        (1u16..3).prop_map(|port| Forward::Tunnel {
            kind: TunnelKind::Gue { port },
            checksum: TunnelChecksum::RemoteChecksum,
        }),
        Just(Forward::Tunnel {
            kind: TunnelKind::Gre,
            checksum: TunnelChecksum::Checksum,
        }),
    ]
}

fn dest(addr: SocketAddr) -> impl Strategy<Value = Destination> {
    (forward(), 0u32..3, prop_oneof![Just((0, 0)), Just((10, 5))]).prop_map(
        move |(f, w, (u, l))| {
            Destination::new(addr, f)
                .unwrap()
                .with_weight(w)
                .unwrap()
                .with_thresholds(u, l)
                .unwrap()
        },
    )
}

fn service(key: ServiceKey) -> impl Strategy<Value = Service> {
    let addrs = pool_addrs(&key);
    let dests: Vec<_> = addrs
        .into_iter()
        .map(|a| proptest::option::of(dest(a)))
        .collect();
    let sched = prop_oneof![
        Just(Scheduler::RoundRobin),
        Just(Scheduler::WeightedRoundRobin),
        Just(Scheduler::SourceHashing),
        Just(Scheduler::new("custom").unwrap()),
    ];
    let pers = proptest::option::of((1u64..3, any::<bool>(), any::<bool>()));
    (sched, 0u8..4, pers, any::<bool>(), dests).prop_map(
        move |(sched, bits, pers, one_packet, dests)| {
            let mut flags = SchedFlags::empty();
            if bits & 1 != 0 && sched.allowed_flags().contains(SchedFlags::FLAG_1) {
                flags |= SchedFlags::FLAG_1;
            }
            if bits & 2 != 0 && sched.allowed_flags().contains(SchedFlags::FLAG_2) {
                flags |= SchedFlags::FLAG_2;
            }
            let mut b = Service::builder(key)
                .scheduler(sched)
                .sched_flags(flags)
                .one_packet(one_packet && key.protocol() != Some(ipvs::Protocol::Tcp));
            if let Some((t, masked, sip)) = pers {
                let mut p = Persistence::new(Duration::from_secs(t * 60)).unwrap();
                if masked {
                    p = p.with_netmask(match key.family() {
                        AddressFamily::Inet => {
                            PersistenceMask::v4("255.255.255.0".parse().unwrap()).unwrap()
                        }
                        AddressFamily::Inet6 => PersistenceMask::v6(64).unwrap(),
                    });
                }
                if sip {
                    p = p.with_engine(PersistenceEngine::sip());
                }
                b = b.persistence(p);
            }
            let mut s = b.build().unwrap();
            for d in dests.into_iter().flatten() {
                s.add_destination(d).unwrap();
            }
            s
        },
    )
}

fn table() -> impl Strategy<Value = Table> {
    let svcs: Vec<_> = pool_keys()
        .into_iter()
        .map(|k| proptest::option::of(service(k)))
        .collect();
    svcs.prop_map(|svcs| {
        let mut t = Table::new();
        for s in svcs.into_iter().flatten() {
            t.add_service(s).unwrap();
        }
        t
    })
}

fn options() -> impl Strategy<Value = ApplyOptions> {
    let scope = prop_oneof![
        Just(Scope::Desired),
        proptest::sample::subsequence(pool_keys(), 0..=4)
            .prop_map(|ks| Scope::Owned(ks.into_iter().collect())),
        Just(Scope::FullPrune),
    ];
    (scope, any::<bool>()).prop_map(|(scope, drain)| ApplyOptions {
        scope,
        drain,
        ..ApplyOptions::default()
    })
}

fn in_scope(opts: &ApplyOptions, desired: &Table, key: &ServiceKey) -> bool {
    desired.service(key).is_some()
        || match &opts.scope {
            Scope::Desired => false,
            Scope::Owned(keys) => keys.contains(key),
            Scope::FullPrune => true,
        }
}

fn group(op: &Op) -> u8 {
    match op {
        Op::AddService(_) => 0,
        Op::AddDestination { .. } | Op::EditDestination { .. } | Op::DrainDestination { .. } => 1,
        Op::EditService { .. } => 2,
        Op::DeleteDestination { .. } => 3,
        Op::DeleteService(_) => 4,
        _ => panic!("unknown op {op}"),
    }
}

/// What `desired` becomes after an apply with drain: desired, plus every destination
/// that is no longer desired at weight 0.
fn with_draining(desired: &Service, current: Option<&Service>) -> Service {
    let mut s = desired.clone();
    if let Some(cur) = current {
        for d in cur.destinations() {
            if s.destination(d.addr()).is_none() {
                s.add_destination(d.clone().with_weight(0).unwrap())
                    .unwrap();
            }
        }
    }
    s
}

fn same_config(a: &Service, b: &Service) -> bool {
    a.scheduler() == b.scheduler()
        && a.sched_flags() == b.sched_flags()
        && a.persistence() == b.persistence()
        && a.one_packet() == b.one_packet()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// The plan applied to current yields desired within scope, leaves the rest alone,
    /// is ordered add-before-delete, minimal, and idempotent.
    #[test]
    fn plan_reaches_desired_within_scope(
        current in table(),
        desired in table(),
        opts in options(),
    ) {
        let p = plan(&current, &desired, &opts);
        let after = p.simulate(&current).unwrap();
        for key in pool_keys() {
            let got = after.service(&key);
            if !in_scope(&opts, &desired, &key) {
                prop_assert_eq!(got, current.service(&key));
            } else if let Some(want) = desired.service(&key) {
                let want = if opts.drain {
                    with_draining(want, current.service(&key))
                } else {
                    want.clone()
                };
                prop_assert_eq!(got, Some(&want));
            } else {
                // Drained services stay, their destinations at weight 0.
                let want = current
                    .service(&key)
                    .filter(|c| opts.drain && c.destinations().len() > 0)
                    .map(|c| {
                        let mut s = c.clone();
                        for d in c.destinations() {
                            s.set_destination(d.clone().with_weight(0).unwrap()).unwrap();
                        }
                        s
                    });
                prop_assert_eq!(got, want.as_ref());
            }
        }
        // Idempotent: nothing left to do.
        let again = plan(&after, &desired, &opts);
        prop_assert!(again.is_empty(), "{}", again);
        prop_assert_eq!(again.draining(), p.draining());
        // Ordered.
        let groups: Vec<u8> = p.ops().iter().map(group).collect();
        prop_assert!(groups.windows(2).all(|w| w[0] <= w[1]), "{}", p);
        // Minimal: one operation per difference.
        let mut expected = 0;
        for key in pool_keys() {
            if !in_scope(&opts, &desired, &key) {
                continue;
            }
            match (current.service(&key), desired.service(&key)) {
                (None, Some(w)) => expected += 1 + w.destinations().len(),
                (Some(c), None) if opts.drain && c.destinations().len() > 0 => {
                    expected += c.destinations().filter(|d| d.weight() != 0).count();
                }
                (Some(_), None) => expected += 1,
                (Some(c), Some(w)) => {
                    expected += usize::from(!same_config(c, w));
                    let addrs: BTreeSet<SocketAddr> =
                        c.destinations().chain(w.destinations()).map(|d| d.addr()).collect();
                    for a in addrs {
                        expected += match (c.destination(a), w.destination(a)) {
                            (Some(x), Some(y)) => usize::from(x != y),
                            (None, Some(_)) => 1,
                            (Some(x), None) => usize::from(!opts.drain || x.weight() != 0),
                            (None, None) => 0,
                        };
                    }
                }
                (None, None) => {}
            }
        }
        prop_assert_eq!(p.len(), expected);
    }

    /// The dry run, read by the ipvsadm parser after the current table, gives the same
    /// table as the plan.
    #[test]
    fn dry_run_text_means_what_the_plan_does(
        current in table(),
        desired in table(),
        opts in options(),
    ) {
        let p = plan(&current, &desired, &opts);
        let text = ipvsadm::print_with(&current, &PrintOptions { thresholds: true })
            + &p.to_string();
        prop_assert_eq!(ipvsadm::parse(&text).unwrap(), p.simulate(&current).unwrap());
    }

    /// Every service and destination survives the netlink encoding and decoding.
    #[test]
    fn netlink_roundtrip(t in table()) {
        for svc in t.services() {
            let a = wire_service(&svc.clone());
            let dests: Vec<_> = svc
                .destinations()
                .map(|d| wire_dest(svc.key(), d))
                .collect();
            prop_assert_eq!(&service_with_dests_from_attrs(&a, &dests).unwrap(), svc);
        }
    }
}

fn wire(msg: &ipvs_sys::IpvsMessage) -> ipvs_sys::IpvsMessage {
    let mut buf = Vec::new();
    let r = ipvs_sys::encode_request(&mut buf, msg, 0x1c, 1, 0).unwrap();
    ipvs_sys::IpvsMessage::decode_genl(&buf[r.start + 16..r.end], None).unwrap()
}

fn wire_service(s: &Service) -> ipvs_sys::ServiceAttrs {
    let m = wire(&ipvs_sys::IpvsMessage::new_service(service_attrs(s)));
    m.service().unwrap().clone()
}

fn wire_dest(k: &ServiceKey, d: &Destination) -> ipvs_sys::DestAttrs {
    let m = wire(&ipvs_sys::IpvsMessage::new_dest(
        service_key_attrs(k),
        dest_attrs(d),
    ));
    m.dest().unwrap().clone()
}
