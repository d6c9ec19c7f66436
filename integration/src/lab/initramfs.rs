//! The lab's initramfs: busybox, the boot modules, and an `/init` that mounts the host
//! root over 9p and hands over to the guest agent inside a chroot.

use super::LabError;
use super::cpio::CpioWriter;
use super::kernel::{self, Kernel};
use std::path::Path;

/// The path of the static busybox from Debian's `busybox-static`.
pub const BUSYBOX: &str = "/bin/busybox";

/// The guest's `/init`. `/run/lab` inside the chroot is the writable share through which
/// the host hands over the request and gets the output and exit statuses back.
const INIT: &str = r#"#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
errors=""
while read -r m; do
    insmod "/lib/modules/$m" 2>/dev/null || errors="$errors insmod:$m"
done < /modules.order
# The host root, read-only over 9p, under an overlay whose upper layer is a tmpfs: the
# guest sees the host's files (its own build, ipvsadm, keepalived...) and may write
# anywhere (a cargo lock, /var/run, /tmp), but nothing it writes reaches the host.
mkdir -p /lower /scratch
if ! mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 host /lower; then
    echo "lab-init: cannot mount the host root over 9p"; reboot -f
fi
mount -t tmpfs tmpfs /scratch
mkdir -p /scratch/upper /scratch/work
H=/host
if ! mount -t overlay overlay -o lowerdir=/lower,upperdir=/scratch/upper,workdir=/scratch/work $H; then
    errors="$errors overlay:/"
    mount --move /lower $H
fi
mount -t proc proc $H/proc
mount -t sysfs sysfs $H/sys
mount -t devtmpfs devtmpfs $H/dev
mkdir -p $H/dev/pts $H/dev/shm
mount -t devpts devpts $H/dev/pts
mount -t tmpfs tmpfs $H/dev/shm
mount -t tmpfs tmpfs $H/run
mkdir -p $H/run/lab $H/run/netns $H/run/lock
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=none lab $H/run/lab; then
    echo "lab-init: cannot mount the lab share over 9p"; reboot -f
fi
[ -n "$errors" ] && echo "$errors" > $H/run/lab/init-errors
ip link set lo up
chroot $H /bin/sh /run/lab/guest.sh
echo "lab-init: guest agent exited with status $?" >> $H/run/lab/init-log
reboot -f
"#;

/// Writes the initramfs for `kernel` to `out`.
pub fn build(kernel: &Kernel, out: &Path) -> Result<(), LabError> {
    let busybox = std::fs::read(BUSYBOX).map_err(|e| {
        LabError::Prerequisite(format!(
            "cannot read {BUSYBOX}: {e} (install busybox-static)"
        ))
    })?;
    let dep_path = kernel.modules_dir.join("modules.dep");
    let dep = std::fs::read_to_string(&dep_path)
        .map_err(|e| LabError::Kernel(format!("read {}: {e}", dep_path.display())))?;
    let order = kernel::load_order(&dep, kernel::BOOT_MODULES)?;

    let mut w = CpioWriter::new();
    for d in [
        "bin",
        "dev",
        "proc",
        "sys",
        "host",
        "scratch",
        "lib",
        "lib/modules",
    ] {
        w.dir(d);
    }
    w.file("bin/busybox", 0o755, &busybox);
    for applet in [
        "sh", "mount", "mkdir", "insmod", "chroot", "reboot", "ip", "echo", "cat",
    ] {
        w.symlink(&format!("bin/{applet}"), "busybox");
    }
    w.file("init", 0o755, INIT.as_bytes());
    let mut list = String::new();
    let mut made = std::collections::HashSet::new();
    for rel in &order {
        // Create each parent directory once, in order.
        let mut prefix = String::from("lib/modules");
        for part in rel
            .split('/')
            .take(rel.split('/').count().saturating_sub(1))
        {
            prefix.push('/');
            prefix.push_str(part);
            if made.insert(prefix.clone()) {
                w.dir(&prefix);
            }
        }
        let src = kernel.modules_dir.join(rel);
        let data = std::fs::read(&src)
            .map_err(|e| LabError::Kernel(format!("read {}: {e}", src.display())))?;
        w.file(&format!("lib/modules/{rel}"), 0o644, &data);
        list.push_str(rel);
        list.push('\n');
    }
    w.file("modules.order", 0o644, list.as_bytes());
    let mut f = std::fs::File::create(out)
        .map_err(|e| LabError::Io(format!("create {}: {e}", out.display())))?;
    w.finish(&mut f)
        .map_err(|e| LabError::Io(format!("write {}: {e}", out.display())))
}
