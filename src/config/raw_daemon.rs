//! Stage one of config loading for the `[daemon]` table: its keys, read
//! one by one into [`RawDaemon`] (see [`super::raw`] for how and why every
//! problem of the file is reported in one pass).

use toml_edit::TableLike;

use super::error::Report;
use super::raw::{place, unknown, Reader, Sp, JOB_KEYS};

/// The keys of `[daemon]`, for suggestions.
pub(crate) const DAEMON_KEYS: [&str; 30] = [
    "listen",
    "unix_socket",
    "workers",
    "min_workers",
    "queue_capacity",
    "max_connections",
    "max_line_bytes",
    "state_dir",
    "history",
    "log_level",
    "shutdown_grace",
    "auth_token",
    "auth_token_file",
    "allow_submit",
    "allow_job_api",
    "file_threads",
    "unix_socket_mode",
    "max_output_bytes",
    "idle_timeout",
    "log_file",
    "syslog",
    "user",
    "group",
    "metrics_per_job",
    "tls_cert",
    "tls_key",
    "http_allowed_hosts",
    "output_dir",
    "output_max_bytes_per_run",
    "output_dir_max_bytes",
];

/// The `[daemon]` table (all defaults when absent).
#[derive(Debug, Default)]
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
    pub allow_job_api: Sp<bool>,
    pub file_threads: Sp<i64>,
    pub unix_socket_mode: Sp<String>,
    pub max_output_bytes: Sp<i64>,
    pub idle_timeout: Sp<String>,
    pub log_file: Sp<String>,
    pub syslog: Sp<bool>,
    pub user: Sp<String>,
    pub group: Sp<String>,
    pub metrics_per_job: Sp<bool>,
    pub tls_cert: Sp<String>,
    pub tls_key: Sp<String>,
    pub http_allowed_hosts: Sp<Vec<String>>,
    pub output_dir: Sp<String>,
    pub output_max_bytes_per_run: Sp<i64>,
    pub output_dir_max_bytes: Sp<i64>,
}

/// Reads `[daemon]`; unknown keys and wrong types are reported.
pub(super) fn daemon(r: &mut Report<'_>, table: &dyn TableLike, table_at: usize) -> RawDaemon {
    let mut d = RawDaemon::default();
    let mut rd = Reader { r, bad: Vec::new() };
    for (name, item) in table.iter() {
        let at = place(table, name, item, table_at);
        let key = format!("daemon.{name}");
        let k = key.as_str();
        match name {
            "listen" => d.listen = rd.string("listen", item, at, k),
            "unix_socket" => d.unix_socket = rd.string("unix_socket", item, at, k),
            "workers" => d.workers = rd.integer("workers", item, at, k),
            "min_workers" => d.min_workers = rd.integer("min_workers", item, at, k),
            "queue_capacity" => d.queue_capacity = rd.integer("queue_capacity", item, at, k),
            "max_connections" => d.max_connections = rd.integer("max_connections", item, at, k),
            "max_line_bytes" => d.max_line_bytes = rd.integer("max_line_bytes", item, at, k),
            "state_dir" => d.state_dir = rd.string("state_dir", item, at, k),
            "history" => d.history = rd.integer("history", item, at, k),
            "log_level" => d.log_level = rd.string("log_level", item, at, k),
            "shutdown_grace" => d.shutdown_grace = rd.string("shutdown_grace", item, at, k),
            "auth_token" => d.auth_token = rd.string("auth_token", item, at, k),
            "auth_token_file" => d.auth_token_file = rd.string("auth_token_file", item, at, k),
            "allow_submit" => d.allow_submit = rd.boolean("allow_submit", item, at, k),
            "allow_job_api" => d.allow_job_api = rd.boolean("allow_job_api", item, at, k),
            "file_threads" => d.file_threads = rd.integer("file_threads", item, at, k),
            "unix_socket_mode" => {
                d.unix_socket_mode = rd.string("unix_socket_mode", item, at, k);
            }
            "max_output_bytes" => {
                d.max_output_bytes = rd.integer("max_output_bytes", item, at, k);
            }
            "idle_timeout" => d.idle_timeout = rd.string("idle_timeout", item, at, k),
            "log_file" => d.log_file = rd.string("log_file", item, at, k),
            "syslog" => d.syslog = rd.boolean("syslog", item, at, k),
            "user" => d.user = rd.string("user", item, at, k),
            "group" => d.group = rd.string("group", item, at, k),
            "metrics_per_job" => {
                d.metrics_per_job = rd.boolean("metrics_per_job", item, at, k);
            }
            "tls_cert" => d.tls_cert = rd.string("tls_cert", item, at, k),
            "tls_key" => d.tls_key = rd.string("tls_key", item, at, k),
            "http_allowed_hosts" => {
                d.http_allowed_hosts = rd.strings("http_allowed_hosts", item, at, k);
            }
            "output_dir" => d.output_dir = rd.string("output_dir", item, at, k),
            "output_max_bytes_per_run" => {
                d.output_max_bytes_per_run = rd.integer("output_max_bytes_per_run", item, at, k);
            }
            "output_dir_max_bytes" => {
                d.output_dir_max_bytes = rd.integer("output_dir_max_bytes", item, at, k);
            }
            _ => {
                let message = if JOB_KEYS.contains(&name) {
                    format!("unknown key; `{name}` is a job key, so it belongs in a [[jobs]] table")
                } else {
                    unknown(name, DAEMON_KEYS)
                };
                rd.r.error(at, k, message);
            }
        }
    }
    d
}
