//! The typed requests the handlers answer ([`Call`]): one variant per
//! method, each with its params as a struct derived with serde, unknown
//! fields refused.
//!
//! The protocol layer decodes a JSON-RPC request, and the HTTP router a
//! path, a query and a body, into the same [`Call`]
//! (`protocol::call::decode`), which [`super::handle`] answers. The types
//! of the params here carry their own checks (a run id, a run state, a
//! job definition), so a request the handler sees is well-formed; its
//! fields are listed in the order they are checked.
//!
//! Strings the handler only reads borrow from the request; those a
//! command carries to the loop are owned.

use crate::config::JobDef;
use crate::state::run::{RunId, RunState};
use crate::state::JobSource;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::fmt;

/// The name of the newtype a params type reads its value through when
/// its errors are whole messages, sent without the usual
/// ``param `...`: `` prefix (see `protocol::params`).
pub const WHOLE_MESSAGE: &str = "tickd::WholeMessage";

/// A request, decoded and checked.
#[derive(Debug)]
pub enum Call<'a> {
    /// `ping`.
    Ping,
    /// `status`.
    Status,
    /// `jobs.list {limit?, after?, prefix?, source?}`.
    JobsList(JobsList<'a>),
    /// `jobs.get {name}`.
    JobsGet(JobsGet<'a>),
    /// `runs.get {run_id}`.
    RunsGet(RunRef),
    /// `runs.list {job?, state?, limit?, before?}`.
    RunsList(RunsList<'a>),
    /// `jobs.run {name, wait?, args?}`.
    JobsRun(JobsRun),
    /// `submit {job, wait?, args?}` (boxed: a job definition is large).
    Submit(Box<Submit>),
    /// `jobs.put {job}` (boxed: a job definition is large).
    JobsPut(Box<JobsPut>),
    /// `jobs.delete {name, cancel?}`.
    JobsDelete(JobsDelete),
    /// `jobs.pause {name}`.
    JobsPause(JobName<'a>),
    /// `jobs.resume {name}`.
    JobsResume(JobName<'a>),
    /// `runs.cancel {run_id}`.
    RunsCancel(RunRef),
    /// `runs.output {run_id, follow?, from?}`.
    RunsOutput(RunsOutput),
    /// `subscribe {jobs?}`.
    Subscribe(Subscribe),
    /// `reload`.
    Reload,
    /// `shutdown`.
    Shutdown,
    /// `upgrade`: as SIGUSR2.
    Upgrade,
    /// `debug.kill_worker` (test hook).
    KillWorker,
    /// `debug.failpoint {name, actions}` (test hook).
    Failpoint(Failpoint<'a>),
    /// `debug.clock_jump {ms}` (test hook).
    ClockJump(ClockJump),
}

/// The params of a method that takes none.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// `{name}`: a job.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobName<'a> {
    /// The job's name.
    pub name: &'a str,
}

/// `jobs.get {name, next?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsGet<'a> {
    /// The job's name.
    pub name: &'a str,
    /// Also answer `next_runs`, the next this many due times (1 to
    /// [`MAX_NEXT_RUNS`]).
    pub next: Option<u64>,
}

/// The largest `next` of `jobs.get`.
pub const MAX_NEXT_RUNS: u64 = 1000;

/// `{run_id}`: a run.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRef {
    /// The run.
    pub run_id: RunKey,
}

/// `runs.output {run_id, follow?, from?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsOutput {
    /// The run.
    pub run_id: RunKey,
    /// Go on sending `run.output` notifications until the run ends.
    pub follow: Option<bool>,
    /// The offset of the first byte wanted (default 0).
    pub from: Option<u64>,
}

/// A run id as a client gives it: a string (or a number) naming a run
/// that may exist, or a string that cannot name one (answered as
/// "no such run", not as a bad param).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunKey {
    /// A well-formed id.
    Id(RunId),
    /// A string no run can have as its id, as written.
    Unknown(String),
}

impl<'de> Deserialize<'de> for RunKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RunKeyVisitor;
        impl Visitor<'_> for RunKeyVisitor {
            type Value = RunKey;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<RunKey, E> {
                Ok(match s.parse() {
                    Ok(id) => RunKey::Id(id),
                    Err(_) => RunKey::Unknown(s.to_string()),
                })
            }

            fn visit_u64<E: de::Error>(self, id: u64) -> Result<RunKey, E> {
                Ok(RunKey::Id(id))
            }
        }
        d.deserialize_any(RunKeyVisitor)
    }
}

/// `jobs.list {limit?, after?, prefix?, source?}`: with none of them, the
/// whole list (an array); with any, one page (see `methods::jobs`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsList<'a> {
    /// At most this many jobs (checked to be at least 1 by the handler).
    pub limit: Option<u64>,
    /// Only names after this one (exclusive; need not be a job).
    #[serde(borrow)]
    pub after: Option<&'a str>,
    /// Only names starting with this.
    #[serde(borrow)]
    pub prefix: Option<&'a str>,
    /// Only jobs of this source.
    pub source: Option<SourceFilter>,
}

impl JobsList<'_> {
    /// Whether a page was asked for (any param given), rather than the
    /// whole list.
    pub fn paged(&self) -> bool {
        self.limit.is_some()
            || self.after.is_some()
            || self.prefix.is_some()
            || self.source.is_some()
    }
}

/// A job source named by a client: `"file"` or `"api"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceFilter(pub JobSource);

impl<'de> Deserialize<'de> for SourceFilter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SourceVisitor;
        impl Visitor<'_> for SourceVisitor {
            type Value = SourceFilter;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<SourceFilter, E> {
                match s {
                    "file" => Ok(SourceFilter(JobSource::File)),
                    "api" => Ok(SourceFilter(JobSource::Api)),
                    _ => Err(E::custom("must be one of file, api")),
                }
            }
        }
        d.deserialize_str(SourceVisitor)
    }
}

/// `runs.list {job?, state?, limit?, before?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsList<'a> {
    /// Only runs of this job.
    #[serde(borrow)]
    pub job: Option<&'a str>,
    /// Only runs in this state.
    pub state: Option<StateFilter>,
    /// At most this many (checked to be at least 1 by the handler).
    pub limit: Option<u64>,
    /// Only runs older than this one (the last run of the page before).
    pub before: Option<RunKey>,
}

/// A run state named by a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateFilter(pub RunState);

impl<'de> Deserialize<'de> for StateFilter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StateVisitor;
        impl Visitor<'_> for StateVisitor {
            type Value = StateFilter;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<StateFilter, E> {
                RunState::parse(s).map(StateFilter).ok_or_else(|| {
                    E::custom(
                        "must be one of scheduled, queued, running, succeeded, failed, timed_out, \
                         cancelled, interrupted",
                    )
                })
            }
        }
        d.deserialize_str(StateVisitor)
    }
}

/// `jobs.run {name, wait?, args?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsRun {
    /// The job.
    pub name: String,
    /// Answer with the finished run instead of its id.
    pub wait: Option<bool>,
    /// Passed to the job.
    pub args: Option<Map<String, Value>>,
    /// `"local"` (default) or `"any"` (cluster mode: any node that has
    /// the job runs it).
    pub node: Option<Node>,
    /// Run it this long from now (humantime, e.g. `"10m"`).
    pub delay: Option<String>,
    /// Run it at this instant (RFC 3339 with its offset).
    pub at: Option<String>,
}

/// Where a run requested by a client runs (cluster mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// On the node that received the request.
    Local,
    /// On any node that has the job (through Redis).
    Any,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NodeVisitor;
        impl Visitor<'_> for NodeVisitor {
            type Value = Node;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Node, E> {
                match s {
                    "local" => Ok(Node::Local),
                    "any" => Ok(Node::Any),
                    _ => Err(E::custom("must be one of local, any")),
                }
            }
        }
        d.deserialize_str(NodeVisitor)
    }
}

/// `submit {job, wait?, args?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submit {
    /// The ad-hoc job, checked by the config file's rules.
    pub job: AdhocJob,
    /// Answer with the finished run instead of its id.
    pub wait: Option<bool>,
    /// Passed to the job.
    pub args: Option<Map<String, Value>>,
    /// `"local"` (default) or `"any"`, as for `jobs.run`.
    pub node: Option<Node>,
}

/// A submitted job: its definition, checked, and the object as sent (kept
/// in the journal, so that a restart can run it again). A definition the
/// config rules refuse is answered with their message as it is
/// (`job.command: ...`).
#[derive(Debug)]
pub struct AdhocJob {
    /// The checked definition.
    pub def: JobDef,
    /// The object as the client sent it.
    pub source: Map<String, Value>,
}

impl<'de> Deserialize<'de> for AdhocJob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AdhocVisitor;
        impl<'de> Visitor<'de> for AdhocVisitor {
            type Value = AdhocJob;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }

            fn visit_newtype_struct<D: Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<AdhocJob, D::Error> {
                let source = Map::<String, Value>::deserialize(d)?;
                let def = crate::config::parse_adhoc_job(&source).map_err(de::Error::custom)?;
                Ok(AdhocJob { def, source })
            }
        }
        d.deserialize_newtype_struct(WHOLE_MESSAGE, AdhocVisitor)
    }
}

/// `jobs.put {job}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsPut {
    /// The job, checked by the config file's rules, `name` included.
    pub job: ApiJob,
}

/// A job defined at run time: its definition, checked by the config file's
/// rules (all but whether its `on_failure` target exists, which the loop
/// checks), and the object as sent (journaled). A definition the rules
/// refuse is answered with their message as it is (`job.command: ...`).
#[derive(Debug)]
pub struct ApiJob {
    /// The checked definition.
    pub def: JobDef,
    /// The object as the client sent it.
    pub source: Map<String, Value>,
}

impl<'de> Deserialize<'de> for ApiJob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ApiJobVisitor;
        impl<'de> Visitor<'de> for ApiJobVisitor {
            type Value = ApiJob;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }

            fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<ApiJob, D::Error> {
                let source = Map::<String, Value>::deserialize(d)?;
                let def = crate::config::parse_api_job(&source).map_err(de::Error::custom)?;
                Ok(ApiJob { def, source })
            }
        }
        d.deserialize_newtype_struct(WHOLE_MESSAGE, ApiJobVisitor)
    }
}

/// `jobs.delete {name, cancel?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsDelete {
    /// The job.
    pub name: String,
    /// Kill its running runs instead of letting them finish.
    pub cancel: Option<bool>,
}

/// `subscribe {jobs?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscribe {
    /// Only runs of these jobs (checked to exist by the handler).
    pub jobs: Option<JobNames>,
}

/// An array of job names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobNames(pub Vec<String>);

impl<'de> Deserialize<'de> for JobNames {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NamesVisitor;
        impl<'de> Visitor<'de> for NamesVisitor {
            type Value = JobNames;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of job names")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JobNames, A::Error> {
                let mut names = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(item) = seq.next_element::<Value>()? {
                    match item {
                        Value::String(name) => names.push(name),
                        _ => {
                            return Err(de::Error::invalid_type(
                                de::Unexpected::Other("an item"),
                                &self,
                            ))
                        }
                    }
                }
                Ok(JobNames(names))
            }
        }
        d.deserialize_seq(NamesVisitor)
    }
}

/// `debug.failpoint {name, actions}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failpoint<'a> {
    /// The fail point.
    pub name: &'a str,
    /// The `fail` crate's actions, or `off`.
    pub actions: &'a str,
}

/// `debug.clock_jump {ms}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockJump {
    /// How far to move the wall clock (negative: back); required, but
    /// its absence is answered like a value of the wrong type.
    pub ms: Option<Millis>,
}

/// A signed number of milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Millis(pub i64);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MillisVisitor;
        impl Visitor<'_> for MillisVisitor {
            type Value = Millis;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer (milliseconds)")
            }

            fn visit_i64<E: de::Error>(self, ms: i64) -> Result<Millis, E> {
                Ok(Millis(ms))
            }

            fn visit_u64<E: de::Error>(self, ms: u64) -> Result<Millis, E> {
                i64::try_from(ms)
                    .map(Millis)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(ms), &self))
            }
        }
        d.deserialize_i64(MillisVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Decodes with serde_json's own deserializer: the derived types
    /// refuse unknown fields whoever decodes them.
    fn from<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn unknown_fields_are_refused() {
        for err in [
            from::<NoParams>(json!({"x": 1})).err(),
            from::<RunRef>(json!({"run_id": "1", "x": 1})).err(),
            from::<JobsRun>(json!({"name": "a", "wiat": true})).err(),
            from::<Subscribe>(json!({"job": ["a"]})).err(),
            from::<ClockJump>(json!({"ms": 1, "s": 1})).err(),
        ] {
            assert!(err.is_some_and(|e| e.contains("unknown field")));
        }
        let run: JobsRun = from(json!({"name": "a", "wait": true, "args": {"n": 1}})).expect("ok");
        assert_eq!((run.name.as_str(), run.wait), ("a", Some(true)));
    }

    #[test]
    fn run_keys_parse_numbers_and_keep_unknown_strings() {
        assert_eq!(from::<RunKey>(json!("42")), Ok(RunKey::Id(42)));
        assert_eq!(from::<RunKey>(json!(42)), Ok(RunKey::Id(42)));
        assert_eq!(
            from::<RunKey>(json!("nope")),
            Ok(RunKey::Unknown("nope".into()))
        );
        assert!(from::<RunKey>(json!(-1)).is_err());
        assert!(from::<RunKey>(json!(true)).is_err());
    }

    #[test]
    fn states_names_and_millis_check_their_values() {
        assert_eq!(
            from::<StateFilter>(json!("failed")),
            Ok(StateFilter(RunState::Failed))
        );
        assert!(from::<StateFilter>(json!("done")).is_err_and(|e| e.contains("must be one of")));
        assert_eq!(
            from::<JobNames>(json!(["a", "b"])),
            Ok(JobNames(vec!["a".into(), "b".into()]))
        );
        assert!(from::<JobNames>(json!(["a", 1])).is_err());
        assert!(from::<JobNames>(json!("a")).is_err());
        assert_eq!(from::<Millis>(json!(-5)), Ok(Millis(-5)));
        assert!(from::<Millis>(json!(u64::MAX)).is_err());
        assert!(from::<Millis>(json!(1.5)).is_err());
    }

    #[test]
    fn a_submitted_job_is_checked_by_the_config_rules() {
        let job: AdhocJob = from(json!({"command": ["true"]})).expect("valid");
        assert_eq!(job.def.retries, 0);
        assert!(job.source.contains_key("command"));
        let err = from::<AdhocJob>(json!({"command": []})).expect_err("refused");
        assert!(err.starts_with("job.command"), "{err}");
    }
}
