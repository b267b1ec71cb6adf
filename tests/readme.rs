//! The `$ ` examples of README.md and docs/ctl.md, run as written against
//! a daemon started on the shipped `conf/tickd.toml`, so that they cannot
//! rot (issue 14, item 13).
//!
//! The daemon gets a copy of the shipped config with two changes: `listen`
//! becomes `127.0.0.1:0`, and every `/tmp` path (the jobs' logs, the demo
//! database, the prune directory) moves into the test's temporary
//! directory. Each example runs under `sh` in that directory, where
//! `conf/tickd.toml` is that copy, next to the files the document shows in
//! a ```toml block introduced by a line naming them (`` `bad.toml` was: ``).
//! `tickd` on the `PATH` is the binary under test, `TICKD_ADDR` holds the
//! daemon's address, and the address in `curl`/`nc` commands
//! (`127.0.0.1:7070`, `localhost:7070`, `127.0.0.1 7070`) becomes the real
//! one. Examples run in document order, on one daemon, and must exit 0; the
//! document shows exit statuses as `; echo "exit=$?"`.
//!
//! An example that cannot run here (it waits until Ctrl-C, or fails on
//! purpose) carries a trailing comment saying why, and is listed in the
//! document's skip list below with that same reason. An example with such
//! a comment that is not listed, a listed example that is gone, or one not
//! listed that fails, fails the test. Where the document shows output, a
//! key part of it (in [`Doc::expect`]) must appear both in the document's
//! transcript and in what the command printed. An example that needs `curl`
//! or `nc` where it is not installed is skipped with a note; `tickd ctl`
//! and `tickd check` examples always run.

use crate::util;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use util::{Daemon, WAIT};

/// One `$ ` example: its command (continuation lines joined) and the
/// transcript the document shows after it.
#[derive(Debug)]
struct Example {
    /// The first line of the command, without its trailing comment: the
    /// example's name in the lists below.
    name: String,
    /// The whole command as the shell gets it.
    command: String,
    /// The trailing `# ...` comment of the first line, if any.
    comment: Option<String>,
    /// The lines shown after the command, up to the next one.
    shown: String,
    /// Line number of the command in the document (1-based).
    line: usize,
}

/// A document whose examples are run, and what the test knows about them.
struct Doc {
    /// Path from the crate root.
    path: &'static str,
    /// Examples not run, by name, with the reason their comment gives.
    skip: &'static [(&'static str, &'static str)],
    /// For some examples, by name: text that must appear both in the
    /// document's transcript and in the real output.
    expect: &'static [(&'static str, &'static [&'static str])],
}

const README: Doc = Doc {
    path: "README.md",
    skip: &[
        ("cargo run --release -- run", "runs until Ctrl-C"),
        ("tickd ctl watch --jobs flaky", "runs until Ctrl-C"),
        (
            "tickd ctl --connect 127.0.0.1:7999 status",
            "fails on purpose: nothing listens there",
        ),
    ],
    expect: &[
        (
            r"printf '%s\n' \",
            &[
                r#"{"jsonrpc":"2.0","id":null,"result":"pong"}"#,
                r#""jobs":8,"#,
                r#""output":"args: {\"who\":\"me\"}\nstdin:\n{\"who\":\"me\"}\n""#,
                r#""code":-32700"#,
                r#""code":-32601"#,
            ],
        ),
        (
            "tickd ctl --json status",
            &[r#""health": "ok""#, r#""jobs": 8,"#],
        ),
        (
            r#"tickd ctl jobs.get '{"name":"missing"}'; echo "exit=$?""#,
            &["tickd ctl: no such job: missing (-32000)", "exit=1"],
        ),
        (
            "tickd check",
            &["conf/tickd.toml: ok, 8 jobs (5 scheduled)"],
        ),
        (
            r#"tickd check --config bad.toml; echo "exit=$?""#,
            &["bad.toml:3:", "workers", "exit=1"],
        ),
        (
            r#"tickd check --config typo.toml; echo "exit=$?""#,
            &["typo.toml:2:", "wokers", "exit=1"],
        ),
        (
            "tickd check --config later.toml",
            &["later.toml: ok, 1 job (1 scheduled)", "daemon.group"],
        ),
        (
            "tickd ctl run echo-args --wait --arg who=me",
            &["succeeded", "args: "],
        ),
        (
            "tickd ctl runs echo-args --limit 1 | jq -r '.[].state'",
            &["succeeded"],
        ),
        (
            "tickd ctl jobs.list",
            &["backup", "flaky", "prune-demo-logs"],
        ),
        (
            r#"tickd ctl jobs.run '{"name":"flaky","wait":true}'"#,
            &[r#""exit_code": 3,"#, r#""state": "failed","#],
        ),
        ("curl -s localhost:7070/healthz", &["ok"]),
        (
            r#"curl -s -X POST -H 'Content-Type: application/json' localhost:7070/jobs/backup/run -d '{"dry_run": true}'"#,
            &[r#"{"run_id":""#],
        ),
        ("curl -s localhost:7070/runs/1", &[r#""run_id":"1""#]),
        (
            r#"curl -s localhost:7070/metrics | grep 'job_name="backup"' | head -3"#,
            &["tickd_runs_total{"],
        ),
    ],
};

const CTL_MD: Doc = Doc {
    path: "docs/ctl.md",
    skip: &[
        ("tickd ctl watch --jobs flaky,backup", "runs until Ctrl-C"),
        (
            r#"tickd ctl watch --jobs flaky | jq -r 'select(.state == "failed") | .run_id'"#,
            "runs until Ctrl-C",
        ),
        (
            "tickd ctl --human watch | grep --line-buffered failed",
            "runs until Ctrl-C",
        ),
        (
            "tickd ctl --connect 127.0.0.1:7999 status",
            "fails on purpose: nothing listens there",
        ),
        (
            "tickd ctl --unix /tmp/nope.sock ping",
            "fails on purpose: nothing listens there",
        ),
        (
            "tickd ctl put nightly.toml",
            "needs daemon.allow_job_api = true, which conf/tickd.toml leaves off",
        ),
        (
            r#"tickd ctl jobs.delete '{"name":"nightly-report"}'"#,
            "needs daemon.allow_job_api = true, which conf/tickd.toml leaves off",
        ),
        ("tickd ctl watch --jobs flaky", "runs until Ctrl-C"),
    ],
    expect: &[
        ("tickd ctl jobs flaky", &["flaky: giving up", "exit 3"]),
        (
            "tickd ctl run echo-args --wait --arg who=me",
            &["succeeded", "args: "],
        ),
        (
            r#"tickd ctl run flaky --wait; echo "exit=$?""#,
            &["failed", "exit=3"],
        ),
        ("tickd ctl pause heartbeat", &["heartbeat", "paused"]),
        ("tickd ctl resume heartbeat", &["heartbeat"]),
        (
            "tickd ctl runs flaky --state failed --limit 1",
            &["flaky", "failed"],
        ),
        (
            r#"tickd ctl frobnicate; echo "exit=$?""#,
            &["tickd ctl: unknown subcommand `frobnicate`", "exit=1"],
        ),
        (
            r#"tickd ctl jobs.pause '{"name":"heartbeat"}'"#,
            &[
                r#""enabled": false,"#,
                r#""name": "heartbeat","#,
                r#""paused": true,"#,
                r#""persistent": false"#,
            ],
        ),
        (
            r#"tickd ctl jobs.run '{"name":"flaky","wait":true}'"#,
            &[r#""exit_code": 3,"#, r#""output": "flaky: giving up\n","#],
        ),
        ("tickd ctl status", &["health", "jobs"]),
        (
            "tickd ctl jobs.list",
            &["backup", "flaky", "heartbeat", "sql-tick"],
        ),
        (
            r#"tickd ctl jobs.list | jq -r '.[] | select(.last_run.state == "failed") | .name'"#,
            &["flaky"],
        ),
        (
            r#"tickd ctl runs.get '{"run_id":"999"}'; echo "exit=$?""#,
            &["tickd ctl: no such run: 999 (-32000)", "exit=1"],
        ),
        (
            r#"tickd ctl jobs.run {name:flaky}; echo "exit=$?""#,
            &["PARAMS_JSON is not valid JSON", "exit=1"],
        ),
        (
            r#"tickd ctl jobs.run '"flaky"'; echo "exit=$?""#,
            &["must be a JSON object", "exit=1"],
        ),
        (
            r#"tickd ctl put nightly.toml; echo "exit=$?""#,
            &[
                "jobs defined at run time are disabled",
                "(-32003)",
                "exit=1",
            ],
        ),
    ],
};

#[test]
fn readme_examples_run_against_the_shipped_config() {
    run_doc(&README);
}

#[test]
fn ctl_md_examples_run_against_the_shipped_config() {
    run_doc(&CTL_MD);
}

/// Reads `doc`, starts a daemon on the shipped config, runs every example
/// not skipped and checks it.
fn run_doc(doc: &Doc) {
    let text = std::fs::read_to_string(root().join(doc.path)).expect("read the document");
    let (examples, files) = parse(&text);
    assert!(!examples.is_empty(), "{}: no `$ ` examples found", doc.path);
    check_lists(doc, &examples);

    let d = Daemon::start(&shipped_config());
    let dir = d.dir();
    std::fs::create_dir_all(dir.join("conf")).expect("conf dir");
    std::fs::copy(&d.config_path, dir.join("conf/tickd.toml")).expect("copy the config");
    for (name, body) in &files {
        std::fs::write(dir.join(name), body).expect("write an example file");
    }
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    std::os::unix::fs::symlink(util::bin(), bin.join("tickd")).expect("tickd on the PATH");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let mut ran = 0;
    for ex in &examples {
        if let Some((_, reason)) = doc.skip.iter().find(|(n, _)| *n == ex.name) {
            eprintln!("{}:{}: not run ({reason}): {}", doc.path, ex.line, ex.name);
            continue;
        }
        if let Some(tool) = missing_tool(&ex.command) {
            eprintln!(
                "{}:{}: skipped, `{tool}` is not installed: {}",
                doc.path, ex.line, ex.name
            );
            continue;
        }
        let command = with_address(&ex.command, d.addr);
        let out = run_sh(&command, dir, &path, &d.addr.to_string());
        assert_eq!(
            out.0,
            Some(0),
            "{}:{}: `{}` exited {:?}; it printed:\n{}",
            doc.path,
            ex.line,
            ex.name,
            out.0,
            out.1
        );
        for needle in expected(doc, &ex.name) {
            assert!(
                ex.shown.contains(needle),
                "{}:{}: the transcript of `{}` no longer shows {needle:?}:\n{}",
                doc.path,
                ex.line,
                ex.name,
                ex.shown
            );
            assert!(
                out.1.contains(needle),
                "{}:{}: `{}` did not print {needle:?}; it printed:\n{}",
                doc.path,
                ex.line,
                ex.name,
                out.1
            );
        }
        ran += 1;
    }
    eprintln!("{}: {ran} of {} examples run", doc.path, examples.len());
}

/// The skip list and the comments agree, and every listed name exists.
fn check_lists(doc: &Doc, examples: &[Example]) {
    for ex in examples {
        let listed = doc.skip.iter().find(|(n, _)| *n == ex.name);
        match (listed, &ex.comment) {
            (Some((_, reason)), Some(comment)) => assert_eq!(
                comment, reason,
                "{}:{}: `{}` is skipped for {reason:?} but its comment says {comment:?}",
                doc.path, ex.line, ex.name
            ),
            (Some((_, reason)), None) => panic!(
                "{}:{}: `{}` is skipped, so it must say why in the document: \
                 end its line with `# {reason}`",
                doc.path, ex.line, ex.name
            ),
            (None, Some(comment)) => panic!(
                "{}:{}: `{}` is marked `# {comment}` but is not in the skip list of \
                 tests/readme.rs: list it there, or drop the comment so it runs",
                doc.path, ex.line, ex.name
            ),
            (None, None) => {}
        }
    }
    let names: Vec<&str> = doc
        .skip
        .iter()
        .map(|(n, _)| *n)
        .chain(doc.expect.iter().map(|(n, _)| *n))
        .collect();
    for name in names {
        assert!(
            examples.iter().any(|ex| ex.name == name),
            "{}: tests/readme.rs names an example the document no longer has: {name}",
            doc.path
        );
    }
}

fn expected(doc: &Doc, name: &str) -> &'static [&'static str] {
    doc.expect
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(&[], |(_, e)| e)
}

/// The crate root (README.md, conf/, docs/).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped config on port 0, its `/tmp` paths in the test's directory
/// (`$DIR`, which the harness fills in).
fn shipped_config() -> String {
    let text =
        std::fs::read_to_string(root().join("conf/tickd.toml")).expect("read conf/tickd.toml");
    let listen = "listen = \"127.0.0.1:7070\"";
    assert!(text.contains(listen), "conf/tickd.toml should say {listen}");
    assert!(text.contains("\"/tmp"), "conf/tickd.toml has no /tmp path");
    text.replace(listen, "listen = \"127.0.0.1:0\"")
        .replace("/tmp", "$DIR")
}

/// Splits a document into its `$ ` examples (in plain ``` blocks) and the
/// files shown in ```toml blocks whose introducing line names one
/// (`` `NAME.toml` was: `` or `` ..., in `NAME.toml`: ``).
fn parse(text: &str) -> (Vec<Example>, Vec<(String, String)>) {
    let lines: Vec<&str> = text.lines().collect();
    let mut examples: Vec<Example> = Vec::new();
    let mut files = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(info) = lines[i].strip_prefix("```") else {
            i += 1;
            continue;
        };
        let start = i + 1;
        let end = (start..lines.len())
            .find(|&j| lines[j].starts_with("```"))
            .unwrap_or(lines.len());
        let body = &lines[start..end];
        if info == "toml" {
            if let Some(name) = file_name_before(&lines[..i]) {
                files.push((name, body.join("\n") + "\n"));
            }
        } else if info.is_empty() {
            examples.extend(examples_in(body, start + 1));
        }
        i = end + 1;
    }
    (examples, files)
}

/// The `$ ` examples of one code block whose first line is `first_line`.
fn examples_in(body: &[&str], first_line: usize) -> Vec<Example> {
    let mut out: Vec<Example> = Vec::new();
    let mut j = 0;
    while j < body.len() {
        let Some(first) = body[j].strip_prefix("$ ") else {
            if let Some(ex) = out.last_mut() {
                ex.shown.push_str(body[j]);
                ex.shown.push('\n');
            }
            j += 1;
            continue;
        };
        let line = first_line + j;
        let (name, comment) = split_comment(first);
        let mut command = name.clone();
        while body[j].ends_with('\\') && j + 1 < body.len() {
            j += 1;
            command.push('\n');
            command.push_str(body[j]);
        }
        out.push(Example {
            name,
            command,
            comment,
            shown: String::new(),
            line,
        });
        j += 1;
    }
    out
}

/// `cmd   # why` -> (`cmd`, `why`): a comment is `#` after two spaces.
fn split_comment(line: &str) -> (String, Option<String>) {
    match line.find("  #") {
        Some(at) => (
            line[..at].trim_end().to_string(),
            Some(line[at..].trim_start_matches([' ', '#']).trim().to_string()),
        ),
        None => (line.trim_end().to_string(), None),
    }
}

/// The file a ```toml block shows: the last non-blank line before it ends
/// with a colon and names exactly one `NAME.toml` (no directory).
fn file_name_before(before: &[&str]) -> Option<String> {
    let intro = before.iter().rev().find(|l| !l.trim().is_empty())?;
    if !intro.trim_end().ends_with(':') {
        return None;
    }
    let names: Vec<&str> = intro
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| w.ends_with(".toml"))
        .collect();
    match names[..] {
        [name] if !name.contains('/') => Some(name.to_string()),
        _ => None,
    }
}

/// The address the document uses, replaced by the daemon's.
fn with_address(command: &str, addr: std::net::SocketAddr) -> String {
    let port = addr.port();
    command
        .replace("127.0.0.1:7070", &addr.to_string())
        .replace("localhost:7070", &format!("localhost:{port}"))
        .replace("127.0.0.1 7070", &format!("127.0.0.1 {port}"))
}

/// `curl` or `nc` when the command needs it and it is not installed.
fn missing_tool(command: &str) -> Option<&'static str> {
    ["curl", "nc", "jq"].into_iter().find(|tool| {
        let used = command
            .split(|c: char| c.is_whitespace() || c == '|' || c == ';' || c == '(')
            .any(|word| word == *tool);
        used && !installed(tool)
    })
}

fn installed(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", "command -v \"$1\" >/dev/null", "sh", tool])
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `command` under `sh` in `dir` (stderr merged into stdout, as a
/// terminal shows them), bounded by [`WAIT`]; its exit code (None when it
/// was killed) and output.
fn run_sh(command: &str, dir: &Path, path: &str, addr: &str) -> (Option<i32>, String) {
    let mut child = Command::new("sh")
        .process_group(0)
        .arg("-c")
        .arg(format!("exec 2>&1\n{command}"))
        .current_dir(dir)
        .env("PATH", path)
        .env("TICKD_ADDR", addr)
        .env_remove("TICKD_TOKEN")
        .env_remove("TICKD_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sh");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let status = util::wait_child(&mut child, WAIT);
    if status.is_none() {
        // The whole group: a hung `nc` would keep the pipe open.
        let group = rustix::process::Pid::from_child(&child);
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        let _ = child.wait();
    }
    let text = reader.join().expect("stdout reader");
    match status {
        Some(s) => (s.code(), text),
        None => (None, format!("(did not finish within {WAIT:?})\n{text}")),
    }
}

#[test]
fn the_parser_finds_commands_comments_transcripts_and_files() {
    let doc = "intro\n\n```\n$ tickd ctl a \\\n    b\nshown 1\n$ sleep 9   # runs until Ctrl-C\n```\n\nThe file, in `x.toml`:\n\n```toml\n[daemon]\n```\n\nNot a file (`conf/tickd.toml`):\n\n```toml\n[daemon]\n```\n\n```toml\n$ not a command\n```\n";
    let (examples, files) = parse(doc);
    let got: Vec<_> = examples
        .iter()
        .map(|e| {
            (
                e.name.as_str(),
                e.command.as_str(),
                e.comment.as_deref(),
                e.shown.as_str(),
                e.line,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "tickd ctl a \\",
                "tickd ctl a \\\n    b",
                None,
                "shown 1\n",
                4
            ),
            ("sleep 9", "sleep 9", Some("runs until Ctrl-C"), "", 7),
        ]
    );
    assert_eq!(files, [("x.toml".to_string(), "[daemon]\n".to_string())]);
    let addr: std::net::SocketAddr = "127.0.0.1:4242".parse().expect("addr");
    assert_eq!(
        with_address("curl localhost:7070/x; nc -N 127.0.0.1 7070", addr),
        "curl localhost:4242/x; nc -N 127.0.0.1 4242"
    );
}
