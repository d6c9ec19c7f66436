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

fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(crate_file("examples/configs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
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
fn run_validates_then_says_it_is_not_implemented() {
    let good = crate_file("examples/configs/vrrp-pair.yaml");
    let out = keepalive_d(&["run", "--config", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("not implemented yet"), "{stderr}");

    let bad = crate_file("tests/bad-configs/vrrp-vrid-zero.yaml");
    let out = keepalive_d(&["run", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains(":4:11: `vrid` must be"), "{stderr}");
    assert!(!stderr.contains("not implemented"), "{stderr}");
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
