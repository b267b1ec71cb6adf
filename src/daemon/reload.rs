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
//! What changed is worked out by [`classify`], one walk of the running
//! file's definitions (kept sorted by name, see [`FileJobs`]) beside the new
//! file's, and reported as a [`ReloadReport`].
//!
//! A reload is split between two threads (see `reload_apply.rs` for the
//! loop's half): the reload thread reads, parses and validates the file,
//! diffs it against the running file's definitions and checks it against
//! the API jobs ([`prepare`]), never touching the core but for those short
//! checks, taken under the core lock a chunk at a time; the event loop
//! then applies the [`Plan`] a slice at a time.

use super::Shared;
use crate::config::{self, Config, JobDef, LiveSettings};
use crate::state::JobSource;
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
pub(super) fn classify<'a>(old: impl IntoIterator<Item = &'a JobDef>, new: &[JobDef]) -> Walk {
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
    Walk {
        status,
        removed,
        order,
    }
}

/// What [`classify`] found.
pub(super) struct Walk {
    /// Of each new definition, in the new file's order.
    pub status: Vec<Status>,
    /// The old names the new file lacks, by name.
    pub removed: Vec<String>,
    /// The new file's indices in name order.
    pub order: Vec<usize>,
}

/// Compares the running definitions (by name) with a new file's.
pub fn diff_jobs(old: &BTreeMap<String, Arc<JobDef>>, new: &[JobDef]) -> JobsDiff {
    let walk = classify(old.values().map(|d| &**d), new);
    JobsDiff::of(&walk.status, walk.removed, new)
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

/// The running file's job definitions, sorted by name: the very `Arc`s the
/// core holds, so a reload diffs against them without the core (a second
/// copy costs a pointer per job). Replaced whole when a reload is applied.
pub(super) type FileJobs = Vec<Arc<JobDef>>;

/// How many names the reload thread checks against the core per hold of
/// its lock: short enough that the loop never waits long for the lock.
const CHECK_CHUNK: usize = 4096;

/// An accepted file, diffed and checked, for the loop to apply.
pub(super) struct Plan {
    /// The new file's settings and warnings (its jobs are taken out).
    pub config: Config,
    /// The names added, removed and changed.
    pub diff: JobsDiff,
    /// The new file's definitions in name order: the running ones for the
    /// jobs it leaves unchanged, the new ones for the others. The next
    /// [`FileJobs`] once applied.
    pub sorted: FileJobs,
    /// The added and changed definitions, in the file's order.
    pub upserts: Vec<Arc<JobDef>>,
}

impl Plan {
    /// Whether the new file defines a job named `name`.
    pub fn defines(&self, name: &str) -> bool {
        self.sorted
            .binary_search_by(|d| d.name.as_str().cmp(name))
            .is_ok()
    }

    /// Whether the new file removes the job `name`.
    pub fn removes(&self, name: &str) -> bool {
        self.diff
            .removed
            .binary_search_by(|n| n.as_str().cmp(name))
            .is_ok()
    }
}

/// What the reload thread hands the loop: the plan, or why the file is
/// refused (the message of the rejection).
pub struct Prepared {
    /// Which reload this is.
    pub(super) ticket: u64,
    pub(super) outcome: Result<Box<Plan>, String>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("ticket", &self.ticket)
            .field("accepted", &self.outcome.is_ok())
            .finish()
    }
}

/// Reads the file at `path`, diffs it against `running` and checks it
/// against the API jobs in `shared`'s core: the reload's work off the loop.
pub(super) fn prepare(
    shared: &Shared,
    path: &std::path::Path,
    running: &FileJobs,
) -> Result<Box<Plan>, String> {
    let mut config = config::load(path).map_err(|e| e.to_string())?;
    let new = std::mem::take(&mut config.jobs);
    let walk = classify(running.iter().map(|d| &**d), &new);
    let diff = JobsDiff::of(&walk.status, walk.removed, &new);
    conflicts(shared, path, &diff)?;
    // Unchanged jobs keep the running definition (the new copy is dropped
    // here, not on the loop).
    let arcs: Vec<Arc<JobDef>> = new
        .into_iter()
        .zip(&walk.status)
        .map(|(def, s)| match s {
            Status::Same(i) => Arc::clone(&running[*i]),
            Status::Added | Status::Changed => Arc::new(def),
        })
        .collect();
    let upserts = arcs
        .iter()
        .zip(&walk.status)
        .filter(|(_, s)| !matches!(s, Status::Same(_)))
        .map(|(d, _)| Arc::clone(d))
        .collect();
    let sorted = walk.order.iter().map(|&j| Arc::clone(&arcs[j])).collect();
    log::info!(
        "reload: {} read and checked: {} added, {} removed, {} changed; applying",
        path.display(),
        diff.added.len(),
        diff.removed.len(),
        diff.changed.len()
    );
    Ok(Box::new(Plan {
        config,
        diff,
        sorted,
        upserts,
    }))
}

/// `Err` (the reload's rejection message) when the new file adds a job
/// with an API job's name, or removes a file job that an API job names in
/// `on_failure`. Only the added and removed names can conflict (a name is
/// either the file's or the API's), and they are looked up under the core
/// lock [`CHECK_CHUNK`] at a time.
fn conflicts(shared: &Shared, file: &std::path::Path, diff: &JobsDiff) -> Result<(), String> {
    let mut problems = Vec::new();
    for chunk in diff.added.chunks(CHECK_CHUNK) {
        let core = shared.core.lock();
        for name in chunk.iter().filter(|n| is_api_job(&core, n)) {
            problems.push(adds_api_name(file, name));
        }
    }
    for chunk in diff.removed.chunks(CHECK_CHUNK) {
        let core = shared.core.lock();
        for name in chunk {
            problems.extend(removes_a_target(&core, file, name));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Whether `name` is an API job, in the table or kept aside.
pub(super) fn is_api_job(core: &crate::state::Core, name: &str) -> bool {
    match core.job(name) {
        Some(e) => e.source == JobSource::Api,
        None => core.api().aside().contains_key(name),
    }
}

/// The problem of a file that adds the API job `name`'s name.
pub(super) fn adds_api_name(file: &std::path::Path, name: &str) -> String {
    format!(
        "{}: adds job \"{name}\", but a job of that name is defined through the API \
         (jobs.put, source api): delete the API job (jobs.delete) or give the \
         file's job another name",
        file.display()
    )
}

/// The problem of a file that removes the file job `name`, if API jobs
/// name it in `on_failure`.
pub(super) fn removes_a_target(
    core: &crate::state::Core,
    file: &std::path::Path,
    name: &str,
) -> Option<String> {
    let dependents = core.api().dependents_of(name);
    (!dependents.is_empty() && !core.api().aside().contains_key(name)).then(|| {
        format!(
            "{}: removes job \"{name}\", which the API job(s) {} name in on_failure: \
             change or delete them first",
            file.display(),
            dependents.join(", ")
        )
    })
}

/// Says what a reload does to authentication. Turning it off is allowed (an
/// operator may mean it) but must never pass unnoticed: a truncated or
/// wrong config file would otherwise open the daemon to every TCP client.
pub(super) fn log_auth_change(old: &LiveSettings, new: &LiveSettings, path: &std::path::Path) {
    let (was, is) = (&old.tokens, &new.tokens);
    match (was.auth_on(), is.auth_on()) {
        (true, false) => log::warn!(
            "SECURITY: reload turned authentication off ({} sets no auth_token and no [[tokens]]): TCP and HTTP clients no longer need a token",
            path.display()
        ),
        (false, true) => log::info!(
            "reload turned authentication on: TCP clients, open connections included, must now call auth"
        ),
        (true, true) if was != is => {
            // Names and roles, never secrets: who lost access, who changed.
            let mut changes = Vec::new();
            for t in was.iter() {
                match is.find_secret(&t.secret) {
                    None => changes.push(format!("\"{}\" removed or replaced", t.name)),
                    Some(n) if n.role != t.role || n.name != t.name => changes.push(format!(
                        "\"{}\" ({}) is now \"{}\" ({})",
                        t.name, t.role, n.name, n.role
                    )),
                    Some(_) => {}
                }
            }
            for t in is.iter().filter(|t| was.find_secret(&t.secret).is_none()) {
                changes.push(format!("\"{}\" ({}) added", t.name, t.role));
            }
            log::info!(
                "reload changed the auth tokens ({}): open connections are judged by the tokens now in force; one whose token was removed must authenticate again",
                changes.join(", ")
            );
        }
        _ => {}
    }
}

/// Logs what a reload does to TLS on the TCP port: turned off (a
/// security warning, as for authentication), on, or a new certificate.
/// Connections already open keep what they have.
pub(super) fn log_tls_change(old: &LiveSettings, new: &LiveSettings, path: &std::path::Path) {
    match (&old.tls, &new.tls) {
        (Some(_), None) => log::warn!(
            "SECURITY: reload turned TLS off ({} sets no tls_cert): new TCP connections speak plaintext",
            path.display()
        ),
        (None, Some(t)) => log::info!(
            "reload turned TLS on (certificate {}): new TCP connections must speak TLS",
            t.cert_path.display()
        ),
        (Some(a), Some(b)) if a != b => log::info!(
            "reload read a new TLS certificate or key ({}): new TCP connections get it",
            b.cert_path.display()
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
