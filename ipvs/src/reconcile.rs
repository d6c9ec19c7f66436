//! Declarative reconcile: the operations that turn the kernel's table into a desired one.
//!
//! [`plan`] compares a current [`Table`] with a desired one and returns a [`Plan`]: a
//! list of typed operations ([`Op`]), printable as `ipvsadm` commands for a dry run.
//! [`Ipvs::apply`](crate::Ipvs::apply) dumps the kernel's table once, plans, and sends the
//! operations in one batch; its [`ApplyReport`] says which operations failed and why.
//!
//! # Rules
//!
//! * **Edit in place** where the kernel allows it: a service's scheduler, scheduler
//!   flags, persistence (timeout, netmask, engine) and one-packet setting (`-E`); a
//!   destination's weight, forwarding method, thresholds and tunnel settings (`-e`).
//!   Only a key change (service protocol/address/port/mark/family, destination
//!   address/port) is a delete plus an add.
//! * **Add before delete**, so traffic keeps flowing: the operations are ordered as add
//!   services, add and edit destinations (and drain them), edit services, delete
//!   destinations, delete services. Destinations of a deleted service are not deleted one
//!   by one (the kernel removes them with their service).
//! * **Ownership is explicit** ([`Scope`]): only services in scope are ever touched. The
//!   scope is always the services of the desired table, plus those listed in
//!   [`Scope::Owned`], or every service with [`Scope::FullPrune`].
//! * **Drain** ([`ApplyOptions::drain`]): a destination to be removed gets weight 0
//!   ([`Op::DrainDestination`]) instead of being deleted, and stays at weight 0 in later
//!   applies with `drain` on. A service to be removed is drained the same way: it stays,
//!   with every destination at weight 0 (one without destinations is deleted at once).
//!   [`Plan::draining`] lists every such destination (those quiesced by this plan and
//!   those already at weight 0): the caller watches their connection counters
//!   ([`Observed::destination_stats`](crate::Observed)) and, after its drain period,
//!   applies with `drain` off, which deletes them (and the drained services).
//!
//! What the kernel does to traffic (measured in the lab, `tests/kernel/ipvs_traffic.rs`
//! of `ipvs-integration`): weight, threshold and forwarding edits, adds and drains are
//! hitless. **Deleting a destination drops the packets of its established connections**
//! (with `net.ipv4.vs.expire_nodest_conn = 0`, the default; with 1 they are reset and
//! rescheduled), so drain first and delete once its connections have finished.
//! **Changing a service's scheduler** is an edit in place (the service and its
//! connections stay), but the kernel unbinds the old scheduler and waits an RCU grace
//! period before binding the new one: new connections arriving in that window are
//! refused. No other operation sequence avoids it (deleting the service is far worse).
//!
//! The comparison is between model values, so what the kernel adds on its own (the
//! `HASHED` flag, counters, the netmask of non-persistent services, tunnel fields of
//! non-tunnel destinations) never counts: see [`crate::netlink`]. `ipvsadm` forces the
//! port of a direct-routing or tunnel destination of an address service to the service's
//! port; [`Ipvs::apply`](crate::Ipvs::apply) does the same to the desired table first
//! ([`normalize_dest_ports`]), so that tables written by `ipvsadm -R` and by `apply`
//! compare equal.
//!
//! ```
//! use ipvs::reconcile::{plan, ApplyOptions};
//! use ipvs::{Destination, Forward, Scheduler, Service, ServiceKey, Table};
//!
//! let key = ServiceKey::tcp("192.0.2.1:80".parse()?);
//! let mut svc = Service::builder(key).scheduler(Scheduler::RoundRobin).build()?;
//! svc.add_destination(Destination::new("10.0.0.1:80".parse()?, Forward::Masquerade)?)?;
//! let mut current = Table::new();
//! current.add_service(svc.clone())?;
//!
//! let mut desired = current.clone();
//! let mut svc = svc.to_builder().scheduler(Scheduler::WeightedRoundRobin).build()?;
//! svc.remove_destination("10.0.0.1:80".parse()?);
//! svc.add_destination(Destination::new("10.0.0.2:80".parse()?, Forward::Masquerade)?.with_weight(3)?)?;
//! desired.set_service(svc);
//!
//! let p = plan(&current, &desired, &ApplyOptions::default());
//! assert_eq!(
//!     p.to_string(),
//!     "-a -t 192.0.2.1:80 -r 10.0.0.2:80 -m -w 3\n\
//!      -E -t 192.0.2.1:80 -s wrr\n\
//!      -d -t 192.0.2.1:80 -r 10.0.0.1:80\n"
//! );
//! assert_eq!(p.simulate(&current)?, desired);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::net::SocketAddr;

use ipvs_sys::IpvsMessage;

use crate::error::{Error, Object, Problem};
use crate::handle::ApiError;
use crate::netlink::{dest_attrs, dest_key_attrs, service_attrs, service_key_attrs};
use crate::types::{
    AddressFamily, Destination, Forward, Protocol, Service, ServiceKey, Table, TunnelKind,
    socket_addr_to_string,
};

/// Which services an apply may touch.
///
/// ```
/// use ipvs::reconcile::{plan, ApplyOptions, Scope};
/// use ipvs::{Service, ServiceKey, Table};
/// let old: ServiceKey = "tcp 192.0.2.1:80".parse()?;
/// let mut current = Table::new();
/// current.add_service(Service::builder(old).build()?)?;
/// // The caller created `old` earlier and no longer wants it: it owns it.
/// let opts = ApplyOptions { scope: Scope::Owned([old].into()), ..ApplyOptions::default() };
/// assert_eq!(plan(&current, &Table::new(), &opts).to_string(), "-D -t 192.0.2.1:80\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scope {
    /// The services of the desired table (the default): others are never touched.
    #[default]
    Desired,
    /// The services of the desired table and these: a listed service that is not
    /// desired is deleted. Others are never touched. Use it to remove services that an
    /// earlier apply created.
    Owned(BTreeSet<ServiceKey>),
    /// Every service: a service that is not desired is deleted, whoever created it.
    FullPrune,
}

/// Options of [`plan`] and [`Ipvs::apply`](crate::Ipvs::apply).
///
/// ```
/// use ipvs::reconcile::{ApplyOptions, Scope};
/// let opts = ApplyOptions { scope: Scope::FullPrune, drain: true, ..ApplyOptions::default() };
/// assert!(!opts.stop_at_first_error);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApplyOptions {
    /// Which services may be touched.
    pub scope: Scope,
    /// Quiesce (weight 0) destinations to be removed instead of deleting them; see the
    /// [module documentation](self).
    pub drain: bool,
    /// Stop sending after the first batch chunk with a failure (the kernel has still
    /// handled every operation of that chunk); by default every operation is sent and
    /// every failure reported.
    pub stop_at_first_error: bool,
}

impl ApplyOptions {
    fn in_scope(&self, desired: &Table, key: &ServiceKey) -> bool {
        desired.service(key).is_some()
            || match &self.scope {
                Scope::Desired => false,
                Scope::Owned(keys) => keys.contains(key),
                Scope::FullPrune => true,
            }
    }
}

/// One change to the kernel's table. Services in operations carry no destinations.
///
/// Its [`Display`](fmt::Display) is the `ipvsadm` command line.
///
/// ```
/// use ipvs::reconcile::Op;
/// use ipvs::{Destination, Forward};
/// let op = Op::DrainDestination {
///     service: "udp [2001:db8::1]:53".parse()?,
///     dest: Destination::new("[2001:db8::2]:53".parse()?, Forward::DirectRoute)?.with_weight(5)?,
/// };
/// assert_eq!(op.to_string(), "-e -u [2001:db8::1]:53 -r [2001:db8::2]:53 -g -w 0");
/// assert_eq!(op.object().to_string(), "service udp [2001:db8::1]:53: destination [2001:db8::2]:53");
/// assert_eq!(op.to_message().dest().and_then(|d| d.weight), Some(0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Add a service (`-A`).
    AddService(Service),
    /// Change a service's scheduler, flags, persistence or one-packet setting (`-E`).
    EditService {
        /// The service as it is (boxed, as `new`: rare, and an operation stays small).
        old: Box<Service>,
        /// The service as it will be.
        new: Box<Service>,
    },
    /// Delete a service with its destinations (`-D`).
    DeleteService(ServiceKey),
    /// Add a destination (`-a`).
    AddDestination {
        /// Its service.
        service: ServiceKey,
        /// The destination.
        dest: Destination,
    },
    /// Change a destination's weight, forwarding, thresholds or tunnel (`-e`).
    EditDestination {
        /// Its service.
        service: ServiceKey,
        /// The destination as it is.
        old: Destination,
        /// The destination as it will be.
        new: Destination,
    },
    /// Set the weight of a destination that is no longer desired to 0 (`-e ... -w 0`),
    /// leaving its deletion to a later apply without drain.
    DrainDestination {
        /// Its service.
        service: ServiceKey,
        /// The destination as it is (the operation keeps everything but the weight).
        dest: Destination,
    },
    /// Delete a destination (`-d`).
    DeleteDestination {
        /// Its service.
        service: ServiceKey,
        /// Its address and port.
        addr: SocketAddr,
    },
}

impl Op {
    /// The object the operation is about.
    pub fn object(&self) -> Object {
        match self {
            Op::AddService(s) => Object::Service(*s.key()),
            Op::EditService { new, .. } => Object::Service(*new.key()),
            Op::DeleteService(k) => Object::Service(*k),
            Op::AddDestination { service, dest } | Op::DrainDestination { service, dest } => {
                Object::Destination {
                    service: Some(*service),
                    addr: dest.addr(),
                }
            }
            Op::EditDestination { service, new, .. } => Object::Destination {
                service: Some(*service),
                addr: new.addr(),
            },
            Op::DeleteDestination { service, addr } => Object::Destination {
                service: Some(*service),
                addr: *addr,
            },
        }
    }

    /// The netlink request that performs the operation.
    pub fn to_message(&self) -> IpvsMessage {
        match self {
            Op::AddService(s) => IpvsMessage::new_service(service_attrs(s)),
            Op::EditService { new, .. } => IpvsMessage::set_service(service_attrs(new)),
            Op::DeleteService(k) => IpvsMessage::del_service(service_key_attrs(k)),
            Op::AddDestination { service, dest } => {
                IpvsMessage::new_dest(service_key_attrs(service), dest_attrs(dest))
            }
            Op::EditDestination { service, new, .. } => {
                IpvsMessage::set_dest(service_key_attrs(service), dest_attrs(new))
            }
            Op::DrainDestination { service, dest } => {
                let mut a = dest_attrs(dest);
                a.weight = Some(0);
                IpvsMessage::set_dest(service_key_attrs(service), a)
            }
            Op::DeleteDestination { service, addr } => {
                IpvsMessage::del_dest(service_key_attrs(service), dest_key_attrs(*addr))
            }
        }
    }

    /// Applies the operation to an in-memory table, as the kernel would; `None` when the
    /// kernel would refuse it (the service or destination exists, or is missing).
    fn apply_to(&self, table: &mut Table) -> Option<()> {
        match self {
            Op::AddService(s) => {
                if table.service(s.key()).is_some() {
                    return None;
                }
                table.set_service(s.clone());
            }
            Op::EditService { new, .. } => {
                let cur = table.service(new.key())?;
                let mut s = Service::clone(new);
                for d in cur.destinations() {
                    s.set_destination(d.clone()).ok()?;
                }
                table.set_service(s);
            }
            Op::DeleteService(k) => {
                table.remove_service(k)?;
            }
            Op::AddDestination { service, dest } => {
                let s = table.service_mut(service)?;
                if s.destination(dest.addr()).is_some() {
                    return None;
                }
                s.set_destination(dest.clone()).ok()?;
            }
            Op::EditDestination { service, new, .. } => {
                let s = table.service_mut(service)?;
                s.destination(new.addr())?;
                s.set_destination(new.clone()).ok()?;
            }
            Op::DrainDestination { service, dest } => {
                let s = table.service_mut(service)?;
                let cur = s.destination(dest.addr())?.clone();
                s.set_destination(cur.with_weight(0).ok()?).ok()?;
            }
            Op::DeleteDestination { service, addr } => {
                table.service_mut(service)?.remove_destination(*addr)?;
            }
        }
        Some(())
    }
}

/// How ipvsadm names a service on its command line (`-t 192.0.2.1:80`, `-f 7 -6`).
fn service_opt(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Addr { protocol, addr } => {
            let opt = match protocol {
                Protocol::Tcp => "-t",
                Protocol::Udp => "-u",
                Protocol::Sctp => "--sctp-service",
            };
            format!("{opt} {}", socket_addr_to_string(addr))
        }
        // ipvsadm 1.31 prints marks with %d.
        ServiceKey::Fwmark { family, mark } => {
            let m = mark.get() as i32;
            match family {
                AddressFamily::Inet => format!("-f {m}"),
                AddressFamily::Inet6 => format!("-f {m} -6"),
            }
        }
    }
}

fn write_service(f: &mut fmt::Formatter<'_>, cmd: &str, svc: &Service) -> fmt::Result {
    write!(f, "{cmd} {} -s {}", service_opt(svc.key()), svc.scheduler())?;
    if let Some(p) = svc.persistence() {
        write!(f, " -p {}", p.timeout_secs())?;
        if let Some(m) = p.netmask() {
            write!(f, " -M {m}")?;
        }
        if let Some(e) = p.engine() {
            write!(f, " --pe {e}")?;
        }
    }
    if svc.one_packet() {
        f.write_str(" -o")?;
    }
    if !svc.sched_flags().is_empty() {
        let names = svc.sched_flags().names(svc.scheduler()).join(",");
        write!(f, " -b {names}")?;
    }
    Ok(())
}

fn write_dest(
    f: &mut fmt::Formatter<'_>,
    cmd: &str,
    service: &ServiceKey,
    d: &Destination,
    weight: u32,
) -> fmt::Result {
    let fwd = match d.forward() {
        Forward::Masquerade => "-m",
        Forward::DirectRoute | Forward::Local => "-g",
        Forward::Tunnel { .. } => "-i",
        Forward::Bypass => "(null)",
    };
    write!(
        f,
        "{cmd} {} -r {} {fwd} -w {weight}",
        service_opt(service),
        socket_addr_to_string(&d.addr())
    )?;
    if d.upper_threshold() != 0 || d.lower_threshold() != 0 {
        write!(f, " -x {} -y {}", d.upper_threshold(), d.lower_threshold())?;
    }
    if let Forward::Tunnel { kind, checksum } = d.forward() {
        write!(f, " --tun-type {}", kind.name())?;
        if let TunnelKind::Gue { port } = kind {
            write!(f, " --tun-port {port}")?;
        }
        if kind != TunnelKind::Ipip {
            write!(f, " --tun-{}", checksum.name())?;
        }
    }
    Ok(())
}

impl fmt::Display for Op {
    /// The operation as an `ipvsadm` command line (without the leading `ipvsadm`), e.g.
    /// `-e -t 192.0.2.1:80 -r 10.0.0.1:80 -m -w 0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::AddService(s) => write_service(f, "-A", s),
            Op::EditService { new, .. } => write_service(f, "-E", new),
            Op::DeleteService(k) => write!(f, "-D {}", service_opt(k)),
            Op::AddDestination { service, dest } => {
                write_dest(f, "-a", service, dest, dest.weight())
            }
            Op::EditDestination { service, new, .. } => {
                write_dest(f, "-e", service, new, new.weight())
            }
            Op::DrainDestination { service, dest } => write_dest(f, "-e", service, dest, 0),
            Op::DeleteDestination { service, addr } => write!(
                f,
                "-d {} -r {}",
                service_opt(service),
                socket_addr_to_string(addr)
            ),
        }
    }
}

/// An operation of a [`Plan`] that the kernel would refuse on the table given to
/// [`Plan::simulate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("operation {index} ({op}) does not apply to the table")]
pub struct PlanConflict {
    /// Index of the operation in the plan.
    pub index: usize,
    /// The operation.
    pub op: Box<Op>,
}

/// The operations that turn a current table into a desired one; see [`plan`].
///
/// Its [`Display`](fmt::Display) is one `ipvsadm` command per line, a dry run that
/// `ipvsadm -R` accepts.
///
/// ```
/// use ipvs::reconcile::{plan, ApplyOptions, Op};
/// let current = ipvs::ipvsadm::parse("-A -t 192.0.2.1:80 -s rr\n-a -t 192.0.2.1:80 -r 10.0.0.1:80 -m -w 1\n")?;
/// let desired = ipvs::ipvsadm::parse("-A -t 192.0.2.1:80 -s rr\n-a -t 192.0.2.1:80 -r 10.0.0.1:80 -m -w 5\n")?;
/// let p = plan(&current, &desired, &ApplyOptions::default());
/// assert_eq!(p.len(), 1);
/// let Op::EditDestination { old, new, .. } = &p.ops()[0] else { panic!() };
/// assert_eq!((old.weight(), new.weight()), (1, 5));
/// assert_eq!(p.messages()[0].command, ipvs_sys::Command::SetDest);
/// assert_eq!(p.simulate(&current)?, desired);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    ops: Vec<Op>,
    draining: Vec<(ServiceKey, SocketAddr)>,
}

impl Plan {
    /// The operations, in the order they are sent.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Destinations that are no longer desired but kept at weight 0 because of
    /// [`ApplyOptions::drain`] (also those of services that are no longer desired): those
    /// this plan drains and those already at weight 0, in service and address order.
    pub fn draining(&self) -> &[(ServiceKey, SocketAddr)] {
        &self.draining
    }

    /// Appends the operations of `other` after these (and its draining destinations):
    /// for plans of disjoint sets of services, made with different options, that go
    /// out in one batch.
    ///
    /// ```
    /// use ipvs::reconcile::{ApplyOptions, Scope, plan};
    /// use ipvs::{Destination, Forward, Service, ServiceKey, Table};
    /// let (a, b): (ServiceKey, ServiceKey) = ("tcp 192.0.2.1:80".parse()?, "tcp 192.0.2.2:80".parse()?);
    /// let mut current = Table::new();
    /// for key in [a, b] {
    ///     let mut svc = Service::builder(key).build()?;
    ///     svc.add_destination(Destination::new("10.0.0.1:80".parse()?, Forward::Masquerade)?)?;
    ///     current.add_service(svc)?;
    /// }
    /// // `a` drains, `b` goes at once.
    /// let drain = ApplyOptions { scope: Scope::Owned([a].into()), drain: true, ..ApplyOptions::default() };
    /// let delete = ApplyOptions { scope: Scope::Owned([b].into()), ..ApplyOptions::default() };
    /// let mut p = plan(&current, &Table::new(), &drain);
    /// p.append(plan(&current, &Table::new(), &delete));
    /// assert_eq!(p.to_string(), "-e -t 192.0.2.1:80 -r 10.0.0.1:80 -m -w 0\n-D -t 192.0.2.2:80\n");
    /// assert_eq!(p.draining(), [(a, "10.0.0.1:80".parse()?)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn append(&mut self, mut other: Plan) {
        self.ops.append(&mut other.ops);
        self.draining.append(&mut other.draining);
        self.draining.sort();
    }

    /// The netlink requests of the operations, in order.
    pub fn messages(&self) -> Vec<IpvsMessage> {
        self.ops.iter().map(Op::to_message).collect()
    }

    /// The table the plan makes of `current`, applying each operation as the kernel
    /// does; the first operation the kernel would refuse is an error.
    pub fn simulate(&self, current: &Table) -> Result<Table, PlanConflict> {
        let mut t = current.clone();
        for (index, op) in self.ops.iter().enumerate() {
            if op.apply_to(&mut t).is_none() {
                return Err(PlanConflict {
                    index,
                    op: Box::new(op.clone()),
                });
            }
        }
        Ok(t)
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for op in &self.ops {
            writeln!(f, "{op}")?;
        }
        Ok(())
    }
}

/// A service's settings without its destinations.
fn config_only(svc: &Service) -> Service {
    svc.without_destinations()
}

fn same_config(a: &Service, b: &Service) -> bool {
    a.scheduler() == b.scheduler()
        && a.sched_flags() == b.sched_flags()
        && a.persistence() == b.persistence()
        && a.one_packet() == b.one_packet()
}

/// The operations that turn `current` into `desired` within `opts.scope`; see the
/// [module documentation](self) for the rules. Pure: it looks at nothing else.
///
/// ```
/// use ipvs::reconcile::{plan, ApplyOptions, Op, Scope};
/// use ipvs::{Service, ServiceKey, Table};
///
/// let mut current = Table::new();
/// current.add_service(Service::builder(ServiceKey::udp("192.0.2.9:53".parse()?)).build()?)?;
/// let desired = Table::new();
/// // Not in scope by default: nothing to do.
/// assert!(plan(&current, &desired, &ApplyOptions::default()).is_empty());
/// let prune = ApplyOptions { scope: Scope::FullPrune, ..ApplyOptions::default() };
/// let p = plan(&current, &desired, &prune);
/// assert!(matches!(p.ops(), [Op::DeleteService(_)]));
/// assert_eq!(p.to_string(), "-D -u 192.0.2.9:53\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn plan(current: &Table, desired: &Table, opts: &ApplyOptions) -> Plan {
    // The operations in their final order, in one vector sized up front: the service
    // adds first, then the destination changes. A restore of 100,000 destinations
    // plans 110,000 operations (15 MB); growing and then concatenating vectors of them
    // copied them twice and touched twice the memory.
    let dests: usize = desired.services().map(|s| s.destinations().len()).sum();
    let mut ops = Vec::with_capacity(desired.len() + dests);
    ops.extend(
        desired
            .services()
            .filter(|want| current.service(want.key()).is_none())
            .map(|want| Op::AddService(config_only(want))),
    );
    let adds = ops.len();
    let dest_changes = &mut ops;
    let mut edit_services = Vec::new();
    let mut delete_dests = Vec::new();
    let mut delete_services = Vec::new();
    let mut draining = Vec::new();
    let mut removed_drains = false;

    for want in desired.services() {
        let key = *want.key();
        let Some(have) = current.service(&key) else {
            for d in want.destinations() {
                dest_changes.push(Op::AddDestination {
                    service: key,
                    dest: d.clone(),
                });
            }
            continue;
        };
        // Destinations in address order: adds, edits and drains interleaved.
        let addrs: BTreeSet<SocketAddr> = want
            .destinations()
            .chain(have.destinations())
            .map(Destination::addr)
            .collect();
        for addr in addrs {
            match (have.destination(addr), want.destination(addr)) {
                (None, Some(d)) => dest_changes.push(Op::AddDestination {
                    service: key,
                    dest: d.clone(),
                }),
                (Some(old), Some(new)) if old != new => dest_changes.push(Op::EditDestination {
                    service: key,
                    old: old.clone(),
                    new: new.clone(),
                }),
                (Some(old), None) if opts.drain => {
                    draining.push((key, addr));
                    if old.weight() != 0 {
                        dest_changes.push(Op::DrainDestination {
                            service: key,
                            dest: old.clone(),
                        });
                    }
                }
                (Some(_), None) => delete_dests.push(Op::DeleteDestination { service: key, addr }),
                _ => {}
            }
        }
        if !same_config(have, want) {
            edit_services.push(Op::EditService {
                old: Box::new(config_only(have)),
                new: Box::new(config_only(want)),
            });
        }
    }
    for have in current.services() {
        let key = *have.key();
        if desired.service(&key).is_some() || !opts.in_scope(desired, &key) {
            continue;
        }
        if opts.drain && have.destinations().len() > 0 {
            removed_drains = true;
            for d in have.destinations() {
                draining.push((key, d.addr()));
                if d.weight() != 0 {
                    dest_changes.push(Op::DrainDestination {
                        service: key,
                        dest: d.clone(),
                    });
                }
            }
        } else {
            delete_services.push(Op::DeleteService(key));
        }
    }
    // Drains of removed services were appended after the others: back in key order
    // (only then: the others are in key order already, and a plan can be 100,000
    // operations long).
    if removed_drains {
        dest_changes[adds..].sort_by_key(|op| match op {
            Op::AddDestination { service, .. }
            | Op::EditDestination { service, .. }
            | Op::DrainDestination { service, .. } => Some(*service),
            _ => None,
        });
        draining.sort();
    }

    ops.append(&mut edit_services);
    ops.append(&mut delete_dests);
    ops.append(&mut delete_services);
    Plan { ops, draining }
}

/// `desired` with the port of every direct-routing and tunnel destination of an address
/// service set to the service's port, as `ipvsadm` does for `-a`/`-e` (the kernel does not
/// use that port: these methods do not rewrite the packet). Two destinations that become
/// the same are an error ([`Problem::DuplicateDestination`]) naming the second.
///
/// ```
/// use ipvs::reconcile::normalize_dest_ports;
/// use ipvs::{Destination, Forward, Service, ServiceKey, Table};
/// let mut svc = Service::builder(ServiceKey::tcp("192.0.2.1:80".parse()?)).build()?;
/// svc.add_destination(Destination::new("10.0.0.1:8080".parse()?, Forward::DirectRoute)?)?;
/// svc.add_destination(Destination::new("10.0.0.2:8080".parse()?, Forward::Masquerade)?)?;
/// let mut t = Table::new();
/// t.add_service(svc)?;
/// let t = normalize_dest_ports(&t)?;
/// let ports: Vec<u16> = t.services().next().unwrap().destinations().map(|d| d.addr().port()).collect();
/// assert_eq!(ports, [80, 8080]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn normalize_dest_ports(desired: &Table) -> Result<Table, Error> {
    normalized(desired).map(std::borrow::Cow::into_owned)
}

/// A destination whose port [`normalize_dest_ports`] changes.
fn port_to_fix(svc: &Service, d: &Destination) -> bool {
    matches!(d.forward(), Forward::DirectRoute | Forward::Tunnel { .. })
        && svc
            .key()
            .addr()
            .is_some_and(|a| a.port() != d.addr().port())
}

/// [`normalize_dest_ports`] without copying a table that needs no change (the usual
/// case: a table of 100,000 destinations is not copied for nothing).
pub(crate) fn normalized(desired: &Table) -> Result<std::borrow::Cow<'_, Table>, Error> {
    if !desired
        .services()
        .any(|svc| svc.destinations().any(|d| port_to_fix(svc, d)))
    {
        return Ok(std::borrow::Cow::Borrowed(desired));
    }
    let mut out = Table::new();
    for svc in desired.services() {
        let key = *svc.key();
        let Some(port) = key.addr().map(|a| a.port()) else {
            out.set_service(svc.clone());
            continue;
        };
        let mut s = config_only(svc);
        for d in svc.destinations() {
            let fixed = if port_to_fix(svc, d) {
                let addr = SocketAddr::new(d.addr().ip(), port);
                Destination::new(addr, d.forward())
                    .and_then(|n| n.with_weight(d.weight()))
                    .and_then(|n| n.with_thresholds(d.upper_threshold(), d.lower_threshold()))?
            } else {
                d.clone()
            };
            if s.destination(fixed.addr()).is_some() {
                return Err(Error::new(
                    Object::Destination {
                        service: Some(key),
                        addr: d.addr(),
                    },
                    Problem::DuplicateDestination,
                ));
            }
            s.set_destination(fixed)?;
        }
        out.set_service(s);
    }
    Ok(std::borrow::Cow::Owned(out))
}

/// An operation of an apply that the kernel refused.
#[derive(Debug)]
pub struct OpFailure {
    /// Index of the operation in the plan.
    pub index: usize,
    /// The operation.
    pub op: Op,
    /// Why ([`ApiError::Kernel`], naming the operation and object).
    pub error: ApiError,
}

/// What an apply did: the plan, and which of its operations failed and why.
///
/// ```no_run
/// use ipvs::reconcile::ApplyOptions;
/// let mut ipvs = ipvs::Ipvs::open()?;
/// let desired = ipvs::ipvsadm::parse("-A -t 192.0.2.1:80 -s rr\n-a -t 192.0.2.1:80 -r 10.0.0.1:80 -m -w 1\n")?;
/// let report = ipvs.apply(&desired, &ApplyOptions { drain: true, ..ApplyOptions::default() })?;
/// for f in report.failures() {
///     eprintln!("{} failed: {}", f.op, f.error);
/// }
/// for (service, addr) in report.draining() {
///     println!("{addr} of {service} is draining");
/// }
/// print!("{report}"); // each command with ok / FAILED (why) / not sent
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ApplyReport {
    pub(crate) plan: Plan,
    pub(crate) failures: Vec<OpFailure>,
    pub(crate) not_sent: usize,
}

impl ApplyReport {
    /// The plan that was sent.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The operations the kernel refused, in plan order.
    pub fn failures(&self) -> &[OpFailure] {
        &self.failures
    }

    /// How many operations at the end of the plan were not sent
    /// ([`ApplyOptions::stop_at_first_error`]).
    pub fn not_sent(&self) -> usize {
        self.not_sent
    }

    /// The operations the kernel carried out, in order.
    pub fn applied(&self) -> impl Iterator<Item = &Op> {
        let sent = self.plan.ops.len().saturating_sub(self.not_sent);
        let failed: BTreeSet<usize> = self.failures.iter().map(|f| f.index).collect();
        self.plan
            .ops
            .iter()
            .enumerate()
            .take(sent)
            .filter(move |(i, _)| !failed.contains(i))
            .map(|(_, op)| op)
    }

    /// Whether every operation was carried out.
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty() && self.not_sent == 0
    }

    /// See [`Plan::draining`].
    pub fn draining(&self) -> &[(ServiceKey, SocketAddr)] {
        self.plan.draining()
    }
}

impl fmt::Display for ApplyReport {
    /// One line per operation: `ok`, `FAILED (why)` or `not sent`, then the command.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sent = self.plan.ops.len().saturating_sub(self.not_sent);
        for (i, op) in self.plan.ops.iter().enumerate() {
            let mut status = String::from("ok");
            if i >= sent {
                status = "not sent".into();
            } else if let Some(fail) = self.failures.iter().find(|x| x.index == i) {
                status.clear();
                let _ = write!(status, "FAILED ({})", fail.error);
            }
            writeln!(f, "{op}  # {status}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Persistence, Scheduler, TunnelChecksum};
    use std::time::Duration;

    fn key(s: &str) -> ServiceKey {
        s.parse().unwrap()
    }

    fn dest(addr: &str, fwd: Forward, w: u32) -> Destination {
        Destination::new(addr.parse().unwrap(), fwd)
            .unwrap()
            .with_weight(w)
            .unwrap()
    }

    fn svc(k: &str, sched: Scheduler, dests: &[Destination]) -> Service {
        let mut s = Service::builder(key(k)).scheduler(sched).build().unwrap();
        for d in dests {
            s.add_destination(d.clone()).unwrap();
        }
        s
    }

    fn table(services: &[Service]) -> Table {
        let mut t = Table::new();
        for s in services {
            t.add_service(s.clone()).unwrap();
        }
        t
    }

    fn text(p: &Plan) -> String {
        p.to_string()
    }

    #[test]
    fn from_empty_adds_services_then_destinations() {
        let web = svc(
            "tcp 192.0.2.1:80",
            Scheduler::WeightedRoundRobin,
            &[
                dest("10.0.0.1:80", Forward::Masquerade, 1),
                dest("10.0.0.2:80", Forward::Masquerade, 2),
            ],
        );
        let dns = svc(
            "udp [2001:db8::53]:53",
            Scheduler::SourceHashing,
            &[dest("[2001:db8:1::1]:53", Forward::DirectRoute, 5)],
        );
        let desired = table(&[web, dns]);
        let p = plan(&Table::new(), &desired, &ApplyOptions::default());
        assert_eq!(
            text(&p),
            "-A -t 192.0.2.1:80 -s wrr\n\
             -A -u [2001:db8::53]:53 -s sh\n\
             -a -t 192.0.2.1:80 -r 10.0.0.1:80 -m -w 1\n\
             -a -t 192.0.2.1:80 -r 10.0.0.2:80 -m -w 2\n\
             -a -u [2001:db8::53]:53 -r [2001:db8:1::1]:53 -g -w 5\n"
        );
        assert_eq!(p.simulate(&Table::new()).unwrap(), desired);
        // The same lines as the ipvsadm save format, services first.
        let mut saved: Vec<_> = crate::ipvsadm::print(&desired)
            .lines()
            .map(str::to_owned)
            .collect();
        let mut planned: Vec<_> = text(&p).lines().map(str::to_owned).collect();
        saved.sort();
        planned.sort();
        assert_eq!(saved, planned);
    }

    #[test]
    fn same_table_plans_nothing() {
        let t = table(&[svc(
            "tcp 192.0.2.1:80",
            Scheduler::RoundRobin,
            &[dest("10.0.0.1:80", Forward::Masquerade, 1)],
        )]);
        for scope in [Scope::Desired, Scope::FullPrune] {
            let opts = ApplyOptions {
                scope,
                drain: true,
                ..ApplyOptions::default()
            };
            assert!(plan(&t, &t, &opts).is_empty());
        }
    }

    #[test]
    fn edits_in_place_and_orders_add_before_delete() {
        let current = table(&[
            svc(
                "tcp 192.0.2.1:80",
                Scheduler::RoundRobin,
                &[
                    dest("10.0.0.1:80", Forward::Masquerade, 1),
                    dest("10.0.0.2:80", Forward::Masquerade, 1),
                ],
            ),
            svc("tcp 192.0.2.2:80", Scheduler::RoundRobin, &[]),
        ]);
        let p = Persistence::new(Duration::from_secs(60)).unwrap();
        let mut web = Service::builder(key("tcp 192.0.2.1:80"))
            .scheduler(Scheduler::WeightedLeastConnections)
            .persistence(p)
            .build()
            .unwrap();
        web.add_destination(
            dest("10.0.0.1:80", Forward::DirectRoute, 7)
                .with_thresholds(100, 10)
                .unwrap(),
        )
        .unwrap();
        web.add_destination(dest("10.0.0.3:80", Forward::IPIP, 1))
            .unwrap();
        let desired = table(&[web]);
        let opts = ApplyOptions {
            scope: Scope::FullPrune,
            ..ApplyOptions::default()
        };
        let p = plan(&current, &desired, &opts);
        assert_eq!(
            text(&p),
            "-e -t 192.0.2.1:80 -r 10.0.0.1:80 -g -w 7 -x 100 -y 10\n\
             -a -t 192.0.2.1:80 -r 10.0.0.3:80 -i -w 1 --tun-type ipip\n\
             -E -t 192.0.2.1:80 -s wlc -p 60\n\
             -d -t 192.0.2.1:80 -r 10.0.0.2:80\n\
             -D -t 192.0.2.2:80\n"
        );
        assert!(matches!(p.ops()[0], Op::EditDestination { .. }));
        assert_eq!(p.simulate(&current).unwrap(), desired);
    }

    #[test]
    fn key_change_is_delete_and_add() {
        let current = table(&[svc(
            "tcp 192.0.2.1:80",
            Scheduler::RoundRobin,
            &[dest("10.0.0.1:80", Forward::Masquerade, 1)],
        )]);
        let desired = table(&[svc(
            "tcp 192.0.2.1:8080",
            Scheduler::RoundRobin,
            &[dest("10.0.0.1:81", Forward::Masquerade, 1)],
        )]);
        let owned = ApplyOptions {
            scope: Scope::Owned([key("tcp 192.0.2.1:80")].into()),
            ..ApplyOptions::default()
        };
        let p = plan(&current, &desired, &owned);
        assert_eq!(
            text(&p),
            "-A -t 192.0.2.1:8080 -s rr\n\
             -a -t 192.0.2.1:8080 -r 10.0.0.1:81 -m -w 1\n\
             -D -t 192.0.2.1:80\n"
        );
        // Without ownership of the old key it survives.
        let p = plan(&current, &desired, &ApplyOptions::default());
        assert_eq!(p.len(), 2);
        let mut both = desired.clone();
        both.add_service(current.services().next().unwrap().clone())
            .unwrap();
        assert_eq!(p.simulate(&current).unwrap(), both);
    }

    #[test]
    fn drain_quiesces_and_lists_instead_of_deleting() {
        let current = table(&[svc(
            "tcp 192.0.2.1:80",
            Scheduler::RoundRobin,
            &[
                dest("10.0.0.1:80", Forward::Masquerade, 4),
                dest("10.0.0.2:80", Forward::Masquerade, 0),
                dest("10.0.0.3:80", Forward::Masquerade, 1),
            ],
        )]);
        let desired = table(&[svc(
            "tcp 192.0.2.1:80",
            Scheduler::RoundRobin,
            &[dest("10.0.0.3:80", Forward::Masquerade, 1)],
        )]);
        let drain = ApplyOptions {
            drain: true,
            ..ApplyOptions::default()
        };
        let p = plan(&current, &desired, &drain);
        assert_eq!(text(&p), "-e -t 192.0.2.1:80 -r 10.0.0.1:80 -m -w 0\n");
        let k = key("tcp 192.0.2.1:80");
        assert_eq!(
            p.draining(),
            [
                (k, "10.0.0.1:80".parse().unwrap()),
                (k, "10.0.0.2:80".parse().unwrap())
            ]
        );
        let after = p.simulate(&current).unwrap();
        assert_eq!(
            after
                .service(&k)
                .unwrap()
                .destination("10.0.0.1:80".parse().unwrap()),
            Some(&dest("10.0.0.1:80", Forward::Masquerade, 0))
        );
        // Applying again with drain: nothing to do, still draining both.
        let again = plan(&after, &desired, &drain);
        assert!(again.is_empty());
        assert_eq!(again.draining().len(), 2);
        // Without drain: both are deleted.
        let done = plan(&after, &desired, &ApplyOptions::default());
        assert_eq!(
            text(&done),
            "-d -t 192.0.2.1:80 -r 10.0.0.1:80\n-d -t 192.0.2.1:80 -r 10.0.0.2:80\n"
        );
        assert_eq!(done.simulate(&after).unwrap(), desired);
    }

    #[test]
    fn services_out_of_scope_are_never_touched() {
        let foreign = svc(
            "tcp 192.0.2.9:22",
            Scheduler::RoundRobin,
            &[dest("10.0.0.9:22", Forward::Masquerade, 1)],
        );
        let current = table(std::slice::from_ref(&foreign));
        let desired = table(&[svc("udp 192.0.2.1:53", Scheduler::RoundRobin, &[])]);
        for scope in [
            Scope::Desired,
            Scope::Owned([key("tcp 192.0.2.1:80")].into()),
        ] {
            let opts = ApplyOptions {
                scope,
                drain: false,
                ..ApplyOptions::default()
            };
            let p = plan(&current, &desired, &opts);
            assert_eq!(text(&p), "-A -u 192.0.2.1:53 -s rr\n");
            let after = p.simulate(&current).unwrap();
            assert_eq!(after.service(foreign.key()), Some(&foreign));
        }
        let prune = ApplyOptions {
            scope: Scope::FullPrune,
            ..ApplyOptions::default()
        };
        let p = plan(&current, &desired, &prune);
        assert_eq!(p.simulate(&current).unwrap(), desired);
    }

    #[test]
    fn deleted_service_destinations_are_not_deleted_one_by_one() {
        let current = table(&[svc(
            "fwmark 7",
            Scheduler::RoundRobin,
            &[dest("10.0.0.1:0", Forward::DirectRoute, 1)],
        )]);
        let prune = ApplyOptions {
            scope: Scope::FullPrune,
            ..ApplyOptions::default()
        };
        let p = plan(&current, &Table::new(), &prune);
        assert_eq!(text(&p), "-D -f 7\n");
        assert!(p.draining().is_empty());
    }

    #[test]
    fn drain_keeps_removed_services_with_quiesced_destinations() {
        let current = table(&[
            svc(
                "tcp 192.0.2.1:80",
                Scheduler::RoundRobin,
                &[
                    dest("10.0.0.1:80", Forward::Masquerade, 3),
                    dest("10.0.0.2:80", Forward::Masquerade, 0),
                ],
            ),
            svc("tcp 192.0.2.2:80", Scheduler::RoundRobin, &[]),
            svc(
                "tcp 192.0.2.3:80",
                Scheduler::RoundRobin,
                &[dest("10.0.0.9:80", Forward::Masquerade, 1)],
            ),
        ]);
        let desired = table(&[svc(
            "tcp 192.0.2.3:80",
            Scheduler::RoundRobin,
            &[dest("10.0.0.8:80", Forward::Masquerade, 1)],
        )]);
        let drain = ApplyOptions {
            scope: Scope::FullPrune,
            drain: true,
            ..ApplyOptions::default()
        };
        let p = plan(&current, &desired, &drain);
        // In key order; the empty service goes at once.
        assert_eq!(
            text(&p),
            "-e -t 192.0.2.1:80 -r 10.0.0.1:80 -m -w 0\n\
             -a -t 192.0.2.3:80 -r 10.0.0.8:80 -m -w 1\n\
             -e -t 192.0.2.3:80 -r 10.0.0.9:80 -m -w 0\n\
             -D -t 192.0.2.2:80\n"
        );
        let (k1, k3) = (key("tcp 192.0.2.1:80"), key("tcp 192.0.2.3:80"));
        assert_eq!(
            p.draining(),
            [
                (k1, "10.0.0.1:80".parse().unwrap()),
                (k1, "10.0.0.2:80".parse().unwrap()),
                (k3, "10.0.0.9:80".parse().unwrap()),
            ]
        );
        let after = p.simulate(&current).unwrap();
        assert!(
            after
                .service(&k1)
                .unwrap()
                .destinations()
                .all(|d| d.weight() == 0)
        );
        assert!(plan(&after, &desired, &drain).is_empty());
        let done = plan(
            &after,
            &desired,
            &ApplyOptions {
                drain: false,
                ..drain
            },
        );
        assert_eq!(
            text(&done),
            "-d -t 192.0.2.3:80 -r 10.0.0.9:80\n-D -t 192.0.2.1:80\n"
        );
        assert_eq!(done.simulate(&after).unwrap(), desired);
    }

    #[test]
    fn tunnel_and_fwmark_lines() {
        let fwd = Forward::Tunnel {
            kind: TunnelKind::Gue { port: 6080 },
            checksum: TunnelChecksum::RemoteChecksum,
        };
        let k = ServiceKey::fwmark(AddressFamily::Inet6, 3_000_000_000).unwrap();
        let mut s = Service::builder(k).build().unwrap();
        s.add_destination(dest("10.0.0.1:0", fwd, 2)).unwrap();
        let p = plan(&Table::new(), &table(&[s]), &ApplyOptions::default());
        assert_eq!(
            text(&p),
            "-A -f -1294967296 -6 -s wlc\n\
             -a -f -1294967296 -6 -r 10.0.0.1:0 -i -w 2 --tun-type gue --tun-port 6080 --tun-remcsum\n"
        );
    }

    #[test]
    fn every_op_names_its_object_and_message() {
        let current = table(&[svc(
            "tcp 192.0.2.1:80",
            Scheduler::RoundRobin,
            &[dest("10.0.0.1:80", Forward::Masquerade, 1)],
        )]);
        let p = plan(
            &current,
            &Table::new(),
            &ApplyOptions {
                scope: Scope::FullPrune,
                ..ApplyOptions::default()
            },
        );
        assert_eq!(p.ops()[0].object().to_string(), "service tcp 192.0.2.1:80");
        let msgs = p.messages();
        assert_eq!(msgs[0].command, ipvs_sys::Command::DelService);
        assert_eq!(
            msgs[0].service(),
            Some(&service_key_attrs(&key("tcp 192.0.2.1:80")))
        );
    }

    #[test]
    fn simulate_reports_conflicts() {
        let t = table(&[svc("tcp 192.0.2.1:80", Scheduler::RoundRobin, &[])]);
        let p = plan(&Table::new(), &t, &ApplyOptions::default());
        let err = p.simulate(&t).unwrap_err();
        assert_eq!(err.index, 0);
        assert!(
            err.to_string().contains("-A -t 192.0.2.1:80 -s rr"),
            "{err}"
        );
    }

    #[test]
    fn normalize_forces_dr_and_tunnel_ports_to_the_service_port() {
        let s = svc(
            "tcp 192.0.2.1:80",
            Scheduler::RoundRobin,
            &[
                dest("10.0.0.1:8080", Forward::DirectRoute, 1),
                dest("10.0.0.2:8080", Forward::IPIP, 1),
                dest("10.0.0.3:8080", Forward::Masquerade, 1),
                dest("10.0.0.4:8080", Forward::Local, 1),
            ],
        );
        let n = normalize_dest_ports(&table(&[s])).unwrap();
        let ports: Vec<String> = n
            .services()
            .flat_map(|s| s.destinations().map(|d| d.addr().to_string()))
            .collect();
        assert_eq!(
            ports,
            [
                "10.0.0.1:80",
                "10.0.0.2:80",
                "10.0.0.3:8080",
                "10.0.0.4:8080"
            ]
        );
        // fwmark services keep their ports.
        let f = svc(
            "fwmark 1",
            Scheduler::RoundRobin,
            &[dest("10.0.0.1:8080", Forward::DirectRoute, 1)],
        );
        assert_eq!(
            normalize_dest_ports(&table(std::slice::from_ref(&f))).unwrap(),
            table(&[f])
        );
        // Two that collide.
        let c = svc(
            "tcp 192.0.2.1:80",
            Scheduler::RoundRobin,
            &[
                dest("10.0.0.1:80", Forward::DirectRoute, 1),
                dest("10.0.0.1:8080", Forward::DirectRoute, 1),
            ],
        );
        let e = normalize_dest_ports(&table(&[c])).unwrap_err();
        assert_eq!(e.problem, Problem::DuplicateDestination);
        assert_eq!(
            e.to_string(),
            "service tcp 192.0.2.1:80: destination 10.0.0.1:8080: destination already exists"
        );
    }
}
