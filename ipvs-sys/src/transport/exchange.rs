//! The sans-IO part of the transport: which replies complete which requests.
//!
//! A [`Chunk`] is the set of requests sent in one `sendmsg`, numbered with consecutive
//! sequence numbers. Received datagrams are fed to it; it routes every reply to its
//! request by sequence number, and says when the chunk is complete. The blocking and the
//! async socket both drive this same code, so it is tested once, without a kernel.

use crate::message::IpvsMessage;
use crate::reply::{NetlinkError, Replies, ReplyPayload};
use netlink_packet_core::NLM_F_DUMP_INTR;

/// Which requests of a chunk ask the kernel for an acknowledgement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AckMode {
    /// Every request carries `NLM_F_ACK`: one reply per request. The receive buffer must
    /// hold a whole chunk's ACKs (the socket sizes it for that).
    EveryMessage,
    /// Only the last request of a chunk carries `NLM_F_ACK`. The kernel answers the
    /// others only when they fail, and handles a chunk's requests in order, so the last
    /// ACK means every earlier request has been answered: every failure is still seen,
    /// with half the replies.
    #[default]
    LastOfChunk,
}

/// What happened to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not answered yet.
    Pending,
    /// Acknowledged (or, with [`AckMode::LastOfChunk`], not refused).
    Done,
    /// Refused by the kernel.
    Failed(NetlinkError),
}

/// The requests of one `sendmsg` and their replies.
#[derive(Debug)]
pub struct Chunk {
    first_seq: u32,
    outcomes: Vec<Outcome>,
    /// Data messages (replies to non-dump `GET_*` requests, or dump entries), with the
    /// index of the request they answer.
    data: Vec<(usize, IpvsMessage)>,
    ack: AckMode,
    /// A dump reply carried `NLM_F_DUMP_INTR`: the table changed during the dump.
    interrupted: bool,
    /// Replies that matched no request of this chunk (stale replies of an earlier,
    /// timed-out chunk): counted, then ignored.
    stray: usize,
}

/// A received datagram could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("reply to request seq {seq}: {source}")]
pub struct ReplyDecodeError {
    /// Sequence number of the message that failed to decode (0 if unknown).
    pub seq: u32,
    /// Why.
    #[source]
    pub source: crate::Error,
}

impl Chunk {
    /// A chunk of `count` requests numbered `first_seq..first_seq + count`.
    pub fn new(first_seq: u32, count: usize, ack: AckMode) -> Self {
        Self {
            first_seq,
            outcomes: vec![Outcome::Pending; count],
            data: Vec::new(),
            ack,
            interrupted: false,
            stray: 0,
        }
    }

    /// The `nlmsg_flags` for request `index` of a chunk of `count` requests.
    pub fn flags(msg: &IpvsMessage, index: usize, count: usize, ack: AckMode) -> u16 {
        let flags = msg.request_flags();
        if msg.is_dump() || ack == AckMode::EveryMessage || index + 1 == count {
            flags
        } else {
            flags & !netlink_packet_core::NLM_F_ACK
        }
    }

    fn index_of(&self, seq: u32) -> Option<usize> {
        let i = usize::try_from(seq.wrapping_sub(self.first_seq)).ok()?;
        (i < self.outcomes.len()).then_some(i)
    }

    /// Feeds one received datagram (one or more netlink messages).
    pub fn on_datagram(&mut self, buf: &[u8], family_id: u16) -> Result<(), ReplyDecodeError> {
        for reply in Replies::new(buf, family_id) {
            let reply = reply.map_err(|e| {
                let seq = match &e {
                    crate::Error::InMessage { seq, .. } => *seq,
                    _ => 0,
                };
                ReplyDecodeError { seq, source: e }
            })?;
            let Some(i) = self.index_of(reply.seq()) else {
                self.stray += 1;
                continue;
            };
            if reply.header.flags & NLM_F_DUMP_INTR != 0 {
                self.interrupted = true;
            }
            let outcome = match reply.payload {
                ReplyPayload::Ipvs(msg) => {
                    self.data.push((i, msg));
                    continue;
                }
                ReplyPayload::Ack => Outcome::Done,
                ReplyPayload::Done { error: 0 } => Outcome::Done,
                ReplyPayload::Done { error } => Outcome::Failed(NetlinkError {
                    errno: error.checked_neg().unwrap_or(i32::MAX),
                    request: None,
                    ext_ack_msg: None,
                    ext_ack_offset: None,
                }),
                ReplyPayload::Error(e) => Outcome::Failed(e),
                ReplyPayload::Noop | ReplyPayload::Overrun | ReplyPayload::Other { .. } => {
                    continue;
                }
            };
            if let Some(o) = self.outcomes.get_mut(i) {
                *o = outcome;
            }
        }
        Ok(())
    }

    /// Whether every reply the chunk waits for has arrived.
    pub fn is_complete(&self) -> bool {
        match self.ack {
            AckMode::EveryMessage => self.outcomes.iter().all(|o| *o != Outcome::Pending),
            AckMode::LastOfChunk => self.outcomes.last().is_none_or(|o| *o != Outcome::Pending),
        }
    }

    /// Whether a dump in this chunk was interrupted by a concurrent change.
    pub fn interrupted(&self) -> bool {
        self.interrupted
    }

    /// How many replies matched no request of this chunk.
    pub fn stray(&self) -> usize {
        self.stray
    }

    /// The outcome of every request (after completion, requests that were not refused
    /// are [`Outcome::Done`]) and the data messages with the request index they answer.
    pub fn finish(mut self) -> (Vec<Outcome>, Vec<(usize, IpvsMessage)>) {
        if self.is_complete() {
            for o in &mut self.outcomes {
                if *o == Outcome::Pending {
                    *o = Outcome::Done;
                }
            }
        }
        (self.outcomes, self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `NLMSG_ERROR` for `seq` with `errno` (0 = ACK), capped, as the kernel sends it.
    fn ack(seq: u32, errno: i32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&36u32.to_ne_bytes());
        b.extend_from_slice(&2u16.to_ne_bytes());
        b.extend_from_slice(&0x100u16.to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&77u32.to_ne_bytes());
        b.extend_from_slice(&(-errno).to_ne_bytes());
        b.extend_from_slice(&[0; 16]);
        b
    }

    #[test]
    fn last_of_chunk_completes_on_the_last_ack_and_keeps_earlier_failures() {
        let mut c = Chunk::new(10, 3, AckMode::LastOfChunk);
        c.on_datagram(&ack(11, libc::EEXIST), 0x20).unwrap();
        assert!(!c.is_complete());
        c.on_datagram(&ack(12, 0), 0x20).unwrap();
        assert!(c.is_complete());
        let (outcomes, data) = c.finish();
        assert!(data.is_empty());
        assert_eq!(outcomes[0], Outcome::Done);
        assert!(matches!(&outcomes[1], Outcome::Failed(e) if e.errno == libc::EEXIST));
        assert_eq!(outcomes[2], Outcome::Done);
    }

    #[test]
    fn every_message_waits_for_every_ack_and_ignores_strays() {
        let mut c = Chunk::new(u32::MAX, 2, AckMode::EveryMessage);
        c.on_datagram(&ack(5, 0), 0x20).unwrap(); // not ours
        c.on_datagram(&ack(u32::MAX, 0), 0x20).unwrap();
        assert!(!c.is_complete());
        c.on_datagram(&ack(0, libc::ENOENT), 0x20).unwrap(); // seq wrapped
        assert!(c.is_complete());
        assert_eq!(c.stray(), 1);
        let (outcomes, _) = c.finish();
        assert!(matches!(&outcomes[1], Outcome::Failed(e) if e.errno == libc::ENOENT));
    }

    #[test]
    fn ack_flag_only_on_the_last_request() {
        let flush = IpvsMessage::flush();
        let dump = IpvsMessage::dump_services();
        let ack_bit = netlink_packet_core::NLM_F_ACK;
        assert_eq!(
            Chunk::flags(&flush, 0, 3, AckMode::LastOfChunk) & ack_bit,
            0
        );
        assert_ne!(
            Chunk::flags(&flush, 2, 3, AckMode::LastOfChunk) & ack_bit,
            0
        );
        assert_ne!(
            Chunk::flags(&flush, 0, 3, AckMode::EveryMessage) & ack_bit,
            0
        );
        assert_eq!(
            Chunk::flags(&dump, 0, 3, AckMode::LastOfChunk),
            dump.request_flags()
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut c = Chunk::new(1, 1, AckMode::EveryMessage);
        assert!(c.on_datagram(&[0xff; 7], 0x20).is_err());
        let mut bad_len = ack(1, 0);
        bad_len[0] = 200;
        assert!(c.on_datagram(&bad_len, 0x20).is_err());
        assert!(!c.is_complete());
    }
}
