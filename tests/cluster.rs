//! Cluster mode on Redis (issue 17) through the real binary and a real
//! `redis-server` (`util::redis`): several tickd nodes with the same
//! config on one Redis run each occurrence exactly once, also when a node
//! is killed, when Redis goes away and comes back, and with one node's
//! wall clock 2 s ahead; manual runs shared through Redis are answered
//! where they were asked; every run's end is in the `NS:events` stream;
//! without `[cluster]` no Redis connection is opened; `/cluster`,
//! `/healthz` and `tickd check` on `[cluster]`.
//!
//! Every test has its own redis-server and a fresh namespace. The windows
//! during which occurrences are counted are real time (the window is what
//! is tested); every other wait is a poll with a deadline.

use crate::api_jobs::kill9;
use crate::http::{parse_metrics, Sample};
use crate::util;

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;
use util::http::get;
use util::redis::{RedisServer, StreamEntry};
use util::{config, poll_until, Client, Daemon};

/// `claim_ttl` of every test's nodes.
const CLAIM_TTL_MS: i64 = 3_000;

const TICK: &str = r#"
[[jobs]]
name = "tick"
every = "1s"
command = ["true"]
"#;

const HOOKS: &[(&str, &str)] = &[("TICKD_DEBUG_HOOKS", "1")];

/// A namespace no other test (or earlier run) uses.
pub(crate) fn namespace() -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .subsec_nanos();
    format!("t{}x{n}x{nanos}", std::process::id())
}

/// One node's config: `daemon_extra` keys, `jobs`, and a `[cluster]` table
/// on `redis` with `cluster_extra` keys.
pub(crate) fn node_config(
    redis: &RedisServer,
    ns: &str,
    node: &str,
    daemon_extra: &str,
    cluster_extra: &str,
    jobs: &str,
) -> String {
    let daemon = format!("history = 1000\nlog_level = \"info\"\n{daemon_extra}");
    format!(
        "{}\n[cluster]\nredis = \"{}\"\nnode = \"{node}\"\nnamespace = \"{ns}\"\nclaim_ttl = \"{}s\"\n{cluster_extra}\n",
        config(&daemon, jobs),
        redis.url(),
        CLAIM_TTL_MS / 1000
    )
}

/// Starts one node per name, all with the same config but `node`.
pub(crate) fn fleet(
    redis: &RedisServer,
    ns: &str,
    names: &[&str],
    daemon_extra: &str,
    cluster_extra: &str,
    jobs: &str,
) -> Vec<Daemon> {
    let nodes: Vec<Daemon> = names
        .iter()
        .map(|name| {
            Daemon::start(&node_config(
                redis,
                ns,
                name,
                daemon_extra,
                cluster_extra,
                jobs,
            ))
        })
        .collect();
    wait_joined(&nodes, names);
    nodes
}

/// `status.cluster` of a node.
pub(crate) fn cluster_of(c: &mut Client) -> Value {
    c.ok("status", json!({}))["cluster"].clone()
}

/// The names in `cluster.nodes`.
fn node_names(cluster: &Value) -> BTreeSet<String> {
    cluster["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .filter_map(|n| n["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until every node is connected to Redis and sees every other one.
fn wait_joined(nodes: &[Daemon], names: &[&str]) {
    let want: BTreeSet<String> = names.iter().map(|n| n.to_string()).collect();
    for (d, name) in nodes.iter().zip(names) {
        let mut c = d.client();
        poll_until(&format!("{name} to join the cluster"), || {
            let cl = cluster_of(&mut c);
            (cl["redis"]["connected"] == true && node_names(&cl) == want).then_some(())
        });
    }
}

/// Wall-clock time, Unix ms.
fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The first whole second after `ms`.
fn next_second(ms: i64) -> i64 {
    (ms / 1000 + 1) * 1000
}

/// Sleeps until the wall clock reads `ms` (a window of the test passing,
/// not a synchronisation).
fn sleep_until_wall(ms: i64) {
    let left = ms - now_ms();
    if left > 0 {
        std::thread::sleep(Duration::from_millis(left as u64));
    }
}

/// `runs.list {job, limit: 1000}` (cluster-wide in cluster mode).
pub(crate) fn runs_of(c: &mut Client, job: &str) -> Vec<Value> {
    c.ok("runs.list", json!({"job": job, "limit": 1000}))
        .as_array()
        .expect("runs.list answers an array")
        .clone()
}

/// A scheduled run's due time, Unix ms.
fn due(run: &Value) -> Option<i64> {
    (!run["scheduled_at"].is_null()).then(|| util::millis(&run["scheduled_at"]))
}

fn is_terminal(run: &Value) -> bool {
    !matches!(run["state"].as_str(), Some("queued" | "running"))
}

pub(crate) fn run_id(v: &Value) -> String {
    v["run_id"].as_str().expect("run_id").to_string()
}

/// Polls `runs.list` of `job` until an occurrence due at `at` or later has
/// a run and every run due before it has ended; returns the list.
fn wait_scheduled(c: &mut Client, job: &str, at: i64) -> Vec<Value> {
    poll_until(&format!("a run of {job} due at {at} or later"), || {
        let runs = runs_of(c, job);
        let reached = runs.iter().any(|r| due(r).is_some_and(|t| t >= at));
        let settled = runs
            .iter()
            .all(|r| is_terminal(r) || due(r).is_none_or(|t| t >= at));
        (reached && settled).then_some(runs)
    })
}

/// One line per run, for failure messages.
fn describe(runs: &[&Value]) -> String {
    runs.iter()
        .map(|r| {
            format!(
                "{} due {} on {} ({}, started {})",
                r["run_id"], r["scheduled_at"], r["node"], r["state"], r["started_at"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// The scheduled runs by due time.
fn by_due(runs: &[Value]) -> BTreeMap<i64, Vec<&Value>> {
    let mut map: BTreeMap<i64, Vec<&Value>> = BTreeMap::new();
    for r in runs.iter().filter(|r| r["trigger"] == "schedule") {
        if let Some(at) = due(r) {
            map.entry(at).or_default().push(r);
        }
    }
    map
}

/// No occurrence has two runs (over every run given, window or not).
fn assert_no_duplicates(what: &str, runs: &[Value]) {
    let dups: Vec<&Value> = by_due(runs)
        .into_values()
        .filter(|rs| rs.len() > 1)
        .flatten()
        .collect();
    assert!(
        dups.is_empty(),
        "{what}: occurrences run more than once:\n  {}",
        describe(&dups)
    );
}

/// Every whole second in `[from, to]` (ms) has a run.
fn assert_every_second(what: &str, runs: &[Value], from: i64, to: i64) {
    let seen = by_due(runs);
    let missing: Vec<i64> = (from..=to)
        .step_by(1000)
        .filter(|at| !seen.contains_key(at))
        .collect();
    assert!(
        missing.is_empty(),
        "{what}: no run of the occurrences due at {missing:?} (window {from}..={to}); runs:\n  {}",
        describe(&seen.values().flatten().copied().collect::<Vec<_>>())
    );
}

/// Runs deduplicated by run id (lists taken from several nodes or times).
fn union(lists: &[&[Value]]) -> Vec<Value> {
    let mut seen = HashSet::new();
    lists
        .iter()
        .flat_map(|l| l.iter())
        .filter(|r| seen.insert(run_id(r)))
        .cloned()
        .collect()
}

/// The node that ran most of `runs`.
fn busiest(runs: &[Value]) -> String {
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for r in runs {
        *count
            .entry(r["node"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    count
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(name, _)| name)
        .expect("some runs")
}

/// `cluster.claims.KIND` summed over the nodes.
fn claims(nodes: &[Daemon], kind: &str) -> u64 {
    nodes
        .iter()
        .map(|d| {
            let cl = cluster_of(&mut d.client());
            cl["claims"][kind]
                .as_u64()
                .unwrap_or_else(|| panic!("cluster.claims.{kind}: {cl}"))
        })
        .sum()
}

fn scrape(d: &Daemon) -> Vec<Sample> {
    let r = get(d.addr, "/metrics");
    assert_eq!(r.status, 200);
    parse_metrics(&r.body)
}

/// The samples of metric `name` whose labels include `labels`, summed.
fn metric(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let values: Vec<f64> = samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.2)
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// The events of `NS:events` about run `id`.
fn events_of<'a>(events: &'a [StreamEntry], id: &str) -> Vec<&'a StreamEntry> {
    events
        .iter()
        .filter(|e| e.get("run_id") == Some(id))
        .collect()
}

fn is_terminal_event(e: &StreamEntry) -> bool {
    matches!(e.get("type"), Some("run.finished" | "run.interrupted"))
}

/// Three nodes, one `every = "1s"` job, 30 s: each due second of the
/// window ran once, on one of the three; the run ids grow with the due
/// time; every node lists the same runs; the losers counted their lost
/// claims.
#[test]
fn three_nodes_run_each_second_exactly_once() {
    let redis = RedisServer::start();
    let ns = namespace();
    let names = ["n1", "n2", "n3"];
    let nodes = fleet(&redis, &ns, &names, "", "", TICK);
    let from = next_second(now_ms()) + 1000;
    let to = from + 29_000; // 30 occurrences
    sleep_until_wall(to);
    let mut a = nodes[0].client();
    let runs = wait_scheduled(&mut a, "tick", to + 1000);

    assert_no_duplicates("3 nodes", &runs);
    assert_every_second("3 nodes", &runs, from, to);
    let window: Vec<&Value> = by_due(&runs)
        .range(from..=to)
        .flat_map(|(_, rs)| rs.iter().copied())
        .collect();
    for r in &window {
        assert_eq!(r["state"], "succeeded", "{r}");
        assert!(
            names.contains(&r["node"].as_str().unwrap_or("")),
            "a run names its node: {r}"
        );
    }
    // Fleet-unique ids, ordered by creation: by due time here.
    let ids: Vec<u64> = window
        .iter()
        .map(|r| run_id(r).parse().expect("decimal run id"))
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "run ids grow with the due time: {ids:?}"
    );
    // Newest first, as without a cluster.
    let listed: Vec<u64> = runs
        .iter()
        .map(|r| run_id(r).parse().expect("decimal run id"))
        .collect();
    assert!(
        listed.windows(2).all(|w| w[0] > w[1]),
        "newest first: {listed:?}"
    );
    // runs.list is cluster-wide: the others list the same window.
    let want: BTreeSet<String> = window.iter().map(|r| run_id(r)).collect();
    for (d, name) in nodes.iter().zip(names).skip(1) {
        let theirs: BTreeSet<String> = runs_of(&mut d.client(), "tick")
            .iter()
            .filter(|r| due(r).is_some_and(|t| (from..=to).contains(&t)))
            .map(run_id)
            .collect();
        assert_eq!(theirs, want, "{name} lists the same runs");
    }
    // Each occurrence was won once and lost by at least one other node.
    let (won, lost) = (claims(&nodes, "won"), claims(&nodes, "lost"));
    assert!(won >= 30 && lost >= 30, "claims won {won}, lost {lost}");
    // jobs.get answers last_run from the cluster: the same run on every
    // node (between two occurrences), whichever node ran it.
    let mut clients: Vec<Client> = nodes.iter().map(Daemon::client).collect();
    poll_until("the same last_run on every node", || {
        let last: BTreeSet<String> = clients
            .iter_mut()
            .map(|c| c.ok("jobs.get", json!({"name": "tick"}))["last_run"]["run_id"].to_string())
            .collect();
        (last.len() == 1 && !last.contains("null")).then_some(())
    });

    let status = a.ok("status", json!({}));
    let cl = &status["cluster"];
    assert_eq!(cl["node"], "n1", "{cl}");
    assert_eq!(cl["namespace"], ns.as_str(), "{cl}");
    assert_eq!(cl["on_redis_down"], "pause", "the default: {cl}");
    for n in cl["nodes"].as_array().expect("cluster.nodes") {
        assert_eq!(n["version"], status["version"], "{n}");
        assert!(n["last_seen"].is_string() && n["running"].is_u64(), "{n}");
    }
    let m = scrape(&nodes[0]);
    assert_eq!(metric(&m, "tickd_cluster_redis_up", &[]), Some(1.0));
    assert_eq!(metric(&m, "tickd_cluster_nodes", &[]), Some(3.0));
    let won_metric: f64 = nodes
        .iter()
        .map(|d| {
            metric(
                &scrape(d),
                "tickd_cluster_claims_total",
                &[("result", "won")],
            )
            .unwrap_or(0.0)
        })
        .sum();
    assert!(
        won_metric >= 30.0,
        "claims won per the metric: {won_metric}"
    );
}

/// kill -9 of the node that ran the most: nothing after the kill runs
/// twice, the gap is bounded by `claim_ttl`, then every second runs again;
/// the run it had in flight ends `interrupted`, on every survivor and in
/// the events stream.
#[test]
fn kill_9_of_the_busiest_node_loses_no_occurrence_twice() {
    let redis = RedisServer::start();
    let ns = namespace();
    let names = ["k1", "k2", "k3"];
    let jobs = format!("{TICK}\n[[jobs]]\nname = \"long\"\ncommand = [\"sleep\", \"60\"]\n");
    let mut nodes = fleet(&redis, &ns, &names, "", "", &jobs);
    let first = next_second(now_ms());
    let runs = wait_scheduled(&mut nodes[0].client(), "tick", first + 4000);
    let victim_name = busiest(&runs);
    let victim = names
        .iter()
        .position(|n| *n == victim_name)
        .unwrap_or_else(|| panic!("busiest node {victim_name:?} is not one of {names:?}"));

    // A run in flight on the victim, seen running from a survivor.
    let long = run_id(
        &nodes[victim]
            .client()
            .ok("jobs.run", json!({"name": "long"})),
    );
    let survivor = (victim + 1) % 3;
    let mut s = nodes[survivor].client();
    // Its record reaches Redis a moment after the run is created: until
    // then another node answers "no such run".
    poll_until("the long run to be seen running from a survivor", || {
        let r = s.call("runs.get", json!({ "run_id": long }));
        (r["result"]["state"] == "running").then_some(())
    });
    let before = runs_of(&mut s, "tick");

    kill9(nodes.remove(victim));
    let killed = now_ms();
    let survivors: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| *n != victim_name)
        .collect();
    let end = next_second(killed) + 12_000;
    sleep_until_wall(end);
    let mut s = nodes[0].client();
    let after = wait_scheduled(&mut s, "tick", end + 1000);
    let all = union(&[&before, &after]);

    assert_no_duplicates("after the kill", &all);
    // Then every second again, from claim_ttl (and slack) after the kill.
    let steady = next_second(killed + CLAIM_TTL_MS + 2000);
    assert_every_second("after the kill", &all, steady, end);
    // Any gap around the kill is bounded by claim_ttl.
    let dues: Vec<i64> = by_due(&all)
        .into_keys()
        .filter(|t| *t >= killed - 2000 && *t <= end)
        .collect();
    let widest = dues.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(
        widest <= CLAIM_TTL_MS + 2000,
        "a gap of {widest} ms around the kill (claim_ttl {CLAIM_TTL_MS} ms): {dues:?}"
    );
    for r in all
        .iter()
        .filter(|r| due(r).is_some_and(|t| t > killed + 1000))
    {
        assert_ne!(
            r["node"], victim_name,
            "a run after the kill on the dead node: {r}"
        );
    }

    // The victim's run in flight ends interrupted, seen from each survivor.
    for (d, name) in nodes.iter().zip(&survivors) {
        let r = d.wait_run_done(&long);
        assert_eq!(r["state"], "interrupted", "on {name}: {r}");
        assert_eq!(r["node"], victim_name, "on {name}: {r}");
        assert!(
            r["error"].as_str().unwrap_or("").contains(&victim_name),
            "the error names the dead node: {r}"
        );
    }
    let events = redis.xrange(&format!("{ns}:events"));
    assert!(
        events_of(&events, &long)
            .iter()
            .any(|e| is_terminal_event(e) && e.get("state") == Some("interrupted")),
        "NS:events has the interruption of {long}: {:?}",
        events_of(&events, &long)
    );
    // The dead node's heartbeat expires: the survivors stop listing it.
    for (d, name) in nodes.iter().zip(&survivors) {
        let mut c = d.client();
        poll_until(&format!("{name} to drop {victim_name}"), || {
            let cl = cluster_of(&mut c);
            let listed = node_names(&cl);
            (!listed.contains(&victim_name) && listed.len() == 2).then_some(())
        });
    }
}

/// Redis killed for 10 s with `on_redis_down = "pause"`: health turns
/// `degraded`, nothing due while Redis is away runs (on either node), no
/// occurrence runs twice, and once Redis is back health is `ok` and every
/// second runs again.
#[test]
fn redis_down_for_ten_seconds_pauses_then_resumes() {
    let mut redis = RedisServer::start();
    let ns = namespace();
    let names = ["r1", "r2"];
    let nodes = fleet(&redis, &ns, &names, "", "on_redis_down = \"pause\"", TICK);
    let mut a = nodes[0].client();
    let before = wait_scheduled(&mut a, "tick", next_second(now_ms()) + 2000);

    redis.stop();
    let down = now_ms();
    for (d, name) in nodes.iter().zip(names) {
        let mut c = d.client();
        poll_until(&format!("{name} degraded"), || {
            let s = c.ok("status", json!({}));
            (s["health"] == "degraded" && s["cluster"]["redis"]["connected"] == false).then_some(())
        });
    }
    sleep_until_wall(down + 10_000);
    // Nothing ran while Redis was away (each node answers from memory).
    let mut while_down = Vec::new();
    for d in &nodes {
        while_down.extend(runs_of(&mut d.client(), "tick"));
    }
    let paused: Vec<&Value> = while_down
        .iter()
        .filter(|r| due(r).is_some_and(|t| t >= down + 2000))
        .collect();
    assert!(
        paused.is_empty(),
        "runs while Redis was down, with pause:\n  {}",
        describe(&paused)
    );

    redis.restart();
    let back = now_ms();
    for (d, name) in nodes.iter().zip(names) {
        let mut c = d.client();
        poll_until(&format!("{name} ok again"), || {
            let s = c.ok("status", json!({}));
            (s["health"] == "ok" && s["cluster"]["redis"]["connected"] == true).then_some(())
        });
    }
    let healthy = next_second(now_ms());
    let after = wait_scheduled(&mut a, "tick", healthy + 4000);
    let all = union(&[&before, &while_down, &after]);
    assert_no_duplicates("Redis down and back", &all);
    assert_every_second(
        "after Redis came back",
        &all,
        healthy + 1000,
        healthy + 4000,
    );
    let paused: Vec<&Value> = all
        .iter()
        .filter(|r| due(r).is_some_and(|t| t >= down + 2000 && t < back))
        .collect();
    assert!(
        paused.is_empty(),
        "ran while down:\n  {}",
        describe(&paused)
    );
    assert!(
        claims(&nodes, "down") > 0,
        "the occurrences missed while Redis was down are counted"
    );
}

/// Redis restarted (empty) while a run is in flight: the run ends and is
/// visible from the other node, no occurrence runs twice across the
/// restart, every second runs again after it.
#[test]
fn redis_restarted_mid_run_loses_nothing_and_doubles_nothing() {
    let mut redis = RedisServer::start();
    let ns = namespace();
    let names = ["m1", "m2"];
    let jobs = format!(
        "{TICK}\n[[jobs]]\nname = \"mid\"\ncommand = [\"sh\", \"-c\", \"sleep 3; echo done\"]\n"
    );
    let nodes = fleet(&redis, &ns, &names, "", "", &jobs);
    let mut a = nodes[0].client();
    let mut b = nodes[1].client();
    let before = wait_scheduled(&mut a, "tick", next_second(now_ms()) + 2000);
    let mid = run_id(&a.ok("jobs.run", json!({"name": "mid"})));
    poll_until("the run to be seen running on the other node", || {
        let r = b.call("runs.get", json!({ "run_id": mid }));
        (r["result"]["state"] == "running").then_some(())
    });

    redis.restart();
    // The restarted Redis is empty: until the run's end is written there,
    // the other node may not know the run at all.
    let r = poll_until("the run's end, seen from the other node", || {
        let r = b.call("runs.get", json!({ "run_id": mid }))["result"].clone();
        (!r.is_null() && is_terminal(&r)).then_some(r)
    });
    assert_eq!(
        (&r["state"], &r["node"], &r["output"]),
        (&json!("succeeded"), &json!("m1"), &json!("done\n")),
        "{r}"
    );
    for (d, name) in nodes.iter().zip(names) {
        let mut c = d.client();
        poll_until(&format!("{name} ok after the restart"), || {
            let s = c.ok("status", json!({}));
            (s["health"] == "ok" && s["cluster"]["redis"]["connected"] == true).then_some(())
        });
    }
    let healthy = next_second(now_ms());
    let after = wait_scheduled(&mut a, "tick", healthy + 4000);
    let all = union(&[&before, &after, &runs_of(&mut b, "tick")]);
    assert_no_duplicates("across a Redis restart", &all);
    assert_every_second("after the restart", &all, healthy + 1000, healthy + 4000);
}

/// One node of three with its wall clock 2 s ahead (`debug.clock_jump`
/// right after its start, before the others start): an interval job and a per-second cron job still
/// run once per due second, and the fast node does take part.
#[test]
fn a_node_two_seconds_ahead_still_runs_each_second_once() {
    let redis = RedisServer::start();
    let ns = namespace();
    let names = ["ahead", "s1", "s2"];
    let jobs = format!(
        "{TICK}\n[[jobs]]\nname = \"crontick\"\ncron = \"* * * * * *\"\ncommand = [\"true\"]\n"
    );
    // The fast node first, its clock stepped at once, then the others.
    let ahead = Daemon::start_with_env(&node_config(&redis, &ns, "ahead", "", "", &jobs), HOOKS);
    let jump = ahead.client().ok("debug.clock_jump", json!({"ms": 2000}));
    assert_eq!(jump["offset_ms"], 2000, "{jump}");
    let mut nodes = vec![ahead];
    nodes.extend(
        names[1..]
            .iter()
            .map(|n| Daemon::start(&node_config(&redis, &ns, n, "", "", &jobs))),
    );
    wait_joined(&nodes, &names);

    let from = next_second(now_ms()) + 1000;
    let to = from + 14_000;
    sleep_until_wall(to);
    // Read from a node on the true time.
    let mut a = nodes[1].client();
    for job in ["tick", "crontick"] {
        let runs = wait_scheduled(&mut a, job, to + 1000);
        assert_no_duplicates(job, &runs);
        assert_every_second(job, &runs, from, to);
        let fast = by_due(&runs)
            .range(from..=to)
            .flat_map(|(_, rs)| rs.iter())
            .filter(|r| r["node"] == "ahead")
            .count();
        assert!(
            fast > 0,
            "{job}: the node 2 s ahead claims first, so it should have run some: {}",
            describe(
                &by_due(&runs)
                    .range(from..=to)
                    .flat_map(|(_, rs)| rs.iter().copied())
                    .collect::<Vec<_>>()
            )
        );
    }
}

/// `jobs.run` and `submit` with `"node": "any"` on node A run on some node
/// and are answered on A; C finds the run by id; without `node` the run
/// stays local; `NS:events` holds the terminal event of every run.
#[test]
fn work_shared_through_redis_is_answered_where_asked_and_in_the_events() {
    let redis = RedisServer::start();
    let ns = namespace();
    let names = ["A", "B", "C"];
    let jobs = format!("{TICK}\n[[jobs]]\nname = \"hello\"\ncommand = [\"echo\", \"hello\"]\n");
    let nodes = fleet(&redis, &ns, &names, "allow_submit = true", "", &jobs);
    let mut a = nodes[0].client();
    let mut c = nodes[2].client();

    for _ in 0..5 {
        let r = a.ok(
            "jobs.run",
            json!({"name": "hello", "node": "any", "wait": true}),
        );
        assert_eq!(
            (&r["state"], &r["output"], &r["trigger"]),
            (&json!("succeeded"), &json!("hello\n"), &json!("manual")),
            "{r}"
        );
        assert!(names.contains(&r["node"].as_str().unwrap_or("")), "{r}");
        // The run's end reaches Redis a moment after the answer when the
        // node that asked ran it itself.
        let seen = poll_until("the run's end seen from C", || {
            let seen = c.call("runs.get", json!({"run_id": r["run_id"]}))["result"].clone();
            (seen["state"] == r["state"]).then_some(seen)
        });
        assert_eq!(
            (&seen["run_id"], &seen["state"], &seen["node"]),
            (&r["run_id"], &r["state"], &r["node"]),
            "runs.get on C: {seen}"
        );
    }
    // Without waiting: an id at once, the run found from C once it ends.
    let ids: Vec<String> = (0..5)
        .map(|_| run_id(&a.ok("jobs.run", json!({"name": "hello", "node": "any"}))))
        .collect();
    for id in &ids {
        let r = nodes[2].wait_run_done(id);
        assert_eq!(r["state"], "succeeded", "{r}");
    }
    // The default is local.
    let local = nodes[1]
        .client()
        .ok("jobs.run", json!({"name": "hello", "wait": true}));
    assert_eq!(
        (&local["state"], &local["node"]),
        (&json!("succeeded"), &json!("B")),
        "{local}"
    );
    let submitted = a.ok(
        "submit",
        json!({"job": {"kind": "exec", "command": ["echo", "hi"]}, "node": "any", "wait": true}),
    );
    assert_eq!(
        (
            &submitted["state"],
            &submitted["output"],
            &submitted["trigger"]
        ),
        (&json!("succeeded"), &json!("hi\n"), &json!("submit")),
        "{submitted}"
    );
    assert!(
        names.contains(&submitted["node"].as_str().unwrap_or("")),
        "{submitted}"
    );

    // Every ended run, of every node and kind, has its terminal event.
    let runs = a
        .ok("runs.list", json!({"limit": 1000}))
        .as_array()
        .expect("array")
        .clone();
    let ended: Vec<&Value> = runs.iter().filter(|r| is_terminal(r)).collect();
    assert!(ended.len() >= 12, "{} runs ended", ended.len());
    let stream = format!("{ns}:events");
    let events = poll_until("a terminal event for every ended run", || {
        let events = redis.xrange(&stream);
        ended
            .iter()
            .all(|r| {
                events_of(&events, &run_id(r))
                    .iter()
                    .any(|e| is_terminal_event(e))
            })
            .then_some(events)
    });
    for r in &ended {
        let id = run_id(r);
        let evs = events_of(&events, &id);
        let end = evs.iter().find(|e| is_terminal_event(e)).expect("terminal");
        assert_eq!(end.get("state"), r["state"].as_str(), "{id}: {end:?}");
        assert_eq!(end.get("node"), r["node"].as_str(), "{id}: {end:?}");
        let carried: Value =
            serde_json::from_str(end.get("run").unwrap_or("null")).expect("run JSON in the event");
        assert_eq!(carried["run_id"], id.as_str(), "{end:?}");
    }
    assert!(
        ids.iter().all(|id| events_of(&events, id).len() >= 2),
        "a shared run's events include more than its end"
    );
}

/// The remote ports of the TCP connections (established or being opened)
/// that process `pid` holds.
fn tcp_peer_ports(pid: u32) -> Vec<u16> {
    let mut inodes = HashSet::new();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                let link = link.display().to_string();
                if let Some(inode) = link
                    .strip_prefix("socket:[")
                    .and_then(|s| s.strip_suffix(']'))
                {
                    inodes.insert(inode.to_string());
                }
            }
        }
    }
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            if f.len() > 9 && matches!(f[3], "01" | "02") && inodes.contains(f[9]) {
                if let Some(port) = f[2].rsplit(':').next() {
                    ports.push(u16::from_str_radix(port, 16).expect("hex port"));
                }
            }
        }
    }
    ports
}

/// Without `[cluster]` tickd never opens a Redis connection (not even to
/// the default port, 6379, used here when free) and `status` has no
/// `cluster`.
#[test]
fn without_a_cluster_table_no_redis_connection_is_opened() {
    let redis = RedisServer::start_on(6379).unwrap_or_else(RedisServer::start);
    let baseline = redis.connected_clients();
    let d = Daemon::start(&config("", TICK));
    let mut c = d.client();
    assert!(cluster_of(&mut c).is_null(), "no cluster in status");
    // Long enough for a cluster thread to have connected: two runs.
    let first = next_second(now_ms());
    wait_scheduled(&mut c, "tick", first + 1000);
    assert_eq!(
        redis.connected_clients(),
        baseline,
        "a client of Redis appeared"
    );
    let peers = tcp_peer_ports(d.child.id());
    assert!(
        !peers.contains(&redis.port) && !peers.contains(&6379),
        "tickd is connected to a Redis port: {peers:?}"
    );
    let m = scrape(&d);
    assert_eq!(metric(&m, "tickd_cluster_redis_up", &[]), None);
}

/// `GET /cluster` answers the `cluster` object of `status`; the URL shown
/// hides the password it holds.
#[test]
fn get_cluster_answers_the_cluster_object_without_the_password() {
    let redis = RedisServer::start_with_password(Some("s3cret-pw"));
    let ns = namespace();
    let nodes = fleet(&redis, &ns, &["solo"], "", "", TICK);
    let d = &nodes[0];
    let status = d.client().ok("status", json!({}));
    let from_status = &status["cluster"];
    let r = get(d.addr, "/cluster");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body = r.json();
    for cl in [from_status, &body] {
        assert_eq!(cl["node"], "solo", "{cl}");
        assert_eq!(cl["namespace"], ns.as_str(), "{cl}");
        assert_eq!(cl["on_redis_down"], "pause", "{cl}");
        assert_eq!(cl["redis"]["connected"], true, "{cl}");
        assert!(cl["redis"]["rtt_ms"].is_number(), "{cl}");
        let url = cl["redis"]["url"]
            .as_str()
            .unwrap_or_else(|| panic!("url: {cl}"));
        assert!(url.contains(&redis.port.to_string()), "{url}");
        assert!(!url.contains("s3cret-pw"), "the password is shown: {url}");
        for kind in ["won", "lost", "busy", "down", "taken_over"] {
            assert!(cl["claims"][kind].is_u64(), "claims.{kind}: {cl}");
        }
        assert_eq!(node_names(cl), BTreeSet::from(["solo".to_string()]), "{cl}");
    }
    assert!(!status.to_string().contains("s3cret-pw"), "{status}");
    let m = scrape(d);
    assert_eq!(metric(&m, "tickd_cluster_redis_up", &[]), Some(1.0));
    assert_eq!(metric(&m, "tickd_cluster_nodes", &[]), Some(1.0));
    assert!(metric(&m, "tickd_cluster_redis_rtt_seconds", &[]).is_some());
}

/// With Redis down the node says so (`status.health` `degraded` with a
/// reason, `/cluster`, the metric) but `/healthz` stays 200, so a load
/// balancer does not pull every node at once; all is `ok` once it is back.
#[test]
fn healthz_stays_200_while_redis_is_down() {
    let mut redis = RedisServer::start();
    let ns = namespace();
    let nodes = fleet(&redis, &ns, &["h1"], "", "", "");
    let d = &nodes[0];
    assert_eq!(get(d.addr, "/healthz").status, 200);

    redis.stop();
    let mut c = d.client();
    let status = d.wait_status("health degraded", |s| s["health"] == "degraded");
    let mut outside = status.clone();
    outside.as_object_mut().expect("object").remove("cluster");
    assert!(
        outside.to_string().to_lowercase().contains("redis"),
        "the reason for degraded names Redis: {status}"
    );
    let h = get(d.addr, "/healthz");
    assert_eq!(h.status, 200, "{}", h.body);
    let text = h.body.to_lowercase();
    assert!(
        text.contains("redis") && text.contains("down"),
        "{}",
        h.body
    );
    let cl = get(d.addr, "/cluster").json();
    assert_eq!(cl["redis"]["connected"], false, "{cl}");
    assert!(cl["redis"]["last_error"].is_string(), "{cl}");
    assert_eq!(metric(&scrape(d), "tickd_cluster_redis_up", &[]), Some(0.0));

    redis.restart();
    poll_until("health ok", || {
        let s = c.ok("status", json!({}));
        (s["health"] == "ok").then_some(())
    });
    assert_eq!(get(d.addr, "/healthz").status, 200);
    assert_eq!(metric(&scrape(d), "tickd_cluster_redis_up", &[]), Some(1.0));
}

/// Bad `[cluster]` values are reported in one pass, each naming its key
/// and line; good ones pass `check` without Redis being reachable.
#[test]
fn check_names_each_bad_cluster_key() {
    let (code, err) = util::check_text(
        r#"[cluster]
redis = "http://127.0.0.1:6379/0"
claim_ttl = "0s"
on_redis_down = "maybe"
nmespace = "x"
"#,
    );
    assert_eq!(code, Some(1), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    let want = [
        "bad.toml:2: cluster.redis: ",
        "bad.toml:3: cluster.claim_ttl: ",
        "bad.toml:4: cluster.on_redis_down: ",
        "bad.toml:5: cluster.nmespace: unknown key; did you mean `namespace`?",
    ];
    assert_eq!(lines.len(), want.len(), "{err}");
    for (line, want) in lines.iter().zip(want) {
        assert!(line.contains(want), "{line}\nwanted: {want}");
    }
    assert!(
        lines[2].contains("run-local"),
        "the choices are named: {}",
        lines[2]
    );

    // Nothing listens on port 1: check does not connect.
    for url in [
        "redis://127.0.0.1:1/0",
        "rediss://127.0.0.1:1/0",
        "redis+sentinel://127.0.0.1:1/mymaster/0",
    ] {
        let (code, err) = util::check_text(&format!(
            "[cluster]\nredis = \"{url}\"\nnode = \"x\"\nnamespace = \"ns\"\nclaim_ttl = \"1s\"\non_redis_down = \"run-local\"\n"
        ));
        assert_eq!(code, Some(0), "{url}: {err}");
    }
}

/// The fixture itself: a password, a stream read back, a stop that drops
/// connections and a restart on the same port with nothing kept.
#[test]
fn the_redis_fixture_stops_and_restarts_on_its_port() {
    let mut redis = RedisServer::start_with_password(Some("pw"));
    let port = redis.port;
    assert!((20_000..32_768).contains(&port), "{port}");
    assert!(redis.url().starts_with("redis://:pw@127.0.0.1:"));
    let key = format!("{}:events", namespace());
    let id = redis.cmd(&["XADD", &key, "*", "type", "run.finished", "run_id", "7"]);
    let events = redis.xrange(&key);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].id, id.text());
    assert_eq!(
        (events[0].get("type"), events[0].get("run_id")),
        (Some("run.finished"), Some("7"))
    );
    assert_eq!(redis.cmd(&["XLEN", &key]).int(), 1);
    let mut held = redis.conn();
    redis.stop();
    assert!(held.try_cmd(&["PING"]).is_err(), "connections die with it");
    assert!(util::redis::Conn::connect(redis.addr(), Some("pw")).is_err());
    redis.restart();
    assert_eq!(redis.port, port);
    assert_eq!(redis.cmd(&["XLEN", &key]).int(), 0, "nothing persisted");
    assert!(redis.cmd(&["GET", "nothing"]).is_nil());
    assert!(redis.connected_clients() >= 1);
}
