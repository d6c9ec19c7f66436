//! VRRP failover measured on the wire, keepalived and keepalive-d side by side: two nodes
//! on a bridge (each in its own network namespace), one Master at priority 200 and one
//! Backup at priority 100 of the same virtual router; the Master is killed with SIGKILL
//! and every frame is captured on the bridge's ports with the kernel's receive
//! timestamps, so the measured time is that of the wire: from the old Master's last
//! advert to the new Master's first advert and first gratuitous ARP.
//!
//! The protocol bound is the Backup's master-down interval, 3 x advert interval + skew
//! time, skew = (256 - priority) / 256 x advert interval (RFC 5798; RFC 3768 in seconds):
//! 3.609 s at 1 s and 360.9 ms at 100 ms for priority 100.
//!
//! Used by the `vrrp-failover-bench` binary (the numbers in BENCHMARKS.md) and by
//! keepalive-d's `failover_bench` test (the same runs, fewer of them, with a looser
//! bound). Needs root, keepalived in `PATH` and a keepalive-d binary.

use crate::daemon::Daemon;
use crate::netns::{CmdError, TestNs};
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The virtual router's id.
pub const VRID: u8 = 51;
/// The virtual address (added with prefix /24).
pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
/// The Master's priority.
pub const MASTER_PRIORITY: u8 = 200;
/// The Backup's priority (its skew time decides the bound).
pub const BACKUP_PRIORITY: u8 = 100;

/// A frame seen on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireFrame {
    /// The kernel's receive time (`CLOCK_REALTIME`, since the epoch).
    pub at: Duration,
    /// The interface it came in on.
    pub ifindex: u32,
    /// The whole Ethernet frame.
    pub data: Vec<u8>,
}

impl WireFrame {
    /// The source MAC address.
    pub fn src_mac(&self) -> Option<[u8; 6]> {
        self.data.get(6..12)?.try_into().ok()
    }
}

/// Captures frames with their kernel timestamps, on a thread of its own: every frame that
/// comes in on any interface of a namespace ([`WireCapture::start`]: not the copies the
/// namespace sends out), or every frame in or out of one interface
/// ([`WireCapture::start_on`]).
pub struct WireCapture {
    frames: Arc<Mutex<Vec<WireFrame>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl WireCapture {
    /// Starts capturing the frames coming in on the interfaces of `ns`.
    pub fn start(ns: &TestNs) -> Result<Self, CmdError> {
        Self::capture(ns, None)
    }

    /// Starts capturing the frames in and out of interface `ifname` of `ns`.
    pub fn start_on(ns: &TestNs, ifname: &str) -> Result<Self, CmdError> {
        Self::capture(ns, Some(ifname))
    }

    fn capture(ns: &TestNs, ifname: Option<&str>) -> Result<Self, CmdError> {
        let fd = ns.enter(|| open_capture(ifname))??;
        let outgoing = ifname.is_some();
        let frames = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s) = (frames.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !s.load(Ordering::Relaxed) {
                // Returns at least every 50 ms (SO_RCVTIMEO) to look at the stop flag.
                if let Some(frame) = recv_frame(&fd, &mut buf, outgoing) {
                    f.lock().unwrap_or_else(PoisonError::into_inner).push(frame);
                }
            }
        });
        Ok(Self {
            frames,
            stop,
            thread: Some(thread),
        })
    }

    /// Every frame captured so far, in arrival order.
    pub fn frames(&self) -> Vec<WireFrame> {
        self.frames
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets the frames captured so far.
    pub fn clear(&self) {
        self.frames
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl Drop for WireCapture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A packet socket for every frame of every interface, or of `ifname` only.
fn open_capture(ifname: Option<&str>) -> Result<OwnedFd, CmdError> {
    let fd = crate::nlmon::packet_socket()?;
    let on: libc::c_int = 1;
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: 50_000,
    };
    // SAFETY: setsockopt with pointers to live values and their exact sizes.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) | libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(CmdError(format!(
            "setsockopt on the capture socket: {}",
            std::io::Error::last_os_error()
        )));
    }
    if let Some(name) = ifname {
        let index = nix::net::if_::if_nametoindex(name)
            .map_err(|e| CmdError(format!("if_nametoindex {name}: {e}")))?;
        // SAFETY: sockaddr_ll is plain old data; all zeroes is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = i32::try_from(index).unwrap_or(0);
        // SAFETY: bind with a pointer to a live sockaddr_ll and its exact size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(CmdError(format!(
                "bind {name}: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    Ok(fd)
}

/// One frame with its kernel timestamp; `None` on timeout, for frames without a timestamp
/// and, unless `outgoing`, for the copies of frames sent out.
fn recv_frame(fd: &OwnedFd, buf: &mut [u8], outgoing: bool) -> Option<WireFrame> {
    // SAFETY: all-zero sockaddr_ll, iovec and msghdr are valid values.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut cmsg = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&raw mut sll).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cmsg);
    // SAFETY: every pointer in `msg` points to live buffers of the sizes given.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &raw mut msg, 0) };
    let n = usize::try_from(n).ok()?;
    if sll.sll_pkttype == libc::PACKET_OUTGOING && !outgoing {
        return None;
    }
    let mut at = None;
    // SAFETY: the CMSG_* macros walk the control buffer the kernel filled, within
    // msg_controllen; the timestamp is read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&raw const msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                at = Some(Duration::new(
                    u64::try_from(ts.tv_sec).unwrap_or(0),
                    u32::try_from(ts.tv_nsec).unwrap_or(0),
                ));
            }
            c = libc::CMSG_NXTHDR(&raw const msg, c);
        }
    }
    Some(WireFrame {
        at: at?,
        ifindex: u32::try_from(sll.sll_ifindex).unwrap_or(0),
        data: buf.get(..n)?.to_vec(),
    })
}

/// A VRRP advert (IPv4) in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advert {
    /// The IP source.
    pub src: Ipv4Addr,
    /// VRRP version.
    pub version: u8,
    /// Virtual router id.
    pub vrid: u8,
    /// Priority (0: the Master resigns).
    pub priority: u8,
}

/// The VRRP advert in an Ethernet frame, if it holds one (IPv4, protocol 112).
pub fn advert(frame: &[u8]) -> Option<Advert> {
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = frame.get(14..)?;
    if *ip.get(9)? != 112 {
        return None;
    }
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
    let vrrp = ip.get(ihl..)?;
    Some(Advert {
        src: Ipv4Addr::from(src),
        version: vrrp.first()? >> 4,
        vrid: *vrrp.get(1)?,
        priority: *vrrp.get(2)?,
    })
}

/// A gratuitous ARP: a request or reply whose sender and target IP are the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GratuitousArp {
    /// The announced address.
    pub ip: Ipv4Addr,
    /// The link-layer address it is announced at (the ARP sender hardware address).
    pub mac: [u8; 6],
}

/// The gratuitous ARP in an Ethernet frame, if it holds one.
pub fn gratuitous_arp(frame: &[u8]) -> Option<GratuitousArp> {
    if frame.get(12..14)? != [0x08, 0x06] {
        return None;
    }
    let arp = frame.get(14..)?;
    let spa = arp.get(14..18)?;
    if spa != arp.get(24..28)? {
        return None;
    }
    let ip: [u8; 4] = spa.try_into().ok()?;
    Some(GratuitousArp {
        ip: Ipv4Addr::from(ip),
        mac: arp.get(8..14)?.try_into().ok()?,
    })
}

/// Layer 2 segment: a bridge namespace and nodes, each with `eth0` plugged into the
/// bridge (multicast snooping off, so every port sees the VRRP multicast).
pub struct Segment {
    /// The bridge's namespace (bridge `br0`, ports `p-NAME`).
    pub br: TestNs,
    /// The nodes: namespace, its port's ifindex in `br`, its address.
    pub nodes: Vec<SegmentNode>,
}

/// One node of a [`Segment`].
pub struct SegmentNode {
    /// Its namespace.
    pub ns: TestNs,
    /// Its bridge port's interface index (in the bridge's namespace).
    pub port: u32,
    /// The address of its `eth0` (/24).
    pub addr: Ipv4Addr,
    /// The MAC address of its `eth0`.
    pub mac: [u8; 6],
}

impl Segment {
    /// A bridge and `nodes` nodes: node `i` has 192.0.2.(2 + i)/24 and MAC
    /// 02:00:00:00:00:(2 + i) on `eth0`. Namespace names contain `tag`.
    pub fn new(tag: &str, nodes: u8) -> Result<Self, CmdError> {
        let br = TestNs::new(&format!("{tag}-br"))?;
        br.run("ip", &["link", "add", "br0", "type", "bridge"])?;
        br.run(
            "ip",
            &[
                "link",
                "set",
                "br0",
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ],
        )?;
        br.run("ip", &["link", "set", "br0", "up"])?;
        let mut list = Vec::new();
        for i in 0..nodes {
            let ns = TestNs::new(&format!("{tag}-{i}"))?;
            let host = i.saturating_add(2);
            let mac = [2, 0, 0, 0, 0, host];
            let mac_text = mac
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":");
            let port = format!("p-{i}");
            ns.run("sysctl", &["-qw", "net.ipv6.conf.all.accept_dad=0"])?;
            ns.run("sysctl", &["-qw", "net.ipv6.conf.default.accept_dad=0"])?;
            ns.run(
                "ip",
                &[
                    "link",
                    "add",
                    "eth0",
                    "address",
                    &mac_text,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &port,
                    "netns",
                    br.name(),
                ],
            )?;
            br.run("ip", &["link", "set", &port, "master", "br0", "up"])?;
            let addr = Ipv4Addr::new(192, 0, 2, host);
            ns.run("ip", &["addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
            ns.run("ip", &["link", "set", "eth0", "up"])?;
            let index = br.enter(|| nix::net::if_::if_nametoindex(port.as_str()))?;
            let port = index.map_err(|e| CmdError(format!("if_nametoindex {port}: {e}")))?;
            list.push(SegmentNode {
                ns,
                port,
                addr,
                mac,
            });
        }
        Ok(Self { br, nodes: list })
    }
}

/// Which VRRP implementation runs on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    /// keepalived (Debian's package), `keepalived --vrrp` in the foreground.
    Keepalived,
    /// keepalive-d, `keepalive-d run`.
    KeepaliveD,
}

impl Implementation {
    /// Its name.
    pub const fn name(self) -> &'static str {
        match self {
            Implementation::Keepalived => "keepalived",
            Implementation::KeepaliveD => "keepalive-d",
        }
    }
}

/// Advert interval and protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// 2 or 3.
    pub version: u8,
    /// The advert interval.
    pub interval: Duration,
}

impl Timing {
    /// VRRPv2, 1 s adverts.
    pub const V2_1S: Timing = Timing {
        version: 2,
        interval: Duration::from_secs(1),
    };
    /// VRRPv3, 100 ms adverts.
    pub const V3_100MS: Timing = Timing {
        version: 3,
        interval: Duration::from_millis(100),
    };

    /// The master-down interval of a Backup at `priority`: 3 x interval + skew.
    pub fn master_down(self, priority: u8) -> Duration {
        let skew = self.interval * (256 - u32::from(priority)) / 256;
        self.interval * 3 + skew
    }

    /// `v3, 100 ms`.
    pub fn label(self) -> String {
        let ms = self.interval.as_millis();
        if ms % 1000 == 0 {
            format!("v{}, {} s", self.version, ms / 1000)
        } else {
            format!("v{}, {ms} ms", self.version)
        }
    }
}

/// Who is killed and who takes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    /// The Master, killed with SIGKILL.
    pub killed: Implementation,
    /// The Backup, which takes over.
    pub takes_over: Implementation,
}

impl Scenario {
    /// The four combinations, keepalived replacing keepalived first.
    pub const ALL: [Scenario; 4] = [
        Scenario {
            killed: Implementation::Keepalived,
            takes_over: Implementation::Keepalived,
        },
        Scenario {
            killed: Implementation::Keepalived,
            takes_over: Implementation::KeepaliveD,
        },
        Scenario {
            killed: Implementation::KeepaliveD,
            takes_over: Implementation::KeepaliveD,
        },
        Scenario {
            killed: Implementation::KeepaliveD,
            takes_over: Implementation::Keepalived,
        },
    ];

    /// `keepalived -> keepalive-d`.
    pub fn label(self) -> String {
        format!("{} -> {}", self.killed.name(), self.takes_over.name())
    }
}

/// One failover, from the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// From the old Master's last advert to the new Master's first advert.
    pub advert: Duration,
    /// From the old Master's last advert to the new Master's first gratuitous ARP for
    /// the virtual address.
    pub garp: Duration,
}

/// A keepalived process in a namespace (the parent and its VRRP child), `--vrrp` only,
/// in the foreground; stopped with SIGTERM when dropped.
pub struct Keepalived {
    child: Child,
    dir: PathBuf,
}

impl Keepalived {
    /// keepalived with instance `VI` (vrid [`VRID`], [`VIP`]/24 on `eth0`) at `priority`.
    fn start_vrrp(ns: &TestNs, timing: Timing, priority: u8) -> Result<Self, CmdError> {
        let interval = timing.interval.as_secs_f64();
        Self::start(
            ns,
            &format!(
                "global_defs {{\n  router_id {name}\n  vrrp_version {version}\n}}\n\
                 vrrp_instance VI {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {VRID}\n  \
                 priority {priority}\n  advert_int {interval}\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n",
                name = ns.name(),
                version = timing.version,
            ),
        )
    }

    /// Starts keepalived in `ns` with the configuration `conf_text` (its log in a file).
    pub fn start(ns: &TestNs, conf_text: &str) -> Result<Self, CmdError> {
        let dir = std::env::temp_dir().join(format!("vrrp-bench-{}", ns.name()));
        let io = |e: std::io::Error| CmdError(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(&dir).map_err(io)?;
        let conf = dir.join("keepalived.conf");
        std::fs::write(&conf, conf_text).map_err(io)?;
        let log = File::create(dir.join("log")).map_err(io)?;
        let log2 = log.try_clone().map_err(io)?;
        let pid = |n: &str| dir.join(n).display().to_string();
        let child = ns
            .command("keepalived")
            .args(["--dont-fork", "--log-console", "--no-syslog", "--vrrp"])
            .arg(format!("--use-file={}", conf.display()))
            .arg(format!("--pid={}", pid("k.pid")))
            .arg(format!("--vrrp_pid={}", pid("v.pid")))
            .arg(format!("--checkers_pid={}", pid("c.pid")))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| CmdError(format!("keepalived: {e} (apt-get install keepalived)")))?;
        Ok(Self { child, dir })
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// SIGKILL of the VRRP child (the process that sends the adverts): the parent is
    /// stopped first (a live parent would restart the child, and killing only the parent
    /// makes the child stop gracefully), then killed too.
    pub fn sigkill(&mut self) -> Result<(), CmdError> {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let parent = Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(0));
        let vrrp: i32 = std::fs::read_to_string(self.dir.join("v.pid"))
            .map_err(|e| CmdError(format!("keepalived's VRRP pid file: {e}")))?
            .trim()
            .parse()
            .map_err(|e| CmdError(format!("keepalived's VRRP pid file: {e}")))?;
        kill(parent, Signal::SIGSTOP).map_err(|e| CmdError(format!("SIGSTOP: {e}")))?;
        kill(Pid::from_raw(vrrp), Signal::SIGKILL)
            .map_err(|e| CmdError(format!("SIGKILL {vrrp}: {e}")))?;
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok(())
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SIGTERM first: the parent stops its VRRP child.
            let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(0));
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let t = Instant::now();
            while self.child.try_wait().ok().flatten().is_none()
                && t.elapsed() < Duration::from_secs(3)
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A VRRP node of either implementation.
enum Node {
    Keepalived(Keepalived),
    KeepaliveD(Option<Daemon>, PathBuf),
}

impl Node {
    fn start(
        implementation: Implementation,
        ns: &TestNs,
        timing: Timing,
        priority: u8,
        keepalive_d: &Path,
    ) -> Result<Self, CmdError> {
        match implementation {
            Implementation::Keepalived => Ok(Node::Keepalived(Keepalived::start_vrrp(
                ns, timing, priority,
            )?)),
            Implementation::KeepaliveD => {
                let interval = timing.interval.as_millis();
                let config = format!(
                    "vrrp_instances:\n  - name: VI\n    interface: eth0\n    vrid: {VRID}\n    \
                     priority: {priority}\n    version: {}\n    advert_interval: {interval}ms\n    \
                     virtual_ips: [{VIP}/24]\n",
                    timing.version
                );
                let d = Daemon::start_exe(keepalive_d, ns, &config, "info")?;
                Ok(Node::KeepaliveD(Some(d), Daemon::state_dir(ns)))
            }
        }
    }

    fn log(&self) -> String {
        match self {
            Node::Keepalived(k) => k.log(),
            Node::KeepaliveD(d, _) => d.as_ref().map(Daemon::log).unwrap_or_default(),
        }
    }

    /// Whether it has logged entering the Backup state.
    fn is_backup(&self) -> bool {
        let log = self.log();
        match self {
            Node::Keepalived(_) => log.contains("Entering BACKUP STATE"),
            Node::KeepaliveD(..) => log
                .lines()
                .any(|l| l.contains("VRRP state change") && l.contains("backup")),
        }
    }

    fn sigkill(&mut self) -> Result<(), CmdError> {
        match self {
            Node::Keepalived(k) => k.sigkill(),
            Node::KeepaliveD(d, _) => {
                if let Some(d) = d.take() {
                    d.kill();
                }
                Ok(())
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Node::KeepaliveD(d, state) = self {
            if let Some(d) = d.take() {
                let _ = d.stop(Duration::from_secs(5));
            }
            let _ = std::fs::remove_dir_all(state);
        }
    }
}

/// Polls `cond` every 5 ms for at most `within`; whether it held.
pub fn wait_for(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > within {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The adverts of our virtual router that came in on `port`, with a priority other
/// than 0, and their times.
fn adverts_from(frames: &[WireFrame], port: u32) -> Vec<Duration> {
    frames
        .iter()
        .filter(|f| f.ifindex == port)
        .filter(|f| advert(&f.data).is_some_and(|a| a.vrid == VRID && a.priority > 0))
        .map(|f| f.at)
        .collect()
}

/// The gratuitous ARPs for [`VIP`] that came in on `port`, and their times.
fn garps_from(frames: &[WireFrame], port: u32) -> Vec<Duration> {
    frames
        .iter()
        .filter(|f| f.ifindex == port)
        .filter(|f| gratuitous_arp(&f.data).is_some_and(|g| g.ip == VIP))
        .map(|f| f.at)
        .collect()
}

/// Runs one failover in fresh namespaces (names contain `tag`): the Master
/// (`scenario.killed`, priority 200) starts alone and becomes Master, the Backup
/// (`scenario.takes_over`, priority 100) joins and settles as Backup, the Master's VRRP
/// process is killed with SIGKILL; measured on the wire until the Backup has sent its
/// first advert and its first gratuitous ARP. `keepalive_d` is the binary to run.
pub fn failover(
    scenario: Scenario,
    timing: Timing,
    keepalive_d: &Path,
    tag: &str,
) -> Result<Sample, CmdError> {
    let seg = Segment::new(tag, 2)?;
    let (old, new) = match seg.nodes.as_slice() {
        [a, b] => (a, b),
        _ => return Err(CmdError("two nodes expected".into())),
    };
    let cap = WireCapture::start(&seg.br)?;
    let slack = Duration::from_secs(3);
    let mut master = Node::start(
        scenario.killed,
        &old.ns,
        timing,
        MASTER_PRIORITY,
        keepalive_d,
    )?;
    if !wait_for(timing.master_down(MASTER_PRIORITY) + slack, || {
        !adverts_from(&cap.frames(), old.port).is_empty()
    }) {
        return Err(CmdError(format!(
            "{} never became Master:\n{}",
            scenario.killed.name(),
            master.log()
        )));
    }
    let backup = Node::start(
        scenario.takes_over,
        &new.ns,
        timing,
        BACKUP_PRIORITY,
        keepalive_d,
    )?;
    if !wait_for(slack, || backup.is_backup()) {
        return Err(CmdError(format!(
            "{} did not start as Backup:\n{}",
            scenario.takes_over.name(),
            backup.log()
        )));
    }
    // Two more adverts of the Master after the Backup listens: its timer runs from them.
    let settled = cap.frames().len();
    if !wait_for(timing.interval * 3 + slack, || {
        adverts_from(cap.frames().get(settled..).unwrap_or_default(), old.port).len() >= 2
    }) {
        return Err(CmdError("the Master stopped advertising".into()));
    }
    if !adverts_from(&cap.frames(), new.port).is_empty() {
        return Err(CmdError(format!(
            "{} advertised as Backup:\n{}",
            scenario.takes_over.name(),
            backup.log()
        )));
    }
    master.sigkill()?;
    let took_over = wait_for(timing.master_down(BACKUP_PRIORITY) + slack, || {
        let frames = cap.frames();
        !adverts_from(&frames, new.port).is_empty() && !garps_from(&frames, new.port).is_empty()
    });
    // Let the capture thread catch up.
    std::thread::sleep(Duration::from_millis(100));
    let frames = cap.frames();
    drop(cap);
    if !took_over {
        return Err(CmdError(format!(
            "{} did not take over (advert and gratuitous ARP):\n{}",
            scenario.takes_over.name(),
            backup.log()
        )));
    }
    let first_new = adverts_from(&frames, new.port)
        .first()
        .copied()
        .unwrap_or_default();
    let last_old = adverts_from(&frames, old.port)
        .into_iter()
        .rfind(|t| *t < first_new)
        .ok_or_else(|| CmdError("no advert from the old Master".into()))?;
    let first_garp = garps_from(&frames, new.port)
        .into_iter()
        .find(|t| *t > last_old)
        .unwrap_or_default();
    drop(backup);
    drop(master);
    Ok(Sample {
        advert: first_new.saturating_sub(last_old),
        garp: first_garp.saturating_sub(last_old),
    })
}

/// Minimum, median and maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spread {
    /// The smallest.
    pub min: Duration,
    /// The median (the mean of the two middle values for an even count).
    pub median: Duration,
    /// The largest.
    pub max: Duration,
}

impl Spread {
    /// The spread of `values`; `None` when empty.
    pub fn of(values: &[Duration]) -> Option<Self> {
        let mut v = values.to_vec();
        v.sort();
        let n = v.len();
        if n == 0 {
            return None;
        }
        let median = if n % 2 == 1 {
            *v.get(n / 2)?
        } else {
            (*v.get(n / 2 - 1)? + *v.get(n / 2)?) / 2
        };
        Some(Self {
            min: *v.first()?,
            median,
            max: *v.last()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        assert!((ms(Timing::V2_1S.master_down(100)) - 3609.375).abs() < 0.01);
        assert!((ms(Timing::V3_100MS.master_down(100)) - 360.9375).abs() < 0.01);
        assert_eq!(Timing::V2_1S.label(), "v2, 1 s");
        assert_eq!(Timing::V3_100MS.label(), "v3, 100 ms");
    }

    #[test]
    fn spread() {
        let d = Duration::from_millis;
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(
            Spread::of(&[d(3), d(1), d(2)]),
            Some(Spread {
                min: d(1),
                median: d(2),
                max: d(3)
            })
        );
        assert_eq!(
            Spread::of(&[d(4), d(1), d(2), d(3)]).map(|s| s.median),
            Some(d(2) + d(1) / 2)
        );
    }

    #[test]
    fn decodes_frames() {
        // keepalived's VRRPv3 advert (vrid 51, priority 100) behind an Ethernet header.
        let mut f = vec![1, 0, 0x5e, 0, 0, 0x12, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend_from_slice(&[
            0x45, 0xc0, 0, 32, 0, 1, 0, 0, 255, 112, 0, 0, 192, 0, 2, 2, 224, 0, 0, 18,
        ]);
        f.extend_from_slice(&[0x31, 51, 100, 1, 0, 10, 0, 0, 192, 0, 2, 100]);
        assert_eq!(
            advert(&f),
            Some(Advert {
                src: Ipv4Addr::new(192, 0, 2, 2),
                version: 3,
                vrid: 51,
                priority: 100
            })
        );
        assert_eq!(gratuitous_arp(&f), None);
        let mut g = vec![0xff; 6];
        g.extend_from_slice(&[2, 0, 0, 0, 0, 3, 0x08, 0x06]);
        g.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1, 0, 0, 0x5e, 0, 1, 51, 192, 0, 2, 100]);
        g.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 192, 0, 2, 100]);
        assert_eq!(
            gratuitous_arp(&g),
            Some(GratuitousArp {
                ip: VIP,
                mac: [0, 0, 0x5e, 0, 1, 51]
            })
        );
        assert_eq!(advert(&g), None);
    }
}
