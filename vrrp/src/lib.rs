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
