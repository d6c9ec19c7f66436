//! TCP probe: a connection is accepted; and the connect step the HTTP probes share.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};

use super::probe::{Note, Probe, ProbeResult, describe};
use crate::config::TcpClose;

/// Connects to `addr`, from `source` when given (the kernel picks the port at connect
/// time, so probes from one source address to many servers do not exhaust the ports).
///
/// Errors are described: `connect to ADDR: ...` or `bind to SOURCE: ...`.
pub(crate) async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream, String> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| describe("create socket", &e))?;
    if let Some(ip) = source {
        // Best effort: without it the port is chosen at bind time, which still works.
        let _ = nix::sys::socket::setsockopt(
            &socket,
            nix::sys::socket::sockopt::IpBindAddressNoPort,
            &true,
        );
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| describe(&format!("bind to {ip}"), &e))?;
    }
    socket
        .connect(addr)
        .await
        .map_err(|e: io::Error| describe(&format!("connect to {addr}"), &e))
}

/// `tcp` check: connect, then close (with a reset or a FIN, as configured).
pub(crate) struct TcpProbe {
    addr: SocketAddr,
    source: Option<IpAddr>,
    close: TcpClose,
}

impl TcpProbe {
    pub(crate) fn new(addr: SocketAddr, source: Option<IpAddr>, close: TcpClose) -> Self {
        Self {
            addr,
            source,
            close,
        }
    }

    /// Prepares a probe's connected socket for its close as configured: for
    /// [`TcpClose::Reset`] a zero linger time, so that dropping the socket sends a reset
    /// and leaves no TIME_WAIT socket. Best effort: if the option cannot be set, the
    /// close is a normal one.
    pub(crate) fn before_close(&self, socket: socket2::SockRef<'_>) {
        if self.close == TcpClose::Reset {
            let _ = socket.set_linger(Some(Duration::ZERO));
        }
    }

    /// Where it connects.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The source address it binds to, if any.
    pub(crate) fn source(&self) -> Option<IpAddr> {
        self.source
    }
}

impl Probe for TcpProbe {
    async fn probe(&mut self, _timeout: Duration) -> ProbeResult {
        let stream = connect(self.addr, self.source).await?;
        self.before_close(socket2::SockRef::from(&stream));
        drop(stream);
        Ok(Note::Connected)
    }
}
