//! docs/openapi.yaml against the code: the description is a valid OpenAPI
//! 3.1 document (openapi-spec-validator), and a real daemon's answers to
//! every described route validate against it, every described operation
//! answers, and every method not described is 405 with the described
//! `Allow` (scripts/openapi_check.py does the checking; scripts/test.sh
//! installs its Python packages). So the description cannot drift from the
//! code unnoticed.

use crate::util;

use std::process::Command;
use util::{config, Daemon};

const TOKEN: &str = "openapi-test-token";
const READ_TOKEN: &str = "openapi-read-token";

const JOBS: &str = r#"
[[tokens]]
name = "viewer"
token = "openapi-read-token"
role = "read"

[[jobs]]
name = "hello"
kind = "exec"
every = "1h"
command = ["sh", "-c", "echo hi; sleep 0.2"]
env = { SECRET = "s" }

[[jobs]]
name = "fail"
kind = "exec"
command = ["sh", "-c", "echo bad >&2; exit 3"]
retries = 1
retry_backoff = "1h"
"#;

fn script(args: &[&str]) -> (bool, String) {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("python3")
        .arg(format!("{root}/scripts/openapi_check.py"))
        .args(args)
        .env("OPENAPI_READ_TOKEN", READ_TOKEN)
        .output()
        .expect("python3 runs (scripts/test.sh installs what the check needs)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_description_is_valid_openapi_3_1() {
    let (ok, text) = script(&["spec"]);
    assert!(ok, "{text}");
    assert!(text.contains("valid OpenAPI 3.1"), "{text}");
}

#[test]
fn live_answers_match_the_description() {
    let extra = format!("auth_token = \"{TOKEN}\"\nallow_job_api = true");
    let d = Daemon::start(&config(&extra, JOBS));
    let addr = d.addr.to_string();
    let (ok, text) = script(&["live", &addr, TOKEN]);
    assert!(ok, "{text}");
    assert!(text.contains("0 problems"), "{text}");
}

/// The checker itself finds drift: a description that lacks a field the
/// daemon must send, or lists a route the daemon does not have, fails.
#[test]
fn a_drifted_description_is_caught() {
    let root = env!("CARGO_MANIFEST_DIR");
    let spec = std::fs::read_to_string(format!("{root}/docs/openapi.yaml")).expect("spec");
    let dir = tempfile::tempdir().expect("dir");
    let drifted = dir.path().join("drifted.yaml");
    let changed = spec
        .replace(
            "required: [run_id]",
            "required: [run_id, not_a_field_of_tickd]",
        )
        .replace("  /reload:\n", "  /not-a-route:\n    get:\n      responses:\n        \"200\": {description: x}\n  /reload:\n");
    assert_ne!(changed, spec, "the replacements matched");
    std::fs::write(&drifted, changed).expect("write");
    let extra = format!("auth_token = \"{TOKEN}\"\nallow_job_api = true");
    let d = Daemon::start(&config(&extra, JOBS));
    let addr = d.addr.to_string();
    let (ok, text) = script(&["live", &addr, TOKEN, drifted.to_str().expect("utf-8")]);
    assert!(!ok, "{text}");
    assert!(text.contains("not_a_field_of_tickd"), "{text}");
    assert!(text.contains("/not-a-route"), "{text}");
}
