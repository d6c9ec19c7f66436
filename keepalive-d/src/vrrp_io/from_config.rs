//! Maps the validated YAML configuration ([`crate::config`]) onto the
//! plain values [`super::run`] takes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vrrp_proto::{Auth, GarpConfig, InstanceConfig, Version};

use super::{InstanceSpec, NotifySpec, SyncGroupSpec, TrackScript, VirtualAddress, VmacSpec};
use crate::config::{self, AddressFamily, VrrpVersion};

fn argv(c: &config::Command) -> Vec<String> {
    std::iter::once(c.program.clone())
        .chain(c.args.iter().cloned())
        .collect()
}

/// The [`InstanceSpec`] of a configured VRRP instance. The primary address
/// is `unicast_source` when set, otherwise found on the interface when the
/// instance starts.
pub fn instance_spec(vi: &config::VrrpInstance) -> InstanceSpec {
    let version = match vi.version {
        VrrpVersion::V2 => Version::V2,
        VrrpVersion::V3 => Version::V3,
    };
    let primary = vi.unicast_source.unwrap_or(match vi.family {
        AddressFamily::Ipv4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        AddressFamily::Ipv6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    });
    let mut cfg = InstanceConfig::new(vi.vrid, version, primary, Vec::new());
    cfg.priority = vi.priority;
    cfg.advert_interval = vi.advert_interval;
    cfg.preempt = vi.preempt;
    cfg.preempt_delay = vi.preempt_delay;
    cfg.unicast_peers.clone_from(&vi.unicast_peers);
    if let Some(p) = &vi.auth_pass {
        cfg.auth = Auth::password(p.as_bytes());
    }
    cfg.garp = GarpConfig {
        repeat: vi.garp.repeat,
        delay: Some(vi.garp.delay).filter(|d| !d.is_zero()),
        ..GarpConfig::default()
    };
    let vips = vi
        .virtual_ips
        .iter()
        .map(|v| VirtualAddress::new(v.addr, v.prefix_len))
        .collect();
    let mut spec = InstanceSpec::new(vi.name.clone(), vi.interface.clone(), cfg, vips);
    spec.notify = NotifySpec {
        master: vi.notify.master.as_ref().map(argv),
        backup: vi.notify.backup.as_ref().map(argv),
        fault: vi.notify.fault.as_ref().map(argv),
        stop: vi.notify.stop.as_ref().map(argv),
        timeout: vi.notify.timeout,
        ..NotifySpec::default()
    };
    spec.vmac = vi.vmac.as_ref().map(|v| VmacSpec {
        name: v.name.clone(),
    });
    spec.track_interfaces.clone_from(&vi.track_interfaces);
    spec.track_scripts = vi
        .track_scripts
        .iter()
        .map(|s| TrackScript {
            argv: argv(&s.command),
            interval: s.interval,
            timeout: s.timeout,
            weight: s.weight,
            rise: s.rise,
            fall: s.fall,
        })
        .collect();
    spec
}

/// The instances and sync groups of a configuration, for [`super::run`].
pub fn specs(cfg: &config::Config) -> (Vec<InstanceSpec>, Vec<SyncGroupSpec>) {
    let instances = cfg.vrrp_instances.iter().map(instance_spec).collect();
    let groups = cfg
        .vrrp_sync_groups
        .iter()
        .map(|g| SyncGroupSpec {
            name: g.name.clone(),
            instances: g.instances.clone(),
        })
        .collect();
    (instances, groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn example(name: &str) -> config::Config {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/configs")
            .join(name);
        match config::load(&path) {
            Ok(c) => c,
            Err(e) => panic!("{name}: {:?}", e.errors()),
        }
    }

    #[test]
    fn web_farm_maps_onto_specs() {
        let (instances, groups) = specs(&example("web-farm.yaml"));
        assert_eq!(instances.len(), 2);
        let web = &instances[0];
        assert_eq!((web.name.as_str(), web.interface.as_str()), ("web", "eth0"));
        assert_eq!(web.config.vrid, 51);
        assert_eq!(web.config.version, Version::V3);
        assert_eq!(web.config.priority, 150);
        assert_eq!(web.config.advert_interval, Duration::from_millis(100));
        assert_eq!(web.config.preempt_delay, Duration::from_secs(5));
        assert_eq!(web.config.primary_address, IpAddr::from([192, 0, 2, 2]));
        assert_eq!(web.config.unicast_peers, vec![IpAddr::from([192, 0, 2, 3])]);
        assert_eq!(
            web.virtual_addresses,
            vec![
                VirtualAddress::new(IpAddr::from([192, 0, 2, 10]), 24),
                VirtualAddress::new(IpAddr::from([192, 0, 2, 11]), 24),
            ]
        );
        assert_eq!(web.track_interfaces, vec!["eth1".to_string()]);
        assert_eq!(web.track_scripts.len(), 1);
        assert_eq!(web.track_scripts[0].weight, -20);
        assert_eq!(
            web.track_scripts[0].argv,
            vec!["/usr/bin/pgrep", "-x", "postgres"]
        );
        assert_eq!(
            web.notify.master,
            Some(
                ["/usr/bin/logger", "-t", "keepalive-d", "web: MASTER"]
                    .map(str::to_string)
                    .to_vec()
            )
        );
        assert_eq!(web.config.garp.repeat, 5);
        assert_eq!(web.config.garp.delay, Some(Duration::from_secs(5)));
        let v6 = &instances[1];
        assert_eq!(v6.config.primary_address, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        assert_eq!(
            groups,
            vec![SyncGroupSpec {
                name: "front".into(),
                instances: vec!["web".into(), "web-v6".into()],
            }]
        );
        // Everything but the primary address validates as is.
        for mut i in instances {
            if i.config.primary_address.is_unspecified() {
                i.config.primary_address = match i.config.primary_address {
                    IpAddr::V4(_) => IpAddr::from([192, 0, 2, 1]),
                    IpAddr::V6(_) => "fe80::1".parse().unwrap_or(IpAddr::from([0; 16])),
                };
            }
            i.config.virtual_addresses = i.virtual_addresses.iter().map(|v| v.address).collect();
            assert!(i.config.validate().is_ok(), "{}", i.name);
        }
    }

    #[test]
    fn every_example_maps() {
        for name in ["vrrp-pair.yaml", "fwmark-dns.yaml", "web-farm.yaml"] {
            let cfg = example(name);
            let (instances, _) = specs(&cfg);
            assert_eq!(instances.len(), cfg.vrrp_instances.len());
        }
    }
}
