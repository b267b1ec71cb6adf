//! From a method name and its params to the typed [`Call`] the handlers
//! answer: the method table of the protocol.
//!
//! Both decoders end here: a JSON-RPC request's `method` and `params`, and
//! the method and params the HTTP router makes of a path, a query and a
//! body. An unknown method (the `debug.*` ones included, unless
//! `TICKD_DEBUG_HOOKS=1`) is `-32601`; bad params are `-32602` naming the
//! param (see [`super::params`]); `submit` is refused (`-32003`) before its
//! params are looked at unless `daemon.allow_submit`, and `jobs.put` and
//! `jobs.delete` unless `daemon.allow_job_api`.

use super::params::Params;
use super::rpc::{ErrorCode, RpcError};
use crate::daemon::Board;
use crate::methods::call::{Call, NoParams};
use crate::methods::{job_api_allowed, submit_allowed};

/// Decodes `method` with `params`; `board` says which methods are open.
pub fn decode<'a>(method: &str, params: &'a Params, board: &Board) -> Result<Call<'a>, RpcError> {
    let call = decode_known(method, params, board);
    // Every method decoded here must be in the method list, which a test
    // holds to the role table (`crate::auth::METHOD_ROLES`): a method
    // added here alone fails every test that calls it.
    debug_assert!(
        call.is_err() || super::rpc::METHODS.contains(&method),
        "{method} is decoded but not in protocol::rpc::METHODS (nor in auth::METHOD_ROLES)"
    );
    call
}

/// [`decode`]'s table.
fn decode_known<'a>(method: &str, params: &'a Params, board: &Board) -> Result<Call<'a>, RpcError> {
    let none = |call: Call<'a>| params.decode::<NoParams>().map(|_| call);
    match method {
        "ping" => none(Call::Ping),
        "status" => none(Call::Status),
        "jobs.list" => params.decode().map(Call::JobsList),
        "jobs.get" => params.decode().map(Call::JobsGet),
        "runs.get" => params.decode().map(Call::RunsGet),
        "runs.list" => params.decode().map(Call::RunsList),
        "jobs.run" => params.decode().map(Call::JobsRun),
        "submit" => {
            submit_allowed(board)?;
            params.decode().map(|p| Call::Submit(Box::new(p)))
        }
        "jobs.put" => {
            job_api_allowed(board)?;
            params.decode().map(|p| Call::JobsPut(Box::new(p)))
        }
        "jobs.delete" => {
            job_api_allowed(board)?;
            params.decode().map(Call::JobsDelete)
        }
        "jobs.pause" => params.decode().map(Call::JobsPause),
        "jobs.resume" => params.decode().map(Call::JobsResume),
        "runs.cancel" => params.decode().map(Call::RunsCancel),
        "subscribe" => params.decode().map(Call::Subscribe),
        "runs.output" => params.decode().map(Call::RunsOutput),
        "reload" => none(Call::Reload),
        "shutdown" => none(Call::Shutdown),
        "upgrade" => none(Call::Upgrade),
        "debug.kill_worker" if board.debug_hooks => none(Call::KillWorker),
        "debug.failpoint" if board.debug_hooks => params.decode().map(Call::Failpoint),
        "debug.clock_jump" if board.debug_hooks => params.decode().map(Call::ClockJump),
        other => Err(RpcError::new(
            ErrorCode::MethodNotFound,
            format!("method not found: {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::call::{RunKey, SourceFilter, StateFilter};
    use crate::state::run::RunState;
    use crate::state::JobSource;
    use serde_json::{json, Value};
    use std::path::Path;

    fn board(daemon: &str, debug_hooks: bool) -> Board {
        let text = format!("[daemon]\n{daemon}\n");
        let config = crate::config::parse(&text, Path::new("t.toml")).expect("config");
        Board::new(config.path, config.daemon.live, debug_hooks)
    }

    fn params(v: Value) -> Params {
        Params(v.as_object().cloned().unwrap_or_default())
    }

    /// The error `method` with `given` params gets: its code and message.
    fn refusal(b: &Board, method: &str, given: Value) -> (i64, String) {
        let p = params(given);
        let e = decode(method, &p, b).expect_err("refused");
        (e.code.code(), e.message)
    }

    #[test]
    fn every_method_keeps_its_param_messages() {
        let b = board("allow_submit = true", true);
        let bad = |m: &str, given: Value, message: &str| {
            assert_eq!(
                refusal(&b, m, given.clone()),
                (-32602, message.to_string()),
                "{m} {given}"
            );
        };
        for m in ["ping", "status", "jobs.list", "reload", "shutdown"] {
            bad(
                m,
                json!({"x": 1}),
                "param `x`: is not a parameter of this method",
            );
        }
        for m in ["jobs.get", "jobs.pause", "jobs.resume"] {
            bad(m, json!({}), "param `name`: is required");
            bad(m, json!({"name": 3}), "param `name`: must be a string");
        }
        bad("jobs.run", json!({"args": 1}), "param `name`: is required");
        bad(
            "jobs.run",
            json!({"name": "a", "wait": "yes"}),
            "param `wait`: must be true or false",
        );
        bad(
            "jobs.run",
            json!({"name": "a", "args": [1]}),
            "param `args`: must be an object",
        );
        bad(
            "jobs.run",
            json!({"name": "a", "bogus": 1}),
            "param `bogus`: is not a parameter of this method",
        );
        for m in ["runs.get", "runs.cancel"] {
            bad(m, json!({}), "param `run_id`: is required");
            bad(
                m,
                json!({"run_id": true}),
                "param `run_id`: must be a string",
            );
            bad(m, json!({"run_id": -1}), "param `run_id`: must be a string");
        }
        bad(
            "runs.list",
            json!({"limit": "ten"}),
            "param `limit`: must be a non-negative integer",
        );
        let states =
            "param `state`: must be one of scheduled, queued, running, succeeded, failed, \
                      timed_out, cancelled, interrupted";
        bad(
            "runs.list",
            json!({"state": "done", "limit": "ten"}),
            states,
        );
        bad(
            "runs.list",
            json!({"state": 3}),
            "param `state`: must be a string",
        );
        bad(
            "runs.list",
            json!({"job": 1}),
            "param `job`: must be a string",
        );
        bad(
            "jobs.list",
            json!({"limit": -1}),
            "param `limit`: must be a non-negative integer",
        );
        bad(
            "jobs.list",
            json!({"after": 1}),
            "param `after`: must be a string",
        );
        bad(
            "jobs.list",
            json!({"source": "db", "prefix": 2}),
            "param `prefix`: must be a string",
        );
        bad(
            "jobs.list",
            json!({"source": "db"}),
            "param `source`: must be one of file, api",
        );
        bad(
            "runs.list",
            json!({"before": true}),
            "param `before`: must be a string",
        );
        bad("submit", json!({}), "param `job`: is required");
        bad(
            "submit",
            json!({"job": "true"}),
            "param `job`: must be an object",
        );
        let (code, message) = refusal(&b, "submit", json!({"job": {"command": []}, "wait": 1}));
        assert_eq!(code, -32602);
        assert!(message.starts_with("job.command:"), "{message}");
        bad(
            "submit",
            json!({"job": {"command": ["true"]}, "wait": 1}),
            "param `wait`: must be true or false",
        );
        let names = "param `jobs`: must be an array of job names";
        bad("subscribe", json!({"jobs": "a"}), names);
        bad("subscribe", json!({"jobs": ["a", 1]}), names);
        bad(
            "debug.clock_jump",
            json!({"ms": "x"}),
            "param `ms`: must be an integer (milliseconds)",
        );
        bad(
            "debug.failpoint",
            json!({"name": "x"}),
            "param `actions`: is required",
        );
    }

    #[test]
    fn right_params_decode_to_their_call() {
        let b = board("", false);
        let p = params(json!({}));
        assert!(matches!(decode("ping", &p, &b), Ok(Call::Ping)));
        let p = params(json!({"run_id": "nope"}));
        assert!(matches!(
            decode("runs.get", &p, &b),
            Ok(Call::RunsGet(r)) if r.run_id == RunKey::Unknown("nope".into())
        ));
        let p = params(json!({"run_id": 7}));
        assert!(matches!(
            decode("runs.cancel", &p, &b),
            Ok(Call::RunsCancel(r)) if r.run_id == RunKey::Id(7)
        ));
        let p = params(json!({"job": "a", "state": "failed", "limit": null}));
        let Ok(Call::RunsList(l)) = decode("runs.list", &p, &b) else {
            panic!("runs.list decodes");
        };
        assert_eq!(l.job, Some("a"));
        assert_eq!(l.state, Some(StateFilter(RunState::Failed)));
        assert_eq!(l.limit, None);
        let p = params(json!({"limit": null, "after": null}));
        assert!(matches!(
            decode("jobs.list", &p, &b),
            Ok(Call::JobsList(l)) if !l.paged()
        ));
        let p = params(json!({"prefix": "db.", "source": "api"}));
        assert!(matches!(
            decode("jobs.list", &p, &b),
            Ok(Call::JobsList(l)) if l.paged() && l.prefix == Some("db.")
                && l.source == Some(SourceFilter(JobSource::Api))
        ));
        let p = params(json!({"before": "17"}));
        assert!(matches!(
            decode("runs.list", &p, &b),
            Ok(Call::RunsList(l)) if l.before == Some(RunKey::Id(17))
        ));
        let p = params(json!({"jobs": null}));
        assert!(matches!(
            decode("subscribe", &p, &b),
            Ok(Call::Subscribe(s)) if s.jobs.is_none()
        ));
    }

    #[test]
    fn the_method_table_knows_every_method_name_but_auth() {
        let b = board("allow_submit = true", true);
        for &m in super::super::rpc::METHODS {
            let p = params(json!({}));
            let known =
                decode(m, &p, &b).map_or_else(|e| e.code != ErrorCode::MethodNotFound, |_| true);
            assert_eq!(known, m != "auth", "{m}");
        }
    }

    #[test]
    fn every_method_has_an_entry_in_the_role_table() {
        // A method added to the list without a role would be open to
        // admin only (the default), silently: classify it in
        // `auth::METHOD_ROLES`.
        for &m in super::super::rpc::METHODS {
            assert!(
                crate::auth::METHOD_ROLES.iter().any(|(name, _)| *name == m),
                "method {m} has no entry in auth::METHOD_ROLES"
            );
        }
    }

    #[test]
    fn closed_methods_are_refused_before_their_params() {
        let b = board("", false);
        let (code, message) = refusal(&b, "submit", json!({"bogus": 1}));
        assert_eq!(code, -32003);
        assert!(message.contains("allow_submit"), "{message}");
        for m in ["debug.kill_worker", "debug.failpoint", "debug.clock_jump"] {
            assert_eq!(
                refusal(&b, m, json!({})),
                (-32601, format!("method not found: {m}"))
            );
        }
        assert_eq!(
            refusal(&b, "auth", json!({})),
            (-32601, "method not found: auth".to_string()),
            "auth is the connection's, answered before the methods"
        );
    }
}
