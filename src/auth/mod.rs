//! Authentication and roles: every decision about who is served, and with
//! what rights, in one place. This
//! page is what a security review reads. The request layer (JSON-RPC lines
//! and HTTP requests alike) and the server only carry out what the
//! functions here decide; this module imports nothing of theirs (only the
//! standard library, `base64`, `parking_lot` and `serde_json`, for the
//! redaction and the audit line), so it can be read, and is tested, on its
//! own.
//!
//! # The tokens
//!
//! The tokens in force ([`Tokens`]) are `daemon.auth_token` (or the one
//! read from `auth_token_file`), an admin token named `auth_token`
//! ([`LEGACY_NAME`]), and each `[[tokens]]` table: a `name`, a `token` or
//! a `token_file` (owner-only, as `auth_token_file`) and a `role`. Names
//! and secrets are unique (the config refuses duplicates, naming the other
//! holder, never a secret). With no token at all, auth is off: every
//! client is served, as admin. With one or more:
//!
//! - **Unix socket**: trusted ([`Credential::Trusted`]), and admin. The
//!   socket file's mode (`unix_socket_mode`, default `0600`) decides who
//!   may connect. Its clients are never asked for a token, never charged
//!   to the wrong-token budget, never refused by it, and have no pre-auth
//!   limits. One that calls `auth` anyway gets the same answers as anyone
//!   (a wrong token still waits [`AUTH_DELAY`]), and stays trusted and
//!   admin: it does not become a client of that one token, which a reload
//!   may change.
//! - **JSON-RPC over TCP**: a connection starts as a
//!   [`Credential::Stranger`]. Until it calls `auth {"token": ...}` with a
//!   token in force ([`Gate::judge_token`]), only `ping` and `auth` are
//!   answered; every other method, `shutdown` and `reload` included, gets
//!   `-32001` [`NOT_AUTHENTICATED`] ([`judge_method`]). A right token makes
//!   it [`Credential::Token`]: served from then on with that token's role
//!   (the answer says which: `{"authenticated":true,"name":"ci","role":
//!   "operate"}`), until a reload removes the token. In a JSON-RPC batch
//!   (one line holding an array), an `auth` member authenticates the
//!   members after it.
//! - **HTTP** (TCP only): every request but `GET /healthz` must carry a
//!   token in its own `Authorization` header ([`Gate::judge_header`]):
//!   `Bearer TOKEN`, or `Basic base64(user:TOKEN)` with any user name, for
//!   browsers ([`header_matches`]); whatever came before on the connection.
//!   Each request is judged by the role of its own token. No header:
//!   `401` at once ([`NOT_AUTHENTICATED_HTTP`]), with
//!   `WWW-Authenticate: Basic realm="tickd"` so that a browser prompts once.
//!   An HTTP connection counts as authenticated, for the pre-auth limits
//!   below, once one of its requests carried a right token.
//!
//! # Roles
//!
//! A token's role ([`Role`]: `read` < `operate` < `admin`) decides what
//! it may call, by one table ([`METHOD_ROLES`] for JSON-RPC methods,
//! [`ROUTE_ROLES`] for HTTP routes, in `role.rs`):
//!
//! | role | may call |
//! |---|---|
//! | read | `ping`, `auth`, `status`, `jobs.list`, `jobs.get`, `runs.get`, `runs.list`, `runs.output`, `subscribe`; every `GET` route (`/`, `/metrics`, `/cluster`, `/status`, `/jobs…`, `/runs…`) |
//! | operate | also `jobs.run`, `runs.cancel`, `jobs.pause`, `jobs.resume`; `POST /jobs/NAME/run`, `/pause`, `/resume`, `POST /runs/ID/cancel` |
//! | admin | also `reload`, `shutdown`, `submit`, `jobs.put`, `jobs.delete`, the `debug.*` hooks; `PUT` and `DELETE /jobs/NAME`, `POST /reload`; and any method the table does not name |
//!
//! A method the table does not name needs admin ([`role_for_method`]);
//! a unit test (`protocol::call`) fails while a method of the protocol's
//! list has no entry, and `tests/roles.rs` calls every method and route
//! with every role. A request above its token's role gets
//! [`Verdict::Forbidden`]: `-32003` (HTTP `403`) with a message naming the
//! role needed and the token's ([`Denied`]: `forbidden: jobs.run needs
//! role operate (token "ci" has read)`); in a JSON-RPC batch, each member
//! is judged on its own. The role is checked before the params are
//! decoded, so a refused request learns nothing of them; over HTTP, a
//! route whose params (body, query, path) do not parse is refused for the
//! role first, when the role is too low (`tests/roles.rs`:
//! `a_role_too_low_is_told_before_its_bad_params`).
//!
//! # What a read token does not see
//!
//! Job definitions (`jobs.get`'s `definition`, and any job object in the
//! answers of `jobs.get` and `jobs.list` and their routes) reach a read
//! token with the values of `env` and `headers`, and `body`, replaced by
//! `<redacted>` ([`redact_answer`]); the keys stay. Operate and admin
//! tokens, the Unix socket and clients with auth off see them whole (an
//! operate token can run the job anyway, so hiding its definition from it
//! would protect little; give read tokens to whoever only watches).
//! Run objects (`output` included) are not redacted: a job that prints a
//! secret shows it to every role.
//!
//! # The audit log
//!
//! Every request whose method needs more than read ([`changes_state`]:
//! `jobs.run`, `runs.cancel`, `jobs.pause`, `jobs.resume`, `reload`,
//! `shutdown`, `submit`, `jobs.put`, `jobs.delete`, the debug hooks, and
//! their routes) is logged at info level once its params are decoded, and
//! every refused one too ([`audit_line`]):
//! `audit: token "ci" (operate) from 127.0.0.1:5555 called jobs.run
//! {"name":"x"}`, `audit: unix (admin) called reload {}`, `... denied
//! jobs.run {...}: needs role operate`, ` over HTTP` for a route. Params
//! that identify what was acted on (`name`, `run_id`, ...) are shown;
//! those that may carry a secret (`args`, a job definition but its `name`
//! and `kind`) show as `<redacted>`. No token is ever logged.
//!
//! # One verdict, two renderings
//!
//! Both protocols get a [`Verdict`] from the same functions (one shared
//! [`Gate`]) and render it in their own terms:
//!
//! | verdict | JSON-RPC | HTTP | counter (`status.clients`, `/metrics`) |
//! |---|---|---|---|
//! | [`Served`](Verdict::Served) | answered | answered | — |
//! | [`Authenticated`](Verdict::Authenticated) | `{"authenticated":true,"name":..,"role":..}`; the connection remembers the token | answered; the connection remembers the token | — |
//! | [`NotAuthenticated`](Verdict::NotAuthenticated) | `-32001` [`NOT_AUTHENTICATED`], at once | `401` [`NOT_AUTHENTICATED_HTTP`] + challenge, at once | `unauthenticated_requests` |
//! | [`Wrong`](Verdict::Wrong) | `-32001` [`WRONG_TOKEN`], after [`AUTH_DELAY`] | `401` [`WRONG_TOKEN`] + challenge, after [`AUTH_DELAY`] | `auth_failures` |
//! | [`Flood`](Verdict::Flood) | connection closed, token not compared (a batch member gets `-32001` [`FLOOD_CLOSE`] first) | connection closed, no answer | `auth_flood_closed` |
//! | [`Forbidden`](Verdict::Forbidden) | `-32003` naming the role needed, at once | `403`, the same message | `role_denied` |
//!
//! The counters are bumped from the verdict in one place
//! (`ClientCounters::count`, in the daemon's counters).
//!
//! # Where each check is made
//!
//! - The **connection's standing** ([`Credential::grant`]: its [`Grant`],
//!   a role and who holds it, or none) is judged by the event loop against
//!   the tokens of the limits it applies (taken from the live settings at
//!   start and after every accepted reload), for every batch of requests it
//!   cuts and every `run.event` it sends a subscriber. The batch carries the
//!   grant to the request worker, which checks each request's method
//!   against its role ([`judge_method`]).
//! - **Tokens** (`auth`, `Authorization`) are compared on the request
//!   workers ([`Gate`]), against the tokens of the live settings at that
//!   moment, each in constant time ([`AuthToken::matches`]: the time
//!   depends on the length of what was sent, never on where it differs),
//!   every token compared, none skipped ([`Tokens::find`]). Tokens are
//!   never logged; `Debug` of an [`AuthToken`] prints `<redacted>`.
//! - The **pre-auth limits** are applied by the loop's framing and reading
//!   ([`line_limit`], [`PREAUTH_PAUSE_AT`], [`header_matches`]) and its
//!   connection timers ([`PREAUTH_LIMIT`]).
//!
//! # Wrong tokens: the delay
//!
//! A wrong token is answered only after [`AUTH_DELAY`] (one second), which
//! makes guessing slow. The delay is a timer on the event loop: the answer
//! is parked in the connection's answer order and holds up nobody else.
//! On the guessing connection, nothing sent after the wrong token is
//! looked at until the delay has passed: the worker stops at the wrong
//! token and hands the rest of the batch back unread, the loop holds it
//! (and stops reading once [`PREAUTH_PAUSE_AT`] bytes wait) and cuts it
//! again when it sends the held answer. So one connection checks at most
//! one token per [`AUTH_DELAY`], however many it pipelines. In a JSON-RPC
//! batch, the members after a wrong `auth` are not run and get `-32001`
//! [`NOT_LOOKED_AT`]; the array, from the wrong token's response on, is
//! sent after the delay.
//!
//! # Wrong tokens: the budget
//!
//! Across connections, the [`WrongTokenBudget`] bounds how many tokens are
//! compared per second. A check is taken before a token is compared (under
//! one short lock, so racing workers never exceed the budget) and given
//! back if the token was right: only wrong tokens count. Each client
//! address first uses its own [`WRONG_TOKENS_PER_PEER`] (5) per second;
//! only beyond that is a token charged to the [`WRONG_TOKENS_PER_SECOND`]
//! (20) shared by all addresses. An IPv6 client counts by its /64 prefix,
//! an IPv4-mapped one by its IPv4 address ([`PeerKey`]). At most
//! [`TRACKED_PEERS`] (4096) addresses get their own share in one second;
//! past that a new address draws on the shared budget only, which bounds
//! the table to about 200 KiB. A token presented when both the address's
//! share and the shared budget are spent is not compared: the verdict is
//! [`Verdict::Flood`] and the connection is closed (close cause
//! `auth_flood`). So one address flooding wrong tokens, from any number of
//! connections, gets at most 25 compared per second, and cannot lock out
//! token holders at other addresses: they use their own share first.
//! Behind a reverse proxy all clients share the proxy's address (tickd
//! does not read `X-Forwarded-For`, which a client could forge). The Unix
//! socket is never charged and never refused.
//!
//! # Pre-auth limits
//!
//! A TCP client that has not authenticated (auth on) is a stranger, and
//! strangers get little:
//! - lines, and HTTP bodies, of at most [`PREAUTH_MAX_LINE`] (4096) bytes
//!   ([`line_limit`]; never more than `max_line_bytes`): enough for `auth`
//!   with any sane token. An HTTP request that carries the right token in
//!   its own `Authorization` header gets the full limit, and is the only
//!   kind of a stranger's requests that gets `100 Continue`;
//! - [`PREAUTH_PAUSE_AT`] (8 KiB) of buffered input while a batch of it is
//!   out or a wrong token's answer is held; reading from it pauses there;
//! - [`PREAUTH_LIMIT`] (10 s) to authenticate, from its accept or from the
//!   reload that made it a stranger again, however busy it keeps the
//!   connection (pings do not extend it), or `idle_timeout` if sooner; then
//!   it is closed (close cause `auth_timeout`). One past the limit is kept
//!   only while an answer owed to it still waits (a wrong token's held
//!   answer), and looked at again every [`AUTH_DELAY`].
//!
//! # Reloads
//!
//! The tokens are live: a reload (SIGHUP or `reload`) replaces the whole
//! set, and logs which tokens were added, removed or changed role (names
//! and roles, never secrets). Each TCP connection remembers the token it
//! authenticated with, and is judged against the tokens in force for every
//! batch, so a reload takes effect on open connections too
//! ([`Credential::on_token_change`], applied by the loop once after the
//! reload):
//! - a token whose role changed gives its connections the new role from
//!   their next batch (a downgraded one gets `-32003` for what it may no
//!   longer do);
//! - a reload that turns auth on, or removes (or replaces) the token a
//!   connection presented, makes it a stranger again ([`Change::Lost`]):
//!   it is not closed, its requests get `-32001` until it calls `auth` with
//!   a token in force, and
//!   they have [`PREAUTH_LIMIT`] from the reload, as a new connection has;
//!   a subscriber among them is told once with a `-32001` line
//!   ([`TOKEN_REPLACED`], `"id": null`) and gets no `run.event` until it
//!   authenticates (events meanwhile are not kept for it);
//! - a reload that turns auth off serves them at once ([`Change::Regained`]).
//!
//! Requests already being answered when the reload is applied finish under
//! the old setting.
//!
//! # Also
//!
//! - The token files (`auth_token_file`, a `[[tokens]]` table's
//!   `token_file`) must be readable by their owner only; the config refuses
//!   them otherwise. Read at every load; one that a privilege drop made
//!   unreadable keeps the token read before, with a warning.
//! - A TCP listener on a non-loopback address without any token gets a
//!   loud `SECURITY` warning at start; a reload that removes the last
//!   token (auth off) gets one too.
//! - Wrong tokens and flood closes are logged with the client's address
//!   (never the token), at most one warning of each kind per 10 seconds,
//!   with the number left out since.
//! - HTTP's cross-site defences (`Host`, `Origin`, `Content-Type`, checked
//!   before the token) belong to the HTTP router, not here.

mod audit;
mod budget;
mod credential;
mod header;
mod role;
mod token;
mod tokens;
mod verdict;

pub use audit::{audit_line, redact_answer, shows_definitions, REDACTED};
pub use budget::{
    PeerKey, WrongTokenBudget, TRACKED_PEERS, WRONG_TOKENS_PER_PEER, WRONG_TOKENS_PER_SECOND,
};
pub use credential::{Change, Credential};
pub use header::header_matches;
pub use role::{changes_state, role_for_method, Denied, Role, METHOD_ROLES, ROUTE_ROLES};
pub use token::AuthToken;
pub use tokens::{Grant, NamedToken, Tokens, Who, LEGACY_NAME};
pub use verdict::{judge_method, line_limit, Gate, Verdict};

use std::time::Duration;

/// How long a wrong token waits for its answer.
pub const AUTH_DELAY: Duration = Duration::from_secs(1);

/// How long after its accept (or the reload that made it a stranger
/// again) a TCP connection may stay unauthenticated (when auth is on): a
/// stranger gets a short while to present the token, however busy it
/// keeps the connection.
pub const PREAUTH_LIMIT: Duration = Duration::from_secs(10);

/// Longest request line (and HTTP body) before a TCP client has
/// authenticated (when auth is on): enough for `auth` with any sane
/// token, and little for a stranger to make the daemon buffer.
pub const PREAUTH_MAX_LINE: usize = 4096;

/// Buffered input at which reading from a client that has not
/// authenticated pauses (twice its line limit).
pub const PREAUTH_PAUSE_AT: usize = 2 * PREAUTH_MAX_LINE;

/// The answer to a wrong token (`-32001`, or 401 over HTTP).
pub const WRONG_TOKEN: &str = "wrong token";

/// The answer to any method but `ping` and `auth` before authentication.
pub const NOT_AUTHENTICATED: &str = "not authenticated: call auth {\"token\": ...} first";

/// The answer (401) to an HTTP request without an `Authorization` header.
pub const NOT_AUTHENTICATED_HTTP: &str = "not authenticated: send Authorization: Bearer TOKEN";

/// The answer to the members of a JSON-RPC batch after an `auth` member
/// that failed (a wrong token, or the budget spent).
pub const NOT_LOOKED_AT: &str = "not looked at: an earlier `auth` in this batch failed";

/// Logged when a client is dropped by the [`WrongTokenBudget`] (and told,
/// if it sent the token as a member of a batch).
pub const FLOOD_CLOSE: &str = "too many wrong tokens this second, from this address and from \
     all clients together; token not checked";

/// Told once (`-32001`, `"id": null`) to a subscriber whose credential a
/// reload made stop counting.
pub const TOKEN_REPLACED: &str = "not authenticated: a reload changed the auth token (removed \
     or replaced the token this connection presented, or turned auth on); no run.event is sent \
     to this connection until it calls auth {\"token\": ...} with a token now in force";
