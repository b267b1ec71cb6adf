//! `daemon.output_dir`: each run's whole output in a file of its own, so
//! that more than the 64 KiB tail can be read, also after a restart.
//!
//! - Names come from the run id alone (`run-<id>.out`): no job name, arg
//!   or output can steer where a file goes. Files are made `0600`
//!   (`O_NOFOLLOW`: a planted symlink is refused, not followed), the
//!   directory `0700` when tickd creates it.
//! - A file stops growing at `output_max_bytes_per_run`, and ends with a
//!   line saying so ([`TRUNCATED_NOTE`]).
//! - All files together stay under `output_dir_max_bytes`: past it, the
//!   oldest files are deleted first (by the order their runs started; at
//!   start, by modification time). Files still being written are not
//!   deleted, so the total can pass the cap by at most the caps of the
//!   runs running at that moment.
//! - Only the threads that run jobs write and delete (and the start, which
//!   scans the directory once); request threads only open files to read.
//!   The event loop never touches the disk here.

use crate::state::run::RunId;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The line a capped file ends with (the cap is filled in).
pub const TRUNCATED_NOTE: &str = "\n[tickd: output truncated: this run printed more than ";

/// The output directory and what its files hold.
#[derive(Debug)]
pub struct OutputDir {
    path: PathBuf,
    per_run: u64,
    max_total: u64,
    index: Mutex<Index>,
}

/// The files, oldest first.
#[derive(Debug, Default)]
struct Index {
    /// Order → (run, size, being written).
    files: BTreeMap<u64, FileEntry>,
    by_run: HashMap<RunId, u64>,
    total: u64,
    next: u64,
}

#[derive(Debug, Clone, Copy)]
struct FileEntry {
    run: RunId,
    size: u64,
    writing: bool,
}

/// The file name of run `id`'s output.
pub fn file_name(id: RunId) -> String {
    format!("run-{id}.out")
}

/// The run whose output file is named `name`, if it is one.
fn run_of(name: &str) -> Option<RunId> {
    let digits = name.strip_prefix("run-")?.strip_suffix(".out")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl OutputDir {
    /// Opens (creating it `0700` if missing) the directory at `path`, and
    /// indexes the files already there, deleting the oldest beyond
    /// `max_total`.
    pub fn open(path: &Path, per_run: u64, max_total: u64) -> io::Result<OutputDir> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)?;
        let mut found = Vec::new();
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            let Some(run) = entry.file_name().to_str().and_then(run_of) else {
                continue;
            };
            let meta = entry.metadata()?;
            if !meta.is_file() {
                continue;
            }
            let mtime = meta.modified().ok();
            found.push((mtime, run, meta.len()));
        }
        found.sort();
        let dir = OutputDir {
            path: path.to_path_buf(),
            per_run,
            max_total,
            index: Mutex::default(),
        };
        {
            let mut index = dir.index.lock();
            for (_, run, size) in found {
                index.insert(run, size, false);
            }
            dir.trim(&mut index);
        }
        Ok(dir)
    }

    /// The path of run `id`'s file.
    pub fn path_of(&self, id: RunId) -> PathBuf {
        self.path.join(file_name(id))
    }

    /// The cap per run.
    pub fn per_run(&self) -> u64 {
        self.per_run
    }

    /// Starts run `id`'s file (empty: a file left by a run of the same id
    /// in an earlier life of the daemon is replaced). Called by the worker
    /// that runs it.
    pub fn create(self: &Arc<Self>, id: RunId) -> io::Result<FileSink> {
        let path = self.path_of(id);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)?;
        // An older file of the same name may have had another mode.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        let order = {
            let mut index = self.index.lock();
            if let Some(old) = index.by_run.remove(&id) {
                if let Some(e) = index.files.remove(&old) {
                    index.total -= e.size;
                }
            }
            index.insert(id, 0, true)
        };
        Ok(FileSink {
            dir: Arc::clone(self),
            file: Some(file),
            order,
            written: 0,
        })
    }

    /// Deletes run `id`'s file if the index has one (left by a run of the
    /// same id in an earlier life of the daemon, which restarted its ids);
    /// no system call otherwise.
    pub fn discard(&self, id: RunId) {
        let mut index = self.index.lock();
        let Some(order) = index.by_run.remove(&id) else {
            return;
        };
        if let Some(e) = index.files.remove(&order) {
            index.total -= e.size;
        }
        drop(index);
        if let Err(e) = fs::remove_file(self.path_of(id)) {
            if e.kind() != io::ErrorKind::NotFound {
                log::warn!("output_dir: cannot delete {}: {e}", file_name(id));
            }
        }
    }

    /// Up to `max` bytes of run `id`'s file from offset `from` (clamped to
    /// its size), with that offset and the file's size; `None` if the run
    /// has no file.
    pub fn read(
        &self,
        id: RunId,
        from: u64,
        max: usize,
    ) -> io::Result<Option<(Vec<u8>, u64, u64)>> {
        let mut file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.path_of(id))
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let size = file.metadata()?.len();
        let from = from.min(size);
        file.seek(SeekFrom::Start(from))?;
        let want = usize::try_from(size - from).unwrap_or(usize::MAX).min(max);
        let mut bytes = Vec::with_capacity(want);
        file.take(want as u64).read_to_end(&mut bytes)?;
        Ok(Some((bytes, from, size)))
    }

    /// Bytes all indexed files hold.
    pub fn total(&self) -> u64 {
        self.index.lock().total
    }

    /// Deletes the oldest files not being written until the total is
    /// under the cap.
    fn trim(&self, index: &mut Index) {
        if index.total <= self.max_total {
            return;
        }
        let old: Vec<(u64, FileEntry)> = index
            .files
            .iter()
            .filter(|(_, e)| !e.writing)
            .map(|(k, e)| (*k, *e))
            .collect();
        for (order, entry) in old {
            if index.total <= self.max_total {
                break;
            }
            match fs::remove_file(self.path_of(entry.run)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    log::warn!("output_dir: cannot delete {}: {e}", file_name(entry.run));
                    continue;
                }
            }
            log::debug!("output_dir: deleted {} (total cap)", file_name(entry.run));
            index.files.remove(&order);
            index.by_run.remove(&entry.run);
            index.total -= entry.size;
        }
    }
}

impl Index {
    fn insert(&mut self, run: RunId, size: u64, writing: bool) -> u64 {
        let order = self.next;
        self.next += 1;
        self.files.insert(order, FileEntry { run, size, writing });
        self.by_run.insert(run, order);
        self.total += size;
        order
    }
}

/// A run's output file, written by the worker that runs it.
#[derive(Debug)]
pub struct FileSink {
    dir: Arc<OutputDir>,
    /// None once the cap is reached or a write failed.
    file: Option<File>,
    order: u64,
    written: u64,
}

impl FileSink {
    /// Appends `bytes`, up to the cap per run; past it, the file ends
    /// with [`TRUNCATED_NOTE`] and takes nothing more.
    pub fn write(&mut self, bytes: &[u8]) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let room = self.dir.per_run.saturating_sub(self.written);
        let take = usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len());
        let mut piece = bytes[..take].to_vec();
        let capped = take < bytes.len();
        if capped {
            piece.extend_from_slice(
                format!("{TRUNCATED_NOTE}{} bytes]\n", self.dir.per_run).as_bytes(),
            );
        }
        if let Err(e) = file.write_all(&piece) {
            log::warn!(
                "output_dir: writing {}: {e}; the rest of this run's output is not kept there",
                self.dir.path.display()
            );
            self.file = None;
        } else if capped {
            self.file = None;
        }
        self.written += piece.len() as u64;
        self.grew(piece.len() as u64, false);
    }

    /// Records `n` more bytes in the index (and deletes old files past the
    /// total cap).
    fn grew(&self, n: u64, done: bool) {
        let mut index = self.dir.index.lock();
        let mut counted = false;
        if let Some(entry) = index.files.get_mut(&self.order) {
            entry.size += n;
            entry.writing &= !done;
            counted = true;
        }
        if counted {
            index.total += n;
        }
        self.dir.trim(&mut index);
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        self.grew(0, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_ids_only() {
        assert_eq!(file_name(42), "run-42.out");
        assert_eq!(run_of("run-42.out"), Some(42));
        for bad in [
            "run-.out",
            "run-4a.out",
            "x-4.out",
            "run-4.out.tmp",
            "run--4.out",
        ] {
            assert_eq!(run_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn caps_per_run_and_in_total() {
        let tmp = std::env::temp_dir().join(format!("tickd-outdir-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let dir = Arc::new(OutputDir::open(&tmp, 10, 78).expect("open"));
        let mode = fs::metadata(&tmp).expect("dir").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let mut a = dir.create(1).expect("a");
        a.write(b"0123456789abc");
        let text = fs::read_to_string(dir.path_of(1)).expect("read");
        assert!(
            text.starts_with("0123456789\n[tickd: output truncated"),
            "{text}"
        );
        drop(a);
        let mode = fs::metadata(dir.path_of(1))
            .expect("f")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let mut b = dir.create(2).expect("b");
        b.write(b"12345");
        drop(b);
        assert!(!dir.path_of(1).exists(), "the oldest went first");
        assert_eq!(dir.total(), 5);
        let (bytes, from, size) = dir.read(2, 3, 10).expect("io").expect("file");
        assert_eq!((bytes.as_slice(), from, size), (&b"45"[..], 3, 5));
        assert!(dir.read(1, 0, 10).expect("io").is_none());
        let _ = fs::remove_dir_all(&tmp);
    }
}
