//! Property tests: `decode(encode(x)) == x` for every message type, encode
//! never produces something it cannot read back, and decoding arbitrary
//! bytes never panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipvs_sys::*;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;

const FAMILY: u16 = 0x1c;

fn raw_attrs(first_unknown: u16) -> impl Strategy<Value = Vec<RawAttr>> {
    vec(
        (
            first_unknown..0x3fffu16,
            prop_oneof![Just(0u16), Just(0x4000), Just(0x8000), Just(0xc000)],
            vec(any::<u8>(), 0..12),
        )
            .prop_map(|(k, f, value)| RawAttr { kind: k | f, value }),
        0..3,
    )
}

fn cstring() -> impl Strategy<Value = String> {
    "[^\u{0}]{0,20}"
}

fn family() -> impl Strategy<Value = Option<AddressFamily>> {
    prop_oneof![
        4 => Just(Some(AddressFamily::INET)),
        4 => Just(Some(AddressFamily::INET6)),
        1 => Just(None),
        1 => (0u16..64).prop_filter("other family", |f| *f != 2 && *f != 10).prop_map(|f| Some(AddressFamily(f))),
    ]
}

/// An address that can be encoded under `family`.
fn addr_for(family: Option<AddressFamily>) -> BoxedStrategy<Option<IpAddr>> {
    let v4 = any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o)));
    let v6 = any::<[u8; 16]>().prop_map(|o| IpAddr::V6(Ipv6Addr::from(o)));
    match family {
        Some(AddressFamily::INET) | None => of(v4).boxed(),
        Some(AddressFamily::INET6) => of(v6).boxed(),
        Some(_) => Just(None).boxed(),
    }
}

fn netmask_for(family: Option<AddressFamily>) -> BoxedStrategy<Option<Netmask>> {
    match family {
        Some(AddressFamily::INET) => {
            of(any::<[u8; 4]>().prop_map(|o| Netmask::V4(Ipv4Addr::from(o)))).boxed()
        }
        Some(AddressFamily::INET6) => of(any::<u32>().prop_map(Netmask::V6Prefix)).boxed(),
        _ => Just(None).boxed(),
    }
}

fn stats() -> impl Strategy<Value = Stats> {
    (any::<[u32; 8]>(), any::<[u64; 2]>(), raw_attrs(12)).prop_map(|(a, b, unknown)| Stats {
        conns: a[0],
        inpkts: a[1],
        outpkts: a[2],
        inbytes: b[0],
        outbytes: b[1],
        cps: a[3],
        inpps: a[4],
        outpps: a[5],
        inbps: a[6],
        outbps: a[7],
        unknown,
    })
}

fn stats64() -> impl Strategy<Value = Stats64> {
    (any::<[u64; 10]>(), raw_attrs(12)).prop_map(|(a, unknown)| Stats64 {
        conns: a[0],
        inpkts: a[1],
        outpkts: a[2],
        inbytes: a[3],
        outbytes: a[4],
        cps: a[5],
        inpps: a[6],
        outpps: a[7],
        inbps: a[8],
        outbps: a[9],
        unknown,
    })
}

fn service() -> impl Strategy<Value = ServiceAttrs> {
    family().prop_flat_map(|af| {
        (
            (
                of(any::<u16>().prop_map(Protocol)),
                addr_for(af),
                of(any::<u16>()),
                of(any::<u32>()),
                of(cstring()),
                of(any::<(u32, u32)>().prop_map(|(f, m)| SvcFlags {
                    flags: ServiceFlags(f),
                    mask: ServiceFlags(m),
                })),
            ),
            (
                of(any::<u32>()),
                netmask_for(af),
                of(stats()),
                of(cstring()),
                of(stats64()),
                raw_attrs(13),
            ),
        )
            .prop_map(
                move |(
                    (protocol, addr, port, fwmark, sched_name, flags),
                    (timeout, netmask, stats, pe_name, stats64, unknown),
                )| ServiceAttrs {
                    af,
                    protocol,
                    addr,
                    port,
                    fwmark,
                    sched_name,
                    flags,
                    timeout,
                    netmask,
                    stats,
                    pe_name,
                    stats64,
                    unknown,
                },
            )
    })
}

/// A destination that can be encoded inside a service of `service_family`.
fn dest(service_family: Option<AddressFamily>) -> impl Strategy<Value = DestAttrs> {
    prop_oneof![family(), Just(None)].prop_flat_map(move |own| {
        (
            (
                addr_for(own.or(service_family)),
                of(any::<u16>()),
                of(any::<u32>().prop_map(ForwardMethod)),
                of(any::<u32>()),
                of(any::<u32>()),
                of(any::<u32>()),
                of(any::<u32>()),
                of(any::<u32>()),
            ),
            (
                of(any::<u32>()),
                of(stats()),
                of(stats64()),
                of(any::<u8>().prop_map(TunnelType)),
                of(any::<u16>()),
                of(any::<u16>().prop_map(TunnelFlags)),
                raw_attrs(16),
            ),
        )
            .prop_map(
                move |(
                    (addr, port, fwd_method, weight, u_thresh, l_thresh, active_conns, inact_conns),
                    (persist_conns, stats, stats64, tun_type, tun_port, tun_flags, unknown),
                )| DestAttrs {
                    addr,
                    port,
                    fwd_method,
                    weight,
                    u_thresh,
                    l_thresh,
                    active_conns,
                    inact_conns,
                    persist_conns,
                    stats,
                    addr_family: own,
                    stats64,
                    tun_type,
                    tun_port,
                    tun_flags,
                    unknown,
                },
            )
    })
}

fn daemon() -> impl Strategy<Value = DaemonAttrs> {
    (
        of(any::<u32>().prop_map(DaemonState)),
        of(cstring()),
        of(any::<u32>()),
        of(any::<u16>()),
        of(any::<[u8; 4]>().prop_map(Ipv4Addr::from)),
        of(any::<[u8; 16]>().prop_map(Ipv6Addr::from)),
        of(any::<u16>()),
        of(any::<u8>()),
        raw_attrs(9),
    )
        .prop_map(
            |(
                state,
                mcast_ifn,
                sync_id,
                sync_maxlen,
                mcast_group,
                mcast_group6,
                mcast_port,
                mcast_ttl,
                unknown,
            )| {
                DaemonAttrs {
                    state,
                    mcast_ifn,
                    sync_id,
                    sync_maxlen,
                    mcast_group,
                    mcast_group6,
                    mcast_port,
                    mcast_ttl,
                    unknown,
                }
            },
        )
}

fn cmd_attrs() -> impl Strategy<Value = CmdAttrs> {
    of(service()).prop_flat_map(|service| {
        let af = service.as_ref().and_then(|s| s.af);
        (
            Just(service),
            // Without a service family, a destination needs its own.
            of(dest(af)),
            of(daemon()),
            of(any::<u32>()),
            of(any::<u32>()),
            of(any::<u32>()),
            raw_attrs(7),
        )
            .prop_map(
                |(service, dest, daemon, timeout_tcp, timeout_tcp_fin, timeout_udp, unknown)| {
                    CmdAttrs {
                        service,
                        dest,
                        daemon,
                        timeout_tcp,
                        timeout_tcp_fin,
                        timeout_udp,
                        unknown,
                    }
                },
            )
    })
}

fn info() -> impl Strategy<Value = InfoAttrs> {
    (of(any::<u32>()), of(any::<u32>()), raw_attrs(3)).prop_map(
        |(version, conn_tab_size, unknown)| InfoAttrs {
            version,
            conn_tab_size,
            unknown,
        },
    )
}

fn message() -> impl Strategy<Value = IpvsMessage> {
    prop_oneof![
        (
            proptest::sample::select(Command::ALL.to_vec())
                .prop_filter("not SET_INFO", |c| *c != Command::SetInfo),
            cmd_attrs()
        )
            .prop_map(|(c, a)| IpvsMessage::with_attrs(c, a)),
        info().prop_map(IpvsMessage::info),
    ]
}

/// Valid messages with any field, including inconsistent ones.
fn any_message() -> impl Strategy<Value = IpvsMessage> {
    let any_svc = (service(), family(), of(any::<[u8; 16]>())).prop_map(|(mut s, af, a)| {
        s.af = af;
        if let Some(a) = a {
            s.addr = Some(if a[0] & 1 == 0 {
                IpAddr::V4(Ipv4Addr::new(a[1], a[2], a[3], a[4]))
            } else {
                IpAddr::V6(Ipv6Addr::from(a))
            });
        }
        s
    });
    (
        proptest::sample::select(Command::ALL.to_vec()),
        of(any_svc),
        of(dest(Some(AddressFamily::INET6))),
        info(),
        any::<bool>(),
    )
        .prop_map(|(command, service, dest, info, use_info)| IpvsMessage {
            command,
            attrs: if use_info {
                MessageAttrs::Info(info)
            } else {
                MessageAttrs::Cmd(CmdAttrs {
                    service,
                    dest,
                    ..Default::default()
                })
            },
        })
}

fn encode(msg: &IpvsMessage, seq: u32) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::new();
    encode_request(&mut buf, msg, FAMILY, seq, msg.request_flags())?;
    Ok(buf)
}

fn decode_one(bytes: &[u8]) -> Reply {
    let mut r = decode_replies(bytes, FAMILY).unwrap();
    assert_eq!(r.len(), 1);
    r.pop().unwrap()
}

/// The destinations of dump `seq` in `datagrams`, decoded as whole messages (the
/// general reply path).
fn dests_via_messages(datagrams: &[&[u8]], seq: u32) -> Option<Vec<DestAttrs>> {
    use ipvs_sys::transport::exchange::{AckMode, Chunk};
    let mut chunk = Chunk::new(seq, 1, AckMode::EveryMessage);
    for d in datagrams {
        chunk.on_datagram(d, FAMILY).ok()?;
    }
    let (_, data) = chunk.finish();
    Some(
        data.into_iter()
            .filter_map(|(_, m)| m.dest().cloned())
            .collect(),
    )
}

/// The same through the destination dump fast path.
fn dests_via_dump(datagrams: &[&[u8]], seq: u32) -> Option<Vec<DestAttrs>> {
    use ipvs_sys::transport::dest_dump::{DestDump, decode_dest_entries};
    let mut dump = DestDump::new(seq);
    for d in datagrams {
        dump.on_datagram(d, FAMILY).ok()?;
    }
    let mut out = Vec::new();
    decode_dest_entries(dump.bytes(), FAMILY, seq, None, &mut out).ok()?;
    Some(out)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2048,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// decode(encode(x)) == x for every command, with the header intact.
    #[test]
    fn message_roundtrip(msg in message(), seq in any::<u32>()) {
        let bytes = encode(&msg, seq).unwrap();
        prop_assert_eq!(bytes.len(), encoded_len(&msg).unwrap());
        let reply = decode_one(&bytes);
        prop_assert_eq!(reply.header.seq, seq);
        prop_assert_eq!(reply.header.message_type, FAMILY);
        prop_assert_eq!(reply.header.flags, msg.request_flags());
        prop_assert_eq!(reply.header.len as usize, bytes.len());
        prop_assert_eq!(reply.payload, ReplyPayload::Ipvs(msg.clone()));
        // The slice encoder agrees.
        let mut slice = vec![0u8; bytes.len() + 3];
        let n = encode_request_into(&mut slice, &msg, FAMILY, seq, msg.request_flags()).unwrap();
        prop_assert_eq!(&slice[..n], &bytes[..]);
    }

    /// Each nest on its own.
    #[test]
    fn nest_roundtrips(s in service(), d in dest(None), dm in daemon(), st in stats(), st64 in stats64(), i in info()) {
        use netlink_packet_core::{Emitable, Parseable};
        fn bytes<T: Emitable>(t: &T) -> Vec<u8> {
            let mut b = vec![0; t.buffer_len()];
            t.emit(&mut b);
            b
        }
        prop_assert_eq!(ServiceAttrs::parse(&bytes(&s)[..]).unwrap(), s);
        prop_assert_eq!(DestAttrs::parse(&bytes(&d)[..]).unwrap(), d);
        prop_assert_eq!(DaemonAttrs::parse(&bytes(&dm)[..]).unwrap(), dm);
        prop_assert_eq!(Stats::parse(&bytes(&st)[..]).unwrap(), st);
        prop_assert_eq!(Stats64::parse(&bytes(&st64)[..]).unwrap(), st64);
        prop_assert_eq!(InfoAttrs::parse(&bytes(&i)[..]).unwrap(), i);
    }

    /// Whatever the encoder accepts, the decoder reads back unchanged.
    #[test]
    fn encode_ok_implies_roundtrip(msg in any_message()) {
        if let Ok(bytes) = encode(&msg, 1) {
            prop_assert_eq!(decode_one(&bytes).payload, ReplyPayload::Ipvs(msg));
        }
    }

    /// Batches of messages come back in order with their sequence numbers.
    #[test]
    fn batch_roundtrip(msgs in vec(message(), 0..20), first in any::<u32>()) {
        let mut batch = BatchEncoder::new(FAMILY, first);
        let seqs: Vec<u32> = msgs.iter().map(|m| batch.push(m).unwrap()).collect();
        let replies = decode_replies(batch.as_bytes(), FAMILY).unwrap();
        prop_assert_eq!(replies.len(), msgs.len());
        for ((r, m), s) in replies.iter().zip(&msgs).zip(&seqs) {
            prop_assert_eq!(r.header.seq, *s);
            prop_assert_eq!(&r.payload, &ReplyPayload::Ipvs(m.clone()));
        }
    }

    /// Decoding arbitrary bytes never panics, and what decodes re-encodes
    /// to something that decodes to the same value.
    #[test]
    fn decode_arbitrary_bytes(cmd in any::<u8>(), attrs in vec(any::<u8>(), 0..256)) {
        if let Ok(msg) = IpvsMessage::decode(cmd, &attrs) {
            let bytes = encode(&msg, 1).unwrap();
            prop_assert_eq!(decode_one(&bytes).payload, ReplyPayload::Ipvs(msg));
        }
        let _ = decode_replies(&attrs, FAMILY);
        let _ = Replies::new(&attrs, FAMILY).count();
    }

    /// Mutating valid encodings (bit flips, truncation) never panics either.
    #[test]
    fn decode_mutated_messages(msg in message(), flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4), cut in any::<prop::sample::Index>()) {
        let mut bytes = encode(&msg, 1).unwrap();
        for (i, x) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= x;
        }
        let cut = cut.index(bytes.len() + 1);
        for r in Replies::new(&bytes[..cut], FAMILY).flatten() {
            if let ReplyPayload::Ipvs(m) = r.payload {
                let again = encode(&m, 1).unwrap();
                prop_assert_eq!(decode_one(&again).payload, ReplyPayload::Ipvs(m));
            }
        }
        if bytes.len() > 20 {
            let _ = IpvsMessage::decode(bytes[16], &bytes[20..cut.max(20)]);
        }
    }

    /// A destination dump decoded through the fast path (headers read as the replies
    /// arrive, entries decoded straight into `DestAttrs` afterwards) gives the same
    /// destinations as decoding whole messages, over several datagrams, with replies to
    /// other requests mixed in.
    #[test]
    fn dest_dump_fast_path_matches_whole_messages(
        entries in vec((message(), any::<bool>()), 0..8),
        split in any::<prop::sample::Index>(),
        seq in any::<u32>(),
    ) {
        let cut = split.index(entries.len() + 1);
        let mut first = Vec::new();
        let mut second = Vec::new();
        for (i, (m, stray)) in entries.iter().enumerate() {
            let buf = if i < cut { &mut first } else { &mut second };
            let s = if *stray { seq.wrapping_add(1) } else { seq };
            encode_message(buf, m, FAMILY, 0x2, s, 0).unwrap();
        }
        encode_done(&mut second, seq, 0);
        let datagrams = [&first[..], &second[..]];
        let want = dests_via_messages(&datagrams, seq).unwrap();
        prop_assert_eq!(dests_via_dump(&datagrams, seq), Some(want));
    }

    /// On damaged replies the fast path never panics, and whatever the general path
    /// decodes, it decodes the same.
    #[test]
    fn dest_dump_fast_path_on_mutated_replies(
        msgs in vec(message(), 1..4),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = Vec::new();
        for m in &msgs {
            encode_message(&mut bytes, m, FAMILY, 0x2, 5, 0).unwrap();
        }
        encode_done(&mut bytes, 5, 0);
        for (i, x) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= x;
        }
        let cut = cut.index(bytes.len() + 1);
        let datagrams = [&bytes[..cut]];
        let fast = dests_via_dump(&datagrams, 5);
        if let Some(want) = dests_via_messages(&datagrams, 5) {
            prop_assert_eq!(fast, Some(want));
        }
    }
}
