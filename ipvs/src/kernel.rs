//! Counters, global timeouts, the sync daemon and the kernel's IPVS information.

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU8;
use std::time::Duration;

use crate::error::{Error, Object, Problem};

/// Traffic counters and rate estimates of a service or destination.
///
/// Every value is valid, so the fields are public.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Stats {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets in (client to server).
    pub inpkts: u64,
    /// Packets out (server to client).
    pub outpkts: u64,
    /// Bytes in.
    pub inbytes: u64,
    /// Bytes out.
    pub outbytes: u64,
    /// Connections per second (estimate).
    pub cps: u64,
    /// Packets in per second.
    pub inpps: u64,
    /// Packets out per second.
    pub outpps: u64,
    /// Bytes in per second.
    pub inbps: u64,
    /// Bytes out per second.
    pub outbps: u64,
}

/// The longest connection timeout ipvsadm sets: 31 days.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86400 * 31);

/// The global connection timeouts (`ipvsadm --set tcp tcpfin udp`).
///
/// When setting them, a zero leaves the kernel's value unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Timeouts {
    tcp: Duration,
    tcp_fin: Duration,
    udp: Duration,
}

impl Timeouts {
    /// Timeouts in whole seconds, each at most [`MAX_TIMEOUT`] (0 = unchanged).
    ///
    /// ```
    /// use ipvs::Timeouts;
    /// use std::time::Duration;
    /// let t = Timeouts::new(Duration::from_secs(900), Duration::from_secs(120), Duration::ZERO)
    ///     .unwrap();
    /// assert_eq!(t.udp(), Duration::ZERO);
    /// assert!(Timeouts::new(Duration::from_millis(1500), Duration::ZERO, Duration::ZERO).is_err());
    /// ```
    pub fn new(tcp: Duration, tcp_fin: Duration, udp: Duration) -> Result<Self, Error> {
        for (which, value) in [("tcp", tcp), ("tcpfin", tcp_fin), ("udp", udp)] {
            let problem = if value.subsec_nanos() != 0 {
                Some(Problem::NotWholeSeconds(value))
            } else if value > MAX_TIMEOUT {
                Some(Problem::TimeoutTooLong { which, value })
            } else {
                None
            };
            if let Some(p) = problem {
                return Err(Error::new(Object::Timeouts, p));
            }
        }
        Ok(Timeouts { tcp, tcp_fin, udp })
    }

    /// The TCP established timeout.
    pub fn tcp(&self) -> Duration {
        self.tcp
    }

    /// The TCP FIN_WAIT timeout.
    pub fn tcp_fin(&self) -> Duration {
        self.tcp_fin
    }

    /// The UDP timeout.
    pub fn udp(&self) -> Duration {
        self.udp
    }
}

/// The role of a connection synchronisation daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SyncState {
    /// Sends connection updates (`IP_VS_STATE_MASTER` = 1).
    Master,
    /// Receives them (`IP_VS_STATE_BACKUP` = 2).
    Backup,
}

impl SyncState {
    /// The kernel's state value.
    pub fn to_kernel(self) -> u32 {
        match self {
            SyncState::Master => 1,
            SyncState::Backup => 2,
        }
    }

    /// `master` or `backup`.
    pub fn name(self) -> &'static str {
        match self {
            SyncState::Master => "master",
            SyncState::Backup => "backup",
        }
    }
}

/// Settings of a connection synchronisation daemon (`ipvsadm --start-daemon`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SyncDaemon {
    state: SyncState,
    mcast_ifn: String,
    sync_id: u8,
    sync_maxlen: Option<u16>,
    mcast_group: Option<IpAddr>,
    mcast_port: Option<u16>,
    mcast_ttl: Option<NonZeroU8>,
}

/// The largest sync message length ipvsadm accepts: 65535 - 20 (IP) - 8 (UDP).
pub const MAX_SYNC_MAXLEN: u16 = 65535 - 20 - 8;

impl SyncDaemon {
    /// A daemon on multicast interface `mcast_ifn` (1 to 15 bytes, the kernel's
    /// `IP_VS_IFNAME_MAXLEN` is 16 with the NUL) with sync id `sync_id`; the other
    /// settings are the kernel's defaults.
    ///
    /// ```
    /// use ipvs::{SyncDaemon, SyncState};
    /// let d = SyncDaemon::new(SyncState::Master, "eth0", 7)
    ///     .unwrap()
    ///     .with_mcast_group("239.1.2.3".parse().unwrap())
    ///     .unwrap();
    /// assert_eq!(d.sync_id(), 7);
    /// assert!(SyncDaemon::new(SyncState::Backup, "an-interface-name", 1).is_err());
    /// ```
    pub fn new(state: SyncState, mcast_ifn: &str, sync_id: u8) -> Result<Self, Error> {
        let valid = !mcast_ifn.is_empty()
            && mcast_ifn.len() < 16
            && mcast_ifn != "."
            && mcast_ifn != ".."
            && mcast_ifn
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
        if !valid {
            return Err(Error::new(
                Object::SyncDaemon,
                Problem::InterfaceNameInvalid(mcast_ifn.to_owned()),
            ));
        }
        Ok(SyncDaemon {
            state,
            mcast_ifn: mcast_ifn.to_owned(),
            sync_id,
            sync_maxlen: None,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
        })
    }

    /// Sets the maximum sync message length, 1..=[`MAX_SYNC_MAXLEN`].
    pub fn with_sync_maxlen(mut self, len: u16) -> Result<Self, Error> {
        if len == 0 || len > MAX_SYNC_MAXLEN {
            return Err(Error::new(
                Object::SyncDaemon,
                Problem::SyncMaxlenOutOfRange(len),
            ));
        }
        self.sync_maxlen = Some(len);
        Ok(self)
    }

    /// Sets the multicast group (IPv4 or IPv6, must be multicast).
    pub fn with_mcast_group(mut self, group: IpAddr) -> Result<Self, Error> {
        if !group.is_multicast() {
            return Err(Error::new(Object::SyncDaemon, Problem::NotMulticast(group)));
        }
        self.mcast_group = Some(group);
        Ok(self)
    }

    /// Sets the UDP port (not 0).
    pub fn with_mcast_port(mut self, port: u16) -> Result<Self, Error> {
        if port == 0 {
            return Err(Error::new(Object::SyncDaemon, Problem::McastPortZero));
        }
        self.mcast_port = Some(port);
        Ok(self)
    }

    /// Sets the multicast TTL, 1..=255.
    pub fn with_mcast_ttl(mut self, ttl: u8) -> Result<Self, Error> {
        let ttl =
            NonZeroU8::new(ttl).ok_or(Error::new(Object::SyncDaemon, Problem::McastTtlZero))?;
        self.mcast_ttl = Some(ttl);
        Ok(self)
    }

    /// Master or backup.
    pub fn state(&self) -> SyncState {
        self.state
    }

    /// The multicast interface name.
    pub fn mcast_ifn(&self) -> &str {
        &self.mcast_ifn
    }

    /// The sync id.
    pub fn sync_id(&self) -> u8 {
        self.sync_id
    }

    /// The maximum sync message length, if set.
    pub fn sync_maxlen(&self) -> Option<u16> {
        self.sync_maxlen
    }

    /// The multicast group, if set (the kernel's default is 224.0.0.81).
    pub fn mcast_group(&self) -> Option<IpAddr> {
        self.mcast_group
    }

    /// The UDP port, if set (the kernel's default is 8848).
    pub fn mcast_port(&self) -> Option<u16> {
        self.mcast_port
    }

    /// The multicast TTL, if set (the kernel's default is 1).
    pub fn mcast_ttl(&self) -> Option<u8> {
        self.mcast_ttl.map(NonZeroU8::get)
    }
}

/// An IPVS version, encoded as the kernel does: `major << 16 | minor << 8 | patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpvsVersion(pub u32);

impl IpvsVersion {
    /// The version `major.minor.patch`.
    pub fn new(major: u8, minor: u8, patch: u8) -> Self {
        IpvsVersion(u32::from(major) << 16 | u32::from(minor) << 8 | u32::from(patch))
    }

    /// The major number.
    pub fn major(self) -> u32 {
        self.0 >> 16
    }

    /// The minor number.
    pub fn minor(self) -> u32 {
        (self.0 >> 8) & 0xff
    }

    /// The patch number.
    pub fn patch(self) -> u32 {
        self.0 & 0xff
    }
}

impl fmt::Display for IpvsVersion {
    /// `1.2.1`, as ipvsadm prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major(), self.minor(), self.patch())
    }
}

/// The kernel's IPVS information (`IPVS_CMD_GET_INFO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Info {
    /// The IPVS version.
    pub version: IpvsVersion,
    /// The size of the connection hash table.
    pub conn_table_size: u32,
}
