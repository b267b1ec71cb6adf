//! Deployment features of the real binary: `--daemonize`, `--pidfile`, the
//! log file and SIGUSR1, syslog, and running as another user.

use crate::ops_util;
use crate::util;

use ops_util::{
    alive, call, groups, listen_addr, read_pid, uids, wait_for_line, wait_gone, KillOnDrop,
};
use rustix::process::Signal;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Output};
use util::{bin, config, Daemon};

/// `tickd run --daemonize ARGS` from `dir`; returns once the parent exits.
fn daemonize(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .current_dir(dir)
        .args(["run", "--daemonize"])
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run tickd")
}

fn signal(pid: i32, sig: Signal) {
    let pid = rustix::process::Pid::from_raw(pid).expect("pid");
    rustix::process::kill_process(pid, sig).expect("kill");
}

/// A field of `/proc/PID/stat` after the command name (0 = state).
fn stat_field(pid: i32, index: usize) -> i64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let rest = &stat[stat.rfind(')').expect("comm end") + 2..];
    rest.split_whitespace()
        .nth(index)
        .and_then(|f| f.parse().ok())
        .unwrap_or(-1)
}

#[test]
fn daemonize_detaches_keeps_relative_paths_and_guards_one_instance() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = config("state_dir = \"state\"\nlog_file = \"tickd.log\"\n", "");
    std::fs::write(dir.path().join("tickd.toml"), text).expect("write config");
    let args = ["--config", "tickd.toml", "--pidfile", "tickd.pid"];

    let out = daemonize(dir.path(), &args);
    assert!(out.status.success(), "start failed: {out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    // The parent returned only once the daemon listens: no waiting needed.
    let pid = read_pid(&dir.path().join("tickd.pid"));
    let _guard = KillOnDrop(pid);
    let log = dir.path().join("tickd.log");
    let addr = listen_addr(&log);
    assert_eq!(call(addr, "ping", json!({})), json!("pong"));
    assert_eq!(call(addr, "status", json!({}))["pid"], json!(pid));

    // Detached: cwd is /, its own session but not its leader, stdin is /dev/null.
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).expect("cwd");
    assert_eq!(cwd, Path::new("/"));
    let (pgrp, session) = (stat_field(pid, 2), stat_field(pid, 3));
    assert_ne!(
        session,
        i64::from(pid),
        "the daemon must not be a session leader"
    );
    assert_ne!(session, stat_field(std::process::id() as i32, 3));
    assert_eq!(pgrp, session, "the daemon stays in the group setsid made");
    let stdin = std::fs::read_link(format!("/proc/{pid}/fd/0")).expect("fd 0");
    assert_eq!(stdin, Path::new("/dev/null"));
    let stderr = std::fs::read_link(format!("/proc/{pid}/fd/2")).expect("fd 2");
    assert_eq!(stderr, log, "stderr goes to the log file");
    // The relative state_dir was resolved before the chdir.
    assert!(dir.path().join("state").is_dir());

    // A second instance is refused with the holder's pid.
    let second = daemonize(dir.path(), &args);
    assert_eq!(second.status.code(), Some(2), "{second:?}");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&format!("already running (pid {pid})")),
        "{stderr}"
    );
    assert_eq!(read_pid(&dir.path().join("tickd.pid")), pid);

    // SIGUSR1 moves the log and the daemon's stderr to a new file.
    std::fs::rename(&log, dir.path().join("tickd.log.1")).expect("rotate");
    signal(pid, Signal::USR1);
    wait_for_line(&log, "reopened log file");
    let stderr = std::fs::read_link(format!("/proc/{pid}/fd/2")).expect("fd 2");
    assert_eq!(stderr, log, "stderr follows the reopened log file");

    // The relative config path still works for a reload.
    signal(pid, Signal::HUP);
    ops_util::poll_until("generation 2", || {
        (call(addr, "status", json!({}))["config"]["generation"] == json!(2)).then_some(())
    });

    signal(pid, Signal::TERM);
    wait_gone(pid);
    assert!(!dir.path().join("tickd.pid").exists(), "pidfile removed");
    wait_for_line(&log, "tickd stopped");
}

#[test]
fn daemonize_reports_start_failures_to_the_parent() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("bad.toml"), "[daemon]\nworkers = 0\n").expect("write");
    let out = daemonize(dir.path(), &["--config", "bad.toml"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.toml:2: daemon.workers"), "{stderr}");

    // A port in use: the daemon fails after the fork; the parent says why.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let text = format!("[daemon]\nlisten = \"127.0.0.1:{port}\"\nworkers = 1\n");
    std::fs::write(dir.path().join("busy.toml"), text).expect("write");
    let out = daemonize(dir.path(), &["--config", "busy.toml", "--pidfile", "p.pid"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("logs are discarded"), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(!dir.path().join("p.pid").exists(), "no pidfile left behind");
}

#[test]
fn stale_pidfile_is_taken_over() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The pid of a process that has exited and been reaped.
    let mut gone = Command::new("true").spawn().expect("spawn true");
    let dead_pid = gone.id();
    gone.wait().expect("reap");
    let pidfile = dir.path().join("tickd.pid");
    std::fs::write(&pidfile, format!("{dead_pid}\n")).expect("write");
    std::fs::write(
        dir.path().join("tickd.toml"),
        config("log_file = \"tickd.log\"\n", ""),
    )
    .expect("write config");

    let out = daemonize(
        dir.path(),
        &["--config", "tickd.toml", "--pidfile", "tickd.pid"],
    );
    assert!(out.status.success(), "{out:?}");
    let pid = read_pid(&pidfile);
    let _guard = KillOnDrop(pid);
    assert_ne!(pid, dead_pid as i32);
    assert!(alive(pid));
    wait_for_line(
        &dir.path().join("tickd.log"),
        &format!("taking over from pid {dead_pid}"),
    );
    signal(pid, Signal::TERM);
    wait_gone(pid);
    assert!(!pidfile.exists());
}

#[test]
fn a_symlinked_pidfile_is_refused_and_its_target_left_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("tickd.toml"), config("", "")).expect("write config");
    // A root-only file, and a name where none exists yet: a root daemon
    // must neither overwrite the one nor create the other.
    let secret = dir.path().join("shadow");
    std::fs::write(&secret, "root:x:0\n").expect("write");
    let missing = dir.path().join("etc-nologin");
    for (link, target) in [("a.pid", &secret), ("b.pid", &missing)] {
        std::os::unix::fs::symlink(target, dir.path().join(link)).expect("symlink");
        let mut child = Command::new(bin())
            .current_dir(dir.path())
            .args(["run", "--config", "tickd.toml", "--pidfile", link])
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run tickd");
        // A daemon that took the pidfile would run on: stop it then.
        if util::wait_child(&mut child, util::WAIT).is_none() {
            let _ = child.kill();
        }
        let out = child.wait_with_output().expect("output");
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("is a symbolic link"), "{stderr}");
    }
    assert_eq!(
        std::fs::read_to_string(&secret).expect("read"),
        "root:x:0\n"
    );
    assert!(!missing.exists(), "no file created through the link");
}

#[test]
fn log_file_is_appended_and_reopened_on_sigusr1() {
    let d = Daemon::start(&config("log_file = \"$DIR/tickd.log\"\n", ""));
    let log = d.dir().join("tickd.log");
    // Foreground: the file gets the lines stderr gets.
    wait_for_line(&log, "listening on");
    let rotated = d.dir().join("tickd.log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    d.signal(Signal::USR1);
    let line = wait_for_line(&log, "reopened log file");
    assert!(line.contains(&log.display().to_string()), "{line}");
    let old = std::fs::read_to_string(&rotated).expect("old log");
    assert!(!old.contains("reopened log file"), "{old}");

    // A failed reopen keeps the old file and says so.
    std::fs::remove_file(&log).expect("rm");
    std::fs::create_dir(&log).expect("a directory in the way");
    d.signal(Signal::USR1);
    let (_, line) = d
        .log
        .wait_for("cannot reopen", 0, util::WAIT)
        .expect("error logged");
    assert!(line.contains("ERROR"), "{line}");
}

#[test]
fn syslog_gets_one_datagram_per_record() {
    let sock_dir = tempfile::tempdir().expect("temp dir");
    let path = sock_dir.path().join("log");
    let server = UnixDatagram::bind(&path).expect("bind");
    server.set_read_timeout(Some(util::WAIT)).expect("timeout");
    let path_text = path.display().to_string();
    let _d = Daemon::start_with_env(
        &config("syslog = true\n", ""),
        &[("TICKD_SYSLOG_SOCKET", &path_text)],
    );
    let mut buf = vec![0u8; 16 * 1024];
    let listening = ops_util::poll_until("a syslog record of listening on", || {
        let n = server.recv(&mut buf).expect("a datagram");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        text.contains("listening on").then_some(text)
    });
    // <30> = facility daemon (3) * 8 + info (6).
    assert!(listening.starts_with("<30>"), "{listening}");
    assert!(listening.contains(" tickd["), "{listening}");
    assert!(!listening.ends_with('\n'), "{listening:?}");
}

#[test]
fn privileges_drop_to_the_configured_user() {
    if !ops_util::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    // The harness's temp dirs are 0700; the state dir's parent must let
    // the dropped daemon through.
    let parent = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let state = parent.path().join("state");
    // The socket sits in a sticky, world-writable dir (like /tmp), where
    // only its owner may remove it: the daemon can clean up after the drop
    // only if the socket was handed over to its user.
    let run_dir = parent.path().join("run");
    std::fs::create_dir(&run_dir).expect("run dir");
    std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let socket = run_dir.join("tickd.sock");
    let mut d = Daemon::start(&config(
        &format!(
            "user = \"nobody\"\nstate_dir = \"{}\"\nunix_socket = \"{}\"\n",
            state.display(),
            socket.display()
        ),
        r#"
[[jobs]]
name = "as-other"
command = ["id", "-u"]
user = "root"
"#,
    ));
    // "listening on" comes before the drop; wait for the drop itself.
    d.log
        .wait_for("dropped privileges to user nobody", 0, util::WAIT)
        .expect("logged");
    let pid = d.child.id() as i32;
    assert_eq!(uids(pid), [65534; 4]);
    // setgroups left only the target's group: none of root's remain.
    let gid = Command::new("id")
        .args(["-g", "nobody"])
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<u32>()
                .ok()
        })
        .expect("nobody's gid");
    assert_eq!(groups(pid), [gid]);
    let mut c = d.client();
    // A job's user needs a root daemon: the run fails and says why.
    let run = c.ok("jobs.run", json!({"name": "as-other", "wait": true}));
    assert_eq!(run["state"], json!("failed"), "{run}");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(error.contains("needs tickd to run as root"), "{error}");
    // The state dir was handed over before the drop, and is used.
    assert!(state.join("journal").exists());
    let owner = std::fs::metadata(&state).map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid()
    });
    assert_eq!(owner.expect("state dir"), 65534);
    let socket_owner = std::fs::symlink_metadata(&socket).map(|m| {
        use std::os::unix::fs::MetadataExt;
        (m.uid(), m.mode() & 0o777)
    });
    assert_eq!(socket_owner.expect("socket"), (65534, 0o600));
    d.signal(Signal::TERM);
    assert!(d.wait_exit(util::WAIT).is_some_and(|s| s.success()));
    assert!(!socket.exists(), "the dropped daemon removed its socket");
}

#[test]
fn exec_job_runs_as_its_user() {
    if !ops_util::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let d = Daemon::start(&config(
        "",
        r#"
[[jobs]]
name = "who"
command = ["sh", "-c", "id -u; id -G; echo $USER"]
user = "nobody"
cwd = "/"
"#,
    ));
    d.log
        .wait_for("running as root: set daemon.user", 0, util::WAIT)
        .expect("warning for a root daemon without user");
    let run = d
        .client()
        .ok("jobs.run", json!({"name": "who", "wait": true}));
    assert_eq!(run["state"], json!("succeeded"), "{run}");
    let out = run["output"].as_str().unwrap_or_default();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["65534", "65534", "nobody"]
    );
    // The daemon itself is still root.
    assert_eq!(uids(d.child.id() as i32)[0], 0);
}

#[test]
fn hand_over_follows_no_links_planted_by_the_daemon_user() {
    if !ops_util::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let parent = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // Root's files outside the state dir, which the daemon's user could
    // point links at from the state dir it owns.
    let secret = parent.path().join("secret");
    std::fs::write(&secret, "root only\n").expect("write");
    let secret_dir = parent.path().join("secret-dir");
    std::fs::create_dir(&secret_dir).expect("mkdir");
    let state = parent.path().join("state");
    std::fs::create_dir(&state).expect("mkdir");
    std::os::unix::fs::symlink(&secret, state.join("x")).expect("symlink");
    std::os::unix::fs::symlink(&secret_dir, state.join("d")).expect("symlink");
    std::fs::hard_link(&secret, state.join("h")).expect("hard link");
    // A file a previous run as root left: handed over.
    std::fs::write(state.join("lock"), "").expect("write");
    let mut d = Daemon::start(&config(
        &format!("user = \"nobody\"\nstate_dir = \"{}\"\n", state.display()),
        "",
    ));
    // (It listens before the drop, then refuses the state dir: below.)
    d.log
        .wait_for("dropped privileges to user nobody", 0, util::WAIT)
        .expect("logged");
    let uid = |p: &Path| std::fs::symlink_metadata(p).expect("stat").uid();
    assert_eq!(
        uid(&secret),
        0,
        "a symlinked or hard-linked file stays root's"
    );
    assert_eq!(uid(&secret_dir), 0, "a symlinked dir stays root's");
    assert_eq!(uid(&state), 65534, "the state dir itself is handed over");
    assert_eq!(uid(&state.join("lock")), 65534);
    d.log
        .wait_for("h not handed over", 0, util::WAIT)
        .expect("the hard link is reported");
    // What was left root's in nobody's state dir cannot be trusted by the
    // dropped daemon: it refuses to start, naming each entry.
    let status = d.wait_exit(util::WAIT).expect("exits");
    assert_eq!(status.code(), Some(2));
    let (_, refusal) = d
        .log
        .wait_for("refusing to use state_dir", 0, util::WAIT)
        .expect("says why");
    for name in ["x", "d", "h"] {
        let entry = format!("{} is owned by uid 0 (root)", state.join(name).display());
        assert!(refusal.contains(&entry), "{refusal}");
    }
}

#[test]
fn a_symlinked_log_file_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("elsewhere");
    std::fs::write(&target, "").expect("write");
    let log = dir.path().join("tickd.log");
    std::os::unix::fs::symlink(&target, &log).expect("symlink");
    let text = config(&format!("log_file = \"{}\"\n", log.display()), "");
    std::fs::write(dir.path().join("tickd.toml"), text).expect("write config");
    let out = Command::new(bin())
        .current_dir(dir.path())
        .args(["run", "--config", "tickd.toml"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run tickd");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is a symbolic link"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&target).expect("read"), "");
    // --daemonize reports it on the terminal too.
    let out = daemonize(dir.path(), &["--config", "tickd.toml"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is a symbolic link"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&target).expect("read"), "");
}

#[test]
fn a_stalled_syslog_never_blocks_the_daemon() {
    // A syslog socket nobody reads: its queue fills after a few records.
    let sock_dir = tempfile::tempdir().expect("temp dir");
    let path = sock_dir.path().join("log");
    let _stalled = UnixDatagram::bind(&path).expect("bind");
    let path_text = path.display().to_string();
    let d = Daemon::start_with_env(
        &config("syslog = true\nlog_level = \"debug\"\n", ""),
        &[("TICKD_SYSLOG_SOCKET", &path_text)],
    );
    // Each connection logs two debug lines (opened, closed): thousands of
    // records in all, while every ping must still be answered.
    for _ in 0..1500 {
        let mut c = d.client();
        assert_eq!(c.ok("ping", json!({})), json!("pong"));
    }
    let mut c = d.client();
    assert_eq!(c.ok("status", json!({}))["pid"], json!(d.child.id()));
}

#[test]
fn reload_after_the_drop_keeps_a_token_file_only_root_can_read() {
    if !ops_util::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let parent = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // Root's 0600 file, as install.sh would leave it in /etc/tickd.
    let token = parent.path().join("token");
    std::fs::write(&token, "s3cret\n").expect("write");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let d = Daemon::start(&config(
        &format!(
            "user = \"nobody\"\nauth_token_file = \"{}\"\n",
            token.display()
        ),
        "",
    ));
    d.log
        .wait_for("dropped privileges to user nobody", 0, util::WAIT)
        .expect("logged");
    // The dropped daemon must be able to read its config again.
    std::fs::set_permissions(d.dir(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    d.signal(Signal::HUP);
    let mut c = d.client();
    c.ok("auth", json!({"token": "s3cret"}));
    ops_util::poll_until("generation 2", || {
        (c.ok("status", json!({}))["config"]["generation"] == json!(2)).then_some(())
    });
    let (_, line) = d
        .log
        .wait_for("keeping the token read at start", 0, util::WAIT)
        .expect("the kept token is reported");
    assert!(
        line.contains("WARN") && line.contains("Permission denied"),
        "{line}"
    );
    // The token still guards new connections.
    let mut other = d.client();
    assert_eq!(other.err_code("auth", json!({"token": "wrong"})), -32001);
    other.ok("auth", json!({"token": "s3cret"}));
}

#[test]
fn daemonize_resolves_a_relative_token_file_for_reloads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken\n").expect("write");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let text = config(
        "auth_token_file = \"token\"\nlog_file = \"tickd.log\"\n",
        "",
    );
    std::fs::write(dir.path().join("tickd.toml"), text).expect("write config");
    let out = daemonize(
        dir.path(),
        &["--config", "tickd.toml", "--pidfile", "tickd.pid"],
    );
    assert!(out.status.success(), "{out:?}");
    let pid = read_pid(&dir.path().join("tickd.pid"));
    let _guard = KillOnDrop(pid);
    let addr = listen_addr(&dir.path().join("tickd.log"));
    // The daemon now runs in /, where "token" names nothing.
    signal(pid, Signal::HUP);
    ops_util::poll_until("generation 2", || {
        let status = ops_util::call_authenticated(addr, Some("t0ken"), "status", json!({}));
        (status["config"]["generation"] == json!(2)).then_some(())
    });
    let log = std::fs::read_to_string(dir.path().join("tickd.log")).expect("log");
    assert!(!log.contains("reload failed"), "{log}");
    signal(pid, Signal::TERM);
    wait_gone(pid);
}
