//! Reload under traffic: a NAT director running `keepalive-d` (a VRRP instance and a
//! virtual server) while a client sends HTTP requests without pause; 100 reloads (SIGHUP)
//! alternate two configurations that differ by one real server. No request fails, the
//! VRRP instance never changes state, each reload makes only the writes it needs, and a
//! broken configuration is refused while the old one keeps running.
//!
//! And what a reload sends to the kernel, counted on the wire (nlmon): nothing for an
//! unchanged file, and for a change only the requests of the services it touches.

use ipvs_integration::daemon::Daemon;
use ipvs_integration::lb_lab::{LbLab, Mode};
use ipvs_integration::netns::TestNs;
use ipvs_integration::nlmon::{Capture, Frame, NLM_F_DUMP};
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

/// `services` virtual servers 10.1.0.x:80 (without the `skip`ped ones) with three real
/// servers each, no checks; `one` replaces the third real server of service 7. No
/// periodic reconcile during the test (1 h).
fn many(services: u32, skip: std::ops::Range<u32>, one: bool) -> String {
    many_every(services, skip, one, "1h")
}

fn many_every(services: u32, skip: std::ops::Range<u32>, one: bool, every: &str) -> String {
    let mut s = format!("ipvs:\n  reconcile_interval: {every}\nvirtual_servers:\n");
    for v in (0..services).filter(|v| !skip.contains(v)) {
        s.push_str(&format!(
            "  - name: vs{v}\n    vip: 10.1.0.{}:80\n    forward: nat\n    real_servers:\n",
            v + 1
        ));
        for r in 0..3 {
            let host = if one && v == 7 && r == 2 { 99 } else { 2 + r };
            s.push_str(&format!(
                "      - {{ address: 10.{host}.0.{}:80 }}\n",
                v + 1
            ));
        }
    }
    s
}

/// (writes, dump requests, other IPVS requests) in `frames`.
fn ipvs_requests(frames: &[Frame]) -> (usize, usize, usize) {
    const GENL_ID_CTRL: u16 = 0x10;
    let writes = [1u8, 2, 3, 5, 6, 7, 16, 17];
    let (mut w, mut d, mut o) = (0, 0, 0);
    for r in frames.iter().flat_map(Frame::genl_requests) {
        if r.kind == GENL_ID_CTRL {
            continue;
        }
        if writes.contains(&r.cmd) {
            w += 1;
        } else if r.flags & NLM_F_DUMP == NLM_F_DUMP {
            d += 1;
        } else {
            o += 1;
        }
    }
    (w, d, o)
}

fn saved(ns: &TestNs) -> Vec<String> {
    let mut v: Vec<String> = ns
        .run("ipvsadm", &["-S", "-n"])
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

/// The `ipvsadm -S -n` lines of `many(...)`.
fn lines(services: u32, skip: std::ops::Range<u32>, one: bool) -> Vec<String> {
    let mut v = Vec::new();
    for s in (0..services).filter(|v| !skip.contains(v)) {
        v.push(format!("-A -t 10.1.0.{}:80 -s wlc", s + 1));
        for r in 0..3 {
            let host = if one && s == 7 && r == 2 { 99 } else { 2 + r };
            v.push(format!(
                "-a -t 10.1.0.{}:80 -r 10.{host}.0.{}:80 -m -w 1",
                s + 1,
                s + 1
            ));
        }
    }
    v.sort();
    v
}

#[test]
fn a_reload_reads_and_writes_only_the_services_it_changes() {
    let ns = TestNs::new("kad-reload-scope").unwrap();
    let d = Daemon::start(&ns, &many(20, 0..0, false), "info").unwrap();
    let start = Instant::now();
    while saved(&ns) != lines(20, 0..0, false) {
        assert!(start.elapsed() < Duration::from_secs(20), "{}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let capture = Capture::start(&ns).unwrap();
    // Requests only: the kernel's replies (dump chunks of up to 32 KiB each) would fill
    // the socket's buffer between two drains and crowd requests out.
    capture.requests_only(8 << 20).unwrap();
    // What came until none came for 500 ms.
    let settle = || {
        let mut frames = Vec::new();
        let mut quiet = 0;
        while quiet < 5 {
            std::thread::sleep(Duration::from_millis(100));
            let more = capture.drain();
            quiet = if more.is_empty() { quiet + 1 } else { 0 };
            frames.extend(more);
        }
        frames
    };
    let reload = |config: &str| {
        // Not the test's own ipvsadm calls.
        let _ = settle();
        let line = d.reload(config, Duration::from_secs(20)).unwrap();
        assert!(line.contains("reloaded:"), "{line}");
        let frames = settle();
        let counts = ipvs_requests(&frames);
        let seen: Vec<(u16, u16, u8)> = frames
            .iter()
            .flat_map(Frame::genl_requests)
            .map(|r| (r.kind, r.flags, r.cmd))
            .collect();
        (
            format!("{line}\nrequests (family, flags, command): {seen:x?}"),
            counts,
        )
    };
    // Another tool's change to a service the reloads do not touch.
    ns.run(
        "ipvsadm",
        &[
            "-e",
            "-t",
            "10.1.0.1:80",
            "-r",
            "10.2.0.1:80",
            "-m",
            "-w",
            "5",
        ],
    )
    .unwrap();

    // The same file: not one IPVS request.
    let (line, counts) = reload(&many(20, 0..0, false));
    assert_eq!(counts, (0, 0, 0), "{line}");
    assert!(line.contains(" 0 IPVS writes"), "{line}");

    // One real server replaced: that service is read (a lookup and a destination dump),
    // the new server added, the old one drained to weight 0, read again and deleted.
    let (line, counts) = reload(&many(20, 0..0, true));
    assert_eq!(counts, (3, 2, 2), "{line}\n{}", d.log());
    assert!(line.contains(" 3 IPVS writes"), "{line}");
    let mut want = lines(20, 0..0, true);
    let hand = "-a -t 10.1.0.1:80 -r 10.2.0.1:80 -m -w 5";
    want.retain(|l| l != "-a -t 10.1.0.1:80 -r 10.2.0.1:80 -m -w 1");
    want.push(hand.to_owned());
    want.sort();
    assert_eq!(saved(&ns), want, "{}", d.log());

    // Five services removed: no connection on them, so each is deleted at once (one
    // write each) after one lookup and dump.
    let (line, counts) = reload(&many(20, 10..15, true));
    assert_eq!(counts, (5, 5, 5), "{line}\n{}", d.log());
    let mut want = lines(20, 10..15, true);
    want.retain(|l| l != "-a -t 10.1.0.1:80 -r 10.2.0.1:80 -m -w 1");
    want.push(hand.to_owned());
    want.sort();
    assert_eq!(
        saved(&ns),
        want,
        "removed services left behind\n{}",
        d.log()
    );

    // Back: five services and their fifteen destinations, in one batch.
    let (line, counts) = reload(&many(20, 0..0, true));
    assert_eq!(counts.0, 20, "{line}\n{}", d.log());
    assert!(line.contains(" 20 IPVS writes"), "{line}");

    // The hand-made change was left to the periodic reconcile: with one every second
    // (a reload that changes no service: no request), it is repaired.
    let (line, counts) = reload(&many_every(20, 0..0, true, "1s"));
    assert_eq!(counts, (0, 0, 0), "{line}");
    let start = Instant::now();
    while saved(&ns) != lines(20, 0..0, true) {
        assert!(start.elapsed() < Duration::from_secs(10), "{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, log) = d.stop(Duration::from_secs(20)).unwrap();
    assert_eq!(code, Some(0), "{log}");
}
