//! Writes random valid tables in the `ipvsadm -S -n` format, restricted to what
//! `ipvsadm -R` (1.31) can restore, for an end-to-end check against the real ipvsadm in
//! the kernel lab (`tests/ipvsadm/restore_check.sh`): restoring our output and saving it
//! again must give our output back, byte for byte, order included.
//!
//! ```sh
//! cargo run -p ipvs-rs --example gen_tables -- DIR COUNT [SEED]
//! ```
//!
//! Addresses (IPv4 addresses and the first 32 bits of IPv6 ones share one window, as
//! ipvsadm compares them with each other in mixed-family services) and marks of one
//! table stay within half of the 32-bit circle (a random window that may wrap past 0),
//! where ipvsadm's wrapping comparisons are a total order. Outside such a window the
//! order ipvsadm prints depends on the kernel's list order, which a table does not have.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipvs::{
    AddressFamily, Destination, Forward, Persistence, PersistenceEngine, PersistenceMask, Protocol,
    SchedFlags, Scheduler, Service, ServiceKey, Table, TunnelChecksum, TunnelKind,
};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A window of less than half the 32-bit circle.
struct Window {
    base: u32,
}

impl Window {
    fn new(rng: &mut Rng) -> Self {
        Window {
            base: rng.next() as u32,
        }
    }

    fn pick(&self, rng: &mut Rng) -> u32 {
        self.base.wrapping_add(rng.below(1 << 30) as u32)
    }
}

struct Gen {
    rng: Rng,
    v4: Window,
    v6: Window,
    marks: Window,
}

impl Gen {
    /// A unicast address the kernel takes for a real server (not multicast, broadcast,
    /// unspecified, loopback or link-local).
    fn ip(&mut self, family: AddressFamily) -> IpAddr {
        loop {
            let ip = self.any_ip(family);
            let ok = match ip {
                IpAddr::V4(a) => !matches!(a.octets()[0], 0 | 127 | 224..=255),
                IpAddr::V6(a) => !matches!(a.segments()[0], 0..=0xff | 0xfe80..=0xfebf | 0xff00..),
            };
            if ok {
                return ip;
            }
        }
    }

    fn any_ip(&mut self, family: AddressFamily) -> IpAddr {
        match family {
            AddressFamily::Inet => IpAddr::V4(Ipv4Addr::from(self.v4.pick(&mut self.rng))),
            AddressFamily::Inet6 => {
                let hi = u128::from(self.v6.pick(&mut self.rng)) << 96;
                // Mostly small tails, so that first words repeat and later words decide.
                let tail = if self.rng.chance(50) {
                    u128::from(self.rng.below(4))
                } else {
                    u128::from(self.rng.next()) << 32 | u128::from(self.rng.next() as u32)
                };
                IpAddr::V6(Ipv6Addr::from(hi | (tail & ((1u128 << 96) - 1))))
            }
        }
    }

    fn family(&mut self) -> AddressFamily {
        if self.rng.chance(50) {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        }
    }

    fn key(&mut self) -> ServiceKey {
        let family = self.family();
        if self.rng.chance(20) {
            // ipvsadm -R rejects marks above i32::MAX, which -S prints negative.
            let mark = loop {
                let m = self.marks.pick(&mut self.rng);
                if (1..=i32::MAX as u32).contains(&m) {
                    break m;
                }
                self.marks.base = self.rng.below(1 << 30) as u32 + 1;
            };
            return ServiceKey::fwmark(family, mark).unwrap_or(ServiceKey::Fwmark {
                family,
                mark: ipvs::FwMark::new(1).unwrap_or_else(|| unreachable!()),
            });
        }
        let protocol = match self.rng.below(3) {
            0 => Protocol::Tcp,
            1 => Protocol::Udp,
            _ => Protocol::Sctp,
        };
        let port = self.rng.below(65536) as u16;
        ServiceKey::Addr {
            protocol,
            addr: SocketAddr::new(self.ip(family), port),
        }
    }

    fn service(&mut self) -> Option<Service> {
        let key = self.key();
        let family = key.family();
        // "twos" is not in kernel 6.1; custom schedulers are not loadable.
        let scheds: Vec<Scheduler> = Scheduler::builtin()
            .filter(|s| *s != Scheduler::TwoRandomChoices)
            .collect();
        let sched = scheds[self.rng.below(scheds.len() as u64) as usize].clone();
        let mut flags = SchedFlags::empty();
        if matches!(sched, Scheduler::SourceHashing | Scheduler::MaglevHashing) {
            if self.rng.chance(50) {
                flags |= SchedFlags::FLAG_1;
            }
            if self.rng.chance(50) {
                flags |= SchedFlags::FLAG_2;
            }
        }
        // ipvsadm needs persistence for port 0.
        let persistent = key.port() == 0 && key.mark().is_none() || self.rng.chance(40);
        let mut b = Service::builder(key).scheduler(sched).sched_flags(flags);
        if persistent {
            let t = 1 + self.rng.below(86400 * 31);
            let mut p = Persistence::new(Duration::from_secs(t)).ok()?;
            if self.rng.chance(50) {
                p = p.with_netmask(match family {
                    AddressFamily::Inet => PersistenceMask::V4(Ipv4Addr::from(
                        u32::MAX << (32 - (1 + self.rng.below(32))),
                    )),
                    AddressFamily::Inet6 => PersistenceMask::V6(1 + self.rng.below(128) as u8),
                });
            }
            if self.rng.chance(15) {
                p = p.with_engine(PersistenceEngine::sip());
            }
            b = b.persistence(p);
        }
        let udp_like = !matches!(key.protocol(), Some(Protocol::Tcp | Protocol::Sctp));
        b = b.one_packet(udp_like && self.rng.chance(30));
        let mut svc = b.build().ok()?;
        for _ in 0..self.rng.below(6) {
            if let Some(d) = self.destination(&key) {
                let _ = svc.set_destination(d);
            }
        }
        Some(svc)
    }

    fn destination(&mut self, key: &ServiceKey) -> Option<Destination> {
        let forward = match self.rng.below(6) {
            0 | 1 => Forward::Masquerade,
            2 | 3 => Forward::DirectRoute,
            4 => Forward::IPIP,
            _ => {
                let checksum = match self.rng.below(3) {
                    0 => TunnelChecksum::NoChecksum,
                    1 => TunnelChecksum::Checksum,
                    _ => TunnelChecksum::RemoteChecksum,
                };
                if self.rng.chance(50) {
                    Forward::Tunnel {
                        kind: TunnelKind::Gue {
                            port: 1 + self.rng.below(65535) as u16,
                        },
                        checksum,
                    }
                } else {
                    Forward::Tunnel {
                        kind: TunnelKind::Gre,
                        checksum: if checksum == TunnelChecksum::RemoteChecksum {
                            TunnelChecksum::Checksum
                        } else {
                            checksum
                        },
                    }
                }
            }
        };
        // Another family only for tunnels (and then sometimes).
        let family = if forward.is_tunnel() && self.rng.chance(20) {
            self.family()
        } else {
            key.family()
        };
        // ipvsadm -R gives -g/-i servers of an address service the service's port.
        let port = if key.mark().is_none() && forward != Forward::Masquerade {
            key.port()
        } else {
            self.rng.below(65536) as u16
        };
        let weight = self.rng.below(65536) as u32;
        Destination::new(SocketAddr::new(self.ip(family), port), forward)
            .ok()?
            .with_weight(weight)
            .ok()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(count)) = (args.get(1), args.get(2)) else {
        return Err("usage: gen_tables DIR COUNT [SEED]".into());
    };
    let count: usize = count.parse()?;
    let seed: u64 = args.get(3).map_or(Ok(0x1234_5678), |s| s.parse())?;
    std::fs::create_dir_all(dir)?;
    for i in 0..count {
        let mut rng = Rng(seed
            .wrapping_add(i as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            | 1);
        let v4 = Window::new(&mut rng);
        let (v6, marks) = (Window { base: v4.base }, Window::new(&mut rng));
        let mut g = Gen { rng, v4, v6, marks };
        let mut table = Table::new();
        for _ in 0..1 + g.rng.below(8) {
            if let Some(s) = g.service() {
                table.set_service(s);
            }
        }
        let text = ipvs::ipvsadm::print(&table);
        std::fs::write(format!("{dir}/table-{i:04}.txt"), text)?;
    }
    Ok(())
}
