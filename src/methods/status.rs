//! `status`: the daemon's health at a glance.

use crate::daemon::Daemon;
use crate::protocol::rpc::Params;
use crate::protocol::RpcError;
use crate::time;
use serde_json::{json, Value};

/// `status` → version, pid, uptime, health, workers, queue, connections, config.
pub fn status(d: &mut Daemon, p: &Params) -> Result<Value, RpcError> {
    p.only(&[])?;
    let pool = d.pool_stats();
    let (jobs, runs_in_memory) = {
        let core = d.shared.core.lock();
        (core.job_names().len(), core.runs_len())
    };
    Ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "uptime_ms": d.uptime_ms(),
        "health": d.health(),
        "stopping": d.stopping(),
        "workers": {
            "configured": pool.configured,
            "alive": pool.alive,
            "busy": pool.busy,
            "respawned": pool.respawned,
            "min": d.config.daemon.min_workers,
        },
        "queue": { "depth": pool.queue_depth, "capacity": pool.queue_capacity },
        "connections": d.connections,
        "jobs": jobs,
        "runs_in_memory": runs_in_memory,
        "timers_armed": d.scheduler.len(),
        "config": {
            "path": d.info.path.display().to_string(),
            "generation": d.info.generation,
            "loaded_at": time::rfc3339(&d.info.loaded_at),
            "last_reload_error": d.info.last_reload_error,
        },
    }))
}
