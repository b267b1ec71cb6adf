//! Logging setup: `env_logger` to stderr, level from the config or `RUST_LOG`.
//!
//! `RUST_LOG`, when set, wins and is fixed for the process's life (it can
//! name per-module levels). Otherwise the level is `daemon.log_level`, and a
//! reload that changes it takes effect at once: the logger itself lets
//! everything through and the global `log::max_level` does the filtering.

use std::sync::atomic::{AtomicBool, Ordering};

static FROM_ENV: AtomicBool = AtomicBool::new(false);

/// Installs the logger. Safe to call more than once (later calls only set the level).
pub fn init(level: &str) {
    let from_env = std::env::var_os("RUST_LOG").is_some_and(|v| !v.is_empty());
    FROM_ENV.store(from_env, Ordering::SeqCst);
    let mut builder = env_logger::Builder::new();
    if from_env {
        builder.parse_env("RUST_LOG");
    } else {
        builder.filter_level(log::LevelFilter::Trace);
    }
    builder.format_timestamp_millis();
    if builder.try_init().is_ok() && !from_env {
        set_level(level);
    }
}

/// Applies `daemon.log_level` (ignored when `RUST_LOG` is in charge).
pub fn set_level(level: &str) {
    if FROM_ENV.load(Ordering::SeqCst) {
        return;
    }
    let filter = match level {
        "off" => log::LevelFilter::Off,
        "error" => log::LevelFilter::Error,
        "warn" => log::LevelFilter::Warn,
        "debug" => log::LevelFilter::Debug,
        "trace" => log::LevelFilter::Trace,
        _ => log::LevelFilter::Info,
    };
    log::set_max_level(filter);
}

/// SIGUSR1: reopen the log file. Logging goes to stderr in this version,
/// which needs no reopening; the signal is acknowledged in the log.
pub fn reopen() {
    log::info!("SIGUSR1: logging to stderr; nothing to reopen");
}
