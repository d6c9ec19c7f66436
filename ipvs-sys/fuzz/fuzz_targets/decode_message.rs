//! The attributes of one IPVS message (first byte: the command number,
//! second byte: an optional destination family hint).
#![no_main]

use ipvs_sys::{AddressFamily, IpvsMessage, encode_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cmd, rest)) = data.split_first() else {
        return;
    };
    let Some((&hint, attrs)) = rest.split_first() else {
        return;
    };
    let hint = match hint % 3 {
        0 => None,
        1 => Some(AddressFamily::INET),
        _ => Some(AddressFamily::INET6),
    };
    if let Ok(msg) = IpvsMessage::decode_with_hint(cmd, attrs, hint) {
        // Without the hint, a destination relying on it could not be
        // encoded back; everything else must round-trip.
        let mut buf = Vec::new();
        if encode_request(&mut buf, &msg, 0x1c, 1, 0).is_ok() {
            let again = IpvsMessage::decode_genl(&buf[16..], hint).expect("re-decodes");
            assert_eq!(again, msg);
        } else {
            assert!(hint.is_some(), "a message decoded without hint must encode");
        }
    }
});
