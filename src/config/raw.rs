//! Stage one of config loading: the TOML document → raw tables, key by key.
//!
//! The file is parsed with `toml_edit`, which keeps the byte span of every
//! key and value, and each table is then read here by hand rather than by
//! serde: serde stops at the first unknown key or wrongly typed value, and
//! a user fixing a config wants every problem of the file in one pass. So
//! an unknown key (with the nearest known one as a suggestion) or a value
//! of the wrong type is recorded in the [`Report`] and reading goes on; the
//! key then counts as set but unusable ([`RawJob::bad`]), so stage two does
//! not also call it missing. Only a TOML syntax error stops here, since
//! nothing after it can be read reliably.
//!
//! Integers are read as `i64` even where only non-negative values make sense:
//! a negative `workers` then reaches validation and gets a message about its
//! range, rather than a type error.

use std::collections::BTreeMap;
use std::fmt::Display;

use toml::Spanned;
use toml_edit::{Item, TableLike, Value};

use super::error::{JobKey, Report};
use super::suggest;

use super::raw_daemon::daemon;
pub(crate) use super::raw_daemon::{RawDaemon, DAEMON_KEYS};

/// A value and where it sits in the file.
pub(crate) type Sp<T> = Option<Spanned<T>>;

/// The whole file.
pub(crate) struct RawFile {
    pub daemon: RawDaemon,
    pub jobs: Vec<RawJob>,
    /// `[cluster]` and where it starts, when the file has one: read by
    /// `cluster.rs` (which reads with this module's [`Reader`]).
    pub cluster: Option<(Item, usize)>,
    /// `[concurrency.NAME]` tables, read by `concurrency.rs`.
    pub concurrency: Option<(Item, usize)>,
    /// `[[tokens]]` tables, read by `tokens.rs`.
    pub tokens: Option<(Item, usize)>,
    /// `[[notify]]` tables, read by `notify.rs`.
    pub notify: Option<(Item, usize)>,
}

/// The keys a `[[jobs]]` table may hold (of any kind), for suggestions.
pub(crate) const JOB_KEYS: [&str; 39] = [
    "name",
    "kind",
    "every",
    "cron",
    "at",
    "tz",
    "skip_dates",
    "skip_dates_file",
    "timeout",
    "overlap",
    "retries",
    "retry_backoff",
    "jitter",
    "on_failure",
    "on_success",
    "after",
    "concurrency",
    "catch_up",
    "catch_up_limit",
    "enabled",
    "command",
    "env",
    "cwd",
    "user",
    "url",
    "method",
    "headers",
    "body",
    "expect_status",
    "database",
    "sql",
    "path",
    "pattern",
    "older_than",
    "recursive",
    "allow_system_path",
    "limits",
    "notify",
    "notify_on",
];

/// One `[[jobs]]` table. It holds the keys of every kind; stage two checks
/// that a job only sets the keys of its own kind.
#[derive(Debug)]
pub(crate) struct RawJob {
    /// How messages name this job's keys.
    pub key: JobKey,
    /// Where the table starts (its `[[jobs]]` header).
    pub at: usize,
    /// Keys that are set but whose value has the wrong type (already
    /// reported): they are neither missing nor usable.
    pub bad: Vec<&'static str>,
    // Common to all kinds.
    pub name: Sp<String>,
    pub kind: Sp<String>,
    pub every: Sp<Texts>,
    pub cron: Sp<Texts>,
    pub tz: Sp<String>,
    pub skip_dates: Sp<Vec<String>>,
    pub skip_dates_file: Sp<String>,
    pub timeout: Sp<String>,
    pub overlap: Sp<String>,
    pub retries: Sp<i64>,
    pub retry_backoff: Sp<String>,
    pub jitter: Sp<String>,
    pub on_failure: Sp<String>,
    pub on_success: Sp<String>,
    pub after: Sp<Vec<String>>,
    pub once_at: Sp<String>,
    pub concurrency: Sp<String>,
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
    pub allow_system_path: Sp<bool>,
    // exec: `limits = {...}` (read and checked in `limits.rs`)
    pub limits: Sp<super::limits::RawLimits>,
    /// `[[notify]]` sinks named (checked across the file).
    pub notify: Sp<Vec<String>>,
    pub notify_on: Sp<String>,
}

/// `every` or `cron`: one text, or an array of them.
#[derive(Debug)]
pub(crate) struct Texts {
    pub items: Vec<String>,
    /// Whether the file gave an array (even of one).
    pub listed: bool,
}

impl Texts {
    /// One text, as `every = "5s"`.
    pub(crate) fn one(text: String) -> Self {
        Texts {
            items: vec![text],
            listed: false,
        }
    }
}

impl RawJob {
    /// A table with no key set yet, starting at byte `at`.
    pub(crate) fn new(key: JobKey, at: usize) -> Self {
        RawJob {
            key,
            at,
            bad: Vec::new(),
            name: None,
            kind: None,
            every: None,
            cron: None,
            tz: None,
            skip_dates: None,
            skip_dates_file: None,
            timeout: None,
            overlap: None,
            retries: None,
            retry_backoff: None,
            jitter: None,
            on_failure: None,
            on_success: None,
            after: None,
            once_at: None,
            concurrency: None,
            catch_up: None,
            catch_up_limit: None,
            enabled: None,
            command: None,
            env: None,
            cwd: None,
            user: None,
            url: None,
            method: None,
            headers: None,
            body: None,
            expect_status: None,
            database: None,
            sql: None,
            path: None,
            pattern: None,
            older_than: None,
            recursive: None,
            allow_system_path: None,
            limits: None,
            notify: None,
            notify_on: None,
        }
    }

    /// Whether `field` is set with a value of the wrong type.
    pub(crate) fn is_bad(&self, field: &str) -> bool {
        self.bad.contains(&field)
    }
}

/// Reads the parsed document; every problem goes into `r`.
pub(crate) fn read(r: &mut Report<'_>, doc: &toml_edit::Table) -> RawFile {
    let mut file = RawFile {
        daemon: RawDaemon::default(),
        jobs: Vec::new(),
        cluster: None,
        concurrency: None,
        tokens: None,
        notify: None,
    };
    for (name, item) in doc.iter() {
        let at = place(doc, name, item, 0);
        match name {
            "daemon" => match item.as_table_like() {
                Some(table) => file.daemon = daemon(r, table, at),
                None => r.error(at, "daemon", expected("a table ([daemon])", item)),
            },
            "jobs" => file.jobs = jobs(r, item, at),
            "concurrency" => file.concurrency = Some((item.clone(), at)),
            "tokens" => file.tokens = Some((item.clone(), at)),
            "notify" => file.notify = Some((item.clone(), at)),
            "cluster" => match item.as_table_like() {
                Some(_) => file.cluster = Some((item.clone(), at)),
                None => r.error(at, "cluster", expected("a table ([cluster])", item)),
            },
            _ => {
                let message = if DAEMON_KEYS.contains(&name) {
                    format!("unknown top-level key; `{name}` belongs in the [daemon] table")
                } else if JOB_KEYS.contains(&name) {
                    format!("unknown top-level key; `{name}` belongs in a [[jobs]] table")
                } else {
                    unknown(
                        name,
                        [
                            "daemon",
                            "jobs",
                            "cluster",
                            "concurrency",
                            "tokens",
                            "notify",
                        ],
                    )
                };
                r.error(at, name, message);
            }
        }
    }
    file
}

/// Where `key`'s value in `table` starts (its key, if the value has no
/// span; `fallback` if neither has).
pub(super) fn place(table: &dyn TableLike, key: &str, item: &Item, fallback: usize) -> usize {
    item.span()
        .or_else(|| table.key(key).and_then(|k| k.span()))
        .map_or(fallback, |span| span.start)
}

/// The message for an unknown key, with the nearest known one if any.
pub(super) fn unknown<'a>(key: &str, known: impl IntoIterator<Item = &'a str> + Clone) -> String {
    match suggest::nearest(key, known.clone()) {
        Some(near) => format!("unknown key; did you mean `{near}`?"),
        None => {
            let list: Vec<&str> = known.into_iter().collect();
            format!("unknown key; expected one of: {}", list.join(", "))
        }
    }
}

/// `expected WANT, found WHAT`, with the value when it is short.
pub(super) fn expected(want: &str, item: &Item) -> String {
    format!("expected {want}, found {}", found(item))
}

/// What `item` is, for messages.
fn found(item: &Item) -> String {
    match item {
        Item::Value(v) => describe(v),
        Item::Table(_) => "a table".to_string(),
        Item::ArrayOfTables(_) => "an array of tables".to_string(),
        Item::None => "nothing".to_string(),
    }
}

/// "an integer (5)", "a string (\"x\")", "an array", ...
fn describe(v: &Value) -> String {
    let shown = v.to_string();
    let shown = shown.trim();
    let article = match v {
        Value::Integer(_) | Value::Array(_) | Value::InlineTable(_) => "an",
        _ => "a",
    };
    let name = match v {
        Value::InlineTable(_) => "table",
        Value::Datetime(_) => "date-time",
        other => other.type_name(),
    };
    if shown.chars().count() <= 40 && !matches!(v, Value::Array(_) | Value::InlineTable(_)) {
        format!("{article} {name} ({shown})")
    } else {
        format!("{article} {name}")
    }
}

/// The span of `item`, or `at..at`.
fn span_of(item: &Item, at: usize) -> std::ops::Range<usize> {
    item.span().unwrap_or(at..at)
}

/// Reads one typed value; a wrong type is reported and gives `None`.
pub(super) struct Reader<'r, 'a> {
    pub(super) r: &'r mut Report<'a>,
    /// Keys read with the wrong type.
    pub(super) bad: Vec<&'static str>,
}

impl Reader<'_, '_> {
    fn fail(&mut self, field: &'static str, at: usize, key: impl Display, message: String) {
        self.r.error(at, key, message);
        self.bad.push(field);
    }

    pub(super) fn string(
        &mut self,
        field: &'static str,
        item: &Item,
        at: usize,
        key: impl Display + Copy,
    ) -> Sp<String> {
        match item.as_str() {
            Some(s) => Some(Spanned::new(span_of(item, at), s.to_string())),
            None => {
                self.fail(field, at, key, expected("a string", item));
                None
            }
        }
    }

    pub(super) fn integer(
        &mut self,
        field: &'static str,
        item: &Item,
        at: usize,
        key: impl Display + Copy,
    ) -> Sp<i64> {
        match item.as_integer() {
            Some(n) => Some(Spanned::new(span_of(item, at), n)),
            None => {
                self.fail(field, at, key, expected("an integer", item));
                None
            }
        }
    }

    pub(super) fn boolean(
        &mut self,
        field: &'static str,
        item: &Item,
        at: usize,
        key: impl Display + Copy,
    ) -> Sp<bool> {
        match item.as_bool() {
            Some(b) => Some(Spanned::new(span_of(item, at), b)),
            None => {
                self.fail(field, at, key, expected("true or false", item));
                None
            }
        }
    }

    pub(super) fn strings(
        &mut self,
        field: &'static str,
        item: &Item,
        at: usize,
        key: impl Display + Copy,
    ) -> Sp<Vec<String>> {
        let Some(array) = item.as_array() else {
            self.fail(field, at, key, expected("an array of strings", item));
            return None;
        };
        let mut out = Vec::with_capacity(array.len());
        for (i, v) in array.iter().enumerate() {
            match v.as_str() {
                Some(s) => out.push(s.to_string()),
                None => {
                    let message = format!(
                        "expected an array of strings, but element {} is {}",
                        i + 1,
                        describe(v)
                    );
                    self.fail(field, at, key, message);
                    return None;
                }
            }
        }
        Some(Spanned::new(span_of(item, at), out))
    }

    /// A string or an array of strings (`every`, `cron`).
    fn texts(
        &mut self,
        field: &'static str,
        item: &Item,
        at: usize,
        key: impl Display + Copy,
    ) -> Sp<Texts> {
        if let Some(s) = item.as_str() {
            return Some(Spanned::new(span_of(item, at), Texts::one(s.to_string())));
        }
        if item.as_array().is_none() {
            self.fail(
                field,
                at,
                key,
                expected("a string or an array of strings", item),
            );
            return None;
        }
        self.strings(field, item, at, key).map(|v| {
            let span = v.span();
            let items = v.into_inner();
            Spanned::new(
                span,
                Texts {
                    items,
                    listed: true,
                },
            )
        })
    }

    pub(super) fn string_table(
        &mut self,
        field: &'static str,
        item: &Item,
        at: usize,
        key: impl Display + Copy,
    ) -> Sp<BTreeMap<String, String>> {
        let Some(table) = item.as_table_like() else {
            self.fail(field, at, key, expected("a table of strings", item));
            return None;
        };
        let mut out = BTreeMap::new();
        for (name, v) in table.iter() {
            match v.as_str() {
                Some(s) => {
                    out.insert(name.to_string(), s.to_string());
                }
                None => {
                    let message = format!(
                        "expected a table of strings, but \"{}\" is {}",
                        name.escape_debug(),
                        found(v)
                    );
                    let at = place(table, name, v, at);
                    self.fail(field, at, key, message);
                    return None;
                }
            }
        }
        Some(Spanned::new(span_of(item, at), out))
    }
}

/// The tables of an array of tables (`[[jobs]]`, or `jobs = [{...}]`),
/// each with where it starts; `None` (reported, naming `key` and saying
/// `what` is expected, e.g. "one [[jobs]] table per job") for anything else.
pub(super) fn array_of_tables<'i>(
    r: &mut Report<'_>,
    item: &'i Item,
    at: usize,
    key: &str,
    what: &str,
) -> Option<Vec<(&'i dyn TableLike, usize)>> {
    match item {
        Item::ArrayOfTables(array) => Some(
            array
                .iter()
                .map(|t| (t as &dyn TableLike, t.span().map_or(at, |s| s.start)))
                .collect(),
        ),
        Item::Value(Value::Array(array)) if array.iter().all(Value::is_inline_table) => Some(
            array
                .iter()
                .filter_map(|v| {
                    let start = v.span().map_or(at, |s| s.start);
                    v.as_inline_table().map(|t| (t as &dyn TableLike, start))
                })
                .collect(),
        ),
        other => {
            let message = expected(&format!("an array of tables ({what})"), other);
            r.error(at, key, message);
            None
        }
    }
}

/// `jobs`: an array of tables (`[[jobs]]`, or `jobs = [{...}]`).
fn jobs(r: &mut Report<'_>, item: &Item, at: usize) -> Vec<RawJob> {
    let Some(tables) = array_of_tables(r, item, at, "jobs", "one [[jobs]] table per job") else {
        return Vec::new();
    };
    tables
        .into_iter()
        .enumerate()
        .map(|(index, (table, table_at))| job(r, index, table, table_at))
        .collect()
}

fn job(r: &mut Report<'_>, index: usize, table: &dyn TableLike, table_at: usize) -> RawJob {
    // The name first, so messages about the other keys can show it.
    let name = table.get("name").and_then(Item::as_str).map(str::to_string);
    let mut j = RawJob::new(JobKey { index, name }, table_at);
    let mut rd = Reader { r, bad: Vec::new() };
    for (field, item) in table.iter() {
        let at = place(table, field, item, table_at);
        let k = j.key.key(field);
        match field {
            "name" => {
                // Named in messages by index only: the name is what is wrong.
                let k = format!("jobs[{index}].name");
                j.name = rd.string("name", item, at, &k);
            }
            "kind" => j.kind = rd.string("kind", item, at, k),
            "every" => j.every = rd.texts("every", item, at, k),
            "cron" => j.cron = rd.texts("cron", item, at, k),
            "tz" => j.tz = rd.string("tz", item, at, k),
            "skip_dates" => j.skip_dates = rd.strings("skip_dates", item, at, k),
            "skip_dates_file" => j.skip_dates_file = rd.string("skip_dates_file", item, at, k),
            "timeout" => j.timeout = rd.string("timeout", item, at, k),
            "overlap" => j.overlap = rd.string("overlap", item, at, k),
            "retries" => j.retries = rd.integer("retries", item, at, k),
            "retry_backoff" => j.retry_backoff = rd.string("retry_backoff", item, at, k),
            "jitter" => j.jitter = rd.string("jitter", item, at, k),
            "on_failure" => j.on_failure = rd.string("on_failure", item, at, k),
            "on_success" => j.on_success = rd.string("on_success", item, at, k),
            "after" => j.after = rd.strings("after", item, at, k),
            "at" => j.once_at = rd.string("at", item, at, k),
            "concurrency" => j.concurrency = rd.string("concurrency", item, at, k),
            "catch_up" => j.catch_up = rd.string("catch_up", item, at, k),
            "catch_up_limit" => j.catch_up_limit = rd.integer("catch_up_limit", item, at, k),
            "enabled" => j.enabled = rd.boolean("enabled", item, at, k),
            "command" => j.command = rd.strings("command", item, at, k),
            "env" => j.env = rd.string_table("env", item, at, k),
            "cwd" => j.cwd = rd.string("cwd", item, at, k),
            "user" => j.user = rd.string("user", item, at, k),
            "url" => j.url = rd.string("url", item, at, k),
            "method" => j.method = rd.string("method", item, at, k),
            "headers" => j.headers = rd.string_table("headers", item, at, k),
            "body" => j.body = rd.string("body", item, at, k),
            "expect_status" => j.expect_status = rd.integer("expect_status", item, at, k),
            "database" => j.database = rd.string("database", item, at, k),
            "sql" => j.sql = rd.string("sql", item, at, k),
            "path" => j.path = rd.string("path", item, at, k),
            "pattern" => j.pattern = rd.string("pattern", item, at, k),
            "older_than" => j.older_than = rd.string("older_than", item, at, k),
            "recursive" => j.recursive = rd.boolean("recursive", item, at, k),
            "allow_system_path" => {
                j.allow_system_path = rd.boolean("allow_system_path", item, at, k);
            }
            "limits" => j.limits = super::limits::read(&mut rd, item, at, &j.key),
            "notify" => j.notify = rd.strings("notify", item, at, k),
            "notify_on" => j.notify_on = rd.string("notify_on", item, at, k),
            _ => {
                let message = if DAEMON_KEYS.contains(&field) && !JOB_KEYS.contains(&field) {
                    format!("unknown key; `{field}` is a daemon key, so it belongs in [daemon]")
                } else {
                    // The key it is taken for counts as set (if unusable),
                    // so `comand` is not also reported as a missing command.
                    if let Some(near) = suggest::nearest(field, JOB_KEYS) {
                        rd.bad.push(near);
                    }
                    unknown(field, JOB_KEYS)
                };
                rd.r.error(at, k, message);
            }
        }
    }
    j.bad = rd.bad;
    j
}
