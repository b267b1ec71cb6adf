//! `[concurrency.NAME] max_running = N` at run time: how many runs of the
//! jobs naming each limit run at once. A run whose limit is reached waits
//! here, queued, without occupying a worker, and starts when a run of its
//! limit ends, first come first served within the limit. Waiting runs
//! count against `queue_capacity` like runs in the pool's queue. A reload
//! may change N: it takes effect for the next start (a raised limit
//! starts waiting runs at once).

use crate::state::run::{RunId, RunMap};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// The limits and the runs they hold.
#[derive(Debug, Default)]
pub struct Gates {
    limits: BTreeMap<String, u32>,
    /// Runs counted against each limit (started or handed to the pool).
    running: HashMap<String, usize>,
    /// Runs waiting for each limit, oldest first.
    waiting: HashMap<String, VecDeque<RunId>>,
    /// The limit of each counted run.
    counted: RunMap<String>,
    /// The limit of each waiting run.
    queued: RunMap<String>,
}

/// One limit in `status`.
#[derive(Debug, Serialize)]
pub struct GateView {
    /// `[concurrency.NAME]`.
    pub name: String,
    /// `max_running`.
    pub max_running: u32,
    /// Runs counted against it now.
    pub running: usize,
    /// Runs waiting for it.
    pub waiting: usize,
}

impl Gates {
    /// The limits of the config in force (start, reload).
    pub fn set_limits(&mut self, limits: BTreeMap<String, u32>) {
        self.limits = limits;
    }

    /// Run `id` of limit `gate` wants to start: true if it may (it is
    /// counted), false if it waits (it is queued here).
    pub fn admit(&mut self, id: RunId, gate: &str) -> bool {
        let max = self.limits.get(gate).copied().unwrap_or(u32::MAX) as usize;
        let running = self.running.entry(gate.to_string()).or_default();
        let waiting = self.waiting.get(gate).is_some_and(|w| !w.is_empty());
        if *running < max && !waiting {
            *running += 1;
            self.counted.insert(id, gate.to_string());
            true
        } else {
            self.waiting
                .entry(gate.to_string())
                .or_default()
                .push_back(id);
            self.queued.insert(id, gate.to_string());
            false
        }
    }

    /// Run `id` ended (or was cancelled while waiting): its place is
    /// freed. The limit to look at for runs to start, if any.
    pub fn finished(&mut self, id: RunId) -> Option<String> {
        if let Some(gate) = self.counted.remove(&id) {
            if let Some(n) = self.running.get_mut(&gate) {
                *n = n.saturating_sub(1);
            }
            return Some(gate);
        }
        if let Some(gate) = self.queued.remove(&id) {
            if let Some(w) = self.waiting.get_mut(&gate) {
                w.retain(|r| *r != id);
            }
        }
        None
    }

    /// The next waiting run of `gate` that may start now (counted).
    pub fn next(&mut self, gate: &str) -> Option<RunId> {
        let max = self.limits.get(gate).copied().unwrap_or(u32::MAX) as usize;
        let running = self.running.entry(gate.to_string()).or_default();
        if *running >= max {
            return None;
        }
        let id = self.waiting.get_mut(gate)?.pop_front()?;
        self.queued.remove(&id);
        *running += 1;
        self.counted.insert(id, gate.to_string());
        Some(id)
    }

    /// The limits with runs waiting (after a reload raised some).
    pub fn with_waiting(&self) -> Vec<String> {
        self.waiting
            .iter()
            .filter(|(_, w)| !w.is_empty())
            .map(|(g, _)| g.clone())
            .collect()
    }

    /// Runs waiting for any limit.
    pub fn waiting_total(&self) -> usize {
        self.queued.len()
    }

    /// Every limit, by name, for `status` and `/metrics`.
    pub fn view(&self) -> Vec<GateView> {
        self.limits
            .iter()
            .map(|(name, max)| GateView {
                name: name.clone(),
                max_running: *max,
                running: self.running.get(name).copied().unwrap_or(0),
                waiting: self.waiting.get(name).map_or(0, VecDeque::len),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_of_one_lets_one_run_and_queues_the_rest_in_order() {
        let mut g = Gates::default();
        g.set_limits(BTreeMap::from([("db".to_string(), 1)]));
        assert!(g.admit(1, "db"));
        assert!(!g.admit(2, "db"));
        assert!(!g.admit(3, "db"));
        assert_eq!(g.waiting_total(), 2);
        // A limit without a table is unlimited.
        assert!(g.admit(9, "other"));
        assert_eq!(g.finished(1).as_deref(), Some("db"));
        assert_eq!(g.next("db"), Some(2));
        assert_eq!(g.next("db"), None, "2 runs now");
        // 3 cancelled while waiting: it leaves the queue, frees nothing.
        assert_eq!(g.finished(3), None);
        assert_eq!(g.finished(2).as_deref(), Some("db"));
        assert_eq!(g.next("db"), None);
        assert_eq!(g.view()[0].running, 0);
    }

    #[test]
    fn a_raised_limit_starts_waiting_runs() {
        let mut g = Gates::default();
        g.set_limits(BTreeMap::from([("db".to_string(), 1)]));
        assert!(g.admit(1, "db"));
        assert!(!g.admit(2, "db"));
        g.set_limits(BTreeMap::from([("db".to_string(), 2)]));
        assert_eq!(g.with_waiting(), vec!["db".to_string()]);
        assert_eq!(g.next("db"), Some(2));
    }
}
