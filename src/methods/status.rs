//! `status`: the daemon's health at a glance (a query).
//!
//! Serialized straight from borrowed views, like `jobs.list`: status is
//! what monitoring polls, so it builds no `Value` tree per request.

use crate::daemon::counters::ClientCountersView;
use crate::daemon::persist::StateView;
use crate::daemon::{Error, Shared};
use crate::pool::PoolStats;
use crate::time;
use serde::Serialize;
use serde_json::value::RawValue;
use std::sync::atomic::Ordering;

/// A pool's `workers` / `request_workers` object.
#[derive(Serialize)]
struct WorkersView {
    configured: usize,
    alive: usize,
    busy: usize,
    respawned: u64,
    /// `daemon.min_workers`; only for the job pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    min: Option<usize>,
    /// Times a worker moved to the event loop's CPU; only for the request
    /// pool (see `pool::placement`).
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu_moves: Option<u64>,
}

impl WorkersView {
    fn of(s: &PoolStats, min: Option<usize>) -> WorkersView {
        WorkersView {
            configured: s.configured,
            alive: s.alive,
            busy: s.busy,
            respawned: s.respawned,
            min,
            cpu_moves: s.cpu_moves,
        }
    }
}

#[derive(Serialize)]
struct QueueView {
    depth: usize,
    capacity: usize,
}

#[derive(Serialize)]
struct ConfigView {
    path: String,
    generation: u64,
    loaded_at: String,
    last_reload_error: Option<String>,
}

/// How many API jobs `status` lists by name, at most.
const MAX_CONFLICTS_LISTED: usize = 100;

/// The `api_jobs` object: jobs defined at run time.
#[derive(Serialize)]
struct ApiJobsView {
    /// `daemon.allow_job_api` as the loop applies it.
    allowed: bool,
    /// API jobs in the job table.
    defined: usize,
    /// Of those, how many are held (not scheduled) by `allowed = false`.
    held: usize,
    /// API jobs kept aside (not in the job table), with why.
    conflicts_total: usize,
    /// The first [`MAX_CONFLICTS_LISTED`] of them, by name.
    conflicts: Vec<ConflictView>,
}

#[derive(Serialize)]
struct ConflictView {
    name: String,
    reason: String,
}

impl ApiJobsView {
    fn of(core: &crate::state::Core) -> ApiJobsView {
        let api = core.api();
        ApiJobsView {
            allowed: !api.held(),
            defined: api.defined(),
            held: if api.held() { api.defined() } else { 0 },
            conflicts_total: api.aside().len(),
            conflicts: api
                .aside()
                .iter()
                .take(MAX_CONFLICTS_LISTED)
                .map(|(name, a)| ConflictView {
                    name: name.clone(),
                    reason: a.reason.clone(),
                })
                .collect(),
        }
    }
}

/// The whole `status` answer, in the order clients see it.
#[derive(Serialize)]
struct StatusView<'a> {
    version: &'static str,
    pid: u32,
    uptime_ms: u64,
    health: &'static str,
    /// Why `health` is not `ok` (empty when it is).
    health_reasons: Vec<String>,
    stopping: bool,
    /// Whether `tickd run --supervise` started this daemon.
    supervised: bool,
    /// Times the supervisor restarted the daemon (0 when not supervised).
    restarts: u64,
    workers: WorkersView,
    request_workers: WorkersView,
    queue: QueueView,
    connections: usize,
    subscribers: usize,
    jobs: usize,
    runs_in_memory: usize,
    timers_armed: usize,
    api_jobs: ApiJobsView,
    auth_required: bool,
    clients: ClientCountersView<'a>,
    state: StateView,
    config: ConfigView,
    /// `[concurrency.NAME]` limits: max_running, running, waiting.
    concurrency: Vec<crate::daemon::gates::GateView>,
    /// Cluster mode only: the node, the Redis link, claims, the nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<crate::cluster::ClusterView>,
    /// With `[[notify]]` sinks only: messages sent, failed, dropped, by sink.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    notifications:
        std::collections::BTreeMap<String, std::collections::BTreeMap<&'static str, u64>>,
}

/// `status` → version, pid, uptime, health, workers, queue, connections, config.
pub fn status(shared: &Shared) -> Result<Box<RawValue>, Error> {
    let b = &shared.board;
    let pool = b.job_pool_stats();
    let requests = b.request_pool_stats();
    let (jobs, runs_in_memory, api_jobs) = {
        let core = shared.core.lock();
        (core.jobs_len(), core.runs_len(), ApiJobsView::of(&core))
    };
    let config = {
        let info = b.info.read();
        ConfigView {
            path: info.path.display().to_string(),
            generation: info.generation,
            loaded_at: time::rfc3339(&info.loaded_at),
            last_reload_error: info.last_reload_error.clone(),
        }
    };
    // One version of the live settings for the whole answer.
    let (min_workers, auth_required) = {
        let live = b.live.read();
        (live.min_workers, live.tokens.auth_on())
    };
    let mut health = b.health_under(min_workers);
    let mut health_reasons = Vec::new();
    if health != "ok" {
        health_reasons.push(format!(
            "{} of {} workers alive, below min_workers = {min_workers}",
            pool.alive, pool.configured
        ));
    }
    let cluster = shared.cluster.as_ref().map(|c| c.view());
    if let Some(c) = &cluster {
        if !c.redis.connected {
            health = "degraded";
            health_reasons.push(format!(
                "redis unreachable: {}",
                c.redis.last_error.as_deref().unwrap_or("not connected yet")
            ));
        }
    }
    super::encode(&StatusView {
        version: env!("CARGO_PKG_VERSION"),
        pid: std::process::id(),
        uptime_ms: b.uptime_ms(),
        health,
        health_reasons,
        stopping: b.stopping(),
        supervised: crate::activation::restarts().is_some(),
        restarts: crate::activation::restarts().unwrap_or(0),
        workers: WorkersView::of(&pool, Some(min_workers)),
        request_workers: WorkersView::of(&requests, None),
        queue: QueueView {
            depth: pool.queue_depth,
            capacity: pool.queue_capacity,
        },
        connections: b.connections.load(Ordering::Relaxed),
        subscribers: b.subscribers.load(Ordering::Relaxed),
        jobs,
        runs_in_memory,
        timers_armed: b.timers_armed.load(Ordering::Relaxed),
        api_jobs,
        auth_required,
        clients: b.clients.view(),
        state: b.state.view(shared.journal.is_some()),
        config,
        concurrency: b.gates.lock().view(),
        cluster,
        notifications: b.notifications.view(),
    })
}
