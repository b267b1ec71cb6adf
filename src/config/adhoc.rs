//! Ad-hoc job definitions sent with `submit`.
//!
//! A submitted job is checked by the very same rules as a job in the file:
//! its JSON object is turned into a one-job TOML document and validated, so
//! there is one definition of what a valid job is. Keys that only make sense
//! for a named, scheduled job are refused up front, and messages name the
//! key as `job.KEY` (there is no file line to point at).

use std::path::Path;

use serde_json::{Map, Value};

use super::JobDef;

/// Keys a submitted job may not have: it has no name and no schedule, and
/// nothing can refer to it.
const REFUSED: [&str; 10] = [
    "name",
    "on_failure",
    "every",
    "cron",
    "tz",
    "jitter",
    "enabled",
    "catch_up",
    "catch_up_limit",
    "overlap",
];

/// The name a submitted job carries internally (runs show `job: null`).
pub const ADHOC_NAME: &str = "submitted";

/// Validates a `submit` job object. `Err` is a list of `job.KEY: message`
/// problems joined with "; ".
pub fn parse_adhoc_job(job: &Map<String, Value>) -> Result<JobDef, String> {
    if let Some(key) = REFUSED.iter().find(|k| job.contains_key(**k)) {
        return Err(format!(
            "job.{key}: not allowed in a submitted job (it has no name or schedule)"
        ));
    }
    if let Some((key, _)) = job.iter().find(|(_, v)| has_null(v)) {
        return Err(format!("job.{key}: null is not a value; leave the key out"));
    }
    let mut table = job.clone();
    table.insert("name".into(), Value::from(ADHOC_NAME));
    let doc = serde_json::json!({ "jobs": [Value::Object(table)] });
    let text = toml::to_string(&doc).map_err(|e| format!("job: {e}"))?;
    let config = super::parse(&text, Path::new("submit")).map_err(|e| {
        e.messages()
            .iter()
            .map(|m| readable(m))
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    config
        .jobs
        .into_iter()
        .next()
        .ok_or_else(|| "job: not a valid job".to_string())
}

fn has_null(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(items) => items.iter().any(has_null),
        Value::Object(map) => map.values().any(has_null),
        _ => false,
    }
}

/// `submit:3: jobs[0].command (job "submitted"): msg` → `job.command: msg`.
fn readable(message: &str) -> String {
    let tail = message
        .split_once("jobs[0].")
        .map_or(message, |(_, rest)| rest);
    let tail = tail.replace(&format!(" (job \"{ADHOC_NAME}\")"), "");
    format!("job.{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::JobKind;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn a_valid_exec_job_parses_with_the_file_rules() {
        let def = parse_adhoc_job(&obj(json!({
            "kind": "exec",
            "command": ["sh", "-c", "echo hi"],
            "timeout": "5s",
            "retries": 1,
            "env": {"A": "b"}
        })))
        .expect("valid");
        assert!(matches!(*def.kind, JobKind::Exec(_)));
        assert_eq!(def.timeout, Some(std::time::Duration::from_secs(5)));
        assert_eq!(def.retries, 1);
        assert!(def.schedule.is_none());
    }

    #[test]
    fn problems_name_the_key() {
        let err = parse_adhoc_job(&obj(json!({"kind": "exec", "command": []}))).unwrap_err();
        assert!(err.starts_with("job.command: must name a program"), "{err}");
        let err = parse_adhoc_job(&obj(
            json!({"kind": "exec", "command": ["x"], "timeout": "soon"}),
        ))
        .unwrap_err();
        assert!(err.starts_with("job.timeout: "), "{err}");
        let err = parse_adhoc_job(&obj(json!({"kind": "exec", "command": ["x"], "bogus": 1})))
            .unwrap_err();
        assert!(err.contains("bogus"), "{err}");
        let err = parse_adhoc_job(&obj(json!({"kind": "ftp"}))).unwrap_err();
        assert!(err.starts_with("job.kind: unknown kind"), "{err}");
        let err = parse_adhoc_job(&obj(
            json!({"kind": "exec", "command": ["x"], "retries": "2"}),
        ))
        .unwrap_err();
        assert!(err.starts_with("job.retries"), "{err}");
    }

    #[test]
    fn schedule_and_name_keys_are_refused() {
        for key in REFUSED {
            let err = parse_adhoc_job(&obj(json!({"command": ["true"], key: "x"}))).unwrap_err();
            assert!(err.starts_with(&format!("job.{key}: not allowed")), "{err}");
        }
        let err = parse_adhoc_job(&obj(json!({"command": ["true"], "cwd": null}))).unwrap_err();
        assert!(err.starts_with("job.cwd: null"), "{err}");
    }
}
