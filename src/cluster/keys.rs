//! The names of every key tickd keeps in Redis, under `[cluster]
//! namespace` (docs/cluster.md lists them for operators).

/// Key names under one namespace.
#[derive(Debug, Clone)]
pub struct Keys {
    ns: String,
}

impl Keys {
    /// The keys of namespace `ns`.
    pub fn new(ns: &str) -> Keys {
        Keys { ns: ns.to_string() }
    }

    /// One occurrence's claim (value: the owner).
    pub fn claim(&self, job: &str, due_ms: i64) -> String {
        format!("{}:claim:{job}:{due_ms}", self.ns)
    }

    /// The last claimed due time of a job (Unix ms).
    pub fn last(&self, job: &str) -> String {
        format!("{}:last:{job}", self.ns)
    }

    /// Held while a run of an `overlap = "skip"` job runs somewhere.
    pub fn running(&self, job: &str) -> String {
        format!("{}:running:{job}", self.ns)
    }

    /// Hash: occurrences claimed whose run is not yet created.
    pub fn pending(&self) -> String {
        format!("{}:pending", self.ns)
    }

    /// The field of [`Keys::pending`] for one occurrence.
    pub fn pending_field(job: &str, due_ms: i64) -> String {
        format!("{job} {due_ms}")
    }

    /// Hash: runs queued or running, by id (value: the owner).
    pub fn active(&self) -> String {
        format!("{}:active", self.ns)
    }

    /// A node's heartbeat.
    pub fn node(&self, name: &str) -> String {
        format!("{}:node:{name}", self.ns)
    }

    /// Set: every node name seen.
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.ns)
    }

    /// Hash: node name -> node index (fleet run ids).
    pub fn node_index(&self) -> String {
        format!("{}:node_index", self.ns)
    }

    /// One run's record.
    pub fn run(&self, id: u64) -> String {
        format!("{}:run:{id}", self.ns)
    }

    /// What [`Keys::run`] puts before the id.
    pub fn run_prefix(&self) -> String {
        format!("{}:run:", self.ns)
    }

    /// Sorted set of every kept run id.
    pub fn runs(&self) -> String {
        format!("{}:runs", self.ns)
    }

    /// Sorted set of one job's kept run ids (`-`: ad-hoc runs).
    pub fn job_runs(&self, job: Option<&str>) -> String {
        format!("{}:runs:{}", self.ns, job.unwrap_or("-"))
    }

    /// The Stream of run events.
    pub fn events(&self) -> String {
        format!("{}:events", self.ns)
    }

    /// The Stream of runs for any node (`node: "any"`).
    pub fn work(&self) -> String {
        format!("{}:work", self.ns)
    }

    /// Hash: API jobs by name.
    pub fn jobs(&self) -> String {
        format!("{}:jobs", self.ns)
    }

    /// Stream of API job changes.
    pub fn jobs_log(&self) -> String {
        format!("{}:jobs:log", self.ns)
    }
}

/// One entry of the events Stream ([`Keys::events`]).
pub struct Event<'a> {
    /// `run.queued`, `run.started`, `run.finished` or `run.interrupted`.
    pub kind: &'a str,
    /// The run.
    pub run_id: u64,
    /// Its job (`""` for a submitted run).
    pub job: &'a str,
    /// The node it ran (or was queued) on.
    pub node: &'a str,
    /// Its state.
    pub state: &'a str,
    /// The run object, as JSON.
    pub run: &'a str,
}

impl Event<'_> {
    /// Appends the entry to `pipe` (capped at about [`EVENTS_MAXLEN`]).
    pub fn add_to(&self, pipe: &mut redis::Pipeline, keys: &Keys) {
        pipe.cmd("XADD")
            .arg(keys.events())
            .arg("MAXLEN")
            .arg("~")
            .arg(EVENTS_MAXLEN)
            .arg("*")
            .arg("type")
            .arg(self.kind)
            .arg("run_id")
            .arg(self.run_id)
            .arg("job")
            .arg(self.job)
            .arg("node")
            .arg(self.node)
            .arg("state")
            .arg(self.state)
            .arg("run")
            .arg(self.run)
            .ignore();
    }
}

/// The consumer group of [`Keys::work`].
pub const WORK_GROUP: &str = "runners";

/// The events Stream keeps about this many entries (`MAXLEN ~`).
pub const EVENTS_MAXLEN: u64 = 100_000;
