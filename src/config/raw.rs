//! Stage one of config loading: the file as serde sees it.
//!
//! These structs mirror the TOML layout key for key. They do no checking
//! beyond TOML types, with two exceptions that serde does best: unknown keys
//! are errors (`deny_unknown_fields`, so a typo is never silently ignored),
//! and every value is wrapped in [`Spanned`] so stage two
//! ([`super::validate`]) can name the line of each key it rejects.
//!
//! Integers are read as `i64` even where only non-negative values make sense:
//! a negative `workers` then reaches validation and gets a message about its
//! range, rather than a bare serde type error.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// A value and where it sits in the file.
pub(crate) type Sp<T> = Option<Spanned<T>>;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    pub daemon: Option<Spanned<RawDaemon>>,
    #[serde(default)]
    pub jobs: Vec<Spanned<RawJob>>,
}

/// The `[daemon]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDaemon {
    pub listen: Sp<String>,
    pub unix_socket: Sp<String>,
    pub workers: Sp<i64>,
    pub min_workers: Sp<i64>,
    pub queue_capacity: Sp<i64>,
    pub max_connections: Sp<i64>,
    pub max_line_bytes: Sp<i64>,
    pub state_dir: Sp<String>,
    pub history: Sp<i64>,
    pub log_level: Sp<String>,
    pub shutdown_grace: Sp<String>,
    pub auth_token: Sp<String>,
    pub auth_token_file: Sp<String>,
    pub allow_submit: Sp<bool>,
    pub file_threads: Sp<i64>,
    pub unix_socket_mode: Sp<String>,
    pub max_output_bytes: Sp<i64>,
    pub idle_timeout: Sp<String>,
    pub log_file: Sp<String>,
    pub syslog: Sp<bool>,
    pub user: Sp<String>,
    pub group: Sp<String>,
}

/// One `[[jobs]]` table. It holds the keys of every kind; stage two checks
/// that a job only sets the keys of its own kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJob {
    // Common to all kinds.
    pub name: Sp<String>,
    pub kind: Sp<String>,
    pub every: Sp<String>,
    pub cron: Sp<String>,
    pub tz: Sp<String>,
    pub timeout: Sp<String>,
    pub overlap: Sp<String>,
    pub retries: Sp<i64>,
    pub retry_backoff: Sp<String>,
    pub jitter: Sp<String>,
    pub on_failure: Sp<String>,
    pub catch_up: Sp<String>,
    pub catch_up_limit: Sp<i64>,
    pub enabled: Sp<bool>,
    // exec
    pub command: Sp<Vec<String>>,
    pub env: Sp<BTreeMap<String, String>>,
    pub cwd: Sp<String>,
    pub user: Sp<String>,
    // http
    pub url: Sp<String>,
    pub method: Sp<String>,
    pub headers: Sp<BTreeMap<String, String>>,
    pub body: Sp<String>,
    pub expect_status: Sp<i64>,
    // sql
    pub database: Sp<String>,
    pub sql: Sp<String>,
    // file.prune
    pub path: Sp<String>,
    pub pattern: Sp<String>,
    pub older_than: Sp<String>,
    pub recursive: Sp<bool>,
}
