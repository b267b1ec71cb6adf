//! `tickd ctl`'s subcommands for daily use (issue 19, item 6), each run as
//! a separate process against a real daemon: `jobs`, `job`, `run`,
//! `cancel`, `pause`, `resume`, `logs`, `runs`, and `watch` reconnecting
//! after the daemon restarts on the same port.
//!
//! ctl's stdout is a pipe here, so it prints JSON unless given `--human`.

use crate::ctl::{fails, json_out, ok, run_ctl, Out};
use crate::util;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use util::{poll_until, Daemon, WAIT};

const JOBS: &str = r#"
[[jobs]]
name = "beat"
kind = "exec"
every = "1h"
command = ["true"]
timeout = "10m"
retries = 2

[[jobs]]
name = "echo-args"
kind = "exec"
command = ["sh", "-c", "echo \"args=$TICKD_ARGS\""]

[[jobs]]
name = "fail"
kind = "exec"
command = ["sh", "-c", "echo giving up; exit 3"]

[[jobs]]
name = "slow"
kind = "exec"
command = ["sh", "-c", "echo started; sleep 60"]

[[jobs]]
name = "ping-web"
kind = "http"
url = "http://127.0.0.1:9/health"
method = "POST"

[[jobs]]
name = "two-parts"
kind = "exec"
command = ["sh", "-c", "echo first; while [ ! -e \"$0\" ]; do sleep 0.02; done; echo second", "$DIR/go"]
"#;

fn daemon() -> Daemon {
    Daemon::start(&util::config("", JOBS))
}

/// `tickd ctl --connect ADDR ARGS`, whatever its exit status.
fn ctl(d: &Daemon, args: &[&str]) -> Out {
    let addr = d.addr.to_string();
    let mut all = vec!["--connect", &addr];
    all.extend_from_slice(args);
    run_ctl(&all)
}

/// The job object as `jobs.get` gives it.
fn job(d: &Daemon, name: &str) -> Value {
    d.client().ok("jobs.get", json!({ "name": name }))
}

#[test]
fn jobs_lists_the_table_and_one_job_shows_what_it_runs() {
    let d = daemon();
    let table = ok(&d, &["--human", "jobs"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("NEXT RUN"),
        "{table}"
    );
    assert_eq!(lines.len(), 7, "header and six jobs:\n{table}");
    // To a pipe, `jobs` is jobs.list's JSON.
    let listed = json_out(&ok(&d, &["jobs"]));
    assert_eq!(listed.as_array().map(Vec::len), Some(6), "{listed}");

    // One job, as JSON: the job object with its definition and next runs.
    let beat = json_out(&ok(&d, &["jobs", "beat"]));
    assert_eq!(beat["definition"]["command"], json!(["true"]));
    assert_eq!(beat["definition"]["retries"], 2);
    assert_eq!(
        beat["next_runs"].as_array().map(Vec::len),
        Some(5),
        "{beat}"
    );
    let web = json_out(&ok(&d, &["job", "ping-web"]));
    assert_eq!(web["definition"]["url"], "http://127.0.0.1:9/health");
    assert_eq!(web["definition"]["method"], "POST");

    // The human form, after a run.
    ok(&d, &["run", "echo-args", "--wait"]);
    let text = ok(&d, &["--human", "job", "echo-args"]);
    assert!(text.starts_with("job:        echo-args (exec)\n"), "{text}");
    assert!(
        text.contains("command:    sh -c 'echo \"args=$TICKD_ARGS\"'\n"),
        "{text}"
    );
    assert!(
        text.contains("schedule:   manual (no schedule)\n"),
        "{text}"
    );
    assert!(
        text.contains("limits:     no timeout, overlap skip\n"),
        "{text}"
    );
    assert!(text.contains("last runs:\n  RUN"), "{text}");
    assert!(text.contains("echo-args  succeeded  manual"), "{text}");
    let text = ok(&d, &["--human", "jobs", "beat"]);
    assert!(text.contains("schedule:   1h\n"), "{text}");
    assert!(text.contains("next runs:  20"), "{text}");
    assert!(
        text.contains("limits:     timeout 10m, overlap skip, retries 2 (backoff 1s)"),
        "{text}"
    );
    assert!(text.contains("last runs:  none\n"), "{text}");
    let text = ok(&d, &["--human", "jobs", "ping-web"]);
    assert!(
        text.contains("request:    POST http://127.0.0.1:9/health\n"),
        "{text}"
    );

    let out = fails(&d, &["jobs", "nope"]);
    assert!(out.stderr.contains("no such job: nope"), "{}", out.stderr);
}

#[test]
fn run_passes_args_and_wait_exits_3_when_the_run_fails() {
    let d = daemon();
    let run = ctl(
        &d,
        &[
            "run",
            "echo-args",
            "--wait",
            "--arg",
            "who=ctl",
            "--arg",
            "n=2",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = json_out(&run.stdout);
    assert_eq!(run["state"], "succeeded");
    assert_eq!(run["output"], "args={\"n\":\"2\",\"who\":\"ctl\"}\n");

    let failed = ctl(&d, &["run", "fail", "--wait"]);
    assert_eq!(failed.code, 3, "a failed run: {}", failed.stderr);
    assert_eq!(json_out(&failed.stdout)["state"], "failed");
    let human = ctl(&d, &["--human", "run", "fail", "--wait"]);
    assert_eq!(human.code, 3, "{}", human.stderr);
    assert!(
        human.stdout.contains(" (fail)  failed  exit 3  in "),
        "{}",
        human.stdout
    );
    assert!(human.stdout.ends_with("giving up\n"), "{}", human.stdout);
    let human = ctl(&d, &["--human", "run", "echo-args", "--wait"]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(
        human.stdout.contains(" (echo-args)  succeeded  exit 0"),
        "{}",
        human.stdout
    );

    let out = fails(&d, &["run", "nope", "--wait"]);
    assert!(out.stderr.contains("no such job: nope"), "{}", out.stderr);
    // A bad --arg is refused before anything runs.
    let out = fails(&d, &["run", "echo-args", "--arg", "who"]);
    assert!(
        out.stderr.contains("--arg who: expected KEY=VALUE"),
        "{}",
        out.stderr
    );
    let out = fails(&d, &["run", "echo-args", "--arg", "a=1", "--arg", "a=2"]);
    assert!(out.stderr.contains("given twice"), "{}", out.stderr);
    assert_eq!(
        job(&d, "echo-args")["runs_total"],
        2,
        "only the two runs above"
    );

    // Without --wait: the run id at once, exit 0.
    let started = json_out(&ok(&d, &["run", "fail"]));
    let id = started["run_id"].as_str().expect("run_id").to_string();
    assert_eq!(d.wait_run_done(&id)["state"], "failed");
    let text = ok(&d, &["--human", "run", "echo-args"]);
    assert!(text.starts_with("started run "), "{text}");
}

#[test]
fn cancel_pause_and_resume_act_on_the_daemon() {
    let d = daemon();
    let started = json_out(&ok(&d, &["run", "slow"]));
    let id = started["run_id"].as_str().expect("run_id").to_string();
    poll_until("the slow run to start", || {
        (d.client().ok("runs.get", json!({"run_id": id}))["state"] == "running").then_some(())
    });
    let cancelled = json_out(&ok(&d, &["cancel", &id]));
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(
        d.client().ok("runs.get", json!({"run_id": id}))["state"],
        "cancelled"
    );
    let again = ok(&d, &["--human", "cancel", &id]);
    assert!(
        again.starts_with(&format!("run {id} (slow)  cancelled")),
        "{again}"
    );
    let out = fails(&d, &["cancel", "999999"]);
    assert!(out.stderr.contains("no such run: 999999"), "{}", out.stderr);

    let paused = json_out(&ok(&d, &["pause", "beat"]));
    assert_eq!(paused["paused"], true);
    let beat = job(&d, "beat");
    assert_eq!(
        (beat["paused"].clone(), beat["enabled"].clone()),
        (json!(true), json!(false))
    );
    let text = ok(&d, &["--human", "jobs", "beat"]);
    assert!(text.contains("state:      paused"), "{text}");
    let text = ok(&d, &["--human", "resume", "beat"]);
    assert!(text.starts_with("beat resumed, next run in "), "{text}");
    let beat = job(&d, "beat");
    assert_eq!(
        (beat["paused"].clone(), beat["enabled"].clone()),
        (json!(false), json!(true))
    );
    let text = ok(&d, &["--human", "pause", "beat"]);
    assert_eq!(text, "beat paused (until tickd stops)\n");
    assert_eq!(job(&d, "beat")["paused"], true);

    let out = fails(&d, &["pause", "nope"]);
    assert!(out.stderr.contains("no such job: nope"), "{}", out.stderr);
}

#[test]
fn runs_filters_by_job_state_and_limit() {
    let d = daemon();
    for job in ["echo-args", "fail", "echo-args"] {
        let _ = ctl(&d, &["run", job, "--wait"]);
    }
    let all = json_out(&ok(&d, &["runs"]));
    assert_eq!(all.as_array().map(Vec::len), Some(3), "{all}");
    let echo = json_out(&ok(&d, &["runs", "echo-args"]));
    let ids: Vec<&str> = echo
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["run_id"].as_str())
        .collect();
    assert_eq!(ids, ["3", "1"], "newest first: {echo}");
    let failed = json_out(&ok(&d, &["runs", "--state", "failed"]));
    assert_eq!(failed.as_array().map(Vec::len), Some(1), "{failed}");
    assert_eq!(failed[0]["job"], "fail");
    let one = json_out(&ok(&d, &["runs", "--limit", "1"]));
    assert_eq!(one.as_array().map(Vec::len), Some(1), "{one}");
    assert_eq!(one[0]["run_id"], "3");
    let none = json_out(&ok(&d, &["runs", "fail", "--state", "succeeded"]));
    assert_eq!(none, json!([]));

    let table = ok(&d, &["--human", "runs"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("RUN  JOB") && lines[0].contains("RESULT"),
        "{table}"
    );
    assert_eq!(lines.len(), 4, "{table}");
    assert!(
        lines[2].starts_with("2    fail       failed     manual"),
        "{table}"
    );
    assert!(lines[2].ends_with("exit 3"), "{table}");
    assert_eq!(
        ok(&d, &["--human", "runs", "fail", "--state", "running"]),
        "no runs\n"
    );

    let out = fails(&d, &["runs", "nope"]);
    assert!(out.stderr.contains("no such job: nope"), "{}", out.stderr);
    let out = fails(&d, &["runs", "--state", "sleeping"]);
    assert!(out.stderr.contains("state"), "{}", out.stderr);
}

#[test]
fn unknown_subcommands_and_misplaced_options_are_clear_errors() {
    let d = daemon();
    let out = fails(&d, &["frobnicate"]);
    assert!(
        out.stderr
            .contains("tickd ctl: unknown subcommand `frobnicate`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("jobs, job, run, cancel"),
        "{}",
        out.stderr
    );
    // The raw form still works, with and without a dot.
    assert_eq!(json_out(&ok(&d, &["ping"])), json!("pong"));
    let got = json_out(&ok(&d, &["jobs.get", r#"{"name":"beat"}"#]));
    assert_eq!(got["name"], "beat");
    let out = fails(&d, &["status", "--json"]);
    assert!(
        out.stderr.contains("options go before the METHOD"),
        "{}",
        out.stderr
    );
    // Options may follow a subcommand.
    let text = ok(&d, &["jobs", "--human"]);
    assert!(text.starts_with("NAME"), "{text}");
    // A subcommand's own bad usage is clap's: exit 2 with the usage.
    let addr = d.addr.to_string();
    let out = run_ctl(&["--connect", &addr, "cancel"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("RUN_ID"), "{}", out.stderr);
}

/// A running `tickd ctl watch` whose stdout and stderr lines arrive on
/// channels.
struct Watch {
    child: Child,
    out: mpsc::Receiver<String>,
    err: mpsc::Receiver<String>,
}

fn lines_of(r: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Watch {
    fn start(addr: &str, args: &[&str]) -> Watch {
        let mut all = vec!["--connect", addr, "watch"];
        all.extend_from_slice(args);
        let mut child = crate::ctl::ctl_cmd(&all).spawn().expect("spawn watch");
        let out = lines_of(child.stdout.take().expect("stdout"));
        let err = lines_of(child.stderr.take().expect("stderr"));
        Watch { child, out, err }
    }

    /// Waits for a stderr line containing `needle`; returns it.
    fn stderr_until(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.err.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no stderr line with {needle:?} before the deadline"),
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn watch_reconnects_after_the_daemon_restarts_on_the_same_port() {
    let mut first = daemon();
    let addr = first.addr.to_string();
    let watch = Watch::start(&addr, &["--human", "--jobs", "echo-args"]);
    watch.stderr_until("watching runs of echo-args");
    ok(&first, &["run", "echo-args", "--wait"]);
    let line = watch.out.recv_timeout(WAIT).expect("an event");
    assert!(line.contains("echo-args  queued  manual"), "{line}");

    ok(&first, &["shutdown"]);
    first.wait_exit(WAIT).expect("the first daemon exits");
    let lost = watch.stderr_until("reconnecting to");
    assert!(lost.contains(&addr), "{lost}");

    // The same port, a new daemon: watch finds it and subscribes again.
    let config = format!("[daemon]\nlisten = \"{addr}\"\nworkers = 2\n\n{JOBS}\n");
    let second = Daemon::start(&config);
    assert_eq!(second.addr.to_string(), addr);
    let back = watch.stderr_until("reconnected to");
    assert!(back.contains("watching runs of echo-args again"), "{back}");
    // Events of the new daemon arrive; those of other jobs still do not.
    let _ = watch.out.try_iter().count();
    ok(&second, &["run", "beat", "--wait"]);
    let started = json_out(&ok(&second, &["run", "echo-args"]));
    let id = started["run_id"].as_str().expect("run_id");
    let line = watch
        .out
        .recv_timeout(WAIT)
        .expect("an event after the restart");
    assert!(
        line.contains(&format!("  run {id}  echo-args  queued  manual")),
        "{line}"
    );
}

#[test]
fn logs_of_a_job_without_runs_or_an_unknown_job_fail_clearly() {
    let d = daemon();
    let out = fails(&d, &["logs", "echo-args"]);
    assert!(
        out.stderr.contains("job echo-args has no runs yet"),
        "{}",
        out.stderr
    );
    let out = fails(&d, &["logs", "nope"]);
    assert!(out.stderr.contains("no such job: nope"), "{}", out.stderr);
}

#[test]
fn logs_prints_the_output_of_a_run_or_of_a_jobs_latest_run() {
    let d = daemon();
    let run = json_out(&ok(
        &d,
        &["run", "echo-args", "--wait", "--arg", "who=logs"],
    ));
    let id = run["run_id"].as_str().expect("run_id");
    let want = "args={\"who\":\"logs\"}\n";
    // Raw output, on a pipe and on --human alike.
    assert_eq!(ok(&d, &["logs", id]), want);
    assert_eq!(ok(&d, &["--human", "logs", id]), want);
    assert_eq!(ok(&d, &["logs", "echo-args"]), want);
    ok(&d, &["run", "echo-args", "--wait", "--arg", "who=again"]);
    assert_eq!(ok(&d, &["logs", "echo-args"]), "args={\"who\":\"again\"}\n");
    // A finished run with -f: the output, then the end.
    let out = ctl(&d, &["logs", "-f", id]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, want);
    let out = fails(&d, &["logs", "999999"]);
    assert!(out.stderr.contains("999999"), "{}", out.stderr);
}

#[test]
fn logs_follow_prints_output_as_it_arrives_until_the_run_ends() {
    let d = daemon();
    let started = json_out(&ok(&d, &["run", "two-parts"]));
    let id = started["run_id"].as_str().expect("run_id").to_string();
    let addr = d.addr.to_string();
    let mut child = crate::ctl::ctl_cmd(&["--connect", &addr, "logs", "-f", "two-parts"])
        .spawn()
        .expect("spawn logs -f");
    let out = lines_of(child.stdout.take().expect("stdout"));
    let err = lines_of(child.stderr.take().expect("stderr"));
    // The first part arrives while the run still waits for the file.
    assert_eq!(out.recv_timeout(WAIT).expect("the first line"), "first");
    assert_eq!(
        d.client().ok("runs.get", json!({"run_id": id}))["state"],
        "running"
    );
    std::fs::write(d.dir().join("go"), "").expect("let the job go on");
    assert_eq!(out.recv_timeout(WAIT).expect("the second line"), "second");
    let status = util::wait_child(&mut child, WAIT).expect("logs -f ends with the run");
    assert_eq!(status.code(), Some(0));
    let last: Vec<String> = err.try_iter().collect();
    assert!(
        last.iter().any(|l| l == &format!("run {id} succeeded")),
        "{last:?}"
    );
}

#[test]
fn watch_with_a_bad_job_list_or_no_daemon_still_fails_at_once() {
    let d = daemon();
    let addr = d.addr.to_string();
    let out = run_ctl(&["--connect", &addr, "watch", "--jobs", "nope"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("nope"), "{}", out.stderr);
    drop(d);
    let mut cmd = Command::new(util::bin());
    let out = cmd
        .args(["ctl", "--connect", &addr, "watch"])
        .env_remove("TICKD_ADDR")
        .env_remove("TICKD_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run watch");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect to"), "{err}");
}
