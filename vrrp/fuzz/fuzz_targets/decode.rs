//! Fuzzes the decoder and receive validation, then feeds accepted adverts
//! to instances in Backup and Master state.
//!
//! Input layout: byte 0 = flags (bit 0: IPv6; bits 1-2: checksum mode;
//! bit 3: unicast destination; bit 4: patch in the right checksum first, so
//! the fuzzer gets past the checksum check), byte 1 = TTL, the rest = VRRP
//! payload.

#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use vrrp_proto::{
    Auth, Event, Instance, InstanceConfig, RxMeta, Time, Timer, V3Ipv4Checksum, V3Ipv4ChecksumRx,
    Version, checksum::vrrp_checksum, decode, encode,
};

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

fuzz_target!(|data: &[u8]| {
    // The raw-socket IPv4 header parser sees the whole input too.
    if let Ok((meta, payload)) = vrrp_proto::ip::split_ipv4(data) {
        assert!(payload.len() <= data.len() - vrrp_proto::ip::IPV4_HEADER_LEN);
        let _ = decode(payload, &meta, V3Ipv4ChecksumRx::Either);
    }
    let [flags, ttl, payload @ ..] = data else {
        return;
    };
    let mut payload = payload.to_vec();
    let six = flags & 1 != 0;
    let unicast = flags & 8 != 0;
    let rx = match (flags >> 1) & 3 {
        0 => V3Ipv4ChecksumRx::PseudoHeader,
        1 => V3Ipv4ChecksumRx::MessageOnly,
        _ => V3Ipv4ChecksumRx::Either,
    };
    let (src, dst, me, vip) = match (six, unicast) {
        (false, false) => ("10.0.0.1", "224.0.0.18", "10.0.0.2", "10.0.0.100"),
        (false, true) => ("10.0.0.1", "10.0.0.2", "10.0.0.2", "10.0.0.100"),
        (true, false) => ("fe80::1", "ff02::12", "fe80::2", "fe80::100"),
        (true, true) => ("fe80::1", "fe80::2", "fe80::2", "fe80::100"),
    };
    let meta = RxMeta {
        src: addr(src),
        dst: addr(dst),
        ttl: *ttl,
    };
    if flags & 16 != 0 && payload.len() >= 8 {
        let version = if payload[0] >> 4 == 2 {
            Version::V2
        } else {
            Version::V3
        };
        let variant = if rx == V3Ipv4ChecksumRx::MessageOnly {
            V3Ipv4Checksum::MessageOnly
        } else {
            V3Ipv4Checksum::PseudoHeader
        };
        let sum = vrrp_checksum(&payload, version, meta.src, meta.dst, variant);
        payload[6..8].copy_from_slice(&sum.to_be_bytes());
    }
    let payload = payload.as_slice();

    if let Ok(adv) = decode(payload, &meta, rx) {
        // Round trip: what decodes must re-encode (unless it carries an
        // authentication type we refuse to produce) and decode the same.
        let mode = match rx {
            V3Ipv4ChecksumRx::MessageOnly => V3Ipv4Checksum::MessageOnly,
            _ => V3Ipv4Checksum::PseudoHeader,
        };
        match encode(&adv, meta.src, meta.dst, mode) {
            Ok(bytes) => {
                let again = decode(&bytes, &meta, mode.into());
                assert_eq!(again.as_ref(), Ok(&adv));
            }
            Err(_) => assert!(matches!(adv.auth(), Some(Auth::IpsecAh | Auth::Unknown(_)))),
        }
    }

    // Receive validation and the state machine, for a few instances.
    let vrid = payload.get(1).copied().unwrap_or(1).max(1);
    for version in [Version::V2, Version::V3] {
        if six && version == Version::V2 {
            continue;
        }
        let mut cfg = InstanceConfig::new(vrid, version, addr(me), vec![addr(vip)]);
        if unicast {
            cfg.unicast_peers = vec![addr(src)];
        }
        cfg.v3_ipv4_checksum_rx = rx;
        let Ok(valid) = cfg.validate() else {
            continue;
        };
        let mut backup = Instance::new(valid);
        backup.handle(Time::ZERO, Event::Startup);
        let mut master = backup.clone();
        master.handle(Time::from_secs(4), Event::TimerFired(Timer::MasterDown));
        let Ok(received) = backup.receive(payload, &meta) else {
            continue;
        };
        let event = received.into_event();
        backup.handle(Time::from_secs(5), event.clone());
        master.handle(Time::from_secs(5), event);
    }
});
