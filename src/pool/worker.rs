//! One worker thread: take a task, run it under `catch_unwind`, repeat.
//!
//! The thread holds an [`ExitGuard`] for its whole life. Whatever ends the
//! thread (the queue closing at shutdown, or a panic outside a task), the
//! guard's `Drop` fixes the counters, reports a task that was in flight as
//! lost, and tells the monitor, which decides whether to respawn.

use super::{Event, Message, SlicePolicy, Task, WorkerContext};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};
use std::time::Instant;

/// Starts worker `index`.
pub(super) fn spawn<T: Task>(
    index: usize,
    ctx: WorkerContext<T>,
) -> std::io::Result<JoinHandle<()>> {
    // Counted alive from here, not from inside the new thread: once the
    // pool (or the monitor) has spawned a worker, `status` and `/healthz`
    // must not report it missing while the thread is still being scheduled.
    // Its exit guard takes it off again, however it ends.
    let counters = std::sync::Arc::clone(&ctx.counters);
    counters.alive.fetch_add(1, Ordering::SeqCst);
    let spawned = thread::Builder::new()
        .name(format!("{}-{index}", ctx.name))
        .spawn(move || work(index, ctx));
    if spawned.is_err() {
        counters.alive.fetch_sub(1, Ordering::SeqCst);
    }
    spawned
}

/// Reports the end of a worker thread, however it ends.
struct ExitGuard<'a, T: Task> {
    index: usize,
    ctx: &'a WorkerContext<T>,
    /// The task being run, if any: reported lost if the thread dies with it.
    current: Option<u64>,
}

impl<T: Task> Drop for ExitGuard<'_, T> {
    fn drop(&mut self) {
        let died = thread::panicking();
        if let Some(id) = self.current.take() {
            self.ctx.counters.busy.fetch_sub(1, Ordering::SeqCst);
            (self.ctx.lost)(id, "worker thread died while running it");
        }
        self.ctx.counters.alive.fetch_sub(1, Ordering::SeqCst);
        // The monitor may already be gone at the very end of shutdown.
        let _ = self.ctx.events.send(Event::Exited {
            index: self.index,
            died,
        });
    }
}

fn work<T: Task>(index: usize, ctx: WorkerContext<T>) {
    // A task is waiting for this thread whenever it wakes: see
    // `mark_latency_sensitive`.
    let idle_only = ctx.slice == SlicePolicy::ShortWhileIdle;
    if ctx.slice != SlicePolicy::Default {
        crate::sys::mark_latency_sensitive();
    }
    super::placement::start(&ctx.placement);
    let timed = super::placement::following();
    let mut guard = ExitGuard {
        index,
        ctx: &ctx,
        current: None,
    };
    // Ends when the pool drops its sender and the queue is empty.
    while let Ok(msg) = ctx.rx.recv() {
        let task = match msg {
            Message::Task(t) => t,
            Message::Die => panic!("worker {index} told to die (test hook)"),
        };
        if idle_only {
            crate::sys::unmark_latency_sensitive();
        }
        if timed {
            super::placement::before_task();
        }
        let started = timed.then(Instant::now);
        let id = task.id();
        guard.current = Some(id);
        ctx.counters.busy.fetch_add(1, Ordering::SeqCst);
        // Fail point `<pool name>.die` (`tickd-worker.die`): with `panic`,
        // the thread dies holding the task, outside `catch_unwind`.
        fail::fail_point!(&format!("{}.die", ctx.name));
        let env = &*ctx.env;
        let result = catch_unwind(AssertUnwindSafe(move || task.run(env)));
        ctx.counters.busy.fetch_sub(1, Ordering::SeqCst);
        guard.current = None;
        if let Some(t) = started {
            super::placement::after_task(t.elapsed());
        }
        if idle_only {
            crate::sys::mark_latency_sensitive();
        }
        if let Err(payload) = result {
            let msg = panic_message(payload.as_ref());
            log::error!("worker {index}: task {id} panicked: {msg}");
            (ctx.lost)(id, &format!("job panicked: {msg}"));
        }
    }
}

/// The text of a panic payload, for logs and run errors.
pub(super) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
