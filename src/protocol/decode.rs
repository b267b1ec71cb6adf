//! Decoding a request line: a fast path for well-formed requests, and a
//! slow path that classifies what is wrong with the others.
//!
//! Both read the same requests (a property test below checks it) and
//! refuse the same ones: a key given twice anywhere in the request object
//! or its `params` ([`super::strict`]), an `id` that is not a string, a
//! number or null, a `jsonrpc` other than `"2.0"`, a `method` that is not a
//! string, `params` that are not an object.

use super::id::Id;
use super::params::Params;
use super::rpc::{ErrorCode, RpcError};
use super::strict::{self, SeenKeys, Shape, StrictObject, Text};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// A decoded request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The request id, echoed in the answer as written; [`Id::Absent`]
    /// when the client sent none (answered with `null`).
    pub id: Id,
    /// The method name: borrowed from [`METHODS`] for every method tickd
    /// knows (no allocation per request), owned for any other.
    pub method: Cow<'static, str>,
    /// Named parameters; empty when absent.
    pub params: Params,
}

/// A well-formed request, decoded without building a `serde_json::Value`
/// tree for anything but `params`: the method borrows from the line when
/// it has no escapes, the id is kept as text, and absent params cost
/// nothing. Unknown members are skipped (but a key given twice, known or
/// not, fails the decode, as in the slow path).
struct Wire<'a> {
    id: Id,
    method: Cow<'a, str>,
    params: Map<String, Value>,
}

impl<'de> Deserialize<'de> for Wire<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(WireVisitor)
    }
}

struct WireVisitor;

impl<'de> Visitor<'de> for WireVisitor {
    type Value = Wire<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Wire<'de>, A::Error> {
        let (mut jsonrpc, mut id, mut method, mut params) = (false, None, None, None);
        let mut others = SeenKeys::default();
        let twice = || de::Error::custom("duplicate key");
        while let Some(Text(key)) = map.next_key()? {
            match &*key {
                "jsonrpc" => {
                    if std::mem::replace(&mut jsonrpc, true) {
                        return Err(twice());
                    }
                    let v: Option<Text<'de>> = map.next_value()?;
                    if v.is_some_and(|Text(v)| v != "2.0") {
                        return Err(de::Error::custom("bad jsonrpc"));
                    }
                }
                "id" => {
                    let raw: &RawValue = map.next_value()?;
                    let given = Id::from_raw(raw).ok_or_else(|| de::Error::custom("bad id"))?;
                    if id.replace(given).is_some() {
                        return Err(twice());
                    }
                }
                "method" => {
                    let Text(m) = map.next_value()?;
                    if method.replace(m).is_some() {
                        return Err(twice());
                    }
                }
                "params" => {
                    let p: Option<StrictObject> = map.next_value()?;
                    if params.replace(p.map(|p| p.0)).is_some() {
                        return Err(twice());
                    }
                }
                _ => {
                    if !others.insert(key) {
                        return Err(twice());
                    }
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Wire {
            id: id.unwrap_or_default(),
            method: method.ok_or_else(|| de::Error::custom("no method"))?,
            params: params.flatten().unwrap_or_default(),
        })
    }
}

/// Decodes one line into a request. On failure returns the id to answer with
/// (when one could be read) and the error.
///
/// Well-formed requests take the fast path (one typed decode); anything the
/// fast path refuses is decoded again the slow way, which classifies the
/// problem into the right error code. The two accept exactly the same
/// requests (tested below).
pub fn parse_request(line: &[u8]) -> Result<Request, (Id, RpcError)> {
    match serde_json::from_slice::<Wire<'_>>(line) {
        Ok(w) => Ok(Request {
            id: w.id,
            method: method_name(w.method),
            params: Params(w.params),
        }),
        Err(_) => parse_request_slow(line),
    }
}

/// Reads any JSON value as serde_json would decode it (numbers included,
/// which `IgnoredAny` only scans) and keeps nothing.
struct IgnoredValue;

impl<'de> Deserialize<'de> for IgnoredValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckAll).map(|()| IgnoredValue)
    }
}

/// The visitor of [`IgnoredValue`].
struct CheckAll;

impl<'de> Visitor<'de> for CheckAll {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredValue>()?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value::<IgnoredValue>()?;
        }
        Ok(())
    }
}

/// The reference decoder: reads the object's members as text, then checks
/// each one.
fn parse_request_slow(line: &[u8]) -> Result<Request, (Id, RpcError)> {
    let invalid = |id: Id, msg: &str| {
        Err((
            id,
            RpcError::new(ErrorCode::InvalidRequest, format!("invalid request: {msg}")),
        ))
    };
    let parse_error = |e: serde_json::Error| {
        Err((
            Id::Absent,
            RpcError::new(ErrorCode::Parse, format!("parse error: {e}")),
        ))
    };
    // What serde_json cannot read (a syntax error, a number out of the
    // range of f64 such as 1e400), with the position in the whole line.
    if let Err(e) = serde_json::from_slice::<IgnoredValue>(line) {
        return parse_error(e);
    }
    let members = match strict::members(line) {
        Ok(Shape::Object(members)) => members,
        Ok(Shape::Other) => return invalid(Id::Absent, "expected a JSON object"),
        Err(e) => return parse_error(e),
    };
    let member = |name: &str| members.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
    let id = match member("id") {
        None => Id::Absent,
        Some(raw) => match Id::from_raw(raw) {
            Some(id) => id,
            None => return invalid(Id::Absent, "`id` must be a string, a number or null"),
        },
    };
    let mut seen = SeenKeys::default();
    if let Some((key, _)) = members.iter().find(|(k, _)| !seen.insert(k.clone())) {
        // Which of two ids would the client expect back? Neither.
        let id = if key == "id" { Id::Absent } else { id };
        return invalid(id, &format!("duplicate key `{key}`"));
    }
    let decode = |raw: &RawValue| serde_json::from_str::<Value>(raw.get()).unwrap_or_default();
    match member("jsonrpc").map(decode) {
        // Like `id` and `params`, a null member counts as absent.
        None | Some(Value::Null) => {}
        Some(Value::String(v)) if v == "2.0" => {}
        Some(_) => return invalid(id, "`jsonrpc` must be \"2.0\""),
    }
    let method = match member("method").map(decode) {
        Some(Value::String(m)) => m,
        Some(_) => return invalid(id, "`method` must be a string"),
        None => return invalid(id, "missing `method`"),
    };
    let params = match member("params").map(strict::strict_value) {
        None | Some(Ok(Value::Null)) => Map::new(),
        Some(Ok(Value::Object(p))) => p,
        Some(Err(key)) => return invalid(id, &format!("duplicate key `{key}` in `params`")),
        Some(Ok(_)) => {
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

/// Every method name the daemon answers (`auth` on the connection,
/// the others through [`super::call::decode`], which refuses the rest); a
/// request naming one of them shares this copy of the name.
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
    "runs.output",
    "submit",
    "jobs.put",
    "jobs.delete",
    "subscribe",
    "reload",
    "shutdown",
    "upgrade",
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The id text an error is answered with, and its code.
    fn err_code(line: &str) -> (String, i64) {
        let (id, e) = parse_request(line.as_bytes()).expect_err("should fail");
        (id.text().to_string(), e.code.code())
    }

    fn id(text: &str) -> Id {
        Id::parse(text).expect("an id")
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
        assert_eq!(r.id, Id::Absent);
        assert!(r.params.0.is_empty());
    }

    #[test]
    fn full_request_keeps_id_and_params() {
        let r = parse_request(
            br#"{"jsonrpc":"2.0","id":"a","method":"jobs.get","params":{"name":"x"}}"#,
        )
        .expect("valid");
        assert_eq!(r.id, id(r#""a""#));
        assert_eq!(r.params.get("name"), Some(&Value::from("x")));
    }

    #[test]
    fn malformed_json_is_parse_error() {
        assert_eq!(err_code("{\"method\":"), ("null".into(), -32700));
        assert_eq!(err_code("not json"), ("null".into(), -32700));
    }

    #[test]
    fn non_objects_are_invalid_requests() {
        assert_eq!(err_code("[1,2]").1, -32600);
        assert_eq!(err_code("42").1, -32600);
        assert_eq!(err_code("\"ping\"").1, -32600);
    }

    #[test]
    fn bad_fields_are_invalid_requests_with_id_when_known() {
        assert_eq!(err_code(r#"{"id":7}"#), ("7".into(), -32600));
        assert_eq!(err_code(r#"{"id":7,"method":3}"#), ("7".into(), -32600));
        assert_eq!(
            err_code(r#"{"id":{},"method":"ping"}"#),
            ("null".into(), -32600)
        );
        assert_eq!(err_code(r#"{"jsonrpc":"1.0","method":"ping"}"#).1, -32600);
    }

    #[test]
    fn positional_params_are_bad_params() {
        assert_eq!(
            err_code(r#"{"id":1,"method":"ping","params":[1]}"#),
            ("1".into(), -32602)
        );
    }

    use proptest::prelude::*;

    /// One of `texts`, as raw JSON text.
    fn one_of(texts: &'static [&'static str]) -> impl Strategy<Value = String> {
        proptest::sample::select(texts).prop_map(str::to_string)
    }

    proptest::proptest! {
        /// The fast path never accepts what the reference decoder refuses,
        /// and both read the same request (members as raw text, so that
        /// keys given twice and ids that no number type holds are tried).
        #[test]
        fn fast_and_slow_paths_agree(
            method in proptest::option::of(proptest::prop_oneof![
                one_of(&[r#""ping""#, r#""jobs.get""#, "3", "null"]),
                "[a-z.\\\\\"]{0,8}".prop_map(|m| Value::String(m).to_string()),
            ]),
            id in proptest::option::of(one_of(&[
                "null", "7", "-1.5", "1.0", "1e2", "18446744073709551616", "1e400", r#""x""#,
                r#""\u0078""#, "[1]", r#"{"a": 1}"#, "true",
            ])),
            jsonrpc in proptest::option::of(one_of(&[r#""2.0""#, r#""1.0""#, "2", "null"])),
            params in proptest::option::of(one_of(&[
                r#"{"name": "x"}"#, "[1]", "null", r#""p""#, r#"{"name":"x","name":"y"}"#,
                r#"{"a":[{"b":1,"b":2}]}"#, r#"{"n\u0061me":1,"name":2}"#, r#"{"n":-1e400}"#,
            ])),
            extra in proptest::bool::ANY,
            twice in proptest::option::of(0usize..5),
        ) {
            let mut members: Vec<(&str, String)> = Vec::new();
            if let Some(m) = method { members.push(("method", m)); }
            if let Some(i) = id { members.push(("id", i)); }
            if let Some(j) = jsonrpc { members.push(("jsonrpc", j)); }
            if let Some(p) = params { members.push(("params", p)); }
            if extra { members.push(("extra", r#"{"deep": [1, 2]}"#.into())); }
            if let Some(i) = twice.filter(|&i| i < members.len()) {
                let again = members[i].clone();
                members.push(again);
            }
            let body: Vec<String> = members.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            let line = format!("{{{}}}", body.join(","));
            let fast = parse_request(line.as_bytes());
            let slow = parse_request_slow(line.as_bytes());
            prop_assert_eq!(fast, slow, "line: {}", line);
        }
    }

    #[test]
    fn duplicate_keys_are_invalid_requests() {
        assert_eq!(
            err_code(r#"{"id":1,"method":"ping","method":"shutdown"}"#),
            ("1".into(), -32600)
        );
        assert_eq!(
            err_code(r#"{"id":1,"method":"ping","id":2}"#),
            ("null".into(), -32600),
            "neither id is echoed"
        );
        assert_eq!(
            err_code(r#"{"id":1,"method":"ping","x":1,"x":2}"#),
            ("1".into(), -32600)
        );
        let (_, e) =
            parse_request(br#"{"id":1,"method":"jobs.get","params":{"name":"a","name":"b"}}"#)
                .expect_err("refused");
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert_eq!(
            e.message,
            "invalid request: duplicate key `name` in `params`"
        );
        let (_, e) = parse_request(br#"{"method":"ping","m\u0065thod":"shutdown"}"#)
            .expect_err("escaped twin");
        assert_eq!(e.message, "invalid request: duplicate key `method`");
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
}
