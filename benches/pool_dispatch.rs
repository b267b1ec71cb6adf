//! The worker pool's dispatch path vs. `rayon` spawn, measured in the same run.
//!
//! What is measured is the round trip the daemon makes for every run: the
//! event-loop thread (here the bench thread) submits a batch of K tasks, each
//! task sends its result on a crossbeam channel and calls `Waker::wake`, and
//! the loop thread sits in `Poll::poll` until it has drained all K results.
//! The tasks do no work of their own, so the figure is pure dispatch and
//! hand-back overhead, including waking parked threads (K = 1 is the idle
//! daemon's latency; K = 64 a burst of due jobs).
//!
//! Variants, each on a pool of the same size (2 and 4 threads):
//! * `pool_waker`: `WorkerPool::submit` → `Task::run` → channel + `Waker` →
//!   `poll`. This is the product's path.
//! * `rayon_waker`: the baseline — `ThreadPool::spawn` of a closure doing the
//!   same hand-back, collected the same way. `pool_waker / rayon_waker` is
//!   the pool's cost relative to rayon's.
//! * `rayon_recv` and `pool_recv`: the task only sends; the loop collects with
//!   blocking `recv`. Against the `_waker` rows this isolates what the
//!   `Waker` + `poll` hand-back costs.
//!
//! Times are reported per task: one criterion iteration is one batch of K
//! round trips, and its time is divided by K.
//!
//! Run: `cargo bench --bench pool_dispatch`
//! (quick look: `cargo bench --bench pool_dispatch -- --warm-up-time 1 --measurement-time 3`).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam_channel::{unbounded, Receiver, Sender};
use mio::{Events, Poll, Token, Waker};
use tickd::pool::{LostTaskHook, Placement, PoolConfig, SlicePolicy, Task, WorkerPool};

const THREADS: [usize; 2] = [2, 4];
const BATCHES: [u32; 2] = [1, 64];
const WAKER: Token = Token(0);

/// How finished tasks reach the loop thread.
#[derive(Clone, Copy)]
enum Collect {
    /// Channel send + `Waker::wake`; the loop blocks in `Poll::poll`.
    Waker,
    /// Channel send only; the loop blocks in `Receiver::recv`.
    Recv,
}

impl fmt::Display for Collect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Collect::Waker => "waker",
            Collect::Recv => "recv",
        })
    }
}

/// The workers' end of the hand-back path, shared by every task.
struct HandBack {
    tx: Sender<u64>,
    /// `None` for [`Collect::Recv`].
    waker: Option<Waker>,
}

impl HandBack {
    fn finish(&self, result: u64) {
        self.tx
            .send(result)
            .expect("the loop thread outlives the tasks");
        if let Some(w) = &self.waker {
            w.wake().expect("wake the loop");
        }
    }
}

/// The loop thread's end: the poller (if any) and the result channel.
struct Loop {
    hand: Arc<HandBack>,
    rx: Receiver<u64>,
    poll: Option<(Poll, Events)>,
}

impl Loop {
    fn new(collect: Collect) -> Self {
        let (tx, rx) = unbounded();
        let (poll, waker) = match collect {
            Collect::Waker => {
                let poll = Poll::new().expect("create a poller");
                let waker = Waker::new(poll.registry(), WAKER).expect("create a waker");
                (Some((poll, Events::with_capacity(64))), Some(waker))
            }
            Collect::Recv => (None, None),
        };
        Loop {
            hand: Arc::new(HandBack { tx, waker }),
            rx,
            poll,
        }
    }

    /// Blocks until `k` results have come back. A wake-up left over from the
    /// previous batch may make one `poll` return with nothing to drain; the
    /// daemon's loop sees the same.
    fn collect(&mut self, k: u32) {
        let mut got = 0;
        match &mut self.poll {
            Some((poll, events)) => {
                while got < k {
                    poll.poll(events, None).expect("poll");
                    while self.rx.try_recv().is_ok() {
                        got += 1;
                    }
                }
            }
            None => {
                while got < k {
                    self.rx.recv().expect("a result");
                    got += 1;
                }
            }
        }
    }
}

/// The pool's task: hands its id back and does nothing else.
struct Echo {
    id: u64,
    hand: Arc<HandBack>,
}

impl Task for Echo {
    fn id(&self) -> u64 {
        self.id
    }

    type Env = ();

    fn run(self, _: &()) {
        self.hand.finish(self.id);
    }
}

/// Times `iters` batches of `k` round trips; returns the time per task.
fn per_task(
    iters: u64,
    k: u32,
    lp: &mut Loop,
    mut submit: impl FnMut(u64, &Arc<HandBack>),
) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        for i in 0..u64::from(k) {
            submit(i, &lp.hand);
        }
        lp.collect(k);
    }
    start.elapsed() / k
}

fn round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("round_trip");
    g.throughput(Throughput::Elements(1));
    for threads in THREADS {
        for k in BATCHES {
            let param = format!("t{threads}_k{k}");
            for collect in [Collect::Waker, Collect::Recv] {
                let lost: LostTaskHook = Arc::new(|id, why| panic!("task {id} lost: {why}"));
                let pool = WorkerPool::start(
                    PoolConfig {
                        workers: threads,
                        queue_capacity: 1024,
                        name: "bench-worker".to_string(),
                        slice: SlicePolicy::Short,
                        placement: Placement::Anywhere,
                    },
                    lost,
                )
                .expect("start the pool");
                let mut lp = Loop::new(collect);
                g.bench_function(BenchmarkId::new(format!("pool_{collect}"), &param), |b| {
                    b.iter_custom(|iters| {
                        per_task(iters, k, &mut lp, |id, hand| {
                            let task = Echo {
                                id,
                                hand: Arc::clone(hand),
                            };
                            if pool.submit(task).is_err() {
                                panic!("queue of 1024 refused a batch of {k}");
                            }
                        })
                    });
                });
                assert!(
                    pool.shutdown(Duration::from_secs(5)),
                    "pool shutdown timed out"
                );

                let rayon = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("bench-rayon-{i}"))
                    .build()
                    .expect("start the rayon pool");
                let mut lp = Loop::new(collect);
                g.bench_function(BenchmarkId::new(format!("rayon_{collect}"), &param), |b| {
                    b.iter_custom(|iters| {
                        per_task(iters, k, &mut lp, |id, hand| {
                            let hand = Arc::clone(hand);
                            rayon.spawn(move || hand.finish(id));
                        })
                    });
                });
            }
        }
    }
    g.finish();
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
