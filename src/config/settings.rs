//! The `[daemon]` table as the daemon uses it: two parts, by when a
//! setting can take effect.
//!
//! - [`StartSettings`] shape threads, sockets, files and the process's
//!   identity (`listen`, `workers`, `state_dir`, `user`, ...): they are
//!   applied once, at start, and are fixed for the life of the process. A
//!   reload that changes one keeps the running value and says so
//!   ([`StartSettings::needs_restart`] names the keys; the daemon logs
//!   them).
//! - [`LiveSettings`] are the ones a reload applies (`auth_token`, the
//!   `[[tokens]]`,
//!   `allow_submit`, `max_output_bytes`, `idle_timeout`, ...). The daemon
//!   publishes them as one shared snapshot that an accepted reload
//!   replaces whole, so no setting is copied from one config to another.
//!
//! Both come out of the one `[daemon]` table in one pass
//! ([`super::daemon`]), so the file format and every message about it are
//! the same whichever part a key belongs to. docs/configuration.md's
//! "Reload" column says which part each key is in.

use std::path::PathBuf;
use std::time::Duration;

use super::tls::TlsIdentity;
use super::AuthToken;
use crate::auth::Tokens;

/// The `[daemon]` table; defaults as in CONTRACT.md §3.
#[derive(Clone, Debug, PartialEq)]
pub struct DaemonConfig {
    /// What takes effect only at start.
    pub start: StartSettings,
    /// What a reload may change.
    pub live: LiveSettings,
}

/// The settings applied once, at start (a reload needs a restart to
/// change them).
#[derive(Clone, Debug, PartialEq)]
pub struct StartSettings {
    /// TCP listen address (`host:port`); `None` when set to `""`.
    pub listen: Option<String>,
    /// Unix socket path; `None` when unset. [iface]
    pub unix_socket: Option<PathBuf>,
    /// Mode of the Unix socket file (from an octal string). [iface]
    pub unix_socket_mode: u32,
    /// Worker threads, 1..=1024.
    pub workers: usize,
    /// Bounded run queue length, 1..=1_000_000.
    pub queue_capacity: usize,
    /// Threads for file.* jobs, 1..=256. [jobs]
    pub file_threads: usize,
    /// Where state is kept; `None` keeps nothing on disk. [jobs]
    pub state_dir: Option<PathBuf>,
    /// Append logs to this file. [ops]
    pub log_file: Option<PathBuf>,
    /// Log to syslog. [ops]
    pub syslog: bool,
    /// Drop to this user after binding. [ops]
    pub user: Option<String>,
    /// Drop to this group after binding. [ops]
    pub group: Option<String>,
    /// Where each run's whole output is kept, one file per run; `None`
    /// keeps only the run's 64 KiB tail (see `crate::output`).
    pub output_dir: Option<PathBuf>,
    /// The most bytes one run's output file holds (1 KiB..=1 TiB).
    pub output_max_bytes_per_run: u64,
    /// The most bytes all files in `output_dir` hold; the oldest go first.
    pub output_dir_max_bytes: u64,
}

/// The settings a reload applies.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveSettings {
    /// Below this many live workers the daemon reports "degraded"; ≤ workers.
    pub min_workers: usize,
    /// Concurrent client connections, 1..=1_000_000.
    pub max_connections: usize,
    /// Longest request line accepted, 64 B..=64 MiB.
    pub max_line_bytes: usize,
    /// Unread answer bytes per connection before it is dropped, 1 KiB..=1 GiB.
    pub max_output_bytes: usize,
    /// Idle connections are closed after this; `None` = never (`"0s"`).
    pub idle_timeout: Option<Duration>,
    /// Finished runs kept per job, 0..=100_000.
    pub history: usize,
    /// One of off, error, warn, info, debug, trace.
    pub log_level: String,
    /// How long SIGTERM waits for running jobs before killing them.
    pub shutdown_grace: Duration,
    /// Token TCP clients must present (from `auth_token`, or read from
    /// `auth_token_file` at load). [iface]
    pub auth_token: Option<AuthToken>,
    /// File the token was read from. [iface]
    pub auth_token_file: Option<PathBuf>,
    /// Every token in force, each with its name and role: `auth_token`
    /// (or the one read from `auth_token_file`) as an admin token named
    /// `auth_token`, then each `[[tokens]]` table, in file order; empty:
    /// auth is off. Live: a reload re-judges open connections. [ops-view]
    pub tokens: Tokens,
    /// Whether `submit` may define ad-hoc jobs. [jobs]
    pub allow_submit: bool,
    /// Whether `jobs.put` and `jobs.delete` may define and remove jobs at
    /// run time; while false, API jobs are kept but not scheduled. [scale]
    pub allow_job_api: bool,
    /// Whether `/metrics` has per-job series (`job_name` label), or only
    /// their sums over every job.
    pub metrics_per_job: bool,
    /// The certificate and key of `tls_cert` / `tls_key`, read at load;
    /// `None`: the TCP listener speaks plaintext. New connections take the
    /// one in force (so a reload renews the certificate, or turns TLS on
    /// or off, for connections accepted after it). [ops-view]
    pub tls: Option<TlsIdentity>,
    /// Host names (lower case, no port) that pass the HTTP DNS-rebinding
    /// guard besides IP addresses and `localhost`, with any port.
    /// [ops-view]
    pub http_allowed_hosts: Vec<String>,
}

impl StartSettings {
    /// The keys (as the restart warning names them, without `daemon.`)
    /// whose value in `new` differs from this running one, in the order
    /// they are warned about. Settings that are applied together share
    /// one name (`log_file/syslog`, `user/group`).
    pub fn needs_restart(&self, new: &StartSettings) -> Vec<&'static str> {
        let (r, n) = (self, new);
        let checks = [
            ("listen", r.listen != n.listen),
            ("unix_socket", r.unix_socket != n.unix_socket),
            ("unix_socket_mode", r.unix_socket_mode != n.unix_socket_mode),
            ("workers", r.workers != n.workers),
            ("queue_capacity", r.queue_capacity != n.queue_capacity),
            ("file_threads", r.file_threads != n.file_threads),
            (
                "log_file/syslog",
                r.log_file != n.log_file || r.syslog != n.syslog,
            ),
            ("user/group", r.user != n.user || r.group != n.group),
            ("state_dir", r.state_dir != n.state_dir),
            (
                "output_dir",
                r.output_dir != n.output_dir
                    || r.output_max_bytes_per_run != n.output_max_bytes_per_run
                    || r.output_dir_max_bytes != n.output_dir_max_bytes,
            ),
        ];
        checks
            .into_iter()
            .filter_map(|(key, differs)| differs.then_some(key))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn daemon(table: &str) -> DaemonConfig {
        let text = format!("[daemon]\n{table}\n");
        super::super::parse(&text, Path::new("/etc/tickd.toml"))
            .expect("config")
            .daemon
    }

    #[test]
    fn each_key_lands_in_its_part() {
        let d = daemon(
            "listen = \"127.0.0.1:9\"\nworkers = 3\nqueue_capacity = 5\nfile_threads = 4\n\
             syslog = true\nunix_socket_mode = \"0640\"\n\
             min_workers = 2\nmax_connections = 6\nmax_line_bytes = 100\n\
             max_output_bytes = 2048\nidle_timeout = \"7s\"\nhistory = 8\n\
             log_level = \"warn\"\nshutdown_grace = \"9s\"\nauth_token = \"t\"\n\
             allow_submit = true",
        );
        let s = &d.start;
        assert_eq!(s.listen.as_deref(), Some("127.0.0.1:9"));
        assert_eq!((s.workers, s.queue_capacity, s.file_threads), (3, 5, 4));
        assert_eq!((s.syslog, s.unix_socket_mode), (true, 0o640));
        let l = &d.live;
        assert_eq!((l.min_workers, l.max_connections), (2, 6));
        assert_eq!((l.max_line_bytes, l.max_output_bytes), (100, 2048));
        assert_eq!(l.idle_timeout, Some(Duration::from_secs(7)));
        assert_eq!((l.history, l.log_level.as_str()), (8, "warn"));
        assert_eq!(l.shutdown_grace, Duration::from_secs(9));
        assert_eq!(l.auth_token, Some(AuthToken::new("t")));
        assert!(l.allow_submit);
    }

    #[test]
    fn per_job_metrics_are_on_unless_turned_off() {
        assert!(daemon("").live.metrics_per_job);
        assert!(!daemon("metrics_per_job = false").live.metrics_per_job);
        let err = super::super::parse(
            "[daemon]\nmetrics_per_job = \"no\"\n",
            Path::new("/etc/tickd.toml"),
        )
        .expect_err("a boolean");
        assert!(
            format!("{err:?}").contains("daemon.metrics_per_job"),
            "{err:?}"
        );
    }

    #[test]
    fn same_start_settings_need_no_restart() {
        let d = daemon("workers = 3");
        assert!(d.start.needs_restart(&d.start.clone()).is_empty());
        let live_only = daemon("workers = 3\nallow_submit = true\nmax_line_bytes = 100");
        assert!(d.start.needs_restart(&live_only.start).is_empty());
    }

    #[test]
    fn every_start_key_is_named_in_warning_order() {
        let old = daemon("");
        let new = daemon(
            "listen = \"127.0.0.1:9\"\nunix_socket = \"/tmp/x.sock\"\n\
             unix_socket_mode = \"0640\"\nworkers = 3\nqueue_capacity = 5\n\
             file_threads = 4\nsyslog = true\nuser = \"nobody\"\n\
             state_dir = \"/tmp/state\"",
        );
        assert_eq!(
            old.start.needs_restart(&new.start),
            [
                "listen",
                "unix_socket",
                "unix_socket_mode",
                "workers",
                "queue_capacity",
                "file_threads",
                "log_file/syslog",
                "user/group",
                "state_dir"
            ]
        );
        let group = daemon("user = \"nobody\"\ngroup = \"nogroup\"");
        let user = daemon("user = \"nobody\"");
        assert_eq!(user.start.needs_restart(&group.start), ["user/group"]);
        let file = daemon("log_file = \"/tmp/t.log\"");
        assert_eq!(old.start.needs_restart(&file.start), ["log_file/syslog"]);
    }
}
