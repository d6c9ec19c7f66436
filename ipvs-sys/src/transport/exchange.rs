//! The sans-IO part of the transport: which replies complete which requests.
//!
//! A [`Chunk`] is the set of requests sent in one `sendmsg`, numbered with consecutive
//! sequence numbers. Received datagrams are fed to it; it routes every reply to its
//! request by sequence number, and says when the chunk is complete. The blocking and the
//! async socket both drive this same code, so it is tested once, without a kernel.

use crate::message::IpvsMessage;
use crate::reply::{NetlinkError, Replies, ReplyPayload};
use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP_INTR};

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

/// Encodes requests from the start of `msgs` into `buf` (cleared first) for one
/// `sendmsg`: at most `max_count` of them, and no more than `max_bytes` unless the first
/// alone is larger. Request `i` gets sequence number `first_seq + i`. With
/// [`AckMode::LastOfChunk`] only the last request asks for an ACK (dumps always answer).
/// Each request is encoded once, straight into the buffer.
///
/// Returns how many requests were encoded, or the index of the request that could not
/// be encoded and why.
pub fn encode_chunk(
    buf: &mut Vec<u8>,
    msgs: &[IpvsMessage],
    family_id: u16,
    first_seq: u32,
    max_count: usize,
    max_bytes: usize,
    ack: AckMode,
) -> Result<usize, (usize, crate::Error)> {
    buf.clear();
    let mut count = 0;
    let mut last = None;
    for (i, m) in msgs.iter().take(max_count.max(1)).enumerate() {
        let mut flags = m.request_flags();
        if ack == AckMode::LastOfChunk && !m.is_dump() {
            flags &= !NLM_F_ACK;
        }
        let before = buf.len();
        let seq = first_seq.wrapping_add(u32::try_from(i).unwrap_or(u32::MAX));
        let range =
            crate::batch::encode_request(buf, m, family_id, seq, flags).map_err(|e| (i, e))?;
        if buf.len() > max_bytes && count > 0 {
            buf.truncate(before);
            break;
        }
        count += 1;
        last = Some((range.start, m.is_dump()));
    }
    if let (AckMode::LastOfChunk, Some((start, false))) = (ack, last) {
        // nlmsg_flags of the last request: bytes 6..8 of its header, host order.
        if let Some(f) = buf.get_mut(start + 6..start + 8) {
            let flags = u16::from_ne_bytes([f[0], f[1]]) | NLM_F_ACK;
            f.copy_from_slice(&flags.to_ne_bytes());
        }
    }
    Ok(count)
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

    fn flags_of(buf: &[u8]) -> Vec<(u32, u16)> {
        crate::reply::Replies::new(buf, 0x20)
            .map(|r| r.unwrap().header)
            .map(|h| (h.seq, h.flags))
            .collect()
    }

    #[test]
    fn ack_flag_only_on_the_last_request_of_a_chunk() {
        let msgs = vec![IpvsMessage::flush(); 5];
        let mut buf = Vec::new();
        let n = encode_chunk(&mut buf, &msgs, 0x20, 7, 3, 1 << 20, AckMode::LastOfChunk).unwrap();
        assert_eq!(n, 3);
        // NLM_F_REQUEST = 1, NLM_F_ACK = 4.
        assert_eq!(flags_of(&buf), [(7, 1), (8, 1), (9, 5)]);
        let n = encode_chunk(&mut buf, &msgs, 0x20, 7, 3, 1 << 20, AckMode::EveryMessage).unwrap();
        assert_eq!(n, 3);
        assert_eq!(flags_of(&buf), [(7, 5), (8, 5), (9, 5)]);
    }

    #[test]
    fn chunk_stops_at_the_byte_limit_but_always_takes_one() {
        let msgs = vec![IpvsMessage::flush(); 5]; // 20 bytes each
        let mut buf = Vec::new();
        let n = encode_chunk(&mut buf, &msgs, 0x20, 1, 100, 45, AckMode::LastOfChunk).unwrap();
        assert_eq!((n, buf.len()), (2, 40));
        assert_eq!(flags_of(&buf), [(1, 1), (2, 5)]);
        let n = encode_chunk(&mut buf, &msgs, 0x20, 1, 100, 3, AckMode::LastOfChunk).unwrap();
        assert_eq!(n, 1);
        let dump = [IpvsMessage::dump_services()];
        encode_chunk(&mut buf, &dump, 0x20, 1, 100, 1 << 20, AckMode::LastOfChunk).unwrap();
        assert_eq!(flags_of(&buf), [(1, dump[0].request_flags())]);
    }

    #[test]
    fn a_dump_marked_interrupted_is_reported() {
        // NLMSG_DONE (type 3) with NLM_F_MULTI | NLM_F_DUMP_INTR (0x2 | 0x10).
        let mut done = Vec::new();
        done.extend_from_slice(&20u32.to_ne_bytes());
        done.extend_from_slice(&3u16.to_ne_bytes());
        done.extend_from_slice(&0x12u16.to_ne_bytes());
        done.extend_from_slice(&9u32.to_ne_bytes());
        done.extend_from_slice(&0u32.to_ne_bytes());
        done.extend_from_slice(&0i32.to_ne_bytes());
        let mut c = Chunk::new(9, 1, AckMode::EveryMessage);
        c.on_datagram(&done, 0x20).unwrap();
        assert!(c.is_complete());
        assert!(c.interrupted());
        done[6] = 0x02; // the same without DUMP_INTR
        let mut c = Chunk::new(9, 1, AckMode::EveryMessage);
        c.on_datagram(&done, 0x20).unwrap();
        assert!(!c.interrupted());
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
