//! `keepalive-d ipvs ...`: the kernel's IPVS table for people used to ipvsadm.

use std::fmt::Write as _;
use std::io::Read as _;
use std::process::ExitCode;

use ipvs::reconcile::{ApplyOptions, Scope};
use ipvs::{
    Destination, DestinationStats, Forward, Info, Ipvs, Observed, PersistenceMask, Service,
    ServiceKey, Stats, socket_addr_to_string,
};

use super::IpvsCommand;

/// Runs one `ipvs` subcommand; an error is printed by the caller as one line.
pub(crate) fn run(cmd: &IpvsCommand) -> Result<ExitCode, String> {
    match cmd {
        IpvsCommand::List { stats, rate, json } => {
            let mut ipvs = open()?;
            let info = ipvs.info().map_err(|e| e.to_string())?;
            let observed = ipvs.table().map_err(|e| e.to_string())?;
            let text = if *json {
                list_json(&info, &observed)?
            } else {
                let format = if *stats {
                    Format::Stats
                } else if *rate {
                    Format::Rate
                } else {
                    Format::Plain
                };
                list(&info, &observed, format)
            };
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        IpvsCommand::Save => {
            let observed = open()?.table().map_err(|e| e.to_string())?;
            print!("{}", ipvs::ipvsadm::print(observed.table()));
            Ok(ExitCode::SUCCESS)
        }
        IpvsCommand::Restore { dry_run } => restore(*dry_run),
        IpvsCommand::Zero => {
            open()?.zero(None).map_err(|e| e.to_string())?;
            Ok(ExitCode::SUCCESS)
        }
        IpvsCommand::Flush => {
            open()?.flush().map_err(|e| e.to_string())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn open() -> Result<Ipvs, String> {
    Ipvs::open().map_err(|e| e.to_string())
}

/// `ipvs restore`: parse stdin first (nothing is written on a bad line), then one batch.
fn restore(dry_run: bool) -> Result<ExitCode, String> {
    // Sized up front when stdin is a file (`< rules`): a restore of 100,000 lines is
    // 5.5 MB, which a growing buffer would copy about twice over.
    let size = std::fs::metadata("/dev/stdin").map_or(0, |m| m.len());
    let mut text = String::with_capacity(usize::try_from(size).unwrap_or(0).saturating_add(1));
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    let table = ipvs::ipvsadm::parse(&text).map_err(|e| e.to_string())?;
    // Like ipvsadm -R: only the services of the input are touched.
    let opts = ApplyOptions {
        scope: Scope::Desired,
        ..ApplyOptions::default()
    };
    let mut ipvs = open()?;
    if dry_run {
        let plan = ipvs.plan(&table, &opts).map_err(|e| e.to_string())?;
        print!("{plan}");
        eprintln!("keepalive-d: {} operations planned (dry run)", plan.len());
        return Ok(ExitCode::SUCCESS);
    }
    let report = ipvs.apply(&table, &opts).map_err(|e| e.to_string())?;
    // Like ipvsadm -R, silent when all went in: only what failed or was not sent is
    // printed (a restore of 100,000 lines does not print 100,000 "ok"s).
    let mut out = String::new();
    for f in report.failures() {
        let _ = writeln!(out, "{}  # FAILED ({})", f.op, f.error);
    }
    let ops = report.plan().ops();
    for op in &ops[ops.len().saturating_sub(report.not_sent())..] {
        let _ = writeln!(out, "{op}  # not sent");
    }
    print!("{out}");
    let failed = report.failures().len();
    eprintln!(
        "keepalive-d: {} operations applied, {failed} failed, {} not sent",
        report.applied().count(),
        report.not_sent()
    );
    let complete = report.is_complete();
    // The process ends now: freeing a table and a plan of 110,000 entries piece by piece
    // only delays its exit (the kernel takes the memory back at once).
    std::mem::forget((report, table, text));
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The `ipvsadm -L -n` variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Plain,
    Stats,
    Rate,
}

/// The table as `ipvsadm -L -n` (`--stats`, `--rate`) prints it: ipvsadm sorts services
/// and destinations the way [`ipvs::Table`] orders them.
fn list(info: &Info, observed: &Observed, format: Format) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "IP Virtual Server version {} (size={})",
        info.version, info.conn_table_size
    );
    out.push_str(match format {
        Format::Plain => {
            "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        }
        Format::Stats => {
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  -> RemoteAddress:Port\n"
        }
        Format::Rate => {
            "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n  -> RemoteAddress:Port\n"
        }
    });
    for svc in observed.table().services() {
        let stats = observed.service_stats(svc.key());
        let name = service_name(svc.key());
        match format {
            Format::Plain => {
                let _ = writeln!(out, "{name} {}", service_flags(svc));
            }
            Format::Stats => {
                let _ = writeln!(
                    out,
                    "{name:<33}{}",
                    counters(&stats.map(|s| s.stats).unwrap_or_default())
                );
            }
            Format::Rate => {
                let _ = writeln!(
                    out,
                    "{name:<33}{}",
                    rates(&stats.map(|s| s.stats).unwrap_or_default())
                );
            }
        }
        for dest in svc.destinations() {
            let ds = stats
                .and_then(|s| s.destinations.get(&dest.addr()))
                .copied()
                .unwrap_or_default();
            out.push_str(&dest_line(dest, &ds, format));
        }
    }
    out
}

/// `TCP  192.0.2.1:80`, `FWM  7` or `FWM  7 IPv6`.
fn service_name(key: &ServiceKey) -> String {
    match (key.protocol(), key.addr(), key.mark()) {
        (Some(p), Some(a), _) => format!(
            "{:<4} {}",
            p.name().to_ascii_uppercase(),
            socket_addr_to_string(&a)
        ),
        (_, _, Some(mark)) if key.family() == ipvs::AddressFamily::Inet6 => {
            format!("FWM  {mark} IPv6")
        }
        (_, _, mark) => format!("FWM  {}", mark.unwrap_or(0)),
    }
}

/// `rr (sh-port) persistent 300 mask 255.255.255.0 pe sip ops`.
fn service_flags(svc: &Service) -> String {
    let mut s = svc.scheduler().name().to_string();
    let flags = svc.sched_flags().names(svc.scheduler());
    if !flags.is_empty() {
        let _ = write!(s, " ({})", flags.join(","));
    }
    if let Some(p) = svc.persistence() {
        let _ = write!(s, " persistent {}", p.timeout_secs());
        match svc.persistence_netmask() {
            PersistenceMask::V4(m) if m != std::net::Ipv4Addr::BROADCAST => {
                let _ = write!(s, " mask {m}");
            }
            PersistenceMask::V6(len) if len != 128 => {
                let _ = write!(s, " mask {len}");
            }
            _ => {}
        }
        if let Some(pe) = p.engine() {
            let _ = write!(s, " pe {}", pe.as_str());
        }
    }
    if svc.one_packet() {
        s.push_str(" ops");
    }
    s
}

fn forward_name(f: Forward) -> &'static str {
    match f {
        Forward::Masquerade => "Masq",
        Forward::DirectRoute => "Route",
        Forward::Tunnel { .. } => "Tunnel",
        Forward::Local => "Local",
        Forward::Bypass => "(null)",
    }
}

fn dest_line(dest: &Destination, ds: &DestinationStats, format: Format) -> String {
    let addr = socket_addr_to_string(&dest.addr());
    match format {
        Format::Plain => format!(
            "  -> {addr:<28} {:<7} {:<6} {:<10} {:<10}\n",
            forward_name(dest.forward()),
            dest.weight(),
            ds.active_conns,
            ds.inactive_conns
        ),
        Format::Stats => format!("  -> {addr:<28}{}\n", counters(&ds.stats)),
        Format::Rate => format!("  -> {addr:<28}{}\n", rates(&ds.stats)),
    }
}

/// ipvsadm's `print_largenum`: 9 columns, K/M/G/T above 100 million.
fn largenum(i: u64) -> String {
    if i < 100_000_000 {
        format!("{i:>9}")
    } else if i < 1_000_000_000 {
        format!("{:>8}K", i / 1000)
    } else if i < 100_000_000_000 {
        format!("{:>8}M", i / 1_000_000)
    } else if i < 100_000_000_000_000 {
        format!("{:>8}G", i / 1_000_000_000)
    } else {
        format!("{:>8}T", i / 1_000_000_000_000)
    }
}

fn counters(s: &Stats) -> String {
    [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes]
        .into_iter()
        .map(largenum)
        .collect()
}

fn rates(s: &Stats) -> String {
    [s.cps, s.inpps, s.outpps, s.inbps, s.outbps]
        .into_iter()
        .map(|v| format!(" {v:>8}"))
        .collect()
}

/// `ipvs list --json`: the observed table with its counters.
fn list_json(info: &Info, observed: &Observed) -> Result<String, String> {
    let services: Vec<serde_json::Value> = observed
        .table()
        .services()
        .map(|svc| {
            let stats = observed.service_stats(svc.key());
            let dests: Vec<serde_json::Value> = svc
                .destinations()
                .map(|d| {
                    let ds = stats
                        .and_then(|s| s.destinations.get(&d.addr()))
                        .copied()
                        .unwrap_or_default();
                    serde_json::json!({
                        "destination": d,
                        "stats": ds.stats,
                        "active_conns": ds.active_conns,
                        "inactive_conns": ds.inactive_conns,
                        "persistent_conns": ds.persistent_conns,
                    })
                })
                .collect();
            serde_json::json!({
                "service": svc,
                "stats": stats.map(|s| s.stats).unwrap_or_default(),
                "destinations": dests,
            })
        })
        .collect();
    let value = serde_json::json!({ "info": info, "services": services });
    serde_json::to_string_pretty(&value)
        .map(|s| s + "\n")
        .map_err(|e| format!("JSON: {e}"))
}
