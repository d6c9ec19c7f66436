//! Prometheus metrics over HTTP (`metrics: { listen: 127.0.0.1:9595 }`).
//!
//! Every scrape takes one [`Snapshot`] of the running daemon (the same as
//! `keepalive-d status`: the VRRP instances, the virtual-server program and the kernel's
//! IPVS table with its counters, read at that moment) and encodes it with
//! `prometheus-client` in the OpenMetrics text format. Nothing is sampled in between, so a
//! scrape costs one IPVS dump and nothing is kept per series. Every metric is listed in
//! `METRICS.md` next to the crate's `Cargo.toml`.
//!
//! # HTTP
//!
//! The endpoint is a small HTTP/1.1 responder written on tokio rather than hyper's server:
//! hyper is built for the health checks as a client only, and its server would add the
//! `server` feature, hyper-util's server glue and a body type for one read-only endpoint.
//! The responder reads one request head (at most [`MAX_HEAD_BYTES`], within
//! [`IO_TIMEOUT`]), answers `GET /metrics` (and `HEAD`), `GET /` with a pointer, 404, 405
//! or 400, always with `Content-Length` and `Connection: close`, and closes the
//! connection. At most [`MAX_CONNECTIONS`] are served at once.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use vrrp_proto::State;

use crate::control::{Context, Snapshot, quorum_name, server_state_name, unix_seconds};
use crate::health::{PROBE_BUCKETS, ProbeStats};
use crate::lvs::desired::{QuorumState, ServerState};

/// Longest request head accepted, in bytes.
pub const MAX_HEAD_BYTES: usize = 8192;

/// Time allowed to read a request head, and to write the response.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Time allowed to take the snapshot of a scrape.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once; more wait for their turn.
pub const MAX_CONNECTIONS: usize = 8;

/// The `Content-Type` of `/metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Encodes `snap` in the OpenMetrics text format.
pub fn encode(snap: &Snapshot) -> Result<String, fmt::Error> {
    let mut registry = Registry::with_prefix("keepalive_d");
    registry.register_collector(Box::new(SnapshotCollector { snap: snap.clone() }));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

/// One scrape's data, encoded by [`Collector::encode`].
#[derive(Debug)]
struct SnapshotCollector {
    snap: Snapshot,
}

type Labels = Vec<(&'static str, String)>;

/// A histogram whose buckets are already counted.
#[derive(Debug)]
struct ConstHistogram {
    sum: f64,
    count: u64,
    /// (upper bound, count in this bucket); `f64::MAX` for `+Inf`.
    buckets: Vec<(f64, u64)>,
}

impl EncodeMetric for ConstHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Writes one metric family: its descriptor, then one sample per row.
fn family<S: EncodeLabelSet, M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    rows: &[(S, M)],
) -> fmt::Result {
    let mut me = enc.encode_descriptor(name, help, None, metric_type)?;
    for (labels, metric) in rows {
        metric.encode(me.encode_family(labels)?)?;
    }
    Ok(())
}

/// Writes one metric without labels.
fn scalar<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: &M,
) -> fmt::Result {
    let me = enc.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(me)
}

fn counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: Vec<(Labels, u64)>,
) -> fmt::Result {
    let rows: Vec<(Labels, ConstCounter<u64>)> = rows
        .into_iter()
        .map(|(l, v)| (l, ConstCounter::new(v)))
        .collect();
    family(enc, name, help, MetricType::Counter, &rows)
}

fn gauges(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: Vec<(Labels, i64)>,
) -> fmt::Result {
    let rows: Vec<(Labels, ConstGauge<i64>)> = rows
        .into_iter()
        .map(|(l, v)| (l, ConstGauge::new(v)))
        .collect();
    family(enc, name, help, MetricType::Gauge, &rows)
}

fn gauges_f64(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: Vec<(Labels, f64)>,
) -> fmt::Result {
    let rows: Vec<(Labels, ConstGauge<f64>)> = rows
        .into_iter()
        .map(|(l, v)| (l, ConstGauge::new(v)))
        .collect();
    family(enc, name, help, MetricType::Gauge, &rows)
}

fn gauge_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

const STATES: [State; 4] = [
    State::Initialize,
    State::Backup,
    State::Master,
    State::Fault,
];
const HEALTH: [ServerState; 3] = [ServerState::Up, ServerState::Down, ServerState::Pending];
const QUORUM: [QuorumState; 3] = [QuorumState::Unknown, QuorumState::Met, QuorumState::Lost];

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        let snap = &self.snap;
        gauges(
            &mut enc,
            "build_info",
            "Always 1; the version of keepalive-d in the label.",
            vec![(vec![("version", env!("CARGO_PKG_VERSION").to_owned())], 1)],
        )?;
        self.vrrp(&mut enc)?;
        if snap.has_lvs {
            self.virtual_servers(&mut enc)?;
            self.probes(&mut enc)?;
            self.kernel(&mut enc)?;
            let c = snap.lvs.as_ref().map(|l| l.counters).unwrap_or_default();
            for (name, help, v) in [
                (
                    "ipvs_reconciles",
                    "Reconciles run (each one dump of the kernel table and at most one write batch).",
                    c.reconciles,
                ),
                (
                    "ipvs_writes",
                    "IPVS write operations sent to the kernel.",
                    c.writes,
                ),
                (
                    "ipvs_failed_writes",
                    "IPVS write operations the kernel refused.",
                    c.failed_writes,
                ),
                (
                    "ipvs_drift_repairs",
                    "Periodic reconciles that found the kernel table changed behind the daemon's back and repaired it.",
                    c.drift_repairs,
                ),
            ] {
                scalar(&mut enc, name, help, &ConstCounter::new(v))?;
            }
            self.announcements(&mut enc)?;
        }
        Ok(())
    }
}

impl SnapshotCollector {
    /// `announce: bgp`: the addresses whose routes are installed now, and the drain.
    fn announcements(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let (announced, drained) = self.snap.lvs.as_ref().map_or((&[][..], false), |l| {
            (l.announced.as_slice(), l.director_drained)
        });
        gauges(
            enc,
            "announced",
            "1 for each virtual IP whose route this director installs now for BIRD to announce (`announce: bgp`); an address that is not announced has no series.",
            announced
                .iter()
                .map(|a| (vec![("address", a.to_string())], 1))
                .collect(),
        )?;
        scalar(
            enc,
            "director_drained",
            "1 while the director is drained (`keepalive-d drain-director`): it announces nothing.",
            &ConstGauge::new(i64::from(drained)),
        )
    }

    fn vrrp(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let vrrp = &self.snap.vrrp;
        let inst = |name: &String| -> Labels { vec![("vrrp_instance", name.clone())] };
        gauges(
            enc,
            "vrrp_state",
            "1 for the state the VRRP instance is in, 0 for the others (initialize: stopped).",
            vrrp.iter()
                .flat_map(|(name, st)| {
                    STATES.iter().map(move |s| {
                        (
                            vec![
                                ("vrrp_instance", name.clone()),
                                ("state", s.name().to_owned()),
                            ],
                            i64::from(st.state == *s),
                        )
                    })
                })
                .collect(),
        )?;
        gauges(
            enc,
            "vrrp_priority",
            "The priority the instance advertises (track scripts included).",
            vrrp.iter()
                .map(|(n, st)| (inst(n), i64::from(st.priority)))
                .collect(),
        )?;
        counters(
            enc,
            "vrrp_transitions",
            "State changes of the instance since it started (entering backup at start-up counts).",
            vrrp.iter()
                .map(|(n, st)| (inst(n), st.transitions))
                .collect(),
        )?;
        gauges_f64(
            enc,
            "vrrp_last_transition_timestamp_seconds",
            "When the instance last changed state (Unix time).",
            vrrp.iter()
                .filter_map(|(n, st)| st.last_transition.map(|t| (inst(n), unix_seconds(t.at))))
                .collect(),
        )?;
        counters(
            enc,
            "vrrp_adverts_sent",
            "Adverts sent (one per destination: the multicast group or each unicast peer).",
            vrrp.iter()
                .map(|(n, st)| (inst(n), st.adverts_sent))
                .collect(),
        )?;
        counters(
            enc,
            "vrrp_adverts_received",
            "Adverts of the instance's VRID accepted from other routers.",
            vrrp.iter()
                .map(|(n, st)| (inst(n), st.adverts_received))
                .collect(),
        )?;
        counters(
            enc,
            "vrrp_receive_errors",
            "Datagrams dropped on receive, by reason.",
            vrrp.iter()
                .flat_map(|(n, st)| {
                    st.receive_errors.iter().map(move |(r, c)| {
                        (
                            vec![
                                ("vrrp_instance", n.clone()),
                                ("reason", r.name().to_owned()),
                            ],
                            c,
                        )
                    })
                })
                .collect(),
        )
    }

    fn virtual_servers(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let services = self
            .snap
            .lvs
            .as_ref()
            .map_or(&[][..], |l| l.services.as_slice());
        let observed = self.snap.observed();
        let server = |svc: &str, addr: SocketAddr| -> Labels {
            vec![("service", svc.to_owned()), ("server", addr.to_string())]
        };
        gauges(
            enc,
            "virtual_server_quorum",
            "1 for the quorum state of the virtual server (unknown, met, lost), 0 for the others.",
            services
                .iter()
                .flat_map(|s| {
                    QUORUM.iter().map(move |q| {
                        (
                            vec![
                                ("service", s.name.clone()),
                                ("state", quorum_name(*q).to_owned()),
                            ],
                            i64::from(s.quorum == *q),
                        )
                    })
                })
                .collect(),
        )?;
        gauges(
            enc,
            "real_servers",
            "Real servers of the virtual server by health (up, down, pending).",
            services
                .iter()
                .flat_map(|s| {
                    HEALTH.iter().map(move |h| {
                        let n = s.real_servers.iter().filter(|r| r.state == *h).count();
                        (
                            vec![
                                ("service", s.name.clone()),
                                ("state", server_state_name(*h).to_owned()),
                            ],
                            i64::try_from(n).unwrap_or(i64::MAX),
                        )
                    })
                })
                .collect(),
        )?;
        let each =
            |f: &dyn Fn(&crate::lvs::RealServerStatus) -> Option<i64>| -> Vec<(Labels, i64)> {
                services
                    .iter()
                    .flat_map(|s| {
                        s.real_servers
                            .iter()
                            .filter_map(|r| f(r).map(|v| (server(&s.name, r.address), v)))
                            .collect::<Vec<_>>()
                    })
                    .collect()
            };
        gauges(
            enc,
            "real_server_up",
            "1 while the real server is up (passing its check, or without one), 0 when down or not probed yet.",
            each(&|r| Some(i64::from(r.state == ServerState::Up))),
        )?;
        gauges(
            enc,
            "real_server_drained",
            "1 while the real server is drained by hand (keepalive-d drain).",
            each(&|r| Some(i64::from(r.drained))),
        )?;
        gauges(
            enc,
            "real_server_weight",
            "The real server's weight in the configuration.",
            each(&|r| Some(i64::from(r.weight))),
        )?;
        gauges(
            enc,
            "real_server_kernel_weight",
            "The real server's weight in the kernel's IPVS table (absent when it is not in the table).",
            services
                .iter()
                .flat_map(|s| {
                    s.real_servers.iter().filter_map(move |r| {
                        let w = observed?
                            .table()
                            .service(&s.key)?
                            .destination(r.address)?
                            .weight();
                        Some((server(&s.name, r.address), i64::from(w)))
                    })
                })
                .collect(),
        )?;
        gauges(
            enc,
            "check_last_success",
            "1 if the real server's last probe succeeded, 0 if it failed (absent before the first probe).",
            each(&|r| r.last.as_ref().map(|o| i64::from(o.ok))),
        )?;
        gauges_f64(
            enc,
            "check_last_duration_seconds",
            "How long the real server's last probe took.",
            services
                .iter()
                .flat_map(|s| {
                    s.real_servers.iter().filter_map(|r| {
                        r.last
                            .as_ref()
                            .map(|o| (server(&s.name, r.address), o.latency.as_secs_f64()))
                    })
                })
                .collect(),
        )
    }

    fn probes(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let services = self
            .snap
            .lvs
            .as_ref()
            .map_or(&[][..], |l| l.services.as_slice());
        // (labels, stats) of every checked real server.
        let probed: Vec<(Labels, &ProbeStats)> = services
            .iter()
            .flat_map(|s| {
                s.real_servers.iter().filter_map(|r| {
                    let p = r.probes.as_ref()?;
                    Some((
                        vec![
                            ("service", s.name.clone()),
                            ("server", r.address.to_string()),
                        ],
                        p,
                    ))
                })
            })
            .collect();
        counters(
            enc,
            "check_probes",
            "Health-check probes run, by result (success, failure).",
            probed
                .iter()
                .flat_map(|(l, p)| {
                    [("success", p.success), ("failure", p.failure)].map(|(res, n)| {
                        let mut l = l.clone();
                        l.push(("result", res.to_owned()));
                        (l, n)
                    })
                })
                .collect(),
        )?;
        let rows: Vec<(Labels, ConstHistogram)> = probed
            .into_iter()
            .map(|(l, p)| {
                let buckets = PROBE_BUCKETS
                    .iter()
                    .map(Duration::as_secs_f64)
                    .chain(std::iter::once(f64::MAX))
                    .zip(p.buckets.iter().copied())
                    .collect();
                (
                    l,
                    ConstHistogram {
                        sum: p.latency_sum().as_secs_f64(),
                        count: p.count(),
                        buckets,
                    },
                )
            })
            .collect();
        family(
            enc,
            "check_duration_seconds",
            "How long health-check probes took (a timed-out probe counts its timeout).",
            MetricType::Histogram,
            &rows,
        )
    }

    fn kernel(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let observed = self.snap.observed();
        scalar(
            enc,
            "ipvs_up",
            "1 if the kernel's IPVS table could be read for this scrape.",
            &ConstGauge::new(i64::from(observed.is_some())),
        )?;
        let services = self
            .snap
            .lvs
            .as_ref()
            .map_or(&[][..], |l| l.services.as_slice());
        // (labels, stats, active, inactive) of every service and destination the kernel
        // has for the configured virtual servers.
        let mut svc_rows = Vec::new();
        let mut dest_rows = Vec::new();
        if let Some(o) = observed {
            for s in services {
                let Some(stats) = o.service_stats(&s.key) else {
                    continue;
                };
                svc_rows.push((vec![("service", s.name.clone())], stats.stats));
                for (addr, d) in &stats.destinations {
                    dest_rows.push((
                        vec![("service", s.name.clone()), ("server", addr.to_string())],
                        d.stats,
                        d.active_conns,
                        d.inactive_conns,
                    ));
                }
            }
        }
        let dir = |l: &Labels, d: &str| -> Labels {
            let mut l = l.clone();
            l.push(("direction", d.to_owned()));
            l
        };
        for (what, rows) in [
            (
                "service",
                svc_rows
                    .clone()
                    .into_iter()
                    .collect::<Vec<(Labels, ipvs::Stats)>>(),
            ),
            (
                "destination",
                dest_rows
                    .iter()
                    .map(|(l, s, _, _)| (l.clone(), *s))
                    .collect::<Vec<(Labels, ipvs::Stats)>>(),
            ),
        ] {
            counters(
                enc,
                &format!("ipvs_{what}_connections"),
                &format!("Connections the kernel scheduled to the {what} (IPVS counter)."),
                rows.iter().map(|(l, s)| (l.clone(), s.conns)).collect(),
            )?;
            counters(
                enc,
                &format!("ipvs_{what}_packets"),
                &format!("Packets through the {what}, by direction (in: client to server)."),
                rows.iter()
                    .flat_map(|(l, s)| [(dir(l, "in"), s.inpkts), (dir(l, "out"), s.outpkts)])
                    .collect(),
            )?;
            counters(
                enc,
                &format!("ipvs_{what}_bytes"),
                &format!("Bytes through the {what}, by direction."),
                rows.iter()
                    .flat_map(|(l, s)| [(dir(l, "in"), s.inbytes), (dir(l, "out"), s.outbytes)])
                    .collect(),
            )?;
            gauges(
                enc,
                &format!("ipvs_{what}_connections_per_second"),
                &format!("The kernel's estimate of new connections per second to the {what}."),
                rows.iter()
                    .map(|(l, s)| (l.clone(), gauge_of(s.cps)))
                    .collect(),
            )?;
            gauges(
                enc,
                &format!("ipvs_{what}_packets_per_second"),
                &format!("The kernel's estimate of packets per second through the {what}."),
                rows.iter()
                    .flat_map(|(l, s)| {
                        [
                            (dir(l, "in"), gauge_of(s.inpps)),
                            (dir(l, "out"), gauge_of(s.outpps)),
                        ]
                    })
                    .collect(),
            )?;
            gauges(
                enc,
                &format!("ipvs_{what}_bytes_per_second"),
                &format!("The kernel's estimate of bytes per second through the {what}."),
                rows.iter()
                    .flat_map(|(l, s)| {
                        [
                            (dir(l, "in"), gauge_of(s.inbps)),
                            (dir(l, "out"), gauge_of(s.outbps)),
                        ]
                    })
                    .collect(),
            )?;
        }
        gauges(
            enc,
            "ipvs_destination_active_connections",
            "Active connections of the destination (ipvsadm ActiveConn).",
            dest_rows
                .iter()
                .map(|(l, _, a, _)| (l.clone(), i64::from(*a)))
                .collect(),
        )?;
        gauges(
            enc,
            "ipvs_destination_inactive_connections",
            "Inactive connections of the destination (ipvsadm InActConn).",
            dest_rows
                .iter()
                .map(|(l, _, _, i)| (l.clone(), i64::from(*i)))
                .collect(),
        )
    }
}

// ---- HTTP -------------------------------------------------------------------------------

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address could not be bound.
    #[error("metrics endpoint {addr}: cannot listen: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
    /// The listener could not be handed to the runtime.
    #[error("metrics endpoint {addr}: {op}: {source}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// What was being done.
        op: &'static str,
        /// The cause.
        source: io::Error,
    },
}

/// The bound metrics endpoint, before it serves.
#[derive(Debug)]
pub struct MetricsListener {
    listener: std::net::TcpListener,
    addr: SocketAddr,
}

impl MetricsListener {
    /// Binds `addr` (so that `run` fails at once when it is taken).
    pub fn bind(addr: SocketAddr) -> Result<Self, MetricsError> {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|source| MetricsError::Bind { addr, source })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| MetricsError::Io {
                addr,
                op: "set non-blocking",
                source,
            })?;
        let addr = listener.local_addr().unwrap_or(addr);
        Ok(MetricsListener { listener, addr })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts serving on the current tokio runtime (until the runtime stops).
    pub fn spawn(self, ctx: Arc<Context>) -> Result<(), MetricsError> {
        let addr = self.addr;
        let listener = tokio::net::TcpListener::from_std(self.listener).map_err(|source| {
            MetricsError::Io {
                addr,
                op: "register",
                source,
            }
        })?;
        tracing::info!(%addr, "metrics endpoint listening (GET /metrics)");
        tokio::spawn(serve(listener, ctx));
        Ok(())
    }
}

async fn serve(listener: tokio::net::TcpListener, ctx: Arc<Context>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("metrics endpoint: accept: {e}");
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

/// A request the responder cannot serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The head is longer than [`MAX_HEAD_BYTES`].
    #[error("request head longer than {MAX_HEAD_BYTES} bytes")]
    TooLong,
    /// The head did not arrive in time.
    #[error("no complete request head within {}s", IO_TIMEOUT.as_secs())]
    Timeout,
    /// The request line is not `METHOD TARGET HTTP/x.y`.
    #[error("malformed request line")]
    Malformed,
}

/// The method and path (without the query) of a request head.
pub fn parse_head(head: &[u8]) -> Result<(&str, &str), HttpError> {
    let line_end = head
        .iter()
        .position(|b| *b == b'\n')
        .ok_or(HttpError::Malformed)?;
    let line = head.get(..line_end).ok_or(HttpError::Malformed)?;
    let line = std::str::from_utf8(line)
        .map_err(|_| HttpError::Malformed)?
        .trim_end_matches('\r');
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::Malformed);
    };
    if method.is_empty() || !version.starts_with("HTTP/1.") {
        return Err(HttpError::Malformed);
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    Ok((method, path))
}

/// Reads a request head (up to the blank line) of at most [`MAX_HEAD_BYTES`].
async fn read_head<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> Result<Vec<u8>, HttpError> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = r.read(&mut chunk).await.map_err(|_| HttpError::Malformed)?;
        if n == 0 {
            return Err(HttpError::Malformed);
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            return Ok(buf);
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(HttpError::TooLong);
        }
    }
}

/// A response: status line, content type, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// `200 OK`, `404 Not Found`, ...
    pub status: &'static str,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
    /// Send the headers only (`HEAD`).
    pub head_only: bool,
}

impl HttpResponse {
    fn text(status: &'static str, body: impl Into<String>) -> Self {
        HttpResponse {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            head_only: false,
        }
    }

    /// The bytes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        if self.status.starts_with("405") {
            out.push_str("Allow: GET, HEAD\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if !self.head_only {
            bytes.extend_from_slice(self.body.as_bytes());
        }
        bytes
    }
}

/// The response to one request read from `stream`.
pub async fn respond<R: tokio::io::AsyncRead + Unpin>(
    stream: &mut R,
    ctx: &Context,
) -> HttpResponse {
    let head = match tokio::time::timeout(IO_TIMEOUT, read_head(stream)).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => return HttpResponse::text("400 Bad Request", format!("{e}\n")),
        Err(_) => {
            return HttpResponse::text("408 Request Timeout", format!("{}\n", HttpError::Timeout));
        }
    };
    let (method, path) = match parse_head(&head) {
        Ok(mp) => mp,
        Err(e) => return HttpResponse::text("400 Bad Request", format!("{e}\n")),
    };
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return HttpResponse::text("405 Method Not Allowed", "only GET and HEAD\n");
    }
    let mut response = match path {
        "/metrics" => match tokio::time::timeout(SCRAPE_TIMEOUT, ctx.snapshot()).await {
            Ok(snap) => match encode(&snap) {
                Ok(body) => HttpResponse {
                    status: "200 OK",
                    content_type: CONTENT_TYPE,
                    body,
                    head_only: false,
                },
                Err(e) => HttpResponse::text("500 Internal Server Error", format!("encode: {e}\n")),
            },
            Err(_) => HttpResponse::text(
                "503 Service Unavailable",
                "the daemon did not answer in time\n",
            ),
        },
        "/" => HttpResponse::text("200 OK", "keepalive-d: metrics at /metrics\n"),
        _ => HttpResponse::text("404 Not Found", "not found: metrics at /metrics\n"),
    };
    response.head_only = head_only;
    response
}

async fn connection(mut stream: tokio::net::TcpStream, ctx: &Context) {
    let response = respond(&mut stream, ctx).await;
    let bytes = response.to_bytes();
    let write = async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    };
    match tokio::time::timeout(IO_TIMEOUT, write).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!("metrics endpoint: write: {e}"),
        Err(_) => tracing::debug!("metrics endpoint: client too slow to read the response"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::ProbeOutcome;
    use crate::lvs::{Counters, LvsStatus, RealServerStatus, ServiceStatus};
    use crate::vrrp_io::{InstanceStatus, ReceiveError, StatusMap};

    fn snapshot() -> Snapshot {
        let mut vrrp = StatusMap::new();
        let mut st = InstanceStatus::new(State::Master, 150, None);
        st.transitions = 2;
        st.adverts_sent = 42;
        st.receive_errors.record(ReceiveError::BadTtl);
        vrrp.insert("vi1".into(), st);
        let key: ipvs::ServiceKey = "tcp 192.0.2.10:80"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        // Three probes of 10.0.0.1 (2 ms, 30 ms, a 1 s failure); none yet of 10.0.0.2.
        let mut probes = ProbeStats::default();
        for (ok, ms) in [(true, 2), (true, 30), (false, 1000)] {
            probes.observe(ok, Duration::from_millis(ms));
        }
        let rs = |a: [u8; 4], state, last: Option<ProbeOutcome>| RealServerStatus {
            address: SocketAddr::from((a, 80)),
            weight: 10,
            checked: true,
            state,
            drained: false,
            probes: Some(if last.is_some() {
                probes
            } else {
                ProbeStats::default()
            }),
            last,
            since: None,
        };
        Snapshot {
            vrrp,
            has_lvs: true,
            lvs: Some(LvsStatus {
                services: vec![ServiceStatus {
                    name: "web".into(),
                    key,
                    quorum: QuorumState::Met,
                    sorry_server: None,
                    real_servers: vec![
                        rs(
                            [10, 0, 0, 1],
                            ServerState::Up,
                            Some(ProbeOutcome {
                                ok: true,
                                latency: Duration::from_millis(2),
                                detail: "ok".into(),
                            }),
                        ),
                        rs([10, 0, 0, 2], ServerState::Down, None),
                        RealServerStatus {
                            checked: false,
                            probes: None,
                            ..rs([10, 0, 0, 3], ServerState::Up, None)
                        },
                    ],
                }],
                counters: Counters {
                    reconciles: 5,
                    writes: 7,
                    failed_writes: 1,
                    drift_repairs: 2,
                },
                draining: Vec::new(),
                announced: vec![std::net::IpAddr::from([192, 0, 2, 1])],
                director_drained: false,
            }),
            kernel: Some(Err("no IPVS here".into())),
            taken: None,
        }
    }

    fn has(text: &str, line: &str) -> bool {
        text.lines().any(|l| l == line)
    }

    #[test]
    fn encodes_vrrp_virtual_servers_and_counters() {
        let text = encode(&snapshot()).unwrap_or_else(|e| panic!("{e}"));
        for line in [
            "# TYPE keepalive_d_vrrp_state gauge",
            "keepalive_d_vrrp_state{vrrp_instance=\"vi1\",state=\"master\"} 1",
            "keepalive_d_vrrp_state{vrrp_instance=\"vi1\",state=\"backup\"} 0",
            "keepalive_d_vrrp_priority{vrrp_instance=\"vi1\"} 150",
            "# TYPE keepalive_d_vrrp_transitions counter",
            "keepalive_d_vrrp_transitions_total{vrrp_instance=\"vi1\"} 2",
            "keepalive_d_vrrp_adverts_sent_total{vrrp_instance=\"vi1\"} 42",
            "keepalive_d_vrrp_adverts_received_total{vrrp_instance=\"vi1\"} 0",
            "keepalive_d_vrrp_receive_errors_total{vrrp_instance=\"vi1\",reason=\"bad_ttl\"} 1",
            "keepalive_d_vrrp_receive_errors_total{vrrp_instance=\"vi1\",reason=\"auth_mismatch\"} 0",
            "keepalive_d_virtual_server_quorum{service=\"web\",state=\"met\"} 1",
            "keepalive_d_real_servers{service=\"web\",state=\"up\"} 2",
            "keepalive_d_real_servers{service=\"web\",state=\"down\"} 1",
            "keepalive_d_real_server_up{service=\"web\",server=\"10.0.0.1:80\"} 1",
            "keepalive_d_real_server_up{service=\"web\",server=\"10.0.0.2:80\"} 0",
            "keepalive_d_real_server_weight{service=\"web\",server=\"10.0.0.2:80\"} 10",
            "keepalive_d_check_last_success{service=\"web\",server=\"10.0.0.1:80\"} 1",
            "keepalive_d_check_last_duration_seconds{service=\"web\",server=\"10.0.0.1:80\"} 0.002",
            "keepalive_d_check_probes_total{service=\"web\",server=\"10.0.0.1:80\",result=\"success\"} 2",
            "keepalive_d_check_probes_total{service=\"web\",server=\"10.0.0.1:80\",result=\"failure\"} 1",
            "keepalive_d_check_duration_seconds_count{service=\"web\",server=\"10.0.0.1:80\"} 3",
            "keepalive_d_check_duration_seconds_sum{service=\"web\",server=\"10.0.0.1:80\"} 1.032",
            "keepalive_d_check_duration_seconds_bucket{le=\"0.0005\",service=\"web\",server=\"10.0.0.1:80\"} 0",
            "keepalive_d_check_duration_seconds_bucket{le=\"0.0025\",service=\"web\",server=\"10.0.0.1:80\"} 1",
            "keepalive_d_check_duration_seconds_bucket{le=\"0.05\",service=\"web\",server=\"10.0.0.1:80\"} 2",
            "keepalive_d_check_duration_seconds_bucket{le=\"1.0\",service=\"web\",server=\"10.0.0.1:80\"} 3",
            "keepalive_d_check_duration_seconds_bucket{le=\"+Inf\",service=\"web\",server=\"10.0.0.1:80\"} 3",
            // A checked server not probed yet: zero counts, present from the start.
            "keepalive_d_check_probes_total{service=\"web\",server=\"10.0.0.2:80\",result=\"success\"} 0",
            "keepalive_d_check_probes_total{service=\"web\",server=\"10.0.0.2:80\",result=\"failure\"} 0",
            "keepalive_d_check_duration_seconds_count{service=\"web\",server=\"10.0.0.2:80\"} 0",
            "keepalive_d_ipvs_up 0",
            "keepalive_d_ipvs_reconciles_total 5",
            "keepalive_d_ipvs_writes_total 7",
            "keepalive_d_ipvs_failed_writes_total 1",
            "keepalive_d_ipvs_drift_repairs_total 2",
            "keepalive_d_announced{address=\"192.0.2.1\"} 1",
            "keepalive_d_director_drained 0",
            "# EOF",
        ] {
            assert!(has(&text, line), "missing `{line}` in:\n{text}");
        }
        // Not in the kernel: no kernel weight, no IPVS counters.
        assert!(
            !text.contains("keepalive_d_real_server_kernel_weight{"),
            "{text}"
        );
        assert!(
            !text.contains("keepalive_d_ipvs_service_connections_total{"),
            "{text}"
        );
        // No check has run on 10.0.0.2 yet.
        assert!(!text.contains("check_last_success{service=\"web\",server=\"10.0.0.2:80\"}"));
        // 10.0.0.3 has no check: no probe series.
        assert!(!text.contains("server=\"10.0.0.3:80\",result="), "{text}");
        assert!(
            !text.contains("check_duration_seconds_count{service=\"web\",server=\"10.0.0.3:80\"}"),
            "{text}"
        );
    }

    #[test]
    fn vrrp_only_has_no_ipvs_metrics() {
        let mut snap = snapshot();
        snap.has_lvs = false;
        snap.lvs = None;
        snap.kernel = None;
        let text = encode(&snap).unwrap_or_else(|e| panic!("{e}"));
        assert!(text.contains("keepalive_d_vrrp_state{"), "{text}");
        assert!(!text.contains("ipvs"), "{text}");
        assert!(!text.contains("real_server"), "{text}");
    }

    #[test]
    fn request_heads() {
        assert_eq!(
            parse_head(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(("GET", "/metrics"))
        );
        assert_eq!(
            parse_head(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Ok(("HEAD", "/metrics"))
        );
        assert_eq!(
            parse_head(b"GET /metrics\r\n\r\n"),
            Err(HttpError::Malformed)
        );
        assert_eq!(
            parse_head(b"GET / SPDY/3\r\n\r\n"),
            Err(HttpError::Malformed)
        );
        assert_eq!(
            parse_head(&[0xff, b' ', b'/', b'\n']),
            Err(HttpError::Malformed)
        );
        assert_eq!(parse_head(b"no newline"), Err(HttpError::Malformed));
    }

    fn context() -> Context {
        let mut map = StatusMap::new();
        map.insert("vi1".into(), InstanceStatus::new(State::Backup, 100, None));
        let (_tx, vrrp) = tokio::sync::watch::channel(map);
        let (reload, _rx) = tokio::sync::mpsc::channel(1);
        Context::new(crate::daemon::Control {
            config_path: "/k.yaml".into(),
            lvs: None,
            vrrp,
            reload,
        })
    }

    #[tokio::test(flavor = "current_thread")]
    async fn responds_to_scrapes_and_refuses_the_rest() {
        let ctx = context();
        let ask = |req: &'static [u8]| {
            let ctx = &ctx;
            async move {
                let mut r = req;
                respond(&mut r, ctx).await
            }
        };
        let r = ask(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
        assert_eq!((r.status, r.content_type), ("200 OK", CONTENT_TYPE));
        assert!(
            r.body
                .contains("keepalive_d_vrrp_state{vrrp_instance=\"vi1\",state=\"backup\"} 1")
        );
        let bytes = String::from_utf8(r.to_bytes()).unwrap_or_default();
        assert!(bytes.starts_with("HTTP/1.1 200 OK\r\n"), "{bytes}");
        assert!(bytes.contains(&format!("Content-Length: {}\r\n", r.body.len())));
        let r = ask(b"HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert!(r.head_only);
        assert!(
            String::from_utf8(r.to_bytes())
                .unwrap_or_default()
                .ends_with("\r\n\r\n")
        );
        assert_eq!(
            ask(b"GET /nope HTTP/1.1\r\n\r\n").await.status,
            "404 Not Found"
        );
        let r = ask(b"POST /metrics HTTP/1.1\r\n\r\n").await;
        assert_eq!(r.status, "405 Method Not Allowed");
        assert!(
            String::from_utf8(r.to_bytes())
                .unwrap_or_default()
                .contains("Allow: GET, HEAD")
        );
        assert_eq!(ask(b"garbage\r\n\r\n").await.status, "400 Bad Request");
        assert_eq!(
            ask(b"GET /metrics HTTP/1.1\r\n").await.status,
            "400 Bad Request"
        );
        let long: &'static [u8] = Box::leak(vec![b'a'; MAX_HEAD_BYTES * 2].into_boxed_slice());
        let r = ask(long).await;
        assert_eq!(r.status, "400 Bad Request");
        assert!(r.body.contains("longer than"), "{}", r.body);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_slow_client_times_out() {
        tokio::time::pause();
        let ctx = context();
        let (mut client, mut server) = tokio::io::duplex(64);
        let _ = client.write_all(b"GET /metrics HTTP/1.1\r\n").await;
        let r = respond(&mut server, &ctx).await;
        assert_eq!(r.status, "408 Request Timeout");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn serves_over_tcp() {
        let l = MetricsListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = l.local_addr();
        l.spawn(Arc::new(context()))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await;
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
        assert!(out.ends_with("# EOF\n"), "{out}");
        // A second daemon cannot take the port.
        let e = MetricsListener::bind(addr).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("cannot listen")));
    }
}
