//! The Unix socket listener through the real binary: same JSON-RPC,
//! trusted clients, its file mode, stale files replaced, anything else
//! refused at start with exit code 2, and the file removed on shutdown.

use crate::util;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, Stdio};
use util::{config, Daemon, WAIT};

/// Calls one method over the Unix socket at `path`.
fn call(path: &Path, method: &str, params: Value) -> Value {
    let stream = UnixStream::connect(path).expect("connect to the unix socket");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut reader = BufReader::new(stream);
    let line = json!({"id": 1, "method": method, "params": params});
    reader
        .get_mut()
        .write_all(format!("{line}\n").as_bytes())
        .expect("write");
    let mut answer = String::new();
    reader.read_line(&mut answer).expect("read");
    serde_json::from_str(&answer).expect("JSON answer")
}

/// Runs `tickd run` on a config expected to fail at start; returns the
/// exit code and stderr.
fn start_fails(dir: &Path, daemon_keys: &str) -> (Option<i32>, String) {
    let conf = dir.join("fail.toml");
    std::fs::write(&conf, config(daemon_keys, "")).expect("write config");
    let mut child = Command::new(util::bin())
        .args(["run", "--config"])
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let Some(status) = util::wait_child(&mut child, WAIT) else {
        let _ = child.kill();
        panic!("tickd did not exit");
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    (status.code(), err)
}

#[test]
fn unix_clients_speak_json_rpc_without_auth_and_the_file_goes_at_shutdown() {
    let mut d = Daemon::start(&config(
        "auth_token = \"tok\"\nunix_socket = \"$DIR/tickd.sock\"\nunix_socket_mode = \"0660\"",
        "",
    ));
    let path = d.dir().join("tickd.sock");
    let meta = std::fs::symlink_metadata(&path).expect("socket file");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert!(d.log.wait_for("tickd.sock", 0, WAIT).is_some());

    // TCP needs the token; the Unix socket is trusted.
    assert_eq!(d.client().err_code("status", json!({})), -32001);
    let status = call(&path, "status", json!({}));
    assert_eq!(status["result"]["health"], json!("ok"), "{status}");
    assert_eq!(
        call(&path, "nope", json!({}))["error"]["code"],
        json!(-32601)
    );

    let bye = call(&path, "shutdown", json!({}));
    assert_eq!(bye["result"], json!({"shutting_down": true}));
    let exit = d.wait_exit(WAIT).expect("exit after shutdown");
    assert_eq!(exit.code(), Some(0));
    assert!(!path.exists(), "socket file left behind");
}

#[test]
fn default_mode_is_0600_and_a_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("stale.sock");
    // A socket file nobody listens on, as a killed daemon leaves it.
    drop(UnixListener::bind(&path).expect("bind"));
    assert!(path.exists());
    let d = Daemon::start(&config(
        &format!("unix_socket = \"{}\"", path.display()),
        "",
    ));
    assert!(d.log.wait_for("replacing stale socket", 0, WAIT).is_some());
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(call(&path, "ping", json!({}))["result"], json!("pong"));
}

#[test]
fn anything_else_at_the_path_is_refused_with_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("precious");
    std::fs::write(&file, "data").expect("write");
    let (code, err) = start_fails(dir.path(), &format!("unix_socket = \"{}\"", file.display()));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).expect("kept"), "data");

    // A live socket: another daemon owns it.
    let live = dir.path().join("live.sock");
    let d = Daemon::start(&config(
        &format!("unix_socket = \"{}\"", live.display()),
        "",
    ));
    let (code, err) = start_fails(dir.path(), &format!("unix_socket = \"{}\"", live.display()));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("another process is listening"), "{err}");
    // The first daemon is unaffected.
    assert_eq!(call(&live, "ping", json!({}))["result"], json!("pong"));
    drop(d);
}
