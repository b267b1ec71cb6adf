//! What a token of role read may not see, and what is written about every
//! request that changes something.
//!
//! - **Redaction** ([`redact_answer`]): a read token sees job definitions
//!   with their secrets replaced by [`REDACTED`]: the values of an exec
//!   job's `env` and of an http job's `headers`, and an http job's `body`
//!   (the keys stay, so a reader still sees which variables and headers a
//!   job sets). It applies to the answers that show definitions
//!   (`jobs.get`, `jobs.list`, and their routes), at the top level of each
//!   job object and in its `definition`. Operate and admin tokens, the
//!   Unix socket and clients with auth off see them whole.
//! - **The audit log** ([`audit_line`]): every request whose method needs
//!   more than read ([`super::changes_state`]) is logged at info level
//!   before it is carried out, with who asked (the token's name and role,
//!   `unix`, or `no token (auth off)`), from which address, the method and
//!   its identifying params; refused ones too (`denied`). The token itself
//!   is never written, nor any param that may carry a secret (a job
//!   definition's fields but its name and kind, `args`): those show as
//!   [`REDACTED`].

use super::Grant;
use serde_json::{Map, Value};
use std::net::SocketAddr;

/// What a secret is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Params shown as they are in the audit log (scalars identifying what
/// was acted on); any other shows as [`REDACTED`].
const SHOWN_PARAMS: &[&str] = &[
    "name", "run_id", "wait", "cancel", "node", "delay", "at", "from", "follow",
];

/// The longest string shown of one param in the audit log.
const MAX_SHOWN: usize = 128;

/// Hides the secrets of the job definitions in the answer to `method`
/// (see the module doc); other answers are left alone.
pub fn redact_answer(method: &str, answer: &mut Value) {
    match method {
        "jobs.get" => redact_job(answer),
        "jobs.list" => {
            let jobs = match answer {
                Value::Array(jobs) => jobs,
                Value::Object(page) => match page.get_mut("jobs") {
                    Some(Value::Array(jobs)) => jobs,
                    _ => return,
                },
                _ => return,
            };
            jobs.iter_mut().for_each(redact_job);
        }
        _ => {}
    }
}

/// Whether the answer to `method` may show job definitions (and so must
/// go through [`redact_answer`] for a read token).
pub fn shows_definitions(method: &str) -> bool {
    matches!(method, "jobs.get" | "jobs.list")
}

/// Hides the secrets of one job object: at its top level and in its
/// `definition`.
fn redact_job(job: &mut Value) {
    let Value::Object(map) = job else {
        return;
    };
    redact_fields(map);
    if let Some(Value::Object(def)) = map.get_mut("definition") {
        redact_fields(def);
    }
}

/// `env` and `headers` values, and `body`, of one object.
fn redact_fields(map: &mut Map<String, Value>) {
    for key in ["env", "headers"] {
        if let Some(Value::Object(table)) = map.get_mut(key) {
            for v in table.values_mut() {
                *v = Value::from(REDACTED);
            }
        }
    }
    if let Some(body) = map.get_mut("body") {
        if !body.is_null() {
            *body = Value::from(REDACTED);
        }
    }
}

/// The audit log line of a request for `method` with `params` from
/// `grant` at `from` (`None`: the Unix socket), over HTTP if `http`;
/// `denied`: the role it needed, when it was refused for it.
pub fn audit_line(
    grant: &Grant,
    from: Option<SocketAddr>,
    method: &str,
    params: &Map<String, Value>,
    http: bool,
    denied: Option<super::Role>,
) -> String {
    let mut shown = Map::new();
    for (k, v) in params {
        let v = match (k.as_str(), v) {
            (k, Value::String(s)) if SHOWN_PARAMS.contains(&k) => {
                Value::from(s.chars().take(MAX_SHOWN).collect::<String>())
            }
            (k, v @ (Value::Bool(_) | Value::Number(_) | Value::Null))
                if SHOWN_PARAMS.contains(&k) =>
            {
                v.clone()
            }
            ("job", Value::Object(job)) => {
                let mut kept = Map::new();
                for key in ["name", "kind"] {
                    if let Some(Value::String(s)) = job.get(key) {
                        kept.insert(
                            key.into(),
                            Value::from(s.chars().take(MAX_SHOWN).collect::<String>()),
                        );
                    }
                }
                kept.insert("...".into(), Value::from(REDACTED));
                Value::Object(kept)
            }
            _ => Value::from(REDACTED),
        };
        shown.insert(k.chars().take(MAX_SHOWN).collect(), v);
    }
    let from = match from {
        Some(addr) => format!(" from {addr}"),
        None => String::new(),
    };
    let over = if http { " over HTTP" } else { "" };
    let params = Value::Object(shown);
    // A method name is the client's text (an unknown one reaches here
    // when refused): escaped, so it cannot forge a log line.
    let method: String = method.chars().take(MAX_SHOWN).collect();
    let method = method.escape_debug();
    match denied {
        None => format!("audit: {grant}{from} called {method} {params}{over}"),
        Some(needed) => {
            format!("audit: {grant}{from} denied {method} {params}{over}: needs role {needed}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{AuthToken, NamedToken, Role};
    use super::*;
    use serde_json::json;

    #[test]
    fn read_answers_hide_env_and_header_values_and_bodies() {
        let mut job = json!({
            "name": "a",
            "env": {"PASSWORD": "hunter2"},
            "definition": {
                "env": {"K": "v"},
                "headers": {"Authorization": "Bearer x"},
                "body": "{\"secret\":1}",
                "url": "http://h/",
            },
        });
        redact_answer("jobs.get", &mut job);
        assert_eq!(job["env"]["PASSWORD"], REDACTED);
        assert_eq!(job["definition"]["env"]["K"], REDACTED);
        assert_eq!(job["definition"]["headers"]["Authorization"], REDACTED);
        assert_eq!(job["definition"]["body"], REDACTED);
        assert_eq!(job["definition"]["url"], "http://h/", "not a secret");
        let mut page = json!({"jobs": [{"definition": {"body": "b"}}], "next": null});
        redact_answer("jobs.list", &mut page);
        assert_eq!(page["jobs"][0]["definition"]["body"], REDACTED);
        let mut list = json!([{"definition": {"env": {"A": "1"}}}]);
        redact_answer("jobs.list", &mut list);
        assert_eq!(list[0]["definition"]["env"]["A"], REDACTED);
        let mut run = json!({"body": "kept"});
        redact_answer("runs.get", &mut run);
        assert_eq!(run["body"], "kept");
    }

    #[test]
    fn the_audit_line_names_the_token_and_hides_what_may_be_secret() {
        let token = NamedToken::new("ci", AuthToken::new("s3cret"), Role::Operate);
        let grant = Grant::of(&token);
        let from: SocketAddr = "127.0.0.1:5555".parse().expect("addr");
        let params = json!({"name": "x", "args": {"password": "p"}});
        let line = audit_line(
            &grant,
            Some(from),
            "jobs.run",
            params.as_object().expect("object"),
            false,
            None,
        );
        assert_eq!(
            line,
            "audit: token \"ci\" (operate) from 127.0.0.1:5555 called jobs.run \
             {\"args\":\"<redacted>\",\"name\":\"x\"}"
        );
        let params = json!({"job": {"name": "j", "kind": "exec", "env": {"K": "v"}}});
        let line = audit_line(
            &Grant::unix(),
            None,
            "jobs.put",
            params.as_object().expect("object"),
            true,
            Some(Role::Admin),
        );
        assert!(
            line.starts_with("audit: unix (admin) denied jobs.put"),
            "{line}"
        );
        assert!(
            line.contains("\"name\":\"j\"") && !line.contains("\"v\""),
            "{line}"
        );
        assert!(line.ends_with(" over HTTP: needs role admin"), "{line}");
        let forged = audit_line(
            &grant,
            Some(from),
            "x\naudit: unix (admin) called shutdown",
            &Map::new(),
            false,
            Some(Role::Admin),
        );
        assert!(!forged.contains('\n'), "{forged}");
    }
}
