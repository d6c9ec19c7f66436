//! Safe, typed, high-level API for Linux IPVS.
//!
//! It will program the kernel through [`ipvs_sys`] (not wired up yet), so that users of
//! this crate never see netlink. What is here today is the typed model and its text forms.
//!
//! The model ([`Table`], [`Service`], [`Destination`], ...) validates on construction, so
//! a value of these types is always something the kernel accepts; errors name the object
//! ([`Error`]). [`ipvsadm`] reads and writes the `ipvsadm -S` / `ipvsadm -R` text format,
//! and every type (de)serialises with serde in a stable human-readable form (see
//! [`serde_impl`]).
//!
//! ```
//! use ipvs::{Destination, Forward, Scheduler, SchedFlags, Service, ServiceKey, Table};
//!
//! let mut svc = Service::builder(ServiceKey::udp("[2001:db8::53]:53".parse()?))
//!     .scheduler(Scheduler::SourceHashing)
//!     .sched_flags(SchedFlags::SH_PORT)
//!     .build()?;
//! svc.add_destination(Destination::new("[2001:db8:1::1]:53".parse()?, Forward::Masquerade)?)?;
//! svc.add_destination(
//!     Destination::new("[2001:db8:1::2]:53".parse()?, Forward::Masquerade)?.with_weight(2)?,
//! )?;
//! let mut table = Table::new();
//! table.add_service(svc)?;
//!
//! assert_eq!(
//!     ipvs::ipvsadm::print(&table),
//!     "-A -u [2001:db8::53]:53 -s sh -b sh-port\n\
//!      -a -u [2001:db8::53]:53 -r [2001:db8:1::1]:53 -m -w 1\n\
//!      -a -u [2001:db8::53]:53 -r [2001:db8:1::2]:53 -m -w 2\n"
//! );
//! assert_eq!(ipvs::ipvsadm::parse(&ipvs::ipvsadm::print(&table))?, table);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
pub mod ipvsadm;
mod kernel;
pub mod serde_impl;
mod types;

pub use error::{Error, Object, Problem};
pub use kernel::{
    Info, IpvsVersion, MAX_SYNC_MAXLEN, MAX_TIMEOUT, Stats, SyncDaemon, SyncState, Timeouts,
};
pub use types::{
    AddressFamily, DEFAULT_PERSISTENCE_TIMEOUT, Destination, Forward, FwMark, NAME_MAXLEN,
    Persistence, PersistenceEngine, PersistenceMask, Protocol, SchedFlags, Scheduler,
    SchedulerName, Service, ServiceBuilder, ServiceKey, Table, TunnelChecksum, TunnelKind,
    ipv6_to_string, socket_addr_to_string,
};

// The safe high-level API: conversions to netlink, the kernel handle, declarative reconcile.
mod handle;
pub mod netlink;
pub mod reconcile;
#[cfg(feature = "tokio")]
pub use handle::AsyncIpvs;
pub use handle::{ApiError, DestinationStats, Ipvs, Observed, STOP_DAEMON_WAIT, ServiceStats};
