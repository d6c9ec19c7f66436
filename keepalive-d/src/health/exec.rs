//! Exec probe: a command in its own process group; exit status 0 within the timeout is up.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::config;

use super::probe::{Note, Probe, ProbeResult, describe, timed_out};

/// How long to wait for a command to be reaped after its process group got SIGKILL
/// (longer only for a process stuck in the kernel; tokio then reaps it later).
const REAP_GRACE: Duration = Duration::from_secs(1);

/// `exec` check.
pub(crate) struct ExecProbe {
    program: String,
    args: Vec<String>,
    /// The process id of the last command started (tests check that it is gone).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) last_pid: Option<u32>,
}

impl ExecProbe {
    pub(crate) fn new(command: &config::Command) -> Self {
        Self {
            program: command.program.clone(),
            args: command.args.clone(),
            last_pid: None,
        }
    }
}

impl Probe for ExecProbe {
    async fn probe(&mut self, timeout: Duration) -> ProbeResult {
        let deadline = Instant::now() + timeout;
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| describe(&format!("run {}", self.program), &e))?;
        self.last_pid = child.id();
        let mut group = Group::new(child);
        match tokio::time::timeout_at(deadline, group.child.wait()).await {
            Ok(Ok(status)) => {
                group.reaped = true;
                if status.success() {
                    Ok(Note::Exited)
                } else {
                    Err(format!("{}: {status}", self.program))
                }
            }
            // The group is killed when `group` is dropped.
            Ok(Err(e)) => Err(describe(&format!("wait for {}", self.program), &e)),
            Err(_) => {
                group.kill();
                if let Ok(Ok(_)) = tokio::time::timeout(REAP_GRACE, group.child.wait()).await {
                    group.reaped = true;
                }
                Err(format!(
                    "{}: {}, process group killed",
                    self.program,
                    timed_out(timeout)
                ))
            }
        }
    }
}

/// A started command that leads its own process group. Until it has been reaped, dropping
/// it (a timeout, or the checks being stopped mid-probe) kills the whole group; the
/// process id cannot be reused before the command is reaped, so the signal cannot reach
/// anyone else.
struct Group {
    child: Child,
    pgid: Option<Pid>,
    reaped: bool,
}

impl Group {
    fn new(child: Child) -> Self {
        let pgid = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .map(Pid::from_raw);
        Self {
            child,
            pgid,
            reaped: false,
        }
    }

    /// SIGKILL to every process of the group.
    fn kill(&mut self) {
        if let (Some(pgid), false) = (self.pgid, self.reaped) {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // `child` is dropped after this, so its kill_on_drop and tokio's reaping of
        // orphans come after the group is signalled.
        self.kill();
    }
}
