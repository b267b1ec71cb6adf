//! `tickd ctl`: use a running daemon from the shell.
//!
//! `tickd ctl [--connect HOST:PORT [--tls [--ca FILE]] | --unix PATH] [--token T] [--json | --human] COMMAND`
//! where COMMAND is a subcommand for daily use (`jobs`, `run`, `logs`, ...;
//! see [`daily`]) or `METHOD [PARAMS_JSON]`, which sends one JSON-RPC
//! request (after `auth` when a token is given over TCP) and prints the
//! result on stdout, or the error message on stderr with exit code 1. The
//! result is pretty JSON (CONTRACT §2), so scripts and pipes can parse it;
//! only when stdout is a terminal do the subcommands, `status` and
//! `jobs.list` print text instead. `--json` and `--human` force one or the
//! other. `watch` follows `subscribe` under the same rule: human lines on a
//! terminal, one compact JSON object per line otherwise.
//!
//! - [`conn`]: connecting, authenticating, requests and answers;
//! - [`daily`]: the subcommands and the raw form, and how each prints;
//! - [`render`], [`detail`]: the text forms (tables, summaries, one job,
//!   one run);
//! - [`logs`]: a run's output, followed;
//! - [`watch`]: the event follower, reconnecting;
//! - [`put`]: `jobs.put` from a TOML file.

mod cluster_watch;
mod conn;
mod daily;
mod detail;
mod logs;
mod put;
mod render;
mod watch;

use clap::Args;
use conn::{CallError, Conn, Target, NOT_AUTHENTICATED};
use serde_json::{json, Value};
use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Arguments of `tickd ctl`. The options are global: they may come before
/// or after a subcommand (but before a METHOD, whose words are all its own).
#[derive(Args, Debug)]
#[command(subcommand_value_name = "SUBCOMMAND | METHOD [PARAMS_JSON]")]
#[command(after_help = "\
Output: a result is printed as indented JSON when stdout is a pipe or a file \
(scripts, `| jq`). On a terminal, the subcommands, `status` and `jobs.list` \
print text: tables, summaries, one line per watch event. --json and --human \
choose the form whatever stdout is. `logs` prints the run's output as it is.

A word with a dot (or one of ping, status, auth, submit, subscribe, reload, \
shutdown) is a METHOD, called with PARAMS_JSON; other words are subcommands.

Examples:
  tickd ctl jobs
  tickd ctl jobs backup
  tickd ctl run echo-args --wait --arg who=me
  tickd ctl logs -f backup
  tickd ctl runs flaky --state failed --limit 5
  tickd ctl pause heartbeat
  tickd ctl watch --jobs backup,flaky
  tickd ctl status
  tickd ctl jobs.run '{\"name\":\"heartbeat\",\"wait\":true}'
  tickd ctl put nightly.toml
  TICKD_ADDR=/run/tickd/tickd.sock tickd ctl jobs")]
pub struct CtlArgs {
    /// TCP address of the daemon [default: $TICKD_ADDR, else 127.0.0.1:7070].
    #[arg(long, global = true, value_name = "HOST:PORT")]
    connect: Option<String>,
    /// Unix socket of the daemon (instead of TCP; no token needed); also
    /// from TICKD_ADDR when that starts with `/`.
    #[arg(long, global = true, value_name = "PATH", conflicts_with = "connect")]
    unix: Option<PathBuf>,
    /// Speak TLS to the daemon's TCP port (its tls_cert set), checking its
    /// certificate against --ca, else the system's CA certificates.
    #[arg(long, conflicts_with = "unix")]
    tls: bool,
    /// With --tls: the CA certificate (PEM) that signed the daemon's
    /// certificate.
    #[arg(long, value_name = "FILE", requires = "tls")]
    ca: Option<PathBuf>,
    /// Auth token, sent with `auth` before the call (also from TICKD_TOKEN).
    #[arg(long, global = true, env = "TICKD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print JSON even on a terminal: the result indented (with watch: one
    /// compact JSON run object per line). The default when stdout is not a
    /// terminal.
    #[arg(long, global = true)]
    json: bool,
    /// Print the human form even when stdout is not a terminal: tables,
    /// summaries, one line per watch event.
    #[arg(long, global = true, conflicts_with = "json")]
    human: bool,
    /// With watch: only these jobs (comma-separated names).
    #[arg(long, global = true, value_name = "NAMES", value_delimiter = ',')]
    jobs: Vec<String>,
    /// With watch and logs -f: ping the daemon whenever nothing was sent to
    /// it for this long (default 5s), so its idle_timeout does not close
    /// the connection.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_keepalive)]
    keepalive: Option<Duration>,
    /// With watch: every node's run events, from the Redis of the cluster
    /// that the config file's [cluster] table names (see --config).
    #[arg(long, global = true)]
    cluster: bool,
    /// With watch --cluster: the config file holding [cluster] (also from
    /// TICKD_CONFIG; default conf/tickd.toml).
    #[arg(
        long,
        global = true,
        env = "TICKD_CONFIG",
        default_value = "conf/tickd.toml"
    )]
    config: PathBuf,
    /// Give up when the answer takes longer than this (e.g. "30s"); by
    /// default wait as long as it takes (jobs.run with wait can be long).
    #[arg(long, global = true, value_name = "DURATION", value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// What to do: a subcommand, or a METHOD and its PARAMS_JSON.
    #[command(subcommand)]
    command: daily::Sub,
}

/// Runs `tickd ctl`; returns the process exit code.
pub fn main(args: &CtlArgs) -> i32 {
    match ctl(args) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("tickd ctl: {msg}");
            1
        }
    }
}

/// The two forms `tickd ctl` prints results in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON: indented for a result, one compact object per line for `watch`.
    Json,
    /// The status summary, the jobs table, one text line per event.
    Human,
}

impl Format {
    /// `--json` or `--human` if given; otherwise human text exactly when
    /// stdout is a terminal, so `tickd ctl status | jq` gets JSON.
    fn choose(args: &CtlArgs, stdout_is_terminal: bool) -> Format {
        if args.json {
            Format::Json
        } else if args.human || stdout_is_terminal {
            Format::Human
        } else {
            Format::Json
        }
    }
}

/// The environment variable that gives the daemon's address when neither
/// `--connect` nor `--unix` does.
const ADDR_ENV: &str = "TICKD_ADDR";

/// The address without `--connect`, `--unix` or `TICKD_ADDR`: the one in
/// the shipped config.
const DEFAULT_ADDR: &str = "127.0.0.1:7070";

/// The daemon to call, and whether `TICKD_ADDR` chose it. `--unix` or
/// `--connect` win (clap refuses both at once); then `TICKD_ADDR` (`env`),
/// where a value starting with `/` is a Unix socket path and anything else
/// is HOST:PORT, and an empty value counts as unset (like an empty
/// `TICKD_TOKEN`); then [`DEFAULT_ADDR`]. The variable is read here, not
/// by clap, so that `--unix` with `TICKD_ADDR` set is not a conflict.
fn choose_target(
    connect: Option<&str>,
    unix: Option<&Path>,
    env: Option<OsString>,
) -> Result<(Target, bool), String> {
    if let Some(path) = unix {
        return Ok((Target::Unix(path.to_path_buf()), false));
    }
    if let Some(addr) = connect {
        return Ok((Target::Tcp(addr.to_string()), false));
    }
    match env.filter(|v| !v.is_empty()) {
        None => Ok((Target::Tcp(DEFAULT_ADDR.to_string()), false)),
        Some(v) if v.as_bytes().starts_with(b"/") => Ok((Target::Unix(PathBuf::from(v)), true)),
        Some(v) => match v.into_string() {
            Ok(addr) => Ok((Target::Tcp(addr), true)),
            Err(v) => Err(format!(
                "{ADDR_ENV} is neither HOST:PORT nor a socket path starting with `/`: {}",
                v.to_string_lossy()
            )),
        },
    }
}

/// `--keepalive`: a humantime duration above zero.
fn parse_keepalive(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Err("must be above 0s".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

fn ctl(args: &CtlArgs) -> Result<i32, String> {
    let is_watch = matches!(args.command, daily::Sub::Watch { .. });
    let follows = is_watch || matches!(args.command, daily::Sub::Logs { follow: true, .. });
    if !is_watch && !args.jobs.is_empty() {
        return Err("--jobs only applies to `watch`".into());
    }
    if !follows && args.keepalive.is_some() {
        return Err("--keepalive only applies to `watch` and `logs -f`".into());
    }
    if !is_watch && args.cluster {
        return Err("--cluster only applies to `watch`".into());
    }
    let format = Format::choose(args, std::io::stdout().is_terminal());
    if is_watch && args.cluster {
        return cluster_watch::run(&args.config, &args.jobs, format).map(|()| 0);
    }
    // Everything the command line says is checked before connecting.
    let plan = daily::plan(&args.command)?;
    let (target, from_env) = choose_target(
        args.connect.as_deref(),
        args.unix.as_deref(),
        std::env::var_os(ADDR_ENV),
    )?;
    let target = conn::with_tls(target, args.tls, args.ca.as_deref())?;
    let token = args.token.as_deref().filter(|t| !t.is_empty());
    let mut conn = connect(&target, token).map_err(|e| {
        if from_env {
            format!("{e}\n({ADDR_ENV}={target} chose this address; unset it, or pass --connect or --unix)")
        } else {
            e
        }
    })?;
    conn.set_read_timeout(args.timeout)?;
    let keepalive = args.keepalive.unwrap_or(watch::KEEPALIVE);
    match plan {
        daily::Plan::Watch { reconnect } => {
            let open = || connect(&target, token);
            let options = watch::Options {
                jobs: &args.jobs,
                format,
                keepalive,
                reconnect: reconnect.then_some(&open as &dyn Fn() -> Result<Conn, String>),
                target: target.to_string(),
            };
            watch::run(conn, &options).map(|()| 0)
        }
        daily::Plan::Logs { target, follow } => {
            logs::run(&mut conn, &target, follow, keepalive).map(|()| 0)
        }
        daily::Plan::Call {
            method,
            params,
            show,
        } => {
            let result = conn
                .call(&method, params)
                .map_err(|e| explain(e, token.is_some()))?;
            let (text, code) = daily::show(show, &method, &result, format);
            write_stdout(&text)?;
            Ok(code)
        }
    }
}

/// Connects to `target` and, over TCP with a token, authenticates. (Unix
/// socket clients are trusted by the socket file's permissions.)
fn connect(target: &Target, token: Option<&str>) -> Result<Conn, String> {
    let mut conn = Conn::open(target)?;
    if let (Some(token), Target::Tcp(_) | Target::Tls(..)) = (token, target) {
        conn.auth(token)?;
    }
    Ok(conn)
}

/// Writes `text` to stdout and flushes it. `Ok(false)` when the reader
/// went away (`tickd ctl watch | head -3`): the output simply ends there,
/// rather than the panic `print!` would raise.
fn write_stdout(text: &str) -> Result<bool, String> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(format!("cannot write to stdout: {e}")),
    }
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

/// The text printed for `method`'s result: pretty JSON, except the human
/// forms of `status` and `jobs.list`. Other methods have no human form.
fn format_result(method: &str, result: &Value, format: Format) -> String {
    let now = tickd::time::now();
    let human = format == Format::Human;
    match (method, result) {
        ("status", Value::Object(_)) if human => render::status(result, now),
        ("jobs.list", Value::Array(jobs)) if human => render::jobs_table(jobs, now),
        ("jobs.list", Value::Object(page))
            if human && page.get("jobs").is_some_and(Value::is_array) =>
        {
            let jobs = page["jobs"].as_array().map_or(&[][..], Vec::as_slice);
            let mut text = if jobs.is_empty() {
                "no jobs on this page\n".to_string()
            } else {
                render::jobs_table(jobs, now)
            };
            if let Some(next) = page.get("next_after").and_then(Value::as_str) {
                text.push_str(&format!("next page: \"after\": \"{next}\"\n"));
            }
            text
        }
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
        let out = format_result("runs.get", &json!({"run_id": "1"}), Format::Human);
        assert_eq!(out, "{\n  \"run_id\": \"1\"\n}\n");
        let raw = format_result("jobs.list", &json!([]), Format::Json);
        assert_eq!(raw, "[]\n");
        assert_eq!(
            format_result("jobs.list", &json!([]), Format::Human),
            "no jobs configured\n"
        );
        let last = json!({"jobs": [], "next_after": null});
        assert_eq!(
            format_result("jobs.list", &last, Format::Human),
            "no jobs on this page\n"
        );
        let more = json!({"jobs": [], "next_after": "db.9"});
        assert!(format_result("jobs.list", &more, Format::Human)
            .ends_with("next page: \"after\": \"db.9\"\n"));
    }

    fn parse(argv: &[&str]) -> Result<CtlArgs, clap::Error> {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            ctl: CtlArgs,
        }
        <Cli as clap::Parser>::try_parse_from(std::iter::once("ctl").chain(argv.iter().copied()))
            .map(|c| c.ctl)
    }

    #[test]
    fn json_on_a_pipe_human_on_a_terminal_unless_forced() {
        let plain = parse(&["status"]).expect("parses");
        assert_eq!(Format::choose(&plain, false), Format::Json);
        assert_eq!(Format::choose(&plain, true), Format::Human);
        let json = parse(&["--json", "status"]).expect("parses");
        assert_eq!(Format::choose(&json, true), Format::Json);
        let human = parse(&["--human", "status"]).expect("parses");
        assert_eq!(Format::choose(&human, false), Format::Human);
        assert!(parse(&["--json", "--human", "status"]).is_err());
    }

    #[test]
    fn flags_then_tickd_addr_then_the_default_choose_the_daemon() {
        let env = |v: &str| Some(OsString::from(v));
        let pick = |connect, unix: Option<&str>, e| {
            choose_target(connect, unix.map(Path::new), e)
                .map(|(t, from_env)| (t.to_string(), from_env))
        };
        let tcp = |a: &str, from_env| Ok((a.to_string(), from_env));
        assert_eq!(pick(None, None, None), tcp(DEFAULT_ADDR, false));
        assert_eq!(pick(None, None, env("")), tcp(DEFAULT_ADDR, false));
        assert_eq!(pick(None, None, env("h:1")), tcp("h:1", true));
        assert_eq!(pick(Some("h:2"), None, env("h:1")), tcp("h:2", false));
        assert_eq!(pick(None, Some("/s"), env("h:1")), tcp("/s", false));
        let (target, from_env) = choose_target(None, None, env("/run/t.sock")).expect("unix");
        assert!(matches!(target, Target::Unix(p) if p == Path::new("/run/t.sock")));
        assert!(from_env);
        let bad = OsString::from(std::ffi::OsStr::from_bytes(b"h\xff:1"));
        let err = choose_target(None, None, Some(bad))
            .err()
            .unwrap_or_default();
        assert!(err.contains("TICKD_ADDR"), "{err}");
    }

    #[test]
    fn keepalive_must_be_above_zero() {
        assert_eq!(parse_keepalive("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_keepalive("0s").is_err());
        assert!(parse_keepalive("soon").is_err());
    }
}
