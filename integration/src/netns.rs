//! Fresh network namespaces for kernel tests.
//!
//! Every kernel test works in its own namespace, so tests run in parallel without seeing
//! each other's IPVS tables. A [`TestNs`] is removed when dropped.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A named network namespace (`/run/netns/NAME`) with loopback up.
#[derive(Debug)]
pub struct TestNs {
    name: String,
    fd: File,
}

/// A command run in a namespace failed.
#[derive(Debug)]
pub struct CmdError(pub String);

impl std::fmt::Display for CmdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CmdError {}

impl TestNs {
    /// Creates a namespace whose name contains `tag`, and brings its loopback up: with
    /// loopback down every new IPVS destination fails with EINVAL.
    pub fn new(tag: &str) -> Result<Self, CmdError> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{}-{n}-{tag}", std::process::id());
        host_cmd("ip", &["netns", "add", &name])?;
        let fd = File::open(format!("/run/netns/{name}"))
            .map_err(|e| CmdError(format!("open /run/netns/{name}: {e}")))?;
        let ns = Self { name, fd };
        ns.run("ip", &["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that will run inside this namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        let raw = self.fd.as_raw_fd();
        // SAFETY: the closure runs in the forked child before exec and only makes the
        // setns(2) system call, which is async-signal-safe. `raw` stays open in the child
        // until exec because `self` (which owns it) outlives the spawn.
        unsafe {
            cmd.pre_exec(move || {
                let fd = BorrowedFd::borrow_raw(raw);
                nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)
            });
        }
        cmd
    }

    /// Runs `program args` in the namespace; its stdout on success, or an error with
    /// the command, its status and its stderr.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<String, CmdError> {
        let out = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| CmdError(format!("{program}: {e}")))?;
        check(program, args, &out)
    }

    /// Like [`TestNs::run`], with `input` on the command's stdin.
    pub fn run_with_input(
        &self,
        program: &str,
        args: &[&str],
        input: &str,
    ) -> Result<String, CmdError> {
        let mut child = self
            .command(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| CmdError(format!("{program}: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input.as_bytes())
                .map_err(|e| CmdError(format!("{program}: write stdin: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| CmdError(format!("{program}: {e}")))?;
        check(program, args, &out)
    }

    /// Runs `f` on a thread that has entered this namespace (for opening sockets in it),
    /// and returns its result. The calling thread is never moved.
    pub fn enter<R: Send>(&self, f: impl FnOnce() -> R + Send) -> Result<R, CmdError> {
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(&self.fd, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| CmdError(format!("setns {}: {e}", self.name)))?;
                Ok(f())
            })
            .join()
            .map_err(|_| CmdError(format!("thread in {} panicked", self.name)))?
        })
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = host_cmd("ip", &["netns", "del", &self.name]);
    }
}

fn host_cmd(program: &str, args: &[&str]) -> Result<String, CmdError> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| CmdError(format!("{program}: {e}")))?;
    check(program, args, &out)
}

fn check(program: &str, args: &[&str], out: &Output) -> Result<String, CmdError> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(CmdError(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
