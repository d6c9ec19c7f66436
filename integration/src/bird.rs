//! BIRD 2 (Debian's `bird2`) in a test namespace, for the BGP/ECMP tests
//! (`examples/ecmp-bgp/`): start it with a configuration file, read the router's
//! multipath route, stop it. Dropping a [`Bird`] kills the process (by PID) and removes
//! its files.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::netns::{CmdError, TestNs};

/// Where the `bird` binary is.
pub const BIRD: &str = "/usr/sbin/bird";

/// A running `bird -f` in a namespace.
pub struct Bird {
    child: Child,
    dir: PathBuf,
}

impl Bird {
    /// Checks `config` with `bird -p`, then starts BIRD with it in `ns`, in the
    /// foreground, its control socket and log in a directory of its own.
    pub fn start(ns: &TestNs, config: &Path) -> Result<Self, CmdError> {
        let dir = std::env::temp_dir().join(format!("{}-{}-bird", ns.name(), std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| CmdError(format!("create {}: {e}", dir.display())))?;
        let conf = config.to_string_lossy();
        ns.run(BIRD, &["-p", "-c", &conf])?;
        let log = std::fs::File::create(dir.join("log"))
            .map_err(|e| CmdError(format!("create {}/log: {e}", dir.display())))?;
        let socket = dir.join("bird.ctl");
        let child = ns
            .command(BIRD)
            .args(["-f", "-c", &conf, "-s"])
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| CmdError(format!("{BIRD}: {e}")))?;
        Ok(Self { child, dir })
    }

    /// What BIRD logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `birdc -s SOCKET ARGS...` (e.g. `show protocols`); its output.
    pub fn birdc(&self, ns: &TestNs, args: &[&str]) -> Result<String, CmdError> {
        let socket = self.dir.join("bird.ctl");
        let socket = socket.to_string_lossy();
        let mut all = vec!["-s", &socket];
        all.extend_from_slice(args);
        ns.run("/usr/sbin/birdc", &all)
    }

    /// Waits (at most `within`, polling every 20 ms) until this BIRD's BFD sessions with
    /// every address of `peers` are Up (`birdc show bfd sessions`); how long it took, or
    /// an error with the last output. A BGP session that BFD does not watch yet falls
    /// back on the hold time.
    pub fn wait_bfd_up<A: Into<IpAddr> + Copy + std::fmt::Debug>(
        &self,
        ns: &TestNs,
        peers: &[A],
        within: Duration,
    ) -> Result<Duration, CmdError> {
        let start = Instant::now();
        loop {
            let out = self.birdc(ns, &["show", "bfd", "sessions"])?;
            let up = bfd_up(&out);
            if peers.iter().all(|p| up.contains(&(*p).into())) {
                return Ok(start.elapsed());
            }
            if start.elapsed() >= within {
                return Err(CmdError(format!(
                    "BFD sessions with {peers:?} not all Up after {within:?}:\n{out}"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM (BIRD closes its sessions with a notification, so its peers drop
    /// its routes at once) and reaps it, at most `within`, then SIGKILL.
    pub fn stop(mut self, within: Duration) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The next hops of the route to `dst` in `ns`'s main table, as `ip route show` prints
/// them: one gateway for a plain route, each `nexthop via` of a multipath route; empty
/// when there is no route to exactly `dst`.
pub fn next_hops(ns: &TestNs, dst: IpAddr) -> Result<Vec<IpAddr>, CmdError> {
    let family = if dst.is_ipv4() { "-4" } else { "-6" };
    let out = ns.run("ip", &[family, "route", "show", "exact", &dst.to_string()])?;
    Ok(parse_next_hops(&out))
}

/// The gateways of `ip route show` output (`via ADDR`, on the first line or on
/// `nexthop` lines).
pub fn parse_next_hops(out: &str) -> Vec<IpAddr> {
    let mut hops: Vec<IpAddr> = out
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "via")
        .filter_map(|w| w[1].parse().ok())
        .collect();
    hops.sort();
    hops.dedup();
    hops
}

/// The peers whose BFD session is Up in `birdc show bfd sessions` output (lines
/// `ADDRESS INTERFACE STATE SINCE INTERVAL TIMEOUT`).
pub fn bfd_up(out: &str) -> Vec<IpAddr> {
    out.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let addr = w.next()?.parse().ok()?;
            (w.nth(1)? == "Up").then_some(addr)
        })
        .collect()
}

/// Waits (at most `within`, polling every 20 ms) until the next hops of `dst` in `ns`
/// are exactly `want` (in any order); how long it took, or an error with the last ones.
pub fn wait_next_hops<A: Into<IpAddr> + Copy>(
    ns: &TestNs,
    dst: IpAddr,
    want: &[A],
    within: Duration,
) -> Result<Duration, CmdError> {
    let mut want: Vec<IpAddr> = want.iter().map(|a| (*a).into()).collect();
    want.sort();
    let start = Instant::now();
    loop {
        let got = next_hops(ns, dst)?;
        if got == want {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= within {
            return Err(CmdError(format!(
                "route to {dst}: next hops {got:?} after {within:?}, want {want:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_hops_of_plain_and_multipath_routes() {
        let multi = "10.0.0.100 proto bird metric 32 \n\
                     \tnexthop via 10.0.0.1 dev eth1 weight 1 \n\
                     \tnexthop via 10.0.0.3 dev eth1 weight 1 \n";
        assert_eq!(
            parse_next_hops(multi),
            vec![IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 3])]
        );
        let plain = "10.0.0.100 via 10.0.0.2 dev eth1 proto bird metric 32 \n";
        assert_eq!(parse_next_hops(plain), vec![IpAddr::from([10, 0, 0, 2])]);
        assert!(parse_next_hops("").is_empty());
    }

    #[test]
    fn bfd_sessions_that_are_up() {
        let out = "BIRD 2.0.12 ready.\n\
                   bfd1:\n\
                   IP address                Interface  State      Since         Interval  Timeout\n\
                   10.0.0.1                  eth0       Up         00:10:01.123    0.100    0.300\n\
                   10.0.0.2                  eth0       Init       00:10:01.456    1.000    0.000\n\
                   10.0.0.3                  eth0       Up         00:10:01.789    0.100    0.300\n";
        assert_eq!(
            bfd_up(out),
            vec![IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 3])]
        );
        assert!(bfd_up("").is_empty());
    }
}
