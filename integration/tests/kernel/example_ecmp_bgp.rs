//! examples/ecmp-bgp: active-active directors behind ECMP, announced by BIRD over BGP,
//! run end to end from the shipped files (`director.yaml`, `bird-director.conf`,
//! `bird-router.conf`) in the lab's DR layout with a third director plugged in:
//!
//! ```text
//!  client ─ [switch: client] ─ router ─ [switch: servers] ─┬─ director  10.0.0.1 ┐ BIRD + keepalive-d,
//!   172.16.1.2                  BIRD, ECMP,                ├─ director2 10.0.0.2 ├ VIP on lo, mh,
//!                               L4 hash                    ├─ director3 10.0.0.3 ┘ sloppy_tcp
//!                               10.0.0.254                 └─ rs0..rs2 10.0.0.11-13 (VIP on lo)
//! ```
//!
//! Proven here: the router has one multipath route over the three directors and the
//! client's flows spread over them; a director whose real servers all fail (as seen from
//! it) and a stopped director leave the route within their bounds; long-lived TCP flows
//! (banner-and-echo, pinged every 500 ms the whole time) are never broken, neither on the
//! surviving directors nor those that move to another director (they keep their real
//! server: Maglev hashing on the same list everywhere, and `sloppy_tcp` takes a flow
//! that began elsewhere); and `keepalive-d drain-director` breaks no flow.

use ipvs_integration::bird::{Bird, next_hops, wait_next_hops};
use ipvs_integration::daemon::Daemon;
use ipvs_integration::lb_lab::{HTTP_PORT, LbLab, Segment, TCP_PORT, sock};
use ipvs_integration::netns::TestNs;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 254);
const DIRECTORS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(10, 0, 0, 1),
    Ipv4Addr::new(10, 0, 0, 2),
    Ipv4Addr::new(10, 0, 0, 3),
];
/// How long the routes may take to come up at the start (BIRD's start, the BGP sessions,
/// the first health checks; slow under TCG).
const CONVERGE: Duration = Duration::from_secs(90);
/// Long-lived flows per test.
const FLOWS: usize = 60;

fn example_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/ecmp-bgp")
        .join(name)
}

fn read_example(name: &str) -> String {
    let path = example_file(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lab, the three directors' BIRD and keepalive-d, the router's BIRD. Fields drop in
/// order: the processes before the namespaces.
struct EcmpLab {
    daemons: Vec<Option<Daemon>>,
    birds: Vec<Bird>,
    router_bird: Bird,
    director3: TestNs,
    lab: LbLab,
}

impl EcmpLab {
    fn start() -> Self {
        let lab = LbLab::dr_pair(3).unwrap();
        let director3 = TestNs::new("ecmp-director3").unwrap();
        lab.attach(Segment::RealServers, &director3, "eth0")
            .unwrap();
        director3
            .run("ip", &["addr", "add", "10.0.0.3/24", "dev", "eth0"])
            .unwrap();
        director3
            .run(
                "ip",
                &["route", "add", "default", "via", &ROUTER.to_string()],
            )
            .unwrap();
        let router = lab.router().unwrap();
        // ECMP over addresses and ports: the flows of one client spread too.
        router
            .run("sysctl", &["-qw", "net.ipv4.fib_multipath_hash_policy=1"])
            .unwrap();
        let router_bird = Bird::start(router, &example_file("bird-router.conf")).unwrap();
        let config = read_example("director.yaml");
        let mut birds = Vec::new();
        let mut daemons = Vec::new();
        for d in [lab.director(), lab.director2().unwrap(), &director3] {
            // What the example's README says each director needs.
            d.run("ip", &["addr", "add", &format!("{VIP}/32"), "dev", "lo"])
                .unwrap();
            for key in [
                "net.ipv4.vs.sloppy_tcp=1",
                "net.ipv4.conf.all.arp_ignore=1",
                "net.ipv4.conf.all.arp_announce=2",
            ] {
                d.run("sysctl", &["-qw", key]).unwrap();
            }
            birds.push(Bird::start(d, &example_file("bird-director.conf")).unwrap());
            daemons.push(Some(Daemon::start(d, &config, "info").unwrap()));
        }
        let me = Self {
            daemons,
            birds,
            router_bird,
            director3,
            lab,
        };
        let took = me.wait_route(&DIRECTORS, CONVERGE);
        println!("ecmp: the router's route to {VIP} has the three directors after {took:?}");
        me
    }

    fn director(&self, i: usize) -> &TestNs {
        match i {
            0 => self.lab.director(),
            1 => self.lab.director2().unwrap(),
            _ => &self.director3,
        }
    }

    fn router(&self) -> &TestNs {
        self.lab.router().unwrap()
    }

    /// Everything the processes logged, for a failure message.
    fn logs(&self) -> String {
        let mut s = format!("router BIRD:\n{}", self.router_bird.log());
        for (i, b) in self.birds.iter().enumerate() {
            s.push_str(&format!("director {i} BIRD:\n{}", b.log()));
        }
        for (i, d) in self.daemons.iter().enumerate() {
            if let Some(d) = d {
                s.push_str(&format!("director {i} keepalive-d:\n{}", d.log()));
            }
        }
        s
    }

    /// Waits until the router's route to the VIP goes exactly through `want`.
    fn wait_route(&self, want: &[Ipv4Addr], within: Duration) -> Duration {
        wait_next_hops(self.router(), IpAddr::V4(VIP), want, within)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.logs()))
    }

    /// For each client port, the directors whose IPVS has a connection for it to
    /// `VIP:port`: the director, the real server, and the seconds left before the entry
    /// expires (the entry that the flow's packets refresh has the most; an entry left on
    /// a director the flow moved away from counts down).
    fn connections(&self, port: u16) -> BTreeMap<u16, Vec<(usize, IpAddr, u32)>> {
        let vip = format!("{VIP}:{port}");
        let client = self.lab.client_addr().to_string();
        let mut map: BTreeMap<u16, Vec<(usize, IpAddr, u32)>> = BTreeMap::new();
        for i in 0..3 {
            let text = self
                .director(i)
                .run("ipvsadm", &["-L", "-n", "-c"])
                .unwrap_or_default();
            for line in text.lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() < 6 || f[4] != vip {
                    continue;
                }
                let Some((src, sport)) = f[3].rsplit_once(':') else {
                    continue;
                };
                let (Ok(sport), Some(Ok(dst))) = (
                    sport.parse::<u16>(),
                    f[5].rsplit_once(':').map(|(a, _)| a.parse::<IpAddr>()),
                ) else {
                    continue;
                };
                let expires = f[1]
                    .split_once(':')
                    .and_then(|(m, s)| Some(m.parse::<u32>().ok()? * 60 + s.parse::<u32>().ok()?))
                    .unwrap_or(0);
                if src == client {
                    map.entry(sport).or_default().push((i, dst, expires));
                }
            }
        }
        map
    }
}

/// A long-lived connection to the banner-and-echo service through the VIP.
struct Flow {
    reader: BufReader<TcpStream>,
    port: u16,
    backend: String,
    broken: Option<String>,
}

impl Flow {
    fn ping(&mut self, n: u64) -> Result<(), String> {
        let line = format!("ping {n}\n");
        self.reader
            .get_mut()
            .write_all(line.as_bytes())
            .map_err(|e| format!("send: {e}"))?;
        let mut got = String::new();
        match self.reader.read_line(&mut got) {
            Ok(0) => Err("closed".to_owned()),
            Ok(_) if got == line => Ok(()),
            Ok(_) => Err(format!("answer {got:?}")),
            Err(e) => Err(format!("receive: {e}")),
        }
    }
}

/// `n` flows opened from the client, each pinged every 500 ms by a thread until dropped;
/// a flow whose echo fails once is broken for good.
struct Flows {
    flows: Arc<Mutex<Vec<Flow>>>,
    stop: Arc<AtomicBool>,
    pinger: Option<std::thread::JoinHandle<()>>,
}

impl Flows {
    fn open(lab: &LbLab, n: usize) -> Self {
        let target = sock(VIP, TCP_PORT);
        let flows: Vec<Flow> = lab
            .client()
            .enter(|| {
                (0..n)
                    .map(|_| {
                        let s = TcpStream::connect_timeout(&target, Duration::from_secs(5))
                            .unwrap_or_else(|e| panic!("connect {target}: {e}"));
                        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                        s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
                        let port = s.local_addr().unwrap().port();
                        let mut reader = BufReader::new(s);
                        let mut banner = String::new();
                        reader.read_line(&mut banner).unwrap();
                        Flow {
                            reader,
                            port,
                            backend: banner.trim().to_owned(),
                            broken: None,
                        }
                    })
                    .collect()
            })
            .unwrap();
        let flows = Arc::new(Mutex::new(flows));
        let stop = Arc::new(AtomicBool::new(false));
        let pinger = {
            let (flows, stop) = (flows.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    for f in flows.lock().unwrap().iter_mut() {
                        if f.broken.is_none() {
                            if let Err(e) = f.ping(n) {
                                f.broken = Some(e);
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            })
        };
        Self {
            flows,
            stop,
            pinger: Some(pinger),
        }
    }

    /// Waits for one more full round of pings.
    fn settle(&self) {
        std::thread::sleep(Duration::from_millis(1500));
    }

    /// (client port, backend name, broken) of each flow.
    fn state(&self) -> Vec<(u16, String, Option<String>)> {
        self.flows
            .lock()
            .unwrap()
            .iter()
            .map(|f| (f.port, f.backend.clone(), f.broken.clone()))
            .collect()
    }
}

impl Drop for Flows {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(p) = self.pinger.take() {
            let _ = p.join();
        }
    }
}

/// Which director each flow is on now (the first director with its connection).
fn placement(lab: &EcmpLab, flows: &Flows) -> BTreeMap<u16, usize> {
    let conns = lab.connections(TCP_PORT);
    flows
        .state()
        .iter()
        .filter_map(|(port, _, _)| Some((*port, current(conns.get(port)?)?.0)))
        .collect()
}

/// The entry a flow's packets go through now: the freshest.
fn current(entries: &[(usize, IpAddr, u32)]) -> Option<(usize, IpAddr)> {
    entries
        .iter()
        .max_by_key(|e| e.2)
        .map(|(d, dst, _)| (*d, *dst))
}

/// After `director` left: counts (and prints) the broken flows among those that were on
/// it (they moved) and those that were on the others; checks that each moved flow is now
/// scheduled on a survivor to the same real server it began with. Returns the counts.
fn after_failure(
    lab: &EcmpLab,
    flows: &Flows,
    before: &BTreeMap<u16, usize>,
    director: usize,
    what: &str,
) -> (usize, usize) {
    flows.settle();
    let conns = lab.connections(TCP_PORT);
    let state = flows.state();
    let (mut moved, mut moved_broken, mut stayed, mut stayed_broken) = (0, 0, 0, 0);
    for (port, backend, broken) in &state {
        let was = before.get(port).copied();
        if was == Some(director) {
            moved += 1;
            moved_broken += usize::from(broken.is_some());
            // It is now on a survivor, to its real server (rsN is 10.0.0.(11 + N)).
            let rs: usize = backend.trim_start_matches("rs").parse().unwrap();
            let want = IpAddr::V4(lab.lab.real_server_addr(rs));
            let now = conns.get(port).and_then(|c| current(c));
            let on_survivor = now.is_some_and(|(d, dst)| d != director && dst == want);
            assert!(
                broken.is_some() || on_survivor,
                "{what}: flow {port} ({backend}) answers but is not on a survivor to its real \
                 server: {:?}",
                conns.get(port)
            );
        } else {
            stayed += 1;
            stayed_broken += usize::from(broken.is_some());
        }
    }
    println!(
        "ecmp: {what}: {moved} flows moved to another director, {moved_broken} broken; \
         {stayed} flows on the surviving directors, {stayed_broken} broken"
    );
    let broken: Vec<_> = state.iter().filter(|s| s.2.is_some()).collect();
    assert!(
        moved > 0,
        "{what}: no flow was on director {director}: {before:?}"
    );
    assert_eq!(
        moved_broken + stayed_broken,
        0,
        "{what}: broken flows: {broken:?}"
    );
    (moved_broken, stayed_broken)
}

#[test]
fn example_ecmp_bgp_spreads_flows_and_survives_director_failures() {
    let mut lab = EcmpLab::start();

    // Distribution: 300 new HTTP connections from one client, counted in the directors'
    // connection tables (each stays there for a while after it closed; the kernel's
    // counters are only brought up to date every 2 s).
    let before = lab.connections(HTTP_PORT);
    let spread = lab.lab.client_http(sock(VIP, HTTP_PORT), 300);
    assert_eq!(spread.failures, 0, "{spread}");
    let after = lab.connections(HTTP_PORT);
    // Entries per director (a client port may be used twice: count entries, not ports).
    let count = |conns: &BTreeMap<u16, Vec<(usize, IpAddr, u32)>>| {
        let mut per = [0u64; 3];
        for (d, _, _) in conns.values().flatten() {
            per[*d] += 1;
        }
        per
    };
    let (b, a) = (count(&before), count(&after));
    let per: Vec<u64> = (0..3).map(|i| a[i] - b[i]).collect();
    let (max, min) = (
        per.iter().copied().max().unwrap(),
        per.iter().copied().min().unwrap(),
    );
    println!(
        "ecmp: 300 flows per director {per:?}, max/min {:.2}; per real server {spread}",
        max as f64 / min.max(1) as f64
    );
    assert_eq!(per.iter().sum::<u64>(), 300, "{per:?}");
    // Binomial(300, 1/3): fewer than 50 on one director has a probability below 1e-9.
    assert!(min >= 50, "uneven spread over the directors: {per:?}");

    let flows = Flows::open(&lab.lab, FLOWS);
    flows.settle();
    let placed = placement(&lab, &flows);
    assert_eq!(placed.len(), FLOWS, "{placed:?}");
    let mut on = [0; 3];
    for d in placed.values() {
        on[*d] += 1;
    }
    println!("ecmp: {FLOWS} long-lived flows per director {on:?}");

    // Director 3 sees every real server fail (its health checks are dropped on the way
    // out; the traffic it forwards is not): quorum lost, route withdrawn.
    let t0 = Instant::now();
    lab.director(2)
        .run_with_input(
            "nft",
            &["-f", "-"],
            "table ip ecmp_test {\n chain out {\n  type filter hook output priority 0; policy accept;\n  \
             ip saddr 10.0.0.3 tcp dport { 80, 7000 } drop\n }\n}\n",
        )
        .unwrap();
    lab.wait_route(&DIRECTORS[..2], Duration::from_secs(15));
    let gone = t0.elapsed();
    println!(
        "ecmp: director 3 lost its real servers: out of the router's route {gone:?} after its \
         checks began failing (checks: interval 1s, timeout 500ms, fall 2)"
    );
    // fall x interval + timeout, and the withdrawal itself: well under 6 s.
    assert!(gone < Duration::from_secs(6), "{gone:?}");
    after_failure(&lab, &flows, &placed, 2, "director 3 lost its real servers");

    // Its real servers come back: announced again.
    lab.director(2)
        .run("nft", &["delete", "table", "ip", "ecmp_test"])
        .unwrap();
    lab.wait_route(&DIRECTORS, Duration::from_secs(15));
    flows.settle();
    let placed = placement(&lab, &flows);

    // Director 2's keepalive-d stops (SIGTERM): it withdraws first.
    let t0 = Instant::now();
    let d = lab.daemons[1].take().unwrap();
    let (code, log) = d.stop(Duration::from_secs(20)).unwrap();
    assert_eq!(code, Some(0), "{log}");
    lab.wait_route(&[DIRECTORS[0], DIRECTORS[2]], Duration::from_secs(5));
    let gone = t0.elapsed();
    println!("ecmp: director 2 stopped: out of the router's route {gone:?} after SIGTERM");
    assert!(gone < Duration::from_secs(3), "{gone:?}\n{log}");
    assert!(log.contains("withdrawn: route removed"), "{log}");
    after_failure(&lab, &flows, &placed, 1, "director 2 stopped");
    drop(flows);
    assert_eq!(
        next_hops(lab.router(), IpAddr::V4(VIP)).unwrap().len(),
        2,
        "{}",
        lab.logs()
    );
}

#[test]
fn example_ecmp_bgp_drain_director_breaks_no_flow() {
    let mut lab = EcmpLab::start();
    let flows = Flows::open(&lab.lab, FLOWS);
    flows.settle();
    let placed = placement(&lab, &flows);
    assert_eq!(placed.len(), FLOWS, "{placed:?}");

    let status = |lab: &EcmpLab| {
        let socket = Daemon::control_socket(lab.director(0));
        let exe = ipvs_integration::daemon::keepalive_d_path().unwrap();
        lab.director(0)
            .run(
                &exe.to_string_lossy(),
                &["status", "--control-socket", &socket.to_string_lossy()],
            )
            .unwrap()
    };
    let text = status(&lab);
    assert!(text.contains("announced by BGP: 10.0.0.100"), "{text}");

    // Drain director 1 while the flows go on; it shows drained; undrain it.
    drain_director(&lab);
    let text = status(&lab);
    assert!(text.contains("director drained"), "{text}");
    assert!(!text.contains("announced by BGP"), "{text}");
    let socket = Daemon::control_socket(lab.director(0));
    let exe = ipvs_integration::daemon::keepalive_d_path().unwrap();
    let out = lab
        .director(0)
        .run(
            &exe.to_string_lossy(),
            &[
                "undrain-director",
                "--control-socket",
                &socket.to_string_lossy(),
            ],
        )
        .unwrap();
    assert!(out.contains("announcing 10.0.0.100"), "{out}");
    let back = lab.wait_route(&DIRECTORS, Duration::from_secs(10));
    println!("ecmp: undrain-director: back in the router's route after {back:?}");
    let text = status(&lab);
    assert!(text.contains("announced by BGP: 10.0.0.100"), "{text}");

    // Drained again, then stopped: its services go, no flow notices.
    flows.settle();
    let placed = placement(&lab, &flows);
    assert_eq!(placed.len(), FLOWS, "{placed:?}");
    drain_director(&lab);
    let d = lab.daemons[0].take().unwrap();
    let (code, log) = d.stop(Duration::from_secs(20)).unwrap();
    assert_eq!(code, Some(0), "{log}");
    after_failure(&lab, &flows, &placed, 0, "director 1 drained, then stopped");
}

/// Runs `keepalive-d drain-director` on director 1 while the flows go on: it leaves the
/// router's route at once, and the command ends (exit 0) once no packet came for 3 s.
fn drain_director(lab: &EcmpLab) {
    let t0 = Instant::now();
    let socket = Daemon::control_socket(lab.director(0));
    let exe = ipvs_integration::daemon::keepalive_d_path().unwrap();
    let mut drain = lab
        .director(0)
        .command(&exe.to_string_lossy())
        .args([
            "drain-director",
            "--timeout",
            "60s",
            "--quiet",
            "3s",
            "--control-socket",
        ])
        .arg(&socket)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    lab.wait_route(&DIRECTORS[1..], Duration::from_secs(5));
    println!(
        "ecmp: drain-director: out of the router's route after {:?}",
        t0.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = drain.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "drain-director did not end");
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = drain.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!(
        "ecmp: drain-director ended after {:?}: {stdout}",
        t0.elapsed()
    );
    assert!(
        status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("withdrawn 10.0.0.100"), "{stdout}");
}

/// The same long-lived flows through the VRRP pair of `examples/web-farm-dr` (its
/// shipped files, with the echo service added: `wlc`, no connection sync, no sloppy TCP),
/// for the comparison in BENCHMARKS.md: the Master box fails (daemon killed, link down)
/// and the Backup takes the VIP after the master-down interval; it has no entry for the
/// established flows, so its kernel answers each with a reset: every flow breaks.
#[test]
fn example_ecmp_bgp_compared_with_the_vrrp_pair_failover() {
    use super::example_web_farm_dr::{
        MASTER_DOWN, has_vip, shipped_config, start_pair, wait_until,
    };
    let (lab, a, b) = start_pair();
    let echo = "\n  - name: echo\n    vip: 10.0.0.100:7000\n    scheduler: wlc\n    forward: dr\n    \
                check: { type: tcp, interval: 1s, timeout: 500ms, rise: 1, fall: 2 }\n    \
                real_servers:\n      - { address: 10.0.0.11:7000 }\n      \
                - { address: 10.0.0.12:7000 }\n      - { address: 10.0.0.13:7000 }\n";
    let with_echo = |d: char| shipped_config(d).replace("\n\nipvs:", &format!("{echo}\nipvs:"));
    a.reload(&with_echo('a'), Duration::from_secs(20)).unwrap();
    b.reload(&with_echo('b'), Duration::from_secs(20)).unwrap();
    let d1 = lab.director();
    let d2 = lab.director2().unwrap();
    let echo_dests = |ns: &TestNs| {
        ns.run("ipvsadm", &["-S", "-n"])
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("-a -t 10.0.0.100:7000 -r "))
            .count()
    };
    wait_until(
        "both tables have the echo service",
        Duration::from_secs(20),
        || echo_dests(d1) == 3 && echo_dests(d2) == 3,
    );
    let flows = Flows::open(&lab, FLOWS);
    flows.settle();
    assert!(
        flows.state().iter().all(|f| f.2.is_none()),
        "{:?}",
        flows.state()
    );

    let log_a = a.kill();
    d1.run("ip", &["link", "set", "eth0", "down"]).unwrap();
    let took = wait_until("director b takes the VIP", Duration::from_secs(10), || {
        has_vip(&lab, d2)
    });
    flows.settle();
    let broken = flows.state().iter().filter(|f| f.2.is_some()).count();
    println!(
        "ecmp: VRRP pair for comparison: the Backup held the VIP {took:?} after the Master failed \
         (master-down interval {MASTER_DOWN:?}); {broken} of {FLOWS} long-lived flows broken"
    );
    assert_eq!(broken, FLOWS, "{:?}\n{log_a}\n{}", flows.state(), b.log());
    drop(flows);
    drop(b);
}
