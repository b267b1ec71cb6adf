//! Paging through the real binary: `jobs.list {limit, after, prefix,
//! source}` while jobs come and go between pages, `runs.list {before}`
//! back through a job's history, the refusal of a whole list larger than
//! `max_output_bytes` (the connection stays usable), the HTTP query forms,
//! and `/metrics` with per-job series turned off.

use crate::util;

use crate::http::{parse_metrics, Sample};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use util::http::{request_bytes, HttpConn};
use util::{config, Daemon};

/// `[[jobs]]` tables for `names`, each a manual-only `true`.
fn jobs(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("[[jobs]]\nname = \"{n}\"\ncommand = [\"true\"]\n"))
        .collect()
}

/// The names of a page's job objects.
fn page_names(page: &Value) -> Vec<String> {
    page["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {page}"))
        .iter()
        .map(|j| j["name"].as_str().expect("name").to_string())
        .collect()
}

/// Every page of `jobs.list` with `params` (plus `after`), in order.
fn all_pages(c: &mut util::Client, params: Value) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut params = params;
    loop {
        let page = c.ok("jobs.list", params.clone());
        let next = page["next_after"].clone();
        pages.push(page);
        match next {
            Value::String(after) => params["after"] = json!(after),
            Value::Null => return pages,
            other => panic!("next_after is a string or null, not {other}"),
        }
        assert!(pages.len() < 10_000, "paging does not end");
    }
}

#[test]
fn every_job_present_throughout_appears_once_while_others_come_and_go() {
    // `keep` jobs stay; `tmp` jobs go one by one; `new` jobs arrive
    // between pages, before and after the cursor.
    let keep: Vec<String> = (0..40).map(|i| format!("j{:03}.keep", i * 5)).collect();
    let mut tmp: Vec<String> = (0..40).map(|i| format!("j{:03}.tmp", i * 5 + 2)).collect();
    let mut added: Vec<String> = Vec::new();
    let config_of = |tmp: &[String], added: &[String]| {
        let mut names: Vec<String> = keep.iter().chain(tmp).chain(added).cloned().collect();
        names.sort();
        config("", &jobs(&names))
    };
    let d = Daemon::start(&config_of(&tmp, &added));
    let mut c = d.client();
    let mut seen: Vec<String> = Vec::new();
    let mut params = json!({"limit": 7});
    let mut round = 0;
    loop {
        let page = c.ok("jobs.list", params.clone());
        let names = page_names(&page);
        assert!(names.len() <= 7, "{names:?}");
        seen.extend(names);
        let Some(after) = page["next_after"].as_str().map(str::to_string) else {
            break;
        };
        params["after"] = json!(after);
        // Between pages: one tmp job goes, two new ones come, one on each
        // side of the cursor, and the config is reloaded.
        round += 1;
        if !tmp.is_empty() {
            tmp.remove((round * 7) % tmp.len());
        }
        added.push(format!("j{:03}.new", (round * 37) % 200));
        added.push(format!("{after}.new{round}"));
        d.write_config(&config_of(&tmp, &added));
        let reload = c.ok("reload", json!({}));
        assert!(reload["generation"].as_u64().is_some(), "{reload}");
        assert!(round < 100, "paging does not end");
    }
    assert!(round > 5, "several pages, with changes in between");
    // In strict name order, so no name twice.
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "pages out of order or repeated: {seen:?}"
    );
    let seen: BTreeSet<&str> = seen.iter().map(String::as_str).collect();
    for name in &keep {
        assert!(seen.contains(name.as_str()), "{name} was never listed");
    }
    // The connection is still in order.
    assert_eq!(c.ok("ping", json!({})), json!("pong"));
}

#[test]
fn prefix_and_source_narrow_the_pages_and_bad_values_are_refused() {
    let mut names: Vec<String> = (0..12).map(|i| format!("db.backup{i:02}")).collect();
    names.extend((0..5).map(|i| format!("web.check{i}")));
    names.push("db".to_string());
    names.push("dc".to_string());
    let d = Daemon::start(&config("", &jobs(&names)));
    let mut c = d.client();
    let db: Vec<String> = all_pages(&mut c, json!({"prefix": "db.", "limit": 5}))
        .iter()
        .flat_map(page_names)
        .collect();
    assert_eq!(db, names[..12]);
    // Without `limit`, one page of up to 100: the list is done.
    let web = c.ok("jobs.list", json!({"prefix": "web."}));
    assert_eq!(page_names(&web), names[12..17]);
    assert_eq!(web["next_after"], Value::Null);
    // Every job of the file is a `file` job; none is an `api` one.
    let files = c.ok("jobs.list", json!({"source": "file", "limit": 1000}));
    assert_eq!(page_names(&files).len(), names.len());
    assert!(files["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .all(|j| j["source"] == json!("file")));
    let api = c.ok("jobs.list", json!({"source": "api"}));
    assert_eq!(
        (api["jobs"].clone(), api["next_after"].clone()),
        (json!([]), Value::Null)
    );
    // A page holds the same job objects as the whole list.
    let whole = c.ok("jobs.list", json!({}));
    let whole = whole.as_array().expect("an array without params");
    let first = c.ok("jobs.list", json!({"limit": 3}));
    assert_eq!(first["jobs"].as_array().expect("jobs"), &whole[..3]);
    assert_eq!(first["next_after"], whole[2]["name"]);
    for (params, param) in [
        (json!({"source": "db"}), "source"),
        (json!({"limit": 0}), "limit"),
        (json!({"limit": "ten"}), "limit"),
        (json!({"after": 7}), "after"),
        (json!({"prefix": ["db"]}), "prefix"),
        (json!({"page": 2}), "page"),
    ] {
        let resp = c.call("jobs.list", params.clone());
        assert_eq!(resp["error"]["code"], json!(-32602), "{params}: {resp}");
        let message = resp["error"]["message"].as_str().expect("message");
        assert!(message.contains(&format!("`{param}`")), "{message}");
    }
}

#[test]
fn api_and_file_jobs_page_together_and_apart_while_puts_and_deletes_land() {
    let files: Vec<String> = (0..20).map(|i| format!("j{:02}.file", i * 2)).collect();
    let d = Daemon::start(&config("allow_job_api = true", &jobs(&files)));
    let mut c = d.client();
    let put = |c: &mut util::Client, name: &str| {
        let job = json!({"name": name, "command": ["true"]});
        assert_eq!(
            c.ok("jobs.put", json!({ "job": job }))["source"],
            json!("api")
        );
    };
    let apis: Vec<String> = (0..20).map(|i| format!("j{:02}.api", i * 2 + 1)).collect();
    for name in &apis {
        put(&mut c, name);
    }
    let walk = |c: &mut util::Client, params: Value| -> Vec<String> {
        all_pages(c, params).iter().flat_map(page_names).collect()
    };
    assert_eq!(walk(&mut c, json!({"source": "api", "limit": 3})), apis);
    assert_eq!(walk(&mut c, json!({"source": "file", "limit": 3})), files);
    let mut both: Vec<String> = files.iter().chain(&apis).cloned().collect();
    both.sort();
    assert_eq!(walk(&mut c, json!({"limit": 7})), both);
    // Pages of API jobs while API jobs are put and deleted between them:
    // every one present throughout is seen once, in order.
    let mut seen: Vec<String> = Vec::new();
    let mut params = json!({"source": "api", "limit": 4});
    let mut round = 0;
    loop {
        let page = c.ok("jobs.list", params.clone());
        assert!(page["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .all(|j| j["source"] == json!("api")));
        seen.extend(page_names(&page));
        let Some(after) = page["next_after"].as_str().map(str::to_string) else {
            break;
        };
        params["after"] = json!(after);
        round += 1;
        put(&mut c, &format!("j{:02}.new", (round * 7) % 40));
        put(&mut c, &format!("{after}.x"));
        let gone = &apis[(round * 3) % apis.len()];
        let resp = c.call("jobs.delete", json!({"name": gone}));
        assert!(
            resp.get("result").is_some() || resp["error"]["code"] == json!(-32000),
            "{resp}"
        );
        assert!(round < 50, "paging does not end");
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    let deleted: BTreeSet<String> = (1..=round)
        .map(|r| apis[(r * 3) % apis.len()].clone())
        .collect();
    for name in apis.iter().filter(|n| !deleted.contains(*n)) {
        assert!(seen.contains(name), "{name} was never listed: {seen:?}");
    }
}

#[test]
fn runs_list_before_pages_back_through_a_history_without_gap_or_duplicate() {
    let text = config(
        "history = 100",
        "[[jobs]]\nname = \"quick\"\ncommand = [\"true\"]\n\
         [[jobs]]\nname = \"other\"\ncommand = [\"true\"]\n",
    );
    let d = Daemon::start(&text);
    let mut c = d.client();
    let mut ids: Vec<u64> = Vec::new();
    for i in 0..23 {
        let run = c.ok("jobs.run", json!({"name": "quick", "wait": true}));
        ids.push(
            run["run_id"]
                .as_str()
                .expect("id")
                .parse()
                .expect("numeric"),
        );
        if i % 3 == 0 {
            c.ok("jobs.run", json!({"name": "other", "wait": true}));
        }
    }
    ids.reverse();
    let mut listed: Vec<u64> = Vec::new();
    let mut params = json!({"job": "quick", "limit": 5});
    loop {
        let page = c.ok("runs.list", params.clone());
        let page = page.as_array().expect("an array of runs");
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 5);
        for run in page {
            assert_eq!(run["job"], json!("quick"));
            listed.push(
                run["run_id"]
                    .as_str()
                    .expect("id")
                    .parse()
                    .expect("numeric"),
            );
        }
        params["before"] = page[page.len() - 1]["run_id"].clone();
        // New runs between pages are newer than the cursor: unseen.
        c.ok("jobs.run", json!({"name": "quick", "wait": true}));
    }
    assert_eq!(listed, ids, "every run once, newest first");
    // A cursor need not be a kept run; a number works as a string does.
    let below = c.ok(
        "runs.list",
        json!({"job": "quick", "before": ids[20], "limit": 100}),
    );
    assert_eq!(below.as_array().map(Vec::len), Some(2));
    let resp = c.call("runs.list", json!({"before": "latest"}));
    assert_eq!(resp["error"]["code"], json!(-32602), "{resp}");
    assert!(resp["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("`before`")));
}

#[test]
fn a_whole_list_too_large_is_refused_with_the_way_to_page_and_the_connection_stays() {
    let names: Vec<String> = (0..60).map(|i| format!("job{i:02}")).collect();
    let d = Daemon::start(&config("max_output_bytes = 4096", &jobs(&names)));
    let mut c = d.client();
    for _ in 0..2 {
        let resp = c.call("jobs.list", json!({}));
        assert_eq!(resp["error"]["code"], json!(-32602), "{resp}");
        let message = resp["error"]["message"].as_str().expect("message");
        assert!(
            message.contains("`limit`") && message.contains("`after`"),
            "{message}"
        );
        assert_eq!(resp["error"]["data"]["jobs"], json!(60));
        assert_eq!(c.ok("ping", json!({})), json!("pong"));
    }
    // Pages get every job, each page within the limit.
    let pages = all_pages(&mut c, json!({"limit": 10_000}));
    assert!(pages.len() > 1, "the cap ends pages early");
    let listed: Vec<String> = pages.iter().flat_map(page_names).collect();
    assert_eq!(listed, names);
    // Over HTTP: 400 with the error object, and the connection is kept.
    let mut h = HttpConn::connect(d.addr);
    let refused = h.request("GET", "/jobs", &[], "");
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.json()["code"], json!(-32602));
    assert_eq!(refused.header("connection"), Some("keep-alive"));
    let page = h.request("GET", "/jobs?limit=2", &[], "");
    assert_eq!(page.status, 200);
    assert_eq!(page_names(&page.json()), names[..2]);
}

#[test]
fn http_takes_the_paging_params_as_a_query() {
    let names: Vec<String> = ["a_b", "a.1", "a.2", "a.3", "b.1"]
        .iter()
        .map(|n| n.to_string())
        .collect();
    let mut text = config("", &jobs(&names));
    text.push_str("[[jobs]]\nname = \"quick\"\ncommand = [\"true\"]\n");
    let d = Daemon::start(&text);
    let mut c = d.client();
    let mut h = HttpConn::connect(d.addr);
    let get = |h: &mut HttpConn, path: &str| h.request("GET", path, &[], "");
    // Percent-encoding decodes.
    let page = get(&mut h, "/jobs?limit=2&prefix=a%2E&after=a%2E1");
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        page.json(),
        c.ok(
            "jobs.list",
            json!({"limit": 2, "prefix": "a.", "after": "a.1"})
        )
    );
    assert_eq!(page_names(&page.json()), ["a.2", "a.3"]);
    assert_eq!(page.json()["next_after"], Value::Null);
    let source = get(&mut h, "/jobs?source=file&limit=1");
    assert_eq!(source.json()["next_after"], json!("a.1"));
    // No query: the array, as always.
    assert!(get(&mut h, "/jobs").json().is_array());
    for bad in [
        "/jobs?limit=x",
        "/jobs?limit=0",
        "/jobs?source=cron",
        "/jobs?page=2",
        "/runs?before=x",
        "/runs?limit=-1",
    ] {
        let r = get(&mut h, bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert_eq!(r.json()["code"], json!(-32602), "{bad}");
    }
    let bad_escape = get(&mut h, "/jobs?prefix=%zz");
    assert_eq!(bad_escape.status, 400);
    // runs: job, limit and before as in runs.list.
    let ids: Vec<String> = (0..4)
        .map(|_| {
            let run = c.ok("jobs.run", json!({"name": "quick", "wait": true}));
            run["run_id"].as_str().expect("id").to_string()
        })
        .collect();
    let path = format!("/runs?job=quick&limit=2&before={}", ids[3]);
    let runs = get(&mut h, &path);
    assert_eq!(runs.status, 200, "{}", runs.body);
    assert_eq!(
        runs.json(),
        c.ok(
            "runs.list",
            json!({"job": "quick", "limit": 2, "before": ids[3]})
        )
    );
    let got: Vec<String> = runs
        .json()
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| r["run_id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(got, [ids[2].clone(), ids[1].clone()]);
}

/// The samples of each `job_name`, by job.
fn by_job(samples: &[Sample]) -> BTreeMap<String, usize> {
    let mut jobs = BTreeMap::new();
    for (_, labels, _) in samples {
        if let Some(job) = labels.get("job_name") {
            *jobs.entry(job.clone()).or_insert(0) += 1;
        }
    }
    jobs
}

#[test]
fn metrics_of_many_jobs_are_streamed_whole_and_the_connection_kept() {
    // About 1.5 KB of series per job: 3 MB in all, 45 times the output cap.
    let names: Vec<String> = (0..2000).map(|i| format!("job{i:04}")).collect();
    let d = Daemon::start(&config("max_output_bytes = 65536", &jobs(&names)));
    let mut h = HttpConn::connect(d.addr);
    for _ in 0..2 {
        let r = h.request("GET", "/metrics", &[], "");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("transfer-encoding"), Some("chunked"));
        assert_eq!(r.header("content-length"), None);
        assert!(r.body.len() > 32 * 65536, "{} bytes", r.body.len());
        let samples = parse_metrics(&r.body);
        let jobs = by_job(&samples);
        assert_eq!(jobs.len(), names.len(), "every job once");
        // 5 states, 16 buckets, +Inf, sum and count per job.
        assert!(jobs.values().all(|&n| n == 5 + 16 + 3), "{jobs:?}");
        assert!(samples.iter().any(|(n, _, _)| n == "tickd_up"));
    }
    // Pipelined behind a streamed answer: answered after it, in order.
    h.send(
        &[
            request_bytes("GET", "/metrics", &[], ""),
            request_bytes("GET", "/jobs?limit=1", &[], ""),
        ]
        .concat(),
    );
    let metrics = h.read_response();
    assert_eq!(by_job(&parse_metrics(&metrics.body)).len(), names.len());
    let page = h.read_response();
    assert_eq!(page.json()["next_after"], json!("job0000"));
    // HEAD: the head alone.
    let head = h.head("/metrics");
    assert_eq!(
        (head.status, head.header("transfer-encoding")),
        (200, Some("chunked"))
    );
    assert_eq!(h.request("GET", "/healthz", &[], "").body, "ok");
    let status = d.client().ok("status", json!({}));
    assert_eq!(status["clients"]["output_dropped"], json!(0), "{status}");
}

#[test]
fn a_client_slow_to_read_a_large_scrape_is_not_dropped() {
    // 6 MB of series, ninety times the output cap.
    let names: Vec<String> = (0..4000).map(|i| format!("job{i:04}")).collect();
    let d = Daemon::start(&config("max_output_bytes = 65536", &jobs(&names)));
    // A small receive buffer, so that the kernel cannot take the answer
    // off the daemon's hands (loopback buffers grow to tens of MB).
    use rustix::net::{sockopt, AddressFamily, SocketType};
    let fd = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).expect("socket");
    sockopt::set_socket_recv_buffer_size(&fd, 4096).expect("SO_RCVBUF");
    rustix::net::connect(&fd, &d.addr).expect("connect");
    let mut s = std::net::TcpStream::from(fd);
    s.set_read_timeout(Some(util::WAIT)).expect("timeout");
    let req = request_bytes("GET", "/metrics", &[("Connection", "close")], "");
    s.write_all(&req).expect("send");
    // The answer has begun...
    let mut start = [0u8; 15];
    s.read_exact(&mut start).expect("status line");
    assert_eq!(&start, b"HTTP/1.1 200 OK");
    // ...and while this client reads no more, others are served, and it
    // is not dropped for the answer it has not taken.
    let mut c = d.client();
    for _ in 0..20 {
        let status = c.ok("status", json!({}));
        assert_eq!(status["clients"]["output_dropped"], json!(0), "{status}");
    }
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("the rest, to the close");
    assert!(rest.len() > 80 * 65536, "{} bytes", rest.len());
    assert!(rest.ends_with(b"\r\n0\r\n\r\n"), "the last chunk ends it");
    let status = c.ok("status", json!({}));
    assert_eq!(status["clients"]["output_dropped"], json!(0), "{status}");
}

#[test]
fn metrics_over_http_1_0_end_with_the_connection() {
    let names: Vec<String> = (0..300).map(|i| format!("job{i:03}")).collect();
    let d = Daemon::start(&config("max_output_bytes = 8192", &jobs(&names)));
    let mut s = std::net::TcpStream::connect(d.addr).expect("connect");
    s.set_read_timeout(Some(util::WAIT)).expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").expect("send");
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("read to the close");
    let text = String::from_utf8(all).expect("utf8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Connection: close"), "{head}");
    assert!(!head.contains("Content-Length") && !head.contains("Transfer-Encoding"));
    assert_eq!(by_job(&parse_metrics(body)).len(), names.len());
}

#[test]
fn metrics_without_per_job_series_count_every_run_and_a_reload_brings_them_back() {
    let two = "[[jobs]]\nname = \"a\"\ncommand = [\"true\"]\n\
               [[jobs]]\nname = \"b\"\ncommand = [\"false\"]\n";
    let d = Daemon::start(&config("metrics_per_job = false", two));
    let mut c = d.client();
    for name in ["a", "a", "b"] {
        c.ok("jobs.run", json!({"name": name, "wait": true}));
    }
    let scrape = || {
        let r = util::http::get(d.addr, "/metrics");
        assert_eq!(r.status, 200);
        parse_metrics(&r.body)
    };
    let value = |samples: &[Sample], name: &str, labels: &[(&str, &str)]| {
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
    };
    let samples = scrape();
    assert!(
        samples.iter().all(|(_, l, _)| !l.contains_key("job_name")),
        "no job_name series"
    );
    let runs = "tickd_runs_total";
    assert_eq!(value(&samples, runs, &[("state", "succeeded")]), Some(2.0));
    assert_eq!(value(&samples, runs, &[("state", "failed")]), Some(1.0));
    let count = "tickd_run_duration_seconds_count";
    assert_eq!(value(&samples, count, &[]), Some(3.0));
    let inf = "tickd_run_duration_seconds_bucket";
    assert_eq!(value(&samples, inf, &[("le", "+Inf")]), Some(3.0));
    // A job removed by a reload leaves its runs in the totals.
    let one = "[[jobs]]\nname = \"a\"\ncommand = [\"true\"]\n";
    d.write_config(&config("metrics_per_job = false", one));
    c.ok("reload", json!({}));
    let samples = scrape();
    assert_eq!(value(&samples, runs, &[("state", "failed")]), Some(1.0));
    assert_eq!(value(&samples, count, &[]), Some(3.0));
    // Reloadable: per-job series come back, with the counts kept.
    d.write_config(&config("metrics_per_job = true", two));
    c.ok("reload", json!({}));
    let samples = scrape();
    let a = [("job_name", "a"), ("state", "succeeded")];
    assert_eq!(value(&samples, runs, &a), Some(2.0));
    assert_eq!(value(&samples, runs, &[("state", "succeeded")]), None);
}
