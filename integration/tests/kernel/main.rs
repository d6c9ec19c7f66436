//! Kernel tests: they need a kernel with IPVS and root, and run inside the lab VM
//! (`cargo lab test`) or on a real director box (`cargo lab test --native`).
//! Every test works in a fresh network namespace.

// Test code: helpers may unwrap and panic (the workspace lints are for library code).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_ipvs;
mod daemon_lb;
mod daemon_lvs;
mod daemon_pair;
mod daemon_reload;
mod daemon_status;
mod daemon_sync;
mod example_db_replicas;
mod example_dns;
mod example_ecmp_bgp;
mod example_monitoring;
mod example_storage_failover;
mod example_web_farm_dr;
mod ipvs_api;
mod ipvs_traffic;
mod lab_ipvsadm;
mod lb_traffic;
mod sys_matrix;
mod sys_transport;
