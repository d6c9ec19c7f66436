//! Notify commands: run on state transitions, as argv (no shell), one at a
//! time per instance in transition order, each bounded by a timeout, never
//! blocking the state machine (a queue and a task per instance).

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::mpsc;
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

/// The notify queue of one instance.
#[derive(Debug)]
pub struct Notifier {
    name: String,
    spec: NotifySpec,
    tx: Option<mpsc::UnboundedSender<Vec<Vec<String>>>>,
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

    /// Queues the commands for a transition to `state`.
    pub fn transition(&self, state: State, priority: u8) {
        if let Some(tx) = &self.tx {
            let cmds = self.spec.commands(&self.name, state, priority);
            if !cmds.is_empty() && tx.send(cmds).is_err() {
                tracing::warn!(instance = %self.name, "notify queue closed");
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

async fn run_queue(
    name: String,
    timeout: Duration,
    mut rx: mpsc::UnboundedReceiver<Vec<Vec<String>>>,
) {
    while let Some(cmds) = rx.recv().await {
        for argv in cmds {
            run_one(&name, timeout, &argv).await;
        }
    }
}

async fn run_one(name: &str, timeout: Duration, argv: &[String]) {
    let Some((prog, args)) = argv.split_first() else {
        return;
    };
    let spawned = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(instance = %name, command = ?argv, "notify: cannot start: {e}");
            return;
        }
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => {
            tracing::debug!(instance = %name, command = ?argv, "notify done");
        }
        Ok(Ok(status)) => {
            tracing::warn!(instance = %name, command = ?argv, %status, "notify failed");
        }
        Ok(Err(e)) => tracing::warn!(instance = %name, command = ?argv, "notify: {e}"),
        Err(_) => {
            tracing::warn!(instance = %name, command = ?argv, ?timeout, "notify timed out, killing it");
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
}
