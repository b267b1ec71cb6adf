//! Stage two: raw structs → [`Config`], reporting every problem.
//!
//! Each table is validated on its own ([`super::daemon`], [`super::job`]),
//! then the checks that look across jobs run here: names are unique, and
//! `on_failure` names an existing job without forming a cycle (a cycle would
//! let one failure trigger runs forever).
//!
//! Jobs that share settings share their memory ([`Interner`]).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use super::error::{ConfigError, Report};
use super::job::{self, Checked};
use super::raw::{RawFile, RawJob};
use super::{daemon, Config, DaemonConfig, JobDef, JobKind};
use crate::schedule::Schedule;

/// Validates a file read by stage one, whose problems are already in `r`;
/// `Err` lists every error in file order.
pub(crate) fn validate(
    mut r: Report<'_>,
    raw: RawFile,
    path: &Path,
) -> Result<Config, ConfigError> {
    let daemon = daemon::validate(&mut r, raw.daemon);
    let mut jobs = Jobs::default();
    for job in raw.jobs {
        jobs.push(&mut r, job);
    }
    let cluster = raw
        .cluster
        .and_then(|(item, at)| super::cluster::check(&mut r, &item, at));
    let mut config = jobs.finish(&mut r, daemon, path);
    config.cluster = cluster;
    config.warnings = r.finish()?;
    Ok(config)
}

/// The jobs of a file, validated one by one as they are read.
#[derive(Default)]
pub(crate) struct Jobs {
    checked: Vec<Checked>,
    interner: Interner,
}

impl Jobs {
    /// Validates one job table.
    pub(crate) fn push(&mut self, r: &mut Report<'_>, job: RawJob) {
        let mut checked = job::validate(r, job);
        if let Some(def) = &mut checked.def {
            self.interner.share(def);
        }
        checked.compact();
        self.checked.push(checked);
    }

    /// How many jobs were pushed.
    pub(crate) fn len(&self) -> usize {
        self.checked.len()
    }

    /// Runs the checks across jobs and puts the config together (its
    /// `warnings` are left for the caller to take from `r`).
    pub(crate) fn finish(self, r: &mut Report<'_>, daemon: DaemonConfig, path: &Path) -> Config {
        let by_name = unique_names(r, &self.checked);
        failure_targets(r, &self.checked, &by_name);
        drop(by_name);
        Config {
            path: path.to_path_buf(),
            daemon,
            jobs: self.checked.into_iter().filter_map(|c| c.def).collect(),
            cluster: None,
            warnings: Vec::new(),
        }
    }
}

/// One copy of each distinct kind (command, environment, ...) and
/// schedule, for all the jobs of a file that have it: a config of a
/// million jobs mostly repeats a few commands and a few thousand
/// schedules, and each job then holds a pointer to them.
#[derive(Default)]
struct Interner {
    kinds: HashSet<Arc<JobKind>>,
    /// By text; a text is the same schedule in one zone only.
    schedules: HashMap<Box<str>, Vec<Schedule>>,
}

impl Interner {
    /// Points `def` at the copies of its kind and schedule seen before.
    fn share(&mut self, def: &mut JobDef) {
        match self.kinds.get(&*def.kind) {
            Some(kind) => def.kind = Arc::clone(kind),
            None => {
                self.kinds.insert(Arc::clone(&def.kind));
            }
        }
        if let Some(schedule) = &mut def.schedule {
            match self.schedules.get_mut(schedule.text()) {
                Some(seen) => match seen.iter().find(|s| *s == schedule) {
                    Some(same) => *schedule = same.clone(),
                    None => seen.push(schedule.clone()),
                },
                None => {
                    let text = Box::from(schedule.text());
                    self.schedules.insert(text, vec![schedule.clone()]);
                }
            }
        }
    }
}

/// Reports repeated job names; returns each name's first job index.
fn unique_names<'c>(r: &mut Report<'_>, checked: &'c [Checked]) -> HashMap<&'c str, usize> {
    let mut by_name: HashMap<&str, usize> = HashMap::with_capacity(checked.len());
    for (index, job) in checked.iter().enumerate() {
        let Some((name, at)) = job.name() else {
            continue;
        };
        match by_name.get(name) {
            Some(first) => {
                let first_at = checked[*first].name().map_or(0, |(_, at)| at);
                let message = format!(
                    "duplicate job name; jobs[{first}] on line {} already uses \"{name}\"",
                    r.line_of(first_at)
                );
                r.error(at, job.label("name"), message);
            }
            None => {
                by_name.insert(name, index);
            }
        }
    }
    by_name
}

/// Reports `on_failure` targets that do not exist, and cycles, in one
/// pass over the jobs (each job is walked once, however long the chains).
fn failure_targets(r: &mut Report<'_>, checked: &[Checked], by_name: &HashMap<&str, usize>) {
    // Each job has at most one target, so following targets from any job
    // either ends or loops; a loop is reported once, at its lowest index.
    let next = |index: usize| -> Option<usize> {
        let (target, _) = checked[index].on_failure()?;
        by_name.get(target).copied()
    };
    for job in checked {
        if let Some((target, at)) = job.on_failure() {
            if !by_name.contains_key(target) {
                let message = format!("names job \"{target}\", which does not exist");
                r.error(at, job.label("on_failure"), message);
            }
        }
    }
    // 0: not seen; 1: on the walk in progress; 2: done.
    let mut state = vec![0u8; checked.len()];
    let mut walk = Vec::new();
    for start in 0..checked.len() {
        let mut current = start;
        let mut looped = false;
        while state[current] == 0 {
            state[current] = 1;
            walk.push(current);
            match next(current) {
                Some(step) => {
                    current = step;
                    looped = state[step] == 1;
                }
                None => break,
            }
        }
        if looped {
            // The walk came back to itself: a cycle, from `current` on.
            let from = walk.iter().position(|i| *i == current).unwrap_or(0);
            let cycle = &walk[from..];
            let lowest = cycle.iter().copied().min().unwrap_or(current);
            let mut names = Vec::with_capacity(cycle.len() + 1);
            let mut i = lowest;
            loop {
                names.extend(checked[i].name().map(|(n, _)| n));
                match next(i) {
                    Some(step) if step != lowest => i = step,
                    _ => break,
                }
            }
            names.extend(checked[lowest].name().map(|(n, _)| n));
            if let Some((_, at)) = checked[lowest].on_failure() {
                let message = format!("forms a cycle: {}", names.join(" -> "));
                r.error(at, checked[lowest].label("on_failure"), message);
            }
        }
        for i in walk.drain(..) {
            state[i] = 2;
        }
    }
}
