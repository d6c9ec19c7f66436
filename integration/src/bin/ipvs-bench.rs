//! `ipvs-bench`: programs and dumps a large IPVS table with ipvsadm and with ipvs-sys,
//! side by side, each run in a fresh network namespace. Needs root and IPVS: run it in
//! the lab (see BENCHMARKS.md for the command and the results).

use clap::Parser;
use ipvs_integration::netns::TestNs;
use ipvs_sys::transport::{AckMode, BatchOptions, IpvsSocket};
use ipvs_sys::{
    DestAttrs, ForwardMethod, IpvsMessage, Protocol, ServiceAttrs, ServiceFlags, encode_request,
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_GENERIC};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Create and dump a large IPVS table: ipvsadm vs ipvs-sys")]
struct Args {
    /// TCP services to create.
    #[arg(long, default_value_t = 10_000)]
    services: u32,
    /// NAT destinations per service.
    #[arg(long, default_value_t = 10)]
    dests: u32,
    /// Requests per sendmsg on the batched paths.
    #[arg(long, default_value_t = 512)]
    batch: usize,
    /// How often each whole-table read is timed (interleaved; the fastest is shown).
    #[arg(long, default_value_t = 3)]
    dump_reps: u32,
    /// Also measure `keepalive-d ipvs restore` (this binary) and reconciles of the
    /// loaded table with the ipvs crate.
    #[arg(long, value_name = "PATH")]
    keepalive_d: Option<std::path::PathBuf>,
    /// How often `keepalive-d ipvs restore` is timed, each into a fresh namespace (the
    /// first run and the fastest are shown: the first also loads the binary).
    #[arg(long, default_value_t = 3)]
    restore_reps: u32,
}

type BoxError = Box<dyn std::error::Error>;

fn main() -> Result<(), BoxError> {
    let a = Args::parse();
    let total = a.services * (1 + a.dests);
    println!(
        "# ipvs-bench: {} services x {} destinations = {total} messages, kernel {}",
        a.services,
        a.dests,
        std::fs::read_to_string("/proc/sys/kernel/osrelease")?.trim()
    );
    let msgs = messages(&a);

    // (a) ipvsadm -R, then ipvsadm -Ln on that table.
    let ns = TestNs::new("bench-ipvsadm")?;
    let script = restore_script(&a);
    let t = Instant::now();
    ns.run_with_input("ipvsadm", &["-R"], &script)?;
    let ipvsadm_restore = t.elapsed();
    let t = Instant::now();
    let listing = ns.run("ipvsadm", &["-L", "-n"])?;
    let ipvsadm_list = t.elapsed();
    check_count(
        listing
            .lines()
            .filter(|l| l.contains("->") && l.contains("Masq"))
            .count(),
        a.services * a.dests,
        "ipvsadm -Ln destinations",
    )?;
    drop(ns);

    // (b) ipvs-sys, one request per ACK.
    let ns = TestNs::new("bench-single")?;
    let mut ipvs = socket(&ns)?;
    let t = Instant::now();
    for m in &msgs {
        ipvs.execute(m)?;
    }
    let single = t.elapsed();
    drop(ipvs);
    drop(ns);

    // Raw limits: pre-encoded messages, only send and receive timed.
    let raw_every = raw_create(&msgs, a.batch, AckMode::EveryMessage)?;
    let raw_last = raw_create(&msgs, a.batch, AckMode::LastOfChunk)?;

    // (c) ipvs-sys batched, encoding included; then the dumps on that table.
    let ns = TestNs::new("bench-batch")?;
    let mut ipvs = socket(&ns)?;
    let opts = BatchOptions {
        chunk: a.batch,
        ack: AckMode::LastOfChunk,
        ..BatchOptions::default()
    };
    let t = Instant::now();
    let report = ipvs.batch(&msgs, &opts)?;
    let batched = t.elapsed();
    if !report.failures.is_empty() {
        return Err(format!(
            "batch: {} failures, first: {}",
            report.failures.len(),
            report.failures[0].error
        )
        .into());
    }
    // The same read twice: one call per dump, then the whole-table read.
    // The same read three ways, interleaved, `--dump-reps` times; each row keeps its
    // fastest run (the machine is shared: the minimum is the least disturbed).
    let mut per_call_time: Option<Took> = None;
    let mut typed_dump: Option<Took> = None;
    let mut single_thread: Option<Took> = None;
    let mut raw: Option<(Duration, Duration)> = None;
    for _ in 0..a.dump_reps.max(1) {
        let ((services, per_call), took) = timed(|| {
            let services = ipvs.services()?;
            let mut per_call = Vec::with_capacity(services.len());
            for s in &services {
                per_call.push(ipvs.destinations(s)?);
            }
            Ok((services, per_call))
        })?;
        per_call_time = Some(fastest(per_call_time, took));
        let n_dests: usize = per_call.iter().map(Vec::len).sum();
        check_count(n_dests, a.services * a.dests, "per-call dump destinations")?;
        let r = raw_dump(&ns, ipvs.family_id(), &services)?;
        raw = Some(raw.map_or(r, |old| if r.0 < old.0 { r } else { old }));
        let (table, took) = timed(|| Ok(ipvs.table()?))?;
        typed_dump = Some(fastest(typed_dump, took));
        let (inline, took) = timed(|| Ok(ipvs.table_single_thread()?))?;
        single_thread = Some(fastest(single_thread, took));
        let same = |t: &[(ServiceAttrs, Vec<DestAttrs>)]| {
            t.len() == services.len()
                && t.iter()
                    .zip(services.iter().zip(&per_call))
                    .all(|((s, d), (s2, d2))| s == s2 && d == d2)
        };
        if !same(&table) || !same(&inline) {
            return Err("IpvsSocket::table differs from services() + destinations()".into());
        }
    }
    let (Some(per_call_time), Some(typed_dump), Some(single_thread), Some(raw_dump)) =
        (per_call_time, typed_dump, single_thread, raw)
    else {
        return Err("no dump measured".into());
    };
    let t = Instant::now();
    ns.run("ipvsadm", &["-L", "-n"])?;
    let ipvsadm_list_same = t.elapsed();
    drop(ipvs);
    drop(ns);

    let s = |d: Duration| format!("{:.3} s", d.as_secs_f64());
    let x = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    let (raw_dump, raw_dump_cpu) = raw_dump;
    let mut out = String::new();
    writeln!(
        out,
        "| create {total} messages | time | vs raw limit | faster than ipvsadm -R |"
    )?;
    writeln!(out, "| --- | --- | --- | --- |")?;
    writeln!(
        out,
        "| ipvsadm -R | {} | {:.2}x | 1.0x |",
        s(ipvsadm_restore),
        x(ipvsadm_restore, raw_last)
    )?;
    writeln!(
        out,
        "| ipvs-sys, one request per ACK | {} | {:.2}x | {:.1}x |",
        s(single),
        x(single, raw_last),
        x(ipvsadm_restore, single)
    )?;
    writeln!(
        out,
        "| raw, pre-encoded, {} per sendmsg, ACK every message | {} | {:.2}x | {:.1}x |",
        a.batch,
        s(raw_every),
        x(raw_every, raw_last),
        x(ipvsadm_restore, raw_every)
    )?;
    writeln!(
        out,
        "| raw, pre-encoded, {} per sendmsg, ACK last (the limit) | {} | 1.00x | {:.1}x |",
        a.batch,
        s(raw_last),
        x(ipvsadm_restore, raw_last)
    )?;
    writeln!(
        out,
        "| **ipvs-sys batched** (encoding included) | **{}** | **{:.2}x** | **{:.1}x** |",
        s(batched),
        x(batched, raw_last),
        x(ipvsadm_restore, batched)
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "| dump the whole table | time | vs raw dump | faster than ipvsadm -Ln | CPU time (user + system, all threads) | CPU vs raw dump |"
    )?;
    writeln!(out, "| --- | --- | --- | --- | --- | --- |")?;
    writeln!(
        out,
        "| ipvsadm -L -n (table from ipvsadm -R) | {} | {:.2}x | 1.0x | - | - |",
        s(ipvsadm_list),
        x(ipvsadm_list, raw_dump)
    )?;
    writeln!(
        out,
        "| ipvsadm -L -n (table from the batch) | {} | {:.2}x | - | - | - |",
        s(ipvsadm_list_same),
        x(ipvsadm_list_same, raw_dump)
    )?;
    writeln!(
        out,
        "| raw dump (requests and replies, no decoding) | {} | 1.00x | {:.1}x | {} | 1.00x |",
        s(raw_dump),
        x(ipvsadm_list_same, raw_dump),
        s(raw_dump_cpu)
    )?;
    let decoded_row = |out: &mut String, label: &str, bold: &str, t: &Took| {
        writeln!(
            out,
            "| {label} | {bold}{}{bold} | {bold}{:.2}x{bold} | {bold}{:.1}x{bold} | {} | {:.2}x |",
            s(t.wall),
            x(t.wall, raw_dump),
            x(ipvsadm_list_same, t.wall),
            s(t.cpu),
            x(t.cpu, raw_dump_cpu)
        )
    };
    decoded_row(
        &mut out,
        "ipvs-sys, one call per dump (`services()`, then `destinations()` of each)",
        "",
        &per_call_time,
    )?;
    decoded_row(
        &mut out,
        "ipvs-sys, `IpvsSocket::table_single_thread` (decoded on the calling thread)",
        "",
        &single_thread,
    )?;
    decoded_row(
        &mut out,
        "**ipvs-sys typed dump** (`IpvsSocket::table`: decoded on a second thread)",
        "**",
        &typed_dump,
    )?;
    if let Some(kad) = &a.keepalive_d {
        reconcile(&a, kad, &script, ipvsadm_restore, &mut out)?;
    }
    print!("{out}");
    Ok(())
}

/// `keepalive-d ipvs restore` against `ipvsadm -R`, then reconciles of the loaded table.
fn reconcile(
    a: &Args,
    kad: &std::path::Path,
    script: &str,
    ipvsadm_restore: Duration,
    out: &mut String,
) -> Result<(), BoxError> {
    use std::io::Write as _;
    let restore_into = |ns: &TestNs| -> Result<Duration, BoxError> {
        let mut child = ns
            .command(&kad.display().to_string())
            .args(["ipvs", "restore"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()?;
        let t = Instant::now();
        child
            .stdin
            .take()
            .ok_or("no stdin")?
            .write_all(script.as_bytes())?;
        let status = child.wait()?;
        let took = t.elapsed();
        if !status.success() {
            return Err(format!("keepalive-d ipvs restore: {status}").into());
        }
        Ok(took)
    };
    // The writes of a restore alone: the same plan through `Ipvs::execute` (ops turned
    // into messages on a second thread while the batch goes out), to set against the
    // restore and the ipvs-sys batch above.
    let execute = {
        let ns = TestNs::new("bench-exec")?;
        let mut ipvs = ipvs::Ipvs::open_in_netns(format!("/run/netns/{}", ns.name()))?;
        ipvs.set_timeout(Duration::from_secs(120));
        let opts = ipvs::reconcile::ApplyOptions {
            scope: ipvs::reconcile::Scope::Desired,
            ..ipvs::reconcile::ApplyOptions::default()
        };
        let plan =
            ipvs::reconcile::plan(&ipvs::Table::new(), &ipvs::ipvsadm::parse(script)?, &opts);
        let t = Instant::now();
        let report = ipvs.execute(plan, &opts)?;
        let took = t.elapsed();
        if !report.is_complete() {
            return Err("Ipvs::execute of the restore plan: incomplete".into());
        }
        took
    };
    // Each run into a fresh namespace; the last one's table is reconciled below.
    let mut ns = TestNs::new("bench-kad")?;
    let first = restore_into(&ns)?;
    let mut restore = first;
    for _ in 1..a.restore_reps.max(1) {
        drop(ns);
        ns = TestNs::new("bench-kad")?;
        restore = restore.min(restore_into(&ns)?);
    }
    let s = |d: Duration| format!("{:.3} s", d.as_secs_f64());
    writeln!(out)?;
    writeln!(
        out,
        "| restore {} services x {} destinations | time | faster than ipvsadm -R |",
        a.services, a.dests
    )?;
    writeln!(out, "| --- | --- | --- |")?;
    writeln!(out, "| ipvsadm -R | {} | 1.0x |", s(ipvsadm_restore))?;
    let ratio = |d: Duration| ipvsadm_restore.as_secs_f64() / d.as_secs_f64().max(1e-9);
    writeln!(
        out,
        "| its writes alone (`Ipvs::execute` of the same plan, made beforehand) | {} | {:.1}x |",
        s(execute),
        ratio(execute)
    )?;
    writeln!(
        out,
        "| keepalive-d ipvs restore, first run (loads the binary) | {} | {:.1}x |",
        s(first),
        ratio(first)
    )?;
    writeln!(
        out,
        "| **keepalive-d ipvs restore** (parse, one dump, plan, batched writes; fastest of {}) | **{}** | **{:.1}x** |",
        a.restore_reps.max(1),
        s(restore),
        ratio(restore)
    )?;

    // Reconciles of the loaded table through the ipvs crate.
    let mut ipvs = ipvs::Ipvs::open_in_netns(format!("/run/netns/{}", ns.name()))?;
    ipvs.set_timeout(Duration::from_secs(120));
    let desired = ipvs::ipvsadm::parse(script)?;
    let opts = ipvs::reconcile::ApplyOptions::default();
    let mut run = |label: &str, table: &ipvs::Table, out: &mut String| -> Result<(), BoxError> {
        let t = Instant::now();
        let report = ipvs.apply(table, &opts)?;
        let took = t.elapsed();
        if !report.is_complete() {
            return Err(format!("{label}: apply incomplete:\n{report}").into());
        }
        writeln!(out, "| {label} | {} | {} |", report.plan().len(), s(took))?;
        Ok(())
    };
    writeln!(out)?;
    writeln!(
        out,
        "| reconcile the loaded table | writes | time (one dump, plan, writes) |"
    )?;
    writeln!(out, "| --- | --- | --- |")?;
    run("no change", &desired, out)?;
    let mut one = desired.clone();
    change_weights(&mut one, 1)?;
    run("one destination weight changed", &one, out)?;
    let mut pct = desired.clone();
    change_weights(&mut pct, (a.services * a.dests / 100) as usize)?;
    run(
        "1% of destinations changed (one of them already, above)",
        &pct,
        out,
    )?;
    Ok(())
}

/// Sets a new weight on the first `n` destinations (in table order).
fn change_weights(table: &mut ipvs::Table, n: usize) -> Result<(), BoxError> {
    let mut left = n;
    let keys: Vec<ipvs::ServiceKey> = table.services().map(|s| *s.key()).collect();
    for key in keys {
        let Some(svc) = table.service_mut(&key) else {
            continue;
        };
        let dests: Vec<ipvs::Destination> = svc.destinations().cloned().collect();
        for d in dests {
            if left == 0 {
                return Ok(());
            }
            let w = d.weight() + 1;
            svc.set_destination(d.with_weight(w)?)?;
            left -= 1;
        }
    }
    Ok(())
}

/// Wall-clock and CPU time of one measurement.
struct Took {
    wall: Duration,
    cpu: Duration,
}

/// CPU time (user + system) of this process so far, every thread included.
fn cpu_time() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec().max(0) as u64)
            + Duration::from_micros(t.tv_usec().max(0) as u64)
    };
    getrusage(UsageWho::RUSAGE_SELF)
        .map(|u| tv(u.user_time()) + tv(u.system_time()))
        .unwrap_or_default()
}

/// The faster of two measurements.
fn fastest(a: Option<Took>, b: Took) -> Took {
    match a {
        Some(a) if a.wall <= b.wall => a,
        _ => b,
    }
}

/// Runs `f`, measuring its wall-clock and CPU time.
fn timed<T>(f: impl FnOnce() -> Result<T, BoxError>) -> Result<(T, Took), BoxError> {
    let (cpu, t) = (cpu_time(), Instant::now());
    let v = f()?;
    let took = Took {
        wall: t.elapsed(),
        cpu: cpu_time().saturating_sub(cpu),
    };
    Ok((v, took))
}

fn socket(ns: &TestNs) -> Result<IpvsSocket, BoxError> {
    let mut s = IpvsSocket::open_in_netns(format!("/run/netns/{}", ns.name()))?;
    s.set_timeout(Duration::from_secs(120));
    Ok(s)
}

fn check_count(got: usize, want: u32, what: &str) -> Result<(), BoxError> {
    if got == want as usize {
        Ok(())
    } else {
        Err(format!("{what}: {got}, expected {want}").into())
    }
}

fn vip(i: u32) -> SocketAddrV4 {
    // 10,000 services: 100 addresses x 100 ports, all in 198.18.0.0/15 (benchmarking).
    SocketAddrV4::new(
        Ipv4Addr::new(198, 18, (i / 100 / 256) as u8, (i / 100 % 256) as u8),
        1000 + (i % 100) as u16,
    )
}

fn rip(i: u32, j: u32) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::new(198, 19, (i % 250) as u8, 1 + j as u8),
        8000 + (i / 250) as u16,
    )
}

fn messages(a: &Args) -> Vec<IpvsMessage> {
    let mut v = Vec::with_capacity((a.services * (1 + a.dests)) as usize);
    for i in 0..a.services {
        let svc = ServiceAttrs::addr_key(Protocol::TCP, vip(i).into()).with_config(
            "wlc",
            ServiceFlags::EMPTY,
            0,
        );
        let key = svc.key();
        v.push(IpvsMessage::new_service(svc));
        for j in 0..a.dests {
            let d = DestAttrs::key_of(rip(i, j).into()).with_config(ForwardMethod::MASQ, 1);
            v.push(IpvsMessage::new_dest(key.clone(), d));
        }
    }
    v
}

fn restore_script(a: &Args) -> String {
    let mut s = String::new();
    for i in 0..a.services {
        let _ = writeln!(s, "-A -t {} -s wlc", vip(i));
        for j in 0..a.dests {
            let _ = writeln!(s, "-a -t {} -r {} -m -w 1", vip(i), rip(i, j));
        }
    }
    s
}

/// A bare generic-netlink socket in `ns`, for the raw measurements.
fn raw_socket(ns: &TestNs) -> Result<Socket, BoxError> {
    let sock = ns.enter(|| -> Result<Socket, std::io::Error> {
        let mut s = Socket::new(NETLINK_GENERIC)?;
        s.bind_auto()?;
        s.connect(&SocketAddr::new(0, 0))?;
        s.set_cap_ack(true)?;
        Ok(s)
    })??;
    let fd = std::os::fd::AsFd::as_fd(&sock);
    nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::RcvBufForce, &(32 << 20))?;
    nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::SndBufForce, &(8 << 20))?;
    Ok(sock)
}

/// Creates the table from pre-encoded chunks; times only sending and receiving.
fn raw_create(msgs: &[IpvsMessage], batch: usize, ack: AckMode) -> Result<Duration, BoxError> {
    let ns = TestNs::new("bench-raw")?;
    let family = socket(&ns)?.family_id();
    let sock = raw_socket(&ns)?;
    let mut chunks = Vec::new();
    let mut seq = 1u32;
    for part in msgs.chunks(batch) {
        let mut buf = Vec::new();
        for (i, m) in part.iter().enumerate() {
            let last = i + 1 == part.len();
            let flags = if ack == AckMode::EveryMessage || last {
                m.request_flags()
            } else {
                m.request_flags() & !netlink_packet_core::NLM_F_ACK
            };
            encode_request(&mut buf, m, family, seq, flags)?;
            seq += 1;
        }
        let wait = if ack == AckMode::EveryMessage {
            part.len()
        } else {
            1
        };
        chunks.push((buf, wait));
    }
    let mut rbuf = vec![0u8; 256 * 1024];
    let t = Instant::now();
    for (buf, wait) in &chunks {
        sock.send(buf, 0)?;
        let mut got = 0;
        while got < *wait {
            let n = sock.recv(&mut &mut rbuf[..], 0)?;
            // Count final replies (NLMSG_ERROR) in the datagram; an errno is a failure.
            let mut pos = 0;
            while pos + 20 <= n {
                let len = u32::from_ne_bytes(rbuf[pos..pos + 4].try_into()?) as usize;
                let kind = u16::from_ne_bytes(rbuf[pos + 4..pos + 6].try_into()?);
                if kind == 2 {
                    let err = i32::from_ne_bytes(rbuf[pos + 16..pos + 20].try_into()?);
                    if err != 0 {
                        return Err(format!("raw create: errno {}", -err).into());
                    }
                    got += 1;
                }
                pos += len.max(16).next_multiple_of(4);
            }
        }
    }
    Ok(t.elapsed())
}

/// The whole table's dump (services, then each service's destinations), requests and
/// replies only: nothing decoded. Returns the wall-clock and the CPU time.
fn raw_dump(
    ns: &TestNs,
    family: u16,
    services: &[ServiceAttrs],
) -> Result<(Duration, Duration), BoxError> {
    let sock = raw_socket(ns)?;
    let mut reqs = Vec::with_capacity(services.len() + 1);
    let mut buf = Vec::new();
    encode_request(
        &mut buf,
        &IpvsMessage::dump_services(),
        family,
        1,
        IpvsMessage::dump_services().request_flags(),
    )?;
    reqs.push(buf);
    for (i, s) in services.iter().enumerate() {
        let m = IpvsMessage::dump_dests(s.key());
        let mut buf = Vec::new();
        encode_request(&mut buf, &m, family, 2 + i as u32, m.request_flags())?;
        reqs.push(buf);
    }
    let mut rbuf = vec![0u8; 256 * 1024];
    let (cpu, t) = (cpu_time(), Instant::now());
    for r in &reqs {
        sock.send(r, 0)?;
        'recv: loop {
            let n = sock.recv(&mut &mut rbuf[..], 0)?;
            let mut pos = 0;
            while pos + 16 <= n {
                let len = u32::from_ne_bytes(rbuf[pos..pos + 4].try_into()?) as usize;
                let kind = u16::from_ne_bytes(rbuf[pos + 4..pos + 6].try_into()?);
                if kind == 3 || kind == 2 {
                    break 'recv;
                }
                pos += len.max(16).next_multiple_of(4);
            }
        }
    }
    Ok((t.elapsed(), cpu_time().saturating_sub(cpu)))
}
