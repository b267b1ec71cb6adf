//! From the daemon's errors to JSON-RPC error objects: the one place a
//! [`daemon::Error`] gets its wire code (and so its HTTP status, see
//! `http::response::status_of`), its message and any data.

use super::rpc::{ErrorCode, RpcError};
use crate::daemon;

/// The JSON-RPC code of a daemon error.
pub fn code_of(e: &daemon::Error) -> ErrorCode {
    use daemon::Error as E;
    match e {
        E::NoSuchJob(_) | E::NoSuchRun(_) => ErrorCode::NotFound,
        E::AlreadyRunning { .. } | E::ReloadRejected(_) => ErrorCode::Conflict,
        E::FileJob(_) | E::HasDependents { .. } => ErrorCode::Conflict,
        E::QueueFull { .. } | E::BacklogFull { .. } | E::ShuttingDown => ErrorCode::Overloaded,
        E::ClusterDown(_) => ErrorCode::Overloaded,
        E::Forbidden(_) => ErrorCode::Forbidden,
        E::Invalid { .. }
        | E::AnswerTooLarge { .. }
        | E::JobListTooLarge { .. }
        | E::JobTooLarge { .. } => ErrorCode::InvalidParams,
        E::BadJob(_) => ErrorCode::InvalidParams,
        E::NotDurable(_) | E::Internal(_) => ErrorCode::Internal,
    }
}

impl From<&daemon::Error> for RpcError {
    fn from(e: &daemon::Error) -> RpcError {
        let mut err = RpcError::new(code_of(e), e.to_string());
        match e {
            daemon::Error::AnswerTooLarge { cap, fit } => {
                err.data =
                    Some(serde_json::json!({ "max_output_bytes": cap, "runs_that_fit": fit }));
            }
            daemon::Error::JobListTooLarge { cap, jobs } => {
                err.data = Some(serde_json::json!({ "max_output_bytes": cap, "jobs": jobs }));
            }
            _ => {}
        }
        err
    }
}

impl From<daemon::Error> for RpcError {
    fn from(e: daemon::Error) -> RpcError {
        RpcError::from(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use daemon::Error as E;

    #[test]
    fn each_error_has_its_code_and_message() {
        let cases = [
            (E::NoSuchJob("a".into()), -32000),
            (E::NoSuchRun("9".into()), -32000),
            (E::AlreadyRunning { job: "a".into() }, -32004),
            (E::ReloadRejected("x".into()), -32004),
            (E::QueueFull { capacity: Some(1) }, -32002),
            (
                E::BacklogFull {
                    job: "a".into(),
                    capacity: 1,
                },
                -32002,
            ),
            (E::ShuttingDown, -32002),
            (E::Forbidden("no"), -32003),
            (
                E::Invalid {
                    param: "limit",
                    what: "must be at least 1".into(),
                },
                -32602,
            ),
            (E::NotDurable("x".into()), -32603),
            (E::Internal("x".into()), -32603),
            (E::BadJob("job.x: y".into()), -32602),
            (E::FileJob("a".into()), -32004),
            (
                E::HasDependents {
                    job: "a".into(),
                    dependents: vec!["b".into()],
                },
                -32004,
            ),
        ];
        for (e, code) in cases {
            let rpc = RpcError::from(&e);
            assert_eq!(rpc.code.code(), code, "{e:?}");
            assert_eq!(rpc.message, e.to_string());
            assert_eq!(rpc.data, None);
        }
    }

    #[test]
    fn a_too_large_answer_says_how_many_runs_fit() {
        let rpc = RpcError::from(E::AnswerTooLarge { cap: 4096, fit: 3 });
        assert_eq!(rpc.code, ErrorCode::InvalidParams);
        assert!(rpc.message.starts_with("param `limit`: "));
        assert_eq!(
            rpc.data,
            Some(serde_json::json!({"max_output_bytes": 4096, "runs_that_fit": 3}))
        );
        let rpc = RpcError::from(E::JobListTooLarge {
            cap: 4096,
            jobs: 90,
        });
        assert_eq!(rpc.code, ErrorCode::InvalidParams);
        assert_eq!(
            rpc.data,
            Some(serde_json::json!({"max_output_bytes": 4096, "jobs": 90}))
        );
        let rpc = RpcError::from(E::JobTooLarge {
            job: "a".into(),
            cap: 4096,
        });
        assert_eq!((rpc.code, rpc.data), (ErrorCode::InvalidParams, None));
    }
}
