//! Sync groups: members move together.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;

use vrrp_proto::{
    Action, Advertisement, Event, Instance, InstanceConfig, State, SyncGroup, Time, Timer, Version,
    VersionFields,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn member(vrid: u8, vip: &str, priority: u8) -> Instance {
    let mut c = InstanceConfig::new(vrid, Version::V3, ip("10.0.0.2"), vec![ip(vip)]);
    c.priority = priority;
    c.garp.delay = None;
    c.garp.repeat = 1;
    Instance::new(c.validate().unwrap())
}

fn group() -> SyncGroup {
    SyncGroup::new(vec![
        member(1, "10.0.1.100", 100),
        member(2, "10.0.2.100", 100),
    ])
}

fn advert(vrid: u8, vip: &str, priority: u8) -> Event {
    Event::AdvertReceived {
        src: ip("10.0.0.1"),
        advert: Advertisement {
            vrid,
            priority,
            fields: VersionFields::V3 {
                max_adver_int_centis: 100,
            },
            addresses: vec![ip(vip)],
        },
    }
}

fn states(g: &SyncGroup) -> Vec<State> {
    g.members().iter().map(Instance::state).collect()
}

fn show(actions: &[(usize, Action)]) -> Vec<String> {
    actions.iter().map(|(i, a)| format!("{i}: {a}")).collect()
}

fn started() -> SyncGroup {
    let mut g = group();
    g.handle(0, Time::ZERO, Event::Startup);
    g.handle(1, Time::ZERO, Event::Startup);
    assert_eq!(states(&g), [State::Backup, State::Backup]);
    g
}

fn both_master() -> SyncGroup {
    let mut g = started();
    let at = Time::from_micros(3_609_375);
    g.handle(0, at, Event::TimerFired(Timer::MasterDown));
    g.handle(1, at, Event::TimerFired(Timer::MasterDown));
    assert_eq!(states(&g), [State::Master, State::Master]);
    g
}

#[test]
fn members_are_marked() {
    let g = group();
    assert!(g.members().iter().all(Instance::is_sync_member));
    assert!(g.member(2).is_none());
    assert_eq!(g.clone().into_members().len(), 2);
    assert!(!member(1, "10.0.1.100", 100).is_sync_member());
}

#[test]
fn a_member_does_not_take_over_alone() {
    let mut g = started();
    // Member 1 still hears its master.
    g.handle(1, Time::from_secs(3), advert(2, "10.0.2.100", 200));
    // Member 0's master went silent: it only wants to be master.
    let out = g.handle(
        0,
        Time::from_micros(3_609_375),
        Event::TimerFired(Timer::MasterDown),
    );
    assert!(out.is_empty(), "{:?}", show(&out));
    assert!(g.member(0).unwrap().wants_master());
    assert_eq!(states(&g), [State::Backup, State::Backup]);
    // When member 1's master goes silent too, both take over together.
    let at = g.member(1).unwrap().deadline(Timer::MasterDown).unwrap();
    let out = g.handle(1, at, Event::TimerFired(Timer::MasterDown));
    assert_eq!(states(&g), [State::Master, State::Master]);
    let notes: Vec<String> = show(&out)
        .into_iter()
        .filter(|s| s.contains("notify"))
        .collect();
    assert_eq!(
        notes,
        [
            "0: notify master reason=sync-group",
            "1: notify master reason=sync-group"
        ]
    );
}

#[test]
fn hearing_a_master_again_cancels_the_wish() {
    let mut g = started();
    g.handle(1, Time::from_secs(3), advert(2, "10.0.2.100", 200));
    g.handle(
        0,
        Time::from_micros(3_609_375),
        Event::TimerFired(Timer::MasterDown),
    );
    assert!(g.member(0).unwrap().wants_master());
    g.handle(0, Time::from_secs(4), advert(1, "10.0.1.100", 200));
    assert!(!g.member(0).unwrap().wants_master());
    assert!(g.member(0).unwrap().deadline(Timer::MasterDown).is_some());
}

#[test]
fn one_member_yielding_takes_the_others_to_backup() {
    let mut g = both_master();
    let out = g.handle(0, Time::from_secs(5), advert(1, "10.0.1.100", 200));
    assert_eq!(states(&g), [State::Backup, State::Backup]);
    let s = show(&out);
    assert!(s.contains(&"0: notify backup reason=higher-priority".to_string()));
    assert!(s.contains(&"1: remove-addresses 10.0.2.100".to_string()));
    assert!(s.contains(&"1: notify backup reason=sync-group".to_string()));
    // Like keepalived, the follower does not send priority 0.
    assert!(!s.iter().any(|x| x.starts_with("1: send-advert")), "{s:?}");
}

#[test]
fn a_fault_takes_the_whole_group_down_and_back() {
    let mut g = both_master();
    let out = g.handle(1, Time::from_secs(5), Event::InterfaceDown);
    assert_eq!(states(&g), [State::Fault, State::Fault]);
    let s = show(&out);
    assert!(s.contains(&"1: send-advert prio=0".to_string()));
    assert!(s.contains(&"0: send-advert prio=0".to_string()));
    assert!(s.contains(&"0: notify fault reason=sync-group".to_string()));
    assert!(!g.member(0).unwrap().has_local_fault());
    assert!(g.member(1).unwrap().has_local_fault());

    // Member 0's own interface flapping does not lift the group fault.
    g.handle(0, Time::from_secs(6), Event::InterfaceUp);
    assert_eq!(states(&g), [State::Fault, State::Fault]);

    let out = g.handle(1, Time::from_secs(7), Event::InterfaceUp);
    assert_eq!(states(&g), [State::Backup, State::Backup]);
    let s = show(&out);
    assert!(s.contains(&"1: notify backup reason=interface-up".to_string()));
    assert!(s.contains(&"0: notify backup reason=sync-group".to_string()));
}

#[test]
fn an_owner_member_pulls_the_others_to_master() {
    let mut g = SyncGroup::new(vec![
        member(1, "10.0.1.100", 100),
        member(2, "10.0.2.100", 255),
    ]);
    g.handle(0, Time::ZERO, Event::Startup);
    let out = g.handle(1, Time::ZERO, Event::Startup);
    assert_eq!(states(&g), [State::Master, State::Master]);
    assert!(show(&out).contains(&"0: notify master reason=sync-group".to_string()));
}

#[test]
fn out_of_range_index_does_nothing() {
    let mut g = group();
    assert!(g.handle(7, Time::ZERO, Event::Startup).is_empty());
}
