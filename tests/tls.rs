//! TLS on the TCP listener (`tls_cert`, `tls_key`; issue 19 item 4) and
//! `http_allowed_hosts`: a test CA and certificates made here with the
//! `openssl` CLI, the real daemon, a rustls client for JSON-RPC, `curl
//! --cacert` for HTTP, and `tickd ctl --tls --ca`.

use crate::util::http::HttpConn;
use crate::util::tls::{curl, der_of, set_mode, tls_keys, trusting, Pki, TlsClient};
use crate::util::{self, config, Daemon, WAIT};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Manual-only jobs named job0000...
fn jobs(n: usize) -> String {
    (0..n)
        .map(|i| format!("[[jobs]]\nname = \"job{i:04}\"\ncommand = [\"true\"]\n"))
        .collect()
}

/// Closed connections counted under `cause` in `status`.
fn closed(status: &Value, cause: &str) -> u64 {
    status["clients"]["connections_closed"][cause]
        .as_u64()
        .unwrap_or_else(|| panic!("no {cause} count: {status}"))
}

#[test]
fn json_rpc_and_http_work_over_tls_and_the_unix_socket_stays_plaintext() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let (cert, key) = pki.leaf("ca", "server", 1);
    let extra = format!(
        "{}max_output_bytes = 65536\nunix_socket = \"$DIR/t.sock\"\n",
        tls_keys(&cert, &key)
    );
    let d = Daemon::start(&config(&extra, &jobs(600)));
    assert!(
        d.log
            .all()
            .iter()
            .any(|l| l.contains("(TLS only, certificate")),
        "{:?}",
        d.log.all()
    );
    let trust = trusting(&ca);
    let mut c = TlsClient::connect(d.addr, &trust);
    assert_eq!(c.peer_cert(), der_of(&cert));
    assert_eq!(c.ok("ping", json!({})), json!("pong"));
    // Pipelined: both answered, in order.
    c.send_raw(b"{\"id\":7,\"method\":\"ping\"}\n{\"id\":8,\"method\":\"jobs.get\",\"params\":{\"name\":\"job0001\"}}\n");
    assert_eq!(c.read_json()["id"], json!(7));
    let got = c.read_json();
    assert_eq!(got["result"]["name"], json!("job0001"), "{got}");
    // A burst of requests many TLS records and read buffers long, in one
    // write: every one answered, in order.
    let burst: String = (0..4000)
        .map(|i| format!("{{\"id\":{i},\"method\":\"ping\"}}\n"))
        .collect();
    c.send_raw(burst.as_bytes());
    for i in 0..4000 {
        let answer = c.read_json();
        assert_eq!(answer["id"], json!(i), "{answer}");
    }
    // An answer of many TLS records (about 600 job objects).
    let page = c.ok("jobs.list", json!({"limit": 150}));
    assert_eq!(page["jobs"].as_array().map(Vec::len), Some(150), "{page}");

    // HTTP: curl --cacert; a streamed (chunked) answer many times the
    // output cap goes through TLS whole.
    let base = format!("https://127.0.0.1:{}", d.addr.port());
    let (ok, out) = curl(&[&format!("{base}/status")], &ca);
    assert!(ok && out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("\"uptime_ms\""), "{out}");
    let (ok, out) = curl(&[&format!("{base}/metrics")], &ca);
    assert!(ok, "{out}");
    assert!(
        out.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{}",
        &out[..out.len().min(500)]
    );
    assert!(out.len() > 4 * 65536, "{} bytes", out.len());
    assert!(
        out.contains("job_name=\"job0599\""),
        "the last job's series"
    );
    // The CA is what makes curl trust it.
    let (ok, out) = curl(&[&format!("{base}/status")], Path::new("/dev/null"));
    assert!(!ok, "trusted without the CA: {out}");

    // The Unix socket speaks plaintext JSON-RPC, as before.
    let mut unix = std::os::unix::net::UnixStream::connect(d.dir().join("t.sock")).expect("unix");
    unix.set_read_timeout(Some(WAIT)).expect("timeout");
    unix.write_all(b"{\"id\":1,\"method\":\"ping\"}\n")
        .expect("write");
    let mut line = String::new();
    BufReader::new(&unix).read_line(&mut line).expect("read");
    assert!(line.contains("\"pong\""), "{line}");
    assert_eq!(c.ok("ping", json!({})), json!("pong"), "still served");
}

#[test]
fn plaintext_on_the_tls_port_is_closed_and_http_is_told_to_use_https() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let (cert, key) = pki.leaf("ca", "server", 1);
    let d = Daemon::start(&config(&tls_keys(&cert, &key), ""));
    // JSON-RPC in plaintext: closed, nothing said.
    let mut plain = d.client();
    plain.send_raw(b"{\"id\":1,\"method\":\"ping\"}\n");
    assert!(plain.is_closed(), "a plaintext JSON-RPC client was served");
    // HTTP in plaintext: one 400 saying to use https, then closed.
    let mut http = HttpConn::connect(d.addr);
    let r = http.request("GET", "/status", &[], "");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("https://"), "{}", r.body);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(http.is_closed());
    let mut c = TlsClient::connect(d.addr, &trusting(&ca));
    let status = util::poll_until("both closes counted", || {
        let s = c.ok("status", json!({}));
        (closed(&s, "tls") == 2).then_some(s)
    });
    assert_eq!(closed(&status, "error"), 0, "{status}");
}

/// Reads until the end or `WAIT`; true if the daemon closed it.
fn ends(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut buf = [0u8; 256];
    loop {
        match util::read_some(s, &mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn a_stalled_handshake_is_closed_by_the_timer_and_others_are_served() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let (cert, key) = pki.leaf("ca", "server", 1);
    // idle_timeout far away: only the handshake limit can close them.
    let d = Daemon::start(&config(
        &format!("{}idle_timeout = \"10m\"\n", tls_keys(&cert, &key)),
        "",
    ));
    let started = Instant::now();
    // One sends nothing, one the first 3 bytes of a ClientHello record.
    let mut silent = TcpStream::connect(d.addr).expect("connect");
    let mut partial = TcpStream::connect(d.addr).expect("connect");
    partial.write_all(&[0x16, 0x03, 0x01]).expect("write");
    // Meanwhile a whole client is served, on and on.
    let trust = trusting(&ca);
    let mut c = TlsClient::connect(d.addr, &trust);
    assert_eq!(c.ok("ping", json!({})), json!("pong"));
    assert!(ends(&mut silent), "a silent TLS connection stayed");
    assert!(ends(&mut partial), "a stalled handshake stayed");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(9),
        "closed before the 10 s limit: {waited:?}"
    );
    assert_eq!(c.ok("ping", json!({})), json!("pong"), "the other is kept");
    let status = c.ok("status", json!({}));
    assert_eq!(closed(&status, "tls"), 2, "{status}");
    // A fresh client still gets in.
    assert_eq!(
        TlsClient::connect(d.addr, &trust).ok("ping", json!({})),
        json!("pong")
    );
}

#[test]
fn sighup_renews_the_certificate_rejects_a_bad_one_and_can_turn_tls_off() {
    let pki = Pki::new();
    let (ca1, ca2) = (pki.ca("ca1"), pki.ca("ca2"));
    let (cert, key) = pki.leaf("ca1", "first", 1);
    let (cert2, key2) = pki.leaf("ca2", "second", 2);
    // Served from these paths; renewal writes over them, as certbot does.
    let (live_cert, live_key) = (pki.path("live.pem"), pki.path("live.key"));
    std::fs::copy(&cert, &live_cert).expect("copy");
    std::fs::copy(&key, &live_key).expect("copy");
    set_mode(&live_key, 0o600);
    let text = config(&tls_keys(&live_cert, &live_key), "");
    let d = Daemon::start(&text);
    let (trust1, trust2) = (trusting(&ca1), trusting(&ca2));
    let mut old = TlsClient::connect(d.addr, &trust1);
    assert_eq!(old.peer_cert(), der_of(&cert));

    std::fs::copy(&cert2, &live_cert).expect("copy");
    std::fs::copy(&key2, &live_key).expect("copy");
    d.signal(rustix::process::Signal::HUP);
    util::poll_until("generation 2", || {
        (old.ok("status", json!({}))["config"]["generation"] == 2).then_some(())
    });
    assert!(d
        .log
        .wait_for("reload read a new TLS certificate", 0, WAIT)
        .is_some());
    // New connections get the new certificate; the open one is kept.
    let mut fresh = TlsClient::connect(d.addr, &trust2);
    assert_eq!(fresh.peer_cert(), der_of(&cert2));
    assert!(
        TlsClient::try_connect(d.addr, &trust1).is_err(),
        "the old certificate is still served"
    );
    assert_eq!(old.ok("ping", json!({})), json!("pong"));

    // A broken certificate file: the reload is rejected, naming the file
    // and line of the key, and the certificate in force stays.
    std::fs::write(&live_cert, "not a certificate\n").expect("write");
    d.signal(rustix::process::Signal::HUP);
    let status = util::poll_until("the reload to be rejected", || {
        let s = fresh.ok("status", json!({}));
        s["config"]["last_reload_error"].is_string().then_some(s)
    });
    let error = status["config"]["last_reload_error"].as_str().unwrap_or("");
    assert!(error.contains("tickd.toml:4: daemon.tls_cert"), "{error}");
    assert!(error.contains("live.pem"), "{error}");
    assert_eq!(status["config"]["generation"], json!(2));
    assert_eq!(
        TlsClient::connect(d.addr, &trust2).peer_cert(),
        der_of(&cert2)
    );

    // Turned off by a reload: said loudly, new connections are plaintext,
    // the open TLS one is kept.
    d.write_config(&config("", ""));
    d.signal(rustix::process::Signal::HUP);
    let (_, line) = d
        .log
        .wait_for("SECURITY: reload turned TLS off", 0, WAIT)
        .expect("warned");
    assert!(line.contains("WARN"), "{line}");
    util::poll_until("generation 3", || {
        (fresh.ok("status", json!({}))["config"]["generation"] == 3).then_some(())
    });
    assert_eq!(d.client().ok("ping", json!({})), json!("pong"));
    assert_eq!(fresh.ok("ping", json!({})), json!("pong"));
}

#[test]
fn ctl_speaks_tls_with_its_ca() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let (cert, key) = pki.leaf("ca", "server", 1);
    let extra = format!("{}auth_token = \"s3cret\"\n", tls_keys(&cert, &key));
    let d = Daemon::start(&config(&extra, ""));
    let addr = d.addr.to_string();
    let ctl = |args: &[&str]| {
        let out = Command::new(util::bin())
            .args(["ctl", "--connect", &addr, "--token", "s3cret"])
            .args(args)
            .env_remove("TICKD_ADDR")
            .output()
            .expect("run ctl");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ca_arg = ca.display().to_string();
    let (code, out, err) = ctl(&["--tls", "--ca", &ca_arg, "--json", "status"]);
    assert_eq!(code, Some(0), "{err}");
    let status: Value = serde_json::from_str(&out).expect("JSON");
    assert!(status["uptime_ms"].is_u64(), "{status}");
    // Without the CA the test certificate is not trusted.
    let (code, _, err) = ctl(&["--tls", "status"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--ca"), "{err}");
    // Without --tls the TLS port does not answer.
    let (code, _, err) = ctl(&["status"]);
    assert_eq!(code, Some(1), "{err}");
}

#[test]
fn http_allowed_hosts_pass_the_rebinding_guard_live() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let (cert, key) = pki.leaf("ca", "server", 1);
    let tls = tls_keys(&cert, &key);
    let allow = |hosts: &str| config(&format!("{tls}http_allowed_hosts = [{hosts}]\n"), "");
    let d = Daemon::start(&allow("\"tickd.example.internal\""));
    let port = d.addr.port();
    let get = |host: &str| {
        let (ok, out) = curl(
            &[
                "--resolve",
                &format!("{host}:{port}:127.0.0.1"),
                &format!("https://{host}:{port}/status"),
            ],
            &ca,
        );
        assert!(ok, "{out}");
        out.split_whitespace().nth(1).unwrap_or("").to_string()
    };
    // The name the certificate carries, as a proxy or a browser sends it
    // (Host with the port).
    assert_eq!(get("tickd.example.internal"), "200");
    // Other names are still refused, as before.
    assert_eq!(get("localhost"), "200");
    let (ok, out) = curl(
        &[
            "-H",
            "Host: evil.example",
            &format!("https://127.0.0.1:{port}/status"),
        ],
        &ca,
    );
    assert!(ok && out.starts_with("HTTP/1.1 403"), "{out}");
    assert!(out.contains("http_allowed_hosts"), "{out}");
    let (_, out) = curl(
        &[
            "-H",
            "Host: other.example.internal",
            &format!("https://127.0.0.1:{port}/status"),
        ],
        &ca,
    );
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
    // Live: a reload lists it, and it passes (no port: any port).
    d.write_config(&allow(
        "\"tickd.example.internal\", \"Other.Example.Internal\"",
    ));
    d.signal(rustix::process::Signal::HUP);
    util::poll_until("the new list in force", || {
        let (_, out) = curl(
            &[
                "-H",
                "Host: other.example.internal",
                &format!("https://127.0.0.1:{port}/status"),
            ],
            &ca,
        );
        out.starts_with("HTTP/1.1 200").then_some(())
    });
    // Without the port in Host, too (HTTP/1.1 default-port form).
    let (_, out) = curl(
        &[
            "-H",
            "Host: tickd.example.internal",
            &format!("https://127.0.0.1:{port}/status"),
        ],
        &ca,
    );
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

#[test]
fn tls_config_errors_name_the_file_and_line() {
    let pki = Pki::new();
    pki.ca("ca");
    let (cert, key) = pki.leaf("ca", "server", 1);
    let daemon = |keys: &str| format!("[daemon]\nlisten = \"127.0.0.1:0\"\n{keys}");
    let cert_only = format!("tls_cert = \"{}\"\n", cert.display());
    let (code, err) = util::check_text(&daemon(&cert_only));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("bad.toml:3: daemon.tls_cert: set tls_key too"),
        "{err}"
    );
    // A key others may read: refused.
    set_mode(&key, 0o644);
    let (code, err) = util::check_text(&daemon(&tls_keys(&cert, &key)));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("bad.toml:4: daemon.tls_key"), "{err}");
    assert!(err.contains("readable by others"), "{err}");
    // Its group only: a warning.
    set_mode(&key, 0o640);
    let file = pki.path("group.toml");
    std::fs::write(&file, daemon(&tls_keys(&cert, &key))).expect("write");
    let out = Command::new(util::bin())
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .expect("tickd check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("group.toml:4: daemon.tls_key") && text.contains("readable by its group"),
        "{text}"
    );
    set_mode(&key, 0o600);
    // The key of another certificate.
    let (_, other_key) = pki.leaf("ca", "other", 2);
    let (code, err) = util::check_text(&daemon(&tls_keys(&cert, &other_key)));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("daemon.tls_key"), "{err}");
    // A missing file.
    let missing = pki.path("missing.pem");
    let (code, err) = util::check_text(&daemon(&tls_keys(&missing, &key)));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("bad.toml:3: daemon.tls_cert: cannot read"),
        "{err}"
    );
    // http_allowed_hosts takes names only.
    let (code, err) = util::check_text(&daemon("http_allowed_hosts = [\"https://x.example/\"]\n"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("daemon.http_allowed_hosts"), "{err}");
}
