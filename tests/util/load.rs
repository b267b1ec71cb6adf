//! A client that pings in a loop, one request at a time, reconnecting
//! after each few requests, to watch a daemon through restarts: it counts
//! every connection refused (and any other connect failure) and makes sure
//! every request it sent is answered, retrying on a new connection a
//! request whose connection was closed before its answer (a daemon that
//! exits may close connections it had accepted but not yet read).

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// What the client saw.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Distinct requests sent.
    pub sent: u64,
    /// Distinct requests answered.
    pub answered: u64,
    /// Connects refused (ECONNREFUSED).
    pub refused: u64,
    /// Other connect failures.
    pub connect_errors: Vec<String>,
    /// Requests sent again after their connection closed unanswered.
    pub retried: u64,
    /// Connections made.
    pub connections: u64,
}

/// The running client.
pub struct PingLoad {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    handle: Option<JoinHandle<Report>>,
}

/// Requests per connection before the client reconnects.
const PER_CONNECTION: u32 = 5;

impl PingLoad {
    /// Starts pinging `addr`.
    pub fn start(addr: SocketAddr) -> PingLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let (s, a) = (Arc::clone(&stop), Arc::clone(&answered));
        let handle = std::thread::spawn(move || run(addr, &s, &a));
        PingLoad {
            stop,
            answered,
            handle: Some(handle),
        }
    }

    /// Requests answered so far.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::SeqCst)
    }

    /// Waits until `more` requests beyond the current count are answered.
    pub fn wait_for_answers(&self, more: u64) {
        let target = self.answered() + more;
        super::poll_until(&format!("{target} answered pings"), || {
            (self.answered() >= target).then_some(())
        });
    }

    /// Stops after the request in flight is answered; the report.
    pub fn finish(mut self) -> Report {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .take()
            .expect("running")
            .join()
            .expect("load thread")
    }
}

impl Drop for PingLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn run(addr: SocketAddr, stop: &AtomicBool, answered: &AtomicU64) -> Report {
    let mut r = Report::default();
    let mut id: u64 = 0;
    // The request in flight (sent, not yet answered), if any.
    let mut pending: Option<u64> = None;
    'connections: loop {
        if pending.is_none() && stop.load(Ordering::SeqCst) {
            return r;
        }
        let stream = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                r.refused += 1;
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(e) => {
                r.connect_errors.push(e.to_string());
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        r.connections += 1;
        stream.set_read_timeout(Some(super::WAIT)).expect("timeout");
        let mut reader = BufReader::new(stream);
        for _ in 0..PER_CONNECTION {
            let this = match pending {
                Some(p) => {
                    r.retried += 1;
                    p
                }
                None => {
                    if stop.load(Ordering::SeqCst) {
                        return r;
                    }
                    id += 1;
                    r.sent += 1;
                    id
                }
            };
            pending = Some(this);
            let line = format!("{{\"jsonrpc\":\"2.0\",\"id\":{this},\"method\":\"ping\"}}\n");
            if reader.get_mut().write_all(line.as_bytes()).is_err() {
                continue 'connections;
            }
            let mut answer = String::new();
            match reader.read_line(&mut answer) {
                Ok(n) if n > 0 => {}
                // Closed (or reset) before the answer: ask again elsewhere.
                _ => continue 'connections,
            }
            let v: Value = serde_json::from_str(&answer)
                .unwrap_or_else(|e| panic!("bad answer {answer:?}: {e}"));
            assert_eq!(v["id"], this, "answer to another request: {v}");
            assert!(v.get("result").is_some(), "ping failed: {v}");
            pending = None;
            r.answered += 1;
            answered.fetch_add(1, Ordering::SeqCst);
        }
    }
}
