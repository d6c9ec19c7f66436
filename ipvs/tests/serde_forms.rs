//! The documented serde forms, exactly, and their validation errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ipvs::{
    Destination, Forward, Info, IpvsVersion, Persistence, PersistenceMask, Scheduler, Service,
    ServiceKey, Stats, SyncDaemon, SyncState, Table, Timeouts, TunnelChecksum, TunnelKind,
};
use serde_json::json;

fn to(v: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(v).unwrap()
}

fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, String> {
    serde_json::from_value(v).map_err(|e| e.to_string())
}

#[test]
fn table_form() {
    let t = ipvs::ipvsadm::parse(
        "-A -t 192.0.2.20:443 -s wrr -p 300 -M 255.255.255.0 --pe sip\n\
         -a -t 192.0.2.20:443 -r 10.0.0.21:443 -g -w 10 -x 100 -y 10\n\
         -a -t 192.0.2.20:443 -r [2001:db8::22]:443 -i -w 20 --tun-type gue --tun-port 6080 --tun-csum\n\
         -A -u [2001:db8::53]:53 -s sh -b sh-port -o\n\
         -a -u [2001:db8::53]:53 -r [2001:db8:1::1]:53 -m -w 1\n\
         -A -f 7 -6 -s mine -p -M 64\n\
         -a -f 7 -6 -r [2001:db8::7]:0 -i --tun-type ipip\n\
         -a -f 7 -6 -r [2001:db8::8]:0 -i --tun-type gre\n",
    )
    .unwrap();
    let expected = json!({"services": [
        {
            "service": "tcp 192.0.2.20:443",
            "scheduler": "wrr",
            "persistence": {"timeout": "300s", "netmask": "255.255.255.0", "engine": "sip"},
            "destinations": [
                {"address": "10.0.0.21:443", "forward": "dr", "weight": 10,
                 "upper_threshold": 100, "lower_threshold": 10},
                {"address": "[2001:db8::22]:443",
                 "forward": {"tun": {"type": "gue", "port": 6080, "checksum": "csum"}},
                 "weight": 20}
            ]
        },
        {
            "service": "udp [2001:db8::53]:53",
            "scheduler": "sh",
            "flags": ["sh-port"],
            "one_packet": true,
            "destinations": [
                {"address": "[2001:db8:1::1]:53", "forward": "nat", "weight": 1}
            ]
        },
        {
            "service": "fwmark 7 ipv6",
            "scheduler": "mine",
            "persistence": {"timeout": "360s", "netmask": 64},
            "destinations": [
                {"address": "[2001:db8::7]:0", "forward": {"tun": {"type": "ipip"}}, "weight": 1},
                {"address": "[2001:db8::8]:0",
                 "forward": {"tun": {"type": "gre", "checksum": "none"}}, "weight": 1}
            ]
        }
    ]});
    assert_eq!(to(&t), expected);
    assert_eq!(from::<Table>(expected).unwrap(), t);
}

#[test]
fn defaults_and_shorthands() {
    let svc: Service = from(json!({
        "service": "tcp 192.0.2.1:80",
        "destinations": [
            {"address": "10.0.0.1:80"},
            {"address": "10.0.0.2:80", "forward": "tun"},
            {"address": "10.0.0.3:80", "forward": "local"},
            {"address": "10.0.0.4:80", "forward": "bypass"}
        ]
    }))
    .unwrap();
    assert_eq!(svc.scheduler(), &Scheduler::WeightedLeastConnections);
    assert!(svc.persistence().is_none());
    assert!(!svc.one_packet());
    let fwd: Vec<Forward> = svc.destinations().map(Destination::forward).collect();
    assert_eq!(
        fwd,
        [
            Forward::DirectRoute,
            Forward::IPIP,
            Forward::Local,
            Forward::Bypass
        ]
    );
    assert!(svc.destinations().all(|d| d.weight() == 1));
    // Durations: "Ns" or a bare number of seconds.
    let p: Persistence = from(json!({"timeout": 60})).unwrap();
    assert_eq!(p.timeout(), Duration::from_secs(60));
    let p: Persistence = from(json!({"timeout": "60"})).unwrap();
    assert_eq!(p.timeout(), Duration::from_secs(60));
    // Netmask forms.
    assert_eq!(
        from::<PersistenceMask>(json!("64")).unwrap(),
        PersistenceMask::V6(64)
    );
    assert_eq!(to(&PersistenceMask::V6(48)), json!(48));
    assert!(from::<Table>(json!({})).unwrap().is_empty());
}

#[test]
fn scalar_forms() {
    assert_eq!(
        to(&ServiceKey::fwmark(ipvs::AddressFamily::Inet, 9).unwrap()),
        json!("fwmark 9")
    );
    assert_eq!(to(&Scheduler::MaglevHashing), json!("mh"));
    assert_eq!(to(&TunnelChecksum::RemoteChecksum), json!("remcsum"));
    assert_eq!(to(&ipvs::Protocol::Sctp), json!("sctp"));
    assert_eq!(to(&ipvs::AddressFamily::Inet6), json!("ipv6"));
    assert_eq!(to(&SyncState::Backup), json!("backup"));
    assert_eq!(to(&Forward::Masquerade), json!("nat"));
    assert_eq!(
        to(&Forward::Tunnel {
            kind: TunnelKind::Gue { port: 1 },
            checksum: TunnelChecksum::NoChecksum
        }),
        json!({"tun": {"type": "gue", "port": 1, "checksum": "none"}})
    );
    let t = Timeouts::new(
        Duration::from_secs(900),
        Duration::from_secs(120),
        Duration::from_secs(300),
    )
    .unwrap();
    assert_eq!(
        to(&t),
        json!({"tcp": "900s", "tcp_fin": "120s", "udp": "300s"})
    );
    let d = SyncDaemon::new(SyncState::Master, "eth0", 3)
        .unwrap()
        .with_mcast_group("224.0.0.81".parse().unwrap())
        .unwrap();
    assert_eq!(
        to(&d),
        json!({"state": "master", "mcast_interface": "eth0", "sync_id": 3, "mcast_group": "224.0.0.81"})
    );
    let i = Info {
        version: IpvsVersion::new(1, 2, 1),
        conn_table_size: 4096,
    };
    assert_eq!(to(&i), json!({"version": "1.2.1", "conn_table_size": 4096}));
    assert_eq!(
        from::<Info>(json!({"version": "1.2.1", "conn_table_size": 4096})).unwrap(),
        i
    );
    assert_eq!(
        to(&Stats::default()),
        json!({"conns": 0, "inpkts": 0, "outpkts": 0, "inbytes": 0, "outbytes": 0,
               "cps": 0, "inpps": 0, "outpps": 0, "inbps": 0, "outbps": 0})
    );
    assert_eq!(
        ipvs::serde_impl::duration_to_string(Duration::from_secs(5)),
        "5s"
    );
}

#[test]
fn validation_errors() {
    let err = |v| from::<Service>(v).unwrap_err();
    let e = err(json!({"service": "tcp 192.0.2.1:80",
                       "persistence": {"timeout": "60s", "netmask": "255.0.255.0"}}));
    assert!(
        e.contains("service tcp 192.0.2.1:80: persistence netmask 255.0.255.0 is not contiguous"),
        "{e}"
    );
    let e = err(json!({"service": "tcp 192.0.2.1:80", "scheduler": "rr", "flags": ["sh-port"]}));
    assert!(
        e.contains("scheduler flag sh-port is not valid with scheduler rr"),
        "{e}"
    );
    let e = err(json!({"service": "tcp 192.0.2.1:80", "flags": ["nope"]}));
    assert!(e.contains("unknown scheduler flag \"nope\""), "{e}");
    let e = err(json!({"service": "tcp 192.0.2.1:80", "one_packet": true}));
    assert!(e.contains("one-packet"), "{e}");
    let e = err(json!({"service": "tcp 192.0.2.1:80",
                       "destinations": [{"address": "[2001:db8::1]:80", "forward": "nat"}]}));
    assert!(
        e.contains("service tcp 192.0.2.1:80: destination [2001:db8::1]:80: a destination of another address family needs tunnel forwarding"),
        "{e}"
    );
    let e = err(json!({"service": "tcp 192.0.2.1:80",
                       "destinations": [{"address": "10.0.0.1:80", "weight": 2147483648u64}]}));
    assert!(
        e.contains("service tcp 192.0.2.1:80: destination 10.0.0.1:80: weight"),
        "{e}"
    );
    let e = err(json!({"service": "tcp 192.0.2.1:80",
                       "destinations": [{"address": "10.0.0.1:80"}, {"address": "10.0.0.1:80"}]}));
    assert!(e.contains("destination already exists"), "{e}");
    let e = err(json!({"service": "tcp 192.0.2.1:80", "bogus": 1}));
    assert!(e.contains("unknown field `bogus`"), "{e}");
    let e = err(json!({"service": "fwmark 0"}));
    assert!(e.contains("fwmark 0 is invalid"), "{e}");
    let e = err(json!({"service": "tcp 192.0.2.1:80", "scheduler": ""}));
    assert!(e.contains("scheduler name is empty"), "{e}");
    let e = err(json!({"service": "tcp 192.0.2.1:80", "persistence": {"timeout": "0s"}}));
    assert!(e.contains("at least 1s"), "{e}");
    let e = err(json!({"service": "tcp 192.0.2.1:80", "persistence": {"timeout": "5m"}}));
    assert!(e.contains("duration"), "{e}");
    for (fwd, msg) in [
        (json!({"tun": {"type": "gue"}}), "needs a port"),
        (json!({"tun": {"type": "gre", "port": 1}}), "has no port"),
        (
            json!({"tun": {"type": "gre", "checksum": "remcsum"}}),
            "does not support",
        ),
        (
            json!({"tun": {"type": "ipip", "checksum": "csum"}}),
            "does not support",
        ),
        (json!({"tun": {"type": "gue", "port": 0}}), "must not be 0"),
        (json!({"tun": {"type": "vxlan"}}), "unknown tunnel type"),
        (json!({"tunnel": {"type": "ipip"}}), "unknown field"),
        (json!({}), "empty forward map"),
        (json!("masq"), "invalid value"),
    ] {
        let e = from::<Forward>(fwd.clone()).unwrap_err();
        assert!(e.contains(msg), "{fwd}: {e}");
    }
    let e = from::<Table>(json!({"services": [{"service": "udp 192.0.2.1:53"},
                                              {"service": "udp 192.0.2.1:53"}]}))
    .unwrap_err();
    assert!(
        e.contains("service udp 192.0.2.1:53: service already exists"),
        "{e}"
    );
    assert!(from::<Timeouts>(json!({"tcp": "3000000s", "tcp_fin": 0, "udp": 0})).is_err());
    assert!(
        from::<SyncDaemon>(json!({"state": "master", "mcast_interface": "eth0",
                                      "sync_id": 1, "mcast_group": "192.0.2.1"}))
        .is_err()
    );
    assert!(
        from::<SyncDaemon>(json!({"state": "primary", "mcast_interface": "eth0",
                                      "sync_id": 1}))
        .is_err()
    );
    assert!(
        from::<SyncDaemon>(json!({"state": "master", "mcast_interface": "eth0",
                                      "sync_id": 256}))
        .is_err()
    );
    assert!(from::<Info>(json!({"version": "1.2", "conn_table_size": 1})).is_err());
    // A mask alone is only parsed; the service checks it against its family.
    assert_eq!(
        from::<PersistenceMask>(json!(0)).unwrap(),
        PersistenceMask::V6(0)
    );
    assert!(from::<PersistenceMask>(json!(256)).is_err());
    assert!(from::<PersistenceMask>(json!("255.255.0")).is_err());
    let e = err(json!({"service": "udp [2001:db8::1]:53",
                       "persistence": {"timeout": "60s", "netmask": "255.255.255.0"}}));
    assert!(
        e.contains("service udp [2001:db8::1]:53: persistence netmask 255.255.255.0 does not match the service family ipv6"),
        "{e}"
    );
    let e = err(json!({"service": "fwmark 1 ipv6",
                       "persistence": {"timeout": "60s", "netmask": 0}}));
    assert!(e.contains("prefix length 0 is outside 1..=128"), "{e}");
}

#[test]
fn yaml_config() {
    let yaml = "\
services:
  - service: sctp 192.0.2.1:3868
    scheduler: rr
    destinations:
      - address: 10.0.0.1:3868
        forward: nat
        weight: 0
  - service: tcp [2001:db8::10]:443
    scheduler: mh
    flags: [mh-port]
    persistence:
      timeout: 300s
      netmask: 64
    destinations:
      - address: \"[2001:db8:1::11]:443\"
        forward:
          tun: {type: gue, port: 6080, checksum: remcsum}
";
    let t: Table = serde_saphyr::from_str(yaml).unwrap();
    assert_eq!(
        ipvs::ipvsadm::print(&t),
        "-A --sctp-service 192.0.2.1:3868 -s rr\n\
         -a --sctp-service 192.0.2.1:3868 -r 10.0.0.1:3868 -m -w 0\n\
         -A -t [2001:db8::10]:443 -s mh -p 300 -M 64 -b mh-port\n\
         -a -t [2001:db8::10]:443 -r [2001:db8:1::11]:443 -i -w 1 --tun-type gue --tun-port 6080 --tun-remcsum\n"
    );
    let back: Table = serde_saphyr::from_str(&serde_saphyr::to_string(&t).unwrap()).unwrap();
    assert_eq!(back, t);
    let e = serde_saphyr::from_str::<Table>(
        "services:\n  - service: tcp 192.0.2.1:80\n    persistence: {timeout: 0s}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("persistence timeout must be at least 1s"), "{e}");
}
