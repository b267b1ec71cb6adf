//! The http, sql and file.prune job kinds through the real binary.
//!
//! HTTP jobs talk to a tiny server run by the test on 127.0.0.1 (one thread
//! answering a fixed list of connections with hand-written responses); sql
//! jobs use SQLite files the test opens too; file.prune jobs prune trees the
//! test builds in a temp dir. Every wait is a deadline-bounded poll.

use crate::util;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use util::{config, poll_until, Daemon, WAIT};

// ---------------------------------------------------------------- http ---

/// What the test server does with one connection, after reading a request.
enum Reply {
    /// Writes these bytes and closes.
    Send(Vec<u8>),
    /// Never answers; waits for the client to give up.
    Silent,
}

/// One request as the server received it.
struct Seen {
    /// Request line and headers.
    head: String,
    body: Vec<u8>,
}

/// A server answering one connection per reply, then stopping.
struct Server {
    url: String,
    seen: mpsc::Receiver<Seen>,
}

impl Server {
    /// The next request received.
    fn request(&self) -> Seen {
        self.seen
            .recv_timeout(WAIT)
            .expect("a request reached the server")
    }
}

/// An HTTP/1.1 response with a body.
fn response(status: &str, body: &[u8]) -> Reply {
    let mut bytes = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    Reply::Send(bytes)
}

/// Starts a server on 127.0.0.1:0 for `replies`, one connection each.
fn serve(replies: Vec<Reply>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let (tx, seen) = mpsc::channel();
    std::thread::spawn(move || {
        for reply in replies {
            let Some(mut stream) = accept(&listener) else {
                return;
            };
            let Some(request) = read_request(&mut stream) else {
                continue;
            };
            let _ = tx.send(request);
            match reply {
                Reply::Send(bytes) => {
                    let _ = stream.write_all(&bytes);
                }
                Reply::Silent => {
                    // Returns when the client closes (or after WAIT).
                    let _ = stream.read(&mut [0u8; 1]);
                }
            }
        }
    });
    Server { url, seen }
}

/// The next connection, or None after [`WAIT`].
fn accept(listener: &TcpListener) -> Option<TcpStream> {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Ok((stream, _)) = listener.accept() {
            stream.set_nonblocking(false).ok()?;
            stream.set_read_timeout(Some(WAIT)).ok()?;
            return Some(stream);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// Reads a request head and its Content-Length body.
fn read_request(stream: &mut TcpStream) -> Option<Seen> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(i) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = util::read_some(stream, &mut buf).ok().filter(|n| *n > 0)?;
        bytes.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = bytes[end + 4..].to_vec();
    while body.len() < length {
        let n = util::read_some(stream, &mut buf).ok().filter(|n| *n > 0)?;
        body.extend_from_slice(&buf[..n]);
    }
    Some(Seen { head, body })
}

/// A daemon with one http job `h` on `url` plus `extra` job keys.
fn http_daemon(url: &str, extra: &str) -> Daemon {
    let jobs = format!("[[jobs]]\nname = \"h\"\nkind = \"http\"\nurl = \"{url}\"\n{extra}\n");
    Daemon::start(&config("", &jobs))
}

/// Runs job `name` and waits for its end.
fn run_job(d: &Daemon, name: &str) -> Value {
    d.client()
        .ok("jobs.run", json!({"name": name, "wait": true}))
}

fn error_of(run: &Value) -> &str {
    run["error"].as_str().unwrap_or("")
}

#[test]
fn http_200_succeeds_with_status_and_body() {
    let server = serve(vec![response("200 OK", b"all good")]);
    let d = http_daemon(&server.url, "");
    let run = run_job(&d, "h");
    assert_eq!(run["state"], json!("succeeded"), "{run}");
    assert_eq!(run["exit_code"], json!(null));
    assert_eq!(run["error"], json!(null));
    assert_eq!(run["output"], json!("all good"));
    assert_eq!(
        run["result"],
        json!({"status": 200, "body_bytes": 8, "truncated": false})
    );
    let seen = server.request();
    assert!(
        seen.head.starts_with("GET /hook HTTP/1.1\r\n"),
        "{}",
        seen.head
    );
    let head = seen.head.to_ascii_lowercase();
    assert!(head.contains("\r\nuser-agent: tickd/"), "{}", seen.head);
}

#[test]
fn http_500_fails_with_the_status_in_the_error() {
    let server = serve(vec![response("500 Internal Server Error", b"boom")]);
    let d = http_daemon(&server.url, "");
    let run = run_job(&d, "h");
    assert_eq!(run["state"], json!("failed"), "{run}");
    assert_eq!(error_of(&run), "unexpected status 500 (expected 2xx)");
    assert_eq!(run["result"]["status"], json!(500));
    assert_eq!(run["output"], json!("boom"));
}

#[test]
fn http_expect_status_accepts_that_status() {
    let server = serve(vec![response("404 Not Found", b"")]);
    let d = http_daemon(&server.url, "expect_status = 404");
    let run = run_job(&d, "h");
    assert_eq!(run["state"], json!("succeeded"), "{run}");
    assert_eq!(run["result"]["status"], json!(404));
}

#[test]
fn http_post_sends_method_headers_and_body() {
    let server = serve(vec![response("201 Created", b"made")]);
    let extra = r#"method = "post"
headers = { "X-Token" = "abc123", "Content-Type" = "application/json" }
body = '{"hello": "world"}'"#;
    let d = http_daemon(&server.url, extra);
    let run = run_job(&d, "h");
    assert_eq!(run["state"], json!("succeeded"), "{run}");
    let seen = server.request();
    assert!(
        seen.head.starts_with("POST /hook HTTP/1.1\r\n"),
        "{}",
        seen.head
    );
    let head = seen.head.to_ascii_lowercase();
    assert!(head.contains("\r\nx-token: abc123"), "{}", seen.head);
    assert!(
        head.contains("\r\ncontent-type: application/json"),
        "{}",
        seen.head
    );
    assert_eq!(seen.body, br#"{"hello": "world"}"#);
}

#[test]
fn http_refused_connection_fails_clearly() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let url = format!("http://127.0.0.1:{port}/x");
    let d = http_daemon(&url, "");
    let run = run_job(&d, "h");
    assert_eq!(run["state"], json!("failed"), "{run}");
    assert_eq!(
        error_of(&run),
        format!("http GET {url}: connection refused"),
        "{run}"
    );
}

#[test]
fn http_silent_server_times_out() {
    let server = serve(vec![Reply::Silent]);
    let d = http_daemon(&server.url, "timeout = \"500ms\"");
    let run = run_job(&d, "h");
    assert_eq!(run["state"], json!("timed_out"), "{run}");
    assert_eq!(error_of(&run), "timed out after 500ms");
    let ms = run["duration_ms"].as_u64().expect("duration");
    assert!((500..10_000).contains(&ms), "{run}");
    server.request();
}

#[test]
fn http_large_body_keeps_a_bounded_tail() {
    let mut body = vec![b'a'; 1024 * 1024];
    body.extend_from_slice(b"THE END");
    let server = serve(vec![response("200 OK", &body)]);
    let d = http_daemon(&server.url, "");
    let run = run_job(&d, "h");
    assert_eq!(run["state"], json!("succeeded"), "{}", run["error"]);
    assert_eq!(run["result"]["body_bytes"], json!(1024 * 1024 + 7));
    assert_eq!(run["result"]["truncated"], json!(true));
    let output = run["output"].as_str().expect("output");
    assert_eq!(output.len(), 64 * 1024);
    assert!(output.ends_with("aaaTHE END"));
}

// ----------------------------------------------------------------- sql ---

/// A database `t.db` in `dir` with `t(x INTEGER)` holding 1 and 2.
fn sql_database(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("t.db");
    let conn = rusqlite::Connection::open(&path).expect("create db");
    conn.execute_batch("CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (1), (2);")
        .expect("schema");
    path
}

fn sql_values(path: &std::path::Path) -> Vec<i64> {
    let conn = rusqlite::Connection::open(path).expect("open db");
    let mut stmt = conn.prepare("SELECT x FROM t ORDER BY x").expect("prepare");
    let rows = stmt.query_map([], |r| r.get(0)).expect("query");
    rows.collect::<Result<_, _>>().expect("rows")
}

/// A daemon with sql jobs on a fresh database in a temp dir of the test.
fn sql_daemon(jobs: &[(&str, &str, &str)]) -> (Daemon, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sql_database(dir.path());
    let mut text = String::new();
    for (name, sql, extra) in jobs {
        text.push_str(&format!(
            "[[jobs]]\nname = \"{name}\"\nkind = \"sql\"\ndatabase = {:?}\nsql = {sql:?}\n{extra}\n\n",
            db.display().to_string()
        ));
    }
    (Daemon::start(&config("", &text)), dir, db)
}

#[test]
fn sql_batch_commits_and_reports_rows_changed() {
    let sql = "INSERT INTO t VALUES (3); UPDATE t SET x = x * 10 WHERE x >= 2;";
    let (d, _dir, db) = sql_daemon(&[("q", sql, "")]);
    let run = run_job(&d, "q");
    assert_eq!(run["state"], json!("succeeded"), "{run}");
    assert_eq!(run["result"], json!({"rows_changed": 3}));
    assert_eq!(run["output"], json!("3 rows changed"));
    assert_eq!(sql_values(&db), vec![1, 20, 30]);
}

#[test]
fn sql_error_fails_and_rolls_back_the_whole_batch() {
    let sql = "INSERT INTO t VALUES (3); UPDATE nowhere SET x = 1;";
    let (d, _dir, db) = sql_daemon(&[("q", sql, "")]);
    let run = run_job(&d, "q");
    assert_eq!(run["state"], json!("failed"), "{run}");
    assert!(error_of(&run).contains("no such table: nowhere"), "{run}");
    assert_eq!(sql_values(&db), vec![1, 2]);
}

/// Holds an exclusive lock on `db` until dropped (rolls back).
fn lock(db: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(db).expect("open db");
    conn.execute_batch("BEGIN EXCLUSIVE;").expect("lock");
    conn
}

#[test]
fn sql_waits_for_a_locked_database() {
    let (d, _dir, db) = sql_daemon(&[("q", "INSERT INTO t VALUES (7);", "timeout = \"20s\"")]);
    let holder = lock(&db);
    let mut c = d.client();
    let id = c.ok("jobs.run", json!({"name": "q"}))["run_id"]
        .as_str()
        .expect("run_id")
        .to_string();
    poll_until("the run to start", || {
        (c.ok("runs.get", json!({"run_id": id}))["state"] == "running").then_some(())
    });
    // Without waiting for the lock the run would fail at once; it must
    // still be running while the lock is held.
    let held = Instant::now();
    while held.elapsed() < Duration::from_millis(300) {
        let run = c.ok("runs.get", json!({"run_id": id}));
        assert_eq!(run["state"], json!("running"), "{run}");
        std::thread::sleep(Duration::from_millis(20));
    }
    holder.execute_batch("COMMIT;").expect("unlock");
    let run = d.wait_run_done(&id);
    assert_eq!(run["state"], json!("succeeded"), "{run}");
    assert_eq!(run["result"], json!({"rows_changed": 1}));
    assert_eq!(sql_values(&db), vec![1, 2, 7]);
}

#[test]
fn sql_lock_held_past_the_timeout_times_out() {
    let (d, _dir, db) = sql_daemon(&[("q", "INSERT INTO t VALUES (7);", "timeout = \"300ms\"")]);
    let holder = lock(&db);
    let run = run_job(&d, "q");
    assert_eq!(run["state"], json!("timed_out"), "{run}");
    assert_eq!(error_of(&run), "timed out after 300ms");
    drop(holder);
    assert_eq!(sql_values(&db), vec![1, 2]);
}

#[test]
fn sql_cancel_ends_a_wait_for_a_lock() {
    let (d, _dir, db) = sql_daemon(&[("q", "INSERT INTO t VALUES (7);", "timeout = \"20s\"")]);
    let holder = lock(&db);
    let mut c = d.client();
    let id = c.ok("jobs.run", json!({"name": "q"}))["run_id"].clone();
    poll_until("the run to start", || {
        (c.ok("runs.get", json!({"run_id": id}))["state"] == "running").then_some(())
    });
    let run = c.ok("runs.cancel", json!({"run_id": id}));
    assert_eq!(run["state"], json!("cancelled"), "{run}");
    assert_eq!(error_of(&run), "cancelled by request");
    assert!(
        run["duration_ms"].as_u64().expect("duration") < 10_000,
        "{run}"
    );
    drop(holder);
    assert_eq!(sql_values(&db), vec![1, 2]);
}

// ---------------------------------------------------------- file.prune ---

const HOUR: Duration = Duration::from_secs(3600);

/// Creates `path`, holding `bytes`, last modified `age` ago.
fn make_file(path: &std::path::Path, bytes: &[u8], age: Duration) {
    let mut file = std::fs::File::create(path).expect("create file");
    if !bytes.is_empty() {
        file.write_all(bytes).expect("write file");
    }
    if !age.is_zero() {
        let when = std::time::SystemTime::now() - age;
        file.set_modified(when).expect("set mtime");
    }
}

/// A daemon with one file.prune job `p` on `$DIR/tree` (created empty).
fn prune_daemon(extra: &str) -> (Daemon, std::path::PathBuf) {
    let jobs = format!(
        "[[jobs]]\nname = \"p\"\nkind = \"file.prune\"\npath = \"$DIR/tree\"\n\
         older_than = \"1h\"\n{extra}\n"
    );
    let d = Daemon::start(&config("file_threads = 2", &jobs));
    let tree = d.dir().join("tree");
    std::fs::create_dir(&tree).expect("mkdir tree");
    (d, tree)
}

fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn prune_100k_files_deletes_exactly_the_old_matching_ones() {
    let (d, tree) = prune_daemon("pattern = \"*.log\"\nrecursive = true");
    // 100 directories of 1000 files: i % 4 == 0 old .log (1 byte), 1 old
    // .txt, 2 new .log, 3 new .txt.
    for dir in 0..100 {
        let sub = tree.join(format!("d{dir:02}"));
        std::fs::create_dir(&sub).expect("mkdir");
        for i in 0..1000 {
            let (ext, bytes, age) = match i % 4 {
                0 => ("log", &b"x"[..], 2 * HOUR),
                1 => ("txt", &b""[..], 2 * HOUR),
                2 => ("log", &b""[..], Duration::ZERO),
                _ => ("txt", &b""[..], Duration::ZERO),
            };
            make_file(&sub.join(format!("f{i}.{ext}")), bytes, age);
        }
    }
    let run = run_job(&d, "p");
    assert_eq!(run["state"], json!("succeeded"), "{run}");
    let result = &run["result"];
    assert_eq!(result["files_scanned"], json!(100_000), "{run}");
    assert_eq!(result["files_deleted"], json!(25_000), "{run}");
    assert_eq!(result["bytes_freed"], json!(25_000), "{run}");
    assert_eq!(result["errors"], json!(0), "{run}");
    assert_eq!(run["progress"], json!(1.0), "{run}");
    assert_eq!(names_in(&tree).len(), 100, "directories are kept");
    for dir in 0..100 {
        let names = names_in(&tree.join(format!("d{dir:02}")));
        assert_eq!(names.len(), 750, "d{dir:02}");
        assert!(names.iter().all(|n| {
            let i: usize = n[1..n.find('.').expect("dot")].parse().expect("index");
            !i.is_multiple_of(4)
        }));
    }
}

#[test]
fn prune_never_follows_a_symlink_out_of_the_tree() {
    let (d, tree) = prune_daemon("pattern = \"*.log\"\nrecursive = true");
    let outside = d.dir().join("outside");
    std::fs::create_dir(&outside).expect("mkdir outside");
    for name in ["a.log", "b.log"] {
        make_file(&outside.join(name), b"keep", 2 * HOUR);
    }
    make_file(&tree.join("mine.log"), b"x", 2 * HOUR);
    std::os::unix::fs::symlink(&outside, tree.join("link")).expect("dir link");
    std::os::unix::fs::symlink(outside.join("a.log"), tree.join("old.log")).expect("file link");
    let run = run_job(&d, "p");
    assert_eq!(run["state"], json!("succeeded"), "{run}");
    assert_eq!(run["result"]["files_deleted"], json!(1), "{run}");
    assert_eq!(names_in(&outside), ["a.log", "b.log"]);
    assert_eq!(names_in(&tree), ["link", "old.log"]);
    for link in ["link", "old.log"] {
        let meta = std::fs::symlink_metadata(tree.join(link)).expect("link kept");
        assert!(meta.file_type().is_symlink(), "{link}");
    }
}

#[test]
fn prune_without_recursive_keeps_subdirectory_files() {
    let (d, tree) = prune_daemon("");
    make_file(&tree.join("top"), b"x", 2 * HOUR);
    std::fs::create_dir(tree.join("sub")).expect("mkdir");
    make_file(&tree.join("sub/deep"), b"x", 2 * HOUR);
    let run = run_job(&d, "p");
    assert_eq!(run["state"], json!("succeeded"), "{run}");
    assert_eq!(names_in(&tree), ["sub"]);
    assert_eq!(names_in(&tree.join("sub")), ["deep"]);
    assert_eq!(run["result"]["files_deleted"], json!(1), "{run}");
}

#[test]
fn prune_of_a_missing_path_fails_clearly() {
    let (d, tree) = prune_daemon("");
    std::fs::remove_dir(&tree).expect("rmdir");
    let run = run_job(&d, "p");
    assert_eq!(run["state"], json!("failed"), "{run}");
    assert_eq!(
        error_of(&run),
        format!("path {}: No such file or directory", tree.display())
    );
}
