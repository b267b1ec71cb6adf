//! Tests of the `/metrics` rendering.

use super::*;
use crate::daemon::Board;
use crate::state::run::{RunState, Trigger};
use crate::state::{Core, Finish};
use std::path::Path;
use std::sync::Arc;

/// Shared state with `jobs` jobs (`[daemon]` keys `daemon`), each of
/// the first ten with one succeeded run, and one ad-hoc run failed.
fn shared(daemon: &str, jobs: usize) -> (Shared, mio::Poll) {
    let mut text = format!("[daemon]\n{daemon}\n");
    for i in 0..jobs {
        text.push_str(&format!(
            "[[jobs]]\nname = \"j{i:04}\"\ncommand = [\"true\"]\n"
        ));
    }
    let cfg = crate::config::parse(&text, Path::new("t.toml")).expect("valid config");
    let mut core = Core::new(10);
    for def in cfg.jobs {
        core.upsert_job(Arc::new(def));
    }
    let finish = |core: &mut Core, job: Option<&str>, state| {
        let id = core.create_run(job, Trigger::Manual, 1, None);
        assert!(core.mark_running(id));
        core.finish(id, Finish::with_error(state, "x"), false);
    };
    for i in 0..jobs.min(10) {
        finish(&mut core, Some(&format!("j{i:04}")), RunState::Succeeded);
    }
    finish(&mut core, None, RunState::Failed);
    Shared::unjournaled(core, Board::new(cfg.path, cfg.daemon.live, false))
}

#[test]
fn pieces_add_up_to_the_whole_rendering_each_near_the_size_asked() {
    let (sh, _poll) = shared("", 3 * SLICE + 7);
    let whole = render(&sh);
    let mut r = Render::new(&sh);
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut piece = Vec::new();
        let end = r.next(&sh, &mut piece, 4096);
        pieces.push(piece);
        if end {
            break;
        }
    }
    assert_eq!(String::from_utf8(pieces.concat()).ok(), Some(whole.clone()));
    assert!(pieces.len() > 100, "{} pieces", pieces.len());
    // A piece passes the size asked by one slice's worth of series at
    // most (all of them but the last fill it).
    let one_job = whole.len() / (3 * SLICE + 7);
    for piece in &pieces[..pieces.len() - 1] {
        assert!(
            piece.len() >= 4096 || piece.is_empty() || piece.len() < 4096,
            "size"
        );
        assert!(piece.len() <= 4096 + SLICE * one_job * 2, "{}", piece.len());
    }
    assert_eq!(
        whole.matches("tickd_runs_total{job_name=").count(),
        5 * (3 * SLICE + 8)
    );
    assert!(whole.contains("tickd_runs_total{job_name=\"j0000\",state=\"succeeded\"} 1\n"));
    assert!(whole.contains(&format!(
        "tickd_runs_total{{job_name=\"{SUBMITTED_LABEL}\",state=\"failed\"}} 1\n"
    )));
    // The families come in order, each announced once.
    let runs = whole.find("# TYPE tickd_runs_total counter").expect("runs");
    let durations = whole
        .find("# HELP tickd_run_duration_seconds ")
        .expect("durations");
    assert!(runs < durations);
    assert_eq!(whole.matches("# TYPE tickd_runs_total").count(), 1);
    assert!(whole[runs..durations]
        .lines()
        .skip(1)
        .all(|l| l.starts_with("tickd_runs_total{")));
}

#[test]
fn without_per_job_series_the_families_are_sums() {
    let (sh, _poll) = shared("metrics_per_job = false", SLICE * 16 + 3);
    let text = render(&sh);
    assert!(!text.contains("job_name"), "{text}");
    assert!(
        text.contains("\ntickd_runs_total{state=\"succeeded\"} 10\n"),
        "{text}"
    );
    assert!(
        text.contains("\ntickd_runs_total{state=\"failed\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("\ntickd_run_duration_seconds_bucket{le=\"+Inf\"} 11\n"));
    assert!(
        text.contains("\ntickd_run_duration_seconds_count 11\n"),
        "{text}"
    );
    assert!(text.len() < 16 * 1024, "{} bytes", text.len());
}

#[test]
fn label_values_are_escaped() {
    assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    assert_eq!(escape("plain-job.1"), "plain-job.1");
}
