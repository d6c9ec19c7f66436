//! Property tests: decoding arbitrary kernel attributes never panics; what decodes is
//! stable (encode, decode again: the same), what does not is a typed error naming the
//! object.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipvs::Object;
use ipvs::netlink::{
    daemon_attrs, daemon_from_attrs, dest_attrs, destination_from_attrs, service_attrs,
    service_from_attrs,
};
use ipvs_sys::{
    AddressFamily, DaemonAttrs, DaemonState, DestAttrs, ForwardMethod, Netmask, Protocol,
    ServiceAttrs, ServiceFlags, SvcFlags, TunnelFlags, TunnelType,
};
use proptest::prelude::*;

fn family() -> impl Strategy<Value = AddressFamily> {
    prop_oneof![
        4 => Just(AddressFamily::INET),
        4 => Just(AddressFamily::INET6),
        1 => any::<u16>().prop_map(AddressFamily),
    ]
}

fn addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
    ]
}

fn small<T: std::fmt::Debug + Clone + 'static>(
    common: Vec<T>,
    any: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    prop_oneof![4 => proptest::sample::select(common), 1 => any].boxed()
}

prop_compose! {
    fn service_attrs_any()(
        af in proptest::option::weighted(0.95, family()),
        protocol in proptest::option::weighted(0.95, small(vec![Protocol::TCP, Protocol::UDP, Protocol::SCTP], any::<u16>().prop_map(Protocol))),
        addr in proptest::option::weighted(0.95, addr()),
        port in proptest::option::weighted(0.95, any::<u16>()),
        fwmark in proptest::option::weighted(0.95, small(vec![0u32, 1, 7], any::<u32>())),
        sched in proptest::option::weighted(0.95, small(vec!["rr".to_string(), "sh".into(), "mh".into(), "none".into(), String::new()], "[ -~]{0,20}")),
        flags in proptest::option::weighted(0.95, small(vec![0u32, 1, 2, 3, 4, 5, 8, 0x10, 0x18, 0x20], any::<u32>())),
        timeout in proptest::option::weighted(0.95, small(vec![0u32, 1, 300], any::<u32>())),
        v4mask in any::<u32>(),
        v6prefix in small(vec![0u32, 1, 64, 128, 129], any::<u32>()),
        mask_kind in 0u8..3,
        pe in proptest::option::weighted(0.95, small(vec!["sip".to_string(), String::new()], "[ -~]{0,20}")),
    ) -> ServiceAttrs {
        let netmask = match mask_kind {
            0 => None,
            1 => Some(Netmask::V4(Ipv4Addr::from(v4mask))),
            _ => Some(Netmask::V6Prefix(v6prefix)),
        };
        ServiceAttrs {
            af, protocol, addr, port, fwmark, sched_name: sched,
            flags: flags.map(|f| SvcFlags { flags: ServiceFlags(f), mask: ServiceFlags::ALL }),
            timeout, netmask, pe_name: pe,
            ..ServiceAttrs::default()
        }
    }
}

prop_compose! {
    fn dest_attrs_any()(
        addr in proptest::option::weighted(0.95, addr()),
        port in proptest::option::weighted(0.95, any::<u16>()),
        fwd in proptest::option::weighted(0.95, small((0u32..8).collect(), any::<u32>())),
        weight in proptest::option::weighted(0.95, small(vec![0u32, 1, i32::MAX as u32], any::<u32>())),
        u in proptest::option::weighted(0.95, small(vec![0u32, 10], any::<u32>())),
        l in proptest::option::weighted(0.95, small(vec![0u32, 5], any::<u32>())),
        tun_type in proptest::option::weighted(0.95, 0u8..4),
        tun_port in proptest::option::weighted(0.95, small(vec![0u16, 6080], any::<u16>())),
        tun_flags in proptest::option::weighted(0.95, 0u16..4),
    ) -> DestAttrs {
        DestAttrs {
            addr_family: addr.as_ref().map(AddressFamily::of),
            addr, port,
            fwd_method: fwd.map(ForwardMethod),
            weight, u_thresh: u, l_thresh: l,
            tun_type: tun_type.map(TunnelType),
            tun_port,
            tun_flags: tun_flags.map(TunnelFlags),
            ..DestAttrs::default()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn service_decoding_is_total_and_stable(a in service_attrs_any()) {
        match service_from_attrs(&a) {
            Ok(svc) => prop_assert_eq!(service_from_attrs(&service_attrs(&svc)).unwrap(), svc),
            Err(e) => prop_assert!(matches!(
                e.object,
                Some(Object::Service(_) | Object::ServiceKey)
            ), "{}", e),
        }
    }

    #[test]
    fn destination_decoding_is_total_and_stable(a in dest_attrs_any()) {
        let key = "tcp 192.0.2.1:80".parse().unwrap();
        match destination_from_attrs(&key, &a) {
            Ok(d) => prop_assert_eq!(destination_from_attrs(&key, &dest_attrs(&d)).unwrap(), d),
            Err(e) => {
                let named = match &e.object {
                    Some(Object::Destination { service, .. }) => *service == Some(key),
                    Some(Object::Service(k)) => *k == key && (a.addr.is_none() || a.port.is_none()),
                    _ => false,
                };
                prop_assert!(named, "{}", e);
            }
        }
    }

    #[test]
    fn daemon_decoding_is_total_and_stable(
        state in proptest::option::weighted(0.95, 0u32..4),
        ifn in proptest::option::weighted(0.95, small(vec!["eth0".to_string(), "sync0".into()], "[ -~]{0,17}")),
        id in proptest::option::weighted(0.95, small(vec![0u32, 255, 256], any::<u32>())),
        maxlen in proptest::option::weighted(0.95, any::<u16>()),
        g4 in proptest::option::weighted(0.95, any::<u32>().prop_map(Ipv4Addr::from)),
        port in proptest::option::weighted(0.95, any::<u16>()),
        ttl in proptest::option::weighted(0.95, any::<u8>()),
    ) {
        let a = DaemonAttrs {
            state: state.map(DaemonState),
            mcast_ifn: ifn,
            sync_id: id,
            sync_maxlen: maxlen,
            mcast_group: g4,
            mcast_port: port,
            mcast_ttl: ttl,
            ..DaemonAttrs::default()
        };
        match daemon_from_attrs(&a) {
            Ok(d) => prop_assert_eq!(daemon_from_attrs(&daemon_attrs(&d)).unwrap(), d),
            Err(e) => prop_assert_eq!(e.object, Some(Object::SyncDaemon)),
        }
    }
}
