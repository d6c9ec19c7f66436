//! Opening a socket on a kernel without IPVS is a clear error, not a bare ENOENT.
//! (Our machines' kernels have no IPVS; on a director box the socket opens.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ipvs_sys::transport::{IpvsSocket, TransportError};

#[test]
fn opening_says_whether_ipvs_is_there() {
    let has_ipvs = std::path::Path::new("/proc/net/ip_vs").exists();
    match IpvsSocket::open() {
        Ok(s) => assert!(
            has_ipvs,
            "opened an IPVS socket (family {}) without IPVS",
            s.family_id()
        ),
        Err(TransportError::IpvsUnavailable) => {
            assert!(!has_ipvs, "IPVS is loaded but the family was not found");
            let msg = TransportError::IpvsUnavailable.to_string();
            assert!(
                msg.starts_with("IPVS is not available: load the ip_vs module"),
                "{msg}"
            );
        }
        Err(e) => panic!("unexpected error: {e}"),
    }
}
