//! Tests of the whole loader on byte-literal configs: defaults, every
//! accepted key, and the exact `PATH:LINE: KEY: message` lines of errors.

use std::path::Path;
use std::time::Duration;

use super::*;

const PATH: &str = "conf/t.toml";

pub(super) fn ok(text: &str) -> Config {
    match parse(text, Path::new(PATH)) {
        Ok(config) => config,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

pub(super) fn errors(text: &str) -> Vec<String> {
    match parse(text, Path::new(PATH)) {
        Ok(config) => panic!("expected errors, got {config:?}"),
        Err(e) => e.messages().to_vec(),
    }
}

/// Asserts that the errors are exactly `want` (each a prefix-free full line).
pub(super) fn assert_errors(text: &str, want: &[&str]) {
    let got = errors(text);
    assert_eq!(got, want, "\ngot:\n{}", got.join("\n"));
}

#[test]
fn the_example_config_loads_without_warnings() {
    let text = include_str!("../../conf/tickd.toml");
    let config = ok(text);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(
        config.daemon.start.listen.as_deref(),
        Some("127.0.0.1:7070")
    );
    assert_eq!(config.daemon.start.workers, 4);
    let names: Vec<&str> = config.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "heartbeat",
            "disk-usage",
            "echo-args",
            "http-check",
            "sql-tick",
            "prune-demo-logs",
            "backup",
            "flaky"
        ]
    );
    assert_eq!(
        config.jobs[0].schedule.as_ref().map(|s| s.text()),
        Some("5s")
    );
    assert!(matches!(config.jobs[1].schedule, Some(Schedule::Cron(_))));
    assert_eq!(config.jobs[2].schedule, None);
}

#[test]
fn empty_file_gives_the_defaults() {
    let config = ok("");
    let (s, l) = (&config.daemon.start, &config.daemon.live);
    assert_eq!(s.listen.as_deref(), Some("127.0.0.1:7070"));
    assert_eq!(
        (
            s.workers,
            l.min_workers,
            s.queue_capacity,
            l.max_connections
        ),
        (4, 1, 1024, 1024)
    );
    assert_eq!((l.max_line_bytes, l.history), (65536, 50));
    assert_eq!(l.log_level, "info");
    assert_eq!(l.shutdown_grace, Duration::from_secs(10));
    assert_eq!(l.idle_timeout, Some(Duration::from_secs(300)));
    assert_eq!((s.file_threads, s.unix_socket_mode), (2, 0o600));
    assert_eq!(l.max_output_bytes, 1 << 20);
    assert!(!l.allow_submit && !s.syslog);
    assert!(s.unix_socket.is_none() && s.state_dir.is_none() && s.user.is_none());
    assert!(config.jobs.is_empty() && config.warnings.is_empty());
}

#[test]
fn every_contract_key_is_accepted_at_its_default_without_warnings() {
    let config = ok(r#"
[daemon]
listen = ""
unix_socket = ""
workers = 2
min_workers = 0
queue_capacity = 8
max_connections = 16
max_line_bytes = 1024
state_dir = ""
history = 0
log_level = "debug"
shutdown_grace = "1m 30s"
auth_token = ""
auth_token_file = ""
allow_submit = false
file_threads = 2
unix_socket_mode = "0600"
max_output_bytes = 4096
idle_timeout = "0s"
log_file = ""
syslog = false
user = ""
group = ""

[[jobs]]
name = "a.b-c_1"
kind = "exec"
cron = "0 */5 * * * *"
command = ["true"]
env = { GREETING = "hi" }
cwd = "/tmp"
timeout = "250ms"
overlap = "queue"
retries = 0
retry_backoff = "1s"
jitter = "0s"
on_failure = ""
catch_up = "none"
catch_up_limit = 10
enabled = false
"#);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let d = &config.daemon;
    assert_eq!(d.start.listen, None);
    assert_eq!(d.live.idle_timeout, None);
    assert_eq!(d.live.shutdown_grace, Duration::from_secs(90));
    let job = &config.jobs[0];
    assert_eq!(job.overlap, Overlap::Queue);
    assert!(!job.enabled);
    assert_eq!(job.timeout, Some(Duration::from_millis(250)));
    assert_eq!(job.kind.name(), "exec");
    let JobKind::Exec(spec) = &*job.kind else {
        panic!("exec")
    };
    assert_eq!(spec.env.get("GREETING").map(String::as_str), Some("hi"));
    assert_eq!(spec.cwd.as_deref(), Some(Path::new("/tmp")));
}

#[test]
fn ops_keys_are_built_and_a_lone_group_warns() {
    let config = ok(r#"
[daemon]
state_dir = "/var/lib/tickd"
syslog = true
group = "adm"

[[jobs]]
name = "x"
every = "1s"
command = ["true"]
retries = 2
catch_up = "all"
"#);
    assert_eq!(
        config.warnings,
        ["conf/t.toml:5: daemon.group: ignored without daemon.user (the group is only used for the privilege drop)"]
    );
    assert_eq!(config.jobs[0].retries, 2);
}

#[test]
fn all_semantic_errors_are_reported_with_line_and_key() {
    assert_errors(
        r#"[daemon]
listen = "nowhere"
workers = 0
min_workers = 9
max_line_bytes = 10
log_level = "loud"
shutdown_grace = "soon"
unix_socket_mode = "0999"

[[jobs]]
name = "bad name"
every = "5s"
cron = "* * * * *"
command = []

[[jobs]]
name = "t"
every = "0s"
command = ["true"]
env = { "A=B" = "x" }
overlap = "sometimes"
timeout = "0s"
url = "http://x"
"#,
        &[
            "conf/t.toml:2: daemon.listen: invalid listen address \"nowhere\"; expected HOST:PORT with an IP address or localhost, e.g. \"127.0.0.1:7070\", or \"\" to disable",
            "conf/t.toml:3: daemon.workers: 0 is out of range; expected 1..=1024",
            "conf/t.toml:4: daemon.min_workers: 9 is more than workers (4); expected 0..=4",
            "conf/t.toml:5: daemon.max_line_bytes: 10 is out of range; expected 64..=67108864",
            "conf/t.toml:6: daemon.log_level: \"loud\" is not one of: off, error, warn, info, debug, trace",
            "conf/t.toml:7: daemon.shutdown_grace: invalid duration \"soon\": expected number at 0 (examples: \"250ms\", \"5s\", \"1m 30s\")",
            "conf/t.toml:8: daemon.unix_socket_mode: \"0999\" is not a file mode; expected 3 or 4 octal digits such as \"0600\"",
            "conf/t.toml:11: jobs[0].name: \"bad name\" is not a valid job name; use 1 to 64 characters of A-Z a-z 0-9 _ . -",
            "conf/t.toml:13: jobs[0].cron (job \"bad name\"): set only one of every and cron (or neither, for a manual-only job)",
            "conf/t.toml:14: jobs[0].command (job \"bad name\"): must name a program: a non-empty array like [\"sh\", \"-c\", \"...\"]",
            "conf/t.toml:18: jobs[1].every (job \"t\"): interval \"0s\" is too short: the minimum is 100ms",
            "conf/t.toml:20: jobs[1].env (job \"t\"): invalid variable \"A=B\": names must be non-empty without '=' or NUL, values without NUL",
            "conf/t.toml:21: jobs[1].overlap (job \"t\"): \"sometimes\" is not one of: skip, queue, allow",
            "conf/t.toml:22: jobs[1].timeout (job \"t\"): must be greater than zero",
            "conf/t.toml:23: jobs[1].url (job \"t\"): only applies to kind \"http\", and this job's kind is \"exec\"",
        ],
    );
}

#[test]
fn bad_cron_and_missing_keys() {
    assert_errors(
        "[[jobs]]\nname = \"c\"\ncron = \"61 * * * *\"\ncommand = [\"true\"]\n\n[[jobs]]\nevery = \"1s\"\n",
        &[
            "conf/t.toml:3: jobs[0].cron (job \"c\"): invalid cron expression \"61 * * * *\": minute field \"61\": 61 is out of range: the minute field takes 0-59",
            "conf/t.toml:6: jobs[1].name: missing; every job needs a name",
            "conf/t.toml:6: jobs[1].command: missing; a job of kind \"exec\" needs it",
        ],
    );
}

#[test]
fn names_must_be_unique_and_failure_targets_exist_without_cycles() {
    assert_errors(
        r#"
[[jobs]]
name = "a"
command = ["true"]
on_failure = "b"

[[jobs]]
name = "b"
command = ["true"]
on_failure = "a"

[[jobs]]
name = "a"
command = ["true"]
on_failure = "ghost"

[[jobs]]
name = "self"
command = ["true"]
on_failure = "self"
"#,
        &[
            "conf/t.toml:5: jobs[0].on_failure (job \"a\"): forms a cycle: a -> b -> a",
            "conf/t.toml:13: jobs[2].name (job \"a\"): duplicate job name; jobs[0] on line 3 already uses \"a\"",
            "conf/t.toml:15: jobs[2].on_failure (job \"a\"): names job \"ghost\", which does not exist",
            "conf/t.toml:20: jobs[3].on_failure (job \"self\"): forms a cycle: self -> self",
        ],
    );
}

#[test]
fn on_success_targets_exist_and_cycles_through_both_keys_are_named() {
    assert_errors(
        r#"
[[jobs]]
name = "backup"
command = ["true"]
on_success = "verify"

[[jobs]]
name = "verify"
command = ["true"]
on_success = "upload"
on_failure = "alert"

[[jobs]]
name = "upload"
command = ["true"]
on_failure = "backup"

[[jobs]]
name = "alert"
command = ["true"]
on_success = "ghost"
"#,
        &[
            "conf/t.toml:5: jobs[0].on_success (job \"backup\"): forms a cycle: backup -> verify -> upload -> backup",
            "conf/t.toml:21: jobs[3].on_success (job \"alert\"): names job \"ghost\", which does not exist",
        ],
    );
    // A chain and a diamond without a cycle are fine.
    ok(r#"
[[jobs]]
name = "a"
command = ["true"]
on_success = "b"
on_failure = "c"

[[jobs]]
name = "b"
command = ["true"]
on_success = "c"

[[jobs]]
name = "c"
command = ["true"]
"#);
}

#[test]
fn other_kinds_are_validated_with_their_own_keys() {
    assert_errors(
        r#"
[[jobs]]
name = "ping"
kind = "http"
url = "https://example.com/health"
method = "post"
expect_status = 204

[[jobs]]
name = "vacuum"
kind = "sql"
database = "/tmp/x.db"
sql = "VACUUM"

[[jobs]]
name = "prune"
kind = "file.prune"
path = "/tmp/logs"
pattern = "*.log"
older_than = "7days"
recursive = true

[[jobs]]
name = "bad"
kind = "http"
url = "ftp://x"
command = ["true"]

[[jobs]]
name = "odd"
kind = "ftp"
"#,
        &[
            "conf/t.toml:26: jobs[3].url (job \"bad\"): \"ftp://x\" is not an http:// or https:// URL with a host",
            "conf/t.toml:27: jobs[3].command (job \"bad\"): only applies to kind \"exec\", and this job's kind is \"http\"",
            "conf/t.toml:31: jobs[4].kind (job \"odd\"): unknown kind \"ftp\"; expected one of: exec, http, sql, file.prune",
        ],
    );
}

#[test]
fn job_defs_compare_for_reload_diffs() {
    let a = ok("[[jobs]]\nname = \"x\"\nevery = \"5s\"\ncommand = [\"true\"]\n");
    let b = ok("# moved\n\n[[jobs]]\nname = \"x\"\nevery = \"5s\"\ncommand = [\"true\"]\n");
    let c = ok("[[jobs]]\nname = \"x\"\nevery = \"6s\"\ncommand = [\"true\"]\n");
    assert_eq!(a.jobs, b.jobs);
    assert_ne!(a.jobs, c.jobs);
    assert!(a.job("x").is_some() && a.job("y").is_none());
}

#[test]
fn load_names_the_file_when_it_cannot_be_read() {
    let err = load(Path::new("/nonexistent/tickd.toml")).expect_err("missing file");
    let text = err.to_string();
    assert!(
        text.starts_with("/nonexistent/tickd.toml: cannot read config: "),
        "{text}"
    );
}

#[test]
fn check_report_summarises() {
    let dir = std::env::temp_dir().join(format!("tickd-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("t.toml");
    std::fs::write(
        &file,
        "[daemon]\ngroup = \"adm\"\n[[jobs]]\nname = \"x\"\nevery = \"1s\"\ncommand = [\"true\"]\n",
    )
    .expect("write");
    let report = check_report(&file).expect("valid");
    let shown = file.display();
    assert_eq!(
        report,
        format!(
            "{shown}: ok, 1 job (1 scheduled)\nwarning: {shown}:2: daemon.group: \
             ignored without daemon.user (the group is only used for the privilege drop)"
        )
    );
    std::fs::write(&file, "[daemon]\nworkers = 0\n").expect("write");
    let err = check_report(&file).expect_err("invalid");
    assert_eq!(
        err.to_string(),
        format!("{shown}:2: daemon.workers: 0 is out of range; expected 1..=1024")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tz_must_be_a_known_zone_and_goes_with_cron() {
    let config = ok(r#"
[[jobs]]
name = "tokyo"
cron = "0 9 * * *"
tz = "Asia/Tokyo"
command = ["true"]
"#);
    assert_eq!(config.jobs[0].tz.as_deref(), Some("Asia/Tokyo"));
    let schedule = config.jobs[0].schedule.as_ref();
    assert!(schedule.is_some_and(|s| s.is_cron() && s.tz().is_some()));
    assert_errors(
        r#"
[[jobs]]
name = "a"
cron = "0 9 * * *"
tz = "Mars/Olympus"
command = ["true"]

[[jobs]]
name = "b"
every = "1m"
tz = "UTC"
command = ["true"]
"#,
        &[
            "conf/t.toml:5: jobs[0].tz (job \"a\"): \"Mars/Olympus\" is not a known time zone name such as \"Europe/Paris\" or \"UTC\"",
            "conf/t.toml:11: jobs[1].tz (job \"b\"): only applies to a cron schedule or skipped dates",
        ],
    );
}

#[test]
fn tz_is_matched_ignoring_case_and_kept_as_the_database_spells_it() {
    let config = ok(r#"
[[jobs]]
name = "paris"
cron = "0 9 * * *"
tz = "europe/PARIS"
command = ["true"]
"#);
    assert_eq!(config.jobs[0].tz.as_deref(), Some("Europe/Paris"));
}

#[test]
fn auth_keys_are_built_and_the_token_file_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    let config = ok("[daemon]\nauth_token = \"abc\"\nunix_socket = \"/tmp/t.sock\"\nunix_socket_mode = \"0660\"\n");
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(config.daemon.live.auth_token, Some(AuthToken::new("abc")));
    assert_eq!(config.daemon.start.unix_socket_mode, 0o660);
    // The token never shows in Debug output.
    assert!(!format!("{config:?}").contains("abc"));

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("token");
    std::fs::write(&file, "from-file\n").expect("write");
    let text = format!("[daemon]\nauth_token_file = \"{}\"\n", file.display());
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("conf/t.toml:2: daemon.auth_token_file: "),
        "{errs:?}"
    );
    assert!(
        errs[0].contains("readable by group or others (mode 0640)"),
        "{errs:?}"
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let config = ok(&text);
    assert_eq!(
        config.daemon.live.auth_token,
        Some(AuthToken::new("from-file"))
    );

    let both = format!("{text}auth_token = \"x\"\n");
    assert_errors(
        &both,
        &["conf/t.toml:2: daemon.auth_token_file: set only one of auth_token and auth_token_file"],
    );
}

#[test]
fn file_prune_refuses_system_roots_unless_allowed() {
    let job = |path: &str, extra: &str| {
        format!(
            "[[jobs]]\nname = \"p\"\nkind = \"file.prune\"\npath = \"{path}\"\nolder_than = \"1d\"\n{extra}\n"
        )
    };
    for (path, root) in [
        ("/", "/"),
        ("//", "/"),
        ("/usr/", "/usr"),
        ("//etc//", "/etc"),
        ("/var/log/../..", "/"),
        ("/home", "/home"),
        ("/lib64", "/lib64"),
    ] {
        assert_errors(
            &job(path, ""),
            &[&format!(
                "conf/t.toml:4: jobs[0].path (job \"p\"): \"{path}\" is the system directory {root}: \
                 pruning it could delete the system's own files; if that is what you mean, add \
                 allow_system_path = true to this job"
            )],
        );
    }
    let config = ok(&job("/", "allow_system_path = true"));
    let JobKind::FilePrune(spec) = &*config.jobs[0].kind else {
        panic!("file.prune")
    };
    assert_eq!(spec.path, Path::new("/"));
    let config = ok(&job("/var/log/myapp", ""));
    assert!(matches!(*config.jobs[0].kind, JobKind::FilePrune(_)));
    // A relative path is made absolute against the start directory.
    let config = ok(&job("logs/old", ""));
    let JobKind::FilePrune(spec) = &*config.jobs[0].kind else {
        panic!("file.prune")
    };
    assert!(
        spec.path.is_absolute() && spec.path.ends_with("logs/old"),
        "{spec:?}"
    );
    assert_errors(
        "[[jobs]]\nname = \"e\"\ncommand = [\"true\"]\nallow_system_path = true\n",
        &["conf/t.toml:4: jobs[0].allow_system_path (job \"e\"): only applies to kind \"file.prune\", and this job's kind is \"exec\""],
    );
}

#[test]
fn jobs_with_the_same_settings_share_one_copy_of_them() {
    let config = ok(r#"
[[jobs]]
name = "a"
cron = "5 3 * * *"
command = ["true"]

[[jobs]]
name = "b"
cron = "5 3 * * *"
command = ["true"]

[[jobs]]
name = "c"
cron = "5 3 * * *"
tz = "UTC"
command = ["true", "x"]

[[jobs]]
name = "d"
every = "1h"
command = ["true", "x"]

[[jobs]]
name = "e"
every = "1h"
command = ["true"]
"#);
    let [a, b, c, d, e] = &config.jobs[..] else {
        panic!("five jobs");
    };
    let same_schedule = |x: &JobDef, y: &JobDef| match (&x.schedule, &y.schedule) {
        (Some(Schedule::Cron(p)), Some(Schedule::Cron(q))) => Arc::ptr_eq(p, q),
        (Some(Schedule::Every { text: p, .. }), Some(Schedule::Every { text: q, .. })) => {
            Arc::ptr_eq(p, q)
        }
        _ => false,
    };
    assert!(Arc::ptr_eq(&a.kind, &b.kind) && Arc::ptr_eq(&a.kind, &e.kind));
    assert!(Arc::ptr_eq(&c.kind, &d.kind) && !Arc::ptr_eq(&a.kind, &c.kind));
    assert!(same_schedule(a, b) && same_schedule(d, e));
    // Another zone is another schedule, though the text is the same.
    assert!(!same_schedule(a, c));
    assert_eq!(
        c.schedule.as_ref().and_then(|s| s.tz()),
        Some(&jiff::tz::TimeZone::UTC)
    );
}

#[test]
fn a_long_chain_into_a_cycle_reports_the_cycle_once() {
    // j0 -> j1 -> ... -> j1999 -> j1000: one cycle, j1000..j1999.
    let mut text = String::new();
    for i in 0..2000 {
        let target = if i == 1999 { 1000 } else { i + 1 };
        text.push_str(&format!(
            "[[jobs]]\nname = \"j{i}\"\ncommand = [\"true\"]\non_failure = \"j{target}\"\n"
        ));
    }
    let got = errors(&text);
    assert_eq!(got.len(), 1, "{got:?}");
    let cycle: Vec<String> = (1000..2000)
        .chain([1000])
        .map(|i| format!("j{i}"))
        .collect();
    assert_eq!(
        got[0],
        format!(
            "conf/t.toml:{}: jobs[1000].on_failure (job \"j1000\"): forms a cycle: {}",
            1000 * 4 + 4,
            cycle.join(" -> ")
        )
    );
}

#[test]
fn schedule_arrays_and_skipped_dates_are_checked() {
    let text = r#"
[[jobs]]
name = "both"
every = ["1s"]
cron = ["* * * * *"]
command = ["true"]

[[jobs]]
name = "empty"
cron = []
command = ["true"]

[[jobs]]
name = "bad"
every = ["1s", "soon"]
skip_dates = ["2026-12-25", "2026-02-30"]
command = ["true"]

[[jobs]]
name = "manual"
skip_dates = ["2026-12-25"]
command = ["true"]
"#;
    let errors = crate::config::parse_full(text, std::path::Path::new("conf/t.toml"))
        .expect_err("invalid")
        .messages()
        .to_vec();
    let all = errors.join("\n");
    assert!(
        all.contains("jobs[0].cron (job \"both\"): set only one of every and cron"),
        "{all}"
    );
    assert!(
        all.contains("jobs[1].cron (job \"empty\"): empty array"),
        "{all}"
    );
    assert!(
        all.contains("jobs[2].every (job \"bad\"): invalid duration \"soon\""),
        "{all}"
    );
    assert!(
        all.contains("jobs[2].skip_dates (job \"bad\"): \"2026-02-30\" is not a date"),
        "{all}"
    );
    assert!(
        all.contains(
            "jobs[3].skip_dates (job \"manual\"): only applies to a job with every or cron"
        ),
        "{all}"
    );
}
