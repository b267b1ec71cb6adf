//! Example-based unit tests of `TimerWheel` behaviour (the randomized
//! comparison against a model lives in `proptests.rs`).

use super::{entry_size, TimerKey, TimerWheel, LEVELS};

fn fire<T>(w: &mut TimerWheel<T>, now: u64) -> Vec<(TimerKey, T)> {
    let mut out = Vec::new();
    w.advance(now, &mut out);
    out
}

fn items<T: Copy>(v: &[(TimerKey, T)]) -> Vec<T> {
    v.iter().map(|&(_, t)| t).collect()
}

#[test]
fn empty_wheel() {
    let mut w: TimerWheel<u8> = TimerWheel::new();
    assert!(w.is_empty());
    assert_eq!(w.next_deadline(), None);
    assert!(fire(&mut w, 1_000).is_empty());
    assert_eq!(w.elapsed(), 1_000);
}

#[test]
fn fires_at_deadline_not_before() {
    let mut w = TimerWheel::with_capacity(4);
    let k = w.insert(10, 'a');
    assert_eq!(w.deadline_of(k), Some(10));
    assert_eq!(w.len(), 1);
    assert!(fire(&mut w, 9).is_empty());
    let out = fire(&mut w, 10);
    assert_eq!(out, vec![(k, 'a')]);
    assert!(w.is_empty());
    assert_eq!(w.deadline_of(k), None);
}

#[test]
fn fires_in_deadline_order() {
    let mut w = TimerWheel::new();
    for d in [500u64, 3, 70, 4_000, 64, 63, 1 << 20, 70] {
        w.insert(d, d);
    }
    let out = items(&fire(&mut w, u64::MAX));
    assert_eq!(out, vec![3, 63, 64, 70, 70, 500, 4_000, 1 << 20]);
}

#[test]
fn cancel_and_stale_keys() {
    let mut w = TimerWheel::new();
    let a = w.insert(100, 1);
    let b = w.insert(100, 2);
    assert_eq!(w.cancel(a), Some(1));
    assert_eq!(w.cancel(a), None, "double cancel");
    // The freed index is reused; the stale key must not touch the new timer.
    let c = w.insert(200, 3);
    assert_eq!(c.index(), a.index());
    assert_eq!(w.cancel(a), None);
    assert_eq!(w.deadline_of(a), None);
    assert_eq!(items(&fire(&mut w, 150)), vec![2]);
    assert_eq!(w.cancel(b), None, "cancel after fire");
    assert_eq!(w.cancel(c), Some(3));
    assert!(w.is_empty());
    assert_eq!(w.next_deadline(), None);
}

#[test]
fn past_deadline_fires_on_next_advance() {
    let mut w = TimerWheel::new();
    w.insert(0, 'z');
    assert_eq!(w.next_deadline(), Some(0));
    assert_eq!(items(&fire(&mut w, 0)), vec!['z']);
    fire(&mut w, 1_000);
    w.insert(400, 'b');
    w.insert(1_000, 'c');
    w.insert(5, 'a');
    assert_eq!(w.next_deadline(), Some(1_000));
    // Even an advance "into the past" delivers them, sorted.
    assert_eq!(items(&fire(&mut w, 3)), vec!['a', 'b', 'c']);
    assert_eq!(w.elapsed(), 1_000);
}

#[test]
fn cancel_overdue_entry() {
    let mut w = TimerWheel::new();
    fire(&mut w, 50);
    let k = w.insert(10, ());
    assert_eq!(w.cancel(k), Some(()));
    assert!(fire(&mut w, 60).is_empty());
}

#[test]
fn huge_deadlines() {
    let mut w = TimerWheel::new();
    let year_ms = 365 * 24 * 3_600 * 1_000u64;
    let far = [u64::MAX, u64::MAX - 1, 1 << 63, 1 << 40, 30 * year_ms];
    for &d in &far {
        w.insert(d, d);
    }
    // 30 years (~9.5e11 ms) comes before 2^40 ms (~1.1e12, ~35 years).
    assert!(fire(&mut w, 30 * year_ms - 1).is_empty());
    assert_eq!(items(&fire(&mut w, 30 * year_ms)), vec![30 * year_ms]);
    assert!(fire(&mut w, (1 << 40) - 1).is_empty());
    assert_eq!(items(&fire(&mut w, 1 << 40)), vec![1 << 40]);
    assert_eq!(items(&fire(&mut w, u64::MAX - 2)), vec![1 << 63]);
    assert_eq!(items(&fire(&mut w, u64::MAX)), vec![u64::MAX - 1, u64::MAX]);
    assert!(w.is_empty());
    // At the end of time, only "now" is left.
    w.insert(u64::MAX, 0);
    assert_eq!(w.next_deadline(), Some(u64::MAX));
    assert_eq!(items(&fire(&mut w, u64::MAX)), vec![0]);
}

#[test]
fn big_jump_cascades_everything_in_order() {
    let mut w = TimerWheel::new();
    let mut want = Vec::new();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..2_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let d = x % (1 << (i % 50));
        w.insert(d, d);
        want.push(d);
    }
    want.sort_unstable();
    let mid = 1u64 << 30;
    let first = items(&fire(&mut w, mid));
    let second = items(&fire(&mut w, u64::MAX));
    let split = want.partition_point(|&d| d <= mid);
    assert_eq!(first, want[..split]);
    assert_eq!(second, want[split..]);
}

#[test]
fn next_deadline_makes_progress() {
    let mut w = TimerWheel::new();
    fire(&mut w, 12_345);
    let deadlines = [12_400u64, 99_999, 1 << 33, (1 << 50) + 3];
    for &d in &deadlines {
        w.insert(d, d);
    }
    let mut fired = Vec::new();
    let mut steps = 0;
    while let Some(t) = w.next_deadline() {
        assert!(t >= w.elapsed());
        assert!(t <= deadlines[fired.len()], "next_deadline past a deadline");
        let out = fire(&mut w, t);
        fired.extend(items(&out));
        steps += 1;
        assert!(steps <= deadlines.len() * (LEVELS + 1));
    }
    assert_eq!(fired, deadlines);
}

#[test]
fn non_copy_payload() {
    let mut w = TimerWheel::new();
    let k = w.insert(5, String::from("hello"));
    w.insert(6, String::from("world"));
    assert_eq!(w.cancel(k).as_deref(), Some("hello"));
    let out = fire(&mut w, 6);
    assert_eq!(out[0].1, "world");
}

#[test]
fn memory_per_entry() {
    // Stated in README.md; keep the two in sync.
    assert_eq!(entry_size::<u64>(), 32);
    assert!(entry_size::<u64>() <= 64);
}

/// A bounded advance hands out the earliest due timers and leaves the
/// rest armed and due: `next_deadline` says "now", and the next call hands
/// them out before anything that came due later.
#[test]
fn bounded_advance_leaves_the_rest_due_in_order() {
    let mut w = TimerWheel::new();
    for d in [5u64, 3, 9, 3, 7] {
        w.insert(d, d);
    }
    let mut out = Vec::new();
    assert!(w.advance_bounded(8, &mut out, 2), "some are left");
    assert_eq!(items(&out), vec![3, 3]);
    assert_eq!(w.elapsed(), 8);
    assert_eq!(w.next_deadline(), Some(8), "the rest is due now");
    assert_eq!(w.len(), 3);
    // A timer inserted late (deadline 4, already passed) goes before the
    // ones left that are due later (5 and 7).
    w.insert(4, 4);
    out.clear();
    assert!(w.advance_bounded(10, &mut out, 2));
    assert_eq!(items(&out), vec![4, 5]);
    out.clear();
    assert!(!w.advance_bounded(10, &mut out, 5), "nothing left");
    assert_eq!(items(&out), vec![7, 9]);
    assert!(w.is_empty());
    assert_eq!(w.next_deadline(), None);
}

/// A due timer left by a bounded advance can still be cancelled (a job
/// re-armed or removed before its turn came), wherever it sits in the
/// list of those left.
#[test]
fn cancel_of_a_timer_left_due() {
    let mut w = TimerWheel::new();
    let keys: Vec<_> = (0..5u64).map(|i| w.insert(10 + i, i)).collect();
    let mut out = Vec::new();
    assert!(w.advance_bounded(20, &mut out, 1));
    assert_eq!(items(&out), vec![0]);
    // Tail, head and middle of the four left.
    assert_eq!(w.cancel(keys[4]), Some(4));
    assert_eq!(w.cancel(keys[1]), Some(1));
    assert_eq!(w.cancel(keys[2]), Some(2));
    assert_eq!(w.cancel(keys[2]), None, "stale");
    let k = w.insert(15, 9);
    out.clear();
    assert!(!w.advance_bounded(20, &mut out, 10));
    assert_eq!(out, vec![(keys[3], 3), (k, 9)]);
    assert!(w.is_empty());
}
