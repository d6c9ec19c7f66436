//! `keepalive-d run` end to end with real traffic: a client namespace, the director
//! running the daemon, three real servers running HTTP, TCP and DNS servers
//! (`lab-backend`), in the NAT, DR and TUN (ipip) layouts of [`LbLab`]. HTTP, TCP and DNS
//! checks; a real server that stops answering leaves within fall x interval and new
//! requests never reach it; it comes back after rise x interval; every server down brings
//! in the sorry server.

use ipvs_integration::daemon::Daemon;
use ipvs_integration::lb_lab::{DNS_NAME, DnsTransport, LbLab, Mode};
use std::time::{Duration, Instant};

const INTERVAL_MS: u64 = 500;
const RISE: u32 = 2;
const FALL: u32 = 2;
/// What TCG, the coalescing delay and one apply may add to fall (rise) x interval.
const SLACK: Duration = Duration::from_millis(3000);

fn forward(mode: Mode) -> &'static str {
    match mode {
        Mode::Nat => "nat",
        Mode::Dr => "dr",
        Mode::Tun => "tun",
    }
}

/// Destinations (addresses) of the service on `vip_port` (e.g. `10.0.0.100:80`) in the
/// director's table, from `ipvsadm -S -n` (`proto` `-f` and `vip_port` `53`: the fwmark
/// service 53).
pub(crate) fn destinations(lab: &LbLab, proto: &str, vip_port: &str) -> Vec<String> {
    let saved = lab.ipvsadm(&["-S", "-n"]).unwrap();
    let prefix = format!("-a {proto} {vip_port} -r ");
    let mut v: Vec<String> = saved
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// Waits until the destinations are exactly `want`; the time it took.
pub(crate) fn wait_dests(
    lab: &LbLab,
    d: &Daemon,
    proto: &str,
    vip_port: &str,
    want: &[String],
    within: Duration,
) -> Duration {
    let mut want = want.to_vec();
    want.sort();
    let start = Instant::now();
    loop {
        let have = destinations(lab, proto, vip_port);
        if have == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "destinations of {vip_port} not {want:?} within {within:?}: {have:?}\n{}\nlog:\n{}",
            lab.ipvsadm(&["-L", "-n"]).unwrap_or_default(),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn http_config(lab: &LbLab, mode: Mode, sorry: Option<String>) -> String {
    let vip = lab.vip();
    let mut servers = String::new();
    for i in 0..3 {
        servers.push_str(&format!(
            "      - {{ address: {}:80, weight: 1 }}\n",
            lab.real_server_addr(i)
        ));
    }
    let tunnel = if mode == Mode::Tun {
        "    tunnel: { type: ipip }\n"
    } else {
        ""
    };
    let sorry = sorry.map_or(String::new(), |s| format!("    sorry_server: {s}\n"));
    format!(
        "virtual_servers:
  - name: web
    vip: {vip}:80
    scheduler: rr
    forward: {fwd}
{tunnel}{sorry}    check:
      type: http
      path: /healthz
      expect_status: [200]
      expect_body: \"^ok\"
      interval: {INTERVAL_MS}ms
      timeout: 400ms
      rise: {RISE}
      fall: {FALL}
    real_servers:
{servers}ipvs:
  reconcile_interval: 5s
",
        fwd = forward(mode)
    )
}

/// HTTP through `mode` with HTTP checks: all three serve; one stops and leaves within
/// fall x interval, then gets no request; it comes back after rise x interval.
fn http_failover(mode: Mode) {
    let mut lab = LbLab::new(mode, 3).unwrap();
    let d = Daemon::start(lab.director(), &http_config(&lab, mode, None), "info").unwrap();
    let vip_port = format!("{}:80", lab.vip());
    let all: Vec<String> = (0..3)
        .map(|i| format!("{}:80", lab.real_server_addr(i)))
        .collect();
    let t = wait_dests(&lab, &d, "-t", &vip_port, &all, Duration::from_secs(20));
    eprintln!("{mode:?}: all three in after {t:?}");

    let spread = lab.client_requests(90);
    assert_eq!(spread.failures, 0, "{mode:?}: {spread}");
    for i in 0..3 {
        assert!(spread.count(&lab.backend_name(i)) > 0, "{mode:?}: {spread}");
    }

    let interval = Duration::from_millis(INTERVAL_MS);
    lab.stop_backend(1).unwrap();
    let rest = vec![all[0].clone(), all[2].clone()];
    let t = wait_dests(&lab, &d, "-t", &vip_port, &rest, FALL * interval + SLACK);
    eprintln!(
        "{mode:?}: failure to removal {t:?} (fall x interval = {:?})",
        FALL * interval
    );
    let spread = lab.client_requests(90);
    assert_eq!(spread.failures, 0, "{mode:?} after removal: {spread}");
    assert_eq!(spread.count(&lab.backend_name(1)), 0, "{mode:?}: {spread}");

    lab.start_backend(1).unwrap();
    let t = wait_dests(&lab, &d, "-t", &vip_port, &all, RISE * interval + SLACK);
    eprintln!(
        "{mode:?}: recovery to return {t:?} (rise x interval = {:?})",
        RISE * interval
    );
    let spread = lab.client_requests(90);
    assert_eq!(spread.failures, 0, "{mode:?} after return: {spread}");
    assert!(spread.count(&lab.backend_name(1)) > 0, "{mode:?}: {spread}");

    let (code, log) = d.stop(Duration::from_secs(20)).unwrap();
    assert_eq!(code, Some(0), "{log}");
    assert!(destinations(&lab, "-t", &vip_port).is_empty(), "{log}");
}

#[test]
fn daemon_http_checks_through_nat() {
    http_failover(Mode::Nat);
}

#[test]
fn daemon_http_checks_through_dr() {
    http_failover(Mode::Dr);
}

#[test]
fn daemon_http_checks_through_tun() {
    http_failover(Mode::Tun);
}

/// NAT with a fourth real server as the sorry server: every checked server down sends
/// all requests to it, without a failure; one server back takes over again.
#[test]
fn daemon_sorry_server_takes_over_when_all_are_down() {
    let mut lab = LbLab::new(Mode::Nat, 4).unwrap();
    let sorry = format!("{}:80", lab.real_server_addr(3));
    let config = http_config(&lab, Mode::Nat, Some(sorry.clone()));
    let d = Daemon::start(lab.director(), &config, "info").unwrap();
    let vip_port = format!("{}:80", lab.vip());
    let all: Vec<String> = (0..3)
        .map(|i| format!("{}:80", lab.real_server_addr(i)))
        .collect();
    wait_dests(&lab, &d, "-t", &vip_port, &all, Duration::from_secs(20));
    let interval = Duration::from_millis(INTERVAL_MS);
    for i in 0..3 {
        lab.stop_backend(i).unwrap();
    }
    let t = wait_dests(
        &lab,
        &d,
        "-t",
        &vip_port,
        std::slice::from_ref(&sorry),
        FALL * interval + SLACK,
    );
    eprintln!("all down to sorry server: {t:?}");
    let spread = lab.client_requests(60);
    assert_eq!(spread.failures, 0, "{spread}");
    assert_eq!(spread.count(&lab.backend_name(3)), 60, "{spread}");
    assert!(d.log().contains("quorum lost"), "{}", d.log());

    lab.start_backend(0).unwrap();
    wait_dests(
        &lab,
        &d,
        "-t",
        &vip_port,
        &[all[0].clone()],
        RISE * interval + SLACK,
    );
    let spread = lab.client_requests(30);
    assert_eq!(spread.failures, 0, "{spread}");
    assert_eq!(spread.count(&lab.backend_name(0)), 30, "{spread}");
    let (code, log) = d.stop(Duration::from_secs(20)).unwrap();
    assert_eq!(code, Some(0), "{log}");
}

/// DNS over UDP with DNS checks and a TCP service with TCP checks, through NAT: a server
/// whose DNS and TCP servers stop leaves both services, and queries never reach it.
#[test]
fn daemon_dns_and_tcp_checks_through_nat() {
    let mut lab = LbLab::new(Mode::Nat, 3).unwrap();
    let vip = lab.vip();
    let mut dns_servers = String::new();
    let mut tcp_servers = String::new();
    for i in 0..3 {
        let a = lab.real_server_addr(i);
        dns_servers.push_str(&format!("      - {{ address: {a}:53 }}\n"));
        tcp_servers.push_str(&format!("      - {{ address: {a}:7000 }}\n"));
    }
    let config = format!(
        "virtual_servers:
  - name: dns
    vip: {vip}:53
    protocol: udp
    scheduler: rr
    forward: nat
    check: {{ type: dns, dns: {{ query: {DNS_NAME}, record: A }}, interval: {INTERVAL_MS}ms, timeout: 400ms, rise: {RISE}, fall: {FALL} }}
    real_servers:
{dns_servers}  - name: banner
    vip: {vip}:7000
    scheduler: rr
    forward: nat
    check: {{ type: tcp, interval: {INTERVAL_MS}ms, timeout: 400ms, rise: {RISE}, fall: {FALL} }}
    real_servers:
{tcp_servers}"
    );
    // Without it, the kernel's UDP entries (client port -> real server, 300 s) of a
    // removed server stay, and a later query that happens to reuse a client port sent
    // there before is lost (CI: 1 of 60 queries, "receive: operation would block").
    // CONFIG.md recommends it (or one_packet) for UDP services.
    lab.director()
        .run("sysctl", &["-qw", "net.ipv4.vs.expire_nodest_conn=1"])
        .unwrap();
    let d = Daemon::start(lab.director(), &config, "info").unwrap();
    let dns_all: Vec<String> = (0..3)
        .map(|i| format!("{}:53", lab.real_server_addr(i)))
        .collect();
    let tcp_all: Vec<String> = (0..3)
        .map(|i| format!("{}:7000", lab.real_server_addr(i)))
        .collect();
    let dns_vip = format!("{vip}:53");
    let tcp_vip = format!("{vip}:7000");
    wait_dests(&lab, &d, "-u", &dns_vip, &dns_all, Duration::from_secs(20));
    wait_dests(&lab, &d, "-t", &tcp_vip, &tcp_all, Duration::from_secs(20));
    let spread = lab.client_dns(DnsTransport::Udp, 60);
    assert_eq!(spread.failures, 0, "{spread}");

    let interval = Duration::from_millis(INTERVAL_MS);
    lab.stop_backend(2).unwrap();
    let t = wait_dests(
        &lab,
        &d,
        "-u",
        &dns_vip,
        &dns_all[..2],
        FALL * interval + SLACK,
    );
    eprintln!("dns: failure to removal {t:?}");
    wait_dests(
        &lab,
        &d,
        "-t",
        &tcp_vip,
        &tcp_all[..2],
        FALL * interval + SLACK,
    );
    let spread = lab.client_dns(DnsTransport::Udp, 60);
    assert_eq!(spread.failures, 0, "{spread}");
    assert_eq!(spread.count(&lab.backend_name(2)), 0, "{spread}");
    let tcp = lab.client_tcp(format!("{vip}:7000").parse().unwrap(), 30);
    assert_eq!(tcp.failures, 0, "{tcp}");
    assert_eq!(tcp.count(&lab.backend_name(2)), 0, "{tcp}");

    lab.start_backend(2).unwrap();
    wait_dests(&lab, &d, "-u", &dns_vip, &dns_all, RISE * interval + SLACK);
    wait_dests(&lab, &d, "-t", &tcp_vip, &tcp_all, RISE * interval + SLACK);
    let (code, log) = d.stop(Duration::from_secs(20)).unwrap();
    assert_eq!(code, Some(0), "{log}");
}
