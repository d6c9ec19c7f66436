//! The Linux IPVS generic-netlink protocol.
//!
//! This crate is the lowest layer of the project: a sans-IO message layer that
//! encodes and decodes every IPVS command and attribute byte for byte as the
//! kernel does (`include/uapi/linux/ip_vs.h`, `net/netfilter/ipvs/ip_vs_ctl.c`).
//! The message layer (every module but `transport`) performs no I/O; a
//! transport on top of it (the `transport` module is one)
//!
//! 1. resolves the id of the `"IPVS"` generic-netlink family (through the
//!    `nlctrl` family, e.g. with `netlink-packet-generic`'s `ctrl` module) and
//!    passes it in,
//! 2. encodes N requests with sequence numbers into one buffer
//!    ([`BatchEncoder`], [`encode_request`]) and sends it with one `sendmsg`,
//! 3. decodes what it receives ([`Replies`]) and routes each message,
//!    including `NLMSG_ERROR` errnos, to the request with the same
//!    `nlmsg_seq`.
//!
//! # Layout
//!
//! * [`IpvsMessage`] = [`Command`] + first-level attributes ([`CmdAttrs`], or
//!   [`InfoAttrs`] for the `SET_INFO` reply);
//! * nests: [`ServiceAttrs`], [`DestAttrs`], [`DaemonAttrs`], [`Stats`],
//!   [`Stats64`]; every attribute is an `Option`, unknown attributes are kept
//!   in `unknown` and re-emitted;
//! * [`consts`]: every numeric value of the protocol.
//!
//! `IpvsMessage` also implements the rust-netlink traits (`GenlFamily`,
//! `Emitable`, `ParseableParametrized<[u8], GenlHeader>`), so it can be used as
//! `NetlinkMessage<GenlMessage<IpvsMessage>>` with `netlink-proto`.
//!
//! # Wire quirks
//!
//! * Service and destination ports and the tunnel port are network order;
//!   the daemon multicast port is host order; everything else is host order.
//! * Addresses are the 16-byte `union nf_inet_addr`, IPv4 zero-padded, and
//!   are decoded according to the address family (the service's `af`, the
//!   destination's `addr_family` or, failing that, its service's `af`).
//! * The persistence netmask is an IPv4 mask (network order) or an IPv6
//!   prefix length (host-order u32, 1..=128): [`Netmask`].
//! * `IPVS_SVC_ATTR_FLAGS` is `struct ip_vs_flags { u32 flags; u32 mask; }`;
//!   dumps report the kernel-managed [`ServiceFlags::HASHED`] bit and
//!   `mask = !0`. Compare flags through [`ServiceFlags::user_settable`].
//! * Firewall-mark services come back without protocol, address and port.
//! * Statistics: u32 counters and u64 byte counters in `STATS`, u64
//!   everywhere in `STATS64`; `IPVS_STATS_ATTR_PAD` attributes are skipped.
//! * The weight is a u32 on the wire but the kernel rejects values above
//!   `i32::MAX` ([`MAX_WEIGHT`]).
//! * `GET_DEST` and `GET_DAEMON` are dump-only, `GET_CONFIG` and `GET_INFO`
//!   are not dumps, `GET_SERVICE` is both ([`IpvsMessage::is_dump`],
//!   [`IpvsMessage::request_flags`]).
//! * The `GET_INFO` reply (`SET_INFO`) puts its attributes at the first level
//!   with numbers that mean service/destination elsewhere.
//! * Nests are emitted without `NLA_F_NESTED` (as the kernel does); decoding
//!   accepts either.
//! * Attributes are emitted in the order of the kernel's
//!   `ip_vs_genl_fill_*()` (what dumps carry), except destinations next to a
//!   service nest (requests), which follow libipvs (`ADDR_FAMILY` first). Real
//!   ipvsadm 1.31 requests and Linux 6.1 replies (`tests/captured/`) thus
//!   re-encode byte for byte, apart from the `NLA_F_NESTED` bit newer libnl
//!   sets on its nests.
//! * Encoding into a buffer with room to spare allocates nothing
//!   (`tests/no_alloc.rs`); decoding allocates only for strings and unknown
//!   attributes.
//!
//! # For the transport
//!
//! * A `GET_DEST` dump of a service that does not exist is **empty** (only
//!   `NLMSG_DONE`), not an error; check the service separately if needed.
//! * Errnos worth knowing: `EEXIST` (service or destination exists),
//!   `ESRCH` (service missing for `SET/DEL/GET_SERVICE` and the destination
//!   commands), `ENOENT` (destination missing, or unknown scheduler /
//!   persistence engine), `ERANGE` (weight < 0 or `l_thresh > u_thresh`),
//!   `EINVAL` (missing attributes, bad IPv6 prefix length), `EAFNOSUPPORT`,
//!   `EOPNOTSUPP` (dump flag on a non-dump command or vice versa).
//! * The kernel handles the messages of one `sendmsg` in order and answers
//!   each; hundreds of ACKs can overflow a small receive buffer (`ENOBUFS`),
//!   so size `SO_RCVBUF` for the batch or set `NETLINK_CAP_ACK`.
//! * A request can go unanswered: `netlink_rcv_skb` sends no ACK and no
//!   error when a handler returns `-EINTR`, which `DEL_DAEMON` does when it
//!   stops a sync thread that has not run yet (a daemon stopped right after
//!   it was started). The daemon is stopped, but ipvsadm would wait forever;
//!   [`transport`] times out instead ([`transport::TransportError::Timeout`])
//!   and the socket goes on (tested in the lab).
//! * Only one dump runs per socket at a time and its output is produced as
//!   it is read, interleaved with later ACKs: put at most one dump in a batch,
//!   preferably last.
//!
//! # Example
//!
//! What `ipvsadm -A -t 192.0.2.10:80 -s rr` sends, and back:
//!
//! ```
//! use ipvs_sys::*;
//! let svc = ServiceAttrs::addr_key(Protocol::TCP, "192.0.2.10:80".parse().unwrap())
//!     .with_config("rr", ServiceFlags::EMPTY, 0);
//! let msg = IpvsMessage::new_service(svc);
//! let mut batch = BatchEncoder::new(0x1c, 1);
//! let seq = batch.push(&msg)?;
//! let bytes = batch.as_bytes();
//! let header = NlHeader::decode(bytes)?;
//! assert_eq!((header.seq, header.message_type), (seq, 0x1c));
//! let decoded = IpvsMessage::decode_genl(&bytes[16..], None)?;
//! assert_eq!(decoded, msg);
//! # Ok::<(), ipvs_sys::Error>(())
//! ```

pub mod batch;
pub mod consts;
pub mod daemon;
pub mod dest;
pub mod error;
pub mod info;
pub mod message;
mod nla;
pub mod reply;
pub mod service;
pub mod stats;
pub mod transport;
pub mod types;

pub use batch::{BatchEncoder, encode_message, encode_request, encode_request_into, encoded_len};
pub use daemon::DaemonAttrs;
pub use dest::{DestAttrs, MAX_WEIGHT};
pub use error::{Error, Result};
pub use info::{InfoAttrs, IpvsVersion};
pub use message::{CmdAttrs, Command, IpvsMessage, MessageAttrs};
pub use reply::{
    NetlinkError, NlHeader, Replies, Reply, ReplyPayload, decode_replies, encode_ack, encode_done,
};
pub use service::ServiceAttrs;
pub use stats::{Stats, Stats64};
pub use types::{
    AddressFamily, DaemonState, ForwardMethod, Netmask, Protocol, RawAttr, ServiceFlags, SvcFlags,
    TunnelFlags, TunnelType,
};
