//! `--pidfile`: the daemon's pid in a file, locked for the daemon's life.
//!
//! The lock (`flock`, exclusive) is what says "an instance is running", not
//! the file's existence: a file left behind by a crashed instance is not
//! locked (the kernel drops the lock with the last fd), so the next start
//! takes it over; a locked one makes the start fail with "already running
//! (pid N)". The lock is held through the fd kept open in [`Pidfile`].
//!
//! A lock can outlive its daemon for a moment (see [`crate::lock_wait`]), so
//! a locked file is retried for up to [`LockWait::LIMIT`] (as the state
//! dir's lock is) before the start gives up with "already running".
//!
//! The file is opened with `O_NOFOLLOW` and must be a regular file: tickd
//! takes it as root, in directories such as `/run` where a symbolic link
//! planted by someone else must not make it create or overwrite the link's
//! target.
//!
//! The file's content is replaced atomically: the pid is written to a
//! temporary file in the same directory, which is locked and then renamed
//! over the path, so a reader never sees an empty or half-written file. An
//! instance that opened the old file just before the rename finds, once it
//! gets that (now unlinked) file's lock, that the path no longer refers to
//! it, and starts over on the new file, which is locked by the winner.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;
use rustix::io::Errno;

use crate::lock_wait::LockWait;

/// Why the pidfile could not be taken.
#[derive(Debug)]
pub enum PidfileError {
    /// Another live instance holds the lock; its pid, when readable.
    Running(Option<u32>),
    /// The file could not be created, locked or written.
    Io(String),
}

impl std::fmt::Display for PidfileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PidfileError::Running(Some(pid)) => write!(f, "already running (pid {pid})"),
            PidfileError::Running(None) => write!(f, "already running (pid unknown)"),
            PidfileError::Io(message) => f.write_str(message),
        }
    }
}

/// A held pidfile; dropping it removes the file (clean exit).
#[derive(Debug)]
pub struct Pidfile {
    path: PathBuf,
    /// Open for the daemon's life: closing it would release the lock.
    file: File,
}

impl Pidfile {
    /// Takes the pidfile at `path` for this process, or says who holds it
    /// (after retrying a locked file for [`LockWait::LIMIT`]; see the module
    /// doc).
    pub fn acquire(path: &Path) -> Result<Pidfile, PidfileError> {
        Pidfile::acquire_within(path, LockWait::new(), || {
            log::warn!(
                "pidfile {}: locked; waiting up to {} s in case its holder is just exiting",
                path.display(),
                LockWait::LIMIT.as_secs()
            )
        })
    }

    /// [`Pidfile::acquire`] with the given retry budget; `on_busy` runs
    /// when a try first finds the file locked.
    fn acquire_within(
        path: &Path,
        mut wait: LockWait,
        mut on_busy: impl FnMut(),
    ) -> Result<Pidfile, PidfileError> {
        let io_err = |what: &str, e: io::Error| {
            PidfileError::Io(format!("pidfile {}: cannot {what}: {e}", path.display()))
        };
        // A few rounds at most: each retry means another instance replaced
        // the file between our open and our lock.
        let mut replaced = 0;
        while replaced < 8 {
            let current = open_existing_or_new(path)?;
            match rustix::fs::flock(&current, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(Errno::WOULDBLOCK) => {
                    if !wait.again(&mut on_busy) {
                        return Err(PidfileError::Running(pid_in(&current)));
                    }
                    continue;
                }
                Err(e) => return Err(io_err("lock", e.into())),
            }
            if !same_file(&current, path) {
                replaced += 1;
                continue;
            }
            if let Some(pid) = pid_in(&current) {
                log::info!(
                    "pidfile {}: taking over from pid {pid}, which is no longer running",
                    path.display()
                );
            }
            let file = write_locked(path).map_err(|e| io_err("write", e))?;
            // `current` closes here; the path now names `file`, locked by us.
            return Ok(Pidfile {
                path: path.to_path_buf(),
                file,
            });
        }
        Err(PidfileError::Io(format!(
            "pidfile {}: replaced repeatedly while taking it; is another instance starting?",
            path.display()
        )))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        // Only our own file: never one a newer instance has put in place.
        if !same_file(&self.file, &self.path) {
            return;
        }
        if let Err(e) = std::fs::remove_file(&self.path) {
            // Typically EACCES after a privilege drop. Harmless: the file is
            // not locked once we exit, so the next start takes it over.
            log::warn!(
                "cannot remove pidfile {}: {e}; the next start will take it over",
                self.path.display()
            );
        }
    }
}

/// Opens the pidfile at `path`, creating it if missing, but never through a
/// symbolic link (tickd runs as root here: a link planted to `/etc/shadow`
/// must not have that file created, truncated or locked) and only if it is
/// a regular file (`O_NONBLOCK`: a FIFO there must not block the start).
fn open_existing_or_new(path: &Path) -> Result<File, PidfileError> {
    let refused = |what: &str| {
        PidfileError::Io(format!(
            "pidfile {}: is {what}, not a regular file; refusing to use it (remove it, or choose another --pidfile)",
            path.display()
        ))
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        // The old content names the holder, for "already running".
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => refused("a symbolic link"),
            _ => PidfileError::Io(format!("pidfile {}: cannot open: {e}", path.display())),
        })?;
    match file.metadata() {
        Ok(meta) if meta.file_type().is_file() => Ok(file),
        Ok(_) => Err(refused("a FIFO, socket or device")),
        Err(e) => Err(PidfileError::Io(format!(
            "pidfile {}: cannot inspect: {e}",
            path.display()
        ))),
    }
}

/// The pid held in the open pidfile `file`, if any.
fn pid_in(mut file: &File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok().filter(|pid| *pid > 0)
}

/// Writes our pid to a locked temporary file and renames it over `path`.
fn write_locked(path: &Path) -> io::Result<File> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    let result = (|| {
        rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive)?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(file)
}

/// Whether `path` currently names the file open as `file`.
fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Whether this process will be able to take the pidfile at `path` once
/// its current holder is gone: the directory must be writable (the pid is
/// written to a temporary file there, renamed over the path), and so must
/// the file, if one is there. The new process of an in-place upgrade checks
/// this before the old one drains: a daemon that dropped privileges starts
/// it unprivileged, and a root-owned pidfile would stop it after the old
/// one had gone. The error says what to change.
pub fn check_takeover(path: &Path) -> Result<(), String> {
    use rustix::fs::{access, Access};
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let uid = rustix::process::getuid().as_raw();
    if let Err(e) = access(dir, Access::WRITE_OK) {
        return Err(format!(
            "pidfile {}: its directory is not writable by uid {uid} ({e}): this process could not take the pidfile once the old one exits; give the directory to the daemon's user",
            path.display()
        ));
    }
    match access(path, Access::WRITE_OK) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(format!(
            "pidfile {}: not writable by uid {uid} ({e}): this process could not take it once the old one exits",
            path.display()
        )),
    }
}

/// The pid in the file at `path`, if it holds one.
pub fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|pid| *pid > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn held_stale_and_removed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tickd.pid");
        // A stale file of a dead instance: not locked, so it is taken over.
        std::fs::write(&path, "999999\n").expect("write");
        let held = Pidfile::acquire(&path).expect("take over a stale pidfile");
        assert_eq!(read_pid(&path), Some(std::process::id()));
        // flock locks belong to the open file description, so a second
        // acquire in this same process is refused too.
        let no_wait = || Pidfile::acquire_within(&path, LockWait::within(Duration::ZERO), || {});
        match no_wait() {
            Err(PidfileError::Running(Some(pid))) => assert_eq!(pid, std::process::id()),
            other => panic!("expected already running, got {other:?}"),
        }
        let err = no_wait().unwrap_err().to_string();
        assert_eq!(err, format!("already running (pid {})", std::process::id()));
        drop(held);
        assert!(!path.exists(), "removed on drop");
        let names: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").collect();
        assert!(names.is_empty(), "no temporary file left: {names:?}");
    }

    #[test]
    fn a_lock_let_go_while_waiting_is_taken() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tickd.pid");
        std::fs::write(&path, "999999\n").expect("write");
        // Another open file description holds the lock, as a killed
        // daemon's forked child would until it execs.
        let holder = File::open(&path).expect("open");
        rustix::fs::flock(&holder, FlockOperation::NonBlockingLockExclusive).expect("lock");
        let mut holder = Some(holder);
        let mut busy = 0;
        let held =
            Pidfile::acquire_within(&path, LockWait::within(Duration::from_secs(60)), || {
                busy += 1;
                holder = None; // the child execs: the lock goes away
            })
            .expect("taken once the holder lets go");
        assert_eq!(busy, 1, "found locked once, then taken");
        assert_eq!(read_pid(&path), Some(std::process::id()));
        drop(held);

        // A holder that stays is reported once the wait is over.
        std::fs::write(&path, "4242\n").expect("write");
        let holder = File::open(&path).expect("open");
        rustix::fs::flock(&holder, FlockOperation::NonBlockingLockExclusive).expect("lock");
        let mut busy = 0;
        let err =
            Pidfile::acquire_within(&path, LockWait::within(Duration::from_millis(120)), || {
                busy += 1
            })
            .unwrap_err();
        assert!(matches!(err, PidfileError::Running(Some(4242))), "{err:?}");
        assert!(busy >= 1);
    }

    #[test]
    fn a_symlink_or_a_fifo_is_refused_and_its_target_left_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let target = dir.path().join("root-only");
        std::fs::write(&target, "secret\n").expect("write");
        let path = dir.path().join("tickd.pid");
        std::os::unix::fs::symlink(&target, &path).expect("symlink");
        let err = Pidfile::acquire(&path).unwrap_err().to_string();
        assert!(err.contains("is a symbolic link"), "{err}");
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "secret\n");
        // A dangling link: its target is not created either.
        let missing = dir.path().join("created-as-root");
        let dangling = dir.path().join("other.pid");
        std::os::unix::fs::symlink(&missing, &dangling).expect("symlink");
        let err = Pidfile::acquire(&dangling).unwrap_err().to_string();
        assert!(err.contains("is a symbolic link"), "{err}");
        assert!(!missing.exists());
        // A FIFO: refused at once, not waited on.
        let fifo = dir.path().join("fifo.pid");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
        let err = Pidfile::acquire(&fifo).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }

    #[test]
    fn unwritable_place_is_an_io_error() {
        let err = Pidfile::acquire(Path::new("/nonexistent-dir-tickd/x.pid")).unwrap_err();
        assert!(matches!(err, PidfileError::Io(_)), "{err:?}");
    }
}
