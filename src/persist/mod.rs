//! Persistent state under `daemon.state_dir`: an append-only journal that
//! lets each job's last scheduled time, the run history and every accepted
//! run survive a restart, a `kill -9` and a power loss.
//!
//! # What is on disk
//!
//! ```text
//! state_dir/            mode 0700 (created if missing)
//!   lock                flock'ed by the daemon that owns the directory; holds its pid
//!   journal             the journal (mode 0600)
//!   journal.tmp         a compaction in progress (garbage if found at start)
//!   journal.corrupt-*   damaged journals kept for a human to look at
//! ```
//!
//! The journal is a header line `tickd-journal v1\n` (magic and format
//! version), then one frame per [`Record`]:
//! `[u32 LE payload length][u32 LE CRC-32 of payload][payload]`, where the
//! payload is a JSON object tagged by `"t"` (`run`, `scheduled`, `forget`,
//! `pause`, `job`, `job_deleted`). A `run` record is a full snapshot of a
//! run, so replay keeps the latest per id; `forget` drops a run from the
//! history; `scheduled` records the due time a job last fired; `pause` says
//! a job was paused or resumed (the last one per job wins); `job` and
//! `job_deleted` define and remove a job at run time (`jobs.put`,
//! `jobs.delete`; the last one per name wins). See [`Record`] and the
//! `journal` module.
//!
//! # Why it is crash-safe
//!
//! - **Appends only at the end.** Frames are written whole after the last
//!   one ([`Store::append`]: one frame, one `write`; the daemon goes through
//!   [`GroupCommit`], whose journal thread writes a loop turn's frames with
//!   one `write` and makes them durable with one fdatasync, see `group`).
//!   A written frame is in the page cache, which outlives the process: a
//!   `kill -9` loses nothing written. fdatasync makes it survive a power
//!   loss; the daemon answers a client only once what the answer
//!   acknowledges is durable.
//! - **Zeros ahead of the end.** The journal thread writes zeros past the
//!   last frame (`Journal::reserve`), so that appends overwrite blocks that
//!   hold data in a file whose size does not change, and an fdatasync needs
//!   no metadata commit. Replay takes trailing zeros as the end of the
//!   records: no frame ends with a zero byte (every payload ends with `}`).
//! - **Damage is detected, and costs only what it covers.** A crash or
//!   power loss can cut the last frame short or leave garbage (often zeros)
//!   after it; a bad disk can flip a bit anywhere. Each frame carries its
//!   length and a CRC-32 of its payload, and the payload must decode, so a
//!   damaged frame is never taken for a record. Replay then resyncs at the
//!   next offset where a whole frame checks out, since a damaged length
//!   field says nothing about where the next frame starts: damage that good
//!   frames follow is corruption (the file is kept as `journal.corrupt-*`
//!   and every frame after it is recovered); only damage that no good frame
//!   follows is a torn tail. Zeros after the last record are its end (see
//!   "Zeros ahead of the end"); a length of zero before more data, or one
//!   over [`MAX_RECORD_BYTES`], is damage on its face.
//! - **A finished run stays finished.** Once a run has a terminal record,
//!   no later snapshot of it (which only damage could put there) brings it
//!   back as queued, so no damage makes a succeeded run run again.
//! - **Start never builds on a bad tail.** After replay, [`Store::open`]
//!   compacts at once: the recovered state is written to `journal.tmp`,
//!   fsynced, renamed over `journal`, and the directory fsynced. New appends
//!   therefore start on a clean frame boundary; appending after a torn frame
//!   would hide every later record from the next replay.
//! - **Compaction is atomic.** The new file is complete and on disk before
//!   the rename, and rename replaces the name in one step, so a crash at any
//!   moment leaves either the old journal or the new one. The directory fsync
//!   (retried by the next sync if it fails) makes the rename itself survive a
//!   power loss; nothing the new file holds is reported durable before it.
//! - **Failed writes do not poison later ones.** If a write fails part-way
//!   (disk full), the partial frame is cut off again. If that fails too, or
//!   fdatasync fails (after which Linux may have dropped the pages, so a
//!   retry would lie), the store refuses appends and reports
//!   [`Store::needs_compaction`] until a compaction rewrites the state from
//!   the daemon's memory.
//! - **One daemon per directory.** An exclusive `flock` on `lock` makes a
//!   second daemon fail to open the store instead of interleaving frames.
//!   The kernel drops the lock when the process dies, so it never goes stale.
//! - **Run ids are never reused.** [`Recovered::max_run_id`] counts forgotten
//!   runs too; when compaction drops the highest id, it writes a `forget`
//!   record of it so the next replay still sees it.
//! - **Only the daemon's user writes the directory.** The journal says what
//!   to run (a queued `submit` run carries its job definition), so the
//!   store refuses a state dir that it, or anything in it, could have been
//!   written by another user (owned by another uid, or group- or
//!   world-writable), and opens every state file without following
//!   symbolic links and only if it is a regular file (see `files`). A
//!   journal holding a run id over [`MAX_RUN_ID`] cannot be tickd's and is
//!   refused too.
//!
//! A journal whose header is not this version's is renamed aside and the
//! daemon starts empty, with a warning: refusing to start would be worse.
//!
//! Replay reads the whole journal into memory; compaction keeps it within a
//! few times the size of the live state. [`Store`] does no I/O on its own
//! and holds no threads; [`GroupCommit`] takes it over with the journal
//! thread, and [`GroupCommit::needs_compaction`] tells the daemon when to
//! hand over its live state (a piece at a time, see `group`).

mod files;
mod fresh;
mod group;
mod journal;
mod record;
mod thread;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::time::Timestamp;
pub use group::{GroupCommit, Lsn, Report, ReportFn, Writer};
use journal::{Header, Journal};
pub use record::{Record, RunRecord};

/// The largest record (JSON payload) the journal takes: bigger ones are
/// refused by [`Store::append`] and [`Store::compact`] with `InvalidInput`,
/// since replay would take their length for damage.
pub const MAX_RECORD_BYTES: usize = journal::MAX_PAYLOAD;

/// The largest run id a journal may hold (2^63 - 1): higher ids cannot
/// come from counting (at a million runs a second they take 292,000 years
/// to reach), and the next one must not wrap past `u64::MAX`. A journal
/// holding one is refused, not trusted.
pub const MAX_RUN_ID: u64 = i64::MAX as u64;

/// The journal grows this much past its compacted size before
/// [`Store::needs_compaction`] asks for a compaction, whatever the ratio.
const COMPACT_MIN_BYTES: u64 = 8 * 1024 * 1024;
/// ... and to this many times its compacted size.
const COMPACT_GROWTH: u64 = 4;

/// The state recovered from the journal at start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovered {
    /// The latest snapshot of every run that was not forgotten, by id.
    /// Runs may be `queued` or `running`: the daemon decides what becomes of
    /// them (run the queued ones, mark the running ones interrupted).
    pub runs: Vec<RunRecord>,
    /// The due time each job's schedule last fired for (the last record wins).
    pub last_scheduled: BTreeMap<String, Timestamp>,
    /// The jobs paused by `jobs.pause` and not resumed since.
    pub paused: BTreeSet<String>,
    /// The jobs defined at run time (`jobs.put`) and not deleted since:
    /// each one's job object, by name.
    pub api_jobs: BTreeMap<String, serde_json::Value>,
    /// The highest run id ever recorded, forgotten runs included: new ids
    /// must start above it.
    pub max_run_id: u64,
    /// What was damaged and skipped or set aside, for the operator (each is
    /// also logged with `log::warn!`).
    pub warnings: Vec<String>,
}

impl Recovered {
    /// Replays `records` in order: a later snapshot of a run replaces an
    /// earlier one, `Forget` removes the run, `Scheduled` keeps the last
    /// due time per job. Leaves `warnings` empty.
    ///
    /// A run that has a terminal record (or was forgotten) stays settled:
    /// a later non-terminal snapshot of it is ignored, so no damage or
    /// replay order can bring a finished run back as queued and run it
    /// again.
    pub fn fold(records: impl IntoIterator<Item = Record>) -> Recovered {
        let mut runs = BTreeMap::new();
        let mut settled = HashSet::new();
        let mut recovered = Recovered::default();
        for record in records {
            if let Some(id) = record.run_id() {
                recovered.max_run_id = recovered.max_run_id.max(id);
            }
            match record {
                Record::Run(run) => {
                    if run.state.is_terminal() {
                        settled.insert(run.id);
                    } else if settled.contains(&run.id) {
                        continue;
                    }
                    runs.insert(run.id, run);
                }
                Record::Forget { run_id } => {
                    settled.insert(run_id);
                    runs.remove(&run_id);
                }
                Record::Scheduled { job, at } => {
                    recovered.last_scheduled.insert(job, at);
                }
                Record::Pause { job, paused: true } => {
                    recovered.paused.insert(job);
                }
                Record::Pause { job, paused: false } => {
                    recovered.paused.remove(&job);
                }
                Record::Job { name, job } => {
                    recovered.api_jobs.insert(name, job);
                }
                Record::JobDeleted { name } => {
                    recovered.api_jobs.remove(&name);
                }
            }
        }
        recovered.runs = runs.into_values().collect();
        recovered
    }

    /// The recovered state as records, which fold back into the same state
    /// (except `max_run_id`, which [`Store::compact`] keeps by itself).
    pub fn to_records(&self) -> impl Iterator<Item = Record> + '_ {
        let scheduled = self
            .last_scheduled
            .iter()
            .map(|(job, at)| Record::Scheduled {
                job: job.clone(),
                at: *at,
            });
        let paused = self.paused.iter().map(|job| Record::Pause {
            job: job.clone(),
            paused: true,
        });
        let api_jobs = self.api_jobs.iter().map(|(name, job)| Record::Job {
            name: name.clone(),
            job: job.clone(),
        });
        scheduled
            .chain(paused)
            .chain(api_jobs)
            .chain(self.runs.iter().cloned().map(Record::Run))
    }
}

/// The open state directory: owns its lock and appends to its journal.
///
/// Dropping it closes the journal and releases the lock; it does not sync,
/// so call [`Store::sync`] first on a clean shutdown.
#[derive(Debug)]
pub struct Store {
    /// The state directory.
    dir: PathBuf,
    /// The locked `lock` file: the lock lasts as long as this stays open.
    _lock: File,
    /// The journal being appended to.
    journal: Journal,
    /// The highest run id recorded, kept across compactions.
    max_run_id: u64,
}

impl Store {
    /// Opens (creating if need be) the state directory `dir`, locks it,
    /// replays the journal and compacts it.
    ///
    /// Damage is never a reason to fail: a bad stretch is skipped and a bad
    /// header sets the journal aside, both with a warning in
    /// [`Recovered::warnings`]. Fails when the directory cannot be created,
    /// read or written; with `PermissionDenied` when it or anything in it
    /// could have been written by another user (see `files::check_dir`);
    /// with `InvalidInput` when a state file is a symbolic link, a FIFO or
    /// anything but a regular file; with `InvalidData` when the journal
    /// holds a run id over [`MAX_RUN_ID`]; and with `ResourceBusy` when
    /// another process holds it.
    pub fn open(dir: &Path) -> io::Result<(Store, Recovered)> {
        files::create_dir(dir)?;
        files::check_dir(dir)?;
        let lock = files::lock_dir(dir)?;
        let mut warnings = Vec::new();
        let path = dir.join(journal::FILE_NAME);
        let records = read_journal(&path, &mut warnings)?;
        let mut recovered = Recovered::fold(records);
        recovered.warnings = warnings;
        if recovered.max_run_id > MAX_RUN_ID {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "state: {} records run id {}, above the largest tickd hands out ({MAX_RUN_ID}): \
                     new ids would overflow, so the journal cannot have been written by tickd; \
                     refusing to start (move it aside to start afresh)",
                    path.display(),
                    recovered.max_run_id
                ),
            ));
        }
        let journal = Journal::replace(dir, recovered.to_records(), recovered.max_run_id)?;
        let mut store = Store {
            dir: dir.to_path_buf(),
            _lock: lock,
            journal,
            max_run_id: recovered.max_run_id,
        };
        store.journal.sync()?;
        log::info!(
            "state: recovered {} runs, {} schedules and {} paused jobs from {}",
            recovered.runs.len(),
            recovered.last_scheduled.len(),
            recovered.paused.len(),
            dir.display()
        );
        Ok((store, recovered))
    }

    /// Appends `record`; it survives the process dying once this returns,
    /// and a power loss after the next [`Store::sync`].
    pub fn append(&mut self, record: &Record) -> io::Result<()> {
        self.journal.append(record)?;
        if let Some(id) = record.run_id() {
            self.max_run_id = self.max_run_id.max(id);
        }
        Ok(())
    }

    /// Makes every append so far durable (fdatasync); free when nothing was
    /// appended since the last call, so the loop can call it every turn.
    pub fn sync(&mut self) -> io::Result<()> {
        self.journal.sync()
    }

    /// Replaces the journal with `records`, the daemon's live state (every
    /// job's last scheduled time and the latest snapshot of every run kept),
    /// atomically and durably; later appends go to the new file.
    ///
    /// On error the old journal is still in place and still appended to.
    pub fn compact(&mut self, records: impl IntoIterator<Item = Record>) -> io::Result<()> {
        let mut highest = self.max_run_id;
        let records = records
            .into_iter()
            .inspect(|r| highest = highest.max(r.run_id().unwrap_or(0)));
        let fresh = Journal::replace(&self.dir, records, self.max_run_id)?;
        self.journal = fresh;
        self.max_run_id = highest;
        self.journal.sync()
    }

    /// True when the journal has grown past max(1 MiB, 4 × its size after
    /// the last compaction), or refuses appends after a failed write or sync.
    pub fn needs_compaction(&self) -> bool {
        let limit = COMPACT_MIN_BYTES.max(COMPACT_GROWTH * self.journal.compacted_len());
        self.journal.is_broken() || self.journal.len() > limit
    }

    /// Bytes appended since the last compaction (or since the store opened).
    pub fn bytes_since_compaction(&self) -> u64 {
        self.journal.bytes_since_compaction()
    }

    /// The journal's current size in bytes.
    pub fn journal_len(&self) -> u64 {
        self.journal.len()
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Reads the records of the journal at `path`, skipping damage and noting
/// it in `warnings` (and the log). A missing or empty file has none.
fn read_journal(path: &Path, warnings: &mut Vec<String>) -> io::Result<Vec<Record>> {
    let Some(bytes) = files::read_regular(path)? else {
        return Ok(Vec::new());
    };
    let start = match journal::check_header(&bytes) {
        Header::Empty => return Ok(Vec::new()),
        Header::Valid(start) => start,
        Header::Bad(why) => {
            let aside = files::rename_aside(path)?;
            warn(
                warnings,
                format!(
                    "state/journal: cannot read {} ({why}); moved it to {} and started with no saved state",
                    path.display(),
                    aside.display()
                ),
            );
            return Ok(Vec::new());
        }
    };
    let replay = journal::read_frames(&bytes, start);
    // Damage that good frames follow is not a crash's doing: keep the file
    // as it was for a human (once, however many stretches were skipped).
    let mut copy = None;
    for skipped in &replay.skipped {
        let mut message = skipped.describe();
        if !skipped.at_tail {
            let kept = copy.get_or_insert_with(|| match files::link_aside(path) {
                Ok(aside) => format!("; the damaged journal is kept as {}", aside.display()),
                Err(e) => format!("; no copy of the damaged journal could be kept: {e}"),
            });
            message += kept;
        }
        warn(warnings, message);
    }
    if !replay.skipped.is_empty() {
        log::warn!(
            "state/journal: {} records recovered from {}",
            replay.records.len(),
            path.display()
        );
    }
    Ok(replay.records)
}

/// Logs a recovery warning and keeps it for [`Recovered::warnings`].
fn warn(warnings: &mut Vec<String>, message: String) {
    log::warn!("{message}");
    warnings.push(message);
}
