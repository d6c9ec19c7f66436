//! Sans-IO VRRP: packet encoding and decoding and the per-instance state
//! machine, for VRRPv2 (RFC 3768) and VRRPv3 (RFC 5798, RFC 9568) over
//! IPv4 and IPv6, wire-compatible with keepalived.
//!
//! Nothing here does I/O or reads a clock. The daemon:
//!
//! 1. builds an [`Instance`] from a validated [`InstanceConfig`];
//! 2. feeds it [`Event`]s with the current [`Time`]: [`Event::Startup`],
//!    received adverts (validated with [`Instance::receive`], then
//!    [`Received::into_event`]), [`Event::TimerFired`] when a timer armed
//!    by [`Action::ArmTimer`] expires, interface and priority changes,
//!    [`Event::Shutdown`];
//! 3. carries out the returned [`Action`]s in order: send adverts (encode
//!    with [`Instance::encode`]), add and remove virtual addresses, send
//!    gratuitous ARPs / unsolicited NAs, run notify hooks, arm and cancel
//!    timers.
//!
//! # Driving it from the daemon
//!
//! **Sockets.** Raw IP sockets for protocol [`IP_PROTOCOL`] (112), bound to
//! the interface, joined to [`IPV4_MULTICAST`] / [`IPV6_MULTICAST`] for
//! multicast instances. Send with TTL / hop limit [`TTL`] (255; for IPv4
//! also `IP_MULTICAST_TTL`, for IPv6 `IPV6_MULTICAST_HOPS`) and TOS /
//! traffic class [`TOS`] (0xc0), like keepalived. The source must be the
//! instance's [`InstanceConfig::primary_address`] (IPv6: a link-local
//! address): it is in the VRRPv3 pseudo-header checksum and it breaks
//! priority ties. On IPv6, `IPV6_CHECKSUM` with offset 6 makes the kernel
//! compute and verify the same checksum we do, which is harmless. With
//! `IP_HDRINCL` on IPv4, [`ip::ipv4_header`] builds keepalived's header. Turn
//! multicast loopback off, or rely on [`DropReason::FromSelf`].
//!
//! **Receiving.** Give [`Instance::receive`] the VRRP payload (IPv4:
//! [`ip::split_ipv4`] strips the header a raw socket delivers and reads
//! source, destination and TTL; IPv6: the payload)
//! and an [`RxMeta`] with the IP source, the IP destination (IPv6:
//! `IPV6_RECVPKTINFO`) and the TTL / hop limit (IPv6:
//! `IPV6_RECVHOPLIMIT`). [`packet::peek`] reads the VRID to find the
//! instance. Log the [`DropReason`] of dropped packets and the
//! [`Warning`]s of accepted ones, then pass [`Received::into_event`] to
//! [`Instance::handle`]. keepalived's IPsec AH (IP protocol 51) is not
//! supported; such adverts never reach a protocol-112 socket.
//!
//! **Sending.** [`Action::SendAdvert`] carries the advert; encode it with
//! [`Instance::encode`] once per destination: the multicast group, or each
//! of [`InstanceConfig::unicast_peers`] (the VRRPv3 pseudo-header contains
//! the destination). Send errors (interface down) are only worth a log
//! line: the state machine does not need to know.
//!
//! **Timers.** [`Action::ArmTimer`] gives an absolute deadline on the
//! caller's clock and replaces any earlier deadline of the same
//! [`Timer`]; [`Action::CancelTimer`] stops it. When a deadline passes,
//! feed [`Event::TimerFired`] with a `now` at or after it. Early, stale or
//! duplicate firings are ignored, so a sloppy timer wheel is safe.
//!
//! **Addresses and neighbours.** [`Action::AddAddresses`] /
//! [`Action::RemoveAddresses`] are rtnetlink address changes on the
//! interface; do them in order, before the gratuitous ARPs that follow.
//! [`Action::SendGratuitous`] asks for `repeat` gratuitous ARPs (IPv4) or
//! unsolicited neighbour advertisements (IPv6) per address; keepalived 2.2.7
//! sets only the override flag in those, not the router flag (see
//! `tests/captured/keepalived.txt`). Spacing them (keepalived's
//! `garp_interval`) is the daemon's choice. Send them from [`virtual_mac`] when using a VMAC
//! interface, otherwise from the interface's MAC as keepalived does
//! without `use_vmac`.
//!
//! **Tracking and notify.** The daemon computes the effective priority
//! from tracked scripts and interfaces and sends [`Event::PriorityChanged`];
//! a tracked object that must fault the instance maps to
//! [`Event::InterfaceDown`] / [`Event::InterfaceUp`]. [`Action::Notify`]
//! runs the notify hooks (`State::Initialize` means stopped). On SIGTERM
//! feed [`Event::Shutdown`] and carry out its actions (priority 0 advert,
//! then address removal) before exiting. Sync groups: put the instances in
//! a [`SyncGroup`] and route their events through it.
//!
//! ```
//! use vrrp_proto::{Action, Event, Instance, InstanceConfig, State, Time, Version};
//!
//! let mut cfg = InstanceConfig::new(
//!     10,
//!     Version::V3,
//!     "192.0.2.1".parse().unwrap(),
//!     vec!["192.0.2.100".parse().unwrap()],
//! );
//! cfg.priority = 255; // address owner: master at once
//! let mut vr = Instance::new(cfg.validate().unwrap());
//! let actions = vr.handle(Time::ZERO, Event::Startup);
//! assert_eq!(vr.state(), State::Master);
//! let Action::SendAdvert(advert) = &actions[0] else { panic!() };
//! let bytes = vr.encode(advert, "224.0.0.18".parse().unwrap()).unwrap();
//! assert_eq!(bytes[0], 0x31); // version 3, type 1
//! assert_eq!(bytes[2], 255);  // priority
//! ```

pub mod checksum;
pub mod config;
pub mod constants;
pub mod instance;
pub mod ip;
pub mod packet;
pub mod sync;
pub mod time;

pub use checksum::{V3Ipv4Checksum, V3Ipv4ChecksumRx};
pub use config::{ConfigError, GarpConfig, InstanceConfig, ValidConfig, validate_interval};
pub use constants::{
    IP_PROTOCOL, IPV4_MULTICAST, IPV6_MULTICAST, PRIORITY_OWNER, PRIORITY_STOP, TOS, TTL,
    multicast_group, virtual_mac,
};
pub use instance::{
    Action, DropReason, Event, Instance, Reason, Received, State, SyncCommand, Timer, Warning,
};
pub use packet::{
    AddressFamily, Advertisement, Auth, PacketError, RxMeta, Version, VersionFields, decode, encode,
};
pub use sync::SyncGroup;
pub use time::Time;
