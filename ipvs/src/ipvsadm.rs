//! The `ipvsadm -S -n` save / `ipvsadm -R` restore text format.
//!
//! [`print()`] writes a [`Table`] exactly as `ipvsadm -S -n` (ipvsadm 1.31) writes it:
//!
//! ```text
//! -A -t 192.0.2.20:443 -s wrr -p 300 -M 255.255.255.0
//! -a -t 192.0.2.20:443 -r 10.0.0.21:443 -g -w 10
//! -a -t 192.0.2.20:443 -r 10.0.0.22:443 -i -w 20 --tun-type ipip
//! -A -u [2001:db8::53]:53 -s sh -b sh-port
//! -a -u [2001:db8::53]:53 -r [2001:db8:1::1]:53 -m -w 1
//! -A -f 7 -s lc
//! -a -f 7 -r 10.0.0.31:0 -g -w 5
//! ```
//!
//! - Service line: `-A SERVICE -s SCHED [-p TIMEOUT [-M MASK]] [--pe ENGINE] [-o] [-b FLAGS]`
//!   where SERVICE is `-t ADDR:PORT`, `-u ADDR:PORT`, `--sctp-service ADDR:PORT`,
//!   `-f MARK` or `-f MARK -6`. `-M` is left out for a host mask; an IPv6 mask is a
//!   prefix length. ipvsadm prints a mark above `i32::MAX` as a negative number (`-f -1`
//!   for 4294967295); so does [`print()`], and [`parse`] reads it back.
//! - Destination line: `-a SERVICE -r ADDR:PORT FWD -w WEIGHT [TUNNEL]` where FWD is `-m`
//!   (NAT), `-g` (direct routing, and local node), `-i` (tunnel) or `(null)` (bypass, as
//!   ipvsadm prints it: verified in the lab with a bypass destination added over
//!   netlink); TUNNEL is `--tun-type ipip`, `--tun-type gue --tun-port
//!   PORT --tun-nocsum|--tun-csum|--tun-remcsum` or `--tun-type gre
//!   --tun-nocsum|--tun-csum`. ipvsadm does not save the connection thresholds (`-x`,
//!   `-y`); [`print_with`] with [`PrintOptions::thresholds`] adds them.
//! - Order: as ipvsadm sorts (libipvs `ipvs_cmp_services` / `ipvs_cmp_dests`): address
//!   services before fwmark services, IPv4 before IPv6, TCP, UDP, SCTP, then address
//!   and port. ipvsadm compares addresses and marks by 32-bit wrapping subtraction, so
//!   `192.168.0.1` sorts before `10.0.0.1` (their difference exceeds 2^31); [`print()`]
//!   does the same whenever that order is consistent (all values within half the 32-bit
//!   circle), and falls back to numeric order otherwise, where ipvsadm's order depends on
//!   the kernel's.
//!
//! [`parse`] reads that and what people commonly feed to `ipvsadm -R`: long options
//! (`--add-service`, `--tcp-service`, `--scheduler`, `--persistent`, `--netmask`,
//! `--real-server`, `--gatewaying`, `--ipip`, `--masquerading`, `--weight`,
//! `--u-threshold`, `--l-threshold`, `--sched-flags`, `--ops`, `--ipv6`, ...),
//! `--option=value`, clustered short options (`-At`), `-p` without a value (360 s, the
//! default of ipvsadm 1.31), addresses without a port (port 0 for a service, the
//! service's port for a real server), an optional leading `ipvsadm` word, blank lines and
//! `#` comments, and the table commands `-E`/`-e` (edit), `-D`/`-d` (delete) and `-C`
//! (clear), port names from a fixed table ([`SERVICE_NAMES`], e.g. `192.0.2.1:http`).
//! Differences from ipvsadm: host names are not resolved, and port names only from that
//! table; `-M`
//! without `-p` is ignored as ipvsadm ignores it, but `--pe` without `-p` is an error
//! (the engine has no effect without persistence, the model keeps it in
//! [`Persistence`]); the port of a `-g`/`-i` real server is kept as written (ipvsadm
//! replaces it by the service's port); the generic flags `flag-1..3` are only accepted
//! for custom schedulers and `flag-3` not for `sh`/`mh` (ipvsadm accepts and ignores
//! them); a service with port 0 need not be persistent.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::mpsc::SyncSender;
use std::time::Duration;

use crate::error::Error;
use crate::types::{
    AddressFamily, DEFAULT_PERSISTENCE_TIMEOUT, Destination, Forward, Persistence,
    PersistenceEngine, PersistenceMask, Protocol, SchedFlags, Scheduler, Service, ServiceKey,
    Table, TunnelChecksum, TunnelKind, push_ip_words, socket_addr_to_string,
};

/// A parse error: the line (1-based), the token at fault, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// The 1-based line number.
    pub line: usize,
    /// The token at fault, if the error is about one.
    pub token: Option<String>,
    /// What is wrong.
    pub kind: ParseErrorKind,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.token {
            Some(t) => write!(f, "line {}: `{}`: {}", self.line, t, self.kind),
            None => write!(f, "line {}: {}", self.line, self.kind),
        }
    }
}

/// What is wrong in a [`ParseError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// An option ipvsadm does not have.
    #[error("unknown option")]
    UnknownOption,
    /// An option without its required argument.
    #[error("missing argument")]
    MissingArgument,
    /// A word that is no option and no option's argument.
    #[error("unexpected argument")]
    UnexpectedArgument,
    /// A line without a command (`-A`, `-a`, ...).
    #[error("no command (-A, -E, -D, -a, -e, -d or -C)")]
    NoCommand,
    /// A second command on a line.
    #[error("more than one command")]
    MultipleCommands,
    /// A command that does not describe a table (`-L`, `--set`, `--start-daemon`, ...).
    #[error("command not supported in a table")]
    UnsupportedCommand,
    /// An option given twice (or two forwarding methods, two checksum options).
    #[error("option given twice or conflicting with an earlier one")]
    DuplicateOption,
    /// An option not valid with the line's command.
    #[error("option not valid with {0}")]
    OptionNotAllowed(&'static str),
    /// A command without its service (`-t`, `-u`, `--sctp-service`, `-f`).
    #[error("missing service (-t, -u, --sctp-service or -f)")]
    MissingService,
    /// A destination command without `-r`.
    #[error("missing real server (-r)")]
    MissingRealServer,
    /// An address that does not parse.
    #[error(
        "invalid address (expected A.B.C.D[:PORT], [IPV6]:PORT or IPV6; host names are not resolved)"
    )]
    InvalidAddress,
    /// A number that does not parse or is out of range.
    #[error("invalid {what} (expected {range})")]
    InvalidNumber {
        /// What the number is.
        what: &'static str,
        /// The accepted range.
        range: &'static str,
    },
    /// An invalid netmask.
    #[error("invalid netmask (expected a dotted IPv4 mask or an IPv6 prefix length 1-128)")]
    InvalidNetmask,
    /// An unknown tunnel type.
    #[error("unknown tunnel type (expected ipip, gue or gre)")]
    UnknownTunnelType,
    /// A scheduler flag of another scheduler, or unknown.
    #[error("scheduler flag {flag:?} is not valid with scheduler {scheduler}")]
    IncompatibleSchedFlag {
        /// The flag.
        flag: String,
        /// The scheduler.
        scheduler: String,
    },
    /// `-6` without `-f`.
    #[error("-6 is only valid with a fwmark service (-f)")]
    Ipv6WithoutFwmark,
    /// Tunnel options without `-i`.
    #[error("tunnel options need tunnel forwarding (-i)")]
    TunnelOptionWithoutTunnel,
    /// `--tun-port` missing for GUE, or given for another tunnel type.
    #[error("--tun-port is required for gue and only valid for gue")]
    TunnelPort,
    /// `--pe` without `-p`.
    #[error("a persistence engine needs persistence (-p)")]
    EngineWithoutPersistence,
    /// A destination or edit command for a service not defined above.
    #[error("service not defined")]
    NoSuchService,
    /// An edit or delete of a destination not defined above.
    #[error("no such destination")]
    NoSuchDestination,
    /// The model rejected the value.
    #[error("{0}")]
    Invalid(Box<Error>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    AddService,
    EditService,
    DelService,
    AddDest,
    EditDest,
    DelDest,
    Clear,
}

impl Cmd {
    fn name(self) -> &'static str {
        match self {
            Cmd::AddService => "-A",
            Cmd::EditService => "-E",
            Cmd::DelService => "-D",
            Cmd::AddDest => "-a",
            Cmd::EditDest => "-e",
            Cmd::DelDest => "-d",
            Cmd::Clear => "-C",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arg {
    None,
    Required,
    Optional,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Cmd(Cmd),
    OtherCmd,
    Tcp,
    Udp,
    Sctp,
    Fwmark,
    Ipv6,
    Sched,
    Persistent,
    Netmask,
    Pe,
    Ops,
    SchedFlags,
    Real,
    Masq,
    Ipip,
    Gate,
    Bypass,
    Weight,
    UThr,
    LThr,
    TunType,
    TunPort,
    TunNoCsum,
    TunCsum,
    TunRemCsum,
    Numeric,
}

/// (long name, short name, argument, option)
const OPTIONS: &[(&str, Option<char>, Arg, Opt)] = &[
    (
        "add-service",
        Some('A'),
        Arg::None,
        Opt::Cmd(Cmd::AddService),
    ),
    (
        "edit-service",
        Some('E'),
        Arg::None,
        Opt::Cmd(Cmd::EditService),
    ),
    (
        "delete-service",
        Some('D'),
        Arg::None,
        Opt::Cmd(Cmd::DelService),
    ),
    ("clear", Some('C'), Arg::None, Opt::Cmd(Cmd::Clear)),
    ("add-server", Some('a'), Arg::None, Opt::Cmd(Cmd::AddDest)),
    ("edit-server", Some('e'), Arg::None, Opt::Cmd(Cmd::EditDest)),
    (
        "delete-server",
        Some('d'),
        Arg::None,
        Opt::Cmd(Cmd::DelDest),
    ),
    ("list", Some('L'), Arg::None, Opt::OtherCmd),
    ("list", Some('l'), Arg::None, Opt::OtherCmd),
    ("zero", Some('Z'), Arg::None, Opt::OtherCmd),
    ("set", None, Arg::None, Opt::OtherCmd),
    ("help", Some('h'), Arg::None, Opt::OtherCmd),
    ("version", Some('v'), Arg::None, Opt::OtherCmd),
    ("restore", Some('R'), Arg::None, Opt::OtherCmd),
    ("save", Some('S'), Arg::None, Opt::OtherCmd),
    ("start-daemon", None, Arg::Required, Opt::OtherCmd),
    ("stop-daemon", None, Arg::Required, Opt::OtherCmd),
    ("tcp-service", Some('t'), Arg::Required, Opt::Tcp),
    ("udp-service", Some('u'), Arg::Required, Opt::Udp),
    ("sctp-service", None, Arg::Required, Opt::Sctp),
    ("fwmark-service", Some('f'), Arg::Required, Opt::Fwmark),
    ("ipv6", Some('6'), Arg::None, Opt::Ipv6),
    ("scheduler", Some('s'), Arg::Required, Opt::Sched),
    ("persistent", Some('p'), Arg::Optional, Opt::Persistent),
    ("netmask", Some('M'), Arg::Required, Opt::Netmask),
    ("pe", None, Arg::Required, Opt::Pe),
    ("ops", Some('o'), Arg::None, Opt::Ops),
    ("sched-flags", Some('b'), Arg::Required, Opt::SchedFlags),
    ("real-server", Some('r'), Arg::Required, Opt::Real),
    ("masquerading", Some('m'), Arg::None, Opt::Masq),
    ("ipip", Some('i'), Arg::None, Opt::Ipip),
    ("gatewaying", Some('g'), Arg::None, Opt::Gate),
    ("weight", Some('w'), Arg::Required, Opt::Weight),
    ("u-threshold", Some('x'), Arg::Required, Opt::UThr),
    ("l-threshold", Some('y'), Arg::Required, Opt::LThr),
    ("tun-type", None, Arg::Required, Opt::TunType),
    ("tun-port", None, Arg::Required, Opt::TunPort),
    ("tun-nocsum", None, Arg::None, Opt::TunNoCsum),
    ("tun-csum", None, Arg::None, Opt::TunCsum),
    ("tun-remcsum", None, Arg::None, Opt::TunRemCsum),
    ("numeric", Some('n'), Arg::None, Opt::Numeric),
];

/// The [`OPTIONS`] index of each ASCII short option (`u8::MAX`: none): a restore looks
/// up four or five a line, 110,000 lines for a table of 10,000 services.
const SHORT: [u8; 128] = {
    let mut t = [u8::MAX; 128];
    let mut i = OPTIONS.len();
    // Backwards, so that the first entry of a name wins, as a search from the front.
    while i > 0 {
        i -= 1;
        if let Some(c) = OPTIONS[i].1 {
            t[c as usize] = i as u8;
        }
    }
    t
};

/// The entry of short option `c`.
fn short_option(c: char) -> Option<&'static (&'static str, Option<char>, Arg, Opt)> {
    let i = *SHORT.get(c as usize)?;
    OPTIONS.get(usize::from(i))
}

/// One option occurrence: the option, the token that named it, its argument.
#[derive(Debug, Clone, Copy)]
struct Occ<'a> {
    opt: Opt,
    token: &'a str,
    arg: Option<&'a str>,
}

struct LineCtx {
    line: usize,
}

impl LineCtx {
    fn err(&self, token: &str, kind: ParseErrorKind) -> ParseError {
        ParseError {
            line: self.line,
            token: Some(token.to_owned()),
            kind,
        }
    }

    fn err_line(&self, kind: ParseErrorKind) -> ParseError {
        ParseError {
            line: self.line,
            token: None,
            kind,
        }
    }
}

/// The option occurrences of `words`, into `out` (cleared first: scratch space reused
/// from line to line, so that a line costs no allocation).
fn tokenize<'a>(
    ctx: &LineCtx,
    words: &[&'a str],
    out: &mut Vec<Occ<'a>>,
) -> Result<(), ParseError> {
    out.clear();
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        i += 1;
        if w == "(null)" {
            // What ipvsadm -S prints for the bypass forwarding method.
            out.push(Occ {
                opt: Opt::Bypass,
                token: w,
                arg: None,
            });
            continue;
        }
        if let Some(long) = w.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            let Some(&(_, _, arg, opt)) = OPTIONS.iter().find(|o| o.0 == name) else {
                return Err(ctx.err(w, ParseErrorKind::UnknownOption));
            };
            if opt == Opt::OtherCmd {
                return Err(ctx.err(w, ParseErrorKind::UnsupportedCommand));
            }
            let value = match (arg, inline) {
                (Arg::None, Some(_)) => {
                    return Err(ctx.err(w, ParseErrorKind::UnexpectedArgument));
                }
                (Arg::None, None) => None,
                (_, Some(v)) => Some(v),
                (Arg::Required, None) => {
                    let v = words
                        .get(i)
                        .ok_or_else(|| ctx.err(w, ParseErrorKind::MissingArgument))?;
                    i += 1;
                    Some(*v)
                }
                (Arg::Optional, None) => match words.get(i) {
                    Some(v) if !v.starts_with('-') => {
                        i += 1;
                        Some(*v)
                    }
                    _ => None,
                },
            };
            out.push(Occ {
                opt,
                token: w,
                arg: value,
            });
        } else if let Some(cluster) = w.strip_prefix('-').filter(|c| !c.is_empty()) {
            for (pos, c) in cluster.char_indices() {
                let Some(&(_, _, arg, opt)) = short_option(c) else {
                    return Err(ctx.err(w, ParseErrorKind::UnknownOption));
                };
                if opt == Opt::OtherCmd {
                    return Err(ctx.err(w, ParseErrorKind::UnsupportedCommand));
                }
                let rest = &cluster[pos + c.len_utf8()..];
                let value = match arg {
                    Arg::None => None,
                    Arg::Required | Arg::Optional if !rest.is_empty() => {
                        out.push(Occ {
                            opt,
                            token: w,
                            arg: Some(rest),
                        });
                        break;
                    }
                    Arg::Required => {
                        let v = words
                            .get(i)
                            .ok_or_else(|| ctx.err(w, ParseErrorKind::MissingArgument))?;
                        i += 1;
                        Some(*v)
                    }
                    Arg::Optional => match words.get(i) {
                        Some(v) if !v.starts_with('-') => {
                            i += 1;
                            Some(*v)
                        }
                        _ => None,
                    },
                };
                out.push(Occ {
                    opt,
                    token: w,
                    arg: value,
                });
            }
        } else {
            return Err(ctx.err(w, ParseErrorKind::UnexpectedArgument));
        }
    }
    Ok(())
}

/// Parses `host[:port]` the way ipvsadm does, with numeric hosts only: `[v6]:port`,
/// `v6`, `v4:port`, `v4`. The port is a number or a [service name](SERVICE_NAMES) of
/// `protocol`.
fn parse_addr(s: &str, protocol: Protocol) -> Option<(IpAddr, Option<u16>)> {
    if s.is_empty() || s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (ip, port) = rest.split_once("]:")?;
        let ip: Ipv6Addr = ip.parse().ok()?;
        return Some((IpAddr::V6(ip), Some(parse_service_port(port, protocol)?)));
    }
    // An IPv6 address has at least two colons, `v4` and `v4:port` at most one.
    if s.bytes().filter(|b| *b == b':').count() >= 2 {
        return Some((IpAddr::V6(s.parse::<Ipv6Addr>().ok()?), None));
    }
    match s.split_once(':') {
        Some((ip, port)) => Some((
            IpAddr::V4(parse_ipv4(ip)?),
            Some(parse_service_port(port, protocol)?),
        )),
        None => Some((IpAddr::V4(parse_ipv4(s)?), None)),
    }
}

/// A dotted-quad IPv4 address, exactly as `Ipv4Addr::from_str` (and `inet_pton`) reads
/// it: four decimal parts of 1-3 digits, each at most 255, no leading zero. Written by
/// hand because it is the most frequent token of a restore (every line has one or two)
/// and the standard parser, which is general, took a tenth of the parse time; a
/// property test holds the two equal.
fn parse_ipv4(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.as_bytes().split(|b| *b == b'.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || (part.len() > 1 && part[0] == b'0') {
            return None;
        }
        let mut n: u16 = 0;
        for &b in part {
            if !b.is_ascii_digit() {
                return None;
            }
            n = n * 10 + u16::from(b - b'0');
        }
        *octet = u8::try_from(n).ok()?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_service_port(s: &str, protocol: Protocol) -> Option<u16> {
    parse_port(s).or_else(|| {
        SERVICE_NAMES
            .iter()
            .find(|(names, _, protos)| names.contains(&s) && protos.contains(&protocol))
            .map(|(_, port, _)| *port)
    })
}

const TCP: &[Protocol] = &[Protocol::Tcp];
const UDP: &[Protocol] = &[Protocol::Udp];
const TCP_UDP: &[Protocol] = &[Protocol::Tcp, Protocol::Udp];

/// The port names [`parse`] knows, with the protocols they are defined for: a fixed
/// subset of Debian 12's `/etc/services` (which ipvsadm reads through
/// `getservbyname`), so that parsing does not depend on the system. Names and aliases,
/// port, protocols. A real server's port name is looked up for its service's protocol
/// (TCP for fwmark services, as ipvsadm does).
pub const SERVICE_NAMES: &[(&[&str], u16, &[Protocol])] = &[
    (&["ftp"], 21, TCP),
    (&["ssh"], 22, TCP),
    (&["telnet"], 23, TCP),
    (&["smtp", "mail"], 25, TCP),
    (&["domain"], 53, TCP_UDP),
    (&["http", "www"], 80, TCP),
    (
        &["kerberos", "kerberos5", "krb5", "kerberos-sec"],
        88,
        TCP_UDP,
    ),
    (&["pop3", "pop-3"], 110, TCP),
    (&["ntp"], 123, UDP),
    (&["imap2", "imap"], 143, TCP),
    (&["snmp"], 161, TCP_UDP),
    (&["ldap"], 389, TCP_UDP),
    (&["https"], 443, TCP_UDP),
    (&["submissions", "ssmtp", "smtps"], 465, TCP),
    (&["syslog"], 514, UDP),
    (&["submission"], 587, TCP),
    (&["ldaps"], 636, TCP_UDP),
    (&["rsync"], 873, TCP),
    (&["imaps"], 993, TCP),
    (&["pop3s"], 995, TCP),
    (&["openvpn"], 1194, TCP_UDP),
    (&["ms-sql-s"], 1433, TCP),
    (&["radius"], 1812, TCP_UDP),
    (&["mysql"], 3306, TCP),
    (&["postgresql", "postgres"], 5432, TCP),
    (&["sip"], 5060, TCP_UDP),
    (&["sip-tls"], 5061, TCP_UDP),
    (&["http-alt", "webcache"], 8080, TCP),
];

fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A fwmark as ipvsadm reads it, plus the negative numbers ipvsadm 1.31 `-S` writes for
/// marks above `i32::MAX`.
fn parse_fwmark(s: &str) -> Option<u32> {
    if let Some(neg) = s.strip_prefix('-') {
        let n = parse_u32(neg)?;
        if n == 0 || n > 1 << 31 {
            return None;
        }
        return Some(0u32.wrapping_sub(n));
    }
    parse_u32(s)
}

#[derive(Default)]
struct Collected<'a> {
    cmd: Option<(Cmd, &'a str)>,
    service: Option<(Opt, &'a str, &'a str)>,
    ipv6: Option<&'a str>,
    sched: Option<(&'a str, &'a str)>,
    persistent: Option<(&'a str, Option<&'a str>)>,
    netmask: Option<(&'a str, &'a str)>,
    pe: Option<(&'a str, &'a str)>,
    ops: Option<&'a str>,
    sched_flags: Option<(&'a str, &'a str)>,
    real: Option<(&'a str, &'a str)>,
    fwd: Option<(Opt, &'a str)>,
    weight: Option<(&'a str, &'a str)>,
    uthr: Option<(&'a str, &'a str)>,
    lthr: Option<(&'a str, &'a str)>,
    tun_type: Option<(&'a str, &'a str)>,
    tun_port: Option<(&'a str, &'a str)>,
    tun_csum: Option<(TunnelChecksum, &'a str)>,
}

fn set_once<T>(ctx: &LineCtx, slot: &mut Option<T>, v: T, token: &str) -> Result<(), ParseError> {
    if slot.is_some() {
        return Err(ctx.err(token, ParseErrorKind::DuplicateOption));
    }
    *slot = Some(v);
    Ok(())
}

fn collect<'a>(ctx: &LineCtx, occs: &[Occ<'a>]) -> Result<Collected<'a>, ParseError> {
    let mut c = Collected::default();
    for &o in occs {
        let t = o.token;
        let a = o.arg.unwrap_or("");
        match o.opt {
            Opt::Cmd(cmd) => {
                if c.cmd.is_some() {
                    return Err(ctx.err(t, ParseErrorKind::MultipleCommands));
                }
                c.cmd = Some((cmd, t));
            }
            Opt::OtherCmd => return Err(ctx.err(t, ParseErrorKind::UnsupportedCommand)),
            Opt::Tcp | Opt::Udp | Opt::Sctp | Opt::Fwmark => {
                set_once(ctx, &mut c.service, (o.opt, t, a), t)?;
            }
            Opt::Ipv6 => set_once(ctx, &mut c.ipv6, t, t)?,
            Opt::Sched => set_once(ctx, &mut c.sched, (t, a), t)?,
            Opt::Persistent => set_once(ctx, &mut c.persistent, (t, o.arg), t)?,
            Opt::Netmask => set_once(ctx, &mut c.netmask, (t, a), t)?,
            Opt::Pe => set_once(ctx, &mut c.pe, (t, a), t)?,
            Opt::Ops => set_once(ctx, &mut c.ops, t, t)?,
            Opt::SchedFlags => set_once(ctx, &mut c.sched_flags, (t, a), t)?,
            Opt::Real => set_once(ctx, &mut c.real, (t, a), t)?,
            Opt::Masq | Opt::Ipip | Opt::Gate | Opt::Bypass => {
                set_once(ctx, &mut c.fwd, (o.opt, t), t)?;
            }
            Opt::Weight => set_once(ctx, &mut c.weight, (t, a), t)?,
            Opt::UThr => set_once(ctx, &mut c.uthr, (t, a), t)?,
            Opt::LThr => set_once(ctx, &mut c.lthr, (t, a), t)?,
            Opt::TunType => set_once(ctx, &mut c.tun_type, (t, a), t)?,
            Opt::TunPort => set_once(ctx, &mut c.tun_port, (t, a), t)?,
            Opt::TunNoCsum => set_once(ctx, &mut c.tun_csum, (TunnelChecksum::NoChecksum, t), t)?,
            Opt::TunCsum => set_once(ctx, &mut c.tun_csum, (TunnelChecksum::Checksum, t), t)?,
            Opt::TunRemCsum => {
                set_once(ctx, &mut c.tun_csum, (TunnelChecksum::RemoteChecksum, t), t)?;
            }
            Opt::Numeric => return Err(ctx.err(t, ParseErrorKind::OptionNotAllowed("a table"))),
        }
    }
    Ok(c)
}

impl Collected<'_> {
    /// The first token of a service-only option present on the line.
    fn service_option(&self) -> Option<&str> {
        self.sched
            .map(|x| x.0)
            .or(self.persistent.map(|x| x.0))
            .or(self.netmask.map(|x| x.0))
            .or(self.pe.map(|x| x.0))
            .or(self.ops)
            .or(self.sched_flags.map(|x| x.0))
    }

    /// The first token of a destination-only option present on the line.
    fn dest_option(&self) -> Option<&str> {
        self.fwd
            .map(|x| x.1)
            .or(self.weight.map(|x| x.0))
            .or(self.uthr.map(|x| x.0))
            .or(self.lthr.map(|x| x.0))
            .or(self.tun_option())
    }

    fn tun_option(&self) -> Option<&str> {
        self.tun_type
            .map(|x| x.0)
            .or(self.tun_port.map(|x| x.0))
            .or(self.tun_csum.map(|x| x.1))
    }
}

fn parse_key(ctx: &LineCtx, c: &Collected<'_>) -> Result<ServiceKey, ParseError> {
    let Some((opt, token, arg)) = c.service else {
        return Err(ctx.err_line(ParseErrorKind::MissingService));
    };
    let key = match opt {
        Opt::Fwmark => {
            let mark = parse_fwmark(arg).ok_or_else(|| {
                ctx.err(
                    arg,
                    ParseErrorKind::InvalidNumber {
                        what: "fwmark",
                        range: "1-4294967295",
                    },
                )
            })?;
            let family = if c.ipv6.is_some() {
                AddressFamily::Inet6
            } else {
                AddressFamily::Inet
            };
            ServiceKey::fwmark(family, mark)
                .map_err(|e| ctx.err(arg, ParseErrorKind::Invalid(Box::new(e))))?
        }
        _ => {
            if let Some(t) = c.ipv6 {
                return Err(ctx.err(t, ParseErrorKind::Ipv6WithoutFwmark));
            }
            let protocol = match opt {
                Opt::Tcp => Protocol::Tcp,
                Opt::Udp => Protocol::Udp,
                _ => Protocol::Sctp,
            };
            let (ip, port) = parse_addr(arg, protocol)
                .ok_or_else(|| ctx.err(arg, ParseErrorKind::InvalidAddress))?;
            let addr = SocketAddr::new(ip, port.unwrap_or(0));
            let _ = token;
            ServiceKey::Addr { protocol, addr }
        }
    };
    Ok(key)
}

fn build_service(ctx: &LineCtx, c: &Collected<'_>, key: ServiceKey) -> Result<Service, ParseError> {
    let scheduler = match c.sched {
        Some((_, name)) => {
            Scheduler::new(name).map_err(|e| ctx.err(name, ParseErrorKind::Invalid(Box::new(e))))?
        }
        None => Scheduler::default(),
    };
    let mut flags = SchedFlags::empty();
    if let Some((_, list)) = c.sched_flags {
        for name in list.split(',').filter(|n| !n.is_empty()) {
            let incompatible = || {
                ctx.err(
                    name,
                    ParseErrorKind::IncompatibleSchedFlag {
                        flag: name.to_owned(),
                        scheduler: scheduler.name().to_owned(),
                    },
                )
            };
            let f = SchedFlags::from_name(name).ok_or_else(incompatible)?;
            let required = if name.starts_with("sh-") {
                Some(Scheduler::SourceHashing)
            } else if name.starts_with("mh-") {
                Some(Scheduler::MaglevHashing)
            } else {
                None
            };
            if required.is_some_and(|r| r != scheduler) {
                return Err(incompatible());
            }
            flags |= f;
        }
    }
    let mut b = Service::builder(key)
        .scheduler(scheduler)
        .sched_flags(flags)
        .one_packet(c.ops.is_some());
    let netmask = match c.netmask {
        Some((_, m)) => Some(
            parse_netmask(key.family(), m)
                .ok_or_else(|| ctx.err(m, ParseErrorKind::InvalidNetmask))?,
        ),
        None => None,
    };
    match c.persistent {
        Some((_, value)) => {
            let mut p = match value {
                None => Persistence::new(DEFAULT_PERSISTENCE_TIMEOUT),
                Some(v) => {
                    let secs = parse_u32(v).filter(|s| *s > 0).ok_or_else(|| {
                        ctx.err(
                            v,
                            ParseErrorKind::InvalidNumber {
                                what: "persistence timeout",
                                range: "1-4294967295",
                            },
                        )
                    })?;
                    Persistence::new(Duration::from_secs(u64::from(secs)))
                }
            }
            .map_err(|e| ctx.err_line(ParseErrorKind::Invalid(Box::new(e))))?;
            if let Some(m) = netmask {
                p = p.with_netmask(m);
            }
            if let Some((_, name)) = c.pe {
                let e = PersistenceEngine::new(name)
                    .map_err(|e| ctx.err(name, ParseErrorKind::Invalid(Box::new(e))))?;
                p = p.with_engine(e);
            }
            b = b.persistence(p);
        }
        None => {
            if let Some((t, _)) = c.pe {
                return Err(ctx.err(t, ParseErrorKind::EngineWithoutPersistence));
            }
        }
    }
    b.build().map_err(|e| {
        let token = match &e.problem {
            crate::Problem::SchedFlagNotValid { .. } => c.sched_flags.map(|x| x.1),
            crate::Problem::OnePacketNotUdp(_) => c.ops,
            crate::Problem::NetmaskFamilyMismatch { .. }
            | crate::Problem::NetmaskNotContiguous(_)
            | crate::Problem::NetmaskZero
            | crate::Problem::NetmaskPrefixOutOfRange(_) => c.netmask.map(|x| x.1),
            _ => None,
        };
        ParseError {
            line: ctx.line,
            token: token.map(str::to_owned),
            kind: ParseErrorKind::Invalid(Box::new(e)),
        }
    })
}

fn parse_netmask(family: AddressFamily, s: &str) -> Option<PersistenceMask> {
    match family {
        AddressFamily::Inet => Some(PersistenceMask::V4(s.parse().ok()?)),
        AddressFamily::Inet6 => {
            let p = parse_u32(s)?;
            Some(PersistenceMask::V6(u8::try_from(p).ok()?))
        }
    }
}

fn parse_dest_addr(
    ctx: &LineCtx,
    c: &Collected<'_>,
    key: &ServiceKey,
) -> Result<SocketAddr, ParseError> {
    let Some((_, arg)) = c.real else {
        return Err(ctx.err_line(ParseErrorKind::MissingRealServer));
    };
    let protocol = key.protocol().unwrap_or(Protocol::Tcp);
    let (ip, port) =
        parse_addr(arg, protocol).ok_or_else(|| ctx.err(arg, ParseErrorKind::InvalidAddress))?;
    Ok(SocketAddr::new(ip, port.unwrap_or(key.port())))
}

fn number(
    ctx: &LineCtx,
    v: Option<(&str, &str)>,
    what: &'static str,
    max: u32,
    range: &'static str,
    default: u32,
) -> Result<u32, ParseError> {
    match v {
        None => Ok(default),
        Some((_, s)) => parse_u32(s)
            .filter(|n| *n <= max)
            .ok_or_else(|| ctx.err(s, ParseErrorKind::InvalidNumber { what, range })),
    }
}

fn build_dest(
    ctx: &LineCtx,
    c: &Collected<'_>,
    key: &ServiceKey,
) -> Result<Destination, ParseError> {
    let addr = parse_dest_addr(ctx, c, key)?;
    let forward = match c.fwd.map(|f| f.0) {
        Some(Opt::Masq) => Forward::Masquerade,
        Some(Opt::Ipip) => {
            let port = match c.tun_port {
                Some((_, p)) => Some(parse_port(p).filter(|p| *p > 0).ok_or_else(|| {
                    ctx.err(
                        p,
                        ParseErrorKind::InvalidNumber {
                            what: "tunnel port",
                            range: "1-65535",
                        },
                    )
                })?),
                None => None,
            };
            let kind = match c.tun_type.map(|t| t.1) {
                None | Some("ipip") => TunnelKind::Ipip,
                Some("gre") => TunnelKind::Gre,
                Some("gue") => {
                    let Some(port) = port else {
                        return Err(ctx.err(
                            c.tun_type.map_or("--tun-type", |t| t.0),
                            ParseErrorKind::TunnelPort,
                        ));
                    };
                    TunnelKind::Gue { port }
                }
                Some(other) => return Err(ctx.err(other, ParseErrorKind::UnknownTunnelType)),
            };
            if let (Some((t, _)), false) = (c.tun_port, matches!(kind, TunnelKind::Gue { .. })) {
                return Err(ctx.err(t, ParseErrorKind::TunnelPort));
            }
            Forward::Tunnel {
                kind,
                checksum: c.tun_csum.map_or(TunnelChecksum::NoChecksum, |x| x.0),
            }
        }
        Some(Opt::Bypass) => Forward::Bypass,
        _ => Forward::DirectRoute,
    };
    if !forward.is_tunnel() {
        if let Some(t) = c.tun_option() {
            return Err(ctx.err(t, ParseErrorKind::TunnelOptionWithoutTunnel));
        }
    }
    let weight = number(ctx, c.weight, "weight", i32::MAX as u32, "0-2147483647", 1)?;
    let upper = number(ctx, c.uthr, "upper threshold", u32::MAX, "0-4294967295", 0)?;
    let lower = number(ctx, c.lthr, "lower threshold", u32::MAX, "0-4294967295", 0)?;
    let fault = |e: Error| {
        let token = match &e.problem {
            crate::Problem::TunnelChecksumNotSupported { .. } => c.tun_csum.map(|x| x.1),
            crate::Problem::ThresholdOrder { .. } => c.lthr.map(|x| x.1),
            _ => None,
        };
        ParseError {
            line: ctx.line,
            token: token.map(str::to_owned),
            kind: ParseErrorKind::Invalid(Box::new(e)),
        }
    };
    Destination::new(addr, forward)
        .and_then(|d| d.with_weight(weight))
        .and_then(|d| d.with_thresholds(upper, lower))
        .map_err(fault)
}

/// One line's command, parsed but not yet applied to the table: everything that does
/// not depend on the lines above it. Lines are parsed independently (on two threads for
/// a large input, see [`parse`]) and applied in order.
#[derive(Debug)]
enum Command<'a> {
    Clear,
    AddService {
        svc: Service,
        token: &'a str,
    },
    /// The service as the line describes it, or why it does not build (reported only
    /// if the service exists: ipvsadm's order of checks).
    EditService {
        key: ServiceKey,
        svc: Result<Service, Box<ParseError>>,
        token: &'a str,
    },
    DelService {
        key: ServiceKey,
        token: &'a str,
    },
    /// `-a` (`edit: false`) or `-e`.
    SetDest {
        key: ServiceKey,
        dest: Destination,
        edit: bool,
        token: &'a str,
        real: &'a str,
    },
    DelDest {
        key: ServiceKey,
        addr: SocketAddr,
        token: &'a str,
        real: &'a str,
    },
}

/// Parses the words of one line into its command (checks that need no table).
fn parse_command<'a>(
    ctx: &LineCtx,
    words: &[&'a str],
    occs: &mut Vec<Occ<'a>>,
) -> Result<Command<'a>, ParseError> {
    tokenize(ctx, words, occs)?;
    let c = collect(ctx, occs)?;
    let Some((cmd, _)) = c.cmd else {
        return Err(ctx.err_line(ParseErrorKind::NoCommand));
    };
    let not_allowed = |t: &str| ctx.err(t, ParseErrorKind::OptionNotAllowed(cmd.name()));
    let service_cmd = matches!(cmd, Cmd::AddService | Cmd::EditService);
    let dest_cmd = matches!(cmd, Cmd::AddDest | Cmd::EditDest);
    if !service_cmd {
        if let Some(t) = c.service_option() {
            return Err(not_allowed(t));
        }
    }
    if !dest_cmd {
        if let Some(t) = c.dest_option() {
            return Err(not_allowed(t));
        }
    }
    if !matches!(cmd, Cmd::AddDest | Cmd::EditDest | Cmd::DelDest) {
        if let Some((t, _)) = c.real {
            return Err(not_allowed(t));
        }
    }
    if cmd == Cmd::Clear {
        if let Some((_, t, _)) = c.service {
            return Err(not_allowed(t));
        }
        return Ok(Command::Clear);
    }
    let key = parse_key(ctx, &c)?;
    let token = c.service.map_or("", |s| s.2);
    let real = c.real.map_or("", |r| r.1);
    Ok(match cmd {
        Cmd::AddService => Command::AddService {
            svc: build_service(ctx, &c, key)?,
            token,
        },
        Cmd::EditService => Command::EditService {
            key,
            svc: build_service(ctx, &c, key).map_err(Box::new),
            token,
        },
        Cmd::DelService => Command::DelService { key, token },
        Cmd::AddDest | Cmd::EditDest => Command::SetDest {
            key,
            dest: build_dest(ctx, &c, &key)?,
            edit: cmd == Cmd::EditDest,
            token,
            real,
        },
        Cmd::DelDest | Cmd::Clear => Command::DelDest {
            key,
            addr: parse_dest_addr(ctx, &c, &key)?,
            token,
            real,
        },
    })
}

/// Applies the command of line `ctx` to the table (the checks that need the lines above).
fn apply_command(
    table: &mut Staged,
    ctx: &LineCtx,
    command: Command<'_>,
) -> Result<(), ParseError> {
    let invalid = |token: &str, e: Error| ctx.err(token, ParseErrorKind::Invalid(Box::new(e)));
    match command {
        Command::Clear => table.clear(),
        Command::AddService { svc, token } => {
            table.add_service(svc).map_err(|e| invalid(token, e))?;
        }
        Command::EditService { key, svc, token } => {
            let old = table
                .service(&key)
                .ok_or_else(|| ctx.err(token, ParseErrorKind::NoSuchService))?;
            let mut svc = svc.map_err(|e| *e)?;
            for d in old.destinations() {
                svc.set_destination(d.clone())
                    .map_err(|e| invalid(token, e))?;
            }
            table.set_service(svc);
        }
        Command::DelService { key, token } => {
            table
                .remove_service(&key)
                .ok_or_else(|| ctx.err(token, ParseErrorKind::NoSuchService))?;
        }
        Command::SetDest {
            key,
            dest,
            edit,
            token,
            real,
        } => {
            let svc = table
                .service_mut(&key)
                .ok_or_else(|| ctx.err(token, ParseErrorKind::NoSuchService))?;
            if !edit {
                svc.add_destination(dest).map_err(|e| invalid(real, e))?;
            } else {
                if svc.destination(dest.addr()).is_none() {
                    return Err(ctx.err(real, ParseErrorKind::NoSuchDestination));
                }
                svc.set_destination(dest).map_err(|e| invalid(real, e))?;
            }
        }
        Command::DelDest {
            key,
            addr,
            token,
            real,
        } => {
            let svc = table
                .service_mut(&key)
                .ok_or_else(|| ctx.err(token, ParseErrorKind::NoSuchService))?;
            svc.remove_destination(addr)
                .ok_or_else(|| ctx.err(real, ParseErrorKind::NoSuchDestination))?;
        }
    }
    Ok(())
}

/// Scratch space for [`parse_line`], reused from line to line.
#[derive(Default)]
struct Scratch<'a> {
    words: Vec<&'a str>,
    occs: Vec<Occ<'a>>,
}

/// The command of one line (`line` is 1-based); `None` for a blank or comment line.
fn parse_line<'a>(
    line: usize,
    text: &'a str,
    scratch: &mut Scratch<'a>,
) -> Result<Option<Command<'a>>, ParseError> {
    let words = &mut scratch.words;
    words.clear();
    // ASCII whitespace, as ipvsadm (a C program reading its arguments) splits them.
    words.extend(text.split_ascii_whitespace());
    if words.first().is_none_or(|w| w.starts_with('#')) {
        return Ok(None);
    }
    let skip = usize::from(
        words
            .first()
            .is_some_and(|w| *w == "ipvsadm" || w.ends_with("/ipvsadm")),
    );
    match words.get(skip..) {
        Some(rest) if !rest.is_empty() => {
            parse_command(&LineCtx { line }, rest, &mut scratch.occs).map(Some)
        }
        _ => Ok(None),
    }
}

/// Parses and applies the lines of `text`, the first of which is line `first + 1`.
fn parse_into(table: &mut Staged, text: &str, first: usize) -> Result<(), ParseError> {
    let mut scratch = Scratch::default();
    for (i, line) in text.lines().enumerate() {
        let n = first + i + 1;
        if let Some(command) = parse_line(n, line, &mut scratch)? {
            apply_command(table, &LineCtx { line: n }, command)?;
        }
    }
    Ok(())
}

/// The commands of the lines of `text` (the first is line `first + 1`) with their line
/// numbers, sent to `tx` [`CHUNK_LINES`] lines at a time, up to the first line that does
/// not parse, whose error comes with the last chunk. Stops early when the receiver is
/// gone (it stopped at an error of its own).
fn send_commands<'a>(text: &'a str, first: usize, tx: &SyncSender<Chunk<'a>>) {
    let mut scratch = Scratch::default();
    let mut out = Vec::with_capacity(CHUNK_LINES);
    for (i, line) in text.lines().enumerate() {
        let n = first + i + 1;
        match parse_line(n, line, &mut scratch) {
            Ok(Some(command)) => out.push((n, command)),
            Ok(None) => {}
            Err(e) => {
                let _ = tx.send((out, Some(e)));
                return;
            }
        }
        if out.len() == CHUNK_LINES {
            let full = std::mem::replace(&mut out, Vec::with_capacity(CHUNK_LINES));
            if tx.send((full, None)).is_err() {
                return;
            }
        }
    }
    let _ = tx.send((out, None));
}

/// Parsed commands with their line numbers, and the error that ended them, if any.
type Chunk<'a> = (Vec<(usize, Command<'a>)>, Option<ParseError>);

/// Lines parsed to commands per chunk handed over by the second thread.
const CHUNK_LINES: usize = 2048;
/// Chunks queued for the applying thread at most (bounds the memory held).
const CHUNKS_QUEUED: usize = 16;

/// Inputs at least this large are parsed on two threads.
const PARALLEL_MIN_BYTES: usize = 256 * 1024;

/// Parses an `ipvsadm -S` / `ipvsadm -R` text into a table.
///
/// Errors name the first line at fault, as if the lines were read one by one. A large
/// input (a restore of thousands of services) is parsed on two threads: every line is
/// a command of its own, so the last three quarters are parsed to commands on a second
/// thread while the first quarter is parsed and applied, and their commands are applied
/// in order as they come; the result and the errors are the same.
///
/// ```
/// let table = ipvs::ipvsadm::parse(
///     "-A -t 192.0.2.1:80 -s rr\n-a -t 192.0.2.1:80 -r 10.0.0.1:8080 -m -w 5\n",
/// )
/// .unwrap();
/// let svc = table.services().next().unwrap();
/// assert_eq!(svc.destinations().next().unwrap().weight(), 5);
///
/// let err = ipvs::ipvsadm::parse("-A -t 192.0.2.1:80\n-a -t 192.0.2.1:80 -r 10.0.0.1 -w x\n")
///     .unwrap_err();
/// assert_eq!(err.to_string(), "line 2: `x`: invalid weight (expected 0-2147483647)");
/// ```
pub fn parse(text: &str) -> Result<Table, ParseError> {
    let parallel = text.len() >= PARALLEL_MIN_BYTES
        && std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    match split_point(text) {
        Some(at) if parallel => parse_split(text, at),
        _ => {
            let mut table = Staged::default();
            parse_into(&mut table, text, 0)?;
            Ok(table.finish())
        }
    }
}

/// Where to cut `text` for the two threads: just after a line end near a quarter of
/// it (`None` if there is none). This thread parses the head and applies every command,
/// the other parses the rest (three quarters): applying costs about half as much as
/// parsing, so the two threads are then about equally busy.
fn split_point(text: &str) -> Option<usize> {
    let quarter = text.len() / 4;
    let nl = text
        .as_bytes()
        .get(quarter..)?
        .iter()
        .position(|b| *b == b'\n')?;
    Some(quarter + nl + 1)
}

/// [`parse`] on two threads: `text[..at]` (whole lines) is parsed and applied on this
/// thread while the rest is parsed to commands on another, which hands them over in
/// chunks as it goes; this thread applies them in order.
fn parse_split(text: &str, at: usize) -> Result<Table, ParseError> {
    let (head, tail) = text.split_at_checked(at).unwrap_or((text, ""));
    // `lines()` ends a line at each '\n', so the tail's first line follows them.
    let first = head.bytes().filter(|b| *b == b'\n').count();
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel(CHUNKS_QUEUED);
        s.spawn(move || send_commands(tail, first, &tx));
        // On an error, `rx` goes: the other thread stops at its next chunk.
        let mut table = Staged::default();
        parse_into(&mut table, head, 0)?;
        for (commands, error) in rx {
            for (line, command) in commands {
                apply_command(&mut table, &LineCtx { line }, command)?;
            }
            if let Some(e) = error {
                return Err(e);
            }
        }
        Ok(table.finish())
    })
}

/// The table being parsed, with the service of the last lines kept out of it: the lines
/// of a service come together (`-A` then its `-a` lines, as `ipvsadm -S` writes them),
/// and a restore of 100,000 lines then searches the table twice per service instead of
/// two or three times per line.
#[derive(Default)]
struct Staged {
    table: Table,
    open: Option<Service>,
}

impl Staged {
    /// Puts the open service back into the table.
    fn close(&mut self) {
        if let Some(svc) = self.open.take() {
            self.table.set_service(svc);
        }
    }

    fn is_open(&self, key: &ServiceKey) -> bool {
        self.open.as_ref().is_some_and(|s| s.key() == key)
    }

    fn service(&self, key: &ServiceKey) -> Option<&Service> {
        match &self.open {
            Some(svc) if svc.key() == key => Some(svc),
            _ => self.table.service(key),
        }
    }

    fn service_mut(&mut self, key: &ServiceKey) -> Option<&mut Service> {
        if !self.is_open(key) {
            let svc = self.table.remove_service(key)?;
            self.close();
            self.open = Some(svc);
        }
        self.open.as_mut()
    }

    fn add_service(&mut self, svc: Service) -> Result<(), crate::Error> {
        if self.is_open(svc.key()) || self.table.service(svc.key()).is_some() {
            // The table's own error for a duplicate.
            self.close();
            return self.table.add_service(svc);
        }
        self.close();
        self.open = Some(svc);
        Ok(())
    }

    fn set_service(&mut self, svc: Service) {
        if !self.is_open(svc.key()) {
            self.table.remove_service(svc.key());
            self.close();
        }
        self.open = Some(svc);
    }

    fn remove_service(&mut self, key: &ServiceKey) -> Option<Service> {
        if self.is_open(key) {
            return self.open.take();
        }
        self.table.remove_service(key)
    }

    fn clear(&mut self) {
        self.open = None;
        self.table.clear();
    }

    fn finish(mut self) -> Table {
        self.close();
        self.table
    }
}

/// Options of [`print_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PrintOptions {
    /// Also write non-zero connection thresholds (`-x UPPER -y LOWER` after `-w`), which
    /// `ipvsadm -S` leaves out (`ipvsadm -R` reads them). Off by default.
    pub thresholds: bool,
}

/// Writes a table exactly as `ipvsadm -S -n` does; see the [module documentation](self).
pub fn print(table: &Table) -> String {
    print_with(table, &PrintOptions::default())
}

/// Writes a table in the `ipvsadm -S -n` format with `options`.
pub fn print_with(table: &Table, options: &PrintOptions) -> String {
    let items = table
        .services()
        .map(|s| (s.key().sort_words().to_vec(), s))
        .collect();
    let mut out = String::new();
    for svc in serial_sort(items, 0) {
        print_service_with(&mut out, svc, options);
    }
    out
}

/// Writes one service and its destinations as `ipvsadm -S -n` does.
pub fn print_service(service: &Service) -> String {
    let mut out = String::new();
    print_service_with(&mut out, service, &PrintOptions::default());
    out
}

fn service_name(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Addr { protocol, addr } => {
            let opt = match protocol {
                Protocol::Tcp => "-t",
                Protocol::Udp => "-u",
                Protocol::Sctp => "--sctp-service",
            };
            format!("{opt} {}", socket_addr_to_string(addr))
        }
        // ipvsadm 1.31 prints the mark with %d.
        ServiceKey::Fwmark { family, mark } => {
            let m = mark.get() as i32;
            match family {
                AddressFamily::Inet => format!("-f {m}"),
                AddressFamily::Inet6 => format!("-f {m} -6"),
            }
        }
    }
}

fn print_service_with(out: &mut String, svc: &Service, options: &PrintOptions) {
    use std::fmt::Write as _;
    let name = service_name(svc.key());
    let _ = write!(out, "-A {name} -s {}", svc.scheduler());
    if let Some(p) = svc.persistence() {
        let _ = write!(out, " -p {}", p.timeout_secs());
        if let Some(m) = p.netmask() {
            let _ = write!(out, " -M {m}");
        }
        if let Some(e) = p.engine() {
            let _ = write!(out, " --pe {e}");
        }
    }
    if svc.one_packet() {
        out.push_str(" -o");
    }
    if !svc.sched_flags().is_empty() {
        let _ = write!(
            out,
            " -b {}",
            svc.sched_flags().names(svc.scheduler()).join(",")
        );
    }
    out.push('\n');
    let items = svc
        .destinations()
        .map(|d| {
            let mut w = Vec::with_capacity(5);
            push_ip_words(&mut w, d.addr().ip());
            w.resize(4, 0);
            w.push(u32::from(d.addr().port()));
            (w, d)
        })
        .collect();
    for d in serial_sort(items, 0) {
        let fwd = match d.forward() {
            Forward::Masquerade => "-m",
            Forward::DirectRoute | Forward::Local => "-g",
            Forward::Tunnel { .. } => "-i",
            Forward::Bypass => "(null)",
        };
        let _ = write!(
            out,
            "-a {name} -r {} {fwd} -w {}",
            socket_addr_to_string(&d.addr()),
            d.weight()
        );
        if options.thresholds && (d.upper_threshold() != 0 || d.lower_threshold() != 0) {
            let _ = write!(
                out,
                " -x {} -y {}",
                d.upper_threshold(),
                d.lower_threshold()
            );
        }
        if let Forward::Tunnel { kind, checksum } = d.forward() {
            let _ = write!(out, " --tun-type {}", kind.name());
            if let TunnelKind::Gue { port } = kind {
                let _ = write!(out, " --tun-port {port}");
            }
            if kind != TunnelKind::Ipip {
                let _ = write!(out, " --tun-{}", checksum.name());
            }
        }
        out.push('\n');
    }
}

/// Sorts items by their word vectors the way libipvs' comparators order them: each word
/// is compared by 32-bit wrapping subtraction (`(int)(a - b)`). Within a level, if all
/// distinct values lie within less than half the 32-bit circle, that comparison is a
/// consistent order: the values in circle order, starting after the largest gap.
/// Otherwise the comparator is not a total order; numeric order is used.
fn serial_sort<T>(items: Vec<(Vec<u32>, T)>, level: usize) -> Vec<T> {
    if items.len() <= 1 || items.iter().all(|(w, _)| w.len() <= level) {
        return items.into_iter().map(|(_, t)| t).collect();
    }
    let mut groups: std::collections::BTreeMap<u32, Vec<(Vec<u32>, T)>> = Default::default();
    for (w, t) in items {
        let k = w.get(level).copied().unwrap_or(0);
        groups.entry(k).or_default().push((w, t));
    }
    let values: Vec<u32> = groups.keys().copied().collect();
    let mut start = 0;
    if values.len() >= 2 {
        let n = values.len();
        let mut best_gap = 0u64;
        for i in 0..n {
            let a = u64::from(values[i]);
            let b = u64::from(values[(i + 1) % n]);
            let gap = if i + 1 == n { b + (1 << 32) - a } else { b - a };
            if gap > best_gap {
                best_gap = gap;
                start = (i + 1) % n;
            }
        }
        if best_gap <= 1 << 31 {
            start = 0;
        }
    }
    let mut ordered: Vec<_> = groups.into_iter().collect();
    ordered.rotate_left(start);
    ordered
        .into_iter()
        .flat_map(|(_, g)| serial_sort(g, level + 1))
        .collect()
}

#[cfg(test)]
mod tests {
    proptest::proptest! {
        #[test]
        fn parse_ipv4_reads_what_the_standard_parser_reads(
            s in "[0-9.]{0,17}|[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}|.{0,16}"
        ) {
            proptest::prop_assert_eq!(super::parse_ipv4(&s), s.parse::<std::net::Ipv4Addr>().ok());
        }
    }

    #[test]
    fn parse_ipv4_edges() {
        for (s, want) in [
            ("0.0.0.0", Some([0, 0, 0, 0])),
            ("255.255.255.255", Some([255; 4])),
            ("10.0.0.1", Some([10, 0, 0, 1])),
            ("256.0.0.1", None),
            ("01.0.0.1", None),
            ("1.2.3", None),
            ("1.2.3.4.5", None),
            ("1..3.4", None),
            ("1.2.3.4.", None),
            ("+1.2.3.4", None),
            ("1.2.3.0x1", None),
            ("", None),
        ] {
            assert_eq!(
                super::parse_ipv4(s),
                want.map(std::net::Ipv4Addr::from),
                "{s}"
            );
            assert_eq!(
                s.parse::<std::net::Ipv4Addr>().ok(),
                want.map(std::net::Ipv4Addr::from),
                "{s}"
            );
        }
    }

    use super::*;

    fn sequential(text: &str) -> Result<Table, ParseError> {
        let mut table = Staged::default();
        parse_into(&mut table, text, 0)?;
        Ok(table.finish())
    }

    /// Every cut at a line end: [`parse_split`] gives what the sequential parse gives.
    fn same_at_every_cut(text: &str) {
        let expected = sequential(text);
        let cuts = text
            .char_indices()
            .filter(|(_, c)| *c == '\n')
            .map(|(i, _)| i + 1);
        for at in std::iter::once(0).chain(cuts) {
            assert_eq!(
                parse_split(text, at),
                expected,
                "cut at byte {at} of:\n{text}"
            );
        }
    }

    const LINES: &[&str] = &[
        "# a comment",
        "-A -t 192.0.2.1:80 -s rr",
        "-a -t 192.0.2.1:80 -r 10.0.0.1:80 -m -w 2",
        "",
        "ipvsadm -A -u 192.0.2.2:53 -s wrr",
        "-a -t 192.0.2.1:80 -r 10.0.0.2:80 -g\r",
        "-a -u 192.0.2.2:53 -r 10.0.0.3 -m",
        "-E -t 192.0.2.1:80 -s lc -p 60",
        "-e -u 192.0.2.2:53 -r 10.0.0.3:53 -m -w 7",
        "-A -f 7 -s sh -b sh-port",
        "-d -t 192.0.2.1:80 -r 10.0.0.1:80",
        "-a -f 7 -r 10.0.0.4:0 -g -w 5",
        "-D -u 192.0.2.2:53",
        "-A -t [2001:db8::1]:443 -s rr",
        "-a -t [2001:db8::1]:443 -r [2001:db8::2]:443 -m",
    ];

    #[test]
    fn split_parse_equals_sequential_parse() {
        let text = LINES.join("\n");
        same_at_every_cut(&text);
        same_at_every_cut(&(text.clone() + "\n"));
        // A clear in the middle, and lines that refer to services of the other half.
        let with_clear = format!("{text}\n-C\n{text}\n");
        same_at_every_cut(&with_clear);
        assert!(sequential(&with_clear).is_ok());
    }

    /// Errors: the first line at fault wins, whether it fails to parse or to apply, and
    /// whichever half it is in.
    #[test]
    fn split_parse_reports_the_first_error() {
        let bad = [
            "-a -t 192.0.2.1:80 -r 10.0.0.9 -w x",  // does not parse
            "-a -t 192.0.2.9:80 -r 10.0.0.9",       // no such service (apply)
            "-A -t 192.0.2.1:80",                   // duplicate (apply)
            "-E -t 192.0.2.9:80 -p 0",              // no such service before the bad timeout
            "-E -t 192.0.2.1:80 -p 0",              // bad timeout of an existing service
            "-e -t 192.0.2.1:80 -r 10.0.0.8:80 -m", // no such destination
            "-L",                                   // unsupported
        ];
        for (i, b) in bad.iter().enumerate() {
            for j in [3, 9, LINES.len()] {
                let mut lines = LINES.to_vec();
                lines.insert(j.min(lines.len()), b);
                // A second, later error of another kind.
                lines.push(bad[(i + 1) % bad.len()]);
                let text = lines.join("\n");
                let err = sequential(&text).unwrap_err();
                assert_eq!(err.line, j + 1, "{b}: {err}");
                same_at_every_cut(&text);
            }
        }
    }

    #[test]
    fn large_input_takes_the_split_path_and_agrees() {
        let mut text = String::new();
        for i in 0..3000u32 {
            let vip = format!(
                "198.18.{}.{}:{}",
                i / 100 / 256,
                i / 100 % 256,
                1000 + i % 100
            );
            text.push_str(&format!("-A -t {vip} -s wlc\n"));
            for j in 0..10 {
                text.push_str(&format!(
                    "-a -t {vip} -r 198.19.{}.{}:80 -m -w 1\n",
                    i % 250,
                    1 + j
                ));
            }
        }
        assert!(text.len() >= PARALLEL_MIN_BYTES);
        let table = parse(&text).unwrap();
        assert_eq!(table.services().count(), 3000);
        assert_eq!(Ok(&table), sequential(&text).as_ref());
        text.push_str("-a -t 198.18.0.0:1000 -r 198.19.0.1:80 -m\n"); // duplicate: last line
        let err = parse(&text).unwrap_err();
        assert_eq!(
            (err.line, err.token.as_deref()),
            (33_001, Some("198.19.0.1:80"))
        );
    }
}
