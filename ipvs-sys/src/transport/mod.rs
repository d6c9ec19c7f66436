//! The socket transport: a generic-netlink socket that talks IPVS, with batching.
//!
//! [`IpvsSocket`] is blocking; every receive has a timeout, so a lost reply is an
//! error and never a hang. The async twin is `AsyncIpvsSocket` (feature `tokio`).
//! Both drive the same sans-IO [`exchange::Chunk`], which routes replies to requests by
//! sequence number.
//!
//! ```no_run
//! use ipvs_sys::transport::{BatchOptions, IpvsSocket};
//! use ipvs_sys::{DestAttrs, ForwardMethod, IpvsMessage, Protocol, ServiceAttrs};
//!
//! let mut ipvs = IpvsSocket::open()?;
//! let svc = ServiceAttrs::addr_key(Protocol::TCP, "192.0.2.10:80".parse().unwrap())
//!     .with_config("wrr", ipvs_sys::ServiceFlags::EMPTY, 0);
//! let mut msgs = vec![IpvsMessage::new_service(svc.clone())];
//! for port in 8000..8010 {
//!     let d = DestAttrs::key_of(([10, 0, 0, 1], port).into()).with_config(ForwardMethod::MASQ, 1);
//!     msgs.push(IpvsMessage::new_dest(svc.key(), d));
//! }
//! let report = ipvs.batch(&msgs, &BatchOptions::default())?;
//! assert!(report.failures.is_empty());
//! for s in ipvs.services()? {
//!     println!("{s:?}: {} destinations", ipvs.destinations(&s)?.len());
//! }
//! # Ok::<(), ipvs_sys::transport::TransportError>(())
//! ```

#[cfg(feature = "tokio")]
mod async_socket;
pub mod dest_dump;
pub mod error;
pub mod exchange;
mod ops;

#[cfg(feature = "tokio")]
pub use async_socket::AsyncIpvsSocket;

pub use error::{ErrorKind, KernelError, TransportError};
pub use exchange::{AckMode, Outcome};

use crate::daemon::DaemonAttrs;
use crate::dest::DestAttrs;
use crate::info::InfoAttrs;
use crate::message::IpvsMessage;
use crate::service::ServiceAttrs;
use dest_dump::DestDump;
use exchange::{Chunk, ReplyDecodeError};
use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_generic::GenlMessage;
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_GENERIC};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// Bytes asked for one `recv`: the kernel sizes dump chunks after the largest receive
/// buffer it has seen (capped near 32 KiB), so a large one means fewer chunks, and the
/// kernel re-walks its service table from the start for every chunk.
const RECV_BUF: usize = 256 * 1024;
/// Socket receive buffer: must hold every reply of a chunk (ACKs are small, but each
/// costs a socket buffer of its own).
const SO_RCVBUF_BYTES: usize = 32 * 1024 * 1024;
/// Socket send buffer: one `sendmsg` may not exceed it.
const SO_SNDBUF_BYTES: usize = 8 * 1024 * 1024;
/// [`IpvsSocket::table`] decodes on a second thread from this many services on: below,
/// starting a thread costs more than it saves.
const TABLE_PIPELINE_MIN_SERVICES: usize = 256;
/// Chunks a batch's encoding thread may be ahead of the sending one.
const ENCODE_AHEAD: usize = 2;
/// Destination dumps handed to the decoding thread at a time (one wake-up each).
const TABLE_PIPELINE_BATCH: usize = 64;
/// Batches queued for the decoding thread at most (bounds the memory held).
const TABLE_PIPELINE_QUEUE: usize = 16;

/// How a batch is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchOptions {
    /// Requests per `sendmsg`; each chunk is answered before the next is sent, so the
    /// replies in flight are bounded and the socket never overflows (no `ENOBUFS`).
    /// Gains flatten above 256.
    pub chunk: usize,
    /// Most bytes per `sendmsg` (the kernel refuses a message larger than the socket's
    /// send buffer).
    pub chunk_bytes: usize,
    /// Which requests ask for an ACK.
    pub ack: AckMode,
    /// Stop after the first chunk that had a failure (the kernel still handled every
    /// request of that chunk), or send everything and report every failure.
    pub stop_at_first_error: bool,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            chunk: 512,
            chunk_bytes: 1024 * 1024,
            ack: AckMode::LastOfChunk,
            stop_at_first_error: false,
        }
    }
}

/// A request of a batch that the kernel refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchFailure {
    /// Index of the request in the batch.
    pub index: usize,
    /// Why, naming the operation and the object.
    pub error: KernelError,
}

/// What a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Requests the kernel handled (succeeded or failed).
    pub handled: usize,
    /// Requests not sent because an earlier chunk failed (`stop_at_first_error`).
    pub not_sent: usize,
    /// Every refused request.
    pub failures: Vec<BatchFailure>,
    /// `sendmsg` calls made.
    pub sends: usize,
}

/// A generic-netlink socket bound to the IPVS family of one network namespace.
#[derive(Debug)]
pub struct IpvsSocket {
    sock: Socket,
    family_id: u16,
    seq: u32,
    timeout: Duration,
    send_buf: Vec<u8>,
    recv_buf: Vec<u8>,
    /// Most bytes one `sendmsg` may carry (half the socket's send buffer).
    max_send: usize,
}

impl IpvsSocket {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Self, TransportError> {
        let sock = new_socket()?;
        Self::with_socket(sock)
    }

    /// Opens a socket in the network namespace at `path` (e.g. `/run/netns/NAME` or
    /// `/proc/PID/ns/net`). A helper thread enters the namespace to create the socket;
    /// the calling thread never moves. The socket stays in that namespace.
    pub fn open_in_netns(path: impl AsRef<Path>) -> Result<Self, TransportError> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|source| TransportError::Netns {
            netns: path.display().to_string(),
            source,
        })?;
        Self::open_in_netns_fd_named(file.as_fd(), &path.display().to_string())
    }

    /// Opens a socket in the network namespace `fd` refers to (see
    /// [`open_in_netns`](Self::open_in_netns)).
    pub fn open_in_netns_fd(fd: BorrowedFd<'_>) -> Result<Self, TransportError> {
        Self::open_in_netns_fd_named(fd, &format!("fd {}", fd.as_raw_fd()))
    }

    fn open_in_netns_fd_named(fd: BorrowedFd<'_>, name: &str) -> Result<Self, TransportError> {
        let netns = |source| TransportError::Netns {
            netns: name.to_string(),
            source,
        };
        let sock = std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| netns(std::io::Error::from(e)))?;
                new_socket()
            })
            .join()
            .unwrap_or_else(|_| Err(netns(std::io::Error::other("helper thread panicked"))))
        })?;
        Self::with_socket(sock)
    }

    fn with_socket(sock: Socket) -> Result<Self, TransportError> {
        let mut s = Self {
            sock,
            family_id: 0,
            seq: initial_seq(),
            timeout: Duration::from_secs(10),
            send_buf: Vec::with_capacity(64 * 1024),
            recv_buf: vec![0; RECV_BUF],
            max_send: 64 * 1024,
        };
        if let Ok(n) =
            nix::sys::socket::getsockopt(&s.sock.as_fd(), nix::sys::socket::sockopt::SndBuf)
        {
            // The kernel reports twice what it accounts for payload.
            s.max_send = (n / 2).saturating_sub(1024).max(16 * 1024);
        }
        s.family_id = s.resolve_family()?;
        Ok(s)
    }

    /// The id the kernel gave the IPVS family in this socket's namespace.
    pub fn family_id(&self) -> u16 {
        self.family_id
    }

    /// How long to wait for each reply (default 10 s).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// How long each wait for a reply lasts.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn next_seq(&mut self, n: usize) -> u32 {
        let first = self.seq;
        self.seq = self.seq.wrapping_add(u32::try_from(n).unwrap_or(u32::MAX));
        first
    }

    fn resolve_family(&mut self) -> Result<u16, TransportError> {
        let seq = self.next_seq(1);
        let mut msg = NetlinkMessage::from(GenlMessage::from_payload(GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName("IPVS".to_string())],
        }));
        msg.header.flags = NLM_F_REQUEST | NLM_F_ACK;
        msg.header.sequence_number = seq;
        msg.finalize();
        let mut buf = vec![0; msg.buffer_len()];
        msg.serialize(&mut buf);
        self.send(&buf, "resolve generic netlink family \"IPVS\"")?;
        let deadline = Instant::now() + self.timeout;
        let mut id = None;
        loop {
            let n = self.recv(deadline, "resolve generic netlink family \"IPVS\"")?;
            let mut rest = self.recv_buf.get(..n).unwrap_or_default();
            while rest.len() >= 16 {
                let len = rest
                    .first_chunk::<4>()
                    .map_or(0, |b| u32::from_ne_bytes(*b) as usize)
                    .max(16)
                    .min(rest.len());
                let one = rest.get(..len).unwrap_or_default();
                rest = rest
                    .get(len.next_multiple_of(4).min(rest.len())..)
                    .unwrap_or_default();
                let parsed = NetlinkMessage::<GenlMessage<GenlCtrl>>::deserialize(one)
                    .map_err(|e| TransportError::Resolve(e.to_string()))?;
                if parsed.header.sequence_number != seq {
                    continue;
                }
                match parsed.payload {
                    NetlinkPayload::InnerMessage(genl) => {
                        id = genl.payload.nlas.iter().find_map(|a| match a {
                            GenlCtrlAttrs::FamilyId(id) => Some(*id),
                            _ => None,
                        });
                    }
                    NetlinkPayload::Error(e) => match e.code.map(|c| -c.get()) {
                        None => {
                            return id.ok_or_else(|| {
                                TransportError::Resolve("no family id in the reply".into())
                            });
                        }
                        Some(libc::ENOENT) => return Err(TransportError::IpvsUnavailable),
                        Some(errno) => {
                            return Err(TransportError::Resolve(
                                std::io::Error::from_raw_os_error(errno).to_string(),
                            ));
                        }
                    },
                    _ => {}
                }
            }
        }
    }

    fn send(&self, buf: &[u8], op: &'static str) -> Result<(), TransportError> {
        let n = self
            .sock
            .send(buf, 0)
            .map_err(|source| TransportError::Io { op, source })?;
        if n != buf.len() {
            return Err(TransportError::Io {
                op,
                source: std::io::Error::other(format!("short send: {n} of {} bytes", buf.len())),
            });
        }
        Ok(())
    }

    /// Receives one datagram into `recv_buf`, waiting at most until `deadline`.
    ///
    /// Tries to receive first and polls only when nothing is there: the kernel handles a
    /// request inside `sendmsg` and fills the next dump chunk inside `recvmsg`, so the
    /// reply is almost always queued already, and a `poll` per datagram would double the
    /// system calls of a dump.
    fn recv(&mut self, deadline: Instant, op: &'static str) -> Result<usize, TransportError> {
        loop {
            match self.try_recv() {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(TransportError::Io { op, source }),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(TransportError::Timeout {
                    op,
                    timeout: self.timeout,
                });
            }
            let ms = u16::try_from(left.as_millis().saturating_add(1)).unwrap_or(u16::MAX);
            let mut fds = [nix::poll::PollFd::new(
                self.sock.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    return Err(TransportError::Io {
                        op,
                        source: e.into(),
                    });
                }
            }
        }
    }

    /// One non-blocking `recv` into `recv_buf`; a datagram larger than the buffer is an
    /// error, never silently truncated.
    fn try_recv(&mut self) -> std::io::Result<usize> {
        let mut buf = self.recv_buf.as_mut_slice();
        let n = self
            .sock
            .recv(&mut buf, libc::MSG_DONTWAIT | libc::MSG_TRUNC)?;
        if n > RECV_BUF {
            return Err(std::io::Error::other(format!(
                "reply of {n} bytes truncated to {RECV_BUF}"
            )));
        }
        Ok(n)
    }

    /// Encodes requests from the start of `msgs` as one chunk and sends it. Returns the
    /// chunk that will collect the replies and how many requests it holds.
    fn send_chunk(
        &mut self,
        msgs: &[IpvsMessage],
        max_count: usize,
        max_bytes: usize,
        ack: AckMode,
        op: &'static str,
    ) -> Result<(Chunk, usize), TransportError> {
        let first = self.seq;
        let mut buf = std::mem::take(&mut self.send_buf);
        let encoded = exchange::encode_chunk(
            &mut buf,
            msgs,
            self.family_id,
            first,
            max_count,
            max_bytes.min(self.max_send),
            ack,
        );
        let sent = match encoded {
            Ok(count) => self.send(&buf, op).map(|()| count),
            Err((i, source)) => Err(encode_error(msgs, i, op, source)),
        };
        self.send_buf = buf;
        let count = sent?;
        self.next_seq(count);
        Ok((Chunk::new(first, count, ack), count))
    }

    /// Feeds the datagram in `recv_buf[..n]` to `replies`.
    fn feed(
        &self,
        replies: &mut impl Collector,
        n: usize,
        op: &'static str,
    ) -> Result<(), TransportError> {
        let data = self.recv_buf.get(..n).unwrap_or_default();
        replies
            .on_datagram(data, self.family_id)
            .map_err(|source| TransportError::Decode { op, source })
    }

    /// Receives until `replies` is complete, for at most the timeout.
    fn wait(
        &mut self,
        replies: &mut impl Collector,
        op: &'static str,
    ) -> Result<(), TransportError> {
        let deadline = Instant::now() + self.timeout;
        while !replies.is_complete() {
            let n = self.recv(deadline, op)?;
            self.feed(replies, n, op)?;
        }
        Ok(())
    }

    /// Sends requests from the start of `msgs` as one chunk (at most `max_count`, and
    /// at most the socket's send size) and waits for their replies. Returns the chunk
    /// and how many requests it holds.
    fn exchange(
        &mut self,
        msgs: &[IpvsMessage],
        max_count: usize,
        max_bytes: usize,
        ack: AckMode,
        op: &'static str,
    ) -> Result<(Chunk, usize), TransportError> {
        let (mut chunk, count) = self.send_chunk(msgs, max_count, max_bytes, ack, op)?;
        self.wait(&mut chunk, op)?;
        Ok((chunk, count))
    }

    /// Sends one request and waits for all of its replies.
    fn exchange_one(&mut self, msg: &IpvsMessage) -> Result<Chunk, TransportError> {
        let op = error::operation(msg.command);
        let (chunk, _) = self.exchange(
            std::slice::from_ref(msg),
            1,
            usize::MAX,
            AckMode::EveryMessage,
            op,
        )?;
        Ok(chunk)
    }

    /// Sends one request that changes state and waits for its ACK.
    pub fn execute(&mut self, msg: &IpvsMessage) -> Result<(), TransportError> {
        ops::execute_result(msg, self.exchange_one(msg)?)
    }

    /// Sends one non-dump `GET_*` request and returns its data reply.
    pub fn get(&mut self, msg: &IpvsMessage) -> Result<IpvsMessage, TransportError> {
        ops::get_result(msg, self.exchange_one(msg)?)
    }

    /// Runs a dump request and returns every entry; a dump interrupted by a concurrent
    /// change (`NLM_F_DUMP_INTR`) is run again.
    pub fn dump(&mut self, msg: &IpvsMessage) -> Result<Vec<IpvsMessage>, TransportError> {
        for _ in 0..ops::DUMP_ATTEMPTS {
            if let Some(entries) = ops::dump_result(msg, self.exchange_one(msg)?)? {
                return Ok(entries);
            }
        }
        Err(ops::dump_interrupted(msg))
    }

    /// Sends many requests, `opts.chunk` per `sendmsg`, and reports every failure with
    /// the request that caused it. Dumps do not belong in a batch: use [`dump`](Self::dump).
    ///
    /// A batch of more than one chunk, on a machine with more than one CPU, is encoded
    /// on a second thread one chunk ahead of the one being sent: the kernel does its work
    /// inside `sendmsg`, so the encoding of the next chunk costs no time (measured in the
    /// lab, BENCHMARKS.md). The chunks, their order, the replies and the report are the
    /// same.
    pub fn batch(
        &mut self,
        msgs: &[IpvsMessage],
        opts: &BatchOptions,
    ) -> Result<BatchReport, TransportError> {
        if msgs.len() > opts.chunk.max(1)
            && std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
        {
            return self.batch_encoding_ahead(msgs, opts);
        }
        let mut report = BatchReport::default();
        while let Some(rest) = ops::unsent(msgs, &report) {
            let (chunk, count) =
                self.exchange(rest, opts.chunk, opts.chunk_bytes, opts.ack, "batch")?;
            if !ops::record_chunk(&mut report, msgs, chunk, count, opts) {
                break;
            }
        }
        Ok(report)
    }

    /// [`batch`](Self::batch) with the chunks encoded on a second thread, handed over
    /// through a queue of [`ENCODE_AHEAD`] chunks and sent in order from this one.
    fn batch_encoding_ahead(
        &mut self,
        msgs: &[IpvsMessage],
        opts: &BatchOptions,
    ) -> Result<BatchReport, TransportError> {
        let family_id = self.family_id;
        let first_seq = self.seq;
        let max_bytes = opts.chunk_bytes.min(self.max_send);
        let (chunk, ack) = (opts.chunk, opts.ack);
        std::thread::scope(|s| {
            // (buffer, first sequence number, index of its first message, its size), or
            // the index of a message that does not encode and why.
            let (tx, rx) = std::sync::mpsc::sync_channel::<
                Result<(Vec<u8>, u32, usize, usize), (usize, crate::Error)>,
            >(ENCODE_AHEAD);
            let (spent, spent_rx) = std::sync::mpsc::channel::<Vec<u8>>();
            s.spawn(move || {
                let (mut start, mut seq) = (0, first_seq);
                while let Some(rest) = msgs.get(start..).filter(|r| !r.is_empty()) {
                    let mut buf = spent_rx.try_recv().unwrap_or_default();
                    let item = exchange::encode_chunk(
                        &mut buf, rest, family_id, seq, chunk, max_bytes, ack,
                    )
                    .map(|count| (buf, seq, start, count))
                    .map_err(|(i, e)| (start + i, e));
                    let Ok((_, _, _, count)) = &item else {
                        let _ = tx.send(item);
                        return;
                    };
                    let count = *count;
                    if tx.send(item).is_err() {
                        return; // the sender stopped
                    }
                    start += count;
                    seq = seq.wrapping_add(u32::try_from(count).unwrap_or(u32::MAX));
                }
            });
            // `rx` goes when this closure returns, early or not: the encoder then stops
            // at its next chunk, before the scope joins it.
            let mut report = BatchReport::default();
            for item in rx {
                let (buf, seq, start, count) =
                    item.map_err(|(i, source)| encode_error(msgs, i, "batch", source))?;
                debug_assert_eq!(start, report.handled);
                self.send(&buf, "batch")?;
                self.seq = seq.wrapping_add(u32::try_from(count).unwrap_or(u32::MAX));
                let mut replies = Chunk::new(seq, count, ack);
                self.wait(&mut replies, "batch")?;
                let _ = spent.send(buf);
                if !ops::record_chunk(&mut report, msgs, replies, count, opts) {
                    break;
                }
            }
            Ok(report)
        })
    }

    /// Every service, with its statistics.
    pub fn services(&mut self) -> Result<Vec<ServiceAttrs>, TransportError> {
        Ok(ops::services_of(self.dump(&IpvsMessage::dump_services())?))
    }

    /// One service, by its key (protocol, address and port; or fwmark and family).
    pub fn service(&mut self, key: &ServiceAttrs) -> Result<ServiceAttrs, TransportError> {
        ops::service_of(self.get(&IpvsMessage::get_service(key.key()))?)
    }

    /// The destinations of `service`, with their statistics (empty if the service does
    /// not exist: the kernel answers such a dump with nothing, not an error). The entries
    /// are decoded straight into `DestAttrs` ([`dest_dump`]).
    pub fn destinations(
        &mut self,
        service: &ServiceAttrs,
    ) -> Result<Vec<DestAttrs>, TransportError> {
        let dump = self.dest_dump(service)?;
        ops::decode_dests(&dump, self.family_id, service.af)
    }

    /// Runs the destination dump of `service` (again while it is interrupted) and keeps
    /// its replies undecoded.
    fn dest_dump(&mut self, service: &ServiceAttrs) -> Result<DestDump, TransportError> {
        let msg = IpvsMessage::dump_dests(service.key());
        let op = error::operation(msg.command);
        for _ in 0..ops::DUMP_ATTEMPTS {
            let mut dump = self.send_dest_dump(&msg, op)?;
            self.wait(&mut dump, op)?;
            if let Some(dump) = ops::dest_dump_result(&msg, dump)? {
                return Ok(dump);
            }
        }
        Err(ops::dump_interrupted(&msg))
    }

    /// Sends the destination dump request `msg`; returns what collects its replies.
    fn send_dest_dump(
        &mut self,
        msg: &IpvsMessage,
        op: &'static str,
    ) -> Result<DestDump, TransportError> {
        let seq = self.seq;
        let one = std::slice::from_ref(msg);
        self.send_chunk(one, 1, usize::MAX, AckMode::EveryMessage, op)?;
        Ok(DestDump::new(seq))
    }

    /// Every service with its destinations, all with their statistics: the whole table,
    /// as [`services`](Self::services) and then [`destinations`](Self::destinations) of
    /// each would read it (one service dump, one destination dump per service).
    ///
    /// The fastest way to read a large table: with a few hundred services or more, on a
    /// machine with more than one CPU, the destination dumps are decoded on a second
    /// thread while this one waits for the kernel to fill the next dump (inside
    /// `sendmsg`/`recvmsg`). Measured in the lab (10,000 services x 10 destinations,
    /// BENCHMARKS.md) on a quiet machine: 1.18-1.22x the cost of the raw dump (receiving
    /// without decoding) against 1.25-1.39x decoded on one thread, for 40-50% more CPU
    /// time. Smaller tables, a single CPU, or a thread that cannot be started: decoded on
    /// the calling thread, as [`table_single_thread`](Self::table_single_thread) does.
    ///
    /// ```no_run
    /// let mut ipvs = ipvs_sys::transport::IpvsSocket::open()?;
    /// for (service, dests) in ipvs.table()? {
    ///     println!("{:?}: {} destinations", service.addr, dests.len());
    /// }
    /// # Ok::<(), ipvs_sys::transport::TransportError>(())
    /// ```
    pub fn table(&mut self) -> Result<Vec<(ServiceAttrs, Vec<DestAttrs>)>, TransportError> {
        let services = self.services()?;
        if services.len() < TABLE_PIPELINE_MIN_SERVICES
            || std::thread::available_parallelism().is_ok_and(|n| n.get() < 2)
        {
            return self.table_inline(services);
        }
        let family_id = self.family_id;
        std::thread::scope(|scope| {
            let (tx, rx) =
                std::sync::mpsc::sync_channel::<Vec<(DestDump, Option<_>)>>(TABLE_PIPELINE_QUEUE);
            let decoder = std::thread::Builder::new()
                .name("ipvs-decode".into())
                .spawn_scoped(scope, move || {
                    let mut all = Vec::new();
                    for batch in rx {
                        for (dump, hint) in batch {
                            all.push(ops::decode_dests(&dump, family_id, hint)?);
                        }
                    }
                    Ok::<_, TransportError>(all)
                });
            let Ok(decoder) = decoder else {
                return self.table_inline(services);
            };
            let mut io = Ok(());
            let mut batch = Vec::with_capacity(TABLE_PIPELINE_BATCH);
            for s in &services {
                match self.dest_dump(s) {
                    Ok(d) => batch.push((d, s.af)),
                    Err(e) => {
                        io = Err(e);
                        break;
                    }
                }
                if batch.len() == TABLE_PIPELINE_BATCH {
                    let full =
                        std::mem::replace(&mut batch, Vec::with_capacity(TABLE_PIPELINE_BATCH));
                    if tx.send(full).is_err() {
                        break; // the decoder stopped at an error, returned below
                    }
                }
            }
            if io.is_ok() && !batch.is_empty() {
                let _ = tx.send(batch);
            }
            drop(tx);
            let decoded = decoder.join().unwrap_or_else(|_| {
                Err(TransportError::Io {
                    op: "dump destinations",
                    source: std::io::Error::other("decoding thread panicked"),
                })
            });
            io?;
            let decoded = decoded?;
            if decoded.len() != services.len() {
                return Err(TransportError::UnexpectedReply {
                    op: "dump destinations",
                    what: "fewer destination dumps decoded than services",
                });
            }
            Ok(services.into_iter().zip(decoded).collect())
        })
    }

    /// [`table`](Self::table) decoded on the calling thread whatever the size of the
    /// table: the least CPU time, for a caller that prefers it to the shortest time.
    ///
    /// ```no_run
    /// let mut ipvs = ipvs_sys::transport::IpvsSocket::open()?;
    /// let table = ipvs.table_single_thread()?;
    /// println!("{} services", table.len());
    /// # Ok::<(), ipvs_sys::transport::TransportError>(())
    /// ```
    pub fn table_single_thread(
        &mut self,
    ) -> Result<Vec<(ServiceAttrs, Vec<DestAttrs>)>, TransportError> {
        let services = self.services()?;
        self.table_inline(services)
    }

    fn table_inline(
        &mut self,
        services: Vec<ServiceAttrs>,
    ) -> Result<Vec<(ServiceAttrs, Vec<DestAttrs>)>, TransportError> {
        let mut table = Vec::with_capacity(services.len());
        for s in services {
            let dests = self.destinations(&s)?;
            table.push((s, dests));
        }
        Ok(table)
    }

    /// The running sync daemons.
    pub fn daemons(&mut self) -> Result<Vec<DaemonAttrs>, TransportError> {
        Ok(ops::daemons_of(self.dump(&IpvsMessage::dump_daemons())?))
    }

    /// The IPVS version and connection table size.
    pub fn info(&mut self) -> Result<InfoAttrs, TransportError> {
        ops::info_of(self.get(&IpvsMessage::get_info())?)
    }

    /// The TCP, TCP FIN and UDP timeouts, in seconds.
    pub fn timeouts(&mut self) -> Result<(u32, u32, u32), TransportError> {
        ops::timeouts_of(self.get(&IpvsMessage::get_config())?)
    }
}

/// Message `i` of `msgs` does not encode: the error names its operation and object
/// (`op` if there is no such message).
fn encode_error(
    msgs: &[IpvsMessage],
    i: usize,
    op: &'static str,
    source: crate::Error,
) -> TransportError {
    let m = msgs.get(i);
    TransportError::Encode {
        op: m.map_or(op, |m| error::operation(m.command)),
        object: m.map(error::describe).unwrap_or_default(),
        source,
    }
}

/// What collects the replies of a request: a [`Chunk`] or a [`DestDump`].
pub(crate) trait Collector {
    /// Feeds one received datagram.
    fn on_datagram(&mut self, buf: &[u8], family_id: u16) -> Result<(), ReplyDecodeError>;
    /// Whether every reply waited for has arrived.
    fn is_complete(&self) -> bool;
}

impl Collector for Chunk {
    fn on_datagram(&mut self, buf: &[u8], family_id: u16) -> Result<(), ReplyDecodeError> {
        Chunk::on_datagram(self, buf, family_id)
    }
    fn is_complete(&self) -> bool {
        Chunk::is_complete(self)
    }
}

impl Collector for DestDump {
    fn on_datagram(&mut self, buf: &[u8], family_id: u16) -> Result<(), ReplyDecodeError> {
        DestDump::on_datagram(self, buf, family_id)
    }
    fn is_complete(&self) -> bool {
        DestDump::is_complete(self)
    }
}

impl AsRawFd for IpvsSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.sock.as_raw_fd()
    }
}

fn new_socket() -> Result<Socket, TransportError> {
    let io = |op| move |source| TransportError::Io { op, source };
    let mut sock = Socket::new(NETLINK_GENERIC).map_err(io("open generic netlink socket"))?;
    sock.bind_auto()
        .map_err(io("bind generic netlink socket"))?;
    sock.connect(&SocketAddr::new(0, 0))
        .map_err(io("connect generic netlink socket"))?;
    // Capped ACKs: the kernel does not echo each request back in its ACK.
    sock.set_cap_ack(true).map_err(io("set NETLINK_CAP_ACK"))?;
    sock.set_ext_ack(true).map_err(io("set NETLINK_EXT_ACK"))?;
    // Large buffers so a chunk's replies always fit. The *FORCE variants need
    // CAP_NET_ADMIN (which IPVS needs anyway); fall back to the capped ones.
    use nix::sys::socket::{setsockopt, sockopt};
    let fd = sock.as_fd();
    if setsockopt(&fd, sockopt::RcvBufForce, &SO_RCVBUF_BYTES).is_err() {
        let _ = setsockopt(&fd, sockopt::RcvBuf, &SO_RCVBUF_BYTES);
    }
    if setsockopt(&fd, sockopt::SndBufForce, &SO_SNDBUF_BYTES).is_err() {
        let _ = setsockopt(&fd, sockopt::SndBuf, &SO_SNDBUF_BYTES);
    }
    Ok(sock)
}

/// A starting sequence number that differs between sockets, so that a stale reply to
/// another socket's request can never be mistaken for ours.
fn initial_seq() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    t ^ std::process::id().rotate_left(16)
}
