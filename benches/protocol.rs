//! The per-request protocol path vs. a bare `serde_json::Value` round trip.
//!
//! tickd's path, as the server runs it for each request: `LineFramer` cuts
//! the line out of the connection's read buffer → `parse_request` → the
//! method's parameter check (`Params::decode` into its params struct) → `write_result`
//! appends the response line (with its `jsonrpc`/`id` envelope) to the
//! connection's output buffer. The method's result is built once, outside
//! the timed region: producing it is the handler's work, not the protocol's.
//!
//! Baseline (`naive`), measured in the same run on the same line and result:
//! `serde_json::from_slice::<Value>(line)` + `serde_json::to_writer` of the
//! result + `\n`, with no framing (the line is already cut out, or split on
//! `\n` for the pipelined case), no validation and no envelope. It is the
//! floor that framing + parsing + encoding should stay close to; figures are
//! quoted as `tickd / naive`.
//!
//! Groups (all times are per request):
//! * `request/ping_min`: `{"method":"ping"}` → `"pong"`.
//! * `request/ping_full`: `{"jsonrpc":"2.0","id":17,"method":"ping"}` → `"pong"`.
//! * `request/jobs_get`: a `jobs.get` with `params` → a job object.
//! * `request/status`: a `status` request → a status-sized object.
//! * `pipelined/ping_x32`: one buffer of 32 ping lines, framed and answered
//!   in one go as a client that pipelines would send them.
//! * `encode/status`: encoding only — `write_result` of the status object vs
//!   `to_writer` of the same object.
//!
//! Run: `cargo bench --bench protocol`
//! (quick look: `cargo bench --bench protocol -- --warm-up-time 1 --measurement-time 3`).

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Bencher, Criterion, Throughput};
use serde_json::{json, Value};
use tickd::methods::call::{JobName, NoParams};
use tickd::protocol::codec::{Frame, LineFramer};
use tickd::protocol::params::Params;
use tickd::protocol::rpc::{parse_request, write_result};

/// The daemon's default `max_line_bytes`.
const MAX_LINE: usize = 65_536;
/// Lines in the pipelined buffer.
const PIPELINED: u32 = 32;

/// One request kind: its line, the check of its method's params, and the
/// result the method answers with.
struct Case {
    name: &'static str,
    line: &'static [u8],
    check: fn(&Params) -> bool,
    result: Value,
}

/// The params check of a method that takes none.
fn no_params(p: &Params) -> bool {
    p.decode::<NoParams>().is_ok()
}

/// The params check of `jobs.get {name}`.
fn job_name(p: &Params) -> bool {
    p.decode::<JobName<'_>>().is_ok()
}

fn run_json(id: u64, job: &str, state: &str) -> Value {
    json!({
        "run_id": id.to_string(),
        "job": job,
        "trigger": "schedule",
        "state": state,
        "attempt": 1,
        "queued_at": "2024-05-01T02:00:00.000Z",
        "started_at": "2024-05-01T02:00:00.004Z",
        "finished_at": "2024-05-01T02:03:12.518Z",
        "duration_ms": 192_514,
        "exit_code": 0,
        "error": null,
        "output": "backed up 1832 files (4.1 GiB)\n",
        "progress": null,
        "scheduled_at": "2024-05-01T02:00:00.000Z",
        "pid": 48213,
    })
}

/// Shaped like `Core::job_json(name, true)` with a short history.
fn job_json() -> Value {
    json!({
        "name": "nightly-backup",
        "kind": "exec",
        "schedule": "0 2 * * *",
        "enabled": true,
        "running": false,
        "running_count": 0,
        "queued_count": 0,
        "next_run": "2024-05-02T02:00:00.000Z",
        "last_run": run_json(1041, "nightly-backup", "succeeded"),
        "runs_total": 1041,
        "failures_total": 3,
        "skipped_total": 0,
        "overlap": "skip",
        "timeout_ms": 3_600_000,
        "history": [
            run_json(1039, "nightly-backup", "succeeded"),
            run_json(1040, "nightly-backup", "failed"),
            run_json(1041, "nightly-backup", "succeeded"),
        ],
    })
}

/// Shaped like the `status` method's answer.
fn status_json() -> Value {
    json!({
        "version": "0.1.0",
        "pid": 48100,
        "uptime_ms": 86_400_123,
        "health": "ok",
        "stopping": false,
        "workers": { "configured": 4, "alive": 4, "busy": 1, "respawned": 0, "min": 2 },
        "queue": { "depth": 0, "capacity": 256 },
        "connections": 3,
        "jobs": 12,
        "runs_in_memory": 600,
        "timers_armed": 11,
        "config": {
            "path": "/etc/tickd/tickd.toml",
            "generation": 2,
            "loaded_at": "2024-05-01T00:00:00.000Z",
            "last_reload_error": null,
        },
    })
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "ping_min",
            line: br#"{"method":"ping"}"#,
            check: no_params,
            result: json!("pong"),
        },
        Case {
            name: "ping_full",
            line: br#"{"jsonrpc":"2.0","id":17,"method":"ping"}"#,
            check: no_params,
            result: json!("pong"),
        },
        Case {
            name: "jobs_get",
            line: br#"{"jsonrpc":"2.0","id":"c-42","method":"jobs.get","params":{"name":"nightly-backup"}}"#,
            check: job_name,
            result: job_json(),
        },
        Case {
            name: "status",
            line: br#"{"jsonrpc":"2.0","id":3,"method":"status"}"#,
            check: no_params,
            result: status_json(),
        },
    ]
}

/// Times `iters` runs of `f`, each handling `n` requests; returns the time
/// per request so every group reports the same unit.
fn per_request(b: &mut Bencher<'_>, n: u32, mut f: impl FnMut()) {
    b.iter_custom(|iters| {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        start.elapsed() / n
    });
}

/// tickd's path for every line in `buf`; returns how many were answered.
fn tickd_answer(buf: &[u8], case: &Case, out: &mut Vec<u8>) -> u32 {
    let mut framer = LineFramer::new(MAX_LINE);
    let mut answered = 0;
    loop {
        let line = match framer.next_frame(buf) {
            Frame::Line(line) => line,
            Frame::Incomplete => return answered,
            Frame::TooLong => panic!("{}: line over {MAX_LINE} bytes", case.name),
        };
        let Ok(req) = parse_request(line) else {
            panic!("{}: request refused", case.name);
        };
        black_box(&req.method);
        if !black_box((case.check)(&req.params)) {
            panic!("{}: unexpected params", case.name);
        }
        write_result(out, &req.id, &case.result);
        answered += 1;
    }
}

/// The baseline for one line: decode to a `Value`, encode the result.
fn naive_answer(line: &[u8], result: &Value, out: &mut Vec<u8>) {
    let v: Value = serde_json::from_slice(line).expect("valid JSON");
    black_box(&v);
    serde_json::to_writer(&mut *out, result).expect("encode");
    out.push(b'\n');
}

fn request(c: &mut Criterion) {
    let mut g = c.benchmark_group("request");
    g.throughput(Throughput::Elements(1));
    for case in cases() {
        let mut buf = case.line.to_vec();
        buf.push(b'\n');
        let mut out = Vec::with_capacity(4096);
        g.bench_function(format!("{}/tickd", case.name), |b| {
            per_request(b, 1, || {
                out.clear();
                let n = tickd_answer(black_box(&buf), &case, &mut out);
                assert_eq!(n, 1);
                black_box(&out);
            });
        });
        g.bench_function(format!("{}/naive", case.name), |b| {
            per_request(b, 1, || {
                out.clear();
                naive_answer(black_box(case.line), &case.result, &mut out);
                black_box(&out);
            });
        });
    }
    g.finish();
}

fn pipelined(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipelined");
    g.throughput(Throughput::Elements(1));
    let case = Case {
        name: "ping_x32",
        // The 32 lines differ in their id, so they are built below.
        line: b"",
        check: no_params,
        result: json!("pong"),
    };
    let mut buf = Vec::new();
    for id in 0..PIPELINED {
        buf.extend_from_slice(
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#).as_bytes(),
        );
        buf.push(b'\n');
    }
    let mut out = Vec::with_capacity(4096);
    g.bench_function(format!("{}/tickd", case.name), |b| {
        per_request(b, PIPELINED, || {
            out.clear();
            let n = tickd_answer(black_box(&buf), &case, &mut out);
            assert_eq!(n, PIPELINED);
            black_box(&out);
        });
    });
    g.bench_function(format!("{}/naive", case.name), |b| {
        per_request(b, PIPELINED, || {
            out.clear();
            for line in black_box(&buf).split(|&b| b == b'\n') {
                if !line.is_empty() {
                    naive_answer(line, &case.result, &mut out);
                }
            }
            black_box(&out);
        });
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(1));
    let status = status_json();
    let id = json!(3);
    let mut out = Vec::with_capacity(4096);
    g.bench_function("status/tickd", |b| {
        per_request(b, 1, || {
            out.clear();
            write_result(&mut out, black_box(&id), black_box(&status));
            black_box(&out);
        });
    });
    g.bench_function("status/naive", |b| {
        per_request(b, 1, || {
            out.clear();
            serde_json::to_writer(&mut out, black_box(&status)).expect("encode");
            out.push(b'\n');
            black_box(&out);
        });
    });
    g.finish();
}

criterion_group!(benches, request, pipelined, encode);
criterion_main!(benches);
