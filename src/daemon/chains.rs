//! Runs started by other runs' successes: a job's `on_success` job, and
//! the jobs whose `after` join a success completes (runs.md). Failures'
//! `on_failure` and retries are in `dispatch.rs`.

use super::dispatch::NewRun;
use super::Daemon;
use crate::state::run::{Run, RunId, Trigger};
use serde_json::Value;

impl Daemon {
    /// A succeeded run: start its job's `on_success` job, with
    /// `trigger = "on_success"`, args `{job, run_id, state, result}` (the
    /// run's `result` object, where its kind has one: an http job's
    /// status, a sql job's rows) and `parent_run_id` the run.
    pub(super) fn after_success(&mut self, run: &Run, def: &crate::config::JobDef) {
        if let Some(job) = run.job.as_deref() {
            self.start_joins(job, run.id);
        }
        let Some(target) = def.on_success.as_deref() else {
            return;
        };
        let what = run.job.as_deref().unwrap_or("(submitted)");
        let args = serde_json::json!({
            "job": run.job,
            "run_id": run.id.to_string(),
            "state": run.state.as_str(),
            "result": run.result,
        });
        let new = NewRun {
            parent: Some(run.id),
            ..NewRun::new(Trigger::OnSuccess, Some(args))
        };
        match self.start_run(target, new) {
            Ok(id) => log::info!(
                "job {what}: run {} succeeded; started on_success job {target} as run {id}",
                run.id
            ),
            Err(e) => log::warn!(
                "job {what}: run {} succeeded; on_success job {target} not started: {e}",
                run.id
            ),
        }
    }

    /// Run `id` of `job` succeeded: starts the jobs whose `after` join it
    /// completes (`trigger = "after"`, args `{runs: {JOB: RUN_ID, ...}}`,
    /// `parent_run_id` this run).
    fn start_joins(&mut self, job: &str, id: RunId) {
        let ready = self.shared.core.lock().join_succeeded(job, id);
        for join in ready {
            let runs: serde_json::Map<String, Value> = join
                .runs
                .iter()
                .map(|(j, r)| (j.clone(), Value::String(r.to_string())))
                .collect();
            let args = serde_json::json!({ "runs": runs });
            let new = NewRun {
                parent: Some(id),
                ..NewRun::new(Trigger::After, Some(args))
            };
            match self.start_run(&join.job, new) {
                Ok(started) => log::info!(
                    "job {}: every job of its `after` succeeded (the last: {job}, run {id}); run {started}",
                    join.job
                ),
                Err(e) => log::warn!(
                    "job {}: every job of its `after` succeeded, but its run was not started: {e}",
                    join.job
                ),
            }
        }
    }
}
