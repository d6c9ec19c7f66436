//! The kernel lab: boots Debian's kernel (with IPVS) under QEMU and runs commands in it.
//!
//! The host root is shared read-only over 9p and chrooted into, so host-built binaries
//! and host tools run in the guest unchanged. A second, writable 9p share (`/run/lab` in
//! the guest) carries the request in, and the output and exit statuses out: nothing is
//! scraped from the serial console, which only goes to a log file for diagnosis.
//!
//! ```text
//!  host: cargo lab ...                      guest (QEMU, TCG)
//!  ├─ prereq: apt-get what is missing        /init (busybox, initramfs)
//!  ├─ kernel: apt-get download + depmod      ├─ insmod boot modules (ip_vs, 9p, veth…)
//!  ├─ initramfs: busybox + modules + /init   ├─ mount host / (9p, ro) and /run/lab (9p, rw)
//!  └─ vm: qemu ─────── request.json ───────▶ └─ chroot: lab __guest /run/lab
//!        ◀── booted, stdout, stderr, status.json ──┘   runs each job, records status
//! ```

pub mod cpio;
pub mod guest;
pub mod initramfs;
pub mod kernel;
pub mod prereq;
pub mod report;
pub mod vm;

use serde::{Deserialize, Serialize};

/// Errors of the lab, each naming what failed and, where there is one, the fix.
#[derive(Debug)]
pub enum LabError {
    /// A host prerequisite is missing or could not be installed.
    Prerequisite(String),
    /// The kernel could not be fetched, unpacked or prepared.
    Kernel(String),
    /// The VM did not boot, hung, or failed to report.
    Vm(String),
    /// Building the tests failed.
    Build(String),
    /// A file operation failed.
    Io(String),
}

impl std::fmt::Display for LabError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Prerequisite(m) => write!(f, "prerequisite: {m}"),
            Self::Kernel(m) => write!(f, "kernel: {m}"),
            Self::Vm(m) => write!(f, "vm: {m}"),
            Self::Build(m) => write!(f, "build: {m}"),
            Self::Io(m) => write!(f, "io: {m}"),
        }
    }
}

impl std::error::Error for LabError {}

/// What the host asks the guest to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// Working directory for every job (a host path, valid in the guest too).
    pub cwd: String,
    /// The complete environment of every job.
    pub env: Vec<(String, String)>,
    /// Commands run one after the other; each is an argv.
    pub jobs: Vec<Vec<String>>,
}

/// How one job ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum JobStatus {
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
    /// Could not be started.
    SpawnFailed(String),
}

impl JobStatus {
    /// The status as a shell would report it: the code, 128+signal, or 127.
    pub fn code(&self) -> i32 {
        match self {
            Self::Exited(c) => *c,
            Self::Signaled(s) => 128 + s,
            Self::SpawnFailed(_) => 127,
        }
    }
}

/// What the guest reports at the end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// One status per job, in order.
    pub jobs: Vec<JobStatus>,
}
