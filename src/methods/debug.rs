//! `debug.failpoint {name, actions}` and `debug.clock_jump {ms}`: the
//! test-only fault hooks (TICKD_DEBUG_HOOKS=1; see [`crate::daemon::faults`]).

use super::call::{ClockJump, Failpoint};
use crate::daemon::{faults, Error};
use serde_json::{json, Value};

/// `debug.failpoint {name, actions}` → `{name, actions}`.
pub fn failpoint(p: Failpoint<'_>) -> Result<Value, Error> {
    faults::set_failpoint(p.name, p.actions).map_err(|what| Error::Invalid {
        param: "actions",
        what,
    })?;
    Ok(json!({ "name": p.name, "actions": p.actions }))
}

/// `debug.clock_jump {ms}` → `{offset_ms}`.
pub fn clock_jump(p: ClockJump) -> Result<Value, Error> {
    let ms = p.ms.ok_or_else(|| Error::Invalid {
        param: "ms",
        what: "must be an integer (milliseconds)".into(),
    })?;
    Ok(json!({ "offset_ms": faults::jump_clock(ms.0) }))
}
