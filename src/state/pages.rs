//! Walking the core a page at a time: jobs in name order from a cursor
//! (`jobs.list {after, prefix}`), runs newest first from a run id
//! (`runs.list {before}`).
//!
//! Both cursors are stable under change. Job names are unique and kept
//! ordered (the core's job map is a `BTreeMap`), so a client that pages
//! with "the names after the last one I saw" meets every job that exists
//! throughout exactly once, whatever is added or removed between its
//! pages; a page starts in O(log jobs), never by sorting the jobs. Run ids
//! only grow, so "the runs older than the last one I saw" is not shifted
//! by runs started meanwhile.

use super::run::{Run, RunId, RunState};
use super::{Core, JobEntry};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Bound::{Excluded, Included, Unbounded};

/// Ids [`Core::runs_before`] looks up per run asked for before it walks
/// every run instead.
const DENSE_LOOKUPS: usize = 16;

/// ... and at least this many (a page of 1 still looks past a few gaps).
const MIN_LOOKUPS: usize = 4096;

impl Core {
    /// The jobs whose names start with `prefix`, in name order, after the
    /// name `after` (exclusive) when given. O(log jobs) to start, O(1)
    /// per job taken.
    pub fn jobs_from<'a>(
        &'a self,
        after: Option<&'a str>,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a JobEntry)> + 'a {
        let start = match after {
            Some(a) if a >= prefix => Excluded(a),
            _ => Included(prefix),
        };
        self.jobs
            .range::<str, _>((start, Unbounded))
            .map(|(name, entry)| (&**name, entry))
            .take_while(move |(name, _)| name.starts_with(prefix))
    }

    /// Up to `limit` runs, newest first, older than `before` (ids below
    /// it) when given, optionally only those of job `job` and in state
    /// `state`.
    ///
    /// It runs under the core lock, which the event loop needs too, so a
    /// page must not cost a walk of every run in memory (a million after a
    /// herd). Run ids are handed out in increasing order, so the newest
    /// runs are found by looking ids up downwards from the cursor, which
    /// costs O(limit) where the ids in memory are dense (the common case);
    /// after [`DENSE_LOOKUPS`] look-ups per run asked for (ids evicted from
    /// history, or a filter few runs match), the rest is found by one walk
    /// of the runs below, keeping the newest in a heap.
    pub fn runs_before(
        &self,
        job: Option<&str>,
        state: Option<RunState>,
        before: Option<RunId>,
        limit: usize,
    ) -> Vec<&Run> {
        let wanted = |r: &&Run| {
            job.is_none_or(|j| r.job.as_deref() == Some(j)) && state.is_none_or(|s| r.state == s)
        };
        let mut out = Vec::with_capacity(limit.min(1024));
        let top = before.map_or(self.last_id, |b| b.saturating_sub(1).min(self.last_id));
        let budget = limit.saturating_mul(DENSE_LOOKUPS).max(MIN_LOOKUPS);
        let mut id = top;
        let mut looked = 0;
        while id > 0 && out.len() < limit && looked < budget {
            if let Some(run) = self.runs.get(&id).filter(wanted) {
                out.push(run);
            }
            id -= 1;
            looked += 1;
        }
        if out.len() < limit && id > 0 {
            // Sparse below `id`: one walk of the runs left.
            out.extend(self.newest_by_walk(&wanted, id, limit - out.len()));
        }
        out
    }

    /// Up to `limit` runs with ids at most `top` that pass `wanted`, newest
    /// first, by one walk of every run, keeping the newest in a heap.
    fn newest_by_walk(
        &self,
        wanted: &dyn Fn(&&Run) -> bool,
        top: RunId,
        limit: usize,
    ) -> Vec<&Run> {
        // A min-heap of the newest `limit` ids seen so far.
        let mut newest: BinaryHeap<Reverse<RunId>> = BinaryHeap::new();
        for run in self.runs.values().filter(|r| r.id <= top).filter(wanted) {
            if newest.len() < limit {
                newest.push(Reverse(run.id));
            } else if newest.peek().is_some_and(|Reverse(low)| *low < run.id) {
                newest.pop();
                newest.push(Reverse(run.id));
            }
        }
        let mut ids: Vec<RunId> = newest.into_iter().map(|Reverse(id)| id).collect();
        ids.sort_unstable_by_key(|&id| Reverse(id));
        ids.iter().filter_map(|id| self.runs.get(id)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::run::Trigger;
    use super::super::{Finish, JobSource};
    use super::*;
    use crate::config;
    use std::path::Path;
    use std::sync::Arc;

    fn core_with(names: &[&str]) -> Core {
        let mut text = String::new();
        for n in names {
            text.push_str(&format!("[[jobs]]\nname = \"{n}\"\ncommand = [\"true\"]\n"));
        }
        let cfg = config::parse(&text, Path::new("t.toml")).expect("valid config");
        let mut core = Core::new(100);
        for def in cfg.jobs {
            core.upsert_job(Arc::new(def));
        }
        core
    }

    fn names<'a>(it: impl Iterator<Item = (&'a str, &'a JobEntry)>) -> Vec<&'a str> {
        it.map(|(n, _)| n).collect()
    }

    #[test]
    fn jobs_come_in_name_order_from_the_cursor_within_the_prefix() {
        // Added out of order: the walk is in name order all the same.
        let core = core_with(&["b.2", "a", "b.10", "c", "b.1", "b"]);
        assert_eq!(
            names(core.jobs_from(None, "")),
            ["a", "b", "b.1", "b.10", "b.2", "c"]
        );
        assert_eq!(
            names(core.jobs_from(Some("b"), "")),
            ["b.1", "b.10", "b.2", "c"]
        );
        // `after` need not be a job, nor within the prefix.
        assert_eq!(
            names(core.jobs_from(Some("b.0"), "")),
            ["b.1", "b.10", "b.2", "c"]
        );
        assert_eq!(names(core.jobs_from(None, "b.")), ["b.1", "b.10", "b.2"]);
        assert_eq!(
            names(core.jobs_from(Some("a"), "b.")),
            ["b.1", "b.10", "b.2"]
        );
        assert_eq!(names(core.jobs_from(Some("b.10"), "b.")), ["b.2"]);
        assert!(names(core.jobs_from(Some("b.2"), "b.")).is_empty());
        assert!(names(core.jobs_from(Some("z"), "b.")).is_empty());
        assert!(names(core.jobs_from(None, "d")).is_empty());
        assert!(core
            .jobs_from(None, "")
            .all(|(_, e)| e.source == JobSource::File));
    }

    #[test]
    fn runs_page_back_from_a_run_id_newest_first() {
        let mut core = core_with(&["a", "b"]);
        let ids: Vec<RunId> = (0..7)
            .map(|i| {
                let job = if i % 2 == 0 { "a" } else { "b" };
                let id = core.create_run(Some(job), Trigger::Manual, 1, None);
                if i < 5 {
                    core.finish(id, Finish::with_error(RunState::Failed, "x"), false);
                }
                id
            })
            .collect();
        let got = |core: &Core, job, state, before, limit| -> Vec<RunId> {
            core.runs_before(job, state, before, limit)
                .iter()
                .map(|r| r.id)
                .collect()
        };
        let all: Vec<RunId> = ids.iter().rev().copied().collect();
        assert_eq!(got(&core, None, None, None, 100), all);
        assert_eq!(got(&core, None, None, None, 3), all[..3]);
        assert_eq!(got(&core, None, None, Some(all[2]), 3), all[3..6]);
        assert_eq!(got(&core, None, None, Some(all[5]), 3), all[6..]);
        assert!(got(&core, None, None, Some(ids[0]), 3).is_empty());
        // Filters apply before the limit: a's runs are ids 0, 2, 4, 6.
        assert_eq!(
            got(&core, Some("a"), None, Some(ids[6]), 2),
            [ids[4], ids[2]]
        );
        assert_eq!(
            got(&core, None, Some(RunState::Failed), None, 10),
            [ids[4], ids[3], ids[2], ids[1], ids[0]]
        );
        assert_eq!(
            core.runs_newest_first(Some("b"), None, 10)
                .iter()
                .map(|r| r.id)
                .collect::<Vec<_>>(),
            [ids[5], ids[3], ids[1]]
        );
    }

    /// What `runs_before` must answer, by brute force.
    fn reference(
        core: &Core,
        job: Option<&str>,
        state: Option<RunState>,
        before: Option<RunId>,
        limit: usize,
    ) -> Vec<RunId> {
        let mut ids: Vec<RunId> = core
            .runs
            .values()
            .filter(|r| before.is_none_or(|b| r.id < b))
            .filter(|r| job.is_none_or(|j| r.job.as_deref() == Some(j)))
            .filter(|r| state.is_none_or(|s| r.state == s))
            .map(|r| r.id)
            .collect();
        ids.sort_unstable_by_key(|&id| Reverse(id));
        ids.truncate(limit);
        ids
    }

    #[test]
    fn dense_and_sparse_ids_page_like_a_walk_of_every_run() {
        // History 1: every finished run of "busy" evicts the one before,
        // so the ids in memory are sparse below the newest few; "rare"
        // runs now and then and keeps its one run far below.
        let mut text = String::new();
        for n in ["busy", "rare"] {
            text.push_str(&format!("[[jobs]]\nname = \"{n}\"\ncommand = [\"true\"]\n"));
        }
        let cfg = config::parse(&text, Path::new("t.toml")).expect("valid config");
        let mut core = Core::new(1);
        for def in cfg.jobs {
            core.upsert_job(Arc::new(def));
        }
        for i in 0..30_000u32 {
            let job = if i % 7_001 == 0 { "rare" } else { "busy" };
            let id = core.create_run(Some(job), Trigger::Manual, 1, None);
            // The last few stay queued: a dense top.
            if i < 29_990 {
                core.finish(id, Finish::with_error(RunState::Failed, "x"), false);
            }
        }
        let newest = core.last_id;
        assert!(
            core.runs.len() < 100,
            "sparse: {} runs kept",
            core.runs.len()
        );
        for job in [None, Some("busy"), Some("rare")] {
            for state in [None, Some(RunState::Failed), Some(RunState::Queued)] {
                for before in [None, Some(newest), Some(newest - 5), Some(20_000), Some(2)] {
                    for limit in [1, 3, 10, 100] {
                        let got: Vec<RunId> = core
                            .runs_before(job, state, before, limit)
                            .iter()
                            .map(|r| r.id)
                            .collect();
                        assert_eq!(
                            got,
                            reference(&core, job, state, before, limit),
                            "job {job:?} state {state:?} before {before:?} limit {limit}"
                        );
                    }
                }
            }
        }
    }
}
