//! `tickd ctl`: call one method of a running daemon from the shell.
//!
//! Sends one JSON-RPC line (after `auth` when a token is given), reads one
//! answer line, prints the result as pretty JSON on stdout, or the error
//! message on stderr with exit code 1.

use clap::Args;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

/// Arguments of `tickd ctl`.
#[derive(Args, Debug)]
pub struct CtlArgs {
    /// TCP address of the daemon.
    #[arg(long, default_value = "127.0.0.1:7070")]
    connect: String,
    /// Unix socket of the daemon (instead of TCP).
    #[arg(long)]
    unix: Option<PathBuf>,
    /// Auth token (also read from TICKD_TOKEN).
    #[arg(long, env = "TICKD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Method to call, e.g. status, jobs.list, jobs.run.
    method: String,
    /// Params as a JSON object, e.g. '{"name":"heartbeat","wait":true}'.
    params: Option<String>,
}

/// Runs `tickd ctl`; returns the exit code.
pub fn main(args: &CtlArgs) -> i32 {
    match call(args) {
        Ok(result) => {
            match serde_json::to_string_pretty(&result) {
                Ok(text) => println!("{text}"),
                Err(_) => println!("{result}"),
            }
            0
        }
        Err(msg) => {
            eprintln!("tickd ctl: {msg}");
            1
        }
    }
}

trait Stream: std::io::Read + Write {}
impl<T: std::io::Read + Write> Stream for T {}

fn call(args: &CtlArgs) -> Result<Value, String> {
    let params: Value = match &args.params {
        Some(text) => serde_json::from_str(text).map_err(|e| format!("PARAMS is not JSON: {e}"))?,
        None => json!({}),
    };
    if !params.is_object() {
        return Err("PARAMS must be a JSON object".into());
    }
    let stream: Box<dyn Stream> = match &args.unix {
        Some(path) => Box::new(
            UnixStream::connect(path)
                .map_err(|e| format!("cannot connect to {}: {e}", path.display()))?,
        ),
        None => Box::new(
            TcpStream::connect(&args.connect)
                .map_err(|e| format!("cannot connect to {}: {e}", args.connect))?,
        ),
    };
    let mut reader = BufReader::new(stream);
    if let Some(token) = &args.token {
        match request(&mut reader, 0, "auth", json!({ "token": token })) {
            Ok(_) => {}
            // A daemon without authentication has no `auth` method: carry on.
            Err(e) if e.ends_with("(-32601)") => {}
            Err(e) => return Err(e),
        }
    }
    request(&mut reader, 1, &args.method, params)
}

fn request(
    conn: &mut BufReader<Box<dyn Stream>>,
    id: u64,
    method: &str,
    params: Value,
) -> Result<Value, String> {
    let mut line =
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
    line.push('\n');
    conn.get_mut()
        .write_all(line.as_bytes())
        .map_err(|e| format!("send failed: {e}"))?;
    let mut answer = String::new();
    let n = conn
        .read_line(&mut answer)
        .map_err(|e| format!("receive failed: {e}"))?;
    if n == 0 {
        return Err("the daemon closed the connection without answering".into());
    }
    let v: Value = serde_json::from_str(&answer).map_err(|e| format!("bad answer: {e}"))?;
    if let Some(err) = v.get("error") {
        let msg = err["message"].as_str().unwrap_or("unknown error");
        let code = err["code"].as_i64().unwrap_or(0);
        return Err(format!("{msg} ({code})"));
    }
    Ok(v.get("result").cloned().unwrap_or(Value::Null))
}
