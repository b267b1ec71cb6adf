//! `status`: the daemon's health at a glance (a query).

use crate::daemon::Shared;
use crate::pool::PoolStats;
use crate::protocol::rpc::Params;
use crate::protocol::RpcError;
use crate::time;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

fn workers_json(s: &PoolStats) -> Value {
    json!({
        "configured": s.configured,
        "alive": s.alive,
        "busy": s.busy,
        "respawned": s.respawned,
    })
}

/// `status` → version, pid, uptime, health, workers, queue, connections, config.
pub fn status(shared: &Shared, p: &Params) -> Result<Value, RpcError> {
    p.only(&[])?;
    let b = &shared.board;
    let pool = b.job_pool_stats();
    let requests = b.request_pool_stats();
    let (jobs, runs_in_memory) = {
        let core = shared.core.lock();
        (core.job_names().len(), core.runs_len())
    };
    let info = b.info.read().clone();
    let mut workers = workers_json(&pool);
    workers["min"] = b.min_workers.load(Ordering::Relaxed).into();
    Ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "uptime_ms": b.uptime_ms(),
        "health": b.health(),
        "stopping": b.stopping(),
        "workers": workers,
        "request_workers": workers_json(&requests),
        "queue": { "depth": pool.queue_depth, "capacity": pool.queue_capacity },
        "connections": b.connections.load(Ordering::Relaxed),
        "subscribers": b.subscribers.load(Ordering::Relaxed),
        "jobs": jobs,
        "runs_in_memory": runs_in_memory,
        "timers_armed": b.timers_armed.load(Ordering::Relaxed),
        "auth_required": b.auth.read().is_some(),
        "clients": b.clients.to_json(),
        "state": b.state.to_json(shared.journal.is_some()),
        "config": {
            "path": info.path.display().to_string(),
            "generation": info.generation,
            "loaded_at": time::rfc3339(&info.loaded_at),
            "last_reload_error": info.last_reload_error,
        },
    }))
}
