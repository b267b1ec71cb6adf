//! `reload`, `shutdown`, and the test-only `debug.kill_worker` (commands).

use super::Reply;
use crate::daemon::{Daemon, Error, ReloadReport};
use serde_json::{json, Value};

/// `reload`: asks for one (read and checked off the loop, applied in
/// slices); answered by [`reload_answer`] once it is applied or refused.
pub fn reload(d: &mut Daemon) -> Reply {
    if d.stopping() {
        return Reply::Now(Err(Error::ShuttingDown));
    }
    log::info!("reload requested by a client");
    Reply::WaitReload(d.request_reload())
}

/// The answer to `reload`: `{generation, added, removed, changed}`, or
/// the rejection (a conflict keeping the old config).
pub fn reload_answer(result: &Result<ReloadReport, Error>) -> Result<Value, Error> {
    match result {
        Ok(report) => serde_json::to_value(report).map_err(|e| Error::Internal(e.to_string())),
        Err(e) => Err(e.clone()),
    }
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
