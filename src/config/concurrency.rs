//! `[concurrency.NAME] max_running = N`: named limits on how many runs of
//! the jobs that name them (`concurrency = "NAME"`) run at once (pueue's
//! groups, Cronicle's categories). Read from the item the file's reading
//! kept, like `[cluster]`; a reload may change them.

use std::collections::BTreeMap;

use toml_edit::Item;

use super::error::Report;
use super::raw::{place, unknown};
use super::values::is_job_name;

/// The largest `max_running`.
pub const MAX_RUNNING: i64 = 100_000;

/// Both stages for the `[concurrency]` item: the limits by name.
pub(super) fn check(r: &mut Report<'_>, item: &Item, at: usize) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    let Some(table) = item.as_table_like() else {
        r.error(
            at,
            "concurrency",
            "expected a table of tables ([concurrency.NAME])",
        );
        return out;
    };
    for (name, limit) in table.iter() {
        let limit_at = place(table, name, limit, at);
        let key = format!("concurrency.{name}");
        if !is_job_name(name) {
            r.error(
                limit_at,
                &key,
                "a limit's name is 1 to 64 characters of A-Z a-z 0-9 _ . -",
            );
            continue;
        }
        let Some(fields) = limit.as_table_like() else {
            r.error(
                limit_at,
                &key,
                "expected a table: [concurrency.NAME] with max_running = N",
            );
            continue;
        };
        let mut max = None;
        for (field, value) in fields.iter() {
            let field_at = place(fields, field, value, limit_at);
            let k = format!("{key}.{field}");
            match field {
                "max_running" => match value.as_integer() {
                    Some(n) if (1..=MAX_RUNNING).contains(&n) => max = Some(n as u32),
                    _ => r.error(
                        field_at,
                        &k,
                        format!("must be an integer from 1 to {MAX_RUNNING}"),
                    ),
                },
                _ => r.error(field_at, &k, unknown(field, ["max_running"])),
            }
        }
        match max {
            Some(n) => {
                out.insert(name.to_string(), n);
            }
            None if fields.iter().all(|(f, _)| f != "max_running") => {
                r.error(limit_at, &key, "missing: max_running = N");
            }
            None => {}
        }
    }
    out
}
