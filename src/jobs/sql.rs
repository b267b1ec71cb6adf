//! The `sql` job kind: runs statements against an SQLite file, all or none.
//!
//! Every statement of `sql` runs inside one `BEGIN IMMEDIATE` transaction:
//! either the whole batch commits or nothing changes. IMMEDIATE takes the
//! write lock up front, so a job that reads before it writes cannot end up
//! in SQLite's lock-upgrade deadlock (which fails at once with BUSY instead
//! of waiting).
//!
//! A locked database is waited for, up to the run's time limit (the job's
//! `timeout`, or [`DEFAULT_TIMEOUT`]). Two mechanisms keep that wait, and a
//! long statement, responsive to cancellation and to the limit:
//! - the busy handler (a plain `fn`, so it reads its limits from a
//!   thread-local set for the duration of the run) sleeps in short steps
//!   and gives up as soon as the run is cancelled or out of time;
//! - a watcher thread calls `sqlite3_interrupt` through the connection's
//!   interrupt handle when the run is cancelled or out of time while a
//!   statement is executing.
//!
//! The database file must exist: a typo in `database` should fail the run,
//! not create an empty database next to the real one.

use super::cancel::CancelToken;
use super::{Executor, RunContext};
use crate::config::SqlSpec;
use crate::state::run::RunState;
use crate::state::Finish;
use rusqlite::{Connection, InterruptHandle, OpenFlags, TransactionBehavior};
use serde_json::json;
use std::cell::RefCell;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Time limit of a run whose job sets no `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest time limit applied (a century): longer ones are cut to this.
const MAX_LIMIT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Longest sleep of the busy handler and of the watcher between checks of
/// the cancel token.
const POLL: Duration = Duration::from_millis(50);

/// Executes a sql job's run.
pub struct SqlJob<'a>(pub &'a SqlSpec);

impl Executor for SqlJob<'_> {
    fn execute(&self, ctx: &RunContext<'_>) -> Finish {
        if ctx.cancel.is_cancelled() {
            return Finish::with_error(RunState::Cancelled, cancel_reason(ctx.cancel));
        }
        let spec = self.0;
        // Capped so that `now + limit` cannot overflow on absurd timeouts.
        let limit = ctx.job.timeout.unwrap_or(DEFAULT_TIMEOUT).min(MAX_LIMIT);
        let run = Limits {
            deadline: Instant::now() + limit,
            cancel: ctx.cancel.clone(),
        };
        let mut conn = match open(spec) {
            Ok(c) => c,
            Err(msg) => return Finish::with_error(RunState::Failed, msg),
        };
        let outcome = {
            let _busy = BusyScope::enter(run.clone());
            let interrupt = conn.get_interrupt_handle();
            with_watcher(&run, &interrupt, || run_batch(&mut conn, &spec.sql))
        };
        match outcome {
            Ok(rows) => succeeded(rows),
            Err(e) => ended_by(&run, limit, e),
        }
    }
}

/// What bounds a run: its deadline and its cancel token.
#[derive(Clone)]
struct Limits {
    deadline: Instant,
    cancel: CancelToken,
}

impl Limits {
    /// Whether the run must stop now.
    fn must_stop(&self) -> bool {
        self.cancel.is_cancelled() || Instant::now() >= self.deadline
    }
}

/// Opens the existing database file read-write.
fn open(spec: &SqlSpec) -> Result<Connection, String> {
    let path = &spec.database;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| {
        // SQLite says "unable to open database file" for every cause.
        let cause = match std::fs::metadata(path) {
            Err(io) => io.to_string(),
            Ok(_) => e.to_string(),
        };
        format!("database {}: {cause}", path.display())
    })?;
    conn.busy_handler(Some(busy_wait))
        .map_err(|e| format!("database {}: {e}", path.display()))?;
    Ok(conn)
}

/// Runs `sql` in one IMMEDIATE transaction; the rows it inserted, updated
/// or deleted (triggers included). On error the transaction is dropped,
/// which rolls it back.
///
/// The count is the growth of `sqlite3_total_changes`: summing
/// `sqlite3_changes` per statement would be wrong, since that value is not
/// reset by statements that change nothing (a CREATE after an INSERT would
/// count the INSERT twice).
fn run_batch(conn: &mut Connection, sql: &str) -> rusqlite::Result<u64> {
    let before = conn.total_changes();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(sql)?;
    let rows = tx.total_changes().saturating_sub(before);
    tx.commit()?;
    Ok(rows)
}

/// Runs `work` while a watcher thread interrupts it if the run is cancelled
/// or out of time. The watcher ends as soon as `work` returns.
///
/// Once the run must stop, the watcher interrupts again at every tick:
/// `sqlite3_interrupt` is a no-op while no statement is running, and one
/// call could fall between two statements of the batch.
fn with_watcher<T>(run: &Limits, interrupt: &InterruptHandle, work: impl FnOnce() -> T) -> T {
    let (done, finished) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let watcher = std::thread::Builder::new()
            .name("tickd-sql-watch".into())
            .spawn_scoped(s, move || watch(run, interrupt, &finished));
        if let Err(e) = watcher {
            log::warn!("sql: cannot start a watcher thread ({e}); statements run uninterruptible");
        }
        let out = work();
        drop(done);
        out
    })
}

/// The watcher's loop: returns when `finished` disconnects.
fn watch(run: &Limits, interrupt: &InterruptHandle, finished: &mpsc::Receiver<()>) {
    loop {
        let wait = run.deadline.saturating_duration_since(Instant::now());
        let wait = if wait.is_zero() { POLL } else { wait.min(POLL) };
        match finished.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) if run.must_stop() => {
                log::debug!("sql: interrupting the running statement");
                interrupt.interrupt();
            }
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The finish of a batch that committed.
fn succeeded(rows: u64) -> Finish {
    let plural = if rows == 1 { "row" } else { "rows" };
    Finish {
        state: RunState::Succeeded,
        exit_code: None,
        error: None,
        output: format!("{rows} {plural} changed"),
        result: Some(json!({ "rows_changed": rows })),
    }
}

/// The finish of a batch that failed: cancelled or timed out when that is
/// why it stopped (an interrupt, or a busy wait given up), else failed with
/// SQLite's message. Nothing was committed in any case.
fn ended_by(run: &Limits, limit: Duration, err: rusqlite::Error) -> Finish {
    log::debug!("sql: batch failed: {err}");
    let (state, error) = if run.cancel.is_cancelled() {
        (RunState::Cancelled, cancel_reason(&run.cancel))
    } else if Instant::now() >= run.deadline {
        let limit = humantime::format_duration(limit);
        (RunState::TimedOut, format!("timed out after {limit}"))
    } else {
        (RunState::Failed, err.to_string())
    };
    let mut finish = Finish::with_error(state, error);
    finish.output = "rolled back, 0 rows changed".into();
    finish.result = Some(json!({ "rows_changed": 0 }));
    finish
}

/// The cancel reason for the run's `error`.
fn cancel_reason(cancel: &CancelToken) -> String {
    cancel.reason().unwrap_or_else(|| "cancelled".into())
}

thread_local! {
    /// The limits of the run executing on this thread, for [`busy_wait`].
    static BUSY: RefCell<Option<Limits>> = const { RefCell::new(None) };
}

/// Installs a run's limits for [`busy_wait`] on this thread until dropped.
struct BusyScope;

impl BusyScope {
    fn enter(limits: Limits) -> BusyScope {
        BUSY.with(|b| *b.borrow_mut() = Some(limits));
        BusyScope
    }
}

impl Drop for BusyScope {
    fn drop(&mut self) {
        BUSY.with(|b| *b.borrow_mut() = None);
    }
}

/// SQLite's busy handler: called (on the thread running the statement)
/// while another connection holds the lock. Sleeps a little and asks to
/// retry, until the run is cancelled or out of time. Returning false makes
/// the statement fail with SQLITE_BUSY.
fn busy_wait(attempt: i32) -> bool {
    BUSY.with(|b| {
        let Some(run) = b.borrow().clone() else {
            return false;
        };
        if run.must_stop() {
            return false;
        }
        // 1, 2, 4 ... ms, then POLL: quick for short locks, cheap for long.
        let step = Duration::from_millis(1 << attempt.clamp(0, 6)).min(POLL);
        let left = run.deadline.saturating_duration_since(Instant::now());
        std::thread::sleep(step.min(left));
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::JobDef;
    use std::path::Path;

    /// A sql job on `db` with `sql` and extra job keys.
    fn job(db: &Path, sql: &str, extra: &str) -> JobDef {
        let text = format!(
            "[[jobs]]\nname = \"q\"\nkind = \"sql\"\ndatabase = {:?}\nsql = {:?}\n{extra}\n",
            db.display().to_string(),
            sql
        );
        let config = crate::config::parse(&text, Path::new("t.toml")).expect("config");
        config.jobs.into_iter().next().expect("one job")
    }

    fn run(def: &JobDef, cancel: &CancelToken) -> Finish {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("pool");
        let ctx = RunContext {
            run_id: 1,
            job: def,
            args: None,
            cancel,
            kill_grace: Duration::from_secs(1),
            file_pool: &pool,
            on_progress: &|_| {},
            on_pid: &|_| {},
            on_output: &|_| {},
        };
        super::super::execute(&ctx)
    }

    /// A temp dir with `t.db` holding `t(x INTEGER)` and one row.
    fn database() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).expect("create db");
        conn.execute_batch("CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (0);")
            .expect("schema");
        (dir, path)
    }

    fn values(path: &Path) -> Vec<i64> {
        let conn = Connection::open(path).expect("open db");
        let mut stmt = conn.prepare("SELECT x FROM t ORDER BY x").expect("prepare");
        let rows = stmt.query_map([], |r| r.get(0)).expect("query");
        rows.collect::<Result<_, _>>().expect("rows")
    }

    /// Never ends by itself: counts an endless recursive sequence.
    const ENDLESS: &str =
        "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT count(*) FROM c;";

    #[test]
    fn batch_commits_and_counts_rows_changed() {
        let (_dir, db) = database();
        let sql = "INSERT INTO t VALUES (1), (2); CREATE TABLE u(y); UPDATE t SET x = x + 10;";
        let f = run(&job(&db, sql, ""), &CancelToken::new());
        assert_eq!(f.state, RunState::Succeeded, "{f:?}");
        // 2 inserted + 3 updated; the CREATE adds nothing.
        assert_eq!(f.result, Some(json!({"rows_changed": 5})));
        assert_eq!(f.output, "5 rows changed");
        assert_eq!(values(&db), vec![10, 11, 12]);
    }

    #[test]
    fn a_bad_statement_rolls_back_the_batch() {
        let (_dir, db) = database();
        let sql = "INSERT INTO t VALUES (1); INSERT INTO nope VALUES (2);";
        let f = run(&job(&db, sql, ""), &CancelToken::new());
        assert_eq!(f.state, RunState::Failed);
        let error = f.error.unwrap_or_default();
        assert!(error.contains("no such table: nope"), "{error}");
        assert_eq!(values(&db), vec![0]);
    }

    #[test]
    fn a_missing_database_is_not_created() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("missing.db");
        let f = run(&job(&db, "SELECT 1;", ""), &CancelToken::new());
        assert_eq!(f.state, RunState::Failed);
        let error = f.error.unwrap_or_default();
        assert!(
            error.contains("missing.db") && error.contains("No such file"),
            "{error}"
        );
        assert!(!db.exists());
    }

    #[test]
    fn a_long_statement_is_interrupted_at_the_time_limit() {
        let (_dir, db) = database();
        let started = Instant::now();
        let f = run(
            &job(&db, ENDLESS, "timeout = \"200ms\""),
            &CancelToken::new(),
        );
        assert_eq!(f.state, RunState::TimedOut, "{f:?}");
        assert_eq!(f.error.as_deref(), Some("timed out after 200ms"));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn cancel_interrupts_a_long_statement() {
        let (_dir, db) = database();
        let cancel = CancelToken::new();
        let canceller = cancel.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            canceller.cancel_because("stop");
        });
        let f = run(&job(&db, ENDLESS, "timeout = \"20s\""), &cancel);
        t.join().expect("canceller");
        assert_eq!(f.state, RunState::Cancelled, "{f:?}");
        assert_eq!(f.error.as_deref(), Some("stop"));
    }

    #[test]
    fn cancel_ends_a_wait_for_a_lock() {
        let (_dir, db) = database();
        let holder = Connection::open(&db).expect("open");
        holder.execute_batch("BEGIN EXCLUSIVE;").expect("lock");
        let cancel = CancelToken::new();
        let canceller = cancel.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            canceller.cancel();
        });
        let started = Instant::now();
        let f = run(
            &job(&db, "INSERT INTO t VALUES (5);", "timeout = \"20s\""),
            &cancel,
        );
        t.join().expect("canceller");
        assert_eq!(f.state, RunState::Cancelled, "{f:?}");
        assert_eq!(f.error.as_deref(), Some("cancelled"));
        assert!(started.elapsed() < Duration::from_secs(5));
        holder.execute_batch("ROLLBACK;").expect("unlock");
        assert_eq!(values(&db), vec![0]);
    }

    #[test]
    fn the_busy_handler_gives_up_outside_a_run() {
        assert!(!busy_wait(0));
        let limits = Limits {
            deadline: Instant::now() + Duration::from_secs(10),
            cancel: CancelToken::new(),
        };
        let scope = BusyScope::enter(limits.clone());
        assert!(busy_wait(0));
        limits.cancel.cancel();
        assert!(!busy_wait(1));
        drop(scope);
        assert!(!busy_wait(0));
    }
}
