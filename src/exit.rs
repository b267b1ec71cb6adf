//! The process's exit codes, in one leaf module so that what starts the
//! daemon (`lib.rs`, `daemonize.rs`) and what reports a failed start share
//! them without importing upwards.

/// Exit code: clean shutdown.
pub const EXIT_OK: i32 = 0;
/// Exit code: the config could not be loaded at start.
pub const EXIT_CONFIG: i32 = 1;
/// Exit code: a listener could not be bound, the pidfile is held or could
/// not be written, the log file could not be opened, or the privilege drop
/// failed.
pub const EXIT_BIND: i32 = 2;
/// Exit code of `tickd run --supervise` when it gave up restarting the
/// daemon (10 restarts within 10 minutes).
pub const EXIT_GAVE_UP: i32 = 3;
