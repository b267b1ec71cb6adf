//! Helpers for tests of a detached tickd (`--daemonize`, the init script):
//! the daemon is not our child, so it is found through its pidfile and log
//! file, and a guard kills it by pid whatever happens to the test. A test
//! crate that uses this module also declares `mod util;`.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;

pub use crate::util::poll_until;

/// Kills the process `pid` (SIGKILL) when dropped, if it is still alive.
pub struct KillOnDrop(pub i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if alive(self.0) {
            if let Some(pid) = rustix::process::Pid::from_raw(self.0) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("State:"))
            .is_some_and(|l| !l.contains("Z (zombie)") && !l.contains("X (dead)"))
    })
}

/// Waits until `pid` has exited.
pub fn wait_gone(pid: i32) {
    poll_until(&format!("pid {pid} to exit"), || {
        (!alive(pid)).then_some(())
    });
}

/// The pid in a pidfile, once it holds one.
pub fn read_pid(path: &Path) -> i32 {
    poll_until(&format!("a pid in {}", path.display()), || {
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    })
}

/// Waits until the file at `path` has a line containing `needle`; returns it.
pub fn wait_for_line(path: &Path, needle: &str) -> String {
    poll_until(&format!("{needle:?} in {}", path.display()), || {
        let text = std::fs::read_to_string(path).ok()?;
        text.lines()
            .find(|l| l.contains(needle))
            .map(str::to_string)
    })
}

/// The address of the first `listening on ADDR` line in a log file.
pub fn listen_addr(log: &Path) -> SocketAddr {
    let line = wait_for_line(log, "listening on ");
    line.split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}

/// One JSON-RPC call on a fresh connection; returns `result`.
pub fn call(addr: SocketAddr, method: &str, params: Value) -> Value {
    call_authenticated(addr, None, method, params)
}

/// Like [`call`], after `auth` with `token` on the same connection, if
/// given.
pub fn call_authenticated(
    addr: SocketAddr,
    token: Option<&str>,
    method: &str,
    params: Value,
) -> Value {
    let mut client = crate::util::Client::connect(addr);
    if let Some(token) = token {
        client.ok("auth", json!({ "token": token }));
    }
    client.ok(method, params)
}

/// Every live process whose command line contains `needle`.
pub fn processes_with_arg(needle: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
                && alive(*pid)
        })
        .collect()
}

/// The `Uid:` line of `/proc/PID/status`: real, effective, saved, fs.
pub fn uids(pid: i32) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .expect("Uid line")
        .split_whitespace()
        .map(|n| n.parse().expect("uid"))
        .collect()
}

/// The `Groups:` line of `/proc/PID/status`: the supplementary groups.
pub fn groups(pid: i32) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .expect("Groups line")
        .split_whitespace()
        .map(|n| n.parse().expect("gid"))
        .collect()
}

/// Whether the tests run as root (CI does; privilege tests need it).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
