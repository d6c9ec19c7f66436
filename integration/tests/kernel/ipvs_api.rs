//! The high-level `ipvs` API against the real kernel: apply end to end, idempotence,
//! drift repair, ownership, drain, edits in place, typed errors, cross-checked with
//! ipvsadm.

use ipvs::reconcile::{ApplyOptions, Op, Scope};
use ipvs::{
    ApiError, AsyncIpvs, Destination, Forward, Ipvs, Object, ServiceKey, SyncDaemon, SyncState,
    Table, Timeouts,
};
use ipvs_integration::netns::TestNs;
use ipvs_sys::transport::{BatchOptions, ErrorKind, IpvsSocket};
use ipvs_sys::{IpvsMessage, Protocol, ServiceAttrs, ServiceFlags};
use std::collections::BTreeSet;
use std::time::Duration;

fn open(ns: &TestNs) -> Ipvs {
    Ipvs::open_in_netns(format!("/run/netns/{}", ns.name())).unwrap()
}

fn parse(text: &str) -> Table {
    ipvs::ipvsadm::parse(text).unwrap()
}

fn saved(ns: &TestNs) -> BTreeSet<String> {
    ns.run("ipvsadm", &["-S", "-n"])
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn lines(text: &str) -> BTreeSet<String> {
    text.lines().map(str::to_string).collect()
}

fn key(s: &str) -> ServiceKey {
    s.parse().unwrap()
}

/// Every kind of service and destination the model has (what Debian's 6.1 kernel
/// builds: not `twos`). The DR and tunnel destinations of address services are
/// written with the service's port, as ipvsadm forces it.
const EVERYTHING: &str = "\
-A -t 192.0.2.61:80 -s wrr
-a -t 192.0.2.61:80 -r 10.0.1.1:8080 -m -w 1
-a -t 192.0.2.61:80 -r 10.0.1.2:80 -g -w 0
-a -t 192.0.2.61:80 -r 10.0.1.3:80 -i -w 1 --tun-type ipip
-a -t 192.0.2.61:80 -r 10.0.1.4:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum
-a -t 192.0.2.61:80 -r 10.0.1.5:80 -i -w 1 --tun-type gue --tun-port 6081 --tun-remcsum
-a -t 192.0.2.61:80 -r 10.0.1.6:80 -i -w 1 --tun-type gue --tun-port 6082 --tun-nocsum
-a -t 192.0.2.61:80 -r 10.0.1.7:80 -i -w 1 --tun-type gre --tun-csum
-a -t 192.0.2.61:80 -r 10.0.1.8:80 -i -w 1 --tun-type gre --tun-nocsum
-a -t 192.0.2.61:80 -r 10.0.1.9:80 -m -w 2147483647 -x 1000 -y 100
-A -t 192.0.2.62:0 -s lblcr -p 600
-a -t 192.0.2.62:0 -r 10.0.1.20:0 -g -w 3
-A -t [2001:db8::61]:443 -s mh -p 300 -M 64 -b mh-port
-a -t [2001:db8::61]:443 -r [2001:db8:1::1]:443 -m -w 5
-a -t [2001:db8::61]:443 -r 10.0.1.10:443 -i -w 1 --tun-type ipip
-A -u 192.0.2.63:5060 -s rr -p 120 -M 255.255.255.0 --pe sip -o
-a -u 192.0.2.63:5060 -r 10.0.1.30:5060 -m -w 1
-A --sctp-service 192.0.2.64:3868 -s lc
-A -f 11 -s sh -b sh-fallback,sh-port
-a -f 11 -r 10.0.1.11:0 -g -w 3
-A -f 12 -6 -s wrr
-a -f 12 -6 -r [2001:db8:1::12]:0 -g -w 4
-A -t 192.0.2.65:80 -s dh
-A -t 192.0.2.66:80 -s sed
-A -t 192.0.2.67:80 -s nq
-A -t 192.0.2.68:80 -s fo
-A -t 192.0.2.69:80 -s ovf
-A -t 192.0.2.70:80 -s lblc
-A -t 192.0.2.71:80 -s wlc
";

#[test]
fn apply_writes_everything_and_a_second_apply_plans_nothing() {
    let ns = TestNs::new("api-apply").unwrap();
    let mut ipvs = open(&ns);
    let desired = parse(EVERYTHING);
    let dry = ipvs.plan(&desired, &ApplyOptions::default()).unwrap();
    // The dry run is the ipvsadm save format, services first.
    assert_eq!(lines(&dry.to_string()), lines(EVERYTHING));
    assert!(
        dry.ops()[..desired.len()]
            .iter()
            .all(|o| matches!(o, Op::AddService(_)))
    );

    let report = ipvs.apply(&desired, &ApplyOptions::default()).unwrap();
    assert!(report.is_complete(), "{report}");
    assert_eq!(report.applied().count(), dry.len());
    // ipvsadm -S leaves the thresholds out.
    assert_eq!(
        saved(&ns),
        lines(&EVERYTHING.replace(" -x 1000 -y 100", ""))
    );
    // What we read back is what we wrote, in the model.
    let observed = ipvs.table().unwrap();
    assert_eq!(observed.table(), &desired);
    let again = ipvs.plan(&desired, &ApplyOptions::default()).unwrap();
    assert!(again.is_empty(), "{again}");
    let report = ipvs.apply(&desired, &ApplyOptions::default()).unwrap();
    assert!(report.plan().is_empty() && report.is_complete());
    // Also with full prune and drain: nothing else is there.
    let all = ApplyOptions {
        scope: Scope::FullPrune,
        drain: true,
        ..ApplyOptions::default()
    };
    assert!(ipvs.plan(&desired, &all).unwrap().is_empty());
}

#[test]
fn what_ipvsadm_restores_we_read_exactly() {
    let ns = TestNs::new("api-read").unwrap();
    ns.run_with_input("ipvsadm", &["-R"], EVERYTHING).unwrap();
    let mut ipvs = open(&ns);
    let observed = ipvs.table().unwrap();
    assert_eq!(observed.table(), &parse(EVERYTHING));
    assert!(
        ipvs.plan(&parse(EVERYTHING), &ApplyOptions::default())
            .unwrap()
            .is_empty()
    );
    let k = key("tcp 192.0.2.61:80");
    let s = observed.service_stats(&k).unwrap();
    assert_eq!(s.destinations.len(), 9);
    let d = observed
        .destination_stats(&k, "10.0.1.1:8080".parse().unwrap())
        .unwrap();
    assert_eq!((d.active_conns, d.inactive_conns, d.stats.conns), (0, 0, 0));
}

#[test]
fn dr_ports_are_forced_like_ipvsadm_and_manual_edits_are_reverted() {
    let ns = TestNs::new("api-drift").unwrap();
    let mut ipvs = open(&ns);
    // Written with other ports: apply forces them to the service port, as ipvsadm does.
    let desired = parse(
        "-A -t 192.0.2.10:80 -s rr\n\
         -a -t 192.0.2.10:80 -r 10.0.0.1:8080 -g -w 2\n\
         -a -t 192.0.2.10:80 -r 10.0.0.2:8080 -m -w 3\n\
         -a -t 192.0.2.10:80 -r 10.0.0.3:9000 -i -w 4 --tun-type ipip\n",
    );
    let report = ipvs.apply(&desired, &ApplyOptions::default()).unwrap();
    assert!(report.is_complete(), "{report}");
    let expect = lines(
        "-A -t 192.0.2.10:80 -s rr\n\
         -a -t 192.0.2.10:80 -r 10.0.0.1:80 -g -w 2\n\
         -a -t 192.0.2.10:80 -r 10.0.0.2:8080 -m -w 3\n\
         -a -t 192.0.2.10:80 -r 10.0.0.3:80 -i -w 4 --tun-type ipip\n",
    );
    assert_eq!(saved(&ns), expect);
    assert!(
        ipvs.plan(&desired, &ApplyOptions::default())
            .unwrap()
            .is_empty()
    );

    // A manual weight change (ipvsadm forces the port here too, so it finds ours).
    ns.run(
        "ipvsadm",
        &[
            "-e",
            "-t",
            "192.0.2.10:80",
            "-r",
            "10.0.0.1:8080",
            "-g",
            "-w",
            "9",
        ],
    )
    .unwrap();
    ns.run(
        "ipvsadm",
        &[
            "-e",
            "-t",
            "192.0.2.10:80",
            "-r",
            "10.0.0.2:8080",
            "-m",
            "-w",
            "3",
            "-x",
            "50",
        ],
    )
    .unwrap();
    let p = ipvs.plan(&desired, &ApplyOptions::default()).unwrap();
    assert_eq!(
        p.to_string(),
        "-e -t 192.0.2.10:80 -r 10.0.0.1:80 -g -w 2\n\
         -e -t 192.0.2.10:80 -r 10.0.0.2:8080 -m -w 3\n"
    );
    assert!(
        ipvs.apply(&desired, &ApplyOptions::default())
            .unwrap()
            .is_complete()
    );
    assert_eq!(saved(&ns), expect);
    assert!(
        ipvs.plan(&desired, &ApplyOptions::default())
            .unwrap()
            .is_empty()
    );

    // Everything flushed behind our back: all of it comes back.
    ns.run("ipvsadm", &["-C"]).unwrap();
    let p = ipvs.plan(&desired, &ApplyOptions::default()).unwrap();
    assert_eq!(p.len(), 4);
    assert!(
        ipvs.apply(&desired, &ApplyOptions::default())
            .unwrap()
            .is_complete()
    );
    assert_eq!(saved(&ns), expect);
    assert!(
        ipvs.plan(&desired, &ApplyOptions::default())
            .unwrap()
            .is_empty()
    );

    // A destination added behind our back to a service we own goes.
    ns.run(
        "ipvsadm",
        &[
            "-a",
            "-t",
            "192.0.2.10:80",
            "-r",
            "10.0.0.99:80",
            "-m",
            "-w",
            "1",
        ],
    )
    .unwrap();
    let p = ipvs.plan(&desired, &ApplyOptions::default()).unwrap();
    assert_eq!(p.to_string(), "-d -t 192.0.2.10:80 -r 10.0.0.99:80\n");
    assert!(
        ipvs.apply(&desired, &ApplyOptions::default())
            .unwrap()
            .is_complete()
    );
    assert_eq!(saved(&ns), expect);

    // A manual scheduler change and a deleted destination.
    ns.run(
        "ipvsadm",
        &["-E", "-t", "192.0.2.10:80", "-s", "wlc", "-p", "30"],
    )
    .unwrap();
    ns.run(
        "ipvsadm",
        &["-d", "-t", "192.0.2.10:80", "-r", "10.0.0.2:8080"],
    )
    .unwrap();
    let p = ipvs.plan(&desired, &ApplyOptions::default()).unwrap();
    assert_eq!(
        p.to_string(),
        "-a -t 192.0.2.10:80 -r 10.0.0.2:8080 -m -w 3\n-E -t 192.0.2.10:80 -s rr\n"
    );
    assert!(
        ipvs.apply(&desired, &ApplyOptions::default())
            .unwrap()
            .is_complete()
    );
    assert_eq!(saved(&ns), expect);
}

#[test]
fn services_outside_the_scope_survive() {
    let ns = TestNs::new("api-owner").unwrap();
    let mut ipvs = open(&ns);
    ns.run("ipvsadm", &["-A", "-t", "192.0.2.99:22", "-s", "rr"])
        .unwrap();
    ns.run(
        "ipvsadm",
        &["-a", "-t", "192.0.2.99:22", "-r", "10.9.9.9:22", "-m"],
    )
    .unwrap();
    let foreign = lines("-A -t 192.0.2.99:22 -s rr\n-a -t 192.0.2.99:22 -r 10.9.9.9:22 -m -w 1\n");
    let v1 = parse("-A -t 192.0.2.1:80 -s rr\n-a -t 192.0.2.1:80 -r 10.0.0.1:80 -m -w 1\n");
    assert!(
        ipvs.apply(&v1, &ApplyOptions::default())
            .unwrap()
            .is_complete()
    );
    assert!(saved(&ns).is_superset(&foreign));

    // The service moves to another port: the old one is ours (Owned), so it goes; the
    // foreign one stays.
    let v2 = parse("-A -t 192.0.2.1:8080 -s rr\n-a -t 192.0.2.1:8080 -r 10.0.0.1:80 -m -w 1\n");
    let owned = ApplyOptions {
        scope: Scope::Owned([key("tcp 192.0.2.1:80")].into()),
        ..ApplyOptions::default()
    };
    let p = ipvs.plan(&v2, &owned).unwrap();
    assert_eq!(
        p.to_string(),
        "-A -t 192.0.2.1:8080 -s rr\n\
         -a -t 192.0.2.1:8080 -r 10.0.0.1:80 -m -w 1\n\
         -D -t 192.0.2.1:80\n"
    );
    assert!(ipvs.apply(&v2, &owned).unwrap().is_complete());
    let mut want = foreign.clone();
    want.extend(lines(&ipvs::ipvsadm::print(&v2)));
    assert_eq!(saved(&ns), want);

    // An empty desired table with the default scope touches nothing.
    let p = ipvs.apply(&Table::new(), &ApplyOptions::default()).unwrap();
    assert!(p.plan().is_empty());
    assert_eq!(saved(&ns), want);

    // Full prune removes the foreign service too.
    let prune = ApplyOptions {
        scope: Scope::FullPrune,
        ..ApplyOptions::default()
    };
    assert!(ipvs.apply(&v2, &prune).unwrap().is_complete());
    assert_eq!(saved(&ns), lines(&ipvs::ipvsadm::print(&v2)));
}

#[test]
fn settings_are_edited_in_place() {
    let ns = TestNs::new("api-edit").unwrap();
    let mut ipvs = open(&ns);
    let v1 = parse(
        "-A -u 192.0.2.5:53 -s rr\n\
         -a -u 192.0.2.5:53 -r 10.0.0.1:53 -m -w 1\n\
         -a -u 192.0.2.5:53 -r 10.0.0.2:53 -i -w 1 --tun-type ipip\n",
    );
    assert!(
        ipvs.apply(&v1, &ApplyOptions::default())
            .unwrap()
            .is_complete()
    );
    let v2 = parse(
        "-A -u 192.0.2.5:53 -s sh -p 60 -M 255.255.0.0 --pe sip -o -b sh-port\n\
         -a -u 192.0.2.5:53 -r 10.0.0.1:53 -g -w 7 -x 10 -y 5\n\
         -a -u 192.0.2.5:53 -r 10.0.0.2:53 -i -w 1 --tun-type gue --tun-port 5555 --tun-csum\n",
    );
    let report = ipvs.apply(&v2, &ApplyOptions::default()).unwrap();
    assert!(report.is_complete(), "{report}");
    assert!(
        report
            .plan()
            .ops()
            .iter()
            .all(|o| matches!(o, Op::EditService { .. } | Op::EditDestination { .. })),
        "{}",
        report.plan()
    );
    assert_eq!(report.plan().len(), 3);
    assert_eq!(ipvs.table().unwrap().table(), &v2);
    // And back: persistence, engine, one-packet and flags off.
    let report = ipvs.apply(&v1, &ApplyOptions::default()).unwrap();
    assert!(report.is_complete(), "{report}");
    assert_eq!(report.plan().len(), 3);
    assert_eq!(ipvs.table().unwrap().table(), &v1);
    assert_eq!(saved(&ns), lines(&ipvs::ipvsadm::print(&v1)));
}

#[test]
fn drain_quiesces_then_a_later_apply_removes() {
    let ns = TestNs::new("api-drain").unwrap();
    let mut ipvs = open(&ns);
    let v1 = parse(
        "-A -t 192.0.2.7:443 -s wrr\n\
         -a -t 192.0.2.7:443 -r 10.0.0.1:443 -m -w 5\n\
         -a -t 192.0.2.7:443 -r 10.0.0.2:443 -m -w 5\n",
    );
    assert!(
        ipvs.apply(&v1, &ApplyOptions::default())
            .unwrap()
            .is_complete()
    );
    let v2 = parse("-A -t 192.0.2.7:443 -s wrr\n-a -t 192.0.2.7:443 -r 10.0.0.2:443 -m -w 5\n");
    let drain = ApplyOptions {
        drain: true,
        ..ApplyOptions::default()
    };
    let report = ipvs.apply(&v2, &drain).unwrap();
    assert!(report.is_complete(), "{report}");
    let k = key("tcp 192.0.2.7:443");
    let gone = "10.0.0.1:443".parse().unwrap();
    assert_eq!(report.draining(), [(k, gone)]);
    assert!(saved(&ns).contains("-a -t 192.0.2.7:443 -r 10.0.0.1:443 -m -w 0"));
    // The caller watches the draining destination's connections...
    let observed = ipvs.table().unwrap();
    assert_eq!(
        observed.destination_stats(&k, gone).unwrap().active_conns,
        0
    );
    // ...applies with drain as often as it likes (nothing to do)...
    let again = ipvs.apply(&v2, &drain).unwrap();
    assert!(again.plan().is_empty());
    assert_eq!(again.draining(), [(k, gone)]);
    // ...and removes it after its drain period.
    let done = ipvs.apply(&v2, &ApplyOptions::default()).unwrap();
    assert_eq!(
        done.plan().to_string(),
        "-d -t 192.0.2.7:443 -r 10.0.0.1:443\n"
    );
    assert!(done.is_complete());
    assert_eq!(saved(&ns), lines(&ipvs::ipvsadm::print(&v2)));

    // A whole service that is no longer wanted drains the same way, then goes.
    let owned = ApplyOptions {
        scope: Scope::Owned([k].into()),
        drain: true,
        ..ApplyOptions::default()
    };
    let report = ipvs.apply(&Table::new(), &owned).unwrap();
    assert_eq!(
        report.plan().to_string(),
        "-e -t 192.0.2.7:443 -r 10.0.0.2:443 -m -w 0\n"
    );
    assert!(report.is_complete());
    assert_eq!(report.draining(), [(k, "10.0.0.2:443".parse().unwrap())]);
    assert!(saved(&ns).contains("-a -t 192.0.2.7:443 -r 10.0.0.2:443 -m -w 0"));
    let owned = ApplyOptions {
        drain: false,
        ..owned
    };
    let report = ipvs.apply(&Table::new(), &owned).unwrap();
    assert_eq!(report.plan().to_string(), "-D -t 192.0.2.7:443\n");
    assert!(report.is_complete());
    assert!(saved(&ns).is_empty());
}

#[test]
fn large_tables_apply_in_one_batch_and_stay_idempotent() {
    let ns = TestNs::new("api-large").unwrap();
    let mut ipvs = open(&ns);
    let text = |weight_of: &dyn Fn(u32) -> u32| {
        let mut t = String::new();
        for i in 0..500u32 {
            let vip = format!("10.{}.{}.1:80", 100 + i / 250, i % 250);
            t += &format!("-A -t {vip} -s wrr\n");
            for r in 1..=4u32 {
                t += &format!(
                    "-a -t {vip} -r 172.16.{}.{r}:8080 -m -w {}\n",
                    i % 250,
                    weight_of(i * 4 + r)
                );
            }
        }
        t
    };
    let v1 = parse(&text(&|_| 1));
    let report = ipvs.apply(&v1, &ApplyOptions::default()).unwrap();
    assert!(report.is_complete(), "{:?}", report.failures().first());
    assert_eq!(report.plan().len(), 2500);
    let got = ipvs.table().unwrap();
    for svc in v1.services() {
        assert_eq!(
            got.table().service(svc.key()),
            Some(svc),
            "service {}",
            svc.key()
        );
    }
    assert_eq!(got.table(), &v1);
    assert!(ipvs.plan(&v1, &ApplyOptions::default()).unwrap().is_empty());
    // Every other destination reweighted: exactly those edits.
    let v2 = parse(&text(&|n| 1 + n % 2));
    let report = ipvs.apply(&v2, &ApplyOptions::default()).unwrap();
    assert!(report.is_complete());
    assert_eq!(report.plan().len(), 1000);
    assert!(
        report
            .plan()
            .ops()
            .iter()
            .all(|o| matches!(o, Op::EditDestination { .. }))
    );
    assert_eq!(saved(&ns), lines(&ipvs::ipvsadm::print(&v2)));
    let again = ipvs.plan(&v2, &ApplyOptions::default()).unwrap();
    assert!(again.is_empty(), "a second plan is not empty:\n{again}");
}

fn kernel_error(e: &ApiError) -> (ErrorKind, Option<Object>) {
    match e {
        ApiError::Kernel { object, error, .. } => (error.kind, object.clone()),
        other => panic!("expected a kernel error, got {other}"),
    }
}

#[test]
fn typed_errors_name_the_operation_and_object() {
    let ns = TestNs::new("api-errors").unwrap();
    let mut ipvs = open(&ns);
    let k = key("tcp 192.0.2.8:80");
    let e = ipvs.delete_service(&k).unwrap_err();
    assert_eq!(
        kernel_error(&e),
        (ErrorKind::NoSuchService, Some(Object::Service(k)))
    );
    assert_eq!(e.kernel_kind(), Some(ErrorKind::NoSuchService));
    assert!(
        e.to_string()
            .starts_with("delete service tcp 192.0.2.8:80: "),
        "{e}"
    );

    let svc = parse("-A -t 192.0.2.8:80 -s rr\n-a -t 192.0.2.8:80 -r 10.0.0.1:80 -m -w 1\n")
        .service(&k)
        .unwrap()
        .clone();
    ipvs.add_service(&svc).unwrap();
    let e = ipvs.add_service(&svc).unwrap_err();
    assert_eq!(
        kernel_error(&e),
        (ErrorKind::AlreadyExists, Some(Object::Service(k)))
    );
    let d = svc.destinations().next().unwrap().clone();
    let e = ipvs.add_destination(&k, &d).unwrap_err();
    let dest_obj = Object::Destination {
        service: Some(k),
        addr: d.addr(),
    };
    assert_eq!(
        kernel_error(&e),
        (ErrorKind::AlreadyExists, Some(dest_obj.clone()))
    );
    let other = key("tcp 192.0.2.8:81");
    let e = ipvs.add_destination(&other, &d).unwrap_err();
    assert_eq!(kernel_error(&e).0, ErrorKind::NoSuchService);
    let e = ipvs
        .delete_destination(&k, "10.0.0.2:80".parse().unwrap())
        .unwrap_err();
    assert_eq!(kernel_error(&e).0, ErrorKind::NoSuchDestination);
    let e = ipvs
        .edit_destination(
            &k,
            &Destination::new("10.0.0.3:80".parse().unwrap(), Forward::Masquerade).unwrap(),
        )
        .unwrap_err();
    assert_eq!(kernel_error(&e).0, ErrorKind::NoSuchDestination);

    // An apply whose service the kernel refuses (no such scheduler): each failure is
    // mapped back to its operation, the rest is carried out.
    let desired = parse(
        "-A -t 192.0.2.9:80 -s nosuch\n\
         -a -t 192.0.2.9:80 -r 10.0.0.1:80 -m -w 1\n\
         -A -t 192.0.2.9:81 -s rr\n",
    );
    let report = ipvs.apply(&desired, &ApplyOptions::default()).unwrap();
    assert!(!report.is_complete());
    let failed: Vec<(usize, String, ErrorKind)> = report
        .failures()
        .iter()
        .map(|f| (f.index, f.op.to_string(), f.error.kernel_kind().unwrap()))
        .collect();
    assert_eq!(
        failed,
        [
            (
                0,
                "-A -t 192.0.2.9:80 -s nosuch".to_string(),
                ErrorKind::SchedulerNotFound
            ),
            (
                2,
                "-a -t 192.0.2.9:80 -r 10.0.0.1:80 -m -w 1".to_string(),
                ErrorKind::NoSuchService
            ),
        ]
    );
    assert_eq!(
        report
            .applied()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["-A -t 192.0.2.9:81 -s rr"]
    );
    assert!(report.to_string().contains("FAILED"), "{report}");

    // A service the model cannot represent (a scheduler flag rr does not have), made
    // through netlink: reading the table names it; apply ignores it unless in scope.
    let mut raw = IpvsSocket::open_in_netns(format!("/run/netns/{}", ns.name())).unwrap();
    let odd = ServiceAttrs::addr_key(Protocol::TCP, "192.0.2.77:80".parse().unwrap()).with_config(
        "rr",
        ServiceFlags::SCHED1,
        0,
    );
    let r = raw
        .batch(&[IpvsMessage::new_service(odd)], &BatchOptions::default())
        .unwrap();
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    let e = ipvs.table().unwrap_err();
    match &e {
        ApiError::Decode(d) => {
            assert_eq!(d.object, Some(Object::Service(key("tcp 192.0.2.77:80"))))
        }
        other => panic!("expected a decode error, got {other}"),
    }
    assert!(ipvs.service(&key("tcp 192.0.2.77:80")).is_err());
    assert!(ipvs.apply(&desired, &ApplyOptions::default()).is_ok());
    let odd_desired = parse("-A -t 192.0.2.77:80 -s rr\n");
    assert!(matches!(
        ipvs.apply(&odd_desired, &ApplyOptions::default()),
        Err(ApiError::Decode(_))
    ));
    // Full prune deletes it (only its key is needed).
    let prune = ApplyOptions {
        scope: Scope::FullPrune,
        ..ApplyOptions::default()
    };
    let p = ipvs.plan(&Table::new(), &prune).unwrap();
    assert!(p.to_string().contains("-D -t 192.0.2.77:80\n"), "{p}");
    assert!(ipvs.apply(&Table::new(), &prune).unwrap().is_complete());
    assert!(saved(&ns).is_empty());
}

#[test]
fn service_zero_flush_timeouts_info() {
    let ns = TestNs::new("api-misc").unwrap();
    let mut ipvs = open(&ns);
    let t = parse("-A -t 192.0.2.3:80 -s rr\n-a -t 192.0.2.3:80 -r 10.0.0.1:80 -m -w 2\n");
    ipvs.apply(&t, &ApplyOptions::default()).unwrap();
    let k = key("tcp 192.0.2.3:80");
    // A second handle on the same namespace, by descriptor, sees the same table.
    let nsfile = std::fs::File::open(format!("/run/netns/{}", ns.name())).unwrap();
    let mut other = Ipvs::open_in_netns_fd(std::os::fd::AsFd::as_fd(&nsfile)).unwrap();
    assert_eq!(other.table().unwrap().table(), &t);
    let (svc, stats) = ipvs.service(&k).unwrap().unwrap();
    assert_eq!(&svc, t.service(&k).unwrap());
    assert_eq!(stats.destinations.len(), 1);
    assert_eq!(ipvs.service(&key("tcp 192.0.2.3:81")).unwrap(), None);
    ipvs.zero(Some(&k)).unwrap();
    ipvs.zero(None).unwrap();
    let e = ipvs.zero(Some(&key("udp 192.0.2.3:80"))).unwrap_err();
    assert_eq!(kernel_error(&e).0, ErrorKind::NoSuchService);

    let edited = svc
        .to_builder()
        .scheduler(ipvs::Scheduler::WeightedRoundRobin)
        .build()
        .unwrap();
    ipvs.edit_service(&edited).unwrap();
    assert_eq!(ipvs.service(&k).unwrap().unwrap().0, edited);

    let timeouts = Timeouts::new(
        Duration::from_secs(901),
        Duration::from_secs(121),
        Duration::from_secs(301),
    )
    .unwrap();
    ipvs.set_timeouts(&timeouts).unwrap();
    assert_eq!(ipvs.timeouts().unwrap(), timeouts);
    // Zero leaves a timeout unchanged.
    let only_udp = Timeouts::new(Duration::ZERO, Duration::ZERO, Duration::from_secs(55)).unwrap();
    ipvs.set_timeouts(&only_udp).unwrap();
    assert_eq!(ipvs.timeouts().unwrap().tcp(), Duration::from_secs(901));
    assert_eq!(ipvs.timeouts().unwrap().udp(), Duration::from_secs(55));

    let info = ipvs.info().unwrap();
    assert_eq!(info.version.major(), 1);
    assert!(info.conn_table_size > 0);

    ipvs.delete_service(&k).unwrap();
    ipvs.add_service(t.service(&k).unwrap()).unwrap();
    ipvs.flush().unwrap();
    assert!(ipvs.table().unwrap().table().is_empty());
}

#[test]
fn sync_daemon_start_list_stop() {
    let ns = TestNs::new("api-daemon").unwrap();
    let mut ipvs = open(&ns);
    assert!(ipvs.daemons().unwrap().is_empty());
    let e = ipvs.stop_daemon(SyncState::Backup).unwrap_err();
    assert_eq!(
        kernel_error(&e),
        (ErrorKind::NoSuchDaemon, Some(Object::SyncDaemon))
    );
    ns.run("ip", &["link", "add", "sync0", "type", "dummy"])
        .unwrap();
    ns.run("ip", &["link", "set", "sync0", "up"]).unwrap();
    let d = SyncDaemon::new(SyncState::Master, "sync0", 42)
        .unwrap()
        .with_mcast_group("239.1.2.3".parse().unwrap())
        .unwrap()
        .with_mcast_port(8850)
        .unwrap()
        .with_mcast_ttl(2)
        .unwrap()
        .with_sync_maxlen(1400)
        .unwrap();
    ipvs.start_daemon(&d).unwrap();
    let running = ipvs.daemons().unwrap();
    assert_eq!(running, [d]);
    assert!(
        ns.run("ipvsadm", &["-L", "--daemon"])
            .unwrap()
            .contains("master sync daemon (mcast=sync0, syncid=42"),
    );
    // The kernel leaves a stop unanswered when the sync thread has not run yet
    // (-EINTR from kthread_stop, and netlink sends nothing for -EINTR); stop_daemon
    // checks the daemon list instead of failing or hanging. Start and stop at once, a
    // few times, to hit that case.
    let t = std::time::Instant::now();
    let r = ipvs.stop_daemon(SyncState::Master);
    assert!(r.is_ok(), "{r:?} after {:?}", t.elapsed());
    let backup = SyncDaemon::new(SyncState::Backup, "sync0", 43).unwrap();
    for _ in 0..5 {
        ipvs.start_daemon(&backup).unwrap();
        ipvs.stop_daemon(SyncState::Backup).unwrap();
    }
    assert!(ipvs.daemons().unwrap().is_empty());
}

#[test]
fn async_handle_applies_the_same() {
    let ns = TestNs::new("api-async").unwrap();
    let path = format!("/run/netns/{}", ns.name());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut ipvs = AsyncIpvs::open_in_netns(&path).unwrap();
        let desired = parse(EVERYTHING);
        let report = ipvs
            .apply(&desired, &ApplyOptions::default())
            .await
            .unwrap();
        assert!(report.is_complete(), "{report}");
        assert_eq!(ipvs.table().await.unwrap().table(), &desired);
        let again = ipvs.plan(&desired, &ApplyOptions::default()).await.unwrap();
        assert!(again.is_empty(), "{again}");
        let k = key("fwmark 11");
        assert!(ipvs.service(&k).await.unwrap().is_some());
        ipvs.delete_service(&k).await.unwrap();
        let e = ipvs.delete_service(&k).await.unwrap_err();
        assert_eq!(kernel_error(&e).0, ErrorKind::NoSuchService);
        let p = ipvs.plan(&desired, &ApplyOptions::default()).await.unwrap();
        assert_eq!(
            p.to_string(),
            "-A -f 11 -s sh -b sh-fallback,sh-port\n-a -f 11 -r 10.0.1.11:0 -g -w 3\n"
        );
        assert!(
            ipvs.apply(&desired, &ApplyOptions::default())
                .await
                .unwrap()
                .is_complete()
        );
        assert!(ipvs.info().await.unwrap().conn_table_size > 0);
    });
    assert_eq!(
        saved(&ns),
        lines(&EVERYTHING.replace(" -x 1000 -y 100", ""))
    );
}

/// `apply` while `ipvsadm` writes to the same namespace at the same time: to foreign
/// services (never touched by us) and to our own (a destination deleted, a weight
/// changed, the whole service deleted by hand). No apply fails as a whole; a single
/// operation may lose a race (and is then reported, typed, with its object); once the
/// writer stops, one apply converges, and the foreign services are exactly what the
/// writer left.
#[test]
fn apply_with_a_concurrent_ipvsadm_writer() {
    let ns = TestNs::new("api-race").unwrap();
    let mut ipvs = open(&ns);
    let mut ours = String::from("-A -t 192.0.2.1:80 -s wrr\n");
    for i in 1..=20 {
        ours.push_str(&format!("-a -t 192.0.2.1:80 -r 10.0.0.{i}:80 -m -w {i}\n"));
    }
    let desired = parse(&ours);
    assert!(
        ipvs.apply(&desired, &ApplyOptions::default())
            .unwrap()
            .is_complete()
    );

    let rounds = 60;
    let writer = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut foreign = BTreeSet::new();
            for r in 0..rounds {
                let svc = format!("192.0.2.200:{}", 1000 + r);
                let cmds = format!(
                    "-A -t {svc} -s rr\n-a -t {svc} -r 10.9.9.9:{} -m -w 1\n\
                     -d -t 192.0.2.1:80 -r 10.0.0.{}:80\n\
                     -e -t 192.0.2.1:80 -r 10.0.0.{}:80 -m -w 999\n",
                    1000 + r,
                    1 + r % 20,
                    1 + (r + 7) % 20,
                );
                // ipvsadm -R stops at the first failing line: each line on its own.
                for line in cmds.lines() {
                    let _ = ns.run_with_input("ipvsadm", &["-R"], &format!("{line}\n"));
                }
                foreign.insert(format!("-A -t {svc} -s rr"));
                foreign.insert(format!("-a -t {svc} -r 10.9.9.9:{} -m -w 1", 1000 + r));
                if r % 15 == 14 {
                    let _ = ns.run("ipvsadm", &["-D", "-t", "192.0.2.1:80"]);
                }
            }
            foreign
        });
        let mut applies = 0;
        let mut op_failures = 0;
        while !writer.is_finished() {
            let report = ipvs
                .apply(&desired, &ApplyOptions::default())
                .unwrap_or_else(|e| panic!("apply failed as a whole during the race: {e}"));
            for f in report.failures() {
                // A lost race: typed, with the object it was about.
                assert!(f.error.kernel_kind().is_some(), "{}", f.error);
                assert!(f.error.to_string().contains("192.0.2.1:80"), "{}", f.error);
                op_failures += 1;
            }
            applies += 1;
        }
        eprintln!("{applies} applies during {rounds} writer rounds, {op_failures} lost races");
        assert!(applies >= 2, "the writer finished before a second apply");
        writer.join().unwrap()
    });
    // Converge once the writer is gone: a second apply has nothing to do.
    assert!(
        ipvs.apply(&desired, &ApplyOptions::default())
            .unwrap()
            .is_complete()
    );
    assert!(
        ipvs.plan(&desired, &ApplyOptions::default())
            .unwrap()
            .is_empty()
    );
    let mut want = writer;
    want.extend(lines(&ours));
    assert_eq!(saved(&ns), want);
}
