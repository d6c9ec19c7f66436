//! Property tests: codec round trips, decoder robustness, and state machine
//! invariants under random event sequences.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use proptest::prelude::*;
use vrrp_proto::{
    Action, Advertisement, Auth, Event, Instance, InstanceConfig, RxMeta, State, Time, Timer,
    V3Ipv4Checksum, V3Ipv4ChecksumRx, Version, VersionFields, decode, encode,
};

fn v4() -> impl Strategy<Value = IpAddr> {
    any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n)))
}

fn v6() -> impl Strategy<Value = IpAddr> {
    any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n)))
}

fn auth() -> impl Strategy<Value = Auth> {
    prop_oneof![
        Just(Auth::None),
        any::<[u8; 8]>().prop_map(Auth::SimpleText)
    ]
}

fn count() -> impl Strategy<Value = usize> {
    prop_oneof![8 => 0usize..8, 1 => 0usize..=255]
}

/// (advert, src, dst): a v2 IPv4 advert or a v3 IPv4/IPv6 advert.
fn advert_with_endpoints() -> impl Strategy<Value = (Advertisement, IpAddr, IpAddr)> {
    let v2 = (any::<u8>(), any::<u8>(), auth(), any::<u8>(), count()).prop_flat_map(
        |(vrid, priority, auth, secs, n)| {
            (proptest::collection::vec(v4(), n), v4(), v4()).prop_map(move |(addresses, s, d)| {
                let adv = Advertisement {
                    vrid,
                    priority,
                    fields: VersionFields::V2 {
                        auth,
                        adver_int_secs: secs,
                    },
                    addresses,
                };
                (adv, s, d)
            })
        },
    );
    let v3 = (
        any::<u8>(),
        any::<u8>(),
        0u16..=4095,
        count(),
        any::<bool>(),
    )
        .prop_flat_map(|(vrid, priority, cs, n, six)| {
            let addr = if six { v6().boxed() } else { v4().boxed() };
            (
                proptest::collection::vec(addr.clone(), n),
                addr.clone(),
                addr,
            )
                .prop_map(move |(addresses, s, d)| {
                    let adv = Advertisement {
                        vrid,
                        priority,
                        fields: VersionFields::V3 {
                            max_adver_int_centis: cs,
                        },
                        addresses,
                    };
                    (adv, s, d)
                })
        });
    prop_oneof![v2, v3]
}

fn checksum_mode() -> impl Strategy<Value = V3Ipv4Checksum> {
    prop_oneof![
        Just(V3Ipv4Checksum::PseudoHeader),
        Just(V3Ipv4Checksum::MessageOnly)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_inverts_encode((adv, src, dst) in advert_with_endpoints(), mode in checksum_mode()) {
        let bytes = encode(&adv, src, dst, mode).unwrap();
        let meta = RxMeta { src, dst, ttl: 255 };
        prop_assert_eq!(decode(&bytes, &meta, mode.into()).unwrap(), adv.clone());
        prop_assert_eq!(decode(&bytes, &meta, V3Ipv4ChecksumRx::Either).unwrap(), adv);
    }

    #[test]
    fn encode_inverts_decode((adv, src, dst) in advert_with_endpoints(), mode in checksum_mode()) {
        // Canonical bytes survive decode + encode unchanged.
        let bytes = encode(&adv, src, dst, mode).unwrap();
        let meta = RxMeta { src, dst, ttl: 255 };
        let back = decode(&bytes, &meta, mode.into()).unwrap();
        prop_assert_eq!(encode(&back, src, dst, mode).unwrap(), bytes);
    }

    #[test]
    fn any_single_bit_flip_is_rejected_or_decodes_differently(
        (adv, src, dst) in advert_with_endpoints(),
        mode in checksum_mode(),
        bit in any::<usize>(),
    ) {
        let mut bytes = encode(&adv, src, dst, mode).unwrap();
        let bit = bit % (bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        let meta = RxMeta { src, dst, ttl: 255 };
        // The Internet checksum catches every single-bit error, except in
        // bits the decoder ignores anyway (v3 reserved bits, v2 type-0
        // auth data); then the decoded advert is unchanged.
        if let Ok(got) = decode(&bytes, &meta, mode.into()) {
            prop_assert_eq!(got, adv);
        }
    }

    #[test]
    fn decode_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        six in any::<bool>(),
        ttl in any::<u8>(),
    ) {
        let (src, dst): (IpAddr, IpAddr) = if six {
            ("fe80::1".parse().unwrap(), "ff02::12".parse().unwrap())
        } else {
            ("10.0.0.1".parse().unwrap(), "224.0.0.18".parse().unwrap())
        };
        let meta = RxMeta { src, dst, ttl };
        let _ = decode(&bytes, &meta, V3Ipv4ChecksumRx::Either);
        let cfg = InstanceConfig::new(
            bytes.get(1).copied().unwrap_or(1).max(1),
            if bytes.first().is_some_and(|b| b >> 4 == 2) && !six { Version::V2 } else { Version::V3 },
            if six { "fe80::2".parse().unwrap() } else { "10.0.0.2".parse().unwrap() },
            vec![if six { "fe80::100".parse().unwrap() } else { "10.0.0.100".parse().unwrap() }],
        );
        let vr = Instance::new(cfg.validate().unwrap());
        let _ = vr.receive(&bytes, &meta);
    }
}

#[derive(Debug, Clone)]
enum Step {
    Startup,
    Shutdown,
    Up,
    Down,
    Priority(u8),
    Advert {
        from_high: bool,
        priority: u8,
        cs: u16,
    },
    Fire(Timer),
    Wait(u16),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => Just(Step::Startup),
        1 => Just(Step::Shutdown),
        1 => Just(Step::Up),
        1 => Just(Step::Down),
        1 => any::<u8>().prop_map(Step::Priority),
        6 => (any::<bool>(), any::<u8>(), 1u16..=300)
            .prop_map(|(from_high, priority, cs)| Step::Advert { from_high, priority, cs }),
        4 => prop_oneof![
            Just(Timer::Advert),
            Just(Timer::MasterDown),
            Just(Timer::GarpDelay),
            Just(Timer::GarpRefresh),
            Just(Timer::GarpLowerPrio)
        ].prop_map(Step::Fire),
        6 => (0u16..5000).prop_map(Step::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Whatever happens, the addresses are installed exactly when the
    /// instance is Master, the right timers are armed for the state, and
    /// every arm is in the future.
    #[test]
    fn state_machine_invariants(
        steps in proptest::collection::vec(step(), 1..80),
        priority in 1u8..=255,
        preempt in any::<bool>(),
        delay_s in 0u64..4,
    ) {
        let mut cfg = InstanceConfig::new(
            5,
            Version::V3,
            "10.0.0.2".parse().unwrap(),
            vec!["10.0.0.100".parse().unwrap(), "10.0.0.101".parse().unwrap()],
        );
        cfg.priority = priority;
        cfg.preempt = preempt || priority == 255;
        cfg.preempt_delay = Duration::from_secs(delay_s);
        cfg.garp.refresh = Some(Duration::from_secs(7));
        cfg.garp_lower_prio_repeat = 1;
        cfg.garp_lower_prio_delay = Some(Duration::from_secs(2));
        let mut vr = Instance::new(cfg.validate().unwrap());
        let mut now = Time::ZERO;
        let mut installed: BTreeSet<IpAddr> = BTreeSet::new();
        let mut armed: BTreeSet<Timer> = BTreeSet::new();
        for s in steps {
            let event = match s {
                Step::Startup => Event::Startup,
                Step::Shutdown => Event::Shutdown,
                Step::Up => Event::InterfaceUp,
                Step::Down => Event::InterfaceDown,
                Step::Priority(p) => Event::PriorityChanged(p),
                Step::Advert { from_high, priority, cs } => Event::AdvertReceived {
                    src: if from_high { "10.0.0.3" } else { "10.0.0.1" }.parse().unwrap(),
                    advert: Advertisement {
                        vrid: 5,
                        priority,
                        fields: VersionFields::V3 { max_adver_int_centis: cs },
                        addresses: vec!["10.0.0.100".parse().unwrap()],
                    },
                },
                Step::Fire(t) => {
                    // Fire at the deadline when armed, to make progress.
                    if let Some(at) = vr.deadline(t) {
                        now = now.max(at);
                    }
                    Event::TimerFired(t)
                }
                Step::Wait(ms) => {
                    now = now + Duration::from_millis(u64::from(ms));
                    continue;
                }
            };
            for a in vr.handle(now, event) {
                match a {
                    Action::AddAddresses(list) => {
                        for x in list {
                            prop_assert!(installed.insert(x), "added twice: {x}");
                        }
                    }
                    Action::RemoveAddresses(list) => {
                        for x in list {
                            prop_assert!(installed.remove(&x), "removed but absent: {x}");
                        }
                    }
                    Action::ArmTimer { timer, at } => {
                        prop_assert!(at > now, "{timer} armed at {at}, now {now}");
                        armed.insert(timer);
                    }
                    Action::CancelTimer(t) => {
                        prop_assert!(armed.remove(&t), "cancelled {t} that was not armed");
                    }
                    Action::SendAdvert(adv) => {
                        prop_assert_eq!(adv.vrid, 5);
                    }
                    Action::SendGratuitous { .. } | Action::Notify { .. } => {}
                }
            }
            // Timers that fired are no longer armed.
            armed.retain(|t| vr.deadline(*t).is_some());
            let state = vr.state();
            prop_assert_eq!(!installed.is_empty(), state == State::Master, "state {}", state);
            prop_assert_eq!(vr.deadline(Timer::Advert).is_some(), state == State::Master);
            if state != State::Backup {
                prop_assert!(vr.deadline(Timer::MasterDown).is_none());
            } else {
                prop_assert!(vr.deadline(Timer::MasterDown).is_some());
            }
            if state != State::Master {
                prop_assert!(vr.deadline(Timer::GarpDelay).is_none());
                prop_assert!(vr.deadline(Timer::GarpRefresh).is_none());
                prop_assert!(vr.deadline(Timer::GarpLowerPrio).is_none());
            }
        }
    }
}
