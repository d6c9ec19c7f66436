//! `examples/monitoring/grafana-dashboard.json` queries only metrics that exist: every
//! PromQL expression of every panel and variable names only series that `METRICS.md`
//! documents. (`integration/tests/kernel/example_monitoring.rs` checks the same names
//! against a scrape of a running daemon: they are the ones it produces.) The dashboard's layout is sane too: unique panel ids, every
//! query on the dashboard's data source variable, panels within Grafana's 24 columns.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;

use ipvs_integration::dashboard::{self, documented_series};

fn file(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dashboard_json() -> serde_json::Value {
    serde_json::from_str(&file("../examples/monitoring/grafana-dashboard.json")).unwrap()
}

#[test]
fn every_query_names_documented_metrics() {
    let known = documented_series(&file("METRICS.md"));
    assert!(
        known.len() > 30,
        "only {} series in METRICS.md",
        known.len()
    );
    let used = dashboard::check(&dashboard_json(), &known)
        .unwrap_or_else(|problems| panic!("dashboard problems:\n{}", problems.join("\n")));
    // The dashboard covers each part: VRRP, health, IPVS traffic, the daemon.
    for family in [
        "keepalive_d_vrrp_state",
        "keepalive_d_real_server_up",
        "keepalive_d_check_probes_total",
        "keepalive_d_ipvs_destination_connections_total",
        "keepalive_d_ipvs_destination_bytes_total",
        "keepalive_d_ipvs_destination_active_connections",
        "keepalive_d_ipvs_up",
    ] {
        assert!(
            used.contains(family),
            "the dashboard does not show {family}"
        );
    }
}

#[test]
fn layout_is_importable() {
    let d = dashboard_json();
    assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty()));
    assert!(
        d["title"]
            .as_str()
            .is_some_and(|t| t.contains("keepalive-d"))
    );
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(vars, ["datasource", "director", "service", "server"]);
    let mut ids = BTreeSet::new();
    let mut panels = 0;
    for p in d["panels"].as_array().unwrap() {
        let id = p["id"].as_u64().unwrap();
        assert!(ids.insert(id), "panel id {id} twice");
        let g = &p["gridPos"];
        let (x, w) = (g["x"].as_u64().unwrap(), g["w"].as_u64().unwrap());
        assert!(x + w <= 24, "panel {id} is wider than the dashboard");
        if p["type"] == "row" {
            continue;
        }
        panels += 1;
        assert_eq!(p["datasource"]["uid"], "${datasource}", "panel {id}");
        assert!(
            !p["description"].as_str().unwrap_or("").is_empty(),
            "panel {id}"
        );
        for t in p["targets"].as_array().unwrap() {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "panel {id}");
        }
    }
    assert!(panels >= 15, "{panels} panels");
}
