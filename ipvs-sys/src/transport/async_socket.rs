//! The async (tokio) socket: [`AsyncIpvsSocket`].

use super::exchange::{AckMode, Chunk};
use super::{BatchOptions, BatchReport, Collector, IpvsSocket, TransportError, ops};
use crate::daemon::DaemonAttrs;
use crate::dest::DestAttrs;
use crate::info::InfoAttrs;
use crate::message::IpvsMessage;
use crate::service::ServiceAttrs;
use std::os::fd::BorrowedFd;
use std::path::Path;
use tokio::io::unix::AsyncFd;

/// An IPVS socket for tokio: the same requests, batching and replies as [`IpvsSocket`],
/// waiting without blocking a thread. Every wait has the socket's timeout.
///
/// Opening makes one short blocking round trip to the kernel (resolving the family id).
///
/// ```no_run
/// # async fn f() -> Result<(), ipvs_sys::transport::TransportError> {
/// use ipvs_sys::transport::AsyncIpvsSocket;
/// let mut ipvs = AsyncIpvsSocket::open()?;
/// for svc in ipvs.services().await? {
///     println!("{:?} has {} destinations", svc.addr, ipvs.destinations(&svc).await?.len());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AsyncIpvsSocket {
    io: AsyncFd<IpvsSocket>,
}

impl AsyncIpvsSocket {
    /// Opens a socket in the calling thread's network namespace. Needs a tokio runtime
    /// with I/O enabled.
    pub fn open() -> Result<Self, TransportError> {
        Self::new(IpvsSocket::open()?)
    }

    /// Opens a socket in the network namespace at `path` (the calling thread never moves).
    pub fn open_in_netns(path: impl AsRef<Path>) -> Result<Self, TransportError> {
        Self::new(IpvsSocket::open_in_netns(path)?)
    }

    /// Opens a socket in the network namespace `fd` refers to.
    pub fn open_in_netns_fd(fd: BorrowedFd<'_>) -> Result<Self, TransportError> {
        Self::new(IpvsSocket::open_in_netns_fd(fd)?)
    }

    /// Makes a blocking socket async.
    pub fn new(inner: IpvsSocket) -> Result<Self, TransportError> {
        inner
            .sock
            .set_non_blocking(true)
            .map_err(|source| TransportError::Io {
                op: "set the IPVS socket non-blocking",
                source,
            })?;
        // SAFETY: the AsyncFd owns the socket, so its descriptor stays open and the same
        // for the AsyncFd's whole life (IpvsSocket never replaces its socket).
        let io = unsafe { AsyncFd::register(inner) }.map_err(|e| TransportError::Io {
            op: "register the IPVS socket with tokio",
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(Self { io })
    }

    /// The id the kernel gave the IPVS family in this socket's namespace.
    pub fn family_id(&self) -> u16 {
        self.io.get_ref().family_id()
    }

    /// How long to wait for the replies of each request or chunk (default 10 s).
    pub fn set_timeout(&mut self, timeout: std::time::Duration) {
        self.io.get_mut().set_timeout(timeout);
    }

    /// How long each wait for replies lasts.
    pub fn timeout(&self) -> std::time::Duration {
        self.io.get_ref().timeout()
    }

    async fn exchange(
        &mut self,
        msgs: &[IpvsMessage],
        max_count: usize,
        max_bytes: usize,
        ack: AckMode,
        op: &'static str,
    ) -> Result<(Chunk, usize), TransportError> {
        let inner = self.io.get_mut();
        let (mut chunk, count) = inner.send_chunk(msgs, max_count, max_bytes, ack, op)?;
        self.wait(&mut chunk, op).await?;
        Ok((chunk, count))
    }

    /// Receives until `replies` is complete, for at most the timeout.
    async fn wait(
        &mut self,
        replies: &mut impl Collector,
        op: &'static str,
    ) -> Result<(), TransportError> {
        let timeout = self.io.get_ref().timeout;
        let chunk = replies;
        let wait = async {
            while !chunk.is_complete() {
                // The reply is usually queued already (see IpvsSocket::recv): try first,
                // and wait for readiness only when there is nothing to read.
                let inner = self.io.get_mut();
                match inner.try_recv() {
                    Ok(n) => {
                        inner.feed(chunk, n, op)?;
                        continue;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(source) => return Err(TransportError::Io { op, source }),
                }
                let mut guard = self
                    .io
                    .readable_mut()
                    .await
                    .map_err(|source| TransportError::Io { op, source })?;
                match guard.try_io(|io| io.get_mut().try_recv()) {
                    Ok(Ok(n)) => guard.get_inner().feed(chunk, n, op)?,
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Ok(Err(source)) => return Err(TransportError::Io { op, source }),
                    Err(_would_block) => {}
                }
            }
            Ok(())
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| TransportError::Timeout { op, timeout })?
    }

    async fn exchange_one(&mut self, msg: &IpvsMessage) -> Result<Chunk, TransportError> {
        let op = super::error::operation(msg.command);
        let one = std::slice::from_ref(msg);
        Ok(self
            .exchange(one, 1, usize::MAX, AckMode::EveryMessage, op)
            .await?
            .0)
    }

    /// Sends one request that changes state and waits for its ACK.
    pub async fn execute(&mut self, msg: &IpvsMessage) -> Result<(), TransportError> {
        ops::execute_result(msg, self.exchange_one(msg).await?)
    }

    /// Sends one non-dump `GET_*` request and returns its data reply.
    pub async fn get(&mut self, msg: &IpvsMessage) -> Result<IpvsMessage, TransportError> {
        ops::get_result(msg, self.exchange_one(msg).await?)
    }

    /// Runs a dump request and returns every entry (an interrupted dump is run again).
    pub async fn dump(&mut self, msg: &IpvsMessage) -> Result<Vec<IpvsMessage>, TransportError> {
        for _ in 0..ops::DUMP_ATTEMPTS {
            if let Some(entries) = ops::dump_result(msg, self.exchange_one(msg).await?)? {
                return Ok(entries);
            }
        }
        Err(ops::dump_interrupted(msg))
    }

    /// Sends many requests in chunks and reports every failure with its request; see
    /// [`IpvsSocket::batch`].
    pub async fn batch(
        &mut self,
        msgs: &[IpvsMessage],
        opts: &BatchOptions,
    ) -> Result<BatchReport, TransportError> {
        let mut report = BatchReport::default();
        while let Some(rest) = ops::unsent(msgs, &report) {
            let (chunk, count) = self
                .exchange(rest, opts.chunk, opts.chunk_bytes, opts.ack, "batch")
                .await?;
            if !ops::record_chunk(&mut report, msgs, chunk, count, opts) {
                break;
            }
        }
        Ok(report)
    }

    /// Every service, with its statistics.
    pub async fn services(&mut self) -> Result<Vec<ServiceAttrs>, TransportError> {
        Ok(ops::services_of(
            self.dump(&IpvsMessage::dump_services()).await?,
        ))
    }

    /// One service, by its key.
    pub async fn service(&mut self, key: &ServiceAttrs) -> Result<ServiceAttrs, TransportError> {
        ops::service_of(self.get(&IpvsMessage::get_service(key.key())).await?)
    }

    /// The destinations of `service` (empty if the service does not exist).
    pub async fn destinations(
        &mut self,
        service: &ServiceAttrs,
    ) -> Result<Vec<DestAttrs>, TransportError> {
        let msg = IpvsMessage::dump_dests(service.key());
        let op = super::error::operation(msg.command);
        for _ in 0..ops::DUMP_ATTEMPTS {
            let mut dump = self.io.get_mut().send_dest_dump(&msg, op)?;
            self.wait(&mut dump, op).await?;
            if let Some(dump) = ops::dest_dump_result(&msg, dump)? {
                return ops::decode_dests(&dump, self.family_id(), service.af);
            }
        }
        Err(ops::dump_interrupted(&msg))
    }

    /// Every service with its destinations; see [`IpvsSocket::table`].
    pub async fn table(&mut self) -> Result<Vec<(ServiceAttrs, Vec<DestAttrs>)>, TransportError> {
        let services = self.services().await?;
        let mut table = Vec::with_capacity(services.len());
        for s in services {
            let dests = self.destinations(&s).await?;
            table.push((s, dests));
        }
        Ok(table)
    }

    /// The running sync daemons.
    pub async fn daemons(&mut self) -> Result<Vec<DaemonAttrs>, TransportError> {
        Ok(ops::daemons_of(
            self.dump(&IpvsMessage::dump_daemons()).await?,
        ))
    }

    /// The IPVS version and connection table size.
    pub async fn info(&mut self) -> Result<InfoAttrs, TransportError> {
        ops::info_of(self.get(&IpvsMessage::get_info()).await?)
    }

    /// The TCP, TCP FIN and UDP timeouts, in seconds.
    pub async fn timeouts(&mut self) -> Result<(u32, u32, u32), TransportError> {
        ops::timeouts_of(self.get(&IpvsMessage::get_config()).await?)
    }
}
