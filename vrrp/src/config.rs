//! Per-instance configuration and its validation.

use std::net::IpAddr;
use std::time::Duration;

use thiserror::Error;

use crate::checksum::{V3Ipv4Checksum, V3Ipv4ChecksumRx};
use crate::constants::{MAX_V3_INTERVAL_CENTIS, PRIORITY_DEFAULT, PRIORITY_OWNER};
use crate::packet::{AddressFamily, Auth, Version};

/// Errors of the configuration layer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// VRID 0 is not valid (1..=255).
    #[error("VRID 0 is not valid, use 1..=255")]
    InvalidVrid,
    /// Priority 0 is reserved for "stop being master" (1..=255).
    #[error("priority 0 is reserved, use 1..=255")]
    InvalidPriority,
    /// A zero advertisement interval.
    #[error("the advertisement interval must not be zero")]
    ZeroInterval,
    /// VRRPv2 intervals are whole seconds.
    #[error("VRRPv2 advertisement interval {0:?} is not a whole number of seconds")]
    V2IntervalNotWholeSeconds(Duration),
    /// VRRPv2 intervals are at most 255 s.
    #[error("VRRPv2 advertisement interval {0:?} exceeds 255 s")]
    V2IntervalTooLong(Duration),
    /// VRRPv3 intervals are in 10 ms steps.
    #[error("VRRPv3 advertisement interval {0:?} is not a multiple of 10 ms")]
    V3IntervalNotCentiseconds(Duration),
    /// VRRPv3 intervals are at most 40.95 s (4095 cs).
    #[error("VRRPv3 advertisement interval {0:?} exceeds 40.95 s")]
    V3IntervalTooLong(Duration),
    /// VRRPv2 is IPv4 only.
    #[error("VRRPv2 supports IPv4 only, use VRRPv3 for IPv6")]
    V2RequiresIpv4,
    /// Authentication only exists in VRRPv2.
    #[error("authentication is a VRRPv2 feature")]
    AuthRequiresV2,
    /// Only "none" and simple-text authentication are supported.
    #[error("authentication type {0} is not supported")]
    UnsupportedAuth(u8),
    /// An address is not of the family of the primary address.
    #[error("address {0} is not of the family of the primary address")]
    FamilyMismatch(IpAddr),
    /// The primary address must be a unicast address.
    #[error("primary address {0} is not a usable unicast address")]
    InvalidPrimaryAddress(IpAddr),
    /// VRRPv3 requires at least one virtual address (RFC 5798 5.2.5).
    #[error("VRRPv3 requires at least one virtual address")]
    NoVirtualAddresses,
    /// At most 255 addresses fit an advert.
    #[error("{0} virtual addresses do not fit an advert (at most 255)")]
    TooManyVirtualAddresses(usize),
    /// The same virtual address twice.
    #[error("virtual address {0} is listed twice")]
    DuplicateVirtualAddress(IpAddr),
    /// The address owner (priority 255) always preempts (RFC 5798 6.1).
    #[error("the address owner (priority 255) cannot disable preemption")]
    OwnerMustPreempt,
}

/// Gratuitous ARP (IPv4) / unsolicited neighbour advertisement (IPv6)
/// settings, after keepalived's `garp_master_*` options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GarpConfig {
    /// Messages per address sent on becoming master, and again after
    /// `delay` (keepalived `garp_master_repeat`, default 5). 0 sends none.
    pub repeat: u32,
    /// Delay after becoming master before a second burst of `repeat`
    /// messages (keepalived `garp_master_delay`, default 5 s). `None`
    /// disables the second burst.
    pub delay: Option<Duration>,
    /// Period of refresh bursts while master (keepalived
    /// `garp_master_refresh`, default off).
    pub refresh: Option<Duration>,
    /// Messages per address in a refresh burst (keepalived
    /// `garp_master_refresh_repeat`, default 1).
    pub refresh_repeat: u32,
}

impl Default for GarpConfig {
    fn default() -> Self {
        GarpConfig {
            repeat: 5,
            delay: Some(Duration::from_secs(5)),
            refresh: None,
            refresh_repeat: 1,
        }
    }
}

/// Configuration of one VRRP instance (one VRID on one interface, one
/// address family).
///
/// ```
/// use std::time::Duration;
/// use vrrp_proto::{InstanceConfig, Version};
///
/// let mut cfg = InstanceConfig::new(
///     51,
///     Version::V3,
///     "192.0.2.2".parse().unwrap(),
///     vec!["192.0.2.100".parse().unwrap()],
/// );
/// cfg.priority = 150;
/// cfg.advert_interval = Duration::from_millis(250);
/// let valid = cfg.validate().unwrap();
/// assert_eq!(valid.priority, 150);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceConfig {
    /// Virtual router identifier, 1..=255.
    pub vrid: u8,
    /// Protocol version.
    pub version: Version,
    /// Base priority, 1..=255 (255 = address owner). Default 100.
    pub priority: u8,
    /// Advertisement interval. VRRPv2: whole seconds, 1..=255 s. VRRPv3:
    /// multiples of 10 ms, 10 ms..=40.95 s. Default 1 s.
    pub advert_interval: Duration,
    /// Whether a higher-priority backup preempts a lower-priority master.
    /// Default true (keepalived's `nopreempt` sets it false).
    pub preempt: bool,
    /// keepalived's `preempt_delay`: after the first advert from a
    /// lower-priority master is seen in Backup state, keep accepting that
    /// master for this long before preempting. Zero disables it.
    pub preempt_delay: Duration,
    /// Our primary address on the interface: the IP source of our adverts,
    /// the tie breaker between equal priorities, and the source in the
    /// pseudo-header. Its family is the instance's family.
    pub primary_address: IpAddr,
    /// The virtual addresses, all of the primary address's family.
    pub virtual_addresses: Vec<IpAddr>,
    /// VRRPv2 authentication: [`Auth::None`] or [`Auth::SimpleText`].
    pub auth: Auth,
    /// Checksum sent in VRRPv3 adverts over IPv4.
    pub v3_ipv4_checksum: V3Ipv4Checksum,
    /// Checksums accepted on VRRPv3 adverts over IPv4. Defaults to the one
    /// sent, like keepalived.
    pub v3_ipv4_checksum_rx: V3Ipv4ChecksumRx,
    /// Unicast peers. Empty means multicast. When set, adverts must come
    /// from one of them and be sent to a unicast address.
    pub unicast_peers: Vec<IpAddr>,
    /// keepalived `old_unicast_checksum`: for VRRPv3 over IPv4 with
    /// unicast peers, put the multicast group (224.0.0.18) instead of the
    /// peer's address into the pseudo-header, sending and receiving, like
    /// keepalived releases before 1.3.6 did. Default false. Without it,
    /// adverts checksummed that way are still accepted, with
    /// [`crate::Warning::UnicastChecksumCompat`].
    pub unicast_checksum_compat: bool,
    /// Whether unicast adverts must also arrive with TTL / hop limit 255.
    /// Multicast adverts always must (RFC 5798 7.1). Default false: like
    /// keepalived, which only range-checks unicast TTLs when asked to and
    /// sends IPv6 unicast adverts with the kernel's default hop limit.
    pub check_unicast_ttl: bool,
    /// Gratuitous ARP / unsolicited NA settings.
    pub garp: GarpConfig,
    /// keepalived `lower_prio_no_advert`: a master does not answer a
    /// lower-priority advert with its own (default false: it answers at
    /// once, which resolves a split brain quickly).
    pub lower_prio_no_advert: bool,
    /// keepalived `higher_prio_send_advert`: a master that yields to a
    /// higher-priority advert first sends one last advert of its own
    /// (default false).
    pub higher_prio_send_advert: bool,
    /// keepalived `owner_ignore_adverts`: while our effective priority is
    /// 255, drop every advert ([`crate::DropReason::AddressOwner`]), as RFC
    /// 5798 section 7.1 reads before RFC 9568 erratum 8298. Default false:
    /// the owner still answers lower-priority adverts at once.
    pub owner_ignore_adverts: bool,
    /// keepalived `garp_lower_prio_repeat`: gratuitous ARPs / NAs per
    /// address a master sends when it hears a lower-priority advert, to
    /// win back neighbours' caches (default 0: none).
    pub garp_lower_prio_repeat: u32,
    /// keepalived `garp_lower_prio_delay`: after such a burst, send
    /// another `garp_lower_prio_repeat` messages per address this much
    /// later (default `None`: no second burst).
    pub garp_lower_prio_delay: Option<Duration>,
}

impl InstanceConfig {
    /// A configuration with keepalived's defaults: priority 100, 1 s
    /// interval, preemption on without delay, no authentication, the
    /// pseudo-header checksum, multicast, 5 gratuitous ARPs now and 5 more
    /// after 5 s.
    pub fn new(
        vrid: u8,
        version: Version,
        primary_address: IpAddr,
        virtual_addresses: Vec<IpAddr>,
    ) -> Self {
        InstanceConfig {
            vrid,
            version,
            priority: PRIORITY_DEFAULT,
            advert_interval: Duration::from_secs(1),
            preempt: true,
            preempt_delay: Duration::ZERO,
            primary_address,
            virtual_addresses,
            auth: Auth::None,
            v3_ipv4_checksum: V3Ipv4Checksum::PseudoHeader,
            v3_ipv4_checksum_rx: V3Ipv4ChecksumRx::PseudoHeader,
            unicast_peers: Vec::new(),
            unicast_checksum_compat: false,
            check_unicast_ttl: false,
            garp: GarpConfig::default(),
            lower_prio_no_advert: false,
            higher_prio_send_advert: false,
            garp_lower_prio_repeat: 0,
            garp_lower_prio_delay: None,
            owner_ignore_adverts: false,
        }
    }

    /// The instance's address family (that of the primary address).
    pub fn family(&self) -> AddressFamily {
        AddressFamily::of(&self.primary_address)
    }

    /// Checks the configuration.
    pub fn validate(self) -> Result<ValidConfig, ConfigError> {
        if self.vrid == 0 {
            return Err(ConfigError::InvalidVrid);
        }
        if self.priority == 0 {
            return Err(ConfigError::InvalidPriority);
        }
        if self.priority == PRIORITY_OWNER && !self.preempt {
            return Err(ConfigError::OwnerMustPreempt);
        }
        validate_interval(self.version, self.advert_interval)?;
        let family = self.family();
        if self.version == Version::V2 && family == AddressFamily::Ipv6 {
            return Err(ConfigError::V2RequiresIpv4);
        }
        let p = self.primary_address;
        if p.is_unspecified() || p.is_multicast() || p == IpAddr::from([255, 255, 255, 255]) {
            return Err(ConfigError::InvalidPrimaryAddress(p));
        }
        match (self.version, self.auth) {
            (_, Auth::None) => {}
            (Version::V2, Auth::SimpleText(_)) => {}
            (Version::V3, _) => return Err(ConfigError::AuthRequiresV2),
            (Version::V2, other) => return Err(ConfigError::UnsupportedAuth(other.type_code())),
        }
        if self.version == Version::V3 && self.virtual_addresses.is_empty() {
            return Err(ConfigError::NoVirtualAddresses);
        }
        if self.virtual_addresses.len() > 255 {
            return Err(ConfigError::TooManyVirtualAddresses(
                self.virtual_addresses.len(),
            ));
        }
        for (i, a) in self.virtual_addresses.iter().enumerate() {
            if AddressFamily::of(a) != family {
                return Err(ConfigError::FamilyMismatch(*a));
            }
            if self.virtual_addresses[..i].contains(a) {
                return Err(ConfigError::DuplicateVirtualAddress(*a));
            }
        }
        if let Some(a) = self
            .unicast_peers
            .iter()
            .find(|a| AddressFamily::of(a) != family)
        {
            return Err(ConfigError::FamilyMismatch(*a));
        }
        Ok(ValidConfig(self))
    }
}

/// Checks an advertisement interval for `version`: VRRPv2 whole seconds up
/// to 255 s, VRRPv3 10 ms steps up to 40.95 s.
///
/// ```
/// use std::time::Duration;
/// use vrrp_proto::{validate_interval, ConfigError, Version};
///
/// assert!(validate_interval(Version::V3, Duration::from_millis(40_950)).is_ok());
/// assert_eq!(
///     validate_interval(Version::V3, Duration::from_millis(15)),
///     Err(ConfigError::V3IntervalNotCentiseconds(Duration::from_millis(15)))
/// );
/// assert!(validate_interval(Version::V2, Duration::from_millis(1500)).is_err());
/// ```
pub fn validate_interval(version: Version, interval: Duration) -> Result<(), ConfigError> {
    if interval.is_zero() {
        return Err(ConfigError::ZeroInterval);
    }
    match version {
        Version::V2 => {
            if interval.subsec_nanos() != 0 {
                return Err(ConfigError::V2IntervalNotWholeSeconds(interval));
            }
            if interval.as_secs() > 255 {
                return Err(ConfigError::V2IntervalTooLong(interval));
            }
        }
        Version::V3 => {
            if interval.as_nanos() % 10_000_000 != 0 {
                return Err(ConfigError::V3IntervalNotCentiseconds(interval));
            }
            if interval.as_nanos() / 10_000_000 > u128::from(MAX_V3_INTERVAL_CENTIS) {
                return Err(ConfigError::V3IntervalTooLong(interval));
            }
        }
    }
    Ok(())
}

/// A configuration that passed [`InstanceConfig::validate`]. Dereferences
/// to the [`InstanceConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidConfig(InstanceConfig);

impl ValidConfig {
    /// The validated configuration.
    pub fn get(&self) -> &InstanceConfig {
        &self.0
    }

    /// Gives the configuration back, for editing and validating again.
    pub fn into_inner(self) -> InstanceConfig {
        self.0
    }

    /// The interval as it goes on the wire: seconds (v2) or centiseconds
    /// (v3). Validation guarantees it fits.
    pub(crate) fn wire_interval(&self) -> u16 {
        let ns = self.0.advert_interval.as_nanos();
        let units = match self.0.version {
            Version::V2 => ns / 1_000_000_000,
            Version::V3 => ns / 10_000_000,
        };
        u16::try_from(units).unwrap_or(u16::MAX)
    }
}

impl std::ops::Deref for ValidConfig {
    type Target = InstanceConfig;

    fn deref(&self) -> &InstanceConfig {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn base(version: Version) -> InstanceConfig {
        InstanceConfig::new(10, version, ip("10.0.0.1"), vec![ip("10.0.0.100")])
    }

    #[test]
    fn defaults_are_valid() {
        let v = base(Version::V2).validate().unwrap();
        assert_eq!(v.priority, 100);
        assert_eq!(v.advert_interval, Duration::from_secs(1));
        assert_eq!(v.wire_interval(), 1);
        let v3 = base(Version::V3).validate().unwrap();
        assert_eq!(v3.wire_interval(), 100);
        assert_eq!(v3.get().vrid, 10);
        assert_eq!(v3.into_inner().vrid, 10);
    }

    #[test]
    fn vrid_and_priority() {
        let mut c = base(Version::V3);
        c.vrid = 0;
        assert_eq!(c.validate(), Err(ConfigError::InvalidVrid));
        let mut c = base(Version::V3);
        c.priority = 0;
        assert_eq!(c.validate(), Err(ConfigError::InvalidPriority));
        let mut c = base(Version::V3);
        c.priority = 255;
        c.preempt = false;
        assert_eq!(c.validate(), Err(ConfigError::OwnerMustPreempt));
    }

    #[test]
    fn v2_intervals() {
        let ms = Duration::from_millis;
        assert_eq!(
            validate_interval(Version::V2, ms(0)),
            Err(ConfigError::ZeroInterval)
        );
        assert!(validate_interval(Version::V2, ms(1000)).is_ok());
        assert!(validate_interval(Version::V2, ms(255_000)).is_ok());
        assert_eq!(
            validate_interval(Version::V2, ms(256_000)),
            Err(ConfigError::V2IntervalTooLong(ms(256_000)))
        );
        assert_eq!(
            validate_interval(Version::V2, ms(100)),
            Err(ConfigError::V2IntervalNotWholeSeconds(ms(100)))
        );
    }

    #[test]
    fn v3_intervals() {
        let ms = Duration::from_millis;
        assert!(validate_interval(Version::V3, ms(10)).is_ok());
        assert!(validate_interval(Version::V3, ms(40_950)).is_ok());
        assert_eq!(
            validate_interval(Version::V3, ms(40_960)),
            Err(ConfigError::V3IntervalTooLong(ms(40_960)))
        );
        assert_eq!(
            validate_interval(Version::V3, ms(5)),
            Err(ConfigError::V3IntervalNotCentiseconds(ms(5)))
        );
        assert_eq!(
            validate_interval(Version::V3, Duration::from_micros(10_001)),
            Err(ConfigError::V3IntervalNotCentiseconds(
                Duration::from_micros(10_001)
            ))
        );
        assert_eq!(
            validate_interval(Version::V3, ms(0)),
            Err(ConfigError::ZeroInterval)
        );
        let mut c = base(Version::V3);
        c.advert_interval = ms(40_950);
        assert_eq!(c.validate().unwrap().wire_interval(), 4095);
    }

    #[test]
    fn families() {
        let mut c = base(Version::V2);
        c.primary_address = ip("fe80::1");
        c.virtual_addresses = vec![ip("fe80::100")];
        assert_eq!(c.validate(), Err(ConfigError::V2RequiresIpv4));
        let mut c = base(Version::V3);
        c.virtual_addresses.push(ip("2001:db8::1"));
        assert_eq!(
            c.validate(),
            Err(ConfigError::FamilyMismatch(ip("2001:db8::1")))
        );
        let mut c = base(Version::V3);
        c.unicast_peers = vec![ip("fe80::2")];
        assert_eq!(
            c.validate(),
            Err(ConfigError::FamilyMismatch(ip("fe80::2")))
        );
        let mut c = base(Version::V3);
        c.primary_address = ip("0.0.0.0");
        assert_eq!(
            c.validate(),
            Err(ConfigError::InvalidPrimaryAddress(ip("0.0.0.0")))
        );
        let mut c = base(Version::V3);
        c.primary_address = ip("224.0.0.18");
        assert!(matches!(
            c.validate(),
            Err(ConfigError::InvalidPrimaryAddress(_))
        ));
    }

    #[test]
    fn auth() {
        let mut c = base(Version::V3);
        c.auth = Auth::password(b"x");
        assert_eq!(c.validate(), Err(ConfigError::AuthRequiresV2));
        let mut c = base(Version::V2);
        c.auth = Auth::password(b"x");
        assert!(c.validate().is_ok());
        let mut c = base(Version::V2);
        c.auth = Auth::IpsecAh;
        assert_eq!(c.validate(), Err(ConfigError::UnsupportedAuth(2)));
    }

    #[test]
    fn address_lists() {
        let mut c = base(Version::V3);
        c.virtual_addresses.clear();
        assert_eq!(c.validate(), Err(ConfigError::NoVirtualAddresses));
        let mut c = base(Version::V2);
        c.virtual_addresses.clear();
        assert!(
            c.validate().is_ok(),
            "VRRPv2 tolerates no addresses, like keepalived"
        );
        let mut c = base(Version::V3);
        c.virtual_addresses.push(ip("10.0.0.100"));
        assert_eq!(
            c.validate(),
            Err(ConfigError::DuplicateVirtualAddress(ip("10.0.0.100")))
        );
        let mut c = base(Version::V3);
        c.virtual_addresses = (0..256u32)
            .map(|i| IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + i)))
            .collect();
        assert_eq!(c.validate(), Err(ConfigError::TooManyVirtualAddresses(256)));
    }
}
