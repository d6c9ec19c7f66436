//! `cargo lab`: the kernel lab. Boots Debian's kernel with IPVS under QEMU and runs
//! commands or the kernel tests inside it. See `integration/src/lab/mod.rs`.

use clap::{Parser, Subcommand};
use ipvs_integration::lab::{self, JobStatus, LabError, Request, report::Totals, vm};
use std::io::{Read, Write};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "cargo lab",
    about = "Run commands and kernel tests in a VM with real IPVS"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct VmArgs {
    /// Use KVM (off by default: /dev/kvm here belongs to a hypervisor in which an
    /// ordinary guest hangs; with --kvm a hang ends at the boot timeout with an error).
    #[arg(long)]
    kvm: bool,
    /// Seconds from starting QEMU to the first command before giving up.
    #[arg(long, value_name = "SECS")]
    boot_timeout: Option<u64>,
    /// Seconds for the whole run, boot included.
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 2048)]
    memory: u32,
    /// Guest CPUs.
    #[arg(long, default_value_t = 2)]
    cpus: u32,
}

#[derive(Subcommand)]
enum Cmd {
    /// Boot the VM and run CMD as root inside it, in the current directory and
    /// environment; exits with CMD's exit status.
    Run {
        #[command(flatten)]
        vm: VmArgs,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<String>,
    },
    /// Build the kernel tests on the host and run them all in one VM boot.
    Test {
        #[command(flatten)]
        vm: VmArgs,
        /// Run the tests directly on this host (it needs IPVS and root), no VM.
        #[arg(long)]
        native: bool,
        /// Arguments for the test binaries (a name filter, --test-threads=N, ...).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Install everything the lab and the host tests need (Debian packages, the pinned
    /// kernel), idempotently, and say what was done.
    Setup,
    /// Inside the VM: run the request in DIR (started by the guest's /init).
    #[command(name = "__guest", hide = true)]
    Guest { dir: std::path::PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Run { vm, cmd } => run(&vm, cmd),
        Cmd::Test { vm, native, args } => test(&vm, native, &args),
        Cmd::Setup => setup(),
        Cmd::Guest { dir } => lab::guest::run(&dir).map(|()| 0),
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1)),
        Err(e) => {
            eprintln!("lab: error: {e}");
            ExitCode::from(1)
        }
    }
}

fn options(a: &VmArgs, default_timeout: Option<u64>) -> vm::VmOptions {
    let d = vm::VmOptions::default();
    vm::VmOptions {
        kvm: a.kvm || std::env::var_os("LAB_KVM").is_some_and(|v| v == "1"),
        boot_timeout: a.boot_timeout.map(Duration::from_secs).unwrap_or(if a.kvm {
            Duration::from_secs(30)
        } else {
            d.boot_timeout
        }),
        timeout: a.timeout.or(default_timeout).map(Duration::from_secs),
        memory_mib: a.memory,
        cpus: a.cpus,
    }
}

fn setup() -> Result<i32, LabError> {
    lab::prereq::ensure(&lab::prereq::vm_and_tools())?;
    let kernel = lab::kernel::ensure(&vm::lab_dir()?.join("kernel"))?;
    eprintln!(
        "lab: ready (kernel {}, {})",
        kernel.release,
        kernel.vmlinux.display()
    );
    Ok(0)
}

fn host_env() -> Vec<(String, String)> {
    std::env::vars().collect()
}

fn cwd() -> Result<String, LabError> {
    std::env::current_dir()
        .map(|p| p.display().to_string())
        .map_err(|e| LabError::Io(format!("current dir: {e}")))
}

fn run(a: &VmArgs, cmd: Vec<String>) -> Result<i32, LabError> {
    let req = Request {
        cwd: cwd()?,
        env: host_env(),
        jobs: vec![cmd],
    };
    let out = vm::run(&options(a, None), &req)?;
    Ok(out.report.jobs.first().map_or(1, JobStatus::code))
}

/// A test binary built by cargo, and the directory cargo would run it in.
struct TestBinary {
    exe: String,
    cwd: String,
}

fn build_tests() -> Result<Vec<TestBinary>, LabError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // The CLI tests (cli_ipvs) run the keepalive-d binary: <dir of the test exe>/../keepalive-d.
    eprintln!("lab: building keepalive-d");
    let status = Command::new(&cargo)
        .args(["build", "-p", "keepalive-d"])
        .status()
        .map_err(|e| LabError::Build(format!("cannot run cargo: {e}")))?;
    if !status.success() {
        return Err(LabError::Build(format!(
            "cargo build -p keepalive-d failed ({status})"
        )));
    }
    eprintln!("lab: building the kernel tests");
    let mut child = Command::new(cargo)
        .args([
            "test",
            "-p",
            "ipvs-integration",
            "--features",
            "kernel-tests",
            "--test",
            "*",
        ])
        .args(["--no-run", "--message-format=json-render-diagnostics"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| LabError::Build(format!("cannot run cargo: {e}")))?;
    let mut text = String::new();
    if let Some(mut s) = child.stdout.take() {
        s.read_to_string(&mut text)
            .map_err(|e| LabError::Build(format!("cargo output: {e}")))?;
    }
    let status = child
        .wait()
        .map_err(|e| LabError::Build(format!("cargo: {e}")))?;
    if !status.success() {
        return Err(LabError::Build(format!(
            "cargo test --no-run failed ({status})"
        )));
    }
    let mut bins = Vec::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] != "compiler-artifact" || v["profile"]["test"] != true {
            continue;
        }
        let (Some(exe), Some(manifest)) = (v["executable"].as_str(), v["manifest_path"].as_str())
        else {
            continue;
        };
        let cwd = std::path::Path::new(manifest)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| ".".into());
        bins.push(TestBinary {
            exe: exe.to_string(),
            cwd,
        });
    }
    if bins.is_empty() {
        return Err(LabError::Build("cargo built no kernel test binary".into()));
    }
    Ok(bins)
}

fn test(a: &VmArgs, native: bool, args: &[String]) -> Result<i32, LabError> {
    let bins = build_tests()?;
    // Nothing may be skipped: ignored tests run too.
    let argv = |b: &TestBinary| {
        let mut v = vec![b.exe.clone(), "--include-ignored".to_string()];
        v.extend(args.iter().cloned());
        v
    };
    let mut env = host_env();
    env.push(("RUST_BACKTRACE".into(), "1".into()));
    let (statuses, stdout) = if native {
        run_native(&bins, &argv, &env)?
    } else {
        let cwd = bins.first().map(|b| b.cwd.clone()).unwrap_or_default();
        let req = Request {
            cwd,
            env,
            jobs: bins.iter().map(argv).collect(),
        };
        eprintln!(
            "lab: running {} kernel test binaries inside the VM",
            bins.len()
        );
        let out = vm::run(&options(a, Some(20 * 60)), &req)?;
        (out.report.jobs, out.stdout)
    };
    let totals = Totals::parse(&String::from_utf8_lossy(&stdout));
    let verdict = totals.verdict(bins.len() as u64);
    let crashed: Vec<String> = bins
        .iter()
        .zip(&statuses)
        .filter(|(_, s)| **s != JobStatus::Exited(0))
        .map(|(b, s)| format!("{} ended with {s:?}", b.exe))
        .collect();
    println!();
    println!(
        "lab: {} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.ignored
    );
    match (verdict, crashed.is_empty()) {
        (Ok(()), true) => Ok(0),
        (v, _) => {
            if let Err(why) = v {
                eprintln!("lab: FAILED: {why}");
            }
            for c in crashed {
                eprintln!("lab: FAILED: {c}");
            }
            Ok(1)
        }
    }
}

type NativeRun = (Vec<JobStatus>, Vec<u8>);

fn run_native(
    bins: &[TestBinary],
    argv: &dyn Fn(&TestBinary) -> Vec<String>,
    env: &[(String, String)],
) -> Result<NativeRun, LabError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(LabError::Prerequisite(
            "--native needs root; fix: sudo cargo lab test --native".into(),
        ));
    }
    if !std::path::Path::new("/proc/net/ip_vs").exists() {
        let _ = Command::new("modprobe").arg("ip_vs").status();
        if !std::path::Path::new("/proc/net/ip_vs").exists() {
            return Err(LabError::Prerequisite(
                "this kernel has no IPVS (no /proc/net/ip_vs); fix: modprobe ip_vs, or run \
                 `cargo lab test` without --native to use the VM"
                    .into(),
            ));
        }
    }
    lab::prereq::ensure(lab::prereq::TOOLS)?;
    let mut statuses = Vec::new();
    let mut captured = Vec::new();
    for b in bins {
        let v = argv(b);
        let mut child = Command::new(&v[0])
            .args(&v[1..])
            .current_dir(&b.cwd)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| LabError::Io(format!("run {}: {e}", b.exe)))?;
        if let Some(mut out) = child.stdout.take() {
            let mut buf = [0u8; 8192];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let chunk = buf.get(..n).unwrap_or_default();
                let _ = std::io::stdout().write_all(chunk);
                captured.extend_from_slice(chunk);
            }
        }
        let s = child
            .wait()
            .map_err(|e| LabError::Io(format!("wait {}: {e}", b.exe)))?;
        use std::os::unix::process::ExitStatusExt;
        statuses.push(match (s.code(), s.signal()) {
            (Some(c), _) => JobStatus::Exited(c),
            (_, Some(sig)) => JobStatus::Signaled(sig),
            _ => JobStatus::SpawnFailed("unknown status".into()),
        });
    }
    Ok((statuses, captured))
}
