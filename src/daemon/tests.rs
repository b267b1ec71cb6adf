//! Unit tests of the daemon's operations, without a socket: a [`Daemon`]
//! started from a config file in a temporary directory, driven by calling
//! its operations and feeding it its own loop events, as the server would.
//!
//! The jobs run real commands (`true`, `false`, `sleep`); a run that must
//! stay active for a decision to be tested sleeps, and is killed when the
//! harness is dropped.

use super::dispatch::NewRun;
use super::{Daemon, Error, LoopEvent, ReloadReport};
use crate::config;
use crate::state::run::{Run, RunId, RunState, Trigger};
use crossbeam_channel::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything a test needs to drive a daemon: the daemon, the events its
/// workers post, the poll its waker is registered with, and the directory
/// holding its config file.
struct Harness {
    d: Option<Daemon>,
    events: Receiver<LoopEvent>,
    _poll: mio::Poll,
    dir: tempfile::TempDir,
}

/// The config file: one worker, a small queue, the `jobs` given.
fn config_text(jobs: &str) -> String {
    format!("[daemon]\nlisten = \"\"\nworkers = 1\nqueue_capacity = 2\nfile_threads = 1\n{jobs}")
}

impl Harness {
    fn start(jobs: &str) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tickd.toml");
        std::fs::write(&path, config_text(jobs)).expect("write config");
        let config = config::load(&path).expect("valid config");
        let poll = mio::Poll::new().expect("poll");
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).expect("waker"));
        let (tx, events) = crossbeam_channel::unbounded();
        let d = Daemon::start(config, tx, waker, false).expect("daemon starts");
        Harness {
            d: Some(d),
            events,
            _poll: poll,
            dir,
        }
    }

    fn d(&mut self) -> &mut Daemon {
        self.d.as_mut().expect("running")
    }

    fn run(&mut self, name: &str, trigger: Trigger) -> Result<RunId, Error> {
        self.d().start_run(name, NewRun::new(trigger, None))
    }

    /// Waits for run `id` to end, handing every finished run to the
    /// daemon's bookkeeping on the way (retries, backlogs), as the loop does.
    fn wait_end(&mut self, id: RunId) -> Run {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(LoopEvent::Finished(run)) => {
                    self.d().on_finished(&run);
                    if run.id == id {
                        return run;
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("run {id} did not end: {e}"),
            }
        }
    }

    /// The runs of `job`, newest first.
    fn runs(&mut self, job: &str) -> Vec<Run> {
        let core = self.d().shared.core.lock();
        core.runs_newest_first(Some(job), None, 100)
            .into_iter()
            .cloned()
            .collect()
    }

    fn write_config(&self, jobs: &str) {
        let path = self.dir.path().join("tickd.toml");
        std::fs::write(path, config_text(jobs)).expect("write config");
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(mut d) = self.d.take() {
            // The second call kills what still runs.
            d.begin_shutdown();
            d.begin_shutdown();
            let deadline = Instant::now() + Duration::from_secs(10);
            while !d.drained() && Instant::now() < deadline {
                if let Ok(LoopEvent::Finished(run)) =
                    self.events.recv_timeout(Duration::from_millis(50))
                {
                    d.on_finished(&run);
                }
            }
            d.stop_pool();
        }
    }
}

const SLOW: &str = "[[jobs]]\nname = \"slow\"\ncommand = [\"sleep\", \"30\"]\n";

#[test]
fn overlap_skip_refuses_a_second_run_and_counts_scheduled_skips() {
    let mut h = Harness::start(SLOW);
    let first = h.run("slow", Trigger::Manual).expect("first run");
    let again = Error::AlreadyRunning { job: "slow".into() };
    assert_eq!(h.run("slow", Trigger::Manual), Err(again.clone()));
    assert_eq!(h.run("slow", Trigger::Schedule), Err(again));
    let skipped = |h: &mut Harness| {
        h.d()
            .shared
            .core
            .lock()
            .job("slow")
            .map(|j| j.skipped_total)
    };
    assert_eq!(skipped(&mut h), Some(1), "only the scheduled one counts");
    assert_eq!(
        h.run("nope", Trigger::Manual),
        Err(Error::NoSuchJob("nope".into()))
    );
    // Cancelled, it ends; then the job may run again.
    h.d().cancel_run(first).expect("cancel");
    assert_eq!(h.wait_end(first).state, RunState::Cancelled);
    assert!(h.run("slow", Trigger::Manual).is_ok());
    assert_eq!(
        h.d().cancel_run(999_999),
        Err(Error::NoSuchRun("999999".into()))
    );
}

#[test]
fn overlap_queue_keeps_a_bounded_backlog_run_one_at_a_time() {
    let mut h = Harness::start(&format!("{SLOW}overlap = \"queue\"\n"));
    let first = h.run("slow", Trigger::Manual).expect("first run");
    let second = h.run("slow", Trigger::Manual).expect("waits");
    let third = h.run("slow", Trigger::Manual).expect("waits");
    // The backlog holds queue_capacity runs.
    assert_eq!(
        h.run("slow", Trigger::Manual),
        Err(Error::BacklogFull {
            job: "slow".into(),
            capacity: 2
        })
    );
    let backlog: Vec<RunId> = {
        let core = h.d().shared.core.lock();
        core.job("slow")
            .expect("job")
            .backlog
            .iter()
            .copied()
            .collect()
    };
    assert_eq!(backlog, [second, third]);
    // When the running one ends, the next one is dispatched.
    h.d().cancel_run(first).expect("cancel");
    h.wait_end(first);
    let (active, backlog) = {
        let core = h.d().shared.core.lock();
        let job = core.job("slow").expect("job");
        (job.active, job.backlog.iter().copied().collect::<Vec<_>>())
    };
    assert_eq!(
        (active, backlog),
        (1, vec![third]),
        "the second one left the backlog"
    );
    // A queued run in the backlog is cancelled at once.
    h.d().cancel_run(third).expect("cancel");
    assert_eq!(h.wait_end(third).state, RunState::Cancelled);
}

#[test]
fn a_failed_run_is_retried_after_its_backoff_then_gives_up() {
    let mut h = Harness::start(
        "[[jobs]]\nname = \"flaky\"\ncommand = [\"false\"]\nretries = 1\nretry_backoff = \"100ms\"\n",
    );
    let first = h.run("flaky", Trigger::Manual).expect("run");
    assert_eq!(h.wait_end(first).state, RunState::Failed);
    assert_eq!(h.d().retries.len(), 1, "a retry is armed");
    // Its timer fires after the backoff.
    std::thread::sleep(Duration::from_millis(150));
    h.d().on_timers(Instant::now());
    assert!(h.d().retries.is_empty());
    let retry = h.runs("flaky")[0].clone();
    assert_eq!((retry.trigger, retry.attempt), (Trigger::Retry, 2));
    assert_eq!(h.wait_end(retry.id).state, RunState::Failed);
    assert!(h.d().retries.is_empty(), "no attempt left");
    assert_eq!(h.runs("flaky").len(), 2);
}

#[test]
fn a_last_failure_starts_the_on_failure_job() {
    let mut h = Harness::start(
        "[[jobs]]\nname = \"bad\"\ncommand = [\"false\"]\non_failure = \"alarm\"\n\
         [[jobs]]\nname = \"alarm\"\ncommand = [\"true\"]\n",
    );
    let id = h.run("bad", Trigger::Manual).expect("run");
    h.wait_end(id);
    let alarm = h.runs("alarm");
    assert_eq!(alarm.len(), 1);
    assert_eq!(alarm[0].trigger, Trigger::OnFailure);
}

#[test]
fn catch_up_replays_the_latest_missed_due_times_per_policy() {
    for (policy, replayed) in [("none", 0), ("once", 1), ("all", 3)] {
        let mut h = Harness::start(&format!(
            "[[jobs]]\nname = \"tick\"\ncommand = [\"true\"]\nevery = \"1m\"\n\
             catch_up = \"{policy}\"\ncatch_up_limit = 3\n"
        ));
        // Down for ten due times: from `last` to the tenth due time after it.
        let (schedule, last) = {
            let core = h.d().shared.core.lock();
            let def = &core.job("tick").expect("job").def;
            (def.schedule.clone().expect("every"), crate::time::now())
        };
        let mut now = last;
        for _ in 0..10 {
            now = schedule.next_after(now).expect("next");
        }
        if let Some(job) = h.d().shared.core.lock().job_mut("tick") {
            job.last_scheduled = Some(last);
        }
        h.d().catch_up(now);
        let (missed, newest) = {
            let core = h.d().shared.core.lock();
            let job = core.job("tick").expect("job");
            (job.missed_total, job.last_scheduled)
        };
        assert_eq!(missed, 10, "{policy}");
        assert_eq!(newest, Some(now), "counted once: {policy}");
        let runs = h.runs("tick");
        assert_eq!(runs.len(), replayed, "{policy}");
        for run in &runs {
            assert!(run.catch_up && run.trigger == Trigger::Schedule);
        }
        // The latest due times, oldest first (ids grow).
        let due: Vec<_> = runs.iter().rev().filter_map(|r| r.scheduled_at).collect();
        assert!(due.windows(2).all(|w| w[0] < w[1]), "{policy}");
        assert_eq!(due.last().copied(), (replayed > 0).then_some(now));
    }
}

#[test]
fn reload_reports_the_diff_or_keeps_the_old_config() {
    let mut h = Harness::start(
        "[[jobs]]\nname = \"a\"\ncommand = [\"true\"]\n\
         [[jobs]]\nname = \"b\"\ncommand = [\"true\"]\n",
    );
    h.write_config(
        "[[jobs]]\nname = \"b\"\ncommand = [\"false\"]\n\
         [[jobs]]\nname = \"c\"\ncommand = [\"true\"]\n",
    );
    let report = h.d().reload().expect("accepted");
    assert_eq!(
        report,
        ReloadReport {
            generation: 2,
            added: vec!["c".into()],
            removed: vec!["a".into()],
            changed: vec!["b".into()],
        }
    );
    assert_eq!(h.d().shared.core.lock().job_names(), ["b", "c"]);
    h.write_config("[[jobs]]\nname = \"b\"\ncommand = \"not a list\"\n");
    let Err(Error::ReloadRejected(why)) = h.d().reload() else {
        panic!("a bad file is rejected");
    };
    assert!(why.contains("tickd.toml"), "{why}");
    let info = h.d().shared.board.info.read().clone();
    assert_eq!(info.generation, 2, "the old config stays");
    assert_eq!(info.last_reload_error, Some(why));
    assert_eq!(h.d().shared.core.lock().job_names(), ["b", "c"]);
}

#[test]
fn no_run_starts_once_shutdown_has_begun() {
    let mut h = Harness::start("[[jobs]]\nname = \"a\"\ncommand = [\"true\"]\n");
    h.d().begin_shutdown();
    assert_eq!(h.run("a", Trigger::Manual), Err(Error::ShuttingDown));
    assert!(h.d().drained());
}
