//! `announce: bgp` on the host, in network namespaces (no IPVS needed): the routes of
//! announced addresses in their table ([`RouteTable`]), and the example BIRD
//! configurations of `examples/ecmp-bgp/`: a router namespace running BIRD with ECMP and
//! three director namespaces running BIRD that export those routes. The whole design with
//! IPVS, keepalive-d and traffic runs in the lab (`integration/tests/kernel/ecmp_bgp.rs`).
//!
//! Needs root and BIRD 2 (`/usr/sbin/bird`, Debian's `bird2`; `cargo lab setup` installs it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ipvs_integration::bird::{Bird, wait_next_hops};
use ipvs_integration::netns::TestNs;
use ipvs_integration::vrrp_bench::Segment;
use keepalive_d::announce::route::RouteTable;
use keepalive_d::config::BgpSettings;

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 254);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x254);

fn set(addrs: &[&str]) -> BTreeSet<IpAddr> {
    addrs.iter().map(|a| a.parse().unwrap()).collect()
}

fn example(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/ecmp-bgp")
        .join(file)
}

/// `ip -4|-6 route show table 100` in `ns`, one route per line.
fn table(ns: &TestNs, family: &str) -> String {
    ns.run("ip", &[family, "route", "show", "table", "100"])
        .unwrap()
}

#[test]
fn routes_follow_sync_and_leave_other_routes_alone() {
    let ns = TestNs::new("announce-rt").unwrap();
    let mut routes = ns
        .enter(|| RouteTable::open(BgpSettings::default()))
        .unwrap()
        .unwrap();
    // A route of another protocol in the same table, and one of ours in another table.
    ns.run(
        "ip",
        &[
            "route",
            "add",
            "10.9.9.9/32",
            "dev",
            "lo",
            "table",
            "100",
            "proto",
            "static",
        ],
    )
    .unwrap();
    ns.run(
        "ip",
        &[
            "route",
            "add",
            "10.0.0.102/32",
            "dev",
            "lo",
            "table",
            "101",
            "proto",
            "77",
        ],
    )
    .unwrap();

    let want = set(&["10.0.0.100", "10.0.0.101", "2001:db8::100"]);
    let (report, result) = routes.sync(&want);
    result.unwrap();
    assert_eq!(report.added.len(), 3, "{report:?}");
    assert!(report.removed.is_empty());
    let v4 = table(&ns, "-4");
    assert!(v4.contains("10.0.0.100 dev lo proto 77 scope link"), "{v4}");
    assert!(v4.contains("10.0.0.101 dev lo proto 77 scope link"), "{v4}");
    let v6 = table(&ns, "-6");
    assert!(v6.contains("2001:db8::100 dev lo proto 77"), "{v6}");
    assert_eq!(routes.installed().unwrap(), want);

    // Again: nothing to do.
    let (report, result) = routes.sync(&want);
    result.unwrap();
    assert_eq!((report.added.len(), report.removed.len()), (0, 0));

    // One withdrawn; one left by an earlier run (ours by table and protocol) removed too.
    ns.run(
        "ip",
        &[
            "route",
            "add",
            "10.0.0.103/32",
            "dev",
            "lo",
            "table",
            "100",
            "proto",
            "77",
        ],
    )
    .unwrap();
    let (report, result) = routes.sync(&set(&["10.0.0.100", "2001:db8::100"]));
    result.unwrap();
    let removed: BTreeSet<IpAddr> = report.removed.iter().copied().collect();
    assert_eq!(removed, set(&["10.0.0.101", "10.0.0.103"]));
    let v4 = table(&ns, "-4");
    assert!(!v4.contains("10.0.0.101"), "{v4}");
    assert!(v4.contains("10.9.9.9 dev lo proto static"), "{v4}");
    let other = ns
        .run("ip", &["-4", "route", "show", "table", "101"])
        .unwrap();
    assert!(other.contains("10.0.0.102"), "{other}");

    // Everything withdrawn (the daemon's stop).
    let (_, result) = routes.sync(&BTreeSet::new());
    result.unwrap();
    assert!(routes.installed().unwrap().is_empty());
    assert!(!table(&ns, "-6").contains("2001:db8::100"));
}

/// A router and three directors on one segment, each running the example's BIRD
/// configuration; the directors' routes come and go as keepalive-d's would.
#[test]
fn bird_router_has_one_multipath_route_over_the_announcing_directors() {
    run_example(None);
}

/// The same with the example's BFD lines enabled (the `#BFD ` prefixes removed, as its
/// README says): a director that dies without a word leaves the route after BFD's
/// detection time (3 x 100 ms), not the BGP hold time (3 s).
#[test]
fn with_bfd_a_silent_director_leaves_the_route_in_bfd_time() {
    let dir = std::env::temp_dir().join(format!("announce-bfd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["bird-router.conf", "bird-director.conf"] {
        let text = std::fs::read_to_string(example(file)).unwrap();
        assert!(text.contains("#BFD "), "{file} has no #BFD lines");
        std::fs::write(dir.join(file), text.replace("#BFD ", "")).unwrap();
    }
    run_example(Some(&dir));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The example's BIRD files, from `bfd_dir` (BFD enabled) or as shipped. Every step is
/// checked for an IPv4 and an IPv6 virtual IP (each family over a BGP session of its
/// own, as in the files).
fn run_example(bfd_dir: Option<&std::path::Path>) {
    let conf = |file: &str| bfd_dir.map_or_else(|| example(file), |d| d.join(file));
    let seg = Segment::new(if bfd_dir.is_some() { "bfd" } else { "bgp" }, 4).unwrap();
    let router = &seg.nodes[0].ns;
    let directors: Vec<&TestNs> = seg.nodes[1..].iter().map(|n| &n.ns).collect();
    let addr4 = |i: usize| IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1 + i as u8));
    let addr6 = |i: usize| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1 + i as u16));
    for (ns, v4, v6) in std::iter::once((router, IpAddr::V4(ROUTER), IpAddr::V6(ROUTER6))).chain(
        directors
            .iter()
            .enumerate()
            .map(|(i, d)| (*d, addr4(i), addr6(i))),
    ) {
        ns.run("ip", &["addr", "add", &format!("{v4}/24"), "dev", "eth0"])
            .unwrap();
        ns.run(
            "ip",
            &["addr", "add", &format!("{v6}/64"), "dev", "eth0", "nodad"],
        )
        .unwrap();
    }
    let router_bird = Bird::start(router, &conf("bird-router.conf")).unwrap();
    let mut birds: Vec<Option<Bird>> = directors
        .iter()
        .map(|d| Some(Bird::start(d, &conf("bird-director.conf")).unwrap()))
        .collect();
    let mut tables: Vec<RouteTable> = directors
        .iter()
        .map(|d| {
            d.enter(|| RouteTable::open(BgpSettings::default()))
                .unwrap()
                .unwrap()
        })
        .collect();
    let vips = set(&["10.0.0.100", "2001:db8::100"]);
    for t in &mut tables {
        t.sync(&vips).1.unwrap();
    }
    let logs = |birds: &[Option<Bird>]| {
        let mut s = format!("router:\n{}", router_bird.log());
        for b in birds.iter().flatten() {
            s.push_str(&format!("director:\n{}", b.log()));
        }
        s
    };
    // Until the router's routes to both virtual IPs go exactly over the directors
    // `which`; how long until both are.
    let wait = |which: &[usize], within: Duration, birds: &[Option<Bird>]| {
        let start = Instant::now();
        let v4: Vec<IpAddr> = which.iter().map(|&i| addr4(i)).collect();
        let v6: Vec<IpAddr> = which.iter().map(|&i| addr6(i)).collect();
        wait_next_hops(router, IpAddr::V4(VIP), &v4, within)
            .unwrap_or_else(|e| panic!("{e}\n{}", logs(birds)));
        wait_next_hops(router, IpAddr::V6(VIP6), &v6, within)
            .unwrap_or_else(|e| panic!("{e}\n{}", logs(birds)));
        start.elapsed()
    };
    let up = wait(&[0, 1, 2], Duration::from_secs(30), &birds);
    println!("three directors in both multipath routes {up:?} after the routes were added");

    // Quorum lost on director 2: its routes are removed, BIRD withdraws them.
    tables[1].sync(&BTreeSet::new()).1.unwrap();
    let withdrawn = wait(&[0, 2], Duration::from_secs(5), &birds);
    println!("withdrawn routes: director gone from the router's routes in {withdrawn:?}");
    assert!(withdrawn < Duration::from_secs(2), "{withdrawn:?}");

    // Back in quorum.
    tables[1].sync(&vips).1.unwrap();
    wait(&[0, 1, 2], Duration::from_secs(10), &birds);

    // Director 3's node dies without a word (its link goes down). Without BFD the
    // router's hold timer (3 s) notices; with BFD (3 x 100 ms), well before, once its
    // sessions are Up (BIRD starts BFD after a BGP session is established).
    if bfd_dir.is_some() {
        let peers: Vec<IpAddr> = (0..3).flat_map(|i| [addr4(i), addr6(i)]).collect();
        let bfd = router_bird
            .wait_bfd_up(router, &peers, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{e}\n{}", logs(&birds)));
        println!("BFD sessions with the three directors Up {bfd:?} later");
    }
    directors[2]
        .run("ip", &["link", "set", "eth0", "down"])
        .unwrap();
    let dead = wait(&[0, 1], Duration::from_secs(10), &birds);
    if bfd_dir.is_some() {
        println!("silent director gone from the router's routes in {dead:?} (BFD 3 x 100 ms)");
        assert!(
            dead < Duration::from_millis(1500),
            "{dead:?}: BGP's hold time rather than BFD's detection time?\n{}",
            logs(&birds)
        );
    } else {
        println!("silent director gone from the router's routes in {dead:?} (hold time 3 s)");
        assert!(dead <= Duration::from_secs(5), "{dead:?}");
    }

    // Director 1's BIRD stops (SIGTERM): it closes its sessions, the routes go at once.
    if let Some(b) = birds[0].take() {
        b.stop(Duration::from_secs(5));
    }
    let stopped = wait(&[1], Duration::from_secs(5), &birds);
    println!("stopped BIRD: director gone from the router's routes in {stopped:?}");
    assert!(stopped < Duration::from_secs(2), "{stopped:?}");
}
