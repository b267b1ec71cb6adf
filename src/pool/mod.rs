//! A fixed pool of named worker threads fed by a bounded queue, watched by a
//! monitor thread that replaces any worker that dies.
//!
//! Why fixed: an operator sizes the pool (`daemon.workers`) for the machine,
//! and the pool must keep that size for the life of the daemon. A job that
//! panics is caught on its worker (`catch_unwind`) and reported as a failed
//! run; a worker thread that dies anyway (a panic outside the job, a bug in
//! the worker loop) is noticed by the monitor, which spawns a replacement at
//! once, so the pool never shrinks. See `README.md` in this folder for the
//! states and counters.
//!
//! The queue is bounded ([`queue`]): [`WorkerPool::submit`] gives the task
//! back when it is full, so the caller can answer "overloaded" without
//! losing the task. An idle worker sleeps on it without spinning.

mod monitor;
mod placement;
mod queue;
mod worker;

pub use placement::{release as release_cpu, CpuBeacon, Placement, HEAVY_ANSWER_BYTES, HEAVY_TASK};

use crossbeam_channel::{bounded, Receiver, Sender};
use queue::{PushError, Queue};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A unit of work for the pool.
pub trait Task: Send + 'static {
    /// What every task of the pool needs, handed to [`Task::run`] by its
    /// worker: given to the pool once at its start, so that no task
    /// carries its own reference (a reference count the loop raising and
    /// the workers lowering, task after task, is a cache line moving
    /// between CPUs each time: a herd of 100,000 runs felt it).
    type Env: Send + Sync + 'static;
    /// An identifier for logs and for reporting a lost task (tickd uses the run id).
    fn id(&self) -> u64;
    /// Does the work on a worker thread.
    fn run(self, env: &Self::Env);
}

/// Told about a task that did not finish normally: its id and what happened
/// (a panic message, or that its worker thread died). tickd records the run
/// as failed through it, so no run record is ever left `running`.
pub type LostTaskHook = Arc<dyn Fn(u64, &str) + Send + Sync>;

/// A periodic check the monitor runs while it waits for worker exits (the
/// daemon's is systemd's watchdog, `crate::notify::Watchdog`): the pool
/// knows nothing of what it checks.
pub trait Watch: Send {
    /// How often [`Watch::check`] must run.
    fn period(&self) -> Duration;
    /// Runs the check; `alive_workers` is the pool's live worker count.
    fn check(&mut self, alive_workers: usize);
}

/// What workers tell the monitor.
enum Event {
    /// Worker `index` has ended; `died` is true when it ended by panicking.
    Exited { index: usize, died: bool },
}

/// What travels on the queue.
enum Message<T> {
    Task(T),
    /// Test hook: the receiving worker dies outside `catch_unwind`.
    Die,
}

/// Counters shared by the workers, the monitor and status readers.
#[derive(Debug, Default)]
struct Counters {
    alive: AtomicUsize,
    busy: AtomicUsize,
    respawned: AtomicU64,
    stopping: AtomicBool,
}

/// A snapshot of the pool for `status` and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStats {
    /// The fixed size the pool keeps.
    pub configured: usize,
    /// Worker threads currently alive.
    pub alive: usize,
    /// Workers running a task right now.
    pub busy: usize,
    /// Workers spawned to replace dead ones since start.
    pub respawned: u64,
    /// Tasks waiting in the queue.
    pub queue_depth: usize,
    /// The queue's bound.
    pub queue_capacity: usize,
    /// For a pool that follows the loop's CPU ([`Placement::FollowWhileShort`]):
    /// how many times a worker has moved to it.
    pub cpu_moves: Option<u64>,
}

/// A read-only handle on a pool's counters, for threads that report status
/// but do not own the pool. It keeps no sender, so it never holds the pool open.
#[derive(Clone)]
pub struct PoolProbe {
    counters: Arc<Counters>,
    depth: Arc<dyn Fn() -> usize + Send + Sync>,
    configured: usize,
    capacity: usize,
    placement: Placement,
}

impl PoolProbe {
    /// A snapshot of the counters.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            configured: self.configured,
            alive: self.counters.alive.load(Ordering::SeqCst),
            busy: self.counters.busy.load(Ordering::SeqCst),
            respawned: self.counters.respawned.load(Ordering::SeqCst),
            queue_depth: (self.depth)(),
            queue_capacity: self.capacity,
            cpu_moves: placement::cpu_moves(&self.placement),
        }
    }
}

impl std::fmt::Debug for PoolProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolProbe")
            .field("stats", &self.stats())
            .finish()
    }
}

/// Why a submit was refused; the task comes back so nothing is lost.
#[derive(Debug)]
pub enum SubmitError<T> {
    /// The queue is at capacity.
    Full(T),
    /// The pool is shutting down.
    Stopped(T),
}

/// Settings for [`WorkerPool::start`].
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// Number of worker threads, kept constant.
    pub workers: usize,
    /// Bound of the task queue.
    pub queue_capacity: usize,
    /// Thread name prefix (`tickd-worker-3`).
    pub name: String,
    /// Which scheduler slice the workers ask for.
    pub slice: SlicePolicy,
    /// Which CPUs the workers run on.
    pub placement: Placement,
}

/// Which scheduler slice a pool's workers ask for (see
/// [`crate::sys::mark_latency_sensitive`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlicePolicy {
    /// The kernel's default, always.
    Default,
    /// The shortest slice, always: for threads that only do short daemon
    /// work (request batches).
    Short,
    /// The shortest slice while waiting for a task, so that a queued task
    /// is picked up promptly on a busy machine, and the default while
    /// running one: a job's own work (an SQL transaction, an HTTP call)
    /// gets no special treatment. Costs four syscalls per task (a
    /// `sched_getattr` and a `sched_setattr` each way).
    ShortWhileIdle,
}

/// The running pool. Dropping it without [`WorkerPool::shutdown`] detaches the threads.
pub struct WorkerPool<T: Task> {
    /// The task queue; closed by shutdown (and drop), which ends the workers
    /// once it is drained.
    queue: Arc<Queue<Message<T>>>,
    config: PoolConfig,
    counters: Arc<Counters>,
    monitor: Option<JoinHandle<()>>,
    monitor_done: Receiver<()>,
}

/// Everything a worker thread needs; cloned into each (re)spawned worker.
struct WorkerContext<T: Task> {
    rx: Arc<Queue<Message<T>>>,
    counters: Arc<Counters>,
    lost: LostTaskHook,
    events: Sender<Event>,
    name: String,
    slice: SlicePolicy,
    placement: Placement,
    env: Arc<T::Env>,
}

impl<T: Task> Clone for WorkerContext<T> {
    fn clone(&self) -> Self {
        WorkerContext {
            rx: Arc::clone(&self.rx),
            counters: Arc::clone(&self.counters),
            lost: Arc::clone(&self.lost),
            events: self.events.clone(),
            name: self.name.clone(),
            slice: self.slice,
            placement: self.placement.clone(),
            env: Arc::clone(&self.env),
        }
    }
}

/// No periodic check: [`WorkerPool::start`]'s `Watch`.
enum NoWatch {}

impl Watch for NoWatch {
    fn period(&self) -> Duration {
        match *self {}
    }
    fn check(&mut self, _: usize) {
        match *self {}
    }
}

impl<T: Task> WorkerPool<T> {
    /// Starts the workers and the monitor, and returns once every worker has
    /// started (or fails, stopping the ones already started).
    pub fn start(config: PoolConfig, lost: LostTaskHook) -> std::io::Result<Self>
    where
        T::Env: Default,
    {
        Self::start_watched(config, lost, None::<NoWatch>, Arc::default())
    }

    /// Like [`WorkerPool::start`], with the monitor also running `watch`
    /// every [`Watch::period`] (the daemon passes systemd's watchdog), and
    /// `env` for the tasks.
    pub fn start_watched(
        config: PoolConfig,
        lost: LostTaskHook,
        watch: Option<impl Watch + 'static>,
        env: Arc<T::Env>,
    ) -> std::io::Result<Self> {
        let watchdog = watch.map(|w| Box::new(w) as Box<dyn Watch>);
        let queue = Arc::new(Queue::new(config.queue_capacity));
        let (events_tx, events_rx) = crossbeam_channel::unbounded();
        let counters = Arc::new(Counters::default());
        let ctx = WorkerContext {
            rx: Arc::clone(&queue),
            counters: Arc::clone(&counters),
            lost,
            events: events_tx,
            name: config.name.clone(),
            slice: config.slice,
            placement: config.placement.clone(),
            env,
        };
        let mut handles = Vec::with_capacity(config.workers);
        for index in 0..config.workers {
            match worker::spawn(index, ctx.clone()) {
                Ok(h) => handles.push(h),
                Err(e) => {
                    counters.stopping.store(true, Ordering::SeqCst);
                    queue.close();
                    for h in handles {
                        let _ = h.join();
                    }
                    return Err(e);
                }
            }
        }
        let (done_tx, monitor_done) = bounded(1);
        let monitor = monitor::spawn(ctx, events_rx, handles, done_tx, watchdog)?;
        Ok(WorkerPool {
            queue,
            config,
            counters,
            monitor: Some(monitor),
            monitor_done,
        })
    }

    /// Queues a task without blocking; gives it back when the queue is full.
    pub fn submit(&self, task: T) -> Result<(), SubmitError<T>> {
        self.queue.try_push(Message::Task(task)).map_err(task_back)
    }

    /// Queues a task like [`WorkerPool::submit`] but wakes no worker yet:
    /// the caller wakes them with [`WorkerPool::wake`] once it has queued
    /// everything it has. For the event loop firing several timers in one
    /// turn: a worker woken by the first task can take the loop's CPU
    /// before the loop has queued the others, and every task queued after
    /// that starts late.
    pub fn submit_quiet(&self, task: T) -> Result<(), SubmitError<T>> {
        self.queue
            .try_push_quiet(Message::Task(task))
            .map_err(task_back)
    }

    /// [`WorkerPool::submit_quiet`] of every task of `tasks`, in order,
    /// under one hold of the queue's lock; the tasks refused come back,
    /// each with the reason.
    pub fn submit_quiet_all(&self, tasks: impl IntoIterator<Item = T>) -> Vec<SubmitError<T>> {
        let refused = self
            .queue
            .push_quiet_all(tasks.into_iter().map(Message::Task));
        refused.into_iter().map(task_back).collect()
    }

    /// Wakes up to `n` idle workers for tasks queued by
    /// [`WorkerPool::submit_quiet`].
    pub fn wake(&self, n: usize) {
        self.queue.wake(n);
    }

    /// Test hook: makes one worker thread die outside `catch_unwind`, as a
    /// bug in the worker loop would. Returns false when the queue is full.
    pub fn kill_one_worker(&self) -> bool {
        self.queue.try_push(Message::Die).is_ok()
    }

    /// A handle other threads can use to read the counters.
    pub fn probe(&self) -> PoolProbe {
        let queue = Arc::clone(&self.queue);
        PoolProbe {
            counters: Arc::clone(&self.counters),
            depth: Arc::new(move || queue.len()),
            configured: self.config.workers,
            capacity: self.config.queue_capacity,
            placement: self.config.placement.clone(),
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            configured: self.config.workers,
            alive: self.counters.alive.load(Ordering::SeqCst),
            busy: self.counters.busy.load(Ordering::SeqCst),
            respawned: self.counters.respawned.load(Ordering::SeqCst),
            queue_depth: self.queue.len(),
            queue_capacity: self.config.queue_capacity,
            cpu_moves: placement::cpu_moves(&self.config.placement),
        }
    }

    /// Stops taking tasks, lets the workers finish what is queued, and waits
    /// up to `timeout` for every thread to exit. Returns false on time-out
    /// (the threads are then left to die with the process).
    pub fn shutdown(mut self, timeout: Duration) -> bool {
        self.counters.stopping.store(true, Ordering::SeqCst);
        self.queue.close();
        let finished = self.monitor_done.recv_timeout(timeout).is_ok();
        if finished {
            if let Some(m) = self.monitor.take() {
                let _ = m.join();
            }
        }
        finished
    }
}

/// The task of a refused push, as the submitter's error.
fn task_back<T>(e: PushError<Message<T>>) -> SubmitError<T> {
    match e {
        PushError::Full(Message::Task(t)) => SubmitError::Full(t),
        PushError::Closed(Message::Task(t)) => SubmitError::Stopped(t),
        // Only `kill_one_worker` sends `Die`, and it does not come here.
        PushError::Full(Message::Die) | PushError::Closed(Message::Die) => {
            unreachable!("submit only sends tasks")
        }
    }
}

impl<T: Task> Drop for WorkerPool<T> {
    /// Closing the queue lets detached workers finish what is queued and
    /// exit, as they do at shutdown.
    fn drop(&mut self) {
        self.queue.close();
    }
}

#[cfg(test)]
mod tests;
