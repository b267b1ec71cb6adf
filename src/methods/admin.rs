//! `reload`, `shutdown`, and the test-only `debug.kill_worker` (commands).

use crate::daemon::Daemon;
use crate::protocol::{ErrorCode, RpcError};
use serde_json::{json, Value};

/// `reload` → `{generation, added, removed, changed}`, or -32004 keeping the old config.
pub fn reload(d: &mut Daemon) -> Result<Value, RpcError> {
    log::info!("reload requested by a client");
    d.reload()
}

/// `shutdown` → `{shutting_down: true}`, then drains as on SIGTERM.
pub fn shutdown(d: &mut Daemon) -> Value {
    log::info!("shutdown requested by a client");
    d.begin_shutdown();
    json!({ "shutting_down": true })
}

/// `debug.kill_worker` (only with TICKD_DEBUG_HOOKS=1): one worker thread
/// dies outside `catch_unwind`, to prove the monitor replaces it.
pub fn kill_worker(d: &mut Daemon) -> Result<Value, RpcError> {
    if d.kill_one_worker() {
        Ok(json!({ "killed": true }))
    } else {
        Err(RpcError::new(ErrorCode::Overloaded, "run queue is full"))
    }
}
