//! systemd's service notification protocol (`sd_notify(3)`): `READY=1` once the daemon
//! runs, `RELOADING=1` and `READY=1` around a reload, `STOPPING=1` on stop, `WATCHDOG=1`
//! keep-alives, and `STATUS=` lines for `systemctl status`.
//!
//! Each message is one datagram of `KEY=VALUE` lines sent to the Unix socket that systemd
//! names in `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace). That is all
//! the protocol is, so it is written here by hand (about thirty lines) rather than taken
//! from a crate: no dependency, and nothing else from libsystemd is needed.
//!
//! Without `$NOTIFY_SOCKET` (not started by systemd, or not with `Type=notify`) every call
//! does nothing. A failure to send is logged and never stops the daemon: the service
//! manager may be gone (during a shutdown), and the daemon's job goes on regardless.
//!
//! Children (notify scripts, exec checks) inherit `$NOTIFY_SOCKET`; the unit file's
//! `NotifyAccess=main` makes systemd ignore anything they might send.

use std::ffi::OsStr;
use std::future::Future;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long one send may block (systemd reads its socket at once; this only bounds a
/// wedged service manager).
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// A notification could not be set up or sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `$NOTIFY_SOCKET` is neither an absolute path nor an `@` abstract name.
    #[error("sd_notify: NOTIFY_SOCKET `{socket}` is not an absolute path or an @abstract name")]
    Unsupported {
        /// The variable's value.
        socket: String,
    },
    /// The socket address or the sending socket could not be made.
    #[error("sd_notify: cannot open a socket for NOTIFY_SOCKET `{socket}`: {source}")]
    Open {
        /// The variable's value.
        socket: String,
        /// The system's error.
        source: io::Error,
    },
    /// A message could not be sent.
    #[error("sd_notify: send `{message}` to `{socket}`: {source}")]
    Send {
        /// The message (its lines joined with spaces).
        message: String,
        /// The variable's value.
        socket: String,
        /// The system's error.
        source: io::Error,
    },
}

/// The notification socket of the service manager, or nothing (every call a no-op).
#[derive(Debug)]
pub struct Notifier {
    target: Option<Target>,
    /// Whether `READY=1` was sent: a reload before the daemon is ready says nothing.
    ready: AtomicBool,
}

#[derive(Debug)]
struct Target {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// `$NOTIFY_SOCKET` as given, for errors.
    name: String,
}

impl Notifier {
    /// A notifier that sends nothing.
    pub fn disabled() -> Self {
        Self {
            target: None,
            ready: AtomicBool::new(false),
        }
    }

    /// The notifier for `$NOTIFY_SOCKET`; disabled when it is unset or empty, or unusable
    /// (that is logged as a warning).
    pub fn from_env() -> Self {
        Self::new(std::env::var_os("NOTIFY_SOCKET").as_deref()).unwrap_or_else(|e| {
            tracing::warn!("{e}; not notifying systemd");
            Self::disabled()
        })
    }

    /// The notifier for the socket named `socket` (`$NOTIFY_SOCKET`'s syntax: an absolute
    /// path, or `@name` for the abstract namespace); disabled for `None` or an empty name.
    pub fn new(socket: Option<&OsStr>) -> Result<Self, NotifyError> {
        let Some(socket) = socket.filter(|s| !s.is_empty()) else {
            return Ok(Self::disabled());
        };
        let name = socket.to_string_lossy().into_owned();
        let bytes = socket.as_bytes();
        let addr = match bytes.first() {
            Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
            Some(b'/') => SocketAddr::from_pathname(socket),
            _ => return Err(NotifyError::Unsupported { socket: name }),
        };
        let open = |source| NotifyError::Open {
            socket: name.clone(),
            source,
        };
        let addr = addr.map_err(open)?;
        let socket = UnixDatagram::unbound().map_err(open)?;
        socket.set_write_timeout(Some(SEND_TIMEOUT)).map_err(open)?;
        Ok(Self {
            target: Some(Target { socket, addr, name }),
            ready: AtomicBool::new(false),
        })
    }

    /// Whether messages are sent anywhere.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends `lines` (`KEY=VALUE` each) as one message; does nothing when disabled.
    pub fn send(&self, lines: &[&str]) -> Result<(), NotifyError> {
        let Some(t) = &self.target else {
            return Ok(());
        };
        let message = lines.join("\n");
        match t.socket.send_to_addr(message.as_bytes(), &t.addr) {
            Ok(_) => Ok(()),
            Err(source) => Err(NotifyError::Send {
                message: lines.join(" "),
                socket: t.name.clone(),
                source,
            }),
        }
    }

    /// [`send`](Self::send), logging a failure as a warning.
    fn send_logged(&self, lines: &[&str]) {
        if let Err(e) = self.send(lines) {
            tracing::warn!("{e}");
        }
    }

    /// `READY=1` with a `STATUS=` line: the daemon runs (after start or a reload).
    pub fn ready(&self, status: &str) {
        self.ready.store(true, Ordering::Relaxed);
        self.send_logged(&["READY=1", &status_line(status)]);
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (the time of the request, as systemd wants
    /// it); nothing before the first [`ready`](Self::ready). Follow it with `ready`.
    pub fn reloading(&self) {
        if self.ready.load(Ordering::Relaxed) {
            let usec = format!("MONOTONIC_USEC={}", monotonic_usec());
            self.send_logged(&["RELOADING=1", &usec, "STATUS=reloading"]);
        }
    }

    /// `READY=1` after a reload (`STATUS=` says how it went); nothing before the first
    /// [`ready`](Self::ready).
    pub fn reloaded(&self, status: &str) {
        if self.ready.load(Ordering::Relaxed) {
            self.ready(status);
        }
    }

    /// `STOPPING=1`: the daemon is shutting down.
    pub fn stopping(&self) {
        self.send_logged(&["STOPPING=1", "STATUS=stopping"]);
    }

    /// `WATCHDOG=1`: the daemon is alive.
    pub fn watchdog(&self) {
        self.send_logged(&["WATCHDOG=1"]);
    }

    /// The daemon's life as systemd sees it: `READY=1` when `started` completes with
    /// `true` (nothing if `false`: the daemon failed to start), then `WATCHDOG=1` every
    /// `watchdog` (half of `WatchdogSec=`, see [`watchdog_interval`]) until `stop`
    /// completes, then `STOPPING=1`.
    pub async fn lifecycle(
        &self,
        started: impl Future<Output = bool>,
        watchdog: Option<Duration>,
        stop: impl Future<Output = ()>,
    ) {
        let run = async {
            if !started.await {
                return std::future::pending().await;
            }
            self.ready("running");
            match watchdog {
                Some(every) => {
                    let mut tick = tokio::time::interval(every);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        self.watchdog();
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = run => {}
            () = stop => {}
        }
        self.stopping();
    }
}

/// `STATUS=text` on one line.
fn status_line(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("STATUS={one_line}")
}

/// `CLOCK_MONOTONIC` in microseconds (what `MONOTONIC_USEC=` carries).
fn monotonic_usec() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        let secs = u64::try_from(t.tv_sec()).unwrap_or(0);
        let micros = u64::try_from(t.tv_nsec() / 1000).unwrap_or(0);
        secs.saturating_mul(1_000_000).saturating_add(micros)
    })
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC` (systemd's `WatchdogSec=`),
/// when it is set and `$WATCHDOG_PID` (if set) is this process; `None` otherwise.
pub fn watchdog_interval() -> Option<Duration> {
    watchdog_interval_from(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

/// [`watchdog_interval`] from the variables' values and this process's id.
pub fn watchdog_interval_from(
    usec: Option<&str>,
    pid: Option<&str>,
    own_pid: u32,
) -> Option<Duration> {
    if let Some(pid) = pid.filter(|p| !p.is_empty()) {
        if pid.parse::<u32>().ok() != Some(own_pid) {
            return None;
        }
    }
    let usec: u64 = usec?.parse().ok().filter(|u| *u > 0)?;
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::path::PathBuf;

    /// A bound datagram socket in a fresh directory, standing in for systemd's.
    struct Manager {
        dir: PathBuf,
        socket: UnixDatagram,
    }

    impl Manager {
        fn new(tag: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("kad-sd-notify-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let socket = UnixDatagram::bind(dir.join("notify")).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            Self { dir, socket }
        }

        fn path(&self) -> PathBuf {
            self.dir.join("notify")
        }

        fn recv(&self) -> String {
            let mut buf = [0u8; 4096];
            let n = self.socket.recv(&mut buf).unwrap();
            String::from_utf8(buf[..n].to_vec()).unwrap()
        }

        fn nothing_pending(&self) -> bool {
            self.socket.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 64];
            let r = self.socket.recv(&mut buf);
            self.socket.set_nonblocking(false).unwrap();
            r.is_err_and(|e| e.kind() == io::ErrorKind::WouldBlock)
        }
    }

    impl Drop for Manager {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn unset_or_empty_socket_is_a_no_op() {
        for socket in [None, Some(OsStr::new(""))] {
            let n = Notifier::new(socket).unwrap();
            assert!(!n.is_enabled());
            n.send(&["READY=1"]).unwrap();
            n.ready("running");
            n.stopping();
        }
    }

    #[test]
    fn relative_or_foreign_addresses_are_refused() {
        for socket in ["notify", "vsock:2:1234"] {
            let e = Notifier::new(Some(OsStr::new(socket))).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "sd_notify: NOTIFY_SOCKET `{socket}` is not an absolute path or an \
                     @abstract name"
                )
            );
        }
    }

    #[test]
    fn ready_reloading_stopping_to_a_path_socket() {
        let m = Manager::new("path");
        let n = Notifier::new(Some(m.path().as_os_str())).unwrap();
        assert!(n.is_enabled());
        // Not ready yet: a reload says nothing.
        n.reloading();
        n.reloaded("reloaded");
        assert!(m.nothing_pending());

        n.ready("running");
        assert_eq!(m.recv(), "READY=1\nSTATUS=running");

        let before = monotonic_usec();
        n.reloading();
        let after = monotonic_usec();
        let msg = m.recv();
        let lines: Vec<&str> = msg.lines().collect();
        assert_eq!(lines.len(), 3, "{msg}");
        assert_eq!(lines[0], "RELOADING=1");
        let usec: u64 = lines[1]
            .strip_prefix("MONOTONIC_USEC=")
            .unwrap()
            .parse()
            .unwrap();
        assert!((before..=after).contains(&usec), "{before} {usec} {after}");
        assert_eq!(lines[2], "STATUS=reloading");

        n.reloaded("reload refused:\nline 3");
        assert_eq!(m.recv(), "READY=1\nSTATUS=reload refused: line 3");
        n.stopping();
        assert_eq!(m.recv(), "STOPPING=1\nSTATUS=stopping");
        n.watchdog();
        assert_eq!(m.recv(), "WATCHDOG=1");
    }

    #[test]
    fn abstract_namespace_socket() {
        let name = format!("kad-sd-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let n = Notifier::new(Some(OsStr::new(&format!("@{name}")))).unwrap();
        n.send(&["READY=1"]).unwrap();
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
    }

    #[test]
    fn a_vanished_manager_is_an_error_naming_the_socket() {
        let m = Manager::new("gone");
        let path = m.path();
        let n = Notifier::new(Some(path.as_os_str())).unwrap();
        drop(m);
        let e = n.send(&["STOPPING=1"]).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "sd_notify: send `STOPPING=1` to `{}`: ",
                path.display()
            )),
            "{text}"
        );
    }

    #[test]
    fn watchdog_interval_is_half_of_watchdog_usec_for_this_process() {
        let half = Some(Duration::from_millis(1500));
        assert_eq!(watchdog_interval_from(Some("3000000"), None, 42), half);
        assert_eq!(
            watchdog_interval_from(Some("3000000"), Some("42"), 42),
            half
        );
        assert_eq!(watchdog_interval_from(Some("3000000"), Some(""), 42), half);
        // For another process (a parent that did not unset it), or not asked for.
        assert_eq!(
            watchdog_interval_from(Some("3000000"), Some("41"), 42),
            None
        );
        assert_eq!(watchdog_interval_from(None, None, 42), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, 42), None);
        assert_eq!(watchdog_interval_from(Some("soon"), None, 42), None);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn lifecycle_ready_then_watchdog_at_half_the_period_then_stopping() {
        let m = Manager::new("lifecycle");
        let n = Notifier::new(Some(m.path().as_os_str())).unwrap();
        // WATCHDOG_USEC=2000000: a ping every second.
        let every = watchdog_interval_from(Some("2000000"), None, 1).unwrap();
        assert_eq!(every, Duration::from_secs(1));
        let stop = tokio::time::sleep(Duration::from_millis(3500));
        let start = tokio::time::Instant::now();
        n.lifecycle(async { true }, Some(every), stop).await;
        assert_eq!(start.elapsed(), Duration::from_millis(3500));
        assert_eq!(m.recv(), "READY=1\nSTATUS=running");
        // At 0 s, 1 s, 2 s and 3 s.
        for _ in 0..4 {
            assert_eq!(m.recv(), "WATCHDOG=1");
        }
        assert_eq!(m.recv(), "STOPPING=1\nSTATUS=stopping");
        assert!(m.nothing_pending());
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn lifecycle_without_a_start_sends_only_stopping() {
        let m = Manager::new("nostart");
        let n = Notifier::new(Some(m.path().as_os_str())).unwrap();
        let stop = tokio::time::sleep(Duration::from_secs(1));
        n.lifecycle(async { false }, Some(Duration::from_millis(100)), stop)
            .await;
        assert_eq!(m.recv(), "STOPPING=1\nSTATUS=stopping");
        assert!(m.nothing_pending());
    }
}
