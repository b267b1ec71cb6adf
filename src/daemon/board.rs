//! What request workers read to answer queries besides jobs and runs:
//! the [`Board`], where the loop publishes what it owns (config generation,
//! the live settings, connection count, shutdown) so that `status`,
//! `/metrics` and the auth checks never ask the loop.

use super::counters;
use super::persist;
use super::snapshot::Snapshot;
use crate::config::LiveSettings;
use crate::pool::{PoolProbe, PoolStats};
use crate::time::{self, Timestamp};
use parking_lot::RwLock;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// What request workers read to answer queries, besides jobs and runs.
///
/// The loop owns these values and publishes them here (atomics, or a
/// read-mostly lock for the config info, or a snapshot for the live
/// settings) so that `status` can be answered on a worker without asking
/// the loop.
pub struct Board {
    /// Where the config came from and its generation.
    pub info: RwLock<ConfigInfo>,
    /// The settings of the config in force that a reload may change
    /// (`min_workers`, `allow_submit`, `max_output_bytes`, `auth_token`,
    /// ...): one version, swapped whole by an accepted reload.
    pub live: Snapshot<LiveSettings>,
    /// Open client connections.
    pub connections: AtomicUsize,
    /// Armed schedule timers.
    pub timers_armed: AtomicUsize,
    /// Set once shutdown has begun.
    pub stopping: AtomicBool,
    /// Connections subscribed to run events; while zero, nobody posts
    /// [`super::LoopEvent::RunChanged`].
    pub subscribers: AtomicUsize,
    /// When the daemon started.
    pub started: Instant,
    /// Whether test-only methods (`debug.*`) are enabled.
    pub debug_hooks: bool,
    /// Counters of the job pool (set once it has started).
    pub job_pool: OnceLock<PoolProbe>,
    /// Counters of the request pool (set once it has started).
    pub request_pool: OnceLock<PoolProbe>,
    /// Requests answered and refusals by limit or auth.
    pub clients: counters::ClientCounters,
    /// How `state_dir` writes are going.
    pub state: persist::StateHealth,
    /// `[concurrency.NAME]` limits and the runs they hold.
    pub gates: parking_lot::Mutex<super::gates::Gates>,
    /// Notifications per sink: sent, failed, dropped.
    pub notifications: crate::alerts::Counters,
    /// The output of running runs, and `daemon.output_dir`.
    pub outputs: crate::output::Book,
}

impl Board {
    /// The board of a daemon starting with the config read from `path`
    /// (generation 1) and its `live` settings.
    pub fn new(path: PathBuf, live: LiveSettings, debug_hooks: bool) -> Board {
        Board {
            info: RwLock::new(ConfigInfo {
                path,
                generation: 1,
                loaded_at: time::now(),
                last_reload_error: None,
            }),
            live: Snapshot::new(live),
            connections: AtomicUsize::new(0),
            timers_armed: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            subscribers: AtomicUsize::new(0),
            started: Instant::now(),
            debug_hooks,
            job_pool: OnceLock::new(),
            request_pool: OnceLock::new(),
            clients: counters::ClientCounters::default(),
            state: persist::StateHealth::default(),
            gates: parking_lot::Mutex::default(),
            notifications: crate::alerts::Counters::default(),
            outputs: crate::output::Book::default(),
        }
    }

    /// Milliseconds since start.
    pub fn uptime_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The job pool's counters (zeros before it has started).
    pub fn job_pool_stats(&self) -> PoolStats {
        self.job_pool.get().map_or(EMPTY_STATS, PoolProbe::stats)
    }

    /// The request pool's counters (zeros before it has started).
    pub fn request_pool_stats(&self) -> PoolStats {
        self.request_pool
            .get()
            .map_or(EMPTY_STATS, PoolProbe::stats)
    }

    /// `ok`, or `degraded` when fewer job workers are alive than `min_workers`.
    pub fn health(&self) -> &'static str {
        let min_workers = self.live.read().min_workers;
        self.health_under(min_workers)
    }

    /// [`Board::health`] for the `min_workers` of a live settings version
    /// the caller has read already.
    pub fn health_under(&self, min_workers: usize) -> &'static str {
        health_of(self.job_pool_stats().alive, min_workers)
    }

    /// Whether shutdown has begun.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }
}

const EMPTY_STATS: PoolStats = PoolStats {
    configured: 0,
    alive: 0,
    busy: 0,
    respawned: 0,
    queue_depth: 0,
    queue_capacity: 0,
    cpu_moves: None,
};

/// Where the current configuration came from, for `status`.
#[derive(Debug, Clone)]
pub struct ConfigInfo {
    /// The file the config was read from (re-read on reload).
    pub path: PathBuf,
    /// 1 at start, +1 per accepted reload.
    pub generation: u64,
    /// When the current generation was loaded.
    pub loaded_at: Timestamp,
    /// The message of the last rejected reload, cleared by a good one.
    pub last_reload_error: Option<String>,
}

/// Health from live workers and the configured minimum.
pub fn health_of(alive: usize, min_workers: usize) -> &'static str {
    if alive < min_workers {
        "degraded"
    } else {
        "ok"
    }
}

#[cfg(test)]
mod tests {
    use super::health_of;

    #[test]
    fn health_degrades_below_min_workers() {
        assert_eq!(health_of(4, 1), "ok");
        assert_eq!(health_of(1, 1), "ok");
        assert_eq!(health_of(0, 1), "degraded");
        assert_eq!(health_of(2, 3), "degraded");
        assert_eq!(health_of(0, 0), "ok");
    }
}
