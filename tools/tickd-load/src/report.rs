//! Turning a tally into what the user reads: a short text block, or one
//! flat JSON object (`--json`) whose keys scripts can pick out.

use serde_json::json;

use crate::tally::Tally;

/// The run's settings as they should appear next to its results.
#[derive(Debug)]
pub struct Setup {
    /// The target, as displayed (`tcp 127.0.0.1:7070`).
    pub target: String,
    /// `json-rpc` or `raw`.
    pub mode: &'static str,
    /// Connections asked for.
    pub conns: usize,
    /// Requests in flight per connection.
    pub depth: usize,
    /// Load threads.
    pub threads: usize,
    /// Warm-up, in seconds.
    pub warmup: f64,
}

/// Results in display units: seconds, requests per second, microseconds.
#[derive(Debug)]
pub struct Report {
    setup: Setup,
    requests: u64,
    errors: u64,
    seconds: f64,
    throughput: f64,
    /// p50, p90, p99, p99.9, max and mean, in microseconds.
    lat: [f64; 6],
    warmup_requests: u64,
    connected: u64,
    connect_errors: u64,
    closed: u64,
    problem: Option<String>,
}

impl Report {
    /// Summarises a tally (latencies are stored in nanoseconds).
    pub fn new(setup: Setup, t: Tally) -> Report {
        let seconds = t.measured.as_secs_f64();
        let throughput = if seconds > 0.0 {
            t.requests as f64 / seconds
        } else {
            0.0
        };
        let us = |nanos: u64| nanos as f64 / 1000.0;
        let h = &t.latency;
        let lat = [
            us(h.value_at_quantile(0.50)),
            us(h.value_at_quantile(0.90)),
            us(h.value_at_quantile(0.99)),
            us(h.value_at_quantile(0.999)),
            us(h.max()),
            h.mean() / 1000.0,
        ];
        Report {
            setup,
            requests: t.requests,
            errors: t.errors,
            seconds,
            throughput,
            lat,
            warmup_requests: t.warmup_requests,
            connected: t.connected,
            connect_errors: t.connect_errors,
            closed: t.closed,
            problem: t.first_problem,
        }
    }

    /// One JSON object on one line; every key is unique and flat.
    pub fn json(&self) -> String {
        let s = &self.setup;
        json!({
            "target": s.target,
            "mode": s.mode,
            "conns": s.conns,
            "depth": s.depth,
            "threads": s.threads,
            "warmup_s": s.warmup,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "throughput": round(self.throughput, 1),
            "errors": self.errors,
            "p50_us": round(self.lat[0], 1),
            "p90_us": round(self.lat[1], 1),
            "p99_us": round(self.lat[2], 1),
            "p999_us": round(self.lat[3], 1),
            "max_us": round(self.lat[4], 1),
            "mean_us": round(self.lat[5], 1),
            "warmup_requests": self.warmup_requests,
            "connected": self.connected,
            "connect_errors": self.connect_errors,
            "closed": self.closed,
            "problem": self.problem,
        })
        .to_string()
    }

    /// A few aligned lines for a person.
    pub fn text(&self) -> String {
        let s = &self.setup;
        let [p50, p90, p99, p999, max, mean] = self.lat;
        let mut out = format!(
            "target      {} ({})\n\
             load        {} conns x depth {}, {} thread(s), {:.1} s warm-up\n\
             requests    {} in {:.2} s = {:.0} req/s\n\
             latency µs  p50 {p50:.1}  p90 {p90:.1}  p99 {p99:.1}  p99.9 {p999:.1}  max {max:.1}  (mean {mean:.1})\n\
             errors      {}   closed connections {}   failed connects {}\n",
            s.target,
            s.mode,
            s.conns,
            s.depth,
            s.threads,
            s.warmup,
            self.requests,
            self.seconds,
            self.throughput,
            self.errors,
            self.closed,
            self.connect_errors,
        );
        if let Some(p) = &self.problem {
            out.push_str(&format!("first problem: {p}\n"));
        }
        out
    }
}

/// Rounds to `places` decimals so the JSON stays readable.
fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}
