//! tickd: a daemon that runs scheduled jobs on a fixed pool of threads and
//! answers line-delimited JSON-RPC on a socket.
//!
//! The binary (`src/main.rs`) is a thin command line over [`run`], which
//! tests and embedders can call too. The pieces, from the outside in:
//!
//! ```text
//!  clients ──TCP──▶ server (mio loop, one thread) ──▶ methods ──▶ daemon
//!                     ▲  poll timeout = next timer        │  start_run
//!                     │                                   ▼
//!                  Waker ◀── LoopEvent ── pool (N workers) ◀── bounded queue
//!                                           ▲   │ jobs::execute (exec, ...)
//!                                  monitor ─┘   ▼
//!                               (respawns)   state::Core (jobs, runs)
//!  scheduler: timer wheel of due times ──▶ daemon.fire_due ──▶ start_run
//! ```
#![deny(missing_docs)]

pub mod config;
pub mod daemon;
pub mod http;
pub mod jobs;
pub mod logging;
pub mod methods;
pub mod persist;
pub mod pool;
pub mod protocol;
pub mod requests;
pub mod schedule;
pub mod scheduler;
pub mod server;
pub mod signals;
pub mod state;
pub mod sys;
pub mod time;
pub mod timer;

use std::path::PathBuf;
use std::sync::Arc;

/// Exit code: clean shutdown.
pub const EXIT_OK: i32 = 0;
/// Exit code: the config could not be loaded at start.
pub const EXIT_CONFIG: i32 = 1;
/// Exit code: a listener could not be bound, or the pidfile not written.
pub const EXIT_BIND: i32 = 2;

/// Options of `tickd run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The config file.
    pub config: PathBuf,
    /// Where to write the pid, if anywhere.
    pub pidfile: Option<PathBuf>,
}

/// Runs the daemon until it is told to stop; returns the process exit code.
pub fn run(opts: &RunOptions) -> i32 {
    let config = match config::load(&opts.config) {
        Ok(c) => c,
        Err(e) => {
            logging::init("info");
            log::error!("cannot start: {e}");
            return EXIT_CONFIG;
        }
    };
    logging::init(&config.daemon.log_level);
    for w in &config.warnings {
        log::warn!("{w}");
    }
    let debug_hooks = std::env::var("TICKD_DEBUG_HOOKS").is_ok_and(|v| v == "1");
    if debug_hooks {
        log::warn!("TICKD_DEBUG_HOOKS=1: test-only methods are enabled");
    }

    // Handlers go in before the listener exists: a SIGHUP or SIGTERM sent as
    // soon as "listening on" is logged must find them in place, not kill the
    // process with the default action.
    let signals = match signals::Signals::install() {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot install signal handlers: {e}");
            return EXIT_BIND;
        }
    };
    let poll = match mio::Poll::new() {
        Ok(p) => p,
        Err(e) => {
            log::error!("cannot create the event loop: {e}");
            return EXIT_BIND;
        }
    };
    let listeners = match server::listeners::bind(&config.daemon) {
        Ok(l) => l,
        Err(e) => {
            log::error!("{e}");
            return EXIT_BIND;
        }
    };
    let pidfile = match &opts.pidfile {
        Some(path) => match std::fs::write(path, format!("{}\n", std::process::id())) {
            Ok(()) => Some(path.clone()),
            Err(e) => {
                log::error!("cannot write pidfile {}: {e}", path.display());
                return EXIT_BIND;
            }
        },
        None => None,
    };

    let code = match start(poll, listeners, signals, config, debug_hooks) {
        Ok(server) => {
            log::info!(
                "tickd {} started (pid {})",
                env!("CARGO_PKG_VERSION"),
                std::process::id()
            );
            server.run()
        }
        Err(e) => {
            log::error!("cannot start: {e}");
            EXIT_BIND
        }
    };
    if let Some(path) = pidfile {
        let _ = std::fs::remove_file(path);
    }
    code
}

fn start(
    poll: mio::Poll,
    listeners: server::listeners::Listeners,
    signals: signals::Signals,
    config: config::Config,
    debug_hooks: bool,
) -> std::io::Result<server::Server> {
    let waker = Arc::new(mio::Waker::new(
        poll.registry(),
        server::Server::waker_token(),
    )?);
    let (tx, rx) = crossbeam_channel::unbounded();
    let daemon = daemon::Daemon::start(config, tx, waker, debug_hooks)?;
    server::Server::new(poll, listeners, signals, rx, daemon)
}
