//! The lab's kernel: Debian's `linux-image` package, downloaded once, unpacked and cached.
//!
//! The version is pinned: the tests were proven on it. To move it, change
//! [`KERNEL_PACKAGE`] and [`KERNEL_VERSION`] (see `apt-cache policy linux-image-amd64`
//! for what the archive has, and `apt-cache show linux-image-amd64=VERSION` for the
//! versioned package it depends on), run `cargo lab test`, and commit the change with
//! the result. `LAB_KERNEL_PACKAGE` and `LAB_KERNEL_VERSION` override them for a trial.

use super::LabError;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The pinned kernel image package (Debian 12 "bookworm", 6.1 series).
pub const KERNEL_PACKAGE: &str = "linux-image-6.1.0-50-amd64";
/// The pinned version of [`KERNEL_PACKAGE`].
pub const KERNEL_VERSION: &str = "6.1.176-1";

/// Modules loaded at boot, in this order (each after its dependencies from modules.dep).
///
/// busybox `modprobe` ignores soft dependencies, and `libcrc32c` (needed by `ip_vs`)
/// has a soft dependency on a crc32c implementation, so `crc32c_generic` comes first.
pub const BOOT_MODULES: &[&str] = &[
    "crc32c_generic",
    "virtio_pci",
    "9pnet_virtio",
    "9p",
    "overlay",
    "ip_vs",
    "ip_vs_rr",
    "ip_vs_wrr",
    "ip_vs_lc",
    "ip_vs_wlc",
    "ip_vs_fo",
    "ip_vs_ovf",
    "ip_vs_lblc",
    "ip_vs_lblcr",
    "ip_vs_dh",
    "ip_vs_sh",
    "ip_vs_mh",
    "ip_vs_sed",
    "ip_vs_nq",
    "ip_vs_ftp",
    "ip_vs_pe_sip",
    "veth",
    "dummy",
    "macvlan",
    "bridge",
    "nlmon",
    // nftables (the fwmark rules of examples/dns/, loaded with `nft -f`); sets, payload,
    // meta and verdicts are built into nf_tables itself.
    "nf_tables",
    "ipip",
    "ip_gre",
    "fou",
    "fou6",
];

/// An unpacked, depmod-ed kernel in the cache.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The kernel release (`uname -r`), e.g. `6.1.0-50-amd64`.
    pub release: String,
    /// The bootable image as Debian ships it (bzImage, XZ-compressed).
    pub vmlinuz: PathBuf,
    /// The same kernel uncompressed (ELF with a PVH entry point), extracted once from
    /// [`Kernel::vmlinuz`]. QEMU boots it directly: no firmware, no real-mode setup and
    /// no decompression under emulation, which saves about 5 s per boot under TCG.
    pub vmlinux: PathBuf,
    /// `lib/modules/<release>` of the unpacked package.
    pub modules_dir: PathBuf,
}

/// Returns the cached kernel, downloading and unpacking it first if needed.
pub fn ensure(cache: &Path) -> Result<Kernel, LabError> {
    let package = std::env::var("LAB_KERNEL_PACKAGE").unwrap_or_else(|_| KERNEL_PACKAGE.into());
    let version = std::env::var("LAB_KERNEL_VERSION").unwrap_or_else(|_| KERNEL_VERSION.into());
    let release = package
        .strip_prefix("linux-image-")
        .ok_or_else(|| LabError::Kernel(format!("{package}: not a linux-image-* package")))?
        .to_string();
    let root = cache.join(format!("{package}_{version}"));
    let done = root.join(".complete");
    // Several lab runs may start at once on a fresh cache: one prepares it, the others
    // wait (the lock is released when `_lock` is dropped).
    std::fs::create_dir_all(cache).map_err(|e| io_err("create", cache, e))?;
    let lock_path = cache.join(".lock");
    let lock_file =
        std::fs::File::create(&lock_path).map_err(|e| io_err("create", &lock_path, e))?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| LabError::Kernel(format!("lock {}: {e}", lock_path.display())))?;
    let kernel = Kernel {
        vmlinuz: root.join("boot").join(format!("vmlinuz-{release}")),
        vmlinux: root.join("boot").join(format!("vmlinux-{release}")),
        modules_dir: root.join("lib/modules").join(&release),
        release,
    };
    if done.exists() {
        // Caches made before the lab booted the uncompressed kernel lack it.
        if !kernel.vmlinux.exists() {
            extract_vmlinux(&kernel.vmlinuz, &kernel.vmlinux)?;
        }
        return Ok(kernel);
    }
    eprintln!(
        "lab: fetching kernel {package}={version} (once; cached in {})",
        root.display()
    );
    let tmp = cache.join(format!(".download-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| io_err("create", &tmp, e))?;
    let spec = format!("{package}={version}");
    let out = Command::new("apt-get")
        .args(["download", "-q", "-o", "APT::Sandbox::User=root", &spec])
        .current_dir(&tmp)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError::Kernel(format!("cannot run apt-get download: {e}")))?;
    if !out.status.success() {
        // Lists may be missing on a fresh machine: update once and retry.
        let _ = Command::new("apt-get")
            .args(["update", "-q"])
            .stdout(Stdio::null())
            .status();
        let out2 = Command::new("apt-get")
            .args(["download", "-q", "-o", "APT::Sandbox::User=root", &spec])
            .current_dir(&tmp)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| LabError::Kernel(format!("cannot run apt-get download: {e}")))?;
        if !out2.status.success() {
            return Err(LabError::Kernel(format!(
                "apt-get download {spec} failed: {}; the pinned kernel may have left the \
                 archive: move the pin in integration/src/lab/kernel.rs (see its docs)",
                String::from_utf8_lossy(&out2.stderr).trim()
            )));
        }
    }
    let deb = std::fs::read_dir(&tmp)
        .map_err(|e| io_err("read", &tmp, e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| LabError::Kernel(format!("apt-get download {spec} produced no .deb")))?;
    let _ = std::fs::remove_dir_all(&root);
    run(
        Command::new("dpkg").arg("-x").arg(&deb).arg(&root),
        "dpkg -x",
    )?;
    run(
        Command::new("/usr/sbin/depmod")
            .arg("-b")
            .arg(&root)
            .arg(&kernel.release),
        "depmod",
    )?;
    let _ = std::fs::remove_dir_all(&tmp);
    if !kernel.vmlinuz.exists() {
        return Err(LabError::Kernel(format!(
            "{} missing after unpack",
            kernel.vmlinuz.display()
        )));
    }
    extract_vmlinux(&kernel.vmlinuz, &kernel.vmlinux)?;
    std::fs::write(&done, format!("{spec}\n")).map_err(|e| io_err("write", &done, e))?;
    Ok(kernel)
}

/// Extracts the uncompressed kernel from a bzImage whose payload is XZ-compressed (as
/// Debian's is, `CONFIG_KERNEL_XZ=y`): the payload is the XZ stream that starts at the
/// stream magic, and `xz --single-stream` stops at its end.
fn extract_vmlinux(vmlinuz: &Path, out: &Path) -> Result<(), LabError> {
    const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
    let image = std::fs::read(vmlinuz).map_err(|e| io_err("read", vmlinuz, e))?;
    let start = image
        .windows(XZ_MAGIC.len())
        .position(|w| w == XZ_MAGIC)
        .ok_or_else(|| LabError::Kernel(format!("{}: no XZ payload", vmlinuz.display())))?;
    let mut child = Command::new("xz")
        .args(["--decompress", "--stdout", "--single-stream"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LabError::Kernel(format!("cannot run xz: {e} (install xz-utils)")))?;
    let payload = image.get(start..).unwrap_or_default().to_vec();
    let mut stdin = child.stdin.take();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        // xz stops reading at the end of the stream: a broken pipe after that is fine.
        let _ = stdin.as_mut().map(|s| s.write_all(&payload));
    });
    let output = child
        .wait_with_output()
        .map_err(|e| LabError::Kernel(format!("xz: {e}")))?;
    let _ = writer.join();
    if !output.status.success() || !output.stdout.starts_with(b"\x7fELF") {
        return Err(LabError::Kernel(format!(
            "extracting the kernel from {} failed: {}",
            vmlinuz.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    std::fs::write(out, &output.stdout).map_err(|e| io_err("write", out, e))
}

/// Paths (relative to the modules dir) of `wanted` and all their dependencies, each
/// after the modules it depends on, from the text of `modules.dep`.
pub fn load_order(modules_dep: &str, wanted: &[&str]) -> Result<Vec<String>, LabError> {
    let mut deps: HashMap<String, (String, Vec<String>)> = HashMap::new();
    for line in modules_dep.lines() {
        let Some((path, rest)) = line.split_once(':') else {
            continue;
        };
        let d = rest.split_whitespace().map(module_name).collect();
        deps.insert(module_name(path), (path.to_string(), d));
    }
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    for w in wanted {
        visit(&module_name(w), &deps, &mut seen, &mut order, 0)?;
    }
    Ok(order)
}

fn visit(
    name: &str,
    deps: &HashMap<String, (String, Vec<String>)>,
    seen: &mut HashSet<String>,
    order: &mut Vec<String>,
    depth: usize,
) -> Result<(), LabError> {
    if seen.contains(name) {
        return Ok(());
    }
    if depth > 64 {
        return Err(LabError::Kernel(format!(
            "module dependency loop at {name}"
        )));
    }
    let (path, ds) = deps
        .get(name)
        .ok_or_else(|| LabError::Kernel(format!("module {name} is not in modules.dep")))?;
    for d in ds {
        visit(d, deps, seen, order, depth + 1)?;
    }
    seen.insert(name.to_string());
    order.push(path.clone());
    Ok(())
}

/// `kernel/net/netfilter/ipvs/ip_vs-rr.ko` -> `ip_vs_rr`.
fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let base = base.split(".ko").next().unwrap_or(base);
    base.replace('-', "_")
}

fn run(cmd: &mut Command, what: &str) -> Result<(), LabError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError::Kernel(format!("cannot run {what}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError::Kernel(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn io_err(op: &str, path: &Path, e: std::io::Error) -> LabError {
    LabError::Kernel(format!("{op} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/net/netfilter/ipvs/ip_vs.ko: kernel/net/netfilter/nf_conntrack.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/ipvs/ip_vs_rr.ko: kernel/net/netfilter/ipvs/ip_vs.ko kernel/net/netfilter/nf_conntrack.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/nf_conntrack.ko: kernel/lib/libcrc32c.ko
kernel/lib/libcrc32c.ko:
kernel/crypto/crc32c_generic.ko:
";

    #[test]
    fn dependencies_load_first_and_once() {
        let order = load_order(DEP, &["crc32c_generic", "ip_vs_rr", "ip_vs"]).unwrap();
        assert_eq!(
            order,
            [
                "kernel/crypto/crc32c_generic.ko",
                "kernel/lib/libcrc32c.ko",
                "kernel/net/netfilter/nf_conntrack.ko",
                "kernel/net/netfilter/ipvs/ip_vs.ko",
                "kernel/net/netfilter/ipvs/ip_vs_rr.ko",
            ]
        );
    }

    #[test]
    fn unknown_module_is_an_error() {
        let err = load_order(DEP, &["ip_vs_twos"]).unwrap_err();
        assert!(err.to_string().contains("ip_vs_twos"), "{err}");
    }
}
