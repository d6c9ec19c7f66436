//! `keepalive-d`: a keepalived replacement — VRRP failover, health checks and IPVS tables
//! from one YAML file.
//!
//! The library holds what the binary is made of, so that it can be tested and reused:
//! for now, the [`config`] module (parsing and validation of the configuration file).

pub mod config;
pub mod control;
pub mod daemon;
pub mod health;
pub mod lvs;
pub mod metrics;
pub mod script_security;
pub mod sd_notify;
pub mod sync_follow;
pub mod vrrp_io;
