//! `capture-netlink SCRIPT`: runs each command of SCRIPT (one per line, `#` comments)
//! in one fresh network namespace, capturing the generic-netlink traffic of each through
//! an nlmon device, and prints it as test vectors:
//!
//! ```text
//! $ ipvsadm -A -t 192.0.2.10:80 -s rr
//! > 1c000000...    request frame (user space to kernel), hex
//! < 24000000...    kernel frame (reply, dump chunk, error or ACK), hex
//! ```
//!
//! Needs root and IPVS: run it in the lab, e.g.
//! `cargo lab run -- target/debug/capture-netlink ipvs-sys/tests/captured/ipvsadm.cmds`.
//! Commands run through `sh -c` so a line may use redirections.

use ipvs_integration::netns::TestNs;
use ipvs_integration::nlmon::{self, Capture};
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("capture-netlink: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: capture-netlink SCRIPT")?;
    let script = std::fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
    let ns = TestNs::new("capture")?;
    let cap = Capture::start(&ns)?;
    cap.drain();
    println!("# captured by capture-netlink from {path}");
    println!(
        "# kernel {}",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")?.trim()
    );
    for line in script.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let out = ns.command("sh").args(["-c", line]).output()?;
        println!("$ {line}");
        if !out.status.success() {
            let code = out.status.code().unwrap_or(-1);
            println!(
                "# exit {code}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        for f in cap
            .drain()
            .iter()
            .filter(|f| f.protocol == nlmon::NETLINK_GENERIC)
        {
            println!(
                "{} {}",
                if f.is_request() { '>' } else { '<' },
                nlmon::hex(&f.data)
            );
        }
    }
    Ok(())
}
