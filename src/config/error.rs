//! Config errors, and the collector that gathers all of them.
//!
//! Validation does not stop at the first problem: a user fixing a config
//! wants the whole list at once. [`Report`] collects errors and warnings as
//! `PATH:LINE: KEY: message` lines; [`ConfigError`] is what the caller gets
//! when at least one error was found.

use std::fmt;
use std::path::Path;

use super::source::Source;

/// Why a config file was rejected: one or more `PATH:LINE: KEY: message`
/// lines (an unreadable file gives a single `PATH: message` line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    messages: Vec<String>,
}

impl ConfigError {
    /// Every problem found, one line each, in file order.
    pub fn messages(&self) -> &[String] {
        &self.messages
    }

    /// An error for a file that could not be read. The path is shown
    /// absolute (a relative one is taken from the current directory, which
    /// is what a user started from the wrong directory needs to see), with
    /// how to name another file.
    pub(crate) fn io(path: &Path, err: &std::io::Error) -> Self {
        let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        ConfigError {
            messages: vec![format!(
                "{}: cannot read config: {err}; choose the file with --config PATH or the \
                 TICKD_CONFIG environment variable (default: conf/tickd.toml, relative to the \
                 current directory)",
                escape_controls(&shown.display().to_string())
            )],
        }
    }

    /// A single located error (used for TOML syntax and type errors).
    pub(crate) fn single(message: String) -> Self {
        ConfigError {
            messages: vec![message],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.messages.join("\n"))
    }
}

impl std::error::Error for ConfigError {}

/// `text` with every control character (a terminal escape, a newline, a
/// NUL...) written as Rust writes it in a string (`\u{1b}`, `\n`), so one
/// problem stays one line and a config cannot drive the terminal of the
/// person running `tickd check`.
pub(crate) fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// Names a job's keys in messages: `jobs[2].every (job "backup")`, or
/// `jobs[2].every` when the job has no name that is a string. The name is
/// shown escaped (`escape_debug`): it may be the very thing that is wrong.
#[derive(Clone, Debug)]
pub(crate) struct JobKey {
    /// The job's place in the file, from 0.
    pub index: usize,
    /// Its `name`, as written.
    pub name: Option<String>,
}

impl JobKey {
    /// The key for `field` of this job, written out only if a message
    /// needs it (most jobs have none, and a million labels take seconds).
    pub(crate) fn key<'a>(&'a self, field: &'a str) -> FieldKey<'a> {
        FieldKey { job: self, field }
    }
}

/// A job's key as messages name it (see [`JobKey::key`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct FieldKey<'a> {
    job: &'a JobKey,
    field: &'a str,
}

impl fmt::Display for FieldKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (index, field) = (self.job.index, self.field);
        match &self.job.name {
            Some(name) => write!(f, "jobs[{index}].{field} (job \"{}\")", name.escape_debug()),
            None => write!(f, "jobs[{index}].{field}"),
        }
    }
}

/// Collects located errors and warnings during validation.
pub(crate) struct Report<'a> {
    path: &'a Path,
    source: &'a Source<'a>,
    errors: Vec<(usize, String)>,
    warnings: Vec<(usize, String)>,
}

impl<'a> Report<'a> {
    /// An empty report for the file at `path` whose text is `source`.
    pub(crate) fn new(path: &'a Path, source: &'a Source<'a>) -> Self {
        Report {
            path,
            source,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Formats one `PATH:LINE: KEY: message` line for byte offset `at`.
    pub(crate) fn locate(
        &self,
        at: usize,
        key: impl fmt::Display,
        message: &str,
    ) -> (usize, String) {
        let line = self.source.line_of(at);
        let text = format!("{}:{line}: {key}: {message}", self.path.display());
        let text = escape_controls(&text);
        (line, text)
    }

    /// Records an error at byte offset `at`.
    pub(crate) fn error(&mut self, at: usize, key: impl fmt::Display, message: impl fmt::Display) {
        let located = self.locate(at, key, &message.to_string());
        self.errors.push(located);
    }

    /// Records a warning at byte offset `at`.
    pub(crate) fn warn(&mut self, at: usize, key: impl fmt::Display, message: impl fmt::Display) {
        let located = self.locate(at, key, &message.to_string());
        self.warnings.push(located);
    }

    /// The line of byte offset `at`, for messages that refer to another key.
    pub(crate) fn line_of(&self, at: usize) -> usize {
        self.source.line_of(at)
    }

    /// The warnings in file order, or every error in file order.
    /// How many errors are reported so far.
    pub(crate) fn error_count(&self) -> usize {
        self.errors.len()
    }

    pub(crate) fn finish(self) -> Result<Vec<String>, ConfigError> {
        let sorted = |mut list: Vec<(usize, String)>| {
            // Stable: problems on one line keep the order they were found in.
            list.sort_by_key(|(line, _)| *line);
            list.into_iter().map(|(_, text)| text).collect::<Vec<_>>()
        };
        if self.errors.is_empty() {
            Ok(sorted(self.warnings))
        } else {
            Err(ConfigError {
                messages: sorted(self.errors),
            })
        }
    }
}
