//! `tickd-load spawn`: the baseline for exec-run throughput.
//!
//! Spawns and waits for a program (default `/bin/true`) in a closed loop on
//! N threads for a fixed time, as directly as Rust's standard library can,
//! and prints runs per second. `scripts/exec.sh` compares it with tickd
//! running the same program through `jobs.run` with `wait: true` from the
//! same number of clients: the ratio is what tickd's bookkeeping costs.

use clap::Args;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of `tickd-load spawn`.
#[derive(Args, Debug)]
pub struct SpawnArgs {
    /// Program to run (no arguments).
    #[arg(long, default_value = "/bin/true")]
    program: String,
    /// Threads spawning in parallel.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// How long to measure.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs the baseline; returns an error message on failure.
pub fn main(args: &SpawnArgs) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..args.threads.max(1))
        .map(|_| {
            let (stop, runs, failures) = (stop.clone(), runs.clone(), failures.clone());
            let program = args.program.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let ok = Command::new(&program)
                        .stdin(Stdio::null())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .output()
                        .is_ok_and(|o| o.status.success());
                    let counter = if ok { &runs } else { &failures };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(args.duration);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join()
            .map_err(|_| "a spawning thread panicked".to_string())?;
    }
    let secs = start.elapsed().as_secs_f64();
    let n = runs.load(Ordering::Relaxed);
    let failed = failures.load(Ordering::Relaxed);
    if args.json {
        println!(
            "{{\"runs\":{n},\"failures\":{failed},\"seconds\":{secs:.3},\"throughput\":{:.1}}}",
            n as f64 / secs
        );
    } else {
        println!(
            "spawn+wait {}: {n} runs, {failed} failures in {secs:.2}s = {:.1} runs/s",
            args.program,
            n as f64 / secs
        );
    }
    if n == 0 {
        return Err(format!("no successful run of {}", args.program));
    }
    Ok(())
}
