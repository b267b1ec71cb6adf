//! Stage two for the kind-specific keys of a job: `kind` itself, then the
//! keys of that kind (exec: command env cwd user limits, the last in
//! [`super::limits`]; http: url method headers body expect_status; sql:
//! database sql; file.prune: path pattern older_than recursive
//! allow_system_path). A key of another kind is an
//! error, so a job that mixes kinds up is caught rather than half-applied.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::error::{JobKey, Report};
use super::raw::RawJob;
use super::system_path;
use super::values::{self, at};
use super::{ExecSpec, FilePruneSpec, HttpSpec, JobKind, SqlSpec};

/// Every kind a job may name.
pub(crate) const KINDS: [&str; 4] = ["exec", "http", "sql", "file.prune"];
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Validates `kind` and its keys. `None` when the kind is unknown or a
/// required key is missing or bad (the errors are in `r`).
pub(crate) fn validate(
    r: &mut Report<'_>,
    j: &RawJob,
    key: &JobKey,
    table_at: usize,
) -> Option<JobKind> {
    let kind = match &j.kind {
        None => "exec",
        Some(v) => match KINDS.iter().find(|k| **k == v.get_ref().as_str()) {
            Some(kind) => kind,
            None => {
                let message = format!(
                    "unknown kind \"{}\"; expected one of: {}",
                    v.get_ref(),
                    KINDS.join(", ")
                );
                r.error(at(v), key.key("kind"), message);
                return None;
            }
        },
    };
    foreign_keys(r, j, key, kind);
    let mut need = |value: Option<usize>, field: &str| {
        if value.is_none() && !j.is_bad(field) {
            let message = format!("missing; a job of kind \"{kind}\" needs it");
            r.error(table_at, key.key(field), message);
        }
    };
    match kind {
        "exec" => need(j.command.as_ref().map(at), "command"),
        "http" => need(j.url.as_ref().map(at), "url"),
        "sql" => {
            need(j.database.as_ref().map(at), "database");
            need(j.sql.as_ref().map(at), "sql");
        }
        _ => {
            need(j.path.as_ref().map(at), "path");
            need(j.older_than.as_ref().map(at), "older_than");
        }
    }
    match kind {
        "exec" => exec(r, j, key).map(JobKind::Exec),
        "http" => http(r, j, key).map(JobKind::Http),
        "sql" => sql(r, j, key).map(JobKind::Sql),
        _ => file_prune(r, j, key).map(JobKind::FilePrune),
    }
}

/// Reports keys that belong to a kind other than `kind`.
fn foreign_keys(r: &mut Report<'_>, j: &RawJob, key: &JobKey, kind: &str) {
    let owned: [(Option<usize>, &str, &str); 17] = [
        (j.command.as_ref().map(at), "command", "exec"),
        (j.env.as_ref().map(at), "env", "exec"),
        (j.cwd.as_ref().map(at), "cwd", "exec"),
        (j.user.as_ref().map(at), "user", "exec"),
        (j.limits.as_ref().map(at), "limits", "exec"),
        (j.url.as_ref().map(at), "url", "http"),
        (j.method.as_ref().map(at), "method", "http"),
        (j.headers.as_ref().map(at), "headers", "http"),
        (j.body.as_ref().map(at), "body", "http"),
        (j.expect_status.as_ref().map(at), "expect_status", "http"),
        (j.database.as_ref().map(at), "database", "sql"),
        (j.sql.as_ref().map(at), "sql", "sql"),
        (j.path.as_ref().map(at), "path", "file.prune"),
        (j.pattern.as_ref().map(at), "pattern", "file.prune"),
        (j.older_than.as_ref().map(at), "older_than", "file.prune"),
        (j.recursive.as_ref().map(at), "recursive", "file.prune"),
        (
            j.allow_system_path.as_ref().map(at),
            "allow_system_path",
            "file.prune",
        ),
    ];
    for (offset, field, owner) in owned {
        if let (Some(offset), true) = (offset, owner != kind) {
            let message =
                format!("only applies to kind \"{owner}\", and this job's kind is \"{kind}\"");
            r.error(offset, key.key(field), message);
        }
    }
}

/// A required non-empty string.
fn required_text(
    r: &mut Report<'_>,
    value: Option<&Spanned<String>>,
    key: impl std::fmt::Display + Copy,
) -> Option<String> {
    let v = value?;
    let text = values::optional_text(r, Some(v), key);
    if text.as_deref().is_none_or(|t| t.trim().is_empty()) {
        r.error(at(v), key, "must not be empty");
        return None;
    }
    text
}

fn exec(r: &mut Report<'_>, j: &RawJob, key: &JobKey) -> Option<ExecSpec> {
    let command = j.command.as_ref()?;
    let k = key.key("command");
    let argv = command.get_ref();
    let mut ok = true;
    if argv.first().is_none_or(String::is_empty) {
        let message = "must name a program: a non-empty array like [\"sh\", \"-c\", \"...\"]";
        r.error(at(command), k, message);
        ok = false;
    }
    if argv.iter().any(|arg| arg.contains('\0')) {
        r.error(at(command), k, "arguments must not contain a NUL byte");
        ok = false;
    }
    let env = j
        .env
        .as_ref()
        .map(|e| e.get_ref().clone())
        .unwrap_or_default();
    if let Some(v) = &j.env {
        for (name, value) in &env {
            if name.is_empty() || name.contains(['=', '\0']) || value.contains('\0') {
                let message = format!(
                    "invalid variable \"{}\": names must be non-empty without '=' or NUL, \
                     values without NUL",
                    name.escape_debug()
                );
                r.error(at(v), key.key("env"), message);
                ok = false;
            }
        }
    }
    let cwd = j
        .cwd
        .as_ref()
        .and_then(|v| required_text(r, Some(v), key.key("cwd")));
    let user = values::optional_text(r, j.user.as_ref(), key.key("user"));
    if let (Some(name), Some(v)) = (&user, &j.user) {
        if !values::is_account_name(name) {
            let message = format!("\"{name}\" is not a valid user name");
            r.error(at(v), key.key("user"), message);
        } else if !crate::sys::is_root() {
            // A warning, not an error: `tickd check` is often run by a
            // person on a config meant for the root-run daemon.
            let message = "runs will fail: a job's user needs tickd to run as root";
            r.warn(at(v), key.key("user"), message);
        }
    }
    let limits = super::limits::validate(r, j.limits.as_ref(), key);
    ok.then(|| ExecSpec {
        command: argv.clone(),
        env,
        cwd: cwd.map(PathBuf::from),
        user,
        limits,
    })
}

fn http(r: &mut Report<'_>, j: &RawJob, key: &JobKey) -> Option<HttpSpec> {
    let url_key = key.key("url");
    let url = required_text(r, j.url.as_ref(), url_key)?;
    let host = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .and_then(|rest| rest.split(['/', '?', '#']).next())
        .filter(|host| !host.is_empty());
    if let (None, Some(v)) = (host, &j.url) {
        let message = format!("\"{url}\" is not an http:// or https:// URL with a host");
        r.error(at(v), url_key, message);
    }
    let method = match &j.method {
        None => "GET".to_string(),
        Some(v) => {
            let upper = v.get_ref().to_ascii_uppercase();
            if !METHODS.contains(&upper.as_str()) {
                let message = format!("\"{}\" is not one of: {}", v.get_ref(), METHODS.join(", "));
                r.error(at(v), key.key("method"), message);
            }
            upper
        }
    };
    let headers: BTreeMap<String, String> = j
        .headers
        .as_ref()
        .map(|h| h.get_ref().clone())
        .unwrap_or_default();
    if let Some(v) = &j.headers {
        for (name, value) in &headers {
            if !values::is_header(name, value) {
                let message = format!("invalid header \"{}\"", name.escape_debug());
                r.error(at(v), key.key("headers"), message);
            }
        }
    }
    let expect_status = j.expect_status.as_ref().map(|v| {
        values::to(values::int_in(
            r,
            Some(v),
            key.key("expect_status"),
            100..=599,
            200,
        ))
    });
    Some(HttpSpec {
        url,
        method,
        headers,
        body: j.body.as_ref().map(|b| b.get_ref().clone()),
        expect_status,
    })
}

fn sql(r: &mut Report<'_>, j: &RawJob, key: &JobKey) -> Option<SqlSpec> {
    let database = required_text(r, j.database.as_ref(), key.key("database"));
    let sql = required_text(r, j.sql.as_ref(), key.key("sql"));
    Some(SqlSpec {
        database: PathBuf::from(database?),
        sql: sql?,
    })
}

fn file_prune(r: &mut Report<'_>, j: &RawJob, key: &JobKey) -> Option<FilePruneSpec> {
    let path = required_text(r, j.path.as_ref(), key.key("path"));
    let pattern = match &j.pattern {
        None => "*".to_string(),
        Some(v) => {
            let pattern = required_text(r, Some(v), key.key("pattern")).unwrap_or_default();
            if pattern.contains('/') {
                let message = "is matched against file names, so it must not contain '/'";
                r.error(at(v), key.key("pattern"), message);
            }
            pattern
        }
    };
    let older_than = j
        .older_than
        .as_ref()
        .map(|v| values::duration(r, Some(v), key.key("older_than"), Duration::ZERO, false));
    // Relative to the directory tickd was started in, as the daemon's own
    // paths are (a daemonized tickd runs in `/`, where `.` is `/`).
    let path = super::daemon::absolute(&PathBuf::from(path?));
    let allowed = j.allow_system_path.as_ref().is_some_and(|v| *v.get_ref());
    if let (Some(root), false, Some(v)) = (system_path::system_root(&path), allowed, &j.path) {
        let message = format!(
            "\"{}\" is the system directory {root}: pruning it could delete the system's \
             own files; if that is what you mean, add allow_system_path = true to this job",
            path.display()
        );
        r.error(at(v), key.key("path"), message);
        return None;
    }
    Some(FilePruneSpec {
        path,
        pattern,
        older_than: older_than?,
        recursive: j.recursive.as_ref().is_some_and(|v| *v.get_ref()),
    })
}
