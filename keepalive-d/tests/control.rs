//! The control socket and the metrics endpoint of a running `keepalive-d run` with one VRRP
//! instance on a veth in a namespace: `status` (text and `--json`), `reload` (a broken
//! file is refused with file:line:col and the daemon runs on), `drain` without virtual
//! servers, bad requests, a second daemon on the same socket, the metrics over loopback,
//! and "no keepalive-d running" once it has stopped. (Virtual servers against the kernel's
//! IPVS table: `integration/tests/kernel/daemon_status.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ipvs_integration::netns::TestNs;

const BIN: &str = env!("CARGO_BIN_EXE_keepalive-d");

fn keepalive_d(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `keepalive-d status --json`, parsed; `None` while it fails.
fn status_json(socket: &Path) -> Option<serde_json::Value> {
    let out = keepalive_d(&["status", "--json", "--control-socket", socket.to_str()?]);
    if !out.status.success() {
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// One HTTP GET inside `ns`; the whole response.
fn http_get(ns: &TestNs, addr: &str, path: &str) -> String {
    let addr = addr.to_owned();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    ns.enter(move || {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .unwrap()
}

/// The value of the sample `name{labels}` (exact) in an exposition.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

struct Running {
    child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Running {
    fn stop(&mut self) -> (std::process::ExitStatus, String) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "keepalive-d did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        if let Some(e) = self.child.stderr.as_mut() {
            let _ = e.read_to_string(&mut stderr);
        }
        (status, stderr)
    }
}

const CONFIG: &str = "vrrp_instances:
  - name: vi1
    interface: eth0
    vrid: 51
    priority: 200
    advert_interval: 100ms
    virtual_ips: [192.0.2.10/24]
metrics:
  listen: 127.0.0.1:9595
";

/// The daemon's namespace with eth0 (192.0.2.2/24), and a peer namespace holding the
/// other end of the veth, eth1 (192.0.2.3/24).
fn setup(tag: &str) -> (TestNs, TestNs, PathBuf) {
    let ns = TestNs::new(tag).unwrap();
    let peer = TestNs::new(&format!("{tag}-peer")).unwrap();
    ns.run(
        "ip",
        &[
            "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
        ],
    )
    .unwrap();
    ns.run("ip", &["link", "set", "eth1", "netns", peer.name()])
        .unwrap();
    peer.run("ip", &["addr", "add", "192.0.2.3/24", "dev", "eth1"])
        .unwrap();
    peer.run("ip", &["link", "set", "eth1", "up"]).unwrap();
    ns.run("ip", &["addr", "add", "192.0.2.2/24", "dev", "eth0"])
        .unwrap();
    ns.run("ip", &["link", "set", "eth0", "up"]).unwrap();
    let dir = std::env::temp_dir().join(format!("kad-ctl-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    (ns, peer, dir)
}

fn start(ns: &TestNs, conf: &Path, socket: &Path, dir: &Path) -> Running {
    let child = ns
        .command(BIN)
        .args(["run", "--config"])
        .arg(conf)
        .arg("--control-socket")
        .arg(socket)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Running { child }
}

#[test]
fn status_reload_drain_and_metrics_of_a_running_vrrp_daemon() {
    let (ns, peer, dir) = setup("ctl");
    let conf = dir.join("keepalive-d.yaml");
    std::fs::write(&conf, CONFIG).unwrap();
    // The socket's directory does not exist yet: the daemon creates it, 0700.
    let socket = dir.join("run/control.sock");
    let sock = socket.to_str().unwrap();
    let mut daemon = start(&ns, &conf, &socket, &dir);

    // Alone on the link it becomes master after the master-down interval (~0.36 s).
    let start_time = Instant::now();
    let report = loop {
        if let Some(r) = status_json(&socket) {
            if r["vrrp_instances"][0]["state"] == "master" {
                break r;
            }
        }
        assert!(
            start_time.elapsed() < Duration::from_secs(10),
            "never master: {:?}",
            status_json(&socket)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let meta = std::fs::metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let run_dir = std::fs::metadata(dir.join("run")).unwrap();
    assert_eq!(run_dir.permissions().mode() & 0o777, 0o700);

    assert_eq!(report["format"], 1);
    assert_eq!(report["daemon"]["config"], conf.to_str().unwrap());
    let vi = &report["vrrp_instances"][0];
    assert_eq!(vi["name"], "vi1");
    assert_eq!(vi["priority"], 200);
    assert_eq!(vi["master"], serde_json::Value::Null);
    assert_eq!(vi["last_transition"]["state"], "master");
    assert_eq!(vi["last_transition"]["reason"], "master-down");
    assert!(
        vi["last_transition"]["at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{vi}"
    );
    assert_eq!(
        vi["transitions"], 2,
        "backup at start-up, then master: {vi}"
    );
    assert_eq!(vi["receive_errors"]["bad_ttl"], 0);
    assert_eq!(report["virtual_servers"], serde_json::json!([]));
    assert_eq!(report["ipvs"], serde_json::Value::Null);

    // The human view.
    let out = keepalive_d(&["status", "--control-socket", sock]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let human = text(&out.stdout);
    assert!(human.contains("VRRP instances:"), "{human}");
    let line = human.lines().find(|l| l.contains("vi1")).unwrap_or("");
    assert!(
        line.contains("master") && line.contains("200") && line.contains("master-down"),
        "{human}"
    );

    // Adverts flow: ten per second.
    std::thread::sleep(Duration::from_millis(500));
    let sent = status_json(&socket).unwrap()["vrrp_instances"][0]["adverts_sent"]
        .as_u64()
        .unwrap();
    assert!(sent >= 3, "{sent} adverts sent");

    // Metrics on loopback, in the daemon's namespace.
    let response = http_get(&ns, "127.0.0.1:9595", "/metrics");
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert_eq!(
        sample(
            body,
            "keepalive_d_vrrp_state{vrrp_instance=\"vi1\",state=\"master\"}"
        ),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(
            body,
            "keepalive_d_vrrp_state{vrrp_instance=\"vi1\",state=\"backup\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(body, "keepalive_d_vrrp_priority{vrrp_instance=\"vi1\"}"),
        Some(200.0)
    );
    assert_eq!(
        sample(
            body,
            "keepalive_d_vrrp_transitions_total{vrrp_instance=\"vi1\"}"
        ),
        Some(2.0)
    );
    let adverts = sample(
        body,
        "keepalive_d_vrrp_adverts_sent_total{vrrp_instance=\"vi1\"}",
    )
    .unwrap();
    assert!(adverts >= sent as f64, "{adverts} < {sent}");
    assert_eq!(
        sample(
            body,
            "keepalive_d_vrrp_receive_errors_total{vrrp_instance=\"vi1\",reason=\"malformed\"}"
        ),
        Some(0.0)
    );
    assert!(
        sample(
            body,
            "keepalive_d_vrrp_last_transition_timestamp_seconds{vrrp_instance=\"vi1\"}"
        )
        .is_some()
    );
    assert!(!body.contains("keepalive_d_ipvs"), "{body}");
    assert!(body.ends_with("# EOF\n"));
    let notfound = http_get(&ns, "127.0.0.1:9595", "/nope");
    assert!(notfound.starts_with("HTTP/1.1 404"), "{notfound}");

    // Receive errors by reason: an advert for our VRID with TTL 1 from the peer.
    let sent_bad = peer
        .enter(|| {
            let s = socket2::Socket::new(
                socket2::Domain::IPV4,
                socket2::Type::RAW,
                Some(socket2::Protocol::from(112)),
            )
            .unwrap();
            s.set_multicast_ttl_v4(1).unwrap();
            s.set_multicast_if_v4(&"192.0.2.3".parse().unwrap())
                .unwrap();
            // VRRPv3, advert, VRID 51, priority 100, 1 address, interval 100 cs,
            // checksum (not checked: the TTL is checked first), 192.0.2.10.
            let advert = [0x31, 51, 100, 1, 0, 100, 0, 0, 192, 0, 2, 10];
            let dst: std::net::SocketAddr = "224.0.0.18:0".parse().unwrap();
            s.send_to(&advert, &dst.into()).map(|_| ())
        })
        .unwrap();
    sent_bad.unwrap();
    let errors_seen = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        status_json(&socket).unwrap()["vrrp_instances"][0]["receive_errors"]["bad_ttl"] == 1
    });
    assert!(errors_seen, "{:?}", status_json(&socket));
    let body = http_get(&ns, "127.0.0.1:9595", "/metrics");
    assert!(
        body.contains(
            "keepalive_d_vrrp_receive_errors_total{vrrp_instance=\"vi1\",reason=\"bad_ttl\"} 1"
        ),
        "{body}"
    );

    // A bad request gets an error answer, and the daemon answers the next one.
    let mut raw = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    raw.write_all(b"{\"command\":\"self-destruct\"}\n").unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).unwrap();
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["ok"], false);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("unknown command `self-destruct`"),
        "{answer}"
    );

    // drain needs virtual servers.
    let out = keepalive_d(&["drain", "web", "10.0.0.11:80", "--control-socket", sock]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("this daemon runs no virtual servers"),
        "{}",
        text(&out.stderr)
    );

    // A second daemon on the same socket refuses to start.
    let out = ns
        .command(BIN)
        .args(["run", "--config"])
        .arg(&conf)
        .arg("--control-socket")
        .arg(&socket)
        .arg("--state-dir")
        .arg(dir.join("state2"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("another keepalive-d is running"),
        "{}",
        text(&out.stderr)
    );
    assert!(socket.exists(), "the refused daemon removed the socket");

    // reload: a valid file.
    let out = keepalive_d(&["reload", "--control-socket", sock]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "nothing changed\n");
    // reload: a broken file is refused with file:line:col; the daemon runs on.
    std::fs::write(&conf, CONFIG.replace("priority: 200", "priority: 300")).unwrap();
    let out = keepalive_d(&["reload", "--control-socket", sock]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("reload refused"), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:5:15: `priority` must be", conf.display())),
        "{stderr}"
    );
    let still = status_json(&socket).expect("the daemon stopped after a refused reload");
    assert_eq!(still["vrrp_instances"][0]["state"], "master");
    assert_eq!(still["vrrp_instances"][0]["priority"], 200);

    let (status, stderr) = daemon.stop();
    assert!(status.success(), "{status}: {stderr}");
    assert!(!socket.exists(), "the socket file is left behind");

    // No daemon: exit 1 and a clear message.
    let out = keepalive_d(&["status", "--control-socket", sock]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "keepalive-d: no keepalive-d running (control socket {sock}: "
        )),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stale_socket_is_replaced_and_run_fails_when_the_metrics_port_is_taken() {
    let (ns, _peer, dir) = setup("ctl-stale");
    let conf = dir.join("keepalive-d.yaml");
    std::fs::write(&conf, CONFIG).unwrap();
    let socket = dir.join("control.sock");
    // A socket file nobody listens on, as a crashed daemon leaves it.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    // The metrics port is taken in the daemon's namespace.
    let taken = ns
        .enter(|| std::net::TcpListener::bind("127.0.0.1:9595"))
        .unwrap()
        .unwrap();
    let out = ns
        .command(BIN)
        .args(["run", "--config"])
        .arg(&conf)
        .arg("--control-socket")
        .arg(&socket)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("metrics endpoint 127.0.0.1:9595: cannot listen"),
        "{stderr}"
    );
    assert!(!socket.exists(), "the failed daemon left its socket");
    drop(taken);

    // With the port free, the stale socket is replaced and the daemon answers.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let mut daemon = start(&ns, &conf, &socket, &dir);
    let start_time = Instant::now();
    while status_json(&socket).is_none() {
        assert!(start_time.elapsed() < Duration::from_secs(10), "no answer");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, stderr) = daemon.stop();
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("replacing a stale control socket"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
