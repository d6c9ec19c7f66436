//! The payload of one InfoAttrs attribute set: never panics, round-trips.
#![no_main]

use ipvs_sys::InfoAttrs;
use libfuzzer_sys::fuzz_target;
use netlink_packet_core::Emitable;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = InfoAttrs::decode(data) {
        let mut buf = vec![0; v.buffer_len()];
        v.emit(&mut buf);
        assert_eq!(InfoAttrs::decode(&buf).expect("re-decodes"), v);
    }
});
