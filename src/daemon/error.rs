//! What can go wrong in an operation of the daemon, in its own words.
//!
//! The core (jobs, runs, schedules, reload, shutdown) and the request
//! handlers above it report failures as an [`Error`]: one variant per
//! kind of refusal, carrying what its message needs. Nothing here knows
//! about the wire: the protocol layer maps each variant to its JSON-RPC
//! error code (and, from the code, HTTP's status), taking the message from
//! [`Error`]'s `Display`, which the daemon's own logs use too.

use std::fmt;

/// Why an operation of the daemon was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// No job of this name.
    NoSuchJob(String),
    /// No run of this id (or no longer kept), as the client wrote it.
    NoSuchRun(String),
    /// A run was asked for while one of the job is active and its
    /// `overlap` is `skip`.
    AlreadyRunning {
        /// The job.
        job: String,
    },
    /// A reload was refused; the old configuration stays. The message
    /// names the file and line.
    ReloadRejected(String),
    /// The pool's run queue is full (its capacity, when the refusal knows it).
    QueueFull {
        /// Runs the queue holds.
        capacity: Option<usize>,
    },
    /// The job's backlog (`overlap = queue`) is full.
    BacklogFull {
        /// The job.
        job: String,
        /// Runs the backlog holds.
        capacity: usize,
    },
    /// Shutdown has begun: no new run is started.
    ShuttingDown,
    /// The configuration does not allow the operation; says which setting would.
    Forbidden(&'static str),
    /// A parameter's value is not acceptable (its type was right).
    Invalid {
        /// The parameter.
        param: &'static str,
        /// What is wrong with it.
        what: String,
    },
    /// `runs.list`: the answer would be larger than `max_output_bytes`.
    AnswerTooLarge {
        /// `daemon.max_output_bytes`.
        cap: usize,
        /// How many of the newest runs would fit.
        fit: usize,
    },
    /// With `state_dir`: the request took effect in memory, but the journal
    /// could not be made durable (a failed write or fdatasync), so it is
    /// not acknowledged. Says what failed.
    NotDurable(String),
    /// `jobs.list` without params: the whole list would be larger than
    /// `max_output_bytes` (the client must page).
    JobListTooLarge {
        /// `daemon.max_output_bytes`.
        cap: usize,
        /// Jobs in the list.
        jobs: usize,
    },
    /// A page of `jobs.list`: the next job object alone is larger than
    /// `max_output_bytes`.
    JobTooLarge {
        /// The job.
        job: String,
        /// `daemon.max_output_bytes`.
        cap: usize,
    },
    /// A bug in tickd; should never be seen.
    Internal(String),
    /// Cluster mode: Redis could not be reached for a request that needs
    /// it (`node: "any"`); says why.
    ClusterDown(String),
    /// `jobs.put`: the job object is not a valid job; the message lists
    /// every problem as `job.KEY: message`.
    BadJob(String),
    /// `jobs.put` / `jobs.delete` of a job the config file defines.
    FileJob(String),
    /// `jobs.delete` of a job that other jobs name (`on_failure`).
    HasDependents {
        /// The job to delete.
        job: String,
        /// The jobs naming it, by name.
        dependents: Vec<String>,
    },
}

impl Error {
    /// Whether the operation conflicts with the current state (a run
    /// refused by `overlap = skip`, a rejected reload): an expected
    /// outcome rather than a failure.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Error::AlreadyRunning { .. }
                | Error::ReloadRejected(_)
                | Error::FileJob(_)
                | Error::HasDependents { .. }
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoSuchJob(name) => write!(f, "no such job: {name}"),
            Error::NoSuchRun(id) => write!(f, "no such run: {id}"),
            Error::AlreadyRunning { job } => {
                write!(f, "job {job} is already running (overlap = skip)")
            }
            Error::ReloadRejected(why) => write!(f, "reload rejected: {why}"),
            Error::QueueFull { capacity: None } => f.write_str("run queue is full"),
            Error::QueueFull {
                capacity: Some(capacity),
            } => write!(f, "run queue is full ({capacity} runs waiting)"),
            Error::BacklogFull { job, capacity } => {
                write!(f, "job {job}: backlog full ({capacity} runs waiting)")
            }
            Error::ShuttingDown => f.write_str("daemon is shutting down; no new runs"),
            Error::Forbidden(why) => f.write_str(why),
            Error::Invalid { param, what } => write!(f, "param `{param}`: {what}"),
            Error::AnswerTooLarge { cap, fit } => {
                write!(
                    f,
                    "param `limit`: the answer would be larger than max_output_bytes ({cap} bytes); "
                )?;
                if *fit == 0 {
                    f.write_str(
                        "even the newest run alone does not fit; get it with `runs.get`, or raise \
                         daemon.max_output_bytes",
                    )
                } else {
                    write!(f, "ask for fewer runs (`limit` of at most {fit})")
                }
            }
            Error::NotDurable(why) => write!(
                f,
                "not acknowledged: the state_dir journal could not be made durable ({why}); \
                 the request took effect in memory but may not survive a restart"
            ),
            Error::JobListTooLarge { cap, jobs } => write!(
                f,
                "param `limit`: the list of {jobs} jobs is larger than max_output_bytes ({cap} \
                 bytes); page through it: jobs.list {{\"limit\": 1000}}, then again with `after` \
                 set to the answer's `next_after` until it is null"
            ),
            Error::JobTooLarge { job, cap } => write!(
                f,
                "param `limit`: the job object of {job} alone is larger than max_output_bytes \
                 ({cap} bytes); raise daemon.max_output_bytes, or page on with `after` set to {job}"
            ),
            Error::Internal(why) => write!(f, "internal error: {why}"),
            Error::ClusterDown(why) => write!(
                f,
                "Redis unreachable ({why}): a run for any node cannot be queued; retry, or \
                 use node \"local\""
            ),
            Error::BadJob(why) => f.write_str(why),
            Error::FileJob(name) => write!(
                f,
                "job {name} is defined in the config file (source file): edit the file instead"
            ),
            Error::HasDependents { job, dependents } => write!(
                f,
                "job {job} is named in on_failure by {}: change or delete {} first",
                dependents.join(", "),
                if dependents.len() == 1 { "it" } else { "them" }
            ),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn messages_name_what_they_are_about() {
        let cases = [
            (Error::NoSuchJob("a".into()), "no such job: a"),
            (Error::NoSuchRun("x7".into()), "no such run: x7"),
            (
                Error::AlreadyRunning { job: "a".into() },
                "job a is already running (overlap = skip)",
            ),
            (
                Error::ReloadRejected("f.toml:3: bad".into()),
                "reload rejected: f.toml:3: bad",
            ),
            (Error::QueueFull { capacity: None }, "run queue is full"),
            (
                Error::QueueFull { capacity: Some(8) },
                "run queue is full (8 runs waiting)",
            ),
            (
                Error::BacklogFull {
                    job: "a".into(),
                    capacity: 2,
                },
                "job a: backlog full (2 runs waiting)",
            ),
            (Error::ShuttingDown, "daemon is shutting down; no new runs"),
            (
                Error::Invalid {
                    param: "limit",
                    what: "must be at least 1".into(),
                },
                "param `limit`: must be at least 1",
            ),
            (
                Error::AnswerTooLarge { cap: 10, fit: 0 },
                "param `limit`: the answer would be larger than max_output_bytes (10 bytes); even \
                 the newest run alone does not fit; get it with `runs.get`, or raise \
                 daemon.max_output_bytes",
            ),
            (
                Error::AnswerTooLarge { cap: 10, fit: 3 },
                "param `limit`: the answer would be larger than max_output_bytes (10 bytes); ask \
                 for fewer runs (`limit` of at most 3)",
            ),
            (
                Error::NotDurable("EIO".into()),
                "not acknowledged: the state_dir journal could not be made durable (EIO); the \
                 request took effect in memory but may not survive a restart",
            ),
            (
                Error::JobListTooLarge { cap: 10, jobs: 3 },
                "param `limit`: the list of 3 jobs is larger than max_output_bytes (10 bytes); page \
                 through it: jobs.list {\"limit\": 1000}, then again with `after` set to the \
                 answer's `next_after` until it is null",
            ),
            (
                Error::JobTooLarge {
                    job: "a".into(),
                    cap: 10,
                },
                "param `limit`: the job object of a alone is larger than max_output_bytes (10 \
                 bytes); raise daemon.max_output_bytes, or page on with `after` set to a",
            ),
            (Error::Internal("oops".into()), "internal error: oops"),
            (
                Error::BadJob("job.command: must name a program".into()),
                "job.command: must name a program",
            ),
            (
                Error::FileJob("backup".into()),
                "job backup is defined in the config file (source file): edit the file instead",
            ),
            (
                Error::HasDependents {
                    job: "alarm".into(),
                    dependents: vec!["a".into(), "b".into()],
                },
                "job alarm is named in on_failure by a, b: change or delete them first",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
        assert!(Error::AlreadyRunning { job: "a".into() }.is_conflict());
        assert!(!Error::ShuttingDown.is_conflict());
    }
}
