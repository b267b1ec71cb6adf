//! The journal's records: one self-describing JSON object per change.
//!
//! Every record carries its kind in a `"t"` field (`"run"`, `"scheduled"`,
//! `"forget"`, `"pause"`, `"job"`, `"job_deleted"`), so a journal can be read with `jq` and a reader can tell a
//! record it does not know from a damaged one. Enums are written by their
//! wire names (`"timed_out"`, `"on_failure"`), the same strings clients see,
//! and timestamps as RFC 3339 UTC with every digit of sub-second precision
//! there is (`time::text::exact`), so a snapshot reads back exactly as it
//! was written.
//!
//! Optional fields that are empty are left out: most snapshots (queued,
//! running) have no output, exit code or result, and the journal stays small.
//! Unknown fields are ignored when reading, so a later version may add one.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::state::run::{Run, RunId, RunState, Trigger};
use crate::time::Timestamp;

/// One change to the persistent state, as appended to the journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
#[allow(
    clippy::large_enum_variant,
    reason = "records live one at a time on the way to the file; boxing runs would cost an allocation per append for nothing"
)]
pub enum Record {
    /// A full snapshot of a run after a change (queued, running, terminal):
    /// the latest snapshot of a run id replaces every earlier one.
    Run(RunRecord),
    /// A job's schedule fired for the due time `at`, so a restart neither
    /// fires that time again nor forgets that it was missed.
    Scheduled {
        /// The job's name.
        job: String,
        /// The due time that fired (not the time it was handled).
        #[serde(with = "wire::timestamp")]
        at: Timestamp,
    },
    /// The run left the history (pruned): replay drops it and compaction
    /// may drop its records. Its id still counts, so ids are never reused.
    Forget {
        /// The run that was dropped.
        run_id: RunId,
    },
    /// `jobs.pause` (`paused: true`) or `jobs.resume` (`false`) of a job:
    /// the last record per job says whether it is paused after a restart.
    Pause {
        /// The job's name.
        job: String,
        /// Paused (true) or resumed (false).
        paused: bool,
    },
    /// `jobs.put`: the job `name` is defined at run time by the object
    /// `job` (the keys of a `[[jobs]]` table, as accepted). The last record
    /// per name wins, until a `JobDeleted` of that name.
    Job {
        /// The job's name (also `job.name`).
        name: String,
        /// The job object, checked again by the rules of the day at start.
        job: Value,
    },
    /// `jobs.delete`: the job `name` defined at run time is gone (and with
    /// it its pause and last scheduled time).
    JobDeleted {
        /// The job's name.
        name: String,
    },
}

impl Record {
    /// The run id the record names, if any: what keeps run ids unique
    /// across restarts (see [`Recovered::max_run_id`](super::Recovered)).
    pub fn run_id(&self) -> Option<RunId> {
        match self {
            Record::Run(r) => Some(r.id),
            Record::Forget { run_id } => Some(*run_id),
            Record::Scheduled { .. }
            | Record::Pause { .. }
            | Record::Job { .. }
            | Record::JobDeleted { .. } => None,
        }
    }
}

/// Everything needed to rebuild a [`Run`] after a restart, plus what running
/// it again needs (a queued run that was accepted must still run).
///
/// The child's pid is left out on purpose: after a restart it names some
/// other process, or none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Unique id.
    pub id: RunId,
    /// The job's name (None for ad-hoc submitted jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// What started it.
    #[serde(with = "wire::trigger")]
    pub trigger: Trigger,
    /// Its state when the snapshot was taken.
    #[serde(with = "wire::state")]
    pub state: RunState,
    /// 1 for the first attempt, counting up with retries.
    pub attempt: u32,
    /// When it was accepted.
    #[serde(with = "wire::timestamp")]
    pub queued_at: Timestamp,
    /// When a worker started it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "wire::opt_timestamp"
    )]
    pub started_at: Option<Timestamp>,
    /// When it reached a terminal state.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "wire::opt_timestamp"
    )]
    pub finished_at: Option<Timestamp>,
    /// The program's exit status, for exec jobs that exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why it did not succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The tail of the output (exec) or a summary (other kinds).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output: String,
    /// Last progress the job reported (a NaN reads back as None).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    /// For scheduled runs, the time it was due.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "wire::opt_timestamp"
    )]
    pub scheduled_at: Option<Timestamp>,
    /// Kind-specific facts about how it ended.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::present"
    )]
    pub result: Option<Value>,
    /// The args given to `jobs.run` / `submit`, needed to run it again.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::present"
    )]
    pub args: Option<Value>,
    /// The job definition of a `submit`ted ad-hoc run, which exists nowhere
    /// else once the daemon restarts.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::present"
    )]
    pub adhoc: Option<Value>,
    /// Replays a due time missed while the daemon was down.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub catch_up: bool,
    /// The run that triggered this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_run_id: Option<RunId>,
    /// Where `output` starts in all the run printed (0: from the start).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub output_from: u64,
}

impl RunRecord {
    /// Snapshots `run`, with the args and ad-hoc definition it was started with.
    pub fn from_run(run: &Run, args: Option<Value>, adhoc: Option<Value>) -> Self {
        RunRecord {
            id: run.id,
            job: run.job.clone(),
            trigger: run.trigger,
            state: run.state,
            attempt: run.attempt,
            queued_at: run.queued_at,
            started_at: run.started_at,
            finished_at: run.finished_at,
            exit_code: run.exit_code,
            error: run.error.clone(),
            output: run.output.clone(),
            progress: run.progress,
            scheduled_at: run.scheduled_at,
            result: run.result.clone(),
            args,
            adhoc,
            catch_up: run.catch_up,
            parent_run_id: run.parent_run_id,
            output_from: run.output_from,
        }
    }

    /// Rebuilds the run; `pid` is None (see the type's docs).
    pub fn to_run(&self) -> Run {
        Run {
            id: self.id,
            job: self.job.clone(),
            trigger: self.trigger,
            state: self.state,
            attempt: self.attempt,
            queued_at: self.queued_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            exit_code: self.exit_code,
            error: self.error.clone(),
            output: self.output.clone(),
            progress: self.progress,
            scheduled_at: self.scheduled_at,
            pid: None,
            result: self.result.clone(),
            catch_up: self.catch_up,
            parent_run_id: self.parent_run_id,
            output_from: self.output_from,
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Serde adapters between tickd's types and their wire strings.
///
/// Timestamps keep the exact text chrono wrote before tickd moved to jiff
/// (`time::text`, not jiff's serde form), and `Trigger` has no parser, so
/// the mapping lives here rather than in derives on those types.
mod wire {
    use super::{RunState, Timestamp, Trigger, Value};
    use crate::time::text;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Reads a field that is present as `Some`, even when it is `null`, so
    /// `Some(Value::Null)` round-trips (`default` covers the absent field).
    pub(super) fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
        Value::deserialize(d).map(Some)
    }

    fn parse_time<E: serde::de::Error>(s: &str) -> Result<Timestamp, E> {
        text::parse(s).map_err(|e| E::custom(format!("bad timestamp {s:?}: {e}")))
    }

    /// A timestamp as an RFC 3339 string.
    pub(super) mod timestamp {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&text::exact(t))
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
            parse_time(&String::deserialize(d)?)
        }
    }

    /// An optional timestamp as an RFC 3339 string or null.
    pub(super) mod opt_timestamp {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(
            t: &Option<Timestamp>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&text::exact(t)),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Timestamp>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|s| parse_time(&s))
                .transpose()
        }
    }

    /// A trigger by its wire name.
    pub(super) mod trigger {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(t: &Trigger, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(t.as_str())
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Trigger, D::Error> {
            let name = String::deserialize(d)?;
            Trigger::parse(&name)
                .ok_or_else(|| D::Error::custom(format!("unknown trigger {name:?}")))
        }
    }

    /// A run state by its wire name.
    pub(super) mod state {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(st: &RunState, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(st.as_str())
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<RunState, D::Error> {
            let name = String::deserialize(d)?;
            RunState::parse(&name)
                .ok_or_else(|| D::Error::custom(format!("unknown run state {name:?}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::journal::{encode_frame, read_frames, HEADER};
    use super::*;
    use crate::time;

    fn at(ms: i64) -> Timestamp {
        time::from_unix_millis(ms).expect("valid timestamp")
    }

    fn full_run() -> Run {
        Run {
            id: 7,
            job: Some("backup".into()),
            trigger: Trigger::OnFailure,
            state: RunState::TimedOut,
            attempt: 3,
            // Nanoseconds: the format must keep every digit.
            queued_at: time::from_unix(1_763_889_600, 123_456_789).expect("valid"),
            started_at: Some(at(1_763_889_601_000)),
            finished_at: Some(at(1_763_889_602_500)),
            exit_code: Some(-9),
            error: Some("timed out after 1s".into()),
            output: "line 1\nline \"2\"\n".into(),
            progress: Some(0.5),
            scheduled_at: Some(at(1_763_889_600_000)),
            pid: Some(4242),
            result: Some(serde_json::json!({"bytes": 12, "files": ["a", "b"]})),
            catch_up: true,
            parent_run_id: Some(3),
            output_from: 7,
        }
    }

    fn round_trip(rec: &Record) -> Record {
        let text = serde_json::to_string(rec).expect("encodes");
        serde_json::from_str(&text).expect("decodes")
    }

    #[test]
    fn every_record_kind_round_trips() {
        let args = Some(serde_json::json!({"n": 1}));
        let adhoc = Some(serde_json::json!({"command": ["true"]}));
        let records = [
            Record::Run(RunRecord::from_run(&full_run(), args, adhoc)),
            Record::Run(RunRecord::from_run(
                &Run::queued(8, None, Trigger::Submit, 1),
                None,
                None,
            )),
            Record::Scheduled {
                job: "backup".into(),
                at: at(1_763_889_600_000),
            },
            Record::Forget { run_id: 99 },
            Record::Pause {
                job: "backup".into(),
                paused: true,
            },
            Record::Job {
                name: "nightly".into(),
                job: serde_json::json!({"name": "nightly", "command": ["true"], "cron": "0 3 * * *"}),
            },
            Record::JobDeleted {
                name: "nightly".into(),
            },
        ];
        for rec in &records {
            assert_eq!(&round_trip(rec), rec);
        }
    }

    #[test]
    fn the_last_job_record_per_name_wins_until_deleted() {
        let job = |name: &str, n: u32| Record::Job {
            name: name.into(),
            job: serde_json::json!({"name": name, "retries": n}),
        };
        let deleted = |name: &str| Record::JobDeleted { name: name.into() };
        let recovered = super::super::Recovered::fold([
            job("a", 1),
            job("b", 1),
            job("a", 2),
            deleted("b"),
            job("c", 1),
            deleted("c"),
            job("c", 3),
        ]);
        let names: Vec<(&str, &Value)> = recovered
            .api_jobs
            .iter()
            .map(|(n, j)| (n.as_str(), &j["retries"]))
            .collect();
        assert_eq!(names, [("a", &Value::from(2)), ("c", &Value::from(3))]);
        let again = super::super::Recovered::fold(recovered.to_records());
        assert_eq!(again.api_jobs, recovered.api_jobs, "compaction keeps them");
    }

    #[test]
    fn to_run_rebuilds_the_run_without_its_pid() {
        let run = full_run();
        let back = RunRecord::from_run(&run, None, None).to_run();
        assert_eq!(back, Run { pid: None, ..run });
    }

    #[test]
    fn records_are_tagged_and_use_wire_names() {
        let rec = Record::Run(RunRecord::from_run(&full_run(), None, None));
        let v = serde_json::to_value(&rec).expect("encodes");
        assert_eq!(v["t"], "run");
        assert_eq!(v["trigger"], "on_failure");
        assert_eq!(v["state"], "timed_out");
        assert_eq!(v["queued_at"], "2025-11-23T09:20:00.123456789Z");
        assert!(v.get("pid").is_none());
        assert!(v.get("args").is_none(), "empty optionals are left out");
        let forget = serde_json::to_value(Record::Forget { run_id: 3 }).expect("encodes");
        assert_eq!(forget, serde_json::json!({"t": "forget", "run_id": 3}));
        let pause = Record::Pause {
            job: "backup".into(),
            paused: false,
        };
        let pause = serde_json::to_value(pause).expect("encodes");
        assert_eq!(
            pause,
            serde_json::json!({"t": "pause", "job": "backup", "paused": false})
        );
        let job = Record::Job {
            name: "n".into(),
            job: serde_json::json!({"name": "n"}),
        };
        let job = serde_json::to_value(job).expect("encodes");
        assert_eq!(
            job,
            serde_json::json!({"t": "job", "name": "n", "job": {"name": "n"}})
        );
        let deleted = serde_json::to_value(Record::JobDeleted { name: "n".into() });
        assert_eq!(
            deleted.expect("encodes"),
            serde_json::json!({"t": "job_deleted", "name": "n"})
        );
    }

    #[test]
    fn present_null_values_stay_some() {
        let mut r = RunRecord::from_run(&full_run(), Some(Value::Null), None);
        r.result = Some(Value::Null);
        let rec = Record::Run(r);
        assert_eq!(round_trip(&rec), rec);
    }

    #[test]
    fn unknown_names_and_kinds_are_refused() {
        let bad_trigger = r#"{"t":"run","id":1,"trigger":"cron","state":"queued","attempt":1,"queued_at":"2025-01-01T00:00:00Z"}"#;
        assert!(serde_json::from_str::<Record>(bad_trigger).is_err());
        assert!(serde_json::from_str::<Record>(r#"{"t":"later","x":1}"#).is_err());
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let text = r#"{"t":"forget","run_id":5,"reason":"pruned"}"#;
        let rec: Record = serde_json::from_str(text).expect("decodes");
        assert_eq!(rec, Record::Forget { run_id: 5 });
    }

    #[test]
    fn every_trigger_is_listed() {
        // Adding a `Trigger` variant breaks this match: add it to Trigger::ALL too.
        let listed = |t: Trigger| match t {
            Trigger::Schedule
            | Trigger::Manual
            | Trigger::Submit
            | Trigger::Retry
            | Trigger::OnFailure
            | Trigger::OnSuccess
            | Trigger::After => Trigger::ALL.contains(&t),
        };
        for t in Trigger::ALL {
            assert!(listed(t));
            assert_eq!(Trigger::parse(t.as_str()), Some(t));
        }
        assert_eq!(Trigger::parse("bogus"), None);
    }

    /// A journal as the chrono build wrote it: each frame's header (length
    /// and CRC-32, little-endian, in hex) and record, copied from that
    /// build's output. Timestamps with 0, 3, 6 and 9 fractional digits,
    /// before 1970, on leap days.
    const OLD_JOURNAL: [(&str, &str); 7] = [
        (
            "8b0100000739ec65",
            r#"{"t":"run","id":7,"job":"backup","trigger":"on_failure","state":"timed_out","attempt":3,"queued_at":"2025-11-23T09:20:00.123456789Z","started_at":"2025-11-23T09:20:01Z","finished_at":"2025-11-23T09:20:02.500250Z","exit_code":-9,"error":"timed out after 1s","output":"line 1\nline \"2\"\n","progress":0.5,"scheduled_at":"2025-11-23T09:20:00Z","result":{"bytes":12},"args":{"n":1},"catch_up":true}"#,
        ),
        (
            "8c000000e0f12f82",
            r#"{"t":"run","id":8,"trigger":"submit","state":"queued","attempt":1,"queued_at":"1969-12-31T23:59:59.999000001Z","adhoc":{"command":["true"]}}"#,
        ),
        (
            "f5000000e72be699",
            r#"{"t":"run","id":9,"job":"leap","trigger":"schedule","state":"queued","attempt":1,"queued_at":"2000-02-29T23:59:59.999Z","started_at":"2024-02-29T00:00:00.000000007Z","finished_at":"2100-02-28T23:59:59.999Z","scheduled_at":"2000-02-29T23:59:59Z"}"#,
        ),
        (
            "400000002ef672a2",
            r#"{"t":"scheduled","job":"backup","at":"2026-12-05T19:58:00.123Z"}"#,
        ),
        (
            "3d000000bbe92b00",
            r#"{"t":"scheduled","job":"nightly","at":"2026-12-05T19:58:00Z"}"#,
        ),
        (
            "42000000126ed9a6",
            r#"{"t":"scheduled","job":"micro","at":"2026-12-05T19:58:00.000001Z"}"#,
        ),
        ("19000000dacc540a", r#"{"t":"forget","run_id":3}"#),
    ];

    fn unhex(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn a_journal_of_the_chrono_build_reads_back_and_encodes_to_the_same_bytes() {
        let mut old = HEADER.to_vec();
        for (frame_header, record) in OLD_JOURNAL {
            old.extend(unhex(frame_header));
            old.extend_from_slice(record.as_bytes());
        }
        let replay = read_frames(&old, HEADER.len());
        assert!(replay.skipped.is_empty(), "{:?}", replay.skipped);
        assert_eq!(replay.records.len(), OLD_JOURNAL.len());
        let mut again = HEADER.to_vec();
        for (record, (_, text)) in replay.records.iter().zip(OLD_JOURNAL) {
            assert_eq!(serde_json::to_string(record).expect("encodes"), text);
            encode_frame(&mut again, record).expect("encodes");
        }
        assert_eq!(again, old);
        // The instants are the ones written, to the nanosecond.
        let Record::Run(first) = &replay.records[0] else {
            panic!("a run first");
        };
        assert_eq!(
            first.queued_at,
            time::from_unix(1_763_889_600, 123_456_789).expect("valid")
        );
        assert_eq!(first.started_at, time::from_unix(1_763_889_601, 0));
        assert_eq!(
            first.finished_at,
            time::from_unix(1_763_889_602, 500_250_000)
        );
        let Record::Run(second) = &replay.records[1] else {
            panic!("a run second");
        };
        assert_eq!(
            second.queued_at,
            time::from_unix(-1, 999_000_001).expect("valid")
        );
    }

    #[test]
    fn a_record_with_a_bad_timestamp_is_refused_with_the_reason() {
        let text = r#"{"t":"scheduled","job":"j","at":"2026-02-30T00:00:00Z"}"#;
        let err = serde_json::from_str::<Record>(text).expect_err("no Feb 30");
        assert!(
            err.to_string()
                .contains(r#"bad timestamp "2026-02-30T00:00:00Z": input is out of range"#),
            "{err}"
        );
        let text = r#"{"t":"scheduled","job":"j","at":"2026-12-05T19:58:00"}"#;
        let err = serde_json::from_str::<Record>(text).expect_err("no offset");
        assert!(err.to_string().contains("premature end of input"), "{err}");
    }
}
