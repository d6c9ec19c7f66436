//! Every scheduler, forwarding method, tunnel type and flag, every address kind, written
//! through ipvs-sys and read back by ipvsadm, and the other way round.

use ipvs_integration::netns::TestNs;
use ipvs_sys::transport::{BatchOptions, ErrorKind, IpvsSocket, TransportError};
use ipvs_sys::{
    AddressFamily, DestAttrs, ForwardMethod, IpvsMessage, Netmask, Protocol, ServiceAttrs,
    ServiceFlags, TunnelFlags, TunnelType,
};
use std::collections::BTreeSet;

/// Every scheduler of Debian's 6.1 kernel (`twos` is not built there: see below).
const SCHEDULERS: [&str; 13] = [
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
];

fn socket(ns: &TestNs) -> IpvsSocket {
    IpvsSocket::open_in_netns(format!("/run/netns/{}", ns.name())).unwrap()
}

fn svc(proto: Protocol, addr: &str, sched: &str) -> ServiceAttrs {
    ServiceAttrs::addr_key(proto, addr.parse().unwrap()).with_config(sched, ServiceFlags::EMPTY, 0)
}

fn dest(addr: &str, fwd: ForwardMethod, weight: u32) -> DestAttrs {
    DestAttrs::key_of(addr.parse().unwrap()).with_config(fwd, weight)
}

fn tunnel(addr: &str, kind: TunnelType, port: u16, flags: TunnelFlags) -> DestAttrs {
    let mut d = dest(addr, ForwardMethod::TUNNEL, 1);
    d.tun_type = Some(kind);
    d.tun_port = Some(port);
    d.tun_flags = Some(flags);
    d
}

fn lines(s: &str) -> BTreeSet<String> {
    s.lines().map(str::to_string).collect()
}

/// The table, as messages, and as `ipvsadm -S -n` prints it.
fn table() -> (Vec<IpvsMessage>, String) {
    let mut msgs = Vec::new();
    let mut text = String::new();
    for (i, s) in SCHEDULERS.iter().enumerate() {
        let addr = format!("192.0.2.60:{}", 1000 + i);
        msgs.push(IpvsMessage::new_service(svc(Protocol::TCP, &addr, s)));
        text += &format!("-A -t {addr} -s {s}\n");
    }

    // Every forwarding method and tunnel variant behind one service.
    let web = svc(Protocol::TCP, "192.0.2.61:80", "wrr");
    msgs.push(IpvsMessage::new_service(web.clone()));
    text += "-A -t 192.0.2.61:80 -s wrr\n";
    let dests = [
        (
            dest("10.0.1.1:8080", ForwardMethod::MASQ, 1),
            "-r 10.0.1.1:8080 -m -w 1",
        ),
        (
            dest("10.0.1.2:80", ForwardMethod::ROUTE, 0),
            "-r 10.0.1.2:80 -g -w 0",
        ),
        (
            tunnel("10.0.1.3:80", TunnelType::IPIP, 0, TunnelFlags::NOCSUM),
            "-r 10.0.1.3:80 -i -w 1 --tun-type ipip",
        ),
        (
            tunnel("10.0.1.4:80", TunnelType::GUE, 6080, TunnelFlags::CSUM),
            "-r 10.0.1.4:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum",
        ),
        (
            tunnel("10.0.1.5:80", TunnelType::GUE, 6081, TunnelFlags::REMCSUM),
            "-r 10.0.1.5:80 -i -w 1 --tun-type gue --tun-port 6081 --tun-remcsum",
        ),
        (
            tunnel("10.0.1.6:80", TunnelType::GUE, 6082, TunnelFlags::NOCSUM),
            "-r 10.0.1.6:80 -i -w 1 --tun-type gue --tun-port 6082 --tun-nocsum",
        ),
        (
            tunnel("10.0.1.7:80", TunnelType::GRE, 0, TunnelFlags::CSUM),
            "-r 10.0.1.7:80 -i -w 1 --tun-type gre --tun-csum",
        ),
        (
            tunnel("10.0.1.8:80", TunnelType::GRE, 0, TunnelFlags::NOCSUM),
            "-r 10.0.1.8:80 -i -w 1 --tun-type gre --tun-nocsum",
        ),
    ];
    for (d, line) in dests {
        msgs.push(IpvsMessage::new_dest(web.key(), d));
        text += &format!("-a -t 192.0.2.61:80 {line}\n");
    }
    let mut thresholds = dest("10.0.1.9:80", ForwardMethod::MASQ, 2_147_483_647);
    thresholds.u_thresh = Some(1000);
    thresholds.l_thresh = Some(100);
    msgs.push(IpvsMessage::new_dest(web.key(), thresholds));
    text += "-a -t 192.0.2.61:80 -r 10.0.1.9:80 -m -w 2147483647 -x 1000 -y 100\n";

    // IPv6 with a persistence prefix, and a mixed-family (IPv4) tunnelled destination.
    let mut v6 = svc(Protocol::TCP, "[2001:db8::61]:443", "mh");
    v6.flags = Some(ipvs_sys::SvcFlags::set_all(ServiceFlags(
        ServiceFlags::PERSISTENT.0 | ServiceFlags::SCHED_MH_PORT.0,
    )));
    v6.timeout = Some(300);
    v6.netmask = Some(Netmask::V6Prefix(64));
    msgs.push(IpvsMessage::new_service(v6.clone()));
    text += "-A -t [2001:db8::61]:443 -s mh -p 300 -M 64 -b mh-port\n";
    msgs.push(IpvsMessage::new_dest(
        v6.key(),
        dest("[2001:db8:1::1]:443", ForwardMethod::MASQ, 5),
    ));
    text += "-a -t [2001:db8::61]:443 -r [2001:db8:1::1]:443 -m -w 5\n";
    msgs.push(IpvsMessage::new_dest(
        v6.key(),
        tunnel("10.0.1.10:443", TunnelType::IPIP, 0, TunnelFlags::NOCSUM),
    ));
    text += "-a -t [2001:db8::61]:443 -r 10.0.1.10:443 -i -w 1 --tun-type ipip\n";

    // UDP persistence with a netmask, the sip persistence engine, one-packet scheduling.
    let mut sip = svc(Protocol::UDP, "192.0.2.63:5060", "rr");
    sip.flags = Some(ipvs_sys::SvcFlags::set_all(ServiceFlags(
        ServiceFlags::PERSISTENT.0 | ServiceFlags::ONEPACKET.0,
    )));
    sip.timeout = Some(120);
    sip.netmask = Some(Netmask::V4("255.255.255.0".parse().unwrap()));
    sip.pe_name = Some("sip".into());
    msgs.push(IpvsMessage::new_service(sip));
    text += "-A -u 192.0.2.63:5060 -s rr -p 120 -M 255.255.255.0 --pe sip -o\n";

    // SCTP, and firewall marks of both families with scheduler flags.
    msgs.push(IpvsMessage::new_service(svc(
        Protocol::SCTP,
        "192.0.2.64:3868",
        "lc",
    )));
    text += "-A --sctp-service 192.0.2.64:3868 -s lc\n";
    let mut mark4 = ServiceAttrs::fwmark_key(AddressFamily::INET, 11).with_config(
        "sh",
        ServiceFlags(ServiceFlags::SCHED_SH_FALLBACK.0 | ServiceFlags::SCHED_SH_PORT.0),
        0,
    );
    mark4.timeout = Some(0);
    msgs.push(IpvsMessage::new_service(mark4.clone()));
    text += "-A -f 11 -s sh -b sh-fallback,sh-port\n";
    msgs.push(IpvsMessage::new_dest(
        mark4.key(),
        dest("10.0.1.11:0", ForwardMethod::ROUTE, 3),
    ));
    text += "-a -f 11 -r 10.0.1.11:0 -g -w 3\n";
    let mark6 = ServiceAttrs::fwmark_key(AddressFamily::INET6, 12).with_config(
        "wrr",
        ServiceFlags::EMPTY,
        0,
    );
    msgs.push(IpvsMessage::new_service(mark6.clone()));
    text += "-A -f 12 -6 -s wrr\n";
    msgs.push(IpvsMessage::new_dest(
        mark6.key(),
        dest("[2001:db8:1::12]:0", ForwardMethod::ROUTE, 4),
    ));
    text += "-a -f 12 -6 -r [2001:db8:1::12]:0 -g -w 4\n";
    (msgs, text)
}

#[test]
fn everything_we_write_ipvsadm_shows_exactly() {
    let ns = TestNs::new("matrix-w").unwrap();
    let mut ipvs = socket(&ns);
    let (msgs, text) = table();
    let report = ipvs.batch(&msgs, &BatchOptions::default()).unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let saved = ns.run("ipvsadm", &["-S", "-n"]).unwrap();
    // ipvsadm -S does not save thresholds (a gap in its save format, which ipvsadm -R
    // reads): `thresholds_are_stored` checks them through the listing.
    let (want, got) = (lines(&text.replace(" -x 1000 -y 100", "")), lines(&saved));
    assert_eq!(
        got,
        want,
        "missing: {:?}\nunexpected: {:?}",
        want.difference(&got).collect::<Vec<_>>(),
        got.difference(&want).collect::<Vec<_>>()
    );
}

#[test]
fn thresholds_are_stored() {
    let ns = TestNs::new("matrix-t").unwrap();
    let mut ipvs = socket(&ns);
    let (msgs, _) = table();
    ipvs.batch(&msgs, &BatchOptions::default()).unwrap();
    let listing = ns.run("ipvsadm", &["-L", "-n", "--thresholds"]).unwrap();
    let line = listing.lines().find(|l| l.contains("10.0.1.9:80")).unwrap();
    let cols: Vec<&str> = line.split_whitespace().collect();
    // -> RemoteAddress:Port Uthreshold Lthreshold ActiveConn InActConn
    assert_eq!(cols[..4], ["->", "10.0.1.9:80", "1000", "100"], "{line}");
}

#[test]
fn everything_ipvsadm_writes_we_read_exactly() {
    let ns = TestNs::new("matrix-r").unwrap();
    let (msgs, text) = table();
    ns.run_with_input("ipvsadm", &["-R"], &text).unwrap();
    let mut ipvs = socket(&ns);
    let mut got_services = ipvs.services().unwrap();
    let mut got_dests = Vec::new();
    for s in &got_services {
        for d in ipvs.destinations(s).unwrap() {
            got_dests.push((s.key(), d));
        }
    }
    // What we asked for, in the form the kernel reports it.
    let mut want_services = Vec::new();
    let mut want_dests = Vec::new();
    for m in msgs {
        if let Some(d) = m.dest() {
            want_dests.push((m.service().unwrap().key(), d.clone()));
        } else if let Some(s) = m.service() {
            want_services.push(s.clone());
        }
    }
    let norm_svc = |s: &mut ServiceAttrs| {
        s.stats = None;
        s.stats64 = None;
        let flags = s.flags.unwrap();
        s.flags = Some(ipvs_sys::SvcFlags::set_all(flags.flags.user_settable()));
        if s.fwmark.is_some() {
            s.protocol = None;
        }
    };
    for s in got_services.iter_mut().chain(want_services.iter_mut()) {
        norm_svc(s);
    }
    let key = |s: &ServiceAttrs| format!("{:?}", s.key());
    got_services.sort_by_key(key);
    want_services.sort_by_key(key);
    assert_eq!(got_services, want_services);

    let norm_dest = |(s, d): &mut (ServiceAttrs, DestAttrs)| {
        d.stats = None;
        d.stats64 = None;
        d.active_conns = None;
        d.inact_conns = None;
        d.persist_conns = None;
        d.addr_family
            .get_or_insert(AddressFamily::of(&d.addr.unwrap()));
        // The kernel reports tunnel settings for every destination (zero when unused).
        d.tun_type.get_or_insert(TunnelType::IPIP);
        d.tun_port.get_or_insert(0);
        d.tun_flags.get_or_insert(TunnelFlags::NOCSUM);
        if s.fwmark.is_some() {
            s.protocol = None;
        }
    };
    for d in got_dests.iter_mut().chain(want_dests.iter_mut()) {
        norm_dest(d);
    }
    let dkey = |(s, d): &(ServiceAttrs, DestAttrs)| format!("{s:?} {:?}", d.addr);
    got_dests.sort_by_key(dkey);
    want_dests.sort_by_key(dkey);
    assert_eq!(got_dests, want_dests);
}

#[test]
fn local_and_bypass_forwarding_and_missing_schedulers() {
    let ns = TestNs::new("matrix-x").unwrap();
    let mut ipvs = socket(&ns);
    let s = svc(Protocol::TCP, "192.0.2.65:80", "rr");
    ipvs.execute(&IpvsMessage::new_service(s.clone())).unwrap();
    ipvs.execute(&IpvsMessage::new_dest(
        s.key(),
        dest("10.0.2.1:80", ForwardMethod::LOCAL, 1),
    ))
    .unwrap();
    ipvs.execute(&IpvsMessage::new_dest(
        s.key(),
        dest("10.0.2.2:80", ForwardMethod::BYPASS, 1),
    ))
    .unwrap();
    let got: Vec<_> = ipvs
        .destinations(&s)
        .unwrap()
        .into_iter()
        .map(|d| (d.addr.unwrap().to_string(), d.fwd_method.unwrap()))
        .collect();
    // The kernel keeps both as written; ipvsadm -S prints local as -g and has no
    // option for bypass (it prints "(null)"), so only netlink can round-trip them.
    let mut got = got;
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("10.0.2.1".to_string(), ForwardMethod::LOCAL),
            ("10.0.2.2".to_string(), ForwardMethod::BYPASS)
        ]
    );
    let saved = ns.run("ipvsadm", &["-S", "-n"]).unwrap();
    assert!(saved.contains("-r 10.0.2.1:80 -g -w 1"), "{saved}");
    // `twos` is not built into Debian's 6.1 kernel (CONFIG_IP_VS_TWOS is not set).
    let e = ipvs
        .execute(&IpvsMessage::new_service(svc(
            Protocol::TCP,
            "192.0.2.66:80",
            "twos",
        )))
        .unwrap_err();
    match e {
        TransportError::Kernel(k) => assert_eq!(k.kind, ErrorKind::SchedulerNotFound),
        other => panic!("{other}"),
    }
}
