//! The directories a `file.prune` job may not prune without saying so.
//!
//! `path = "/"` with `recursive = true` deletes every old file on the
//! machine that tickd may delete; so do the other roots of the file system
//! hierarchy. A job naming one of [`SYSTEM_ROOTS`] is refused unless it
//! sets `allow_system_path = true`. The check is on the path as the job
//! will use it: made absolute against the directory tickd was started in,
//! with `.`, `..`, repeated and trailing slashes resolved as text; and,
//! when the path exists, also with symbolic links resolved (a link to `/`
//! is `/`). Directories below a root (`/var/log/myapp`) are not refused:
//! pruning those is what the job kind is for. `/tmp` and `/var/tmp` are not
//! in the list: deleting old files there is what they are for.

use std::path::{Component, Path, PathBuf};

/// Refused as a `file.prune` path unless `allow_system_path = true`: the
/// top-level directories of the Filesystem Hierarchy Standard (and the
/// usual extras) but `/tmp`, plus the system parts of `/usr` and `/var`.
pub(crate) const SYSTEM_ROOTS: [&str; 36] = [
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/lost+found",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/snap",
    "/srv",
    "/sys",
    "/usr",
    "/usr/bin",
    "/usr/include",
    "/usr/lib",
    "/usr/lib32",
    "/usr/lib64",
    "/usr/libexec",
    "/usr/local",
    "/usr/sbin",
    "/usr/share",
    "/usr/src",
    "/var",
    "/var/cache",
    "/var/lib",
    "/var/spool",
];

/// `path` with `.`, `..`, repeated and trailing separators resolved as
/// text (`..` at `/` stays at `/`). `path` must be absolute.
pub(crate) fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for part in path.components() {
        match part {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// The system root that absolute `path` is, if it is one: as written
/// (normalised), or once its links are resolved.
pub(crate) fn system_root(path: &Path) -> Option<&'static str> {
    let written = normalise(path);
    let real = std::fs::canonicalize(path).ok();
    SYSTEM_ROOTS.into_iter().find(|root| {
        let root = Path::new(root);
        written == root || real.as_deref() == Some(root)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_as_text() {
        let n = |p: &str| normalise(Path::new(p));
        assert_eq!(n("/"), Path::new("/"));
        assert_eq!(n("//"), Path::new("/"));
        assert_eq!(n("/usr/"), Path::new("/usr"));
        assert_eq!(n("//etc//"), Path::new("/etc"));
        assert_eq!(n("/var/log/../.."), Path::new("/"));
        assert_eq!(n("/../../.."), Path::new("/"));
        assert_eq!(n("/srv/./cache/"), Path::new("/srv/cache"));
    }

    #[test]
    fn roots_are_found_as_written_and_through_links() {
        assert_eq!(system_root(Path::new("/")), Some("/"));
        assert_eq!(system_root(Path::new("/home/")), Some("/home"));
        assert_eq!(system_root(Path::new("/var/log/../lib")), Some("/var/lib"));
        assert_eq!(system_root(Path::new("/var/log/myapp")), None);
        assert_eq!(system_root(Path::new("/tmp")), None);
        let dir = tempfile::tempdir().expect("dir");
        let link = dir.path().join("everything");
        std::os::unix::fs::symlink("/", &link).expect("symlink");
        assert_eq!(system_root(&link), Some("/"));
        assert_eq!(system_root(&dir.path().join("gone/..")), None);
    }
}
