//! `jobs.list`: the whole list, or one page of it.
//!
//! **Without params** (or with `{}`) the answer is what it has always
//! been: an array of every job object, in name order. Its encoding is
//! cached per core generation ([`ListCache`]). It is encoded into a buffer
//! capped at `daemon.max_output_bytes` ([`Capped`]): a list that does not
//! fit is refused with `-32602` ([`Error::JobListTooLarge`], whose message
//! says to page with `limit` and `after`), never sent to a client whose
//! connection would be dropped for it. Encoding stops at the cap, so the
//! refusal costs at most `max_output_bytes` of work, however many jobs
//! there are.
//!
//! **With any of `limit`, `after`, `prefix`, `source`** the answer is a
//! page: `{"jobs": [...], "next_after": NAME | null}` — the jobs in name
//! order after `after`, whose names start with `prefix` and whose source is
//! `source`, at most `limit` ([`DEFAULT_PAGE`] unless given, at most
//! [`MAX_PAGE`]). `next_after` is the cursor of the next page (pass it as
//! `after`); `null` means the list is done. Like redis' `SCAN`, a page may
//! hold fewer than `limit` jobs (even none) while `next_after` is not null:
//! a page also ends at `max_output_bytes` of job objects, and after
//! looking at [`SCAN_BUDGET`] names (a `source` filter that matches few
//! jobs would otherwise walk them all under the core lock). The cursor is
//! a name, not a position, so a job that exists from the first page to the
//! last is seen exactly once however many jobs are added or removed in
//! between (see [`crate::state`]'s `pages`).

use super::call::JobsList;
use super::encode;
use super::runs::Capped;
use crate::daemon::{Error, Shared};
use parking_lot::Mutex;
use serde_json::value::RawValue;
use std::io::Write;
use std::sync::Arc;

/// Jobs in a page unless `limit` says otherwise.
pub const DEFAULT_PAGE: u64 = 100;
/// The largest `limit` taken (a larger one is read as this).
pub const MAX_PAGE: u64 = 10_000;
/// Most job names one page looks at (matching a filter or not).
pub const SCAN_BUDGET: usize = 100_000;
/// Answer bytes kept for what wraps a result (the JSON-RPC envelope and
/// its id, or the HTTP head), so that a list that fits the cap is sent
/// whole under `max_output_bytes`.
const ENVELOPE_ROOM: usize = 256;

/// `jobs.list {limit?, after?, prefix?, source?}`: the whole list without
/// params, else a page (see the module docs).
pub fn list(shared: &Shared, cache: &ListCache, p: JobsList<'_>) -> Result<Box<RawValue>, Error> {
    let max_out = shared.board.live.read().max_output_bytes;
    if p.paged() {
        page(shared, &p, max_out, SCAN_BUDGET)
    } else {
        whole(shared, cache, max_out)
    }
}

/// Every job object, sorted by name; refused if it does not fit under
/// `max_out` (`daemon.max_output_bytes`). Serialized straight from the
/// state (no `Value` tree): it is what dashboards poll, so its encoding is
/// kept until the core changes.
fn whole(shared: &Shared, cache: &ListCache, max_out: usize) -> Result<Box<RawValue>, Error> {
    let cap = max_out.saturating_sub(ENVELOPE_ROOM);
    let core = shared.core.lock();
    let generation = core.generation();
    match cache.get(generation, cap) {
        Some(Cached::List(hit)) => {
            // The copy for the answer is made after the core lock is let go.
            drop(core);
            return Ok(hit.as_ref().to_owned());
        }
        Some(Cached::TooLarge { jobs }) => {
            return Err(Error::JobListTooLarge { cap: max_out, jobs })
        }
        None => {}
    }
    let mut text = Capped::new(cap);
    text.out.push(b'[');
    let mut keep = true;
    let mut fits = true;
    for (i, (name, _)) in core.jobs_from(None, "").enumerate() {
        let Some(view) = core.job_view(name, false) else {
            continue;
        };
        keep &= !view.changes_with_time();
        let sep: &[u8] = if i == 0 { b"" } else { b"," };
        if text.write_all(sep).is_err() || serde_json::to_writer(&mut text, &view).is_err() {
            fits = false;
            break;
        }
    }
    fits &= text.write_all(b"]").is_ok();
    let jobs = core.jobs_len();
    drop(core);
    if !fits {
        // Stored after the core lock is let go, as below.
        cache.put(generation, cap, Cached::TooLarge { jobs });
        return Err(Error::JobListTooLarge { cap: max_out, jobs });
    }
    let encoded = text.into_raw()?;
    if keep && encoded.get().len() <= MAX_CACHED_LIST {
        // Stored after the core lock is let go: a newer generation may
        // have been cached meanwhile, and `put` keeps the newer one.
        cache.put(generation, cap, Cached::List(Arc::from(encoded.clone())));
    }
    Ok(encoded)
}

/// One page: `{"jobs": [...], "next_after": NAME | null}`, under `max_out`
/// (`daemon.max_output_bytes`), looking at `scan_budget` names at most.
fn page(
    shared: &Shared,
    p: &JobsList<'_>,
    max_out: usize,
    scan_budget: usize,
) -> Result<Box<RawValue>, Error> {
    let cap = max_out.saturating_sub(ENVELOPE_ROOM);
    let limit = match p.limit {
        None => DEFAULT_PAGE,
        Some(0) => {
            return Err(Error::Invalid {
                param: "limit",
                what: "must be at least 1".into(),
            })
        }
        Some(n) => n.min(MAX_PAGE),
    };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let source = p.source.map(|s| s.0);
    let mut text = Capped::new(cap);
    text.out.extend_from_slice(b"{\"jobs\":[");
    let core = shared.core.lock();
    let mut taken = 0usize;
    // The last job put in the page, and the cursor of the next page.
    let mut last: Option<&str> = None;
    let mut next: Option<&str> = None;
    for (scanned, (name, entry)) in core.jobs_from(p.after, p.prefix.unwrap_or("")).enumerate() {
        if source.is_none_or(|s| entry.source == s) {
            if taken == limit {
                // One more would match: the list goes on after the last.
                next = last;
                break;
            }
            let mark = text.out.len();
            let sep: &[u8] = if taken == 0 { b"" } else { b"," };
            let fits = text.write_all(sep).is_ok()
                && core
                    .job_view(name, false)
                    .is_some_and(|v| serde_json::to_writer(&mut text, &v).is_ok());
            if !fits {
                text.out.truncate(mark);
                if taken == 0 {
                    return Err(Error::JobTooLarge {
                        job: name.to_string(),
                        cap: max_out,
                    });
                }
                next = last;
                break;
            }
            taken += 1;
            last = Some(name);
        }
        if scanned + 1 == scan_budget {
            next = Some(name);
            break;
        }
    }
    // The tail is within the envelope's room (a job name is short): it is
    // written past the cap.
    text.out.extend_from_slice(b"],\"next_after\":");
    let tail = encode(&next)?;
    text.out.extend_from_slice(tail.get().as_bytes());
    text.out.push(b'}');
    drop(core);
    text.into_raw()
}

/// Largest `jobs.list` answer kept by the cache. Every job's latest run
/// carries up to 64 KiB of output, so a big, chatty job list could
/// otherwise keep megabytes alive for a cache hit.
const MAX_CACHED_LIST: usize = 256 * 1024;

/// What the cache keeps of one generation.
#[derive(Debug, Clone)]
enum Cached {
    /// The encoded list.
    List(Arc<RawValue>),
    /// The list did not fit the cap; it held this many jobs.
    TooLarge {
        /// Jobs in the list.
        jobs: usize,
    },
}

/// The last whole-list `jobs.list` answer and the core generation (and
/// the cap) it was made under.
///
/// Valid while the generation is unchanged (any mutable access to the core
/// bumps it, see [`crate::state::CoreLock`]), except when a job's latest
/// run is running: its `duration_ms` grows with the clock, so such an
/// answer is never kept. Looked up under the core lock, so a hit is exactly
/// what encoding the core would give; answers over [`MAX_CACHED_LIST`]
/// bytes are not kept. A list refused as too large is remembered as such,
/// so that clients polling it cost nothing until the jobs change.
#[derive(Debug, Default)]
pub struct ListCache {
    slot: Mutex<Option<(u64, usize, Cached)>>,
}

impl ListCache {
    /// What was made at `generation` under `cap`, if that is what is kept.
    fn get(&self, generation: u64, cap: usize) -> Option<Cached> {
        match &*self.slot.lock() {
            Some((g, c, kept)) if *g == generation && *c == cap => Some(kept.clone()),
            _ => None,
        }
    }

    /// Keeps `kept` as what `generation` gives under `cap`, unless a newer
    /// generation's is kept already.
    fn put(&self, generation: u64, cap: usize, kept: Cached) {
        let mut slot = self.slot.lock();
        if slot.as_ref().is_some_and(|(g, _, _)| *g > generation) {
            return;
        }
        *slot = Some((generation, cap, kept));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::Board;
    use crate::methods::call::SourceFilter;
    use crate::state::{Core, JobSource};
    use serde_json::{json, Value};
    use std::path::Path;

    /// Shared state holding jobs `names` (the `api.` ones from the API),
    /// under `max_output_bytes = max_out`.
    fn shared(names: &[String], max_out: usize) -> (Shared, mio::Poll) {
        let mut text = format!("[daemon]\nmax_output_bytes = {max_out}\n");
        for n in names {
            text.push_str(&format!("[[jobs]]\nname = \"{n}\"\ncommand = [\"true\"]\n"));
        }
        let cfg = crate::config::parse(&text, Path::new("t.toml")).expect("valid config");
        let mut core = Core::new(10);
        for def in cfg.jobs {
            let api = def.name.starts_with("api.");
            let name = def.name.clone();
            core.upsert_job(Arc::new(def));
            if api {
                core.job_mut(&name).expect("job").source = JobSource::Api;
            }
        }
        Shared::unjournaled(core, Board::new(cfg.path, cfg.daemon.live, false))
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("job{i:03}")).collect()
    }

    fn parse(raw: &RawValue) -> Value {
        serde_json::from_str(raw.get()).expect("JSON")
    }

    /// Walks every page with `p` (its `after` replaced page by page);
    /// returns the names seen and the number of pages.
    fn walk(
        shared: &Shared,
        p: JobsList<'_>,
        max_out: usize,
        budget: usize,
    ) -> (Vec<String>, usize) {
        let mut seen = Vec::new();
        let mut after: Option<String> = p.after.map(str::to_string);
        let mut pages = 0;
        loop {
            let q = JobsList {
                after: after.as_deref(),
                ..JobsList { ..p }
            };
            let page = parse(&page(shared, &q, max_out, budget).expect("page"));
            pages += 1;
            for job in page["jobs"].as_array().expect("jobs") {
                seen.push(job["name"].as_str().expect("name").to_string());
            }
            match page["next_after"].as_str() {
                Some(next) => after = Some(next.to_string()),
                None => return (seen, pages),
            }
            assert!(pages < 1000, "paging does not end");
        }
    }

    #[test]
    fn the_whole_list_is_the_array_it_always_was_and_is_cached() {
        let (sh, _poll) = shared(&names(3), 1 << 20);
        let cache = ListCache::default();
        let got = list(&sh, &cache, JobsList::default()).expect("list");
        let core = sh.core.lock();
        let expected = serde_json::to_string(&core.job_views()).expect("encode");
        drop(core);
        assert_eq!(got.get(), expected, "byte for byte");
        let again = list(&sh, &cache, JobsList::default()).expect("list");
        assert_eq!(again.get(), expected);
        assert!(matches!(
            cache.get(sh.core.lock().generation(), (1 << 20) - ENVELOPE_ROOM),
            Some(Cached::List(_))
        ));
    }

    #[test]
    fn a_whole_list_past_max_output_bytes_is_refused_with_the_way_to_page() {
        let (sh, _poll) = shared(&names(40), 4096);
        let cache = ListCache::default();
        let err = list(&sh, &cache, JobsList::default()).expect_err("too large");
        assert_eq!(
            err,
            Error::JobListTooLarge {
                cap: 4096,
                jobs: 40
            }
        );
        let message = err.to_string();
        assert!(
            message.contains("`limit`") && message.contains("`after`"),
            "{message}"
        );
        // Remembered for the generation: refused again without encoding.
        assert!(matches!(
            cache.get(sh.core.lock().generation(), 4096 - ENVELOPE_ROOM),
            Some(Cached::TooLarge { jobs: 40 })
        ));
        assert_eq!(list(&sh, &cache, JobsList::default()).err(), Some(err));
        // Pages of the same list fit, each under the cap.
        let p = JobsList {
            limit: Some(1000),
            ..JobsList::default()
        };
        let first = page(&sh, &p, 4096, SCAN_BUDGET).expect("a page");
        assert!(first.get().len() <= 4096);
        let (seen, pages) = walk(&sh, p, 4096, SCAN_BUDGET);
        assert_eq!(seen, names(40));
        assert!(pages > 1);
    }

    #[test]
    fn pages_follow_the_cursor_to_the_end() {
        let all = names(25);
        let (sh, _poll) = shared(&all, 1 << 20);
        let p = JobsList {
            limit: Some(10),
            ..JobsList::default()
        };
        let first = parse(&page(&sh, &p, 1 << 20, SCAN_BUDGET).expect("page"));
        assert_eq!(first["jobs"].as_array().map(Vec::len), Some(10));
        assert_eq!(first["next_after"], json!("job009"));
        let (seen, pages) = walk(&sh, p, 1 << 20, SCAN_BUDGET);
        assert_eq!((seen, pages), (all.clone(), 3));
        // A last page that is exactly full says so: no empty page after it.
        let p = JobsList {
            limit: Some(5),
            after: Some("job019"),
            ..JobsList::default()
        };
        let last = parse(&page(&sh, &p, 1 << 20, SCAN_BUDGET).expect("page"));
        assert_eq!(last["jobs"].as_array().map(Vec::len), Some(5));
        assert_eq!(last["next_after"], Value::Null);
        // Without `limit`, a page holds DEFAULT_PAGE jobs at most.
        let p = JobsList {
            prefix: Some("job01"),
            ..JobsList::default()
        };
        let (seen, _) = walk(&sh, p, 1 << 20, SCAN_BUDGET);
        assert_eq!(seen, all[10..20]);
        let zero = JobsList {
            limit: Some(0),
            ..JobsList::default()
        };
        assert!(matches!(
            page(&sh, &zero, 1 << 20, SCAN_BUDGET),
            Err(Error::Invalid { param: "limit", .. })
        ));
    }

    #[test]
    fn source_filters_and_the_scan_budget_end_pages_early_but_lose_nothing() {
        let mut all = names(30);
        all.extend(["api.a", "api.b", "api.c"].map(String::from));
        all.sort();
        let (sh, _poll) = shared(&all, 1 << 20);
        let api = |limit| JobsList {
            limit,
            source: Some(SourceFilter(JobSource::Api)),
            ..JobsList::default()
        };
        let (seen, _) = walk(&sh, api(Some(2)), 1 << 20, SCAN_BUDGET);
        assert_eq!(seen, ["api.a", "api.b", "api.c"]);
        // Looking at 4 names a page: short (even empty) pages, same jobs.
        let (seen, pages) = walk(&sh, api(None), 1 << 20, 4);
        assert_eq!(seen, ["api.a", "api.b", "api.c"]);
        assert!(pages >= all.len() / 4, "{pages} pages");
        let file = JobsList {
            source: Some(SourceFilter(JobSource::File)),
            ..JobsList::default()
        };
        let (seen, _) = walk(&sh, file, 1 << 20, 7);
        assert_eq!(seen, names(30));
    }

    #[test]
    fn a_page_ends_at_max_output_bytes_and_a_job_too_large_alone_is_refused() {
        let all = names(30);
        let (sh, _poll) = shared(&all, 1 << 20);
        let p = JobsList {
            limit: Some(10_000),
            ..JobsList::default()
        };
        let short = parse(&page(&sh, &p, 2048, SCAN_BUDGET).expect("page"));
        let n = short["jobs"].as_array().map_or(0, Vec::len);
        assert!(n > 0 && n < 30, "{n} jobs");
        let last = short["jobs"][n - 1]["name"].clone();
        assert_eq!(short["next_after"], last);
        let tiny = page(&sh, &p, ENVELOPE_ROOM + 10, SCAN_BUDGET);
        assert_eq!(
            tiny.err(),
            Some(Error::JobTooLarge {
                job: "job000".into(),
                cap: ENVELOPE_ROOM + 10
            })
        );
    }
}
