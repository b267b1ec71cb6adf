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

//!
//! What changed is worked out by [`diff_jobs`], a pure function of the old
//! and new definitions, and reported as a [`ReloadReport`].

use super::{Daemon, Error};
use crate::config::{self, JobDef, LiveSettings};
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

/// What a diff found of one definition of the new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    /// Not in the old definitions.
    Added,
    /// In both, different.
    Changed,
    /// In both, equal: the old one at this index (in name order) stays.
    Same(usize),
}

/// The heart of every diff: walks the old definitions (`old`, sorted by
/// name, as a `BTreeMap` or the file's last sorted list gives them) and the
/// new file's (sorted here, by index) side by side, once. Returns the
/// status of each of `new`'s definitions (in `new`'s order) and the names
/// of the old ones it lacks (by name). O(n log n) for the sort, O(n) for
/// the walk; no definition is looked for by a scan.
pub(super) fn classify<'a>(
    old: impl IntoIterator<Item = &'a JobDef>,
    new: &[JobDef],
) -> (Vec<Status>, Vec<String>) {
    let mut order: Vec<usize> = (0..new.len()).collect();
    order.sort_unstable_by(|&a, &b| new[a].name.cmp(&new[b].name));
    let mut status = vec![Status::Added; new.len()];
    let mut removed = Vec::new();
    let mut next = order.iter().copied().peekable();
    for (i, o) in old.into_iter().enumerate() {
        // New names before this old one are added (already marked).
        while next.next_if(|&j| new[j].name < o.name).is_some() {}
        match next.next_if(|&j| new[j].name == o.name) {
            Some(j) if new[j] == *o => status[j] = Status::Same(i),
            Some(j) => status[j] = Status::Changed,
            None => removed.push(o.name.clone()),
        }
    }
    (status, removed)
}

/// Compares the running definitions (by name) with a new file's.
pub fn diff_jobs(old: &BTreeMap<String, Arc<JobDef>>, new: &[JobDef]) -> JobsDiff {
    let (status, removed) = classify(old.values().map(|d| &**d), new);
    JobsDiff::of(&status, removed, new)
}

impl JobsDiff {
    /// The names of `new`'s added and changed definitions, in its order.
    pub(super) fn of(status: &[Status], removed: Vec<String>, new: &[JobDef]) -> JobsDiff {
        let mut diff = JobsDiff {
            removed,
            ..JobsDiff::default()
        };
        for (def, s) in new.iter().zip(status) {
            match s {
                Status::Added => diff.added.push(def.name.clone()),
                Status::Changed => diff.changed.push(def.name.clone()),
                Status::Same(_) => {}
            }
        }
        diff
    }
}

impl Daemon {
    /// Re-reads the config file and applies it, or keeps the old one.
    pub fn reload(&mut self) -> Result<ReloadReport, Error> {
        let _reloading = crate::notify::reloading();
        let path = self.shared.board.info.read().path.clone();
        let loaded = config::load(&path).map_err(|e| e.to_string());
        let mut new = match loaded.and_then(|c| self.reload_conflicts(&c).map(|()| c)) {
            Ok(c) => c,
            Err(msg) => {
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
        for key in self.start.needs_restart(&new.daemon.start) {
            log::warn!("reload: daemon.{key} changed; it takes effect only after a restart");
        }
        log_auth_change(&self.shared.board.live.read(), &new.daemon.live, &path);

        // The file's jobs only: those defined through the API are not the
        // file's to remove (see `define`).
        let old: BTreeMap<String, Arc<JobDef>> = {
            let core = self.shared.core.lock();
            core.job_names()
                .into_iter()
                .filter_map(|n| {
                    core.job(&n)
                        .filter(|e| e.source == crate::state::JobSource::File)
                        .map(|e| (n, Arc::clone(&e.def)))
                })
                .collect()
        };
        let (status, removed) = classify(old.values().map(|d| &**d), &new.jobs);
        let JobsDiff {
            added,
            removed,
            changed,
        } = JobsDiff::of(&status, removed, &new.jobs);
        drop(old);

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
        for name in &removed {
            self.skips.forget(name);
        }
        // The definitions move into the core (the daemon keeps no copy); an
        // unchanged job keeps the one it has, and the new copy is dropped.
        for (def, s) in std::mem::take(&mut new.jobs).into_iter().zip(status) {
            if !matches!(s, Status::Same(_)) {
                let name = def.name.clone();
                self.shared.core.lock().upsert_job(Arc::new(def));
                self.arm(&name);
            }
        }
        self.reload_api_jobs(&removed, new.daemon.live.allow_job_api);
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
        Ok(ReloadReport {
            generation,
            added,
            removed,
            changed,
        })
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

    /// `n` jobs named `job-{i}` (a name order unlike the number order),
    /// each `every` the given minutes.
    fn many(n: usize, minutes: impl Fn(usize) -> usize) -> Vec<JobDef> {
        let text: String = (0..n)
            .map(|i| {
                format!(
                    "[[jobs]]\nname = \"job-{i}\"\ncommand = [\"true\"]\nevery = \"{}m\"\n",
                    minutes(i)
                )
            })
            .collect();
        jobs(&text)
    }

    /// 100,000 jobs against 100,000: the walk is linear by construction
    /// (a quadratic diff would not end in any test's lifetime: 10^10 name
    /// comparisons), and it finds exactly what was changed.
    #[test]
    fn a_diff_of_a_hundred_thousand_jobs_is_one_walk() {
        const N: usize = 100_000;
        let old = by_name(many(N, |_| 1));
        // Every 7th job changed, the last 10 removed, 10 added at the front.
        let mut new = jobs(
            &(0..10)
                .map(|i| format!("[[jobs]]\nname = \"new-{i}\"\ncommand = [\"true\"]\n"))
                .collect::<String>(),
        );
        new.extend(many(N - 10, |i| if i % 7 == 0 { 2 } else { 1 }));
        let diff = diff_jobs(&old, &new);
        assert_eq!(diff.added.len(), 10);
        assert_eq!(diff.added[0], "new-0", "in the file's order");
        assert_eq!(diff.changed.len(), (N - 10).div_ceil(7));
        assert_eq!(diff.changed[..2], ["job-0", "job-7"], "in the file's order");
        let mut gone: Vec<String> = (N - 10..N).map(|i| format!("job-{i}")).collect();
        gone.sort();
        assert_eq!(diff.removed, gone, "by name");
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
