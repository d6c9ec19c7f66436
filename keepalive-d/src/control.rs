//! The control socket of a running daemon: status, reload, drain and undrain over a Unix
//! stream socket (`keepalive-d status`, `reload`, `drain`, `undrain`).
//!
//! # Socket
//!
//! `keepalive-d run` listens on [`DEFAULT_SOCKET`] (`run --control-socket PATH` changes
//! it). A missing directory is created with mode 0700; the socket gets mode 0600, and the
//! daemon (root) owns it, so only root can talk to it; a peer whose user is neither root nor
//! the daemon's is refused as well. A socket file left by a daemon that died is replaced;
//! if a daemon answers on it, [`ControlSocket::bind`] fails with
//! [`ControlError::InUse`] and `run` refuses to start. The file is removed on stop (if it
//! is still ours).
//!
//! # Protocol
//!
//! One request per connection: one line of JSON (at most [`MAX_REQUEST_BYTES`], read
//! within [`IO_TIMEOUT`]), then one JSON [`Response`] and the daemon closes the connection.
//!
//! ```text
//! {"command":"status"}
//! {"command":"reload"}
//! {"command":"drain","service":"web","address":"10.0.0.11:80"}
//! {"command":"undrain","service":"web","address":"10.0.0.11:80"}
//! ```
//!
//! Answers: `{"ok":true,"status":{...}}` (a [`StatusReport`]), `{"ok":true,"message":"..."}`,
//! or `{"ok":false,"error":"...","errors":["FILE:LINE:COL: ...", ...]}`. A bad request (not
//! JSON, too long, not UTF-8, an unknown command, a missing or extra field) gets an error
//! answer; nothing a client sends can stop the daemon.
//!
//! # Status
//!
//! [`Context::snapshot`] gathers the VRRP instances' status, the virtual-server program's
//! status ([`crate::lvs::LvsStatus`]) and the kernel's IPVS table with its counters (read
//! by the daemon when asked, so the weights and counters are the kernel's at that moment);
//! [`StatusReport::build`] turns it into the stable JSON document of `status --json`, and
//! [`render_text`] into the human view. The Prometheus endpoint ([`crate::metrics`]) uses
//! the same snapshot.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipvs::{AsyncIpvs, Observed, Stats};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Mutex, Semaphore, oneshot};

use crate::daemon::Control;
use crate::lvs::desired::{QuorumState, ServerState};
use crate::lvs::{LvsCommand, LvsStatus};
use crate::vrrp_io::StatusMap;

/// Where `keepalive-d run` listens and the other commands connect by default.
pub const DEFAULT_SOCKET: &str = "/run/keepalive-d/control.sock";

/// Longest request line accepted, in bytes (the newline included).
pub const MAX_REQUEST_BYTES: usize = 4096;

/// Longest response a client accepts, in bytes.
pub const MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;

/// Time allowed to read a request, and to write its response.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Time allowed to carry out a request (a reload reads the file and writes to the kernel).
pub const HANDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Time a client waits for the answer: the daemon's limits plus a margin.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(70);

/// Connections served at once; more wait for their turn.
const MAX_CONNECTIONS: usize = 8;

/// Version of the [`StatusReport`] document; raised when a field changes meaning or goes.
pub const STATUS_FORMAT: u32 = 1;

// ---- protocol ---------------------------------------------------------------------------

/// A request to the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The daemon's status ([`StatusReport`]).
    Status,
    /// Reload the configuration file.
    Reload,
    /// Drain a real server: weight 0 in the kernel until undrained (survives reloads).
    Drain {
        /// The virtual server's name.
        service: String,
        /// The real server's address.
        address: SocketAddr,
    },
    /// Undo [`Request::Drain`].
    Undrain {
        /// The virtual server's name.
        service: String,
        /// The real server's address.
        address: SocketAddr,
    },
    /// Drain the director: withdraw every announced address (`announce: bgp`); its
    /// established connections are still served. The answer lists the addresses.
    DrainDirector,
    /// Undo [`Request::DrainDirector`]: announce again what is in quorum.
    UndrainDirector,
}

/// The commands [`Request`] knows, as spelled on the wire.
const COMMANDS: [&str; 6] = [
    "status",
    "reload",
    "drain",
    "undrain",
    "drain_director",
    "undrain_director",
];

/// The daemon's answer to one request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request was carried out.
    pub ok: bool,
    /// What was done (reload summary, drain confirmation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Why the request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every problem, one per line (a refused reload: `FILE:LINE:COL: message`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// The [`StatusReport`] of a status request, as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
    /// The addresses a `drain_director` withdrew (or an `undrain_director` announced).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<IpAddr>,
}

impl Response {
    /// A success with a message.
    pub fn message(message: impl Into<String>) -> Self {
        Response {
            ok: true,
            message: Some(message.into()),
            ..Response::default()
        }
    }

    /// A failure.
    pub fn error(error: impl Into<String>) -> Self {
        Response {
            ok: false,
            error: Some(error.into()),
            ..Response::default()
        }
    }
}

/// Why a request line is not a valid [`Request`] (answered as an error, never fatal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// More than [`MAX_REQUEST_BYTES`] without a newline.
    #[error("bad request: longer than {MAX_REQUEST_BYTES} bytes")]
    TooLong,
    /// The client sent nothing before closing or timing out.
    #[error("bad request: empty")]
    Empty,
    /// The client did not send a whole line in time.
    #[error("bad request: no complete line within {}s", IO_TIMEOUT.as_secs())]
    Timeout,
    /// Not UTF-8.
    #[error("bad request: not valid UTF-8")]
    NotUtf8,
    /// Not JSON.
    #[error("bad request: not JSON: {0}")]
    Json(String),
    /// The connection failed while the request was read.
    #[error("cannot read the request: {0}")]
    Read(String),
    /// JSON, but not an object with a string `command`.
    #[error("bad request: expected an object with a \"command\" string")]
    NoCommand,
    /// A command this daemon does not know.
    #[error(
        "bad request: unknown command `{0}`: expected status, reload, drain, undrain, \
         drain_director or undrain_director"
    )]
    UnknownCommand(String),
    /// A known command with missing, extra or invalid fields.
    #[error("bad request: command `{command}`: {reason}")]
    Fields {
        /// The command.
        command: String,
        /// What is wrong.
        reason: String,
    },
}

/// Shortens and escapes a client-supplied value for an error message.
fn shown(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars().take(40) {
        out.extend(c.escape_default());
    }
    if value.chars().count() > 40 {
        out.push('…');
    }
    out
}

/// Parses one request line (without or with its newline).
pub fn parse_request(line: &[u8]) -> Result<Request, RequestError> {
    if line.len() > MAX_REQUEST_BYTES {
        return Err(RequestError::TooLong);
    }
    let text = std::str::from_utf8(line).map_err(|_| RequestError::NotUtf8)?;
    let text = text.trim();
    if text.is_empty() {
        return Err(RequestError::Empty);
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| RequestError::Json(e.to_string()))?;
    let command = value
        .get("command")
        .and_then(serde_json::Value::as_str)
        .ok_or(RequestError::NoCommand)?
        .to_owned();
    if !COMMANDS.contains(&command.as_str()) {
        return Err(RequestError::UnknownCommand(shown(&command)));
    }
    // serde ignores extra fields next to a unit variant's tag: check them here.
    if let Some(extra) = value.as_object().and_then(|o| {
        o.keys()
            .find(|k| !["command", "service", "address"].contains(&k.as_str()))
    }) {
        return Err(RequestError::Fields {
            reason: format!("unknown field `{}`", shown(extra)),
            command,
        });
    }
    if matches!(
        command.as_str(),
        "status" | "reload" | "drain_director" | "undrain_director"
    ) && value.as_object().is_some_and(|o| o.len() > 1)
    {
        return Err(RequestError::Fields {
            reason: "takes no arguments".to_owned(),
            command,
        });
    }
    serde_json::from_value(value).map_err(|e| RequestError::Fields {
        command,
        reason: e.to_string(),
    })
}

// ---- status report ----------------------------------------------------------------------

/// Everything a status or a metrics scrape shows, gathered at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The VRRP instances.
    pub vrrp: StatusMap,
    /// Whether the daemon runs virtual servers.
    pub has_lvs: bool,
    /// The virtual-server program's status (`None`: none configured, or it stopped).
    pub lvs: Option<LvsStatus>,
    /// The kernel's table with counters (`None` without virtual servers; `Err`: it could
    /// not be read, with why).
    pub kernel: Option<Result<Observed, String>>,
    /// When it was taken.
    pub taken: Option<SystemTime>,
}

impl Snapshot {
    /// The kernel's table, if it was read.
    pub fn observed(&self) -> Option<&Observed> {
        self.kernel.as_ref().and_then(|k| k.as_ref().ok())
    }
}

/// Who answers: version, process and configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonInfo {
    /// keepalive-d's version.
    pub version: String,
    /// Process id.
    pub pid: u32,
    /// The configuration file.
    pub config: String,
}

/// The `status --json` document (format [`STATUS_FORMAT`]). Fields are only added in a
/// format; `null` means "not known" (e.g. a real server not in the kernel has a `null`
/// `kernel_weight`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// [`STATUS_FORMAT`].
    pub format: u32,
    /// The daemon.
    pub daemon: DaemonInfo,
    /// When the report was made: RFC 3339, UTC.
    pub time: String,
    /// The VRRP instances, by name.
    pub vrrp_instances: Vec<VrrpInstanceReport>,
    /// The virtual servers, in configuration order.
    pub virtual_servers: Vec<VirtualServerReport>,
    /// Destinations a reload removed that still drain.
    pub draining: Vec<DrainingReport>,
    /// The IPVS side (`null` without virtual servers).
    pub ipvs: Option<IpvsReport>,
    /// Addresses announced now (`announce: bgp`: their routes are in the `bgp` table).
    #[serde(default)]
    pub announced: Vec<String>,
    /// The director is drained (`keepalive-d drain-director`): it announces nothing.
    #[serde(default)]
    pub director_drained: bool,
}

/// One VRRP instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VrrpInstanceReport {
    /// Its name.
    pub name: String,
    /// `initialize` (stopped), `backup`, `master` or `fault`.
    pub state: String,
    /// The priority it advertises (tracking included).
    pub priority: u8,
    /// The master it follows, while backup.
    pub master: Option<IpAddr>,
    /// The last state change.
    pub last_transition: Option<TransitionReport>,
    /// State changes since start.
    pub transitions: u64,
    /// Adverts sent.
    pub adverts_sent: u64,
    /// Adverts accepted from other routers.
    pub adverts_received: u64,
    /// Datagrams dropped on receive, by reason (every reason, zeros included).
    pub receive_errors: BTreeMap<String, u64>,
}

/// A state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransitionReport {
    /// When: RFC 3339, UTC, milliseconds.
    pub at: String,
    /// When: seconds since the Unix epoch.
    pub at_unix: f64,
    /// The state entered.
    pub state: String,
    /// Why (`startup`, `master-down`, `higher-priority`, `interface-down`, ...).
    pub reason: String,
}

/// IPVS traffic counters and rates (the kernel's, `ipvsadm -L -n --stats` / `--rate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TrafficReport {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets in.
    pub inpkts: u64,
    /// Packets out.
    pub outpkts: u64,
    /// Bytes in.
    pub inbytes: u64,
    /// Bytes out.
    pub outbytes: u64,
    /// Connections per second.
    pub cps: u64,
    /// Packets in per second.
    pub inpps: u64,
    /// Packets out per second.
    pub outpps: u64,
    /// Bytes in per second.
    pub inbps: u64,
    /// Bytes out per second.
    pub outbps: u64,
}

impl From<&Stats> for TrafficReport {
    fn from(s: &Stats) -> Self {
        TrafficReport {
            conns: s.conns,
            inpkts: s.inpkts,
            outpkts: s.outpkts,
            inbytes: s.inbytes,
            outbytes: s.outbytes,
            cps: s.cps,
            inpps: s.inpps,
            outpps: s.outpps,
            inbps: s.inbps,
            outbps: s.outbps,
        }
    }
}

/// One virtual server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VirtualServerReport {
    /// Its name in the configuration.
    pub name: String,
    /// The IPVS service: `tcp 192.0.2.10:80`, `fwmark 7`, `fwmark 7 ipv6`.
    pub service: String,
    /// `unknown`, `met` or `lost`.
    pub quorum: String,
    /// Whether the kernel has the service.
    pub in_kernel: bool,
    /// The kernel's counters for the service.
    pub stats: Option<TrafficReport>,
    /// The sorry server, if configured.
    pub sorry_server: Option<DestinationReport>,
    /// The real servers, in configuration order.
    pub real_servers: Vec<RealServerReport>,
}

/// A destination as the kernel has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationReport {
    /// Its address.
    pub address: SocketAddr,
    /// Its weight in the kernel (`null`: not in the kernel).
    pub kernel_weight: Option<u32>,
    /// Active connections.
    pub active_conns: u32,
    /// Inactive connections.
    pub inactive_conns: u32,
    /// The kernel's counters.
    pub stats: Option<TrafficReport>,
}

/// One real server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RealServerReport {
    /// Its address.
    pub address: SocketAddr,
    /// `up`, `down` or `pending` (no probe answered yet).
    pub health: String,
    /// Whether it has a health check (without one it is always up).
    pub checked: bool,
    /// Drained by hand (`keepalive-d drain`).
    pub drained: bool,
    /// The weight in the configuration.
    pub weight: u32,
    /// The weight in the kernel (`null`: not in the kernel).
    pub kernel_weight: Option<u32>,
    /// When its health last changed (RFC 3339), since the daemon started or reloaded.
    pub since: Option<String>,
    /// The same, in seconds since the Unix epoch.
    pub since_unix: Option<f64>,
    /// The last probe.
    pub last_check: Option<CheckReport>,
    /// Probes run since its check started, by result (`null` without a check).
    #[serde(default)]
    pub probes: Option<ProbeCountReport>,
    /// Active connections (the kernel's).
    pub active_conns: u32,
    /// Inactive connections.
    pub inactive_conns: u32,
    /// The kernel's counters.
    pub stats: Option<TrafficReport>,
}

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    /// Whether it succeeded.
    pub ok: bool,
    /// How long it took, in seconds.
    pub latency_seconds: f64,
    /// What it found (`HTTP 200`, `connection refused`, ...).
    pub detail: String,
}

/// Probes of one real server by result (the `keepalive_d_check_probes_total` counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeCountReport {
    /// Probes that succeeded.
    pub success: u64,
    /// Probes that failed (timeouts included).
    pub failure: u64,
}

/// A destination a reload removed, at weight 0 until its connections finish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrainingReport {
    /// The IPVS service.
    pub service: String,
    /// The destination and what the kernel says of it.
    pub destination: DestinationReport,
}

/// The IPVS side of the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpvsReport {
    /// Reconciles run (each one dump and at most one write batch).
    pub reconciles: u64,
    /// Writes sent to the kernel.
    pub writes: u64,
    /// Writes the kernel refused.
    pub failed_writes: u64,
    /// Periodic reconciles that repaired drift.
    pub drift_repairs: u64,
    /// Why the kernel table could not be read for this report (`null`: it was).
    pub kernel_error: Option<String>,
    /// Whether the virtual-server program answered (`false`: it has stopped).
    pub running: bool,
}

/// `up`, `down`, `pending`.
pub fn server_state_name(s: ServerState) -> &'static str {
    match s {
        ServerState::Up => "up",
        ServerState::Down => "down",
        ServerState::Pending => "pending",
    }
}

/// `unknown`, `met`, `lost`.
pub fn quorum_name(q: QuorumState) -> &'static str {
    match q {
        QuorumState::Unknown => "unknown",
        QuorumState::Met => "met",
        QuorumState::Lost => "lost",
    }
}

/// Seconds since the Unix epoch (negative before it).
pub fn unix_seconds(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// `2026-11-25T15:40:52.123Z` (UTC, milliseconds); times before 1970 print as the epoch.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

impl StatusReport {
    /// The report of `snap`.
    pub fn build(snap: &Snapshot, daemon: DaemonInfo) -> StatusReport {
        let vrrp_instances = snap
            .vrrp
            .iter()
            .map(|(name, st)| VrrpInstanceReport {
                name: name.clone(),
                state: st.state.name().to_owned(),
                priority: st.priority,
                master: st.master,
                last_transition: st.last_transition.map(|c| TransitionReport {
                    at: rfc3339(c.at),
                    at_unix: unix_seconds(c.at),
                    state: c.state.name().to_owned(),
                    reason: c.reason.name().to_owned(),
                }),
                transitions: st.transitions,
                adverts_sent: st.adverts_sent,
                adverts_received: st.adverts_received,
                receive_errors: st
                    .receive_errors
                    .iter()
                    .map(|(r, n)| (r.name().to_owned(), n))
                    .collect(),
            })
            .collect();
        let observed = snap.observed();
        let destination = |key: &ipvs::ServiceKey, addr: SocketAddr| {
            let weight = observed
                .and_then(|o| o.table().service(key))
                .and_then(|s| s.destination(addr))
                .map(ipvs::Destination::weight);
            let ds = observed.and_then(|o| o.destination_stats(key, addr));
            DestinationReport {
                address: addr,
                kernel_weight: weight,
                active_conns: ds.map_or(0, |d| d.active_conns),
                inactive_conns: ds.map_or(0, |d| d.inactive_conns),
                stats: ds.map(|d| TrafficReport::from(&d.stats)),
            }
        };
        let mut virtual_servers = Vec::new();
        let mut draining = Vec::new();
        if let Some(lvs) = &snap.lvs {
            for svc in &lvs.services {
                let key = &svc.key;
                let real_servers = svc
                    .real_servers
                    .iter()
                    .map(|rs| {
                        let d = destination(key, rs.address);
                        RealServerReport {
                            address: rs.address,
                            health: server_state_name(rs.state).to_owned(),
                            checked: rs.checked,
                            drained: rs.drained,
                            weight: rs.weight,
                            kernel_weight: d.kernel_weight,
                            since: rs.since.map(rfc3339),
                            since_unix: rs.since.map(unix_seconds),
                            last_check: rs.last.as_ref().map(|o| CheckReport {
                                ok: o.ok,
                                latency_seconds: o.latency.as_secs_f64(),
                                detail: o.detail.clone(),
                            }),
                            probes: rs.probes.map(|p| ProbeCountReport {
                                success: p.success,
                                failure: p.failure,
                            }),
                            active_conns: d.active_conns,
                            inactive_conns: d.inactive_conns,
                            stats: d.stats,
                        }
                    })
                    .collect();
                virtual_servers.push(VirtualServerReport {
                    name: svc.name.clone(),
                    service: key.to_string(),
                    quorum: quorum_name(svc.quorum).to_owned(),
                    in_kernel: observed.is_some_and(|o| o.table().service(key).is_some()),
                    stats: observed
                        .and_then(|o| o.service_stats(key))
                        .map(|s| TrafficReport::from(&s.stats)),
                    sorry_server: svc.sorry_server.map(|a| destination(key, a)),
                    real_servers,
                });
            }
            for (key, addr) in &lvs.draining {
                draining.push(DrainingReport {
                    service: key.to_string(),
                    destination: destination(key, *addr),
                });
            }
        }
        let ipvs = snap.has_lvs.then(|| {
            let c = snap.lvs.as_ref().map(|l| l.counters).unwrap_or_default();
            IpvsReport {
                reconciles: c.reconciles,
                writes: c.writes,
                failed_writes: c.failed_writes,
                drift_repairs: c.drift_repairs,
                kernel_error: match &snap.kernel {
                    Some(Err(e)) => Some(e.clone()),
                    _ => None,
                },
                running: snap.lvs.is_some(),
            }
        });
        StatusReport {
            format: STATUS_FORMAT,
            daemon,
            time: rfc3339(snap.taken.unwrap_or_else(SystemTime::now)),
            vrrp_instances,
            virtual_servers,
            draining,
            ipvs,
            announced: snap
                .lvs
                .as_ref()
                .map(|l| l.announced.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
            director_drained: snap.lvs.as_ref().is_some_and(|l| l.director_drained),
        }
    }
}

// ---- human view -------------------------------------------------------------------------

/// `1m12s`, `3h4m`, `2d5h`: an age for people.
pub(crate) fn age(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "just now".to_owned();
    }
    // Truncation is what we want: whole seconds.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let s = seconds as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A latency for people: `850µs`, `1.2ms`, `1.50s`.
fn latency(seconds: f64) -> String {
    if seconds < 0.001 {
        format!("{:.0}µs", seconds * 1e6)
    } else if seconds < 1.0 {
        format!("{:.1}ms", seconds * 1e3)
    } else {
        format!("{seconds:.2}s")
    }
}

fn opt_weight(w: Option<u32>) -> String {
    w.map_or_else(|| "-".to_owned(), |w| w.to_string())
}

/// The status for people (`keepalive-d status`); `now_unix` dates the "ago"s.
pub fn render_text(r: &StatusReport, now_unix: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "keepalive-d {} (pid {}), config {}",
        r.daemon.version, r.daemon.pid, r.daemon.config
    );
    if !r.vrrp_instances.is_empty() {
        let _ = writeln!(out, "\nVRRP instances:");
        let _ = writeln!(
            out,
            "  {:<16} {:<10} {:>4}  {:<24} LAST TRANSITION",
            "NAME", "STATE", "PRIO", "MASTER"
        );
        for i in &r.vrrp_instances {
            let master = i.master.map_or_else(|| "-".to_owned(), |m| m.to_string());
            let last = i.last_transition.as_ref().map_or_else(
                || "-".to_owned(),
                |t| format!("{} ({} ago): {}", t.at, age(now_unix - t.at_unix), t.reason),
            );
            let _ = writeln!(
                out,
                "  {:<16} {:<10} {:>4}  {:<24} {last}",
                i.name, i.state, i.priority, master
            );
            let errors: Vec<String> = i
                .receive_errors
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let _ = writeln!(
                out,
                "  {:<16} {} transitions; adverts sent {}, received {}; receive errors: {}",
                "",
                i.transitions,
                i.adverts_sent,
                i.adverts_received,
                if errors.is_empty() {
                    "none".to_owned()
                } else {
                    errors.join(", ")
                }
            );
        }
    }
    if let Some(ipvs) = &r.ipvs {
        let _ = writeln!(out, "\nVirtual servers:");
        if !ipvs.running {
            let _ = writeln!(out, "  (the virtual-server program has stopped)");
        }
        if let Some(e) = &ipvs.kernel_error {
            let _ = writeln!(out, "  (cannot read the kernel's table: {e})");
        }
        for vs in &r.virtual_servers {
            let _ = writeln!(
                out,
                "  {}: {}, quorum {}{}",
                vs.name,
                vs.service,
                vs.quorum,
                if vs.in_kernel {
                    ""
                } else {
                    ", NOT in the kernel"
                }
            );
            if let Some(s) = &vs.stats {
                let _ = writeln!(
                    out,
                    "    traffic: {} conns, packets {} in / {} out, bytes {} in / {} out; \
                     rates: {} conn/s, {} / {} pkt/s, {} / {} B/s",
                    s.conns,
                    s.inpkts,
                    s.outpkts,
                    s.inbytes,
                    s.outbytes,
                    s.cps,
                    s.inpps,
                    s.outpps,
                    s.inbps,
                    s.outbps
                );
            }
            let _ = writeln!(
                out,
                "    {:<28} {:<8} {:>7} {:>7} {:>8} {:>7} {:>6} {:>6}  LAST CHECK",
                "REAL SERVER", "HEALTH", "WEIGHT", "KERNEL", "CONNS", "ACTIVE", "INACT", "CPS"
            );
            for rs in &vs.real_servers {
                let health = if rs.drained {
                    format!("{}*", rs.health)
                } else {
                    rs.health.clone()
                };
                let check = match (&rs.last_check, rs.checked) {
                    (_, false) => "no check".to_owned(),
                    (None, true) => "no probe yet".to_owned(),
                    (Some(c), true) => format!(
                        "{} in {}: {}",
                        if c.ok { "ok" } else { "FAILED" },
                        latency(c.latency_seconds),
                        c.detail
                    ),
                };
                let since = rs
                    .since_unix
                    .map(|s| format!(" ({} for {})", rs.health, age(now_unix - s)))
                    .unwrap_or_default();
                let stats = rs.stats.unwrap_or_default();
                let _ = writeln!(
                    out,
                    "    {:<28} {:<8} {:>7} {:>7} {:>8} {:>7} {:>6} {:>6}  {check}{since}",
                    rs.address.to_string(),
                    health,
                    rs.weight,
                    opt_weight(rs.kernel_weight),
                    stats.conns,
                    rs.active_conns,
                    rs.inactive_conns,
                    stats.cps
                );
            }
            if let Some(s) = &vs.sorry_server {
                let _ = writeln!(
                    out,
                    "    sorry server {}: kernel weight {}, {} active, {} inactive",
                    s.address,
                    opt_weight(s.kernel_weight),
                    s.active_conns,
                    s.inactive_conns
                );
            }
            if vs.real_servers.iter().any(|rs| rs.drained) {
                let _ = writeln!(
                    out,
                    "    * drained by hand (keepalive-d undrain to restore)"
                );
            }
        }
        if r.director_drained {
            let _ = writeln!(
                out,
                "  director drained: nothing announced (keepalive-d undrain-director to announce again)"
            );
        }
        if !r.announced.is_empty() {
            let _ = writeln!(out, "  announced by BGP: {}", r.announced.join(", "));
        }
        for d in &r.draining {
            let _ = writeln!(
                out,
                "  draining after a reload: {} {} (kernel weight {}, {} active connections)",
                d.service,
                d.destination.address,
                opt_weight(d.destination.kernel_weight),
                d.destination.active_conns
            );
        }
        let _ = writeln!(
            out,
            "  IPVS: {} reconciles, {} writes ({} failed), {} drift repairs",
            ipvs.reconciles, ipvs.writes, ipvs.failed_writes, ipvs.drift_repairs
        );
    }
    out
}

// ---- the daemon side --------------------------------------------------------------------

/// What the control socket and the metrics endpoint read from the running daemon.
#[derive(Debug)]
pub struct Context {
    control: Control,
    info: DaemonInfo,
    kernel: Mutex<Option<AsyncIpvs>>,
}

impl Context {
    /// A context over the daemon's [`Control`].
    pub fn new(control: Control) -> Self {
        let info = DaemonInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            config: control.config_path.display().to_string(),
        };
        Context {
            control,
            info,
            kernel: Mutex::new(None),
        }
    }

    /// The daemon's handle.
    pub fn control(&self) -> &Control {
        &self.control
    }

    /// Version, pid and configuration file.
    pub fn info(&self) -> &DaemonInfo {
        &self.info
    }

    /// Reads the kernel's table with its counters, through one IPVS socket kept between
    /// calls (reopened after an error).
    async fn kernel_table(&self) -> Result<Observed, String> {
        let mut guard = self.kernel.lock().await;
        if guard.is_none() {
            *guard =
                Some(AsyncIpvs::open().map_err(|e| format!("open IPVS to read the table: {e}"))?);
        }
        let Some(ipvs) = guard.as_mut() else {
            return Err("IPVS socket not open".to_owned());
        };
        match ipvs.table().await {
            Ok(t) => Ok(t),
            Err(e) => {
                *guard = None;
                Err(format!("read the IPVS table: {e}"))
            }
        }
    }

    /// Everything at once: VRRP status, the virtual-server program's status and the
    /// kernel's table.
    pub async fn snapshot(&self) -> Snapshot {
        let vrrp = self.control.vrrp.borrow().clone();
        let (lvs, kernel) = match &self.control.lvs {
            Some(h) => (h.status().await, Some(self.kernel_table().await)),
            None => (None, None),
        };
        Snapshot {
            vrrp,
            has_lvs: self.control.lvs.is_some(),
            lvs,
            kernel,
            taken: Some(SystemTime::now()),
        }
    }

    /// Carries out one request.
    pub async fn handle(&self, request: Request) -> Response {
        match request {
            Request::Status => {
                let report = StatusReport::build(&self.snapshot().await, self.info.clone());
                match serde_json::to_value(&report) {
                    Ok(v) => Response {
                        ok: true,
                        status: Some(v),
                        ..Response::default()
                    },
                    Err(e) => Response::error(format!("status: cannot encode JSON: {e}")),
                }
            }
            Request::Reload => match self.control.reload().await {
                Ok(summary) => Response::message(summary),
                Err(errors) => Response {
                    errors: errors.lines().map(str::to_owned).collect(),
                    ..Response::error("reload refused: still running the previous configuration")
                },
            },
            Request::Drain { service, address } => self.drain(service, address, true).await,
            Request::Undrain { service, address } => self.drain(service, address, false).await,
            Request::DrainDirector => self.drain_director(true).await,
            Request::UndrainDirector => self.drain_director(false).await,
        }
    }

    async fn drain_director(&self, drain: bool) -> Response {
        let verb = if drain {
            "drain-director"
        } else {
            "undrain-director"
        };
        let Some(lvs) = &self.control.lvs else {
            return Response::error(format!("{verb}: this daemon runs no virtual servers"));
        };
        let (tx, rx) = oneshot::channel();
        let stopped = || Response::error(format!("{verb}: the virtual servers have stopped"));
        if lvs
            .commands
            .send(LvsCommand::DrainDirector { drain, reply: tx })
            .await
            .is_err()
        {
            return stopped();
        }
        match rx.await {
            Ok(Ok(addresses)) => {
                let list = addresses
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                let message = match (drain, addresses.is_empty()) {
                    (true, true) => "director drained: nothing was announced".to_owned(),
                    (true, false) => format!("director drained: withdrawn {list}"),
                    (false, true) => {
                        "director undrained: nothing to announce yet (no service in quorum)"
                            .to_owned()
                    }
                    (false, false) => format!("director undrained: announcing {list}"),
                };
                Response {
                    addresses,
                    ..Response::message(message)
                }
            }
            Ok(Err(e)) => Response::error(format!("{verb}: {e}")),
            Err(_) => stopped(),
        }
    }

    async fn drain(&self, service: String, addr: SocketAddr, drain: bool) -> Response {
        let verb = if drain { "drain" } else { "undrain" };
        let Some(lvs) = &self.control.lvs else {
            return Response::error(format!(
                "{verb} {service} {addr}: this daemon runs no virtual servers"
            ));
        };
        let (tx, rx) = oneshot::channel();
        let cmd = LvsCommand::Drain {
            service: service.clone(),
            addr,
            drain,
            reply: tx,
        };
        let stopped = || Response::error(format!("{verb}: the virtual servers have stopped"));
        if lvs.commands.send(cmd).await.is_err() {
            return stopped();
        }
        match rx.await {
            Ok(Ok(())) => Response::message(if drain {
                format!("{service} {addr}: drained (weight 0 until undrained)")
            } else {
                format!("{service} {addr}: undrained")
            }),
            Ok(Err(e)) => Response::error(format!("{verb} {service} {addr}: {e}")),
            Err(_) => stopped(),
        }
    }
}

/// Why the control socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The socket's directory could not be created.
    #[error("control socket {}: cannot create directory {}: {source}", path.display(), dir.display())]
    CreateDir {
        /// The socket.
        path: PathBuf,
        /// The directory.
        dir: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Something other than a socket is at the path: it is left alone.
    #[error("control socket {}: the path exists and is not a socket (not removed)", path.display())]
    NotASocket {
        /// The socket.
        path: PathBuf,
    },
    /// A daemon answers on the socket.
    #[error(
        "control socket {}: another keepalive-d is running (it answers on this socket); \
         stop it first, or give this one another --control-socket", path.display()
    )]
    InUse {
        /// The socket.
        path: PathBuf,
    },
    /// Checking, removing, binding or setting the mode failed.
    #[error("control socket {}: {op}: {source}", path.display())]
    Io {
        /// The socket.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The cause.
        source: io::Error,
    },
}

/// The daemon's listening control socket. Dropping it removes the socket file (if it is
/// still the one this process bound).
#[derive(Debug)]
pub struct ControlSocket {
    path: PathBuf,
    listener: std::os::unix::net::UnixListener,
    /// Device and inode of the socket file, to remove only our own.
    id: (u64, u64),
}

impl ControlSocket {
    /// Binds `path`: creates the missing directories (mode 0700), replaces a stale socket
    /// file, refuses when a daemon answers on it, and sets the socket's mode to 0600.
    pub fn bind(path: &Path) -> Result<ControlSocket, ControlError> {
        let io_err = |op: &'static str| {
            let path = path.to_path_buf();
            move |source| ControlError::Io { path, op, source }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|source| ControlError::CreateDir {
                        path: path.to_path_buf(),
                        dir: dir.to_path_buf(),
                        source,
                    })?;
            }
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                match std::os::unix::net::UnixStream::connect(path) {
                    Ok(_) => {
                        return Err(ControlError::InUse {
                            path: path.to_path_buf(),
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        tracing::info!(socket = %path.display(), "replacing a stale control socket");
                        std::fs::remove_file(path).map_err(io_err("remove the stale socket"))?;
                    }
                    Err(e) => return Err(io_err("check whether a daemon answers on it")(e)),
                }
            }
            Ok(_) => {
                return Err(ControlError::NotASocket {
                    path: path.to_path_buf(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("stat")(e)),
        }
        // The socket is created without group or other permissions (no window where
        // another user could connect), then set to exactly 0600.
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
        let bound = std::os::unix::net::UnixListener::bind(path);
        nix::sys::stat::umask(old);
        let listener = bound.map_err(|e| {
            if e.kind() == io::ErrorKind::AddrInUse {
                ControlError::InUse {
                    path: path.to_path_buf(),
                }
            } else {
                io_err("bind")(e)
            }
        })?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err("set mode 0600"))?;
        let meta = std::fs::symlink_metadata(path).map_err(io_err("stat"))?;
        listener
            .set_nonblocking(true)
            .map_err(io_err("set non-blocking"))?;
        Ok(ControlSocket {
            path: path.to_path_buf(),
            listener,
            id: (meta.dev(), meta.ino()),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts serving requests on the current tokio runtime (until the runtime stops).
    pub fn spawn(&self, ctx: Arc<Context>) -> Result<(), ControlError> {
        let io_err = |op: &'static str| {
            let path = self.path.clone();
            move |source| ControlError::Io { path, op, source }
        };
        let std_listener = self.listener.try_clone().map_err(io_err("clone"))?;
        let listener =
            tokio::net::UnixListener::from_std(std_listener).map_err(io_err("register"))?;
        tracing::info!(socket = %self.path.display(), "control socket listening");
        tokio::spawn(serve(listener, ctx));
        Ok(())
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Accepts connections and serves each in a task, [`MAX_CONNECTIONS`] at once.
async fn serve(listener: tokio::net::UnixListener, ctx: Arc<Context>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("control socket: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            connection(stream, &ctx).await;
            drop(permit);
        });
    }
}

/// Whether a peer with user id `uid` may use the socket: root, or the daemon's own user.
fn peer_allowed(uid: u32) -> bool {
    uid == 0 || uid == nix::unistd::geteuid().as_raw()
}

/// Reads one line of at most [`MAX_REQUEST_BYTES`].
async fn read_request<R: tokio::io::AsyncRead + Unpin>(
    stream: &mut R,
) -> Result<Vec<u8>, RequestError> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| RequestError::Read(e.to_string()))?;
        let Some(data) = chunk.get(..n) else {
            return Err(RequestError::Empty);
        };
        if n == 0 {
            return if buf.is_empty() {
                Err(RequestError::Empty)
            } else {
                Ok(buf)
            };
        }
        if let Some(end) = data.iter().position(|b| *b == b'\n') {
            buf.extend_from_slice(data.get(..end).unwrap_or_default());
            return if buf.len() > MAX_REQUEST_BYTES {
                Err(RequestError::TooLong)
            } else {
                Ok(buf)
            };
        }
        buf.extend_from_slice(data);
        if buf.len() > MAX_REQUEST_BYTES {
            return Err(RequestError::TooLong);
        }
    }
}

/// The answer to one request read from `stream` (bounded in size and time).
pub async fn answer<R: tokio::io::AsyncRead + Unpin>(stream: &mut R, ctx: &Context) -> Response {
    let line = match tokio::time::timeout(IO_TIMEOUT, read_request(stream)).await {
        Ok(Ok(line)) => line,
        Ok(Err(e)) => return Response::error(e.to_string()),
        Err(_) => return Response::error(RequestError::Timeout.to_string()),
    };
    let request = match parse_request(&line) {
        Ok(r) => r,
        Err(e) => return Response::error(e.to_string()),
    };
    tracing::debug!(?request, "control request");
    match tokio::time::timeout(HANDLE_TIMEOUT, ctx.handle(request)).await {
        Ok(r) => r,
        Err(_) => Response::error(format!(
            "the daemon did not complete the request within {}s",
            HANDLE_TIMEOUT.as_secs()
        )),
    }
}

async fn connection(mut stream: tokio::net::UnixStream, ctx: &Context) {
    let response = match stream.peer_cred() {
        Ok(cred) if peer_allowed(cred.uid()) => answer(&mut stream, ctx).await,
        Ok(cred) => {
            tracing::warn!(uid = cred.uid(), "control socket: peer refused (not root)");
            Response::error("permission denied: the control socket is for root only")
        }
        Err(e) => Response::error(format!("cannot read the peer's credentials: {e}")),
    };
    let mut bytes = serde_json::to_vec(&response).unwrap_or_else(|e| {
        format!("{{\"ok\":false,\"error\":\"cannot encode the response: {e}\"}}").into_bytes()
    });
    bytes.push(b'\n');
    let write = async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    };
    match tokio::time::timeout(IO_TIMEOUT, write).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!("control socket: write: {e}"),
        Err(_) => tracing::debug!("control socket: client too slow to read the response"),
    }
}

// ---- the client side --------------------------------------------------------------------

/// Why a command could not talk to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket.
    #[error("no keepalive-d running (control socket {}: {source})", path.display())]
    NotRunning {
        /// The socket.
        path: PathBuf,
        /// Why the connection failed.
        source: io::Error,
    },
    /// Connecting, sending or receiving failed.
    #[error("control socket {}: {op}: {source}", path.display())]
    Io {
        /// The socket.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The cause.
        source: io::Error,
    },
    /// The daemon's answer is not a [`Response`].
    #[error("control socket {}: bad response: {reason}", path.display())]
    BadResponse {
        /// The socket.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Sends `request` to the daemon listening on `path` and returns its answer (blocking; at
/// most `timeout` for each read and write).
pub fn request(path: &Path, request: &Request, timeout: Duration) -> Result<Response, ClientError> {
    let io_err = |op: &'static str| {
        let path = path.to_path_buf();
        move |source| ClientError::Io { path, op, source }
    };
    let mut stream = match std::os::unix::net::UnixStream::connect(path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ClientError::NotRunning {
                path: path.to_path_buf(),
                source: e,
            });
        }
        Err(e) => return Err(io_err("connect")(e)),
    };
    stream
        .set_read_timeout(Some(timeout))
        .map_err(io_err("set timeout"))?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(io_err("set timeout"))?;
    let mut line = serde_json::to_vec(request).map_err(|e| ClientError::BadResponse {
        path: path.to_path_buf(),
        reason: format!("cannot encode the request: {e}"),
    })?;
    line.push(b'\n');
    stream.write_all(&line).map_err(io_err("send"))?;
    let mut answer = Vec::new();
    (&mut stream)
        .take(MAX_RESPONSE_BYTES + 1)
        .read_to_end(&mut answer)
        .map_err(io_err("receive"))?;
    if answer.len() as u64 > MAX_RESPONSE_BYTES {
        return Err(ClientError::BadResponse {
            path: path.to_path_buf(),
            reason: format!("longer than {MAX_RESPONSE_BYTES} bytes"),
        });
    }
    serde_json::from_slice(&answer).map_err(|e| ClientError::BadResponse {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Active connections and packets received so far of the virtual servers of `addresses`
/// in a status document.
fn director_traffic(status: &StatusReport, addresses: &[IpAddr]) -> (u64, u64) {
    let services = status.virtual_servers.iter().filter(|vs| {
        vs.service
            .split_whitespace()
            .nth(1)
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .is_some_and(|a| addresses.contains(&a.ip()))
    });
    let mut active = 0;
    let mut inpkts = 0;
    for vs in services {
        active += vs
            .real_servers
            .iter()
            .map(|rs| u64::from(rs.active_conns))
            .sum::<u64>();
        inpkts += vs.stats.map_or(0, |s| s.inpkts);
    }
    (active, inpkts)
}

/// How long `keepalive-d drain-director` waits, and when it calls the director drained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectorDrain {
    /// At most this long (then exit 1, saying what is left).
    pub timeout: Duration,
    /// Drained when no packet arrived for the withdrawn addresses for this long: the
    /// routers send nothing more (behind ECMP the established connections move to the
    /// other directors, and their entries here stay until the kernel expires them).
    pub quiet: Duration,
    /// Time between two looks at the daemon's status.
    pub poll: Duration,
}

/// `keepalive-d drain-director`: withdraws the director's announcements, then waits until
/// the virtual servers of the withdrawn addresses have no active connection left, or got
/// no packet for `quiet` (asking every `poll`), at most `timeout`. Succeeds when drained;
/// fails on a timeout (saying how many connections are left) or when the daemon refuses.
pub fn drain_director(path: &Path, drain: DirectorDrain) -> ClientOutcome {
    let DirectorDrain {
        timeout,
        quiet,
        poll,
    } = drain;
    let failed = |lines: Vec<String>| ClientOutcome {
        stderr: lines,
        ..ClientOutcome::default()
    };
    let started = std::time::Instant::now();
    let response = match request(path, &Request::DrainDirector, CLIENT_TIMEOUT) {
        Ok(r) if r.ok => r,
        Ok(r) => {
            let mut lines = vec![format!(
                "keepalive-d: {}",
                r.error
                    .as_deref()
                    .unwrap_or("the daemon refused the request")
            )];
            lines.extend(r.errors);
            return failed(lines);
        }
        Err(e) => return failed(vec![format!("keepalive-d: {e}")]),
    };
    let mut stdout = response.message.map(|m| m + "\n").unwrap_or_default();
    let addresses = response.addresses;
    // The packet count, and since when it has not moved.
    let mut last: Option<(u64, std::time::Instant)> = None;
    loop {
        let status = match request(path, &Request::Status, CLIENT_TIMEOUT) {
            Ok(Response {
                ok: true,
                status: Some(v),
                ..
            }) => serde_json::from_value::<StatusReport>(v).ok(),
            _ => None,
        };
        let Some(status) = status else {
            return ClientOutcome {
                stdout,
                stderr: vec!["keepalive-d: drain-director: no status from the daemon".to_owned()],
                success: false,
            };
        };
        let (active, inpkts) = director_traffic(&status, &addresses);
        let now = std::time::Instant::now();
        let since = match last {
            Some((n, t)) if n == inpkts => t,
            _ => now,
        };
        last = Some((inpkts, since));
        let waited = started.elapsed();
        let why = if active == 0 {
            Some("no active connection left".to_owned())
        } else if now.duration_since(since) >= quiet {
            Some(format!(
                "no packet for {:.1}s ({active} connections idle or gone elsewhere)",
                now.duration_since(since).as_secs_f64()
            ))
        } else {
            None
        };
        if let Some(why) = why {
            let _ = writeln!(
                stdout,
                "{why} after {:.1}s: the director can be stopped",
                waited.as_secs_f64()
            );
            return ClientOutcome {
                stdout,
                stderr: Vec::new(),
                success: true,
            };
        }
        if waited >= timeout {
            return ClientOutcome {
                stdout,
                stderr: vec![format!(
                    "keepalive-d: drain-director: {active} active connections left after {}s",
                    timeout.as_secs()
                )],
                success: false,
            };
        }
        std::thread::sleep(poll.min(timeout.saturating_sub(waited)));
    }
}

/// What a client command (`status`, `reload`, `drain`, `undrain`) prints, and whether it
/// succeeded (exit status 0) or not (1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientOutcome {
    /// For stdout.
    pub stdout: String,
    /// For stderr, one line each.
    pub stderr: Vec<String>,
    /// Exit 0.
    pub success: bool,
}

/// Sends `req` to the daemon on `path` and says what to print: the status as text (or as
/// the JSON document with `json`), the reload summary, the drain confirmation, or the
/// errors.
pub fn run_client(path: &Path, req: &Request, json: bool) -> ClientOutcome {
    let failed = |lines: Vec<String>| ClientOutcome {
        stderr: lines,
        ..ClientOutcome::default()
    };
    let response = match request(path, req, CLIENT_TIMEOUT) {
        Ok(r) => r,
        Err(e) => return failed(vec![format!("keepalive-d: {e}")]),
    };
    if !response.ok {
        let mut lines = vec![format!(
            "keepalive-d: {}",
            response
                .error
                .as_deref()
                .unwrap_or("the daemon refused the request")
        )];
        lines.extend(response.errors);
        return failed(lines);
    }
    let stdout = match (req, response.status) {
        (Request::Status, Some(status)) if json => match serde_json::to_string_pretty(&status) {
            Ok(s) => s + "\n",
            Err(e) => return failed(vec![format!("keepalive-d: status: {e}")]),
        },
        (Request::Status, Some(status)) => match serde_json::from_value::<StatusReport>(status) {
            Ok(report) => render_text(&report, unix_seconds(SystemTime::now())),
            Err(e) => {
                return failed(vec![format!(
                    "keepalive-d: status: unexpected document (another version of the daemon?): {e}; \
                     `keepalive-d status --json` prints it as it is"
                )]);
            }
        },
        (Request::Status, None) => {
            return failed(vec![
                "keepalive-d: status: the daemon sent no status".to_owned(),
            ]);
        }
        _ => response.message.map(|m| m + "\n").unwrap_or_default(),
    };
    ClientOutcome {
        stdout,
        stderr: Vec::new(),
        success: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::ProbeOutcome;
    use crate::lvs::{Counters, RealServerStatus, ServiceStatus};
    use crate::vrrp_io::{InstanceStatus, ReceiveError, StateChange};
    use tokio::sync::{mpsc, watch};
    use vrrp_proto::{Reason, State};

    #[test]
    fn requests_parse() {
        assert_eq!(
            parse_request(b"{\"command\":\"status\"}\n"),
            Ok(Request::Status)
        );
        assert_eq!(
            parse_request(b" {\"command\": \"reload\"} "),
            Ok(Request::Reload)
        );
        assert_eq!(
            parse_request(br#"{"command":"drain","service":"web","address":"10.0.0.11:80"}"#),
            Ok(Request::Drain {
                service: "web".into(),
                address: SocketAddr::from(([10, 0, 0, 11], 80)),
            })
        );
        assert_eq!(
            parse_request(br#"{"command":"undrain","service":"web","address":"[2001:db8::1]:80"}"#),
            Ok(Request::Undrain {
                service: "web".into(),
                address: "[2001:db8::1]:80"
                    .parse()
                    .unwrap_or(SocketAddr::from(([0; 4], 0))),
            })
        );
        // What the client sends parses back.
        for r in [
            Request::Status,
            Request::Reload,
            Request::Drain {
                service: "a".into(),
                address: SocketAddr::from(([192, 0, 2, 1], 443)),
            },
        ] {
            let line = serde_json::to_vec(&r).unwrap_or_default();
            assert_eq!(parse_request(&line), Ok(r));
        }
    }

    #[test]
    fn director_drain_requests() {
        assert_eq!(
            parse_request(br#"{"command":"drain_director"}"#),
            Ok(Request::DrainDirector)
        );
        assert_eq!(
            parse_request(br#"{"command":"undrain_director"}"#),
            Ok(Request::UndrainDirector)
        );
        assert!(matches!(
            parse_request(br#"{"command":"drain_director","service":"web"}"#),
            Err(RequestError::Fields { command, .. }) if command == "drain_director"
        ));
        let wire = serde_json::to_string(&Request::DrainDirector).unwrap();
        assert_eq!(wire, r#"{"command":"drain_director"}"#);
        // The answer carries the addresses; older answers without them still parse.
        let r = Response {
            addresses: vec![IpAddr::from([10, 0, 0, 100])],
            ..Response::message("director drained: withdrawn 10.0.0.100")
        };
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(r#""addresses":["10.0.0.100"]"#), "{text}");
        let old: Response = serde_json::from_str(r#"{"ok":true,"message":"x"}"#).unwrap();
        assert!(old.addresses.is_empty());
    }

    #[test]
    fn bad_requests_are_errors() {
        assert!(matches!(
            parse_request(b"status"),
            Err(RequestError::Json(_))
        ));
        assert!(matches!(
            parse_request(b"{\"command\":"),
            Err(RequestError::Json(_))
        ));
        assert_eq!(parse_request(b""), Err(RequestError::Empty));
        assert_eq!(parse_request(b"[1,2]"), Err(RequestError::NoCommand));
        assert_eq!(
            parse_request(b"{\"command\":7}"),
            Err(RequestError::NoCommand)
        );
        assert_eq!(parse_request(&[0xff, 0xfe]), Err(RequestError::NotUtf8));
        assert_eq!(
            parse_request(b"{\"command\":\"explode\"}"),
            Err(RequestError::UnknownCommand("explode".into()))
        );
        let e = parse_request(b"{\"command\":\"status\\n\\u0007\"}");
        assert_eq!(
            e,
            Err(RequestError::UnknownCommand("status\\n\\u{7}".into()))
        );
        assert!(matches!(
            parse_request(br#"{"command":"drain","service":"web"}"#),
            Err(RequestError::Fields { command, .. }) if command == "drain"
        ));
        assert!(matches!(
            parse_request(br#"{"command":"drain","service":"web","address":"nope"}"#),
            Err(RequestError::Fields { .. })
        ));
        assert!(matches!(
            parse_request(br#"{"command":"status","extra":1}"#),
            Err(RequestError::Fields { .. })
        ));
        assert!(matches!(
            parse_request(br#"{"command":"reload","service":"web"}"#),
            Err(RequestError::Fields { .. })
        ));
        assert!(matches!(
            parse_request(br#"{"command":"drain","service":"w","address":"10.0.0.1:80","x":1}"#),
            Err(RequestError::Fields { .. })
        ));
        let long = vec![b' '; MAX_REQUEST_BYTES + 1];
        assert_eq!(parse_request(&long), Err(RequestError::TooLong));
        assert!(
            RequestError::UnknownCommand("x".into())
                .to_string()
                .contains("unknown command `x`")
        );
    }

    fn context(
        lvs: Option<crate::lvs::LvsHandle>,
    ) -> (Context, mpsc::Receiver<crate::daemon::ReloadRequest>) {
        let mut map = StatusMap::new();
        let mut st = InstanceStatus::new(State::Master, 200, None);
        st.transitions = 2;
        st.adverts_sent = 10;
        st.receive_errors.record(ReceiveError::BadTtl);
        st.last_transition = Some(StateChange {
            at: UNIX_EPOCH + Duration::from_millis(1_764_085_252_123),
            state: State::Master,
            reason: Reason::MasterDown,
        });
        map.insert("vi1".into(), st);
        let (_tx, vrrp) = watch::channel(map);
        let (reload, rx) = mpsc::channel(1);
        (
            Context::new(Control {
                config_path: "/etc/k.yaml".into(),
                lvs,
                vrrp,
                reload,
            }),
            rx,
        )
    }

    async fn ask(ctx: &Context, bytes: &[u8]) -> Response {
        let mut input = bytes;
        answer(&mut input, ctx).await
    }

    #[tokio::test(flavor = "current_thread")]
    async fn answers_bad_requests_with_errors() {
        let (ctx, _rx) = context(None);
        let r = ask(&ctx, b"not json\n").await;
        assert!(!r.ok);
        assert!(
            r.error.as_deref().is_some_and(|e| e.contains("not JSON")),
            "{r:?}"
        );
        let r = ask(&ctx, b"{\"command\":\"launch\"}\n").await;
        assert!(
            r.error
                .as_deref()
                .is_some_and(|e| e.contains("unknown command `launch`"))
        );
        let long = vec![b'x'; MAX_REQUEST_BYTES * 3];
        let r = ask(&ctx, &long).await;
        assert!(
            r.error
                .as_deref()
                .is_some_and(|e| e.contains("longer than")),
            "{r:?}"
        );
        let r = ask(&ctx, b"").await;
        assert!(r.error.as_deref().is_some_and(|e| e.contains("empty")));
        // Only the first line counts.
        let r = ask(&ctx, b"{\"command\":\"status\"}\ngarbage").await;
        assert!(r.ok, "{r:?}");
        let r = ask(
            &ctx,
            br#"{"command":"drain","service":"web","address":"10.0.0.1:80"}"#,
        )
        .await;
        assert!(
            r.error
                .as_deref()
                .is_some_and(|e| e.contains("runs no virtual servers")),
            "{r:?}"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_slow_client_times_out() {
        tokio::time::pause();
        let (ctx, _rx) = context(None);
        let (mut client, mut server) = tokio::io::duplex(64);
        let _ = client.write_all(b"{\"command\":").await;
        let r = answer(&mut server, &ctx).await;
        assert_eq!(r.error, Some(RequestError::Timeout.to_string()));
        drop(client);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reload_answers_with_the_summary_or_every_error() {
        let (ctx, mut rx) = context(None);
        let daemon = async {
            let Some(reply) = rx.recv().await else { return };
            let _ = reply.send(Ok("nothing changed".into()));
            let Some(reply) = rx.recv().await else { return };
            let _ = reply.send(Err("k.yaml:3:5: bad\nk.yaml:4:1: worse".into()));
        };
        let client = async {
            let a = ask(&ctx, b"{\"command\":\"reload\"}\n").await;
            let b = ask(&ctx, b"{\"command\":\"reload\"}\n").await;
            (a, b)
        };
        let ((), (a, b)) = tokio::join!(daemon, client);
        assert_eq!(a, Response::message("nothing changed"));
        assert!(!b.ok);
        assert_eq!(b.errors, vec!["k.yaml:3:5: bad", "k.yaml:4:1: worse"]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn status_of_vrrp_only_daemon() {
        let (ctx, _rx) = context(None);
        let r = ask(&ctx, b"{\"command\":\"status\"}").await;
        let report: StatusReport =
            serde_json::from_value(r.status.unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.format, STATUS_FORMAT);
        assert_eq!(report.ipvs, None);
        let vi = &report.vrrp_instances[0];
        assert_eq!(
            (vi.name.as_str(), vi.state.as_str(), vi.priority),
            ("vi1", "master", 200)
        );
        let t = vi
            .last_transition
            .as_ref()
            .map(|t| (t.at.as_str(), t.reason.as_str()));
        assert_eq!(t, Some(("2025-11-25T15:40:52.123Z", "master-down")));
        assert_eq!(vi.receive_errors.get("bad_ttl"), Some(&1));
        assert_eq!(vi.receive_errors.len(), ReceiveError::ALL.len());
        let text = render_text(&report, 1_764_085_252.123 + 75.0);
        assert!(text.contains("master-down"), "{text}");
        assert!(text.contains("(1m15s ago)"), "{text}");
        assert!(text.contains("receive errors: bad_ttl 1"), "{text}");
    }

    #[test]
    fn report_of_virtual_servers_without_kernel() {
        let key: ipvs::ServiceKey = "tcp 192.0.2.10:80"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let lvs = LvsStatus {
            services: vec![ServiceStatus {
                name: "web".into(),
                key,
                quorum: QuorumState::Met,
                sorry_server: None,
                real_servers: vec![RealServerStatus {
                    address: SocketAddr::from(([10, 0, 0, 11], 80)),
                    weight: 100,
                    checked: true,
                    state: ServerState::Up,
                    drained: true,
                    last: Some(ProbeOutcome {
                        ok: true,
                        latency: Duration::from_micros(1500),
                        detail: "connected".into(),
                    }),
                    probes: Some(crate::health::ProbeStats {
                        success: 41,
                        failure: 2,
                        ..Default::default()
                    }),
                    since: None,
                }],
            }],
            counters: Counters {
                reconciles: 3,
                writes: 4,
                failed_writes: 0,
                drift_repairs: 1,
            },
            draining: Vec::new(),
            announced: Vec::new(),
            director_drained: false,
        };
        let snap = Snapshot {
            has_lvs: true,
            lvs: Some(lvs),
            kernel: Some(Err("no IPVS".into())),
            ..Snapshot::default()
        };
        let info = DaemonInfo {
            version: "0".into(),
            pid: 1,
            config: "c".into(),
        };
        let r = StatusReport::build(&snap, info);
        let vs = &r.virtual_servers[0];
        assert_eq!(
            (vs.service.as_str(), vs.quorum.as_str(), vs.in_kernel),
            ("tcp 192.0.2.10:80", "met", false)
        );
        let rs = &vs.real_servers[0];
        assert_eq!(
            (rs.health.as_str(), rs.weight, rs.kernel_weight, rs.drained),
            ("up", 100, None, true)
        );
        assert_eq!(
            rs.last_check.as_ref().map(|c| c.latency_seconds),
            Some(0.0015)
        );
        assert_eq!(
            rs.probes,
            Some(ProbeCountReport {
                success: 41,
                failure: 2
            })
        );
        let ipvs = r.ipvs.clone().unwrap_or_else(|| panic!("no ipvs"));
        assert_eq!((ipvs.writes, ipvs.drift_repairs), (4, 1));
        assert_eq!(ipvs.kernel_error.as_deref(), Some("no IPVS"));
        let text = render_text(&r, 0.0);
        assert!(text.contains("up*"), "{text}");
        assert!(text.contains("ok in 1.5ms: connected"), "{text}");
        assert!(text.contains("NOT in the kernel"), "{text}");
        // The JSON document round-trips.
        let json = serde_json::to_string(&r).unwrap_or_default();
        let back: StatusReport = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, r);
    }

    #[test]
    fn times_print_as_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(4_102_444_799_999)),
            "2099-12-31T23:59:59.999Z"
        );
        assert_eq!(age(59.9), "59s");
        assert_eq!(age(3601.0), "1h0m");
        assert_eq!(age(-1.0), "just now");
        assert_eq!(latency(0.0004), "400µs");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn socket_binds_refuses_a_live_one_and_replaces_a_stale_one() {
        let dir = std::env::temp_dir().join(format!("kad-ctl-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub/control.sock");
        let sock = ControlSocket::bind(&path).unwrap_or_else(|e| panic!("{e}"));
        let mode = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0)
        };
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.join("sub")), 0o700);
        let (ctx, _rx) = context(None);
        sock.spawn(Arc::new(ctx)).unwrap_or_else(|e| panic!("{e}"));
        // A second daemon is refused while the first answers.
        let again = tokio::task::spawn_blocking({
            let path = path.clone();
            move || ControlSocket::bind(&path).map(|_| ())
        })
        .await;
        assert!(
            matches!(again, Ok(Err(ControlError::InUse { .. }))),
            "{again:?}"
        );
        // A client gets an answer.
        let reply = tokio::task::spawn_blocking({
            let path = path.clone();
            move || request(&path, &Request::Status, Duration::from_secs(5))
        })
        .await;
        let reply = match reply {
            Ok(Ok(r)) => r,
            other => panic!("{other:?}"),
        };
        assert!(reply.ok && reply.status.is_some(), "{reply:?}");
        // A stale socket (no listener) is replaced.
        drop(sock);
        assert!(!path.exists(), "socket file left behind");
        let stale = std::os::unix::net::UnixListener::bind(&path);
        drop(stale);
        assert!(path.exists());
        let sock = ControlSocket::bind(&path);
        assert!(sock.is_ok(), "{sock:?}");
        drop(sock);
        // No daemon: a clear error.
        let e = request(&path, &Request::Status, Duration::from_secs(1));
        let e = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            e.starts_with("no keepalive-d running (control socket "),
            "{e}"
        );
        // A file that is not a socket is left alone.
        let _ = std::fs::write(&path, "x");
        assert!(matches!(
            ControlSocket::bind(&path),
            Err(ControlError::NotASocket { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
