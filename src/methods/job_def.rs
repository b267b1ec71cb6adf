//! `jobs.get`'s `definition`: what a job runs, and the settings of its
//! definition that the job object does not already show (issue 19, item 6:
//! `tickd ctl jobs NAME`).
//!
//! Kind by kind: exec `command`, `env`, `cwd`, `user`, `limits`; http
//! `url`, `method`, `headers`, `body`, `expect_status`; sql `database`,
//! `sql`; file.prune `path`, `pattern`, `older_than_ms`, `recursive`. Then
//! for every kind `retries`, `retry_backoff_ms`, `jitter_ms`, `on_failure`,
//! `on_success`, `after`, `concurrency`, `catch_up_limit`, `notify`,
//! `notify_on`. The secrets among them (`env` and http `headers`
//! values, the http `body`) are hidden from a read token by the request
//! layer ([`crate::auth::redact_answer`]), on the way out.

use crate::config::{JobDef, JobKind, Limits};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// The `definition` object of `def`.
pub fn definition(def: &JobDef) -> Value {
    let secret_map = |m: &BTreeMap<String, String>| -> Value {
        m.iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect::<Map<String, Value>>()
            .into()
    };
    let mut out = match &*def.kind {
        JobKind::Exec(e) => json!({
            "command": e.command,
            "env": secret_map(&e.env),
            "cwd": e.cwd.as_ref().map(|p| p.display().to_string()),
            "user": e.user,
            "limits": limits(&e.limits),
        }),
        JobKind::Http(h) => json!({
            "url": h.url,
            "method": h.method,
            "headers": secret_map(&h.headers),
            "body": h.body,
            "expect_status": h.expect_status,
        }),
        JobKind::Sql(s) => json!({
            "database": s.database.display().to_string(),
            "sql": s.sql,
        }),
        JobKind::FilePrune(p) => json!({
            "path": p.path.display().to_string(),
            "pattern": p.pattern,
            "older_than_ms": ms(p.older_than),
            "recursive": p.recursive,
        }),
    };
    let common = json!({
        "retries": def.retries,
        "retry_backoff_ms": ms(def.retry_backoff),
        "jitter_ms": ms(def.jitter),
        "on_failure": def.on_failure,
        "on_success": def.on_success,
        "after": def.after,
        "concurrency": def.concurrency,
        "catch_up_limit": def.catch_up_limit,
        "notify": def.notify,
        "notify_on": def.notify_on.as_str(),
    });
    if let (Value::Object(out), Value::Object(common)) = (&mut out, common) {
        out.extend(common);
    }
    out
}

/// The limits that are set, as the config names them; `{}` for none.
fn limits(l: &Limits) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    };
    put("memory", l.memory.map(Value::from));
    put("cpu_time", l.cpu_time.map(Value::from));
    put("open_files", l.open_files.map(Value::from));
    put("nice", l.nice.map(Value::from));
    put("io_class", l.io_class.map(|c| Value::from(c.as_str())));
    Value::Object(m)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(toml: &str) -> JobDef {
        let text = format!("[daemon]\nlisten = \"127.0.0.1:0\"\n\n[[jobs]]\nname = \"j\"\n{toml}");
        let config = crate::config::parse(&text, std::path::Path::new("t.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        config.jobs[0].clone()
    }

    #[test]
    fn exec_shows_command_env_and_limits() {
        let def = job("command = [\"sh\", \"-c\", \"echo hi\"]\nenv = { TOKEN = \"s3cret\" }\nretries = 2\nlimits = { nice = 10 }\n");
        let d = definition(&def);
        assert_eq!(d["command"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(d["env"]["TOKEN"], "s3cret");
        assert_eq!(d["limits"], json!({"nice": 10}));
        assert_eq!(d["retries"], 2);
        assert_eq!(d["after"], json!([]));
        assert_eq!(
            (&d["notify"], &d["notify_on"]),
            (&json!([]), &json!("failure"))
        );
    }

    #[test]
    fn http_shows_its_request_and_a_read_token_gets_it_redacted() {
        let def = job("kind = \"http\"\nurl = \"http://127.0.0.1:9/x\"\nmethod = \"POST\"\nheaders = { Authorization = \"Bearer x\" }\nbody = \"{}\"\n");
        let d = definition(&def);
        assert_eq!(d["url"], "http://127.0.0.1:9/x");
        assert_eq!(d["method"], "POST");
        assert_eq!(d["headers"]["Authorization"], "Bearer x");
        assert_eq!(d["body"], "{}");
        // What a read token gets instead.
        let mut job = json!({ "definition": d });
        crate::auth::redact_answer("jobs.get", &mut job);
        let hidden = &job["definition"];
        assert_eq!(hidden["headers"]["Authorization"], crate::auth::REDACTED);
        assert_eq!(hidden["body"], crate::auth::REDACTED);
        assert_eq!(hidden["url"], "http://127.0.0.1:9/x");
    }
}
