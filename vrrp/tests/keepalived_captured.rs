//! What the real keepalived (Debian 12's 2.2.7) put on the wire, captured by
//! `capture-vrrp` (integration/src/bin/capture-vrrp.rs) into `captured/keepalived.txt`:
//! every advert must decode to what its configuration says and re-encode to the same
//! bytes, header included; the timing, the priority-0 advert at shutdown and the
//! gratuitous ARPs / unsolicited NAs are checked against the RFCs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;
use vrrp_proto::ip::{ipv4_header, split_ipv4};
use vrrp_proto::packet::{Auth, RxMeta, VersionFields, decode, encode};
use vrrp_proto::{V3Ipv4Checksum, V3Ipv4ChecksumRx};

struct Frame {
    ms: u64,
    kind: String,
    bytes: Vec<u8>,
}

struct Section {
    name: String,
    conf: String,
    frames: Vec<Frame>,
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn sections() -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for line in include_str!("captured/keepalived.txt").lines() {
        if let Some(name) = line.strip_prefix("== ") {
            out.push(Section {
                name: name.to_string(),
                conf: String::new(),
                frames: Vec::new(),
            });
        } else if let Some(c) = line.strip_prefix("# ") {
            if let Some(s) = out.last_mut() {
                s.conf.push_str(c);
                s.conf.push('\n');
            }
        } else if !line.is_empty() {
            let mut parts = line.split(' ');
            let ms = parts.next().unwrap().parse().unwrap();
            let kind = parts.next().unwrap().to_string();
            let bytes = hex(parts.next().unwrap());
            out.last_mut()
                .unwrap()
                .frames
                .push(Frame { ms, kind, bytes });
        }
    }
    assert_eq!(out.len(), 6);
    out
}

/// The VIPs of a section's configuration.
fn vips(conf: &str) -> Vec<IpAddr> {
    let block = conf
        .split("virtual_ipaddress {")
        .nth(1)
        .unwrap()
        .split('}')
        .next()
        .unwrap();
    block
        .split_whitespace()
        .map(|v| v.split('/').next().unwrap().parse().unwrap())
        .collect()
}

/// Decodes an advert frame (IP packet) and checks that it re-encodes byte for byte.
fn advert(f: &Frame) -> (RxMeta, vrrp_proto::packet::Advertisement) {
    match f.kind.as_str() {
        "vrrp4" => {
            let (meta, payload) = split_ipv4(&f.bytes).unwrap();
            let adv = decode(payload, &meta, V3Ipv4ChecksumRx::PseudoHeader).unwrap();
            let again = encode(&adv, meta.src, meta.dst, V3Ipv4Checksum::PseudoHeader).unwrap();
            assert_eq!(again, payload, "re-encoded advert differs");
            // keepalived's IPv4 header: TOS 0xc0, TTL 255, no options; only the id varies.
            let (IpAddr::V4(src), IpAddr::V4(dst)) = (meta.src, meta.dst) else {
                panic!()
            };
            let id = u16::from_be_bytes([f.bytes[4], f.bytes[5]]);
            let header = ipv4_header(src, dst, payload.len(), id, meta.ttl);
            assert_eq!(header[..], f.bytes[..20], "IPv4 header differs");
            (meta, adv)
        }
        "vrrp6" => {
            let b = &f.bytes;
            assert_eq!(b[0] >> 4, 6);
            assert_eq!(((b[0] & 0x0f) << 4) | (b[1] >> 4), 0xc0, "traffic class");
            let src = IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&b[8..24]).unwrap()));
            let dst = IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&b[24..40]).unwrap()));
            let meta = RxMeta {
                src,
                dst,
                ttl: b[7],
            };
            let payload = &b[40..];
            let adv = decode(payload, &meta, V3Ipv4ChecksumRx::PseudoHeader).unwrap();
            let again = encode(&adv, src, dst, V3Ipv4Checksum::PseudoHeader).unwrap();
            assert_eq!(again, payload, "re-encoded advert differs");
            (meta, adv)
        }
        k => panic!("not an advert: {k}"),
    }
}

#[test]
fn every_keepalived_advert_decodes_to_its_config_and_reencodes_exactly() {
    for s in sections() {
        let adverts: Vec<&Frame> = s
            .frames
            .iter()
            .filter(|f| f.kind.starts_with("vrrp"))
            .collect();
        assert!(adverts.len() >= 3, "{}: {} adverts", s.name, adverts.len());
        let v3 = s.conf.contains("vrrp_version 3");
        let interval = if s.conf.contains("advert_int 0.1") {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(1)
        };
        let unicast = s.conf.contains("unicast_peer");
        for (i, f) in adverts.iter().enumerate() {
            let (meta, adv) = advert(f);
            let last = i + 1 == adverts.len();
            assert_eq!(adv.vrid, 51, "{}", s.name);
            // keepalived stops with a priority-0 advert (RFC 5798 6.4.3).
            assert_eq!(
                adv.priority,
                if last { 0 } else { 150 },
                "{} advert {i}",
                s.name
            );
            assert_eq!(adv.addresses, vips(&s.conf), "{}", s.name);
            assert_eq!(adv.interval(), interval, "{}", s.name);
            assert_eq!(meta.ttl, 255, "{}", s.name);
            let expected_dst: IpAddr = match (unicast, meta.src) {
                (true, _) => "192.0.2.3".parse().unwrap(),
                (false, IpAddr::V4(_)) => "224.0.0.18".parse().unwrap(),
                (false, IpAddr::V6(_)) => "ff02::12".parse().unwrap(),
            };
            assert_eq!(meta.dst, expected_dst, "{}", s.name);
            match (v3, adv.fields) {
                (true, VersionFields::V3 { .. }) => {}
                (false, VersionFields::V2 { auth, .. }) => {
                    let want = if s.conf.contains("auth_pass secret") {
                        Auth::password(b"secret")
                    } else {
                        Auth::None
                    };
                    assert_eq!(auth, want, "{}", s.name);
                }
                (_, f) => panic!("{}: wrong version fields {f:?}", s.name),
            }
            // IPv6 adverts come from the link-local address (RFC 5798 5.1.2.1).
            if let IpAddr::V6(a) = meta.src {
                assert_eq!(a.segments()[0], 0xfe80, "{}", s.name);
            }
        }
    }
}

#[test]
fn keepalived_becomes_master_after_the_master_down_interval() {
    for s in sections() {
        let first = s
            .frames
            .iter()
            .find(|f| f.kind.starts_with("vrrp"))
            .unwrap();
        let v3 = s.conf.contains("vrrp_version 3");
        let adv_ms = if s.conf.contains("advert_int 0.1") {
            100.0
        } else {
            1000.0
        };
        // Skew: (256 - 150) / 256 s in v2; times the advert interval in v3.
        let skew = if v3 {
            (256.0 - 150.0) * adv_ms / 256.0
        } else {
            (256.0 - 150.0) * 1000.0 / 256.0
        };
        let master_down = 3.0 * adv_ms + skew;
        let got = first.ms as f64;
        // The capture polls every 5 ms; keepalived needs a little time to start.
        assert!(
            got >= master_down && got <= master_down + 150.0,
            "{}: first advert at {got} ms, master-down interval {master_down} ms",
            s.name
        );
        // Then adverts every interval until the stop.
        let times: Vec<u64> = s
            .frames
            .iter()
            .filter(|f| f.kind.starts_with("vrrp"))
            .map(|f| f.ms)
            .collect();
        for w in times.windows(2).take(times.len().saturating_sub(2)) {
            let gap = (w[1] - w[0]) as f64;
            assert!(
                (gap - adv_ms).abs() <= 60.0,
                "{}: advert gap {gap} ms",
                s.name
            );
        }
    }
}

#[test]
fn keepalived_announces_every_vip_on_becoming_master() {
    for s in sections() {
        let vips = vips(&s.conf);
        for vip in &vips {
            let announcements: Vec<&Frame> = s
                .frames
                .iter()
                .filter(|f| match (f.kind.as_str(), vip) {
                    // Gratuitous ARP request: sender IP = target IP = the VIP, from our MAC.
                    ("arp", IpAddr::V4(v)) => {
                        f.bytes[6..8] == [0, 1]
                            && f.bytes[8..14] == [2, 0, 0, 0, 0, 2]
                            && Ipv4Addr::from(<[u8; 4]>::try_from(&f.bytes[14..18]).unwrap()) == *v
                            && Ipv4Addr::from(<[u8; 4]>::try_from(&f.bytes[24..28]).unwrap()) == *v
                    }
                    // Unsolicited NA to all nodes, override flag, target = the VIP.
                    ("na", IpAddr::V6(v)) => {
                        f.bytes[24..40] == "ff02::1".parse::<Ipv6Addr>().unwrap().octets()
                            && f.bytes[44] & 0x20 != 0
                            && f.bytes[48..64] == v.octets()
                    }
                    _ => false,
                })
                .collect();
            // keepalived's defaults: 5 at once on becoming master (vrrp_garp_master_repeat),
            // the same again 5 s later (vrrp_garp_master_delay) if still master.
            assert!(
                announcements.len() >= 5,
                "{}: {} announcements of {vip}",
                s.name,
                announcements.len()
            );
            let first_advert = s
                .frames
                .iter()
                .find(|f| f.kind.starts_with("vrrp"))
                .unwrap()
                .ms;
            assert!(
                announcements[0].ms <= first_advert + 10,
                "{}: late announcement",
                s.name
            );
        }
    }
}
