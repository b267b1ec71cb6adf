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
//!   `user`, `group`) need a restart: a change is logged and
//!   the running values are kept.
//!
//! What changed is worked out by [`diff_jobs`], a pure function of the old
//! and new definitions, and reported as a [`ReloadReport`].

use super::{Daemon, Error};
use crate::config::{self, Config, JobDef};
use crate::time;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What an accepted reload did: the new generation and the names of the
/// jobs it added, removed and changed (each in the new file's order, or
/// by name for removed jobs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadReport {
    /// The config generation now in effect.
    pub generation: u64,
    /// Jobs new in the file.
    pub added: Vec<String>,
    /// Jobs no longer in the file.
    pub removed: Vec<String>,
    /// Jobs whose definition changed.
    pub changed: Vec<String>,
}

/// How a new list of job definitions differs from the running one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobsDiff {
    /// In `new` only, in its order.
    pub added: Vec<String>,
    /// In `old` only, by name.
    pub removed: Vec<String>,
    /// In both, with a different definition, in `new`'s order.
    pub changed: Vec<String>,
}

/// Compares the running definitions (by name) with a new file's.
pub fn diff_jobs(old: &BTreeMap<String, Arc<JobDef>>, new: &[JobDef]) -> JobsDiff {
    let mut diff = JobsDiff::default();
    for def in new {
        match old.get(&def.name) {
            None => diff.added.push(def.name.clone()),
            Some(o) if **o != *def => diff.changed.push(def.name.clone()),
            Some(_) => {}
        }
    }
    diff.removed = old
        .keys()
        .filter(|n| !new.iter().any(|d| &d.name == *n))
        .cloned()
        .collect();
    diff
}

impl Daemon {
    /// Re-reads the config file and applies it, or keeps the old one.
    pub fn reload(&mut self) -> Result<ReloadReport, Error> {
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
                return Err(Error::ReloadRejected(msg));
            }
        };
        for w in &new.warnings {
            log::warn!("{w}");
        }
        keep_restart_only_settings(&self.config, &mut new);
        log_auth_change(&self.config, &new, &path);

        let old: BTreeMap<String, Arc<JobDef>> = {
            let core = self.shared.core.lock();
            core.job_names()
                .into_iter()
                .filter_map(|n| core.job(&n).map(|e| (n, Arc::clone(&e.def))))
                .collect()
        };
        let JobsDiff {
            added,
            removed,
            changed,
        } = diff_jobs(&old, &new.jobs);
        drop(old);

        for name in &removed {
            self.scheduler.disarm(name);
            let backlog = self.shared.core.lock().remove_job(name);
            for id in backlog {
                self.cancel_if_queued(id, "job removed by reload");
            }
        }
        // The definitions move into the core (see `Daemon::config`); an
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
            .set_history_limit(new.daemon.history);
        crate::logging::set_level(&new.daemon.log_level);

        self.config = new;
        let generation = {
            let mut info = self.shared.board.info.write();
            info.generation += 1;
            info.loaded_at = time::now();
            info.last_reload_error = None;
            info.generation
        };
        self.publish();
        // The old config and the new file's parse tree are freed by now.
        crate::os_unsafe::release_free_heap();
        log::info!(
            "config reloaded (generation {generation}): {} added, {} removed, {} changed",
            added.len(),
            removed.len(),
            changed.len()
        );
        Ok(ReloadReport {
            generation,
            added,
            removed,
            changed,
        })
    }
}

/// Copies the settings that only take effect at start from the running
/// config into the new one, warning about each one that differs.
fn keep_restart_only_settings(running: &Config, new: &mut Config) {
    let (r, n) = (&running.daemon, &mut new.daemon);
    let mut differ = Vec::new();
    if r.listen != n.listen {
        differ.push("listen");
        n.listen = r.listen.clone();
    }
    if r.unix_socket != n.unix_socket {
        differ.push("unix_socket");
        n.unix_socket = r.unix_socket.clone();
    }
    if r.unix_socket_mode != n.unix_socket_mode {
        differ.push("unix_socket_mode");
        n.unix_socket_mode = r.unix_socket_mode;
    }
    if r.workers != n.workers {
        differ.push("workers");
        n.workers = r.workers;
    }
    if r.queue_capacity != n.queue_capacity {
        differ.push("queue_capacity");
        n.queue_capacity = r.queue_capacity;
    }
    if r.file_threads != n.file_threads {
        differ.push("file_threads");
        n.file_threads = r.file_threads;
    }
    if r.log_file != n.log_file || r.syslog != n.syslog {
        differ.push("log_file/syslog");
        n.log_file = r.log_file.clone();
        n.syslog = r.syslog;
    }
    if r.user != n.user || r.group != n.group {
        differ.push("user/group");
        n.user = r.user.clone();
        n.group = r.group.clone();
    }
    if r.state_dir != n.state_dir {
        differ.push("state_dir");
        n.state_dir = r.state_dir.clone();
    }
    for key in differ {
        log::warn!("reload: daemon.{key} changed; it takes effect only after a restart");
    }
}

/// Says what a reload does to authentication. Turning it off is allowed (an
/// operator may mean it) but must never pass unnoticed: a truncated or
/// wrong config file would otherwise open the daemon to every TCP client.
fn log_auth_change(old: &Config, new: &Config, path: &std::path::Path) {
    match (&old.daemon.auth_token, &new.daemon.auth_token) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn jobs(text: &str) -> Vec<JobDef> {
        config::parse(text, Path::new("t.toml"))
            .expect("valid config")
            .jobs
    }

    fn by_name(defs: Vec<JobDef>) -> BTreeMap<String, Arc<JobDef>> {
        defs.into_iter()
            .map(|d| (d.name.clone(), Arc::new(d)))
            .collect()
    }

    const OLD: &str = r#"
[[jobs]]
name = "keep"
command = ["true"]
[[jobs]]
name = "edit"
command = ["true"]
every = "1m"
[[jobs]]
name = "drop"
command = ["true"]
"#;

    #[test]
    fn the_diff_names_added_removed_and_changed_jobs() {
        let old = by_name(jobs(OLD));
        let new = jobs(
            r#"
[[jobs]]
name = "zeta"
command = ["true"]
[[jobs]]
name = "edit"
command = ["true"]
every = "2m"
[[jobs]]
name = "keep"
command = ["true"]
[[jobs]]
name = "alpha"
command = ["true"]
"#,
        );
        let diff = diff_jobs(&old, &new);
        assert_eq!(diff.added, ["zeta", "alpha"], "in the file's order");
        assert_eq!(diff.removed, ["drop"]);
        assert_eq!(diff.changed, ["edit"]);
    }

    #[test]
    fn the_same_file_changes_nothing_and_an_empty_one_removes_all() {
        let old = by_name(jobs(OLD));
        assert_eq!(diff_jobs(&old, &jobs(OLD)), JobsDiff::default());
        let diff = diff_jobs(&old, &[]);
        assert_eq!(diff.removed, ["drop", "edit", "keep"], "by name");
        assert!(diff.added.is_empty() && diff.changed.is_empty());
    }

    #[test]
    fn a_report_serializes_to_the_reload_answer() {
        let report = ReloadReport {
            generation: 2,
            added: vec!["a".into()],
            removed: vec![],
            changed: vec!["c".into()],
        };
        assert_eq!(
            serde_json::to_value(&report).expect("json"),
            serde_json::json!({"generation": 2, "added": ["a"], "removed": [], "changed": ["c"]})
        );
    }
}
