//! `GET /metrics`: the Prometheus text exposition format, version 0.0.4.
//!
//! Every family has `# HELP` and `# TYPE` lines. Gauges are read from the
//! board (workers, queue, connections, config generation); counters never
//! go backwards while the daemon runs:
//! - `tickd_runs_total{job_name,state}` and
//!   `tickd_run_duration_seconds{job_name}` come from
//!   [`crate::state::metrics`]; a job removed by a reload loses its series
//!   (they start again from zero if it comes back: a counter reset to
//!   Prometheus), and a job added by a reload gets zero series at once.
//!   The label is `job_name`, not `job`: Prometheus owns `job` (the
//!   scrape's job) and would rename ours `exported_job`. Ad-hoc `submit`
//!   runs are `job_name="(submitted)"`, which no job name can be;
//! - `tickd_notifications_total{sink,result}` from
//!   [`crate::alerts::Counters`];
//! - the client counters (`tickd_requests_total`, `tickd_auth_failures_total`,
//!   ..., `tickd_connections_closed_total{cause}`) from
//!   [`crate::daemon::counters`].
//!
//! Label values are escaped as the format requires (`\\`, `\"`, `\n`).
//!
//! With `daemon.metrics_per_job = false` the two per-job families have no
//! `job_name` label: one series per state, one histogram, counting the runs
//! of every job (and ad-hoc runs) since the start
//! ([`crate::state::metrics::RunMetrics::total`], kept as runs end, so
//! they cost nothing to show at any job count, and never go backwards: a
//! job removed by a reload leaves its runs in them).
//!
//! **Rendering a piece at a time.** At a million jobs the per-job families
//! are gigabytes of text, so they are never rendered whole: a [`Render`]
//! appends the next piece of about the size asked for, and remembers where
//! it stopped (a family and the last job name rendered, a cursor into the
//! core's name-ordered counters, like `jobs.list`'s). Each piece takes
//! the core lock once per [`SLICE`] jobs, long enough to copy their
//! counters, and renders them after letting it go. A job added or removed
//! between two pieces is in a later piece or not: every series rendered
//! is a consistent reading of its job. The HTTP layer sends the pieces as
//! the client takes them ([`crate::requests`], chunked transfer coding).

use crate::daemon::Shared;
use crate::state::metrics::{JobMetrics, DURATION_BUCKETS, SUBMITTED_LABEL, TERMINAL};
use std::io::Write;
use std::sync::atomic::Ordering;

/// The `Content-Type` of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Jobs whose counters are copied per hold of the core lock.
pub const SLICE: usize = 256;

/// Renders every metric at once.
pub fn render(shared: &Shared) -> String {
    let mut r = Render::new(shared);
    let mut out = Vec::new();
    while !r.next(shared, &mut out, usize::MAX) {}
    String::from_utf8(out).unwrap_or_default()
}

/// A rendering of `/metrics` under way: what comes next.
#[derive(Debug)]
pub struct Render {
    /// Whether the per-job families have a series per job
    /// (`daemon.metrics_per_job`, as it was when the rendering began).
    per_job: bool,
    part: Part,
}

/// The parts of the exposition, in order.
#[derive(Debug, PartialEq)]
enum Part {
    /// The board's families (and, without per-job series, the sums):
    /// rendered in one go, their size does not grow with the jobs.
    Head,
    /// `tickd_runs_total` per job, after the job named (None: from the first).
    Runs(Option<String>),
    /// `tickd_run_duration_seconds` per job, likewise.
    Durations(Option<String>),
    /// `tickd_job_last_success_timestamp_seconds` per job, likewise.
    LastSuccess(Option<String>),
    /// Everything is rendered.
    Done,
}

impl Render {
    /// A rendering from the start, by the settings in force now.
    pub fn new(shared: &Shared) -> Render {
        Render {
            per_job: shared.board.live.read().metrics_per_job,
            part: Part::Head,
        }
    }

    /// Appends the next piece to `out`: until `out` holds at least
    /// `target` bytes, or the end. True once the end is rendered.
    pub fn next(&mut self, shared: &Shared, out: &mut Vec<u8>, target: usize) -> bool {
        loop {
            if self.part != Part::Done && out.len() >= target {
                return false;
            }
            self.part = match std::mem::replace(&mut self.part, Part::Done) {
                Part::Head => {
                    head(shared, out);
                    if self.per_job {
                        runs_family(out);
                        Part::Runs(None)
                    } else {
                        let sums = shared.core.lock().metrics().total().clone();
                        runs_family(out);
                        runs_series(out, None, &sums);
                        durations_family(out);
                        durations_series(out, None, &sums);
                        Part::Done
                    }
                }
                Part::Runs(after) => {
                    let (slice, end) = slice(shared, after.as_deref(), slice_len(out, target));
                    match render_slice(out, slice, end, target, runs_series) {
                        End::More(last) => Part::Runs(Some(last)),
                        End::Done => {
                            durations_family(out);
                            Part::Durations(None)
                        }
                    }
                }
                Part::Durations(after) => {
                    let (slice, end) = slice(shared, after.as_deref(), slice_len(out, target));
                    match render_slice(out, slice, end, target, durations_series) {
                        End::More(last) => Part::Durations(Some(last)),
                        End::Done => {
                            last_success_family(out);
                            Part::LastSuccess(None)
                        }
                    }
                }
                Part::LastSuccess(after) => {
                    let (slice, end) = slice(shared, after.as_deref(), slice_len(out, target));
                    match render_slice(out, slice, end, target, last_success_series) {
                        End::More(last) => Part::LastSuccess(Some(last)),
                        End::Done => Part::Done,
                    }
                }
                Part::Done => return true,
            };
        }
    }
}

/// Where a slice of jobs ended.
enum End {
    /// More jobs follow this one.
    More(String),
    /// That was the last job.
    Done,
}

/// How many jobs to copy for a piece that has `out` and must reach
/// `target`: 256 bytes a job at least (a job's `tickd_runs_total` is more),
/// [`SLICE`] at most.
fn slice_len(out: &[u8], target: usize) -> usize {
    (target.saturating_sub(out.len()) / 256 + 1).min(SLICE)
}

/// Renders a slice's series with `series` until `out` reaches `target`:
/// where the rendering ends (the last job rendered, if some of the slice
/// is left).
fn render_slice(
    out: &mut Vec<u8>,
    slice: Vec<(String, JobMetrics)>,
    end: End,
    target: usize,
    series: fn(&mut Vec<u8>, Option<&str>, &JobMetrics),
) -> End {
    let left = slice.len();
    for (i, (job, m)) in slice.into_iter().enumerate() {
        series(out, Some(&escape(&job)), &m);
        if out.len() >= target && i + 1 < left {
            return End::More(job);
        }
    }
    end
}

/// The counters of up to `max` jobs after `after`, by name, copied under
/// one hold of the core lock; the last slice ends with the ad-hoc runs'
/// series.
fn slice(shared: &Shared, after: Option<&str>, max: usize) -> (Vec<(String, JobMetrics)>, End) {
    let core = shared.core.lock();
    let (mut taken, more) = core.metrics_slice(after, max);
    if more {
        let last = taken
            .last()
            .map(|(name, _)| name.clone())
            .unwrap_or_default();
        return (taken, End::More(last));
    }
    if let Some(m) = core.metrics().submitted() {
        taken.push((SUBMITTED_LABEL.to_string(), m.clone()));
    }
    (taken, End::Done)
}

/// The families read from the board: client counters and gauges.
fn head(shared: &Shared, out: &mut Vec<u8>) {
    let b = &shared.board;
    let pool = b.job_pool_stats();
    for (name, help, value) in b.clients.list() {
        family(out, &format!("tickd_{name}_total"), help, "counter");
        let _ = writeln!(out, "tickd_{name}_total {value}");
    }
    family(
        out,
        "tickd_connections_closed_total",
        "Client connections closed, by cause.",
        "counter",
    );
    for (cause, n) in b.clients.closes() {
        let _ = writeln!(
            out,
            "tickd_connections_closed_total{{cause=\"{cause}\"}} {n}"
        );
    }
    let gauges: [(&str, &str, u64); 7] = [
        (
            "tickd_workers_configured",
            "Job worker threads configured.",
            to64(pool.configured),
        ),
        (
            "tickd_workers_alive",
            "Job worker threads alive.",
            to64(pool.alive),
        ),
        (
            "tickd_workers_busy",
            "Job worker threads running a job now.",
            to64(pool.busy),
        ),
        (
            "tickd_queue_depth",
            "Runs waiting in the run queue.",
            to64(pool.queue_depth),
        ),
        (
            "tickd_queue_capacity",
            "Capacity of the run queue.",
            to64(pool.queue_capacity),
        ),
        (
            "tickd_connections",
            "Open client connections.",
            to64(b.connections.load(Ordering::Relaxed)),
        ),
        (
            "tickd_config_generation",
            "Config generation: 1 at start, +1 per accepted reload.",
            b.info.read().generation,
        ),
    ];
    for (name, help, value) in gauges {
        family(out, name, help, "gauge");
        let _ = writeln!(out, "{name} {value}");
    }
    family(
        out,
        "tickd_worker_respawns_total",
        "Job worker threads replaced after dying.",
        "counter",
    );
    let _ = writeln!(out, "tickd_worker_respawns_total {}", pool.respawned);
    family(
        out,
        "tickd_supervisor_restarts_total",
        "Times `tickd run --supervise` restarted the daemon (0 without it).",
        "counter",
    );
    let _ = writeln!(
        out,
        "tickd_supervisor_restarts_total {}",
        crate::activation::restarts().unwrap_or(0)
    );
    family(
        out,
        "tickd_up",
        "1 while healthy, 0 when fewer workers are alive than min_workers.",
        "gauge",
    );
    let _ = writeln!(out, "tickd_up {}", u8::from(b.health() == "ok"));
    let gates = b.gates.lock().view();
    if !gates.is_empty() {
        gate_families(out, &gates);
    }
    if let Some(c) = &shared.cluster {
        cluster_families(out, c);
    }
    notification_family(out, &b.notifications.snapshot());
}

/// `tickd_notifications_total{sink,result}`: messages of each
/// `[[notify]]` sink sent, given up on, or dropped (a full queue, a
/// shutdown). A sink's series show at zero from the start; a sink removed
/// by a reload keeps its series.
fn notification_family(out: &mut Vec<u8>, counts: &[(String, [u64; 3])]) {
    if counts.is_empty() {
        return;
    }
    family(
        out,
        "tickd_notifications_total",
        "Notifications of each [[notify]] sink: sent, failed (every attempt), dropped.",
        "counter",
    );
    for (sink, by_result) in counts {
        for (result, n) in crate::alerts::RESULTS.iter().zip(by_result) {
            let _ = writeln!(
                out,
                "tickd_notifications_total{{sink=\"{}\",result=\"{result}\"}} {n}",
                escape(sink)
            );
        }
    }
}

/// `[concurrency.NAME]` limits: the limit, runs counted, runs waiting.
fn gate_families(out: &mut Vec<u8>, gates: &[crate::daemon::gates::GateView]) {
    type Field = fn(&crate::daemon::gates::GateView) -> usize;
    let families: [(&str, &str, Field); 3] = [
        (
            "tickd_concurrency_max_running",
            "max_running of each [concurrency.NAME] limit.",
            |g| g.max_running as usize,
        ),
        (
            "tickd_concurrency_running",
            "Runs counted against each concurrency limit now.",
            |g| g.running,
        ),
        (
            "tickd_concurrency_waiting",
            "Runs queued for each concurrency limit, holding no worker.",
            |g| g.waiting,
        ),
    ];
    for (name, help, field) in families {
        family(out, name, help, "gauge");
        for g in gates {
            let _ = writeln!(out, "{name}{{limit=\"{}\"}} {}", escape(&g.name), field(g));
        }
    }
}

/// Cluster mode's families: the Redis link, claims by result, live nodes.
fn cluster_families(out: &mut Vec<u8>, c: &crate::cluster::Cluster) {
    let v = c.view();
    family(
        out,
        "tickd_cluster_redis_up",
        "1 while this node's link to Redis is up.",
        "gauge",
    );
    let _ = writeln!(
        out,
        "tickd_cluster_redis_up {}",
        u8::from(v.redis.connected)
    );
    family(
        out,
        "tickd_cluster_redis_rtt_seconds",
        "Round trip of the last PING to Redis.",
        "gauge",
    );
    let _ = writeln!(
        out,
        "tickd_cluster_redis_rtt_seconds {}",
        v.redis.rtt_ms / 1000.0
    );
    family(
        out,
        "tickd_cluster_nodes",
        "Nodes with a live heartbeat in Redis, as of this node's last beat.",
        "gauge",
    );
    let _ = writeln!(out, "tickd_cluster_nodes {}", v.nodes.len());
    family(
        out,
        "tickd_cluster_claims_total",
        "Occurrences this node tried to claim, by result (won: it ran them; lost: another node did; busy: overlap = skip and a run was running elsewhere; stale: a later one was claimed; down: Redis unreachable; taken_over: claimed by a dead node, run here).",
        "counter",
    );
    let claims = &v.claims;
    for (result, n) in [
        ("won", claims.won),
        ("lost", claims.lost),
        ("busy", claims.busy),
        ("stale", claims.stale),
        ("down", claims.down),
        ("taken_over", claims.taken_over),
    ] {
        let _ = writeln!(out, "tickd_cluster_claims_total{{result=\"{result}\"}} {n}");
    }
    family(
        out,
        "tickd_cluster_runs_interrupted_total",
        "Runs of dead nodes this node marked interrupted.",
        "counter",
    );
    let _ = writeln!(
        out,
        "tickd_cluster_runs_interrupted_total {}",
        claims.interrupted
    );
}

fn last_success_family(out: &mut Vec<u8>) {
    family(
        out,
        "tickd_job_last_success_timestamp_seconds",
        "When a run of the job last succeeded, Unix time (absent until one has).",
        "gauge",
    );
}

/// `tickd_job_last_success_timestamp_seconds` of one job, once a run of
/// it has succeeded.
fn last_success_series(out: &mut Vec<u8>, job: Option<&str>, m: &JobMetrics) {
    if let (Some(job), Some(at)) = (job, m.last_success) {
        let _ = writeln!(
            out,
            "tickd_job_last_success_timestamp_seconds{{job_name=\"{job}\"}} {at:.3}"
        );
    }
}

fn runs_family(out: &mut Vec<u8>) {
    family(
        out,
        "tickd_runs_total",
        "Runs that reached a terminal state, by job and state.",
        "counter",
    );
}

fn durations_family(out: &mut Vec<u8>) {
    family(
        out,
        "tickd_run_duration_seconds",
        "Duration of runs that started, by job.",
        "histogram",
    );
}

/// `tickd_runs_total` of one job (`job` is its escaped label value), or
/// of the sums (None: no `job_name` label).
fn runs_series(out: &mut Vec<u8>, job: Option<&str>, m: &JobMetrics) {
    for (state, n) in TERMINAL.iter().zip(m.by_state) {
        let _ = match job {
            Some(job) => writeln!(
                out,
                "tickd_runs_total{{job_name=\"{job}\",state=\"{}\"}} {n}",
                state.as_str()
            ),
            None => writeln!(out, "tickd_runs_total{{state=\"{}\"}} {n}", state.as_str()),
        };
    }
}

/// `tickd_run_duration_seconds` of one job, or of the sums.
fn durations_series(out: &mut Vec<u8>, job: Option<&str>, m: &JobMetrics) {
    let (labels, sep) = match job {
        Some(job) => (format!("job_name=\"{job}\""), ","),
        None => (String::new(), ""),
    };
    for (le, n) in DURATION_BUCKETS.iter().zip(m.cumulative()) {
        let _ = writeln!(
            out,
            "tickd_run_duration_seconds_bucket{{{labels}{sep}le=\"{le}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "tickd_run_duration_seconds_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
        m.count
    );
    let braces = |l: &str| {
        if l.is_empty() {
            String::new()
        } else {
            format!("{{{l}}}")
        }
    };
    let _ = writeln!(
        out,
        "tickd_run_duration_seconds_sum{} {}",
        braces(&labels),
        m.sum
    );
    let _ = writeln!(
        out,
        "tickd_run_duration_seconds_count{} {}",
        braces(&labels),
        m.count
    );
}

fn family(out: &mut Vec<u8>, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn to64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Escapes a label value: backslash, double quote and newline.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
