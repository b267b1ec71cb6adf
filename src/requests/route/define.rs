//! The routes of `/jobs/NAME` that take more than the name: `GET
//! /jobs/NAME?next=` (`jobs.get`), and those of jobs defined at run time,
//! `PUT /jobs/NAME` (`jobs.put`, the body is the job object) and `DELETE
//! /jobs/NAME?cancel=` (`jobs.delete`).

use super::{body_json, decode, query_params, Refusal};
use crate::daemon::Shared;
use crate::protocol::{ErrorCode, RpcError};
use serde_json::{Map, Value};

/// `PUT /jobs/NAME`: `{job: BODY}`, with `name` set to NAME when the body
/// has none; a body naming another job is refused (400), since the URL
/// names the resource being put.
pub(super) fn put_params(
    shared: &Shared,
    raw_name: &str,
    body: &[u8],
) -> Result<Map<String, Value>, Refusal> {
    let name = decode(raw_name)?;
    let mut params = Map::new();
    let Some(mut job) = body_json(shared, body)? else {
        return Ok(params); // answered as `param `job`: is required`
    };
    if let Value::Object(map) = &mut job {
        match map.get("name") {
            None => {
                map.insert("name".into(), Value::String(name));
            }
            Some(Value::String(given)) if *given == name => {}
            Some(given) => {
                let message =
                    format!("job.name: {given} does not match the name in the URL ({name:?})");
                return Err(Refusal(
                    400,
                    RpcError::new(ErrorCode::InvalidParams, message),
                    "",
                ));
            }
        }
    }
    params.insert("job".into(), job);
    Ok(params)
}

/// `GET /jobs/NAME?next=N`: `{name, next?}`; `next` is a number (the
/// decoder refuses another value, and any other parameter, with a 400).
pub(super) fn get_params(raw_name: &str, query: &str) -> Result<Map<String, Value>, Refusal> {
    let mut params = query_params(query)?;
    if params.contains_key("name") {
        return Err(super::bad_request(
            "unknown query parameter `name`: the job's name is in the path",
        ));
    }
    params.insert("name".into(), Value::String(decode(raw_name)?));
    Ok(params)
}

/// `DELETE /jobs/NAME?cancel=true`: `{name, cancel?}`; `cancel` is `true`
/// or `false` (anything else is a bad param, as is any other parameter).
pub(super) fn delete_params(raw_name: &str, query: &str) -> Result<Map<String, Value>, Refusal> {
    let mut params = query_params(query)?;
    if let Some(v) = params.get_mut("cancel") {
        match v.as_str() {
            Some("true") => *v = Value::Bool(true),
            Some("false") => *v = Value::Bool(false),
            _ => {}
        }
    }
    params.insert("name".into(), Value::String(decode(raw_name)?));
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn get_takes_next_as_a_number() {
        let p = get_params("cron%2Ejob", "next=5").ok().expect("parses");
        assert_eq!(Value::Object(p), json!({"name": "cron.job", "next": 5}));
        let p = get_params("a", "").ok().expect("parses");
        assert_eq!(Value::Object(p), json!({"name": "a"}));
        let p = get_params("a", "next=ten").ok().expect("parses");
        assert_eq!(p["next"], "ten", "left for the decoder to refuse");
        assert!(get_params("a", "name=b").is_err());
    }

    #[test]
    fn delete_takes_cancel_as_a_boolean() {
        let p = delete_params("a%2Db", "cancel=true").ok().expect("parses");
        assert_eq!(Value::Object(p), json!({"name": "a-b", "cancel": true}));
        let p = delete_params("a", "").ok().expect("parses");
        assert_eq!(Value::Object(p), json!({"name": "a"}));
        let p = delete_params("a", "cancel=yes").ok().expect("parses");
        assert_eq!(p["cancel"], "yes", "left for the decoder to refuse");
    }
}
