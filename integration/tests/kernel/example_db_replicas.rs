//! examples/db-replicas: an internal load balancer for database read replicas, run end to
//! end from the shipped files (`keepalive-d.yaml`, `check-replica-lag`) in the lab's NAT
//! layout: the client plays the applications, the three real servers the replicas (a
//! stand-in TCP server on port 3306 that names the replica, then echoes), and each
//! replica's replication lag is a file the test writes.
//!
//! Proven here: every replica takes connections while its lag is low; a replica whose lag
//! goes above the threshold (or whose replication stops: lag `NULL`) leaves the IPVS table
//! within fall x interval and gets no new connection, and comes back within rise x interval
//! once it has caught up. The script's MySQL path is checked too, against a stand-in
//! `mysql` that prints what `SHOW REPLICA STATUS\G` prints.
//!
//! The test changes two paths in the shipped configuration, as the example's README says:
//! the script's installed path (it runs the repository's copy) and the lag directory (a
//! directory of its own).

use crate::daemon_lb::{destinations, wait_dests};
use ipvs_integration::daemon::Daemon;
use ipvs_integration::lb_lab::{LbLab, Mode, sock};
use ipvs_integration::netns::TestNs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The database port of the example.
const DB_PORT: u16 = 3306;
/// Where the shipped configuration expects the script (README: install it there).
const INSTALLED_SCRIPT: &str = "/etc/keepalive-d/check-replica-lag";
/// The lag directory of the shipped configuration.
const SHIPPED_LAG_DIR: &str = "/var/lib/replica-lag";
/// The shipped check's interval, rise and fall (checked against the file below).
const INTERVAL: Duration = Duration::from_secs(1);
const RISE: u32 = 2;
const FALL: u32 = 2;
/// What TCG (a process start per probe is slow there), the coalescing delay and one
/// apply may add to fall (rise) x interval.
const SLACK: Duration = Duration::from_secs(4);

/// A file of `examples/db-replicas/`.
fn example_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/db-replicas")
        .join(name)
}

/// The shipped configuration with the two paths the README tells users about replaced:
/// the script's by the repository's copy, the lag directory by `lag_dir`.
fn lab_config(lag_dir: &Path) -> String {
    let path = example_file("keepalive-d.yaml");
    let shipped =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for expected in [
        INSTALLED_SCRIPT,
        SHIPPED_LAG_DIR,
        "interval: 1s",
        "rise: 2",
        "fall: 2",
        "vip: 172.16.1.100:3306",
    ] {
        assert!(
            shipped.contains(expected),
            "{} no longer has `{expected}`: update this test",
            path.display()
        );
    }
    let script = example_file("check-replica-lag");
    shipped
        .replace(INSTALLED_SCRIPT, script.to_str().unwrap())
        .replace(SHIPPED_LAG_DIR, lag_dir.to_str().unwrap())
}

/// A stand-in database server in a replica's namespace: sends `<name>\n` on connect, then
/// echoes until the client closes (the lab client's banner protocol). Stops when dropped.
struct StandIn {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StandIn {
    fn start(ns: &TestNs, addr: SocketAddr, name: &str) -> Self {
        let listener = ns.enter(|| TcpListener::bind(addr)).unwrap().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let banner = format!("{name}\n");
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let banner = banner.clone();
                        std::thread::spawn(move || {
                            let _ = conn.set_nonblocking(false);
                            let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                            if conn.write_all(banner.as_bytes()).is_err() {
                                return;
                            }
                            let mut buf = [0u8; 512];
                            while let Ok(n) = conn.read(&mut buf) {
                                if n == 0 || conn.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A directory of its own under the temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Sets the replication lag of the replica at `addr` (what the script reads).
fn set_lag(lag_dir: &Path, addr: impl std::fmt::Display, lag: &str) {
    // Written whole, then renamed: the script never reads a half-written file.
    let tmp = lag_dir.join(format!(".{addr}.tmp"));
    std::fs::write(&tmp, format!("{lag}\n")).unwrap();
    std::fs::rename(&tmp, lag_dir.join(addr.to_string())).unwrap();
}

#[test]
fn example_db_replicas_lagging_replica_leaves_and_returns() {
    let lab = LbLab::new(Mode::Nat, 3).unwrap();
    let lag_dir = TempDir::new("db-replica-lag");
    let names: Vec<String> = (0..3).map(|i| lab.backend_name(i)).collect();
    let replicas: Vec<String> = (0..3)
        .map(|i| format!("{}:{DB_PORT}", lab.real_server_addr(i)))
        .collect();
    let _stand_ins: Vec<StandIn> = (0..3)
        .map(|i| {
            set_lag(&lag_dir.0, lab.real_server_addr(i), "0");
            StandIn::start(
                lab.real_server(i),
                sock(std::net::Ipv4Addr::UNSPECIFIED, DB_PORT),
                &names[i],
            )
        })
        .collect();

    let d = Daemon::start(lab.director(), &lab_config(&lag_dir.0), "info").unwrap();
    let vip = sock(lab.vip(), DB_PORT);
    let service = vip.to_string();
    let t = wait_dests(&lab, &d, "-t", &service, &replicas, Duration::from_secs(30));
    eprintln!("db-replicas: all three replicas in after {t:?}");
    let spread = lab.client_tcp(vip, 90);
    assert_eq!(spread.failures, 0, "{spread}");
    for name in &names {
        assert!(spread.count(name) > 0, "{name}: {spread}");
    }
    eprintln!("db-replicas: all in: {spread}");

    // rs1 falls behind its source: 120 s > 30 s.
    set_lag(&lag_dir.0, lab.real_server_addr(1), "120");
    let rest = [replicas[0].clone(), replicas[2].clone()];
    let t = wait_dests(&lab, &d, "-t", &service, &rest, FALL * INTERVAL + SLACK);
    eprintln!("db-replicas: lag 120 s to removal {t:?} (fall x interval = 2 s)");
    let spread = lab.client_tcp(vip, 90);
    assert_eq!(spread.failures, 0, "{spread}");
    assert_eq!(spread.count(&names[1]), 0, "{spread}");
    eprintln!("db-replicas: rs1 lagging: {spread}");

    // It catches up (5 s is within the threshold) and comes back.
    set_lag(&lag_dir.0, lab.real_server_addr(1), "5");
    let t = wait_dests(&lab, &d, "-t", &service, &replicas, RISE * INTERVAL + SLACK);
    eprintln!("db-replicas: caught up to return {t:?} (rise x interval = 2 s)");
    let spread = lab.client_tcp(vip, 90);
    assert_eq!(spread.failures, 0, "{spread}");
    assert!(spread.count(&names[1]) > 0, "{spread}");

    // Replication stops on rs2 (MySQL shows Seconds_Behind_Source: NULL): it leaves too.
    set_lag(&lag_dir.0, lab.real_server_addr(2), "NULL");
    let rest = [replicas[0].clone(), replicas[1].clone()];
    let t = wait_dests(&lab, &d, "-t", &service, &rest, FALL * INTERVAL + SLACK);
    eprintln!("db-replicas: replication stopped to removal {t:?}");
    let spread = lab.client_tcp(vip, 60);
    assert_eq!(spread.failures, 0, "{spread}");
    assert_eq!(spread.count(&names[2]), 0, "{spread}");
    set_lag(&lag_dir.0, lab.real_server_addr(2), "0");
    wait_dests(&lab, &d, "-t", &service, &replicas, RISE * INTERVAL + SLACK);

    let (code, log) = d.stop(Duration::from_secs(20)).unwrap();
    assert_eq!(code, Some(0), "{log}");
    assert!(destinations(&lab, "-t", &service).is_empty(), "{log}");
}

/// The script's own path (no LAG_DIR): it asks the replica with `mysql` and reads
/// `Seconds_Behind_Source` from `SHOW REPLICA STATUS\G`; a stand-in `mysql` first on the
/// PATH prints what MySQL 8 prints and records its arguments.
#[test]
fn example_db_replicas_script_reads_show_replica_status() {
    let dir = TempDir::new("db-replica-mysql");
    let fake = dir.0.join("mysql");
    std::fs::write(
        &fake,
        "#!/bin/sh\n\
         printf '%s\\n' \"$*\" > \"$(dirname \"$0\")/args\"\n\
         [ -f \"$(dirname \"$0\")/down\" ] && exit 1\n\
         echo '*************************** 1. row ***************************'\n\
         echo '             Replica_IO_State: Waiting for source to send event'\n\
         echo '                  Source_Host: 10.0.0.10'\n\
         echo \"        Seconds_Behind_Source: $(cat \"$(dirname \"$0\")/lag\")\"\n\
         echo '        Replica_SQL_Running_State: Replica has read all relay log'\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = example_file("check-replica-lag");
    let run = |lag: &str| {
        std::fs::write(dir.0.join("lag"), lag).unwrap();
        let out = std::process::Command::new("/bin/sh")
            .arg(&script)
            .arg("30")
            .env(
                "PATH",
                format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", dir.0.display()),
            )
            .env("KEEPALIVE_D_REAL_SERVER_ADDRESS", "10.0.0.12")
            .env("KEEPALIVE_D_REAL_SERVER_PORT", "3306")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(run("0"), (Some(0), String::new()));
    assert_eq!(run("30"), (Some(0), String::new()));
    let args = std::fs::read_to_string(dir.0.join("args")).unwrap();
    assert!(
        args.contains("--host=10.0.0.12 --port=3306")
            && args.contains("--defaults-extra-file=/etc/keepalive-d/replica-monitor.cnf")
            && args.contains("SHOW REPLICA STATUS\\G"),
        "{args}"
    );
    let (code, why) = run("31");
    assert_eq!(code, Some(1));
    assert_eq!(
        why,
        "replica 10.0.0.12: 31s behind its source (at most 30s)\n"
    );
    let (code, why) = run("NULL");
    assert_eq!(code, Some(1));
    assert!(why.contains("replication stopped"), "{why}");
    // The replica does not answer.
    std::fs::write(dir.0.join("down"), "").unwrap();
    assert_eq!(run("0").0, Some(1));
}
