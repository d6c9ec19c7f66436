//! A TCP server in a test namespace that stands in for a real server in health-check
//! tests: it accepts connections, reads until the client closes (so the kernel's counters
//! see whole connections), and closes them, until dropped. It counts the connections it
//! accepted (a TCP health check is one connection per probe).

use crate::netns::{CmdError, TestNs};
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// A TCP server in a namespace that accepts connections, reads until the client closes,
/// and closes them, until stopped.
pub struct Listener {
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    /// Listens on `addr` inside `ns`.
    pub fn start(ns: &TestNs, addr: SocketAddr) -> Result<Self, CmdError> {
        let listener = ns
            .enter(|| TcpListener::bind(addr))?
            .map_err(|e| CmdError(format!("bind {addr} in {}: {e}", ns.name())))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| CmdError(format!("{addr}: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let accepted = Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        count.fetch_add(1, Ordering::SeqCst);
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 512];
                        while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Self {
            stop,
            accepted,
            thread: Some(thread),
        })
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
