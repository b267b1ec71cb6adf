//! A job's `limits` (rlimits, nice, I/O class) through the real binary: a
//! job that allocates past its memory limit and one that spins past its
//! CPU limit both end `failed` with the limit named; nice, the I/O class
//! and the open-file limit are read back by the job itself from /proc,
//! `ionice` (ioprio_get) and `ulimit -n`; a job defined with `jobs.put`
//! takes `limits` too; and `tickd check` refuses what cannot be applied.

use crate::util;

use serde_json::{json, Value};
use std::process::Command;
use util::{config, Daemon};

/// Runs job `name` and waits for its end.
fn run(d: &Daemon, name: &str) -> Value {
    d.client()
        .ok("jobs.run", json!({"name": name, "wait": true}))
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_job_that_allocates_past_its_memory_limit_fails_and_the_error_names_the_limit() {
    if !have("python3") {
        eprintln!("python3 not found: memory limit test skipped");
        return;
    }
    let d = Daemon::start(&config(
        "",
        r#"
[[jobs]]
name = "hog"
command = ["python3", "-c", "x = bytearray(400 * 1024 * 1024)"]
timeout = "30s"
limits = { memory = "128MiB" }

[[jobs]]
name = "small"
command = ["python3", "-c", "x = bytearray(16 * 1024 * 1024); print(len(x))"]
timeout = "30s"
limits = { memory = "128MiB" }
"#,
    ));
    let hog = run(&d, "hog");
    assert_eq!(hog["state"], "failed", "{hog}");
    let error = hog["error"].as_str().unwrap_or("");
    assert!(
        error.ends_with("(ran under a memory limit of 128 MiB)"),
        "{error}"
    );
    assert!(
        hog["output"].as_str().unwrap_or("").contains("MemoryError"),
        "the allocation failed inside the job: {hog}"
    );
    // Below the limit the same program runs fine: the limit is what failed.
    let small = run(&d, "small");
    assert_eq!(small["state"], "succeeded", "{small}");
    assert_eq!(small["output"], "16777216\n");
}

#[test]
fn a_job_that_spins_past_its_cpu_limit_is_killed_and_the_error_names_the_limit() {
    let d = Daemon::start(&config(
        "",
        r#"
[[jobs]]
name = "spin"
command = ["sh", "-c", "while :; do :; done"]
timeout = "60s"
limits = { cpu_time = "1s" }
"#,
    ));
    let spin = run(&d, "spin");
    assert_eq!(spin["state"], "failed", "{spin}");
    assert_eq!(spin["error"], "killed: cpu time limit 1s", "{spin}");
}

/// Spends about 6 s of CPU: the hard limit is 5 s past the soft one.
#[test]
fn a_job_that_ignores_sigxcpu_is_killed_at_the_hard_limit_and_the_error_still_names_it() {
    let d = Daemon::start(&config(
        "",
        r#"
[[jobs]]
name = "stubborn"
command = ["sh", "-c", "trap '' XCPU; while :; do :; done"]
timeout = "120s"
limits = { cpu_time = "1s" }
"#,
    ));
    let run = run(&d, "stubborn");
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(run["error"], "killed: cpu time limit 1s", "{run}");
}

#[test]
fn nice_io_class_and_open_files_are_what_the_job_sees() {
    let ionice = have("ionice");
    let script = if ionice {
        "cut -d' ' -f19 /proc/$$/stat; ulimit -n; ionice -p $$"
    } else {
        "cut -d' ' -f19 /proc/$$/stat; ulimit -n"
    };
    let jobs = format!(
        r#"
[[jobs]]
name = "limited"
command = ["sh", "-c", "{script}"]
limits = {{ nice = 10, open_files = 77, io_class = "idle" }}

[[jobs]]
name = "plain"
command = ["sh", "-c", "{script}"]
"#
    );
    let d = Daemon::start(&config("", &jobs));
    let limited = run(&d, "limited");
    assert_eq!(limited["state"], "succeeded", "{limited}");
    let out = limited["output"].as_str().unwrap_or("").to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"10"), "nice from /proc: {out}");
    assert_eq!(lines.get(1), Some(&"77"), "ulimit -n: {out}");
    if ionice {
        assert_eq!(lines.get(2), Some(&"idle"), "ionice -p (ioprio_get): {out}");
    } else {
        eprintln!("ionice not found: the I/O class is not checked");
    }
    // A job without limits keeps what tickd has.
    let plain = run(&d, "plain");
    let out = plain["output"].as_str().unwrap_or("").to_string();
    assert_ne!(out.lines().next(), Some("10"), "{out}");
    assert_ne!(out.lines().nth(1), Some("77"), "{out}");
}

#[test]
fn a_job_put_through_the_api_takes_limits_and_a_refused_limit_fails_the_run_clearly() {
    let d = Daemon::start(&config("allow_job_api = true", ""));
    let mut c = d.client();
    let job = json!({"name": "api", "command": ["sh", "-c", "ulimit -n"],
                     "limits": {"open_files": 33}});
    c.ok("jobs.put", json!({ "job": job }));
    let r = run(&d, "api");
    assert_eq!(
        (r["state"].as_str(), r["output"].as_str()),
        (Some("succeeded"), Some("33\n")),
        "{r}"
    );
    // More open files than the kernel allows anyone (fs.nr_open): the
    // child cannot apply it, and the run says which limit and why.
    let job = json!({"name": "huge", "command": ["true"],
                     "limits": {"open_files": 1 << 30}});
    c.ok("jobs.put", json!({ "job": job }));
    let r = run(&d, "huge");
    assert_eq!(r["state"], "failed", "{r}");
    let error = r["error"].as_str().unwrap_or("");
    assert!(
        error.starts_with("cannot apply limits.open_files before starting true: "),
        "{error}"
    );
    let refused = c.call(
        "jobs.put",
        json!({"job": {"name": "p", "command": ["true"], "limits": {"processes": 3}}}),
    );
    let message = refused["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("job.limits.processes: needs a delegated cgroup v2 subtree"),
        "{refused}"
    );
}

#[test]
fn check_refuses_processes_limits_on_an_http_job_and_a_bad_memory_size() {
    let (code, err) = util::check_text(
        r#"
[[jobs]]
name = "p"
command = ["true"]
limits = { processes = 10 }

[[jobs]]
name = "h"
kind = "http"
url = "http://127.0.0.1:1/"
limits = { cpu_time = "1m" }

[[jobs]]
name = "m"
command = ["true"]
limits = { memory = "lots" }
"#,
    );
    assert_eq!(code, Some(1), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "one line per problem:\n{err}");
    assert!(
        lines[0].contains(
            ":5: jobs[0].limits.processes (job \"p\"): needs a delegated cgroup v2 subtree"
        ) && lines[0].contains(
            "RLIMIT_NPROC counts every process of the user, tickd's own threads included"
        ),
        "{err}"
    );
    assert!(
        lines[1].contains(":11: jobs[1].limits (job \"h\"): only applies to kind \"exec\""),
        "{err}"
    );
    assert!(
        lines[2].contains(":16: jobs[2].limits.memory (job \"m\"): \"lots\" is not a size"),
        "{err}"
    );
    let (code, err) = util::check_text(
        "[[jobs]]\nname = \"ok\"\ncommand = [\"true\"]\nlimits = { memory = \"1GiB\", nice = 5 }\n",
    );
    assert_eq!(code, Some(0), "{err}");
}
