//! The append-only journal file: a header line, then checksummed frames.
//!
//! ```text
//! tickd-journal v1\n                       header: magic and format version
//! [len u32 LE][crc32 u32 LE][len bytes]    one frame per record (JSON)
//! [len u32 LE][crc32 u32 LE][len bytes]
//! ...
//! ```
//!
//! Reading stops at the first frame that is cut short, claims an impossible
//! length, fails its checksum or does not decode, and reports what it
//! skipped; the frames before it are good (each was checked on its own).
//! Writing goes through [`Journal`]: one `write` per frame to a file opened
//! with `O_APPEND`, and a fresh file is only ever put in place by
//! [`Journal::replace`] (temporary file, fsync, rename, directory fsync).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::files;
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
const TMP_NAME: &str = "journal.tmp";

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

/// The good records of a journal and where reading stopped.
#[derive(Debug, Default)]
pub(super) struct Replay {
    /// The records of every good frame, in order.
    pub(super) records: Vec<Record>,
    /// The offset just past the last good frame.
    pub(super) end: u64,
    /// What was skipped after `end`, if anything.
    pub(super) skipped: Option<Skipped>,
}

/// The part of a journal that replay could not use.
#[derive(Debug)]
pub(super) struct Skipped {
    /// Offset of the first bad frame.
    pub(super) offset: u64,
    /// Bytes from there to the end of the file.
    pub(super) bytes: u64,
    /// What was wrong with the frame.
    pub(super) reason: String,
    /// True when the bad frame is the last thing in the file, as after a
    /// crash in the middle of an append (a torn tail); false when data
    /// follows it, i.e. records after it are lost.
    pub(super) at_tail: bool,
}

impl Skipped {
    /// The operator-facing warning, without the path of any kept copy.
    pub(super) fn describe(&self) -> String {
        let what = if self.at_tail {
            "torn or corrupt data"
        } else {
            "corrupt data, and the records after it"
        };
        format!(
            "state/journal: skipped {} bytes of {what} at offset {} ({})",
            self.bytes, self.offset, self.reason
        )
    }
}

/// Reads every good frame from `start` on (`bytes` is the whole file).
pub(super) fn read_frames(bytes: &[u8], start: usize) -> Replay {
    let mut replay = Replay {
        end: start as u64,
        ..Replay::default()
    };
    let mut pos = start;
    loop {
        match read_frame(bytes, pos) {
            Ok(None) => break,
            Ok(Some((record, next))) => {
                replay.records.push(record);
                pos = next;
                replay.end = next as u64;
            }
            Err(BadFrame { reason, at_tail }) => {
                replay.skipped = Some(Skipped {
                    offset: pos as u64,
                    bytes: (bytes.len() - pos) as u64,
                    reason,
                    at_tail,
                });
                break;
            }
        }
    }
    replay
}

/// A frame that cannot be trusted.
struct BadFrame {
    /// What is wrong with it.
    reason: String,
    /// Whether it reaches exactly to the end of the file.
    at_tail: bool,
}

/// Reads the frame at `at`, checking length, checksum and JSON in that
/// order: its record and the offset of the next frame, or None at the end.
fn read_frame(bytes: &[u8], at: usize) -> Result<Option<(Record, usize)>, BadFrame> {
    let rest = &bytes[at..];
    if rest.is_empty() {
        return Ok(None);
    }
    let bad = |reason: String, at_tail: bool| Err(BadFrame { reason, at_tail });
    let Some((head, body)) = rest.split_first_chunk::<FRAME_HEADER_LEN>() else {
        let reason = format!("frame header cut short: {} of 8 bytes", rest.len());
        return bad(reason, true);
    };
    let [l0, l1, l2, l3, c0, c1, c2, c3] = *head;
    let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    let crc = u32::from_le_bytes([c0, c1, c2, c3]);
    if len == 0 || len > MAX_PAYLOAD {
        // Where such a frame would end is unknown: assume data follows.
        return bad(format!("impossible payload length {len}"), false);
    }
    let Some(payload) = body.get(..len) else {
        let reason = format!("payload cut short: {} of {len} bytes", body.len());
        return bad(reason, true);
    };
    let at_tail = body.len() == len;
    if crc32fast::hash(payload) != crc {
        return bad("checksum mismatch".to_string(), at_tail);
    }
    match serde_json::from_slice::<Record>(payload) {
        Ok(record) => Ok(Some((record, at + FRAME_HEADER_LEN + len))),
        Err(e) => bad(format!("undecodable record: {e}"), at_tail),
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
    /// The journal, opened with `O_APPEND`.
    file: File,
    /// Its path, for messages.
    path: PathBuf,
    /// The state directory, fsynced after a rename.
    dir: PathBuf,
    /// The frame being built, reused so an append does not allocate.
    frame: Vec<u8>,
    /// Bytes in the file (every write so far succeeded or was undone).
    len: u64,
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
        let tmp = dir.join(TMP_NAME);
        let path = dir.join(FILE_NAME);
        let (file, len) = write_new(&tmp, records, max_run_id)?;
        fs::rename(&tmp, &path).map_err(|e| files::context(e, "rename", &tmp))?;
        Ok(Journal {
            file,
            path,
            dir: dir.to_path_buf(),
            frame: Vec::with_capacity(4096),
            len,
            compacted_len: len,
            dirty: false,
            dir_unsynced: true,
            broken: None,
            missed: false,
        })
    }

    /// Writes one frame with a single `write`; it is in the page cache (and
    /// survives `kill -9`) when this returns, on disk after [`Journal::sync`].
    pub(super) fn append(&mut self, record: &Record) -> io::Result<()> {
        if let Some(why) = &self.broken {
            return Err(io::Error::other(format!(
                "state/journal: {} takes no appends until it is compacted: {why}",
                self.path.display()
            )));
        }
        self.frame.clear();
        encode_frame(&mut self.frame, record)?;
        if let Err(e) = self.write_frame() {
            self.undo_partial_write();
            // The record is only in memory now: the next compaction must
            // rewrite the journal from memory to get it back.
            self.missed = true;
            return Err(files::context(e, "append to", &self.path));
        }
        self.len += self.frame.len() as u64;
        self.dirty = true;
        Ok(())
    }

    /// The one `write` of an append (a fail point can make it fail with
    /// ENOSPC, as a full disk does).
    fn write_frame(&mut self) -> io::Result<()> {
        fail::fail_point!("journal.append", |_| Err(disk_full()));
        self.file.write_all(&self.frame)
    }

    /// The fdatasync of [`Journal::sync`] (a fail point can make it fail
    /// with EIO).
    fn sync_file(&self) -> io::Result<()> {
        fail::fail_point!("journal.sync", |_| Err(io::Error::from_raw_os_error(5)));
        self.file.sync_data()
    }

    /// Cuts off whatever part of a failed frame reached the file: a torn
    /// frame would hide every later append from replay.
    fn undo_partial_write(&mut self) {
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
            if let Err(e) = self.sync_file() {
                let why = format!("fdatasync failed: {e}");
                self.broken = Some(why);
                return Err(files::context(e, "fdatasync", &self.path));
            }
            self.dirty = false;
        }
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

    /// True once appends are refused (see [`Journal::sync`]), or a failed
    /// append left a record out: either way only a compaction from memory
    /// makes the file whole again.
    pub(super) fn is_broken(&self) -> bool {
        self.broken.is_some() || self.missed
    }
}

/// The error a full disk gives, for the fail points.
#[cfg(feature = "failpoints")]
fn disk_full() -> io::Error {
    io::Error::from_raw_os_error(28) // ENOSPC
}

/// Creates `path` afresh with the header and the frames of `records`,
/// fsynced; returns it (opened for appending) and its length.
fn write_new(
    path: &Path,
    records: impl IntoIterator<Item = Record>,
    max_run_id: u64,
) -> io::Result<(File, u64)> {
    // A leftover from a crash during an earlier compaction is garbage.
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(files::context(e, "remove stale", path));
        }
        _ => {}
    }
    let file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| files::context(e, "create", path))?;
    let mut out = BufWriter::with_capacity(64 * 1024, &file);
    let mut frame = Vec::with_capacity(4096);
    let mut len = HEADER.len() as u64;
    let mut highest = 0;
    let write_err = |e| files::context(e, "write", path);
    fail::fail_point!("journal.write_new", |_| Err(write_err(disk_full())));
    out.write_all(HEADER).map_err(write_err)?;
    let marker = Record::Forget { run_id: max_run_id };
    let mut write_one = |record: &Record| -> io::Result<()> {
        frame.clear();
        encode_frame(&mut frame, record)?;
        out.write_all(&frame).map_err(write_err)?;
        len += frame.len() as u64;
        Ok(())
    };
    for record in records {
        highest = highest.max(record.run_id().unwrap_or(0));
        write_one(&record)?;
    }
    if highest < max_run_id {
        write_one(&marker)?;
    }
    out.flush().map_err(write_err)?;
    drop(out);
    file.sync_all()
        .map_err(|e| files::context(e, "fsync", path))?;
    Ok((file, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forget(id: u64) -> Record {
        Record::Forget { run_id: id }
    }

    fn journal_of(records: &[Record]) -> Vec<u8> {
        let mut bytes = HEADER.to_vec();
        for r in records {
            encode_frame(&mut bytes, r).expect("encodes");
        }
        bytes
    }

    #[test]
    fn frames_read_back_in_order() {
        let records = vec![forget(1), forget(2), forget(3)];
        let bytes = journal_of(&records);
        let replay = read_frames(&bytes, HEADER.len());
        assert_eq!(replay.records, records);
        assert_eq!(replay.end, bytes.len() as u64);
        assert!(replay.skipped.is_none());
    }

    #[test]
    fn frame_layout_is_length_crc_payload() {
        let mut buf = Vec::new();
        encode_frame(&mut buf, &forget(1)).expect("encodes");
        let payload = br#"{"t":"forget","run_id":1}"#;
        assert_eq!(buf[..4], (payload.len() as u32).to_le_bytes());
        assert_eq!(buf[4..8], crc32fast::hash(payload).to_le_bytes());
        assert_eq!(&buf[8..], payload);
    }

    #[test]
    fn headers_are_told_apart() {
        assert_eq!(check_header(b""), Header::Empty);
        assert_eq!(check_header(HEADER), Header::Valid(HEADER.len()));
        let newer = check_header(b"tickd-journal v2\n");
        assert!(
            matches!(&newer, Header::Bad(why) if why.contains("\"2\"")),
            "{newer:?}"
        );
        assert!(matches!(check_header(b"garbage"), Header::Bad(_)));
    }

    #[test]
    fn a_zeroed_tail_is_refused_by_its_length() {
        // Power loss can extend a file with zeros: length 0 is never valid.
        let mut bytes = journal_of(&[forget(1)]);
        bytes.extend_from_slice(&[0; 64]);
        let replay = read_frames(&bytes, HEADER.len());
        assert_eq!(replay.records, vec![forget(1)]);
        let skipped = replay.skipped.expect("skipped the zeros");
        assert_eq!(skipped.bytes, 64);
        assert!(skipped.reason.contains("length 0"), "{}", skipped.reason);
    }

    #[test]
    fn damage_before_more_data_is_not_called_a_tail() {
        let mut bytes = journal_of(&[forget(1), forget(2), forget(3)]);
        let second = HEADER.len() + (bytes.len() - HEADER.len()) / 3;
        bytes[second + 10] ^= 0x20;
        let replay = read_frames(&bytes, HEADER.len());
        assert_eq!(replay.records, vec![forget(1)]);
        let skipped = replay.skipped.expect("skipped");
        assert!(!skipped.at_tail);
        assert!(skipped.describe().contains("records after it"));
    }

    #[test]
    fn oversized_records_are_refused_and_leave_the_buffer_alone() {
        let mut buf = b"keep".to_vec();
        let big = Record::Scheduled {
            job: "x".repeat(MAX_PAYLOAD),
            at: crate::time::now(),
        };
        let err = encode_frame(&mut buf, &big).expect_err("too big");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(buf, b"keep");
    }
}
