//! Unit tests of the pool with a toy task type.

use super::*;
use crossbeam_channel::unbounded;
use parking_lot::Mutex;
use std::time::Instant;

struct Toy {
    id: u64,
    done: Sender<u64>,
    panic: bool,
}

impl Task for Toy {
    fn id(&self) -> u64 {
        self.id
    }
    type Env = ();
    fn run(self, _: &()) {
        if self.panic {
            panic!("toy {} panics", self.id);
        }
        let _ = self.done.send(self.id);
    }
}

/// Lost-task reports collected by a test pool.
type LostLog = Arc<Mutex<Vec<(u64, String)>>>;

fn pool(workers: usize, cap: usize) -> (WorkerPool<Toy>, LostLog) {
    let lost = Arc::new(Mutex::new(Vec::new()));
    let l2 = Arc::clone(&lost);
    let hook: LostTaskHook = Arc::new(move |id, why| l2.lock().push((id, why.to_string())));
    let p = WorkerPool::start(
        PoolConfig {
            workers,
            queue_capacity: cap,
            name: "test-worker".into(),
            slice: SlicePolicy::Default,
            placement: Placement::Anywhere,
        },
        hook,
    )
    .expect("pool starts");
    (p, lost)
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

#[test]
fn runs_tasks_and_counts_workers() {
    let (p, _) = pool(3, 16);
    // Counted as soon as start returns: a health check right after start-up
    // must not see the pool short.
    assert_eq!(p.stats().alive, 3);
    let (tx, rx) = unbounded();
    for id in 0..10 {
        assert!(p
            .submit(Toy {
                id,
                done: tx.clone(),
                panic: false
            })
            .is_ok());
    }
    let mut got: Vec<u64> = (0..10)
        .map(|_| rx.recv_timeout(Duration::from_secs(5)).expect("done"))
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    assert!(p.shutdown(Duration::from_secs(5)));
}

#[test]
fn quietly_queued_tasks_all_run_once_the_workers_are_woken() {
    let (p, _) = pool(3, 16);
    let (tx, rx) = unbounded();
    for id in 0..6 {
        assert!(p
            .submit_quiet(Toy {
                id,
                done: tx.clone(),
                panic: false
            })
            .is_ok());
    }
    p.wake(6);
    let mut got: Vec<u64> = (0..6)
        .map(|_| rx.recv_timeout(Duration::from_secs(5)).expect("done"))
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..6).collect::<Vec<_>>());
    assert!(p.shutdown(Duration::from_secs(5)));
}

#[test]
fn panicking_task_is_reported_and_worker_survives() {
    let (p, lost) = pool(1, 4);
    let (tx, rx) = unbounded();
    assert!(p
        .submit(Toy {
            id: 7,
            done: tx.clone(),
            panic: true
        })
        .is_ok());
    assert!(p
        .submit(Toy {
            id: 8,
            done: tx,
            panic: false
        })
        .is_ok());
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).ok(), Some(8));
    let lost = lost.lock().clone();
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].0, 7);
    assert!(lost[0].1.contains("toy 7 panics"), "{lost:?}");
    assert_eq!(p.stats().respawned, 0, "a caught panic kills no thread");
    assert!(p.shutdown(Duration::from_secs(5)));
}

#[test]
fn dead_worker_is_replaced_and_pool_keeps_size() {
    let (p, _) = pool(2, 4);
    wait_until("workers alive", || p.stats().alive == 2);
    assert!(p.kill_one_worker());
    wait_until("respawn", || {
        p.stats().respawned == 1 && p.stats().alive == 2
    });
    let (tx, rx) = unbounded();
    for id in 0..4 {
        assert!(p
            .submit(Toy {
                id,
                done: tx.clone(),
                panic: false
            })
            .is_ok());
    }
    for _ in 0..4 {
        assert!(rx.recv_timeout(Duration::from_secs(5)).is_ok());
    }
    assert!(p.shutdown(Duration::from_secs(5)));
}

#[test]
fn full_queue_gives_the_task_back() {
    let (block_tx, block_rx) = crossbeam_channel::bounded::<()>(0);
    // A task that holds the only worker until we let it go.
    struct Hold(crossbeam_channel::Receiver<()>);
    impl Task for Hold {
        fn id(&self) -> u64 {
            0
        }
        type Env = ();
        fn run(self, _: &()) {
            let _ = self.0.recv();
        }
    }
    let lost: LostTaskHook = Arc::new(|_, _| {});
    let hp = WorkerPool::start(
        PoolConfig {
            workers: 1,
            queue_capacity: 1,
            name: "hold".into(),
            slice: SlicePolicy::Default,
            placement: Placement::Anywhere,
        },
        lost,
    )
    .expect("start");
    assert!(hp.submit(Hold(block_rx.clone())).is_ok());
    wait_until("busy", || hp.stats().busy == 1);
    assert!(hp.submit(Hold(block_rx.clone())).is_ok());
    match hp.submit(Hold(block_rx)) {
        Err(SubmitError::Full(_)) => {}
        _ => panic!("third submit should be refused as full"),
    }
    assert_eq!(hp.stats().queue_depth, 1);
    drop(block_tx);
    assert!(hp.shutdown(Duration::from_secs(5)));
}

/// Reports where it ran: the CPU, and how many CPUs it was allowed.
struct WhereAmI {
    id: u64,
    spin: Duration,
    done: Sender<(usize, usize)>,
}

impl Task for WhereAmI {
    fn id(&self) -> u64 {
        self.id
    }
    type Env = ();
    fn run(self, _: &()) {
        let start = Instant::now();
        while start.elapsed() < self.spin {
            std::hint::spin_loop();
        }
        let allowed = crate::sys::allowed_cpus().map_or(0, |m| m.count());
        let _ = self.done.send((crate::sys::current_cpu(), allowed));
    }
}

#[test]
fn a_following_pool_runs_short_tasks_on_the_leaders_cpu_and_spreads_heavy_ones() {
    let Ok(home) = crate::sys::allowed_cpus() else {
        return;
    };
    if home.count() < 2 {
        eprintln!("skipped: fewer than two CPUs allowed");
        return;
    }
    // A task counts as heavy from 50 ms on, so that a short one that waits
    // for a CPU on a busy test machine is not taken for heavy.
    let heavy = Duration::from_millis(50);
    let beacon = CpuBeacon::with_heavy_task(heavy);
    let hook: LostTaskHook = Arc::new(|id, why| panic!("task {id} lost: {why}"));
    let p = WorkerPool::start(
        PoolConfig {
            // One worker, so the task after a heavy one is surely its.
            workers: 1,
            queue_capacity: 16,
            name: "test-follower".into(),
            slice: SlicePolicy::Default,
            placement: Placement::FollowWhileShort(Arc::clone(&beacon)),
        },
        hook,
    )
    .expect("pool starts");
    let (tx, rx) = unbounded();
    let submit = |id: u64, spin: Duration| {
        let task = WhereAmI {
            id,
            spin,
            done: tx.clone(),
        };
        assert!(p.submit(task).is_ok(), "queue has room");
        rx.recv_timeout(Duration::from_secs(5)).expect("task ran")
    };
    // The leader (this thread) marks each CPU it may run on in turn.
    let cpus: Vec<usize> = (0..1024).filter(|&c| home.contains(c)).take(2).collect();
    for (i, &cpu) in cpus.iter().enumerate() {
        beacon.cpu_for_test(cpu);
        for k in 0..4 {
            let (ran_on, allowed) = submit((i * 10 + k) as u64, Duration::ZERO);
            assert_eq!(
                (ran_on, allowed),
                (cpu, 1),
                "short task {k} follows to CPU {cpu}"
            );
        }
    }
    assert!(p.stats().cpu_moves.is_some_and(|n| n >= 2));
    // After a heavy task, the next may run anywhere the worker could at start.
    submit(100, heavy + Duration::from_millis(5));
    let (_, allowed) = submit(200, Duration::ZERO);
    assert_eq!(
        allowed,
        home.count(),
        "after heavy tasks, back on every CPU"
    );
    assert!(p.shutdown(Duration::from_secs(5)));
}

#[test]
fn a_pool_placed_anywhere_reports_no_cpu_moves() {
    let (p, _) = pool(1, 4);
    assert_eq!(p.stats().cpu_moves, None);
    assert_eq!(p.probe().stats().cpu_moves, None);
    assert!(p.shutdown(Duration::from_secs(5)));
}
