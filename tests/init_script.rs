//! The LSB init script, run for real: start-stop-daemon, `--daemonize`,
//! the pidfile and signals, with a temp config and defaults file.

use crate::ops_util;

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

#[test]
fn rotate_never_signals_a_process_that_is_not_tickd() {
    let s = setup();
    // A stale pidfile whose pid now belongs to an unrelated process, for
    // which SIGUSR1 would be fatal.
    let mut other = Command::new("sleep").arg("60").spawn().expect("spawn");
    std::fs::create_dir_all(s.pidfile.parent().expect("parent")).expect("mkdir");
    std::fs::write(&s.pidfile, format!("{}\n", other.id())).expect("write");
    let rotate = script(&s.defaults, "rotate");
    assert_eq!(code(&rotate), Some(7), "{rotate:?}");
    let still_running = other.try_wait().expect("try_wait").is_none();
    let _ = other.kill();
    let _ = other.wait();
    assert!(still_running, "the unrelated process got SIGUSR1");
}

#[test]
fn logrotate_signals_through_systemd_or_the_init_script_only() {
    let conf = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/logrotate.conf"),
    )
    .expect("read logrotate.conf");
    let body = conf
        .split("postrotate")
        .nth(1)
        .and_then(|rest| rest.split("endscript").next())
        .expect("a postrotate block");
    // Run the block with a stand-in systemctl that reports the unit active
    // and records how it was called.
    let dir = tempfile::tempdir().expect("temp dir");
    let calls = dir.path().join("calls");
    let fake = dir.path().join("systemctl");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\necho \"$*\" >>\"{}\"\nexit 0\n", calls.display()),
    )
    .expect("write");
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let out = Command::new("sh")
        .arg("-c")
        .arg(body)
        .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
        .output()
        .expect("run postrotate");
    assert!(out.status.success(), "{out:?}");
    let calls = std::fs::read_to_string(&calls).expect("systemctl was called");
    assert_eq!(
        calls.lines().collect::<Vec<_>>(),
        [
            "is-active --quiet tickd.service",
            "kill -s USR1 --kill-who=main tickd.service"
        ]
    );
    assert!(
        !body.contains("kill -USR1"),
        "no bare kill of a pidfile's pid"
    );
}

#[test]
fn the_pid_directory_is_given_to_user_only_when_created() {
    if !ops_util::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let s = setup();
    let mode = |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    mode(s.dir.path(), 0o755).expect("chmod");
    mode(&s.config, 0o644).expect("chmod");
    // nobody writes the log in a directory of its own.
    let logs = s.dir.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir");
    rustix::fs::chown(&logs, Some(rustix::process::Uid::from_raw(65534)), None).expect("chown");
    let log = logs.join("tickd.log");
    let text = format!(
        "[daemon]\nlisten = \"127.0.0.1:0\"\nworkers = 1\nlog_file = \"{}\"\n",
        log.display()
    );
    std::fs::write(&s.config, text).expect("write config");
    let defaults_for = |pidfile: &Path| {
        let text = format!(
            "DAEMON={}\nCONFIG={}\nPIDFILE={}\nUSER=nobody\nSTOP_TIMEOUT=20\n",
            env!("CARGO_BIN_EXE_tickd"),
            s.config.display(),
            pidfile.display()
        );
        std::fs::write(&s.defaults, text).expect("write defaults");
    };
    let owner = |p: &Path| std::fs::metadata(p).expect("stat").uid();

    // A directory the script creates is handed to USER, and used.
    defaults_for(&s.pidfile);
    let start = script(&s.defaults, "start");
    assert_eq!(code(&start), Some(0), "start: {start:?}");
    let pid = read_pid(&s.pidfile);
    let _guard = KillOnDrop(pid);
    assert_eq!(owner(s.pidfile.parent().expect("parent")), 65534);
    let stop = script(&s.defaults, "stop");
    assert_eq!(code(&stop), Some(0), "stop: {stop:?}");
    wait_gone(pid);

    // An existing, shared directory (like /run) is left as it is; tickd as
    // nobody cannot write there, and start fails saying so.
    let shared = s.dir.path().join("tickd.pid");
    defaults_for(&shared);
    let start = script(&s.defaults, "start");
    assert_eq!(code(&start), Some(1), "start: {start:?}");
    assert_eq!(owner(s.dir.path()), 0, "the shared directory stays root's");
    let stderr = String::from_utf8_lossy(&start.stderr);
    assert!(stderr.contains("Permission denied"), "{stderr}");
}

#[test]
fn supervise_restarts_a_killed_daemon_and_stop_ends_both() {
    let s = setup();
    let mut defaults = std::fs::read_to_string(&s.defaults).expect("defaults");
    defaults.push_str("SUPERVISE=yes\n");
    std::fs::write(&s.defaults, defaults).expect("write defaults");
    let start = script(&s.defaults, "start");
    assert_eq!(code(&start), Some(0), "start: {start:?}");
    let supervisor = read_pid(&s.pidfile);
    let _guard = KillOnDrop(supervisor);
    let addr = listen_addr(&s.log);
    let status = call(addr, "status", json!({}));
    assert_eq!(status["supervised"], json!(true), "{status}");
    let daemon = i32::try_from(status["pid"].as_i64().expect("pid")).expect("pid");
    let _guard2 = KillOnDrop(daemon);
    assert_ne!(daemon, supervisor, "the pidfile names the supervisor");
    // One line per event in the log file: the daemon, whose stderr is that
    // file already, does not write each line twice.
    let log = std::fs::read_to_string(&s.log).expect("log");
    let started = format!("tickd 0.1.0 started (pid {daemon})");
    assert_eq!(log.matches(&started).count(), 1, "{log}");

    rustix::process::kill_process(
        rustix::process::Pid::from_raw(daemon).expect("pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill -9");
    let next = ops_util::poll_until("a new daemon", || {
        let s = std::panic::catch_unwind(|| call(addr, "status", json!({}))).ok()?;
        (s["restarts"] == json!(1)).then_some(s)
    });
    let daemon2 = i32::try_from(next["pid"].as_i64().expect("pid")).expect("pid");
    let _guard3 = KillOnDrop(daemon2);
    assert_ne!(daemon2, daemon);
    let status = script(&s.defaults, "status");
    assert_eq!(code(&status), Some(0), "status: {status:?}");

    let stop = script(&s.defaults, "stop");
    assert_eq!(code(&stop), Some(0), "stop: {stop:?}");
    wait_gone(supervisor);
    assert!(!alive(daemon2), "stop ends the daemon too");
    let log = std::fs::read_to_string(&s.log).expect("log");
    assert!(log.contains("was killed by signal 9 (SIGKILL)"), "{log}");
    assert!(log.contains("exiting with status 0"), "{log}");
}

#[test]
fn upgrade_replaces_the_process_and_keeps_the_port() {
    let s = setup();
    let start = script(&s.defaults, "start");
    assert_eq!(code(&start), Some(0), "start: {start:?}");
    let old = read_pid(&s.pidfile);
    let _guard = KillOnDrop(old);
    let addr = listen_addr(&s.log);
    let upgrade = script(&s.defaults, "upgrade");
    assert_eq!(code(&upgrade), Some(0), "upgrade: {upgrade:?}");
    let new = read_pid(&s.pidfile);
    let _guard2 = KillOnDrop(new);
    assert_ne!(new, old);
    wait_gone(old);
    let status = call(addr, "status", json!({}));
    assert_eq!(status["pid"], json!(new), "the same port, the new process");

    // A config that does not check is refused before any signal.
    std::fs::write(&s.config, "[daemon]\nworkers = 0\n").expect("write");
    let refused = script(&s.defaults, "upgrade");
    assert_eq!(code(&refused), Some(1), "{refused:?}");
    assert_eq!(read_pid(&s.pidfile), new);
    let stop = script(&s.defaults, "stop");
    assert_eq!(code(&stop), Some(0), "stop: {stop:?}");
    wait_gone(new);
}
