//! Notifications: the `[[notify]]` sinks (docs/notifications.md) told
//! about ended runs of the jobs that name them (`notify`, `notify_on`).
//! Not to be confused with `crate::notify`, systemd's `sd_notify`.
//!
//! The loop decides and queues; a thread of its own delivers:
//! - [`Notifier::run_ended`] (on the loop thread, for every ended run of a
//!   job with `notify`) asks [`policy`] whether the run makes a message,
//!   keeping each such job's last outcome (success, or failure with no
//!   retry left) for `notify_on = "change"`. That memory lives as long as
//!   the daemon, so a reload keeps it; after a restart it is read back
//!   from the job's history (the journal's, with `state_dir`), the first
//!   time a run of the job ends.
//! - A message ([`message`]) is pushed on a bounded [`queue`] (O(1); a
//!   full queue drops its oldest message), one per sink named.
//! - The `tickd-notify` thread ([`deliver`]) sends them with time limits
//!   and retries with backoff, so no sink, however slow or dead, ever
//!   holds a run or the loop. What became of each message is counted per
//!   sink ([`Counters`]: `tickd_notifications_total` in `/metrics`).
//!
//! One delivery thread keeps each sink's messages in order (a job's
//! "failed" before its "recovered"); a sink that does not answer delays
//! the others by its `timeout` per attempt, at most.
//!
//! Sinks and jobs' keys are live: a reload swaps the sink table
//! ([`Notifier::set_sinks`]); a message goes to the sinks of the table in
//! force when its run ends.

mod deliver;
pub mod message;
pub mod policy;
mod queue;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{JobDef, NotifySink};
use crate::jobs::cancel::CancelToken;
use crate::state::run::Run;
use message::Message;
use policy::Outcome;
use queue::{Item, Queue};

pub use deliver::BACKOFF;
pub use queue::{Counters, Fate, CAPACITY, RESULTS};

/// The loop's side of notifications (see the module docs).
pub struct Notifier {
    sinks: BTreeMap<String, Arc<NotifySink>>,
    queue: Arc<Queue>,
    /// Cancels an exec sink's command at the end of shutdown.
    cancel: CancelToken,
    /// Disconnected when the delivery thread has ended.
    done: crossbeam_channel::Receiver<()>,
    /// The last outcome of each job with `notify` seen since the start.
    last: HashMap<String, Outcome>,
}

impl Notifier {
    /// Starts the delivery thread, with `sinks` in force.
    pub fn start(
        sinks: &BTreeMap<String, NotifySink>,
        counters: Counters,
    ) -> std::io::Result<Notifier> {
        let queue = Arc::new(Queue::new(counters));
        let cancel = CancelToken::new();
        let (done_tx, done) = crossbeam_channel::bounded::<()>(0);
        let (q, c) = (Arc::clone(&queue), cancel.clone());
        std::thread::Builder::new()
            .name("tickd-notify".into())
            .spawn(move || {
                let _done = done_tx;
                deliver::run(&q, &c);
            })?;
        let mut notifier = Notifier {
            sinks: BTreeMap::new(),
            queue,
            cancel,
            done,
            last: HashMap::new(),
        };
        notifier.set_sinks(sinks);
        Ok(notifier)
    }

    /// Puts `sinks` in force (a reload).
    pub fn set_sinks(&mut self, sinks: &BTreeMap<String, NotifySink>) {
        self.queue.counters.know(sinks.keys());
        self.sinks = sinks
            .iter()
            .map(|(name, sink)| match self.sinks.get(name) {
                Some(same) if **same == *sink => (name.clone(), Arc::clone(same)),
                _ => (name.clone(), Arc::new(sink.clone())),
            })
            .collect();
    }

    /// Whether `job` has a last outcome kept (it had `notify`).
    pub fn knows(&self, job: &str) -> bool {
        self.last.contains_key(job)
    }

    /// A run of `job` (defined by `def`) ended: queues its messages, if
    /// any. `retry_left`: a failed run will be tried again. `earlier`
    /// gives the job's outcome before this run, when this is the first
    /// run of it seen since the start (read from its history).
    pub fn run_ended(
        &mut self,
        job: &str,
        run: &Run,
        def: &JobDef,
        retry_left: bool,
        earlier: impl FnOnce() -> Option<Outcome>,
    ) {
        if def.notify.is_empty() {
            self.last.remove(job);
            return;
        }
        let now = policy::outcome(run.state, retry_left);
        let last = match self.last.get(job) {
            Some(outcome) => Some(*outcome),
            None => earlier(),
        };
        let event = policy::decide(def.notify_on, run.state, now, last);
        if let Some(outcome) = now.or(last) {
            self.last.insert(job.to_string(), outcome);
        }
        let Some(event) = event else {
            return;
        };
        let message = Arc::new(Message::new(job, run, event));
        for name in &def.notify {
            match self.sinks.get(name) {
                Some(sink) => self.queue.push(Item {
                    sink: Arc::clone(sink),
                    message: Arc::clone(&message),
                    attempt: 1,
                    due: Instant::now(),
                }),
                // Only while a reload that removed the sink is applied.
                None => log::warn!("job {job}: notify names sink {name}, which no longer exists"),
            }
        }
    }

    /// Stops at shutdown: messages queued are still sent (no more
    /// retries) for up to `within`; after that a command running is
    /// killed and what is left is lost.
    pub fn stop(self, within: Duration) {
        self.queue.close();
        if let Err(crossbeam_channel::RecvTimeoutError::Timeout) = self.done.recv_timeout(within) {
            log::warn!(
                "notifications: not all sent within {} of shutdown; the rest are dropped",
                humantime::format_duration(within)
            );
            self.cancel.cancel_because("daemon shutting down");
        }
    }
}
