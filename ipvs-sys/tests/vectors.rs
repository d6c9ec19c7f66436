//! Byte-exact test vectors in `tests/vectors/*.hex`.
//!
//! Each `.hex` file holds one or more complete netlink messages (starting at
//! `struct nlmsghdr`) as hex; `#` starts a comment, whitespace is ignored.
//! The vectors were assembled field by field from the kernel's struct
//! layouts (see `tests/vectors/assemble.py`), independently of the encoder.
//!
//! To add a vector (e.g. a capture from the QEMU lab's nlmon device: strip
//! the pcap/cooked header and keep the netlink bytes), drop `NAME.hex` into
//! `tests/vectors/` and add a `NAME` row to [`table`] with the typed value it
//! must decode to. Every file needs a row and every row a file.
//!
//! Checks:
//! * `Request`: one message; decodes to the expected message, and encoding
//!   the expected message with the file's header gives the file's bytes
//!   (if `exact`).
//! * `Replies`: decodes to the expected replies; re-encoding them gives the
//!   file's bytes (if `exact`).
#![cfg(target_endian = "little")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipvs_sys::*;

const FAMILY: u16 = 0x1c;
const PID: u32 = 0x1234;
const REQ_ACK: u16 = 0x0005;
const REQ_DUMP: u16 = 0x0301;
const MULTI: u16 = 0x0002;

#[allow(clippy::large_enum_variant)]
enum Check {
    Request { msg: IpvsMessage, exact: bool },
    Replies { replies: Vec<Reply>, exact: bool },
}

fn parse_hex(text: &str) -> Vec<u8> {
    let digits: String = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
        .collect();
    assert_eq!(digits.len() % 2, 0, "odd number of hex digits");
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse::<Ipv4Addr>().unwrap())
}

fn svc_key() -> ServiceAttrs {
    ServiceAttrs {
        af: Some(AddressFamily::INET),
        protocol: Some(Protocol::TCP),
        addr: Some(v4("192.0.2.10")),
        port: Some(80),
        ..Default::default()
    }
}

fn ipvsadm_service(sched: &str) -> ServiceAttrs {
    ServiceAttrs {
        sched_name: Some(sched.into()),
        flags: Some(SvcFlags {
            flags: ServiceFlags::EMPTY,
            mask: ServiceFlags::ALL,
        }),
        timeout: Some(0),
        netmask: Some(Netmask::V4(Ipv4Addr::BROADCAST)),
        ..svc_key()
    }
}

fn dest_route() -> DestAttrs {
    DestAttrs {
        addr_family: Some(AddressFamily::INET),
        addr: Some(v4("198.51.100.7")),
        port: Some(8080),
        fwd_method: Some(ForwardMethod::ROUTE),
        weight: Some(1),
        u_thresh: Some(0),
        l_thresh: Some(0),
        ..Default::default()
    }
}

fn stats32(base: u32) -> Stats {
    Stats {
        conns: base + 1,
        inpkts: base + 2,
        outpkts: base + 3,
        inbytes: (1 << 32) + u64::from(base) + 4,
        outbytes: u64::from(base) + 5,
        cps: base + 6,
        inpps: base + 7,
        outpps: base + 8,
        inbps: base + 9,
        outbps: base + 10,
        unknown: vec![],
    }
}

fn stats64(base: u64) -> Stats64 {
    let b = (1 << 40) + base;
    Stats64 {
        conns: b + 1,
        inpkts: b + 2,
        outpkts: b + 3,
        inbytes: b + 4,
        outbytes: b + 5,
        cps: b + 6,
        inpps: b + 7,
        outpps: b + 8,
        inbps: b + 9,
        outbps: b + 10,
        unknown: vec![],
    }
}

fn hdr(len: u32, message_type: u16, flags: u16, seq: u32, port: u32) -> NlHeader {
    NlHeader {
        len,
        message_type,
        flags,
        seq,
        port,
    }
}

fn ipvs(len: u32, flags: u16, seq: u32, msg: IpvsMessage) -> Reply {
    Reply {
        header: hdr(len, FAMILY, flags, seq, PID),
        payload: ReplyPayload::Ipvs(msg),
    }
}

fn done(seq: u32) -> Reply {
    Reply {
        header: hdr(20, 3, MULTI, seq, PID),
        payload: ReplyPayload::Done { error: 0 },
    }
}

fn ack(seq: u32) -> Reply {
    Reply {
        header: hdr(36, 2, 0x100, seq, PID),
        payload: ReplyPayload::Ack,
    }
}

fn req(msg: IpvsMessage) -> Check {
    Check::Request { msg, exact: true }
}

fn table() -> Vec<(&'static str, Check)> {
    let dumped_service = ServiceAttrs {
        sched_name: Some("rr".into()),
        flags: Some(SvcFlags {
            flags: ServiceFlags::HASHED,
            mask: ServiceFlags::ALL,
        }),
        timeout: Some(0),
        netmask: Some(Netmask::V4(Ipv4Addr::BROADCAST)),
        stats: Some(stats32(100)),
        stats64: Some(stats64(100)),
        ..svc_key()
    };
    let dumped_fwmark6 = ServiceAttrs {
        af: Some(AddressFamily::INET6),
        fwmark: Some(7),
        sched_name: Some("mh".into()),
        pe_name: Some("sip".into()),
        flags: Some(SvcFlags {
            flags: ServiceFlags::PERSISTENT
                | ServiceFlags::HASHED
                | ServiceFlags::SCHED_MH_FALLBACK
                | ServiceFlags::SCHED_MH_PORT,
            mask: ServiceFlags::ALL,
        }),
        timeout: Some(360),
        netmask: Some(Netmask::V6Prefix(64)),
        stats: Some(stats32(0)),
        stats64: Some(stats64(0)),
        ..Default::default()
    };
    let dumped_dest = DestAttrs {
        tun_type: Some(TunnelType::IPIP),
        tun_port: Some(0),
        tun_flags: Some(TunnelFlags::NOCSUM),
        active_conns: Some(3),
        inact_conns: Some(4),
        persist_conns: Some(5),
        stats: Some(stats32(200)),
        stats64: Some(stats64(200)),
        ..dest_route()
    };
    let master = DaemonAttrs {
        state: Some(DaemonState::MASTER),
        mcast_ifn: Some("eth0".into()),
        sync_id: Some(9),
        sync_maxlen: Some(1472),
        mcast_group: Some(Ipv4Addr::new(224, 0, 0, 81)),
        mcast_port: Some(8848),
        mcast_ttl: Some(1),
        ..Default::default()
    };
    let backup = DaemonAttrs {
        state: Some(DaemonState::BACKUP),
        mcast_ifn: Some("bond0.100".into()),
        sync_id: Some(255),
        sync_maxlen: Some(8952),
        mcast_group6: Some("ff02::51".parse::<Ipv6Addr>().unwrap()),
        mcast_port: Some(8848),
        mcast_ttl: Some(64),
        ..Default::default()
    };
    let mut persistent = ipvsadm_service("wlc");
    persistent.flags = Some(SvcFlags::set_all(ServiceFlags::PERSISTENT));
    persistent.timeout = Some(300);

    vec![
        (
            "ipvsadm_add_service_tcp",
            req(IpvsMessage::new_service(ipvsadm_service("rr"))),
        ),
        (
            "ipvsadm_add_service_nested_flag",
            Check::Request {
                msg: IpvsMessage::new_service(ipvsadm_service("rr")),
                exact: false,
            },
        ),
        (
            "ipvsadm_edit_service_persistent",
            req(IpvsMessage::set_service(persistent)),
        ),
        (
            "del_service_fwmark6",
            req(IpvsMessage::del_service(ServiceAttrs::fwmark_key(
                AddressFamily::INET6,
                7,
            ))),
        ),
        (
            "new_dest_route",
            req(IpvsMessage::new_dest(svc_key(), dest_route())),
        ),
        (
            "ipvsadm_add_dest_route",
            Check::Request {
                msg: IpvsMessage::new_dest(ipvsadm_service("wlc"), dest_route()),
                exact: true,
            },
        ),
        (
            "set_dest_gue6",
            req(IpvsMessage::set_dest(
                svc_key(),
                DestAttrs {
                    addr: Some("2001:db8::7".parse().unwrap()),
                    addr_family: Some(AddressFamily::INET6),
                    port: Some(0),
                    fwd_method: Some(ForwardMethod::TUNNEL),
                    weight: Some(MAX_WEIGHT),
                    tun_type: Some(TunnelType::GUE),
                    tun_port: Some(6080),
                    tun_flags: Some(TunnelFlags::CSUM),
                    u_thresh: Some(100),
                    l_thresh: Some(10),
                    ..Default::default()
                },
            )),
        ),
        (
            "del_dest_no_af",
            req(IpvsMessage::del_dest(
                svc_key(),
                DestAttrs {
                    addr: Some(v4("198.51.100.7")),
                    port: Some(8080),
                    ..Default::default()
                },
            )),
        ),
        ("get_service_dump", req(IpvsMessage::dump_services())),
        ("get_service_one", req(IpvsMessage::get_service(svc_key()))),
        ("get_dest_dump", req(IpvsMessage::dump_dests(svc_key()))),
        ("get_daemon_dump", req(IpvsMessage::dump_daemons())),
        ("get_config", req(IpvsMessage::get_config())),
        ("get_info", req(IpvsMessage::get_info())),
        ("zero_all", req(IpvsMessage::zero(None))),
        ("zero_service", req(IpvsMessage::zero(Some(svc_key())))),
        ("flush", req(IpvsMessage::flush())),
        (
            "set_config",
            req(IpvsMessage::set_config(Some(900), Some(120), Some(300))),
        ),
        (
            "new_daemon",
            Check::Request {
                // libipvs puts MCAST_PORT/TTL before the group, as the kernel does.
                msg: IpvsMessage::new_daemon(master.clone()),
                exact: true,
            },
        ),
        (
            "del_daemon",
            req(IpvsMessage::del_daemon(DaemonAttrs {
                state: Some(DaemonState::BACKUP),
                ..Default::default()
            })),
        ),
        (
            "reply_dump_services",
            Check::Replies {
                replies: vec![
                    ipvs(
                        20 + 4 + 84 - 4 + 92 + 124,
                        MULTI,
                        7,
                        IpvsMessage::new_service(dumped_service),
                    ),
                    ipvs(
                        20 + 4 + 8 + 8 + 8 + 8 + 12 + 8 + 8 + 92 + 124,
                        MULTI,
                        7,
                        IpvsMessage::new_service(dumped_fwmark6),
                    ),
                    done(7),
                ],
                exact: true,
            },
        ),
        (
            "reply_dump_dests",
            Check::Replies {
                replies: vec![
                    ipvs(
                        20 + 4 + 20 + 8 * 12 + 92 + 124,
                        MULTI,
                        9,
                        IpvsMessage::with_attrs(
                            Command::NewDest,
                            CmdAttrs {
                                dest: Some(dumped_dest),
                                ..Default::default()
                            },
                        ),
                    ),
                    done(9),
                ],
                exact: true,
            },
        ),
        (
            "reply_dump_dests_missing_service",
            Check::Replies {
                replies: vec![done(9)],
                exact: true,
            },
        ),
        (
            "reply_dest_stats_pad",
            Check::Replies {
                replies: vec![ipvs(
                    20 + 4 + 20 + 8 + 8 + 124 + 40,
                    MULTI,
                    9,
                    IpvsMessage::with_attrs(
                        Command::NewDest,
                        CmdAttrs {
                            dest: Some(DestAttrs {
                                addr: Some(v4("198.51.100.7")),
                                port: Some(8080),
                                addr_family: Some(AddressFamily::INET),
                                stats64: Some(stats64(200)),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    ),
                )],
                // The PAD attributes are dropped on decode.
                exact: false,
            },
        ),
        (
            "reply_dump_daemons",
            Check::Replies {
                replies: vec![
                    ipvs(84, MULTI, 10, IpvsMessage::new_daemon(master)),
                    ipvs(100, MULTI, 10, IpvsMessage::new_daemon(backup)),
                    done(10),
                ],
                exact: true,
            },
        ),
        (
            "reply_get_config",
            Check::Replies {
                replies: vec![
                    ipvs(
                        44,
                        0,
                        11,
                        IpvsMessage::with_attrs(
                            Command::SetConfig,
                            CmdAttrs {
                                timeout_tcp: Some(900),
                                timeout_tcp_fin: Some(120),
                                timeout_udp: Some(300),
                                ..Default::default()
                            },
                        ),
                    ),
                    ack(11),
                ],
                exact: true,
            },
        ),
        (
            "reply_get_info",
            Check::Replies {
                replies: vec![
                    ipvs(
                        36,
                        0,
                        12,
                        IpvsMessage::info(InfoAttrs {
                            version: Some(0x010201),
                            conn_tab_size: Some(4096),
                            unknown: vec![],
                        }),
                    ),
                    ack(12),
                ],
                exact: true,
            },
        ),
        (
            "reply_batch_acks",
            Check::Replies {
                replies: vec![
                    ack(20),
                    Reply {
                        header: hdr(56, 2, 0x300, 21, PID),
                        payload: ReplyPayload::Error(NetlinkError {
                            errno: 17,
                            request: Some(hdr(104, FAMILY, REQ_ACK, 21, PID)),
                            ext_ack_msg: Some("Service exists".into()),
                            ext_ack_offset: None,
                        }),
                    },
                    Reply {
                        header: hdr(40, 2, 0, 22, PID),
                        payload: ReplyPayload::Error(NetlinkError {
                            errno: 3,
                            request: Some(hdr(20, FAMILY, REQ_ACK, 22, 0)),
                            ext_ack_msg: None,
                            ext_ack_offset: None,
                        }),
                    },
                ],
                // Extended ACKs and uncapped echoes are not re-encoded.
                exact: false,
            },
        ),
    ]
}

fn vector_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn load(name: &str) -> Vec<u8> {
    let path = vector_dir().join(format!("{name}.hex"));
    parse_hex(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}")))
}

/// Re-encode decoded replies the way the kernel would send them.
fn reencode(replies: &[Reply]) -> Vec<u8> {
    let mut buf = Vec::new();
    for r in replies {
        let h = r.header;
        match &r.payload {
            ReplyPayload::Ipvs(m) => {
                encode_message(&mut buf, m, h.message_type, h.flags, h.seq, h.port).unwrap();
            }
            ReplyPayload::Done { error: 0 } => encode_done(&mut buf, h.seq, h.port),
            other => panic!("cannot re-encode {other:?}"),
        }
    }
    buf
}

fn check_vector(name: &str, check: &Check) {
    let bytes = load(name);
    match check {
        Check::Request { msg, exact } => {
            let replies = decode_replies(&bytes, FAMILY).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(replies.len(), 1, "{name}: one message");
            let r = &replies[0];
            assert_eq!(
                r.payload,
                ReplyPayload::Ipvs(msg.clone()),
                "{name}: decoded value"
            );
            assert_eq!(r.header.len as usize, bytes.len(), "{name}: nlmsg_len");
            let expected_flags = if msg.is_dump() { REQ_DUMP } else { REQ_ACK };
            assert_eq!(r.header.flags, expected_flags, "{name}: vector flags");
            assert_eq!(
                msg.request_flags(),
                expected_flags,
                "{name}: request_flags()"
            );
            if *exact {
                let mut out = Vec::new();
                encode_request(&mut out, msg, FAMILY, r.header.seq, msg.request_flags()).unwrap();
                assert_eq!(hex(&out), hex(&bytes), "{name}: encode_request bytes");
                let mut slice = vec![0u8; out.len()];
                let n =
                    encode_request_into(&mut slice, msg, FAMILY, r.header.seq, msg.request_flags())
                        .unwrap();
                assert_eq!(&slice[..n], &bytes[..], "{name}: encode_request_into bytes");
            }
        }
        Check::Replies { replies, exact } => {
            let got = decode_replies(&bytes, FAMILY).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(&got, replies, "{name}: decoded replies");
            if *exact {
                let mut out = Vec::new();
                for (i, r) in replies.iter().enumerate() {
                    if r.payload == ReplyPayload::Ack {
                        // The request echoed in the vector's ACK.
                        let echoed = NlHeader::decode(&bytes[out.len() + 20..]).unwrap();
                        encode_ack(&mut out, &echoed, 0, r.header.port);
                    } else {
                        out.extend(reencode(std::slice::from_ref(&replies[i])));
                    }
                }
                assert_eq!(hex(&out), hex(&bytes), "{name}: re-encoded bytes");
            }
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn all_vectors() {
    let table = table();
    let mut names = BTreeSet::new();
    for (name, check) in &table {
        assert!(names.insert(*name), "duplicate row {name}");
        check_vector(name, check);
    }
    let files: BTreeSet<String> = std::fs::read_dir(vector_dir())
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "hex").then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    let rows: BTreeSet<String> = names.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        files, rows,
        "every .hex file needs a table row and vice versa"
    );
}

/// Every command appears in at least one vector.
#[test]
fn vectors_cover_every_command() {
    let mut seen = BTreeSet::new();
    for (name, _) in table() {
        for r in decode_replies(&load(name), FAMILY).unwrap() {
            if let ReplyPayload::Ipvs(m) = r.payload {
                seen.insert(m.command as u8);
            }
        }
    }
    let all: BTreeSet<u8> = Command::ALL.iter().map(|c| *c as u8).collect();
    assert_eq!(seen, all);
}

/// The batch buffer is the concatenation of the individual vectors.
#[test]
fn batch_matches_vectors() {
    let mut batch = BatchEncoder::new(FAMILY, 1);
    let mut expected = Vec::new();
    let rows = [
        (
            "ipvsadm_add_service_tcp",
            IpvsMessage::new_service(ipvsadm_service("rr")),
        ),
        ("flush", IpvsMessage::flush()),
    ];
    for (i, (name, msg)) in rows.iter().enumerate() {
        let mut bytes = load(name);
        // Renumber the vector to the batch's sequence.
        bytes[8..12].copy_from_slice(&(1 + i as u32).to_ne_bytes());
        expected.extend(bytes);
        batch.push(msg).unwrap();
    }
    assert_eq!(batch.as_bytes(), &expected[..]);
}

/// Every attribute of every nest appears in at least one vector.
#[test]
fn vectors_cover_every_attribute() {
    let mut seen = BTreeSet::new();
    let mut mark = |name: &'static str, present: bool| {
        if present {
            seen.insert(name);
        }
    };
    for (name, _) in table() {
        for r in decode_replies(&load(name), FAMILY).unwrap() {
            let ReplyPayload::Ipvs(m) = r.payload else {
                continue;
            };
            if let Some(i) = m.info_attrs() {
                mark("INFO_ATTR_VERSION", i.version.is_some());
                mark("INFO_ATTR_CONN_TAB_SIZE", i.conn_tab_size.is_some());
            }
            let Some(a) = m.cmd_attrs() else { continue };
            mark("CMD_ATTR_TIMEOUT_TCP", a.timeout_tcp.is_some());
            mark("CMD_ATTR_TIMEOUT_TCP_FIN", a.timeout_tcp_fin.is_some());
            mark("CMD_ATTR_TIMEOUT_UDP", a.timeout_udp.is_some());
            if let Some(s) = &a.service {
                mark("CMD_ATTR_SERVICE", true);
                mark("SVC_ATTR_AF", s.af.is_some());
                mark("SVC_ATTR_PROTOCOL", s.protocol.is_some());
                mark("SVC_ATTR_ADDR", s.addr.is_some());
                mark("SVC_ATTR_PORT", s.port.is_some());
                mark("SVC_ATTR_FWMARK", s.fwmark.is_some());
                mark("SVC_ATTR_SCHED_NAME", s.sched_name.is_some());
                mark("SVC_ATTR_FLAGS", s.flags.is_some());
                mark("SVC_ATTR_TIMEOUT", s.timeout.is_some());
                mark("SVC_ATTR_NETMASK", s.netmask.is_some());
                mark("SVC_ATTR_STATS", s.stats.is_some());
                mark("SVC_ATTR_PE_NAME", s.pe_name.is_some());
                mark("SVC_ATTR_STATS64", s.stats64.is_some());
            }
            if let Some(d) = &a.dest {
                mark("CMD_ATTR_DEST", true);
                mark("DEST_ATTR_ADDR", d.addr.is_some());
                mark("DEST_ATTR_PORT", d.port.is_some());
                mark("DEST_ATTR_FWD_METHOD", d.fwd_method.is_some());
                mark("DEST_ATTR_WEIGHT", d.weight.is_some());
                mark("DEST_ATTR_U_THRESH", d.u_thresh.is_some());
                mark("DEST_ATTR_L_THRESH", d.l_thresh.is_some());
                mark("DEST_ATTR_ACTIVE_CONNS", d.active_conns.is_some());
                mark("DEST_ATTR_INACT_CONNS", d.inact_conns.is_some());
                mark("DEST_ATTR_PERSIST_CONNS", d.persist_conns.is_some());
                mark("DEST_ATTR_STATS", d.stats.is_some());
                mark("DEST_ATTR_ADDR_FAMILY", d.addr_family.is_some());
                mark("DEST_ATTR_STATS64", d.stats64.is_some());
                mark("DEST_ATTR_TUN_TYPE", d.tun_type.is_some());
                mark("DEST_ATTR_TUN_PORT", d.tun_port.is_some());
                mark("DEST_ATTR_TUN_FLAGS", d.tun_flags.is_some());
            }
            if let Some(d) = &a.daemon {
                mark("CMD_ATTR_DAEMON", true);
                mark("DAEMON_ATTR_STATE", d.state.is_some());
                mark("DAEMON_ATTR_MCAST_IFN", d.mcast_ifn.is_some());
                mark("DAEMON_ATTR_SYNC_ID", d.sync_id.is_some());
                mark("DAEMON_ATTR_SYNC_MAXLEN", d.sync_maxlen.is_some());
                mark("DAEMON_ATTR_MCAST_GROUP", d.mcast_group.is_some());
                mark("DAEMON_ATTR_MCAST_GROUP6", d.mcast_group6.is_some());
                mark("DAEMON_ATTR_MCAST_PORT", d.mcast_port.is_some());
                mark("DAEMON_ATTR_MCAST_TTL", d.mcast_ttl.is_some());
            }
        }
    }
    // CMD 6 + SVC 12 + DEST 15 + DAEMON 8 + INFO 2 (the ten STATS attributes
    // are always all present in a stats nest).
    assert_eq!(seen.len(), 6 + 12 + 15 + 8 + 2, "{seen:?}");
    // The PAD attribute appears in reply_dest_stats_pad.
    assert!(
        load("reply_dest_stats_pad")
            .windows(4)
            .any(|w| w == [4, 0, 11, 0])
    );
}
