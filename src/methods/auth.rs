//! `auth {token}` (answered on the request worker, for the connection's
//! own state) and the HTTP `Authorization` check.
//!
//! With `daemon.auth_token` set, a TCP client must present the token
//! before any method but `ping` and `auth`; an HTTP request must carry it
//! in `Authorization` on every path but `/healthz`. Unix-socket clients
//! are trusted: the socket file's mode decides who may connect.
//!
//! A wrong token is answered only after [`AUTH_DELAY`], which makes
//! guessing slow. The delay is a timer on the event loop (the answer is
//! parked in the connection's answer order), so it holds up nobody else,
//! not even that connection's reading. Tokens are compared in constant
//! time ([`crate::config::AuthToken::matches`]) and never logged.

use crate::daemon::counters::bump;
use crate::daemon::Shared;
use crate::protocol::rpc::Params;
use crate::protocol::{ErrorCode, RpcError};
use base64::Engine;
use serde_json::{json, Value};
use std::time::Duration;

/// How long a wrong token waits for its answer.
pub const AUTH_DELAY: Duration = Duration::from_secs(1);

/// What `auth` made of a token.
#[derive(Debug)]
pub enum AuthOutcome {
    /// The token is right (or no token is configured).
    Accepted(Value),
    /// Bad params: answered at once.
    Invalid(RpcError),
    /// A wrong token: answer after [`AUTH_DELAY`].
    Wrong(RpcError),
}

/// `auth {token}` → `{authenticated: true}`, or -32001 (delayed) for a wrong token.
pub fn auth(shared: &Shared, p: &Params) -> AuthOutcome {
    let token = match p.only(&["token"]).and_then(|()| p.str("token")) {
        Ok(t) => t,
        Err(e) => return AuthOutcome::Invalid(e),
    };
    match shared.board.auth.read().as_ref() {
        Some(secret) if !secret.matches(token.as_bytes()) => {
            // Logged by the loop, which knows the client.
            bump(&shared.board.clients.auth_failures);
            AuthOutcome::Wrong(RpcError::new(ErrorCode::NotAuthenticated, "wrong token"))
        }
        _ => AuthOutcome::Accepted(json!({ "authenticated": true })),
    }
}

/// The answer to any method but `ping` and `auth` before authentication.
pub fn not_authenticated(shared: &Shared) -> RpcError {
    bump(&shared.board.clients.unauthenticated_requests);
    RpcError::new(
        ErrorCode::NotAuthenticated,
        "not authenticated: call auth {\"token\": ...} first",
    )
}

/// What an HTTP request's `Authorization` header is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpAuth {
    /// No token configured, or the right token.
    Allowed,
    /// No usable header: answer 401 at once (a browser then prompts).
    Missing,
    /// A wrong token: answer 401 after [`AUTH_DELAY`].
    Wrong,
}

/// Checks `Authorization: Bearer TOKEN`, or `Basic base64(user:TOKEN)`
/// for browsers (any user name).
pub fn check_http(shared: &Shared, header: Option<&[u8]>) -> HttpAuth {
    let guard = shared.board.auth.read();
    let Some(secret) = guard.as_ref() else {
        return HttpAuth::Allowed;
    };
    let Some(value) = header else {
        bump(&shared.board.clients.unauthenticated_requests);
        return HttpAuth::Missing;
    };
    let right = match split_scheme(value) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"bearer") => secret.matches(rest),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"basic") => {
            basic_password(rest).is_some_and(|pw| secret.matches(&pw))
        }
        _ => false,
    };
    if right {
        HttpAuth::Allowed
    } else {
        // Logged by the loop, which knows the client.
        bump(&shared.board.clients.auth_failures);
        HttpAuth::Wrong
    }
}

/// `"Scheme rest"` → `(scheme, rest)`, spaces trimmed.
fn split_scheme(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let value = value.trim_ascii();
    let sp = value.iter().position(|&b| b == b' ')?;
    Some((&value[..sp], value[sp + 1..].trim_ascii()))
}

/// The password of a Basic credential (`base64(user:password)`).
fn basic_password(encoded: &[u8]) -> Option<Vec<u8>> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some(decoded[colon + 1..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_and_basic_passwords() {
        assert_eq!(
            split_scheme(b" Bearer  abc "),
            Some((&b"Bearer"[..], &b"abc"[..]))
        );
        assert_eq!(split_scheme(b"abc"), None);
        // base64("me:s3cret:x") — the password may contain colons.
        let enc = base64::engine::general_purpose::STANDARD.encode("me:s3cret:x");
        assert_eq!(basic_password(enc.as_bytes()), Some(b"s3cret:x".to_vec()));
        assert_eq!(basic_password(b"not base64!"), None);
    }
}
