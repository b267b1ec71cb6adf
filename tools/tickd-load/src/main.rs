//! `tickd-load`: a load generator for tickd and any other line protocol.
//!
//! It opens N connections to a loopback address or a Unix socket, keeps
//! `depth` requests in flight on each, and times every answer into an HDR
//! histogram; it then prints throughput, latency percentiles and errors
//! (`--json` for scripts). One non-blocking thread by default, so that on a
//! small machine the client takes as little CPU from the server as it can.
//! `tickd-load chart` draws the benchmark charts from a results CSV.
//!
//! Exit status: 0 when the run completed, 1 when no connection could be
//! opened or every connection was lost, 2 for bad arguments.

#![deny(unsafe_code)]

mod chart;
mod check;
mod conn;
mod lines;
mod report;
mod run;
mod spawn;
mod stream;
mod tally;
mod target;
mod timers;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Barrier;
use std::time::Duration;

use clap::{Parser, Subcommand};

use check::Check;
use report::{Report, Setup};
use run::Plan;
use tally::Tally;
use target::Target;

/// Longest run accepted, so that a mistyped duration cannot run for days.
const MAX_DURATION: Duration = Duration::from_secs(3600);

/// Load generator for line-delimited request/response servers on loopback.
#[derive(Parser, Debug)]
#[command(
    name = "tickd-load",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    load: LoadArgs,
}

/// Subcommands other than the default load run.
#[derive(Subcommand, Debug)]
enum Command {
    /// Draw an SVG line chart of one CSV column against the connection count.
    Chart(chart::ChartArgs),
    /// Baseline for exec runs: spawn and wait for a program in a loop.
    Spawn(spawn::SpawnArgs),
    /// Baseline for schedule lateness: sleep to random deadlines, hand each to a worker.
    Timers(timers::TimersArgs),
}

/// Options of a load run, as typed; [`LoadArgs::validate`] checks them.
#[derive(clap::Args, Debug)]
struct LoadArgs {
    /// TCP address to load: a loopback IP and port, or localhost:PORT.
    #[arg(long, default_value = "127.0.0.1:7070", conflicts_with = "unix")]
    connect: String,
    /// Unix socket path to load instead of TCP.
    #[arg(long)]
    unix: Option<PathBuf>,
    /// Connections to open.
    #[arg(long, default_value_t = 50)]
    conns: usize,
    /// Requests kept in flight per connection (1 = closed loop).
    #[arg(long, default_value_t = 1)]
    depth: usize,
    /// Measured time, after the warm-up (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Time at the start whose answers are not recorded.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// The request line to send, without its newline.
    #[arg(long, default_value = r#"{"method":"ping"}"#)]
    request: String,
    /// Send the request as is and accept any answer line (other protocols,
    /// e.g. `--raw --request PING` for redis); default is JSON-RPC, where an
    /// answer with an "error" key counts as an error.
    #[arg(long)]
    raw: bool,
    /// With --raw: an answer line not containing this text is an error.
    #[arg(long, requires = "raw")]
    expect: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Stop after this many measured answers (the duration still bounds the run).
    #[arg(long)]
    max_requests: Option<u64>,
    /// Load threads; connections are shared out among them.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

impl LoadArgs {
    /// Checks every option and builds the plan, reporting all problems.
    fn validate(&self) -> Result<Plan, Vec<String>> {
        let mut problems = Vec::new();
        let target = match &self.unix {
            Some(p) => Some(Target::Unix(p.clone())),
            None => Target::tcp(&self.connect)
                .map_err(|e| problems.push(e))
                .ok(),
        };
        if !(1..=100_000).contains(&self.conns) {
            problems.push(format!("--conns {}: must be 1..=100000", self.conns));
        }
        if !(1..=100_000).contains(&self.depth) {
            problems.push(format!("--depth {}: must be 1..=100000", self.depth));
        }
        if self.threads == 0 || self.threads > self.conns.max(1) {
            problems.push(format!(
                "--threads {}: must be 1..=--conns ({})",
                self.threads, self.conns
            ));
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            problems.push(format!(
                "--duration {:?}: must be more than 0 and at most 1h",
                self.duration
            ));
        }
        if self.warmup > MAX_DURATION {
            problems.push(format!("--warmup {:?}: at most 1h", self.warmup));
        }
        if self.max_requests == Some(0) {
            problems.push("--max-requests 0: must be at least 1".into());
        }
        if self.request.contains('\n') {
            problems.push("--request: must be one line (no newline)".into());
        }
        if !self.raw {
            match serde_json::from_str::<serde_json::Value>(&self.request) {
                Ok(serde_json::Value::Object(_)) => {}
                Ok(_) => problems.push(
                    "--request: a JSON-RPC request must be a JSON object (or use --raw)".into(),
                ),
                Err(e) => problems.push(format!(
                    "--request: not JSON ({e}); use --raw for other protocols"
                )),
            }
        }
        match target {
            Some(target) if problems.is_empty() => Ok(Plan {
                target,
                depth: self.depth,
                warmup: self.warmup,
                duration: self.duration,
                request: format!("{}\n", self.request).into_bytes(),
                check: if self.raw {
                    Check::Raw {
                        expect: self.expect.as_ref().map(|s| s.as_bytes().to_vec()),
                    }
                } else {
                    Check::JsonRpc
                },
            }),
            _ => Err(problems),
        }
    }
}

fn main() -> ExitCode {
    env_logger::init();
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Chart(args)) => match chart::main(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tickd-load chart: {e}");
                ExitCode::from(1)
            }
        },
        Some(Command::Timers(args)) => match timers::main(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tickd-load timers: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Spawn(args)) => match spawn::main(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tickd-load spawn: {e}");
                ExitCode::from(1)
            }
        },
        None => load(&cli.load),
    }
}

/// The default command: validate, run, print.
fn load(args: &LoadArgs) -> ExitCode {
    let plan = match args.validate() {
        Ok(p) => p,
        Err(problems) => {
            for p in problems {
                eprintln!("tickd-load: {p}");
            }
            return ExitCode::from(2);
        }
    };
    log::info!(
        "loading {} with {} conns x depth {} on {} thread(s)",
        plan.target,
        args.conns,
        args.depth,
        args.threads
    );
    let tally = match run_threads(&plan, args.conns, args.threads, args.max_requests) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tickd-load: {e}");
            return ExitCode::from(1);
        }
    };
    let failed = if tally.connected == 0 {
        Some("no connection could be opened")
    } else if tally.closed == tally.connected {
        Some("every connection was lost")
    } else {
        None
    };
    let setup = Setup {
        target: plan.target.to_string(),
        mode: if args.raw { "raw" } else { "json-rpc" },
        conns: args.conns,
        depth: args.depth,
        threads: args.threads,
        warmup: args.warmup.as_secs_f64(),
    };
    let report = Report::new(setup, tally);
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    match failed {
        Some(why) => {
            eprintln!("tickd-load: run failed: {why} (see \"first problem\" above)");
            ExitCode::from(1)
        }
        None => ExitCode::SUCCESS,
    }
}

/// Shares the connections out among `threads` threads, starts them together
/// once all have connected, and adds up their tallies.
fn run_threads(
    plan: &Plan,
    conns: usize,
    threads: usize,
    max_requests: Option<u64>,
) -> Result<Tally, String> {
    if threads == 1 {
        let prepared = run::prepare(plan, conns)?;
        return run::drive(plan, prepared, max_requests);
    }
    let per_thread_max = max_requests.map(|m| m.div_ceil(threads as u64));
    let barrier = Barrier::new(threads);
    let results: Vec<Result<Tally, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                let share = conns / threads + usize::from(k < conns % threads);
                let barrier = &barrier;
                scope.spawn(move || {
                    // Every thread reaches the barrier, even one that failed
                    // to prepare, so that none waits forever.
                    let prepared = run::prepare(plan, share);
                    barrier.wait();
                    run::drive(plan, prepared?, per_thread_max)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a load thread panicked".into()))
            })
            .collect()
    });
    let mut total = Tally::new()?;
    for r in results {
        total.merge(r?)?;
    }
    Ok(total)
}
