//! The tokens in force ([`Tokens`]: each a [`NamedToken`] with its name
//! and [`Role`]), and what a served request is granted ([`Grant`]: a role
//! and who holds it, for refusals and the audit log).
//!
//! The set comes from the config: `daemon.auth_token` / `auth_token_file`
//! as an admin token named [`LEGACY_NAME`], then each `[[tokens]]` table
//! (names and secrets unique, checked by the config). An empty set means
//! auth is off. A secret is found in the set by comparing it with every
//! token, each in constant time, none skipped ([`Tokens::find`]), so the
//! answer time does not tell which token came close. So a look-up costs
//! one short comparison per token in force: the loop makes one for every
//! batch it cuts and every event it sends a subscriber, which stays cheap
//! for the handful of tokens a daemon has (the config does not cap their
//! number; hundreds would be felt by a busy subscriber fan-out).

use super::{AuthToken, Role};
use std::fmt;
use std::sync::Arc;

/// The name `daemon.auth_token` (or `auth_token_file`) goes by: in the
/// audit log, in refusals and in `status`.
pub const LEGACY_NAME: &str = "auth_token";

/// One token: its name (not secret: logged), its secret (never logged)
/// and its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedToken {
    /// The `name` of its `[[tokens]]` table ([`LEGACY_NAME`] for
    /// `daemon.auth_token`).
    pub name: Arc<str>,
    /// The secret.
    pub secret: AuthToken,
    /// What it may do.
    pub role: Role,
}

impl NamedToken {
    /// A token named `name` with `role`.
    pub fn new(name: &str, secret: AuthToken, role: Role) -> NamedToken {
        NamedToken {
            name: name.into(),
            secret,
            role,
        }
    }
}

/// The tokens in force, in config order; empty: auth is off. Equality
/// (a reload's diff, the server's "did the tokens change") compares the
/// secrets in constant time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tokens(Vec<NamedToken>);

impl Tokens {
    /// The set of `tokens` (the config has checked that names and
    /// secrets are unique).
    pub fn new(tokens: Vec<NamedToken>) -> Tokens {
        Tokens(tokens)
    }

    /// Whether auth is on: some token exists.
    pub fn auth_on(&self) -> bool {
        !self.0.is_empty()
    }

    /// Every token, in config order.
    pub fn iter(&self) -> impl Iterator<Item = &NamedToken> {
        self.0.iter()
    }

    /// Adds a token (the config, while it reads `[[tokens]]`).
    pub fn push(&mut self, token: NamedToken) {
        self.0.push(token);
    }

    /// The token for which `presented` holds, asked of every token in
    /// turn (none skipped, so the time taken does not depend on which
    /// token matched, nor on how close another came).
    pub fn find(&self, mut presented: impl FnMut(&AuthToken) -> bool) -> Option<&NamedToken> {
        let mut found = None;
        for t in &self.0 {
            let hit = presented(&t.secret);
            if hit && found.is_none() {
                found = Some(t);
            }
        }
        found
    }

    /// The token whose secret is `secret`, if it is still in force.
    pub fn find_secret(&self, secret: &AuthToken) -> Option<&NamedToken> {
        self.find(|t| t == secret)
    }
}

/// Who a served request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// A client of the Unix socket (trusted by its file mode).
    Unix,
    /// A TCP client that presented this token.
    Token(Arc<str>),
    /// A TCP client while auth is off (no token exists).
    Open,
}

/// What a served request may do: its role, and who it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The role the request is judged by.
    pub role: Role,
    /// Who it comes from.
    pub who: Who,
}

impl Grant {
    /// A Unix-socket client: admin.
    pub fn unix() -> Grant {
        Grant {
            role: Role::Admin,
            who: Who::Unix,
        }
    }

    /// A TCP client while auth is off: admin, as everyone is then.
    pub fn open() -> Grant {
        Grant {
            role: Role::Admin,
            who: Who::Open,
        }
    }

    /// A client of `token`.
    pub fn of(token: &NamedToken) -> Grant {
        Grant {
            role: token.role,
            who: Who::Token(token.name.clone()),
        }
    }
}

impl fmt::Display for Who {
    /// `unix`, `token "ci"`, or `no token (auth off)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::Unix => f.write_str("unix"),
            Who::Token(name) => write!(f, "token \"{}\"", name.escape_debug()),
            Who::Open => f.write_str("no token (auth off)"),
        }
    }
}

impl fmt::Display for Grant {
    /// `token "ci" (operate)`, `unix (admin)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.who, self.role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> Tokens {
        Tokens::new(vec![
            NamedToken::new("ci", AuthToken::new("ci-secret"), Role::Operate),
            NamedToken::new("dash", AuthToken::new("dash-secret"), Role::Read),
        ])
    }

    #[test]
    fn a_secret_finds_its_token_and_every_token_is_asked() {
        let tokens = set();
        let mut asked = 0;
        let hit = tokens.find(|t| {
            asked += 1;
            t.matches(b"ci-secret")
        });
        assert_eq!(hit.map(|t| &*t.name), Some("ci"));
        assert_eq!(asked, 2, "no early exit");
        assert!(tokens.find(|t| t.matches(b"nope")).is_none());
        let dash = tokens.find_secret(&AuthToken::new("dash-secret"));
        assert_eq!(dash.map(|t| t.role), Some(Role::Read));
        assert!(tokens.auth_on() && !Tokens::default().auth_on());
    }

    #[test]
    fn grants_show_who_and_role_never_a_secret() {
        let tokens = set();
        let g = Grant::of(tokens.iter().next().expect("ci"));
        assert_eq!(g.to_string(), "token \"ci\" (operate)");
        assert_eq!(Grant::unix().to_string(), "unix (admin)");
        assert_eq!(Grant::open().to_string(), "no token (auth off) (admin)");
        assert!(!format!("{tokens:?}").contains("secret\""));
        assert!(!format!("{tokens:?}").contains("ci-secret"));
    }
}
