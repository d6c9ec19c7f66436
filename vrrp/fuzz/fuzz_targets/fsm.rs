//! Fuzzes the state machine with arbitrary event sequences and checks its
//! invariants: addresses are installed exactly while Master, the Advert
//! timer runs exactly while Master, the master-down timer exactly while
//! Backup, and every armed deadline lies in the future.
//!
//! Input: byte 0 = priority, byte 1 = options (bit 0: VRRPv2, bit 1:
//! preempt off, bits 2-3: preempt delay in seconds, bits 4-5: gratuitous
//! ARPs on lower-priority adverts); then 3-byte operations (opcode, a, b).

#![no_main]

use std::net::IpAddr;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use vrrp_proto::{
    Action, Advertisement, Auth, Event, Instance, InstanceConfig, State, Time, Timer, Version,
    VersionFields,
};

const TIMERS: [Timer; 5] = Timer::ALL;

fn addr(last: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, last])
}

fuzz_target!(|data: &[u8]| {
    let [priority, options, ops @ ..] = data else {
        return;
    };
    let version = if options & 1 != 0 {
        Version::V2
    } else {
        Version::V3
    };
    let mut cfg = InstanceConfig::new(9, version, addr(2), vec![addr(100), addr(101)]);
    cfg.priority = (*priority).max(1);
    cfg.preempt = options & 2 == 0 || cfg.priority == 255;
    cfg.preempt_delay = Duration::from_secs(u64::from((options >> 2) & 3));
    cfg.garp.refresh = Some(Duration::from_secs(3));
    cfg.garp_lower_prio_repeat = u32::from((options >> 4) & 3);
    cfg.garp_lower_prio_delay = Some(Duration::from_secs(2));
    let Ok(valid) = cfg.validate() else {
        return;
    };
    let mut vr = Instance::new(valid);
    let mut now = Time::ZERO;
    let mut installed = false;
    for op in ops.chunks_exact(3) {
        let (code, a, b) = (op[0], op[1], op[2]);
        let event = match code % 9 {
            0 => Event::Startup,
            1 => Event::Shutdown,
            2 => Event::InterfaceUp,
            3 => Event::InterfaceDown,
            4 => Event::PriorityChanged(a),
            5 | 6 => {
                let fields = match version {
                    Version::V2 => VersionFields::V2 {
                        auth: Auth::None,
                        adver_int_secs: 1,
                    },
                    Version::V3 => VersionFields::V3 {
                        max_adver_int_centis: u16::from(b).max(1),
                    },
                };
                Event::AdvertReceived {
                    src: addr(if code % 9 == 5 { 1 } else { 3 }),
                    advert: Advertisement {
                        vrid: 9,
                        priority: a,
                        fields,
                        addresses: vec![addr(100)],
                    },
                }
            }
            7 => {
                let timer = TIMERS[usize::from(a % 5)];
                if let Some(at) = vr.deadline(timer) {
                    now = now.max(at);
                }
                Event::TimerFired(timer)
            }
            _ => {
                now = now + Duration::from_millis(u64::from(a) * 256 + u64::from(b));
                continue;
            }
        };
        for action in vr.handle(now, event) {
            match action {
                Action::AddAddresses(_) => {
                    assert!(!installed);
                    installed = true;
                }
                Action::RemoveAddresses(_) => {
                    assert!(installed);
                    installed = false;
                }
                Action::ArmTimer { at, .. } => assert!(at > now),
                _ => {}
            }
        }
        let state = vr.state();
        assert_eq!(installed, state == State::Master);
        assert_eq!(vr.deadline(Timer::Advert).is_some(), state == State::Master);
        assert_eq!(
            vr.deadline(Timer::MasterDown).is_some(),
            state == State::Backup
        );
    }
});
