//! Health-check probes and the engine against servers started by the tests themselves, on
//! 127.0.0.1 and ::1 only: TCP, HTTP, HTTPS (with an rcgen-made CA), DNS (a tiny UDP
//! responder), exec, and `Checkers` end to end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record};
use keepalive_d::config::{
    BodyPattern, Check, CheckKind, Command, DnsCheck, DnsRecordType, DnsTransport, HttpCheck,
    TcpCheck,
};
use keepalive_d::health::{
    Checkers, Health, HealthError, ProbeOutcome, ProbeStats, ServerId, Target, Transition,
    probe_once,
};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::ServerConfig;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const ID: ServerId = ServerId {
    service: 0,
    server: 0,
};

/// A check of `kind` with `timeout` (and an interval of twice that), rise and fall 1.
fn check(kind: CheckKind, timeout: Duration) -> Check {
    Check {
        kind,
        interval: timeout * 2,
        timeout,
        rise: 1,
        fall: 1,
        port: None,
        source: None,
    }
}

fn target(addr: SocketAddr, check: Check) -> Target {
    Target {
        id: ID,
        addr,
        check,
        initial: None,
    }
}

async fn probe(addr: SocketAddr, kind: CheckKind, timeout: Duration) -> ProbeOutcome {
    probe_once(&target(addr, check(kind, timeout)))
        .await
        .unwrap()
}

fn http(path: &str) -> HttpCheck {
    HttpCheck {
        path: path.to_owned(),
        expect_status: vec![200],
        expect_body: None,
        host: None,
        ca: None,
    }
}

fn pattern(re: &str) -> Option<BodyPattern> {
    Some(BodyPattern(regex::Regex::new(re).unwrap()))
}

/// A fresh directory for the files of one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("keepalive-d-health-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---------------------------------------------------------------------------------------
// TCP

#[tokio::test]
async fn tcp_up_on_ipv4_and_ipv6() {
    for bind in ["127.0.0.1:0", "[::1]:0"] {
        let listener = TcpListener::bind(bind).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let out = probe(addr, CheckKind::Tcp(TcpCheck::default()), ms(500)).await;
        assert!(out.ok, "{bind}: {out:?}");
        assert_eq!(out.detail, "connected");
        assert!(out.latency < ms(500));
    }
}

#[tokio::test]
async fn tcp_from_a_source_address_and_to_check_port() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut c = check(CheckKind::Tcp(TcpCheck::default()), ms(500));
    c.source = Some("127.0.0.1".parse().unwrap());
    c.port = Some(port);
    // The real server's own port (1) is not where the check goes.
    let out = probe_once(&target("127.0.0.1:1".parse().unwrap(), c))
        .await
        .unwrap();
    assert!(out.ok, "{out:?}");
    let (_, peer) = listener.accept().await.unwrap();
    assert_eq!(peer.ip().to_string(), "127.0.0.1");
}

#[tokio::test]
async fn tcp_refused() {
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let out = probe(addr, CheckKind::Tcp(TcpCheck::default()), ms(500)).await;
    assert!(!out.ok);
    assert!(
        out.detail.starts_with(&format!("connect to {addr}: ")) && out.detail.contains("refused"),
        "{}",
        out.detail
    );
}

/// A listener that never accepts, with its backlog filled: further SYNs are dropped and
/// the connect hangs until the probe's timeout.
#[tokio::test]
async fn tcp_hang_costs_one_timeout() {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(Ok(s)) = tokio::time::timeout(ms(100), TcpStream::connect(addr)).await {
            fillers.push(s);
        }
    }
    assert!(!fillers.is_empty());
    let start = Instant::now();
    let out = probe(addr, CheckKind::Tcp(TcpCheck::default()), ms(200)).await;
    let took = start.elapsed();
    assert!(!out.ok, "{out:?}");
    assert_eq!(out.detail, "timed out after 200ms");
    assert!(took >= ms(200) && took < ms(1000), "{took:?}");
    drop(socket);
}

// ---------------------------------------------------------------------------------------
// HTTP / HTTPS servers

enum Reply {
    /// Written after the request head, then the connection is closed.
    Bytes(Vec<u8>),
    /// The request is read, nothing is answered.
    Hang,
}

fn response(status: &str, body: &str) -> Reply {
    Reply::Bytes(
        format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

/// Reads a request head (up to the blank line).
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    reply: &Reply,
    heads: &UnboundedSender<String>,
) {
    let _ = heads.send(read_head(&mut stream).await);
    match reply {
        Reply::Bytes(bytes) => {
            let _ = stream.write_all(bytes).await;
            let _ = stream.shutdown().await;
        }
        Reply::Hang => tokio::time::sleep(Duration::from_secs(60)).await,
    }
}

/// An HTTP server on 127.0.0.1 that answers every request with `reply`; the request heads
/// come out of the receiver.
async fn http_server(reply: Reply) -> (SocketAddr, UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = unbounded_channel();
    let reply = Arc::new(reply);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (tx, reply) = (tx.clone(), reply.clone());
            tokio::spawn(async move { serve(stream, &reply, &tx).await });
        }
    });
    (addr, rx)
}

/// The same over TLS with `config`; the SNI each client sent comes out of the second
/// receiver (`None`: no SNI).
async fn https_server(
    config: Arc<ServerConfig>,
    reply: Reply,
) -> (
    SocketAddr,
    UnboundedReceiver<String>,
    UnboundedReceiver<Option<String>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = unbounded_channel();
    let (sni_tx, sni_rx) = unbounded_channel();
    let reply = Arc::new(reply);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (tx, sni_tx, reply, acceptor) =
                (tx.clone(), sni_tx.clone(), reply.clone(), acceptor.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    let _ = sni_tx.send(tls.get_ref().1.server_name().map(str::to_owned));
                    serve(tls, &reply, &tx).await;
                }
            });
        }
    });
    (addr, rx, sni_rx)
}

/// The header `name` of a request head (names compared without case).
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

// ---------------------------------------------------------------------------------------
// HTTP

#[tokio::test]
async fn http_200_and_the_request_sent() {
    let (addr, mut heads) = http_server(response("200 OK", "all good")).await;
    let out = probe(addr, CheckKind::Http(http("/healthz?x=1")), ms(1000)).await;
    assert!(out.ok, "{out:?}");
    assert_eq!(out.detail, "HTTP 200");
    let head = heads.recv().await.unwrap();
    assert!(head.starts_with("GET /healthz?x=1 HTTP/1.1\r\n"), "{head}");
    assert_eq!(
        header(&head, "host"),
        Some(addr.to_string().as_str()),
        "{head}"
    );
    assert_eq!(header(&head, "connection"), Some("close"), "{head}");

    // With `host`, that is the Host header.
    let mut h = http("/");
    h.host = Some("www.example.test".to_owned());
    assert!(probe(addr, CheckKind::Http(h), ms(1000)).await.ok);
    let head = heads.recv().await.unwrap();
    assert_eq!(header(&head, "host"), Some("www.example.test"), "{head}");
}

#[tokio::test]
async fn http_on_ipv6() {
    let listener = TcpListener::bind("[::1]:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut heads) = unbounded_channel();
    tokio::spawn(async move {
        let reply = response("204 No Content", "");
        while let Ok((stream, _)) = listener.accept().await {
            serve(stream, &reply, &tx).await;
        }
    });
    let mut h = http("/");
    h.expect_status = vec![200, 204];
    let out = probe(addr, CheckKind::Http(h), ms(1000)).await;
    assert!(out.ok, "{out:?}");
    assert_eq!(out.detail, "HTTP 204");
    let head = heads.recv().await.unwrap();
    assert_eq!(
        header(&head, "host"),
        Some(addr.to_string().as_str()),
        "{head}"
    );
}

#[tokio::test]
async fn http_500_is_down_unless_expected() {
    let (addr, _heads) = http_server(response("500 Internal Server Error", "oops")).await;
    let out = probe(addr, CheckKind::Http(http("/")), ms(1000)).await;
    assert!(!out.ok);
    assert_eq!(out.detail, "HTTP 500, expected 200");
    let mut h = http("/");
    h.expect_status = vec![500];
    assert!(probe(addr, CheckKind::Http(h), ms(1000)).await.ok);
}

#[tokio::test]
async fn http_body_must_match() {
    let (addr, _heads) = http_server(response("200 OK", "status: degraded\n")).await;
    let mut h = http("/");
    h.expect_body = pattern("^status: ok");
    let out = probe(addr, CheckKind::Http(h.clone()), ms(1000)).await;
    assert!(!out.ok);
    assert_eq!(
        out.detail,
        "HTTP 200, but the body does not match `^status: ok`"
    );
    h.expect_body = pattern("(?m)^status: (ok|degraded)$");
    let out = probe(addr, CheckKind::Http(h), ms(1000)).await;
    assert!(out.ok, "{out:?}");
}

#[tokio::test]
async fn http_body_is_read_up_to_one_mib() {
    // Close-delimited body of 2 MiB: one marker in the first MiB, one after it.
    let mut reply = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
    let mut body = vec![b'x'; 2 * 1024 * 1024];
    body[1000..1005].copy_from_slice(b"EARLY");
    let late = 1024 * 1024 + 1000;
    body[late..late + 4].copy_from_slice(b"LATE");
    reply.extend_from_slice(&body);
    let (addr, _heads) = http_server(Reply::Bytes(reply)).await;
    let mut h = http("/");
    h.expect_body = pattern("EARLY");
    let out = probe(addr, CheckKind::Http(h.clone()), ms(2000)).await;
    assert!(out.ok, "{out:?}");
    h.expect_body = pattern("LATE");
    let out = probe(addr, CheckKind::Http(h), ms(2000)).await;
    assert!(!out.ok, "{out:?}");
}

#[tokio::test]
async fn http_hang_costs_one_timeout() {
    let (addr, _heads) = http_server(Reply::Hang).await;
    let start = Instant::now();
    let out = probe(addr, CheckKind::Http(http("/")), ms(200)).await;
    assert!(!out.ok);
    assert_eq!(out.detail, "timed out after 200ms");
    assert!(start.elapsed() < ms(1000));
}

#[tokio::test]
async fn http_garbage_reply_fails_at_once() {
    let (addr, _heads) = http_server(Reply::Bytes(b"SSH-2.0-OpenSSH_9.2\r\n\r\n".to_vec())).await;
    let out = probe(addr, CheckKind::Http(http("/")), ms(2000)).await;
    assert!(!out.ok);
    assert!(out.detail.starts_with("HTTP request: "), "{}", out.detail);
    assert!(out.latency < ms(1000), "{out:?}");

    // A server that closes without answering.
    let (addr, _heads) = http_server(Reply::Bytes(Vec::new())).await;
    let out = probe(addr, CheckKind::Http(http("/")), ms(2000)).await;
    assert!(!out.ok);
    assert!(out.detail.starts_with("HTTP request: "), "{}", out.detail);
}

#[tokio::test]
async fn http_refused() {
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let out = probe(addr, CheckKind::Http(http("/")), ms(500)).await;
    assert!(!out.ok);
    assert!(out.detail.contains("refused"), "{}", out.detail);
}

// ---------------------------------------------------------------------------------------
// HTTPS

struct Pki {
    /// PEM of the CA.
    ca_pem: String,
    /// Server configuration with a certificate for www.example.test and 127.0.0.1, issued
    /// by the CA.
    server: Arc<ServerConfig>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A new CA (named `name`) and a server certificate it issued.
fn new_pki(name: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["www.example.test".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        server: Arc::new(server),
    }
}

fn https(host: Option<&str>, ca: Option<PathBuf>) -> CheckKind {
    let mut h = http("/");
    h.host = host.map(str::to_owned);
    h.ca = ca;
    CheckKind::Https(h)
}

#[tokio::test]
async fn https_without_ca_accepts_any_certificate() {
    let pki = new_pki("test CA");
    let (addr, mut heads, mut snis) =
        https_server(pki.server.clone(), response("200 OK", "ok")).await;
    // No host: no SNI (an address is not sent), Host is the address.
    let out = probe(addr, https(None, None), ms(2000)).await;
    assert!(out.ok, "{out:?}");
    assert_eq!(out.detail, "HTTP 200");
    assert_eq!(snis.recv().await.unwrap(), None);
    let head = heads.recv().await.unwrap();
    assert_eq!(
        header(&head, "host"),
        Some(addr.to_string().as_str()),
        "{head}"
    );

    // A name the certificate does not have: still up, nothing is verified. SNI is the
    // host without its port.
    let out = probe(addr, https(Some("other.test:8443"), None), ms(2000)).await;
    assert!(out.ok, "{out:?}");
    assert_eq!(snis.recv().await.unwrap().as_deref(), Some("other.test"));
    let head = heads.recv().await.unwrap();
    assert_eq!(header(&head, "host"), Some("other.test:8443"), "{head}");
}

#[tokio::test]
async fn https_with_ca_verifies_chain_and_name() {
    let pki = new_pki("test CA");
    let dir = temp_dir("https-ca");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let (addr, _heads, mut snis) = https_server(pki.server.clone(), response("200 OK", "ok")).await;

    let out = probe(
        addr,
        https(Some("www.example.test"), Some(ca_file.clone())),
        ms(2000),
    )
    .await;
    assert!(out.ok, "{out:?}");
    assert_eq!(
        snis.recv().await.unwrap().as_deref(),
        Some("www.example.test")
    );

    // No host: the address is checked against the certificate's IP names.
    let out = probe(addr, https(None, Some(ca_file.clone())), ms(2000)).await;
    assert!(out.ok, "{out:?}");

    // A name the certificate does not have.
    let out = probe(
        addr,
        https(Some("other.test"), Some(ca_file.clone())),
        ms(2000),
    )
    .await;
    assert!(!out.ok);
    assert!(out.detail.starts_with("TLS handshake: "), "{}", out.detail);
    assert!(out.detail.contains("not valid for name"), "{}", out.detail);

    // The certificate does not chain to this CA.
    let other = new_pki("another test CA");
    let other_file = dir.join("other-ca.pem");
    std::fs::write(&other_file, &other.ca_pem).unwrap();
    let out = probe(
        addr,
        https(Some("www.example.test"), Some(other_file)),
        ms(2000),
    )
    .await;
    assert!(!out.ok);
    assert!(out.detail.contains("UnknownIssuer"), "{}", out.detail);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn https_against_plain_http_fails() {
    // A plain HTTP server answers the ClientHello with a 400, as web servers do.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                .await;
        }
    });
    let out = probe(addr, https(None, None), ms(1000)).await;
    assert!(!out.ok);
    assert!(out.detail.starts_with("TLS handshake: "), "{}", out.detail);
    assert!(out.latency < ms(1000), "{out:?}");
}

#[tokio::test]
async fn unreadable_or_empty_ca_fails_at_spawn() {
    let dir = temp_dir("bad-ca");
    let missing = dir.join("missing.pem");
    let (tx, _rx) = unbounded_channel();
    let t = target(
        "127.0.0.1:443".parse().unwrap(),
        check(https(None, Some(missing.clone())), ms(100)),
    );
    let err = Checkers::spawn(vec![t], tx.clone()).unwrap_err();
    assert!(matches!(err, HealthError::CaRead { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("cannot read CA file {}", missing.display())),
        "{err}"
    );

    let empty = dir.join("key-only.pem");
    let mut f = std::fs::File::create(&empty).unwrap();
    f.write_all(KeyPair::generate().unwrap().serialize_pem().as_bytes())
        .unwrap();
    let t = target(
        "127.0.0.1:443".parse().unwrap(),
        check(https(None, Some(empty.clone())), ms(100)),
    );
    let err = Checkers::spawn(vec![t], tx).unwrap_err();
    assert!(matches!(err, HealthError::CaEmpty { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "https check of virtual_servers[0].real_servers[0]: CA file {}: no PEM certificate in it",
            empty.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------
// DNS

#[derive(Clone, Copy)]
enum Dns {
    /// One A record.
    Answer,
    /// RCODE NXDOMAIN.
    NxDomain,
    /// NOERROR without answers.
    Empty,
    /// First a reply with another ID, then the right one.
    WrongIdFirst,
    /// Only replies with another ID.
    WrongIdOnly,
    /// No reply at all.
    Silent,
}

fn dns_reply(query: &Message, id: u16, code: ResponseCode, answer: bool) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_response_code(code)
        .add_queries(query.queries().to_vec());
    if answer {
        if let Some(q) = query.queries().first() {
            m.add_answer(Record::from_rdata(
                q.name().clone(),
                60,
                RData::A(A::new(192, 0, 2, 1)),
            ));
        }
    }
    m.to_vec().unwrap()
}

/// A UDP DNS responder; the queries it got come out of the receiver.
async fn dns_server(bind: &str, mode: Dns) -> (SocketAddr, UnboundedReceiver<Message>) {
    let socket = UdpSocket::bind(bind).await.unwrap();
    let addr = socket.local_addr().unwrap();
    let (tx, rx) = unbounded_channel();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let id = query.id();
            let wrong = id.wrapping_add(1);
            let replies = match mode {
                Dns::Answer => vec![dns_reply(&query, id, ResponseCode::NoError, true)],
                Dns::NxDomain => vec![dns_reply(&query, id, ResponseCode::NXDomain, false)],
                Dns::Empty => vec![dns_reply(&query, id, ResponseCode::NoError, false)],
                Dns::WrongIdFirst => vec![
                    dns_reply(&query, wrong, ResponseCode::NXDomain, false),
                    dns_reply(&query, id, ResponseCode::NoError, true),
                ],
                Dns::WrongIdOnly => vec![dns_reply(&query, wrong, ResponseCode::NoError, true)],
                Dns::Silent => vec![],
            };
            for r in replies {
                let _ = socket.send_to(&r, peer).await;
            }
            let _ = tx.send(query);
        }
    });
    (addr, rx)
}

fn dns(query: &str) -> CheckKind {
    CheckKind::Dns(DnsCheck {
        query: query.to_owned(),
        record: DnsRecordType::A,
        transport: DnsTransport::Udp,
    })
}

#[tokio::test]
async fn dns_right_answer() {
    for bind in ["127.0.0.1:0", "[::1]:0"] {
        let (addr, mut queries) = dns_server(bind, Dns::Answer).await;
        let out = probe(addr, dns("www.example.test"), ms(1000)).await;
        assert!(out.ok, "{bind}: {out:?}");
        assert_eq!(out.detail, "1 A record");
        let q = queries.recv().await.unwrap();
        assert!(q.recursion_desired());
        assert_eq!(q.queries().len(), 1);
        assert_eq!(q.queries()[0].name().to_ascii(), "www.example.test.");
    }
}

#[tokio::test]
async fn dns_ids_differ_between_probes() {
    let (addr, mut queries) = dns_server("127.0.0.1:0", Dns::Answer).await;
    let mut ids = std::collections::HashSet::new();
    for _ in 0..8 {
        assert!(probe(addr, dns("a.test"), ms(1000)).await.ok);
        ids.insert(queries.recv().await.unwrap().id());
    }
    assert!(ids.len() >= 6, "{ids:?}");
}

#[tokio::test]
async fn dns_nxdomain_and_no_answer_are_down() {
    let (addr, _q) = dns_server("127.0.0.1:0", Dns::NxDomain).await;
    let out = probe(addr, dns("gone.test"), ms(1000)).await;
    assert!(!out.ok);
    assert!(out.detail.contains("RCODE 3"), "{}", out.detail);
    let (addr, _q) = dns_server("127.0.0.1:0", Dns::Empty).await;
    let out = probe(addr, dns("empty.test"), ms(1000)).await;
    assert!(!out.ok);
    assert_eq!(out.detail, "DNS reply has no A record in its answer");
}

#[tokio::test]
async fn dns_replies_with_another_id_are_ignored() {
    let (addr, _q) = dns_server("127.0.0.1:0", Dns::WrongIdFirst).await;
    let out = probe(addr, dns("a.test"), ms(1000)).await;
    assert!(out.ok, "the NXDOMAIN with the wrong ID was taken: {out:?}");

    let (addr, _q) = dns_server("127.0.0.1:0", Dns::WrongIdOnly).await;
    let out = probe(addr, dns("a.test"), ms(200)).await;
    assert!(!out.ok);
    assert_eq!(out.detail, "timed out after 200ms");
}

#[tokio::test]
async fn dns_no_reply_times_out_and_closed_port_fails() {
    let (addr, _q) = dns_server("127.0.0.1:0", Dns::Silent).await;
    let start = Instant::now();
    let out = probe(addr, dns("a.test"), ms(200)).await;
    assert!(!out.ok);
    assert_eq!(out.detail, "timed out after 200ms");
    assert!(start.elapsed() < ms(1000));

    // Nothing listening: the ICMP port unreachable ends the probe before the timeout.
    let addr = {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.local_addr().unwrap()
    };
    let out = probe(addr, dns("a.test"), ms(2000)).await;
    assert!(!out.ok);
    assert!(out.detail.contains("refused"), "{}", out.detail);
    assert!(out.latency < ms(1000));
}

/// A TCP DNS responder on `addr`'s port (port 0: any): length-prefixed messages, one
/// reply per query (or none, for `Silent`, which holds the connection); the queries it got
/// and where from come out of the receiver.
async fn dns_tcp_server(
    bind: SocketAddr,
    mode: Dns,
) -> (SocketAddr, UnboundedReceiver<(Message, SocketAddr)>) {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut conn, peer)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut len = [0u8; 2];
                conn.read_exact(&mut len).await.unwrap();
                let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
                conn.read_exact(&mut buf).await.unwrap();
                let query = Message::from_vec(&buf).unwrap();
                let id = query.id();
                let reply = match mode {
                    Dns::Answer => Some(dns_reply(&query, id, ResponseCode::NoError, true)),
                    Dns::NxDomain => Some(dns_reply(&query, id, ResponseCode::NXDomain, false)),
                    Dns::Empty => Some(dns_reply(&query, id, ResponseCode::NoError, false)),
                    Dns::WrongIdFirst | Dns::WrongIdOnly => Some(dns_reply(
                        &query,
                        id.wrapping_add(1),
                        ResponseCode::NoError,
                        true,
                    )),
                    Dns::Silent => None,
                };
                let _ = tx.send((query, peer));
                match reply {
                    Some(r) => {
                        let mut out = u16::try_from(r.len()).unwrap().to_be_bytes().to_vec();
                        out.extend_from_slice(&r);
                        // Written in two parts: the probe must read the length and the
                        // message whatever the segments.
                        conn.write_all(&out[..3]).await.unwrap();
                        tokio::time::sleep(ms(20)).await;
                        conn.write_all(&out[3..]).await.unwrap();
                    }
                    None => tokio::time::sleep(Duration::from_secs(10)).await,
                }
            });
        }
    });
    (addr, rx)
}

fn dns_over(query: &str, transport: DnsTransport) -> CheckKind {
    CheckKind::Dns(DnsCheck {
        query: query.to_owned(),
        record: DnsRecordType::A,
        transport,
    })
}

#[tokio::test]
async fn dns_over_tcp_right_answer_on_ipv4_and_ipv6() {
    for bind in ["127.0.0.1:0", "[::1]:0"] {
        let (addr, mut queries) = dns_tcp_server(bind.parse().unwrap(), Dns::Answer).await;
        let out = probe(
            addr,
            dns_over("www.example.test", DnsTransport::Tcp),
            ms(1000),
        )
        .await;
        assert!(out.ok, "{bind}: {out:?}");
        assert_eq!(out.detail, "1 A record");
        let (q, _) = queries.recv().await.unwrap();
        assert!(q.recursion_desired());
        assert_eq!(q.queries()[0].name().to_ascii(), "www.example.test.");
    }
}

#[tokio::test]
async fn dns_over_tcp_failures() {
    let (addr, _q) = dns_tcp_server("127.0.0.1:0".parse().unwrap(), Dns::NxDomain).await;
    let out = probe(addr, dns_over("gone.test", DnsTransport::Tcp), ms(1000)).await;
    assert!(!out.ok);
    assert!(out.detail.contains("RCODE 3"), "{}", out.detail);

    // The connection is the probe's own: a reply with another ID is wrong, not skipped.
    let (addr, _q) = dns_tcp_server("127.0.0.1:0".parse().unwrap(), Dns::WrongIdOnly).await;
    let out = probe(addr, dns_over("a.test", DnsTransport::Tcp), ms(1000)).await;
    assert!(!out.ok);
    assert!(
        out.detail
            .starts_with("DNS reply over TCP does not answer the query"),
        "{}",
        out.detail
    );

    let (addr, _q) = dns_tcp_server("127.0.0.1:0".parse().unwrap(), Dns::Silent).await;
    let out = probe(addr, dns_over("a.test", DnsTransport::Tcp), ms(200)).await;
    assert!(!out.ok);
    assert_eq!(out.detail, "timed out after 200ms");

    // A UDP server alone does not pass a TCP check: the connection is refused.
    let (addr, _q) = dns_server("127.0.0.1:0", Dns::Answer).await;
    let out = probe(addr, dns_over("a.test", DnsTransport::Tcp), ms(1000)).await;
    assert!(!out.ok);
    assert!(out.detail.contains("refused"), "{}", out.detail);
}

#[tokio::test]
async fn dns_over_both_needs_both_answers() {
    // UDP and TCP on the same port.
    let (addr, mut udp) = dns_server("127.0.0.1:0", Dns::Answer).await;
    let (_, mut tcp) = dns_tcp_server(addr, Dns::Answer).await;
    let out = probe(addr, dns_over("a.test", DnsTransport::Both), ms(1000)).await;
    assert!(out.ok, "{out:?}");
    assert_eq!(udp.recv().await.unwrap().queries().len(), 1);
    assert_eq!(tcp.recv().await.unwrap().0.queries().len(), 1);

    // TCP answers, UDP does not: the UDP query times out first.
    let (addr, _u) = dns_server("127.0.0.1:0", Dns::Silent).await;
    let (_, _t) = dns_tcp_server(addr, Dns::Answer).await;
    let out = probe(addr, dns_over("a.test", DnsTransport::Both), ms(200)).await;
    assert!(!out.ok);
    assert_eq!(out.detail, "timed out after 200ms");

    // UDP answers, TCP is refused: named as the TCP part.
    let (addr, _u) = dns_server("127.0.0.1:0", Dns::Answer).await;
    let out = probe(addr, dns_over("a.test", DnsTransport::Both), ms(1000)).await;
    assert!(!out.ok);
    assert!(
        out.detail.starts_with("over TCP: connect to 127.0.0.1:") && out.detail.contains("refused"),
        "{}",
        out.detail
    );

    // UDP has an empty answer: named as the UDP part, TCP is not asked.
    let (addr, _u) = dns_server("127.0.0.1:0", Dns::Empty).await;
    let (_, mut tcp) = dns_tcp_server(addr, Dns::Answer).await;
    let out = probe(addr, dns_over("a.test", DnsTransport::Both), ms(1000)).await;
    assert_eq!(
        out.detail,
        "over UDP: DNS reply has no A record in its answer"
    );
    assert!(tcp.try_recv().is_err());
}

#[tokio::test]
async fn dns_over_tcp_from_a_source_address() {
    let (addr, mut q) = dns_tcp_server("127.0.0.1:0".parse().unwrap(), Dns::Answer).await;
    let mut c = check(dns_over("a.test", DnsTransport::Tcp), ms(1000));
    c.source = Some("127.0.0.2".parse().unwrap());
    let out = probe_once(&target(addr, c)).await.unwrap();
    assert!(out.ok, "{out:?}");
    assert_eq!(q.recv().await.unwrap().1.ip().to_string(), "127.0.0.2");
}

// ---------------------------------------------------------------------------------------
// exec

fn exec(program: &str, args: &[&str]) -> CheckKind {
    CheckKind::Exec(Command {
        program: program.to_owned(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
    })
}

/// Whether process `pid` is gone (or a zombie some other parent has yet to reap).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

#[tokio::test]
async fn exec_true_is_up_false_is_down() {
    let nowhere = "127.0.0.1:0".parse().unwrap();
    let out = probe(nowhere, exec("/bin/true", &[]), ms(2000)).await;
    assert!(out.ok, "{out:?}");
    assert_eq!(out.detail, "exit status 0");
    let out = probe(nowhere, exec("/bin/false", &[]), ms(2000)).await;
    assert!(!out.ok);
    assert_eq!(out.detail, "/bin/false: exit status: 1");
    let out = probe(nowhere, exec("/bin/sh", &["-c", "exit 3"]), ms(2000)).await;
    assert_eq!(out.detail, "/bin/sh: exit status: 3");
    let out = probe(nowhere, exec("/nonexistent/check", &[]), ms(2000)).await;
    assert!(!out.ok);
    assert!(
        out.detail.starts_with("run /nonexistent/check: "),
        "{}",
        out.detail
    );
}

#[tokio::test]
async fn exec_timeout_kills_the_whole_process_group() {
    let dir = temp_dir("exec-group");
    let pids = dir.join("pids");
    // The shell, and a sleep it starts in the background (same process group).
    // One write of both ids, once the sleep runs; 1 s leaves the shell time to get there
    // even on a loaded machine.
    let script = format!(
        "/bin/sleep 10 & echo \"$$ $!\" > {p}; wait",
        p = pids.display()
    );
    let start = Instant::now();
    let out = probe(
        "127.0.0.1:0".parse().unwrap(),
        exec("/bin/sh", &["-c", &script]),
        ms(1000),
    )
    .await;
    let took = start.elapsed();
    assert!(!out.ok);
    assert_eq!(
        out.detail,
        "/bin/sh: timed out after 1s, process group killed"
    );
    assert!(took >= ms(1000) && took < ms(2500), "{took:?}");
    let text = std::fs::read_to_string(&pids).unwrap();
    let pids: Vec<u32> = text
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "{text}");
    // The shell was reaped by the probe; the orphaned sleep was killed (its new parent
    // may not have reaped it yet).
    let deadline = Instant::now() + Duration::from_secs(2);
    while !pids.iter().all(|&p| gone(p)) && Instant::now() < deadline {
        tokio::time::sleep(ms(20)).await;
    }
    for p in &pids {
        assert!(gone(*p), "process {p} still runs");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------
// The engine

async fn next(rx: &mut UnboundedReceiver<Transition>, within: Duration) -> Transition {
    tokio::time::timeout(within, rx.recv())
        .await
        .expect("no transition in time")
        .expect("channel closed")
}

/// Accepts connections on `listener` and counts them, until the task is aborted.
fn count_accepts(listener: TcpListener, count: Arc<AtomicUsize>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(s);
        }
    })
}

#[tokio::test]
async fn checkers_follow_a_server_that_goes_away_and_comes_back() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let server = count_accepts(listener, accepted.clone());

    let mut c = check(CheckKind::Tcp(TcpCheck::default()), ms(50));
    c.interval = ms(50);
    c.rise = 2;
    c.fall = 3;
    let (tx, mut rx) = unbounded_channel();
    let checkers = Checkers::spawn(vec![target(addr, c)], tx).unwrap();
    assert_eq!(checkers.len(), 1);

    // Unknown at first: the first probe decides.
    let t = next(&mut rx, ms(1000)).await;
    assert_eq!((t.id, t.health), (ID, Health::Up));
    assert!(t.outcome.ok);
    assert_eq!(t.outcome.detail, "connected");
    let snap = checkers.snapshot();
    assert_eq!(snap.len(), 1);
    assert_eq!(snap[0].0, ID);
    assert_eq!(snap[0].1, Some(Health::Up));

    // The server goes away: down after `fall` (3) refused connections, about 150 ms.
    server.abort();
    let _ = server.await;
    let closed = Instant::now();
    let t = next(&mut rx, ms(2000)).await;
    let took = closed.elapsed();
    assert_eq!(t.health, Health::Down);
    assert!(!t.outcome.ok);
    assert!(t.outcome.detail.contains("refused"), "{}", t.outcome.detail);
    assert!(
        took >= ms(100),
        "down after {took:?}: fewer than 3 failures?"
    );
    let (_, health, last) = checkers.snapshot().remove(0);
    assert_eq!(health, Some(Health::Down));
    assert!(!last.unwrap().ok);

    // Back on the same port: up after `rise` (2) accepted connections.
    let listener = TcpListener::bind(addr).await.unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let server = count_accepts(listener, accepted.clone());
    let t = next(&mut rx, ms(2000)).await;
    assert_eq!(t.health, Health::Up);
    let n = accepted.load(Ordering::SeqCst);
    assert!(n >= 2, "up after {n} connection, rise is 2");

    // Nothing else happens while it stays up.
    assert!(
        tokio::time::timeout(ms(300), rx.recv()).await.is_err(),
        "unexpected transition"
    );

    // Stopped: no more probes.
    checkers.stop();
    tokio::time::sleep(ms(20)).await;
    let before = accepted.load(Ordering::SeqCst);
    tokio::time::sleep(ms(200)).await;
    assert_eq!(accepted.load(Ordering::SeqCst), before, "probes after stop");
    server.abort();
}

#[tokio::test]
async fn checkers_with_a_known_initial_state_report_only_changes() {
    // Initially up, actually refused, fall 2: one transition to down, after two probes.
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let mut c = check(CheckKind::Tcp(TcpCheck::default()), ms(50));
    c.interval = ms(50);
    c.fall = 2;
    let mut t = target(addr, c.clone());
    t.initial = Some(Health::Up);
    // And a server known to be down that is down: never reported.
    let mut quiet = target(addr, c);
    quiet.id = ServerId {
        service: 0,
        server: 1,
    };
    quiet.initial = Some(Health::Down);
    let quiet_id = quiet.id;
    let (tx, mut rx) = unbounded_channel();
    let checkers = Checkers::spawn(vec![t, quiet], tx).unwrap();
    assert_eq!(
        checkers
            .snapshot()
            .iter()
            .map(|s| (s.0, s.1, s.2.is_some()))
            .collect::<Vec<_>>(),
        [
            (ID, Some(Health::Up), false),
            (quiet_id, Some(Health::Down), false)
        ]
    );
    let t = next(&mut rx, ms(1000)).await;
    assert_eq!((t.id, t.health), (ID, Health::Down));
    assert!(tokio::time::timeout(ms(300), rx.recv()).await.is_err());
    let snap = checkers.snapshot();
    assert!(
        snap.iter()
            .all(|s| s.1 == Some(Health::Down) && s.2.is_some())
    );
    drop(checkers);
}

#[tokio::test]
async fn checkers_spread_the_first_probes_over_the_interval() {
    // Four targets, interval 1 s: first probes at 0, 250, 500 and 750 ms.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let server = count_accepts(listener, accepted.clone());
    let mut c = check(CheckKind::Tcp(TcpCheck::default()), ms(100));
    c.interval = Duration::from_secs(1);
    let targets: Vec<Target> = (0..4)
        .map(|server| Target {
            id: ServerId { service: 1, server },
            ..target(addr, c.clone())
        })
        .collect();
    let (tx, mut rx) = unbounded_channel();
    let start = Instant::now();
    let checkers = Checkers::spawn(targets, tx).unwrap();
    let mut at = Vec::new();
    for _ in 0..4 {
        let t = next(&mut rx, ms(2000)).await;
        at.push((t.id.server, start.elapsed()));
    }
    let order: Vec<usize> = at.iter().map(|a| a.0).collect();
    assert_eq!(order, [0, 1, 2, 3]);
    for (server, when) in &at {
        let expected = ms(250) * (*server as u32);
        assert!(
            // Never early; late only by scheduling delays (generous for a loaded CI).
            *when >= expected && *when < expected + ms(1000),
            "server {server} first probed after {when:?}, expected {expected:?}"
        );
    }
    drop(checkers);
    server.abort();
}

#[tokio::test]
async fn checkers_count_every_probe_by_result_with_its_latency() {
    // One server that accepts (each probe is one accepted connection) and one refused
    // port, probed every 20 ms; the first starts from counts carried over (a reload).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let accepted = Arc::new(AtomicUsize::new(0));
    let server = count_accepts(listener, accepted.clone());
    let mut c = check(CheckKind::Tcp(TcpCheck::default()), ms(20));
    c.interval = ms(20);
    let other = ServerId {
        service: 0,
        server: 1,
    };
    let targets = vec![
        target(addr, c.clone()),
        Target {
            id: other,
            ..target(refused, c)
        },
    ];
    let carried = ProbeStats {
        success: 100,
        failure: 7,
        latency_sum_nanos: 1_000_000_000,
        buckets: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 107, 0, 0],
    };
    let (tx, _rx) = unbounded_channel();
    let checkers = Checkers::spawn_with_stats(targets, vec![carried], tx).unwrap();
    assert_eq!(
        checkers.probe_stats(),
        [(ID, carried), (other, ProbeStats::default())]
    );
    tokio::time::sleep(ms(500)).await;
    let mid = checkers.probe_stats();
    tokio::time::sleep(ms(200)).await;
    let stats = checkers.probe_stats();
    checkers.stop();
    let accepted = accepted.load(Ordering::SeqCst) as u64;
    server.abort();

    let (up, down) = (stats[0].1, stats[1].1);
    assert_eq!((stats[0].0, stats[1].0), (ID, other));
    // Every accepted connection is one successful probe (the last may have been
    // accepted just before the stop aborted its probe), on top of the carried counts.
    assert!(accepted >= 5, "only {accepted} probes in 700 ms");
    assert!(
        (accepted.saturating_sub(1)..=accepted).contains(&(up.success - 100)),
        "{} successes counted, {accepted} connections accepted",
        up.success - 100
    );
    assert_eq!(up.failure, 7);
    assert_eq!(down.success, 0);
    assert!(down.failure >= 5, "{down:?}");
    for (p, before) in [(up, mid[0].1), (down, mid[1].1)] {
        // Counters only grow; the histogram counts every probe once.
        assert!(p.count() > before.count(), "{before:?} then {p:?}");
        assert_eq!(p.buckets.iter().sum::<u64>(), p.count(), "{p:?}");
        assert!(p.latency_sum_nanos > before.latency_sum_nanos, "{p:?}");
    }
    // The carried probes stay in their bucket; on loopback a probe takes well under 1 s.
    assert_eq!(up.buckets[10], 107);
    assert!(up.latency_sum() >= Duration::from_secs(1));
}

#[tokio::test]
async fn spawn_rejects_what_it_can_know_in_advance() {
    let (tx, _rx) = unbounded_channel();
    let t = target(
        "127.0.0.1:80".parse().unwrap(),
        check(CheckKind::Tcp(TcpCheck::default()), ms(100)),
    );

    let err = Checkers::spawn(vec![t.clone(), t.clone()], tx.clone()).unwrap_err();
    assert!(
        matches!(err, HealthError::DuplicateServer { .. }),
        "{err:?}"
    );

    let mut zero = t.clone();
    zero.check.interval = Duration::ZERO;
    let err = Checkers::spawn(vec![zero], tx.clone()).unwrap_err();
    assert!(matches!(err, HealthError::ZeroInterval { .. }), "{err:?}");

    let mut no_port = t.clone();
    no_port.addr.set_port(0);
    let err = Checkers::spawn(vec![no_port.clone()], tx.clone()).unwrap_err();
    assert!(matches!(err, HealthError::NoPort { .. }), "{err:?}");
    no_port.check.port = Some(80);
    let checkers = Checkers::spawn(vec![no_port], tx.clone()).unwrap();
    drop(checkers);

    let empty = Checkers::spawn(Vec::new(), tx).unwrap();
    assert!(empty.is_empty());
    assert!(empty.snapshot().is_empty());
}

#[test]
fn spawn_outside_a_runtime_is_an_error() {
    let (tx, _rx) = unbounded_channel();
    let err = Checkers::spawn(Vec::new(), tx).unwrap_err();
    assert!(matches!(err, HealthError::NoRuntime), "{err:?}");
}

#[tokio::test]
async fn targets_from_config_skip_servers_without_check() {
    let yaml = "
virtual_servers:
  - name: web
    vip: 192.0.2.10:80
    check: { type: tcp, interval: 1s, timeout: 500ms }
    real_servers:
      - { address: 10.0.0.11:80 }
      - { address: 10.0.0.12:8080, check: { type: http, path: /healthz, port: 9000 } }
  - name: dns
    vip: 192.0.2.10:53
    protocol: udp
    real_servers:
      - { address: 10.0.0.21:53 }
";
    let config = keepalive_d::config::parse_str(yaml, "t.yaml").unwrap();
    let targets = keepalive_d::health::targets_from_config(&config);
    let ids: Vec<ServerId> = targets.iter().map(|t| t.id).collect();
    assert_eq!(
        ids,
        [
            ServerId {
                service: 0,
                server: 0
            },
            ServerId {
                service: 0,
                server: 1
            }
        ]
    );
    assert!(targets.iter().all(|t| t.initial.is_none()));
    assert_eq!(targets[1].probe_addr().to_string(), "10.0.0.12:9000");
    assert_eq!(ids[1].to_string(), "virtual_servers[0].real_servers[1]");
}
