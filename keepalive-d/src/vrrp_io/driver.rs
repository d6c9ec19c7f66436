//! The task of one instance, or of one sync group: feeds the state machine
//! ([`Instance`], or [`SyncGroup`] for a group) its events and carries out
//! its actions in order.
//!
//! Events: [`Event::Startup`] (after removing addresses a crashed
//! predecessor may have left), received adverts (after
//! [`Instance::receive`]), [`Event::TimerFired`] at the deadlines of
//! [`Action::ArmTimer`], [`Event::InterfaceUp`] / [`Event::InterfaceDown`]
//! from rtnetlink link notifications of the instance's interface and its
//! tracked interfaces (and from weight-0 track scripts),
//! [`Event::PriorityChanged`] from weighted track scripts, and
//! [`Event::Shutdown`] when asked to stop (each member of a sync group
//! shuts down on its own, so every master sends its priority 0 advert). Address changes are synchronous netlink requests (done before the
//! gratuitous ARPs that follow them); spaced gratuitous ARP bursts and
//! notify commands run in tasks of their own, so the state machine never
//! waits for them. Each member's socket and link monitor are read by small
//! tasks that forward to the state machine's task over a channel.
//!
//! Stopping runs the `stop` notify commands first and waits for them (each
//! bounded by the notify timeout) while a Master goes on advertising, so
//! its Backup does not take over yet; only then does the instance shut
//! down (priority 0, addresses removed). A stopping Master's demotion
//! therefore finishes before the peer can promote itself. Nothing else is
//! handled meanwhile: received adverts, link changes and the timers of
//! members that are not Master wait (a Backup must not become Master while
//! it stops).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use vrrp_proto::packet::peek;
use vrrp_proto::{
    Action, DropReason, Event, Instance, PacketError, State, SyncGroup, Time, Timer, Warning,
};

use super::addr::{LinkMonitor, Rtnl};
use super::garp::{GarpSocket, frame};
use super::notify::{Notifier, NotifySpec};
use super::socket::{Datagram, VrrpSocket, group};
use super::timer::PreciseTimer;
use super::vmac::Vmac;
use super::{
    InstanceStatus, ReceiveError, ReceiveErrors, StateChange, StatusMap, TrackScript,
    VirtualAddress,
};

/// An instance with everything opened, ready to run.
#[derive(Debug)]
pub struct Prepared {
    /// Resume as Master at once if started before this time (see [`super::state_file`]).
    pub(crate) resume_until: Option<std::time::SystemTime>,
    /// The state file, if any.
    pub(crate) state_path: Option<std::path::PathBuf>,
    pub(crate) name: String,
    /// The interface the instance runs on: its own, or its virtual MAC interface.
    pub(crate) interface: String,
    pub(crate) ifindex: u32,
    /// With a virtual MAC interface: the interface it is stacked on.
    pub(crate) parent_ifindex: Option<u32>,
    /// With an IPv6 virtual MAC interface: the parent's link-local address, which the
    /// macvlan holds while Master (to send the adverts from).
    pub(crate) link_local: Option<VirtualAddress>,
    pub(crate) mac: Option<[u8; 6]>,
    pub(crate) vips: Vec<VirtualAddress>,
    pub(crate) instance: Instance,
    pub(crate) sock: VrrpSocket,
    /// Where adverts are sent from, when not `sock` (unicast with a virtual MAC).
    pub(crate) tx: Option<VrrpSocket>,
    pub(crate) vmac: Option<Vmac>,
    pub(crate) garp: Option<GarpSocket>,
    pub(crate) link: LinkMonitor,
    pub(crate) tracked: Vec<LinkMonitor>,
    pub(crate) scripts: Vec<TrackScript>,
    pub(crate) rtnl: Rtnl,
    pub(crate) notify: NotifySpec,
    pub(crate) garp_interval: Duration,
}

/// The state machine of a unit: one instance, or a sync group.
#[derive(Debug)]
enum Core {
    Single(Box<Instance>),
    Group(SyncGroup),
}

impl Core {
    fn handle(&mut self, index: usize, now: Time, event: Event) -> Vec<(usize, Action)> {
        match self {
            Core::Single(i) => i.handle(now, event).into_iter().map(|a| (0, a)).collect(),
            Core::Group(g) => g.handle(index, now, event),
        }
    }

    /// The instances, out of their group: on shutdown every master must
    /// say goodbye with priority 0 itself, not be demoted by its group
    /// first.
    fn into_instances(self) -> Vec<Instance> {
        match self {
            Core::Single(i) => vec![*i],
            Core::Group(g) => g.into_members(),
        }
    }

    fn member(&self, index: usize) -> Option<&Instance> {
        match self {
            Core::Single(i) => (index == 0).then_some(&**i),
            Core::Group(g) => g.member(index),
        }
    }
}

/// What the reader tasks forward.
enum Input {
    Datagram(usize, Datagram),
    Malformed(usize, PacketError),
    /// Member, tracked link (0: the instance's own interface), up.
    Link(usize, usize, bool),
    /// Member, track script, passing.
    Script(usize, usize, bool),
}

/// The I/O side of one member.
struct Member {
    /// Resume as Master at once (a quick restart, see [`super::state_file`]).
    resume: bool,
    /// The state file, if any.
    state_file: Option<super::state_file::StateFile>,
    name: String,
    interface: String,
    ifindex: u32,
    parent_ifindex: Option<u32>,
    link_local: Option<VirtualAddress>,
    /// `link_local` is on the interface.
    link_local_added: bool,
    mac: Option<[u8; 6]>,
    vips: Vec<VirtualAddress>,
    sock: Arc<VrrpSocket>,
    tx: Option<VrrpSocket>,
    vmac: Option<Vmac>,
    garp: Option<Arc<GarpSocket>>,
    rtnl: Rtnl,
    notifier: Notifier,
    garp_interval: Duration,
    garp_tasks: Vec<AbortHandle>,
    timers: BTreeMap<Timer, Time>,
    last_warnings: Vec<Warning>,
    /// The own interface first, then the tracked ones.
    links_up: Vec<bool>,
    scripts: Vec<TrackScript>,
    scripts_ok: Vec<bool>,
    /// The stop commands were queued before the shutdown: the shutdown's own
    /// transition to Initialize does not queue them again.
    stop_notified: bool,
    /// The last state change and how many there were.
    last_transition: Option<StateChange>,
    transitions: u64,
    adverts_sent: u64,
    adverts_received: u64,
    receive_errors: ReceiveErrors,
}

impl Member {
    /// Whether the instance may run: its interface and every tracked
    /// interface up, no failing weight-0 script.
    fn healthy(&self) -> bool {
        self.links_up.iter().all(|u| *u)
            && self
                .scripts
                .iter()
                .zip(&self.scripts_ok)
                .all(|(s, ok)| *ok || s.weight != 0)
    }

    /// Base priority adjusted by the script weights, like keepalived: a
    /// positive weight is added while the script passes, a negative one
    /// while it fails.
    fn priority(&self, base: u8) -> u8 {
        tracked_priority(
            base,
            self.scripts
                .iter()
                .map(|s| s.weight)
                .zip(self.scripts_ok.iter().copied()),
        )
    }

    /// The published status of this member, whose state machine is `instance`.
    fn status(&self, instance: &Instance) -> InstanceStatus {
        InstanceStatus {
            state: instance.state(),
            priority: instance.effective_priority(),
            master: instance.master().map(|(a, _)| a),
            last_transition: self.last_transition,
            transitions: self.transitions,
            adverts_sent: self.adverts_sent,
            adverts_received: self.adverts_received,
            receive_errors: self.receive_errors,
        }
    }

    fn vip(&self, a: IpAddr) -> VirtualAddress {
        self.vips
            .iter()
            .copied()
            .find(|v| v.address == a)
            .unwrap_or(VirtualAddress::host(a))
    }

    fn execute(&mut self, instance: &Instance, action: Action) {
        tracing::trace!(instance = %self.name, %action, "action");
        match action {
            Action::SendAdvert(advert) => {
                if advert.priority > 0 {
                    if let Some(f) = &mut self.state_file {
                        f.advert_sent();
                    }
                    self.add_link_local();
                }
                let cfg = instance.config();
                let src = cfg.primary_address;
                let dsts: Vec<IpAddr> = if cfg.unicast_peers.is_empty() {
                    vec![group(matches!(src, IpAddr::V6(_)))]
                } else {
                    cfg.unicast_peers.clone()
                };
                let sock = self.tx.as_ref().unwrap_or(&self.sock);
                for dst in dsts {
                    let sent = instance
                        .encode(&advert, dst)
                        .map_err(|e| e.to_string())
                        .and_then(|bytes| sock.send(src, dst, &bytes).map_err(|e| e.to_string()));
                    match sent {
                        Ok(()) => self.adverts_sent = self.adverts_sent.saturating_add(1),
                        Err(e) => {
                            tracing::debug!(instance = %self.name, %dst, "advert not sent: {e}");
                        }
                    }
                }
            }
            Action::AddAddresses(addrs) => {
                for a in addrs {
                    let v = self.vip(a);
                    match self.rtnl.add_address(self.ifindex, &v) {
                        Ok(()) => tracing::debug!(instance = %self.name, address = %v, "added"),
                        Err(e) => tracing::error!(
                            instance = %self.name, address = %v, interface = %self.interface,
                            "cannot add virtual address: {e}"
                        ),
                    }
                }
            }
            Action::RemoveAddresses(addrs) => {
                self.stop_garps();
                // An address owner's virtual address is its own address:
                // never take that away from the interface.
                let primary = instance.config().primary_address;
                for a in addrs.into_iter().filter(|a| *a != primary) {
                    let v = self.vip(a);
                    match self.rtnl.remove_address(self.ifindex, &v) {
                        Ok(()) => tracing::debug!(instance = %self.name, address = %v, "removed"),
                        Err(e) => tracing::error!(
                            instance = %self.name, address = %v, interface = %self.interface,
                            "cannot remove virtual address: {e}"
                        ),
                    }
                }
                if let Some(ll) = self.link_local.filter(|_| self.link_local_added) {
                    self.link_local_added = false;
                    if let Err(e) = self.rtnl.remove_address(self.ifindex, &ll) {
                        tracing::warn!(instance = %self.name, address = %ll, "cannot remove the link-local address: {e}");
                    }
                }
            }
            Action::SendGratuitous { addresses, repeat } => self.gratuitous(addresses, repeat),
            Action::Notify { state, reason } => {
                let priority = instance.effective_priority();
                tracing::info!(
                    instance = %self.name, interface = %self.interface, %state, %reason, priority,
                    "VRRP state change"
                );
                if let Some(f) = &mut self.state_file {
                    f.record(state);
                }
                if state != State::Master {
                    self.stop_garps();
                }
                self.last_transition = Some(StateChange {
                    at: std::time::SystemTime::now(),
                    state,
                    reason,
                });
                self.transitions = self.transitions.saturating_add(1);
                if !(state == State::Initialize && self.stop_notified) {
                    self.notifier.transition(state, priority);
                }
            }
            Action::ArmTimer { timer, at } => {
                self.timers.insert(timer, at);
            }
            Action::CancelTimer(timer) => {
                self.timers.remove(&timer);
            }
        }
    }

    /// Gives the virtual MAC interface the link-local address the adverts are sent from
    /// (IPv6), once.
    fn add_link_local(&mut self) {
        let Some(ll) = self.link_local.filter(|_| !self.link_local_added) else {
            return;
        };
        match self.rtnl.add_address(self.ifindex, &ll) {
            Ok(()) => self.link_local_added = true,
            Err(e) => tracing::error!(
                instance = %self.name, address = %ll, interface = %self.interface,
                "cannot add the link-local address to send adverts from: {e}"
            ),
        }
    }

    fn stop_garps(&mut self) {
        for t in self.garp_tasks.drain(..) {
            t.abort();
        }
    }

    fn gratuitous(&mut self, addresses: Vec<IpAddr>, repeat: u32) {
        let (Some(sock), Some(mac)) = (self.garp.clone(), self.mac) else {
            return;
        };
        // keepalived's order: every address once, `repeat` times.
        let frames: Vec<Vec<u8>> = addresses.iter().map(|a| frame(mac, *a)).collect();
        let name = self.name.clone();
        if self.garp_interval.is_zero() {
            for _ in 0..repeat {
                for f in &frames {
                    if let Err(e) = sock.send(f) {
                        tracing::debug!(instance = %name, "gratuitous ARP/NA not sent: {e}");
                    }
                }
            }
            return;
        }
        let interval = self.garp_interval;
        self.garp_tasks.retain(|t| !t.is_finished());
        let task = tokio::spawn(async move {
            let mut first = true;
            for _ in 0..repeat {
                for f in &frames {
                    if !first {
                        tokio::time::sleep(interval).await;
                    }
                    first = false;
                    if let Err(e) = sock.send(f) {
                        tracing::debug!(instance = %name, "gratuitous ARP/NA not sent: {e}");
                    }
                }
            }
        });
        self.garp_tasks.push(task.abort_handle());
    }
}

struct Unit {
    core: Core,
    members: Vec<Member>,
    epoch: Instant,
    status: watch::Sender<StatusMap>,
}

impl Unit {
    fn now(&self) -> Time {
        Time::from(self.epoch.elapsed())
    }

    fn handle(&mut self, index: usize, now: Time, event: Event) {
        let actions = self.core.handle(index, now, event);
        for (i, a) in actions {
            if let (Some(inst), Some(m)) = (self.core.member(i), self.members.get_mut(i)) {
                m.execute(inst, a);
            }
        }
        self.publish();
    }

    /// Updates the status map with every member's status. Watchers are
    /// notified only when a state, priority, master or transition count
    /// changed; the traffic counters are updated silently.
    fn publish(&self) {
        self.status.send_if_modified(|map| {
            let mut changed = false;
            for (i, m) in self.members.iter().enumerate() {
                let Some(inst) = self.core.member(i) else {
                    continue;
                };
                let st = m.status(inst);
                match map.get_mut(&m.name) {
                    Some(old) if !old.differs_notably(&st) => *old = st,
                    _ => {
                        map.insert(m.name.clone(), st);
                        changed = true;
                    }
                }
            }
            changed
        });
    }

    /// After a tracked object changed: fault or recover, and the new
    /// effective priority.
    fn reevaluate(&mut self, index: usize, was_healthy: bool) {
        let (Some(inst), Some(m)) = (self.core.member(index), self.members.get(index)) else {
            return;
        };
        let healthy = m.healthy();
        let priority = m.priority(inst.config().priority);
        let now = self.now();
        if priority != inst.effective_priority() {
            tracing::info!(instance = %m.name, priority, "effective priority changed");
            self.handle(index, now, Event::PriorityChanged(priority));
        }
        if healthy != was_healthy {
            let event = if healthy {
                Event::InterfaceUp
            } else {
                Event::InterfaceDown
            };
            self.handle(index, now, event);
        }
    }

    fn received(&mut self, index: usize, d: &Datagram) {
        let (Some(inst), Some(m)) = (self.core.member(index), self.members.get_mut(index)) else {
            return;
        };
        match peek(&d.payload) {
            Some((_, v)) if v == inst.config().vrid => {}
            _ => return, // another router's VRID, or garbage
        }
        match inst.receive(&d.payload, &d.meta) {
            Ok(r) => {
                if let Some(f) = &mut m.state_file {
                    f.peer_heard(r.advert.priority);
                }
                if r.warnings != m.last_warnings {
                    for w in &r.warnings {
                        tracing::warn!(instance = %m.name, src = %r.src, "advert: {w:?}");
                    }
                    m.last_warnings.clone_from(&r.warnings);
                }
                m.adverts_received = m.adverts_received.saturating_add(1);
                let now = self.now();
                self.handle(index, now, r.into_event());
            }
            Err(DropReason::FromSelf) => {}
            Err(e) => {
                tracing::debug!(instance = %m.name, src = %d.meta.src, "advert dropped: {e}");
                if let Some(reason) = ReceiveError::of(&e) {
                    m.receive_errors.record(reason);
                    self.publish();
                }
            }
        }
    }

    /// A datagram the socket layer could not parse, on member `index`'s socket.
    fn malformed(&mut self, index: usize, e: &PacketError) {
        if let Some(m) = self.members.get_mut(index) {
            tracing::debug!(instance = %m.name, "datagram dropped: {e}");
            m.receive_errors.record(ReceiveError::Malformed);
            self.publish();
        }
    }

    /// Queues every member's stop commands and waits until they have finished, while
    /// the Masters keep advertising (their timers only fire). Bounded: each command is
    /// killed at the notify timeout.
    async fn run_stop_commands(&mut self, timer: &PreciseTimer) {
        let mut waits = Vec::new();
        for (i, m) in self.members.iter_mut().enumerate() {
            let Some(inst) = self.core.member(i) else {
                continue;
            };
            if inst.state() == State::Initialize {
                continue;
            }
            m.stop_notified = m
                .notifier
                .transition(State::Initialize, inst.effective_priority());
            if m.stop_notified {
                if inst.state() == State::Master {
                    tracing::info!(
                        instance = %m.name,
                        "stopping: running the stop command before giving up Master"
                    );
                }
                waits.push(m.notifier.flush());
            }
        }
        if waits.is_empty() {
            return;
        }
        let all = futures_join_all(waits);
        tokio::pin!(all);
        loop {
            let deadline = self
                .next_master_deadline()
                .map(|t| self.epoch + t.since_epoch());
            tokio::select! {
                biased;
                () = &mut all => return,
                () = timer.sleep_until(deadline) => {
                    let masters: Vec<bool> =
                        (0..self.members.len()).map(|i| self.is_master(i)).collect();
                    self.fire_due_of(|i| masters.get(i).copied().unwrap_or(false));
                }
            }
        }
    }

    fn next_deadline(&self) -> Option<Time> {
        self.members
            .iter()
            .filter_map(|m| m.timers.values().min())
            .min()
            .copied()
    }

    /// The earliest timer of the members in Master state.
    fn next_master_deadline(&self) -> Option<Time> {
        self.members
            .iter()
            .enumerate()
            .filter(|(i, _)| self.is_master(*i))
            .filter_map(|(_, m)| m.timers.values().min())
            .min()
            .copied()
    }

    fn is_master(&self, index: usize) -> bool {
        self.core
            .member(index)
            .is_some_and(|inst| inst.state() == State::Master)
    }

    fn fire_due(&mut self) {
        self.fire_due_of(|_| true);
    }

    /// Fires the due timers of the members `wanted` selects (by index).
    fn fire_due_of(&mut self, wanted: impl Fn(usize) -> bool) {
        let now = self.now();
        let mut due: Vec<(Time, usize, Timer)> = Vec::new();
        for (i, m) in self.members.iter().enumerate() {
            if !wanted(i) {
                continue;
            }
            for (t, at) in &m.timers {
                if *at <= now {
                    due.push((*at, i, *t));
                }
            }
        }
        due.sort();
        for (at, i, timer) in due {
            // Re-armed or cancelled by an earlier firing of this round?
            let Some(m) = self.members.get_mut(i) else {
                continue;
            };
            if m.timers.get(&timer) != Some(&at) {
                continue;
            }
            m.timers.remove(&timer);
            self.handle(i, now.max(at), Event::TimerFired(timer));
        }
    }
}

/// Runs one instance (one member) or one sync group (several members)
/// until `stop` turns true, then shuts it down.
pub async fn drive(
    members: Vec<Prepared>,
    mut stop: watch::Receiver<Option<crate::StopMode>>,
    status: watch::Sender<StatusMap>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut readers: Vec<AbortHandle> = Vec::new();
    let mut instances = Vec::with_capacity(members.len());
    let mut io = Vec::with_capacity(members.len());
    for (index, p) in members.into_iter().enumerate() {
        let sock = Arc::new(p.sock);
        let reader_sock = sock.clone();
        let reader_tx = tx.clone();
        let name = p.name.clone();
        readers.push(
            tokio::spawn(async move {
                let mut buf = VrrpSocket::buffer();
                loop {
                    let input = match reader_sock.recv(&mut buf).await {
                        Ok(Ok(d)) => Input::Datagram(index, d),
                        Ok(Err(e)) => Input::Malformed(index, e),
                        Err(e) => {
                            tracing::warn!(instance = %name, "receive: {e}");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    if reader_tx.send(input).is_err() {
                        return;
                    }
                }
            })
            .abort_handle(),
        );
        let mut links_up = Vec::new();
        for (k, mut link) in std::iter::once(p.link).chain(p.tracked).enumerate() {
            links_up.push(link.is_up());
            let link_tx = tx.clone();
            let name = p.name.clone();
            readers.push(
                tokio::spawn(async move {
                    loop {
                        match link.changed().await {
                            Ok(up) => {
                                if link_tx.send(Input::Link(index, k, up)).is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                tracing::error!(instance = %name, "link monitor failed: {e}");
                                return;
                            }
                        }
                    }
                })
                .abort_handle(),
            );
        }
        for (k, script) in p.scripts.iter().enumerate() {
            let script_tx = tx.clone();
            let name = p.name.clone();
            let script = script.clone();
            readers.push(
                tokio::spawn(async move {
                    run_track_script(&name, &script, |ok| {
                        script_tx.send(Input::Script(index, k, ok)).is_ok()
                    })
                    .await;
                })
                .abort_handle(),
            );
        }
        instances.push(p.instance);
        io.push(Member {
            // Decided again here, after the sockets and interfaces are set up: the
            // window may have passed meanwhile (a slow start), and then a peer may
            // already be Master.
            resume: p.resume_until.is_some_and(|t| {
                let late = std::time::SystemTime::now().duration_since(t).ok();
                if let Some(late) = late {
                    tracing::info!(
                        instance = %p.name,
                        ?late,
                        "was Master, but start-up took too long to resume: a peer may have taken over"
                    );
                }
                late.is_none()
            }),
            state_file: p.state_path.map(super::state_file::StateFile::new),
            notifier: Notifier::spawn(&p.name, p.notify),
            name: p.name,
            interface: p.interface,
            ifindex: p.ifindex,
            parent_ifindex: p.parent_ifindex,
            link_local: p.link_local,
            link_local_added: false,
            mac: p.mac,
            vips: p.vips,
            sock,
            tx: p.tx,
            vmac: p.vmac,
            garp: p.garp.map(Arc::new),
            rtnl: p.rtnl,
            garp_interval: p.garp_interval,
            garp_tasks: Vec::new(),
            timers: BTreeMap::new(),
            last_warnings: Vec::new(),
            links_up,
            scripts_ok: vec![true; p.scripts.len()],
            scripts: p.scripts,
            stop_notified: false,
            last_transition: None,
            transitions: 0,
            adverts_sent: 0,
            adverts_received: 0,
            receive_errors: ReceiveErrors::new(),
        });
    }
    drop(tx);
    let core = if instances.len() == 1 {
        match instances.pop() {
            Some(i) => Core::Single(Box::new(i)),
            None => return,
        }
    } else {
        Core::Group(SyncGroup::new(instances))
    };
    let mut u = Unit {
        core,
        members: io,
        epoch: Instant::now(),
        status,
    };
    // Addresses left behind by a predecessor that crashed: a starting
    // instance is never master before its master-down timer (unless it is
    // the address owner, which adds them back at once).
    // An instance that resumes as Master keeps them: they are in use.
    for (i, m) in u.members.iter_mut().enumerate() {
        if m.resume {
            tracing::info!(
                instance = %m.name,
                "was Master until a moment ago: resuming as Master without a failover"
            );
            continue;
        }
        let primary = u.core.member(i).map(|inst| inst.config().primary_address);
        let all: Vec<IpAddr> = m.vips.iter().map(|v| v.address).collect();
        // With a virtual MAC interface, also from its parent (a run without it).
        let indexes: Vec<u32> = std::iter::once(m.ifindex).chain(m.parent_ifindex).collect();
        if let Some(ll) = m.link_local {
            if let Err(e) = m.rtnl.remove_address(m.ifindex, &ll) {
                tracing::warn!(instance = %m.name, address = %ll, "cannot remove a stale link-local address: {e}");
            }
        }
        for a in all.into_iter().filter(|a| Some(*a) != primary) {
            let v = m.vip(a);
            for index in &indexes {
                if let Err(e) = m.rtnl.remove_address(*index, &v) {
                    tracing::warn!(instance = %m.name, address = %v, "cannot remove stale address: {e}");
                }
            }
        }
    }
    let now = u.now();
    for i in 0..u.members.len() {
        // Positive script weights count from the start (scripts start as
        // passing).
        let adjusted = match (u.core.member(i), u.members.get(i)) {
            (Some(inst), Some(m)) => {
                Some(m.priority(inst.config().priority)).filter(|p| *p != inst.effective_priority())
            }
            _ => None,
        };
        if let Some(p) = adjusted {
            u.handle(i, now, Event::PriorityChanged(p));
        }
        if !u.members.get(i).is_some_and(Member::healthy) {
            u.handle(i, now, Event::InterfaceDown);
        }
    }
    for i in 0..u.members.len() {
        let event = if u.members.get(i).is_some_and(|m| m.resume) {
            Event::Resume
        } else {
            Event::Startup
        };
        u.handle(i, now, event);
    }
    let timer = PreciseTimer::new();
    loop {
        let deadline = u.next_deadline().map(|t| u.epoch + t.since_epoch());
        tokio::select! {
            biased;
            r = stop.changed() => {
                if r.is_err() || stop.borrow().is_some() {
                    break;
                }
            }
            input = rx.recv() => match input {
                Some(Input::Datagram(i, d)) => u.received(i, &d),
                Some(Input::Malformed(i, e)) => u.malformed(i, &e),
                Some(Input::Link(i, k, up)) => {
                    if let Some(m) = u.members.get_mut(i) {
                        let was = m.healthy();
                        if let Some(l) = m.links_up.get_mut(k) {
                            *l = up;
                        }
                        u.reevaluate(i, was);
                    }
                }
                Some(Input::Script(i, k, ok)) => {
                    if let Some(m) = u.members.get_mut(i) {
                        let was = m.healthy();
                        if let Some(s) = m.scripts_ok.get_mut(k) {
                            *s = ok;
                        }
                        u.reevaluate(i, was);
                    }
                }
                None => {
                    tracing::error!("VRRP reader tasks ended");
                    break;
                }
            },
            () = timer.sleep_until(deadline) => u.fire_due(),
        }
    }
    for r in readers {
        r.abort();
    }
    let mode = stop.borrow().unwrap_or_default();
    if mode == crate::StopMode::Handover {
        // The next process takes over where this one stops: the addresses stay, no
        // priority 0, no stop command, and the state files stay for it to resume from.
        // A Master advertises once more now (and stamps its state file), so the successor
        // has a whole master-down interval, from here, before a Backup would take over.
        let now = u.now();
        for i in 0..u.members.len() {
            u.handle(i, now, Event::HandOver);
        }
        for mut m in u.members {
            tracing::info!(instance = %m.name, "handing over: keeping the state and the virtual addresses");
            m.stop_garps();
            m.notifier.finish().await;
        }
        return;
    }
    u.run_stop_commands(&timer).await;
    let now = u.now();
    let status = u.status;
    for (mut inst, mut m) in u.core.into_instances().into_iter().zip(u.members) {
        for a in inst.handle(now, Event::Shutdown) {
            m.execute(&inst, a);
        }
        if let Some(f) = &mut m.state_file {
            f.remove();
        }
        if let Some(v) = m.vmac.take() {
            let name = v.name.clone();
            if let Err(e) = v.remove(&mut m.rtnl) {
                tracing::warn!(instance = %m.name, interface = %name, "cannot remove the virtual MAC interface: {e}");
            }
        }
        let mut st = m.status(&inst);
        st.master = None;
        status.send_modify(|map| {
            map.insert(m.name.clone(), st);
        });
        m.stop_garps();
        m.notifier.finish().await;
    }
}

/// `base` adjusted by `(weight, passing)` script states, like keepalived:
/// a positive weight counts while passing, a negative one while failing.
/// The instance clamps the result further (1..=254 unless owner).
fn tracked_priority(base: u8, scripts: impl Iterator<Item = (i16, bool)>) -> u8 {
    let mut p = i32::from(base);
    for (weight, ok) in scripts {
        let w = i32::from(weight);
        if (w > 0 && ok) || (w < 0 && !ok) {
            p += w;
        }
    }
    u8::try_from(p.clamp(1, 255)).unwrap_or(1)
}

/// Runs `script` every interval; reports its state (`true`: passing)
/// through `report` when it changes, after `rise` successes / `fall`
/// failures in a row. It starts as passing, like keepalived without
/// `init_fail`. Returns when `report` returns false.
async fn run_track_script(name: &str, script: &TrackScript, mut report: impl FnMut(bool) -> bool) {
    let mut ok = true;
    let mut streak = 0u32;
    let mut ticker = tokio::time::interval(script.interval.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let passed = run_bounded(name, &script.argv, script.timeout).await;
        if passed == ok {
            streak = 0;
            continue;
        }
        streak += 1;
        let needed = if passed { script.rise } else { script.fall };
        if streak >= needed.max(1) {
            ok = passed;
            streak = 0;
            tracing::info!(instance = %name, script = ?script.argv, ok, "track script changed");
            if !report(ok) {
                return;
            }
        }
    }
}

/// Runs `argv` (no shell); true if it exits 0 within `timeout`.
async fn run_bounded(name: &str, argv: &[String], timeout: Duration) -> bool {
    let Some((prog, args)) = argv.split_first() else {
        return false;
    };
    let child = tokio::process::Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(instance = %name, command = ?argv, "track script: cannot start: {e}");
            return false;
        }
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status.success(),
        Ok(Err(_)) => false,
        Err(_) => {
            let _ = child.kill().await;
            false
        }
    }
}

/// Waits for every future (a small `join_all`: the stop commands of a unit's members).
async fn futures_join_all<F: Future<Output = ()>>(futures: Vec<F>) {
    for f in futures {
        f.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_like_keepalived() {
        let p = |s: &[(i16, bool)]| tracked_priority(100, s.iter().copied());
        assert_eq!(p(&[]), 100);
        assert_eq!(p(&[(20, true), (-30, true)]), 120);
        assert_eq!(p(&[(20, false), (-30, false)]), 70);
        assert_eq!(p(&[(0, false)]), 100);
        assert_eq!(p(&[(-120, false)]), 1);
        assert_eq!(p(&[(200, true)]), 255);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn track_script_rise_and_fall() {
        let dir = std::env::temp_dir().join(format!("track-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let flag = dir.join("ok");
        let _ = std::fs::remove_file(&flag);
        let script = TrackScript {
            argv: vec!["test".into(), "-e".into(), flag.display().to_string()],
            interval: Duration::from_millis(20),
            timeout: Duration::from_secs(1),
            weight: 0,
            rise: 3,
            fall: 2,
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            run_track_script("t", &script, |ok| tx.send((ok, Instant::now())).is_ok()).await;
        });
        let start = Instant::now();
        // Starts passing; two failures in a row make it fail.
        let (ok, at) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .ok()
            .flatten()
            .unwrap_or((true, start));
        assert!(!ok);
        assert!(at.duration_since(start) >= Duration::from_millis(15));
        let _ = std::fs::write(&flag, "");
        let fixed = Instant::now();
        let (ok, at) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .ok()
            .flatten()
            .unwrap_or((false, fixed));
        assert!(ok);
        // Three successes: at least two intervals after the first.
        assert!(
            at.duration_since(fixed) >= Duration::from_millis(35),
            "{:?}",
            at.duration_since(fixed)
        );
        task.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
