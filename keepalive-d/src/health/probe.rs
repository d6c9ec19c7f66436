//! What the probes have in common: their result, the trait the engine drives them
//! through, and how a [`Target`] becomes a probe.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt::{self, Write as _};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{CheckKind, DnsRecordType, format_duration};

use super::dns::DnsProbe;
use super::exec::ExecProbe;
use super::http::HttpProbe;
use super::tcp::TcpProbe;
use super::tls::TlsConfigs;
use super::{HealthError, ProbeOutcome, Target};

/// A successful probe, described without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Note {
    /// TCP connection accepted.
    Connected,
    /// HTTP status.
    Status(u16),
    /// DNS answers of the type asked.
    Records {
        /// How many.
        count: usize,
        /// Of which type.
        record: DnsRecordType,
    },
    /// Command exited with status 0.
    Exited,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connected => f.write_str("connected"),
            Self::Status(code) => write!(f, "HTTP {code}"),
            Self::Records { count, record } => {
                let name = DnsRecordType::ALL
                    .iter()
                    .find(|(r, _)| r == record)
                    .map_or("?", |(_, name)| name);
                let s = if *count == 1 { "" } else { "s" };
                write!(f, "{count} {name} record{s}")
            }
            Self::Exited => f.write_str("exit status 0"),
        }
    }
}

/// One probe's result: a note on success, the reason on failure.
pub(crate) type ProbeResult = Result<Note, String>;

/// One probe's result with its latency, as the engine keeps it (no allocation on success;
/// turned into a [`ProbeOutcome`] only when reported).
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) latency: Duration,
    pub(crate) result: ProbeResult,
}

impl Outcome {
    pub(crate) fn ok(&self) -> bool {
        self.result.is_ok()
    }

    pub(crate) fn to_public(&self) -> ProbeOutcome {
        ProbeOutcome {
            ok: self.ok(),
            latency: self.latency,
            detail: match &self.result {
                Ok(note) => note.to_string(),
                Err(why) => why.clone(),
            },
        }
    }
}

/// A kind of probe. Each target's task owns one and calls it once per interval.
pub(crate) trait Probe: Send + 'static {
    /// Whether [`probe`](Self::probe) enforces `timeout` itself (exec: to kill and reap
    /// its process group). Otherwise the caller bounds the future by `timeout` and drops
    /// it when the time is up, which closes its socket.
    const OWN_TIMEOUT: bool = false;

    /// Runs one probe.
    fn probe(&mut self, timeout: Duration) -> impl Future<Output = ProbeResult> + Send;
}

/// Runs one probe bounded by `timeout`, with a timer of its own (the engine's tasks reuse
/// theirs instead).
pub(crate) async fn probe_bounded<P: Probe>(probe: &mut P, timeout: Duration) -> ProbeResult {
    if P::OWN_TIMEOUT {
        return probe.probe(timeout).await;
    }
    match tokio::time::timeout(timeout, probe.probe(timeout)).await {
        Ok(result) => result,
        Err(_) => Err(timed_out(timeout)),
    }
}

/// "timed out after 1s".
pub(crate) fn timed_out(timeout: Duration) -> String {
    format!("timed out after {}", format_duration(timeout))
}

/// `context: error: source: source...`, since many errors (hyper's, rustls') keep the
/// useful part in their sources.
pub(crate) fn describe(context: &str, error: &(dyn StdError + 'static)) -> String {
    let mut s = format!("{context}: {error}");
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !s.ends_with(&text) {
            let _ = write!(s, ": {text}");
        }
        source = e.source();
    }
    s
}

/// A probe of any kind, as built from a [`Target`].
pub(crate) enum AnyProbe {
    Tcp(TcpProbe),
    Http(HttpProbe),
    Dns(DnsProbe),
    Exec(ExecProbe),
}

/// Builds probes from targets, sharing what can be shared between them: TLS client
/// configurations (one per distinct `ca`) and compiled `expect_body` patterns.
pub(crate) struct ProbeFactory {
    tls: TlsConfigs,
    patterns: HashMap<String, Arc<regex::Regex>>,
}

impl ProbeFactory {
    pub(crate) fn new() -> Self {
        Self {
            tls: TlsConfigs::new(),
            patterns: HashMap::new(),
        }
    }

    pub(crate) fn build(&mut self, target: &Target) -> Result<AnyProbe, HealthError> {
        let id = target.id;
        let addr = target.probe_addr();
        let needs_port = !matches!(target.check.kind, CheckKind::Exec(_));
        if needs_port && addr.port() == 0 {
            return Err(HealthError::NoPort {
                id,
                addr: target.addr,
            });
        }
        let source = target.check.source;
        Ok(match &target.check.kind {
            CheckKind::Tcp(tcp) => AnyProbe::Tcp(TcpProbe::new(addr, source, tcp.close)),
            CheckKind::Http(http) => {
                let pattern = self.pattern(http.expect_body.as_ref().map(|p| &p.0));
                AnyProbe::Http(HttpProbe::new(id, addr, source, http, None, pattern)?)
            }
            CheckKind::Https(http) => {
                let tls = self.tls.connector(id, addr.ip(), http)?;
                let pattern = self.pattern(http.expect_body.as_ref().map(|p| &p.0));
                AnyProbe::Http(HttpProbe::new(id, addr, source, http, Some(tls), pattern)?)
            }
            CheckKind::Dns(dns) => AnyProbe::Dns(DnsProbe::new(id, addr, source, dns)?),
            CheckKind::Exec(command) => AnyProbe::Exec(ExecProbe::new(command, target.addr)),
        })
    }

    fn pattern(&mut self, re: Option<&regex::Regex>) -> Option<Arc<regex::Regex>> {
        let re = re?;
        Some(
            self.patterns
                .entry(re.as_str().to_owned())
                .or_insert_with(|| Arc::new(re.clone()))
                .clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes() {
        assert_eq!(Note::Connected.to_string(), "connected");
        assert_eq!(Note::Status(204).to_string(), "HTTP 204");
        let one = Note::Records {
            count: 1,
            record: DnsRecordType::Aaaa,
        };
        assert_eq!(one.to_string(), "1 AAAA record");
        let two = Note::Records {
            count: 2,
            record: DnsRecordType::A,
        };
        assert_eq!(two.to_string(), "2 A records");
        assert_eq!(Note::Exited.to_string(), "exit status 0");
    }

    #[test]
    fn describe_follows_sources_without_repeating() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(describe("request", &e), "request: outer: inner");
        let plain = std::io::Error::other("refused");
        assert_eq!(describe("connect", &plain), "connect: refused");
    }
}
