//! Native cost of decoding a destination dump (no kernel needed): a GET_DEST reply
//! datagram of `--dests` entries with both statistics nests, as the kernel sends it,
//! decoded `--services` times through the general reply path (whole messages) and
//! through the destination dump fast path.
//!
//! `cargo run --release -p ipvs-sys --example dump_decode_cost -- 10000 10`

use ipvs_sys::transport::dest_dump::{DestDump, decode_dest_entries};
use ipvs_sys::transport::exchange::{AckMode, Chunk};
use ipvs_sys::{
    CmdAttrs, Command, DestAttrs, ForwardMethod, IpvsMessage, MessageAttrs, Stats, Stats64,
};
use std::time::Instant;

const FAMILY: u16 = 0x1c;

fn datagram(seq: u32, dests: u32) -> Vec<u8> {
    let mut buf = Vec::new();
    for j in 0..dests {
        let mut d = DestAttrs::key_of(([198, 19, 0, 1 + j as u8], 8000).into())
            .with_config(ForwardMethod::MASQ, 1);
        d.active_conns = Some(0);
        d.inact_conns = Some(0);
        d.persist_conns = Some(0);
        d.stats = Some(Stats::default());
        d.stats64 = Some(Stats64::default());
        let m = IpvsMessage::with_attrs(
            Command::NewDest,
            CmdAttrs {
                dest: Some(d),
                ..CmdAttrs::default()
            },
        );
        ipvs_sys::encode_message(&mut buf, &m, FAMILY, 0x2, seq, 0).unwrap_or_default();
    }
    ipvs_sys::encode_done(&mut buf, seq, 0);
    buf
}

fn main() {
    let mut args = std::env::args().skip(1);
    let services: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let dests: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let which = args.next().unwrap_or_else(|| "both".into());
    let bufs: Vec<Vec<u8>> = (0..services).map(|i| datagram(i, dests)).collect();
    println!("datagram: {} bytes", bufs.first().map_or(0, Vec::len));
    let entries = f64::from(services * dests);
    let measure = |label: &str, decode: &dyn Fn(u32, &[u8]) -> Vec<DestAttrs>| {
        let t = Instant::now();
        let mut keep = Vec::with_capacity(bufs.len());
        for (i, b) in (0..).zip(&bufs) {
            keep.push(decode(i, b));
        }
        let el = t.elapsed();
        let n: usize = keep.iter().map(Vec::len).sum();
        println!(
            "{label}: {n} dests, {:.0} ns/entry",
            el.as_nanos() as f64 / entries
        );
    };
    if which != "fast" {
        measure("whole messages", &|seq, b| {
            let mut c = Chunk::new(seq, 1, AckMode::EveryMessage);
            c.on_datagram(b, FAMILY).unwrap_or_default();
            let (_, data) = c.finish();
            data.into_iter()
                .filter_map(|(_, m)| match m.attrs {
                    MessageAttrs::Cmd(a) => a.dest,
                    MessageAttrs::Info(_) => None,
                })
                .collect()
        });
    }
    if which != "slow" {
        measure("fast path", &|seq, b| {
            let mut dump = DestDump::new(seq);
            dump.on_datagram(b, FAMILY).unwrap_or_default();
            let mut out = Vec::with_capacity(dump.entries());
            decode_dest_entries(dump.bytes(), FAMILY, seq, None, &mut out).unwrap_or_default();
            out
        });
    }
    println!(
        "size_of DestAttrs {} IpvsMessage {} Stats {} Stats64 {}",
        std::mem::size_of::<DestAttrs>(),
        std::mem::size_of::<IpvsMessage>(),
        std::mem::size_of::<Stats>(),
        std::mem::size_of::<Stats64>()
    );
}
