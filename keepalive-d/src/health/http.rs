//! HTTP and HTTPS probes: one HTTP/1.1 `GET` per probe on a fresh connection.

use std::future::{Future, poll_fn};
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use http::header::{CONNECTION, HOST, USER_AGENT};
use http::{HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::HttpCheck;

use super::probe::{Note, Probe, ProbeResult, describe};
use super::tcp::connect;
use super::tls::TlsTarget;
use super::{HealthError, ServerId};

/// At most this much of the body is read and matched against `expect_body`.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

/// `http` and `https` checks.
pub(crate) struct HttpProbe {
    addr: SocketAddr,
    source: Option<IpAddr>,
    tls: Option<TlsTarget>,
    path: Uri,
    host: HeaderValue,
    expect_status: Box<[u16]>,
    expect_body: Option<Arc<regex::Regex>>,
}

static USER_AGENT_VALUE: HeaderValue = HeaderValue::from_static("keepalive-d");
static CLOSE: HeaderValue = HeaderValue::from_static("close");

impl HttpProbe {
    pub(crate) fn new(
        id: ServerId,
        addr: SocketAddr,
        source: Option<IpAddr>,
        http: &HttpCheck,
        tls: Option<TlsTarget>,
        expect_body: Option<Arc<regex::Regex>>,
    ) -> Result<Self, HealthError> {
        let path = Uri::try_from(http.path.as_str()).map_err(|e| HealthError::Request {
            id,
            reason: format!("path `{}` cannot be sent: {e}", http.path),
        })?;
        let host = match &http.host {
            Some(host) => host.clone(),
            None => default_host(addr, tls.is_some()),
        };
        let host = HeaderValue::try_from(host.as_str()).map_err(|e| HealthError::Request {
            id,
            reason: format!("host `{host}` cannot be sent: {e}"),
        })?;
        Ok(Self {
            addr,
            source,
            tls,
            path,
            host,
            expect_status: http.expect_status.clone().into_boxed_slice(),
            expect_body,
        })
    }

    async fn attempt(&self) -> ProbeResult {
        let tcp = connect(self.addr, self.source).await?;
        match &self.tls {
            None => self.exchange(tcp).await,
            Some(tls) => {
                let stream = tls
                    .connector
                    .connect(tls.name.clone(), tcp)
                    .await
                    .map_err(|e| describe("TLS handshake", &e))?;
                self.exchange(stream).await
            }
        }
    }

    /// One request and its response on an established connection.
    async fn exchange<S>(&self, stream: S) -> ProbeResult
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(|e| describe("HTTP", &e))?;
        let mut request = Request::new(Empty::new());
        *request.uri_mut() = self.path.clone();
        let headers = request.headers_mut();
        headers.insert(HOST, self.host.clone());
        headers.insert(CONNECTION, CLOSE.clone());
        headers.insert(USER_AGENT, USER_AGENT_VALUE.clone());
        let work = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| describe("HTTP request", &e))?;
            let status = response.status().as_u16();
            if !self.expect_status.contains(&status) {
                return Err(unexpected_status(status, &self.expect_status));
            }
            if let Some(pattern) = &self.expect_body {
                let body = read_body(response.into_body()).await?;
                if !pattern.is_match(&String::from_utf8_lossy(&body)) {
                    return Err(format!(
                        "HTTP {status}, but the body does not match `{}`",
                        pattern.as_str()
                    ));
                }
            }
            Ok(Note::Status(status))
        };
        drive(conn, work).await
    }
}

impl Probe for HttpProbe {
    /// Boxed: a connection's state (TLS session, HTTP buffers) is about 12 KiB, which
    /// would otherwise stay reserved in the task between probes; a probe allocates its
    /// buffers anyway.
    fn probe(&mut self, _timeout: Duration) -> impl Future<Output = ProbeResult> + Send {
        Box::pin(self.attempt())
    }
}

/// The `Host` header when the check has no `host`: the address, with the port unless it
/// is the scheme's default.
fn default_host(addr: SocketAddr, tls: bool) -> String {
    let default_port = if tls { 443 } else { 80 };
    match (addr.ip(), addr.port() == default_port) {
        (ip @ IpAddr::V4(_), true) => ip.to_string(),
        (IpAddr::V6(ip), true) => format!("[{ip}]"),
        (_, false) => addr.to_string(),
    }
}

fn unexpected_status(status: u16, expected: &[u16]) -> String {
    let list: Vec<String> = expected.iter().map(u16::to_string).collect();
    format!("HTTP {status}, expected {}", list.join(" or "))
}

/// Reads at most [`MAX_BODY`] bytes of the body.
async fn read_body(mut body: hyper::body::Incoming) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    while bytes.len() < MAX_BODY {
        match body.frame().await {
            None => break,
            Some(Err(e)) => return Err(describe("HTTP body", &e)),
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let room = MAX_BODY - bytes.len();
                    bytes.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
        }
    }
    Ok(bytes)
}

/// Runs the request (`work`) while driving the connection (`conn`) in the same task, so a
/// probe needs no task of its own; returns when `work` is done. A connection error shows
/// up as the request's error.
async fn drive<C, W>(conn: C, work: W) -> ProbeResult
where
    C: Future<Output = hyper::Result<()>>,
    W: Future<Output = ProbeResult>,
{
    let mut conn = pin!(conn);
    let mut work = pin!(work);
    let mut conn_done = false;
    poll_fn(|cx| {
        if !conn_done && conn.as_mut().poll(cx).is_ready() {
            conn_done = true;
        }
        work.as_mut().poll(cx)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_hosts() {
        let v4: SocketAddr = "10.0.0.1:80".parse().unwrap();
        assert_eq!(default_host(v4, false), "10.0.0.1");
        assert_eq!(default_host(v4, true), "10.0.0.1:80");
        let v6: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
        assert_eq!(default_host(v6, true), "[2001:db8::1]");
        assert_eq!(default_host(v6, false), "[2001:db8::1]:443");
    }

    #[test]
    fn status_messages() {
        assert_eq!(unexpected_status(500, &[200]), "HTTP 500, expected 200");
        assert_eq!(
            unexpected_status(404, &[200, 204]),
            "HTTP 404, expected 200 or 204"
        );
    }
}
