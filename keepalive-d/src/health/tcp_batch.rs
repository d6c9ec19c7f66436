//! Every `tcp` check of a [`Checkers`](super::Checkers) on one task, around one epoll
//! queue of its own: what keepalived's checker does in C (non-blocking connect, wait for
//! writability, close), without a tokio task, timer entry and I/O registration per
//! server.
//!
//! Per probe: `socket`, `connect` (non-blocking), `epoll_ctl(ADD)` on the batch's own
//! queue, then `close` (after a zero `SO_LINGER` for the default `close: reset`, so that
//! the connection ends with a reset and leaves no TIME_WAIT socket). A connection that
//! completes is told by the queue's event alone (`EPOLLOUT` without
//! `EPOLLERR`/`EPOLLHUP`); `getsockopt(SO_ERROR)` is read only to
//! describe a failure. Closing the socket removes it from the queue, so there is no
//! `epoll_ctl(DEL)`. The queue itself is registered once with the runtime (readable when
//! any probe has an event) and drained without blocking.
//!
//! Timing: one timer for the whole batch, set to the earliest of the next probe start
//! and the next probe timeout. Probe starts are grouped on a grid of
//! `min(10 ms, interval / 100)` from the start of the checks: a probe due at `t` starts at
//! the first grid point at or after `t` (never early, late by less than one grid step),
//! so that 2,000 servers checked every second wake the daemon about 100 times a second,
//! not 2,000. A probe that starts on its grid point counts as started when it was due
//! (the next one is due exactly one interval later: no drift); one that starts later,
//! because the daemon was busy, counts from when it really started, as in [`Schedule`].
//! Probe timeouts are exact.
//!
//! [`Schedule`]: super::Schedule

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use socket2::{Domain, SockAddr, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

use super::engine::Task;
use super::probe::{Note, Outcome, ProbeResult, describe, timed_out};
use super::tcp::TcpProbe;

/// The coarsest grid probe starts are grouped on.
const GRID_MAX: Duration = Duration::from_millis(10);
/// The grid is at most this fraction of a check's interval.
const GRID_PER_INTERVAL: u32 = 100;
/// Events read from the queue per `epoll_wait` (one per round of the task).
const EVENTS: usize = 256;
/// Probes started per round of the task at most: when more are due (the daemon is
/// behind), the task yields to the runtime's other tasks between rounds.
const STARTS_PER_ROUND: usize = 64;

/// The batch's epoll instance, as the runtime sees it (readable when a probe has an event).
struct Queue(Epoll);

impl AsRawFd for Queue {
    fn as_raw_fd(&self) -> RawFd {
        self.0.0.as_raw_fd()
    }
}

/// One server's check: its task state (schedule, health, where it reports), where to
/// connect, and the probe in flight.
struct Entry {
    task: Task,
    probe: TcpProbe,
    /// Grid step of this server's probe starts.
    grid: Duration,
    /// Counts the probes, so that a queue event is matched to the probe it was for.
    seq: u32,
    flight: Option<Flight>,
}

/// A probe in flight: its socket (registered with the queue) and when it began.
struct Flight {
    socket: Socket,
    began: Instant,
    deadline: Instant,
}

/// The TCP checks of one [`Checkers`](super::Checkers), ready to run.
pub(super) struct TcpBatch {
    queue: AsyncFd<Queue>,
    entries: Vec<Entry>,
    /// When each server's next probe starts (one entry per server not in flight, and
    /// for a server in flight its next start).
    starts: BinaryHeap<Reverse<(Instant, u32)>>,
    /// Timeouts of the probes in flight (stale entries are skipped when popped).
    deadlines: BinaryHeap<Reverse<(Instant, u32)>>,
}

impl TcpBatch {
    /// Creates the queue and registers it with the current runtime (the caller is in a
    /// runtime context).
    pub(super) fn new(checks: Vec<(Task, TcpProbe)>) -> io::Result<Self> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        // SAFETY: the descriptor is the epoll instance `Queue` owns: open, and the same,
        // for as long as the `AsyncFd` that owns the `Queue`.
        let queue = unsafe { AsyncFd::register_with_interest(Queue(epoll), Interest::READABLE) }
            .map_err(io::Error::from)?;
        let mut batch = Self {
            queue,
            entries: Vec::with_capacity(checks.len()),
            starts: BinaryHeap::with_capacity(checks.len()),
            deadlines: BinaryHeap::with_capacity(checks.len()),
        };
        for (task, probe) in checks {
            let grid = (task.schedule.interval() / GRID_PER_INTERVAL).min(GRID_MAX);
            let index = batch.entries.len() as u32;
            let entry = Entry {
                task,
                probe,
                grid,
                seq: 0,
                flight: None,
            };
            batch.starts.push(Reverse((entry.start_at(), index)));
            batch.entries.push(entry);
        }
        Ok(batch)
    }

    /// Runs the checks until dropped.
    pub(super) async fn run(mut self) {
        let mut events = vec![EpollEvent::empty(); EVENTS];
        let timer = tokio::time::sleep_until(self.next_wake());
        let mut timer = pin!(timer);
        loop {
            let queue = &self.queue;
            let ready = poll_fn(|cx| {
                if let Poll::Ready(guard) = queue.poll_read_ready(cx) {
                    return Poll::Ready(Some(guard));
                }
                timer.as_mut().poll(cx).map(|()| None)
            })
            .await;
            let mut busy = false;
            match ready {
                Some(Ok(mut guard)) => {
                    if drain(queue.get_ref(), &mut self.entries, &mut events) {
                        // More may be waiting: keep the queue ready for the next round.
                        busy = true;
                    } else {
                        guard.clear_ready();
                    }
                }
                Some(Err(e)) => {
                    // Not expected from an epoll descriptor; the timeouts still end the
                    // probes in flight.
                    tracing::warn!("tcp checks: waiting for the event queue: {e}");
                }
                None => {}
            }
            busy |= self.tick(&mut events);
            timer.as_mut().reset(self.next_wake());
            if busy {
                // Behind (more events or starts than one round takes): let the other
                // tasks of the runtime (VRRP, the IPVS program) run before going on.
                tokio::task::yield_now().await;
            }
        }
    }

    /// Ends the probes that timed out and starts the ones due, at most
    /// [`STARTS_PER_ROUND`]; returns whether more starts are due.
    fn tick(&mut self, events: &mut [EpollEvent]) -> bool {
        let now = Instant::now();
        if self
            .deadlines
            .peek()
            .is_some_and(|Reverse((at, _))| *at <= now)
        {
            // A connection that completed by now counts, even if its event is not
            // delivered yet.
            while drain(self.queue.get_ref(), &mut self.entries, events) {}
            while let Some(&Reverse((at, index))) = self.deadlines.peek() {
                if at > now {
                    break;
                }
                self.deadlines.pop();
                if let Some(entry) = self.entries.get_mut(index as usize) {
                    entry.time_out(at, now);
                }
            }
        }
        let mut started = 0;
        while let Some(&Reverse((at, index))) = self.starts.peek() {
            if at > now {
                break;
            }
            if started == STARTS_PER_ROUND {
                return true;
            }
            started += 1;
            self.starts.pop();
            let Some(entry) = self.entries.get_mut(index as usize) else {
                continue;
            };
            if let Some(flight) = &entry.flight {
                // Only when the timeout is longer than what is left of the interval:
                // the next probe waits for this one's end.
                self.starts.push(Reverse((flight.deadline, index)));
                continue;
            }
            if let Some(deadline) = entry.start(index, at, now, self.queue.get_ref()) {
                self.deadlines.push(Reverse((deadline, index)));
            }
            self.starts.push(Reverse((entry.start_at(), index)));
        }
        false
    }

    /// The earliest probe start or timeout.
    fn next_wake(&self) -> Instant {
        let start = self.starts.peek().map(|Reverse((at, _))| *at);
        let deadline = self.deadlines.peek().map(|Reverse((at, _))| *at);
        match (start, deadline) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            // Never empty: every server has its next start in `starts`.
            (None, None) => Instant::now() + Duration::from_secs(3600),
        }
    }
}

/// Reads the pending events from the queue, as many as `events` holds (without
/// blocking), and ends those probes; returns whether it was full (more may be waiting).
fn drain(queue: &Queue, entries: &mut [Entry], events: &mut [EpollEvent]) -> bool {
    let n = match queue.0.wait(events, EpollTimeout::ZERO) {
        Ok(n) => n,
        Err(nix::errno::Errno::EINTR) => return true,
        Err(e) => {
            tracing::warn!("tcp checks: reading the event queue: {e}");
            return false;
        }
    };
    let now = Instant::now();
    for event in events.iter().take(n) {
        let token = event.data();
        let index = (token & u64::from(u32::MAX)) as usize;
        if let Some(entry) = entries.get_mut(index) {
            entry.complete(token, event.events(), now);
        }
    }
    n == events.len()
}

impl Entry {
    /// When the next probe starts: its due time moved up to this server's grid.
    fn start_at(&self) -> Instant {
        self.task.at(on_grid(self.task.schedule.due(), self.grid))
    }

    fn token(&self, index: u32) -> u64 {
        (u64::from(self.seq) << 32) | u64::from(index)
    }

    /// Starts a probe (its start was planned for `planned`, the grid point); returns its
    /// deadline when it is in flight (a probe that fails at once is recorded here).
    fn start(
        &mut self,
        index: u32,
        planned: Instant,
        now: Instant,
        queue: &Queue,
    ) -> Option<Instant> {
        let due = self.task.schedule.due();
        let since_start = now.saturating_duration_since(self.task.start);
        // On time (up to one grid step after its grid point): counted from when it was
        // due, so the grid adds no drift. Later: from now, so no catch-up burst.
        let on_time = now.saturating_duration_since(planned) <= self.grid;
        self.task
            .schedule
            .started(if on_time { due } else { since_start });
        self.seq = self.seq.wrapping_add(1);
        let token = self.token(index);
        match self.connect(token, queue) {
            Ok(Some(socket)) => {
                let deadline = now + self.task.timeout;
                self.flight = Some(Flight {
                    socket,
                    began: now,
                    deadline,
                });
                Some(deadline)
            }
            Ok(None) => {
                self.finish(now, Ok(Note::Connected));
                None
            }
            Err(why) => {
                self.finish(now, Err(why));
                None
            }
        }
    }

    /// Opens the socket and connects: `Some(socket)` in progress (registered with the
    /// queue), `None` connected at once.
    fn connect(&self, token: u64, queue: &Queue) -> Result<Option<Socket>, String> {
        let addr = self.probe.addr();
        let socket = Socket::new(
            Domain::for_address(addr),
            Type::STREAM.nonblocking().cloexec(),
            None,
        )
        .map_err(|e| describe("create socket", &e))?;
        if let Some(ip) = self.probe.source() {
            // Best effort: without it the port is chosen at bind time, which still works.
            let _ = nix::sys::socket::setsockopt(
                &socket,
                nix::sys::socket::sockopt::IpBindAddressNoPort,
                &true,
            );
            socket
                .bind(&SockAddr::from(std::net::SocketAddr::new(ip, 0)))
                .map_err(|e| describe(&format!("bind to {ip}"), &e))?;
        }
        match socket.connect(&SockAddr::from(addr)) {
            Ok(()) => {
                self.probe.before_close(socket2::SockRef::from(&socket));
                Ok(None)
            }
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
                queue
                    .0
                    .add(
                        &socket,
                        EpollEvent::new(EpollFlags::EPOLLOUT | EpollFlags::EPOLLET, token),
                    )
                    .map_err(|e| describe("wait for the connection", &io::Error::from(e)))?;
                Ok(Some(socket))
            }
            Err(e) => Err(describe(&format!("connect to {addr}"), &e)),
        }
    }

    /// The queue reported `flags` for the probe of `token`.
    fn complete(&mut self, token: u64, flags: EpollFlags, now: Instant) {
        if self.flight.is_none() || token != self.token(token as u32) {
            return; // an event of an earlier probe, already ended
        }
        let Some(flight) = self.flight.take() else {
            return;
        };
        let result = if flags.intersects(EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP) {
            match flight.socket.take_error() {
                Ok(Some(e)) | Err(e) => {
                    Err(describe(&format!("connect to {}", self.probe.addr()), &e))
                }
                Ok(None) => Ok(Note::Connected),
            }
        } else {
            Ok(Note::Connected)
        };
        let began = flight.began;
        if result.is_ok() {
            self.probe
                .before_close(socket2::SockRef::from(&flight.socket));
        }
        drop(flight);
        self.finish_since(began, now, result);
    }

    /// The probe whose deadline was `deadline` is still in flight at `now`: it failed.
    fn time_out(&mut self, deadline: Instant, now: Instant) {
        if self.flight.as_ref().is_none_or(|f| f.deadline != deadline) {
            return; // ended before its deadline
        }
        if let Some(flight) = self.flight.take() {
            let began = flight.began;
            drop(flight);
            let why = timed_out(self.task.timeout);
            self.finish_since(began, now, Err(why));
        }
    }

    fn finish(&mut self, now: Instant, result: ProbeResult) {
        self.finish_since(now, now, result);
    }

    fn finish_since(&mut self, began: Instant, now: Instant, result: ProbeResult) {
        self.task.record(Outcome {
            latency: now.saturating_duration_since(began),
            result,
        });
    }
}

/// `offset` moved up to the next multiple of `grid` (itself when it is one, or when the
/// grid is zero).
fn on_grid(offset: Duration, grid: Duration) -> Duration {
    let step = grid.as_nanos();
    if step == 0 {
        return offset;
    }
    let nanos = offset.as_nanos().div_ceil(step).saturating_mul(step);
    match (
        u64::try_from(nanos / 1_000_000_000),
        u32::try_from(nanos % 1_000_000_000),
    ) {
        (Ok(secs), Ok(sub)) => Duration::new(secs, sub),
        _ => Duration::MAX,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::net::TcpListener;
    use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

    use super::*;
    use crate::config::{Check, CheckKind, TcpCheck, TcpClose};
    use crate::health::{Checkers, Health, ServerId, Target, Transition};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn tcp_target(server: usize, addr: SocketAddr, interval: Duration) -> Target {
        Target {
            id: ServerId { service: 0, server },
            addr,
            check: Check {
                kind: CheckKind::Tcp(TcpCheck::default()),
                interval,
                timeout: interval / 2,
                rise: 1,
                fall: 1,
                port: None,
                source: None,
            },
            initial: None,
        }
    }

    /// Accepts and closes connections on `listener`, counting them and their peers.
    fn serve(
        listener: TcpListener,
    ) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<Vec<SocketAddr>>) {
        let count = Arc::new(AtomicUsize::new(0));
        let counted = count.clone();
        let task = tokio::spawn(async move {
            let mut peers = Vec::new();
            while let Ok((conn, peer)) = listener.accept().await {
                drop(conn);
                counted.fetch_add(1, Ordering::SeqCst);
                if peers.len() < 16 {
                    peers.push(peer);
                }
            }
            peers
        });
        (count, task)
    }

    /// The first transition of each server, until `n` servers are decided.
    async fn decide(
        rx: &mut UnboundedReceiver<Transition>,
        n: usize,
    ) -> BTreeMap<usize, Transition> {
        let mut seen = BTreeMap::new();
        while seen.len() < n {
            let t = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("no transition within 5 s")
                .expect("channel closed");
            seen.entry(t.id.server).or_insert(t);
        }
        seen
    }

    /// A listener that never accepts, its backlog full: connects to it time out.
    async fn hanging() -> (socket2::Socket, Vec<tokio::net::TcpStream>, SocketAddr) {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        socket.listen(0).unwrap();
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..8 {
            if let Ok(Ok(s)) =
                tokio::time::timeout(ms(100), tokio::net::TcpStream::connect(addr)).await
            {
                fillers.push(s);
            }
        }
        assert!(!fillers.is_empty());
        (socket, fillers, addr)
    }

    #[tokio::test]
    async fn many_servers_on_one_task_accepted_refused_and_hanging() {
        // 60 targets over three IPv4 listeners and one IPv6 one, one refused port, one
        // server that never answers: every probe of every kind on the batch's task.
        let mut listeners = Vec::new();
        for bind in ["127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "[::1]:0"] {
            listeners.push(TcpListener::bind(bind).await.unwrap());
        }
        let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let servers: Vec<_> = listeners.into_iter().map(serve).collect();
        let refused = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let (_hang, _fillers, hang) = hanging().await;

        let interval = ms(200);
        let mut targets: Vec<Target> = (0..60)
            .map(|i| tcp_target(i, addrs[i % addrs.len()], interval))
            .collect();
        targets.push(tcp_target(60, refused, interval));
        targets.push(tcp_target(61, hang, interval));
        let (tx, mut rx) = unbounded_channel();
        let checkers = Checkers::spawn(targets, tx).unwrap();
        let seen = decide(&mut rx, 62).await;
        for i in 0..60 {
            let t = &seen[&i];
            assert_eq!(t.health, Health::Up, "{i}: {t:?}");
            assert_eq!(t.outcome.detail, "connected");
            assert!(t.outcome.latency < interval, "{t:?}");
        }
        let t = &seen[&60];
        assert_eq!(t.health, Health::Down);
        assert!(
            t.outcome
                .detail
                .starts_with(&format!("connect to {refused}: "))
                && t.outcome.detail.contains("refused"),
            "{}",
            t.outcome.detail
        );
        let t = &seen[&61];
        assert_eq!(t.health, Health::Down);
        assert_eq!(t.outcome.detail, "timed out after 100ms");
        assert!(t.outcome.latency >= ms(100), "{t:?}");
        assert!(checkers.snapshot().iter().all(|s| s.2.is_some()));

        // Every accepted connection is one probe of one of the 60 (15 per listener).
        tokio::time::sleep(ms(500)).await;
        checkers.stop();
        for (count, task) in servers {
            assert!(count.load(Ordering::SeqCst) >= 15);
            task.abort();
        }
    }

    #[tokio::test]
    async fn an_accepted_connection_ends_with_a_reset_or_a_fin_as_configured() {
        use tokio::io::AsyncReadExt;
        for (close, want_reset) in [(TcpClose::Reset, true), (TcpClose::Fin, false)] {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let mut target = tcp_target(0, addr, Duration::from_secs(10));
            target.check.kind = CheckKind::Tcp(TcpCheck { close });
            let (tx, mut rx) = unbounded_channel();
            let checkers = Checkers::spawn(vec![target], tx).unwrap();
            let (mut conn, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
                .await
                .unwrap()
                .unwrap();
            let t = decide(&mut rx, 1).await;
            assert_eq!(t[&0].health, Health::Up, "{close:?}");
            // The probe has closed its side: the server reads a reset or the end.
            let mut buf = [0u8; 16];
            let read = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
                .await
                .unwrap();
            match read {
                Err(e) if want_reset => {
                    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{close:?}")
                }
                Ok(0) if !want_reset => {}
                other => panic!("{close:?}: the server read {other:?}"),
            }
            checkers.stop();
        }
    }

    #[tokio::test]
    async fn probes_keep_their_interval_on_the_grid() {
        // One server every 50 ms for 1 s: 20 or 21 probes (the first at 0), not fewer:
        // starting on the grid does not push the next probe back.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (count, task) = serve(listener);
        let (tx, _rx) = unbounded_channel();
        let checkers = Checkers::spawn(vec![tcp_target(0, addr, ms(50))], tx).unwrap();
        tokio::time::sleep(ms(1010)).await;
        checkers.stop();
        let n = count.load(Ordering::SeqCst);
        // Generous on the low side for a loaded machine; never more than one per interval.
        assert!((17..=22).contains(&n), "{n} probes in 1 s at 50 ms");
        task.abort();
    }

    #[tokio::test]
    async fn probes_from_a_source_address() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut ok = tcp_target(0, addr, ms(100));
        ok.check.source = Some("127.0.0.2".parse().unwrap());
        // Not an address of this machine: the bind fails, the probe with it.
        let mut bad = tcp_target(1, addr, ms(100));
        bad.check.source = Some("192.0.2.1".parse().unwrap());
        let (tx, mut rx) = unbounded_channel();
        let checkers = Checkers::spawn(vec![ok, bad], tx).unwrap();
        let (_, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip().to_string(), "127.0.0.2");
        let seen = decide(&mut rx, 2).await;
        assert_eq!(seen[&0].health, Health::Up, "{:?}", seen[&0]);
        assert_eq!(seen[&1].health, Health::Down);
        assert!(
            seen[&1].outcome.detail.starts_with("bind to 192.0.2.1: "),
            "{}",
            seen[&1].outcome.detail
        );
        checkers.stop();
    }

    /// What a server costs between probes (and in flight): its entry, and its place in
    /// the two heaps.
    #[test]
    fn entry_size() {
        let size = std::mem::size_of::<Entry>();
        eprintln!("tcp batch entry: {size} bytes");
        // Measured with Rust 1.95: 272 bytes (a task of the other kinds: 384 to 600,
        // see `engine::tests::task_sizes`, plus the runtime's own per task).
        assert!(size <= 320, "{size} bytes");
    }

    #[test]
    fn starts_move_up_to_the_grid_never_earlier() {
        assert_eq!(on_grid(ms(0), ms(10)), ms(0));
        assert_eq!(on_grid(Duration::from_micros(500), ms(10)), ms(10));
        assert_eq!(on_grid(ms(10), ms(10)), ms(10));
        assert_eq!(on_grid(Duration::from_nanos(10_000_001), ms(10)), ms(20));
        assert_eq!(on_grid(ms(7), Duration::ZERO), ms(7));
        assert_eq!(on_grid(Duration::MAX, ms(10)), Duration::MAX);
        // 2,000 servers every second, spread over it (one every 500 µs from 0), on a 10 ms
        // grid: one start at 0, 99 of 20 servers, one of 19 at 1 s.
        let mut slots = std::collections::BTreeMap::new();
        for i in 0..2000 {
            let due = super::super::first_offset(Duration::from_secs(1), i, 2000);
            let at = on_grid(due, ms(10));
            assert!(at >= due && at - due < ms(10));
            *slots.entry(at).or_insert(0) += 1;
        }
        let sizes: Vec<i32> = slots.values().copied().collect();
        assert_eq!(sizes.len(), 101);
        assert_eq!((sizes[0], sizes[100]), (1, 19));
        assert!(sizes[1..100].iter().all(|&n| n == 20), "{slots:?}");
    }
}
