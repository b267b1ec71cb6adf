//! Cluster mode on the loop (docs/cluster.md): due occurrences go to
//! Redis as claims instead of straight to the pool, and what the cluster
//! threads report ([`Notice`]) is applied here: won claims run, claims of
//! dead nodes taken over run, interrupted runs of dead nodes are retried
//! under their job's `retries`, runs for any node start under the id the
//! receiving node chose, and API jobs changed on other nodes are applied.
//! The loop never waits on Redis: it only sends and hears back.

use super::dispatch::NewRun;
use super::{Daemon, Error};
use crate::cluster::feed::WorkItem;
use crate::cluster::{ApiChange, Notice, Verdict};
use crate::config::{CatchUp, Overlap};
use crate::state::run::{Run, RunId, Trigger};
use crate::time::Timestamp;
use std::sync::Arc;

impl Daemon {
    /// Whether due occurrences are claimed in Redis (cluster mode).
    pub(super) fn claims(&self) -> bool {
        self.shared.cluster.is_some()
    }

    /// Asks Redis for one occurrence of `job` due at `at` (cluster mode);
    /// the answer comes back as [`Notice::Claimed`].
    pub(super) fn claim_occurrence(&self, job: &Arc<str>, at: Timestamp, overlap: Overlap) {
        if let Some(c) = &self.shared.cluster {
            c.claim(
                Arc::clone(job),
                at.as_millisecond(),
                overlap == Overlap::Skip,
            );
        }
    }

    /// A run ended: its record to Redis, and a run for any node is
    /// acknowledged.
    pub(super) fn cluster_finished(&mut self, run: &Run) {
        let Some(c) = &self.shared.cluster else {
            return;
        };
        c.record(run, false);
        if let Some(entry) = self.work.remove(&run.id) {
            c.ack(&entry);
        }
    }

    /// Applies news from the cluster threads.
    pub fn on_cluster(&mut self, notice: Notice) {
        match notice {
            Notice::Claimed {
                job,
                due_ms,
                verdict,
            } => self.on_claimed(&job, due_ms, verdict),
            Notice::TakenOver {
                job,
                due_ms,
                run_id,
            } => {
                let started = self.start_claimed(&job, due_ms, run_id);
                if let Some(c) = &self.shared.cluster {
                    c.claim_done(Arc::from(job.as_str()), due_ms, started);
                }
            }
            Notice::Interrupted {
                job,
                attempt,
                run_id,
            } => self.retry_interrupted(&job, attempt, run_id),
            Notice::Work(item) => self.on_work(item),
            Notice::ApiJobs(changes) => self.on_api_jobs(changes),
            Notice::Link(true) => self.catch_up_missed(),
            // The link's state is read from the cluster (status, health);
            // the server answers the requests waiting for a remote run.
            Notice::Link(false) | Notice::RemoteFinished(_) => {}
        }
    }

    fn on_claimed(&mut self, job: &Arc<str>, due_ms: i64, verdict: Verdict) {
        match verdict {
            Verdict::Won => self.run_claimed(job, due_ms),
            Verdict::Down
                if self
                    .shared
                    .cluster
                    .as_ref()
                    .is_some_and(|c| c.runs_when_down()) =>
            {
                log::info!("job {job}: Redis unreachable; running the occurrence due at {due_ms} ms here (on_redis_down = run-local)");
                let _ = self.start_claimed(job, due_ms, None);
            }
            Verdict::Down => {
                self.count_skip(job);
                self.note_missed(job, due_ms);
                log::warn!("job {job}: occurrence due at {due_ms} ms not run: Redis unreachable (on_redis_down = pause)");
            }
            Verdict::Busy => {
                self.count_skip(job);
                log::info!("job {job}: scheduled run skipped: a run of it is still running on another node (overlap = skip)");
            }
            Verdict::Lost | Verdict::Stale => {
                log::debug!("job {job}: occurrence due at {due_ms} ms claimed by another node");
            }
        }
    }

    /// Runs a claimed occurrence, then lets go of its pending mark.
    fn run_claimed(&mut self, job: &str, due_ms: i64) {
        let started = self.start_claimed(job, due_ms, None);
        if let Some(c) = &self.shared.cluster {
            c.claim_done(Arc::from(job), due_ms, started);
        }
    }

    /// Starts the run of a claimed occurrence; false if it was refused.
    fn start_claimed(&mut self, job: &str, due_ms: i64, preset_id: Option<RunId>) -> bool {
        let Ok(at) = Timestamp::from_millisecond(due_ms) else {
            return false;
        };
        let new = NewRun {
            scheduled_at: Some(at),
            preset_id,
            ..NewRun::new(Trigger::Schedule, None)
        };
        match self.start_run(job, new) {
            Ok(id) => {
                log::debug!("job {job}: scheduled run {id} queued (claimed)");
                true
            }
            Err(e) => {
                let level = if e.is_conflict() {
                    log::Level::Info
                } else {
                    log::Level::Warn
                };
                log::log!(level, "job {job}: scheduled run skipped: {e}");
                false
            }
        }
    }

    /// Keeps an occurrence missed while Redis was away, as the job's
    /// `catch_up` asks: none, the latest, or up to `catch_up_limit`.
    fn note_missed(&mut self, job: &Arc<str>, due_ms: i64) {
        let (policy, limit) = match self.shared.core.lock().job(job) {
            Some(e) => (e.def.catch_up, e.def.catch_up_limit as usize),
            None => return,
        };
        let keep = match policy {
            CatchUp::None => return,
            CatchUp::Once => 1,
            CatchUp::All => limit.max(1),
        };
        let list = self.missed.entry(Arc::clone(job)).or_default();
        list.push(due_ms);
        if list.len() > keep {
            let extra = list.len() - keep;
            list.drain(..extra);
        }
    }

    /// Redis is back: the occurrences missed meanwhile are claimed (one
    /// node runs each, as for any occurrence).
    fn catch_up_missed(&mut self) {
        let missed = std::mem::take(&mut self.missed);
        let core = self.shared.core.lock();
        let mut n = 0;
        for (job, dues) in missed {
            let Some(entry) = core.job(&job) else {
                continue;
            };
            let overlap = entry.def.overlap;
            for due_ms in dues {
                if let Ok(at) = Timestamp::from_millisecond(due_ms) {
                    self.claim_occurrence(&job, at, overlap);
                    n += 1;
                }
            }
        }
        if n > 0 {
            log::info!(
                "cluster: Redis is back; claiming {n} occurrence(s) missed meanwhile (catch_up)"
            );
        }
    }

    fn count_skip(&self, job: &str) {
        if let Some(entry) = self.shared.core.lock().job_mut(job) {
            entry.skipped_total += 1;
        }
    }

    /// A run of a dead node, marked interrupted by this node: the next
    /// attempt, if the job's `retries` allow one.
    fn retry_interrupted(&mut self, job: &str, attempt: u32, run_id: RunId) {
        let retries = match self.shared.core.lock().job(job) {
            Some(e) => e.def.retries,
            None => return,
        };
        if attempt > retries {
            return;
        }
        let new = NewRun {
            attempt: attempt + 1,
            ..NewRun::new(Trigger::Retry, None)
        };
        match self.start_run(job, new) {
            Ok(id) => log::warn!("job {job}: run {run_id} was interrupted on a dead node; attempt {} is run {id}", attempt + 1),
            Err(e) => log::warn!("job {job}: run {run_id} was interrupted on a dead node; its retry was refused: {e}"),
        }
    }

    /// A run for any node, taken from Redis: started here under its id if
    /// this node has the job and its own config allows it, else passed on.
    fn on_work(&mut self, item: WorkItem) {
        let Some(c) = self.shared.cluster.clone() else {
            return;
        };
        // A run for any node is work to be done: on a node already running
        // the job it waits behind that run (`overlap = "queue"`) rather
        // than being refused by `skip`.
        let new = NewRun {
            preset_id: Some(item.run_id),
            overlap: Some(Overlap::Queue),
            ..NewRun::new(Trigger::Manual, item.args.clone())
        };
        let started = match (&item.job, &item.adhoc) {
            (Some(name), _) => {
                let here = {
                    let core = self.shared.core.lock();
                    core.job(name).is_some() && !core.is_held(name)
                };
                if !here {
                    return c.pass_on(item);
                }
                self.start_run(name, new)
            }
            (None, Some(source)) => {
                if !self.shared.board.live.read().allow_submit {
                    return c.pass_on(item);
                }
                let parsed = match source.as_object() {
                    Some(map) => crate::config::parse_adhoc_job(map),
                    None => Err("the submitted job is not an object".to_string()),
                };
                match parsed {
                    Ok(def) => {
                        let new = NewRun {
                            trigger: Trigger::Submit,
                            ..new
                        };
                        self.start_adhoc(Arc::new(def), new, Some(source.clone()))
                    }
                    Err(e) => Err(Error::BadJob(e)),
                }
            }
            (None, None) => Err(Error::BadJob("a run for any node without a job".into())),
        };
        match started {
            Ok(id) => {
                log::info!(
                    "run {id} for any node (from node {}) started here",
                    item.origin
                );
                self.work.insert(id, item.stream_id);
            }
            Err(e) => c.fail_work(item, &e.to_string()),
        }
    }

    /// API jobs put or deleted on other nodes.
    fn on_api_jobs(&mut self, changes: Vec<ApiChange>) {
        for change in changes {
            match change {
                ApiChange::Put(source) => {
                    let Some(map) = source.as_object() else {
                        continue;
                    };
                    let def = match crate::config::parse_api_job(map) {
                        Ok(def) => def,
                        Err(e) => {
                            log::warn!("cluster: an API job from Redis is refused here: {e}");
                            continue;
                        }
                    };
                    let name = def.name.clone();
                    let same = {
                        let core = self.shared.core.lock();
                        let stored = core.api().source_of(&name);
                        stored.and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
                            == Some(source.clone())
                    };
                    if same {
                        continue;
                    }
                    if let Err(e) = self.put_job(def, map.clone()) {
                        log::warn!(
                            "cluster: API job {name} from another node not defined here: {e}"
                        );
                    }
                }
                ApiChange::Delete(name) => match self.delete_job(&name, false) {
                    Ok(_) | Err(Error::NoSuchJob(_)) => {}
                    Err(e) => log::warn!(
                        "cluster: API job {name} deleted on another node stays here: {e}"
                    ),
                },
            }
        }
    }

    /// At a restart with `state_dir`, in cluster mode: a run recovered as
    /// queued runs here only if no other node has dealt with it since
    /// this node's earlier process died (a survivor runs a dead node's
    /// scheduled runs that never started, under their ids).
    pub(super) fn adopt_in_cluster(&self, id: RunId) -> Result<(), String> {
        let Some(c) = &self.shared.cluster else {
            return Ok(());
        };
        let (attempt, job) = match self.shared.core.lock().run(id) {
            Some(r) => (r.attempt, r.job.clone().unwrap_or_default()),
            None => return Err("run not found".into()),
        };
        let value = format!("{} {attempt} {job}", c.boot);
        match c.reads.adopt(id, &c.config.node, &value) {
            Ok(true) => Ok(()),
            Ok(false) => {
                Err("another node of the cluster took it over while this one was down".into())
            }
            Err(e) => Err(format!(
                "Redis unreachable ({e}): not run, so that it cannot run twice in the cluster"
            )),
        }
    }

    /// At start, in cluster mode: the API jobs kept in Redis that this
    /// node lacks or holds in another version.
    pub(super) fn load_cluster_api_jobs(&mut self) {
        let Some(c) = self.shared.cluster.clone() else {
            return;
        };
        if !self.shared.board.live.read().allow_job_api {
            return;
        }
        match c.reads.api_jobs() {
            Ok(jobs) => {
                let n = jobs.len();
                self.on_api_jobs(jobs.into_iter().map(ApiChange::Put).collect());
                if n > 0 {
                    log::info!("cluster: {n} API job(s) read from Redis");
                }
            }
            Err(e) => log::warn!("cluster: API jobs not read from Redis at start: {e}"),
        }
    }
}
