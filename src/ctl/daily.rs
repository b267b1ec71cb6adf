//! `tickd ctl`'s subcommands for daily use (`jobs`, `job`, `run`, `cancel`,
//! `pause`, `resume`, `logs`, `runs`, `watch`, `put`) and the raw
//! `METHOD [PARAMS_JSON]` form, told apart by the word itself: a method
//! name has a dot (`jobs.list`) or is one of a method without a dot (`ping`, `status`, ...); any
//! other word must be a subcommand. [`plan`] turns the command line into
//! what to send, checking it before anything is connected; [`show`] prints
//! the answer.
//!
//! Exit status: 0 done; 1 an error (message on stderr); 2 a bad command
//! line (clap's usage error); [`RUN_NOT_SUCCEEDED`] when `run --wait`
//! saw the run end in any state but `succeeded`.

use super::Format;
use super::{detail, render};
use clap::Subcommand;
use serde_json::{json, Map, Value};
use std::path::PathBuf;

/// The exit status of `run --wait` when the run ended failed, timed out,
/// cancelled or interrupted (1 stays "ctl itself failed").
pub const RUN_NOT_SUCCEEDED: i32 = 3;

/// Methods whose names have no dot (`ping`, `status`, `reload`, ...),
/// from the daemon's own method table: the raw form without a dot is one
/// of these, so a mistyped subcommand is not sent to the daemon as a
/// method.
fn dotless_methods() -> impl Iterator<Item = &'static str> {
    tickd::protocol::rpc::METHODS
        .iter()
        .copied()
        .filter(|m| !m.contains('.'))
}

/// How many due times `jobs NAME` shows.
const NEXT_RUNS: u64 = 5;

/// The subcommands; anything else is `METHOD [PARAMS_JSON]`.
#[derive(Subcommand, Debug)]
pub enum Sub {
    /// The jobs table (jobs.list); with NAME, one job: what it runs, its
    /// schedule, next runs, limits and last runs (jobs.get).
    Jobs {
        /// A job's name.
        name: Option<String>,
    },
    /// One job: what it runs, its schedule, next runs, limits and last runs.
    Job {
        /// The job's name.
        name: String,
    },
    /// Start a run of a job now (jobs.run).
    Run {
        /// The job's name.
        name: String,
        /// Wait for the run to end and print it; exit status 3 when it did
        /// not succeed.
        #[arg(long)]
        wait: bool,
        /// An argument for the run (`args` of jobs.run: TICKD_ARGS and
        /// stdin of an exec job); may be repeated.
        #[arg(long = "arg", value_name = "KEY=VALUE")]
        args: Vec<String>,
    },
    /// Cancel a queued or running run (runs.cancel).
    Cancel {
        /// The run's id.
        run_id: String,
    },
    /// Pause a job's schedule (jobs.pause).
    Pause {
        /// The job's name.
        name: String,
    },
    /// Resume a paused job's schedule (jobs.resume).
    Resume {
        /// The job's name.
        name: String,
    },
    /// Print a run's output (runs.output): a RUN_ID, or a JOB's latest run.
    Logs {
        /// Keep printing output as it arrives until the run ends.
        #[arg(short = 'f', long)]
        follow: bool,
        /// A run id (digits), or a job name for its latest run.
        #[arg(value_name = "RUN_ID|JOB")]
        target: String,
    },
    /// Runs, newest first (runs.list): a table on a terminal, JSON otherwise.
    Runs {
        /// Only this job's runs.
        job: Option<String>,
        /// Only runs in this state (queued, running, succeeded, failed,
        /// timed_out, cancelled, interrupted).
        #[arg(long, value_name = "STATE")]
        state: Option<String>,
        /// At most this many runs (default 20).
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
    },
    /// Print run events as they happen (subscribe); reconnects after a
    /// daemon restart.
    Watch {
        /// End when the daemon closes the connection instead of
        /// reconnecting.
        #[arg(long)]
        no_reconnect: bool,
    },
    /// Define a job from a TOML file holding one [[jobs]] table (jobs.put).
    Put {
        /// The TOML file.
        file: PathBuf,
    },
    /// METHOD [PARAMS_JSON]: call any method (status, jobs.list, ...).
    #[command(external_subcommand)]
    Raw(Vec<String>),
}

/// How [`show`] prints an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// As the raw form does (`status`, `jobs.list` have text forms).
    Raw,
    /// `jobs NAME`: the job in detail.
    Job,
    /// `run`: the run id, or with `--wait` the finished run.
    Run {
        /// Whether the answer is the finished run.
        wait: bool,
    },
    /// `cancel`: the run in its final state.
    Cancelled,
    /// `pause` / `resume`: the job's new state.
    Paused,
    /// `runs`: a table.
    Runs,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Plan {
    /// One call, its answer printed as `show` says.
    Call {
        /// The method.
        method: String,
        /// Its params.
        params: Value,
        /// How to print the answer.
        show: Show,
    },
    /// `watch`.
    Watch {
        /// Reconnect after the connection ends.
        reconnect: bool,
    },
    /// `logs`.
    Logs {
        /// The run, or the job whose latest run.
        target: String,
        /// `-f`.
        follow: bool,
    },
}

/// The plan for `sub`, or why the command line is wrong; nothing is sent.
pub fn plan(sub: &Sub) -> Result<Plan, String> {
    let call = |method: &str, params: Value, show| {
        Ok(Plan::Call {
            method: method.to_string(),
            params,
            show,
        })
    };
    match sub {
        Sub::Jobs { name: None } => call("jobs.list", json!({}), Show::Raw),
        Sub::Jobs { name: Some(name) } | Sub::Job { name } => call(
            "jobs.get",
            json!({"name": name, "next": NEXT_RUNS}),
            Show::Job,
        ),
        Sub::Run { name, wait, args } => {
            let mut params = json!({"name": name});
            if *wait {
                params["wait"] = Value::Bool(true);
            }
            if !args.is_empty() {
                params["args"] = run_args(args)?;
            }
            call("jobs.run", params, Show::Run { wait: *wait })
        }
        Sub::Cancel { run_id } => call("runs.cancel", json!({"run_id": run_id}), Show::Cancelled),
        Sub::Pause { name } => call("jobs.pause", json!({"name": name}), Show::Paused),
        Sub::Resume { name } => call("jobs.resume", json!({"name": name}), Show::Paused),
        Sub::Logs { follow, target } => Ok(Plan::Logs {
            target: target.clone(),
            follow: *follow,
        }),
        Sub::Runs { job, state, limit } => {
            let mut params = json!({"limit": limit.unwrap_or(20)});
            if let Some(job) = job {
                params["job"] = Value::from(job.as_str());
            }
            if let Some(state) = state {
                params["state"] = Value::from(state.as_str());
            }
            call("runs.list", params, Show::Runs)
        }
        Sub::Watch { no_reconnect } => Ok(Plan::Watch {
            reconnect: !no_reconnect,
        }),
        Sub::Put { file } => call("jobs.put", super::put::params_from_file(file)?, Show::Raw),
        Sub::Raw(words) => raw(words),
    }
}

/// `METHOD [PARAMS_JSON]`, or the error for a word that is neither.
fn raw(words: &[String]) -> Result<Plan, String> {
    let Some(method) = words.first() else {
        return Err("missing METHOD or subcommand (see tickd ctl --help)".into());
    };
    if !method.contains('.') && !dotless_methods().any(|m| m == method) {
        return Err(format!(
            "unknown subcommand `{method}`: the subcommands are jobs, job, run, cancel, \
             pause, resume, logs, runs, watch and put; a METHOD has a dot (jobs.list) \
             or is one of {} (see tickd ctl --help)",
            dotless_methods().collect::<Vec<_>>().join(", ")
        ));
    }
    if let Some(extra) = words.get(2) {
        let hint = if extra.starts_with('-') {
            "; options go before the METHOD"
        } else {
            ""
        };
        return Err(format!(
            "unexpected `{extra}` after {method} PARAMS_JSON{hint}"
        ));
    }
    if let Some(flag) = words.get(1).filter(|w| w.starts_with('-')) {
        return Err(format!(
            "unexpected `{flag}` after {method}: options go before the METHOD \
             (tickd ctl {flag} {method})"
        ));
    }
    Ok(Plan::Call {
        method: method.clone(),
        params: super::parse_params(words.get(1).map(String::as_str))?,
        show: Show::Raw,
    })
}

/// `--arg k=v ...` as the JSON object of jobs.run's `args`; values are
/// strings. A key given twice, or an argument without `=`, is refused.
fn run_args(args: &[String]) -> Result<Value, String> {
    let mut out = Map::new();
    for arg in args {
        let Some((key, value)) = arg.split_once('=') else {
            return Err(format!("--arg {arg}: expected KEY=VALUE"));
        };
        if key.is_empty() {
            return Err(format!("--arg {arg}: the KEY before `=` is empty"));
        }
        if out.insert(key.to_string(), Value::from(value)).is_some() {
            return Err(format!("--arg {key}=...: {key} is given twice"));
        }
    }
    Ok(Value::Object(out))
}

/// The text for `result` and the exit status.
pub fn show(show: Show, method: &str, result: &Value, format: Format) -> (String, i32) {
    let now = tickd::time::now();
    let code = match show {
        Show::Run { wait: true } if result["state"] != "succeeded" => RUN_NOT_SUCCEEDED,
        _ => 0,
    };
    if format == Format::Json {
        return (super::format_result(method, result, format), code);
    }
    let text = match show {
        Show::Raw => super::format_result(method, result, format),
        Show::Job => detail::job(result, now),
        Show::Run { wait: false } => format!(
            "started run {0} (follow its output: tickd ctl logs -f {0})\n",
            render::text(&result["run_id"]),
        ),
        Show::Run { wait: true } | Show::Cancelled => detail::run(result),
        Show::Paused => {
            let name = render::text(&result["name"]);
            let persistent = if result["persistent"] == true {
                " (kept across restarts)"
            } else {
                " (until tickd stops)"
            };
            match (result["paused"].as_bool(), result["enabled"].as_bool()) {
                (Some(true), _) => format!("{name} paused{persistent}\n"),
                (_, Some(true)) => format!(
                    "{name} resumed, next run {}\n",
                    render::when(&result["next_run"], now)
                ),
                _ => format!("{name} is not paused, but its file sets enabled = false\n"),
            }
        }
        Show::Runs => match result.as_array() {
            Some(runs) if runs.is_empty() => "no runs\n".to_string(),
            Some(runs) => detail::runs_table(runs, now),
            None => super::format_result(method, result, format),
        },
    };
    (text, code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn methods_have_dots_and_subcommands_do_not() {
        let plan = raw(&words(&["jobs.get", r#"{"name":"a"}"#])).expect("a method");
        assert!(matches!(plan, Plan::Call { ref method, .. } if method == "jobs.get"));
        assert!(raw(&words(&["status"])).is_ok());
        let err = raw(&words(&["frobnicate"])).err().unwrap_or_default();
        assert!(err.contains("unknown subcommand `frobnicate`"), "{err}");
        let err = raw(&words(&["status", "--json"])).err().unwrap_or_default();
        assert!(err.contains("options go before the METHOD"), "{err}");
        let err = raw(&words(&["jobs.get", "{}", "x"]))
            .err()
            .unwrap_or_default();
        assert!(err.contains("unexpected `x`"), "{err}");
    }

    #[test]
    fn run_args_are_a_string_object() {
        let args = run_args(&words(&["who=me", "n=3", "eq=a=b"])).expect("ok");
        assert_eq!(args, json!({"who": "me", "n": "3", "eq": "a=b"}));
        assert!(run_args(&words(&["who"])).is_err());
        assert!(run_args(&words(&["=x"])).is_err());
        let twice = run_args(&words(&["a=1", "a=2"])).err().unwrap_or_default();
        assert!(twice.contains("given twice"), "{twice}");
    }

    #[test]
    fn run_wait_exits_3_unless_the_run_succeeded() {
        let ok = json!({"run_id": "1", "state": "succeeded"});
        let failed = json!({"run_id": "1", "state": "failed"});
        let wait = Show::Run { wait: true };
        assert_eq!(show(wait, "jobs.run", &ok, Format::Json).1, 0);
        assert_eq!(
            show(wait, "jobs.run", &failed, Format::Human).1,
            RUN_NOT_SUCCEEDED
        );
        assert_eq!(
            show(Show::Run { wait: false }, "jobs.run", &failed, Format::Json).1,
            0
        );
    }
}
