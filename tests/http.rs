//! HTTP/1.1 on the TCP listener, through the real binary: every route,
//! keep-alive, pipelining, each status code, and a Prometheus scrape
//! parsed strictly, before and after a reload.

use crate::util;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use util::http::{get, post, request_bytes, HttpConn};
use util::{config, poll_until, Daemon};

const JOBS: &str = r#"
[[jobs]]
name = "hello"
kind = "exec"
command = ["sh", "-c", "echo hi"]

[[jobs]]
name = "slow"
kind = "exec"
command = ["sleep", "10"]
"#;

fn daemon() -> Daemon {
    Daemon::start(&config("max_line_bytes = 4096", JOBS))
}

#[test]
fn routes_answer_with_the_json_rpc_results() {
    let d = daemon();
    let mut c = d.client();

    let health = get(d.addr, "/healthz");
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));

    let status = get(d.addr, "/status");
    assert_eq!(status.status, 200);
    assert_eq!(status.header("content-type"), Some("application/json"));
    let s = status.json();
    assert_eq!(s["health"], json!("ok"));
    assert_eq!(s["config"]["generation"], json!(1));

    assert_eq!(get(d.addr, "/jobs").json(), c.ok("jobs.list", json!({})));
    assert_eq!(
        get(d.addr, "/jobs/hello").json(),
        c.ok("jobs.get", json!({"name": "hello"}))
    );

    let run = post(d.addr, "/jobs/hello/run", r#"{"who": "http"}"#);
    assert_eq!(run.status, 202, "{}", run.body);
    let run_id = run.json()["run_id"].as_str().expect("run_id").to_string();
    let done = d.wait_run_done(&run_id);
    assert_eq!(done["state"], json!("succeeded"));
    assert_eq!(get(d.addr, &format!("/runs/{run_id}")).json(), done);

    let listed = get(d.addr, "/runs?job=hello&state=succeeded&limit=5");
    assert_eq!(listed.status, 200);
    assert_eq!(
        listed.json(),
        c.ok(
            "runs.list",
            json!({"job": "hello", "state": "succeeded", "limit": 5})
        )
    );

    let paused = post(d.addr, "/jobs/hello/pause", "").json();
    assert_eq!(
        (&paused["name"], &paused["enabled"]),
        (&json!("hello"), &json!(false))
    );
    assert_eq!(get(d.addr, "/jobs/hello").json()["enabled"], json!(false));
    let resumed = post(d.addr, "/jobs/hello/resume", "").json();
    assert_eq!(
        (&resumed["name"], &resumed["enabled"]),
        (&json!("hello"), &json!(true))
    );

    let reload = post(d.addr, "/reload", "");
    assert_eq!(reload.status, 200);
    assert_eq!(reload.json()["generation"], json!(2));

    let page = get(d.addr, "/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.body.contains("<title>"), "{}", page.body);

    let mut conn = HttpConn::connect(d.addr);
    let head = conn.head("/jobs/hello");
    assert_eq!(head.status, 200);
    assert_ne!(head.header("content-length"), Some("0"));
    // No body followed: the next answer on the connection is the next request's.
    assert_eq!(conn.request("GET", "/healthz", &[], "").body, "ok");
}

#[test]
fn keep_alive_and_pipelining_answer_in_order() {
    let d = daemon();
    let mut c = HttpConn::connect(d.addr);
    // Three requests in one write; answers must come back in order.
    let mut batch = request_bytes("GET", "/healthz", &[], "");
    batch.extend(request_bytes("GET", "/jobs/nope", &[], ""));
    batch.extend(request_bytes("POST", "/jobs/hello/pause", &[], ""));
    batch.extend(request_bytes("GET", "/status", &[], ""));
    c.send(&batch);
    assert_eq!(c.read_response().body, "ok");
    assert_eq!(c.read_response().status, 404);
    assert_eq!(c.read_response().json()["enabled"], json!(false));
    assert_eq!(c.read_response().json()["health"], json!("ok"));
    // The connection is still usable, one request at a time.
    for _ in 0..3 {
        assert_eq!(c.request("GET", "/status", &[], "").status, 200);
    }
    // `Connection: close` ends it after the answer.
    let last = c.request("GET", "/healthz", &[("Connection", "close")], "");
    assert_eq!(last.header("connection"), Some("close"));
    assert!(c.is_closed());
    // HTTP/1.0 without keep-alive closes too.
    let mut old = HttpConn::connect(d.addr);
    old.send(b"GET /healthz HTTP/1.0\r\n\r\n");
    assert_eq!(old.read_response().status, 200);
    assert!(old.is_closed());
}

#[test]
fn each_error_status_has_the_json_rpc_error_body() {
    let d = Daemon::start(&config(
        "max_line_bytes = 1024\nworkers = 1\nqueue_capacity = 1",
        r#"
[[jobs]]
name = "slow"
kind = "exec"
command = ["sleep", "10"]

[[jobs]]
name = "busy"
kind = "exec"
command = ["sleep", "10"]
overlap = "allow"
"#,
    ));
    let code = |r: &util::http::Response| r.json()["code"].as_i64().expect("code");

    let missing = get(d.addr, "/jobs/nope");
    assert_eq!((missing.status, code(&missing)), (404, -32000));
    let path = get(d.addr, "/no/such/path");
    assert_eq!(path.status, 404);
    let wrong_method = get(d.addr, "/jobs/slow/run");
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.header("allow"), Some("POST"));
    let bad_body = post(d.addr, "/jobs/slow/run", "{not json");
    assert_eq!((bad_body.status, code(&bad_body)), (400, -32700));
    let bad_args = post(d.addr, "/jobs/slow/run", "[1]");
    assert_eq!((bad_args.status, code(&bad_args)), (400, -32602));
    let bad_query = get(d.addr, "/runs?state=sleeping");
    assert_eq!((bad_query.status, code(&bad_query)), (400, -32602));

    // 409: overlap = skip refuses a second run while one runs.
    assert_eq!(post(d.addr, "/jobs/slow/run", "").status, 202);
    let conflict = post(d.addr, "/jobs/slow/run", "");
    assert_eq!((conflict.status, code(&conflict)), (409, -32004));
    // 503: the one worker busy, the queue (capacity 1) full.
    d.wait_status("the worker to be busy", |s| {
        s["workers"]["busy"] == json!(1)
    });
    assert_eq!(post(d.addr, "/jobs/busy/run", "").status, 202);
    let full = post(d.addr, "/jobs/busy/run", "");
    assert_eq!((full.status, code(&full)), (503, -32002));

    // 413: a body over max_line_bytes, refused from its head, then closed.
    let mut big = HttpConn::connect(d.addr);
    big.send(b"POST /jobs/slow/run HTTP/1.1\r\nContent-Length: 5000\r\n\r\n");
    let r = big.read_response();
    assert_eq!((r.status, code(&r)), (413, -32600));
    assert!(big.is_closed());
    // 411: chunked bodies are not decoded.
    let mut chunked = HttpConn::connect(d.addr);
    chunked.send(b"POST /reload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_eq!(chunked.read_response().status, 411);
    assert!(chunked.is_closed());
    // 400: a malformed request line closes the connection.
    let mut bad = HttpConn::connect(d.addr);
    bad.send(b"GET /\x01bad HTTP/1.1\r\n\r\n");
    assert_eq!(bad.read_response().status, 400);
    assert!(bad.is_closed());
    // 431: a head over 16 KiB.
    let mut huge = HttpConn::connect(d.addr);
    let mut head = b"GET /status HTTP/1.1\r\nX-Pad: ".to_vec();
    head.resize(20_000, b'a');
    huge.send(&head);
    assert_eq!(huge.read_response().status, 431);

    let status = d.client().ok("status", json!({}));
    assert_eq!(status["clients"]["http_malformed"], json!(2), "{status}");
    assert_eq!(status["clients"]["lines_too_long"], json!(2), "{status}");
}

/// One sample: metric name, labels, value.
pub type Sample = (String, BTreeMap<String, String>, f64);

/// A strict parser of the text exposition format: every sample belongs to
/// a family announced by `# HELP` and `# TYPE` before it, names and labels
/// are well formed, values are numbers.
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helped = Vec::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has text");
            assert!(!help.is_empty(), "empty help for {name}");
            helped.push(name.to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a kind");
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "type {kind}"
            );
            assert!(
                helped.contains(&name.to_string()),
                "TYPE before HELP: {name}"
            );
            assert!(
                types.insert(name.into(), kind.into()).is_none(),
                "dup {name}"
            );
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("labels end with }");
                let mut labels = BTreeMap::new();
                for pair in body.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
                    labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
                }
                (name.to_string(), labels)
            }
        };
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "name {name}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| types.contains_key(*f)))
            .unwrap_or(&name);
        assert!(types.contains_key(family), "sample without TYPE: {line}");
        samples.push((name, labels, value));
    }
    samples
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && l.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.2)
}

fn scrape(d: &Daemon) -> Vec<Sample> {
    let r = get(d.addr, "/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse_metrics(&r.body)
}

#[test]
fn metrics_parse_and_counters_survive_a_reload() {
    let d = daemon();
    let mut c = d.client();
    for _ in 0..2 {
        let run = c.ok("jobs.run", json!({"name": "hello", "wait": true}));
        assert_eq!(run["state"], json!("succeeded"));
    }
    let before = scrape(&d);
    for name in [
        "tickd_requests_total",
        "tickd_workers_alive",
        "tickd_workers_busy",
        "tickd_queue_depth",
        "tickd_connections",
        "tickd_worker_respawns_total",
        "tickd_config_generation",
        "tickd_auth_failures_total",
        "tickd_connections_refused_total",
        "tickd_output_dropped_total",
        "tickd_lines_too_long_total",
    ] {
        assert!(value(&before, name, &[]).is_some(), "{name} missing");
    }
    let ok = [("job_name", "hello"), ("state", "succeeded")];
    assert_eq!(value(&before, "tickd_runs_total", &ok), Some(2.0));
    assert_eq!(
        value(
            &before,
            "tickd_runs_total",
            &[("job_name", "slow"), ("state", "failed")]
        ),
        Some(0.0)
    );
    // The histogram: cumulative buckets, +Inf equal to the count.
    let buckets: Vec<f64> = before
        .iter()
        .filter(|(n, l, _)| n == "tickd_run_duration_seconds_bucket" && l["job_name"] == "hello")
        .map(|s| s.2)
        .collect();
    assert!(buckets.len() > 5);
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    let count = value(
        &before,
        "tickd_run_duration_seconds_count",
        &[("job_name", "hello")],
    );
    assert_eq!(count, Some(2.0));
    assert_eq!(
        value(
            &before,
            "tickd_run_duration_seconds_bucket",
            &[("job_name", "hello"), ("le", "+Inf")]
        ),
        Some(2.0)
    );
    assert_eq!(value(&before, "tickd_config_generation", &[]), Some(1.0));

    // Reload without `hello`, with a new job: the removed jobs' series go
    // (docs/http.md), the new job appears at zero, no other counter goes
    // backwards.
    d.write_config(&config(
        "max_line_bytes = 4096",
        r#"
[[jobs]]
name = "fresh"
kind = "exec"
command = ["true"]
"#,
    ));
    assert_eq!(
        c.ok("reload", json!({}))["removed"],
        json!(["hello", "slow"])
    );
    let after = scrape(&d);
    assert_eq!(value(&after, "tickd_config_generation", &[]), Some(2.0));
    assert_eq!(value(&after, "tickd_runs_total", &ok), None);
    assert_eq!(
        value(
            &after,
            "tickd_runs_total",
            &[("job_name", "fresh"), ("state", "succeeded")]
        ),
        Some(0.0)
    );
    for (name, labels, v) in &before {
        let removed = labels
            .get("job_name")
            .is_some_and(|j| j == "hello" || j == "slow");
        let counter =
            name.ends_with("_total") || name.ends_with("_count") || name.ends_with("_bucket");
        if counter && !removed {
            let now = after
                .iter()
                .find(|(n, l, _)| n == name && l == labels)
                .unwrap_or_else(|| panic!("{name} {labels:?} vanished after reload"));
            assert!(now.2 >= *v, "{name} {labels:?} went back: {v} -> {}", now.2);
        }
    }
    assert!(
        value(&after, "tickd_requests_total", &[]) > value(&before, "tickd_requests_total", &[])
    );
}

/// Issue 14 item 23: the per-job label is `job_name` (a scrape overwrites
/// `job` with the target's job), and ad-hoc `submit` runs are counted
/// under `job_name="(submitted)"`, apart from a job named `submitted`.
#[test]
fn metrics_label_jobs_job_name_and_keep_submit_runs_apart() {
    let jobs = r#"
[[jobs]]
name = "submitted"
kind = "exec"
command = ["true"]
"#;
    let d = Daemon::start(&config("allow_submit = true", jobs));
    let mut c = d.client();
    let run = c.ok("jobs.run", json!({"name": "submitted", "wait": true}));
    assert_eq!(run["state"], json!("succeeded"));
    let adhoc = c.ok(
        "submit",
        json!({"job": {"kind": "exec", "command": ["false"]}, "wait": true}),
    );
    assert_eq!(adhoc["state"], json!("failed"));

    let samples = scrape(&d);
    for (name, labels, _) in &samples {
        assert!(!labels.contains_key("job"), "{name} {labels:?} has `job`");
    }
    let runs = |samples: &[Sample], job: &str, state: &str| {
        value(
            samples,
            "tickd_runs_total",
            &[("job_name", job), ("state", state)],
        )
    };
    assert_eq!(runs(&samples, "submitted", "succeeded"), Some(1.0));
    assert_eq!(runs(&samples, "submitted", "failed"), Some(0.0));
    assert_eq!(runs(&samples, "(submitted)", "failed"), Some(1.0));
    assert_eq!(runs(&samples, "(submitted)", "succeeded"), Some(0.0));
    let count = |samples: &[Sample], job: &str| {
        value(
            samples,
            "tickd_run_duration_seconds_count",
            &[("job_name", job)],
        )
    };
    assert_eq!(count(&samples, "submitted"), Some(1.0));
    assert_eq!(count(&samples, "(submitted)"), Some(1.0));

    // A reload that removes the job named `submitted` takes its series,
    // not the ad-hoc ones.
    d.write_config(&config("allow_submit = true", ""));
    assert_eq!(c.ok("reload", json!({}))["removed"], json!(["submitted"]));
    let after = scrape(&d);
    assert_eq!(runs(&after, "submitted", "succeeded"), None);
    assert_eq!(runs(&after, "(submitted)", "failed"), Some(1.0));
    assert_eq!(count(&after, "(submitted)"), Some(1.0));
}

#[test]
fn json_rpc_and_http_share_the_port() {
    let d = daemon();
    let mut rpc = d.client();
    let mut http = HttpConn::connect(d.addr);
    assert_eq!(rpc.ok("ping", json!({})), json!("pong"));
    assert_eq!(http.request("GET", "/healthz", &[], "").body, "ok");
    // A JSON-RPC connection never turns into HTTP: a request line there
    // is just invalid JSON.
    rpc.send_raw(b"GET /status HTTP/1.1\n");
    assert_eq!(rpc.read_json()["error"]["code"], json!(-32700));
    let status: Value = d.client().ok("status", json!({}));
    assert!(status["clients"]["requests"].as_u64().expect("requests") >= 3);
}

#[test]
fn expect_100_continue_gets_the_go_ahead() {
    let d = daemon();
    let mut c = HttpConn::connect(d.addr);
    let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(2000));
    c.send(
        format!(
            "POST /jobs/hello/run HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    c.read_continue();
    c.send(body.as_bytes());
    assert_eq!(c.read_response().status, 202);
}

#[test]
fn other_sites_cannot_use_a_browser_against_the_daemon() {
    let d = daemon();
    let mut c = HttpConn::connect(d.addr);
    // DNS rebinding: a hostile name that resolves to 127.0.0.1.
    let rebound = c.request("GET", "/status", &[("Host", "evil.example:7070")], "");
    assert_eq!(rebound.status, 403, "{}", rebound.body);
    assert_eq!(rebound.json()["code"], json!(-32003));
    // A cross-site request carries the hostile page's Origin.
    let cross = c.request("GET", "/jobs", &[("Origin", "http://evil.example")], "");
    assert_eq!(cross.status, 403, "{}", cross.body);
    // The daemon's own page, and IP-literal hosts, are fine.
    let own = c.request("GET", "/jobs", &[("Origin", "http://localhost")], "");
    assert_eq!(own.status, 200, "{}", own.body);
    let ip = c.request("GET", "/status", &[("Host", "127.0.0.1:7070")], "");
    assert_eq!(ip.status, 200, "{}", ip.body);
    // A form (or a no-CORS fetch) cannot send application/json.
    for ty in ["text/plain", "application/x-www-form-urlencoded"] {
        let r = c.request("POST", "/reload", &[("Content-Type", ty)], "");
        assert_eq!(r.status, 415, "{ty}: {}", r.body);
    }
    let typed = c.request(
        "POST",
        "/reload",
        &[("Content-Type", "application/json; charset=utf-8")],
        "",
    );
    assert_eq!(typed.status, 200, "{}", typed.body);
    let status = get(d.addr, "/status").json();
    assert_eq!(status["clients"]["http_forbidden"], json!(4));
    // Only the typed reload reloaded.
    assert_eq!(status["config"]["generation"], json!(2));
}

#[test]
fn an_all_digit_job_name_filters_runs() {
    let d = Daemon::start(&config(
        "",
        r#"
[[jobs]]
name = "123"
kind = "exec"
command = ["true"]
"#,
    ));
    let run = post(d.addr, "/jobs/123/run", "");
    assert_eq!(run.status, 202, "{}", run.body);
    let run_id = run.json()["run_id"].as_str().expect("run_id").to_string();
    d.wait_run_done(&run_id);
    let listed = get(d.addr, "/runs?job=123&limit=5");
    assert_eq!(listed.status, 200, "{}", listed.body);
    let runs = listed.json().as_array().cloned().unwrap_or_default();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["run_id"], json!(run_id));
}

/// `POST /runs/ID/cancel` cancels a run (the curl form of `runs.cancel`):
/// the answer is the ended run; an unknown run is 404; GET is 405.
#[test]
fn post_runs_id_cancel_cancels_a_run() {
    let jobs = "[[jobs]]\nname = \"slow\"\ncommand = [\"sleep\", \"30\"]\n";
    let d = Daemon::start(&config("", jobs));
    let mut c = d.client();
    let id = c.ok("jobs.run", json!({"name": "slow"}))["run_id"]
        .as_str()
        .expect("id")
        .to_string();
    poll_until("the run to start", || {
        (c.ok("runs.get", json!({ "run_id": id }))["state"] == "running").then_some(())
    });
    let r = post(d.addr, &format!("/runs/{id}/cancel"), "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["state"], "cancelled", "{}", r.body);
    assert_eq!(post(d.addr, "/runs/999999/cancel", "").status, 404);
    assert_eq!(get(d.addr, &format!("/runs/{id}/cancel")).status, 405);
}

/// `tickd_job_last_success_timestamp_seconds{job_name}`: the time a run of
/// the job last succeeded, the one alerting rules use; absent for a job
/// that never succeeded.
#[test]
fn last_success_timestamp_per_job() {
    let jobs = "[[jobs]]\nname = \"ok\"\ncommand = [\"true\"]\n\n\
                [[jobs]]\nname = \"bad\"\ncommand = [\"false\"]\n";
    let d = Daemon::start(&config("", jobs));
    let mut c = d.client();
    let before = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
    c.ok("jobs.run", json!({"name": "ok", "wait": true}));
    c.ok("jobs.run", json!({"name": "bad", "wait": true}));
    let after = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
    let samples = parse_metrics(&get(d.addr, "/metrics").body);
    let last = |job: &str| {
        samples
            .iter()
            .find(|(name, labels, _)| {
                name == "tickd_job_last_success_timestamp_seconds"
                    && labels.get("job_name").map(String::as_str) == Some(job)
            })
            .map(|(_, _, v)| *v)
    };
    let ok = last("ok").expect("a series for the job that succeeded");
    assert!(
        ok >= before - 0.001 && ok <= after + 0.001,
        "{before} <= {ok} <= {after}"
    );
    assert_eq!(
        last("bad"),
        None,
        "no series for a job that never succeeded"
    );
}

/// With `state_dir`, the last success outlives a restart (read back from
/// the journal), so an alert on its age does not fire after every restart.
#[test]
fn last_success_timestamp_survives_a_restart_with_state_dir() {
    let state = tempfile::tempdir().expect("state dir");
    let daemon = format!("state_dir = \"{}\"", state.path().display());
    let jobs = "[[jobs]]\nname = \"ok\"\ncommand = [\"true\"]\n";
    let mut d = Daemon::start(&config(&daemon, jobs));
    d.client()
        .ok("jobs.run", json!({"name": "ok", "wait": true}));
    let value = |d: &Daemon| {
        parse_metrics(&get(d.addr, "/metrics").body)
            .into_iter()
            .find(|(name, _, _)| name == "tickd_job_last_success_timestamp_seconds")
            .map(|(_, _, v)| v)
    };
    let first = value(&d).expect("a last success");
    d.signal(rustix::process::Signal::TERM);
    d.wait_exit(util::WAIT).expect("stopped");
    let d = Daemon::start(&config(&daemon, jobs));
    assert_eq!(value(&d), Some(first));
}
