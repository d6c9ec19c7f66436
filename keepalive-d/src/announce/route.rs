//! The routes of announced addresses: `VIP/32 dev lo table N proto P` (or `/128`),
//! added and removed over rtnetlink. A thin I/O layer: [`RouteTable::sync`] makes the
//! table's routes of protocol P equal to a set of addresses; what that set is, is decided
//! by [`super::announced`].

use std::collections::BTreeSet;
use std::io;
use std::net::IpAddr;

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily as NlFamily, RouteNetlinkMessage};

use crate::config::BgpSettings;
use crate::vrrp_io::addr::Rtnl;

/// A route operation that failed, naming the operation and the route.
#[derive(Debug, thiserror::Error)]
#[error("{op} {what}: {source}")]
pub struct RouteError {
    /// What was done: `open rtnetlink`, `add route`, `delete route`, `list routes`.
    pub op: &'static str,
    /// The route or table concerned, as `ip route` would print it.
    pub what: String,
    /// The kernel's (or the socket's) error.
    #[source]
    pub source: io::Error,
}

/// What [`RouteTable::sync`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Routes added (addresses now announced).
    pub added: Vec<IpAddr>,
    /// Routes removed (addresses withdrawn).
    pub removed: Vec<IpAddr>,
}

/// The daemon's routes in one table, in the current network namespace.
#[derive(Debug)]
pub struct RouteTable {
    rtnl: Rtnl,
    settings: BgpSettings,
    lo: u32,
    /// Whether dumps are filtered by the kernel ([`Rtnl::strict_dumps`]).
    strict: bool,
}

impl RouteTable {
    /// Opens rtnetlink and finds the loopback interface.
    pub fn open(settings: BgpSettings) -> Result<Self, RouteError> {
        let err = |op, source| RouteError {
            op,
            what: "lo".to_owned(),
            source,
        };
        let mut rtnl = Rtnl::new().map_err(|e| err("open rtnetlink", e))?;
        // A kernel without strict checking (before 4.20) ignores the dump's filter and
        // returns every route: `ours` still picks ours, only slower.
        let strict = rtnl.strict_dumps().is_ok();
        let lo = rtnl.link("lo").map_err(|e| err("find interface", e))?.index;
        Ok(Self {
            rtnl,
            settings,
            lo,
            strict,
        })
    }

    /// The settings (table and protocol).
    pub fn settings(&self) -> BgpSettings {
        self.settings
    }

    fn describe(&self, addr: IpAddr) -> String {
        let len = if addr.is_ipv4() { 32 } else { 128 };
        format!(
            "{addr}/{len} dev lo table {} proto {}",
            self.settings.table, self.settings.protocol
        )
    }

    fn message(&self, addr: IpAddr) -> RouteMessage {
        let mut msg = RouteMessage::default();
        msg.header.address_family = if addr.is_ipv4() {
            NlFamily::Inet
        } else {
            NlFamily::Inet6
        };
        msg.header.destination_prefix_length = if addr.is_ipv4() { 32 } else { 128 };
        msg.header.table =
            u8::try_from(self.settings.table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
        msg.header.protocol = RouteProtocol::from(self.settings.protocol);
        msg.header.scope = RouteScope::Link;
        msg.header.kind = RouteType::Unicast;
        msg.attributes = vec![
            RouteAttribute::Table(self.settings.table),
            RouteAttribute::Destination(RouteAddress::from(addr)),
            RouteAttribute::Oif(self.lo),
        ];
        msg
    }

    /// Adds (or replaces) the route of `addr`.
    pub fn add(&mut self, addr: IpAddr) -> Result<(), RouteError> {
        let msg = self.message(addr);
        self.rtnl
            .request(
                RouteNetlinkMessage::NewRoute(msg),
                NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            )
            .map(drop)
            .map_err(|source| RouteError {
                op: "add route",
                what: self.describe(addr),
                source,
            })
    }

    /// Removes the route of `addr`; one already gone is not an error.
    pub fn remove(&mut self, addr: IpAddr) -> Result<(), RouteError> {
        let msg = self.message(addr);
        match self
            .rtnl
            .request(RouteNetlinkMessage::DelRoute(msg), NLM_F_ACK)
        {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            Err(source) => Err(RouteError {
                op: "delete route",
                what: self.describe(addr),
                source,
            }),
        }
    }

    /// The addresses whose host routes of our protocol are in our table now.
    pub fn installed(&mut self) -> Result<BTreeSet<IpAddr>, RouteError> {
        let mut out = BTreeSet::new();
        for family in [NlFamily::Inet, NlFamily::Inet6] {
            let mut msg = RouteMessage::default();
            msg.header.address_family = family;
            if self.strict {
                // Only our table and protocol: a director with a big routing table
                // (a full BGP feed in `main`) would otherwise read all of it after
                // every reconcile, on the daemon's one thread.
                msg.header.table =
                    u8::try_from(self.settings.table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
                msg.header.protocol = RouteProtocol::from(self.settings.protocol);
                msg.attributes = vec![RouteAttribute::Table(self.settings.table)];
            }
            let replies = match self
                .rtnl
                .request(RouteNetlinkMessage::GetRoute(msg), NLM_F_DUMP)
            {
                Ok(replies) => replies,
                // A filtered dump of a table that does not exist (no route of that
                // family was ever added to it).
                Err(e) if self.strict && e.raw_os_error() == Some(libc::ENOENT) => Vec::new(),
                Err(source) => {
                    return Err(RouteError {
                        op: "list routes",
                        what: format!("table {}", self.settings.table),
                        source,
                    });
                }
            };
            for reply in replies {
                let RouteNetlinkMessage::NewRoute(r) = reply else {
                    continue;
                };
                if let Some(addr) = self.ours(&r) {
                    out.insert(addr);
                }
            }
        }
        Ok(out)
    }

    /// The destination of `r` if it is one of our host routes.
    fn ours(&self, r: &RouteMessage) -> Option<IpAddr> {
        let table = r
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Table(t) => Some(*t),
                _ => None,
            })
            .unwrap_or(u32::from(r.header.table));
        if table != self.settings.table || u8::from(r.header.protocol) != self.settings.protocol {
            return None;
        }
        let dst = r.attributes.iter().find_map(|a| match a {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(IpAddr::V4(*a)),
            RouteAttribute::Destination(RouteAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
            _ => None,
        })?;
        let host = if dst.is_ipv4() { 32 } else { 128 };
        (r.header.destination_prefix_length == host).then_some(dst)
    }

    /// Makes our routes equal to `want`: adds the missing ones, removes the others (also
    /// those a previous run left). Every operation is tried; the first error is returned
    /// after the others were done, with what did change.
    pub fn sync(&mut self, want: &BTreeSet<IpAddr>) -> (SyncReport, Result<(), RouteError>) {
        let mut report = SyncReport::default();
        let have = match self.installed() {
            Ok(h) => h,
            Err(e) => return (report, Err(e)),
        };
        let mut first_error = Ok(());
        for addr in have.difference(want) {
            match self.remove(*addr) {
                Ok(()) => report.removed.push(*addr),
                Err(e) => {
                    if first_error.is_ok() {
                        first_error = Err(e);
                    }
                }
            }
        }
        for addr in want.difference(&have) {
            match self.add(*addr) {
                Ok(()) => report.added.push(*addr),
                Err(e) => {
                    if first_error.is_ok() {
                        first_error = Err(e);
                    }
                }
            }
        }
        (report, first_error)
    }
}
