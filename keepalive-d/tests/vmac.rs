//! Virtual MAC interfaces (`vmac`, keepalived's `use_vmac`) on the host, in network
//! namespaces: nodes on a bridge (`ipvs_integration::vrrp_bench::Segment`), every frame
//! captured on the bridge's ports, `keepalive-d run` daemons and Debian's keepalived, and
//! a client node whose neighbour table shows which MAC address it uses for the virtual
//! IP. The virtual MAC must carry the adverts and the gratuitous ARPs / NAs, answer ARP
//! for the virtual IP, and move with the Master, so the client's neighbour entry never
//! changes.
//!
//! A SIGKILLed daemon leaves its node's kernel holding the virtual IP on the macvlan (as
//! keepalived does): the tests then take that node's link down, as if the node had died,
//! so that it answers nothing more on the segment.
//!
//! Needs root and keepalived in `PATH`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv6Addr, UdpSocket};
use std::process::Stdio;
use std::time::Duration;

use ipvs_integration::daemon::Daemon;
use ipvs_integration::netns::TestNs;
use ipvs_integration::vrrp_bench::{
    Keepalived, Segment, SegmentNode, WireCapture, WireFrame, advert, gratuitous_arp, wait_for,
};

const BIN: &str = env!("CARGO_BIN_EXE_keepalive-d");
const VIP: &str = "192.0.2.100";
const VIP6: &str = "2001:db8::100";
const VMAC: [u8; 6] = [0, 0, 0x5e, 0, 1, 51];
const VMAC6: [u8; 6] = [0, 0, 0x5e, 0, 2, 51];
const VMAC_TEXT: &str = "00:00:5e:00:01:33";
const VMAC6_TEXT: &str = "00:00:5e:00:02:33";

fn config(priority: u8, extra: &str) -> String {
    format!(
        "vrrp_instances:\n  - name: VI\n    interface: eth0\n    vrid: 51\n    priority: {priority}\n    \
         advert_interval: 100ms\n{extra}"
    )
}

/// IPv4 multicast, `vmac: true`.
fn v4(priority: u8) -> String {
    config(
        priority,
        &format!("    virtual_ips: [{VIP}/24]\n    vmac: true\n"),
    )
}

/// Stops `d` (SIGTERM): a clean exit, and its macvlan `dev` gone from `ns`. Its log.
fn stop_removes(d: Daemon, ns: &TestNs, dev: &str) -> String {
    let (code, log) = d.stop(Duration::from_secs(5)).unwrap();
    assert_eq!(code, Some(0), "{log}");
    assert!(link(ns, dev).is_none(), "{dev} left behind:\n{log}");
    log
}

fn start(node: &SegmentNode, config: &str) -> Daemon {
    Daemon::start_exe(BIN, &node.ns, config, "info").unwrap()
}

fn addrs(ns: &TestNs, dev: &str) -> String {
    ns.run("ip", &["-o", "addr", "show", "dev", dev])
        .unwrap_or_default()
}

fn has_addr(ns: &TestNs, dev: &str, addr: &str) -> bool {
    addrs(ns, dev).contains(&format!(" {addr}/"))
}

fn link(ns: &TestNs, dev: &str) -> Option<String> {
    ns.run("ip", &["-d", "link", "show", "dev", dev]).ok()
}

fn sysctl(ns: &TestNs, key: &str) -> String {
    ns.run("sysctl", &["-n", key]).unwrap().trim().to_owned()
}

/// The IPv4 ARP settings of `eth0`: `arp_ignore`, `arp_filter`, `arp_announce`.
fn parent_arp(ns: &TestNs) -> [String; 3] {
    ["arp_ignore", "arp_filter", "arp_announce"]
        .map(|k| sysctl(ns, &format!("net.ipv4.conf.eth0.{k}")))
}

/// The MAC address `ns` has in its neighbour table for `ip`, if resolved.
fn neighbour(ns: &TestNs, ip: &str) -> Option<String> {
    let out = ns.run("ip", &["neigh", "show", ip]).ok()?;
    let mut words = out.split_whitespace();
    words.find(|w| *w == "lladdr")?;
    words.next().map(str::to_owned)
}

/// Sends a UDP datagram to `ip` from `ns` (the answer does not matter: it makes `ns`
/// resolve `ip`, and the node holding `ip` answer from it).
fn poke(ns: &TestNs, ip: &str) {
    let ip: IpAddr = ip.parse().unwrap();
    ns.enter(|| {
        let any: IpAddr = if ip.is_ipv4() {
            [0, 0, 0, 0].into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        let s = UdpSocket::bind((any, 0)).unwrap();
        let _ = s.send_to(b"x", (ip, 9));
    })
    .unwrap();
}

/// Pokes `ip` from `ns` until its neighbour entry is resolved; that MAC.
fn resolve(ns: &TestNs, ip: &str) -> String {
    let mut mac = None;
    wait_for(Duration::from_secs(3), || {
        poke(ns, ip);
        std::thread::sleep(Duration::from_millis(50));
        mac = neighbour(ns, ip);
        mac.is_some()
    });
    mac.unwrap_or_else(|| panic!("{ip} not resolved"))
}

/// Packets received by `dev` in `ns`.
fn rx_packets(ns: &TestNs, dev: &str) -> u64 {
    let out = ns.run("ip", &["-s", "link", "show", "dev", dev]).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.trim_start().starts_with("RX:"))
        .unwrap();
    lines[i + 1]
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

/// Frames that came in on `port` since `from` (an index into the capture).
fn from_port(frames: &[WireFrame], port: u32) -> Vec<&WireFrame> {
    frames.iter().filter(|f| f.ifindex == port).collect()
}

fn adverts<'a>(frames: &[&'a WireFrame]) -> Vec<&'a WireFrame> {
    frames
        .iter()
        .copied()
        .filter(|f| advert(&f.data).is_some_and(|a| a.vrid == 51 && a.priority > 0))
        .collect()
}

/// What a node that took over sent on its bridge `port` (frames since index `mark`): at
/// least one advert, every advert from the virtual MAC, and a gratuitous ARP for the
/// virtual IP from and announcing the virtual MAC.
fn assert_took_over_with_the_virtual_mac(cap: &WireCapture, mark: usize, port: u32, log: &str) {
    let frames = cap.frames();
    let sent = from_port(&frames[mark..], port);
    let ads = adverts(&sent);
    assert!(!ads.is_empty(), "no advert:\n{log}");
    assert!(
        ads.iter().all(|f| f.src_mac() == Some(VMAC)),
        "an advert not from the virtual MAC:\n{log}"
    );
    assert!(
        sent.iter().any(|f| f.src_mac() == Some(VMAC)
            && gratuitous_arp(&f.data).is_some_and(|g| g.mac == VMAC && g.ip.to_string() == VIP)),
        "no gratuitous ARP from the virtual MAC:\n{log}"
    );
}

/// The client `c` still resolves the virtual IP to the virtual MAC, and its traffic to it
/// now arrives on `node`'s macvlan.
fn assert_client_reaches(c: &TestNs, node: &TestNs, dev: &str, vip: &str, mac: &str) {
    assert_eq!(neighbour(c, vip).as_deref(), Some(mac));
    let rx = rx_packets(node, dev);
    poke(c, vip);
    assert!(
        wait_for(Duration::from_secs(2), || rx_packets(node, dev) > rx),
        "the client's datagram did not arrive on {dev}"
    );
    assert_eq!(neighbour(c, vip).as_deref(), Some(mac));
}

fn adverts6<'a>(frames: &[&'a WireFrame]) -> Vec<&'a WireFrame> {
    frames
        .iter()
        .copied()
        .filter(|f| f.data.get(12..14) == Some(&[0x86, 0xdd]) && f.data.get(20) == Some(&112))
        .collect()
}

/// An IGMP report (IPv4 protocol 2) or an MLDv2 report (ICMPv6 type 143 after the
/// router-alert hop-by-hop header).
fn membership_report(f: &WireFrame) -> bool {
    match f.data.get(12..14) {
        Some([0x08, 0x00]) => f.data.get(23) == Some(&2),
        Some([0x86, 0xdd]) => f.data.get(20) == Some(&0) && f.data.get(62) == Some(&143),
        _ => false,
    }
}

/// The bridge port the bridge has learnt `mac` on.
fn fdb_port(br: &TestNs, mac: &str) -> Option<String> {
    let out = br.run("bridge", &["fdb", "show", "br", "br0"]).ok()?;
    out.lines()
        .find(|l| l.starts_with(mac) && l.contains(" master br0"))
        .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
}

/// Two keepalive-d nodes with `vmac: true`: the macvlan and its settings; the Master's
/// adverts and gratuitous ARPs come from the virtual MAC, the client resolves the
/// virtual IP to it; after a SIGKILL the Backup takes over with the same MAC (the
/// client's entry stays, its traffic reaches the new Master); a stop removes the macvlan
/// and puts the parent's settings back; a restart adopts the macvlan a crash left.
#[test]
fn the_virtual_mac_moves_with_the_master() {
    let seg = Segment::new("vm", 3).unwrap();
    let [a, b, c] = &seg.nodes[..] else {
        panic!("three nodes")
    };
    let cap = WireCapture::start(&seg.br).unwrap();
    let before = parent_arp(&b.ns);
    let da = start(a, &v4(200));
    assert!(
        wait_for(Duration::from_secs(3), || has_addr(&a.ns, "vrrp.51", VIP)),
        "a never became Master:\n{}",
        da.log()
    );
    assert!(!has_addr(&a.ns, "eth0", VIP));
    let l = link(&a.ns, "vrrp.51").unwrap();
    assert!(l.contains("vrrp.51@eth0"), "{l}");
    assert!(l.contains("macvlan mode private"), "{l}");
    assert!(l.contains(&format!("link/ether {VMAC_TEXT}")), "{l}");
    assert!(l.contains("addrgenmode none"), "{l}");
    assert_eq!(parent_arp(&a.ns), ["1", "1", "2"]);
    for (k, v) in [
        ("arp_ignore", "1"),
        ("accept_local", "1"),
        ("rp_filter", "0"),
        ("promote_secondaries", "1"),
    ] {
        assert_eq!(
            sysctl(&a.ns, &format!("net.ipv4.conf.vrrp/51.{k}")),
            v,
            "{k}"
        );
    }

    let db = start(b, &v4(100));
    assert!(
        db.wait_log("state=backup", Duration::from_secs(3)),
        "{}",
        db.log()
    );
    assert!(link(&b.ns, "vrrp.51").is_some());
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !has_addr(&b.ns, "vrrp.51", VIP),
        "both Master:\n{}",
        db.log()
    );
    assert_eq!(resolve(&c.ns, VIP), VMAC_TEXT);

    let frames = cap.frames();
    let from_a = from_port(&frames, a.port);
    let ads = adverts(&from_a);
    assert!(ads.len() >= 5, "{} adverts from a", ads.len());
    assert!(ads.iter().all(|f| f.src_mac() == Some(VMAC)));
    let garps: Vec<_> = from_a
        .iter()
        .filter_map(|f| gratuitous_arp(&f.data).map(|g| (f.src_mac(), g)))
        .filter(|(_, g)| g.ip.to_string() == VIP)
        .collect();
    assert!(!garps.is_empty(), "no gratuitous ARP from a");
    assert!(
        garps
            .iter()
            .all(|(src, g)| *src == Some(VMAC) && g.mac == VMAC)
    );
    assert!(
        adverts(&from_port(&frames, b.port)).is_empty(),
        "the Backup advertised"
    );
    // Nothing from the virtual MAC on the Backup's port but the IGMP reports of its
    // joining the VRRP group at start.
    let from_vmac: Vec<_> = from_port(&frames, b.port)
        .into_iter()
        .filter(|f| f.src_mac() == Some(VMAC))
        .collect();
    assert!(
        from_vmac.iter().all(|f| membership_report(f)),
        "the Backup sent from the virtual MAC: {:02x?}",
        from_vmac.iter().map(|f| &f.data).collect::<Vec<_>>()
    );

    // SIGKILL of the Master, and its node off the segment.
    let mark = cap.frames().len();
    let log_a = da.kill();
    a.ns.run("ip", &["link", "set", "eth0", "down"]).unwrap();
    assert!(
        wait_for(Duration::from_secs(3), || has_addr(&b.ns, "vrrp.51", VIP)),
        "b did not take over:\n{}",
        db.log()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_took_over_with_the_virtual_mac(&cap, mark, b.port, &db.log());
    assert_eq!(fdb_port(&seg.br, VMAC_TEXT).as_deref(), Some("p-1"));
    // The client's entry for the virtual IP did not change, and its traffic now goes to b.
    assert_client_reaches(&c.ns, &b.ns, "vrrp.51", VIP, VMAC_TEXT);

    // A graceful stop removes the macvlan and restores the parent's settings.
    let log = stop_removes(db, &b.ns, "vrrp.51");
    assert!(log.contains("removed the virtual MAC interface"), "{log}");
    assert_eq!(parent_arp(&b.ns), before);

    // The killed node still has its macvlan (and the virtual IP on it): a restart adopts
    // it and removes the stale address until it is Master again.
    assert!(has_addr(&a.ns, "vrrp.51", VIP), "{log_a}");
    a.ns.run("ip", &["link", "set", "eth0", "up"]).unwrap();
    let da = start(a, &v4(200));
    assert!(
        da.wait_log(
            "adopting the existing virtual MAC interface",
            Duration::from_secs(3)
        ),
        "{}",
        da.log()
    );
    assert!(wait_for(Duration::from_secs(3), || da
        .log()
        .contains("state=master")));
    assert!(has_addr(&a.ns, "vrrp.51", VIP));
    stop_removes(da, &a.ns, "vrrp.51");
}

/// keepalived with `use_vmac` on the other node, both ways: ours Master and keepalived
/// Backup (it hears our adverts from the shared virtual MAC on its own macvlan); SIGKILL
/// of ours: keepalived takes over with the same MAC; ours restarted at the higher
/// priority preempts it; ours at a lower priority stays Backup under keepalived.
#[test]
fn interop_with_keepalived_use_vmac() {
    let seg = Segment::new("vk", 3).unwrap();
    let [ka, us, c] = &seg.nodes[..] else {
        panic!("three nodes")
    };
    let cap = WireCapture::start(&seg.br).unwrap();
    let ka_conf = format!(
        "global_defs {{\n  router_id ka\n  vrrp_version 3\n}}\n\
         vrrp_instance VI {{\n  state BACKUP\n  interface eth0\n  use_vmac\n  virtual_router_id 51\n  \
         priority 100\n  advert_int 0.1\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    );

    // keepalived 2.2.7 sets arp_ignore and arp_filter on the interface under its macvlan
    // but not arp_announce (keepalive-d sets 2): without it, the first time the keepalived
    // Master answers a client from the virtual IP (here an ICMP port unreachable), its ARP
    // request for the client goes out of eth0 with the virtual IP as sender and eth0's
    // MAC, and the client's entry for the virtual IP moves to that MAC (seen in this
    // test). The operator of a keepalived peer sets it, as CONFIG.md says.
    ka.ns
        .run("sysctl", &["-qw", "net.ipv4.conf.eth0.arp_announce=2"])
        .unwrap();

    // Ours Master, keepalived Backup.
    let ours = start(us, &v4(200));
    assert!(wait_for(Duration::from_secs(3), || has_addr(
        &us.ns, "vrrp.51", VIP
    )));
    let mut k = Keepalived::start(&ka.ns, &ka_conf).unwrap();
    assert!(
        wait_for(Duration::from_secs(3), || k
            .log()
            .contains("Entering BACKUP STATE")),
        "{}",
        k.log()
    );
    assert!(wait_for(Duration::from_secs(3), || link(&ka.ns, "vrrp.51").is_some()));
    let l = link(&ka.ns, "vrrp.51").unwrap();
    assert!(l.contains(&format!("link/ether {VMAC_TEXT}")), "{l}");
    let mark = cap.frames().len();
    std::thread::sleep(Duration::from_millis(1000));
    let frames = cap.frames();
    assert!(
        adverts(&from_port(&frames[mark..], ka.port)).is_empty(),
        "keepalived advertised:\n{}",
        k.log()
    );
    assert!(!has_addr(&ka.ns, "vrrp.51", VIP));
    assert!(!k.log().contains("Entering MASTER STATE"), "{}", k.log());
    assert_eq!(resolve(&c.ns, VIP), VMAC_TEXT);

    // SIGKILL of ours: keepalived takes over, from the same MAC.
    let mark = cap.frames().len();
    ours.kill();
    us.ns.run("ip", &["link", "set", "eth0", "down"]).unwrap();
    assert!(
        wait_for(Duration::from_secs(3), || has_addr(&ka.ns, "vrrp.51", VIP)),
        "keepalived did not take over:\n{}",
        k.log()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_took_over_with_the_virtual_mac(&cap, mark, ka.port, &k.log());
    assert_client_reaches(&c.ns, &ka.ns, "vrrp.51", VIP, VMAC_TEXT);

    // Ours back at the higher priority: it adopts its macvlan and preempts keepalived.
    us.ns.run("ip", &["link", "set", "eth0", "up"]).unwrap();
    let mark = cap.frames().len();
    let ours = start(us, &v4(200));
    assert!(
        wait_for(Duration::from_secs(3), || has_addr(&us.ns, "vrrp.51", VIP)
            && !has_addr(&ka.ns, "vrrp.51", VIP)),
        "no preemption:\nours:\n{}\nkeepalived:\n{}",
        ours.log(),
        k.log()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_took_over_with_the_virtual_mac(&cap, mark, us.port, &ours.log());
    assert_client_reaches(&c.ns, &us.ns, "vrrp.51", VIP, VMAC_TEXT);

    // Graceful stop of ours (priority 0): keepalived takes over; ours again, now at a
    // lower priority: it stays Backup under keepalived's adverts from the virtual MAC.
    stop_removes(ours, &us.ns, "vrrp.51");
    assert!(wait_for(Duration::from_secs(2), || has_addr(
        &ka.ns, "vrrp.51", VIP
    )));
    let ours = start(us, &v4(50));
    assert!(ours.wait_log("state=backup", Duration::from_secs(3)));
    let mark = cap.frames().len();
    std::thread::sleep(Duration::from_millis(1000));
    let frames = cap.frames();
    assert!(
        adverts(&from_port(&frames[mark..], us.port)).is_empty(),
        "{}",
        ours.log()
    );
    assert!(!has_addr(&us.ns, "vrrp.51", VIP));
    assert!(!ours.log().contains("state=master"), "{}", ours.log());

    // keepalived killed as Master (its node off the segment): ours takes over with the
    // same MAC, and the client's entry stays.
    let mark = cap.frames().len();
    k.sigkill().unwrap();
    ka.ns.run("ip", &["link", "set", "eth0", "down"]).unwrap();
    assert!(
        wait_for(Duration::from_secs(3), || has_addr(&us.ns, "vrrp.51", VIP)),
        "ours did not take over from keepalived:\n{}",
        ours.log()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_took_over_with_the_virtual_mac(&cap, mark, us.port, &ours.log());
    assert_client_reaches(&c.ns, &us.ns, "vrrp.51", VIP, VMAC_TEXT);
    stop_removes(ours, &us.ns, "vrrp.51");
}

/// Unicast adverts with a virtual MAC: sent from the macvlan (source MAC the virtual
/// MAC), received on the parent; the Backup stays Backup and takes over after a SIGKILL.
#[test]
fn unicast_peers_with_a_virtual_mac() {
    let seg = Segment::new("vu", 2).unwrap();
    let [a, b] = &seg.nodes[..] else {
        panic!("two nodes")
    };
    let cap = WireCapture::start(&seg.br).unwrap();
    let conf = |priority: u8, me: &SegmentNode, peer: &SegmentNode| {
        config(
            priority,
            &format!(
                "    unicast_source: {}\n    unicast_peers: [{}]\n    virtual_ips: [{VIP}/24]\n    vmac: true\n",
                me.addr, peer.addr
            ),
        )
    };
    let da = start(a, &conf(200, a, b));
    assert!(wait_for(Duration::from_secs(3), || has_addr(
        &a.ns, "vrrp.51", VIP
    )));
    let db = start(b, &conf(100, b, a));
    assert!(db.wait_log("state=backup", Duration::from_secs(3)));
    let mark = cap.frames().len();
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        !has_addr(&b.ns, "vrrp.51", VIP),
        "both Master:\n{}",
        db.log()
    );
    let frames = cap.frames();
    let ads = adverts(&from_port(&frames[mark..], a.port));
    assert!(ads.len() >= 5, "{} adverts", ads.len());
    for f in &ads {
        assert_eq!(f.src_mac(), Some(VMAC));
        // Unicast to the peer's own MAC.
        assert_eq!(f.data.get(..6), Some(&b.mac[..]));
    }
    da.kill();
    a.ns.run("ip", &["link", "set", "eth0", "down"]).unwrap();
    assert!(
        wait_for(Duration::from_secs(3), || has_addr(&b.ns, "vrrp.51", VIP)),
        "{}",
        db.log()
    );
    stop_removes(db, &b.ns, "vrrp.51");
}

/// Three nodes with 2001:db8::(2 + i)/64 on `eth0`, and their link-local addresses.
fn ipv6_segment(tag: &str) -> Segment {
    let seg = Segment::new(tag, 3).unwrap();
    for (i, n) in seg.nodes.iter().enumerate() {
        let addr = format!("2001:db8::{}/64", i + 2);
        n.ns.run("ip", &["addr", "add", &addr, "dev", "eth0", "nodad"])
            .unwrap();
    }
    // The link-local addresses appear once the links are up.
    assert!(wait_for(Duration::from_secs(3), || seg
        .nodes
        .iter()
        .all(|n| addrs(&n.ns, "eth0").contains("fe80::"))));
    seg
}

/// IPv6: macvlan `vrrp6.51` with MAC 00:00:5e:00:02:33 and the parent's link-local
/// address; adverts from it, unsolicited NAs for the virtual IP with it; the client's
/// neighbour entry for the virtual IP keeps it across a failover.
#[test]
fn ipv6_virtual_mac() {
    let seg = ipv6_segment("v6m");
    let [a, b, c] = &seg.nodes[..] else {
        panic!("three nodes")
    };
    let cap = WireCapture::start(&seg.br).unwrap();
    let conf = |p: u8| {
        config(
            p,
            &format!("    virtual_ips: [\"{VIP6}/64\"]\n    vmac: true\n"),
        )
    };
    let da = start(a, &conf(200));
    assert!(
        wait_for(Duration::from_secs(3), || has_addr(&a.ns, "vrrp6.51", VIP6)),
        "{}",
        da.log()
    );
    let l = link(&a.ns, "vrrp6.51").unwrap();
    assert!(l.contains(&format!("link/ether {VMAC6_TEXT}")), "{l}");
    // The parent's link-local address (while Master), nothing generated from the virtual
    // MAC.
    let ll = addrs(&a.ns, "vrrp6.51");
    assert!(ll.contains("fe80::ff:fe00:2/64"), "{ll}");
    assert!(!ll.contains("fe80::200:5eff"), "{ll}");
    let db = start(b, &conf(100));
    assert!(db.wait_log("state=backup", Duration::from_secs(3)));
    std::thread::sleep(Duration::from_millis(500));
    assert!(!has_addr(&b.ns, "vrrp6.51", VIP6), "{}", db.log());
    // The Backup's macvlan has no address: from the virtual MAC it only sends the MLD
    // reports of its joining the VRRP group (at start, from ::), no router solicitation,
    // no neighbour discovery.
    assert_eq!(addrs(&b.ns, "vrrp6.51"), "");
    let frames = cap.frames();
    let from_vmac: Vec<_> = from_port(&frames, b.port)
        .into_iter()
        .filter(|f| f.src_mac() == Some(VMAC6))
        .collect();
    assert!(
        from_vmac.iter().all(|f| membership_report(f)),
        "the Backup sent from the virtual MAC: {:02x?}",
        from_vmac.iter().map(|f| &f.data).collect::<Vec<_>>()
    );
    assert_eq!(resolve(&c.ns, VIP6), VMAC6_TEXT);
    let frames = cap.frames();
    let ads = adverts6(&from_port(&frames, a.port));
    assert!(ads.len() >= 5);
    assert!(ads.iter().all(|f| f.src_mac() == Some(VMAC6)));
    // Unsolicited NA for the virtual IP, target link-layer option = the virtual MAC.
    let vip6: Ipv6Addr = VIP6.parse().unwrap();
    let nas: Vec<_> = from_port(&frames, a.port)
        .into_iter()
        .filter(|f| {
            f.data.get(12..14) == Some(&[0x86, 0xdd])
                && f.data.get(20) == Some(&58)
                && f.data.get(54) == Some(&136)
                && f.data.get(62..78) == Some(&vip6.octets()[..])
        })
        .collect();
    assert!(!nas.is_empty(), "no NA from a");
    assert!(
        nas.iter()
            .all(|f| f.src_mac() == Some(VMAC6) && f.data.get(80..86) == Some(&VMAC6[..]))
    );
    da.kill();
    a.ns.run("ip", &["link", "set", "eth0", "down"]).unwrap();
    assert!(
        wait_for(Duration::from_secs(3), || has_addr(&b.ns, "vrrp6.51", VIP6)),
        "{}",
        db.log()
    );
    assert_client_reaches(&c.ns, &b.ns, "vrrp6.51", VIP6, VMAC6_TEXT);
    stop_removes(db, &b.ns, "vrrp6.51");
}

/// An interface of the configured name that is not a macvlan is never touched (the
/// daemon refuses to start); a macvlan of that name with another MAC is replaced.
#[test]
fn existing_interfaces_of_the_same_name() {
    let seg = Segment::new("vx", 1).unwrap();
    let a = &seg.nodes[0];
    a.ns.run(
        "ip",
        &[
            "link", "add", "vrrp.51", "type", "veth", "peer", "name", "other",
        ],
    )
    .unwrap();
    let path = std::env::temp_dir().join(format!("vmac-x-{}.yaml", std::process::id()));
    std::fs::write(&path, v4(100)).unwrap();
    let mut child =
        a.ns.command(BIN)
            .args(["run", "-c"])
            .arg(&path)
            .arg("--control-socket")
            .arg(Daemon::control_socket(&a.ns))
            .arg("--state-dir")
            .arg(Daemon::state_dir(&a.ns))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let exited = wait_for(Duration::from_secs(5), || {
        child.try_wait().unwrap().is_some()
    });
    if !exited {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_file(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(exited, "started anyway:\n{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("vrrp.51 exists and is not a macvlan"),
        "{stderr}"
    );
    assert!(link(&a.ns, "vrrp.51").unwrap().contains("veth"));
    assert_eq!(parent_arp(&a.ns), ["0", "0", "0"]);

    a.ns.run("ip", &["link", "del", "vrrp.51"]).unwrap();
    a.ns.run(
        "ip",
        &[
            "link",
            "add",
            "link",
            "eth0",
            "name",
            "vrrp.51",
            "address",
            "02:00:00:00:00:99",
            "type",
            "macvlan",
            "mode",
            "bridge",
        ],
    )
    .unwrap();
    let d = start(a, &v4(100));
    assert!(
        d.wait_log("state=backup", Duration::from_secs(3)),
        "{}",
        d.log()
    );
    assert!(d.log().contains("replacing a macvlan"), "{}", d.log());
    let l = link(&a.ns, "vrrp.51").unwrap();
    assert!(l.contains(VMAC_TEXT) && l.contains("mode private"), "{l}");
    let _ = std::fs::remove_dir_all(Daemon::state_dir(&a.ns));
}

/// A reload that restarts the instance (another priority) hands the macvlan from the old
/// instance to the new one: it is not deleted, and the new instance becomes Master on it.
/// A reload without `vmac` removes it and puts the virtual IP on the interface itself.
#[test]
fn reloads_keep_or_remove_the_virtual_mac() {
    let seg = Segment::new("vr", 1).unwrap();
    let a = &seg.nodes[0];
    let d = start(a, &v4(200));
    assert!(wait_for(Duration::from_secs(3), || has_addr(
        &a.ns, "vrrp.51", VIP
    )));
    let index = |ns: &TestNs| nix_index(ns, "vrrp.51").unwrap_or_else(|| panic!("no vrrp.51"));
    let before = index(&a.ns);
    let line = d.reload(&v4(150), Duration::from_secs(5)).unwrap();
    assert!(line.contains("reloaded"), "{line}");
    assert!(
        wait_for(Duration::from_secs(3), || has_addr(&a.ns, "vrrp.51", VIP)),
        "{}",
        d.log()
    );
    assert_eq!(
        index(&a.ns),
        before,
        "the macvlan was recreated:\n{}",
        d.log()
    );
    assert!(
        !d.log().contains("removed the virtual MAC interface"),
        "{}",
        d.log()
    );
    let line = d
        .reload(
            &config(150, &format!("    virtual_ips: [{VIP}/24]\n")),
            Duration::from_secs(5),
        )
        .unwrap();
    assert!(line.contains("reloaded"), "{line}");
    assert!(wait_for(Duration::from_secs(3), || has_addr(
        &a.ns, "eth0", VIP
    )));
    assert!(link(&a.ns, "vrrp.51").is_none(), "{}", d.log());
    assert_eq!(parent_arp(&a.ns), ["0", "0", "0"]);
    stop_removes(d, &a.ns, "vrrp.51");
}

/// The interface index of `dev` in `ns`.
fn nix_index(ns: &TestNs, dev: &str) -> Option<u32> {
    let dev = dev.to_owned();
    ns.enter(move || nix::net::if_::if_nametoindex(dev.as_str()).ok())
        .ok()
        .flatten()
}

/// An upgrade in place (SIGUSR2) keeps the macvlan: the new process adopts it and
/// resumes as Master on it, with the virtual IP still there; its stop then removes it.
#[test]
fn a_hand_over_keeps_the_virtual_mac() {
    let seg = Segment::new("vh", 1).unwrap();
    let a = &seg.nodes[0];
    let d = start(a, &v4(200));
    assert!(wait_for(Duration::from_secs(3), || has_addr(
        &a.ns, "vrrp.51", VIP
    )));
    let before = nix_index(&a.ns, "vrrp.51").unwrap();
    d.signal(nix::sys::signal::Signal::SIGUSR2).unwrap();
    assert!(
        d.wait_log(
            "resuming as Master without a failover",
            Duration::from_secs(10)
        ),
        "{}",
        d.log()
    );
    let log = d.log();
    assert!(
        log.contains("adopting the existing virtual MAC interface"),
        "{log}"
    );
    assert!(!log.contains("removed the virtual MAC interface"), "{log}");
    assert_eq!(nix_index(&a.ns, "vrrp.51"), Some(before), "{log}");
    assert!(has_addr(&a.ns, "vrrp.51", VIP));
    stop_removes(d, &a.ns, "vrrp.51");
}

/// `keepalive-d check` reports each bad `vmac` setting of `tests/bad-configs/vrrp-vmac-*`
/// as `FILE:LINE:COLUMN: message` and exits 1; the good forms pass.
#[test]
fn check_reports_bad_vmac_settings_at_their_position() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-configs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vrrp-vmac-"))
        })
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap();
        let (position, message) = expect.split_once(": ").unwrap();
        let out = std::process::Command::new(BIN)
            .args(["check", "-c"])
            .arg(path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", path.display());
        let prefix = format!("{}:{position}: ", path.display());
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&prefix) && l.contains(message)),
            "{}: expected `{prefix}...{message}`, got:\n{stderr}",
            path.display()
        );
    }
    let good = std::env::temp_dir().join(format!("vmac-good-{}.yaml", std::process::id()));
    std::fs::write(
        &good,
        "vrrp_instances:\n\
         \x20 - { name: a, interface: eth0, vrid: 51, priority: 100, virtual_ips: [192.0.2.10/24], vmac: true }\n\
         \x20 - { name: b, interface: eth0, vrid: 51, priority: 100, virtual_ips: ['2001:db8::10/64'], vmac: true }\n\
         \x20 - { name: c, interface: eth1, vrid: 51, priority: 100, virtual_ips: [198.51.100.10/24], vmac: { name: vrrp-c } }\n\
         \x20 - { name: d, interface: eth1, vrid: 52, priority: 100, virtual_ips: [198.51.100.11/24], vmac: false }\n",
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["check", "-c"])
        .arg(&good)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&good);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// IPv6 against keepalived with `use_vmac`: keepalived Master, ours Backup on its macvlan
/// (it hears keepalived's adverts from 00:00:5e:00:02:33); keepalived killed: ours takes
/// over with the same MAC and the client's neighbour entry stays; keepalived back at the
/// higher priority preempts ours, again with the same MAC.
#[test]
fn ipv6_interop_with_keepalived_use_vmac() {
    let seg = ipv6_segment("vk6");
    let [ka, us, c] = &seg.nodes[..] else {
        panic!("three nodes")
    };
    let ka_conf = format!(
        "global_defs {{\n  router_id ka6\n  vrrp_version 3\n}}\n\
         vrrp_instance VI6 {{\n  state BACKUP\n  interface eth0\n  use_vmac\n  virtual_router_id 51\n  \
         priority 200\n  advert_int 0.1\n  virtual_ipaddress {{\n    {VIP6}/64\n  }}\n}}\n"
    );
    let mut k = Keepalived::start(&ka.ns, &ka_conf).unwrap();
    // keepalived names an IPv6 instance's macvlan vrrp.VRID.
    assert!(
        wait_for(Duration::from_secs(5), || has_addr(&ka.ns, "vrrp.51", VIP6)),
        "keepalived never became Master:\n{}",
        k.log()
    );
    let ours = start(
        us,
        &config(
            100,
            &format!("    virtual_ips: [\"{VIP6}/64\"]\n    vmac: true\n"),
        ),
    );
    assert!(ours.wait_log("state=backup", Duration::from_secs(3)));
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        !ours.log().contains("state=master"),
        "ours did not hear keepalived:\n{}",
        ours.log()
    );
    assert!(!has_addr(&us.ns, "vrrp6.51", VIP6));
    assert_eq!(resolve(&c.ns, VIP6), VMAC6_TEXT);

    k.sigkill().unwrap();
    ka.ns.run("ip", &["link", "set", "eth0", "down"]).unwrap();
    assert!(
        wait_for(Duration::from_secs(3), || has_addr(
            &us.ns, "vrrp6.51", VIP6
        )),
        "ours did not take over:\n{}",
        ours.log()
    );
    assert_client_reaches(&c.ns, &us.ns, "vrrp6.51", VIP6, VMAC6_TEXT);

    ka.ns.run("ip", &["link", "set", "eth0", "up"]).unwrap();
    assert!(wait_for(Duration::from_secs(3), || addrs(&ka.ns, "eth0")
        .contains("fe80::")));
    drop(k); // its pid files
    let k = Keepalived::start(&ka.ns, &ka_conf).unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || has_addr(&ka.ns, "vrrp.51", VIP6)
            && !has_addr(&us.ns, "vrrp6.51", VIP6)),
        "no preemption by keepalived:\nours:\n{}\nkeepalived:\n{}",
        ours.log(),
        k.log()
    );
    assert_client_reaches(&c.ns, &ka.ns, "vrrp.51", VIP6, VMAC6_TEXT);
    stop_removes(ours, &us.ns, "vrrp6.51");
}

/// The macvlan deleted by hand under a running Master: the instance goes to FAULT and
/// the Backup takes over with the virtual MAC; the stop of the faulty one still exits
/// cleanly (nothing left to delete).
#[test]
fn a_macvlan_deleted_by_hand_is_a_fault() {
    let seg = Segment::new("vd", 2).unwrap();
    let [a, b] = &seg.nodes[..] else {
        panic!("two nodes")
    };
    let da = start(a, &v4(200));
    assert!(wait_for(Duration::from_secs(3), || has_addr(
        &a.ns, "vrrp.51", VIP
    )));
    let db = start(b, &v4(100));
    assert!(db.wait_log("state=backup", Duration::from_secs(3)));
    a.ns.run("ip", &["link", "del", "vrrp.51"]).unwrap();
    assert!(
        da.wait_log("state=fault", Duration::from_secs(3)),
        "{}",
        da.log()
    );
    assert!(
        wait_for(Duration::from_secs(3), || has_addr(&b.ns, "vrrp.51", VIP)),
        "b did not take over:\n{}",
        db.log()
    );
    stop_removes(da, &a.ns, "vrrp.51");
    stop_removes(db, &b.ns, "vrrp.51");
}
