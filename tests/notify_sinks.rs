//! Notifications (`[[notify]]` sinks, jobs' `notify` and `notify_on`)
//! through the real binary: a webhook receiver the test starts on
//! 127.0.0.1:0 records every request (a few lines of std TCP); exec sinks
//! write what they read on stdin to a file. Not `tests/notify.rs`, which is
//! systemd's sd_notify.
//!
//! Where a test must show that no other message was sent, it sends a last
//! message from a marker job (`notify_on = "always"`) to the same sink: one
//! delivery thread keeps a sink's messages in order, so any message the
//! runs before it made would have arrived before the marker's.

use crate::util;

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use util::{config, poll_until, Daemon};

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Request {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A webhook receiver: answers each request with the next status of its
/// script (200 once the script is used up), and records it.
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Request>>>,
}

impl Receiver {
    fn start(script: &[u16]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let got = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
        let (g, s) = (Arc::clone(&got), Arc::clone(&script));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let (g, s) = (Arc::clone(&g), Arc::clone(&s));
                std::thread::spawn(move || serve(stream, &g, &s));
            }
        });
        Receiver { addr, got }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> Vec<Request> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `n` requests have arrived; returns them all.
    fn wait_for(&self, n: usize) -> Vec<Request> {
        poll_until(&format!("{n} request(s) at the receiver"), || {
            let got = self.requests();
            (got.len() >= n).then_some(got)
        })
    }
}

/// Serves the requests of one connection (keep-alive) until it closes.
fn serve(stream: TcpStream, got: &Mutex<Vec<Request>>, script: &Mutex<VecDeque<u16>>) {
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_string(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let status = script.lock().unwrap().pop_front().unwrap_or(200);
        got.lock().unwrap().push(Request {
            method,
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let answer = format!("HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\nok");
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// A job run by hand only, that fails (exit 3, printing `oops`) unless the
/// file `$DIR/ok` exists.
fn flaky(name: &str, extra: &str) -> String {
    format!(
        "[[jobs]]\nname = \"{name}\"\ncommand = [\"sh\", \"-c\", \"echo oops; test -e $DIR/ok || exit 3\"]\n{extra}\n"
    )
}

/// The marker job (see the module docs).
fn marker(sink: &str) -> String {
    format!(
        "[[jobs]]\nname = \"marker\"\ncommand = [\"true\"]\nnotify = [\"{sink}\"]\nnotify_on = \"always\"\n"
    )
}

fn webhook(name: &str, url: &str, extra: &str) -> String {
    format!("[[notify]]\nname = \"{name}\"\nkind = \"webhook\"\nurl = \"{url}\"\n{extra}\n")
}

/// Runs `job` and waits for its end; its run object.
fn run(d: &Daemon, job: &str) -> Value {
    d.client()
        .ok("jobs.run", json!({"name": job, "wait": true}))
}

fn metrics(d: &Daemon) -> String {
    util::http::get(d.addr, "/metrics").body
}

/// `tickd_notifications_total{sink,result}`'s value, if shown.
fn counter(d: &Daemon, sink: &str, result: &str) -> Option<u64> {
    let series = format!("tickd_notifications_total{{sink=\"{sink}\",result=\"{result}\"}} ");
    metrics(d)
        .lines()
        .find_map(|l| l.strip_prefix(&series).and_then(|n| n.parse().ok()))
}

#[test]
fn a_failed_run_posts_the_templated_body_and_a_success_nothing() {
    let rx = Receiver::start(&[]);
    let body = r#"{"who": "{{job}}", "id": "{{run_id}}", "state": "{{state}}", "event": "{{event}}", "error": {{error:json}}, "code": {{exit_code:json}}, "ms": {{duration_ms:json}}, "took": "{{duration}}", "out": "{{output}}", "node": {{node:json}}, "link": "{{link}}"}"#;
    let sinks = webhook(
        "ops",
        &rx.url("/hook"),
        &format!(
            "headers = {{ Authorization = \"Bearer s3cret\" }}\nlink_base = \"https://tickd.example/\"\nbody = '{body}'"
        ),
    );
    let jobs = format!(
        "{}{}{sinks}",
        flaky("backup", "notify = [\"ops\"]"),
        "[[jobs]]\nname = \"fine\"\ncommand = [\"true\"]\nnotify = [\"ops\"]\n"
    );
    let d = Daemon::start(&config("", &jobs));
    assert_eq!(run(&d, "fine")["state"], "succeeded");
    let failed = run(&d, "backup");
    assert_eq!(failed["state"], "failed");
    let got = rx.wait_for(1);
    assert_eq!(
        got.len(),
        1,
        "a success sends nothing with notify_on = failure"
    );
    let r = &got[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hook"));
    assert_eq!(r.header("authorization"), Some("Bearer s3cret"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let b = r.json();
    let id = failed["run_id"].as_str().expect("id");
    assert_eq!(b["who"], "backup");
    assert_eq!(b["id"], id);
    assert_eq!(b["state"], "failed");
    assert_eq!(b["event"], "failed");
    assert_eq!(b["error"], failed["error"]);
    assert_eq!(b["code"], 3);
    assert_eq!(b["ms"], failed["duration_ms"]);
    assert!(b["took"].as_str().is_some_and(|t| !t.is_empty()), "{b}");
    assert_eq!(b["out"], "oops\n");
    assert!(b["node"].as_str().is_some_and(|n| !n.is_empty()), "{b}");
    assert_eq!(b["link"], format!("https://tickd.example/runs/{id}"));
    poll_until("sent counted", || {
        (counter(&d, "ops", "sent") == Some(1)).then_some(())
    });
    assert!(
        !d.log.all().join("\n").contains("s3cret"),
        "a header's secret is never logged"
    );
}

#[test]
fn without_a_body_the_payload_is_slack_compatible() {
    let rx = Receiver::start(&[]);
    let jobs = format!(
        "{}{}",
        flaky("nightly", "notify = [\"slack\"]"),
        webhook("slack", &rx.url("/services/T0/B0/x"), "")
    );
    let d = Daemon::start(&config("", &jobs));
    let failed = run(&d, "nightly");
    let b = rx.wait_for(1)[0].json();
    let text = b["text"].as_str().expect("a text, as Slack wants");
    let id = failed["run_id"].as_str().expect("id");
    assert!(
        text.starts_with(&format!("tickd: job nightly failed (run {id}, exit code 3")),
        "{text}"
    );
    assert_eq!(b["job"], "nightly");
    assert_eq!(b["run_id"], id);
    assert_eq!(b["state"], "failed");
    assert_eq!(b["exit_code"], 3);
    assert_eq!(b["link"], Value::Null, "no link_base, no link");
}

#[test]
fn change_sends_one_message_when_failing_starts_and_one_at_recovery_across_a_reload() {
    let rx = Receiver::start(&[]);
    let jobs = format!(
        "{}{}{}",
        flaky("health", "notify = [\"ops\"]\nnotify_on = \"change\""),
        marker("ops"),
        webhook("ops", &rx.url("/"), "")
    );
    let d = Daemon::start(&config("", &jobs));
    for _ in 0..3 {
        assert_eq!(run(&d, "health")["state"], "failed");
    }
    // The last outcome survives a reload that changes the job.
    let changed = jobs.replace(
        "notify_on = \"change\"",
        "notify_on = \"change\"\ntimeout = \"1m\"",
    );
    d.write_config(&config("", &changed));
    d.signal(rustix::process::Signal::HUP);
    d.wait_status("generation 2", |s| s["config"]["generation"] == 2);
    std::fs::write(d.dir().join("ok"), "").expect("ok");
    assert_eq!(run(&d, "health")["state"], "succeeded");
    assert_eq!(run(&d, "health")["state"], "succeeded");
    run(&d, "marker");
    let got = rx.wait_for(3);
    let events: Vec<(Value, Value)> = got
        .iter()
        .map(|r| (r.json()["job"].clone(), r.json()["event"].clone()))
        .collect();
    assert_eq!(
        events,
        [
            (json!("health"), json!("failed")),
            (json!("health"), json!("recovered")),
            (json!("marker"), json!("succeeded")),
        ]
    );
}

#[test]
fn change_remembers_a_failure_across_a_restart_from_the_journal() {
    let rx = Receiver::start(&[]);
    let state = tempfile::tempdir().expect("state dir");
    let flag = state.path().join("ok");
    let jobs = format!(
        "[[jobs]]\nname = \"health\"\ncommand = [\"sh\", \"-c\", \"test -e {}\"]\nnotify = [\"ops\"]\nnotify_on = \"change\"\n{}{}",
        flag.display(),
        marker("ops"),
        webhook("ops", &rx.url("/"), "")
    );
    let text = config(
        &format!("state_dir = \"{}\"", state.path().display()),
        &jobs,
    );
    let mut first = Daemon::start(&text);
    assert_eq!(run(&first, "health")["state"], "failed");
    rx.wait_for(1);
    first.signal(rustix::process::Signal::TERM);
    first.wait_exit(Duration::from_secs(10)).expect("stopped");
    let second = Daemon::start(&text);
    assert_eq!(run(&second, "health")["state"], "failed");
    std::fs::write(&flag, "").expect("ok");
    assert_eq!(run(&second, "health")["state"], "succeeded");
    run(&second, "marker");
    let events: Vec<Value> = rx
        .wait_for(3)
        .iter()
        .map(|r| r.json()["event"].clone())
        .collect();
    assert_eq!(
        events,
        [json!("failed"), json!("recovered"), json!("succeeded")]
    );
}

#[test]
fn always_sends_every_run() {
    let rx = Receiver::start(&[]);
    let jobs = format!(
        "{}{}",
        flaky("j", "notify = [\"ops\"]\nnotify_on = \"always\""),
        webhook("ops", &rx.url("/"), "")
    );
    let d = Daemon::start(&config("", &jobs));
    run(&d, "j");
    std::fs::write(d.dir().join("ok"), "").expect("ok");
    run(&d, "j");
    run(&d, "j");
    let states: Vec<(Value, Value)> = rx
        .wait_for(3)
        .iter()
        .map(|r| (r.json()["state"].clone(), r.json()["event"].clone()))
        .collect();
    assert_eq!(
        states,
        [
            (json!("failed"), json!("failed")),
            (json!("succeeded"), json!("recovered")),
            (json!("succeeded"), json!("succeeded")),
        ]
    );
}

#[test]
fn a_webhook_answering_500_is_tried_again() {
    let rx = Receiver::start(&[500]);
    let jobs = format!(
        "{}{}",
        flaky("j", "notify = [\"ops\"]"),
        webhook("ops", &rx.url("/"), "")
    );
    let d = Daemon::start(&config("", &jobs));
    let started = Instant::now();
    run(&d, "j");
    let got = rx.wait_for(2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "after the backoff"
    );
    assert_eq!(got[0].body, got[1].body, "the same message again");
    poll_until("sent counted", || {
        (counter(&d, "ops", "sent") == Some(1)).then_some(())
    });
    assert_eq!(counter(&d, "ops", "failed"), Some(0));
    assert_eq!(counter(&d, "ops", "dropped"), Some(0));
    let status = d.client().ok("status", json!({}));
    assert_eq!(
        status["notifications"],
        json!({"ops": {"sent": 1, "failed": 0, "dropped": 0}})
    );
    assert!(d
        .log
        .all()
        .iter()
        .any(|l| l.contains("notify ops (webhook http://127.0.0.1")
            && l.contains("answered HTTP 500")));
}

#[test]
fn a_redirect_is_not_followed_with_the_headers() {
    let elsewhere = Receiver::start(&[]);
    // Answers 307 to elsewhere: a failed attempt, not a second request.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let to = elsewhere.url("/stolen");
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let answer = format!("HTTP/1.1 307 X\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n");
            let _ = s.write_all(answer.as_bytes());
        }
    });
    let jobs = format!(
        "{}{}",
        flaky("j", "notify = [\"ops\"]"),
        webhook(
            "ops",
            &format!("http://{addr}/"),
            "headers = { Authorization = \"Bearer s3cret\" }"
        )
    );
    let d = Daemon::start(&config("", &jobs));
    run(&d, "j");
    d.log
        .wait_for("answered HTTP 307", 0, Duration::from_secs(10))
        .expect("a failed attempt");
    assert!(
        elsewhere.requests().is_empty(),
        "{:?}",
        elsewhere.requests()
    );
}

#[test]
fn exec_sinks_read_the_run_on_stdin_as_json_or_as_a_mail() {
    let jobs = format!(
        "{}{}",
        flaky("backup", "notify = [\"log\", \"mail\"]"),
        r#"
[[notify]]
name = "log"
kind = "exec"
command = ["sh", "-c", "cat > $DIR/got.json.tmp && mv $DIR/got.json.tmp $DIR/got.json"]

[[notify]]
name = "mail"
kind = "exec"
command = ["sh", "-c", "cat > $DIR/mail.tmp && mv $DIR/mail.tmp $DIR/mail.txt"]
format = "mail"
to = ["ops@example.com", "oncall@example.com"]
from = "tickd@example.com"
"#
    );
    let d = Daemon::start(&config("", &jobs));
    let failed = run(&d, "backup");
    let id = failed["run_id"].as_str().expect("id");
    let read = |name: &str| {
        let path = d.dir().join(name);
        poll_until(name, || std::fs::read_to_string(&path).ok())
    };
    let got: Value = serde_json::from_str(read("got.json").trim()).expect("one JSON line");
    assert_eq!(got["job"], "backup");
    assert_eq!(got["run_id"], id);
    assert_eq!(got["state"], "failed");
    assert_eq!(got["exit_code"], 3);
    let mail = read("mail.txt");
    assert!(
        mail.starts_with(&format!(
            "From: tickd@example.com\nTo: ops@example.com, oncall@example.com\nSubject: [tickd] job backup failed (run {id})\n"
        )),
        "{mail}"
    );
    assert!(
        mail.contains("\nExit code: 3\n") && mail.contains("oops"),
        "{mail}"
    );
}

#[test]
fn an_unknown_sink_is_a_config_error_naming_file_and_line() {
    let text = format!(
        "{}{}",
        webhook("ops", "http://127.0.0.1:9/", ""),
        "[[jobs]]\nname = \"a\"\ncommand = [\"true\"]\nnotify = [\"opz\"]\n"
    );
    let (code, err) = util::check_text(&text);
    assert_ne!(code, Some(0), "{err}");
    assert!(
        err.contains("bad.toml:9: jobs[0].notify (job \"a\"): names the sink \"opz\", which no [[notify]] table defines (defined: ops)"),
        "{err}"
    );
    let (code, err) = util::check_text(&format!(
        "{}{}",
        webhook("w", "ftp://h/", "body = '{\"a\": \"{{nope}}\"}'"),
        "[[jobs]]\nname = \"a\"\ncommand = [\"true\"]\n"
    ));
    assert_ne!(code, Some(0), "{err}");
    assert!(
        err.contains("notify.w.url: is not an http:// or https:// URL"),
        "{err}"
    );
    assert!(
        err.contains("notify.w.body: unknown field `{{nope}}`"),
        "{err}"
    );
}

#[test]
fn a_receiver_that_never_answers_does_not_delay_runs() {
    // Accepts connections and never answers.
    let hole = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = hole.local_addr().expect("addr");
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = Arc::clone(&held);
    std::thread::spawn(move || {
        for s in hole.incoming().flatten() {
            h.lock().unwrap().push(s);
        }
    });
    let jobs = format!(
        "[[jobs]]\nname = \"tick\"\nevery = \"200ms\"\ncommand = [\"false\"]\nnotify = [\"hole\"]\nnotify_on = \"always\"\n{}",
        webhook("hole", &format!("http://{addr}/"), "timeout = \"30s\"")
    );
    let d = Daemon::start(&config("", &jobs));
    let mut c = d.client();
    let started = Instant::now();
    poll_until("10 runs of tick", || {
        let runs = c.ok("runs.list", json!({"job": "tick", "limit": 100}));
        let done = runs
            .as_array()
            .map_or(0, |r| r.iter().filter(|r| r["state"] == "failed").count());
        (done >= 10).then_some(())
    });
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "runs kept their schedule: {:?}",
        started.elapsed()
    );
    poll_until("the sink tried", || {
        (!held.lock().unwrap().is_empty()).then_some(())
    });
    // The daemon still answers at once.
    assert_eq!(c.ok("status", json!({}))["health"], "ok");
}

#[test]
fn sinks_and_job_keys_are_live_on_sighup() {
    let rx = Receiver::start(&[]);
    let old = Receiver::start(&[]);
    let before = format!("{}{}", flaky("j", ""), webhook("ops", &old.url("/"), ""));
    let d = Daemon::start(&config("", &before));
    run(&d, "j");
    let after = format!(
        "{}{}{}",
        flaky("j", "notify = [\"ops\"]"),
        marker("ops"),
        webhook("ops", &rx.url("/new"), "")
    );
    d.write_config(&config("", &after));
    d.signal(rustix::process::Signal::HUP);
    d.wait_status("generation 2", |s| s["config"]["generation"] == 2);
    let failed = run(&d, "j");
    let got = rx.wait_for(1);
    assert_eq!(
        (got[0].path.as_str(), &got[0].json()["run_id"]),
        ("/new", &failed["run_id"])
    );
    assert!(old.requests().is_empty(), "{:?}", old.requests());
}

#[test]
fn api_jobs_are_told_that_notify_is_for_the_file() {
    let d = Daemon::start(&config("allow_job_api = true", ""));
    let resp = d.client().call(
        "jobs.put",
        json!({"job": {"name": "x", "command": ["true"], "notify": ["ops"]}}),
    );
    let message = resp["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("job.notify: not available for jobs defined through the API yet"),
        "{resp}"
    );
}
