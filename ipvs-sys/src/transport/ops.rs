//! What the replies of each operation mean: shared by the blocking and the async socket,
//! which differ only in how they wait.

use super::dest_dump::{DestDump, decode_dest_entries};
use super::error::{self, KernelError, TransportError};
use super::exchange::{Chunk, Outcome};
use super::{BatchFailure, BatchOptions, BatchReport};
use crate::daemon::DaemonAttrs;
use crate::dest::DestAttrs;
use crate::info::InfoAttrs;
use crate::message::{Command, IpvsMessage, MessageAttrs};
use crate::service::ServiceAttrs;
use crate::types::AddressFamily;

/// How often an interrupted dump is run before giving up.
pub(crate) const DUMP_ATTEMPTS: u32 = 5;

fn refused(msg: &IpvsMessage, outcomes: Vec<Outcome>) -> Result<(), TransportError> {
    match outcomes.into_iter().next() {
        Some(Outcome::Failed(e)) => Err(KernelError::new(msg, &e).into()),
        _ => Ok(()),
    }
}

pub(crate) fn execute_result(msg: &IpvsMessage, chunk: Chunk) -> Result<(), TransportError> {
    refused(msg, chunk.finish().0)
}

pub(crate) fn get_result(msg: &IpvsMessage, chunk: Chunk) -> Result<IpvsMessage, TransportError> {
    let (outcomes, data) = chunk.finish();
    refused(msg, outcomes)?;
    data.into_iter()
        .next()
        .map(|(_, m)| m)
        .ok_or(TransportError::UnexpectedReply {
            op: error::operation(msg.command),
            what: "no data in the reply",
        })
}

/// The entries of a dump, or `None` if it was interrupted and must be run again.
pub(crate) fn dump_result(
    msg: &IpvsMessage,
    chunk: Chunk,
) -> Result<Option<Vec<IpvsMessage>>, TransportError> {
    if chunk.interrupted() {
        return Ok(None);
    }
    let (outcomes, data) = chunk.finish();
    refused(msg, outcomes)?;
    Ok(Some(data.into_iter().map(|(_, m)| m).collect()))
}

pub(crate) fn dump_interrupted(msg: &IpvsMessage) -> TransportError {
    TransportError::DumpInterrupted {
        op: error::operation(msg.command),
        attempts: DUMP_ATTEMPTS,
    }
}

/// The requests of a batch not handled yet, if any should still be sent.
pub(crate) fn unsent<'a>(
    msgs: &'a [IpvsMessage],
    report: &BatchReport,
) -> Option<&'a [IpvsMessage]> {
    if report.not_sent > 0 {
        return None;
    }
    msgs.get(report.handled..).filter(|r| !r.is_empty())
}

/// Adds a chunk of `count` requests starting at `report.handled` to the report. Returns
/// whether to go on.
pub(crate) fn record_chunk(
    report: &mut BatchReport,
    msgs: &[IpvsMessage],
    chunk: Chunk,
    count: usize,
    opts: &BatchOptions,
) -> bool {
    let start = report.handled;
    report.sends += 1;
    report.handled += count;
    let before = report.failures.len();
    for (i, o) in chunk.finish().0.into_iter().enumerate() {
        if let (Outcome::Failed(e), Some(m)) = (o, msgs.get(start + i)) {
            report.failures.push(BatchFailure {
                index: start + i,
                error: KernelError::new(m, &e),
            });
        }
    }
    if opts.stop_at_first_error && report.failures.len() > before {
        report.not_sent = msgs.len().saturating_sub(report.handled);
        return report.not_sent == 0;
    }
    true
}

fn cmd_attrs(m: IpvsMessage) -> Option<crate::message::CmdAttrs> {
    match m.attrs {
        MessageAttrs::Cmd(a) => Some(a),
        MessageAttrs::Info(_) => None,
    }
}

/// The services of a service dump, each once.
///
/// The kernel (6.1) resumes a service dump at a position counted over the services of
/// every network namespace, so a service added or deleted in any namespace while a dump
/// spans several datagrams shifts it: a service of this namespace is sent twice (or
/// skipped), and nothing flags it (no `NLM_F_DUMP_INTR`). The second copy is dropped
/// here; a kernel test caught it (2,001 services read of 2,000 while another test
/// added and deleted services).
pub(crate) fn services_of(msgs: Vec<IpvsMessage>) -> Vec<ServiceAttrs> {
    let mut seen = std::collections::HashSet::with_capacity(msgs.len());
    msgs.into_iter()
        .filter_map(|m| cmd_attrs(m)?.service)
        .filter(|s| seen.insert(s.key()))
        .collect()
}

pub(crate) fn service_of(m: IpvsMessage) -> Result<ServiceAttrs, TransportError> {
    cmd_attrs(m)
        .and_then(|a| a.service)
        .ok_or(TransportError::UnexpectedReply {
            op: "get service",
            what: "no service in the reply",
        })
}

/// A destination dump that ended, or `None` if it was interrupted and must be run again.
pub(crate) fn dest_dump_result(
    msg: &IpvsMessage,
    dump: DestDump,
) -> Result<Option<DestDump>, TransportError> {
    if dump.interrupted() {
        return Ok(None);
    }
    if let Outcome::Failed(e) = dump.outcome() {
        return Err(KernelError::new(msg, e).into());
    }
    Ok(Some(dump))
}

/// The destinations of a dump that ended; `hint` is the dumped service's family.
pub(crate) fn decode_dests(
    dump: &DestDump,
    family_id: u16,
    hint: Option<AddressFamily>,
) -> Result<Vec<DestAttrs>, TransportError> {
    let mut dests = Vec::with_capacity(dump.entries());
    decode_dest_entries(dump.bytes(), family_id, dump.seq(), hint, &mut dests).map_err(
        |source| TransportError::Decode {
            op: error::operation(Command::GetDest),
            source,
        },
    )?;
    Ok(dests)
}

pub(crate) fn daemons_of(msgs: Vec<IpvsMessage>) -> Vec<DaemonAttrs> {
    msgs.into_iter()
        .filter_map(|m| cmd_attrs(m)?.daemon)
        .collect()
}

pub(crate) fn info_of(m: IpvsMessage) -> Result<InfoAttrs, TransportError> {
    match m.attrs {
        MessageAttrs::Info(i) => Ok(i),
        MessageAttrs::Cmd(_) => Err(TransportError::UnexpectedReply {
            op: "get info",
            what: "not an info reply",
        }),
    }
}

pub(crate) fn timeouts_of(m: IpvsMessage) -> Result<(u32, u32, u32), TransportError> {
    match (m.command, m.attrs) {
        (Command::SetConfig, MessageAttrs::Cmd(a)) => Ok((
            a.timeout_tcp.unwrap_or(0),
            a.timeout_tcp_fin.unwrap_or(0),
            a.timeout_udp.unwrap_or(0),
        )),
        _ => Err(TransportError::UnexpectedReply {
            op: "get timeouts",
            what: "not a config reply",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Protocol;

    #[test]
    fn a_service_sent_twice_by_a_shifted_dump_is_read_once() {
        let svc = |addr: &str, sched: &str| {
            let a = addr
                .parse()
                .unwrap_or(std::net::SocketAddr::from(([0; 4], 0)));
            ServiceAttrs::addr_key(Protocol::TCP, a).with_config(
                sched,
                crate::ServiceFlags::EMPTY,
                0,
            )
        };
        let msgs = [
            svc("192.0.2.1:80", "rr"),
            svc("192.0.2.2:80", "rr"),
            svc("192.0.2.1:80", "wlc"), // the same key again
            svc("192.0.2.3:80", "rr"),
        ]
        .map(IpvsMessage::new_service)
        .to_vec();
        let got = services_of(msgs);
        let addrs: Vec<_> = got.iter().map(|s| s.addr).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(addrs[0], Some([192, 0, 2, 1].into()));
        assert_eq!(
            got[0].sched_name.as_deref(),
            Some("rr"),
            "the first copy is kept"
        );
        assert_eq!(addrs[2], Some([192, 0, 2, 3].into()));
    }
}
