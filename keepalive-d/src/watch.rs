//! `keepalive-d status --watch`: the running daemon's status, refreshed every `--interval`
//! like `top`: per virtual server and real server the health, the configured and kernel
//! weights, the active and inactive connections, and the kernel's rates (connections,
//! packets and bytes per second, in and out); and the VRRP instances' states.
//!
//! Each refresh is one `status` request on the control socket (the same document as
//! `status --json`, so one IPVS dump in the daemon). [`render`] turns one
//! [`StatusReport`] into the text of one screen (a pure function, tested on its own);
//! [`watch`] runs the loop: on a terminal each screen replaces the previous one (cursor
//! home, lines cleared); otherwise the screens are printed one after the other, each
//! starting with its `keepalive-d status` header line and ending with a blank line, and
//! `--count N` stops after N of them. With `--json` each refresh is one line of JSON (the
//! `status --json` document, compact).
//!
//! The rates are the kernel's own estimates (`ipvsadm -L -n --rate`), which it updates
//! every 2 seconds and smooths: a new traffic pattern shows within a few seconds.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crate::control::{
    self, DestinationReport, Request, StatusReport, TrafficReport, rfc3339, unix_seconds,
};

/// Shortest `--interval` (each refresh makes the daemon read the IPVS table).
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Longest `--interval`.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// How to watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchOptions {
    /// Time between refreshes.
    pub interval: Duration,
    /// Stop after this many refreshes (`None`: until interrupted).
    pub count: Option<u64>,
    /// One line of JSON per refresh instead of the text view.
    pub json: bool,
    /// Redraw in place (a terminal) instead of printing one screen after the other.
    pub tty: bool,
}

/// Why `--interval` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntervalError {
    /// Not a duration.
    #[error("{0}")]
    Syntax(String),
    /// Outside [`MIN_INTERVAL`]..=[`MAX_INTERVAL`].
    #[error("must be between 100ms and 1h, found `{0}`")]
    Range(String),
}

/// Parses `--interval` (`1s`, `500ms`, `2m`: the configuration's duration syntax).
pub fn parse_interval(s: &str) -> Result<Duration, IntervalError> {
    let d = crate::config::parse_duration(s).map_err(|e| IntervalError::Syntax(e.to_string()))?;
    if (MIN_INTERVAL..=MAX_INTERVAL).contains(&d) {
        Ok(d)
    } else {
        Err(IntervalError::Range(s.to_owned()))
    }
}

/// A count or rate for people: exact below 10 000, then `12.3K`, `4.56M`, `7.89G`.
pub fn compact(n: u64) -> String {
    // Display only: the precision lost converting to f64 is far below what is shown.
    #[allow(clippy::cast_precision_loss)]
    let f = n as f64;
    match n {
        0..10_000 => n.to_string(),
        10_000..1_000_000 => format!("{:.1}K", f / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2}M", f / 1e6),
        _ => format!("{:.2}G", f / 1e9),
    }
}

/// Column headers of the destination rows.
const HEADER: [&str; 10] = [
    "HEALTH",
    "WEIGHT",
    "ACTIVE",
    "INACT",
    "CONN/S",
    "PKT/S IN",
    "PKT/S OUT",
    "B/S IN",
    "B/S OUT",
    "CONNS",
];

/// One destination row: name, then the [`HEADER`] columns.
fn row(out: &mut String, name: &str, cells: &[String; 10]) {
    let [
        health,
        weight,
        active,
        inactive,
        cps,
        inpps,
        outpps,
        inbps,
        outbps,
        conns,
    ] = cells;
    let _ = writeln!(
        out,
        "  {name:<26} {health:<8} {weight:>9} {active:>7} {inactive:>7} {cps:>7} {inpps:>10} \
         {outpps:>10} {inbps:>8} {outbps:>8} {conns:>8}"
    );
}

/// The [`HEADER`] cells of a destination (or a service total).
fn cells(
    health: &str,
    weight: String,
    active: u64,
    inactive: u64,
    stats: Option<&TrafficReport>,
) -> [String; 10] {
    let s = stats.copied().unwrap_or_default();
    [
        health.to_owned(),
        weight,
        active.to_string(),
        inactive.to_string(),
        compact(s.cps),
        compact(s.inpps),
        compact(s.outpps),
        compact(s.inbps),
        compact(s.outbps),
        compact(s.conns),
    ]
}

/// `configured/kernel`, `-` for a destination the kernel does not have.
fn weight(configured: Option<u32>, kernel: Option<u32>) -> String {
    let k = kernel.map_or_else(|| "-".to_owned(), |w| w.to_string());
    match configured {
        Some(c) => format!("{c}/{k}"),
        None => k,
    }
}

fn destination_row(out: &mut String, label: &str, health: &str, d: &DestinationReport) {
    let w = weight(None, d.kernel_weight);
    let c = cells(
        health,
        w,
        u64::from(d.active_conns),
        u64::from(d.inactive_conns),
        d.stats.as_ref(),
    );
    row(out, label, &c);
}

/// One screen of the watch view: the daemon, the VRRP instances, then each virtual
/// server's totals and its real servers (`now_unix` dates the ages; `refresh` numbers the
/// screen).
pub fn render(r: &StatusReport, now_unix: f64, refresh: u64, interval: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "keepalive-d status {} (refresh {refresh}, every {}): keepalive-d {} pid {}, {}",
        r.time,
        crate::config::format_duration(interval),
        r.daemon.version,
        r.daemon.pid,
        r.daemon.config
    );
    if !r.vrrp_instances.is_empty() {
        let _ = writeln!(
            out,
            "\n  {:<26} {:<8} {:>4}  {:<24} SINCE",
            "VRRP INSTANCE", "STATE", "PRIO", "MASTER"
        );
        for i in &r.vrrp_instances {
            let master = match (i.state.as_str(), i.master) {
                ("master", _) => "(this node)".to_owned(),
                (_, Some(m)) => m.to_string(),
                (_, None) => "-".to_owned(),
            };
            let since = i.last_transition.as_ref().map_or_else(
                || "-".to_owned(),
                |t| format!("{} ({})", control::age(now_unix - t.at_unix), t.reason),
            );
            let _ = writeln!(
                out,
                "  {:<26} {:<8} {:>4}  {master:<24} {since}",
                i.name,
                i.state.to_uppercase(),
                i.priority
            );
        }
    }
    if let Some(ipvs) = &r.ipvs {
        if !ipvs.running {
            let _ = writeln!(out, "\n  (the virtual-server program has stopped)");
        }
        if let Some(e) = &ipvs.kernel_error {
            let _ = writeln!(out, "\n  (cannot read the kernel's table: {e})");
        }
    }
    for vs in &r.virtual_servers {
        let up = vs.real_servers.iter().filter(|s| s.health == "up").count();
        let _ = writeln!(
            out,
            "\n{} {}: quorum {}, {up}/{} up{}",
            vs.name,
            vs.service,
            vs.quorum,
            vs.real_servers.len(),
            if vs.in_kernel {
                ""
            } else {
                ", NOT in the kernel"
            }
        );
        row(&mut out, "REAL SERVER", &HEADER.map(str::to_owned));
        for rs in &vs.real_servers {
            let health = if rs.drained {
                format!("{}*", rs.health)
            } else {
                rs.health.clone()
            };
            let c = cells(
                &health,
                weight(Some(rs.weight), rs.kernel_weight),
                u64::from(rs.active_conns),
                u64::from(rs.inactive_conns),
                rs.stats.as_ref(),
            );
            row(&mut out, &rs.address.to_string(), &c);
        }
        if let Some(s) = &vs.sorry_server {
            destination_row(&mut out, &format!("sorry {}", s.address), "sorry", s);
        }
        let (active, inactive) = vs.real_servers.iter().fold((0u64, 0u64), |(a, i), rs| {
            (
                a + u64::from(rs.active_conns),
                i + u64::from(rs.inactive_conns),
            )
        });
        let total = cells("", String::new(), active, inactive, vs.stats.as_ref());
        row(&mut out, "(service total)", &total);
        if vs.real_servers.iter().any(|rs| rs.drained) {
            let _ = writeln!(out, "  * drained by hand (keepalive-d undrain to restore)");
        }
    }
    if !r.draining.is_empty() {
        let _ = writeln!(out, "\ndraining after a reload:");
        for d in &r.draining {
            destination_row(
                &mut out,
                &format!("{} {}", d.service, d.destination.address),
                "draining",
                &d.destination,
            );
        }
    }
    if !r.virtual_servers.is_empty() {
        let _ = writeln!(
            out,
            "\nWEIGHT: configured/kernel (- not in the kernel). Rates: the kernel's estimates, \
             updated every 2 s. CONNS: connections since the service was created."
        );
    }
    out
}

/// A screen for a refresh that got no status.
fn render_error(error: &str, now: SystemTime, refresh: u64, interval: Duration) -> String {
    format!(
        "keepalive-d status {} (refresh {refresh}, every {}): {error}\n",
        rfc3339(now),
        crate::config::format_duration(interval)
    )
}

/// Writes one screen: in place on a terminal (cursor home, each line cleared to its end,
/// the rest of the screen cleared), else followed by a blank line.
fn show(out: &mut impl Write, text: &str, tty: bool) -> io::Result<()> {
    if tty {
        let mut buf = String::with_capacity(text.len() + 256);
        buf.push_str("\x1b[H");
        for line in text.lines() {
            buf.push_str(line);
            buf.push_str("\x1b[K\n");
        }
        buf.push_str("\x1b[J");
        out.write_all(buf.as_bytes())?;
    } else {
        out.write_all(text.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// The watch loop over any source of reports: fetches, renders and writes every
/// `interval` (on a fixed schedule: a slow answer does not push the next refresh back),
/// until `count` refreshes or a write fails (the reader went away). Returns whether the
/// last refresh got a status. Errors of a refresh (no daemon) are shown in its place and
/// the loop goes on.
pub fn watch_with(
    mut fetch: impl FnMut() -> Result<serde_json::Value, String>,
    out: &mut impl Write,
    opts: WatchOptions,
) -> io::Result<bool> {
    let start = Instant::now();
    let mut refresh: u64 = 0;
    if opts.tty {
        // Start from a clean screen.
        out.write_all(b"\x1b[H\x1b[2J")?;
    }
    loop {
        refresh += 1;
        let got = fetch();
        let last_ok = got.is_ok();
        let now = SystemTime::now();
        let text = match (got, opts.json) {
            (Ok(v), true) => {
                let line = serde_json::to_string(&v).unwrap_or_default();
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")?;
                out.flush()?;
                None
            }
            (Ok(v), false) => Some(match serde_json::from_value::<StatusReport>(v) {
                Ok(report) => render(&report, unix_seconds(now), refresh, opts.interval),
                Err(e) => render_error(
                    &format!("unexpected status document (another version of the daemon?): {e}"),
                    now,
                    refresh,
                    opts.interval,
                ),
            }),
            // In JSON mode stdout stays one document per line: the caller reports errors.
            (Err(_), true) => None,
            (Err(e), false) => Some(render_error(&e, now, refresh, opts.interval)),
        };
        if let Some(text) = text {
            show(out, &text, opts.tty)?;
        }
        if opts.count.is_some_and(|c| refresh >= c) {
            return Ok(last_ok);
        }
        // The next refresh on the schedule start + k * interval, skipping missed ones.
        let elapsed = start.elapsed();
        let step = opts.interval.as_nanos().max(1);
        let next = (elapsed.as_nanos() / step + 1) * step;
        let wait =
            Duration::from_nanos(u64::try_from(next).unwrap_or(u64::MAX)).saturating_sub(elapsed);
        std::thread::sleep(wait);
    }
}

/// `keepalive-d status --watch`: [`watch_with`] over the control socket at `socket`,
/// writing to stdout. Exit status: 0 if the last refresh showed a status, 1 if not.
pub fn watch(socket: &Path, opts: WatchOptions) -> std::process::ExitCode {
    let fetch = || -> Result<serde_json::Value, String> {
        let response = control::request(socket, &Request::Status, control::CLIENT_TIMEOUT)
            .map_err(|e| format!("keepalive-d: {e}"))?;
        if !response.ok {
            return Err(format!(
                "keepalive-d: {}",
                response
                    .error
                    .as_deref()
                    .unwrap_or("the daemon refused the request")
            ));
        }
        response
            .status
            .ok_or_else(|| "keepalive-d: the daemon sent no status".to_owned())
    };
    // In JSON mode the errors go to stderr (stdout stays one document per line).
    let json = opts.json;
    let fetch = move || {
        let r = fetch();
        if let (true, Err(e)) = (json, &r) {
            eprintln!("{e}");
        }
        r
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match watch_with(fetch, &mut out, opts) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        // A closed pipe (`| head`) ends the watch; so does a failed last refresh.
        Ok(false) | Err(_) => std::process::ExitCode::from(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn traffic(cps: u64, inbps: u64) -> serde_json::Value {
        json!({
            "conns": 123_456, "inpkts": 1000, "outpkts": 900, "inbytes": 64_000,
            "outbytes": 1_200_000, "cps": cps, "inpps": cps * 5, "outpps": cps * 4,
            "inbps": inbps, "outbps": inbps * 20
        })
    }

    fn server(addr: &str, health: &str, weight: u32, kernel: Option<u32>) -> serde_json::Value {
        json!({
            "address": addr, "health": health, "checked": true, "drained": false,
            "weight": weight, "kernel_weight": kernel, "since": null, "since_unix": null,
            "last_check": null, "active_conns": 3, "inactive_conns": 17,
            "stats": kernel.map(|_| traffic(12, 8_500)),
        })
    }

    /// A status document as the daemon sends it (built as JSON, like the client reads it).
    fn value() -> serde_json::Value {
        let mut drained = server("10.0.0.12:80", "up", 2, Some(0));
        drained["drained"] = json!(true);
        drained["stats"] = traffic(0, 0);
        json!({
            "format": 1,
            "daemon": { "version": "0.1.0", "pid": 42, "config": "/etc/keepalive-d/keepalive-d.yaml" },
            "time": "2026-11-25T15:40:52.123Z",
            "vrrp_instances": [{
                "name": "web", "state": "master", "priority": 150, "master": null,
                "last_transition": {
                    "at": "2026-11-25T15:39:40.000Z", "at_unix": 1000.0,
                    "state": "master", "reason": "master-down"
                },
                "transitions": 2, "adverts_sent": 70, "adverts_received": 0,
                "receive_errors": {}
            }],
            "virtual_servers": [{
                "name": "web", "service": "tcp 172.16.1.100:80", "quorum": "met",
                "in_kernel": true, "stats": traffic(24, 1_234_567), "sorry_server": null,
                "real_servers": [
                    server("10.0.0.11:80", "up", 3, Some(3)),
                    drained,
                    server("10.0.0.13:80", "down", 1, None),
                ]
            }],
            "draining": [],
            "ipvs": {
                "reconciles": 1, "writes": 3, "failed_writes": 0, "drift_repairs": 0,
                "kernel_error": null, "running": true
            }
        })
    }

    fn report() -> StatusReport {
        serde_json::from_value(value()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The cells of the row of `name` (split on runs of spaces).
    fn cells(text: &str, name: &str) -> Vec<String> {
        text.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no row {name} in\n{text}"))
            .trim_start()
            .strip_prefix(name)
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn renders_servers_rates_weights_and_vrrp() {
        let text = render(&report(), 1072.5, 3, Duration::from_secs(1));
        assert!(
            text.starts_with(
                "keepalive-d status 2026-11-25T15:40:52.123Z (refresh 3, every 1s): keepalive-d 0.1.0 pid 42"
            ),
            "{text}"
        );
        let vrrp = cells(&text, "web ");
        assert_eq!(vrrp[..4], ["MASTER", "150", "(this", "node)"], "{text}");
        assert!(text.contains("1m12s (master-down)"), "{text}");
        assert!(
            text.contains("web tcp 172.16.1.100:80: quorum met, 2/3 up"),
            "{text}"
        );
        assert_eq!(
            cells(&text, "10.0.0.11:80"),
            [
                "up", "3/3", "3", "17", "12", "60", "48", "8500", "170.0K", "123.5K"
            ]
        );
        assert_eq!(
            cells(&text, "10.0.0.12:80"),
            ["up*", "2/0", "3", "17", "0", "0", "0", "0", "0", "123.5K"]
        );
        // Down and out of the kernel: no counters.
        assert_eq!(
            cells(&text, "10.0.0.13:80"),
            ["down", "1/-", "3", "17", "0", "0", "0", "0", "0", "0"]
        );
        assert_eq!(
            cells(&text, "(service total)"),
            ["9", "51", "24", "120", "96", "1.23M", "24.69M", "123.5K"]
        );
        assert!(text.contains("* drained by hand"), "{text}");
        // Every row lines up under the header.
        let header = text
            .lines()
            .find(|l| l.contains("REAL SERVER"))
            .unwrap_or_default();
        let end = header.len();
        for l in text.lines().filter(|l| l.starts_with("  10.0.0.")) {
            assert_eq!(l.len(), end, "{l:?}\n{header:?}");
        }
    }

    #[test]
    fn compact_numbers() {
        assert_eq!(compact(0), "0");
        assert_eq!(compact(9_999), "9999");
        assert_eq!(compact(10_000), "10.0K");
        assert_eq!(compact(999_949), "999.9K");
        assert_eq!(compact(1_234_567), "1.23M");
        assert_eq!(compact(7_890_000_000), "7.89G");
    }

    #[test]
    fn interval_parses_like_the_configuration() {
        assert_eq!(parse_interval("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("250ms"), Ok(Duration::from_millis(250)));
        assert!(matches!(
            parse_interval("10ms"),
            Err(IntervalError::Range(_))
        ));
        assert!(matches!(parse_interval("2h"), Err(IntervalError::Range(_))));
        assert!(matches!(parse_interval("1"), Err(IntervalError::Syntax(_))));
    }

    #[test]
    fn plain_output_prints_count_screens_in_turn() {
        let mut out = Vec::new();
        let mut calls = 0;
        let opts = WatchOptions {
            interval: Duration::from_millis(100),
            count: Some(3),
            json: false,
            tty: false,
        };
        let start = Instant::now();
        let fetch = || {
            calls += 1;
            if calls == 2 {
                Err("keepalive-d: no keepalive-d running".to_owned())
            } else {
                Ok(value())
            }
        };
        let ok = watch_with(fetch, &mut out, opts).unwrap_or(false);
        assert!(ok, "the last refresh got a status");
        // Two intervals between three refreshes.
        assert!(start.elapsed() >= Duration::from_millis(200));
        let text = String::from_utf8(out).unwrap_or_default();
        assert!(
            !text.contains('\x1b'),
            "no escape codes when not a terminal"
        );
        let headers: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("keepalive-d status "))
            .collect();
        assert_eq!(headers.len(), 3, "{text}");
        assert!(headers[0].contains("(refresh 1, every 100ms)"));
        assert!(
            headers[1].ends_with("no keepalive-d running"),
            "{headers:?}"
        );
        assert!(headers[2].contains("(refresh 3,"));
        assert_eq!(text.matches("10.0.0.11:80").count(), 2);
    }

    #[test]
    fn terminal_output_redraws_in_place_and_json_is_one_line_each() {
        let mut out = Vec::new();
        let opts = WatchOptions {
            interval: Duration::from_millis(100),
            count: Some(2),
            json: false,
            tty: true,
        };
        let ok = watch_with(|| Ok(value()), &mut out, opts).unwrap_or(false);
        assert!(ok);
        let text = String::from_utf8(out).unwrap_or_default();
        assert!(text.starts_with("\x1b[H\x1b[2J\x1b[H"), "{text:?}");
        assert_eq!(text.matches("\x1b[H").count(), 3);
        assert_eq!(text.matches("\x1b[J").count(), 2);
        assert!(
            text.lines()
                .all(|l| l.is_empty() || l.ends_with("\x1b[K") || l.ends_with("\x1b[J"))
        );

        let mut out = Vec::new();
        let opts = WatchOptions {
            json: true,
            tty: false,
            ..opts
        };
        let failed = watch_with(|| Err("down".to_owned()), &mut out, opts).unwrap_or(true);
        assert!(!failed);
        let mut out = Vec::new();
        let ok = watch_with(|| Ok(value()), &mut out, opts).unwrap_or(false);
        assert!(ok);
        let text = String::from_utf8(out).unwrap_or_default();
        let docs: Vec<StatusReport> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        assert_eq!(docs.len(), 2, "{text}");
        assert_eq!(docs[0], report());
    }
}
