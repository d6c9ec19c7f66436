//! Encoding complete netlink requests into a shared buffer.
//!
//! A transport packs many requests into one buffer and sends them with one
//! `sendmsg`; the kernel processes them in order and answers each with its
//! own replies, carrying the request's `nlmsg_seq`.
//!
//! This path is written by hand on purpose: `NetlinkMessage<GenlMessage<_>>`
//! from the rust-netlink crates owns its payload (the message would have to
//! be cloned or moved into the wrapper for every request), needs a
//! `finalize()` pass and a `set_resolved_family_id()` call per message, and
//! its `emit` panics on a short buffer instead of returning an error. The two
//! headers are 20 fixed bytes, so writing them directly is simpler and lets
//! encoding append to a caller's `Vec` with no allocation once the vector has
//! grown to its working size. The attribute payloads are written through the
//! crates' `Nla::emit_value`; [`encode_request`]/[`encode_message`] write the
//! attribute headers themselves, in one pass, each nest's header after its
//! content (netlink-packet-core's `Emitable` sizes every nest before writing
//! it, visiting nested content twice), while [`encode_request_into`] and the
//! `Emitable` implementations use the crate's blanket `Nla` emission. Tests
//! (`tests/quirks.rs`, `tests/vectors.rs`) check that `NetlinkMessage<GenlMessage<_>>`,
//! `encode_request` and `encode_request_into` produce identical bytes.

use std::ops::Range;

use crate::consts::{GENL_HDRLEN, IPVS_GENL_VERSION, NLMSG_HDRLEN};
use crate::error::{Error, Result};
use crate::message::IpvsMessage;
use crate::nla::{self, AttrSet};

/// Total size of the request `msg` once encoded (both headers included).
pub fn encoded_len(msg: &IpvsMessage) -> Result<usize> {
    let len = NLMSG_HDRLEN + GENL_HDRLEN + msg.attrs_len()?;
    if u32::try_from(len).is_err() {
        return Err(Error::MessageTooLarge { len });
    }
    Ok(len)
}

fn write_headers(
    dst: &mut [u8],
    len: usize,
    family_id: u16,
    flags: u16,
    seq: u32,
    port: u32,
    cmd: u8,
) {
    let mut hdr = [0u8; NLMSG_HDRLEN + GENL_HDRLEN];
    // struct nlmsghdr, host byte order.
    let len32 = u32::try_from(len).unwrap_or(u32::MAX);
    hdr[0..4].copy_from_slice(&len32.to_ne_bytes());
    hdr[4..6].copy_from_slice(&family_id.to_ne_bytes());
    hdr[6..8].copy_from_slice(&flags.to_ne_bytes());
    hdr[8..12].copy_from_slice(&seq.to_ne_bytes());
    hdr[12..16].copy_from_slice(&port.to_ne_bytes());
    // struct genlmsghdr { u8 cmd; u8 version; u16 reserved; }
    hdr[16] = cmd;
    hdr[17] = IPVS_GENL_VERSION;
    if let Some(d) = dst.get_mut(..hdr.len()) {
        d.copy_from_slice(&hdr);
    }
}

fn emit(
    dst: &mut [u8],
    msg: &IpvsMessage,
    len: usize,
    family_id: u16,
    seq: u32,
    flags: u16,
    port: u32,
) {
    write_headers(dst, len, family_id, flags, seq, port, msg.command as u8);
    if let Some(attrs) = dst.get_mut(NLMSG_HDRLEN + GENL_HDRLEN..len) {
        nla::set_emit(&msg.attrs, attrs);
    }
}

/// Append one complete request (`nlmsghdr` + `genlmsghdr` + attributes) to
/// `buf` and return the byte range it occupies.
///
/// `family_id` is the id the kernel assigned to the `"IPVS"` family
/// (resolved through the generic-netlink controller by the transport),
/// `flags` usually [`IpvsMessage::request_flags`], `nlmsg_pid` is 0 (the
/// kernel fills in the sender). If `buf` does not end on a 4-byte boundary,
/// zero padding is added first (`NLMSG_ALIGN`). Nothing is allocated unless
/// `buf` has to grow.
///
/// ```
/// use ipvs_sys::{encode_request, IpvsMessage};
/// let mut buf = Vec::with_capacity(4096);
/// let a = encode_request(&mut buf, &IpvsMessage::flush(), 0x1c, 7, IpvsMessage::flush().request_flags()).unwrap();
/// let b = encode_request(&mut buf, &IpvsMessage::get_info(), 0x1c, 8, IpvsMessage::get_info().request_flags()).unwrap();
/// assert_eq!((a, b), (0..20, 20..40));
/// ```
pub fn encode_request(
    buf: &mut Vec<u8>,
    msg: &IpvsMessage,
    family_id: u16,
    seq: u32,
    flags: u16,
) -> Result<Range<usize>> {
    encode_message(buf, msg, family_id, flags, seq, 0)
}

/// Append one complete message with every header field given (`nlmsg_len`
/// is computed). This is [`encode_request`] with a port id, useful to build
/// what the kernel sends (e.g. `NLM_F_MULTI` dump entries) for tests and
/// simulations.
pub fn encode_message(
    buf: &mut Vec<u8>,
    msg: &IpvsMessage,
    message_type: u16,
    flags: u16,
    seq: u32,
    port: u32,
) -> Result<Range<usize>> {
    // One pass: validate the fields, write the headers' space, append the
    // attributes (nests are sized as they are written), then fill in the
    // headers. Nothing is allocated unless `buf` has to grow.
    msg.validate_fields()?;
    let original = buf.len();
    let start = original.next_multiple_of(4);
    buf.resize(start + NLMSG_HDRLEN + GENL_HDRLEN, 0);
    let mut sink = nla::AppendSink::new(buf);
    msg.attrs.visit(&mut sink);
    if let Some(e) = sink.err {
        buf.truncate(original);
        return Err(e);
    }
    let len = buf.len() - start;
    if u32::try_from(len).is_err() {
        buf.truncate(original);
        return Err(Error::MessageTooLarge { len });
    }
    if let Some(dst) = buf.get_mut(start..) {
        write_headers(dst, len, message_type, flags, seq, port, msg.command as u8);
    }
    Ok(start..buf.len())
}

/// Encode one complete request at the start of `buf` and return its length;
/// [`Error::BufferTooSmall`] if it does not fit (nothing is written then).
pub fn encode_request_into(
    buf: &mut [u8],
    msg: &IpvsMessage,
    family_id: u16,
    seq: u32,
    flags: u16,
) -> Result<usize> {
    let len = encoded_len(msg)?;
    let have = buf.len();
    let dst = buf
        .get_mut(..len)
        .ok_or(Error::BufferTooSmall { need: len, have })?;
    dst.fill(0);
    emit(dst, msg, len, family_id, seq, flags, 0);
    Ok(len)
}

/// A buffer of requests for one `sendmsg`, numbering them with consecutive
/// sequence numbers.
///
/// ```
/// use ipvs_sys::{BatchEncoder, DestAttrs, ForwardMethod, IpvsMessage, Protocol, ServiceAttrs};
/// let svc = ServiceAttrs::addr_key(Protocol::TCP, "192.0.2.10:80".parse().unwrap());
/// let mut batch = BatchEncoder::new(0x1c, 100);
/// for port in 8000..8100 {
///     let dest = DestAttrs::key_of(([198, 51, 100, 7], port).into())
///         .with_config(ForwardMethod::ROUTE, 1);
///     batch.push(&IpvsMessage::new_dest(svc.key(), dest)).unwrap();
/// }
/// assert_eq!(batch.len(), 100);
/// assert_eq!(batch.seq_range(), 100..200);
/// let bytes: &[u8] = batch.as_bytes(); // hand to sendmsg
/// assert_eq!(bytes.len() % 4, 0);
/// batch.clear(); // keeps the allocation for the next round
/// ```
#[derive(Debug, Clone)]
pub struct BatchEncoder {
    buf: Vec<u8>,
    family_id: u16,
    first_seq: u32,
    next_seq: u32,
    count: usize,
}

impl BatchEncoder {
    /// An empty batch for family `family_id` whose first request gets
    /// sequence number `first_seq`.
    pub fn new(family_id: u16, first_seq: u32) -> Self {
        Self::with_capacity(family_id, first_seq, 0)
    }

    /// Like [`new`](Self::new) with `capacity` bytes preallocated.
    pub fn with_capacity(family_id: u16, first_seq: u32, capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity),
            family_id,
            first_seq,
            next_seq: first_seq,
            count: 0,
        }
    }

    /// Append `msg` with [`IpvsMessage::request_flags`]; returns its
    /// sequence number.
    pub fn push(&mut self, msg: &IpvsMessage) -> Result<u32> {
        self.push_with_flags(msg, msg.request_flags())
    }

    /// Append `msg` with explicit `nlmsg_flags`; returns its sequence
    /// number. On error nothing is appended and no number is used.
    pub fn push_with_flags(&mut self, msg: &IpvsMessage, flags: u16) -> Result<u32> {
        let seq = self.next_seq;
        encode_request(&mut self.buf, msg, self.family_id, seq, flags)?;
        self.next_seq = seq.wrapping_add(1);
        self.count += 1;
        Ok(seq)
    }

    /// The encoded requests.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Number of requests in the batch.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the batch in bytes.
    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }

    /// Sequence numbers used so far (`first..next`; may wrap around).
    pub fn seq_range(&self) -> Range<u32> {
        self.first_seq..self.next_seq
    }

    /// The sequence number the next request will get.
    pub fn next_seq(&self) -> u32 {
        self.next_seq
    }

    /// Empty the batch, keeping its allocation; numbering continues from
    /// [`next_seq`](Self::next_seq).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.first_seq = self.next_seq;
        self.count = 0;
    }

    /// Give the buffer back.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}
