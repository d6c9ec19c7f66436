//! Host prerequisites: Debian packages the lab needs, installed with apt-get when missing.

use super::LabError;
use std::process::{Command, Stdio};

/// A Debian package the lab needs, and a file that proves it is installed.
#[derive(Debug, Clone, Copy)]
pub struct Package {
    /// Debian package name.
    pub name: &'static str,
    /// A file the package installs; its presence means the package is usable.
    pub probe: &'static str,
}

/// What the VM itself needs on the host (besides [`TOOLS`]: the guest runs the host's
/// userland, so the tools the tests use inside the VM are host packages too).
pub const VM_PACKAGES: &[Package] = &[
    Package {
        name: "qemu-system-x86",
        probe: "/usr/bin/qemu-system-x86_64",
    },
    Package {
        name: "busybox-static",
        probe: "/usr/share/doc/busybox-static/copyright",
    },
    Package {
        name: "kmod",
        probe: "/usr/sbin/depmod",
    },
];

/// The userland tools the tests call, in the VM, natively or on the host.
pub const TOOLS: &[Package] = &[
    Package {
        name: "ipvsadm",
        probe: "/usr/sbin/ipvsadm",
    },
    Package {
        name: "keepalived",
        probe: "/usr/sbin/keepalived",
    },
    Package {
        name: "iproute2",
        probe: "/usr/sbin/ip",
    },
    // The DNS servers of the redundant-DNS example (examples/dns/): the binary only,
    // without the `dnsmasq` package's system service.
    Package {
        name: "dnsmasq-base",
        probe: "/usr/sbin/dnsmasq",
    },
    // The fwmark rules of the redundant-DNS example (`nft -f`).
    Package {
        name: "nftables",
        probe: "/usr/sbin/nft",
    },
    // The BGP speaker of the ECMP example (examples/ecmp-bgp/): BIRD 2 in the router and
    // director namespaces. Its system service is not used (each test starts its own).
    Package {
        name: "bird2",
        probe: "/usr/sbin/bird",
    },
];

/// Everything the VM lab needs: [`VM_PACKAGES`] and [`TOOLS`].
pub fn vm_and_tools() -> Vec<Package> {
    [VM_PACKAGES, TOOLS].concat()
}

/// Installs the packages among `pkgs` that are missing. Idempotent: does nothing when all
/// are present. Says what it does on stderr.
pub fn ensure(pkgs: &[Package]) -> Result<(), LabError> {
    let missing: Vec<&str> = pkgs
        .iter()
        .filter(|p| !std::path::Path::new(p.probe).exists())
        .map(|p| p.name)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !nix::unistd::geteuid().is_root() {
        return Err(LabError::Prerequisite(format!(
            "missing packages: {list}; fix: sudo apt-get install -y --no-install-recommends {list}"
        )));
    }
    eprintln!("lab: installing missing packages: {list}");
    // A fresh machine may have empty package lists: try once, update, try again.
    if apt_install(&missing)? {
        return Ok(());
    }
    eprintln!("lab: apt-get install failed; running apt-get update and retrying");
    run_quiet(
        Command::new("apt-get").args(["update", "-q"]),
        "apt-get update",
    )?;
    if apt_install(&missing)? {
        return Ok(());
    }
    Err(LabError::Prerequisite(format!(
        "could not install {list}; fix: apt-get update && apt-get install -y --no-install-recommends {list}"
    )))
}

fn apt_install(pkgs: &[&str]) -> Result<bool, LabError> {
    let status = Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(pkgs)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| LabError::Prerequisite(format!("cannot run apt-get: {e}")))?;
    Ok(status.success())
}

fn run_quiet(cmd: &mut Command, what: &str) -> Result<(), LabError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError::Prerequisite(format!("cannot run {what}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError::Prerequisite(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
