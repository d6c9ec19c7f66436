//! The per-instance task: feeds [`Instance`] its events and carries out its
//! actions in order.
//!
//! Events: [`Event::Startup`] (after removing addresses a crashed
//! predecessor may have left), received adverts (after
//! [`Instance::receive`]), [`Event::TimerFired`] at the deadlines of
//! [`Action::ArmTimer`], [`Event::InterfaceUp`] / [`Event::InterfaceDown`]
//! from rtnetlink link notifications, and [`Event::Shutdown`] when asked to
//! stop. Address changes are synchronous netlink requests (done before the
//! gratuitous ARPs that follow them); spaced gratuitous ARP bursts and
//! notify commands run in tasks of their own, so the state machine never
//! waits for them.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use vrrp_proto::packet::peek;
use vrrp_proto::{Action, DropReason, Event, Instance, State, Time, Timer, Warning};

use super::VirtualAddress;
use super::addr::{LinkMonitor, Rtnl};
use super::garp::{GarpSocket, frame};
use super::notify::{Notifier, NotifySpec};
use super::socket::{VrrpSocket, group};

/// An instance with everything opened, ready to run.
#[derive(Debug)]
pub struct Prepared {
    pub(crate) name: String,
    pub(crate) interface: String,
    pub(crate) ifindex: u32,
    pub(crate) mac: Option<[u8; 6]>,
    pub(crate) vips: Vec<VirtualAddress>,
    pub(crate) instance: Instance,
    pub(crate) sock: VrrpSocket,
    pub(crate) garp: Option<GarpSocket>,
    pub(crate) link: LinkMonitor,
    pub(crate) rtnl: Rtnl,
    pub(crate) notify: NotifySpec,
    pub(crate) garp_interval: Duration,
}

struct Driver {
    name: String,
    interface: String,
    ifindex: u32,
    mac: Option<[u8; 6]>,
    vips: Vec<VirtualAddress>,
    instance: Instance,
    sock: VrrpSocket,
    garp: Option<Arc<GarpSocket>>,
    rtnl: Rtnl,
    notifier: Notifier,
    garp_interval: Duration,
    garp_tasks: Vec<AbortHandle>,
    timers: BTreeMap<Timer, Time>,
    epoch: Instant,
    last_warnings: Vec<Warning>,
}

impl Driver {
    fn now(&self) -> Time {
        Time::from(self.epoch.elapsed())
    }

    fn handle(&mut self, now: Time, event: Event) {
        let actions = self.instance.handle(now, event);
        for a in actions {
            self.execute(a);
        }
    }

    fn vip(&self, a: IpAddr) -> VirtualAddress {
        self.vips
            .iter()
            .copied()
            .find(|v| v.address == a)
            .unwrap_or(VirtualAddress::host(a))
    }

    fn execute(&mut self, action: Action) {
        tracing::trace!(instance = %self.name, %action, "action");
        match action {
            Action::SendAdvert(advert) => {
                let cfg = self.instance.config();
                let src = cfg.primary_address;
                let dsts: Vec<IpAddr> = if cfg.unicast_peers.is_empty() {
                    vec![group(matches!(src, IpAddr::V6(_)))]
                } else {
                    cfg.unicast_peers.clone()
                };
                for dst in dsts {
                    let sent = self
                        .instance
                        .encode(&advert, dst)
                        .map_err(|e| e.to_string())
                        .and_then(|bytes| {
                            self.sock.send(src, dst, &bytes).map_err(|e| e.to_string())
                        });
                    if let Err(e) = sent {
                        tracing::debug!(instance = %self.name, %dst, "advert not sent: {e}");
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
                for a in addrs {
                    let v = self.vip(a);
                    match self.rtnl.remove_address(self.ifindex, &v) {
                        Ok(()) => tracing::debug!(instance = %self.name, address = %v, "removed"),
                        Err(e) => tracing::error!(
                            instance = %self.name, address = %v, interface = %self.interface,
                            "cannot remove virtual address: {e}"
                        ),
                    }
                }
            }
            Action::SendGratuitous { addresses, repeat } => self.gratuitous(addresses, repeat),
            Action::Notify { state, reason } => {
                let priority = self.instance.effective_priority();
                tracing::info!(
                    instance = %self.name, interface = %self.interface, %state, %reason, priority,
                    "VRRP state change"
                );
                if state != State::Master {
                    self.stop_garps();
                }
                self.notifier.transition(state, priority);
            }
            Action::ArmTimer { timer, at } => {
                self.timers.insert(timer, at);
            }
            Action::CancelTimer(timer) => {
                self.timers.remove(&timer);
            }
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

    fn received(&mut self, payload: &[u8], meta: &vrrp_proto::RxMeta) {
        let vrid = self.instance.config().vrid;
        match peek(payload) {
            Some((_, v)) if v == vrid => {}
            _ => return, // another router's VRID, or garbage
        }
        match self.instance.receive(payload, meta) {
            Ok(r) => {
                if r.warnings != self.last_warnings {
                    for w in &r.warnings {
                        tracing::warn!(instance = %self.name, src = %r.src, "advert: {w:?}");
                    }
                    self.last_warnings.clone_from(&r.warnings);
                }
                let now = self.now();
                self.handle(now, r.into_event());
            }
            Err(DropReason::FromSelf) => {}
            Err(e) => {
                tracing::debug!(instance = %self.name, src = %meta.src, "advert dropped: {e}");
            }
        }
    }

    fn next_deadline(&self) -> Option<Time> {
        self.timers.values().min().copied()
    }

    fn fire_due(&mut self) {
        let now = self.now();
        let due: Vec<(Timer, Time)> = self
            .timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(t, at)| (*t, *at))
            .collect();
        let mut due = due;
        due.sort_by_key(|(_, at)| *at);
        for (timer, at) in due {
            // Re-armed or cancelled by an earlier firing of this round?
            if self.timers.get(&timer) != Some(&at) {
                continue;
            }
            self.timers.remove(&timer);
            self.handle(now.max(at), Event::TimerFired(timer));
        }
    }
}

/// Runs one instance until `stop` turns true, then shuts it down.
pub async fn drive(p: Prepared, mut stop: watch::Receiver<bool>) {
    let Prepared {
        name,
        interface,
        ifindex,
        mac,
        vips,
        instance,
        sock,
        garp,
        mut link,
        rtnl,
        notify,
        garp_interval,
    } = p;
    let notifier = Notifier::spawn(&name, notify);
    let mut d = Driver {
        name,
        interface,
        ifindex,
        mac,
        vips,
        instance,
        sock,
        garp: garp.map(Arc::new),
        rtnl,
        notifier,
        garp_interval,
        garp_tasks: Vec::new(),
        timers: BTreeMap::new(),
        epoch: Instant::now(),
        last_warnings: Vec::new(),
    };
    // Addresses left behind by a predecessor that crashed: a starting
    // instance is never master before its master-down timer (unless it is
    // the address owner, which adds them back at once).
    let all: Vec<IpAddr> = d.vips.iter().map(|v| v.address).collect();
    d.execute(Action::RemoveAddresses(all));
    let now = d.now();
    if !link.is_up() {
        d.handle(now, Event::InterfaceDown);
    }
    d.handle(now, Event::Startup);
    let mut link_ok = true;
    loop {
        let deadline = d.next_deadline().map(|t| d.epoch + t.since_epoch());
        tokio::select! {
            biased;
            r = stop.changed() => {
                if r.is_err() || *stop.borrow() {
                    break;
                }
            }
            r = link.changed(), if link_ok => match r {
                Ok(up) => {
                    let now = d.now();
                    d.handle(now, if up { Event::InterfaceUp } else { Event::InterfaceDown });
                }
                Err(e) => {
                    tracing::error!(instance = %d.name, "link monitor failed: {e}");
                    link_ok = false;
                }
            },
            r = d.sock.recv() => match r {
                Ok(Ok(dgram)) => d.received(&dgram.payload, &dgram.meta),
                Ok(Err(e)) => tracing::debug!(instance = %d.name, "datagram dropped: {e}"),
                Err(e) => {
                    tracing::warn!(instance = %d.name, "receive: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            () = sleep_until(deadline) => d.fire_due(),
        }
    }
    let now = d.now();
    d.handle(now, Event::Shutdown);
    d.stop_garps();
    d.notifier.finish().await;
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
