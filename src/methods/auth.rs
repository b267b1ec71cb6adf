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
//! parked in the connection's answer order), so it holds up nobody else;
//! that connection's later requests are not even looked at until it has
//! passed (see [`crate::requests`]), so one connection checks at most one
//! token per [`AUTH_DELAY`], however many it pipelines. Across all clients,
//! at most [`WRONG_TOKENS_PER_SECOND`] wrong tokens are checked per second
//! ([`WrongTokenBudget`]); beyond that, a client presenting a token is
//! disconnected without the token being checked, so many connections
//! guessing in parallel gain nothing either. Tokens are compared in
//! constant time ([`crate::config::AuthToken::matches`]) and never logged.

use crate::config::AuthToken;
use crate::daemon::counters::bump;
use crate::daemon::Shared;
use crate::protocol::rpc::Params;
use crate::protocol::{ErrorCode, RpcError};
use base64::Engine;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// How long a wrong token waits for its answer.
pub const AUTH_DELAY: Duration = Duration::from_secs(1);

/// Most wrong tokens checked per second, all clients together.
pub const WRONG_TOKENS_PER_SECOND: u32 = 20;

/// Logged when a client is dropped by the [`WrongTokenBudget`].
pub const FLOOD_CLOSE: &str =
    "too many wrong tokens across all clients this second; token not checked";

/// The global budget of wrong tokens: a one-second window and the wrong
/// tokens seen in it. One short lock per token presented (never per
/// request), so it costs nothing on the common path.
#[derive(Debug)]
pub struct WrongTokenBudget {
    window: Mutex<(Instant, u32)>,
}

impl Default for WrongTokenBudget {
    fn default() -> Self {
        WrongTokenBudget {
            window: Mutex::new((Instant::now(), 0)),
        }
    }
}

impl WrongTokenBudget {
    /// Takes one check from the current window before a token is compared,
    /// or `None` when the window is spent. Taking it first, under the one
    /// lock, means request threads checking tokens at the same moment can
    /// never check more than the budget between them.
    fn reserve(&self) -> Option<BudgetSlot> {
        let mut w = self.window.lock();
        let now = Instant::now();
        if now.saturating_duration_since(w.0) >= Duration::from_secs(1) {
            *w = (now, 0);
        }
        if w.1 >= WRONG_TOKENS_PER_SECOND {
            return None;
        }
        w.1 += 1;
        Some(BudgetSlot { window: w.0 })
    }

    /// Gives a slot back: the token was right, and only wrong ones count.
    /// A slot of a window that has ended meanwhile is not given back.
    fn refund(&self, slot: BudgetSlot) {
        let mut w = self.window.lock();
        if w.0 == slot.window {
            w.1 = w.1.saturating_sub(1);
        }
    }
}

/// One token check taken from a [`WrongTokenBudget`] window.
#[derive(Debug)]
struct BudgetSlot {
    window: Instant,
}

/// What `auth` made of a token.
#[derive(Debug)]
pub enum AuthOutcome {
    /// The token is right (the token, to remember which one the
    /// connection authenticated with), or no token is configured (`None`).
    Accepted(Value, Option<AuthToken>),
    /// Bad params: answered at once.
    Invalid(RpcError),
    /// A wrong token: answer after [`AUTH_DELAY`].
    Wrong(RpcError),
    /// The [`WrongTokenBudget`] is spent: close without checking.
    Flood,
}

/// `auth {token}` → `{authenticated: true}`, or -32001 (delayed) for a wrong token.
pub fn auth(shared: &Shared, p: &Params) -> AuthOutcome {
    let token = match p.only(&["token"]).and_then(|()| p.str("token")) {
        Ok(t) => t,
        Err(e) => return AuthOutcome::Invalid(e),
    };
    let accepted = json!({ "authenticated": true });
    let guard = shared.board.auth.read();
    let Some(secret) = guard.as_ref() else {
        return AuthOutcome::Accepted(accepted, None);
    };
    let Some(slot) = reserve_check(shared) else {
        return AuthOutcome::Flood;
    };
    if secret.matches(token.as_bytes()) {
        shared.board.clients.wrong_tokens.refund(slot);
        return AuthOutcome::Accepted(accepted, Some(secret.clone()));
    }
    // Logged by the loop, which knows the client.
    wrong_token(shared);
    AuthOutcome::Wrong(RpcError::new(ErrorCode::NotAuthenticated, "wrong token"))
}

/// A check from the global budget, taken before the token is compared (a
/// right token gives it back); counts the refusal when there is none.
fn reserve_check(shared: &Shared) -> Option<BudgetSlot> {
    let slot = shared.board.clients.wrong_tokens.reserve();
    if slot.is_none() {
        bump(&shared.board.clients.auth_flood_closed);
    }
    slot
}

/// Counts a wrong token (its budget slot was taken by [`reserve_check`]).
fn wrong_token(shared: &Shared) {
    bump(&shared.board.clients.auth_failures);
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
    /// The [`WrongTokenBudget`] is spent: close without checking.
    Flood,
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
    let Some(slot) = reserve_check(shared) else {
        return HttpAuth::Flood;
    };
    if header_matches(secret, value) {
        shared.board.clients.wrong_tokens.refund(slot);
        HttpAuth::Allowed
    } else {
        // Logged by the loop, which knows the client.
        wrong_token(shared);
        HttpAuth::Wrong
    }
}

/// Whether an `Authorization` value carries `secret` (Bearer, or the
/// password of Basic). Counts nothing: the loop also uses it to lift the
/// pre-auth limits for a request that carries the right token.
pub fn header_matches(secret: &AuthToken, value: &[u8]) -> bool {
    match split_scheme(value) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"bearer") => secret.matches(rest),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"basic") => {
            basic_password(rest).is_some_and(|pw| secret.matches(&pw))
        }
        _ => false,
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
    fn the_wrong_token_budget_refills_each_second() {
        let b = WrongTokenBudget::default();
        for _ in 0..WRONG_TOKENS_PER_SECOND {
            assert!(b.reserve().is_some());
        }
        assert!(b.reserve().is_none());
        // A window that began a second ago is over.
        b.window.lock().0 -= Duration::from_secs(1);
        assert!(b.reserve().is_some());
    }

    #[test]
    fn a_right_token_gives_its_check_back_but_not_into_a_new_window() {
        let b = WrongTokenBudget::default();
        for _ in 0..WRONG_TOKENS_PER_SECOND - 1 {
            assert!(b.reserve().is_some());
        }
        let last = b.reserve().expect("the last check of the window");
        assert!(b.reserve().is_none());
        b.refund(last);
        let again = b.reserve().expect("a right token's check is given back");
        b.window.lock().0 -= Duration::from_secs(1);
        assert!(b.reserve().is_some(), "new window");
        let count = b.window.lock().1;
        b.refund(again);
        assert_eq!(
            b.window.lock().1,
            count,
            "an old window's slot is not refunded"
        );
    }

    #[test]
    fn threads_racing_for_the_budget_never_check_more_than_it_allows() {
        let b = std::sync::Arc::new(WrongTokenBudget::default());
        let start = std::sync::Arc::new(std::sync::Barrier::new(8));
        let taken: u32 = (0..8)
            .map(|_| {
                let (b, start) = (b.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    (0..10).filter(|_| b.reserve().is_some()).count() as u32
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .sum();
        // 80 attempts within one window (they take microseconds, the
        // window is a second; a window that rolls over mid-test allows at
        // most one more budget).
        assert!(
            taken == WRONG_TOKENS_PER_SECOND || taken == 2 * WRONG_TOKENS_PER_SECOND,
            "{taken} checks"
        );
    }

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
