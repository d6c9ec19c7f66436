//! `keepalive-d`: a keepalived replacement — VRRP failover, health checks and IPVS tables
//! from one YAML file.
//!
//! The library holds what the binary is made of, so that it can be tested and reused:
//! for now, the [`config`] module (parsing and validation of the configuration file).

pub mod announce;
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
pub mod watch;

/// How the daemon stops: what it leaves behind for whoever comes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StopMode {
    /// A real stop (SIGTERM): each Master sends priority 0 so that a Backup takes over at
    /// once and removes its virtual addresses, the VRRP state files are removed, the sync
    /// daemon stops, and the IPVS table is removed (unless `ipvs.on_stop: keep`).
    #[default]
    Resign,
    /// A hand-over to the next process of the same daemon (an upgrade by re-exec, SIGUSR2):
    /// nothing is given up. The virtual addresses, the IPVS table and the sync daemon stay
    /// as they are, no priority-0 advert and no stop command runs, and the state files stay,
    /// so a successor started before a peer can have taken over resumes as Master without
    /// a failover.
    Handover,
}

/// A stop future that completes with `()` is a [`StopMode::Resign`].
impl From<()> for StopMode {
    fn from((): ()) -> Self {
        Self::Resign
    }
}
