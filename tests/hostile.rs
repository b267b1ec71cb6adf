//! Hostile input against a live daemon (a bounded proptest): random and
//! mutated request lines (valid requests with bytes flipped or cut short,
//! huge numbers, deep nesting, invalid UTF-8, CR/LF tricks, overlong
//! lines). The daemon stays up; every complete non-blank line gets exactly
//! one answer (a batch's is an array of responses), each a complete JSON
//! line, unless a line is over
//! `max_line_bytes`, which is answered with an error and a close; and a
//! well-behaved client on another connection is never disturbed.

use crate::util;

use proptest::prelude::*;
use serde_json::{json, Value};
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use util::{config, Client, Daemon};

/// Kept small so overlong lines are cheap to make.
const MAX_LINE: usize = 2048;
const CASES: u32 = 256;

/// Requests a mutation may start from: none of them changes the daemon
/// (there are no jobs), so flipped bytes cannot turn one into harm.
const VALID: &[&str] = &[
    r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
    r#"{"jsonrpc":"2.0","id":"s","method":"status","params":{}}"#,
    r#"{"jsonrpc":"2.0","id":2,"method":"jobs.list"}"#,
    r#"{"jsonrpc":"2.0","id":3,"method":"runs.get","params":{"run_id":"42"}}"#,
    r#"{"jsonrpc":"2.0","id":4,"method":"jobs.get","params":{"name":"nope"}}"#,
    r#"{"jsonrpc":"2.0","id":5,"method":"runs.list","params":{"limit":3}}"#,
];

fn valid() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(VALID).prop_map(|s| s.as_bytes().to_vec())
}

/// A valid request with a few bytes replaced by arbitrary ones.
fn flipped() -> impl Strategy<Value = Vec<u8>> {
    (
        valid(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    )
        .prop_map(|(mut line, flips)| {
            for (at, byte) in flips {
                let i = at.index(line.len());
                line[i] = byte;
            }
            line
        })
}

/// A valid request cut short.
fn truncated() -> impl Strategy<Value = Vec<u8>> {
    (valid(), any::<prop::sample::Index>())
        .prop_map(|(line, at)| line[..at.index(line.len())].to_vec())
}

fn huge_number() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(&[
        "1e400",
        "-1e400",
        "123456789012345678901234567890123456789",
        "18446744073709551616",
        "-0.0",
        "1.7976931348623157e309",
    ][..])
    .prop_map(|n| {
        format!(r#"{{"jsonrpc":"2.0","id":{n},"method":"runs.get","params":{{"run_id":{n},"limit":{n}}}}}"#)
            .into_bytes()
    })
}

fn deep() -> impl Strategy<Value = Vec<u8>> {
    (1usize..900, prop::bool::ANY).prop_map(|(depth, objects)| {
        let (open, close) = if objects {
            (r#"{"a":"#, "}")
        } else {
            ("[", "]")
        };
        let mut line = br#"{"jsonrpc":"2.0","id":9,"method":"ping","params":{"x":"#.to_vec();
        line.extend(open.repeat(depth).bytes());
        line.extend(b"1");
        line.extend(close.repeat(depth).bytes());
        line.extend(b"}}");
        line
    })
}

/// Byte sequences that are not UTF-8 (and a NUL, which is but must be escaped in JSON).
const BAD_UTF8: &[&[u8]] = &[
    b"\xff",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"\xf0\x28\x8c\xbc",
    b"\x00",
];

fn invalid_utf8() -> impl Strategy<Value = Vec<u8>> {
    (valid(), prop::sample::select(BAD_UTF8)).prop_map(|(line, bad)| {
        // Inside the method name's string.
        let text = String::from_utf8(line).unwrap_or_default();
        let at = text.find("\"method\":\"").map_or(0, |i| i + 10);
        let mut out = text.as_bytes()[..at].to_vec();
        out.extend_from_slice(bad);
        out.extend_from_slice(&text.as_bytes()[at..]);
        out
    })
}

/// Carriage returns where the framer might not expect them (a line's
/// own `\n` is added later).
fn cr_tricks() -> impl Strategy<Value = Vec<u8>> {
    (valid(), 0usize..4).prop_map(|(line, trick)| match trick {
        0 => [line.as_slice(), b"\r"].concat(),
        1 => [line.as_slice(), b"\r\r"].concat(),
        2 => [b"\r".as_slice(), line.as_slice()].concat(),
        _ => b" \t\r".to_vec(),
    })
}

fn random_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>().prop_filter("one line", |b| *b != b'\n'), 0..200)
}

fn overlong() -> impl Strategy<Value = Vec<u8>> {
    (MAX_LINE + 1..MAX_LINE * 3).prop_map(|n| vec![b'x'; n])
}

fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => flipped(),
        2 => truncated(),
        1 => huge_number(),
        1 => deep(),
        1 => invalid_utf8(),
        1 => cr_tricks(),
        2 => random_bytes(),
        1 => valid(),
        1 => overlong(),
    ]
}

/// What the server's framer makes of `stream`: the number of requests
/// (non-blank lines, a trailing `\r` dropped) it answers, whether a line
/// over the limit ends the connection, and the bytes up to that line.
fn frame(stream: &[u8]) -> (usize, bool, usize) {
    let mut requests = 0;
    let mut at = 0;
    while let Some(nl) = stream[at..].iter().position(|&b| b == b'\n') {
        let line = &stream[at..at + nl];
        at += nl + 1;
        let body = line.strip_suffix(b"\r").unwrap_or(line);
        if body.len() > MAX_LINE {
            return (requests + 1, true, at); // answered with an error, then closed
        }
        if !body.iter().all(u8::is_ascii_whitespace) {
            requests += 1;
        }
    }
    (requests, false, at)
}

/// Sends `lines` (each with its `\n`) and then a marker ping on a fresh
/// connection, and checks the answers.
fn check_connection(d: &Daemon, lines: &[Vec<u8>]) -> Result<(), TestCaseError> {
    let mut c = d.client();
    let mut bytes = Vec::new();
    for line in lines {
        bytes.extend_from_slice(line);
        bytes.push(b'\n');
    }
    let (expected, closes, end) = frame(&bytes);
    bytes.truncate(end);
    if !closes {
        bytes.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":\"end\",\"method\":\"ping\"}\n");
    }
    // The daemon may close before taking everything: a failed write is fine.
    let _ = c.reader.get_mut().write_all(&bytes);
    let mut answers = Vec::new();
    loop {
        let mut raw = Vec::new();
        match c.reader.read_until(b'\n', &mut raw) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if closes => {
                prop_assert!(raw.is_empty(), "part of an answer, then {e}");
                break;
            }
            Err(e) => return Err(TestCaseError::fail(format!("read failed: {e}"))),
        }
        prop_assert!(
            raw.ends_with(b"\n"),
            "truncated answer: {:?}",
            String::from_utf8_lossy(&raw)
        );
        let v: Value = serde_json::from_slice(&raw)
            .map_err(|e| TestCaseError::fail(format!("answer is not JSON ({e}): {raw:?}")))?;
        if v["id"] == "end" {
            prop_assert_eq!(&v["result"], "pong");
            break;
        }
        // A line that happens to be a JSON array is a batch: one answer
        // line holding an array of responses.
        for r in v
            .as_array()
            .map_or_else(|| vec![&v], |a| a.iter().collect())
        {
            prop_assert!(r["result"].is_null() != r["error"].is_null(), "{}", v);
        }
        answers.push(v);
    }
    prop_assert_eq!(answers.len(), expected, "answers: {:?}", answers);
    if closes {
        let last = answers.last().cloned().unwrap_or(Value::Null);
        prop_assert_eq!(&last["error"]["code"], -32600, "{}", last);
        prop_assert!(c.is_closed(), "closed after an overlong line");
    }
    Ok(())
}

#[test]
fn hostile_lines_get_one_answer_each_and_disturb_nobody() {
    let d = Daemon::start(&config(&format!("max_line_bytes = {MAX_LINE}"), ""));
    // The well-behaved client, on its own connection throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let pings = Arc::new(AtomicU64::new(0));
    let polite = {
        let (addr, stop, pings) = (d.addr, Arc::clone(&stop), Arc::clone(&pings));
        std::thread::spawn(move || {
            let mut c = Client::connect(addr);
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(c.ok("ping", json!({})), "pong");
                pings.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let connections = AtomicU64::new(0);
    let result = runner.run(&prop::collection::vec(line(), 1..24), |lines| {
        connections.fetch_add(1, Ordering::Relaxed);
        check_connection(&d, &lines)
    });
    stop.store(true, Ordering::Relaxed);
    polite
        .join()
        .expect("the well-behaved client was disturbed");
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(pings.load(Ordering::Relaxed) > 0);
    assert!(connections.load(Ordering::Relaxed) >= u64::from(CASES));
    let mut c = d.client();
    let status = c.ok("status", json!({}));
    assert_eq!(status["health"], "ok", "{status}");
}
