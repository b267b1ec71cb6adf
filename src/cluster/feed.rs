//! The `tickd-cluster-feed` thread: runs for any node, and the ends of
//! runs waited on from this node that run elsewhere.
//!
//! Runs for any node (`jobs.run` / `submit` with `node: "any"`) are
//! entries of the Stream `NS:work`, read by every node in the consumer
//! group `runners` (`XREADGROUP`): Redis hands each entry to one node.
//! That node runs it and acknowledges it (`XACK`) when the run ends; while
//! it runs, the node refreshes its claim on the entry (`XCLAIM` with
//! idle 0) every beat, so only an entry whose node died ages past
//! `claim_ttl` and is taken over by another node (`XAUTOCLAIM`): run if
//! it never started, else left to the reaper, which marks the run
//! `interrupted` (see `thread.rs`).

use super::link::Source;
use super::{Cluster, Notice, NoticeFn};
use crossbeam_channel::{Receiver, Sender};
use redis::{Connection, RedisResult};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How long one `XREADGROUP` waits for an entry.
const BLOCK_MS: u64 = 200;
/// A run for any node passed on this many times is failed (no node
/// would run it).
pub const MAX_HOPS: u32 = 16;

/// A run for any node.
#[derive(Debug, Clone)]
pub struct WorkItem {
    /// Its id, chosen by the node that received the request.
    pub run_id: u64,
    /// The named job, or None for `submit`.
    pub job: Option<String>,
    /// Passed to the job.
    pub args: Option<Value>,
    /// For `submit`: the job object.
    pub adhoc: Option<Value>,
    /// The node that received the request.
    pub origin: String,
    /// Times passed on by nodes that would not run it.
    pub hops: u32,
    /// The queued record written with it (when enqueued).
    pub record: String,
    /// The Stream entry id (when taken).
    pub stream_id: String,
}

impl WorkItem {
    /// The fields of its entry in the work Stream, `hops` passes on.
    pub fn fields(&self, hops: u32) -> Vec<(&'static str, String)> {
        let json = |v: &Option<Value>| v.as_ref().map_or_else(String::new, Value::to_string);
        vec![
            ("run_id", self.run_id.to_string()),
            ("job", self.job.clone().unwrap_or_default()),
            ("args", json(&self.args)),
            ("adhoc", json(&self.adhoc)),
            ("origin", self.origin.clone()),
            ("hops", hops.to_string()),
        ]
    }
}

enum FeedCmd {
    Ack(String),
    PassOn(WorkItem),
    Fail(WorkItem, String),
    Stop,
}

/// The handle of the feed thread.
pub struct Feed {
    tx: Sender<FeedCmd>,
}

impl Feed {
    pub(super) fn start(
        source: Arc<Source>,
        cluster: Weak<Cluster>,
        notify: Arc<NoticeFn>,
    ) -> Feed {
        let (tx, rx) = crossbeam_channel::unbounded();
        let spawned = std::thread::Builder::new()
            .name("tickd-cluster-feed".into())
            .spawn(move || {
                let mut f = FeedLoop {
                    source,
                    cluster,
                    notify,
                    con: None,
                    retry_at: Instant::now(),
                    mine: HashSet::new(),
                    last_refresh: Instant::now(),
                };
                f.run(&rx);
            });
        if let Err(e) = spawned {
            log::error!("cluster: could not start the feed thread: {e}; runs for any node will not be taken here");
        }
        Feed { tx }
    }

    pub(super) fn ack(&self, stream_id: &str) {
        let _ = self.tx.send(FeedCmd::Ack(stream_id.to_string()));
    }

    pub(super) fn pass_on(&self, item: WorkItem) {
        let _ = self.tx.send(FeedCmd::PassOn(item));
    }

    pub(super) fn fail(&self, item: WorkItem, why: &str) {
        let _ = self.tx.send(FeedCmd::Fail(item, why.to_string()));
    }

    pub(super) fn stop(&self) {
        let _ = self.tx.send(FeedCmd::Stop);
    }
}

struct FeedLoop {
    source: Arc<Source>,
    cluster: Weak<Cluster>,
    notify: Arc<NoticeFn>,
    con: Option<Connection>,
    retry_at: Instant,
    /// Entries this node took and has not acknowledged.
    mine: HashSet<String>,
    last_refresh: Instant,
}

impl FeedLoop {
    fn run(&mut self, rx: &Receiver<FeedCmd>) {
        loop {
            let mut acks = Vec::new();
            let mut ends = Vec::new();
            while let Ok(cmd) = rx.try_recv() {
                match cmd {
                    FeedCmd::Ack(id) => acks.push(id),
                    FeedCmd::PassOn(item) => ends.push((item, None)),
                    FeedCmd::Fail(item, why) => ends.push((item, Some(why))),
                    FeedCmd::Stop => return,
                }
            }
            let Some(cluster) = self.cluster.upgrade() else {
                return;
            };
            if self.con.is_none() {
                if Instant::now() < self.retry_at {
                    // Nothing to do without Redis but wait for a command.
                    match rx.recv_timeout(Duration::from_millis(BLOCK_MS)) {
                        Ok(FeedCmd::Stop)
                        | Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                        Ok(FeedCmd::Ack(id)) => self.mine.remove(&id),
                        Ok(FeedCmd::PassOn(item) | FeedCmd::Fail(item, _)) => {
                            log::warn!(
                                "cluster: run {} for any node left pending: Redis unreachable",
                                item.run_id
                            );
                            false
                        }
                        Err(_) => false,
                    };
                    continue;
                }
                match self.connect(&cluster) {
                    Ok(con) => self.con = Some(con),
                    Err(_) => {
                        self.retry_at = Instant::now() + Duration::from_secs(1);
                        continue;
                    }
                }
            }
            if let Err(e) = self.turn(&cluster, acks, ends) {
                log::debug!("cluster feed: {e}");
                self.con = None;
                self.retry_at = Instant::now() + Duration::from_millis(500);
            }
        }
    }

    fn connect(&self, cluster: &Cluster) -> RedisResult<Connection> {
        let mut con = self.source.connect()?;
        // A longer read timeout than the block, or every read would fail.
        con.set_read_timeout(Some(
            Duration::from_millis(BLOCK_MS) + super::link::IO_TIMEOUT,
        ))?;
        let created: RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(cluster.keys.work())
            .arg(super::keys::WORK_GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query(&mut con);
        if let Err(e) = created {
            if e.code() != Some("BUSYGROUP") {
                return Err(e);
            }
        }
        Ok(con)
    }

    /// One round: acknowledgements, the refresh of entries held, entries
    /// of dead nodes, new entries, and the runs waited on.
    fn turn(
        &mut self,
        cluster: &Cluster,
        acks: Vec<String>,
        ends: Vec<(WorkItem, Option<String>)>,
    ) -> RedisResult<()> {
        let Some(con) = self.con.as_mut() else {
            return Ok(());
        };
        let work = cluster.keys.work();
        let group = super::keys::WORK_GROUP;
        let me = &cluster.config.node;
        for id in acks {
            redis::cmd("XACK")
                .arg(&work)
                .arg(group)
                .arg(&id)
                .query::<()>(con)?;
            self.mine.remove(&id);
        }
        for (item, why) in ends {
            let why = why.or_else(|| {
                (item.hops + 1 >= MAX_HOPS).then(|| {
                    format!("no node would run it (passed on {MAX_HOPS} times: no node has the job, or every node's config refuses it)")
                })
            });
            match why {
                Some(why) => fail_record(con, cluster, &item, &why)?,
                None => {
                    redis::cmd("XADD")
                        .arg(&work)
                        .arg("*")
                        .arg(item.fields(item.hops + 1))
                        .query::<()>(con)?;
                }
            }
            redis::cmd("XACK")
                .arg(&work)
                .arg(group)
                .arg(&item.stream_id)
                .query::<()>(con)?;
            self.mine.remove(&item.stream_id);
        }
        if self.last_refresh.elapsed() >= cluster.beat() {
            self.last_refresh = Instant::now();
            if !self.mine.is_empty() {
                let ids: Vec<&String> = self.mine.iter().collect();
                redis::cmd("XCLAIM")
                    .arg(&work)
                    .arg(group)
                    .arg(me)
                    .arg(0)
                    .arg(&ids)
                    .arg("JUSTID")
                    .query::<()>(con)?;
            }
            let idle = u64::try_from(cluster.config.claim_ttl.as_millis()).unwrap_or(u64::MAX);
            let reply: redis::Value = redis::cmd("XAUTOCLAIM")
                .arg(&work)
                .arg(group)
                .arg(me)
                .arg(idle)
                .arg("0-0")
                .arg("COUNT")
                .arg(16)
                .query(con)?;
            for (id, fields) in autoclaimed(reply) {
                let item = item_of(id, &fields);
                // Started on the dead node: the reaper marks it; else run it.
                let record: Option<String> = redis::cmd("GET")
                    .arg(cluster.keys.run(item.run_id))
                    .query(con)?;
                // Never started (queued, or marked interrupted before it
                // started by the reaper): run here under its id.
                let queued = record
                    .as_deref()
                    .and_then(|r| serde_json::from_str::<Value>(r).ok())
                    .is_some_and(|v| v["started_at"].is_null());
                // Still in the active table: its node lives (it restarted
                // and took it back), or the reaper has not marked it yet
                // (then it comes back after another claim_ttl).
                let active: bool = redis::cmd("HEXISTS")
                    .arg(cluster.keys.active())
                    .arg(item.run_id)
                    .query(con)?;
                if active {
                    continue;
                }
                if queued {
                    log::warn!("cluster: run {} for any node was taken by a node that died; running it here", item.run_id);
                    self.mine.insert(item.stream_id.clone());
                    (self.notify)(Notice::Work(item));
                } else {
                    redis::cmd("XACK")
                        .arg(&work)
                        .arg(group)
                        .arg(&item.stream_id)
                        .query::<()>(con)?;
                }
            }
        }
        let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(group)
            .arg(me)
            .arg("COUNT")
            .arg(8)
            .arg("BLOCK")
            .arg(BLOCK_MS)
            .arg("STREAMS")
            .arg(&work)
            .arg(">")
            .query(con)?;
        for stream in reply.keys {
            for entry in stream.ids {
                let fields: Vec<(String, String)> = entry
                    .map
                    .iter()
                    .filter_map(|(k, v)| {
                        redis::from_redis_value_ref::<String>(v)
                            .ok()
                            .map(|v| (k.clone(), v))
                    })
                    .collect();
                let item = item_of(entry.id.clone(), &fields);
                self.mine.insert(item.stream_id.clone());
                (self.notify)(Notice::Work(item));
            }
        }
        self.watched(cluster)
    }

    /// Posts the records of watched runs that have ended.
    fn watched(&mut self, cluster: &Cluster) -> RedisResult<()> {
        let ids: Vec<u64> = cluster.watched.lock().iter().copied().collect();
        if ids.is_empty() {
            return Ok(());
        }
        let Some(con) = self.con.as_mut() else {
            return Ok(());
        };
        let keys: Vec<String> = ids.iter().map(|id| cluster.keys.run(*id)).collect();
        let records: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(con)?;
        for (id, r) in ids.into_iter().zip(records) {
            let Some(v) = r.and_then(|r| serde_json::from_str::<Value>(&r).ok()) else {
                continue;
            };
            let terminal = v["finished_at"].is_string();
            if terminal && cluster.watched.lock().remove(&id) {
                (self.notify)(Notice::RemoteFinished(v));
            }
        }
        Ok(())
    }
}

/// Ends a run for any node as `failed`, saying why, in its record and
/// the events Stream.
fn fail_record(
    con: &mut Connection,
    cluster: &Cluster,
    item: &WorkItem,
    why: &str,
) -> RedisResult<()> {
    let keys = &cluster.keys;
    let record: Option<String> = redis::cmd("GET").arg(keys.run(item.run_id)).query(con)?;
    let mut run: Value = record
        .and_then(|r| serde_json::from_str(&r).ok())
        .unwrap_or_else(|| serde_json::json!({"run_id": item.run_id.to_string(), "job": item.job}));
    run["state"] = "failed".into();
    run["error"] = why.into();
    run["finished_at"] = crate::time::rfc3339(&crate::time::now()).into();
    let json = run.to_string();
    log::warn!("cluster: run {} for any node failed: {why}", item.run_id);
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg(keys.run(item.run_id))
        .arg(&json)
        .ignore();
    let event = super::keys::Event {
        kind: "run.finished",
        run_id: item.run_id,
        job: item.job.as_deref().unwrap_or(""),
        node: &cluster.config.node,
        state: "failed",
        run: &json,
    };
    event.add_to(&mut pipe, keys);
    pipe.query(con)
}

/// The entries of an `XAUTOCLAIM` answer: `[next, [[id, [k, v, ...]], ...], ...]`.
fn autoclaimed(reply: redis::Value) -> Vec<(String, Vec<(String, String)>)> {
    let redis::Value::Array(parts) = reply else {
        return Vec::new();
    };
    let Some(redis::Value::Array(entries)) = parts.into_iter().nth(1) else {
        return Vec::new();
    };
    entries
        .into_iter()
        .filter_map(|e| redis::from_redis_value::<(String, Vec<(String, String)>)>(e).ok())
        .collect()
}

fn item_of(stream_id: String, fields: &[(String, String)]) -> WorkItem {
    let get = |k: &str| {
        fields
            .iter()
            .find(|(f, _)| f == k)
            .map_or("", |(_, v)| v.as_str())
    };
    let json = |k: &str| {
        let v = get(k);
        (!v.is_empty())
            .then(|| serde_json::from_str(v).ok())
            .flatten()
    };
    WorkItem {
        run_id: get("run_id").parse().unwrap_or(0),
        job: Some(get("job").to_string()).filter(|j| !j.is_empty()),
        args: json("args"),
        adhoc: json("adhoc"),
        origin: get("origin").to_string(),
        hops: get("hops").parse().unwrap_or(0),
        record: String::new(),
        stream_id,
    }
}
