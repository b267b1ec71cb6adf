//! Timer wheel vs. the usual binary-heap timer queue.
//!
//! Baseline: `BinaryHeap<Reverse<(deadline, id)>>` with lazy cancellation —
//! cancelling puts the id into a `HashSet`, and the heap entry is skipped
//! (and dropped) when it is popped. That is the common heap approach because
//! `BinaryHeap` cannot remove an arbitrary element cheaply.
//!
//! With N timers armed (deadlines uniform in the next hour) we measure:
//! * `insert_cancel`: arm one timer and cancel the one armed 1024 pairs
//!   earlier (N stays constant; the typical "timeout that never fires").
//!   The heap's cancelled garbage is purged outside the timed region.
//! * `fire_all`: drain all N timers the way the event loop does (sleep until
//!   the next deadline, advance, repeat); throughput is per fired timer.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use tickd::timer::{TimerKey, TimerWheel};

const HOUR_MS: u64 = 3_600_000;
const SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];
/// Distance (in pairs) between arming a timer and cancelling it.
const LAG: usize = 1024;

/// Small deterministic PRNG (xorshift64) so the bench needs no `rand`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn deadline(&mut self) -> u64 {
        1 + self.next() % HOUR_MS
    }
}

/// The heap baseline described in the module docs.
#[derive(Default)]
struct HeapTimers {
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    cancelled: HashSet<u64>,
    next_id: u64,
}

impl HeapTimers {
    fn insert(&mut self, deadline: u64) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.heap.push(Reverse((deadline, id)));
        id
    }

    fn cancel(&mut self, id: u64) {
        self.cancelled.insert(id);
    }

    /// Drops cancelled entries still in the heap (not timed).
    fn purge(&mut self) {
        let cancelled = std::mem::take(&mut self.cancelled);
        self.heap.retain(|Reverse((_, id))| !cancelled.contains(id));
    }

    /// Pops everything, skipping cancelled ids; returns how many fired.
    fn drain(&mut self) -> usize {
        let mut fired = 0;
        while let Some(Reverse((deadline, id))) = self.heap.pop() {
            if self.cancelled.remove(&id) {
                continue;
            }
            black_box(deadline);
            fired += 1;
        }
        fired
    }
}

fn armed_wheel(n: usize, rng: &mut Rng) -> TimerWheel<u64> {
    let mut w = TimerWheel::with_capacity(n + LAG);
    for i in 0..n as u64 {
        w.insert(rng.deadline(), i);
    }
    w
}

fn armed_heap(n: usize, rng: &mut Rng) -> HeapTimers {
    let mut h = HeapTimers::default();
    h.heap.reserve(n + LAG);
    for _ in 0..n {
        h.insert(rng.deadline());
    }
    h
}

fn insert_cancel(c: &mut Criterion) {
    let mut g = c.benchmark_group("insert_cancel");
    g.sample_size(10);
    for n in SIZES {
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("wheel", n), |b| {
            let mut rng = Rng(0x2545_F491_4F6C_DD1D);
            let mut w = armed_wheel(n, &mut rng);
            let mut lagging: VecDeque<TimerKey> = (0..LAG)
                .map(|i| w.insert(rng.deadline(), i as u64))
                .collect();
            b.iter(|| {
                let k = w.insert(rng.deadline(), 7);
                let old = lagging.pop_front().expect("ring holds LAG keys");
                black_box(w.cancel(old));
                lagging.push_back(k);
            });
        });
        g.bench_function(BenchmarkId::new("heap", n), |b| {
            let mut rng = Rng(0x2545_F491_4F6C_DD1D);
            let mut h = armed_heap(n, &mut rng);
            let mut lagging: VecDeque<u64> = (0..LAG).map(|_| h.insert(rng.deadline())).collect();
            let chunk = n.max(16_384) as u64;
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let k = (iters - done).min(chunk);
                    let t = Instant::now();
                    for _ in 0..k {
                        let id = h.insert(rng.deadline());
                        let old = lagging.pop_front().expect("ring holds LAG ids");
                        h.cancel(old);
                        lagging.push_back(id);
                    }
                    timed += t.elapsed();
                    h.purge();
                    done += k;
                }
                timed
            });
        });
    }
    g.finish();
}

fn fire_all(c: &mut Criterion) {
    let mut g = c.benchmark_group("fire_all");
    g.sample_size(10);
    for n in SIZES {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("wheel", n), |b| {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
            let mut out = Vec::new();
            b.iter_batched(
                || armed_wheel(n, &mut rng),
                |mut w| {
                    let mut fired = 0;
                    while let Some(t) = w.next_deadline() {
                        out.clear();
                        w.advance(t, &mut out);
                        fired += out.len();
                    }
                    assert_eq!(fired, n);
                    w
                },
                BatchSize::PerIteration,
            );
        });
        g.bench_function(BenchmarkId::new("heap", n), |b| {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
            b.iter_batched(
                || armed_heap(n, &mut rng),
                |mut h| {
                    assert_eq!(h.drain(), n);
                    h
                },
                BatchSize::PerIteration,
            );
        });
    }
    g.finish();
}

criterion_group!(benches, insert_cancel, fire_all);
criterion_main!(benches);
