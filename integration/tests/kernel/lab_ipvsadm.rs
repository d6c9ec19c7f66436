//! The lab itself: ipvsadm against the real kernel, namespace isolation, parallel tests.

use ipvs_integration::netns::TestNs;
use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};

fn lines(s: &str) -> BTreeSet<String> {
    s.lines().map(str::to_string).collect()
}

#[test]
fn ipvsadm_service_and_destination_read_back() {
    let ns = TestNs::new("rw").unwrap();
    ns.run("ipvsadm", &["-A", "-t", "192.0.2.10:80", "-s", "rr"])
        .unwrap();
    ns.run(
        "ipvsadm",
        &[
            "-a",
            "-t",
            "192.0.2.10:80",
            "-r",
            "10.0.0.11:8080",
            "-m",
            "-w",
            "3",
        ],
    )
    .unwrap();
    let saved = ns.run("ipvsadm", &["-S", "-n"]).unwrap();
    assert_eq!(
        saved,
        "-A -t 192.0.2.10:80 -s rr\n-a -t 192.0.2.10:80 -r 10.0.0.11:8080 -m -w 3\n"
    );
}

#[test]
fn ipvsadm_restore_round_trips_every_kind_of_service() {
    let ns = TestNs::new("restore").unwrap();
    let table = "\
-A -t 192.0.2.20:443 -s wrr -p 300 -M 255.255.255.0
-a -t 192.0.2.20:443 -r 10.0.0.21:443 -g -w 10
-a -t 192.0.2.20:443 -r 10.0.0.22:443 -i -w 20 --tun-type ipip
-A -u [2001:db8::53]:53 -s sh -b sh-port
-a -u [2001:db8::53]:53 -r [2001:db8:1::1]:53 -m -w 1
-A -f 7 -s lc
-a -f 7 -r 10.0.0.31:0 -g -w 5
";
    ns.run_with_input("ipvsadm", &["-R"], table).unwrap();
    let saved = ns.run("ipvsadm", &["-S", "-n"]).unwrap();
    // The kernel dumps services in hash order: compare the lines as sets, and check that
    // every destination line follows its service line.
    assert_eq!(lines(&saved), lines(table), "saved:\n{saved}");
    let mut current = String::new();
    for line in saved.lines() {
        if line.starts_with("-A ") {
            current = line
                .split(" -s ")
                .next()
                .unwrap()
                .trim_start_matches("-A ")
                .to_string();
        } else {
            assert!(line.contains(&current), "{line} is not under {current}");
        }
    }
}

#[test]
fn namespaces_are_isolated() {
    let a = TestNs::new("iso-a").unwrap();
    let b = TestNs::new("iso-b").unwrap();
    a.run("ipvsadm", &["-A", "-t", "198.51.100.1:80", "-s", "wlc"])
        .unwrap();
    a.run(
        "ipvsadm",
        &["-a", "-t", "198.51.100.1:80", "-r", "10.1.0.1:80", "-m"],
    )
    .unwrap();
    assert_eq!(
        b.run("ipvsadm", &["-S", "-n"]).unwrap(),
        "",
        "b sees a's table"
    );
    assert_eq!(a.run("ipvsadm", &["-S", "-n"]).unwrap().lines().count(), 2);
    // The namespace the tests run in (the VM's, or the director box's) does not see it.
    let root = std::process::Command::new("ipvsadm")
        .args(["-S", "-n"])
        .output()
        .unwrap();
    assert!(root.status.success());
    assert!(!String::from_utf8_lossy(&root.stdout).contains("198.51.100.1"));
    // Flushing b leaves a alone.
    b.run("ipvsadm", &["-C"]).unwrap();
    assert_eq!(a.run("ipvsadm", &["-S", "-n"]).unwrap().lines().count(), 2);
}

#[test]
fn parallel_tests_do_not_see_each_other() {
    const SERVICES: u16 = 50;
    let barrier = Arc::new(Barrier::new(2));
    let workers: Vec<_> = (0..2u16)
        .map(|w| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let ns = TestNs::new(&format!("par{w}")).unwrap();
                let mut table = String::new();
                for i in 0..SERVICES {
                    let vip = format!("203.0.113.{}:{}", w + 1, 1000 + i);
                    table.push_str(&format!("-A -t {vip} -s rr\n"));
                    table.push_str(&format!("-a -t {vip} -r 10.2.{w}.1:80 -m -w 1\n"));
                }
                barrier.wait();
                ns.run_with_input("ipvsadm", &["-R"], &table).unwrap();
                barrier.wait();
                let saved = ns.run("ipvsadm", &["-S", "-n"]).unwrap();
                assert_eq!(
                    lines(&saved),
                    lines(&table),
                    "worker {w} sees a foreign table"
                );
                ns.run("ipvsadm", &["-C"]).unwrap();
                assert_eq!(ns.run("ipvsadm", &["-S", "-n"]).unwrap(), "");
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}
