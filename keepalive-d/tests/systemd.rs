//! `keepalive-d` as systemd runs it: the notifications on `$NOTIFY_SOCKET` (a socket this
//! test binds, standing in for systemd), the watchdog, and `--log-format json` on stderr.
//! (The unit file itself is checked by `keepalive-d/systemd/verify`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ipvs_integration::netns::TestNs;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn crate_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// A fresh directory under /tmp, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("kad-systemd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn keepalive_d(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keepalive-d"))
        .args(args)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// Every line of `stderr` is a JSON object with `level`, `target` and `message`; returns
/// them.
fn json_lines(stderr: &str) -> Vec<serde_json::Value> {
    assert!(!stderr.is_empty(), "no log line at all");
    stderr
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\nall of stderr:\n{stderr}"));
            for key in ["timestamp", "level", "target", "message"] {
                assert!(
                    v.get(key).is_some_and(serde_json::Value::is_string),
                    "no string `{key}` in {line}"
                );
            }
            v
        })
        .collect()
}

#[test]
fn log_format_json_check_errors_are_error_events() {
    let bad = crate_file("tests/bad-configs/many-errors.yaml");
    let bad = bad.to_str().unwrap();
    let out = keepalive_d(&["--log-format", "json", "check", "-c", bad], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let lines = json_lines(&String::from_utf8(out.stderr).unwrap());
    assert_eq!(lines.len(), 4, "{lines:?}");
    for line in &lines {
        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["target"], "keepalive_d");
    }
    let first = lines[0]["message"].as_str().unwrap();
    assert!(
        first.starts_with(&format!("{bad}:4:11: `vrid` must be")),
        "{first}"
    );
}

#[test]
fn log_format_json_is_global_and_text_is_the_default() {
    let good = crate_file("examples/configs/vrrp-pair.yaml");
    let good = good.to_str().unwrap();
    // The flag goes before or after the subcommand.
    for args in [
        ["--log-format", "json", "check", "-c", good],
        ["check", "-c", good, "--log-format", "json"],
    ] {
        let out = keepalive_d(&args, &[("RUST_LOG", "debug")]);
        assert!(out.status.success());
        // The result for people stays on stdout, as text.
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.starts_with(&format!("{good}: OK (")), "{stdout}");
        let lines = json_lines(&String::from_utf8(out.stderr).unwrap());
        let loading = lines
            .iter()
            .find(|l| l["message"] == "loading configuration")
            .expect("the debug event");
        assert_eq!(loading["level"], "DEBUG");
        // The event's fields sit next to `message`.
        assert_eq!(loading["config"], good);
    }
    let out = keepalive_d(&["check", "-c", good], &[("RUST_LOG", "debug")]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("loading configuration"), "{stderr}");
    assert!(
        serde_json::from_str::<serde_json::Value>(stderr.lines().next().unwrap()).is_err(),
        "{stderr}"
    );
    let out = keepalive_d(&["--log-format", "xml", "check", "-c", good], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("[possible values: text, json]"), "{stderr}");
}

/// The notification socket, as systemd would bind it.
struct Manager {
    socket: UnixDatagram,
    watchdogs: usize,
}

impl Manager {
    fn bind(path: &Path) -> Self {
        let socket = UnixDatagram::bind(path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Self {
            socket,
            watchdogs: 0,
        }
    }

    /// The next message that is not `WATCHDOG=1` (those are counted), within `within`.
    fn next(&mut self, within: Duration, daemon: &mut Child) -> String {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 4096];
        loop {
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    let msg = String::from_utf8(buf[..n].to_vec()).unwrap();
                    if msg == "WATCHDOG=1" {
                        self.watchdogs += 1;
                    } else {
                        return msg;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("recv: {e}"),
            }
            if let Some(status) = daemon.try_wait().unwrap() {
                panic!("keepalive-d exited ({status}) before notifying");
            }
            assert!(
                Instant::now() < deadline,
                "no notification within {within:?}"
            );
        }
    }
}

fn monotonic_usec() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    u64::try_from(t.tv_sec()).unwrap() * 1_000_000 + u64::try_from(t.tv_nsec()).unwrap() / 1000
}

const VRRP_CONFIG: &str = "vrrp_instances:\n  - name: vi1\n    interface: eth0\n    vrid: 51\n    \
     priority: 200\n    advert_interval: 100ms\n    virtual_ips: [192.0.2.10/24]\n";

#[test]
fn run_notifies_ready_reloading_stopping_and_pings_the_watchdog() {
    let ns = TestNs::new("kad-sd").unwrap();
    ns.run(
        "ip",
        &[
            "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
        ],
    )
    .unwrap();
    ns.run("ip", &["link", "set", "eth1", "up"]).unwrap();
    ns.run("ip", &["addr", "add", "192.0.2.2/24", "dev", "eth0"])
        .unwrap();
    ns.run("ip", &["link", "set", "eth0", "up"]).unwrap();
    let dir = TempDir::new("notify");
    let conf = dir.0.join("keepalive-d.yaml");
    std::fs::write(&conf, VRRP_CONFIG).unwrap();
    let notify = dir.0.join("notify.sock");
    let mut manager = Manager::bind(&notify);

    let mut args = vec![
        "--log-format".to_owned(),
        "json".to_owned(),
        "run".to_owned(),
        "--config".to_owned(),
        conf.to_str().unwrap().to_owned(),
    ];
    // Options of `run` added alongside this test: when present, keep this daemon's files
    // in its own directory (tests run in parallel).
    let help = keepalive_d(&["run", "--help"], &[]);
    let help = String::from_utf8(help.stdout).unwrap();
    for (option, name) in [
        ("--state-dir", "state"),
        ("--control-socket", "control.sock"),
    ] {
        if help.contains(option) {
            args.push(option.to_owned());
            args.push(dir.0.join(name).to_str().unwrap().to_owned());
        }
    }
    let mut daemon = ns
        .command(env!("CARGO_BIN_EXE_keepalive-d"))
        .args(&args)
        .env_remove("RUST_LOG")
        .env("NOTIFY_SOCKET", &notify)
        // WatchdogSec=200ms: a ping every 100 ms.
        .env("WATCHDOG_USEC", "200000")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = Pid::from_raw(i32::try_from(daemon.id()).unwrap());

    assert_eq!(
        manager.next(Duration::from_secs(10), &mut daemon),
        "READY=1\nSTATUS=running"
    );
    let pinged = Instant::now();
    while manager.watchdogs < 3 {
        assert!(
            pinged.elapsed() < Duration::from_secs(5),
            "{} watchdog pings",
            manager.watchdogs
        );
        std::thread::sleep(Duration::from_millis(20));
        let mut buf = [0u8; 64];
        if let Ok(n) = manager.socket.recv(&mut buf) {
            assert_eq!(&buf[..n], b"WATCHDOG=1");
            manager.watchdogs += 1;
        }
    }

    // A valid reload: RELOADING=1 with the time of the request, then READY=1.
    std::fs::write(&conf, VRRP_CONFIG.replace("priority: 200", "priority: 190")).unwrap();
    let before = monotonic_usec();
    kill(pid, Signal::SIGHUP).unwrap();
    let reloading = manager.next(Duration::from_secs(10), &mut daemon);
    let after = monotonic_usec();
    let lines: Vec<&str> = reloading.lines().collect();
    assert_eq!(lines.len(), 3, "{reloading}");
    assert_eq!(lines[0], "RELOADING=1");
    let usec: u64 = lines[1]
        .strip_prefix("MONOTONIC_USEC=")
        .unwrap()
        .parse()
        .unwrap();
    assert!((before..=after).contains(&usec), "{before} {usec} {after}");
    assert_eq!(lines[2], "STATUS=reloading");
    assert_eq!(
        manager.next(Duration::from_secs(10), &mut daemon),
        "READY=1\nSTATUS=running (reloaded)"
    );

    // A refused reload (a notify program anyone may rewrite): still READY=1, and the
    // status says so.
    let script = dir.0.join("notify.sh");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    std::fs::write(
        &conf,
        format!(
            "{VRRP_CONFIG}    notify: {{ master: [{}] }}\n",
            script.display()
        ),
    )
    .unwrap();
    kill(pid, Signal::SIGHUP).unwrap();
    assert!(
        manager
            .next(Duration::from_secs(10), &mut daemon)
            .starts_with("RELOADING=1\n")
    );
    assert_eq!(
        manager.next(Duration::from_secs(10), &mut daemon),
        "READY=1\nSTATUS=running the previous configuration (reload refused, see the log)"
    );

    kill(pid, Signal::SIGTERM).unwrap();
    assert_eq!(
        manager.next(Duration::from_secs(10), &mut daemon),
        "STOPPING=1\nSTATUS=stopping"
    );
    let start = Instant::now();
    let status = loop {
        if let Some(s) = daemon.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = daemon.kill();
            panic!("keepalive-d did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(daemon.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{status}: {stderr}");

    // Every line on stderr is a JSON object.
    let lines = json_lines(&stderr);
    let running = lines.iter().find(|l| l["message"] == "running").unwrap();
    assert_eq!(running["level"], "INFO");
    assert_eq!(running["vrrp_instances"], 1);
    let refused = lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("reload refused"))
        })
        .unwrap();
    assert_eq!(refused["level"], "ERROR");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.ends_with(&format!(
            "{}:8:24: `notify.master`: `{}` is writable by others (mode 0777)",
            conf.display(),
            script.display()
        )),
        "{message}"
    );
}
