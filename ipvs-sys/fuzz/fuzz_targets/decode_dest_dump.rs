//! The destination dump fast path (`transport::dest_dump`): never panics on a received
//! buffer, and every destination the general reply path decodes from it, the fast path
//! decodes the same.
#![no_main]

use ipvs_sys::transport::dest_dump::{DestDump, decode_dest_entries};
use ipvs_sys::transport::exchange::{AckMode, Chunk};
use ipvs_sys::{DestAttrs, MessageAttrs};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let family = 0x1c;
    // The sequence number of the first message, so that entries match the dump.
    let seq = data
        .get(8..12)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_ne_bytes);
    let mut dump = DestDump::new(seq);
    let fast = dump.on_datagram(data, family).ok().and_then(|()| {
        let mut out = Vec::new();
        decode_dest_entries(dump.bytes(), family, seq, None, &mut out).ok()?;
        Some(out)
    });
    let mut chunk = Chunk::new(seq, 1, AckMode::EveryMessage);
    if chunk.on_datagram(data, family).is_ok() {
        let general: Vec<DestAttrs> = chunk
            .finish()
            .1
            .into_iter()
            .filter_map(|(_, m)| match m.attrs {
                MessageAttrs::Cmd(a) => a.dest,
                MessageAttrs::Info(_) => None,
            })
            .collect();
        assert_eq!(fast, Some(general));
    }
});
