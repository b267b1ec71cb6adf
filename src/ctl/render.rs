//! Human-friendly text for `tickd ctl`: the `status` summary, the
//! `jobs.list` table, and the duration and relative-time wording they share.
//!
//! Everything here reads fields defensively: a field missing from an answer
//! (an older or newer daemon) prints as `?` rather than failing.

use serde_json::Value;
use tickd::time::{text, Timestamp};

/// The `status` result as a few labelled lines.
pub fn status(s: &Value, now: Timestamp) -> String {
    let mut out = String::new();
    let health = text(&s["health"]);
    let stopping = if s["stopping"] == Value::Bool(true) {
        ", stopping"
    } else {
        ""
    };
    out.push_str(&format!(
        "tickd {} (pid {}), up {}, health {health}{stopping}\n",
        text(&s["version"]),
        text(&s["pid"]),
        s["uptime_ms"]
            .as_u64()
            .map_or_else(|| "?".into(), duration_long),
    ));
    let w = &s["workers"];
    out.push_str(&format!(
        "workers:     {} alive of {}, {} busy, {} respawned\n",
        text(&w["alive"]),
        text(&w["configured"]),
        text(&w["busy"]),
        text(&w["respawned"]),
    ));
    out.push_str(&format!(
        "queue:       {} waiting, capacity {}\n",
        text(&s["queue"]["depth"]),
        text(&s["queue"]["capacity"]),
    ));
    out.push_str(&format!("connections: {}\n", text(&s["connections"])));
    if !s["jobs"].is_null() {
        out.push_str(&format!("jobs:        {}\n", text(&s["jobs"])));
    }
    if let Some(line) = api_jobs(&s["api_jobs"]) {
        out.push_str(&line);
    }
    let c = &s["config"];
    out.push_str(&format!(
        "config:      {}, generation {}, loaded {}\n",
        text(&c["path"]),
        text(&c["generation"]),
        when(&c["loaded_at"], now),
    ));
    if let Some(err) = c["last_reload_error"].as_str() {
        out.push_str(&format!("last reload error: {err}\n"));
    }
    out
}

/// The `jobs.list` result as an aligned table, one job per row.
pub fn jobs_table(jobs: &[Value], now: Timestamp) -> String {
    if jobs.is_empty() {
        return "no jobs configured\n".into();
    }
    let header = [
        "NAME",
        "KIND",
        "SCHEDULE",
        "ENABLED",
        "RUNNING",
        "NEXT RUN",
        "LAST STATE",
        "LAST DURATION",
    ];
    let rows: Vec<Vec<String>> = jobs.iter().map(|j| job_row(j, now)).collect();
    table(&header, &rows)
}

fn job_row(j: &Value, now: Timestamp) -> Vec<String> {
    let last = &j["last_run"];
    let running = match (j["running"].as_bool(), j["running_count"].as_u64()) {
        (Some(true), Some(n)) if n > 1 => format!("yes ({n})"),
        (Some(true), _) => "yes".into(),
        (Some(false), _) => "no".into(),
        (None, _) => "?".into(),
    };
    let next = if j["enabled"] == Value::Bool(false) {
        "paused".into()
    } else {
        when(&j["next_run"], now)
    };
    vec![
        text(&j["name"]),
        text(&j["kind"]),
        schedule(&j["schedule"]),
        yes_no(&j["enabled"]),
        running,
        next,
        last["state"].as_str().unwrap_or("-").to_string(),
        last["duration_ms"]
            .as_u64()
            .map_or_else(|| "-".into(), duration_short),
    ]
}

/// Left-aligned columns separated by two spaces; no trailing blanks.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A timestamp relative to `now`: `in 4s`, `2m 5s ago`; `-` for null.
pub fn when(ts: &Value, now: Timestamp) -> String {
    let Some(s) = ts.as_str() else {
        return "-".into();
    };
    let Ok(t) = text::parse(s) else {
        return s.to_string();
    };
    // Rounded toward zero; any two instants are within i64 milliseconds.
    let ms = i64::try_from(now.duration_until(t).as_millis()).unwrap_or(i64::MAX);
    match ms {
        // Within a second either way reads best as "now".
        -999..=999 => "now".into(),
        1000.. => format!("in {}", duration_long(ms.unsigned_abs())),
        _ => format!("{} ago", duration_long(ms.unsigned_abs())),
    }
}

/// A run duration with the precision that matters at its size:
/// `3 ms`, `1.25 s`, `2m 05s`, `1h 02m`.
pub fn duration_short(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        1000..=59_999 => format!("{:.2} s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{}m {:02}s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{}h {:02}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

/// A longer span to the second: `4s`, `3m 20s`, `2h 5m`, `3d 4h`.
pub fn duration_long(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, s / 60 % 60),
        _ => format!("{}d {}h", s / 86_400, s / 3600 % 24),
    }
}

/// A job's `schedule`: its text, its texts joined (several schedules), or
/// "manual".
fn schedule(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let texts: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            texts.join(", ")
        }
        _ => "manual".to_string(),
    }
}

fn yes_no(v: &Value) -> String {
    match v.as_bool() {
        Some(true) => "yes".into(),
        Some(false) => "no".into(),
        None => "?".into(),
    }
}

/// A scalar as plain text (strings without quotes); `?` when missing.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => "?".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The `api jobs:` line of the status summary: how many jobs were defined
/// through the API, and what is wrong with them (held, kept aside); none
/// when there are no such jobs.
fn api_jobs(api: &Value) -> Option<String> {
    let count = |key: &str| api[key].as_u64().unwrap_or(0);
    let (defined, held, aside) = (count("defined"), count("held"), count("conflicts_total"));
    if defined == 0 && aside == 0 {
        return None;
    }
    let mut line = format!("api jobs:    {defined} defined");
    if held > 0 {
        line.push_str(&format!(", {held} held (daemon.allow_job_api is false)"));
    }
    if aside > 0 {
        let names: Vec<&str> = api["conflicts"]
            .as_array()
            .map(|c| c.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default();
        line.push_str(&format!(", {aside} kept aside: {}", names.join(", ")));
    }
    line.push('\n');
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        text::parse("2026-11-30T11:00:00.000Z").unwrap_or_default()
    }

    #[test]
    fn durations_read_at_their_scale() {
        assert_eq!(duration_short(3), "3 ms");
        assert_eq!(duration_short(1250), "1.25 s");
        assert_eq!(duration_short(125_000), "2m 05s");
        assert_eq!(duration_short(3_720_000), "1h 02m");
        assert_eq!(duration_long(200_000), "3m 20s");
        assert_eq!(duration_long(90_000_000), "1d 1h");
    }

    #[test]
    fn times_are_relative_to_now() {
        assert_eq!(when(&json!("2026-11-30T11:00:04.200Z"), now()), "in 4s");
        assert_eq!(when(&json!("2026-11-30T10:57:55.000Z"), now()), "2m 5s ago");
        assert_eq!(when(&json!("2026-11-30T11:00:00.300Z"), now()), "now");
        assert_eq!(when(&Value::Null, now()), "-");
    }

    #[test]
    fn several_schedules_are_listed_together() {
        assert_eq!(
            schedule(&json!(["0 9 * * MON-FRI", "30 10 * * SAT"])),
            "0 9 * * MON-FRI, 30 10 * * SAT"
        );
        assert_eq!(schedule(&json!("5s")), "5s");
        assert_eq!(schedule(&Value::Null), "manual");
    }

    #[test]
    fn jobs_table_aligns_columns_and_words_states() {
        let jobs = vec![
            json!({"name": "heartbeat", "kind": "exec", "schedule": "5s", "enabled": true,
                   "running": false, "next_run": "2026-11-30T11:00:03.000Z",
                   "last_run": {"state": "succeeded", "duration_ms": 3}}),
            json!({"name": "b", "kind": "http", "schedule": null, "enabled": false,
                   "running": true, "running_count": 2, "next_run": null, "last_run": null}),
        ];
        let out = jobs_table(&jobs, now());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].starts_with("NAME       KIND  SCHEDULE"), "{out}");
        assert!(
            lines[1].contains("in 3s")
                && lines[1].contains("succeeded")
                && lines[1].ends_with("3 ms"),
            "{out}"
        );
        assert!(
            lines[2].contains("manual") && lines[2].contains("paused"),
            "{out}"
        );
        assert!(lines[2].contains("yes (2)"), "{out}");
        // Columns line up: KIND starts at the same offset in every line.
        let col = lines[0].find("KIND").unwrap_or(0);
        assert_eq!(&lines[1][col..col + 4], "exec");
        assert_eq!(&lines[2][col..col + 4], "http");
    }

    #[test]
    fn status_summary_shows_health_workers_and_reload_error() {
        let s = json!({"version": "0.1.0", "pid": 42, "uptime_ms": 200_000, "health": "ok",
            "workers": {"configured": 4, "alive": 4, "busy": 1, "respawned": 0},
            "queue": {"depth": 0, "capacity": 1024}, "connections": 1, "jobs": 3,
            "config": {"path": "conf/tickd.toml", "generation": 2,
                       "loaded_at": "2026-11-30T10:59:00.000Z",
                       "last_reload_error": "conf/tickd.toml:3: bad"}});
        let out = status(&s, now());
        assert!(
            out.starts_with("tickd 0.1.0 (pid 42), up 3m 20s, health ok\n"),
            "{out}"
        );
        assert!(out.contains("4 alive of 4, 1 busy"), "{out}");
        assert!(out.contains("generation 2, loaded 1m 0s ago"), "{out}");
        assert!(
            out.contains("last reload error: conf/tickd.toml:3: bad"),
            "{out}"
        );
        assert!(!out.contains("api jobs"), "none defined: {out}");
    }

    #[test]
    fn status_summary_says_what_is_wrong_with_api_jobs() {
        let api = json!({"allowed": false, "defined": 2, "held": 2, "conflicts_total": 1,
            "conflicts": [{"name": "x", "reason": "..."}]});
        assert_eq!(
            api_jobs(&api).as_deref(),
            Some(
                "api jobs:    2 defined, 2 held (daemon.allow_job_api is false), 1 kept aside: x\n"
            )
        );
        assert_eq!(api_jobs(&json!({"defined": 0, "conflicts_total": 0})), None);
    }
}
