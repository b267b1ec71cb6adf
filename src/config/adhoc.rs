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
const REFUSED: [&str; 18] = [
    "name",
    "on_failure",
    "on_success",
    "after",
    "concurrency",
    "every",
    "cron",
    "at",
    "skip_dates",
    "skip_dates_file",
    "tz",
    "jitter",
    "enabled",
    "catch_up",
    "catch_up_limit",
    "overlap",
    "notify",
    "notify_on",
];

/// Keys a job defined with `jobs.put` may not have yet, with why.
const NOT_FOR_API_JOBS: [&str; 2] = ["notify", "notify_on"];

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
    if job.contains_key("on_success") {
        return Err(
            "job.on_success: not available for jobs defined through the API yet; \
                    chain jobs with on_success in the config file"
                .to_string(),
        );
    }
    let mut table = job.clone();
    table.insert("name".into(), Value::from(ADHOC_NAME));
    parse_one(table, "submit", ADHOC_NAME)
}

/// Validates a `jobs.put` job object: the keys of a `[[jobs]]` table,
/// `name` included, by the file's rules. `Err` is a list of `job.KEY:
/// message` problems joined with "; ".
///
/// `skip_dates_file` is refused: list the dates in `skip_dates`.
///
/// `on_failure` is only checked to be a job name's text here: whether it
/// names a job, and whether that forms a cycle, depends on the jobs the
/// daemon has, which the caller checks (the file's rule would look for
/// the target in this one-job document).
pub fn parse_api_job(job: &Map<String, Value>) -> Result<JobDef, String> {
    if let Some((key, _)) = job.iter().find(|(_, v)| has_null(v)) {
        return Err(format!("job.{key}: null is not a value; leave the key out"));
    }
    // The daemon would read a file a client names (and quote it in errors).
    if job.contains_key("skip_dates_file") {
        return Err(
            "job.skip_dates_file: not allowed in a job defined through the API \
                    (the daemon would read a file a client names); list the dates in skip_dates"
                .to_string(),
        );
    }
    if let Some(key) = NOT_FOR_API_JOBS.iter().find(|k| job.contains_key(**k)) {
        return Err(format!(
            "job.{key}: not available for jobs defined through the API yet; \
             set notify and notify_on on a job of the config file"
        ));
    }
    let mut table = job.clone();
    // A text target is taken out and put back once the rest is valid; any
    // other value stays for the file's rules to refuse.
    let target = match table.get("on_failure") {
        Some(Value::String(t)) if !t.is_empty() && !t.contains('\0') => table
            .remove("on_failure")
            .and_then(|v| v.as_str().map(str::to_string)),
        _ => None,
    };
    let name = job.get("name").and_then(Value::as_str).unwrap_or_default();
    let mut def = parse_one(table, "jobs.put", name)?;
    if target.is_some() {
        def.on_failure = target;
    }
    Ok(def)
}

/// Validates `table` as the only `[[jobs]]` table of a file named
/// `origin`; `name` is the job's name, left out of the messages.
fn parse_one(table: Map<String, Value>, origin: &str, name: &str) -> Result<JobDef, String> {
    let doc = serde_json::json!({ "jobs": [Value::Object(table)] });
    let text = toml::to_string(&doc).map_err(|e| format!("job: {e}"))?;
    let config = super::parse(&text, Path::new(origin)).map_err(|e| {
        e.messages()
            .iter()
            .map(|m| readable(m, name))
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
fn readable(message: &str, name: &str) -> String {
    let tail = message
        .split_once("jobs[0].")
        .map_or(message, |(_, rest)| rest);
    let tail = tail.replacen(&format!(" (job \"{}\")", name.escape_debug()), "", 1);
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

    #[test]
    fn an_api_job_has_a_name_and_a_schedule_checked_by_the_file_rules() {
        let def = parse_api_job(&obj(json!({
            "name": "nightly",
            "command": ["true"],
            "cron": "0 3 * * *",
            "overlap": "queue",
            "on_failure": "alarm"
        })))
        .expect("valid");
        assert_eq!(def.name, "nightly");
        assert!(def.schedule.is_some());
        assert_eq!(
            def.on_failure.as_deref(),
            Some("alarm"),
            "checked by the caller"
        );
        let err = parse_api_job(&obj(json!({"command": ["true"]}))).unwrap_err();
        assert!(err.starts_with("job.name: missing"), "{err}");
        let err = parse_api_job(&obj(json!({"name": "a b", "command": ["true"]}))).unwrap_err();
        assert!(
            err.starts_with("job.name: \"a b\" is not a valid job name"),
            "{err}"
        );
        let err = parse_api_job(&obj(
            json!({"name": "x", "command": ["true"], "every": "soon"}),
        ))
        .unwrap_err();
        assert!(err.starts_with("job.every: "), "{err}");
        assert!(!err.contains("(job "), "the name is left out: {err}");
        let err = parse_api_job(&obj(
            json!({"name": "x", "command": ["true"], "on_failure": 3}),
        ))
        .unwrap_err();
        assert!(err.starts_with("job.on_failure: "), "{err}");
        let err = parse_api_job(&obj(json!({"name": "x", "cwd": null}))).unwrap_err();
        assert!(err.starts_with("job.cwd: null"), "{err}");
    }
}
