//! `tickd ctl`: call any method of a running daemon from the shell.
//!
//! `tickd ctl [--connect HOST:PORT | --unix PATH] [--token T] METHOD [PARAMS_JSON]`
//! sends one JSON-RPC request (after `auth` when a token is given over TCP)
//! and prints the result as pretty JSON on stdout, or the error message on
//! stderr with exit code 1. `status` and `jobs.list` print a summary and a
//! table instead, unless `--json` is given; `watch` follows `subscribe`.
//!
//! - [`conn`]: connecting, authenticating, requests and answers;
//! - [`render`]: the status summary and the jobs table;
//! - [`watch`]: the event follower.

mod conn;
mod render;
mod watch;

use clap::Args;
use conn::{CallError, Conn, Target, NOT_AUTHENTICATED};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `tickd ctl`.
#[derive(Args, Debug)]
pub struct CtlArgs {
    /// TCP address of the daemon.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:7070")]
    connect: String,
    /// Unix socket of the daemon (instead of TCP; no token needed).
    #[arg(long, value_name = "PATH", conflicts_with = "connect")]
    unix: Option<PathBuf>,
    /// Auth token, sent with `auth` before the call (also from TICKD_TOKEN).
    #[arg(long, env = "TICKD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the raw result as pretty JSON, also for status and jobs.list
    /// (with watch: one compact JSON run object per line).
    #[arg(long)]
    json: bool,
    /// With watch: only these jobs (comma-separated names).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    jobs: Vec<String>,
    /// Give up when the answer takes longer than this (e.g. "30s"); by
    /// default wait as long as it takes (jobs.run with wait can be long).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// Method to call (status, jobs.list, jobs.run, runs.cancel, ...), or
    /// `watch` to print run events as they happen.
    method: String,
    /// Params as a JSON object, e.g. '{"name":"heartbeat","wait":true}'.
    #[arg(value_name = "PARAMS_JSON")]
    params: Option<String>,
}

/// Runs `tickd ctl`; returns the process exit code.
pub fn main(args: &CtlArgs) -> i32 {
    match ctl(args) {
        Ok(()) => 0,
        Err(msg) => {
            eprintln!("tickd ctl: {msg}");
            1
        }
    }
}

fn ctl(args: &CtlArgs) -> Result<(), String> {
    let is_watch = args.method == "watch";
    if !is_watch && !args.jobs.is_empty() {
        return Err("--jobs only applies to `watch`".into());
    }
    if is_watch && args.params.is_some() {
        return Err("watch takes no PARAMS_JSON; choose jobs with --jobs a,b".into());
    }
    let params = parse_params(args.params.as_deref())?;
    let target = match &args.unix {
        Some(path) => Target::Unix(path.clone()),
        None => Target::Tcp(args.connect.clone()),
    };
    let mut conn = Conn::open(&target)?;
    conn.set_read_timeout(args.timeout)?;
    // Unix-socket clients are trusted by the socket file's permissions.
    let token = args.token.as_deref().filter(|t| !t.is_empty());
    if let (Some(token), Target::Tcp(_)) = (token, &target) {
        conn.auth(token)?;
    }
    if is_watch {
        return watch::run(&mut conn, &args.jobs, args.json);
    }
    let result = conn
        .call(&args.method, params)
        .map_err(|e| explain(e, token.is_some()))?;
    print!("{}", format_result(&args.method, &result, args.json));
    Ok(())
}

/// PARAMS_JSON as a JSON object; absent means `{}`.
fn parse_params(text: Option<&str>) -> Result<Value, String> {
    let Some(text) = text else {
        return Ok(json!({}));
    };
    let value: Value = serde_json::from_str(text).map_err(|e| {
        format!(
            "PARAMS_JSON is not valid JSON ({e}): {text}\n\
             give an object, e.g. '{{\"name\":\"heartbeat\",\"wait\":true}}' (quote it for the shell)"
        )
    })?;
    if !value.is_object() {
        return Err(format!(
            "PARAMS_JSON must be a JSON object of named params, not {}: {text}",
            kind_of(&value)
        ));
    }
    Ok(value)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The message for a failed call, with a hint when auth is the problem.
fn explain(e: CallError, had_token: bool) -> String {
    match e {
        CallError::Rpc { code, .. } if code == NOT_AUTHENTICATED && !had_token => {
            format!("{e}; this daemon needs a token: pass --token or set TICKD_TOKEN")
        }
        e => e.to_string(),
    }
}

/// The text printed for `method`'s result.
fn format_result(method: &str, result: &Value, raw: bool) -> String {
    let now = chrono::Utc::now();
    match (method, result) {
        ("status", Value::Object(_)) if !raw => render::status(result, now),
        ("jobs.list", Value::Array(jobs)) if !raw => render::jobs_table(jobs, now),
        _ => {
            let mut text =
                serde_json::to_string_pretty(result).unwrap_or_else(|_| result.to_string());
            text.push('\n');
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_must_be_a_json_object() {
        assert_eq!(parse_params(None).ok(), Some(json!({})));
        assert_eq!(
            parse_params(Some(r#"{"name":"a"}"#)).ok(),
            Some(json!({"name": "a"}))
        );
        let bad = parse_params(Some("name=a")).err().unwrap_or_default();
        assert!(
            bad.contains("not valid JSON") && bad.contains("name=a"),
            "{bad}"
        );
        let arr = parse_params(Some("[1]")).err().unwrap_or_default();
        assert!(arr.contains("not an array"), "{arr}");
    }

    #[test]
    fn generic_results_print_as_pretty_json() {
        let out = format_result("runs.get", &json!({"run_id": "1"}), false);
        assert_eq!(out, "{\n  \"run_id\": \"1\"\n}\n");
        let raw = format_result("jobs.list", &json!([]), true);
        assert_eq!(raw, "[]\n");
        assert_eq!(
            format_result("jobs.list", &json!([]), false),
            "no jobs configured\n"
        );
    }
}
