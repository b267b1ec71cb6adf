//! The integration tests, as one test binary (faster to build and link than
//! one binary per file): each file in `tests/` is a module of it. They start
//! the real `tickd` binary on 127.0.0.1:0 and talk to it over real sockets
//! (see `util`).
//!
//! Run one file's tests with `cargo test --features failpoints --test
//! integration http::` (its module path as the filter). A file added to
//! `tests/` must be named below: `every_test_file_is_a_module` fails
//! otherwise, so no file of tests is ever left out unseen.

mod ops_util;
mod util;

mod activation;
mod api_jobs;
mod api_jobs_io;
mod auth;
mod batch;
mod catch_up;
mod check;
mod clock;
mod cluster;
mod cluster_takeover;
mod conn_lifecycle;
mod crash;
mod ctl;
mod ctl_daily;
mod failpoints;
mod flows;
mod group_commit;
mod herd;
mod hostile;
mod http;
mod http_conformance;
mod init_script;
mod install;
mod jobs;
mod kinds;
mod lifecycle;
mod limits;
mod limits_exec;
mod multi_schedule;
mod notify;
mod notify_sinks;
mod openapi;
mod ops;
mod output;
mod paging;
mod persistence;
mod protocol;
mod readme;
mod reload_load;
mod reload_slices;
mod roles;
mod schedule;
mod semantics;
mod shutdown_load;
mod soak;
mod state_dir;
mod status_page;
mod supervise;
mod tls;
mod unix_socket;
mod upgrade;

/// Every `tests/*.rs` file but this one is declared as a module above.
#[test]
fn every_test_file_is_a_module() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let me = std::fs::read_to_string(dir.join("main.rs")).expect("tests/main.rs");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("tests/") {
        let path = entry.expect("entry").path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "rs")
            && stem != "main"
            && !me.contains(&format!("\nmod {stem};\n"))
        {
            missing.push(stem.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "tests/main.rs does not declare: {missing:?}"
    );
}
