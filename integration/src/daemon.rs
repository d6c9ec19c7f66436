//! A `keepalive-d run` process in a test namespace: started with a configuration, its
//! stderr (the log) collected, stopped with SIGTERM (or killed) by PID.

use crate::netns::{CmdError, TestNs};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `keepalive-d` binary: `$KEEPALIVE_D`, else next to the running executable (a
/// `target/<profile>/` binary), else one directory up (a test in `target/<profile>/deps/`).
pub fn keepalive_d_path() -> Result<PathBuf, CmdError> {
    if let Some(p) = std::env::var_os("KEEPALIVE_D") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| CmdError(format!("current_exe: {e}")))?;
    let dir = exe
        .parent()
        .ok_or_else(|| CmdError(format!("{} has no directory", exe.display())))?;
    [dir.join("keepalive-d"), dir.join("../keepalive-d")]
        .into_iter()
        .find(|p| p.exists())
        .ok_or_else(|| {
            CmdError(format!(
                "keepalive-d is not built next to {} (cargo build -p keepalive-d, or set KEEPALIVE_D)",
                exe.display()
            ))
        })
}

/// A running `keepalive-d run -c FILE` in a namespace. Dropping it kills the process.
pub struct Daemon {
    child: Child,
    log: Arc<Mutex<String>>,
    config: PathBuf,
}

impl Daemon {
    /// Validates `config` with `keepalive-d check`, then starts `keepalive-d run` with it
    /// in `ns` (log level from `rust_log`, e.g. `info`).
    pub fn start(ns: &TestNs, config: &str, rust_log: &str) -> Result<Self, CmdError> {
        Self::start_exe(keepalive_d_path()?, ns, config, rust_log)
    }

    /// [`Daemon::start`] without the `keepalive-d check` first, for a restart with a
    /// configuration already checked: the new process starts at once, as under a
    /// supervisor (a quick restart must resume within the master-down interval).
    pub fn restart(ns: &TestNs, config: &str, rust_log: &str) -> Result<Self, CmdError> {
        Self::spawn(keepalive_d_path()?, ns, config, rust_log, false)
    }

    /// [`Daemon::start`] with the binary at `exe` (e.g. cargo's `CARGO_BIN_EXE_keepalive-d`).
    pub fn start_exe(
        exe: impl Into<PathBuf>,
        ns: &TestNs,
        config: &str,
        rust_log: &str,
    ) -> Result<Self, CmdError> {
        Self::spawn(exe.into(), ns, config, rust_log, true)
    }

    fn spawn(
        exe: PathBuf,
        ns: &TestNs,
        config: &str,
        rust_log: &str,
        check: bool,
    ) -> Result<Self, CmdError> {
        let path = std::env::temp_dir().join(format!("{}-{}.yaml", ns.name(), std::process::id()));
        std::fs::write(&path, config)
            .map_err(|e| CmdError(format!("write {}: {e}", path.display())))?;
        if !check {
            return Self::run(exe, ns, path, rust_log);
        }
        let out = Command::new(&exe)
            .arg("check")
            .arg("-c")
            .arg(&path)
            .output()
            .map_err(|e| CmdError(format!("{}: {e}", exe.display())))?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&path);
            return Err(CmdError(format!(
                "keepalive-d check rejected the configuration:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Self::run(exe, ns, path, rust_log)
    }

    fn run(exe: PathBuf, ns: &TestNs, path: PathBuf, rust_log: &str) -> Result<Self, CmdError> {
        let mut child = ns
            .command(&exe.to_string_lossy())
            .arg("run")
            .arg("-c")
            .arg(&path)
            .arg("--control-socket")
            .arg(Self::control_socket(ns))
            .arg("--state-dir")
            .arg(Self::state_dir(ns))
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| CmdError(format!("{}: {e}", exe.display())))?;
        let log = Arc::new(Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            let sink = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Ok(mut l) = sink.lock() {
                        l.push_str(&line);
                        l.push('\n');
                    }
                }
            });
        }
        Ok(Self {
            child,
            log,
            config: path,
        })
    }

    /// Replaces the configuration file with `config` and sends SIGHUP; waits (at most
    /// `within`) until the daemon logs the outcome of this reload (`reloaded:` or `reload
    /// refused`), and returns that log line.
    pub fn reload(&self, config: &str, within: Duration) -> Result<String, CmdError> {
        let marks = |log: &str| {
            log.lines()
                .filter(|l| l.contains("reloaded:") || l.contains("reload refused"))
                .count()
        };
        let before = marks(&self.log());
        std::fs::write(&self.config, config)
            .map_err(|e| CmdError(format!("write {}: {e}", self.config.display())))?;
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP)
            .map_err(|e| CmdError(format!("kill -HUP {pid}: {e}")))?;
        let start = Instant::now();
        loop {
            let log = self.log();
            if marks(&log) > before {
                let line = log
                    .lines()
                    .filter(|l| l.contains("reloaded:") || l.contains("reload refused"))
                    .nth(before)
                    .unwrap_or_default();
                return Ok(line.to_owned());
            }
            if start.elapsed() > within {
                return Err(CmdError(format!(
                    "no reload outcome logged within {within:?}:\n{log}"
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The VRRP state directory of daemons in `ns` (one per namespace, so that a daemon
    /// restarted in the same namespace finds its predecessor's state, and parallel tests
    /// never see each other's).
    pub fn state_dir(ns: &TestNs) -> PathBuf {
        std::env::temp_dir().join(format!("{}-{}-state", ns.name(), std::process::id()))
    }

    /// Sends SIGKILL (no clean-up: addresses, the IPVS table and the state files stay, as
    /// after a crash) and reaps the process; the log.
    pub fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(50));
        self.log()
    }

    /// The control socket of daemons in `ns` (`keepalive-d status --control-socket ...`):
    /// one per namespace, so that parallel tests never see each other's daemon.
    pub fn control_socket(ns: &TestNs) -> PathBuf {
        std::env::temp_dir().join(format!("{}-{}-control.sock", ns.name(), std::process::id()))
    }

    /// Sends `signal` to the daemon (e.g. SIGUSR2: hand over to a new process).
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> Result<(), CmdError> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal)
            .map_err(|e| CmdError(format!("kill -{signal} {pid}: {e}")))
    }

    /// Replaces the configuration file (read at the next reload or hand-over).
    pub fn write_config(&self, config: &str) -> Result<(), CmdError> {
        std::fs::write(&self.config, config)
            .map_err(|e| CmdError(format!("write {}: {e}", self.config.display())))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Waits until the log contains `needle`; false after `within`.
    pub fn wait_log(&self, needle: &str, within: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < within {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Sends SIGTERM and waits (at most `within`, then SIGKILL and an error) for the
    /// exit; the exit code and the whole log.
    pub fn stop(mut self, within: Duration) -> Result<(Option<i32>, String), CmdError> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
            .map_err(|e| CmdError(format!("kill -TERM {pid}: {e}")))?;
        let deadline = Instant::now() + within;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    // Let the log reader catch the last lines.
                    std::thread::sleep(Duration::from_millis(100));
                    return Ok((status.code(), self.log()));
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(CmdError(format!(
                        "keepalive-d did not stop within {within:?} of SIGTERM:\n{}",
                        self.log()
                    )));
                }
                Err(e) => return Err(CmdError(format!("wait keepalive-d: {e}"))),
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.config);
    }
}
