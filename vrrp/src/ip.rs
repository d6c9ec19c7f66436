//! The IPv4 header around an advert, for raw sockets.
//!
//! An IPv4 raw socket delivers the IP header with the payload, and
//! keepalived sends with `IP_HDRINCL`. These helpers read and build that
//! header so the daemon does not have to. (IPv6 raw sockets deliver the
//! payload only; source, destination and hop limit come from ancillary
//! data.)

use std::net::{IpAddr, Ipv4Addr};

use crate::checksum::internet_checksum;
use crate::constants::{IP_PROTOCOL, TOS};
use crate::packet::{PacketError, RxMeta};

/// Length of an IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;

/// Splits an IPv4 datagram read from a raw socket into the [`RxMeta`] of
/// the advert and the VRRP payload.
///
/// Checks the IP version, the header length, the protocol (112; 51 is
/// keepalived's IPsec AH, reported as [`PacketError::NotVrrp`]) and that the
/// total length field matches the bytes received, as keepalived does.
///
/// ```
/// use vrrp_proto::ip::{ipv4_header, split_ipv4};
///
/// let payload = [0x31, 0x33, 0x64, 0x01, 0x00, 0x64, 0x78, 0x73, 192, 168, 200, 16];
/// let mut datagram = ipv4_header(
///     "192.168.200.2".parse().unwrap(),
///     "224.0.0.18".parse().unwrap(),
///     payload.len(),
///     1,
///     255,
/// )
/// .to_vec();
/// datagram.extend_from_slice(&payload);
/// let (meta, vrrp) = split_ipv4(&datagram).unwrap();
/// assert_eq!(meta.ttl, 255);
/// assert_eq!(vrrp, &payload);
/// ```
pub fn split_ipv4(datagram: &[u8]) -> Result<(RxMeta, &[u8]), PacketError> {
    let header: &[u8; IPV4_HEADER_LEN] =
        datagram.first_chunk().ok_or(PacketError::BadIpv4Header)?;
    if header[0] >> 4 != 4 {
        return Err(PacketError::BadIpv4Header);
    }
    let ihl = usize::from(header[0] & 0x0f) * 4;
    if ihl < IPV4_HEADER_LEN || datagram.len() < ihl {
        return Err(PacketError::BadIpv4Header);
    }
    let total = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if total != datagram.len() {
        return Err(PacketError::IpLengthMismatch {
            header: total,
            received: datagram.len(),
        });
    }
    if header[9] != IP_PROTOCOL {
        return Err(PacketError::NotVrrp(header[9]));
    }
    let meta = RxMeta {
        src: IpAddr::V4(Ipv4Addr::new(
            header[12], header[13], header[14], header[15],
        )),
        dst: IpAddr::V4(Ipv4Addr::new(
            header[16], header[17], header[18], header[19],
        )),
        ttl: header[8],
    };
    Ok((meta, &datagram[ihl..]))
}

/// An IPv4 header for an advert of `payload_len` bytes, as keepalived
/// builds it: TOS 0xc0, no fragmentation flags, protocol 112, header
/// checksum filled in. `id` goes into the identification field (the
/// kernel replaces 0 with its own); `ttl` is normally [`crate::TTL`].
pub fn ipv4_header(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    payload_len: usize,
    id: u16,
    ttl: u8,
) -> [u8; IPV4_HEADER_LEN] {
    let total = u16::try_from(IPV4_HEADER_LEN + payload_len).unwrap_or(u16::MAX);
    let mut h = [0u8; IPV4_HEADER_LEN];
    h[0] = 0x45;
    h[1] = TOS;
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    h[8] = ttl;
    h[9] = IP_PROTOCOL;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let sum = internet_checksum(&[&h]);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn header_matches_hand_built_bytes() {
        // 45 c0 0020 1234 0000 ff 70 3fbc c0a8c802 e0000012, checksum
        // computed separately (RFC 1071 over the 20 bytes).
        let h = ipv4_header(v4("192.168.200.2"), v4("224.0.0.18"), 12, 0x1234, 255);
        let want = [
            0x45, 0xc0, 0x00, 0x20, 0x12, 0x34, 0x00, 0x00, 0xff, 0x70, 0x3f, 0xbc, 0xc0, 0xa8,
            0xc8, 0x02, 0xe0, 0x00, 0x00, 0x12,
        ];
        assert_eq!(h, want);
        assert_eq!(internet_checksum(&[&h]), 0);
    }

    fn datagram(payload: &[u8]) -> Vec<u8> {
        let mut d = ipv4_header(v4("10.0.0.1"), v4("224.0.0.18"), payload.len(), 7, 254).to_vec();
        d.extend_from_slice(payload);
        d
    }

    #[test]
    fn split_round_trip() {
        let d = datagram(&[1, 2, 3, 4]);
        let (meta, p) = split_ipv4(&d).unwrap();
        assert_eq!(meta.src, IpAddr::V4(v4("10.0.0.1")));
        assert_eq!(meta.dst, IpAddr::V4(v4("224.0.0.18")));
        assert_eq!(meta.ttl, 254);
        assert_eq!(p, &[1, 2, 3, 4]);
    }

    #[test]
    fn options_are_skipped() {
        let mut d = datagram(&[9, 9]);
        // Grow the header to 24 bytes with one 4-byte option (NOPs + EOL).
        d.splice(20..20, [1, 1, 1, 0]);
        d[0] = 0x46;
        let total = u16::try_from(d.len()).unwrap();
        d[2..4].copy_from_slice(&total.to_be_bytes());
        let (_, p) = split_ipv4(&d).unwrap();
        assert_eq!(p, &[9, 9]);
    }

    #[test]
    fn bad_headers() {
        assert_eq!(split_ipv4(&[0x45; 10]), Err(PacketError::BadIpv4Header));
        let mut d = datagram(&[0; 8]);
        d[0] = 0x65;
        assert_eq!(split_ipv4(&d), Err(PacketError::BadIpv4Header));
        let mut d = datagram(&[0; 8]);
        d[0] = 0x44;
        assert_eq!(split_ipv4(&d), Err(PacketError::BadIpv4Header));
        let mut d = datagram(&[0; 8]);
        d[0] = 0x4f; // 60-byte header in a 28-byte datagram
        assert_eq!(split_ipv4(&d), Err(PacketError::BadIpv4Header));
        let mut d = datagram(&[0; 8]);
        d[9] = 51;
        assert_eq!(split_ipv4(&d), Err(PacketError::NotVrrp(51)));
        let mut d = datagram(&[0; 8]);
        d.push(0);
        assert_eq!(
            split_ipv4(&d),
            Err(PacketError::IpLengthMismatch {
                header: 28,
                received: 29
            })
        );
    }
}
