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
//! - the client counters (`tickd_requests_total`, `tickd_auth_failures_total`,
//!   ..., `tickd_connections_closed_total{cause}`) from
//!   [`crate::daemon::counters`].
//!
//! Label values are escaped as the format requires (`\\`, `\"`, `\n`).

use crate::daemon::Shared;
use crate::state::metrics::{DURATION_BUCKETS, TERMINAL};
use std::fmt::Write;
use std::sync::atomic::Ordering;

/// The `Content-Type` of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders every metric.
pub fn render(shared: &Shared) -> String {
    let mut out = String::with_capacity(4096);
    let b = &shared.board;
    let pool = b.job_pool_stats();
    for (name, help, value) in b.clients.list() {
        family(&mut out, &format!("tickd_{name}_total"), help, "counter");
        let _ = writeln!(out, "tickd_{name}_total {value}");
    }
    family(
        &mut out,
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
        family(&mut out, name, help, "gauge");
        let _ = writeln!(out, "{name} {value}");
    }
    family(
        &mut out,
        "tickd_worker_respawns_total",
        "Job worker threads replaced after dying.",
        "counter",
    );
    let _ = writeln!(out, "tickd_worker_respawns_total {}", pool.respawned);
    family(
        &mut out,
        "tickd_up",
        "1 while healthy, 0 when fewer workers are alive than min_workers.",
        "gauge",
    );
    let _ = writeln!(out, "tickd_up {}", u8::from(b.health() == "ok"));

    let runs = shared.core.lock().metrics_snapshot();
    family(
        &mut out,
        "tickd_runs_total",
        "Runs that reached a terminal state, by job and state.",
        "counter",
    );
    for (job, m) in runs.series() {
        let job = escape(job);
        for (state, n) in TERMINAL.iter().zip(m.by_state) {
            let _ = writeln!(
                out,
                "tickd_runs_total{{job_name=\"{job}\",state=\"{}\"}} {n}",
                state.as_str()
            );
        }
    }
    family(
        &mut out,
        "tickd_run_duration_seconds",
        "Duration of runs that started, by job.",
        "histogram",
    );
    for (job, m) in runs.series() {
        let job = escape(job);
        for (le, n) in DURATION_BUCKETS.iter().zip(m.cumulative()) {
            let _ = writeln!(
                out,
                "tickd_run_duration_seconds_bucket{{job_name=\"{job}\",le=\"{le}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "tickd_run_duration_seconds_bucket{{job_name=\"{job}\",le=\"+Inf\"}} {}",
            m.count
        );
        let _ = writeln!(
            out,
            "tickd_run_duration_seconds_sum{{job_name=\"{job}\"}} {}",
            m.sum
        );
        let _ = writeln!(
            out,
            "tickd_run_duration_seconds_count{{job_name=\"{job}\"}} {}",
            m.count
        );
    }
    out
}

fn family(out: &mut String, name: &str, help: &str, kind: &str) {
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
mod tests {
    use super::escape;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape("plain-job.1"), "plain-job.1");
    }
}
