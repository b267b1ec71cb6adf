//! JSON-RPC 2.0 requests and responses, with the relaxations tickd allows.
//!
//! A person typing into netcat should not have to write `"jsonrpc":"2.0"`
//! or invent an `id`, so both may be left out: the answer then carries
//! `"id": null`. Everything else follows JSON-RPC 2.0: `params` is an object
//! (named parameters) or absent, and errors carry a numeric code from
//! [`ErrorCode`].

use serde::Serialize;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// The error codes of the protocol, each with one meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The line is not valid JSON.
    Parse,
    /// Valid JSON but not a request object, or a line over the length limit.
    InvalidRequest,
    /// No method of that name.
    MethodNotFound,
    /// A parameter is missing or of the wrong type; the message names it.
    InvalidParams,
    /// A bug in tickd; should never be seen.
    Internal,
    /// No such job or run.
    NotFound,
    /// The connection must authenticate first.
    NotAuthenticated,
    /// The run queue is full, the connection limit is reached, or the daemon is stopping.
    Overloaded,
    /// The operation is not allowed by the configuration.
    Forbidden,
    /// The operation conflicts with the current state (reload rejected, run refused by overlap).
    Conflict,
}

impl ErrorCode {
    /// The numeric code sent on the wire.
    pub fn code(self) -> i64 {
        match self {
            ErrorCode::Parse => -32700,
            ErrorCode::InvalidRequest => -32600,
            ErrorCode::MethodNotFound => -32601,
            ErrorCode::InvalidParams => -32602,
            ErrorCode::Internal => -32603,
            ErrorCode::NotFound => -32000,
            ErrorCode::NotAuthenticated => -32001,
            ErrorCode::Overloaded => -32002,
            ErrorCode::Forbidden => -32003,
            ErrorCode::Conflict => -32004,
        }
    }
}

/// An error answer: a code, a message for people, and optional data for programs.
#[derive(Clone, Debug, PartialEq)]
pub struct RpcError {
    /// Which kind of error this is.
    pub code: ErrorCode,
    /// A sentence saying what went wrong, naming the parameter/job/run concerned.
    pub message: String,
    /// Extra machine-readable detail, when there is any.
    pub data: Option<Value>,
}

impl RpcError {
    /// An error with a code and a message and no data.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// A `-32602` error about the parameter `name`.
    pub fn param(name: &str, what: impl fmt::Display) -> Self {
        RpcError::new(ErrorCode::InvalidParams, format!("param `{name}`: {what}"))
    }

    /// A `-32000` error for a job that does not exist.
    pub fn no_job(name: &str) -> Self {
        RpcError::new(ErrorCode::NotFound, format!("no such job: {name}"))
    }

    /// A `-32000` error for a run that does not exist (or is no longer kept).
    pub fn no_run(id: &str) -> Self {
        RpcError::new(ErrorCode::NotFound, format!("no such run: {id}"))
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code.code())
    }
}

impl std::error::Error for RpcError {}

/// A decoded request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The request id, echoed in the answer; `Null` when the client sent none.
    pub id: Value,
    /// The method name: borrowed from [`METHODS`] for every method tickd
    /// knows (no allocation per request), owned for any other.
    pub method: Cow<'static, str>,
    /// Named parameters; empty when absent.
    pub params: Params,
}

/// The shape of a well-formed request, decoded without building a
/// `serde_json::Value` tree: the method borrows from the line when it has no
/// escapes, and absent params cost nothing. Unknown members are ignored, as
/// in the slow path.
#[derive(serde::Deserialize)]
struct WireRequest<'a> {
    #[serde(default, borrow)]
    jsonrpc: Option<Cow<'a, str>>,
    #[serde(default)]
    id: Option<WireId>,
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(default)]
    params: Option<Map<String, Value>>,
}

/// An id as JSON-RPC allows it: a string or a number (null is `None` above).
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum WireId {
    Num(serde_json::Number),
    Str(String),
}

/// Decodes one line into a request. On failure returns the id to answer with
/// (when one could be read) and the error.
///
/// Well-formed requests take the fast path (one typed decode); anything the
/// fast path refuses is decoded again the slow way, which classifies the
/// problem into the right error code. The two accept exactly the same
/// requests (tested below).
pub fn parse_request(line: &[u8]) -> Result<Request, (Value, RpcError)> {
    if let Ok(w) = serde_json::from_slice::<WireRequest<'_>>(line) {
        if w.jsonrpc.as_deref().is_none_or(|v| v == "2.0") {
            return Ok(Request {
                id: match w.id {
                    None => Value::Null,
                    Some(WireId::Num(n)) => Value::Number(n),
                    Some(WireId::Str(s)) => Value::String(s),
                },
                method: method_name(w.method),
                params: Params(w.params.unwrap_or_default()),
            });
        }
    }
    parse_request_slow(line)
}

/// The reference decoder: builds a `Value` and checks each member.
fn parse_request_slow(line: &[u8]) -> Result<Request, (Value, RpcError)> {
    let value: Value = serde_json::from_slice(line).map_err(|e| {
        (
            Value::Null,
            RpcError::new(ErrorCode::Parse, format!("parse error: {e}")),
        )
    })?;
    let Value::Object(mut obj) = value else {
        return Err((
            Value::Null,
            RpcError::new(
                ErrorCode::InvalidRequest,
                "invalid request: expected a JSON object",
            ),
        ));
    };
    let id = match obj.remove("id") {
        None | Some(Value::Null) => Value::Null,
        Some(id @ (Value::String(_) | Value::Number(_))) => id,
        Some(_) => {
            return Err((
                Value::Null,
                RpcError::new(
                    ErrorCode::InvalidRequest,
                    "invalid request: `id` must be a string, a number or null",
                ),
            ))
        }
    };
    let invalid = |msg: &str| {
        Err((
            id.clone(),
            RpcError::new(ErrorCode::InvalidRequest, format!("invalid request: {msg}")),
        ))
    };
    match obj.get("jsonrpc") {
        // Like `id` and `params`, a null member counts as absent.
        None | Some(Value::Null) => {}
        Some(Value::String(v)) if v == "2.0" => {}
        Some(_) => return invalid("`jsonrpc` must be \"2.0\""),
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) => m,
        Some(_) => return invalid("`method` must be a string"),
        None => return invalid("missing `method`"),
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p,
        Some(_) => {
            return Err((
                id,
                RpcError::new(
                    ErrorCode::InvalidParams,
                    "`params` must be an object of named parameters",
                ),
            ))
        }
    };
    Ok(Request {
        id,
        method: method_name(Cow::Owned(method)),
        params: Params(params),
    })
}

/// Every method name the daemon answers (`methods::handle` refuses the
/// rest); a request naming one of them shares this copy of the name.
pub const METHODS: &[&str] = &[
    "ping",
    "status",
    "jobs.list",
    "jobs.get",
    "jobs.run",
    "jobs.pause",
    "jobs.resume",
    "runs.get",
    "runs.list",
    "runs.cancel",
    "submit",
    "subscribe",
    "reload",
    "shutdown",
    "auth",
    "debug.kill_worker",
    "debug.failpoint",
    "debug.clock_jump",
];

/// The method name of a decoded request, as a shared copy when it is one
/// of [`METHODS`].
fn method_name(name: Cow<'_, str>) -> Cow<'static, str> {
    match METHODS.iter().find(|m| **m == name) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(name.into_owned()),
    }
}

/// Whether `json` nests arrays and objects deeper than `max` (brackets
/// inside strings do not count). A cheap byte scan, run before decoding,
/// so a hostile line never reaches the decoder's recursion; the caller
/// skips it for lines too short to nest that deep.
pub fn nesting_exceeds(json: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Named parameters with typed accessors that produce `-32602` errors naming
/// the parameter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params(pub Map<String, Value>);

impl Params {
    /// A parameter's raw value; `null` counts as absent.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A required string parameter.
    pub fn str(&self, name: &str) -> Result<&str, RpcError> {
        match self.get(name) {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(RpcError::param(name, "must be a string")),
            None => Err(RpcError::param(name, "is required")),
        }
    }

    /// An optional string parameter.
    pub fn opt_str(&self, name: &str) -> Result<Option<&str>, RpcError> {
        match self.get(name) {
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(RpcError::param(name, "must be a string")),
            None => Ok(None),
        }
    }

    /// An optional boolean parameter, `default` when absent.
    pub fn bool_or(&self, name: &str, default: bool) -> Result<bool, RpcError> {
        match self.get(name) {
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(RpcError::param(name, "must be true or false")),
            None => Ok(default),
        }
    }

    /// An optional object parameter.
    pub fn opt_object(&self, name: &str) -> Result<Option<&Map<String, Value>>, RpcError> {
        match self.get(name) {
            Some(Value::Object(o)) => Ok(Some(o)),
            Some(_) => Err(RpcError::param(name, "must be an object")),
            None => Ok(None),
        }
    }

    /// An optional non-negative integer parameter.
    pub fn opt_u64(&self, name: &str) -> Result<Option<u64>, RpcError> {
        match self.get(name) {
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| RpcError::param(name, "must be a non-negative integer")),
            None => Ok(None),
        }
    }

    /// Rejects parameters other than `allowed`, so a typo is an error and not ignored.
    pub fn only(&self, allowed: &[&str]) -> Result<(), RpcError> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(RpcError::param(k, "is not a parameter of this method")),
            None => Ok(()),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: i64,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Value>,
}

#[derive(Serialize)]
struct ResultResponse<'a, T: Serialize> {
    jsonrpc: &'static str,
    id: &'a Value,
    result: &'a T,
}

#[derive(Serialize)]
struct ErrorResponse<'a> {
    jsonrpc: &'static str,
    id: &'a Value,
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct Notification<'a, T: Serialize> {
    jsonrpc: &'static str,
    method: &'a str,
    params: &'a T,
}

/// Appends a success response line to `out`.
pub fn write_result<T: Serialize>(out: &mut Vec<u8>, id: &Value, result: &T) {
    let resp = ResultResponse {
        jsonrpc: "2.0",
        id,
        result,
    };
    if serde_json::to_writer(&mut *out, &resp).is_err() {
        // Serializing a Value into a Vec cannot fail except for non-string map
        // keys, which tickd never builds; answer with an internal error anyway.
        let err = RpcError::new(
            ErrorCode::Internal,
            "internal error: result not serializable",
        );
        write_error(out, id, &err);
        return;
    }
    out.push(b'\n');
}

/// Appends an error response line to `out`.
pub fn write_error(out: &mut Vec<u8>, id: &Value, err: &RpcError) {
    let resp = ErrorResponse {
        jsonrpc: "2.0",
        id,
        error: ErrorBody {
            code: err.code.code(),
            message: &err.message,
            data: err.data.as_ref(),
        },
    };
    // Only strings and numbers go in here; the fallback keeps the line count right.
    if serde_json::to_writer(&mut *out, &resp).is_err() {
        out.extend_from_slice(
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"internal error"}}"#,
        );
    }
    out.push(b'\n');
}

/// Appends a notification line (a message with no id that expects no answer).
pub fn write_notification<T: Serialize>(out: &mut Vec<u8>, method: &str, params: &T) {
    let msg = Notification {
        jsonrpc: "2.0",
        method,
        params,
    };
    if serde_json::to_writer(&mut *out, &msg).is_ok() {
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err_code(line: &str) -> (Value, i64) {
        let (id, e) = parse_request(line.as_bytes()).expect_err("should fail");
        (id, e.code.code())
    }

    #[test]
    fn known_method_names_are_shared_and_others_owned() {
        for line in [
            r#"{"method":"ping"}"#,
            r#"{"method":"p\u0069ng"}"#,
            r#"{"method":"ping","params":7}"#,
        ] {
            match parse_request(line.as_bytes()) {
                Ok(req) => {
                    assert!(matches!(req.method, Cow::Borrowed("ping")), "{line}");
                }
                Err((_, e)) => assert_eq!(e.code, ErrorCode::InvalidParams, "{line}"),
            }
        }
        let req = parse_request(br#"{"method":"no.such"}"#).expect("well-formed");
        assert!(matches!(req.method, Cow::Owned(ref m) if m == "no.such"));
        let mut sorted = METHODS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), METHODS.len(), "no name twice");
    }

    #[test]
    fn relaxed_request_without_jsonrpc_or_id() {
        let r = parse_request(br#"{"method":"ping"}"#).expect("valid");
        assert_eq!(r.method, "ping");
        assert_eq!(r.id, Value::Null);
        assert!(r.params.0.is_empty());
    }

    #[test]
    fn full_request_keeps_id_and_params() {
        let r = parse_request(
            br#"{"jsonrpc":"2.0","id":"a","method":"jobs.get","params":{"name":"x"}}"#,
        )
        .expect("valid");
        assert_eq!(r.id, json!("a"));
        assert_eq!(r.params.str("name"), Ok("x"));
    }

    #[test]
    fn malformed_json_is_parse_error() {
        assert_eq!(err_code("{\"method\":"), (Value::Null, -32700));
        assert_eq!(err_code("not json"), (Value::Null, -32700));
    }

    #[test]
    fn non_objects_are_invalid_requests() {
        assert_eq!(err_code("[1,2]").1, -32600);
        assert_eq!(err_code("42").1, -32600);
        assert_eq!(err_code("\"ping\"").1, -32600);
    }

    #[test]
    fn bad_fields_are_invalid_requests_with_id_when_known() {
        assert_eq!(err_code(r#"{"id":7}"#), (json!(7), -32600));
        assert_eq!(err_code(r#"{"id":7,"method":3}"#), (json!(7), -32600));
        assert_eq!(
            err_code(r#"{"id":{},"method":"ping"}"#),
            (Value::Null, -32600)
        );
        assert_eq!(err_code(r#"{"jsonrpc":"1.0","method":"ping"}"#).1, -32600);
    }

    #[test]
    fn positional_params_are_bad_params() {
        assert_eq!(
            err_code(r#"{"id":1,"method":"ping","params":[1]}"#),
            (json!(1), -32602)
        );
    }

    #[test]
    fn param_accessors_name_the_param() {
        let p = Params(
            json!({"name": 3, "wait": "yes"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        assert!(p.str("name").unwrap_err().message.contains("`name`"));
        assert!(p
            .bool_or("wait", false)
            .unwrap_err()
            .message
            .contains("`wait`"));
        assert!(p.str("missing").unwrap_err().message.contains("required"));
        assert!(p.only(&["name"]).unwrap_err().message.contains("`wait`"));
    }

    use proptest::prelude::*;

    proptest::proptest! {
        /// The fast path never accepts what the reference decoder refuses,
        /// and both read the same request.
        #[test]
        fn fast_and_slow_paths_agree(
            method in proptest::option::of(proptest::prop_oneof![
                proptest::strategy::Just(json!("ping")),
                proptest::strategy::Just(json!("jobs.get")),
                proptest::strategy::Just(json!(3)),
                proptest::strategy::Just(json!(null)),
                "[a-z.\\\\\"]{0,8}".prop_map(Value::String),
            ]),
            id in proptest::option::of(proptest::prop_oneof![
                proptest::strategy::Just(json!(null)),
                proptest::strategy::Just(json!(7)),
                proptest::strategy::Just(json!(-1.5)),
                proptest::strategy::Just(json!("x")),
                proptest::strategy::Just(json!([1])),
                proptest::strategy::Just(json!({"a": 1})),
                proptest::strategy::Just(json!(true)),
            ]),
            jsonrpc in proptest::option::of(proptest::prop_oneof![
                proptest::strategy::Just(json!("2.0")),
                proptest::strategy::Just(json!("1.0")),
                proptest::strategy::Just(json!(2)),
                proptest::strategy::Just(json!(null)),
            ]),
            params in proptest::option::of(proptest::prop_oneof![
                proptest::strategy::Just(json!({"name": "x"})),
                proptest::strategy::Just(json!([1])),
                proptest::strategy::Just(json!(null)),
                proptest::strategy::Just(json!("p")),
            ]),
            extra in proptest::bool::ANY,
        ) {
            let mut obj = Map::new();
            if let Some(m) = method { obj.insert("method".into(), m); }
            if let Some(i) = id { obj.insert("id".into(), i); }
            if let Some(j) = jsonrpc { obj.insert("jsonrpc".into(), j); }
            if let Some(p) = params { obj.insert("params".into(), p); }
            if extra { obj.insert("extra".into(), json!({"deep": [1, 2]})); }
            let line = Value::Object(obj).to_string();
            let fast = parse_request(line.as_bytes());
            let slow = parse_request_slow(line.as_bytes());
            prop_assert_eq!(fast, slow, "line: {}", line);
        }
    }

    #[test]
    fn escaped_method_names_decode_on_the_fast_path() {
        let r = parse_request(br#"{"method":"pi\u006eg"}"#).expect("valid");
        assert_eq!(r.method, "ping");
    }

    #[test]
    fn nesting_is_measured_outside_strings() {
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert!(nesting_exceeds(deep.as_bytes(), 64));
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(!nesting_exceeds(ok.as_bytes(), 64));
        let quoted = format!("{{\"a\":\"{}\\\"\"}}", "[".repeat(100));
        assert!(!nesting_exceeds(quoted.as_bytes(), 64));
    }

    #[test]
    fn responses_are_single_lines() {
        let mut out = Vec::new();
        write_result(&mut out, &json!(1), &json!("pong"));
        write_error(&mut out, &Value::Null, &RpcError::no_job("x"));
        let text = String::from_utf8(out).expect("utf8");
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines[0], r#"{"jsonrpc":"2.0","id":1,"result":"pong"}"#);
        let v: Value = serde_json::from_str(lines[1]).expect("json");
        assert_eq!(v["error"]["code"], json!(-32000));
        assert_eq!(v["id"], Value::Null);
    }
}
