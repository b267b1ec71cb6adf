//! Stage two: raw structs → [`Config`], reporting every problem.
//!
//! Each table is validated on its own ([`super::daemon`], [`super::job`]),
//! then the checks that look across jobs run here: names are unique, and
//! `on_failure` and `on_success` name existing jobs without forming a
//! cycle through either (a cycle would let one run trigger runs forever).
//!
//! Jobs that share settings share their memory ([`Interner`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use super::error::{ConfigError, Report};
use super::job::{self, Checked};
use super::raw::{RawFile, RawJob};
use super::{daemon, Config, DaemonConfig, JobDef, JobKind, NotifySink};
use crate::schedule::Schedule;

/// Validates a file read by stage one, whose problems are already in `r`;
/// `Err` lists every error in file order.
pub(crate) fn validate(
    mut r: Report<'_>,
    raw: RawFile,
    path: &Path,
) -> Result<Config, ConfigError> {
    let mut daemon = daemon::validate(&mut r, raw.daemon);
    if let Some((item, at)) = raw.tokens {
        super::tokens::check(&mut r, &item, at, &mut daemon.live.tokens);
    }
    let mut jobs = Jobs::default();
    for job in raw.jobs {
        jobs.push(&mut r, job);
    }
    let cluster = raw
        .cluster
        .and_then(|(item, at)| super::cluster::check(&mut r, &item, at));
    let concurrency = raw
        .concurrency
        .map(|(item, at)| super::concurrency::check(&mut r, &item, at))
        .unwrap_or_default();
    limits_named(&mut r, &jobs.checked, &concurrency);
    let notify = raw
        .notify
        .map(|(item, at)| super::notify::check(&mut r, &item, at))
        .unwrap_or_default();
    let mut config = jobs.finish(&mut r, daemon, path, &notify);
    config.cluster = cluster;
    config.concurrency = concurrency;
    config.notify = notify;
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

    /// Runs the checks across jobs (`sinks`: the file's `[[notify]]`) and
    /// puts the config together (its `warnings` are left for the caller to
    /// take from `r`).
    pub(crate) fn finish(
        self,
        r: &mut Report<'_>,
        daemon: DaemonConfig,
        path: &Path,
        sinks: &BTreeMap<String, NotifySink>,
    ) -> Config {
        let by_name = unique_names(r, &self.checked);
        failure_targets(r, &self.checked, &by_name);
        drop(by_name);
        sinks_named(r, &self.checked, sinks);
        Config {
            path: path.to_path_buf(),
            daemon,
            jobs: self.checked.into_iter().filter_map(|c| c.def).collect(),
            cluster: None,
            concurrency: BTreeMap::new(),
            notify: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }
}

/// Each job's `notify` names `[[notify]]` sinks of the file.
fn sinks_named(r: &mut Report<'_>, checked: &[Checked], sinks: &BTreeMap<String, NotifySink>) {
    for job in checked {
        let (Some(def), Some(at)) = (&job.def, job.notify_at) else {
            continue;
        };
        for name in def.notify.iter().filter(|n| !sinks.contains_key(*n)) {
            let message = if sinks.is_empty() {
                format!("names the sink \"{name}\", but the file has no [[notify]] table")
            } else {
                let known: Vec<&str> = sinks.keys().map(String::as_str).collect();
                format!(
                    "names the sink \"{name}\", which no [[notify]] table defines (defined: {})",
                    known.join(", ")
                )
            };
            r.error(at, job.label("notify"), message);
        }
    }
}

/// Each job's `concurrency` names a `[concurrency.NAME]` table.
fn limits_named(
    r: &mut Report<'_>,
    checked: &[Checked],
    limits: &std::collections::BTreeMap<String, u32>,
) {
    for job in checked {
        if let Some((name, at)) = &job.concurrency {
            if !limits.contains_key(name) {
                let message =
                    format!("names the limit \"{name}\", which has no [concurrency.{name}] table");
                r.error(*at, job.label("concurrency"), message);
            }
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

/// Reports `on_failure`, `on_success` and `after` targets that do not
/// exist, and cycles through them, in one pass over the jobs (each job is walked once,
/// however long the chains): a cycle would let one run trigger runs
/// forever. A cycle is reported once, at its lowest-indexed job, naming
/// every job on it and the key of each step.
fn failure_targets(r: &mut Report<'_>, checked: &[Checked], by_name: &HashMap<&str, usize>) {
    type Target = fn(&Checked) -> Option<(&str, usize)>;
    const KEYS: [(&str, Target); 2] = [
        ("on_failure", Checked::on_failure),
        ("on_success", Checked::on_success),
    ];
    for job in checked {
        for (key, target_of) in KEYS {
            if let Some((target, at)) = target_of(job) {
                if !by_name.contains_key(target) {
                    let message = format!("names job \"{target}\", which does not exist");
                    r.error(at, job.label(key), message);
                }
            }
        }
    }
    for job in checked {
        if let Some((names, at)) = job.after() {
            for name in names.iter().filter(|n| !by_name.contains_key(n.as_str())) {
                let message = format!("names job \"{name}\", which does not exist");
                r.error(at, job.label("after"), message);
            }
        }
    }
    // `after` runs the other way: each job it names leads to the job.
    let mut followers: Vec<Vec<usize>> = vec![Vec::new(); checked.len()];
    for (index, job) in checked.iter().enumerate() {
        for name in job.after().map_or(&[][..], |(names, _)| names) {
            if let Some(upstream) = by_name.get(name.as_str()) {
                followers[*upstream].push(index);
            }
        }
    }
    // The edges: job -> (key, target job).
    let edges = |index: usize| {
        let keyed = KEYS.iter().filter_map(move |(key, target_of)| {
            let (target, _) = target_of(&checked[index])?;
            by_name.get(target).map(|t| (*key, *t))
        });
        keyed.chain(followers[index].iter().map(|f| ("after", *f)))
    };
    // Depth first, without recursion: 0 not seen, 1 on the path, 2 done.
    let mut state = vec![0u8; checked.len()];
    for start in 0..checked.len() {
        if state[start] != 0 {
            continue;
        }
        // The path: (job, the key that led to the next job, its edges left).
        let mut path: Vec<Step<'_>> = vec![(start, "", edges(start).collect())];
        state[start] = 1;
        while let Some((job, _, left)) = path.last_mut() {
            let job = *job;
            let Some((key, next)) = left.pop() else {
                state[job] = 2;
                path.pop();
                continue;
            };
            if let Some(last) = path.last_mut() {
                last.1 = key;
            }
            match state[next] {
                0 => {
                    state[next] = 1;
                    path.push((next, "", edges(next).collect()));
                }
                1 => report_cycle(r, checked, &path, next),
                _ => {}
            }
        }
    }
}

/// One job on the walk: its index, the key of the edge taken from it, and
/// its edges not yet taken (key, target index).
type Step<'a> = (usize, &'a str, Vec<(&'a str, usize)>);

/// Reports the cycle that closes at `back` (on `path`), at its
/// lowest-indexed job: `forms a cycle: a -> b -> a` under the key that
/// leaves that job.
fn report_cycle(r: &mut Report<'_>, checked: &[Checked], path: &[Step<'_>], back: usize) {
    let from = path.iter().position(|(j, _, _)| *j == back).unwrap_or(0);
    let cycle = &path[from..];
    let lowest = (0..cycle.len()).min_by_key(|i| cycle[*i].0).unwrap_or(0);
    let mut names = Vec::with_capacity(cycle.len() + 1);
    for k in 0..=cycle.len() {
        let (job, _, _) = cycle[(lowest + k) % cycle.len()];
        names.extend(checked[job].name().map(|(n, _)| n));
    }
    let (job, key, _) = &cycle[lowest];
    let message = format!("forms a cycle: {}", names.join(" -> "));
    // An `after` step is written on the job it leads to.
    let (place, label) = match *key {
        "on_success" => (
            checked[*job].on_success().map(|(_, at)| at),
            checked[*job].label(key),
        ),
        "after" => {
            let next = cycle[(lowest + 1) % cycle.len()].0;
            (
                checked[next].after().map(|(_, at)| at),
                checked[next].label(key),
            )
        }
        _ => (
            checked[*job].on_failure().map(|(_, at)| at),
            checked[*job].label(key),
        ),
    };
    if let Some(at) = place {
        r.error(at, label, message);
    }
}
