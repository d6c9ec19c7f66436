//! Fuzzes the ipvsadm save/restore parser: any input must parse or fail without
//! panicking, and whatever parses must print and parse back to the same table (with
//! thresholds), print stably in ipvsadm's exact form, and survive a serde round trip.
#![no_main]

use ipvs::ipvsadm::{self, PrintOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(table) = ipvsadm::parse(text) else {
        return;
    };
    let full = ipvsadm::print_with(&table, &PrintOptions { thresholds: true });
    let back = ipvsadm::parse(&full).expect("printed table parses");
    // Local forwarding prints as -g; everything else must come back unchanged.
    assert_eq!(ipvsadm::print_with(&back, &PrintOptions { thresholds: true }), full);
    let exact = ipvsadm::print(&table);
    let again = ipvsadm::parse(&exact).expect("ipvsadm form parses");
    assert_eq!(ipvsadm::print(&again), exact);
    let json = serde_json::to_string(&table).expect("serialises");
    let from_json: ipvs::Table = serde_json::from_str(&json).expect("deserialises");
    assert_eq!(from_json, table);
});
