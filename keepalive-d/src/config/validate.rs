//! The semantic validation pass: raw (spanned) configuration in, [`Config`] or every error out.
//!
//! Each `*_of` / `check_*` helper records an error (with the offending value's position) and
//! returns `None` or a placeholder; a section whose validation recorded any error is left out
//! of the result, and the whole result is an error if anything was recorded.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_saphyr::Location;

use super::error::{ConfigError, ConfigErrors, Position};
use super::raw::{
    List, RawBgp, RawCheck, RawConfig, RawGarp, RawIpvs, RawMetrics, RawNotify, RawPersistence,
    RawQuorum, RawRealServer, RawSyncDaemon, RawSyncGroup, RawTrackScript, RawTunnel,
    RawVirtualServer, RawVmac, RawVrrpInstance, S,
};
use super::types::{
    AddressFamily, Announce, BgpSettings, BodyPattern, Check, CheckKind, Command, Config, DnsCheck,
    DnsRecordType, DnsTransport, Forward, Garp, HttpCheck, IpvsSettings, MetricsSettings, Notify,
    OnStop, Persistence, Protocol, Quorum, RealServer, Scheduler, SchedulerFlag, ServiceKey,
    SyncDaemonSettings, SyncGroup, TcpCheck, TcpClose, TrackScript, Tunnel, TunnelChecksum,
    TunnelEncap, VirtualIp, VirtualServer, Vmac, VrrpInstance, VrrpVersion,
};
use super::{parse_duration, sanitize};

/// Validates `raw`; `file` names the file in errors. With `check_programs`, the program of
/// every command must also pass [`crate::script_security::check_program`] (this reads the
/// file system).
pub(crate) fn validate(
    raw: &S<RawConfig>,
    file: &str,
    check_programs: bool,
) -> Result<Config, ConfigErrors> {
    let mut v = Validator {
        file,
        errors: Vec::new(),
        check_programs,
    };
    let config = v.config(raw);
    if v.errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors::new(v.errors))
    }
}

/// Shortens and escapes a user value for an error message.
fn show(value: &str) -> String {
    const MAX: usize = 60;
    let mut out: String = value.chars().take(MAX).collect();
    if value.chars().count() > MAX {
        out.push('…');
    }
    sanitize(&out)
}

fn family_name(family: AddressFamily) -> &'static str {
    match family {
        AddressFamily::Ipv4 => "IPv4",
        AddressFamily::Ipv6 => "IPv6",
    }
}

fn position_text(loc: &Location) -> String {
    format!("line {}, column {}", loc.line(), loc.column())
}

const SCHEDULERS: [(&str, Scheduler); 14] = [
    ("rr", Scheduler::Rr),
    ("wrr", Scheduler::Wrr),
    ("lc", Scheduler::Lc),
    ("wlc", Scheduler::Wlc),
    ("lblc", Scheduler::Lblc),
    ("lblcr", Scheduler::Lblcr),
    ("dh", Scheduler::Dh),
    ("sh", Scheduler::Sh),
    ("sed", Scheduler::Sed),
    ("nq", Scheduler::Nq),
    ("fo", Scheduler::Fo),
    ("ovf", Scheduler::Ovf),
    ("mh", Scheduler::Mh),
    ("twos", Scheduler::Twos),
];

const SCHEDULER_FLAGS: [(&str, SchedulerFlag); 4] = [
    ("sh-fallback", SchedulerFlag::ShFallback),
    ("sh-port", SchedulerFlag::ShPort),
    ("mh-fallback", SchedulerFlag::MhFallback),
    ("mh-port", SchedulerFlag::MhPort),
];

const PROTOCOLS: [(&str, Protocol); 3] = [
    ("tcp", Protocol::Tcp),
    ("udp", Protocol::Udp),
    ("sctp", Protocol::Sctp),
];

const FAMILIES: [(&str, AddressFamily); 2] =
    [("ipv4", AddressFamily::Ipv4), ("ipv6", AddressFamily::Ipv6)];

#[derive(Clone, Copy, PartialEq, Eq)]
enum ForwardName {
    Nat,
    Dr,
    Tun,
}

const FORWARDS: [(&str, ForwardName); 3] = [
    ("nat", ForwardName::Nat),
    ("dr", ForwardName::Dr),
    ("tun", ForwardName::Tun),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum EncapName {
    Ipip,
    Gue,
    Gre,
}

const ENCAPS: [(&str, EncapName); 3] = [
    ("ipip", EncapName::Ipip),
    ("gue", EncapName::Gue),
    ("gre", EncapName::Gre),
];

const CHECKSUMS: [(&str, TunnelChecksum); 3] = [
    ("none", TunnelChecksum::None),
    ("csum", TunnelChecksum::Csum),
    ("remcsum", TunnelChecksum::Remcsum),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum CheckType {
    Tcp,
    Http,
    Https,
    Dns,
    Exec,
}

const CHECK_TYPES: [(&str, CheckType); 5] = [
    ("tcp", CheckType::Tcp),
    ("http", CheckType::Http),
    ("https", CheckType::Https),
    ("dns", CheckType::Dns),
    ("exec", CheckType::Exec),
];

/// Largest regular expression program accepted for `expect_body`.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

struct Validator<'f> {
    file: &'f str,
    errors: Vec<ConfigError>,
    /// Script security: check every program on the file system.
    check_programs: bool,
}

impl Validator<'_> {
    fn err(&mut self, at: &Location, message: impl AsRef<str>) {
        let position = (at.line() > 0).then(|| Position {
            line: at.line(),
            column: at.column(),
        });
        self.err_at(position, message);
    }

    fn err_at(&mut self, position: Option<Position>, message: impl AsRef<str>) {
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            position,
            message: sanitize(message.as_ref()),
        });
    }

    /// Runs `f` and reports whether it recorded no error.
    fn clean<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> (T, bool) {
        let before = self.errors.len();
        let value = f(self);
        (value, self.errors.len() == before)
    }

    fn required<'a, T>(
        &mut self,
        field: &'a Option<S<T>>,
        key: &str,
        owner: &Location,
        what: &str,
    ) -> Option<&'a S<T>> {
        if field.is_none() {
            self.err(owner, format!("{what}: missing required key `{key}`"));
        }
        field.as_ref()
    }

    // ---- scalars -------------------------------------------------------------------------

    fn int(&mut self, s: &S<String>, key: &str, min: i64, max: i64) -> Option<i64> {
        match s.value.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.err(
                    &s.referenced,
                    format!(
                        "`{key}` must be an integer from {min} to {max}, found `{}`",
                        show(&s.value)
                    ),
                );
                None
            }
        }
    }

    fn opt_int(
        &mut self,
        s: &Option<S<String>>,
        key: &str,
        min: i64,
        max: i64,
        default: i64,
    ) -> i64 {
        match s {
            Some(s) => self.int(s, key, min, max).unwrap_or(default),
            None => default,
        }
    }

    fn duration(&mut self, s: &S<String>, key: &str) -> Option<Duration> {
        match parse_duration(&s.value) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(&s.referenced, format!("`{key}`: {e}"));
                None
            }
        }
    }

    fn opt_duration(&mut self, s: &Option<S<String>>, key: &str, default: Duration) -> Duration {
        match s {
            Some(s) => self.duration(s, key).unwrap_or(default),
            None => default,
        }
    }

    fn ip(&mut self, s: &S<String>, key: &str) -> Option<IpAddr> {
        match s.value.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.err(
                    &s.referenced,
                    format!(
                        "`{key}`: expected an IP address like 192.0.2.1 or 2001:db8::1, found `{}`",
                        show(&s.value)
                    ),
                );
                None
            }
        }
    }

    fn socket_addr(&mut self, s: &S<String>, key: &str) -> Option<SocketAddr> {
        match s.value.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                let hint = if s.value.parse::<IpAddr>().is_ok() {
                    " (the port is missing)"
                } else {
                    ""
                };
                self.err(
                    &s.referenced,
                    format!(
                        "`{key}`: expected address:port like 192.0.2.10:80 or \"[2001:db8::10]:80\", found `{}`{hint}",
                        show(&s.value)
                    ),
                );
                None
            }
        }
    }

    fn one_of<T: Copy>(&mut self, s: &S<String>, key: &str, table: &[(&str, T)]) -> Option<T> {
        if let Some((_, value)) = table.iter().find(|(name, _)| *name == s.value) {
            return Some(*value);
        }
        let names: Vec<&str> = table.iter().map(|(name, _)| *name).collect();
        self.err(
            &s.referenced,
            format!(
                "unknown {key} `{}`: expected one of {}",
                show(&s.value),
                names.join(", ")
            ),
        );
        None
    }

    fn name(&mut self, s: &S<String>, what: &str) -> String {
        let ok = !s.value.is_empty()
            && s.value.len() <= 64
            && s.value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            self.err(
                &s.referenced,
                format!(
                    "{what} name `{}` must be 1 to 64 characters from A-Z, a-z, 0-9, `-`, `_` and `.`",
                    show(&s.value)
                ),
            );
        }
        s.value.clone()
    }

    fn interface_name(&mut self, s: &S<String>, key: &str) -> String {
        let name = &s.value;
        let ok = !name.is_empty()
            && name.len() <= 15
            && name != "."
            && name != ".."
            && !name
                .chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
        if !ok {
            self.err(
                &s.referenced,
                format!(
                    "`{key}`: `{}` is not a valid interface name (1 to 15 bytes, no `/`, `:` or spaces)",
                    show(name)
                ),
            );
        }
        name.clone()
    }

    /// A command: non-empty argv whose program is an absolute path (and, with
    /// `check_programs`, passes script security).
    fn command(&mut self, list: &List<String>, key: &str) -> Option<Command> {
        let Some((program, args)) = list.value.split_first() else {
            self.err(
                &list.referenced,
                format!("`{key}`: a command needs at least the program, e.g. [/usr/local/bin/notify, master]"),
            );
            return None;
        };
        let mut ok = true;
        if !program.value.starts_with('/') {
            self.err(
                &program.referenced,
                format!(
                    "`{key}`: the program must be an absolute path (starting with `/`), found `{}`",
                    show(&program.value)
                ),
            );
            ok = false;
        } else if self.check_programs {
            if let Err(e) =
                crate::script_security::check_program(std::path::Path::new(&program.value))
            {
                self.err(&program.referenced, format!("`{key}`: {e}"));
                ok = false;
            }
        }
        for arg in &list.value {
            if arg.value.contains('\0') {
                self.err(
                    &arg.referenced,
                    format!("`{key}`: arguments cannot contain NUL"),
                );
                ok = false;
            }
        }
        ok.then(|| Command {
            program: program.value.clone(),
            args: args.iter().map(|a| a.value.clone()).collect(),
        })
    }

    // ---- the whole file ------------------------------------------------------------------

    fn config(&mut self, raw: &S<RawConfig>) -> Config {
        let raw = &raw.value;
        let instances_raw = raw
            .vrrp_instances
            .as_ref()
            .map_or(&[][..], |l| l.value.as_slice());
        let groups_raw = raw
            .vrrp_sync_groups
            .as_ref()
            .map_or(&[][..], |l| l.value.as_slice());
        let servers_raw = raw
            .virtual_servers
            .as_ref()
            .map_or(&[][..], |l| l.value.as_slice());

        let mut config = Config {
            vrrp_instances: Vec::new(),
            vrrp_sync_groups: Vec::new(),
            virtual_servers: Vec::new(),
            ipvs: raw
                .ipvs
                .as_ref()
                .map_or_else(IpvsSettings::default, |r| self.ipvs_settings(&r.value)),
            metrics: raw.metrics.as_ref().and_then(|r| self.metrics_settings(r)),
            sync_daemon: None,
            bgp: raw
                .bgp
                .as_ref()
                .map_or_else(BgpSettings::default, |r| self.bgp_settings(&r.value)),
        };
        if instances_raw.is_empty() && servers_raw.is_empty() {
            // About the file as a whole: reported at its start.
            self.err_at(
                Some(Position { line: 1, column: 1 }),
                "the configuration defines nothing: expected `vrrp_instances` and/or `virtual_servers`",
            );
        }

        for raw in instances_raw {
            let (instance, ok) = self.clean(|v| v.vrrp_instance(raw));
            if ok {
                config.vrrp_instances.push(instance);
            }
        }
        self.vrrp_cross_checks(instances_raw);

        config.sync_daemon = raw
            .sync_daemon
            .as_ref()
            .and_then(|r| self.sync_daemon_settings(r, instances_raw));
        let instance_names: HashSet<&str> = instances_raw
            .iter()
            .filter_map(|i| i.value.name.as_ref().map(|n| n.value.as_str()))
            .collect();
        let mut group_names: HashMap<String, Location> = HashMap::new();
        let mut member_of: HashMap<String, (String, Location)> = HashMap::new();
        for raw in groups_raw {
            let (group, ok) = self
                .clean(|v| v.sync_group(raw, &instance_names, &mut group_names, &mut member_of));
            if ok {
                config.vrrp_sync_groups.push(group);
            }
        }

        let mut server_names: HashMap<String, Location> = HashMap::new();
        let mut service_keys: HashMap<ServiceKey, Location> = HashMap::new();
        for raw in servers_raw {
            let (server, ok) =
                self.clean(|v| v.virtual_server(raw, &mut server_names, &mut service_keys));
            if let (Some(server), true) = (server, ok) {
                config.virtual_servers.push(server);
            }
        }
        self.announce_cross_checks(servers_raw, raw.bgp.as_ref());
        config
    }

    // ---- bgp / announce ------------------------------------------------------------------

    fn bgp_settings(&mut self, r: &RawBgp) -> BgpSettings {
        let defaults = BgpSettings::default();
        let table = r.table.as_ref().map_or(defaults.table, |s| {
            match self.int(s, "table", 1, i64::from(u32::MAX)) {
                Some(n @ 253..=255) => {
                    self.err(
                        &s.referenced,
                        format!(
                            "`table`: {n} is the kernel's {} table; use a table of its own, e.g. 100",
                            match n {
                                253 => "default",
                                254 => "main",
                                _ => "local",
                            }
                        ),
                    );
                    defaults.table
                }
                Some(n) => u32::try_from(n).unwrap_or(defaults.table),
                None => defaults.table,
            }
        });
        let protocol = r.protocol.as_ref().map_or(defaults.protocol, |s| {
            match self.int(s, "protocol", 0, 255) {
                Some(n @ (0..=4 | 12)) => {
                    self.err(
                        &s.referenced,
                        format!(
                            "`protocol`: {n} is {}; use a number of its own, e.g. {}",
                            if n == 12 {
                                "BIRD's (it would take the routes for its own and remove them)"
                            } else {
                                "reserved for the kernel's own routes"
                            },
                            BgpSettings::DEFAULT_PROTOCOL
                        ),
                    );
                    defaults.protocol
                }
                Some(n) => u8::try_from(n).unwrap_or(defaults.protocol),
                None => defaults.protocol,
            }
        });
        BgpSettings { table, protocol }
    }

    /// `announce` across virtual servers: the virtual servers of one address announce it
    /// all or none (a route is per address, not per port), and a `bgp` section needs a
    /// virtual server that announces.
    fn announce_cross_checks(&mut self, servers: &[S<RawVirtualServer>], bgp: Option<&S<RawBgp>>) {
        let mut first: HashMap<IpAddr, (bool, Location)> = HashMap::new();
        let mut any = false;
        for raw in servers {
            let r = &raw.value;
            let announces = r.announce.as_ref().is_some_and(|a| a.value == "bgp");
            any |= announces;
            let Some(vip) = r.vip.as_ref() else { continue };
            let Ok(addr) = vip.value.parse::<SocketAddr>() else {
                continue;
            };
            let at = r.announce.as_ref().map_or(vip.referenced, |a| a.referenced);
            match first.get(&addr.ip()) {
                None => {
                    first.insert(addr.ip(), (announces, at));
                }
                Some((other, other_at)) if *other != announces => {
                    let other_at = *other_at;
                    self.err(
                        &at,
                        format!(
                            "`announce`: the virtual server at {} {} {}, this one {}: the \
                             virtual servers of one address must all announce it or none \
                             (the route is for the address, whatever the port)",
                            position_text(&other_at),
                            if *other {
                                "announces"
                            } else {
                                "does not announce"
                            },
                            addr.ip(),
                            if announces { "does" } else { "does not" }
                        ),
                    );
                }
                Some(_) => {}
            }
        }
        if let (Some(b), false) = (bgp, any) {
            self.err(
                &b.referenced,
                "`bgp` is set but no virtual server has `announce: bgp`",
            );
        }
    }

    /// A virtual server's `announce`.
    fn announce(
        &mut self,
        r: &RawVirtualServer,
        key: Option<ServiceKey>,
        quorum: Quorum,
    ) -> Option<Announce> {
        let s = r.announce.as_ref()?;
        let announce = self.one_of(s, "announce method", &[("bgp", Announce::Bgp)])?;
        if matches!(key, Some(ServiceKey::Fwmark { .. })) {
            self.err(
                &s.referenced,
                "`announce` needs a `vip`: a fwmark service has no address to announce",
            );
        }
        if quorum.min_up == 0 {
            self.err(
                &s.referenced,
                "`announce: bgp` with `quorum.min_up: 0` would announce the address with no \
                 real server up; set `min_up` to 1 or more",
            );
        }
        Some(announce)
    }

    // ---- ipvs ----------------------------------------------------------------------------

    fn ipvs_settings(&mut self, r: &RawIpvs) -> IpvsSettings {
        let defaults = IpvsSettings::default();
        let reconcile_interval = self.opt_duration(
            &r.reconcile_interval,
            "reconcile_interval",
            defaults.reconcile_interval,
        );
        if let Some(s) = &r.reconcile_interval {
            if reconcile_interval < Duration::from_secs(1) {
                self.err(&s.referenced, "`reconcile_interval` must be at least 1s");
            }
        }
        let coalesce = self.opt_duration(&r.coalesce, "coalesce", defaults.coalesce);
        if let Some(s) = &r.coalesce {
            if coalesce > Duration::from_secs(5) {
                self.err(&s.referenced, "`coalesce` must be at most 5s");
            }
        }
        let on_stop = r.on_stop.as_ref().map_or(defaults.on_stop, |s| {
            self.one_of(
                s,
                "on_stop",
                &[("remove", OnStop::Remove), ("keep", OnStop::Keep)],
            )
            .unwrap_or(defaults.on_stop)
        });
        IpvsSettings {
            reconcile_interval,
            coalesce,
            on_stop,
        }
    }

    // ---- sync_daemon ---------------------------------------------------------------------

    fn sync_daemon_settings(
        &mut self,
        r: &S<RawSyncDaemon>,
        instances: &[S<RawVrrpInstance>],
    ) -> Option<SyncDaemonSettings> {
        let at = &r.referenced;
        let v = &r.value;
        let (settings, ok) = self.clean(|this| {
            let interface = this
                .required(&v.interface, "interface", at, "sync_daemon")
                .map(|s| this.interface_name(s, "interface"));
            let sync_id = v
                .sync_id
                .as_ref()
                .map_or(Some(0), |s| this.int(s, "sync_id", 0, 255));
            // Without `instance`: both daemons all the time (active-active directors).
            let instance = match &v.instance {
                None => Some(None),
                Some(s) => {
                    let known = instances
                        .iter()
                        .any(|i| i.value.name.as_ref().is_some_and(|n| n.value == s.value));
                    if known {
                        Some(Some(s.value.clone()))
                    } else {
                        this.err(
                            &s.referenced,
                            format!(
                                "`instance`: no VRRP instance named `{}` in `vrrp_instances`",
                                show(&s.value)
                            ),
                        );
                        None
                    }
                }
            };
            Some(SyncDaemonSettings {
                interface: interface?,
                instance: instance?,
                sync_id: u8::try_from(sync_id?).ok()?,
            })
        });
        settings.filter(|_| ok)
    }

    // ---- metrics -------------------------------------------------------------------------

    fn metrics_settings(&mut self, r: &S<RawMetrics>) -> Option<MetricsSettings> {
        let allow_remote = r.value.allow_remote.as_ref().is_some_and(|b| b.value);
        let listen = self.required(&r.value.listen, "listen", &r.referenced, "metrics")?;
        let addr = self.socket_addr(listen, "listen")?;
        if addr.port() == 0 {
            self.err(
                &listen.referenced,
                "`listen`: the port must not be 0 (Prometheus needs a fixed port to scrape)",
            );
            return None;
        }
        if !addr.ip().is_loopback() && !allow_remote {
            self.err(
                &listen.referenced,
                format!(
                    "`listen`: {addr} is not a loopback address: the metrics would be reachable \
                     from the network; use 127.0.0.1 or ::1, or set `allow_remote: true`"
                ),
            );
            return None;
        }
        Some(MetricsSettings {
            listen: addr,
            allow_remote,
        })
    }

    // ---- VRRP ----------------------------------------------------------------------------

    fn vrrp_instance(&mut self, raw: &S<RawVrrpInstance>) -> VrrpInstance {
        let at = &raw.referenced;
        let r = &raw.value;
        const WHAT: &str = "vrrp instance";
        let name = match self.required(&r.name, "name", at, WHAT) {
            Some(s) => self.name(s, "vrrp instance"),
            None => String::new(),
        };
        let interface = match self.required(&r.interface, "interface", at, WHAT) {
            Some(s) => self.interface_name(s, "interface"),
            None => String::new(),
        };
        let vrid = self
            .required(&r.vrid, "vrid", at, WHAT)
            .and_then(|s| self.int(s, "vrid", 1, 255))
            .unwrap_or(1);
        let priority = self
            .required(&r.priority, "priority", at, WHAT)
            .and_then(|s| self.int(s, "priority", 1, 255))
            .unwrap_or(1);
        let version = match &r.version {
            None => Some(VrrpVersion::V3),
            Some(s) => match s.value.as_str() {
                "2" => Some(VrrpVersion::V2),
                "3" => Some(VrrpVersion::V3),
                other => {
                    self.err(
                        &s.referenced,
                        format!("`version` must be 2 or 3, found `{}`", show(other)),
                    );
                    None
                }
            },
        };

        let advert_interval = self.opt_duration(
            &r.advert_interval,
            "advert_interval",
            Duration::from_secs(1),
        );
        if let (Some(s), Some(version)) = (&r.advert_interval, version) {
            let ms = advert_interval.as_millis();
            match version {
                VrrpVersion::V2 if ms % 1000 != 0 || !(1_000..=255_000).contains(&ms) => self.err(
                    &s.referenced,
                    format!(
                        "`advert_interval` for VRRPv2 must be whole seconds from 1s to 255s, found `{}`",
                        show(&s.value)
                    ),
                ),
                VrrpVersion::V3 if ms % 10 != 0 || !(10..=40_950).contains(&ms) => self.err(
                    &s.referenced,
                    format!(
                        "`advert_interval` for VRRPv3 must be a multiple of 10ms from 10ms to 40s950ms, found `{}`",
                        show(&s.value)
                    ),
                ),
                _ => {}
            }
        }

        let preempt = r.preempt.as_ref().is_none_or(|b| b.value);
        let preempt_delay = self.opt_duration(&r.preempt_delay, "preempt_delay", Duration::ZERO);
        if let Some(s) = &r.preempt_delay {
            if preempt_delay > Duration::from_secs(1000) {
                self.err(
                    &s.referenced,
                    format!(
                        "`preempt_delay` must be at most 1000s, found `{}`",
                        show(&s.value)
                    ),
                );
            } else if !preempt && !preempt_delay.is_zero() {
                self.err(
                    &s.referenced,
                    "`preempt_delay` has no effect with `preempt: false`; remove one of them",
                );
            }
        }

        // Virtual IPs decide the instance's family.
        let mut virtual_ips = Vec::new();
        let mut family = None;
        if let Some(list) = self.required(&r.virtual_ips, "virtual_ips", at, WHAT) {
            if list.value.is_empty() {
                self.err(
                    &list.referenced,
                    "`virtual_ips` must list at least one address",
                );
            }
            let mut seen: HashMap<IpAddr, Location> = HashMap::new();
            for s in &list.value {
                let Some(vip) = self.virtual_ip(s) else {
                    continue;
                };
                let vip_family = AddressFamily::of(vip.addr);
                if version == Some(VrrpVersion::V2) && vip_family == AddressFamily::Ipv6 {
                    self.err(
                        &s.referenced,
                        format!(
                            "`virtual_ips`: {} is IPv6, but VRRPv2 carries IPv4 addresses only (use version: 3)",
                            vip.addr
                        ),
                    );
                    continue;
                }
                match family {
                    None => family = Some(vip_family),
                    Some(f) if f != vip_family => {
                        self.err(
                            &s.referenced,
                            format!(
                                "`virtual_ips` mixes IPv4 and IPv6: {} is {} but the first address is {}; \
                                 one VRRP instance advertises one family, so make a second instance \
                                 (e.g. `{name}-v6`) and join both in a sync group",
                                vip.addr,
                                family_name(vip_family),
                                family_name(f)
                            ),
                        );
                        continue;
                    }
                    Some(_) => {}
                }
                if let Some(first) = seen.get(&vip.addr) {
                    self.err(
                        &s.referenced,
                        format!(
                            "`virtual_ips`: {} is listed twice (first at {})",
                            vip.addr,
                            position_text(first)
                        ),
                    );
                    continue;
                }
                seen.insert(vip.addr, s.referenced);
                virtual_ips.push(vip);
            }
        }

        // Unicast: the source and peers are of one family, that of the virtual IPs.
        let unicast_source = r
            .unicast_source
            .as_ref()
            .and_then(|s| self.ip(s, "unicast_source").map(|ip| (ip, s.referenced)));
        let mut unicast_peers = Vec::new();
        if let Some(list) = &r.unicast_peers {
            let mut seen = HashSet::new();
            for s in &list.value {
                if let Some(ip) = self.ip(s, "unicast_peers") {
                    if !seen.insert(ip) {
                        self.err(
                            &s.referenced,
                            format!("`unicast_peers`: {ip} is listed twice"),
                        );
                    }
                    unicast_peers.push((ip, s.referenced));
                }
            }
        }
        if let (Some(s), true) = (
            &r.unicast_source,
            r.unicast_peers.as_ref().is_none_or(|l| l.value.is_empty()),
        ) {
            self.err(
                &s.referenced,
                "`unicast_source` is only used with `unicast_peers` (without peers, advertisements are multicast)",
            );
        }
        let reference = family
            .map(|f| (f, "the instance's virtual IPs are"))
            .or_else(|| {
                unicast_source.map(|(ip, _)| (AddressFamily::of(ip), "`unicast_source` is"))
            });
        if let Some((expected, whose)) = reference {
            for (ip, loc) in unicast_source.iter().chain(unicast_peers.iter()) {
                if AddressFamily::of(*ip) != expected {
                    self.err(
                        loc,
                        format!(
                            "{ip} is {} but {whose} {}: unicast addresses must be of the instance's family",
                            family_name(AddressFamily::of(*ip)),
                            family_name(expected)
                        ),
                    );
                }
            }
        }

        let auth_pass = r.auth_pass.as_ref().map(|s| {
            if version == Some(VrrpVersion::V3) {
                self.err(
                    &s.referenced,
                    "`auth_pass` is only valid with `version: 2` (VRRPv3 has no authentication)",
                );
            }
            if s.value.is_empty() || s.value.len() > 8 {
                self.err(
                    &s.referenced,
                    format!(
                        "`auth_pass` must be 1 to 8 bytes long, found {} bytes",
                        s.value.len()
                    ),
                );
            }
            s.value.clone()
        });

        let mut track_interfaces = Vec::new();
        if let Some(list) = &r.track_interfaces {
            let mut seen = HashSet::new();
            for s in &list.value {
                let name = self.interface_name(s, "track_interfaces");
                if !seen.insert(name.clone()) {
                    self.err(
                        &s.referenced,
                        format!("`track_interfaces`: `{}` is listed twice", show(&name)),
                    );
                }
                track_interfaces.push(name);
            }
        }

        let track_scripts = r
            .track_scripts
            .as_ref()
            .map(|list| {
                list.value
                    .iter()
                    .filter_map(|s| self.track_script(s))
                    .collect()
            })
            .unwrap_or_default();
        let notify = r
            .notify
            .as_ref()
            .map(|n| self.notify(&n.value))
            .unwrap_or_default();
        let garp = r
            .garp
            .as_ref()
            .map(|g| self.garp(&g.value))
            .unwrap_or_default();
        let vmac = r.vmac.as_ref().and_then(|raw| {
            self.vmac(
                raw,
                u8::try_from(vrid).unwrap_or(1),
                family.unwrap_or(AddressFamily::Ipv4),
                &interface,
                priority,
            )
        });

        VrrpInstance {
            name,
            interface,
            vrid: u8::try_from(vrid).unwrap_or(1),
            priority: u8::try_from(priority).unwrap_or(1),
            version: version.unwrap_or(VrrpVersion::V3),
            family: family.unwrap_or(AddressFamily::Ipv4),
            advert_interval,
            preempt,
            preempt_delay,
            unicast_source: unicast_source.map(|(ip, _)| ip),
            unicast_peers: unicast_peers.into_iter().map(|(ip, _)| ip).collect(),
            auth_pass,
            virtual_ips,
            track_interfaces,
            track_scripts,
            notify,
            garp,
            vmac,
        }
    }

    /// `vmac`: off, on with the default name, or on with a name.
    fn vmac(
        &mut self,
        raw: &S<RawVmac>,
        vrid: u8,
        family: AddressFamily,
        interface: &str,
        priority: i64,
    ) -> Option<Vmac> {
        let at = &raw.referenced;
        if matches!(raw.value, RawVmac::Enabled(false)) {
            return None;
        }
        let Some(name) = raw.value.name(vrid, family) else {
            self.err(
                at,
                "`vmac` must be `true`, `false` or `{ name: NAME }` (the macvlan's name, default vrrp.VRID)",
            );
            return None;
        };
        // (The default names are valid too.)
        let name = self.interface_name(
            &S {
                value: name,
                referenced: *at,
                defined: *at,
            },
            "vmac.name",
        );
        if name == interface {
            self.err(
                at,
                format!(
                    "`vmac`: the virtual MAC interface `{}` cannot be the instance's own interface; \
                     it is created over it",
                    show(&name)
                ),
            );
        }
        if priority == 255 {
            self.err(
                at,
                "`vmac` cannot be used by the address owner (priority 255): its virtual IPs are \
                 addresses of the interface itself",
            );
        }
        Some(Vmac { name })
    }

    fn virtual_ip(&mut self, s: &S<String>) -> Option<VirtualIp> {
        let text = s.value.as_str();
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let Ok(addr) = addr_text.parse::<IpAddr>() else {
            self.err(
                &s.referenced,
                format!(
                    "`virtual_ips`: expected address/prefix like 192.0.2.10/24 or 2001:db8::10/64, found `{}`",
                    show(text)
                ),
            );
            return None;
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix_text {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if (1..=max).contains(&n) && !p.starts_with('+') => n,
                _ => {
                    self.err(
                        &s.referenced,
                        format!(
                            "`virtual_ips`: the prefix length of {addr} must be from 1 to {max}, found `{}`",
                            show(p)
                        ),
                    );
                    return None;
                }
            },
        };
        if addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() {
            self.err(
                &s.referenced,
                format!("`virtual_ips`: {addr} cannot be a virtual IP (unspecified, loopback or multicast)"),
            );
            return None;
        }
        Some(VirtualIp { addr, prefix_len })
    }

    fn track_script(&mut self, raw: &S<RawTrackScript>) -> Option<TrackScript> {
        let at = &raw.referenced;
        let r: &RawTrackScript = &raw.value;
        let (script, ok) = self.clean(|v| {
            let command = v
                .required(&r.command, "command", at, "track script")
                .and_then(|c| v.command(c, "command"));
            let interval = v.opt_duration(&r.interval, "interval", Duration::from_secs(1));
            let timeout = v.opt_duration(&r.timeout, "timeout", interval);
            v.interval_and_timeout(&r.interval, &r.timeout, interval, timeout);
            let weight = v.opt_int(&r.weight, "weight", -253, 253, 0);
            let rise = v.opt_int(&r.rise, "rise", 1, i64::from(u32::MAX), 1);
            let fall = v.opt_int(&r.fall, "fall", 1, i64::from(u32::MAX), 1);
            command.map(|command| TrackScript {
                command,
                interval,
                timeout,
                weight: i16::try_from(weight).unwrap_or(0),
                rise: u32::try_from(rise).unwrap_or(1),
                fall: u32::try_from(fall).unwrap_or(1),
            })
        });
        script.filter(|_| ok)
    }

    /// `interval > 0`, `0 < timeout <= interval`.
    fn interval_and_timeout(
        &mut self,
        interval_raw: &Option<S<String>>,
        timeout_raw: &Option<S<String>>,
        interval: Duration,
        timeout: Duration,
    ) {
        if let Some(s) = interval_raw {
            if interval.is_zero() {
                self.err(&s.referenced, "`interval` must be greater than 0s");
                return;
            }
        }
        if let Some(s) = timeout_raw {
            if timeout.is_zero() {
                self.err(&s.referenced, "`timeout` must be greater than 0s");
            } else if timeout > interval {
                self.err(
                    &s.referenced,
                    format!(
                        "`timeout` ({}) must not be longer than `interval` ({})",
                        super::format_duration(timeout),
                        super::format_duration(interval)
                    ),
                );
            }
        }
    }

    fn notify(&mut self, raw: &RawNotify) -> Notify {
        Notify {
            master: raw
                .master
                .as_ref()
                .and_then(|c| self.command(c, "notify.master")),
            backup: raw
                .backup
                .as_ref()
                .and_then(|c| self.command(c, "notify.backup")),
            fault: raw
                .fault
                .as_ref()
                .and_then(|c| self.command(c, "notify.fault")),
            stop: raw
                .stop
                .as_ref()
                .and_then(|c| self.command(c, "notify.stop")),
            timeout: self.notify_timeout(raw),
        }
    }

    /// `notify.timeout`: 1s to 1h.
    fn notify_timeout(&mut self, raw: &RawNotify) -> Duration {
        let default = Notify::DEFAULT_TIMEOUT;
        let Some(s) = &raw.timeout else {
            return default;
        };
        let Some(t) = self.duration(s, "notify.timeout") else {
            return default;
        };
        if t < Duration::from_secs(1) || t > Duration::from_secs(3600) {
            self.err(
                &s.referenced,
                format!(
                    "`notify.timeout` must be between 1s and 1h, found `{}`",
                    show(&s.value)
                ),
            );
            return default;
        }
        t
    }

    fn garp(&mut self, raw: &RawGarp) -> Garp {
        let defaults = Garp::default();
        let delay = self.opt_duration(&raw.delay, "garp.delay", defaults.delay);
        if let Some(s) = &raw.delay {
            if delay > Duration::from_secs(3600) {
                self.err(
                    &s.referenced,
                    format!(
                        "`garp.delay` must be at most 1h, found `{}`",
                        show(&s.value)
                    ),
                );
            }
        }
        let repeat = self.opt_int(&raw.repeat, "garp.repeat", 1, 100, 5);
        Garp {
            delay,
            repeat: u32::try_from(repeat).unwrap_or(5),
        }
    }

    /// Checks across instances: unique names, unique vrid per (interface, version, family),
    /// a virtual IP in one instance only.
    fn vrrp_cross_checks(&mut self, instances: &[S<RawVrrpInstance>]) {
        let mut names: HashMap<&str, Location> = HashMap::new();
        let mut vrids: HashMap<(&str, u8, AddressFamily, &str), (String, Location)> =
            HashMap::new();
        let mut vips: HashMap<IpAddr, (String, Location)> = HashMap::new();
        let mut vmacs: HashMap<String, (String, Location)> = HashMap::new();
        let interfaces: HashSet<&str> = instances
            .iter()
            .filter_map(|r| r.value.interface.as_ref().map(|i| i.value.as_str()))
            .collect();
        for raw in instances {
            let r = &raw.value;
            let name = r.name.as_ref().map_or("", |n| n.value.as_str());
            if let Some(n) = &r.name {
                if let Some(first) = names.get(n.value.as_str()) {
                    self.err(
                        &n.referenced,
                        format!(
                            "duplicate vrrp instance name `{}` (first defined at {})",
                            show(&n.value),
                            position_text(first)
                        ),
                    );
                } else {
                    names.insert(&n.value, n.referenced);
                }
            }
            // Family from the first parseable virtual IP.
            let family = r.virtual_ips.as_ref().and_then(|l| {
                l.value.iter().find_map(|s| {
                    let addr = s.value.split('/').next().unwrap_or("");
                    addr.parse::<IpAddr>().ok().map(AddressFamily::of)
                })
            });
            // Only valid vrids are compared (`051` and `51` are the same vrid).
            let vrid_number = r.vrid.as_ref().and_then(|v| v.value.parse::<u8>().ok());
            if let (Some(interface), Some(vrid), Some(number), Some(family)) =
                (&r.interface, &r.vrid, vrid_number, family)
            {
                let version = r.version.as_ref().map_or("3", |v| v.value.as_str());
                let key = (interface.value.as_str(), number, family, version);
                if let Some((other, first)) = vrids.get(&key) {
                    self.err(
                        &vrid.referenced,
                        format!(
                            "vrid {number} is already used on {} by instance `{}` ({}, VRRPv{version}, at {}): \
                             a vrid must be unique per interface, version and address family",
                            show(&interface.value),
                            show(other),
                            family_name(family),
                            position_text(first)
                        ),
                    );
                } else {
                    vrids.insert(key, (name.to_owned(), vrid.referenced));
                }
            }
            if let (Some(vmac), Some(number)) = (&r.vmac, vrid_number)
                && let Some(vmac_name) = vmac
                    .value
                    .name(number, family.unwrap_or(AddressFamily::Ipv4))
            {
                if let Some((other, first)) = vmacs.get(&vmac_name) {
                    self.err(
                        &vmac.referenced,
                        format!(
                            "`vmac`: the virtual MAC interface `{}` is also that of instance `{}` (at {}); \
                             give each instance its own with `vmac: {{ name: NAME }}`",
                            show(&vmac_name),
                            show(other),
                            position_text(first)
                        ),
                    );
                } else if interfaces.contains(vmac_name.as_str())
                    // Its own interface is reported by `vmac()`.
                    && r.interface.as_ref().map(|i| i.value.as_str()) != Some(vmac_name.as_str())
                {
                    self.err(
                        &vmac.referenced,
                        format!(
                            "`vmac`: `{}` is the interface of a vrrp instance; the virtual MAC \
                             interface needs a name of its own",
                            show(&vmac_name)
                        ),
                    );
                } else {
                    vmacs.insert(vmac_name, (name.to_owned(), vmac.referenced));
                }
            }
            for s in r.virtual_ips.iter().flat_map(|l| l.value.iter()) {
                let Ok(addr) = s.value.split('/').next().unwrap_or("").parse::<IpAddr>() else {
                    continue;
                };
                match vips.get(&addr) {
                    Some((other, first)) if other != name => self.err(
                        &s.referenced,
                        format!(
                            "virtual IP {addr} is also in instance `{}` (at {}): an address belongs to one instance",
                            show(other),
                            position_text(first)
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        vips.insert(addr, (name.to_owned(), s.referenced));
                    }
                }
            }
        }
    }

    fn sync_group(
        &mut self,
        raw: &S<RawSyncGroup>,
        instance_names: &HashSet<&str>,
        group_names: &mut HashMap<String, Location>,
        member_of: &mut HashMap<String, (String, Location)>,
    ) -> SyncGroup {
        let at = &raw.referenced;
        let r = &raw.value;
        let name = match self.required(&r.name, "name", at, "vrrp sync group") {
            Some(s) => {
                let name = self.name(s, "sync group");
                if let Some(first) = group_names.get(&name) {
                    self.err(
                        &s.referenced,
                        format!(
                            "duplicate sync group name `{}` (first defined at {})",
                            show(&name),
                            position_text(first)
                        ),
                    );
                } else {
                    group_names.insert(name.clone(), s.referenced);
                }
                name
            }
            None => String::new(),
        };
        let mut instances = Vec::new();
        if let Some(list) = self.required(&r.instances, "instances", at, "vrrp sync group") {
            if list.value.is_empty() {
                self.err(
                    &list.referenced,
                    "`instances` must name at least one vrrp instance",
                );
            }
            for s in &list.value {
                let member = &s.value;
                if !instance_names.contains(member.as_str()) {
                    self.err(
                        &s.referenced,
                        format!(
                            "sync group `{}`: no vrrp instance is named `{}`",
                            show(&name),
                            show(member)
                        ),
                    );
                    continue;
                }
                if let Some((group, first)) = member_of.get(member) {
                    let message = if *group == name {
                        format!(
                            "instance `{}` is listed twice in this sync group",
                            show(member)
                        )
                    } else {
                        format!(
                            "instance `{}` is already in sync group `{}` (at {}): an instance can be in at most one group",
                            show(member),
                            show(group),
                            position_text(first)
                        )
                    };
                    self.err(&s.referenced, message);
                    continue;
                }
                member_of.insert(member.clone(), (name.clone(), s.referenced));
                instances.push(member.clone());
            }
        }
        SyncGroup { name, instances }
    }

    // ---- IPVS ----------------------------------------------------------------------------

    fn virtual_server(
        &mut self,
        raw: &S<RawVirtualServer>,
        names: &mut HashMap<String, Location>,
        keys: &mut HashMap<ServiceKey, Location>,
    ) -> Option<VirtualServer> {
        let at = &raw.referenced;
        let r = &raw.value;
        const WHAT: &str = "virtual server";
        let name = match self.required(&r.name, "name", at, WHAT) {
            Some(s) => {
                let name = self.name(s, WHAT);
                if let Some(first) = names.get(&name) {
                    self.err(
                        &s.referenced,
                        format!(
                            "duplicate virtual server name `{}` (first defined at {})",
                            show(&name),
                            position_text(first)
                        ),
                    );
                } else {
                    names.insert(name.clone(), s.referenced);
                }
                name
            }
            None => String::new(),
        };

        let key = self.service_key(r, at);
        if let Some(key) = key {
            let key_at = r
                .vip
                .as_ref()
                .or(r.fwmark.as_ref())
                .map_or(*at, |s| s.referenced);
            if let Some(first) = keys.get(&key) {
                self.err(
                    &key_at,
                    format!(
                        "this service is already defined at {} (a vip and protocol, or a fwmark and family, identify one service)",
                        position_text(first)
                    ),
                );
            } else {
                keys.insert(key, key_at);
            }
        }
        let family = key.map(|k| k.family());
        let is_fwmark = matches!(key, Some(ServiceKey::Fwmark { .. }));
        let vip_port = match key {
            Some(ServiceKey::Addr { vip, .. }) => Some(vip.port()),
            _ => None,
        };

        let scheduler = match &r.scheduler {
            Some(s) => self.one_of(s, "scheduler", &SCHEDULERS),
            None => Some(Scheduler::Wlc),
        };
        let mut scheduler_flags = Vec::new();
        if let Some(list) = &r.scheduler_flags {
            for s in &list.value {
                let Some(flag) = self.one_of(s, "scheduler flag", &SCHEDULER_FLAGS) else {
                    continue;
                };
                if let Some(scheduler) = scheduler {
                    if flag.scheduler() != scheduler {
                        self.err(
                            &s.referenced,
                            format!(
                                "scheduler flag `{}` belongs to the {} scheduler, but `scheduler` is {}",
                                flag.as_str(),
                                flag.scheduler().as_str(),
                                scheduler.as_str()
                            ),
                        );
                        continue;
                    }
                }
                if scheduler_flags.contains(&flag) {
                    self.err(
                        &s.referenced,
                        format!("scheduler flag `{}` is listed twice", flag.as_str()),
                    );
                    continue;
                }
                scheduler_flags.push(flag);
            }
        }

        let persistence = r
            .persistence
            .as_ref()
            .and_then(|p| self.persistence(&p.value, family));
        if let (Some(0), None) = (vip_port, &r.persistence) {
            if let Some(s) = &r.vip {
                self.err(
                    &s.referenced,
                    "a vip with port 0 (all ports) needs `persistence`",
                );
            }
        }

        let one_packet = r.one_packet.as_ref().is_some_and(|b| b.value);
        if let (Some(b), Some(ServiceKey::Addr { protocol, .. })) = (&r.one_packet, key) {
            if b.value && protocol != Protocol::Udp {
                self.err(
                    &b.referenced,
                    format!(
                        "`one_packet` only applies to udp (or fwmark) services, this one is {}",
                        protocol.as_str()
                    ),
                );
            }
        }

        let forward_name = match &r.forward {
            Some(s) => self.one_of(s, "forward method", &FORWARDS),
            None => Some(ForwardName::Nat),
        };
        let forward = match forward_name {
            Some(ForwardName::Nat) => Some(Forward::Nat),
            Some(ForwardName::Dr) => Some(Forward::DirectRouting),
            Some(ForwardName::Tun) => {
                let tunnel = match &r.tunnel {
                    Some(t) => self.tunnel(&t.value, &t.referenced),
                    None => Some(Tunnel {
                        encap: TunnelEncap::Ipip,
                        checksum: TunnelChecksum::None,
                    }),
                };
                tunnel.map(Forward::Tunnel)
            }
            None => None,
        };
        if let (Some(t), Some(name)) = (&r.tunnel, forward_name) {
            if name != ForwardName::Tun {
                self.err(&t.referenced, "`tunnel` is only valid with `forward: tun`");
            }
        }
        let tunnelled = forward_name == Some(ForwardName::Tun);

        let service_check = r.check.as_ref().and_then(|c| self.check(c));
        let check_bad = r.check.is_some() && service_check.is_none();

        // Sized once: a large table's real servers are most of the configuration's memory.
        let mut real_servers =
            Vec::with_capacity(r.real_servers.as_ref().map_or(0, |l| l.value.len()));
        if let Some(list) = self.required(&r.real_servers, "real_servers", at, WHAT) {
            if list.value.is_empty() {
                self.err(
                    &list.referenced,
                    "`real_servers` must list at least one real server",
                );
            }
            let mut seen: HashMap<SocketAddr, Location> = HashMap::new();
            for raw_rs in &list.value {
                let Some(rs) = self.real_server(raw_rs, service_check.as_ref(), check_bad) else {
                    continue;
                };
                let rs_at = raw_rs
                    .value
                    .address
                    .as_ref()
                    .map_or(raw_rs.referenced, |a| a.referenced);
                if let Some(first) = seen.get(&rs.address) {
                    self.err(
                        &rs_at,
                        format!(
                            "real server {} is listed twice in this virtual server (first at {})",
                            rs.address,
                            position_text(first)
                        ),
                    );
                    continue;
                }
                seen.insert(rs.address, rs_at);
                let rs_family = AddressFamily::of(rs.address.ip());
                if let Some(family) = family {
                    if rs_family != family && !tunnelled {
                        self.err(
                            &rs_at,
                            format!(
                                "real server {} is {} but the service is {} (mixing families needs `forward: tun`)",
                                rs.address,
                                family_name(rs_family),
                                family_name(family)
                            ),
                        );
                    }
                }
                if rs.address.port() == 0 && !is_fwmark && vip_port != Some(0) && key.is_some() {
                    self.err(
                        &rs_at,
                        "real server port 0 is only allowed for fwmark services or a vip with port 0",
                    );
                }
                if rs.address.port() == 0 {
                    if let Some(check) = &rs.check {
                        if check.port.is_none() && check.kind.is_network() {
                            self.err(
                                &rs_at,
                                format!(
                                    "real server {} has port 0, so its health check needs `port`",
                                    rs.address
                                ),
                            );
                        }
                    }
                }
                real_servers.push(rs);
            }
        }

        let quorum = match &r.quorum {
            // Count the entries as written: one with its own error must not also make the
            // quorum look unreachable.
            Some(q) => {
                let written = r.real_servers.as_ref().map_or(0, |l| l.value.len());
                self.quorum(&q.value, &q.referenced, written)
            }
            None => Quorum::default(),
        };

        let sorry_server = r.sorry_server.as_ref().and_then(|s| {
            let addr = self.socket_addr(s, "sorry_server")?;
            if let Some(family) = family {
                if AddressFamily::of(addr.ip()) != family {
                    self.err(
                        &s.referenced,
                        format!(
                            "`sorry_server` {addr} is {} but the service is {}",
                            family_name(AddressFamily::of(addr.ip())),
                            family_name(family)
                        ),
                    );
                }
            }
            Some(addr)
        });
        let inhibit_on_failure = r.inhibit_on_failure.as_ref().is_some_and(|b| b.value);
        let announce = self.announce(r, key, quorum);

        Some(VirtualServer {
            name,
            key: key?,
            scheduler: scheduler?,
            scheduler_flags,
            persistence,
            one_packet,
            forward: forward?,
            real_servers,
            quorum,
            sorry_server,
            inhibit_on_failure,
            announce,
        })
    }

    fn service_key(&mut self, r: &RawVirtualServer, at: &Location) -> Option<ServiceKey> {
        match (&r.vip, &r.fwmark) {
            (Some(_), Some(mark)) => {
                self.err(
                    &mark.referenced,
                    "a virtual server has either `vip` or `fwmark` (with `family`), not both",
                );
                None
            }
            (None, None) => {
                self.err(
                    at,
                    "virtual server: missing `vip` (e.g. vip: 192.0.2.10:80) or `fwmark` with `family`",
                );
                None
            }
            (Some(vip), None) => {
                if let Some(f) = &r.family {
                    self.err(
                        &f.referenced,
                        "`family` is only used with `fwmark`; the family of a `vip` is that of its address",
                    );
                }
                let protocol = match &r.protocol {
                    Some(s) => self.one_of(s, "protocol", &PROTOCOLS),
                    None => Some(Protocol::Tcp),
                };
                let addr = self.socket_addr(vip, "vip")?;
                if addr.ip().is_unspecified() || addr.ip().is_multicast() {
                    self.err(
                        &vip.referenced,
                        format!(
                            "`vip`: {} cannot be a service address (unspecified or multicast)",
                            addr.ip()
                        ),
                    );
                    return None;
                }
                Some(ServiceKey::Addr {
                    protocol: protocol?,
                    vip: addr,
                })
            }
            (None, Some(mark)) => {
                if let Some(p) = &r.protocol {
                    self.err(
                        &p.referenced,
                        "`protocol` is not allowed with `fwmark`: the firewall mark selects the packets",
                    );
                }
                let mark = self.int(mark, "fwmark", 1, i64::from(u32::MAX));
                let family = match &r.family {
                    Some(s) => self.one_of(s, "family", &FAMILIES),
                    None => {
                        self.err(
                            at,
                            "virtual server: `fwmark` needs `family: ipv4` or `family: ipv6`",
                        );
                        None
                    }
                };
                Some(ServiceKey::Fwmark {
                    mark: u32::try_from(mark?).ok()?,
                    family: family?,
                })
            }
        }
    }

    fn persistence(
        &mut self,
        raw: &RawPersistence,
        family: Option<AddressFamily>,
    ) -> Option<Persistence> {
        let timeout = self.opt_duration(
            &raw.timeout,
            "persistence.timeout",
            Duration::from_secs(300),
        );
        if let Some(s) = &raw.timeout {
            if timeout.subsec_millis() != 0
                || timeout.is_zero()
                || timeout.as_secs() > u64::from(u32::MAX)
            {
                self.err(
                    &s.referenced,
                    format!(
                        "`persistence.timeout` must be whole seconds, at least 1s, found `{}`",
                        show(&s.value)
                    ),
                );
            }
        }
        let family = family?;
        let prefix_len = match (&raw.netmask, family) {
            (None, AddressFamily::Ipv4) => 32,
            (None, AddressFamily::Ipv6) => 128,
            (Some(s), AddressFamily::Ipv4) => match s.value.parse::<Ipv4Addr>() {
                Ok(mask) => {
                    let bits = u32::from(mask);
                    if bits.leading_ones() + bits.trailing_zeros() == 32 || bits == 0 {
                        u8::try_from(bits.leading_ones()).unwrap_or(32)
                    } else {
                        self.err(
                            &s.referenced,
                            format!("`persistence.netmask` {mask} is not a contiguous netmask (like 255.255.255.0)"),
                        );
                        return None;
                    }
                }
                Err(_) => {
                    self.err(
                        &s.referenced,
                        format!(
                            "`persistence.netmask` of an IPv4 service must be a dotted netmask like 255.255.255.0, found `{}`",
                            show(&s.value)
                        ),
                    );
                    return None;
                }
            },
            (Some(s), AddressFamily::Ipv6) => {
                let digits = s.value.strip_prefix('/').unwrap_or(&s.value);
                match digits.parse::<u8>() {
                    Ok(n) if (1..=128).contains(&n) && !digits.starts_with('+') => n,
                    _ => {
                        self.err(
                            &s.referenced,
                            format!(
                                "`persistence.netmask` of an IPv6 service must be a prefix length from 1 to 128 (`/64` or `64`), found `{}`",
                                show(&s.value)
                            ),
                        );
                        return None;
                    }
                }
            }
        };
        Some(Persistence {
            timeout,
            prefix_len,
        })
    }

    fn tunnel(&mut self, raw: &RawTunnel, at: &Location) -> Option<Tunnel> {
        let encap = match &raw.kind {
            Some(s) => self.one_of(s, "tunnel type", &ENCAPS),
            None => Some(EncapName::Ipip),
        };
        let checksum = match &raw.checksum {
            Some(s) => self.one_of(s, "tunnel checksum", &CHECKSUMS),
            None => Some(TunnelChecksum::None),
        };
        let port = raw
            .port
            .as_ref()
            .and_then(|s| self.int(s, "tunnel.port", 1, 65535));
        match (encap, &raw.port) {
            (Some(EncapName::Gue), None) => {
                self.err(at, "`tunnel`: `type: gue` needs `port` (the GUE UDP port)");
            }
            (Some(EncapName::Ipip | EncapName::Gre), Some(s)) => {
                self.err(&s.referenced, "`tunnel.port` is only used with `type: gue`");
            }
            _ => {}
        }
        if let (Some(encap), Some(checksum), Some(s)) = (encap, checksum, &raw.checksum) {
            let bad = match (encap, checksum) {
                (EncapName::Ipip, TunnelChecksum::Csum | TunnelChecksum::Remcsum) => {
                    Some("ipip tunnels have no checksum option")
                }
                (EncapName::Gre, TunnelChecksum::Remcsum) => {
                    Some("`remcsum` is only available with `type: gue`")
                }
                _ => None,
            };
            if let Some(message) = bad {
                self.err(&s.referenced, format!("`tunnel.checksum`: {message}"));
            }
        }
        let encap = match encap? {
            EncapName::Ipip => TunnelEncap::Ipip,
            EncapName::Gre => TunnelEncap::Gre,
            EncapName::Gue => TunnelEncap::Gue {
                port: u16::try_from(port?).ok()?,
            },
        };
        Some(Tunnel {
            encap,
            checksum: checksum?,
        })
    }

    fn real_server(
        &mut self,
        raw: &S<RawRealServer>,
        service_check: Option<&Check>,
        service_check_bad: bool,
    ) -> Option<RealServer> {
        let at = &raw.referenced;
        let r = &raw.value;
        let address = self
            .required(&r.address, "address", at, "real server")
            .and_then(|s| self.socket_addr(s, "address"));
        let weight = self.opt_int(&r.weight, "weight", 0, i64::from(i32::MAX), 1);
        let check = match &r.check {
            Some(c) => Some(self.check(c)?),
            None if service_check_bad => return None,
            None => service_check.cloned(),
        };
        let address = address?;
        if let Some(source) = check.as_ref().and_then(|c| c.source) {
            if AddressFamily::of(source) != AddressFamily::of(address.ip()) {
                let at = r.address.as_ref().map_or(at, |s| &s.referenced);
                self.err(
                    at,
                    format!(
                        "real server {address} is {} but its check's `source` {source} is {}",
                        family_name(AddressFamily::of(address.ip())),
                        family_name(AddressFamily::of(source))
                    ),
                );
                return None;
            }
        }
        Some(RealServer {
            address,
            weight: u32::try_from(weight).unwrap_or(1),
            check,
        })
    }

    fn quorum(&mut self, raw: &RawQuorum, at: &Location, servers: usize) -> Quorum {
        let servers = i64::try_from(servers).unwrap_or(i64::MAX);
        let min_up = self.opt_int(&raw.min_up, "quorum.min_up", 0, i64::from(u32::MAX), 1);
        let hysteresis = self.opt_int(
            &raw.hysteresis,
            "quorum.hysteresis",
            0,
            i64::from(u32::MAX),
            0,
        );
        let min_at = raw.min_up.as_ref().map_or(*at, |s| s.referenced);
        if min_up > servers && servers > 0 {
            self.err(
                &min_at,
                format!("`quorum.min_up` is {min_up} but the virtual server has only {servers} real servers"),
            );
        } else if hysteresis > 0 {
            let hyst_at = raw.hysteresis.as_ref().map_or(*at, |s| s.referenced);
            if hysteresis >= min_up {
                self.err(
                    &hyst_at,
                    format!(
                        "`quorum.hysteresis` ({hysteresis}) must be smaller than `min_up` ({min_up}), or the quorum could never be lost"
                    ),
                );
            } else if min_up + hysteresis > servers && servers > 0 {
                self.err(
                    &hyst_at,
                    format!(
                        "`quorum.min_up` + `hysteresis` ({}) exceeds the {servers} real servers: a lost quorum could never come back",
                        min_up + hysteresis
                    ),
                );
            }
        }
        Quorum {
            min_up: u32::try_from(min_up).unwrap_or(1),
            hysteresis: u32::try_from(hysteresis).unwrap_or(0),
        }
    }

    // ---- health checks -------------------------------------------------------------------

    fn check(&mut self, raw: &S<RawCheck>) -> Option<Check> {
        let at = &raw.referenced;
        let r = &raw.value;
        let (check, ok) = self.clean(|v| {
            let kind = v
                .required(&r.kind, "type", at, "check")
                .and_then(|s| v.one_of(s, "check type", &CHECK_TYPES));
            let interval = v.opt_duration(&r.interval, "interval", Duration::from_secs(2));
            let timeout = v.opt_duration(&r.timeout, "timeout", interval.min(Duration::from_secs(1)));
            v.interval_and_timeout(&r.interval, &r.timeout, interval, timeout);
            let rise = v.opt_int(&r.rise, "rise", 1, i64::from(u32::MAX), 2);
            let fall = v.opt_int(&r.fall, "fall", 1, i64::from(u32::MAX), 3);
            let port = r.port.as_ref().and_then(|s| v.int(s, "port", 1, 65535));
            let kind = kind?;
            let is_http = matches!(kind, CheckType::Http | CheckType::Https);
            let type_name = r.kind.as_ref().map_or("", |s| s.value.as_str());
            let only = |v: &mut Self, field: Option<&Location>, key: &str, valid_for: &str| {
                if let Some(loc) = field {
                    v.err(
                        loc,
                        format!("`{key}` is only valid for {valid_for} checks, this check is {}", show(type_name)),
                    );
                }
            };
            if !is_http {
                only(v, r.path.as_ref().map(|s| &s.referenced), "path", "http and https");
                only(v, r.expect_status.as_ref().map(|s| &s.referenced), "expect_status", "http and https");
                only(v, r.expect_body.as_ref().map(|s| &s.referenced), "expect_body", "http and https");
                only(v, r.host.as_ref().map(|s| &s.referenced), "host", "http and https");
            }
            if kind != CheckType::Https {
                only(v, r.ca.as_ref().map(|s| &s.referenced), "ca", "https");
            }
            let source = r.source.as_ref().and_then(|s| {
                if kind == CheckType::Exec {
                    v.err(&s.referenced, "`source` is not used by exec checks");
                    return None;
                }
                let ip = v.ip(s, "source")?;
                if ip.is_unspecified() || ip.is_multicast() {
                    v.err(
                        &s.referenced,
                        format!("`source` must be a unicast address of this host, found `{ip}`"),
                    );
                    return None;
                }
                Some(ip)
            });
            if kind != CheckType::Dns {
                only(v, r.dns.as_ref().map(|s| &s.referenced), "dns", "dns");
            }
            let close = match &r.close {
                Some(s) if kind == CheckType::Tcp => v.one_of(s, "close", &TcpClose::ALL),
                Some(s) => {
                    only(v, Some(&s.referenced), "close", "tcp");
                    None
                }
                None => Some(TcpClose::default()),
            };
            if kind != CheckType::Exec {
                only(v, r.exec.as_ref().map(|s| &s.referenced), "exec", "exec");
            } else if let Some(s) = &r.port {
                v.err(&s.referenced, "`port` is not used by exec checks");
            }
            let kind = match kind {
                CheckType::Tcp => close.map(|close| CheckKind::Tcp(TcpCheck { close })),
                CheckType::Http => v.http_check(r).map(CheckKind::Http),
                CheckType::Https => v.http_check(r).map(CheckKind::Https),
                CheckType::Dns => match &r.dns {
                    Some(dns) => v.dns_check(&dns.value, &dns.referenced).map(CheckKind::Dns),
                    None => {
                        v.err(at, "a dns check needs `dns: { query: NAME, record: TYPE }`");
                        None
                    }
                },
                CheckType::Exec => match &r.exec {
                    Some(exec) => v
                        .required(&exec.value.command, "command", &exec.referenced, "exec")
                        .and_then(|c| v.command(c, "exec.command"))
                        .map(CheckKind::Exec),
                    None => {
                        v.err(at, "an exec check needs `exec: { command: [/absolute/path, args...] }`");
                        None
                    }
                },
            }?;
            Some(Check {
                kind,
                interval,
                timeout,
                rise: u32::try_from(rise).unwrap_or(2),
                fall: u32::try_from(fall).unwrap_or(3),
                port: port.and_then(|p| u16::try_from(p).ok()),
                source,
            })
        });
        check.filter(|_| ok)
    }

    fn http_check(&mut self, r: &RawCheck) -> Option<HttpCheck> {
        let path = match &r.path {
            Some(s) => {
                if !s.value.starts_with('/')
                    || s.value.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    self.err(
                        &s.referenced,
                        format!(
                            "`path` must start with `/` and contain no spaces, found `{}`",
                            show(&s.value)
                        ),
                    );
                }
                s.value.clone()
            }
            None => "/".to_owned(),
        };
        let mut expect_status = Vec::new();
        match &r.expect_status {
            Some(list) => {
                if list.value.is_empty() {
                    self.err(
                        &list.referenced,
                        "`expect_status` must list at least one status code",
                    );
                }
                for s in &list.value {
                    if let Some(code) = self.int(s, "expect_status", 100, 599) {
                        expect_status.push(u16::try_from(code).unwrap_or(200));
                    }
                }
            }
            None => expect_status.push(200),
        }
        let expect_body = r.expect_body.as_ref().and_then(|s| {
            match regex::RegexBuilder::new(&s.value)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .build()
            {
                Ok(re) => Some(BodyPattern(re)),
                Err(e) => {
                    let detail = e.to_string();
                    let last = detail
                        .lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("");
                    let last = last.trim();
                    let last = last.strip_prefix("error:").unwrap_or(last).trim();
                    self.err(
                        &s.referenced,
                        format!(
                            "`expect_body` is not a valid regular expression: {}",
                            last.trim()
                        ),
                    );
                    None
                }
            }
        });
        let host = r.host.as_ref().map(|s| {
            if s.value.is_empty()
                || s.value.len() > 253
                || s.value
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '/')
            {
                self.err(
                    &s.referenced,
                    format!(
                        "`host` must be a host name (no spaces or `/`), found `{}`",
                        show(&s.value)
                    ),
                );
            }
            s.value.clone()
        });
        let ca = r.ca.as_ref().and_then(|s| {
            if !s.value.starts_with('/') || s.value.contains('\0') {
                self.err(
                    &s.referenced,
                    format!(
                        "`ca` must be an absolute path to a PEM file, found `{}`",
                        show(&s.value)
                    ),
                );
                return None;
            }
            Some(std::path::PathBuf::from(&s.value))
        });
        Some(HttpCheck {
            path,
            expect_status,
            expect_body,
            host,
            ca,
        })
    }

    fn dns_check(&mut self, raw: &super::raw::RawDns, at: &Location) -> Option<DnsCheck> {
        let query = self
            .required(&raw.query, "query", at, "dns check")
            .map(|s| {
                if !valid_domain(&s.value) {
                    self.err(
                        &s.referenced,
                        format!(
                            "`dns.query` must be a domain name like example.test, found `{}`",
                            show(&s.value)
                        ),
                    );
                }
                s.value.clone()
            });
        let record = match &raw.record {
            Some(s) => {
                let found = DnsRecordType::ALL
                    .iter()
                    .find(|(_, name)| name.eq_ignore_ascii_case(&s.value))
                    .map(|(t, _)| *t);
                if found.is_none() {
                    let names: Vec<&str> = DnsRecordType::ALL.iter().map(|(_, n)| *n).collect();
                    self.err(
                        &s.referenced,
                        format!(
                            "unknown dns record type `{}`: expected one of {}",
                            show(&s.value),
                            names.join(", ")
                        ),
                    );
                }
                found
            }
            None => Some(DnsRecordType::A),
        };
        let transport = match &raw.transport {
            Some(s) => {
                let found = DnsTransport::ALL
                    .iter()
                    .find(|(_, name)| *name == s.value)
                    .map(|(t, _)| *t);
                if found.is_none() {
                    self.err(
                        &s.referenced,
                        format!(
                            "unknown dns transport `{}`: expected udp, tcp or both",
                            show(&s.value)
                        ),
                    );
                }
                found
            }
            None => Some(DnsTransport::Udp),
        };
        Some(DnsCheck {
            query: query?,
            record: record?,
            transport: transport?,
        })
    }
}

impl CheckKind {
    /// Whether the check talks to the real server over the network (has a port).
    fn is_network(&self) -> bool {
        !matches!(self, CheckKind::Exec(_))
    }
}

/// A domain name: dot-separated labels of 1..=63 letters, digits, `-` or `_`, at most 253
/// characters, optionally ending with a dot.
fn valid_domain(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}
