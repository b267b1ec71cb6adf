//! The append-only journal file: a header line, then checksummed frames.
//!
//! ```text
//! tickd-journal v1\n                       header: magic and format version
//! [len u32 LE][crc32 u32 LE][len bytes]    one frame per record (JSON)
//! [len u32 LE][crc32 u32 LE][len bytes]
//! ...
//! ```
//!
//! A frame that is cut short, claims an impossible length, fails its
//! checksum or does not decode is skipped and reported, and reading resyncs
//! at the next offset where a whole frame checks out: every frame kept was
//! checked on its own, and damage in the middle loses only what it covers.
//! Writing goes through [`Journal`]: one `write` per frame to a file opened
//! with `O_APPEND`, and a fresh file is only ever put in place by
//! [`Journal::replace`] (temporary file, fsync, rename, directory fsync).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::files;
use super::fresh;
use super::record::Record;

/// The first line of every journal: magic, then the format version.
pub(super) const HEADER: &[u8] = b"tickd-journal v1\n";
/// The header up to the version number, to tell "newer format" from "not a journal".
const MAGIC: &[u8] = b"tickd-journal v";
/// Bytes before each payload: length then CRC-32, both little-endian u32.
const FRAME_HEADER_LEN: usize = 8;
/// The largest payload a frame may carry; a longer length field is damage.
pub(super) const MAX_PAYLOAD: usize = 16 * 1024 * 1024;
/// The journal's file name inside the state directory.
pub(super) const FILE_NAME: &str = "journal";
/// Where a new journal is written before it is renamed over the old one.
pub(super) const TMP_NAME: &str = "journal.tmp";

/// What the first line of a journal says.
#[derive(Debug, PartialEq)]
pub(super) enum Header {
    /// The current format; frames start at this offset.
    Valid(usize),
    /// A zero-length file: nothing to read, nothing lost.
    Empty,
    /// Not a journal this version can read; the reason for the warning.
    Bad(String),
}

/// Checks the header of a journal's contents.
pub(super) fn check_header(bytes: &[u8]) -> Header {
    if bytes.is_empty() {
        return Header::Empty;
    }
    if bytes.starts_with(HEADER) {
        return Header::Valid(HEADER.len());
    }
    if let Some(rest) = bytes.strip_prefix(MAGIC) {
        let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
        let version = String::from_utf8_lossy(&line[..line.len().min(16)]);
        return Header::Bad(format!(
            "format version {version:?} is not one this tickd reads (v1)"
        ));
    }
    Header::Bad("it does not start with the tickd journal header".to_string())
}

/// The good records of a journal and the damage skipped between them.
#[derive(Debug, Default)]
pub(super) struct Replay {
    /// The records of every good frame, in order.
    pub(super) records: Vec<Record>,
    /// The offset just past the last good frame.
    pub(super) end: u64,
    /// Every damaged stretch that was skipped, in file order.
    pub(super) skipped: Vec<Skipped>,
}

/// A stretch of a journal that replay could not use.
#[derive(Debug)]
pub(super) struct Skipped {
    /// Offset of the first bad frame.
    pub(super) offset: u64,
    /// Bytes from there to the next good frame (or the end of the file).
    pub(super) bytes: u64,
    /// What was wrong with the frame.
    pub(super) reason: String,
    /// True when no good frame follows, as after a crash in the middle of
    /// an append (a torn tail); false when good frames follow, i.e. the
    /// file was damaged in place (a flipped bit, a bad sector).
    pub(super) at_tail: bool,
}

impl Skipped {
    /// The operator-facing warning, without the path of any kept copy.
    pub(super) fn describe(&self) -> String {
        if self.at_tail {
            format!(
                "state/journal: skipped {} bytes of torn or corrupt data at offset {} ({}), \
                 the end of the file: the last write before a crash or power loss",
                self.bytes, self.offset, self.reason
            )
        } else {
            format!(
                "state/journal: skipped {} bytes of corrupt data at offset {} ({}); \
                 the records after it were recovered",
                self.bytes, self.offset, self.reason
            )
        }
    }
}

/// Reads every good frame from `start` on (`bytes` is the whole file).
///
/// A bad frame does not end the replay: its length field may be what is
/// damaged, so where it "ends" proves nothing. Instead replay resyncs: it
/// looks, byte by byte after the bad frame's start, for the next offset
/// where a whole frame checks out (see [`resync`]) and goes on from there.
/// Only damage that no good frame follows is a torn tail.
///
/// Zero bytes after the last non-zero one end the records without a word:
/// they are the room the journal writes ahead of its end (see
/// [`Journal::reserve`]), or what a power loss left of an extension of the
/// file. (Every frame ends with its payload's closing `}`, so no frame
/// ends in a zero byte.)
pub(super) fn read_frames(bytes: &[u8], start: usize) -> Replay {
    let mut replay = Replay {
        end: start as u64,
        ..Replay::default()
    };
    let data_end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let bytes = &bytes[..data_end.max(start).min(bytes.len())];
    let mut pos = start;
    while pos < bytes.len() {
        match read_frame(bytes, pos) {
            Ok((record, next)) => {
                replay.records.push(record);
                pos = next;
                replay.end = next as u64;
            }
            Err(reason) => {
                let resume = resync(bytes, pos + 1);
                let until = resume.unwrap_or(bytes.len());
                replay.skipped.push(Skipped {
                    offset: pos as u64,
                    bytes: (until - pos) as u64,
                    reason,
                    at_tail: resume.is_none(),
                });
                pos = until;
            }
        }
    }
    replay
}

/// The first offset at or after `from` where a good frame starts, if any.
///
/// A candidate must claim a possible length that fits in the file, and its
/// payload must open the way every record does (`{"t":"`), before its
/// checksum is computed and its record decoded: the payload is JSON text,
/// which holds no zero bytes, so inside a payload almost no offset even
/// claims a possible length, and a false match would need a CRC-32 to hold
/// by chance as well.
fn resync(bytes: &[u8], from: usize) -> Option<usize> {
    const OPENING: &[u8] = br#"{"t":""#;
    (from..bytes.len()).find(|&at| {
        let rest = &bytes[at..];
        let Some((head, body)) = rest.split_first_chunk::<FRAME_HEADER_LEN>() else {
            return false;
        };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        (1..=MAX_PAYLOAD).contains(&len)
            && body.len() >= len
            && body.starts_with(OPENING)
            && read_frame(bytes, at).is_ok()
    })
}

/// Reads the frame at `at` (before the end of `bytes`), checking length,
/// checksum and JSON in that order: its record and the offset of the next
/// frame, or what is wrong with it.
fn read_frame(bytes: &[u8], at: usize) -> Result<(Record, usize), String> {
    let rest = &bytes[at..];
    let Some((head, body)) = rest.split_first_chunk::<FRAME_HEADER_LEN>() else {
        return Err(format!("frame header cut short: {} of 8 bytes", rest.len()));
    };
    let [l0, l1, l2, l3, c0, c1, c2, c3] = *head;
    let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    let crc = u32::from_le_bytes([c0, c1, c2, c3]);
    if len == 0 || len > MAX_PAYLOAD {
        return Err(format!("impossible payload length {len}"));
    }
    let Some(payload) = body.get(..len) else {
        return Err(format!("payload cut short: {} of {len} bytes", body.len()));
    };
    if crc32fast::hash(payload) != crc {
        return Err("checksum mismatch".to_string());
    }
    match serde_json::from_slice::<Record>(payload) {
        Ok(record) => Ok((record, at + FRAME_HEADER_LEN + len)),
        Err(e) => Err(format!("undecodable record: {e}")),
    }
}

/// Appends the frame of `record` to `buf`.
///
/// Fails (`InvalidInput`) for a payload over [`MAX_PAYLOAD`], which replay
/// would take for damage and stop at, losing every later record.
pub(super) fn encode_frame(buf: &mut Vec<u8>, record: &Record) -> io::Result<()> {
    let start = buf.len();
    buf.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    let encoded = serde_json::to_writer(&mut *buf, record);
    let payload_len = buf.len() - start - FRAME_HEADER_LEN;
    let checked = match encoded {
        Err(e) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("state/journal: cannot encode a record: {e}"),
        )),
        Ok(()) if payload_len > MAX_PAYLOAD => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "state/journal: record of {payload_len} bytes{} is over the {MAX_PAYLOAD}-byte limit",
                record
                    .run_id()
                    .map(|id| format!(" (run {id})"))
                    .unwrap_or_default()
            ),
        )),
        Ok(()) => Ok(()),
    };
    if let Err(e) = checked {
        buf.truncate(start);
        return Err(e);
    }
    let crc = crc32fast::hash(&buf[start + FRAME_HEADER_LEN..]);
    // The length fits: it is at most MAX_PAYLOAD.
    let len = payload_len as u32;
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + FRAME_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// The open journal of a state directory, appended to in place.
#[derive(Debug)]
pub(super) struct Journal {
    /// The journal, written at `len` (shared so that it can be fdatasynced
    /// without holding the journal, see [`Journal::sync_handle`]).
    file: Arc<File>,
    /// Its path, for messages.
    path: PathBuf,
    /// The state directory, fsynced after a rename.
    dir: PathBuf,
    /// The frame being built, reused so an append does not allocate.
    frame: Vec<u8>,
    /// Bytes of frames in the file (every write so far succeeded or was
    /// undone): where the next append goes.
    len: u64,
    /// The file's size: `len`, then the zeros written ahead of it (see
    /// [`Journal::reserve`]).
    allocated: u64,
    /// Bytes in the file right after it was written by `replace`.
    compacted_len: u64,
    /// Appended since the last fdatasync.
    dirty: bool,
    /// Renamed into place, but the directory entry may not be on disk yet.
    dir_unsynced: bool,
    /// Why appends are refused until the next compaction, if they are.
    broken: Option<String>,
    /// An append failed (and was undone): a record is missing from the
    /// file until the next compaction writes the state from memory.
    missed: bool,
}

impl Journal {
    /// Writes `records` as a new journal and renames it over the old one.
    ///
    /// The new file is complete and fsynced before the rename, so a crash at
    /// any point leaves either the old journal or the new one, never a mix.
    /// The rename itself is durable once the directory is fsynced, which the
    /// next [`Journal::sync`] does (and retries until it succeeds). If a
    /// record is written whose id is below `max_run_id`, a `Forget` of
    /// `max_run_id` is added so replay still knows the highest id ever used.
    pub(super) fn replace(
        dir: &Path,
        records: impl IntoIterator<Item = Record>,
        max_run_id: u64,
    ) -> io::Result<Journal> {
        fresh::write_records(dir, records, max_run_id)?.install(dir)
    }

    /// The journal of a new file just renamed into place at `path`
    /// (`len` bytes, all durable); its directory is not fsynced yet.
    pub(super) fn from_fresh(file: Arc<File>, path: PathBuf, dir: &Path, len: u64) -> Journal {
        Journal {
            file,
            path,
            dir: dir.to_path_buf(),
            frame: Vec::with_capacity(4096),
            len,
            allocated: len,
            compacted_len: len,
            dirty: false,
            dir_unsynced: true,
            broken: None,
            missed: false,
        }
    }

    /// Writes one frame with a single `write`; it is in the page cache (and
    /// survives `kill -9`) when this returns, on disk after [`Journal::sync`].
    pub(super) fn append(&mut self, record: &Record) -> io::Result<()> {
        let mut frame = std::mem::take(&mut self.frame);
        frame.clear();
        let appended = encode_frame(&mut frame, record).and_then(|()| self.append_frames(&frame));
        self.frame = frame;
        appended
    }

    /// Writes `frames` (whole frames, as [`encode_frame`] makes them) with
    /// a single `write`, as [`Journal::append`] does one.
    pub(super) fn append_frames(&mut self, frames: &[u8]) -> io::Result<()> {
        if let Some(why) = &self.broken {
            return Err(io::Error::other(format!(
                "state/journal: {} takes no appends until it is compacted: {why}",
                self.path.display()
            )));
        }
        if let Err(e) = self.write_frames(frames) {
            self.undo_partial_write();
            // The records are only in memory now: the next compaction must
            // rewrite the journal from memory to get them back.
            self.missed = true;
            return Err(files::context(e, "append to", &self.path));
        }
        self.len += frames.len() as u64;
        self.dirty = true;
        Ok(())
    }

    /// The one `write` of an append (a fail point can make it fail with
    /// ENOSPC, as a full disk does).
    fn write_frames(&mut self, frames: &[u8]) -> io::Result<()> {
        fail::fail_point!("journal.append", |_| Err(fresh::disk_full()));
        self.file.write_all_at(frames, self.len)?;
        self.allocated = self.allocated.max(self.len + frames.len() as u64);
        Ok(())
    }

    /// Writes `chunk` bytes of zeros past the end of the file when less
    /// than `low` bytes of them are left ahead of the last frame; true if
    /// it did.
    ///
    /// Appends then overwrite blocks that already hold data, in a file
    /// whose size does not change: on ext4 (and most file systems) an
    /// fdatasync of such a write flushes the data alone, with no journal
    /// commit of a new size or new blocks, which makes it much cheaper and
    /// keeps it from waiting behind other files' metadata. Replay reads
    /// the zeros as the end of the records ([`read_frames`]). A failure
    /// only costs that: appends extend the file as they would anyway.
    pub(super) fn reserve(&mut self, low: u64, chunk: u64) -> io::Result<bool> {
        if self.refuses_appends() || self.allocated - self.len >= low {
            return Ok(false);
        }
        static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
        let end = self.allocated + chunk;
        while self.allocated < end {
            let n = (end - self.allocated).min(ZEROS.len() as u64) as usize;
            self.file
                .write_all_at(&ZEROS[..n], self.allocated)
                .map_err(|e| files::context(e, "write ahead in", &self.path))?;
            self.allocated += n as u64;
        }
        Ok(true)
    }

    /// Cuts off whatever part of a failed frame reached the file: a torn
    /// frame would hide every later append from replay.
    fn undo_partial_write(&mut self) {
        // The zeros written ahead go too: simpler than zeroing the frame.
        self.allocated = self.len;
        if let Err(e) = self.file.set_len(self.len) {
            let why = format!(
                "a failed append could not be cut off at offset {}: {e}",
                self.len
            );
            log::warn!("state/journal: {why}");
            self.broken = Some(why);
        }
    }

    /// Makes every append so far durable; does nothing when there is none.
    ///
    /// A failed fdatasync may have dropped the written pages (Linux marks them
    /// clean), so retrying it proves nothing: the journal is marked broken and
    /// refuses appends until a compaction rewrites the state from memory.
    pub(super) fn sync(&mut self) -> io::Result<()> {
        if self.dirty {
            let synced = sync_data(&self.file, &self.path);
            self.after_sync(synced)?;
        }
        self.sync_dir()
    }

    /// The file and its path, to fdatasync (with [`sync_data`]) without
    /// holding the journal; report the outcome to [`Journal::after_sync`].
    pub(super) fn sync_handle(&self) -> (Arc<File>, PathBuf) {
        (Arc::clone(&self.file), self.path.clone())
    }

    /// Takes the outcome of an fdatasync of everything appended before it
    /// began: on failure the journal is broken (see [`Journal::sync`]).
    /// `dirty` stays set if appends came in meanwhile; syncing again costs
    /// little.
    pub(super) fn after_sync(&mut self, synced: io::Result<()>) -> io::Result<()> {
        match synced {
            Ok(()) => {
                self.dirty = false;
                Ok(())
            }
            Err(e) => {
                self.broken = Some(format!("fdatasync failed: {e}"));
                Err(e)
            }
        }
    }

    /// fsyncs the directory after a rename, once (retried until it works).
    pub(super) fn sync_dir(&mut self) -> io::Result<()> {
        if self.dir_unsynced {
            files::sync_dir(&self.dir)?;
            self.dir_unsynced = false;
        }
        Ok(())
    }

    /// Bytes appended since the file was last written whole.
    pub(super) fn bytes_since_compaction(&self) -> u64 {
        self.len - self.compacted_len
    }

    /// The file's size.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// The size right after the last compaction.
    pub(super) fn compacted_len(&self) -> u64 {
        self.compacted_len
    }

    /// True once appends are refused (after a failed fdatasync, or a failed
    /// append that could not be cut off).
    pub(super) fn refuses_appends(&self) -> bool {
        self.broken.is_some()
    }

    /// True while a rename put this file in place and the directory was not
    /// fsynced since.
    pub(super) fn dir_unsynced(&self) -> bool {
        self.dir_unsynced
    }

    /// True once appends are refused (see [`Journal::sync`]), or a failed
    /// append left a record out: either way only a compaction from memory
    /// makes the file whole again.
    pub(super) fn is_broken(&self) -> bool {
        self.broken.is_some() || self.missed
    }
}

/// The fdatasync of a journal file (a fail point can make it fail with
/// EIO).
pub(super) fn sync_data(file: &File, path: &Path) -> io::Result<()> {
    fail::fail_point!("journal.sync", |_| Err(files::context(
        io::Error::from_raw_os_error(5),
        "fdatasync",
        path
    )));
    file.sync_data()
        .map_err(|e| files::context(e, "fdatasync", path))
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
