//! `check-bench`: health checks at scale, keepalived against keepalive-d, in one run.
//!
//! N real servers (distinct addresses 127.0.x.y:80, all served by one accept-and-close
//! listener thread in a fresh network namespace) behind N/100 NAT virtual servers, a TCP
//! check every second on each. Each daemon runs in turn, in the foreground, for `--secs`:
//! its CPU time (every process, children included) and peak RSS are sampled from /proc,
//! its real check rate is counted at the listener, and the kernel table is read at the
//! end. Then a few real servers are made to fail (a `prohibit` route: connect fails at
//! once with EACCES) and the time until the daemon removes them from the kernel table is
//! measured against fall x interval. Needs root and IPVS: run it in the lab (see
//! BENCHMARKS.md for the command and the results).

use clap::Parser;
use ipvs_integration::netns::TestNs;
use ipvs_sys::transport::IpvsSocket;
use ipvs_sys::{Protocol, ServiceAttrs};
use netlink_sys::{Socket, SocketAddr as NlAddr, protocols::NETLINK_ROUTE};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    about = "TCP health checks at scale: keepalived vs keepalive-d, CPU, memory, \
                   check rate and convergence"
)]
struct Args {
    /// Real servers (distinct addresses 127.0.x.y:80), each checked every second.
    #[arg(long, default_value_t = 2000)]
    servers: u32,
    /// Real servers per virtual server (192.0.2.1:80, 192.0.2.2:80, ...).
    #[arg(long, default_value_t = 100)]
    per_service: u32,
    /// Seconds each daemon runs before it is measured (and stopped).
    #[arg(long, default_value_t = 60)]
    secs: u64,
    /// Seconds from the daemon's start left out of the steady-state rates.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Real servers made to fail for the convergence measurement (0: skip it).
    #[arg(long, default_value_t = 10)]
    fail: u32,
    /// Failed probes before a server is removed: keepalive-d `fall`, keepalived
    /// `retry` = fall - 1 with `delay_before_retry` = the interval.
    #[arg(long, default_value_t = 3)]
    fall: u32,
    /// keepalive-d binary (default: `keepalive-d` next to this binary).
    #[arg(long, value_name = "PATH")]
    keepalive_d: Option<PathBuf>,
    /// keepalived binary.
    #[arg(long, value_name = "PATH", default_value = "keepalived")]
    keepalived: PathBuf,
    /// Which daemons to run, in this order.
    #[arg(long, value_delimiter = ',', default_value = "keepalived,keepalive-d")]
    daemons: Vec<String>,
}

type BoxError = Box<dyn std::error::Error>;

/// The check interval (both daemons), and the poll period of the convergence phase.
const INTERVAL: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(20);

fn main() -> Result<(), BoxError> {
    let a = Args::parse();
    if a.servers == 0 || a.per_service == 0 || a.servers > 250 * 254 {
        return Err("--servers must be 1..=63500 and --per-service at least 1".into());
    }
    if a.servers.div_ceil(a.per_service) > 254 {
        return Err("at most 254 virtual servers: raise --per-service".into());
    }
    if a.warmup >= a.secs {
        return Err("--warmup must be shorter than --secs".into());
    }
    let kad = match &a.keepalive_d {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or("no directory above this binary")?
            .join("keepalive-d"),
    };
    raise_nofile()?;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let layout = Layout::new(&a);
    println!(
        "# check-bench: {} real servers in {} virtual servers, TCP check every {} s, {} s \
         per daemon (warm-up {} s), kernel {}, {cpus} CPUs",
        a.servers,
        layout.services,
        INTERVAL.as_secs(),
        a.secs,
        a.warmup,
        kernel.trim()
    );

    let work = std::env::temp_dir().join(format!("check-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let ns = TestNs::new("check-bench")?;
    let listener = Listener::start(&ns)?;
    let mut results = Vec::new();
    for name in &a.daemons {
        let daemon = match name.as_str() {
            "keepalived" => Daemon::Keepalived(a.keepalived.clone()),
            "keepalive-d" => Daemon::KeepaliveD(kad.clone()),
            other => return Err(format!("unknown daemon {other:?}").into()),
        };
        let r = run_daemon(&a, &layout, &ns, &listener, &daemon, &work)?;
        ns.run("ipvsadm", &["-C"])?;
        results.push(r);
    }
    let listener_total = listener.stop();
    eprintln!("listener: {listener_total} connections accepted in all");
    drop(ns);
    let _ = std::fs::remove_dir_all(&work);

    print!("{}", report(&a, &layout, &results)?);
    Ok(())
}

/// Where the services and real servers are.
struct Layout {
    services: u32,
    per_service: u32,
    servers: u32,
    /// Indexes of the servers made to fail.
    failed: Vec<u32>,
}

impl Layout {
    fn new(a: &Args) -> Self {
        let services = a.servers.div_ceil(a.per_service);
        // Spread the failures over (up to) two services, from their first servers.
        let spread = services.min(2);
        let failed = (0..a.fail.min(a.servers))
            .map(|k| (k % spread) * a.per_service + k / spread)
            .filter(|&i| i < a.servers)
            .collect();
        Self {
            services,
            per_service: a.per_service,
            servers: a.servers,
            failed,
        }
    }

    fn vip(v: u32) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1 + v as u8), 80)
    }

    fn rip(i: u32) -> SocketAddrV4 {
        SocketAddrV4::new(
            Ipv4Addr::new(127, 0, 1 + (i / 250) as u8, 1 + (i % 250) as u8),
            80,
        )
    }

    /// The servers of service `v`.
    fn members(&self, v: u32) -> std::ops::Range<u32> {
        v * self.per_service..((v + 1) * self.per_service).min(self.servers)
    }

    fn keepalived_conf(&self, fall: u32) -> String {
        let mut s = String::from("global_defs {\n    router_id check_bench\n}\n\n");
        for v in 0..self.services {
            let vip = Self::vip(v);
            let _ = writeln!(s, "virtual_server {} {} {{", vip.ip(), vip.port());
            s.push_str("    delay_loop 1\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n");
            for i in self.members(v) {
                let rip = Self::rip(i);
                let _ = writeln!(s, "    real_server {} {} {{", rip.ip(), rip.port());
                let _ = writeln!(
                    s,
                    "        weight 1\n        TCP_CHECK {{\n            connect_timeout 1\n            \
                     retry {}\n            delay_before_retry 1\n        }}\n    }}",
                    fall - 1
                );
            }
            s.push_str("}\n");
        }
        s
    }

    fn keepalive_d_yaml(&self, fall: u32) -> String {
        let mut s = String::from("virtual_servers:\n");
        for v in 0..self.services {
            let _ = writeln!(
                s,
                "  - name: vs{v}\n    vip: {}\n    protocol: tcp\n    scheduler: rr\n    \
                 forward: nat\n    check: {{ type: tcp, interval: 1s, timeout: 1s, rise: 1, \
                 fall: {fall} }}\n    real_servers:",
                Self::vip(v)
            );
            for i in self.members(v) {
                let _ = writeln!(s, "      - {{ address: {}, weight: 1 }}", Self::rip(i));
            }
        }
        s
    }
}

enum Daemon {
    Keepalived(PathBuf),
    KeepaliveD(PathBuf),
}

impl Daemon {
    fn name(&self) -> &'static str {
        match self {
            Daemon::Keepalived(_) => "keepalived",
            Daemon::KeepaliveD(_) => "keepalive-d",
        }
    }

    fn version(&self) -> String {
        let (Daemon::Keepalived(path) | Daemon::KeepaliveD(path)) = self;
        std::process::Command::new(path)
            .arg("--version")
            .output()
            .map(|o| {
                let text = [o.stdout, o.stderr].concat();
                String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .unwrap_or("?")
                    .trim()
                    .to_string()
            })
            .unwrap_or_else(|e| format!("? ({e})"))
    }

    /// Writes the configuration and starts the daemon in `ns`, output to `log`.
    fn spawn(
        &self,
        a: &Args,
        layout: &Layout,
        ns: &TestNs,
        work: &Path,
        log: &Path,
    ) -> Result<Child, BoxError> {
        let out = std::fs::File::create(log)?;
        let err = out.try_clone()?;
        let mut cmd = match self {
            Daemon::Keepalived(path) => {
                let conf = work.join("keepalived.conf");
                std::fs::write(&conf, layout.keepalived_conf(a.fall))?;
                let mut c = ns.command(&path.display().to_string());
                // Checker only, foreground, log to the console only (no syslog: there is
                // no syslog daemon in the VM, and keepalive-d logs to stderr only).
                c.args(["-C", "-n", "-l", "-D", "-G", "-f"])
                    .arg(&conf)
                    .arg("-p")
                    .arg(work.join("keepalived.pid"))
                    .arg("-c")
                    .arg(work.join("checkers.pid"));
                c
            }
            Daemon::KeepaliveD(path) => {
                let conf = work.join("keepalive-d.yaml");
                std::fs::write(&conf, layout.keepalive_d_yaml(a.fall))?;
                let mut c = ns.command(&path.display().to_string());
                c.arg("run").arg("-c").arg(&conf);
                c
            }
        };
        Ok(cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("{}: {e}", self.name()))?)
    }
}

/// What one daemon did.
struct RunResult {
    name: &'static str,
    version: String,
    /// (pid, command name, CPU ticks, VmHWM KiB) of each process seen.
    procs: Vec<(i32, String, u64, u64)>,
    cpu_total: f64,
    cpu_window: f64,
    hwm_kib: u64,
    pss_kib: u64,
    window: f64,
    accepts: u64,
    per_second: Vec<u64>,
    active_opens: u64,
    listen_overflows: u64,
    listener_cpu: f64,
    vm_busy: f64,
    full_at: Option<f64>,
    services_end: usize,
    dests_end: usize,
    conv: Convergence,
    stop: f64,
    left_after_stop: usize,
    log_lines: usize,
}

fn run_daemon(
    a: &Args,
    layout: &Layout,
    ns: &TestNs,
    listener: &Listener,
    daemon: &Daemon,
    work: &Path,
) -> Result<RunResult, BoxError> {
    let name = daemon.name();
    let version = daemon.version();
    eprintln!("== {name} ({version})");
    let log = work.join(format!("{name}.log"));
    let mut ipvs = IpvsSocket::open_in_netns(format!("/run/netns/{}", ns.name()))?;
    ipvs.set_timeout(Duration::from_secs(60));
    let tck = clock_ticks();

    let mut child = daemon.spawn(a, layout, ns, work, &log)?;
    let root = i32::try_from(child.id())?;
    let t0 = Instant::now();
    let result = measure(
        a, layout, ns, listener, &mut ipvs, root, t0, tck, &mut child,
    );
    // Stop it (SIGTERM, then SIGKILL after 60 s), whatever happened.
    let tree = descendants(root);
    let ts = Instant::now();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(root),
        nix::sys::signal::Signal::SIGTERM,
    );
    let mut exited = false;
    while ts.elapsed() < Duration::from_secs(60) {
        if child.try_wait()?.is_some() {
            exited = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let stop = ts.elapsed().as_secs_f64();
    if !exited {
        eprintln!("{name}: no exit 60 s after SIGTERM: SIGKILL");
        let _ = child.kill();
        let _ = child.wait();
    }
    // Children of ours that outlived their parent (by PID, only those we saw).
    for pid in tree.into_iter().filter(|&p| p != root) {
        if std::fs::metadata(format!("/proc/{pid}")).is_ok() {
            eprintln!("{name}: process {pid} outlived the daemon: SIGKILL");
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let left_after_stop = table(&mut ipvs)?.1;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let log_lines = text.lines().count();
    let mut r = match result {
        Ok(r) => r,
        Err(e) => {
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            eprintln!("{name} log (last lines, newest first):");
            for l in tail {
                eprintln!("  {l}");
            }
            return Err(format!("{name}: {e}").into());
        }
    };
    if !exited {
        eprintln!("{name} log (last lines):\n{}", last_lines(&text, 20));
    }
    r.name = name;
    r.version = version;
    r.stop = stop;
    r.left_after_stop = left_after_stop;
    r.log_lines = log_lines;
    eprintln!(
        "{name}: stopped in {stop:.2} s; {log_lines} log lines; {left_after_stop} \
         destinations left in the table"
    );
    Ok(r)
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A point-in-time view for the steady-state window.
struct Mark {
    accepts: u64,
    listener_ticks: u64,
    cpu: (u64, u64),
    snmp: TcpCounters,
}

#[allow(clippy::too_many_arguments)]
fn measure(
    a: &Args,
    layout: &Layout,
    ns: &TestNs,
    listener: &Listener,
    ipvs: &mut IpvsSocket,
    root: i32,
    t0: Instant,
    tck: f64,
    child: &mut Child,
) -> Result<RunResult, BoxError> {
    let name_of = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    // Per process: the latest CPU ticks (utime+stime+cutime+cstime), the ticks at the
    // start of the window, the latest VmHWM.
    let mut seen: BTreeMap<i32, (u64, Option<u64>, u64, String)> = BTreeMap::new();
    let mut per_second = Vec::new();
    let mut last_accepts = listener.count();
    let mut start_mark: Option<(Instant, Mark)> = None;
    let mut full_at = None;
    let want = (layout.services as usize, layout.servers as usize);
    for k in 1..=a.secs {
        sleep_until(t0 + Duration::from_secs(k));
        if let Some(status) = child.try_wait()? {
            return Err(format!("exited after {k} s: {status}").into());
        }
        for pid in descendants(root) {
            if let Some(ticks) = proc_ticks(pid) {
                let hwm = proc_kib(pid, "status", "VmHWM:").unwrap_or(0);
                let e = seen.entry(pid).or_insert((0, None, 0, name_of(pid)));
                e.0 = ticks;
                e.2 = hwm;
            }
        }
        let accepts = listener.count();
        per_second.push(accepts - last_accepts);
        last_accepts = accepts;
        let cpu_now: u64 = seen.values().map(|e| e.0).sum();
        if k == a.warmup {
            for e in seen.values_mut() {
                e.1 = Some(e.0);
            }
            start_mark = Some((
                Instant::now(),
                Mark {
                    accepts,
                    listener_ticks: listener.ticks(),
                    cpu: vm_cpu()?,
                    snmp: tcp_counters(ns)?,
                },
            ));
        }
        if full_at.is_none() {
            let (s, d) = table(ipvs)?;
            if (s, d) == want {
                full_at = Some(t0.elapsed().as_secs_f64());
            }
        }
        eprintln!(
            "  t={k:>3} s  checks accepted {:>6}/s  daemon CPU {:>7.2} s{}",
            per_second.last().copied().unwrap_or(0),
            cpu_now as f64 / tck,
            if full_at.is_some() {
                ""
            } else {
                "  (table not full yet)"
            }
        );
    }
    let end = Mark {
        accepts: listener.count(),
        listener_ticks: listener.ticks(),
        cpu: vm_cpu()?,
        snmp: tcp_counters(ns)?,
    };
    let t_end = Instant::now();
    let pss_kib = descendants(root)
        .into_iter()
        .filter_map(|p| proc_kib(p, "smaps_rollup", "Pss:"))
        .sum();
    let (services_end, dests_end) = table(ipvs)?;
    let (t_start, start) = start_mark.ok_or("no warm-up mark")?;
    let window = t_end.duration_since(t_start).as_secs_f64();
    let cpu_total = seen.values().map(|e| e.0).sum::<u64>() as f64 / tck;
    let cpu_window = seen.values().map(|e| e.0 - e.1.unwrap_or(0)).sum::<u64>() as f64 / tck;
    let hwm_kib = seen.values().map(|e| e.2).sum();
    let procs = seen
        .iter()
        .map(|(pid, e)| (*pid, e.3.clone(), e.0, e.2))
        .collect();
    let busy = (end.cpu.0 - start.cpu.0) as f64;
    let total = (end.cpu.1 - start.cpu.1) as f64;
    eprintln!(
        "  table at {} s: {services_end} services, {dests_end} destinations",
        a.secs
    );

    // Convergence: the failed servers must leave the table, the others stay.
    let conv = if layout.failed.is_empty() {
        Convergence::default()
    } else {
        convergence(a, layout, ns, ipvs)?
    };
    if let Some(status) = child.try_wait()? {
        return Err(format!("exited during the convergence phase: {status}").into());
    }
    Ok(RunResult {
        name: "",
        version: String::new(),
        procs,
        cpu_total,
        cpu_window,
        hwm_kib,
        pss_kib,
        window,
        accepts: end.accepts - start.accepts,
        per_second,
        active_opens: end.snmp.active_opens - start.snmp.active_opens,
        listen_overflows: end.snmp.listen_overflows - start.snmp.listen_overflows,
        listener_cpu: (end.listener_ticks - start.listener_ticks) as f64 / tck,
        vm_busy: if total > 0.0 { busy / total } else { 0.0 },
        full_at,
        services_end,
        dests_end,
        conv,
        stop: 0.0,
        left_after_stop: 0,
        log_lines: 0,
    })
}

/// Fails `layout.failed` (prohibit routes), polls the kernel table every 20 ms until
/// they are all gone, then deletes the routes and polls until they are all back.
/// Returns the removal times, the number of other servers of those services that went
/// missing meanwhile, and the recovery times (seconds; `None`: not within the deadline).
fn convergence(
    a: &Args,
    layout: &Layout,
    ns: &TestNs,
    ipvs: &mut IpvsSocket,
) -> Result<Convergence, BoxError> {
    let per = layout.per_service;
    let services: BTreeSet<u32> = layout.failed.iter().map(|i| i / per).collect();
    let failed: Vec<SocketAddr> = layout
        .failed
        .iter()
        .map(|&i| SocketAddr::V4(Layout::rip(i)))
        .collect();
    let others: BTreeSet<SocketAddr> = services
        .iter()
        .flat_map(|&v| layout.members(v))
        .map(|i| SocketAddr::V4(Layout::rip(i)))
        .filter(|s| !failed.contains(s))
        .collect();
    let keys: Vec<ServiceAttrs> = services
        .iter()
        .map(|&v| ServiceAttrs::addr_key(Protocol::TCP, SocketAddr::V4(Layout::vip(v))))
        .collect();
    let mut present = |ipvs: &mut IpvsSocket| -> Result<BTreeSet<SocketAddr>, BoxError> {
        let mut set = BTreeSet::new();
        for k in &keys {
            for d in ipvs.destinations(k)? {
                if let (Some(ip), Some(port)) = (d.addr, d.port) {
                    set.insert(SocketAddr::new(ip, port));
                }
            }
        }
        Ok(set)
    };
    let before = present(ipvs)?;
    if let Some(missing) = failed.iter().find(|s| !before.contains(s)) {
        return Err(format!("{missing} is not in the table before it fails").into());
    }
    let addrs: Vec<Ipv4Addr> = layout
        .failed
        .iter()
        .map(|&i| *Layout::rip(i).ip())
        .collect();
    let bound = INTERVAL * a.fall;
    let deadline = bound * 3 + Duration::from_secs(10);

    let poll =
        |ipvs: &mut IpvsSocket,
         t0: Instant,
         gone: bool,
         present: &mut dyn FnMut(&mut IpvsSocket) -> Result<BTreeSet<SocketAddr>, BoxError>,
         lost: &mut BTreeSet<SocketAddr>|
         -> Result<Vec<Option<f64>>, BoxError> {
            let mut times: Vec<Option<f64>> = vec![None; failed.len()];
            let mut tick = t0;
            while t0.elapsed() < deadline && times.iter().any(Option::is_none) {
                tick += POLL;
                sleep_until(tick);
                let set = present(ipvs)?;
                let now = t0.elapsed().as_secs_f64();
                for (t, s) in times.iter_mut().zip(&failed) {
                    if t.is_none() && set.contains(s) != gone {
                        *t = Some(now);
                    }
                }
                lost.extend(others.iter().filter(|s| !set.contains(s)).copied());
            }
            Ok(times)
        };
    let mut lost = BTreeSet::new();
    prohibit(ns, &addrs, true)?;
    let t_fail = Instant::now();
    let removal = poll(ipvs, t_fail, true, &mut present, &mut lost)?;
    prohibit(ns, &addrs, false)?;
    let t_back = Instant::now();
    let recovery = poll(ipvs, t_back, false, &mut present, &mut lost)?;
    let fmt = |v: &[Option<f64>]| {
        v.iter()
            .map(|t| t.map_or("-".to_string(), |t| format!("{t:.2}")))
            .collect::<Vec<_>>()
            .join(" ")
    };
    eprintln!(
        "  {} servers failed at once: removed after [{}] s (fall x interval = {} s); back \
         after [{}] s; other servers of those services missing meanwhile: {}",
        failed.len(),
        fmt(&removal),
        bound.as_secs(),
        fmt(&recovery),
        lost.len()
    );
    Ok(Convergence {
        removal,
        others_lost: lost.len(),
        recovery,
    })
}

/// Seconds from the failure to each failed server's removal, and from the repair to its
/// return (`None`: not within the deadline); healthy servers lost meanwhile.
#[derive(Default)]
struct Convergence {
    removal: Vec<Option<f64>>,
    others_lost: usize,
    recovery: Vec<Option<f64>>,
}

/// Adds (or deletes) `prohibit` routes for `addrs` in the local table of `ns`: a connect
/// to them then fails at once with EACCES, as for a server that refuses connections.
fn prohibit(ns: &TestNs, addrs: &[Ipv4Addr], add: bool) -> Result<(), BoxError> {
    const RTM_NEWROUTE: u16 = 24;
    const RTM_DELROUTE: u16 = 25;
    const NLM_F_REQUEST: u16 = 1;
    const NLM_F_ACK: u16 = 4;
    const NLM_F_EXCL: u16 = 0x200;
    const NLM_F_CREATE: u16 = 0x400;
    const RT_TABLE_LOCAL: u8 = 255;
    const RTPROT_STATIC: u8 = 4;
    const RTN_PROHIBIT: u8 = 8;
    const RTA_DST: u16 = 1;
    let sock = ns.enter(|| -> Result<Socket, std::io::Error> {
        let mut s = Socket::new(NETLINK_ROUTE)?;
        s.bind_auto()?;
        s.connect(&NlAddr::new(0, 0))?;
        Ok(s)
    })??;
    let mut buf = Vec::new();
    for (seq, ip) in addrs.iter().enumerate() {
        let (kind, flags) = if add {
            (
                RTM_NEWROUTE,
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            )
        } else {
            (RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK)
        };
        buf.extend_from_slice(&36u32.to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&(seq as u32 + 1).to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
        buf.extend_from_slice(&[
            libc::AF_INET as u8,
            32,
            0,
            0,
            RT_TABLE_LOCAL,
            RTPROT_STATIC,
            0,
            RTN_PROHIBIT,
        ]);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&8u16.to_ne_bytes());
        buf.extend_from_slice(&RTA_DST.to_ne_bytes());
        buf.extend_from_slice(&ip.octets());
    }
    sock.send(&buf, 0)?;
    let mut rbuf = vec![0u8; 64 * 1024];
    let mut acks = 0;
    while acks < addrs.len() {
        let n = sock.recv(&mut &mut rbuf[..], 0)?;
        let mut pos = 0;
        while pos + 20 <= n {
            let len = u32::from_ne_bytes(rbuf[pos..pos + 4].try_into()?) as usize;
            let kind = u16::from_ne_bytes(rbuf[pos + 4..pos + 6].try_into()?);
            if kind == 2 {
                let err = i32::from_ne_bytes(rbuf[pos + 16..pos + 20].try_into()?);
                if err != 0 {
                    return Err(format!(
                        "{} prohibit route: {}",
                        if add { "add" } else { "delete" },
                        std::io::Error::from_raw_os_error(-err)
                    )
                    .into());
                }
                acks += 1;
            }
            pos += len.max(16).next_multiple_of(4);
        }
    }
    Ok(())
}

/// The listener of every real server: one thread that accepts and closes, and counts.
struct Listener {
    count: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    tid: Arc<AtomicI32>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    fn start(ns: &TestNs) -> Result<Self, BoxError> {
        let sock = ns.enter(|| -> Result<socket2::Socket, String> {
            // A deep accept queue: a listener that falls behind must not drop handshakes
            // (the counter would then undercount, and the checks would fail).
            for (key, value) in [
                ("net/core/somaxconn", "65535"),
                ("net/ipv4/tcp_max_syn_backlog", "65535"),
            ] {
                std::fs::write(format!("/proc/sys/{key}"), value)
                    .map_err(|e| format!("{key}: {e}"))?;
            }
            let listen = || -> std::io::Result<socket2::Socket> {
                let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
                s.set_reuse_address(true)?;
                s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 80)).into())?;
                s.listen(65535)?;
                // accept() wakes up at least every 100 ms, to see the stop flag.
                s.set_read_timeout(Some(Duration::from_millis(100)))?;
                Ok(s)
            };
            listen().map_err(|e| format!("listen on 0.0.0.0:80: {e}"))
        })??;
        let count = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let tid = Arc::new(AtomicI32::new(0));
        let thread = {
            let (count, stop, tid) = (count.clone(), stop.clone(), tid.clone());
            std::thread::Builder::new()
                .name("listener".into())
                .spawn(move || {
                    tid.store(nix::unistd::gettid().as_raw(), Ordering::Relaxed);
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok((conn, _)) = sock.accept_raw() {
                            drop(conn);
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })?
        };
        Ok(Self {
            count,
            stop,
            tid,
            thread: Some(thread),
        })
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// CPU ticks of the listener thread.
    fn ticks(&self) -> u64 {
        let tid = self.tid.load(Ordering::Relaxed);
        std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
            .ok()
            .and_then(|s| stat_fields(&s).map(|f| f.1))
            .unwrap_or(0)
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.count()
    }
}

/// (services, destinations) in the kernel table.
fn table(ipvs: &mut IpvsSocket) -> Result<(usize, usize), BoxError> {
    let services = ipvs.services()?;
    let mut dests = 0;
    for s in &services {
        dests += ipvs.destinations(s)?.len();
    }
    Ok((services.len(), dests))
}

/// `pid` and every process below it.
fn descendants(root: i32) -> Vec<i32> {
    let mut parent = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if let Some((ppid, _)) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| stat_fields(&s))
            {
                parent.push((pid, ppid));
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parent.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out
}

/// From /proc/PID/stat: (ppid, utime + stime + cutime + cstime) in clock ticks.
fn stat_fields(stat: &str) -> Option<(i32, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command name: state (3), ppid (4), ..., utime (14), stime (15),
    // cutime (16), cstime (17); f[0] is field 3.
    let ppid = f.get(1)?.parse().ok()?;
    let mut ticks = 0u64;
    for i in 11..=14 {
        ticks += f.get(i)?.parse::<i64>().ok()?.max(0) as u64;
    }
    Some((ppid, ticks))
}

fn proc_ticks(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_fields(&s).map(|f| f.1)
}

/// A `KEY:  N kB` line of /proc/PID/FILE, in KiB.
fn proc_kib(pid: i32, file: &str, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn clock_ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |t| t as f64)
}

/// The whole VM's (busy, total) CPU time from /proc/stat, in ticks.
fn vm_cpu() -> Result<(u64, u64), BoxError> {
    let s = std::fs::read_to_string("/proc/stat")?;
    let line = s.lines().next().ok_or("empty /proc/stat")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Ok((total - idle, total))
}

#[derive(Default)]
struct TcpCounters {
    active_opens: u64,
    listen_overflows: u64,
}

/// TCP counters of the namespace (/proc/net/snmp and /proc/net/netstat).
fn tcp_counters(ns: &TestNs) -> Result<TcpCounters, BoxError> {
    let (snmp, netstat) = ns.enter(|| {
        (
            std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap_or_default(),
            std::fs::read_to_string("/proc/thread-self/net/netstat").unwrap_or_default(),
        )
    })?;
    let field = |text: &str, prefix: &str, name: &str| -> u64 {
        let mut rows = text.lines().filter(|l| l.starts_with(prefix));
        let (Some(names), Some(values)) = (rows.next(), rows.next()) else {
            return 0;
        };
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(TcpCounters {
        active_opens: field(&snmp, "Tcp:", "ActiveOpens"),
        listen_overflows: field(&netstat, "TcpExt:", "ListenOverflows")
            + field(&netstat, "TcpExt:", "ListenDrops"),
    })
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// Raises the open-file limit (inherited by the daemons) to its hard maximum, at least
/// 65536 when root may.
fn raise_nofile() -> Result<(), BoxError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by reference.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        let want = lim.rlim_max.max(65536);
        let new = libc::rlimit {
            rlim_cur: want,
            rlim_max: want,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &new) != 0 {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error().into());
            }
        }
    }
    Ok(())
}

fn report(a: &Args, layout: &Layout, rs: &[RunResult]) -> Result<String, BoxError> {
    let mut out = String::new();
    let head: Vec<String> = rs
        .iter()
        .map(|r| format!("{} ({})", r.name, r.version))
        .collect();
    let ratio = rs.len() == 2;
    let w = a.secs - a.warmup;
    writeln!(out)?;
    writeln!(
        out,
        "| {} real servers, TCP check every 1 s, {} s | {} |{}",
        a.servers,
        a.secs,
        head.join(" | "),
        if ratio {
            format!(" {} / {} |", rs[1].name, rs[0].name)
        } else {
            String::new()
        }
    )?;
    writeln!(
        out,
        "|---|{}{}",
        "---|".repeat(rs.len()),
        if ratio { "---|" } else { "" }
    )?;
    let mut row = |label: &str, f: &dyn Fn(&RunResult) -> f64, fmt: &dyn Fn(f64) -> String| {
        let vals: Vec<f64> = rs.iter().map(f).collect();
        let cells: Vec<String> = vals.iter().map(|v| fmt(*v)).collect();
        let r = if ratio {
            format!(" {:.2}x |", vals[1] / vals[0].max(1e-9))
        } else {
            String::new()
        };
        let _ = writeln!(out, "| {label} | {} |{r}", cells.join(" | "));
    };
    let f2 = |v: f64| format!("{v:.2}");
    let f1 = |v: f64| format!("{v:.1}");
    row(
        &format!("CPU s, whole run (0-{} s, start-up included)", a.secs),
        &|r| r.cpu_total,
        &f2,
    );
    row(
        &format!("CPU s, steady state ({}-{} s)", a.warmup, a.secs),
        &|r| r.cpu_window,
        &f2,
    );
    row(
        "CPU ms per 1,000 checks (steady state)",
        &|r| r.cpu_window * 1e6 / (r.accepts.max(1) as f64),
        &f1,
    );
    row(
        "peak RSS, MiB (VmHWM summed over the processes)",
        &|r| r.hwm_kib as f64 / 1024.0,
        &f1,
    );
    row(
        &format!("PSS at {} s, MiB (shared pages counted once)", a.secs),
        &|r| r.pss_kib as f64 / 1024.0,
        &f1,
    );
    row(
        &format!(
            "checks/s accepted by the listener ({}-{} s)",
            a.warmup, a.secs
        ),
        &|r| r.accepts as f64 / r.window,
        &f1,
    );
    row(
        "connection attempts/s (TCP ActiveOpens)",
        &|r| r.active_opens as f64 / r.window,
        &f1,
    );
    row(
        "slowest 1-s interval after warm-up, checks",
        &|r| {
            r.per_second
                .iter()
                .skip(a.warmup as usize)
                .copied()
                .min()
                .unwrap_or(0) as f64
        },
        &|v| format!("{v:.0}"),
    );
    row(
        &format!("services in the kernel table at {} s", a.secs),
        &|r| r.services_end as f64,
        &|v| format!("{v:.0} / {}", layout.services),
    );
    row(
        &format!("destinations in the kernel table at {} s", a.secs),
        &|r| r.dests_end as f64,
        &|v| format!("{v:.0} / {}", layout.servers),
    );
    row(
        "all destinations in the table after, s",
        &|r| r.full_at.unwrap_or(f64::NAN),
        &f1,
    );
    row(
        "listener thread CPU s (the benchmark's own, same window)",
        &|r| r.listener_cpu,
        &f2,
    );
    row(
        &format!("whole VM CPU busy ({w} s window)"),
        &|r| r.vm_busy * 100.0,
        &|v| format!("{v:.0}%"),
    );
    let _ = listener_overflows_row(&mut out, rs);
    if !layout.failed.is_empty() {
        let n = layout.failed.len();
        let bound = a.fall as f64 * INTERVAL.as_secs_f64();
        writeln!(out)?;
        writeln!(
            out,
            "| {n} of {} real servers fail at once (connect: EACCES) | fall x interval | {} |",
            layout.servers,
            rs.iter()
                .map(|r| match r.name {
                    "keepalived" =>
                        format!("keepalived (retry {}, delay_before_retry 1)", a.fall - 1),
                    _ => format!("keepalive-d (fall {})", a.fall),
                })
                .collect::<Vec<_>>()
                .join(" | ")
        )?;
        writeln!(out, "|---|---|{}", "---|".repeat(rs.len()))?;
        let stat = |v: &[Option<f64>], q: f64| -> String {
            let mut t: Vec<f64> = v.iter().flatten().copied().collect();
            if t.len() < v.len() {
                return format!(
                    "{} of {} not within the deadline",
                    v.len() - t.len(),
                    v.len()
                );
            }
            t.sort_by(f64::total_cmp);
            let i = ((t.len() - 1) as f64 * q).round() as usize;
            format!("{:.2} s", t[i])
        };
        for (label, q) in [
            ("first removed", 0.0),
            ("median", 0.5),
            ("last removed (all gone)", 1.0),
        ] {
            let cells: Vec<String> = rs.iter().map(|r| stat(&r.conv.removal, q)).collect();
            writeln!(out, "| {label} | {bound:.1} s | {} |", cells.join(" | "))?;
        }
        let cells: Vec<String> = rs.iter().map(|r| r.conv.others_lost.to_string()).collect();
        writeln!(
            out,
            "| healthy servers of those services missing meanwhile | 0 | {} |",
            cells.join(" | ")
        )?;
        let cells: Vec<String> = rs.iter().map(|r| stat(&r.conv.recovery, 1.0)).collect();
        writeln!(
            out,
            "| routes deleted: all back in the table after | rise 1 x interval | {} |",
            cells.join(" | ")
        )?;
    }
    writeln!(out)?;
    for r in rs {
        let procs: Vec<String> = r
            .procs
            .iter()
            .map(|(pid, comm, ticks, hwm)| {
                format!(
                    "{comm}[{pid}] {:.2} s CPU, VmHWM {:.1} MiB",
                    *ticks as f64 / clock_ticks(),
                    *hwm as f64 / 1024.0
                )
            })
            .collect();
        writeln!(
            out,
            "- {}: {}; stop (SIGTERM to exit) {:.2} s, {} destinations left after; {} log lines",
            r.name,
            procs.join("; "),
            r.stop,
            r.left_after_stop,
            r.log_lines
        )?;
    }
    let argv: Vec<String> = std::env::args().collect();
    writeln!(out)?;
    writeln!(out, "Reproduce:")?;
    writeln!(out)?;
    writeln!(out, "```sh")?;
    writeln!(
        out,
        "cargo build --release -p ipvs-integration --bin check-bench -p keepalive-d"
    )?;
    writeln!(out, "cargo lab run -- {}", argv.join(" "))?;
    writeln!(out, "```")?;
    Ok(out)
}

fn listener_overflows_row(out: &mut String, rs: &[RunResult]) -> std::fmt::Result {
    let cells: Vec<String> = rs.iter().map(|r| r.listen_overflows.to_string()).collect();
    writeln!(
        out,
        "| listen queue overflows and drops (should be 0) | {} |{}",
        cells.join(" | "),
        if rs.len() == 2 { " - |" } else { "" }
    )
}
