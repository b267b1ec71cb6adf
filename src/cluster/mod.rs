//! Cluster mode on Redis (docs/cluster.md): each occurrence of a shared
//! job is claimed in Redis by one node, which runs it; run records and
//! events go to Redis, where every node reads them.
//!
//! No consensus of tickd's own: every decision that two nodes could race
//! on is one Lua script run inside Redis ([`scripts`]). All Redis I/O is
//! on threads of this module, with timeouts ([`link`]); the event loop
//! only sends [`Command`]s down a channel and hears back through the
//! `notify` callback ([`Notice`]), like the journal thread. Request
//! threads read runs from Redis through [`read`].
//!
//! Threads: `tickd-cluster` (claims, records, events, the heartbeat,
//! reaping dead nodes: [`thread`]) and `tickd-cluster-feed` (runs for any
//! node, and the events of runs waited on from here: [`feed`]).

mod beat;
pub mod feed;
pub mod keys;
pub mod link;
pub mod read;
pub mod scripts;
mod thread;

use crate::config::{ClusterConfig, OnRedisDown};
use crate::state::run::Run;
use crossbeam_channel::Sender;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use keys::Keys;

/// Where a claim ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// This node runs the occurrence.
    Won,
    /// Another node claimed it.
    Lost,
    /// `overlap = "skip"` and a run of the job is running somewhere.
    Busy,
    /// A later occurrence was already claimed: never run.
    Stale,
    /// Redis could not be asked (`on_redis_down` decides).
    Down,
}

/// News from the cluster threads for the loop.
#[derive(Debug)]
pub enum Notice {
    /// The answer to a claim.
    Claimed {
        /// The job.
        job: Arc<str>,
        /// The due time, Unix ms.
        due_ms: i64,
        /// The answer.
        verdict: Verdict,
    },
    /// An occurrence a dead node had claimed and not started, now this
    /// node's to run (under the dead node's run id, if it had created
    /// the run: one record per occurrence).
    TakenOver {
        /// The job.
        job: String,
        /// The due time, Unix ms.
        due_ms: i64,
        /// The run id the dead node gave it, if any.
        run_id: Option<u64>,
    },
    /// A run of a dead node was marked interrupted by this node; the loop
    /// re-runs it if its job's `retries` allow (`attempt` was its attempt).
    Interrupted {
        /// The job.
        job: String,
        /// The interrupted run's attempt.
        attempt: u32,
        /// The interrupted run.
        run_id: u64,
    },
    /// A run for any node (`node: "any"`) taken from Redis, to start here.
    Work(feed::WorkItem),
    /// A run waited on from this node finished on another one: its record.
    RemoteFinished(serde_json::Value),
    /// API jobs changed on another node.
    ApiJobs(Vec<ApiChange>),
    /// The link to Redis came up (true) or went down (false).
    Link(bool),
}

/// One API job changed in Redis (`jobs.put` / `jobs.delete` elsewhere).
#[derive(Debug, Clone)]
pub enum ApiChange {
    /// Defined or redefined: the job object as put.
    Put(serde_json::Value),
    /// Deleted.
    Delete(String),
}

/// What the loop asks of the cluster thread.
#[derive(Debug)]
pub(crate) enum Command {
    Claim {
        job: Arc<str>,
        due_ms: i64,
        skip: bool,
    },
    ClaimDone {
        job: Arc<str>,
        due_ms: i64,
        /// False: the run was refused here, so the occurrence does not
        /// count as running either (its field of `NS:running:JOB` goes).
        started: bool,
    },
    Record(Record),
    PutJob {
        name: String,
        job: serde_json::Value,
    },
    DeleteJob {
        name: String,
    },
    Stop,
}

/// A run record on its way to Redis.
#[derive(Debug)]
pub(crate) struct Record {
    pub id: u64,
    pub job: Option<String>,
    pub state: &'static str,
    pub terminal: bool,
    pub attempt: u32,
    pub skip: bool,
    /// The due time of a scheduled run, Unix ms.
    pub due_ms: Option<i64>,
    pub json: String,
}

/// Counters of claims, for `status` and `/metrics`.
#[derive(Debug, Default)]
pub struct ClaimCounters {
    /// Claims won: this node ran the occurrence.
    pub won: AtomicU64,
    /// Claims another node won.
    pub lost: AtomicU64,
    /// `overlap = "skip"` and an earlier occurrence was running.
    pub busy: AtomicU64,
    /// Older than `claim_ttl` before the job's last claimed occurrence.
    pub stale: AtomicU64,
    /// Redis could not be asked.
    pub down: AtomicU64,
    /// Occurrences of dead nodes run here.
    pub taken_over: AtomicU64,
    /// Runs of dead nodes marked interrupted by this node.
    pub interrupted: AtomicU64,
}

/// A node as its heartbeat shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct NodeView {
    /// `[cluster] node`.
    pub name: String,
    /// tickd's version.
    pub version: String,
    /// Its process id.
    pub pid: u32,
    /// This incarnation: `NAME:PID:START_MS`.
    pub boot: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// Its last heartbeat (RFC 3339, its own clock).
    pub last_seen: String,
    /// Its runs queued or running.
    pub running: usize,
}

/// The link to Redis as the threads last saw it.
#[derive(Debug, Default)]
pub struct LinkState {
    /// Whether the cluster thread's connection is up.
    pub up: AtomicBool,
    /// The last PING's round trip, µs.
    pub rtt_us: AtomicU64,
    /// The last error of the link (cleared when it comes back up).
    pub last_error: Mutex<Option<String>>,
    /// Records and events dropped while Redis was away (the buffer is
    /// bounded).
    pub dropped: AtomicU64,
    /// Times the link came up.
    pub connects: AtomicU64,
}

/// The cluster, as the rest of tickd holds it.
pub struct Cluster {
    /// `[cluster]`.
    pub config: ClusterConfig,
    /// This incarnation of the node (`NAME:PID:START_MS`): runs in
    /// Redis marked with another boot of this node's name are a previous
    /// process's, dead.
    pub boot: String,
    /// The key names of the namespace.
    pub keys: Keys,
    /// The node index of fleet run ids.
    pub node_index: u16,
    /// The Redis link's state.
    pub link: LinkState,
    /// Claims by result.
    pub claims: ClaimCounters,
    /// The nodes with a live heartbeat, by name, as of the last beat.
    pub nodes: Mutex<Vec<NodeView>>,
    /// Runs of this node queued or running (for the heartbeat).
    pub running: AtomicU64,
    /// Run ids waited on from here that run elsewhere.
    pub watched: Mutex<HashSet<u64>>,
    /// Connections for request threads.
    pub reads: read::Reads,
    tx: Sender<Command>,
    feed: Option<feed::Feed>,
    stopped: AtomicBool,
}

/// The callback through which the threads post [`Notice`]s.
pub type NoticeFn = Box<dyn Fn(Notice) + Send + Sync>;

impl Cluster {
    /// Connects (once, to learn the node index; without Redis the index
    /// comes from the name's hash, logged), and starts the threads.
    pub fn start(
        config: ClusterConfig,
        history: usize,
        notify: NoticeFn,
    ) -> Result<Arc<Cluster>, String> {
        let source = Arc::new(link::Source::new(&config)?);
        let keys = Keys::new(&config.namespace);
        let start_ms = crate::time::now().as_millisecond();
        let boot = format!("{}:{}:{start_ms}", config.node, std::process::id());
        let node_index = match source.connect() {
            Ok(mut con) => thread::node_index(&mut con, &keys, &config.node)?,
            Err(e) => {
                let index = thread::hashed_index(&config.node);
                log::warn!(
                    "cluster: Redis at {} unreachable at start ({e}); node index {index} from the node name's hash",
                    link::redacted(&config.redis)
                );
                index
            }
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        let notify: Arc<NoticeFn> = Arc::new(notify);
        let cluster = Arc::new_cyclic(|weak| {
            let feed = feed::Feed::start(Arc::clone(&source), weak.clone(), Arc::clone(&notify));
            Cluster {
                reads: read::Reads::new(Arc::clone(&source), keys.clone()),
                boot,
                keys,
                node_index,
                link: LinkState::default(),
                claims: ClaimCounters::default(),
                nodes: Mutex::new(Vec::new()),
                running: AtomicU64::new(0),
                watched: Mutex::new(HashSet::new()),
                tx,
                feed: Some(feed),
                stopped: AtomicBool::new(false),
                config,
            }
        });
        thread::start(Arc::clone(&cluster), source, rx, history, notify)
            .map_err(|e| format!("cluster thread: {e}"))?;
        log::info!(
            "cluster: node {} (index {node_index}) in namespace {} on {}; on_redis_down = {}",
            cluster.config.node,
            cluster.config.namespace,
            link::redacted(&cluster.config.redis),
            cluster.config.on_redis_down.as_str()
        );
        Ok(cluster)
    }

    /// How often the heartbeat is written (a quarter of `claim_ttl`, at
    /// most a second).
    pub fn beat(&self) -> Duration {
        (self.config.claim_ttl / 4).min(Duration::from_secs(1))
    }

    /// Whether the link to Redis is up.
    pub fn is_up(&self) -> bool {
        self.link.up.load(Ordering::Relaxed)
    }

    /// Whether a due occurrence runs while Redis is unreachable.
    pub fn runs_when_down(&self) -> bool {
        self.config.on_redis_down == OnRedisDown::RunLocal
    }

    /// Asks for an occurrence; the answer comes as [`Notice::Claimed`].
    pub fn claim(&self, job: Arc<str>, due_ms: i64, skip: bool) {
        let _ = self.tx.send(Command::Claim { job, due_ms, skip });
    }

    /// Says the loop is done with a won claim: its run is created
    /// (`started`), or refused here. The occurrence is no longer pending.
    pub fn claim_done(&self, job: Arc<str>, due_ms: i64, started: bool) {
        let _ = self.tx.send(Command::ClaimDone {
            job,
            due_ms,
            started,
        });
    }

    /// Writes a run's record (and its event) to Redis.
    pub fn record(&self, run: &Run, skip: bool) {
        let json = serde_json::to_string(&run.view()).unwrap_or_default();
        let record = Record {
            id: run.id,
            job: run.job.clone(),
            state: run.state.as_str(),
            terminal: run.state.is_terminal(),
            attempt: run.attempt,
            skip,
            due_ms: run.scheduled_at.map(|t| t.as_millisecond()),
            json,
        };
        let _ = self.tx.send(Command::Record(record));
    }

    /// Stores an API job in Redis, for every node.
    pub fn put_job(&self, name: &str, job: serde_json::Value) {
        let _ = self.tx.send(Command::PutJob {
            name: name.to_string(),
            job,
        });
    }

    /// Deletes an API job from Redis, for every node.
    pub fn delete_job(&self, name: &str) {
        let _ = self.tx.send(Command::DeleteJob {
            name: name.to_string(),
        });
    }

    /// Queues a run for any node (`node: "any"`).
    pub fn enqueue(&self, item: &feed::WorkItem) -> Result<(), String> {
        self.reads.enqueue(item)
    }

    /// Acknowledges a run for any node once it ended here.
    pub fn ack(&self, stream_id: &str) {
        if let Some(feed) = &self.feed {
            feed.ack(stream_id);
        }
    }

    /// Passes a run for any node on to another node (this one lacks the
    /// job, or its config refuses it); failed after [`feed::MAX_HOPS`].
    pub fn pass_on(&self, item: feed::WorkItem) {
        if let Some(feed) = &self.feed {
            feed.pass_on(item);
        }
    }

    /// Ends a run for any node that could not start here: its record
    /// says why, and its entry is acknowledged.
    pub fn fail_work(&self, item: feed::WorkItem, why: &str) {
        if let Some(feed) = &self.feed {
            feed.fail(item, why);
        }
    }

    /// Watches run `id` (running on another node) for its end.
    pub fn watch(&self, id: u64) {
        self.watched.lock().insert(id);
    }

    /// Whether run `id` is watched (waited on from here).
    pub fn is_watched(&self, id: u64) -> bool {
        self.watched.lock().contains(&id)
    }

    /// Stops the threads (at the end of shutdown); the heartbeat is
    /// deleted, so other nodes see this one gone at once.
    pub fn stop(&self) {
        if !self.stopped.swap(true, Ordering::Relaxed) {
            let _ = self.tx.send(Command::Stop);
            if let Some(feed) = &self.feed {
                feed.stop();
            }
        }
    }

    /// The `cluster` object of `status` and `GET /cluster`.
    pub fn view(&self) -> ClusterView {
        let c = &self.claims;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ClusterView {
            node: self.config.node.clone(),
            namespace: self.config.namespace.clone(),
            on_redis_down: self.config.on_redis_down.as_str(),
            claim_ttl_ms: u64::try_from(self.config.claim_ttl.as_millis()).unwrap_or(u64::MAX),
            redis: RedisView {
                url: link::redacted(&self.config.redis),
                connected: self.is_up(),
                rtt_ms: load(&self.link.rtt_us) as f64 / 1000.0,
                last_error: self.link.last_error.lock().clone(),
                dropped: load(&self.link.dropped),
            },
            claims: ClaimsView {
                won: load(&c.won),
                lost: load(&c.lost),
                busy: load(&c.busy),
                stale: load(&c.stale),
                down: load(&c.down),
                taken_over: load(&c.taken_over),
                interrupted: load(&c.interrupted),
            },
            nodes: self.nodes.lock().clone(),
        }
    }
}

/// `status.cluster`, `GET /cluster`.
#[derive(Debug, Serialize)]
pub struct ClusterView {
    /// This node.
    pub node: String,
    /// The key prefix.
    pub namespace: String,
    /// `pause` or `run-local`.
    pub on_redis_down: &'static str,
    /// `claim_ttl` in ms.
    pub claim_ttl_ms: u64,
    /// The Redis link.
    pub redis: RedisView,
    /// Claims by result.
    pub claims: ClaimsView,
    /// The nodes with a live heartbeat.
    pub nodes: Vec<NodeView>,
}

/// The Redis link in [`ClusterView`].
#[derive(Debug, Serialize)]
pub struct RedisView {
    /// `[cluster] redis`, without its password.
    pub url: String,
    /// Whether the link is up.
    pub connected: bool,
    /// The last PING's round trip.
    pub rtt_ms: f64,
    /// Why the link is down, if it is.
    pub last_error: Option<String>,
    /// Run records dropped while Redis was away (past the buffer).
    pub dropped: u64,
}

/// Claim counts in [`ClusterView`].
#[derive(Debug, Serialize)]
pub struct ClaimsView {
    /// See [`ClaimCounters`].
    pub won: u64,
    /// See [`ClaimCounters`].
    pub lost: u64,
    /// See [`ClaimCounters`].
    pub busy: u64,
    /// See [`ClaimCounters`].
    pub stale: u64,
    /// See [`ClaimCounters`].
    pub down: u64,
    /// See [`ClaimCounters`].
    pub taken_over: u64,
    /// See [`ClaimCounters`].
    pub interrupted: u64,
}
