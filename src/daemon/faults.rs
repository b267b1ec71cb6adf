//! Fault injection for the reliability tests: fail points (the
//! `failpoints` feature) and the wall-clock jump hook.
//!
//! tickd has `fail::fail_point!` sites where the OS or a bug can hurt it:
//!
//! | name | where | typical action |
//! | --- | --- | --- |
//! | `tickd-worker.die` | a job worker, holding a task, outside `catch_unwind` | `1*panic` |
//! | `tickd-worker.respawn` | the monitor, before it replaces a dead worker | `1*sleep(3000)` |
//! | `run.mid_job` | a run after it is marked running | `1*panic`, `sleep(500)` |
//! | `run.before_start` | a worker holding a run, before it marks it running | `1*sleep(1500)` |
//! | `journal.append` | the one `write` of a journal append | `return` (ENOSPC) |
//! | `journal.sync` | the journal's fdatasync | `return` (EIO) |
//! | `journal.write_new` | writing a compacted journal | `return` (ENOSPC) |
//! | `server.accept` | the listener's `accept` | `return` (EMFILE) |
//! | `reload.prepared` | the reload thread, the file read and checked | `pause` |
//! | `reload.slice` | the loop, before a slice of a reload's changes | `return` (hold), `return(N)` (N changes) |
//! | `dispatch.fire_hold` | the loop, between two slices of due timers | `return` (holds the rest of a herd due) |
//!
//! They are configured by the `FAILPOINTS` env var at start
//! (`name=actions;name=actions`, the `fail` crate's syntax) and, with
//! `TICKD_DEBUG_HOOKS=1`, at run time by the `debug.failpoint {name,
//! actions}` method ([`set_failpoint`]; `actions = "off"` clears one).
//! Without the feature the sites compile to nothing and both ways of
//! configuring them say so.
//!
//! The `debug.clock_jump {ms}` method (TICKD_DEBUG_HOOKS=1, any build)
//! moves the daemon's wall clock by `ms` (negative: back), as a clock step
//! would ([`jump_clock`]).

/// Configures the fail points named in `FAILPOINTS`; a bad entry is logged
/// and skipped (the `fail` crate's own setup would panic on it).
pub fn configure_from_env() {
    let Ok(spec) = std::env::var("FAILPOINTS") else {
        return;
    };
    for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((name, actions)) = entry.split_once('=') else {
            log::warn!("FAILPOINTS: {entry:?} is not name=actions; ignored");
            continue;
        };
        match set(name.trim(), actions.trim()) {
            Ok(()) => log::warn!("fail point {name} set to {actions:?} (FAILPOINTS)"),
            Err(e) => log::warn!("FAILPOINTS: {name}: {e}; ignored"),
        }
    }
}

/// Sets fail point `name` to `actions` (`"off"` clears it), for the
/// `debug.failpoint` method; `Err` says why the actions were refused.
pub fn set_failpoint(name: &str, actions: &str) -> Result<(), String> {
    set(name, actions)?;
    log::warn!("fail point {name} set to {actions:?} (debug.failpoint)");
    Ok(())
}

/// Steps the daemon's wall clock by `ms` (negative: back) and returns the
/// offset now in force, for the `debug.clock_jump` method; the loop
/// notices on its next wake-up, which the answer to that request causes.
pub fn jump_clock(ms: i64) -> i64 {
    let offset = crate::time::jump_wall_clock(ms);
    log::warn!("debug.clock_jump: wall clock moved by {ms} ms (offset now {offset} ms)");
    offset
}

#[cfg(feature = "failpoints")]
fn set(name: &str, actions: &str) -> Result<(), String> {
    if actions == "off" {
        fail::remove(name);
        return Ok(());
    }
    fail::cfg(name, actions)
}

#[cfg(not(feature = "failpoints"))]
fn set(_name: &str, _actions: &str) -> Result<(), String> {
    Err("this tickd was built without the failpoints feature".to_string())
}
