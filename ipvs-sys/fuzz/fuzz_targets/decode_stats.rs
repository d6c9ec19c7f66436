//! The payload of a STATS or STATS64 nest (first byte selects which).
#![no_main]

use ipvs_sys::{Stats, Stats64};
use libfuzzer_sys::fuzz_target;
use netlink_packet_core::Emitable;

fuzz_target!(|data: &[u8]| {
    let Some((&which, data)) = data.split_first() else {
        return;
    };
    if which & 1 == 0 {
        if let Ok(v) = Stats::decode(data) {
            let mut buf = vec![0; v.buffer_len()];
            v.emit(&mut buf);
            assert_eq!(Stats::decode(&buf).expect("re-decodes"), v);
        }
    } else if let Ok(v) = Stats64::decode(data) {
        let mut buf = vec![0; v.buffer_len()];
        v.emit(&mut buf);
        assert_eq!(Stats64::decode(&buf).expect("re-decodes"), v);
    }
});
