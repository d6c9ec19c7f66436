//! rtnetlink: interface lookup, virtual address add / remove, link state
//! changes.
//!
//! Requests are synchronous (the kernel answers within microseconds); the
//! link monitor is a separate, non-blocking socket subscribed to
//! `RTNLGRP_LINK`, driven by tokio.

use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use netlink_packet_core::{
    DefaultNla, NLA_F_NESTED, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
    NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{
    AfSpecInet, AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoData, InfoKind, InfoMacVlan,
    LinkAttribute, LinkFlags, LinkInfo as NlLinkInfo, LinkMessage, MacVlanMode,
};
use netlink_packet_route::{AddressFamily as NlFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use tokio::io::unix::AsyncFd;

use super::VirtualAddress;

/// What we need to know about an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface index.
    pub index: u32,
    /// Hardware address, if the link has a 6-byte one (Ethernet).
    pub mac: Option<[u8; 6]>,
    /// Administratively up and running (carrier), as keepalived requires.
    pub up: bool,
}

/// An address configured on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceAddress {
    /// The address.
    pub address: IpAddr,
    /// Its prefix length.
    pub prefix_len: u8,
}

fn link_info(msg: &LinkMessage) -> LinkInfo {
    let mac = msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(b) => <[u8; 6]>::try_from(b.as_slice()).ok(),
        _ => None,
    });
    let flags = msg.header.flags;
    LinkInfo {
        index: msg.header.index,
        mac,
        up: flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::Running),
    }
}

/// A synchronous rtnetlink request socket.
#[derive(Debug)]
pub struct Rtnl {
    sock: Socket,
    seq: u32,
}

impl Rtnl {
    /// Opens a route netlink socket in the caller's network namespace.
    pub fn new() -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        // The kernel answers at once; never wait forever for it.
        let timeout = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        // SAFETY: setsockopt with a pointer to a live timeval and its size.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Rtnl { sock, seq: 0 })
    }

    /// Asks the kernel to check dump requests strictly and to filter dumps by the header
    /// and attributes given (`NETLINK_GET_STRICT_CHK`, Linux 4.20): a route dump for
    /// one table then returns that table only, not every route of every table.
    pub(crate) fn strict_dumps(&self) -> io::Result<()> {
        self.sock.set_netlink_get_strict_chk(true)
    }

    /// Sends `msg` and collects the replies until the ACK (or `NLMSG_DONE`
    /// for a dump). A netlink error becomes an `io::Error` with its errno.
    pub(crate) fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = flags | NLM_F_REQUEST;
        header.sequence_number = seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        req.finalize();
        let mut buf = vec![0u8; req.buffer_len()];
        req.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full()?;
            let mut off = 0;
            while off < data.len() {
                let rest = data.get(off..).unwrap_or_default();
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = usize::try_from(reply.header.length).unwrap_or(0);
                if len == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "netlink message of length 0",
                    ));
                }
                off += (len + 3) & !3;
                if reply.header.sequence_number != seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(_) => Err(e.to_io()),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::InnerMessage(m) => {
                        out.push(m);
                        if !dump && flags & NLM_F_ACK == 0 {
                            return Ok(out);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// The interface called `name`.
    pub fn link(&mut self, name: &str) -> io::Result<LinkInfo> {
        let index = nix::net::if_::if_nametoindex(name).map_err(|e| {
            io::Error::new(io::Error::from(e).kind(), format!("interface {name}: {e}"))
        })?;
        self.link_by_index(index)
    }

    /// The interface with index `index`.
    pub fn link_by_index(&mut self, index: u32) -> io::Result<LinkInfo> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        let replies = self.request(RouteNetlinkMessage::GetLink(msg), 0)?;
        replies
            .iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) if l.header.index == index => Some(link_info(l)),
                _ => None,
            })
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such interface"))
    }

    /// The addresses of `family` on interface `index`.
    pub fn addresses(&mut self, index: u32, ipv6: bool) -> io::Result<Vec<InterfaceAddress>> {
        let mut msg = AddressMessage::default();
        msg.header.family = if ipv6 {
            NlFamily::Inet6
        } else {
            NlFamily::Inet
        };
        let replies = self.request(RouteNetlinkMessage::GetAddress(msg), NLM_F_DUMP)?;
        Ok(replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => {
                    // IFA_LOCAL is the address itself; IFA_ADDRESS is the
                    // peer on point-to-point links (and the address
                    // otherwise, and the only one for IPv6).
                    let local = a.attributes.iter().find_map(|x| match x {
                        AddressAttribute::Local(ip) => Some(*ip),
                        _ => None,
                    });
                    let addr = a.attributes.iter().find_map(|x| match x {
                        AddressAttribute::Address(ip) => Some(*ip),
                        _ => None,
                    });
                    local.or(addr).map(|address| InterfaceAddress {
                        address,
                        prefix_len: a.header.prefix_len,
                    })
                }
                _ => None,
            })
            .collect())
    }

    fn address_message(index: u32, vip: &VirtualAddress) -> AddressMessage {
        let mut msg = AddressMessage::default();
        msg.header.index = index;
        msg.header.prefix_len = vip.prefix_len;
        msg.header.scope = AddressScope::Universe;
        match vip.address {
            IpAddr::V4(_) => {
                msg.header.family = NlFamily::Inet;
                msg.attributes.push(AddressAttribute::Local(vip.address));
                msg.attributes.push(AddressAttribute::Address(vip.address));
            }
            IpAddr::V6(v6) => {
                msg.header.family = NlFamily::Inet6;
                // Like keepalived: no duplicate address detection for a
                // virtual address, it must be usable at once.
                msg.header.flags = AddressHeaderFlags::Nodad;
                msg.attributes
                    .push(AddressAttribute::Flags(AddressFlags::Nodad));
                msg.attributes.push(AddressAttribute::Address(vip.address));
                if v6.segments()[0] & 0xffc0 == 0xfe80 {
                    msg.header.scope = AddressScope::Link;
                }
            }
        }
        msg
    }

    /// Adds `vip` to interface `index`. Already present is not an error.
    pub fn add_address(&mut self, index: u32, vip: &VirtualAddress) -> io::Result<()> {
        let msg = Self::address_message(index, vip);
        match self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            r => r.map(drop),
        }
    }

    /// Removes `vip` from interface `index`. Already absent is not an error.
    pub fn remove_address(&mut self, index: u32, vip: &VirtualAddress) -> io::Result<()> {
        let msg = Self::address_message(index, vip);
        match self.request(RouteNetlinkMessage::DelAddress(msg), NLM_F_ACK) {
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EADDRNOTAVAIL | libc::ENOENT | libc::ESRCH)
                ) =>
            {
                Ok(())
            }
            r => r.map(drop),
        }
    }
}

/// An interface as a virtual MAC interface sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkKind {
    /// Interface index.
    pub index: u32,
    /// Its MAC address.
    pub mac: Option<[u8; 6]>,
    /// Whether it is a macvlan.
    pub macvlan: bool,
    /// The interface it is stacked on (`IFLA_LINK`), if any.
    pub parent: Option<u32>,
}

/// `IFLA_INET_CONF` and the `IPV4_DEVCONF_*` numbers of the per-interface IPv4 settings
/// keepalive-d changes (linux/ip.h).
const IFLA_INET_CONF: u16 = 1;
/// `rp_filter`.
pub const DEVCONF_RP_FILTER: u16 = 8;
/// `arp_filter`.
pub const DEVCONF_ARP_FILTER: u16 = 13;
/// `arp_announce`.
pub const DEVCONF_ARP_ANNOUNCE: u16 = 18;
/// `arp_ignore`.
pub const DEVCONF_ARP_IGNORE: u16 = 19;
/// `promote_secondaries`.
pub const DEVCONF_PROMOTE_SECONDARIES: u16 = 20;
/// `accept_local`.
pub const DEVCONF_ACCEPT_LOCAL: u16 = 23;

impl Rtnl {
    /// The interface called `name`, `None` if there is none.
    pub fn link_kind(&mut self, name: &str) -> io::Result<Option<LinkKind>> {
        let index = match nix::net::if_::if_nametoindex(name) {
            Ok(i) => i,
            Err(nix::errno::Errno::ENODEV) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        let replies = self.request(RouteNetlinkMessage::GetLink(msg), 0)?;
        Ok(replies.iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) if l.header.index == index => Some(LinkKind {
                index,
                mac: link_info(l).mac,
                macvlan: l.attributes.iter().any(|a| {
                    matches!(a, LinkAttribute::LinkInfo(infos)
                        if infos.iter().any(|i| matches!(i, NlLinkInfo::Kind(InfoKind::MacVlan))))
                }),
                parent: l.attributes.iter().find_map(|a| match a {
                    LinkAttribute::Link(p) => Some(*p),
                    _ => None,
                }),
            }),
            _ => None,
        }))
    }

    /// Creates macvlan `name` in private mode over interface `parent`, with MAC address
    /// `mac`, down; returns its index.
    pub fn create_macvlan(&mut self, name: &str, parent: u32, mac: [u8; 6]) -> io::Result<u32> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.attributes.push(LinkAttribute::Link(parent));
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            NlLinkInfo::Kind(InfoKind::MacVlan),
            NlLinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(
                MacVlanMode::Private,
            )])),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )?;
        self.link(name).map(|l| l.index)
    }

    /// Deletes interface `index`. Already gone is not an error.
    pub fn delete_link(&mut self, index: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        match self.request(RouteNetlinkMessage::DelLink(msg), NLM_F_ACK) {
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
            r => r.map(drop),
        }
    }

    /// Sets interface `index` administratively up.
    pub fn set_link_up(&mut self, index: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(msg), NLM_F_ACK)
            .map(drop)
    }

    /// Sets per-interface IPv4 settings (`DEVCONF_*`, value) of interface `index`, as
    /// `sysctl net.ipv4.conf.IF.*` would (through rtnetlink: `/proc/sys` may be read-only
    /// for the daemon).
    pub fn set_inet_conf(&mut self, index: u32, values: &[(u16, u32)]) -> io::Result<()> {
        let mut nested = Vec::with_capacity(values.len() * 8);
        for (id, value) in values {
            nested.extend_from_slice(&8u16.to_ne_bytes());
            nested.extend_from_slice(&id.to_ne_bytes());
            nested.extend_from_slice(&value.to_ne_bytes());
        }
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes
            .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![
                AfSpecInet::Other(DefaultNla::new(IFLA_INET_CONF | NLA_F_NESTED, nested)),
            ])]));
        self.request(RouteNetlinkMessage::SetLink(msg), NLM_F_ACK)
            .map(drop)
    }

    /// The IPv4 `(arp_ignore, arp_filter, arp_announce)` settings of interface `index`.
    pub fn arp_conf(&mut self, index: u32) -> io::Result<(u32, u32, u32)> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        let replies = self.request(RouteNetlinkMessage::GetLink(msg), 0)?;
        replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) if l.header.index == index => Some(l),
                _ => None,
            })
            .flat_map(|l| l.attributes.iter())
            .find_map(|a| match a {
                LinkAttribute::AfSpecUnspec(specs) => specs.iter().find_map(|s| match s {
                    AfSpecUnspec::Inet(inet) => inet.iter().find_map(|i| match i {
                        AfSpecInet::DevConf(c) => Some((
                            u32::try_from(c.arp_ignore).unwrap_or(0),
                            u32::try_from(c.arpfilter).unwrap_or(0),
                            u32::try_from(c.arp_announce).unwrap_or(0),
                        )),
                        _ => None,
                    }),
                    _ => None,
                }),
                _ => None,
            })
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no IPv4 settings"))
    }

    /// Stops the kernel from giving interface `index` IPv6 addresses of its own (no
    /// link-local address, so no duplicate address detection and no router solicitation
    /// from it): `addr_gen_mode` none.
    pub fn set_addr_gen_mode_none(&mut self, index: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes
            .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
                vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
            )]));
        self.request(RouteNetlinkMessage::SetLink(msg), NLM_F_ACK)
            .map(drop)
    }
}

/// Picks the primary address of an instance on interface `index`: for IPv4
/// the first address that is not one of `vips`, for IPv6 the link-local
/// address (RFC 5798 5.1.2.2), as keepalived does.
pub fn primary_address(
    rtnl: &mut Rtnl,
    index: u32,
    ipv6: bool,
    vips: &[IpAddr],
) -> io::Result<Option<IpAddr>> {
    let addrs = rtnl.addresses(index, ipv6)?;
    Ok(addrs.iter().map(|a| a.address).find(|a| match a {
        IpAddr::V4(_) => !vips.contains(a),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }))
}

/// Link state changes of one interface, from `RTNLGRP_LINK` notifications.
#[derive(Debug)]
pub struct LinkMonitor {
    sock: AsyncFd<Socket>,
    rtnl: Rtnl,
    index: u32,
    up: bool,
}

impl LinkMonitor {
    /// Subscribes to link notifications and reads the current state of
    /// interface `index`.
    pub fn new(index: u32) -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.add_membership(libc::RTNLGRP_LINK)?;
        sock.set_non_blocking(true)?;
        let mut rtnl = Rtnl::new()?;
        let up = rtnl.link_by_index(index)?.up;
        // SAFETY: the netlink socket owns its descriptor and the AsyncFd owns
        // the socket: the descriptor is neither closed nor replaced while
        // registered.
        let sock = unsafe { AsyncFd::register(sock)? };
        Ok(LinkMonitor {
            sock,
            rtnl,
            index,
            up,
        })
    }

    /// Whether the link was up at the last look.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Waits until the link state changes and returns the new state
    /// (`true`: up and running). Cancel safe.
    pub async fn changed(&mut self) -> io::Result<bool> {
        loop {
            let mut guard = self.sock.readable().await?;
            let mut relevant = false;
            loop {
                match guard.try_io(|s| s.get_ref().recv_from_full()) {
                    Ok(Ok((data, _))) => relevant |= mentions_link(&data, self.index),
                    // Lost notifications (ENOBUFS): look again.
                    Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => relevant = true,
                    Ok(Err(e)) => return Err(e),
                    Err(_would_block) => break,
                }
            }
            if relevant {
                let up = match self.rtnl.link_by_index(self.index) {
                    Ok(l) => l.up,
                    Err(e) if e.raw_os_error() == Some(libc::ENODEV) => false,
                    Err(e) => return Err(e),
                };
                if up != self.up {
                    self.up = up;
                    return Ok(up);
                }
            }
        }
    }
}

fn mentions_link(data: &[u8], index: u32) -> bool {
    let mut off = 0;
    while let Some(rest) = data.get(off..).filter(|r| !r.is_empty()) {
        let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest) else {
            // Unparsable: be safe and look.
            return true;
        };
        match &msg.payload {
            NetlinkPayload::InnerMessage(
                RouteNetlinkMessage::NewLink(l) | RouteNetlinkMessage::DelLink(l),
            ) if l.header.index == index => return true,
            _ => {}
        }
        let len = usize::try_from(msg.header.length).unwrap_or(0);
        if len == 0 {
            return true;
        }
        off += (len + 3) & !3;
    }
    false
}
