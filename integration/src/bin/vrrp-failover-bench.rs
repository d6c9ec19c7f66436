//! `vrrp-failover-bench`: VRRP failover on the wire, keepalived and keepalive-d side by
//! side in one run (BENCHMARKS.md, "VRRP failover against keepalived").
//!
//! For each advert timing (VRRPv2 at 1 s, VRRPv3 at 100 ms) and each pair (keepalived or
//! keepalive-d killed, keepalived or keepalive-d taking over), `--reps` failovers in fresh
//! network namespaces: the Master (priority 200) is killed with SIGKILL, and the time from
//! its last advert to the Backup's (priority 100) first advert and first gratuitous ARP
//! is read from the kernel's timestamps of the frames on the bridge. The bound is the
//! Backup's master-down interval (3 x interval + skew); the target is to be within 5 ms
//! of it. Runs on the host (network namespaces, no VM); needs root and keepalived.

use clap::Parser;
use ipvs_integration::daemon::keepalive_d_path;
use ipvs_integration::vrrp_bench::{
    BACKUP_PRIORITY, Implementation, Sample, Scenario, Spread, Timing, failover,
};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "VRRP failover times on the wire: keepalived and keepalive-d side by side")]
struct Args {
    /// Failovers per scenario and timing.
    #[arg(long, default_value_t = 5)]
    reps: u32,
    /// Timings to run: `v2` (VRRPv2, 1 s adverts) and/or `v3` (VRRPv3, 100 ms adverts).
    #[arg(long, value_delimiter = ',', default_value = "v3,v2")]
    timings: Vec<String>,
    /// keepalive-d binary (default: `keepalive-d` next to this binary, or `$KEEPALIVE_D`).
    #[arg(long, value_name = "PATH")]
    keepalive_d: Option<PathBuf>,
}

type BoxError = Box<dyn std::error::Error>;

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn signed_ms(a: Duration, b: Duration) -> String {
    let x = a.as_secs_f64() * 1000.0 - b.as_secs_f64() * 1000.0;
    format!("{x:+.1}")
}

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let exe = match args.keepalive_d {
        Some(p) => p,
        None => keepalive_d_path()?,
    };
    let mut timings = Vec::new();
    for t in &args.timings {
        timings.push(match t.as_str() {
            "v2" => Timing::V2_1S,
            "v3" => Timing::V3_100MS,
            other => return Err(format!("unknown timing `{other}` (v2 or v3)").into()),
        });
    }
    let start = Instant::now();
    let mut rows: Vec<(Timing, Scenario, Vec<Sample>)> = Vec::new();
    for &timing in &timings {
        for scenario in Scenario::ALL {
            let mut samples = Vec::new();
            for rep in 0..args.reps {
                // Alternating the scenarios of one repetition spreads the machine's
                // load over all of them; the namespaces are fresh each time.
                let tag = format!("vb{}{rep}", timing.version);
                let s = failover(scenario, timing, &exe, &tag)?;
                eprintln!(
                    "{} | {} | rep {rep}: advert {} ms, gratuitous ARP {} ms",
                    timing.label(),
                    scenario.label(),
                    ms(s.advert),
                    ms(s.garp)
                );
                samples.push(s);
            }
            rows.push((timing, scenario, samples));
        }
    }
    println!(
        "\n{} failovers per row, {:.0} s in all; bound = master-down interval of the \
         Backup (priority {BACKUP_PRIORITY}) = 3 x interval + skew\n",
        args.reps,
        start.elapsed().as_secs_f64()
    );
    println!(
        "| timing | Master killed -> Backup taking over | bound (ms) | first advert: min / median / max (ms) | median - bound | first gratuitous ARP: min / median / max (ms) |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for (timing, scenario, samples) in &rows {
        let bound = timing.master_down(BACKUP_PRIORITY);
        let adverts: Vec<Duration> = samples.iter().map(|s| s.advert).collect();
        let garps: Vec<Duration> = samples.iter().map(|s| s.garp).collect();
        let (Some(a), Some(g)) = (Spread::of(&adverts), Spread::of(&garps)) else {
            continue;
        };
        let bold = |s: String| {
            if scenario.takes_over == Implementation::KeepaliveD {
                format!("**{s}**")
            } else {
                s
            }
        };
        println!(
            "| {} | {} | {} | {} / {} / {} | {} | {} / {} / {} |",
            timing.label(),
            scenario.label(),
            ms(bound),
            ms(a.min),
            bold(ms(a.median)),
            ms(a.max),
            bold(signed_ms(a.median, bound)),
            ms(g.min),
            ms(g.median),
            ms(g.max),
        );
    }
    Ok(())
}
