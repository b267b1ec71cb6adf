//! What a connection has shown of its right to be served ([`Credential`]),
//! and how it is judged against the tokens in force ([`Credential::grant`]):
//! for every batch the server cuts (which carries the [`Grant`], so the
//! role is the one of the token's entry now, after any reload), every
//! `run.event` it sends a subscriber, and once for every open connection
//! when a reload changes the tokens ([`Change`]).

use super::{AuthToken, Grant, Tokens};

/// What a connection has shown of its right to be served.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A Unix-socket client: trusted by the socket file's mode.
    Trusted,
    /// A TCP client that presented this token.
    Token(AuthToken),
    /// A TCP client that presented no (right) token yet.
    Stranger,
}

/// What a change of the token in force does to one connection
/// ([`Credential::on_token_change`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Served before and after, or refused before and after.
    Unchanged,
    /// Served before, not now (auth turned on, or the token it presented
    /// was replaced): a stranger from now, with the pre-auth limits again,
    /// and a subscriber's events are held until it authenticates.
    Lost,
    /// Refused before, served now (auth turned off): served at once, a
    /// subscriber's events flow again.
    Regained,
}

impl Credential {
    /// What a connection accepted on the Unix socket (`unix`) or over TCP
    /// starts with: trusted, or a stranger.
    pub fn at_accept(unix: bool) -> Credential {
        if unix {
            Credential::Trusted
        } else {
            Credential::Stranger
        }
    }

    /// What the connection is granted under `current`, the tokens in
    /// force now: admin on the Unix socket, and over TCP with auth off;
    /// with auth on, the role of the token it presented if that token is
    /// still in force (a reload that turns auth on or removes the token
    /// makes it authenticate again; one that changes the token's role
    /// gives it the new role), else nothing.
    pub fn grant(&self, current: &Tokens) -> Option<Grant> {
        match self {
            Credential::Trusted => Some(Grant::unix()),
            _ if !current.auth_on() => Some(Grant::open()),
            Credential::Token(t) => current.find_secret(t).map(Grant::of),
            Credential::Stranger => None,
        }
    }

    /// Whether the connection is served under `current` at all.
    pub fn admits(&self, current: &Tokens) -> bool {
        self.grant(current).is_some()
    }

    /// What the tokens in force changing from `old` to `new` do to this
    /// connection (a role changed is no change here: the next batch is
    /// judged by the new role).
    pub fn on_token_change(&self, old: &Tokens, new: &Tokens) -> Change {
        match (self.admits(old), self.admits(new)) {
            (true, false) => Change::Lost,
            (false, true) => Change::Regained,
            _ => Change::Unchanged,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{NamedToken, Role};
    use super::*;

    fn one(name: &str, secret: &str, role: Role) -> Tokens {
        Tokens::new(vec![NamedToken::new(name, AuthToken::new(secret), role)])
    }

    #[test]
    fn credentials_are_judged_by_the_tokens_in_force() {
        let old = one("a", "old", Role::Admin);
        let new = one("a", "new", Role::Admin);
        let off = Tokens::default();
        let holder = Credential::Token(AuthToken::new("old"));
        assert!(holder.admits(&old));
        assert!(!holder.admits(&new), "token changed by a reload");
        assert_eq!(holder.grant(&off), Some(Grant::open()), "auth turned off");
        assert!(!Credential::Stranger.admits(&old), "auth turned on");
        assert!(Credential::Stranger.admits(&off));
        assert_eq!(Credential::Trusted.grant(&new), Some(Grant::unix()));
    }

    #[test]
    fn a_connection_gets_the_role_its_token_has_now() {
        let holder = Credential::Token(AuthToken::new("s"));
        let admin = one("ci", "s", Role::Admin);
        let read = one("ci", "s", Role::Read);
        assert_eq!(holder.grant(&admin).map(|g| g.role), Some(Role::Admin));
        assert_eq!(holder.grant(&read).map(|g| g.role), Some(Role::Read));
        assert_eq!(holder.on_token_change(&admin, &read), Change::Unchanged);
    }

    #[test]
    fn unix_clients_start_trusted_and_tcp_clients_as_strangers() {
        let tokens = one("t", "t", Role::Read);
        assert!(Credential::at_accept(true).admits(&tokens));
        assert!(!Credential::at_accept(false).admits(&tokens));
    }

    #[test]
    fn a_token_change_takes_and_gives_back_only_what_it_changes() {
        let (a, b) = (one("a", "a", Role::Admin), one("b", "b", Role::Read));
        let off = Tokens::default();
        let holder = Credential::Token(AuthToken::new("a"));
        assert_eq!(holder.on_token_change(&a, &b), Change::Lost);
        assert_eq!(holder.on_token_change(&b, &a), Change::Regained);
        assert_eq!(holder.on_token_change(&a, &a), Change::Unchanged);
        assert_eq!(holder.on_token_change(&a, &off), Change::Unchanged);
        let stranger = Credential::Stranger;
        assert_eq!(stranger.on_token_change(&off, &a), Change::Lost);
        assert_eq!(stranger.on_token_change(&a, &off), Change::Regained);
        assert_eq!(stranger.on_token_change(&a, &b), Change::Unchanged);
        for (old, new) in [(&off, &a), (&a, &b), (&b, &off)] {
            assert_eq!(
                Credential::Trusted.on_token_change(old, new),
                Change::Unchanged,
                "the Unix socket is never re-judged"
            );
        }
    }
}
