//! PLACEHOLDER: replaced by the real executor in the next commits.

use super::{Executor, RunContext};
use crate::config::HttpSpec;
use crate::state::run::RunState;
use crate::state::Finish;

/// Executes a run of this kind.
pub struct HttpJob<'a>(pub &'a HttpSpec);

impl Executor for HttpJob<'_> {
    fn execute(&self, _ctx: &RunContext<'_>) -> Finish {
        let _ = self.0;
        Finish::with_error(RunState::Failed, "not built yet")
    }
}
