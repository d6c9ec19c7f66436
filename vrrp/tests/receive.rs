//! Receive validation: every drop has a typed reason; address-list
//! differences are warnings.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;
use std::time::Duration;

use vrrp_proto::{
    Advertisement, Auth, DropReason, Event, Instance, InstanceConfig, PacketError, RxMeta, State,
    Time, V3Ipv4Checksum, V3Ipv4ChecksumRx, Version, VersionFields, Warning, encode,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn instance(version: Version, f: impl FnOnce(&mut InstanceConfig)) -> Instance {
    let mut c = InstanceConfig::new(10, version, ip("10.0.0.2"), vec![ip("10.0.0.100")]);
    f(&mut c);
    Instance::new(c.validate().unwrap())
}

fn adv(version: Version) -> Advertisement {
    let fields = match version {
        Version::V2 => VersionFields::V2 {
            auth: Auth::None,
            adver_int_secs: 1,
        },
        Version::V3 => VersionFields::V3 {
            max_adver_int_centis: 100,
        },
    };
    Advertisement {
        vrid: 10,
        priority: 150,
        fields,
        addresses: vec![ip("10.0.0.100")],
    }
}

fn mcast(src: &str) -> RxMeta {
    RxMeta {
        src: ip(src),
        dst: ip("224.0.0.18"),
        ttl: 255,
    }
}

fn bytes(a: &Advertisement, m: &RxMeta) -> Vec<u8> {
    encode(a, m.src, m.dst, V3Ipv4Checksum::PseudoHeader).unwrap()
}

fn check(vr: &Instance, a: &Advertisement, m: &RxMeta) -> Result<Vec<Warning>, DropReason> {
    vr.receive(&bytes(a, m), m).map(|r| r.warnings)
}

#[test]
fn a_good_advert_is_accepted_without_warnings() {
    for version in [Version::V2, Version::V3] {
        let vr = instance(version, |_| {});
        let m = mcast("10.0.0.1");
        let r = vr.receive(&bytes(&adv(version), &m), &m).unwrap();
        assert!(r.warnings.is_empty());
        assert_eq!(r.src, ip("10.0.0.1"));
        assert_eq!(
            r.into_event(),
            Event::AdvertReceived {
                src: ip("10.0.0.1"),
                advert: adv(version)
            }
        );
    }
}

#[test]
fn ttl_must_be_255_on_multicast() {
    let vr = instance(Version::V3, |_| {});
    let mut m = mcast("10.0.0.1");
    let b = bytes(&adv(Version::V3), &m);
    m.ttl = 254;
    assert_eq!(vr.receive(&b, &m), Err(DropReason::BadTtl(254)));
    m.ttl = 1;
    assert_eq!(vr.receive(&b, &m), Err(DropReason::BadTtl(1)));
}

#[test]
fn unicast_ttl_is_only_checked_when_asked() {
    let uni = RxMeta {
        src: ip("10.0.0.1"),
        dst: ip("10.0.0.2"),
        ttl: 64,
    };
    let vr = instance(Version::V3, |c| c.unicast_peers = vec![ip("10.0.0.1")]);
    assert!(check(&vr, &adv(Version::V3), &uni).is_ok());
    let strict = instance(Version::V3, |c| {
        c.unicast_peers = vec![ip("10.0.0.1")];
        c.check_unicast_ttl = true;
    });
    assert_eq!(
        check(&strict, &adv(Version::V3), &uni),
        Err(DropReason::BadTtl(64))
    );
}

#[test]
fn unicast_and_multicast_must_match_the_configuration() {
    let multicast_instance = instance(Version::V3, |_| {});
    let uni = RxMeta {
        src: ip("10.0.0.1"),
        dst: ip("10.0.0.2"),
        ttl: 255,
    };
    assert_eq!(
        check(&multicast_instance, &adv(Version::V3), &uni),
        Err(DropReason::UnexpectedDestination(ip("10.0.0.2")))
    );
    let unicast_instance = instance(Version::V3, |c| c.unicast_peers = vec![ip("10.0.0.1")]);
    assert_eq!(
        check(&unicast_instance, &adv(Version::V3), &mcast("10.0.0.1")),
        Err(DropReason::UnexpectedDestination(ip("224.0.0.18")))
    );
    let stranger = RxMeta {
        src: ip("10.0.0.9"),
        ..uni
    };
    assert_eq!(
        check(&unicast_instance, &adv(Version::V3), &stranger),
        Err(DropReason::UnknownUnicastSource(ip("10.0.0.9")))
    );
}

#[test]
fn bad_checksum_is_dropped() {
    let vr = instance(Version::V3, |_| {});
    let m = mcast("10.0.0.1");
    let mut b = bytes(&adv(Version::V3), &m);
    b[7] ^= 0xff;
    assert!(matches!(
        vr.receive(&b, &m),
        Err(DropReason::Malformed(PacketError::BadChecksum { .. }))
    ));
}

#[test]
fn checksum_variant_follows_the_configuration() {
    let m = mcast("10.0.0.1");
    let msg_only = encode(&adv(Version::V3), m.src, m.dst, V3Ipv4Checksum::MessageOnly).unwrap();
    let default = instance(Version::V3, |_| {});
    assert!(matches!(
        default.receive(&msg_only, &m),
        Err(DropReason::Malformed(PacketError::BadChecksum { .. }))
    ));
    let as_v2 = instance(Version::V3, |c| {
        c.v3_ipv4_checksum = V3Ipv4Checksum::MessageOnly;
        c.v3_ipv4_checksum_rx = V3Ipv4ChecksumRx::MessageOnly;
    });
    assert!(as_v2.receive(&msg_only, &m).is_ok());
    let either = instance(Version::V3, |c| {
        c.v3_ipv4_checksum_rx = V3Ipv4ChecksumRx::Either
    });
    assert!(either.receive(&msg_only, &m).is_ok());
    assert!(either.receive(&bytes(&adv(Version::V3), &m), &m).is_ok());
}

#[test]
fn bad_version_type_and_length_are_dropped() {
    let vr = instance(Version::V3, |_| {});
    let m = mcast("10.0.0.1");
    let good = bytes(&adv(Version::V3), &m);
    let mut b = good.clone();
    b[0] = 0x51;
    assert_eq!(
        vr.receive(&b, &m),
        Err(DropReason::Malformed(PacketError::UnsupportedVersion(5)))
    );
    b[0] = 0x30;
    assert_eq!(
        vr.receive(&b, &m),
        Err(DropReason::Malformed(PacketError::NotAnAdvertisement(0)))
    );
    assert_eq!(
        vr.receive(&good[..5], &m),
        Err(DropReason::Malformed(PacketError::TooShort { len: 5 }))
    );
    assert_eq!(
        vr.receive(&good[..8], &m),
        Err(DropReason::Malformed(PacketError::LengthMismatch {
            expected: 12,
            actual: 8
        }))
    );
    // A valid VRRPv2 advert for a VRRPv3 instance.
    assert_eq!(
        check(&vr, &adv(Version::V2), &m),
        Err(DropReason::VersionMismatch(Version::V2))
    );
}

#[test]
fn wrong_vrid_is_dropped() {
    let vr = instance(Version::V3, |_| {});
    let mut a = adv(Version::V3);
    a.vrid = 11;
    assert_eq!(
        check(&vr, &a, &mcast("10.0.0.1")),
        Err(DropReason::WrongVrid(11))
    );
}

#[test]
fn own_adverts_are_dropped() {
    let vr = instance(Version::V3, |_| {});
    assert_eq!(
        check(&vr, &adv(Version::V3), &mcast("10.0.0.2")),
        Err(DropReason::FromSelf)
    );
}

#[test]
fn family_mismatch_is_dropped() {
    let vr = instance(Version::V3, |_| {});
    let m6 = RxMeta {
        src: ip("fe80::1"),
        dst: ip("ff02::12"),
        ttl: 255,
    };
    let mut a = adv(Version::V3);
    a.addresses = vec![ip("fe80::100")];
    assert_eq!(check(&vr, &a, &m6), Err(DropReason::FamilyMismatch));
    // Mixed endpoints are a family mismatch too.
    let mixed = RxMeta {
        src: ip("10.0.0.1"),
        dst: ip("ff02::12"),
        ttl: 255,
    };
    assert_eq!(
        vr.receive(&[0x31; 12], &mixed),
        Err(DropReason::FamilyMismatch)
    );
}

#[test]
fn v2_authentication() {
    let m = mcast("10.0.0.1");
    let with_pass = |p: &[u8]| {
        let mut a = adv(Version::V2);
        a.fields = VersionFields::V2 {
            auth: Auth::password(p),
            adver_int_secs: 1,
        };
        a
    };
    let vr = instance(Version::V2, |c| c.auth = Auth::password(b"1111"));
    assert!(check(&vr, &with_pass(b"1111"), &m).is_ok());
    assert_eq!(
        check(&vr, &with_pass(b"2222"), &m),
        Err(DropReason::AuthMismatch)
    );
    assert_eq!(
        check(&vr, &adv(Version::V2), &m),
        Err(DropReason::AuthTypeMismatch {
            received: 0,
            expected: 1
        })
    );
    let open = instance(Version::V2, |_| {});
    assert_eq!(
        check(&open, &with_pass(b"1111"), &m),
        Err(DropReason::AuthTypeMismatch {
            received: 1,
            expected: 0
        })
    );
}

#[test]
fn v2_ah_and_unknown_auth_types_are_reported_unsupported() {
    let vr = instance(Version::V2, |_| {});
    let m = mcast("10.0.0.1");
    for code in [2u8, 3, 255] {
        let mut b = bytes(&adv(Version::V2), &m);
        b[4] = code;
        // Recompute the v2 checksum by hand (message only).
        b[6] = 0;
        b[7] = 0;
        let sum = vrrp_proto::checksum::internet_checksum(&[&b]);
        b[6..8].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(vr.receive(&b, &m), Err(DropReason::UnsupportedAuth(code)));
    }
}

#[test]
fn v2_interval_mismatch_is_dropped() {
    let vr = instance(Version::V2, |c| c.advert_interval = Duration::from_secs(3));
    assert_eq!(
        check(&vr, &adv(Version::V2), &mcast("10.0.0.1")),
        Err(DropReason::IntervalMismatch {
            received: 1,
            expected: 3
        })
    );
}

#[test]
fn v3_interval_difference_is_accepted_but_zero_is_not() {
    let vr = instance(Version::V3, |_| {});
    let m = mcast("10.0.0.1");
    let mut a = adv(Version::V3);
    a.fields = VersionFields::V3 {
        max_adver_int_centis: 25,
    };
    assert!(check(&vr, &a, &m).is_ok());
    a.fields = VersionFields::V3 {
        max_adver_int_centis: 0,
    };
    assert_eq!(check(&vr, &a, &m), Err(DropReason::ZeroInterval));
}

#[test]
fn address_list_mismatch_is_a_warning_not_a_drop() {
    let vr = instance(Version::V3, |c| {
        c.virtual_addresses = vec![ip("10.0.0.100"), ip("10.0.0.101")]
    });
    let m = mcast("10.0.0.1");
    let mut a = adv(Version::V3);
    // Same set, other order: fine.
    a.addresses = vec![ip("10.0.0.101"), ip("10.0.0.100")];
    assert_eq!(check(&vr, &a, &m), Ok(vec![]));
    a.addresses = vec![ip("10.0.0.100")];
    assert_eq!(
        check(&vr, &a, &m),
        Ok(vec![Warning::AddressListMismatch {
            expected: vec![ip("10.0.0.100"), ip("10.0.0.101")],
            received: vec![ip("10.0.0.100")],
        }])
    );
    a.addresses = vec![ip("10.0.0.100"), ip("10.0.0.102")];
    assert_eq!(check(&vr, &a, &m).unwrap().len(), 1);
    // And the accepted advert still drives the state machine: a master
    // yields to a higher-priority master with a different address list.
    let mut owner = instance(Version::V3, |c| c.priority = 200);
    owner.handle(Time::ZERO, Event::Startup);
    owner.handle(
        Time::from_secs(4),
        Event::TimerFired(vrrp_proto::Timer::MasterDown),
    );
    assert_eq!(owner.state(), State::Master);
    a.priority = 250;
    let r = owner.receive(&bytes(&a, &m), &m).unwrap();
    assert_eq!(r.warnings.len(), 1);
    owner.handle(Time::from_secs(5), r.into_event());
    assert_eq!(owner.state(), State::Backup);
}

#[test]
fn ipv6_instance_accepts_ipv6_adverts() {
    let mut c = InstanceConfig::new(10, Version::V3, ip("fe80::2"), vec![ip("fe80::100")]);
    c.priority = 100;
    let vr = Instance::new(c.validate().unwrap());
    let m6 = RxMeta {
        src: ip("fe80::1"),
        dst: ip("ff02::12"),
        ttl: 255,
    };
    let mut a = adv(Version::V3);
    a.addresses = vec![ip("fe80::100")];
    assert_eq!(check(&vr, &a, &m6), Ok(vec![]));
    let hop64 = RxMeta { ttl: 64, ..m6 };
    assert_eq!(check(&vr, &a, &hop64), Err(DropReason::BadTtl(64)));
}

#[test]
fn drop_reasons_display() {
    assert_eq!(
        DropReason::BadTtl(3).to_string(),
        "TTL/hop limit 3, expected 255"
    );
    assert_eq!(
        DropReason::VersionMismatch(Version::V2).to_string(),
        "VRRP version 2 does not match ours"
    );
    assert!(
        DropReason::Malformed(PacketError::TooShort { len: 1 })
            .to_string()
            .contains("too short")
    );
}

#[test]
fn either_mode_warns_about_the_other_checksum_variant() {
    let m = mcast("10.0.0.1");
    let msg_only = encode(&adv(Version::V3), m.src, m.dst, V3Ipv4Checksum::MessageOnly).unwrap();
    let pseudo = bytes(&adv(Version::V3), &m);
    let either = instance(Version::V3, |c| {
        c.v3_ipv4_checksum_rx = V3Ipv4ChecksumRx::Either
    });
    assert_eq!(
        either.receive(&msg_only, &m).unwrap().warnings,
        [Warning::ChecksumVariantMismatch {
            received: V3Ipv4Checksum::MessageOnly
        }]
    );
    assert!(either.receive(&pseudo, &m).unwrap().warnings.is_empty());
    let either_as_v2 = instance(Version::V3, |c| {
        c.v3_ipv4_checksum = V3Ipv4Checksum::MessageOnly;
        c.v3_ipv4_checksum_rx = V3Ipv4ChecksumRx::Either;
    });
    assert!(
        either_as_v2
            .receive(&msg_only, &m)
            .unwrap()
            .warnings
            .is_empty()
    );
    assert_eq!(
        either_as_v2.receive(&pseudo, &m).unwrap().warnings,
        [Warning::ChecksumVariantMismatch {
            received: V3Ipv4Checksum::PseudoHeader
        }]
    );
}

/// keepalived before 1.3.6 (and with `old_unicast_checksum`) checksums
/// unicast VRRPv3 adverts as if sent to 224.0.0.18. This is the advert of
/// the "keepalived v3 IPv4 pseudo-header checksum" vector (checksum 0x7873
/// over a pseudo-header with 224.0.0.18), sent to the unicast peer
/// 192.168.200.3.
const OLD_UNICAST: [u8; 12] = [
    0x31, 0x33, 0x64, 0x01, 0x00, 0x64, 0x78, 0x73, 192, 168, 200, 16,
];

fn unicast_instance(compat: bool) -> Instance {
    let mut c = InstanceConfig::new(
        51,
        Version::V3,
        ip("192.168.200.3"),
        vec![ip("192.168.200.16")],
    );
    c.unicast_peers = vec![ip("192.168.200.2")];
    c.unicast_checksum_compat = compat;
    Instance::new(c.validate().unwrap())
}

fn unicast_meta() -> RxMeta {
    RxMeta {
        src: ip("192.168.200.2"),
        dst: ip("192.168.200.3"),
        ttl: 255,
    }
}

#[test]
fn old_keepalived_unicast_checksum_is_accepted_with_a_warning() {
    let vr = unicast_instance(false);
    let r = vr.receive(&OLD_UNICAST, &unicast_meta()).unwrap();
    assert_eq!(r.warnings, [Warning::UnicastChecksumCompat]);
    // A correct modern checksum gives no warning.
    let modern = encode(
        &r.advert,
        ip("192.168.200.2"),
        ip("192.168.200.3"),
        V3Ipv4Checksum::PseudoHeader,
    )
    .unwrap();
    assert!(
        vr.receive(&modern, &unicast_meta())
            .unwrap()
            .warnings
            .is_empty()
    );
    // Garbage is still garbage.
    let mut bad = OLD_UNICAST;
    bad[7] ^= 1;
    assert!(matches!(
        vr.receive(&bad, &unicast_meta()),
        Err(DropReason::Malformed(PacketError::BadChecksum { .. }))
    ));
}

#[test]
fn unicast_checksum_compat_sends_and_expects_the_old_form() {
    let vr = unicast_instance(true);
    let r = vr.receive(&OLD_UNICAST, &unicast_meta()).unwrap();
    assert!(r.warnings.is_empty());
    // Our own advert to the peer uses 224.0.0.18 in the pseudo-header.
    let mut ours = r.advert.clone();
    ours.priority = 100;
    let mut c = InstanceConfig::new(
        51,
        Version::V3,
        ip("192.168.200.2"),
        vec![ip("192.168.200.16")],
    );
    c.unicast_peers = vec![ip("192.168.200.3")];
    c.unicast_checksum_compat = true;
    let sender = Instance::new(c.validate().unwrap());
    assert_eq!(
        sender.encode(&ours, ip("192.168.200.3")).unwrap(),
        OLD_UNICAST
    );
    // The modern form is refused in compat mode, like keepalived.
    let modern = encode(
        &ours,
        ip("192.168.200.2"),
        ip("192.168.200.3"),
        V3Ipv4Checksum::PseudoHeader,
    )
    .unwrap();
    assert!(matches!(
        vr.receive(&modern, &unicast_meta()),
        Err(DropReason::Malformed(PacketError::BadChecksum { .. }))
    ));
}

#[test]
fn owner_ignore_adverts_drops_everything_while_owner() {
    let m = mcast("10.0.0.1");
    let mut owner = instance(Version::V3, |c| {
        c.priority = 255;
        c.owner_ignore_adverts = true;
    });
    assert_eq!(
        check(&owner, &adv(Version::V3), &m),
        Err(DropReason::AddressOwner)
    );
    // Tracking lowered the priority: no longer the owner, adverts count.
    owner.handle(Time::ZERO, Event::Startup);
    owner.handle(Time::ZERO, Event::PriorityChanged(200));
    assert!(check(&owner, &adv(Version::V3), &m).is_ok());
    // Without the option the owner processes adverts (keepalived default).
    let plain = instance(Version::V3, |c| c.priority = 255);
    assert!(check(&plain, &adv(Version::V3), &m).is_ok());
}
