//! Deterministic tests of the per-instance state machine.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;
use std::time::Duration;

use vrrp_proto::{
    Action, Advertisement, Auth, Event, GarpConfig, Instance, InstanceConfig, Reason, State, Time,
    Timer, Version, VersionFields,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn cfg(version: Version, priority: u8) -> InstanceConfig {
    let mut c = InstanceConfig::new(10, version, ip("10.0.0.2"), vec![ip("10.0.0.100")]);
    c.priority = priority;
    c
}

fn inst(c: InstanceConfig) -> Instance {
    Instance::new(c.validate().unwrap())
}

fn started(c: InstanceConfig) -> Instance {
    let mut vr = inst(c);
    vr.handle(Time::ZERO, Event::Startup);
    vr
}

fn master(c: InstanceConfig) -> Instance {
    let mut vr = started(c);
    let at = vr.deadline(Timer::MasterDown).unwrap();
    vr.handle(at, Event::TimerFired(Timer::MasterDown));
    assert_eq!(vr.state(), State::Master);
    vr
}

fn advert(version: Version, priority: u8, interval_units: u16) -> Advertisement {
    let fields = match version {
        Version::V2 => VersionFields::V2 {
            auth: Auth::None,
            adver_int_secs: u8::try_from(interval_units).unwrap(),
        },
        Version::V3 => VersionFields::V3 {
            max_adver_int_centis: interval_units,
        },
    };
    Advertisement {
        vrid: 10,
        priority,
        fields,
        addresses: vec![ip("10.0.0.100")],
    }
}

fn rx(src: &str, adv: Advertisement) -> Event {
    Event::AdvertReceived {
        src: ip(src),
        advert: adv,
    }
}

fn show(actions: &[Action]) -> Vec<String> {
    actions.iter().map(ToString::to_string).collect()
}

#[test]
fn skew_time_v2_is_independent_of_interval() {
    let mut c = cfg(Version::V2, 100);
    c.advert_interval = Duration::from_secs(3);
    let vr = inst(c);
    // (256 - 100) / 256 s = 0.609375 s
    assert_eq!(vr.skew_time(), Duration::from_micros(609_375));
    assert_eq!(
        inst(cfg(Version::V2, 254)).skew_time(),
        Duration::from_nanos(7_812_500)
    );
    assert_eq!(
        inst(cfg(Version::V2, 1)).skew_time(),
        Duration::from_nanos(996_093_750)
    );
}

#[test]
fn skew_time_v3_scales_with_master_interval() {
    let mut c = cfg(Version::V3, 100);
    c.advert_interval = ms(500);
    // (256 - 100) * 0.5 s / 256 = 0.3046875 s
    assert_eq!(inst(c).skew_time(), Duration::from_nanos(304_687_500));
    let mut c = cfg(Version::V3, 200);
    c.advert_interval = ms(10);
    // 56 * 10 ms / 256 = 2.1875 ms
    assert_eq!(inst(c).skew_time(), Duration::from_nanos(2_187_500));
}

#[test]
fn master_down_interval_is_three_adverts_plus_skew() {
    let mut c = cfg(Version::V2, 100);
    c.advert_interval = Duration::from_secs(2);
    assert_eq!(
        inst(c).master_down_interval(),
        Duration::from_micros(6_609_375)
    );
    let mut c = cfg(Version::V3, 100);
    c.advert_interval = ms(100);
    // 3 * 100 ms + 156 * 100 ms / 256 = 300 ms + 60.9375 ms
    assert_eq!(
        inst(c).master_down_interval(),
        Duration::from_nanos(360_937_500)
    );
}

#[test]
fn resume_window_ends_with_the_quickest_peers_master_down_interval() {
    // A restarted Master may resume only while no peer can have declared it down: the
    // peer with the highest priority (its own, or one heard from a peer) is the quickest.
    for (version, interval) in [
        (Version::V2, Duration::from_secs(1)),
        (Version::V3, ms(100)),
    ] {
        let mut c = cfg(version, 100);
        c.advert_interval = interval;
        let own = inst(c.clone());
        assert_eq!(own.resume_window(None), own.master_down_interval());
        assert_eq!(own.resume_window(Some(20)), own.master_down_interval());
        let mut peer = c.clone();
        peer.priority = 150;
        let peer = inst(peer);
        assert_eq!(own.resume_window(Some(150)), peer.master_down_interval());
        assert!(own.resume_window(Some(150)) < own.master_down_interval());
    }
}

#[test]
fn startup_non_owner_goes_backup_with_master_down_timer() {
    let mut vr = inst(cfg(Version::V3, 100));
    let a = vr.handle(Time::from_secs(5), Event::Startup);
    assert_eq!(vr.state(), State::Backup);
    assert_eq!(
        show(&a),
        [
            "arm master-down at=8.609375s",
            "notify backup reason=startup"
        ]
    );
    // A second startup is ignored.
    assert!(vr.handle(Time::from_secs(6), Event::Startup).is_empty());
}

#[test]
fn startup_address_owner_goes_master_at_once() {
    let mut vr = inst(cfg(Version::V3, 255));
    let a = vr.handle(Time::ZERO, Event::Startup);
    assert_eq!(vr.state(), State::Master);
    assert_eq!(
        show(&a),
        [
            "send-advert prio=255",
            "add-addresses 10.0.0.100",
            "garp repeat=5 10.0.0.100",
            "arm advert at=1s",
            "arm garp-delay at=5s",
            "notify master reason=address-owner",
        ]
    );
}

#[test]
fn master_down_timer_makes_backup_master() {
    let mut vr = started(cfg(Version::V2, 100));
    let at = Time::from_micros(3_609_375);
    assert_eq!(vr.deadline(Timer::MasterDown), Some(at));
    let a = vr.handle(at, Event::TimerFired(Timer::MasterDown));
    assert_eq!(vr.state(), State::Master);
    assert_eq!(
        show(&a),
        [
            "send-advert prio=100",
            "add-addresses 10.0.0.100",
            "garp repeat=5 10.0.0.100",
            "arm advert at=4.609375s",
            "arm garp-delay at=8.609375s",
            "notify master reason=master-down",
        ]
    );
    let Action::SendAdvert(adv) = &a[0] else {
        panic!()
    };
    assert_eq!(
        adv.fields,
        VersionFields::V2 {
            auth: Auth::None,
            adver_int_secs: 1
        }
    );
}

#[test]
fn stale_and_early_timers_are_ignored() {
    let mut vr = started(cfg(Version::V3, 100));
    // Early.
    assert!(
        vr.handle(Time::from_secs(1), Event::TimerFired(Timer::MasterDown))
            .is_empty()
    );
    // Never armed.
    assert!(
        vr.handle(Time::from_secs(9), Event::TimerFired(Timer::Advert))
            .is_empty()
    );
    assert_eq!(vr.state(), State::Backup);
    // Re-armed by an advert: the old deadline no longer counts.
    vr.handle(
        Time::from_secs(3),
        rx("10.0.0.1", advert(Version::V3, 150, 100)),
    );
    assert!(
        vr.handle(
            Time::from_micros(3_609_375),
            Event::TimerFired(Timer::MasterDown)
        )
        .is_empty()
    );
    assert_eq!(vr.state(), State::Backup);
}

#[test]
fn backup_accepting_an_advert_rearms_master_down() {
    let mut vr = started(cfg(Version::V3, 100));
    let a = vr.handle(
        Time::from_secs(2),
        rx("10.0.0.1", advert(Version::V3, 150, 100)),
    );
    assert_eq!(show(&a), ["arm master-down at=5.609375s"]);
    assert_eq!(vr.master(), Some((ip("10.0.0.1"), 150)));
}

#[test]
fn v3_backup_adopts_master_advert_interval() {
    let mut vr = started(cfg(Version::V3, 100));
    // The master advertises 50 cs (0.5 s) while we are configured for 1 s.
    let a = vr.handle(
        Time::from_secs(2),
        rx("10.0.0.1", advert(Version::V3, 150, 50)),
    );
    assert_eq!(vr.master_adver_interval(), ms(500));
    // 2 s + 3 * 0.5 s + 156 * 0.5 s / 256 = 3.8046875 s
    assert_eq!(show(&a), ["arm master-down at=3.8046875s"]);
    // On becoming master we advertise our own interval again.
    let a = vr.handle(
        Time::from_nanos(3_804_687_500),
        Event::TimerFired(Timer::MasterDown),
    );
    let Action::SendAdvert(adv) = &a[0] else {
        panic!()
    };
    assert_eq!(
        adv.fields,
        VersionFields::V3 {
            max_adver_int_centis: 100
        }
    );
    assert_eq!(vr.master_adver_interval(), Duration::from_secs(1));
}

#[test]
fn backup_priority_zero_takes_over_after_skew_only() {
    let mut vr = started(cfg(Version::V3, 100));
    vr.handle(
        Time::from_secs(1),
        rx("10.0.0.1", advert(Version::V3, 150, 100)),
    );
    let a = vr.handle(
        Time::from_secs(2),
        rx("10.0.0.1", advert(Version::V3, 0, 100)),
    );
    // 2 s + skew 0.609375 s
    assert_eq!(show(&a), ["arm master-down at=2.609375s"]);
    vr.handle(
        Time::from_micros(2_609_375),
        Event::TimerFired(Timer::MasterDown),
    );
    assert_eq!(vr.state(), State::Master);
}

#[test]
fn preempt_on_discards_lower_priority_and_takes_over() {
    let mut vr = started(cfg(Version::V3, 200));
    let a = vr.handle(
        Time::from_secs(1),
        rx("10.0.0.1", advert(Version::V3, 100, 100)),
    );
    assert!(a.is_empty(), "lower-priority advert is discarded");
    // 3 s + 56/256 s = 3.21875 s after startup.
    let a = vr.handle(
        Time::from_micros(3_218_750),
        Event::TimerFired(Timer::MasterDown),
    );
    assert_eq!(vr.state(), State::Master);
    assert_eq!(a[0].to_string(), "send-advert prio=200");
}

#[test]
fn preempt_off_keeps_a_lower_priority_master() {
    let mut c = cfg(Version::V3, 200);
    c.preempt = false;
    let mut vr = started(c);
    for s in 1..20 {
        let a = vr.handle(
            Time::from_secs(s),
            rx("10.0.0.1", advert(Version::V3, 100, 100)),
        );
        assert_eq!(a.len(), 1, "accepted: timer re-armed");
    }
    assert_eq!(vr.state(), State::Backup);
}

#[test]
fn preempt_delay_accepts_a_lower_master_for_the_delay_then_preempts() {
    let mut c = cfg(Version::V3, 200);
    c.preempt_delay = Duration::from_secs(10);
    let mut vr = started(c);
    // First lower-priority advert at t=1 s starts the 10 s delay.
    for s in 1..=10 {
        let a = vr.handle(
            Time::from_secs(s),
            rx("10.0.0.1", advert(Version::V3, 100, 100)),
        );
        assert_eq!(a.len(), 1, "accepted at {s} s");
    }
    assert_eq!(vr.state(), State::Backup);
    // From t=11 s (deadline reached) lower adverts are discarded.
    for s in [11, 12] {
        let a = vr.handle(
            Time::from_secs(s),
            rx("10.0.0.1", advert(Version::V3, 100, 100)),
        );
        assert!(a.is_empty(), "discarded at {s} s");
    }
    // The timer armed at 10 s runs out: 10 s + 3.21875 s.
    assert!(
        vr.handle(Time::from_secs(13), Event::TimerFired(Timer::MasterDown))
            .is_empty()
    );
    vr.handle(
        Time::from_micros(13_218_750),
        Event::TimerFired(Timer::MasterDown),
    );
    assert_eq!(vr.state(), State::Master);
}

#[test]
fn preempt_delay_restarts_after_a_higher_master() {
    let mut c = cfg(Version::V3, 200);
    c.preempt_delay = Duration::from_secs(5);
    let mut vr = started(c);
    vr.handle(
        Time::from_secs(1),
        rx("10.0.0.1", advert(Version::V3, 100, 100)),
    );
    // A higher-priority master appears: the delay is reset.
    vr.handle(
        Time::from_secs(2),
        rx("10.0.0.3", advert(Version::V3, 250, 100)),
    );
    // The lower one comes back at 8 s: a new 5 s delay starts there.
    let a = vr.handle(
        Time::from_secs(8),
        rx("10.0.0.1", advert(Version::V3, 100, 100)),
    );
    assert_eq!(a.len(), 1);
    let a = vr.handle(
        Time::from_secs(12),
        rx("10.0.0.1", advert(Version::V3, 100, 100)),
    );
    assert_eq!(a.len(), 1, "still within the new delay");
    let a = vr.handle(
        Time::from_secs(13),
        rx("10.0.0.1", advert(Version::V3, 100, 100)),
    );
    assert!(a.is_empty(), "delay over: preempting");
}

#[test]
fn master_answers_lower_priority_advert_at_once() {
    let mut vr = master(cfg(Version::V3, 150));
    let a = vr.handle(
        Time::from_secs(4),
        rx("10.0.0.1", advert(Version::V3, 100, 100)),
    );
    assert_eq!(show(&a), ["send-advert prio=150"]);
    assert_eq!(vr.state(), State::Master);
}

#[test]
fn master_answers_priority_zero_and_resets_advert_timer() {
    let mut vr = master(cfg(Version::V3, 150));
    let a = vr.handle(
        Time::from_secs(4),
        rx("10.0.0.1", advert(Version::V3, 0, 100)),
    );
    assert_eq!(show(&a), ["send-advert prio=150", "arm advert at=5s"]);
}

#[test]
fn master_yields_to_higher_priority_and_removes_addresses() {
    let mut vr = master(cfg(Version::V3, 100));
    let a = vr.handle(
        Time::from_secs(4),
        rx("10.0.0.1", advert(Version::V3, 200, 50)),
    );
    assert_eq!(vr.state(), State::Backup);
    assert_eq!(
        show(&a),
        [
            "cancel advert",
            "cancel garp-delay",
            "remove-addresses 10.0.0.100",
            // adopts 0.5 s: 4 s + 1.5 s + 0.3046875 s
            "arm master-down at=5.8046875s",
            "notify backup reason=higher-priority",
        ]
    );
}

#[test]
fn equal_priority_is_broken_by_the_higher_address() {
    // We are 10.0.0.2.
    let mut vr = master(cfg(Version::V3, 100));
    let a = vr.handle(
        Time::from_secs(4),
        rx("10.0.0.1", advert(Version::V3, 100, 100)),
    );
    assert_eq!(show(&a), ["send-advert prio=100"], "lower address: we stay");
    let a = vr.handle(
        Time::from_secs(5),
        rx("10.0.0.3", advert(Version::V3, 100, 100)),
    );
    assert_eq!(vr.state(), State::Backup);
    assert!(show(&a).contains(&"notify backup reason=equal-priority-higher-address".to_string()));
    // IPv6 compares the 128-bit addresses.
    let mut c = InstanceConfig::new(10, Version::V3, ip("fe80::2"), vec![ip("fe80::100")]);
    c.priority = 255;
    let mut vr6 = started(c);
    assert_eq!(vr6.state(), State::Master);
    let mut adv = advert(Version::V3, 255, 100);
    adv.addresses = vec![ip("fe80::100")];
    vr6.handle(Time::from_secs(1), rx("fe80::1:0", adv));
    assert_eq!(vr6.state(), State::Backup);
}

#[test]
fn shutdown_as_master_sends_priority_zero() {
    let mut vr = master(cfg(Version::V3, 100));
    let a = vr.handle(Time::from_secs(10), Event::Shutdown);
    assert_eq!(vr.state(), State::Initialize);
    assert_eq!(
        show(&a),
        [
            "cancel advert",
            "cancel garp-delay",
            "send-advert prio=0",
            "remove-addresses 10.0.0.100",
            "notify initialize reason=shutdown",
        ]
    );
    // Shutting down again does nothing; startup works again.
    assert!(vr.handle(Time::from_secs(11), Event::Shutdown).is_empty());
    vr.handle(Time::from_secs(12), Event::Startup);
    assert_eq!(vr.state(), State::Backup);
}

#[test]
fn shutdown_as_backup_sends_nothing() {
    let mut vr = started(cfg(Version::V3, 100));
    let a = vr.handle(Time::from_secs(1), Event::Shutdown);
    assert_eq!(
        show(&a),
        ["cancel master-down", "notify initialize reason=shutdown"]
    );
}

#[test]
fn interface_down_in_master_sends_priority_zero_and_faults() {
    let mut vr = master(cfg(Version::V3, 100));
    let a = vr.handle(Time::from_secs(5), Event::InterfaceDown);
    assert_eq!(vr.state(), State::Fault);
    assert_eq!(
        show(&a),
        [
            "cancel advert",
            "cancel garp-delay",
            "send-advert prio=0",
            "remove-addresses 10.0.0.100",
            "notify fault reason=interface-down",
        ]
    );
    // Adverts and timers are ignored in Fault.
    assert!(
        vr.handle(
            Time::from_secs(6),
            rx("10.0.0.1", advert(Version::V3, 1, 100))
        )
        .is_empty()
    );
    let a = vr.handle(Time::from_secs(7), Event::InterfaceUp);
    assert_eq!(vr.state(), State::Backup);
    assert_eq!(
        show(&a),
        [
            "arm master-down at=10.609375s",
            "notify backup reason=interface-up"
        ]
    );
}

#[test]
fn interface_down_before_startup_starts_in_fault() {
    let mut vr = inst(cfg(Version::V3, 255));
    assert!(vr.handle(Time::ZERO, Event::InterfaceDown).is_empty());
    let a = vr.handle(Time::ZERO, Event::Startup);
    assert_eq!(vr.state(), State::Fault);
    assert_eq!(show(&a), ["notify fault reason=interface-down"]);
    let a = vr.handle(Time::from_secs(1), Event::InterfaceUp);
    assert_eq!(
        vr.state(),
        State::Master,
        "the owner recovers straight to Master"
    );
    assert_eq!(
        a.last().unwrap().to_string(),
        "notify master reason=address-owner"
    );
}

#[test]
fn advert_timer_sends_and_rearms() {
    let mut vr = inst(cfg(Version::V3, 255));
    vr.handle(Time::ZERO, Event::Startup);
    let a = vr.handle(Time::from_secs(1), Event::TimerFired(Timer::Advert));
    assert_eq!(show(&a), ["send-advert prio=255", "arm advert at=2s"]);
}

#[test]
fn gratuitous_arp_now_after_delay_and_refresh() {
    let mut c = cfg(Version::V3, 255);
    c.garp = GarpConfig {
        repeat: 3,
        delay: Some(Duration::from_secs(2)),
        refresh: Some(Duration::from_secs(60)),
        refresh_repeat: 2,
    };
    let mut vr = inst(c);
    let a = vr.handle(Time::ZERO, Event::Startup);
    assert!(show(&a).contains(&"garp repeat=3 10.0.0.100".to_string()));
    assert!(show(&a).contains(&"arm garp-delay at=2s".to_string()));
    assert!(show(&a).contains(&"arm garp-refresh at=60s".to_string()));
    let a = vr.handle(Time::from_secs(2), Event::TimerFired(Timer::GarpDelay));
    assert_eq!(show(&a), ["garp repeat=3 10.0.0.100"]);
    let a = vr.handle(Time::from_secs(60), Event::TimerFired(Timer::GarpRefresh));
    assert_eq!(
        show(&a),
        ["garp repeat=2 10.0.0.100", "arm garp-refresh at=120s"]
    );

    let mut c = cfg(Version::V3, 255);
    c.garp = GarpConfig {
        repeat: 0,
        delay: Some(Duration::from_secs(2)),
        refresh: None,
        refresh_repeat: 1,
    };
    let a = inst(c).handle(Time::ZERO, Event::Startup);
    assert!(!show(&a).iter().any(|s| s.contains("garp")), "{a:?}");
}

#[test]
fn priority_change_in_master_is_advertised_at_once() {
    let mut vr = master(cfg(Version::V3, 100));
    let a = vr.handle(Time::from_secs(5), Event::PriorityChanged(50));
    assert_eq!(show(&a), ["send-advert prio=50", "arm advert at=6s"]);
    assert_eq!(vr.effective_priority(), 50);
    // Unchanged: nothing. Clamped: 0 -> 1, 255 -> 254 for a non-owner.
    assert!(
        vr.handle(Time::from_secs(5), Event::PriorityChanged(50))
            .is_empty()
    );
    vr.handle(Time::from_secs(5), Event::PriorityChanged(0));
    assert_eq!(vr.effective_priority(), 1);
    vr.handle(Time::from_secs(5), Event::PriorityChanged(255));
    assert_eq!(vr.effective_priority(), 254);
}

#[test]
fn lowered_master_loses_to_a_preempting_backup() {
    // A master (150) drops to 50 through tracking; a backup at 100 preempts.
    let mut a = master(cfg(Version::V3, 150));
    let mut c = cfg(Version::V3, 100);
    c.primary_address = ip("10.0.0.3");
    let mut b = started(c);
    b.handle(
        Time::from_secs(4),
        rx("10.0.0.2", advert(Version::V3, 150, 100)),
    );
    let out = a.handle(Time::from_secs(5), Event::PriorityChanged(50));
    let Action::SendAdvert(adv) = &out[0] else {
        panic!()
    };
    assert!(
        b.handle(Time::from_secs(5), rx("10.0.0.2", adv.clone()))
            .is_empty()
    );
    let at = b.deadline(Timer::MasterDown).unwrap();
    b.handle(at, Event::TimerFired(Timer::MasterDown));
    assert_eq!(b.state(), State::Master);
}

#[test]
fn backup_priority_change_changes_skew() {
    let mut vr = started(cfg(Version::V3, 100));
    vr.handle(Time::from_secs(1), Event::PriorityChanged(200));
    assert_eq!(vr.skew_time(), Duration::from_micros(218_750));
}

#[test]
fn config_change_in_master_updates_addresses() {
    let mut vr = master(cfg(Version::V3, 100));
    let mut c = cfg(Version::V3, 120);
    c.virtual_addresses = vec![ip("10.0.0.101")];
    let a = vr.handle(
        Time::from_secs(5),
        Event::ConfigChanged(Box::new(c.validate().unwrap())),
    );
    assert_eq!(
        show(&a),
        [
            "remove-addresses 10.0.0.100",
            "add-addresses 10.0.0.101",
            "garp repeat=5 10.0.0.101",
            "send-advert prio=120",
            "arm advert at=6s",
        ]
    );
    assert_eq!(vr.state(), State::Master);
}

#[test]
fn config_change_of_vrid_restarts_the_instance() {
    let mut vr = master(cfg(Version::V3, 100));
    let mut c = cfg(Version::V3, 100);
    c.vrid = 11;
    let a = vr.handle(
        Time::from_secs(5),
        Event::ConfigChanged(Box::new(c.validate().unwrap())),
    );
    assert_eq!(
        show(&a),
        [
            "cancel advert",
            "cancel garp-delay",
            "send-advert prio=0",
            "remove-addresses 10.0.0.100",
            "notify initialize reason=config-changed",
            "arm master-down at=8.609375s",
            "notify backup reason=startup",
        ]
    );
    assert_eq!(vr.config().vrid, 11);
    let Action::SendAdvert(adv) = &a[2] else {
        panic!()
    };
    assert_eq!(adv.vrid, 10, "the goodbye goes out under the old VRID");
}

#[test]
fn adverts_for_other_vrids_or_versions_are_ignored() {
    let mut vr = master(cfg(Version::V3, 100));
    let mut adv = advert(Version::V3, 200, 100);
    adv.vrid = 11;
    assert!(
        vr.handle(Time::from_secs(4), rx("10.0.0.1", adv))
            .is_empty()
    );
    assert!(
        vr.handle(
            Time::from_secs(4),
            rx("10.0.0.1", advert(Version::V2, 200, 1))
        )
        .is_empty()
    );
    assert!(
        vr.handle(
            Time::from_secs(4),
            rx("fe80::1", advert(Version::V3, 200, 100))
        )
        .is_empty()
    );
    assert_eq!(vr.state(), State::Master);
}

#[test]
fn initialize_ignores_everything_but_startup() {
    let mut vr = inst(cfg(Version::V3, 100));
    assert!(
        vr.handle(Time::ZERO, rx("10.0.0.1", advert(Version::V3, 200, 100)))
            .is_empty()
    );
    assert!(
        vr.handle(Time::ZERO, Event::TimerFired(Timer::MasterDown))
            .is_empty()
    );
    assert!(vr.handle(Time::ZERO, Event::InterfaceUp).is_empty());
    assert!(vr.handle(Time::ZERO, Event::PriorityChanged(90)).is_empty());
    assert_eq!(vr.state(), State::Initialize);
}

/// Delivers every advert each side sends to the other, like a healed link.
fn exchange(a: &mut Instance, b: &mut Instance, now: Time, from_a: Vec<Action>) {
    let mut queue: Vec<(bool, Action)> = from_a.into_iter().map(|x| (true, x)).collect();
    let mut steps = 0;
    while let Some((from_a, action)) = queue.pop() {
        steps += 1;
        assert!(steps < 100, "adverts ping-pong forever");
        if let Action::SendAdvert(adv) = action {
            let (to, src) = if from_a {
                (&mut *b, a.config().primary_address)
            } else {
                (&mut *a, b.config().primary_address)
            };
            let out = to.handle(now, Event::AdvertReceived { src, advert: adv });
            queue.extend(out.into_iter().map(|x| (!from_a, x)));
        }
    }
}

fn split_brain(pa: u8, pb: u8) -> (Instance, Instance) {
    let a = master(cfg(Version::V3, pa));
    let mut c = cfg(Version::V3, pb);
    c.primary_address = ip("10.0.0.3");
    let b = master(c);
    (a, b)
}

#[test]
fn split_brain_heals_to_exactly_one_master() {
    for (pa, pb) in [(100, 100), (100, 200), (200, 100), (254, 1)] {
        // Both are master while the link is cut; A's advert timer fires
        // first after the link heals.
        let (mut a, mut b) = split_brain(pa, pb);
        let at = Time::from_secs(10);
        let out = a.handle(at, Event::TimerFired(Timer::Advert));
        exchange(&mut a, &mut b, at, out);
        let masters = [a.state(), b.state()]
            .iter()
            .filter(|s| **s == State::Master)
            .count();
        assert_eq!(masters, 1, "priorities {pa}/{pb}");
        // Equal priority: B (10.0.0.3) has the higher address.
        let winner = if pb >= pa { &b } else { &a };
        assert_eq!(winner.state(), State::Master, "priorities {pa}/{pb}");
    }
}

#[test]
fn split_brain_heals_whichever_side_speaks_first() {
    for (pa, pb) in [(100, 100), (100, 200), (200, 100)] {
        let (mut a, mut b) = split_brain(pa, pb);
        let at = Time::from_secs(10);
        let out = b.handle(at, Event::TimerFired(Timer::Advert));
        exchange(&mut b, &mut a, at, out);
        let states = [a.state(), b.state()];
        assert_eq!(
            states.iter().filter(|s| **s == State::Master).count(),
            1,
            "priorities {pa}/{pb}: {states:?}"
        );
    }
}

#[test]
fn reasons_have_names() {
    assert_eq!(Reason::MasterDown.to_string(), "master-down");
    assert_eq!(State::Fault.to_string(), "fault");
    assert_eq!(Timer::GarpRefresh.to_string(), "garp-refresh");
}

#[test]
fn keepalived_lower_and_higher_priority_options() {
    // lower_prio_no_advert + garp_lower_prio_repeat
    let mut c = cfg(Version::V3, 150);
    c.lower_prio_no_advert = true;
    c.garp_lower_prio_repeat = 2;
    let mut vr = master(c);
    let a = vr.handle(
        Time::from_secs(4),
        rx("10.0.0.1", advert(Version::V3, 100, 100)),
    );
    assert_eq!(show(&a), ["garp repeat=2 10.0.0.100"]);
    assert_eq!(vr.state(), State::Master);

    // garp_lower_prio_delay: a second burst later, cancelled on yielding.
    let mut c = cfg(Version::V3, 150);
    c.garp_lower_prio_repeat = 1;
    c.garp_lower_prio_delay = Some(Duration::from_secs(2));
    let mut vr = master(c);
    let a = vr.handle(
        Time::from_secs(4),
        rx("10.0.0.1", advert(Version::V3, 100, 100)),
    );
    assert_eq!(
        show(&a),
        [
            "send-advert prio=150",
            "garp repeat=1 10.0.0.100",
            "arm garp-lower-prio at=6s"
        ]
    );
    let a = vr.handle(Time::from_secs(6), Event::TimerFired(Timer::GarpLowerPrio));
    assert_eq!(show(&a), ["garp repeat=1 10.0.0.100"]);
    vr.handle(
        Time::from_secs(7),
        rx("10.0.0.1", advert(Version::V3, 100, 100)),
    );
    let a = vr.handle(
        Time::from_secs(8),
        rx("10.0.0.3", advert(Version::V3, 200, 100)),
    );
    assert!(show(&a).contains(&"cancel garp-lower-prio".to_string()));

    // higher_prio_send_advert: one last advert before yielding.
    let mut c = cfg(Version::V3, 100);
    c.higher_prio_send_advert = true;
    let mut vr = master(c);
    let a = vr.handle(
        Time::from_secs(4),
        rx("10.0.0.1", advert(Version::V3, 200, 100)),
    );
    assert_eq!(show(&a)[0], "send-advert prio=100");
    assert_eq!(show(&a)[1], "cancel advert");
    assert_eq!(vr.state(), State::Backup);
}
