//! Cluster mode (issue 17), the paths of `tests/cluster.rs` that hand
//! work from one node to another: a killed node's queued scheduled runs
//! run on a survivor under their ids; an API job put on one node exists on
//! the others; occurrences missed while Redis was away are claimed under
//! the job's `catch_up` when it returns; `tickd ctl watch --cluster`
//! prints every node's events from the Redis Stream.

use crate::api_jobs::kill9;
use crate::cluster::{cluster_of, fleet, namespace, node_config, run_id, runs_of};
use crate::util;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use util::redis::RedisServer;
use util::{poll_until, Daemon};

/// A node whose only worker is held by a long run queues the scheduled
/// occurrences it wins; killed, those never started, and a survivor runs
/// each under the same run id (one record per occurrence, taken over).
#[test]
fn queued_scheduled_runs_of_a_killed_node_run_on_a_survivor_under_their_ids() {
    let redis = RedisServer::start();
    let ns = namespace();
    let jobs = r#"
[[jobs]]
name = "tick"
every = "1s"
overlap = "allow"
command = ["true"]

[[jobs]]
name = "hog"
command = ["sleep", "60"]
"#;
    // The victim has one worker; the survivor has two.
    let victim = Daemon::start(&node_config(&redis, &ns, "v", "workers = 1", "", jobs));
    let survivor = Daemon::start(&node_config(&redis, &ns, "s", "", "", jobs));
    let mut s = survivor.client();
    poll_until("both nodes in the cluster", || {
        let n = cluster_of(&mut s)["nodes"].as_array().map_or(0, Vec::len);
        (n == 2).then_some(())
    });
    let mut v = victim.client();
    v.ok("jobs.run", json!({"name": "hog"}));
    // Wait until the victim holds scheduled runs it cannot start.
    let stuck: BTreeSet<String> = poll_until("queued runs on the victim", || {
        let queued: BTreeSet<String> = runs_of(&mut v, "tick")
            .iter()
            .filter(|r| r["node"] == "v" && r["state"] == "queued")
            .map(run_id)
            .collect();
        (queued.len() >= 2).then_some(queued)
    });
    kill9(victim);
    for id in &stuck {
        let run = poll_until(&format!("run {id} to end on the survivor"), || {
            let r = s.ok("runs.get", json!({ "run_id": id }));
            (r["state"] == "succeeded").then_some(r)
        });
        assert_eq!(run["node"], "s", "{run}");
        assert_eq!(run["trigger"], "schedule", "{run}");
    }
    let cl = cluster_of(&mut s);
    assert!(
        cl["claims"]["taken_over"].as_u64() >= Some(stuck.len() as u64),
        "{cl}"
    );
    // One record per occurrence: no due time twice.
    let runs = runs_of(&mut s, "tick");
    let mut seen = BTreeSet::new();
    for r in runs.iter().filter(|r| r["trigger"] == "schedule") {
        assert!(
            seen.insert(r["scheduled_at"].to_string()),
            "two runs of {}: {runs:?}",
            r["scheduled_at"]
        );
    }
}

/// `jobs.put` on one node: the job is on the other within a few seconds
/// (through Redis), and `jobs.delete` removes it there too.
#[test]
fn an_api_job_put_on_one_node_is_defined_on_the_others() {
    let redis = RedisServer::start();
    let ns = namespace();
    let tick = "[[jobs]]\nname = \"tick\"\nevery = \"1h\"\ncommand = [\"true\"]\n";
    let nodes = fleet(&redis, &ns, &["p1", "p2"], "allow_job_api = true", "", tick);
    let (mut a, mut b) = (nodes[0].client(), nodes[1].client());
    a.ok(
        "jobs.put",
        json!({"job": {"name": "shared", "every": "1h", "command": ["echo", "x"]}}),
    );
    let job = poll_until("the API job on the other node", || {
        let r = b.call("jobs.get", json!({"name": "shared"}));
        r.get("result").cloned()
    });
    assert_eq!(job["source"], "api", "{job}");
    a.ok("jobs.delete", json!({"name": "shared"}));
    poll_until("the API job gone from the other node", || {
        let r = b.call("jobs.get", json!({"name": "shared"}));
        r.get("error").map(|_| ())
    });
}

/// With `pause`, an occurrence missed while Redis was away is claimed
/// when it returns if the job asks for catch-up (`once`: the latest), and
/// run by one node only.
#[test]
fn occurrences_missed_while_redis_was_away_are_caught_up_once() {
    let mut redis = RedisServer::start();
    let ns = namespace();
    let jobs = r#"
[[jobs]]
name = "tick"
every = "1s"
catch_up = "once"
command = ["true"]
"#;
    let nodes = fleet(&redis, &ns, &["c1", "c2"], "", "", jobs);
    let mut a = nodes[0].client();
    redis.stop();
    poll_until("both nodes to see Redis down", || {
        let down = nodes
            .iter()
            .all(|d| cluster_of(&mut d.client())["claims"]["down"].as_u64() >= Some(2));
        down.then_some(())
    });
    // Every occurrence due before this was refused a claim.
    let back = jiff::Timestamp::now().as_millisecond();
    redis.restart();
    let caught: Vec<Value> = poll_until("a catch-up run after Redis returned", || {
        let runs: Vec<Value> = runs_of(&mut a, "tick")
            .into_iter()
            .filter(|r| util::millis(&r["scheduled_at"]) < back)
            .collect();
        (!runs.is_empty()).then_some(runs)
    });
    // Redis came back empty: only runs written after it returned are in
    // it, and the latest missed due time is among them, once.
    let mut seen = BTreeSet::new();
    for r in &caught {
        assert!(seen.insert(r["scheduled_at"].to_string()), "{caught:?}");
    }
}

/// `tickd ctl watch --cluster --config FILE` prints the run events of
/// every node, read from the Redis Stream, with the node's name.
#[test]
fn ctl_watch_cluster_prints_every_nodes_events() {
    let redis = RedisServer::start();
    let ns = namespace();
    let job = "[[jobs]]\nname = \"hello\"\ncommand = [\"true\"]\n";
    let nodes = fleet(&redis, &ns, &["w1", "w2"], "", "", job);
    let mut watch = Command::new(util::bin())
        .args(["ctl", "watch", "--cluster", "--human", "--config"])
        .arg(&nodes[0].config_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tickd ctl watch --cluster");
    let stdout = watch.stdout.take().expect("stdout");
    let stderr = watch.stderr.take().expect("stderr");
    // It starts from new events: wait for its banner, then run on both.
    let mut banner = String::new();
    BufReader::new(stderr)
        .read_line(&mut banner)
        .expect("banner");
    assert!(banner.contains(":events"), "{banner}");
    for d in &nodes {
        d.client()
            .ok("jobs.run", json!({"name": "hello", "wait": true}));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut finished_on = BTreeSet::new();
    let deadline = std::time::Instant::now() + util::WAIT;
    while finished_on.len() < 2 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx.recv_timeout(left).expect("an event line in time");
        if line.contains("hello") && line.contains("succeeded") {
            finished_on.insert(line.rsplit(' ').next().unwrap_or("").to_string());
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(
        finished_on,
        BTreeSet::from(["w1".to_string(), "w2".to_string()])
    );
}

/// With `on_redis_down = "run-local"`, every node runs the occurrences due
/// while Redis is away itself (availability over exactly-once).
#[test]
fn run_local_runs_every_occurrence_on_every_node_while_redis_is_away() {
    let mut redis = RedisServer::start();
    let ns = namespace();
    let tick = "[[jobs]]\nname = \"tick\"\nevery = \"1s\"\ncommand = [\"true\"]\n";
    let extra = "on_redis_down = \"run-local\"";
    let nodes = fleet(&redis, &ns, &["l1", "l2"], "", extra, tick);
    redis.stop();
    let down = jiff::Timestamp::now().as_millisecond();
    for d in &nodes {
        let mut c = d.client();
        // runs.list answers from the node's memory while Redis is away.
        poll_until("local runs while Redis is away", || {
            let n = runs_of(&mut c, "tick")
                .iter()
                .filter(|r| util::millis(&r["scheduled_at"]) > down + 1000)
                .count();
            (n >= 2).then_some(())
        });
        assert_eq!(cluster_of(&mut c)["on_redis_down"], "run-local");
    }
}

/// A Redis that stops answering (SIGSTOP: a hung server) never holds
/// up the event loop: pings, `status` and a local `jobs.run` are answered
/// while it hangs (all Redis I/O is on the cluster threads, with
/// timeouts), and the node reports Redis unreachable, then recovers.
#[test]
fn a_hung_redis_never_holds_up_the_event_loop() {
    use rustix::process::Signal;
    let redis = RedisServer::start();
    let ns = namespace();
    let jobs = "[[jobs]]\nname = \"tick\"\nevery = \"1s\"\ncommand = [\"true\"]\n\
                [[jobs]]\nname = \"hello\"\ncommand = [\"true\"]\n";
    let node = fleet(&redis, &ns, &["z1"], "", "", jobs).remove(0);
    let mut c = node.client();
    redis.signal(Signal::STOP);
    // The cluster thread's next command times out: the link goes down.
    poll_until("the node to see Redis unreachable", || {
        (cluster_of(&mut c)["redis"]["connected"] == false).then_some(())
    });
    for _ in 0..20 {
        assert_eq!(c.ok("ping", json!({})), "pong");
        assert!(c.ok("status", json!({}))["cluster"].is_object());
    }
    let run = c.ok("jobs.run", json!({"name": "hello", "wait": true}));
    assert_eq!(run["state"], "succeeded", "{run}");
    redis.signal(Signal::CONT);
    poll_until("the link back", || {
        (cluster_of(&mut c)["redis"]["connected"] == true).then_some(())
    });
}

/// `POST /jobs/NAME/run?node=any`: the HTTP form of a run for any node;
/// another query parameter is refused.
#[test]
fn http_run_takes_node_any_and_refuses_other_query_parameters() {
    let redis = RedisServer::start();
    let ns = namespace();
    let job = "[[jobs]]\nname = \"hello\"\ncommand = [\"true\"]\n";
    let nodes = fleet(&redis, &ns, &["h1", "h2"], "", "", job);
    let addr = nodes[0].addr;
    let r = util::http::post(addr, "/jobs/hello/run?node=any", "");
    assert_eq!(r.status, 202, "{}", r.body);
    let answer = r.json();
    assert_eq!(answer["node"], "any", "{answer}");
    let id = answer["run_id"].as_str().expect("run_id").to_string();
    let mut other = nodes[1].client();
    poll_until("the run for any node to end", || {
        let run = other.call("runs.get", json!({ "run_id": id }));
        (run["result"]["state"] == "succeeded").then_some(())
    });
    let bad = util::http::post(addr, "/jobs/hello/run?name=other", "");
    assert_eq!(bad.status, 400, "{}", bad.body);
}
