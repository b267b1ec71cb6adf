//! `tickd-load timers`: the baseline for schedule lateness.
//!
//! How late can *any* program on this machine start work at a chosen
//! instant? One thread sleeps until each of a series of deadlines (random
//! gaps, `--rate` per second on average, like `scripts/precision.sh`'s
//! 1,000 jobs over 10 s), notes how late it woke, and hands the deadline
//! over a channel to one of `--workers` threads, which notes how late it
//! got it and then runs `--program` (default `/bin/true`) as a cheap job.
//! That is tickd's path (loop wakes on a timer, a worker picks the run up)
//! with nothing of tickd's in it, so `scripts/precision.sh` can print both
//! in the same run: what is left between the two is tickd's own cost, the
//! rest is the machine's (on a virtual machine mostly the time a halted
//! virtual CPU takes to run again).

use clap::Args;
use crossbeam_channel::unbounded;
use hdrhistogram::Histogram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tickd::rng::SplitMix64;

/// Options of `tickd-load timers`.
#[derive(Args, Debug)]
pub struct TimersArgs {
    /// Deadlines per second, on average.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// How long to run.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Threads that pick the deadlines up.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Program each worker runs per deadline ("" for none).
    #[arg(long, default_value = "/bin/true")]
    program: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs the baseline and prints it; returns an error message on failure.
pub fn main(args: &TimersArgs) -> Result<(), String> {
    let (woke, picked) = measure(args)?;
    print(args, &woke, &picked);
    Ok(())
}

/// Lateness in µs: when the timer thread woke, and when a worker got it.
type Lateness = (Histogram<u64>, Histogram<u64>);

fn measure(args: &TimersArgs) -> Result<Lateness, String> {
    if !(args.rate > 0.0 && args.rate <= 10_000.0) {
        return Err("--rate must be in (0, 10000]".into());
    }
    let mean_gap = Duration::from_secs_f64(1.0 / args.rate);
    let (tx, rx) = unbounded::<Instant>();
    let workers: Vec<_> = (0..args.workers.max(1))
        .map(|_| {
            let rx = rx.clone();
            let program = args.program.clone();
            std::thread::spawn(move || {
                let mut picked = new_histogram()?;
                while let Ok(deadline) = rx.recv() {
                    record(&mut picked, deadline.elapsed());
                    if !program.is_empty() {
                        let _ = Command::new(&program)
                            .stdin(Stdio::null())
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .status();
                    }
                }
                Ok::<_, String>(picked)
            })
        })
        .collect();
    drop(rx);

    let mut woke = new_histogram()?;
    let mut rng = SplitMix64::seeded();
    let start = Instant::now();
    let end = start + args.duration;
    let mut deadline = start;
    loop {
        // Uniform gaps in [0, 2 × mean): `rate` per second on average.
        deadline += mean_gap.mul_f64(2.0 * rng.unit());
        if deadline >= end {
            break;
        }
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
        record(&mut woke, deadline.elapsed());
        if tx.send(deadline).is_err() {
            return Err("the workers stopped".into());
        }
    }
    drop(tx);
    let mut picked = new_histogram()?;
    for w in workers {
        let h = w
            .join()
            .map_err(|_| "a worker thread panicked".to_string())??;
        picked
            .add(&h)
            .map_err(|e| format!("merging histograms: {e}"))?;
    }
    Ok((woke, picked))
}

fn new_histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| format!("histogram: {e}"))
}

/// Records a lateness in microseconds (clamped into the histogram's range).
fn record(h: &mut Histogram<u64>, late: Duration) {
    let us = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
    h.saturating_record(us.max(1));
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn print(args: &TimersArgs, woke: &Histogram<u64>, picked: &Histogram<u64>) {
    let part = |h: &Histogram<u64>| {
        serde_json::json!({
            "p50_ms": ms(h, 0.5),
            "p99_ms": ms(h, 0.99),
            "max_ms": h.max() as f64 / 1000.0,
        })
    };
    if args.json {
        let out = serde_json::json!({
            "deadlines": woke.len(),
            "rate": args.rate,
            "workers": args.workers,
            "program": args.program,
            "woke": part(woke),
            "picked_up": part(picked),
        });
        println!("{out}");
        return;
    }
    println!(
        "{} deadlines, {}/s, {} workers, program {:?}",
        woke.len(),
        args.rate,
        args.workers,
        args.program
    );
    for (name, h) in [
        ("woke (timer)", woke),
        ("picked up (timer + hand-off)", picked),
    ] {
        println!(
            "  {name}: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            ms(h, 0.5),
            ms(h, 0.99),
            h.max() as f64 / 1000.0
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_run_records_every_deadline_and_hands_each_over() {
        let args = TimersArgs {
            rate: 200.0,
            duration: Duration::from_millis(300),
            workers: 2,
            program: String::new(),
            json: true,
        };
        let (woke, picked) = measure(&args).expect("runs");
        assert!(
            woke.len() > 10,
            "about 60 deadlines in 300 ms: {}",
            woke.len()
        );
        assert_eq!(woke.len(), picked.len(), "every deadline reached a worker");
        assert!(
            picked.max() >= woke.min(),
            "a hand-off is never earlier than the wake"
        );
    }
}
