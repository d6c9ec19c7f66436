//! One test per wire quirk of the IPVS protocol, on hand-written bytes.
#![cfg(target_endian = "little")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipvs_sys::consts::*;
use ipvs_sys::*;
use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_generic::GenlMessage;

/// One attribute: header + payload + padding.
fn nla(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&((4 + payload.len()) as u16).to_le_bytes());
    v.extend_from_slice(&kind.to_le_bytes());
    v.extend_from_slice(payload);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

fn svc_payload(svc: &ServiceAttrs) -> Vec<u8> {
    let msg = IpvsMessage::new_service(svc.clone());
    let mut buf = Vec::new();
    encode_request(&mut buf, &msg, 0x1c, 1, 0).unwrap();
    // nlmsghdr + genlmsghdr + service nest header.
    buf[24..].to_vec()
}

fn find_attr(attrs: &[u8], kind: u16) -> Option<Vec<u8>> {
    let mut pos = 0;
    while pos + 4 <= attrs.len() {
        let len = u16::from_le_bytes([attrs[pos], attrs[pos + 1]]) as usize;
        let k = u16::from_le_bytes([attrs[pos + 2], attrs[pos + 3]]);
        if k == kind {
            return Some(attrs[pos + 4..pos + len].to_vec());
        }
        pos += (len + 3) & !3;
    }
    None
}

fn v4svc() -> ServiceAttrs {
    ServiceAttrs::addr_key(Protocol::TCP, "192.0.2.10:80".parse().unwrap())
}

#[test]
fn service_and_dest_ports_are_network_order() {
    let svc = ServiceAttrs {
        port: Some(0x1f90), // 8080
        ..v4svc()
    };
    assert_eq!(
        find_attr(&svc_payload(&svc), IPVS_SVC_ATTR_PORT).unwrap(),
        [0x1f, 0x90]
    );

    let dest = DestAttrs {
        port: Some(0x1f90),
        tun_port: Some(6080),
        addr_family: Some(AddressFamily::INET),
        ..Default::default()
    };
    let mut buf = vec![0; netlink_packet_core::Emitable::buffer_len(&dest)];
    netlink_packet_core::Emitable::emit(&dest, &mut buf);
    assert_eq!(find_attr(&buf, IPVS_DEST_ATTR_PORT).unwrap(), [0x1f, 0x90]);
    assert_eq!(
        find_attr(&buf, IPVS_DEST_ATTR_TUN_PORT).unwrap(),
        6080u16.to_be_bytes()
    );

    // And back: network-order bytes decode to the host value.
    let attrs = [
        nla(IPVS_DEST_ATTR_PORT, &[0x00, 0x50]),
        nla(IPVS_DEST_ATTR_TUN_PORT, &[0x17, 0xc0]),
    ]
    .concat();
    let d = DestAttrs::decode(&attrs).unwrap();
    assert_eq!((d.port, d.tun_port), (Some(80), Some(6080)));
}

#[test]
fn daemon_mcast_port_is_host_order() {
    let attrs = nla(IPVS_DAEMON_ATTR_MCAST_PORT, &8848u16.to_le_bytes());
    assert_eq!(DaemonAttrs::decode(&attrs).unwrap().mcast_port, Some(8848));
    let d = DaemonAttrs {
        mcast_port: Some(8848),
        ..Default::default()
    };
    let mut buf = vec![0; netlink_packet_core::Emitable::buffer_len(&d)];
    netlink_packet_core::Emitable::emit(&d, &mut buf);
    assert_eq!(buf, attrs);
}

#[test]
fn addresses_are_16_bytes_and_decoded_by_family() {
    // IPv4 service: the kernel's 16-byte union, zero-padded.
    let mut v4_union = [0u8; 16];
    v4_union[..4].copy_from_slice(&[192, 0, 2, 10]);
    let encoded = find_attr(&svc_payload(&v4svc()), IPVS_SVC_ATTR_ADDR).unwrap();
    assert_eq!(encoded, v4_union);

    let af4 = nla(IPVS_SVC_ATTR_AF, &AF_INET.to_le_bytes());
    let af6 = nla(IPVS_SVC_ATTR_AF, &AF_INET6.to_le_bytes());
    let a16 = nla(IPVS_SVC_ATTR_ADDR, &v4_union);
    let a4 = nla(IPVS_SVC_ATTR_ADDR, &[192, 0, 2, 10]);
    let want4 = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)));
    assert_eq!(
        ServiceAttrs::decode(&[af4.clone(), a16.clone()].concat())
            .unwrap()
            .addr,
        want4
    );
    // Attribute order does not matter: the family may come after the address.
    assert_eq!(
        ServiceAttrs::decode(&[a16.clone(), af4.clone()].concat())
            .unwrap()
            .addr,
        want4
    );
    // A 4-byte IPv4 address is accepted too.
    assert_eq!(
        ServiceAttrs::decode(&[af4, a4.clone()].concat())
            .unwrap()
            .addr,
        want4
    );
    // The same 16 bytes under AF_INET6 are an IPv6 address.
    let got6 = ServiceAttrs::decode(&[af6.clone(), a16.clone()].concat())
        .unwrap()
        .addr;
    assert_eq!(got6, Some(IpAddr::V6(Ipv6Addr::from(v4_union))));
    // 4 bytes cannot be an IPv6 address.
    assert!(matches!(
        ServiceAttrs::decode(&[af6, a4.clone()].concat()),
        Err(Error::AddrSize {
            what: "IPVS_SVC_ATTR_ADDR",
            family: AF_INET6,
            got: 4
        })
    ));
    // Without a family, 16 bytes are ambiguous; 4 bytes are IPv4.
    assert!(matches!(
        ServiceAttrs::decode(&a16),
        Err(Error::MissingAddressFamily {
            what: "IPVS_SVC_ATTR_ADDR"
        })
    ));
    assert_eq!(ServiceAttrs::decode(&a4).unwrap().addr, want4);
}

#[test]
fn dest_address_falls_back_to_service_family() {
    let mut union = [0u8; 16];
    union[..4].copy_from_slice(&[198, 51, 100, 7]);
    let dest_nest = nla(IPVS_CMD_ATTR_DEST, &nla(IPVS_DEST_ATTR_ADDR, &union));
    // Alone, the destination address is ambiguous...
    assert!(matches!(
        IpvsMessage::decode(IPVS_CMD_NEW_DEST, &dest_nest),
        Err(Error::MissingAddressFamily {
            what: "IPVS_DEST_ATTR_ADDR"
        })
    ));
    // ...the service's family in the same message resolves it...
    let svc_nest = nla(
        IPVS_CMD_ATTR_SERVICE,
        &nla(IPVS_SVC_ATTR_AF, &AF_INET.to_le_bytes()),
    );
    let msg =
        IpvsMessage::decode(IPVS_CMD_NEW_DEST, &[svc_nest, dest_nest.clone()].concat()).unwrap();
    assert_eq!(
        msg.dest().unwrap().addr,
        Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)))
    );
    // ...and so does a hint (GET_DEST dumps of kernels before 3.18).
    let msg =
        IpvsMessage::decode_with_hint(IPVS_CMD_NEW_DEST, &dest_nest, Some(AddressFamily::INET))
            .unwrap();
    assert_eq!(
        msg.dest().unwrap().addr,
        Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)))
    );
    // The destination's own family wins over the service's (mixed-family tunnels).
    let dest6 = [
        nla(IPVS_DEST_ATTR_ADDR_FAMILY, &AF_INET6.to_le_bytes()),
        nla(IPVS_DEST_ATTR_ADDR, &union),
    ]
    .concat();
    let d = DestAttrs::decode_with_family(&dest6, Some(AddressFamily::INET)).unwrap();
    assert!(d.addr.unwrap().is_ipv6());
    // Encoding a destination without its own family under an AF_INET
    // service also writes the 16-byte union.
    let msg = IpvsMessage::del_dest(
        v4svc(),
        DestAttrs {
            addr: Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7))),
            ..Default::default()
        },
    );
    let mut buf = Vec::new();
    encode_request(&mut buf, &msg, 0x1c, 1, 0).unwrap();
    assert!(
        buf.windows(20)
            .any(|w| w == nla(IPVS_DEST_ATTR_ADDR, &union))
    );
}

#[test]
fn netmask_is_a_mask_for_ipv4_and_a_prefix_length_for_ipv6() {
    let v4 = ServiceAttrs {
        netmask: Some(Netmask::V4(Ipv4Addr::new(255, 255, 255, 0))),
        ..v4svc()
    };
    assert_eq!(
        find_attr(&svc_payload(&v4), IPVS_SVC_ATTR_NETMASK).unwrap(),
        [255, 255, 255, 0]
    );
    let v6 = ServiceAttrs {
        netmask: Some(Netmask::V6Prefix(64)),
        ..ServiceAttrs::fwmark_key(AddressFamily::INET6, 1)
    };
    assert_eq!(
        find_attr(&svc_payload(&v6), IPVS_SVC_ATTR_NETMASK).unwrap(),
        [64, 0, 0, 0]
    );

    // The same four bytes decode differently per family.
    let mask = nla(IPVS_SVC_ATTR_NETMASK, &[64, 0, 0, 0]);
    let as4 = ServiceAttrs::decode(
        &[nla(IPVS_SVC_ATTR_AF, &AF_INET.to_le_bytes()), mask.clone()].concat(),
    );
    let as6 = ServiceAttrs::decode(
        &[nla(IPVS_SVC_ATTR_AF, &AF_INET6.to_le_bytes()), mask.clone()].concat(),
    );
    assert_eq!(
        as4.unwrap().netmask,
        Some(Netmask::V4(Ipv4Addr::new(64, 0, 0, 0)))
    );
    assert_eq!(as6.unwrap().netmask, Some(Netmask::V6Prefix(64)));
    assert!(matches!(
        ServiceAttrs::decode(&mask),
        Err(Error::MissingAddressFamily { .. })
    ));
    // A mask under the wrong family is refused before encoding.
    let bad = ServiceAttrs {
        netmask: Some(Netmask::V6Prefix(64)),
        ..v4svc()
    };
    assert!(matches!(
        bad.validate(),
        Err(Error::AddressFamilyMismatch {
            family: AF_INET,
            ..
        })
    ));
}

#[test]
fn service_flags_are_a_host_order_flags_mask_pair() {
    let svc = ServiceAttrs {
        flags: Some(SvcFlags {
            flags: ServiceFlags::PERSISTENT | ServiceFlags::ONEPACKET,
            mask: ServiceFlags(0x0000_00ff),
        }),
        ..v4svc()
    };
    assert_eq!(
        find_attr(&svc_payload(&svc), IPVS_SVC_ATTR_FLAGS).unwrap(),
        [0x05, 0, 0, 0, 0xff, 0, 0, 0]
    );
    // Anything but 8 bytes is an error naming the attribute.
    let err = ServiceAttrs::decode(&nla(IPVS_SVC_ATTR_FLAGS, &[1, 0, 0, 0])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "IPVS_SVC_ATTR_FLAGS: expected 8 bytes, got 4"
    );
}

#[test]
fn kernel_sets_hashed_on_dump_and_requests_strip_it() {
    let dumped = ServiceAttrs::decode(&nla(
        IPVS_SVC_ATTR_FLAGS,
        &[0x03, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
    ))
    .unwrap()
    .flags
    .unwrap();
    assert!(dumped.flags.contains(ServiceFlags::HASHED));
    assert_eq!(dumped.mask, ServiceFlags::ALL);
    assert_eq!(dumped.flags.user_settable(), ServiceFlags::PERSISTENT);
    // What a request built from the dumped value carries.
    assert_eq!(
        SvcFlags::set_all(dumped.flags).flags,
        ServiceFlags::PERSISTENT
    );
    let svc = v4svc().with_config("rr", dumped.flags, 300);
    assert_eq!(svc.flags.unwrap().flags, ServiceFlags::PERSISTENT);
}

#[test]
fn stats_widths_and_pad_attributes() {
    // STATS: u32 counters, u64 byte counters.
    let attrs = [
        nla(IPVS_STATS_ATTR_CONNS, &7u32.to_le_bytes()),
        nla(IPVS_STATS_ATTR_PAD, &[]),
        nla(IPVS_STATS_ATTR_INBYTES, &(1u64 << 40).to_le_bytes()),
    ]
    .concat();
    let st = Stats::decode(&attrs).unwrap();
    assert_eq!((st.conns, st.inbytes, st.unknown.len()), (7, 1 << 40, 0));
    // A u64 where the kernel sends a u32 is an error naming the attribute.
    let err = Stats::decode(&nla(IPVS_STATS_ATTR_CONNS, &7u64.to_le_bytes())).unwrap_err();
    assert!(err.to_string().contains("IPVS_STATS_ATTR_CONNS"), "{err}");
    // STATS64: all u64; PAD skipped.
    let attrs64 = [
        nla(IPVS_STATS_ATTR_PAD, &[]),
        nla(IPVS_STATS_ATTR_CONNS, &(u64::MAX).to_le_bytes()),
        nla(IPVS_STATS_ATTR_PAD, &[]),
        nla(IPVS_STATS_ATTR_OUTBPS, &3u64.to_le_bytes()),
    ]
    .concat();
    let st = Stats64::decode(&attrs64).unwrap();
    assert_eq!((st.conns, st.outbps, st.unknown.len()), (u64::MAX, 3, 0));
    assert!(Stats64::decode(&nla(IPVS_STATS_ATTR_CPS, &1u32.to_le_bytes())).is_err());
    // Encoding emits all ten counters without padding.
    assert_eq!(
        netlink_packet_core::Emitable::buffer_len(&Stats64::default()),
        120
    );
    assert_eq!(
        netlink_packet_core::Emitable::buffer_len(&Stats::default()),
        88
    );
}

#[test]
fn fwmark_services_have_no_protocol_address_or_port() {
    let attrs = [
        nla(IPVS_SVC_ATTR_AF, &AF_INET.to_le_bytes()),
        nla(IPVS_SVC_ATTR_FWMARK, &42u32.to_le_bytes()),
    ]
    .concat();
    let svc = ServiceAttrs::decode(&attrs).unwrap();
    assert_eq!(svc, ServiceAttrs::fwmark_key(AddressFamily::INET, 42));
    assert_eq!((svc.protocol, svc.addr, svc.port), (None, None, None));
    // key() of a fwmark service is af + fwmark only.
    let full = ServiceAttrs {
        protocol: Some(Protocol::TCP),
        ..svc.clone().with_config("rr", ServiceFlags::EMPTY, 0)
    };
    assert_eq!(full.key(), svc);
}

#[test]
fn weight_is_u32_on_the_wire_with_a_signed_range() {
    assert_eq!(MAX_WEIGHT, i32::MAX as u32);
    // Out-of-range weights are passed through unchanged (the kernel answers
    // ERANGE): the layer does not second-guess the kernel.
    let d = DestAttrs {
        weight: Some(u32::MAX),
        ..Default::default()
    };
    let mut buf = vec![0; netlink_packet_core::Emitable::buffer_len(&d)];
    netlink_packet_core::Emitable::emit(&d, &mut buf);
    assert_eq!(buf, nla(IPVS_DEST_ATTR_WEIGHT, &[0xff; 4]));
    assert_eq!(DestAttrs::decode(&buf).unwrap().weight, Some(u32::MAX));
}

#[test]
fn unknown_attributes_are_kept_and_reemitted() {
    let unknown_svc = nla(99, &[1, 2, 3]);
    // Both NLA_F_NESTED and NLA_F_NET_BYTEORDER are kept (netlink-packet-core
    // 0.9 alone would drop the second flag).
    let unknown_top = nla(0xc000 | 42, &[9; 8]);
    let svc_nest = nla(
        IPVS_CMD_ATTR_SERVICE,
        &[nla(IPVS_SVC_ATTR_AF, &AF_INET.to_le_bytes()), unknown_svc].concat(),
    );
    let attrs = [svc_nest, unknown_top].concat();
    let msg = IpvsMessage::decode(IPVS_CMD_GET_SERVICE, &attrs).unwrap();
    let svc = msg.service().unwrap();
    assert_eq!(
        svc.unknown,
        vec![RawAttr {
            kind: 99,
            value: vec![1, 2, 3]
        }]
    );
    assert_eq!(
        msg.cmd_attrs().unwrap().unknown,
        vec![RawAttr {
            kind: 0xc000 | 42,
            value: vec![9; 8]
        }]
    );
    // Re-encoding reproduces the bytes.
    let mut buf = vec![0; netlink_packet_core::Emitable::buffer_len(&msg)];
    netlink_packet_core::Emitable::emit(&msg, &mut buf);
    assert_eq!(buf, attrs);
    // Unknown attributes in every nest.
    assert_eq!(DestAttrs::decode(&nla(200, &[])).unwrap().unknown.len(), 1);
    assert_eq!(
        DaemonAttrs::decode(&nla(200, &[])).unwrap().unknown.len(),
        1
    );
    assert_eq!(Stats::decode(&nla(200, &[])).unwrap().unknown.len(), 1);
    assert_eq!(InfoAttrs::decode(&nla(200, &[])).unwrap().unknown.len(), 1);
}

#[test]
fn nested_flag_is_accepted_but_not_emitted() {
    let inner = nla(IPVS_SVC_ATTR_FWMARK, &5u32.to_le_bytes());
    let with_flag = nla(0x8000 | IPVS_CMD_ATTR_SERVICE, &inner);
    let msg = IpvsMessage::decode(IPVS_CMD_DEL_SERVICE, &with_flag).unwrap();
    assert_eq!(msg.service().unwrap().fwmark, Some(5));
    let mut buf = vec![0; netlink_packet_core::Emitable::buffer_len(&msg)];
    netlink_packet_core::Emitable::emit(&msg, &mut buf);
    assert_eq!(buf, nla(IPVS_CMD_ATTR_SERVICE, &inner));
}

#[test]
fn set_info_attributes_live_at_the_first_level() {
    let attrs = [
        nla(IPVS_INFO_ATTR_VERSION, &0x010201u32.to_le_bytes()),
        nla(IPVS_INFO_ATTR_CONN_TAB_SIZE, &4096u32.to_le_bytes()),
    ]
    .concat();
    let msg = IpvsMessage::decode(IPVS_CMD_SET_INFO, &attrs).unwrap();
    let info = msg.info_attrs().unwrap();
    assert_eq!(
        info.ipvs_version(),
        Some(IpvsVersion {
            major: 1,
            minor: 2,
            patch: 1
        })
    );
    assert_eq!(info.conn_tab_size, Some(4096));
    // The same bytes under another command are a (malformed) service nest.
    assert!(IpvsMessage::decode(IPVS_CMD_NEW_SERVICE, &attrs).is_err());
    // Mixing them up is refused on encode.
    let wrong = IpvsMessage {
        command: Command::SetInfo,
        attrs: MessageAttrs::Cmd(CmdAttrs::default()),
    };
    assert!(matches!(wrong.validate(), Err(Error::AttrsMismatch { .. })));
    let wrong = IpvsMessage {
        command: Command::GetInfo,
        attrs: MessageAttrs::Info(InfoAttrs::default()),
    };
    assert!(matches!(
        encoded_len(&wrong),
        Err(Error::AttrsMismatch { .. })
    ));
}

#[test]
fn dump_flags_per_command() {
    let dumps: Vec<Command> = Command::ALL
        .iter()
        .copied()
        .filter(|c| c.is_dump())
        .collect();
    assert_eq!(dumps, [Command::GetDest, Command::GetDaemon]);
    assert!(!Command::GetConfig.is_dump() && !Command::GetConfig.supports_dump());
    assert!(!Command::GetInfo.is_dump() && !Command::GetInfo.supports_dump());
    assert!(Command::GetService.supports_dump() && !Command::GetService.is_dump());
    let dump = NLM_F_REQUEST | NLM_F_DUMP;
    let ack = NLM_F_REQUEST | NLM_F_ACK;
    assert_eq!(IpvsMessage::dump_services().request_flags(), dump);
    assert_eq!(IpvsMessage::get_service(v4svc()).request_flags(), ack);
    assert_eq!(IpvsMessage::dump_dests(v4svc()).request_flags(), dump);
    assert_eq!(IpvsMessage::dump_daemons().request_flags(), dump);
    assert_eq!(IpvsMessage::get_config().request_flags(), ack);
    assert_eq!(IpvsMessage::get_info().request_flags(), ack);
    assert_eq!(IpvsMessage::flush().request_flags(), ack);
    assert_eq!(Command::GetInfo.reply_command(), Some(Command::SetInfo));
    assert_eq!(Command::GetConfig.reply_command(), Some(Command::SetConfig));
    assert_eq!(Command::GetDest.reply_command(), Some(Command::NewDest));
    assert!(Command::SetInfo.is_reply_only());
    // Numeric values from ip_vs.h.
    let numbers: Vec<u8> = Command::ALL.iter().map(|c| *c as u8).collect();
    assert_eq!(numbers, (1..=17).collect::<Vec<u8>>());
    for c in Command::ALL {
        assert_eq!(Command::from_u8(c as u8), Some(c));
    }
    assert!(matches!(
        IpvsMessage::decode(18, &[]),
        Err(Error::UnknownCommand(18))
    ));
}

#[test]
fn missing_service_dest_dump_is_empty() {
    let mut buf = Vec::new();
    encode_done(&mut buf, 9, 0x1234);
    let replies = decode_replies(&buf, 0x1c).unwrap();
    assert_eq!(replies.len(), 1);
    assert!(replies[0].is_final());
    assert_eq!(replies[0].payload, ReplyPayload::Done { error: 0 });
    // A zero-length NLMSG_DONE is accepted too.
    let mut short = Vec::new();
    short.extend_from_slice(&16u32.to_le_bytes());
    short.extend_from_slice(&3u16.to_le_bytes());
    short.extend_from_slice(&[0; 10]);
    assert_eq!(
        decode_replies(&short, 0x1c).unwrap()[0].payload,
        ReplyPayload::Done { error: 0 }
    );
}

#[test]
fn errors_name_what_was_decoded() {
    let e = ServiceAttrs::decode(&nla(IPVS_SVC_ATTR_PORT, &[0, 80, 0, 0])).unwrap_err();
    assert_eq!(e.to_string(), "IPVS_SVC_ATTR_PORT: expected 2 bytes, got 4");
    let e = DaemonAttrs::decode(&nla(IPVS_DAEMON_ATTR_MCAST_IFN, &[0xff, 0xfe, 0])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "IPVS_DAEMON_ATTR_MCAST_IFN: string is not valid UTF-8"
    );
    // A truncated attribute inside a nest.
    let e = ServiceAttrs::decode(&[8, 0, 1, 0, 2]).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("IPVS_CMD_ATTR_SERVICE: malformed netlink attribute"),
        "{e}"
    );
    // In a reply buffer, the failing message's seq is reported and decoding
    // goes on with the next message.
    let mut buf = Vec::new();
    let bad = IpvsMessage::with_attrs(
        Command::NewService,
        CmdAttrs {
            unknown: vec![],
            ..Default::default()
        },
    );
    encode_message(&mut buf, &bad, 0x1c, 2, 5, 0).unwrap();
    // Corrupt: replace the (empty) attributes by a bad service nest.
    buf.extend_from_slice(&nla(IPVS_CMD_ATTR_SERVICE, &nla(IPVS_SVC_ATTR_PORT, &[1])));
    let len = buf.len() as u32;
    buf[..4].copy_from_slice(&len.to_le_bytes());
    encode_done(&mut buf, 5, 0);
    let out: Vec<_> = Replies::new(&buf, 0x1c).collect();
    assert_eq!(out.len(), 2);
    match &out[0] {
        Err(Error::InMessage {
            seq: 5,
            message_type: 0x1c,
            source,
        }) => {
            assert_eq!(
                source.to_string(),
                "IPVS_SVC_ATTR_PORT: expected 2 bytes, got 1"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(out[1].is_ok());
}

#[test]
fn reply_framing_errors_stop_the_iteration() {
    let mut buf = Vec::new();
    encode_done(&mut buf, 1, 0);
    buf.extend_from_slice(&100u32.to_le_bytes()); // nlmsg_len 100 > rest
    buf.extend_from_slice(&[0; 12]);
    encode_done(&mut buf, 2, 0);
    let out: Vec<_> = Replies::new(&buf, 0x1c).collect();
    assert_eq!(out.len(), 2);
    assert!(matches!(
        out[1],
        Err(Error::BadMessageLength {
            offset: 20,
            len: 100,
            ..
        })
    ));
    // Too short for a header.
    let out: Vec<_> = Replies::new(&[1, 2, 3], 0x1c).collect();
    assert!(matches!(
        out[..],
        [Err(Error::Truncated {
            what: "nlmsghdr",
            ..
        })]
    ));
    // nlmsg_len smaller than the header.
    let mut tiny = 8u32.to_le_bytes().to_vec();
    tiny.extend_from_slice(&[0; 12]);
    assert!(matches!(
        Replies::new(&tiny, 0x1c).next(),
        Some(Err(Error::BadMessageLength { len: 8, .. }))
    ));
}

#[test]
fn errno_maps_back_to_the_request_seq() {
    let mut batch = BatchEncoder::new(0x1c, 40);
    let a = batch
        .push(&IpvsMessage::new_service(v4svc().with_config(
            "rr",
            ServiceFlags::EMPTY,
            0,
        )))
        .unwrap();
    let b = batch.push(&IpvsMessage::del_service(v4svc())).unwrap();
    let reqs: Vec<NlHeader> = Replies::new(batch.as_bytes(), 0x1c)
        .map(|r| r.unwrap().header)
        .collect();
    let mut answer = Vec::new();
    encode_ack(&mut answer, &reqs[0], 0, 77);
    encode_ack(&mut answer, &reqs[1], 3, 77); // ESRCH
    let replies = decode_replies(&answer, 0x1c).unwrap();
    assert_eq!(
        (replies[0].seq(), &replies[0].payload),
        (a, &ReplyPayload::Ack)
    );
    match &replies[1].payload {
        ReplyPayload::Error(e) => {
            assert_eq!(replies[1].seq(), b);
            assert_eq!(e.errno, 3);
            assert_eq!(e.request.unwrap().seq, b);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn encode_refuses_what_would_not_decode_back() {
    let v6_in_v4 = ServiceAttrs {
        addr: Some("2001:db8::1".parse().unwrap()),
        ..v4svc()
    };
    assert!(matches!(
        encoded_len(&IpvsMessage::new_service(v6_in_v4)),
        Err(Error::AddressFamilyMismatch {
            what: "IPVS_SVC_ATTR_ADDR",
            family: AF_INET
        })
    ));
    let nul = v4svc().with_config("r\0r", ServiceFlags::EMPTY, 0);
    assert!(matches!(
        encoded_len(&IpvsMessage::new_service(nul)),
        Err(Error::InteriorNul {
            what: "IPVS_SVC_ATTR_SCHED_NAME"
        })
    ));
    let huge = v4svc().with_config(&"x".repeat(70_000), ServiceFlags::EMPTY, 0);
    assert!(matches!(
        encoded_len(&IpvsMessage::new_service(huge)),
        Err(Error::AttrTooLarge {
            what: "IPVS_CMD_ATTR_SERVICE",
            ..
        })
    ));
    let mut small = [0u8; 10];
    assert!(matches!(
        encode_request_into(&mut small, &IpvsMessage::flush(), 0x1c, 1, 5),
        Err(Error::BufferTooSmall { need: 20, have: 10 })
    ));
    // Nothing is appended on error.
    let mut batch = BatchEncoder::new(0x1c, 1);
    let v6_in_v4 = ServiceAttrs {
        addr: Some("2001:db8::1".parse().unwrap()),
        ..v4svc()
    };
    assert!(batch.push(&IpvsMessage::del_service(v6_in_v4)).is_err());
    assert!(batch.is_empty() && batch.as_bytes().is_empty() && batch.next_seq() == 1);
}

#[test]
fn batch_reuses_its_allocation() {
    let svc = v4svc();
    let msg = IpvsMessage::new_dest(
        svc.key(),
        DestAttrs::key_of("198.51.100.7:80".parse().unwrap()).with_config(ForwardMethod::MASQ, 1),
    );
    // 500 NEW_DEST requests of 140 bytes fit in 128 KiB.
    let mut batch = BatchEncoder::with_capacity(0x1c, 1, 128 * 1024);
    let ptr = batch.as_bytes().as_ptr();
    for round in 0..3 {
        for _ in 0..500 {
            batch.push(&msg).unwrap();
        }
        assert_eq!(batch.as_bytes().as_ptr(), ptr, "round {round} reallocated");
        assert_eq!(batch.len(), 500);
        let seqs: Vec<u32> = Replies::new(batch.as_bytes(), 0x1c)
            .map(|r| r.unwrap().seq())
            .collect();
        assert_eq!(
            seqs,
            (1 + round * 500..1 + (round + 1) * 500).collect::<Vec<u32>>()
        );
        batch.clear();
    }
    // encode_request aligns to 4 bytes before appending.
    let mut buf = vec![0xaa];
    let r = encode_request(&mut buf, &IpvsMessage::flush(), 0x1c, 1, 5).unwrap();
    assert_eq!(r, 4..24);
    assert_eq!(&buf[1..4], &[0, 0, 0]);
}

/// The rust-netlink wrappers produce and accept the same bytes as the
/// hand-written batch path.
#[test]
fn rust_netlink_wrappers_agree_with_the_batch_path() {
    let msg = IpvsMessage::new_dest(
        v4svc().with_config("wrr", ServiceFlags::PERSISTENT, 60),
        DestAttrs::key_of("[2001:db8::5]:443".parse().unwrap())
            .with_config(ForwardMethod::TUNNEL, 5),
    );
    let mut genl = GenlMessage::from_payload(msg.clone());
    genl.set_resolved_family_id(0x1c);
    let mut nl = NetlinkMessage::from(genl);
    nl.header.flags = msg.request_flags();
    nl.header.sequence_number = 99;
    nl.finalize();
    let mut theirs = vec![0; nl.buffer_len()];
    nl.serialize(&mut theirs);

    let mut ours = Vec::new();
    encode_request(&mut ours, &msg, 0x1c, 99, msg.request_flags()).unwrap();
    assert_eq!(ours, theirs);

    let parsed = NetlinkMessage::<GenlMessage<IpvsMessage>>::deserialize(&ours).unwrap();
    match parsed.payload {
        NetlinkPayload::InnerMessage(g) => assert_eq!(g.payload, msg),
        other => panic!("{other:?}"),
    }
}
