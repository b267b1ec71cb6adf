//! JSON-RPC 2.0 requests and responses, with the relaxations tickd allows.
//!
//! A person typing into netcat should not have to write `"jsonrpc":"2.0"`
//! or invent an `id`, so both may be left out: the answer then carries
//! `"id": null`. Everything else follows JSON-RPC 2.0: `params` is an object
//! (named parameters) or absent, and errors carry a numeric code from
//! [`ErrorCode`]. An id comes back exactly as it was written ([`Id`]), and
//! a request with a key given twice is refused ([`super::strict`]).
//! Batches (a line holding an array of requests) are split here
//! ([`super::strict::batch`]) and answered member by member by the
//! request layer above (`requests::lines`).

pub use super::decode::{nesting_exceeds, parse_request, Request, METHODS};
pub use super::id::Id;
pub use super::params::Params;
use serde::Serialize;
use serde_json::Value;
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
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code.code())
    }
}

impl std::error::Error for RpcError {}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: i64,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Value>,
}

#[derive(Serialize)]
struct ResultResponse<'a, I: Serialize + ?Sized, T: Serialize + ?Sized> {
    jsonrpc: &'static str,
    id: &'a I,
    result: &'a T,
}

#[derive(Serialize)]
struct ErrorResponse<'a, I: Serialize + ?Sized> {
    jsonrpc: &'static str,
    id: &'a I,
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct Notification<'a, T: Serialize> {
    jsonrpc: &'static str,
    method: &'a str,
    params: &'a T,
}

/// Appends a success response line to `out`. `id` is an [`Id`] (or a
/// `Value`, for answers to no particular request).
pub fn write_result<I, T>(out: &mut Vec<u8>, id: &I, result: &T)
where
    I: Serialize + ?Sized,
    T: Serialize + ?Sized,
{
    put_result(out, id, result);
    out.push(b'\n');
}

/// Appends a success response without its line end (a member of a batch's
/// answer).
pub fn put_result<I, T>(out: &mut Vec<u8>, id: &I, result: &T)
where
    I: Serialize + ?Sized,
    T: Serialize + ?Sized,
{
    let start = out.len();
    let resp = ResultResponse {
        jsonrpc: "2.0",
        id,
        result,
    };
    if serde_json::to_writer(&mut *out, &resp).is_err() {
        // Serializing into a Vec cannot fail except for non-string map
        // keys, which tickd never builds; answer with an internal error
        // anyway, in place of what was written.
        out.truncate(start);
        let err = RpcError::new(
            ErrorCode::Internal,
            "internal error: result not serializable",
        );
        put_error(out, id, &err);
    }
}

/// Appends an error response line to `out`.
pub fn write_error<I: Serialize + ?Sized>(out: &mut Vec<u8>, id: &I, err: &RpcError) {
    put_error(out, id, err);
    out.push(b'\n');
}

/// Appends an error response without its line end (a member of a batch's
/// answer).
pub fn put_error<I: Serialize + ?Sized>(out: &mut Vec<u8>, id: &I, err: &RpcError) {
    let start = out.len();
    let resp = ErrorResponse {
        jsonrpc: "2.0",
        id,
        error: ErrorBody {
            code: err.code.code(),
            message: &err.message,
            data: err.data.as_ref(),
        },
    };
    // Only strings and numbers go in here; the fallback keeps the answer count right.
    if serde_json::to_writer(&mut *out, &resp).is_err() {
        out.truncate(start);
        out.extend_from_slice(
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"internal error"}}"#,
        );
    }
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

    #[test]
    fn ids_are_echoed_as_written() {
        for text in ["18446744073709551616", "1.0", "1e2", "-0", r#""x""#, "null"] {
            let line = format!(r#"{{"id":{text},"method":"ping"}}"#);
            let r = parse_request(line.as_bytes()).expect("valid");
            let mut out = Vec::new();
            write_result(&mut out, &r.id, "pong");
            let expected = format!("{{\"jsonrpc\":\"2.0\",\"id\":{text},\"result\":\"pong\"}}\n");
            assert_eq!(String::from_utf8(out).expect("utf8"), expected);
        }
    }

    #[test]
    fn responses_are_single_lines() {
        let mut out = Vec::new();
        write_result(&mut out, &json!(1), &json!("pong"));
        let no_job = crate::daemon::Error::NoSuchJob("x".into());
        write_error(&mut out, &Value::Null, &RpcError::from(no_job));
        let text = String::from_utf8(out).expect("utf8");
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines[0], r#"{"jsonrpc":"2.0","id":1,"result":"pong"}"#);
        let v: Value = serde_json::from_str(lines[1]).expect("json");
        assert_eq!(v["error"]["code"], json!(-32000));
        assert_eq!(v["id"], Value::Null);
    }
}
