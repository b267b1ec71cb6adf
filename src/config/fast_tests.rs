//! The fast path reads what the full reader reads, and leaves it
//! everything else.

use super::*;
use crate::config::parse_full;

const PATH: &str = "conf/t.toml";

/// Asserts that the fast path takes `text` and reads it as the full reader.
fn same(text: &str) {
    let path = Path::new(PATH);
    let fast = parse(text, path).unwrap_or_else(|| panic!("fast path refused:\n{text}"));
    let full = parse_full(text, path).expect("valid for the full reader");
    assert_eq!(fast.daemon, full.daemon, "{text}");
    assert_eq!(fast.jobs, full.jobs, "{text}");
    assert_eq!(fast.path, full.path);
    assert!(full.warnings.is_empty());
}

/// Asserts that the fast path leaves `text` to the full reader.
fn refused(text: &str) {
    assert!(
        parse(text, Path::new(PATH)).is_none(),
        "fast path took:\n{text}"
    );
}

#[test]
fn the_fast_path_reads_what_the_full_reader_reads() {
    same(include_str!("../../conf/tickd.toml"));
    same("");
    same("# nothing but a comment\n");
    same("[daemon]\nlisten = \"127.0.0.1:0\"\nworkers = +3\nmin_workers = 1\nsyslog = false\n");
    same("[daemon]\nhttp_allowed_hosts = [\"tickd.example.internal\", \"Proxy.Example\"]\n");
    same(
        r#"
[[jobs]]
name = "a"
command = ["true"]

[daemon]   # after the jobs, which TOML allows
history = 0
queue_capacity = 1_0_0
"#
        .replace("1_0_0", "100")
        .as_str(),
    );
    same(
        r#"
[[jobs]]
"name" = 'quoted-key'
kind = "exec"
cron = "*/5 * * * *"
timeout = "30s"
overlap = "queue"
retries = 2
retry_backoff = "2s"
jitter = "1s"
enabled = false
catch_up = "all"
catch_up_limit = 5
command = [
    "sh", # a comment in an array
    "-c",
    """
echo "multi-line \u00e9\tand\\
    continued"
""",
    'literal \n stays',
]
env = { A = "1", "B C" = 'two' }
cwd = "/tmp"

[[jobs]]
name = "h"
kind = "http"
every = "1m 30s"
url = "http://127.0.0.1:9/x"
method = "POST"
headers = {X-Token = "t"}
body = '''{"k": 1}'''
expect_status = 201
on_failure = "quoted-key"

[[jobs]]
name = "s"
kind = "sql"
database = "/tmp/db.sqlite"
sql = """
DELETE FROM t WHERE at < date('now', '-7 days');
"""
tz = "Europe/Paris"
cron = "0 3 * * *"

[[jobs]]
name = "p"
kind = "file.prune"
path = "/tmp/old"
pattern = "*.log"
older_than = "7d"
recursive = true
"#,
    );
    same("[[jobs]]\r\nname = \"crlf\"\r\ncommand = [\"true\"]\r\n");
}

#[test]
fn anything_else_goes_to_the_full_reader() {
    let job = "[[jobs]]\nname = \"a\"\ncommand = [\"true\"]\n";
    for extra in [
        "env.A = \"1\"",                   // a dotted key
        "retries = 0x1",                   // another radix
        "retries = 1_0",                   // underscores
        "retries = 01",                    // a leading zero (an error)
        "retries = 1.0",                   // a float
        "timeout = 1979-05-27",            // a date
        "name = \"b\"",                    // a repeated key
        "comand = [\"x\"]",                // an unknown key
        "retries = \"1\"",                 // a wrong type
        "enabled = \"yes\"",               // a wrong type
        "command2 = [[\"x\"]]",            // a nested array
        "env = { A = \"1\", }",            // TOML 1.1: trailing comma
        "env = { A = \"1\",\nB = \"2\" }", // TOML 1.1: newline
        "cwd = \"\\e\"",                   // TOML 1.1: \e
        "cwd = \"\\x41\"",                 // TOML 1.1: \x
        "env = { A = 1 }",                 // not a string
        "env = { A.B = \"1\" }",           // dotted
        "env = { \u{c4} = \"1\" }",        // a non-ASCII bare key
        "cwd = \"\\u{41}\"",               // not an escape of TOML 1.0
        "every = \"5\"",                   // invalid value (an error)
    ] {
        let text = job.replace("command", &format!("{extra}\ncommand"));
        refused(&text);
    }
    refused("listen = \"x\"\n"); // a root key
    refused("jobs = [{ name = \"a\", command = [\"true\"] }]\n");
    refused(&format!("{job}[jobs.env]\nA = \"1\"\n"));
    refused("[daemon]\n[daemon]\n");
    refused("[daemon]\nworkers = 0\n"); // out of range
    refused("[other]\n");
    refused(&format!("{job}{job}")); // duplicate names
    refused("[[jobs]]\nname = \"a\"\nkind = \"exec\"\n"); // missing command
    refused("[[jobs\n"); // a syntax error
}

#[test]
fn a_thousand_generated_jobs_read_the_same() {
    let mut text = String::from("[daemon]\nlisten = \"127.0.0.1:0\"\n");
    for i in 0..1000 {
        let schedule = match i % 3 {
            0 => format!("cron = \"{} {} * * *\"", i % 60, i % 24),
            1 => "every = \"1h\"".to_string(),
            _ => format!(
                "cron = \"*/{} * * * * *\"\ntz = \"America/New_York\"",
                1 + i % 30
            ),
        };
        text.push_str(&format!(
            "\n[[jobs]]\nname = \"job-{i}\"\nkind = \"exec\"\n{schedule}\ncommand = [\"true\", \"{i}\"]\n"
        ));
    }
    same(&text);
}

/// Random files from valid and invalid pieces: whenever the fast path
/// takes one, the full reader reads the same config from it.
#[test]
fn whatever_the_fast_path_takes_the_full_reader_reads_the_same() {
    let names = ["name = \"n{i}\"", "'name' = 'n{i}'", "\"name\"=\"n{i}\""];
    let commands = [
        "command = [\"true\"]",
        "command = [ 'sh', \"-c\" , \"\"\"\necho {i}\"\"\", ] # trailing",
        "command = [\n  \"a\",\n  # a comment\n  \"b\"\n]",
        "command = []",
    ];
    let pieces = [
        "cron = \"{m} 3 * * *\"",
        "every = \"{i}s\"",
        "every = \"1h\"\ntz = \"UTC\"",
        "retries = {m}",
        "retries = -1",
        "retries = 1e3",
        "enabled = true",
        "enabled = 1",
        "env = {A = \"{i}\", B=''}",
        "env = { }",
        "env = {A = \"x\",}",
        "timeout = \"1s\" # comment",
        "overlap = \"allow\"",
        "kind = \"exec\"",
        "kind = \"http\"\nurl = \"http://127.0.0.1:9/\"",
        "on_failure = \"n0\"",
        "cwd = \"/tmp\\t\"",
        "jitter = \"\"",
        "\n\n# blank lines and a comment\n",
        "bogus = 1",
        "[jobs.sub]",
        "x.y = 1",
    ];
    let mut rng = crate::rng::SplitMix64::from_seed(7);
    let mut taken = 0;
    for _ in 0..400 {
        let mut text = String::new();
        if rng.below_u64(3) == 0 {
            text.push_str("[daemon]\nlisten = \"127.0.0.1:0\"\nhistory = 5\n");
        }
        for i in 0..1 + rng.below_u64(4) {
            text.push_str("\n[[jobs]]\n");
            let name = names[rng.below_u64(names.len() as u64) as usize];
            let command = commands[rng.below_u64(commands.len() as u64) as usize];
            text.push_str(&format!(
                "{}\n{command}\n",
                name.replace("{i}", &i.to_string())
            ));
            for _ in 0..rng.below_u64(3) {
                let m = rng.below_u64(60);
                let piece = pieces[rng.below_u64(pieces.len() as u64) as usize]
                    .replace("{i}", &i.to_string())
                    .replace("{m}", &m.to_string());
                text.push_str(&piece);
                text.push('\n');
            }
        }
        if let Some(fast) = parse(&text, Path::new(PATH)) {
            taken += 1;
            let full = parse_full(&text, Path::new(PATH)).unwrap_or_else(|e| {
                panic!("fast path took what the full reader refuses:\n{text}\n{e}")
            });
            assert_eq!((fast.daemon, fast.jobs), (full.daemon, full.jobs), "{text}");
        }
    }
    assert!(taken > 20, "only {taken} files taken");
}

/// Every key the full reader knows, the fast path takes (with a value of
/// one type or another): a key added to one reader and not the other
/// would send every file that sets it to the slow path.
#[test]
fn the_fast_path_knows_every_key() {
    use crate::config::raw::{DAEMON_KEYS, JOB_KEYS};
    let values = || {
        let span = 0..1;
        [
            Value::Scalar(Spanned::new(span.clone(), Scalar::Str("x".into()))),
            Value::Scalar(Spanned::new(span.clone(), Scalar::Int(1))),
            Value::Scalar(Spanned::new(span.clone(), Scalar::Bool(true))),
            Value::Strings(Spanned::new(span.clone(), vec!["x".into()])),
            Value::Map(Spanned::new(span, BTreeMap::new())),
        ]
    };
    for key in DAEMON_KEYS {
        let taken = values()
            .into_iter()
            .any(|v| set_daemon(&mut RawDaemon::default(), key, v));
        assert!(taken, "daemon.{key}");
    }
    for key in JOB_KEYS {
        // Left to the full reader: `limits` is an inline table of integers.
        if key == "limits" {
            continue;
        }
        let taken = values().into_iter().any(|v| {
            let mut job = RawJob::new(
                JobKey {
                    index: 0,
                    name: None,
                },
                0,
            );
            set_job(&mut job, key, v)
        });
        assert!(taken, "jobs.{key}");
    }
}

#[test]
fn schedule_arrays_and_skipped_dates_take_the_fast_path() {
    same(
        r#"
[[jobs]]
name = "a"
cron = ["0 9 * * MON-FRI", "30 10 * * SAT"]
tz = "Europe/Paris"
skip_dates = ["2026-12-25", "2027-01-01"]
command = ["true"]

[[jobs]]
name = "b"
every = ["1s", "2s"]
command = ["true"]

[[jobs]]
name = "c"
every = ["5s"]
command = ["true"]
"#,
    );
    let config = parse(
        "[[jobs]]\nname = \"c\"\nevery = [\"5s\"]\ncommand = [\"true\"]\n",
        Path::new(PATH),
    )
    .expect("fast");
    let shown = serde_json::to_value(config.jobs[0].schedule.as_ref()).expect("json");
    assert_eq!(
        shown,
        serde_json::json!(["5s"]),
        "an array of one stays an array"
    );
}
