//! Reads from Redis on request threads (`runs.get`, `runs.list`,
//! `jobs.get`'s `last_run`) and queueing runs for any node: through a
//! small pool of connections, each command bounded by the link's
//! timeouts. Callers ask only while the link is up
//! ([`super::Cluster::is_up`]), and answer from the node's own memory
//! otherwise, so a Redis that is away costs no request a connect timeout.

use super::feed::WorkItem;
use super::keys::Keys;
use super::link::Source;
use parking_lot::Mutex;
use redis::{Connection, RedisResult};
use std::sync::Arc;

/// Connections kept for request threads, at most.
const POOL: usize = 8;
/// Run records looked at for one `runs.list` with a `state` filter, at
/// most (the filter is applied here, not in Redis).
const MAX_SCANNED: usize = 50_000;

/// The request threads' side of the link.
pub struct Reads {
    source: Arc<Source>,
    keys: Keys,
    pool: Mutex<Vec<Connection>>,
}

impl Reads {
    pub(super) fn new(source: Arc<Source>, keys: Keys) -> Reads {
        Reads {
            source,
            keys,
            pool: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` on a pooled connection (a failed one is dropped).
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection, &Keys) -> RedisResult<T>,
    ) -> Result<T, String> {
        let pooled = self.pool.lock().pop();
        let mut con = match pooled {
            Some(c) => c,
            None => self.source.connect().map_err(|e| e.to_string())?,
        };
        match f(&mut con, &self.keys) {
            Ok(v) => {
                let mut pool = self.pool.lock();
                if pool.len() < POOL {
                    pool.push(con);
                }
                Ok(v)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// A run's record, as stored (the run object, with `node`).
    pub fn run(&self, id: u64) -> Result<Option<String>, String> {
        self.with(|con, keys| redis::cmd("GET").arg(keys.run(id)).query(con))
    }

    /// Up to `limit` run records, newest first, of `job` (or all jobs),
    /// in `state` if given, older than run `before` if given.
    pub fn runs_before(
        &self,
        job: Option<&str>,
        state: Option<&str>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<String>, String> {
        self.with(|con, keys| {
            let index = match job {
                Some(j) => keys.job_runs(Some(j)),
                None => keys.runs(),
            };
            let mut max = before.map_or_else(|| "+inf".to_string(), |b| format!("({b}"));
            let mut out = Vec::new();
            let mut scanned = 0;
            let batch = limit.clamp(16, 1000);
            loop {
                let ids: Vec<u64> = redis::cmd("ZREVRANGEBYSCORE")
                    .arg(&index)
                    .arg(&max)
                    .arg("-inf")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(batch)
                    .query(con)?;
                let Some(&oldest) = ids.last() else {
                    return Ok(out);
                };
                let run_keys: Vec<String> = ids.iter().map(|id| keys.run(*id)).collect();
                let records: Vec<Option<String>> = redis::cmd("MGET").arg(&run_keys).query(con)?;
                for r in records.into_iter().flatten() {
                    if state.is_none_or(|s| state_of(&r) == Some(s)) {
                        out.push(r);
                        if out.len() >= limit {
                            return Ok(out);
                        }
                    }
                }
                scanned += ids.len();
                if ids.len() < batch || scanned >= MAX_SCANNED {
                    return Ok(out);
                }
                max = format!("({oldest}");
            }
        })
    }

    /// The newest run record of `job`.
    pub fn last_run(&self, job: &str) -> Result<Option<String>, String> {
        Ok(self.runs_before(Some(job), None, None, 1)?.pop())
    }

    /// At a restart with `state_dir`: takes back run `id`, queued by an
    /// earlier process of this node (`node`), unless another node has
    /// already dealt with it (marked it, or runs it). `value` is the new
    /// entry of [`Keys::active`]. True: this node runs it.
    pub fn adopt(&self, id: u64, node: &str, value: &str) -> Result<bool, String> {
        self.with(|con, keys| {
            redis::Script::new(super::scripts::ADOPT)
                .key(keys.active())
                .arg(id)
                .arg(format!("{node}:"))
                .arg(value)
                .invoke(con)
        })
    }

    /// Every API job stored in Redis (at start).
    pub fn api_jobs(&self) -> Result<Vec<serde_json::Value>, String> {
        self.with(|con, keys| {
            let all: Vec<(String, String)> = redis::cmd("HGETALL").arg(keys.jobs()).query(con)?;
            Ok(all
                .into_iter()
                .filter_map(|(_, j)| serde_json::from_str(&j).ok())
                .collect())
        })
    }

    /// Queues a run for any node; its record is written first (state
    /// `queued`, no node yet), so `runs.get` finds it everywhere at once.
    pub fn enqueue(&self, item: &WorkItem) -> Result<(), String> {
        self.with(|con, keys| {
            let mut pipe = redis::pipe();
            pipe.cmd("SET")
                .arg(keys.run(item.run_id))
                .arg(&item.record)
                .ignore();
            pipe.cmd("ZADD")
                .arg(keys.runs())
                .arg(item.run_id)
                .arg(item.run_id)
                .ignore();
            pipe.cmd("ZADD")
                .arg(keys.job_runs(item.job.as_deref()))
                .arg(item.run_id)
                .arg(item.run_id)
                .ignore();
            pipe.cmd("XADD")
                .arg(keys.work())
                .arg("*")
                .arg(item.fields(item.hops))
                .ignore();
            pipe.query::<()>(con)
        })
    }
}

/// The `state` of a stored run record, read without parsing all of it
/// into a tree.
fn state_of(record: &str) -> Option<&str> {
    #[derive(serde::Deserialize)]
    struct State<'a> {
        #[serde(borrow)]
        state: &'a str,
    }
    serde_json::from_str::<State<'_>>(record)
        .ok()
        .map(|s| s.state)
}

#[cfg(test)]
mod tests {
    #[test]
    fn state_of_a_record() {
        assert_eq!(
            super::state_of(r#"{"run_id":"1","state":"failed","output":"x"}"#),
            Some("failed")
        );
        assert_eq!(super::state_of("nope"), None);
    }
}
