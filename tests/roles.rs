//! Roles (issue 19, item 3), through the real binary: every JSON-RPC
//! method and every HTTP route against a read, an operate and an admin
//! token (allowed, or -32003 / 403 naming the role needed); a read token's
//! view of job definitions (secrets redacted); the legacy `auth_token` as
//! admin; the Unix socket as admin; a reload that downgrades or removes a
//! connection's token; the audit log; the config's refusals.

use crate::util;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use util::http::HttpConn;
use util::{config, Daemon, WAIT};

const ADMIN: &str = "Adm1n-s3cret";
const OPERATE: &str = "0perate-s3cret";
const READ: &str = "Re4d-s3cret";

/// The role each method needs: written out here, apart from the code's
/// table, so that a change of the code's table must be made here too.
const METHODS: &[(&str, &str)] = &[
    ("ping", "read"),
    ("auth", "read"),
    ("status", "read"),
    ("jobs.list", "read"),
    ("jobs.get", "read"),
    ("runs.get", "read"),
    ("runs.list", "read"),
    ("runs.output", "read"),
    ("subscribe", "read"),
    ("jobs.run", "operate"),
    ("runs.cancel", "operate"),
    ("jobs.pause", "operate"),
    ("jobs.resume", "operate"),
    ("reload", "admin"),
    ("shutdown", "admin"),
    ("upgrade", "admin"),
    ("submit", "admin"),
    ("jobs.put", "admin"),
    ("jobs.delete", "admin"),
    ("debug.kill_worker", "admin"),
    ("debug.failpoint", "admin"),
    ("debug.clock_jump", "admin"),
];

/// The role each route needs, likewise (`NAME`, `ID`: any job, any run).
const ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/", "read"),
    ("GET", "/metrics", "read"),
    ("GET", "/cluster", "read"),
    ("GET", "/status", "read"),
    ("GET", "/jobs", "read"),
    ("GET", "/jobs/NAME", "read"),
    ("GET", "/runs", "read"),
    ("GET", "/runs/ID", "read"),
    ("GET", "/runs/ID/output", "read"),
    ("POST", "/jobs/NAME/run", "operate"),
    ("POST", "/jobs/NAME/pause", "operate"),
    ("POST", "/jobs/NAME/resume", "operate"),
    ("POST", "/runs/ID/cancel", "operate"),
    ("PUT", "/jobs/NAME", "admin"),
    ("DELETE", "/jobs/NAME", "admin"),
    ("POST", "/reload", "admin"),
];

/// The tokens: (secret, name, role).
const TOKENS: [(&str, &str, &str); 3] = [
    (READ, "dash", "read"),
    (OPERATE, "ci", "operate"),
    (ADMIN, "auth_token", "admin"),
];

const JOBS: &str = r#"
[[jobs]]
name = "hello"
kind = "exec"
command = ["sh", "-c", "echo hi"]
env = { SECRET = "hunter2", PLAIN = "x" }

[[jobs]]
name = "hook"
kind = "http"
url = "http://127.0.0.1:9/"
method = "POST"
headers = { Authorization = "Bearer hook-s3cret" }
body = '{"password":"p4ss"}'
"#;

/// The `[[tokens]]` tables, with `ci`'s role and whether `dash` is kept.
fn tokens(ci_role: &str, with_dash: bool) -> String {
    let mut t =
        format!("[[tokens]]\nname = \"ci\"\ntoken = \"{OPERATE}\"\nrole = \"{ci_role}\"\n\n");
    if with_dash {
        t.push_str(&format!(
            "[[tokens]]\nname = \"dash\"\ntoken = \"{READ}\"\nrole = \"read\"\n\n"
        ));
    }
    t
}

fn text(ci_role: &str, with_dash: bool) -> String {
    let daemon = format!(
        "auth_token = \"{ADMIN}\"\nunix_socket = \"$DIR/tickd.sock\"\n\
         allow_submit = true\nallow_job_api = true"
    );
    format!("{}{}", config(&daemon, JOBS), tokens(ci_role, with_dash))
}

fn daemon() -> Daemon {
    Daemon::start(&text("operate", true))
}

/// Whether a client of `role` may do what needs `needed`.
fn allows(role: &str, needed: &str) -> bool {
    let rank = |r: &str| ["read", "operate", "admin"].iter().position(|x| *x == r);
    rank(role) >= rank(needed)
}

/// A JSON-RPC connection authenticated with `secret`.
fn client_as(d: &Daemon, secret: &str) -> util::Client {
    let mut c = d.client();
    c.ok("auth", json!({"token": secret}));
    c
}

/// Params that reach each method's handler without harm.
fn params_of(method: &str) -> Value {
    match method {
        "jobs.get" | "jobs.run" | "jobs.pause" | "jobs.resume" => json!({"name": "hello"}),
        "runs.get" | "runs.cancel" | "runs.output" => json!({"run_id": "999999"}),
        "jobs.delete" => json!({"name": "no-such-job"}),
        "submit" => json!({"job": {"kind": "exec", "command": ["true"]}}),
        "jobs.put" => json!({"job": {"name": "api-job", "command": ["true"]}}),
        _ => json!({}),
    }
}

/// The answer to `method` (own params) from a client holding `secret`.
fn call_as(d: &Daemon, secret: &str, method: &str) -> Value {
    let mut c = client_as(d, secret);
    let params = if method == "auth" {
        json!({"token": secret})
    } else {
        params_of(method)
    };
    c.call(method, params)
}

/// Asserts that `answer` is the refusal of `what` (needing `needed`) to
/// the token `name` of role `role`.
fn assert_denied(answer: &Value, what: &str, needed: &str, name: &str, role: &str) {
    assert_eq!(
        answer["error"]["code"],
        json!(-32003),
        "{what} as {role}: {answer}"
    );
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert_eq!(
        message,
        format!("forbidden: {what} needs role {needed} (token \"{name}\" has {role})"),
    );
}

#[test]
fn the_tests_table_is_the_codes_and_covers_every_method() {
    for m in tickd::protocol::rpc::METHODS {
        assert!(
            METHODS.iter().any(|(n, _)| n == m),
            "method {m} is not classified in tests/roles.rs"
        );
    }
    for (m, role) in METHODS {
        assert_eq!(tickd::auth::role_for_method(m).as_str(), *role, "{m}");
    }
    let mut code: Vec<(&str, &str, &str)> = tickd::auth::ROUTE_ROLES
        .iter()
        .map(|(m, p, r)| (*m, *p, r.as_str()))
        .collect();
    let mut mine = ROUTES.to_vec();
    code.sort_unstable();
    mine.sort_unstable();
    assert_eq!(
        code, mine,
        "auth::ROUTE_ROLES and this file's ROUTES differ"
    );
}

#[test]
fn every_method_against_every_role() {
    let d = daemon();
    for (secret, name, role) in TOKENS {
        for &(method, needed) in METHODS {
            let known = tickd::protocol::rpc::METHODS.contains(&method);
            // These two end the daemon: judged below.
            if method == "shutdown" || method == "upgrade" || !known {
                continue;
            }
            let answer = call_as(&d, secret, method);
            if allows(role, needed) {
                assert_ne!(
                    answer["error"]["code"],
                    json!(-32003),
                    "{method} as {role} must be allowed: {answer}"
                );
            } else {
                assert_denied(&answer, method, needed, name, role);
            }
        }
    }
    // Nothing a refused call asked for was done: `hello` ran only for
    // operate and admin, and the reload only for admin.
    let mut admin = client_as(&d, ADMIN);
    let status = admin.ok("status", json!({}));
    assert_eq!(
        status["config"]["generation"],
        json!(2),
        "one reload (admin)"
    );
    let refused = status["clients"]["role_denied"]
        .as_u64()
        .unwrap_or_default();
    let expected = METHODS
        .iter()
        .filter(|(m, _)| {
            !["shutdown", "upgrade"].contains(m) && tickd::protocol::rpc::METHODS.contains(m)
        })
        .map(|(_, needed)| {
            TOKENS
                .iter()
                .filter(|(_, _, role)| !allows(role, needed))
                .count() as u64
        })
        .sum::<u64>();
    assert_eq!(refused, expected, "status.clients.role_denied");
    // upgrade: refused to read and operate (admin's would replace the
    // daemon: tests/upgrade.rs).
    for (secret, name, role) in &TOKENS[..2] {
        assert_denied(
            &call_as(&d, secret, "upgrade"),
            "upgrade",
            "admin",
            name,
            role,
        );
    }
    // shutdown last: refused to read and operate, done for admin.
    for (secret, name, role) in &TOKENS[..2] {
        assert_denied(
            &call_as(&d, secret, "shutdown"),
            "shutdown",
            "admin",
            name,
            role,
        );
    }
    assert_eq!(
        call_as(&d, ADMIN, "shutdown")["result"]["shutting_down"],
        json!(true)
    );
}

/// The path of a route row with a real job and run id.
fn concrete(path: &str) -> String {
    path.replace("NAME", "hello").replace("ID", "999999")
}

#[test]
fn every_route_against_every_role() {
    let d = daemon();
    for (secret, name, role) in TOKENS {
        let bearer = format!("Bearer {secret}");
        for &(method, path, needed) in ROUTES {
            let path = match (method, path) {
                ("PUT", _) => "/jobs/api-route".to_string(),
                ("DELETE", _) => "/jobs/no-such-job".to_string(),
                _ => concrete(path),
            };
            let body = if method == "PUT" {
                r#"{"command":["true"]}"#
            } else {
                ""
            };
            let headers = [
                ("Authorization", bearer.as_str()),
                ("Content-Type", "application/json"),
            ];
            let r = HttpConn::connect(d.addr).request(method, &path, &headers, body);
            if allows(role, needed) {
                assert!(
                    ![401, 403].contains(&r.status),
                    "{method} {path} as {role}: {} {}",
                    r.status,
                    r.body
                );
            } else {
                assert_eq!(r.status, 403, "{method} {path} as {role}: {}", r.body);
                let err = r.json();
                assert_eq!(err["code"], json!(-32003));
                let message = err["message"].as_str().unwrap_or_default();
                assert!(
                    message.starts_with("forbidden: ")
                        && message.ends_with(&format!(
                            " needs role {needed} (token \"{name}\" has {role})"
                        )),
                    "{message}"
                );
            }
        }
    }
    // The reload route ran once (admin); the refused ones did nothing.
    let status = client_as(&d, ADMIN).ok("status", json!({}));
    assert_eq!(status["config"]["generation"], json!(2));
}

/// A role too low for a route hears so, whatever is wrong with the rest
/// of its request; a role high enough hears what is wrong.
#[test]
fn a_role_too_low_is_told_before_its_bad_params() {
    let d = daemon();
    let bad = [
        ("PUT", "/jobs/api-route", "{not json"),
        ("DELETE", "/jobs/hello?cancel=maybe", ""),
        ("POST", "/jobs/hello/run", "{not json"),
        ("POST", "/jobs/x%ZZ/pause", ""),
        ("POST", "/runs/1%ZZ/cancel", ""),
    ];
    for (method, path, body) in bad {
        let ask = |secret: &str| {
            let bearer = format!("Bearer {secret}");
            let headers = [
                ("Authorization", bearer.as_str()),
                ("Content-Type", "application/json"),
            ];
            HttpConn::connect(d.addr).request(method, path, &headers, body)
        };
        let read = ask(READ);
        assert_eq!(read.status, 403, "{method} {path} as read: {}", read.body);
        let message = read.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            message.ends_with("(token \"dash\" has read)"),
            "{method} {path}: {message}"
        );
        let admin = ask(ADMIN);
        assert_eq!(
            admin.status, 400,
            "{method} {path} as admin: {}",
            admin.body
        );
    }
}

#[test]
fn batches_are_judged_member_by_member() {
    let d = daemon();
    let mut c = client_as(&d, READ);
    c.send_raw(
        br#"[{"id":1,"method":"status"},{"id":2,"method":"jobs.run","params":{"name":"hello"}},{"id":3,"method":"jobs.get","params":{"name":"hello"}}]
"#,
    );
    let answers = c.read_json();
    let answers = answers.as_array().expect("an array");
    assert!(answers[0]["result"].is_object(), "{answers:?}");
    assert_denied(&answers[1], "jobs.run", "operate", "dash", "read");
    assert_eq!(answers[2]["result"]["name"], json!("hello"));
}

#[test]
fn a_read_token_sees_definitions_with_their_secrets_redacted() {
    let d = daemon();
    let redacted = json!("<redacted>");
    for via_http in [false, true] {
        let (hello, hook) = if via_http {
            let get = |path: &str| {
                let bearer = format!("Bearer {READ}");
                let r = HttpConn::connect(d.addr).request(
                    "GET",
                    path,
                    &[("Authorization", &bearer)],
                    "",
                );
                assert_eq!(r.status, 200, "{}", r.body);
                r.json()
            };
            (get("/jobs/hello"), get("/jobs/hook"))
        } else {
            let mut c = client_as(&d, READ);
            (
                c.ok("jobs.get", json!({"name": "hello"})),
                c.ok("jobs.get", json!({"name": "hook"})),
            )
        };
        let def = &hello["definition"];
        assert_eq!(def["command"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(def["env"], json!({"SECRET": redacted, "PLAIN": redacted}));
        let def = &hook["definition"];
        assert_eq!(def["url"], json!("http://127.0.0.1:9/"));
        assert_eq!(def["headers"], json!({"Authorization": redacted}));
        assert_eq!(def["body"], redacted);
        let shown = format!("{hello}{hook}");
        for secret in ["hunter2", "hook-s3cret", "p4ss"] {
            assert!(!shown.contains(secret), "{secret} shown to a read token");
        }
    }
    // Operate and admin see them as they are.
    for secret in [OPERATE, ADMIN] {
        let mut c = client_as(&d, secret);
        let hello = c.ok("jobs.get", json!({"name": "hello"}));
        assert_eq!(hello["definition"]["env"]["SECRET"], json!("hunter2"));
        let hook = c.ok("jobs.get", json!({"name": "hook"}));
        assert_eq!(
            hook["definition"]["headers"]["Authorization"],
            json!("Bearer hook-s3cret")
        );
        assert_eq!(hook["definition"]["body"], json!(r#"{"password":"p4ss"}"#));
    }
}

#[test]
fn the_legacy_token_is_admin_and_each_token_is_told_its_role() {
    let d = daemon();
    for (secret, name, role) in TOKENS {
        let mut c = d.client();
        assert_eq!(
            c.ok("auth", json!({"token": secret})),
            json!({"authenticated": true, "name": name, "role": role})
        );
    }
    let mut legacy = client_as(&d, ADMIN);
    assert!(legacy.ok("reload", json!({}))["generation"].is_number());
}

/// Calls one method over the Unix socket at `path`.
fn unix_call(path: &Path, method: &str, params: Value) -> Value {
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

#[test]
fn the_unix_socket_is_admin_and_audited_as_unix() {
    let d = daemon();
    let sock = d.dir().join("tickd.sock");
    let hello = unix_call(&sock, "jobs.get", json!({"name": "hello"}));
    assert_eq!(
        hello["result"]["definition"]["env"]["SECRET"],
        json!("hunter2")
    );
    let paused = unix_call(&sock, "jobs.pause", json!({"name": "hello"}));
    assert_eq!(paused["result"]["paused"], json!(true), "{paused}");
    let reloaded = unix_call(&sock, "reload", json!({}));
    assert!(reloaded["result"]["generation"].is_number(), "{reloaded}");
    // A Unix client that presents a read token stays admin.
    let stream = UnixStream::connect(&sock).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut reader = BufReader::new(stream);
    let lines = format!(
        "{}\n{}\n",
        json!({"id": 1, "method": "auth", "params": {"token": READ}}),
        json!({"id": 2, "method": "jobs.resume", "params": {"name": "hello"}})
    );
    reader.get_mut().write_all(lines.as_bytes()).expect("write");
    let mut read = || {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read");
        serde_json::from_str::<Value>(&line).expect("JSON")
    };
    let told = read();
    assert_eq!(told["result"]["role"], json!("admin"), "{told}");
    let resumed = read();
    assert!(resumed["result"]["enabled"].is_boolean(), "{resumed}");
    d.log
        .wait_for(
            "audit: unix (admin) called jobs.pause {\"name\":\"hello\"}",
            0,
            WAIT,
        )
        .expect("the audit line of the Unix client");
}

#[test]
fn a_reload_that_downgrades_or_removes_a_token_takes_effect_on_open_connections() {
    let d = daemon();
    let mut ci = client_as(&d, OPERATE);
    let mut dash = client_as(&d, READ);
    assert!(ci.ok("jobs.pause", json!({"name": "hello"}))["name"] == json!("hello"));
    assert!(dash.ok("status", json!({}))["pid"].is_number());
    // ci becomes read; dash is removed.
    d.write_config(&text("read", false));
    d.signal(rustix::process::Signal::HUP);
    let (_, line) = d
        .log
        .wait_for("reload changed the auth tokens", 0, WAIT)
        .expect("the reload's log line");
    assert!(
        line.contains("\"ci\" (operate) is now \"ci\" (read)"),
        "{line}"
    );
    assert!(line.contains("\"dash\" removed or replaced"), "{line}");
    assert!(!line.contains(OPERATE) && !line.contains(READ), "{line}");
    // The same connections, judged by the tokens now in force.
    let answer = util::poll_until("ci to be judged as read", || {
        let a = ci.call("jobs.resume", json!({"name": "hello"}));
        (a["error"]["code"] == json!(-32003)).then_some(a)
    });
    assert_denied(&answer, "jobs.resume", "operate", "ci", "read");
    assert!(ci.ok("jobs.get", json!({"name": "hello"}))["name"] == json!("hello"));
    util::poll_until("dash to lose its token", || {
        (dash.err_code("status", json!({})) == -32001).then_some(())
    });
    // Upgraded back: the open connection gets operate again.
    d.write_config(&text("operate", false));
    d.signal(rustix::process::Signal::HUP);
    util::poll_until("ci to be judged as operate", || {
        let a = ci.call("jobs.resume", json!({"name": "hello"}));
        a["result"].is_object().then_some(())
    });
}

#[test]
fn the_audit_log_names_the_token_never_the_secret() {
    let d = daemon();
    let mut ci = client_as(&d, OPERATE);
    let run = ci.ok(
        "jobs.run",
        json!({"name": "hello", "args": {"password": "argp4ss"}}),
    );
    assert!(run["run_id"].is_string(), "{run}");
    let local = ci.reader.get_ref().local_addr().expect("local addr");
    let (_, line) = d
        .log
        .wait_for(
            &format!("audit: token \"ci\" (operate) from {local} called jobs.run"),
            0,
            WAIT,
        )
        .expect("the audit line");
    assert!(
        line.ends_with(r#"called jobs.run {"args":"<redacted>","name":"hello"}"#),
        "{line}"
    );
    // Refused, and over HTTP.
    let mut dash = client_as(&d, READ);
    assert_eq!(
        dash.err_code("jobs.pause", json!({"name": "hello"})),
        -32003
    );
    d.log
        .wait_for("audit: token \"dash\" (read) from 127.0.0.1:", 0, WAIT)
        .filter(|(_, l)| l.contains("denied jobs.pause") && l.ends_with("needs role operate"))
        .expect("the denial's audit line");
    let bearer = format!("Bearer {ADMIN}");
    let r = HttpConn::connect(d.addr).request("POST", "/reload", &[("Authorization", &bearer)], "");
    assert_eq!(r.status, 200, "{}", r.body);
    d.log
        .wait_for(
            "audit: token \"auth_token\" (admin) from 127.0.0.1:",
            0,
            WAIT,
        )
        .filter(|(_, l)| l.contains("called reload {} over HTTP"))
        .expect("the HTTP audit line");
    // Reads are not audited; no secret is ever logged.
    assert!(d.log.all().iter().all(|l| !l.contains("called status")));
    for secret in [ADMIN, OPERATE, READ, "argp4ss"] {
        assert!(
            d.log.all().iter().all(|l| !l.contains(secret)),
            "{secret} logged"
        );
    }
}

#[test]
fn the_config_refuses_duplicates_and_a_token_file_others_may_read() {
    let table = |name: &str, token: &str| {
        format!("[[tokens]]\nname = \"{name}\"\ntoken = \"{token}\"\nrole = \"read\"\n")
    };
    let text = format!(
        "{}{}{}",
        table("a", "dup-s3cret"),
        table("a", "two-s3cret"),
        table("b", "dup-s3cret")
    );
    let (code, err) = util::check_text(&text);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(
            "bad.toml:6: tokens[1].name: \"a\" is the name of an earlier [[tokens]] table"
        ),
        "{err}"
    );
    assert!(
        err.contains("bad.toml:11: tokens[2].token: the same secret as the token \"a\""),
        "{err}"
    );
    assert!(!err.contains("dup-s3cret"), "no secret in messages: {err}");

    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("ci.token");
    std::fs::write(&file, "from-a-file\n").expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let text = format!(
        "[[tokens]]\nname = \"ci\"\ntoken_file = \"{}\"\nrole = \"operate\"\n",
        file.display()
    );
    let (code, err) = util::check_text(&text);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("bad.toml:3: tokens[0].token_file: ")
            && err.contains("readable by group or others (mode 0640)"),
        "{err}"
    );
    // Owner-only: the daemon starts, and the token works with its role.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let d = Daemon::start(&format!("{}{text}", config("", "")));
    let mut c = d.client();
    assert_eq!(c.err_code("status", json!({})), -32001, "auth is on");
    let told = c.ok("auth", json!({"token": "from-a-file"}));
    assert_eq!(
        told,
        json!({"authenticated": true, "name": "ci", "role": "operate"})
    );
    assert_eq!(c.err_code("reload", json!({})), -32003);
}
