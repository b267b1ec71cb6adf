//! The `exec` job kind as an [`Executor`]: one run of a program through the
//! runner in the parent module, its observations written into the run record.

use super::{run_exec, ExecEnd, ExecObserver, ExecRequest};
use crate::config::ExecSpec;
use crate::jobs::{Executor, RunContext};
use crate::state::run::RunState;
use crate::state::Finish;

/// Executes an exec job's run.
pub struct ExecJob<'a>(pub &'a ExecSpec);

/// Forwards the runner's observations into the run record.
struct Observer<'a, 'b>(&'a RunContext<'b>);

impl ExecObserver for Observer<'_, '_> {
    fn started(&mut self, pid: u32) {
        (self.0.on_pid)(pid);
    }
    fn progress(&mut self, value: f64) {
        (self.0.on_progress)(value);
    }
    fn output(&mut self, bytes: &[u8]) {
        (self.0.on_output)(bytes);
    }
}

impl Executor for ExecJob<'_> {
    fn execute(&self, ctx: &RunContext<'_>) -> Finish {
        let spec = self.0;
        let args_json = ctx.args.map(|a| a.to_string());
        let mut extra_env = vec![
            ("TICKD_JOB".to_string(), ctx.job.name.clone()),
            ("TICKD_RUN_ID".to_string(), ctx.run_id.to_string()),
        ];
        if let Some(a) = &args_json {
            extra_env.push(("TICKD_ARGS".to_string(), a.clone()));
        }
        let account = match spec.user.as_deref().map(crate::privilege::exec_account) {
            None => None,
            Some(Ok(account)) => Some(account),
            Some(Err(message)) => {
                log::warn!("job {}: run {}: {message}", ctx.job.name, ctx.run_id);
                return Finish {
                    state: RunState::Failed,
                    exit_code: None,
                    error: Some(message),
                    output: String::new(),
                    result: None,
                };
            }
        };
        let req = ExecRequest {
            argv: &spec.command,
            env: &spec.env,
            cwd: spec.cwd.as_deref(),
            extra_env,
            stdin: args_json.map(|mut a| {
                a.push('\n');
                a.into_bytes()
            }),
            timeout: ctx.job.timeout,
            kill_grace: ctx.kill_grace,
            run_as: account.as_ref(),
            limits: spec.limits,
        };
        let outcome = run_exec(&req, ctx.cancel, &mut Observer(ctx));
        let state = match outcome.end {
            ExecEnd::Exited(0) => RunState::Succeeded,
            ExecEnd::Exited(_) | ExecEnd::Signaled(_) | ExecEnd::SpawnFailed => RunState::Failed,
            ExecEnd::TimedOut => RunState::TimedOut,
            ExecEnd::Cancelled => RunState::Cancelled,
        };
        let error = match state {
            RunState::Succeeded => None,
            RunState::Cancelled => ctx.cancel.reason().or(outcome.error),
            _ => outcome.error,
        };
        Finish {
            state,
            exit_code: outcome.exit_code,
            error,
            output: outcome.output,
            result: None,
        }
    }
}
