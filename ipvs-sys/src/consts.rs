//! Numeric constants of the IPVS generic-netlink protocol.
//!
//! Every value here is taken from the kernel's UAPI header
//! `include/uapi/linux/ip_vs.h` (and `linux/netlink.h` for the few netlink
//! framing constants). The enums of the header are spelled out with their
//! explicit numeric values so that a reader can check them against the header
//! without counting enum members.

/// Generic-netlink family name registered by the kernel (`IPVS_GENL_NAME`).
pub const IPVS_GENL_NAME: &str = "IPVS";
/// Generic-netlink family version (`IPVS_GENL_VERSION`).
pub const IPVS_GENL_VERSION: u8 = 1;

/// Version code reported by current kernels in `IPVS_INFO_ATTR_VERSION`
/// (`IP_VS_VERSION_CODE`, i.e. 1.2.1).
pub const IP_VS_VERSION_CODE: u32 = 0x0001_0201;

// ---------------------------------------------------------------------------
// Commands (enum in ip_vs.h, IPVS_CMD_UNSPEC = 0).
// ---------------------------------------------------------------------------

/// Add a virtual service.
pub const IPVS_CMD_NEW_SERVICE: u8 = 1;
/// Modify a virtual service.
pub const IPVS_CMD_SET_SERVICE: u8 = 2;
/// Delete a virtual service.
pub const IPVS_CMD_DEL_SERVICE: u8 = 3;
/// Get one virtual service (doit) or dump all of them (dumpit).
pub const IPVS_CMD_GET_SERVICE: u8 = 4;
/// Add a destination (real server).
pub const IPVS_CMD_NEW_DEST: u8 = 5;
/// Modify a destination.
pub const IPVS_CMD_SET_DEST: u8 = 6;
/// Delete a destination.
pub const IPVS_CMD_DEL_DEST: u8 = 7;
/// Dump the destinations of one service (dump only).
pub const IPVS_CMD_GET_DEST: u8 = 8;
/// Start a connection-synchronisation daemon.
pub const IPVS_CMD_NEW_DAEMON: u8 = 9;
/// Stop a connection-synchronisation daemon.
pub const IPVS_CMD_DEL_DAEMON: u8 = 10;
/// Dump the running synchronisation daemons (dump only).
pub const IPVS_CMD_GET_DAEMON: u8 = 11;
/// Set the TCP / TCP FIN / UDP timeouts.
pub const IPVS_CMD_SET_CONFIG: u8 = 12;
/// Get the timeouts (doit only; the reply carries `IPVS_CMD_SET_CONFIG`).
pub const IPVS_CMD_GET_CONFIG: u8 = 13;
/// Only used as the command of the `IPVS_CMD_GET_INFO` reply.
pub const IPVS_CMD_SET_INFO: u8 = 14;
/// Get version and connection-table size (doit only).
pub const IPVS_CMD_GET_INFO: u8 = 15;
/// Zero the counters of one service, or of all services.
pub const IPVS_CMD_ZERO: u8 = 16;
/// Delete all services and destinations.
pub const IPVS_CMD_FLUSH: u8 = 17;

// ---------------------------------------------------------------------------
// First-level (command) attributes.
// ---------------------------------------------------------------------------

/// Nested service attributes.
pub const IPVS_CMD_ATTR_SERVICE: u16 = 1;
/// Nested destination attributes.
pub const IPVS_CMD_ATTR_DEST: u16 = 2;
/// Nested synchronisation-daemon attributes.
pub const IPVS_CMD_ATTR_DAEMON: u16 = 3;
/// TCP connection timeout, u32 seconds.
pub const IPVS_CMD_ATTR_TIMEOUT_TCP: u16 = 4;
/// TCP FIN_WAIT timeout, u32 seconds.
pub const IPVS_CMD_ATTR_TIMEOUT_TCP_FIN: u16 = 5;
/// UDP timeout, u32 seconds.
pub const IPVS_CMD_ATTR_TIMEOUT_UDP: u16 = 6;

// ---------------------------------------------------------------------------
// Service attributes (inside IPVS_CMD_ATTR_SERVICE).
// ---------------------------------------------------------------------------

/// Address family, u16 host order.
pub const IPVS_SVC_ATTR_AF: u16 = 1;
/// IP protocol, u16 host order.
pub const IPVS_SVC_ATTR_PROTOCOL: u16 = 2;
/// Virtual address, `union nf_inet_addr` (16 bytes from the kernel).
pub const IPVS_SVC_ATTR_ADDR: u16 = 3;
/// Virtual port, u16 **network** order.
pub const IPVS_SVC_ATTR_PORT: u16 = 4;
/// Firewall mark, u32 host order.
pub const IPVS_SVC_ATTR_FWMARK: u16 = 5;
/// Scheduler name, NUL-terminated string.
pub const IPVS_SVC_ATTR_SCHED_NAME: u16 = 6;
/// `struct ip_vs_flags { u32 flags; u32 mask; }`, host order.
pub const IPVS_SVC_ATTR_FLAGS: u16 = 7;
/// Persistence timeout, u32 seconds.
pub const IPVS_SVC_ATTR_TIMEOUT: u16 = 8;
/// Persistence netmask: IPv4 mask in network order, or IPv6 prefix length.
pub const IPVS_SVC_ATTR_NETMASK: u16 = 9;
/// Nested 32-bit statistics.
pub const IPVS_SVC_ATTR_STATS: u16 = 10;
/// Persistence-engine name, NUL-terminated string.
pub const IPVS_SVC_ATTR_PE_NAME: u16 = 11;
/// Nested 64-bit statistics.
pub const IPVS_SVC_ATTR_STATS64: u16 = 12;

// ---------------------------------------------------------------------------
// Destination attributes (inside IPVS_CMD_ATTR_DEST).
// ---------------------------------------------------------------------------

/// Real-server address, `union nf_inet_addr` (16 bytes from the kernel).
pub const IPVS_DEST_ATTR_ADDR: u16 = 1;
/// Real-server port, u16 **network** order.
pub const IPVS_DEST_ATTR_PORT: u16 = 2;
/// Forwarding method, u32 (`IP_VS_CONN_F_*` & `IP_VS_CONN_F_FWD_MASK`).
pub const IPVS_DEST_ATTR_FWD_METHOD: u16 = 3;
/// Weight, u32 on the wire, checked as a signed `int` by the kernel.
pub const IPVS_DEST_ATTR_WEIGHT: u16 = 4;
/// Upper connection threshold, u32.
pub const IPVS_DEST_ATTR_U_THRESH: u16 = 5;
/// Lower connection threshold, u32.
pub const IPVS_DEST_ATTR_L_THRESH: u16 = 6;
/// Active connections, u32 (reply only).
pub const IPVS_DEST_ATTR_ACTIVE_CONNS: u16 = 7;
/// Inactive connections, u32 (reply only).
pub const IPVS_DEST_ATTR_INACT_CONNS: u16 = 8;
/// Persistent connections, u32 (reply only).
pub const IPVS_DEST_ATTR_PERSIST_CONNS: u16 = 9;
/// Nested 32-bit statistics.
pub const IPVS_DEST_ATTR_STATS: u16 = 10;
/// Address family of the destination address, u16 (since Linux 3.18).
pub const IPVS_DEST_ATTR_ADDR_FAMILY: u16 = 11;
/// Nested 64-bit statistics.
pub const IPVS_DEST_ATTR_STATS64: u16 = 12;
/// Tunnel type, u8 (`IP_VS_CONN_F_TUNNEL_TYPE_*`).
pub const IPVS_DEST_ATTR_TUN_TYPE: u16 = 13;
/// Tunnel (GUE) destination port, u16 **network** order.
pub const IPVS_DEST_ATTR_TUN_PORT: u16 = 14;
/// Tunnel encapsulation flags, u16 host order.
pub const IPVS_DEST_ATTR_TUN_FLAGS: u16 = 15;

// ---------------------------------------------------------------------------
// Sync-daemon attributes (inside IPVS_CMD_ATTR_DAEMON).
// ---------------------------------------------------------------------------

/// Daemon state (master/backup), u32.
pub const IPVS_DAEMON_ATTR_STATE: u16 = 1;
/// Multicast interface name, NUL-terminated string.
pub const IPVS_DAEMON_ATTR_MCAST_IFN: u16 = 2;
/// Sync id, u32.
pub const IPVS_DAEMON_ATTR_SYNC_ID: u16 = 3;
/// Maximum sync message payload length, u16 host order.
pub const IPVS_DAEMON_ATTR_SYNC_MAXLEN: u16 = 4;
/// IPv4 multicast group, `struct in_addr` (4 bytes, network order).
pub const IPVS_DAEMON_ATTR_MCAST_GROUP: u16 = 5;
/// IPv6 multicast group, `struct in6_addr` (16 bytes).
pub const IPVS_DAEMON_ATTR_MCAST_GROUP6: u16 = 6;
/// Multicast base port, u16 **host** order (unlike the service ports).
pub const IPVS_DAEMON_ATTR_MCAST_PORT: u16 = 7;
/// Multicast TTL, u8.
pub const IPVS_DAEMON_ATTR_MCAST_TTL: u16 = 8;

// ---------------------------------------------------------------------------
// Statistics attributes (inside *_ATTR_STATS and *_ATTR_STATS64).
// ---------------------------------------------------------------------------

/// Connections scheduled.
pub const IPVS_STATS_ATTR_CONNS: u16 = 1;
/// Incoming packets.
pub const IPVS_STATS_ATTR_INPKTS: u16 = 2;
/// Outgoing packets.
pub const IPVS_STATS_ATTR_OUTPKTS: u16 = 3;
/// Incoming bytes (u64 in both nests).
pub const IPVS_STATS_ATTR_INBYTES: u16 = 4;
/// Outgoing bytes (u64 in both nests).
pub const IPVS_STATS_ATTR_OUTBYTES: u16 = 5;
/// Current connection rate.
pub const IPVS_STATS_ATTR_CPS: u16 = 6;
/// Current incoming packet rate.
pub const IPVS_STATS_ATTR_INPPS: u16 = 7;
/// Current outgoing packet rate.
pub const IPVS_STATS_ATTR_OUTPPS: u16 = 8;
/// Current incoming byte rate.
pub const IPVS_STATS_ATTR_INBPS: u16 = 9;
/// Current outgoing byte rate.
pub const IPVS_STATS_ATTR_OUTBPS: u16 = 10;
/// Alignment padding emitted by `nla_put_u64_64bit` on architectures without
/// efficient unaligned access; carries no data and is skipped.
pub const IPVS_STATS_ATTR_PAD: u16 = 11;

// ---------------------------------------------------------------------------
// Info attributes (first level of the IPVS_CMD_SET_INFO reply).
// ---------------------------------------------------------------------------

/// IPVS version code, u32 (`IP_VS_VERSION_CODE`).
pub const IPVS_INFO_ATTR_VERSION: u16 = 1;
/// Size of the connection hash table, u32.
pub const IPVS_INFO_ATTR_CONN_TAB_SIZE: u16 = 2;

// ---------------------------------------------------------------------------
// Service flags (IP_VS_SVC_F_*).
// ---------------------------------------------------------------------------

/// Persistent service.
pub const IP_VS_SVC_F_PERSISTENT: u32 = 0x0001;
/// Service is hashed in the kernel tables (set by the kernel).
pub const IP_VS_SVC_F_HASHED: u32 = 0x0002;
/// One-packet scheduling.
pub const IP_VS_SVC_F_ONEPACKET: u32 = 0x0004;
/// Scheduler flag 1 (`sh-fallback` / `mh-fallback`).
pub const IP_VS_SVC_F_SCHED1: u32 = 0x0008;
/// Scheduler flag 2 (`sh-port` / `mh-port`).
pub const IP_VS_SVC_F_SCHED2: u32 = 0x0010;
/// Scheduler flag 3 (unused by in-tree schedulers).
pub const IP_VS_SVC_F_SCHED3: u32 = 0x0020;
/// Source-hash fallback (`IP_VS_SVC_F_SCHED1`).
pub const IP_VS_SVC_F_SCHED_SH_FALLBACK: u32 = IP_VS_SVC_F_SCHED1;
/// Source-hash port (`IP_VS_SVC_F_SCHED2`).
pub const IP_VS_SVC_F_SCHED_SH_PORT: u32 = IP_VS_SVC_F_SCHED2;

// ---------------------------------------------------------------------------
// Forwarding methods (IP_VS_CONN_F_*, masked by IP_VS_CONN_F_FWD_MASK).
// ---------------------------------------------------------------------------

/// Mask of the forwarding-method bits.
pub const IP_VS_CONN_F_FWD_MASK: u32 = 0x0007;
/// Masquerading / NAT.
pub const IP_VS_CONN_F_MASQ: u32 = 0x0000;
/// Local node.
pub const IP_VS_CONN_F_LOCALNODE: u32 = 0x0001;
/// IP-in-IP (or GUE/GRE) tunnelling.
pub const IP_VS_CONN_F_TUNNEL: u32 = 0x0002;
/// Direct routing.
pub const IP_VS_CONN_F_DROUTE: u32 = 0x0003;
/// Cache bypass.
pub const IP_VS_CONN_F_BYPASS: u32 = 0x0004;

// ---------------------------------------------------------------------------
// Tunnel types and flags.
// ---------------------------------------------------------------------------

/// IP-in-IP encapsulation.
pub const IP_VS_CONN_F_TUNNEL_TYPE_IPIP: u8 = 0;
/// Generic UDP encapsulation.
pub const IP_VS_CONN_F_TUNNEL_TYPE_GUE: u8 = 1;
/// GRE encapsulation.
pub const IP_VS_CONN_F_TUNNEL_TYPE_GRE: u8 = 2;
/// No checksum.
pub const IP_VS_TUNNEL_ENCAP_FLAG_NOCSUM: u16 = 0;
/// Checksum.
pub const IP_VS_TUNNEL_ENCAP_FLAG_CSUM: u16 = 1 << 0;
/// Remote checksum offload.
pub const IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM: u16 = 1 << 1;

// ---------------------------------------------------------------------------
// Sync daemon states.
// ---------------------------------------------------------------------------

/// Daemon stopped.
pub const IP_VS_STATE_NONE: u32 = 0x0000;
/// Daemon runs as master.
pub const IP_VS_STATE_MASTER: u32 = 0x0001;
/// Daemon runs as backup.
pub const IP_VS_STATE_BACKUP: u32 = 0x0002;

// ---------------------------------------------------------------------------
// Name length limits (including the terminating NUL).
// ---------------------------------------------------------------------------

/// Scheduler-name buffer size; the kernel accepts at most 15 characters.
pub const IP_VS_SCHEDNAME_MAXLEN: usize = 16;
/// Persistence-engine-name buffer size.
pub const IP_VS_PENAME_MAXLEN: usize = 16;
/// Interface-name buffer size; the kernel accepts at most 15 characters.
pub const IP_VS_IFNAME_MAXLEN: usize = 16;

// ---------------------------------------------------------------------------
// Address families and protocols used by IPVS.
// ---------------------------------------------------------------------------

/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;
/// `IPPROTO_TCP`.
pub const IPPROTO_TCP: u16 = 6;
/// `IPPROTO_UDP`.
pub const IPPROTO_UDP: u16 = 17;
/// `IPPROTO_SCTP`.
pub const IPPROTO_SCTP: u16 = 132;

// ---------------------------------------------------------------------------
// Netlink framing.
// ---------------------------------------------------------------------------

/// Size of `struct nlmsghdr`.
pub const NLMSG_HDRLEN: usize = 16;
/// Size of `struct genlmsghdr`.
pub const GENL_HDRLEN: usize = 4;
/// Size of `struct nlattr`.
pub const NLA_HDRLEN: usize = 4;
/// `NLMSGERR_ATTR_MSG`: extended-ACK error string.
pub const NLMSGERR_ATTR_MSG: u16 = 1;
/// `NLMSGERR_ATTR_OFFS`: extended-ACK offset of the offending attribute.
pub const NLMSGERR_ATTR_OFFS: u16 = 2;
