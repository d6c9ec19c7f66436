//! What the side-by-side benchmarks (`check-bench`, `reload-bench`) share: the two
//! daemons they compare, the processes of a daemon, and stopping them.

use crate::netns::TestNs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A daemon under test, with its binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Daemon {
    /// keepalived.
    Keepalived(PathBuf),
    /// keepalive-d.
    KeepaliveD(PathBuf),
}

impl Daemon {
    /// `keepalived` or `keepalive-d`.
    pub fn name(&self) -> &'static str {
        match self {
            Daemon::Keepalived(_) => "keepalived",
            Daemon::KeepaliveD(_) => "keepalive-d",
        }
    }

    /// The binary.
    pub fn path(&self) -> &Path {
        let (Daemon::Keepalived(path) | Daemon::KeepaliveD(path)) = self;
        path
    }

    /// The first line of `BINARY --version` (`?` and why, if it cannot run).
    pub fn version(&self) -> String {
        std::process::Command::new(self.path())
            .arg("--version")
            .output()
            .map(|o| {
                let text = [o.stdout, o.stderr].concat();
                String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .unwrap_or("?")
                    .trim()
                    .to_string()
            })
            .unwrap_or_else(|e| format!("? ({e})"))
    }

    /// The daemons of a `--daemons` list: `keepalived` or `keepalive-d`, each optionally
    /// `@PATH` for another binary than `keepalived` or `keepalive_d`. Each comes with
    /// its `@PATH` if it had one.
    pub fn list(
        specs: &[String],
        keepalived: &Path,
        keepalive_d: &Path,
    ) -> Result<Vec<(Daemon, Option<String>)>, String> {
        specs
            .iter()
            .map(|spec| {
                let (kind, path) = match spec.split_once('@') {
                    Some((kind, path)) => (kind, Some(path)),
                    None => (spec.as_str(), None),
                };
                let bin =
                    |default: &Path| path.map_or_else(|| default.to_path_buf(), PathBuf::from);
                let daemon = match kind {
                    "keepalived" => Daemon::Keepalived(bin(keepalived)),
                    "keepalive-d" => Daemon::KeepaliveD(bin(keepalive_d)),
                    other => return Err(format!("unknown daemon {other:?}")),
                };
                Ok((daemon, path.map(str::to_owned)))
            })
            .collect()
    }
}

/// The options of a side-by-side benchmark that pick the daemons and their binaries.
#[derive(Debug, Clone, clap::Args)]
pub struct DaemonArgs {
    /// keepalive-d binary (default: `keepalive-d` next to this binary).
    #[arg(long, value_name = "PATH")]
    pub keepalive_d: Option<PathBuf>,
    /// keepalived binary.
    #[arg(long, value_name = "PATH", default_value = "keepalived")]
    pub keepalived: PathBuf,
    /// Which daemons to run, in this order: `keepalived` or `keepalive-d`, each
    /// optionally `@PATH` for another binary (e.g. two builds of keepalive-d:
    /// `keepalive-d@old/keepalive-d,keepalive-d@new/keepalive-d`).
    #[arg(long, value_delimiter = ',', default_value = "keepalived,keepalive-d")]
    pub daemons: Vec<String>,
}

impl DaemonArgs {
    /// The daemons to run ([`Daemon::list`]).
    pub fn list(&self) -> Result<Vec<(Daemon, Option<String>)>, String> {
        let kad = match &self.keepalive_d {
            Some(p) => p.clone(),
            None => keepalive_d_beside_me()?,
        };
        Daemon::list(&self.daemons, &self.keepalived, &kad)
    }
}

/// The command that starts `daemon` in `ns`, stdin from `/dev/null`, stdout and stderr
/// to a new file `log`. keepalived gets the checker-only foreground options (`-C -n -l
/// -G`: console logging, there is no syslog daemon in the VM) and its pid files in
/// `work`; the caller adds the configuration file and the rest.
pub fn command(daemon: &Daemon, ns: &TestNs, work: &Path, log: &Path) -> std::io::Result<Command> {
    let out = std::fs::File::create(log)?;
    let err = out.try_clone()?;
    let mut cmd = ns.command(&daemon.path().display().to_string());
    if let Daemon::Keepalived(_) = daemon {
        cmd.args(["-C", "-n", "-l", "-G"])
            .arg("-p")
            .arg(work.join("keepalived.pid"))
            .arg("-c")
            .arg(work.join("checkers.pid"));
    }
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    Ok(cmd)
}

/// `keepalive-d` next to the running binary (both built into `target/<profile>/`).
pub fn keepalive_d_beside_me() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    Ok(exe
        .parent()
        .ok_or("no directory above this binary")?
        .join("keepalive-d"))
}

/// `root` and every process below it (from `/proc`).
pub fn descendants(root: i32) -> Vec<i32> {
    let mut parent = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if let Some(ppid) = parent_pid(pid) {
                parent.push((pid, ppid));
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while let Some(&p) = out.get(i) {
        out.extend(parent.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out
}

/// The parent of `pid`.
fn parent_pid(pid: i32) -> Option<i32> {
    proc_stat(pid).map(|(ppid, _)| ppid)
}

/// CPU time in clock ticks ([`clock_ticks`] per second).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cpu {
    /// User time.
    pub user: u64,
    /// System time.
    pub sys: u64,
}

impl Cpu {
    /// User and system time.
    pub fn total(self) -> u64 {
        self.user + self.sys
    }

    /// `self - o`, each part at least 0.
    pub fn minus(self, o: Cpu) -> Cpu {
        Cpu {
            user: self.user.saturating_sub(o.user),
            sys: self.sys.saturating_sub(o.sys),
        }
    }

    /// `self + o`.
    pub fn plus(self, o: Cpu) -> Cpu {
        Cpu {
            user: self.user + o.user,
            sys: self.sys + o.sys,
        }
    }
}

/// From the text of a `/proc/PID/stat` (or `/proc/PID/task/TID/stat`): the parent's pid,
/// and user (utime + cutime) and system (stime + cstime) time.
pub fn stat_fields(stat: &str) -> Option<(i32, Cpu)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command name: state (field 3), ppid (4), ..., utime (14), stime (15),
    // cutime (16), cstime (17); f[0] is field 3.
    let ppid = f.get(1)?.parse().ok()?;
    let n = |i: usize| -> Option<u64> { Some(f.get(i)?.parse::<i64>().ok()?.max(0) as u64) };
    Some((
        ppid,
        Cpu {
            user: n(11)? + n(13)?,
            sys: n(12)? + n(14)?,
        },
    ))
}

/// [`stat_fields`] of process `pid` (`None` if it is gone).
pub fn proc_stat(pid: i32) -> Option<(i32, Cpu)> {
    stat_fields(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The CPU time of `root` and every process below it, now.
pub fn tree_cpu(root: i32) -> Cpu {
    descendants(root)
        .into_iter()
        .filter_map(|p| proc_stat(p).map(|(_, c)| c))
        .fold(Cpu::default(), Cpu::plus)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 if unknown).
pub fn clock_ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |t| t as f64)
}

/// A `KEY: N kB` value of `/proc/PID/FILE` (`status`, `smaps_rollup`), in KiB.
pub fn proc_kib(pid: i32, file: &str, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Stops a daemon started as `child` (process `root`): SIGTERM, SIGKILL if it has not
/// exited after `grace`; then SIGKILL to any of its processes still there (by PID, only
/// those it started). Says what it did on stderr, as `name`. The time from SIGTERM to the
/// exit, or `None` if it had to be killed.
pub fn stop(name: &str, child: &mut Child, root: i32, grace: Duration) -> Option<Duration> {
    let tree = descendants(root);
    let t = Instant::now();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(root),
        nix::sys::signal::Signal::SIGTERM,
    );
    let mut exited = None;
    while t.elapsed() < grace {
        if matches!(child.try_wait(), Ok(Some(_))) {
            exited = Some(t.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if exited.is_none() {
        eprintln!(
            "{name}: no exit {} s after SIGTERM: SIGKILL",
            grace.as_secs()
        );
        let _ = child.kill();
        let _ = child.wait();
    }
    for pid in tree.into_iter().filter(|&p| p != root) {
        if std::fs::metadata(format!("/proc/{pid}")).is_ok() {
            eprintln!("{name}: process {pid} outlived the daemon: SIGKILL");
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    exited
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_lists() {
        let l = Daemon::list(
            &[
                "keepalived".into(),
                "keepalive-d@/x/kd".into(),
                "keepalive-d".into(),
            ],
            Path::new("/usr/sbin/keepalived"),
            Path::new("/t/keepalive-d"),
        )
        .unwrap_or_default();
        assert_eq!(
            l,
            [
                (Daemon::Keepalived("/usr/sbin/keepalived".into()), None),
                (Daemon::KeepaliveD("/x/kd".into()), Some("/x/kd".into())),
                (Daemon::KeepaliveD("/t/keepalive-d".into()), None),
            ]
        );
        assert!(Daemon::list(&["haproxy".into()], Path::new("a"), Path::new("b")).is_err());
        assert_eq!(l[1].0.name(), "keepalive-d");
    }

    #[test]
    fn this_process_has_no_children_but_itself() {
        let me = i32::try_from(std::process::id()).unwrap_or(0);
        assert_eq!(descendants(me).first(), Some(&me));
        assert!(proc_kib(me, "status", "VmRSS:").is_some_and(|k| k > 0));
        assert_eq!(proc_kib(me, "status", "NoSuchKey:"), None);
    }
}
