//! Finding a bare program name in the job's `PATH` before spawning.
//!
//! std spawns with `posix_spawn` (a `vfork`-style clone that shares the
//! daemon's memory instead of copying its page tables) only when it need
//! not search `PATH` itself: given a bare name such as `true` together with
//! an explicit `PATH` in the child's environment, which every job has, it
//! falls back to `fork` and tries `execve` in each directory in turn. Looking
//! the name up here, the way `execvp` would, and spawning the full path
//! (with the original name as `argv[0]`) keeps every run on the fast path.
//!
//! Only what the child would find for certain is resolved: the first
//! regular file with an execute bit in an absolute `PATH` directory. An
//! empty or relative entry (which `execvp` reads against the child's
//! working directory) ends the lookup, as does a name with a `/`; the
//! caller then spawns the name as given and std searches as before, so the
//! outcome, including "program not found", is the same either way. (A file
//! found here that the kernel then refuses, a script without a `#!` line or
//! one not executable for this user, is spawned again through `execvp`.)

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The full path `program` runs from under `path` (a `PATH` value), or
/// `None` to leave the search to the spawn.
pub(super) fn find_program(program: &str, path: &OsStr) -> Option<PathBuf> {
    if program.is_empty() || program.contains('/') {
        return None;
    }
    for dir in std::env::split_paths(path) {
        if !dir.is_absolute() {
            return None;
        }
        let candidate = dir.join(program);
        if is_executable_file(&candidate) {
            return Some(candidate);
        }
    }
    None
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn touch(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, "#!/bin/sh\n").expect("write");
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
        p
    }

    #[test]
    fn finds_the_first_executable_in_path_order() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        touch(a.path(), "tool", 0o644); // not executable: skipped, as execvp does
        let want = touch(b.path(), "tool", 0o755);
        touch(b.path(), "other", 0o755);
        let path = std::env::join_paths([a.path(), b.path()]).expect("path");
        assert_eq!(find_program("tool", &path), Some(want));
        assert_eq!(find_program("missing", &path), None);
    }

    #[test]
    fn leaves_paths_directories_and_relative_entries_to_the_spawn() {
        let a = tempfile::tempdir().expect("tempdir");
        touch(a.path(), "tool", 0o755);
        fs::create_dir(a.path().join("dir")).expect("mkdir");
        let path = a.path().as_os_str();
        assert_eq!(find_program("./tool", path), None);
        assert_eq!(find_program("", path), None);
        assert_eq!(
            find_program("dir", path),
            None,
            "a directory is not a program"
        );
        // A relative entry first: the child's cwd decides, so no guess.
        let rel = std::env::join_paths([Path::new("bin"), a.path()]).expect("path");
        assert_eq!(find_program("tool", &rel), None);
        let empty = std::env::join_paths([Path::new(""), a.path()]).expect("path");
        assert_eq!(find_program("tool", &empty), None);
    }
}
