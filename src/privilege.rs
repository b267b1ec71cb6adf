//! Running as a less privileged user: the daemon's own drop
//! (`daemon.user` / `daemon.group`) and exec jobs' `user`.
//!
//! The daemon's drop happens in [`crate::run`] in this order, all before the
//! first thread is started:
//! 1. bind the listeners (ports below 1024 need root), take the pidfile and
//!    open the log file, as root;
//! 2. hand the state dir, the log file and the Unix socket to the target
//!    user, so the journal can be written, SIGUSR1 can reopen the log and
//!    the socket can be removed afterwards — without following links the
//!    target user could have planted (see [`hand_over`]);
//! 3. `setgroups([gid])`, `setgid(gid)`, `setuid(uid)` — in that order,
//!    since after `setuid` the process may no longer change its groups;
//! 4. verify: real and effective ids are the target ones, and `setuid(0)`
//!    now fails. A drop that cannot be verified stops the daemon.
//!
//! Decisions, documented in `docs/deployment.md`:
//! - started as root without `daemon.user`: a warning, and tickd runs on as
//!   root;
//! - started as another user with `daemon.user` set: a warning and the key
//!   is ignored (like nginx's `user`), unless it names that very user, so a
//!   production config can be tried unprivileged;
//! - `daemon.group` without `daemon.user`: a config warning, ignored;
//! - an exec job's `user` works only while tickd runs as root (so not
//!   together with `daemon.user`); otherwise each run fails with a message
//!   saying why, and loading the config warns.

use std::ffi::CStr;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};

use crate::config::StartSettings;
use crate::sys::ffi;

/// A user to run as: ids plus what a child's environment needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The user name (`USER`, `LOGNAME`).
    pub name: String,
    /// The uid.
    pub uid: u32,
    /// The primary gid, or `daemon.group`'s.
    pub gid: u32,
    /// The home directory (`HOME`).
    pub home: PathBuf,
}

/// Whether tickd runs with root's effective uid.
pub fn is_root() -> bool {
    crate::sys::is_root()
}

/// Looks up a user by name, or by number when `name` is all digits.
pub fn lookup_user(name: &str) -> Result<Account, String> {
    let by_name = ffi::user_by_name(name).map_err(|e| format!("user \"{name}\": {e}"))?;
    let found = match (by_name, name.parse::<u32>()) {
        (Some(p), _) => Some(p),
        (None, Ok(uid)) => ffi::user_by_uid(uid).map_err(|e| format!("user \"{name}\": {e}"))?,
        (None, Err(_)) => None,
    };
    let p = found.ok_or_else(|| format!("no such user \"{name}\""))?;
    Ok(Account {
        name: p.name,
        uid: p.uid,
        gid: p.gid,
        home: p.home,
    })
}

/// Looks up a group by name, or takes it as a gid when all digits.
pub fn lookup_group(name: &str) -> Result<u32, String> {
    match ffi::group_by_name(name).map_err(|e| format!("group \"{name}\": {e}"))? {
        Some(gid) => Ok(gid),
        None => name
            .parse::<u32>()
            .map_err(|_| format!("no such group \"{name}\"")),
    }
}

/// Decides whether to drop privileges, from `daemon.user` / `daemon.group`
/// and who we are. `Ok(None)`: stay as we are (after logging why, where an
/// operator should know). `Err`: an unknown user or group.
pub fn plan(daemon: &StartSettings) -> Result<Option<Account>, String> {
    let root = is_root();
    let Some(user) = &daemon.user else {
        if root {
            log::warn!(
                "running as root: set daemon.user so that tickd drops its privileges after binding"
            );
        }
        return Ok(None);
    };
    let mut account = lookup_user(user).map_err(|e| format!("daemon.user: {e}"))?;
    if let Some(group) = &daemon.group {
        account.gid = lookup_group(group).map_err(|e| format!("daemon.group: {e}"))?;
    }
    if !root {
        let uid = rustix::process::getuid().as_raw();
        if uid != account.uid {
            log::warn!(
                "daemon.user = \"{user}\" ignored: tickd is not running as root (uid {uid}), so it cannot change user"
            );
        }
        return Ok(None);
    }
    Ok(Some(account))
}

/// Gives the target user what it must write after the drop: the state dir
/// (created if missing) and tickd's files in it, and the daemon's own
/// files — the log file, which it reopens on SIGUSR1, and the Unix socket,
/// which it removes at shutdown and whose mode (0600 by default) should
/// mean "the daemon's user", not root.
///
/// This runs as root on places the target user can write to, so nothing
/// here follows a symbolic link or touches a file that may be someone
/// else's (a link planted to `/etc/shadow` must stay root's):
/// - the state dir is created 0700 if missing, opened with `O_NOFOLLOW`
///   and changed through that fd, and only if root or the target user owns
///   it;
///   in it only regular files with a single link that root owns are handed
///   over (tickd's journal, snapshot and lock), each through an `O_PATH`
///   fd opened without following links; anything else is left alone with a
///   warning;
/// - the log file is changed through the fd tickd writes to, which
///   [`crate::logging`] opened with `O_NOFOLLOW` as a regular file;
/// - the socket is changed only if the path is still a socket, and without
///   following a link (`lchown`).
pub fn hand_over(account: &Account, state_dir: Option<&Path>, socket: Option<&Path>) {
    let uid = Uid::from_raw(account.uid);
    let gid = Gid::from_raw(account.gid);
    let name = &account.name;
    if let Some(dir) = state_dir {
        if let Err(e) = hand_over_state_dir(dir, uid, gid) {
            log::warn!(
                "cannot give state_dir {} to user {name}: {e}",
                dir.display()
            );
        }
    }
    if let Err(e) = crate::logging::hand_over_log_file(uid, gid) {
        log::warn!("cannot give the log file to user {name}: {e}");
    }
    if let Some(path) = socket {
        if let Err(e) = hand_over_socket(path, uid, gid) {
            log::warn!("cannot give socket {} to user {name}: {e}", path.display());
        }
    }
}

/// The state dir itself (created 0700 if missing) and root's regular
/// files in it. A directory another user owns is left alone: the store
/// then refuses it (see `crate::persist`), since that user may have
/// written its journal.
fn hand_over_state_dir(dir: &Path, uid: Uid, gid: Gid) -> io::Result<()> {
    if let Some(parent) = dir.parent() {
        // Parents as any `mkdir -p`: the daemon's user must get through.
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::open(dir, flags, Mode::empty()).map_err(|e| match e {
        Errno::LOOP | Errno::NOTDIR => {
            io::Error::other("it is a symbolic link or not a directory; left alone")
        }
        e => e.into(),
    })?;
    let owner = rustix::fs::fstat(&fd)?.st_uid;
    if owner != 0 && owner != uid.as_raw() {
        return Err(io::Error::other(format!(
            "it belongs to uid {owner}, neither root nor the daemon's user; left alone"
        )));
    }
    rustix::fs::fchown(&fd, Some(uid), Some(gid))?;
    for entry in Dir::read_from(&fd)? {
        let entry = entry?;
        let file = entry.file_name();
        if file == c"." || file == c".." {
            continue;
        }
        if let Err(e) = hand_over_entry(&fd, file, uid, gid) {
            log::warn!(
                "state_dir {}: {} not handed over: {e}",
                dir.display(),
                file.to_string_lossy()
            );
        }
    }
    Ok(())
}

/// One entry of the state dir: given away only if it is a regular file
/// with one link that root owns. The checks and the change go through one
/// `O_PATH` fd, so the entry cannot be swapped for a link in between.
fn hand_over_entry(dir: &OwnedFd, file: &CStr, uid: Uid, gid: Gid) -> io::Result<()> {
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, file, flags, Mode::empty())?;
    let stat = rustix::fs::fstat(&fd)?;
    if stat.st_uid == uid.as_raw() {
        return Ok(());
    }
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(io::Error::other("not a regular file (tickd creates none)"));
    }
    if stat.st_nlink != 1 || stat.st_uid != 0 {
        return Err(io::Error::other(format!(
            "owned by uid {} with {} links: not a file tickd created",
            stat.st_uid, stat.st_nlink
        )));
    }
    rustix::fs::chownat(&fd, c"", Some(uid), Some(gid), AtFlags::EMPTY_PATH)?;
    Ok(())
}

/// The Unix socket tickd bound, if the path still is a socket.
fn hand_over_socket(path: &Path, uid: Uid, gid: Gid) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.file_type().is_socket() {
        return Err(io::Error::other("no longer a socket; left alone"));
    }
    rustix::fs::chownat(
        rustix::fs::CWD,
        path,
        Some(uid),
        Some(gid),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}

/// Drops to `account` for good: `setgroups([gid])`, `setgid`, `setuid`,
/// then checks that it worked and cannot be undone.
pub fn drop_to(account: &Account) -> io::Result<()> {
    ffi::set_groups(&[account.gid])?;
    ffi::set_gid(account.gid)?;
    ffi::set_uid(account.uid)?;
    let ids = (
        rustix::process::getuid().as_raw(),
        rustix::process::geteuid().as_raw(),
        rustix::process::getgid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    if ids != (account.uid, account.uid, account.gid, account.gid) {
        return Err(io::Error::other(format!(
            "ids after the drop are uid {}/{} gid {}/{}, not {}/{}",
            ids.0, ids.1, ids.2, ids.3, account.uid, account.gid
        )));
    }
    if account.uid != 0 && ffi::set_uid(0).is_ok() {
        return Err(io::Error::other("setuid(0) still works after the drop"));
    }
    Ok(())
}

/// The account an exec job's `user` runs as, or why it cannot.
pub fn exec_account(user: &str) -> Result<Account, String> {
    if !is_root() {
        let uid = rustix::process::geteuid().as_raw();
        return Err(format!(
            "user = \"{user}\" needs tickd to run as root, but it runs as uid {uid}"
        ));
    }
    lookup_user(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let root = lookup_user("root").expect("root");
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(lookup_user("0").expect("uid 0").name, "root");
        let err = lookup_user("no-such-user-tickd").unwrap_err();
        assert!(err.contains("no such user"), "{err}");
        assert_eq!(lookup_group("root"), Ok(0));
        assert_eq!(lookup_group("4242"), Ok(4242));
        assert!(lookup_group("no-such-group-tickd").is_err());
    }

    #[test]
    fn exec_account_needs_root() {
        match exec_account("root") {
            Ok(a) => assert!(is_root() && a.uid == 0),
            Err(e) => assert!(
                !is_root() && e.contains("needs tickd to run as root"),
                "{e}"
            ),
        }
    }
}
