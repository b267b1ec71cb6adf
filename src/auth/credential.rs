//! What a connection has shown of its right to be served ([`Credential`]),
//! and how it is judged against the token in force: for every batch the
//! server cuts, every `run.event` it sends a subscriber, and once for every
//! open connection when a reload changes the token ([`Change`]).

use super::AuthToken;

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

    /// Whether the connection is served under `current`, the token in
    /// force now: always with auth off, and with auth on only if it
    /// presented that very token (a reload that turns auth on or changes
    /// the token makes it authenticate again).
    pub fn admits(&self, current: Option<&AuthToken>) -> bool {
        match (self, current) {
            (Credential::Trusted, _) | (_, None) => true,
            (Credential::Token(t), Some(c)) => t == c,
            (Credential::Stranger, Some(_)) => false,
        }
    }

    /// What the token in force changing from `old` to `new` does to this
    /// connection.
    pub fn on_token_change(&self, old: Option<&AuthToken>, new: Option<&AuthToken>) -> Change {
        match (self.admits(old), self.admits(new)) {
            (true, false) => Change::Lost,
            (false, true) => Change::Regained,
            _ => Change::Unchanged,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_judged_by_the_token_in_force() {
        let old = AuthToken::new("old");
        let new = AuthToken::new("new");
        let holder = Credential::Token(old.clone());
        assert!(holder.admits(Some(&old)));
        assert!(!holder.admits(Some(&new)), "token changed by a reload");
        assert!(holder.admits(None), "auth turned off");
        assert!(!Credential::Stranger.admits(Some(&old)), "auth turned on");
        assert!(Credential::Stranger.admits(None));
        assert!(Credential::Trusted.admits(Some(&new)));
    }

    #[test]
    fn unix_clients_start_trusted_and_tcp_clients_as_strangers() {
        let token = AuthToken::new("t");
        assert!(Credential::at_accept(true).admits(Some(&token)));
        assert!(!Credential::at_accept(false).admits(Some(&token)));
    }

    #[test]
    fn a_token_change_takes_and_gives_back_only_what_it_changes() {
        let (a, b) = (AuthToken::new("a"), AuthToken::new("b"));
        let holder = Credential::Token(a.clone());
        assert_eq!(holder.on_token_change(Some(&a), Some(&b)), Change::Lost);
        assert_eq!(holder.on_token_change(Some(&b), Some(&a)), Change::Regained);
        assert_eq!(
            holder.on_token_change(Some(&a), Some(&a)),
            Change::Unchanged
        );
        assert_eq!(holder.on_token_change(Some(&a), None), Change::Unchanged);
        let stranger = Credential::Stranger;
        assert_eq!(stranger.on_token_change(None, Some(&a)), Change::Lost);
        assert_eq!(stranger.on_token_change(Some(&a), None), Change::Regained);
        assert_eq!(
            stranger.on_token_change(Some(&a), Some(&b)),
            Change::Unchanged
        );
        for (old, new) in [(None, Some(&a)), (Some(&a), Some(&b)), (Some(&b), None)] {
            assert_eq!(
                Credential::Trusted.on_token_change(old, new),
                Change::Unchanged,
                "the Unix socket is never re-judged"
            );
        }
    }
}
