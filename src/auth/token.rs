//! The shared secret ([`AuthToken`]) and the one comparison every token
//! check goes through ([`AuthToken::matches`], constant time).
//!
//! The token comes from `auth_token` or `auth_token_file` (read and
//! checked by the config). Nothing here prints it:
//! `Debug` shows `AuthToken(<redacted>)`, so a config or a verdict in a
//! log line never leaks it, and no log line of tickd names a token a
//! client sent.

use std::fmt;

/// The shared secret of `auth_token` / `auth_token_file`.
///
/// `Debug` prints `AuthToken(<redacted>)`, so logging a config never leaks
/// it, and [`AuthToken::matches`] compares in constant time. Equality
/// (which a reload uses to tell whether the token changed, and the server
/// to tell whether a connection authenticated under the token in force)
/// goes through `matches` too, so no comparison of a secret ever stops at
/// the first differing byte.
#[derive(Clone)]
pub struct AuthToken(String);

impl PartialEq for AuthToken {
    fn eq(&self, other: &Self) -> bool {
        self.matches(other.0.as_bytes())
    }
}

impl Eq for AuthToken {}

impl AuthToken {
    /// Wraps a token (tests and `auth_token`).
    pub fn new(token: impl Into<String>) -> Self {
        AuthToken(token.into())
    }

    /// Whether `given` is the token. The time taken depends only on the
    /// length of `given`, never on where it first differs, so a client
    /// cannot guess the token byte by byte from answer times.
    pub fn matches(&self, given: &[u8]) -> bool {
        let secret = self.0.as_bytes();
        let mut diff = secret.len() ^ given.len();
        if secret.is_empty() {
            return false;
        }
        for (i, &b) in given.iter().enumerate() {
            diff |= usize::from(b ^ secret[i % secret.len()]);
        }
        std::hint::black_box(diff) == 0
    }
}

impl fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison_needs_the_exact_token() {
        let t = AuthToken::new("secret");
        assert!(t.matches(b"secret"));
        for wrong in [&b""[..], b"secre", b"secretx", b"Secret", b"secretsecret"] {
            assert!(!t.matches(wrong), "{wrong:?}");
        }
    }

    #[test]
    fn an_empty_token_matches_nothing_and_debug_hides_the_secret() {
        assert!(!AuthToken::new("").matches(b""));
        assert_eq!(
            format!("{:?}", AuthToken::new("sesame")),
            "AuthToken(<redacted>)"
        );
    }
}
