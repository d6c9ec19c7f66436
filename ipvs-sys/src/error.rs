//! The error type of the message layer.

use netlink_packet_core::DecodeError;

/// Everything that can go wrong while encoding or decoding IPVS messages.
///
/// Decoding never panics: any input, however malformed, yields either a value
/// or one of these errors. Each variant names the attribute or structure that
/// was being processed (`what`), e.g. `"IPVS_SVC_ATTR_PORT"`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A fixed-size attribute had the wrong payload length.
    #[error("{what}: expected {expected} bytes, got {got}")]
    AttrSize {
        /// Attribute being decoded.
        what: &'static str,
        /// Expected payload length.
        expected: usize,
        /// Actual payload length.
        got: usize,
    },
    /// An address attribute had a length that is neither 4 nor 16 bytes, or a
    /// length that does not fit its address family.
    #[error("{what}: {got}-byte address does not fit address family {family}")]
    AddrSize {
        /// Attribute being decoded.
        what: &'static str,
        /// Address family used to interpret the address (0 if unknown).
        family: u16,
        /// Actual payload length.
        got: usize,
    },
    /// An address (or IPv6 netmask) could not be interpreted because no
    /// address family was present, neither in the attribute set nor as a
    /// hint from the enclosing message.
    #[error("{what}: cannot interpret without an address family")]
    MissingAddressFamily {
        /// Attribute being decoded or encoded.
        what: &'static str,
    },
    /// The address family is neither `AF_INET` nor `AF_INET6`.
    #[error("{what}: unsupported address family {family}")]
    UnsupportedAddressFamily {
        /// Attribute being decoded or encoded.
        what: &'static str,
        /// The family number.
        family: u16,
    },
    /// The typed value contradicts the address family it is encoded under
    /// (e.g. an IPv6 address in an `AF_INET` service).
    #[error("{what}: value does not match address family {family}")]
    AddressFamilyMismatch {
        /// Attribute being encoded or decoded.
        what: &'static str,
        /// The family number.
        family: u16,
    },
    /// A string attribute is not valid UTF-8.
    #[error("{what}: string is not valid UTF-8")]
    Utf8 {
        /// Attribute being decoded.
        what: &'static str,
    },
    /// A string to encode contains a NUL byte, which the kernel would treat
    /// as the end of the string.
    #[error("{what}: string contains a NUL byte")]
    InteriorNul {
        /// Attribute being encoded.
        what: &'static str,
    },
    /// The attribute stream itself is malformed (bad `nla_len`, truncated
    /// header, ...).
    #[error("{what}: malformed netlink attribute: {source}")]
    Nla {
        /// Attribute set being decoded.
        what: &'static str,
        /// Error from the netlink attribute iterator.
        #[source]
        source: DecodeError,
    },
    /// A buffer is shorter than the structure that must be read from it.
    #[error("{what}: truncated, need {need} bytes, have {have}")]
    Truncated {
        /// Structure being decoded.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// A netlink message header announces an impossible length.
    #[error("nlmsghdr at offset {offset}: invalid nlmsg_len {len} ({remaining} bytes remain)")]
    BadMessageLength {
        /// Offset of the header in the buffer.
        offset: usize,
        /// The announced length.
        len: u32,
        /// Bytes remaining in the buffer from `offset`.
        remaining: usize,
    },
    /// The generic-netlink command number is not an IPVS command.
    #[error("genlmsghdr: unknown IPVS command {0}")]
    UnknownCommand(u8),
    /// Encoding: the attributes do not match the command (`Info` attributes
    /// belong to `SET_INFO` only, command attributes to every other command).
    #[error("{command}: attribute set does not belong to this command")]
    AttrsMismatch {
        /// The command being encoded.
        command: &'static str,
    },
    /// Encoding: an attribute payload exceeds the 16-bit `nla_len`.
    #[error("{what}: attribute of {len} bytes does not fit nla_len")]
    AttrTooLarge {
        /// Attribute being encoded.
        what: &'static str,
        /// Payload length.
        len: usize,
    },
    /// Encoding: the message exceeds the 32-bit `nlmsg_len`.
    #[error("message of {len} bytes does not fit nlmsg_len")]
    MessageTooLarge {
        /// Message length.
        len: usize,
    },
    /// Encoding into a fixed slice: not enough room.
    #[error("output buffer too small: need {need} bytes, have {have}")]
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// A well-framed netlink message in a reply buffer could not be decoded;
    /// the sequence number lets the transport attribute the failure to the
    /// request it belongs to.
    #[error("reply with seq {seq} (type {message_type}): {source}")]
    InMessage {
        /// `nlmsg_seq` of the offending message.
        seq: u32,
        /// `nlmsg_type` of the offending message.
        message_type: u16,
        /// What went wrong inside the message.
        #[source]
        source: Box<Error>,
    },
}

impl From<Error> for DecodeError {
    fn from(e: Error) -> Self {
        DecodeError::from(e.to_string())
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
