//! In-place upgrade (issue 20, item 2): `SIGUSR2` starts a new process
//! that takes the listeners over while the old one drains as on SIGTERM;
//! a new process that cannot start leaves the old one serving; under
//! systemd the signal is refused; under `--supervise` the supervisor does
//! the upgrade.

use crate::ops_util::{alive, wait_gone, KillOnDrop};
use crate::util::load::PingLoad;
use crate::util::{config, poll_until, wait_child, Client, Daemon, WAIT};
use rustix::process::Signal;
use serde_json::{json, Value};

fn pid_of(status: &Value) -> i32 {
    i32::try_from(status["pid"].as_i64().expect("pid")).expect("pid fits")
}

const SLOW: &str = r#"[[jobs]]
name = "slow"
kind = "exec"
command = ["sh", "-c", "sleep 1; echo done"]
"#;

#[test]
fn sigusr2_hands_the_listeners_over_under_load_and_keeps_the_history() {
    let mut d = Daemon::start(&config("state_dir = \"$DIR/state\"\nworkers = 2", SLOW));
    let old = d.child.id() as i32;
    let mut c = d.client();
    let before = c.ok("jobs.run", json!({"name": "slow", "wait": true}));
    assert_eq!(before["state"], "succeeded", "{before}");
    // Generation 2: the new process goes on from it.
    assert_eq!(c.ok("reload", json!({}))["generation"], json!(2));
    // A run waited on across the upgrade: started now, answered by the
    // old daemon as it drains.
    let addr = d.addr;
    let waiter = std::thread::spawn(move || {
        Client::connect(addr).ok("jobs.run", json!({"name": "slow", "wait": true}))
    });
    poll_until("the second run to start", || {
        let runs = c.ok("runs.list", json!({"job": "slow"}));
        runs.as_array()?
            .iter()
            .any(|r| r["state"] == "running")
            .then_some(())
    });
    let load = PingLoad::start(addr);
    load.wait_for_answers(20);
    let mark = d.log.len();
    d.signal(Signal::USR2);
    d.log
        .wait_for("checked its config and listeners; draining", mark, WAIT)
        .unwrap_or_else(|| panic!("no hand-over: {:#?}", d.log.all()));
    let status = d.wait_exit(WAIT).expect("the old daemon exits");
    assert!(status.success(), "{status:?}");
    let waited = waiter.join().expect("waiter");
    assert_eq!(waited["state"], "succeeded", "{waited}");
    d.log
        .wait_for(
            "upgrade: the old process has exited; taking over",
            mark,
            WAIT,
        )
        .expect("the new one takes over");
    load.wait_for_answers(20);
    let after = Client::connect(addr).ok("status", json!({}));
    let new = pid_of(&after);
    let _guard = KillOnDrop(new);
    assert_ne!(new, old, "a new process");
    assert_eq!(
        after["config"]["generation"],
        json!(2),
        "the generation goes on from the old process's"
    );
    let runs = Client::connect(addr).ok("runs.list", json!({"job": "slow"}));
    let ids: Vec<&Value> = runs
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| &r["run_id"])
        .collect();
    assert!(ids.contains(&&before["run_id"]), "history kept: {runs}");
    assert!(ids.contains(&&waited["run_id"]), "history kept: {runs}");
    let report = load.finish();
    eprintln!("upgrade under load: {report:?}");
    assert_eq!(report.refused, 0, "{report:?}");
    assert!(report.connect_errors.is_empty(), "{report:?}");
    assert_eq!(report.sent, report.answered, "{report:?}");

    rustix::process::kill_process(
        rustix::process::Pid::from_raw(new).expect("pid"),
        Signal::TERM,
    )
    .expect("term");
    wait_gone(new);
}

#[test]
fn an_upgrade_whose_new_process_fails_leaves_the_old_one_serving() {
    let d = Daemon::start(&config("", ""));
    let mark = d.log.len();
    d.write_config("[daemon]\nworkers = \"many\"\n");
    d.signal(Signal::USR2);
    let (_, line) = d
        .log
        .wait_for("upgrade failed: the new process", mark, WAIT)
        .unwrap_or_else(|| panic!("{:#?}", d.log.all()));
    assert!(
        line.contains("exited with status 1 before it was ready to take over"),
        "{line}"
    );
    assert!(line.contains("still serving"), "{line}");
    assert!(d
        .log
        .wait_for("daemon.workers: expected an integer", mark, WAIT)
        .is_some());
    let s = d.client().ok("status", json!({}));
    assert_eq!(pid_of(&s), d.child.id() as i32);
}

#[test]
fn sigusr2_is_refused_under_systemd() {
    let name = format!("@tickd-test-notify-{}", std::process::id());
    let d = Daemon::start_with_env(&config("", ""), &[("NOTIFY_SOCKET", &name)]);
    let mark = d.log.len();
    d.signal(Signal::USR2);
    let (_, line) = d
        .log
        .wait_for("SIGUSR2 refused", mark, WAIT)
        .expect("refused");
    assert!(line.contains("socket activation (tickd.socket)"), "{line}");
    let s = d.client().ok("status", json!({}));
    assert_eq!(pid_of(&s), d.child.id() as i32);
}

#[test]
fn sigusr2_to_the_supervisor_replaces_its_daemon_under_load() {
    let dir = tempfile::tempdir().expect("dir");
    let cfg = dir.path().join("tickd.toml");
    std::fs::write(
        &cfg,
        format!(
            "[daemon]\nlisten = \"127.0.0.1:0\"\nworkers = 1\nstate_dir = \"{}/state\"\n",
            dir.path().display()
        ),
    )
    .expect("write");
    let crate::util::Spawned {
        child: mut sup,
        log,
        addr,
    } = crate::util::spawn_listening(
        crate::util::bin(),
        &[
            "run".as_ref(),
            "--supervise".as_ref(),
            "--config".as_ref(),
            cfg.as_os_str(),
        ],
        &[],
    );
    let _sup_guard = KillOnDrop(sup.id() as i32);
    log.wait_for("is ready", 0, WAIT).expect("ready");
    let old = pid_of(&Client::connect(addr).ok("status", json!({})));
    let _guard = KillOnDrop(old);
    // Two reloads: generation 3, which the new daemon goes on from.
    for g in [2, 3] {
        let r = Client::connect(addr).ok("reload", json!({}));
        assert_eq!(r["generation"], json!(g), "{r}");
    }
    let load = PingLoad::start(addr);
    load.wait_for_answers(20);
    let mark = log.len();
    // Sent to the daemon, it is passed to the supervisor.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(old).expect("pid"),
        Signal::USR2,
    )
    .expect("usr2");
    log.wait_for("takes over", mark, WAIT)
        .unwrap_or_else(|| panic!("{:#?}", log.all()));
    log.wait_for("is ready", mark, WAIT)
        .expect("the new daemon is ready");
    load.wait_for_answers(20);
    let s = Client::connect(addr).ok("status", json!({}));
    let new = pid_of(&s);
    let _guard2 = KillOnDrop(new);
    assert_ne!(new, old);
    assert_eq!(s["restarts"], json!(0), "an upgrade is no restart: {s}");
    assert_eq!(s["config"]["generation"], json!(3), "{s}");
    assert!(!alive(old), "the old daemon is gone");
    let report = load.finish();
    eprintln!("supervised upgrade under load: {report:?}");
    assert_eq!(report.refused, 0, "{report:?}");
    assert_eq!(report.sent, report.answered, "{report:?}");
    let all = log.all().join("\n");
    assert!(!all.contains("restarting it in"), "{all}");
    rustix::process::kill_process(rustix::process::Pid::from_child(&sup), Signal::TERM)
        .expect("term");
    let status = wait_child(&mut sup, WAIT).expect("exit");
    assert_eq!(status.code(), Some(0), "{all}");
    assert!(!alive(new));
}

#[test]
fn ctl_upgrade_asks_for_it() {
    let mut d = Daemon::start(&config("", ""));
    let out = std::process::Command::new(crate::util::bin())
        .args(["ctl", "--connect", &d.addr.to_string(), "upgrade"])
        .output()
        .expect("ctl");
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"upgrading\": true"),
        "{out:?}"
    );
    d.log
        .wait_for("upgrade: the old process has exited; taking over", 0, WAIT)
        .unwrap_or_else(|| panic!("{:#?}", d.log.all()));
    assert!(d.wait_exit(WAIT).expect("old exits").success());
    let s = Client::connect(d.addr).ok("status", json!({}));
    let new = pid_of(&s);
    let _guard = KillOnDrop(new);
    assert_ne!(new, d.child.id() as i32);
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(new).expect("pid"),
        Signal::TERM,
    )
    .expect("term");
    wait_gone(new);

    // Under systemd the method is refused at once.
    let name = format!("@tickd-test-notify-ctl-{}", std::process::id());
    let d = Daemon::start_with_env(&config("", ""), &[("NOTIFY_SOCKET", &name)]);
    let mut c = d.client();
    let e = c.call("upgrade", json!({}));
    assert_eq!(e["error"]["code"], json!(-32003), "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("systemd"),
        "{e}"
    );
}

#[test]
fn a_plain_shutdown_still_closes_the_port_while_it_drains() {
    // The copies of the listeners kept for SIGUSR2 must not keep the port
    // open through a plain SIGTERM's drain: clients are refused at once.
    let mut d = Daemon::start(&config("", SLOW));
    let addr = d.addr;
    let waiter = std::thread::spawn(move || {
        Client::connect(addr).ok("jobs.run", json!({"name": "slow", "wait": true}))
    });
    let mut c = d.client();
    poll_until("the run to start", || {
        let runs = c.ok("runs.list", json!({"job": "slow"}));
        runs.as_array()?
            .iter()
            .any(|r| r["state"] == "running")
            .then_some(())
    });
    d.signal(Signal::TERM);
    poll_until(
        "connections refused during the drain",
        || match std::net::TcpStream::connect(addr) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Some(()),
            _ => None,
        },
    );
    assert!(
        matches!(d.child.try_wait(), Ok(None)),
        "refused while the daemon still drains its run"
    );
    assert_eq!(waiter.join().expect("waiter")["state"], "succeeded");
    assert!(d.wait_exit(WAIT).expect("exit").success());
}

#[test]
fn the_file_now_at_the_recorded_path_is_started_and_a_broken_one_changes_nothing() {
    // As a package upgrade does: the binary's file is replaced while the
    // daemon runs (its /proc/self/exe then names a deleted file).
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("dir");
    let installed = dir.path().join("tickd");
    std::fs::hard_link(crate::util::bin(), &installed).expect("link the binary");
    let cfg = dir.path().join("tickd.toml");
    std::fs::write(&cfg, config("", "")).expect("config");
    let crate::util::Spawned {
        mut child,
        log,
        addr,
    } = crate::util::spawn_listening(
        &installed,
        &["run".as_ref(), "--config".as_ref(), cfg.as_os_str()],
        &[("TICKD_TEST_UPGRADE_CONFIRM_MS", "1500")],
    );
    let _guard = KillOnDrop(child.id() as i32);
    let old = child.id() as i32;

    // A "new version" that cannot start: the old daemon keeps serving.
    std::fs::remove_file(&installed).expect("rm");
    std::fs::write(
        &installed,
        "#!/bin/sh\necho \"broken build started: $*\" >&2\nexit 3\n",
    )
    .expect("write");
    std::fs::set_permissions(
        &installed,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let usr2 = || {
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(old).expect("pid"),
            Signal::USR2,
        )
        .expect("usr2")
    };
    usr2();
    log.wait_for("broken build started: run --config", 0, WAIT)
        .unwrap_or_else(|| panic!("{:#?}", log.all()));
    let (_, failed) = log.wait_for("upgrade failed", 0, WAIT).expect("failed");
    assert!(failed.contains("exited with status 3"), "{failed}");
    assert_eq!(pid_of(&Client::connect(addr).ok("status", json!({}))), old);

    // A "new version" that hangs before it confirms: killed after the
    // (test-shortened) wait; the old daemon still serves, and can try again.
    std::fs::remove_file(&installed).expect("rm");
    std::fs::write(
        &installed,
        "#!/bin/sh\necho \"hung build started\" >&2\nexec sleep 300\n",
    )
    .expect("write");
    std::fs::set_permissions(
        &installed,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let mark = log.len();
    usr2();
    log.wait_for("hung build started", mark, WAIT)
        .unwrap_or_else(|| panic!("{:#?}", log.all()));
    let (_, failed) = log
        .wait_for("upgrade failed", mark, WAIT)
        .unwrap_or_else(|| panic!("{:#?}", log.all()));
    assert!(
        failed.contains("did not confirm within 1500 ms"),
        "{failed}"
    );
    assert_eq!(pid_of(&Client::connect(addr).ok("status", json!({}))), old);

    // The real new version: it takes over.
    std::fs::remove_file(&installed).expect("rm");
    std::fs::hard_link(crate::util::bin(), &installed).expect("link");
    let mark = log.len();
    usr2();
    log.wait_for("taking over", mark, WAIT)
        .unwrap_or_else(|| panic!("{:#?}", log.all()));
    assert!(wait_child(&mut child, WAIT).expect("old exits").success());
    let new = pid_of(&Client::connect(addr).ok("status", json!({})));
    let _guard2 = KillOnDrop(new);
    assert_ne!(new, old);
    let exe = std::fs::read_link(format!("/proc/{new}/exe")).expect("exe");
    assert_eq!(
        exe, installed,
        "the new process runs the file at the recorded path"
    );
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(new).expect("pid"),
        Signal::TERM,
    )
    .expect("term");
    wait_gone(new);
}

#[test]
fn an_unprivileged_daemon_whose_pidfile_it_cannot_take_over_refuses_the_upgrade() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (to drop to nobody)");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let cfg = dir.path().join("tickd.toml");
    std::fs::write(&cfg, config("user = \"nobody\"", "")).expect("config");
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    // Root's directory: the daemon, once nobody, cannot write there.
    let pidfile = dir.path().join("tickd.pid");
    let crate::util::Spawned {
        mut child,
        log,
        addr,
    } = crate::util::spawn_listening(
        crate::util::bin(),
        &[
            "run".as_ref(),
            "--config".as_ref(),
            cfg.as_os_str(),
            "--pidfile".as_ref(),
            pidfile.as_os_str(),
        ],
        &[],
    );
    let _guard = KillOnDrop(child.id() as i32);
    log.wait_for("dropped privileges to user nobody", 0, WAIT)
        .expect("dropped");
    rustix::process::kill_process(rustix::process::Pid::from_child(&child), Signal::USR2)
        .expect("usr2");
    let (_, why) = log
        .wait_for("upgrade: pidfile", 0, WAIT)
        .unwrap_or_else(|| panic!("{:#?}", log.all()));
    assert!(
        why.contains("its directory is not writable by uid 65534"),
        "{why}"
    );
    log.wait_for("upgrade failed", 0, WAIT).expect("failed");
    let s = Client::connect(addr).ok("status", json!({}));
    assert_eq!(
        pid_of(&s),
        child.id() as i32,
        "the old daemon keeps serving"
    );
    rustix::process::kill_process(rustix::process::Pid::from_child(&child), Signal::TERM)
        .expect("term");
    assert!(wait_child(&mut child, WAIT).expect("exit").success());
}

/// Under `--supervise`, a new daemon that hangs before it confirms is
/// killed at the (test-shortened) deadline, and the old one keeps serving.
#[test]
fn a_hung_new_daemon_under_the_supervisor_is_killed_and_the_old_one_serves() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("dir");
    let installed = dir.path().join("tickd");
    std::fs::hard_link(crate::util::bin(), &installed).expect("link the binary");
    let cfg = dir.path().join("tickd.toml");
    std::fs::write(&cfg, config("", "")).expect("config");
    let crate::util::Spawned {
        child: mut sup,
        log,
        addr,
    } = crate::util::spawn_listening(
        &installed,
        &[
            "run".as_ref(),
            "--supervise".as_ref(),
            "--config".as_ref(),
            cfg.as_os_str(),
        ],
        &[("TICKD_TEST_UPGRADE_CONFIRM_MS", "1500")],
    );
    let _sup_guard = KillOnDrop(sup.id() as i32);
    log.wait_for("is ready", 0, WAIT).expect("ready");
    let old = pid_of(&Client::connect(addr).ok("status", json!({})));
    let _guard = KillOnDrop(old);

    std::fs::remove_file(&installed).expect("rm");
    std::fs::write(
        &installed,
        "#!/bin/sh\necho \"hung build started\" >&2\nexec sleep 300\n",
    )
    .expect("write");
    std::fs::set_permissions(
        &installed,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let mark = log.len();
    rustix::process::kill_process(rustix::process::Pid::from_child(&sup), Signal::USR2)
        .expect("usr2");
    log.wait_for("hung build started", mark, WAIT)
        .unwrap_or_else(|| panic!("{:#?}", log.all()));
    let (_, failed) = log
        .wait_for("upgrade failed", mark, WAIT)
        .unwrap_or_else(|| panic!("{:#?}", log.all()));
    assert!(
        failed.contains("did not confirm within 1500 ms"),
        "{failed}"
    );
    assert_eq!(pid_of(&Client::connect(addr).ok("status", json!({}))), old);

    rustix::process::kill_process(rustix::process::Pid::from_child(&sup), Signal::TERM)
        .expect("term");
    let status = wait_child(&mut sup, WAIT).expect("exit");
    assert_eq!(status.code(), Some(0), "{:#?}", log.all());
}
