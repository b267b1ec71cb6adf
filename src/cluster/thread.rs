//! The `tickd-cluster` thread: one connection to Redis for everything the
//! loop sends ([`Command`]s, taken in batches and sent as one pipeline),
//! and the heartbeat every [`Cluster::beat`]:
//! - the node's heartbeat key (lives `claim_ttl`) and the live nodes;
//! - the claims and `running` keys of this node's runs refreshed, so a
//!   long healthy run is never taken for dead;
//! - runs of dead nodes (heartbeat expired, or another boot of this
//!   node's name) marked `interrupted`, and their claimed occurrences not
//!   yet started taken over;
//! - API jobs changed elsewhere, read from the jobs log.
//!
//! While Redis is unreachable: claims are answered [`Verdict::Down`] at
//! once, records wait in a bounded buffer (the oldest dropped and
//! counted past [`MAX_BUFFERED`]), and the link is retried with a backoff
//! from 100 ms to 5 s.

use super::keys::{Keys, EVENTS_MAXLEN};
use super::link::Source;
use super::{scripts, ApiChange, Cluster, Command, NodeView, Notice, NoticeFn, Record, Verdict};
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
struct Local {
    job: Option<String>,
    skip: bool,
}

struct Link {
    cluster: Arc<Cluster>,
    source: Arc<Source>,
    con: Option<Connection>,
    retry_at: Instant,
    backoff: Duration,
    buffered: VecDeque<Record>,
    local: HashMap<u64, Local>,
    history: usize,
    notify: Arc<NoticeFn>,
    /// SHA1 of each of [`scripts::ALL`], in order.
    sha: [String; 3],
    jobs_log_id: String,
    started_at: String,
}

const CLAIM: usize = 0;
const TAKE_OVER: usize = 1;
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
                let buffered: Vec<Record> = self.buffered.drain(..).collect();
                if !buffered.is_empty() {
                    log::info!(
                        "cluster: writing {} run record(s) kept while Redis was away",
                        buffered.len()
                    );
                    self.send(buffered.into_iter().map(Command::Record).collect());
                }
            }
            Err(e) => {
                self.retry_at = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                self.note_error(&e.to_string());
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
        let mut pipe = redis::pipe();
        for c in batch {
            match c {
                Command::Claim { job, due_ms, skip } => {
                    self.claim_into(&mut pipe, &job, due_ms, skip);
                    claims.push((job, due_ms));
                }
                Command::ClaimDone { job, due_ms } => {
                    pipe.cmd("HDEL")
                        .arg(self.cluster.keys.pending())
                        .arg(Keys::pending_field(&job, due_ms))
                        .ignore();
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
                    self.keep(r);
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

    /// Keeps a record for when Redis is back (bounded).
    fn keep(&mut self, r: Record) {
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

    fn ttl_ms(&self) -> u64 {
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
        pipe.cmd("XADD")
            .arg(keys.events())
            .arg("MAXLEN")
            .arg("~")
            .arg(EVENTS_MAXLEN)
            .arg("*")
            .arg("type")
            .arg(event_type(r))
            .arg("run_id")
            .arg(r.id)
            .arg("job")
            .arg(r.job.as_deref().unwrap_or(""))
            .arg("node")
            .arg(&self.cluster.config.node)
            .arg("state")
            .arg(r.state)
            .arg("run")
            .arg(&r.json)
            .ignore();
        self.cluster
            .running
            .store(self.local.len() as u64, Ordering::Relaxed);
    }

    /// The heartbeat and everything done with it (see the module docs).
    fn beat(&mut self) -> RedisResult<()> {
        let cluster = Arc::clone(&self.cluster);
        let keys = &cluster.keys;
        let node = &cluster.config.node;
        let ttl = self.ttl_ms();
        let Some(con) = self.con.as_mut() else {
            return Ok(());
        };
        let t0 = Instant::now();
        redis::cmd("PING").query::<()>(con)?;
        let rtt = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
        cluster.link.rtt_us.store(rtt, Ordering::Relaxed);
        let me = NodeView {
            name: node.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            boot: cluster.boot.clone(),
            started_at: self.started_at.clone(),
            last_seen: crate::time::rfc3339(&crate::time::now()),
            running: self.local.len(),
        };
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(keys.node(node))
            .arg(serde_json::to_string(&me).unwrap_or_default())
            .arg("PX")
            .arg(ttl)
            .ignore();
        pipe.cmd("SADD").arg(keys.nodes()).arg(node).ignore();
        for l in self.local.values() {
            if let (Some(job), true) = (&l.job, l.skip) {
                pipe.cmd("PEXPIRE").arg(keys.running(job)).arg(ttl).ignore();
            }
        }
        pipe.query::<()>(con)?;
        let names: Vec<String> = redis::cmd("SMEMBERS").arg(keys.nodes()).query(con)?;
        let mut live: HashMap<String, NodeView> = HashMap::new();
        if !names.is_empty() {
            let node_keys: Vec<String> = names.iter().map(|n| keys.node(n)).collect();
            let beats: Vec<Option<String>> = redis::cmd("MGET").arg(&node_keys).query(con)?;
            for b in beats.into_iter().flatten() {
                if let Ok(v) = serde_json::from_str::<NodeView>(&b) {
                    live.insert(v.boot.clone(), v);
                }
            }
        }
        let mut views: Vec<NodeView> = live.values().cloned().collect();
        views.sort_by(|a, b| a.name.cmp(&b.name));
        *cluster.nodes.lock() = views;
        self.reap(&live)?;
        self.take_over(&live)?;
        self.read_jobs_log()?;
        Ok(())
    }

    /// Marks the runs of dead boots `interrupted`.
    fn reap(&mut self, live: &HashMap<String, NodeView>) -> RedisResult<()> {
        let cluster = Arc::clone(&self.cluster);
        let keys = &cluster.keys;
        let Some(con) = self.con.as_mut() else {
            return Ok(());
        };
        let active: HashMap<u64, String> = redis::cmd("HGETALL").arg(keys.active()).query(con)?;
        for (id, owner) in active {
            let mut parts = owner.splitn(3, ' ');
            let boot = parts.next().unwrap_or("");
            let attempt: u32 = parts.next().and_then(|a| a.parse().ok()).unwrap_or(1);
            let job = parts.next().unwrap_or("").to_string();
            if boot == cluster.boot || live.contains_key(boot) {
                continue;
            }
            // HDEL answers 1 to one node only: that one marks the run.
            let mine: u32 = redis::cmd("HDEL").arg(keys.active()).arg(id).query(con)?;
            if mine != 1 {
                continue;
            }
            let dead = boot.split(':').next().unwrap_or(boot).to_string();
            let record: Option<String> = redis::cmd("GET").arg(keys.run(id)).query(con)?;
            let mut run: serde_json::Value = record
                .and_then(|r| serde_json::from_str(&r).ok())
                .unwrap_or_else(|| serde_json::json!({"run_id": id.to_string(), "job": job}));
            // A scheduled run that never started: the occurrence is run
            // here, under the same id (its record is overwritten).
            let never_started = run["started_at"].is_null();
            let due = run["scheduled_at"]
                .as_str()
                .and_then(|t| crate::time::text::parse(t).ok());
            if let (true, Some(due), "schedule", false) = (
                never_started,
                due,
                run["trigger"].as_str().unwrap_or(""),
                job.is_empty(),
            ) {
                cluster.claims.taken_over.fetch_add(1, Ordering::Relaxed);
                log::warn!("cluster: run {id} of job {job} was queued on node {dead}, which died before starting it; running it here");
                (self.notify)(Notice::TakenOver {
                    job,
                    due_ms: due.as_millisecond(),
                    run_id: Some(id),
                });
                continue;
            }
            let now = crate::time::rfc3339(&crate::time::now());
            run["state"] = "interrupted".into();
            let what = if never_started {
                "before starting it"
            } else {
                "while it ran"
            };
            run["error"] = format!(
                "node {dead} stopped answering {what} (its heartbeat expired); marked by {}",
                cluster.config.node
            )
            .into();
            let started = run["started_at"]
                .as_str()
                .and_then(|t| crate::time::text::parse(t).ok());
            run["duration_ms"] = started
                .map(|s| crate::time::millis_between(&s, &crate::time::now()))
                .into();
            run["finished_at"] = now.into();
            run["node"] = dead.clone().into();
            let json = run.to_string();
            let mut pipe = redis::pipe();
            pipe.cmd("SET").arg(keys.run(id)).arg(&json).ignore();
            let due_field = due.map_or(0, |d| d.as_millisecond());
            pipe.cmd("HDEL")
                .arg(keys.running(&job))
                .arg(due_field)
                .ignore();
            pipe.cmd("XADD")
                .arg(keys.events())
                .arg("MAXLEN")
                .arg("~")
                .arg(EVENTS_MAXLEN)
                .arg("*")
                .arg("type")
                .arg("run.interrupted")
                .arg("run_id")
                .arg(id)
                .arg("job")
                .arg(&job)
                .arg("node")
                .arg(&dead)
                .arg("state")
                .arg("interrupted")
                .arg("run")
                .arg(&json)
                .ignore();
            pipe.query::<()>(con)?;
            cluster.claims.interrupted.fetch_add(1, Ordering::Relaxed);
            log::warn!("cluster: run {id} of job {job} on node {dead}: interrupted (node stopped answering)");
            if !job.is_empty() {
                (self.notify)(Notice::Interrupted {
                    job,
                    attempt,
                    run_id: id,
                });
            }
        }
        Ok(())
    }

    /// Takes over occurrences claimed by dead boots whose run was never
    /// created.
    fn take_over(&mut self, live: &HashMap<String, NodeView>) -> RedisResult<()> {
        let cluster = Arc::clone(&self.cluster);
        let keys = &cluster.keys;
        let ttl = self.ttl_ms();
        let Some(con) = self.con.as_mut() else {
            return Ok(());
        };
        let pending: HashMap<String, String> =
            redis::cmd("HGETALL").arg(keys.pending()).query(con)?;
        for (field, owner) in pending {
            if owner == cluster.boot || live.contains_key(&owner) {
                continue;
            }
            let Some((job, due)) = field.rsplit_once(' ') else {
                continue;
            };
            let Ok(due_ms) = due.parse::<i64>() else {
                continue;
            };
            let taken: u32 = redis::cmd("EVALSHA")
                .arg(&self.sha[TAKE_OVER])
                .arg(2)
                .arg(keys.pending())
                .arg(keys.claim(job, due_ms))
                .arg(&field)
                .arg(&owner)
                .arg(&cluster.boot)
                .arg(ttl)
                .query(con)?;
            if taken == 1 {
                cluster.claims.taken_over.fetch_add(1, Ordering::Relaxed);
                log::warn!("cluster: job {job}: took over the occurrence due at {due_ms} ms claimed by dead node {owner}");
                (self.notify)(Notice::TakenOver {
                    job: job.to_string(),
                    due_ms,
                    run_id: None,
                });
            }
        }
        Ok(())
    }

    /// API jobs changed by other nodes since the last look.
    fn read_jobs_log(&mut self) -> RedisResult<()> {
        let cluster = Arc::clone(&self.cluster);
        let keys = &cluster.keys;
        let Some(con) = self.con.as_mut() else {
            return Ok(());
        };
        if self.jobs_log_id == "$" {
            // The first look: from the stream's end (start-up loads the
            // whole hash, see `read::Reads::api_jobs`).
            let last: Vec<(String, HashMap<String, String>)> = redis::cmd("XREVRANGE")
                .arg(keys.jobs_log())
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query(con)
                .map(|r: redis::streams::StreamRangeReply| {
                    r.ids.into_iter().map(|e| (e.id, HashMap::new())).collect()
                })?;
            self.jobs_log_id = last
                .first()
                .map_or_else(|| "0-0".to_string(), |(id, _)| id.clone());
            return Ok(());
        }
        let reply: redis::streams::StreamReadReply = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(1000)
            .arg("STREAMS")
            .arg(keys.jobs_log())
            .arg(&self.jobs_log_id)
            .query(con)?;
        let mut changes = Vec::new();
        for stream in reply.keys {
            for entry in stream.ids {
                self.jobs_log_id = entry.id.clone();
                let field = |k: &str| entry.get::<String>(k).unwrap_or_default();
                if field("node") == cluster.config.node {
                    continue;
                }
                let name = field("name");
                match field("op").as_str() {
                    "put" => {
                        let job: Option<String> =
                            redis::cmd("HGET").arg(keys.jobs()).arg(&name).query(con)?;
                        match job.and_then(|j| serde_json::from_str(&j).ok()) {
                            Some(v) => changes.push(ApiChange::Put(v)),
                            None => changes.push(ApiChange::Delete(name)),
                        }
                    }
                    "delete" => changes.push(ApiChange::Delete(name)),
                    _ => {}
                }
            }
        }
        if !changes.is_empty() {
            (self.notify)(Notice::ApiJobs(changes));
        }
        Ok(())
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
