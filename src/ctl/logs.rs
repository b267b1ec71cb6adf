//! `tickd ctl logs [-f] RUN_ID|JOB`: a run's output, as it is, on stdout
//! (`runs.output`). A word of digits is a run id; anything else a job
//! name, meaning that job's latest run (`runs.list {job, limit: 1}`).
//!
//! With `-f` and a run not finished, it asks `runs.output` to follow and
//! writes each `run.output` notification's data until the last one
//! (`done`), then says on stderr how the run ended. A daemon that drops a
//! follower that read too slowly says so (`dropped`); `logs` then asks
//! again from the offset it had reached, so nothing is printed twice, and
//! bytes the daemon no longer keeps are reported on stderr as lost. Like
//! `watch`, it pings the daemon whenever it has sent nothing for the
//! keep-alive interval, so `idle_timeout` does not end a quiet run's follow.

use super::conn::{Conn, Keepalive};
use serde_json::{json, Value};
use std::time::Duration;

/// Prints the output of `target`'s run; with `follow`, until the run ends.
pub fn run(conn: &mut Conn, target: &str, follow: bool, keepalive: Duration) -> Result<(), String> {
    let run_id = run_of(conn, target)?;
    let mut next = 0;
    let first = output(conn, &run_id, follow, next)?;
    let Some(state) = print_chunk(&first, &mut next)? else {
        return Ok(());
    };
    if !follow {
        return Ok(());
    }
    if first["done"] == true {
        eprintln!("run {run_id} {state}");
        return Ok(());
    }
    let mut pings = Keepalive::new(keepalive);
    loop {
        let Some(msg) = pings.next(conn)? else {
            return Err(format!(
                "the daemon closed the connection before run {run_id} ended"
            ));
        };
        let p = &msg["params"];
        if msg["method"] != "run.output" || p["run_id"].as_str() != Some(run_id.as_str()) {
            continue;
        }
        if p["dropped"] == true {
            // Too slow for the daemon: ask again from where we are.
            let again = output(conn, &run_id, true, next)?;
            pings.sent();
            let Some(state) = print_chunk(&again, &mut next)? else {
                return Ok(());
            };
            if again["done"] == true {
                eprintln!("run {run_id} {state}");
                return Ok(());
            }
            continue;
        }
        let offset = p["offset"].as_u64().unwrap_or(next);
        let data = p["data"].as_str().unwrap_or("");
        if offset > next {
            eprintln!("tickd ctl: {} bytes of output were lost", offset - next);
            next = offset;
        }
        // A notification that overlaps what was printed: only its new part.
        let end = offset + data.len() as u64;
        if end > next {
            let skip = usize::try_from(next - offset).unwrap_or(usize::MAX);
            let fresh = data.get(skip..).unwrap_or(data);
            if !super::write_stdout(fresh)? {
                return Ok(());
            }
            next = end;
        }
        if p["done"] == true {
            eprintln!("run {run_id} {}", p["state"].as_str().unwrap_or("ended"));
            return Ok(());
        }
    }
}

/// The run id `target` names: itself when all digits, else the latest run
/// of the job of that name.
fn run_of(conn: &mut Conn, target: &str) -> Result<String, String> {
    if !target.is_empty() && target.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(target.to_string());
    }
    let runs = conn
        .call("runs.list", json!({"job": target, "limit": 1}))
        .map_err(|e| e.to_string())?;
    match runs.as_array().and_then(|r| r.first()) {
        Some(run) => match &run["run_id"] {
            Value::String(id) => Ok(id.clone()),
            other => Err(format!("runs.list answered a run without an id: {other}")),
        },
        None => Err(format!(
            "job {target} has no runs yet (start one: tickd ctl run {target})"
        )),
    }
}

/// `runs.output {run_id, follow, from}`.
fn output(conn: &mut Conn, run_id: &str, follow: bool, from: u64) -> Result<Value, String> {
    let mut params = json!({"run_id": run_id, "from": from});
    if follow {
        params["follow"] = Value::Bool(true);
    }
    conn.call("runs.output", params).map_err(|e| e.to_string())
}

/// Writes a `runs.output` answer's output and moves `next` past it; says
/// on stderr how many asked-for bytes were no longer kept. The run's state,
/// or `None` when stdout's reader went away.
fn print_chunk(answer: &Value, next: &mut u64) -> Result<Option<String>, String> {
    if let Some(lost) = answer["lost"].as_u64().filter(|l| *l > 0) {
        eprintln!("tickd ctl: {lost} earlier bytes of the output are no longer kept");
    }
    if !super::write_stdout(answer["output"].as_str().unwrap_or(""))? {
        return Ok(None);
    }
    if let Some(n) = answer["next"].as_u64() {
        *next = n;
    }
    Ok(Some(answer["state"].as_str().unwrap_or("?").to_string()))
}
