//! Reload under traffic: a NAT director running `keepalive-d` (a VRRP instance and a
//! virtual server) while a client sends HTTP requests without pause; 100 reloads (SIGHUP)
//! alternate two configurations that differ by one real server. No request fails, the
//! VRRP instance never changes state, each reload makes only the writes it needs, and a
//! broken configuration is refused while the old one keeps running.

use ipvs_integration::daemon::Daemon;
use ipvs_integration::lb_lab::{LbLab, Mode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn config(lab: &LbLab, servers: usize) -> String {
    let mut rs = String::new();
    for i in 0..servers {
        rs.push_str(&format!(
            "      - {{ address: {}:80, weight: 1 }}\n",
            lab.real_server_addr(i)
        ));
    }
    format!(
        "vrrp_instances:
  - name: front
    interface: eth0
    vrid: 51
    priority: 200
    advert_interval: 100ms
    virtual_ips: [172.16.1.101/24]
virtual_servers:
  - name: web
    vip: {}:80
    scheduler: rr
    forward: nat
    check: {{ type: http, path: /healthz, interval: 500ms, timeout: 400ms }}
    real_servers:
{rs}ipvs:
  reconcile_interval: 2s
",
        lab.vip()
    )
}

fn dest_count(lab: &LbLab) -> usize {
    let prefix = format!("-a -t {}:80 -r ", lab.vip());
    lab.ipvsadm(&["-S", "-n"])
        .unwrap()
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .count()
}

fn wait_dests(lab: &LbLab, d: &Daemon, n: usize, within: Duration) {
    let start = Instant::now();
    while dest_count(lab) != n {
        assert!(
            start.elapsed() < within,
            "not {n} destinations within {within:?}:\n{}\n{}",
            lab.ipvsadm(&["-L", "-n"]).unwrap_or_default(),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn hundred_reloads_under_traffic_fail_no_request_and_keep_vrrp_state() {
    let lab = LbLab::new(Mode::Nat, 3).unwrap();
    let three = config(&lab, 3);
    let two = config(&lab, 2);
    let d = Daemon::start(lab.director(), &three, "info").unwrap();
    wait_dests(&lab, &d, 3, Duration::from_secs(20));
    assert!(
        d.wait_log("state=master", Duration::from_secs(10)),
        "{}",
        d.log()
    );

    let vrrp_changes = |log: &str| {
        log.lines()
            .filter(|l| l.contains("VRRP state change"))
            .count()
    };
    let changes_before = vrrp_changes(&d.log());
    let running = AtomicBool::new(true);
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(false, Ordering::Relaxed);
        }
    }
    let reloads = 100;
    let (spread, took) = std::thread::scope(|s| {
        let traffic = s.spawn(|| {
            let mut total = lab.client_requests(10);
            while running.load(Ordering::Relaxed) {
                total.merge(lab.client_requests(10));
            }
            total
        });
        let _stop = StopOnDrop(&running);
        let start = Instant::now();
        for i in 0..reloads {
            let text = if i % 2 == 0 { &two } else { &three };
            let line = d.reload(text, Duration::from_secs(20)).unwrap();
            assert!(line.contains("reloaded:"), "reload {i}: {line}");
        }
        let took = start.elapsed();
        // A broken file: refused, with the position, and the old configuration runs on.
        let line = d
            .reload(
                "virtual_servers:\n  - name: web\n    vip: nope\n",
                Duration::from_secs(20),
            )
            .unwrap();
        assert!(line.contains("reload refused"), "{line}");
        std::thread::sleep(Duration::from_millis(500));
        drop(_stop);
        (traffic.join().unwrap(), took)
    });
    eprintln!("{reloads} reloads in {took:?} under {spread}");
    assert_eq!(
        spread.failures, 0,
        "requests failed during reloads: {spread}"
    );
    let log = d.log();
    assert!(
        log.contains(":3:10:"),
        "the refused reload names the position:\n{log}"
    );
    // The last good configuration (three servers) still runs.
    wait_dests(&lab, &d, 3, Duration::from_secs(10));
    assert_eq!(
        vrrp_changes(&log),
        changes_before,
        "VRRP changed state during reloads:\n{log}"
    );
    // Every reload kept the health of the servers that stayed.
    assert!(
        log.contains("3 real servers kept their health")
            || log.contains("2 real servers kept their health"),
        "{log}"
    );
    let (code, log) = d.stop(Duration::from_secs(20)).unwrap();
    assert_eq!(code, Some(0), "{log}");
}
