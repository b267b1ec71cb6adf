//! What one load thread measured, and how threads' results add up.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest latency the histogram holds, in nanoseconds (one minute); longer
/// ones are recorded as this value.
const MAX_NANOS: u64 = 60_000_000_000;

/// Counters and the latency histogram of the measured window.
#[derive(Debug)]
pub struct Tally {
    /// Latency of each measured answer, in nanoseconds, 3 significant digits.
    pub latency: Histogram<u64>,
    /// Answers received in the measured window (errors included).
    pub requests: u64,
    /// Measured answers that were errors, plus answers to no request.
    pub errors: u64,
    /// Answers received during the warm-up (not in `latency`).
    pub warmup_requests: u64,
    /// Connections opened.
    pub connected: u64,
    /// Connections that could not be opened.
    pub connect_errors: u64,
    /// Connections lost during the run (closed by the server, reset, ...).
    pub closed: u64,
    /// The first connection problem seen, to tell the user what went wrong.
    pub first_problem: Option<String>,
    /// Length of the measured window (shorter than asked when the run
    /// stopped early: request limit reached, or every connection lost).
    pub measured: Duration,
}

impl Tally {
    /// An empty tally.
    pub fn new() -> Result<Tally, String> {
        let latency = Histogram::new_with_bounds(1, MAX_NANOS, 3)
            .map_err(|e| format!("cannot create the latency histogram: {e}"))?;
        Ok(Tally {
            latency,
            requests: 0,
            errors: 0,
            warmup_requests: 0,
            connected: 0,
            connect_errors: 0,
            closed: 0,
            first_problem: None,
            measured: Duration::ZERO,
        })
    }

    /// Records a connection problem, keeping the first message.
    pub fn problem(&mut self, msg: impl FnOnce() -> String) {
        if self.first_problem.is_none() {
            self.first_problem = Some(msg());
        }
    }

    /// Adds another thread's tally to this one; the window is the longest.
    pub fn merge(&mut self, other: Tally) -> Result<(), String> {
        self.latency
            .add(&other.latency)
            .map_err(|e| format!("cannot merge latency histograms: {e:?}"))?;
        self.requests += other.requests;
        self.errors += other.errors;
        self.warmup_requests += other.warmup_requests;
        self.connected += other.connected;
        self.connect_errors += other.connect_errors;
        self.closed += other.closed;
        if self.first_problem.is_none() {
            self.first_problem = other.first_problem;
        }
        self.measured = self.measured.max(other.measured);
        Ok(())
    }
}
