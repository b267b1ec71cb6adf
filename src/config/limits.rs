//! A job's `limits = { memory, cpu_time, open_files, nice, io_class }`
//! (exec jobs only): read from its inline table (stage one, called from
//! [`super::raw`]) and validated into [`Limits`] (stage two, called from
//! [`super::kinds`]). The limits are applied in the child before exec, see
//! [`crate::sys::limits`].
//!
//! `processes` is refused with the reason: it needs a delegated cgroup v2
//! subtree (`pids.max`), since `RLIMIT_NPROC` counts every process of the
//! user, tickd's own threads included.

use toml::Spanned;
use toml_edit::Item;

use super::error::{JobKey, Report};
use super::raw::{expected, place, unknown, Reader, Sp};
use super::values::{at, int_in};
use super::{IoClass, Limits};

/// The sub-keys of `limits` (`processes` is known, and refused).
const KEYS: [&str; 6] = [
    "memory",
    "cpu_time",
    "open_files",
    "nice",
    "io_class",
    "processes",
];

/// The `limits` table as written.
#[derive(Debug, Default)]
pub(crate) struct RawLimits {
    pub memory: Sp<String>,
    pub cpu_time: Sp<String>,
    pub open_files: Sp<i64>,
    pub nice: Sp<i64>,
    pub io_class: Sp<String>,
    pub processes: Sp<i64>,
}

/// Reads `limits`; wrong types and unknown sub-keys are reported.
pub(super) fn read(
    rd: &mut Reader<'_, '_>,
    item: &Item,
    table_at: usize,
    key: &JobKey,
) -> Sp<RawLimits> {
    let Some(table) = item.as_table_like() else {
        let message = expected(
            "a table like { memory = \"512MiB\", cpu_time = \"10m\" }",
            item,
        );
        rd.r.error(table_at, key.key("limits"), message);
        rd.bad.push("limits");
        return None;
    };
    let mut l = RawLimits::default();
    for (name, v) in table.iter() {
        let at = place(table, name, v, table_at);
        let field = format!("limits.{name}");
        let k = key.key(&field);
        match name {
            "memory" => l.memory = rd.string("limits", v, at, k),
            "cpu_time" => l.cpu_time = rd.string("limits", v, at, k),
            "open_files" => l.open_files = rd.integer("limits", v, at, k),
            "nice" => l.nice = rd.integer("limits", v, at, k),
            "io_class" => l.io_class = rd.string("limits", v, at, k),
            "processes" => l.processes = rd.integer("limits", v, at, k),
            _ => rd.r.error(at, k, unknown(name, KEYS)),
        }
    }
    let span = item.span().unwrap_or(table_at..table_at);
    Some(Spanned::new(span, l))
}

/// Validates `limits` into [`Limits`] (none when absent).
pub(super) fn validate(
    r: &mut Report<'_>,
    raw: Option<&Spanned<RawLimits>>,
    key: &JobKey,
) -> Limits {
    let Some(raw) = raw else {
        return Limits::default();
    };
    let l = raw.get_ref();
    let k = |field: &'static str| key.key(field);
    if let Some(v) = &l.processes {
        let message = "needs a delegated cgroup v2 subtree (pids.max), which this tickd does \
                       not use: RLIMIT_NPROC counts every process of the user, tickd's own \
                       threads included";
        r.error(at(v), k("limits.processes"), message);
    }
    let memory = l
        .memory
        .as_ref()
        .and_then(|v| match parse_size(v.get_ref()) {
            Ok(bytes) if bytes >= 1 << 20 => Some(bytes),
            Ok(_) => {
                let message = "is below 1 MiB, too small for any program to start";
                r.error(at(v), k("limits.memory"), message);
                None
            }
            Err(message) => {
                r.error(at(v), k("limits.memory"), message);
                None
            }
        });
    let cpu_time = l.cpu_time.as_ref().and_then(|v| {
        match humantime::parse_duration(v.get_ref().trim()) {
            Ok(d) if d.is_zero() => {
                r.error(at(v), k("limits.cpu_time"), "must be greater than zero");
                None
            }
            // RLIMIT_CPU counts whole seconds: a part of one rounds up.
            Ok(d) => Some(d.as_secs() + u64::from(d.subsec_nanos() > 0)),
            Err(e) => {
                let message = format!(
                    "invalid duration \"{}\": {e} (examples: \"30s\", \"10m\", \"1h 30m\")",
                    v.get_ref()
                );
                r.error(at(v), k("limits.cpu_time"), message);
                None
            }
        }
    });
    let open_files = l.open_files.as_ref().map(|v| {
        let n = int_in(r, Some(v), k("limits.open_files"), 1..=1 << 30, 1024);
        u64::try_from(n).unwrap_or(1024)
    });
    let nice = l.nice.as_ref().map(|v| {
        let n = int_in(r, Some(v), k("limits.nice"), -20..=19, 0);
        i32::try_from(n).unwrap_or(0)
    });
    let io_class = l
        .io_class
        .as_ref()
        .and_then(|v| match v.get_ref().as_str() {
            "idle" => Some(IoClass::Idle),
            "best-effort" => Some(IoClass::BestEffort),
            "realtime" => Some(IoClass::Realtime),
            other => {
                let message = format!(
                    "\"{}\" is not one of: idle, best-effort, realtime",
                    other.escape_debug()
                );
                r.error(at(v), k("limits.io_class"), message);
                None
            }
        });
    Limits {
        memory,
        cpu_time,
        open_files,
        nice,
        io_class,
    }
}

/// A size with a binary unit: `512MiB`, `512M`, `2 GiB`, `4096B`. K, M, G
/// and T are the same as KiB, MiB, GiB and TiB (as in ulimit and systemd);
/// `MB`-style units are refused as ambiguous, a bare number as unclear.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = t.split_at(digits);
    let hint = "write a whole number with a unit: B, K/KiB, M/MiB, G/GiB or T/TiB \
                (e.g. \"512MiB\")";
    if number.is_empty() {
        return Err(format!("\"{}\" is not a size; {hint}", text.escape_debug()));
    }
    let shift = match unit.trim_start() {
        "B" => 0,
        "K" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        "T" | "TiB" => 40,
        "" => return Err(format!("\"{text}\" has no unit; {hint}")),
        u @ ("kB" | "KB" | "MB" | "GB" | "TB") => {
            return Err(format!(
                "\"{text}\": {u} could mean powers of 1000 or 1024; {hint}"
            ))
        }
        _ => return Err(format!("\"{}\" is not a size; {hint}", text.escape_debug())),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("\"{text}\" is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;
    use crate::config::tests::{errors, ok};
    use crate::config::{IoClass, JobKind, Limits};
    use serde_json::json;

    fn limits_of(text: &str) -> Limits {
        let config = ok(text);
        match &*config.jobs[0].kind {
            JobKind::Exec(spec) => spec.limits,
            other => panic!("not exec: {other:?}"),
        }
    }

    #[test]
    fn every_limit_is_read_and_cpu_time_rounds_up_to_whole_seconds() {
        let l = limits_of(
            r#"
[[jobs]]
name = "x"
command = ["true"]
limits = { memory = "512MiB", cpu_time = "1m 500ms", open_files = 1024, nice = 10, io_class = "idle" }
"#,
        );
        let want = Limits {
            memory: Some(512 << 20),
            cpu_time: Some(61),
            open_files: Some(1024),
            nice: Some(10),
            io_class: Some(IoClass::Idle),
        };
        assert_eq!(l, want);
        // Strings only: the fast path takes the table, then falls back.
        let l = limits_of("[[jobs]]\nname = \"x\"\ncommand = [\"true\"]\nlimits = { io_class = \"best-effort\" }\n");
        assert_eq!(l.io_class, Some(IoClass::BestEffort));
        let l =
            limits_of("[[jobs]]\nname = \"x\"\ncommand = [\"true\"]\n[jobs.limits]\nnice = -5\n");
        assert_eq!(l.nice, Some(-5));
        assert!(limits_of("[[jobs]]\nname = \"x\"\ncommand = [\"true\"]\n").is_empty());
    }

    #[test]
    fn bad_limits_are_reported_each_with_its_key() {
        let got = errors(
            r#"
[[jobs]]
name = "x"
command = ["true"]
limits = { memory = "512MB", cpu_time = "0s", open_files = 0, nice = 20, io_class = "fast", processes = 10, memroy = "1G" }

[[jobs]]
name = "h"
kind = "http"
url = "http://127.0.0.1/"
limits = { nice = 5 }

[[jobs]]
name = "y"
command = ["true"]
limits = "lots"
"#,
        );
        let all = got.join("\n");
        for want in [
            "limits.memory (job \"x\"): \"512MB\": MB could mean powers of 1000 or 1024",
            "limits.cpu_time (job \"x\"): must be greater than zero",
            "limits.open_files (job \"x\"): 0 is out of range",
            "limits.nice (job \"x\"): 20 is out of range; expected -20..=19",
            "limits.io_class (job \"x\"): \"fast\" is not one of: idle, best-effort, realtime",
            "limits.processes (job \"x\"): needs a delegated cgroup v2 subtree",
            "RLIMIT_NPROC counts every process of the user, tickd's own threads included",
            "limits.memroy (job \"x\"): unknown key; did you mean `memory`?",
            "limits (job \"h\"): only applies to kind \"exec\"",
            "limits (job \"y\"): expected a table like",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
    }

    #[test]
    fn an_api_job_takes_limits_by_the_same_rules() {
        let job = |limits: serde_json::Value| {
            let v = json!({"name": "x", "command": ["true"], "limits": limits});
            crate::config::parse_api_job(v.as_object().expect("object"))
        };
        let def = job(json!({"memory": "64M", "nice": 3})).expect("valid");
        let JobKind::Exec(spec) = &*def.kind else {
            panic!("exec")
        };
        assert_eq!(
            (spec.limits.memory, spec.limits.nice),
            (Some(64 << 20), Some(3))
        );
        let err = job(json!({"processes": 5})).unwrap_err();
        assert!(
            err.starts_with("job.limits.processes: needs a delegated cgroup"),
            "{err}"
        );
        let err = job(json!({"memory": "lots"})).unwrap_err();
        assert!(
            err.starts_with("job.limits.memory: \"lots\" is not a size"),
            "{err}"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size(" 2 GiB "), Ok(2 << 30));
        assert_eq!(parse_size("4096B"), Ok(4096));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        for bad in [
            "",
            "MiB",
            "512",
            "512MB",
            "1.5G",
            "-1G",
            "12 parsecs",
            "99999999999T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(parse_size("512MB").unwrap_err().contains("1000 or 1024"));
    }
}
