//! `lab-backend`: the real server of the load-balancing lab (`ipvs_integration::lb_lab`).
//!
//! Runs in a real server's network namespace and serves, on the addresses given:
//!
//! - `--http ADDR`: HTTP/1.1. `GET /` answers `200` with the body `<name>\n`,
//!   `GET /healthz` answers `200` with `ok\n`, anything else `404`; every answer closes
//!   the connection (`Connection: close`, with a `Content-Length`). `HEAD` works too.
//! - `--tcp ADDR`: a TCP service that sends `<name>\n` on connect, then echoes what it
//!   receives until the peer closes.
//! - `--dns ADDR`: DNS over UDP and TCP on the same address. A and AAAA queries for a
//!   name given with `--dns-name NAME=IP` are answered with its addresses, TXT queries for
//!   such a name with `<name>` (which backend answered); other types of a known name get
//!   an empty answer, unknown names NXDOMAIN. UDP answers leave from the address the query
//!   was sent to (`IP_PKTINFO`), as direct routing and tunnelling need.
//!
//! Each option may be repeated, with IPv4 or IPv6 addresses (IPv6 sockets are
//! `IPV6_V6ONLY`, so `0.0.0.0:80` and `[::]:80` can both be given). Once every socket is
//! bound it prints `ready` on stdout. It runs until killed, or with `--watch-stdin` until
//! its stdin closes (so it never outlives the test that started it).
//!
//! ```text
//! lab-backend --name rs1 --http 0.0.0.0:80 --http [::]:80 --tcp 0.0.0.0:7 \
//!             --dns 0.0.0.0:53 --dns-name svc.lab.test=198.51.100.1
//! ```

use clap::Parser;
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, sendmsg, setsockopt,
    sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};
use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// How long a connection may stay idle before the server drops it.
const IDLE: Duration = Duration::from_secs(30);
/// The TTL of DNS answers.
const TTL: u32 = 5;

#[derive(Parser, Debug)]
#[command(name = "lab-backend", about = "Real server of the load-balancing lab")]
struct Cli {
    /// The backend's name: the body of `GET /`, the TCP banner, the DNS TXT answer.
    #[arg(long)]
    name: String,
    /// Serve HTTP/1.1 on this address (repeatable).
    #[arg(long, value_name = "ADDR")]
    http: Vec<SocketAddr>,
    /// Serve the banner-and-echo TCP service on this address (repeatable).
    #[arg(long, value_name = "ADDR")]
    tcp: Vec<SocketAddr>,
    /// Serve DNS over UDP and TCP on this address (repeatable).
    #[arg(long, value_name = "ADDR")]
    dns: Vec<SocketAddr>,
    /// A DNS name and one of its addresses, NAME=IP (repeatable; IPv4 for A, IPv6 for
    /// AAAA).
    #[arg(long, value_name = "NAME=IP", value_parser = parse_dns_name)]
    dns_name: Vec<(Name, IpAddr)>,
    /// Exit when stdin reaches end of file.
    #[arg(long)]
    watch_stdin: bool,
}

fn parse_dns_name(s: &str) -> Result<(Name, IpAddr), String> {
    let (name, ip) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected NAME=IP"))?;
    let name = Name::from_ascii(name).map_err(|e| format!("`{name}`: {e}"))?;
    let ip = ip.parse().map_err(|e| format!("`{ip}`: {e}"))?;
    Ok((name, ip))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.http.is_empty() && cli.tcp.is_empty() && cli.dns.is_empty() {
        eprintln!("lab-backend: nothing to serve (give --http, --tcp or --dns)");
        return ExitCode::from(2);
    }
    match serve(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lab-backend: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(cli: Cli) -> Result<(), String> {
    let name: Arc<str> = cli.name.into();
    let zone: Arc<[(Name, IpAddr)]> = cli.dns_name.into();
    // Bind everything first: `ready` means every socket accepts.
    let mut http = Vec::new();
    for addr in &cli.http {
        http.push(tcp_listener(*addr).map_err(|e| format!("http {addr}: {e}"))?);
    }
    let mut tcp = Vec::new();
    for addr in &cli.tcp {
        tcp.push(tcp_listener(*addr).map_err(|e| format!("tcp {addr}: {e}"))?);
    }
    let mut dns = Vec::new();
    for addr in &cli.dns {
        let l = tcp_listener(*addr).map_err(|e| format!("dns tcp {addr}: {e}"))?;
        let u = udp_socket(*addr).map_err(|e| format!("dns udp {addr}: {e}"))?;
        dns.push((l, u));
    }
    for l in http {
        let name = name.clone();
        accept_loop(l, move |s| http_conn(s, &name));
    }
    for l in tcp {
        let name = name.clone();
        accept_loop(l, move |s| tcp_conn(s, &name));
    }
    for (l, u) in dns {
        let (name2, zone2) = (name.clone(), zone.clone());
        accept_loop(l, move |s| dns_tcp_conn(s, &name2, &zone2));
        let (name, zone) = (name.clone(), zone.clone());
        std::thread::spawn(move || dns_udp_loop(&u, &name, &zone));
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")
        .and_then(|()| out.flush())
        .map_err(|e| format!("stdout: {e}"))?;
    drop(out);
    if cli.watch_stdin {
        let mut buf = [0u8; 256];
        let mut stdin = std::io::stdin().lock();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        Ok(())
    } else {
        loop {
            std::thread::park();
        }
    }
}

fn socket_for(addr: SocketAddr, ty: Type, proto: Protocol) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

fn tcp_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = socket_for(addr, Type::STREAM, Protocol::TCP)?;
    s.listen(1024)?;
    Ok(s.into())
}

fn udp_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let s = socket_for(addr, Type::DGRAM, Protocol::UDP)?;
    let u: UdpSocket = s.into();
    if addr.is_ipv6() {
        setsockopt(&u, sockopt::Ipv6RecvPacketInfo, &true)?;
    } else {
        setsockopt(&u, sockopt::Ipv4PacketInfo, &true)?;
    }
    Ok(u)
}

/// Accepts connections on a thread of their own, each served on a new thread.
fn accept_loop(l: TcpListener, f: impl Fn(TcpStream) + Send + Sync + 'static) {
    let f = Arc::new(f);
    std::thread::spawn(move || {
        for s in l.incoming() {
            match s {
                Ok(s) => {
                    let f = f.clone();
                    let _ = s.set_read_timeout(Some(IDLE));
                    let _ = s.set_write_timeout(Some(IDLE));
                    std::thread::spawn(move || f(s));
                }
                // EMFILE and friends: back off instead of spinning.
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
}

fn http_conn(mut s: TcpStream, name: &str) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 16 * 1024 {
            return;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, body) = match (method, path) {
        ("GET" | "HEAD", "/") => ("200 OK", format!("{name}\n")),
        ("GET" | "HEAD", "/healthz") => ("200 OK", "ok\n".to_string()),
        ("GET" | "HEAD", _) => ("404 Not Found", "not found\n".to_string()),
        _ => ("405 Method Not Allowed", "method not allowed\n".to_string()),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nServer: lab-backend\r\nX-Backend: {name}\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        out.push_str(&body);
    }
    let _ = s.write_all(out.as_bytes());
    let _ = s.shutdown(std::net::Shutdown::Write);
    // Drain what the client still sends, so closing does not reset the connection.
    while matches!(s.read(&mut chunk), Ok(n) if n > 0) {}
}

fn tcp_conn(mut s: TcpStream, name: &str) {
    if s.write_all(format!("{name}\n").as_bytes()).is_err() {
        return;
    }
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 || s.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

fn dns_tcp_conn(mut s: TcpStream, name: &str, zone: &[(Name, IpAddr)]) {
    loop {
        let mut len = [0u8; 2];
        if s.read_exact(&mut len).is_err() {
            return;
        }
        let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if s.read_exact(&mut q).is_err() {
            return;
        }
        let Some(a) = dns_answer(&q, name, zone) else {
            return;
        };
        let Ok(n) = u16::try_from(a.len()) else {
            return;
        };
        let mut out = n.to_be_bytes().to_vec();
        out.extend_from_slice(&a);
        if s.write_all(&out).is_err() {
            return;
        }
    }
}

fn dns_udp_loop(u: &UdpSocket, name: &str, zone: &[(Name, IpAddr)]) {
    let fd = u.as_raw_fd();
    let mut buf = [0u8; 4096];
    loop {
        let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo);
        let (n, from, info4, info6) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let Ok(m) =
                recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty())
            else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            let (mut info4, mut info6) = (None, None);
            if let Ok(cmsgs) = m.cmsgs() {
                for c in cmsgs {
                    match c {
                        ControlMessageOwned::Ipv4PacketInfo(i) => info4 = Some(i),
                        ControlMessageOwned::Ipv6PacketInfo(i) => info6 = Some(i),
                        _ => {}
                    }
                }
            }
            (m.bytes, m.address, info4, info6)
        };
        let (Some(from), Some(answer)) = (from, dns_answer(&buf[..n], name, zone)) else {
            continue;
        };
        let iov = [IoSlice::new(&answer)];
        // Answer from the address the query was sent to (the VIP under DR or TUN).
        let reply4 = info4.map(|i| libc::in_pktinfo {
            ipi_ifindex: 0,
            ipi_spec_dst: i.ipi_addr,
            ipi_addr: libc::in_addr { s_addr: 0 },
        });
        let reply6 = info6.map(|i| libc::in6_pktinfo {
            ipi6_addr: i.ipi6_addr,
            ipi6_ifindex: 0,
        });
        let mut cmsgs = Vec::new();
        if let Some(i) = &reply4 {
            cmsgs.push(ControlMessage::Ipv4PacketInfo(i));
        }
        if let Some(i) = &reply6 {
            cmsgs.push(ControlMessage::Ipv6PacketInfo(i));
        }
        let _ = sendmsg(fd, &iov, &cmsgs, MsgFlags::empty(), Some(&from));
    }
}

/// The answer to the DNS query `q`, or `None` if `q` is not a query.
fn dns_answer(q: &[u8], name: &str, zone: &[(Name, IpAddr)]) -> Option<Vec<u8>> {
    let req = Message::from_vec(q).ok()?;
    if req.message_type() != MessageType::Query {
        return None;
    }
    let mut resp = Message::new();
    resp.set_id(req.id())
        .set_message_type(MessageType::Response)
        .set_op_code(req.op_code())
        .set_authoritative(true)
        .set_recursion_desired(req.recursion_desired());
    resp.add_queries(req.queries().iter().cloned());
    let mut code = ResponseCode::NoError;
    for query in req.queries() {
        let qname = query.name();
        let known: Vec<IpAddr> = zone
            .iter()
            .filter(|(n, _)| n.eq_ignore_root(qname))
            .map(|(_, ip)| *ip)
            .collect();
        if known.is_empty() {
            code = ResponseCode::NXDomain;
            continue;
        }
        for rdata in records(query.query_type(), &known, name) {
            resp.add_answer(Record::from_rdata(qname.clone(), TTL, rdata));
        }
    }
    resp.set_response_code(code);
    resp.to_vec().ok()
}

fn records(ty: RecordType, known: &[IpAddr], name: &str) -> Vec<RData> {
    match ty {
        RecordType::A => known
            .iter()
            .filter_map(|ip| match ip {
                IpAddr::V4(a) => Some(RData::A(A(*a))),
                IpAddr::V6(_) => None,
            })
            .collect(),
        RecordType::AAAA => known
            .iter()
            .filter_map(|ip| match ip {
                IpAddr::V6(a) => Some(RData::AAAA(AAAA(*a))),
                IpAddr::V4(_) => None,
            })
            .collect(),
        RecordType::TXT => vec![RData::TXT(TXT::new(vec![name.to_string()]))],
        _ => Vec::new(),
    }
}
