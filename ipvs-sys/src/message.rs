//! IPVS commands and whole messages (the payload after `genlmsghdr`).

use netlink_packet_core::{
    DecodeError, Emitable, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, ParseableParametrized,
};
use netlink_packet_generic::{GenlFamily, GenlHeader};

use crate::consts::*;
use crate::daemon::DaemonAttrs;
use crate::dest::{DestAttrs, DestInMessage};
use crate::error::{Error, Result};
use crate::info::InfoAttrs;
use crate::nla::{self, AttrSet, Sink, U32};
use crate::service::ServiceAttrs;
use crate::types::{AddressFamily, RawAttr};

/// An IPVS generic-netlink command (`genlmsghdr.cmd`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u8)]
pub enum Command {
    /// `IPVS_CMD_NEW_SERVICE` (1): add a service; also the command of every
    /// service in a `GET_SERVICE` reply.
    NewService = IPVS_CMD_NEW_SERVICE,
    /// `IPVS_CMD_SET_SERVICE` (2): modify a service.
    SetService = IPVS_CMD_SET_SERVICE,
    /// `IPVS_CMD_DEL_SERVICE` (3): delete a service.
    DelService = IPVS_CMD_DEL_SERVICE,
    /// `IPVS_CMD_GET_SERVICE` (4): get one service (with a service key) or
    /// dump all services (with `NLM_F_DUMP`).
    GetService = IPVS_CMD_GET_SERVICE,
    /// `IPVS_CMD_NEW_DEST` (5): add a destination; also the command of every
    /// destination in a `GET_DEST` dump.
    NewDest = IPVS_CMD_NEW_DEST,
    /// `IPVS_CMD_SET_DEST` (6): modify a destination.
    SetDest = IPVS_CMD_SET_DEST,
    /// `IPVS_CMD_DEL_DEST` (7): delete a destination.
    DelDest = IPVS_CMD_DEL_DEST,
    /// `IPVS_CMD_GET_DEST` (8): dump the destinations of a service
    /// (dump only).
    GetDest = IPVS_CMD_GET_DEST,
    /// `IPVS_CMD_NEW_DAEMON` (9): start a sync daemon; also the command of
    /// every daemon in a `GET_DAEMON` dump.
    NewDaemon = IPVS_CMD_NEW_DAEMON,
    /// `IPVS_CMD_DEL_DAEMON` (10): stop a sync daemon.
    DelDaemon = IPVS_CMD_DEL_DAEMON,
    /// `IPVS_CMD_GET_DAEMON` (11): dump the sync daemons (dump only).
    GetDaemon = IPVS_CMD_GET_DAEMON,
    /// `IPVS_CMD_SET_CONFIG` (12): set timeouts; also the command of the
    /// `GET_CONFIG` reply.
    SetConfig = IPVS_CMD_SET_CONFIG,
    /// `IPVS_CMD_GET_CONFIG` (13): get timeouts (not a dump).
    GetConfig = IPVS_CMD_GET_CONFIG,
    /// `IPVS_CMD_SET_INFO` (14): only the command of the `GET_INFO` reply;
    /// the kernel has no handler for it.
    SetInfo = IPVS_CMD_SET_INFO,
    /// `IPVS_CMD_GET_INFO` (15): get version and table size (not a dump).
    GetInfo = IPVS_CMD_GET_INFO,
    /// `IPVS_CMD_ZERO` (16): zero the counters of one service (with a
    /// service key) or of everything (without).
    Zero = IPVS_CMD_ZERO,
    /// `IPVS_CMD_FLUSH` (17): delete all services.
    Flush = IPVS_CMD_FLUSH,
}

impl Command {
    /// All commands, in numeric order.
    pub const ALL: [Command; 17] = [
        Command::NewService,
        Command::SetService,
        Command::DelService,
        Command::GetService,
        Command::NewDest,
        Command::SetDest,
        Command::DelDest,
        Command::GetDest,
        Command::NewDaemon,
        Command::DelDaemon,
        Command::GetDaemon,
        Command::SetConfig,
        Command::GetConfig,
        Command::SetInfo,
        Command::GetInfo,
        Command::Zero,
        Command::Flush,
    ];

    /// The command with this number.
    ///
    /// ```
    /// use ipvs_sys::Command;
    /// assert_eq!(Command::from_u8(17), Some(Command::Flush));
    /// assert_eq!(Command::from_u8(0), None);
    /// ```
    pub fn from_u8(n: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| *c as u8 == n)
    }

    /// The kernel's name for the command.
    pub const fn name(self) -> &'static str {
        match self {
            Command::NewService => "IPVS_CMD_NEW_SERVICE",
            Command::SetService => "IPVS_CMD_SET_SERVICE",
            Command::DelService => "IPVS_CMD_DEL_SERVICE",
            Command::GetService => "IPVS_CMD_GET_SERVICE",
            Command::NewDest => "IPVS_CMD_NEW_DEST",
            Command::SetDest => "IPVS_CMD_SET_DEST",
            Command::DelDest => "IPVS_CMD_DEL_DEST",
            Command::GetDest => "IPVS_CMD_GET_DEST",
            Command::NewDaemon => "IPVS_CMD_NEW_DAEMON",
            Command::DelDaemon => "IPVS_CMD_DEL_DAEMON",
            Command::GetDaemon => "IPVS_CMD_GET_DAEMON",
            Command::SetConfig => "IPVS_CMD_SET_CONFIG",
            Command::GetConfig => "IPVS_CMD_GET_CONFIG",
            Command::SetInfo => "IPVS_CMD_SET_INFO",
            Command::GetInfo => "IPVS_CMD_GET_INFO",
            Command::Zero => "IPVS_CMD_ZERO",
            Command::Flush => "IPVS_CMD_FLUSH",
        }
    }

    /// Whether the kernel implements this command only as a dump
    /// (`GET_DEST`, `GET_DAEMON`): the request must carry `NLM_F_DUMP`,
    /// otherwise the kernel answers `EOPNOTSUPP`.
    ///
    /// `GET_SERVICE` is both (see [`IpvsMessage::is_dump`]); `GET_CONFIG`
    /// and `GET_INFO` are not dumps and fail with `EOPNOTSUPP` if sent with
    /// `NLM_F_DUMP`.
    pub const fn is_dump(self) -> bool {
        matches!(self, Command::GetDest | Command::GetDaemon)
    }

    /// Whether the kernel implements a dump for this command
    /// (`GET_SERVICE`, `GET_DEST`, `GET_DAEMON`).
    pub const fn supports_dump(self) -> bool {
        matches!(
            self,
            Command::GetService | Command::GetDest | Command::GetDaemon
        )
    }

    /// Whether the command only appears in kernel replies (`SET_INFO`).
    pub const fn is_reply_only(self) -> bool {
        matches!(self, Command::SetInfo)
    }

    /// The command the kernel uses in the replies to this request, if it
    /// replies with data (`GET_SERVICE` → `NEW_SERVICE`, `GET_DEST` →
    /// `NEW_DEST`, `GET_DAEMON` → `NEW_DAEMON`, `GET_CONFIG` → `SET_CONFIG`,
    /// `GET_INFO` → `SET_INFO`).
    pub const fn reply_command(self) -> Option<Command> {
        match self {
            Command::GetService => Some(Command::NewService),
            Command::GetDest => Some(Command::NewDest),
            Command::GetDaemon => Some(Command::NewDaemon),
            Command::GetConfig => Some(Command::SetConfig),
            Command::GetInfo => Some(Command::SetInfo),
            _ => None,
        }
    }
}

/// The first-level attributes of every command except `SET_INFO`.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct CmdAttrs {
    /// `IPVS_CMD_ATTR_SERVICE`.
    pub service: Option<ServiceAttrs>,
    /// `IPVS_CMD_ATTR_DEST`.
    pub dest: Option<DestAttrs>,
    /// `IPVS_CMD_ATTR_DAEMON`.
    pub daemon: Option<DaemonAttrs>,
    /// `IPVS_CMD_ATTR_TIMEOUT_TCP`, seconds (0 in `SET_CONFIG` = unchanged).
    pub timeout_tcp: Option<u32>,
    /// `IPVS_CMD_ATTR_TIMEOUT_TCP_FIN`, seconds.
    pub timeout_tcp_fin: Option<u32>,
    /// `IPVS_CMD_ATTR_TIMEOUT_UDP`, seconds.
    pub timeout_udp: Option<u32>,
    /// Attributes not known to this crate.
    pub unknown: Vec<RawAttr>,
}

impl CmdAttrs {
    fn service_family(&self) -> Option<AddressFamily> {
        self.service.as_ref().and_then(|s| s.af)
    }

    /// Check that the value can be encoded and decoded back unchanged.
    pub fn validate(&self) -> Result<()> {
        if let Some(s) = &self.service {
            s.validate()?;
        }
        if let Some(d) = &self.dest {
            d.validate(self.service_family())?;
        }
        if let Some(d) = &self.daemon {
            d.validate()?;
        }
        Ok(())
    }

    /// Decode first-level attributes. `dest_family_hint` interprets a
    /// destination address that has neither `IPVS_DEST_ATTR_ADDR_FAMILY`
    /// nor a service family in the same message.
    pub fn decode(buf: &[u8], dest_family_hint: Option<AddressFamily>) -> Result<Self> {
        let mut a = CmdAttrs::default();
        let mut dest: Option<&[u8]> = None;
        nla::for_each_attr("IPVS command attributes", buf, |kind, raw, v| {
            match kind {
                IPVS_CMD_ATTR_SERVICE => a.service = Some(ServiceAttrs::decode(v)?),
                IPVS_CMD_ATTR_DEST => dest = Some(v),
                IPVS_CMD_ATTR_DAEMON => a.daemon = Some(DaemonAttrs::decode(v)?),
                IPVS_CMD_ATTR_TIMEOUT_TCP => {
                    a.timeout_tcp = Some(nla::get_u32("IPVS_CMD_ATTR_TIMEOUT_TCP", v)?)
                }
                IPVS_CMD_ATTR_TIMEOUT_TCP_FIN => {
                    a.timeout_tcp_fin = Some(nla::get_u32("IPVS_CMD_ATTR_TIMEOUT_TCP_FIN", v)?)
                }
                IPVS_CMD_ATTR_TIMEOUT_UDP => {
                    a.timeout_udp = Some(nla::get_u32("IPVS_CMD_ATTR_TIMEOUT_UDP", v)?)
                }
                _ => a.unknown.push(RawAttr {
                    kind: raw,
                    value: v.to_vec(),
                }),
            }
            Ok(())
        })?;
        if let Some(v) = dest {
            let family = a.service_family().or(dest_family_hint);
            a.dest = Some(DestAttrs::decode_with_family(v, family)?);
        }
        Ok(a)
    }
}

impl AttrSet for CmdAttrs {
    fn visit<S: Sink>(&self, s: &mut S) {
        if let Some(svc) = &self.service {
            s.nested("IPVS_CMD_ATTR_SERVICE", IPVS_CMD_ATTR_SERVICE, svc);
        }
        if let Some(dest) = &self.dest {
            let d = DestInMessage {
                dest,
                service_family: self.service_family(),
                with_service: self.service.is_some(),
            };
            s.nested("IPVS_CMD_ATTR_DEST", IPVS_CMD_ATTR_DEST, &d);
        }
        if let Some(d) = &self.daemon {
            s.nested("IPVS_CMD_ATTR_DAEMON", IPVS_CMD_ATTR_DAEMON, d);
        }
        if let Some(v) = self.timeout_tcp {
            s.attr(
                "IPVS_CMD_ATTR_TIMEOUT_TCP",
                &U32(IPVS_CMD_ATTR_TIMEOUT_TCP, v),
            );
        }
        if let Some(v) = self.timeout_tcp_fin {
            s.attr(
                "IPVS_CMD_ATTR_TIMEOUT_TCP_FIN",
                &U32(IPVS_CMD_ATTR_TIMEOUT_TCP_FIN, v),
            );
        }
        if let Some(v) = self.timeout_udp {
            s.attr(
                "IPVS_CMD_ATTR_TIMEOUT_UDP",
                &U32(IPVS_CMD_ATTR_TIMEOUT_UDP, v),
            );
        }
        nla::visit_unknown(s, "IPVS command unknown attribute", &self.unknown);
    }
}

/// The first level of a message: [`InfoAttrs`] for `SET_INFO`, [`CmdAttrs`]
/// for every other command.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
// Boxing `Cmd` would cost an allocation per decoded message on the hot path
// for the benefit of the rare `SET_INFO` reply.
#[allow(clippy::large_enum_variant)]
pub enum MessageAttrs {
    /// Attributes of every command but `SET_INFO`.
    Cmd(CmdAttrs),
    /// Attributes of `SET_INFO` (the `GET_INFO` reply).
    Info(InfoAttrs),
}

impl AttrSet for MessageAttrs {
    fn visit<S: Sink>(&self, s: &mut S) {
        match self {
            MessageAttrs::Cmd(a) => a.visit(s),
            MessageAttrs::Info(a) => a.visit(s),
        }
    }
}

/// One IPVS message: the command and its attributes (everything after the
/// `genlmsghdr`).
///
/// Implements the rust-netlink traits ([`GenlFamily`], [`Emitable`],
/// `ParseableParametrized<[u8], GenlHeader>`), so it can be wrapped in
/// `NetlinkMessage<GenlMessage<IpvsMessage>>`; the batch path in
/// [`crate::batch`] encodes it without those wrappers.
///
/// ```
/// use ipvs_sys::{IpvsMessage, Protocol, ServiceAttrs, ServiceFlags};
/// let svc = ServiceAttrs::addr_key(Protocol::TCP, "192.0.2.10:80".parse().unwrap())
///     .with_config("rr", ServiceFlags::EMPTY, 0);
/// let msg = IpvsMessage::new_service(svc);
/// assert!(!msg.is_dump());
/// let mut buf = Vec::new();
/// ipvs_sys::encode_request(&mut buf, &msg, 0x1c, 1, msg.request_flags()).unwrap();
/// // nlmsghdr + genlmsghdr (20), service nest header (4), AF, PROTOCOL (8
/// // each), ADDR (4 + 16), PORT (8), SCHED_NAME "rr\0" (8), FLAGS (12),
/// // TIMEOUT (8), NETMASK (8).
/// assert_eq!(buf.len(), 20 + 4 + 8 + 8 + 20 + 8 + 8 + 12 + 8 + 8);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct IpvsMessage {
    /// The command.
    pub command: Command,
    /// The attributes; must be [`MessageAttrs::Info`] exactly when `command`
    /// is [`Command::SetInfo`].
    pub attrs: MessageAttrs,
}

impl IpvsMessage {
    /// A message with command attributes.
    pub fn with_attrs(command: Command, attrs: CmdAttrs) -> Self {
        Self {
            command,
            attrs: MessageAttrs::Cmd(attrs),
        }
    }

    fn with_service(command: Command, service: ServiceAttrs) -> Self {
        Self::with_attrs(
            command,
            CmdAttrs {
                service: Some(service),
                ..CmdAttrs::default()
            },
        )
    }

    fn with_dest(command: Command, service: ServiceAttrs, dest: DestAttrs) -> Self {
        Self::with_attrs(
            command,
            CmdAttrs {
                service: Some(service),
                dest: Some(dest),
                ..CmdAttrs::default()
            },
        )
    }

    /// `NEW_SERVICE`: `svc` needs the key and the configuration
    /// ([`ServiceAttrs::with_config`]). `EEXIST` if it exists.
    pub fn new_service(svc: ServiceAttrs) -> Self {
        Self::with_service(Command::NewService, svc)
    }
    /// `SET_SERVICE`: like `NEW_SERVICE`; `ESRCH` if the service is missing.
    pub fn set_service(svc: ServiceAttrs) -> Self {
        Self::with_service(Command::SetService, svc)
    }
    /// `DEL_SERVICE`: `svc` needs the key; `ESRCH` if missing.
    pub fn del_service(svc: ServiceAttrs) -> Self {
        Self::with_service(Command::DelService, svc)
    }
    /// `GET_SERVICE` of one service (not a dump); `ESRCH` if missing.
    pub fn get_service(svc: ServiceAttrs) -> Self {
        Self::with_service(Command::GetService, svc)
    }
    /// `GET_SERVICE` dump of all services.
    pub fn dump_services() -> Self {
        Self::with_attrs(Command::GetService, CmdAttrs::default())
    }
    /// `NEW_DEST`: `svc` needs the key, `dest` the key and configuration
    /// ([`DestAttrs::with_config`]).
    pub fn new_dest(svc: ServiceAttrs, dest: DestAttrs) -> Self {
        Self::with_dest(Command::NewDest, svc, dest)
    }
    /// `SET_DEST`; `ENOENT` if the destination is missing.
    pub fn set_dest(svc: ServiceAttrs, dest: DestAttrs) -> Self {
        Self::with_dest(Command::SetDest, svc, dest)
    }
    /// `DEL_DEST`; `ENOENT` if the destination is missing.
    pub fn del_dest(svc: ServiceAttrs, dest: DestAttrs) -> Self {
        Self::with_dest(Command::DelDest, svc, dest)
    }
    /// `GET_DEST` dump of the destinations of `svc` (key only needed). The
    /// dump of a missing service is **empty** (just `NLMSG_DONE`), not an
    /// error.
    pub fn dump_dests(svc: ServiceAttrs) -> Self {
        Self::with_service(Command::GetDest, svc)
    }
    /// `NEW_DAEMON`.
    pub fn new_daemon(daemon: DaemonAttrs) -> Self {
        Self::with_attrs(
            Command::NewDaemon,
            CmdAttrs {
                daemon: Some(daemon),
                ..CmdAttrs::default()
            },
        )
    }
    /// `DEL_DAEMON`.
    pub fn del_daemon(daemon: DaemonAttrs) -> Self {
        Self::with_attrs(
            Command::DelDaemon,
            CmdAttrs {
                daemon: Some(daemon),
                ..CmdAttrs::default()
            },
        )
    }
    /// `GET_DAEMON` dump.
    pub fn dump_daemons() -> Self {
        Self::with_attrs(Command::GetDaemon, CmdAttrs::default())
    }
    /// `SET_CONFIG`: `None` leaves a timeout out of the message (ipvsadm
    /// also sends nothing for 0, which the kernel treats as "unchanged").
    pub fn set_config(tcp: Option<u32>, tcp_fin: Option<u32>, udp: Option<u32>) -> Self {
        Self::with_attrs(
            Command::SetConfig,
            CmdAttrs {
                timeout_tcp: tcp,
                timeout_tcp_fin: tcp_fin,
                timeout_udp: udp,
                ..CmdAttrs::default()
            },
        )
    }
    /// `GET_CONFIG` (the reply is a `SET_CONFIG` message).
    pub fn get_config() -> Self {
        Self::with_attrs(Command::GetConfig, CmdAttrs::default())
    }
    /// `GET_INFO` (the reply is a `SET_INFO` message).
    pub fn get_info() -> Self {
        Self::with_attrs(Command::GetInfo, CmdAttrs::default())
    }
    /// A `SET_INFO` message (what the kernel replies to `GET_INFO`).
    pub fn info(info: InfoAttrs) -> Self {
        Self {
            command: Command::SetInfo,
            attrs: MessageAttrs::Info(info),
        }
    }
    /// `ZERO` of one service (`Some`, key only) or of everything (`None`).
    pub fn zero(svc: Option<ServiceAttrs>) -> Self {
        Self::with_attrs(
            Command::Zero,
            CmdAttrs {
                service: svc,
                ..CmdAttrs::default()
            },
        )
    }
    /// `FLUSH`.
    pub fn flush() -> Self {
        Self::with_attrs(Command::Flush, CmdAttrs::default())
    }

    /// The command attributes (`None` for `SET_INFO`).
    pub fn cmd_attrs(&self) -> Option<&CmdAttrs> {
        match &self.attrs {
            MessageAttrs::Cmd(a) => Some(a),
            MessageAttrs::Info(_) => None,
        }
    }
    /// The service nest, if any.
    pub fn service(&self) -> Option<&ServiceAttrs> {
        self.cmd_attrs().and_then(|a| a.service.as_ref())
    }
    /// The destination nest, if any.
    pub fn dest(&self) -> Option<&DestAttrs> {
        self.cmd_attrs().and_then(|a| a.dest.as_ref())
    }
    /// The daemon nest, if any.
    pub fn daemon(&self) -> Option<&DaemonAttrs> {
        self.cmd_attrs().and_then(|a| a.daemon.as_ref())
    }
    /// The info attributes (`SET_INFO` only).
    pub fn info_attrs(&self) -> Option<&InfoAttrs> {
        match &self.attrs {
            MessageAttrs::Info(a) => Some(a),
            MessageAttrs::Cmd(_) => None,
        }
    }

    /// Whether this request must be sent as a dump: `GET_DEST`,
    /// `GET_DAEMON`, and `GET_SERVICE` without a service nest.
    pub fn is_dump(&self) -> bool {
        self.command.is_dump() || (self.command == Command::GetService && self.service().is_none())
    }

    /// The `nlmsg_flags` a request should carry: `NLM_F_REQUEST | NLM_F_DUMP`
    /// for dumps, `NLM_F_REQUEST | NLM_F_ACK` otherwise (so that every
    /// non-dump request is answered by an `NLMSG_ERROR` carrying its errno,
    /// 0 on success, after its data reply if it has one).
    pub fn request_flags(&self) -> u16 {
        if self.is_dump() {
            NLM_F_REQUEST | NLM_F_DUMP
        } else {
            NLM_F_REQUEST | NLM_F_ACK
        }
    }

    /// Check that the message can be encoded and decoded back unchanged:
    /// the attribute set matches the command, addresses and netmasks match
    /// their families, strings contain no NUL, attributes fit `nla_len`.
    pub fn validate(&self) -> Result<()> {
        self.validate_fields()?;
        nla::checked_len(&self.attrs).map(|_| ())
    }

    /// [`validate`](Self::validate) without the attribute-size check, which
    /// the one-pass encoder does as it writes.
    pub(crate) fn validate_fields(&self) -> Result<()> {
        match (&self.attrs, self.command) {
            (MessageAttrs::Info(_), Command::SetInfo) => Ok(()),
            (MessageAttrs::Cmd(a), c) if c != Command::SetInfo => a.validate(),
            (_, c) => Err(Error::AttrsMismatch { command: c.name() }),
        }
    }

    /// Length of the attributes (the message without `nlmsghdr` and
    /// `genlmsghdr`), after [`validate`](Self::validate).
    pub fn attrs_len(&self) -> Result<usize> {
        self.validate()?;
        Ok(nla::set_len(&self.attrs))
    }

    /// Decode the attributes of a message with command number `cmd`.
    pub fn decode(cmd: u8, attrs: &[u8]) -> Result<Self> {
        Self::decode_with_hint(cmd, attrs, None)
    }

    /// Like [`decode`](Self::decode), with a family for destination
    /// addresses that carry neither their own family nor a service family
    /// (only needed for `GET_DEST` dumps from kernels before 3.18: pass the
    /// family of the service whose destinations were dumped).
    pub fn decode_with_hint(
        cmd: u8,
        attrs: &[u8],
        dest_family_hint: Option<AddressFamily>,
    ) -> Result<Self> {
        let command = Command::from_u8(cmd).ok_or(Error::UnknownCommand(cmd))?;
        let attrs = if command == Command::SetInfo {
            MessageAttrs::Info(InfoAttrs::decode(attrs)?)
        } else {
            MessageAttrs::Cmd(CmdAttrs::decode(attrs, dest_family_hint)?)
        };
        Ok(Self { command, attrs })
    }

    /// Decode a generic-netlink payload (`genlmsghdr` followed by the
    /// attributes).
    pub fn decode_genl(payload: &[u8], dest_family_hint: Option<AddressFamily>) -> Result<Self> {
        let (hdr, attrs) = payload
            .split_at_checked(GENL_HDRLEN)
            .ok_or(Error::Truncated {
                what: "genlmsghdr",
                need: GENL_HDRLEN,
                have: payload.len(),
            })?;
        let cmd = hdr.first().copied().unwrap_or_default();
        Self::decode_with_hint(cmd, attrs, dest_family_hint)
    }
}

impl GenlFamily for IpvsMessage {
    fn family_name() -> &'static str {
        IPVS_GENL_NAME
    }
    fn command(&self) -> u8 {
        self.command as u8
    }
    fn version(&self) -> u8 {
        IPVS_GENL_VERSION
    }
}

impl Emitable for IpvsMessage {
    fn buffer_len(&self) -> usize {
        nla::set_len(&self.attrs)
    }
    fn emit(&self, buffer: &mut [u8]) {
        nla::set_emit(&self.attrs, buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        Self::decode(header.cmd, buf).map_err(DecodeError::from)
    }
}
