//! The VRRP I/O layer: drives [`vrrp_proto::Instance`]s on real interfaces,
//! wire-compatible with keepalived.
//!
//! * [`socket`]: raw IPv4 / IPv6 protocol-112 sockets bound to the
//!   interface, multicast or unicast, TOS / traffic class 0xc0, TTL / hop
//!   limit 255, like keepalived;
//! * [`addr`]: rtnetlink: interface lookup and link state, virtual
//!   addresses added and removed with their prefix (idempotent);
//! * [`garp`]: gratuitous ARPs and unsolicited neighbour advertisements
//!   through `AF_PACKET`;
//! * [`vmac`]: virtual MAC interfaces (keepalived's `use_vmac`), macvlans
//!   with the virtual router's MAC address;
//! * [`notify`]: notify commands (argv, no shell, with a timeout, queued
//!   per instance);
//! * [`driver`]: one tokio task per instance (or per sync group) that feeds
//!   the state machine its events (startup, adverts, timers, link up /
//!   down, tracking, shutdown) and carries out its actions in order;
//! * [`from_config`]: the YAML configuration mapped onto [`InstanceSpec`]s.
//!
//! The entry points are [`run`], [`run_instances`] and [`run_with_status`]:
//! they take plain values ([`InstanceSpec`], [`SyncGroupSpec`]), which
//! [`from_config::specs`] builds from the configuration, and a shutdown
//! future (SIGTERM), after which every master sends its priority 0 advert
//! and removes its addresses:
//!
//! ```no_run
//! # async fn daemon(cfg: keepalive_d::config::Config) -> Result<(), keepalive_d::vrrp_io::Error> {
//! use keepalive_d::vrrp_io::{from_config, run};
//!
//! let (instances, groups) = from_config::specs(&cfg);
//! let shutdown = async { /* wait for SIGTERM */ };
//! run(instances, groups, shutdown).await
//! # }
//! ```
//!
//! Interoperability with keepalived 2.2.7 (VRRPv2 and v3, IPv4 and IPv6,
//! multicast and unicast, failover, preemption, split brain, sync groups,
//! tracking) is tested in `keepalive-d/tests/vrrp_interop.rs`.
//!
//! Everything happens in the caller's network namespace and needs
//! `CAP_NET_RAW` and `CAP_NET_ADMIN`. Not supported: IPsec AH
//! authentication, reloading the configuration of running instances.

pub mod addr;
pub mod driver;
pub mod from_config;
pub mod garp;
pub mod notify;
pub mod socket;
pub mod state_file;
mod timer;
pub mod vmac;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};

use crate::StopMode;
use vrrp_proto::{AddressFamily, ConfigError, DropReason, Instance, InstanceConfig, Reason, State};

pub use notify::NotifySpec;

/// A virtual address and the prefix length it is added with
/// (`192.0.2.10/24`; without a prefix, a host address: /32 or /128, like
/// keepalived).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VirtualAddress {
    /// The address.
    pub address: IpAddr,
    /// The prefix length.
    pub prefix_len: u8,
}

impl VirtualAddress {
    /// `address/prefix_len`.
    pub const fn new(address: IpAddr, prefix_len: u8) -> Self {
        VirtualAddress {
            address,
            prefix_len,
        }
    }

    /// A host address: /32 or /128.
    pub const fn host(address: IpAddr) -> Self {
        let prefix_len = match address {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        VirtualAddress {
            address,
            prefix_len,
        }
    }

    fn max_prefix(&self) -> u8 {
        match self.address {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        }
    }
}

impl fmt::Display for VirtualAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

/// A virtual address that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid virtual address {0:?}: expected ADDRESS or ADDRESS/PREFIX")]
pub struct ParseVirtualAddressError(String);

impl FromStr for VirtualAddress {
    type Err = ParseVirtualAddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseVirtualAddressError(s.to_string());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let address: IpAddr = addr.parse().map_err(|_| err())?;
        let mut v = VirtualAddress::host(address);
        if let Some(p) = prefix {
            v.prefix_len = p.parse().map_err(|_| err())?;
            if v.prefix_len > v.max_prefix() {
                return Err(err());
            }
        }
        Ok(v)
    }
}

/// One VRRP instance to run: plain values, mapped from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    /// Instance name (logs, notify arguments).
    pub name: String,
    /// The interface the instance runs on.
    pub interface: String,
    /// The protocol configuration. Its `virtual_addresses` are replaced by
    /// [`InstanceSpec::virtual_addresses`]. An unspecified
    /// `primary_address` (`0.0.0.0` or `::`) is filled in from the
    /// interface: its first IPv4 address that is not a virtual address, or
    /// its IPv6 link-local address.
    pub config: InstanceConfig,
    /// The virtual addresses with their prefix lengths.
    pub virtual_addresses: Vec<VirtualAddress>,
    /// Notify commands.
    pub notify: NotifySpec,
    /// Spacing between the gratuitous ARPs / NAs of one burst (keepalived
    /// `garp_interval` / `gna_interval`; zero sends the burst at once).
    pub garp_interval: Duration,
    /// Further interfaces whose loss puts the instance in Fault
    /// (keepalived `track_interface` without weights).
    pub track_interfaces: Vec<String>,
    /// Scripts that adjust the priority or fault the instance (keepalived
    /// `track_script`).
    pub track_scripts: Vec<TrackScript>,
    /// Where the instance keeps its state file (`vrrp-<name>.state`) so that a quick
    /// restart resumes as Master ([`state_file`]); `None`: no state file.
    pub state_dir: Option<std::path::PathBuf>,
    /// The virtual MAC interface to create over [`InstanceSpec::interface`] and run on
    /// (keepalived's `use_vmac`, see [`vmac`]); `None`: the interface itself.
    pub vmac: Option<VmacSpec>,
}

/// A virtual MAC interface (see [`vmac`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmacSpec {
    /// The macvlan's name (at most 15 bytes).
    pub name: String,
}

/// A tracked script (keepalived `vrrp_script`): run as argv, no shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackScript {
    /// The command.
    pub argv: Vec<String>,
    /// Time between runs.
    pub interval: Duration,
    /// A run taking longer fails (and is killed).
    pub timeout: Duration,
    /// 0: a failing script faults the instance. Positive: added to the
    /// priority while the script passes. Negative: added while it fails.
    pub weight: i16,
    /// Successes in a row that make a failing script pass.
    pub rise: u32,
    /// Failures in a row that make a passing script fail.
    pub fall: u32,
}

impl InstanceSpec {
    /// A spec with no notify commands and unspaced gratuitous ARPs.
    pub fn new(
        name: impl Into<String>,
        interface: impl Into<String>,
        config: InstanceConfig,
        virtual_addresses: Vec<VirtualAddress>,
    ) -> Self {
        InstanceSpec {
            name: name.into(),
            interface: interface.into(),
            config,
            virtual_addresses,
            notify: NotifySpec::default(),
            garp_interval: Duration::ZERO,
            track_interfaces: Vec::new(),
            track_scripts: Vec::new(),
            state_dir: None,
            vmac: None,
        }
    }
}

/// A sync group: instances that change state together (keepalived's
/// `vrrp_sync_group`, see [`vrrp_proto::SyncGroup`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupSpec {
    /// Group name (logs).
    pub name: String,
    /// The names of its instances ([`InstanceSpec::name`]).
    pub instances: Vec<String>,
}

/// What an instance is doing, published by [`run_with_status`].
///
/// Watchers are notified when the state, priority, master or transition count change;
/// the traffic counters (`adverts_*`, `receive_errors`) are updated in place without a
/// notification (they change with every advert), so a reader sees them when it looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceStatus {
    /// Its state (`Initialize`: stopped).
    pub state: State,
    /// The priority it advertises (tracking included).
    pub priority: u8,
    /// The master it last accepted an advert from, while Backup.
    pub master: Option<IpAddr>,
    /// The last state change: when, to what and why (`None` before the first).
    pub last_transition: Option<StateChange>,
    /// State changes since the instance started (entering Backup at start-up counts).
    pub transitions: u64,
    /// Adverts sent (one per destination: the group, or each unicast peer).
    pub adverts_sent: u64,
    /// Adverts of this instance's VRID accepted from other routers.
    pub adverts_received: u64,
    /// Datagrams dropped on receive, by reason.
    pub receive_errors: ReceiveErrors,
}

impl InstanceStatus {
    /// A status with no transition and zero counters.
    pub const fn new(state: State, priority: u8, master: Option<IpAddr>) -> Self {
        InstanceStatus {
            state,
            priority,
            master,
            last_transition: None,
            transitions: 0,
            adverts_sent: 0,
            adverts_received: 0,
            receive_errors: ReceiveErrors::new(),
        }
    }

    /// Whether `other` differs in what watchers are notified about (state, priority,
    /// master, transitions), as opposed to the traffic counters only.
    pub fn differs_notably(&self, other: &InstanceStatus) -> bool {
        (self.state, self.priority, self.master, self.transitions)
            != (other.state, other.priority, other.master, other.transitions)
    }
}

/// One state change of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChange {
    /// When it happened (wall clock).
    pub at: std::time::SystemTime,
    /// The state entered.
    pub state: State,
    /// Why, as the state machine says ([`Reason::name`]: `master-down`, `higher-priority`, ...).
    pub reason: Reason,
}

/// Why a received datagram was dropped: [`vrrp_proto::DropReason`] without its details,
/// plus datagrams the socket layer could not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReceiveError {
    /// Not a VRRP packet we can parse (short, truncated, bad version, type or checksum).
    Malformed,
    /// Another address family than the instance's.
    FamilyMismatch,
    /// TTL / hop limit not 255.
    BadTtl,
    /// Another VRID (only counted when it slips past the VRID filter).
    WrongVrid,
    /// The other VRRP version.
    VersionMismatch,
    /// Multicast advert on a unicast instance, or the reverse.
    UnexpectedDestination,
    /// Unicast advert from an address that is not a configured peer.
    UnknownUnicastSource,
    /// VRRPv2 authentication type not supported.
    UnsupportedAuth,
    /// VRRPv2 authentication type differs from ours.
    AuthTypeMismatch,
    /// VRRPv2 password differs from ours.
    AuthMismatch,
    /// VRRPv2 advertisement interval differs from ours.
    IntervalMismatch,
    /// VRRPv3 advert with a zero interval.
    ZeroInterval,
    /// Adverts ignored because we own the addresses.
    AddressOwner,
}

impl ReceiveError {
    /// Every reason, in a fixed order (the order of [`ReceiveErrors::iter`]).
    pub const ALL: [ReceiveError; 13] = [
        ReceiveError::Malformed,
        ReceiveError::FamilyMismatch,
        ReceiveError::BadTtl,
        ReceiveError::WrongVrid,
        ReceiveError::VersionMismatch,
        ReceiveError::UnexpectedDestination,
        ReceiveError::UnknownUnicastSource,
        ReceiveError::UnsupportedAuth,
        ReceiveError::AuthTypeMismatch,
        ReceiveError::AuthMismatch,
        ReceiveError::IntervalMismatch,
        ReceiveError::ZeroInterval,
        ReceiveError::AddressOwner,
    ];

    /// The reason of a [`DropReason`]; `None` for our own looped-back adverts, which are
    /// not an error.
    pub const fn of(drop: &DropReason) -> Option<ReceiveError> {
        Some(match drop {
            DropReason::FromSelf => return None,
            DropReason::FamilyMismatch => ReceiveError::FamilyMismatch,
            DropReason::BadTtl(_) => ReceiveError::BadTtl,
            DropReason::Malformed(_) => ReceiveError::Malformed,
            DropReason::WrongVrid(_) => ReceiveError::WrongVrid,
            DropReason::VersionMismatch(_) => ReceiveError::VersionMismatch,
            DropReason::UnexpectedDestination(_) => ReceiveError::UnexpectedDestination,
            DropReason::UnknownUnicastSource(_) => ReceiveError::UnknownUnicastSource,
            DropReason::UnsupportedAuth(_) => ReceiveError::UnsupportedAuth,
            DropReason::AuthTypeMismatch { .. } => ReceiveError::AuthTypeMismatch,
            DropReason::AuthMismatch => ReceiveError::AuthMismatch,
            DropReason::IntervalMismatch { .. } => ReceiveError::IntervalMismatch,
            DropReason::ZeroInterval => ReceiveError::ZeroInterval,
            DropReason::AddressOwner => ReceiveError::AddressOwner,
        })
    }

    /// Snake-case name (metric label, JSON key): `bad_ttl`, `auth_mismatch`, ...
    pub const fn name(self) -> &'static str {
        match self {
            ReceiveError::Malformed => "malformed",
            ReceiveError::FamilyMismatch => "family_mismatch",
            ReceiveError::BadTtl => "bad_ttl",
            ReceiveError::WrongVrid => "wrong_vrid",
            ReceiveError::VersionMismatch => "version_mismatch",
            ReceiveError::UnexpectedDestination => "unexpected_destination",
            ReceiveError::UnknownUnicastSource => "unknown_unicast_source",
            ReceiveError::UnsupportedAuth => "unsupported_auth",
            ReceiveError::AuthTypeMismatch => "auth_type_mismatch",
            ReceiveError::AuthMismatch => "auth_mismatch",
            ReceiveError::IntervalMismatch => "interval_mismatch",
            ReceiveError::ZeroInterval => "zero_interval",
            ReceiveError::AddressOwner => "address_owner",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Receive errors counted by [`ReceiveError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReceiveErrors([u64; ReceiveError::ALL.len()]);

impl ReceiveErrors {
    /// All zero.
    pub const fn new() -> Self {
        ReceiveErrors([0; ReceiveError::ALL.len()])
    }

    /// Counts one drop for `reason`.
    pub fn record(&mut self, reason: ReceiveError) {
        if let Some(c) = self.0.get_mut(reason.index()) {
            *c = c.saturating_add(1);
        }
    }

    /// The count for `reason`.
    pub fn get(&self, reason: ReceiveError) -> u64 {
        self.0.get(reason.index()).copied().unwrap_or(0)
    }

    /// Every reason with its count (zeros included), in [`ReceiveError::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (ReceiveError, u64)> + '_ {
        ReceiveError::ALL.iter().map(|r| (*r, self.get(*r)))
    }

    /// The sum over all reasons.
    pub fn total(&self) -> u64 {
        self.0.iter().fold(0u64, |a, b| a.saturating_add(*b))
    }
}

/// The status of every instance, by name.
pub type StatusMap = BTreeMap<String, InstanceStatus>;

/// Why instances could not be started.
#[derive(Debug, Error)]
pub enum Error {
    /// The interface does not exist or cannot be read.
    #[error("instance {instance}: interface {interface}: {source}")]
    Interface {
        /// Instance name.
        instance: String,
        /// Interface name.
        interface: String,
        /// The cause.
        source: io::Error,
    },
    /// No address on the interface to use as the primary address.
    #[error("instance {instance}: no {family} address on {interface} to send adverts from")]
    NoPrimaryAddress {
        /// Instance name.
        instance: String,
        /// Interface name.
        interface: String,
        /// `IPv4` or `IPv6 link-local`.
        family: &'static str,
    },
    /// A prefix longer than the address.
    #[error("instance {instance}: virtual address {address}: prefix too long")]
    BadPrefix {
        /// Instance name.
        instance: String,
        /// The address.
        address: VirtualAddress,
    },
    /// The protocol configuration is invalid.
    #[error("instance {instance}: {source}")]
    Config {
        /// Instance name.
        instance: String,
        /// The cause.
        source: ConfigError,
    },
    /// Two instances share a VRID on the same interface and family.
    #[error("instances {first} and {second} both use VRID {vrid} on {interface}")]
    DuplicateVrid {
        /// The first instance.
        first: String,
        /// The second instance.
        second: String,
        /// The VRID.
        vrid: u8,
        /// The interface.
        interface: String,
    },
    /// A sync group names an instance that does not exist.
    #[error("sync group {group}: no instance {instance}")]
    UnknownSyncMember {
        /// Group name.
        group: String,
        /// The missing instance.
        instance: String,
    },
    /// An instance is in two sync groups, or twice in one.
    #[error("instance {instance} is in more than one sync group")]
    DuplicateSyncMember {
        /// The instance.
        instance: String,
    },
    /// Two instances have the same name.
    #[error("two instances are named {0}")]
    DuplicateName(String),
    /// Sockets could not be opened (missing privileges?).
    #[error("instance {instance}: {what}: {source}")]
    Io {
        /// Instance name.
        instance: String,
        /// What failed.
        what: &'static str,
        /// The cause.
        source: io::Error,
    },
}

fn prepare(spec: InstanceSpec) -> Result<driver::Prepared, Error> {
    let InstanceSpec {
        name,
        interface,
        mut config,
        virtual_addresses,
        notify,
        garp_interval,
        track_interfaces,
        track_scripts,
        state_dir,
        vmac,
    } = spec;
    let io_err = |what: &'static str| {
        let instance = name.clone();
        move |source| Error::Io {
            instance,
            what,
            source,
        }
    };
    for v in &virtual_addresses {
        if v.prefix_len > v.max_prefix() {
            return Err(Error::BadPrefix {
                instance: name,
                address: *v,
            });
        }
    }
    config.virtual_addresses = virtual_addresses.iter().map(|v| v.address).collect();
    let mut rtnl = addr::Rtnl::new().map_err(io_err("rtnetlink"))?;
    let link = rtnl.link(&interface).map_err(|source| Error::Interface {
        instance: name.clone(),
        interface: interface.clone(),
        source,
    })?;
    let ipv6 = config.family() == AddressFamily::Ipv6;
    if config.primary_address.is_unspecified() {
        let found = addr::primary_address(&mut rtnl, link.index, ipv6, &config.virtual_addresses)
            .map_err(io_err("reading interface addresses"))?;
        config.primary_address = found.ok_or_else(|| Error::NoPrimaryAddress {
            instance: name.clone(),
            interface: interface.clone(),
            family: if ipv6 { "IPv6 link-local" } else { "IPv4" },
        })?;
    }
    let multicast = config.unicast_peers.is_empty();
    let valid = config.validate().map_err(|source| Error::Config {
        instance: name.clone(),
        source,
    })?;
    // With a virtual MAC interface, the instance runs on it: addresses, adverts (sent
    // from its MAC; unicast adverts, addressed to the parent's MAC, are still received on
    // the parent) and gratuitous ARPs / NAs.
    let vmac = match vmac {
        Some(v) => {
            let vmac_err = |source| Error::Interface {
                instance: name.clone(),
                interface: v.name.clone(),
                source,
            };
            Some(
                vmac::Vmac::acquire(&mut rtnl, &v.name, link.index, valid.vrid, ipv6)
                    .map_err(vmac_err)?,
            )
        }
        None => None,
    };
    let (run_on, run_index, run_mac) = match &vmac {
        Some(v) => (v.name.clone(), v.index, Some(v.mac)),
        None => (interface.clone(), link.index, link.mac),
    };
    let (sock, tx) = if multicast || vmac.is_none() {
        let sock = socket::VrrpSocket::open(&run_on, run_index, ipv6, multicast)
            .map_err(io_err("opening the VRRP socket"))?;
        (sock, None)
    } else {
        let rx = socket::VrrpSocket::open(&interface, link.index, ipv6, false)
            .map_err(io_err("opening the VRRP socket"))?;
        let tx = socket::VrrpSocket::open(&run_on, run_index, ipv6, false)
            .map_err(io_err("opening the VRRP socket"))?;
        (rx, Some(tx))
    };
    let garp = match run_mac {
        Some(_) => {
            Some(garp::GarpSocket::open(run_index).map_err(io_err("opening the packet socket"))?)
        }
        None => None,
    };
    let monitor = addr::LinkMonitor::new(link.index).map_err(io_err("link monitor"))?;
    let mut tracked = Vec::with_capacity(track_interfaces.len());
    for t in &track_interfaces {
        let l = rtnl.link(t).map_err(|source| Error::Interface {
            instance: name.clone(),
            interface: t.clone(),
            source,
        })?;
        tracked.push(addr::LinkMonitor::new(l.index).map_err(io_err("link monitor"))?);
    }
    // The virtual MAC interface is tracked like the interface: deleted or set down by
    // hand, the instance goes to FAULT (and a Master gives way) instead of advertising
    // into nothing.
    if let Some(v) = &vmac {
        tracked.push(addr::LinkMonitor::new(v.index).map_err(io_err("link monitor"))?);
    }
    // IPv6 adverts go out from the parent's link-local address (RFC 5798 5.1.2.2), which
    // must be an address of the interface they leave by: the macvlan gets it while Master
    // (a Backup's macvlan with an address of its own would send router solicitations and
    // MLD reports from the virtual MAC).
    let link_local = vmac
        .as_ref()
        .filter(|_| ipv6)
        .map(|_| VirtualAddress::new(valid.primary_address, 64));
    let instance = Instance::new(valid);
    let state_path = state_dir.map(|d| d.join(format!("vrrp-{name}.state")));
    let resume_until = state_path
        .as_deref()
        .and_then(|p| state_file::resume_deadline(p, |peer| instance.resume_window(peer)));
    Ok(driver::Prepared {
        resume_until,
        state_path,
        name,
        interface: run_on,
        ifindex: run_index,
        parent_ifindex: vmac.as_ref().map(|_| link.index),
        link_local,
        mac: run_mac,
        vips: virtual_addresses,
        instance,
        sock,
        tx,
        vmac,
        garp,
        link: monitor,
        tracked,
        scripts: track_scripts,
        rtnl,
        notify,
        garp_interval,
    })
}

/// Runs `instances` until `shutdown` completes, then stops them gracefully
/// (a master sends a priority 0 advert and removes its addresses; stop
/// notifications run) and returns. Same as [`run`] without sync groups.
pub async fn run_instances(
    instances: Vec<InstanceSpec>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    run(instances, Vec::new(), shutdown).await
}

/// Runs `instances`, the members of each of `sync_groups` together, until
/// `shutdown` completes; then stops them gracefully (every master sends a
/// priority 0 advert and removes its addresses; stop notifications run)
/// and returns.
///
/// Every instance is set up (interface, primary address, validation,
/// sockets) before any starts: an error there returns at once and nothing
/// runs. Afterwards I/O errors are logged, never fatal. Must be called
/// within a tokio runtime (current-thread is enough); sockets open in the
/// calling thread's network namespace.
pub async fn run(
    instances: Vec<InstanceSpec>,
    sync_groups: Vec<SyncGroupSpec>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let (status, _) = watch::channel(StatusMap::new());
    run_with_status(instances, sync_groups, status, shutdown).await
}

/// [`run`], publishing every instance's [`InstanceStatus`] on `status`
/// as it changes (for a status command, or to follow the VRRP state).
pub async fn run_with_status(
    instances: Vec<InstanceSpec>,
    sync_groups: Vec<SyncGroupSpec>,
    status: watch::Sender<StatusMap>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let (_keep, reloads) = mpsc::channel(1);
    run_reloadable(instances, sync_groups, status, reloads, shutdown).await
}

/// A new set of instances for [`run_reloadable`].
#[derive(Debug)]
pub struct VrrpReload {
    /// The instances.
    pub instances: Vec<InstanceSpec>,
    /// The sync groups.
    pub sync_groups: Vec<SyncGroupSpec>,
    /// What changed, or why nothing did.
    pub reply: oneshot::Sender<Result<VrrpReloadReport, Error>>,
}

/// What a [`VrrpReload`] changed, by instance name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VrrpReloadReport {
    /// Unchanged: still running, state, timers and addresses untouched.
    pub kept: Vec<String>,
    /// Changed: stopped (priority 0 if Master, addresses removed) and started again.
    pub restarted: Vec<String>,
    /// New.
    pub started: Vec<String>,
    /// Gone: stopped.
    pub stopped: Vec<String>,
}

/// A running unit: one instance, or the members of one sync group.
struct Unit {
    specs: Vec<InstanceSpec>,
    stop: watch::Sender<Option<StopMode>>,
    task: tokio::task::JoinHandle<()>,
}

impl Unit {
    fn names(&self) -> impl Iterator<Item = &str> {
        self.specs.iter().map(|s| s.name.as_str())
    }

    async fn stop(self, mode: StopMode) {
        let _ = self.stop.send(Some(mode));
        if let Err(e) = self.task.await {
            tracing::error!("VRRP instance task failed: {e}");
        }
    }
}

/// Groups instances into units (each sync group, then each instance outside any group),
/// members in the order their group lists them.
fn plan_units(
    instances: Vec<InstanceSpec>,
    sync_groups: &[SyncGroupSpec],
) -> Result<Vec<Vec<InstanceSpec>>, Error> {
    check_unique(&instances)?;
    let mut unit_of: Vec<Option<usize>> = vec![None; instances.len()];
    for (g, group) in sync_groups.iter().enumerate() {
        for name in &group.instances {
            let i = instances
                .iter()
                .position(|s| &s.name == name)
                .ok_or_else(|| Error::UnknownSyncMember {
                    group: group.name.clone(),
                    instance: name.clone(),
                })?;
            if unit_of[i].is_some() {
                return Err(Error::DuplicateSyncMember {
                    instance: name.clone(),
                });
            }
            unit_of[i] = Some(g);
        }
    }
    let mut next = sync_groups.len();
    for u in &mut unit_of {
        if u.is_none() {
            *u = Some(next);
            next += 1;
        }
    }
    let mut units: Vec<Vec<InstanceSpec>> = (0..next).map(|_| Vec::new()).collect();
    let mut order: Vec<(usize, usize, InstanceSpec)> = Vec::new();
    for (i, spec) in instances.into_iter().enumerate() {
        let unit = unit_of[i].unwrap_or(0);
        let pos = sync_groups
            .get(unit)
            .and_then(|g| g.instances.iter().position(|n| n == &spec.name))
            .unwrap_or(0);
        order.push((unit, pos, spec));
    }
    order.sort_by_key(|(u, p, _)| (*u, *p));
    for (unit, _, spec) in order {
        if let Some(u) = units.get_mut(unit) {
            u.push(spec);
        }
    }
    units.retain(|u| !u.is_empty());
    Ok(units)
}

fn spawn_unit(
    specs: Vec<InstanceSpec>,
    prepared: Vec<driver::Prepared>,
    status: &watch::Sender<StatusMap>,
) -> Unit {
    let (stop, stop_rx) = watch::channel(None);
    let task = tokio::spawn(driver::drive(prepared, stop_rx, status.clone()));
    Unit { specs, stop, task }
}

fn prepare_unit(specs: &[InstanceSpec]) -> Result<Vec<driver::Prepared>, Error> {
    specs.iter().cloned().map(prepare).collect()
}

/// [`run_with_status`], also applying the [`VrrpReload`]s received on `reloads`: units
/// (an instance, or a sync group) whose specification did not change keep running
/// untouched; changed ones are stopped and started again; removed ones are stopped; new
/// ones are started. A reload whose instances cannot be set up changes nothing.
pub async fn run_reloadable(
    instances: Vec<InstanceSpec>,
    sync_groups: Vec<SyncGroupSpec>,
    status: watch::Sender<StatusMap>,
    mut reloads: mpsc::Receiver<VrrpReload>,
    shutdown: impl Future<Output = impl Into<StopMode>>,
) -> Result<(), Error> {
    let planned = plan_units(instances, &sync_groups)?;
    // Every instance is set up before any runs: a setup error starts nothing.
    let mut prepared = Vec::with_capacity(planned.len());
    for specs in &planned {
        prepared.push(prepare_unit(specs)?);
    }
    let mut units: Vec<Unit> = planned
        .into_iter()
        .zip(prepared)
        .map(|(specs, p)| spawn_unit(specs, p, &status))
        .collect();
    tokio::pin!(shutdown);
    let mut reloads_open = true;
    let mode = loop {
        tokio::select! {
            m = &mut shutdown => break m.into(),
            r = reloads.recv(), if reloads_open => match r {
                None => reloads_open = false,
                Some(req) => {
                    let result = reload_units(&mut units, req.instances, &req.sync_groups, &status).await;
                    let _ = req.reply.send(result);
                }
            },
        }
    };
    for unit in units {
        unit.stop(mode).await;
    }
    Ok(())
}

async fn reload_units(
    units: &mut Vec<Unit>,
    instances: Vec<InstanceSpec>,
    sync_groups: &[SyncGroupSpec],
    status: &watch::Sender<StatusMap>,
) -> Result<VrrpReloadReport, Error> {
    let planned = plan_units(instances, sync_groups)?;
    let (keep, start): (Vec<_>, Vec<_>) = planned
        .into_iter()
        .partition(|specs| units.iter().any(|u| &u.specs == specs));
    // Set up what starts before touching what runs.
    let mut prepared = Vec::with_capacity(start.len());
    for specs in &start {
        prepared.push(prepare_unit(specs)?);
    }
    let new_names: Vec<String> = start.iter().flatten().map(|s| s.name.clone()).collect();
    let mut report = VrrpReloadReport::default();
    let old = std::mem::take(units);
    for unit in old {
        if keep.iter().any(|specs| &unit.specs == specs) {
            report.kept.extend(unit.names().map(str::to_owned));
            units.push(unit);
            continue;
        }
        let names: Vec<String> = unit.names().map(str::to_owned).collect();
        unit.stop(StopMode::Resign).await;
        for name in names {
            if new_names.contains(&name) {
                report.restarted.push(name);
            } else {
                status.send_modify(|m| {
                    m.remove(&name);
                });
                report.stopped.push(name);
            }
        }
    }
    for (specs, p) in start.into_iter().zip(prepared) {
        for s in &specs {
            if !report.restarted.contains(&s.name) {
                report.started.push(s.name.clone());
            }
        }
        units.push(spawn_unit(specs, p, status));
    }
    Ok(report)
}

fn check_unique(instances: &[InstanceSpec]) -> Result<(), Error> {
    for (i, spec) in instances.iter().enumerate() {
        for earlier in &instances[..i] {
            if earlier.name == spec.name {
                return Err(Error::DuplicateName(spec.name.clone()));
            }
            if earlier.interface == spec.interface
                && earlier.config.family() == spec.config.family()
                && earlier.config.vrid == spec.config.vrid
            {
                return Err(Error::DuplicateVrid {
                    first: earlier.name.clone(),
                    second: spec.name.clone(),
                    vrid: spec.config.vrid,
                    interface: spec.interface.clone(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, interface: &str, vrid: u8) -> InstanceSpec {
        let cfg = InstanceConfig::new(
            vrid,
            vrrp_proto::Version::V3,
            IpAddr::from([192, 0, 2, 1]),
            Vec::new(),
        );
        InstanceSpec::new(
            name,
            interface,
            cfg,
            vec![VirtualAddress::host(IpAddr::from([192, 0, 2, 100]))],
        )
    }

    async fn start(instances: Vec<InstanceSpec>, groups: Vec<SyncGroupSpec>) -> Result<(), Error> {
        // Setup errors return before anything runs; a valid setup would run
        // until the (immediate) shutdown.
        run(instances, groups, async {}).await
    }

    #[tokio::test(flavor = "current_thread")]
    async fn setup_errors() {
        let r = start(vec![spec("a", "eth0", 1), spec("b", "eth0", 1)], vec![]).await;
        assert!(
            matches!(r, Err(Error::DuplicateVrid { vrid: 1, .. })),
            "{r:?}"
        );
        let r = start(vec![spec("a", "eth0", 1), spec("a", "eth0", 2)], vec![]).await;
        assert!(matches!(r, Err(Error::DuplicateName(_))), "{r:?}");
        let group = |members: &[&str]| SyncGroupSpec {
            name: "g".into(),
            instances: members.iter().map(|m| m.to_string()).collect(),
        };
        let r = start(vec![spec("a", "eth0", 1)], vec![group(&["a", "x"])]).await;
        assert!(matches!(r, Err(Error::UnknownSyncMember { .. })), "{r:?}");
        let r = start(vec![spec("a", "eth0", 1)], vec![group(&["a", "a"])]).await;
        assert!(matches!(r, Err(Error::DuplicateSyncMember { .. })), "{r:?}");
        let r = start(vec![spec("a", "no-such-if0", 1)], vec![]).await;
        assert!(
            matches!(&r, Err(Error::Interface { interface, .. }) if interface == "no-such-if0"),
            "{r:?}"
        );
        let mut bad = spec("a", "lo", 1);
        bad.virtual_addresses = vec![VirtualAddress::new(IpAddr::from([192, 0, 2, 100]), 40)];
        let r = start(vec![bad], vec![]).await;
        assert!(matches!(r, Err(Error::BadPrefix { .. })), "{r:?}");
    }

    #[test]
    fn receive_errors_count_by_reason() {
        for (i, r) in ReceiveError::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
        }
        let names: std::collections::BTreeSet<&str> =
            ReceiveError::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), ReceiveError::ALL.len());
        assert_eq!(ReceiveError::of(&DropReason::FromSelf), None);
        assert_eq!(
            ReceiveError::of(&DropReason::BadTtl(64)),
            Some(ReceiveError::BadTtl)
        );
        assert_eq!(
            ReceiveError::of(&DropReason::AuthTypeMismatch {
                received: 1,
                expected: 0
            }),
            Some(ReceiveError::AuthTypeMismatch)
        );
        let mut e = ReceiveErrors::new();
        e.record(ReceiveError::BadTtl);
        e.record(ReceiveError::BadTtl);
        e.record(ReceiveError::AddressOwner);
        assert_eq!(e.get(ReceiveError::BadTtl), 2);
        assert_eq!(e.get(ReceiveError::Malformed), 0);
        assert_eq!(e.total(), 3);
        assert_eq!(e.iter().count(), ReceiveError::ALL.len());
        let a = InstanceStatus::new(State::Backup, 100, None);
        let mut b = a;
        b.adverts_received = 5;
        b.receive_errors = e;
        assert!(!a.differs_notably(&b));
        b.transitions = 1;
        assert!(a.differs_notably(&b));
    }

    #[test]
    fn parse_virtual_address() {
        let v: VirtualAddress = "192.0.2.10/24"
            .parse()
            .unwrap_or(VirtualAddress::host(IpAddr::from([0, 0, 0, 0])));
        assert_eq!(v, VirtualAddress::new(IpAddr::from([192, 0, 2, 10]), 24));
        assert_eq!(v.to_string(), "192.0.2.10/24");
        let h: Result<VirtualAddress, _> = "2001:db8::1".parse();
        assert_eq!(h.map(|v| v.prefix_len), Ok(128));
        assert!("192.0.2.1/33".parse::<VirtualAddress>().is_err());
        assert!("192.0.2.1/x".parse::<VirtualAddress>().is_err());
        assert!("nope".parse::<VirtualAddress>().is_err());
        assert_eq!(
            "2001:db8::1/129".parse::<VirtualAddress>(),
            Err(ParseVirtualAddressError("2001:db8::1/129".to_string()))
        );
    }
}
