//! A configuration at the scale of BENCHMARKS.md's reload benchmark (10,000 virtual
//! servers x 10 real servers, 6 MB of YAML) loads, within the YAML budget and in time
//! linear in its size.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::time::{Duration, Instant};

fn config(services: u32, reals: u32) -> String {
    let mut s = String::from("virtual_servers:\n");
    for v in 0..services {
        let (x, y) = (v / 250, v % 250 + 1);
        let _ = writeln!(
            s,
            "  - name: vs{v}\n    vip: 10.1.{x}.{y}:80\n    protocol: tcp\n    scheduler: wlc\n    \
             forward: nat\n    real_servers:"
        );
        for r in 0..reals {
            let _ = writeln!(
                s,
                "      - {{ address: 10.{}.{x}.{y}:8000, weight: 1 }}",
                2 + r
            );
        }
    }
    s
}

fn load(text: &str) -> (usize, usize, Duration) {
    let start = Instant::now();
    let cfg = keepalive_d::config::parse_str(text, "big.yaml").unwrap_or_else(|e| panic!("{e}"));
    let took = start.elapsed();
    let reals = cfg
        .virtual_servers
        .iter()
        .map(|v| v.real_servers.len())
        .sum();
    (cfg.virtual_servers.len(), reals, took)
}

#[test]
fn ten_thousand_services_of_ten_real_servers_load_in_linear_time() {
    let big = config(10_000, 10);
    assert!(big.len() < keepalive_d::config::MAX_CONFIG_BYTES as usize);
    let small = config(1_000, 10);
    let (services, reals, t_small) = load(&small);
    assert_eq!((services, reals), (1_000, 10_000));
    let (services, reals, t_big) = load(&big);
    assert_eq!((services, reals), (10_000, 100_000));
    eprintln!("{} bytes: {t_big:?}; a tenth of it: {t_small:?}", big.len());
    // Ten times the input, ten times the time: allow 25x for noise, not 100x (quadratic).
    assert!(
        t_big < t_small * 25 + Duration::from_millis(500),
        "10,000 services in {t_big:?}, 1,000 in {t_small:?}"
    );
}
