//! The event loop of one load thread: connect, keep every connection's
//! requests in flight, time each answer, stop at the deadline.
//!
//! One `mio::Poll` watches all of this thread's connections. A loop turn
//! waits for readiness (or for the end of the warm-up or of the run), reads
//! every ready connection dry, records the answers, and refills each
//! connection with one write. Nothing here sleeps or polls on a timer.

use std::io;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};

use crate::check::Check;
use crate::conn::Conn;
use crate::tally::Tally;
use crate::target::Target;

/// Size of the shared read buffer: enough for many answers per read.
const READ_CHUNK: usize = 64 * 1024;

/// What to run, the same for every thread.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where to connect (already checked to be local).
    pub target: Target,
    /// Requests kept in flight per connection.
    pub depth: usize,
    /// Time after the start during which answers are not recorded.
    pub warmup: Duration,
    /// Length of the measured window that follows the warm-up.
    pub duration: Duration,
    /// The request line, `\n`-terminated.
    pub request: Vec<u8>,
    /// How answers are judged.
    pub check: Check,
}

/// One thread's share of the run, connected and ready to start.
pub struct Prepared {
    poll: Poll,
    conns: Vec<Option<Conn>>,
    tally: Tally,
}

/// Opens this thread's `count` connections. Failures are counted in the
/// tally, not returned: the run goes on with the connections that opened.
pub fn prepare(plan: &Plan, count: usize) -> Result<Prepared, String> {
    let poll = Poll::new().map_err(|e| format!("cannot create a poll: {e}"))?;
    let mut tally = Tally::new()?;
    let mut conns = Vec::with_capacity(count);
    for i in 0..count {
        let conn = plan
            .target
            .connect()
            .and_then(|s| Conn::new(s, Token(i), plan.depth, poll.registry()));
        match conn {
            Ok(c) => {
                tally.connected += 1;
                conns.push(Some(c));
            }
            Err(e) => {
                tally.connect_errors += 1;
                tally.problem(|| format!("cannot connect to {}: {e}", plan.target));
                conns.push(None);
            }
        }
    }
    Ok(Prepared { poll, conns, tally })
}

/// Runs the prepared connections until the deadline, `max_requests`
/// measured answers, or the loss of every connection.
pub fn drive(plan: &Plan, prepared: Prepared, max_requests: Option<u64>) -> Result<Tally, String> {
    let Prepared {
        mut poll,
        mut conns,
        mut tally,
    } = prepared;
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; READ_CHUNK];
    let mut alive = conns.iter().filter(|c| c.is_some()).count();
    let mut last_answer = measure_from;

    for (i, slot) in conns.iter_mut().enumerate() {
        if let Some(conn) = slot {
            if let Err(e) = conn.send_due(&plan.request, poll.registry()) {
                tally.closed += 1;
                tally.problem(|| format!("connection {i}: {e}"));
                conn.deregister(poll.registry());
                *slot = None;
                alive -= 1;
            }
        }
    }

    let mut stopped_at = None;
    while alive > 0 {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let wake = if now < measure_from {
            measure_from
        } else {
            end
        };
        match poll.poll(&mut events, Some(wake - now)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("poll failed: {e}")),
        }
        for event in events.iter() {
            let i = event.token().0;
            let Some(conn) = conns.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            let mut result = Ok(());
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                result = conn.receive(&mut scratch, |sent, at, line| {
                    if at < measure_from {
                        tally.warmup_requests += 1;
                        return;
                    }
                    last_answer = at;
                    tally.requests += 1;
                    match sent {
                        Some(t) => {
                            let nanos =
                                u64::try_from(at.duration_since(t).as_nanos()).unwrap_or(u64::MAX);
                            tally.latency.saturating_record(nanos.max(1));
                            if !plan.check.is_ok(line) {
                                tally.errors += 1;
                            }
                        }
                        None => tally.errors += 1,
                    }
                });
            }
            if result.is_ok() {
                result = conn.send_due(&plan.request, poll.registry());
            }
            if let Err(e) = result {
                tally.closed += 1;
                tally.problem(|| format!("connection {i}: {e}"));
                conn.deregister(poll.registry());
                conns[i] = None;
                alive -= 1;
            }
        }
        if max_requests.is_some_and(|max| tally.requests >= max) {
            stopped_at = Some(last_answer);
            break;
        }
    }
    let stop = stopped_at.unwrap_or_else(|| Instant::now().min(end));
    tally.measured = stop.saturating_duration_since(measure_from);
    Ok(tally)
}
