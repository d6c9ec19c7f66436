//! Decoding a received buffer of netlink messages.
//!
//! One `recvmsg` on a netlink socket can return several messages: IPVS data
//! messages (dump entries carry `NLM_F_MULTI`), `NLMSG_ERROR` messages (an
//! ACK when the error is 0) and `NLMSG_DONE` at the end of a dump.
//! [`Replies`] walks such a buffer and yields each message with its header,
//! so that the transport can route it by `nlmsg_seq` to the request it
//! answers.
//!
//! Errors: a malformed `nlmsghdr` (impossible length) ends the iteration
//! after one [`Error::BadMessageLength`], since the following messages cannot
//! be found. A well-framed message whose content cannot be decoded yields an
//! [`Error::InMessage`] carrying its sequence number, and the iteration goes
//! on with the next message.

use netlink_packet_core::{
    NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_MULTIPART, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP,
    NLMSG_OVERRUN,
};

use crate::consts::{NLMSG_HDRLEN, NLMSGERR_ATTR_MSG, NLMSGERR_ATTR_OFFS};
use crate::error::{Error, Result};
use crate::message::IpvsMessage;
use crate::nla;
use crate::types::AddressFamily;

/// A decoded `struct nlmsghdr`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct NlHeader {
    /// `nlmsg_len`.
    pub len: u32,
    /// `nlmsg_type`.
    pub message_type: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// `nlmsg_pid`.
    pub port: u32,
}

impl NlHeader {
    /// Decode the 16 header bytes at the start of `buf`.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let b: &[u8; NLMSG_HDRLEN] = buf.first_chunk().ok_or(Error::Truncated {
            what: "nlmsghdr",
            need: NLMSG_HDRLEN,
            have: buf.len(),
        })?;
        let [
            l0,
            l1,
            l2,
            l3,
            t0,
            t1,
            f0,
            f1,
            s0,
            s1,
            s2,
            s3,
            p0,
            p1,
            p2,
            p3,
        ] = *b;
        Ok(Self {
            len: u32::from_ne_bytes([l0, l1, l2, l3]),
            message_type: u16::from_ne_bytes([t0, t1]),
            flags: u16::from_ne_bytes([f0, f1]),
            seq: u32::from_ne_bytes([s0, s1, s2, s3]),
            port: u32::from_ne_bytes([p0, p1, p2, p3]),
        })
    }
}

/// An `NLMSG_ERROR` message with a non-zero error.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct NetlinkError {
    /// The positive errno (the kernel sends it negated), e.g. `libc::EEXIST`.
    pub errno: i32,
    /// Header of the request that failed, as echoed by the kernel.
    pub request: Option<NlHeader>,
    /// Extended-ACK message (`NLMSGERR_ATTR_MSG`), if the kernel sent one.
    pub ext_ack_msg: Option<String>,
    /// Extended-ACK offset of the offending attribute in the request
    /// (`NLMSGERR_ATTR_OFFS`).
    pub ext_ack_offset: Option<u32>,
}

/// What one received message is.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
// Most replies of a dump are `Ipvs`; boxing it would add an allocation each.
#[allow(clippy::large_enum_variant)]
pub enum ReplyPayload {
    /// An IPVS message (`nlmsg_type` = the family id).
    Ipvs(IpvsMessage),
    /// `NLMSG_ERROR` with error 0: the request succeeded.
    Ack,
    /// `NLMSG_ERROR` with an error.
    Error(NetlinkError),
    /// `NLMSG_DONE`: end of a dump. `error` is 0, or the negative errno of
    /// a dump that failed part-way.
    Done {
        /// The `int` after the header (0 if absent).
        error: i32,
    },
    /// `NLMSG_NOOP`.
    Noop,
    /// `NLMSG_OVERRUN`.
    Overrun,
    /// A message of another type (not IPVS, not a netlink control message).
    Other {
        /// Its `nlmsg_type`.
        message_type: u16,
    },
}

/// One received message.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Reply {
    /// The netlink header; `header.seq` is the sequence number of the
    /// request this message answers.
    pub header: NlHeader,
    /// The message.
    pub payload: ReplyPayload,
}

impl Reply {
    /// `nlmsg_seq`.
    pub fn seq(&self) -> u32 {
        self.header.seq
    }

    /// Whether this message ends its request: an ACK, an error, or
    /// `NLMSG_DONE`. (A non-dump `GET_*` request sent with `NLM_F_ACK`
    /// receives its data message first, then the ACK.)
    pub fn is_final(&self) -> bool {
        matches!(
            self.payload,
            ReplyPayload::Ack | ReplyPayload::Error(_) | ReplyPayload::Done { .. }
        )
    }
}

/// Iterator over the messages in a received buffer.
///
/// ```
/// use ipvs_sys::{Replies, ReplyPayload};
/// // An ACK (NLMSG_ERROR with error 0) for the request with seq 7.
/// let mut buf = Vec::new();
/// buf.extend_from_slice(&36u32.to_ne_bytes()); // nlmsg_len
/// buf.extend_from_slice(&2u16.to_ne_bytes()); // NLMSG_ERROR
/// buf.extend_from_slice(&0x100u16.to_ne_bytes()); // NLM_F_CAPPED
/// buf.extend_from_slice(&7u32.to_ne_bytes()); // seq
/// buf.extend_from_slice(&1234u32.to_ne_bytes()); // port
/// buf.extend_from_slice(&0i32.to_ne_bytes()); // error = 0
/// buf.extend_from_slice(&[0; 16]); // echoed request header
/// let replies: Vec<_> = Replies::new(&buf, 0x1c).collect::<Result<_, _>>().unwrap();
/// assert_eq!(replies[0].seq(), 7);
/// assert_eq!(replies[0].payload, ReplyPayload::Ack);
/// ```
#[derive(Clone, Debug)]
pub struct Replies<'a> {
    buf: &'a [u8],
    pos: usize,
    family_id: u16,
    dest_family_hint: Option<AddressFamily>,
    done: bool,
}

impl<'a> Replies<'a> {
    /// Iterate over the messages in `buf`; messages of type `family_id` are
    /// decoded as IPVS messages.
    pub fn new(buf: &'a [u8], family_id: u16) -> Self {
        Self {
            buf,
            pos: 0,
            family_id,
            dest_family_hint: None,
            done: false,
        }
    }

    /// Interpret destination addresses without a family under `family`
    /// (only needed for `GET_DEST` dumps from kernels before 3.18).
    pub fn with_dest_family_hint(mut self, family: Option<AddressFamily>) -> Self {
        self.dest_family_hint = family;
        self
    }

    fn decode_one(&self, header: &NlHeader, payload: &[u8]) -> Result<ReplyPayload> {
        Ok(match header.message_type {
            NLMSG_ERROR => decode_error(header, payload)?,
            NLMSG_DONE => {
                let error = payload
                    .first_chunk::<4>()
                    .map(|b| i32::from_ne_bytes(*b))
                    .unwrap_or(0);
                ReplyPayload::Done { error }
            }
            NLMSG_NOOP => ReplyPayload::Noop,
            NLMSG_OVERRUN => ReplyPayload::Overrun,
            t if t == self.family_id => {
                ReplyPayload::Ipvs(IpvsMessage::decode_genl(payload, self.dest_family_hint)?)
            }
            t => ReplyPayload::Other { message_type: t },
        })
    }
}

impl Iterator for Replies<'_> {
    type Item = Result<Reply>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        if rest.is_empty() {
            self.done = true;
            return None;
        }
        let header = match NlHeader::decode(rest) {
            Ok(h) => h,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        let len = header.len as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            self.done = true;
            return Some(Err(Error::BadMessageLength {
                offset: self.pos,
                len: header.len,
                remaining: rest.len(),
            }));
        }
        let payload = rest.get(NLMSG_HDRLEN..len).unwrap_or_default();
        // NLMSG_ALIGN; the last message may lack its padding.
        self.pos = self
            .pos
            .saturating_add(len.next_multiple_of(4).min(rest.len()));
        Some(
            self.decode_one(&header, payload)
                .map(|payload| Reply { header, payload })
                .map_err(|e| Error::InMessage {
                    seq: header.seq,
                    message_type: header.message_type,
                    source: Box::new(e),
                }),
        )
    }
}

/// Decode every message in `buf`; fails on the first error.
pub fn decode_replies(buf: &[u8], family_id: u16) -> Result<Vec<Reply>> {
    Replies::new(buf, family_id).collect()
}

/// `struct nlmsgerr { int error; struct nlmsghdr msg; }`, followed by the
/// rest of the request unless `NLM_F_CAPPED`, followed by extended-ACK
/// attributes if `NLM_F_ACK_TLVS`.
fn decode_error(header: &NlHeader, payload: &[u8]) -> Result<ReplyPayload> {
    let code = payload.first_chunk::<4>().ok_or(Error::Truncated {
        what: "struct nlmsgerr",
        need: 4,
        have: payload.len(),
    })?;
    let code = i32::from_ne_bytes(*code);
    if code == 0 {
        return Ok(ReplyPayload::Ack);
    }
    let echoed = payload.get(4..).unwrap_or_default();
    let request = NlHeader::decode(echoed).ok();
    let mut err = NetlinkError {
        errno: code.checked_neg().unwrap_or(i32::MAX),
        request,
        ext_ack_msg: None,
        ext_ack_offset: None,
    };
    if header.flags & NLM_F_ACK_TLVS != 0 {
        let echoed_len = match request {
            Some(_) if header.flags & NLM_F_CAPPED != 0 => NLMSG_HDRLEN,
            Some(r) => (r.len as usize)
                .checked_next_multiple_of(4)
                .unwrap_or(usize::MAX),
            None => echoed.len(),
        };
        let tlvs = echoed.get(echoed_len..).unwrap_or_default();
        // Extended ACK is best effort: a malformed TLV area is ignored.
        let _ = nla::for_each_attr("extended ACK", tlvs, |kind, _, v| {
            match kind {
                NLMSGERR_ATTR_MSG => err.ext_ack_msg = nla::get_cstr("NLMSGERR_ATTR_MSG", v).ok(),
                NLMSGERR_ATTR_OFFS => {
                    err.ext_ack_offset = nla::get_u32("NLMSGERR_ATTR_OFFS", v).ok()
                }
                _ => {}
            }
            Ok(())
        });
    }
    Ok(ReplyPayload::Error(err))
}

fn put_header(buf: &mut Vec<u8>, len: usize, message_type: u16, flags: u16, seq: u32, port: u32) {
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&message_type.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&port.to_ne_bytes());
}

fn align(buf: &mut Vec<u8>) {
    buf.resize(buf.len().next_multiple_of(4), 0);
}

/// Append the `NLMSG_ERROR` the kernel sends for `request`: an ACK when
/// `errno` is 0, otherwise `-errno`; the request header is echoed and the
/// message flagged `NLM_F_CAPPED` (no request payload, no extended ACK).
/// For tests and simulations of the kernel side.
pub fn encode_ack(buf: &mut Vec<u8>, request: &NlHeader, errno: i32, port: u32) {
    align(buf);
    put_header(
        buf,
        NLMSG_HDRLEN + 4 + NLMSG_HDRLEN,
        NLMSG_ERROR,
        NLM_F_CAPPED,
        request.seq,
        port,
    );
    buf.extend_from_slice(&errno.wrapping_neg().to_ne_bytes());
    put_header(
        buf,
        request.len as usize,
        request.message_type,
        request.flags,
        request.seq,
        request.port,
    );
}

/// Append the `NLMSG_DONE` (with `NLM_F_MULTI` and a 0 error) that ends a
/// dump. For tests and simulations of the kernel side.
pub fn encode_done(buf: &mut Vec<u8>, seq: u32, port: u32) {
    align(buf);
    put_header(
        buf,
        NLMSG_HDRLEN + 4,
        NLMSG_DONE,
        NLM_F_MULTIPART,
        seq,
        port,
    );
    buf.extend_from_slice(&0i32.to_ne_bytes());
}
