//! Protocol constants shared by the wire format and the daemon's sockets.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::packet::AddressFamily;

/// IP protocol number of VRRP (IPv4 protocol / IPv6 next header).
pub const IP_PROTOCOL: u8 = 112;

/// IP protocol number of IPsec AH, which keepalived puts in front of a
/// VRRPv2 advertisement when `auth_type AH` is configured.
pub const IP_PROTOCOL_AH: u8 = 51;

/// The IPv4 multicast group adverts are sent to.
pub const IPV4_MULTICAST: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

/// The IPv6 multicast group adverts are sent to.
pub const IPV6_MULTICAST: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// The IPv4 TTL / IPv6 hop limit adverts are sent with, and must arrive with.
pub const TTL: u8 = 255;

/// IPv4 TOS / IPv6 traffic class keepalived sends adverts with
/// ("internetwork control", DSCP CS6).
pub const TOS: u8 = 0xc0;

/// The VRRP packet type of an advertisement (the only type defined).
pub const ADVERTISEMENT_TYPE: u8 = 1;

/// Priority a router sends when it stops being master (shutdown, fault).
pub const PRIORITY_STOP: u8 = 0;

/// Priority of the router that owns the virtual addresses.
pub const PRIORITY_OWNER: u8 = 255;

/// Default priority of a backup router (RFC 5798 section 5.2.4).
pub const PRIORITY_DEFAULT: u8 = 100;

/// Largest VRRPv3 Max Advertise Interval, in centiseconds (12 bits).
pub const MAX_V3_INTERVAL_CENTIS: u16 = 0x0fff;

/// The virtual router MAC address: `00:00:5e:00:01:VRID` for IPv4 and
/// `00:00:5e:00:02:VRID` for IPv6 (RFC 5798 section 7.3).
///
/// ```
/// use vrrp_proto::{virtual_mac, AddressFamily};
///
/// assert_eq!(virtual_mac(AddressFamily::Ipv4, 51), [0x00, 0x00, 0x5e, 0x00, 0x01, 51]);
/// assert_eq!(virtual_mac(AddressFamily::Ipv6, 7), [0x00, 0x00, 0x5e, 0x00, 0x02, 7]);
/// ```
pub const fn virtual_mac(family: AddressFamily, vrid: u8) -> [u8; 6] {
    let kind = match family {
        AddressFamily::Ipv4 => 0x01,
        AddressFamily::Ipv6 => 0x02,
    };
    [0x00, 0x00, 0x5e, 0x00, kind, vrid]
}

/// The multicast group adverts of `family` are sent to.
pub const fn multicast_group(family: AddressFamily) -> std::net::IpAddr {
    match family {
        AddressFamily::Ipv4 => std::net::IpAddr::V4(IPV4_MULTICAST),
        AddressFamily::Ipv6 => std::net::IpAddr::V6(IPV6_MULTICAST),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_constants() {
        assert_eq!(IP_PROTOCOL, 112);
        assert_eq!(IPV4_MULTICAST.octets(), [224, 0, 0, 18]);
        assert_eq!(
            IPV6_MULTICAST.octets(),
            [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12]
        );
        assert_eq!(TTL, 255);
        assert_eq!(TOS, 0xc0);
        assert_eq!(MAX_V3_INTERVAL_CENTIS, 4095);
    }

    #[test]
    fn virtual_macs() {
        assert_eq!(
            virtual_mac(AddressFamily::Ipv4, 255),
            [0x00, 0x00, 0x5e, 0x00, 0x01, 0xff]
        );
        assert_eq!(
            virtual_mac(AddressFamily::Ipv6, 1),
            [0x00, 0x00, 0x5e, 0x00, 0x02, 0x01]
        );
    }

    #[test]
    fn groups() {
        assert_eq!(
            multicast_group(AddressFamily::Ipv4),
            std::net::IpAddr::V4(IPV4_MULTICAST)
        );
        assert_eq!(
            multicast_group(AddressFamily::Ipv6),
            std::net::IpAddr::V6(IPV6_MULTICAST)
        );
    }
}
