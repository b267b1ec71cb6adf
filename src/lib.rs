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
// `unsafe` only in `sys::ffi`, which allows it for itself.
#![deny(unsafe_code)]

pub mod activation;
pub mod alerts;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod daemonize;
pub mod exit;
pub mod http;
pub mod jobs;
pub mod lock_wait;
pub mod logging;
pub mod methods;
pub mod notify;
pub mod output;
pub mod persist;
pub mod pidfile;
pub mod pool;
pub mod privilege;
pub mod protocol;
pub mod requests;
pub mod rng;
pub mod schedule;
pub mod server;
pub mod signals;
pub mod state;
pub mod supervise;
pub mod sys;
pub mod syslog;
pub mod time;
pub mod timer;
pub mod upgrade;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use exit::{EXIT_BIND, EXIT_CONFIG, EXIT_OK};

/// Options of `tickd run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The config file.
    pub config: PathBuf,
    /// Where to write the pid, if anywhere.
    pub pidfile: Option<PathBuf>,
    /// Detach from the terminal (`--daemonize`).
    pub daemonize: bool,
    /// Run as a supervisor that holds the listeners and restarts the
    /// daemon when it dies (`--supervise`, see [`supervise`]).
    pub supervise: bool,
}

/// Why start-up failed: the exit code and the message for the log (and,
/// when daemonizing, for the starting process's stderr).
struct StartError {
    code: i32,
    message: String,
}

impl StartError {
    fn bind(message: String) -> StartError {
        StartError {
            code: EXIT_BIND,
            message,
        }
    }
}

/// What start-up leaves running: the loop, and the pidfile held until exit.
struct Started {
    server: server::Server,
    _pidfile: Option<pidfile::Pidfile>,
}

/// Runs the daemon until it is told to stop; returns the process exit code.
///
/// The start-up steps, in order (each failure logs why and exits 1 or 2):
/// 1. load the config (which makes the daemon's paths absolute, since
///    `--daemonize` moves to `/`);
/// 2. `--daemonize`: fork and detach, while there is only one thread;
/// 3. set up logging (stderr, log file, syslog) and sd_notify;
/// 4. take the pidfile, install the signal handlers, bind the listeners
///    (or take those inherited through socket activation, read before
///    anything else: see [`activation`]). The new process of an in-place
///    upgrade ([`upgrade`]) takes the listeners first, confirms, waits for
///    the old process to exit, and only then takes the pidfile;
///    `--supervise` hands over to [`supervise`] after step 3;
/// 5. drop privileges (`daemon.user`), still before any thread exists;
/// 6. start the pools and the scheduler; report ready (the starting
///    process of `--daemonize`, and systemd's `READY=1`); run the loop.
pub fn run(opts: &RunOptions) -> i32 {
    // First of all, while the process has one thread and no file open:
    // the sockets of socket activation, and the supervisor's restart count.
    let inherited = activation::take();
    activation::take_restarts();
    activation::take_generation();
    // Where this binary is, before a package upgrade replaces it: an
    // in-place upgrade (SIGUSR2) starts the file at this path.
    let program = std::env::current_exe().ok();
    let opts = RunOptions {
        config: absolute(&opts.config),
        pidfile: opts.pidfile.as_deref().map(absolute),
        daemonize: opts.daemonize,
        supervise: opts.supervise,
    };
    let config = match config::load(&opts.config) {
        Ok(c) => c,
        Err(e) => {
            logging::init("info");
            log::error!("cannot start: {e}");
            return EXIT_CONFIG;
        }
    };

    let mut readiness = daemonize::Readiness::foreground();
    if opts.daemonize {
        if config.daemon.start.log_file.is_none() && !config.daemon.start.syslog {
            eprintln!(
                "tickd: warning: --daemonize without daemon.log_file or daemon.syslog: the daemon's logs are discarded"
            );
        }
        match daemonize::detach(config.daemon.start.log_file.as_deref()) {
            Ok(daemonize::Detached::Parent(code)) => return code,
            Ok(daemonize::Detached::Daemon(r)) => readiness = r,
            Err(e) => {
                eprintln!("tickd: cannot daemonize: {e}");
                return EXIT_BIND;
            }
        }
    }
    let stderr_is_log = (config.daemon.start.log_file.as_deref()).is_some_and(logging::stderr_is);
    let outputs = logging::Outputs {
        stderr: !opts.daemonize && !stderr_is_log,
        file: config.daemon.start.log_file.clone(),
        syslog: config.daemon.start.syslog,
    };
    if let Err(e) = logging::init_with(&config.daemon.live.log_level, &outputs) {
        logging::init(&config.daemon.live.log_level);
        log::error!("cannot start: {e}");
        readiness.fail(EXIT_BIND, &format!("cannot start: {e}"));
        return EXIT_BIND;
    }
    notify::init();
    for w in &config.warnings {
        log::warn!("{w}");
    }
    if let Some(note) = activation::ignored_note() {
        log::warn!("{note}");
    }
    let inherited = match inherited {
        Ok(sockets) => sockets,
        Err(e) => {
            let message = format!("cannot start: socket activation: {e}");
            log::error!("{message}");
            readiness.fail(EXIT_BIND, &message);
            return EXIT_BIND;
        }
    };
    if opts.supervise {
        return supervise::run(&opts, config, inherited, readiness);
    }

    let started = match start_up(&opts, config, inherited, program) {
        Ok(s) => s,
        Err(e) => {
            log::error!("{}", e.message);
            readiness.fail(e.code, &e.message);
            return e.code;
        }
    };
    log::info!(
        "tickd {} started (pid {})",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    readiness.ready();
    notify::ready(Some(started.server.generation()));
    started.server.run()
}

/// Steps 4 to 6 of [`run`]: everything up to a server ready to run.
fn start_up(
    opts: &RunOptions,
    config: config::Config,
    inherited: Vec<activation::Inherited>,
    program: Option<PathBuf>,
) -> Result<Started, StartError> {
    let debug_hooks = std::env::var("TICKD_DEBUG_HOOKS").is_ok_and(|v| v == "1");
    if debug_hooks {
        log::warn!("TICKD_DEBUG_HOOKS=1: test-only methods are enabled");
    }
    // Started by an in-place upgrade: the old process still holds the
    // pidfile; it is taken once that process has exited.
    let handoff = upgrade::Handoff::inherited();
    let take_pidfile = || match &opts.pidfile {
        Some(path) => pidfile::Pidfile::acquire(path)
            .map(Some)
            .map_err(|e| StartError::bind(e.to_string())),
        None => Ok(None),
    };
    let mut pidfile = if handoff.is_none() {
        take_pidfile()?
    } else {
        None
    };

    // Handlers go in before the listener exists: a SIGHUP or SIGTERM sent as
    // soon as "listening on" is logged must find them in place, not kill the
    // process with the default action.
    let signals = signals::Signals::install()
        .map_err(|e| StartError::bind(format!("cannot install signal handlers: {e}")))?;
    let mut upgrader = match program {
        Some(program) => Some(
            upgrade::Upgrader::install(program, opts.config.clone(), opts.pidfile.clone())
                .map_err(|e| StartError::bind(format!("cannot install signal handlers: {e}")))?,
        ),
        None => {
            log::warn!("cannot tell where the tickd binary is: SIGUSR2 (upgrade) is ignored");
            None
        }
    };
    let poll = mio::Poll::new()
        .map_err(|e| StartError::bind(format!("cannot create the event loop: {e}")))?;
    // Every listener is bound here, before the privilege drop below.
    let listeners = server::listeners::bind(&config.daemon, inherited).map_err(StartError::bind)?;
    if let Some(u) = upgrader.as_mut() {
        let fds = listeners.duplicates().map_err(|e| {
            StartError::bind(format!("cannot duplicate the listeners (for SIGUSR2): {e}"))
        })?;
        u.set_listeners(fds);
    }
    if let Some(handoff) = handoff {
        if let Some(path) = &opts.pidfile {
            pidfile::check_takeover(path).map_err(|e| StartError::bind(format!("upgrade: {e}")))?;
        }
        log::info!(
            "upgrade: config and listeners checked; waiting for the old process to drain and exit"
        );
        handoff
            .confirm_and_wait()
            .map_err(|e| StartError::bind(format!("upgrade: lost the old process: {e}")))?;
        log::info!("upgrade: the old process has exited; taking over");
        pidfile = take_pidfile()?;
    }

    let account = privilege::plan(&config.daemon.start).map_err(|message| StartError {
        code: EXIT_CONFIG,
        message,
    })?;
    if let Some(account) = &account {
        // An inherited socket is its creator's (a socket unit's SocketUser=,
        // or the supervisor, which hands it over itself).
        let own_socket = listeners.unix.as_ref().filter(|u| !u.inherited());
        privilege::hand_over(
            account,
            config.daemon.start.state_dir.as_deref(),
            own_socket.map(|u| u.path()),
        );
        privilege::drop_to(account).map_err(|e| {
            StartError::bind(format!(
                "cannot drop privileges to user {}: {e}",
                account.name
            ))
        })?;
        log::info!(
            "dropped privileges to user {} (uid {}, gid {})",
            account.name,
            account.uid,
            account.gid
        );
    }

    let server = start(poll, listeners, signals, config, debug_hooks)
        .map_err(|e| StartError::bind(format!("cannot start: {e}")))?;
    if let Some(u) = upgrader.as_mut() {
        u.set_generation(server.generation_reader());
    }
    if let Some(u) = upgrader {
        u.run()
            .map_err(|e| StartError::bind(format!("cannot start the upgrade thread: {e}")))?;
    }
    Ok(Started {
        server,
        _pidfile: pidfile,
    })
}

/// `path` made absolute against the current directory (unchanged if that
/// cannot be read; the later open then reports the problem).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
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
    // Started by an in-place upgrade: the generation goes on from the old
    // process's (docs/deployment.md).
    if let Some(g) = activation::inherited_generation() {
        daemon.shared.board.info.write().generation = g;
    }
    // Reading the config left its parse tree's pages free but mapped: a
    // few KiB per job, more than the jobs themselves keep (see
    // docs/benchmarks.md, "Scale on one host").
    sys::ffi::release_free_heap();
    server::Server::new(poll, listeners, signals, rx, daemon)
}
