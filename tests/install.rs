//! `scripts/install.sh` into a temp DESTDIR: what it installs, that a
//! second run gives the same tree, that it leaves the system alone, and
//! that the installed config and systemd unit are valid.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn install(destdir: &Path) -> Output {
    let out = Command::new("sh")
        .arg(repo().join("scripts/install.sh"))
        .env("DESTDIR", destdir)
        .env("PREFIX", "/opt/tickd")
        .env("BIN", env!("CARGO_BIN_EXE_tickd"))
        .output()
        .expect("run install.sh");
    assert!(out.status.success(), "install.sh failed: {out:?}");
    out
}

/// Every path under `root` with its mode and content (empty for dirs).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            let meta = entry.metadata().expect("metadata");
            let rel = path.strip_prefix(root).expect("under root").to_path_buf();
            let mode = meta.permissions().mode();
            if meta.is_dir() {
                todo.push(path);
                out.insert(rel, (mode, Vec::new()));
            } else {
                out.insert(rel, (mode, std::fs::read(&path).expect("read")));
            }
        }
    }
    out
}

#[test]
fn install_into_destdir_is_complete_idempotent_and_leaves_the_system_alone() {
    let dest = tempfile::tempdir().expect("temp dir");
    let passwd_before = std::fs::read("/etc/passwd").ok();

    let first = install(dest.path());
    let tree = snapshot(dest.path());
    let second = install(dest.path());
    assert_eq!(snapshot(dest.path()), tree, "a second run changed the tree");
    assert_eq!(std::fs::read("/etc/passwd").ok(), passwd_before);

    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains("not touching the system"), "{stdout}");
    assert!(stdout.contains("useradd --system"), "{stdout}");
    let again = String::from_utf8_lossy(&second.stdout);
    assert!(
        again.contains("kept existing /etc/tickd/tickd.toml"),
        "{again}"
    );

    let mode = |p: &str| tree.get(Path::new(p)).map(|(m, _)| m & 0o7777);
    assert_eq!(mode("opt/tickd/bin/tickd"), Some(0o755));
    assert_eq!(mode("etc/init.d/tickd"), Some(0o755));
    assert_eq!(mode("etc/tickd/tickd.toml"), Some(0o640));
    assert_eq!(mode("etc/systemd/system/tickd.service"), Some(0o644));
    assert_eq!(mode("etc/systemd/system/tickd.socket"), Some(0o644));
    assert_eq!(mode("etc/logrotate.d/tickd"), Some(0o644));
    assert_eq!(mode("var/lib/tickd"), Some(0o750));
    assert_eq!(mode("var/log/tickd"), Some(0o750));

    let text = |p: &str| std::fs::read_to_string(dest.path().join(p)).expect(p);
    let unit = text("etc/systemd/system/tickd.service");
    assert!(
        unit.contains("ExecStart=/opt/tickd/bin/tickd run"),
        "{unit}"
    );
    assert!(
        !unit.contains("/usr/local/bin"),
        "PREFIX applied everywhere"
    );
    assert!(text("etc/default/tickd").contains("DAEMON=/opt/tickd/bin/tickd"));

    // The installed config is valid.
    let check = Command::new(env!("CARGO_BIN_EXE_tickd"))
        .args(["check", "--config"])
        .arg(dest.path().join("etc/tickd/tickd.toml"))
        .output()
        .expect("tickd check");
    assert!(check.status.success(), "{check:?}");

    // An operator's edit to the config survives a re-install.
    let config = dest.path().join("etc/tickd/tickd.toml");
    std::fs::write(&config, "[daemon]\nworkers = 2\n").expect("edit");
    install(dest.path());
    assert_eq!(
        std::fs::read_to_string(&config).expect("config"),
        "[daemon]\nworkers = 2\n"
    );
}

#[test]
fn systemd_units_verify() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    };
    assert!(probe.status.success());
    let dir = tempfile::tempdir().expect("temp dir");
    let unit = std::fs::read_to_string(repo().join("scripts/tickd.service")).expect("unit");
    // verify checks that ExecStart's program exists: point it at the build.
    let unit = unit.replace("/usr/local/bin/tickd", env!("CARGO_BIN_EXE_tickd"));
    let service = dir.path().join("tickd.service");
    std::fs::write(&service, unit).expect("write");
    let socket = dir.path().join("tickd.socket");
    std::fs::copy(repo().join("scripts/tickd.socket"), &socket).expect("copy");
    // Both units, side by side: the service Requires= the socket, and the
    // socket activates the service of its name.
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&socket)
        .arg(&service)
        .output()
        .expect("systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify exits 0 on unknown keys too; its complaints name the unit.
    assert!(out.status.success(), "{out:?}");
    assert!(!stderr.contains("tickd.service"), "{stderr}");
    assert!(!stderr.contains("tickd.socket"), "{stderr}");
}
