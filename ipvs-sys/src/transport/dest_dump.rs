//! Sans-IO destination dumps: the replies of a `GET_DEST` dump are collected as bytes
//! while they arrive ([`DestDump`], which only reads netlink headers), and decoded later,
//! straight into [`DestAttrs`] ([`decode_dest_entries`]).
//!
//! Splitting the two lets the whole-table read
//! ([`IpvsSocket::table`](super::IpvsSocket::table)) decode one service's destinations on
//! another thread while the kernel fills the next dump, and decoding straight into
//! `DestAttrs` skips building a whole [`IpvsMessage`](crate::IpvsMessage) per entry (a
//! 768-byte value moved several times on its way to the caller).
//!
//! ```
//! use ipvs_sys::transport::dest_dump::{DestDump, decode_dest_entries};
//! use ipvs_sys::{CmdAttrs, Command, DestAttrs, ForwardMethod, IpvsMessage};
//! // The kernel's answer to dump request 7: one entry, then NLMSG_DONE.
//! let d = DestAttrs::key_of("10.0.0.1:80".parse().unwrap()).with_config(ForwardMethod::MASQ, 1);
//! let entry = IpvsMessage::with_attrs(
//!     Command::NewDest,
//!     CmdAttrs { dest: Some(d.clone()), ..CmdAttrs::default() },
//! );
//! let mut datagram = Vec::new();
//! ipvs_sys::encode_message(&mut datagram, &entry, 0x20, 0x2, 7, 0).unwrap();
//! ipvs_sys::encode_done(&mut datagram, 7, 0);
//!
//! let mut dump = DestDump::new(7);
//! dump.on_datagram(&datagram, 0x20).unwrap();
//! assert!(dump.is_complete() && !dump.interrupted());
//! let mut dests = Vec::new();
//! decode_dest_entries(dump.bytes(), 0x20, 7, None, &mut dests).unwrap();
//! assert_eq!(dests, [d]);
//! ```

use super::exchange::{Outcome, ReplyDecodeError};
use crate::consts::{
    GENL_HDRLEN, IPVS_CMD_ATTR_DEST, IPVS_CMD_ATTR_SERVICE, IPVS_SVC_ATTR_AF, NLMSG_HDRLEN,
};
use crate::dest::DestAttrs;
use crate::error::Error;
use crate::message::Command;
use crate::reply::{NetlinkError, NlHeader, Replies, ReplyPayload};
use crate::types::AddressFamily;
use netlink_packet_core::{NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR};

/// The replies of one destination dump request, kept as received bytes.
#[derive(Debug, Clone)]
pub struct DestDump {
    seq: u32,
    outcome: Outcome,
    interrupted: bool,
    stray: usize,
    entries: usize,
    bytes: Vec<u8>,
}

/// One netlink message of a received buffer: its header and its whole bytes, or the
/// error for an impossible length (after which nothing more can be read).
fn messages(buf: &[u8]) -> impl Iterator<Item = Result<(NlHeader, &[u8]), Error>> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let rest = buf.get(pos..).filter(|r| !r.is_empty())?;
        let header = match NlHeader::decode(rest) {
            Ok(h) => h,
            Err(e) => {
                pos = buf.len();
                return Some(Err(e));
            }
        };
        let len = header.len as usize;
        let Some(one) = rest.get(..len).filter(|_| len >= NLMSG_HDRLEN) else {
            let offset = pos;
            pos = buf.len();
            return Some(Err(Error::BadMessageLength {
                offset,
                len: header.len,
                remaining: rest.len(),
            }));
        };
        // NLMSG_ALIGN; the last message may lack its padding.
        pos = pos.saturating_add(len.next_multiple_of(4).min(rest.len()));
        Some(Ok((header, one)))
    })
}

fn in_message(header: &NlHeader, e: Error) -> ReplyDecodeError {
    ReplyDecodeError {
        seq: header.seq,
        source: Error::InMessage {
            seq: header.seq,
            message_type: header.message_type,
            source: Box::new(e),
        },
    }
}

fn framing(e: Error) -> ReplyDecodeError {
    ReplyDecodeError { seq: 0, source: e }
}

impl DestDump {
    /// The replies to the dump request with sequence number `seq`.
    pub fn new(seq: u32) -> Self {
        Self {
            seq,
            outcome: Outcome::Pending,
            interrupted: false,
            stray: 0,
            entries: 0,
            bytes: Vec::new(),
        }
    }

    /// The sequence number of the request.
    pub fn seq(&self) -> u32 {
        self.seq
    }

    /// Feeds one received datagram: reads the netlink headers only (the end of the dump,
    /// an error, `NLM_F_DUMP_INTR`) and keeps the datagram if it holds entries of this
    /// dump. Replies to other requests are counted ([`stray`](Self::stray)) and ignored.
    pub fn on_datagram(&mut self, buf: &[u8], family_id: u16) -> Result<(), ReplyDecodeError> {
        let mut keep = false;
        for m in messages(buf) {
            let (header, one) = m.map_err(framing)?;
            if header.seq != self.seq {
                self.stray += 1;
                continue;
            }
            if header.flags & NLM_F_DUMP_INTR != 0 {
                self.interrupted = true;
            }
            match header.message_type {
                t if t == family_id => {
                    self.entries += 1;
                    keep = true;
                }
                NLMSG_DONE => {
                    let error = one
                        .get(NLMSG_HDRLEN..)
                        .and_then(|p| p.first_chunk::<4>())
                        .map_or(0, |b| i32::from_ne_bytes(*b));
                    self.outcome = if error == 0 {
                        Outcome::Done
                    } else {
                        Outcome::Failed(NetlinkError {
                            errno: error.checked_neg().unwrap_or(i32::MAX),
                            request: None,
                            ext_ack_msg: None,
                            ext_ack_offset: None,
                        })
                    };
                }
                NLMSG_ERROR => {
                    // Rare: decode it fully, extended ACK included.
                    let reply = Replies::new(one, family_id).next();
                    match reply.transpose().map_err(framing)? {
                        Some(r) => match r.payload {
                            ReplyPayload::Error(e) => self.outcome = Outcome::Failed(e),
                            _ => self.outcome = Outcome::Done,
                        },
                        None => self.outcome = Outcome::Done,
                    }
                }
                _ => {}
            }
        }
        if keep {
            self.bytes.extend_from_slice(buf);
            // Keep the next datagram's messages 4-byte aligned.
            self.bytes.resize(self.bytes.len().next_multiple_of(4), 0);
        }
        Ok(())
    }

    /// Whether the dump ended (`NLMSG_DONE`, or an error).
    pub fn is_complete(&self) -> bool {
        self.outcome != Outcome::Pending
    }

    /// Whether a reply carried `NLM_F_DUMP_INTR`: the table changed during the dump, which
    /// must be run again.
    pub fn interrupted(&self) -> bool {
        self.interrupted
    }

    /// How the dump ended ([`Outcome::Pending`] while it runs).
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    /// How many replies belonged to other requests.
    pub fn stray(&self) -> usize {
        self.stray
    }

    /// How many entries (IPVS data messages) of this dump were received.
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// The kept datagrams, one after the other (each padded to 4 bytes), for
    /// [`decode_dest_entries`].
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The kept datagrams (see [`bytes`](Self::bytes)), taken.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// The family of a service nest (`IPVS_SVC_ATTR_AF`), if it has one.
fn service_family(nest: &[u8]) -> Result<Option<AddressFamily>, Error> {
    let mut af = None;
    crate::nla::for_each_attr("IPVS_CMD_ATTR_SERVICE", nest, |kind, _, v| {
        if kind == IPVS_SVC_ATTR_AF {
            af = Some(AddressFamily(crate::nla::get_u16("IPVS_SVC_ATTR_AF", v)?));
        }
        Ok(())
    })?;
    Ok(af)
}

/// The destination of one IPVS message's payload (`genlmsghdr` and attributes), if it
/// has one. An address without `IPVS_DEST_ATTR_ADDR_FAMILY` is read under the family
/// of the message's service nest, else `hint`.
fn dest_of(payload: &[u8], hint: Option<AddressFamily>) -> Result<Option<DestAttrs>, Error> {
    let attrs = payload.get(GENL_HDRLEN..).ok_or(Error::Truncated {
        what: "genlmsghdr",
        need: GENL_HDRLEN,
        have: payload.len(),
    })?;
    let cmd = payload.first().copied().unwrap_or_default();
    match Command::from_u8(cmd) {
        None => return Err(Error::UnknownCommand(cmd)),
        // The GET_INFO reply: other attributes, never a destination.
        Some(Command::SetInfo) => return Ok(None),
        Some(_) => {}
    }
    let mut dest = None;
    let mut family = None;
    crate::nla::for_each_attr("IPVS command attributes", attrs, |kind, _, v| {
        match kind {
            IPVS_CMD_ATTR_DEST => dest = Some(v),
            IPVS_CMD_ATTR_SERVICE => family = service_family(v)?,
            _ => {}
        }
        Ok(())
    })?;
    dest.map(|v| DestAttrs::decode_with_family(v, family.or(hint)))
        .transpose()
}

/// Decodes the entries of the destination dump with sequence number `seq` in `buf`
/// (datagrams as [`DestDump::bytes`] keeps them) straight into `out`, in order. Messages
/// of other requests, `NLMSG_DONE` and errors are skipped (a [`DestDump`] has read them);
/// entries without a destination nest are skipped, as a dump through
/// [`IpvsSocket::dump`](super::IpvsSocket::dump) skips them.
///
/// `hint` is the family of the dumped service: it reads addresses that carry no
/// `IPVS_DEST_ATTR_ADDR_FAMILY` (kernels before 3.18).
///
/// Every entry that [`IpvsMessage::decode_genl`](crate::IpvsMessage::decode_genl)
/// decodes, this decodes to the same destination; it checks less of the rest of the
/// message (the service nest beyond its family, other attributes).
pub fn decode_dest_entries(
    buf: &[u8],
    family_id: u16,
    seq: u32,
    hint: Option<AddressFamily>,
    out: &mut Vec<DestAttrs>,
) -> Result<(), ReplyDecodeError> {
    for m in messages(buf) {
        let (header, one) = m.map_err(framing)?;
        if header.seq != seq || header.message_type != family_id {
            continue;
        }
        let payload = one.get(NLMSG_HDRLEN..).unwrap_or_default();
        if let Some(d) = dest_of(payload, hint).map_err(|e| in_message(&header, e))? {
            out.push(d);
        }
    }
    Ok(())
}
