//! Desired-table computation and adoption: every combination of health, quorum, sorry
//! server and inhibit.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use ipvs::reconcile::{ApplyOptions, Scope, plan};
use ipvs::{Forward, SchedFlags, Scheduler, Table, TunnelChecksum, TunnelKind};

use super::desired::{
    DesiredTable, QuorumState, ServerState, next_quorum, owned_keys, service_key,
};
use super::{HealthTable, KernelView, Touched, adopt, entries, restrict, touched};
use crate::config::{Quorum, VirtualServer, parse_str};
use crate::health::{Health, ServerId};

fn servers(yaml: &str) -> Vec<VirtualServer> {
    match parse_str(yaml, "test.yaml") {
        Ok(c) => c.virtual_servers,
        Err(e) => panic!("{e}"),
    }
}

const WEB: &str = "
virtual_servers:
  - name: web
    vip: 192.0.2.10:80
    scheduler: wrr
    check: { type: tcp }
    real_servers:
      - { address: 10.0.0.11:80, weight: 100 }
      - { address: 10.0.0.12:80, weight: 50 }
      - { address: 10.0.0.13:80, weight: 10 }
";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn states(list: &[ServerState]) -> impl Fn(ServerId) -> ServerState + '_ {
    move |id| list[id.server]
}

/// (address, weight) of the single service's destinations.
fn dests(table: &Table) -> Vec<(SocketAddr, u32)> {
    let svc = table.services().next().unwrap();
    svc.destinations().map(|d| (d.addr(), d.weight())).collect()
}

use ServerState::{Down, Pending, Up};

#[test]
fn all_up_gives_every_server_its_weight() {
    let vs = servers(WEB);
    let mut d = DesiredTable::new(1);
    let (t, changes) = d.compute(&vs, states(&[Up, Up, Up])).unwrap();
    assert_eq!(
        dests(&t),
        vec![
            (sa("10.0.0.11:80"), 100),
            (sa("10.0.0.12:80"), 50),
            (sa("10.0.0.13:80"), 10)
        ]
    );
    let svc = t.services().next().unwrap();
    assert_eq!(svc.scheduler(), &Scheduler::WeightedRoundRobin);
    assert_eq!(
        svc.destinations().next().unwrap().forward(),
        Forward::Masquerade
    );
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].state, QuorumState::Met);
    // No change the second time.
    let (_, changes) = d.compute(&vs, states(&[Up, Up, Up])).unwrap();
    assert!(changes.is_empty());
}

#[test]
fn a_down_server_is_removed_or_inhibited() {
    let vs = servers(WEB);
    let (t, _) = DesiredTable::new(1)
        .compute(&vs, states(&[Up, Down, Up]))
        .unwrap();
    assert_eq!(
        dests(&t),
        vec![(sa("10.0.0.11:80"), 100), (sa("10.0.0.13:80"), 10)]
    );

    let vs = servers(&WEB.replace("    check:", "    inhibit_on_failure: true\n    check:"));
    let (t, _) = DesiredTable::new(1)
        .compute(&vs, states(&[Up, Down, Up]))
        .unwrap();
    assert_eq!(
        dests(&t),
        vec![
            (sa("10.0.0.11:80"), 100),
            (sa("10.0.0.12:80"), 0),
            (sa("10.0.0.13:80"), 10)
        ]
    );
}

#[test]
fn a_server_without_check_is_always_up() {
    let vs = servers(
        "
virtual_servers:
  - name: web
    vip: 192.0.2.10:80
    real_servers:
      - { address: 10.0.0.11:80 }
      - { address: 10.0.0.12:80, check: { type: tcp } }
",
    );
    let (t, _) = DesiredTable::new(1)
        .compute(&vs, states(&[Down, Down]))
        .unwrap();
    assert_eq!(dests(&t), vec![(sa("10.0.0.11:80"), 1)]);
}

#[test]
fn pending_servers_are_out_and_never_bring_the_sorry_server() {
    let vs = servers(&WEB.replace("    check:", "    sorry_server: 10.0.0.99:80\n    check:"));
    let mut d = DesiredTable::new(1);
    let (t, changes) = d.compute(&vs, states(&[Pending, Pending, Down])).unwrap();
    assert!(dests(&t).is_empty());
    assert!(changes.is_empty());
    assert_eq!(d.quorum(0), QuorumState::Unknown);
    // One answer is enough to decide when it meets the quorum.
    let (t, _) = d.compute(&vs, states(&[Up, Pending, Down])).unwrap();
    assert_eq!(dests(&t), vec![(sa("10.0.0.11:80"), 100)]);
    assert_eq!(d.quorum(0), QuorumState::Met);
}

#[test]
fn all_down_brings_in_the_sorry_server_and_quorum_return_removes_it() {
    let vs = servers(&WEB.replace("    check:", "    sorry_server: 10.0.0.99:80\n    check:"));
    let mut d = DesiredTable::new(1);
    d.compute(&vs, states(&[Up, Up, Up])).unwrap();
    let (t, changes) = d.compute(&vs, states(&[Down, Down, Down])).unwrap();
    assert_eq!(dests(&t), vec![(sa("10.0.0.99:80"), 1)]);
    assert_eq!(changes[0].state, QuorumState::Lost);
    assert_eq!(changes[0].up, 0);
    let (t, changes) = d.compute(&vs, states(&[Down, Up, Down])).unwrap();
    assert_eq!(dests(&t), vec![(sa("10.0.0.12:80"), 50)]);
    assert_eq!(changes[0].state, QuorumState::Met);
}

#[test]
fn below_quorum_with_sorry_and_inhibit_keeps_real_servers_at_weight_zero() {
    let vs = servers(&WEB.replace(
        "    check:",
        "    sorry_server: 10.0.0.99:80\n    inhibit_on_failure: true\n    quorum: { min_up: 2 }\n    check:",
    ));
    let mut d = DesiredTable::new(1);
    let (t, _) = d.compute(&vs, states(&[Up, Down, Down])).unwrap();
    assert_eq!(d.quorum(0), QuorumState::Lost);
    assert_eq!(
        dests(&t),
        vec![
            (sa("10.0.0.11:80"), 0),
            (sa("10.0.0.12:80"), 0),
            (sa("10.0.0.13:80"), 0),
            (sa("10.0.0.99:80"), 1)
        ]
    );
}

#[test]
fn below_quorum_without_sorry_keeps_the_up_servers() {
    let vs = servers(&WEB.replace("    check:", "    quorum: { min_up: 2 }\n    check:"));
    let mut d = DesiredTable::new(1);
    let (t, _) = d.compute(&vs, states(&[Up, Down, Down])).unwrap();
    assert_eq!(d.quorum(0), QuorumState::Lost);
    assert_eq!(dests(&t), vec![(sa("10.0.0.11:80"), 100)]);
}

#[test]
fn quorum_hysteresis() {
    let q = Quorum {
        min_up: 2,
        hysteresis: 1,
    };
    use QuorumState::{Lost, Met, Unknown};
    assert_eq!(next_quorum(Unknown, 3, false, q), Met);
    assert_eq!(next_quorum(Unknown, 1, false, q), Lost);
    assert_eq!(next_quorum(Unknown, 2, false, q), Met);
    assert_eq!(next_quorum(Unknown, 2, true, q), Unknown);
    assert_eq!(next_quorum(Unknown, 3, true, q), Met);
    // Lost only below min_up - hysteresis = 1 ...
    assert_eq!(next_quorum(Met, 1, false, q), Met);
    assert_eq!(next_quorum(Met, 0, false, q), Lost);
    // ... but not while a server is pending.
    assert_eq!(next_quorum(Met, 0, true, q), Met);
    // Regained only at min_up + hysteresis = 3.
    assert_eq!(next_quorum(Lost, 2, false, q), Lost);
    assert_eq!(next_quorum(Lost, 3, false, q), Met);
    let plain = Quorum::default();
    assert_eq!(next_quorum(Met, 0, false, plain), Lost);
    assert_eq!(next_quorum(Lost, 1, false, plain), Met);
}

#[test]
fn service_attributes_follow_the_config() {
    let vs = servers(
        "
virtual_servers:
  - name: mh
    vip: \"[2001:db8::10]:443\"
    scheduler: mh
    scheduler_flags: [mh-port, mh-fallback]
    persistence: { timeout: 300s, netmask: 64 }
    forward: tun
    tunnel: { type: gue, port: 6080, checksum: csum }
    real_servers:
      - { address: \"[2001:db8:1::11]:443\", weight: 3 }
  - name: dns
    fwmark: 53
    family: ipv4
    one_packet: true
    forward: dr
    real_servers:
      - { address: 10.0.0.21:0 }
",
    );
    let (t, _) = DesiredTable::new(2).compute(&vs, |_| Up).unwrap();
    let key = service_key(&vs[0].key).unwrap();
    let svc = t.service(&key).unwrap();
    assert_eq!(svc.scheduler(), &Scheduler::MaglevHashing);
    assert_eq!(
        svc.sched_flags(),
        SchedFlags::MH_PORT | SchedFlags::MH_FALLBACK
    );
    let p = svc.persistence().unwrap();
    assert_eq!(p.timeout(), Duration::from_secs(300));
    assert_eq!(p.netmask().unwrap().prefix_len(), 64);
    let d = svc.destinations().next().unwrap();
    assert_eq!(
        d.forward(),
        Forward::Tunnel {
            kind: TunnelKind::Gue { port: 6080 },
            checksum: TunnelChecksum::Checksum
        }
    );
    assert_eq!(d.weight(), 3);
    let dns = t.service(&service_key(&vs[1].key).unwrap()).unwrap();
    assert_eq!(dns.key().mark(), Some(53));
    assert!(dns.one_packet());
    assert_eq!(
        dns.destinations().next().unwrap().forward(),
        Forward::DirectRoute
    );
    assert_eq!(owned_keys(&vs).unwrap().len(), 2);
}

fn plan_is_empty(kernel: &Table, desired: &Table, vs: &[VirtualServer]) -> bool {
    let opts = ApplyOptions {
        scope: Scope::Owned(owned_keys(vs).unwrap()),
        ..ApplyOptions::default()
    };
    plan(kernel, desired, &opts).is_empty()
}

/// Adopting a table the daemon wrote itself needs no write, in every health situation.
#[test]
fn adopting_our_own_table_writes_nothing() {
    let variants = [
        WEB.to_owned(),
        WEB.replace("    check:", "    inhibit_on_failure: true\n    check:"),
        WEB.replace("    check:", "    sorry_server: 10.0.0.99:80\n    check:"),
        WEB.replace(
            "    check:",
            "    sorry_server: 10.0.0.99:80\n    inhibit_on_failure: true\n    check:",
        ),
    ];
    let healths = [
        [Up, Up, Up],
        [Up, Down, Up],
        [Down, Down, Up],
        [Down, Down, Down],
    ];
    for yaml in &variants {
        let vs = servers(yaml);
        for h in &healths {
            let mut before = DesiredTable::new(1);
            before.compute(&vs, |_| Up).unwrap();
            let (kernel, _) = before.compute(&vs, states(h)).unwrap();
            let mut after = DesiredTable::new(1);
            let (health, targets) = adopt(&vs, &kernel, &mut after).unwrap();
            assert_eq!(targets.len(), 3);
            let (desired, _) = after.compute(&vs, |id| health.get(id)).unwrap();
            assert!(
                plan_is_empty(&kernel, &desired, &vs),
                "{yaml}\n{h:?}\nkernel {kernel:?}\ndesired {desired:?}"
            );
        }
    }
}

#[test]
fn adoption_reads_health_from_the_kernel() {
    let vs = servers(&WEB.replace("    check:", "    inhibit_on_failure: true\n    check:"));
    let mut d = DesiredTable::new(1);
    let (kernel, _) = d.compute(&vs, states(&[Up, Down, Up])).unwrap();
    let mut kernel = kernel;
    let key = service_key(&vs[0].key).unwrap();
    kernel
        .service_mut(&key)
        .unwrap()
        .remove_destination(sa("10.0.0.13:80"));
    let mut after = DesiredTable::new(1);
    let (health, targets) = adopt(&vs, &kernel, &mut after).unwrap();
    let initial: HashMap<usize, Option<Health>> =
        targets.iter().map(|t| (t.id.server, t.initial)).collect();
    assert_eq!(initial[&0], Some(Health::Up));
    assert_eq!(initial[&1], Some(Health::Down));
    assert_eq!(initial[&2], None);
    let HealthTable(h) = health;
    assert_eq!(h[0], vec![Up, Down, Pending]);
    // A service missing from the kernel: every checked server is pending.
    let (health, _) = adopt(&vs, &Table::new(), &mut DesiredTable::new(1)).unwrap();
    assert_eq!(health.0[0], vec![Pending, Pending, Pending]);
}

#[test]
fn a_drained_server_stays_at_weight_zero_and_does_not_count_for_quorum() {
    let vs = servers(&WEB.replace(
        "    check:",
        "    sorry_server: 10.0.0.99:80\n    quorum: { min_up: 2 }\n    check:",
    ));
    let mut d = DesiredTable::new(1);
    let (t, _) = d
        .compute_with(&vs, states(&[Up, Up, Down]), |id| id.server == 1)
        .unwrap();
    // One up server left that is not drained: below quorum, the sorry server serves; the
    // drained server keeps its entry at weight 0.
    assert_eq!(d.quorum(0), QuorumState::Lost);
    assert_eq!(
        dests(&t),
        vec![(sa("10.0.0.12:80"), 0), (sa("10.0.0.99:80"), 1)]
    );
    let (t, _) = d
        .compute_with(&vs, states(&[Up, Up, Up]), |id| id.server == 1)
        .unwrap();
    assert_eq!(
        dests(&t),
        vec![
            (sa("10.0.0.11:80"), 100),
            (sa("10.0.0.12:80"), 0),
            (sa("10.0.0.13:80"), 10)
        ]
    );
}

fn key(s: &str) -> ipvs::ServiceKey {
    s.parse().unwrap()
}

#[test]
fn a_reload_touches_changed_new_and_removed_services_only() {
    let old = servers(
        "
virtual_servers:
  - { name: a, vip: 192.0.2.1:80, real_servers: [{ address: 10.0.0.1:80 }] }
  - { name: b, vip: 192.0.2.2:80, real_servers: [{ address: 10.0.0.1:80 }] }
  - { name: c, vip: 192.0.2.3:80, real_servers: [{ address: 10.0.0.1:80 }] }
  - { name: d, vip: 192.0.2.4:80, real_servers: [{ address: 10.0.0.1:80 }] }
",
    );
    // The same services in another order: nothing.
    let mut same = old.clone();
    same.reverse();
    assert_eq!(touched(&old, &same).unwrap(), Touched::default());
    // b: another real server; c: renamed (its drained servers are named by it); d: gone;
    // e: new.
    let new = servers(
        "
virtual_servers:
  - { name: a, vip: 192.0.2.1:80, real_servers: [{ address: 10.0.0.1:80 }] }
  - { name: b, vip: 192.0.2.2:80, real_servers: [{ address: 10.0.0.2:80 }] }
  - { name: c2, vip: 192.0.2.3:80, real_servers: [{ address: 10.0.0.1:80 }] }
  - { name: e, vip: 192.0.2.5:80, real_servers: [{ address: 10.0.0.1:80 }] }
",
    );
    let t = touched(&old, &new).unwrap();
    let keys = |l: &[&str]| {
        l.iter()
            .map(|s| key(s))
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(
        t.touched,
        keys(&[
            "tcp 192.0.2.2:80",
            "tcp 192.0.2.3:80",
            "tcp 192.0.2.4:80",
            "tcp 192.0.2.5:80"
        ])
    );
    assert_eq!(t.removed, keys(&["tcp 192.0.2.4:80"]));
}

#[test]
fn a_reload_of_many_services_is_not_quadratic() {
    // 20,000 services, one changed: matched by key (a quadratic search would take
    // seconds here).
    let mut yaml = String::from("virtual_servers:\n");
    for i in 0..20_000u32 {
        yaml.push_str(&format!(
            "  - {{ name: s{i}, vip: 10.1.{}.{}:80, real_servers: [{{ address: 10.2.0.1:80 }}] }}\n",
            i / 250,
            i % 250 + 1
        ));
    }
    let old = servers(&yaml);
    let mut new = old.clone();
    new[12_345].real_servers[0].weight = 7;
    let start = std::time::Instant::now();
    let t = touched(&old, &new).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(t.touched.len(), 1);
    assert!(t.removed.is_empty());
}

#[test]
fn inactive_connection_entries_keep_a_destination_too() {
    // A closing connection (FIN_WAIT, TIME_WAIT) is an inactive entry: deleting its
    // destination would blackhole a client reusing that port.
    let d = ipvs::DestinationStats {
        active_conns: 0,
        inactive_conns: 2,
        ..ipvs::DestinationStats::default()
    };
    assert_eq!(entries(&d), 2);
    let d = ipvs::DestinationStats {
        active_conns: u32::MAX,
        inactive_conns: 2,
        ..ipvs::DestinationStats::default()
    };
    assert_eq!(entries(&d), u32::MAX);
}

#[test]
fn kernel_view_idle_and_restrict() {
    let mut table = Table::new();
    for k in ["tcp 192.0.2.1:80", "tcp 192.0.2.2:80", "tcp 192.0.2.3:80"] {
        table
            .add_service(ipvs::Service::builder(key(k)).build().unwrap())
            .unwrap();
    }
    let mut view = KernelView {
        table: table.clone(),
        ..KernelView::default()
    };
    view.conns
        .insert((key("tcp 192.0.2.1:80"), sa("10.0.0.1:80")), 0);
    view.conns
        .insert((key("tcp 192.0.2.1:80"), sa("10.0.0.2:80")), 3);
    view.conns
        .insert((key("tcp 192.0.2.2:80"), sa("10.0.0.1:80")), 0);
    view.conns
        .insert((key("tcp 192.0.2.3:80"), sa("[2001:db8::1]:80")), 1);
    assert!(!view.idle(&key("tcp 192.0.2.1:80")));
    assert!(view.idle(&key("tcp 192.0.2.2:80")));
    assert!(
        !view.idle(&key("tcp 192.0.2.3:80")),
        "IPv6 destinations count too"
    );
    assert!(view.idle(&key("tcp 192.0.2.9:80")), "not in the kernel");
    assert_eq!(view.conns(&key("tcp 192.0.2.1:80"), sa("10.0.0.2:80")), 3);
    let some = restrict(
        &table,
        &[key("tcp 192.0.2.2:80"), key("tcp 192.0.2.9:80")].into(),
    );
    assert_eq!(
        some.services().map(|s| *s.key()).collect::<Vec<_>>(),
        [key("tcp 192.0.2.2:80")]
    );
}
