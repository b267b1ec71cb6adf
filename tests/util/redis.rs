//! A real `redis-server` for the cluster tests: started on a free loopback
//! port in a temp dir, without persistence, stopped (SIGKILL) and started
//! again on the same port at will, killed on drop; and a minimal RESP
//! client over `TcpStream` for the assertions (`XRANGE ns:events`,
//! `INFO clients`, ...).
//!
//! redis-server missing is a failure that says how to get it (scripts/
//! test.sh installs Debian's `redis-server` package), never a silent skip.
//! Every wait is a poll for `PING` with a deadline.

use super::WAIT;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// Ports are taken from here up, below Linux's ephemeral range (32768 on),
/// so that neither a `127.0.0.1:0` listener nor a client connection of
/// another test can sit on the port while its server is stopped.
const PORT_BASE: u16 = 20_000;
const PORT_SPAN: u16 = 12_000;

/// The next port to try; starts at a point derived from the pid so that two
/// test processes at once rarely walk the same ports.
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

fn next_port() -> u16 {
    let _ = NEXT_PORT.compare_exchange(
        0,
        (std::process::id() % u32::from(PORT_SPAN)) as u16 + 1,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    let n = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
    PORT_BASE + n % PORT_SPAN
}

/// A redis-server process of this test.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    /// `requirepass`, if the server was started with one.
    pub password: Option<String>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a redis-server on a free port and waits until it answers PING.
    pub fn start() -> RedisServer {
        Self::start_with_password(None)
    }

    /// Like `start`, with `requirepass` set when `password` is given.
    pub fn start_with_password(password: Option<&str>) -> RedisServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = RedisServer {
            child: None,
            port: 0,
            password: password.map(str::to_string),
            dir,
        };
        for _ in 0..50 {
            let port = next_port();
            // Free for now (a bind of our own, dropped at once)?
            if TcpListener::bind(("127.0.0.1", port)).is_err() {
                continue;
            }
            server.port = port;
            if server.spawn_and_wait().is_ok() {
                return server;
            }
        }
        panic!(
            "could not start redis-server on any of 50 ports; its last log:\n{}",
            server.log()
        );
    }

    /// Starts redis-server on exactly this port (e.g. 6379), if it is free:
    /// `None` if something already listens there.
    pub fn start_on(port: u16) -> Option<RedisServer> {
        TcpListener::bind(("127.0.0.1", port)).ok()?;
        let mut server = RedisServer {
            child: None,
            port,
            password: None,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        server.spawn_and_wait().ok()?;
        Some(server)
    }

    /// `redis://[:PASSWORD@]127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Kills the server (SIGKILL: no shutdown, no save) and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server if it runs, then starts a new one on the same port
    /// (empty: nothing is persisted) and waits until it answers PING.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.spawn_and_wait() {
            panic!(
                "redis-server did not start again on port {}: {e}; its log:\n{}",
                self.port,
                self.log()
            );
        }
    }

    /// True while the server process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The server's log file so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("redis.log"))
            .expect("redis log file");
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path());
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log fd")))
            .stderr(Stdio::from(log));
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed (not found on PATH): the cluster tests need a \
                 real one. Install Debian's `redis-server` package (scripts/test.sh does so \
                 when run as root) and run the tests again."
            ),
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(mut conn) = Conn::connect(self.addr(), self.password.as_deref()) {
                if let Ok(Reply::Simple(pong)) = conn.try_cmd(&["PING"]) {
                    if pong == "PONG" {
                        return Ok(());
                    }
                }
            }
            if !self.is_running() {
                self.child = None;
                return Err("redis-server exited at start".into());
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(format!("no PONG within {WAIT:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` to the server (SIGSTOP: a Redis that hangs, no
    /// answer to anyone; SIGCONT: back).
    pub fn signal(&self, signal: rustix::process::Signal) {
        let child = self.child.as_ref().expect("redis-server is running");
        let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
        rustix::process::kill_process(pid, signal).expect("signal redis-server");
    }

    /// A new connection (authenticated if the server has a password).
    pub fn conn(&self) -> Conn {
        Conn::connect(self.addr(), self.password.as_deref())
            .unwrap_or_else(|e| panic!("connect to redis on port {}: {e}", self.port))
    }

    /// One command on a new connection; panics on an I/O or error reply.
    pub fn cmd(&self, args: &[&str]) -> Reply {
        self.conn().cmd(args)
    }

    /// `INFO clients`' `connected_clients` (this query's own connection
    /// included).
    pub fn connected_clients(&self) -> u64 {
        let info = self.cmd(&["INFO", "clients"]).text();
        info.lines()
            .find_map(|l| l.strip_prefix("connected_clients:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no connected_clients in INFO: {info}"))
    }

    /// Every entry of stream `key` (`XRANGE key - +`): id and fields.
    pub fn xrange(&self, key: &str) -> Vec<StreamEntry> {
        let reply = self.cmd(&["XRANGE", key, "-", "+"]);
        reply
            .array()
            .iter()
            .map(|entry| {
                let parts = entry.array();
                let id = parts[0].text();
                let kv = parts[1].array();
                let fields = kv.chunks(2).map(|p| (p[0].text(), p[1].text())).collect();
                StreamEntry { id, fields }
            })
            .collect()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One entry of a Redis Stream.
#[derive(Debug, Clone)]
pub struct StreamEntry {
    pub id: String,
    pub fields: Vec<(String, String)>,
}

impl StreamEntry {
    /// The value of field `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A RESP reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    /// `None` for a null bulk string.
    Bulk(Option<Vec<u8>>),
    /// `None` for a null array.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// A simple or bulk string as text ("" for nil); panics on others.
    pub fn text(&self) -> String {
        match self {
            Reply::Simple(s) => s.clone(),
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            Reply::Bulk(None) => String::new(),
            other => panic!("not a string reply: {other:?}"),
        }
    }

    /// True for a nil bulk string or nil array.
    pub fn is_nil(&self) -> bool {
        matches!(self, Reply::Bulk(None) | Reply::Array(None))
    }

    pub fn int(&self) -> i64 {
        match self {
            Reply::Int(n) => *n,
            other => panic!("not an integer reply: {other:?}"),
        }
    }

    /// An array's elements (empty for a nil array); panics on others.
    pub fn array(&self) -> &[Reply] {
        match self {
            Reply::Array(Some(v)) => v,
            Reply::Array(None) => &[],
            other => panic!("not an array reply: {other:?}"),
        }
    }
}

/// One connection to Redis, speaking RESP2.
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    /// Connects (1 s connect timeout, [`WAIT`] read timeout), and sends
    /// `AUTH` when given a password.
    pub fn connect(addr: SocketAddr, password: Option<&str>) -> std::io::Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        s.set_read_timeout(Some(WAIT))?;
        s.set_nodelay(true)?;
        let mut conn = Conn {
            reader: BufReader::new(s),
        };
        if let Some(p) = password {
            match conn.try_cmd(&["AUTH", p])? {
                Reply::Simple(_) => {}
                other => {
                    return Err(std::io::Error::other(format!("AUTH: {other:?}")));
                }
            }
        }
        Ok(conn)
    }

    /// Sends one command and reads its reply; an error reply is `Ok`.
    pub fn try_cmd(&mut self, args: &[&str]) -> std::io::Result<Reply> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        self.reader.get_mut().write_all(&out)?;
        read_reply(&mut self.reader)
    }

    /// Sends one command; panics on an I/O failure or an error reply.
    pub fn cmd(&mut self, args: &[&str]) -> Reply {
        match self.try_cmd(args) {
            Ok(Reply::Error(e)) => panic!("redis {args:?}: {e}"),
            Ok(r) => r,
            Err(e) => panic!("redis {args:?}: {e}"),
        }
    }
}

fn read_line(r: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    loop {
        match r.read_line(&mut line) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    if !line.ends_with("\r\n") {
        return Err(std::io::Error::other(format!("bad RESP line {line:?}")));
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::other(format!("bad RESP: {what}"))
}

fn read_reply(r: &mut impl BufRead) -> std::io::Result<Reply> {
    let line = read_line(r)?;
    let (kind, rest) = line.split_at(line.len().min(1));
    let number = || rest.parse::<i64>().map_err(|_| bad(&line));
    Ok(match kind {
        "+" => Reply::Simple(rest.to_string()),
        "-" => Reply::Error(rest.to_string()),
        ":" => Reply::Int(number()?),
        "$" => match number()? {
            n if n < 0 => Reply::Bulk(None),
            n => {
                // `read_exact` reads again after EINTR itself.
                let mut buf = vec![0u8; n as usize + 2];
                r.read_exact(&mut buf)?;
                buf.truncate(n as usize);
                Reply::Bulk(Some(buf))
            }
        },
        "*" => match number()? {
            n if n < 0 => Reply::Array(None),
            n => Reply::Array(Some(
                (0..n).map(|_| read_reply(r)).collect::<Result<_, _>>()?,
            )),
        },
        _ => return Err(bad(&line)),
    })
}
