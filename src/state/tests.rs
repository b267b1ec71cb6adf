//! Unit tests of the run and job bookkeeping.

use super::*;
use crate::config;
use serde_json::json;
use std::path::Path;

fn def(name: &str) -> Arc<JobDef> {
    let text = format!("[[jobs]]\nname = \"{name}\"\ncommand = [\"true\"]\n");
    let cfg = config::parse(&text, Path::new("t.toml")).expect("valid config");
    Arc::new(cfg.jobs[0].clone())
}

fn ok() -> Finish {
    Finish {
        state: RunState::Succeeded,
        exit_code: Some(0),
        error: None,
        output: String::new(),
        result: None,
    }
}

#[test]
fn a_run_goes_queued_running_terminal_once() {
    let mut core = Core::new(10);
    core.upsert_job(def("a"));
    let id = core.create_run(Some("a"), Trigger::Manual, 1, None);
    core.note_dispatched(id);
    assert_eq!(core.job("a").map(|j| j.active), Some(1));
    assert!(core.mark_running(id));
    assert!(!core.mark_running(id), "cannot start twice");
    assert_eq!(core.job("a").map(|j| j.running), Some(1));
    let snap = core.finish(id, ok(), true).expect("first finish");
    assert_eq!(snap.state, RunState::Succeeded);
    assert!(
        core.finish(id, ok(), true).is_none(),
        "never finished twice"
    );
    let job = core.job("a").expect("job");
    assert_eq!((job.active, job.running, job.runs_total()), (0, 0, 1));
    assert_eq!(job.history().next(), Some(id));
}

#[test]
fn cancelled_queued_run_is_not_started() {
    let mut core = Core::new(10);
    core.upsert_job(def("a"));
    let id = core.create_run(Some("a"), Trigger::Manual, 1, None);
    core.note_dispatched(id);
    core.finish(id, Finish::with_error(RunState::Cancelled, "x"), true);
    assert!(!core.mark_running(id));
    assert_eq!(core.job("a").map(|j| j.active), Some(0));
}

#[test]
fn history_is_trimmed_and_evicted_runs_forgotten() {
    let mut core = Core::new(2);
    core.upsert_job(def("a"));
    let ids: Vec<RunId> = (0..4)
        .map(|_| {
            let id = core.create_run(Some("a"), Trigger::Manual, 1, None);
            core.finish(id, Finish::with_error(RunState::Failed, "boom"), false);
            id
        })
        .collect();
    let job = core.job("a").expect("job");
    assert_eq!(job.history().collect::<Vec<_>>(), vec![ids[3], ids[2]]);
    assert_eq!(job.failures_total(), 4);
    assert!(core.run(ids[0]).is_none());
    assert_eq!(core.runs_len(), 2);
}

#[test]
fn runs_of_a_removed_job_finish_as_bounded_orphans() {
    let mut core = Core::new(1);
    core.upsert_job(def("a"));
    let a = core.create_run(Some("a"), Trigger::Manual, 1, None);
    let b = core.create_run(Some("a"), Trigger::Manual, 1, None);
    assert!(core.mark_running(a));
    core.remove_job("a");
    assert!(core.finish(a, ok(), true).is_some());
    assert!(core.finish(b, ok(), true).is_some());
    assert!(core.run(a).is_none(), "oldest orphan evicted");
    assert!(core.run(b).is_some());
}

#[test]
fn progress_only_while_running_and_clamped() {
    let mut core = Core::new(10);
    core.upsert_job(def("a"));
    let id = core.create_run(Some("a"), Trigger::Manual, 1, None);
    core.set_progress(id, 0.5);
    assert_eq!(core.run(id).and_then(|r| r.progress), None);
    core.mark_running(id);
    core.set_progress(id, 7.0);
    assert_eq!(core.run(id).and_then(|r| r.progress), Some(1.0));
}

#[test]
fn upsert_keeps_counters_and_runtime_pause() {
    let mut core = Core::new(10);
    core.upsert_job(def("a"));
    let id = core.create_run(Some("a"), Trigger::Manual, 1, None);
    core.finish(id, ok(), false);
    assert_eq!(core.set_paused("a", true), Some(true));
    core.upsert_job(def("a"));
    let job = core.job("a").expect("job");
    assert_eq!(job.runs_total(), 1);
    assert!(job.paused && !job.enabled, "a pause survives a reload");
    // Not even a reload that flips the file's `enabled` lifts it.
    let mut off = (*def("a")).clone();
    off.enabled = false;
    core.upsert_job(Arc::new(off));
    let mut on = (*def("a")).clone();
    on.enabled = true;
    core.upsert_job(Arc::new(on));
    assert!(core.job("a").is_some_and(|j| j.paused && !j.enabled));
}

#[test]
fn a_pause_is_an_overlay_on_the_file() {
    let mut core = Core::new(10);
    let mut off = (*def("off")).clone();
    off.enabled = false;
    core.upsert_job(Arc::new(off));
    core.upsert_job(def("on"));
    let state = |core: &Core, name: &str| {
        let j = core.job(name).expect("job");
        (j.enabled, j.paused)
    };
    assert_eq!(core.set_paused("on", true), Some(true));
    assert_eq!(core.set_paused("on", true), Some(false), "no change");
    assert_eq!(state(&core, "on"), (false, true));
    assert_eq!(core.set_paused("on", false), Some(true));
    assert_eq!(state(&core, "on"), (true, false));
    // Resuming never enables what the file disables.
    assert_eq!(core.set_paused("off", true), Some(true));
    assert_eq!(core.set_paused("off", false), Some(true));
    assert_eq!(state(&core, "off"), (false, false));
    assert_eq!(core.set_paused("none", true), None);
    core.set_paused("off", true);
    assert_eq!(core.paused_jobs().collect::<Vec<_>>(), ["off"]);
    let view = core.job_json("off", false).expect("view");
    assert_eq!(
        (&view["enabled"], &view["paused"]),
        (&json!(false), &json!(true))
    );
}

#[test]
fn held_queued_runs_do_not_start_and_stay_queued() {
    let mut core = Core::new(10);
    core.upsert_job(def("a"));
    let id = core.create_run(Some("a"), Trigger::Manual, 1, None);
    core.note_dispatched(id);
    core.hold_queued_runs();
    assert!(core.holds_queued_runs());
    assert!(!core.mark_running(id), "no run starts once held");
    assert_eq!(core.run(id).map(|r| r.state), Some(RunState::Queued));
    assert_eq!(core.job("a").map(|j| j.running), Some(0));
}

#[test]
fn reload_churn_keeps_metrics_to_the_configured_jobs() {
    let mut core = Core::new(10);
    core.upsert_job(def("stay"));
    let id = core.create_run(Some("stay"), Trigger::Manual, 1, None);
    core.finish(id, ok(), true);
    for round in 0..50 {
        let name = format!("churn{round}");
        core.upsert_job(def(&name));
        let id = core.create_run(Some(&name), Trigger::Manual, 1, None);
        assert!(core.mark_running(id));
        core.remove_job(&name);
        // In flight when its job went: finishes, but brings no series back.
        assert!(core.finish(id, ok(), true).is_some());
        core.upsert_job(def("stay"));
    }
    let (slice, more) = core.metrics_slice(None, usize::MAX);
    let series: Vec<(&str, u64)> = slice
        .iter()
        .map(|(n, m)| (n.as_str(), m.by_state[0]))
        .collect();
    assert!(!more);
    assert_eq!(
        series,
        [("stay", 1)],
        "only configured jobs have series, and one that stays keeps its counters"
    );
}

#[test]
fn a_job_view_changes_with_time_only_while_its_latest_run_runs() {
    let mut core = Core::new(10);
    core.upsert_job(def("a"));
    let views_change = |core: &Core| core.job_views()[0].changes_with_time();
    assert!(!views_change(&core), "never run");
    let id = core.create_run(Some("a"), Trigger::Manual, 1, None);
    core.note_dispatched(id);
    assert!(!views_change(&core), "queued: no duration yet");
    assert!(core.mark_running(id));
    assert!(
        views_change(&core),
        "running: duration_ms follows the clock"
    );
    core.finish(id, ok(), true);
    assert!(!views_change(&core), "finished: fixed duration");
}

#[test]
fn a_job_gets_its_history_and_counters_at_its_first_run() {
    let mut core = Core::new(10);
    core.add_jobs([def("a"), def("b")]);
    assert!(core
        .job("a")
        .is_some_and(|j| j.metrics().is_none() && j.latest().is_none()));
    let id = core.create_run(Some("a"), Trigger::Manual, 1, None);
    assert_eq!(core.job("a").and_then(JobEntry::latest), Some(id));
    core.finish(id, ok(), false);
    let a = core.job("a").expect("job a");
    assert_eq!(a.metrics().map(|m| m.by_state[0]), Some(1));
    assert!(core.job("b").is_some_and(|j| j.metrics().is_none()));
    // A job that never ran still shows (zero) series.
    let (slice, more) = core.metrics_slice(None, 1);
    assert!(more, "b follows");
    assert_eq!(slice[0].0, "a");
    assert_eq!(slice[0].1.by_state[0], 1);
    let (slice, more) = core.metrics_slice(Some("a"), 1);
    assert!(!more);
    assert_eq!(slice[0].0, "b");
    assert_eq!(slice[0].1.by_state, [0; 5]);
    assert_eq!(core.metrics().total().by_state[0], 1);
}
