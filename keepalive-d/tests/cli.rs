//! The `keepalive-d` binary: `check`, `run` and `--version`, with their output and exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn keepalive_d(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keepalive-d"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn crate_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect()
}

/// The crate's example configs, and every config of the director designs under the
/// workspace's `examples/<design>/` (issue 8: each must pass `keepalive-d check`).
fn examples() -> Vec<PathBuf> {
    let mut files = yaml_files(&crate_file("examples/configs"));
    let designs = crate_file("../examples");
    if designs.is_dir() {
        for entry in std::fs::read_dir(designs).unwrap() {
            let dir = entry.unwrap().path();
            if dir.is_dir() {
                files.extend(yaml_files(&dir));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_example_passes_check() {
    let files = examples();
    assert!(files.len() >= 3);
    for path in files {
        let path = path.to_str().unwrap();
        let out = keepalive_d(&["check", "--config", path]);
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success(),
            "{path}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.starts_with(&format!("{path}: OK (")), "{stdout}");
    }
}

#[test]
fn check_counts_instances_servers_and_real_servers() {
    let path = crate_file("examples/configs/web-farm.yaml");
    let path = path.to_str().unwrap();
    let out = keepalive_d(&["check", "--config", path]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{path}: OK (2 vrrp instances, 3 virtual servers, 8 real servers)\n")
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn check_prints_every_error_with_file_line_column_and_exits_1() {
    let path = crate_file("tests/bad-configs/many-errors.yaml");
    let path = path.to_str().unwrap();
    let out = keepalive_d(&["check", "-c", path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("{path}:4:11: `vrid` must be")),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with(&format!("{path}:5:15: `priority` must be")),
        "{stderr}"
    );
    assert!(
        lines[2].starts_with(&format!("{path}:10:16: unknown scheduler")),
        "{stderr}"
    );
    assert!(
        lines[3].starts_with(&format!("{path}:12:42: `weight` must be")),
        "{stderr}"
    );
}

#[test]
fn check_reports_a_missing_file() {
    let out = keepalive_d(&["check", "--config", "/nonexistent/keepalive-d.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("/nonexistent/keepalive-d.yaml: cannot open:"),
        "{stderr}"
    );
}

#[test]
fn run_refuses_invalid_configs_and_fails_clearly_without_ipvs() {
    let bad = crate_file("tests/bad-configs/vrrp-vrid-zero.yaml");
    let out = keepalive_d(&["run", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains(":4:11: `vrid` must be"), "{stderr}");

    // This host's kernel has no IPVS: virtual servers cannot be programmed, and the
    // daemon says so and exits 1 instead of running half the configuration. (With IPVS,
    // the lab's kernel tests run it: integration/tests/kernel/daemon_*.rs.)
    if std::path::Path::new("/proc/net/ip_vs").exists() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("kad-noipvs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("keepalive-d.yaml");
    std::fs::write(
        &conf,
        "virtual_servers:\n  - name: web\n    vip: 192.0.2.10:80\n    \
         real_servers: [{ address: 10.0.0.11:80 }]\n",
    )
    .unwrap();
    let socket = dir.join("control.sock");
    let out = keepalive_d(&[
        "run",
        "--config",
        conf.to_str().unwrap(),
        "--control-socket",
        socket.to_str().unwrap(),
    ]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("cannot open IPVS"), "{stderr}");
}

#[test]
fn run_holds_the_vip_as_master_and_gives_it_up_on_sigterm() {
    use ipvs_integration::netns::TestNs;
    let ns = TestNs::new("kad-run").unwrap();
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
    let dir = std::env::temp_dir().join(format!("kad-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("keepalive-d.yaml");
    std::fs::write(
        &conf,
        "vrrp_instances:\n  - name: vi1\n    interface: eth0\n    vrid: 51\n    \
         priority: 200\n    advert_interval: 100ms\n    virtual_ips: [192.0.2.10/24]\n",
    )
    .unwrap();
    let mut child = ns
        .command(env!("CARGO_BIN_EXE_keepalive-d"))
        .args(["run", "--config", conf.to_str().unwrap(), "--state-dir"])
        .arg(dir.join("state"))
        .arg("--control-socket")
        .arg(dir.join("control.sock"))
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let has_vip = || {
        ns.run("ip", &["-o", "addr", "show", "dev", "eth0"])
            .unwrap()
            .contains("192.0.2.10/24")
    };
    // Alone on the link, it becomes master after the master-down interval (~0.3 s).
    let start = std::time::Instant::now();
    while !has_vip() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "never became master"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > std::time::Duration::from_secs(5) {
            let _ = child.kill();
            panic!("keepalive-d did not stop on SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(!has_vip(), "the VIP is still there after a graceful stop");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn version_is_printed() {
    let out = keepalive_d(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("keepalive-d {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// Runs keepalive-d with `input` on stdin.
fn keepalive_d_with_input(args: &[&str], input: &str) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_keepalive-d"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn ipvs_restore_reports_the_bad_line_and_exits_1() {
    // The input is parsed before IPVS is touched: this works without IPVS.
    let out = keepalive_d_with_input(
        &["ipvs", "restore", "--dry-run"],
        "-A -t 192.0.2.1:80 -s rr\n-a -t 192.0.2.1:80 -r 10.0.0.1:80 -m -w 1\n-A -t 192.0.2.2:80 -s rr --bogus\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.starts_with("keepalive-d: line 3"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn ipvs_save_without_ipvs_exits_1() {
    // Our machines and CI never have IPVS on the host (no /proc/net/ip_vs); the kernel
    // tests run it in the lab VM.
    let out = keepalive_d(&["ipvs", "save"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.starts_with("keepalive-d: "), "{stderr}");
    assert!(stderr.contains("IPVS is not available"), "{stderr}");
}
