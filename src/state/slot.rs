//! One job of the core, looked up once, and the runs created for it: what
//! the loop uses to fire a herd of schedules (100,000 due at the top of
//! the hour), where every look-up of a job by name (a walk down the name
//! tree, comparing names) counts.
//!
//! [`Core::job_slot`] finds the job; the [`JobSlot`] then gives its entry
//! and creates and dispatches its runs as [`Core::create_run`] and
//! [`Core::note_dispatched`] do, without looking the job up again.

use super::run::{Run, RunId, Trigger};
use super::{Core, JobEntry, JobSource};
use crate::time::Timestamp;
use std::ops::Bound;
use std::sync::Arc;

/// A job found in the core, with what creating its runs needs.
pub struct JobSlot<'a> {
    name: &'a Arc<str>,
    entry: &'a mut JobEntry,
    core: Rest<'a>,
}

/// The parts of the core besides the job table.
struct Rest<'a> {
    runs: &'a mut super::run::RunMap<Run>,
    last_id: &'a mut RunId,
    ids: super::ids::IdScheme,
    api_held: bool,
}

impl Core {
    /// Makes room for `n` more run records at once (a herd), rather than
    /// growing the table a doubling at a time while they come.
    pub fn reserve_runs(&mut self, n: usize) {
        self.runs.reserve(n);
    }

    /// The job `name` and the means to create its runs, with one look-up.
    pub fn job_slot(&mut self, name: &str) -> Option<JobSlot<'_>> {
        let Core {
            jobs,
            runs,
            last_id,
            ids,
            api,
            ..
        } = self;
        // `range_mut` is the look-up that gives the key along with the entry.
        let bounds = (Bound::Included(name), Bound::Included(name));
        let (name, entry) = jobs.range_mut::<str, _>(bounds).next()?;
        Some(JobSlot {
            name,
            entry,
            core: Rest {
                runs,
                last_id,
                ids: *ids,
                api_held: api.held(),
            },
        })
    }
}

impl JobSlot<'_> {
    /// The job's name, as the core keys it.
    pub fn name(&self) -> &Arc<str> {
        self.name
    }

    /// The job's entry.
    pub fn entry(&mut self) -> &mut JobEntry {
        self.entry
    }

    /// Whether the job is an API job held by `daemon.allow_job_api =
    /// false` ([`Core::is_held`]).
    pub fn is_held(&self) -> bool {
        self.core.api_held && self.entry.source == JobSource::Api
    }

    /// Creates a queued run of the job ([`Core::create_run`]).
    pub fn create_run(
        &mut self,
        trigger: Trigger,
        attempt: u32,
        scheduled_at: Option<Timestamp>,
    ) -> RunId {
        let id = super::ids::take(self.core.ids, self.core.last_id);
        let mut run = Run::queued(id, Some(self.name.to_string()), trigger, attempt);
        run.scheduled_at = scheduled_at;
        self.core.runs.insert(id, run);
        self.entry.log_mut().latest = Some(id);
        id
    }

    /// Counts a run of the job as handed to the pool
    /// ([`Core::note_dispatched`]).
    pub fn note_dispatched(&mut self) {
        self.entry.active += 1;
    }
}
