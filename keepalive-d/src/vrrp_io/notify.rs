//! Notify commands: run on state transitions, as argv (no shell), one at a
//! time per instance in transition order, each bounded by a timeout, never
//! blocking the state machine (a queue and a task per instance).
//!
//! keepalived forks every notify script without waiting for it, so two
//! quick transitions can run their scripts at the same time and finish in
//! any order (acassen/keepalived#996; its answer is `notify_fifo`). Here a
//! command starts only when the previous one of the same instance has
//! finished (or was killed at its timeout), and [`Notifier::flush`] lets
//! the driver wait for the queue: a stopping Master runs its `stop` command
//! to the end before it sends priority 0 (see [`super::driver`]).

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use vrrp_proto::State;

/// Notify commands of one instance, after keepalived's `notify_master`,
/// `notify_backup`, `notify_fault`, `notify_stop` and `notify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySpec {
    /// Run on entering Master.
    pub master: Option<Vec<String>>,
    /// Run on entering Backup.
    pub backup: Option<Vec<String>>,
    /// Run on entering Fault.
    pub fault: Option<Vec<String>>,
    /// Run when the instance stops (shutdown).
    pub stop: Option<Vec<String>>,
    /// Run on every transition, after the state's own command, with
    /// keepalived's four arguments appended: `INSTANCE`, the instance name,
    /// the new state (`MASTER`, `BACKUP`, `FAULT` or `STOP`) and the
    /// priority.
    pub any: Option<Vec<String>>,
    /// How long one command may run before it is killed.
    pub timeout: Duration,
}

impl Default for NotifySpec {
    fn default() -> Self {
        NotifySpec {
            master: None,
            backup: None,
            fault: None,
            stop: None,
            any: None,
            timeout: Duration::from_secs(10),
        }
    }
}

impl NotifySpec {
    /// Whether any command is configured.
    pub fn is_empty(&self) -> bool {
        self.master.is_none()
            && self.backup.is_none()
            && self.fault.is_none()
            && self.stop.is_none()
            && self.any.is_none()
    }

    /// The commands to run, in order, when `instance` enters `state` with
    /// `priority`.
    pub fn commands(&self, instance: &str, state: State, priority: u8) -> Vec<Vec<String>> {
        let (own, word) = match state {
            State::Master => (&self.master, "MASTER"),
            State::Backup => (&self.backup, "BACKUP"),
            State::Fault => (&self.fault, "FAULT"),
            State::Initialize => (&self.stop, "STOP"),
        };
        let mut out = Vec::new();
        if let Some(argv) = own.as_ref().filter(|a| !a.is_empty()) {
            out.push(argv.clone());
        }
        if let Some(argv) = self.any.as_ref().filter(|a| !a.is_empty()) {
            let mut argv = argv.clone();
            argv.extend([
                "INSTANCE".to_string(),
                instance.to_string(),
                word.to_string(),
                priority.to_string(),
            ]);
            out.push(argv);
        }
        out
    }
}

/// What the queue of an instance holds.
#[derive(Debug)]
enum Job {
    /// The commands of one transition, run in order.
    Run(Vec<Vec<String>>),
    /// Answered once everything queued before it has finished.
    Barrier(oneshot::Sender<()>),
}

/// The notify queue of one instance.
#[derive(Debug)]
pub struct Notifier {
    name: String,
    spec: NotifySpec,
    tx: Option<mpsc::UnboundedSender<Job>>,
    task: Option<JoinHandle<()>>,
}

impl Notifier {
    /// Starts the queue's task (none if no command is configured).
    pub fn spawn(name: &str, spec: NotifySpec) -> Self {
        let (tx, task) = if spec.is_empty() {
            (None, None)
        } else {
            let (tx, rx) = mpsc::unbounded_channel();
            let task = tokio::spawn(run_queue(name.to_string(), spec.timeout, rx));
            (Some(tx), Some(task))
        };
        Notifier {
            name: name.to_string(),
            spec,
            tx,
            task,
        }
    }

    /// Queues the commands for a transition to `state`; returns whether there were any.
    pub fn transition(&self, state: State, priority: u8) -> bool {
        let Some(tx) = &self.tx else {
            return false;
        };
        let cmds = self.spec.commands(&self.name, state, priority);
        if cmds.is_empty() {
            return false;
        }
        if tx.send(Job::Run(cmds)).is_err() {
            tracing::warn!(instance = %self.name, "notify queue closed");
        }
        true
    }

    /// Completes once every command queued so far has finished (each is bounded by the
    /// timeout, so this is bounded too); at once when nothing is queued or configured.
    pub fn flush(&self) -> impl Future<Output = ()> + use<> {
        let (done, wait) = oneshot::channel();
        let queued = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.send(Job::Barrier(done)).is_ok());
        async move {
            if queued {
                // An error means the queue's task is gone: nothing left to wait for.
                let _ = wait.await;
            }
        }
    }

    /// Closes the queue and waits for the queued commands to finish.
    pub async fn finish(mut self) {
        self.tx = None;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

async fn run_queue(name: String, timeout: Duration, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(job) = rx.recv().await {
        match job {
            Job::Run(cmds) => {
                for argv in cmds {
                    run_one(&name, timeout, &argv).await;
                }
            }
            Job::Barrier(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// Runs one command to its end, or kills its process group at `timeout`.
async fn run_one(name: &str, timeout: Duration, argv: &[String]) {
    let Some((prog, args)) = argv.split_first() else {
        return;
    };
    // A process group of its own: a Ctrl-C meant for a daemon in the foreground does not
    // kill a demote half-way, and a timeout kills what the command started too.
    let spawned = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(instance = %name, command = ?argv, "notify: cannot start: {e}");
            return;
        }
    };
    let started = std::time::Instant::now();
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => {
            tracing::debug!(instance = %name, command = ?argv, elapsed = ?started.elapsed(), "notify done");
        }
        Ok(Ok(status)) => {
            tracing::warn!(instance = %name, command = ?argv, %status, "notify failed");
        }
        Ok(Err(e)) => tracing::warn!(instance = %name, command = ?argv, "notify: {e}"),
        Err(_) => {
            tracing::warn!(instance = %name, command = ?argv, ?timeout, "notify timed out, killing its process group");
            // Not reaped yet, so the id is still the group's: the signal reaches no one else.
            if let Some(pgid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pgid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.kill().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Option<Vec<String>> {
        Some(s.iter().map(|x| x.to_string()).collect())
    }

    #[test]
    fn commands_in_keepalived_order() {
        let spec = NotifySpec {
            master: argv(&["/bin/m", "x"]),
            any: argv(&["/bin/n"]),
            ..NotifySpec::default()
        };
        assert_eq!(
            spec.commands("VI_1", State::Master, 150),
            vec![
                vec!["/bin/m".to_string(), "x".to_string()],
                ["/bin/n", "INSTANCE", "VI_1", "MASTER", "150"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>(),
            ]
        );
        assert_eq!(spec.commands("VI_1", State::Initialize, 150)[0][3], "STOP");
        assert_eq!(spec.commands("VI_1", State::Backup, 1).len(), 1);
        assert!(NotifySpec::default().is_empty());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn queue_runs_in_order_and_times_out() {
        let dir = std::env::temp_dir().join(format!("notify-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let log = dir.join("log");
        let script = format!("echo \"$@\" >> {}", log.display());
        let spec = NotifySpec {
            // A hung command first: killed after the timeout, the queue goes on.
            master: argv(&["sleep", "30"]),
            any: argv(&["sh", "-c", &script, "sh"]),
            timeout: Duration::from_millis(200),
            ..NotifySpec::default()
        };
        let n = Notifier::spawn("VI_1", spec);
        let start = std::time::Instant::now();
        n.transition(State::Master, 150);
        n.transition(State::Backup, 150);
        n.transition(State::Initialize, 150);
        n.finish().await;
        let elapsed = start.elapsed();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            text,
            "INSTANCE VI_1 MASTER 150\nINSTANCE VI_1 BACKUP 150\nINSTANCE VI_1 STOP 150\n"
        );
        assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn flush_waits_for_the_queue_and_commands_never_overlap() {
        let dir = std::env::temp_dir().join(format!("notify-flush-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let log = dir.join("log");
        let _ = std::fs::remove_file(&log);
        // Each command logs its start and end; a slow one first.
        let script = format!(
            "echo \"start $1\" >> {log}; sleep $2; echo \"end $1\" >> {log}",
            log = log.display()
        );
        let sh = |word: &str, secs: &str| argv(&["sh", "-c", &script, "sh", word, secs]);
        let spec = NotifySpec {
            master: sh("promote", "0.3"),
            backup: sh("demote", "0"),
            stop: sh("stop", "0.2"),
            ..NotifySpec::default()
        };
        let n = Notifier::spawn("VI_1", spec);
        assert!(n.transition(State::Master, 100));
        assert!(n.transition(State::Backup, 100));
        assert!(n.transition(State::Initialize, 100));
        let start = std::time::Instant::now();
        n.flush().await;
        let waited = start.elapsed();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(
            text,
            "start promote\nend promote\nstart demote\nend demote\nstart stop\nend stop\n"
        );
        assert!(waited >= Duration::from_millis(500), "{waited:?}");
        // Nothing queued: at once.
        let start = std::time::Instant::now();
        n.flush().await;
        assert!(start.elapsed() < Duration::from_millis(200));
        n.finish().await;
        // No command configured: no queue, nothing to wait for.
        let none = Notifier::spawn("VI_2", NotifySpec::default());
        assert!(!none.transition(State::Master, 100));
        none.flush().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_timeout_kills_what_the_command_started() {
        let dir = std::env::temp_dir().join(format!("notify-pgrp-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let pidfile = dir.join("pid");
        // The shell starts a grandchild and waits for it: both must go at the timeout.
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let spec = NotifySpec {
            master: argv(&["sh", "-c", &script]),
            timeout: Duration::from_millis(300),
            ..NotifySpec::default()
        };
        let n = Notifier::spawn("VI_1", spec);
        n.transition(State::Master, 100);
        n.finish().await;
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        assert!(pid > 0, "no grandchild pid");
        // Killed (and reaped by init, or a zombie until then): not running any more.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let alive = |pid: i32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit(')')
                        .next()
                        .map(|r| r.trim_start().starts_with('Z'))
                })
                .is_some_and(|zombie| !zombie)
        };
        while alive(pid) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!alive(pid), "the grandchild {pid} survived the timeout");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
