//! Answering HTTP requests on a request worker: parse, authorize, route
//! to a method, respond. A route names a method and its params, decoded
//! into the same typed request as a JSON-RPC line
//! ([`crate::protocol::call::decode`]) and answered by the same handler.
//!
//! | route | method |
//! |---|---|
//! | `GET /healthz` | 200 `ok` / 503 `degraded` (no auth) |
//! | `GET /` | the status page |
//! | `GET /metrics` | Prometheus text ([`crate::http::metrics`]) |
//! | `GET /status` | `status` |
//! | `GET /jobs?limit=&after=&prefix=&source=`, `GET /jobs/NAME?next=` | `jobs.list`, `jobs.get` |
//! | `PUT /jobs/NAME` (body: the job), `DELETE /jobs/NAME?cancel=` | `jobs.put` → 201 or 200, `jobs.delete` |
//! | `POST /jobs/NAME/run` (body: args) | `jobs.run` → 202 |
//! | `POST /jobs/NAME/pause`, `/resume` | `jobs.pause`, `jobs.resume` |
//! | `GET /runs?job=&state=&limit=&before=`, `GET /runs/ID` | `runs.list`, `runs.get` |
//! | `POST /runs/ID/cancel` | `runs.cancel` |
//! | `GET /runs/ID/output?from=&follow=` | raw output ([`super::output`]) |
//! | `POST /reload` | `reload` |
//!
//! `HEAD` is accepted wherever `GET` is. A known path with another method
//! is 405 with `Allow`; an unknown path is 404.
//!
//! Browsers are kept from being used against the daemon ([`browser_check`]):
//! a `Host` that is not an IP address, `localhost` or a name listed in
//! `daemon.http_allowed_hosts` (a reverse proxy's, or the host's real
//! name) is refused (403), which defeats DNS rebinding (a hostile page
//! whose name resolves to 127.0.0.1);
//! an `Origin` other than the daemon's own is refused (403); and a `POST`
//! must say `Content-Type: application/json` (415), which a cross-site form
//! cannot send without the browser asking first (a CORS preflight tickd
//! never approves).
//!
//! Every request but `/healthz` is judged by [`crate::auth`]
//! (`Gate::judge_header`), which [`refuse`] renders as 401 (with the
//! challenge), a delayed 401, or a close; then by the role of its token
//! against the route's method (403 naming the role needed, the audit log,
//! a read token's redaction: `grant`). After a wrong token, the
//! requests pipelined behind it are not looked at: the batch ends and they
//! wait for the delay (see [`crate::requests`]).
//!
//! The HTTP wire (framing, responses, the status page, `/metrics`) is in
//! [`crate::http`]; this module decides what each request gets.

use super::batch::{
    finish_batch, flush_bytes, too_deep, BatchAnswer, ConnBatch, Done, OutputBudget, ReplyTo,
    Segment, MAX_NESTING,
};
use super::stream;
use crate::auth::{self, Verdict};
use crate::daemon::counters::bump;
use crate::daemon::Shared;
use crate::http::frame::{self, MAX_HEADERS};
use crate::http::response::{self, Framing};
use crate::http::STATUS_PAGE;
use crate::methods::{self, Handlers, Outcome};
use crate::protocol::call;
use crate::protocol::params::Params;
use crate::protocol::{ErrorCode, RpcError};
use serde_json::{Map, Value};

use super::grant::{self, Caller};
mod define;
mod guard;
use guard::{browser_check, head_check};

/// Sent with every 401, so that a browser asks for the token once (as the
/// password of Basic auth) and sends it with every later request.
const CHALLENGE: &str = "WWW-Authenticate: Basic realm=\"tickd\"\r\n";

/// One parsed request, borrowing from the batch.
struct HttpRequest<'a> {
    /// The minor version: HTTP/1.0 or 1.1.
    version: u8,
    method: &'a str,
    path: &'a str,
    query: &'a str,
    authorization: Option<&'a [u8]>,
    /// The `Host` header, or the authority of an absolute-form target,
    /// which stands for it (see [`head_check`]).
    host: Option<&'a str>,
    origin: Option<&'a [u8]>,
    content_type: Option<&'a [u8]>,
    body: &'a [u8],
}

/// How far [`answer_one`] got.
enum Checked {
    /// Answered; with the verdict of its token check if it was checked
    /// and passed it.
    Answered(Option<Verdict>),
    /// A wrong token: its answer is delayed and nothing after it is read.
    Wrong,
    /// The global budget of wrong tokens is spent: the connection ends.
    Flood,
    /// Answered, as `Answered`, with a streamed answer: nothing after it
    /// is read until it ends.
    Streaming(Option<Verdict>),
}

/// Where a request goes.
enum Target {
    Healthz,
    Cluster,
    Page,
    Metrics,
    Output(String),
    Call {
        method: &'static str,
        params: Map<String, Value>,
        ok: u16,
    },
}

/// A request that reaches no handler: its status, error and extra headers.
struct Refusal(u16, RpcError, &'static str);

/// Answers every request of an HTTP batch, in order.
pub fn answer_batch(h: &Handlers, mut batch: ConnBatch) -> BatchAnswer {
    let shared = &*h.shared;
    let mut segments = Vec::new();
    let mut out = batch.take_answer_buf(512);
    let mut rest = &batch.data[..];
    let mut done = Done::default();
    // A request that passed the token check lifts the connection's
    // pre-auth limits.
    let mut authed = batch.authed;
    let mut budget = OutputBudget::new(batch.out_budget);
    while !rest.is_empty() {
        // Past the output budget, the requests left wait for the loop.
        if budget.spent(&segments, &out) {
            done.rest = rest.to_vec();
            break;
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        // The loop framed these bytes, so parsing cannot fail; if it does
        // anyway, the connection cannot be trusted further.
        let head = match parsed.parse(rest) {
            Ok(httparse::Status::Complete(n)) => n,
            _ => {
                malformed(shared, &mut out, &mut segments);
                break;
            }
        };
        let body_len = frame::body_len(parsed.headers).unwrap_or(usize::MAX);
        let Some(body) = rest.get(head..head.saturating_add(body_len)) else {
            malformed(shared, &mut out, &mut segments);
            break;
        };
        let after = &rest[head + body.len()..];
        done.answered += 1;
        let version = parsed.version.unwrap_or(1);
        let mut framing = Framing {
            close: wants_close(version, parsed.headers),
            head: parsed.method == Some("HEAD"),
        };
        let target = parsed.path.unwrap_or("/");
        let (host, path, query) = match head_check(version, parsed.headers, target) {
            Ok(checked) => checked,
            Err(Refusal(status, err, extra)) => {
                // A request a proxy and tickd could read differently
                // (RFC 9112 section 3.2): answered, and the connection ends.
                bump(&shared.board.clients.http_malformed);
                framing.close = true;
                response::write_error_status(&mut out, status, &err, extra, framing);
                flush_bytes(&mut segments, &mut out);
                segments.push(Segment::Close {
                    why: Some("bad Host or request target".into()),
                });
                break;
            }
        };
        let header = |name: &str| {
            parsed
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
        };
        let req = HttpRequest {
            version,
            method: parsed.method.unwrap_or("GET"),
            path,
            query,
            authorization: header("authorization"),
            host,
            origin: header("origin"),
            content_type: header("content-type"),
            body,
        };
        let caller = Caller {
            peer: batch.peer,
            addr: batch.addr,
            conn: batch.grant.as_ref(),
        };
        let checked = answer_one(h, &req, framing, &mut out, &mut segments, &caller);
        let streaming = matches!(checked, Checked::Streaming(_));
        match checked {
            Checked::Answered(Some(passed)) | Checked::Streaming(Some(passed)) if !authed => {
                authed = true;
                if let Verdict::Authenticated(token) = passed {
                    done.authenticated = Some(token.secret);
                }
            }
            Checked::Answered(_) | Checked::Streaming(_) => {}
            Checked::Wrong => {
                done.rest = after.to_vec();
                break;
            }
            Checked::Flood => {
                flush_bytes(&mut segments, &mut out);
                segments.push(Segment::Close {
                    why: Some(auth::FLOOD_CLOSE.into()),
                });
                break;
            }
        }
        if streaming {
            done.rest = after.to_vec();
            break;
        }
        rest = after;
        if framing.close {
            // Whatever follows on this connection is not answered.
            flush_bytes(&mut segments, &mut out);
            segments.push(Segment::Close { why: None });
            break;
        }
    }
    finish_batch(shared, batch, segments, out, done)
}

/// Answers 400 and ends the connection: bytes the loop framed did not parse.
fn malformed(shared: &Shared, out: &mut Vec<u8>, segments: &mut Vec<Segment>) {
    bump(&shared.board.clients.http_malformed);
    let err = RpcError::new(ErrorCode::InvalidRequest, "bad request: malformed HTTP");
    let f = Framing {
        close: true,
        head: false,
    };
    response::write_error(out, &err, "", f);
    flush_bytes(segments, out);
    segments.push(Segment::Close {
        why: Some("malformed HTTP request".into()),
    });
}

/// HTTP/1.1 keeps the connection unless told `close`; HTTP/1.0 closes
/// unless told `keep-alive`.
fn wants_close(version: u8, headers: &[httparse::Header<'_>]) -> bool {
    let connection = headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("connection"))
        .map(|h| h.value);
    let has = |token: &str| {
        connection.is_some_and(|v| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    };
    if version == 0 {
        !has("keep-alive")
    } else {
        has("close")
    }
}

/// Answers one request into `out` (or a segment, for commands and
/// delayed refusals).
fn answer_one(
    h: &Handlers,
    req: &HttpRequest<'_>,
    f: Framing,
    out: &mut Vec<u8>,
    segments: &mut Vec<Segment>,
    caller: &Caller<'_>,
) -> Checked {
    let shared = &*h.shared;
    let mut passed = None;
    let mut granted = None;
    if req.path != "/healthz" {
        let checked = {
            let live = shared.board.live.read();
            browser_check(req, &live.http_allowed_hosts)
        };
        if let Err(Refusal(status, err, extra)) = checked {
            bump(&shared.board.clients.http_forbidden);
            response::write_error_status(out, status, &err, extra, f);
            return Checked::Answered(None);
        }
        let v = {
            let live = shared.board.live.read();
            h.gate
                .judge_header(&live.tokens, req.authorization, caller.peer)
        };
        shared.board.clients.count(&v);
        if let Some(refused) = refuse(&v, f, out, segments) {
            return refused;
        }
        granted = Some(grant::of_request(&v, caller));
        passed = Some(v);
    }
    let mut named = None;
    let target = match resolve(shared, req, &mut named) {
        Ok(t) => t,
        Err(Refusal(status, err, extra)) => {
            // A role too low for the method hears that, rather than what
            // is wrong with its params (which it may not send anyway).
            if let (Some(g), Some(method)) = (&granted, named) {
                if let Err(e) = grant::check(shared, g, caller, method, &Map::new()) {
                    response::write_error(out, &e, "", f);
                    return Checked::Answered(passed);
                }
            }
            response::write_error_status(out, status, &err, extra, f);
            return Checked::Answered(passed);
        }
    };
    match target {
        Target::Healthz => {
            // The node's own health decides the status: with Redis alone
            // away a load balancer keeps the node (the body says so).
            let health = shared.board.health();
            let status = if health == "ok" { 200 } else { 503 };
            let body = match &shared.cluster {
                Some(c) if c.is_up() => format!("{health}\nredis: up\n"),
                Some(_) => format!("{health}\nredis: down\n"),
                None => health.to_string(),
            };
            response::write(
                out,
                status,
                "text/plain; charset=utf-8",
                "",
                body.as_bytes(),
                f,
            );
        }
        Target::Cluster => match &shared.cluster {
            Some(c) => {
                let body = serde_json::to_vec(&c.view()).unwrap_or_default();
                response::write(out, 200, "application/json", "", &body, f);
            }
            None => {
                let err = RpcError::new(
                    crate::protocol::rpc::ErrorCode::NotFound,
                    "not in cluster mode: the config has no [cluster] table",
                );
                response::write_error_status(out, 404, &err, "", f);
            }
        },
        Target::Page => response::write(
            out,
            200,
            "text/html; charset=utf-8",
            "",
            STATUS_PAGE.as_bytes(),
            f,
        ),
        Target::Metrics => {
            if let Some(rest) = stream::start_metrics(shared, f, req.version, out) {
                flush_bytes(segments, out);
                segments.push(Segment::Stream(rest));
                return Checked::Streaming(passed);
            }
        }
        Target::Output(id) => {
            if super::output::answer(shared, &id, req.query, req.version, f, out, segments) {
                return Checked::Streaming(passed);
            }
        }
        Target::Call { method, params, ok } => {
            if let Some(g) = &granted {
                if let Err(e) = grant::check(shared, g, caller, method, &params) {
                    response::write_error(out, &e, "", f);
                    return Checked::Answered(passed);
                }
            }
            let params = Params(params);
            let call = match call::decode(method, &params, &shared.board) {
                Ok(call) => call,
                Err(e) => {
                    response::write_error(out, &e, "", f);
                    return Checked::Answered(passed);
                }
            };
            if let Some(g) = &granted {
                grant::audit(g, caller, method, &params.0);
            }
            match grant::redact(granted.as_ref(), method, methods::handle(h, call)) {
                Outcome::Answer(Ok(v)) => response::write_json(out, ok, &v, f),
                Outcome::Encoded(Ok(raw)) => response::write_json(out, ok, &raw, f),
                Outcome::Answer(Err(e)) | Outcome::Encoded(Err(e)) => {
                    response::write_error(out, &RpcError::from(e), "", f)
                }
                Outcome::Command(cmd) => {
                    flush_bytes(segments, out);
                    segments.push(Segment::Command {
                        to: ReplyTo::Http { ok, framing: f },
                        cmd,
                    });
                }
            }
        }
    }
    Checked::Answered(passed)
}

/// Answers a verdict that refuses the request in HTTP terms (see
/// [`crate::auth`]): 401 with the challenge, now or (a wrong token) after
/// the auth delay, or the connection closed (the budget spent). `None`:
/// the request passed.
fn refuse(
    verdict: &Verdict,
    f: Framing,
    out: &mut Vec<u8>,
    segments: &mut Vec<Segment>,
) -> Option<Checked> {
    match verdict {
        // A role's refusal comes after routing (`grant::check`).
        Verdict::Served | Verdict::Authenticated(_) | Verdict::Forbidden(_) => None,
        Verdict::NotAuthenticated => {
            let err = RpcError::new(ErrorCode::NotAuthenticated, auth::NOT_AUTHENTICATED_HTTP);
            response::write_error(out, &err, CHALLENGE, f);
            Some(Checked::Answered(None))
        }
        Verdict::Wrong => {
            flush_bytes(segments, out);
            let err = RpcError::new(ErrorCode::NotAuthenticated, auth::WRONG_TOKEN);
            let mut answer = Vec::new();
            response::write_error(&mut answer, &err, CHALLENGE, f);
            segments.push(Segment::Delayed(answer));
            Some(Checked::Wrong)
        }
        Verdict::Flood => Some(Checked::Flood),
    }
}

/// Maps method and path to a target. A state-changing route sets `named`
/// to its method before its params are read, so that a refusal of them
/// can give way to the role's.
fn resolve(
    shared: &Shared,
    req: &HttpRequest<'_>,
    named: &mut Option<&'static str>,
) -> Result<Target, Refusal> {
    let parts: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let get = |t: Target| allow(req.method, &["GET", "HEAD"], t);
    let post = |t: Target| allow(req.method, &["POST"], t);
    let call = |method: &'static str, params: Map<String, Value>, ok: u16| Target::Call {
        method,
        params,
        ok,
    };
    match parts.as_slice() {
        [""] => get(Target::Page),
        ["healthz"] => get(Target::Healthz),
        ["cluster"] => get(Target::Cluster),
        ["metrics"] => get(Target::Metrics),
        ["status"] => get(call("status", Map::new(), 200)),
        ["jobs"] => get(call("jobs.list", query_params(req.query)?, 200)),
        ["jobs", name] => match req.method {
            "PUT" => Ok(call(
                named.insert("jobs.put"),
                define::put_params(shared, name, req.body)?,
                201,
            )),
            "DELETE" => Ok(call(
                named.insert("jobs.delete"),
                define::delete_params(name, req.query)?,
                200,
            )),
            m => allow(
                m,
                &JOB_METHODS,
                call("jobs.get", define::get_params(name, req.query)?, 200),
            ),
        },
        ["jobs", name, "run"] => {
            allow(req.method, &["POST"], ())?;
            *named = Some("jobs.run");
            let mut params = name_param("name", name)?;
            if let Some(args) = body_json(shared, req.body)? {
                params.insert("args".into(), args);
            }
            // `?node=any` (cluster mode) is the one query parameter.
            for (key, value) in query_params(req.query)? {
                if key != "node" {
                    return Err(bad_request(&format!(
                        "unknown query parameter `{key}`: POST /jobs/NAME/run takes only `node` (local or any)"
                    )));
                }
                params.insert(key, value);
            }
            Ok(call("jobs.run", params, 202))
        }
        ["jobs", name, "pause"] => {
            allow(req.method, &["POST"], ())?;
            Ok(call(
                named.insert("jobs.pause"),
                name_param("name", name)?,
                200,
            ))
        }
        ["jobs", name, "resume"] => {
            allow(req.method, &["POST"], ())?;
            Ok(call(
                named.insert("jobs.resume"),
                name_param("name", name)?,
                200,
            ))
        }
        ["runs"] => get(call("runs.list", query_params(req.query)?, 200)),
        ["runs", id] => get(call("runs.get", name_param("run_id", id)?, 200)),
        ["runs", id, "cancel"] => {
            allow(req.method, &["POST"], ())?;
            Ok(call(
                named.insert("runs.cancel"),
                name_param("run_id", id)?,
                200,
            ))
        }
        ["runs", id, "output"] => get(Target::Output(decode(id)?)),
        ["reload"] => post(call("reload", Map::new(), 200)),
        _ => Err(Refusal(
            404,
            RpcError::new(ErrorCode::NotFound, format!("no such path: {}", req.path)),
            "",
        )),
    }
}

/// The methods of `/jobs/NAME`.
const JOB_METHODS: [&str; 4] = ["GET", "HEAD", "PUT", "DELETE"];

/// Passes `t` if `method` is one of `allowed`, else 405 with `Allow`.
fn allow<T>(method: &str, allowed: &[&str], t: T) -> Result<T, Refusal> {
    if allowed.contains(&method) {
        return Ok(t);
    }
    let extra = if allowed.contains(&"PUT") {
        "Allow: GET, HEAD, PUT, DELETE\r\n"
    } else if allowed.contains(&"GET") {
        "Allow: GET, HEAD\r\n"
    } else {
        "Allow: POST\r\n"
    };
    Err(Refusal(
        405,
        RpcError::new(
            ErrorCode::MethodNotFound,
            format!("method {method} not allowed here"),
        ),
        extra,
    ))
}

/// A one-parameter map from a (percent-decoded) path segment.
fn name_param(key: &str, raw: &str) -> Result<Map<String, Value>, Refusal> {
    let mut m = Map::new();
    m.insert(key.into(), Value::String(decode(raw)?));
    Ok(m)
}

/// `job=a&state=failed&limit=5` → params; `limit` and `next` are numbers
/// (a run id in `before` stays a string, as run ids are on the wire).
fn query_params(query: &str) -> Result<Map<String, Value>, Refusal> {
    let mut m = Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode_query(k)?, decode_query(v)?);
        // Only `limit` and `next` are numbers: a job named "123" stays a name.
        let value = match v.parse::<u64>() {
            Ok(n) if k == "limit" || k == "next" => Value::from(n),
            _ => Value::String(v),
        };
        m.insert(k, value);
    }
    Ok(m)
}

/// Percent-decoding of a path segment (`+` is a plus sign there).
fn decode(raw: &str) -> Result<String, Refusal> {
    percent_decode(raw, false)
}

/// Percent-decoding of a query part, where `+` is a space.
fn decode_query(raw: &str) -> Result<String, Refusal> {
    percent_decode(raw, true)
}

/// Percent-decoding; `+` becomes a space if `plus_is_space`.
fn percent_decode(raw: &str, plus_is_space: bool) -> Result<String, Refusal> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| bad_request("bad percent-encoding in the URL"))?;
                out.push(hex);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad_request("the URL is not UTF-8"))
}

/// The JSON body of a request, `None` when empty.
fn body_json(shared: &Shared, body: &[u8]) -> Result<Option<Value>, Refusal> {
    if body.trim_ascii().is_empty() {
        return Ok(None);
    }
    if body.len() > MAX_NESTING && crate::protocol::rpc::nesting_exceeds(body, MAX_NESTING) {
        return Err(Refusal(400, too_deep(shared), ""));
    }
    serde_json::from_slice(body).map(Some).map_err(|e| {
        Refusal(
            400,
            RpcError::new(ErrorCode::Parse, format!("parse error in the body: {e}")),
            "",
        )
    })
}

fn bad_request(message: &str) -> Refusal {
    Refusal(
        400,
        RpcError::new(ErrorCode::InvalidRequest, format!("bad request: {message}")),
        "",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_header_and_version_decide_keep_alive() {
        let close = [httparse::Header {
            name: "Connection",
            value: b"Close",
        }];
        let keep = [httparse::Header {
            name: "connection",
            value: b"keep-alive",
        }];
        assert!(!wants_close(1, &[]));
        assert!(wants_close(1, &close));
        assert!(wants_close(0, &[]));
        assert!(!wants_close(0, &keep));
    }

    #[test]
    fn queries_decode_and_keep_numbers() {
        let m = query_params("job=a%2Db&state=failed&limit=5")
            .ok()
            .expect("parses");
        assert_eq!(m["job"], Value::from("a-b"));
        assert_eq!(m["limit"], Value::from(5));
        assert!(decode("%zz").is_err());
        let m = query_params("job=123&limit=2").ok().expect("parses");
        assert_eq!(m["job"], Value::from("123"));
        assert_eq!(decode("a+b").ok(), Some("a+b".to_string()));
        assert_eq!(decode_query("a+b").ok(), Some("a b".to_string()));
    }
}
