//! `tickd run --supervise` (issue 20, item 3): the supervisor holds the
//! listeners and restarts the daemon when it crashes; the port accepts
//! throughout. `TICKD_TEST_SUPERVISE_BASE_MS` shortens the restart delays
//! (1 s doubling to 1 min by default) so that these tests take seconds.

use crate::ops_util::{alive, wait_gone, KillOnDrop};
use crate::util::load::PingLoad;
use crate::util::{bin, poll_until, wait_child, Client, LogBuf, WAIT};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;

struct Supervisor {
    child: Child,
    log: Arc<LogBuf>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tickd run --supervise` on `config_text` and waits until its
/// first daemon is ready.
fn supervise(config_text: &str, base_ms: u64, extra: &[&str]) -> Supervisor {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("tickd.toml");
    std::fs::write(
        &config,
        config_text.replace("$DIR", &dir.path().display().to_string()),
    )
    .expect("write config");
    let extra: Vec<String> = extra
        .iter()
        .map(|a| a.replace("$DIR", &dir.path().display().to_string()))
        .collect();
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "run".as_ref(),
        "--supervise".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
    ];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let base = base_ms.to_string();
    let crate::util::Spawned { child, log, addr } =
        crate::util::spawn_listening(bin(), &args, &[("TICKD_TEST_SUPERVISE_BASE_MS", &base)]);
    let s = Supervisor {
        child,
        log,
        addr,
        dir,
        config,
    };
    s.wait_log("is ready", 0);
    s
}

impl Supervisor {
    fn wait_log(&self, needle: &str, from: usize) -> (usize, String) {
        self.log
            .wait_for(needle, from, WAIT)
            .unwrap_or_else(|| panic!("no {needle:?} in the log: {:#?}", self.log.all()))
    }

    fn status(&self) -> Value {
        Client::connect(self.addr).ok("status", json!({}))
    }

    fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, sig).expect("kill");
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn kill(pid: i32, sig: rustix::process::Signal) {
    rustix::process::kill_process(rustix::process::Pid::from_raw(pid).expect("pid"), sig)
        .expect("kill");
}

fn daemon_pid(status: &Value) -> i32 {
    i32::try_from(status["pid"].as_i64().expect("pid")).expect("pid fits")
}

#[test]
fn kill_9_of_the_daemon_brings_a_new_one_while_the_port_keeps_accepting() {
    let s = supervise(
        "[daemon]\nlisten = \"127.0.0.1:0\"\nworkers = 1\nstate_dir = \"$DIR/state\"\n",
        100,
        &["--pidfile", "$DIR/tickd.pid"],
    );
    // The pidfile names the supervisor, the process to signal.
    let in_file: u32 = std::fs::read_to_string(s.dir().join("tickd.pid"))
        .expect("pidfile")
        .trim()
        .parse()
        .expect("pid");
    assert_eq!(in_file, s.child.id());
    let first = s.status();
    assert_eq!(first["supervised"], json!(true), "{first}");
    assert_eq!(first["restarts"], json!(0), "{first}");
    let first_pid = daemon_pid(&first);
    assert_ne!(first_pid, s.child.id() as i32);
    let _guard = KillOnDrop(first_pid);

    let load = PingLoad::start(s.addr);
    load.wait_for_answers(20);
    let mark = s.log.len();
    kill(first_pid, rustix::process::Signal::KILL);
    let (_, line) = s.wait_log("was killed by signal 9 (SIGKILL)", mark);
    assert!(
        line.contains("restarting it in 100ms (restart 1, 1 in the last 10 min)"),
        "{line}"
    );
    s.wait_log("is ready", mark);
    load.wait_for_answers(20);
    let second = s.status();
    let second_pid = daemon_pid(&second);
    let _guard2 = KillOnDrop(second_pid);
    assert_ne!(second_pid, first_pid);
    assert_eq!(second["restarts"], json!(1), "{second}");
    let metrics = crate::util::http::get(s.addr, "/metrics").body;
    assert!(
        metrics.contains("\ntickd_supervisor_restarts_total 1\n"),
        "{metrics}"
    );

    // SIGHUP reaches the daemon: a reload.
    let text = std::fs::read_to_string(&s.config).expect("config");
    std::fs::write(&s.config, format!("{text}\n# touched\n")).expect("write");
    s.signal(rustix::process::Signal::HUP);
    poll_until("generation 2", || {
        (s.status()["config"]["generation"] == json!(2)).then_some(())
    });

    let report = load.finish();
    eprintln!("kill -9 under load: {report:?}");
    assert_eq!(report.refused, 0, "{report:?}");
    assert!(report.connect_errors.is_empty(), "{report:?}");
    assert_eq!(report.sent, report.answered, "{report:?}");
}

#[test]
fn sigterm_to_the_supervisor_stops_the_daemon_and_exits_0() {
    let mut s = supervise(
        "[daemon]\nlisten = \"127.0.0.1:0\"\nworkers = 1\nunix_socket = \"$DIR/t.sock\"\n",
        100,
        &[],
    );
    let daemon = daemon_pid(&s.status());
    let _guard = KillOnDrop(daemon);
    let sock = s.dir().join("t.sock");
    assert!(sock.exists());
    s.signal(rustix::process::Signal::TERM);
    let status = wait_child(&mut s.child, WAIT).expect("the supervisor exits");
    assert_eq!(status.code(), Some(0), "{:#?}", s.log.all());
    assert!(!alive(daemon), "no daemon left behind");
    s.wait_log("exiting with status 0", 0);
    assert!(!sock.exists(), "the supervisor removed the socket it bound");
    let all = s.log.all().join("\n");
    assert!(!all.contains("restarting"), "{all}");
}

#[test]
fn the_daemon_follows_a_supervisor_killed_outright() {
    let mut s = supervise(
        "[daemon]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n",
        100,
        &[],
    );
    let daemon = daemon_pid(&s.status());
    let _guard = KillOnDrop(daemon);
    s.signal(rustix::process::Signal::KILL);
    wait_child(&mut s.child, WAIT).expect("killed");
    // PR_SET_PDEATHSIG: the daemon gets SIGTERM and drains.
    wait_gone(daemon);
}

#[test]
fn a_daemon_that_keeps_failing_at_start_makes_the_supervisor_give_up() {
    let mut s = supervise("[daemon]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n", 5, &[]);
    let daemon = daemon_pid(&s.status());
    let _guard = KillOnDrop(daemon);
    // Every daemon started from now on fails at once: its config is bad.
    std::fs::write(&s.config, "[daemon]\nworkers = \"many\"\n").expect("write");
    kill(daemon, rustix::process::Signal::KILL);
    let status = wait_child(&mut s.child, WAIT).expect("the supervisor gives up");
    let log = s.log.all();
    assert_eq!(status.code(), Some(3), "{log:#?}");
    let restarts = log
        .iter()
        .filter(|l| l.contains("restarting it in"))
        .count();
    assert_eq!(restarts, 10, "{log:#?}");
    let failed = log
        .iter()
        .filter(|l| l.contains("exited with status 1 after"))
        .count();
    assert_eq!(failed, 10, "the 10 restarted daemons failed: {log:#?}");
    let last = log.last().expect("a line");
    assert!(
        last.contains("supervisor: giving up: the daemon")
            && last.contains("it was already restarted 10 times in the last 10 min"),
        "{last}"
    );
}

#[test]
fn a_daemon_that_cannot_start_the_first_time_is_not_restarted() {
    let dir = tempfile::tempdir().expect("dir");
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, "x").expect("write");
    let config = dir.path().join("tickd.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n",
            not_a_dir.display()
        ),
    )
    .expect("write");
    let out = Command::new(bin())
        .args(["run", "--supervise", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("before it was ready; not restarting it"),
        "{stderr}"
    );
    assert!(!stderr.contains("restarting it in"), "{stderr}");
}
