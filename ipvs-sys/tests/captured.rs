//! Vectors captured from the real kernel and the real ipvsadm (`tests/captured/`).
//!
//! Every IPVS frame ipvsadm sent must decode and re-encode to the same bytes; every
//! frame the kernel sent must decode, and its IPVS messages re-encode to the same bytes.
//! A few commands are also checked for what they mean.
#![cfg(target_endian = "little")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ipvs_sys::*;

/// `nlctrl`, the generic-netlink controller.
const GENL_ID_CTRL: u16 = 0x10;

struct Frame {
    to_kernel: bool,
    bytes: Vec<u8>,
}

struct Block {
    command: String,
    frames: Vec<Frame>,
    failed: Option<String>,
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn blocks() -> Vec<Block> {
    let text = include_str!("captured/ipvsadm.txt");
    let mut out: Vec<Block> = Vec::new();
    for line in text.lines() {
        if let Some(cmd) = line.strip_prefix("$ ") {
            out.push(Block {
                command: cmd.to_string(),
                frames: Vec::new(),
                failed: None,
            });
        } else if let Some(h) = line.strip_prefix("> ") {
            out.last_mut().unwrap().frames.push(Frame {
                to_kernel: true,
                bytes: hex(h),
            });
        } else if let Some(h) = line.strip_prefix("< ") {
            out.last_mut().unwrap().frames.push(Frame {
                to_kernel: false,
                bytes: hex(h),
            });
        } else if let Some(e) = line.strip_prefix("# exit ") {
            if let Some(b) = out.last_mut() {
                b.failed = Some(e.to_string());
            }
        }
    }
    out
}

fn family_id(blocks: &[Block]) -> u16 {
    // The first frame of type neither nlctrl nor a netlink control message.
    blocks
        .iter()
        .flat_map(|b| &b.frames)
        .map(|f| NlHeader::decode(&f.bytes).unwrap().message_type)
        .find(|t| *t > GENL_ID_CTRL)
        .expect("no IPVS frame")
}

/// The IPVS requests a command sent, decoded.
fn requests(block: &Block, family: u16) -> Vec<IpvsMessage> {
    block
        .frames
        .iter()
        .filter(|f| f.to_kernel)
        .filter(|f| NlHeader::decode(&f.bytes).unwrap().message_type == family)
        .map(|f| IpvsMessage::decode_genl(&f.bytes[16..], None).unwrap())
        .collect()
}

/// The IPVS messages the kernel sent back to a command.
fn replies(block: &Block, family: u16) -> Vec<Reply> {
    block
        .frames
        .iter()
        .filter(|f| !f.to_kernel)
        .flat_map(|f| {
            Replies::new(&f.bytes, family)
                .map(Result::unwrap)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn block<'a>(blocks: &'a [Block], command: &str) -> &'a Block {
    blocks
        .iter()
        .find(|b| b.command == command)
        .unwrap_or_else(|| panic!("no block {command}"))
}

#[test]
fn the_capture_covers_every_command() {
    let blocks = blocks();
    let family = family_id(&blocks);
    let mut seen = std::collections::BTreeSet::new();
    for b in &blocks {
        for m in requests(b, family) {
            seen.insert(m.command as u8);
        }
    }
    // Every request command ipvsadm can send (SET_INFO is only a reply).
    for c in Command::ALL {
        if c != Command::SetInfo {
            assert!(seen.contains(&(c as u8)), "no captured request for {c:?}");
        }
    }
}

#[test]
fn every_ipvsadm_request_reencodes_byte_exact() {
    let blocks = blocks();
    let family = family_id(&blocks);
    let mut n = 0;
    for b in &blocks {
        for f in b.frames.iter().filter(|f| f.to_kernel) {
            let h = NlHeader::decode(&f.bytes).unwrap();
            if h.message_type != family {
                continue;
            }
            let msg = IpvsMessage::decode_genl(&f.bytes[16..], None)
                .unwrap_or_else(|e| panic!("{}: decode: {e}", b.command));
            let mut out = Vec::new();
            encode_message(&mut out, &msg, h.message_type, h.flags, h.seq, h.port).unwrap();
            assert_eq!(
                out.len(),
                f.bytes.len(),
                "{}: length differs: {msg:?}",
                b.command
            );
            assert_eq!(
                canonical(&out),
                canonical(&f.bytes),
                "{}: re-encoded request differs",
                b.command
            );
            n += 1;
        }
    }
    assert!(n > 60, "only {n} requests");
}

/// The message in a canonical form: the NLA_F_NESTED bit cleared in the first-level
/// attribute headers, and the attributes inside each first-level nest sorted by type.
///
/// ipvsadm (libnl) marks its nests with NLA_F_NESTED and puts a destination's address
/// family first; the kernel does neither, and our encoder writes the kernel's form (the
/// kernel's own replies re-encode byte for byte, see below). Those are the only
/// differences allowed between what ipvsadm sent and what we encode from it, besides the
/// bytes after an IPv4 destination address that ipvsadm leaves uninitialised.
fn canonical(msg: &[u8]) -> Vec<u8> {
    const NLA_F_NESTED: u16 = 0x8000;
    let attrs = |buf: &[u8]| -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos + 4 <= buf.len() {
            let len = u16::from_ne_bytes([buf[pos], buf[pos + 1]]) as usize;
            let kind = u16::from_ne_bytes([buf[pos + 2], buf[pos + 3]]);
            assert!(len >= 4 && pos + len <= buf.len(), "bad attribute at {pos}");
            out.push((kind, buf[pos..pos + len].to_vec()));
            pos += len.next_multiple_of(4);
        }
        out
    };
    let mut out = msg[..20].to_vec();
    for (kind, attr) in attrs(&msg[20..]) {
        let mut head = attr[..4].to_vec();
        head[2..4].copy_from_slice(&(kind & !NLA_F_NESTED).to_ne_bytes());
        out.extend_from_slice(&head);
        if kind & NLA_F_NESTED != 0 || matches!(kind, 1..=3) {
            let mut inner = attrs(&attr[4..]);
            inner.sort_by_key(|(k, _)| *k);
            // An IPv4 destination behind an IPv6 service: ipvsadm leaves the service's
            // address bytes after the 4 that count; the kernel reads only those 4.
            let af = inner.iter().find(|(k, _)| *k == 11).map(|(_, a)| a[4]);
            if kind & !NLA_F_NESTED == 2 && af == Some(2) {
                for (k, a) in &mut inner {
                    if *k == 1 && a.len() == 20 {
                        a[8..20].fill(0);
                    }
                }
            }
            for (_, a) in inner {
                out.extend_from_slice(&a);
                out.resize(out.len().next_multiple_of(4), 0);
            }
        } else {
            out.extend_from_slice(&attr[4..]);
        }
        out.resize(out.len().next_multiple_of(4), 0);
    }
    out
}

#[test]
fn every_kernel_reply_decodes_and_its_ipvs_messages_reencode_byte_exact() {
    let blocks = blocks();
    let family = family_id(&blocks);
    let mut n = 0;
    for b in &blocks {
        for f in b.frames.iter().filter(|f| !f.to_kernel) {
            let mut pos = 0;
            for r in Replies::new(&f.bytes, family) {
                let r = r.unwrap_or_else(|e| panic!("{}: decode reply: {e}", b.command));
                let len = r.header.len as usize;
                let original = &f.bytes[pos..pos + len];
                pos += len.next_multiple_of(4);
                let ReplyPayload::Ipvs(msg) = &r.payload else {
                    continue;
                };
                let h = r.header;
                let mut out = Vec::new();
                encode_message(&mut out, msg, h.message_type, h.flags, h.seq, h.port).unwrap();
                assert_eq!(
                    out, original,
                    "{}: re-encoded kernel message differs",
                    b.command
                );
                n += 1;
            }
        }
    }
    assert!(n > 30, "only {n} kernel messages");
}

#[test]
fn add_service_means_what_ipvsadm_said() {
    let blocks = blocks();
    let family = family_id(&blocks);
    let req = requests(
        block(
            &blocks,
            "ipvsadm -A -t [2001:db8::10]:443 -s wlc -p 600 -M 64",
        ),
        family,
    );
    let svc = req
        .iter()
        .find(|m| m.command == Command::NewService)
        .unwrap()
        .service()
        .unwrap();
    assert_eq!(svc.af, Some(AddressFamily::INET6));
    assert_eq!(svc.protocol, Some(Protocol::TCP));
    assert_eq!(svc.addr, Some("2001:db8::10".parse().unwrap()));
    assert_eq!(svc.port, Some(443));
    assert_eq!(svc.sched_name.as_deref(), Some("wlc"));
    assert_eq!(svc.timeout, Some(600));
    assert_eq!(svc.netmask, Some(Netmask::V6Prefix(64)));
    assert!(svc.flags.unwrap().flags.contains(ServiceFlags::PERSISTENT));

    let req = requests(
        block(&blocks, "ipvsadm -A -f 8 -6 -s mh -b mh-fallback,mh-port"),
        family,
    );
    let svc = req
        .iter()
        .find(|m| m.command == Command::NewService)
        .unwrap()
        .service()
        .unwrap();
    assert_eq!((svc.af, svc.fwmark), (Some(AddressFamily::INET6), Some(8)));
    let flags = svc.flags.unwrap().flags;
    assert!(
        flags.contains(ServiceFlags::SCHED_MH_FALLBACK)
            && flags.contains(ServiceFlags::SCHED_MH_PORT)
    );
}

#[test]
fn add_dest_means_what_ipvsadm_said() {
    let blocks = blocks();
    let family = family_id(&blocks);
    let cmd =
        "ipvsadm -a -t 192.0.2.10:80 -r 10.0.0.14:80 -i --tun-type gue --tun-port 6080 --tun-csum";
    let req = requests(block(&blocks, cmd), family);
    let d = req
        .iter()
        .find(|m| m.command == Command::NewDest)
        .unwrap()
        .dest()
        .unwrap();
    assert_eq!(d.addr, Some("10.0.0.14".parse().unwrap()));
    assert_eq!(d.fwd_method, Some(ForwardMethod::TUNNEL));
    assert_eq!(d.tun_type, Some(TunnelType::GUE));
    assert_eq!(d.tun_port, Some(6080));
    assert_eq!(d.tun_flags, Some(TunnelFlags::CSUM));

    let cmd = "ipvsadm -a -t [2001:db8::10]:443 -r [2001:db8:1::11]:443 -m -w 2147483647";
    let req = requests(block(&blocks, cmd), family);
    let d = req
        .iter()
        .find(|m| m.command == Command::NewDest)
        .unwrap()
        .dest()
        .unwrap();
    assert_eq!(d.weight, Some(MAX_WEIGHT));
}

#[test]
fn kernel_dumps_mean_what_ipvsadm_printed() {
    let blocks = blocks();
    let family = family_id(&blocks);
    let b = block(&blocks, "ipvsadm -S -n");
    let services: Vec<ServiceAttrs> = replies(b, family)
        .into_iter()
        .filter_map(|r| match r.payload {
            ReplyPayload::Ipvs(m) if m.command == Command::NewService => m.service().cloned(),
            _ => None,
        })
        .collect();
    assert_eq!(services.len(), 15, "services in the -S dump");
    // The kernel sets HASHED in every dump; fwmark services carry no address.
    assert!(
        services
            .iter()
            .all(|s| s.flags.unwrap().flags.contains(ServiceFlags::HASHED))
    );
    let marks: Vec<_> = services.iter().filter(|s| s.fwmark.is_some()).collect();
    assert_eq!(marks.len(), 2);
    assert!(
        marks
            .iter()
            .all(|s| s.addr.is_none() && s.port.is_none() && s.protocol.is_none())
    );
    let sip = services.iter().find(|s| s.port == Some(5060)).unwrap();
    assert_eq!(sip.pe_name.as_deref(), Some("sip"));
    assert!(
        services
            .iter()
            .all(|s| s.stats.is_some() && s.stats64.is_some())
    );
}

#[test]
fn kernel_errors_carry_the_errno_ipvsadm_reported() {
    let blocks = blocks();
    let family = family_id(&blocks);
    let cases = [
        ("ipvsadm -A -t 192.0.2.10:80 -s rr", libc_errno::EEXIST),
        ("ipvsadm -D -t 192.0.2.99:80", libc_errno::ESRCH),
        (
            "ipvsadm -A -t 192.0.2.98:80 -s nosuchsched",
            libc_errno::ENOENT,
        ),
        (
            "ipvsadm -a -t 192.0.2.99:80 -r 10.0.0.1:80",
            libc_errno::ESRCH,
        ),
        (
            "ipvsadm -d -t 192.0.2.10:80 -r 10.0.0.99:80",
            libc_errno::ENOENT,
        ),
    ];
    for (cmd, errno) in cases {
        // The failing command is the one that was captured with `# exit`.
        let b = blocks
            .iter()
            .find(|b| b.command == cmd && b.failed.is_some())
            .unwrap_or_else(|| panic!("no failing block {cmd}"));
        let errs: Vec<i32> = replies(b, family)
            .into_iter()
            .filter_map(|r| match r.payload {
                ReplyPayload::Error(e) => Some(e.errno),
                _ => None,
            })
            .collect();
        assert_eq!(errs, [errno], "{cmd}");
    }
    // A destination dump of a service that does not exist is empty, not an error.
    let b = block(&blocks, "ipvsadm -L -n -t 192.0.2.99:80");
    assert!(
        replies(b, family)
            .iter()
            .all(|r| !matches!(r.payload, ReplyPayload::Error(_))
                || matches!(&r.payload, ReplyPayload::Error(e) if e.errno == libc_errno::ESRCH))
    );
}

/// The errno values the kernel uses (x86-64 Linux), spelled out so the test does not
/// need the libc crate.
mod libc_errno {
    pub const ENOENT: i32 = 2;
    pub const ESRCH: i32 = 3;
    pub const EEXIST: i32 = 17;
}
