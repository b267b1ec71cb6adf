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
//! passed (the request layer holds them back), so one connection checks at most one
//! token per [`AUTH_DELAY`], however many it pipelines. Across connections,
//! the [`WrongTokenBudget`] bounds how many wrong tokens are checked per
//! second: each client address has its own [`WRONG_TOKENS_PER_PEER`], and
//! only beyond that is a token charged to the [`WRONG_TOKENS_PER_SECOND`]
//! shared by all. A client presenting a token when both are spent is
//! disconnected without the token being checked, so many connections
//! guessing in parallel gain nothing, and one address guessing hard cannot
//! lock out token holders at other addresses (they use their own share
//! first, and a right token gives its check back). The Unix socket is
//! trusted and never charged. Tokens are compared in constant time
//! ([`crate::config::AuthToken::matches`]) and never logged.

use super::Handlers;
use crate::config::AuthToken;
use crate::daemon::counters::bump;
use crate::daemon::Shared;
use base64::Engine;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long a wrong token waits for its answer.
pub const AUTH_DELAY: Duration = Duration::from_secs(1);

/// Wrong tokens checked per second for one client address before its
/// tokens are charged to the shared [`WRONG_TOKENS_PER_SECOND`].
pub const WRONG_TOKENS_PER_PEER: u32 = 5;

/// Wrong tokens checked per second beyond each address's own share, all
/// addresses together.
pub const WRONG_TOKENS_PER_SECOND: u32 = 20;

/// Client addresses given their own share in one second. Past that many
/// (a flood from more addresses than this within a second), a new
/// address's tokens are charged to the shared budget only. Bounds the
/// table to about 200 KiB.
pub const TRACKED_PEERS: usize = 4096;

/// The answer to a wrong token (`-32001`, or 401 over HTTP).
pub const WRONG_TOKEN: &str = "wrong token";

/// The answer to any method but `ping` and `auth` before authentication.
pub const NOT_AUTHENTICATED: &str = "not authenticated: call auth {\"token\": ...} first";

/// Logged when a client is dropped by the [`WrongTokenBudget`].
pub const FLOOD_CLOSE: &str = "too many wrong tokens this second, from this address and from \
     all clients together; token not checked";

/// Whose share a wrong token is charged to: an IPv4 address, or the /64
/// prefix of an IPv6 address (one host usually holds a whole /64, so a
/// share per IPv6 address would give one attacker billions of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerKey {
    /// An IPv4 client (or an IPv4-mapped IPv6 one).
    V4(u32),
    /// The first 64 bits of an IPv6 client's address.
    V6(u64),
}

impl PeerKey {
    /// The share `ip` is charged to.
    pub fn of(ip: IpAddr) -> PeerKey {
        match ip {
            IpAddr::V4(v4) => PeerKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => PeerKey::V4(u32::from(v4)),
                None => PeerKey::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// The budget of wrong tokens: a one-second window, the checks each
/// address took from its own share in it, and those taken from the shared
/// one. One short lock per token presented (never per request), so it
/// costs nothing on the common path.
#[derive(Debug)]
pub struct WrongTokenBudget {
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    shared: u32,
    peers: HashMap<PeerKey, u32>,
}

impl Default for WrongTokenBudget {
    fn default() -> Self {
        WrongTokenBudget {
            window: Mutex::new(Window {
                started: Instant::now(),
                shared: 0,
                peers: HashMap::new(),
            }),
        }
    }
}

impl WrongTokenBudget {
    /// Takes one check before a token from `peer` is compared: from the
    /// address's own share, else from the shared one; `None` when both
    /// are spent. Taking it first, under the one lock, means request
    /// threads checking tokens at the same moment can never check more
    /// than the budget between them.
    fn reserve(&self, peer: PeerKey) -> Option<BudgetSlot> {
        let mut w = self.window.lock();
        let now = Instant::now();
        if now.saturating_duration_since(w.started) >= Duration::from_secs(1) {
            w.started = now;
            w.shared = 0;
            // Keeps the table's memory (bounded by TRACKED_PEERS).
            w.peers.clear();
        }
        let tracked = w.peers.len() < TRACKED_PEERS || w.peers.contains_key(&peer);
        if tracked {
            let own = w.peers.entry(peer).or_insert(0);
            if *own < WRONG_TOKENS_PER_PEER {
                *own += 1;
                return Some(BudgetSlot {
                    window: w.started,
                    from: Some(peer),
                });
            }
        }
        if w.shared >= WRONG_TOKENS_PER_SECOND {
            return None;
        }
        w.shared += 1;
        Some(BudgetSlot {
            window: w.started,
            from: None,
        })
    }

    /// Gives a slot back: the token was right, and only wrong ones count.
    /// A slot of a window that has ended meanwhile is not given back.
    fn refund(&self, slot: BudgetSlot) {
        let mut w = self.window.lock();
        if w.started != slot.window {
            return;
        }
        match slot.from {
            Some(peer) => {
                if let Some(own) = w.peers.get_mut(&peer) {
                    *own = own.saturating_sub(1);
                }
            }
            None => w.shared = w.shared.saturating_sub(1),
        }
    }
}

/// One token check taken from a [`WrongTokenBudget`] window: from an
/// address's own share, or (`None`) from the shared one.
#[derive(Debug)]
struct BudgetSlot {
    window: Instant,
    from: Option<PeerKey>,
}

/// The params of `auth {token}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthParams<'a> {
    /// The token presented.
    pub token: &'a str,
}

/// What `auth` made of a token.
#[derive(Debug)]
pub enum AuthOutcome {
    /// The token is right (the token, to remember which one the
    /// connection authenticated with), or no token is configured (`None`).
    Accepted(Value, Option<AuthToken>),
    /// A wrong token: answer [`WRONG_TOKEN`] after [`AUTH_DELAY`].
    Wrong,
    /// The [`WrongTokenBudget`] is spent: close without checking.
    Flood,
}

/// `auth {token}` → `{authenticated: true}`, or a wrong token (answered
/// after the delay). `peer` is the client's address (`None` on the Unix
/// socket, which is never charged to the [`WrongTokenBudget`]).
pub fn auth(h: &Handlers, p: AuthParams<'_>, peer: Option<IpAddr>) -> AuthOutcome {
    let shared = &*h.shared;
    let token = p.token;
    let accepted = json!({ "authenticated": true });
    let live = shared.board.live.read();
    let Some(secret) = live.auth_token.as_ref() else {
        return AuthOutcome::Accepted(accepted, None);
    };
    let slot = match peer {
        Some(ip) => match reserve_check(h, ip) {
            Some(slot) => Some(slot),
            None => return AuthOutcome::Flood,
        },
        None => None,
    };
    if secret.matches(token.as_bytes()) {
        if let Some(slot) = slot {
            h.wrong_tokens.refund(slot);
        }
        return AuthOutcome::Accepted(accepted, Some(secret.clone()));
    }
    // Logged by the loop, which knows the client.
    wrong_token(shared);
    AuthOutcome::Wrong
}

/// A check from the budget of `peer`'s address, taken before the token is
/// compared (a right token gives it back); counts the refusal when there
/// is none.
fn reserve_check(h: &Handlers, peer: IpAddr) -> Option<BudgetSlot> {
    let slot = h.wrong_tokens.reserve(PeerKey::of(peer));
    if slot.is_none() {
        bump(&h.shared.board.clients.auth_flood_closed);
    }
    slot
}

/// Counts a wrong token (its budget slot was taken by [`reserve_check`]).
fn wrong_token(shared: &Shared) {
    bump(&shared.board.clients.auth_failures);
}

/// Counts a request refused before authentication (answered
/// [`NOT_AUTHENTICATED`]).
pub fn refuse_unauthenticated(shared: &Shared) {
    bump(&shared.board.clients.unauthenticated_requests);
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
/// for browsers (any user name), from a client at `peer` (charged to its
/// address's share of the [`WrongTokenBudget`] first).
pub fn check_http(h: &Handlers, header: Option<&[u8]>, peer: Option<IpAddr>) -> HttpAuth {
    let shared = &*h.shared;
    let live = shared.board.live.read();
    let Some(secret) = live.auth_token.as_ref() else {
        return HttpAuth::Allowed;
    };
    let Some(value) = header else {
        bump(&shared.board.clients.unauthenticated_requests);
        return HttpAuth::Missing;
    };
    let slot = match peer {
        Some(ip) => match reserve_check(h, ip) {
            Some(slot) => Some(slot),
            None => return HttpAuth::Flood,
        },
        None => None,
    };
    if header_matches(secret, value) {
        if let Some(slot) = slot {
            h.wrong_tokens.refund(slot);
        }
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

    fn v4(last: u8) -> PeerKey {
        PeerKey::of(IpAddr::from([127, 0, 0, last]))
    }

    /// Moves the window's start a second back: the next check opens a new one.
    fn age(b: &WrongTokenBudget) {
        b.window.lock().started -= Duration::from_secs(1);
    }

    #[test]
    fn the_wrong_token_budget_refills_each_second() {
        let b = WrongTokenBudget::default();
        for _ in 0..WRONG_TOKENS_PER_PEER + WRONG_TOKENS_PER_SECOND {
            assert!(b.reserve(v4(1)).is_some());
        }
        assert!(b.reserve(v4(1)).is_none());
        age(&b);
        assert!(b.reserve(v4(1)).is_some());
    }

    #[test]
    fn each_address_has_its_own_share_before_the_shared_one() {
        let b = WrongTokenBudget::default();
        // One address spends its share and the shared one...
        for _ in 0..WRONG_TOKENS_PER_PEER + WRONG_TOKENS_PER_SECOND {
            assert!(b.reserve(v4(1)).is_some());
        }
        assert!(b.reserve(v4(1)).is_none());
        // ...every other address still has its own.
        for last in 2..10 {
            for _ in 0..WRONG_TOKENS_PER_PEER {
                assert!(b.reserve(v4(last)).is_some(), "127.0.0.{last}");
            }
            assert!(b.reserve(v4(last)).is_none(), "127.0.0.{last}");
        }
    }

    #[test]
    fn ipv6_shares_go_by_64_bit_prefix_and_mapped_v4_by_address() {
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(PeerKey::of(a), PeerKey::of(b));
        assert_ne!(PeerKey::of(a), PeerKey::of(c));
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().expect("ip");
        assert_eq!(PeerKey::of(mapped), v4(2));
    }

    #[test]
    fn past_the_tracked_addresses_tokens_go_to_the_shared_budget() {
        let b = WrongTokenBudget::default();
        for i in 0..TRACKED_PEERS as u32 {
            assert!(b.reserve(PeerKey::V4(i)).is_some());
        }
        assert_eq!(b.window.lock().peers.len(), TRACKED_PEERS);
        // A new address is not tracked: it draws on the shared budget.
        let stranger = PeerKey::V4(u32::MAX);
        for _ in 0..WRONG_TOKENS_PER_SECOND {
            assert!(b.reserve(stranger).is_some());
        }
        assert!(b.reserve(stranger).is_none());
        assert_eq!(b.window.lock().peers.len(), TRACKED_PEERS, "bounded");
        // A tracked one still has the rest of its own share.
        assert!(b.reserve(PeerKey::V4(0)).is_some());
        age(&b);
        assert!(
            b.reserve(stranger).is_some(),
            "a new window forgets them all"
        );
        assert_eq!(b.window.lock().peers.len(), 1);
    }

    #[test]
    fn a_right_token_gives_its_check_back_but_not_into_a_new_window() {
        let b = WrongTokenBudget::default();
        for _ in 0..WRONG_TOKENS_PER_PEER - 1 {
            assert!(b.reserve(v4(1)).is_some());
        }
        let own = b.reserve(v4(1)).expect("the share's last check");
        b.refund(own);
        assert_eq!(b.window.lock().peers[&v4(1)], WRONG_TOKENS_PER_PEER - 1);
        let own = b.reserve(v4(1)).expect("given back");
        let shared = b.reserve(v4(1)).expect("from the shared budget");
        assert_eq!(b.window.lock().shared, 1);
        b.refund(shared);
        assert_eq!(b.window.lock().shared, 0, "given back to the shared budget");
        age(&b);
        assert!(b.reserve(v4(1)).is_some(), "new window");
        b.refund(own);
        assert_eq!(
            b.window.lock().peers[&v4(1)],
            1,
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
                    (0..10).filter(|_| b.reserve(v4(1)).is_some()).count() as u32
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .sum();
        // 80 attempts within one window (they take microseconds, the
        // window is a second; a window that rolls over mid-test allows at
        // most one more budget).
        let budget = WRONG_TOKENS_PER_PEER + WRONG_TOKENS_PER_SECOND;
        assert!(taken == budget || taken == 2 * budget, "{taken} checks");
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
