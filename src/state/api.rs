//! Jobs defined at run time (`jobs.put`): what the core keeps about them
//! besides their [`JobEntry`](super::JobEntry).
//!
//! An API job lives in the core's job table like a file job, with
//! `source = api`, so it is listed, run, scheduled, paused and counted the
//! same way. Three things are kept here on top:
//! - the job object it was defined with, as compact JSON: journal
//!   compaction writes it again (the validated `JobDef` cannot be turned
//!   back into the object);
//! - the API jobs that are **kept aside**, not in the job table at all: at
//!   start the config file defined a job of the same name (the file wins),
//!   or the recorded definition no longer passes the rules. They are shown
//!   in `status` until `jobs.delete` removes them, `jobs.put` replaces them,
//!   or (a conflict) a reload removes the file's job, which lets them in;
//! - whether API jobs are **held**: while `daemon.allow_job_api` is false
//!   they stay in the table (history and counters kept, listed with the
//!   reason) but are not scheduled and no run of theirs starts.
//!
//! Only API jobs can name API jobs in `on_failure` (the file's rules look
//! for a file job's target in the file), so the jobs naming an API job are
//! found in `named_by`, an index of API jobs' targets, without a scan.

use super::{Core, JobEntry, JobSource};
use crate::config::JobDef;
use crate::state::run::RunId;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// What `jobs.list` says of an API job while `daemon.allow_job_api` is false.
pub const HELD_REASON: &str = "daemon.allow_job_api is false: not scheduled, and no run starts";

/// An API job kept out of the job table, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aside {
    /// The job object it was defined with (compact JSON).
    pub source: Box<str>,
    /// Why it is not in the job table.
    pub reason: String,
}

/// The core's record of the jobs defined at run time. See the module docs.
#[derive(Debug, Default)]
pub struct ApiJobs {
    /// The defining object of every API job in the job table, by name.
    sources: BTreeMap<String, Box<str>>,
    /// API jobs kept out of the job table, by name.
    aside: BTreeMap<String, Aside>,
    /// `on_failure` target → the API jobs in the table that name it.
    named_by: HashMap<String, BTreeSet<String>>,
    /// While true (`daemon.allow_job_api = false`), API jobs are held.
    held: bool,
}

impl ApiJobs {
    /// Whether API jobs are held (`daemon.allow_job_api = false`).
    pub fn held(&self) -> bool {
        self.held
    }

    /// How many API jobs are in the job table (held ones included).
    pub fn defined(&self) -> usize {
        self.sources.len()
    }

    /// The API jobs kept aside, by name.
    pub fn aside(&self) -> &BTreeMap<String, Aside> {
        &self.aside
    }

    /// Every API job's name and defining object, those kept aside included
    /// (what journal compaction writes), by name within each group.
    pub fn sources(&self) -> impl Iterator<Item = (&str, &str)> {
        let table = self.sources.iter().map(|(n, s)| (n.as_str(), &**s));
        let aside = self.aside.iter().map(|(n, a)| (n.as_str(), &*a.source));
        table.chain(aside)
    }

    /// The defining object of the API job `name` in the job table.
    pub fn source_of(&self, name: &str) -> Option<&str> {
        self.sources.get(name).map(|s| &**s)
    }

    /// The API jobs named after `after` (all for None), by name, with
    /// their defining objects: those in the job table, or (`aside`) those
    /// kept aside (journal compaction, a piece at a time).
    pub fn sources_after<'a>(
        &'a self,
        aside: bool,
        after: Option<&'a str>,
    ) -> Box<dyn Iterator<Item = (&'a str, &'a str)> + 'a> {
        use std::ops::Bound;
        let from = (
            after.map_or(Bound::Unbounded, Bound::Excluded),
            Bound::Unbounded,
        );
        if aside {
            let range = self.aside.range::<str, _>(from);
            Box::new(range.map(|(n, a)| (n.as_str(), &*a.source)))
        } else {
            let range = self.sources.range::<str, _>(from);
            Box::new(range.map(|(n, s)| (n.as_str(), &**s)))
        }
    }

    /// The API jobs in the table whose `on_failure` names `target`, by name
    /// (`target` itself left out).
    pub fn dependents_of(&self, target: &str) -> Vec<String> {
        self.named_by
            .get(target)
            .map(|names| names.iter().filter(|n| *n != target).cloned().collect())
            .unwrap_or_default()
    }

    fn index(&mut self, def: &JobDef) {
        if let Some(target) = &def.on_failure {
            self.named_by
                .entry(target.clone())
                .or_default()
                .insert(def.name.clone());
        }
    }

    fn unindex(&mut self, def: &JobDef) {
        if let Some(target) = &def.on_failure {
            if let Some(names) = self.named_by.get_mut(target) {
                names.remove(&def.name);
                if names.is_empty() {
                    self.named_by.remove(target);
                }
            }
        }
    }
}

/// Whether a job's schedule runs: its definition enables it, it is not
/// paused, and it is not an API job held by `daemon.allow_job_api = false`.
pub(super) fn effective_enabled(entry: &JobEntry, held: bool) -> bool {
    entry.def.enabled && !entry.paused && !(held && entry.source == JobSource::Api)
}

impl Core {
    /// The jobs defined at run time.
    pub fn api(&self) -> &ApiJobs {
        &self.api
    }

    /// Whether `name` is an API job held by `daemon.allow_job_api = false`.
    pub fn is_held(&self, name: &str) -> bool {
        self.api.held
            && self
                .jobs
                .get(name)
                .is_some_and(|e| e.source == JobSource::Api)
    }

    /// Adds or replaces the API job `def`, defined by the object `source`;
    /// true if it is new. A replaced job keeps its counters, history and
    /// runs (as a reload's changed job does); one of that name kept aside
    /// is dropped. The caller makes sure no file job has the name.
    pub fn put_api_job(&mut self, def: Arc<JobDef>, source: Box<str>) -> bool {
        let name = def.name.clone();
        let created = !self.jobs.contains_key(name.as_str());
        if let Some(old) = self.jobs.get(name.as_str()).map(|e| Arc::clone(&e.def)) {
            self.api.unindex(&old);
        }
        self.api.index(&def);
        self.upsert_job(def);
        let held = self.api.held;
        if let Some(entry) = self.jobs.get_mut(name.as_str()) {
            entry.source = JobSource::Api;
            entry.enabled = effective_enabled(entry, held);
        }
        self.api.aside.remove(&name);
        self.api.sources.insert(name, source);
        created
    }

    /// Removes the API job `name` (see [`Core::remove_job`]); returns its
    /// queued backlog for the caller to cancel. Not for file jobs.
    pub fn remove_api_job(&mut self, name: &str) -> Vec<RunId> {
        if let Some(def) = self.jobs.get(name).map(|e| Arc::clone(&e.def)) {
            self.api.unindex(&def);
        }
        self.api.sources.remove(name);
        self.remove_job(name)
    }

    /// Keeps the API job `name` aside (not in the job table), with why.
    pub fn set_aside(&mut self, name: &str, source: Box<str>, reason: String) {
        self.api
            .aside
            .insert(name.to_string(), Aside { source, reason });
    }

    /// Takes the API job `name` out of those kept aside.
    pub fn take_aside(&mut self, name: &str) -> Option<Aside> {
        self.api.aside.remove(name)
    }

    /// Holds (`true`) or releases the API jobs; returns the names of those
    /// whose schedule must be armed or disarmed again (none if `held` is
    /// unchanged).
    pub fn set_api_held(&mut self, held: bool) -> Vec<String> {
        if self.api.held == held {
            return Vec::new();
        }
        self.api.held = held;
        let names: Vec<String> = self.api.sources.keys().cloned().collect();
        for name in &names {
            if let Some(entry) = self.jobs.get_mut(name.as_str()) {
                entry.enabled = effective_enabled(entry, held);
            }
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn def(text: &str) -> Arc<JobDef> {
        let config = crate::config::parse(text, Path::new("t.toml")).expect("config");
        Arc::new(config.jobs.into_iter().next().expect("one job"))
    }

    fn api(name: &str, on_failure: Option<&str>) -> Arc<JobDef> {
        let mut d = (*def(&format!(
            "[[jobs]]\nname = \"{name}\"\ncommand = [\"true\"]\nevery = \"1m\""
        )))
        .clone();
        d.on_failure = on_failure.map(str::to_string);
        Arc::new(d)
    }

    #[test]
    fn a_put_creates_then_replaces_keeping_counters() {
        let mut core = Core::new(10);
        assert!(core.put_api_job(api("a", None), "{}".into()));
        let entry = core.job("a").expect("added");
        assert_eq!(entry.source, JobSource::Api);
        assert!(entry.enabled);
        let id = core.create_run(Some("a"), crate::state::run::Trigger::Manual, 1, None);
        let failed = crate::state::Finish::with_error(crate::state::run::RunState::Failed, "x");
        core.finish(id, failed, false);
        assert!(!core.put_api_job(api("a", Some("b")), "{\"x\":1}".into()));
        assert_eq!(core.job("a").map(|e| e.runs_total()), Some(1));
        assert_eq!(core.api().dependents_of("b"), ["a"]);
        assert_eq!(
            core.api().sources().collect::<Vec<_>>(),
            [("a", "{\"x\":1}")]
        );
        core.put_api_job(api("a", None), "{}".into());
        assert!(core.api().dependents_of("b").is_empty(), "unindexed");
        core.remove_api_job("a");
        assert!(core.job("a").is_none());
        assert_eq!(core.api().defined(), 0);
    }

    #[test]
    fn held_api_jobs_are_not_enabled_and_file_jobs_never_held() {
        let mut core = Core::new(10);
        core.upsert_job(def("[[jobs]]\nname = \"f\"\ncommand = [\"true\"]"));
        core.put_api_job(api("a", None), "{}".into());
        assert_eq!(core.set_api_held(true), ["a"]);
        assert!(core.set_api_held(true).is_empty(), "unchanged");
        assert!(!core.job("a").expect("a").enabled);
        assert!(core.is_held("a") && !core.is_held("f"));
        assert!(core.job("f").expect("f").enabled);
        core.set_paused("a", true);
        core.set_paused("a", false);
        assert!(
            !core.job("a").expect("a").enabled,
            "a resume does not release it"
        );
        core.set_api_held(false);
        assert!(core.job("a").expect("a").enabled);
    }

    #[test]
    fn an_aside_job_is_kept_until_put_or_taken() {
        let mut core = Core::new(10);
        core.set_aside("a", "{\"n\":1}".into(), "conflict".into());
        assert_eq!(core.api().sources().count(), 1);
        core.put_api_job(api("a", None), "{}".into());
        assert!(core.api().aside().is_empty(), "a put replaces it");
        core.set_aside("b", "{}".into(), "conflict".into());
        assert_eq!(
            core.take_aside("b").map(|a| a.reason),
            Some("conflict".into())
        );
    }
}
