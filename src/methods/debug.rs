//! `debug.failpoint {name, actions}` and `debug.clock_jump {ms}`: the
//! test-only fault hooks (TICKD_DEBUG_HOOKS=1; see [`crate::daemon::faults`]).

use crate::daemon::faults;
use crate::protocol::rpc::Params;
use crate::protocol::RpcError;
use serde_json::{json, Value};

/// `debug.failpoint {name, actions}` → `{name, actions}`.
pub fn failpoint(p: &Params) -> Result<Value, RpcError> {
    p.only(&["name", "actions"])?;
    let name = p.str("name")?;
    let actions = p.str("actions")?;
    faults::set_failpoint(name, actions).map_err(|e| RpcError::param("actions", e))?;
    Ok(json!({ "name": name, "actions": actions }))
}

/// `debug.clock_jump {ms}` → `{offset_ms}`.
pub fn clock_jump(p: &Params) -> Result<Value, RpcError> {
    p.only(&["ms"])?;
    let ms = p
        .get("ms")
        .and_then(Value::as_i64)
        .ok_or_else(|| RpcError::param("ms", "must be an integer (milliseconds)"))?;
    Ok(json!({ "offset_ms": faults::jump_clock(ms) }))
}
