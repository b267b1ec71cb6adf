//! Tests of the exec runner against real processes (`sh`, `sleep`, `head`).
//!
//! Waits are deadline-bounded polls of an observable condition, never
//! fixed sleeps standing in for an event.

use super::supervise::ExitWatch;
use super::*;
use std::sync::mpsc;
use std::time::Instant;

fn strings(argv: &[&str]) -> Vec<String> {
    argv.iter().map(|s| s.to_string()).collect()
}

/// Runs `argv` with the given knobs and no observer.
struct Job {
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    cwd: Option<std::path::PathBuf>,
    extra_env: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
    timeout: Option<Duration>,
    kill_grace: Duration,
    watch: ExitWatch,
    limits: Limits,
}

impl Job {
    fn new(argv: &[&str]) -> Self {
        Self {
            argv: strings(argv),
            env: BTreeMap::new(),
            cwd: None,
            extra_env: Vec::new(),
            stdin: None,
            timeout: Some(Duration::from_secs(10)),
            kill_grace: Duration::from_secs(2),
            watch: ExitWatch::Auto,
            limits: Limits::default(),
        }
    }

    fn sh(script: &str) -> Self {
        Self::new(&["sh", "-c", script])
    }

    fn run_with(&self, cancel: &CancelToken, observer: &mut dyn ExecObserver) -> ExecOutcome {
        let req = ExecRequest {
            argv: &self.argv,
            env: &self.env,
            cwd: self.cwd.as_deref(),
            extra_env: self.extra_env.clone(),
            stdin: self.stdin.clone(),
            timeout: self.timeout,
            kill_grace: self.kill_grace,
            run_as: None,
            limits: self.limits,
        };
        run_with(&req, cancel, observer, self.watch)
    }

    fn run(&self) -> ExecOutcome {
        self.run_with(&CancelToken::new(), &mut ())
    }
}

/// Whether any live (non-zombie) process is in group `pgid`.
///
/// `kill(-pgid, 0)` alone is not enough on machines whose init does not
/// reap orphans: killed grandchildren stay as zombies there, and a zombie
/// still "exists" for kill(). So when the group still exists, look at the
/// states of its members in /proc.
fn group_has_live_process(pgid: u32) -> bool {
    if !crate::sys::process_group_exists(pgid).expect("kill(-pgid, 0)") {
        return false;
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return true;
    };
    dir.flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // "pid (comm) S ppid pgrp ..."; comm may hold spaces and parens.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            return false;
        };
        let mut fields = after.split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|f| f.parse::<u32>().ok());
        pgrp == Some(pgid) && !matches!(state, Some("Z") | Some("X"))
    })
}

/// Polls `cond` until it holds or `limit` passes.
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Records observer callbacks; optionally reports the pid on a channel.
#[derive(Default)]
struct Recorder {
    pid: Option<u32>,
    progress: Vec<f64>,
    started_tx: Option<mpsc::Sender<u32>>,
}

impl ExecObserver for Recorder {
    fn started(&mut self, pid: u32) {
        self.pid = Some(pid);
        if let Some(tx) = &self.started_tx {
            let _ = tx.send(pid);
        }
    }
    fn progress(&mut self, value: f64) {
        self.progress.push(value);
    }
}

#[test]
fn missing_program_is_spawn_failed() {
    let out = Job::new(&["tickd-no-such-program-xyz"]).run();
    assert_eq!(out.end, ExecEnd::SpawnFailed);
    assert_eq!(
        out.error.as_deref(),
        Some("program not found: tickd-no-such-program-xyz")
    );
    assert_eq!(out.pid, None);
    let out = Job::new(&["/nonexistent/prog"]).run();
    assert_eq!(
        out.error.as_deref(),
        Some("program not found: /nonexistent/prog")
    );
}

#[test]
fn bad_cwd_is_spawn_failed() {
    let mut job = Job::new(&["true"]);
    job.cwd = Some("/nonexistent-tickd-dir".into());
    let out = job.run();
    assert_eq!(out.end, ExecEnd::SpawnFailed);
    assert_eq!(
        out.error.as_deref(),
        Some("cwd /nonexistent-tickd-dir: No such file or directory")
    );
    job.cwd = Some("/etc/passwd".into());
    assert_eq!(
        job.run().error.as_deref(),
        Some("cwd /etc/passwd: Not a directory")
    );
}

#[test]
fn bad_input_is_an_outcome() {
    assert_eq!(Job::new(&[]).run().error.as_deref(), Some("empty command"));
    let mut job = Job::new(&["true"]);
    job.env.insert("A=B".into(), "x".into());
    assert_eq!(job.run().end, ExecEnd::SpawnFailed);
    let out = Job::new(&["/etc/passwd"]).run();
    assert_eq!(out.end, ExecEnd::SpawnFailed);
    assert!(out
        .error
        .as_deref()
        .is_some_and(|e| e.starts_with("program not executable")));
}

#[test]
fn exit_codes_and_signals() {
    let ok = Job::new(&["true"]).run();
    assert_eq!(
        (ok.end, ok.exit_code, ok.error.clone()),
        (ExecEnd::Exited(0), Some(0), None)
    );
    assert!(ok.succeeded());
    let pid = ok.pid.expect("pid");
    // Reaped: no zombie left under our pid.
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());

    let three = Job::sh("exit 3").run();
    assert_eq!(three.end, ExecEnd::Exited(3));
    assert_eq!(three.exit_code, Some(3));
    assert_eq!(three.error.as_deref(), Some("exit status 3"));

    let killed = Job::sh("kill -9 $$").run();
    assert_eq!(killed.end, ExecEnd::Signaled(9));
    assert_eq!(killed.exit_code, None);
    assert_eq!(killed.error.as_deref(), Some("killed by signal 9"));
}

#[test]
fn a_leader_that_closes_its_output_is_still_watched_until_it_exits() {
    // End-of-file on both pipes while the leader runs on: the run must wait
    // for the real exit and report its status, not take EOF for the exit.
    let out = Job::sh("echo before; exec >&- 2>&-; sleep 0.3; exit 5").run();
    assert_eq!(out.end, ExecEnd::Exited(5), "{out:?}");
    assert_eq!(out.output, "before\n");
}

#[test]
fn waiter_thread_fallback_works() {
    let mut job = Job::sh("echo out; echo err >&2; exit 4");
    job.watch = ExitWatch::WaiterThread;
    let out = job.run();
    assert_eq!(out.end, ExecEnd::Exited(4));
    assert!(out.output.contains("out\n") && out.output.contains("err\n"));

    let mut slow = Job::sh("trap '' TERM; sleep 300");
    slow.watch = ExitWatch::WaiterThread;
    slow.timeout = Some(Duration::from_millis(200));
    slow.kill_grace = Duration::from_millis(200);
    let out = slow.run();
    assert_eq!(out.end, ExecEnd::TimedOut);
    let pgid = out.pid.expect("pid");
    assert!(eventually(Duration::from_secs(3), || {
        !group_has_live_process(pgid)
    }));
}

#[test]
fn environment_is_scrubbed() {
    // Edition 2021: set_var is safe; std serialises its own env access.
    std::env::set_var("TICKD_TEST_SECRET", "leak");
    let mut job = Job::new(&["env"]);
    job.env.insert("GREETING".into(), "hi".into());
    job.env.insert("TICKD_JOB".into(), "overridden".into());
    job.extra_env.push(("TICKD_JOB".into(), "heartbeat".into()));
    let out = job.run();
    assert_eq!(out.end, ExecEnd::Exited(0), "{out:?}");
    let vars: Vec<&str> = out.output.lines().collect();
    assert!(!out.output.contains("TICKD_TEST_SECRET"), "{vars:?}");
    assert!(vars.iter().any(|l| l.starts_with("PATH=")), "{vars:?}");
    assert!(vars.contains(&"GREETING=hi"), "{vars:?}");
    assert!(vars.contains(&"TICKD_JOB=heartbeat"), "{vars:?}");
    // Only kept, job and extra variables.
    for line in &vars {
        let name = line.split('=').next().unwrap_or_default();
        assert!(
            [
                "PATH",
                "HOME",
                "LANG",
                "GREETING",
                "TICKD_JOB",
                "PWD",
                "SHLVL",
                "_"
            ]
            .contains(&name),
            "unexpected variable {line}"
        );
    }
}

#[test]
fn a_bare_name_is_found_in_the_jobs_path_and_keeps_its_argv0() {
    // `tool` exists only in the job's PATH, not in the daemon's.
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink("/bin/sh", dir.path().join("tool")).expect("symlink");
    let mut job = Job::new(&["tool", "-c", "echo $0"]);
    let path = format!("{}:/usr/bin:/bin", dir.path().display());
    job.env.insert("PATH".into(), path);
    let out = job.run();
    assert_eq!(out.end, ExecEnd::Exited(0), "{out:?}");
    assert_eq!(out.output, "tool\n", "argv[0] is the name as written");
}

#[test]
fn a_script_without_a_shebang_found_in_path_still_runs_with_sh() {
    // execvp runs such a file with /bin/sh; the PATH lookup must not change that.
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("plain");
    std::fs::write(&script, "echo plain ran\nexit 4\n").expect("write");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let mut job = Job::new(&["plain"]);
    let path = format!("{}:/usr/bin:/bin", dir.path().display());
    job.env.insert("PATH".into(), path);
    let out = job.run();
    assert_eq!(out.end, ExecEnd::Exited(4), "{out:?}");
    assert_eq!(out.output, "plain ran\n");
}

#[test]
fn cwd_is_applied() {
    let mut job = Job::new(&["pwd"]);
    job.cwd = Some("/tmp".into());
    assert_eq!(job.run().output, "/tmp\n");
}

#[test]
fn stdin_args_and_tickd_args() {
    let args = r#"{"name":"x","n":1}"#;
    let mut job = Job::sh(r#"cat; echo; printf '%s\n' "$TICKD_ARGS""#);
    job.stdin = Some(args.as_bytes().to_vec());
    job.extra_env.push(("TICKD_ARGS".into(), args.into()));
    let out = job.run();
    assert_eq!(out.end, ExecEnd::Exited(0));
    assert_eq!(out.output, format!("{args}\n{args}\n"));

    // No args: stdin is /dev/null, so cat ends at once.
    assert_eq!(Job::new(&["cat"]).run().end, ExecEnd::Exited(0));
}

#[test]
fn big_stdin_is_not_an_error_when_unread() {
    let mut job = Job::new(&["true"]);
    job.stdin = Some(vec![b'a'; 1 << 20]);
    assert_eq!(job.run().end, ExecEnd::Exited(0));
}

#[test]
fn big_stdin_and_big_output_do_not_deadlock() {
    // cat echoes 2 MiB: both pipes fill up unless stdin and output are
    // served from the same loop.
    let mut job = Job::new(&["cat"]);
    job.stdin = Some(vec![b'z'; 2 << 20]);
    let out = job.run();
    assert_eq!(out.end, ExecEnd::Exited(0));
    assert_eq!(out.output.len(), 64 * 1024);
    assert!(out.output_truncated);
}

#[test]
fn large_output_keeps_exact_tail() {
    let out = Job::new(&["seq", "1", "200000"]).run();
    assert_eq!(out.end, ExecEnd::Exited(0));
    let full: String = (1..=200_000).map(|n| format!("{n}\n")).collect();
    assert_eq!(out.output.len(), 64 * 1024);
    assert_eq!(out.output, full[full.len() - 64 * 1024..]);
    assert!(out.output_truncated);

    let small = Job::sh("echo out; echo err >&2").run();
    assert!(!small.output_truncated);
    assert_eq!(small.output.len(), 8);
}

#[test]
fn one_mebibyte_with_head() {
    let out = Job::sh("head -c 1048576 /dev/zero | tr '\\0' 'a'").run();
    assert_eq!(out.end, ExecEnd::Exited(0));
    assert_eq!(out.output, "a".repeat(64 * 1024));
    assert!(out.output_truncated);
}

#[test]
fn output_without_newlines_stays_bounded() {
    // 20 MB in one "line" on both streams; the scanner buffers at most
    // MAX_SCANNED_LINE per stream (see output.rs tests) and the tail 64 KiB.
    let mut rec = Recorder::default();
    let job = Job::sh("head -c 10000000 /dev/zero; head -c 10000000 /dev/zero >&2; echo; echo tickd-progress: 0.5");
    let out = job.run_with(&CancelToken::new(), &mut rec);
    assert_eq!(out.end, ExecEnd::Exited(0));
    assert_eq!(out.output.len(), 64 * 1024);
    assert_eq!(rec.progress, vec![0.5]);
}

#[test]
fn progress_lines_are_reported_in_order() {
    let mut rec = Recorder::default();
    let job = Job::sh(
        "echo tickd-progress: 0.1; echo hello; echo 'tickd-progress: 0.25'; \
         echo tickd-progress: garbage; echo tickd-progress: 7; printf 'tickd-progress: 0.9'",
    );
    let out = job.run_with(&CancelToken::new(), &mut rec);
    assert_eq!(out.end, ExecEnd::Exited(0));
    assert_eq!(rec.progress, vec![0.1, 0.25, 1.0, 0.9]);

    let mut rec = Recorder::default();
    Job::sh("echo tickd-progress: 0.3 >&2").run_with(&CancelToken::new(), &mut rec);
    assert_eq!(rec.progress, vec![0.3]);
}

#[test]
fn timeout_kills_the_whole_tree() {
    let mut job = Job::sh("sleep 300 & sleep 300; wait");
    job.timeout = Some(Duration::from_millis(300));
    let began = Instant::now();
    let out = job.run();
    assert_eq!(out.end, ExecEnd::TimedOut);
    assert_eq!(out.error.as_deref(), Some("timed out after 300ms"));
    assert_eq!(out.exit_code, None);
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
    let pgid = out.pid.expect("pid");
    assert!(eventually(Duration::from_secs(3), || {
        !group_has_live_process(pgid)
    }));
}

#[test]
fn sigterm_ignored_gets_sigkill_after_grace() {
    let mut job = Job::sh("trap '' TERM; sleep 300");
    job.timeout = Some(Duration::from_millis(200));
    job.kill_grace = Duration::from_millis(300);
    let began = Instant::now();
    let out = job.run();
    let took = began.elapsed();
    assert_eq!(out.end, ExecEnd::TimedOut);
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let pgid = out.pid.expect("pid");
    assert!(eventually(Duration::from_secs(3), || {
        !group_has_live_process(pgid)
    }));
}

#[test]
fn cancel_from_another_thread() {
    let cancel = CancelToken::new();
    let (tx, rx) = mpsc::channel();
    let canceller = {
        let cancel = cancel.clone();
        std::thread::spawn(move || {
            if rx.recv_timeout(Duration::from_secs(5)).is_ok() {
                cancel.cancel();
            }
        })
    };
    let mut rec = Recorder {
        started_tx: Some(tx),
        ..Recorder::default()
    };
    let mut job = Job::sh("sleep 300 & sleep 300; wait");
    job.timeout = None;
    job.kill_grace = Duration::from_secs(5);
    let began = Instant::now();
    let out = job.run_with(&cancel, &mut rec);
    assert_eq!(out.end, ExecEnd::Cancelled);
    assert_eq!(out.error.as_deref(), Some("cancelled"));
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
    canceller.join().expect("canceller");
    let pgid = rec.pid.expect("started");
    assert!(eventually(Duration::from_secs(3), || {
        !group_has_live_process(pgid)
    }));
}

#[test]
fn cancel_before_start_does_not_spawn() {
    let cancel = CancelToken::new();
    cancel.cancel();
    let mut rec = Recorder::default();
    let dir = std::env::temp_dir().join(format!("tickd-exec-test-{}", std::process::id()));
    let marker = dir.join("ran");
    let _ = std::fs::create_dir_all(&dir);
    let job = Job::new(&["touch", marker.to_str().expect("utf-8 path")]);
    let out = job.run_with(&cancel, &mut rec);
    assert_eq!(out.end, ExecEnd::Cancelled);
    assert_eq!(out.pid, None);
    assert_eq!(rec.pid, None);
    assert!(!marker.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn background_grandchild_does_not_hang_the_run() {
    let job = Job::sh("sleep 300 & echo started");
    let began = Instant::now();
    let out = job.run();
    let took = began.elapsed();
    assert_eq!(out.end, ExecEnd::Exited(0));
    assert_eq!(out.output, "started\n");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // It was not killed on a normal exit; clean it up ourselves.
    let pgid = out.pid.expect("pid");
    assert!(group_has_live_process(pgid));
    crate::sys::signal_process_group(pgid, crate::sys::GroupSignal::Kill).expect("kill");
    assert!(eventually(Duration::from_secs(3), || {
        !group_has_live_process(pgid)
    }));
}

#[test]
fn durations_read_like_config() {
    assert_eq!(human_duration(Duration::from_secs(2)), "2s");
    assert_eq!(human_duration(Duration::from_millis(300)), "300ms");
    assert_eq!(human_duration(Duration::from_millis(1500)), "1500ms");
}

#[test]
fn errors_name_the_cpu_limit_that_killed_a_run_and_the_memory_limit_it_ran_under() {
    let cpu = Limits {
        cpu_time: Some(600),
        ..Limits::default()
    };
    let killed = |sig: i32, used: Option<u64>| {
        let used = used.map(Duration::from_secs);
        limit_note(
            format!("killed by signal {sig}"),
            ExecEnd::Signaled(sig),
            &cpu,
            used,
        )
    };
    assert_eq!(killed(libc::SIGXCPU, None), "killed: cpu time limit 10m");
    // SIGKILL is the hard limit's only once the CPU time is used up.
    assert_eq!(
        killed(libc::SIGKILL, Some(605)),
        "killed: cpu time limit 10m"
    );
    assert_eq!(killed(libc::SIGKILL, Some(3)), "killed by signal 9");
    assert_eq!(killed(libc::SIGKILL, None), "killed by signal 9");
    let memory = Limits {
        memory: Some(512 << 20),
        ..Limits::default()
    };
    assert_eq!(
        limit_note("exit status 1".into(), ExecEnd::Exited(1), &memory, None),
        "exit status 1 (ran under a memory limit of 512 MiB)"
    );
    assert_eq!(
        limit_note(
            "timed out after 1s".into(),
            ExecEnd::TimedOut,
            &memory,
            None
        ),
        "timed out after 1s"
    );
    assert_eq!(human_size(3 << 30), "3 GiB");
    assert_eq!(human_size(1000), "1000 bytes");
}

#[test]
fn a_zombie_still_tells_its_cpu_time() {
    let child = std::process::Command::new("sh")
        .args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
        .spawn()
        .expect("spawn");
    let mut child = child;
    crate::sys::wait_for_exit(child.id()).expect("waitid");
    let used = crate::sys::limits::cpu_time_of(child.id()).expect("zombie's stat");
    assert!(used > Duration::ZERO, "{used:?}");
    assert!(child.wait().expect("reap").success());
}
