//! The Internet checksum (RFC 1071) and the VRRP checksum variants.
//!
//! | advert            | what the sum covers                                            |
//! |-------------------|----------------------------------------------------------------|
//! | VRRPv2 (IPv4)     | the VRRP message, including the 8 bytes of authentication data |
//! | VRRPv3 over IPv4  | [`V3Ipv4Checksum::PseudoHeader`] (keepalived's default): an IPv4 pseudo-header (source, destination, zero, 112, length) and the message; [`V3Ipv4Checksum::MessageOnly`] (keepalived `v3_checksum_as_v2`, RFC 9568, Cisco): the message only |
//! | VRRPv3 over IPv6  | the IPv6 pseudo-header of RFC 8200 section 8.1 (next header 112) and the message |
//!
//! The destination in a pseudo-header is the address the packet was sent to:
//! the multicast group, or the peer's address for unicast (keepalived since
//! 1.3.6; older releases, and its `old_unicast_checksum` mode, always use
//! the multicast group: see
//! [`crate::InstanceConfig::unicast_checksum_compat`]).

use std::net::IpAddr;

use crate::constants::IP_PROTOCOL;
use crate::packet::Version;

/// Which checksum a VRRPv3 advert over IPv4 carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum V3Ipv4Checksum {
    /// Include the IPv4 pseudo-header, as RFC 5798 reads and keepalived does
    /// by default. Wireshark also checks this form by default.
    #[default]
    PseudoHeader,
    /// The message alone, like VRRPv2: keepalived's `v3_checksum_as_v2`,
    /// RFC 9568 section 5.2.8, Cisco and some other routers.
    MessageOnly,
}

/// Which VRRPv3-over-IPv4 checksums a receiver accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum V3Ipv4ChecksumRx {
    /// Only the pseudo-header form (keepalived default).
    #[default]
    PseudoHeader,
    /// Only the message-only form (keepalived `v3_checksum_as_v2`).
    MessageOnly,
    /// Either form (more liberal than keepalived, which accepts one).
    Either,
}

impl From<V3Ipv4Checksum> for V3Ipv4ChecksumRx {
    fn from(tx: V3Ipv4Checksum) -> Self {
        match tx {
            V3Ipv4Checksum::PseudoHeader => V3Ipv4ChecksumRx::PseudoHeader,
            V3Ipv4Checksum::MessageOnly => V3Ipv4ChecksumRx::MessageOnly,
        }
    }
}

/// A running one's complement sum over 16-bit big-endian words.
#[derive(Debug, Clone, Copy, Default)]
struct Sum {
    acc: u64,
    /// A byte left over from an odd-length chunk, waiting for its partner.
    odd: Option<u8>,
}

impl Sum {
    fn add(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        if let Some(hi) = self.odd.take() {
            match rest.split_first() {
                Some((lo, tail)) => {
                    self.acc += u64::from(u16::from_be_bytes([hi, *lo]));
                    rest = tail;
                }
                None => {
                    self.odd = Some(hi);
                    return;
                }
            }
        }
        let mut words = rest.chunks_exact(2);
        for w in &mut words {
            self.acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
        }
        if let [last] = words.remainder() {
            self.odd = Some(*last);
        }
    }

    fn finish(mut self) -> u16 {
        if let Some(hi) = self.odd.take() {
            self.acc += u64::from(u16::from_be_bytes([hi, 0]));
        }
        while self.acc > 0xffff {
            self.acc = (self.acc & 0xffff) + (self.acc >> 16);
        }
        // The loop leaves acc <= 0xffff.
        !(self.acc as u16)
    }
}

/// The Internet checksum (RFC 1071) of the concatenation of `parts`: the
/// one's complement of the one's complement sum of 16-bit big-endian words,
/// an odd trailing byte padded with zero.
///
/// ```
/// // The example of RFC 1071 section 3: the sum is 0xddf2.
/// let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
/// assert_eq!(vrrp_proto::checksum::internet_checksum(&[&data]), !0xddf2);
/// ```
pub fn internet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum = Sum::default();
    for part in parts {
        sum.add(part);
    }
    sum.finish()
}

/// The IPv4 pseudo-header keepalived sums for VRRPv3: source, destination,
/// a zero byte, protocol 112, and the VRRP message length.
fn ipv4_pseudo_header(src: [u8; 4], dst: [u8; 4], len: u16) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[0..4].copy_from_slice(&src);
    h[4..8].copy_from_slice(&dst);
    h[9] = IP_PROTOCOL;
    h[10..12].copy_from_slice(&len.to_be_bytes());
    h
}

/// The IPv6 pseudo-header of RFC 8200 section 8.1: source, destination,
/// 32-bit upper-layer length, three zero bytes, next header 112.
fn ipv6_pseudo_header(src: [u8; 16], dst: [u8; 16], len: u32) -> [u8; 40] {
    let mut h = [0u8; 40];
    h[0..16].copy_from_slice(&src);
    h[16..32].copy_from_slice(&dst);
    h[32..36].copy_from_slice(&len.to_be_bytes());
    h[39] = IP_PROTOCOL;
    h
}

/// The checksum a VRRP message should carry.
///
/// `message` is the whole VRRP message; its checksum field (bytes 6 and 7)
/// is treated as zero whatever it holds. `src` and `dst` are the IP source
/// and destination of the packet; they are only used by the pseudo-header
/// variants (VRRPv3). For VRRPv3 over IPv4 `v3_ipv4` chooses the variant.
/// Mixed address families make the pseudo-header variants fall back to the
/// message-only sum; [`crate::packet::decode`] and
/// [`crate::packet::encode`] reject such endpoints before they get here.
///
/// ```
/// use vrrp_proto::checksum::{vrrp_checksum, V3Ipv4Checksum};
/// use vrrp_proto::packet::Version;
///
/// // A VRRPv2 advert: VRID 1, priority 100, one address 192.0.2.1,
/// // no authentication, 1 s interval.
/// let msg = [
///     0x21, 0x01, 0x64, 0x01, 0x00, 0x01, 0x00, 0x00,
///     192, 0, 2, 1,
///     0, 0, 0, 0, 0, 0, 0, 0,
/// ];
/// let src = "192.0.2.10".parse().unwrap();
/// let dst = "224.0.0.18".parse().unwrap();
/// let sum = vrrp_checksum(&msg, Version::V2, src, dst, V3Ipv4Checksum::PseudoHeader);
/// // 0x2101 + 0x6401 + 0x0001 + 0xc000 + 0x0201 = 0x14704 -> 0x4705 -> !0x4705
/// assert_eq!(sum, 0xb8fa);
/// ```
pub fn vrrp_checksum(
    message: &[u8],
    version: Version,
    src: IpAddr,
    dst: IpAddr,
    v3_ipv4: V3Ipv4Checksum,
) -> u16 {
    let head_len = message.len().min(6);
    let (head, rest) = message.split_at(head_len);
    let tail = rest.get(2..).unwrap_or(&[]);
    let zero = [0u8; 2];
    let field: &[u8] = if rest.len() >= 2 { &zero } else { rest };
    let body: [&[u8]; 3] = [head, field, tail];
    match (version, src, dst) {
        (Version::V3, IpAddr::V4(s), IpAddr::V4(d)) if v3_ipv4 == V3Ipv4Checksum::PseudoHeader => {
            let len = u16::try_from(message.len()).unwrap_or(u16::MAX);
            let ph = ipv4_pseudo_header(s.octets(), d.octets(), len);
            internet_checksum(&[&ph, body[0], body[1], body[2]])
        }
        (Version::V3, IpAddr::V6(s), IpAddr::V6(d)) => {
            let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
            let ph = ipv6_pseudo_header(s.octets(), d.octets(), len);
            internet_checksum(&[&ph, body[0], body[1], body[2]])
        }
        _ => internet_checksum(&body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(internet_checksum(&[&data]), !0xddf2u16);
    }

    #[test]
    fn odd_lengths_and_split_chunks_agree() {
        let data: Vec<u8> = (0u8..=250).collect();
        let whole = internet_checksum(&[&data]);
        for cut in 0..data.len() {
            let (a, b) = data.split_at(cut);
            assert_eq!(internet_checksum(&[a, b]), whole, "cut at {cut}");
        }
        // Odd trailing byte is padded with zero on the right.
        assert_eq!(internet_checksum(&[&[0x12]]), !0x1200u16);
    }

    #[test]
    fn carries_fold() {
        assert_eq!(internet_checksum(&[&[0xff, 0xff, 0xff, 0xff]]), 0x0000);
        assert_eq!(internet_checksum(&[&[0x80, 0x00, 0x80, 0x00]]), !0x0001u16);
        assert_eq!(internet_checksum(&[]), 0xffff);
    }

    #[test]
    fn checksum_field_is_ignored() {
        let src: IpAddr = "10.0.0.1".parse().unwrap();
        let dst: IpAddr = "224.0.0.18".parse().unwrap();
        let mut msg = [
            0x31, 0x05, 0x64, 0x01, 0x00, 0x64, 0x00, 0x00, 10, 0, 0, 100,
        ];
        let a = vrrp_checksum(&msg, Version::V3, src, dst, V3Ipv4Checksum::PseudoHeader);
        msg[6] = 0xab;
        msg[7] = 0xcd;
        let b = vrrp_checksum(&msg, Version::V3, src, dst, V3Ipv4Checksum::PseudoHeader);
        assert_eq!(a, b);
    }

    #[test]
    fn variants_differ_where_they_should() {
        let src: IpAddr = "10.0.0.1".parse().unwrap();
        let dst: IpAddr = "224.0.0.18".parse().unwrap();
        let msg = [
            0x31, 0x05, 0x64, 0x01, 0x00, 0x64, 0x00, 0x00, 10, 0, 0, 100,
        ];
        let ph = vrrp_checksum(&msg, Version::V3, src, dst, V3Ipv4Checksum::PseudoHeader);
        let mo = vrrp_checksum(&msg, Version::V3, src, dst, V3Ipv4Checksum::MessageOnly);
        assert_ne!(ph, mo);
        // v2 never uses a pseudo-header, whatever the option says.
        let v2a = vrrp_checksum(&msg, Version::V2, src, dst, V3Ipv4Checksum::PseudoHeader);
        let v2b = vrrp_checksum(&msg, Version::V2, src, dst, V3Ipv4Checksum::MessageOnly);
        assert_eq!(v2a, v2b);
        assert_eq!(v2a, mo);
        // The pseudo-header checksum depends on the destination (unicast).
        let uni: IpAddr = "10.0.0.2".parse().unwrap();
        assert_ne!(
            ph,
            vrrp_checksum(&msg, Version::V3, src, uni, V3Ipv4Checksum::PseudoHeader)
        );
    }

    #[test]
    fn pseudo_header_layouts() {
        let h = ipv4_pseudo_header([1, 2, 3, 4], [5, 6, 7, 8], 0x0102);
        assert_eq!(h, [1, 2, 3, 4, 5, 6, 7, 8, 0, 112, 1, 2]);
        let h6 = ipv6_pseudo_header([1; 16], [2; 16], 0x0a0b0c0d);
        assert_eq!(&h6[0..16], &[1; 16]);
        assert_eq!(&h6[16..32], &[2; 16]);
        assert_eq!(&h6[32..40], &[0x0a, 0x0b, 0x0c, 0x0d, 0, 0, 0, 112]);
    }
}
