//! PLACEHOLDER: replaced by the real executor in the next commits.

use super::{Executor, RunContext};
use crate::config::SqlSpec;
use crate::state::run::RunState;
use crate::state::Finish;

/// Executes a run of this kind.
pub struct SqlJob<'a>(pub &'a SqlSpec);

impl Executor for SqlJob<'_> {
    fn execute(&self, _ctx: &RunContext<'_>) -> Finish {
        let _ = self.0;
        Finish::with_error(RunState::Failed, "not built yet")
    }
}
