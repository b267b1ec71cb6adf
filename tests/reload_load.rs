//! Reload under load: 100 SIGHUPs, alternating a good and a bad config,
//! while several connections keep sending requests. No request fails, no
//! connection drops, and `config.generation` counts exactly the good ones.

use crate::util;

use rustix::process::Signal;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use util::{config, poll_until, Client, Daemon};

const SIGNALS: u64 = 100;
const CLIENTS: usize = 3;
/// The signals are spread over this long of load.
const LOAD_RUN: Duration = Duration::from_secs(10);

fn good(n: u64) -> String {
    // Every good config differs from the last: a job comes or goes, and
    // `quick` changes, so each reload has work to do.
    let extra = if n.is_multiple_of(2) {
        "[[jobs]]\nname = \"extra\"\ncommand = [\"true\"]\nevery = \"1h\"\n".to_string()
    } else {
        String::new()
    };
    config(
        "",
        &format!(
            "[[jobs]]\nname = \"quick\"\noverlap = \"allow\"\ncommand = [\"sh\", \"-c\", \"echo {n}\"]\n\n{extra}"
        ),
    )
}

fn bad(n: u64) -> String {
    if n.is_multiple_of(2) {
        "[daemon\nthis is not toml".to_string()
    } else {
        config("", "[[jobs]]\nname = \"quick\"\ncommand = []\n")
    }
}

/// Sends a mix of requests until `stop`; returns (answers, failures).
fn load(addr: SocketAddr, stop: Arc<AtomicBool>) -> (u64, Vec<String>) {
    let mut c = Client::connect(addr);
    let mut answered = 0u64;
    let mut failures = Vec::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let (method, params) = match i % 5 {
            0 => ("jobs.run", json!({"name": "quick", "wait": true})),
            1 => ("status", json!({})),
            2 => ("jobs.list", json!({})),
            3 => ("jobs.get", json!({"name": "quick"})),
            _ => ("ping", json!({})),
        };
        let resp = c.call(method, params);
        answered += 1;
        if resp.get("error").is_some() {
            failures.push(format!("{method}: {resp}"));
        } else if method == "jobs.run" && resp["result"]["state"] != "succeeded" {
            failures.push(format!("run: {resp}"));
        }
    }
    (answered, failures)
}

#[test]
fn a_hundred_reloads_under_load_lose_no_request() {
    let d = Daemon::start(&good(0));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (addr, stop) = (d.addr, Arc::clone(&stop));
            std::thread::spawn(move || load(addr, stop))
        })
        .collect();
    let mut c = d.client();
    let mut generation = 1u64;
    let started = Instant::now();
    for n in 1..=SIGNALS {
        // Pacing only (the load runs for about LOAD_RUN); nothing is
        // synchronised by it.
        let due = started + LOAD_RUN * (n - 1) as u32 / SIGNALS as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let good_one = n.is_multiple_of(2);
        if good_one {
            d.write_config(&good(n));
        } else {
            d.write_config(&bad(n));
        }
        d.signal(Signal::HUP);
        if good_one {
            generation += 1;
        }
        // Wait until this reload is applied, so the count is exact.
        poll_until(&format!("reload {n} to be applied"), || {
            let s: Value = c.ok("status", json!({}));
            let cfg = &s["config"];
            let applied = if good_one {
                cfg["generation"] == generation && cfg["last_reload_error"].is_null()
            } else {
                cfg["generation"] == generation && cfg["last_reload_error"].is_string()
            };
            applied.then_some(())
        });
    }
    stop.store(true, Ordering::Relaxed);
    let mut answered = 0;
    for t in threads {
        let (n, failures) = t.join().expect("a load connection failed");
        assert!(failures.is_empty(), "failed requests: {failures:?}");
        answered += n;
    }
    assert!(answered > SIGNALS, "the load ran ({answered} answers)");
    let s = c.ok("status", json!({}));
    assert_eq!(s["config"]["generation"], 1 + SIGNALS / 2, "{s}");
    // The load threads have closed their sockets; the daemon sees the FINs
    // on its next turns, so the count is awaited, not read at once.
    poll_until("every load connection to be closed", || {
        let s = c.ok("status", json!({}));
        (s["connections"] == 1).then_some(())
    });
}
