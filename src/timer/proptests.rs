//! Property tests: random operation sequences run against the wheel and a
//! `BTreeMap` reference model, checking that the same timers fire, none
//! early, none late (each fires at the first `advance` that reaches its
//! deadline), in deadline order, across cancels and cascades.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;

use super::{TimerKey, TimerWheel, LEVELS};

/// How far from `elapsed` an inserted deadline lies.
#[derive(Clone, Debug)]
enum Offset {
    Past(u64),
    Small(u64),
    Medium(u64),
    Huge(u64),
    Extreme(u64),
}

/// How `advance` is called.
#[derive(Clone, Debug)]
enum Step {
    By(u64),
    ToNextDeadline,
    Jump(u64),
    Backwards(u64),
    ToEndOfTime,
}

#[derive(Clone, Debug)]
enum Op {
    Insert(Offset),
    /// Cancel the n-th key ever issued (modulo count): live or stale.
    Cancel(usize),
    Advance(Step),
    /// `advance_bounded` with this limit.
    AdvanceBounded(Step, usize),
}

fn offset() -> impl Strategy<Value = Offset> {
    prop_oneof![
        2 => (0u64..200).prop_map(Offset::Past),
        4 => (0u64..130).prop_map(Offset::Small),
        3 => (0u64..(1 << 20)).prop_map(Offset::Medium),
        2 => (0u64..(1 << 42)).prop_map(Offset::Huge),
        1 => any::<u64>().prop_map(Offset::Extreme),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u64..100).prop_map(Step::By),
        4 => Just(Step::ToNextDeadline),
        2 => (0u64..(1 << 43)).prop_map(Step::Jump),
        1 => (0u64..1000).prop_map(Step::Backwards),
        // Rare: after it only u64::MAX deadlines remain meaningful.
        1 => Just(Step::ToEndOfTime),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => offset().prop_map(Op::Insert),
        2 => any::<usize>().prop_map(Op::Cancel),
        3 => step().prop_map(Op::Advance),
        2 => (step(), 0usize..4).prop_map(|(s, n)| Op::AdvanceBounded(s, n)),
    ]
}

/// Reference model: what is armed, keyed by (deadline, insertion seq).
#[derive(Default)]
struct Model {
    by_deadline: BTreeMap<(u64, u64), TimerKey>,
    live: HashMap<TimerKey, (u64, u64)>,
    issued: Vec<TimerKey>,
    seq: u64,
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut w: TimerWheel<u64> = TimerWheel::new();
    let mut m = Model::default();
    let mut out = Vec::new();
    for op in ops {
        let e = w.elapsed();
        match op {
            Op::Insert(off) => {
                let d = match *off {
                    Offset::Past(x) => e.saturating_sub(x),
                    Offset::Small(x) | Offset::Medium(x) | Offset::Huge(x) | Offset::Extreme(x) => {
                        e.saturating_add(x)
                    }
                };
                let seq = m.seq;
                m.seq += 1;
                let k = w.insert(d, seq);
                prop_assert!(
                    m.live.insert(k, (d, seq)).is_none(),
                    "key reused while live"
                );
                m.by_deadline.insert((d, seq), k);
                m.issued.push(k);
                prop_assert_eq!(w.deadline_of(k), Some(d));
            }
            Op::Cancel(n) => {
                if m.issued.is_empty() {
                    continue;
                }
                let k = m.issued[n % m.issued.len()];
                let want = m.live.remove(&k);
                if let Some((d, seq)) = want {
                    m.by_deadline.remove(&(d, seq));
                }
                prop_assert_eq!(w.cancel(k), want.map(|(_, seq)| seq));
                prop_assert_eq!(w.deadline_of(k), None);
            }
            Op::Advance(step) | Op::AdvanceBounded(step, _) => {
                let now = match *step {
                    Step::By(x) => e.saturating_add(x),
                    Step::ToNextDeadline => w.next_deadline().unwrap_or(e),
                    Step::Jump(x) => e.saturating_add(x),
                    Step::Backwards(x) => e.saturating_sub(x),
                    Step::ToEndOfTime => u64::MAX,
                };
                let effective = now.max(e);
                out.clear();
                let limit = match op {
                    Op::AdvanceBounded(_, limit) => *limit,
                    _ => usize::MAX,
                };
                let left = w.advance_bounded(now, &mut out, limit);
                prop_assert!(out.len() <= limit, "more than the limit handed out");
                prop_assert_eq!(w.elapsed(), effective);
                let mut last = 0u64;
                for &(k, item) in &out {
                    let (d, seq) = m.live.remove(&k).ok_or_else(|| {
                        TestCaseError::fail(format!("{k:?} fired but is not armed"))
                    })?;
                    prop_assert_eq!(item, seq, "payload mismatch");
                    prop_assert!(
                        d <= effective,
                        "fired early: deadline {} now {}",
                        d,
                        effective
                    );
                    prop_assert!(d >= last, "out of order: {} after {}", d, last);
                    last = d;
                    m.by_deadline.remove(&(d, seq));
                }
                // None late / lost: nothing due may remain armed, but
                // for those a bounded advance left, which are no earlier
                // than any it handed out.
                let first_left = m.by_deadline.keys().next().map(|&(d, _)| d);
                prop_assert_eq!(left, first_left.is_some_and(|d| d <= effective));
                if let Some(d) = first_left {
                    prop_assert!(d >= last, "{} left while {} was handed out", d, last);
                    if !left {
                        prop_assert!(d > effective, "deadline {} missed at {}", d, effective);
                    }
                }
            }
        }
        prop_assert_eq!(w.len(), m.live.len());
        prop_assert_eq!(w.is_empty(), m.live.is_empty());
        match (w.next_deadline(), m.by_deadline.keys().next()) {
            (None, None) => {}
            (Some(nd), Some(&(d, _))) => {
                prop_assert!(nd >= w.elapsed(), "next_deadline {} before elapsed", nd);
                prop_assert!(nd <= d.max(w.elapsed()), "next_deadline {} after {}", nd, d);
            }
            (nd, md) => prop_assert!(false, "next_deadline {:?} vs model {:?}", nd, md),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn matches_btreemap_model(ops in prop::collection::vec(op(), 1..200)) {
        run(&ops)?;
    }

    /// Sleeping until `next_deadline()` and advancing reaches every timer,
    /// in order, within `LEVELS + 1` wake-ups per timer.
    #[test]
    fn next_deadline_loop_is_bounded(
        start in prop_oneof![0u64..1000, any::<u64>().prop_map(|x| x >> 2)],
        offs in prop::collection::vec(prop_oneof![0u64..5000, 0u64..(1 << 41), any::<u64>()], 1..60),
    ) {
        let mut w = TimerWheel::new();
        w.advance(start, &mut Vec::new());
        let mut want: Vec<u64> = offs.iter().map(|&o| start.saturating_add(o)).collect();
        for &d in &want {
            w.insert(d, d);
        }
        want.sort_unstable();
        let mut fired = Vec::new();
        let mut out = Vec::new();
        let mut steps = 0usize;
        while let Some(t) = w.next_deadline() {
            prop_assert!(t <= want[fired.len()], "would oversleep: {} > {}", t, want[fired.len()]);
            out.clear();
            w.advance(t, &mut out);
            fired.extend(out.iter().map(|&(_, d)| d));
            steps += 1;
            prop_assert!(steps <= (LEVELS + 1) * want.len(), "too many wake-ups");
        }
        prop_assert_eq!(fired, want);
    }
}
