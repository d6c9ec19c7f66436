//! CONFIG.md documents every key the parser accepts: for each mapping of the format, the
//! parser's own list of accepted keys (from its "unknown field" error) is compared with the
//! keys in CONFIG.md's tables.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use keepalive_d::config::parse_str;

/// YAML documents with an unknown key `zzz` in each kind of mapping.
const PROBES: &[(&str, &str)] = &[
    ("top level", "zzz: 1\n"),
    ("vrrp instance", "vrrp_instances:\n  - zzz: 1\n"),
    (
        "track script",
        "vrrp_instances:\n  - track_scripts:\n      - zzz: 1\n",
    ),
    ("notify", "vrrp_instances:\n  - notify:\n      zzz: 1\n"),
    ("garp", "vrrp_instances:\n  - garp:\n      zzz: 1\n"),
    ("sync group", "vrrp_sync_groups:\n  - zzz: 1\n"),
    ("virtual server", "virtual_servers:\n  - zzz: 1\n"),
    (
        "persistence",
        "virtual_servers:\n  - persistence:\n      zzz: 1\n",
    ),
    ("tunnel", "virtual_servers:\n  - tunnel:\n      zzz: 1\n"),
    ("quorum", "virtual_servers:\n  - quorum:\n      zzz: 1\n"),
    (
        "real server",
        "virtual_servers:\n  - real_servers:\n      - zzz: 1\n",
    ),
    ("check", "virtual_servers:\n  - check:\n      zzz: 1\n"),
    (
        "dns",
        "virtual_servers:\n  - check:\n      dns:\n        zzz: 1\n",
    ),
    (
        "exec",
        "virtual_servers:\n  - check:\n      exec:\n        zzz: 1\n",
    ),
    ("bgp", "bgp:\n  zzz: 1\n"),
];

fn accepted_keys(yaml: &str) -> Vec<String> {
    let errors = parse_str(yaml, "probe.yaml").unwrap_err().into_vec();
    let message = &errors[0].message;
    let list = message
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("unexpected message: {message}"))
        .1;
    list.split(", ").map(|k| k.trim().to_owned()).collect()
}

#[test]
fn config_md_documents_every_key() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/CONFIG.md")).unwrap();
    let documented: BTreeSet<&str> = doc
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`').map(|(key, _)| key))
        .collect();
    let mut missing = Vec::new();
    let mut total = 0;
    for (what, yaml) in PROBES {
        let keys = accepted_keys(yaml);
        assert!(!keys.is_empty(), "{what}");
        for key in keys {
            total += 1;
            if !documented.contains(key.as_str()) {
                missing.push(format!("{what}: `{key}`"));
            }
        }
    }
    assert!(total > 60, "only {total} keys probed");
    assert!(missing.is_empty(), "not in CONFIG.md tables: {missing:?}");
}
