//! File-system steps of the store: the state directory, its lock, directory
//! fsync, and keeping damaged journals aside. Every error names the path and
//! the step that failed, because an operator reads them in a log.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};
use rustix::io::Errno;

use crate::lock_wait::LockWait;

/// The lock file's name inside the state directory.
const LOCK_NAME: &str = "lock";

/// Wraps `e` with what was being done to which path, keeping its kind.
pub(super) fn context(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("state: cannot {what} {}: {e}", path.display()),
    )
}

/// Creates the state directory (and parents), mode 0700: it holds job args
/// and outputs, which may be secrets. An existing directory is left as is.
pub(super) fn create_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| context(e, "create directory", dir))
}

/// Makes renames and creations in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| context(e, "fsync directory", dir))
}

/// Takes the exclusive lock on `dir/lock`, held for as long as the returned
/// file is open, and writes this process's id into it for the next one's
/// error message.
///
/// `flock` locks belong to the open file, so the kernel drops the lock when
/// the process dies, even by `kill -9`: a stale lock file never blocks.
pub(super) fn lock_dir(dir: &Path) -> io::Result<File> {
    let path = dir.join(LOCK_NAME);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| context(e, "open lock file", &path))?;
    take_lock(&mut file, dir, &path)?;
    // Only a hint for humans: failing to write the pid is not an error. The
    // file was just opened, so the write lands at offset 0.
    let pid = format!("{}\n", std::process::id());
    let _ = file
        .set_len(0)
        .and_then(|()| file.write_all(pid.as_bytes()));
    Ok(file)
}

/// Takes the exclusive `flock` on `file`, waiting while another process
/// holds it (see [`crate::lock_wait`] for why and how long).
fn take_lock(file: &mut File, dir: &Path, path: &Path) -> io::Result<()> {
    let mut wait = LockWait::new();
    loop {
        match flock(&*file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(()),
            Err(Errno::WOULDBLOCK) => {
                let waiting = wait.again(|| {
                    log::warn!(
                        "state: {} is locked by another process; waiting up to {} s for it to let go",
                        dir.display(),
                        LockWait::LIMIT.as_secs()
                    )
                });
                if !waiting {
                    return Err(in_use(dir, file));
                }
            }
            Err(e) => return Err(context(e.into(), "lock", path)),
        }
    }
}

/// The error for a state directory another process holds.
fn in_use(dir: &Path, file: &mut File) -> io::Error {
    let mut holder = String::new();
    let _ = file.read_to_string(&mut holder);
    let holder = match holder.trim() {
        "" => String::new(),
        pid => format!(" (pid {pid})"),
    };
    io::Error::new(
        io::ErrorKind::ResourceBusy,
        format!(
            "state: {} is in use by another tickd{holder}: two daemons cannot share a state_dir",
            dir.display()
        ),
    )
}

/// A name next to `path` for a damaged copy: `<name>.corrupt-<unix-ms>`,
/// with a counter if that exists already.
fn corrupt_name(path: &Path) -> PathBuf {
    let ms = crate::time::unix_millis(&crate::time::now());
    let base = format!("{}.corrupt-{ms}", path.display());
    let mut candidate = PathBuf::from(&base);
    let mut n = 1;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    candidate
}

/// Renames `path` aside as damaged; returns the new path.
pub(super) fn rename_aside(path: &Path) -> io::Result<PathBuf> {
    let aside = corrupt_name(path);
    fs::rename(path, &aside).map_err(|e| context(e, "rename aside", path))?;
    Ok(aside)
}

/// Keeps a copy of `path` as damaged without moving it (a hard link), so
/// the journal stays in place until its replacement is renamed over it.
pub(super) fn link_aside(path: &Path) -> io::Result<PathBuf> {
    let aside = corrupt_name(path);
    fs::hard_link(path, &aside).map_err(|e| context(e, "keep a copy of", path))?;
    Ok(aside)
}
