//! VRRP interop with the real keepalived (2.2.7) on the wire, in network
//! namespaces: a bridge namespace with veths to two nodes, keepalived in
//! one, our `vrrp_io::run_instances` in the other. Who is master is read
//! from the virtual address (`ip addr`) and from adverts captured on the
//! keepalived node's bridge port, timed by the kernel's receive timestamps.
//!
//! Needs root and `keepalived` in `PATH`. The tests run one at a time (a
//! lock), since they measure failover times.
//!
//! "Killing" our daemon drops its runtime without the shutdown sequence:
//! like SIGKILL, no priority 0 advert, the virtual address stays behind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipvs_integration::netns::TestNs;
use ipvs_integration::vrrp_bench::WireCapture;
use keepalive_d::vrrp_io::{
    InstanceSpec, InstanceStatus, NotifySpec, StatusMap, SyncGroupSpec, TrackScript,
    VirtualAddress, run, run_instances, run_with_status,
};
use tokio::sync::{oneshot, watch};
use vrrp_proto::{Auth, InstanceConfig, State, Version};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const KA_V4: &str = "192.0.2.2";
const US_V4: &str = "192.0.2.3";
const VIP4: &str = "192.0.2.100";
const VIP6: &str = "2001:db8::100";
const KA_LL: &str = "fe80::ff:fe00:2";
const US_LL: &str = "fe80::ff:fe00:3";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One advert seen on the wire.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    src: IpAddr,
    priority: u8,
    vrid: u8,
    /// TOS / traffic class.
    tos: u8,
    /// TTL / hop limit.
    ttl: u8,
    version: u8,
}

fn parse_advert(frame: &[u8], at: Instant) -> Option<Seen> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let p = frame.get(14..)?;
    let (src, tos, ttl, vrrp) = match ethertype {
        0x0800 if p.get(9) == Some(&112) => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            let src: [u8; 4] = p.get(12..16)?.try_into().ok()?;
            (IpAddr::from(src), p[1], p[8], p.get(ihl..)?)
        }
        0x86dd if p.get(6) == Some(&112) => {
            let src: [u8; 16] = p.get(8..24)?.try_into().ok()?;
            let tc = ((p[0] & 0x0f) << 4) | (p[1] >> 4);
            (IpAddr::from(src), tc, p[7], p.get(40..)?)
        }
        _ => return None,
    };
    Some(Seen {
        at,
        src,
        priority: *vrrp.get(2)?,
        vrid: *vrrp.get(1)?,
        tos,
        ttl,
        version: vrrp.first()? >> 4,
    })
}

/// A gratuitous ARP or unsolicited NA seen on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Announce {
    at: Instant,
    /// The announced address.
    ip: IpAddr,
    /// The link-layer address it is announced at.
    mac: [u8; 6],
}

fn parse_announce(frame: &[u8], at: Instant) -> Option<Announce> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let p = frame.get(14..)?;
    match ethertype {
        // A request with sender IP = target IP.
        0x0806 if p.get(6..8)? == [0, 1] && p.get(14..18)? == p.get(24..28)? => {
            let ip: [u8; 4] = p.get(14..18)?.try_into().ok()?;
            Some(Announce {
                at,
                ip: IpAddr::from(ip),
                mac: p.get(8..14)?.try_into().ok()?,
            })
        }
        // ICMPv6 neighbour advertisement with a target link-layer option.
        0x86dd if p.get(6) == Some(&58) && p.get(40) == Some(&136) => {
            let target: [u8; 16] = p.get(48..64)?.try_into().ok()?;
            (p.get(64..66)? == [2, 1]).then_some(())?;
            Some(Announce {
                at,
                ip: IpAddr::from(target),
                mac: p.get(66..72)?.try_into().ok()?,
            })
        }
        _ => None,
    }
}

/// Every frame in and out of one interface, with the kernel's timestamps
/// (`ipvs_integration::vrrp_bench::WireCapture`), as instants of this process's clock.
struct Sniffer {
    cap: WireCapture,
    /// The same moment on both clocks: the kernel's timestamps are wall clock.
    base: (Instant, SystemTime),
}

impl Sniffer {
    fn start(ns: &TestNs, ifname: &str) -> Self {
        let cap = WireCapture::start_on(ns, ifname).unwrap();
        Sniffer {
            cap,
            base: (Instant::now(), SystemTime::now()),
        }
    }

    /// The frames, each with the instant it was on the wire.
    fn frames(&self) -> Vec<(Instant, Vec<u8>)> {
        let (instant, wall) = self.base;
        let wall = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
        self.cap
            .frames()
            .into_iter()
            .map(|f| {
                let at = if f.at >= wall {
                    instant + (f.at - wall)
                } else {
                    instant.checked_sub(wall - f.at).unwrap_or(instant)
                };
                (at, f.data)
            })
            .collect()
    }

    fn announces(&self) -> Vec<Announce> {
        self.frames()
            .iter()
            .filter_map(|(at, data)| parse_announce(data, *at))
            .collect()
    }

    fn adverts(&self) -> Vec<Seen> {
        self.frames()
            .iter()
            .filter_map(|(at, data)| parse_advert(data, *at))
            .collect()
    }

    /// The adverts, once the capture thread has caught up.
    fn settled(&self) -> Vec<Seen> {
        std::thread::sleep(Duration::from_millis(150));
        self.adverts()
    }

    fn since(&self, t: Instant) -> Vec<Seen> {
        self.adverts().into_iter().filter(|a| a.at >= t).collect()
    }
}

/// keepalived in a namespace.
struct Keepalived {
    child: Child,
    dir: PathBuf,
}

impl Keepalived {
    fn start(ns: &TestNs, conf: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("vrrp-interop-{}", ns.name()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf_path = dir.join("keepalived.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let log = File::create(dir.join("log")).unwrap();
        let pid = |n: &str| dir.join(n).display().to_string();
        let child = ns
            .command("keepalived")
            .args(["--dont-fork", "--log-console", "--no-syslog", "--vrrp"])
            .arg(format!("--use-file={}", conf_path.display()))
            .arg(format!("--pid={}", pid("k.pid")))
            .arg(format!("--vrrp_pid={}", pid("v.pid")))
            .arg(format!("--checkers_pid={}", pid("c.pid")))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("keepalived must be installed");
        Keepalived { child, dir }
    }

    /// SIGKILL of keepalived's VRRP process (the child that does the
    /// work: killing only the parent makes the child stop gracefully, and
    /// a live parent restarts a killed child). The parent is stopped
    /// first, then both are killed.
    fn sigkill(&mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let parent = Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        let vrrp: i32 = std::fs::read_to_string(self.dir.join("v.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        kill(parent, Signal::SIGSTOP).unwrap();
        kill(Pid::from_raw(vrrp), Signal::SIGKILL).unwrap();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn sigterm(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let t = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "keepalived did not stop"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("keepalived log:\n{}", self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Our daemon, on a thread in a namespace.
struct Ours {
    stop: Option<oneshot::Sender<()>>,
    crash: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), String>>>,
    status: watch::Receiver<StatusMap>,
}

/// Which entry point runs the instances.
enum Entry {
    Instances,
    Status,
    Groups(Vec<SyncGroupSpec>),
}

impl Ours {
    /// Through `run_with_status`: [`Ours::status`] follows the instances.
    fn start(ns: &TestNs, specs: Vec<InstanceSpec>) -> Self {
        Self::start_with(ns, specs, Entry::Status)
    }

    /// Through `run` with sync groups.
    fn start_groups(ns: &TestNs, specs: Vec<InstanceSpec>, groups: Vec<SyncGroupSpec>) -> Self {
        Self::start_with(ns, specs, Entry::Groups(groups))
    }

    fn start_with(ns: &TestNs, specs: Vec<InstanceSpec>, entry: Entry) -> Self {
        // RUST_LOG=keepalive_d=debug shows what the daemon does.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let nsfile = File::open(format!("/run/netns/{}", ns.name())).unwrap();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (crash_tx, crash_rx) = oneshot::channel::<()>();
        let (status_tx, status_rx) = watch::channel(StatusMap::new());
        let thread = std::thread::spawn(move || {
            nix::sched::setns(&nsfile, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| e.to_string())?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let stopped = async move {
                    let _ = stop_rx.await;
                };
                let run = async move {
                    match entry {
                        Entry::Instances => run_instances(specs, stopped).await,
                        Entry::Status => {
                            run_with_status(specs, Vec::new(), status_tx, stopped).await
                        }
                        Entry::Groups(groups) => run(specs, groups, stopped).await,
                    }
                };
                tokio::select! {
                    r = run => r.map_err(|e| e.to_string()),
                    // Dropping everything without the shutdown sequence.
                    _ = crash_rx => Ok(()),
                }
            })
        });
        Ours {
            stop: Some(stop_tx),
            crash: Some(crash_tx),
            thread: Some(thread),
            status: status_rx,
        }
    }

    /// The published status of instance `name`.
    fn status(&self, name: &str) -> Option<InstanceStatus> {
        self.status.borrow().get(name).copied()
    }

    fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            t.join().unwrap().unwrap();
        }
    }

    /// Graceful stop (SIGTERM): priority 0 advert, addresses removed.
    fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.join();
    }

    /// Like SIGKILL: nothing more is sent, addresses stay.
    fn kill(&mut self) {
        if let Some(s) = self.crash.take() {
            let _ = s.send(());
        }
        self.join();
    }
}

impl Drop for Ours {
    fn drop(&mut self) {
        if let Some(s) = self.crash.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The namespaces: `br` with bridge `br0`, `ka` and `us` with `eth0`
/// plugged into it as `p-ka` and `p-us`.
struct Lab {
    ka: TestNs,
    us: TestNs,
    br: TestNs,
}

impl Lab {
    fn new(tag: &str) -> Self {
        let br = TestNs::new(&format!("{tag}-br")).unwrap();
        let ka = TestNs::new(&format!("{tag}-ka")).unwrap();
        let us = TestNs::new(&format!("{tag}-us")).unwrap();
        for ns in [&br, &ka, &us] {
            ns.run("sysctl", &["-qw", "net.ipv6.conf.all.accept_dad=0"])
                .unwrap();
            ns.run("sysctl", &["-qw", "net.ipv6.conf.default.accept_dad=0"])
                .unwrap();
        }
        br.run("ip", &["link", "add", "br0", "type", "bridge"])
            .unwrap();
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
        )
        .unwrap();
        br.run("ip", &["link", "set", "br0", "up"]).unwrap();
        for (ns, port, mac, v4) in [
            (&ka, "p-ka", "02:00:00:00:00:02", KA_V4),
            (&us, "p-us", "02:00:00:00:00:03", US_V4),
        ] {
            ns.run(
                "ip",
                &[
                    "link",
                    "add",
                    "eth0",
                    "address",
                    mac,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    port,
                    "netns",
                    br.name(),
                ],
            )
            .unwrap();
            br.run("ip", &["link", "set", port, "master", "br0", "up"])
                .unwrap();
            ns.run("ip", &["addr", "add", &format!("{v4}/24"), "dev", "eth0"])
                .unwrap();
            ns.run("ip", &["link", "set", "eth0", "up"]).unwrap();
        }
        let lab = Lab { ka, us, br };
        for (ns, ll) in [(&lab.ka, KA_LL), (&lab.us, US_LL)] {
            wait_for(Duration::from_secs(3), || has_addr(ns, ll))
                .unwrap_or_else(|| panic!("no link-local {ll}"));
        }
        lab
    }

    fn sniff(&self) -> Sniffer {
        Sniffer::start(&self.br, "p-ka")
    }
}

fn addrs(ns: &TestNs) -> String {
    ns.run("ip", &["-o", "addr", "show", "dev", "eth0"])
        .unwrap_or_default()
}

fn has_addr(ns: &TestNs, addr: &str) -> bool {
    addrs(ns).contains(&format!(" {addr}/"))
}

/// Polls `cond` every 5 ms until it holds; how long that took.
fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if cond() {
            return Some(start.elapsed());
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

struct KaConf<'a> {
    version: u8,
    priority: u8,
    advert: &'a str,
    vip: &'a str,
    extra: &'a str,
}

impl KaConf<'_> {
    fn v3(priority: u8) -> Self {
        KaConf {
            version: 3,
            priority,
            advert: "0.1",
            vip: "192.0.2.100/24",
            extra: "",
        }
    }

    fn render(&self) -> String {
        format!(
            "global_defs {{\n  router_id ka\n  vrrp_version {}\n}}\n\
             vrrp_instance VI {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  \
             priority {}\n  advert_int {}\n  {}\n  virtual_ipaddress {{\n    {}\n  }}\n}}\n",
            self.version, self.priority, self.advert, self.extra, self.vip
        )
    }
}

/// Our VRRPv3 IPv4 instance, 100 ms adverts, primary address from the
/// interface.
fn our_v3(priority: u8) -> InstanceSpec {
    let mut cfg = InstanceConfig::new(51, Version::V3, ip("0.0.0.0"), vec![]);
    cfg.priority = priority;
    cfg.advert_interval = Duration::from_millis(100);
    InstanceSpec::new("VI", "eth0", cfg, vec![VirtualAddress::new(ip(VIP4), 24)])
}

/// Adverts from `src` with a priority other than 0.
fn from(adverts: &[Seen], src: &str) -> Vec<Seen> {
    adverts
        .iter()
        .filter(|a| a.src == ip(src) && a.priority != 0)
        .cloned()
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Ours at the higher priority: master; keepalived stays backup; the VIP on
/// our node only; our adverts carry keepalived's TOS and TTL.
#[test]
fn v3_ours_master_keepalived_backup_then_sigkill_failover() {
    let _g = serial();
    let lab = Lab::new("v3m");
    let sniff = lab.sniff();
    let mut ours = Ours::start(&lab.us, vec![our_v3(150)]);
    // Backup first: master-down = 3 * 100 ms + (256 - 150) / 256 * 100 ms.
    let t = wait_for(Duration::from_secs(3), || has_addr(&lab.us, VIP4))
        .expect("ours never became master");
    assert!(t >= Duration::from_millis(300), "master too early: {t:?}");
    let ka = Keepalived::start(&lab.ka, &KaConf::v3(100).render());
    std::thread::sleep(Duration::from_millis(1500));
    let window = Instant::now();
    std::thread::sleep(Duration::from_millis(1000));
    let seen = sniff.since(window);
    assert!(has_addr(&lab.us, VIP4));
    assert!(!has_addr(&lab.ka, VIP4), "VIP on both: {}", addrs(&lab.ka));
    let ours_adv = from(&seen, US_V4);
    assert!(
        (8..=12).contains(&ours_adv.len()),
        "{} adverts from us in 1 s",
        ours_adv.len()
    );
    assert!(from(&seen, KA_V4).is_empty(), "keepalived advertised");
    for a in &ours_adv {
        assert_eq!((a.priority, a.tos, a.ttl, a.version), (150, 0xc0, 255, 3));
    }
    assert!(ka.log().contains("Entering BACKUP STATE"), "{}", ka.log());
    assert_eq!(
        ours.status("VI").map(|s| (s.state, s.priority, s.master)),
        Some((State::Master, 150, None))
    );

    // SIGKILL of our master: keepalived takes over after its master-down
    // interval, 3 * 100 ms + (256 - 100) / 256 * 100 ms = 360.9 ms.
    ours.kill();
    let killed = Instant::now();
    let t = wait_for(Duration::from_secs(3), || has_addr(&lab.ka, VIP4))
        .expect("keepalived did not take over");
    let seen = sniff.settled();
    let last_ours = from(&seen, US_V4).last().unwrap().at;
    let first_ka = from(&seen, KA_V4).first().unwrap().at;
    let gap = first_ka.duration_since(last_ours);
    println!(
        "v3 ipv4: keepalived took over {:.0} ms after our last advert (VIP after {:.0} ms)",
        ms(gap),
        ms(t)
    );
    assert!(last_ours <= killed + Duration::from_millis(20));
    assert!(gap >= Duration::from_millis(280), "too early: {gap:?}");
    assert!(gap <= Duration::from_millis(361 + 200), "too late: {gap:?}");
}

/// keepalived at the higher priority preempts our master; then SIGKILL of
/// keepalived: we take over within our master-down interval and the VIP
/// moves to us.
#[test]
fn v3_keepalived_preempts_ours_then_sigkill_failover() {
    let _g = serial();
    let lab = Lab::new("v3p");
    let sniff = lab.sniff();
    let ours = Ours::start(&lab.us, vec![our_v3(100)]);
    wait_for(Duration::from_secs(3), || has_addr(&lab.us, VIP4)).expect("ours never became master");
    let mut ka = Keepalived::start(&lab.ka, &KaConf::v3(200).render());
    // keepalived starts as backup, hears a lower priority, preempts after
    // its master-down interval.
    let t = wait_for(Duration::from_secs(3), || {
        has_addr(&lab.ka, VIP4) && !has_addr(&lab.us, VIP4)
    })
    .expect("keepalived did not preempt");
    println!(
        "v3 ipv4: keepalived preempted us {:.0} ms after its start",
        ms(t)
    );
    wait_for(Duration::from_millis(500), || {
        ours.status("VI")
            .is_some_and(|s| s.master == Some(ip(KA_V4)))
    })
    .expect("status does not show keepalived as master");
    assert_eq!(ours.status("VI").map(|s| s.state), Some(State::Backup));
    let window = Instant::now();
    std::thread::sleep(Duration::from_millis(800));
    let seen = sniff.since(window);
    assert!(from(&seen, US_V4).is_empty(), "we still advertise");
    assert!(from(&seen, KA_V4).len() >= 6);
    assert!(!has_addr(&lab.us, VIP4));

    ka.sigkill();
    let t =
        wait_for(Duration::from_secs(3), || has_addr(&lab.us, VIP4)).expect("we did not take over");
    let seen = sniff.settled();
    let last_ka = from(&seen, KA_V4).last().unwrap().at;
    let first_ours = from(&seen, US_V4)
        .into_iter()
        .find(|a| a.at > last_ka)
        .unwrap()
        .at;
    let gap = first_ours.duration_since(last_ka);
    // Ours: 3 * 100 ms + (256 - 100) / 256 * 100 ms = 360.9 ms.
    println!(
        "v3 ipv4: we took over {:.0} ms after keepalived's last advert (VIP after {:.0} ms)",
        ms(gap),
        ms(t)
    );
    assert!(gap >= Duration::from_millis(300), "too early: {gap:?}");
    assert!(gap <= Duration::from_millis(361 + 200), "too late: {gap:?}");
}

/// A graceful stop of our master sends priority 0: keepalived takes over
/// after its skew time only ((256 - 100) / 256 * 100 ms = 61 ms), not the
/// master-down interval (361 ms). Notify commands ran in order.
#[test]
fn v3_graceful_stop_sends_priority_zero() {
    let _g = serial();
    let lab = Lab::new("v3s");
    let sniff = lab.sniff();
    let dir = std::env::temp_dir().join(format!("vrrp-interop-notify-{}", lab.us.name()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("notify.log");
    let mut spec = our_v3(150);
    spec.notify = NotifySpec {
        any: Some(vec![
            "sh".into(),
            "-c".into(),
            format!("echo \"$*\" >> {}", log.display()),
            "sh".into(),
        ]),
        ..NotifySpec::default()
    };
    let mut ours = Ours::start(&lab.us, vec![spec]);
    wait_for(Duration::from_secs(3), || has_addr(&lab.us, VIP4)).expect("ours never became master");
    let _ka = Keepalived::start(&lab.ka, &KaConf::v3(100).render());
    std::thread::sleep(Duration::from_millis(1000));
    assert!(!has_addr(&lab.ka, VIP4));

    ours.stop();
    assert_eq!(ours.status("VI").map(|s| s.state), Some(State::Initialize));
    assert!(!has_addr(&lab.us, VIP4), "VIP left behind");
    wait_for(Duration::from_secs(2), || has_addr(&lab.ka, VIP4))
        .expect("keepalived did not take over");
    std::thread::sleep(Duration::from_millis(100));
    let seen = sniff.settled();
    let zero: Vec<&Seen> = seen
        .iter()
        .filter(|a| a.src == ip(US_V4) && a.priority == 0)
        .collect();
    assert_eq!(zero.len(), 1, "priority 0 adverts: {zero:?}");
    let first_ka = from(&seen, KA_V4).first().unwrap().at;
    let gap = first_ka.duration_since(zero[0].at);
    println!(
        "v3 ipv4: keepalived took over {:.0} ms after our priority 0 advert",
        ms(gap)
    );
    assert!(
        gap <= Duration::from_millis(61 + 150),
        "not the skew time: {gap:?}"
    );
    let notes = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        notes,
        "INSTANCE VI BACKUP 150\nINSTANCE VI MASTER 150\nINSTANCE VI STOP 150\n"
    );
}

/// keepalived master alone; ours starts at a higher priority with
/// preemption: master within its master-down interval, keepalived backs
/// off. Without preemption ours stays backup.
#[test]
fn v3_preemption_on_and_off() {
    let _g = serial();
    let lab = Lab::new("v3e");
    let sniff = lab.sniff();
    let _ka = Keepalived::start(&lab.ka, &KaConf::v3(100).render());
    wait_for(Duration::from_secs(3), || has_addr(&lab.ka, VIP4))
        .expect("keepalived never became master");

    let mut spec = our_v3(150);
    spec.config.preempt = false;
    let mut ours = Ours::start(&lab.us, vec![spec]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!has_addr(&lab.us, VIP4), "preempted with preemption off");
    assert!(has_addr(&lab.ka, VIP4));
    ours.stop();

    let started = Instant::now();
    let _ours = Ours::start(&lab.us, vec![our_v3(150)]);
    let t = wait_for(Duration::from_secs(3), || {
        has_addr(&lab.us, VIP4) && !has_addr(&lab.ka, VIP4)
    })
    .expect("no preemption");
    // Our master-down interval: 300 ms + 106 / 256 * 100 ms = 341 ms.
    println!(
        "v3 ipv4: preempted keepalived {:.0} ms after our start",
        ms(t)
    );
    assert!(t <= Duration::from_millis(341 + 400), "{t:?}");
    std::thread::sleep(Duration::from_millis(300));
    let window = Instant::now();
    std::thread::sleep(Duration::from_millis(700));
    let seen = sniff.since(window);
    assert!(from(&seen, KA_V4).is_empty(), "keepalived still advertises");
    assert!(from(&seen, US_V4).len() >= 5);
    let first = from(&sniff.since(started), US_V4).first().unwrap().at;
    assert!(first.duration_since(started) >= Duration::from_millis(300));
}

/// VRRPv2 with a simple password and 1 s adverts: keepalived master at
/// the higher priority, SIGKILL, we take over after 3 s + skew.
#[test]
fn v2_auth_pass_failover() {
    let _g = serial();
    let lab = Lab::new("v2a");
    let sniff = lab.sniff();
    let mut ka = Keepalived::start(
        &lab.ka,
        &KaConf {
            version: 2,
            priority: 200,
            advert: "1",
            vip: "192.0.2.100/24",
            extra: "authentication {\n    auth_type PASS\n    auth_pass secret\n  }",
        }
        .render(),
    );
    let mut cfg = InstanceConfig::new(51, Version::V2, ip(US_V4), vec![]);
    cfg.priority = 100;
    cfg.auth = Auth::password(b"secret");
    let _ours = Ours::start(
        &lab.us,
        vec![InstanceSpec::new(
            "VI",
            "eth0",
            cfg,
            vec![VirtualAddress::new(ip(VIP4), 24)],
        )],
    );
    wait_for(Duration::from_secs(6), || has_addr(&lab.ka, VIP4))
        .expect("keepalived never became master");
    std::thread::sleep(Duration::from_millis(4500));
    assert!(
        !has_addr(&lab.us, VIP4),
        "we did not accept keepalived's adverts"
    );
    assert!(from(&sniff.adverts(), US_V4).is_empty());
    ka.sigkill();
    let t =
        wait_for(Duration::from_secs(6), || has_addr(&lab.us, VIP4)).expect("we did not take over");
    let seen = sniff.settled();
    let last_ka = from(&seen, KA_V4).last().unwrap().at;
    let first_ours = from(&seen, US_V4).first().unwrap().clone();
    let gap = first_ours.at.duration_since(last_ka);
    println!(
        "v2 auth: we took over {:.0} ms after keepalived's last advert (VIP after {:.0} ms)",
        ms(gap),
        ms(t)
    );
    // 3 s + (256 - 100) / 256 s = 3.609 s.
    assert!(gap >= Duration::from_millis(3500), "{gap:?}");
    assert!(gap <= Duration::from_millis(3609 + 250), "{gap:?}");
    assert_eq!((first_ours.version, first_ours.priority), (2, 100));
}

/// VRRPv3 over IPv6 (from the link-local addresses), 100 ms: ours master,
/// keepalived backup; SIGKILL of ours, keepalived takes over.
#[test]
fn v3_ipv6_master_and_failover() {
    let _g = serial();
    let lab = Lab::new("v6");
    let sniff = lab.sniff();
    let mut cfg = InstanceConfig::new(51, Version::V3, ip("::"), vec![]);
    cfg.priority = 150;
    cfg.advert_interval = Duration::from_millis(100);
    let mut ours = Ours::start(
        &lab.us,
        vec![InstanceSpec::new(
            "VI6",
            "eth0",
            cfg,
            vec![VirtualAddress::new(ip(VIP6), 64)],
        )],
    );
    wait_for(Duration::from_secs(3), || has_addr(&lab.us, VIP6)).expect("ours never became master");
    let _ka = Keepalived::start(
        &lab.ka,
        &KaConf {
            vip: "2001:db8::100/64",
            ..KaConf::v3(100)
        }
        .render(),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let window = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    let seen = sniff.since(window);
    assert!(!has_addr(&lab.ka, VIP6));
    let ours_adv = from(&seen, US_LL);
    assert!(ours_adv.len() >= 4, "{seen:?}");
    for a in &ours_adv {
        assert_eq!((a.priority, a.tos, a.ttl), (150, 0xc0, 255));
    }
    assert!(from(&seen, KA_LL).is_empty());

    ours.kill();
    let t = wait_for(Duration::from_secs(3), || has_addr(&lab.ka, VIP6))
        .expect("keepalived did not take over");
    let seen = sniff.settled();
    let gap = from(&seen, KA_LL)
        .first()
        .unwrap_or_else(|| {
            panic!(
                "no advert from keepalived: {:?}",
                &seen[seen.len().saturating_sub(5)..]
            )
        })
        .at
        .duration_since(from(&seen, US_LL).last().unwrap().at);
    println!(
        "v3 ipv6: keepalived took over {:.0} ms after our last advert (VIP after {:.0} ms)",
        ms(gap),
        ms(t)
    );
    assert!(gap >= Duration::from_millis(280) && gap <= Duration::from_millis(561));
}

/// Unicast peers (VRRPv3 IPv4): keepalived master at the higher priority,
/// we stay backup; SIGKILL of keepalived, we take over.
#[test]
fn v3_unicast_peers() {
    let _g = serial();
    let lab = Lab::new("uc");
    let sniff = lab.sniff();
    let mut ka = Keepalived::start(
        &lab.ka,
        &KaConf {
            extra: "unicast_src_ip 192.0.2.2\n  unicast_peer {\n    192.0.2.3\n  }",
            ..KaConf::v3(200)
        }
        .render(),
    );
    wait_for(Duration::from_secs(3), || has_addr(&lab.ka, VIP4))
        .expect("keepalived never became master");
    let mut spec = our_v3(100);
    spec.config.unicast_peers = vec![ip(KA_V4)];
    let _ours = Ours::start(&lab.us, vec![spec]);
    std::thread::sleep(Duration::from_millis(1000));
    assert!(!has_addr(&lab.us, VIP4), "unicast adverts not accepted");
    assert!(from(&sniff.adverts(), US_V4).is_empty());
    ka.sigkill();
    let t =
        wait_for(Duration::from_secs(3), || has_addr(&lab.us, VIP4)).expect("we did not take over");
    // Our adverts go to the peer, unicast (seen on its bridge port).
    std::thread::sleep(Duration::from_millis(300));
    let seen = sniff.settled();
    let last_ka = from(&seen, KA_V4).last().unwrap().at;
    let ours_adv = from(&seen, US_V4);
    assert!(ours_adv.len() >= 2);
    let gap = ours_adv[0].at.duration_since(last_ka);
    println!(
        "v3 unicast: we took over {:.0} ms after keepalived's last advert (VIP after {:.0} ms)",
        ms(gap),
        ms(t)
    );
    assert!(gap >= Duration::from_millis(300), "{gap:?}");
    assert!(gap <= Duration::from_millis(361 + 200), "{gap:?}");
}

/// Split brain: cut the link between the nodes (unplug our port from the
/// bridge): both become master. Restore it: one master within about one
/// advert interval; the loser stops advertising and drops the VIP.
#[test]
fn v3_split_brain_resolves() {
    let _g = serial();
    let lab = Lab::new("sb");
    let sniff = lab.sniff();
    let _ours = Ours::start(&lab.us, vec![our_v3(150)]);
    wait_for(Duration::from_secs(3), || has_addr(&lab.us, VIP4)).expect("ours never became master");
    let _ka = Keepalived::start(&lab.ka, &KaConf::v3(100).render());
    std::thread::sleep(Duration::from_millis(1000));
    assert!(!has_addr(&lab.ka, VIP4));

    lab.br
        .run("ip", &["link", "set", "p-us", "nomaster"])
        .unwrap();
    wait_for(Duration::from_secs(3), || has_addr(&lab.ka, VIP4))
        .expect("keepalived did not become master alone");
    assert!(has_addr(&lab.us, VIP4), "both should be master");
    std::thread::sleep(Duration::from_millis(300));

    let healed = Instant::now();
    lab.br
        .run("ip", &["link", "set", "p-us", "master", "br0"])
        .unwrap();
    let t = wait_for(Duration::from_secs(3), || !has_addr(&lab.ka, VIP4))
        .expect("keepalived kept the VIP");
    println!(
        "v3 split brain: keepalived dropped the VIP {:.0} ms after the link came back",
        ms(t)
    );
    assert!(t <= Duration::from_millis(100 + 150), "{t:?}");
    assert!(has_addr(&lab.us, VIP4));
    std::thread::sleep(Duration::from_millis(200));
    let window = Instant::now();
    std::thread::sleep(Duration::from_millis(600));
    let seen = sniff.since(window);
    assert!(from(&seen, KA_V4).is_empty(), "the loser still advertises");
    assert!(from(&seen, US_V4).len() >= 4);
    assert!(healed.elapsed() < Duration::from_secs(3));
}

/// A graceful stop of keepalived (SIGTERM) sends priority 0: we take over
/// after our skew time, (256 - 100) / 256 * 100 ms = 61 ms.
#[test]
fn v3_keepalived_graceful_stop_we_take_over_after_skew() {
    let _g = serial();
    let lab = Lab::new("v3t");
    let sniff = lab.sniff();
    let mut ka = Keepalived::start(&lab.ka, &KaConf::v3(200).render());
    wait_for(Duration::from_secs(3), || has_addr(&lab.ka, VIP4))
        .expect("keepalived never became master");
    let _ours = Ours::start(&lab.us, vec![our_v3(100)]);
    std::thread::sleep(Duration::from_millis(800));
    assert!(!has_addr(&lab.us, VIP4));
    ka.sigterm();
    wait_for(Duration::from_secs(2), || has_addr(&lab.us, VIP4)).expect("we did not take over");
    assert!(!has_addr(&lab.ka, VIP4), "keepalived left its VIP");
    let seen = sniff.settled();
    let zero: Vec<&Seen> = seen
        .iter()
        .filter(|a| a.src == ip(KA_V4) && a.priority == 0)
        .collect();
    assert!(!zero.is_empty(), "no priority 0 advert from keepalived");
    let first_ours = from(&seen, US_V4).first().unwrap().at;
    let gap = first_ours.duration_since(zero[0].at);
    println!(
        "v3 ipv4: we took over {:.0} ms after keepalived's priority 0 advert",
        ms(gap)
    );
    assert!(gap >= Duration::from_millis(50), "{gap:?}");
    assert!(
        gap <= Duration::from_millis(61 + 150),
        "not the skew time: {gap:?}"
    );
}

const US_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x03];

/// A neighbour entry for `addr` at a wrong MAC, in state STALE.
fn stale_neighbour(ns: &TestNs, addr: &str) {
    ns.run(
        "ip",
        &[
            "neigh",
            "replace",
            addr,
            "lladdr",
            "02:00:00:00:00:99",
            "dev",
            "eth0",
            "nud",
            "stale",
        ],
    )
    .unwrap();
}

/// Gratuitous ARPs on becoming master: a burst of `repeat` spaced by
/// `garp_interval`, a second burst after the delay, from our MAC; they
/// update keepalived's neighbour table. Then carrier loss on our link:
/// Fault, the VIP is removed and keepalived takes over; carrier back: we
/// preempt again.
#[test]
fn v3_gratuitous_arps_and_carrier_loss() {
    let _g = serial();
    let lab = Lab::new("v3g");
    let sniff = lab.sniff();
    let _ka = Keepalived::start(&lab.ka, &KaConf::v3(100).render());
    // A stale neighbour entry on keepalived's node that the gratuitous ARPs
    // must correct (Linux only updates entries from them, by default).
    stale_neighbour(&lab.ka, VIP4);
    let mut spec = our_v3(150);
    spec.config.garp.repeat = 3;
    spec.config.garp.delay = Some(Duration::from_millis(800));
    spec.garp_interval = Duration::from_millis(50);
    let _ours = Ours::start(&lab.us, vec![spec]);
    wait_for(Duration::from_secs(3), || has_addr(&lab.us, VIP4)).expect("ours never became master");
    std::thread::sleep(Duration::from_millis(1200));
    let garps: Vec<Announce> = sniff
        .announces()
        .into_iter()
        .filter(|a| a.ip == ip(VIP4))
        .collect();
    assert_eq!(garps.len(), 6, "{garps:?}");
    assert!(garps.iter().all(|a| a.mac == US_MAC));
    let first_burst = garps[2].at.duration_since(garps[0].at);
    assert!(
        first_burst >= Duration::from_millis(90) && first_burst <= Duration::from_millis(250),
        "{first_burst:?}"
    );
    let delay = garps[3].at.duration_since(garps[0].at);
    assert!(
        delay >= Duration::from_millis(750) && delay <= Duration::from_millis(1000),
        "{delay:?}"
    );
    let neigh = lab
        .ka
        .run("ip", &["neigh", "show", "dev", "eth0", VIP4])
        .unwrap();
    assert!(neigh.contains("02:00:00:00:00:03"), "{neigh:?}");

    // Carrier loss: the bridge side of our veth goes down.
    lab.br.run("ip", &["link", "set", "p-us", "down"]).unwrap();
    let t =
        wait_for(Duration::from_secs(1), || !has_addr(&lab.us, VIP4)).expect("VIP kept in fault");
    println!("carrier loss: VIP removed after {:.0} ms", ms(t));
    assert!(t <= Duration::from_millis(200), "{t:?}");
    let t = wait_for(Duration::from_secs(3), || has_addr(&lab.ka, VIP4))
        .expect("keepalived did not take over");
    println!("carrier loss: keepalived master after {:.0} ms", ms(t));
    std::thread::sleep(Duration::from_millis(500));
    assert!(!has_addr(&lab.us, VIP4), "master while in fault");

    lab.br.run("ip", &["link", "set", "p-us", "up"]).unwrap();
    let t = wait_for(Duration::from_secs(3), || {
        has_addr(&lab.us, VIP4) && !has_addr(&lab.ka, VIP4)
    })
    .expect("no recovery");
    println!("carrier back: master again after {:.0} ms", ms(t));
    // Backup first, then the master-down interval (341 ms) to preempt.
    assert!(t >= Duration::from_millis(300), "{t:?}");
    assert!(t <= Duration::from_millis(1500), "{t:?}");
}

/// Unsolicited NAs for IPv6 virtual addresses, in keepalived's format,
/// update keepalived's neighbour table.
#[test]
fn v3_ipv6_unsolicited_na() {
    let _g = serial();
    let lab = Lab::new("v6n");
    let sniff = lab.sniff();
    // An unsolicited NA only updates an existing entry (RFC 4861 7.2.5).
    stale_neighbour(&lab.ka, VIP6);
    let mut cfg = InstanceConfig::new(51, Version::V3, ip("::"), vec![]);
    cfg.priority = 150;
    cfg.advert_interval = Duration::from_millis(100);
    cfg.garp.repeat = 2;
    cfg.garp.delay = None;
    let _ours = Ours::start(
        &lab.us,
        vec![InstanceSpec::new(
            "VI6",
            "eth0",
            cfg,
            vec![VirtualAddress::new(ip(VIP6), 64)],
        )],
    );
    wait_for(Duration::from_secs(3), || has_addr(&lab.us, VIP6)).expect("ours never became master");
    std::thread::sleep(Duration::from_millis(300));
    let nas: Vec<Announce> = sniff
        .announces()
        .into_iter()
        .filter(|a| a.ip == ip(VIP6))
        .collect();
    assert_eq!(nas.len(), 2, "{nas:?}");
    assert!(nas.iter().all(|a| a.mac == US_MAC));
    let neigh = lab
        .ka
        .run("ip", &["-6", "neigh", "show", "dev", "eth0", VIP6])
        .unwrap();
    assert!(neigh.contains("02:00:00:00:00:03"), "{neigh:?}");
}

/// A sync group of two instances on our node; keepalived runs only the
/// first VRID, at a higher priority. The second instance has no other
/// router, but its group holds it in Backup while the first is Backup.
/// SIGKILL of keepalived: both become master together. A graceful stop:
/// both send priority 0.
#[test]
fn v3_sync_group_moves_together() {
    let _g = serial();
    let lab = Lab::new("sg");
    let sniff = lab.sniff();
    let mut ka = Keepalived::start(&lab.ka, &KaConf::v3(200).render());
    wait_for(Duration::from_secs(3), || has_addr(&lab.ka, VIP4))
        .expect("keepalived never became master");
    let vi1 = our_v3(100);
    let mut vi2 = our_v3(100);
    vi2.name = "VI_2".into();
    vi2.config.vrid = 52;
    vi2.virtual_addresses = vec![VirtualAddress::new(ip("192.0.2.101"), 24)];
    let mut ours = Ours::start_groups(
        &lab.us,
        vec![vi1, vi2],
        vec![SyncGroupSpec {
            name: "G".into(),
            instances: vec!["VI".into(), "VI_2".into()],
        }],
    );
    std::thread::sleep(Duration::from_millis(1500));
    let a = addrs(&lab.us);
    assert!(
        !a.contains(" 192.0.2.100/") && !a.contains(" 192.0.2.101/"),
        "{a}"
    );
    assert!(from(&sniff.adverts(), US_V4).is_empty());

    ka.sigkill();
    let t = wait_for(Duration::from_secs(3), || {
        let a = addrs(&lab.us);
        a.contains(" 192.0.2.100/") && a.contains(" 192.0.2.101/")
    })
    .expect("the group did not take over");
    println!(
        "sync group: both VIPs on our node {:.0} ms after SIGKILL",
        ms(t)
    );
    assert!(t <= Duration::from_millis(361 + 250), "{t:?}");
    let seen = sniff.settled();
    let vrids: Vec<u8> = from(&seen, US_V4).iter().map(|a| a.vrid).collect();
    assert!(vrids.contains(&51) && vrids.contains(&52), "{vrids:?}");

    ours.stop();
    let seen = sniff.settled();
    let mut zero: Vec<u8> = seen
        .iter()
        .filter(|a| a.src == ip(US_V4) && a.priority == 0)
        .map(|a| a.vrid)
        .collect();
    zero.sort_unstable();
    assert_eq!(zero, vec![51, 52]);
    let a = addrs(&lab.us);
    assert!(
        !a.contains(" 192.0.2.100/") && !a.contains(" 192.0.2.101/"),
        "{a}"
    );
}

/// Tracking: a script with a negative weight lowers our priority below
/// keepalived's, which preempts us; when it passes again we preempt back.
/// A tracked interface going down faults the instance: priority 0, and
/// keepalived takes over after its skew time.
#[test]
fn v3_track_script_and_interface() {
    let _g = serial();
    let lab = Lab::new("trk");
    let sniff = lab.sniff();
    lab.us
        .run(
            "ip",
            &[
                "link", "add", "trk0", "type", "veth", "peer", "name", "trk1",
            ],
        )
        .unwrap();
    lab.us.run("ip", &["link", "set", "trk1", "up"]).unwrap();
    lab.us.run("ip", &["link", "set", "trk0", "up"]).unwrap();
    let dir = std::env::temp_dir().join(format!("vrrp-interop-track-{}", lab.us.name()));
    std::fs::create_dir_all(&dir).unwrap();
    let flag = dir.join("healthy");
    std::fs::write(&flag, "").unwrap();
    let mut spec = our_v3(150);
    spec.track_interfaces = vec!["trk0".into()];
    spec.track_scripts = vec![TrackScript {
        argv: vec!["test".into(), "-e".into(), flag.display().to_string()],
        interval: Duration::from_millis(100),
        timeout: Duration::from_secs(1),
        weight: -60,
        rise: 2,
        fall: 2,
    }];
    let ours = Ours::start(&lab.us, vec![spec]);
    wait_for(Duration::from_secs(3), || has_addr(&lab.us, VIP4)).expect("ours never became master");
    let _ka = Keepalived::start(&lab.ka, &KaConf::v3(100).render());
    std::thread::sleep(Duration::from_millis(1000));
    assert!(!has_addr(&lab.ka, VIP4));

    // Script fails twice: 150 - 60 = 90 < 100, keepalived preempts.
    std::fs::remove_file(&flag).unwrap();
    let t = wait_for(Duration::from_secs(3), || {
        has_addr(&lab.ka, VIP4) && !has_addr(&lab.us, VIP4)
    })
    .expect("keepalived did not preempt");
    println!(
        "track script failing: keepalived master after {:.0} ms",
        ms(t)
    );
    let seen = sniff.settled();
    assert!(seen.iter().any(|a| a.src == ip(US_V4) && a.priority == 90));
    assert_eq!(ours.status("VI").map(|s| s.priority), Some(90));

    // Passing again: back to 150, we preempt.
    std::fs::write(&flag, "").unwrap();
    let t = wait_for(Duration::from_secs(3), || {
        has_addr(&lab.us, VIP4) && !has_addr(&lab.ka, VIP4)
    })
    .expect("we did not preempt back");
    println!("track script passing: master again after {:.0} ms", ms(t));

    // The tracked interface goes down: Fault, priority 0, keepalived takes
    // over after its skew time.
    std::thread::sleep(Duration::from_millis(300));
    let down = Instant::now();
    lab.us.run("ip", &["link", "set", "trk0", "down"]).unwrap();
    let t = wait_for(Duration::from_secs(3), || has_addr(&lab.ka, VIP4))
        .expect("keepalived did not take over");
    println!(
        "tracked interface down: keepalived master after {:.0} ms",
        ms(t)
    );
    assert!(!has_addr(&lab.us, VIP4));
    let seen = sniff.settled();
    assert!(
        seen.iter()
            .any(|a| a.src == ip(US_V4) && a.priority == 0 && a.at >= down),
        "no priority 0 advert on fault"
    );
    assert!(t <= Duration::from_millis(300), "{t:?}");
    lab.us.run("ip", &["link", "set", "trk0", "up"]).unwrap();
    wait_for(Duration::from_secs(3), || {
        has_addr(&lab.us, VIP4) && !has_addr(&lab.ka, VIP4)
    })
    .expect("no recovery after the tracked interface came back");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The YAML configuration, mapped by `vrrp_io::from_config`, against
/// keepalived: ours master at the higher priority, keepalived backup;
/// graceful stop hands over.
#[test]
fn v3_from_yaml_config() {
    let _g = serial();
    let lab = Lab::new("yml");
    let yaml = "vrrp_instances:\n  - name: web\n    interface: eth0\n    vrid: 51\n    \
                priority: 150\n    version: 3\n    advert_interval: 100ms\n    \
                virtual_ips: [192.0.2.100/24]\n    garp: { delay: 0s, repeat: 2 }\n";
    let cfg = keepalive_d::config::parse_str(yaml, "test.yaml").unwrap();
    let (instances, groups) = keepalive_d::vrrp_io::from_config::specs(&cfg);
    assert!(groups.is_empty());
    let mut ours = Ours::start_with(&lab.us, instances, Entry::Instances);
    wait_for(Duration::from_secs(3), || has_addr(&lab.us, VIP4)).expect("ours never became master");
    let _ka = Keepalived::start(&lab.ka, &KaConf::v3(100).render());
    std::thread::sleep(Duration::from_millis(1000));
    assert!(!has_addr(&lab.ka, VIP4));
    ours.stop();
    let t = wait_for(Duration::from_secs(2), || has_addr(&lab.ka, VIP4))
        .expect("keepalived did not take over");
    assert!(t <= Duration::from_millis(250), "{t:?}");
    assert!(!has_addr(&lab.us, VIP4));
}

/// The address owner (priority 255, the virtual address is its own): master
/// at once, keepalived backs off; on a graceful stop it keeps its own
/// address and keepalived takes over after its skew time.
#[test]
fn v3_address_owner() {
    let _g = serial();
    let lab = Lab::new("own");
    let sniff = lab.sniff();
    let _ka = Keepalived::start(
        &lab.ka,
        &KaConf {
            vip: "192.0.2.3/24",
            ..KaConf::v3(100)
        }
        .render(),
    );
    std::thread::sleep(Duration::from_millis(100));
    let mut cfg = InstanceConfig::new(51, Version::V3, ip(US_V4), vec![]);
    cfg.priority = 255;
    cfg.advert_interval = Duration::from_millis(100);
    let started = Instant::now();
    let mut ours = Ours::start(
        &lab.us,
        vec![InstanceSpec::new(
            "OWN",
            "eth0",
            cfg,
            vec![VirtualAddress::new(ip(US_V4), 24)],
        )],
    );
    std::thread::sleep(Duration::from_millis(1000));
    let seen = sniff.settled();
    let first = from(&seen, US_V4).first().unwrap().clone();
    assert_eq!(first.priority, 255);
    let t = first.at.duration_since(started);
    println!("address owner: first advert {:.0} ms after start", ms(t));
    assert!(t <= Duration::from_millis(150), "{t:?}");
    assert!(from(&seen, KA_V4).is_empty(), "keepalived advertised");
    assert!(!has_addr(&lab.ka, US_V4));
    ours.stop();
    assert!(has_addr(&lab.us, US_V4), "the owner lost its own address");
    let t = wait_for(Duration::from_secs(2), || has_addr(&lab.ka, US_V4))
        .expect("keepalived did not take over");
    assert!(t <= Duration::from_millis(250), "{t:?}");
}

/// `preempt_delay`: keepalived master at a lower priority; ours waits the
/// delay (1 s) before it stops listening, then preempts after its
/// master-down interval (341 ms).
#[test]
fn v3_preempt_delay() {
    let _g = serial();
    let lab = Lab::new("pd");
    let _ka = Keepalived::start(&lab.ka, &KaConf::v3(100).render());
    wait_for(Duration::from_secs(3), || has_addr(&lab.ka, VIP4))
        .expect("keepalived never became master");
    let mut spec = our_v3(150);
    spec.config.preempt_delay = Duration::from_secs(1);
    let _ours = Ours::start(&lab.us, vec![spec]);
    let t = wait_for(Duration::from_secs(4), || {
        has_addr(&lab.us, VIP4) && !has_addr(&lab.ka, VIP4)
    })
    .expect("no preemption");
    println!(
        "preempt_delay 1 s: preempted {:.0} ms after our start",
        ms(t)
    );
    assert!(t >= Duration::from_millis(1200), "{t:?}");
    assert!(t <= Duration::from_millis(1000 + 341 + 400), "{t:?}");
}

/// VRRPv2 with a password the other way round: ours master, keepalived
/// accepts our adverts and stays backup beyond its master-down interval
/// (3 s + (256 - 100) / 256 s = 3.61 s).
#[test]
fn v2_auth_ours_master_keepalived_backup() {
    let _g = serial();
    let lab = Lab::new("v2m");
    let sniff = lab.sniff();
    let mut cfg = InstanceConfig::new(51, Version::V2, ip(US_V4), vec![]);
    cfg.priority = 150;
    cfg.auth = Auth::password(b"secret");
    cfg.garp.delay = None;
    let _ours = Ours::start(
        &lab.us,
        vec![InstanceSpec::new(
            "VI",
            "eth0",
            cfg,
            vec![VirtualAddress::new(ip(VIP4), 24)],
        )],
    );
    let ka = Keepalived::start(
        &lab.ka,
        &KaConf {
            version: 2,
            priority: 100,
            advert: "1",
            vip: "192.0.2.100/24",
            extra: "authentication {\n    auth_type PASS\n    auth_pass secret\n  }",
        }
        .render(),
    );
    // Ours: master after 3 s + 106/256 s.
    let t = wait_for(Duration::from_secs(6), || has_addr(&lab.us, VIP4))
        .expect("ours never became master");
    println!("v2 auth: ours master {:.0} ms after start", ms(t));
    std::thread::sleep(Duration::from_millis(4500));
    assert!(!has_addr(&lab.ka, VIP4), "keepalived ignored our adverts");
    let seen = sniff.settled();
    assert!(from(&seen, KA_V4).is_empty());
    let ours_adv = from(&seen, US_V4);
    assert!(ours_adv.len() >= 4);
    assert!(ours_adv.iter().all(|a| a.version == 2 && a.priority == 150));
    assert!(ka.log().contains("Entering BACKUP STATE"), "{}", ka.log());
}

/// VRRPv3 over IPv6 with unicast peers (link-local addresses): keepalived
/// master at the higher priority, we stay backup; SIGKILL, we take over.
#[test]
fn v3_ipv6_unicast_peers() {
    let _g = serial();
    let lab = Lab::new("uc6");
    let mut ka = Keepalived::start(
        &lab.ka,
        &KaConf {
            vip: "2001:db8::100/64",
            extra: "unicast_peer {\n    fe80::ff:fe00:3\n  }",
            ..KaConf::v3(200)
        }
        .render(),
    );
    wait_for(Duration::from_secs(3), || has_addr(&lab.ka, VIP6))
        .expect("keepalived never became master");
    let mut cfg = InstanceConfig::new(51, Version::V3, ip("::"), vec![]);
    cfg.priority = 100;
    cfg.advert_interval = Duration::from_millis(100);
    cfg.unicast_peers = vec![ip(KA_LL)];
    let _ours = Ours::start(
        &lab.us,
        vec![InstanceSpec::new(
            "VI6",
            "eth0",
            cfg,
            vec![VirtualAddress::new(ip(VIP6), 64)],
        )],
    );
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        !has_addr(&lab.us, VIP6),
        "unicast IPv6 adverts not accepted"
    );
    ka.sigkill();
    let t =
        wait_for(Duration::from_secs(3), || has_addr(&lab.us, VIP6)).expect("we did not take over");
    println!(
        "v3 ipv6 unicast: VIP on our node {:.0} ms after SIGKILL",
        ms(t)
    );
    assert!(t >= Duration::from_millis(250), "{t:?}");
    assert!(t <= Duration::from_millis(361 + 250), "{t:?}");
}
