//! A small discrete-event LAN: several instances of one VRID, adverts
//! delivered to everyone connected (through the real encoder, decoder and
//! receive validation), timers run by the simulator. Checks convergence
//! after startup, partitions and failures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use proptest::prelude::*;
use vrrp_proto::{
    Action, Event, IPV4_MULTICAST, Instance, InstanceConfig, RxMeta, State, TTL, Time, Timer,
    Version,
};

const TIMERS: [Timer; 5] = Timer::ALL;

struct Lan {
    routers: Vec<Instance>,
    /// Whether router i is connected to the LAN.
    connected: Vec<bool>,
    now: Time,
    /// Addresses installed per router, from the actions.
    holds_vip: Vec<bool>,
}

impl Lan {
    fn new(priorities: &[u8], version: Version, interval: Duration, preempt: bool) -> Self {
        let routers = priorities
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let addr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1 + u8::try_from(i).unwrap()));
                let mut c = InstanceConfig::new(
                    42,
                    version,
                    addr,
                    vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 200))],
                );
                c.priority = *p;
                c.preempt = preempt || *p == 255;
                c.advert_interval = interval;
                Instance::new(c.validate().unwrap())
            })
            .collect::<Vec<_>>();
        let n = routers.len();
        Lan {
            routers,
            connected: vec![true; n],
            now: Time::ZERO,
            holds_vip: vec![false; n],
        }
    }

    /// Feeds `event` to router `i` and delivers what it sends.
    fn feed(&mut self, i: usize, event: Event) {
        let mut work = vec![(i, event)];
        let mut steps = 0;
        while let Some((i, event)) = work.pop() {
            steps += 1;
            assert!(steps < 10_000, "advert storm");
            for action in self.routers[i].handle(self.now, event) {
                match action {
                    Action::AddAddresses(_) => self.holds_vip[i] = true,
                    Action::RemoveAddresses(_) => self.holds_vip[i] = false,
                    Action::SendAdvert(adv) if self.connected[i] => {
                        let src = self.routers[i].config().primary_address;
                        let dst = IpAddr::V4(IPV4_MULTICAST);
                        let bytes = self.routers[i].encode(&adv, dst).unwrap();
                        let meta = RxMeta { src, dst, ttl: TTL };
                        for j in 0..self.routers.len() {
                            if j == i || !self.connected[j] {
                                continue;
                            }
                            let received = self.routers[j].receive(&bytes, &meta).unwrap();
                            assert!(received.warnings.is_empty());
                            work.push((j, received.into_event()));
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Runs timers until `until`.
    fn run_until(&mut self, until: Time) {
        loop {
            let next = self
                .routers
                .iter()
                .enumerate()
                .flat_map(|(i, r)| {
                    TIMERS
                        .iter()
                        .filter_map(move |t| r.deadline(*t).map(|d| (d, i, *t)))
                })
                .min();
            match next {
                Some((at, i, timer)) if at <= until => {
                    self.now = at;
                    self.feed(i, Event::TimerFired(timer));
                }
                _ => break,
            }
        }
        self.now = until;
    }

    fn masters(&self) -> Vec<usize> {
        (0..self.routers.len())
            .filter(|i| self.routers[*i].state() == State::Master)
            .collect()
    }

    fn check_addresses(&self) {
        for (i, r) in self.routers.iter().enumerate() {
            assert_eq!(self.holds_vip[i], r.state() == State::Master, "router {i}");
        }
    }
}

/// The highest priority among the routers alive. With preemption the
/// master must have it. (Among equal priorities the address only breaks
/// ties between two masters: a backup does not preempt an equal-priority
/// master with a lower address, so which one wins depends on timing.)
fn best_priority(priorities: &[u8], alive: &[bool]) -> u8 {
    (0..priorities.len())
        .filter(|i| alive[*i])
        .map(|i| priorities[i])
        .max()
        .unwrap()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn three_routers_elect_the_best_and_fail_over_in_order() {
    let prios = [100, 200, 150];
    let mut lan = Lan::new(&prios, Version::V3, secs(1), true);
    for i in 0..3 {
        lan.feed(i, Event::Startup);
    }
    lan.run_until(Time::from_secs(10));
    assert_eq!(lan.masters(), [1]);
    lan.check_addresses();
    // The master shuts down: the 150 takes over within its skew time.
    lan.feed(1, Event::Shutdown);
    lan.run_until(lan.now + Duration::from_millis(500));
    assert_eq!(lan.masters(), [2]);
    // It fails silently: the 100 takes over within its master-down interval.
    lan.connected[2] = false;
    lan.run_until(lan.now + Duration::from_millis(3_700));
    let masters = lan.masters();
    assert!(masters.contains(&0), "{masters:?}");
    lan.check_addresses();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Start everyone at random times while the LAN is split into two
    /// random halves (two masters), heal it, and check that exactly one
    /// master remains: the best router if everyone preempts.
    #[test]
    fn any_split_heals_to_one_master(
        prios in proptest::collection::vec(1u8..=255, 2..6),
        starts in proptest::collection::vec(0u64..5_000, 6),
        side in proptest::collection::vec(any::<bool>(), 6),
        preempt in any::<bool>(),
        v2 in any::<bool>(),
        cs in 5u16..=150,
    ) {
        // Only one address owner makes sense on a LAN.
        let mut prios = prios;
        let owners = prios.iter().filter(|p| **p == 255).count();
        if owners > 1 {
            for p in prios.iter_mut().skip(1) {
                if *p == 255 {
                    *p = 254;
                }
            }
        }
        let (version, interval) = if v2 {
            (Version::V2, secs(1))
        } else {
            (Version::V3, Duration::from_millis(10 * u64::from(cs)))
        };
        let n = prios.len();
        let mut lan = Lan::new(&prios, version, interval, preempt);
        // Partition: only routers on side A see each other; the others are
        // cut off individually.
        lan.connected.copy_from_slice(&side[..n]);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|i| starts[*i]);
        for i in order {
            lan.run_until(Time::from_millis(starts[i]));
            lan.feed(i, Event::Startup);
        }
        lan.run_until(lan.now + interval * 10);
        lan.check_addresses();
        // Heal.
        lan.connected = vec![true; n];
        lan.run_until(lan.now + interval * 10);
        lan.check_addresses();
        let masters = lan.masters();
        prop_assert_eq!(masters.len(), 1, "{:?} prios {:?}", masters, prios);
        if preempt {
            prop_assert_eq!(prios[masters[0]], best_priority(&prios, &vec![true; n]), "prios {:?}", prios);
        }
        // Kill the master silently: exactly one of the others takes over.
        let dead = masters[0];
        lan.connected[dead] = false;
        lan.feed(dead, Event::InterfaceDown);
        lan.run_until(lan.now + interval * 10);
        let alive: Vec<bool> = (0..n).map(|i| i != dead).collect();
        let masters = lan.masters();
        prop_assert_eq!(masters.len(), 1, "{:?} prios {:?}", masters, prios);
        if preempt {
            prop_assert_eq!(prios[masters[0]], best_priority(&prios, &alive), "prios {:?}", prios);
        }
        lan.check_addresses();
    }
}
