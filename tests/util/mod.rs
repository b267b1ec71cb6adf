//! Test harness: start the real `tickd` binary on 127.0.0.1:0 and talk to it
//! over real sockets.
//!
//! Every wait here is bounded by a deadline and driven by an observable
//! event (a log line, an answer, a process exit), never by a fixed sleep.

#![allow(dead_code)]

pub mod http;
pub mod load;
pub mod redis;
pub mod tls;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// `r.read(buf)`, read again when a signal interrupts it. The tests share
/// one process, and a blocking read with a timeout (SO_RCVTIMEO) fails with
/// EINTR on any signal the process takes, where `read_line` and friends
/// already read again.
pub fn read_some(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Default bound for any wait in the tests.
pub const WAIT: Duration = Duration::from_secs(20);

/// The daemon's stderr, collected line by line by a background thread.
#[derive(Default)]
pub struct LogBuf {
    lines: Mutex<Vec<String>>,
    changed: Condvar,
}

impl LogBuf {
    /// Waits until a line containing `needle` appears (after line `from`); returns its index and text.
    pub fn wait_for(&self, needle: &str, from: usize, within: Duration) -> Option<(usize, String)> {
        let deadline = Instant::now() + within;
        let mut lines = self.lines.lock().unwrap();
        loop {
            if let Some((i, l)) = lines
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, l)| l.contains(needle))
            {
                return Some((i, l.clone()));
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            lines = self.changed.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }

    /// Every line so far.
    pub fn all(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Number of lines so far.
    pub fn len(&self) -> usize {
        self.lines.lock().unwrap().len()
    }
}

/// A running tickd process with its temp dir.
pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub log: Arc<LogBuf>,
}

/// `tickd check` on a file holding `text`: its exit code and stderr.
pub fn check_text(text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).expect("write");
    let out = Command::new(bin())
        .args(["check", "--config"])
        .arg(&path)
        .env_remove("RUST_LOG")
        .env_remove("TICKD_CONFIG")
        .output()
        .expect("run tickd check");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tickd")
}

/// A config with a `[daemon]` section listening on 127.0.0.1:0 plus `extra`
/// daemon keys and `jobs` (TOML text of `[[jobs]]` tables).
pub fn config(extra_daemon: &str, jobs: &str) -> String {
    let workers = if extra_daemon.contains("workers =") {
        ""
    } else {
        "workers = 2\n"
    };
    format!("[daemon]\nlisten = \"127.0.0.1:0\"\n{workers}{extra_daemon}\n\n{jobs}\n")
}

impl Daemon {
    /// Starts tickd with this config text and waits for `listening on`.
    pub fn start(config_text: &str) -> Daemon {
        Self::start_with_env(config_text, &[])
    }

    /// Like `start`, with extra environment variables for the daemon.
    pub fn start_with_env(config_text: &str, env: &[(&str, &str)]) -> Daemon {
        Self::start_limited(config_text, env, None)
    }

    /// Like `start_with_env`, with the daemon's open-file limit lowered to
    /// `fd_limit` first (`sh -c 'ulimit -n N; exec tickd ...'`), if given.
    pub fn start_limited(config_text: &str, env: &[(&str, &str)], fd_limit: Option<u32>) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("tickd.toml");
        std::fs::write(
            &config_path,
            config_text.replace("$DIR", &dir.path().display().to_string()),
        )
        .expect("write config");
        let mut cmd = match fd_limit {
            Some(n) => {
                let mut sh = Command::new("sh");
                let script = format!("ulimit -n {n} && exec \"$0\" run --config \"$1\"");
                sh.arg("-c").arg(script).arg(bin()).arg(&config_path);
                sh
            }
            None => {
                let mut direct = Command::new(bin());
                direct.arg("run").arg("--config").arg(&config_path);
                direct
            }
        };
        cmd.env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn tickd");
        let log = collect_stderr(&mut child);
        let Some((_, line)) = log.wait_for("listening on ", 0, WAIT) else {
            let _ = child.kill();
            panic!(
                "tickd did not start listening; log:\n{}",
                log.all().join("\n")
            );
        };
        let addr = listening_addr(&line);
        Daemon {
            child,
            addr,
            dir,
            config_path,
            log,
        }
    }

    /// A new client connection.
    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// The daemon's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Overwrites the config file (for reload tests).
    pub fn write_config(&self, text: &str) {
        std::fs::write(
            &self.config_path,
            text.replace("$DIR", &self.dir().display().to_string()),
        )
        .expect("write config");
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, sig).expect("kill");
    }

    /// Waits for the process to exit, up to `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        wait_child(&mut self.child, within)
    }

    /// Polls `status` until `pred` holds.
    pub fn wait_status(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let mut c = self.client();
        poll_until(what, || {
            let s = c.ok("status", json!({}));
            pred(&s).then_some(s)
        })
    }

    /// Polls a run until it is in a terminal state.
    pub fn wait_run_done(&self, run_id: &str) -> Value {
        let mut c = self.client();
        poll_until(&format!("run {run_id} to finish"), || {
            let r = c.ok("runs.get", json!({ "run_id": run_id }));
            let st = r["state"].as_str().unwrap_or("");
            (!matches!(st, "scheduled" | "queued" | "running")).then_some(r)
        })
    }
}

/// Collects `child`'s piped stderr, line by line, on a background thread
/// (echoed to the test's stderr with `TICKD_TEST_ECHO` set).
pub fn collect_stderr(child: &mut Child) -> Arc<LogBuf> {
    let stderr = child.stderr.take().expect("stderr");
    let log = Arc::new(LogBuf::default());
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if std::env::var_os("TICKD_TEST_ECHO").is_some() {
                eprintln!("tickd: {line}");
            }
            sink.lines.lock().unwrap().push(line);
            sink.changed.notify_all();
        }
    });
    log
}

/// A `tickd` process started outside [`Daemon`] (another binary path,
/// `--supervise`, `--pidfile`): its stderr collected, and the address of
/// its `listening on` line, waited for.
pub struct Spawned {
    pub child: Child,
    pub log: Arc<LogBuf>,
    pub addr: SocketAddr,
}

/// Starts `program` with `args` (and `env`), without `RUST_LOG` and
/// `NOTIFY_SOCKET`, and waits for it to listen.
pub fn spawn_listening(
    program: impl AsRef<std::ffi::OsStr>,
    args: &[&std::ffi::OsStr],
    env: &[(&str, &str)],
) -> Spawned {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn tickd");
    let log = collect_stderr(&mut child);
    let Some((_, line)) = log.wait_for("listening on ", 0, WAIT) else {
        let _ = child.kill();
        panic!("no listening line: {:#?}", log.all());
    };
    let addr = listening_addr(&line);
    Spawned { child, log, addr }
}

/// The TCP address of a `listening on ADDR ...` log line.
pub fn listening_addr(line: &str) -> SocketAddr {
    line.split("listening on ")
        .nth(1)
        .expect("address")
        .split_whitespace()
        .next()
        .expect("address token")
        .parse()
        .expect("socket address in log line")
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits for `child` to exit, up to `within`; `None` if it still runs
/// (the caller decides whether to kill it).
pub fn wait_child(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Calls `f` until it returns Some, for at most [`WAIT`].
pub fn poll_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A line-oriented JSON-RPC client.
pub struct Client {
    pub reader: BufReader<TcpStream>,
    next_id: u64,
}

impl Client {
    /// Connects with a read timeout of [`WAIT`].
    pub fn connect(addr: SocketAddr) -> Client {
        Client::from_stream(TcpStream::connect(addr).expect("connect"))
    }

    /// Wraps an already connected stream, with a read timeout of [`WAIT`].
    pub fn from_stream(s: TcpStream) -> Client {
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        Client {
            reader: BufReader::new(s),
            next_id: 1,
        }
    }

    /// Writes raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("write");
    }

    /// Reads one line (without the newline); None on EOF.
    pub fn read_line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_string()),
            Err(e) => panic!("read failed: {e}"),
        }
    }

    /// Reads one line and parses it as JSON.
    pub fn read_json(&mut self) -> Value {
        let line = self.read_line().expect("answer line, got EOF");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad JSON {line:?}: {e}"))
    }

    /// True if the server closed the connection (EOF after any pending lines).
    pub fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(read_some(&mut self.reader, &mut buf), Ok(0))
    }

    /// Sends a request and returns the whole response object.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let line = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_raw(format!("{line}\n").as_bytes());
        let resp = self.read_json();
        assert_eq!(resp["id"], json!(id), "answer to another request: {resp}");
        resp
    }

    /// Calls and returns `result`, panicking on an error answer.
    pub fn ok(&mut self, method: &str, params: Value) -> Value {
        let resp = self.call(method, params);
        assert!(resp.get("error").is_none(), "{method} failed: {resp}");
        resp["result"].clone()
    }

    /// Calls and returns the error code, panicking on success.
    pub fn err_code(&mut self, method: &str, params: Value) -> i64 {
        let resp = self.call(method, params);
        resp["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("{method} should fail: {resp}"))
    }
}

/// A run object's RFC 3339 timestamp as Unix milliseconds.
pub fn millis(ts: &Value) -> i64 {
    let s = ts.as_str().expect("timestamp string");
    s.parse::<jiff::Timestamp>()
        .expect("rfc3339")
        .as_millisecond()
}
