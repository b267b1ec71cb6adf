//! The monitor thread: the one place that knows when a worker has died and
//! replaces it.
//!
//! It blocks on a channel of worker exit events (no polling), so a
//! replacement is spawned within microseconds of the death. During shutdown
//! it stops respawning and reports once every worker has exited.

use super::{worker, Event, Task, Watch, WorkerContext};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};
use std::time::Instant;

/// Starts the monitor with the handles of the already running workers.
pub(super) fn spawn<T: Task>(
    ctx: WorkerContext<T>,
    events: Receiver<Event>,
    handles: Vec<JoinHandle<()>>,
    done: Sender<()>,
    watchdog: Option<Box<dyn Watch>>,
) -> std::io::Result<JoinHandle<()>> {
    let name = format!("{}-monitor", ctx.name);
    thread::Builder::new()
        .name(name)
        .spawn(move || watch(ctx, events, handles, done, watchdog))
}

/// The next exit event; with a watchdog, also runs its checks while waiting.
/// `alive` gives the live workers, or `None` once the pool is stopping
/// (systemd no longer watches a stopping service, and workers are meant to
/// exit then).
fn next_event(
    events: &Receiver<Event>,
    watchdog: &mut Option<(Box<dyn Watch>, Instant)>,
    alive: &dyn Fn() -> Option<usize>,
) -> Option<Event> {
    let Some((dog, next_check)) = watchdog else {
        return events.recv().ok();
    };
    loop {
        match events.recv_deadline(*next_check) {
            Ok(event) => return Some(event),
            Err(RecvTimeoutError::Disconnected) => return None,
            Err(RecvTimeoutError::Timeout) => {
                if let Some(alive) = alive() {
                    dog.check(alive);
                }
                *next_check = Instant::now() + dog.period();
            }
        }
    }
}

fn watch<T: Task>(
    ctx: WorkerContext<T>,
    events: Receiver<Event>,
    handles: Vec<JoinHandle<()>>,
    done: Sender<()>,
    watchdog: Option<Box<dyn Watch>>,
) {
    let mut watchdog = watchdog.map(|dog| (dog, Instant::now()));
    let counters = std::sync::Arc::clone(&ctx.counters);
    let alive = move || {
        (!counters.stopping.load(Ordering::SeqCst)).then(|| counters.alive.load(Ordering::SeqCst))
    };
    let mut live: HashMap<usize, JoinHandle<()>> = handles.into_iter().enumerate().collect();
    // The monitor's own context keeps a sender to `events` alive, so recv
    // only fails if something is badly wrong; exit then.
    while !live.is_empty() {
        let Some(Event::Exited { index, died }) = next_event(&events, &mut watchdog, &alive) else {
            break;
        };
        if let Some(handle) = live.remove(&index) {
            let _ = handle.join();
        }
        let stopping = ctx.counters.stopping.load(Ordering::SeqCst);
        if stopping && !died {
            log::debug!("worker {index} exited");
            continue;
        }
        if stopping {
            log::warn!("worker {index} died during shutdown; not replaced");
            continue;
        }
        log::error!("worker {index} died; spawning a replacement");
        // Fail point `<pool name>.respawn` (`tickd-worker.respawn`): with
        // `sleep(N)` the replacement comes N ms late, so a test can see the
        // pool short of workers (health `degraded`, `/healthz` 503).
        fail::fail_point!(&format!("{}.respawn", ctx.name));
        match worker::spawn(index, ctx.clone()) {
            Ok(h) => {
                ctx.counters.respawned.fetch_add(1, Ordering::SeqCst);
                live.insert(index, h);
            }
            Err(e) => {
                // Without a thread there is nothing to retry with right now;
                // the pool runs one short and status shows it.
                log::error!("could not respawn worker {index}: {e}");
            }
        }
    }
    let _ = done.send(());
}
