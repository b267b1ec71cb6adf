//! One client connection of `tickd ctl` to a daemon: connect (TCP with a
//! timeout, TCP with TLS, or a Unix socket), authenticate, send requests
//! and read answers.
//!
//! `--tls` ([`with_tls`]): a rustls client (the ring provider, as the
//! daemon's) that checks the daemon's certificate against `--ca FILE`, or
//! without it the system's roots (rustls-native-certs), for the host
//! name or IP address of `--connect`. The handshake is done at connect,
//! so a certificate that is not trusted is reported there, with a hint.
//!
//! Lines from the daemon are read with `read_until` into a byte buffer kept
//! across calls, so a read timeout in the middle of a line loses nothing;
//! `tickd ctl watch` relies on that to send keep-alive pings between events.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde_json::{json, Value};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long `tickd ctl` tries to reach the daemon before giving up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Bound on writing one request (the daemon reads requests at once; a daemon
/// that does not is stuck, and the caller should hear about it).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the daemon listens.
#[derive(Debug, Clone)]
pub enum Target {
    /// `--connect HOST:PORT` (or `TICKD_ADDR=HOST:PORT`).
    Tcp(String),
    /// `--unix PATH` (or `TICKD_ADDR=/PATH`).
    Unix(PathBuf),
    /// `--tls` with a TCP address: the address, and the client config
    /// (whom it trusts).
    Tls(String, Arc<ClientConfig>),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp(addr) | Target::Tls(addr, _) => f.write_str(addr),
            Target::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// What went wrong in a call, kept apart so callers can word it.
#[derive(Debug)]
pub enum CallError {
    /// Could not talk to the daemon (connect, send, receive, bad answer).
    Transport(String),
    /// The daemon answered with a JSON-RPC error.
    Rpc {
        /// The JSON-RPC error code.
        code: i64,
        /// The daemon's message.
        message: String,
    },
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Transport(msg) => f.write_str(msg),
            CallError::Rpc { code, message } => write!(f, "{message} ({code})"),
        }
    }
}

/// The error code the daemon uses for "not authenticated".
pub const NOT_AUTHENTICATED: i64 = -32001;
/// The error code for an unknown method.
const METHOD_NOT_FOUND: i64 = -32601;

/// One line received from the daemon.
#[derive(Debug)]
pub enum Incoming {
    /// One JSON message (an answer or a notification).
    Line(Value),
    /// No complete line within the read timeout; call again to go on.
    TimedOut,
    /// The daemon closed the connection.
    Closed,
}

/// Reading a long-lived connection (`watch`, `logs -f`) while pinging the
/// daemon whenever nothing was sent to it for `every`, so that its
/// `idle_timeout` does not close the connection.
pub struct Keepalive {
    every: Duration,
    last_sent: std::time::Instant,
}

impl Keepalive {
    /// Counts from now.
    pub fn new(every: Duration) -> Keepalive {
        Keepalive {
            every,
            last_sent: std::time::Instant::now(),
        }
    }

    /// A request was just sent on the connection: the next ping waits.
    pub fn sent(&mut self) {
        self.last_sent = std::time::Instant::now();
    }

    /// The next message from the daemon, pinging it meanwhile as due;
    /// `None` once it closed the connection.
    pub fn next(&mut self, conn: &mut Conn) -> Result<Option<Value>, String> {
        loop {
            let quiet_left = self.every.saturating_sub(self.last_sent.elapsed());
            if quiet_left.is_zero() {
                conn.send("ping", serde_json::json!({}))?;
                self.sent();
                continue;
            }
            conn.set_read_timeout(Some(quiet_left))?;
            match conn.read()? {
                Incoming::Line(msg) => return Ok(Some(msg)),
                // Time for the next ping, at the top of the loop.
                Incoming::TimedOut => {}
                Incoming::Closed => return Ok(None),
            }
        }
    }
}

trait Stream: Read + Write {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()>;
}

impl Stream for TcpStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, t)
    }
}

impl Stream for StreamOwned<ClientConnection, TcpStream> {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.sock.set_read_timeout(t)
    }
}

impl Stream for UnixStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, t)
    }
}

/// A connection to the daemon speaking line-delimited JSON-RPC.
pub struct Conn {
    reader: BufReader<Box<dyn Stream>>,
    /// Bytes of a line not yet complete (kept across read timeouts).
    partial: Vec<u8>,
    next_id: u64,
    target: Target,
}

impl Conn {
    /// Connects to `target`, waiting at most [`CONNECT_TIMEOUT`].
    pub fn open(target: &Target) -> Result<Conn, String> {
        let stream: Box<dyn Stream> = match target {
            Target::Tcp(addr) => Box::new(connect_tcp(addr)?),
            Target::Tls(addr, config) => Box::new(connect_tls(addr, config)?),
            Target::Unix(path) => {
                let s = UnixStream::connect(path).map_err(|e| unreachable(target, &e))?;
                s.set_write_timeout(Some(WRITE_TIMEOUT))
                    .map_err(|e| format!("cannot configure the socket: {e}"))?;
                Box::new(s)
            }
        };
        Ok(Conn {
            reader: BufReader::new(stream),
            partial: Vec::new(),
            next_id: 1,
            target: target.clone(),
        })
    }

    /// Authenticates with `token`. A daemon that has no `auth` method (a
    /// version without authentication) is taken as not needing it.
    pub fn auth(&mut self, token: &str) -> Result<(), String> {
        match self.call("auth", json!({ "token": token })) {
            Ok(_) => Ok(()),
            Err(CallError::Rpc { code, .. }) if code == METHOD_NOT_FOUND => Ok(()),
            Err(CallError::Rpc { message, .. }) => Err(format!(
                "authentication failed: {message} (check --token or TICKD_TOKEN)"
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Limits how long [`Conn::read`] waits for a line; `None` waits forever.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> Result<(), String> {
        self.reader
            .get_ref()
            .set_read_timeout(timeout)
            .map_err(|e| format!("cannot configure the socket: {e}"))
    }

    /// Sends a request without waiting for its answer; returns its id.
    pub fn send(&mut self, method: &str, params: Value) -> Result<u64, String> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line =
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        line.push('\n');
        self.reader
            .get_mut()
            .write_all(line.as_bytes())
            .map_err(|e| format!("cannot send to {}: {e}", self.target))?;
        Ok(id)
    }

    /// Calls `method` and waits for its answer, skipping notifications.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, CallError> {
        let id = self.send(method, params).map_err(CallError::Transport)?;
        loop {
            let msg = match self.read().map_err(CallError::Transport)? {
                Incoming::Line(msg) => msg,
                Incoming::TimedOut => {
                    return Err(CallError::Transport(format!(
                        "no answer from {} within the timeout",
                        self.target
                    )))
                }
                Incoming::Closed => {
                    return Err(CallError::Transport(format!(
                        "{} closed the connection without answering",
                        self.target
                    )))
                }
            };
            if let Some(answer) = answer_to(&msg, id) {
                return answer;
            }
        }
    }

    /// Reads the next line from the daemon.
    pub fn read(&mut self) -> Result<Incoming, String> {
        match self.reader.read_until(b'\n', &mut self.partial) {
            Ok(0) if self.partial.is_empty() => Ok(Incoming::Closed),
            Ok(_) if !self.partial.ends_with(b"\n") => Err(format!(
                "{} closed the connection in the middle of an answer",
                self.target
            )),
            Ok(_) => {
                let line = std::mem::take(&mut self.partial);
                serde_json::from_slice(&line)
                    .map(Incoming::Line)
                    .map_err(|e| format!("{} sent a line that is not JSON: {e}", self.target))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(Incoming::TimedOut)
            }
            Err(e) => Err(format!("cannot read from {}: {e}", self.target)),
        }
    }
}

/// The outcome carried by `msg` if it answers request `id`: notifications
/// and answers to other requests give `None`. An error with `"id": null`
/// counts too: the daemon sends one when it refuses the connection or the
/// line before it could read the id.
fn answer_to(msg: &Value, id: u64) -> Option<Result<Value, CallError>> {
    let msg_id = msg.get("id")?;
    if let Some(err) = msg.get("error") {
        if msg_id.as_u64() == Some(id) || msg_id.is_null() {
            return Some(Err(CallError::Rpc {
                code: err["code"].as_i64().unwrap_or(0),
                message: err["message"]
                    .as_str()
                    .unwrap_or("unknown error")
                    .to_string(),
            }));
        }
        return None;
    }
    (msg_id.as_u64() == Some(id)).then(|| Ok(msg.get("result").cloned().unwrap_or(Value::Null)))
}

/// Connects to the first address of `addr` that answers.
fn connect_tcp(addr: &str) -> Result<TcpStream, String> {
    let target = Target::Tcp(addr.to_string());
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| format!("bad address {addr} (expected HOST:PORT): {e}"))?
        .collect();
    let mut last = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, CONNECT_TIMEOUT) {
            Ok(s) => {
                s.set_write_timeout(Some(WRITE_TIMEOUT))
                    .map_err(|e| format!("cannot configure the socket: {e}"))?;
                // Requests are single small lines; don't let Nagle hold them.
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => unreachable(&target, &e),
        None => format!("bad address {addr}: it resolves to no address"),
    })
}

/// `target` with `--tls` (and `--ca`) applied: a TCP target becomes a TLS
/// one; without `tls`, `target` as it is. TLS to a Unix socket is refused
/// (the socket speaks plaintext, trusted by its file mode).
pub fn with_tls(target: Target, tls: bool, ca: Option<&Path>) -> Result<Target, String> {
    if !tls {
        return match ca {
            Some(_) => Err("--ca only applies with --tls".into()),
            None => Ok(target),
        };
    }
    match target {
        Target::Tcp(addr) => Ok(Target::Tls(addr, client_config(ca)?)),
        Target::Unix(path) => Err(format!(
            "--tls applies to TCP only; the Unix socket {} speaks plaintext",
            path.display()
        )),
        tls @ Target::Tls(..) => Ok(tls),
    }
}

/// The rustls client config: trusting the certificates of `ca` (PEM),
/// else the system's roots.
fn client_config(ca: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            let bytes = std::fs::read(path)
                .map_err(|e| format!("cannot read --ca {}: {e}", path.display()))?;
            let certs = CertificateDer::pem_slice_iter(&bytes)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("--ca {}: not a PEM certificate file: {e}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "--ca {} holds no usable CA certificate (expected PEM blocks \"-----BEGIN CERTIFICATE-----\")",
                    path.display()
                ));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(
                    "--tls: no CA certificates found on this system; pass --ca FILE (the CA that signed the daemon's tls_cert)".into(),
                );
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The name the daemon's certificate must carry: the host of `addr`
/// (`HOST:PORT`, `[V6]:PORT`), a DNS name or an IP address.
fn server_name(addr: &str) -> Result<ServerName<'static>, String> {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("--tls: {host} is not a host name or IP address: {e}"))
}

/// Connects to `addr` and does the TLS handshake.
fn connect_tls(
    addr: &str,
    config: &Arc<ClientConfig>,
) -> Result<StreamOwned<ClientConnection, TcpStream>, String> {
    let name = server_name(addr)?;
    let mut sock = connect_tcp(addr)?;
    let mut tls = ClientConnection::new(Arc::clone(config), name)
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    // The handshake, bounded like a request.
    sock.set_read_timeout(Some(WRITE_TIMEOUT))
        .map_err(|e| format!("cannot configure the socket: {e}"))?;
    while tls.is_handshaking() {
        if let Err(e) = tls.complete_io(&mut sock) {
            return Err(format!(
                "TLS handshake with {addr} failed: {e}; is TLS on in the daemon (tls_cert), \
                 and was its certificate signed by the CA given with --ca (or one the system trusts)?"
            ));
        }
    }
    sock.set_read_timeout(None)
        .map_err(|e| format!("cannot configure the socket: {e}"))?;
    Ok(StreamOwned::new(tls, sock))
}

/// The message for a daemon that could not be reached, with a hint.
fn unreachable(target: &Target, e: &io::Error) -> String {
    let (what, flag) = match target {
        Target::Tcp(_) | Target::Tls(..) => ("address", "--connect HOST:PORT or set TICKD_ADDR"),
        Target::Unix(_) => ("socket", "--unix PATH"),
    };
    match e.kind() {
        io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound => format!(
            "cannot connect to {target}: {e}; is tickd running with that {what}? \
             (start it with `tickd run`, or pass {flag})"
        ),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => format!(
            "cannot connect to {target}: no answer within {}s; is the {what} right?",
            CONNECT_TIMEOUT.as_secs()
        ),
        _ => format!("cannot connect to {target}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_to_matches_ids_and_skips_notifications() {
        let event = json!({"jsonrpc": "2.0", "method": "run.event", "params": {}});
        assert!(answer_to(&event, 1).is_none());
        let other = json!({"jsonrpc": "2.0", "id": 2, "result": "pong"});
        assert!(answer_to(&other, 1).is_none());
        let mine = json!({"jsonrpc": "2.0", "id": 1, "result": "pong"});
        assert!(matches!(answer_to(&mine, 1), Some(Ok(v)) if v == "pong"));
        let refused = json!({"jsonrpc": "2.0", "id": null,
            "error": {"code": -32002, "message": "too many connections"}});
        assert!(matches!(
            answer_to(&refused, 1),
            Some(Err(CallError::Rpc { code: -32002, .. }))
        ));
    }

    #[test]
    fn refused_connection_names_the_address_and_suggests_a_fix() {
        let target = Target::Tcp("127.0.0.1:1".into());
        let e = io::Error::from(io::ErrorKind::ConnectionRefused);
        let msg = unreachable(&target, &e);
        assert!(msg.contains("127.0.0.1:1"), "{msg}");
        assert!(msg.contains("is tickd running"), "{msg}");
    }
}
