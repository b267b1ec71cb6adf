//! Socket activation (issue 20, item 1): tickd started with listening
//! sockets passed by systemd's protocol (`LISTEN_PID`, `LISTEN_FDS`,
//! `LISTEN_FDNAMES`, fds from 3) uses them instead of binding.
//!
//! Restarts are tested through a launcher written here (the test holds the
//! listener, as systemd's socket unit does, and starts each daemon with it
//! as fd 3): `systemd-socket-activate` execs its command once and cannot
//! restart it. The real `systemd-socket-activate` is used, where installed,
//! for one start on a Unix socket.

use crate::util::load::PingLoad;
use crate::util::{self, bin, collect_stderr, config, poll_until, wait_child, Client, WAIT};
use serde_json::json;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

/// Starts `tickd run --config CONFIG` with `fds` as fds 3, 4, ... and the
/// socket-activation variables, as systemd does. `LISTEN_PID` is set by a
/// shell to its own pid, which `exec` hands to tickd. `pid` overrides it.
fn launch(
    config_path: &Path,
    fds: &[&OwnedFd],
    names: Option<&str>,
    pid: Option<&str>,
) -> (Child, Arc<util::LogBuf>) {
    // Duplicates numbered above 3 + n, so that moving one to 3 never
    // overwrites another (closed in this process after the spawn).
    let high: Vec<OwnedFd> = fds
        .iter()
        .map(|fd| rustix::io::fcntl_dupfd_cloexec(fd, 10 + fds.len() as i32).expect("dup"))
        .collect();
    let raw: Vec<i32> = high.iter().map(AsRawFd::as_raw_fd).collect();
    let script = match pid {
        Some(p) => format!("LISTEN_PID={p} exec \"$0\" run --config \"$1\""),
        None => "LISTEN_PID=$$ exec \"$0\" run --config \"$1\"".to_string(),
    };
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .arg(bin())
        .arg(config_path)
        .env("LISTEN_FDS", fds.len().to_string())
        .env_remove("LISTEN_FDNAMES")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(n) = names {
        cmd.env("LISTEN_FDNAMES", n);
    }
    // SAFETY: between fork and exec the closure only calls dup2 on fds
    // that stay open in the parent until the spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            for (i, fd) in raw.iter().enumerate() {
                if libc::dup2(*fd, 3 + i as i32) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn tickd");
    drop(high);
    let log = collect_stderr(&mut child);
    (child, log)
}

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("tickd.toml");
    std::fs::write(&path, text.replace("$DIR", &dir.display().to_string())).expect("write");
    path
}

fn term(child: &Child) {
    let pid = rustix::process::Pid::from_child(child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("kill");
}

#[test]
fn restarts_under_load_refuse_no_connection_and_answer_every_request() {
    let dir = tempfile::tempdir().expect("dir");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let listener = OwnedFd::from(listener);
    let cfg = write_config(
        dir.path(),
        &format!("[daemon]\nlisten = \"{addr}\"\nworkers = 1\nstate_dir = \"$DIR/state\"\n"),
    );
    let (mut child, log) = launch(&cfg, &[&listener], Some("listen"), None);
    let (_, line) = log
        .wait_for("listening on ", 0, WAIT)
        .unwrap_or_else(|| panic!("no listening line: {:?}", log.all()));
    assert!(
        line.contains(&format!("listening on {addr} (inherited fd 3)")),
        "{line}"
    );
    let load = PingLoad::start(addr);
    let mut pids = Vec::new();
    for round in 0..5 {
        load.wait_for_answers(20);
        let pid = Client::connect(addr).ok("status", json!({}))["pid"].clone();
        pids.push(pid);
        term(&child);
        let status = wait_child(&mut child, WAIT).expect("daemon exits on SIGTERM");
        assert!(
            status.success(),
            "round {round}: {status:?}\n{:?}",
            log.all()
        );
        // Started at once: connections made meanwhile wait in the backlog
        // of the socket this test holds.
        (child, _) = launch(&cfg, &[&listener], Some("listen"), None);
    }
    load.wait_for_answers(20);
    let report = load.finish();
    term(&child);
    assert!(wait_child(&mut child, WAIT).expect("exit").success());
    eprintln!("restart under load: {report:?}");
    assert_eq!(report.refused, 0, "{report:?}");
    assert!(report.connect_errors.is_empty(), "{report:?}");
    assert_eq!(
        report.sent, report.answered,
        "every request answered: {report:?}"
    );
    assert!(report.answered >= 120, "{report:?}");
    pids.dedup();
    assert_eq!(pids.len(), 5, "a new process each time: {pids:?}");
}

#[test]
fn an_inherited_socket_that_does_not_match_the_config_fails_the_start() {
    let dir = tempfile::tempdir().expect("dir");
    let listener = OwnedFd::from(std::net::TcpListener::bind("127.0.0.1:0").expect("bind"));
    let cases = [
        (
            "[daemon]\nlisten = \"127.0.0.1:1\"\n".to_string(),
            None,
            "does not match daemon.listen = \"127.0.0.1:1\"",
        ),
        (
            "[daemon]\nlisten = \"\"\n".to_string(),
            None,
            "but daemon.listen is \"\" (no TCP listener)",
        ),
        (
            "[daemon]\nlisten = \"127.0.0.1:0\"\nunix_socket = \"$DIR/t.sock\"\n".to_string(),
            Some("unix_socket"),
            "is named \"unix_socket\", but daemon.unix_socket is a Unix socket",
        ),
    ];
    for (text, names, expect) in cases {
        let cfg = write_config(dir.path(), &text);
        let (mut child, log) = launch(&cfg, &[&listener], names, None);
        let status = wait_child(&mut child, WAIT).expect("exits");
        assert_eq!(status.code(), Some(2), "{text}: {:?}", log.all());
        poll_until("the error line", || {
            log.all().iter().any(|l| l.contains(expect)).then_some(())
        });
        let all = log.all().join("\n");
        assert!(
            all.contains("inherited fd 3 (named") || names.is_none(),
            "{all}"
        );
        assert!(!all.contains("listening on"), "{all}");
    }
    // A UDP socket is no listener.
    let udp = OwnedFd::from(std::net::UdpSocket::bind("127.0.0.1:0").expect("udp"));
    let cfg = write_config(dir.path(), "[daemon]\nlisten = \"127.0.0.1:0\"\n");
    let (mut child, log) = launch(&cfg, &[&udp], None, None);
    assert_eq!(wait_child(&mut child, WAIT).expect("exits").code(), Some(2));
    poll_until("the error line", || {
        log.all()
            .iter()
            .any(|l| l.contains("inherited fd 3 (LISTEN_FDS): not a stream socket"))
            .then_some(())
    });
}

#[test]
fn sockets_for_another_pid_are_left_alone_and_jobs_inherit_no_listener() {
    let dir = tempfile::tempdir().expect("dir");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let listener = OwnedFd::from(listener);
    // Another pid: ignored, with a warning; tickd binds its own.
    let cfg = write_config(dir.path(), &config("", ""));
    let (mut child, log) = launch(&cfg, &[&listener], None, Some("1"));
    let (_, line) = log.wait_for("listening on ", 0, WAIT).expect("listening");
    assert_ne!(util::listening_addr(&line), addr, "{line}");
    assert!(log
        .wait_for("is for pid 1, not this process", 0, WAIT)
        .is_some());
    term(&child);
    assert!(wait_child(&mut child, WAIT).expect("exit").success());

    // Ours: used, and close-on-exec, so a job's process has no socket.
    let jobs = r#"[[jobs]]
name = "fds"
kind = "exec"
command = ["sh", "-c", "ls -l /proc/$$/fd; env | grep -c '^LISTEN_' || true"]
"#;
    let cfg = write_config(
        dir.path(),
        &format!("[daemon]\nlisten = \"{addr}\"\nworkers = 1\n\n{jobs}"),
    );
    let (mut child, log) = launch(&cfg, &[&listener], None, None);
    log.wait_for("listening on ", 0, WAIT).expect("listening");
    let run = Client::connect(addr).ok("jobs.run", json!({"name": "fds", "wait": true}));
    let out = run["output"].as_str().expect("output");
    assert!(!out.contains("socket:"), "a job inherited a socket:\n{out}");
    assert!(
        out.trim_end().ends_with('0'),
        "LISTEN_* reached the job:\n{out}"
    );
    term(&child);
    assert!(wait_child(&mut child, WAIT).expect("exit").success());
}

#[test]
fn systemd_socket_activate_starts_tickd_on_a_unix_socket_it_keeps() {
    if Command::new("systemd-socket-activate")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: systemd-socket-activate is not installed (Debian package systemd)");
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let sock = dir.path().join("tickd.sock");
    let cfg = write_config(
        dir.path(),
        "[daemon]\nlisten = \"\"\nworkers = 1\nunix_socket = \"$DIR/tickd.sock\"\n",
    );
    let mut child = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&sock)
        .arg("--fdname=unix_socket")
        .arg(bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn systemd-socket-activate");
    let log = collect_stderr(&mut child);
    poll_until("the socket to exist", || sock.exists().then_some(()));
    // tickd is started by this first connection, and answers it.
    let stream = std::os::unix::net::UnixStream::connect(&sock).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut reader = std::io::BufReader::new(stream);
    use std::io::{BufRead, Write};
    reader
        .get_mut()
        .write_all(b"{\"id\":1,\"method\":\"status\"}\n")
        .expect("write");
    let mut line = String::new();
    reader.read_line(&mut line).expect("answer");
    let v: serde_json::Value = serde_json::from_str(&line).expect("json");
    assert_eq!(v["result"]["pid"], json!(child.id()), "{v}");
    let (_, listening) = log.wait_for("listening on ", 0, WAIT).expect("listening");
    assert!(listening.contains("inherited fd 3"), "{listening}");
    term(&child);
    assert!(wait_child(&mut child, WAIT).expect("exit").success());
    assert!(
        std::fs::symlink_metadata(&sock).is_ok(),
        "an inherited socket's file is not removed"
    );
}
