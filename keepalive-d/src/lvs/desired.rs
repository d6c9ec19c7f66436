//! The desired IPVS table: the configuration with health applied. Pure code.
//!
//! Rules (documented for users in `CONFIG.md`, "How health shapes the table"):
//!
//! - A real server without a check is always up.
//! - An up server is in the table with its configured weight.
//! - A down server is removed, or kept with weight 0 when `inhibit_on_failure` is set (its
//!   established connections keep flowing, it gets no new ones).
//! - A server whose health is not known yet ([`ServerState::Pending`]: it was not in the
//!   kernel table when the daemon started and its first probe has not answered) is treated
//!   like a down one, but it does not count against the quorum: the sorry server is never
//!   brought in while a server of the service is pending.
//! - Quorum: the service is "in quorum" while enough servers are up. It is lost when fewer
//!   than `min_up - hysteresis` are up and regained at `min_up + hysteresis`. Below quorum
//!   with a `sorry_server`, the sorry server is the only destination with weight (the real
//!   servers are removed, or kept with weight 0 under `inhibit_on_failure`); without one,
//!   the up servers stay.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use ipvs::{
    Destination, PersistenceMask, SchedFlags, Service, ServiceKey as IpvsKey, Table, TunnelKind,
};

use crate::config::{self, Forward, ServiceKey, VirtualServer};
use crate::health::ServerId;

/// What the daemon knows about one real server's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Passing its check (or it has none).
    Up,
    /// Failing its check.
    Down,
    /// Not known yet: no probe has answered.
    Pending,
}

/// A virtual server that cannot be expressed as an IPVS service (a validated configuration
/// never produces one; the message names the service).
#[derive(Debug, thiserror::Error)]
#[error("virtual server `{name}`: {source}")]
pub struct DesiredError {
    /// The virtual server's name.
    pub name: String,
    /// What the IPVS types rejected.
    #[source]
    pub source: Box<ipvs::Error>,
}

impl DesiredError {
    pub(crate) fn new(name: &str, source: ipvs::Error) -> Self {
        Self {
            name: name.to_owned(),
            source: Box::new(source),
        }
    }
}

/// The IPVS key of a configured virtual server.
pub fn service_key(key: &ServiceKey) -> Result<IpvsKey, ipvs::Error> {
    Ok(match *key {
        ServiceKey::Addr { protocol, vip } => match protocol {
            config::Protocol::Tcp => IpvsKey::tcp(vip),
            config::Protocol::Udp => IpvsKey::udp(vip),
            config::Protocol::Sctp => IpvsKey::sctp(vip),
        },
        ServiceKey::Fwmark { mark, family } => IpvsKey::fwmark(ipvs_family(family), mark)?,
    })
}

fn ipvs_family(family: config::AddressFamily) -> ipvs::AddressFamily {
    match family {
        config::AddressFamily::Ipv4 => ipvs::AddressFamily::Inet,
        config::AddressFamily::Ipv6 => ipvs::AddressFamily::Inet6,
    }
}

/// The IPVS service (without destinations) of a configured virtual server.
pub fn service(vs: &VirtualServer) -> Result<Service, DesiredError> {
    let wrap = |source| DesiredError::new(&vs.name, source);
    let key = service_key(&vs.key).map_err(wrap)?;
    let scheduler = ipvs::Scheduler::new(vs.scheduler.as_str()).map_err(wrap)?;
    let mut flags = SchedFlags::empty();
    for flag in &vs.scheduler_flags {
        flags |= match flag {
            config::SchedulerFlag::ShFallback => SchedFlags::SH_FALLBACK,
            config::SchedulerFlag::ShPort => SchedFlags::SH_PORT,
            config::SchedulerFlag::MhFallback => SchedFlags::MH_FALLBACK,
            config::SchedulerFlag::MhPort => SchedFlags::MH_PORT,
        };
    }
    let mut builder = Service::builder(key)
        .scheduler(scheduler)
        .sched_flags(flags)
        .one_packet(vs.one_packet);
    if let Some(p) = &vs.persistence {
        let mask = match vs.key.family() {
            config::AddressFamily::Ipv4 => PersistenceMask::v4(p.ipv4_netmask()),
            config::AddressFamily::Ipv6 => PersistenceMask::v6(p.prefix_len),
        }
        .map_err(wrap)?;
        let persistence = ipvs::Persistence::new(p.timeout)
            .map_err(wrap)?
            .with_netmask(mask);
        builder = builder.persistence(persistence);
    }
    builder.build().map_err(wrap)
}

/// The forwarding method of a virtual server's destinations.
pub fn forward(vs: &VirtualServer) -> ipvs::Forward {
    match vs.forward {
        Forward::Nat => ipvs::Forward::Masquerade,
        Forward::DirectRouting => ipvs::Forward::DirectRoute,
        Forward::Tunnel(t) => ipvs::Forward::Tunnel {
            kind: match t.encap {
                config::TunnelEncap::Ipip => TunnelKind::Ipip,
                config::TunnelEncap::Gue { port } => TunnelKind::Gue { port },
                config::TunnelEncap::Gre => TunnelKind::Gre,
            },
            checksum: match t.checksum {
                config::TunnelChecksum::None => ipvs::TunnelChecksum::NoChecksum,
                config::TunnelChecksum::Csum => ipvs::TunnelChecksum::Checksum,
                config::TunnelChecksum::Remcsum => ipvs::TunnelChecksum::RemoteChecksum,
            },
        },
    }
}

/// Quorum state of one service, with hysteresis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuorumState {
    /// Not decided yet (some server is pending and nothing was adopted).
    #[default]
    Unknown,
    /// Enough servers are up.
    Met,
    /// Too few servers are up: the sorry server (if any) serves.
    Lost,
}

/// Computes desired tables, remembering each service's quorum state between calls.
#[derive(Debug, Clone)]
pub struct DesiredTable {
    quorum: Vec<QuorumState>,
}

/// A quorum change seen by [`DesiredTable::compute`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumChange {
    /// Index of the virtual server.
    pub service: usize,
    /// The new state.
    pub state: QuorumState,
    /// Up servers at the change.
    pub up: usize,
}

impl DesiredTable {
    /// For `services` virtual servers, with every quorum state unknown.
    pub fn new(services: usize) -> Self {
        Self {
            quorum: vec![QuorumState::Unknown; services],
        }
    }

    /// Sets a service's quorum state, e.g. `Lost` when the adopted kernel table serves
    /// through the sorry server.
    pub fn set_quorum(&mut self, service: usize, state: QuorumState) {
        if let Some(q) = self.quorum.get_mut(service) {
            *q = state;
        }
    }

    /// A service's current quorum state.
    pub fn quorum(&self, service: usize) -> QuorumState {
        self.quorum.get(service).copied().unwrap_or_default()
    }

    /// The table for `servers` given each real server's state; also the quorum changes
    /// this computation made.
    pub fn compute(
        &mut self,
        servers: &[VirtualServer],
        state: impl Fn(ServerId) -> ServerState,
    ) -> Result<(Table, Vec<QuorumChange>), DesiredError> {
        self.compute_with(servers, state, |_| false)
    }

    /// [`Self::compute`] with servers drained by hand (`keepalive-d drain`): a drained
    /// server stays in the table with weight 0 whatever its health (its established
    /// connections go on, it gets no new ones) and does not count towards the quorum.
    pub fn compute_with(
        &mut self,
        servers: &[VirtualServer],
        state: impl Fn(ServerId) -> ServerState,
        drained: impl Fn(ServerId) -> bool,
    ) -> Result<(Table, Vec<QuorumChange>), DesiredError> {
        if self.quorum.len() != servers.len() {
            self.quorum.resize(servers.len(), QuorumState::Unknown);
        }
        let mut table = Table::new();
        let mut changes = Vec::new();
        for (si, vs) in servers.iter().enumerate() {
            let wrap = |source| DesiredError::new(&vs.name, source);
            let mut svc = service(vs)?;
            let fwd = forward(vs);
            let states: Vec<ServerState> = (0..vs.real_servers.len())
                .map(|ri| {
                    if vs.real_servers[ri].check.is_none() {
                        ServerState::Up
                    } else {
                        state(ServerId {
                            service: si,
                            server: ri,
                        })
                    }
                })
                .collect();
            let is_drained: Vec<bool> = (0..vs.real_servers.len())
                .map(|ri| {
                    drained(ServerId {
                        service: si,
                        server: ri,
                    })
                })
                .collect();
            let up = states
                .iter()
                .zip(&is_drained)
                .filter(|(s, d)| **s == ServerState::Up && !**d)
                .count();
            let pending = states.contains(&ServerState::Pending);
            let old = self.quorum[si];
            let new = next_quorum(old, up, pending, vs.quorum);
            if new != old {
                self.quorum[si] = new;
                changes.push(QuorumChange {
                    service: si,
                    state: new,
                    up,
                });
            }
            let sorry = match (new, vs.sorry_server) {
                (QuorumState::Lost, Some(addr)) => Some(addr),
                _ => None,
            };
            for ((rs, st), drained) in vs.real_servers.iter().zip(&states).zip(&is_drained) {
                let weight = match (st, sorry.is_some(), vs.inhibit_on_failure) {
                    _ if *drained => Some(0),
                    (ServerState::Up, false, _) => Some(rs.weight),
                    (_, _, true) => Some(0),
                    _ => None,
                };
                if let Some(weight) = weight {
                    let dest = destination(rs.address, fwd, weight).map_err(wrap)?;
                    svc.set_destination(dest).map_err(wrap)?;
                }
            }
            if let Some(addr) = sorry {
                let dest = destination(addr, fwd, 1).map_err(wrap)?;
                svc.set_destination(dest).map_err(wrap)?;
            }
            table.set_service(svc);
        }
        Ok((table, changes))
    }
}

fn destination(
    addr: SocketAddr,
    fwd: ipvs::Forward,
    weight: u32,
) -> Result<Destination, ipvs::Error> {
    Destination::new(addr, fwd)?.with_weight(weight)
}

/// The quorum rule with hysteresis: lost below `min_up - hysteresis`, regained at
/// `min_up + hysteresis`; undecided while a server is pending (unless already decided).
pub fn next_quorum(
    old: QuorumState,
    up: usize,
    pending: bool,
    quorum: config::Quorum,
) -> QuorumState {
    let min_up = quorum.min_up as usize;
    let hyst = quorum.hysteresis as usize;
    let lose_below = min_up.saturating_sub(hyst);
    let regain_at = min_up.saturating_add(hyst);
    match old {
        QuorumState::Unknown if pending && up < regain_at => QuorumState::Unknown,
        QuorumState::Unknown => {
            if up >= min_up {
                QuorumState::Met
            } else {
                QuorumState::Lost
            }
        }
        QuorumState::Met if up < lose_below && !pending => QuorumState::Lost,
        QuorumState::Met => QuorumState::Met,
        QuorumState::Lost if up >= regain_at => QuorumState::Met,
        QuorumState::Lost => QuorumState::Lost,
    }
}

/// The IPVS keys of every configured virtual server (what the daemon owns).
pub fn owned_keys(servers: &[VirtualServer]) -> Result<BTreeSet<IpvsKey>, DesiredError> {
    servers
        .iter()
        .map(|vs| service_key(&vs.key).map_err(|source| DesiredError::new(&vs.name, source)))
        .collect()
}
