//! Running as a less privileged user: the daemon's own drop
//! (`daemon.user` / `daemon.group`) and exec jobs' `user`.
//!
//! The daemon's drop happens in [`crate::run`] in this order, all before the
//! first thread is started:
//! 1. bind the listeners (ports below 1024 need root), take the pidfile and
//!    open the log file, as root;
//! 2. hand the state dir (and the log file) to the target user, so the
//!    journal can be written and SIGUSR1 can reopen the log afterwards;
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

use std::io;
use std::path::{Path, PathBuf};

use crate::config::DaemonConfig;
use crate::os_unsafe;

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
    rustix::process::geteuid().is_root()
}

/// Looks up a user by name, or by number when `name` is all digits.
pub fn lookup_user(name: &str) -> Result<Account, String> {
    let by_name = os_unsafe::user_by_name(name).map_err(|e| format!("user \"{name}\": {e}"))?;
    let found = match (by_name, name.parse::<u32>()) {
        (Some(p), _) => Some(p),
        (None, Ok(uid)) => {
            os_unsafe::user_by_uid(uid).map_err(|e| format!("user \"{name}\": {e}"))?
        }
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
    match os_unsafe::group_by_name(name).map_err(|e| format!("group \"{name}\": {e}"))? {
        Some(gid) => Ok(gid),
        None => name
            .parse::<u32>()
            .map_err(|_| format!("no such group \"{name}\"")),
    }
}

/// Decides whether to drop privileges, from `daemon.user` / `daemon.group`
/// and who we are. `Ok(None)`: stay as we are (after logging why, where an
/// operator should know). `Err`: an unknown user or group.
pub fn plan(daemon: &DaemonConfig) -> Result<Option<Account>, String> {
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
/// (created if missing) and its files, and the daemon's own files — the log
/// file, which it reopens on SIGUSR1, and the Unix socket, which it removes
/// at shutdown and whose mode (0600 by default) should mean "the daemon's
/// user", not root.
pub fn hand_over(account: &Account, state_dir: Option<&Path>, files: &[&Path]) {
    let owner = (
        Some(rustix::process::Uid::from_raw(account.uid)),
        Some(rustix::process::Gid::from_raw(account.gid)),
    );
    let chown = |path: &Path| {
        if let Err(e) = rustix::fs::chown(path, owner.0, owner.1) {
            log::warn!(
                "cannot give {} to user {}: {e}",
                path.display(),
                account.name
            );
        }
    };
    if let Some(dir) = state_dir {
        if let Err(e) = std::fs::create_dir_all(dir) {
            log::warn!("cannot create state_dir {}: {e}", dir.display());
        }
        chown(dir);
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                chown(&entry.path());
            }
        }
    }
    for file in files {
        chown(file);
    }
}

/// Drops to `account` for good: `setgroups([gid])`, `setgid`, `setuid`,
/// then checks that it worked and cannot be undone.
pub fn drop_to(account: &Account) -> io::Result<()> {
    os_unsafe::set_groups(&[account.gid])?;
    os_unsafe::set_gid(account.gid)?;
    os_unsafe::set_uid(account.uid)?;
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
    if account.uid != 0 && os_unsafe::set_uid(0).is_ok() {
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
