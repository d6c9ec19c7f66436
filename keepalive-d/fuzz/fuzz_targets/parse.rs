//! Fuzz target: the configuration parser and validator must never panic, and every error
//! must point inside the input (or at no position at all).

#![no_main]

use keepalive_d::config::{parse_duration, parse_str};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Durations on their own (short inputs reach every branch quickly).
    if text.len() < 64 {
        let _ = parse_duration(text);
    }
    match parse_str(text, "fuzz.yaml") {
        Ok(config) => {
            // A valid configuration is internally consistent.
            assert!(!config.vrrp_instances.is_empty() || !config.virtual_servers.is_empty());
            for vs in &config.virtual_servers {
                assert!(!vs.real_servers.is_empty());
                assert!(vs.quorum.min_up as usize <= vs.real_servers.len());
            }
            for vi in &config.vrrp_instances {
                assert!(vi.vrid >= 1 && vi.priority >= 1);
                assert!(!vi.virtual_ips.is_empty());
            }
        }
        Err(errors) => {
            assert!(!errors.errors().is_empty());
            // YAML line breaks: LF, CRLF and a lone CR.
            let lines = 1 + text.replace("\r\n", "\n").matches(['\n', '\r']).count() as u64;
            for error in errors.errors() {
                if let Some(p) = error.position {
                    assert!(p.line >= 1 && p.line <= lines + 1, "{error}");
                    assert!(p.column >= 1, "{error}");
                }
                assert!(!error.message.contains('\n'), "{error}");
            }
        }
    }
});
