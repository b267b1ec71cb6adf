//! The `tickd` command line: `run`, `check` and `ctl`.
//!
//! Parsing and exit codes live here; the daemon itself is `tickd::run`.

#![deny(unsafe_code)]

mod ctl;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// A daemon that runs scheduled jobs and answers JSON-RPC on a socket.
#[derive(Parser, Debug)]
#[command(name = "tickd", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the daemon (in the foreground unless --daemonize).
    Run {
        /// The config file; a relative path is taken from the current
        /// directory. Without --config, the TICKD_CONFIG environment
        /// variable, else conf/tickd.toml.
        #[arg(long, env = "TICKD_CONFIG", default_value = "conf/tickd.toml")]
        config: PathBuf,
        /// Write the daemon's pid to this file, locked while it runs (a
        /// second instance exits 2); removed on clean exit.
        #[arg(long)]
        pidfile: Option<PathBuf>,
        /// Detach from the terminal; exit 0 once the daemon listens, or
        /// with its exit code and reason if it cannot start.
        #[arg(long)]
        daemonize: bool,
        /// Run a supervisor that holds the listeners and restarts the
        /// daemon when it crashes (1 s backoff doubling to 1 min; gives up
        /// after 10 restarts in 10 min). The pidfile holds the supervisor's
        /// pid; TERM, INT, HUP and USR1 sent to it reach the daemon.
        #[arg(long)]
        supervise: bool,
    },
    /// Validate a config file: exit 0, or 1 with one message per problem.
    Check {
        /// The config file; a relative path is taken from the current
        /// directory. Without --config, the TICKD_CONFIG environment
        /// variable, else conf/tickd.toml.
        #[arg(long, env = "TICKD_CONFIG", default_value = "conf/tickd.toml")]
        config: PathBuf,
    },
    /// Use a running daemon: list jobs, start and follow runs, pause
    /// jobs, watch events; or call any method and print the result.
    Ctl(ctl::CtlArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run {
            config,
            pidfile,
            daemonize,
            supervise,
        } => tickd::run(&tickd::RunOptions {
            config,
            pidfile,
            daemonize,
            supervise,
        }),
        Command::Check { config } => match tickd::config::check_report(&config) {
            Ok(summary) => {
                println!("{summary}");
                0
            }
            Err(e) => {
                eprintln!("{e}");
                1
            }
        },
        Command::Ctl(args) => ctl::main(&args),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
