//! The health-check engine: decides which real servers are up.
//!
//! # Design
//!
//! * **Sans-IO core.** [`HealthState`] is the rise/fall state machine of one server
//!   (probe results in, transitions out) and [`Schedule`] says when its probes are due
//!   (times are durations since the checks started). Both are plain values, tested with a
//!   fake clock; the I/O layer only feeds them.
//! * **One task per target.** [`Checkers::spawn`] starts one lightweight tokio task per
//!   real server on the current runtime: it sleeps until the next probe is due, runs the
//!   probe, feeds the result to its [`HealthState`], publishes the outcome for
//!   [`Checkers::snapshot`], counts it in its [`ProbeStats`] (by result, with a latency
//!   histogram; read by [`Checkers::probe_stats`]) and sends a [`Transition`] when the
//!   health changes. No thread
//!   per probe, no task per probe. One timer per task serves both the schedule and the
//!   probe's timeout. Each kind of probe has its own task type, and the state of an HTTP,
//!   HTTPS, DNS or exec probe in flight is allocated for the probe only (those probes
//!   allocate buffers anyway): between probes a task holds 400 to 600 bytes. Dropping the
//!   [`Checkers`] (or [`Checkers::stop`]) aborts every task, and with it any probe in
//!   flight.
//! * **TCP checks on one task.** The exception: all `tcp` checks share one task and an
//!   epoll queue of their own, as keepalived's checker does in C. Per probe: a
//!   non-blocking `socket` and `connect`, one `epoll_ctl`, `close`; the queue's event
//!   tells whether the connection completed (`SO_ERROR` is read only to describe a
//!   failure) and closing the socket takes it out of the queue. Their starts are grouped
//!   on a grid of `min(10 ms, interval / 100)`: a probe starts at the first grid point at
//!   or after it is due (never early, and without drift: the next one is due an interval
//!   after this one was). At 2,000 servers checked every second that is half the system
//!   calls of a task per server, about 100 timer wake-ups a second instead of 2,000, and
//!   272 bytes per server between probes (see `tcp_batch.rs`).
//! * **Start-up spread.** The first probes of all targets are spread evenly over their
//!   interval (target `i` of `n` at `interval * i / n`); after that a probe starts
//!   `interval` after the previous probe of the same server started. The timeout is at
//!   most the interval, so probes of one server never overlap, and a probe that starts
//!   late delays the next ones instead of causing a burst.
//! * **Timeouts.** Every probe is bounded as a whole by the check's `timeout` (connect,
//!   TLS handshake, request and body together; process start and exit for `exec`): a
//!   server that hangs costs one timeout and counts as a failure, it never holds a task.
//!   Probes of different servers run in different tasks, so they never wait for each
//!   other.
//! * **Sharing.** A TLS client configuration is built once per distinct `ca` file (and
//!   once for all unverified checks) and shared by the tasks; so is each `expect_body`
//!   pattern.
//!
//! # Probes
//!
//! * `tcp`: a TCP connection (from `source` when set) is accepted; it is then closed.
//! * `http`/`https`: one HTTP/1.1 `GET` of `path` with `Host` (the check's `host`, else
//!   the server's address) and `Connection: close`; up when the status is one of
//!   `expect_status` and, with `expect_body`, the pattern matches somewhere in the first
//!   MiB of the body (read as UTF-8, invalid sequences replaced). Without
//!   `expect_body` the body is not read. `https` sends the host (without a port) as SNI,
//!   or no SNI for an address. Without `ca` the certificate is **not verified** (like
//!   keepalived's `SSL_GET`; the handshake signatures still are); with `ca` the chain
//!   must lead to one of the file's certificates and the name must match `host` (or the
//!   address).
//! * `dns`: one query (random ID, recursion desired) over UDP (connected socket; datagrams
//!   with another ID are ignored), over TCP (a new connection, length-prefixed messages;
//!   another ID fails), or over UDP then TCP (`both`, both must pass); up when the reply
//!   with our ID has RCODE NOERROR and at least one answer of the type asked.
//! * `exec`: the command (no shell) in a process group of its own, with standard input
//!   and output on `/dev/null` and the real server in its environment
//!   (`KEEPALIVE_D_REAL_SERVER_ADDRESS`, `KEEPALIVE_D_REAL_SERVER_PORT`); up when it
//!   exits with status 0 within the timeout. On
//!   timeout the whole process group gets SIGKILL and the command is reaped.
//!
//! # Tests
//!
//! [`HealthState`] and [`Schedule`] are tested in their modules with plain numbers for
//! time. The probes and [`Checkers`] are tested in `keepalive-d/tests/health.rs` against
//! servers the tests start on 127.0.0.1 and ::1: TCP (accepting, refusing, a full
//! backlog that never answers), HTTP (statuses, bodies, the 1 MiB limit, hangs, garbage),
//! HTTPS with a test CA (with and without `ca`, wrong name, wrong CA), UDP and TCP DNS
//! responders (answers, NXDOMAIN, replies with another ID, silence, one transport only) and commands (exit statuses, a
//! timeout that kills a process group).
//!
//! # Example
//!
//! ```no_run
//! # async fn daemon(config: keepalive_d::config::Config) -> Result<(), keepalive_d::health::HealthError> {
//! use keepalive_d::health::{Checkers, targets_from_config};
//!
//! let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
//! let checkers = Checkers::spawn(targets_from_config(&config), tx)?;
//! while let Some(t) = rx.recv().await {
//!     println!("{} is {:?}: {}", t.id, t.health, t.outcome.detail);
//! }
//! # drop(checkers);
//! # Ok(())
//! # }
//! ```

mod dns;
mod engine;
mod exec;
mod http;
mod probe;
mod schedule;
mod state;
mod stats;
mod tcp;
mod tcp_batch;
mod tls;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Check, Config};

pub use engine::{Checkers, probe_once};
pub use schedule::{Schedule, first_offset};
pub use state::HealthState;
pub use stats::{PROBE_BUCKETS, ProbeStats};

/// Identifies one real server's check: indexes into `Config::virtual_servers` and its
/// `real_servers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerId {
    /// Index into `Config::virtual_servers`.
    pub service: usize,
    /// Index into that virtual server's `real_servers`.
    pub server: usize,
}

impl fmt::Display for ServerId {
    /// `virtual_servers[S].real_servers[R]`, the server's place in the configuration.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "virtual_servers[{}].real_servers[{}]",
            self.service, self.server
        )
    }
}

/// The health of a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Passing its check: takes traffic.
    Up,
    /// Failing its check.
    Down,
}

/// Result of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    /// Whether the probe succeeded.
    pub ok: bool,
    /// How long the probe took, from its start to its result (about the timeout when it
    /// timed out).
    pub latency: Duration,
    /// Why it failed, or a short success note ("HTTP 200").
    pub detail: String,
}

/// What the engine reports: a server's health changed (or was decided by its first probe).
#[derive(Debug, Clone)]
pub struct Transition {
    /// The server.
    pub id: ServerId,
    /// Its new health.
    pub health: Health,
    /// The probe that caused the change.
    pub outcome: ProbeOutcome,
}

/// One server to check.
#[derive(Debug, Clone)]
pub struct Target {
    /// Which server this is.
    pub id: ServerId,
    /// The real server's address; the probe goes to `check.port` if set, else this port.
    pub addr: SocketAddr,
    /// The check to run.
    pub check: Check,
    /// `None`: unknown, the *first* probe result decides (and is reported as a
    /// [`Transition`]); `Some(Up)`: needs `fall` consecutive failures to go down;
    /// `Some(Down)`: needs `rise` consecutive successes to come up.
    pub initial: Option<Health>,
}

impl Target {
    /// Where network probes go: the server's address with `check.port` if set.
    pub fn probe_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr.ip(), self.check.port.unwrap_or(self.addr.port()))
    }
}

/// One target per real server that has a check, in configuration order, each with an
/// unknown initial state (the first probe decides). Servers without a check are always up
/// and have no target.
pub fn targets_from_config(config: &Config) -> Vec<Target> {
    let mut targets = Vec::new();
    for (service, vs) in config.virtual_servers.iter().enumerate() {
        for (server, rs) in vs.real_servers.iter().enumerate() {
            if let Some(check) = &rs.check {
                targets.push(Target {
                    id: ServerId { service, server },
                    addr: rs.address,
                    check: check.clone(),
                    initial: None,
                });
            }
        }
    }
    targets
}

/// Why the health checks could not start. Only problems known before any probe runs;
/// a failing probe is an outcome, not an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HealthError {
    /// [`Checkers::spawn`] was called outside a tokio runtime.
    #[error("start health checks: no tokio runtime (call from within a runtime)")]
    NoRuntime,
    /// The same server was given twice.
    #[error("start health checks: {id} is listed twice")]
    DuplicateServer {
        /// The server.
        id: ServerId,
    },
    /// A check with a zero interval would probe without pause.
    #[error("health check of {id}: the interval must be greater than 0")]
    ZeroInterval {
        /// The server.
        id: ServerId,
    },
    /// A network check without a port to probe.
    #[error(
        "health check of {id} ({addr}): no port to probe (the real server's port is 0 and the check has no `port`)"
    )]
    NoPort {
        /// The server.
        id: ServerId,
        /// Its address.
        addr: SocketAddr,
    },
    /// The `ca` file of an https check cannot be read.
    #[error("https check of {id}: cannot read CA file {}: {source}", path.display())]
    CaRead {
        /// The server.
        id: ServerId,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The `ca` file of an https check holds no PEM certificate.
    #[error("https check of {id}: CA file {}: no PEM certificate in it", path.display())]
    CaEmpty {
        /// The server.
        id: ServerId,
        /// The file.
        path: PathBuf,
    },
    /// The `ca` file of an https check holds something that is not a usable certificate.
    #[error("https check of {id}: CA file {}: {reason}", path.display())]
    CaInvalid {
        /// The server.
        id: ServerId,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS client configuration could not be built.
    #[error("https check of {id}: TLS settings: {reason}")]
    Tls {
        /// The server.
        id: ServerId,
        /// What went wrong.
        reason: String,
    },
    /// `host` cannot be sent as a TLS server name (SNI) or checked against a certificate.
    #[error("https check of {id}: `{host}` is not a valid TLS server name")]
    ServerName {
        /// The server.
        id: ServerId,
        /// The host.
        host: String,
    },
    /// `path` or `host` cannot be put into an HTTP request.
    #[error("http check of {id}: {reason}")]
    Request {
        /// The server.
        id: ServerId,
        /// What is wrong.
        reason: String,
    },
    /// The event queue of the TCP checks (an epoll instance) could not be created or
    /// registered with the runtime (for example, out of file descriptors).
    #[error("start health checks: cannot create the TCP checks' event queue: {source}")]
    EventQueue {
        /// What went wrong.
        source: io::Error,
    },
    /// The query of a dns check cannot be encoded.
    #[error("dns check of {id}: cannot encode a query for `{query}`: {reason}")]
    DnsQuery {
        /// The server.
        id: ServerId,
        /// The name queried.
        query: String,
        /// What is wrong.
        reason: String,
    },
}
