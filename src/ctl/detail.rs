//! Human text for `tickd ctl`'s daily subcommands: one job in detail
//! (`jobs NAME`: what it runs, its schedule and next runs, its limits and
//! last runs), one run (`run --wait`, `cancel`), and the `runs` table.
//! Like [`super::render`], fields are read defensively: a missing one
//! prints as `?` or is left out.

use super::render::{duration_short, table, text, when};
use serde_json::Value;
use tickd::time::Timestamp;

/// How many of a job's last runs `jobs NAME` lists.
const LAST_RUNS: usize = 5;

/// `jobs NAME`: the `jobs.get` answer (with `definition` and `next_runs`).
pub fn job(j: &Value, now: Timestamp) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        out.push_str(&format!("{label:<11} {value}\n"));
    };
    let source = match j["source"].as_str() {
        Some("api") => ", defined with jobs.put",
        _ => "",
    };
    line(
        "job:",
        format!("{} ({}{source})", text(&j["name"]), text(&j["kind"])),
    );
    let d = &j["definition"];
    for (label, value) in runs_what(&j["kind"], d) {
        line(label, value);
    }
    let schedule = match &j["schedule"] {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        _ => "manual (no schedule)".into(),
    };
    let tz = j["tz"]
        .as_str()
        .map(|tz| format!(" ({tz})"))
        .unwrap_or_default();
    line("schedule:", format!("{schedule}{tz}"));
    let state = match (j["enabled"].as_bool(), j["paused"].as_bool()) {
        (Some(true), _) => "enabled".to_string(),
        (_, Some(true)) => "paused (tickd ctl resume NAME)".to_string(),
        (Some(false), _) => "disabled (enabled = false in its file)".to_string(),
        _ => "?".to_string(),
    };
    line("state:", state);
    if let Some(held) = j["held"].as_str() {
        line("held:", held.to_string());
    }
    let next: Vec<String> = j["next_runs"]
        .as_array()
        .map(|n| {
            n.iter()
                .map(|t| format!("{} ({})", text(t), when(t, now)))
                .collect()
        })
        .unwrap_or_default();
    match next.split_first() {
        None => line("next runs:", "-".into()),
        Some((first, rest)) => {
            let note = if j["enabled"] == false {
                "  [not while paused or disabled]"
            } else {
                ""
            };
            line("next runs:", format!("{first}{note}"));
            for n in rest {
                line("", n.clone());
            }
        }
    }
    line("limits:", limits(j, d));
    let after: Vec<&str> = d["after"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut flow = Vec::new();
    if !after.is_empty() {
        flow.push(format!("after {}", after.join(", ")));
    }
    for key in ["on_success", "on_failure"] {
        if let Some(t) = d[key].as_str() {
            flow.push(format!("{key} {t}"));
        }
    }
    if !flow.is_empty() {
        line("triggers:", flow.join("; "));
    }
    line(
        "counts:",
        format!(
            "{} runs ended, {} failed, {} skipped, {} missed; {} running, {} queued",
            text(&j["runs_total"]),
            text(&j["failures_total"]),
            text(&j["skipped_total"]),
            text(&j["missed_total"]),
            text(&j["running_count"]),
            text(&j["queued_count"]),
        ),
    );
    // The newest run (perhaps still going), then the finished ones.
    let mut runs: Vec<Value> = Vec::new();
    if j["last_run"].is_object() {
        runs.push(j["last_run"].clone());
    }
    for r in j["history"].as_array().into_iter().flatten() {
        if runs.len() >= LAST_RUNS {
            break;
        }
        if !runs.iter().any(|seen| seen["run_id"] == r["run_id"]) {
            runs.push(r.clone());
        }
    }
    if runs.is_empty() {
        out.push_str("last runs:  none\n");
    } else {
        out.push_str("last runs:\n");
        for row in runs_table(&runs, now).lines() {
            out.push_str(&format!("  {row}\n"));
        }
    }
    out
}

/// The lines saying what a job runs, by kind.
fn runs_what(kind: &Value, d: &Value) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let map = |v: &Value| -> Option<String> {
        let m = v.as_object().filter(|m| !m.is_empty())?;
        Some(
            m.iter()
                .map(|(k, v)| format!("{k}={}", text(v)))
                .collect::<Vec<_>>()
                .join(" "),
        )
    };
    match kind.as_str() {
        Some("exec") => {
            let argv: Vec<String> = d["command"]
                .as_array()
                .map(|a| a.iter().map(|w| shell_word(&text(w))).collect())
                .unwrap_or_default();
            out.push(("command:", argv.join(" ")));
            if let Some(cwd) = d["cwd"].as_str() {
                out.push(("cwd:", cwd.to_string()));
            }
            if let Some(user) = d["user"].as_str() {
                out.push(("user:", user.to_string()));
            }
            if let Some(env) = map(&d["env"]) {
                out.push(("env:", env));
            }
        }
        Some("http") => {
            out.push((
                "request:",
                format!("{} {}", text(&d["method"]), text(&d["url"])),
            ));
            if let Some(h) = map(&d["headers"]) {
                out.push(("headers:", h));
            }
            if let Some(body) = d["body"].as_str() {
                out.push(("body:", body.to_string()));
            }
            if let Some(s) = d["expect_status"].as_u64() {
                out.push(("expects:", format!("status {s}")));
            }
        }
        Some("sql") => {
            out.push(("database:", text(&d["database"])));
            out.push(("sql:", text(&d["sql"]).trim().replace('\n', " ")));
        }
        Some("file.prune") => {
            let age = d["older_than_ms"]
                .as_u64()
                .map_or_else(|| "?".into(), setting);
            let deep = if d["recursive"] == true {
                ", recursive"
            } else {
                ""
            };
            out.push((
                "prunes:",
                format!(
                    "{}/{} older than {age}{deep}",
                    text(&d["path"]).trim_end_matches('/'),
                    text(&d["pattern"])
                ),
            ));
        }
        _ => {}
    }
    out
}

/// `timeout 10m, overlap skip, retries 2 (backoff 1s), ...`.
fn limits(j: &Value, d: &Value) -> String {
    let mut parts = Vec::new();
    match j["timeout_ms"].as_u64() {
        Some(ms) => parts.push(format!("timeout {}", setting(ms))),
        None => parts.push("no timeout".into()),
    }
    parts.push(format!("overlap {}", text(&j["overlap"])));
    if let Some(r) = d["retries"].as_u64().filter(|r| *r > 0) {
        let backoff = d["retry_backoff_ms"]
            .as_u64()
            .map(|ms| format!(" (backoff {})", setting(ms)))
            .unwrap_or_default();
        parts.push(format!("retries {r}{backoff}"));
    }
    if let Some(ms) = d["jitter_ms"].as_u64().filter(|ms| *ms > 0) {
        parts.push(format!("jitter {}", setting(ms)));
    }
    if let Some(c) = d["concurrency"].as_str() {
        parts.push(format!("concurrency {c}"));
    }
    if j["catch_up"].as_str().is_some_and(|c| c != "none") {
        parts.push(format!("catch_up {}", text(&j["catch_up"])));
    }
    if let Some(l) = d["limits"].as_object() {
        for (k, v) in l {
            parts.push(format!("{k} {}", text(v)));
        }
    }
    parts.join(", ")
}

/// A duration setting as a config file writes it: `10s`, `1m`, `1h 30m`.
fn setting(ms: u64) -> String {
    humantime::format_duration(std::time::Duration::from_millis(ms)).to_string()
}

/// `argv` word as a shell would need it: bare when plain, else quoted.
fn shell_word(w: &str) -> String {
    let plain = !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c));
    if plain {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

/// `run --wait` and `cancel`: one summary line, then the output.
pub fn run(r: &Value) -> String {
    let mut out = format!(
        "run {} ({})  {}",
        text(&r["run_id"]),
        r["job"].as_str().unwrap_or("submitted"),
        text(&r["state"])
    );
    let result = outcome(r);
    if result != "-" && r["error"] != r["state"] {
        out.push_str(&format!("  {result}"));
    }
    if let Some(ms) = r["duration_ms"].as_u64() {
        out.push_str(&format!("  in {}", duration_short(ms)));
    }
    out.push('\n');
    if let Some(output) = r["output"].as_str().filter(|o| !o.is_empty()) {
        out.push_str(output);
        if !output.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// `runs`: one row per run.
pub fn runs_table(runs: &[Value], now: Timestamp) -> String {
    let header = [
        "RUN", "JOB", "STATE", "TRIGGER", "QUEUED", "DURATION", "RESULT",
    ];
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                text(&r["run_id"]),
                r["job"].as_str().unwrap_or("(submitted)").to_string(),
                text(&r["state"]),
                text(&r["trigger"]),
                when(&r["queued_at"], now),
                r["duration_ms"]
                    .as_u64()
                    .map_or_else(|| "-".into(), duration_short),
                outcome(r),
            ]
        })
        .collect();
    table(&header, &rows)
}

/// `exit 0`, `exit 3`, or the error when it says more than the exit code.
fn outcome(r: &Value) -> String {
    let code = r["exit_code"].as_i64();
    match (code, r["error"].as_str()) {
        (Some(c), Some(e)) if e != format!("exit status {c}") => format!("exit {c}, {e}"),
        (Some(c), _) => format!("exit {c}"),
        (None, Some(e)) => e.to_string(),
        (None, None) => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        tickd::time::text::parse("2026-11-30T11:00:00.000Z").unwrap_or_default()
    }

    #[test]
    fn a_job_in_detail_says_what_it_runs_and_when() {
        let j = json!({"name": "backup", "kind": "exec", "source": "file",
            "schedule": "0 3 * * *", "tz": null, "enabled": true, "paused": false,
            "next_runs": ["2026-12-01T03:00:00.000Z"], "timeout_ms": 600_000,
            "overlap": "skip", "catch_up": "none", "runs_total": 2, "failures_total": 1,
            "skipped_total": 0, "missed_total": 0, "running_count": 0, "queued_count": 0,
            "definition": {"command": ["sh", "-c", "tar czf /b.tgz /srv"], "env": {},
                "cwd": null, "user": null, "limits": {"nice": 10}, "retries": 2,
                "retry_backoff_ms": 1000, "after": []},
            "last_run": {"run_id": "7", "job": "backup", "state": "failed",
                "trigger": "schedule", "exit_code": 3, "error": "exit status 3",
                "duration_ms": 5, "queued_at": "2026-11-30T10:59:00.000Z"},
            "history": [{"run_id": "7"}, {"run_id": "6", "job": "backup",
                "state": "succeeded", "exit_code": 0, "trigger": "manual"}]});
        let out = job(&j, now());
        assert!(out.starts_with("job:        backup (exec)\n"), "{out}");
        assert!(
            out.contains("command:    sh -c 'tar czf /b.tgz /srv'\n"),
            "{out}"
        );
        assert!(out.contains("schedule:   0 3 * * *\n"), "{out}");
        assert!(
            out.contains("next runs:  2026-12-01T03:00:00.000Z (in 16h 0m)\n"),
            "{out}"
        );
        assert!(
            out.contains(
                "limits:     timeout 10m, overlap skip, retries 2 (backoff 1s), nice 10\n"
            ),
            "{out}"
        );
        assert!(out.contains("  7    backup  failed"), "{out}");
        assert!(out.contains("  6    backup  succeeded"), "{out}");
        assert_eq!(out.matches("  7  ").count(), 1, "run 7 once: {out}");
    }

    #[test]
    fn a_finished_run_shows_its_outcome_and_output() {
        let r = json!({"run_id": "4", "job": "flaky", "state": "failed", "exit_code": 3,
            "error": "exit status 3", "duration_ms": 4, "output": "giving up"});
        assert_eq!(
            run(&r),
            "run 4 (flaky)  failed  exit 3  in 4 ms\ngiving up\n"
        );
        let c = json!({"run_id": "5", "job": "slow", "state": "cancelled",
            "exit_code": null, "error": "cancelled", "duration_ms": 1500, "output": ""});
        assert_eq!(run(&c), "run 5 (slow)  cancelled  in 1.50 s\n");
    }
}
