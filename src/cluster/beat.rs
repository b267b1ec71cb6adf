//! The cluster thread's heartbeat (every [`super::Cluster::beat`]): the
//! node's heartbeat key and the live nodes; the `running` hashes of this
//! node's runs kept alive; runs of dead nodes (heartbeat expired, or
//! another boot of this node's name) handled by the first node to see
//! them: a scheduled run that never started is run here under its id, any
//! other is marked `interrupted` (and retried under its job's `retries`);
//! occurrences a dead node claimed without creating their run are taken
//! over; API jobs changed elsewhere are read from the jobs log.

use super::keys::Event;
use super::thread::Link;
use super::thread::TAKE_OVER;
use super::{ApiChange, NodeView, Notice};
use redis::RedisResult;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

impl Link {
    /// The heartbeat and everything done with it (see the module docs).
    pub(super) fn beat(&mut self) -> RedisResult<()> {
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
            let event = Event {
                kind: "run.interrupted",
                run_id: id,
                job: &job,
                node: &dead,
                state: "interrupted",
                run: &json,
            };
            event.add_to(&mut pipe, keys);
            pipe.query::<()>(con)?;
            cluster.claims.interrupted.fetch_add(1, Ordering::Relaxed);
            log::warn!("cluster: run {id} of job {job} on node {dead}: interrupted (node stopped answering)");
            // A run that never started is not retried here: a run for
            // any node is taken over from the work Stream (and run under
            // its id), a run by hand was never begun.
            if !job.is_empty() && !never_started {
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
}
