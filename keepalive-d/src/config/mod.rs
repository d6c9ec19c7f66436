//! The keepalive-d configuration file: YAML with two sections, `vrrp_instances` (with
//! `vrrp_sync_groups`) and `virtual_servers`.
//!
//! [`load`] reads and validates a file; [`parse_str`] does the same for text already in
//! memory. Both report *every* problem they find, each with file, line and column
//! ([`ConfigErrors`]). The syntax is documented in `CONFIG.md` next to the crate's
//! `Cargo.toml`.
//!
//! ```
//! use keepalive_d::config::{parse_str, Scheduler};
//!
//! let yaml = "
//! virtual_servers:
//!   - name: web
//!     vip: 192.0.2.10:80
//!     scheduler: wrr
//!     real_servers:
//!       - { address: 10.0.0.11:80, weight: 100 }
//! ";
//! let config = parse_str(yaml, "example.yaml").unwrap();
//! assert_eq!(config.virtual_servers[0].scheduler, Scheduler::Wrr);
//!
//! let errors = parse_str("virtual_servers:\n  - name: web\n    vipp: 1\n", "bad.yaml").unwrap_err();
//! assert!(errors.to_string().starts_with("bad.yaml:3:5: unknown field `vipp`"));
//! ```

mod duration;
mod error;
mod raw;
mod types;
mod validate;

use std::borrow::Cow;
use std::io::Read;
use std::path::Path;

use serde_saphyr::MessageFormatter;

pub use duration::{DurationError, format_duration, parse_duration};
pub use error::{ConfigError, ConfigErrors, Position};
pub use types::*;

/// Largest configuration file accepted, in bytes.
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// Most YAML nodes (mappings, lists and values) a configuration may hold: one per 4 bytes
/// of the largest file. 10,000 virtual servers with 10 real servers each are about
/// 650,000.
pub const MAX_YAML_NODES: usize = (MAX_CONFIG_BYTES / 4) as usize;

/// Reads, parses and validates the configuration file at `path`, and checks on the file
/// system that every program it names is safe to run as root
/// ([`crate::script_security`]).
///
/// Errors name the file as `path` is displayed.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let whole_file = |message: String| {
        ConfigErrors::new(vec![ConfigError {
            file: file.clone(),
            position: None,
            message,
        }])
    };
    let handle = std::fs::File::open(path).map_err(|e| whole_file(format!("cannot open: {e}")))?;
    let mut bytes = Vec::new();
    handle
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| whole_file(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(whole_file(format!(
            "file is larger than {MAX_CONFIG_BYTES} bytes"
        )));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        whole_file(format!(
            "not valid UTF-8 (first bad byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    parse(&text, &file, true)
}

/// Parses and validates configuration text; `file` is the name used in errors.
///
/// This does not read the file system: the programs the text names are not checked
/// ([`load`] does).
pub fn parse_str(source: &str, file: &str) -> Result<Config, ConfigErrors> {
    parse(source, file, false)
}

/// [`parse_str`], checking the programs named when `check_programs` is set.
fn parse(source: &str, file: &str, check_programs: bool) -> Result<Config, ConfigErrors> {
    let options = serde_saphyr::options! {
        // `yes`/`on` are not booleans here: `preempt: yes` is an error, not a surprise.
        strict_booleans: true,
        with_snippet: false,
        // The file is at most MAX_CONFIG_BYTES: that bounds the work, so the node and event
        // counts need not (serde-saphyr's defaults, 250,000 nodes and 1,000,000 events,
        // refuse a table of 10,000 services x 10 real servers: about 650,000 nodes). The
        // alias and anchor limits, which bound expansion beyond the text, stay.
        budget: serde_saphyr::budget! {
            max_nodes: MAX_YAML_NODES,
            max_events: 2 * MAX_YAML_NODES,
        },
    };
    let raw: raw::S<raw::RawConfig> = serde_saphyr::from_str_with_options(source, options)
        .map_err(|e| ConfigErrors::new(vec![syntax_error(&e, file, source)]))?;
    validate::validate(&raw, file, check_programs)
}

/// Converts a serde-saphyr error into a [`ConfigError`].
fn syntax_error(error: &serde_saphyr::Error, file: &str, source: &str) -> ConfigError {
    let error = error.without_snippet();
    let position = error.location().and_then(|loc| {
        (loc.line() > 0).then(|| Position {
            line: loc.line(),
            column: loc.column(),
        })
    });
    let message: Cow<'_, str> = match error {
        serde_saphyr::Error::Unexpected { expected, .. } => match *expected {
            "string scalar" if position.is_some_and(|p| looks_like_bracketed_ipv6(source, p)) => {
                "expected a single value, found a list: an IPv6 address with a port must be \
                 quoted, e.g. \"[2001:db8::10]:80\""
                    .into()
            }
            "string scalar" => {
                "expected a single value (string or number), found a list or mapping".into()
            }
            "mapping start" => "expected a mapping (`key: value` entries)".into(),
            "sequence start" => "expected a list (`[a, b]` or lines starting with `- `)".into(),
            _ => serde_saphyr::UserMessageFormatter.format_message(error),
        },
        _ => serde_saphyr::UserMessageFormatter.format_message(error),
    };
    ConfigError {
        file: file.to_owned(),
        position,
        message: sanitize(&message),
    }
}

/// Escapes control characters so that a message stays on one line.
pub(crate) fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether the text at `at` looks like an unquoted `[IPv6]:port`, which YAML reads as a list.
fn looks_like_bracketed_ipv6(source: &str, at: Position) -> bool {
    let Some(line) = usize::try_from(at.line)
        .ok()
        .and_then(|n| source.lines().nth(n.saturating_sub(1)))
    else {
        return false;
    };
    let skip = usize::try_from(at.column)
        .unwrap_or(usize::MAX)
        .saturating_sub(1);
    let rest: String = line.chars().skip(skip).collect();
    rest.strip_prefix('[')
        .and_then(|r| r.split_once("]:"))
        .is_some_and(|(inside, _)| {
            inside.contains(':')
                && inside
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        })
}

#[cfg(test)]
mod tests;
