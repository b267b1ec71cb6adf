//! Counters of the client side: requests answered and every refusal a
//! limit or the auth check makes, each shown in `status.clients` and in
//! `/metrics`.
//!
//! Plain relaxed atomics: bumped by the loop and the request workers,
//! read by `status` and the metrics scrape; only monotonic totals, no
//! invariant between two of them.

use crate::auth::Verdict;
use std::sync::atomic::{AtomicU64, Ordering};

/// Client-side totals since start.
#[derive(Debug, Default)]
pub struct ClientCounters {
    /// JSON-RPC requests and HTTP requests answered.
    pub requests: AtomicU64,
    /// Connections accepted (TCP and Unix).
    pub connections_accepted: AtomicU64,
    /// Connections refused at `max_connections`.
    pub connections_refused: AtomicU64,
    /// Wrong tokens (`auth` calls and HTTP `Authorization` headers).
    pub auth_failures: AtomicU64,
    /// Requests refused because the client had not authenticated.
    pub unauthenticated_requests: AtomicU64,
    /// Requests refused because the client's token has a role below the
    /// one the method needs (`-32003`, 403).
    pub role_denied: AtomicU64,
    /// Connections closed for a line (or HTTP head/body) over its limit.
    pub lines_too_long: AtomicU64,
    /// Requests refused for JSON nested deeper than the limit.
    pub nesting_too_deep: AtomicU64,
    /// Clients dropped for leaving more than `max_output_bytes` unread.
    pub output_dropped: AtomicU64,
    /// Connections closed by `idle_timeout` or the pre-auth limit
    /// ([`CloseCause::Idle`] plus [`CloseCause::AuthTimeout`]); never a
    /// client that closed its end.
    pub idle_closed: AtomicU64,
    /// Malformed HTTP requests (answered 400 and closed).
    pub http_malformed: AtomicU64,
    /// Clients closed without their token being checked because their
    /// address's budget of wrong tokens per second and the one shared by
    /// all addresses were spent.
    pub auth_flood_closed: AtomicU64,
    /// HTTP requests refused for their `Host`, `Origin` or `Content-Type`
    /// (cross-site requests and DNS rebinding).
    pub http_forbidden: AtomicU64,
    /// Connections closed, by [`CloseCause`] (indexed by its number).
    pub closed: [AtomicU64; CloseCause::ALL.len()],
}

/// Why a client connection ended: the `cause` label of
/// `tickd_connections_closed_total` and the keys of
/// `status.clients.connections_closed`. Every close counts once, under the
/// reason it began for (a connection closed after a protocol error counts
/// as `protocol`, even if the client hung up first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCause {
    /// The client closed its end (or shut down its writing side) and got
    /// every answer owed.
    Eof,
    /// Sent nothing for `idle_timeout`.
    Idle,
    /// Did not authenticate in time (auth on): 10 s from its accept, or
    /// from the reload that made its token stop counting.
    AuthTimeout,
    /// The request asked for it (HTTP `Connection: close`, HTTP/1.0).
    Requested,
    /// After an error answer that ends the connection (a line, HTTP head
    /// or body over its limit, malformed HTTP).
    Protocol,
    /// More than `max_output_bytes` of answers left unread.
    OutputLimit,
    /// Closed unchecked: the global budget of wrong tokens was spent.
    AuthFlood,
    /// A socket error (a reset included) or requests lost to an internal
    /// error.
    Error,
    /// The daemon shut down.
    Shutdown,
    /// TLS on the TCP port: a handshake that failed or did not finish
    /// within 10 s of the accept, or a plaintext client.
    Tls,
}

impl CloseCause {
    /// Every cause, in the order of `/metrics`.
    pub const ALL: [CloseCause; 10] = [
        CloseCause::Eof,
        CloseCause::Idle,
        CloseCause::AuthTimeout,
        CloseCause::Requested,
        CloseCause::Protocol,
        CloseCause::OutputLimit,
        CloseCause::AuthFlood,
        CloseCause::Error,
        CloseCause::Shutdown,
        CloseCause::Tls,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseCause::Eof => "eof",
            CloseCause::Idle => "idle",
            CloseCause::AuthTimeout => "auth_timeout",
            CloseCause::Requested => "requested",
            CloseCause::Protocol => "protocol",
            CloseCause::OutputLimit => "output_limit",
            CloseCause::AuthFlood => "auth_flood",
            CloseCause::Error => "error",
            CloseCause::Shutdown => "shutdown",
            CloseCause::Tls => "tls",
        }
    }
}

/// Adds one to a counter.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl ClientCounters {
    /// Counts what authentication decided about a request: a wrong token,
    /// a request refused for lack of one, or a client closed because the
    /// wrong-token budget was spent (see [`crate::auth`]). The one place
    /// both protocols' verdicts are counted.
    pub fn count(&self, verdict: &Verdict) {
        match verdict {
            Verdict::Served | Verdict::Authenticated(_) => {}
            Verdict::NotAuthenticated => bump(&self.unauthenticated_requests),
            Verdict::Wrong => bump(&self.auth_failures),
            Verdict::Flood => bump(&self.auth_flood_closed),
            Verdict::Forbidden(_) => bump(&self.role_denied),
        }
    }

    /// Every counter as `(name, help, value)`, the order of `/metrics`.
    pub fn list(&self) -> [(&'static str, &'static str, u64); 13] {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            (
                "requests",
                "Requests answered (JSON-RPC lines and HTTP requests).",
                get(&self.requests),
            ),
            (
                "connections_accepted",
                "Client connections accepted (TCP and Unix).",
                get(&self.connections_accepted),
            ),
            (
                "connections_refused",
                "Connections refused because max_connections were open.",
                get(&self.connections_refused),
            ),
            (
                "auth_failures",
                "Wrong tokens presented (auth method or HTTP Authorization).",
                get(&self.auth_failures),
            ),
            (
                "unauthenticated_requests",
                "Requests refused because the client had not authenticated.",
                get(&self.unauthenticated_requests),
            ),
            (
                "role_denied",
                "Requests refused because the token's role is below the one the method needs.",
                get(&self.role_denied),
            ),
            (
                "lines_too_long",
                "Connections closed for a request line or HTTP request over its size limit.",
                get(&self.lines_too_long),
            ),
            (
                "nesting_too_deep",
                "Requests refused for JSON nested deeper than the limit.",
                get(&self.nesting_too_deep),
            ),
            (
                "output_dropped",
                "Clients dropped for leaving more than max_output_bytes of answers unread.",
                get(&self.output_dropped),
            ),
            (
                "idle_closed",
                "Connections closed after idle_timeout, or for not authenticating in time.",
                get(&self.idle_closed),
            ),
            (
                "http_malformed",
                "Malformed HTTP requests (answered 400, connection closed).",
                get(&self.http_malformed),
            ),
            (
                "auth_flood_closed",
                "Clients closed unchecked: their address's and the shared budget of wrong tokens per second were spent.",
                get(&self.auth_flood_closed),
            ),
            (
                "http_forbidden",
                "HTTP requests refused for their Host, Origin or Content-Type (cross-site, DNS rebinding).",
                get(&self.http_forbidden),
            ),
        ]
    }

    /// Counts one closed connection.
    pub fn count_close(&self, cause: CloseCause) {
        bump(&self.closed[cause as usize]);
    }

    /// Closed connections as `(cause, count)`, every cause, zeros included.
    pub fn closes(&self) -> [(&'static str, u64); CloseCause::ALL.len()] {
        CloseCause::ALL.map(|c| (c.as_str(), self.closed[c as usize].load(Ordering::Relaxed)))
    }

    /// The counters as the `clients` object of `status`, serialized
    /// straight from the atomics (no map of owned keys per request).
    pub fn view(&self) -> ClientCountersView<'_> {
        ClientCountersView(self)
    }
}

/// [`ClientCounters`] as a JSON object of `name: count`.
#[derive(Debug)]
pub struct ClientCountersView<'a>(&'a ClientCounters);

impl serde::Serialize for ClientCountersView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let list = self.0.list();
        let mut map = serializer.serialize_map(Some(list.len() + 1))?;
        for (name, _, value) in list {
            map.serialize_entry(name, &value)?;
        }
        let closes: std::collections::BTreeMap<_, _> = self.0.closes().into_iter().collect();
        map.serialize_entry("connections_closed", &closes)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthToken, NamedToken, Role};

    #[test]
    fn each_refusing_verdict_has_its_counter_and_a_served_one_none() {
        let c = ClientCounters::default();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        c.count(&Verdict::Served);
        c.count(&Verdict::Authenticated(NamedToken::new(
            "t",
            AuthToken::new("t"),
            Role::Admin,
        )));
        assert_eq!(c.list().iter().map(|(_, _, v)| v).sum::<u64>(), 0);
        c.count(&Verdict::NotAuthenticated);
        c.count(&Verdict::Wrong);
        c.count(&Verdict::Wrong);
        c.count(&Verdict::Flood);
        assert_eq!(get(&c.unauthenticated_requests), 1);
        assert_eq!(get(&c.auth_failures), 2);
        assert_eq!(get(&c.auth_flood_closed), 1);
    }
}
