//! Virtual MAC interfaces (keepalived's `use_vmac`; RFC 5798 7.3): a macvlan over the
//! instance's interface whose MAC address is the virtual router's, `00:00:5e:00:01:VRID`
//! (IPv4) or `00:00:5e:00:02:VRID` (IPv6). The Master holds the virtual IPs on it and
//! sends its adverts and gratuitous ARPs / NAs from it, so the virtual IPs keep their MAC
//! address across a failover: neighbours' ARP caches need no update, only the switches
//! learn the MAC on another port from the new Master's first frame.
//!
//! Set up as keepalived 2.2.7 does it:
//!
//! * the macvlan is in `private` mode (it never talks to other macvlans of the same
//!   parent), and up on every node, Master or Backup; the VRRP socket is bound to it: the
//!   kernel hands a multicast frame whose source MAC is a local private macvlan's to that
//!   macvlan only, so the Backup hears a Master that uses the same virtual MAC on it, not
//!   on the parent;
//! * on the macvlan: `arp_ignore=1` (answer ARP only for its own addresses),
//!   `accept_local=1`, `rp_filter=0` (it receives adverts without an IPv4 address of its
//!   own), `promote_secondaries=1` (removing one virtual IP keeps the others of its
//!   subnet), and no IPv6 address generation (`addr_gen_mode` none): a Backup's macvlan must
//!   not send anything from the virtual MAC (an IPv6 instance's macvlan gets the parent's
//!   link-local address, to send its adverts from, only while Master: see the driver);
//! * on the parent, for IPv4: `arp_ignore=1` and `arp_filter=1`, so that it does not
//!   answer ARP requests for the virtual IPs with its own MAC; and (keepalived leaves it
//!   alone) `arp_announce=2`: replies from a virtual IP are routed out of the parent, and
//!   the ARP requests they need would otherwise carry the virtual IP as sender with the
//!   parent's MAC, which neighbours take for an update of the virtual IP's MAC. The
//!   previous values are put back when its last virtual MAC interface is removed.
//!
//! An interface of the configured name left by a previous run is adopted if it is a
//! macvlan over the same parent with the right MAC, replaced if it is another macvlan,
//! and never touched otherwise (an error). The macvlan is deleted when the instance stops
//! (not on a hand-over to a new process, which adopts it). A reload that restarts an
//! instance sets up the new one before the old one stops: the two share the interface
//! (counted per network namespace), and the old one's stop does not delete it.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::sync::{Mutex, PoisonError};

use super::addr::{
    DEVCONF_ACCEPT_LOCAL, DEVCONF_ARP_ANNOUNCE, DEVCONF_ARP_FILTER, DEVCONF_ARP_IGNORE,
    DEVCONF_PROMOTE_SECONDARIES, DEVCONF_RP_FILTER, Rtnl,
};

/// The parent's ARP settings while it has a virtual MAC interface: `arp_ignore`,
/// `arp_filter`, `arp_announce`.
const PARENT_ARP: (u32, u32, u32) = (1, 1, 2);

/// The virtual router MAC address of `vrid` (RFC 5798 7.3).
pub const fn vrrp_mac(vrid: u8, ipv6: bool) -> [u8; 6] {
    [0x00, 0x00, 0x5e, 0x00, if ipv6 { 0x02 } else { 0x01 }, vrid]
}

/// `00:00:5e:00:01:33`.
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A virtual MAC interface in use by this process, per network namespace and name.
#[derive(Debug)]
struct InUse {
    index: u32,
    mac: [u8; 6],
    parent: u32,
    ipv6: bool,
    /// Instances holding it (two while a reload restarts its instance).
    users: usize,
}

/// A parent interface whose ARP settings were changed.
#[derive(Debug)]
struct Parent {
    /// Its virtual MAC interfaces (IPv4).
    vmacs: usize,
    /// `(arp_ignore, arp_filter, arp_announce)` before the first one, if they were
    /// changed.
    saved: Option<(u32, u32, u32)>,
}

#[derive(Debug, Default)]
struct Registry {
    vmacs: BTreeMap<(u64, String), InUse>,
    parents: BTreeMap<(u64, u32), Parent>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    vmacs: BTreeMap::new(),
    parents: BTreeMap::new(),
});

/// The calling thread's network namespace (its inode number): interfaces and their
/// names are per namespace.
fn netns() -> u64 {
    std::fs::metadata("/proc/thread-self/ns/net").map_or(0, |m| m.ino())
}

/// A virtual MAC interface held by an instance. Dropping it lets go of it without
/// touching the interface (a hand-over, or a setup that failed later: the next start
/// adopts it); [`Vmac::remove`] deletes it.
#[derive(Debug)]
pub struct Vmac {
    /// Its name.
    pub name: String,
    /// Its interface index.
    pub index: u32,
    /// Its MAC address.
    pub mac: [u8; 6],
    key: (u64, String),
    held: bool,
}

impl Vmac {
    /// Sets up (creates, or adopts) the virtual MAC interface `name` over interface
    /// `parent` for virtual router `vrid` of the family given by `ipv6`, and brings it up.
    pub fn acquire(
        rtnl: &mut Rtnl,
        name: &str,
        parent: u32,
        vrid: u8,
        ipv6: bool,
    ) -> io::Result<Self> {
        let mac = vrrp_mac(vrid, ipv6);
        let key = (netns(), name.to_owned());
        let mut reg = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(used) = reg.vmacs.get_mut(&key) {
            if (used.mac, used.parent, used.ipv6) != (mac, parent, ipv6) {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "{name} is in use by another instance (MAC {}); give this one another `vmac.name`",
                        format_mac(used.mac)
                    ),
                ));
            }
            used.users += 1;
            return Ok(Vmac {
                name: name.to_owned(),
                index: used.index,
                mac,
                key,
                held: true,
            });
        }
        let index = match rtnl.link_kind(name)? {
            Some(k) if k.macvlan && k.parent == Some(parent) && k.mac == Some(mac) => {
                tracing::info!(interface = name, mac = %format_mac(mac), "adopting the existing virtual MAC interface");
                k.index
            }
            Some(k) if k.macvlan => {
                tracing::info!(
                    interface = name,
                    "replacing a macvlan of the same name with another MAC address or parent"
                );
                rtnl.delete_link(k.index)?;
                rtnl.create_macvlan(name, parent, mac)?
            }
            Some(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{name} exists and is not a macvlan: not touching it; choose another `vmac.name`"
                    ),
                ));
            }
            None => {
                let index = rtnl.create_macvlan(name, parent, mac)?;
                tracing::info!(interface = name, mac = %format_mac(mac), parent, "created the virtual MAC interface");
                index
            }
        };
        let configured = configure(rtnl, &mut reg, key.0, index, parent, ipv6);
        if let Err(e) = configured {
            return Err(io::Error::new(e.kind(), format!("setting up {name}: {e}")));
        }
        reg.vmacs.insert(
            key.clone(),
            InUse {
                index,
                mac,
                parent,
                ipv6,
                users: 1,
            },
        );
        Ok(Vmac {
            name: name.to_owned(),
            index,
            mac,
            key,
            held: true,
        })
    }

    /// Lets go of the interface, and deletes it if no other instance holds it (then puts
    /// back the parent's ARP settings if it was the parent's last one).
    pub fn remove(mut self, rtnl: &mut Rtnl) -> io::Result<()> {
        self.held = false;
        let mut reg = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(used) = reg.vmacs.get_mut(&self.key) else {
            return Ok(());
        };
        used.users = used.users.saturating_sub(1);
        if used.users > 0 {
            return Ok(());
        }
        let (parent, ipv6) = (used.parent, used.ipv6);
        reg.vmacs.remove(&self.key);
        let deleted = rtnl.delete_link(self.index);
        if deleted.is_ok() {
            tracing::info!(interface = %self.name, "removed the virtual MAC interface");
        }
        if !ipv6 {
            let pkey = (self.key.0, parent);
            if let Some(p) = reg.parents.get_mut(&pkey) {
                p.vmacs = p.vmacs.saturating_sub(1);
                if p.vmacs == 0 {
                    let saved = p.saved;
                    reg.parents.remove(&pkey);
                    if let Some(before) = saved {
                        set_parent_arp(rtnl, parent, before)?;
                    }
                }
            }
        }
        deleted
    }
}

impl Drop for Vmac {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        let mut reg = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(used) = reg.vmacs.get_mut(&self.key) {
            used.users = used.users.saturating_sub(1);
            if used.users == 0 {
                reg.vmacs.remove(&self.key);
            }
        }
    }
}

/// The settings of a new or adopted virtual MAC interface `index` over `parent`, it up,
/// and the parent's ARP settings.
fn configure(
    rtnl: &mut Rtnl,
    reg: &mut Registry,
    ns: u64,
    index: u32,
    parent: u32,
    ipv6: bool,
) -> io::Result<()> {
    rtnl.set_inet_conf(
        index,
        &[
            (DEVCONF_ARP_IGNORE, 1),
            (DEVCONF_ACCEPT_LOCAL, 1),
            (DEVCONF_RP_FILTER, 0),
            (DEVCONF_PROMOTE_SECONDARIES, 1),
        ],
    )?;
    rtnl.set_addr_gen_mode_none(index)?;
    rtnl.set_link_up(index)?;
    if !ipv6 {
        let p = reg.parents.entry((ns, parent)).or_insert(Parent {
            vmacs: 0,
            saved: None,
        });
        if p.vmacs == 0 {
            let before = rtnl.arp_conf(parent)?;
            if before != PARENT_ARP {
                set_parent_arp(rtnl, parent, PARENT_ARP)?;
                p.saved = Some(before);
            }
        }
        p.vmacs += 1;
    }
    Ok(())
}

fn set_parent_arp(
    rtnl: &mut Rtnl,
    parent: u32,
    (ignore, filter, announce): (u32, u32, u32),
) -> io::Result<()> {
    rtnl.set_inet_conf(
        parent,
        &[
            (DEVCONF_ARP_IGNORE, ignore),
            (DEVCONF_ARP_FILTER, filter),
            (DEVCONF_ARP_ANNOUNCE, announce),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(vrrp_mac(51, false), [0, 0, 0x5e, 0, 1, 51]);
        assert_eq!(vrrp_mac(255, true), [0, 0, 0x5e, 0, 2, 255]);
        assert_eq!(format_mac(vrrp_mac(51, false)), "00:00:5e:00:01:33");
    }
}
