//! The validated configuration: what the rest of the daemon consumes.
//!
//! These types are self-contained (std types and enums defined here). Every value in them
//! has passed validation: ranges, cross references and family rules hold, defaults are
//! filled in. See `CONFIG.md` for the YAML syntax that produces them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// A whole, validated configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// VRRP instances (`vrrp_instances`), in file order.
    pub vrrp_instances: Vec<VrrpInstance>,
    /// VRRP sync groups (`vrrp_sync_groups`), in file order.
    pub vrrp_sync_groups: Vec<SyncGroup>,
    /// IPVS virtual servers (`virtual_servers`), in file order.
    pub virtual_servers: Vec<VirtualServer>,
    /// How the IPVS table is kept (`ipvs`).
    pub ipvs: IpvsSettings,
    /// The Prometheus metrics endpoint (`metrics`); `None`: no endpoint.
    pub metrics: Option<MetricsSettings>,
    /// The IPVS connection-sync daemon following a VRRP instance (`sync_daemon`).
    pub sync_daemon: Option<SyncDaemonSettings>,
    /// Where the routes of announced virtual IPs go (`bgp`); the defaults when the
    /// section is absent.
    pub bgp: BgpSettings,
}

/// The `bgp` section: the kernel routing table (and route protocol tag) into which the
/// daemon installs a host route for each virtual IP it announces (`announce: bgp`), for a
/// BGP speaker (BIRD) to export to its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BgpSettings {
    /// Routing table id (not 0, 253 `default`, 254 `main` or 255 `local`).
    pub table: u32,
    /// The routes' protocol number (`proto` in `ip route`): marks them as the daemon's;
    /// not 0..=4 (the kernel's own) or 12 (BIRD's).
    pub protocol: u8,
}

impl BgpSettings {
    /// The default table, 100.
    pub const DEFAULT_TABLE: u32 = 100;
    /// The default route protocol, 77 (unassigned in `/etc/iproute2/rt_protos`).
    pub const DEFAULT_PROTOCOL: u8 = 77;
}

impl Default for BgpSettings {
    fn default() -> Self {
        Self {
            table: Self::DEFAULT_TABLE,
            protocol: Self::DEFAULT_PROTOCOL,
        }
    }
}

/// How a virtual server's address is announced to the network (`announce`), besides or
/// instead of VRRP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Announce {
    /// `bgp`: a host route for the VIP in the [`BgpSettings::table`] while the service is in
    /// quorum, exported by the local BGP speaker.
    Bgp,
}

/// The `sync_daemon` section: the kernel's IPVS connection synchronisation follows a VRRP
/// instance: the master sync daemon runs while the instance is Master, the backup one
/// otherwise (keepalived's `lvs_sync_daemon`). Without an instance both run all the time
/// (active-active directors behind ECMP: each sends its connections and learns the
/// others').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncDaemonSettings {
    /// Interface the sync messages are sent and received on.
    pub interface: String,
    /// The VRRP instance followed (one of `vrrp_instances`); `None`: both daemons run.
    pub instance: Option<String>,
    /// Sync id (0..=255; both directors use the same).
    pub sync_id: u8,
}

/// The `metrics` section: where the Prometheus endpoint listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSettings {
    /// The address and port of the HTTP endpoint (`listen`).
    pub listen: SocketAddr,
    /// Whether a non-loopback `listen` address is allowed (`allow_remote`).
    pub allow_remote: bool,
}

/// What happens to the daemon's own IPVS services when it stops (`ipvs.on_stop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStop {
    /// Delete the services the configuration defines (the default).
    #[default]
    Remove,
    /// Leave the table as it is, e.g. for an upgrade: the next start adopts it.
    Keep,
}

/// The `ipvs` section: how the daemon keeps the kernel table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpvsSettings {
    /// Time between full reconciles that repair drift (e.g. a table flushed by hand).
    pub reconcile_interval: Duration,
    /// How long health changes are gathered before they are written as one batch.
    pub coalesce: Duration,
    /// What happens to the daemon's services on stop.
    pub on_stop: OnStop,
}

impl Default for IpvsSettings {
    fn default() -> Self {
        Self {
            reconcile_interval: Duration::from_secs(10),
            coalesce: Duration::from_millis(50),
            on_stop: OnStop::Remove,
        }
    }
}

impl Config {
    /// Number of real servers over all virtual servers (sorry servers not counted).
    pub fn real_server_count(&self) -> usize {
        self.virtual_servers
            .iter()
            .map(|vs| vs.real_servers.len())
            .sum()
    }
}

/// An IP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressFamily {
    /// IPv4 (`ipv4`).
    Ipv4,
    /// IPv6 (`ipv6`).
    Ipv6,
}

impl AddressFamily {
    /// The family of an address.
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::Ipv4,
            IpAddr::V6(_) => Self::Ipv6,
        }
    }

    /// The configuration spelling: `ipv4` or `ipv6`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
        }
    }
}

impl fmt::Display for AddressFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// VRRP protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VrrpVersion {
    /// VRRPv2 (RFC 3768): IPv4 only, advertisement interval in whole seconds.
    V2,
    /// VRRPv3 (RFC 5798): IPv4 or IPv6, advertisement interval in centiseconds.
    V3,
}

impl VrrpVersion {
    /// The version number, 2 or 3.
    pub fn number(self) -> u8 {
        match self {
            Self::V2 => 2,
            Self::V3 => 3,
        }
    }
}

/// An address with a prefix length, as added to an interface (`192.0.2.10/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VirtualIp {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length: 1..=32 for IPv4, 1..=128 for IPv6.
    pub prefix_len: u8,
}

impl fmt::Display for VirtualIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// A command to run: the program (an absolute path) and its arguments. No shell is involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// `argv[0]`: an absolute path.
    pub program: String,
    /// `argv[1..]`.
    pub args: Vec<String>,
}

/// One VRRP instance (`vrrp_instances[]`): a virtual router on one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpInstance {
    /// Unique name.
    pub name: String,
    /// Interface the instance runs on (sends and receives advertisements, holds the VIPs).
    pub interface: String,
    /// Virtual router id, 1..=255.
    pub vrid: u8,
    /// Priority, 1..=255; 255 means this router owns the addresses.
    pub priority: u8,
    /// Protocol version.
    pub version: VrrpVersion,
    /// The address family of the instance: that of its virtual IPs (one family per instance).
    pub family: AddressFamily,
    /// Advertisement interval: whole seconds 1..=255 s for v2; 10 ms steps 10 ms..=40.95 s
    /// for v3.
    pub advert_interval: Duration,
    /// Whether a higher-priority backup takes over from a lower-priority master.
    pub preempt: bool,
    /// How long to wait before preempting (0 s..=1000 s; zero when `preempt` is false).
    pub preempt_delay: Duration,
    /// Source address for unicast advertisements (only with `unicast_peers`).
    pub unicast_source: Option<IpAddr>,
    /// Unicast peers; empty means multicast advertisements.
    pub unicast_peers: Vec<IpAddr>,
    /// VRRPv2 simple-text authentication password (1..=8 bytes).
    pub auth_pass: Option<String>,
    /// The virtual addresses, all of [`Self::family`].
    pub virtual_ips: Vec<VirtualIp>,
    /// Interfaces whose link going down puts the instance into FAULT.
    pub track_interfaces: Vec<String>,
    /// Scripts whose result adjusts the priority or causes FAULT.
    pub track_scripts: Vec<TrackScript>,
    /// Commands run on state changes.
    pub notify: Notify,
    /// Gratuitous ARP / unsolicited neighbour advertisement settings on becoming master.
    pub garp: Garp,
    /// The virtual MAC interface (`vmac`), if the instance uses one.
    pub vmac: Option<Vmac>,
}

/// A virtual MAC interface (`vmac`, keepalived's `use_vmac`): a macvlan over the
/// instance's interface with the VRRP MAC address `00:00:5e:00:01:VRID` (IPv4) or
/// `00:00:5e:00:02:VRID` (IPv6), which holds the virtual IPs while Master and sends the
/// adverts and gratuitous ARPs / NAs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vmac {
    /// The macvlan's name: as configured, else `vrrp.VRID` (IPv4) or `vrrp6.VRID` (IPv6).
    pub name: String,
}

impl Vmac {
    /// The default name of the virtual MAC interface of `vrid` in `family`.
    pub fn default_name(vrid: u8, family: AddressFamily) -> String {
        match family {
            AddressFamily::Ipv4 => format!("vrrp.{vrid}"),
            AddressFamily::Ipv6 => format!("vrrp6.{vrid}"),
        }
    }
}

/// A tracked script (`track_scripts[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackScript {
    /// The command; exit status 0 means success.
    pub command: Command,
    /// Time between runs.
    pub interval: Duration,
    /// Time after which a run counts as a failure (`<= interval`).
    pub timeout: Duration,
    /// Priority adjustment, -253..=253: a positive weight is added while the script
    /// succeeds, a negative weight is added while it fails; 0 means a failing script puts
    /// the instance into FAULT.
    pub weight: i16,
    /// Consecutive successes before the script counts as succeeding (>= 1).
    pub rise: u32,
    /// Consecutive failures before the script counts as failing (>= 1).
    pub fall: u32,
}

/// Commands run on VRRP state transitions (`notify`).
///
/// The commands of one instance run one at a time, in the order of its transitions; a
/// Master that stops runs `stop` before it gives up the virtual addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// Run on becoming MASTER.
    pub master: Option<Command>,
    /// Run on becoming BACKUP.
    pub backup: Option<Command>,
    /// Run on entering FAULT.
    pub fault: Option<Command>,
    /// Run when the instance stops (daemon stop, or a reload that removes or restarts it).
    pub stop: Option<Command>,
    /// How long one command may run before it is killed (1s..=1h, default 10s).
    pub timeout: Duration,
}

impl Notify {
    /// The default `notify.timeout`.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
}

impl Default for Notify {
    fn default() -> Self {
        Notify {
            master: None,
            backup: None,
            fault: None,
            stop: None,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }
}

/// Gratuitous ARP / unsolicited NA behaviour on becoming master (`garp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Garp {
    /// Delay after the transition to MASTER before the second burst (0 s: no second burst).
    pub delay: Duration,
    /// Messages per burst, 1..=100.
    pub repeat: u32,
}

impl Default for Garp {
    fn default() -> Self {
        Self {
            delay: Duration::from_secs(5),
            repeat: 5,
        }
    }
}

/// A sync group (`vrrp_sync_groups[]`): instances that change state together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroup {
    /// Unique name.
    pub name: String,
    /// Names of member instances (each exists and is in no other group).
    pub instances: Vec<String>,
}

/// Transport protocol of an address-based virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

/// What identifies a virtual service to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceKey {
    /// `vip` + `protocol`.
    Addr {
        /// Transport protocol.
        protocol: Protocol,
        /// Virtual address and port (port 0: all ports, requires persistence).
        vip: SocketAddr,
    },
    /// `fwmark` + `family`: packets marked by netfilter.
    Fwmark {
        /// Firewall mark, 1..=4294967295.
        mark: u32,
        /// Address family of the service.
        family: AddressFamily,
    },
}

impl ServiceKey {
    /// The address family of the service.
    pub fn family(&self) -> AddressFamily {
        match self {
            Self::Addr { vip, .. } => AddressFamily::of(vip.ip()),
            Self::Fwmark { family, .. } => *family,
        }
    }
}

/// An IPVS scheduler (the kernel module `ip_vs_<name>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheduler {
    /// Round robin.
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Least connections.
    Lc,
    /// Weighted least connections (the default).
    Wlc,
    /// Locality-based least connections.
    Lblc,
    /// Locality-based least connections with replication.
    Lblcr,
    /// Destination hashing.
    Dh,
    /// Source hashing.
    Sh,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Weighted failover.
    Fo,
    /// Weighted overflow.
    Ovf,
    /// Maglev hashing.
    Mh,
    /// Weighted random twos choice.
    Twos,
}

impl Scheduler {
    /// Every scheduler, in documentation order.
    pub const ALL: [Scheduler; 14] = [
        Self::Rr,
        Self::Wrr,
        Self::Lc,
        Self::Wlc,
        Self::Lblc,
        Self::Lblcr,
        Self::Dh,
        Self::Sh,
        Self::Sed,
        Self::Nq,
        Self::Fo,
        Self::Ovf,
        Self::Mh,
        Self::Twos,
    ];

    /// The kernel's name for the scheduler.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rr => "rr",
            Self::Wrr => "wrr",
            Self::Lc => "lc",
            Self::Wlc => "wlc",
            Self::Lblc => "lblc",
            Self::Lblcr => "lblcr",
            Self::Dh => "dh",
            Self::Sh => "sh",
            Self::Sed => "sed",
            Self::Nq => "nq",
            Self::Fo => "fo",
            Self::Ovf => "ovf",
            Self::Mh => "mh",
            Self::Twos => "twos",
        }
    }
}

/// A scheduler flag (`scheduler_flags`), valid only with its scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchedulerFlag {
    /// `sh-fallback`: source hashing skips unavailable servers.
    ShFallback,
    /// `sh-port`: source hashing includes the source port.
    ShPort,
    /// `mh-fallback`: maglev hashing skips unavailable servers.
    MhFallback,
    /// `mh-port`: maglev hashing includes the source port.
    MhPort,
}

impl SchedulerFlag {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ShFallback => "sh-fallback",
            Self::ShPort => "sh-port",
            Self::MhFallback => "mh-fallback",
            Self::MhPort => "mh-port",
        }
    }

    /// The scheduler the flag belongs to.
    pub fn scheduler(self) -> Scheduler {
        match self {
            Self::ShFallback | Self::ShPort => Scheduler::Sh,
            Self::MhFallback | Self::MhPort => Scheduler::Mh,
        }
    }
}

/// Persistence (`persistence`): a client keeps going to the same real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persistence {
    /// Idle time after which the affinity is forgotten (whole seconds, >= 1 s).
    pub timeout: Duration,
    /// Prefix length of the client netmask that groups clients: IPv4 0..=32 (written as a
    /// dotted mask), IPv6 1..=128.
    pub prefix_len: u8,
}

impl Persistence {
    /// For an IPv4 service: the netmask as a dotted-quad address.
    pub fn ipv4_netmask(&self) -> Ipv4Addr {
        let bits = u32::from(self.prefix_len.min(32));
        let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
        Ipv4Addr::from(mask)
    }
}

/// Tunnel encapsulation for `forward: tun`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelEncap {
    /// IP-in-IP (the default).
    Ipip,
    /// Generic UDP Encapsulation to a UDP port.
    Gue {
        /// Destination UDP port, 1..=65535.
        port: u16,
    },
    /// GRE.
    Gre,
}

/// Tunnel checksum mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TunnelChecksum {
    /// No checksum (the default).
    #[default]
    None,
    /// Checksum (GUE and GRE).
    Csum,
    /// Remote checksum offload (GUE only).
    Remcsum,
}

/// Tunnel settings (`tunnel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunnel {
    /// Encapsulation.
    pub encap: TunnelEncap,
    /// Checksum mode.
    pub checksum: TunnelChecksum,
}

/// Packet forwarding method (`forward`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// Masquerading (`nat`).
    Nat,
    /// Direct routing (`dr`).
    DirectRouting,
    /// Tunnelling (`tun`).
    Tunnel(Tunnel),
}

/// DNS record type queried by a DNS check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DnsRecordType {
    /// A.
    A,
    /// AAAA.
    Aaaa,
    /// CNAME.
    Cname,
    /// MX.
    Mx,
    /// NS.
    Ns,
    /// PTR.
    Ptr,
    /// SOA.
    Soa,
    /// SRV.
    Srv,
    /// TXT.
    Txt,
}

impl DnsRecordType {
    /// Every record type with its configuration spelling.
    pub const ALL: [(DnsRecordType, &'static str); 9] = [
        (Self::A, "A"),
        (Self::Aaaa, "AAAA"),
        (Self::Cname, "CNAME"),
        (Self::Mx, "MX"),
        (Self::Ns, "NS"),
        (Self::Ptr, "PTR"),
        (Self::Soa, "SOA"),
        (Self::Srv, "SRV"),
        (Self::Txt, "TXT"),
    ];
}

/// A compiled `expect_body` regular expression; equality compares the source text.
#[derive(Debug, Clone)]
pub struct BodyPattern(pub regex::Regex);

impl PartialEq for BodyPattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for BodyPattern {}

/// An HTTP or HTTPS check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    /// Request path (starts with `/`).
    pub path: String,
    /// Accepted status codes (100..=599, at least one).
    pub expect_status: Vec<u16>,
    /// Regular expression the body must match, if any.
    pub expect_body: Option<BodyPattern>,
    /// `Host` header and TLS SNI; when absent the real server's address is used.
    pub host: Option<String>,
    /// `https` only: PEM file of the certificate authorities the server's certificate must
    /// chain to (and then its name must match `host`). Without it the certificate is not
    /// verified, like keepalived's `SSL_GET`.
    pub ca: Option<std::path::PathBuf>,
}

/// How a DNS check sends its query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DnsTransport {
    /// One datagram each way (`udp`, the default).
    #[default]
    Udp,
    /// A TCP connection, with length-prefixed messages (`tcp`, RFC 1035 4.2.2).
    Tcp,
    /// A query over UDP, then one over TCP; up only when both are answered (`both`: for
    /// a server that takes both, such as under a fwmark service).
    Both,
}

impl DnsTransport {
    /// Every transport with its configuration spelling.
    pub const ALL: [(DnsTransport, &'static str); 3] =
        [(Self::Udp, "udp"), (Self::Tcp, "tcp"), (Self::Both, "both")];
}

/// A DNS check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsCheck {
    /// Name queried.
    pub query: String,
    /// Record type queried; a reply with at least one such record means up.
    pub record: DnsRecordType,
    /// Over UDP, TCP or both.
    pub transport: DnsTransport,
}

/// How a `tcp` check ends a connection that was accepted (`close`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TcpClose {
    /// A reset (`reset`, the default): `SO_LINGER` with a zero timeout, as HAProxy's
    /// checks do. Three segments fewer per check than `fin`, and no TIME_WAIT socket on
    /// the director (at thousands of checks a second the kernel's TIME_WAIT buckets
    /// overflow). A real server may log the reset ("connection reset by peer").
    #[default]
    Reset,
    /// The normal close (`fin`, what keepalived's `TCP_CHECK` does): FIN both ways, the
    /// director keeps each probe's socket in TIME_WAIT for 60 s.
    Fin,
}

impl TcpClose {
    /// Every way with its configuration spelling.
    pub const ALL: [(&'static str, TcpClose); 2] = [("reset", Self::Reset), ("fin", Self::Fin)];
}

/// A TCP check: the connection is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpCheck {
    /// How the accepted connection is closed.
    pub close: TcpClose,
}

/// What a health check does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// TCP connect.
    Tcp(TcpCheck),
    /// HTTP GET.
    Http(HttpCheck),
    /// HTTPS GET.
    Https(HttpCheck),
    /// DNS query (over UDP, TCP or both).
    Dns(DnsCheck),
    /// Run a command; exit status 0 means up.
    Exec(Command),
}

/// A health check, with its schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The probe.
    pub kind: CheckKind,
    /// Time between probes.
    pub interval: Duration,
    /// Probe timeout (`<= interval`).
    pub timeout: Duration,
    /// Consecutive successes before a server is marked up (>= 1).
    pub rise: u32,
    /// Consecutive failures before a server is marked down (>= 1).
    pub fall: u32,
    /// Port to probe instead of the real server's port (network checks only).
    pub port: Option<u16>,
    /// Source address of the probes (network checks only; same family as the server).
    pub source: Option<IpAddr>,
}

/// Quorum (`quorum`): how many real servers must be up for the service to be "up".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quorum {
    /// Minimum number of up real servers.
    pub min_up: u32,
    /// Hysteresis: quorum is lost below `min_up - hysteresis` and regained at
    /// `min_up + hysteresis` up servers.
    pub hysteresis: u32,
}

impl Default for Quorum {
    fn default() -> Self {
        Self {
            min_up: 1,
            hysteresis: 0,
        }
    }
}

/// A real server (`real_servers[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServer {
    /// Address and port (port 0 only for fwmark services or a port-0 VIP).
    pub address: SocketAddr,
    /// Weight, 0..=2147483647 (0: no new connections).
    pub weight: u32,
    /// The effective health check: the server's own `check`, else the service's; `None`
    /// means no check (the server is always considered up).
    pub check: Option<Check>,
}

/// An IPVS virtual server (`virtual_servers[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualServer {
    /// Unique name.
    pub name: String,
    /// The service's identity in the kernel.
    pub key: ServiceKey,
    /// Scheduler.
    pub scheduler: Scheduler,
    /// Scheduler flags (all belonging to [`Self::scheduler`]).
    pub scheduler_flags: Vec<SchedulerFlag>,
    /// Persistence, if any.
    pub persistence: Option<Persistence>,
    /// One-packet scheduling (UDP and fwmark services only).
    pub one_packet: bool,
    /// Forwarding method (with tunnel settings for `tun`).
    pub forward: Forward,
    /// Real servers (at least one, unique addresses).
    pub real_servers: Vec<RealServer>,
    /// Quorum rule.
    pub quorum: Quorum,
    /// Server used while the quorum is not met.
    pub sorry_server: Option<SocketAddr>,
    /// Keep failed servers with weight 0 instead of removing them.
    pub inhibit_on_failure: bool,
    /// How the VIP is announced (`announce`); `None`: not by this daemon's routes.
    pub announce: Option<Announce>,
}
