//! Answering a connection's JSON-RPC lines on a request worker: single
//! requests, and JSON-RPC 2.0 batches (a line holding an array of
//! requests), under the connection's output budget.
//!
//! **Batches** follow section 6 of the JSON-RPC 2.0 specification: the
//! answer is one line holding an array with one response per member, in
//! the members' order. A member without an `id` member is a notification
//! and gets no response (unlike a single line, which tickd answers with
//! `"id": null`); a batch of notifications only gets nothing at all. A
//! member that is not a valid request object (`1`, `{"foo":"boo"}`) gets a
//! `-32600` response with `"id": null`. `[]`, a line that is not valid
//! JSON, and a batch of more than [`MAX_BATCH_REQUESTS`] requests get a
//! single error object instead of an array.
//!
//! Members are answered one after the other, like lines: an `auth` member
//! authenticates the members after it; a member that is a command
//! (`jobs.run`, `subscribe`, ...) is applied by the loop, its response
//! taking its place in the array ([`ReplyTo::Member`]), so a `jobs.run`
//! with `wait: true` holds back the rest of the array until its run ends.
//! After a wrong token the rest of the array is not looked at: each
//! member after it gets `-32001`, and the array from the wrong token's
//! response on is sent after the auth delay (every verdict on a token or
//! a method is [`crate::auth`]'s; this file renders it in JSON-RPC terms,
//! [`Cx::refuse`]). Each member is judged by the connection's role on its
//! own (`-32003` naming the role needed); one that changes something is
//! written to the audit log, and a read token's job definitions come back
//! redacted (see [`crate::auth`]). A notification of a method
//! without effects (`status`, `runs.list`, ...) is not even answered
//! internally.
//!
//! The output budget ([`OutputBudget`]) is looked at before each line and
//! each member: lines past it go back to the loop unread; members past it
//! are not run and get `-32002` (a batch's answer cannot be cut in two).

use super::batch::{
    finish_batch, flush_bytes, too_deep, BatchAnswer, ConnBatch, Done, OutputBudget, ReplyTo,
    Segment, MAX_BATCH_REQUESTS, MAX_NESTING,
};
use super::grant;
use crate::auth::{self, AuthToken, Grant, Verdict};
use crate::daemon::counters::bump;
use crate::methods::{self, Handlers, Outcome};
use crate::protocol::call;
use crate::protocol::codec::{Frame, LineFramer};
use crate::protocol::rpc::{self, Id, Request};
use crate::protocol::strict::{self, Batch};
use crate::protocol::{ErrorCode, RpcError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::net::{IpAddr, SocketAddr};

/// Methods that change nothing: a notification of one is not answered
/// even internally (its answer would be thrown away).
const WITHOUT_EFFECT: &[&str] = &[
    "ping",
    "status",
    "jobs.list",
    "jobs.get",
    "runs.get",
    "runs.list",
];

/// The params of `auth {token}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthParams<'a> {
    /// The token presented.
    token: &'a str,
}

/// What the rest of the connection's batch may do after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Go on with the next request.
    Go,
    /// A wrong token: its answer (and any after it in the same line) is
    /// being held; stop and hand the rest back.
    Held,
    /// The wrong-token budget is spent: the connection ends.
    Flood,
}

/// Where an answer goes: a line of its own, or a member of a batch's
/// array (`count`: responses written to it so far).
enum Place<'p> {
    Line,
    Member { count: &'p mut usize },
}

/// A worker's state while it answers one connection's lines.
struct Cx<'a> {
    h: &'a Handlers,
    peer: Option<IpAddr>,
    addr: Option<SocketAddr>,
    segments: Vec<Segment>,
    out: Vec<u8>,
    /// What the connection is granted (`None`: not authenticated).
    grant: Option<Grant>,
    authenticated: Option<AuthToken>,
    budget: OutputBudget,
    max_line: usize,
}

impl Cx<'_> {
    /// The line length limit: shorter before authentication.
    fn line_limit(&self) -> usize {
        auth::line_limit(self.max_line, self.grant.is_some())
    }

    /// Whether the answers built so far exceed the batch's output budget.
    fn over_budget(&mut self) -> bool {
        self.budget.spent(&self.segments, &self.out)
    }

    /// Writes what comes before an answer: `[` or `,` in a batch's array.
    fn open(&mut self, place: &mut Place<'_>) {
        if let Place::Member { count } = place {
            self.out.push(if **count == 0 { b'[' } else { b',' });
            **count += 1;
        }
    }

    /// Writes one result where it belongs.
    fn reply_ok<T: Serialize + ?Sized>(&mut self, place: &mut Place<'_>, id: &Id, v: &T) {
        self.open(place);
        match place {
            Place::Line => rpc::write_result(&mut self.out, id, v),
            Place::Member { .. } => rpc::put_result(&mut self.out, id, v),
        }
    }

    /// Writes one error where it belongs.
    fn reply_err(&mut self, place: &mut Place<'_>, id: &Id, e: &RpcError) {
        self.open(place);
        match place {
            Place::Line => rpc::write_error(&mut self.out, id, e),
            Place::Member { .. } => rpc::put_error(&mut self.out, id, e),
        }
    }

    /// Answers one decoded request (a line, or a batch member); a batch's
    /// notification (`silent`) is carried out without an answer.
    fn answer(&mut self, req: Request, mut place: Place<'_>) -> Flow {
        let silent = matches!(place, Place::Member { .. }) && req.id.is_absent();
        if req.method == "auth" {
            let params = match req.params.decode::<AuthParams>() {
                Ok(p) => p,
                Err(e) => {
                    if !silent {
                        self.reply_err(&mut place, &req.id, &e);
                    }
                    return Flow::Go;
                }
            };
            let verdict = {
                let live = self.h.shared.board.live.read();
                self.h
                    .gate
                    .judge_token(&live.tokens, params.token.as_bytes(), self.peer)
            };
            if let Some(flow) = self.refuse(&verdict, &mut place, &req.id, silent) {
                return flow;
            }
            let grant = match verdict {
                Verdict::Authenticated(token) => {
                    let grant = Grant::of(&token);
                    self.authenticated = Some(token.secret);
                    grant
                }
                // Trusted already (the Unix socket), or auth is off.
                _ => self.grant.clone().unwrap_or_else(Grant::open),
            };
            if !silent {
                let name = match &grant.who {
                    auth::Who::Token(name) => Some(&**name),
                    auth::Who::Unix | auth::Who::Open => None,
                };
                let answer =
                    json!({ "authenticated": true, "name": name, "role": grant.role.as_str() });
                self.reply_ok(&mut place, &req.id, &answer);
            }
            self.grant = Some(grant);
            return Flow::Go;
        }
        let verdict = auth::judge_method(self.grant.as_ref(), &req.method);
        if let (Verdict::Forbidden(denied), Some(grant)) = (&verdict, &self.grant) {
            let line = auth::audit_line(
                grant,
                self.addr,
                &req.method,
                &req.params.0,
                false,
                Some(denied.needed),
            );
            log::info!("{line}");
        }
        if let Some(flow) = self.refuse(&verdict, &mut place, &req.id, silent) {
            return flow;
        }
        if silent && WITHOUT_EFFECT.contains(&&*req.method) {
            return Flow::Go;
        }
        let call = match call::decode(&req.method, &req.params, &self.h.shared.board) {
            Ok(call) => call,
            Err(e) => {
                if !silent {
                    self.reply_err(&mut place, &req.id, &e);
                }
                return Flow::Go;
            }
        };
        let grant = self.grant.as_ref();
        if let Some(grant) = grant.filter(|_| auth::changes_state(&req.method)) {
            let line = auth::audit_line(grant, self.addr, &req.method, &req.params.0, false, None);
            log::info!("{line}");
        }
        let outcome = methods::handle(self.h, call);
        match grant::redact(self.grant.as_ref(), &req.method, outcome) {
            Outcome::Answer(Ok(v)) if !silent => self.reply_ok(&mut place, &req.id, &v),
            Outcome::Encoded(Ok(raw)) if !silent => self.reply_ok(&mut place, &req.id, &raw),
            Outcome::Answer(Err(e)) | Outcome::Encoded(Err(e)) if !silent => {
                self.reply_err(&mut place, &req.id, &RpcError::from(e))
            }
            Outcome::Answer(_) | Outcome::Encoded(_) => {}
            Outcome::Command(cmd) => {
                let to = match place {
                    Place::Line => ReplyTo::Rpc(req.id),
                    Place::Member { .. } if silent => ReplyTo::Nobody,
                    Place::Member { .. } => {
                        self.open(&mut place);
                        ReplyTo::Member(req.id)
                    }
                };
                flush_bytes(&mut self.segments, &mut self.out);
                self.segments.push(Segment::Command { to, cmd });
            }
        }
        Flow::Go
    }

    /// Counts `verdict` and, if it refuses the request, answers it in
    /// JSON-RPC terms (see [`crate::auth`]) and says how the batch goes on;
    /// `None`: the request passed.
    fn refuse(
        &mut self,
        verdict: &Verdict,
        place: &mut Place<'_>,
        id: &Id,
        silent: bool,
    ) -> Option<Flow> {
        if verdict.passed() {
            return None;
        }
        self.h.shared.board.clients.count(verdict);
        match verdict {
            Verdict::Served | Verdict::Authenticated(_) => None,
            Verdict::Forbidden(denied) => {
                if !silent {
                    let e = RpcError::new(ErrorCode::Forbidden, denied.to_string());
                    self.reply_err(place, id, &e);
                }
                Some(Flow::Go)
            }
            Verdict::NotAuthenticated => {
                if !silent {
                    let e = RpcError::new(ErrorCode::NotAuthenticated, auth::NOT_AUTHENTICATED);
                    self.reply_err(place, id, &e);
                }
                Some(Flow::Go)
            }
            Verdict::Wrong => {
                // What was answered before goes now; this answer (and, in
                // a batch, the rest of its array) after the delay.
                flush_bytes(&mut self.segments, &mut self.out);
                if !silent {
                    let e = RpcError::new(ErrorCode::NotAuthenticated, auth::WRONG_TOKEN);
                    self.reply_err(place, id, &e);
                }
                Some(Flow::Held)
            }
            Verdict::Flood => {
                if matches!(place, Place::Member { .. }) && !silent {
                    let e = RpcError::new(ErrorCode::NotAuthenticated, auth::FLOOD_CLOSE);
                    self.reply_err(place, id, &e);
                }
                Some(Flow::Flood)
            }
        }
    }

    /// Answers a line holding one request.
    fn answer_single(&mut self, line: &[u8]) -> Flow {
        let req = match rpc::parse_request(line) {
            Ok(req) => req,
            Err((id, err)) => {
                rpc::write_error(&mut self.out, &id, &err);
                return Flow::Go;
            }
        };
        let flow = self.answer(req, Place::Line);
        match flow {
            Flow::Go => {}
            Flow::Held => {
                let held = std::mem::take(&mut self.out);
                self.segments.push(Segment::Delayed(held));
            }
            Flow::Flood => self.close_for_flood(),
        }
        flow
    }

    /// Answers a line holding a batch; returns the flow and how many
    /// requests it held.
    fn answer_array(&mut self, line: &[u8]) -> (Flow, u64) {
        let invalid = |msg: String| RpcError::new(ErrorCode::InvalidRequest, msg);
        let members = match strict::batch(line, MAX_BATCH_REQUESTS) {
            Ok(Batch::Members(m)) if !m.is_empty() => m,
            Ok(Batch::Members(_)) => {
                let e = invalid("invalid request: empty batch".into());
                rpc::write_error(&mut self.out, &Id::Absent, &e);
                return (Flow::Go, 1);
            }
            Ok(Batch::TooMany(n)) => {
                let e = invalid(format!(
                    "invalid request: a batch of {n} requests; at most {MAX_BATCH_REQUESTS} per batch"
                ));
                rpc::write_error(&mut self.out, &Id::Absent, &e);
                return (Flow::Go, 1);
            }
            Err(e) => {
                let e = RpcError::new(ErrorCode::Parse, format!("parse error: {e}"));
                rpc::write_error(&mut self.out, &Id::Absent, &e);
                return (Flow::Go, 1);
            }
        };
        let requests = members.len() as u64;
        let mut count = 0usize;
        let mut flow = Flow::Go;
        for raw in members {
            let parsed = rpc::parse_request(raw.get().as_bytes());
            let (id, silent) = match &parsed {
                Ok(req) => (&req.id, req.id.is_absent()),
                // A notification whose params are wrong is still one (the
                // spec answers none); an invalid object is answered.
                Err((id, e)) => (id, id.is_absent() && e.code == ErrorCode::InvalidParams),
            };
            let mut place = Place::Member { count: &mut count };
            let refusal = if flow != Flow::Go {
                // After a failed `auth`, nothing more is looked at.
                Some(RpcError::new(
                    ErrorCode::NotAuthenticated,
                    auth::NOT_LOOKED_AT,
                ))
            } else if !silent && self.over_budget() {
                // A response would not fit (notifications, which add
                // none, are still carried out).
                Some(over_budget())
            } else {
                None
            };
            if let Some(e) = refusal {
                if !silent {
                    let id = id.clone();
                    self.reply_err(&mut place, &id, &e);
                }
                continue;
            }
            match parsed {
                Err((id, e)) => {
                    if !silent {
                        self.reply_err(&mut place, &id, &e);
                    }
                }
                Ok(req) => flow = self.answer(req, place),
            }
        }
        if count > 0 {
            self.out.extend_from_slice(b"]\n");
        }
        match flow {
            Flow::Go => {}
            Flow::Held => {
                let held = std::mem::take(&mut self.out);
                self.segments.push(Segment::Delayed(held));
            }
            Flow::Flood => self.close_for_flood(),
        }
        (flow, requests)
    }

    /// Ends the connection after the answers so far: the wrong-token
    /// budget is spent.
    fn close_for_flood(&mut self) {
        flush_bytes(&mut self.segments, &mut self.out);
        self.segments.push(Segment::Close {
            why: Some(auth::FLOOD_CLOSE.into()),
        });
    }
}

/// The answer to a batch member past the output budget.
fn over_budget() -> RpcError {
    RpcError::new(
        ErrorCode::Overloaded,
        "not run: the answers to this batch would pass max_output_bytes; \
         send fewer requests per batch, or read the answers before sending more",
    )
}

/// Whether a line holds a batch (a JSON array).
fn is_array(line: &[u8]) -> bool {
    line.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
}

/// Answers a batch of JSON-RPC lines.
pub(super) fn answer_lines(h: &Handlers, mut batch: ConnBatch) -> BatchAnswer {
    let shared = &*h.shared;
    let mut cx = Cx {
        h,
        peer: batch.peer,
        segments: Vec::new(),
        out: batch.take_answer_buf(256),
        grant: batch.grant.take(),
        addr: batch.addr,
        authenticated: None,
        budget: OutputBudget::new(batch.out_budget),
        max_line: batch.max_line,
    };
    let mut framer = LineFramer::new(cx.line_limit());
    let mut answered = 0u64;
    let mut rest = Vec::new();
    loop {
        let start = framer.consumed();
        if cx.over_budget() {
            // The client would leave more than max_output_bytes unread:
            // the lines left go back to the loop, which sends what was
            // built (or drops the client) before they are looked at.
            rest = batch.data.get(start..).unwrap_or_default().to_vec();
            break;
        }
        let line = match framer.next_frame(&batch.data) {
            Frame::Line(line) => line,
            Frame::Incomplete => break,
            Frame::TooLong => {
                bump(&shared.board.clients.lines_too_long);
                let max = cx.line_limit();
                let err = RpcError::new(
                    ErrorCode::InvalidRequest,
                    format!("invalid request: line longer than max_line_bytes ({max})"),
                );
                rpc::write_error(&mut cx.out, &Id::Absent, &err);
                flush_bytes(&mut cx.segments, &mut cx.out);
                cx.segments.push(Segment::Close {
                    why: Some(format!("line longer than {max} bytes")),
                });
                break;
            }
        };
        let flow = if line.len() > MAX_NESTING && rpc::nesting_exceeds(line, MAX_NESTING) {
            answered += 1;
            rpc::write_error(&mut cx.out, &Id::Absent, &too_deep(shared));
            Flow::Go
        } else if is_array(line) {
            let (flow, requests) = cx.answer_array(line);
            answered += requests;
            flow
        } else {
            answered += 1;
            cx.answer_single(line)
        };
        framer.set_max_line(cx.line_limit());
        match flow {
            Flow::Go => {}
            Flow::Held => {
                // Nothing after a wrong token is looked at before the
                // delay has passed: it goes back to the loop.
                rest = batch.data[framer.consumed()..].to_vec();
                break;
            }
            Flow::Flood => break,
        }
    }
    let done = Done {
        answered,
        authenticated: cx.authenticated,
        rest,
    };
    finish_batch(shared, batch, cx.segments, cx.out, done)
}
