//! Kernel tests for the IPVS control plane, and the kernel lab that runs them.
//!
//! - [`lab`]: boots a real Linux kernel with IPVS under QEMU (`cargo lab ...`).
//! - [`bird`]: BIRD 2 in a test namespace (the BGP/ECMP tests).
//! - [`daemon`]: a `keepalive-d run` process in a test namespace.
//! - [`dashboard`]: checks a Grafana dashboard's PromQL against the metrics keepalive-d
//!   documents or exposes.
//! - [`netns`]: fresh network namespaces for tests, removed when dropped.
//! - [`bench`]: what the side-by-side benchmarks share (the daemons, their processes).
//! - [`lb_lab`]: the LVS NAT, DR and TUN layouts in namespaces, with real backends and a
//!   client, for traffic tests.
//! - [`vrrp_bench`]: VRRP failover of keepalived and keepalive-d measured on the wire.

pub mod bench;
pub mod bird;
pub mod daemon;
pub mod dashboard;
pub mod lab;
pub mod lb_lab;
pub mod listener;
pub mod netns;
pub mod nlmon;
pub mod vrrp_bench;
