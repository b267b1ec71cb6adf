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
//!
//! `auth_token_file` is read here, at load (and so at every reload and by
//! `tickd check`): a file that its group or others may read is refused,
//! because a token anyone on the host can read protects nothing. Either key
//! ends up as [`LiveSettings::auth_token`], an [`AuthToken`] whose `Debug`
//! never shows the secret. After a privilege drop (`daemon.user`) the
//! daemon usually may no longer read a root-owned 0600 file: a reload that
//! meets "permission denied" on the same path it read before keeps the
//! token read then, with a warning, instead of failing every reload (see
//! [`read_token_file`]).
//!
//! The daemon's paths (`state_dir`, `log_file`, `unix_socket`,
//! `auth_token_file`) are made absolute here, against the directory tickd
//! was started in ([`start_dir`]): `--daemonize` moves to `/` before any
//! reload, and a reload must find the same files as the start did.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use parking_lot::Mutex;

use toml::Spanned;

use super::error::Report;
use super::raw::RawDaemon;
use super::values::{self, at, check_listen, int_in, is_account_name, parse_mode, to};
use super::{DaemonConfig, LiveSettings, StartSettings};
use crate::auth::{AuthToken, NamedToken, Role, Tokens, LEGACY_NAME};

const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Validates `[daemon]` (absent = all defaults).
pub(crate) fn validate(r: &mut Report<'_>, d: RawDaemon) -> DaemonConfig {
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

    // The order of these calls is the order in which problems found on
    // one line (an inline table) are reported: keep it.
    let unix_socket = values::optional_path(r, d.unix_socket.as_ref(), "daemon.unix_socket");
    let state_dir = values::optional_path(r, d.state_dir.as_ref(), "daemon.state_dir");
    let auth_token = auth_token(r, &d);
    let auth_token_file =
        values::optional_path(r, d.auth_token_file.as_ref(), "daemon.auth_token_file");
    let allow_submit = d.allow_submit.as_ref().is_some_and(|v| *v.get_ref());
    let allow_job_api = d.allow_job_api.as_ref().is_some_and(|v| *v.get_ref());
    let file_threads = to(int_in(
        r,
        d.file_threads.as_ref(),
        "daemon.file_threads",
        1..=256,
        2,
    ));
    let unix_socket_mode = socket_mode(r, &d);
    let log_file = values::optional_path(r, d.log_file.as_ref(), "daemon.log_file");
    let syslog = d.syslog.as_ref().is_some_and(|v| *v.get_ref());
    let user = account(r, d.user.as_ref(), "daemon.user");
    let group = account(r, d.group.as_ref(), "daemon.group");
    let metrics_per_job = d.metrics_per_job.as_ref().is_none_or(|v| *v.get_ref());
    let tls = super::tls::validate(r, &d, absolute);
    let http_allowed_hosts = allowed_hosts(r, &d);
    if let (Some(_), None, Some(v)) = (&tls, &listen, &d.tls_cert) {
        r.warn(
            at(v),
            "daemon.tls_cert",
            "unused: daemon.listen is \"\" (no TCP listener)",
        );
    }
    let output_dir = values::optional_path(r, d.output_dir.as_ref(), "daemon.output_dir");
    let output_max_bytes_per_run = int_in(
        r,
        d.output_max_bytes_per_run.as_ref(),
        "daemon.output_max_bytes_per_run",
        1024..=1 << 40,
        16 << 20,
    );
    let output_dir_max_bytes = int_in(
        r,
        d.output_dir_max_bytes.as_ref(),
        "daemon.output_dir_max_bytes",
        1024..=1 << 50,
        1 << 30,
    );

    let mut start = StartSettings {
        listen,
        unix_socket,
        unix_socket_mode,
        workers: to(workers),
        queue_capacity: to(queue_capacity),
        file_threads,
        state_dir,
        log_file,
        syslog,
        user,
        group,
        output_dir,
        output_max_bytes_per_run: to(output_max_bytes_per_run),
        output_dir_max_bytes: to(output_dir_max_bytes),
    };
    let mut live = LiveSettings {
        min_workers: to(min_workers),
        max_connections: to(max_connections),
        max_line_bytes: to(max_line_bytes),
        max_output_bytes: to(max_output_bytes),
        idle_timeout: Some(idle_timeout).filter(|t| !t.is_zero()),
        history: to(history),
        log_level: log_level.to_string(),
        shutdown_grace,
        auth_token,
        auth_token_file,
        tokens: Tokens::default(),
        allow_submit,
        allow_job_api,
        metrics_per_job,
        tls,
        http_allowed_hosts,
    };
    for path in [
        &mut start.state_dir,
        &mut start.output_dir,
        &mut start.log_file,
        &mut start.unix_socket,
        &mut live.auth_token_file,
    ]
    .into_iter()
    .flatten()
    {
        *path = absolute(path);
    }
    match (&live.auth_token, &live.auth_token_file, &d.auth_token_file) {
        (Some(_), Some(_), Some(file)) => {
            let message = "set only one of auth_token and auth_token_file";
            r.error(at(file), "daemon.auth_token_file", message);
        }
        (None, Some(path), Some(file)) => match read_token_file(path) {
            Ok(TokenRead::Fresh(token)) => live.auth_token = Some(token),
            Ok(TokenRead::Kept(token, message)) => {
                live.auth_token = Some(token);
                r.warn(at(file), "daemon.auth_token_file", message);
            }
            Err(message) => r.error(at(file), "daemon.auth_token_file", message),
        },
        _ => {}
    }
    // The legacy token is the first of the set, an admin one; the
    // `[[tokens]]` tables are added to it later (`super::tokens`).
    if let Some(token) = &live.auth_token {
        live.tokens = Tokens::new(vec![NamedToken::new(
            LEGACY_NAME,
            token.clone(),
            Role::Admin,
        )]);
    }
    if let (None, Some(group)) = (&start.user, &d.group) {
        if start.group.is_some() {
            let message =
                "ignored without daemon.user (the group is only used for the privilege drop)";
            r.warn(at(group), "daemon.group", message);
        }
    }
    DaemonConfig { start, live }
}

/// The directory tickd was started in, read at the first config load —
/// before `--daemonize` moves to `/` — and used for every later one.
fn start_dir() -> Option<&'static Path> {
    static START_DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    START_DIR
        .get_or_init(|| std::env::current_dir().ok())
        .as_deref()
}

/// `path` made absolute against [`start_dir`] (unchanged if that is
/// unknown; opening it then reports the problem).
pub(crate) fn absolute(path: &Path) -> PathBuf {
    match start_dir() {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

/// The last token read from each token file (`auth_token_file`, a
/// `[[tokens]]` table's `token_file`), by path: as many entries as
/// distinct paths were ever configured.
static LAST_TOKEN: Mutex<Vec<(PathBuf, AuthToken)>> = Mutex::new(Vec::new());

/// What [`read_token_file`] found.
pub(super) enum TokenRead {
    /// Read from the file now.
    Fresh(AuthToken),
    /// The file may no longer be read (permission denied, typically after
    /// the privilege drop), so the token read from this same path before
    /// is kept; the warning says so.
    Kept(AuthToken, String),
}

/// Reads a token file (`auth_token_file`, a `[[tokens]]` table's
/// `token_file`): owner-only permissions, one token, trailing newline
/// allowed. When reading is denied but this path was read before in this
/// process, the earlier token is kept (see the module doc).
pub(super) fn read_token_file(path: &Path) -> Result<TokenRead, String> {
    match read_token(path) {
        Ok(token) => {
            let mut last = LAST_TOKEN.lock();
            last.retain(|(p, _)| p != path);
            last.push((path.to_path_buf(), token.clone()));
            Ok(TokenRead::Fresh(token))
        }
        Err((Some(io::ErrorKind::PermissionDenied), message)) => match LAST_TOKEN
            .lock()
            .iter()
            .find(|(last, _)| last == path)
        {
            Some((_, token)) => Ok(TokenRead::Kept(
                token.clone(),
                format!(
                    "{message}; keeping the token read at start (to change it, restart tickd, or make the file owned by the daemon's user with mode 0600)"
                ),
            )),
            _ => Err(message),
        },
        Err((_, message)) => Err(message),
    }
}

/// Reads and checks the token file; on failure the I/O error's kind (if
/// the failure was one) and the message.
fn read_token(path: &Path) -> Result<AuthToken, (Option<io::ErrorKind>, String)> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let io_err = |e: io::Error| (Some(e.kind()), format!("cannot read {shown}: {e}"));
    let meta = std::fs::metadata(path).map_err(io_err)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err((
            None,
            format!(
                "{shown} is readable by group or others (mode {mode:04o}); run chmod 600 on it"
            ),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(io_err)?;
    let token = text.trim_end_matches(['\n', '\r']);
    if token.is_empty() {
        return Err((None, format!("{shown} is empty")));
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err((
            None,
            format!("{shown}: the token must be one line without whitespace or control characters"),
        ));
    }
    Ok(AuthToken::new(token))
}

/// `auth_token`: `""` = none; otherwise printable, no whitespace (it is
/// sent in a JSON string and an HTTP header).
fn auth_token(r: &mut Report<'_>, d: &RawDaemon) -> Option<AuthToken> {
    let token = values::optional_text(r, d.auth_token.as_ref(), "daemon.auth_token")?;
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        if let Some(v) = &d.auth_token {
            let message = "must not contain whitespace or control characters";
            r.error(at(v), "daemon.auth_token", message);
        }
    }
    Some(AuthToken::new(token))
}

/// `http_allowed_hosts`: host names (no port, no scheme), kept in lower
/// case; a Host header naming one, with any port or none, passes the
/// DNS-rebinding guard.
fn allowed_hosts(r: &mut Report<'_>, d: &RawDaemon) -> Vec<String> {
    let Some(v) = &d.http_allowed_hosts else {
        return Vec::new();
    };
    let mut hosts = Vec::new();
    for name in v.get_ref() {
        let valid = (1..=253).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && !name.starts_with(['.', '-']);
        if valid {
            hosts.push(name.to_ascii_lowercase());
        } else {
            let message = format!(
                "\"{}\" is not a host name (letters, digits, '-' and '.'; no port, scheme or \
                 path: a Host header with any port matches)",
                name.escape_debug()
            );
            r.error(at(v), "daemon.http_allowed_hosts", message);
        }
    }
    hosts
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
fn account(
    r: &mut Report<'_>,
    value: Option<&Spanned<String>>,
    key: impl std::fmt::Display + Copy,
) -> Option<String> {
    let name = values::optional_text(r, value, key)?;
    if !is_account_name(&name) {
        if let Some(v) = value {
            let message = format!("\"{name}\" is not a valid user or group name");
            r.error(at(v), key, message);
        }
    }
    Some(name)
}
