//! Script security through the command line: `keepalive-d check` and `run` refuse a
//! configuration whose programs others could change, with the file, line and column of
//! the program and the reason. The files are made here with the wrong owner or mode (the
//! tests run as root, like the rest of the suite).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `nobody` on Debian.
const NOBODY: u32 = 65534;

/// A fresh root-owned 0755 directory in /tmp (root-owned and sticky, so allowed), removed
/// on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        assert!(
            nix::unistd::geteuid().is_root(),
            "these tests chown files: run them as root"
        );
        let dir = Path::new("/tmp").join(format!("kad-scrsec-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        chmod(&dir, 0o755);
        Self(dir)
    }

    fn script(&self, rel: &str, mode: u32) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
        chmod(&p, mode);
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn keepalive_d(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keepalive-d"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// A configuration naming `notify` (line 8, column 24), `track` (line 10, column 21)
/// and `exec` (line 16, column 48).
fn config(notify: &Path, track: &Path, exec: &Path) -> String {
    format!(
        "vrrp_instances:
  - name: vi1
    interface: eth0
    vrid: 51
    priority: 100
    virtual_ips: [192.0.2.10/24]
    notify:
      master: [{}, master]
    track_scripts:
      - {{ command: [{}], weight: -10 }}
virtual_servers:
  - name: web
    vip: 192.0.2.10:80
    real_servers:
      - address: 10.0.0.11:80
        check: {{ type: exec, exec: {{ command: [{}, 10.0.0.11] }} }}
",
        notify.display(),
        track.display(),
        exec.display()
    )
}

/// `check` and `run` both exit 1 with exactly `expected` on stderr.
fn refused(conf: &Path, expected: &str) {
    let conf = conf.to_str().unwrap();
    for command in ["check", "run"] {
        let out = keepalive_d(&[command, "--config", conf]);
        assert_eq!(out.status.code(), Some(1), "{command}");
        assert!(out.stdout.is_empty(), "{command}");
        assert_eq!(
            String::from_utf8(out.stderr).unwrap(),
            expected,
            "{command}"
        );
    }
}

#[test]
fn check_and_run_refuse_programs_others_can_change() {
    let dir = TempDir::new("modes");
    let ok = dir.script("ok.sh", 0o755);
    let open = dir.script("open.sh", 0o777);
    let theirs = dir.script("theirs.sh", 0o755);
    chown(&theirs, Some(NOBODY), Some(NOBODY)).unwrap();
    let group = dir.script("group.sh", 0o775);
    chown(&group, None, Some(NOBODY)).unwrap();
    let conf = dir.0.join("keepalive-d.yaml");
    let c = conf.display();

    std::fs::write(&conf, config(&open, &theirs, &group)).unwrap();
    refused(
        &conf,
        &format!(
            "{c}:8:16: `notify.master`: `{}` is writable by others (mode 0777)\n\
             {c}:10:21: `command`: `{}` is owned by uid {NOBODY}, not root\n\
             {c}:16:48: `exec.command`: `{}` is writable by group {NOBODY} (mode 0775)\n",
            open.display(),
            theirs.display(),
            group.display()
        ),
    );

    // Fixed: accepted.
    std::fs::write(&conf, config(&ok, &ok, Path::new("/bin/true"))).unwrap();
    let out = keepalive_d(&["check", "--config", conf.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_refuses_a_writable_directory_a_missing_or_non_executable_program() {
    let dir = TempDir::new("paths");
    let shared = dir.0.join("shared");
    std::fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o777);
    let in_shared = shared.join("x.sh");
    std::fs::write(&in_shared, "#!/bin/sh\n").unwrap();
    chmod(&in_shared, 0o755);
    let missing = dir.0.join("missing.sh");
    let data = dir.script("data.sh", 0o644);
    let conf = dir.0.join("keepalive-d.yaml");
    let c = conf.display();
    std::fs::write(&conf, config(&in_shared, &missing, &data)).unwrap();
    refused(
        &conf,
        &format!(
            "{c}:8:16: `notify.master`: directory `{}` is writable by others (mode 0777) and \
             not sticky\n\
             {c}:10:21: `command`: `{}` does not exist\n\
             {c}:16:48: `exec.command`: `{}` is not executable (mode 0644)\n",
            shared.display(),
            missing.display(),
            data.display()
        ),
    );

    // Sticky, like /tmp: the directory is fine.
    chmod(&shared, 0o1777);
    std::fs::write(&conf, config(&in_shared, &in_shared, &in_shared)).unwrap();
    let out = keepalive_d(&["check", "--config", conf.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
