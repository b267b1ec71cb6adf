//! File-system steps of the store: the state directory and who may write
//! it, its lock, opening state files safely, directory fsync, and keeping
//! damaged journals aside. Every error names the path and the step that
//! failed, because an operator reads them in a log.
//!
//! # Trust
//!
//! What the journal says is run (a queued `submit` run carries its whole
//! job definition), so the directory must be writable by the daemon's own
//! user and no one else, as sshd's `StrictModes` and postfix demand of
//! their files: [`check_dir`] refuses a state dir, or anything in it, that
//! another user owns or that is group- or world-writable. Every state file
//! is opened by [`open_regular`]: never through a symbolic link (a link to
//! `/etc/shadow` must not get a pid written over it) and never if it is not
//! a regular file (a FIFO would block the start for ever).

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
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

/// Refuses a state directory that someone other than this process's user
/// could have written: the directory or any entry in it owned by another
/// user, or group- or world-writable (a symbolic link's own mode means
/// nothing, so only its owner is checked). Fails with `PermissionDenied`,
/// naming every such path with its owner and mode.
///
/// Run after the privilege drop, so "this process's user" is the daemon's
/// final one.
pub(super) fn check_dir(dir: &Path) -> io::Result<()> {
    let euid = rustix::process::geteuid().as_raw();
    let meta = fs::metadata(dir).map_err(|e| context(e, "inspect", dir))?;
    let mut problems = Vec::new();
    if let Some(why) = untrusted(&meta, euid) {
        problems.push(format!("{} {why}", dir.display()));
    }
    // Another user's directory may not even be listable: it is refused
    // as it is.
    let entries = match fs::read_dir(dir) {
        Err(_) if !problems.is_empty() => None,
        listed => Some(listed.map_err(|e| context(e, "list", dir))?),
    };
    for entry in entries.into_iter().flatten() {
        let entry = entry.map_err(|e| context(e, "list", dir))?;
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(|e| context(e, "inspect", &path))?;
        if let Some(why) = untrusted(&meta, euid) {
            problems.push(format!("{} {why}", path.display()));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "state: refusing to use state_dir {}: {}; it and everything in it must belong to {} \
             (the user tickd runs as) and be writable by no one else, since what the journal \
             holds is run (chown/chmod them, or choose another state_dir)",
            dir.display(),
            problems.join("; "),
            user_name(euid)
        ),
    ))
}

/// Why an entry of the state dir cannot be trusted by user `euid`, if so.
fn untrusted(meta: &fs::Metadata, euid: u32) -> Option<String> {
    let mode = meta.mode() & 0o7777;
    if meta.uid() != euid {
        return Some(format!(
            "is owned by {}, mode {mode:04o}",
            user_name(meta.uid())
        ));
    }
    if !meta.file_type().is_symlink() && mode & 0o022 != 0 {
        let who = match mode & 0o022 {
            0o020 => "group-writable",
            0o002 => "world-writable",
            _ => "group- and world-writable",
        };
        return Some(format!("is {who} (mode {mode:04o})"));
    }
    None
}

/// "uid N (name)", or "uid N" for a uid with no account.
fn user_name(uid: u32) -> String {
    match crate::sys::ffi::user_by_uid(uid) {
        Ok(Some(user)) => format!("uid {uid} ({})", user.name),
        _ => format!("uid {uid}"),
    }
}

/// Opens the state file `path` with `options`, but never through a
/// symbolic link and only if it is a regular file.
///
/// The type is looked at (`lstat`) before opening, since opening a FIFO
/// blocks and opening a device can have effects, and again on the open
/// file (`O_NOFOLLOW | O_NONBLOCK`, so a swap in between can neither
/// redirect nor block it).
pub(super) fn open_regular(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    match fs::symlink_metadata(path) {
        Ok(meta) => regular(meta.file_type(), path)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(context(e, "inspect", path)),
    }
    let file = options
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => not_regular(path, "a symbolic link"),
            _ => context(e, "open", path),
        })?;
    let meta = file.metadata().map_err(|e| context(e, "inspect", path))?;
    regular(meta.file_type(), path)?;
    Ok(file)
}

/// Ok for a regular file; the error [`open_regular`] gives for anything else.
fn regular(kind: fs::FileType, path: &Path) -> io::Result<()> {
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a device"
    };
    Err(not_regular(path, what))
}

fn not_regular(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "state: {} is {what}, not a regular file: tickd does not open it (remove it, or choose another state_dir)",
            path.display()
        ),
    )
}

/// Reads the whole state file at `path` (see [`open_regular`]); None when
/// there is none.
pub(super) fn read_regular(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let mut file = match open_regular(path, OpenOptions::new().read(true)) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| context(e, "read", path))?;
    Ok(Some(bytes))
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
    let mut file = open_regular(
        &path,
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600),
    )?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    }

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    #[test]
    fn a_private_dir_of_our_own_passes() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("journal"), b"").expect("write");
        fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).expect("symlink");
        check_dir(dir.path()).expect("ours, writable by us only");
    }

    #[test]
    fn group_or_world_writable_dirs_and_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        chmod(dir.path(), 0o777);
        let err = check_dir(dir.path()).expect_err("world-writable dir");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        let msg = err.to_string();
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert!(
            msg.contains("group- and world-writable (mode 0777)"),
            "{msg}"
        );
        chmod(dir.path(), 0o700);
        let journal = dir.path().join("journal");
        fs::write(&journal, b"").expect("write");
        chmod(&journal, 0o620);
        let msg = check_dir(dir.path())
            .expect_err("group-writable file")
            .to_string();
        assert!(
            msg.contains(&format!(
                "{} is group-writable (mode 0620)",
                journal.display()
            )),
            "{msg}"
        );
    }

    #[test]
    fn dirs_and_files_of_another_user_are_refused() {
        if !is_root() {
            eprintln!("skipped: chown needs root");
            return;
        }
        let nobody = Some(rustix::process::Uid::from_raw(65534));
        let dir = tempfile::tempdir().expect("tempdir");
        chmod(dir.path(), 0o700);
        let lock = dir.path().join("lock");
        fs::write(&lock, b"").expect("write");
        rustix::fs::chown(&lock, nobody, None).expect("chown");
        let msg = check_dir(dir.path())
            .expect_err("a foreign file")
            .to_string();
        assert!(
            msg.contains(&format!("{} is owned by uid 65534", lock.display())),
            "{msg}"
        );
        assert!(
            msg.contains("mode 0644") || msg.contains("mode 06"),
            "{msg}"
        );
        fs::remove_file(&lock).expect("rm");
        rustix::fs::chown(dir.path(), nobody, None).expect("chown");
        let msg = check_dir(dir.path())
            .expect_err("a foreign dir")
            .to_string();
        assert!(
            msg.contains(&format!("{} is owned by uid 65534", dir.path().display())),
            "{msg}"
        );
        assert!(msg.contains("mode 0700"), "{msg}");
        assert!(msg.contains("must belong to uid 0 (root)"), "{msg}");
    }

    #[test]
    fn links_fifos_and_directories_are_not_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("target");
        fs::write(&target, b"keep").expect("write");
        let link = dir.path().join("lock");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let err = lock_dir(dir.path()).expect_err("a symlinked lock");
        assert!(err.to_string().contains("is a symbolic link"), "{err}");
        assert_eq!(fs::read(&target).expect("read"), b"keep");
        fs::remove_file(&link).expect("rm");

        let fifo = dir.path().join("journal");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
        // Returns at once: a FIFO is never opened for reading.
        let err = read_regular(&fifo).expect_err("a FIFO");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(
            err.to_string().contains("is a FIFO, not a regular file"),
            "{err}"
        );
        fs::remove_file(&fifo).expect("rm");
        fs::create_dir(&fifo).expect("mkdir");
        let err = read_regular(&fifo).expect_err("a directory");
        assert!(err.to_string().contains("is a directory"), "{err}");
        assert_eq!(
            read_regular(&dir.path().join("none")).expect("absent"),
            None
        );
    }
}
