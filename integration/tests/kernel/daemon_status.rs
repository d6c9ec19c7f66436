//! `keepalive-d status`, the metrics endpoint and `drain`/`undrain`/`reload` over the
//! control socket, against the real kernel: the status document and the metrics agree with
//! the kernel's table (`ipvsadm -S -n`, `ipvsadm -L -n --stats --exact`, `--rate`) and
//! with health; the probe counters agree with the probes the real servers saw and the
//! failures the daemon logged, grow, and survive a reload; `drain` sets weight 0 in the
//! kernel and survives a reload; `undrain` restores the weight; a broken file is refused
//! with file:line:col.
//!
//! Real servers are TCP listeners on 127.0.0.x inside the test's namespace; a client in
//! the same namespace connects to the VIP (a local address), which IPVS schedules like any
//! other connection, so the counters move.

use ipvs_integration::daemon::{Daemon, keepalive_d_path};
use ipvs_integration::listener::Listener;
use ipvs_integration::netns::TestNs;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

/// A stand-in real server on `addr` in `ns`.
fn listen(ns: &TestNs, addr: &str) -> Listener {
    Listener::start(ns, addr.parse().unwrap()).unwrap()
}

fn config(rs2_weight: u32) -> String {
    format!(
        "
virtual_servers:
  - name: web
    vip: 192.0.2.10:80
    scheduler: wrr
    forward: nat
    check: {{ type: tcp, interval: 500ms, timeout: 400ms, rise: 1, fall: 1 }}
    real_servers:
      - {{ address: 127.0.0.11:80, weight: 100 }}
      - {{ address: 127.0.0.12:80, weight: {rs2_weight} }}
      - {{ address: 127.0.0.13:80, weight: 10 }}
ipvs:
  reconcile_interval: 2s
metrics:
  listen: 127.0.0.1:9595
"
    )
}

fn saved(ns: &TestNs) -> Vec<String> {
    let mut v: Vec<String> = ns
        .run("ipvsadm", &["-S", "-n"])
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// Polls until `ipvsadm -S -n` shows exactly `want` (any order).
fn wait_table(ns: &TestNs, d: &Daemon, want: &[&str], within: Duration) {
    let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    let start = Instant::now();
    loop {
        let now = saved(ns);
        if now == want {
            return;
        }
        assert!(
            start.elapsed() < within,
            "table not as expected within {within:?}\nwant {want:#?}\nhave {now:#?}\nlog:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

const HEAD: &str = "-A -t 192.0.2.10:80 -s wrr";
const RS1: &str = "-a -t 192.0.2.10:80 -r 127.0.0.11:80 -m -w 100";
const RS2: &str = "-a -t 192.0.2.10:80 -r 127.0.0.12:80 -m -w 50";

fn cli(args: &[&str]) -> Output {
    std::process::Command::new(keepalive_d_path().unwrap())
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn status_json(socket: &Path) -> serde_json::Value {
    let out = cli(&[
        "status",
        "--json",
        "--control-socket",
        socket.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "status: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The real server `addr` of the first virtual server in a status document.
fn real_server<'a>(status: &'a serde_json::Value, addr: &str) -> &'a serde_json::Value {
    status["virtual_servers"][0]["real_servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == addr)
        .unwrap_or_else(|| panic!("no real server {addr} in {status}"))
}

/// `/metrics` of the daemon in `ns`.
fn scrape(ns: &TestNs) -> String {
    ns.enter(|| {
        let mut s = TcpStream::connect("127.0.0.1:9595").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .unwrap()
}

fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The numbers of `ipvsadm -L -n --stats|--rate --exact` by "service" (`TCP  ...`) or
/// destination address.
fn ipvsadm_numbers(ns: &TestNs, flag: &str) -> BTreeMap<String, Vec<u64>> {
    let out = ns.run("ipvsadm", &["-L", "-n", flag, "--exact"]).unwrap();
    let mut map = BTreeMap::new();
    for line in out.lines().skip(3) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (key, numbers) = match fields.as_slice() {
            ["->", addr, rest @ ..] => ((*addr).to_owned(), rest),
            [_, addr, rest @ ..] => (format!("service {addr}"), rest),
            _ => continue,
        };
        let n: Vec<u64> = numbers.iter().filter_map(|x| x.parse().ok()).collect();
        if n.len() == 5 {
            map.insert(key, n);
        }
    }
    map
}

fn counters(stats: &serde_json::Value) -> Vec<u64> {
    ["conns", "inpkts", "outpkts", "inbytes", "outbytes"]
        .iter()
        .map(|k| stats[*k].as_u64().unwrap())
        .collect()
}

fn rates(stats: &serde_json::Value) -> Vec<u64> {
    ["cps", "inpps", "outpps", "inbps", "outbps"]
        .iter()
        .map(|k| stats[*k].as_u64().unwrap())
        .collect()
}

/// `n` connections from inside `ns` to the VIP, each sending a few bytes.
fn traffic(ns: &TestNs, n: usize) -> usize {
    ns.enter(|| {
        (0..n)
            .filter(|_| {
                let Ok(mut s) = TcpStream::connect_timeout(
                    &"192.0.2.10:80".parse().unwrap(),
                    Duration::from_secs(2),
                ) else {
                    return false;
                };
                let ok = s.write_all(b"hello, real server\n").is_ok();
                drop(s);
                ok
            })
            .count()
    })
    .unwrap()
}

const SERVERS: [&str; 3] = ["127.0.0.11:80", "127.0.0.12:80", "127.0.0.13:80"];

/// `keepalive_d_check_probes_total` of `addr` by result (success, failure), and the
/// count, `+Inf` bucket and sum of its `keepalive_d_check_duration_seconds`.
fn probe_metrics(body: &str, addr: &str) -> ([u64; 2], [u64; 2], f64) {
    let l = format!("service=\"web\",server=\"{addr}\"");
    let n = |series: String| {
        sample(body, &series).unwrap_or_else(|| panic!("no sample {series} in:\n{body}"))
    };
    let probes = ["success", "failure"].map(|r| {
        n(format!(
            "keepalive_d_check_probes_total{{{l},result=\"{r}\"}}"
        )) as u64
    });
    let hist = [
        n(format!("keepalive_d_check_duration_seconds_count{{{l}}}")) as u64,
        n(format!(
            "keepalive_d_check_duration_seconds_bucket{{le=\"+Inf\",{l}}}"
        )) as u64,
    ];
    let sum = n(format!("keepalive_d_check_duration_seconds_sum{{{l}}}"));
    (probes, hist, sum)
}

/// Probes of `addr` by result in a status document.
fn status_probes(status: &serde_json::Value, addr: &str) -> [u64; 2] {
    let p = &real_server(status, addr)["probes"];
    ["success", "failure"].map(|r| {
        p[r].as_u64()
            .unwrap_or_else(|| panic!("no probes.{r} for {addr} in {status}"))
    })
}

/// The daemon's `health check failed` lines (debug) for `addr`.
fn logged_failures(d: &Daemon, addr: &str) -> u64 {
    let tag = format!("addr={addr}");
    d.log()
        .lines()
        .filter(|l| l.contains("health check failed") && l.contains(&tag))
        .count() as u64
}

/// Every probe is counted, once, by result: the metrics and the status agree with the
/// connections the two live real servers accepted (a TCP check is one connection) and
/// with the failures the daemon logged for the refused one; the histogram counts every
/// probe. Probes go on meanwhile, so each figure must lie between the reference read
/// before and the one read after. Returns the counts of the scrape.
fn check_probe_counts(ns: &TestNs, d: &Daemon, socket: &Path, rs: &[Listener; 2]) -> Vec<[u64; 2]> {
    let accepted_before = rs.each_ref().map(Listener::accepted);
    let logged_before = logged_failures(d, SERVERS[2]);
    let body = scrape(ns);
    let status = status_json(socket);
    // The connection of a probe in flight is accepted before the probe's result is
    // counted, and the daemon's log is read through a pipe: let both catch up.
    std::thread::sleep(Duration::from_millis(300));
    let accepted_after = rs.each_ref().map(Listener::accepted);
    let logged_after = logged_failures(d, SERVERS[2]);
    let mut counts = Vec::new();
    for (i, addr) in SERVERS.iter().enumerate() {
        let (probes, [count, inf], sum) = probe_metrics(&body, addr);
        let [success, failure] = probes;
        assert_eq!(count, success + failure, "{addr}: histogram count");
        assert_eq!(inf, count, "{addr}: +Inf bucket");
        assert!(count > 0 && sum > 0.0, "{addr}: {count} probes, {sum} s");
        let (lo, hi) = if i < 2 {
            // One success per accepted connection (a timed-out probe may have been
            // accepted too).
            (
                accepted_before[i].saturating_sub(2 + failure),
                accepted_after[i],
            )
        } else {
            assert_eq!(success, 0, "{addr} refuses every connection");
            (logged_before, logged_after)
        };
        let counted = if i < 2 { success } else { failure };
        assert!(
            (lo..=hi).contains(&counted),
            "{addr}: {counted} probes counted, between {lo} and {hi} expected\n{body}"
        );
        // The status, read after the scrape, counts at least as many, within the same
        // bounds.
        let st = status_probes(&status, addr);
        assert!(
            st[0] >= success && st[1] >= failure,
            "{addr}: {st:?} {probes:?}"
        );
        let st_counted = if i < 2 { st[0] } else { st[1] };
        assert!(
            st_counted <= hi,
            "{addr}: status {st:?}, at most {hi} expected"
        );
        counts.push(probes);
    }
    counts
}

fn setup(tag: &str) -> TestNs {
    let ns = TestNs::new(tag).unwrap();
    // The VIP is a local address: the namespace's own client reaches IPVS through it.
    ns.run("ip", &["link", "add", "vip0", "type", "dummy"])
        .unwrap();
    ns.run("ip", &["link", "set", "vip0", "up"]).unwrap();
    ns.run("ip", &["addr", "add", "192.0.2.10/32", "dev", "vip0"])
        .unwrap();
    ns
}

#[test]
fn status_and_metrics_agree_with_the_kernel_and_health() {
    let ns = setup("kad-status");
    // 127.0.0.13 never answers: down after its first probe.
    let rs = [listen(&ns, "127.0.0.11:80"), listen(&ns, "127.0.0.12:80")];
    // Failed probes are logged at debug level: the reference for their count.
    let d = Daemon::start(&ns, &config(50), "info,keepalive_d::health=debug").unwrap();
    let socket = Daemon::control_socket(&ns);
    wait_table(&ns, &d, &[HEAD, RS1, RS2], Duration::from_secs(20));
    // Every server probed at least once (the down one included).
    let start = Instant::now();
    loop {
        let s = status_json(&socket);
        let probed = s["virtual_servers"][0]["real_servers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| !r["last_check"].is_null());
        if probed && real_server(&s, "127.0.0.13:80")["health"] == "down" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{s}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Before any client traffic, the real servers' only connections are probes.
    let first = check_probe_counts(&ns, &d, &socket, &rs);

    let sent = traffic(&ns, 20);
    eprintln!("{sent} connections to the VIP");
    assert!(sent > 0, "no connection reached the VIP");
    // Let the counters settle: the kernel exports per-service and per-destination
    // counters as summed by its estimator (every 2 s), so wait until every connection is
    // counted and two reads an estimator period apart agree.
    let start = Instant::now();
    let mut last = ipvsadm_numbers(&ns, "--stats");
    loop {
        std::thread::sleep(Duration::from_millis(2200));
        let now = ipvsadm_numbers(&ns, "--stats");
        let counted = now
            .get("service 192.0.2.10:80")
            .is_some_and(|c| c[0] >= sent as u64);
        if counted && now == last {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "counters never settled: {now:?}"
        );
        last = now;
    }

    // Status against the kernel: weights, counters, health.
    let rates_before = ipvsadm_numbers(&ns, "--rate");
    let status_after = status_json(&socket);
    let rates_after = ipvsadm_numbers(&ns, "--rate");
    let stats = ipvsadm_numbers(&ns, "--stats");
    let saved = saved(&ns);
    let vs = &status_after["virtual_servers"][0];
    assert_eq!(vs["name"], "web");
    assert_eq!(vs["service"], "tcp 192.0.2.10:80");
    assert_eq!(vs["quorum"], "met");
    assert_eq!(vs["in_kernel"], true);
    assert_eq!(
        status_after["ipvs"]["kernel_error"],
        serde_json::Value::Null
    );
    assert!(status_after["ipvs"]["writes"].as_u64().unwrap() >= 3);
    let svc_stats = counters(&vs["stats"]);
    assert_eq!(
        Some(&svc_stats),
        stats.get("service 192.0.2.10:80"),
        "{stats:?}"
    );
    assert!(svc_stats[0] >= sent as u64, "{svc_stats:?}");
    let in_window = |key: &str, got: &[u64]| {
        let (a, b) = (&rates_before[key], &rates_after[key]);
        for i in 0..5 {
            let (lo, hi) = (a[i].min(b[i]), a[i].max(b[i]));
            assert!(
                (lo..=hi).contains(&got[i]),
                "{key} rate {i}: {} not within ipvsadm's {lo}..={hi}",
                got[i]
            );
        }
    };
    in_window("service 192.0.2.10:80", &rates(&vs["stats"]));
    for (addr, weight, health) in [
        ("127.0.0.11:80", 100, "up"),
        ("127.0.0.12:80", 50, "up"),
        ("127.0.0.13:80", 10, "down"),
    ] {
        let rs = real_server(&status_after, addr);
        assert_eq!(rs["health"], health, "{rs}");
        assert_eq!(rs["weight"], weight, "{rs}");
        assert_eq!(rs["checked"], true);
        assert_eq!(rs["drained"], false);
        assert_eq!(rs["last_check"]["ok"], health == "up", "{rs}");
        assert!(rs["last_check"]["latency_seconds"].as_f64().unwrap() >= 0.0);
        let line = format!("-a -t 192.0.2.10:80 -r {addr} -m -w {weight}");
        if health == "up" {
            assert!(saved.contains(&line), "{saved:?}");
            assert_eq!(rs["kernel_weight"], weight, "{rs}");
            assert_eq!(Some(&counters(&rs["stats"])), stats.get(addr), "{addr}");
            in_window(addr, &rates(&rs["stats"]));
        } else {
            assert!(!saved.iter().any(|l| l.contains(addr)), "{saved:?}");
            assert_eq!(rs["kernel_weight"], serde_json::Value::Null, "{rs}");
            assert_eq!(rs["stats"], serde_json::Value::Null, "{rs}");
        }
    }
    // The connections went to the two servers that are up.
    let dest_conns: u64 = ["127.0.0.11:80", "127.0.0.12:80"]
        .iter()
        .map(|a| stats[*a][0])
        .sum();
    assert_eq!(dest_conns, svc_stats[0]);

    // The human view says the same.
    let out = cli(&["status", "--control-socket", socket.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let human = text(&out.stdout);
    assert!(
        human.contains("web: tcp 192.0.2.10:80, quorum met"),
        "{human}"
    );
    let row = |addr: &str| {
        human
            .lines()
            .find(|l| l.trim_start().starts_with(addr))
            .unwrap_or_else(|| panic!("no row for {addr}:\n{human}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(row("127.0.0.11:80")[1..4], ["up", "100", "100"], "{human}");
    assert_eq!(row("127.0.0.13:80")[1..4], ["down", "10", "-"], "{human}");
    assert!(
        human.contains(&format!("traffic: {} conns", svc_stats[0])),
        "{human}"
    );

    // The metrics agree with the kernel and with health.
    let response = scrape(&ns);
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let stats = ipvsadm_numbers(&ns, "--stats");
    let m = |series: &str| {
        sample(body, series).unwrap_or_else(|| panic!("no sample {series} in:\n{body}"))
    };
    assert_eq!(m("keepalive_d_ipvs_up"), 1.0);
    let svc = &stats["service 192.0.2.10:80"];
    assert_eq!(
        m("keepalive_d_ipvs_service_connections_total{service=\"web\"}"),
        svc[0] as f64
    );
    assert_eq!(
        m("keepalive_d_ipvs_service_packets_total{service=\"web\",direction=\"in\"}"),
        svc[1] as f64
    );
    assert_eq!(
        m("keepalive_d_ipvs_service_packets_total{service=\"web\",direction=\"out\"}"),
        svc[2] as f64
    );
    assert_eq!(
        m("keepalive_d_ipvs_service_bytes_total{service=\"web\",direction=\"in\"}"),
        svc[3] as f64
    );
    assert_eq!(
        m("keepalive_d_ipvs_service_bytes_total{service=\"web\",direction=\"out\"}"),
        svc[4] as f64
    );
    for (addr, weight, up) in [
        ("127.0.0.11:80", 100, true),
        ("127.0.0.12:80", 50, true),
        ("127.0.0.13:80", 10, false),
    ] {
        let l = format!("{{service=\"web\",server=\"{addr}\"}}");
        assert_eq!(
            m(&format!("keepalive_d_real_server_up{l}")),
            f64::from(u8::from(up))
        );
        assert_eq!(
            m(&format!("keepalive_d_real_server_weight{l}")),
            f64::from(weight)
        );
        assert_eq!(
            m(&format!("keepalive_d_check_last_success{l}")),
            f64::from(u8::from(up))
        );
        let kernel = sample(body, &format!("keepalive_d_real_server_kernel_weight{l}"));
        if up {
            assert_eq!(kernel, Some(f64::from(weight)));
            assert_eq!(
                m(&format!(
                    "keepalive_d_ipvs_destination_connections_total{l}"
                )),
                stats[addr][0] as f64
            );
        } else {
            assert_eq!(kernel, None, "{body}");
        }
    }
    assert_eq!(
        m("keepalive_d_real_servers{service=\"web\",state=\"up\"}"),
        2.0
    );
    assert_eq!(
        m("keepalive_d_real_servers{service=\"web\",state=\"down\"}"),
        1.0
    );
    assert_eq!(
        m("keepalive_d_virtual_server_quorum{service=\"web\",state=\"met\"}"),
        1.0
    );
    assert!(m("keepalive_d_ipvs_reconciles_total") >= 1.0);
    assert!(m("keepalive_d_ipvs_writes_total") >= 3.0);
    assert_eq!(m("keepalive_d_ipvs_failed_writes_total"), 0.0);

    // The probe counters grew since the first look (a probe every 500 ms, several
    // seconds ago), each by result.
    let later: Vec<[u64; 2]> = SERVERS.iter().map(|a| probe_metrics(body, a).0).collect();
    for (i, addr) in SERVERS.iter().enumerate() {
        let grown = if i < 2 { 0 } else { 1 };
        assert!(
            later[i][grown] > first[i][grown] + 2,
            "{addr}: {:?} then {:?}",
            first[i],
            later[i]
        );
    }
    // A reload that keeps the checks keeps the counts: no counter goes back.
    let out = cli(&["reload", "--control-socket", socket.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("3 real servers kept their health"),
        "{}",
        text(&out.stdout)
    );
    let body = scrape(&ns);
    for (i, addr) in SERVERS.iter().enumerate() {
        let (after, _, _) = probe_metrics(&body, addr);
        assert!(
            after[0] >= later[i][0] && after[1] >= later[i][1],
            "{addr}: {:?} before the reload, {after:?} after",
            later[i]
        );
    }

    let (code, log) = d.stop(Duration::from_secs(20)).unwrap();
    assert_eq!(code, Some(0), "{log}");
}

#[test]
fn drain_sets_weight_zero_survives_reload_and_undrain_restores_it() {
    let ns = setup("kad-drain");
    let _rs = [listen(&ns, "127.0.0.11:80"), listen(&ns, "127.0.0.12:80")];
    let d = Daemon::start(&ns, &config(50), "info").unwrap();
    let socket = Daemon::control_socket(&ns);
    let sock = socket.to_str().unwrap();
    wait_table(&ns, &d, &[HEAD, RS1, RS2], Duration::from_secs(20));
    let conf = status_json(&socket)["daemon"]["config"]
        .as_str()
        .unwrap()
        .to_owned();

    // drain: weight 0 in the kernel, at once (no reconcile interval to wait for).
    let out = cli(&["drain", "web", "127.0.0.11:80", "--control-socket", sock]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "web 127.0.0.11:80: drained (weight 0 until undrained)\n"
    );
    let drained = "-a -t 192.0.2.10:80 -r 127.0.0.11:80 -m -w 0";
    wait_table(&ns, &d, &[HEAD, drained, RS2], Duration::from_secs(2));
    let s = status_json(&socket);
    let rs = real_server(&s, "127.0.0.11:80");
    assert_eq!(
        (
            &rs["drained"],
            &rs["weight"],
            &rs["kernel_weight"],
            &rs["health"]
        ),
        (
            &serde_json::json!(true),
            &serde_json::json!(100),
            &serde_json::json!(0),
            &serde_json::json!("up")
        ),
        "{rs}"
    );
    let body = scrape(&ns);
    assert_eq!(
        sample(
            &body,
            "keepalive_d_real_server_drained{service=\"web\",server=\"127.0.0.11:80\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &body,
            "keepalive_d_real_server_kernel_weight{service=\"web\",server=\"127.0.0.11:80\"}"
        ),
        Some(0.0)
    );
    // A drift repair keeps it drained.
    std::thread::sleep(Duration::from_millis(2500));
    wait_table(&ns, &d, &[HEAD, drained, RS2], Duration::from_secs(1));

    // Unknown names: exit 1, nothing changes.
    let out = cli(&["drain", "web", "127.0.0.99:80", "--control-socket", sock]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("has no real server 127.0.0.99:80"),
        "{}",
        text(&out.stderr)
    );
    let out = cli(&["drain", "nope", "127.0.0.11:80", "--control-socket", sock]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no virtual server named `nope`"),
        "{}",
        text(&out.stderr)
    );

    // reload (another weight for 127.0.0.12): the drain stays.
    std::fs::write(&conf, config(60)).unwrap();
    let out = cli(&["reload", "--control-socket", sock]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = text(&out.stdout);
    assert!(summary.contains("virtual servers:"), "{summary}");
    let rs2_60 = "-a -t 192.0.2.10:80 -r 127.0.0.12:80 -m -w 60";
    wait_table(&ns, &d, &[HEAD, drained, rs2_60], Duration::from_secs(5));
    assert_eq!(
        real_server(&status_json(&socket), "127.0.0.11:80")["drained"],
        true
    );

    // A broken file: refused with file:line:col, the table stays.
    std::fs::write(&conf, config(60).replace("weight: 60", "weight: -1")).unwrap();
    let out = cli(&["reload", "--control-socket", sock]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("reload refused"), "{stderr}");
    assert!(stderr.contains(&format!("{conf}:10:")), "{stderr}");
    assert!(stderr.contains("`weight` must be"), "{stderr}");
    std::thread::sleep(Duration::from_millis(300));
    wait_table(&ns, &d, &[HEAD, drained, rs2_60], Duration::from_secs(1));

    // undrain: the configured weight is back.
    let out = cli(&["undrain", "web", "127.0.0.11:80", "--control-socket", sock]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "web 127.0.0.11:80: undrained\n");
    wait_table(&ns, &d, &[HEAD, RS1, rs2_60], Duration::from_secs(2));
    assert_eq!(
        real_server(&status_json(&socket), "127.0.0.11:80")["drained"],
        false
    );

    let (code, log) = d.stop(Duration::from_secs(20)).unwrap();
    assert_eq!(code, Some(0), "{log}");
    let out = cli(&["status", "--control-socket", sock]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no keepalive-d running (control socket"),
        "{}",
        text(&out.stderr)
    );
}
