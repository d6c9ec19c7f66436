//! examples/dns: redundant DNS, run end to end from the shipped files in the lab's DR
//! layout. The director loads the shipped `dns-fwmark.nft` (`nft -f`, as the README says)
//! and runs `keepalive-d` with the shipped `keepalive-d.yaml` as it is: one fwmark virtual
//! server for UDP and TCP port 53. Each real server runs Debian's dnsmasq (instead of the
//! lab's backend) on its own address and the VIP, answering `svc.lab.test` A (what the
//! health check asks) and TXT with the server's name (what the client counts).
//!
//! Proven here: queries over UDP and over TCP are spread over the three servers; one
//! server's dnsmasq killed, the server leaves within fall x interval and no query over
//! either transport fails or reaches it afterwards; restarted, it comes back. A server
//! whose DNS over TCP is blocked (UDP still answers) leaves too, thanks to the check's
//! `transport: both`, and TCP queries never reach it.

use crate::daemon_lb::{destinations, wait_dests};
use ipvs_integration::daemon::Daemon;
use ipvs_integration::lb_lab::{DNS_ADDR, DNS_NAME, DnsTransport, LbLab, Mode, Spread, sock};
use ipvs_integration::netns::TestNs;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The shipped check's interval, rise and fall (checked against the file below).
const INTERVAL: Duration = Duration::from_secs(1);
const RISE: u32 = 2;
const FALL: u32 = 2;
/// What TCG, the coalescing delay and one apply may add to fall (rise) x interval.
const SLACK: Duration = Duration::from_secs(4);
/// The fwmark of the shipped files.
const MARK: &str = "53";
/// How long a dnsmasq may take to answer after its start (process start is slow in TCG).
const DNSMASQ_READY: Duration = Duration::from_secs(30);

/// A file of `examples/dns/`.
fn example_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/dns")
        .join(name)
}

/// The shipped configuration, as it is.
fn shipped_config() -> String {
    let path = example_file("keepalive-d.yaml");
    let config =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for expected in [
        "fwmark: 53",
        "interval: 1s",
        "rise: 2",
        "fall: 2",
        "transport: both",
        "query: svc.lab.test",
    ] {
        assert!(
            config.contains(expected),
            "{} no longer has `{expected}`: update this test",
            path.display()
        );
    }
    config
}

/// dnsmasq in a real server's namespace, in the foreground, on the server's own address
/// and the VIP only; killed by PID when stopped or dropped.
struct Dnsmasq {
    child: Child,
    log: PathBuf,
}

impl Dnsmasq {
    /// Starts dnsmasq in real server `i` of `lab` and waits until it answers over UDP and
    /// TCP on the server's address.
    fn start(lab: &LbLab, i: usize) -> Self {
        let ns: &TestNs = lab.real_server(i);
        let own = lab.real_server_addr(i);
        let name = lab.backend_name(i);
        let log = std::env::temp_dir().join(format!("{}-dnsmasq.log", ns.name()));
        let child = ns
            .command("/usr/sbin/dnsmasq")
            .args([
                "--keep-in-foreground".to_string(),
                // Only what is given here: no /etc/dnsmasq.conf, /etc/hosts, upstreams,
                // pid file (every namespace would share /run/dnsmasq/dnsmasq.pid).
                "--conf-file=/dev/null".into(),
                "--no-hosts".into(),
                "--no-resolv".into(),
                "--pid-file=".into(),
                "--bind-interfaces".into(),
                format!("--listen-address={own}"),
                format!("--listen-address={}", lab.vip()),
                format!("--host-record={DNS_NAME},{DNS_ADDR}"),
                format!("--txt-record={DNS_NAME},{name}"),
                "--log-facility=-".into(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("dnsmasq in {}: {e}", ns.name()));
        let mut d = Self { child, log };
        let target = sock(own, 53);
        let start = Instant::now();
        loop {
            let ok = [DnsTransport::Udp, DnsTransport::Tcp].iter().all(|t| {
                lab.client_dns_query(target, *t, DNS_NAME, hickory_proto::rr::RecordType::A)
                    .is_ok_and(|m| !m.answers().is_empty())
            });
            if ok {
                return d;
            }
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!("dnsmasq in {} exited ({status}):\n{}", ns.name(), d.log());
            }
            assert!(
                start.elapsed() < DNSMASQ_READY,
                "dnsmasq in {} does not answer within {DNSMASQ_READY:?}:\n{}",
                ns.name(),
                d.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        // SIGKILL to this child's PID, then reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// `n` queries over each transport from the client.
fn both(lab: &LbLab, n: usize) -> (Spread, Spread) {
    (
        lab.client_dns(DnsTransport::Udp, n),
        lab.client_dns(DnsTransport::Tcp, n),
    )
}

#[test]
fn example_dns_fwmark_udp_and_tcp_route_around_a_failed_server() {
    let mut lab = LbLab::new(Mode::Dr, 3).unwrap();
    let names: Vec<String> = (0..3).map(|i| lab.backend_name(i)).collect();
    // The lab's backends serve DNS on port 53 too: dnsmasq takes their place.
    for i in 0..3 {
        lab.stop_backend(i).unwrap();
    }
    let mut servers: Vec<Option<Dnsmasq>> = (0..3).map(|i| Some(Dnsmasq::start(&lab, i))).collect();

    // The director: the shipped rules, then the shipped configuration.
    let rules = example_file("dns-fwmark.nft");
    lab.director()
        .run("nft", &["-f", rules.to_str().unwrap()])
        .unwrap();
    // As the README says: without it, a TCP query that reuses the client port of a
    // connection refused by the dead server (an entry the kernel keeps after the server
    // is removed) is dropped until the entry expires (CI: 2 of 60 connects timed out).
    lab.director()
        .run("sysctl", &["-qw", "net.ipv4.vs.expire_nodest_conn=1"])
        .unwrap();
    let d = Daemon::start(lab.director(), &shipped_config(), "info").unwrap();
    let all: Vec<String> = (0..3)
        .map(|i| format!("{}:0", lab.real_server_addr(i)))
        .collect();
    let t = wait_dests(&lab, &d, "-f", MARK, &all, Duration::from_secs(30));
    eprintln!("dns: all three servers in after {t:?}");
    let (udp, tcp) = both(&lab, 60);
    for s in [&udp, &tcp] {
        assert_eq!(s.failures, 0, "{s}");
        for name in &names {
            assert!(s.count(name) > 0, "{name}: {s}");
        }
    }
    eprintln!("dns: all in: udp {udp}; tcp {tcp}");

    // rs1's DNS server dies, while the client keeps asking.
    servers[1] = None;
    let rest = [all[0].clone(), all[2].clone()];
    let ((t, w_tcp), w_udp) = lab.during_load(
        || lab.client_dns(DnsTransport::Udp, 4),
        || {
            lab.during_load(
                || lab.client_dns(DnsTransport::Tcp, 4),
                || wait_dests(&lab, &d, "-f", MARK, &rest, FALL * INTERVAL + SLACK),
            )
        },
    );
    eprintln!(
        "dns: dnsmasq killed to removal {t:?} (fall x interval = {:?}); meanwhile udp {w_udp}; tcp {w_tcp}",
        FALL * INTERVAL
    );
    let (udp, tcp) = both(&lab, 60);
    for s in [&udp, &tcp] {
        assert_eq!(s.failures, 0, "{s}");
        assert_eq!(s.count(&names[1]), 0, "{s}");
    }
    eprintln!("dns: rs1 down: udp {udp}; tcp {tcp}");

    // It comes back.
    servers[1] = Some(Dnsmasq::start(&lab, 1));
    let restarted = Instant::now();
    wait_dests(&lab, &d, "-f", MARK, &all, RISE * INTERVAL + SLACK);
    eprintln!(
        "dns: dnsmasq restarted to return {:?} (rise x interval = {:?})",
        restarted.elapsed(),
        RISE * INTERVAL
    );
    let (udp, tcp) = both(&lab, 60);
    for s in [&udp, &tcp] {
        assert_eq!(s.failures, 0, "{s}");
        assert!(s.count(&names[1]) > 0, "{s}");
    }

    // rs2 answers over UDP but its TCP port 53 is blocked: the check's TCP query fails,
    // so it leaves, and TCP queries never reach it.
    lab.real_server(2)
        .run_with_input(
            "nft",
            &["-f", "-"],
            "table ip block {\n\
             \tchain input {\n\
             \t\ttype filter hook input priority 0; policy accept;\n\
             \t\ttcp dport 53 drop\n\
             \t}\n\
             }\n",
        )
        .unwrap();
    let blocked = Instant::now();
    let rest = [all[0].clone(), all[1].clone()];
    wait_dests(&lab, &d, "-f", MARK, &rest, FALL * INTERVAL + SLACK);
    eprintln!("dns: TCP blocked to removal {:?}", blocked.elapsed());
    let (udp, tcp) = both(&lab, 60);
    for s in [&udp, &tcp] {
        assert_eq!(s.failures, 0, "{s}");
        assert_eq!(s.count(&names[2]), 0, "{s}");
    }
    lab.real_server(2)
        .run("nft", &["delete", "table", "ip", "block"])
        .unwrap();
    wait_dests(&lab, &d, "-f", MARK, &all, RISE * INTERVAL + SLACK);

    let (code, log) = d.stop(Duration::from_secs(20)).unwrap();
    assert_eq!(code, Some(0), "{log}");
    assert!(destinations(&lab, "-f", MARK).is_empty(), "{log}");
    drop(servers);
}
