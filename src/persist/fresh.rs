//! A new journal being written next to the one in use (`journal.tmp`),
//! then put in its place: what compaction writes.
//!
//! It is created afresh (a leftover of a crash during an earlier
//! compaction is garbage), written in large pieces, made durable with
//! fsync, and only then renamed over `journal` ([`Fresh::install`]), so a
//! crash at any moment leaves either the old journal or the new one,
//! complete. The rename itself is durable once the directory is fsynced,
//! which the caller does (see [`Journal::from_fresh`]).
//!
//! [`Journal::replace`] writes one from a list of records at once; the
//! journal thread (see `group`) writes one piece by piece while the old
//! journal still takes appends.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::files;
use super::journal::{encode_frame, Journal, FILE_NAME, HEADER, TMP_NAME};
use super::record::Record;

/// Bytes gathered before a `write` when a journal is written from records.
const WRITE_CHUNK: usize = 64 * 1024;

/// A new journal file under construction, not yet in place.
#[derive(Debug)]
pub(super) struct Fresh {
    /// The temporary file, opened for appending.
    file: Arc<File>,
    /// Its path (`journal.tmp`).
    path: PathBuf,
    /// Bytes written (header included).
    len: u64,
    /// Bytes made durable by the last [`Fresh::sync`].
    synced_len: u64,
}

impl Fresh {
    /// Creates `dir/journal.tmp` afresh, holding only the header.
    pub(super) fn create(dir: &Path) -> io::Result<Fresh> {
        let path = dir.join(TMP_NAME);
        // A leftover from a crash during an earlier compaction is garbage.
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(files::context(e, "remove stale", &path));
            }
            _ => {}
        }
        fail::fail_point!("journal.write_new", |_| Err(files::context(
            disk_full(),
            "write",
            &path
        )));
        // `create_new` (O_EXCL) never follows a link; O_NOFOLLOW says so too.
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| files::context(e, "create", &path))?;
        let mut fresh = Fresh {
            file: Arc::new(file),
            path,
            len: 0,
            synced_len: 0,
        };
        fresh.write(HEADER)?;
        Ok(fresh)
    }

    /// Appends `bytes` (whole frames).
    pub(super) fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file
            .write_all_at(bytes, self.len)
            .map_err(|e| files::context(e, "write", &self.path))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Makes everything written so far durable (a no-op when it is).
    pub(super) fn sync(&mut self) -> io::Result<()> {
        if self.synced_len == self.len {
            return Ok(());
        }
        let len = self.len;
        sync_file(&self.file, &self.path)?;
        self.synced_len = len;
        Ok(())
    }

    /// The file, its path and the length written so far, to fsync (with
    /// [`sync_file`]) without holding whatever guards `self`; then
    /// [`Fresh::synced_through`].
    pub(super) fn sync_handle(&self) -> (Arc<File>, PathBuf, u64) {
        (Arc::clone(&self.file), self.path.clone(), self.len)
    }

    /// Notes that the first `len` bytes were made durable through a
    /// handle of [`Fresh::sync_handle`].
    pub(super) fn synced_through(&mut self, len: u64) {
        self.synced_len = self.synced_len.max(len);
    }

    /// Bytes written so far.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Makes it durable and renames it over `dir/journal`: from then on it
    /// is the journal. The directory is not fsynced yet (the journal that
    /// comes back says so).
    pub(super) fn install(mut self, dir: &Path) -> io::Result<Journal> {
        self.sync()?;
        let path = dir.join(FILE_NAME);
        fs::rename(&self.path, &path).map_err(|e| files::context(e, "rename", &self.path))?;
        Ok(Journal::from_fresh(self.file, path, dir, self.len))
    }

    /// Gives up on it: the temporary file is removed (or left as garbage
    /// for the next one, if that fails).
    pub(super) fn discard(self) {
        if let Err(e) = fs::remove_file(&self.path) {
            log::debug!("state/journal: {}: {e}", self.path.display());
        }
    }
}

/// fsync of a new journal's file at `path` (all of it: the file is new,
/// so its size and its inode must be on disk too).
pub(super) fn sync_file(file: &File, path: &Path) -> io::Result<()> {
    file.sync_all()
        .map_err(|e| files::context(e, "fsync", path))
}

/// Writes `records` as a new journal in `dir/journal.tmp`, fsynced, ready
/// to install. If no record names `max_run_id` or above, a `Forget` of
/// `max_run_id` is added last, so replay still knows the highest id ever
/// used.
pub(super) fn write_records(
    dir: &Path,
    records: impl IntoIterator<Item = Record>,
    max_run_id: u64,
) -> io::Result<Fresh> {
    let mut fresh = Fresh::create(dir)?;
    let mut buf = Vec::with_capacity(WRITE_CHUNK + 4096);
    let mut highest = 0;
    let result = (|| {
        for record in records {
            highest = highest.max(record.run_id().unwrap_or(0));
            encode_frame(&mut buf, &record)?;
            if buf.len() >= WRITE_CHUNK {
                fresh.write(&buf)?;
                buf.clear();
            }
        }
        if highest < max_run_id {
            encode_frame(&mut buf, &Record::Forget { run_id: max_run_id })?;
        }
        fresh.write(&buf)?;
        fresh.sync()
    })();
    match result {
        Ok(()) => Ok(fresh),
        Err(e) => {
            fresh.discard();
            Err(e)
        }
    }
}

/// The error a full disk gives, for the fail points.
#[cfg(feature = "failpoints")]
pub(super) fn disk_full() -> io::Error {
    io::Error::from_raw_os_error(28) // ENOSPC
}
