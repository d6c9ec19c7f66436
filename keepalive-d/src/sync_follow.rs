//! The IPVS connection-sync daemon follows a VRRP instance (`sync_daemon` in the
//! configuration, keepalived's `lvs_sync_daemon`): while the instance is Master the
//! kernel's master sync daemon runs (it multicasts the connection table), otherwise the
//! backup one (it receives it), so that a Backup that takes over already knows the
//! connections and keeps them flowing. Without an instance (active-active directors
//! behind ECMP), both run all the time: each director sends its connections and learns
//! the others'.

use ipvs::{AsyncIpvs, SyncDaemon, SyncState};
use tokio::sync::watch;

use crate::StopMode;
use crate::config::SyncDaemonSettings;
use crate::vrrp_io::StatusMap;

/// The sync state for a VRRP state: master only while Master.
pub fn sync_state_for(vrrp: Option<vrrp_proto::State>) -> SyncState {
    match vrrp {
        Some(vrrp_proto::State::Master) => SyncState::Master,
        _ => SyncState::Backup,
    }
}

/// Stops the daemon in `state` if it runs (a daemon that does not run is not an error).
async fn stop(ipvs: &mut AsyncIpvs, state: SyncState) {
    match ipvs.daemons().await {
        Ok(running) if !running.iter().any(|d| d.state() == state) => {}
        _ => {
            if let Err(e) = ipvs.stop_daemon(state).await {
                tracing::warn!("cannot stop the IPVS {} sync daemon: {e}", state.name());
            }
        }
    }
}

/// Moves the kernel's sync daemons to `state`: stops the other one, starts this one.
async fn switch(ipvs: &mut AsyncIpvs, settings: &SyncDaemonSettings, state: SyncState) {
    let other = match state {
        SyncState::Master => SyncState::Backup,
        SyncState::Backup => SyncState::Master,
    };
    stop(ipvs, other).await;
    start(ipvs, settings, state).await;
}

/// Starts the daemon in `state` unless it runs.
async fn start(ipvs: &mut AsyncIpvs, settings: &SyncDaemonSettings, state: SyncState) {
    let running = ipvs.daemons().await.unwrap_or_default();
    if running.iter().any(|d| d.state() == state) {
        return;
    }
    let daemon = match SyncDaemon::new(state, &settings.interface, settings.sync_id) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("sync_daemon: {e}");
            return;
        }
    };
    match ipvs.start_daemon(&daemon).await {
        Ok(()) => tracing::info!(
            instance = settings.instance.as_deref().unwrap_or("(none: active-active)"),
            interface = %settings.interface,
            sync_id = settings.sync_id,
            "IPVS {} sync daemon started",
            state.name()
        ),
        Err(e) => tracing::error!("cannot start the IPVS {} sync daemon: {e}", state.name()),
    }
}

/// Follows `settings.instance` in `vrrp` until `stop` completes; then stops both sync
/// daemons, unless `stop` completes with [`StopMode::Handover`] (they keep running for the
/// next process). Nothing is switched before the instance has a state, so a successor
/// resuming as Master never stops the master sync daemon in between.
pub async fn follow(
    settings: SyncDaemonSettings,
    mut vrrp: watch::Receiver<StatusMap>,
    stop: impl Future<Output = impl Into<StopMode>>,
) {
    let mut ipvs = match AsyncIpvs::open() {
        Ok(i) => i,
        Err(e) => {
            tracing::error!("sync_daemon: cannot open IPVS: {e}");
            return;
        }
    };
    tokio::pin!(stop);
    let Some(instance) = settings.instance.clone() else {
        for state in [SyncState::Master, SyncState::Backup] {
            start(&mut ipvs, &settings, state).await;
        }
        match (&mut stop).await.into() {
            StopMode::Resign => stop_all(&mut ipvs).await,
            StopMode::Handover => {
                tracing::info!("handing over: the IPVS sync daemons keep running")
            }
        }
        return;
    };
    let mut current: Option<SyncState> = None;
    let mode: StopMode = loop {
        let vrrp_state = vrrp.borrow().get(&instance).map(|s| s.state);
        if let Some(s) = vrrp_state {
            let state = sync_state_for(Some(s));
            if current != Some(state) {
                switch(&mut ipvs, &settings, state).await;
                current = Some(state);
            }
        }
        tokio::select! {
            m = &mut stop => break m.into(),
            r = vrrp.changed() => if r.is_err() { break (&mut stop).await.into(); },
        }
    };
    match mode {
        StopMode::Resign => stop_all(&mut ipvs).await,
        StopMode::Handover => tracing::info!("handing over: the IPVS sync daemons keep running"),
    }
}

async fn stop_all(ipvs: &mut AsyncIpvs) {
    for state in [SyncState::Master, SyncState::Backup] {
        stop(ipvs, state).await;
    }
    tracing::info!("IPVS sync daemons stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_only_while_master() {
        assert_eq!(
            sync_state_for(Some(vrrp_proto::State::Master)),
            SyncState::Master
        );
        for s in [
            vrrp_proto::State::Backup,
            vrrp_proto::State::Fault,
            vrrp_proto::State::Initialize,
        ] {
            assert_eq!(sync_state_for(Some(s)), SyncState::Backup);
        }
        assert_eq!(sync_state_for(None), SyncState::Backup);
    }
}
