//! The payload of one DestAttrs attribute set: never panics, round-trips.
#![no_main]

use ipvs_sys::DestAttrs;
use libfuzzer_sys::fuzz_target;
use netlink_packet_core::Emitable;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = DestAttrs::decode(data) {
        let mut buf = vec![0; v.buffer_len()];
        v.emit(&mut buf);
        assert_eq!(DestAttrs::decode(&buf).expect("re-decodes"), v);
    }
});
