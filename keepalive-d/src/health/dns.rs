//! DNS probe: one query over UDP, over TCP, or one over each.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};

use crate::config::{DnsCheck, DnsRecordType, DnsTransport};

use super::probe::{Note, Probe, ProbeResult, describe};
use super::{HealthError, ServerId};

/// A DNS message without EDNS fits in 512 bytes (RFC 1035); a longer datagram is cut here
/// and fails to parse unless it was our answer cut after its records.
const MAX_REPLY: usize = 512;

/// `dns` check.
pub(crate) struct DnsProbe {
    addr: SocketAddr,
    source: Option<IpAddr>,
    /// The encoded query behind its two-byte length (the TCP framing; UDP sends what
    /// follows it); only the ID (bytes 2 and 3) changes between probes.
    query: Box<[u8]>,
    record: RecordType,
    record_name: DnsRecordType,
    transport: DnsTransport,
}

impl DnsProbe {
    pub(crate) fn new(
        id: ServerId,
        addr: SocketAddr,
        source: Option<IpAddr>,
        dns: &DnsCheck,
    ) -> Result<Self, HealthError> {
        let record = record_type(dns.record);
        let query = encode_query(&dns.query, record)
            .and_then(|q| {
                let len = u16::try_from(q.len()).map_err(|_| "query too long".to_owned())?;
                let mut framed = len.to_be_bytes().to_vec();
                framed.extend_from_slice(&q);
                Ok(framed)
            })
            .map_err(|reason| HealthError::DnsQuery {
                id,
                query: dns.query.clone(),
                reason,
            })?;
        Ok(Self {
            addr,
            source,
            query: query.into_boxed_slice(),
            record,
            record_name: dns.record,
            transport: dns.transport,
        })
    }

    fn local(&self) -> SocketAddr {
        match (self.source, self.addr) {
            (Some(ip), _) => SocketAddr::new(ip, 0),
            (None, SocketAddr::V4(_)) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
            (None, SocketAddr::V6(_)) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0),
        }
    }

    /// A fresh random ID in the query; returns it.
    fn new_id(&mut self) -> u16 {
        let id = random_id();
        self.query[2..4].copy_from_slice(&id.to_be_bytes());
        id
    }

    async fn attempt(&mut self) -> ProbeResult {
        match self.transport {
            DnsTransport::Udp => self.over_udp().await,
            DnsTransport::Tcp => self.over_tcp().await,
            DnsTransport::Both => {
                self.over_udp()
                    .await
                    .map_err(|why| format!("over UDP: {why}"))?;
                self.over_tcp()
                    .await
                    .map_err(|why| format!("over TCP: {why}"))
            }
        }
    }

    async fn over_udp(&mut self) -> ProbeResult {
        let local = self.local();
        let socket = UdpSocket::bind(local)
            .await
            .map_err(|e| describe(&format!("bind to {local}"), &e))?;
        socket
            .connect(self.addr)
            .await
            .map_err(|e| describe(&format!("connect to {}", self.addr), &e))?;
        let id = self.new_id();
        socket
            .send(&self.query[2..])
            .await
            .map_err(|e| describe(&format!("send query to {}", self.addr), &e))?;
        let mut buf = [0u8; MAX_REPLY];
        loop {
            let n = socket
                .recv(&mut buf)
                .await
                .map_err(|e| describe(&format!("receive reply from {}", self.addr), &e))?;
            let reply = &buf[..n];
            // Datagrams that are not the reply to this query are ignored until the
            // timeout (a late reply to an earlier probe, or spoofing).
            if reply.len() < 12 || reply[..2] != id.to_be_bytes() {
                continue;
            }
            return judge(reply, self.record, self.record_name);
        }
    }

    /// One query on a new TCP connection (RFC 1035 4.2.2, RFC 7766): the message behind
    /// its two-byte length each way. The connection is ours alone, so a reply with
    /// another ID is a failure, not something to skip.
    async fn over_tcp(&mut self) -> ProbeResult {
        let local = self.local();
        let socket = match self.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(|e| describe("TCP socket", &e))?;
        if self.source.is_some() {
            socket
                .bind(local)
                .map_err(|e| describe(&format!("bind to {local}"), &e))?;
        }
        let mut stream = socket
            .connect(self.addr)
            .await
            .map_err(|e| describe(&format!("connect to {}", self.addr), &e))?;
        let id = self.new_id();
        stream
            .write_all(&self.query)
            .await
            .map_err(|e| describe(&format!("send query to {}", self.addr), &e))?;
        let mut len = [0u8; 2];
        stream
            .read_exact(&mut len)
            .await
            .map_err(|e| describe(&format!("receive reply from {}", self.addr), &e))?;
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream
            .read_exact(&mut reply)
            .await
            .map_err(|e| describe(&format!("receive reply from {}", self.addr), &e))?;
        if reply.len() < 12 || reply[..2] != id.to_be_bytes() {
            return Err(format!(
                "DNS reply over TCP does not answer the query (ID {id}, {} bytes)",
                reply.len()
            ));
        }
        judge(&reply, self.record, self.record_name)
    }
}

impl Probe for DnsProbe {
    /// Boxed: the receive buffer would otherwise stay reserved in the task between probes;
    /// decoding the reply allocates anyway. With `both`, the UDP and the TCP query share
    /// the one timeout.
    fn probe(&mut self, _timeout: Duration) -> impl Future<Output = ProbeResult> + Send {
        Box::pin(self.attempt())
    }
}

/// Up when `reply` is a response with RCODE NOERROR and at least one answer of type
/// `record`.
fn judge(reply: &[u8], record: RecordType, record_name: DnsRecordType) -> ProbeResult {
    let message = Message::from_vec(reply).map_err(|e| describe("malformed DNS reply", &e))?;
    if message.message_type() != MessageType::Response {
        return Err("DNS reply is not a response (QR bit clear)".to_owned());
    }
    let code = message.response_code();
    if code != ResponseCode::NoError {
        return Err(format!("DNS reply: {code} (RCODE {})", u16::from(code)));
    }
    let count = message
        .answers()
        .iter()
        .filter(|r| r.record_type() == record)
        .count();
    if count == 0 {
        return Err(format!("DNS reply has no {record} record in its answer"));
    }
    Ok(Note::Records {
        count,
        record: record_name,
    })
}

/// A 16-bit query ID no off-path host can guess: SipHash with the process's random keys
/// (which `RandomState` changes at every call).
fn random_id() -> u16 {
    RandomState::new().hash_one(0u8) as u16
}

fn record_type(record: DnsRecordType) -> RecordType {
    match record {
        DnsRecordType::A => RecordType::A,
        DnsRecordType::Aaaa => RecordType::AAAA,
        DnsRecordType::Cname => RecordType::CNAME,
        DnsRecordType::Mx => RecordType::MX,
        DnsRecordType::Ns => RecordType::NS,
        DnsRecordType::Ptr => RecordType::PTR,
        DnsRecordType::Soa => RecordType::SOA,
        DnsRecordType::Srv => RecordType::SRV,
        DnsRecordType::Txt => RecordType::TXT,
    }
}

/// A standard query (ID 0, RD set) for `name`, class IN.
fn encode_query(name: &str, record: RecordType) -> Result<Vec<u8>, String> {
    let mut name = Name::from_ascii(name).map_err(|e| e.to_string())?;
    name.set_fqdn(true);
    let mut message = Message::new();
    message
        .set_id(0)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(name, record));
    message.to_vec().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{RData, Record};

    fn reply(query: &[u8], code: ResponseCode, answers: &[Record]) -> Vec<u8> {
        let q = Message::from_vec(query).unwrap();
        let mut m = Message::new();
        m.set_id(q.id())
            .set_message_type(MessageType::Response)
            .set_op_code(OpCode::Query)
            .set_response_code(code)
            .add_queries(q.queries().to_vec())
            .add_answers(answers.to_vec());
        m.to_vec().unwrap()
    }

    fn a_record(name: &str) -> Record {
        Record::from_rdata(
            Name::from_ascii(name).unwrap(),
            60,
            RData::A(A::new(192, 0, 2, 1)),
        )
    }

    #[test]
    fn query_bytes() {
        let q = encode_query("example.test", RecordType::A).unwrap();
        // Header: ID 0, flags 0x0100 (RD), one question, nothing else.
        assert_eq!(&q[..12], &[0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        // Question: 7"example" 4"test" 0, type A (1), class IN (1).
        assert_eq!(&q[12..], b"\x07example\x04test\x00\x00\x01\x00\x01");
        // A trailing dot makes no difference.
        assert_eq!(encode_query("example.test.", RecordType::A).unwrap(), q);
        assert!(encode_query(&"a".repeat(64), RecordType::A).is_err());
    }

    #[test]
    fn the_query_is_kept_behind_its_tcp_length() {
        let id = ServerId {
            service: 0,
            server: 0,
        };
        let check = DnsCheck {
            query: "example.test".to_owned(),
            record: DnsRecordType::A,
            transport: DnsTransport::Both,
        };
        let mut p = DnsProbe::new(id, "192.0.2.1:53".parse().unwrap(), None, &check).unwrap();
        let bare = encode_query("example.test", RecordType::A).unwrap();
        assert_eq!(
            p.query[..2],
            u16::try_from(bare.len()).unwrap().to_be_bytes()
        );
        assert_eq!(p.query[4..], bare[2..]);
        let new = p.new_id();
        assert_eq!(p.query[2..4], new.to_be_bytes());
    }

    #[test]
    fn judging_replies() {
        let q = encode_query("example.test", RecordType::A).unwrap();
        let ok = reply(&q, ResponseCode::NoError, &[a_record("example.test.")]);
        assert_eq!(
            judge(&ok, RecordType::A, DnsRecordType::A),
            Ok(Note::Records {
                count: 1,
                record: DnsRecordType::A
            })
        );
        // Asked for AAAA, got only A.
        let err = judge(&ok, RecordType::AAAA, DnsRecordType::Aaaa).unwrap_err();
        assert_eq!(err, "DNS reply has no AAAA record in its answer");
        let empty = reply(&q, ResponseCode::NoError, &[]);
        assert!(judge(&empty, RecordType::A, DnsRecordType::A).is_err());
        let nx = reply(&q, ResponseCode::NXDomain, &[]);
        let err = judge(&nx, RecordType::A, DnsRecordType::A).unwrap_err();
        assert!(
            err.starts_with("DNS reply: ") && err.ends_with("(RCODE 3)"),
            "{err}"
        );
        // Our own query echoed back is not an answer.
        assert!(judge(&q, RecordType::A, DnsRecordType::A).is_err());
        assert!(
            judge(&ok[..ok.len() - 3], RecordType::A, DnsRecordType::A)
                .unwrap_err()
                .starts_with("malformed DNS reply")
        );
    }

    #[test]
    fn ids_vary() {
        let ids: std::collections::HashSet<u16> = (0..64).map(|_| random_id()).collect();
        assert!(ids.len() > 32, "{} distinct ids out of 64", ids.len());
    }

    #[test]
    fn every_record_type_maps() {
        for (r, name) in DnsRecordType::ALL {
            assert_eq!(record_type(r).to_string(), name);
        }
    }
}
