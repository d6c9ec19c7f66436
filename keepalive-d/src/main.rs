//! `keepalive-d`: the keepalived replacement daemon (command-line entry point).
//!
//! ```text
//! keepalive-d check --config FILE   validate FILE; exit 0 if valid, 1 if not
//! keepalive-d run --config FILE     run VRRP and the virtual servers until SIGTERM/SIGINT
//! keepalive-d ipvs list [--stats|--rate|--json]   the IPVS table, as `ipvsadm -L -n`
//! keepalive-d ipvs save                            `ipvsadm -S -n`
//! keepalive-d ipvs restore [--dry-run] < FILE      `ipvsadm -R`, as one batched reconcile
//! keepalive-d ipvs zero                            `ipvsadm -Z`
//! keepalive-d ipvs flush                           `ipvsadm -C`
//! keepalive-d status [--json]       the running daemon's VRRP instances and virtual servers
//! keepalive-d status --watch [--interval 1s] [--count N]   the same, refreshed like `top`
//! keepalive-d reload                reload the running daemon's configuration
//! keepalive-d drain SERVICE ADDR    weight 0 for a real server until `undrain`
//! keepalive-d undrain SERVICE ADDR
//! keepalive-d --version
//! ```
//!
//! Logs go to stderr; `RUST_LOG` (e.g. `RUST_LOG=debug`) sets the level (default `info`).
//! `--log-format json` (any command) writes them as one JSON object per line, errors
//! included.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use keepalive_d::StopMode;
use keepalive_d::config::{self, Config};
use keepalive_d::control::{ControlSocket, Request};
use tracing_subscriber::EnvFilter;

mod ipvs_cli;

/// Default configuration file.
const DEFAULT_CONFIG: &str = "/etc/keepalive-d/keepalive-d.yaml";

/// A keepalived replacement: VRRP failover, health checks and IPVS tables from YAML.
#[derive(Debug, Parser)]
#[command(name = "keepalive-d", version, about)]
struct Cli {
    /// Log format on stderr: `text`, or `json` (one JSON object per line with `timestamp`,
    /// `level`, `target`, `message` and the event's fields; errors are events too).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

/// Whether the logs are JSON: errors then go out as log events, so every line on stderr
/// is JSON.
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prints an error for the user on stderr: a line of text, or an `ERROR` event with
/// `--log-format json`.
fn print_error(text: &str) {
    if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::error!("{text}");
    } else {
        eprintln!("{text}");
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a configuration file and exit: 0 if valid, 1 if not (every error is printed).
    Check {
        /// The configuration file.
        #[arg(long, short = 'c', value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Run the daemon in the foreground until SIGTERM or SIGINT: the VRRP instances and
    /// sync groups, and the virtual servers (health checks and the IPVS table). On stop
    /// every master sends priority 0 and removes its addresses, and the configured
    /// virtual servers are removed (unless `ipvs.on_stop: keep`).
    Run {
        /// The configuration file.
        #[arg(long, short = 'c', value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Where to listen for `status`, `reload`, `drain` and `undrain` (root only).
        #[arg(long, value_name = "PATH", default_value = keepalive_d::control::DEFAULT_SOCKET)]
        control_socket: PathBuf,
        /// Directory of the VRRP state files: a Master killed and restarted before a peer
        /// can have taken over resumes as Master without a failover.
        #[arg(long, value_name = "DIR", default_value = keepalive_d::daemon::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
    },
    /// Read and change the kernel's IPVS table, like ipvsadm.
    #[command(subcommand)]
    Ipvs(IpvsCommand),
    /// Show the running daemon's VRRP instances (state, priority, master, last transition)
    /// and virtual servers (health, last check, configured and kernel weights, IPVS
    /// counters and rates).
    ///
    /// With `--watch`, refresh it every `--interval` like `top`: per virtual server and
    /// real server the health, the configured/kernel weight, active and inactive
    /// connections, connections, packets and bytes per second in and out (the kernel's
    /// rates), and the VRRP states. On a terminal the screen is redrawn in place; otherwise
    /// each refresh is printed after the previous one (`--count N` stops after N).
    Status {
        /// Print the status as a JSON document (stable: fields are only added); with
        /// `--watch`, one compact document per line at each refresh.
        #[arg(long)]
        json: bool,
        /// Refresh until interrupted (Ctrl-C), or `--count` times.
        #[arg(long)]
        watch: bool,
        /// Time between refreshes with `--watch`: 100ms to 1h, e.g. `500ms`, `2s`.
        #[arg(long, value_name = "DURATION", default_value = "1s", requires = "watch", value_parser = parse_interval)]
        interval: std::time::Duration,
        /// Stop after N refreshes (`--watch`); 0 is refused.
        #[arg(long, value_name = "N", requires = "watch", value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
        /// The running daemon's control socket.
        #[arg(long, value_name = "PATH", default_value = keepalive_d::control::DEFAULT_SOCKET)]
        control_socket: PathBuf,
    },
    /// Reload the running daemon's configuration file (like SIGHUP, with the outcome):
    /// exit 0 with a summary, or 1 with every error (the daemon keeps its configuration).
    Reload {
        /// The running daemon's control socket.
        #[arg(long, value_name = "PATH", default_value = keepalive_d::control::DEFAULT_SOCKET)]
        control_socket: PathBuf,
    },
    /// Drain a real server: weight 0 in the kernel (established connections go on, new
    /// ones go elsewhere) until `undrain`; survives reloads.
    Drain {
        /// The virtual server's name.
        service: String,
        /// The real server's address, e.g. 10.0.0.11:80.
        address: std::net::SocketAddr,
        /// The running daemon's control socket.
        #[arg(long, value_name = "PATH", default_value = keepalive_d::control::DEFAULT_SOCKET)]
        control_socket: PathBuf,
    },
    /// Give a drained real server its configured weight back.
    Undrain {
        /// The virtual server's name.
        service: String,
        /// The real server's address.
        address: std::net::SocketAddr,
        /// The running daemon's control socket.
        #[arg(long, value_name = "PATH", default_value = keepalive_d::control::DEFAULT_SOCKET)]
        control_socket: PathBuf,
    },
    /// Drain this director (`announce: bgp`): withdraw every announced address, then wait
    /// until their established connections have finished, or no packet came for
    /// `--quiet` (exit 0), at most `--timeout` (exit 1). It stays drained until
    /// `undrain-director` or a restart.
    DrainDirector {
        /// How long to wait for the established connections (e.g. 30s, 5m).
        #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_interval_any)]
        timeout: std::time::Duration,
        /// Drained once no packet arrived for the withdrawn addresses for this long (at
        /// least 3s: the kernel brings its packet counters up to date every 2 s).
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_quiet)]
        quiet: std::time::Duration,
        /// The running daemon's control socket.
        #[arg(long, value_name = "PATH", default_value = keepalive_d::control::DEFAULT_SOCKET)]
        control_socket: PathBuf,
    },
    /// Announce again after `drain-director`.
    UndrainDirector {
        /// The running daemon's control socket.
        #[arg(long, value_name = "PATH", default_value = keepalive_d::control::DEFAULT_SOCKET)]
        control_socket: PathBuf,
    },
}

/// `keepalive-d ipvs ...`: ipvsadm's everyday commands.
#[derive(Debug, Subcommand)]
enum IpvsCommand {
    /// Print the table like `ipvsadm -L -n`.
    List {
        /// Counters, like `ipvsadm -L -n --stats`.
        #[arg(long, conflicts_with_all = ["rate", "json"])]
        stats: bool,
        /// Rates, like `ipvsadm -L -n --rate`.
        #[arg(long, conflicts_with = "json")]
        rate: bool,
        /// The table with its counters as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the table in the `ipvsadm -S -n` format.
    Save,
    /// Read the `ipvsadm -S` format on stdin and add it to the table in one batch, like
    /// `ipvsadm -R` (other services are left alone).
    Restore {
        /// Print the operations instead of applying them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Zero every counter, like `ipvsadm -Z`.
    Zero,
    /// Delete every service, like `ipvsadm -C`.
    Flush,
}

/// Exit status for an invalid configuration.
const EXIT_INVALID: u8 = 1;
/// Exit status when the daemon fails at run time.
const EXIT_FAILED: u8 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Check { config } => match load(&config) {
            Ok(parsed) => {
                println!(
                    "{}: OK ({} vrrp instances, {} virtual servers, {} real servers)",
                    config.display(),
                    parsed.vrrp_instances.len(),
                    parsed.virtual_servers.len(),
                    parsed.real_server_count()
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run {
            config,
            control_socket,
            state_dir,
        } => match load(&config) {
            Ok(parsed) => run(&config, &parsed, &control_socket, &state_dir),
            Err(code) => code,
        },
        Command::Status {
            json,
            watch: true,
            interval,
            count,
            control_socket,
        } => keepalive_d::watch::watch(
            &control_socket,
            keepalive_d::watch::WatchOptions {
                interval,
                count,
                json,
                tty: std::io::stdout().is_terminal(),
            },
        ),
        Command::Status {
            json,
            control_socket,
            ..
        } => client(&control_socket, &Request::Status, json),
        Command::Reload { control_socket } => client(&control_socket, &Request::Reload, false),
        Command::Drain {
            service,
            address,
            control_socket,
        } => client(&control_socket, &Request::Drain { service, address }, false),
        Command::Undrain {
            service,
            address,
            control_socket,
        } => client(
            &control_socket,
            &Request::Undrain { service, address },
            false,
        ),
        Command::DrainDirector {
            timeout,
            quiet,
            control_socket,
        } => finish(keepalive_d::control::drain_director(
            &control_socket,
            keepalive_d::control::DirectorDrain {
                timeout,
                quiet,
                poll: std::time::Duration::from_millis(500),
            },
        )),
        Command::UndrainDirector { control_socket } => {
            client(&control_socket, &Request::UndrainDirector, false)
        }
        Command::Ipvs(cmd) => match ipvs_cli::run(&cmd) {
            Ok(code) => code,
            Err(e) => {
                print_error(&format!("keepalive-d: {e}"));
                ExitCode::from(EXIT_FAILED)
            }
        },
    }
}

/// `--interval`: a duration of the configuration's syntax, 100ms to 1h.
fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    keepalive_d::watch::parse_interval(s).map_err(|e| e.to_string())
}

/// A duration in the configuration's syntax (`30s`, `5m`), at least 1s.
fn parse_interval_any(s: &str) -> Result<std::time::Duration, String> {
    let d = keepalive_d::config::parse_duration(s).map_err(|e| e.to_string())?;
    if d < std::time::Duration::from_secs(1) {
        return Err("must be at least 1s".to_owned());
    }
    Ok(d)
}

/// `drain-director --quiet`: a duration of at least 3s.
fn parse_quiet(s: &str) -> Result<std::time::Duration, String> {
    let d = parse_interval_any(s)?;
    if d < std::time::Duration::from_secs(3) {
        return Err("must be at least 3s (the kernel updates its counters every 2 s)".to_owned());
    }
    Ok(d)
}

/// Sends `request` to the daemon on `socket`, prints the outcome; exit 0 or 1.
fn client(socket: &std::path::Path, request: &Request, json: bool) -> ExitCode {
    finish(keepalive_d::control::run_client(socket, request, json))
}

/// Prints a client command's outcome; exit 0 or 1.
fn finish(outcome: keepalive_d::control::ClientOutcome) -> ExitCode {
    print!("{}", outcome.stdout);
    for line in &outcome.stderr {
        print_error(line);
    }
    if outcome.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}

/// Loads `path`, printing every error to stderr on failure.
fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    tracing::debug!(config = %path.display(), "loading configuration");
    config::load(path).map_err(|errors| {
        for error in errors.errors() {
            print_error(&error.to_string());
        }
        let count = errors.errors().len();
        tracing::debug!(errors = count, "configuration rejected");
        ExitCode::from(EXIT_INVALID)
    })
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => {
            JSON_LOGS.store(true, std::sync::atomic::Ordering::Relaxed);
            // `message` and the event's fields at the top level, not under `fields`.
            builder.json().flatten_event(true).with_ansi(false).init();
        }
    }
}

/// Runs the VRRP instances and the virtual servers of `cfg` until SIGTERM or SIGINT, or
/// until SIGUSR2 hands over to a new process of the (possibly upgraded) binary.
fn run(
    path: &std::path::Path,
    cfg: &Config,
    control_socket: &std::path::Path,
    state_dir: &std::path::Path,
) -> ExitCode {
    // The binary's path now: after a package upgrade replaced the file, SIGUSR2 runs the
    // new one from here (`/proc/self/exe` would name the deleted old one).
    let exe = std::env::current_exe().ok();
    // Before anything runs: another daemon on the socket, or the metrics port taken, stop
    // this one here.
    let socket = match ControlSocket::bind(control_socket) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let metrics = match cfg.metrics {
        Some(m) => match keepalive_d::metrics::MetricsListener::bind(m.listen) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::from(EXIT_FAILED);
            }
        },
        None => None,
    };
    let on_ready = |control| {
        let ctx = std::sync::Arc::new(keepalive_d::control::Context::new(control));
        if let Err(e) = socket.spawn(ctx.clone()) {
            tracing::error!("{e}");
        }
        if let Some(m) = metrics {
            if let Err(e) = m.spawn(ctx) {
                tracing::error!("{e}");
            }
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    tracing::info!(
        config = %path.display(),
        vrrp_instances = cfg.vrrp_instances.len(),
        virtual_servers = cfg.virtual_servers.len(),
        "running"
    );
    let mode = std::cell::Cell::new(StopMode::Resign);
    let result = runtime.block_on(async {
        let stop = match stop_signal(exe.as_deref(), path) {
            Ok(stop) => stop,
            Err(e) => return Err(format!("cannot catch SIGTERM/SIGINT/SIGUSR2: {e}")),
        };
        let stop = async {
            let m = stop.await;
            mode.set(m);
            m
        };
        keepalive_d::daemon::run(path, cfg.clone(), Some(state_dir), stop, on_ready).await
    });
    drop(runtime);
    drop(socket);
    match result {
        Ok(()) if mode.get() == StopMode::Handover => match exe {
            Some(exe) => {
                use std::os::unix::process::CommandExt;
                tracing::info!(exe = %exe.display(), "handing over: executing the new process");
                // Same PID (systemd keeps following it); every descriptor is close-on-exec.
                let e = std::process::Command::new(&exe)
                    .args(std::env::args_os().skip(1))
                    .exec();
                tracing::error!(
                    exe = %exe.display(),
                    "cannot execute the new process ({e}); the addresses and the IPVS table stay as they are"
                );
                ExitCode::from(EXIT_FAILED)
            }
            None => ExitCode::from(EXIT_FAILED),
        },
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Completes on the first SIGTERM or SIGINT ([`StopMode::Resign`]), or on a SIGUSR2 whose
/// successor passes `EXE check -c CONFIG` ([`StopMode::Handover`]); a SIGUSR2 whose
/// successor fails the check is refused (logged) and the daemon runs on.
fn stop_signal(
    exe: Option<&std::path::Path>,
    config: &std::path::Path,
) -> std::io::Result<impl Future<Output = StopMode>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    let exe = exe.map(std::path::Path::to_path_buf);
    let config = config.to_path_buf();
    Ok(async move {
        loop {
            tokio::select! {
                _ = term.recv() => {
                    tracing::info!("SIGTERM: stopping");
                    return StopMode::Resign;
                }
                _ = int.recv() => {
                    tracing::info!("SIGINT: stopping");
                    return StopMode::Resign;
                }
                _ = usr2.recv() => match check_successor(exe.as_deref(), &config).await {
                    Ok(()) => {
                        tracing::info!("SIGUSR2: handing over to a new process");
                        return StopMode::Handover;
                    }
                    Err(e) => tracing::error!("SIGUSR2: hand-over refused, still running: {e}"),
                },
            }
        }
    })
}

/// Runs `EXE check -c CONFIG` (the binary that will take over, with the file it will read).
async fn check_successor(
    exe: Option<&std::path::Path>,
    config: &std::path::Path,
) -> Result<(), String> {
    let exe = exe.ok_or("the path of the running binary is unknown")?;
    let out = tokio::process::Command::new(exe)
        .arg("check")
        .arg("-c")
        .arg(config)
        .output()
        .await
        .map_err(|e| format!("{} check: {e}", exe.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{} check -c {}` failed:\n{}{}",
            exe.display(),
            config.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
