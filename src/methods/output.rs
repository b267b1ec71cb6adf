//! `runs.output {run_id, follow?, from?}` (a query, or with `follow` a
//! command that makes the loop send `run.output` notifications), and the
//! reading that `GET /runs/ID/output` shares with it.
//!
//! Where the bytes come from ([`read`]):
//! - a run still running: its live tail ([`crate::output::Live`]), and for
//!   bytes the tail no longer has, its file in `daemon.output_dir` if any;
//! - an ended run: its file in `output_dir` if it is there (the whole
//!   output up to `output_max_bytes_per_run`, also after a restart), else
//!   the run object's `output` (the 64 KiB tail, or another kind's
//!   summary), which starts at offset `Run::output_from`.
//!
//! One answer carries at most [`max_piece`] bytes (an eighth of
//! `max_output_bytes`: escaped as JSON, a byte takes up to six): a client
//! reads on from `next` until `done`.

use super::call::{RunKey, RunsOutput};
use super::{Command, Outcome};
use crate::daemon::{Error, Shared};
use crate::output::{utf8_whole, Live};
use crate::state::run::{RunId, RunState};
use serde_json::{json, Value};
use std::sync::Arc;

/// What a read found: the bytes and where they are.
#[derive(Debug)]
pub struct Slice {
    /// The run.
    pub run_id: RunId,
    /// Its job (None for an ad-hoc run).
    pub job: Option<String>,
    /// Its state when read.
    pub state: RunState,
    /// The offset of the first byte.
    pub from: u64,
    /// Bytes asked for that are no longer kept.
    pub lost: u64,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// The run has ended and nothing follows these bytes.
    pub done: bool,
}

impl Slice {
    /// The offset after the last byte.
    pub fn next(&self) -> u64 {
        self.from + self.bytes.len() as u64
    }

    /// The answer of `runs.output`.
    pub fn to_json(&self) -> Value {
        json!({
            "run_id": self.run_id.to_string(),
            "job": self.job,
            "state": self.state.as_str(),
            "from": self.from,
            "next": self.next(),
            "lost": self.lost,
            "output": String::from_utf8_lossy(&self.bytes),
            "done": self.done,
        })
    }
}

/// A run's live output as a command carries it (compared by identity).
#[derive(Debug, Clone)]
pub struct LiveRef(pub Arc<Live>);

impl PartialEq for LiveRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// `runs.output` with `follow`: the answer, then notifications from
/// `next` on.
#[derive(Debug, Clone, PartialEq)]
pub struct Follow {
    /// The run followed.
    pub run_id: RunId,
    /// Its live output.
    pub live: LiveRef,
    /// Where the notifications start.
    pub next: u64,
    /// The answer to send first.
    pub answer: Value,
}

/// The most bytes one answer carries for a connection that may leave
/// `max_out` bytes unread (JSON: an eighth of it; raw HTTP: a half).
pub fn max_piece(max_out: usize, json: bool) -> usize {
    let share = if json { max_out / 8 } else { max_out / 2 };
    share.clamp(1024, 1 << 20)
}

/// `runs.output {run_id, follow?, from?}`.
pub fn runs_output(shared: &Shared, p: RunsOutput) -> Outcome {
    let id = match p.run_id {
        RunKey::Id(id) => id,
        RunKey::Unknown(id) => return Outcome::Answer(Err(Error::NoSuchRun(id))),
    };
    let max = max_piece(shared.board.live.read().max_output_bytes, true);
    let follow = p.follow.unwrap_or(false);
    let slice = match read(shared, id, p.from.unwrap_or(0), max) {
        Ok(s) => s,
        Err(e) => return Outcome::Answer(Err(e)),
    };
    if !follow || slice.state.is_terminal() {
        return Outcome::Answer(Ok(slice.to_json()));
    }
    Outcome::Command(Command::Follow(Box::new(Follow {
        run_id: id,
        live: LiveRef(shared.board.outputs.open(id)),
        next: slice.next(),
        answer: slice.to_json(),
    })))
}

/// Up to `max` bytes of run `id`'s output from offset `from`.
pub fn read(shared: &Shared, id: RunId, from: u64, max: usize) -> Result<Slice, Error> {
    let (state, job, ended) = {
        let core = shared.core.lock();
        let run = core
            .run(id)
            .ok_or_else(|| Error::NoSuchRun(id.to_string()))?;
        let ended = run
            .state
            .is_terminal()
            .then(|| (run.output.as_bytes().to_vec(), run.output_from));
        (run.state, run.job.clone(), ended)
    };
    let mut slice = Slice {
        run_id: id,
        job,
        state,
        from,
        lost: 0,
        bytes: Vec::new(),
        done: false,
    };
    let dir = shared.board.outputs.dir();
    match ended {
        None => {
            let Some(live) = shared.board.outputs.get(id) else {
                // Queued: nothing printed yet.
                slice.from = 0;
                slice.lost = 0;
                return Ok(slice);
            };
            let chunk = live.read(from, max);
            (slice.from, slice.lost, slice.bytes) = (chunk.from, chunk.lost, chunk.bytes);
            if chunk.lost > 0 {
                // The tail has moved on: the file has those bytes (up to
                // its cap, past which it holds only the note).
                if let Some(dir) = dir {
                    let cap = dir.per_run().min(chunk.from);
                    if from < cap {
                        let want = usize::try_from(cap - from).unwrap_or(max).min(max);
                        if let Ok(Some((bytes, at, _))) = dir.read(id, from, want) {
                            if at == from && !bytes.is_empty() {
                                let whole = utf8_whole(&bytes);
                                let mut bytes = bytes;
                                bytes.truncate(whole.max(1));
                                slice.lost = 0;
                                slice.from = from;
                                slice.bytes = bytes;
                            }
                        }
                    }
                }
            }
        }
        Some((text, base)) => {
            let file = match dir {
                Some(dir) => dir
                    .read(id, from, max)
                    .map_err(|e| Error::Internal(format!("output_dir: run {id}: {e}")))?,
                None => None,
            };
            let (bytes, first, size) = match file {
                Some(found) => found,
                None => {
                    let end = base + text.len() as u64;
                    let first = from.clamp(base, end);
                    slice.lost = first - from.min(first);
                    let skip = usize::try_from(first - base).unwrap_or(text.len());
                    let n = (text.len() - skip).min(max);
                    (text[skip..skip + n].to_vec(), first, end)
                }
            };
            slice.from = first;
            slice.bytes = bytes;
            if slice.next() < size {
                let whole = utf8_whole(&slice.bytes);
                slice.bytes.truncate(whole.max(1));
            }
            slice.done = slice.next() >= size;
        }
    }
    Ok(slice)
}
