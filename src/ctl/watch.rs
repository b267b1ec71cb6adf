//! `tickd ctl watch [--jobs a,b]`: follow `subscribe` and print one line
//! per `run.event` as it arrives, until interrupted.
//! On a terminal (or with `--human`) the line is a short text; otherwise
//! (or with `--json`) it is the run object as compact JSON.
//!
//! When the connection ends (the daemon restarts, or shuts down), `watch`
//! connects again with backoff, subscribes again and says so on stderr,
//! until interrupted; `--no-reconnect` ends it there instead.
//!
//! A daemon may close connections that send nothing for `idle_timeout`
//! (older ones do so even while events flow to a subscriber), so the
//! watcher sends a `ping` whenever it has sent nothing for the keep-alive
//! interval ([`KEEPALIVE`] unless `--keepalive` says otherwise), however
//! many events it receives meanwhile; the answers are skipped like any
//! other non-event line.

use super::conn::{CallError, Conn, Keepalive};
use super::Format;
use serde_json::{json, Value};
use std::time::Duration;

/// How often an otherwise silent watcher pings the daemon by default:
/// below any sensible `idle_timeout` (default 5 minutes), and one small
/// line per interval costs the daemon next to nothing.
pub const KEEPALIVE: Duration = Duration::from_secs(5);

/// The first wait before reconnecting, doubled after each failed attempt
/// up to [`RECONNECT_MAX`].
const RECONNECT_FIRST: Duration = Duration::from_millis(100);

/// The longest wait between two attempts to reconnect.
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// The error code of a daemon too busy or shutting down.
const BUSY: i64 = -32002;

/// How a watch ends or goes on.
pub struct Options<'a> {
    /// `--jobs`.
    pub jobs: &'a [String],
    /// Text lines or JSON.
    pub format: Format,
    /// Ping after this long without sending.
    pub keepalive: Duration,
    /// Opens (and authenticates) a new connection after the daemon closed
    /// the old one; `None` (`--no-reconnect`) ends the watch there.
    pub reconnect: Option<&'a dyn Fn() -> Result<Conn, String>>,
    /// The daemon's address, for messages.
    pub target: String,
}

/// Subscribes on `conn` and prints events until the reader of stdout goes
/// away, or, without `reconnect`, until the daemon closes the connection
/// (`Ok`). With `reconnect`, a lost connection is opened again (with
/// backoff, forever) and subscribed again, and stderr says so; events
/// while it was away are not shown.
pub fn run(mut conn: Conn, o: &Options<'_>) -> Result<(), String> {
    subscribe(&mut conn, o.jobs).map_err(|e| e.to_string())?;
    let what = if o.jobs.is_empty() {
        "all jobs".to_string()
    } else {
        o.jobs.join(", ")
    };
    eprintln!("watching runs of {what} (Ctrl-C to stop)");
    loop {
        let why = match follow(&mut conn, o.format, o.keepalive) {
            Ok(Ended::ReaderGone) => return Ok(()),
            Ok(Ended::Closed) => "the daemon closed the connection".to_string(),
            Err(e) => e,
        };
        let Some(open) = o.reconnect else {
            eprintln!("{why}");
            return if why.starts_with("the daemon closed") {
                Ok(())
            } else {
                Err(why)
            };
        };
        eprintln!("{why}; reconnecting to {}", o.target);
        conn = reconnect(open, o.jobs)?;
        eprintln!(
            "reconnected to {}; watching runs of {what} again (events while disconnected are not shown)",
            o.target
        );
    }
}

/// `subscribe` to the runs of `jobs` (all for none).
fn subscribe(conn: &mut Conn, jobs: &[String]) -> Result<(), CallError> {
    let params = if jobs.is_empty() {
        json!({})
    } else {
        json!({ "jobs": jobs })
    };
    conn.call("subscribe", params).map(|_| ())
}

/// Opens and subscribes a new connection, waiting longer after each
/// failure. A connection that fails is tried again; a daemon that answers
/// `subscribe` with an error (a job of `--jobs` no longer exists) ends the
/// watch. Each different failure is printed once.
fn reconnect(open: &dyn Fn() -> Result<Conn, String>, jobs: &[String]) -> Result<Conn, String> {
    let mut wait = RECONNECT_FIRST;
    let mut last_error = String::new();
    loop {
        std::thread::sleep(wait);
        let failure = match open() {
            Ok(mut conn) => match subscribe(&mut conn, jobs) {
                Ok(()) => return Ok(conn),
                // -32002: busy or shutting down, worth another try.
                Err(e @ CallError::Rpc { code, .. }) if code != BUSY => {
                    return Err(format!("subscribe: {e}"))
                }
                Err(e) => e.to_string(),
            },
            Err(e) => e,
        };
        if failure != last_error {
            eprintln!(
                "tickd ctl: {failure}; retrying (up to every {}s)",
                RECONNECT_MAX.as_secs()
            );
            last_error = failure;
        }
        wait = (wait * 2).min(RECONNECT_MAX);
    }
}

/// Why [`follow`] returned.
enum Ended {
    /// The daemon closed the connection.
    Closed,
    /// Stdout's reader went away.
    ReaderGone,
}

/// Prints the events arriving on `conn`, pinging every `keepalive`.
fn follow(conn: &mut Conn, format: Format, keepalive: Duration) -> Result<Ended, String> {
    let mut pings = Keepalive::new(keepalive);
    while let Some(msg) = pings.next(conn)? {
        if msg["method"] != "run.event" {
            continue;
        }
        let run = &msg["params"];
        let line = match format {
            Format::Json => format!("{run}\n"),
            Format::Human => format!("{}\n", event_line(run)),
        };
        if !super::write_stdout(&line)? {
            return Ok(Ended::ReaderGone);
        }
    }
    Ok(Ended::Closed)
}

/// One human line for a run event:
/// `2026-11-30T11:00:05.123Z  run 12  backup  succeeded  in 1.25 s, exit 0`.
pub fn event_line(run: &Value) -> String {
    let state = run["state"].as_str().unwrap_or("?");
    let time = match state {
        "queued" => &run["queued_at"],
        "running" => &run["started_at"],
        _ => &run["finished_at"],
    };
    let time = time
        .as_str()
        .or_else(|| run["queued_at"].as_str())
        .unwrap_or("-");
    let job = run["job"].as_str().unwrap_or("(submitted)");
    let id = match &run["run_id"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut line = format!("{time}  run {id}  {job}  {state}");
    let mut details = Vec::new();
    match state {
        "queued" => {
            if let Some(t) = run["trigger"].as_str() {
                details.push(t.to_string());
            }
            if let Some(a) = run["attempt"].as_u64().filter(|a| *a > 1) {
                details.push(format!("attempt {a}"));
            }
        }
        "running" => {}
        _ => {
            if let Some(ms) = run["duration_ms"].as_u64() {
                details.push(format!("in {}", super::render::duration_short(ms)));
            }
            let code = run["exit_code"].as_i64();
            if let Some(code) = code {
                details.push(format!("exit {code}"));
            }
            if let Some(err) = run["error"].as_str() {
                // "exit status 3" only repeats the exit code; "cancelled" the state.
                let repeats =
                    err == state || code.is_some_and(|c| err == format!("exit status {c}"));
                if !repeats {
                    details.push(err.to_string());
                }
            }
        }
    }
    if !details.is_empty() {
        line.push_str("  ");
        line.push_str(&details.join(", "));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_name_run_job_state_and_outcome() {
        let queued = json!({"run_id": "7", "job": "backup", "state": "queued",
            "trigger": "manual", "attempt": 1, "queued_at": "2026-11-30T11:00:00.000Z"});
        assert_eq!(
            event_line(&queued),
            "2026-11-30T11:00:00.000Z  run 7  backup  queued  manual"
        );
        let failed = json!({"run_id": "7", "job": "backup", "state": "failed",
            "finished_at": "2026-11-30T11:00:01.250Z", "duration_ms": 1250,
            "exit_code": 3, "error": "exit status 3"});
        assert_eq!(
            event_line(&failed),
            "2026-11-30T11:00:01.250Z  run 7  backup  failed  in 1.25 s, exit 3"
        );
        let submitted = json!({"run_id": "8", "job": null, "state": "running",
            "started_at": "2026-11-30T11:00:02.000Z"});
        let timed_out = json!({"run_id": "9", "job": "slow", "state": "timed_out",
            "finished_at": "2026-11-30T11:00:31.000Z", "duration_ms": 30_000,
            "exit_code": null, "error": "timed out after 30s"});
        assert_eq!(
            event_line(&timed_out),
            "2026-11-30T11:00:31.000Z  run 9  slow  timed_out  in 30.00 s, timed out after 30s"
        );
        assert_eq!(
            event_line(&submitted),
            "2026-11-30T11:00:02.000Z  run 8  (submitted)  running"
        );
    }
}
