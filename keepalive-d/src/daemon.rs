//! `keepalive-d run`: the VRRP instances and the virtual servers on one runtime, with one
//! stop signal, and reload (SIGHUP, or [`Control::reload`]).
//!
//! Reload reads and validates the file first; an invalid file changes nothing (every error
//! is logged with file, line and column, and returned to the caller). A valid one is
//! applied as a difference: see [`crate::lvs::LvsCommand::Reload`] for the virtual
//! servers and [`crate::vrrp_io::run_reloadable`] for the VRRP instances (an unchanged
//! instance or sync group keeps running untouched: no transition, no missed advert; a
//! changed one is restarted).

use std::path::{Path, PathBuf};

use tokio::sync::{mpsc, oneshot, watch};

use crate::StopMode;
use crate::config::{self, Config};
use crate::lvs::{LvsCommand, LvsHandle};
use crate::vrrp_io::{self, StatusMap};

/// A reload request: its reply is a one-line summary, or every error.
pub type ReloadRequest = oneshot::Sender<Result<String, String>>;

/// What a control interface (the status socket, metrics) gets once the daemon runs.
#[derive(Debug, Clone)]
pub struct Control {
    /// The configuration file.
    pub config_path: PathBuf,
    /// The virtual-server program (status, drain, reload), when the configuration has
    /// virtual servers.
    pub lvs: Option<LvsHandle>,
    /// The VRRP instances' status.
    pub vrrp: watch::Receiver<StatusMap>,
    /// Ask for a reload of the configuration file.
    pub reload: mpsc::Sender<ReloadRequest>,
}

impl Control {
    /// Reloads the configuration file; the summary, or why nothing changed.
    pub async fn reload(&self) -> Result<String, String> {
        let (tx, rx) = oneshot::channel();
        self.reload
            .send(tx)
            .await
            .map_err(|_| "the daemon is stopping".to_owned())?;
        rx.await.map_err(|_| "the daemon is stopping".to_owned())?
    }
}

/// The default directory of the VRRP state files ([`vrrp_io::state_file`]).
pub const DEFAULT_STATE_DIR: &str = "/run/keepalive-d";

/// The VRRP instances and sync groups of `cfg`, with their state files in `state_dir`.
fn vrrp_specs(
    cfg: &Config,
    state_dir: Option<&Path>,
) -> (Vec<vrrp_io::InstanceSpec>, Vec<vrrp_io::SyncGroupSpec>) {
    let (mut instances, groups) = vrrp_io::from_config::specs(cfg);
    for i in &mut instances {
        i.state_dir = state_dir.map(Path::to_path_buf);
    }
    (instances, groups)
}

/// Runs `cfg` (read from `path`) until `stop` completes (with `()` or a [`StopMode`]:
/// [`StopMode::Handover`] leaves the addresses, the IPVS table, the sync daemon and the
/// state files to a successor) or a half fails (then as [`StopMode::Resign`]). `on_ready` is
/// called once with the [`Control`] of the running daemon (to start a control socket).
/// VRRP state files go to `state_dir` (see [`vrrp_io::state_file`]; `None`: none, so a
/// restart never resumes as Master).
pub async fn run(
    path: &Path,
    mut cfg: Config,
    state_dir: Option<&Path>,
    stop: impl Future<Output = impl Into<StopMode>>,
    on_ready: impl FnOnce(Control),
) -> Result<(), String> {
    let (instances, groups) = vrrp_specs(&cfg, state_dir);
    // `Some(mode)` once stopping.
    let (stop_tx, stop_rx) = watch::channel(None::<StopMode>);
    let stopped = |mut rx: watch::Receiver<Option<StopMode>>| async move {
        let _ = rx.wait_for(Option::is_some).await;
    };
    let stop_mode = |mut rx: watch::Receiver<Option<StopMode>>| async move {
        match rx.wait_for(Option::is_some).await {
            Ok(m) => m.unwrap_or_default(),
            Err(_) => StopMode::Resign,
        }
    };
    // A half that ends on its own stops the other: as a real stop, unless already stopping.
    let end = |tx: &watch::Sender<Option<StopMode>>| {
        tx.send_if_modified(|m| {
            if m.is_none() {
                *m = Some(StopMode::Resign);
                true
            } else {
                false
            }
        });
    };
    let (status_tx, status_rx) = watch::channel(StatusMap::new());
    let (lvs_handle, lvs_commands) = LvsHandle::new();
    let has_lvs = !cfg.virtual_servers.is_empty();
    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(4);
    let (vrrp_reload_tx, vrrp_reloads) = mpsc::channel::<vrrp_io::VrrpReload>(1);
    let has_vrrp = !instances.is_empty();
    // systemd (Type=notify): READY=1 once every VRRP instance has started and the virtual
    // servers answer (the kernel table adopted), watchdog pings, STOPPING=1.
    let sd = crate::sd_notify::Notifier::from_env();
    let (mut vrrp_started, vrrp_count) = (status_rx.clone(), instances.len());
    let mut vrrp_running = status_rx.clone();
    // The IPVS connection-sync daemon follows its VRRP instance.
    let sync = {
        let settings = cfg.sync_daemon.clone();
        let status = status_rx.clone();
        let stop = stop_mode(stop_rx.clone());
        async move {
            if let Some(settings) = settings {
                crate::sync_follow::follow(settings, status, stop).await;
            }
        }
    };
    let systemd = sd.lifecycle(
        async {
            vrrp_started
                .wait_for(|m| m.len() >= vrrp_count)
                .await
                .is_ok()
                && (!has_lvs || lvs_handle.status().await.is_some())
        },
        crate::sd_notify::watchdog_interval(),
        stopped(stop_rx.clone()),
    );
    on_ready(Control {
        config_path: path.to_path_buf(),
        lvs: has_lvs.then(|| lvs_handle.clone()),
        vrrp: status_rx,
        reload: reload_tx.clone(),
    });

    let vrrp = async {
        if instances.is_empty() {
            return Ok(());
        }
        let r = vrrp_io::run_reloadable(
            instances,
            groups,
            status_tx,
            vrrp_reloads,
            stop_mode(stop_rx.clone()),
        )
        .await
        .map_err(|e| e.to_string());
        end(&stop_tx);
        r
    };
    // The virtual servers live in the LVS task only (one copy: with 100,000 real servers
    // each copy is tens of megabytes); `current` below keeps the rest of the file.
    let servers = std::mem::take(&mut cfg.virtual_servers);
    let settings = cfg.ipvs;
    let bgp = crate::announce::any_announced(&servers).then_some(cfg.bgp);
    let lvs = async {
        if !has_lvs {
            return Ok(());
        }
        // VRRP first: a restarted Master must resume (advertise) before its peers'
        // master-down interval ends, while adopting the IPVS table (a dump of every
        // service) can wait: the kernel keeps forwarding with the table it has. On one
        // thread, the VRRP tasks would otherwise start only after the adoption.
        if has_vrrp {
            tokio::select! {
                _ = vrrp_running.wait_for(|m| m.len() >= vrrp_count) => {}
                () = stopped(stop_rx.clone()) => {}
            }
        }
        let r = crate::lvs::run_announcing(
            servers,
            settings,
            bgp,
            lvs_commands,
            stop_mode(stop_rx.clone()),
        )
        .await
        .map(|c| {
            tracing::info!(
                reconciles = c.reconciles,
                writes = c.writes,
                failed_writes = c.failed_writes,
                drift_repairs = c.drift_repairs,
                "virtual servers stopped"
            );
        })
        .map_err(|e| e.to_string());
        end(&stop_tx);
        r
    };
    let reloads = async {
        let mut current = cfg;
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("cannot catch SIGHUP ({e}): reload only through the control socket");
                None
            }
        };
        loop {
            let reply = tokio::select! {
                _ = stopped(stop_rx.clone()) => break,
                _ = async { match &mut hup { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    tracing::info!("SIGHUP: reloading {}", path.display());
                    None
                }
                r = reload_rx.recv() => match r {
                    Some(r) => Some(r),
                    None => break,
                },
            };
            sd.reloading();
            let result = reload(
                path,
                &mut current,
                has_vrrp.then_some(&vrrp_reload_tx),
                state_dir,
                has_lvs.then_some(&lvs_handle),
            )
            .await;
            match &result {
                Ok(summary) => tracing::info!("reloaded: {summary}"),
                Err(e) => tracing::error!(
                    "reload refused, still running the previous configuration:\n{e}"
                ),
            }
            sd.reloaded(match &result {
                Ok(_) => "running (reloaded)",
                Err(_) => "running the previous configuration (reload refused, see the log)",
            });
            if let Some(reply) = reply {
                let _ = reply.send(result);
            }
        }
    };
    let signal = async {
        tokio::select! {
            m = stop => {
                let m: StopMode = m.into();
                stop_tx.send_if_modified(|cur| {
                    if cur.is_none() {
                        *cur = Some(m);
                        true
                    } else {
                        false
                    }
                });
            }
            _ = stopped(stop_rx.clone()) => {}
        }
    };
    let (v, l, (), (), (), ()) = tokio::join!(vrrp, lvs, reloads, signal, systemd, sync);
    v.and(l)
}

/// Reads, validates and applies the configuration at `path` over `current`.
async fn reload(
    path: &Path,
    current: &mut Config,
    vrrp: Option<&mpsc::Sender<vrrp_io::VrrpReload>>,
    state_dir: Option<&Path>,
    lvs: Option<&LvsHandle>,
) -> Result<String, String> {
    let mut new = config::load(path).map_err(|errors| {
        errors
            .errors()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let mut notes = Vec::new();
    let vrrp_changed = new.vrrp_instances != current.vrrp_instances
        || new.vrrp_sync_groups != current.vrrp_sync_groups;
    let mut vrrp_applied = !vrrp_changed;
    if vrrp_changed {
        match vrrp {
            Some(tx) => {
                let (instances, sync_groups) = vrrp_specs(&new, state_dir);
                let (reply, rx) = oneshot::channel();
                tx.send(vrrp_io::VrrpReload {
                    instances,
                    sync_groups,
                    reply,
                })
                .await
                .map_err(|_| "the VRRP instances have stopped".to_owned())?;
                let report = rx
                    .await
                    .map_err(|_| "the VRRP instances have stopped".to_owned())?
                    .map_err(|e| format!("VRRP: {e} (nothing changed)"))?;
                notes.push(format!(
                    "vrrp: {} kept, {} restarted, {} started, {} stopped",
                    report.kept.len(),
                    report.restarted.len(),
                    report.started.len(),
                    report.stopped.len()
                ));
                vrrp_applied = true;
            }
            None => notes.push(
                "vrrp_instances added to a daemon started without any: restart to apply".to_owned(),
            ),
        }
    }
    match lvs {
        Some(handle) => {
            let (tx, rx) = oneshot::channel();
            handle
                .commands
                .send(LvsCommand::Reload {
                    servers: std::mem::take(&mut new.virtual_servers),
                    settings: new.ipvs,
                    reply: tx,
                })
                .await
                .map_err(|_| "the virtual servers have stopped".to_owned())?;
            let report = rx
                .await
                .map_err(|_| "the virtual servers have stopped".to_owned())??;
            notes.push(format!(
                "virtual servers: {} real servers kept their health, {} checked afresh, {} IPVS writes",
                report.kept, report.fresh, report.writes
            ));
        }
        None if !new.virtual_servers.is_empty() => notes.push(
            "virtual_servers added to a daemon started without any: restart to apply".to_owned(),
        ),
        None => {}
    }
    let running_vrrp = (
        std::mem::take(&mut current.vrrp_instances),
        std::mem::take(&mut current.vrrp_sync_groups),
    );
    *current = new;
    if !vrrp_applied {
        // What runs is still the old VRRP configuration.
        (current.vrrp_instances, current.vrrp_sync_groups) = running_vrrp;
    }
    Ok(if notes.is_empty() {
        "nothing changed".to_owned()
    } else {
        notes.join("; ")
    })
}
