//! The LSB init script, run for real: start-stop-daemon, `--daemonize`,
//! the pidfile and signals, with a temp config and defaults file.

mod ops_util;
mod util;

use ops_util::{alive, call, listen_addr, processes_with_arg, read_pid, wait_gone, KillOnDrop};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The script, with its defaults file pointed at `defaults`.
fn script(defaults: &Path, action: &str) -> Output {
    Command::new("sh")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/init.d/tickd"))
        .arg(action)
        .env("TICKD_DEFAULTS", defaults)
        .env("TICKD_PLAIN_OUTPUT", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("run the init script")
}

struct Setup {
    dir: tempfile::TempDir,
    defaults: PathBuf,
    pidfile: PathBuf,
    log: PathBuf,
    config: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("tickd.toml");
    let log = dir.path().join("tickd.log");
    // start-stop-daemon starts tickd in /: the paths are absolute.
    let text = format!(
        "[daemon]\nlisten = \"127.0.0.1:0\"\nworkers = 1\nlog_file = \"{}\"\n",
        log.display()
    );
    std::fs::write(&config, text).expect("write config");
    let pidfile = dir.path().join("run/tickd.pid");
    let defaults = dir.path().join("default-tickd");
    std::fs::write(
        &defaults,
        format!(
            "DAEMON={}\nCONFIG={}\nPIDFILE={}\nSTOP_TIMEOUT=20\n",
            env!("CARGO_BIN_EXE_tickd"),
            config.display(),
            pidfile.display()
        ),
    )
    .expect("write defaults");
    Setup {
        dir,
        defaults,
        pidfile,
        log,
        config,
    }
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

#[test]
fn start_status_reload_start_again_restart_stop_status() {
    let s = setup();
    let start = script(&s.defaults, "start");
    assert_eq!(code(&start), Some(0), "start: {start:?}");
    let pid = read_pid(&s.pidfile);
    let _guard = KillOnDrop(pid);
    assert!(alive(pid));

    let status = script(&s.defaults, "status");
    assert_eq!(code(&status), Some(0), "status: {status:?}");
    assert!(String::from_utf8_lossy(&status.stdout).contains(&format!("running (pid {pid})")));

    let addr = listen_addr(&s.log);
    let generation = |addr| call(addr, "status", json!({}))["config"]["generation"].clone();
    assert_eq!(generation(addr), json!(1));
    let reload = script(&s.defaults, "reload");
    assert_eq!(code(&reload), Some(0), "reload: {reload:?}");
    ops_util::poll_until("generation 2 after reload", || {
        (generation(addr) == json!(2)).then_some(())
    });

    // A second start succeeds (LSB) without starting a second process.
    let again = script(&s.defaults, "start");
    assert_eq!(code(&again), Some(0), "second start: {again:?}");
    assert_eq!(read_pid(&s.pidfile), pid);
    let config_arg = s.config.display().to_string();
    assert_eq!(processes_with_arg(&config_arg), [pid]);

    // restart: a new process, the old one gone.
    let restart = script(&s.defaults, "restart");
    assert_eq!(code(&restart), Some(0), "restart: {restart:?}");
    wait_gone(pid);
    let pid = read_pid(&s.pidfile);
    let _guard2 = KillOnDrop(pid);
    assert_eq!(processes_with_arg(&config_arg), [pid]);

    let stop = script(&s.defaults, "stop");
    assert_eq!(code(&stop), Some(0), "stop: {stop:?}");
    wait_gone(pid);
    assert!(!s.pidfile.exists());

    let status = script(&s.defaults, "status");
    assert_eq!(code(&status), Some(3), "status after stop: {status:?}");
    drop(s.dir);
}

#[test]
fn failures_are_reported_with_lsb_codes() {
    let s = setup();
    // A dead instance's pidfile: status 1.
    std::fs::create_dir_all(s.pidfile.parent().expect("parent")).expect("mkdir");
    let mut gone = Command::new("true").spawn().expect("spawn");
    let dead = gone.id();
    gone.wait().expect("reap");
    std::fs::write(&s.pidfile, format!("{dead}\n")).expect("write");
    let status = script(&s.defaults, "status");
    assert_eq!(code(&status), Some(1), "{status:?}");

    // A broken config: start fails, with tickd's reason on stderr, and
    // nothing is left running.
    std::fs::write(&s.config, "[daemon]\nworkers = 0\n").expect("write");
    let start = script(&s.defaults, "start");
    assert_eq!(code(&start), Some(1), "{start:?}");
    let stderr = String::from_utf8_lossy(&start.stderr);
    assert!(stderr.contains("daemon.workers"), "{stderr}");
    assert!(processes_with_arg(&s.config.display().to_string()).is_empty());

    // Stopping what is not running is a success.
    std::fs::remove_file(&s.pidfile).expect("rm");
    let stop = script(&s.defaults, "stop");
    assert_eq!(code(&stop), Some(0), "{stop:?}");
    let usage = script(&s.defaults, "bogus");
    assert_ne!(code(&usage), Some(0));
}
