//! Roles on HTTP requests: what one request is granted (from its own
//! `Authorization` header), the role the method its route calls needs
//! (403 naming it, see [`crate::auth::ROUTE_ROLES`]), the audit log line
//! of a request that changes something, and the read role's redaction of
//! job definitions. Every decision is [`crate::auth`]'s; this file
//! applies it to a routed request.

use crate::auth::{self, Grant, Role, Verdict};
use crate::daemon::Shared;
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

/// Whether the answer to `method` must have its job definitions' secrets
/// hidden from `grant` (a read token).
pub(super) fn redacts(grant: Option<&Grant>, method: &str) -> bool {
    grant.is_some_and(|g| g.role == Role::Read) && auth::shows_definitions(method)
}
