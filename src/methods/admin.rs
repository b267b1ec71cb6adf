//! `reload`, `shutdown`, and the test-only `debug.kill_worker` (commands);
//! `upgrade` (a query: it raises SIGUSR2, see [`crate::upgrade`]).

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

/// Names listed, at most, in each of a `reload` answer's `added`,
/// `removed` and `changed`: a reload of a million jobs would otherwise
/// answer tens of MB, built on the loop and past any client's
/// `max_output_bytes`. Three full lists of names of typical length stay
/// under 1 MiB; the `*_total` fields always give the counts.
pub const MAX_RELOAD_NAMES: usize = 10_000;

/// The answer to `reload`: `{generation, added, removed, changed}` (each
/// list cut to its first [`MAX_RELOAD_NAMES`]), with `added_total`,
/// `removed_total`, `changed_total` and `truncated`; or the rejection (a
/// conflict keeping the old config).
pub fn reload_answer(result: &Result<ReloadReport, Error>) -> Result<Value, Error> {
    let report = result.as_ref().map_err(Error::clone)?;
    let first = |names: &[String]| names[..names.len().min(MAX_RELOAD_NAMES)].to_vec();
    let truncated = [&report.added, &report.removed, &report.changed]
        .iter()
        .any(|names| names.len() > MAX_RELOAD_NAMES);
    Ok(json!({
        "generation": report.generation,
        "added": first(&report.added),
        "removed": first(&report.removed),
        "changed": first(&report.changed),
        "added_total": report.added.len(),
        "removed_total": report.removed.len(),
        "changed_total": report.changed.len(),
        "truncated": truncated,
    }))
}

/// `shutdown` → `{shutting_down: true}`, then drains as on SIGTERM.
pub fn shutdown(d: &mut Daemon) -> Value {
    log::info!("shutdown requested by a client");
    crate::activation::release_listener_copies();
    d.begin_shutdown();
    json!({ "shutting_down": true })
}

/// `upgrade` → `{upgrading: true, pid}`: raises SIGUSR2 on this process,
/// exactly as `kill -USR2` would (see [`crate::upgrade`]); how it went is
/// in the log and, once done, in `status.pid`. Refused at once under
/// systemd, which refuses the signal.
pub fn upgrade() -> Result<Value, Error> {
    if crate::activation::restarts().is_none() && std::env::var_os("NOTIFY_SOCKET").is_some() {
        return Err(Error::Forbidden(
            "upgrade refused: tickd runs under systemd (NOTIFY_SOCKET is set); use socket activation (tickd.socket) and `systemctl restart tickd`",
        ));
    }
    log::info!("upgrade requested by a client");
    let me = rustix::process::getpid();
    rustix::process::kill_process(me, rustix::process::Signal::USR2)
        .map_err(|e| Error::Internal(format!("cannot raise SIGUSR2: {e}")))?;
    Ok(json!({ "upgrading": true, "pid": std::process::id() }))
}

/// `debug.kill_worker` (only with TICKD_DEBUG_HOOKS=1): one worker thread
/// dies outside `catch_unwind`, to prove the monitor replaces it.
pub fn kill_worker(d: &mut Daemon) -> Result<Value, Error> {
    d.kill_one_worker()?;
    Ok(json!({ "killed": true }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i:07}")).collect()
    }

    #[test]
    fn a_small_reload_lists_every_name() {
        let report = ReloadReport {
            generation: 3,
            added: names("a", 2),
            removed: vec![],
            changed: names("c", 1),
        };
        let v = reload_answer(&Ok(report)).expect("answer");
        assert_eq!(v["added"], json!(["a0000000", "a0000001"]));
        assert_eq!(v["removed"], json!([]));
        assert_eq!(v["changed"], json!(["c0000000"]));
        assert_eq!(
            (v["added_total"].clone(), v["truncated"].clone()),
            (json!(2), json!(false))
        );
        assert_eq!(v["generation"], json!(3));
    }

    #[test]
    fn a_reload_of_a_million_jobs_answers_the_first_names_and_the_counts() {
        let report = ReloadReport {
            generation: 2,
            added: vec![],
            removed: names("r", 5),
            changed: names("c", 1_000_000),
        };
        let v = reload_answer(&Ok(report)).expect("answer");
        assert_eq!(
            v["changed"].as_array().expect("list").len(),
            MAX_RELOAD_NAMES
        );
        assert_eq!(v["changed"][0], json!("c0000000"));
        assert_eq!(v["changed_total"], json!(1_000_000));
        assert_eq!(v["removed"].as_array().expect("list").len(), 5);
        assert_eq!(v["truncated"], json!(true));
        let bytes = serde_json::to_vec(&v).expect("encode").len();
        assert!(bytes < 1 << 20, "{bytes} bytes");
    }
}
