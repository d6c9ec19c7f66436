//! A received buffer of netlink messages: never panics; every IPVS message
//! that decodes re-encodes to something that decodes to the same value.
#![no_main]

use ipvs_sys::{Replies, ReplyPayload, encode_message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let family = 0x1c;
    for reply in Replies::new(data, family).flatten() {
        let h = reply.header;
        assert!(h.len as usize >= 16);
        if let ReplyPayload::Ipvs(msg) = reply.payload {
            let mut out = Vec::new();
            encode_message(&mut out, &msg, family, h.flags, h.seq, h.port)
                .expect("a decoded message encodes");
            let again: Vec<_> = Replies::new(&out, family).collect();
            assert_eq!(again.len(), 1);
            match again.into_iter().next() {
                Some(Ok(r)) => assert_eq!(r.payload, ReplyPayload::Ipvs(msg)),
                other => panic!("re-encoded message does not decode: {other:?}"),
            }
        }
    }
});
