//! Reloading the configuration (SIGHUP or the `reload` method).
//!
//! A reload is all or nothing: the new file is parsed and validated in full
//! first; if anything is wrong the old configuration stays and the error is
//! kept for `status.config.last_reload_error`. An accepted reload never drops
//! a connection, a queued run or a running run:
//! - a removed job's running runs finish (their records are kept as
//!   orphans); its backlog is cancelled, since there is no job to run;
//! - a changed job keeps its counters and history; the new definition is
//!   used from its next run (runs in flight keep the definition they started
//!   with);
//! - settings that shape threads and sockets (`listen`, `workers`,
//!   `queue_capacity`, `unix_socket`, `state_dir`, `log_file`, `syslog`,
//!   `user`, `group`: [`crate::config::StartSettings`]) need a restart: a
//!   change is logged, and the running values stay, since the daemon's
//!   start settings are never replaced;
//! - the other settings ([`crate::config::LiveSettings`]) take effect as
//!   one new version of [`super::Board::live`], swapped in whole.

use super::Daemon;
use crate::config::{self, LiveSettings};
use crate::protocol::{ErrorCode, RpcError};
use crate::time;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

impl Daemon {
    /// Re-reads the config file and applies it, or keeps the old one.
    pub fn reload(&mut self) -> Result<Value, RpcError> {
        let _reloading = crate::notify::reloading();
        let path = self.shared.board.info.read().path.clone();
        let mut new = match config::load(&path) {
            Ok(c) => c,
            Err(e) => {
                let msg = e.to_string();
                let mut info = self.shared.board.info.write();
                log::error!(
                    "reload rejected; keeping config generation {}: {msg}",
                    info.generation
                );
                info.last_reload_error = Some(msg.clone());
                return Err(RpcError::new(
                    ErrorCode::Conflict,
                    format!("reload rejected: {msg}"),
                ));
            }
        };
        for w in &new.warnings {
            log::warn!("{w}");
        }
        for key in self.start.needs_restart(&new.daemon.start) {
            log::warn!("reload: daemon.{key} changed; it takes effect only after a restart");
        }
        log_auth_change(&self.shared.board.live.read(), &new.daemon.live, &path);

        let old: BTreeMap<String, Arc<config::JobDef>> = {
            let core = self.shared.core.lock();
            core.job_names()
                .into_iter()
                .filter_map(|n| core.job(&n).map(|e| (n, Arc::clone(&e.def))))
                .collect()
        };
        let mut added = Vec::new();
        let mut changed = Vec::new();
        for def in &new.jobs {
            match old.get(&def.name) {
                None => added.push(def.name.clone()),
                Some(o) if **o != *def => changed.push(def.name.clone()),
                Some(_) => {}
            }
        }
        let removed: Vec<String> = old
            .keys()
            .filter(|n| !new.jobs.iter().any(|d| &d.name == *n))
            .cloned()
            .collect();

        for name in &removed {
            self.scheduler.disarm(name);
            // A removed job's pause goes with it (a job of that name added
            // later starts unpaused, after a restart too).
            if self.shared.core.lock().job(name).is_some_and(|e| e.paused) {
                self.shared.journal_pause(name, false);
            }
            let backlog = self.shared.core.lock().remove_job(name);
            for id in backlog {
                self.cancel_if_queued(id, "job removed by reload");
            }
        }
        // The definitions move into the core (the daemon keeps no copy); an
        // unchanged job keeps the one it has, and the new copy is dropped.
        for def in std::mem::take(&mut new.jobs) {
            if added.contains(&def.name) || changed.contains(&def.name) {
                let name = def.name.clone();
                self.shared.core.lock().upsert_job(Arc::new(def));
                self.arm(&name);
            }
        }
        self.shared
            .core
            .lock()
            .set_history_limit(new.daemon.live.history);
        crate::logging::set_level(&new.daemon.live.log_level);

        // Published before the generation, so whoever sees the new
        // generation sees the new settings; the old version is freed here
        // (or by the last reader that still holds it).
        drop(self.shared.board.live.swap(Arc::new(new.daemon.live)));
        let generation = {
            let mut info = self.shared.board.info.write();
            info.generation += 1;
            info.loaded_at = time::now();
            info.last_reload_error = None;
            info.generation
        };
        self.publish();
        // The old config and the new file's parse tree are freed by now.
        crate::sys::ffi::release_free_heap();
        log::info!(
            "config reloaded (generation {generation}): {} added, {} removed, {} changed",
            added.len(),
            removed.len(),
            changed.len()
        );
        Ok(json!({
            "generation": generation,
            "added": added,
            "removed": removed,
            "changed": changed,
        }))
    }
}

/// Says what a reload does to authentication. Turning it off is allowed (an
/// operator may mean it) but must never pass unnoticed: a truncated or
/// wrong config file would otherwise open the daemon to every TCP client.
fn log_auth_change(old: &LiveSettings, new: &LiveSettings, path: &std::path::Path) {
    match (&old.auth_token, &new.auth_token) {
        (Some(_), None) => log::warn!(
            "SECURITY: reload turned authentication off ({} sets no auth_token): TCP and HTTP clients no longer need a token",
            path.display()
        ),
        (None, Some(_)) => log::info!(
            "reload turned authentication on: TCP clients, open connections included, must now call auth"
        ),
        (Some(a), Some(b)) if a != b => log::info!(
            "reload changed the auth token: TCP clients, open connections included, must authenticate with the new one"
        ),
        _ => {}
    }
}
