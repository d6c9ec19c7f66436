//! Attribute plumbing shared by all attribute sets.
//!
//! Encoding goes through [`netlink_packet_core::Nla`]: small borrowed wrapper
//! types ([`U16`], [`BeU16`], [`Bytes`], [`Nested`], ...) implement it, so
//! the crate's blanket `Emitable` implementation writes the attribute header,
//! the payload and the padding. An attribute set describes its attributes
//! once, through [`AttrSet::visit`]; the same description computes the length
//! ([`LenSink`]), validates it ([`CheckSink`]) and writes the bytes
//! ([`EmitSink`]), so the length and the bytes can never disagree.
//!
//! Decoding walks the attributes with a hand-written loop (see
//! [`for_each_attr`] for why) that bounds-checks every `nla_len` as
//! `netlink_packet_core::NlasIterator` does; the helpers below turn payloads
//! into values and report the attribute name on failure.

use netlink_packet_core::{DecodeError, Emitable, NLA_TYPE_MASK, Nla};

use crate::error::{Error, Result};
use crate::types::RawAttr;

/// Largest payload an attribute can carry (`nla_len` is a u16 including the
/// 4-byte header).
pub(crate) const MAX_NLA_PAYLOAD: usize = u16::MAX as usize - crate::consts::NLA_HDRLEN;

/// Receives the attributes of an attribute set, in emission order.
pub(crate) trait Sink {
    /// One attribute.
    fn attr<N: Nla>(&mut self, what: &'static str, nla: &N);

    /// One attribute whose `nla_type` field (flag bits included) is written
    /// verbatim. netlink-packet-core 0.9's `Nla::emit` cannot do that: it
    /// re-reads the masked type before adding each flag, so a type with both
    /// `NLA_F_NESTED` and `NLA_F_NET_BYTEORDER` loses the latter. Unknown
    /// attributes must round-trip exactly, so they take this path.
    fn raw(&mut self, what: &'static str, kind: u16, value: &[u8]) {
        self.attr(what, &Bytes(kind, value));
    }

    /// One nested attribute set (emitted without `NLA_F_NESTED`).
    fn nested<T: AttrSet + ?Sized>(&mut self, what: &'static str, kind: u16, set: &T) {
        self.attr(what, &Nested(kind, set));
    }
}

/// An ordered set of attributes (the payload of a nest or of a message).
pub(crate) trait AttrSet {
    /// Feed every attribute to `sink`, in the canonical (kernel) order.
    fn visit<S: Sink>(&self, sink: &mut S);
}

/// Sums the aligned lengths of the attributes.
#[derive(Default)]
pub(crate) struct LenSink(pub usize);

impl Sink for LenSink {
    fn attr<N: Nla>(&mut self, _what: &'static str, nla: &N) {
        self.0 = self.0.saturating_add(nla.buffer_len());
    }
}

/// Checks that every top-level attribute fits a 16-bit `nla_len`. Checking
/// the top level suffices: a nest is at least as large as anything inside it.
#[derive(Default)]
pub(crate) struct CheckSink {
    pub len: usize,
    pub err: Option<Error>,
}

impl Sink for CheckSink {
    fn attr<N: Nla>(&mut self, what: &'static str, nla: &N) {
        if self.err.is_some() {
            return;
        }
        let value_len = nla.value_len();
        if value_len > MAX_NLA_PAYLOAD {
            self.err = Some(Error::AttrTooLarge {
                what,
                len: value_len,
            });
            return;
        }
        self.len = self.len.saturating_add(nla.buffer_len());
    }
}

/// Writes attributes one after another into a slice. Never panics: the slice
/// is obtained with `get_mut`, and the callers size it with [`LenSink`].
pub(crate) struct EmitSink<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> EmitSink<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }
}

impl Sink for EmitSink<'_> {
    fn attr<N: Nla>(&mut self, _what: &'static str, nla: &N) {
        let len = nla.buffer_len();
        let end = self.pos.saturating_add(len);
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            nla.emit(dst);
        }
        self.pos = end;
    }

    fn raw(&mut self, _what: &'static str, kind: u16, value: &[u8]) {
        let nla_len = crate::consts::NLA_HDRLEN + value.len();
        let end = self.pos.saturating_add(nla_len.next_multiple_of(4));
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            dst.fill(0);
            let len16 = u16::try_from(nla_len).unwrap_or(u16::MAX);
            if let Some(h) = dst.get_mut(..4) {
                h[..2].copy_from_slice(&len16.to_ne_bytes());
                h[2..].copy_from_slice(&kind.to_ne_bytes());
            }
            if let Some(v) = dst.get_mut(4..nla_len) {
                v.copy_from_slice(value);
            }
        }
        self.pos = end;
    }
}

/// Appends attributes to a growing buffer in one pass: each nest's header is
/// written after its content, so nothing is visited twice (the other sinks
/// visit a nest once to size it and again to write it). Used by the batch
/// encoder, the hot path. Errors (an attribute over 64 KiB) are kept in
/// `err`; the caller truncates the buffer.
pub(crate) struct AppendSink<'a> {
    buf: &'a mut Vec<u8>,
    pub(crate) err: Option<Error>,
}

impl<'a> AppendSink<'a> {
    pub(crate) fn new(buf: &'a mut Vec<u8>) -> Self {
        Self { buf, err: None }
    }

    fn header(&mut self, what: &'static str, start: usize, kind: u16) {
        let nla_len = self.buf.len() - start;
        let Ok(len16) = u16::try_from(nla_len) else {
            self.err.get_or_insert(Error::AttrTooLarge {
                what,
                len: nla_len - crate::consts::NLA_HDRLEN,
            });
            return;
        };
        if let Some(h) = self.buf.get_mut(start..start + crate::consts::NLA_HDRLEN) {
            h[..2].copy_from_slice(&len16.to_ne_bytes());
            h[2..].copy_from_slice(&kind.to_ne_bytes());
        }
        // Padding after the payload (not counted in nla_len).
        self.buf.resize(self.buf.len().next_multiple_of(4), 0);
    }
}

impl Sink for AppendSink<'_> {
    fn attr<N: Nla>(&mut self, what: &'static str, nla: &N) {
        let start = self.buf.len();
        let value_len = nla.value_len();
        if value_len > MAX_NLA_PAYLOAD {
            self.err.get_or_insert(Error::AttrTooLarge {
                what,
                len: value_len,
            });
            return;
        }
        let value_start = start + crate::consts::NLA_HDRLEN;
        self.buf.resize(value_start + value_len, 0);
        if let Some(v) = self.buf.get_mut(value_start..) {
            nla.emit_value(v);
        }
        self.header(what, start, nla.kind());
    }

    fn raw(&mut self, what: &'static str, kind: u16, value: &[u8]) {
        let start = self.buf.len();
        self.buf.resize(start + crate::consts::NLA_HDRLEN, 0);
        self.buf.extend_from_slice(value);
        self.header(what, start, kind);
    }

    fn nested<T: AttrSet + ?Sized>(&mut self, what: &'static str, kind: u16, set: &T) {
        let start = self.buf.len();
        self.buf.resize(start + crate::consts::NLA_HDRLEN, 0);
        set.visit(self);
        self.header(what, start, kind);
    }
}

/// Length of an attribute set's encoding.
pub(crate) fn set_len<T: AttrSet + ?Sized>(set: &T) -> usize {
    let mut s = LenSink::default();
    set.visit(&mut s);
    s.0
}

/// Length of an attribute set's encoding, checking every attribute against
/// the 16-bit `nla_len`.
pub(crate) fn checked_len<T: AttrSet + ?Sized>(set: &T) -> Result<usize> {
    let mut s = CheckSink::default();
    set.visit(&mut s);
    match s.err {
        Some(e) => Err(e),
        None => Ok(s.len),
    }
}

/// Emit an attribute set into `buf` (which must be `set_len(set)` long).
pub(crate) fn set_emit<T: AttrSet + ?Sized>(set: &T, buf: &mut [u8]) {
    set.visit(&mut EmitSink::new(buf));
}

// ---------------------------------------------------------------------------
// Nla wrappers used for encoding.
// ---------------------------------------------------------------------------

/// u8 attribute.
pub(crate) struct U8(pub u16, pub u8);
/// u16 attribute in host order.
pub(crate) struct U16(pub u16, pub u16);
/// u16 attribute in network order (ports).
pub(crate) struct BeU16(pub u16, pub u16);
/// u32 attribute in host order.
pub(crate) struct U32(pub u16, pub u32);
/// u64 attribute in host order.
pub(crate) struct U64(pub u16, pub u64);
/// Raw payload; `kind` may carry `NLA_F_*` bits, which are emitted as is.
pub(crate) struct Bytes<'a>(pub u16, pub &'a [u8]);
/// NUL-terminated string.
pub(crate) struct CStr<'a>(pub u16, pub &'a str);
/// Nested attribute set (emitted without `NLA_F_NESTED`, like the kernel's
/// `nla_nest_start_noflag`).
pub(crate) struct Nested<'a, T: ?Sized>(pub u16, pub &'a T);

macro_rules! int_nla {
    ($t:ident, $conv:ident) => {
        impl Nla for $t {
            fn value_len(&self) -> usize {
                std::mem::size_of_val(&self.1)
            }
            fn kind(&self) -> u16 {
                self.0
            }
            fn emit_value(&self, buffer: &mut [u8]) {
                let bytes = self.1.$conv();
                if let Some(dst) = buffer.get_mut(..bytes.len()) {
                    dst.copy_from_slice(&bytes);
                }
            }
        }
    };
}

int_nla!(U8, to_ne_bytes);
int_nla!(U16, to_ne_bytes);
int_nla!(BeU16, to_be_bytes);
int_nla!(U32, to_ne_bytes);
int_nla!(U64, to_ne_bytes);

impl Nla for Bytes<'_> {
    fn value_len(&self) -> usize {
        self.1.len()
    }
    fn kind(&self) -> u16 {
        self.0
    }
    fn emit_value(&self, buffer: &mut [u8]) {
        if let Some(dst) = buffer.get_mut(..self.1.len()) {
            dst.copy_from_slice(self.1);
        }
    }
}

impl Nla for CStr<'_> {
    fn value_len(&self) -> usize {
        self.1.len() + 1
    }
    fn kind(&self) -> u16 {
        self.0
    }
    fn emit_value(&self, buffer: &mut [u8]) {
        let s = self.1.as_bytes();
        if let Some(dst) = buffer.get_mut(..s.len()) {
            dst.copy_from_slice(s);
        }
        if let Some(nul) = buffer.get_mut(s.len()) {
            *nul = 0;
        }
    }
}

impl<T: AttrSet + ?Sized> Nla for Nested<'_, T> {
    fn value_len(&self) -> usize {
        set_len(self.1)
    }
    fn kind(&self) -> u16 {
        self.0
    }
    fn emit_value(&self, buffer: &mut [u8]) {
        set_emit(self.1, buffer);
    }
}

// ---------------------------------------------------------------------------
// Decoding helpers.
// ---------------------------------------------------------------------------

/// Iterate over the attributes in `buf`, yielding `(type, payload, raw type
/// field)`; the type has the `NLA_F_NESTED`/`NLA_F_NET_BYTEORDER` bits
/// masked off, the raw type field keeps them.
pub(crate) fn for_each_attr<'a>(
    what: &'static str,
    buf: &'a [u8],
    mut f: impl FnMut(u16, u16, &'a [u8]) -> Result<()>,
) -> Result<()> {
    // Hand-written rather than `netlink_packet_core::NlasIterator`: that iterator reads
    // `nla_len` through non-inlined checked parsers five times per attribute, which made
    // it ~75% of the time spent decoding a dump (measured with callgrind: about 10,000
    // instructions per destination entry). This loop does the same bounds checks, with
    // the same errors, reading each header once.
    let mut pos = 0;
    while let Some(rest) = buf.get(pos..).filter(|r| !r.is_empty()) {
        let Some(&[l0, l1, t0, t1]) = rest.first_chunk::<4>() else {
            let source = DecodeError::nla_buffer_too_small(rest.len(), crate::consts::NLA_HDRLEN);
            return Err(Error::Nla { what, source });
        };
        let len = usize::from(u16::from_ne_bytes([l0, l1]));
        if rest.len() < len {
            let source = DecodeError::nla_length_mismatch(rest.len(), len);
            return Err(Error::Nla { what, source });
        }
        if len < crate::consts::NLA_HDRLEN {
            let source = DecodeError::nla_invalid_length(rest.len(), len);
            return Err(Error::Nla { what, source });
        }
        let raw_kind = u16::from_ne_bytes([t0, t1]);
        let value = rest.get(crate::consts::NLA_HDRLEN..len).unwrap_or_default();
        f(raw_kind & NLA_TYPE_MASK, raw_kind, value)?;
        pos = pos.saturating_add(len.next_multiple_of(4));
    }
    Ok(())
}

fn fixed<const N: usize>(what: &'static str, v: &[u8]) -> Result<[u8; N]> {
    <[u8; N]>::try_from(v).map_err(|_| Error::AttrSize {
        what,
        expected: N,
        got: v.len(),
    })
}

pub(crate) fn get_u8(what: &'static str, v: &[u8]) -> Result<u8> {
    Ok(fixed::<1>(what, v)?[0])
}
pub(crate) fn get_u16(what: &'static str, v: &[u8]) -> Result<u16> {
    Ok(u16::from_ne_bytes(fixed(what, v)?))
}
pub(crate) fn get_be16(what: &'static str, v: &[u8]) -> Result<u16> {
    Ok(u16::from_be_bytes(fixed(what, v)?))
}
pub(crate) fn get_u32(what: &'static str, v: &[u8]) -> Result<u32> {
    Ok(u32::from_ne_bytes(fixed(what, v)?))
}
pub(crate) fn get_u64(what: &'static str, v: &[u8]) -> Result<u64> {
    Ok(u64::from_ne_bytes(fixed(what, v)?))
}
pub(crate) fn get_array<const N: usize>(what: &'static str, v: &[u8]) -> Result<[u8; N]> {
    fixed(what, v)
}

/// A C string: everything up to the first NUL (or the whole payload if there
/// is none), which must be UTF-8.
pub(crate) fn get_cstr(what: &'static str, v: &[u8]) -> Result<String> {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    let bytes = v.get(..end).unwrap_or(v);
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| Error::Utf8 { what })
}

/// Reject strings the kernel would cut short.
pub(crate) fn check_cstr(what: &'static str, s: &str) -> Result<()> {
    if s.as_bytes().contains(&0) {
        Err(Error::InteriorNul { what })
    } else {
        Ok(())
    }
}

/// Emit unknown attributes verbatim (flags bits included).
pub(crate) fn visit_unknown<S: Sink>(s: &mut S, what: &'static str, unknown: &[RawAttr]) {
    for a in unknown {
        s.raw(what, a.kind, &a.value);
    }
}

/// Implement the rust-netlink `Emitable` and `Parseable<[u8]>` traits for an
/// attribute set with `AttrSet` and an inherent `decode(&[u8])`.
macro_rules! attr_set_traits {
    ($t:ty) => {
        impl netlink_packet_core::Emitable for $t {
            fn buffer_len(&self) -> usize {
                $crate::nla::set_len(self)
            }
            fn emit(&self, buffer: &mut [u8]) {
                $crate::nla::set_emit(self, buffer)
            }
        }
        impl netlink_packet_core::Parseable<[u8]> for $t {
            fn parse(buf: &[u8]) -> std::result::Result<Self, netlink_packet_core::DecodeError> {
                Self::decode(buf).map_err(netlink_packet_core::DecodeError::from)
            }
        }
    };
}
pub(crate) use attr_set_traits;
