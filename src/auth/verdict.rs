//! The one [`Verdict`] type, and the functions both protocols get it
//! from: [`Gate::judge_token`] (JSON-RPC `auth`), [`Gate::judge_header`]
//! (HTTP `Authorization`) and [`judge_method`] (a method, by the client's
//! [`Grant`]: before authentication, and against the role it needs); and
//! [`line_limit`], the pre-auth line limit.
//!
//! The token checks share one core ([`Gate::judge`]): auth off → served;
//! a TCP client's check is taken from the [`WrongTokenBudget`] first
//! (spent → [`Verdict::Flood`], the token not compared); then the token
//! is compared with every token in force, each in constant time, and a
//! right one gives its check back.

use super::budget::{PeerKey, WrongTokenBudget};
use super::role::{role_for_method, Denied};
use super::{header_matches, Grant, NamedToken, Tokens, PREAUTH_MAX_LINE};
use std::net::IpAddr;

/// What a request gets from authentication. Each protocol renders it in
/// its own terms (see the table in [the module doc](super)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Served, with nothing to remember: auth is off, the connection is
    /// authenticated already (or trusted, on the Unix socket), or the
    /// method is open to strangers (`ping`); or a Unix-socket client
    /// presented the right token (it stays trusted, not a client of this
    /// one token, which a reload may change).
    Served,
    /// A TCP client presented a right token: served with that token's
    /// role, and its connection counts as authenticated with it from now
    /// on.
    Authenticated(NamedToken),
    /// No token where one is needed: refused at once (`-32001`, or 401
    /// with the challenge).
    NotAuthenticated,
    /// A wrong token: refused after [`super::AUTH_DELAY`], and nothing
    /// after it on the connection is looked at before then.
    Wrong,
    /// The [`WrongTokenBudget`] is spent: the token was not compared, and
    /// the connection is closed.
    Flood,
    /// Authenticated, but the method needs a role the client's token does
    /// not have: refused at once (`-32003`, or 403), the message naming
    /// the role needed.
    Forbidden(Denied),
}

impl Verdict {
    /// Whether the request is served ([`Verdict::Served`] or
    /// [`Verdict::Authenticated`]).
    #[inline]
    pub fn passed(&self) -> bool {
        matches!(self, Verdict::Served | Verdict::Authenticated(_))
    }
}

/// The token checks, and the [`WrongTokenBudget`] they draw on. One per
/// daemon, shared by every request worker, so the budget is one for all
/// connections and both protocols.
#[derive(Debug, Default)]
pub struct Gate {
    budget: WrongTokenBudget,
}

impl Gate {
    /// `auth {"token": token}` from a client at `peer` (`None`: the Unix
    /// socket), with `in_force` the tokens of the live settings (empty:
    /// auth is off).
    pub fn judge_token(&self, in_force: &Tokens, token: &[u8], peer: Option<IpAddr>) -> Verdict {
        self.judge(in_force, peer, |secret| secret.matches(token))
    }

    /// An HTTP request's `Authorization` header (`None`: it has none) from
    /// a client at `peer`: `Bearer TOKEN`, or `Basic` with the token as
    /// password ([`header_matches`]). Every request is judged, whatever
    /// the connection showed before.
    pub fn judge_header(
        &self,
        in_force: &Tokens,
        header: Option<&[u8]>,
        peer: Option<IpAddr>,
    ) -> Verdict {
        if !in_force.auth_on() {
            return Verdict::Served;
        }
        let Some(value) = header else {
            return Verdict::NotAuthenticated;
        };
        self.judge(in_force, peer, |secret| header_matches(secret, value))
    }

    /// The core of every token check: auth off → served; a check taken
    /// from `peer`'s budget first (none left → [`Verdict::Flood`]; the
    /// Unix socket takes none); then `presented` compares the token, and a
    /// right one gives its check back.
    fn judge(
        &self,
        in_force: &Tokens,
        peer: Option<IpAddr>,
        presented: impl FnMut(&super::AuthToken) -> bool,
    ) -> Verdict {
        if !in_force.auth_on() {
            return Verdict::Served;
        }
        let slot = match peer {
            Some(ip) => match self.budget.reserve(PeerKey::of(ip)) {
                Some(slot) => Some(slot),
                None => return Verdict::Flood,
            },
            None => None,
        };
        let Some(token) = in_force.find(presented) else {
            return Verdict::Wrong;
        };
        match slot {
            Some(slot) => {
                self.budget.refund(slot);
                Verdict::Authenticated(token.clone())
            }
            // The Unix socket: trusted already.
            None => Verdict::Served,
        }
    }
}

/// A request for `method` (a JSON-RPC method other than `auth`, which
/// [`Gate::judge_token`] judges, or the method an HTTP route calls) from
/// a client granted `grant` (`None`: it has not authenticated, with auth
/// on): before authentication only `ping` is answered; after it, the
/// method must need no more than the grant's role
/// ([`role_for_method`]).
pub fn judge_method(grant: Option<&Grant>, method: &str) -> Verdict {
    let Some(grant) = grant else {
        return if method == "ping" {
            Verdict::Served
        } else {
            Verdict::NotAuthenticated
        };
    };
    let needed = role_for_method(method);
    if grant.role >= needed {
        return Verdict::Served;
    }
    Verdict::Forbidden(Denied {
        method: method.to_string(),
        needed,
        who: grant.who.to_string(),
        has: grant.role,
    })
}

/// The longest request line (or HTTP body) of a client allowed
/// `max_line` (`max_line_bytes`): before it has authenticated (`authed`
/// false, with auth on), at most [`PREAUTH_MAX_LINE`].
#[inline]
pub fn line_limit(max_line: usize, authed: bool) -> usize {
    if authed {
        max_line
    } else {
        max_line.min(PREAUTH_MAX_LINE)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{AuthToken, Role, WRONG_TOKENS_PER_PEER, WRONG_TOKENS_PER_SECOND};
    use super::*;

    fn sesame() -> (NamedToken, Tokens) {
        let named = NamedToken::new("t", AuthToken::new("sesame"), Role::Admin);
        (named.clone(), Tokens::new(vec![named]))
    }
    use base64::Engine;

    fn tcp(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([127, 0, 0, last]))
    }

    const UNIX: Option<IpAddr> = None;

    #[test]
    fn with_auth_off_everything_is_served() {
        let gate = Gate::default();
        let off = Tokens::default();
        assert_eq!(gate.judge_token(&off, b"anything", tcp(1)), Verdict::Served);
        assert_eq!(gate.judge_header(&off, None, tcp(1)), Verdict::Served);
        assert_eq!(
            gate.judge_header(&off, Some(b"Bearer x"), tcp(1)),
            Verdict::Served
        );
    }

    #[test]
    fn a_right_token_authenticates_a_tcp_client_and_a_wrong_one_is_refused() {
        let gate = Gate::default();
        let (secret, tokens) = sesame();
        let t = &tokens;
        assert_eq!(
            gate.judge_token(t, b"sesame", tcp(1)),
            Verdict::Authenticated(secret.clone())
        );
        assert_eq!(gate.judge_token(t, b"sesam", tcp(1)), Verdict::Wrong);
        assert_eq!(gate.judge_token(t, b"", tcp(1)), Verdict::Wrong);
    }

    #[test]
    fn http_needs_the_header_on_every_request() {
        let gate = Gate::default();
        let (secret, tokens) = sesame();
        let t = &tokens;
        assert_eq!(
            gate.judge_header(t, None, tcp(1)),
            Verdict::NotAuthenticated
        );
        assert_eq!(
            gate.judge_header(t, Some(b"Bearer sesame"), tcp(1)),
            Verdict::Authenticated(secret.clone())
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("me:sesame");
        assert_eq!(
            gate.judge_header(t, Some(format!("Basic {basic}").as_bytes()), tcp(1)),
            Verdict::Authenticated(secret.clone())
        );
        assert_eq!(
            gate.judge_header(t, Some(b"Bearer nope"), tcp(1)),
            Verdict::Wrong
        );
        assert_eq!(
            gate.judge_header(t, Some(b"garbage"), tcp(1)),
            Verdict::Wrong,
            "a header that carries no token is a wrong one"
        );
    }

    #[test]
    fn both_protocols_draw_on_one_budget_and_then_close_unchecked() {
        let gate = Gate::default();
        let (secret, tokens) = sesame();
        let t = &tokens;
        for i in 0..WRONG_TOKENS_PER_PEER + WRONG_TOKENS_PER_SECOND {
            let v = if i % 2 == 0 {
                gate.judge_token(t, b"guess", tcp(1))
            } else {
                gate.judge_header(t, Some(b"Bearer guess"), tcp(1))
            };
            assert_eq!(v, Verdict::Wrong, "check {i}");
        }
        assert_eq!(gate.judge_token(t, b"guess", tcp(1)), Verdict::Flood);
        assert_eq!(
            gate.judge_token(t, b"sesame", tcp(1)),
            Verdict::Flood,
            "not even compared"
        );
        assert_eq!(
            gate.judge_header(t, Some(b"Bearer sesame"), tcp(1)),
            Verdict::Flood
        );
        // A missing header is no token: refused, but takes no check.
        assert_eq!(
            gate.judge_header(t, None, tcp(1)),
            Verdict::NotAuthenticated
        );
        // Another address still has its own share.
        assert_eq!(
            gate.judge_token(t, b"sesame", tcp(2)),
            Verdict::Authenticated(secret.clone())
        );
    }

    #[test]
    fn a_right_token_gives_its_check_back() {
        let gate = Gate::default();
        let (_, tokens) = sesame();
        let t = &tokens;
        for _ in 0..100 {
            assert!(gate.judge_token(t, b"sesame", tcp(1)).passed());
        }
        for _ in 0..WRONG_TOKENS_PER_PEER + WRONG_TOKENS_PER_SECOND {
            assert_eq!(gate.judge_token(t, b"guess", tcp(1)), Verdict::Wrong);
        }
    }

    #[test]
    fn the_unix_socket_is_never_charged_and_stays_trusted() {
        let gate = Gate::default();
        let (secret, tokens) = sesame();
        let t = &tokens;
        for _ in 0..10 * (WRONG_TOKENS_PER_PEER + WRONG_TOKENS_PER_SECOND) {
            assert_eq!(gate.judge_token(t, b"guess", UNIX), Verdict::Wrong);
        }
        assert_eq!(
            gate.judge_token(t, b"sesame", UNIX),
            Verdict::Served,
            "not made a client of this one token"
        );
        assert_eq!(
            gate.judge_token(t, b"sesame", tcp(1)),
            Verdict::Authenticated(secret.clone()),
            "TCP budgets untouched"
        );
    }

    #[test]
    fn the_right_one_of_several_tokens_authenticates_with_its_role() {
        let gate = Gate::default();
        let ci = NamedToken::new("ci", AuthToken::new("ci-s"), Role::Operate);
        let dash = NamedToken::new("dash", AuthToken::new("dash-s"), Role::Read);
        let t = Tokens::new(vec![ci.clone(), dash.clone()]);
        assert_eq!(
            gate.judge_token(&t, b"dash-s", tcp(1)),
            Verdict::Authenticated(dash)
        );
        assert_eq!(
            gate.judge_header(&t, Some(b"Bearer ci-s"), tcp(1)),
            Verdict::Authenticated(ci)
        );
        assert_eq!(gate.judge_token(&t, b"ci-", tcp(1)), Verdict::Wrong);
    }

    #[test]
    fn before_authentication_only_ping_is_answered() {
        let admin = Grant::unix();
        assert_eq!(judge_method(None, "ping"), Verdict::Served);
        for method in ["status", "shutdown", "reload", "jobs.run", "pingx"] {
            assert_eq!(judge_method(None, method), Verdict::NotAuthenticated);
            assert_eq!(judge_method(Some(&admin), method), Verdict::Served);
        }
        assert!(!Verdict::NotAuthenticated.passed());
        assert!(!Verdict::Wrong.passed());
        assert!(!Verdict::Flood.passed());
    }

    #[test]
    fn a_method_above_the_role_is_forbidden_naming_the_role() {
        let (_, tokens) = sesame();
        let mut read = Grant::of(tokens.iter().next().expect("t"));
        read.role = Role::Read;
        assert_eq!(judge_method(Some(&read), "jobs.get"), Verdict::Served);
        let Verdict::Forbidden(d) = judge_method(Some(&read), "jobs.run") else {
            panic!("forbidden");
        };
        assert_eq!(
            d.to_string(),
            "forbidden: jobs.run needs role operate (token \"t\" has read)"
        );
        let operate = Grant {
            role: Role::Operate,
            ..read
        };
        assert_eq!(judge_method(Some(&operate), "runs.cancel"), Verdict::Served);
        assert!(matches!(
            judge_method(Some(&operate), "no.such"),
            Verdict::Forbidden(Denied {
                needed: Role::Admin,
                ..
            })
        ));
    }

    #[test]
    fn strangers_get_short_lines_never_above_the_setting() {
        assert_eq!(line_limit(65536, true), 65536);
        assert_eq!(line_limit(65536, false), PREAUTH_MAX_LINE);
        assert_eq!(line_limit(100, false), 100);
    }
}
