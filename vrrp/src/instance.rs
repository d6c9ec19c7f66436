//! The per-instance VRRP state machine (RFC 5798 section 6.4 as updated by
//! RFC 9568) and receive validation.
//!
//! The [`Instance`] does no I/O. The daemon feeds it [`Event`]s with the
//! current [`Time`] and carries out the returned [`Action`]s in order.
//!
//! Behaviour beyond the RFC, after keepalived:
//!
//! * a master that receives a lower-priority advert answers at once with
//!   its own advert (RFC 9568 6.4.3 also asks for this), so a split brain
//!   resolves within one round trip;
//! * entering Fault from Master sends a priority 0 advert, like shutdown;
//! * `preempt_delay` follows keepalived (see
//!   [`InstanceConfig::preempt_delay`]);
//! * the skew time uses the effective priority, and in VRRPv3 the master's
//!   advertised interval.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use thiserror::Error;

use crate::checksum::{self, V3Ipv4Checksum};
use crate::config::{InstanceConfig, ValidConfig};
use crate::constants::{IPV4_MULTICAST, PRIORITY_OWNER, PRIORITY_STOP, TTL};
use crate::packet::{
    self, AddressFamily, Advertisement, Auth, PacketError, RxMeta, Version, VersionFields,
};
use crate::time::Time;

/// The state of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not running: before [`Event::Startup`] and after [`Event::Shutdown`].
    Initialize,
    /// Listening to a master (RFC 9568: "Backup").
    Backup,
    /// Owning the virtual addresses (RFC 9568: "Active").
    Master,
    /// The interface is down (or a sync group member is): not taking part.
    Fault,
}

impl State {
    /// Lower-case name, as used by notify scripts and [`Action`]'s display.
    pub const fn name(self) -> &'static str {
        match self {
            State::Initialize => "initialize",
            State::Backup => "backup",
            State::Master => "master",
            State::Fault => "fault",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The timers an instance asks the daemon to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// Master: time to send the next advert (RFC "Adver_Timer").
    Advert,
    /// Backup: the master is considered down (RFC "Master_Down_Timer").
    MasterDown,
    /// Master: time for the delayed burst of gratuitous ARPs / NAs.
    GarpDelay,
    /// Master: time for a periodic gratuitous ARP / NA refresh.
    GarpRefresh,
    /// Master: time for the delayed burst after hearing a lower-priority
    /// advert (keepalived `garp_lower_prio_delay`).
    GarpLowerPrio,
}

impl Timer {
    /// Every timer.
    pub const ALL: [Timer; 5] = [
        Timer::Advert,
        Timer::MasterDown,
        Timer::GarpDelay,
        Timer::GarpRefresh,
        Timer::GarpLowerPrio,
    ];

    const fn index(self) -> usize {
        match self {
            Timer::Advert => 0,
            Timer::MasterDown => 1,
            Timer::GarpDelay => 2,
            Timer::GarpRefresh => 3,
            Timer::GarpLowerPrio => 4,
        }
    }

    /// Lower-case name, as used in [`Action`]'s display.
    pub const fn name(self) -> &'static str {
        match self {
            Timer::Advert => "advert",
            Timer::MasterDown => "master-down",
            Timer::GarpDelay => "garp-delay",
            Timer::GarpRefresh => "garp-refresh",
            Timer::GarpLowerPrio => "garp-lower-prio",
        }
    }
}

impl fmt::Display for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an instance changed state (passed to notify scripts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Started up (entering Backup).
    Startup,
    /// Started up or recovered as the address owner (priority 255).
    AddressOwner,
    /// No advert from a master within the master-down interval.
    MasterDown,
    /// An advert with a higher priority arrived.
    HigherPriority,
    /// An advert with our priority from a higher address arrived.
    EqualPriorityHigherAddress,
    /// The interface went down.
    InterfaceDown,
    /// The interface came back up.
    InterfaceUp,
    /// The instance was shut down.
    Shutdown,
    /// The configuration changed in a way that restarts the instance.
    ConfigChanged,
    /// The sync group moved this instance along with another member.
    SyncGroup,
    /// Resumed as Master after a daemon restart ([`Event::Resume`]).
    Resume,
}

impl Reason {
    /// Lower-case name, as used in [`Action`]'s display.
    pub const fn name(self) -> &'static str {
        match self {
            Reason::Startup => "startup",
            Reason::AddressOwner => "address-owner",
            Reason::MasterDown => "master-down",
            Reason::HigherPriority => "higher-priority",
            Reason::EqualPriorityHigherAddress => "equal-priority-higher-address",
            Reason::InterfaceDown => "interface-down",
            Reason::InterfaceUp => "interface-up",
            Reason::Shutdown => "shutdown",
            Reason::ConfigChanged => "config-changed",
            Reason::SyncGroup => "sync-group",
            Reason::Resume => "resume",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Commands a sync group sends to its members (see [`crate::SyncGroup`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncCommand {
    /// Another member became master: a Backup member follows.
    Master,
    /// Another member left Master for Backup: a Master member follows
    /// (without a priority 0 advert, like keepalived).
    Backup,
    /// Another member is in Fault: go to Fault too.
    Fault,
    /// No member is in Fault any more: leave a group-imposed Fault.
    ClearFault,
}

/// Inputs of the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Start the instance (RFC "Startup event").
    Startup,
    /// Start the instance directly as Master: the daemon was Master until a restart that
    /// took less than the master-down interval, so the peers still see this node as
    /// Master (no failover happened). The instance advertises at once and re-asserts its
    /// addresses; a higher-priority master's advert moves it to Backup as usual. The
    /// caller decides that the restart was quick enough; otherwise it sends
    /// [`Event::Startup`]. An interface that is down still means Fault.
    Resume,
    /// The daemon hands this instance over to a successor process, which will start it
    /// with [`Event::Resume`]: a Master advertises once more, now, whatever its advert
    /// timer says, so that every Backup's master-down timer starts afresh and the
    /// successor has a whole master-down interval to resume in. Nothing else changes (no
    /// priority 0 advert, the addresses stay). In any other state: nothing.
    HandOver,
    /// A valid advert for this instance (see [`Instance::receive`]).
    AdvertReceived {
        /// IP source address of the advert (the sender's primary address).
        src: IpAddr,
        /// The decoded advert.
        advert: Advertisement,
    },
    /// A timer armed with [`Action::ArmTimer`] expired. Stale or early
    /// firings (a timer cancelled or re-armed since) are ignored.
    TimerFired(Timer),
    /// The interface came up (or a tracked object recovered).
    InterfaceUp,
    /// The interface went down (or a tracked object failed).
    InterfaceDown,
    /// The effective priority changed (base priority adjusted by tracking
    /// weights). Clamped to 1..=254, or 1..=255 for an address owner.
    PriorityChanged(u8),
    /// Stop the instance (RFC "Shutdown event").
    Shutdown,
    /// New configuration. If the VRID, version, family or primary address
    /// change, the instance restarts (a master says goodbye with priority 0
    /// under the old identity). Otherwise it is applied in place: a master
    /// adds and removes the changed addresses and advertises at once. A
    /// changed base priority resets the effective priority to it; the
    /// daemon re-sends [`Event::PriorityChanged`] if tracking adjusts it.
    ConfigChanged(Box<ValidConfig>),
    /// A sync group command.
    Sync(SyncCommand),
}

/// Outputs of the state machine, to be carried out in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this advert: encode it with [`Instance::encode`] for each
    /// destination (the multicast group, or each unicast peer).
    SendAdvert(Advertisement),
    /// Add these virtual addresses to the interface.
    AddAddresses(Vec<IpAddr>),
    /// Remove these virtual addresses from the interface.
    RemoveAddresses(Vec<IpAddr>),
    /// Send `repeat` gratuitous ARPs (IPv4) or unsolicited neighbour
    /// advertisements (IPv6) for each address, from the virtual MAC.
    SendGratuitous {
        /// The addresses to announce.
        addresses: Vec<IpAddr>,
        /// Messages per address.
        repeat: u32,
    },
    /// Run the notify hooks: the instance entered `state` because of
    /// `reason`. `State::Initialize` means stopped.
    Notify {
        /// The new state.
        state: State,
        /// Why.
        reason: Reason,
    },
    /// Start (or restart) `timer` to fire at the absolute time `at`.
    ArmTimer {
        /// Which timer.
        timer: Timer,
        /// When it fires.
        at: Time,
    },
    /// Stop `timer`.
    CancelTimer(Timer),
}

fn join(addrs: &[IpAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for Action {
    /// A compact one-line form, used by the conformance scripts:
    /// `send-advert prio=100`, `add-addresses 192.0.2.1`,
    /// `remove-addresses 192.0.2.1`, `garp repeat=5 192.0.2.1`,
    /// `notify master reason=master-down`, `arm advert at=1.5s`,
    /// `cancel advert`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::SendAdvert(a) => write!(f, "send-advert prio={}", a.priority),
            Action::AddAddresses(a) => write!(f, "add-addresses {}", join(a)),
            Action::RemoveAddresses(a) => write!(f, "remove-addresses {}", join(a)),
            Action::SendGratuitous { addresses, repeat } => {
                write!(f, "garp repeat={repeat} {}", join(addresses))
            }
            Action::Notify { state, reason } => write!(f, "notify {state} reason={reason}"),
            Action::ArmTimer { timer, at } => write!(f, "arm {timer} at={at}"),
            Action::CancelTimer(t) => write!(f, "cancel {t}"),
        }
    }
}

/// Why a received packet was dropped. Dropping never changes state.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DropReason {
    /// The packet's address family is not the instance's.
    #[error("address family mismatch")]
    FamilyMismatch,
    /// TTL / hop limit not 255 (multicast; unicast with
    /// [`InstanceConfig::check_unicast_ttl`]).
    #[error("TTL/hop limit {0}, expected 255")]
    BadTtl(u8),
    /// Structure or checksum (short, truncated, bad version or type, bad
    /// checksum): see [`PacketError`].
    #[error("malformed packet: {0}")]
    Malformed(#[from] PacketError),
    /// Not our VRID.
    #[error("VRID {0} is not ours")]
    WrongVrid(u8),
    /// A valid advert of the other VRRP version.
    #[error("VRRP version {} does not match ours", .0.number())]
    VersionMismatch(Version),
    /// Our own advert, looped back.
    #[error("advert from our own address")]
    FromSelf,
    /// A multicast advert on a unicast instance, or a unicast advert on a
    /// multicast instance.
    #[error("unexpected destination {0}")]
    UnexpectedDestination(IpAddr),
    /// A unicast advert from an address that is not a configured peer.
    #[error("unicast source {0} is not a configured peer")]
    UnknownUnicastSource(IpAddr),
    /// VRRPv2 authentication type we do not support (2 = IPsec AH, or an
    /// unknown type).
    #[error("unsupported authentication type {0}")]
    UnsupportedAuth(u8),
    /// VRRPv2 authentication type differs from ours.
    #[error("authentication type {received}, expected {expected}")]
    AuthTypeMismatch {
        /// Type in the advert.
        received: u8,
        /// Our type.
        expected: u8,
    },
    /// VRRPv2 simple-text password differs from ours.
    #[error("authentication password mismatch")]
    AuthMismatch,
    /// VRRPv2 advertisement interval differs from ours (keepalived drops
    /// these to avoid two masters with different timers).
    #[error("advertisement interval {received} s, ours is {expected} s")]
    IntervalMismatch {
        /// Seconds in the advert.
        received: u8,
        /// Our seconds.
        expected: u16,
    },
    /// VRRPv3 Max Advertise Interval of zero (RFC 9568 erratum 8301).
    #[error("zero advertisement interval")]
    ZeroInterval,
    /// We are the address owner and
    /// [`InstanceConfig::owner_ignore_adverts`] is set.
    #[error("address owner ignoring adverts")]
    AddressOwner,
}

/// Non-fatal findings about an accepted advert, for logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// The advertised addresses differ from our virtual addresses. RFC 9568
    /// says to log this, not drop the advert (keepalived 2.2.7 dropped it,
    /// which could leave two masters).
    AddressListMismatch {
        /// Our configured addresses.
        expected: Vec<IpAddr>,
        /// The advertised addresses.
        received: Vec<IpAddr>,
    },
    /// A unicast VRRPv3 advert over IPv4 whose pseudo-header checksum used
    /// the multicast group instead of our address, as keepalived before
    /// 1.3.6 (or with `old_unicast_checksum`) does. Such a peer drops our
    /// adverts unless [`InstanceConfig::unicast_checksum_compat`] is set.
    UnicastChecksumCompat,
    /// With [`crate::V3Ipv4ChecksumRx::Either`], a VRRPv3 advert over IPv4 carried
    /// the other checksum variant than the one we send: the sender probably
    /// drops our adverts (set [`InstanceConfig::v3_ipv4_checksum`] to
    /// `received`).
    ChecksumVariantMismatch {
        /// The variant the advert carried.
        received: V3Ipv4Checksum,
    },
}

/// An advert that passed [`Instance::receive`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// IP source address.
    pub src: IpAddr,
    /// The decoded advert.
    pub advert: Advertisement,
    /// Things worth logging.
    pub warnings: Vec<Warning>,
}

impl Received {
    /// The [`Event::AdvertReceived`] to feed to the instance.
    pub fn into_event(self) -> Event {
        Event::AdvertReceived {
            src: self.src,
            advert: self.advert,
        }
    }
}

/// One VRRP instance: configuration, state and timers.
///
/// ```
/// use std::time::Duration;
/// use vrrp_proto::{Action, Event, Instance, InstanceConfig, State, Time, Timer, Version};
///
/// let cfg = InstanceConfig::new(
///     1,
///     Version::V3,
///     "192.0.2.2".parse().unwrap(),
///     vec!["192.0.2.100".parse().unwrap()],
/// );
/// let mut vr = Instance::new(cfg.validate().unwrap());
/// let actions = vr.handle(Time::ZERO, Event::Startup);
/// assert_eq!(vr.state(), State::Backup);
/// // Master_Down_Interval = 3 * 1 s + (256 - 100) * 1 s / 256.
/// assert!(actions.contains(&Action::ArmTimer {
///     timer: Timer::MasterDown,
///     at: Time::from_micros(3_609_375),
/// }));
/// let actions = vr.handle(Time::from_micros(3_609_375), Event::TimerFired(Timer::MasterDown));
/// assert_eq!(vr.state(), State::Master);
/// assert!(matches!(&actions[0], Action::SendAdvert(a) if a.priority == 100));
/// ```
#[derive(Debug, Clone)]
pub struct Instance {
    cfg: ValidConfig,
    state: State,
    effective_priority: u8,
    master_adver_int: Duration,
    link_up: bool,
    started: bool,
    deadlines: [Option<Time>; 5],
    preempt_deadline: Option<Time>,
    master: Option<(IpAddr, u8)>,
    sync_member: bool,
    group_fault: bool,
    wants_master: bool,
}

impl Instance {
    /// A new instance in state Initialize, interface assumed up.
    pub fn new(cfg: ValidConfig) -> Self {
        let effective_priority = cfg.priority;
        let master_adver_int = cfg.advert_interval;
        Instance {
            cfg,
            state: State::Initialize,
            effective_priority,
            master_adver_int,
            link_up: true,
            started: false,
            deadlines: [None; 5],
            preempt_deadline: None,
            master: None,
            sync_member: false,
            group_fault: false,
            wants_master: false,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &InstanceConfig {
        &self.cfg
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The priority we advertise.
    pub fn effective_priority(&self) -> u8 {
        self.effective_priority
    }

    /// The interval of the current master (VRRPv3 adopts the master's;
    /// otherwise our own).
    pub fn master_adver_interval(&self) -> Duration {
        self.master_adver_int
    }

    /// Address and priority of the master we last accepted an advert from.
    pub fn master(&self) -> Option<(IpAddr, u8)> {
        self.master
    }

    /// When `timer` is due, if armed.
    pub fn deadline(&self, timer: Timer) -> Option<Time> {
        self.deadlines[timer.index()]
    }

    /// Whether the interface is considered up.
    pub fn link_up(&self) -> bool {
        self.link_up
    }

    /// Whether this instance belongs to a sync group (then its master-down
    /// timer only marks it as [`Instance::wants_master`] and the group
    /// decides).
    pub fn is_sync_member(&self) -> bool {
        self.sync_member
    }

    /// A sync member in Backup whose master-down timer expired, waiting for
    /// the rest of its group.
    pub fn wants_master(&self) -> bool {
        self.wants_master
    }

    /// Whether the instance is in Fault because of its own interface (not
    /// because of its sync group).
    pub fn has_local_fault(&self) -> bool {
        self.started && !self.link_up
    }

    pub(crate) fn set_sync_member(&mut self, member: bool) {
        self.sync_member = member;
    }

    pub(crate) fn group_fault(&self) -> bool {
        self.group_fault
    }

    /// Skew time: `(256 - priority) / 256` s in VRRPv2,
    /// `(256 - priority) * master_adver_interval / 256` in VRRPv3.
    pub fn skew_time(&self) -> Duration {
        self.skew_for(self.effective_priority)
    }

    /// The skew time of a router with `priority` on this instance's interval.
    fn skew_for(&self, priority: u8) -> Duration {
        let weight = u128::from(256 - u16::from(priority));
        let base = match self.cfg.version {
            Version::V2 => Duration::from_secs(1),
            Version::V3 => self.master_adver_int,
        };
        let nanos = weight * base.as_nanos() / 256;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Master-down interval: `3 * master_adver_interval + skew_time`.
    pub fn master_down_interval(&self) -> Duration {
        self.master_adver_int
            .saturating_mul(3)
            .saturating_add(self.skew_time())
    }

    /// How long after its last advert a Master that stopped advertising (killed, restarted)
    /// may still resume as Master: the master-down interval of the quickest peer, so a
    /// resume never follows a peer's takeover. A peer declares the Master down after
    /// `3 * interval + skew`, and the higher its priority the shorter its skew: the window
    /// takes the skew of the higher of this instance's configured priority (a peer with a
    /// higher one would have preempted it, unless preemption is off) and
    /// `highest_peer_priority`, the highest priority heard from a peer (a Backup that
    /// came back without preemption). A peer never heard with a higher priority than this
    /// instance's makes no difference.
    ///
    /// ```
    /// use std::time::Duration;
    /// use vrrp_proto::{Instance, InstanceConfig, Version};
    ///
    /// let mut cfg = InstanceConfig::new(
    ///     51,
    ///     Version::V2,
    ///     "192.0.2.2".parse().unwrap(),
    ///     vec!["192.0.2.100".parse().unwrap()],
    /// );
    /// cfg.priority = 100;
    /// let vr = Instance::new(cfg.validate().unwrap());
    /// // 3 s + (256 - 100) / 256 s
    /// assert_eq!(vr.resume_window(None), Duration::from_micros(3_609_375));
    /// assert_eq!(vr.resume_window(Some(50)), vr.resume_window(None));
    /// // A peer heard with priority 150 takes over after 3 s + 106 / 256 s.
    /// assert_eq!(vr.resume_window(Some(150)), Duration::from_nanos(3_414_062_500));
    /// ```
    pub fn resume_window(&self, highest_peer_priority: Option<u8>) -> Duration {
        let quickest =
            highest_peer_priority.map_or(self.cfg.priority, |p| p.max(self.cfg.priority));
        self.master_adver_int
            .saturating_mul(3)
            .saturating_add(self.skew_for(quickest))
    }

    /// The advert this instance sends with `priority`.
    pub fn advertisement(&self, priority: u8) -> Advertisement {
        let fields = match self.cfg.version {
            Version::V2 => VersionFields::V2 {
                auth: self.cfg.auth,
                adver_int_secs: u8::try_from(self.cfg.wire_interval()).unwrap_or(u8::MAX),
            },
            Version::V3 => VersionFields::V3 {
                max_adver_int_centis: self.cfg.wire_interval(),
            },
        };
        Advertisement {
            vrid: self.cfg.vrid,
            priority,
            fields,
            addresses: self.cfg.virtual_addresses.clone(),
        }
    }

    /// Encodes `advert` from our primary address to `dst` (the multicast
    /// group or a unicast peer) with the configured checksum variant.
    ///
    /// With [`InstanceConfig::unicast_checksum_compat`], a VRRPv3 advert
    /// over IPv4 to a unicast `dst` is checksummed as if sent to the
    /// multicast group.
    pub fn encode(&self, advert: &Advertisement, dst: IpAddr) -> Result<Vec<u8>, PacketError> {
        packet::encode(
            advert,
            self.cfg.primary_address,
            self.pseudo_header_dst(dst),
            self.cfg.v3_ipv4_checksum,
        )
    }

    /// The destination that goes into the pseudo-header.
    fn pseudo_header_dst(&self, dst: IpAddr) -> IpAddr {
        if self.cfg.unicast_checksum_compat && dst.is_ipv4() && !dst.is_multicast() {
            IpAddr::V4(IPV4_MULTICAST)
        } else {
            dst
        }
    }

    /// Validates a received packet for this instance. Pure: never changes
    /// state. Feed an accepted packet with [`Received::into_event`].
    ///
    /// Checks, in order: address family, TTL / hop limit (always 255 for
    /// multicast; for unicast only with
    /// [`InstanceConfig::check_unicast_ttl`]), structure and checksum
    /// ([`packet::decode`]), VRID, version, looped-back own advert, address
    /// owner ignoring adverts (only if configured), multicast versus
    /// unicast destination and unicast peer, VRRPv2
    /// authentication and interval, VRRPv3 zero interval. A differing
    /// address list is a [`Warning`], not a drop.
    pub fn receive(&self, payload: &[u8], meta: &RxMeta) -> Result<Received, DropReason> {
        let cfg = &self.cfg;
        if meta.family() != Some(cfg.family()) {
            return Err(DropReason::FamilyMismatch);
        }
        let multicast = meta.dst.is_multicast();
        if meta.ttl != TTL && (multicast || cfg.check_unicast_ttl) {
            return Err(DropReason::BadTtl(meta.ttl));
        }
        let mut warnings = Vec::new();
        let mut pseudo = RxMeta {
            dst: self.pseudo_header_dst(meta.dst),
            ..*meta
        };
        let advert = match packet::decode(payload, &pseudo, cfg.v3_ipv4_checksum_rx) {
            Ok(advert) => advert,
            Err(e @ PacketError::BadChecksum { .. })
                if !multicast && meta.dst.is_ipv4() && !cfg.unicast_checksum_compat =>
            {
                // keepalived before 1.3.6 put the multicast group in the
                // pseudo-header of unicast adverts.
                pseudo.dst = IpAddr::V4(IPV4_MULTICAST);
                match packet::decode(payload, &pseudo, cfg.v3_ipv4_checksum_rx) {
                    Ok(advert) if advert.version() == Version::V3 => {
                        warnings.push(Warning::UnicastChecksumCompat);
                        advert
                    }
                    _ => return Err(DropReason::Malformed(e)),
                }
            }
            Err(e) => return Err(DropReason::Malformed(e)),
        };
        if advert.vrid != cfg.vrid {
            return Err(DropReason::WrongVrid(advert.vrid));
        }
        if advert.version() != cfg.version {
            return Err(DropReason::VersionMismatch(advert.version()));
        }
        if meta.src == cfg.primary_address {
            return Err(DropReason::FromSelf);
        }
        if cfg.owner_ignore_adverts && self.effective_priority == PRIORITY_OWNER {
            return Err(DropReason::AddressOwner);
        }
        if multicast != cfg.unicast_peers.is_empty() {
            return Err(DropReason::UnexpectedDestination(meta.dst));
        }
        if !multicast && !cfg.unicast_peers.contains(&meta.src) {
            return Err(DropReason::UnknownUnicastSource(meta.src));
        }
        match advert.fields {
            VersionFields::V2 {
                auth,
                adver_int_secs,
            } => {
                if matches!(auth, Auth::IpsecAh | Auth::Unknown(_)) {
                    return Err(DropReason::UnsupportedAuth(auth.type_code()));
                }
                if auth.type_code() != cfg.auth.type_code() {
                    return Err(DropReason::AuthTypeMismatch {
                        received: auth.type_code(),
                        expected: cfg.auth.type_code(),
                    });
                }
                if let (Auth::SimpleText(got), Auth::SimpleText(want)) = (auth, cfg.auth) {
                    // Constant time, like keepalived's memcmp_constant_time.
                    let diff = got
                        .iter()
                        .zip(want.iter())
                        .fold(0u8, |d, (a, b)| d | (a ^ b));
                    if diff != 0 {
                        return Err(DropReason::AuthMismatch);
                    }
                }
                let expected = cfg.wire_interval();
                if u16::from(adver_int_secs) != expected {
                    return Err(DropReason::IntervalMismatch {
                        received: adver_int_secs,
                        expected,
                    });
                }
            }
            VersionFields::V3 {
                max_adver_int_centis,
            } => {
                if max_adver_int_centis == 0 {
                    return Err(DropReason::ZeroInterval);
                }
            }
        }
        if cfg.version == Version::V3 && cfg.family() == AddressFamily::Ipv4 {
            let ours = checksum::vrrp_checksum(
                payload,
                Version::V3,
                pseudo.src,
                pseudo.dst,
                cfg.v3_ipv4_checksum,
            );
            if payload.get(6..8) != Some(&ours.to_be_bytes()[..]) {
                let received = match cfg.v3_ipv4_checksum {
                    V3Ipv4Checksum::PseudoHeader => V3Ipv4Checksum::MessageOnly,
                    V3Ipv4Checksum::MessageOnly => V3Ipv4Checksum::PseudoHeader,
                };
                warnings.push(Warning::ChecksumVariantMismatch { received });
            }
        }
        let same_set = advert.addresses.len() == cfg.virtual_addresses.len()
            && advert
                .addresses
                .iter()
                .all(|a| cfg.virtual_addresses.contains(a));
        if !same_set {
            warnings.push(Warning::AddressListMismatch {
                expected: cfg.virtual_addresses.clone(),
                received: advert.addresses.clone(),
            });
        }
        Ok(Received {
            src: meta.src,
            advert,
            warnings,
        })
    }

    /// Handles one event at time `now` and returns the actions to carry
    /// out, in order.
    pub fn handle(&mut self, now: Time, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Startup => self.on_startup(now, false, &mut out),
            Event::Resume => self.on_startup(now, true, &mut out),
            Event::Shutdown => self.on_shutdown(Reason::Shutdown, &mut out),
            Event::HandOver => {
                if self.state == State::Master {
                    out.push(Action::SendAdvert(
                        self.advertisement(self.effective_priority),
                    ));
                    self.arm(Timer::Advert, now + self.cfg.advert_interval, &mut out);
                }
            }
            Event::InterfaceDown => {
                self.link_up = false;
                if matches!(self.state, State::Backup | State::Master) {
                    self.enter_fault(Reason::InterfaceDown, &mut out);
                }
            }
            Event::InterfaceUp => {
                self.link_up = true;
                if self.state == State::Fault && !self.group_fault {
                    self.recover(now, Reason::InterfaceUp, &mut out);
                }
            }
            Event::PriorityChanged(p) => self.on_priority(now, p, &mut out),
            Event::TimerFired(timer) => self.on_timer(now, timer, &mut out),
            Event::AdvertReceived { src, advert } => self.on_advert(now, src, &advert, &mut out),
            Event::ConfigChanged(cfg) => self.on_config(now, *cfg, &mut out),
            Event::Sync(cmd) => self.on_sync(now, cmd, &mut out),
        }
        out
    }

    fn arm(&mut self, timer: Timer, at: Time, out: &mut Vec<Action>) {
        self.deadlines[timer.index()] = Some(at);
        out.push(Action::ArmTimer { timer, at });
    }

    fn cancel(&mut self, timer: Timer, out: &mut Vec<Action>) {
        if self.deadlines[timer.index()].take().is_some() {
            out.push(Action::CancelTimer(timer));
        }
    }

    fn cancel_all(&mut self, out: &mut Vec<Action>) {
        for t in Timer::ALL {
            self.cancel(t, out);
        }
    }

    fn notify(&self, reason: Reason, out: &mut Vec<Action>) {
        out.push(Action::Notify {
            state: self.state,
            reason,
        });
    }

    fn is_owner(&self) -> bool {
        self.effective_priority == PRIORITY_OWNER
    }

    fn on_startup(&mut self, now: Time, resume: bool, out: &mut Vec<Action>) {
        if self.state != State::Initialize {
            return;
        }
        self.started = true;
        if !self.link_up || self.group_fault {
            self.state = State::Fault;
            self.notify(Reason::InterfaceDown, out);
        } else if self.is_owner() {
            self.become_master(now, Reason::AddressOwner, out);
        } else if resume {
            self.become_master(now, Reason::Resume, out);
        } else {
            self.become_backup(now, Reason::Startup, out);
        }
    }

    /// Leaves Fault once the interface (and the sync group) allow it.
    fn recover(&mut self, now: Time, reason: Reason, out: &mut Vec<Action>) {
        if !self.started || !self.link_up || self.group_fault {
            return;
        }
        if self.is_owner() {
            self.become_master(now, Reason::AddressOwner, out);
        } else {
            self.become_backup(now, reason, out);
        }
    }

    fn on_shutdown(&mut self, reason: Reason, out: &mut Vec<Action>) {
        self.started = false;
        let was = self.state;
        if was == State::Initialize {
            return;
        }
        self.cancel_all(out);
        if was == State::Master {
            out.push(Action::SendAdvert(self.advertisement(PRIORITY_STOP)));
            out.push(Action::RemoveAddresses(self.cfg.virtual_addresses.clone()));
        }
        self.state = State::Initialize;
        self.reset_backup_memory();
        self.notify(reason, out);
    }

    fn reset_backup_memory(&mut self) {
        self.preempt_deadline = None;
        self.master = None;
        self.wants_master = false;
        self.master_adver_int = self.cfg.advert_interval;
    }

    fn enter_fault(&mut self, reason: Reason, out: &mut Vec<Action>) {
        let was = self.state;
        self.cancel_all(out);
        if was == State::Master {
            out.push(Action::SendAdvert(self.advertisement(PRIORITY_STOP)));
            out.push(Action::RemoveAddresses(self.cfg.virtual_addresses.clone()));
        }
        self.state = State::Fault;
        self.reset_backup_memory();
        self.notify(reason, out);
    }

    fn become_master(&mut self, now: Time, reason: Reason, out: &mut Vec<Action>) {
        self.cancel(Timer::MasterDown, out);
        self.state = State::Master;
        self.reset_backup_memory();
        out.push(Action::SendAdvert(
            self.advertisement(self.effective_priority),
        ));
        let vips = self.cfg.virtual_addresses.clone();
        if !vips.is_empty() {
            out.push(Action::AddAddresses(vips.clone()));
            if self.cfg.garp.repeat > 0 {
                out.push(Action::SendGratuitous {
                    addresses: vips,
                    repeat: self.cfg.garp.repeat,
                });
            }
        }
        self.arm(Timer::Advert, now + self.cfg.advert_interval, out);
        if !self.cfg.virtual_addresses.is_empty() {
            if let Some(d) = self.cfg.garp.delay.filter(|_| self.cfg.garp.repeat > 0) {
                self.arm(Timer::GarpDelay, now + d, out);
            }
            if let Some(r) = self.cfg.garp.refresh.filter(|r| !r.is_zero()) {
                self.arm(Timer::GarpRefresh, now + r, out);
            }
        }
        self.notify(reason, out);
    }

    fn become_backup(&mut self, now: Time, reason: Reason, out: &mut Vec<Action>) {
        self.state = State::Backup;
        self.reset_backup_memory();
        self.arm(Timer::MasterDown, now + self.master_down_interval(), out);
        self.notify(reason, out);
    }

    /// Master to Backup. `adopt` is the new master's VRRPv3 interval.
    fn master_to_backup(
        &mut self,
        now: Time,
        reason: Reason,
        adopt: Option<Duration>,
        out: &mut Vec<Action>,
    ) {
        self.cancel(Timer::Advert, out);
        self.cancel(Timer::GarpDelay, out);
        self.cancel(Timer::GarpRefresh, out);
        self.cancel(Timer::GarpLowerPrio, out);
        out.push(Action::RemoveAddresses(self.cfg.virtual_addresses.clone()));
        self.state = State::Backup;
        self.reset_backup_memory();
        if let Some(i) = adopt {
            self.master_adver_int = i;
        }
        self.arm(Timer::MasterDown, now + self.master_down_interval(), out);
        self.notify(reason, out);
    }

    fn on_priority(&mut self, now: Time, p: u8, out: &mut Vec<Action>) {
        let max = if self.cfg.priority == PRIORITY_OWNER {
            PRIORITY_OWNER
        } else {
            PRIORITY_OWNER - 1
        };
        let p = p.clamp(1, max);
        if p == self.effective_priority {
            return;
        }
        self.effective_priority = p;
        if self.state == State::Master {
            // Tell the backups at once, so a now-higher backup preempts
            // without waiting for the next advert.
            out.push(Action::SendAdvert(self.advertisement(p)));
            self.arm(Timer::Advert, now + self.cfg.advert_interval, out);
        }
    }

    fn on_timer(&mut self, now: Time, timer: Timer, out: &mut Vec<Action>) {
        match self.deadlines[timer.index()] {
            Some(at) if at <= now => {}
            _ => return, // stale or early
        }
        self.deadlines[timer.index()] = None;
        match (self.state, timer) {
            (State::Master, Timer::Advert) => {
                out.push(Action::SendAdvert(
                    self.advertisement(self.effective_priority),
                ));
                self.arm(Timer::Advert, now + self.cfg.advert_interval, out);
            }
            (State::Master, Timer::GarpDelay) => {
                out.push(Action::SendGratuitous {
                    addresses: self.cfg.virtual_addresses.clone(),
                    repeat: self.cfg.garp.repeat,
                });
            }
            (State::Master, Timer::GarpRefresh) => {
                out.push(Action::SendGratuitous {
                    addresses: self.cfg.virtual_addresses.clone(),
                    repeat: self.cfg.garp.refresh_repeat,
                });
                if let Some(r) = self.cfg.garp.refresh {
                    self.arm(Timer::GarpRefresh, now + r, out);
                }
            }
            (State::Master, Timer::GarpLowerPrio) => {
                out.push(Action::SendGratuitous {
                    addresses: self.cfg.virtual_addresses.clone(),
                    repeat: self.cfg.garp_lower_prio_repeat,
                });
            }
            (State::Backup, Timer::MasterDown) => {
                if self.sync_member {
                    // The sync group decides (see SyncGroup).
                    self.wants_master = true;
                } else {
                    self.become_master(now, Reason::MasterDown, out);
                }
            }
            _ => {}
        }
    }

    fn preempt_delay_running(&self, now: Time) -> bool {
        !self.cfg.preempt_delay.is_zero() && self.preempt_deadline.is_none_or(|d| d > now)
    }

    fn on_advert(&mut self, now: Time, src: IpAddr, adv: &Advertisement, out: &mut Vec<Action>) {
        // Defensive: receive() already checked these.
        if adv.vrid != self.cfg.vrid
            || adv.version() != self.cfg.version
            || AddressFamily::of(&src) != self.cfg.family()
        {
            return;
        }
        let adopt = match adv.fields {
            VersionFields::V3 { .. } if !adv.interval().is_zero() => Some(adv.interval()),
            _ => None,
        };
        let local = self.effective_priority;
        match self.state {
            State::Backup => {
                if adv.priority == PRIORITY_STOP {
                    // The master is leaving: take over after the skew time.
                    self.arm(Timer::MasterDown, now + self.skew_time(), out);
                } else if !self.cfg.preempt
                    || adv.priority >= local
                    || self.preempt_delay_running(now)
                {
                    if let Some(i) = adopt {
                        self.master_adver_int = i;
                    }
                    self.master = Some((src, adv.priority));
                    self.wants_master = false;
                    if !self.cfg.preempt_delay.is_zero() {
                        if adv.priority >= local {
                            self.preempt_deadline = None;
                        } else if self.preempt_deadline.is_none() {
                            self.preempt_deadline = Some(now + self.cfg.preempt_delay);
                        }
                    }
                    self.arm(Timer::MasterDown, now + self.master_down_interval(), out);
                }
                // else: preempting; discard and let the timer run out.
            }
            State::Master => {
                let yield_reason = if adv.priority == PRIORITY_STOP {
                    None
                } else if adv.priority > local {
                    Some(Reason::HigherPriority)
                } else if adv.priority == local && src > self.cfg.primary_address {
                    Some(Reason::EqualPriorityHigherAddress)
                } else {
                    None
                };
                if adv.priority == PRIORITY_STOP {
                    out.push(Action::SendAdvert(self.advertisement(local)));
                    self.arm(Timer::Advert, now + self.cfg.advert_interval, out);
                } else if let Some(reason) = yield_reason {
                    if self.cfg.higher_prio_send_advert {
                        out.push(Action::SendAdvert(self.advertisement(local)));
                    }
                    self.master_to_backup(now, reason, adopt, out);
                    self.master = Some((src, adv.priority));
                } else if adv.priority == local && src == self.cfg.primary_address {
                    // Our own advert (or a clash of addresses): ignore.
                } else {
                    // A lower-priority master: assert ourselves at once.
                    if !self.cfg.lower_prio_no_advert {
                        out.push(Action::SendAdvert(self.advertisement(local)));
                    }
                    if self.cfg.garp_lower_prio_repeat > 0 {
                        out.push(Action::SendGratuitous {
                            addresses: self.cfg.virtual_addresses.clone(),
                            repeat: self.cfg.garp_lower_prio_repeat,
                        });
                        if let Some(d) = self.cfg.garp_lower_prio_delay {
                            self.arm(Timer::GarpLowerPrio, now + d, out);
                        }
                    }
                }
            }
            State::Initialize | State::Fault => {}
        }
    }

    fn on_config(&mut self, now: Time, cfg: ValidConfig, out: &mut Vec<Action>) {
        let old = &self.cfg;
        let identity_changed = old.vrid != cfg.vrid
            || old.version != cfg.version
            || old.family() != cfg.family()
            || old.primary_address != cfg.primary_address;
        if identity_changed {
            let was_started = self.started;
            self.on_shutdown(Reason::ConfigChanged, out);
            self.effective_priority = cfg.priority;
            self.cfg = cfg;
            self.master_adver_int = self.cfg.advert_interval;
            if was_started {
                self.on_startup(now, false, out);
            }
            return;
        }
        let removed: Vec<IpAddr> = old
            .virtual_addresses
            .iter()
            .filter(|a| !cfg.virtual_addresses.contains(a))
            .copied()
            .collect();
        let added: Vec<IpAddr> = cfg
            .virtual_addresses
            .iter()
            .filter(|a| !old.virtual_addresses.contains(a))
            .copied()
            .collect();
        let priority_changed = old.priority != cfg.priority;
        self.cfg = cfg;
        if priority_changed {
            self.effective_priority = self.cfg.priority;
        }
        if self.state != State::Backup {
            self.master_adver_int = self.cfg.advert_interval;
        }
        if self.state == State::Master {
            if !removed.is_empty() {
                out.push(Action::RemoveAddresses(removed));
            }
            if !added.is_empty() {
                out.push(Action::AddAddresses(added.clone()));
                if self.cfg.garp.repeat > 0 {
                    out.push(Action::SendGratuitous {
                        addresses: added,
                        repeat: self.cfg.garp.repeat,
                    });
                }
            }
            out.push(Action::SendAdvert(
                self.advertisement(self.effective_priority),
            ));
            self.arm(Timer::Advert, now + self.cfg.advert_interval, out);
        }
    }

    fn on_sync(&mut self, now: Time, cmd: SyncCommand, out: &mut Vec<Action>) {
        match cmd {
            SyncCommand::Master => {
                if self.state == State::Backup {
                    self.become_master(now, Reason::SyncGroup, out);
                }
            }
            SyncCommand::Backup => {
                if self.state == State::Master {
                    self.master_to_backup(now, Reason::SyncGroup, None, out);
                }
            }
            SyncCommand::Fault => {
                self.group_fault = true;
                if matches!(self.state, State::Backup | State::Master) {
                    self.enter_fault(Reason::SyncGroup, out);
                }
            }
            SyncCommand::ClearFault => {
                self.group_fault = false;
                if self.state == State::Fault {
                    self.recover(now, Reason::SyncGroup, out);
                }
            }
        }
    }
}
