//! The load-balancing lab: the classic LVS layouts (NAT, direct routing, IP-in-IP
//! tunnelling) built from fresh network namespaces, with real backends and a client.
//!
//! An [`LbLab`] holds a client, a director (where IPVS is programmed), N real servers
//! running `lab-backend`, and for DR and TUN a router. Each L2 segment is a bridge in a
//! namespace of its own (a "switch"), so more members (a second director for VRRP
//! failover) can be plugged in later with [`LbLab::attach`]. Everything is removed on
//! drop: the backends are killed (by PID) first, then the namespaces, which takes their
//! links and bridges with them.
//!
//! ```no_run
//! use ipvs_integration::lb_lab::{LbLab, Mode};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let lab = LbLab::new(Mode::Nat, 3)?; // namespaces, links, backends running
//! lab.add_service("-t", 80, "rr")?; // ipvsadm in the director: VIP:80 over every backend
//! let spread = lab.client_requests(300); // GET / from the client, counted per backend
//! assert_eq!(spread.failures, 0, "{spread}");
//! # Ok(()) }
//! ```
//!
//! # NAT (`-m`)
//!
//! The director is the real servers' default gateway: requests are rewritten to a real
//! server's address, replies come back through the director, which rewrites them back.
//!
//! ```text
//!  client 172.16.1.2/24            director                         real servers
//!  fd00:1::2/64                    eth0 172.16.1.1/24  fd00:1::1/64
//!   eth0 ── [switch: client] ───── eth0 VIP 172.16.1.100/32, fd00:1::100/128
//!                                  eth1 10.0.0.1/24  fd00:10::1/64
//!                                   │    ip_forward=1, ipv6 forwarding=1
//!                                  [switch: servers] ─┬─ rs0 eth0 10.0.0.11/24  fd00:10::11
//!                                                     ├─ rs1 eth0 10.0.0.12/24  fd00:10::12
//!                                                     └─ rs2 ...  default via 10.0.0.1 / fd00:10::1
//! ```
//!
//! # DR (`-g`, direct routing)
//!
//! As deployed: the client is behind a router, the router, the director and the real
//! servers share one L2 segment, and the VIP is in that segment's subnet. The router ARPs
//! for the VIP and only the director answers: the real servers hold the VIP on `lo` with
//! `arp_ignore=1` (answer ARP only for addresses on the asking interface) and
//! `arp_announce=2` (never use the VIP as the ARP source). The director forwards each
//! request unchanged to a real server's MAC; the real server answers the client directly,
//! from the VIP, through the router (its default gateway), not through the director.
//!
//! ```text
//!  client 172.16.1.2/24     router                     [switch: servers]
//!   eth0 ─ [switch: client] ─ eth0 172.16.1.1/24         │
//!   default via .1            eth1 10.0.0.254/24 ────────┼─ director eth0 10.0.0.1/24
//!                             ip_forward=1               │           + VIP 10.0.0.100/32
//!                                                        ├─ rs0 eth0 10.0.0.11/24, lo VIP/32
//!                                                        ├─ rs1 eth0 10.0.0.12/24, lo VIP/32
//!                                                        └─ rs2 ...  default via 10.0.0.254
//!                                                           arp_ignore=1 arp_announce=2
//! ```
//!
//! # DR with a director pair (VRRP)
//!
//! [`LbLab::dr_pair`] builds the DR layout with a second director, `director2`
//! (eth0 10.0.0.2/24, default via the router), on the same segment, and gives the VIP to
//! neither: the directors' VRRP instance owns it (a floating address), so whichever is
//! Master answers ARP for it and forwards with its own IPVS table. Both directors hold the
//! same table; the real servers' replies go to the router, so a failover only has to move
//! the VIP (and a gratuitous ARP updates the router).
//!
//! ```text
//!  client ─ [switch: client] ─ router ─ [switch: servers] ─┬─ director  eth0 10.0.0.1/24 ┐ VRRP,
//!                                                          ├─ director2 eth0 10.0.0.2/24 ┘ VIP floats
//!                                                          └─ rs0.. (VIP on lo, as above)
//! ```
//!
//! # TUN (`-i`, IP-in-IP)
//!
//! The real servers are on another subnet than the director, reachable only through the
//! router (no shared L2: a request that was not tunnelled cannot reach them). The director
//! encapsulates each request (outer 10.0.0.1 -> real server); the real server's `tunl0`
//! (the ipip fallback device) decapsulates it, holds the VIP, and has `rp_filter=0` (the
//! inner source is not routed through `tunl0`). Replies go straight to the client, from
//! the VIP, through the router (`rp_filter=0` there too: they come from the servers'
//! side with the VIP as source).
//!
//! ```text
//!  client 172.16.1.2/24     router
//!   eth0 ─ [switch: client] ─ eth0 172.16.1.1/24
//!                             eth1 10.0.0.254/24 ─ [switch: directors] ─ director eth0 10.0.0.1/24
//!                             eth2 10.0.1.254/24 ─┐                      + VIP 10.0.0.100/32
//!                                                 [switch: servers] ─┬─ rs0 eth0 10.0.1.11/24
//!                                                                    ├─ rs1 eth0 10.0.1.12/24
//!                                                                    └─ rs2 ...
//!                                                    each: tunl0 up + VIP/32, rp_filter=0,
//!                                                    default via 10.0.1.254
//! ```
//!
//! # Backends
//!
//! Each real server `i` runs `lab-backend --name rs<i>` (names `rs0`, `rs1`, ...) with
//! HTTP on port [`HTTP_PORT`] and [`HTTP_ALT_PORT`], the banner-and-echo TCP service on
//! [`TCP_PORT`] and DNS (UDP and TCP) on [`DNS_PORT`], all on `0.0.0.0` and `[::]`. The
//! DNS server answers A queries for [`DNS_NAME`] with [`DNS_ADDR`] and TXT queries with
//! the backend's name. The binary is found next to the test executable (`target/debug/`,
//! which cargo builds for this package's integration tests) or at `$LAB_BACKEND`.
//!
//! The client helpers ([`LbLab::client_requests`], [`LbLab::client_dns`], ...) open a new
//! connection (or UDP socket, so a new source port) per request from the client
//! namespace, on a few threads, and count the answers per backend name in a [`Spread`].

use crate::netns::{CmdError, TestNs};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The HTTP port of every backend (and of the services the tests program).
pub const HTTP_PORT: u16 = 80;
/// A second HTTP port on every backend.
pub const HTTP_ALT_PORT: u16 = 8080;
/// The banner-and-echo TCP service of every backend.
pub const TCP_PORT: u16 = 7000;
/// The DNS port (UDP and TCP) of every backend.
pub const DNS_PORT: u16 = 53;
/// The name the backends' DNS servers know.
pub const DNS_NAME: &str = "svc.lab.test";
/// The A record of [`DNS_NAME`].
pub const DNS_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);

/// How long a backend may take to print `ready` (process start is slow under TCG).
const BACKEND_READY: Duration = Duration::from_secs(60);
/// The second director's address in a [`LbLab::dr_pair`].
const DIRECTOR2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// The time limit of one client request (connect, and each read or write).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Client threads per request loop.
const CLIENT_THREADS: usize = 4;

/// The LVS forwarding method the lab is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Masquerading: the director rewrites addresses and is the servers' gateway.
    Nat,
    /// Direct routing: one L2 segment, VIP on the servers' `lo`, replies bypass the
    /// director.
    Dr,
    /// IP-in-IP tunnelling to servers on another subnet; replies bypass the director.
    Tun,
}

impl Mode {
    /// The ipvsadm flag for a real server of this mode: `-m`, `-g` or `-i`.
    pub fn ipvsadm_flag(self) -> &'static str {
        match self {
            Self::Nat => "-m",
            Self::Dr => "-g",
            Self::Tun => "-i",
        }
    }

    /// The keepalived / keepalive-d name of the method: `NAT`, `DR` or `TUN`.
    pub fn lb_kind(self) -> &'static str {
        match self {
            Self::Nat => "NAT",
            Self::Dr => "DR",
            Self::Tun => "TUN",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Self::Nat => "nat",
            Self::Dr => "dr",
            Self::Tun => "tun",
        }
    }
}

/// An L2 segment of the lab (a bridge in a namespace of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// The client's segment (NAT: the director's front side with the VIP; DR and TUN:
    /// the router's client side).
    Client,
    /// The segment where the VIP lives and a director must sit (NAT: [`Segment::Client`];
    /// DR: [`Segment::RealServers`]; TUN: the directors' own segment).
    Vip,
    /// The real servers' segment.
    RealServers,
}

/// Why the lab could not be built or driven.
#[derive(Debug)]
pub struct LbLabError(pub String);

impl std::fmt::Display for LbLabError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LbLabError {}

impl From<CmdError> for LbLabError {
    fn from(e: CmdError) -> Self {
        Self(e.0)
    }
}

/// The answers of a client request loop: how many each backend gave, and the failures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spread {
    /// Successful answers per backend name.
    pub counts: BTreeMap<String, usize>,
    /// Requests that failed (refused, timed out, bad answer).
    pub failures: usize,
    /// The distinct failure messages, with how often each happened.
    pub errors: BTreeMap<String, usize>,
    /// When each failed request started (to tell whether failures fall inside a window,
    /// e.g. a failover).
    pub failure_times: Vec<Instant>,
    /// How long the loop took.
    pub elapsed: Duration,
}

impl Spread {
    /// Adds `other`'s answers, failures and errors to this one (elapsed times are not
    /// summed).
    pub fn merge(&mut self, other: Spread) {
        for (k, v) in other.counts {
            *self.counts.entry(k).or_default() += v;
        }
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.failures += other.failures;
        self.failure_times.extend(other.failure_times);
    }

    /// Failed requests that started outside `from..=to`.
    pub fn failures_outside(&self, from: Instant, to: Instant) -> usize {
        self.failure_times
            .iter()
            .filter(|t| **t < from || **t > to)
            .count()
    }

    /// Answers from the backend named `name` (`rs0`, ...).
    pub fn count(&self, name: &str) -> usize {
        self.counts.get(name).copied().unwrap_or(0)
    }

    /// Successful answers in total.
    pub fn ok(&self) -> usize {
        self.counts.values().sum()
    }

    fn record(&mut self, started: Instant, r: Result<String, String>) {
        match r {
            Ok(name) => *self.counts.entry(name).or_default() += 1,
            Err(e) => {
                self.failures += 1;
                self.failure_times.push(started);
                *self.errors.entry(e).or_default() += 1;
            }
        }
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ok, {} failed in {:.1} s:",
            self.ok(),
            self.failures,
            self.elapsed.as_secs_f64()
        )?;
        for (name, n) in &self.counts {
            write!(f, " {name}={n}")?;
        }
        for (e, n) in &self.errors {
            write!(f, "; {n}x {e}")?;
        }
        Ok(())
    }
}

/// DNS over UDP or TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsTransport {
    /// One datagram each way, from a new socket (a new source port) per query.
    Udp,
    /// A new TCP connection per query, length-prefixed messages.
    Tcp,
}

/// The addresses of one layout.
#[derive(Debug, Clone)]
struct Plan {
    vip: Ipv4Addr,
    vip6: Option<Ipv6Addr>,
    client: Ipv4Addr,
    client6: Option<Ipv6Addr>,
    /// The director's address on the real servers' side (NAT) or its own (DR, TUN).
    director: Ipv4Addr,
    real_servers: Vec<Ipv4Addr>,
    real_servers6: Vec<Ipv6Addr>,
}

/// A running `lab-backend`.
#[derive(Debug)]
struct Backend {
    child: Child,
}

impl Backend {
    fn stop(mut self) {
        // Killed by PID (SIGKILL through Child::kill), then reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A load-balancing lab: client, director, real servers with backends, router and
/// switches, in fresh namespaces. See the [module docs](self) for the layouts.
#[derive(Debug)]
pub struct LbLab {
    mode: Mode,
    plan: Plan,
    backend_exe: PathBuf,
    backends: Vec<Option<Backend>>,
    client: TestNs,
    director: TestNs,
    /// The second director of a DR pair ([`LbLab::dr_pair`]); the VIP floats between them.
    director2: Option<TestNs>,
    router: Option<TestNs>,
    real_servers: Vec<TestNs>,
    /// Switches in the order of [`LbLab::switch_index`]: client, servers, (TUN) directors.
    switches: Vec<TestNs>,
    /// Ports made on each switch so far (for unique port names).
    ports: Vec<AtomicUsize>,
}

impl LbLab {
    /// Builds the `mode` layout with `real_servers` real servers (at least 1, at most
    /// 200) and starts a backend in each.
    pub fn new(mode: Mode, real_servers: usize) -> Result<Self, LbLabError> {
        Self::build(mode, real_servers, false)
    }

    /// Builds the DR layout with two directors (`director` 10.0.0.1 and `director2`
    /// 10.0.0.2) and `real_servers` real servers; neither director has the VIP: a VRRP
    /// instance on their `eth0` must hold it. See the [module docs](self).
    pub fn dr_pair(real_servers: usize) -> Result<Self, LbLabError> {
        Self::build(Mode::Dr, real_servers, true)
    }

    fn build(mode: Mode, real_servers: usize, pair: bool) -> Result<Self, LbLabError> {
        if !(1..=200).contains(&real_servers) {
            return Err(LbLabError(format!(
                "{real_servers} real servers: the lab has room for 1 to 200"
            )));
        }
        let backend_exe = backend_exe()?;
        let plan = plan(mode, real_servers);
        let tag = mode.tag();
        // No duplicate address detection on the lab's fresh links: until it ends (about a
        // second after a link comes up) a link-local address is tentative, and the first
        // packets of a test stalled or were lost behind it (measured in the lab: the
        // first SYN of each IPv6 client connection answered after 1 s, and once after
        // more than the 5 s request timeout on a loaded machine). Set before the links
        // are moved in, so that their addresses start from these defaults.
        let ns = |role: &str| -> Result<TestNs, LbLabError> {
            let ns = TestNs::new(&format!("lb{tag}-{role}"))?;
            sysctl(
                &ns,
                &[
                    ("net.ipv6.conf.all.accept_dad", "0"),
                    ("net.ipv6.conf.default.accept_dad", "0"),
                ],
            )?;
            Ok(ns)
        };
        let client = ns("client")?;
        let director = ns("director")?;
        let director2 = if pair { Some(ns("director2")?) } else { None };
        let router = match mode {
            Mode::Nat => None,
            Mode::Dr | Mode::Tun => Some(ns("router")?),
        };
        let mut rs = Vec::with_capacity(real_servers);
        for i in 0..real_servers {
            rs.push(ns(&format!("rs{i}"))?);
        }
        let n_switches = if mode == Mode::Tun { 3 } else { 2 };
        let mut switches = Vec::with_capacity(n_switches);
        for i in 0..n_switches {
            let sw = ns(&format!("sw{i}"))?;
            sw.run_with_input(
                "ip",
                &["-batch", "-"],
                "link add br0 type bridge forward_delay 0\nlink set br0 up\n",
            )?;
            switches.push(sw);
        }
        let mut lab = Self {
            mode,
            plan,
            backend_exe,
            backends: Vec::new(),
            client,
            director,
            director2,
            router,
            real_servers: rs,
            switches,
            ports: (0..n_switches).map(|_| AtomicUsize::new(0)).collect(),
        };
        lab.wire()?;
        for i in 0..real_servers {
            lab.backends.push(None);
            lab.start_backend(i)?;
        }
        Ok(lab)
    }

    /// Plugs all links into the switches, then addresses, routes and sysctls.
    fn wire(&self) -> Result<(), LbLabError> {
        let p = &self.plan;
        let (c, s) = (Segment::Client, Segment::RealServers);
        // Links (one batch per switch).
        let mut links: Vec<(Segment, &TestNs, &str)> = vec![(c, &self.client, "eth0")];
        match (self.mode, &self.router) {
            (Mode::Nat, _) => {
                links.push((c, &self.director, "eth0"));
                links.push((s, &self.director, "eth1"));
            }
            (Mode::Dr, Some(r)) => {
                links.push((c, r, "eth0"));
                links.push((s, r, "eth1"));
                links.push((s, &self.director, "eth0"));
                if let Some(d2) = &self.director2 {
                    links.push((s, d2, "eth0"));
                }
            }
            (Mode::Tun, Some(r)) => {
                links.push((c, r, "eth0"));
                links.push((Segment::Vip, r, "eth1"));
                links.push((s, r, "eth2"));
                links.push((Segment::Vip, &self.director, "eth0"));
            }
            _ => return Err(LbLabError("the DR and TUN layouts need a router".into())),
        }
        for r in &self.real_servers {
            links.push((s, r, "eth0"));
        }
        let mut batches = vec![String::new(); self.switches.len()];
        for (seg, ns, ifname) in &links {
            let i = self.switch_index(*seg);
            let port = self.ports[i].fetch_add(1, Ordering::Relaxed);
            batches[i].push_str(&port_lines(port, ns, ifname));
        }
        for (sw, batch) in self.switches.iter().zip(&batches) {
            sw.run_with_input("ip", &["-batch", "-"], batch)?;
        }

        // Addresses and routes (one batch per member).
        let mut client = vec![
            format!("addr add {}/24 dev eth0", p.client),
            "link set eth0 up".into(),
            "route add default via 172.16.1.1".into(),
        ];
        if let Some(c6) = p.client6 {
            client.push(format!("addr add {c6}/64 dev eth0 nodad"));
            client.push("route add ::/0 via fd00:1::1".into());
        }
        batch(&self.client, &client)?;
        let vip = p.vip;
        match self.mode {
            Mode::Nat => {
                let mut d = vec![
                    "addr add 172.16.1.1/24 dev eth0".to_string(),
                    format!("addr add {vip}/32 dev eth0"),
                    format!("addr add {}/24 dev eth1", p.director),
                    "addr add fd00:1::1/64 dev eth0 nodad".into(),
                    "addr add fd00:10::1/64 dev eth1 nodad".into(),
                    "link set eth0 up".into(),
                    "link set eth1 up".into(),
                ];
                if let Some(v6) = p.vip6 {
                    d.push(format!("addr add {v6}/128 dev eth0 nodad"));
                }
                batch(&self.director, &d)?;
                for (i, ns) in self.real_servers.iter().enumerate() {
                    let mut lines = vec![
                        format!("addr add {}/24 dev eth0", p.real_servers[i]),
                        "link set eth0 up".into(),
                        format!("route add default via {}", p.director),
                    ];
                    if let Some(a6) = p.real_servers6.get(i) {
                        lines.push(format!("addr add {a6}/64 dev eth0 nodad"));
                        lines.push("route add ::/0 via fd00:10::1".into());
                    }
                    batch(ns, &lines)?;
                }
                sysctl(
                    &self.director,
                    &[
                        ("net.ipv4.ip_forward", "1"),
                        ("net.ipv6.conf.all.forwarding", "1"),
                    ],
                )?;
            }
            Mode::Dr | Mode::Tun => {
                let Some(router) = &self.router else {
                    return Err(LbLabError("the DR and TUN layouts need a router".into()));
                };
                let mut r = vec![
                    "addr add 172.16.1.1/24 dev eth0".to_string(),
                    "addr add 10.0.0.254/24 dev eth1".into(),
                    "link set eth0 up".into(),
                    "link set eth1 up".into(),
                ];
                if self.mode == Mode::Tun {
                    r.push("addr add 10.0.1.254/24 dev eth2".into());
                    r.push("link set eth2 up".into());
                }
                batch(router, &r)?;
                let mut rkeys = vec![
                    ("net.ipv4.ip_forward", "1"),
                    ("net.ipv4.conf.all.rp_filter", "0"),
                    ("net.ipv4.conf.eth0.rp_filter", "0"),
                    ("net.ipv4.conf.eth1.rp_filter", "0"),
                ];
                if self.mode == Mode::Tun {
                    rkeys.push(("net.ipv4.conf.eth2.rp_filter", "0"));
                }
                sysctl(router, &rkeys)?;
                let mut d = vec![
                    format!("addr add {}/24 dev eth0", p.director),
                    "link set eth0 up".into(),
                    "route add default via 10.0.0.254".into(),
                ];
                if let Some(d2) = &self.director2 {
                    // A pair: the VIP floats (VRRP adds it on the Master).
                    batch(
                        d2,
                        &[
                            format!("addr add {DIRECTOR2}/24 dev eth0"),
                            "link set eth0 up".into(),
                            "route add default via 10.0.0.254".into(),
                        ],
                    )?;
                } else {
                    d.push(format!("addr add {vip}/32 dev eth0"));
                }
                batch(&self.director, &d)?;
                let gateway = if self.mode == Mode::Dr {
                    "10.0.0.254"
                } else {
                    "10.0.1.254"
                };
                for (i, ns) in self.real_servers.iter().enumerate() {
                    // The VIP must be local (so the server accepts packets for it) but
                    // never answered for on the segment.
                    let vip_dev = if self.mode == Mode::Dr { "lo" } else { "tunl0" };
                    batch(
                        ns,
                        &[
                            format!("addr add {}/24 dev eth0", p.real_servers[i]),
                            "link set eth0 up".into(),
                            format!("route add default via {gateway}"),
                            format!("addr add {vip}/32 dev {vip_dev}"),
                            format!("link set {vip_dev} up"),
                        ],
                    )?;
                    let mut keys = vec![
                        ("net.ipv4.conf.all.arp_ignore", "1"),
                        ("net.ipv4.conf.all.arp_announce", "2"),
                        ("net.ipv4.conf.eth0.arp_ignore", "1"),
                        ("net.ipv4.conf.eth0.arp_announce", "2"),
                    ];
                    if self.mode == Mode::Tun {
                        keys.extend([
                            ("net.ipv4.conf.all.rp_filter", "0"),
                            ("net.ipv4.conf.eth0.rp_filter", "0"),
                            ("net.ipv4.conf.tunl0.rp_filter", "0"),
                        ]);
                    }
                    sysctl(ns, &keys)?;
                }
            }
        }
        Ok(())
    }

    fn switch_index(&self, seg: Segment) -> usize {
        match (self.mode, seg) {
            (_, Segment::Client) | (Mode::Nat, Segment::Vip) => 0,
            (_, Segment::RealServers) | (Mode::Dr, Segment::Vip) => 1,
            (Mode::Tun, Segment::Vip) => 2,
        }
    }

    /// The forwarding method this lab was built for.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The client's namespace.
    pub fn client(&self) -> &TestNs {
        &self.client
    }

    /// The director's namespace (program IPVS here).
    pub fn director(&self) -> &TestNs {
        &self.director
    }

    /// The second director of a [`LbLab::dr_pair`]; `None` in the other layouts.
    pub fn director2(&self) -> Option<&TestNs> {
        self.director2.as_ref()
    }

    /// The second director's address (10.0.0.2) in a [`LbLab::dr_pair`].
    pub fn director2_addr(&self) -> Option<Ipv4Addr> {
        self.director2.as_ref().map(|_| DIRECTOR2)
    }

    /// The router's namespace (DR and TUN; NAT has none: the director routes).
    pub fn router(&self) -> Option<&TestNs> {
        self.router.as_ref()
    }

    /// Real server `i`'s namespace (0-based).
    ///
    /// # Panics
    ///
    /// If `i` is not below [`LbLab::real_server_count`].
    pub fn real_server(&self, i: usize) -> &TestNs {
        &self.real_servers[i]
    }

    /// How many real servers the lab has.
    pub fn real_server_count(&self) -> usize {
        self.real_servers.len()
    }

    /// The virtual IPv4 address (on the director).
    pub fn vip(&self) -> Ipv4Addr {
        self.plan.vip
    }

    /// The virtual IPv6 address (NAT only).
    pub fn vip6(&self) -> Option<Ipv6Addr> {
        self.plan.vip6
    }

    /// The client's address.
    pub fn client_addr(&self) -> Ipv4Addr {
        self.plan.client
    }

    /// The client's IPv6 address (NAT only).
    pub fn client_addr6(&self) -> Option<Ipv6Addr> {
        self.plan.client6
    }

    /// The director's own address on the segment it shares with the real servers (NAT:
    /// their gateway) or with the router (DR, TUN; the source of the tunnelled packets).
    pub fn director_addr(&self) -> Ipv4Addr {
        self.plan.director
    }

    /// Real server `i`'s address (0-based).
    ///
    /// # Panics
    ///
    /// If `i` is not below [`LbLab::real_server_count`].
    pub fn real_server_addr(&self, i: usize) -> Ipv4Addr {
        self.plan.real_servers[i]
    }

    /// Real server `i`'s IPv6 address (NAT only).
    pub fn real_server_addr6(&self, i: usize) -> Option<Ipv6Addr> {
        self.plan.real_servers6.get(i).copied()
    }

    /// The name backend `i` answers with (`rs<i>`).
    pub fn backend_name(&self, i: usize) -> String {
        format!("rs{i}")
    }

    /// Whether backend `i` is running (started and not stopped).
    pub fn backend_running(&self, i: usize) -> bool {
        matches!(self.backends.get(i), Some(Some(_)))
    }

    /// The process id of backend `i`, if it runs.
    pub fn backend_pid(&self, i: usize) -> Option<u32> {
        self.backends.get(i)?.as_ref().map(|b| b.child.id())
    }

    /// Starts backend `i` (if it is not running) and waits until it listens.
    pub fn start_backend(&mut self, i: usize) -> Result<(), LbLabError> {
        let Some(ns) = self.real_servers.get(i) else {
            return Err(LbLabError(format!("no real server {i}")));
        };
        if self.backend_running(i) {
            return Ok(());
        }
        let name = self.backend_name(i);
        let mut args = vec!["--name".to_string(), name.clone(), "--watch-stdin".into()];
        for (flag, port) in [
            ("--http", HTTP_PORT),
            ("--http", HTTP_ALT_PORT),
            ("--tcp", TCP_PORT),
            ("--dns", DNS_PORT),
        ] {
            args.extend([flag.into(), format!("0.0.0.0:{port}")]);
            args.extend([flag.into(), format!("[::]:{port}")]);
        }
        args.extend(["--dns-name".into(), format!("{DNS_NAME}={DNS_ADDR}")]);
        let child = spawn_ready(ns.command(&self.backend_exe.to_string_lossy()), &args)
            .map_err(|e| LbLabError(format!("backend {name} in {}: {e}", ns.name())))?;
        self.backends[i] = Some(Backend { child });
        Ok(())
    }

    /// Stops backend `i` (kills its process); its server stays in the topology, so
    /// requests sent to it are refused.
    pub fn stop_backend(&mut self, i: usize) -> Result<(), LbLabError> {
        let slot = self
            .backends
            .get_mut(i)
            .ok_or_else(|| LbLabError(format!("no real server {i}")))?;
        if let Some(b) = slot.take() {
            b.stop();
        }
        Ok(())
    }

    /// Plugs `ns` into `segment` with a new link named `ifname` (up, no address), for
    /// members the lab does not make itself (a second director, a monitor).
    pub fn attach(&self, segment: Segment, ns: &TestNs, ifname: &str) -> Result<(), LbLabError> {
        let i = self.switch_index(segment);
        let port = self.ports[i].fetch_add(1, Ordering::Relaxed);
        self.switches[i].run_with_input("ip", &["-batch", "-"], &port_lines(port, ns, ifname))?;
        ns.run("ip", &["link", "set", ifname, "up"])?;
        Ok(())
    }

    /// Runs `ipvsadm ARGS` in the director; its stdout.
    pub fn ipvsadm(&self, args: &[&str]) -> Result<String, LbLabError> {
        Ok(self.director.run("ipvsadm", args)?)
    }

    /// Runs `ipvsadm -R` in the director with `rules` (the `ipvsadm -S` format).
    pub fn ipvsadm_restore(&self, rules: &str) -> Result<(), LbLabError> {
        self.director.run_with_input("ipvsadm", &["-R"], rules)?;
        Ok(())
    }

    /// The `ipvsadm -R` rules for a service on VIP:`port` (`proto` is `-t` or `-u`)
    /// with `scheduler`, over every real server with this lab's forwarding method,
    /// weight 1.
    pub fn service_rules(&self, proto: &str, port: u16, scheduler: &str) -> String {
        let vip = self.vip();
        let flag = self.mode.ipvsadm_flag();
        let mut rules = format!("-A {proto} {vip}:{port} -s {scheduler}\n");
        for a in &self.plan.real_servers {
            rules.push_str(&format!(
                "-a {proto} {vip}:{port} -r {a}:{port} {flag} -w 1\n"
            ));
        }
        rules
    }

    /// Programs [`LbLab::service_rules`] into the director.
    pub fn add_service(&self, proto: &str, port: u16, scheduler: &str) -> Result<(), LbLabError> {
        self.ipvsadm_restore(&self.service_rules(proto, port, scheduler))
    }

    /// `n` HTTP `GET /` requests from the client to VIP:80, each on a new connection.
    pub fn client_requests(&self, n: usize) -> Spread {
        self.client_http(SocketAddr::V4(SocketAddrV4::new(self.vip(), HTTP_PORT)), n)
    }

    /// Runs `f` while the client sends HTTP requests to VIP:80 without pause (batches of
    /// [`LbLab::client_requests`] on another thread); returns `f`'s result and the
    /// requests' [`Spread`], whose `failure_times` tell when failed requests started. The
    /// traffic stops when `f` returns (or panics).
    pub fn during_traffic<R>(&self, f: impl FnOnce() -> R) -> (R, Spread) {
        self.during_load(|| self.client_requests(8), f)
    }

    /// Runs `f` while another thread calls `load` (a batch of client requests, e.g.
    /// `|| lab.client_dns(DnsTransport::Tcp, 8)`) without pause; returns `f`'s result and
    /// the batches' merged [`Spread`]. The load stops when `f` returns (or panics), after
    /// the batch in flight.
    pub fn during_load<R>(
        &self,
        load: impl Fn() -> Spread + Sync,
        f: impl FnOnce() -> R,
    ) -> (R, Spread) {
        let running = std::sync::atomic::AtomicBool::new(true);
        struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Relaxed);
            }
        }
        std::thread::scope(|s| {
            let traffic = s.spawn(|| {
                let start = Instant::now();
                let mut total = load();
                while running.load(Ordering::Relaxed) {
                    total.merge(load());
                }
                total.elapsed = start.elapsed();
                total
            });
            let stop = StopOnDrop(&running);
            let r = f();
            drop(stop);
            let spread = traffic.join().unwrap_or_default();
            (r, spread)
        })
    }

    /// `n` HTTP `GET /` requests from the client to `target`, each on a new connection;
    /// the body names the backend.
    pub fn client_http(&self, target: SocketAddr, n: usize) -> Spread {
        self.client_loop(n, move || http_get(target, "/"))
    }

    /// `n` connections from the client to the banner service at `target`; the banner
    /// names the backend (the echo is checked too).
    pub fn client_tcp(&self, target: SocketAddr, n: usize) -> Spread {
        self.client_loop(n, move || tcp_banner(target))
    }

    /// `n` DNS TXT queries for [`DNS_NAME`] from the client to VIP:53; the answer names
    /// the backend.
    pub fn client_dns(&self, transport: DnsTransport, n: usize) -> Spread {
        let target = SocketAddr::V4(SocketAddrV4::new(self.vip(), DNS_PORT));
        self.client_loop(n, move || {
            let m = dns_query(target, transport, DNS_NAME, RecordType::TXT)?;
            if m.response_code() != ResponseCode::NoError {
                return Err(format!("rcode {}", m.response_code()));
            }
            m.answers()
                .iter()
                .find_map(|r| match r.data() {
                    RData::TXT(t) => t
                        .iter()
                        .next()
                        .map(|b| String::from_utf8_lossy(b).into_owned()),
                    _ => None,
                })
                .ok_or_else(|| "no TXT answer".to_string())
        })
    }

    /// One DNS query from the client to `target`: the response.
    pub fn client_dns_query(
        &self,
        target: SocketAddr,
        transport: DnsTransport,
        name: &str,
        rtype: RecordType,
    ) -> Result<Message, LbLabError> {
        let name = name.to_string();
        self.client
            .enter(move || dns_query(target, transport, &name, rtype))?
            .map_err(LbLabError)
    }

    /// Runs `request` `n` times from the client namespace, on a few threads.
    fn client_loop(&self, n: usize, request: impl Fn() -> Result<String, String> + Sync) -> Spread {
        let start = Instant::now();
        let next = AtomicUsize::new(0);
        let spreads = self.client.enter(|| {
            // Threads started here inherit the client's namespace.
            std::thread::scope(|s| {
                let workers: Vec<_> = (0..CLIENT_THREADS.min(n.max(1)))
                    .map(|_| {
                        s.spawn(|| {
                            let mut spread = Spread::default();
                            while next.fetch_add(1, Ordering::Relaxed) < n {
                                let started = Instant::now();
                                spread.record(started, request());
                            }
                            spread
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .map(|w| w.join().unwrap_or_default())
                    .collect::<Vec<_>>()
            })
        });
        let mut total = Spread::default();
        match spreads {
            Ok(spreads) => {
                for s in spreads {
                    total.merge(s);
                }
            }
            Err(e) => {
                total.failures = n;
                total.errors.insert(e.0, n);
            }
        }
        total.elapsed = start.elapsed();
        total
    }
}

impl Drop for LbLab {
    fn drop(&mut self) {
        // Processes first: a namespace only goes away with its last process.
        for b in self.backends.iter_mut().filter_map(Option::take) {
            b.stop();
        }
    }
}

fn plan(mode: Mode, n: usize) -> Plan {
    let host = |i: usize| u8::try_from(11 + i).unwrap_or(u8::MAX);
    match mode {
        Mode::Nat => Plan {
            vip: Ipv4Addr::new(172, 16, 1, 100),
            vip6: Some(Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 0x100)),
            client: Ipv4Addr::new(172, 16, 1, 2),
            client6: Some(Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 2)),
            director: Ipv4Addr::new(10, 0, 0, 1),
            real_servers: (0..n).map(|i| Ipv4Addr::new(10, 0, 0, host(i))).collect(),
            real_servers6: (0..n)
                .map(|i| Ipv6Addr::new(0xfd00, 0x10, 0, 0, 0, 0, 0, u16::from(host(i))))
                .collect(),
        },
        Mode::Dr | Mode::Tun => Plan {
            vip: Ipv4Addr::new(10, 0, 0, 100),
            vip6: None,
            client: Ipv4Addr::new(172, 16, 1, 2),
            client6: None,
            director: Ipv4Addr::new(10, 0, 0, 1),
            real_servers: (0..n)
                .map(|i| {
                    let net = if mode == Mode::Dr { 0 } else { 1 };
                    Ipv4Addr::new(10, 0, net, host(i))
                })
                .collect(),
            real_servers6: Vec::new(),
        },
    }
}

/// The `ip -batch` lines, run in a switch, that make port `port` on its bridge and the
/// other end as `ifname` in `member`.
fn port_lines(port: usize, member: &TestNs, ifname: &str) -> String {
    format!(
        "link add p{port} type veth peer name {ifname} netns {member}\n\
         link set p{port} master br0\n\
         link set p{port} up\n",
        member = member.name()
    )
}

fn batch(ns: &TestNs, lines: &[String]) -> Result<(), LbLabError> {
    let mut text = lines.join("\n");
    text.push('\n');
    ns.run_with_input("ip", &["-batch", "-"], &text)?;
    Ok(())
}

/// Writes sysctls of `ns` from a thread inside it (`/proc/sys/net` is the reading
/// thread's namespace's), without starting a process.
fn sysctl(ns: &TestNs, keys: &[(&str, &str)]) -> Result<(), LbLabError> {
    ns.enter(|| {
        for (k, v) in keys {
            let path = format!("/proc/sys/{}", k.replace('.', "/"));
            std::fs::write(&path, v)
                .map_err(|e| LbLabError(format!("sysctl {k}={v} in {}: {e}", ns.name())))?;
        }
        Ok(())
    })?
}

/// `$LAB_BACKEND`, or `lab-backend` next to the running executable or one directory up
/// (`target/debug/deps/kernel-HASH` -> `target/debug/lab-backend`).
fn backend_exe() -> Result<PathBuf, LbLabError> {
    if let Some(p) = std::env::var_os("LAB_BACKEND") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()
        .map_err(|e| LbLabError(format!("cannot find the running executable: {e}")))?;
    let dir = exe.parent().unwrap_or(std::path::Path::new("."));
    [dir.join("lab-backend"), dir.join("../lab-backend")]
        .into_iter()
        .find(|p| p.exists())
        .ok_or_else(|| {
            LbLabError(format!(
                "lab-backend is not built next to {} (fix: cargo build -p ipvs-integration \
                 --bin lab-backend, or set LAB_BACKEND)",
                exe.display()
            ))
        })
}

/// Spawns `cmd args` with piped stdin (the backend exits when it closes) and waits for
/// its `ready` line.
fn spawn_ready(mut cmd: Command, args: &[String]) -> Result<Child, String> {
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Err("no stdout".into());
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let mut r = BufReader::new(stdout);
        let _ = tx.send(r.read_line(&mut line).map(|_| line));
        // Keep reading, so the backend never blocks on a full pipe.
        let mut sink = Vec::new();
        let _ = r.read_to_end(&mut sink);
    });
    match rx.recv_timeout(BACKEND_READY) {
        Ok(Ok(line)) if line.trim() == "ready" => Ok(child),
        other => {
            let _ = child.kill();
            let status = child.wait();
            Err(format!(
                "not ready within {BACKEND_READY:?}: {other:?} (status {status:?})"
            ))
        }
    }
}

fn connect(target: SocketAddr) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&target, REQUEST_TIMEOUT)
        .map_err(|e| format!("connect {target}: {}", e.kind()))?;
    s.set_read_timeout(Some(REQUEST_TIMEOUT))
        .and_then(|()| s.set_write_timeout(Some(REQUEST_TIMEOUT)))
        .map_err(|e| format!("socket options: {e}"))?;
    Ok(s)
}

/// `GET path` on a new connection: the trimmed body of a 200 answer.
fn http_get(target: SocketAddr, path: &str) -> Result<String, String> {
    let mut s = connect(target)?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("send: {}", e.kind()))?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)
        .map_err(|e| format!("receive: {}", e.kind()))?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("incomplete answer ({} bytes)", resp.len()))?;
    let status = head.lines().next().unwrap_or("");
    if !status.starts_with("HTTP/1.1 200") {
        return Err(format!("status `{status}`"));
    }
    Ok(body.trim().to_string())
}

/// Connects to the banner service: its banner, after checking the echo.
fn tcp_banner(target: SocketAddr) -> Result<String, String> {
    let s = connect(target)?;
    let mut r = BufReader::new(s);
    let mut banner = String::new();
    r.read_line(&mut banner)
        .map_err(|e| format!("banner: {}", e.kind()))?;
    let mut s = r.into_inner();
    s.write_all(b"ping\n")
        .map_err(|e| format!("send: {}", e.kind()))?;
    let mut echo = [0u8; 5];
    s.read_exact(&mut echo)
        .map_err(|e| format!("echo: {}", e.kind()))?;
    if &echo != b"ping\n" {
        return Err(format!("echo {echo:?}"));
    }
    if banner.is_empty() {
        return Err("empty banner".into());
    }
    Ok(banner.trim().to_string())
}

static DNS_ID: AtomicUsize = AtomicUsize::new(1);

/// One DNS query (a new socket each time): the response, checked for its id.
fn dns_query(
    target: SocketAddr,
    transport: DnsTransport,
    name: &str,
    rtype: RecordType,
) -> Result<Message, String> {
    let id = u16::try_from(DNS_ID.fetch_add(1, Ordering::Relaxed) & 0xffff).unwrap_or(1);
    let qname = Name::from_ascii(name).map_err(|e| format!("name {name}: {e}"))?;
    let mut q = Message::new();
    q.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(false)
        .add_query(Query::query(qname, rtype));
    let bytes = q.to_vec().map_err(|e| format!("encode: {e}"))?;
    let answer = match transport {
        DnsTransport::Udp => {
            let bind: SocketAddr = match target {
                SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
                SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
            };
            let u = UdpSocket::bind(bind).map_err(|e| format!("bind: {e}"))?;
            u.set_read_timeout(Some(REQUEST_TIMEOUT))
                .map_err(|e| format!("socket options: {e}"))?;
            // Only answers from the target count (connect filters the others).
            u.connect(target)
                .map_err(|e| format!("connect {target}: {}", e.kind()))?;
            u.send(&bytes).map_err(|e| format!("send: {}", e.kind()))?;
            let mut buf = vec![0u8; 4096];
            let n = u
                .recv(&mut buf)
                .map_err(|e| format!("receive: {}", e.kind()))?;
            buf.truncate(n);
            buf
        }
        DnsTransport::Tcp => {
            let mut s = connect(target)?;
            let len = u16::try_from(bytes.len()).map_err(|_| "query too long".to_string())?;
            let mut out = len.to_be_bytes().to_vec();
            out.extend_from_slice(&bytes);
            s.write_all(&out)
                .map_err(|e| format!("send: {}", e.kind()))?;
            let mut len = [0u8; 2];
            s.read_exact(&mut len)
                .map_err(|e| format!("receive: {}", e.kind()))?;
            let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
            s.read_exact(&mut buf)
                .map_err(|e| format!("receive: {}", e.kind()))?;
            buf
        }
    };
    let m = Message::from_vec(&answer).map_err(|e| format!("decode: {e}"))?;
    if m.id() != id || m.message_type() != MessageType::Response {
        return Err(format!("answer id {} to query {id}", m.id()));
    }
    Ok(m)
}

/// `ip:port` as a socket address (`sock(lab.vip(), 80)`).
pub fn sock(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}
