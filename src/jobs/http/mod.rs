//! The `http` job kind: one HTTP request, judged by its status code.
//!
//! The request is made with a blocking `ureq` agent built for the run, so a
//! run ties up its worker thread exactly like an exec run does. The whole
//! exchange (connect, send, response, body) is bounded by one global time
//! limit: the job's `timeout`, or [`DEFAULT_TIMEOUT`] when it has none, so a
//! server that never answers cannot hold a worker forever.
//!
//! Only the last [`OUTPUT_TAIL_BYTES`] of the response body are kept (they
//! become the run's `output`), and reading stops after [`MAX_BODY_READ`]
//! bytes: a huge or endless body costs bounded memory and bounded time.
//! Cancellation is checked before the request and between body chunks; a
//! request still waiting for its response headers ends at the time limit.

mod resolve;

use super::cancel::CancelToken;
use super::output::{OutputTail, OUTPUT_TAIL_BYTES};
use super::{Executor, RunContext};
use crate::config::HttpSpec;
use crate::state::run::RunState;
use crate::state::Finish;
use serde_json::json;
use std::io::{self, Read};
use std::time::Duration;
use ureq::http;

/// Time limit of a run whose job sets no `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest time limit applied (a century): longer ones are cut to this.
const MAX_LIMIT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Most response body bytes read; the rest is left unread.
pub const MAX_BODY_READ: u64 = 16 * 1024 * 1024;

/// Bytes read from the body at a time (cancellation is checked between).
const CHUNK_BYTES: usize = 16 * 1024;

/// Executes an http job's run.
pub struct HttpJob<'a>(pub &'a HttpSpec);

impl Executor for HttpJob<'_> {
    fn execute(&self, ctx: &RunContext<'_>) -> Finish {
        if ctx.cancel.is_cancelled() {
            return cancelled(ctx);
        }
        let spec = self.0;
        // Capped so that `now + limit` cannot overflow on absurd timeouts.
        let limit = ctx.job.timeout.unwrap_or(DEFAULT_TIMEOUT).min(MAX_LIMIT);
        let what = format!("http {} {}", spec.method, spec.url);
        log::debug!("{what}: sending (time limit {limit:?})");
        let response = match send(&agent(limit), spec) {
            Ok(r) => r,
            Err(Failure::Timeout) => return timed_out(limit),
            Err(Failure::Other(msg)) => {
                return Finish::with_error(RunState::Failed, format!("{what}: {msg}"))
            }
        };
        let status = response.status().as_u16();
        log::debug!("{what}: status {status}");
        let body = read_tail(response.into_body().into_reader(), ctx.cancel);
        let mut finish = judge(spec, status, &body);
        match body.end {
            BodyEnd::Complete => {}
            BodyEnd::Cancelled => {
                finish.state = RunState::Cancelled;
                finish.error = Some(ctx.cancel.reason().unwrap_or_else(|| "cancelled".into()));
            }
            BodyEnd::Failed(Failure::Timeout) => {
                finish.state = RunState::TimedOut;
                finish.error = Some(timeout_message(limit));
            }
            BodyEnd::Failed(Failure::Other(msg)) => {
                finish.state = RunState::Failed;
                finish.error = Some(format!("{what}: reading the body: {msg}"));
            }
        }
        finish
    }
}

/// Why a request or a body read did not complete.
#[derive(Debug)]
enum Failure {
    /// The run's time limit passed.
    Timeout,
    /// Anything else, described for the run's `error`.
    Other(String),
}

impl From<ureq::Error> for Failure {
    fn from(err: ureq::Error) -> Self {
        match err {
            ureq::Error::Timeout(_) => Failure::Timeout,
            ureq::Error::Io(e) => Failure::Other(io_message(&e)),
            other => Failure::Other(other.to_string()),
        }
    }
}

/// An agent for one run: no status code counts as an error (the job
/// decides), and the whole exchange must fit in `limit`.
fn agent(limit: Duration) -> ureq::Agent {
    agent_with(
        ureq::Agent::config_builder()
            .timeout_global(Some(limit))
            .http_status_as_error(false),
    )
}

/// An agent for a notification webhook: as [`agent`], and redirects are
/// not followed (a 3xx is a failed attempt), so a header's secret never
/// goes to another host.
pub(crate) fn webhook_agent(limit: Duration) -> ureq::Agent {
    agent_with(
        ureq::Agent::config_builder()
            .timeout_global(Some(limit))
            .http_status_as_error(false)
            .max_redirects(0),
    )
}

/// The agent of `config`, with tickd's `User-Agent` and the resolver that
/// takes IP-literal hosts from the URL ([`resolve::LiteralFirst`]).
fn agent_with(config: ureq::config::ConfigBuilder<ureq::typestate::AgentScope>) -> ureq::Agent {
    ureq::Agent::with_parts(
        config
            .user_agent(concat!("tickd/", env!("CARGO_PKG_VERSION")))
            .build(),
        ureq::unversioned::transport::DefaultConnector::new(),
        resolve::LiteralFirst::default(),
    )
}

/// Builds the request from the spec and sends it.
fn send(agent: &ureq::Agent, spec: &HttpSpec) -> Result<http::Response<ureq::Body>, Failure> {
    let mut builder = http::Request::builder()
        .method(spec.method.as_str())
        .uri(spec.url.as_str());
    for (name, value) in &spec.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let invalid = |e: http::Error| Failure::Other(format!("invalid request: {e}"));
    let sent = match &spec.body {
        Some(body) => agent.run(builder.body(body.as_str()).map_err(invalid)?),
        None => agent.run(builder.body(()).map_err(invalid)?),
    };
    sent.map_err(Failure::from)
}

/// What was read of a response body.
struct Body {
    /// The last bytes read.
    tail: OutputTail,
    /// Bytes read in all.
    bytes: u64,
    /// Whether reading stopped at [`MAX_BODY_READ`] with more to come.
    capped: bool,
    /// How reading ended.
    end: BodyEnd,
}

/// How reading a body ended.
#[derive(Debug)]
enum BodyEnd {
    /// At its end, or at [`MAX_BODY_READ`].
    Complete,
    /// The run was cancelled between two chunks.
    Cancelled,
    /// The connection failed or the time limit passed.
    Failed(Failure),
}

/// Reads `reader` in chunks, keeping only the tail, until its end,
/// [`MAX_BODY_READ`] bytes, an error, or a cancel.
fn read_tail(mut reader: impl Read, cancel: &CancelToken) -> Body {
    let mut body = Body {
        tail: OutputTail::new(OUTPUT_TAIL_BYTES),
        bytes: 0,
        capped: false,
        end: BodyEnd::Complete,
    };
    let mut chunk = vec![0u8; CHUNK_BYTES];
    loop {
        if cancel.is_cancelled() {
            body.end = BodyEnd::Cancelled;
            return body;
        }
        let left = MAX_BODY_READ - body.bytes;
        if left == 0 {
            // One more byte tells a body of exactly the cap from a longer one.
            body.capped = matches!(reader.read(&mut chunk[..1]), Ok(n) if n > 0);
            return body;
        }
        let want = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        match reader.read(&mut chunk[..want]) {
            Ok(0) => return body,
            Ok(n) => {
                body.tail.push(&chunk[..n]);
                body.bytes += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                body.end = BodyEnd::Failed(ureq::Error::from(e).into());
                return body;
            }
        }
    }
}

/// The finish for a response: success when the status is the expected one
/// (any 2xx by default); the body tail is the output either way.
fn judge(spec: &HttpSpec, status: u16, body: &Body) -> Finish {
    let ok = match spec.expect_status {
        Some(expected) => status == expected,
        None => (200..300).contains(&status),
    };
    let error = (!ok).then(|| {
        let expected = spec
            .expect_status
            .map_or_else(|| "2xx".to_string(), |s| s.to_string());
        format!("unexpected status {status} (expected {expected})")
    });
    Finish {
        state: if ok {
            RunState::Succeeded
        } else {
            RunState::Failed
        },
        exit_code: None,
        error,
        output: body.tail.to_string_lossy(),
        result: Some(json!({
            "status": status,
            "body_bytes": body.bytes,
            "truncated": body.capped || body.tail.is_truncated(),
        })),
    }
}

/// The finish of a run cancelled before it sent anything.
fn cancelled(ctx: &RunContext<'_>) -> Finish {
    let reason = ctx.cancel.reason().unwrap_or_else(|| "cancelled".into());
    Finish::with_error(RunState::Cancelled, reason)
}

/// The finish of a run that hit its time limit.
fn timed_out(limit: Duration) -> Finish {
    Finish::with_error(RunState::TimedOut, timeout_message(limit))
}

/// `timed out after 500ms`, the duration written as in the config.
fn timeout_message(limit: Duration) -> String {
    format!("timed out after {}", humantime::format_duration(limit))
}

/// An I/O error as a short lower-case phrase: `connection refused`.
fn io_message(err: &io::Error) -> String {
    let text = super::exec::os_message(err);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("{:?}", err.kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(expect_status: Option<u16>) -> HttpSpec {
        HttpSpec {
            url: "http://127.0.0.1/".into(),
            method: "GET".into(),
            headers: Default::default(),
            body: None,
            expect_status,
        }
    }

    fn body(text: &str) -> Body {
        let mut tail = OutputTail::new(OUTPUT_TAIL_BYTES);
        tail.push(text.as_bytes());
        Body {
            tail,
            bytes: text.len() as u64,
            capped: false,
            end: BodyEnd::Complete,
        }
    }

    #[test]
    fn any_2xx_succeeds_by_default() {
        for status in [200, 204, 299] {
            let f = judge(&spec(None), status, &body("ok"));
            assert_eq!(f.state, RunState::Succeeded, "{status}");
            assert_eq!(f.error, None);
        }
        let f = judge(&spec(None), 301, &body("moved"));
        assert_eq!(f.state, RunState::Failed);
        assert_eq!(
            f.error.as_deref(),
            Some("unexpected status 301 (expected 2xx)")
        );
        assert_eq!(f.output, "moved");
        assert_eq!(f.result.unwrap()["status"], json!(301));
    }

    #[test]
    fn expected_status_must_match_exactly() {
        assert_eq!(
            judge(&spec(Some(404)), 404, &body("")).state,
            RunState::Succeeded
        );
        let f = judge(&spec(Some(404)), 200, &body(""));
        assert_eq!(f.state, RunState::Failed);
        assert_eq!(
            f.error.as_deref(),
            Some("unexpected status 200 (expected 404)")
        );
    }

    #[test]
    fn io_messages_are_short() {
        let e = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(io_message(&e), "connection refused");
        let e = io::Error::from_raw_os_error(111);
        assert!(!io_message(&e).contains("os error"), "{}", io_message(&e));
    }

    #[test]
    fn body_keeps_a_bounded_tail() {
        let text: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let b = read_tail(io::Cursor::new(&text), &CancelToken::new());
        assert!(matches!(b.end, BodyEnd::Complete));
        assert_eq!(b.bytes, 200_000);
        assert!(!b.capped);
        assert!(b.tail.is_truncated());
        assert_eq!(b.tail.to_bytes(), &text[text.len() - OUTPUT_TAIL_BYTES..]);
    }

    #[test]
    fn endless_body_stops_at_the_cap() {
        let b = read_tail(io::repeat(b'x'), &CancelToken::new());
        assert!(matches!(b.end, BodyEnd::Complete));
        assert_eq!(b.bytes, MAX_BODY_READ);
        assert!(b.capped);
        assert_eq!(b.tail.len(), OUTPUT_TAIL_BYTES);
        // A body of exactly the cap is whole.
        let exact = io::repeat(b'x').take(MAX_BODY_READ);
        let b = read_tail(exact, &CancelToken::new());
        assert!(!b.capped);
    }

    #[test]
    fn cancel_stops_reading() {
        let cancel = CancelToken::new();
        cancel.cancel();
        let b = read_tail(io::repeat(b'x'), &cancel);
        assert!(matches!(b.end, BodyEnd::Cancelled));
        assert_eq!(b.bytes, 0);
    }

    #[test]
    fn timeout_message_reads_like_the_config() {
        assert_eq!(
            timeout_message(Duration::from_millis(500)),
            "timed out after 500ms"
        );
        assert_eq!(timeout_message(DEFAULT_TIMEOUT), "timed out after 30s");
    }
}
