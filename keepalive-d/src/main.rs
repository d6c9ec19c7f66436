//! `keepalive-d`: the keepalived replacement daemon (command-line entry point).
//!
//! ```text
//! keepalive-d check --config FILE   validate FILE; exit 0 if valid, 1 if not
//! keepalive-d run --config FILE     run the daemon (not implemented yet: exits 2)
//! keepalive-d --version
//! ```
//!
//! Logs go to stderr; `RUST_LOG` (e.g. `RUST_LOG=debug`) sets the level (default `info`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use keepalive_d::config::{self, Config};
use tracing_subscriber::EnvFilter;

/// Default configuration file.
const DEFAULT_CONFIG: &str = "/etc/keepalive-d/keepalive-d.yaml";

/// A keepalived replacement: VRRP failover, health checks and IPVS tables from YAML.
#[derive(Debug, Parser)]
#[command(name = "keepalive-d", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a configuration file and exit: 0 if valid, 1 if not (every error is printed).
    Check {
        /// The configuration file.
        #[arg(long, short = 'c', value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Run the daemon with a configuration file (not implemented yet: validates, then exits 2).
    Run {
        /// The configuration file.
        #[arg(long, short = 'c', value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

/// Exit status for an invalid configuration.
const EXIT_INVALID: u8 = 1;
/// Exit status for a feature that does not exist yet.
const EXIT_NOT_IMPLEMENTED: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
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
        Command::Run { config } => match load(&config) {
            Ok(_) => {
                tracing::error!(
                    config = %config.display(),
                    "the configuration is valid, but `keepalive-d run` is not implemented yet: \
                     the daemon (VRRP, health checks, IPVS programming) is still being written"
                );
                ExitCode::from(EXIT_NOT_IMPLEMENTED)
            }
            Err(code) => code,
        },
    }
}

/// Loads `path`, printing every error to stderr on failure.
fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    tracing::debug!(config = %path.display(), "loading configuration");
    config::load(path).map_err(|errors| {
        for error in errors.errors() {
            eprintln!("{error}");
        }
        let count = errors.errors().len();
        tracing::debug!(errors = count, "configuration rejected");
        ExitCode::from(EXIT_INVALID)
    })
}

fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
