//! A job's definition as `jobs.get` shows it (`definition`): what the job
//! runs and the settings around it, so `tickd ctl job NAME` and the status
//! page can say what a job does without the config file at hand.
//!
//! Secrets can sit in a definition: an exec job's `env` values, an http
//! job's `headers` values and `body`. [`Secrets::Redacted`] replaces each
//! of them with [`REDACTED`] (the keys stay, so the reader sees that a
//! variable or header is set); who gets which is decided by the caller's
//! role (see [`crate::auth`]).

use crate::config::{JobDef, JobKind};
use serde_json::{json, Map, Value};

/// What a redacted secret reads as.
pub const REDACTED: &str = "<redacted>";

/// Whether secrets are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)] // `Redacted` is chosen by the caller's role (roles land next)
pub enum Secrets {
    Shown,
    Redacted,
}

/// The definition of `def` as a JSON object.
pub fn definition(def: &JobDef, secrets: Secrets) -> Value {
    let hide = |v: &str| match secrets {
        Secrets::Shown => Value::from(v),
        Secrets::Redacted => Value::from(REDACTED),
    };
    let mut out = Map::new();
    out.insert("kind".into(), def.kind.name().into());
    match &*def.kind {
        JobKind::Exec(e) => {
            out.insert("command".into(), json!(e.command));
            let env: Map<String, Value> = e.env.iter().map(|(k, v)| (k.clone(), hide(v))).collect();
            out.insert("env".into(), env.into());
            out.insert("cwd".into(), json!(e.cwd));
            out.insert("user".into(), json!(e.user));
            let l = &e.limits;
            if !l.is_empty() {
                out.insert(
                    "limits".into(),
                    json!({
                        "memory": l.memory,
                        "cpu_time": l.cpu_time,
                        "open_files": l.open_files,
                        "nice": l.nice,
                        "io_class": l.io_class.map(|c| c.as_str()),
                    }),
                );
            }
        }
        JobKind::Http(h) => {
            out.insert("url".into(), h.url.clone().into());
            out.insert("method".into(), h.method.clone().into());
            let headers: Map<String, Value> = h
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), hide(v)))
                .collect();
            out.insert("headers".into(), headers.into());
            out.insert("body".into(), h.body.as_deref().map_or(Value::Null, hide));
            out.insert("expect_status".into(), json!(h.expect_status));
        }
        JobKind::Sql(s) => {
            out.insert("database".into(), json!(s.database));
            out.insert("sql".into(), s.sql.clone().into());
        }
        JobKind::FilePrune(p) => {
            out.insert("path".into(), json!(p.path));
            out.insert("pattern".into(), p.pattern.clone().into());
            out.insert(
                "older_than".into(),
                humantime::format_duration(p.older_than).to_string().into(),
            );
            out.insert("recursive".into(), p.recursive.into());
        }
    }
    let dur = |d: std::time::Duration| Value::from(humantime::format_duration(d).to_string());
    out.insert("timeout".into(), def.timeout.map_or(Value::Null, dur));
    out.insert("retries".into(), def.retries.into());
    if def.retries > 0 {
        out.insert("retry_backoff".into(), dur(def.retry_backoff));
    }
    if !def.jitter.is_zero() {
        out.insert("jitter".into(), dur(def.jitter));
    }
    out.insert("on_failure".into(), json!(def.on_failure));
    out.insert("on_success".into(), json!(def.on_success));
    out.insert("after".into(), json!(def.after));
    out.insert("concurrency".into(), json!(def.concurrency));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn http_job() -> JobDef {
        let text = "[[jobs]]\nname = \"hook\"\nkind = \"http\"\n\
                    url = \"https://example.invalid/x\"\nmethod = \"POST\"\n\
                    headers = { Authorization = \"Bearer s3cret\" }\n\
                    body = '{\"password\":\"hunter2\"}'\n";
        let config = crate::config::parse(text, Path::new("t.toml")).expect("config");
        config.jobs.into_iter().next().expect("one job")
    }

    #[test]
    fn redacted_hides_header_values_and_body_but_keeps_keys() {
        let shown = definition(&http_job(), Secrets::Shown).to_string();
        assert!(
            shown.contains("s3cret") && shown.contains("hunter2"),
            "{shown}"
        );
        let hidden = definition(&http_job(), Secrets::Redacted);
        let text = hidden.to_string();
        assert!(
            !text.contains("s3cret") && !text.contains("hunter2"),
            "{text}"
        );
        assert_eq!(hidden["headers"]["Authorization"], REDACTED);
        assert_eq!(hidden["body"], REDACTED);
        assert_eq!(hidden["url"], "https://example.invalid/x");
    }
}
