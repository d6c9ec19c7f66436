//! Gratuitous ARPs (IPv4) and unsolicited neighbour advertisements (IPv6)
//! through an `AF_PACKET` socket, byte for byte as keepalived 2.2.7 sends
//! them without `use_vmac`:
//!
//! * ARP: a broadcast request with sender IP = target IP = the virtual
//!   address, sender MAC the interface's, target MAC all ones;
//! * NA: from the virtual address to `ff02::1` (MAC `33:33:00:00:00:01`),
//!   hop limit 255, only the Override flag, and a target link-layer address
//!   option with the interface's MAC.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use vrrp_proto::checksum::internet_checksum;

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;
const BROADCAST: [u8; 6] = [0xff; 6];
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The Ethernet frame of a gratuitous ARP request for `ip` from `mac`.
pub fn arp_frame(mac: [u8; 6], ip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&BROADCAST);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ETH_P_ARP.to_be_bytes());
    // Ethernet, IPv4, 6-byte MACs, 4-byte addresses, request.
    f.extend_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&BROADCAST);
    f.extend_from_slice(&ip.octets());
    f
}

/// The Ethernet frame of an unsolicited neighbour advertisement for `ip`
/// from `mac`.
pub fn na_frame(mac: [u8; 6], ip: Ipv6Addr) -> Vec<u8> {
    // ICMPv6: type 136, code 0, checksum, flags (Override), reserved,
    // target, option 2 (target link-layer address), length 1 (8 bytes).
    let mut icmp = Vec::with_capacity(32);
    icmp.extend_from_slice(&[136, 0, 0, 0, 0x20, 0, 0, 0]);
    icmp.extend_from_slice(&ip.octets());
    icmp.extend_from_slice(&[2, 1]);
    icmp.extend_from_slice(&mac);
    let len = u32::try_from(icmp.len()).unwrap_or(0);
    let pseudo_tail = [len.to_be_bytes(), 58u32.to_be_bytes()].concat();
    let sum = internet_checksum(&[&ip.octets(), &ALL_NODES.octets(), &pseudo_tail, &icmp]);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());

    let mut f = Vec::with_capacity(14 + 40 + icmp.len());
    f.extend_from_slice(&ALL_NODES_MAC);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&u16::try_from(icmp.len()).unwrap_or(0).to_be_bytes());
    f.extend_from_slice(&[58, 255]);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&ALL_NODES.octets());
    f.extend_from_slice(&icmp);
    f
}

/// The frame announcing `ip` from `mac`: a gratuitous ARP or an
/// unsolicited NA.
pub fn frame(mac: [u8; 6], ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => arp_frame(mac, v4),
        IpAddr::V6(v6) => na_frame(mac, v6),
    }
}

/// A send-only `AF_PACKET` socket on one interface.
#[derive(Debug)]
pub struct GarpSocket {
    fd: OwnedFd,
    ifindex: u32,
}

impl GarpSocket {
    /// Opens the socket for interface `ifindex`. Needs `CAP_NET_RAW`.
    pub fn open(ifindex: u32) -> io::Result<Self> {
        // Protocol 0: the socket receives nothing, it only sends.
        // SAFETY: plain socket(2) call; the descriptor is owned at once.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh, valid descriptor owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(GarpSocket { fd, ifindex })
    }

    /// Sends one Ethernet `frame` (destination MAC in its first 6 bytes).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        let Some(dst) = frame.first_chunk::<6>() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "short frame"));
        };
        // SAFETY: sockaddr_ll is plain old data; all zeroes is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = i32::try_from(self.ifindex).unwrap_or(0);
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(dst);
        // SAFETY: sendto with a live buffer and its length, and a pointer to
        // a live sockaddr_ll with its exact size.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&raw const sll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
            .collect()
    }

    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

    /// keepalived 2.2.7's gratuitous ARP, from vrrp/tests/captured (the
    /// capture starts after the Ethernet header).
    #[test]
    fn arp_matches_keepalived() {
        let f = arp_frame(MAC, Ipv4Addr::new(192, 0, 2, 10));
        assert_eq!(&f[..6], &BROADCAST);
        assert_eq!(&f[6..12], &MAC);
        assert_eq!(
            &f[14..],
            unhex("0001080006040001020000000002c000020affffffffffffc000020a").as_slice()
        );
    }

    /// keepalived 2.2.7's unsolicited NA, from vrrp/tests/captured.
    #[test]
    fn na_matches_keepalived() {
        let ip: Ipv6Addr = "2001:db8::10".parse().unwrap_or(Ipv6Addr::UNSPECIFIED);
        let f = na_frame(MAC, ip);
        assert_eq!(&f[..6], &ALL_NODES_MAC);
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        assert_eq!(
            &f[14..],
            unhex(
                "6000000000203aff20010db8000000000000000000000010ff020000000000000000000000000001\
                 8800f90b2000000020010db80000000000000000000000100201020000000002"
            )
            .as_slice()
        );
        let ip: Ipv6Addr = "2001:db8::11".parse().unwrap_or(Ipv6Addr::UNSPECIFIED);
        let f = na_frame(MAC, ip);
        assert_eq!(&f[54..58], &[0x88, 0x00, 0xf9, 0x09]);
    }
}
