//! `ipvs::apply` while traffic flows through a NAT director (a client namespace, the
//! director, three real servers serving HTTP and a TCP echo service): reconciles that
//! change weights and the scheduler in place, drain a destination and delete it once its
//! connections have finished, and add it back drop no connection, neither new ones (a
//! request loop runs throughout) nor established ones (long-lived echo connections opened
//! before and used after every step).

use ipvs::Ipvs;
use ipvs::reconcile::ApplyOptions;
use ipvs_integration::lb_lab::{LbLab, Mode, TCP_PORT};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn table(lab: &LbLab, scheduler: &str, weights: &[Option<u32>]) -> ipvs::Table {
    let vip = lab.vip();
    let mut text = String::new();
    for port in [80, TCP_PORT] {
        text.push_str(&format!("-A -t {vip}:{port} -s {scheduler}\n"));
        for (i, w) in weights.iter().enumerate() {
            if let Some(w) = w {
                let rs = lab.real_server_addr(i);
                text.push_str(&format!("-a -t {vip}:{port} -r {rs}:{port} -m -w {w}\n"));
            }
        }
    }
    ipvs::ipvsadm::parse(&text).unwrap()
}

/// Opens `n` echo connections to `target` from the client namespace; each has read its
/// banner.
fn open_echo(lab: &LbLab, target: SocketAddr, n: usize) -> Vec<(String, BufReader<TcpStream>)> {
    lab.client()
        .enter(|| {
            (0..n)
                .map(|_| {
                    let s = TcpStream::connect_timeout(&target, Duration::from_secs(5)).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut r = BufReader::new(s);
                    let mut banner = String::new();
                    r.read_line(&mut banner).unwrap();
                    (banner.trim().to_string(), r)
                })
                .collect()
        })
        .unwrap()
}

/// Sends a line on every connection and expects it echoed; the number that failed.
fn echo_all(conns: &mut [(String, BufReader<TcpStream>)], round: usize) -> usize {
    let mut failed = 0;
    for (name, r) in conns.iter_mut() {
        let line = format!("round {round}\n");
        let ok = r.get_mut().write_all(line.as_bytes()).is_ok() && {
            let mut back = vec![0u8; line.len()];
            r.read_exact(&mut back).is_ok() && back == line.as_bytes()
        };
        if !ok {
            eprintln!("connection to {name} broke in round {round}");
            failed += 1;
        }
    }
    failed
}

#[test]
fn reconcile_under_nat_traffic_drops_no_connection() {
    let lab = LbLab::new(Mode::Nat, 3).unwrap();
    let mut ipvs = Ipvs::open_in_netns(format!("/run/netns/{}", lab.director().name())).unwrap();
    let opts = ApplyOptions::default();
    let drain = ApplyOptions {
        drain: true,
        ..ApplyOptions::default()
    };
    assert!(
        ipvs.apply(&table(&lab, "rr", &[Some(1), Some(1), Some(1)]), &opts)
            .unwrap()
            .is_complete()
    );

    let echo_target = SocketAddr::new(lab.vip().into(), TCP_PORT);
    let mut conns = open_echo(&lab, echo_target, 24);
    let per_backend = |conns: &[(String, BufReader<TcpStream>)], i: usize| {
        conns
            .iter()
            .filter(|(n, _)| *n == lab.backend_name(i))
            .count()
    };
    assert!(
        (0..3).all(|i| per_backend(&conns, i) > 0),
        "connections not spread"
    );
    assert_eq!(echo_all(&mut conns, 0), 0);

    // The steps, each one reconcile while the request loop runs. A scheduler change is
    // last and measured apart: the kernel unbinds the old scheduler and waits for an RCU
    // grace period before binding the new one (ip_vs_edit_service), and new connections
    // arriving in that window are refused (ICMP port unreachable), whoever makes the
    // change. Everything else is hitless. Removing a destination
    // makes the kernel drop the packets of its established connections (unless
    // net.ipv4.vs.expire_nodest_conn), so a destination leaves in two steps: drained
    // (weight 0: established connections go on, new ones go elsewhere), then deleted once
    // its connections have finished.
    let mut steps: Vec<(&str, ipvs::Table, &ApplyOptions)> = vec![
        (
            "weights",
            table(&lab, "rr", &[Some(3), Some(2), Some(1)]),
            &opts,
        ),
        (
            "drain rs1 (weight 0)",
            table(&lab, "rr", &[Some(3), None, Some(1)]),
            &drain,
        ),
        (
            "remove rs1",
            table(&lab, "rr", &[Some(3), None, Some(1)]),
            &opts,
        ),
        (
            "add rs1 back",
            table(&lab, "rr", &[Some(3), Some(2), Some(1)]),
            &opts,
        ),
        (
            "scheduler in place",
            table(&lab, "wrr", &[Some(3), Some(2), Some(1)]),
            &opts,
        ),
        (
            "back to rr",
            table(&lab, "rr", &[Some(1), Some(1), Some(1)]),
            &opts,
        ),
    ];
    steps.reverse();
    let running = AtomicBool::new(true);
    let failed_so_far = std::sync::atomic::AtomicUsize::new(0);
    /// Stops the request loop even when an assertion fails (else the scope never ends).
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(false, Ordering::Relaxed);
        }
    }
    let echo_key: ipvs::ServiceKey = format!("tcp {echo_target}").parse().unwrap();
    let rs1_echo = SocketAddr::new(lab.real_server_addr(1).into(), TCP_PORT);
    let (spread, writes, hitless_failures) = std::thread::scope(|s| {
        let traffic = s.spawn(|| {
            let mut total = lab.client_requests(10);
            while running.load(Ordering::Relaxed) {
                let more = lab.client_requests(10);
                failed_so_far.fetch_add(more.failures, Ordering::Relaxed);
                total.merge(more);
            }
            total
        });
        let _stop = StopOnDrop(&running);
        let mut writes = 0;
        let mut round = 0;
        let mut before_scheduler = None;
        while let Some((what, desired, o)) = steps.pop() {
            round += 1;
            if what == "scheduler in place" {
                std::thread::sleep(Duration::from_millis(400));
                before_scheduler = Some(failed_so_far.load(Ordering::Relaxed));
            }
            std::thread::sleep(Duration::from_millis(400));
            let report = ipvs.apply(&desired, o).unwrap();
            assert!(report.is_complete(), "{what}: {:?}", report.failures());
            writes += report.plan().len();
            std::thread::sleep(Duration::from_millis(300));
            eprintln!(
                "{what}: {} writes, {} failed requests so far\n{}",
                report.plan().len(),
                failed_so_far.load(Ordering::Relaxed),
                report.plan()
            );
            assert_eq!(echo_all(&mut conns, round), 0, "after {what}");
            if what.starts_with("drain") {
                // Drained: new connections avoid rs1, established ones go on (checked
                // above); then the clients on rs1 finish, and its count drops to zero.
                let fresh = lab.client_tcp(echo_target, 30);
                assert_eq!(fresh.failures, 0, "{fresh}");
                assert_eq!(fresh.count(&lab.backend_name(1)), 0, "{fresh}");
                conns.retain(|(name, _)| *name != lab.backend_name(1));
                let start = std::time::Instant::now();
                loop {
                    let observed = ipvs.table().unwrap();
                    let active = observed
                        .destination_stats(&echo_key, rs1_echo)
                        .map_or(0, |d| d.active_conns);
                    if active == 0 {
                        break;
                    }
                    assert!(
                        start.elapsed() < Duration::from_secs(20),
                        "rs1 still has {active} active"
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(400));
        drop(_stop);
        (traffic.join().unwrap(), writes, before_scheduler.unwrap())
    });
    eprintln!("{writes} writes during {spread}");
    assert_eq!(
        hitless_failures, 0,
        "new connections failed during weight/drain/remove/add reconciles: {spread}"
    );
    let refused = spread.failures - hitless_failures;
    eprintln!("scheduler changes (2, in place): {refused} new connections refused by the kernel");
    // Only the kernel's scheduler swap window refuses, and only by refusing.
    assert!(
        spread.errors.keys().all(|e| e.contains("refused")),
        "failures other than refusals: {spread}"
    );
    assert!(
        spread.ok() >= 120,
        "too little traffic to prove anything: {spread}"
    );
    assert_eq!(per_backend(&conns, 1), 0);
    assert!(
        conns.len() >= 12,
        "too few long-lived connections left: {}",
        conns.len()
    );
    assert_eq!(echo_all(&mut conns, 99), 0, "established connections broke");
}
