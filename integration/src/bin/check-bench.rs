//! `check-bench`: health checks at scale, keepalived against keepalive-d, in one run.
//!
//! N real servers (distinct addresses 127.0.x.y:80 in a fresh network namespace, one
//! listening socket each, all served by ONE thread that accepts, closes and counts)
//! behind N/100 NAT virtual servers, a TCP check every second on each. Each daemon runs
//! in turn, in the foreground, for `--secs`: its CPU time (every process, children
//! included, user and system) and peak RSS are sampled from /proc, its real check rate
//! is counted at the listener, and the kernel table is read at the end. Then a few real
//! servers fail at once, in three ways, and the time until the daemon removes them from
//! the kernel table is measured against fall x interval:
//!
//! - `refused`: their listening sockets are closed, so a connect gets a reset
//!   (ECONNREFUSED): the service is down, the host is up;
//! - `timeout`: a route in the local table makes their address non-local, so the SYN is
//!   dropped as a martian and the connect times out: the host is gone;
//! - `unreachable`: a `prohibit` route, so connect(2) itself fails at once (EACCES), as
//!   when the director has lost its route to the servers.
//!
//! keepalive-d's checks use its default `close: reset` (each connection ends with a
//! reset); `--daemons keepalived,keepalive-d,keepalive-d+fin` adds a run with `close: fin`,
//! which ends them like keepalived (FIN, TIME_WAIT on the director).
//!
//! Needs root and IPVS: run it in the lab (BENCHMARKS.md has the command and results).

use clap::Parser;
use ipvs_integration::bench::{self, Cpu, Daemon};
use ipvs_integration::netns::TestNs;
use ipvs_sys::transport::IpvsSocket;
use ipvs_sys::{Protocol, ServiceAttrs};
use netlink_sys::{Socket, SocketAddr as NlAddr, protocols::NETLINK_ROUTE};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
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
    /// Seconds each daemon runs before it is measured.
    #[arg(long, default_value_t = 60)]
    secs: u64,
    /// Seconds from the daemon's start left out of the steady-state figures.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Real servers made to fail at once in the convergence phase (0: skip it).
    #[arg(long, default_value_t = 10)]
    fail: u32,
    /// Failed probes before a server is removed: keepalive-d `fall`; keepalived
    /// `retry` = fall - 1, with `delay_before_retry` = the interval.
    #[arg(long, default_value_t = 3)]
    fall: u32,
    #[command(flatten)]
    daemons: bench::DaemonArgs,
    /// Diagnostics: after the measured window, count each daemon's system calls with
    /// `strace -c -f` for this many seconds (0: not at all). Slows the daemon while it
    /// runs, so the figures of the window are not affected but the counts per check are
    /// what to compare.
    #[arg(long, default_value_t = 0, value_name = "SECS")]
    strace: u64,
    /// Diagnostics: after the measured window (and strace), profile the daemon's
    /// processes with `perf record -g` (cpu-clock, kernel and user) for this many seconds
    /// and print where their time goes: inclusive by function (system calls, softirq)
    /// and flat (0: not at all).
    #[arg(long, default_value_t = 0, value_name = "SECS")]
    perf: u64,
    /// Diagnostics: record keepalive-d's heap allocations with heaptrack (preloaded)
    /// and print the allocation sites by peak memory (slows it down: the figures of
    /// such a run are not the benchmark's).
    #[arg(long)]
    heaptrack: bool,
}

type BoxError = Box<dyn std::error::Error>;

/// The check interval and timeout (both daemons), and the table poll period of the
/// convergence phase.
const INTERVAL: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(20);

fn main() -> Result<(), BoxError> {
    let a = Args::parse();
    if a.servers == 0 || a.per_service == 0 || a.servers > 250 * 254 {
        return Err("--servers must be 1..=63500 and --per-service at least 1".into());
    }
    if a.servers.div_ceil(a.per_service) > 254 {
        return Err("at most 254 virtual servers: raise --per-service".into());
    }
    if a.warmup == 0 || a.warmup >= a.secs || a.fall == 0 {
        return Err("--warmup must be 1..--secs, --fall at least 1".into());
    }
    let nofile = raise_nofile(u64::from(a.servers) + 4096)?;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let layout = Layout::new(&a);
    println!(
        "# check-bench: {} real servers in {} virtual servers, TCP check every {} s, {} s \
         per daemon (warm-up {} s), kernel {}, {cpus} CPUs, RLIMIT_NOFILE {nofile}",
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
    let addrs: Vec<SocketAddrV4> = (0..a.servers).map(Layout::rip).collect();
    let listener = Listener::start(&ns, &addrs)?;
    let mut results = Vec::new();
    // `keepalive-d+fin` in the list: keepalive-d with `close: fin` on its checks.
    let fin: Vec<bool> = a
        .daemons
        .daemons
        .iter()
        .map(|s| s.split('@').next().is_some_and(|k| k.ends_with(FIN_SUFFIX)))
        .collect();
    let mut plain = a.daemons.clone();
    plain.daemons = plain
        .daemons
        .iter()
        .map(|s| s.replacen(FIN_SUFFIX, "", 1))
        .collect();
    for ((daemon, path), fin) in plain.list()?.into_iter().zip(fin) {
        let close = if fin { "fin" } else { "reset" };
        let mut r = run_daemon(&a, &layout, &ns, &listener, &daemon, close, &work)?;
        if let Some(path) = path {
            r.version = format!("{}, {path}", r.version);
        }
        if fin {
            r.version = format!("{}, close: fin", r.version);
        }
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
    /// Indexes of the servers made to fail: spread evenly over all servers, so over
    /// services and over the phases of their probes.
    failed: Vec<u32>,
}

impl Layout {
    fn new(a: &Args) -> Self {
        let services = a.servers.div_ceil(a.per_service);
        // The failed servers are in two services far apart (a cheap table poll: two
        // dumps), spread evenly over the servers of each.
        let picked: Vec<u32> = if services >= 2 {
            vec![0, services / 2]
        } else {
            vec![0]
        };
        let n = a.fail.min(a.servers);
        let per_pick = n.div_ceil(picked.len() as u32).max(1);
        let mut failed = BTreeSet::new();
        for k in 0..n {
            let v = picked[(k as usize) % picked.len()];
            let size = ((v + 1) * a.per_service).min(a.servers) - v * a.per_service;
            let pos = (k / picked.len() as u32) * size / per_pick;
            failed.insert(v * a.per_service + pos.min(size - 1));
        }
        Self {
            services,
            per_service: a.per_service,
            servers: a.servers,
            failed: failed.into_iter().collect(),
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
                    "        weight 1\n        TCP_CHECK {{\n            connect_timeout {}\n\
                     \x20           retry {}\n            delay_before_retry {}\n        }}\n    }}",
                    TIMEOUT.as_secs(),
                    fall - 1,
                    INTERVAL.as_secs()
                );
            }
            s.push_str("}\n");
        }
        s
    }

    fn keepalive_d_yaml(&self, fall: u32, close: &str) -> String {
        let mut s = String::from("virtual_servers:\n");
        for v in 0..self.services {
            let _ = writeln!(
                s,
                "  - name: vs{v}\n    vip: {}\n    protocol: tcp\n    scheduler: rr\n    \
                 forward: nat\n    check: {{ type: tcp, interval: {}s, timeout: {}s, rise: 1, \
                 fall: {fall}, close: {close} }}\n    real_servers:",
                Self::vip(v),
                INTERVAL.as_secs(),
                TIMEOUT.as_secs()
            );
            for i in self.members(v) {
                let _ = writeln!(s, "      - {{ address: {}, weight: 1 }}", Self::rip(i));
            }
        }
        s
    }
}

/// The `--daemons` suffix for keepalive-d with `close: fin` (keepalived's way of
/// ending a check's connection) instead of its default `close: reset`.
const FIN_SUFFIX: &str = "+fin";

/// Writes the configuration and starts `daemon` in `ns`, output to `log` (keepalive-d's
/// TCP checks end their connections with `close`).
fn spawn(
    daemon: &Daemon,
    close: &str,
    a: &Args,
    layout: &Layout,
    ns: &TestNs,
    work: &Path,
    log: &Path,
) -> Result<Child, BoxError> {
    let mut cmd = bench::command(daemon, ns, work, log)?;
    match daemon {
        Daemon::Keepalived(_) => {
            let conf = work.join("keepalived.conf");
            std::fs::write(&conf, layout.keepalived_conf(a.fall))?;
            cmd.arg("-D").arg("-f").arg(&conf);
        }
        Daemon::KeepaliveD(_) => {
            let conf = work.join("keepalive-d.yaml");
            std::fs::write(&conf, layout.keepalive_d_yaml(a.fall, close))?;
            cmd.arg("run").arg("-c").arg(&conf);
            if a.heaptrack {
                cmd.env("LD_PRELOAD", HEAPTRACK_PRELOAD).env(
                    "DUMP_HEAPTRACK_OUTPUT",
                    work.join("keepalive-d.heaptrack.raw"),
                );
            }
        }
    }
    Ok(cmd.spawn().map_err(|e| format!("{}: {e}", daemon.name()))?)
}

const HEAPTRACK_PRELOAD: &str = "/usr/lib/heaptrack/libheaptrack_preload.so";
const HEAPTRACK_INTERPRET: &str = "/usr/lib/heaptrack/libexec/heaptrack_interpret";

/// Turns heaptrack's raw recording into its data file and prints the allocation sites
/// by peak memory, and the totals.
fn heaptrack_report(work: &Path) -> Result<(), BoxError> {
    let raw = work.join("keepalive-d.heaptrack.raw");
    let data = work.join("keepalive-d.heaptrack");
    let status = std::process::Command::new(HEAPTRACK_INTERPRET)
        .stdin(std::fs::File::open(&raw)?)
        .stdout(std::fs::File::create(&data)?)
        .status()?;
    if !status.success() {
        return Err(format!("heaptrack_interpret: {status}").into());
    }
    let out = std::process::Command::new("heaptrack_print")
        .arg("-f")
        .arg(&data)
        .args([
            "-p", "1", "-a", "0", "-T", "0", "-l", "0", "-n", "12", "-s", "1",
        ])
        .output()?;
    eprintln!("heaptrack (keepalive-d), the allocation sites by peak memory:");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // Leave out the module of each frame and the symbol hashes.
        if line.trim_start().starts_with("in /") {
            continue;
        }
        let mut l = line.to_string();
        while let Some(i) = l.find("::h") {
            let hash = &l[i + 3..];
            if hash.len() >= 16 && hash[..16].bytes().all(|b| b.is_ascii_hexdigit()) {
                l.replace_range(i..i + 19, "");
            } else {
                break;
            }
        }
        eprintln!(
            "  {}",
            l.replace("$LT$", "<")
                .replace("$GT$", ">")
                .replace("$u20$", " ")
        );
    }
    Ok(())
}

/// One process of a daemon, as last sampled.
struct Proc {
    comm: String,
    cpu: Cpu,
    /// CPU at the start of the steady-state window (None: started after it).
    at_warmup: Option<Cpu>,
    hwm_kib: u64,
    /// RssAnon and RssFile (KiB) at the end of the window.
    anon_kib: u64,
    file_kib: u64,
}

/// What one daemon did.
struct RunResult {
    name: &'static str,
    version: String,
    procs: BTreeMap<i32, Proc>,
    tck: f64,
    cpu_total: Cpu,
    cpu_window: Cpu,
    hwm_kib: u64,
    rss_kib: u64,
    pss_kib: u64,
    window: f64,
    accepts: u64,
    per_second: Vec<u64>,
    /// Median guest CPU time of a fixed unit of work, sampled every second of the
    /// window (ms): the same work costs more guest CPU time when the host takes the vCPU
    /// away or interrupt work lands on it. A rough check of the conditions only: under a
    /// busy host it varied 4x between windows of one run.
    work_unit_ms: f64,
    /// TCP counters over the window (TIME_WAIT sockets: at its end).
    tcp: TcpCounters,
    listener_cpu: f64,
    /// Context switches (voluntary + involuntary, every thread) in the window.
    switches: u64,
    vm_busy: f64,
    full_at: Option<f64>,
    services_end: usize,
    dests_end: usize,
    conv: Vec<Convergence>,
    stop: f64,
    left_after_stop: usize,
    log_lines: usize,
    /// Length of the log at the end of the window (what follows: convergence, stop).
    log_offset: usize,
}

fn run_daemon(
    a: &Args,
    layout: &Layout,
    ns: &TestNs,
    listener: &Listener,
    daemon: &Daemon,
    close: &str,
    work: &Path,
) -> Result<RunResult, BoxError> {
    let name = daemon.name();
    let version = daemon.version();
    eprintln!("== {name} ({version})");
    let log = work.join(format!("{name}.log"));
    let mut ipvs = IpvsSocket::open_in_netns(format!("/run/netns/{}", ns.name()))?;
    ipvs.set_timeout(Duration::from_secs(60));

    let mut child = spawn(daemon, close, a, layout, ns, work, &log)?;
    let root = i32::try_from(child.id())?;
    let t0 = Instant::now();
    let result = measure(
        a, layout, ns, listener, &mut ipvs, root, t0, &mut child, &log,
    );
    // Stop it (SIGTERM, then SIGKILL after 60 s), whatever happened.
    let grace = Duration::from_secs(60);
    let stop = bench::stop(name, &mut child, root, grace)
        .unwrap_or(grace)
        .as_secs_f64();
    let left_after_stop = table(&mut ipvs)?.1;
    if a.heaptrack && matches!(daemon, Daemon::KeepaliveD(_)) {
        if let Err(e) = heaptrack_report(work) {
            eprintln!("heaptrack: {e}");
        }
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let log_lines = text.lines().count();
    eprintln!("{name} log: {log_lines} lines; the most frequent messages (digits as #):");
    if let Ok(r) = &result {
        // The health and table changes of the convergence phase, with their times.
        let keys = [
            "is down",
            "is up",
            "now down",
            "now up",
            "updated",
            "Removing service",
            "Adding service",
            "failed after",
        ];
        let tail = text.get(r.log_offset..).unwrap_or("");
        let lines: Vec<&str> = tail
            .lines()
            .filter(|l| keys.iter().any(|k| l.contains(k)))
            .collect();
        eprintln!(
            "{name} log after the window ({} health/table lines, the first 150):",
            lines.len()
        );
        for l in lines.iter().take(150) {
            eprintln!("  | {l}");
        }
    }
    for (n, msg) in log_summary(&text, 12) {
        eprintln!("  {n:>7}  {msg}");
    }
    let mut r = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name} log, last lines:\n{}", last_lines(&text, 30));
            return Err(format!("{name}: {e}").into());
        }
    };
    r.name = name;
    r.version = version;
    r.stop = stop;
    r.left_after_stop = left_after_stop;
    r.log_lines = log_lines;
    eprintln!(
        "{name}: stopped {stop:.2} s after SIGTERM; {left_after_stop} destinations left in \
         the table"
    );
    Ok(r)
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The most frequent log lines once digit runs, ANSI colours and the timestamp are
/// normalised away.
fn log_summary(text: &str, top: usize) -> Vec<(usize, String)> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines() {
        let mut out = String::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                // Skip an ANSI escape sequence up to its final letter.
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else if c.is_ascii_digit() {
                while chars.peek().is_some_and(char::is_ascii_digit) {
                    chars.next();
                }
                out.push('#');
            } else {
                out.push(c);
            }
        }
        // keepalived prefixes "Tue Nov 25 14:52:01 2026: "; keepalive-d an RFC 3339 time.
        let msg = match out.find(": ") {
            Some(i) if out[..i].contains("#:#:#") => out[i + 2..].to_string(),
            _ => out
                .split_once(' ')
                .filter(|(t, _)| t.contains('T') && t.contains('#'))
                .map_or(out.clone(), |(_, m)| m.trim_start().to_string()),
        };
        *counts.entry(msg).or_default() += 1;
    }
    let mut v: Vec<(usize, String)> = counts.into_iter().map(|(m, n)| (n, m)).collect();
    v.sort_by(|x, y| y.0.cmp(&x.0).then_with(|| x.1.cmp(&y.1)));
    v.truncate(top);
    v
}

/// A point-in-time view for the steady-state window.
struct Mark {
    at: Instant,
    accepts: u64,
    listener_ticks: u64,
    vm: (u64, u64),
    tcp: TcpCounters,
}

impl Mark {
    fn now(ns: &TestNs, listener: &Listener) -> Result<Self, BoxError> {
        Ok(Mark {
            at: Instant::now(),
            accepts: listener.count(),
            listener_ticks: listener.ticks(),
            vm: vm_cpu()?,
            tcp: tcp_counters(ns)?,
        })
    }
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
    child: &mut Child,
    log: &Path,
) -> Result<RunResult, BoxError> {
    let tck = bench::clock_ticks();
    let mut procs: BTreeMap<i32, Proc> = BTreeMap::new();
    let mut per_second = Vec::new();
    let mut units = Vec::new();
    let mut last_accepts = listener.count();
    let mut start: Option<Mark> = None;
    let mut switches_start = 0;
    let mut full_at = None;
    let want = (layout.services as usize, layout.servers as usize);
    for k in 1..=a.secs {
        sleep_until(t0 + Duration::from_secs(k));
        if let Some(status) = child.try_wait()? {
            return Err(format!("exited after {k} s: {status}").into());
        }
        for pid in bench::descendants(root) {
            if let Some((_, cpu)) = bench::proc_stat(pid) {
                let hwm = bench::proc_kib(pid, "status", "VmHWM:").unwrap_or(0);
                let p = procs.entry(pid).or_insert_with(|| Proc {
                    comm: std::fs::read_to_string(format!("/proc/{pid}/comm"))
                        .map(|s| s.trim().to_string())
                        .unwrap_or_default(),
                    cpu: Cpu::default(),
                    at_warmup: None,
                    hwm_kib: 0,
                    anon_kib: 0,
                    file_kib: 0,
                });
                p.cpu = cpu;
                p.hwm_kib = hwm;
            }
        }
        if k > a.warmup {
            units.push(work_unit());
        }
        let accepts = listener.count();
        per_second.push(accepts - last_accepts);
        last_accepts = accepts;
        if k == a.warmup {
            for p in procs.values_mut() {
                p.at_warmup = Some(p.cpu);
            }
            start = Some(Mark::now(ns, listener)?);
            switches_start = switches(root);
        }
        if full_at.is_none() {
            let (s, d) = table(ipvs)?;
            if (s, d) == want {
                full_at = Some(t0.elapsed().as_secs_f64());
            }
        }
        let cpu = procs.values().fold(Cpu::default(), |c, p| c.plus(p.cpu));
        eprintln!(
            "  t={k:>3} s  checks accepted {:>6}/s  daemon CPU user {:>7.2} s sys {:>7.2} s{}",
            per_second.last().copied().unwrap_or(0),
            cpu.user as f64 / tck,
            cpu.sys as f64 / tck,
            if full_at.is_some() {
                ""
            } else {
                "  (table not full yet)"
            }
        );
    }
    let end = Mark::now(ns, listener)?;
    let log_offset = std::fs::metadata(log).map_or(0, |m| m.len() as usize);
    let switches_window = switches(root).saturating_sub(switches_start);
    let alive = bench::descendants(root);
    let pss_kib = alive
        .iter()
        .filter_map(|&p| bench::proc_kib(p, "smaps_rollup", "Pss:"))
        .sum();
    let rss_kib = alive
        .iter()
        .filter_map(|&p| bench::proc_kib(p, "status", "VmRSS:"))
        .sum();
    for (&pid, p) in procs.iter_mut() {
        p.anon_kib = bench::proc_kib(pid, "status", "RssAnon:").unwrap_or(0);
        p.file_kib = bench::proc_kib(pid, "status", "RssFile:").unwrap_or(0);
    }
    let (services_end, dests_end) = table(ipvs)?;
    if a.strace > 0 {
        strace(a.strace, root, listener)?;
    }
    if a.perf > 0 {
        perf(a.perf, root, listener)?;
    }
    let start = start.ok_or("no warm-up mark")?;
    let window = end.at.duration_since(start.at).as_secs_f64();
    let cpu_total = procs.values().fold(Cpu::default(), |c, p| c.plus(p.cpu));
    let cpu_window = procs.values().fold(Cpu::default(), |c, p| {
        c.plus(p.cpu.minus(p.at_warmup.unwrap_or_default()))
    });
    let hwm_kib = procs.values().map(|p| p.hwm_kib).sum();
    let busy = (end.vm.0 - start.vm.0) as f64;
    let total = (end.vm.1 - start.vm.1) as f64;
    eprintln!(
        "  table at {} s: {services_end} services, {dests_end} destinations",
        a.secs
    );

    // Convergence: the failed servers must leave the table, the others stay.
    let mut conv = Vec::new();
    if !layout.failed.is_empty() {
        for failure in [Failure::Refused, Failure::Timeout, Failure::Unreachable] {
            conv.push(convergence(a, layout, ns, listener, ipvs, failure)?);
            if let Some(status) = child.try_wait()? {
                return Err(format!("exited during the convergence phase: {status}").into());
            }
        }
    }
    Ok(RunResult {
        name: "",
        version: String::new(),
        procs,
        tck,
        cpu_total,
        cpu_window,
        hwm_kib,
        rss_kib,
        pss_kib,
        window,
        accepts: end.accepts - start.accepts,
        per_second,
        work_unit_ms: {
            units.sort_by(f64::total_cmp);
            units.get(units.len() / 2).copied().unwrap_or(f64::NAN) * 1e3
        },
        tcp: end.tcp.since(&start.tcp),
        listener_cpu: (end.listener_ticks - start.listener_ticks) as f64 / tck,
        switches: switches_window,
        vm_busy: if total > 0.0 { busy / total } else { 0.0 },
        full_at,
        services_end,
        dests_end,
        conv,
        stop: 0.0,
        left_after_stop: 0,
        log_lines: 0,
        log_offset,
    })
}

/// How the failed servers fail.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Their listening sockets are closed: connect gets a reset (ECONNREFUSED).
    Refused,
    /// Their addresses are routed as non-local: SYNs are dropped, connect times out.
    Timeout,
    /// A `prohibit` route: connect(2) fails at once with EACCES.
    Unreachable,
}

impl Failure {
    fn describe(self) -> &'static str {
        match self {
            Failure::Refused => "refused: listener closed, connect gets RST (service down)",
            Failure::Timeout => "timeout: SYN dropped, connect times out (host down)",
            Failure::Unreachable => {
                "unreachable: prohibit route, connect(2) fails at once with EACCES (route lost)"
            }
        }
    }

    /// Removal is due after `fall` failed probes, one per interval; a probe that times
    /// out ends `timeout` after it started.
    fn bound(self, fall: u32) -> Duration {
        match self {
            Failure::Timeout => INTERVAL * fall + TIMEOUT,
            _ => INTERVAL * fall,
        }
    }

    fn apply(
        self,
        ns: &TestNs,
        listener: &Listener,
        failed: &[u32],
        fail: bool,
    ) -> Result<(), BoxError> {
        let addrs: Vec<SocketAddrV4> = failed.iter().map(|&i| Layout::rip(i)).collect();
        match (self, fail) {
            (Failure::Refused, true) => {
                listener.close(failed);
                Ok(())
            }
            (Failure::Refused, false) => listener.reopen(ns, failed, &addrs),
            (Failure::Timeout, add) => route(ns, &addrs, RouteKind::Martian, add),
            (Failure::Unreachable, add) => route(ns, &addrs, RouteKind::Prohibit, add),
        }
    }
}

/// One failure scenario: seconds from the failure to each failed server's removal, and
/// from the repair to its return (`None`: not within the deadline); healthy servers of
/// those services that went missing meanwhile; the mean time between table polls.
struct Convergence {
    failure: Failure,
    removal: Vec<Option<f64>>,
    others_lost: usize,
    recovery: Vec<Option<f64>>,
    poll_period: f64,
}

/// Fails `layout.failed`, polls the kernel table every 20 ms until they are all gone
/// (or a deadline), repairs them and polls until they are all back (or a deadline).
fn convergence(
    a: &Args,
    layout: &Layout,
    ns: &TestNs,
    listener: &Listener,
    ipvs: &mut IpvsSocket,
    failure: Failure,
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
    let present = |ipvs: &mut IpvsSocket| -> Result<BTreeSet<SocketAddr>, BoxError> {
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
    // Every failed server must be in the table first (a late change of the previous
    // scenario has had time to settle: see the end of this function).
    let t = Instant::now();
    loop {
        let set = present(ipvs)?;
        match failed.iter().find(|s| !set.contains(s)) {
            None => break,
            Some(missing) if t.elapsed() > Duration::from_secs(30) => {
                return Err(format!("{missing} is not in the table before it fails").into());
            }
            Some(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let bound = failure.bound(a.fall);
    let deadline = bound * 3 + Duration::from_secs(10);
    let mut polls = 0u32;
    let mut polled = Duration::ZERO;
    // A change counts once two polls in a row show it, at the time of the first: a
    // destination dump that runs while the daemon adds or removes destinations of the
    // same service can skip an entry (the kernel resumes a dump by position and does
    // not flag it as interrupted), which would otherwise look like a removal.
    let mut transient = 0u32;
    let mut lost: BTreeMap<SocketAddr, f64> = BTreeMap::new();
    let mut poll =
        |ipvs: &mut IpvsSocket, gone: bool, phase: f64| -> Result<Vec<Option<f64>>, BoxError> {
            let t0 = Instant::now();
            let mut times: Vec<Option<f64>> = vec![None; failed.len()];
            let mut seen: Vec<Option<f64>> = vec![None; failed.len()];
            let mut missing: BTreeMap<SocketAddr, f64> = BTreeMap::new();
            let mut tick = t0;
            while t0.elapsed() < deadline && times.iter().any(Option::is_none) {
                tick += POLL;
                sleep_until(tick);
                let set = present(ipvs)?;
                polls += 1;
                let now = t0.elapsed().as_secs_f64();
                for ((t, first), s) in times.iter_mut().zip(seen.iter_mut()).zip(&failed) {
                    if t.is_some() {
                        continue;
                    }
                    if set.contains(s) != gone {
                        match *first {
                            Some(at) => *t = Some(at),
                            None => *first = Some(now),
                        }
                    } else if first.take().is_some() {
                        transient += 1;
                    }
                }
                for s in &others {
                    if set.contains(s) {
                        if missing.remove(s).is_some() {
                            transient += 1;
                        }
                    } else if let Some(&at) = missing.get(s) {
                        lost.entry(*s).or_insert(phase + at);
                    } else {
                        missing.insert(*s, now);
                    }
                }
            }
            polled += t0.elapsed();
            Ok(times)
        };
    let t_fail = Instant::now();
    failure.apply(ns, listener, &layout.failed, true)?;
    let removal = poll(ipvs, true, 0.0)?;
    let repair_at = t_fail.elapsed().as_secs_f64();
    failure.apply(ns, listener, &layout.failed, false)?;
    let recovery = poll(ipvs, false, repair_at)?;
    let poll_period = polled.as_secs_f64() / f64::from(polls.max(1));
    // A daemon that saw the failure late could still remove a server now: let that
    // happen here rather than in the next scenario.
    std::thread::sleep(bound + INTERVAL);
    let fmt = |v: &[Option<f64>]| {
        v.iter()
            .map(|t| t.map_or("-".to_string(), |t| format!("{t:.2}")))
            .collect::<Vec<_>>()
            .join(" ")
    };
    eprintln!(
        "  {}: {} servers failed at once; removed after [{}] s (bound {:.1} s); back after \
         [{}] s; healthy servers of those services missing (two polls in a row) \
         meanwhile: {} {:?} (s from the failure; repaired at {repair_at:.2} s); entries \
         missing from a single poll only: {transient}; one table poll every {:.0} ms",
        failure.describe(),
        failed.len(),
        fmt(&removal),
        bound.as_secs_f64(),
        fmt(&recovery),
        lost.len(),
        lost,
        poll_period * 1e3
    );
    Ok(Convergence {
        failure,
        removal,
        others_lost: lost.len(),
        recovery,
        poll_period,
    })
}

/// Routes added to the local table of the namespace to make servers fail.
#[derive(Clone, Copy)]
enum RouteKind {
    /// `prohibit ADDR`: connect(2) fails with EACCES.
    Prohibit,
    /// `ADDR dev lo scope link`: the address is no longer local, the SYN leaves on lo,
    /// comes back with a loopback destination on a route that is not local, and is
    /// dropped as a martian: the connect times out.
    Martian,
}

/// Adds (or deletes) a route of `kind` for each of `addrs` in the local table of `ns`,
/// in one netlink datagram.
fn route(ns: &TestNs, addrs: &[SocketAddrV4], kind: RouteKind, add: bool) -> Result<(), BoxError> {
    const RTM_NEWROUTE: u16 = 24;
    const RTM_DELROUTE: u16 = 25;
    const NLM_F_REQUEST: u16 = 1;
    const NLM_F_ACK: u16 = 4;
    const NLM_F_EXCL: u16 = 0x200;
    const NLM_F_CREATE: u16 = 0x400;
    const RT_TABLE_LOCAL: u8 = 255;
    const RTPROT_STATIC: u8 = 4;
    const RT_SCOPE_UNIVERSE: u8 = 0;
    const RT_SCOPE_LINK: u8 = 253;
    const RTN_UNICAST: u8 = 1;
    const RTN_PROHIBIT: u8 = 8;
    const RTA_DST: u16 = 1;
    const RTA_OIF: u16 = 4;
    let (sock, lo) = ns.enter(|| -> Result<(Socket, u32), String> {
        let open = || -> std::io::Result<Socket> {
            let mut s = Socket::new(NETLINK_ROUTE)?;
            s.bind_auto()?;
            s.connect(&NlAddr::new(0, 0))?;
            Ok(s)
        };
        let lo = nix::net::if_::if_nametoindex("lo").map_err(|e| format!("lo: {e}"))?;
        Ok((open().map_err(|e| format!("rtnetlink: {e}"))?, lo))
    })??;
    let mut buf = Vec::new();
    for (seq, addr) in addrs.iter().enumerate() {
        let (msg, flags) = if add {
            (
                RTM_NEWROUTE,
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            )
        } else {
            (RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK)
        };
        let (scope, rtype, oif) = match kind {
            RouteKind::Prohibit => (RT_SCOPE_UNIVERSE, RTN_PROHIBIT, None),
            RouteKind::Martian => (RT_SCOPE_LINK, RTN_UNICAST, Some(lo)),
        };
        let len = 16 + 12 + 8 + if oif.is_some() { 8 } else { 0 };
        buf.extend_from_slice(&(len as u32).to_ne_bytes());
        buf.extend_from_slice(&msg.to_ne_bytes());
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
            scope,
            rtype,
        ]);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&8u16.to_ne_bytes());
        buf.extend_from_slice(&RTA_DST.to_ne_bytes());
        buf.extend_from_slice(&addr.ip().octets());
        if let Some(oif) = oif {
            buf.extend_from_slice(&8u16.to_ne_bytes());
            buf.extend_from_slice(&RTA_OIF.to_ne_bytes());
            buf.extend_from_slice(&oif.to_ne_bytes());
        }
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
                        "{} route: {}",
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

/// The real servers: one listening socket per address, all served by one thread (epoll)
/// that accepts, closes and counts.
struct Listener {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    count: AtomicU64,
    stop: AtomicBool,
    tid: AtomicI32,
    /// The listening socket of each server (None while it is failed).
    socks: Mutex<Vec<Option<socket2::Socket>>>,
    epoll: OwnedFd,
}

impl Listener {
    fn start(ns: &TestNs, addrs: &[SocketAddrV4]) -> Result<Self, BoxError> {
        let socks = open_listeners(ns, addrs)?;
        // SAFETY: epoll_create1 takes no pointers; a non-negative result is a new file
        // descriptor that nothing else owns.
        let epoll = unsafe {
            let fd = libc::epoll_create1(libc::EPOLL_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error().into());
            }
            OwnedFd::from_raw_fd(fd)
        };
        for (i, s) in socks.iter().enumerate() {
            watch(&epoll, s, i)?;
        }
        let shared = Arc::new(Shared {
            count: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            tid: AtomicI32::new(0),
            socks: Mutex::new(socks.into_iter().map(Some).collect()),
            epoll,
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("listener".into())
                .spawn(move || serve(&shared))?
        };
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    fn count(&self) -> u64 {
        self.shared.count.load(Ordering::Relaxed)
    }

    /// CPU ticks of the listener thread.
    fn ticks(&self) -> u64 {
        let tid = self.shared.tid.load(Ordering::Relaxed);
        std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
            .ok()
            .and_then(|s| bench::stat_fields(&s).map(|f| f.1.total()))
            .unwrap_or(0)
    }

    /// Closes the listening sockets of `servers`: connects to them are then refused.
    fn close(&self, servers: &[u32]) {
        let mut socks = self
            .shared
            .socks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for &i in servers {
            if let Some(slot) = socks.get_mut(i as usize) {
                // Closing the only descriptor also removes it from the epoll set.
                *slot = None;
            }
        }
    }

    /// Listens again on the addresses of `servers`.
    fn reopen(&self, ns: &TestNs, servers: &[u32], addrs: &[SocketAddrV4]) -> Result<(), BoxError> {
        let new = open_listeners(ns, addrs)?;
        let mut socks = self
            .shared
            .socks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (&i, s) in servers.iter().zip(new) {
            watch(&self.shared.epoll, &s, i as usize)?;
            if let Some(slot) = socks.get_mut(i as usize) {
                *slot = Some(s);
            }
        }
        Ok(())
    }

    fn stop(mut self) -> u64 {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.count()
    }
}

/// Non-blocking listening sockets on `addrs`, in `ns`.
fn open_listeners(ns: &TestNs, addrs: &[SocketAddrV4]) -> Result<Vec<socket2::Socket>, BoxError> {
    Ok(ns.enter(|| -> Result<Vec<socket2::Socket>, String> {
        addrs
            .iter()
            .map(|addr| {
                let listen = || -> std::io::Result<socket2::Socket> {
                    let s =
                        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
                    s.set_reuse_address(true)?;
                    s.bind(&SocketAddr::V4(*addr).into())?;
                    s.listen(1024)?;
                    s.set_nonblocking(true)?;
                    Ok(s)
                };
                listen().map_err(|e| format!("listen on {addr}: {e}"))
            })
            .collect()
    })??)
}

/// Adds `sock` to the epoll set with `index` as its token.
fn watch(epoll: &OwnedFd, sock: &socket2::Socket, index: usize) -> Result<(), BoxError> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: index as u64,
    };
    // SAFETY: both descriptors are open for the duration of the call; `ev` is a valid
    // epoll_event that the kernel only reads.
    let r = unsafe {
        libc::epoll_ctl(
            epoll.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            sock.as_raw_fd(),
            &mut ev,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

/// The listener thread: waits for ready sockets (100 ms at most, to see the stop flag),
/// accepts every pending connection on them, closes it and counts it.
fn serve(shared: &Shared) {
    shared
        .tid
        .store(nix::unistd::gettid().as_raw(), Ordering::Relaxed);
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    while !shared.stop.load(Ordering::Relaxed) {
        // SAFETY: `events` is a writable buffer of `events.len()` entries that outlives
        // the call; the epoll descriptor is open (owned by `shared`).
        let n = unsafe {
            libc::epoll_wait(
                shared.epoll.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as i32,
                100,
            )
        };
        let Ok(n) = usize::try_from(n) else {
            continue; // EINTR
        };
        let socks = shared.socks.lock().unwrap_or_else(PoisonError::into_inner);
        let mut accepted = 0;
        for ev in &events[..n] {
            let index = ev.u64 as usize;
            let Some(Some(sock)) = socks.get(index) else {
                continue; // closed since (a failed server)
            };
            while let Ok((conn, _)) = sock.accept_raw() {
                drop(conn);
                accepted += 1;
            }
        }
        drop(socks);
        shared.count.fetch_add(accepted, Ordering::Relaxed);
    }
}

/// Context switches (voluntary and involuntary) of every thread of `root` and the
/// processes below it.
fn switches(root: i32) -> u64 {
    let mut n = 0;
    for pid in bench::descendants(root) {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let path = t.path().join("status");
            let Ok(text) = std::fs::read_to_string(path) else {
                continue;
            };
            n += text
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    n
}

/// Counts the system calls of the daemon's processes with `strace -c -f` for `secs`
/// seconds and prints the summary with the checks done meanwhile.
fn strace(secs: u64, root: i32, listener: &Listener) -> Result<(), BoxError> {
    let out = std::env::temp_dir().join(format!("check-bench-strace-{root}"));
    let mut cmd = std::process::Command::new("strace");
    cmd.args(["-c", "-f", "-o"]).arg(&out);
    for pid in bench::descendants(root) {
        cmd.arg("-p").arg(pid.to_string());
    }
    let mut st = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("strace: {e}"))?;
    std::thread::sleep(Duration::from_secs(1));
    let c0 = listener.count();
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let checks = listener.count() - c0;
    let took = t.elapsed().as_secs_f64();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(st.id())?),
        nix::sys::signal::Signal::SIGINT,
    );
    let _ = st.wait();
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    eprintln!(
        "  strace -c -f for {took:.1} s: {checks} checks accepted meanwhile ({:.0}/s)",
        checks as f64 / took
    );
    for line in text.lines() {
        // Add the calls per check to each row: "% time seconds usecs/call calls errors".
        let f: Vec<&str> = line.split_whitespace().collect();
        let calls = f.get(3).and_then(|c| c.parse::<f64>().ok());
        match calls {
            Some(c) if checks > 0 && f.len() >= 5 => {
                eprintln!("  {line}    {:.2}/check", c / checks as f64);
            }
            _ => eprintln!("  {line}"),
        }
    }
    Ok(())
}

/// Profiles the daemon's processes with `perf record -g` for `secs` seconds and prints
/// the functions by inclusive time (what each system call costs, with the softirq work
/// it triggers) and by exclusive time, with the checks done meanwhile.
fn perf(secs: u64, root: i32, listener: &Listener) -> Result<(), BoxError> {
    let data = std::env::temp_dir().join(format!("check-bench-perf-{root}.data"));
    let pids: Vec<String> = bench::descendants(root)
        .iter()
        .map(i32::to_string)
        .collect();
    let c0 = listener.count();
    let t = Instant::now();
    let out = std::process::Command::new("perf")
        .args(["record", "-q", "-F", "999", "-g", "-o"])
        .arg(&data)
        .args(["-p", &pids.join(","), "--", "sleep", &secs.to_string()])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("perf record: {e}"))?;
    let checks = listener.count() - c0;
    let took = t.elapsed().as_secs_f64();
    if !out.status.success() {
        eprintln!(
            "  perf record: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    eprintln!(
        "  perf record -g for {took:.1} s: {checks} checks accepted meanwhile ({:.0}/s)",
        checks as f64 / took
    );
    let views: [(&str, &[&str]); 2] = [
        (
            "inclusive (children), by function",
            &["--children", "--sort", "sym", "--percent-limit", "1.5"],
        ),
        (
            "exclusive, by function",
            &["--no-children", "--sort", "sym", "--percent-limit", "0.7"],
        ),
    ];
    for (what, args) in views {
        let report = std::process::Command::new("perf")
            .args(["report", "--stdio", "-g", "none", "-i"])
            .arg(&data)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|e| format!("perf report: {e}"))?;
        eprintln!("  perf: {what}:");
        for line in String::from_utf8_lossy(&report.stdout).lines() {
            if !line.trim().is_empty() && !line.starts_with('#') {
                eprintln!("  {line}");
            }
        }
    }
    let _ = std::fs::remove_file(&data);
    Ok(())
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
    out_segs: u64,
    out_rsts: u64,
    /// TIME_WAITs completed (TcpExt TW), and not created for lack of buckets.
    time_waits: u64,
    tw_overflows: u64,
    /// TIME_WAIT sockets now (/proc/net/sockstat).
    tw_now: u64,
}

impl TcpCounters {
    fn since(&self, o: &TcpCounters) -> TcpCounters {
        TcpCounters {
            active_opens: self.active_opens - o.active_opens,
            listen_overflows: self.listen_overflows - o.listen_overflows,
            out_segs: self.out_segs - o.out_segs,
            out_rsts: self.out_rsts - o.out_rsts,
            time_waits: self.time_waits - o.time_waits,
            tw_overflows: self.tw_overflows - o.tw_overflows,
            tw_now: self.tw_now,
        }
    }
}

/// TCP counters of the namespace (/proc/net/snmp and /proc/net/netstat).
fn tcp_counters(ns: &TestNs) -> Result<TcpCounters, BoxError> {
    let (snmp, netstat, sockstat) = ns.enter(|| {
        (
            std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap_or_default(),
            std::fs::read_to_string("/proc/thread-self/net/netstat").unwrap_or_default(),
            std::fs::read_to_string("/proc/thread-self/net/sockstat").unwrap_or_default(),
        )
    })?;
    // "TCP: inuse N orphan N tw N alloc N mem N"
    let tw_now = sockstat
        .lines()
        .find(|l| l.starts_with("TCP:"))
        .and_then(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let i = f.iter().position(|x| *x == "tw")?;
            f.get(i + 1)?.parse().ok()
        })
        .unwrap_or(0);
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
        out_segs: field(&snmp, "Tcp:", "OutSegs"),
        out_rsts: field(&snmp, "Tcp:", "OutRsts"),
        time_waits: field(&netstat, "TcpExt:", "TW"),
        tw_overflows: field(&netstat, "TcpExt:", "TCPTimeWaitOverflow"),
        tw_now,
    })
}

/// The guest CPU time (s) this thread takes for a fixed amount of integer work.
fn work_unit() -> f64 {
    fn cpu_now() -> f64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime only writes the timespec passed by reference.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
    }
    let t = cpu_now();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..500_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = std::hint::black_box(x);
    }
    std::hint::black_box(x);
    cpu_now() - t
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// Raises the open-file limit (inherited by the daemons) to at least `want` (and to the
/// hard limit); returns the new soft limit.
fn raise_nofile(want: u64) -> Result<u64, BoxError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by reference.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        let max = lim.rlim_max.max(want);
        let new = libc::rlimit {
            rlim_cur: max,
            rlim_max: max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &new) == 0 {
            return Ok(max);
        }
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
    }
    if lim.rlim_cur < want {
        return Err(format!(
            "RLIMIT_NOFILE {} < {want} and cannot be raised",
            lim.rlim_cur
        )
        .into());
    }
    Ok(lim.rlim_cur)
}

/// With more than two runs (e.g. `--daemons keepalived,keepalive-d,keepalived,keepalive-d`,
/// interleaved against drifting host load): each daemon's mean and range over its runs,
/// and the ratio of the second daemon's mean to the first's.
fn summary(out: &mut String, a: &Args, rs: &[RunResult]) -> Result<(), BoxError> {
    let mut labels: Vec<String> = Vec::new();
    for r in rs {
        let l = format!("{} ({})", r.name, r.version);
        if !labels.contains(&l) {
            labels.push(l);
        }
    }
    let group = |l: &String| -> Vec<&RunResult> {
        rs.iter()
            .filter(|r| &format!("{} ({})", r.name, r.version) == l)
            .collect()
    };
    writeln!(out)?;
    writeln!(
        out,
        "| mean (min-max) over the runs | {} |{}",
        labels
            .iter()
            .map(|l| format!("{l}, {} runs", group(l).len()))
            .collect::<Vec<_>>()
            .join(" | "),
        if labels.len() == 2 {
            " ratio of means |"
        } else {
            ""
        }
    )?;
    writeln!(
        out,
        "|---|{}{}",
        "---|".repeat(labels.len()),
        if labels.len() == 2 { "---|" } else { "" }
    )?;
    let w = format!("{}-{} s", a.warmup, a.secs);
    type Metric = Box<dyn Fn(&RunResult) -> f64>;
    let metrics: Vec<(String, Metric, usize)> = vec![
        (
            format!("CPU s, whole run (0-{} s)", a.secs),
            Box::new(|r: &RunResult| r.cpu_total.total() as f64 / r.tck),
            2,
        ),
        (
            format!("CPU s, steady state ({w})"),
            Box::new(|r: &RunResult| r.cpu_window.total() as f64 / r.tck),
            2,
        ),
        (
            "CPU ms per 1,000 checks".to_string(),
            Box::new(|r: &RunResult| {
                r.cpu_window.total() as f64 / r.tck * 1e6 / r.accepts.max(1) as f64
            }),
            1,
        ),
        (
            format!("checks/s ({w})"),
            Box::new(|r: &RunResult| r.accepts as f64 / r.window),
            1,
        ),
        (
            "peak RSS, MiB (VmHWM summed)".to_string(),
            Box::new(|r: &RunResult| r.hwm_kib as f64 / 1024.0),
            1,
        ),
        (
            "PSS at the end, MiB".to_string(),
            Box::new(|r: &RunResult| r.pss_kib as f64 / 1024.0),
            1,
        ),
        (
            "guest CPU ms of the fixed work unit".to_string(),
            Box::new(|r: &RunResult| r.work_unit_ms),
            2,
        ),
    ];
    for (label, f, digits) in &metrics {
        let mut means = Vec::new();
        let cells: Vec<String> = labels
            .iter()
            .map(|l| {
                let v: Vec<f64> = group(l).iter().map(|r| f(r)).collect();
                let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
                let min = v.iter().copied().fold(f64::INFINITY, f64::min);
                let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                means.push(mean);
                format!("{mean:.digits$} ({min:.digits$}-{max:.digits$})")
            })
            .collect();
        let ratio = if means.len() == 2 {
            format!(" {:.2}x |", means[1] / means[0])
        } else {
            String::new()
        };
        writeln!(out, "| {label} | {} |{ratio}", cells.join(" | "))?;
    }
    Ok(())
}

fn report(a: &Args, layout: &Layout, rs: &[RunResult]) -> Result<String, BoxError> {
    let mut out = String::new();
    let two = rs.len() == 2;
    let head: Vec<String> = rs
        .iter()
        .map(|r| format!("{} ({})", r.name, r.version))
        .collect();
    writeln!(out)?;
    writeln!(
        out,
        "| {} real servers, TCP check every {} s, {} s | {} |{}",
        a.servers,
        INTERVAL.as_secs(),
        a.secs,
        head.join(" | "),
        if two {
            format!(" {} / {} |", rs[1].name, rs[0].name)
        } else {
            String::new()
        }
    )?;
    writeln!(
        out,
        "|---|{}{}",
        "---|".repeat(rs.len()),
        if two { "---|" } else { "" }
    )?;
    // A row of numbers (with their ratio) or of text.
    let mut row = |label: &str, vals: Vec<f64>, fmt: &dyn Fn(f64) -> String, ratio: bool| {
        let cells: Vec<String> = vals.iter().map(|v| fmt(*v)).collect();
        let r = match (two, ratio) {
            (true, true) => format!(" {:.2}x |", vals[1] / vals[0]),
            (true, false) => " - |".to_string(),
            _ => String::new(),
        };
        let _ = writeln!(out, "| {label} | {} |{r}", cells.join(" | "));
    };
    let secs = |r: &RunResult, t: u64| t as f64 / r.tck;
    let f2 = |v: f64| format!("{v:.2}");
    let f1 = |v: f64| format!("{v:.1}");
    let f0 = |v: f64| format!("{v:.0}");
    row(
        &format!("**CPU s, whole run** (0-{} s, start-up included)", a.secs),
        rs.iter().map(|r| secs(r, r.cpu_total.total())).collect(),
        &|v| format!("**{v:.2}**"),
        true,
    );
    let w = format!("{}-{} s", a.warmup, a.secs);
    row(
        &format!("CPU s, steady state ({w})"),
        rs.iter().map(|r| secs(r, r.cpu_window.total())).collect(),
        &f2,
        true,
    );
    row(
        &format!("  of which user ({w})"),
        rs.iter().map(|r| secs(r, r.cpu_window.user)).collect(),
        &f2,
        true,
    );
    row(
        &format!("  of which system ({w})"),
        rs.iter().map(|r| secs(r, r.cpu_window.sys)).collect(),
        &f2,
        true,
    );
    row(
        "CPU ms per 1,000 checks (steady state)",
        rs.iter()
            .map(|r| secs(r, r.cpu_window.total()) * 1e6 / (r.accepts.max(1) as f64))
            .collect(),
        &f1,
        true,
    );
    row(
        "**peak RSS, MiB** (VmHWM, summed over the processes)",
        rs.iter().map(|r| r.hwm_kib as f64 / 1024.0).collect(),
        &|v| format!("**{v:.1}**"),
        true,
    );
    row(
        &format!("RSS at {} s, MiB (VmRSS, summed)", a.secs),
        rs.iter().map(|r| r.rss_kib as f64 / 1024.0).collect(),
        &f1,
        true,
    );
    row(
        &format!("PSS at {} s, MiB (shared pages counted once)", a.secs),
        rs.iter().map(|r| r.pss_kib as f64 / 1024.0).collect(),
        &f1,
        true,
    );
    row(
        "processes",
        rs.iter().map(|r| r.procs.len() as f64).collect(),
        &f0,
        false,
    );
    row(
        &format!("checks/s accepted at the servers ({w})"),
        rs.iter().map(|r| r.accepts as f64 / r.window).collect(),
        &f1,
        true,
    );
    row(
        "connection attempts/s (TCP ActiveOpens, same window)",
        rs.iter()
            .map(|r| r.tcp.active_opens as f64 / r.window)
            .collect(),
        &f1,
        true,
    );
    row(
        "fewest checks in one second after warm-up",
        rs.iter()
            .map(|r| {
                r.per_second
                    .iter()
                    .skip(a.warmup as usize)
                    .copied()
                    .min()
                    .unwrap_or(0) as f64
            })
            .collect(),
        &f0,
        false,
    );
    let cells: Vec<String> = rs
        .iter()
        .map(|r| format!("{} / {}", r.services_end, r.dests_end))
        .collect();
    writeln!(
        out,
        "| services / destinations in the kernel at {} s (of {} / {}) | {} |{}",
        a.secs,
        layout.services,
        layout.servers,
        cells.join(" | "),
        if two { " - |" } else { "" }
    )?;
    let mut row = |label: &str, vals: Vec<f64>, fmt: &dyn Fn(f64) -> String, ratio: bool| {
        let cells: Vec<String> = vals.iter().map(|v| fmt(*v)).collect();
        let r = match (two, ratio) {
            (true, true) => format!(" {:.2}x |", vals[1] / vals[0]),
            (true, false) => " - |".to_string(),
            _ => String::new(),
        };
        let _ = writeln!(out, "| {label} | {} |{r}", cells.join(" | "));
    };
    row(
        "all destinations in the kernel after (s from start)",
        rs.iter().map(|r| r.full_at.unwrap_or(f64::NAN)).collect(),
        &f1,
        false,
    );
    row(
        "stop: SIGTERM to exit, services removed (s)",
        rs.iter().map(|r| r.stop).collect(),
        &f2,
        false,
    );
    row(
        "log lines (start-up, run, convergence, stop)",
        rs.iter().map(|r| r.log_lines as f64).collect(),
        &f0,
        false,
    );
    let per_check = |r: &RunResult, n: u64| n as f64 / r.tcp.active_opens.max(1) as f64;
    row(
        "TCP segments sent per check (both ends)",
        rs.iter().map(|r| per_check(r, r.tcp.out_segs)).collect(),
        &f2,
        true,
    );
    row(
        "TCP resets sent per check",
        rs.iter().map(|r| per_check(r, r.tcp.out_rsts)).collect(),
        &f2,
        false,
    );
    row(
        "TIME_WAITs completed per check (TcpExt TW)",
        rs.iter().map(|r| per_check(r, r.tcp.time_waits)).collect(),
        &f2,
        false,
    );
    row(
        "TIME_WAIT sockets at the end of the window",
        rs.iter().map(|r| r.tcp.tw_now as f64).collect(),
        &f0,
        false,
    );
    row(
        "TIME_WAIT overflows (no bucket) in the window",
        rs.iter().map(|r| r.tcp.tw_overflows as f64).collect(),
        &f0,
        false,
    );
    row(
        "context switches per check (steady state)",
        rs.iter()
            .map(|r| r.switches as f64 / (r.accepts.max(1) as f64))
            .collect(),
        &f2,
        true,
    );
    row(
        "listener thread CPU s (the benchmark's own servers, steady state)",
        rs.iter().map(|r| r.listener_cpu).collect(),
        &f2,
        false,
    );
    row(
        "guest CPU ms of a fixed work unit (median; a rough check of the conditions)",
        rs.iter().map(|r| r.work_unit_ms).collect(),
        &f2,
        true,
    );
    row(
        &format!("whole VM CPU busy ({w})"),
        rs.iter().map(|r| r.vm_busy * 100.0).collect(),
        &|v| format!("{v:.0}%"),
        false,
    );
    row(
        "listen queue overflows and drops (should be 0)",
        rs.iter().map(|r| r.tcp.listen_overflows as f64).collect(),
        &f0,
        false,
    );

    if rs.len() > 2 {
        summary(&mut out, a, rs)?;
    }
    if !layout.failed.is_empty() {
        let n = layout.failed.len();
        writeln!(out)?;
        writeln!(
            out,
            "| {n} of {} real servers fail at once: removed from the kernel after (first / \
             median / last) | bound | {} |",
            layout.servers,
            rs.iter()
                .map(|r| match r.name {
                    "keepalived" => format!(
                        "keepalived (retry {}, delay_before_retry {} s)",
                        a.fall - 1,
                        INTERVAL.as_secs()
                    ),
                    _ => format!("keepalive-d (fall {})", a.fall),
                })
                .collect::<Vec<_>>()
                .join(" | ")
        )?;
        writeln!(out, "|---|---|{}", "---|".repeat(rs.len()))?;
        let spread = |v: &[Option<f64>]| -> String {
            let mut t: Vec<f64> = v.iter().flatten().copied().collect();
            if t.is_empty() {
                return format!("**never** (none of {} within the deadline)", v.len());
            }
            t.sort_by(f64::total_cmp);
            let missing = v.len() - t.len();
            let mut s = format!(
                "{:.2} / {:.2} / {:.2} s",
                t[0],
                t[(t.len() - 1) / 2],
                t[t.len() - 1]
            );
            if missing > 0 {
                let _ = write!(s, " ({missing} never)");
            }
            s
        };
        let scenarios = rs.first().map_or(0, |r| r.conv.len());
        for k in 0..scenarios {
            let Some(c0) = rs[0].conv.get(k) else {
                continue;
            };
            let bound = c0.failure.bound(a.fall).as_secs_f64();
            let bound_text = match c0.failure {
                Failure::Timeout => format!("{bound:.1} s (fall x interval + timeout)"),
                _ => format!("{bound:.1} s (fall x interval)"),
            };
            let cells: Vec<String> = rs
                .iter()
                .map(|r| {
                    r.conv
                        .get(k)
                        .map_or("-".to_string(), |c| spread(&c.removal))
                })
                .collect();
            writeln!(
                out,
                "| {} | {bound_text} | {} |",
                c0.failure.describe(),
                cells.join(" | ")
            )?;
        }
        for k in 0..scenarios {
            let Some(c0) = rs[0].conv.get(k) else {
                continue;
            };
            let cells: Vec<String> = rs
                .iter()
                .map(|r| {
                    r.conv.get(k).map_or("-".to_string(), |c| {
                        format!(
                            "{}; {} healthy servers lost",
                            spread(&c.recovery),
                            c.others_lost
                        )
                    })
                })
                .collect();
            let label = match c0.failure {
                Failure::Refused => "refused, repaired (listening again): back after",
                Failure::Timeout => "timeout, repaired (route deleted): back after",
                Failure::Unreachable => "unreachable, repaired (route deleted): back after",
            };
            writeln!(
                out,
                "| {label} | rise 1: up to 1 interval | {} |",
                cells.join(" | ")
            )?;
        }
        let periods: Vec<String> = rs
            .iter()
            .flat_map(|r| &r.conv)
            .map(|c| format!("{:.0}", c.poll_period * 1e3))
            .collect();
        writeln!(out)?;
        writeln!(
            out,
            "Times are from the failure (or repair) to the first table poll that shows the \
             change; the table was polled every {} ms (per scenario and daemon: {} ms).",
            POLL.as_millis(),
            periods.join(", ")
        )?;
    }
    writeln!(out)?;
    for r in rs {
        let procs: Vec<String> = r
            .procs
            .iter()
            .map(|(pid, p)| {
                format!(
                    "{}[{pid}] {:.2} s user + {:.2} s system, VmHWM {:.1} MiB, at {} s \
                     RssAnon {:.1} MiB + RssFile {:.1} MiB",
                    p.comm,
                    secs(r, p.cpu.user),
                    secs(r, p.cpu.sys),
                    p.hwm_kib as f64 / 1024.0,
                    a.secs,
                    p.anon_kib as f64 / 1024.0,
                    p.file_kib as f64 / 1024.0
                )
            })
            .collect();
        writeln!(out, "- {}: {}", r.name, procs.join("; "))?;
    }
    let argv: Vec<String> = std::env::args().collect();
    writeln!(out)?;
    writeln!(out, "Reproduce:")?;
    writeln!(out)?;
    writeln!(out, "```sh")?;
    writeln!(out, "cargo build --release -p keepalive-d")?;
    writeln!(
        out,
        "cargo build --release -p ipvs-integration --bin check-bench"
    )?;
    writeln!(out, "cargo lab run -- {}", argv.join(" "))?;
    writeln!(out, "```")?;
    Ok(out)
}
