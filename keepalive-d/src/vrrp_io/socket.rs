//! Raw IPv4 / IPv6 sockets for VRRP (IP protocol 112), bound to one
//! interface.
//!
//! IPv4: `IP_HDRINCL`, so adverts carry keepalived's header (TOS 0xc0,
//! TTL 255, our primary address as source) built by
//! [`vrrp_proto::ip::ipv4_header`]; received datagrams include the header,
//! split by [`vrrp_proto::ip::split_ipv4`].
//!
//! IPv6: traffic class 0xc0, hop limit 255 (multicast and unicast), the
//! source given per packet with `IPV6_PKTINFO` (binding a raw IPv6 socket
//! to an address would filter received multicast), `IPV6_CHECKSUM` at
//! offset 6, destination and hop limit of received adverts from
//! `IPV6_RECVPKTINFO` / `IPV6_RECVHOPLIMIT`.
//!
//! Multicast loopback is off, so we do not hear our own adverts.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicU16, Ordering};

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6, recv, recvmsg, sendmsg,
    sendto,
};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use vrrp_proto::ip::{ipv4_header, split_ipv4};
use vrrp_proto::{IP_PROTOCOL, IPV4_MULTICAST, IPV6_MULTICAST, PacketError, RxMeta, TOS, TTL};

/// Largest datagram we read: an advert with 255 IPv6 addresses is 4 KiB.
const RX_BUF: usize = 65536;

/// A received datagram: where it came from and the VRRP payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// IP source, destination and TTL / hop limit.
    pub meta: RxMeta,
    /// The VRRP message (after the IPv4 header).
    pub payload: Vec<u8>,
}

/// A raw VRRP socket on one interface, for one address family.
#[derive(Debug)]
pub struct VrrpSocket {
    fd: AsyncFd<Socket>,
    ifindex: u32,
    ipv6: bool,
    ip_id: AtomicU16,
}

fn setsockopt_int(
    sock: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: setsockopt with a pointer to a live c_int and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl VrrpSocket {
    /// Opens the socket on `interface` (index `ifindex`) for IPv4 or IPv6,
    /// joined to the VRRP multicast group when `multicast`. Needs
    /// `CAP_NET_RAW`.
    pub fn open(interface: &str, ifindex: u32, ipv6: bool, multicast: bool) -> io::Result<Self> {
        let domain = if ipv6 { Domain::IPV6 } else { Domain::IPV4 };
        let sock = Socket::new(
            domain,
            Type::RAW.cloexec(),
            Some(Protocol::from(i32::from(IP_PROTOCOL))),
        )?;
        sock.bind_device(Some(interface.as_bytes()))?;
        if ipv6 {
            sock.set_multicast_loop_v6(false)?;
            sock.set_multicast_hops_v6(u32::from(TTL))?;
            sock.set_unicast_hops_v6(u32::from(TTL))?;
            sock.set_multicast_if_v6(ifindex)?;
            sock.set_tclass_v6(u32::from(TOS))?;
            setsockopt_int(&sock, libc::IPPROTO_IPV6, libc::IPV6_CHECKSUM, 6)?;
            setsockopt_int(&sock, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
            setsockopt_int(&sock, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)?;
            if multicast {
                sock.join_multicast_v6(&IPV6_MULTICAST, ifindex)?;
            }
        } else {
            sock.set_header_included_v4(true)?;
            sock.set_multicast_loop_v4(false)?;
            sock.set_multicast_ttl_v4(u32::from(TTL))?;
            sock.set_tos_v4(u32::from(TOS))?;
            if multicast {
                sock.join_multicast_v4_n(
                    &IPV4_MULTICAST,
                    &InterfaceIndexOrAddress::Index(ifindex),
                )?;
            }
        }
        sock.set_nonblocking(true)?;
        // SAFETY: the socket owns its descriptor and the AsyncFd owns the
        // socket: the descriptor is neither closed nor replaced while
        // registered.
        let fd = unsafe { AsyncFd::register(sock)? };
        Ok(VrrpSocket {
            fd,
            ifindex,
            ipv6,
            ip_id: AtomicU16::new(0),
        })
    }

    /// Sends the VRRP message `payload` from `src` to `dst`.
    pub fn send(&self, src: IpAddr, dst: IpAddr, payload: &[u8]) -> io::Result<()> {
        let fd = self.fd.get_ref().as_fd();
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let id = self.ip_id.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
                let mut pkt = ipv4_header(s, d, payload.len(), id, TTL).to_vec();
                pkt.extend_from_slice(payload);
                let to = SockaddrIn::from(SocketAddrV4::new(d, 0));
                sendto(fd.as_raw_fd(), &pkt, &to, MsgFlags::empty())?;
                Ok(())
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let to = SockaddrIn6::from(SocketAddrV6::new(d, 0, 0, self.ifindex));
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: s.octets(),
                    },
                    ipi6_ifindex: self.ifindex,
                };
                let cmsg = [ControlMessage::Ipv6PacketInfo(&info)];
                sendmsg(
                    fd.as_raw_fd(),
                    &[IoSlice::new(payload)],
                    &cmsg,
                    MsgFlags::empty(),
                    Some(&to),
                )?;
                Ok(())
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "source and destination of different families",
            )),
        }
    }

    /// A receive buffer large enough for any advert.
    pub fn buffer() -> Vec<u8> {
        vec![0; RX_BUF]
    }

    /// Receives the next datagram into `buf` (see [`VrrpSocket::buffer`]).
    /// Malformed IPv4 headers are returned as errors in the inner result so
    /// the caller can log them. Cancel safe.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Result<Datagram, PacketError>> {
        loop {
            let mut guard = self.fd.readable().await?;
            let ipv6 = self.ipv6;
            match guard.try_io(|s| {
                let fd = s.get_ref().as_raw_fd();
                if ipv6 {
                    recv_v6(fd, &mut *buf).map_err(io::Error::from)
                } else {
                    recv_v4(fd, &mut *buf).map_err(io::Error::from)
                }
            }) {
                Ok(Ok(Some(d))) => return Ok(d),
                // IPv6 datagram without the ancillary data: skip it.
                Ok(Ok(None)) => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

type RecvResult = nix::Result<Option<Result<Datagram, PacketError>>>;

fn recv_v4(fd: std::os::fd::RawFd, buf: &mut [u8]) -> RecvResult {
    let n = recv(fd, buf, MsgFlags::empty())?;
    let data = buf.get(..n).unwrap_or_default();
    Ok(Some(split_ipv4(data).map(|(meta, payload)| Datagram {
        meta,
        payload: payload.to_vec(),
    })))
}

fn recv_v6(fd: std::os::fd::RawFd, buf: &mut [u8]) -> RecvResult {
    let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo, libc::c_int);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrIn6>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty())?;
    let n = msg.bytes;
    let src = msg.address.map(|a| a.ip());
    let mut dst = None;
    let mut hops = None;
    for c in msg.cmsgs()? {
        match c {
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                dst = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
            }
            ControlMessageOwned::Ipv6HopLimit(h) => hops = u8::try_from(h).ok(),
            _ => {}
        }
    }
    let (Some(src), Some(dst), Some(ttl)) = (src, dst, hops) else {
        return Ok(None);
    };
    let payload = iov[0].get(..n).unwrap_or_default().to_vec();
    Ok(Some(Ok(Datagram {
        meta: RxMeta {
            src: IpAddr::V6(src),
            dst: IpAddr::V6(dst),
            ttl,
        },
        payload,
    })))
}

/// The multicast group of `ipv6`'s family, for [`VrrpSocket::send`].
pub fn group(ipv6: bool) -> IpAddr {
    if ipv6 {
        IpAddr::V6(IPV6_MULTICAST)
    } else {
        IpAddr::V4(IPV4_MULTICAST)
    }
}
