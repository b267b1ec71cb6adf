//! The `tickd-cluster` thread: one connection to Redis for everything the
//! loop sends ([`Command`]s, taken in batches and sent as one pipeline),
//! and the heartbeat every [`Cluster::beat`] (`beat.rs`).
//!
//! While Redis is unreachable: claims are answered [`Verdict::Down`] at
//! once, records wait in a bounded buffer (the oldest dropped and
//! counted past [`MAX_BUFFERED`]), and the link is retried with a backoff
//! from 100 ms to 5 s.

use super::keys::{Event, Keys};
use super::link::Source;
use super::{scripts, Cluster, Command, Notice, NoticeFn, Record, Verdict};
use redis::{Connection, RedisResult};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Records kept while Redis is away, at most.
pub const MAX_BUFFERED: usize = 10_000;
/// Commands sent in one pipeline, at most.
const BATCH: usize = 512;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The node index of `name`: its own from earlier starts, else the next
/// free one.
pub(super) fn node_index(con: &mut Connection, keys: &Keys, name: &str) -> Result<u16, String> {
    let key = keys.node_index();
    let known: Option<u16> = redis::cmd("HGET")
        .arg(&key)
        .arg(name)
        .query(con)
        .map_err(|e| format!("cluster: reading the node index: {e}"))?;
    if let Some(i) = known {
        return Ok(i);
    }
    let taken: Vec<u16> = redis::cmd("HVALS")
        .arg(&key)
        .query(con)
        .map_err(|e| format!("cluster: reading node indexes: {e}"))?;
    let start = hashed_index(name);
    for k in 0..1024u16 {
        let i = (start + k) % 1024;
        if taken.contains(&i) {
            continue;
        }
        // HSETNX: if another node of this name raced us, take its answer.
        let set: bool = redis::cmd("HSETNX")
            .arg(&key)
            .arg(name)
            .arg(i)
            .query(con)
            .map_err(|e| e.to_string())?;
        if set {
            return Ok(i);
        }
        return node_index(con, keys, name);
    }
    Err("cluster: all 1024 node indexes are taken (see docs/cluster.md: node_index)".into())
}

/// A node index from the name alone (when Redis cannot be asked).
pub(super) fn hashed_index(name: &str) -> u16 {
    let h = crc32fast::hash(name.as_bytes());
    (h % 1024) as u16
}

/// Starts the thread.
pub(super) fn start(
    cluster: Arc<Cluster>,
    source: Arc<Source>,
    rx: crossbeam_channel::Receiver<Command>,
    history: usize,
    notify: Arc<NoticeFn>,
) -> std::io::Result<()> {
    let sha = scripts::ALL.map(|s| redis::Script::new(s).get_hash().to_string());
    let mut t = Link {
        cluster,
        source,
        con: None,
        retry_at: Instant::now(),
        backoff: BACKOFF_MIN,
        buffered: VecDeque::new(),
        local: HashMap::new(),
        history: history.max(1),
        notify,
        sha,
        jobs_log_id: "$".to_string(),
        started_at: crate::time::rfc3339(&crate::time::now()),
    };
    std::thread::Builder::new()
        .name("tickd-cluster".into())
        .spawn(move || t.run(rx))?;
    Ok(())
}

/// What this node keeps about one of its runs not yet ended.
pub(super) struct Local {
    pub(super) job: Option<String>,
    pub(super) skip: bool,
}

/// The thread's state (its heartbeat is in `beat.rs`).
pub(super) struct Link {
    pub(super) cluster: Arc<Cluster>,
    source: Arc<Source>,
    pub(super) con: Option<Connection>,
    retry_at: Instant,
    backoff: Duration,
    buffered: VecDeque<Command>,
    pub(super) local: HashMap<u64, Local>,
    history: usize,
    pub(super) notify: Arc<NoticeFn>,
    /// SHA1 of each of [`scripts::ALL`], in order.
    pub(super) sha: [String; 3],
    pub(super) jobs_log_id: String,
    pub(super) started_at: String,
}

const CLAIM: usize = 0;
/// The index of [`scripts::TAKE_OVER`] in [`Link::sha`].
pub(super) const TAKE_OVER: usize = 1;
const TRIM: usize = 2;

impl Link {
    fn run(&mut self, rx: crossbeam_channel::Receiver<Command>) {
        let beat = self.cluster.beat();
        let mut next_beat = Instant::now();
        loop {
            let wait = next_beat.saturating_duration_since(Instant::now());
            let first = match rx.recv_timeout(wait) {
                Ok(c) => Some(c),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return self.stop(),
            };
            let mut batch: Vec<Command> = first.into_iter().collect();
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(_) => break,
                }
            }
            if batch.iter().any(|c| matches!(c, Command::Stop)) {
                batch.retain(|c| !matches!(c, Command::Stop));
                self.ensure_link();
                self.send(batch);
                return self.stop();
            }
            self.ensure_link();
            if !batch.is_empty() {
                self.send(batch);
            }
            if Instant::now() >= next_beat {
                self.ensure_link();
                if self.con.is_some() {
                    if let Err(e) = self.beat() {
                        self.lost(&e);
                    }
                }
                next_beat = Instant::now() + beat;
            }
        }
    }

    /// Connects if the link is down and the backoff allows.
    fn ensure_link(&mut self) {
        if self.con.is_some() || Instant::now() < self.retry_at {
            return;
        }
        match self.source.connect().and_then(|mut con| {
            for s in scripts::ALL {
                redis::Script::new(s).load(&mut con)?;
            }
            Ok(con)
        }) {
            Ok(mut con) => {
                // A Redis that restarted empty has forgotten the node
                // indexes: this node's is written back, so no new node
                // takes it.
                let _ = redis::cmd("HSET")
                    .arg(self.cluster.keys.node_index())
                    .arg(&self.cluster.config.node)
                    .arg(self.cluster.node_index)
                    .query::<()>(&mut con);
                self.check_index(&mut con);
                self.con = Some(con);
                self.backoff = BACKOFF_MIN;
                let link = &self.cluster.link;
                link.connects.fetch_add(1, Ordering::Relaxed);
                *link.last_error.lock() = None;
                if !link.up.swap(true, Ordering::Relaxed) {
                    log::info!(
                        "cluster: connected to Redis at {}",
                        super::link::redacted(&self.cluster.config.redis)
                    );
                    (self.notify)(Notice::Link(true));
                }
                let buffered: Vec<Command> = self.buffered.drain(..).collect();
                if !buffered.is_empty() {
                    log::info!(
                        "cluster: writing {} run record(s) kept while Redis was away",
                        buffered.len()
                    );
                    self.send(buffered);
                }
            }
            Err(e) => {
                self.retry_at = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                self.note_error(&e.to_string());
            }
        }
    }

    /// Logs an error if another node name holds this node's index (this
    /// node started while Redis was away and took its index from its
    /// name's hash): run ids of the two may collide.
    fn check_index(&self, con: &mut Connection) {
        let all: HashMap<String, u16> = redis::cmd("HGETALL")
            .arg(self.cluster.keys.node_index())
            .query(con)
            .unwrap_or_default();
        let me = &self.cluster.config.node;
        for (name, index) in all {
            if index == self.cluster.node_index && &name != me {
                log::error!(
                    "cluster: node {name} holds this node's index {index} too (this node started while Redis was unreachable): their run ids may collide; restart this node while Redis is reachable"
                );
            }
        }
    }

    /// The link failed: drop the connection, retry after the backoff.
    fn lost(&mut self, e: &redis::RedisError) {
        self.con = None;
        self.retry_at = Instant::now() + self.backoff;
        self.note_error(&e.to_string());
    }

    fn note_error(&self, e: &str) {
        let link = &self.cluster.link;
        *link.last_error.lock() = Some(e.to_string());
        if link.up.swap(false, Ordering::Relaxed) {
            log::warn!(
                "cluster: Redis unreachable ({e}); {}",
                if self.cluster.runs_when_down() {
                    "on_redis_down = run-local: this node runs every occurrence itself"
                } else {
                    "on_redis_down = pause: scheduled occurrences are not run until it returns"
                }
            );
            (self.notify)(Notice::Link(false));
        }
    }

    /// Sends a batch as one pipeline; claims are answered, records kept
    /// for later if Redis is away.
    fn send(&mut self, batch: Vec<Command>) {
        let mut claims = Vec::new();
        let mut records = Vec::new();
        let mut dones = Vec::new();
        // API job changes, kept like records if Redis is away.
        let mut later = Vec::new();
        let mut pipe = redis::pipe();
        for c in batch {
            match c {
                Command::Claim { job, due_ms, skip } => {
                    self.claim_into(&mut pipe, &job, due_ms, skip);
                    claims.push((job, due_ms));
                }
                Command::ClaimDone {
                    job,
                    due_ms,
                    started,
                } => {
                    let keys = &self.cluster.keys;
                    pipe.cmd("HDEL")
                        .arg(keys.pending())
                        .arg(Keys::pending_field(&job, due_ms))
                        .ignore();
                    if !started {
                        pipe.cmd("HDEL")
                            .arg(keys.running(&job))
                            .arg(due_ms)
                            .ignore();
                    }
                    dones.push((job, due_ms, started));
                }
                Command::Record(r) => {
                    self.record_into(&mut pipe, &r);
                    records.push(r);
                }
                Command::PutJob { name, job } => {
                    let keys = &self.cluster.keys;
                    pipe.cmd("HSET")
                        .arg(keys.jobs())
                        .arg(&name)
                        .arg(job.to_string())
                        .ignore();
                    pipe.cmd("XADD")
                        .arg(keys.jobs_log())
                        .arg("MAXLEN")
                        .arg("~")
                        .arg(10_000)
                        .arg("*")
                        .arg("op")
                        .arg("put")
                        .arg("name")
                        .arg(&name)
                        .arg("node")
                        .arg(&self.cluster.config.node)
                        .ignore();
                    later.push(Command::PutJob { name, job });
                }
                Command::DeleteJob { name } => {
                    let keys = &self.cluster.keys;
                    pipe.cmd("HDEL").arg(keys.jobs()).arg(&name).ignore();
                    pipe.cmd("XADD")
                        .arg(keys.jobs_log())
                        .arg("MAXLEN")
                        .arg("~")
                        .arg(10_000)
                        .arg("*")
                        .arg("op")
                        .arg("delete")
                        .arg("name")
                        .arg(&name)
                        .arg("node")
                        .arg(&self.cluster.config.node)
                        .ignore();
                    later.push(Command::DeleteJob { name });
                }
                Command::Stop => {}
            }
        }
        let answers: RedisResult<Vec<String>> = match self.con.as_mut() {
            Some(con) => pipe.query(con),
            None => Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "not connected",
            ))),
        };
        match answers {
            Ok(verdicts) => {
                for ((job, due_ms), v) in claims.into_iter().zip(verdicts) {
                    let verdict = match v.as_str() {
                        "won" => Verdict::Won,
                        "busy" => Verdict::Busy,
                        "stale" => Verdict::Stale,
                        _ => Verdict::Lost,
                    };
                    self.answer(job, due_ms, verdict);
                }
            }
            Err(e) => {
                if self.con.is_some() {
                    self.lost(&e);
                }
                for (job, due_ms) in claims {
                    self.answer(job, due_ms, Verdict::Down);
                }
                for r in records {
                    self.keep(Command::Record(r));
                }
                for (job, due_ms, started) in dones {
                    self.keep(Command::ClaimDone {
                        job,
                        due_ms,
                        started,
                    });
                }
                for c in later {
                    self.keep(c);
                }
            }
        }
    }

    fn answer(&self, job: Arc<str>, due_ms: i64, verdict: Verdict) {
        let c = &self.cluster.claims;
        let counter = match verdict {
            Verdict::Won => &c.won,
            Verdict::Lost => &c.lost,
            Verdict::Busy => &c.busy,
            Verdict::Stale => &c.stale,
            Verdict::Down => &c.down,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        (self.notify)(Notice::Claimed {
            job,
            due_ms,
            verdict,
        });
    }

    /// Keeps a record (or a claim's end) for when Redis is back (bounded).
    fn keep(&mut self, r: Command) {
        if self.buffered.len() >= MAX_BUFFERED {
            self.buffered.pop_front();
            self.cluster.link.dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.buffered.push_back(r);
    }

    fn claim_into(&self, pipe: &mut redis::Pipeline, job: &str, due_ms: i64, skip: bool) {
        let keys = &self.cluster.keys;
        pipe.cmd("EVALSHA")
            .arg(&self.sha[CLAIM])
            .arg(4)
            .arg(keys.claim(job, due_ms))
            .arg(keys.last(job))
            .arg(keys.running(job))
            .arg(keys.pending())
            .arg(&self.cluster.boot)
            .arg(due_ms)
            .arg(self.ttl_ms())
            .arg(u8::from(skip))
            .arg(Keys::pending_field(job, due_ms));
    }

    pub(super) fn ttl_ms(&self) -> u64 {
        u64::try_from(self.cluster.config.claim_ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// The commands of one run record: the record, its indexes, the
    /// active table, the `running` key, the event, the history bound.
    fn record_into(&mut self, pipe: &mut redis::Pipeline, r: &Record) {
        let keys = &self.cluster.keys;
        let boot = &self.cluster.boot;
        pipe.cmd("SET").arg(keys.run(r.id)).arg(&r.json).ignore();
        pipe.cmd("ZADD")
            .arg(keys.runs())
            .arg(r.id)
            .arg(r.id)
            .ignore();
        let job_runs = keys.job_runs(r.job.as_deref());
        pipe.cmd("ZADD").arg(&job_runs).arg(r.id).arg(r.id).ignore();
        if r.terminal {
            pipe.cmd("HDEL").arg(keys.active()).arg(r.id).ignore();
            self.local.remove(&r.id);
            if let Some(job) = &r.job {
                pipe.cmd("HDEL")
                    .arg(keys.running(job))
                    .arg(r.due_ms.unwrap_or(0))
                    .ignore();
            }
            pipe.cmd("EVALSHA")
                .arg(&self.sha[TRIM])
                .arg(2)
                .arg(&job_runs)
                .arg(keys.runs())
                .arg(self.history)
                .arg(keys.run_prefix())
                .ignore();
        } else {
            pipe.cmd("HSET")
                .arg(keys.active())
                .arg(r.id)
                .arg(format!(
                    "{boot} {} {}",
                    r.attempt,
                    r.job.as_deref().unwrap_or("")
                ))
                .ignore();
            if r.skip && r.state == "running" {
                if let Some(job) = &r.job {
                    let running = keys.running(job);
                    pipe.cmd("HSET")
                        .arg(&running)
                        .arg(r.due_ms.unwrap_or(0))
                        .arg(boot)
                        .ignore();
                    pipe.cmd("PEXPIRE")
                        .arg(&running)
                        .arg(self.ttl_ms())
                        .ignore();
                }
            }
            self.local.insert(
                r.id,
                Local {
                    job: r.job.clone(),
                    skip: r.skip,
                },
            );
        }
        let event = Event {
            kind: event_type(r),
            run_id: r.id,
            job: r.job.as_deref().unwrap_or(""),
            node: &self.cluster.config.node,
            state: r.state,
            run: &r.json,
        };
        event.add_to(pipe, keys);
        self.cluster
            .running
            .store(self.local.len() as u64, Ordering::Relaxed);
    }

    /// At the end of shutdown: the heartbeat goes, so others see this
    /// node leave at once rather than after `claim_ttl`.
    fn stop(&mut self) {
        if let Some(con) = self.con.as_mut() {
            let _ = redis::cmd("DEL")
                .arg(self.cluster.keys.node(&self.cluster.config.node))
                .query::<()>(con);
        }
    }
}

fn event_type(r: &Record) -> &'static str {
    match r.state {
        "queued" => "run.queued",
        "running" => "run.started",
        _ => "run.finished",
    }
}
