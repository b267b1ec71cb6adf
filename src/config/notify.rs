//! `[[notify]]` tables: the sinks that are told about runs (issue 19,
//! docs/notifications.md), read and checked in one pass from the item the
//! file's reading kept, like `[concurrency]`. Jobs name them with
//! `notify = ["NAME"]` (checked across the file in `validate.rs`); a reload
//! may change them.
//!
//! A webhook's `body` is a [`Template`]: JSON text with `{{FIELD}}`
//! placeholders, parsed here once, so that an unknown field or a template
//! that cannot give JSON is an error at load with its line, never a
//! surprise at the first failure. Delivering is `crate::alerts`'s.

use std::collections::BTreeMap;
use std::time::Duration;

use toml_edit::{Item, TableLike};

use super::error::Report;
use super::raw::{array_of_tables, place, unknown, Reader};
use super::values::{self, is_job_name};

/// The keys of a `[[notify]]` table.
const KEYS: [&str; 11] = [
    "name",
    "kind",
    "url",
    "headers",
    "body",
    "command",
    "format",
    "to",
    "from",
    "link_base",
    "timeout",
];

/// The fields a template may name, each with what it is (for the docs and
/// messages). The message built for a run has exactly these.
pub const FIELDS: [&str; 16] = [
    "text",
    "event",
    "job",
    "run_id",
    "state",
    "trigger",
    "attempt",
    "error",
    "exit_code",
    "duration_ms",
    "duration",
    "started_at",
    "finished_at",
    "output",
    "node",
    "link",
];

/// How long one delivery attempt may take, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// One `[[notify]]` sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifySink {
    /// Its name, as jobs' `notify` lists give it.
    pub name: String,
    /// Where and how messages go.
    pub kind: SinkKind,
    /// The start of the link sent with a run (`{link_base}/runs/{run_id}`),
    /// if set.
    pub link_base: Option<String>,
    /// Longest time one delivery attempt may take.
    pub timeout: Duration,
}

/// A sink's kind and its settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkKind {
    /// An HTTP POST of JSON.
    Webhook {
        /// `http://` or `https://` URL (it may hold a secret: never logged
        /// whole).
        url: String,
        /// Extra request headers (never logged).
        headers: BTreeMap<String, String>,
        /// The body; `None` = the Slack-compatible default.
        body: Option<Template>,
    },
    /// A program that reads the message on its stdin.
    Exec {
        /// argv, run without a shell.
        command: Vec<String>,
        /// What it reads.
        format: Format,
        /// `To:` addresses (`format = "mail"`).
        to: Vec<String>,
        /// `From:` address (`format = "mail"`).
        from: Option<String>,
    },
}

/// What an exec sink reads on stdin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object (the template fields), then a newline.
    Json,
    /// A mail with `To:`, `Subject:` headers, for `sendmail -t`.
    Mail,
}

/// A parsed `body` template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    /// The text and the placeholders, in order.
    pub parts: Vec<Piece>,
}

/// A piece of a [`Template`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Copied as is.
    Text(String),
    /// `{{FIELD}}`: the value escaped for the inside of a JSON string
    /// (numbers as digits, null as nothing).
    Field(&'static str),
    /// `{{FIELD:json}}`: the value as a JSON value (a string with its
    /// quotes, a number, null).
    Json(&'static str),
}

impl Template {
    /// Parses `text`; `Err` says what is wrong.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Piece::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err("a `{{` is not closed by `}}`".to_string());
            };
            let inner = after[..close].trim();
            let (name, json) = match inner.strip_suffix(":json") {
                Some(name) => (name.trim(), true),
                None => (inner, false),
            };
            let Some(field) = FIELDS.iter().find(|f| **f == name) else {
                return Err(format!(
                    "unknown field `{{{{{inner}}}}}`; the fields are: {}",
                    FIELDS.join(", ")
                ));
            };
            parts.push(if json {
                Piece::Json(field)
            } else {
                Piece::Field(field)
            });
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Piece::Text(rest.to_string()));
        }
        let template = Template { parts };
        // With every field a string that needs escaping, a number, null.
        let samples = [
            serde_json::Value::from("a \"b\"\n"),
            serde_json::Value::from(1),
            serde_json::Value::Null,
        ];
        for sample in samples {
            let out = template.render(|_| sample.clone());
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&out) {
                return Err(format!(
                    "does not give JSON once filled in ({e}); put {{{{FIELD}}}} inside a \
                     JSON string, or use {{{{FIELD:json}}}} for a JSON value"
                ));
            }
        }
        Ok(template)
    }

    /// The template filled in with `value(field)`.
    pub fn render(&self, value: impl Fn(&str) -> serde_json::Value) -> String {
        let mut out = String::new();
        for piece in &self.parts {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Json(field) => out.push_str(&value(field).to_string()),
                Piece::Field(field) => match value(field) {
                    serde_json::Value::Null => {}
                    serde_json::Value::String(s) => {
                        let quoted = serde_json::Value::String(s).to_string();
                        out.push_str(&quoted[1..quoted.len() - 1]);
                    }
                    other => out.push_str(&other.to_string()),
                },
            }
        }
        out
    }
}

/// Both stages for the `notify` item: the sinks by name.
pub(super) fn check(r: &mut Report<'_>, item: &Item, at: usize) -> BTreeMap<String, NotifySink> {
    let Some(tables) = array_of_tables(r, item, at, "notify", "one [[notify]] table per sink")
    else {
        return BTreeMap::new();
    };
    let mut out: BTreeMap<String, NotifySink> = BTreeMap::new();
    for (index, (table, table_at)) in tables.into_iter().enumerate() {
        if let Some((sink, name_at)) = sink(r, index, table, table_at) {
            if out.contains_key(&sink.name) {
                let message = format!("duplicate sink name \"{}\"", sink.name);
                r.error(name_at, format!("notify[{index}].name"), message);
            } else {
                out.insert(sink.name.clone(), sink);
            }
        }
    }
    out
}

/// The raw keys of one table.
#[derive(Default)]
struct RawSink {
    name: super::raw::Sp<String>,
    kind: super::raw::Sp<String>,
    url: super::raw::Sp<String>,
    headers: super::raw::Sp<BTreeMap<String, String>>,
    body: super::raw::Sp<String>,
    command: super::raw::Sp<Vec<String>>,
    format: super::raw::Sp<String>,
    to: super::raw::Sp<Vec<String>>,
    from: super::raw::Sp<String>,
    link_base: super::raw::Sp<String>,
    timeout: super::raw::Sp<String>,
}

/// Reads and checks one `[[notify]]` table; the sink and where its name is.
fn sink(
    r: &mut Report<'_>,
    index: usize,
    table: &dyn TableLike,
    table_at: usize,
) -> Option<(NotifySink, usize)> {
    let label = match table.get("name").and_then(Item::as_str) {
        Some(name) if is_job_name(name) => format!("notify.{name}"),
        _ => format!("notify[{index}]"),
    };
    let mut s = RawSink::default();
    let mut rd = Reader { r, bad: Vec::new() };
    for (field, item) in table.iter() {
        let at = place(table, field, item, table_at);
        let k = format!("{label}.{field}");
        let k = k.as_str();
        match field {
            "name" => s.name = rd.string("name", item, at, k),
            "kind" => s.kind = rd.string("kind", item, at, k),
            "url" => s.url = rd.string("url", item, at, k),
            "headers" => s.headers = rd.string_table("headers", item, at, k),
            "body" => s.body = rd.string("body", item, at, k),
            "command" => s.command = rd.strings("command", item, at, k),
            "format" => s.format = rd.string("format", item, at, k),
            "to" => {
                s.to = match item.as_str() {
                    Some(one) => rd.string("to", item, at, k).map(|v| {
                        let span = v.span();
                        toml::Spanned::new(span, vec![one.to_string()])
                    }),
                    None => rd.strings("to", item, at, k),
                }
            }
            "from" => s.from = rd.string("from", item, at, k),
            "link_base" => s.link_base = rd.string("link_base", item, at, k),
            "timeout" => s.timeout = rd.string("timeout", item, at, k),
            _ => rd.r.error(at, k, unknown(field, KEYS)),
        }
    }
    let bad = rd.bad;
    let r = rd.r;
    let name_key = format!("notify[{index}].name");
    // A sink without a usable name is still checked, for its other keys.
    let named = match &s.name {
        Some(v) if is_job_name(v.get_ref()) => Some((v.get_ref().clone(), values::at(v))),
        Some(v) => {
            let message = format!(
                "\"{}\" is not a valid sink name; use 1 to 64 characters of A-Z a-z 0-9 _ . -",
                v.get_ref().escape_debug()
            );
            r.error(values::at(v), name_key, message);
            None
        }
        None => {
            if !bad.contains(&"name") {
                r.error(table_at, name_key, "missing; every sink needs a name");
            }
            None
        }
    };
    let key = |field: &str| format!("{label}.{field}");
    let timeout = values::duration(
        r,
        s.timeout.as_ref(),
        key("timeout").as_str(),
        DEFAULT_TIMEOUT,
        true,
    );
    let link_base = values::optional_text(r, s.link_base.as_ref(), key("link_base").as_str())
        .map(|l| l.trim_end_matches('/').to_string());
    let kind_name = values::choice(
        r,
        s.kind.as_ref(),
        key("kind").as_str(),
        &["webhook", "exec"],
        "",
    );
    if s.kind.is_none() && !bad.contains(&"kind") {
        r.error(
            table_at,
            key("kind"),
            "missing; kind = \"webhook\" or \"exec\"",
        );
    }
    // Keys of the other kind.
    let foreign: &[(&str, Option<usize>)] = match kind_name {
        "webhook" => &[
            ("command", s.command.as_ref().map(values::at)),
            ("format", s.format.as_ref().map(values::at)),
            ("to", s.to.as_ref().map(values::at)),
            ("from", s.from.as_ref().map(values::at)),
        ],
        "exec" => &[
            ("url", s.url.as_ref().map(values::at)),
            ("headers", s.headers.as_ref().map(values::at)),
            ("body", s.body.as_ref().map(values::at)),
        ],
        _ => &[],
    };
    for (field, at) in foreign {
        if let Some(at) = at {
            let message = format!("is not a key of a {kind_name} sink");
            r.error(*at, key(field), message);
        }
    }
    let kind = match kind_name {
        "webhook" => webhook(r, &s, &key, table_at)?,
        "exec" => exec(r, &s, &key, table_at)?,
        _ => return None,
    };
    let (name, name_at) = named?;
    let sink = NotifySink {
        name,
        kind,
        link_base,
        timeout,
    };
    Some((sink, name_at))
}

fn webhook(
    r: &mut Report<'_>,
    s: &RawSink,
    key: &dyn Fn(&str) -> String,
    table_at: usize,
) -> Option<SinkKind> {
    let Some(v) = &s.url else {
        r.error(table_at, key("url"), "missing; a webhook needs a url");
        return None;
    };
    let url = v.get_ref().clone();
    let host = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .and_then(|rest| rest.split(['/', '?', '#']).next())
        .filter(|host| !host.is_empty());
    if host.is_none() || url.contains(char::is_whitespace) {
        // Not quoted: a webhook URL often holds its secret.
        r.error(
            values::at(v),
            key("url"),
            "is not an http:// or https:// URL with a host",
        );
    }
    let headers = s
        .headers
        .as_ref()
        .map(|h| h.get_ref().clone())
        .unwrap_or_default();
    if let Some(v) = &s.headers {
        for (name, value) in &headers {
            if !values::is_header(name, value) {
                let message = format!("invalid header \"{}\"", name.escape_debug());
                r.error(values::at(v), key("headers"), message);
            }
        }
    }
    let body = match &s.body {
        None => None,
        Some(v) => match Template::parse(v.get_ref()) {
            Ok(t) => Some(t),
            Err(message) => {
                r.error(values::at(v), key("body"), message);
                None
            }
        },
    };
    Some(SinkKind::Webhook { url, headers, body })
}

fn exec(
    r: &mut Report<'_>,
    s: &RawSink,
    key: &dyn Fn(&str) -> String,
    table_at: usize,
) -> Option<SinkKind> {
    let command = match &s.command {
        Some(v) if v.get_ref().first().is_some_and(|p| !p.is_empty()) => v.get_ref().clone(),
        Some(v) => {
            r.error(
                values::at(v),
                key("command"),
                "must name a program: [\"PROGRAM\", \"ARG\", ...]",
            );
            return None;
        }
        None => {
            r.error(
                table_at,
                key("command"),
                "missing; an exec sink needs command = [\"PROGRAM\", \"ARG\", ...]",
            );
            return None;
        }
    };
    if let Some(v) = s
        .command
        .as_ref()
        .filter(|_| command.iter().any(|a| a.contains('\0')))
    {
        r.error(values::at(v), key("command"), "must not contain a NUL byte");
    }
    let format = match values::choice(
        r,
        s.format.as_ref(),
        key("format").as_str(),
        &["json", "mail"],
        "json",
    ) {
        "mail" => Format::Mail,
        _ => Format::Json,
    };
    let to =
        s.to.as_ref()
            .map(|v| v.get_ref().clone())
            .unwrap_or_default();
    let from = values::optional_text(r, s.from.as_ref(), key("from").as_str());
    let header_safe = |a: &String| !a.is_empty() && !a.contains(['\r', '\n', '\0', ',']);
    if let Some(v) = &s.to {
        if format == Format::Json {
            r.error(
                values::at(v),
                key("to"),
                "only applies to format = \"mail\"",
            );
        } else if !to.iter().all(header_safe) {
            r.error(
                values::at(v),
                key("to"),
                "each address must be non-empty, without a comma or a line break",
            );
        }
    }
    if let (Some(v), Some(from)) = (&s.from, &from) {
        if format == Format::Json {
            r.error(
                values::at(v),
                key("from"),
                "only applies to format = \"mail\"",
            );
        } else if !header_safe(from) {
            r.error(values::at(v), key("from"), "must not contain a line break");
        }
    }
    if format == Format::Mail && to.is_empty() && s.to.is_none() {
        r.error(
            table_at,
            key("to"),
            "missing; format = \"mail\" needs to = \"ADDRESS\" (or a list)",
        );
    }
    Some(SinkKind::Exec {
        command,
        format,
        to,
        from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_of_every_sink_is_reported_with_its_line() {
        let text = r#"
[[notify]]
name = "a"
kind = "webhook"
url = "ftp://x/"
command = ["x"]

[[notify]]
kind = "pager"
nme = "p"

[[notify]]
name = "m"
kind = "exec"
command = ["sendmail", "-t"]
format = "mail"

[[jobs]]
name = "j"
command = ["true"]
notify = ["a", "zz"]
"#;
        let err = crate::config::parse(text, std::path::Path::new("t.toml")).unwrap_err();
        assert_eq!(
            err.messages(),
            [
                "t.toml:5: notify.a.url: is not an http:// or https:// URL with a host",
                "t.toml:6: notify.a.command: is not a key of a webhook sink",
                "t.toml:8: notify[1].name: missing; every sink needs a name",
                "t.toml:9: notify[1].kind: \"pager\" is not one of: webhook, exec",
                "t.toml:10: notify[1].nme: unknown key; did you mean `name`?",
                "t.toml:12: notify.m.to: missing; format = \"mail\" needs to = \"ADDRESS\" (or a list)",
                "t.toml:21: jobs[0].notify (job \"j\"): names the sink \"zz\", which no [[notify]] table defines (defined: a, m)",
            ]
        );
        let ok = text
            .replace("ftp", "https")
            .replace("command = [\"x\"]\n", "")
            .replace(
                "kind = \"pager\"\nnme = \"p\"",
                "name = \"p\"\nkind = \"exec\"\ncommand = [\"true\"]",
            )
            .replace(
                "format = \"mail\"",
                "format = \"mail\"\nto = \"ops@example.com\"",
            )
            .replace(", \"zz\"", "");
        let config = crate::config::parse(&ok, std::path::Path::new("t.toml")).expect("valid");
        assert_eq!(config.notify.keys().collect::<Vec<_>>(), ["a", "m", "p"]);
        assert_eq!(config.jobs[0].notify, ["a"]);
        assert_eq!(config.jobs[0].notify_on, crate::config::NotifyOn::Failure);
    }

    #[test]
    fn templates_name_known_fields_and_give_json() {
        let t = Template::parse(r#"{"t": "job {{job}} {{ state }}", "c": {{exit_code:json}}}"#)
            .expect("valid");
        let out = t.render(|f| match f {
            "job" => "a\"b".into(),
            "state" => "failed".into(),
            _ => serde_json::Value::Null,
        });
        assert_eq!(out, r#"{"t": "job a\"b failed", "c": null}"#);
        let err = Template::parse(r#"{"t": "{{jbo}}"}"#).unwrap_err();
        assert!(err.contains("unknown field `{{jbo}}`"), "{err}");
        let err = Template::parse(r#"{"t": {{job}}}"#).unwrap_err();
        assert!(err.contains("does not give JSON"), "{err}");
        assert!(Template::parse(r#"{"t": "{{job"}"#).is_err());
    }
}
