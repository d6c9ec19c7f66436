//! Byte vectors of keepalived adverts, built by hand from keepalived's
//! packet layout (`vrrp_build_vrrp_v2` / `vrrp_build_vrrp_v3` in
//! keepalived/vrrp/vrrp.c) and RFC 3768 / RFC 5798, independently of our
//! encoder. The checksums were computed separately with a few lines of
//! Python implementing RFC 1071 over the listed bytes (and pseudo-header).
//!
//! # Adding a captured vector
//!
//! In Wireshark, select the "Virtual Router Redundancy Protocol" layer of
//! a packet, "Copy > ...as a Hex Stream", and add a [`Vector`] to
//! [`VECTORS`] with the IP source and destination of that packet, the
//! checksum variant the sender uses, and the advert you expect. `reencode`
//! says whether our encoder must reproduce the bytes exactly (false when
//! the capture has e.g. reserved bits or v2 type-0 auth data set).
//!
//! For IPv4 it is even simpler: copy the hex stream of the *Internet
//! Protocol* layer (IP header and VRRP message) into [`DATAGRAMS`]; source,
//! destination and TTL are read from the header.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;

use vrrp_proto::{
    Advertisement, Auth, RxMeta, V3Ipv4Checksum, V3Ipv4ChecksumRx, VersionFields, decode, encode,
};

struct Vector {
    name: &'static str,
    /// The VRRP message (IPv4 payload after the IP header, or IPv6 payload).
    hex: &'static str,
    src: &'static str,
    dst: &'static str,
    /// The checksum variant the sender used (only matters for v3 over IPv4).
    checksum: V3Ipv4Checksum,
    reencode: bool,
    expected: fn() -> Advertisement,
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| ip(s)).collect()
}

const SAMPLE_VIPS: [&str; 3] = ["192.168.200.16", "192.168.200.17", "192.168.200.18"];

const VECTORS: &[Vector] = &[
    // keepalived's sample config (virtual_router_id 51, priority 100,
    // advert_int 1, auth_type PASS, auth_pass 1111, three VIPs), VRRPv2.
    //   21        version 2, type 1
    //   33        VRID 51
    //   64        priority 100
    //   03        3 addresses
    //   01        auth type 1 (simple text)
    //   01        advert interval 1 s
    //   7d36      checksum over the message only
    //   c0a8c810 c0a8c811 c0a8c812   192.168.200.16-18
    //   31313131 00000000            "1111", zero padded to 8 bytes
    Vector {
        name: "keepalived v2 auth PASS, 3 VIPs",
        hex: "2133640301017d36c0a8c810c0a8c811c0a8c8123131313100000000",
        src: "192.168.200.2",
        dst: "224.0.0.18",
        checksum: V3Ipv4Checksum::PseudoHeader,
        reencode: true,
        expected: || Advertisement {
            vrid: 51,
            priority: 100,
            fields: VersionFields::V2 {
                auth: Auth::SimpleText(*b"1111\0\0\0\0"),
                adver_int_secs: 1,
            },
            addresses: ips(&SAMPLE_VIPS),
        },
    },
    // The same instance shutting down: priority 0 (keepalived
    // vrrp_restore_interface -> vrrp_send_adv(vrrp, VRRP_PRIO_STOP)).
    // Only byte 2 and the checksum change: 0x7d36 + 0x6400 (one's
    // complement) = 0xe136.
    Vector {
        name: "keepalived v2 priority 0",
        hex: "213300030101e136c0a8c810c0a8c811c0a8c8123131313100000000",
        src: "192.168.200.2",
        dst: "224.0.0.18",
        checksum: V3Ipv4Checksum::PseudoHeader,
        reencode: true,
        expected: || Advertisement {
            vrid: 51,
            priority: 0,
            fields: VersionFields::V2 {
                auth: Auth::SimpleText(*b"1111\0\0\0\0"),
                adver_int_secs: 1,
            },
            addresses: ips(&SAMPLE_VIPS),
        },
    },
    // VRRPv2 without authentication: 21 01 96 01 00 01 3e98 0a000064 + 8
    // zero bytes of auth data (keepalived always sends VRRP_AUTH_LEN for
    // v2 over IPv4).
    Vector {
        name: "keepalived v2 no auth",
        hex: "2101960100013e980a0000640000000000000000",
        src: "10.0.0.2",
        dst: "224.0.0.18",
        checksum: V3Ipv4Checksum::PseudoHeader,
        reencode: true,
        expected: || Advertisement {
            vrid: 1,
            priority: 150,
            fields: VersionFields::V2 {
                auth: Auth::None,
                adver_int_secs: 1,
            },
            addresses: ips(&["10.0.0.100"]),
        },
    },
    // VRRPv3 over IPv4, keepalived default checksum: the sum also covers
    // the pseudo-header c0a8c802 e0000012 00 70 000c (src, dst, zero,
    // protocol 112, length 12).
    //   31 33 64 01   v3 type 1, VRID 51, priority 100, 1 address
    //   0064          max advert interval 100 cs (reserved bits 0)
    //   7873          checksum
    //   c0a8c810      192.168.200.16
    Vector {
        name: "keepalived v3 IPv4 pseudo-header checksum",
        hex: "3133640100647873c0a8c810",
        src: "192.168.200.2",
        dst: "224.0.0.18",
        checksum: V3Ipv4Checksum::PseudoHeader,
        reencode: true,
        expected: || Advertisement {
            vrid: 51,
            priority: 100,
            fields: VersionFields::V3 {
                max_adver_int_centis: 100,
            },
            addresses: ips(&["192.168.200.16"]),
        },
    },
    // The same advert with keepalived's v3_checksum_as_v2 (RFC 9568 /
    // Cisco): checksum over the 12 message bytes only.
    Vector {
        name: "keepalived v3 IPv4 v3_checksum_as_v2",
        hex: "313364010064e1adc0a8c810",
        src: "192.168.200.2",
        dst: "224.0.0.18",
        checksum: V3Ipv4Checksum::MessageOnly,
        reencode: true,
        expected: || Advertisement {
            vrid: 51,
            priority: 100,
            fields: VersionFields::V3 {
                max_adver_int_centis: 100,
            },
            addresses: ips(&["192.168.200.16"]),
        },
    },
    // Unicast (unicast_peer { 192.168.200.3 }): keepalived puts the real
    // destination, the peer, in the pseudo-header.
    Vector {
        name: "keepalived v3 IPv4 unicast",
        hex: "313364010064cfd9c0a8c810",
        src: "192.168.200.2",
        dst: "192.168.200.3",
        checksum: V3Ipv4Checksum::PseudoHeader,
        reencode: true,
        expected: || Advertisement {
            vrid: 51,
            priority: 100,
            fields: VersionFields::V3 {
                max_adver_int_centis: 100,
            },
            addresses: ips(&["192.168.200.16"]),
        },
    },
    // VRRPv3 priority 0 (shutdown / fault).
    Vector {
        name: "keepalived v3 IPv4 priority 0",
        hex: "313300010064dc73c0a8c810",
        src: "192.168.200.2",
        dst: "224.0.0.18",
        checksum: V3Ipv4Checksum::PseudoHeader,
        reencode: true,
        expected: || Advertisement {
            vrid: 51,
            priority: 0,
            fields: VersionFields::V3 {
                max_adver_int_centis: 100,
            },
            addresses: ips(&["192.168.200.16"]),
        },
    },
    // Sub-second VRRPv3 (advert_int 0.1): interval 000a = 10 cs.
    Vector {
        name: "keepalived v3 IPv4 100 ms interval",
        hex: "3107fe02000ace550a0101010a010102",
        src: "10.1.1.253",
        dst: "224.0.0.18",
        checksum: V3Ipv4Checksum::PseudoHeader,
        reencode: true,
        expected: || Advertisement {
            vrid: 7,
            priority: 254,
            fields: VersionFields::V3 {
                max_adver_int_centis: 10,
            },
            addresses: ips(&["10.1.1.1", "10.1.1.2"]),
        },
    },
    // VRRPv3 over IPv6 (keepalived leaves the checksum to the kernel,
    // IPV6_CHECKSUM offset 6, i.e. the RFC 8200 pseudo-header with next
    // header 112): src fe80::2, dst ff02::12, upper-layer length 40.
    //   31 33 64 02 0064 3efb   two addresses, 100 cs
    //   fe80::1 (first VIP link-local, as keepalived wants)
    //   2001:db8::100
    Vector {
        name: "keepalived v3 IPv6",
        hex: "3133640200643efbfe80000000000000000000000000000120010db8000000000000000000000100",
        src: "fe80::2",
        dst: "ff02::12",
        checksum: V3Ipv4Checksum::PseudoHeader,
        reencode: true,
        expected: || Advertisement {
            vrid: 51,
            priority: 100,
            fields: VersionFields::V3 {
                max_adver_int_centis: 100,
            },
            addresses: ips(&["fe80::1", "2001:db8::100"]),
        },
    },
];

/// Whole IPv4 datagrams (IP header + VRRP), as captured on the wire.
struct Datagram {
    name: &'static str,
    hex: &'static str,
    checksum: V3Ipv4Checksum,
    expected: fn() -> Advertisement,
}

const DATAGRAMS: &[Datagram] = &[
    // keepalived's IPv4 header (vrrp_build_ip4): 45 (v4, IHL 5), c0 (TOS),
    // 0020 (total 32), 1234 (id), 0000 (no fragmentation), ff (TTL 255),
    // 70 (protocol 112), 3fbc (header checksum), c0a8c802 (192.168.200.2),
    // e0000012 (224.0.0.18); then the VRRPv3 advert of the pseudo-header
    // vector above.
    Datagram {
        name: "keepalived v3 IPv4 datagram",
        hex: "45c0002012340000ff703fbcc0a8c802e00000123133640100647873c0a8c810",
        checksum: V3Ipv4Checksum::PseudoHeader,
        expected: || Advertisement {
            vrid: 51,
            priority: 100,
            fields: VersionFields::V3 {
                max_adver_int_centis: 100,
            },
            addresses: ips(&["192.168.200.16"]),
        },
    },
];

#[test]
fn datagrams_decode_to_the_expected_adverts() {
    for d in DATAGRAMS {
        let bytes = unhex(d.hex);
        let (meta, payload) =
            vrrp_proto::ip::split_ipv4(&bytes).unwrap_or_else(|e| panic!("{}: {e}", d.name));
        assert_eq!(meta.ttl, 255, "{}", d.name);
        let got =
            decode(payload, &meta, d.checksum.into()).unwrap_or_else(|e| panic!("{}: {e}", d.name));
        assert_eq!(got, (d.expected)(), "{}", d.name);
    }
}

#[test]
fn our_ipv4_header_matches_the_datagram_vector() {
    let d = &DATAGRAMS[0];
    let bytes = unhex(d.hex);
    let header = vrrp_proto::ip::ipv4_header(
        "192.168.200.2".parse().unwrap(),
        "224.0.0.18".parse().unwrap(),
        bytes.len() - 20,
        0x1234,
        255,
    );
    assert_eq!(&bytes[..20], &header);
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn vectors_decode_to_the_expected_adverts() {
    for v in VECTORS {
        let bytes = unhex(v.hex);
        let meta = RxMeta {
            src: ip(v.src),
            dst: ip(v.dst),
            ttl: 255,
        };
        let got =
            decode(&bytes, &meta, v.checksum.into()).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(got, (v.expected)(), "{}", v.name);
        // Either-mode also accepts it.
        assert!(
            decode(&bytes, &meta, V3Ipv4ChecksumRx::Either).is_ok(),
            "{}",
            v.name
        );
    }
}

#[test]
fn our_encoder_reproduces_the_vectors() {
    for v in VECTORS.iter().filter(|v| v.reencode) {
        let bytes = encode(&(v.expected)(), ip(v.src), ip(v.dst), v.checksum).unwrap();
        assert_eq!(bytes, unhex(v.hex), "{}", v.name);
    }
}

#[test]
fn vectors_fail_with_the_wrong_endpoints() {
    for v in VECTORS {
        let bytes = unhex(v.hex);
        let other_src = match ip(v.src) {
            IpAddr::V4(_) => ip("192.0.2.99"),
            IpAddr::V6(_) => ip("fe80::99"),
        };
        let meta = RxMeta {
            src: other_src,
            dst: ip(v.dst),
            ttl: 255,
        };
        let res = decode(&bytes, &meta, v.checksum.into());
        let pseudo_header = bytes[0] >> 4 == 3
            && (meta.src.is_ipv6() || v.checksum == V3Ipv4Checksum::PseudoHeader);
        assert_eq!(res.is_err(), pseudo_header, "{}", v.name);
    }
}
