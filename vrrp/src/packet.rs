//! VRRP advertisement encoding and decoding (RFC 3768, RFC 5798, RFC 9568).
//!
//! Wire layout (all multi-byte fields big-endian):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Type  | Virtual Rtr ID|   Priority    | Count IPvX Addr|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! v2: |  Auth Type  | Adver Int (s) |          Checksum             |
//! v3: |(rsvd)| Max Adver Int (cs) |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |        IPvX address(es): 4 bytes each (IPv4), 16 (IPv6)       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! v2 only:    Authentication Data (8 bytes)                       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! VRRPv2 is IPv4 only here, as in RFC 3768 (keepalived has a
//! non-standard VRRPv2-over-IPv6 layout without the authentication data;
//! it is refused with [`PacketError::V2OverIpv6`]).
//!
//! [`decode`] takes the VRRP payload (the bytes after the IPv4 header, or
//! the IPv6 payload) and the IP-level facts it needs in an [`RxMeta`]. It
//! checks structure and checksum only; whether the advert is meant for a
//! given instance is the job of [`crate::Instance::receive`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use thiserror::Error;

use crate::checksum::{V3Ipv4Checksum, V3Ipv4ChecksumRx, vrrp_checksum};
use crate::constants::{ADVERTISEMENT_TYPE, MAX_V3_INTERVAL_CENTIS};

/// Length of the fixed VRRP header.
pub const HEADER_LEN: usize = 8;

/// Length of the VRRPv2 authentication data that follows the addresses.
pub const AUTH_DATA_LEN: usize = 8;

/// Errors of the packet layer: decoding and encoding adverts.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PacketError {
    /// Fewer bytes than the fixed 8-byte header.
    #[error("packet too short: {len} bytes, the VRRP header alone is 8")]
    TooShort {
        /// Bytes received.
        len: usize,
    },
    /// The version nibble is neither 2 nor 3.
    #[error("unsupported VRRP version {0}")]
    UnsupportedVersion(u8),
    /// The type nibble is not 1 (advertisement).
    #[error("VRRP packet type {0} is not an advertisement (1)")]
    NotAnAdvertisement(u8),
    /// The length does not match the count of addresses: the packet is
    /// truncated (`actual < expected`) or carries trailing bytes.
    #[error("length {actual} does not match the {expected} bytes implied by the address count")]
    LengthMismatch {
        /// Bytes implied by the header's address count and the family.
        expected: usize,
        /// Bytes received.
        actual: usize,
    },
    /// The checksum does not verify.
    #[error("bad checksum {received:#06x}, expected {expected:#06x}")]
    BadChecksum {
        /// The value in the packet.
        received: u16,
        /// The value the packet should carry (the configured variant, or
        /// the pseudo-header variant when either is accepted).
        expected: u16,
    },
    /// IP source and destination are of different address families, or
    /// an advertised address is not of the family of the endpoints.
    #[error("mixed address families")]
    MixedFamilies,
    /// VRRPv2 over IPv6 (not standard; see the module documentation).
    #[error("VRRPv2 over IPv6 is not supported")]
    V2OverIpv6,
    /// More than 255 addresses to encode.
    #[error("{0} addresses do not fit the 8-bit count")]
    TooManyAddresses(usize),
    /// A VRRPv3 interval above 4095 centiseconds.
    #[error("VRRPv3 interval {0} cs does not fit 12 bits")]
    IntervalTooLong(u16),
    /// Encoding an authentication type we cannot produce (AH or unknown).
    #[error("cannot encode authentication type {0}")]
    UnsupportedAuth(u8),
    /// Not a well-formed IPv4 header (version, header length).
    #[error("malformed IPv4 header")]
    BadIpv4Header,
    /// The IPv4 total length differs from the bytes received.
    #[error("IPv4 total length {header} but {received} bytes received")]
    IpLengthMismatch {
        /// The total length field.
        header: usize,
        /// Bytes received.
        received: usize,
    },
    /// The IP protocol is not 112 (51 is keepalived's IPsec AH).
    #[error("IP protocol {0} is not VRRP")]
    NotVrrp(u8),
}

/// VRRP protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// VRRPv2, RFC 3768: IPv4, whole-second intervals, authentication field.
    V2,
    /// VRRPv3, RFC 5798 / RFC 9568: IPv4 and IPv6, centisecond intervals.
    V3,
}

impl Version {
    /// The value of the version nibble.
    pub const fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// IP address family of an instance / advert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressFamily {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
}

impl AddressFamily {
    /// The family of `addr`.
    pub const fn of(addr: &IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => AddressFamily::Ipv4,
            IpAddr::V6(_) => AddressFamily::Ipv6,
        }
    }

    /// Bytes one address takes on the wire.
    pub const fn address_len(self) -> usize {
        match self {
            AddressFamily::Ipv4 => 4,
            AddressFamily::Ipv6 => 16,
        }
    }
}

/// VRRPv2 authentication (RFC 3768 section 5.3.6, RFC 2338).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Auth {
    /// Type 0: no authentication. The 8 data bytes are sent as zero and
    /// ignored on receipt.
    None,
    /// Type 1: a clear-text password of up to 8 bytes, zero padded.
    SimpleText([u8; AUTH_DATA_LEN]),
    /// Type 2: IPsec AH (RFC 2338). keepalived sends it with IP protocol 51
    /// and an AH header before the VRRP message. Decoded so it can be
    /// reported; not supported otherwise.
    IpsecAh,
    /// Any other type code. Decoded so it can be reported.
    Unknown(u8),
}

impl Auth {
    /// The authentication type code on the wire.
    pub const fn type_code(&self) -> u8 {
        match self {
            Auth::None => 0,
            Auth::SimpleText(_) => 1,
            Auth::IpsecAh => 2,
            Auth::Unknown(t) => *t,
        }
    }

    /// A simple-text password, truncated to 8 bytes and zero padded like
    /// keepalived does with `auth_pass`.
    ///
    /// ```
    /// use vrrp_proto::Auth;
    /// assert_eq!(Auth::password(b"secret"), Auth::SimpleText(*b"secret\0\0"));
    /// ```
    pub fn password(pass: &[u8]) -> Self {
        let mut data = [0u8; AUTH_DATA_LEN];
        let n = pass.len().min(AUTH_DATA_LEN);
        data[..n].copy_from_slice(&pass[..n]);
        Auth::SimpleText(data)
    }
}

/// The fields that differ between VRRPv2 and VRRPv3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VersionFields {
    /// VRRPv2.
    V2 {
        /// Authentication type and data.
        auth: Auth,
        /// Advertisement interval in whole seconds.
        adver_int_secs: u8,
    },
    /// VRRPv3.
    V3 {
        /// Max Advertise Interval in centiseconds (12 bits, at most 4095).
        /// The 4 reserved bits are sent as zero and ignored on receipt.
        max_adver_int_centis: u16,
    },
}

/// A decoded VRRP advertisement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Advertisement {
    /// Virtual router identifier.
    pub vrid: u8,
    /// Priority of the sender: 0 = stop being master, 255 = address owner.
    pub priority: u8,
    /// Version-specific fields.
    pub fields: VersionFields,
    /// The virtual addresses, all of the family of the IP packet.
    pub addresses: Vec<IpAddr>,
}

impl Advertisement {
    /// The protocol version.
    pub const fn version(&self) -> Version {
        match self.fields {
            VersionFields::V2 { .. } => Version::V2,
            VersionFields::V3 { .. } => Version::V3,
        }
    }

    /// The advertised interval as a duration (seconds in v2, centiseconds
    /// in v3).
    pub fn interval(&self) -> Duration {
        match self.fields {
            VersionFields::V2 { adver_int_secs, .. } => {
                Duration::from_secs(u64::from(adver_int_secs))
            }
            VersionFields::V3 {
                max_adver_int_centis,
            } => Duration::from_millis(10 * u64::from(max_adver_int_centis)),
        }
    }

    /// The VRRPv2 authentication, `None` for VRRPv3.
    pub const fn auth(&self) -> Option<&Auth> {
        match &self.fields {
            VersionFields::V2 { auth, .. } => Some(auth),
            VersionFields::V3 { .. } => None,
        }
    }

    /// Bytes this advert takes on the wire in `family`.
    pub fn wire_len(&self, family: AddressFamily) -> usize {
        wire_len(self.version(), family, self.addresses.len())
    }
}

fn wire_len(version: Version, family: AddressFamily, count: usize) -> usize {
    let auth = match version {
        Version::V2 => AUTH_DATA_LEN,
        Version::V3 => 0,
    };
    HEADER_LEN + count * family.address_len() + auth
}

/// IP-level facts about a received advert, supplied by the socket layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RxMeta {
    /// IP source address.
    pub src: IpAddr,
    /// IP destination address (the multicast group or our unicast address).
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit (`IP_RECVTTL` / `IPV6_RECVHOPLIMIT`).
    pub ttl: u8,
}

impl RxMeta {
    /// The address family of the packet, if source and destination agree.
    pub fn family(&self) -> Option<AddressFamily> {
        let f = AddressFamily::of(&self.src);
        (f == AddressFamily::of(&self.dst)).then_some(f)
    }
}

/// The VRRP version and VRID of a packet, read without any validation, for
/// dispatching a packet to the instance it belongs to.
///
/// ```
/// use vrrp_proto::packet::{peek, Version};
/// assert_eq!(peek(&[0x31, 42, 100, 1]), Some((Version::V3, 42)));
/// assert_eq!(peek(&[0x41, 42]), None);
/// ```
pub fn peek(payload: &[u8]) -> Option<(Version, u8)> {
    let version = match payload.first()? >> 4 {
        2 => Version::V2,
        3 => Version::V3,
        _ => return None,
    };
    Some((version, *payload.get(1)?))
}

/// Decodes and verifies an advert.
///
/// Checks, in order: header length, version (2 or 3), type (1), address
/// family of the endpoints, total length against the address count, and
/// the checksum. For VRRPv3 over IPv4, `v3_ipv4` says which checksum
/// variants are accepted. Nothing else is checked here (TTL, VRID,
/// authentication, interval: see [`crate::Instance::receive`]).
///
/// ```
/// use vrrp_proto::packet::{decode, RxMeta, VersionFields};
/// use vrrp_proto::checksum::V3Ipv4ChecksumRx;
///
/// // VRRPv3, VRID 1, priority 100, 1 address, 100 cs, checksum with the
/// // IPv4 pseudo-header for 192.0.2.10 -> 224.0.0.18.
/// let bytes = [0x31, 0x01, 0x64, 0x01, 0x00, 0x64, 0x05, 0xfe, 192, 0, 2, 1];
/// let meta = RxMeta {
///     src: "192.0.2.10".parse().unwrap(),
///     dst: "224.0.0.18".parse().unwrap(),
///     ttl: 255,
/// };
/// let adv = decode(&bytes, &meta, V3Ipv4ChecksumRx::PseudoHeader).unwrap();
/// assert_eq!(adv.priority, 100);
/// assert_eq!(adv.fields, VersionFields::V3 { max_adver_int_centis: 100 });
/// assert_eq!(adv.addresses, vec!["192.0.2.1".parse::<std::net::IpAddr>().unwrap()]);
/// ```
pub fn decode(
    payload: &[u8],
    meta: &RxMeta,
    v3_ipv4: V3Ipv4ChecksumRx,
) -> Result<Advertisement, PacketError> {
    let header: &[u8; HEADER_LEN] = payload
        .first_chunk()
        .ok_or(PacketError::TooShort { len: payload.len() })?;
    let version = match header[0] >> 4 {
        2 => Version::V2,
        3 => Version::V3,
        v => return Err(PacketError::UnsupportedVersion(v)),
    };
    let kind = header[0] & 0x0f;
    if kind != ADVERTISEMENT_TYPE {
        return Err(PacketError::NotAnAdvertisement(kind));
    }
    let family = meta.family().ok_or(PacketError::MixedFamilies)?;
    if version == Version::V2 && family == AddressFamily::Ipv6 {
        return Err(PacketError::V2OverIpv6);
    }
    let count = usize::from(header[3]);
    let expected = wire_len(version, family, count);
    if payload.len() != expected {
        return Err(PacketError::LengthMismatch {
            expected,
            actual: payload.len(),
        });
    }

    let received = u16::from_be_bytes([header[6], header[7]]);
    let sum = |variant| vrrp_checksum(payload, version, meta.src, meta.dst, variant);
    let primary = match v3_ipv4 {
        V3Ipv4ChecksumRx::MessageOnly => V3Ipv4Checksum::MessageOnly,
        V3Ipv4ChecksumRx::PseudoHeader | V3Ipv4ChecksumRx::Either => V3Ipv4Checksum::PseudoHeader,
    };
    let expected_sum = sum(primary);
    let ok = received == expected_sum
        || (v3_ipv4 == V3Ipv4ChecksumRx::Either && received == sum(V3Ipv4Checksum::MessageOnly));
    if !ok {
        return Err(PacketError::BadChecksum {
            received,
            expected: expected_sum,
        });
    }

    let addr_len = family.address_len();
    let addr_bytes = &payload[HEADER_LEN..HEADER_LEN + count * addr_len];
    let addresses = addr_bytes
        .chunks_exact(addr_len)
        .map(|c| match family {
            AddressFamily::Ipv4 => IpAddr::V4(Ipv4Addr::from([c[0], c[1], c[2], c[3]])),
            AddressFamily::Ipv6 => {
                let mut o = [0u8; 16];
                o.copy_from_slice(c);
                IpAddr::V6(Ipv6Addr::from(o))
            }
        })
        .collect();

    let fields = match version {
        Version::V2 => {
            let data_start = HEADER_LEN + count * addr_len;
            let mut data = [0u8; AUTH_DATA_LEN];
            data.copy_from_slice(&payload[data_start..data_start + AUTH_DATA_LEN]);
            let auth = match header[4] {
                0 => Auth::None,
                1 => Auth::SimpleText(data),
                2 => Auth::IpsecAh,
                t => Auth::Unknown(t),
            };
            VersionFields::V2 {
                auth,
                adver_int_secs: header[5],
            }
        }
        Version::V3 => VersionFields::V3 {
            max_adver_int_centis: u16::from_be_bytes([header[4], header[5]])
                & MAX_V3_INTERVAL_CENTIS,
        },
    };

    Ok(Advertisement {
        vrid: header[1],
        priority: header[2],
        fields,
        addresses,
    })
}

/// Encodes an advert sent from `src` to `dst`, checksum included.
///
/// `dst` is the multicast group, or the peer for unicast: it goes into the
/// pseudo-header of VRRPv3, so a unicast advert must be encoded once per
/// peer. For VRRPv3 over IPv4, `v3_ipv4` selects the checksum variant.
///
/// ```
/// use vrrp_proto::packet::{encode, Advertisement, VersionFields};
/// use vrrp_proto::checksum::V3Ipv4Checksum;
///
/// let adv = Advertisement {
///     vrid: 1,
///     priority: 100,
///     fields: VersionFields::V3 { max_adver_int_centis: 100 },
///     addresses: vec!["192.0.2.1".parse().unwrap()],
/// };
/// let bytes = encode(
///     &adv,
///     "192.0.2.10".parse().unwrap(),
///     "224.0.0.18".parse().unwrap(),
///     V3Ipv4Checksum::PseudoHeader,
/// )
/// .unwrap();
/// assert_eq!(bytes, [0x31, 0x01, 0x64, 0x01, 0x00, 0x64, 0x05, 0xfe, 192, 0, 2, 1]);
/// ```
pub fn encode(
    adv: &Advertisement,
    src: IpAddr,
    dst: IpAddr,
    v3_ipv4: V3Ipv4Checksum,
) -> Result<Vec<u8>, PacketError> {
    let family = AddressFamily::of(&src);
    if AddressFamily::of(&dst) != family
        || adv.addresses.iter().any(|a| AddressFamily::of(a) != family)
    {
        return Err(PacketError::MixedFamilies);
    }
    let version = adv.version();
    if version == Version::V2 && family == AddressFamily::Ipv6 {
        return Err(PacketError::V2OverIpv6);
    }
    let count = u8::try_from(adv.addresses.len())
        .map_err(|_| PacketError::TooManyAddresses(adv.addresses.len()))?;

    let mut out = Vec::with_capacity(adv.wire_len(family));
    out.push((version.number() << 4) | ADVERTISEMENT_TYPE);
    out.push(adv.vrid);
    out.push(adv.priority);
    out.push(count);
    let mut auth_data = None;
    match adv.fields {
        VersionFields::V2 {
            auth,
            adver_int_secs,
        } => {
            let data = match auth {
                Auth::None => [0u8; AUTH_DATA_LEN],
                Auth::SimpleText(data) => data,
                other => return Err(PacketError::UnsupportedAuth(other.type_code())),
            };
            auth_data = Some(data);
            out.push(auth.type_code());
            out.push(adver_int_secs);
        }
        VersionFields::V3 {
            max_adver_int_centis,
        } => {
            if max_adver_int_centis > MAX_V3_INTERVAL_CENTIS {
                return Err(PacketError::IntervalTooLong(max_adver_int_centis));
            }
            out.extend_from_slice(&max_adver_int_centis.to_be_bytes());
        }
    }
    out.extend_from_slice(&[0, 0]);
    for a in &adv.addresses {
        match a {
            IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()),
            IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()),
        }
    }
    if let Some(data) = auth_data {
        out.extend_from_slice(&data);
    }
    let sum = vrrp_checksum(&out, version, src, dst, v3_ipv4);
    out[6..8].copy_from_slice(&sum.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::constants::{IPV4_MULTICAST, IPV6_MULTICAST};

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn meta4(src: &str) -> RxMeta {
        RxMeta {
            src: v4(src),
            dst: IpAddr::V4(IPV4_MULTICAST),
            ttl: 255,
        }
    }

    fn meta6(src: &str) -> RxMeta {
        RxMeta {
            src: v4(src),
            dst: IpAddr::V6(IPV6_MULTICAST),
            ttl: 255,
        }
    }

    fn v3_adv(addrs: &[&str]) -> Advertisement {
        Advertisement {
            vrid: 7,
            priority: 150,
            fields: VersionFields::V3 {
                max_adver_int_centis: 100,
            },
            addresses: addrs.iter().map(|a| v4(a)).collect(),
        }
    }

    fn v2_adv(auth: Auth) -> Advertisement {
        Advertisement {
            vrid: 51,
            priority: 100,
            fields: VersionFields::V2 {
                auth,
                adver_int_secs: 1,
            },
            addresses: vec![v4("10.0.0.100"), v4("10.0.0.101")],
        }
    }

    fn enc(adv: &Advertisement, m: &RxMeta, mode: V3Ipv4Checksum) -> Vec<u8> {
        encode(adv, m.src, m.dst, mode).unwrap()
    }

    #[test]
    fn version_type_byte() {
        let m = meta4("10.0.0.1");
        assert_eq!(
            enc(&v2_adv(Auth::None), &m, V3Ipv4Checksum::PseudoHeader)[0],
            0x21
        );
        assert_eq!(
            enc(&v3_adv(&["10.0.0.9"]), &m, V3Ipv4Checksum::PseudoHeader)[0],
            0x31
        );
    }

    #[test]
    fn v2_layout() {
        let m = meta4("10.0.0.1");
        let b = enc(
            &v2_adv(Auth::password(b"pw")),
            &m,
            V3Ipv4Checksum::PseudoHeader,
        );
        assert_eq!(b.len(), 8 + 2 * 4 + 8);
        assert_eq!(&b[0..6], &[0x21, 51, 100, 2, 1, 1]);
        assert_eq!(&b[8..16], &[10, 0, 0, 100, 10, 0, 0, 101]);
        assert_eq!(&b[16..24], b"pw\0\0\0\0\0\0");
        // The checksum makes the whole message sum to 0xffff.
        assert_eq!(crate::checksum::internet_checksum(&[&b]), 0);
    }

    #[test]
    fn v2_auth_none_sends_zero_data_and_ignores_received_data() {
        let m = meta4("10.0.0.1");
        let mut b = enc(&v2_adv(Auth::None), &m, V3Ipv4Checksum::PseudoHeader);
        assert_eq!(&b[16..24], &[0; 8]);
        // Garbage in the data of a type-0 advert decodes as Auth::None.
        b[16] = 0x55;
        let sum = vrrp_checksum(&b, Version::V2, m.src, m.dst, V3Ipv4Checksum::MessageOnly);
        b[6..8].copy_from_slice(&sum.to_be_bytes());
        let adv = decode(&b, &m, V3Ipv4ChecksumRx::PseudoHeader).unwrap();
        assert_eq!(adv.auth(), Some(&Auth::None));
    }

    #[test]
    fn v2_ah_and_unknown_auth_decode_but_do_not_encode() {
        let m = meta4("10.0.0.1");
        let mut b = enc(&v2_adv(Auth::None), &m, V3Ipv4Checksum::PseudoHeader);
        for (code, want) in [(2u8, Auth::IpsecAh), (9, Auth::Unknown(9))] {
            b[4] = code;
            let sum = vrrp_checksum(&b, Version::V2, m.src, m.dst, V3Ipv4Checksum::MessageOnly);
            b[6..8].copy_from_slice(&sum.to_be_bytes());
            let adv = decode(&b, &m, V3Ipv4ChecksumRx::PseudoHeader).unwrap();
            assert_eq!(adv.auth(), Some(&want));
            assert_eq!(
                encode(&adv, m.src, m.dst, V3Ipv4Checksum::PseudoHeader),
                Err(PacketError::UnsupportedAuth(code))
            );
        }
    }

    #[test]
    fn v3_interval_is_12_bits_and_reserved_bits_are_ignored() {
        let m = meta4("10.0.0.1");
        let mut adv = v3_adv(&["10.0.0.9"]);
        adv.fields = VersionFields::V3 {
            max_adver_int_centis: 4095,
        };
        let mut b = enc(&adv, &m, V3Ipv4Checksum::PseudoHeader);
        assert_eq!(&b[4..6], &[0x0f, 0xff]);
        b[4] |= 0xf0; // set the reserved bits
        let sum = vrrp_checksum(&b, Version::V3, m.src, m.dst, V3Ipv4Checksum::PseudoHeader);
        b[6..8].copy_from_slice(&sum.to_be_bytes());
        let back = decode(&b, &m, V3Ipv4ChecksumRx::PseudoHeader).unwrap();
        assert_eq!(back, adv);
        assert_eq!(back.interval(), Duration::from_millis(40_950));

        adv.fields = VersionFields::V3 {
            max_adver_int_centis: 4096,
        };
        assert_eq!(
            encode(&adv, m.src, m.dst, V3Ipv4Checksum::PseudoHeader),
            Err(PacketError::IntervalTooLong(4096))
        );
    }

    #[test]
    fn v3_ipv4_checksum_variants() {
        let m = meta4("10.0.0.1");
        let adv = v3_adv(&["10.0.0.9"]);
        let ph = enc(&adv, &m, V3Ipv4Checksum::PseudoHeader);
        let mo = enc(&adv, &m, V3Ipv4Checksum::MessageOnly);
        assert_ne!(ph[6..8], mo[6..8]);
        assert_eq!(crate::checksum::internet_checksum(&[&mo]), 0);

        use V3Ipv4ChecksumRx as Rx;
        assert!(decode(&ph, &m, Rx::PseudoHeader).is_ok());
        assert!(decode(&mo, &m, Rx::MessageOnly).is_ok());
        assert!(decode(&ph, &m, Rx::Either).is_ok());
        assert!(decode(&mo, &m, Rx::Either).is_ok());
        assert!(matches!(
            decode(&ph, &m, Rx::MessageOnly),
            Err(PacketError::BadChecksum { .. })
        ));
        let want = u16::from_be_bytes([ph[6], ph[7]]);
        assert_eq!(
            decode(&mo, &m, Rx::PseudoHeader),
            Err(PacketError::BadChecksum {
                received: u16::from_be_bytes([mo[6], mo[7]]),
                expected: want
            })
        );
    }

    #[test]
    fn v3_ipv4_pseudo_header_uses_the_real_destination() {
        // Unicast: the peer's address is in the pseudo-header.
        let uni = RxMeta {
            src: v4("10.0.0.1"),
            dst: v4("10.0.0.2"),
            ttl: 255,
        };
        let b = enc(&v3_adv(&["10.0.0.9"]), &uni, V3Ipv4Checksum::PseudoHeader);
        assert!(decode(&b, &uni, V3Ipv4ChecksumRx::PseudoHeader).is_ok());
        let mcast = meta4("10.0.0.1");
        assert!(decode(&b, &mcast, V3Ipv4ChecksumRx::PseudoHeader).is_err());
        // A different source also breaks it.
        let other = RxMeta {
            src: v4("10.0.0.3"),
            ..uni
        };
        assert!(decode(&b, &other, V3Ipv4ChecksumRx::PseudoHeader).is_err());
    }

    #[test]
    fn v3_ipv6_uses_pseudo_header_regardless_of_option() {
        let m = meta6("fe80::1");
        let adv = v3_adv(&["fe80::100", "2001:db8::100"]);
        let a = enc(&adv, &m, V3Ipv4Checksum::PseudoHeader);
        let b = enc(&adv, &m, V3Ipv4Checksum::MessageOnly);
        assert_eq!(a, b);
        assert_eq!(a.len(), 8 + 2 * 16);
        // Not the message-only sum.
        assert_ne!(crate::checksum::internet_checksum(&[&a]), 0);
        assert_eq!(decode(&a, &m, V3Ipv4ChecksumRx::MessageOnly).unwrap(), adv);
        let other = meta6("fe80::2");
        assert!(matches!(
            decode(&a, &other, V3Ipv4ChecksumRx::Either),
            Err(PacketError::BadChecksum { .. })
        ));
    }

    #[test]
    fn structural_errors() {
        let m = meta4("10.0.0.1");
        let rx = V3Ipv4ChecksumRx::PseudoHeader;
        assert_eq!(decode(&[], &m, rx), Err(PacketError::TooShort { len: 0 }));
        assert_eq!(
            decode(&[0x31; 7], &m, rx),
            Err(PacketError::TooShort { len: 7 })
        );
        let good = enc(
            &v3_adv(&["10.0.0.9", "10.0.0.8"]),
            &m,
            V3Ipv4Checksum::PseudoHeader,
        );

        let mut b = good.clone();
        b[0] = 0x41;
        assert_eq!(decode(&b, &m, rx), Err(PacketError::UnsupportedVersion(4)));
        b[0] = 0x11;
        assert_eq!(decode(&b, &m, rx), Err(PacketError::UnsupportedVersion(1)));
        b[0] = 0x32;
        assert_eq!(decode(&b, &m, rx), Err(PacketError::NotAnAdvertisement(2)));

        // Truncated: count says 2 addresses, only 1 present.
        assert_eq!(
            decode(&good[..12], &m, rx),
            Err(PacketError::LengthMismatch {
                expected: 16,
                actual: 12
            })
        );
        // Count larger than the payload.
        let mut b = good.clone();
        b[3] = 3;
        assert_eq!(
            decode(&b, &m, rx),
            Err(PacketError::LengthMismatch {
                expected: 20,
                actual: 16
            })
        );
        // Trailing bytes.
        let mut b = good.clone();
        b.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(
            decode(&b, &m, rx),
            Err(PacketError::LengthMismatch {
                expected: 16,
                actual: 20
            })
        );
        // Any flipped bit is caught by the checksum.
        for i in 0..good.len() * 8 {
            if (16..24).contains(&i) {
                continue; // priority byte: also changes the checksum, tested below
            }
            let mut b = good.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert!(decode(&b, &m, rx).is_err(), "bit {i}");
        }
        let mut b = good.clone();
        b[2] ^= 0x01;
        assert!(matches!(
            decode(&b, &m, rx),
            Err(PacketError::BadChecksum { .. })
        ));
    }

    #[test]
    fn family_errors() {
        let mixed = RxMeta {
            src: v4("10.0.0.1"),
            dst: IpAddr::V6(IPV6_MULTICAST),
            ttl: 255,
        };
        let m = meta4("10.0.0.1");
        let b = enc(&v3_adv(&["10.0.0.9"]), &m, V3Ipv4Checksum::PseudoHeader);
        assert_eq!(
            decode(&b, &mixed, V3Ipv4ChecksumRx::Either),
            Err(PacketError::MixedFamilies)
        );
        assert_eq!(
            encode(
                &v3_adv(&["fe80::1"]),
                m.src,
                m.dst,
                V3Ipv4Checksum::PseudoHeader
            ),
            Err(PacketError::MixedFamilies)
        );
        let m6 = meta6("fe80::1");
        let v2 = Advertisement {
            addresses: vec![v4("fe80::9")],
            ..v2_adv(Auth::None)
        };
        assert_eq!(
            encode(&v2, m6.src, m6.dst, V3Ipv4Checksum::PseudoHeader),
            Err(PacketError::V2OverIpv6)
        );
        let mut fake = vec![0x21, 1, 100, 0, 0, 1, 0, 0];
        fake.extend_from_slice(&[0; 8]);
        assert_eq!(
            decode(&fake, &m6, V3Ipv4ChecksumRx::Either),
            Err(PacketError::V2OverIpv6)
        );
    }

    #[test]
    fn too_many_addresses() {
        let m = meta4("10.0.0.1");
        let mut adv = v3_adv(&[]);
        adv.addresses = (0..256u32)
            .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
            .collect();
        assert_eq!(
            encode(&adv, m.src, m.dst, V3Ipv4Checksum::PseudoHeader),
            Err(PacketError::TooManyAddresses(256))
        );
        adv.addresses.pop();
        let b = enc(&adv, &m, V3Ipv4Checksum::PseudoHeader);
        assert_eq!(b[3], 255);
        assert_eq!(decode(&b, &m, V3Ipv4ChecksumRx::PseudoHeader).unwrap(), adv);
    }

    #[test]
    fn zero_addresses_round_trip() {
        let m = meta4("10.0.0.1");
        let adv = Advertisement {
            addresses: vec![],
            ..v2_adv(Auth::None)
        };
        let b = enc(&adv, &m, V3Ipv4Checksum::PseudoHeader);
        assert_eq!(b.len(), 16);
        assert_eq!(decode(&b, &m, V3Ipv4ChecksumRx::PseudoHeader).unwrap(), adv);
    }

    #[test]
    fn peek_reads_version_and_vrid() {
        assert_eq!(peek(&[0x21, 9]), Some((Version::V2, 9)));
        assert_eq!(peek(&[0x31]), None);
        assert_eq!(peek(&[]), None);
    }

    #[test]
    fn rx_meta_family() {
        assert_eq!(meta4("10.0.0.1").family(), Some(AddressFamily::Ipv4));
        assert_eq!(meta6("fe80::1").family(), Some(AddressFamily::Ipv6));
        let mixed = RxMeta {
            src: v4("10.0.0.1"),
            dst: IpAddr::V6(IPV6_MULTICAST),
            ttl: 1,
        };
        assert_eq!(mixed.family(), None);
    }
}
