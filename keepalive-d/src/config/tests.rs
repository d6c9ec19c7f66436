//! Accepted configurations: defaults, values and the rules' "allowed" side. (Rejections live
//! in `tests/bad-configs/`.)

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn parse(yaml: &str) -> Config {
    match parse_str(yaml, "test.yaml") {
        Ok(config) => config,
        Err(errors) => panic!("rejected:\n{errors}"),
    }
}

fn errors(yaml: &str) -> Vec<ConfigError> {
    parse_str(yaml, "test.yaml").unwrap_err().into_vec()
}

const MINIMAL_INSTANCE: &str = "
vrrp_instances:
  - name: vi
    interface: eth0
    vrid: 7
    priority: 100
    virtual_ips: [192.0.2.1]
";

const MINIMAL_SERVER: &str = "
virtual_servers:
  - name: web
    vip: 192.0.2.10:80
    real_servers:
      - address: 10.0.0.1:80
";

#[test]
fn vrrp_defaults() {
    let config = parse(MINIMAL_INSTANCE);
    let vi = &config.vrrp_instances[0];
    assert_eq!(vi.name, "vi");
    assert_eq!(vi.interface, "eth0");
    assert_eq!((vi.vrid, vi.priority), (7, 100));
    assert_eq!(vi.version, VrrpVersion::V3);
    assert_eq!(vi.family, AddressFamily::Ipv4);
    assert_eq!(vi.advert_interval, Duration::from_secs(1));
    assert!(vi.preempt);
    assert_eq!(vi.preempt_delay, Duration::ZERO);
    assert_eq!(vi.unicast_source, None);
    assert!(vi.unicast_peers.is_empty());
    assert_eq!(vi.auth_pass, None);
    // A bare address is a host address.
    assert_eq!(
        vi.virtual_ips,
        [VirtualIp {
            addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            prefix_len: 32
        }]
    );
    assert!(vi.track_interfaces.is_empty());
    assert!(vi.track_scripts.is_empty());
    assert_eq!(vi.notify, Notify::default());
    assert_eq!(
        vi.garp,
        Garp {
            delay: Duration::from_secs(5),
            repeat: 5
        }
    );
    assert!(config.vrrp_sync_groups.is_empty());
    assert!(config.virtual_servers.is_empty());
}

#[test]
fn virtual_server_defaults() {
    let config = parse(MINIMAL_SERVER);
    let vs = &config.virtual_servers[0];
    assert_eq!(
        vs.key,
        ServiceKey::Addr {
            protocol: Protocol::Tcp,
            vip: "192.0.2.10:80".parse().unwrap()
        }
    );
    assert_eq!(vs.scheduler, Scheduler::Wlc);
    assert!(vs.scheduler_flags.is_empty());
    assert_eq!(vs.persistence, None);
    assert!(!vs.one_packet);
    assert_eq!(vs.forward, Forward::Nat);
    assert_eq!(
        vs.quorum,
        Quorum {
            min_up: 1,
            hysteresis: 0
        }
    );
    assert_eq!(vs.sorry_server, None);
    assert!(!vs.inhibit_on_failure);
    assert_eq!(
        vs.real_servers,
        [RealServer {
            address: "10.0.0.1:80".parse().unwrap(),
            weight: 1,
            check: None
        }]
    );
    assert_eq!(config.real_server_count(), 1);
}

#[test]
fn check_defaults() {
    let config = parse(
        "
virtual_servers:
  - name: web
    vip: 192.0.2.10:80
    check: { type: http }
    real_servers: [{ address: 10.0.0.1:80 }]
  - name: fast
    vip: 192.0.2.10:81
    check: { type: tcp, interval: 500ms }
    real_servers: [{ address: 10.0.0.1:81 }]
",
    );
    let check = config.virtual_servers[0].real_servers[0]
        .check
        .clone()
        .unwrap();
    assert_eq!(check.interval, Duration::from_secs(2));
    assert_eq!(check.timeout, Duration::from_secs(1));
    assert_eq!((check.rise, check.fall), (2, 3));
    assert_eq!(check.port, None);
    assert_eq!(
        check.kind,
        CheckKind::Http(HttpCheck {
            path: "/".into(),
            expect_status: vec![200],
            expect_body: None,
            host: None,
            ca: None,
        })
    );
    assert_eq!(check.source, None);
    // The default timeout never exceeds a short interval.
    let fast = config.virtual_servers[1].real_servers[0]
        .check
        .clone()
        .unwrap();
    assert_eq!(fast.timeout, Duration::from_millis(500));
}

#[test]
fn web_farm_example_values() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/configs/web-farm.yaml");
    let config = load(&path).unwrap();
    let web = &config.vrrp_instances[0];
    assert_eq!(web.advert_interval, Duration::from_millis(100));
    assert_eq!(web.preempt_delay, Duration::from_secs(5));
    assert_eq!(web.unicast_source, Some("192.0.2.2".parse().unwrap()));
    assert_eq!(web.unicast_peers, ["192.0.2.3".parse::<IpAddr>().unwrap()]);
    assert_eq!(web.virtual_ips[0].to_string(), "192.0.2.10/24");
    let script = &web.track_scripts[0];
    assert_eq!(script.command.program, "/usr/bin/pgrep");
    assert_eq!(script.command.args, ["-x", "postgres"]);
    assert_eq!((script.weight, script.rise, script.fall), (-20, 2, 2));
    assert_eq!(script.interval, Duration::from_secs(2));
    assert_eq!(script.timeout, Duration::from_secs(1));
    let master = web.notify.master.as_ref().unwrap();
    assert_eq!(
        (master.program.as_str(), master.args.as_slice()),
        (
            "/usr/bin/logger",
            &["-t", "keepalive-d", "web: MASTER"].map(str::to_owned)[..]
        )
    );
    let v6 = &config.vrrp_instances[1];
    assert_eq!(v6.family, AddressFamily::Ipv6);
    assert_eq!(
        v6.vrid, web.vrid,
        "the same vrid is allowed in the other family"
    );
    assert_eq!(
        config.vrrp_sync_groups,
        [SyncGroup {
            name: "front".into(),
            instances: vec!["web".into(), "web-v6".into()]
        }]
    );

    let http = &config.virtual_servers[0];
    assert_eq!(http.scheduler, Scheduler::Wrr);
    let persistence = http.persistence.unwrap();
    assert_eq!(persistence.timeout, Duration::from_secs(300));
    assert_eq!(persistence.prefix_len, 24);
    assert_eq!(persistence.ipv4_netmask(), Ipv4Addr::new(255, 255, 255, 0));
    assert_eq!(
        http.sorry_server,
        Some("10.0.0.99:80".parse::<SocketAddr>().unwrap())
    );
    // The service check is every server's, unless a server has its own (which replaces it).
    let service_check = http.real_servers[0].check.clone().unwrap();
    match &service_check.kind {
        CheckKind::Http(h) => {
            assert_eq!(h.path, "/healthz");
            assert_eq!(h.expect_status, [200, 204]);
            assert!(h.expect_body.as_ref().unwrap().0.is_match("ok\n"));
            assert!(!h.expect_body.as_ref().unwrap().0.is_match("not ok"));
            assert_eq!(h.host.as_deref(), Some("www.example.test"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(http.real_servers[1].check, Some(service_check));
    let own = http.real_servers[2].check.clone().unwrap();
    assert_eq!(own.kind, CheckKind::Tcp(TcpCheck::default()));
    assert_eq!(own.interval, Duration::from_secs(2));
    assert_eq!(http.real_servers[2].weight, 50);

    let tls = &config.virtual_servers[1];
    assert_eq!(tls.scheduler_flags, [SchedulerFlag::MhPort]);
    assert_eq!(tls.forward, Forward::DirectRouting);
    assert!(tls.inhibit_on_failure);
    assert!(matches!(
        tls.real_servers[0].check.as_ref().unwrap().kind,
        CheckKind::Https(_)
    ));

    let v6 = &config.virtual_servers[2];
    assert_eq!(v6.key.family(), AddressFamily::Ipv6);
    assert_eq!(
        v6.scheduler_flags,
        [SchedulerFlag::ShFallback, SchedulerFlag::ShPort]
    );
    assert_eq!(v6.persistence.unwrap().prefix_len, 64);
    assert_eq!(v6.persistence.unwrap().timeout, Duration::from_secs(600));
    assert_eq!(
        v6.forward,
        Forward::Tunnel(Tunnel {
            encap: TunnelEncap::Gue { port: 6080 },
            checksum: TunnelChecksum::Csum
        })
    );
    assert_eq!(
        v6.quorum,
        Quorum {
            min_up: 2,
            hysteresis: 1
        }
    );
    // forward: tun allows a real server of the other family.
    assert!(v6.real_servers[2].address.is_ipv4());
}

#[test]
fn fwmark_dns_example_values() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/configs/fwmark-dns.yaml");
    let config = load(&path).unwrap();
    let dns = &config.virtual_servers[0];
    assert_eq!(
        dns.key,
        ServiceKey::Fwmark {
            mark: 10,
            family: AddressFamily::Ipv4
        }
    );
    assert!(dns.one_packet);
    let check = dns.real_servers[0].check.clone().unwrap();
    assert_eq!(check.port, Some(53));
    assert_eq!(
        check.kind,
        CheckKind::Dns(DnsCheck {
            query: "example.test".into(),
            record: DnsRecordType::A,
            transport: DnsTransport::Udp,
        })
    );
    let exec = dns.real_servers[2].check.clone().unwrap();
    assert_eq!(
        exec.kind,
        CheckKind::Exec(Command {
            program: "/bin/bash".into(),
            args: vec!["-c".into(), "exec 3<>/dev/tcp/10.0.1.13/53".into()]
        })
    );
    assert_eq!(exec.port, None);
}

#[test]
fn vrid_may_repeat_on_another_interface_version_or_family() {
    let config = parse(
        r#"
vrrp_instances:
  - { name: a, interface: eth0, vrid: 9, priority: 100, virtual_ips: [192.0.2.1/24] }
  - { name: b, interface: eth1, vrid: 9, priority: 100, virtual_ips: [192.0.2.2/24] }
  - { name: c, interface: eth0, vrid: 9, priority: 100, version: 2, virtual_ips: [192.0.2.3/24] }
  - { name: d, interface: eth0, vrid: 9, priority: 100, virtual_ips: ["2001:db8::1/64"] }
"#,
    );
    assert_eq!(config.vrrp_instances.len(), 4);
}

#[test]
fn vrrp_v2_accepts_auth_pass_and_whole_second_intervals() {
    let config = parse(
        "
vrrp_instances:
  - name: old
    interface: eth0
    vrid: 1
    priority: 255
    version: 2
    advert_interval: 3s
    auth_pass: 12345678
    virtual_ips: [192.0.2.1/24]
",
    );
    let vi = &config.vrrp_instances[0];
    assert_eq!(vi.version, VrrpVersion::V2);
    assert_eq!(vi.priority, 255);
    assert_eq!(vi.advert_interval, Duration::from_secs(3));
    assert_eq!(vi.auth_pass.as_deref(), Some("12345678"));
}

#[test]
fn vrrp_v3_interval_bounds() {
    for (text, ok) in [
        ("10ms", true),
        ("40s950ms", true),
        ("40s960ms", false),
        ("5ms", false),
        ("1m", false),
    ] {
        let yaml = MINIMAL_INSTANCE.replace(
            "    virtual_ips",
            &format!("    advert_interval: {text}\n    virtual_ips"),
        );
        assert_eq!(parse_str(&yaml, "t").is_ok(), ok, "{text}");
    }
}

#[test]
fn persistence_ipv6_netmask_forms() {
    for netmask in ["64", "/64"] {
        let config = parse(&format!(
            r#"
virtual_servers:
  - name: v6
    vip: "[2001:db8::10]:443"
    persistence: {{ netmask: {netmask} }}
    real_servers: [{{ address: "[2001:db8::11]:443" }}]
"#
        ));
        let persistence = config.virtual_servers[0].persistence.unwrap();
        assert_eq!(persistence.prefix_len, 64);
        assert_eq!(persistence.timeout, Duration::from_secs(300));
    }
}

#[test]
fn persistence_default_netmask_is_a_host() {
    let config =
        parse(&MINIMAL_SERVER.replace("    real_servers", "    persistence: {}\n    real_servers"));
    assert_eq!(
        config.virtual_servers[0].persistence.unwrap().prefix_len,
        32
    );
}

#[test]
fn port_zero_vip_with_persistence() {
    let config = parse(
        "
virtual_servers:
  - name: all-ports
    vip: 192.0.2.10:0
    persistence: { timeout: 1h }
    real_servers: [{ address: 10.0.0.1:0 }]
",
    );
    assert_eq!(
        config.virtual_servers[0].persistence.unwrap().timeout,
        Duration::from_secs(3600)
    );
}

#[test]
fn udp_one_packet_and_sctp() {
    let config = parse(
        "
virtual_servers:
  - { name: u, vip: 192.0.2.10:53, protocol: udp, one_packet: true, real_servers: [{ address: 10.0.0.1:53 }] }
  - { name: s, vip: 192.0.2.10:53, protocol: sctp, real_servers: [{ address: 10.0.0.1:53 }] }
",
    );
    assert!(config.virtual_servers[0].one_packet);
    assert!(matches!(
        config.virtual_servers[1].key,
        ServiceKey::Addr {
            protocol: Protocol::Sctp,
            ..
        }
    ));
}

#[test]
fn every_scheduler_name_is_accepted() {
    for scheduler in Scheduler::ALL {
        let yaml = MINIMAL_SERVER.replace(
            "    real_servers",
            &format!("    scheduler: {}\n    real_servers", scheduler.as_str()),
        );
        assert_eq!(parse(&yaml).virtual_servers[0].scheduler, scheduler);
    }
}

#[test]
fn weights_span_the_kernel_range() {
    let config = parse(
        "
virtual_servers:
  - name: w
    vip: 192.0.2.10:80
    real_servers:
      - { address: 10.0.0.1:80, weight: 0 }
      - { address: 10.0.0.2:80, weight: 2147483647 }
",
    );
    let weights: Vec<u32> = config.virtual_servers[0]
        .real_servers
        .iter()
        .map(|r| r.weight)
        .collect();
    assert_eq!(weights, [0, 2147483647]);
}

#[test]
fn anchors_and_aliases_can_share_settings() {
    let config = parse(
        "
virtual_servers:
  - name: a
    vip: 192.0.2.10:80
    check: &http { type: http, path: /health }
    real_servers: [{ address: 10.0.0.1:80 }]
  - name: b
    vip: 192.0.2.10:81
    check: *http
    real_servers: [{ address: 10.0.0.1:81 }]
",
    );
    assert_eq!(
        config.virtual_servers[0].real_servers[0].check,
        config.virtual_servers[1].real_servers[0].check
    );
}

#[test]
fn merge_keys_extend_a_shared_mapping() {
    let config = parse(
        "
virtual_servers:
  - name: a
    vip: 192.0.2.10:80
    check: &base { type: http, interval: 5s }
    real_servers: [{ address: 10.0.0.1:80 }]
  - name: b
    vip: 192.0.2.10:81
    check: { <<: *base, path: /b }
    real_servers: [{ address: 10.0.0.1:81 }]
",
    );
    let b = config.virtual_servers[1].real_servers[0]
        .check
        .clone()
        .unwrap();
    assert_eq!(b.interval, Duration::from_secs(5));
    match b.kind {
        CheckKind::Http(h) => assert_eq!(h.path, "/b"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn errors_are_sorted_and_all_reported() {
    let errors = errors(
        "
virtual_servers:
  - name: b
    vip: 192.0.2.10:80
    scheduler: nope
    real_servers: [{ address: 10.0.0.1:80, weight: x }]
vrrp_instances:
  - { name: a, interface: eth0, vrid: 300, priority: 100, virtual_ips: [192.0.2.1/24] }
",
    );
    let positions: Vec<(u64, u64)> = errors
        .iter()
        .map(|e| {
            let p = e.position.unwrap();
            (p.line, p.column)
        })
        .collect();
    assert_eq!(positions, [(5, 16), (6, 52), (8, 39)]);
}

#[test]
fn columns_count_characters_not_bytes() {
    let errors = errors("vrrp_instances:\n  - { name: \"é\", bogus: 1 }\n");
    assert_eq!(
        errors[0].position,
        Some(Position {
            line: 2,
            column: 18
        })
    );
}

#[test]
fn control_characters_in_values_stay_escaped_in_messages() {
    let errors =
        errors(&MINIMAL_INSTANCE.replace("interface: eth0", "interface: \"e\\nth0\\u001b\""));
    assert_eq!(errors.len(), 1);
    assert!(!errors[0].message.contains('\n'), "{}", errors[0].message);
    assert!(
        !errors[0].message.contains('\u{1b}'),
        "{}",
        errors[0].message
    );
}

#[test]
fn load_rejects_files_that_are_not_utf8() {
    let dir = std::env::temp_dir().join(format!("keepalive-d-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("latin1.yaml");
    std::fs::write(&path, b"vrrp_instances: \xe9\n").unwrap();
    let errors = load(&path).unwrap_err().into_vec();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].position, None);
    assert!(errors[0].message.contains("UTF-8"), "{}", errors[0].message);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary YAML-ish text never panics the parser or the validator, and every error has
    /// a position inside the text (or none at all).
    #[test]
    fn parse_never_panics(text in "(vrrp_instances|virtual_servers|real_servers|name|vip|check|type|\
[-:{}\\[\\], \n]|[a-z0-9./]{1,8}|\"|&a|\\*a){0,40}") {
        if let Err(errors) = parse_str(&text, "p.yaml") {
            let lines = u64::try_from(text.lines().count()).unwrap() + 1;
            for error in errors.errors() {
                if let Some(p) = error.position {
                    prop_assert!(p.line >= 1 && p.line <= lines, "{error} in {text:?}");
                    prop_assert!(p.column >= 1);
                }
            }
        }
    }

    /// Any valid vrid/priority/weight is accepted and comes back unchanged.
    #[test]
    fn numbers_in_range_round_trip(vrid in 1u8..=255, priority in 1u8..=255, weight in 0u32..=2147483647) {
        let yaml = format!(
            "vrrp_instances:\n  - {{ name: a, interface: eth0, vrid: {vrid}, priority: {priority}, virtual_ips: [192.0.2.1/24] }}\n\
             virtual_servers:\n  - {{ name: w, vip: 192.0.2.10:80, real_servers: [{{ address: 10.0.0.1:80, weight: {weight} }}] }}\n"
        );
        let config = parse_str(&yaml, "p.yaml").unwrap();
        prop_assert_eq!(config.vrrp_instances[0].vrid, vrid);
        prop_assert_eq!(config.vrrp_instances[0].priority, priority);
        prop_assert_eq!(config.virtual_servers[0].real_servers[0].weight, weight);
    }
}

#[test]
fn ipvs_section_defaults_and_values() {
    let base = "virtual_servers:\n  - { name: web, vip: 192.0.2.10:80, real_servers: [{ address: 10.0.0.1:80 }] }\n";
    let config = parse(base);
    assert_eq!(config.ipvs, IpvsSettings::default());
    assert_eq!(config.ipvs.reconcile_interval, Duration::from_secs(10));
    assert_eq!(config.ipvs.on_stop, OnStop::Remove);
    let config = parse(&format!(
        "{base}ipvs: {{ reconcile_interval: 2s, coalesce: 10ms, on_stop: keep }}\n"
    ));
    assert_eq!(
        config.ipvs,
        IpvsSettings {
            reconcile_interval: Duration::from_secs(2),
            coalesce: Duration::from_millis(10),
            on_stop: OnStop::Keep,
        }
    );
}

#[test]
fn check_source_and_ca() {
    let config = parse(
        "
virtual_servers:
  - name: web
    vip: 192.0.2.10:443
    check: { type: https, ca: /etc/ssl/lab-ca.pem, source: 10.0.0.2, host: www.example.test }
    real_servers: [{ address: 10.0.0.1:443 }]
  - name: web6
    vip: \"[2001:db8::10]:80\"
    check: { type: tcp, source: \"2001:db8::2\" }
    real_servers: [{ address: \"[2001:db8::1]:80\" }]
",
    );
    let check = config.virtual_servers[0].real_servers[0]
        .check
        .clone()
        .unwrap();
    assert_eq!(check.source, Some("10.0.0.2".parse().unwrap()));
    let CheckKind::Https(http) = check.kind else {
        panic!("not https: {:?}", check.kind)
    };
    assert_eq!(http.ca.as_deref(), Some(Path::new("/etc/ssl/lab-ca.pem")));
    let check6 = config.virtual_servers[1].real_servers[0]
        .check
        .clone()
        .unwrap();
    assert_eq!(check6.source, Some("2001:db8::2".parse().unwrap()));
}

#[test]
fn dns_check_transports() {
    let config = parse(
        "
virtual_servers:
  - name: dns
    fwmark: 53
    family: ipv4
    check: { type: dns, port: 53, dns: { query: ns.example.test, transport: both } }
    real_servers:
      - { address: 10.0.0.11:0, check: { type: dns, port: 53, dns: { query: a.test, transport: tcp } } }
      - { address: 10.0.0.12:0, check: { type: dns, port: 53, dns: { query: a.test, transport: udp } } }
      - { address: 10.0.0.13:0, check: { type: dns, port: 53, dns: { query: a.test } } }
      - { address: 10.0.0.14:0 }
",
    );
    let transports: Vec<DnsTransport> = config.virtual_servers[0]
        .real_servers
        .iter()
        .map(|rs| match &rs.check.as_ref().unwrap().kind {
            CheckKind::Dns(dns) => dns.transport,
            other => panic!("not dns: {other:?}"),
        })
        .collect();
    assert_eq!(
        transports,
        [
            DnsTransport::Tcp,
            DnsTransport::Udp,
            DnsTransport::Udp,
            DnsTransport::Both
        ]
    );
    let errs = errors(
        "
virtual_servers:
  - name: dns
    vip: 192.0.2.10:53
    protocol: udp
    check: { type: dns, dns: { query: a.test, transport: TCP } }
    real_servers: [{ address: 10.0.0.11:53 }]
",
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(
        errs[0].message,
        "unknown dns transport `TCP`: expected udp, tcp or both"
    );
}

#[test]
fn tcp_check_close() {
    let config = parse(
        "
virtual_servers:
  - name: web
    vip: 192.0.2.10:80
    check: { type: tcp, close: fin }
    real_servers:
      - { address: 10.0.0.11:80 }
      - { address: 10.0.0.12:80, check: { type: tcp, close: reset } }
      - { address: 10.0.0.13:80, check: { type: tcp } }
",
    );
    let closes: Vec<TcpClose> = config.virtual_servers[0]
        .real_servers
        .iter()
        .map(|rs| match &rs.check.as_ref().unwrap().kind {
            CheckKind::Tcp(tcp) => tcp.close,
            other => panic!("not tcp: {other:?}"),
        })
        .collect();
    assert_eq!(closes, [TcpClose::Fin, TcpClose::Reset, TcpClose::Reset]);

    let errs = errors(
        "
virtual_servers:
  - name: web
    vip: 192.0.2.10:80
    check: { type: tcp, close: rst }
    real_servers:
      - { address: 10.0.0.11:80, check: { type: http, close: fin } }
",
    );
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(
        errs[0].message,
        "unknown close `rst`: expected one of reset, fin"
    );
    let at = |e: &ConfigError| e.position.map(|p| (p.line, p.column));
    assert_eq!(at(&errs[0]), Some((5, 32)), "{errs:?}");
    assert_eq!(
        errs[1].message,
        "`close` is only valid for tcp checks, this check is http"
    );
    assert_eq!(at(&errs[1]).map(|p| p.0), Some(7), "{errs:?}");
}

#[test]
fn metrics_section_off_by_default_loopback_or_allowed_remote() {
    assert_eq!(parse(MINIMAL_SERVER).metrics, None);
    let config = parse(&format!(
        "{MINIMAL_SERVER}metrics: {{ listen: 127.0.0.1:9595 }}\n"
    ));
    assert_eq!(
        config.metrics,
        Some(MetricsSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 9595)),
            allow_remote: false,
        })
    );
    let config = parse(&format!(
        "{MINIMAL_SERVER}metrics: {{ listen: \"[::1]:9595\" }}\n"
    ));
    assert_eq!(
        config.metrics.map(|m| m.listen),
        Some("[::1]:9595".parse().unwrap())
    );
    let config = parse(&format!(
        "{MINIMAL_SERVER}metrics:\n  listen: 0.0.0.0:9595\n  allow_remote: true\n"
    ));
    assert_eq!(
        config.metrics,
        Some(MetricsSettings {
            listen: SocketAddr::from(([0, 0, 0, 0], 9595)),
            allow_remote: true,
        })
    );
    let e = errors(&format!(
        "{MINIMAL_SERVER}metrics: {{ listen: 192.0.2.1:9595 }}\n"
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].to_string().contains("not a loopback address"),
        "{}",
        e[0]
    );
}

#[test]
fn sync_daemon_section() {
    let config = parse(
        "
vrrp_instances:
  - { name: web, interface: eth0, vrid: 51, priority: 150, virtual_ips: [192.0.2.10/24] }
sync_daemon: { interface: eth1, instance: web, sync_id: 7 }
",
    );
    assert_eq!(
        config.sync_daemon,
        Some(SyncDaemonSettings {
            interface: "eth1".into(),
            instance: Some("web".into()),
            sync_id: 7,
        })
    );
    let config = parse(
        "
vrrp_instances:
  - { name: web, interface: eth0, vrid: 51, priority: 150, virtual_ips: [192.0.2.10/24] }
sync_daemon: { interface: eth1, instance: web }
",
    );
    assert_eq!(config.sync_daemon.map(|s| s.sync_id), Some(0));
    // Active-active: no instance, both daemons.
    let config = parse(
        "
virtual_servers:
  - { name: web, vip: 10.0.0.100:80, announce: bgp, scheduler: mh, real_servers: [{ address: 10.0.0.11:80 }] }
sync_daemon: { interface: eth0, sync_id: 3 }
",
    );
    assert_eq!(
        config.sync_daemon,
        Some(SyncDaemonSettings {
            interface: "eth0".into(),
            instance: None,
            sync_id: 3,
        })
    );
}

#[test]
fn notify_stop_and_timeout() {
    let config = parse(&format!(
        "{MINIMAL_INSTANCE}    notify:\n      master: [/bin/true, promote]\n      stop: [/bin/true, demote]\n      timeout: 1m30s\n"
    ));
    let notify = &config.vrrp_instances[0].notify;
    let stop = notify.stop.as_ref().unwrap();
    assert_eq!(
        (stop.program.as_str(), stop.args.as_slice()),
        ("/bin/true", &["demote".to_owned()][..])
    );
    assert_eq!(notify.timeout, Duration::from_secs(90));
    assert_eq!(Notify::default().timeout, Duration::from_secs(10));
    let e = errors(&format!(
        "{MINIMAL_INSTANCE}    notify: {{ timeout: 500ms }}\n"
    ));
    assert!(e[0].message.contains("between 1s and 1h"), "{e:?}");
}

#[test]
fn vmac_off_default_name_or_named() {
    let with = |vmac: &str| parse(&format!("{MINIMAL_INSTANCE}    vmac: {vmac}\n"));
    assert_eq!(parse(MINIMAL_INSTANCE).vrrp_instances[0].vmac, None);
    assert_eq!(with("false").vrrp_instances[0].vmac, None);
    assert_eq!(
        with("true").vrrp_instances[0].vmac,
        Some(Vmac {
            name: "vrrp.7".into()
        })
    );
    assert_eq!(
        with("{}").vrrp_instances[0].vmac,
        Some(Vmac {
            name: "vrrp.7".into()
        })
    );
    assert_eq!(
        with("{ name: vrrp-web }").vrrp_instances[0].vmac,
        Some(Vmac {
            name: "vrrp-web".into()
        })
    );
    // IPv6 instances default to vrrp6.VRID, so that an IPv4 and an IPv6 instance of one
    // vrid can both use a virtual MAC without naming them.
    let v6 = parse(
        "
vrrp_instances:
  - { name: a, interface: eth0, vrid: 7, priority: 100, virtual_ips: [192.0.2.1], vmac: true }
  - { name: b, interface: eth0, vrid: 7, priority: 100, virtual_ips: ['2001:db8::1'], vmac: true }
",
    );
    assert_eq!(
        v6.vrrp_instances[1].vmac,
        Some(Vmac {
            name: "vrrp6.7".into()
        })
    );
}

#[test]
fn vmac_rejections() {
    let with = |vmac: &str| errors(&format!("{MINIMAL_INSTANCE}    vmac: {vmac}\n"));
    for bad in ["yes", "1", "[a]", "{ nme: x }"] {
        let e = with(bad);
        assert_eq!(e.len(), 1, "{bad}: {e:?}");
        assert!(e[0].message.contains("`vmac` must be"), "{bad}: {}", e[0]);
        assert_eq!(e[0].position.map(|p| p.line), Some(8), "{bad}");
    }
    let e = with("{ name: a-name-longer-than-15 }");
    assert!(
        e[0].message.contains("not a valid interface name"),
        "{}",
        e[0]
    );
    let e = with("{ name: eth0 }");
    assert!(
        e[0].message.contains("instance's own interface"),
        "{}",
        e[0]
    );
    let e = errors(
        "
vrrp_instances:
  - { name: a, interface: eth0, vrid: 7, priority: 255, virtual_ips: [192.0.2.1], vmac: true }
",
    );
    assert!(e[0].message.contains("address owner"), "{}", e[0]);
    let e = errors(
        "
vrrp_instances:
  - { name: a, interface: eth0, vrid: 7, priority: 100, virtual_ips: [192.0.2.1], vmac: true }
  - { name: b, interface: eth1, vrid: 7, priority: 100, virtual_ips: [192.0.2.2], vmac: true }
",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].message.contains("also that of instance `a`"),
        "{}",
        e[0]
    );
    let e = errors(
        "
vrrp_instances:
  - { name: a, interface: eth0, vrid: 7, priority: 100, virtual_ips: [192.0.2.1], vmac: { name: eth1 } }
  - { name: b, interface: eth1, vrid: 8, priority: 100, virtual_ips: [192.0.2.2] }
",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].message.contains("is the interface of a vrrp instance"),
        "{}",
        e[0]
    );
}

#[test]
fn announce_and_bgp_section() {
    let config = parse(
        "
virtual_servers:
  - { name: http, vip: 10.0.0.100:80, announce: bgp, scheduler: mh, real_servers: [{ address: 10.0.0.11:80 }] }
  - { name: https, vip: 10.0.0.100:443, announce: bgp, scheduler: mh, real_servers: [{ address: 10.0.0.11:443 }] }
  - { name: plain, vip: 10.0.0.101:80, real_servers: [{ address: 10.0.0.11:80 }] }
bgp: { table: 1000, protocol: 200 }
",
    );
    let announce: Vec<_> = config.virtual_servers.iter().map(|v| v.announce).collect();
    assert_eq!(announce, [Some(Announce::Bgp), Some(Announce::Bgp), None]);
    assert_eq!(
        config.bgp,
        BgpSettings {
            table: 1000,
            protocol: 200
        }
    );
    // Without the section: table 100, protocol 77.
    let config = parse(
        "
virtual_servers:
  - { name: http, vip: 10.0.0.100:80, announce: bgp, real_servers: [{ address: 10.0.0.11:80 }] }
",
    );
    assert_eq!(config.bgp, BgpSettings::default());
    assert_eq!((config.bgp.table, config.bgp.protocol), (100, 77));
}
