//! Roles on requests, for both answerers: what one HTTP request is
//! granted (from its own `Authorization` header), the role the method its
//! route calls needs (403 naming it, see [`crate::auth::ROUTE_ROLES`]),
//! the audit log line of a request that changes something, and the read
//! role's redaction of job definitions ([`redact`], JSON-RPC's too). Every
//! decision is [`crate::auth`]'s; this file applies it.

use crate::auth::{self, Grant, Role, Verdict};
use crate::daemon::{self, Shared};
use crate::methods::Outcome;
use crate::protocol::{ErrorCode, RpcError};
use serde_json::{Map, Value};
use std::net::{IpAddr, SocketAddr};

/// Who sent an HTTP request.
pub(super) struct Caller<'a> {
    /// Its address, to which wrong tokens are charged (`None`: the Unix
    /// socket).
    pub peer: Option<IpAddr>,
    /// Its address and port, for the audit log.
    pub addr: Option<SocketAddr>,
    /// What its connection was granted when the batch was cut.
    pub conn: Option<&'a Grant>,
}

/// What a request that passed the token check (`verdict`) is granted:
/// its own token's role; with auth off (or on the Unix socket), what the
/// connection has.
pub(super) fn of_request(verdict: &Verdict, caller: &Caller<'_>) -> Grant {
    match verdict {
        Verdict::Authenticated(token) => Grant::of(token),
        _ => caller.conn.cloned().unwrap_or_else(Grant::open),
    }
}

/// Whether `grant` may call `method` with `params`: a refused one is
/// counted, logged as denied, and answered 403 naming the role needed.
pub(super) fn check(
    shared: &Shared,
    grant: &Grant,
    caller: &Caller<'_>,
    method: &str,
    params: &Map<String, Value>,
) -> Result<(), RpcError> {
    let verdict = auth::judge_method(Some(grant), method);
    if let Verdict::Forbidden(denied) = &verdict {
        shared.board.clients.count(&verdict);
        let line = auth::audit_line(
            grant,
            caller.addr,
            method,
            params,
            true,
            Some(denied.needed),
        );
        log::info!("{line}");
        return Err(RpcError::new(ErrorCode::Forbidden, denied.to_string()));
    }
    Ok(())
}

/// Writes the audit log line of a request for `method` (its params
/// decoded) if it changes something.
pub(super) fn audit(grant: &Grant, caller: &Caller<'_>, method: &str, params: &Map<String, Value>) {
    if auth::changes_state(method) {
        let line = auth::audit_line(grant, caller.addr, method, params, true, None);
        log::info!("{line}");
    }
}

/// The answer to `method` as `grant` may see it: for a read token, the
/// job definitions' secrets hidden ([`auth::redact_answer`]); for any
/// other, as it is.
pub(super) fn redact(grant: Option<&Grant>, method: &str, outcome: Outcome) -> Outcome {
    let read = grant.is_some_and(|g| g.role == Role::Read);
    if !read || !auth::shows_definitions(method) {
        return outcome;
    }
    let value = match outcome {
        Outcome::Answer(Ok(v)) => Ok(v),
        Outcome::Encoded(Ok(raw)) => serde_json::from_str::<Value>(raw.get())
            .map_err(|e| daemon::Error::Internal(e.to_string())),
        other => return other,
    };
    Outcome::Answer(value.map(|mut v| {
        auth::redact_answer(method, &mut v);
        v
    }))
}
