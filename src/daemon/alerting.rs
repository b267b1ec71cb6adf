//! The loop's glue to notifications ([`crate::alerts`]): every ended run of
//! a job with `notify` is handed to the [`crate::alerts::Notifier`], with
//! whether a retry follows and, the first time a job is seen, its last
//! outcome read from its history (which the journal restores at a
//! restart, so `notify_on = "change"` does not announce a failure again).

use std::sync::Arc;
use std::time::Duration;

use super::rules::{self, AfterEnd};
use super::Daemon;
use crate::alerts::policy::{self, Outcome};
use crate::config::JobDef;
use crate::state::run::{Run, RunId};

/// How long the last notifications get to go out at shutdown.
pub(super) const NOTIFY_FLUSH: Duration = Duration::from_secs(2);

impl Daemon {
    /// A run ended; `def` is the definition it ran with, when known.
    pub(super) fn notify_run_ended(&mut self, run: &Run, def: Option<&Arc<JobDef>>) {
        let Some(job) = run.job.as_deref() else {
            return;
        };
        let def = match def {
            Some(def) => Arc::clone(def),
            None => match self.shared.core.lock().job(job) {
                Some(entry) => Arc::clone(&entry.def),
                None => return,
            },
        };
        if def.notify.is_empty() && !self.alerts.knows(job) {
            return;
        }
        let retry_left = !self.stopping()
            && matches!(
                rules::after_end(run.state, run.attempt, &def),
                AfterEnd::Retry { .. }
            );
        let shared = &self.shared;
        self.alerts.run_ended(job, run, &def, retry_left, || {
            earlier_outcome(shared, job, run.id)
        });
    }
}

/// The outcome of the newest run of `job` before run `this` that has one.
fn earlier_outcome(shared: &super::Shared, job: &str, this: RunId) -> Option<Outcome> {
    let core = shared.core.lock();
    let entry = core.job(job)?;
    let found = entry
        .history()
        .filter(|id| *id != this)
        .find_map(|id| core.run(id).and_then(|r| policy::outcome(r.state, false)));
    found
}
