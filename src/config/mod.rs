//! The config file: loading, validation, and the validated types.
//!
//! Loading has two stages, so that every problem in a file is reported at
//! once and each with its place:
//! 1. [`raw`]: the TOML document is read table by table into structs that
//!    mirror it, keeping each value's byte span; unknown keys (with the
//!    nearest known key) and values of the wrong type are reported, and
//!    reading goes on, so that one pass finds every problem.
//! 2. [`validate`]: the raw structs become [`Config`], checking ranges,
//!    durations, schedules, names and cross-job references, and collecting
//!    every problem as a `PATH:LINE: KEY: message` line.
//!
//! Keys whose feature is not built in this version are still parsed and
//! checked; set to a non-default value they add a line to
//! [`Config::warnings`] instead of being ignored silently.
//!
//! The file format is in CONTRACT.md §3; `conf/tickd.toml` is an example.

mod adhoc;
mod cluster;
mod concurrency;
mod daemon;
mod error;
mod fast;
mod job;
mod kinds;
mod limits;
mod notify;
mod raw;
mod raw_daemon;
mod schedules;
mod settings;
mod source;
mod suggest;
mod system_path;
mod tls;
mod tokens;
mod validate;
mod values;

#[cfg(test)]
mod read_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::schedule::Schedule;

pub use crate::auth::AuthToken;
pub use crate::sys::limits::{IoClass, Limits};
pub use adhoc::{parse_adhoc_job, parse_api_job, ADHOC_NAME};
pub use cluster::{ClusterConfig, OnRedisDown};
pub use error::ConfigError;
pub use notify::{Format, NotifySink, Piece, SinkKind, Template, FIELDS as NOTIFY_FIELDS};
pub use settings::{DaemonConfig, LiveSettings, StartSettings};
pub use tls::TlsIdentity;

/// A validated config, ready for the daemon.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was loaded from (as given, for messages and `status`).
    pub path: PathBuf,
    /// The `[daemon]` table.
    pub daemon: DaemonConfig,
    /// The `[[jobs]]`, in file order; names are unique.
    pub jobs: Vec<JobDef>,
    /// `[cluster]`: cluster mode on Redis, when set.
    pub cluster: Option<ClusterConfig>,
    /// `[concurrency.NAME] max_running`: the limits by name. [flows]
    pub concurrency: BTreeMap<String, u32>,
    /// `[[notify]]` sinks by name. [ops-view]
    pub notify: BTreeMap<String, NotifySink>,
    /// `PATH:LINE: KEY: message` lines about keys that are accepted but have
    /// no effect yet; the daemon logs them at start and on reload.
    pub warnings: Vec<String>,
}

impl Config {
    /// The job named `name`, if any.
    pub fn job(&self, name: &str) -> Option<&JobDef> {
        self.jobs.iter().find(|job| job.name == name)
    }
}

/// One validated job definition. `PartialEq` lets a reload sort jobs into
/// added, removed and changed.
#[derive(Clone, Debug, PartialEq)]
pub struct JobDef {
    /// Unique name, 1..=64 chars of `[A-Za-z0-9_.-]`.
    pub name: String,
    /// What the job does; jobs with the same settings share one copy
    /// (see `validate::Interner`).
    pub kind: Arc<JobKind>,
    /// When it runs by itself; `None` = only by hand.
    pub schedule: Option<Schedule>,
    /// Kill a run after this long.
    pub timeout: Option<Duration>,
    /// What to do with a run that is due while one is running.
    pub overlap: Overlap,
    /// Whether the schedule is active (manual runs work either way).
    pub enabled: bool,
    /// Extra attempts after a failure. [jobs]
    pub retries: u32,
    /// First retry delay. [jobs]
    pub retry_backoff: Duration,
    /// Random delay added to scheduled runs. [jobs]
    pub jitter: Duration,
    /// Job to trigger when a run fails. [jobs]
    pub on_failure: Option<String>,
    /// Job to trigger when a run succeeds. [flows]
    pub on_success: Option<String>,
    /// Jobs that must all have succeeded since this job's last run for it
    /// to run (a join); only on a job without a schedule. [flows]
    pub after: Vec<String>,
    /// The `[concurrency.NAME]` limit its runs count against. [flows]
    pub concurrency: Option<String>,
    /// Replay of runs missed while the daemon was down. [jobs]
    pub catch_up: CatchUp,
    /// Most runs replayed with `CatchUp::All`. [jobs]
    pub catch_up_limit: u32,
    /// Time zone name for cron. [jobs]
    pub tz: Option<String>,
    /// `[[notify]]` sinks told about its runs, by name. [ops-view]
    pub notify: Vec<String>,
    /// Which of its runs they are told about. [ops-view]
    pub notify_on: NotifyOn,
}

/// Which runs of a job its `notify` sinks hear of. [ops-view]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NotifyOn {
    /// Each run that ends failed or timed out with no retry left.
    #[default]
    Failure,
    /// The first such run after a success (or the job's first outcome),
    /// and the first success after a failure.
    Change,
    /// Every run that ends.
    Always,
}

impl NotifyOn {
    /// The value as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyOn::Failure => "failure",
            NotifyOn::Change => "change",
            NotifyOn::Always => "always",
        }
    }
}

/// A job's kind with its kind-specific settings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// Run a program.
    Exec(ExecSpec),
    /// Make an HTTP request. [jobs]
    Http(HttpSpec),
    /// Run SQL against an SQLite file. [jobs]
    Sql(SqlSpec),
    /// Delete old files under a directory. [jobs]
    FilePrune(FilePruneSpec),
}

impl JobKind {
    /// The kind as written in the config (`kind = "..."`).
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::Exec(_) => "exec",
            JobKind::Http(_) => "http",
            JobKind::Sql(_) => "sql",
            JobKind::FilePrune(_) => "file.prune",
        }
    }
}

/// Settings of an `exec` job.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExecSpec {
    /// argv; never run through a shell implicitly. Non-empty.
    pub command: Vec<String>,
    /// Added to a scrubbed environment.
    pub env: BTreeMap<String, String>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// Run as this user (when tickd runs as root). [ops]
    pub user: Option<String>,
    /// `limits = {...}`: rlimits, nice and I/O class for the child. [flows]
    pub limits: Limits,
}

/// Settings of an `http` job. [jobs]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpSpec {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Upper-case method, default GET.
    pub method: String,
    /// Extra request headers.
    pub headers: BTreeMap<String, String>,
    /// Request body.
    pub body: Option<String>,
    /// Status that counts as success; `None` = any 2xx.
    pub expect_status: Option<u16>,
}

/// Settings of a `sql` job. [jobs]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SqlSpec {
    /// Path of the SQLite file.
    pub database: PathBuf,
    /// One or more statements.
    pub sql: String,
}

/// Settings of a `file.prune` job. [jobs]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FilePruneSpec {
    /// Directory to prune; absolute (a relative `path` is taken from the
    /// directory tickd was started in), and not one of the system roots
    /// unless the job sets `allow_system_path`.
    pub path: PathBuf,
    /// Glob matched against file names, default `*`.
    pub pattern: String,
    /// Only files last modified longer ago than this are deleted.
    pub older_than: Duration,
    /// Whether to descend into subdirectories.
    pub recursive: bool,
}

/// What happens to a run that is due while the job is already running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overlap {
    /// Drop it (manual runs get an error).
    Skip,
    /// Start it when the running one ends.
    Queue,
    /// Run both at once.
    Allow,
}

impl Overlap {
    /// The value as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Queue => "queue",
            Overlap::Allow => "allow",
        }
    }
}

/// Replay policy for runs missed while the daemon was down. [jobs]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatchUp {
    /// Forget them.
    None,
    /// Run once if any were missed.
    Once,
    /// Run each one, up to `catch_up_limit`.
    All,
}

impl CatchUp {
    /// The value as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::None => "none",
            CatchUp::Once => "once",
            CatchUp::All => "all",
        }
    }
}

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, &e))?;
    parse(&text, path)
}

/// Validates config `text`; `path` is used in messages and kept in
/// [`Config::path`].
///
/// A file of plain tables is read by [`fast`]; any other, and any file with
/// something to report, by the full reader, [`parse_full`].
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    match fast::parse(text, path) {
        Some(config) => Ok(config),
        None => parse_full(text, path),
    }
}

/// The full reader: `toml_edit`'s document, read by [`raw`], every problem
/// reported with its place.
fn parse_full(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let src = source::Source::new(text);
    let doc = toml_edit::ImDocument::parse(text).map_err(|e| toml_error(&src, path, &e))?;
    let mut report = error::Report::new(path, &src);
    let raw = raw::read(&mut report, doc.as_table());
    validate::validate(report, raw, path)
}

/// What `tickd check` prints on success: `PATH: ok, N jobs` and then any
/// warnings, one per line.
pub fn check_report(path: &Path) -> Result<String, ConfigError> {
    let config = load(path)?;
    let scheduled = config.jobs.iter().filter(|j| j.schedule.is_some()).count();
    let count = config.jobs.len();
    let plural = if count == 1 { "" } else { "s" };
    let mut out = format!(
        "{}: ok, {count} job{plural} ({scheduled} scheduled)",
        path.display()
    );
    for warning in &config.warnings {
        out.push('\n');
        out.push_str("warning: ");
        out.push_str(warning);
    }
    Ok(out)
}

/// Turns a TOML syntax error into a `PATH:LINE: KEY: message` line.
fn toml_error(src: &source::Source<'_>, path: &Path, err: &toml_edit::TomlError) -> ConfigError {
    let start = err.span().map(|span| span.start).unwrap_or(0);
    let line = src.line_of(start);
    let key = src.key_at(start).unwrap_or_else(|| "toml".to_string());
    // toml's messages may span lines; keep one problem per line.
    let message = err.message().trim().replace('\n', "; ");
    ConfigError::single(error::escape_controls(&format!(
        "{}:{line}: {key}: {message}",
        path.display()
    )))
}
