//! Jobs defined at run time through the other doors: HTTP `PUT` and
//! `DELETE /jobs/NAME`, `tickd ctl put FILE.toml`, and the journal: a put
//! that cannot be written is refused and not made, and puts alone keep the
//! journal compacted. The semantics are in `api_jobs`.

use crate::api_jobs::{api_names, error, kill9, with_state, ALLOW, FILE_JOBS};
use crate::util;

use serde_json::{json, Value};
use util::http::HttpConn;
use util::{config, Daemon};

#[test]
fn http_put_and_delete() {
    let d = Daemon::start(&config(ALLOW, FILE_JOBS));
    let mut h = HttpConn::connect(d.addr);
    let json_type = [("Content-Type", "application/json")];
    let body = r#"{"command": ["true"], "every": "5m"}"#;
    let r = h.request("PUT", "/jobs/web", &json_type, body);
    assert_eq!(r.status, 201, "{}", r.body);
    let v = r.json();
    assert_eq!(
        (v["name"].as_str(), v["created"].as_bool()),
        (Some("web"), Some(true))
    );
    let r = h.request("PUT", "/jobs/web", &json_type, body);
    assert_eq!(
        (r.status, r.json()["created"].as_bool()),
        (200, Some(false))
    );
    let r = h.request(
        "PUT",
        "/jobs/web",
        &json_type,
        r#"{"name": "other", "command": ["true"]}"#,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or("")
            .contains("does not match"),
        "{}",
        r.body
    );
    let r = h.request("PUT", "/jobs/web", &[], body);
    assert_eq!(r.status, 415, "{}", r.body);
    let r = h.request(
        "PUT",
        "/jobs/filejob",
        &json_type,
        r#"{"command": ["true"]}"#,
    );
    assert_eq!(r.status, 409, "{}", r.body);
    let r = h.request("POST", "/jobs/web", &[], "");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, HEAD, PUT, DELETE"));
    let r = h.request("DELETE", "/jobs/web?cancel=maybe", &[], "");
    assert_eq!(r.status, 400, "{}", r.body);
    let r = h.request("DELETE", "/jobs/web?cancel=true", &[], "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["name"], "web");
    let r = h.request("DELETE", "/jobs/web", &[], "");
    assert_eq!(r.status, 404, "{}", r.body);
    let d2 = Daemon::start(&config("", ""));
    let r = HttpConn::connect(d2.addr).request("PUT", "/jobs/web", &json_type, body);
    assert_eq!(r.status, 403, "{}", r.body);
}

#[test]
fn ctl_puts_a_job_from_a_toml_file_and_deletes_it() {
    let d = Daemon::start(&config(ALLOW, ""));
    let file = d.dir().join("nightly.toml");
    std::fs::write(
        &file,
        "[[jobs]]\nname = \"nightly\"\ncommand = [\"sh\", \"-c\", \"echo from-toml\"]\ncron = \"0 3 * * *\"\n",
    )
    .expect("write");
    let addr = d.addr.to_string();
    let ctl = |args: &[&str]| {
        let out = std::process::Command::new(util::bin())
            .arg("ctl")
            .args(["--connect", &addr])
            .args(args)
            .env_remove("TICKD_TOKEN")
            .env_remove("TICKD_ADDR")
            .output()
            .expect("run tickd ctl");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, stdout, stderr) = ctl(&["put", &file.display().to_string()]);
    assert_eq!(code, Some(0), "{stderr}");
    let put: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(
        (put["created"].as_bool(), put["schedule"].as_str()),
        (Some(true), Some("0 3 * * *"))
    );
    let mut c = d.client();
    let run = c.ok("jobs.run", json!({"name": "nightly", "wait": true}));
    assert_eq!(run["output"], "from-toml\n");
    std::fs::write(&file, "[[jobs]]\nname = \"x\"\ncommand = []\n").expect("write");
    let (code, _, stderr) = ctl(&["put", &file.display().to_string()]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("job.command") && stderr.contains("-32602"),
        "{stderr}"
    );
    let (code, stdout, stderr) = ctl(&["jobs.delete", r#"{"name":"nightly"}"#]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("\"nightly\""), "{stdout}");
    assert_eq!(
        error(&mut c, "jobs.get", json!({"name": "nightly"})).0,
        -32000
    );
}

/// A put or delete whose record cannot be written, or synced, is not
/// acknowledged (-32603, as any request of that group commit): it took
/// effect in memory, and the journal's rewrite from memory that follows
/// (once writes work again) records it.
#[cfg(feature = "failpoints")]
#[test]
fn a_put_that_cannot_be_journaled_is_not_acknowledged() {
    let state = tempfile::tempdir().expect("state dir");
    let d = Daemon::start_with_env(
        &with_state(state.path(), ALLOW, ""),
        &[("TICKD_DEBUG_HOOKS", "1")],
    );
    let mut c = d.client();
    for name in ["kept", "gone"] {
        c.ok(
            "jobs.put",
            json!({"job": {"name": name, "command": ["true"]}}),
        );
    }
    let fail = json!({"name": "journal.append", "actions": "return"});
    c.ok("debug.failpoint", fail);
    let (code, message) = error(
        &mut c,
        "jobs.put",
        json!({"job": {"name": "new", "command": ["true"]}}),
    );
    assert_eq!(code, -32603);
    assert!(message.contains("not acknowledged"), "{message}");
    assert_eq!(c.ok("jobs.get", json!({"name": "new"}))["source"], "api");
    let (code, _) = error(&mut c, "jobs.delete", json!({"name": "gone"}));
    assert_eq!(code, -32603);
    assert_eq!(error(&mut c, "jobs.get", json!({"name": "gone"})).0, -32000);
    c.ok(
        "debug.failpoint",
        json!({"name": "journal.append", "actions": "off"}),
    );
    d.wait_status("journal writes to resume", |s| {
        s["state"]["writing"] == true
    });
    // A failed fdatasync: the same (the record may be in the file, or
    // not: the rewrite from memory settles it).
    let fail = json!({"name": "journal.sync", "actions": "return"});
    c.ok("debug.failpoint", fail);
    let job = json!({"name": "unsynced", "command": ["true"]});
    let (code, message) = error(&mut c, "jobs.put", json!({ "job": job }));
    assert_eq!(code, -32603);
    assert!(message.contains("fdatasync"), "{message}");
    let off = json!({"name": "journal.sync", "actions": "off"});
    c.ok("debug.failpoint", off);
    d.wait_status("journal writes to resume", |s| {
        s["state"]["writing"] == true
    });
    c.ok(
        "jobs.put",
        json!({"job": {"name": "later", "command": ["true"]}}),
    );
    let text = with_state(state.path(), ALLOW, "");
    kill9(d);
    let d = Daemon::start(&text);
    let mut c = d.client();
    assert_eq!(api_names(&mut c), ["kept", "later", "new", "unsynced"]);
}

#[test]
fn puts_alone_keep_the_journal_compacted() {
    let state = tempfile::tempdir().expect("state dir");
    let text = with_state(
        state.path(),
        &format!("{ALLOW}\nmax_line_bytes = 200000"),
        "",
    );
    let d = Daemon::start(&text);
    let mut c = d.client();
    // Each put of this job is a 50 KB record; the journal asks for a
    // compaction past 8 MiB, with no run ever finishing.
    let big = "x".repeat(50_000);
    for i in 0..200 {
        let job =
            json!({"name": "big", "command": ["true"], "env": {"BIG": big, "I": i.to_string()}});
        c.ok("jobs.put", json!({ "job": job }));
    }
    assert!(
        d.log.wait_for("journal compacted", 0, util::WAIT).is_some(),
        "puts compact the journal"
    );
    // Its records (the zeros written ahead of them are not).
    let bytes = std::fs::read(state.path().join("journal")).expect("journal");
    let len = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    assert!(len < 8 * 1024 * 1024, "journal of {len} bytes");
    kill9(d);
    let d = Daemon::start(&text);
    let mut c = d.client();
    assert_eq!(
        api_names(&mut c),
        ["big"],
        "the last put survived the compaction"
    );
}
