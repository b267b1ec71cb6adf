//! `tickd check` (and `tickd run`) on bad configs, through the real binary:
//! where the config path comes from (`--config`, `TICKD_CONFIG`, the
//! default), and that one pass reports every problem, each naming its job,
//! with suggestions and printable text.

use crate::util;

use std::path::Path;
use std::process::{Command, Output};
use util::bin;

/// Runs the binary with `args` in directory `cwd`, with `TICKD_CONFIG` set
/// to `env` (or removed).
fn tickd(args: &[&str], cwd: &Path, env: Option<&Path>) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args).current_dir(cwd).env_remove("RUST_LOG");
    match env {
        Some(path) => cmd.env("TICKD_CONFIG", path),
        None => cmd.env_remove("TICKD_CONFIG"),
    };
    cmd.output().expect("run tickd")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_missing_default_config_names_the_absolute_path_and_how_to_choose_another() {
    let dir = tempfile::tempdir().expect("dir");
    let out = tickd(&["check"], dir.path(), None);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let tried = dir.path().join("conf/tickd.toml");
    assert!(
        err.starts_with(&format!("{}: cannot read config: ", tried.display())),
        "{err}"
    );
    assert!(
        err.contains("--config PATH") && err.contains("TICKD_CONFIG"),
        "{err}"
    );
    // `run` says the same and exits 1 (a config error).
    let out = tickd(&["run"], dir.path(), None);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&tried.display().to_string()), "{err}");
    assert!(err.contains("TICKD_CONFIG"), "{err}");
}

#[test]
fn tickd_config_sets_the_path_when_config_is_absent() {
    let dir = tempfile::tempdir().expect("dir");
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[[jobs]]\nname = \"x\"\ncommand = [\"true\"]\n").expect("write");
    let out = tickd(&["check"], dir.path(), Some(&good));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("{}: ok, 1 job (0 scheduled)", good.display())
    );

    // `run` reads it too: a broken file named only by the variable stops
    // the start with that file's error.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[daemon]\nworkers = 0\n").expect("write");
    let out = tickd(&["run"], dir.path(), Some(&bad));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}:2: daemon.workers", bad.display())),
        "{err}"
    );

    // --config wins over the variable.
    let out = tickd(
        &["check", "--config", &good.display().to_string()],
        dir.path(),
        Some(&bad),
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn check_reports_every_problem_in_one_pass_with_suggestions() {
    let (code, err) = util::check_text(
        r#"[daemon]
wokers = 4
history = "lots"

[[jobs]]
name = "x"
comand = ["true"]
every = 5

[[jobs]]
name = "y"
cron = "0 0 * * MAR"
tz = "America/NewYork"
command = ["true"]

[[jobs]]
name = "z"
cron = "0 25 * * *"
command = ["true"]
"#,
    );
    assert_eq!(code, Some(1));
    let lines: Vec<&str> = err.lines().collect();
    let want = [
        "bad.toml:2: daemon.wokers: unknown key; did you mean `workers`?",
        "bad.toml:3: daemon.history: expected an integer, found a string (\"lots\")",
        "bad.toml:7: jobs[0].comand (job \"x\"): unknown key; did you mean `command`?",
        "bad.toml:8: jobs[0].every (job \"x\"): expected a string or an array of strings, found an integer (5)",
        "bad.toml:12: jobs[1].cron (job \"y\"): invalid cron expression \"0 0 * * MAR\": day-of-week field \"MAR\": MAR is a month, not a day of the week",
        "bad.toml:13: jobs[1].tz (job \"y\"): \"America/NewYork\" is not a known time zone name; did you mean America/New_York?",
        "bad.toml:18: jobs[2].cron (job \"z\"): invalid cron expression \"0 25 * * *\": hour field \"25\": 25 is out of range: the hour field takes 0-23",
    ];
    assert_eq!(lines.len(), want.len(), "{err}");
    for (line, want) in lines.iter().zip(want) {
        assert!(line.contains(want), "{line}\nwanted: {want}");
    }
}

#[test]
fn check_prints_control_characters_in_job_names_escaped() {
    // A job name holding a terminal escape (clear screen) and a bell.
    let (code, err) = util::check_text(
        "[[jobs]]\nname = \"a\\u001b[2J\\u0007b\"\ncommand = [\"true\"]\ntimeout = \"x\"\n",
    );
    assert_eq!(code, Some(1));
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");
    assert!(
        err.contains(r#"jobs[0].name: "a\u{1b}[2J\u{7}b" is not a valid job name"#),
        "{err}"
    );
    assert!(
        err.contains(r#"jobs[0].timeout (job "a\u{1b}[2J\u{7}b"): invalid duration"#),
        "{err}"
    );
}
