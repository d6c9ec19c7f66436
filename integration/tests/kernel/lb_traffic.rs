//! Real traffic through IPVS in the classic LVS layouts (`ipvs_integration::lb_lab`): the
//! director is programmed with ipvsadm, the client sends HTTP and DNS to the VIP, and
//! every answer names the backend that gave it.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use ipvs_integration::lb_lab::{
    DNS_ADDR, DNS_NAME, DNS_PORT, DnsTransport, HTTP_PORT, LbLab, Mode, Segment, Spread, TCP_PORT,
    sock,
};
use ipvs_integration::netns::TestNs;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const REQUESTS: usize = 300;

/// No failure, `n` answers, and a share for every backend.
fn assert_every_backend_served(lab: &LbLab, spread: &Spread, n: usize) {
    assert_eq!(spread.failures, 0, "{spread}");
    assert_eq!(spread.ok(), n, "{spread}");
    for i in 0..lab.real_server_count() {
        assert!(
            spread.count(&lab.backend_name(i)) > 0,
            "{} got nothing: {spread}",
            lab.backend_name(i)
        );
    }
}

/// The service's (Conns, InPkts, OutPkts) from `ipvsadm -L -n --stats`, once it counts at
/// least `conns` connections: the kernel folds its per-CPU counters into what it reports
/// every 2 s (the rate estimator), so fresh traffic shows up late.
fn service_stats(lab: &LbLab, proto: &str, port: u16, conns: u64) -> (u64, u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = lab.ipvsadm(&["-L", "-n", "--stats"]).unwrap();
        let key = format!("{proto}  {}:{port}", lab.vip());
        let line = out
            .lines()
            .find(|l| l.starts_with(&key))
            .unwrap_or_else(|| panic!("no {key} in\n{out}"));
        // Prot LocalAddress:Port Conns InPkts OutPkts InBytes OutBytes
        let cols: Vec<u64> = line.split_whitespace().skip(2).map(number).collect();
        let got = (cols[0], cols[1], cols[2]);
        if got.0 >= conns {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{conns} connections never counted:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// An ipvsadm counter: digits with an optional K, M or G.
fn number(s: &str) -> u64 {
    let (digits, unit) = s.split_at(s.trim_end_matches(['K', 'M', 'G']).len());
    let mult = match unit {
        "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => 1,
    };
    digits.parse::<u64>().unwrap() * mult
}

fn sysctl(ns: &TestNs, key: &str) -> String {
    ns.run("sysctl", &["-n", key]).unwrap().trim().to_string()
}

#[test]
fn lb_nat_http_rr_spreads_evenly_and_follows_backend_stops() {
    let mut lab = LbLab::new(Mode::Nat, 3).unwrap();
    lab.add_service("-t", HTTP_PORT, "rr").unwrap();
    let spread = lab.client_requests(REQUESTS);
    eprintln!("nat rr: {spread}");
    assert_every_backend_served(&lab, &spread, REQUESTS);
    // rr over new connections is exact.
    for i in 0..3 {
        assert_eq!(spread.count(&lab.backend_name(i)), REQUESTS / 3, "{spread}");
    }
    // Replies come back through the director (NAT).
    let (_, inp, outp) = service_stats(&lab, "TCP", HTTP_PORT, REQUESTS as u64);
    assert!(inp > 0 && outp > 0, "in {inp} out {outp}");

    // A stopped backend refuses its share; started again, it serves again.
    lab.stop_backend(1).unwrap();
    assert!(!lab.backend_running(1));
    let spread = lab.client_requests(30);
    eprintln!("nat rr, rs1 stopped: {spread}");
    // rr gives rs1 every third new connection: 10 of 30 refused. One fewer is allowed
    // (seen once in CI: 9 refused, rs2 11). Likely cause, not verified: a connection
    // whose 4-tuple matches an entry the kernel still has from the first batch (one not
    // in TIME_WAIT) is sent to that entry's server instead of being scheduled.
    assert!((9..=10).contains(&spread.failures), "{spread}");
    assert_eq!(spread.count("rs1"), 0, "{spread}");
    assert_eq!(spread.ok() + spread.failures, 30, "{spread}");
    lab.start_backend(1).unwrap();
    let spread = lab.client_requests(30);
    assert_every_backend_served(&lab, &spread, 30);

    // Taken out of the table, it gets nothing and nobody fails.
    let rs1 = format!("{}:{HTTP_PORT}", lab.real_server_addr(1));
    let vip = format!("{}:{HTTP_PORT}", lab.vip());
    lab.ipvsadm(&["-d", "-t", &vip, "-r", &rs1]).unwrap();
    let spread = lab.client_requests(30);
    assert_eq!(spread.failures, 0, "{spread}");
    assert_eq!(spread.count("rs1"), 0, "{spread}");
    // rr over the two left: 15 each, give or take a reused entry as above.
    assert!((14..=16).contains(&spread.count("rs0")), "{spread}");
}

#[test]
fn lb_nat_ipv6_http() {
    let lab = LbLab::new(Mode::Nat, 3).unwrap();
    let vip6 = lab.vip6().unwrap();
    let mut rules = format!("-A -t [{vip6}]:{HTTP_PORT} -s rr\n");
    for i in 0..3 {
        let rs = lab.real_server_addr6(i).unwrap();
        rules.push_str(&format!(
            "-a -t [{vip6}]:{HTTP_PORT} -r [{rs}]:{HTTP_PORT} -m -w 1\n"
        ));
    }
    lab.ipvsadm_restore(&rules).unwrap();
    let spread = lab.client_http(sock(vip6, HTTP_PORT), 90);
    eprintln!("nat ipv6 rr: {spread}");
    assert_every_backend_served(&lab, &spread, 90);
}

#[test]
fn lb_nat_dns_over_udp_and_tcp() {
    let lab = LbLab::new(Mode::Nat, 3).unwrap();
    lab.add_service("-u", DNS_PORT, "rr").unwrap();
    lab.add_service("-t", DNS_PORT, "rr").unwrap();
    let target = sock(lab.vip(), DNS_PORT);
    for transport in [DnsTransport::Udp, DnsTransport::Tcp] {
        let spread = lab.client_dns(transport, 60);
        eprintln!("nat dns {transport:?}: {spread}");
        assert_every_backend_served(&lab, &spread, 60);

        let m = lab
            .client_dns_query(target, transport, DNS_NAME, RecordType::A)
            .unwrap();
        assert_eq!(m.response_code(), ResponseCode::NoError);
        let addrs: Vec<_> = m
            .answers()
            .iter()
            .filter_map(|r| match r.data() {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect();
        assert_eq!(addrs, vec![DNS_ADDR], "{transport:?}");
        let m = lab
            .client_dns_query(target, transport, "nope.lab.test", RecordType::A)
            .unwrap();
        assert_eq!(m.response_code(), ResponseCode::NXDomain, "{transport:?}");
    }
}

#[test]
fn lb_attach_puts_another_member_on_the_vip_segment() {
    let lab = LbLab::new(Mode::Nat, 3).unwrap();
    lab.add_service("-t", TCP_PORT, "rr").unwrap();
    let extra = TestNs::new("lbnat-extra").unwrap();
    lab.attach(Segment::Vip, &extra, "eth0").unwrap();
    extra
        .run("ip", &["addr", "add", "172.16.1.50/24", "dev", "eth0"])
        .unwrap();
    let target = sock(lab.vip(), TCP_PORT);
    let banner = extra
        .enter(|| -> std::io::Result<String> {
            let s = TcpStream::connect_timeout(&target, Duration::from_secs(5))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut line = String::new();
            BufReader::new(s).read_line(&mut line)?;
            Ok(line)
        })
        .unwrap()
        .unwrap();
    assert!(banner.starts_with("rs"), "{banner:?}");
}

#[test]
fn lb_dr_http_wrr_replies_bypass_the_director() {
    let lab = LbLab::new(Mode::Dr, 3).unwrap();
    for i in 0..3 {
        let rs = lab.real_server(i);
        assert_eq!(sysctl(rs, "net.ipv4.conf.eth0.arp_ignore"), "1");
        assert_eq!(sysctl(rs, "net.ipv4.conf.all.arp_announce"), "2");
    }
    let vip = lab.vip();
    let mut rules = format!("-A -t {vip}:{HTTP_PORT} -s wrr\n");
    for (i, w) in [1, 2, 3].into_iter().enumerate() {
        let rs = lab.real_server_addr(i);
        rules.push_str(&format!(
            "-a -t {vip}:{HTTP_PORT} -r {rs}:{HTTP_PORT} -g -w {w}\n"
        ));
    }
    lab.ipvsadm_restore(&rules).unwrap();
    let spread = lab.client_requests(REQUESTS);
    eprintln!("dr wrr 1:2:3: {spread}");
    assert_every_backend_served(&lab, &spread, REQUESTS);
    // wrr over new connections follows the weights exactly.
    assert_eq!(
        [
            spread.count("rs0"),
            spread.count("rs1"),
            spread.count("rs2")
        ],
        [50, 100, 150],
        "{spread}"
    );
    // Requests went through the director, replies did not.
    let (_, inp, outp) = service_stats(&lab, "TCP", HTTP_PORT, REQUESTS as u64);
    assert!(inp > 0, "in {inp}");
    assert_eq!(outp, 0, "DR replies must bypass the director");
    // The router learnt the VIP from the director, not from a real server (arp_ignore).
    let router = lab.router().unwrap();
    let neigh = router
        .run("ip", &["neigh", "show", &vip.to_string()])
        .unwrap();
    let link = lab
        .director()
        .run("ip", &["-j", "link", "show", "eth0"])
        .unwrap();
    let link: serde_json::Value = serde_json::from_str(&link).unwrap();
    let mac = link[0]["address"].as_str().unwrap();
    assert!(
        neigh.contains(mac),
        "router: `{neigh}`; director eth0 {mac}"
    );

    // UDP under DR: each backend answers from the VIP (the address the query was sent
    // to), not from its own address, or the client would drop the answer.
    lab.add_service("-u", DNS_PORT, "rr").unwrap();
    let spread = lab.client_dns(DnsTransport::Udp, 30);
    eprintln!("dr dns udp: {spread}");
    assert_every_backend_served(&lab, &spread, 30);
}

#[test]
fn lb_tun_http_rr_through_ipip() {
    let lab = LbLab::new(Mode::Tun, 3).unwrap();
    lab.add_service("-t", HTTP_PORT, "rr").unwrap();
    let saved = lab.ipvsadm(&["-S", "-n"]).unwrap();
    assert!(saved.contains(" -i "), "{saved}");
    let spread = lab.client_requests(REQUESTS);
    eprintln!("tun rr: {spread}");
    assert_every_backend_served(&lab, &spread, REQUESTS);
    let (_, inp, outp) = service_stats(&lab, "TCP", HTTP_PORT, REQUESTS as u64);
    assert!(inp > 0, "in {inp}");
    assert_eq!(outp, 0, "TUN replies must bypass the director");
    // Every real server decapsulated its share on tunl0.
    for i in 0..3 {
        let out = lab
            .real_server(i)
            .run("ip", &["-s", "-j", "link", "show", "tunl0"])
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let rx = v[0]["stats64"]["rx"]["packets"].as_u64().unwrap();
        assert!(rx > 0, "rs{i} tunl0: {out}");
    }

    // The banner-and-echo TCP service, and DNS over UDP, through the tunnel too.
    lab.add_service("-t", TCP_PORT, "rr").unwrap();
    let spread = lab.client_tcp(sock(lab.vip(), TCP_PORT), 30);
    eprintln!("tun tcp banner: {spread}");
    assert_every_backend_served(&lab, &spread, 30);
    lab.add_service("-u", DNS_PORT, "rr").unwrap();
    let spread = lab.client_dns(DnsTransport::Udp, 30);
    eprintln!("tun dns udp: {spread}");
    assert_every_backend_served(&lab, &spread, 30);
}
