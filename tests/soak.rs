//! Soak: load, reloads and job churn for a while, sampling the daemon's
//! RSS and open fds once a second; neither may grow beyond noise (the
//! second half of the run is compared with the first, generously).
//!
//! 30 s in CI. `scripts/soak.sh` runs the same test for minutes
//! (`TICKD_SOAK_SECS`) and prints the samples.

use crate::util;

use rustix::process::Signal;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use util::{config, Client, Daemon};

/// Soak length unless `TICKD_SOAK_SECS` says otherwise.
const DEFAULT_SECS: u64 = 30;
/// RSS of the second half may exceed the first half's peak by this factor...
const RSS_GROWTH: f64 = 1.25;
/// ...plus this many KiB of slack (allocator noise, buffers).
const RSS_SLACK_KIB: u64 = 8 * 1024;
/// Open fds of the second half may exceed the first half's peak by this.
const FD_SLACK: usize = 16;

const JOBS: &str = r#"
[[jobs]]
name = "tick"
every = "1s"
command = ["sh", "-c", "echo tick"]

[[jobs]]
name = "work"
overlap = "allow"
command = ["sh", "-c", "echo work:$TICKD_ARGS"]
"#;

fn daemon_config(state: &std::path::Path, generation: u64) -> String {
    // Reloads alternate between adding and removing a scheduled job, under
    // a new name each time (`churnN`), so per-job state of removed jobs
    // (history, metrics series) would pile up if it were kept.
    let extra = if generation.is_multiple_of(2) {
        format!("[[jobs]]\nname = \"churn{generation}\"\nevery = \"1s\"\ncommand = [\"true\"]\n")
    } else {
        String::new()
    };
    config(
        &format!(
            "workers = 4\nhistory = 20\nallow_submit = true\nstate_dir = \"{}\"",
            state.display()
        ),
        &format!("{JOBS}\n{extra}"),
    )
}

/// (RSS in KiB, open fds) of `pid`.
fn sample(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .count();
    (rss, fds)
}

/// Requests of every kind on one connection until `stop`.
fn request_load(addr: std::net::SocketAddr, stop: Arc<AtomicBool>, done: Arc<AtomicU64>) {
    let mut c = Client::connect(addr);
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let resp = match i % 6 {
            0 => c.call(
                "jobs.run",
                json!({"name": "work", "args": {"i": i}, "wait": true}),
            ),
            1 => c.call(
                "submit",
                json!({"job": {"kind": "exec", "command": ["true"]}, "wait": true}),
            ),
            2 => c.call("runs.list", json!({"limit": 10})),
            3 => c.call("jobs.list", json!({})),
            4 => c.call("status", json!({})),
            _ => c.call("ping", json!({})),
        };
        assert!(resp.get("error").is_none(), "{resp}");
        done.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Connections opened, used once and closed, until `stop`.
fn connection_churn(addr: std::net::SocketAddr, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let mut c = Client::connect(addr);
        assert_eq!(c.ok("ping", json!({})), "pong");
        drop(c);
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn rss_and_fds_stay_flat_under_load_reloads_and_churn() {
    let secs = std::env::var("TICKD_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SECS)
        .max(4);
    let state = tempfile::tempdir().expect("state dir");
    let mut generation = 1;
    let d = Daemon::start(&daemon_config(state.path(), generation));
    let pid = d.child.id();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for _ in 0..3 {
        let (addr, stop, done) = (d.addr, Arc::clone(&stop), Arc::clone(&done));
        threads.push(std::thread::spawn(move || request_load(addr, stop, done)));
    }
    {
        let (addr, stop) = (d.addr, Arc::clone(&stop));
        threads.push(std::thread::spawn(move || connection_churn(addr, stop)));
    }
    let mut c = d.client();
    let mut samples = Vec::new();
    let started = Instant::now();
    println!("  t(s)  rss(KiB)  fds  requests  generation  runs_in_memory");
    for second in 1..=secs {
        // Pacing: one sample and one reload per second of soak.
        let due = started + Duration::from_secs(second);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        generation += 1;
        d.write_config(&daemon_config(state.path(), generation));
        d.signal(Signal::HUP);
        let (rss, fds) = sample(pid);
        let runs = c.ok("status", json!({}))["runs_in_memory"].clone();
        println!(
            "{second:>6}  {rss:>8}  {fds:>3}  {:>8}  {generation:>10}  {runs:>14}",
            done.load(Ordering::Relaxed)
        );
        samples.push((rss, fds));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("a load thread failed");
    }
    let status = c.ok("status", json!({}));
    assert_eq!(
        status["config"]["last_reload_error"],
        json!(null),
        "{status}"
    );
    assert!(done.load(Ordering::Relaxed) > secs * 10, "the load ran");
    // Only jobs configured now have series: the removed churnN are gone.
    let metrics = util::http::get(d.addr, "/metrics").body;
    let churned: std::collections::BTreeSet<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("tickd_runs_total{"))
        .filter_map(|l| l.split("job_name=\"").nth(1)?.split('"').next())
        .filter(|job| job.starts_with("churn"))
        .collect();
    assert!(
        churned.len() <= 1,
        "series of removed jobs kept: {churned:?}"
    );

    // The first quarter is warm-up (pools, buffers, history filling up).
    let warm = samples.len() / 4;
    let (first, second) = samples[warm..].split_at((samples.len() - warm) / 2);
    let peak = |half: &[(u64, usize)]| {
        (
            half.iter().map(|s| s.0).max().unwrap_or(0),
            half.iter().map(|s| s.1).max().unwrap_or(0),
        )
    };
    let (rss1, fds1) = peak(first);
    let (rss2, fds2) = peak(second);
    println!("peaks: first half {rss1} KiB, {fds1} fds; second half {rss2} KiB, {fds2} fds");
    let rss_limit = (rss1 as f64 * RSS_GROWTH) as u64 + RSS_SLACK_KIB;
    assert!(
        rss2 <= rss_limit,
        "RSS grew: {rss1} -> {rss2} KiB (limit {rss_limit})"
    );
    assert!(fds2 <= fds1 + FD_SLACK, "fds grew: {fds1} -> {fds2}");
}
