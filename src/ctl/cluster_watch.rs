//! `tickd ctl watch --cluster`: every node's run events, read straight
//! from the Redis Stream `NAMESPACE:events` (`XREAD BLOCK`, from the
//! newest entry on), with the `[cluster]` table of the config file for
//! the Redis URL, password and namespace. No daemon is asked: the Stream
//! is the fleet's one place for run events, readable by any tool.

use super::Format;
use serde_json::Value;
use std::path::Path;
use tickd::cluster::{link, Keys};

/// How long one read blocks before it is sent again.
const BLOCK_MS: u64 = 5_000;

/// Follows the events Stream of the cluster the config at `config`
/// belongs to, printing one line per event (of `jobs`, if not empty)
/// until interrupted or the reader of stdout goes away.
pub fn run(config: &Path, jobs: &[String], format: Format) -> Result<(), String> {
    let config = tickd::config::load(config).map_err(|e| e.to_string())?;
    let cluster = config.cluster.ok_or_else(|| {
        format!(
            "{}: no [cluster] table: --cluster reads the Redis of a cluster (see docs/cluster.md)",
            config.path.display()
        )
    })?;
    let source = link::Source::new(&cluster)?;
    let mut con = source
        .connect()
        .map_err(|e| format!("Redis at {}: {e}", link::redacted(&cluster.redis)))?;
    con.set_read_timeout(Some(
        std::time::Duration::from_millis(BLOCK_MS) + link::IO_TIMEOUT,
    ))
    .map_err(|e| e.to_string())?;
    let stream = Keys::new(&cluster.namespace).events();
    eprintln!(
        "watching run events of every node in {stream} on {} (Ctrl-C to stop)",
        link::redacted(&cluster.redis)
    );
    let mut last = "$".to_string();
    loop {
        let reply: redis::streams::StreamReadReply = redis::cmd("XREAD")
            .arg("BLOCK")
            .arg(BLOCK_MS)
            .arg("COUNT")
            .arg(1000)
            .arg("STREAMS")
            .arg(&stream)
            .arg(&last)
            .query(&mut con)
            .map_err(|e| format!("reading {stream}: {e}"))?;
        for key in reply.keys {
            for entry in key.ids {
                last.clone_from(&entry.id);
                let text: String = entry.get("run").unwrap_or_default();
                let Ok(run) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                let job = run["job"].as_str().unwrap_or("");
                if !jobs.is_empty() && !jobs.iter().any(|j| j == job) {
                    continue;
                }
                let line = match format {
                    Format::Json => format!("{run}\n"),
                    Format::Human => {
                        let node: String = entry.get("node").unwrap_or_default();
                        format!("{}  on {node}\n", super::watch::event_line(&run))
                    }
                };
                if !super::write_stdout(&line)? {
                    return Ok(());
                }
            }
        }
    }
}
