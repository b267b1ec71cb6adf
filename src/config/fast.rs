//! The config reader's fast path, for a file of plain tables.
//!
//! [`super::raw`] reads a `toml_edit` document: every key, value and bit of
//! whitespace of the file becomes a node with its span, about 5 KB per job,
//! which at a million jobs is 5 GB and most of `tickd check`'s time, half
//! of it spent freeing the tree. Here the file goes through `toml_parser`'s
//! lexer and push parser instead (the parser `toml_edit` itself is built on
//! in later versions), one table at a time: each `[[jobs]]` table becomes a
//! [`RawJob`] as its events arrive and is validated at once, so nothing of
//! the file is held but the jobs' definitions.
//!
//! It takes only what a config usually is: a `[daemon]` table and
//! `[[jobs]]` tables of simple keys, whose values are strings, decimal
//! integers, booleans, arrays of strings and one-line inline tables of
//! strings. Anything else (a dotted key, another table, a date, a float,
//! a duplicate key, a TOML 1.1 construct, a syntax error), and any config
//! that validation has something to say about, errors or warnings, is left
//! to the full reader ([`super::parse`] falls back to it), which reports
//! every problem with its exact place. So this path changes how long a
//! valid file takes to read, and nothing else.

use std::collections::BTreeMap;
use std::path::Path;

use toml::Spanned;
use toml_parser::decoder::{Encoding, ScalarKind};
use toml_parser::lexer::{Token, TokenKind};
use toml_parser::parser::{parse_document, EventReceiver};
use toml_parser::{ErrorSink, ParseError, Raw, Span};

use super::error::{JobKey, Report};
use super::raw::{RawDaemon, RawJob, Texts};
use super::source::Source;
use super::validate::Jobs;
use super::{daemon, Config};

/// The config of `text`, or `None` when the full reader must read it
/// (see the module docs).
pub(crate) fn parse(text: &str, path: &Path) -> Option<Config> {
    // Messages are never shown from this path (any message sends the file
    // to the full reader), so the report needs no line index.
    let no_lines = Source::new("");
    let mut r = Report::new(path, &no_lines);
    let mut reader = Reader {
        text,
        r: &mut r,
        jobs: Jobs::default(),
        daemon: RawDaemon::default(),
        daemon_seen: false,
        table: Table::Root,
        job: None,
        header: Header::None,
        header_keys: Vec::new(),
        key: None,
        value: Value::None,
        failed: false,
    };
    let mut errors: Option<ParseError> = None;
    let mut tokens: Vec<Token> = Vec::with_capacity(256);
    let mut line_start = true;
    for token in toml_parser::Source::new(text).lex() {
        let kind = token.kind();
        // A `[` that starts a line starts a table (or, in a multi-line
        // array, an inner array: the half parsed then has an unclosed
        // array, an error, and the file goes to the full reader).
        if kind == TokenKind::LeftSquareBracket && line_start && !tokens.is_empty() {
            parse_document(&tokens, &mut reader, &mut errors);
            tokens.clear();
            if errors.is_some() || reader.failed {
                return None;
            }
        }
        line_start = kind == TokenKind::Newline;
        tokens.push(token);
    }
    parse_document(&tokens, &mut reader, &mut errors);
    drop(tokens);
    if errors.is_some() || reader.failed || reader.key.is_some() {
        return None;
    }
    reader.end_job();
    let Reader { jobs, daemon, .. } = reader;
    let daemon = daemon::validate(&mut r, daemon);
    let config = jobs.finish(&mut r, daemon, path, &BTreeMap::new());
    match r.finish() {
        Ok(warnings) if warnings.is_empty() => Some(config),
        _ => None,
    }
}

/// The table header being read.
#[derive(Clone, Copy, PartialEq)]
enum Header {
    None,
    Std,
    /// `[[`, from this byte.
    Array(usize),
}

/// Where key-value pairs go.
#[derive(Clone, Copy, PartialEq)]
enum Table {
    /// Before any header: not taken here.
    Root,
    Daemon,
    Job,
}

/// A value being read, or read.
enum Value {
    None,
    Scalar(Spanned<Scalar>),
    /// An array of strings, from its `[`.
    Array(usize, Vec<String>),
    /// An inline table of strings, from its `{`: the pending key, and
    /// whether the last event was a `,` (a trailing comma is TOML 1.1).
    Table(usize, BTreeMap<String, String>, Option<String>, bool),
    /// A finished array or table.
    Strings(Spanned<Vec<String>>),
    Map(Spanned<BTreeMap<String, String>>),
}

enum Scalar {
    Str(String),
    Int(i64),
    Bool(bool),
}

/// Receives the parser's events (see the module docs).
struct Reader<'t, 'r, 'a> {
    text: &'t str,
    r: &'r mut Report<'a>,
    jobs: Jobs,
    daemon: RawDaemon,
    /// Whether the `[daemon]` header was read (a second one is an error).
    daemon_seen: bool,
    table: Table,
    /// The `[[jobs]]` table being read.
    job: Option<RawJob>,
    header: Header,
    header_keys: Vec<String>,
    /// The key of the key-value pair being read.
    key: Option<String>,
    value: Value,
    /// Set at the first thing this path does not take.
    failed: bool,
}

impl Reader<'_, '_, '_> {
    fn raw(&self, span: Span, encoding: Option<Encoding>) -> Raw<'_> {
        Raw::new_unchecked(&self.text[span.start()..span.end()], encoding, span)
    }

    /// A key or string, decoded; `None` on an error or a TOML 1.1 escape.
    fn decode(&self, span: Span, encoding: Option<Encoding>, key: bool) -> Option<String> {
        let raw = self.raw(span, encoding);
        if matches!(
            encoding,
            Some(Encoding::BasicString | Encoding::MlBasicString)
        ) && (raw.as_str().contains("\\e") || raw.as_str().contains("\\x"))
        {
            return None;
        }
        let mut out = std::borrow::Cow::Borrowed("");
        let mut errors: Option<ParseError> = None;
        if key {
            raw.decode_key(&mut out, &mut errors);
        } else if raw.decode_scalar(&mut out, &mut errors) != ScalarKind::String {
            return None;
        }
        errors.is_none().then(|| out.into_owned())
    }

    /// A scalar value: a string, a plain decimal integer, or a boolean.
    fn read_scalar(&self, span: Span, encoding: Option<Encoding>) -> Option<Scalar> {
        if encoding.is_some() {
            return self.decode(span, encoding, false).map(Scalar::Str);
        }
        let text = &self.text[span.start()..span.end()];
        match text {
            "true" => return Some(Scalar::Bool(true)),
            "false" => return Some(Scalar::Bool(false)),
            _ => {}
        }
        let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
        let plain = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        if !plain {
            return None;
        }
        text.parse::<i64>().ok().map(Scalar::Int)
    }

    fn fail(&mut self) {
        self.failed = true;
    }

    /// Validates the `[[jobs]]` table read so far.
    fn end_job(&mut self) {
        if let Some(mut job) = self.job.take() {
            job.key.name = job.name.as_ref().map(|n| n.get_ref().clone());
            self.jobs.push(self.r, job);
        }
    }

    /// Stores the finished key-value pair in its table.
    fn store(&mut self) {
        let (Some(key), value) = (
            self.key.take(),
            std::mem::replace(&mut self.value, Value::None),
        ) else {
            return self.fail();
        };
        let ok = match (self.table, &mut self.job) {
            (Table::Job, Some(job)) => set_job(job, &key, value),
            (Table::Daemon, _) => set_daemon(&mut self.daemon, &key, value),
            _ => false,
        };
        if !ok {
            self.fail();
        }
    }
}

impl EventReceiver for Reader<'_, '_, '_> {
    fn std_table_open(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.header = Header::Std;
        self.header_keys.clear();
    }

    fn std_table_close(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        let ok = self.header == Header::Std && self.header_keys == ["daemon"] && !self.daemon_seen;
        self.header = Header::None;
        if !ok {
            return self.fail();
        }
        self.end_job();
        self.daemon_seen = true;
        self.table = Table::Daemon;
    }

    fn array_table_open(&mut self, span: Span, _error: &mut dyn ErrorSink) {
        self.header = Header::Array(span.start());
        self.header_keys.clear();
    }

    fn array_table_close(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        let Header::Array(at) = self.header else {
            return self.fail();
        };
        self.header = Header::None;
        if self.header_keys != ["jobs"] {
            return self.fail();
        }
        self.end_job();
        self.table = Table::Job;
        let index = self.jobs.len();
        self.job = Some(RawJob::new(JobKey { index, name: None }, at));
    }

    fn inline_table_open(&mut self, span: Span, _error: &mut dyn ErrorSink) -> bool {
        match (&self.key, &self.value) {
            (Some(_), Value::None) => {
                self.value = Value::Table(span.start(), BTreeMap::new(), None, false);
            }
            _ => self.fail(),
        }
        true
    }

    fn inline_table_close(&mut self, span: Span, _error: &mut dyn ErrorSink) {
        match std::mem::replace(&mut self.value, Value::None) {
            Value::Table(start, map, None, false) => {
                self.value = Value::Map(Spanned::new(start..span.end(), map));
                self.store();
            }
            _ => self.fail(),
        }
    }

    fn array_open(&mut self, span: Span, _error: &mut dyn ErrorSink) -> bool {
        match (&self.key, &self.value) {
            (Some(_), Value::None) => self.value = Value::Array(span.start(), Vec::new()),
            _ => self.fail(),
        }
        true
    }

    fn array_close(&mut self, span: Span, _error: &mut dyn ErrorSink) {
        match std::mem::replace(&mut self.value, Value::None) {
            Value::Array(start, items) => {
                self.value = Value::Strings(Spanned::new(start..span.end(), items));
                self.store();
            }
            _ => self.fail(),
        }
    }

    fn simple_key(&mut self, span: Span, encoding: Option<Encoding>, _error: &mut dyn ErrorSink) {
        let Some(key) = self.decode(span, encoding, true) else {
            return self.fail();
        };
        if self.header != Header::None {
            self.header_keys.push(key);
            return;
        }
        match &mut self.value {
            Value::Table(_, _, pending @ None, comma) => {
                *pending = Some(key);
                *comma = false;
            }
            Value::None if self.key.is_none() => self.key = Some(key),
            _ => self.fail(),
        }
    }

    fn key_sep(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        // A dotted key.
        self.fail();
    }

    fn scalar(&mut self, span: Span, encoding: Option<Encoding>, _error: &mut dyn ErrorSink) {
        let Some(value) = self.read_scalar(span, encoding) else {
            return self.fail();
        };
        match (&mut self.value, value) {
            (Value::Array(_, items), Scalar::Str(s)) => items.push(s),
            (Value::Table(_, map, pending, _), Scalar::Str(s)) => match pending.take() {
                Some(k) if !map.contains_key(&k) => {
                    map.insert(k, s);
                }
                _ => self.fail(),
            },
            (Value::None, value) if self.key.is_some() => {
                self.value = Value::Scalar(Spanned::new(span.start()..span.end(), value));
                self.store();
            }
            _ => self.fail(),
        }
    }

    fn value_sep(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        if let Value::Table(_, _, _, comma) = &mut self.value {
            *comma = true;
        }
    }

    fn newline(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        // A newline or a comment inside an inline table is TOML 1.1.
        if matches!(self.value, Value::Table(..)) {
            self.fail();
        }
    }

    fn comment(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        if matches!(self.value, Value::Table(..)) {
            self.fail();
        }
    }

    fn error(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.fail();
    }
}

/// `Some(value)` spanned, if `value` is a string.
fn string(value: Value) -> Option<Spanned<String>> {
    match value {
        Value::Scalar(s) => {
            let span = s.span();
            match s.into_inner() {
                Scalar::Str(v) => Some(Spanned::new(span, v)),
                _ => None,
            }
        }
        _ => None,
    }
}

fn integer(value: Value) -> Option<Spanned<i64>> {
    match value {
        Value::Scalar(s) => {
            let span = s.span();
            match s.into_inner() {
                Scalar::Int(v) => Some(Spanned::new(span, v)),
                _ => None,
            }
        }
        _ => None,
    }
}

fn boolean(value: Value) -> Option<Spanned<bool>> {
    match value {
        Value::Scalar(s) => {
            let span = s.span();
            match s.into_inner() {
                Scalar::Bool(v) => Some(Spanned::new(span, v)),
                _ => None,
            }
        }
        _ => None,
    }
}

fn strings(value: Value) -> Option<Spanned<Vec<String>>> {
    match value {
        Value::Strings(v) => Some(v),
        _ => None,
    }
}

/// `every` / `cron`: a string or an array of strings.
fn texts(value: Value) -> Option<Spanned<Texts>> {
    match value {
        Value::Strings(v) => {
            let span = v.span();
            let items = v.into_inner();
            Some(Spanned::new(
                span,
                Texts {
                    items,
                    listed: true,
                },
            ))
        }
        other => string(other).map(|s| {
            let span = s.span();
            Spanned::new(span, Texts::one(s.into_inner()))
        }),
    }
}

fn map(value: Value) -> Option<Spanned<BTreeMap<String, String>>> {
    match value {
        Value::Map(v) => Some(v),
        _ => None,
    }
}

/// Sets `slot` to `value` read by `read`, unless it is already set or the
/// value has another type.
fn put<T>(
    slot: &mut Option<Spanned<T>>,
    value: Value,
    read: fn(Value) -> Option<Spanned<T>>,
) -> bool {
    if slot.is_some() {
        return false;
    }
    *slot = read(value);
    slot.is_some()
}

/// One key-value pair of a `[[jobs]]` table; false for an unknown key, a
/// repeated one or a value of another type.
fn set_job(j: &mut RawJob, key: &str, v: Value) -> bool {
    match key {
        "name" => put(&mut j.name, v, string),
        "kind" => put(&mut j.kind, v, string),
        "every" => put(&mut j.every, v, texts),
        "cron" => put(&mut j.cron, v, texts),
        "tz" => put(&mut j.tz, v, string),
        "skip_dates" => put(&mut j.skip_dates, v, strings),
        "skip_dates_file" => put(&mut j.skip_dates_file, v, string),
        "timeout" => put(&mut j.timeout, v, string),
        "overlap" => put(&mut j.overlap, v, string),
        "retries" => put(&mut j.retries, v, integer),
        "retry_backoff" => put(&mut j.retry_backoff, v, string),
        "jitter" => put(&mut j.jitter, v, string),
        "on_failure" => put(&mut j.on_failure, v, string),
        "on_success" => put(&mut j.on_success, v, string),
        "after" => put(&mut j.after, v, strings),
        "at" => put(&mut j.once_at, v, string),
        "concurrency" => put(&mut j.concurrency, v, string),
        "catch_up" => put(&mut j.catch_up, v, string),
        "catch_up_limit" => put(&mut j.catch_up_limit, v, integer),
        "enabled" => put(&mut j.enabled, v, boolean),
        "command" => put(&mut j.command, v, strings),
        "env" => put(&mut j.env, v, map),
        "cwd" => put(&mut j.cwd, v, string),
        "user" => put(&mut j.user, v, string),
        "url" => put(&mut j.url, v, string),
        "method" => put(&mut j.method, v, string),
        "headers" => put(&mut j.headers, v, map),
        "body" => put(&mut j.body, v, string),
        "expect_status" => put(&mut j.expect_status, v, integer),
        "database" => put(&mut j.database, v, string),
        "sql" => put(&mut j.sql, v, string),
        "path" => put(&mut j.path, v, string),
        "pattern" => put(&mut j.pattern, v, string),
        "older_than" => put(&mut j.older_than, v, string),
        "recursive" => put(&mut j.recursive, v, boolean),
        "allow_system_path" => put(&mut j.allow_system_path, v, boolean),
        // A file whose jobs name sinks has `[[notify]]` tables, which send
        // it to the full reader; these are read for completeness.
        "notify" => put(&mut j.notify, v, strings),
        "notify_on" => put(&mut j.notify_on, v, string),
        _ => false,
    }
}

/// One key-value pair of `[daemon]` (see [`set_job`]).
fn set_daemon(d: &mut RawDaemon, key: &str, v: Value) -> bool {
    match key {
        "listen" => put(&mut d.listen, v, string),
        "unix_socket" => put(&mut d.unix_socket, v, string),
        "workers" => put(&mut d.workers, v, integer),
        "min_workers" => put(&mut d.min_workers, v, integer),
        "queue_capacity" => put(&mut d.queue_capacity, v, integer),
        "max_connections" => put(&mut d.max_connections, v, integer),
        "max_line_bytes" => put(&mut d.max_line_bytes, v, integer),
        "state_dir" => put(&mut d.state_dir, v, string),
        "history" => put(&mut d.history, v, integer),
        "log_level" => put(&mut d.log_level, v, string),
        "shutdown_grace" => put(&mut d.shutdown_grace, v, string),
        "auth_token" => put(&mut d.auth_token, v, string),
        "auth_token_file" => put(&mut d.auth_token_file, v, string),
        "allow_submit" => put(&mut d.allow_submit, v, boolean),
        "allow_job_api" => put(&mut d.allow_job_api, v, boolean),
        "metrics_per_job" => put(&mut d.metrics_per_job, v, boolean),
        "output_dir" => put(&mut d.output_dir, v, string),
        "output_max_bytes_per_run" => put(&mut d.output_max_bytes_per_run, v, integer),
        "output_dir_max_bytes" => put(&mut d.output_dir_max_bytes, v, integer),
        "file_threads" => put(&mut d.file_threads, v, integer),
        "unix_socket_mode" => put(&mut d.unix_socket_mode, v, string),
        "max_output_bytes" => put(&mut d.max_output_bytes, v, integer),
        "idle_timeout" => put(&mut d.idle_timeout, v, string),
        "log_file" => put(&mut d.log_file, v, string),
        "syslog" => put(&mut d.syslog, v, boolean),
        "user" => put(&mut d.user, v, string),
        "group" => put(&mut d.group, v, string),
        "tls_cert" => put(&mut d.tls_cert, v, string),
        "tls_key" => put(&mut d.tls_key, v, string),
        "http_allowed_hosts" => put(&mut d.http_allowed_hosts, v, strings),
        _ => false,
    }
}

#[cfg(test)]
#[path = "fast_tests.rs"]
mod tests;
