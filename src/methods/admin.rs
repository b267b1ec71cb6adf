//! `reload`, `shutdown`, and the test-only `debug.kill_worker` (commands).

use crate::daemon::{Daemon, Error};
use serde_json::{json, Value};

/// `reload` → `{generation, added, removed, changed}`, or a conflict
/// keeping the old config.
pub fn reload(d: &mut Daemon) -> Result<Value, Error> {
    log::info!("reload requested by a client");
    let report = d.reload()?;
    serde_json::to_value(report).map_err(|e| Error::Internal(e.to_string()))
}

/// `shutdown` → `{shutting_down: true}`, then drains as on SIGTERM.
pub fn shutdown(d: &mut Daemon) -> Value {
    log::info!("shutdown requested by a client");
    d.begin_shutdown();
    json!({ "shutting_down": true })
}

/// `debug.kill_worker` (only with TICKD_DEBUG_HOOKS=1): one worker thread
/// dies outside `catch_unwind`, to prove the monitor replaces it.
pub fn kill_worker(d: &mut Daemon) -> Result<Value, Error> {
    d.kill_one_worker()?;
    Ok(json!({ "killed": true }))
}
