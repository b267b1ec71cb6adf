//! Tests of stage one, reading the file: unknown keys with suggestions,
//! wrongly typed values, misplaced keys, every problem of a file in one
//! pass, and control characters shown escaped.

use super::tests::{assert_errors, errors, ok};

#[test]
fn toml_syntax_and_type_errors_name_line_and_key() {
    assert_errors(
        "[daemon]\nworkers = 4\nwokers = 5\n",
        &["conf/t.toml:3: daemon.wokers: unknown key; did you mean `workers`?"],
    );
    assert_errors(
        "[daemon]\nworkers = \"four\"\n",
        &["conf/t.toml:2: daemon.workers: expected an integer, found a string (\"four\")"],
    );
    assert_errors(
        "[[jobs]]\nname = \"a\"\ncommand = [\"x\"]\n[[jobs]]\nname = \"b\"\ncomand = [\"x\"]\n",
        &["conf/t.toml:6: jobs[1].comand (job \"b\"): unknown key; did you mean `command`?"],
    );
    assert_errors(
        "[daemon]\nxyzzy = 1\n",
        &["conf/t.toml:2: daemon.xyzzy: unknown key; expected one of: listen, unix_socket, workers, min_workers, queue_capacity, max_connections, max_line_bytes, state_dir, history, log_level, shutdown_grace, auth_token, auth_token_file, allow_submit, allow_job_api, file_threads, unix_socket_mode, max_output_bytes, idle_timeout, log_file, syslog, user, group, metrics_per_job, tls_cert, tls_key, http_allowed_hosts, output_dir, output_max_bytes_per_run, output_dir_max_bytes"],
    );
    // A syntax error stops the reading: nothing after it can be trusted.
    let got = errors("[daemon]\nworkers = \n");
    assert_eq!(got.len(), 1);
    assert!(
        got[0].starts_with("conf/t.toml:2: daemon.workers: "),
        "{got:?}"
    );
}

#[test]
fn one_pass_reports_every_problem_of_every_kind() {
    // Seven mistakes of the kinds that used to take three passes (serde
    // stopped at the first type error or unknown key).
    assert_errors(
        r#"workers = 2

[daemon]
wokers = 4
history = "lots"

[[jobs]]
name = "x"
comand = ["true"]
every = 5
timeout = "soon"

[[jobs]]
name = "y"
cron = "0 0 * * MAR"
tz = "America/NewYork"
command = "true"
retries = -1
"#,
        &[
            "conf/t.toml:1: workers: unknown top-level key; `workers` belongs in the [daemon] table",
            "conf/t.toml:4: daemon.wokers: unknown key; did you mean `workers`?",
            "conf/t.toml:5: daemon.history: expected an integer, found a string (\"lots\")",
            "conf/t.toml:9: jobs[0].comand (job \"x\"): unknown key; did you mean `command`?",
            "conf/t.toml:10: jobs[0].every (job \"x\"): expected a string or an array of strings, found an integer (5)",
            "conf/t.toml:11: jobs[0].timeout (job \"x\"): invalid duration \"soon\": expected number at 0 (examples: \"250ms\", \"5s\", \"1m 30s\")",
            "conf/t.toml:15: jobs[1].cron (job \"y\"): invalid cron expression \"0 0 * * MAR\": day-of-week field \"MAR\": MAR is a month, not a day of the week; days are 0-7 (0 and 7 are Sunday) or SUN-SAT",
            "conf/t.toml:16: jobs[1].tz (job \"y\"): \"America/NewYork\" is not a known time zone name; did you mean America/New_York?",
            "conf/t.toml:17: jobs[1].command (job \"y\"): expected an array of strings, found a string (\"true\")",
            "conf/t.toml:18: jobs[1].retries (job \"y\"): -1 is out of range; expected 0..=100",
        ],
    );
}

#[test]
fn wrong_types_inside_arrays_and_tables_and_misplaced_keys_are_named() {
    assert_errors(
        r#"[daemon]
command = ["x"]

[[jobs]]
name = "a"
command = ["ls", 3]
env = { A = "1", B = 2 }
enabled = "yes"
workers = 2
"#,
        &[
            "conf/t.toml:2: daemon.command: unknown key; `command` is a job key, so it belongs in a [[jobs]] table",
            "conf/t.toml:6: jobs[0].command (job \"a\"): expected an array of strings, but element 2 is an integer (3)",
            "conf/t.toml:7: jobs[0].env (job \"a\"): expected a table of strings, but \"B\" is an integer (2)",
            "conf/t.toml:8: jobs[0].enabled (job \"a\"): expected true or false, found a string (\"yes\")",
            "conf/t.toml:9: jobs[0].workers (job \"a\"): unknown key; `workers` is a daemon key, so it belongs in [daemon]",
        ],
    );
    assert_errors(
        "daemon = 3\njobs = 4\n",
        &[
            "conf/t.toml:1: daemon: expected a table ([daemon]), found an integer (3)",
            "conf/t.toml:2: jobs: expected an array of tables (one [[jobs]] table per job), found an integer (4)",
        ],
    );
    // `jobs = [{...}]` is as good as [[jobs]]; `[jobs]` is not.
    let config = ok("jobs = [{ name = \"i\", command = [\"true\"] }]\n");
    assert_eq!(config.jobs[0].name, "i");
    let got = errors("[jobs]\nname = \"x\"\n");
    assert_eq!(
        got,
        ["conf/t.toml:1: jobs: expected an array of tables (one [[jobs]] table per job), found a table"]
    );
}

#[test]
fn check_escapes_control_characters_in_names_and_values() {
    let got = errors(
        "[[jobs]]\nname = \"evil\\u001b[2Jname\"\ncommand = [\"true\"]\novelap = \"skip\"\noverlap = \"\\u0007\"\n",
    );
    for line in &got {
        assert!(!line.chars().any(char::is_control), "{line:?}");
    }
    assert_eq!(
        got,
        [
            "conf/t.toml:2: jobs[0].name: \"evil\\u{1b}[2Jname\" is not a valid job name; use 1 to 64 characters of A-Z a-z 0-9 _ . -",
            "conf/t.toml:4: jobs[0].ovelap (job \"evil\\u{1b}[2Jname\"): unknown key; did you mean `overlap`?",
            "conf/t.toml:5: jobs[0].overlap (job \"evil\\u{1b}[2Jname\"): \"\\u{7}\" is not one of: skip, queue, allow",
        ]
    );
}
