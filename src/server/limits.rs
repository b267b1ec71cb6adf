//! The limits the server applies to its clients, as one value.
//!
//! [`Limits::from_live`] is the only place that reads them out of the
//! daemon's live settings (the part of `[daemon]` a reload may change,
//! [`LiveSettings`]). The server builds a `Limits` from the snapshot in
//! force once at start and again after every accepted reload (it looks
//! when a reload may have happened: after `SIGHUP` and after a `reload`
//! command, see `Server::after_reload`), so a setting can be followed from
//! the config to every place it is used: `limits.idle_timeout`, not a path
//! into the daemon's config.
//!
//! Limits that are not settings are constants of the parts that apply
//! them (the read budget per turn), or of [`crate::auth`] (the pre-auth
//! limits).

use crate::auth::{self, Tokens};
use crate::config::{LiveSettings, TlsIdentity};
use std::time::Duration;

/// What the server allows its clients, from the config in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Open TCP connections at most (the Unix socket is not counted).
    pub max_connections: usize,
    /// Longest request line, and largest HTTP body, of a client that has
    /// authenticated (or needs not).
    pub max_line_bytes: usize,
    /// Answer bytes a connection may leave unread before it is dropped.
    pub max_output_bytes: usize,
    /// How long a connection may send nothing; `None`: for ever.
    pub idle_timeout: Option<Duration>,
    /// The tokens TCP clients may present, each with its role; empty:
    /// auth is off.
    pub tokens: Tokens,
    /// The certificate new TCP connections are served with; `None`: TLS
    /// is off.
    pub tls: Option<TlsIdentity>,
}

impl Limits {
    /// The limits of the live settings `d`.
    pub fn from_live(d: &LiveSettings) -> Limits {
        Limits {
            max_connections: d.max_connections,
            max_line_bytes: d.max_line_bytes,
            max_output_bytes: d.max_output_bytes,
            idle_timeout: d.idle_timeout,
            tokens: d.tokens.clone(),
            tls: d.tls.clone(),
        }
    }

    /// The longest request line (or HTTP body) of a client: before it has
    /// authenticated (`authed` false, with auth on) at most
    /// [`PREAUTH_MAX_LINE`](auth::PREAUTH_MAX_LINE) ([`auth::line_limit`]).
    pub fn line_limit(&self, authed: bool) -> usize {
        auth::line_limit(self.max_line_bytes, authed)
    }

    /// What a batch cut now may still build of answers: `max_output_bytes`
    /// minus the connection's `unsent` answer bytes.
    pub fn out_budget(&self, unsent: usize) -> usize {
        self.max_output_bytes.saturating_sub(unsent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::PREAUTH_MAX_LINE;
    use std::path::Path;

    fn limits_of(daemon_table: &str) -> Limits {
        let text = format!("[daemon]\n{daemon_table}\n");
        let config = crate::config::parse(&text, Path::new("/etc/tickd.toml")).expect("config");
        Limits::from_live(&config.daemon.live)
    }

    #[test]
    fn every_limit_comes_from_its_setting() {
        let l = limits_of(
            "max_connections = 7\nmax_line_bytes = 1000\nmax_output_bytes = 2048\n\
             idle_timeout = \"90s\"\nauth_token = \"sesame\"",
        );
        assert_eq!(l.max_connections, 7);
        assert_eq!(l.max_line_bytes, 1000);
        assert_eq!(l.max_output_bytes, 2048);
        assert_eq!(l.idle_timeout, Some(Duration::from_secs(90)));
        let t = l.tokens.iter().next().expect("the token");
        assert!(t.secret.matches(b"sesame") && &*t.name == "auth_token");
    }

    #[test]
    fn zero_idle_timeout_and_empty_token_mean_none() {
        let l = limits_of("idle_timeout = \"0s\"\nauth_token = \"\"");
        assert_eq!(l.idle_timeout, None);
        assert!(!l.tokens.auth_on());
    }

    #[test]
    fn strangers_get_short_lines_and_budgets_never_go_negative() {
        let l = limits_of("max_line_bytes = 65536\nmax_output_bytes = 4096");
        assert_eq!(l.line_limit(true), 65536);
        assert_eq!(l.line_limit(false), PREAUTH_MAX_LINE);
        let small = limits_of("max_line_bytes = 100");
        assert_eq!(small.line_limit(false), 100, "never above the setting");
        assert_eq!(l.out_budget(1000), 3096);
        assert_eq!(l.out_budget(5000), 0);
    }
}
