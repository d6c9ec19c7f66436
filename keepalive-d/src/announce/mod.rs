//! Announcing virtual IPs by BGP (`announce: bgp`): which addresses are announced (pure
//! code, [`announced`]) and the routes that say so to the local BGP speaker
//! ([`route::RouteTable`]).
//!
//! ```text
//!   lvs::desired quorum states ──► announced() ──► RouteTable::sync ──► kernel table N
//!   (per virtual server)             (pure)          (rtnetlink)         VIP/32 dev lo
//!                                                                        proto P
//!                                                             BIRD: protocol kernel
//!                                                             (learn, table N) ──► BGP
//! ```
//!
//! The daemon does not speak BGP: it installs a host route (`VIP/32 dev lo`, or `/128`)
//! into a routing table of its own ([`crate::config::BgpSettings`]) while the address is
//! healthy, and removes it when it is not; BIRD imports that table and exports it to its
//! BGP peers. The table is not used for forwarding (no `ip rule` points to it).
//!
//! Rules:
//!
//! - A virtual server with `announce: bgp` wants its VIP's address announced while its
//!   quorum is met ([`QuorumState::Met`]); not while it is unknown (no probe answered yet)
//!   or lost.
//! - An address is announced only while **every** announcing virtual server of that
//!   address is in quorum (the route carries the address, not a port: a director that
//!   cannot serve one of the ports should not draw that address's traffic).
//! - A drained director (`keepalive-d drain-director`) announces nothing.

pub mod route;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::config::{Announce, ServiceKey, VirtualServer};
use crate::lvs::desired::QuorumState;

/// The addresses to announce: those of the virtual servers with `announce: bgp` whose
/// services are all in quorum (`quorum(i)` is the state of `servers[i]`), none when
/// `director_drained`.
pub fn announced(
    servers: &[VirtualServer],
    quorum: impl Fn(usize) -> QuorumState,
    director_drained: bool,
) -> BTreeSet<IpAddr> {
    if director_drained {
        return BTreeSet::new();
    }
    let mut healthy: BTreeMap<IpAddr, bool> = BTreeMap::new();
    for (i, vs) in servers.iter().enumerate() {
        let (Some(Announce::Bgp), ServiceKey::Addr { vip, .. }) = (vs.announce, vs.key) else {
            continue;
        };
        let met = quorum(i) == QuorumState::Met;
        *healthy.entry(vip.ip()).or_insert(true) &= met;
    }
    healthy
        .into_iter()
        .filter_map(|(addr, met)| met.then_some(addr))
        .collect()
}

/// Whether any virtual server announces its address.
pub fn any_announced(servers: &[VirtualServer]) -> bool {
    servers.iter().any(|vs| vs.announce.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;

    fn servers(yaml: &str) -> Vec<VirtualServer> {
        match parse_str(yaml, "t.yaml") {
            Ok(c) => c.virtual_servers,
            Err(e) => panic!("{e}"),
        }
    }

    const TWO_PORTS: &str = "
virtual_servers:
  - { name: http, vip: 10.0.0.100:80, announce: bgp, scheduler: mh, real_servers: [{ address: 10.0.0.11:80 }] }
  - { name: https, vip: 10.0.0.100:443, announce: bgp, real_servers: [{ address: 10.0.0.11:443 }] }
  - { name: other, vip: 10.0.0.101:80, announce: bgp, real_servers: [{ address: 10.0.0.11:80 }] }
  - { name: quiet, vip: 10.0.0.102:80, real_servers: [{ address: 10.0.0.11:80 }] }
  - { name: v6, vip: \"[2001:db8::100]:80\", announce: bgp, real_servers: [{ address: \"[2001:db8::11]:80\" }] }
";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn every_announcing_service_in_quorum_announces_its_address_once() {
        let vs = servers(TWO_PORTS);
        let got = announced(&vs, |_| QuorumState::Met, false);
        let want: BTreeSet<IpAddr> = ["10.0.0.100", "10.0.0.101", "2001:db8::100"]
            .into_iter()
            .map(ip)
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn one_port_out_of_quorum_withdraws_the_address() {
        let vs = servers(TWO_PORTS);
        for state in [QuorumState::Lost, QuorumState::Unknown] {
            let got = announced(
                &vs,
                |i| if i == 1 { state } else { QuorumState::Met },
                false,
            );
            assert!(!got.contains(&ip("10.0.0.100")), "{state:?}: {got:?}");
            assert!(got.contains(&ip("10.0.0.101")), "{state:?}: {got:?}");
        }
    }

    #[test]
    fn a_service_without_announce_is_never_announced() {
        let vs = servers(TWO_PORTS);
        let got = announced(&vs, |_| QuorumState::Met, false);
        assert!(!got.contains(&ip("10.0.0.102")));
        assert!(any_announced(&vs));
        assert!(!any_announced(&vs[3..4]));
    }

    #[test]
    fn a_drained_director_announces_nothing() {
        let vs = servers(TWO_PORTS);
        assert!(announced(&vs, |_| QuorumState::Met, true).is_empty());
    }

    #[test]
    fn nothing_is_announced_before_the_quorum_is_known() {
        let vs = servers(TWO_PORTS);
        assert!(announced(&vs, |_| QuorumState::Unknown, false).is_empty());
        assert!(announced(&vs, |_| QuorumState::Lost, false).is_empty());
    }
}
