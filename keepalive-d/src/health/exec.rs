//! Exec probe: a command in its own process group; exit status 0 within the timeout is up.
//! The command learns which real server it checks from its environment.

use std::future::Future;
use std::net::SocketAddr;
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

/// The environment variable that holds the checked real server's IP address.
pub(crate) const ENV_ADDRESS: &str = "KEEPALIVE_D_REAL_SERVER_ADDRESS";
/// The environment variable that holds the checked real server's port.
pub(crate) const ENV_PORT: &str = "KEEPALIVE_D_REAL_SERVER_PORT";

/// `exec` check.
pub(crate) struct ExecProbe {
    program: String,
    args: Vec<String>,
    /// The real server checked, passed to the command as [`ENV_ADDRESS`] and [`ENV_PORT`]
    /// (formatted per run: a task keeps 28 bytes instead of two strings).
    server: SocketAddr,
    /// The process id of the last command started (tests check that it is gone).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) last_pid: Option<u32>,
}

impl ExecProbe {
    pub(crate) fn new(command: &config::Command, server: SocketAddr) -> Self {
        Self {
            program: command.program.clone(),
            args: command.args.clone(),
            server,
            last_pid: None,
        }
    }
}

impl Probe for ExecProbe {
    const OWN_TIMEOUT: bool = true;

    /// Boxed: starting a process allocates anyway, and the task does not keep the
    /// process-handling state reserved between probes.
    fn probe(&mut self, timeout: Duration) -> impl Future<Output = ProbeResult> + Send {
        Box::pin(self.run(timeout))
    }
}

impl ExecProbe {
    async fn run(&mut self, timeout: Duration) -> ProbeResult {
        let deadline = Instant::now() + timeout;
        let child = Command::new(&self.program)
            .args(&self.args)
            .env(ENV_ADDRESS, self.server.ip().to_string())
            .env(ENV_PORT, self.server.port().to_string())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(program: &str, args: &[&str]) -> ExecProbe {
        ExecProbe::new(
            &config::Command {
                program: program.to_owned(),
                args: args.iter().map(|a| (*a).to_owned()).collect(),
            },
            "192.0.2.7:3306".parse().unwrap(),
        )
    }

    /// Whether `pid` is gone, or a zombie that its (new) parent has yet to reap.
    fn gone(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z')),
        }
    }

    #[tokio::test]
    async fn sleep_past_the_timeout_is_killed_and_reaped() {
        let mut p = probe("/bin/sleep", &["10"]);
        let start = std::time::Instant::now();
        let result = p.probe(Duration::from_millis(200)).await;
        let took = start.elapsed();
        assert_eq!(
            result,
            Err("/bin/sleep: timed out after 200ms, process group killed".to_owned())
        );
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_millis(1000),
            "{took:?}"
        );
        let pid = p.last_pid.unwrap();
        // Reaped by the probe itself: not even a zombie is left.
        assert!(
            std::fs::metadata(format!("/proc/{pid}")).is_err(),
            "process {pid} still exists"
        );
    }

    #[tokio::test]
    async fn a_probe_dropped_mid_run_kills_its_process_group() {
        let mut p = probe("/bin/sleep", &["10"]);
        // The probe is abandoned (as when the checks are stopped) long before its timeout.
        let abandoned =
            tokio::time::timeout(Duration::from_millis(100), p.probe(Duration::from_secs(10)))
                .await;
        assert!(abandoned.is_err());
        let pid = p.last_pid.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while !gone(pid) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(gone(pid), "process {pid} still runs");
    }

    #[tokio::test]
    async fn exit_statuses() {
        assert_eq!(
            probe("/bin/true", &[]).probe(Duration::from_secs(2)).await,
            Ok(Note::Exited)
        );
        assert_eq!(
            probe("/bin/false", &[]).probe(Duration::from_secs(2)).await,
            Err("/bin/false: exit status: 1".to_owned())
        );
        // Killed by a signal.
        assert_eq!(
            probe("/bin/sh", &["-c", "kill -9 $$"])
                .probe(Duration::from_secs(2))
                .await,
            Err("/bin/sh: signal: 9 (SIGKILL)".to_owned())
        );
    }

    #[tokio::test]
    async fn the_command_knows_its_real_server() {
        let script = format!("test \"${ENV_ADDRESS}\" = 192.0.2.7 && test \"${ENV_PORT}\" = 3306");
        assert_eq!(
            probe("/bin/sh", &["-c", &script])
                .probe(Duration::from_secs(2))
                .await,
            Ok(Note::Exited)
        );
        let mut v6 = ExecProbe::new(
            &config::Command {
                program: "/bin/sh".to_owned(),
                args: vec![
                    "-c".to_owned(),
                    format!("test \"${ENV_ADDRESS}\" = 2001:db8::7 && test \"${ENV_PORT}\" = 0"),
                ],
            },
            "[2001:db8::7]:0".parse().unwrap(),
        );
        assert_eq!(v6.probe(Duration::from_secs(2)).await, Ok(Note::Exited));
    }
}
