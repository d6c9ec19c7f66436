//! Boots the lab VM under QEMU, runs a [`Request`] in it and streams its output.

use super::{LabError, Report, Request, initramfs, kernel, prereq};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to run the VM.
#[derive(Debug, Clone)]
pub struct VmOptions {
    /// Use KVM instead of TCG. Off by default: on these machines `/dev/kvm` belongs to a
    /// hypervisor in which an ordinary guest kernel hangs at boot.
    pub kvm: bool,
    /// Longest time from starting QEMU to the guest agent running.
    pub boot_timeout: Duration,
    /// Longest time for the whole run, boot included; `None` waits as long as it takes.
    pub timeout: Option<Duration>,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Guest CPUs.
    pub cpus: u32,
}

impl Default for VmOptions {
    fn default() -> Self {
        Self {
            kvm: false,
            boot_timeout: Duration::from_secs(120),
            timeout: None,
            memory_mib: 2048,
            cpus: 2,
        }
    }
}

/// The result of a VM run.
#[derive(Debug)]
pub struct Outcome {
    /// Exit statuses of the jobs, in order.
    pub report: Report,
    /// Everything the jobs wrote to stdout (it was also streamed).
    pub stdout: Vec<u8>,
    /// From starting QEMU to the guest agent's first action.
    pub boot_time: Duration,
}

/// The lab's working directory: `<target>/lab`, beside the lab binary's profile dir.
pub fn lab_dir() -> Result<PathBuf, LabError> {
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        return Ok(PathBuf::from(t).join("lab"));
    }
    let exe = std::env::current_exe().map_err(|e| LabError::Io(format!("current_exe: {e}")))?;
    // <target>/<profile>/lab
    exe.parent()
        .and_then(Path::parent)
        .map(|t| t.join("lab"))
        .ok_or_else(|| LabError::Io(format!("no target dir above {}", exe.display())))
}

/// Boots the VM, runs `req` inside it, and returns how every job ended.
pub fn run(opts: &VmOptions, req: &Request) -> Result<Outcome, LabError> {
    prereq::ensure(&prereq::vm_and_tools())?;
    let lab = lab_dir()?;
    let kernel = kernel::ensure(&lab.join("kernel"))?;
    let run_dir = lab.join(format!("run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir).map_err(|e| io("create", &run_dir, e))?;
    let result = run_in(opts, req, &kernel, &run_dir);
    if std::env::var_os("LAB_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&run_dir);
    } else {
        eprintln!("lab: kept {}", run_dir.display());
    }
    result
}

fn run_in(
    opts: &VmOptions,
    req: &Request,
    kernel: &kernel::Kernel,
    dir: &Path,
) -> Result<Outcome, LabError> {
    // The guest agent is this binary. Copy it: cargo may replace the file while we run
    // (building the tests rebuilds the package's binaries), and /proc/self/exe still
    // reads the running one. The guest runs the copy through the read-only host root.
    let exe = dir.join("lab-agent");
    std::fs::copy("/proc/self/exe", &exe).map_err(|e| io("copy the lab binary to", &exe, e))?;
    let request = serde_json::to_string(req).map_err(|e| LabError::Io(format!("encode: {e}")))?;
    write(&dir.join("request.json"), request.as_bytes())?;
    write(
        &dir.join("guest.sh"),
        format!("exec '{}' __guest /run/lab\n", exe.display()).as_bytes(),
    )?;
    write(&dir.join("stdout"), b"")?;
    write(&dir.join("stderr"), b"")?;
    let initrd = dir.join("initramfs.cpio");
    initramfs::build(kernel, &initrd)?;

    if opts.kvm && !Path::new("/dev/kvm").exists() {
        return Err(LabError::Vm(
            "--kvm asked for, but /dev/kvm does not exist".into(),
        ));
    }
    let console = dir.join("console.log");
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", if opts.kvm { "kvm" } else { "tcg,thread=multi" }])
        .args(["-machine", "q35", "-cpu", "max"])
        .args([
            "-smp",
            &opts.cpus.to_string(),
            "-m",
            &opts.memory_mib.to_string(),
        ])
        .args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-kernel")
        .arg(&kernel.vmlinux)
        .arg("-initrd")
        .arg(&initrd)
        .args([
            "-append",
            "console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off rdinit=/init \
             nowatchdog tsc=reliable no_timer_check",
        ])
        .args([
            "-virtfs",
            "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap",
        ])
        .arg("-virtfs")
        .arg(format!(
            "local,path={},mount_tag=lab,security_model=none",
            dir.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| LabError::Vm(format!("cannot start qemu: {e}")))?;
    let mut vm = Running {
        child: &mut child,
        dir,
        started,
    };
    vm.wait(opts)
}

struct Running<'a> {
    child: &'a mut Child,
    dir: &'a Path,
    started: Instant,
}

impl Running<'_> {
    fn wait(&mut self, opts: &VmOptions) -> Result<Outcome, LabError> {
        let mut out = Tail::open(&self.dir.join("stdout"))?;
        let mut err = Tail::open(&self.dir.join("stderr"))?;
        let mut captured = Vec::new();
        let mut boot_time = None;
        let booted = self.dir.join("booted");
        loop {
            let exited = self
                .child
                .try_wait()
                .map_err(|e| LabError::Vm(format!("waiting for qemu: {e}")))?;
            if boot_time.is_none() && booted.exists() {
                let t = self.started.elapsed();
                let info = std::fs::read_to_string(&booted).unwrap_or_default();
                let release = info.split_whitespace().nth(1).unwrap_or("?").to_string();
                eprintln!(
                    "lab: booted Linux {release} in {:.2} s (boot to first command){}",
                    t.as_secs_f64(),
                    if opts.kvm { " with KVM" } else { " under TCG" }
                );
                if let Ok(e) = std::fs::read_to_string(self.dir.join("init-errors")) {
                    eprintln!("lab: warning: guest init reported:{}", e.trim_end());
                }
                boot_time = Some(t);
            }
            out.pump(&mut std::io::stdout(), Some(&mut captured))?;
            err.pump(&mut std::io::stderr(), None)?;
            if let Some(status) = exited {
                out.pump(&mut std::io::stdout(), Some(&mut captured))?;
                err.pump(&mut std::io::stderr(), None)?;
                let report = std::fs::read_to_string(self.dir.join("status.json"))
                    .ok()
                    .and_then(|t| serde_json::from_str::<Report>(&t).ok());
                return match (report, boot_time) {
                    (Some(report), Some(boot_time)) => Ok(Outcome {
                        report,
                        stdout: captured,
                        boot_time,
                    }),
                    _ => Err(LabError::Vm(format!(
                        "the VM stopped ({status}) without reporting an exit status{}",
                        self.diagnostics()
                    ))),
                };
            }
            if boot_time.is_none() && self.started.elapsed() > opts.boot_timeout {
                self.kill();
                let hint = if opts.kvm {
                    "; KVM was asked for: on this kind of machine /dev/kvm belongs to a \
                     hypervisor in which an ordinary guest hangs at boot; run without --kvm"
                } else {
                    ""
                };
                return Err(LabError::Vm(format!(
                    "the VM did not boot within {} s{hint}{}",
                    opts.boot_timeout.as_secs(),
                    self.diagnostics()
                )));
            }
            if let Some(limit) = opts.timeout {
                if self.started.elapsed() > limit {
                    self.kill();
                    return Err(LabError::Vm(format!(
                        "the run exceeded its time limit of {} s and was stopped{}",
                        limit.as_secs(),
                        self.diagnostics()
                    )));
                }
            }
            std::thread::sleep(Duration::from_millis(if boot_time.is_some() {
                20
            } else {
                50
            }));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The tail of the serial console and QEMU's own messages, for an error report.
    fn diagnostics(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let mut buf = String::new();
            let _ = e.read_to_string(&mut buf);
            if !buf.trim().is_empty() {
                s.push_str("\n--- qemu ---\n");
                s.push_str(buf.trim_end());
            }
        }
        for name in ["init-log", "init-errors"] {
            if let Ok(t) = std::fs::read_to_string(self.dir.join(name)) {
                s.push_str(&format!("\n--- {name} ---\n{}", t.trim_end()));
            }
        }
        let console = std::fs::read_to_string(self.dir.join("console.log")).unwrap_or_default();
        let lines: Vec<&str> = console.lines().collect();
        let tail = &lines[lines.len().saturating_sub(30)..];
        s.push_str("\n--- console (last 30 lines) ---\n");
        s.push_str(&tail.join("\n"));
        s
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// Follows a file that the guest appends to.
struct Tail {
    file: File,
}

impl Tail {
    fn open(path: &Path) -> Result<Self, LabError> {
        Ok(Self {
            file: File::open(path).map_err(|e| io("open", path, e))?,
        })
    }

    fn pump(
        &mut self,
        to: &mut impl Write,
        mut copy: Option<&mut Vec<u8>>,
    ) -> Result<(), LabError> {
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = self
                .file
                .read(&mut buf)
                .map_err(|e| LabError::Io(format!("read output: {e}")))?;
            if n == 0 {
                let _ = to.flush();
                return Ok(());
            }
            let chunk = buf.get(..n).unwrap_or_default();
            let _ = to.write_all(chunk);
            if let Some(c) = copy.as_deref_mut() {
                c.extend_from_slice(chunk);
            }
        }
    }
}

fn write(path: &Path, data: &[u8]) -> Result<(), LabError> {
    std::fs::write(path, data).map_err(|e| io("write", path, e))
}

fn io(op: &str, path: &Path, e: std::io::Error) -> LabError {
    LabError::Io(format!("{op} {}: {e}", path.display()))
}
