//! `after = ["a", "b"]` (a join): a job runs once each time every job it
//! names has succeeded since its own last run by the join. The core keeps,
//! by upstream job, the jobs that wait for it (maintained where jobs are
//! added, replaced and removed, so a success costs a look-up, not a walk
//! of every job), and by waiting job, the upstream runs that succeeded so
//! far.

use super::run::RunId;
use crate::config::JobDef;
use std::collections::{BTreeMap, HashMap};

/// The joins of the job table.
#[derive(Debug, Default)]
pub struct Joins {
    /// Upstream job -> the jobs whose `after` names it.
    waiting_for: HashMap<String, Vec<String>>,
    /// Job -> the jobs whose `on_success` / `on_failure` names it, with
    /// the key (what `jobs.get` shows as `upstream`).
    named_by: HashMap<String, Vec<(String, &'static str)>>,
    /// Waiting job -> its upstream jobs that succeeded since its last
    /// join run, with the run that did.
    done: HashMap<String, BTreeMap<String, RunId>>,
}

/// Jobs linked to one job, each with the key that links them.
pub type Links = Vec<(String, &'static str)>;

/// A join that is complete: the job to run and the upstream runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// The job whose `after` is satisfied.
    pub job: String,
    /// Each upstream job's run that succeeded, by job name.
    pub runs: BTreeMap<String, RunId>,
}

impl Joins {
    /// Notes the `after` edges of `def` (a job added or redefined).
    pub fn link(&mut self, def: &JobDef) {
        for (key, target) in targets(def) {
            self.named_by
                .entry(target.to_string())
                .or_default()
                .push((def.name.clone(), key));
        }
        for upstream in &def.after {
            self.waiting_for
                .entry(upstream.clone())
                .or_default()
                .push(def.name.clone());
        }
    }

    /// Forgets the `after` edges of `def` (a job replaced or removed), and
    /// what its join had gathered.
    pub fn unlink(&mut self, def: &JobDef) {
        for (_, target) in targets(def) {
            if let Some(list) = self.named_by.get_mut(target) {
                list.retain(|(j, _)| *j != def.name);
                if list.is_empty() {
                    self.named_by.remove(target);
                }
            }
        }
        for upstream in &def.after {
            if let Some(list) = self.waiting_for.get_mut(upstream) {
                list.retain(|j| *j != def.name);
                if list.is_empty() {
                    self.waiting_for.remove(upstream);
                }
            }
        }
        self.done.remove(&def.name);
    }

    /// The jobs `def` is linked to, both ways, as `{job, via}` pairs:
    /// upstream (the jobs whose run can start it: its `after`, and those
    /// naming it in `on_success` / `on_failure`) and downstream (those its
    /// runs can start).
    pub fn links_of(&self, def: &JobDef) -> (Links, Links) {
        let mut upstream: Links = def.after.iter().map(|a| (a.clone(), "after")).collect();
        upstream.extend(self.named_by.get(&def.name).into_iter().flatten().cloned());
        let mut downstream: Links = targets(def).map(|(k, t)| (t.to_string(), k)).collect();
        downstream.extend(
            self.waiting_for
                .get(&def.name)
                .into_iter()
                .flatten()
                .map(|j| (j.clone(), "after")),
        );
        (upstream, downstream)
    }

    /// Run `id` of `job` succeeded: the joins it completes, given each
    /// waiting job's `after` list (`after_of`). A completed join starts
    /// gathering again from nothing.
    pub fn succeeded(
        &mut self,
        job: &str,
        id: RunId,
        after_of: impl Fn(&str) -> Option<Vec<String>>,
    ) -> Vec<Ready> {
        let Some(waiting) = self.waiting_for.get(job) else {
            return Vec::new();
        };
        let mut ready = Vec::new();
        for downstream in waiting.clone() {
            let gathered = self.done.entry(downstream.clone()).or_default();
            gathered.insert(job.to_string(), id);
            let Some(after) = after_of(&downstream) else {
                continue;
            };
            if after.iter().all(|a| gathered.contains_key(a)) {
                let runs = std::mem::take(gathered);
                ready.push(Ready {
                    job: downstream,
                    runs,
                });
            }
        }
        ready
    }
}

/// `def`'s `on_success` and `on_failure` targets, with the key.
fn targets(def: &JobDef) -> impl Iterator<Item = (&'static str, &str)> {
    let success = def.on_success.as_deref().map(|t| ("on_success", t));
    let failure = def.on_failure.as_deref().map(|t| ("on_failure", t));
    success.into_iter().chain(failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str, after: &[&str]) -> JobDef {
        let text = format!(
            "[[jobs]]\nname = \"{name}\"\ncommand = [\"true\"]\nafter = {after:?}\n\
             {}",
            after
                .iter()
                .map(|a| format!("[[jobs]]\nname = \"{a}\"\ncommand = [\"true\"]\n"))
                .collect::<String>()
        );
        let config = crate::config::parse(&text, std::path::Path::new("t.toml")).expect("config");
        config
            .jobs
            .into_iter()
            .find(|j| j.name == name)
            .expect("job")
    }

    #[test]
    fn a_join_fires_once_all_have_succeeded_then_starts_over() {
        let c = def("c", &["a", "b"]);
        let mut joins = Joins::default();
        joins.link(&c);
        let after_of = |j: &str| (j == "c").then(|| c.after.clone());
        assert!(joins.succeeded("a", 1, after_of).is_empty());
        // a again: the newest run counts.
        assert!(joins.succeeded("a", 2, after_of).is_empty());
        let ready = joins.succeeded("b", 3, after_of);
        assert_eq!(
            ready,
            vec![Ready {
                job: "c".into(),
                runs: BTreeMap::from([("a".into(), 2), ("b".into(), 3)]),
            }]
        );
        // Starts over.
        assert!(joins.succeeded("b", 4, after_of).is_empty());
        // Unrelated jobs cost nothing; an unlinked job waits no more.
        assert!(joins.succeeded("x", 5, after_of).is_empty());
        joins.unlink(&c);
        assert!(joins.succeeded("a", 6, after_of).is_empty());
        assert!(joins.succeeded("b", 7, after_of).is_empty());
    }
}
