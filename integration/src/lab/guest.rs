//! The guest agent: `lab __guest DIR`, run inside the VM's chroot by `/init`.

use super::{JobStatus, LabError, Report, Request};
use std::fs::OpenOptions;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Reads `DIR/request.json`, runs the jobs with their output appended to `DIR/stdout` and
/// `DIR/stderr`, and writes `DIR/status.json`.
pub fn run(dir: &Path) -> Result<(), LabError> {
    let io = |what: &str, e: std::io::Error| LabError::Io(format!("guest: {what}: {e}"));
    let uptime = std::fs::read_to_string("/proc/uptime").unwrap_or_default();
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let uptime = uptime.split_whitespace().next().unwrap_or("?").to_string();
    // Write then rename: the host polls for this file and must never read it half-written.
    let tmp = dir.join("booted.tmp");
    std::fs::write(&tmp, format!("{uptime} {}\n", release.trim()))
        .map_err(|e| io("write booted", e))?;
    std::fs::rename(&tmp, dir.join("booted")).map_err(|e| io("rename booted", e))?;
    let text =
        std::fs::read_to_string(dir.join("request.json")).map_err(|e| io("read request", e))?;
    let req: Request = serde_json::from_str(&text)
        .map_err(|e| LabError::Io(format!("guest: parse request: {e}")))?;
    let open = |name: &str| {
        OpenOptions::new()
            .append(true)
            .create(true)
            .open(dir.join(name))
            .map_err(|e| io(name, e))
    };
    let mut statuses = Vec::with_capacity(req.jobs.len());
    for argv in &req.jobs {
        let Some((prog, args)) = argv.split_first() else {
            statuses.push(JobStatus::SpawnFailed("empty command".into()));
            continue;
        };
        let status = Command::new(prog)
            .args(args)
            .current_dir(&req.cwd)
            .env_clear()
            .envs(req.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(open("stdout")?)
            .stderr(open("stderr")?)
            .status();
        statuses.push(match status {
            Ok(s) => match (s.code(), s.signal()) {
                (Some(c), _) => JobStatus::Exited(c),
                (None, Some(sig)) => JobStatus::Signaled(sig),
                (None, None) => JobStatus::SpawnFailed("unknown exit status".into()),
            },
            Err(e) => JobStatus::SpawnFailed(format!("{prog}: {e}")),
        });
    }
    let report = serde_json::to_string(&Report { jobs: statuses })
        .map_err(|e| LabError::Io(format!("guest: encode status: {e}")))?;
    // Write then rename, so the host never reads a half-written report.
    let tmp = dir.join("status.json.tmp");
    std::fs::write(&tmp, report).map_err(|e| io("write status", e))?;
    std::fs::rename(&tmp, dir.join("status.json")).map_err(|e| io("rename status", e))?;
    Ok(())
}
