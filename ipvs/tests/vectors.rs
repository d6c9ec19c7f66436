//! Real `ipvsadm -S -n` outputs (ipvsadm 1.31, kernel 6.1, captured in the kernel lab by
//! `tests/ipvsadm/capture.sh`): print(parse(x)) == x, and the commands that produced
//! them parse to the same table.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use ipvs::ipvsadm::{self, ParseErrorKind};

fn read(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/ipvsadm")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Checks print(parse(save)) == save, after taking out the lines the model rejects on
/// purpose (each must be there and must fail on its own with the expected message).
fn roundtrip(case: &str, rejected: &[(&str, &str)]) {
    let save = read(&format!("{case}.save"));
    let mut kept = save.clone();
    for (line, message) in rejected {
        let with_nl = format!("{line}\n");
        assert!(
            kept.contains(&with_nl),
            "{case}: {line:?} not in the vector"
        );
        kept = kept.replacen(&with_nl, "", 1);
        let err = ipvsadm::parse(line).unwrap_err();
        assert!(
            err.to_string().contains(message),
            "{case}: {line:?}: {err} does not mention {message:?}"
        );
    }
    let table = ipvsadm::parse(&kept).unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_eq!(ipvsadm::print(&table), kept, "{case}");
}

/// Parses the commands that produced a vector (without those ipvsadm rejected, and
/// without `skip`ped ones) and checks they give the saved table (without the lines
/// holding a `skip`ped text).
fn commands_give_save(case: &str, skip: &[&str]) {
    let cmds = read(&format!("{case}.cmds"));
    let lines: Vec<&str> = cmds.lines().collect();
    let mut input = String::new();
    for (i, line) in lines.iter().enumerate() {
        let failed = lines.get(i + 1).is_some_and(|n| n.starts_with("# exit"));
        if line.starts_with('#') || failed || skip.iter().any(|s| line.contains(s)) {
            continue;
        }
        input.push_str(line);
        input.push('\n');
    }
    let table = ipvsadm::parse(&input).unwrap_or_else(|e| panic!("{case}: {e}"));
    let mut save = read(&format!("{case}.save"));
    for s in skip {
        save = save
            .lines()
            .filter(|l| !l.contains(s))
            .map(|l| format!("{l}\n"))
            .collect();
    }
    let saved = ipvsadm::parse(&save).unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_eq!(table, saved, "{case}");
}

#[test]
fn basic() {
    roundtrip("basic", &[]);
    commands_give_save("basic", &[]);
}

#[test]
fn schedulers() {
    roundtrip("schedulers", &[]);
    commands_give_save("schedulers", &[]);
}

#[test]
fn sched_flags() {
    roundtrip(
        "sched_flags",
        &[
            (
                "-A -t 192.0.2.1:84 -s rr -b flag-1,flag-2,flag-3",
                "scheduler flag flag-1 is not valid with scheduler rr",
            ),
            // ipvsadm prints `-b ` and nothing for flag-3 on sh.
            ("-A -t 192.0.2.1:85 -s sh -b ", "`-b`: missing argument"),
        ],
    );
    commands_give_save("sched_flags", &[":84 ", ":85 ", ":86 ", ":88 "]);
}

#[test]
fn persistence() {
    roundtrip(
        "persistence",
        &[
            (
                "-A -u 192.0.2.1:5061 -s wlc --pe sip",
                "`--pe`: a persistence engine needs persistence (-p)",
            ),
            // The kernel takes a non-contiguous mask; the model does not.
            (
                "-A -t 192.0.2.1:85 -s wlc -p 60 -M 255.0.255.0",
                "`255.0.255.0`: service tcp 192.0.2.1:85: persistence netmask 255.0.255.0 is not contiguous",
            ),
        ],
    );
    commands_give_save("persistence", &[":5061 ", ":85 "]);
}

#[test]
fn destinations() {
    roundtrip("destinations", &[]);
    // ipvsadm replaces the port of -g/-i real servers by the service's (we keep it), and
    // does not save thresholds.
    commands_give_save("destinations", &["10.0.0.3:", "127.0.0.1:", "10.0.0.5:"]);
}

#[test]
fn tunnels() {
    roundtrip("tunnels", &[]);
    commands_give_save("tunnels", &[]);
}

#[test]
fn protocols() {
    roundtrip("protocols", &[]);
    commands_give_save("protocols", &[]);
}

#[test]
fn ordering() {
    roundtrip("ordering", &[]);
    commands_give_save("ordering", &[]);
}

#[test]
fn task_example() {
    let text = "\
-A -t 192.0.2.20:443 -s wrr -p 300 -M 255.255.255.0
-a -t 192.0.2.20:443 -r 10.0.0.21:443 -g -w 10
-a -t 192.0.2.20:443 -r 10.0.0.22:443 -i -w 20 --tun-type ipip
-A -u [2001:db8::53]:53 -s sh -b sh-port
-a -u [2001:db8::53]:53 -r [2001:db8:1::1]:53 -m -w 1
-A -f 7 -s lc
-a -f 7 -r 10.0.0.31:0 -g -w 5
-A -t [2001:db8::10]:443 -s mh -p 300 -b mh-port
-a -t [2001:db8::10]:443 -r [2001:db8:1::11]:443 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum
";
    let t = ipvsadm::parse(text).unwrap();
    // ipvsadm sorts TCP before UDP within a family.
    let expected = "\
-A -t 192.0.2.20:443 -s wrr -p 300 -M 255.255.255.0
-a -t 192.0.2.20:443 -r 10.0.0.21:443 -g -w 10
-a -t 192.0.2.20:443 -r 10.0.0.22:443 -i -w 20 --tun-type ipip
-A -t [2001:db8::10]:443 -s mh -p 300 -b mh-port
-a -t [2001:db8::10]:443 -r [2001:db8:1::11]:443 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum
-A -u [2001:db8::53]:53 -s sh -b sh-port
-a -u [2001:db8::53]:53 -r [2001:db8:1::1]:53 -m -w 1
-A -f 7 -s lc
-a -f 7 -r 10.0.0.31:0 -g -w 5
";
    assert_eq!(ipvsadm::print(&t), expected);
    assert_eq!(
        read("basic.save"),
        expected.replace("-p 300 -b", "-p 360 -b")
    );
}

#[test]
fn rejected_line_errors_are_typed() {
    let e = ipvsadm::parse("-A -t 192.0.2.1:84 -s rr -b flag-1").unwrap_err();
    assert_eq!(e.line, 1);
    assert_eq!(e.token.as_deref(), Some("flag-1"));
    assert!(matches!(e.kind, ParseErrorKind::Invalid(_)));
}

#[test]
fn forwarding_set_over_netlink() {
    // Local node (1) prints as -g, bypass (4) and the meaningless 5 as `(null)`; the
    // port of a direct-routing server set over netlink is kept.
    roundtrip("forwarding", &[]);
    let t = ipvsadm::parse(&read("forwarding.save")).unwrap();
    let fwd: Vec<ipvs::Forward> = t
        .services()
        .next()
        .unwrap()
        .destinations()
        .map(ipvs::Destination::forward)
        .collect();
    assert_eq!(
        fwd,
        [
            ipvs::Forward::DirectRoute,
            ipvs::Forward::Bypass,
            ipvs::Forward::DirectRoute,
            ipvs::Forward::IPIP,
            ipvs::Forward::Bypass
        ]
    );
}
