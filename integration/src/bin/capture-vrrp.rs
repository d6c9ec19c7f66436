//! `capture-vrrp`: runs the real keepalived (Debian's package) in a network namespace
//! with several VRRP configurations and records what it puts on the wire: adverts (v2,
//! v3, IPv4, IPv6, multicast, unicast, with and without a password), the priority-0
//! advert it sends when stopped, and its gratuitous ARPs and unsolicited neighbour
//! advertisements. The output is the test vectors in `vrrp/tests/captured/`.
//!
//! Needs root; no IPVS, so it runs on the host:
//! `cargo run -p ipvs-integration --bin capture-vrrp > vrrp/tests/captured/keepalived.txt`
//!
//! Output: `== NAME` starts a configuration (the keepalived.conf follows as `#` lines),
//! then one line per frame: `MS KIND HEX`, with MS the milliseconds since keepalived
//! started, KIND `vrrp4`, `vrrp6`, `arp` or `na`, and HEX the IP (or ARP) packet.

use ipvs_integration::netns::TestNs;
use ipvs_integration::nlmon::{Capture, hex};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

struct Variant {
    name: &'static str,
    version: u8,
    advert: &'static str,
    extra: &'static str,
    vips: &'static str,
    run: Duration,
}

const VARIANTS: &[Variant] = &[
    Variant {
        name: "v2-ipv4-multicast-noauth",
        version: 2,
        advert: "1",
        extra: "",
        vips: "192.0.2.10/24\n    192.0.2.11/24",
        run: Duration::from_millis(6000),
    },
    Variant {
        name: "v2-ipv4-multicast-pass",
        version: 2,
        advert: "1",
        extra: "authentication {\n    auth_type PASS\n    auth_pass secret\n  }",
        vips: "192.0.2.10/24",
        run: Duration::from_millis(6000),
    },
    Variant {
        name: "v3-ipv4-multicast-100ms",
        version: 3,
        advert: "0.1",
        extra: "",
        vips: "192.0.2.10/24\n    192.0.2.11/24\n    192.0.2.12/24",
        run: Duration::from_millis(1500),
    },
    Variant {
        name: "v3-ipv4-multicast-1s",
        version: 3,
        advert: "1",
        extra: "",
        vips: "192.0.2.10/24",
        run: Duration::from_millis(5500),
    },
    Variant {
        name: "v3-ipv4-unicast-100ms",
        version: 3,
        advert: "0.1",
        extra: "unicast_src_ip 192.0.2.2\n  unicast_peer {\n    192.0.2.3\n  }",
        vips: "192.0.2.10/24",
        run: Duration::from_millis(1500),
    },
    Variant {
        name: "v3-ipv6-multicast-100ms",
        version: 3,
        advert: "0.1",
        extra: "",
        vips: "2001:db8::10/64\n    2001:db8::11/64",
        run: Duration::from_millis(1500),
    },
];

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("capture-vrrp: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let version = Command::new("keepalived").arg("--version").output()?;
    let version = String::from_utf8_lossy(&version.stderr)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    println!("# captured by capture-vrrp from {version}");
    for v in VARIANTS {
        capture(v)?;
    }
    Ok(())
}

fn capture(v: &Variant) -> Result<(), Box<dyn std::error::Error>> {
    let ka = TestNs::new("ka")?;
    let cap = TestNs::new("cap")?;
    for ns in [&ka, &cap] {
        ns.run("sysctl", &["-qw", "net.ipv6.conf.all.accept_dad=0"])?;
        ns.run("sysctl", &["-qw", "net.ipv6.conf.default.accept_dad=0"])?;
    }
    ka.run(
        "ip",
        &["link", "add", "ka0", "type", "veth", "peer", "name", "cap0"],
    )?;
    ka.run("ip", &["link", "set", "cap0", "netns", cap.name()])?;
    // Fixed MACs and link-local addresses, so the vectors do not change between runs.
    ka.run(
        "ip",
        &["link", "set", "ka0", "address", "02:00:00:00:00:02"],
    )?;
    cap.run(
        "ip",
        &["link", "set", "cap0", "address", "02:00:00:00:00:03"],
    )?;
    ka.run("ip", &["addr", "add", "192.0.2.2/24", "dev", "ka0"])?;
    ka.run("ip", &["addr", "add", "2001:db8::2/64", "dev", "ka0"])?;
    cap.run("ip", &["addr", "add", "192.0.2.3/24", "dev", "cap0"])?;
    ka.run("ip", &["link", "set", "ka0", "up"])?;
    cap.run("ip", &["link", "set", "cap0", "up"])?;
    let capture = Capture::attach(&cap, "cap0")?;
    // Let the links settle (IPv6 link-local addresses, router solicitations).
    std::thread::sleep(Duration::from_millis(300));
    capture.drain();

    let dir = std::env::temp_dir().join(format!("capture-vrrp-{}-{}", std::process::id(), v.name));
    std::fs::create_dir_all(&dir)?;
    let conf = format!(
        "global_defs {{\n  router_id lab\n  vrrp_version {}\n}}\n\
         vrrp_instance VI {{\n  state BACKUP\n  interface ka0\n  virtual_router_id 51\n  \
         priority 150\n  advert_int {}\n  {}\n  virtual_ipaddress {{\n    {}\n  }}\n}}\n",
        v.version, v.advert, v.extra, v.vips
    );
    let conf_path = dir.join("keepalived.conf");
    std::fs::write(&conf_path, &conf)?;
    println!("== {}", v.name);
    for line in conf.lines() {
        println!("# {line}");
    }
    let pid = |n: &str| dir.join(n).display().to_string();
    let mut child = ka
        .command("keepalived")
        .args(["--dont-fork", "--log-console", "--vrrp", "--no-syslog"])
        .arg(format!("--use-file={}", conf_path.display()))
        .arg(format!("--pid={}", pid("k.pid")))
        .arg(format!("--vrrp_pid={}", pid("v.pid")))
        .arg(format!("--checkers_pid={}", pid("c.pid")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let start = Instant::now();
    let mut frames = Vec::new();
    let mut stopped = None;
    loop {
        for f in capture.drain() {
            frames.push((start.elapsed(), f.data));
        }
        if stopped.is_none() && start.elapsed() >= v.run {
            // A graceful stop: keepalived sends priority 0 and removes its addresses.
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(child.id())?),
                nix::sys::signal::Signal::SIGTERM,
            )?;
            stopped = Some(Instant::now());
        }
        if let Some(t) = stopped {
            if child.try_wait()?.is_some() && t.elapsed() > Duration::from_millis(300) {
                break;
            }
            if t.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{}: keepalived did not stop", v.name).into());
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for f in capture.drain() {
        frames.push((start.elapsed(), f.data));
    }
    let mut adverts = 0;
    for (t, frame) in frames {
        let Some((kind, packet)) = classify(&frame) else {
            continue;
        };
        adverts += usize::from(kind.starts_with("vrrp"));
        println!("{} {kind} {}", t.as_millis(), hex(packet));
    }
    let _ = std::fs::remove_dir_all(&dir);
    if adverts < 2 {
        return Err(format!("{}: only {adverts} adverts captured", v.name).into());
    }
    Ok(())
}

/// The kind of an Ethernet frame we keep, and its payload after the Ethernet header.
fn classify(frame: &[u8]) -> Option<(&'static str, &[u8])> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let payload = frame.get(14..)?;
    match ethertype {
        0x0806 => Some(("arp", payload)),
        0x0800 if payload.get(9) == Some(&112) => Some(("vrrp4", payload)),
        0x86dd if payload.get(6) == Some(&112) => Some(("vrrp6", payload)),
        // ICMPv6 (no extension headers) neighbour advertisement, type 136.
        0x86dd if payload.get(6) == Some(&58) && payload.get(40) == Some(&136) => {
            Some(("na", payload))
        }
        _ => None,
    }
}
