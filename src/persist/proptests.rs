//! Property test of journal replay: whatever one byte flip or cut does to
//! a journal, replay yields exactly the records of the frames it did not
//! touch, and calls the damage a torn tail only when no good frame follows.

use super::journal::{encode_frame, read_frames, HEADER};
use super::record::{Record, RunRecord};
use super::tests::at;
use crate::state::run::{Run, RunState, Trigger};
use crate::time::Timestamp;
use proptest::prelude::*;

fn any_timestamp() -> impl Strategy<Value = Timestamp> {
    (0i64..4_000_000_000_000, 0i64..1_000_000)
        .prop_map(|(ms, ns)| at(ms) + jiff::SignedDuration::from_nanos(ns))
}

fn any_run() -> impl Strategy<Value = RunRecord> {
    (
        (1u64..40, proptest::option::of("[a-z.]{1,12}")),
        (
            proptest::sample::select(Trigger::ALL.to_vec()),
            proptest::sample::select(RunState::ALL.to_vec()),
        ),
        (
            1u32..5,
            any_timestamp(),
            proptest::option::of(any_timestamp()),
        ),
        (proptest::option::of(any::<i32>()), "\\PC{0,60}"),
        // Exactly representable, so the float survives JSON unchanged.
        proptest::option::of(proptest::sample::select(vec![0.0, 0.25, 0.5, 1.0])),
        proptest::option::of("[a-z ]{0,10}".prop_map(|s| serde_json::json!({"arg": s}))),
    )
        .prop_map(
            |(
                (id, job),
                (trigger, state),
                (attempt, queued_at, started_at),
                (exit_code, output),
                progress,
                args,
            )| {
                let mut r = Run::queued(id, job, trigger, attempt);
                r.state = state;
                r.queued_at = queued_at;
                r.started_at = started_at;
                r.exit_code = exit_code;
                r.error = exit_code.map(|c| format!("exit {c}"));
                r.output = output;
                r.progress = progress;
                RunRecord::from_run(&r, args.clone(), args)
            },
        )
}

fn any_record() -> impl Strategy<Value = Record> {
    prop_oneof![
        any_run().prop_map(Record::Run),
        ("[a-z]{1,10}", any_timestamp()).prop_map(|(job, at)| Record::Scheduled { job, at }),
        (0u64..1000).prop_map(|run_id| Record::Forget { run_id }),
        ("[a-z]{1,10}", any::<bool>()).prop_map(|(job, paused)| Record::Pause { job, paused }),
    ]
}

/// Damage done to a written journal.
#[derive(Debug, Clone)]
enum Damage {
    /// Keep this fraction of the frames region.
    Truncate(f64),
    /// XOR one byte (at this fraction of the frames region) with a non-zero mask.
    Flip(f64, u8),
}

fn any_damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0.0..=1.0f64).prop_map(Damage::Truncate),
        (0.0..1.0f64, 1u8..=255).prop_map(|(at, mask)| Damage::Flip(at, mask)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn damaged_journals_replay_exactly_a_prefix(
        records in proptest::collection::vec(any_record(), 1..30),
        damage in any_damage(),
    ) {
        let mut bytes = HEADER.to_vec();
        let mut ends = Vec::new();
        for r in &records {
            encode_frame(&mut bytes, r).expect("encodes");
            ends.push(bytes.len());
        }
        let frames = bytes.len() - HEADER.len();
        // Records whose frame ends at or before `limit` are untouched.
        let intact = |limit: usize| ends.iter().filter(|&&e| e <= limit).count();
        let (expected, tail) = match damage {
            Damage::Truncate(keep) => {
                let cut = HEADER.len() + (frames as f64 * keep) as usize;
                bytes.truncate(cut);
                let n = intact(cut);
                (records[..n].to_vec(), true)
            }
            Damage::Flip(at, mask) => {
                // Only the frame holding the flipped byte is lost: replay
                // resyncs at the next one.
                let pos = HEADER.len() + ((frames as f64 * at) as usize).min(frames - 1);
                bytes[pos] ^= mask;
                let hit = intact(pos);
                let mut kept = records.clone();
                kept.remove(hit);
                (kept, hit == records.len() - 1)
            }
        };
        let replay = read_frames(&bytes, HEADER.len());
        prop_assert_eq!(&replay.records, &expected);
        match &replay.skipped[..] {
            [] => prop_assert_eq!(replay.end, bytes.len() as u64),
            [one] => prop_assert_eq!(one.at_tail, tail),
            more => prop_assert!(false, "one stretch at most: {:?}", more),
        }
    }
}
