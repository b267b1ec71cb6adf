//! `tickd ctl` through the real binaries: a daemon started by the harness,
//! and `tickd ctl` run as a separate process against it.
//!
//! ctl's stdout is a pipe here, so its default output is JSON; `--human`
//! asks for the text forms, and [`on_terminal`] runs it under a pseudo
//! terminal to see the default there.

use crate::util;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use util::{poll_until, Daemon, WAIT};

/// What a finished `tickd ctl` printed.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn ctl_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(util::bin());
    cmd.arg("ctl")
        .args(args)
        .env_remove("TICKD_TOKEN")
        .env_remove("TICKD_ADDR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `tickd ctl ARGS` to completion (bounded by [`WAIT`]).
pub fn run_ctl(args: &[&str]) -> Out {
    let mut child = ctl_cmd(args).spawn().expect("spawn tickd ctl");
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let Some(status) = util::wait_child(&mut child, WAIT) else {
        let _ = child.kill();
        panic!("tickd ctl {args:?} did not finish");
    };
    Out {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

pub fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

/// `tickd ctl --connect ADDR ARGS`, expected to succeed.
pub fn ok(d: &Daemon, args: &[&str]) -> String {
    let addr = d.addr.to_string();
    let mut all = vec!["--connect", &addr];
    all.extend_from_slice(args);
    let out = run_ctl(&all);
    assert_eq!(out.code, 0, "ctl {args:?} failed: {}", out.stderr);
    out.stdout
}

/// `tickd ctl --connect ADDR ARGS`, expected to fail.
pub fn fails(d: &Daemon, args: &[&str]) -> Out {
    let addr = d.addr.to_string();
    let mut all = vec!["--connect", &addr];
    all.extend_from_slice(args);
    let out = run_ctl(&all);
    assert_eq!(out.code, 1, "ctl {args:?} should fail: {}", out.stdout);
    assert!(out.stdout.is_empty(), "nothing on stdout: {}", out.stdout);
    out
}

pub fn json_out(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

const JOBS: &str = r#"
[[jobs]]
name = "beat"
kind = "exec"
every = "1h"
command = ["true"]

[[jobs]]
name = "echo-args"
kind = "exec"
command = ["sh", "-c", "echo \"args=$TICKD_ARGS\""]

[[jobs]]
name = "slow"
kind = "exec"
command = ["sh", "-c", "echo tickd-progress: 0.5; sleep 60"]
"#;

fn daemon() -> Daemon {
    Daemon::start(&util::config("allow_submit = true", JOBS))
}

/// `tickd ctl --connect ADDR ARGS` run with its stdout on a pseudo
/// terminal (util-linux `script`); what it printed there, with `\r\n`
/// turned back into `\n`. `None` where `script` is not installed.
fn on_terminal(d: &Daemon, args: &[&str]) -> Option<String> {
    let present = Command::new("script")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        eprintln!("skipping the terminal case: util-linux `script` is not installed");
        return None;
    }
    let quote = |a: &str| format!("'{}'", a.replace('\'', r"'\''"));
    let addr = d.addr.to_string();
    let mut line = vec![quote(util::bin()), "ctl".into(), "--connect".into(), addr];
    line.extend(args.iter().map(|a| quote(a)));
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &line.join(" "), "/dev/null"])
        .env_remove("TICKD_TOKEN")
        .env_remove("TICKD_ADDR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn script");
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let Some(status) = util::wait_child(&mut child, WAIT) else {
        let _ = child.kill();
        panic!("tickd ctl {args:?} under script did not finish");
    };
    let out = stdout.join().expect("stdout reader").replace("\r\n", "\n");
    let err = stderr.join().expect("stderr reader");
    assert!(
        status.success(),
        "ctl {args:?} on a terminal failed: {out}{err}"
    );
    Some(out)
}

#[test]
fn status_prints_json_to_a_pipe_and_a_summary_with_human() {
    let d = daemon();
    // A pipe gets the status object as indented JSON (`| jq` works).
    let out = ok(&d, &["status"]);
    assert!(out.starts_with("{\n  \""), "pretty JSON: {out}");
    let raw = json_out(&out);
    assert_eq!(raw["health"], "ok");
    assert_eq!(raw["workers"]["configured"], 2);
    assert_eq!(json_out(&ok(&d, &["--json", "status"]))["health"], "ok");

    let out = ok(&d, &["--human", "status"]);
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("tickd ") && first.contains("health ok"),
        "{out}"
    );
    assert!(out.contains("workers:     2 alive of 2"), "{out}");
    assert!(out.contains("generation 1"), "{out}");

    let both = run_ctl(&["--json", "--human", "status"]);
    assert_eq!(both.code, 2, "clap refuses the pair: {}", both.stderr);
    assert!(both.stderr.contains("--human"), "{}", both.stderr);
}

#[test]
fn a_terminal_gets_the_summary_unless_json_is_asked_for() {
    let d = daemon();
    let Some(out) = on_terminal(&d, &["status"]) else {
        return;
    };
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("tickd ") && first.contains("health ok"),
        "{out}"
    );
    assert!(out.contains("workers:     2 alive of 2"), "{out}");
    let out = on_terminal(&d, &["jobs.list"]).expect("script is present");
    assert!(out.starts_with("NAME "), "{out}");
    let out = on_terminal(&d, &["--json", "status"]).expect("script is present");
    assert_eq!(json_out(&out)["health"], "ok");
}

#[test]
fn jobs_list_prints_a_table_of_the_configured_jobs() {
    let d = daemon();
    let out = ok(&d, &["--human", "jobs.list"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "header and three jobs:\n{out}");
    assert!(lines[0].starts_with("NAME"), "{out}");
    for col in ["KIND", "SCHEDULE", "ENABLED", "NEXT RUN", "LAST STATE"] {
        assert!(lines[0].contains(col), "{col} missing:\n{out}");
    }
    let beat = lines
        .iter()
        .find(|l| l.starts_with("beat "))
        .expect("beat row");
    assert!(beat.contains(" 1h ") && beat.contains(" in "), "{out}");
    let slow = lines
        .iter()
        .find(|l| l.starts_with("slow "))
        .expect("slow row");
    assert!(slow.contains(" manual "), "{out}");

    // After a run and a pause the table shows both.
    ok(&d, &["jobs.run", r#"{"name":"echo-args","wait":true}"#]);
    ok(&d, &["jobs.pause", r#"{"name":"beat"}"#]);
    let out = ok(&d, &["--human", "jobs.list"]);
    let echo = out
        .lines()
        .find(|l| l.starts_with("echo-args "))
        .expect("row");
    assert!(echo.contains(" succeeded "), "{out}");
    let beat = out.lines().find(|l| l.starts_with("beat ")).expect("row");
    assert!(beat.contains(" no ") && beat.contains(" paused "), "{out}");

    // A pipe gets the job objects, as does --json.
    for args in [&["jobs.list"][..], &["--json", "jobs.list"]] {
        let raw = json_out(&ok(&d, args));
        let jobs = raw.as_array().expect("array");
        let names: Vec<&str> = jobs.iter().filter_map(|j| j["name"].as_str()).collect();
        assert_eq!(names, ["beat", "echo-args", "slow"], "{args:?}");
        assert_eq!(jobs[0]["enabled"], false, "{args:?}");
    }
}

#[test]
fn jobs_run_passes_params_and_waits_for_the_run() {
    let d = daemon();
    let run = json_out(&ok(
        &d,
        &[
            "jobs.run",
            r#"{"name":"echo-args","wait":true,"args":{"who":"ctl"}}"#,
        ],
    ));
    assert_eq!(run["state"], "succeeded");
    assert_eq!(run["output"], "args={\"who\":\"ctl\"}\n");
    // Generic methods print the result as pretty JSON.
    let out = ok(
        &d,
        &["runs.get", &json!({"run_id": run["run_id"]}).to_string()],
    );
    assert!(out.starts_with("{\n  \""), "pretty JSON: {out}");
    assert_eq!(json_out(&out)["run_id"], run["run_id"]);
}

#[test]
fn every_method_is_reachable_cancel_submit_and_shutdown() {
    let mut d = daemon();
    let started = json_out(&ok(&d, &["jobs.run", r#"{"name":"slow"}"#]));
    let id = started["run_id"].as_str().expect("run_id").to_string();
    let params = json!({ "run_id": id }).to_string();
    let cancelled = json_out(&ok(&d, &["runs.cancel", &params]));
    assert_eq!(cancelled["state"], "cancelled");

    let submitted = json_out(&ok(
        &d,
        &[
            "submit",
            r#"{"job":{"kind":"exec","command":["echo","hi"]},"wait":true}"#,
        ],
    ));
    assert_eq!(submitted["trigger"], "submit");
    assert_eq!(submitted["output"], "hi\n");

    let listed = json_out(&ok(&d, &["runs.list", r#"{"state":"cancelled"}"#]));
    assert_eq!(listed[0]["run_id"], id.as_str());

    let bye = json_out(&ok(&d, &["shutdown"]));
    assert_eq!(bye["shutting_down"], true);
    let status = d.wait_exit(WAIT).expect("daemon exits after shutdown");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn errors_go_to_stderr_with_exit_1() {
    let d = daemon();
    let out = fails(&d, &["jobs.get", r#"{"name":"nope"}"#]);
    assert!(
        out.stderr.contains("no such job: nope (-32000)"),
        "{}",
        out.stderr
    );

    let out = fails(&d, &["jobs.frobnicate"]);
    assert!(out.stderr.contains("-32601"), "{}", out.stderr);

    // PARAMS_JSON is checked before anything is sent, and the message says why.
    let out = fails(&d, &["jobs.run", "name=slow"]);
    assert!(
        out.stderr.contains("PARAMS_JSON is not valid JSON"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("name=slow"), "{}", out.stderr);
    let out = fails(&d, &["jobs.run", r#"["slow"]"#]);
    assert!(
        out.stderr.contains("must be a JSON object"),
        "{}",
        out.stderr
    );
    // Nothing was run by the refused calls.
    let slow = json_out(&ok(&d, &["jobs.get", r#"{"name":"slow"}"#]));
    assert_eq!(slow["last_run"], Value::Null);
}

#[test]
fn a_refused_connection_names_the_address() {
    // A port that was free a moment ago: nobody listens there now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let out = run_ctl(&["--connect", &addr, "status"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains(&format!("cannot connect to {addr}")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("is tickd running"), "{}", out.stderr);

    let out = run_ctl(&["--connect", "not-an-address", "status"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("bad address not-an-address"),
        "{}",
        out.stderr
    );
}

/// A running `tickd ctl watch` whose stdout lines arrive on a channel.
struct Watch {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watch {
    /// Starts `tickd ctl watch ARGS` and waits until it has subscribed.
    fn start(d: &Daemon, args: &[&str]) -> Watch {
        let addr = d.addr.to_string();
        let mut all = vec!["--connect", &addr, "watch"];
        all.extend_from_slice(args);
        let mut child = ctl_cmd(&all).spawn().expect("spawn watch");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        // The first stderr line comes once `subscribe` has been answered.
        let mut first = String::new();
        stderr.read_line(&mut first).expect("watch stderr");
        assert!(first.starts_with("watching runs of"), "{first}");
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        let (tx, lines) = mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watch { child, lines }
    }

    /// The next stdout line, within [`WAIT`].
    fn next(&self) -> String {
        self.lines
            .recv_timeout(WAIT)
            .expect("a watch line before the deadline")
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn watch_prints_the_events_of_a_run_as_they_happen() {
    let d = daemon();
    let watch = Watch::start(&d, &["--human", "--jobs", "echo-args,slow"]);
    // A run of a job not watched produces nothing; the next one does.
    ok(&d, &["jobs.run", r#"{"name":"beat","wait":true}"#]);
    let started = json_out(&ok(&d, &["jobs.run", r#"{"name":"echo-args"}"#]));
    let id = started["run_id"].as_str().expect("run_id");
    let want = [
        ("queued", "manual"),
        ("running", ""),
        ("succeeded", "exit 0"),
    ];
    for (state, detail) in want {
        let line = watch.next();
        assert!(
            line.contains(&format!("  run {id}  echo-args  {state}")),
            "{state}: {line}"
        );
        assert!(line.contains(detail), "{line}");
    }
}

#[test]
fn watch_to_a_pipe_prints_run_objects_and_with_no_reconnect_exits_0_when_the_daemon_stops() {
    let mut d = daemon();
    let mut watch = Watch::start(&d, &["--no-reconnect"]);
    ok(&d, &["jobs.run", r#"{"name":"echo-args"}"#]);
    // One compact JSON object per line, by default on a pipe.
    let first = watch.next();
    assert!(!first.contains('\n') && first.starts_with('{'), "{first}");
    let first = json_out(&first);
    assert_eq!(first["job"], "echo-args");
    assert_eq!(first["state"], "queued");
    // --json asks for the same.
    let forced = Watch::start(&d, &["--json", "--jobs", "beat"]);
    ok(&d, &["jobs.run", r#"{"name":"beat"}"#]);
    assert_eq!(json_out(&forced.next())["job"], "beat");

    ok(&d, &["shutdown"]);
    d.wait_exit(WAIT).expect("daemon exits");
    let status = util::wait_child(&mut watch.child, WAIT).expect("watch ends with the daemon");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn watch_ends_quietly_when_its_reader_goes_away() {
    let d = daemon();
    let addr = d.addr.to_string();
    let mut child = ctl_cmd(&["--connect", &addr, "watch", "--jobs", "echo-args"])
        .spawn()
        .expect("spawn watch");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut first = String::new();
    stderr.read_line(&mut first).expect("watch stderr");
    assert!(first.starts_with("watching runs of"), "{first}");
    // Like `| head -1`: read one event, then close the pipe.
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    ok(&d, &["jobs.run", r#"{"name":"echo-args"}"#]);
    let mut line = String::new();
    stdout.read_line(&mut line).expect("an event");
    assert_eq!(json_out(&line)["state"], "queued");
    drop(stdout);
    // The next run's events find no reader; watch ends, without a panic.
    ok(&d, &["jobs.run", r#"{"name":"echo-args","wait":true}"#]);
    let Some(status) = util::wait_child(&mut child, WAIT) else {
        let _ = child.kill();
        panic!("watch went on writing into a closed pipe");
    };
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);
    assert_eq!(status.code(), Some(0), "{rest}");
    assert!(!rest.contains("panicked"), "{rest}");
}

const TOKEN: &str = "ctl-test-token-1";

fn auth_daemon() -> Daemon {
    let extra = format!("auth_token = \"{TOKEN}\"\nunix_socket = \"$DIR/tickd.sock\"");
    Daemon::start(&util::config(&extra, JOBS))
}

#[test]
fn token_from_flag_or_env_authenticates_over_tcp() {
    let d = auth_daemon();
    // Without a token the daemon refuses, and ctl says how to give one.
    let out = fails(&d, &["status"]);
    assert!(out.stderr.contains("(-32001)"), "{}", out.stderr);
    assert!(
        out.stderr.contains("pass --token or set TICKD_TOKEN"),
        "{}",
        out.stderr
    );

    let jobs = json_out(&ok(&d, &["--token", TOKEN, "jobs.list"]));
    assert_eq!(jobs[1]["name"], "echo-args", "{jobs}");

    let addr = d.addr.to_string();
    let mut cmd = ctl_cmd(&["--connect", &addr, "--json", "status"]);
    let env = cmd.env("TICKD_TOKEN", TOKEN).output().expect("run ctl");
    assert!(
        env.status.success(),
        "{}",
        String::from_utf8_lossy(&env.stderr)
    );
    let status: Value = serde_json::from_slice(&env.stdout).expect("status JSON");
    assert_eq!(status["health"], "ok");

    let out = fails(&d, &["--token", "wrong-token", "status"]);
    assert!(
        out.stderr.contains("authentication failed"),
        "{}",
        out.stderr
    );
    // The token never appears in what ctl prints.
    assert!(!out.stderr.contains("wrong-token"), "{}", out.stderr);
}

#[test]
fn unix_socket_needs_no_token() {
    let d = auth_daemon();
    let sock = d.dir().join("tickd.sock");
    let sock = sock.to_str().expect("utf-8 path");
    let out = run_ctl(&[
        "--unix",
        sock,
        "jobs.run",
        r#"{"name":"echo-args","wait":true}"#,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(json_out(&out.stdout)["state"], "succeeded");

    let missing = d.dir().join("missing.sock");
    let out = run_ctl(&["--unix", missing.to_str().expect("path"), "ping"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("missing.sock"), "{}", out.stderr);
    assert!(out.stderr.contains("is tickd running"), "{}", out.stderr);
}

/// `tickd ctl ARGS` with `TICKD_ADDR` (and `TICKD_TOKEN`, if given) set.
fn run_ctl_env(addr: &str, token: Option<&str>, args: &[&str]) -> Out {
    let mut cmd = ctl_cmd(args);
    cmd.env("TICKD_ADDR", addr);
    if let Some(token) = token {
        cmd.env("TICKD_TOKEN", token);
    }
    let out = cmd.output().expect("run tickd ctl");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn tickd_addr_gives_the_address_when_no_flag_does() {
    let d = auth_daemon();
    let addr = d.addr.to_string();
    let out = run_ctl_env(&addr, Some(TOKEN), &["--json", "status"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(json_out(&out.stdout)["health"], "ok");

    // A value starting with `/` is the Unix socket: no token needed there
    // (over TCP this daemon would answer -32001).
    let sock = d.dir().join("tickd.sock");
    let sock = sock.to_str().expect("utf-8 path");
    let run = r#"{"name":"echo-args","wait":true}"#;
    let out = run_ctl_env(sock, None, &["jobs.run", run]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(json_out(&out.stdout)["state"], "succeeded");

    // --connect and --unix win over TICKD_ADDR, and --unix with TICKD_ADDR
    // set is no conflict.
    let out = run_ctl_env(sock, Some(TOKEN), &["--connect", &addr, "ping"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run_ctl_env(&addr, None, &["--unix", sock, "jobs.run", run]);
    assert_eq!(out.code, 0, "{}", out.stderr);

    // A wrong TICKD_ADDR is named as the reason.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .to_string();
    let out = run_ctl_env(&free, Some(TOKEN), &["status"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stderr.contains(&format!("cannot connect to {free}")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!("TICKD_ADDR={free}")),
        "{}",
        out.stderr
    );
}

#[test]
fn watch_authenticates_with_the_token() {
    let d = auth_daemon();
    let watch = Watch::start(&d, &["--token", TOKEN, "--human", "--jobs", "echo-args"]);
    ok(
        &d,
        &["--token", TOKEN, "jobs.run", r#"{"name":"echo-args"}"#],
    );
    let line = watch.next();
    assert!(line.contains("echo-args  queued  manual"), "{line}");
}

#[test]
fn timeout_bounds_the_wait_for_an_answer() {
    let d = daemon();
    let out = fails(
        &d,
        &[
            "--timeout",
            "300ms",
            "jobs.run",
            r#"{"name":"slow","wait":true}"#,
        ],
    );
    assert!(out.stderr.contains("no answer from"), "{}", out.stderr);
    assert!(out.stderr.contains("within the timeout"), "{}", out.stderr);
    // The run itself goes on; cancel it so the test leaves nothing behind.
    let runs = json_out(&ok(&d, &["runs.list", r#"{"job":"slow"}"#]));
    let id = runs[0]["run_id"].as_str().expect("run_id").to_string();
    let cancelled = json_out(&ok(
        &d,
        &["runs.cancel", &json!({ "run_id": id }).to_string()],
    ));
    assert_eq!(cancelled["state"], "cancelled");
}

/// A job that runs every 100 ms, so a watch of all jobs gets events far
/// more often than its keep-alive interval.
const TICKING: &str = r#"
[[jobs]]
name = "tick"
kind = "exec"
every = "100ms"
command = ["true"]
"#;

#[test]
fn quiet_and_busy_watches_ping_through_the_idle_timeout() {
    let config = util::config("idle_timeout = \"2s\"", &format!("{JOBS}{TICKING}"));
    let d = Daemon::start(&config);
    // Pings every 250 ms leave a wide margin below the 2 s idle_timeout on
    // a loaded machine. The quiet watch sees no event until the end; the
    // busy one (all jobs) receives events all the time, and must ping anyway.
    let quiet_watch = Watch::start(&d, &["--keepalive", "250ms", "--jobs", "echo-args"]);
    let busy_watch = Watch::start(&d, &["--keepalive", "250ms"]);
    // Plain clients that speak once and then keep quiet until the daemon
    // closes them for idleness. The daemon closes an idle connection
    // between one and two idle_timeouts after its last line, so the first
    // (started after the watches subscribed) closing proves less than the
    // second (started when the first was closed): by then the watches'
    // connections have been open for over twice idle_timeout, and only
    // their pings can have kept them open.
    for _ in 0..2 {
        let mut quiet = d.client();
        quiet.ok("ping", json!({}));
        while quiet.read_line().is_some() {}
    }
    ok(&d, &["jobs.run", r#"{"name":"echo-args"}"#]);
    let event = json_out(&quiet_watch.next());
    assert_eq!(event["job"], "echo-args");
    assert_eq!(event["state"], "queued");
    let ticks = busy_watch.next();
    assert!(ticks.contains(r#""job":"tick""#), "{ticks}");
    poll_until("the busy watch to show the echo-args run", || {
        let event = json_out(&busy_watch.next());
        (event["job"] == "echo-args").then_some(())
    });
    let status = json_out(&ok(&d, &["status"]));
    assert_eq!(
        status["clients"]["idle_closed"], 2,
        "only the quiet clients were closed: {status}"
    );
}

#[test]
fn keepalive_is_only_for_watch_and_above_zero() {
    let d = daemon();
    let out = fails(&d, &["--keepalive", "1s", "status"]);
    assert!(
        out.stderr.contains("--keepalive only applies to `watch`"),
        "{}",
        out.stderr
    );
    let addr = d.addr.to_string();
    let out = run_ctl(&["--connect", &addr, "--keepalive", "0s", "watch"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("must be above 0s"), "{}", out.stderr);
}
