//! `reload-bench`: start and reload a large IPVS configuration, keepalived against
//! keepalive-d, in one run.
//!
//! Each daemon, in turn and in a fresh network namespace, gets the same table: N virtual
//! servers (TCP, `wlc`, NAT) with M real servers each, **without health checks** (a real
//! server without a check is up for both daemons, so the table is exactly the
//! configuration and nothing but the configuration changes it). Measured for each:
//!
//! 1. **start**: from spawning the daemon until the kernel holds the whole table;
//! 2. **no-op reload**: SIGHUP with the same file;
//! 3. **one real server changed**: one real server of the middle service replaced;
//! 4. **`--changed` services removed** (the last ones; 100 by default: 1% of 10,000);
//! 5. **the same services added back**.
//!
//! For each step: the time until the kernel's table shows the expected state (polled
//! every `--poll-ms` on a few sampled services, then confirmed by one full dump that is
//! not timed), the time until the daemon logs that it finished (keepalive-d `reloaded:`,
//! keepalived `Reload complete`), and the IPVS netlink requests the daemon sent,
//! counted on the wire with an nlmon device: writes (new/set/delete service or
//! destination), write `sendmsg`s, and dump requests (the bench's own polls excluded).
//! A step ends once the daemon has been quiet (no write) for `--quiet-ms`.
//!
//! keepalived runs checker-only in the foreground (`keepalived -C -n -l -G`), like
//! check-bench. Every step is bounded by `--timeout`; a daemon that does not finish a
//! step in time is reported as such and its remaining steps are skipped.
//!
//! Needs root and IPVS: run it in the lab (BENCHMARKS.md has the command and results).

use clap::Parser;
use ipvs_integration::bench::{self, Cpu, Daemon};
use ipvs_integration::netns::TestNs;
use ipvs_integration::nlmon::{Capture, NLM_F_DUMP};
use ipvs_sys::transport::IpvsSocket;
use ipvs_sys::{Protocol, ServiceAttrs};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Start and reload a large IPVS configuration: keepalived vs keepalive-d")]
struct Args {
    /// Virtual servers.
    #[arg(long, default_value_t = 10_000)]
    services: u32,
    /// Real servers per virtual server.
    #[arg(long, default_value_t = 10)]
    reals: u32,
    /// Virtual servers removed, then added back, by the last two reloads.
    #[arg(long, default_value_t = 100)]
    changed: u32,
    /// Seconds allowed for each step (start, each reload) of each daemon.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Period of the table polls, in milliseconds.
    #[arg(long, default_value_t = 100)]
    poll_ms: u64,
    /// A step ends when the daemon has sent no write for this long (milliseconds).
    #[arg(long, default_value_t = 2000)]
    quiet_ms: u64,
    /// keepalive-d's `ipvs.reconcile_interval` (its periodic drift repair dumps the
    /// whole table; long by default so that no periodic reconcile falls into a step).
    #[arg(long, default_value = "10m")]
    reconcile_interval: String,
    #[command(flatten)]
    daemons: bench::DaemonArgs,
}

type BoxError = Box<dyn std::error::Error>;

/// IPVS generic-netlink commands that write: new/set/delete service, new/set/delete
/// destination, zero, flush.
const WRITES: [u8; 8] = [1, 2, 3, 5, 6, 7, 16, 17];
/// `IPVS_CMD_GET_SERVICE`, `IPVS_CMD_GET_DEST`.
const GET_SERVICE: u8 = 4;
const GET_DEST: u8 = 8;
/// The generic-netlink controller's family id (family lookups are not IPVS requests).
const GENL_ID_CTRL: u16 = 0x10;

fn main() -> Result<(), BoxError> {
    let a = Args::parse();
    if a.services == 0 || a.services > 250 * 250 || a.reals == 0 || a.reals > 200 {
        return Err("--services must be 1..=62500 and --reals 1..=200".into());
    }
    if a.changed >= a.services {
        return Err("--changed must be below --services".into());
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "# reload-bench: {} virtual servers x {} real servers ({} destinations), no health \
         checks, {} changed; kernel {}, {cpus} CPUs; poll {} ms, quiet {} ms, timeout {} s",
        a.services,
        a.reals,
        a.services * a.reals,
        a.changed,
        kernel.trim(),
        a.poll_ms,
        a.quiet_ms,
        a.timeout
    );
    let work = std::env::temp_dir().join(format!("reload-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let mut results = Vec::new();
    for (daemon, _) in a.daemons.list()? {
        results.push(run_daemon(&a, &daemon, &work)?);
    }
    let _ = std::fs::remove_dir_all(&work);
    print!("{}", report(&a, &results));
    Ok(())
}

/// Where everything is: virtual server `v` at 10.1.x.y:80, its real server `r` at
/// 10.(2+r).x.y:8000 (x.y from `v`); the replacement real server at 10.99.x.y:8000.
fn vip(v: u32) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::new(10, 1, (v / 250) as u8, (v % 250 + 1) as u8),
        80,
    )
}

fn rip(v: u32, r: u32) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::new(10, (2 + r) as u8, (v / 250) as u8, (v % 250 + 1) as u8),
        8000,
    )
}

fn replacement(v: u32) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::new(10, 99, (v / 250) as u8, (v % 250 + 1) as u8),
        8000,
    )
}

/// One configuration: its virtual servers and their real servers.
#[derive(Clone)]
struct Layout {
    services: Vec<(SocketAddrV4, Vec<SocketAddrV4>)>,
}

impl Layout {
    fn base(a: &Args) -> Self {
        Self {
            services: (0..a.services)
                .map(|v| (vip(v), (0..a.reals).map(|r| rip(v, r)).collect()))
                .collect(),
        }
    }

    fn keepalived_conf(&self) -> String {
        let mut s = String::from("global_defs {\n    router_id reload_bench\n}\n\n");
        for (vip, reals) in &self.services {
            let _ = writeln!(s, "virtual_server {} {} {{", vip.ip(), vip.port());
            s.push_str("    lb_algo wlc\n    lb_kind NAT\n    protocol TCP\n");
            for r in reals {
                let _ = writeln!(
                    s,
                    "    real_server {} {} {{\n        weight 1\n    }}",
                    r.ip(),
                    r.port()
                );
            }
            s.push_str("}\n");
        }
        s
    }

    fn keepalive_d_yaml(&self, reconcile_interval: &str) -> String {
        let mut s =
            format!("ipvs:\n  reconcile_interval: {reconcile_interval}\nvirtual_servers:\n");
        for (i, (vip, reals)) in self.services.iter().enumerate() {
            let _ = writeln!(
                s,
                "  - name: vs{i}\n    vip: {vip}\n    protocol: tcp\n    scheduler: wlc\n    \
                 forward: nat\n    real_servers:"
            );
            for r in reals {
                let _ = writeln!(s, "      - {{ address: {r}, weight: 1 }}");
            }
        }
        s
    }
}

/// What the kernel must show at the end of a step, checked on a few services (cheap, so
/// it can be polled), then on the whole table (one full dump).
#[derive(Clone)]
struct Expect {
    layout: Layout,
    /// Services whose destinations are polled.
    sample: Vec<usize>,
    /// Services that must be absent (polled).
    absent: Vec<SocketAddrV4>,
    /// The step changes the table (else its state is only checked at the end).
    changes: bool,
}

impl Expect {
    fn new(layout: &Layout, sample: Vec<usize>, absent: Vec<SocketAddrV4>) -> Self {
        Self {
            layout: layout.clone(),
            sample,
            absent,
            changes: true,
        }
    }

    /// The sampled services have exactly their real servers; the absent ones are gone.
    fn sampled(&self, ipvs: &mut Poller) -> Result<bool, BoxError> {
        for &i in &self.sample {
            let (vip, reals) = &self.layout.services[i];
            if dests(ipvs, *vip)? != reals.iter().copied().collect::<BTreeSet<_>>() {
                return Ok(false);
            }
        }
        for vip in &self.absent {
            // A dump of a missing service is empty: look at the service list instead.
            if ipvs.service(&ServiceAttrs::addr_key(Protocol::TCP, SocketAddr::V4(*vip))) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The whole table is exactly the layout (services and destinations).
    fn full(&self, ipvs: &mut Poller) -> Result<Result<(), String>, BoxError> {
        let services = ipvs.services()?;
        if services.len() != self.layout.services.len() {
            return Ok(Err(format!(
                "{} services, {} expected",
                services.len(),
                self.layout.services.len()
            )));
        }
        for (vip, reals) in &self.layout.services {
            let have = dests(ipvs, *vip)?;
            if have != reals.iter().copied().collect::<BTreeSet<_>>() {
                return Ok(Err(format!(
                    "{vip}: {} destinations, {} expected",
                    have.len(),
                    reals.len()
                )));
            }
        }
        Ok(Ok(()))
    }
}

/// The bench's own view of the table: its dump requests are counted, to be told apart
/// from the daemon's on the wire (requests carry no sender id).
struct Poller {
    sock: IpvsSocket,
    dumps: u64,
}

impl Poller {
    fn services(&mut self) -> Result<Vec<ServiceAttrs>, BoxError> {
        self.dumps += 1;
        Ok(self.sock.services()?)
    }

    fn service(&mut self, key: &ServiceAttrs) -> bool {
        self.sock.service(key).is_ok()
    }

    fn destinations(&mut self, svc: &ServiceAttrs) -> Result<Vec<ipvs_sys::DestAttrs>, BoxError> {
        self.dumps += 1;
        Ok(self.sock.destinations(svc)?)
    }
}

/// The destinations of the TCP service `vip` (empty if it does not exist).
fn dests(ipvs: &mut Poller, vip: SocketAddrV4) -> Result<BTreeSet<SocketAddrV4>, BoxError> {
    let svc = ServiceAttrs::addr_key(Protocol::TCP, SocketAddr::V4(vip));
    Ok(ipvs
        .destinations(&svc)?
        .iter()
        .filter_map(|d| match (d.addr?, d.port?) {
            (std::net::IpAddr::V4(ip), port) => Some(SocketAddrV4::new(ip, port)),
            _ => None,
        })
        .collect())
}

/// IPVS requests seen on the wire (the bench's own dumps included).
#[derive(Default)]
struct Wire {
    writes: AtomicU64,
    write_frames: AtomicU64,
    dumps: AtomicU64,
    last_write: Mutex<Option<Instant>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct WireCount {
    writes: u64,
    write_frames: u64,
    dumps: u64,
}

impl Wire {
    fn count(&self) -> WireCount {
        WireCount {
            writes: self.writes.load(Ordering::SeqCst),
            write_frames: self.write_frames.load(Ordering::SeqCst),
            dumps: self.dumps.load(Ordering::SeqCst),
        }
    }

    fn last_write(&self) -> Option<Instant> {
        *self
            .last_write
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::ops::Sub for WireCount {
    type Output = WireCount;
    fn sub(self, b: WireCount) -> WireCount {
        WireCount {
            writes: self.writes - b.writes,
            write_frames: self.write_frames - b.write_frames,
            dumps: self.dumps - b.dumps,
        }
    }
}

/// Counts the IPVS requests captured on `capture` until `stop`.
fn count_requests(capture: &Capture, wire: &Wire, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let frames = capture.drain();
        if frames.is_empty() {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        for f in &frames {
            let mut writes = 0;
            for r in f.genl_requests() {
                if r.kind == GENL_ID_CTRL {
                    continue;
                }
                if WRITES.contains(&r.cmd) {
                    writes += 1;
                } else if (r.cmd == GET_SERVICE || r.cmd == GET_DEST)
                    && r.flags & NLM_F_DUMP == NLM_F_DUMP
                {
                    wire.dumps.fetch_add(1, Ordering::SeqCst);
                }
            }
            if writes > 0 {
                wire.writes.fetch_add(writes, Ordering::SeqCst);
                wire.write_frames.fetch_add(1, Ordering::SeqCst);
                *wire
                    .last_write
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
            }
        }
    }
}

/// The configuration file of `daemon`, written for `layout` (atomically: a reload never
/// reads half a file).
fn write_config(
    daemon: &Daemon,
    a: &Args,
    layout: &Layout,
    work: &Path,
) -> Result<PathBuf, BoxError> {
    let (file, text) = match daemon {
        Daemon::Keepalived(_) => ("keepalived.conf", layout.keepalived_conf()),
        Daemon::KeepaliveD(_) => (
            "keepalive-d.yaml",
            layout.keepalive_d_yaml(&a.reconcile_interval),
        ),
    };
    let path = work.join(file);
    let tmp = work.join(format!("{file}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

fn spawn(
    daemon: &Daemon,
    ns: &TestNs,
    conf: &Path,
    work: &Path,
    log: &Path,
) -> Result<Child, BoxError> {
    let mut cmd = bench::command(daemon, ns, work, log)?;
    match daemon {
        Daemon::Keepalived(_) => {
            cmd.arg("-f").arg(conf);
        }
        Daemon::KeepaliveD(_) => {
            cmd.arg("run")
                .arg("-c")
                .arg(conf)
                .arg("--control-socket")
                .arg(work.join("control.sock"))
                .env("RUST_LOG", "info");
        }
    }
    Ok(cmd.spawn().map_err(|e| format!("{}: {e}", daemon.name()))?)
}

/// The log line that says a reload is done.
fn reload_done(daemon: &Daemon) -> &'static str {
    match daemon {
        Daemon::Keepalived(_) => "Reload complete",
        Daemon::KeepaliveD(_) => "reloaded: ",
    }
}

/// A log line that says a reload failed.
fn reload_failed(daemon: &Daemon) -> &'static str {
    match daemon {
        Daemon::Keepalived(_) => "Configuration file error",
        Daemon::KeepaliveD(_) => "reload refused",
    }
}

/// One measured step.
struct Step {
    name: String,
    /// Until the kernel showed the expected state (None: not a table change).
    table: Option<Duration>,
    /// Until the daemon logged that it finished (None: no such line).
    logged: Option<Duration>,
    /// Netlink requests of the step.
    wire: WireCount,
    /// CPU time of the daemon's processes during the step (quiet time included).
    cpu: Cpu,
    /// What the daemon logged about it.
    note: String,
    /// Did not finish in time, or went wrong.
    failed: Option<String>,
}

struct RunResult {
    name: &'static str,
    version: String,
    steps: Vec<Step>,
    peak_rss_kib: u64,
}

fn run_daemon(a: &Args, daemon: &Daemon, work: &Path) -> Result<RunResult, BoxError> {
    let name = daemon.name();
    let version = daemon.version();
    eprintln!("== {name} ({version})");
    let ns = TestNs::new(&format!("rb-{name}"))?;
    let capture = Capture::start(&ns)?;
    capture.requests_only(256 << 20)?;
    let mut sock = IpvsSocket::open_in_netns(format!("/run/netns/{}", ns.name()))?;
    sock.set_timeout(Duration::from_secs(120));
    let mut ipvs = Poller { sock, dumps: 0 };
    let wire = Arc::new(Wire::default());
    let stop = Arc::new(AtomicBool::new(false));
    let counter = {
        let (wire, stop) = (wire.clone(), stop.clone());
        std::thread::spawn(move || count_requests(&capture, &wire, &stop))
    };
    let log = work.join(format!("{name}.log"));
    let base = Layout::base(a);
    let conf = write_config(daemon, a, &base, work)?;
    let t0 = Instant::now();
    let mut child = spawn(daemon, &ns, &conf, work, &log)?;
    let watch = LogWatch::start(log.clone());
    let root = i32::try_from(child.id())?;
    let steps = steps(
        a, daemon, &base, work, &watch, &mut ipvs, &wire, &mut child, t0,
    );
    let peak_rss_kib = bench::descendants(root)
        .iter()
        .filter_map(|p| bench::proc_kib(*p, "status", "VmHWM:"))
        .sum();
    match bench::stop(name, &mut child, root, Duration::from_secs(120)) {
        Some(t) => eprintln!("{name}: stopped {:.1} s after SIGTERM", t.as_secs_f64()),
        None => eprintln!("{name}: killed"),
    }
    stop.store(true, Ordering::SeqCst);
    let _ = counter.join();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    eprintln!("{name} log: {} lines, the last ones:", text.lines().count());
    for l in last_lines(&text, 12) {
        eprintln!("  | {l}");
    }
    drop(ns);
    Ok(RunResult {
        name,
        version,
        steps: steps?,
        peak_rss_kib,
    })
}

/// The steps of one daemon, from its spawn at `t0`.
#[allow(clippy::too_many_arguments)]
fn steps(
    a: &Args,
    daemon: &Daemon,
    base: &Layout,
    work: &Path,
    watch: &LogWatch,
    ipvs: &mut Poller,
    wire: &Wire,
    child: &mut Child,
    t0: Instant,
) -> Result<Vec<Step>, BoxError> {
    let n = base.services.len();
    let spread = |range: std::ops::Range<usize>| -> Vec<usize> {
        let len = range.len();
        let mut v: Vec<usize> = (0..8).map(|k| range.start + k * len / 8).collect();
        v.push(range.end - 1);
        v.dedup();
        v
    };
    let mut steps = Vec::new();
    // 1. Start.
    let start = measure(
        a,
        daemon,
        "start (empty table to full table)",
        &Expect::new(base, spread(0..n), Vec::new()),
        false,
        watch,
        ipvs,
        wire,
        child,
        t0,
        WireCount::default(),
        Cpu::default(),
        0,
    )?;
    let ok = start.failed.is_none();
    steps.push(start);
    if !ok {
        return Ok(steps);
    }
    // 2-5. Reloads.
    let middle = n / 2;
    let mut one = base.clone();
    if let Some(last) = one.services[middle].1.last_mut() {
        *last = replacement(u32::try_from(middle)?);
    }
    let mut fewer = one.clone();
    let kept = n - a.changed as usize;
    fewer.services.truncate(kept);
    let plan = [
        (
            "no-op reload (same file)",
            base.clone(),
            Vec::new(),
            Vec::new(),
        ),
        (
            "reload: one real server replaced",
            one.clone(),
            vec![middle],
            Vec::new(),
        ),
        (
            "reload: services removed",
            fewer,
            vec![kept - 1],
            spread(kept..n)
                .iter()
                .map(|&i| base.services[i].0)
                .collect(),
        ),
        ("reload: services added", one, spread(kept..n), Vec::new()),
    ];
    for (what, layout, sample, absent) in plan {
        let what = what.replace("services", &format!("{} services", a.changed));
        write_config(daemon, a, &layout, work)?;
        let from = watch.len();
        let before = wire.count();
        let root = i32::try_from(child.id())?;
        let cpu = bench::tree_cpu(root);
        let t = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(root),
            nix::sys::signal::Signal::SIGHUP,
        )?;
        let mut expect = Expect::new(&layout, sample, absent);
        expect.changes = !what.starts_with("no-op");
        let step = measure(
            a, daemon, &what, &expect, true, watch, ipvs, wire, child, t, before, cpu, from,
        )?;
        let ok = step.failed.is_none();
        steps.push(step);
        if !ok {
            break;
        }
    }
    Ok(steps)
}

/// Waits (at most `--timeout`) until the table is as `expect` says and, for a reload,
/// the daemon has logged its end; then until it is quiet. Times are from `t`.
#[allow(clippy::too_many_arguments)]
fn measure(
    a: &Args,
    daemon: &Daemon,
    name: &str,
    expect: &Expect,
    reload: bool,
    watch: &LogWatch,
    ipvs: &mut Poller,
    wire: &Wire,
    child: &mut Child,
    t: Instant,
    before: WireCount,
    cpu_before: Cpu,
    from: usize,
) -> Result<Step, BoxError> {
    eprintln!("{}: {name}", daemon.name());
    let deadline = t + Duration::from_secs(a.timeout);
    let poll = Duration::from_millis(a.poll_ms);
    let mut step = Step {
        name: name.to_owned(),
        table: None,
        logged: None,
        wire: WireCount::default(),
        cpu: Cpu::default(),
        note: String::new(),
        failed: None,
    };
    let mut table_done = false;
    let own_dumps = ipvs.dumps;
    loop {
        let now = Instant::now();
        if let Some(status) = child.try_wait()? {
            step.failed = Some(format!("the daemon exited ({status})"));
            break;
        }
        if reload && step.logged.is_none() {
            if let Some((seen, line)) = watch.find(from, reload_done(daemon)) {
                step.logged = Some(seen.saturating_duration_since(t));
                step.note = line
                    .split_once(reload_done(daemon))
                    .map_or("", |(_, rest)| rest)
                    .trim()
                    .to_owned();
            } else if let Some((_, line)) = watch.find(from, reload_failed(daemon)) {
                step.failed = Some(format!("reload failed: {line}"));
                break;
            }
        }
        if !table_done && !expect.changes {
            // Nothing to wait for in the table: check it once the daemon is done.
            if step.logged.is_some() {
                if let Err(why) = expect.full(ipvs)? {
                    step.failed = Some(format!("the table changed: {why}"));
                    break;
                }
                table_done = true;
            }
        } else if !table_done && expect.sampled(ipvs)? {
            // Confirm on the whole table (not timed); if it is not there yet, go on.
            let seen = now - t;
            match expect.full(ipvs)? {
                Ok(()) => {
                    table_done = true;
                    step.table = Some(seen);
                }
                Err(why) => eprintln!("  sampled services done at {seen:.2?}, not yet all: {why}"),
            }
        }
        let logged = !reload || step.logged.is_some();
        if table_done && logged {
            break;
        }
        if now >= deadline {
            step.failed = Some(format!(
                "did not finish within {} s ({})",
                a.timeout,
                if table_done || !expect.changes {
                    "no end of reload in the log"
                } else {
                    "the table never matched the configuration"
                }
            ));
            break;
        }
        std::thread::sleep(poll);
    }
    // Quiet: no write for --quiet-ms (bounded by the deadline too).
    let quiet = Duration::from_millis(a.quiet_ms);
    loop {
        let last = wire.last_write().unwrap_or(t).max(t);
        if last.elapsed() >= quiet || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    step.wire = wire.count() - before;
    step.cpu = bench::tree_cpu(i32::try_from(child.id())?).minus(cpu_before);
    step.wire.dumps = step.wire.dumps.saturating_sub(ipvs.dumps - own_dumps);
    if step.failed.is_some() {
        eprintln!(
            "  {} log since the step began, the last lines:",
            daemon.name()
        );
        for l in watch.tail(from, 25) {
            eprintln!("  | {l}");
        }
    }
    eprintln!(
        "  table {:?}, logged {:?}, CPU {:.2} s, {} writes in {} sendmsg, {} dumps{}",
        step.table,
        step.logged,
        cpu_secs(step.cpu),
        step.wire.writes,
        step.wire.write_frames,
        step.wire.dumps,
        step.failed
            .as_ref()
            .map_or(String::new(), |f| format!(": {f}"))
    );
    Ok(step)
}

/// A daemon's log, each line with the instant the bench first saw it: a thread reads the
/// file every 10 ms, so that when a line appeared does not depend on what the bench was
/// doing then (a full table dump takes seconds).
struct LogWatch {
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LogWatch {
    fn start(path: PathBuf) -> Self {
        let lines: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (sink, flag) = (lines.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut done = 0;
            let mut partial = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                let bytes = std::fs::read(&path).unwrap_or_default();
                if let Some(new) = bytes.get(done..).filter(|b| !b.is_empty()) {
                    done = bytes.len();
                    partial.extend_from_slice(new);
                    let now = Instant::now();
                    let mut got = sink.lock().unwrap_or_else(PoisonError::into_inner);
                    while let Some(end) = partial.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = partial.drain(..=end).collect();
                        got.push((now, String::from_utf8_lossy(&line).trim_end().to_owned()));
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Self {
            lines,
            stop,
            thread: Some(thread),
        }
    }

    /// Lines seen so far.
    fn len(&self) -> usize {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The first line from line `from` on that contains `needle`, and when it was seen.
    fn find(&self, from: usize, needle: &str) -> Option<(Instant, String)> {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        lines
            .get(from..)?
            .iter()
            .find(|(_, l)| l.contains(needle))
            .cloned()
    }

    /// The last `n` lines from line `from` on.
    fn tail(&self, from: usize, n: usize) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        let after = lines.get(from..).unwrap_or_default();
        after[after.len().saturating_sub(n)..]
            .iter()
            .map(|(_, l)| l.clone())
            .collect()
    }
}

impl Drop for LogWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn last_lines(text: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()))
}

fn ticks_secs(ticks: u64) -> f64 {
    ticks as f64 / bench::clock_ticks()
}

fn cpu_secs(cpu: Cpu) -> f64 {
    ticks_secs(cpu.total())
}

fn report(a: &Args, rs: &[RunResult]) -> String {
    let mut out = String::new();
    for r in rs {
        let _ = writeln!(
            out,
            "\n## {} ({}), peak RSS {:.1} MiB\n",
            r.name,
            r.version,
            r.peak_rss_kib as f64 / 1024.0
        );
        let _ = writeln!(
            out,
            "| step | table as configured | end logged | CPU (user + sys) | IPVS writes | write sendmsgs | dumps | note |"
        );
        let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- | --- | --- |");
        for s in &r.steps {
            let table = match (&s.failed, s.table) {
                (Some(f), None) => f.clone(),
                (None, None) => "unchanged".to_owned(),
                (_, t) => secs(t),
            };
            let _ = writeln!(
                out,
                "| {} | {table} | {} | {:.2} s ({:.2} + {:.2}) | {} | {} | {} | {} |",
                s.name,
                secs(s.logged),
                cpu_secs(s.cpu),
                ticks_secs(s.cpu.user),
                ticks_secs(s.cpu.sys),
                s.wire.writes,
                s.wire.write_frames,
                s.wire.dumps,
                s.note.replace('|', "/")
            );
        }
    }
    // Side by side.
    let _ = writeln!(
        out,
        "\n## Side by side ({} x {}): time until the kernel has the configured table \
         (no-op: until the end is logged), CPU time of the daemon during the step, and IPVS writes\n",
        a.services, a.reals
    );
    let _ = write!(out, "| step |");
    for r in rs {
        let _ = write!(out, " {} |", r.name);
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "|---|{}", "---|".repeat(rs.len()));
    let names: Vec<&str> = rs
        .iter()
        .max_by_key(|r| r.steps.len())
        .map(|r| r.steps.iter().map(|s| s.name.as_str()).collect())
        .unwrap_or_default();
    for (i, name) in names.iter().enumerate() {
        let _ = write!(out, "| {name} |");
        for r in rs {
            let cell = match r.steps.get(i) {
                None => "not run".to_owned(),
                Some(s) => match (&s.failed, s.table.or(s.logged)) {
                    (Some(f), _) => f.clone(),
                    (None, t) => format!(
                        "{}, CPU {:.2} s, {} writes",
                        secs(t),
                        cpu_secs(s.cpu),
                        s.wire.writes
                    ),
                },
            };
            let _ = write!(out, " {cell} |");
        }
        let _ = writeln!(out);
    }
    out
}
