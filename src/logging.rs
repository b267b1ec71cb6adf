//! Logging setup: `env_logger` formatting, written to stderr, a log file
//! and/or syslog; level from the config or `RUST_LOG`.
//!
//! `RUST_LOG`, when set, wins and is fixed for the process's life (it can
//! name per-module levels). Otherwise the level is `daemon.log_level`, and a
//! reload that changes it takes effect at once: the logger itself lets
//! everything through and the global `log::max_level` does the filtering.
//!
//! Where lines go ([`Outputs`]):
//! - stderr, in the foreground (the default, and what tests read);
//! - `daemon.log_file`, appended (created 0640; a symbolic link, a
//!   non-regular file or one with other hard links is refused, see
//!   [`open_log_file`]). SIGUSR1 reopens it by
//!   path ([`reopen`]), so logrotate can move it away and the next line goes
//!   to a new file. A daemonized tickd also has its stderr on this file
//!   (see [`crate::daemonize`]), so the reopen moves stderr along;
//! - syslog (`daemon.syslog`), one datagram per record: see
//!   [`crate::syslog`].

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use parking_lot::Mutex;

use crate::syslog::Syslog;

static FROM_ENV: AtomicBool = AtomicBool::new(false);

/// The log file and whether stderr mirrors it, kept for [`reopen`].
static LOG_FILE: OnceLock<LogFile> = OnceLock::new();

struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
    /// Daemonized: fd 2 is this file too, and must follow a reopen.
    is_stderr: bool,
}

/// Where log lines go.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    /// Write to stderr (false once daemonized: stderr is the log file or
    /// `/dev/null` then).
    pub stderr: bool,
    /// Append to this file.
    pub file: Option<PathBuf>,
    /// Send to the local syslog.
    pub syslog: bool,
}

/// Whether this process's stderr is already the file at `path` (a child
/// of a daemonized `--supervise` inherits the log file as its stderr):
/// then lines written to the file must not be written to stderr again.
pub fn stderr_is(path: &Path) -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let (Ok(err), Ok(file)) = (
        rustix::fs::fstat(std::io::stderr().as_fd()),
        std::fs::metadata(path),
    ) else {
        return false;
    };
    (err.st_dev, err.st_ino) == (file.dev(), file.ino())
}

/// Opens (creating, mode 0640) a log file for appending.
///
/// The path must name a regular file with one link, not a symbolic link
/// (`O_NOFOLLOW`): the log dir usually belongs to the daemon's user, and
/// tickd started as root must not append to (or hand over) a file that user
/// pointed the log path at, such as `/etc/shadow`.
pub fn open_log_file(path: &Path) -> io::Result<File> {
    let shown = path.display();
    let file = File::options()
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                io::Error::new(
                    e.kind(),
                    format!("log file {shown} is a symbolic link; tickd does not follow one there: point daemon.log_file at the file itself"),
                )
            } else {
                io::Error::new(e.kind(), format!("log file {shown}: {e}"))
            }
        })?;
    let meta = file
        .metadata()
        .map_err(|e| io::Error::new(e.kind(), format!("log file {shown}: {e}")))?;
    if !meta.file_type().is_file() {
        return Err(io::Error::other(format!(
            "log file {shown} is not a regular file"
        )));
    }
    if meta.nlink() > 1 {
        return Err(io::Error::other(format!(
            "log file {shown} has {} hard links; tickd writes only to a file of its own",
            meta.nlink()
        )));
    }
    Ok(file)
}

/// Gives the open log file to the daemon's user before the privilege drop
/// (see [`crate::privilege::hand_over`]): changed through the fd tickd
/// writes to, never by path. Nothing to do without a log file.
pub fn hand_over_log_file(uid: rustix::process::Uid, gid: rustix::process::Gid) -> io::Result<()> {
    match LOG_FILE.get() {
        Some(log_file) => {
            rustix::fs::fchown(&*log_file.file.lock(), Some(uid), Some(gid))?;
            Ok(())
        }
        None => Ok(()),
    }
}

/// Installs a stderr-only logger (for errors before the config is known).
/// Safe to call more than once (later calls only set the level).
pub fn init(level: &str) {
    let outputs = Outputs {
        stderr: true,
        ..Outputs::default()
    };
    if let Err(e) = init_with(level, &outputs) {
        eprintln!("tickd: {e}");
    }
}

/// Installs the logger writing to `outputs`. Fails only when the log file
/// cannot be opened. A second call only sets the level.
pub fn init_with(level: &str, outputs: &Outputs) -> io::Result<()> {
    let from_env = std::env::var_os("RUST_LOG").is_some_and(|v| !v.is_empty());
    let file = match &outputs.file {
        Some(path) if LOG_FILE.get().is_none() => Some((path.clone(), open_log_file(path)?)),
        _ => None,
    };
    let build = |from_env: bool| {
        let mut builder = env_logger::Builder::new();
        if from_env {
            builder.parse_env("RUST_LOG");
        } else {
            builder.filter_level(log::LevelFilter::Trace);
        }
        builder.format_timestamp_millis();
        if outputs.file.is_some() || !outputs.stderr {
            builder
                .target(env_logger::Target::Pipe(Box::new(Sink {
                    stderr: outputs.stderr,
                })))
                .write_style(env_logger::WriteStyle::Never);
        }
        builder.build()
    };
    let logger = Logger {
        inner: build(from_env),
        // `RUST_LOG` filters in `inner`; [`always`] lines go around it.
        unfiltered: from_env.then(|| build(false)),
        syslog: outputs.syslog.then(Syslog::new),
    };
    let filter = logger.inner.filter();
    if log::set_boxed_logger(Box::new(logger)).is_err() {
        set_level(level);
        return Ok(());
    }
    FROM_ENV.store(from_env, Ordering::SeqCst);
    if let Some((path, file)) = file {
        let _ = LOG_FILE.set(LogFile {
            path,
            file: Mutex::new(file),
            is_stderr: !outputs.stderr,
        });
    }
    if from_env {
        log::set_max_level(filter);
    } else {
        set_level(level);
    }
    if outputs.syslog {
        crate::syslog::check_socket();
    }
    Ok(())
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

/// SIGUSR1: reopens the log file by path (after logrotate moved it). On
/// failure the old file stays in use and the error is logged.
pub fn reopen() {
    let Some(log_file) = LOG_FILE.get() else {
        log::info!("SIGUSR1: no log file to reopen");
        return;
    };
    match open_log_file(&log_file.path) {
        Ok(new) => {
            if log_file.is_stderr {
                if let Err(e) = rustix::stdio::dup2_stderr(&new) {
                    log::warn!("SIGUSR1: cannot point stderr at the new log file: {e}");
                }
            }
            *log_file.file.lock() = new;
            log::info!("SIGUSR1: reopened log file {}", log_file.path.display());
        }
        Err(e) => log::error!("SIGUSR1: cannot reopen, still writing to the old file: {e}"),
    }
}

thread_local! {
    /// Set while [`always`] hands its record to the logger.
    static FORCED: Cell<bool> = const { Cell::new(false) };
}

/// Logs `args` as an INFO record of `target` (pass `module_path!()`)
/// whatever the level: `daemon.log_level` (`off` included) and `RUST_LOG`
/// are both passed by. For the few lines a user or a script cannot do
/// without, such as `listening on ADDR`, the only place that shows the
/// port picked for `listen = "127.0.0.1:0"`. Same format as every line.
pub fn always(target: &str, args: std::fmt::Arguments<'_>) {
    FORCED.set(true);
    log::logger().log(
        &log::Record::builder()
            .args(args)
            .level(log::Level::Info)
            .target(target)
            .module_path(Some(target))
            .build(),
    );
    FORCED.set(false);
}

/// `env_logger` filters and formats; this adds syslog beside its output.
struct Logger {
    inner: env_logger::Logger,
    /// With `RUST_LOG`: the same output without its filter, for [`always`].
    unfiltered: Option<env_logger::Logger>,
    syslog: Option<Syslog>,
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.inner.matches(record) {
            self.inner.log(record);
        } else if let (true, Some(unfiltered)) = (FORCED.get(), &self.unfiltered) {
            unfiltered.log(record);
        } else {
            return;
        }
        if let Some(syslog) = &self.syslog {
            syslog.send(record.level(), &record.args().to_string());
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// The writer `env_logger` formats into: one whole record per `write`.
struct Sink {
    stderr: bool,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.stderr {
            let _ = io::stderr().write_all(buf);
        }
        if let Some(log_file) = LOG_FILE.get() {
            // A full disk must not stop the daemon; the line is lost.
            let _ = log_file.file.lock().write_all(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
