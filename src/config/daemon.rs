//! Stage two for the `[daemon]` table: raw values → [`DaemonConfig`].
//!
//! Bounds, and why:
//! - `workers` 1..=1024: one thread each; more would only contend on 2-64
//!   cores and waste memory on stacks.
//! - `queue_capacity`, `max_connections` 1..=1_000_000: a bound must exist
//!   (that is the point of the setting), and must let at least one through.
//! - `max_line_bytes` 64..=64 MiB: below 64 bytes not even `ping` with an
//!   id fits; above 64 MiB one client could make the daemon hold that much.
//! - `max_output_bytes` 1 KiB..=1 GiB, `history` 0..=100_000, likewise.

use std::time::Duration;

use toml::Spanned;

use super::error::Report;
use super::raw::RawDaemon;
use super::values::{self, at, check_listen, int_in, is_account_name, parse_mode, to};
use super::DaemonConfig;

const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Validates `[daemon]` (absent = all defaults).
pub(crate) fn validate(r: &mut Report<'_>, raw: Option<Spanned<RawDaemon>>) -> DaemonConfig {
    let d = raw.map(Spanned::into_inner).unwrap_or_default();

    let listen = match &d.listen {
        None => Some("127.0.0.1:7070".to_string()),
        Some(v) if v.get_ref().is_empty() => None,
        Some(v) => {
            if let Err(message) = check_listen(v.get_ref()) {
                r.error(at(v), "daemon.listen", message);
            }
            Some(v.get_ref().clone())
        }
    };

    let workers = int_in(r, d.workers.as_ref(), "daemon.workers", 1..=1024, 4);
    let min_workers = match d.min_workers.as_ref() {
        Some(v) if *v.get_ref() > workers && (0..=1024).contains(v.get_ref()) => {
            let message = format!(
                "{} is more than workers ({workers}); expected 0..={workers}",
                v.get_ref()
            );
            r.error(at(v), "daemon.min_workers", message);
            1
        }
        other => int_in(r, other, "daemon.min_workers", 0..=1024, 1),
    };
    let queue_capacity = int_in(
        r,
        d.queue_capacity.as_ref(),
        "daemon.queue_capacity",
        1..=1_000_000,
        1024,
    );
    let max_connections = int_in(
        r,
        d.max_connections.as_ref(),
        "daemon.max_connections",
        1..=1_000_000,
        1024,
    );
    let max_line_bytes = int_in(
        r,
        d.max_line_bytes.as_ref(),
        "daemon.max_line_bytes",
        64..=64 << 20,
        65536,
    );
    let history = int_in(r, d.history.as_ref(), "daemon.history", 0..=100_000, 50);
    let log_level = values::choice(
        r,
        d.log_level.as_ref(),
        "daemon.log_level",
        &LOG_LEVELS,
        "info",
    );
    let shutdown_grace = values::duration(
        r,
        d.shutdown_grace.as_ref(),
        "daemon.shutdown_grace",
        Duration::from_secs(10),
        false,
    );
    let max_output_bytes = int_in(
        r,
        d.max_output_bytes.as_ref(),
        "daemon.max_output_bytes",
        1024..=1 << 30,
        1 << 20,
    );
    let idle_timeout = values::duration(
        r,
        d.idle_timeout.as_ref(),
        "daemon.idle_timeout",
        Duration::from_secs(300),
        false,
    );

    let config = DaemonConfig {
        listen,
        unix_socket: values::optional_path(r, d.unix_socket.as_ref(), "daemon.unix_socket"),
        workers: to(workers),
        min_workers: to(min_workers),
        queue_capacity: to(queue_capacity),
        max_connections: to(max_connections),
        max_line_bytes: to(max_line_bytes),
        state_dir: values::optional_path(r, d.state_dir.as_ref(), "daemon.state_dir"),
        history: to(history),
        log_level: log_level.to_string(),
        shutdown_grace,
        auth_token: auth_token(r, &d),
        auth_token_file: values::optional_path(
            r,
            d.auth_token_file.as_ref(),
            "daemon.auth_token_file",
        ),
        allow_submit: d.allow_submit.as_ref().is_some_and(|v| *v.get_ref()),
        file_threads: to(int_in(
            r,
            d.file_threads.as_ref(),
            "daemon.file_threads",
            1..=256,
            2,
        )),
        unix_socket_mode: socket_mode(r, &d),
        max_output_bytes: to(max_output_bytes),
        idle_timeout: Some(idle_timeout).filter(|t| !t.is_zero()),
        log_file: values::optional_path(r, d.log_file.as_ref(), "daemon.log_file"),
        syslog: d.syslog.as_ref().is_some_and(|v| *v.get_ref()),
        user: account(r, d.user.as_ref(), "daemon.user"),
        group: account(r, d.group.as_ref(), "daemon.group"),
    };
    if let (Some(_), Some(file)) = (&config.auth_token, &d.auth_token_file) {
        if !file.get_ref().is_empty() {
            let message = "set only one of auth_token and auth_token_file";
            r.error(at(file), "daemon.auth_token_file", message);
        }
    }
    if let (None, Some(group)) = (&config.user, &d.group) {
        if config.group.is_some() {
            let message =
                "ignored without daemon.user (the group is only used for the privilege drop)";
            r.warn(at(group), "daemon.group", message);
        }
    }
    warn_unbuilt(r, &d, &config);
    config
}

/// `auth_token`: `""` = none; otherwise printable, no whitespace (it is
/// sent in a JSON string and an HTTP header).
fn auth_token(r: &mut Report<'_>, d: &RawDaemon) -> Option<String> {
    let token = values::optional_text(r, d.auth_token.as_ref(), "daemon.auth_token")?;
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        if let Some(v) = &d.auth_token {
            let message = "must not contain whitespace or control characters";
            r.error(at(v), "daemon.auth_token", message);
        }
    }
    Some(token)
}

/// `unix_socket_mode`: octal string, default `"0600"`.
fn socket_mode(r: &mut Report<'_>, d: &RawDaemon) -> u32 {
    let Some(v) = &d.unix_socket_mode else {
        return 0o600;
    };
    parse_mode(v.get_ref()).unwrap_or_else(|message| {
        r.error(at(v), "daemon.unix_socket_mode", message);
        0o600
    })
}

/// `user` / `group`: `""` = none; otherwise a plausible account name.
fn account(r: &mut Report<'_>, value: Option<&Spanned<String>>, key: &str) -> Option<String> {
    let name = values::optional_text(r, value, key)?;
    if !is_account_name(&name) {
        if let Some(v) = value {
            let message = format!("\"{name}\" is not a valid user or group name");
            r.error(at(v), key, message);
        }
    }
    Some(name)
}

/// Warns about keys set to a non-default value whose feature is not built
/// in this version.
fn warn_unbuilt(r: &mut Report<'_>, d: &RawDaemon, c: &DaemonConfig) {
    let checks: [(Option<usize>, bool, &str); 4] = [
        (
            d.unix_socket.as_ref().map(at),
            c.unix_socket.is_some(),
            "daemon.unix_socket",
        ),
        (
            d.auth_token.as_ref().map(at),
            c.auth_token.is_some(),
            "daemon.auth_token",
        ),
        (
            d.auth_token_file.as_ref().map(at),
            c.auth_token_file.is_some(),
            "daemon.auth_token_file",
        ),
        (
            d.unix_socket_mode.as_ref().map(at),
            c.unix_socket_mode != 0o600,
            "daemon.unix_socket_mode",
        ),
    ];
    for (offset, changed, key) in checks {
        if let (Some(offset), true) = (offset, changed) {
            r.not_yet(offset, key);
        }
    }
}
