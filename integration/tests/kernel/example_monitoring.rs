//! `examples/monitoring/`: the shipped `keepalive-d.yaml` (a NAT web service over three
//! real servers, with the metrics endpoint) runs as the director of the lab's NAT layout
//! while the client sends HTTP requests without pause. `keepalive-d status --watch --count
//! 3 --interval 1s` (stdout not a terminal: one screen after the other) shows three
//! screens, each with every real server up at its configured/kernel weight, and non-zero
//! connection, packet and byte rates for the real servers that get traffic; the metrics
//! endpoint exposes the same rates, and every metric the shipped Grafana dashboard
//! (`grafana-dashboard.json`) queries.

use ipvs_integration::daemon::{Daemon, keepalive_d_path};
use ipvs_integration::lb_lab::{LbLab, Mode};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn shipped_config() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/monitoring/keepalive-d.yaml"
    );
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const SERVERS: [(&str, u32); 3] = [
    ("10.0.0.11:80", 3),
    ("10.0.0.12:80", 2),
    ("10.0.0.13:80", 1),
];

fn status_json(socket: &std::path::Path) -> Option<serde_json::Value> {
    let out = std::process::Command::new(keepalive_d_path().unwrap())
        .args(["status", "--json", "--control-socket"])
        .arg(socket)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// Whether every real server is up and has non-zero kernel rates (connections and
/// packets per second in).
fn all_busy(status: &serde_json::Value) -> bool {
    status["virtual_servers"][0]["real_servers"]
        .as_array()
        .is_some_and(|servers| {
            servers.len() == SERVERS.len()
                && servers.iter().all(|s| {
                    s["health"] == "up"
                        && s["stats"]["cps"].as_u64().unwrap_or(0) > 0
                        && s["stats"]["inpps"].as_u64().unwrap_or(0) > 0
                })
        })
}

/// The cells after `name` on the first line of `screen` that starts with it.
fn cells<'a>(screen: &'a str, name: &str) -> Vec<&'a str> {
    screen
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(name))
        .unwrap_or_else(|| panic!("no row {name} in\n{screen}"))
        .split_whitespace()
        .collect()
}

/// A number as `status --watch` prints it (`12`, `12.3K`, `4.56M`).
fn number(cell: &str) -> f64 {
    let (digits, scale) = match cell.chars().last() {
        Some('K') => (&cell[..cell.len() - 1], 1e3),
        Some('M') => (&cell[..cell.len() - 1], 1e6),
        Some('G') => (&cell[..cell.len() - 1], 1e9),
        _ => (cell, 1.0),
    };
    digits
        .parse::<f64>()
        .unwrap_or_else(|e| panic!("{cell:?}: {e}"))
        * scale
}

#[test]
fn example_monitoring_status_watch_shows_live_rates() {
    let lab = LbLab::new(Mode::Nat, 3).unwrap();
    let d = Daemon::start(lab.director(), &shipped_config(), "info").unwrap();
    let socket = Daemon::control_socket(lab.director());
    let start = Instant::now();
    while !status_json(&socket).is_some_and(|s| {
        s["virtual_servers"][0]["real_servers"]
            .as_array()
            .is_some_and(|v| v.iter().all(|r| r["health"] == "up"))
    }) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "real servers not up:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let ((watch, metrics), spread) = lab.during_traffic(|| {
        // The kernel's estimator needs a few of its 2 s ticks to show the new traffic.
        let start = Instant::now();
        while !status_json(&socket).is_some_and(|s| all_busy(&s)) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "rates never showed: {:#}",
                status_json(&socket).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        let started = Instant::now();
        let out = std::process::Command::new(keepalive_d_path().unwrap())
            .args(["status", "--watch", "--count", "3", "--interval", "1s"])
            .arg("--control-socket")
            .arg(&socket)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let took = started.elapsed();
        assert!(
            out.status.success(),
            "status --watch: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Three refreshes one second apart.
        assert!(took >= Duration::from_secs(2), "{took:?}");
        let metrics = lab
            .director()
            .enter(|| {
                let mut s = std::net::TcpStream::connect("127.0.0.1:9595").unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    .unwrap();
                let mut text = String::new();
                s.read_to_string(&mut text).unwrap();
                text
            })
            .unwrap();
        (String::from_utf8(out.stdout).unwrap(), metrics)
    });
    eprintln!("{watch}");
    assert!(spread.ok() > 0, "{spread}");

    // Three screens, one after the other, no escape codes (not a terminal).
    assert!(!watch.contains('\x1b'));
    let screens: Vec<&str> = watch
        .split("keepalive-d status ")
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(screens.len(), 3, "{watch}");
    for (i, screen) in screens.iter().enumerate() {
        assert!(
            screen.contains(&format!("(refresh {}, every 1s)", i + 1)),
            "{screen}"
        );
        assert!(
            screen.contains("web tcp 172.16.1.100:80: quorum met, 3/3 up"),
            "{screen}"
        );
        for (addr, weight) in SERVERS {
            let c = cells(screen, addr);
            // HEALTH WEIGHT ACTIVE INACT CONN/S PKT/S-IN PKT/S-OUT B/S-IN B/S-OUT CONNS
            assert_eq!(c.len(), 10, "{screen}");
            assert_eq!(c[0], "up", "{screen}");
            assert_eq!(c[1], format!("{weight}/{weight}"), "{screen}");
            for (col, what) in [
                (4, "conn/s"),
                (5, "pkt/s in"),
                (6, "pkt/s out"),
                (7, "B/s in"),
                (8, "B/s out"),
            ] {
                assert!(number(c[col]) > 0.0, "{addr}: {what} is 0 in\n{screen}");
            }
        }
        let total = cells(screen, "(service total)");
        assert!(number(total[2]) > 0.0, "{screen}");
    }

    // Every metric the shipped Grafana dashboard queries is one this daemon exposes.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/monitoring/grafana-dashboard.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let exposed = ipvs_integration::dashboard::exposed_series(&metrics);
    if let Err(problems) = ipvs_integration::dashboard::check(&dashboard, &exposed) {
        panic!(
            "the dashboard queries metrics the daemon does not expose:\n{}\n{metrics}",
            problems.join("\n")
        );
    }

    // The metrics endpoint has the same per-destination rates.
    for (addr, _) in SERVERS {
        let series = format!(
            "keepalive_d_ipvs_destination_connections_per_second{{service=\"web\",server=\"{addr}\"}} "
        );
        let value: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
            .trim()
            .parse()
            .unwrap();
        assert!(value > 0.0, "{series}{value}");
    }
    let (code, log) = d.stop(Duration::from_secs(30)).unwrap();
    assert_eq!(code, Some(0), "{log}");
}
