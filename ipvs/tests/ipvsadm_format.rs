//! Every option of the ipvsadm save/restore format, and every parse error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use ipvs::ipvsadm::{self, ParseErrorKind, PrintOptions};
use ipvs::{
    AddressFamily, Destination, Forward, Persistence, PersistenceEngine, PersistenceMask, Problem,
    SchedFlags, Scheduler, Service, ServiceKey, Table, TunnelChecksum, TunnelKind,
};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn one_service(text: &str) -> Service {
    let t = ipvsadm::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert_eq!(t.len(), 1, "{text:?}");
    t.services().next().unwrap().clone()
}

fn one_dest(text: &str) -> Destination {
    let s = one_service(text);
    assert_eq!(s.destinations().len(), 1, "{text:?}");
    s.destinations().next().unwrap().clone()
}

/// The printed form of what `text` parses to.
fn reprint(text: &str) -> String {
    ipvsadm::print(&ipvsadm::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}")))
}

fn err(text: &str) -> (usize, Option<String>, ParseErrorKind) {
    let e = ipvsadm::parse(text).unwrap_err();
    (e.line, e.token, e.kind)
}

#[test]
fn service_kinds() {
    assert_eq!(
        one_service("-A -t 192.0.2.1:80").key(),
        &ServiceKey::tcp(sa("192.0.2.1:80"))
    );
    assert_eq!(
        one_service("-A -u [2001:db8::1]:53").key(),
        &ServiceKey::udp(sa("[2001:db8::1]:53"))
    );
    assert_eq!(
        one_service("-A --sctp-service 192.0.2.1:3868").key(),
        &ServiceKey::sctp(sa("192.0.2.1:3868"))
    );
    assert_eq!(
        one_service("-A -f 7").key(),
        &ServiceKey::fwmark(AddressFamily::Inet, 7).unwrap()
    );
    assert_eq!(
        one_service("-A -f 7 -6").key(),
        &ServiceKey::fwmark(AddressFamily::Inet6, 7).unwrap()
    );
    assert_eq!(
        one_service("-A -6 -f 7").key(),
        &ServiceKey::fwmark(AddressFamily::Inet6, 7).unwrap()
    );
    // Long spellings.
    assert_eq!(
        one_service("--add-service --tcp-service 192.0.2.1:80").key(),
        &ServiceKey::tcp(sa("192.0.2.1:80"))
    );
    assert_eq!(
        one_service("--add-service --udp-service=192.0.2.1:53").key(),
        &ServiceKey::udp(sa("192.0.2.1:53"))
    );
    assert_eq!(
        one_service("--add-service --fwmark-service 9 --ipv6").key(),
        &ServiceKey::fwmark(AddressFamily::Inet6, 9).unwrap()
    );
    // Without a port: port 0; an unbracketed IPv6 address.
    assert_eq!(one_service("-A -t 192.0.2.1 -p").key().port(), 0);
    assert_eq!(
        one_service("-A -t 2001:db8::99 -p").key(),
        &ServiceKey::tcp(sa("[2001:db8::99]:0"))
    );
    assert_eq!(
        reprint("-A -t 2001:db8::99 -p"),
        "-A -t [2001:db8::99]:0 -s wlc -p 360\n"
    );
}

#[test]
fn fwmark_printing_is_signed_like_ipvsadm() {
    assert_eq!(reprint("-A -f 4294967295"), "-A -f -1 -s wlc\n");
    assert_eq!(reprint("-A -f 2147483648"), "-A -f -2147483648 -s wlc\n");
    assert_eq!(reprint("-A -f 2147483647"), "-A -f 2147483647 -s wlc\n");
    assert_eq!(
        one_service("-A -f -1").key().mark(),
        Some(u32::MAX),
        "ipvsadm -S writes marks above i32::MAX as negative numbers"
    );
    assert_eq!(one_service("-A -f -2147483648").key().mark(), Some(1 << 31));
    assert!(matches!(
        err("-A -f -2147483649").2,
        ParseErrorKind::InvalidNumber { .. }
    ));
    assert!(matches!(
        err("-A -f 4294967296").2,
        ParseErrorKind::InvalidNumber { .. }
    ));
    assert!(matches!(
        err("-A -f -0").2,
        ParseErrorKind::InvalidNumber { .. }
    ));
    let (_, tok, kind) = err("-A -f 0");
    assert_eq!(tok.as_deref(), Some("0"));
    assert!(matches!(kind, ParseErrorKind::Invalid(e) if e.problem == Problem::FwmarkZero));
}

#[test]
fn scheduler_option() {
    assert_eq!(
        one_service("-A -t 192.0.2.1:80").scheduler(),
        &Scheduler::default()
    );
    assert_eq!(
        one_service("-A -t 192.0.2.1:80 -s rr").scheduler(),
        &Scheduler::RoundRobin
    );
    assert_eq!(
        one_service("-A -t 192.0.2.1:80 --scheduler twos").scheduler(),
        &Scheduler::TwoRandomChoices
    );
    assert_eq!(
        one_service("-A -t 192.0.2.1:80 -s custom_1")
            .scheduler()
            .name(),
        "custom_1"
    );
    let (line, tok, kind) = err("\n-A -t 192.0.2.1:80 -s this-is-far-too-long");
    assert_eq!((line, tok.as_deref()), (2, Some("this-is-far-too-long")));
    assert!(matches!(kind, ParseErrorKind::Invalid(_)));
    assert_eq!(
        reprint("-A -t 192.0.2.1:80 -s lblcr"),
        "-A -t 192.0.2.1:80 -s lblcr\n"
    );
}

#[test]
fn sched_flags_option() {
    let s = one_service("-A -t 192.0.2.1:80 -s sh -b sh-fallback,sh-port");
    assert_eq!(
        s.sched_flags(),
        SchedFlags::SH_FALLBACK | SchedFlags::SH_PORT
    );
    let s = one_service("-A -t 192.0.2.1:80 -s mh --sched-flags mh-port");
    assert_eq!(s.sched_flags(), SchedFlags::MH_PORT);
    // Generic names are accepted where the flag is valid and printed by name.
    assert_eq!(
        reprint("-A -t 192.0.2.1:80 -s sh -b flag-1,flag-2"),
        "-A -t 192.0.2.1:80 -s sh -b sh-fallback,sh-port\n"
    );
    assert_eq!(
        reprint("-A -t 192.0.2.1:80 -s mine -b flag-3,flag-1"),
        "-A -t 192.0.2.1:80 -s mine -b flag-1,flag-3\n"
    );
    // A flag of another scheduler, as ipvsadm says.
    let (_, tok, kind) = err("-A -t 192.0.2.1:80 -s rr -b sh-port");
    assert_eq!(tok.as_deref(), Some("sh-port"));
    assert!(matches!(kind, ParseErrorKind::IncompatibleSchedFlag { .. }));
    let (_, tok, _) = err("-A -t 192.0.2.1:80 -s mh -b sh-port");
    assert_eq!(tok.as_deref(), Some("sh-port"));
    // -b without -s: the default scheduler wlc has no flags.
    assert!(matches!(
        err("-A -t 192.0.2.1:80 -b sh-port").2,
        ParseErrorKind::IncompatibleSchedFlag { .. }
    ));
    let (_, tok, _) = err("-A -t 192.0.2.1:80 -s sh -b sh-bogus");
    assert_eq!(tok.as_deref(), Some("sh-bogus"));
    // flag-3 is not valid with sh: the model error, on the -b token's argument.
    let (_, tok, kind) = err("-A -t 192.0.2.1:80 -s sh -b flag-3");
    assert_eq!(tok.as_deref(), Some("flag-3"));
    assert!(matches!(kind, ParseErrorKind::Invalid(_)));
}

#[test]
fn persistence_options() {
    let p = |t: &str| one_service(t).persistence().cloned();
    assert_eq!(p("-A -t 192.0.2.1:80"), None);
    assert_eq!(
        p("-A -t 192.0.2.1:80 -p").unwrap().timeout(),
        Duration::from_secs(360)
    );
    assert_eq!(
        p("-A -t 192.0.2.1:80 -p 300").unwrap().timeout(),
        Duration::from_secs(300)
    );
    assert_eq!(
        p("-A -t 192.0.2.1:80 --persistent=60").unwrap().timeout(),
        Duration::from_secs(60)
    );
    assert_eq!(
        p("-A -t 192.0.2.1:80 -p4294967295").unwrap().timeout_secs(),
        u32::MAX
    );
    // -p followed by an option takes no value.
    assert_eq!(
        p("-A -t 192.0.2.1:80 -p -s rr").unwrap().timeout(),
        Duration::from_secs(360)
    );
    assert_eq!(
        p("-A -t 192.0.2.1:80 -p 60 -M 255.255.255.0")
            .unwrap()
            .netmask(),
        Some(PersistenceMask::V4(Ipv4Addr::new(255, 255, 255, 0)))
    );
    assert_eq!(
        p("-A -t 192.0.2.1:80 -p 60 --netmask 255.255.255.255")
            .unwrap()
            .netmask(),
        None
    );
    assert_eq!(
        p("-A -t [2001:db8::1]:80 -p 60 -M 64").unwrap().netmask(),
        Some(PersistenceMask::V6(64))
    );
    assert_eq!(
        p("-A -f 3 -6 -p 60 -M 48").unwrap().netmask(),
        Some(PersistenceMask::V6(48))
    );
    assert_eq!(
        p("-A -u 192.0.2.1:5060 -p 60 --pe sip").unwrap().engine(),
        Some(&PersistenceEngine::sip())
    );
    // -M without -p is ignored, as ipvsadm ignores it.
    assert_eq!(p("-A -t 192.0.2.1:80 -M 255.255.255.0"), None);
    // Printing.
    for line in [
        "-A -t 192.0.2.1:80 -s wlc -p 1",
        "-A -t 192.0.2.1:80 -s wlc -p 60 -M 255.255.0.0",
        "-A -t [2001:db8::1]:80 -s wlc -p 60 -M 64",
        "-A -u 192.0.2.1:54 -s sh -p 10 -M 255.255.255.0 --pe sip -o -b sh-port",
        "-A -f 1 -6 -s wlc -p 30 -M 48",
    ] {
        assert_eq!(reprint(line), format!("{line}\n"));
    }
    assert_eq!(
        reprint("-A -t 192.0.2.1:80 -p 60 -M 255.255.255.255"),
        "-A -t 192.0.2.1:80 -s wlc -p 60\n"
    );
    assert_eq!(
        reprint("-A -t [2001:db8::1]:80 -p 60 -M 128"),
        "-A -t [2001:db8::1]:80 -s wlc -p 60\n"
    );
}

#[test]
fn persistence_errors() {
    for (text, token) in [
        ("-A -t 192.0.2.1:80 -p 0", "0"),
        ("-A -t 192.0.2.1:80 -p x", "x"),
        ("-A -t 192.0.2.1:80 -p 4294967296", "4294967296"),
        ("-A -t 192.0.2.1:80 -p 60 -M 64", "64"),
        ("-A -t 192.0.2.1:80 -p 60 -M 255.0.255.0", "255.0.255.0"),
        ("-A -t [2001:db8::1]:80 -p 60 -M 0", "0"),
        ("-A -t [2001:db8::1]:80 -p 60 -M 129", "129"),
        (
            "-A -t [2001:db8::1]:80 -p 60 -M 255.255.255.0",
            "255.255.255.0",
        ),
        ("-A -t 192.0.2.1:80 -p 60 --pe s/p", "s/p"),
        ("-A -t 192.0.2.1:80 --pe sip", "--pe"),
    ] {
        let (_, tok, _) = err(text);
        assert_eq!(tok.as_deref(), Some(token), "{text}");
    }
    assert_eq!(
        err("-A -t 192.0.2.1:80 --pe sip").2,
        ParseErrorKind::EngineWithoutPersistence
    );
}

#[test]
fn ops_option() {
    assert!(one_service("-A -u 192.0.2.1:53 -o").one_packet());
    assert!(one_service("-A -f 3 --ops").one_packet());
    assert_eq!(
        reprint("-A -u 192.0.2.1:53 -o"),
        "-A -u 192.0.2.1:53 -s wlc -o\n"
    );
    let (_, tok, kind) = err("-A -t 192.0.2.1:53 -o");
    assert_eq!(tok.as_deref(), Some("-o"));
    assert!(
        matches!(kind, ParseErrorKind::Invalid(e) if matches!(e.problem, Problem::OnePacketNotUdp(_)))
    );
}

#[test]
fn destination_options() {
    let svc = "-A -t 192.0.2.1:80\n";
    let d = |rest: &str| one_dest(&format!("{svc}-a -t 192.0.2.1:80 {rest}"));
    assert_eq!(d("-r 10.0.0.1:8080 -m").forward(), Forward::Masquerade);
    assert_eq!(
        d("-r 10.0.0.1 --masquerading").forward(),
        Forward::Masquerade
    );
    assert_eq!(d("-r 10.0.0.1 -g").forward(), Forward::DirectRoute);
    assert_eq!(
        d("-r 10.0.0.1 --gatewaying").forward(),
        Forward::DirectRoute
    );
    assert_eq!(d("-r 10.0.0.1").forward(), Forward::DirectRoute);
    assert_eq!(d("-r 10.0.0.1 -i").forward(), Forward::IPIP);
    assert_eq!(d("-r 10.0.0.1 --ipip").forward(), Forward::IPIP);
    assert_eq!(d("-r 10.0.0.1 (null)").forward(), Forward::Bypass);
    // No port: the service's.
    assert_eq!(d("-r 10.0.0.1 -m").addr(), sa("10.0.0.1:80"));
    assert_eq!(d("--real-server=10.0.0.1:81 -m").addr(), sa("10.0.0.1:81"));
    assert_eq!(d("-r 10.0.0.1").weight(), 1);
    assert_eq!(d("-r 10.0.0.1 -w 0").weight(), 0);
    assert_eq!(
        d("-r 10.0.0.1 --weight 2147483647").weight(),
        i32::MAX as u32
    );
    let t = d("-r 10.0.0.1 -x 100 -y 10");
    assert_eq!((t.upper_threshold(), t.lower_threshold()), (100, 10));
    let t = d("-r 10.0.0.1 --u-threshold 5 --l-threshold 5");
    assert_eq!((t.upper_threshold(), t.lower_threshold()), (5, 5));
    assert_eq!(
        d("-r 10.0.0.1 -i --tun-type gue --tun-port 6080 --tun-csum").forward(),
        Forward::Tunnel {
            kind: TunnelKind::Gue { port: 6080 },
            checksum: TunnelChecksum::Checksum
        }
    );
    assert_eq!(
        d("-r 10.0.0.1 -i --tun-type gue --tun-port 1 --tun-remcsum").forward(),
        Forward::Tunnel {
            kind: TunnelKind::Gue { port: 1 },
            checksum: TunnelChecksum::RemoteChecksum
        }
    );
    assert_eq!(
        d("-r 10.0.0.1 -i --tun-type gre --tun-csum").forward(),
        Forward::Tunnel {
            kind: TunnelKind::Gre,
            checksum: TunnelChecksum::Checksum
        }
    );
    assert_eq!(
        d("-r 10.0.0.1 -i --tun-type gre --tun-nocsum").forward(),
        Forward::Tunnel {
            kind: TunnelKind::Gre,
            checksum: TunnelChecksum::NoChecksum
        }
    );
    assert_eq!(d("-r 10.0.0.1 -i --tun-type ipip").forward(), Forward::IPIP);
    // A fwmark service's real server without a port: port 0.
    assert_eq!(
        one_dest("-A -f 1\n-a -f 1 -r 10.0.0.1").addr(),
        sa("10.0.0.1:0")
    );
}

#[test]
fn destination_printing() {
    let svc = "-A -t 192.0.2.1:80 -s wlc\n";
    for line in [
        "-a -t 192.0.2.1:80 -r 10.0.0.1:8080 -m -w 0",
        "-a -t 192.0.2.1:80 -r 10.0.0.1:80 -g -w 1",
        "-a -t 192.0.2.1:80 -r 10.0.0.1:80 (null) -w 1",
        "-a -t 192.0.2.1:80 -r 10.0.0.1:80 -i -w 1 --tun-type ipip",
        "-a -t 192.0.2.1:80 -r 10.0.0.1:80 -i -w 7 --tun-type gue --tun-port 1 --tun-nocsum",
        "-a -t 192.0.2.1:80 -r 10.0.0.1:80 -i -w 1 --tun-type gue --tun-port 5555 --tun-csum",
        "-a -t 192.0.2.1:80 -r 10.0.0.1:80 -i -w 1 --tun-type gue --tun-port 5555 --tun-remcsum",
        "-a -t 192.0.2.1:80 -r 10.0.0.1:80 -i -w 1 --tun-type gre --tun-nocsum",
        "-a -t 192.0.2.1:80 -r 10.0.0.1:80 -i -w 1 --tun-type gre --tun-csum",
        "-a -t 192.0.2.1:80 -r [2001:db8::8]:80 -i -w 1 --tun-type ipip",
    ] {
        let text = format!("{svc}{line}\n");
        assert_eq!(reprint(&text), text);
    }
    // Thresholds are left out, as ipvsadm leaves them out, unless asked for.
    let text = format!("{svc}-a -t 192.0.2.1:80 -r 10.0.0.1:80 -m -w 1 -x 100 -y 10\n");
    let t = ipvsadm::parse(&text).unwrap();
    assert_eq!(
        ipvsadm::print(&t),
        format!("{svc}-a -t 192.0.2.1:80 -r 10.0.0.1:80 -m -w 1\n")
    );
    assert_eq!(
        ipvsadm::print_with(&t, &PrintOptions { thresholds: true }),
        text
    );
    // Local node forwarding prints as -g (what ipvsadm does) and reads back as -g.
    let mut s = Service::builder(ServiceKey::tcp(sa("192.0.2.1:80")))
        .build()
        .unwrap();
    s.add_destination(Destination::new(sa("10.0.0.1:80"), Forward::Local).unwrap())
        .unwrap();
    assert_eq!(
        ipvsadm::print_service(&s),
        format!("{svc}-a -t 192.0.2.1:80 -r 10.0.0.1:80 -g -w 1\n")
    );
}

#[test]
fn destination_errors() {
    let svc = "-A -t 192.0.2.1:80\n";
    let e = |rest: &str| {
        let (line, tok, kind) = err(&format!("{svc}-a -t 192.0.2.1:80 {rest}"));
        assert_eq!(line, 2, "{rest}");
        (tok, kind)
    };
    assert_eq!(e("-m").1, ParseErrorKind::MissingRealServer);
    assert_eq!(
        e("-r 10.0.0.1 -w 2147483648").0.as_deref(),
        Some("2147483648")
    );
    assert_eq!(e("-r 10.0.0.1 -w -1").0.as_deref(), Some("-1"));
    assert_eq!(e("-r 10.0.0.1 -x 1 -y 2").0.as_deref(), Some("2"));
    assert_eq!(e("-r 10.0.0.1 -y 2").0.as_deref(), Some("2"));
    assert_eq!(
        e("-r 10.0.0.1 -m --tun-type gre"),
        (
            Some("--tun-type".into()),
            ParseErrorKind::TunnelOptionWithoutTunnel
        )
    );
    assert_eq!(
        e("-r 10.0.0.1 --tun-csum"),
        (
            Some("--tun-csum".into()),
            ParseErrorKind::TunnelOptionWithoutTunnel
        )
    );
    assert_eq!(
        e("-r 10.0.0.1 -i --tun-type gue").1,
        ParseErrorKind::TunnelPort
    );
    assert_eq!(
        e("-r 10.0.0.1 -i --tun-type gre --tun-port 1"),
        (Some("--tun-port".into()), ParseErrorKind::TunnelPort)
    );
    assert_eq!(
        e("-r 10.0.0.1 -i --tun-port 1"),
        (Some("--tun-port".into()), ParseErrorKind::TunnelPort)
    );
    assert_eq!(
        e("-r 10.0.0.1 -i --tun-type gue --tun-port 0").0.as_deref(),
        Some("0")
    );
    assert_eq!(
        e("-r 10.0.0.1 -i --tun-type vxlan"),
        (Some("vxlan".into()), ParseErrorKind::UnknownTunnelType)
    );
    assert_eq!(
        e("-r 10.0.0.1 -i --tun-type gre --tun-remcsum")
            .0
            .as_deref(),
        Some("--tun-remcsum")
    );
    assert_eq!(
        e("-r 10.0.0.1 -i --tun-type ipip --tun-csum").0.as_deref(),
        Some("--tun-csum")
    );
    assert_eq!(
        e("-r 10.0.0.1 -i --tun-type gue --tun-port 1 --tun-csum --tun-nocsum"),
        (Some("--tun-nocsum".into()), ParseErrorKind::DuplicateOption)
    );
    assert_eq!(
        e("-r 10.0.0.1 -m -g"),
        (Some("-g".into()), ParseErrorKind::DuplicateOption)
    );
    let (tok, kind) = e("-r [2001:db8::1]:80 -m");
    assert_eq!(tok.as_deref(), Some("[2001:db8::1]:80"));
    assert!(
        matches!(kind, ParseErrorKind::Invalid(e) if e.problem == Problem::MixedFamilyNeedsTunnel)
    );
    assert_eq!(
        e("-r 10.0.0.1:99999"),
        (
            Some("10.0.0.1:99999".into()),
            ParseErrorKind::InvalidAddress
        )
    );
    // A destination twice; a service not defined.
    let (line, tok, kind) = err(
        "-A -t 192.0.2.1:80\n-a -t 192.0.2.1:80 -r 10.0.0.1\n-a -t 192.0.2.1:80 -r 10.0.0.1:80",
    );
    assert_eq!((line, tok.as_deref()), (3, Some("10.0.0.1:80")));
    assert!(
        matches!(kind, ParseErrorKind::Invalid(e) if e.problem == Problem::DuplicateDestination)
    );
    assert_eq!(
        err("-a -t 192.0.2.1:80 -r 10.0.0.1"),
        (
            1,
            Some("192.0.2.1:80".into()),
            ParseErrorKind::NoSuchService
        )
    );
}

#[test]
fn edit_and_delete_commands() {
    let base = "-A -t 192.0.2.1:80 -s rr\n-a -t 192.0.2.1:80 -r 10.0.0.1 -m -w 3\n";
    let t = ipvsadm::parse(&format!("{base}-E -t 192.0.2.1:80 -s wrr -p 60\n")).unwrap();
    let s = t.services().next().unwrap();
    assert_eq!(s.scheduler(), &Scheduler::WeightedRoundRobin);
    assert!(s.persistence().is_some());
    assert_eq!(s.destinations().len(), 1, "-E keeps the destinations");
    let t = ipvsadm::parse(&format!(
        "{base}--edit-server -t 192.0.2.1:80 -r 10.0.0.1 -m -w 9\n"
    ))
    .unwrap();
    assert_eq!(
        t.services()
            .next()
            .unwrap()
            .destinations()
            .next()
            .unwrap()
            .weight(),
        9
    );
    let t = ipvsadm::parse(&format!("{base}-d -t 192.0.2.1:80 -r 10.0.0.1:80\n")).unwrap();
    assert_eq!(t.services().next().unwrap().destinations().len(), 0);
    let t = ipvsadm::parse(&format!("{base}--delete-service -t 192.0.2.1:80\n")).unwrap();
    assert!(t.is_empty());
    let t = ipvsadm::parse(&format!("{base}-C\n-A -u 192.0.2.1:53\n")).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(
        err(&format!("{base}-E -t 192.0.2.1:81 -s rr")),
        (
            3,
            Some("192.0.2.1:81".into()),
            ParseErrorKind::NoSuchService
        )
    );
    assert_eq!(
        err(&format!("{base}-e -t 192.0.2.1:80 -r 10.0.0.2 -m")),
        (
            3,
            Some("10.0.0.2".into()),
            ParseErrorKind::NoSuchDestination
        )
    );
    assert_eq!(
        err(&format!("{base}-d -t 192.0.2.1:80 -r 10.0.0.2")),
        (
            3,
            Some("10.0.0.2".into()),
            ParseErrorKind::NoSuchDestination
        )
    );
    assert_eq!(
        err("-D -t 192.0.2.1:80"),
        (
            1,
            Some("192.0.2.1:80".into()),
            ParseErrorKind::NoSuchService
        )
    );
    // -E revalidates the kept destinations' forward? Editing cannot make them invalid:
    // the family is part of the key. Adding a service twice fails.
    let (line, _, kind) = err("-A -t 192.0.2.1:80\n-A -t 192.0.2.1:80 -s rr");
    assert_eq!(line, 2);
    assert!(matches!(kind, ParseErrorKind::Invalid(e) if e.problem == Problem::DuplicateService));
}

/// Lines of several services interleaved in any order give the same table as grouped
/// lines (the parser keeps the service of the last lines aside: every switch between
/// services, every command on a service that is or is not the last one, must agree).
#[test]
fn interleaved_services_parse_like_grouped_ones() {
    let interleaved = "-A -t 192.0.2.1:80 -s rr\n\
        -A -t 192.0.2.2:80 -s rr\n\
        -a -t 192.0.2.1:80 -r 10.0.0.1 -m -w 1\n\
        -a -t 192.0.2.2:80 -r 10.0.0.2 -m -w 2\n\
        -A -u 192.0.2.3:53\n\
        -a -t 192.0.2.1:80 -r 10.0.0.3 -m -w 3\n\
        -E -t 192.0.2.2:80 -s wrr\n\
        -a -u 192.0.2.3:53 -r 10.0.0.4 -m\n\
        -e -t 192.0.2.1:80 -r 10.0.0.1 -m -w 7\n\
        -D -u 192.0.2.3:53\n\
        -a -t 192.0.2.2:80 -r 10.0.0.5 -m -w 5\n\
        -d -t 192.0.2.1:80 -r 10.0.0.3\n\
        -A -u 192.0.2.3:53 -s sh\n";
    let grouped = "-A -t 192.0.2.1:80 -s rr\n\
        -a -t 192.0.2.1:80 -r 10.0.0.1 -m -w 7\n\
        -A -t 192.0.2.2:80 -s wrr\n\
        -a -t 192.0.2.2:80 -r 10.0.0.2 -m -w 2\n\
        -a -t 192.0.2.2:80 -r 10.0.0.5 -m -w 5\n\
        -A -u 192.0.2.3:53 -s sh\n";
    assert_eq!(
        ipvsadm::parse(interleaved).unwrap(),
        ipvsadm::parse(grouped).unwrap()
    );
    // A duplicate is found whether the first one is the last service or not.
    for text in [
        "-A -t 192.0.2.1:80\n-A -t 192.0.2.1:80",
        "-A -t 192.0.2.1:80\n-A -t 192.0.2.2:80\n-A -t 192.0.2.1:80",
        "-A -t 192.0.2.1:80\n-A -t 192.0.2.2:80\n-a -t 192.0.2.1:80 -r 10.0.0.1\n-A -t 192.0.2.2:80",
    ] {
        let (_, _, kind) = err(text);
        assert!(
            matches!(&kind, ParseErrorKind::Invalid(e) if e.problem == Problem::DuplicateService),
            "{text:?}: {kind:?}"
        );
    }
    // Clear drops the service of the last lines too.
    let t = ipvsadm::parse("-A -t 192.0.2.1:80\n-a -t 192.0.2.1:80 -r 10.0.0.1\n-C\n").unwrap();
    assert!(t.is_empty());
}

#[test]
fn lexical_forms() {
    // Comments, blank lines, a leading ipvsadm, clustered short options, --opt=value.
    let text = "# saved table\n\n  ipvsadm -At 192.0.2.1:80 -srr\n/sbin/ipvsadm -at 192.0.2.1:80 -r 10.0.0.1 -mw5\n-a -t 192.0.2.1:80 --real-server=10.0.0.2 --weight=7 -g\n";
    let t = ipvsadm::parse(text).unwrap();
    assert_eq!(
        ipvsadm::print(&t),
        "-A -t 192.0.2.1:80 -s rr\n-a -t 192.0.2.1:80 -r 10.0.0.1:80 -m -w 5\n-a -t 192.0.2.1:80 -r 10.0.0.2:80 -g -w 7\n"
    );
    assert!(ipvsadm::parse("").unwrap().is_empty());
    assert!(ipvsadm::parse("ipvsadm\n#x\n").unwrap().is_empty());
}

#[test]
fn line_errors() {
    assert_eq!(
        err("-A -t 192.0.2.1:80 -q"),
        (1, Some("-q".into()), ParseErrorKind::UnknownOption)
    );
    assert_eq!(
        err("-A -t 192.0.2.1:80 --frobnicate"),
        (
            1,
            Some("--frobnicate".into()),
            ParseErrorKind::UnknownOption
        )
    );
    assert_eq!(
        err("-A -t 192.0.2.1:80 -s"),
        (1, Some("-s".into()), ParseErrorKind::MissingArgument)
    );
    assert_eq!(
        err("-A -t 192.0.2.1:80 stray"),
        (1, Some("stray".into()), ParseErrorKind::UnexpectedArgument)
    );
    assert_eq!(
        err("-A -t 192.0.2.1:80 --ops=1"),
        (
            1,
            Some("--ops=1".into()),
            ParseErrorKind::UnexpectedArgument
        )
    );
    assert_eq!(err("-t 192.0.2.1:80"), (1, None, ParseErrorKind::NoCommand));
    assert_eq!(
        err("-A -a -t 192.0.2.1:80"),
        (1, Some("-a".into()), ParseErrorKind::MultipleCommands)
    );
    for cmd in [
        "-L",
        "-Sn",
        "--set 1 2 3",
        "--start-daemon master",
        "-Z",
        "-R",
        "-h",
    ] {
        assert_eq!(err(cmd).2, ParseErrorKind::UnsupportedCommand, "{cmd}");
    }
    assert_eq!(
        err("-A -t 192.0.2.1:80 -s rr -s wrr"),
        (1, Some("-s".into()), ParseErrorKind::DuplicateOption)
    );
    assert_eq!(
        err("-A -t 192.0.2.1:80 -u 192.0.2.1:53"),
        (1, Some("-u".into()), ParseErrorKind::DuplicateOption)
    );
    assert_eq!(
        err("-A -t 192.0.2.1:80 -w 3"),
        (1, Some("-w".into()), ParseErrorKind::OptionNotAllowed("-A"))
    );
    assert_eq!(
        err("-A -t 192.0.2.1:80 -r 10.0.0.1"),
        (1, Some("-r".into()), ParseErrorKind::OptionNotAllowed("-A"))
    );
    assert_eq!(
        err("-A -t 192.0.2.1:80\n-a -t 192.0.2.1:80 -r 10.0.0.1 -s rr"),
        (2, Some("-s".into()), ParseErrorKind::OptionNotAllowed("-a"))
    );
    assert_eq!(
        err("-D -t 192.0.2.1:80 -p"),
        (1, Some("-p".into()), ParseErrorKind::OptionNotAllowed("-D"))
    );
    assert_eq!(
        err("-C -t 192.0.2.1:80"),
        (1, Some("-t".into()), ParseErrorKind::OptionNotAllowed("-C"))
    );
    assert_eq!(
        err("-A -t 192.0.2.1:80 -n"),
        (
            1,
            Some("-n".into()),
            ParseErrorKind::OptionNotAllowed("a table")
        )
    );
    assert_eq!(err("-A -s rr"), (1, None, ParseErrorKind::MissingService));
    assert_eq!(
        err("-A -t 192.0.2.1:80 -6"),
        (1, Some("-6".into()), ParseErrorKind::Ipv6WithoutFwmark)
    );
    for bad in [
        "80",
        "host.example:80",
        "[2001:db8::1]",
        "[2001:db8::1]80",
        "192.0.2.1:nosuchname",
        "192.0.2.1:ntp",
        "192.0.2.1:",
        "010.0.0.1:80",
        "[192.0.2.1]:80",
    ] {
        assert_eq!(
            err(&format!("-A -t {bad}")),
            (1, Some(bad.into()), ParseErrorKind::InvalidAddress),
            "{bad}"
        );
    }
    let e = ipvsadm::parse("-A -t 192.0.2.1:80 -s").unwrap_err();
    assert_eq!(e.to_string(), "line 1: `-s`: missing argument");
    let e = ipvsadm::parse("-A -s rr").unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 1: missing service (-t, -u, --sctp-service or -f)"
    );
}

#[test]
fn ordering_follows_ipvsadm() {
    // Addresses whose difference is 2^31 or more compare "backwards" in ipvsadm.
    let t = ipvsadm::parse(
        "-A -t 10.0.0.1:80\n-A -t 192.168.0.1:80\n-A -t 203.0.113.1:80\n-A -f 1\n-A -f 4294967295\n",
    )
    .unwrap();
    assert_eq!(
        ipvsadm::print(&t),
        "-A -f -1 -s wlc\n-A -t 192.168.0.1:80 -s wlc\n-A -t 203.0.113.1:80 -s wlc\n-A -t 10.0.0.1:80 -s wlc\n-A -f 1 -s wlc\n"
    );
    // Within half the circle: plain numeric order.
    let t = ipvsadm::parse("-A -t 10.0.0.2:80\n-A -t 10.0.0.1:80\n-A -t 10.0.0.1:79\n").unwrap();
    assert_eq!(
        ipvsadm::print(&t),
        "-A -t 10.0.0.1:79 -s wlc\n-A -t 10.0.0.1:80 -s wlc\n-A -t 10.0.0.2:80 -s wlc\n"
    );
    // Exactly 2^31 apart: each is "less" than the other in ipvsadm; numeric order.
    let t = ipvsadm::parse("-A -f 2147483649\n-A -f 1\n").unwrap();
    assert_eq!(
        ipvsadm::print(&t),
        "-A -f 1 -s wlc\n-A -f -2147483647 -s wlc\n"
    );
    // No consistent order (values all around the circle): numeric order.
    let t = ipvsadm::parse("-A -f 1\n-A -f 1431655766\n-A -f 2863311531\n").unwrap();
    assert_eq!(
        ipvsadm::print(&t),
        "-A -f 1 -s wlc\n-A -f 1431655766 -s wlc\n-A -f -1431655765 -s wlc\n"
    );
}

#[test]
fn model_built_table_prints() {
    let mut svc = Service::builder(ServiceKey::tcp(sa("192.0.2.20:443")))
        .scheduler(Scheduler::WeightedRoundRobin)
        .persistence(
            Persistence::new(Duration::from_secs(300))
                .unwrap()
                .with_netmask(PersistenceMask::V4(Ipv4Addr::new(255, 255, 255, 0))),
        )
        .build()
        .unwrap();
    svc.add_destination(
        Destination::new(sa("10.0.0.21:443"), Forward::DirectRoute)
            .unwrap()
            .with_weight(10)
            .unwrap(),
    )
    .unwrap();
    let mut t = Table::new();
    t.add_service(svc).unwrap();
    assert_eq!(
        ipvsadm::print(&t),
        "-A -t 192.0.2.20:443 -s wrr -p 300 -M 255.255.255.0\n-a -t 192.0.2.20:443 -r 10.0.0.21:443 -g -w 10\n"
    );
}

#[test]
fn port_names() {
    assert_eq!(
        one_service("-A -t 192.0.2.1:http").key(),
        &ServiceKey::tcp(sa("192.0.2.1:80"))
    );
    assert_eq!(
        one_service("-A -t [2001:db8::1]:https").key(),
        &ServiceKey::tcp(sa("[2001:db8::1]:443"))
    );
    assert_eq!(
        one_service("-A -u 192.0.2.1:domain").key(),
        &ServiceKey::udp(sa("192.0.2.1:53"))
    );
    assert_eq!(
        one_service("-A -u 192.0.2.1:ntp").key(),
        &ServiceKey::udp(sa("192.0.2.1:123"))
    );
    // Per protocol, as getservbyname: ntp is UDP only, ssh TCP only, SCTP has none.
    assert_eq!(err("-A -t 192.0.2.1:ntp").2, ParseErrorKind::InvalidAddress);
    assert_eq!(err("-A -u 192.0.2.1:ssh").2, ParseErrorKind::InvalidAddress);
    assert_eq!(
        err("-A --sctp-service 192.0.2.1:http").2,
        ParseErrorKind::InvalidAddress
    );
    // Aliases; a real server's port name for the service's protocol (TCP for fwmark).
    assert_eq!(
        one_dest("-A -u 192.0.2.1:53\n-a -u 192.0.2.1:53 -r 10.0.0.1:domain -m").addr(),
        sa("10.0.0.1:53")
    );
    assert_eq!(
        one_dest("-A -f 1\n-a -f 1 -r 10.0.0.1:www").addr(),
        sa("10.0.0.1:80")
    );
    assert_eq!(one_service("-A -t 192.0.2.1:postgres").key().port(), 5432);
    // Every entry resolves for its protocols, and names are unique per protocol.
    for (names, port, protos) in ipvsadm::SERVICE_NAMES {
        for name in *names {
            for p in *protos {
                let opt = match p {
                    ipvs::Protocol::Tcp => "-t",
                    ipvs::Protocol::Udp => "-u",
                    ipvs::Protocol::Sctp => "--sctp-service",
                };
                let s = one_service(&format!("-A {opt} 192.0.2.1:{name}"));
                assert_eq!(s.key().port(), *port, "{name}");
            }
        }
    }
    let e = ipvsadm::parse("-A -t www.example.com:80").unwrap_err();
    assert!(e.to_string().contains("host names are not resolved"), "{e}");
}
