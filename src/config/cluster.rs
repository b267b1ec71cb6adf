//! `[cluster]`: cluster mode on Redis (docs/cluster.md).
//!
//! Read and checked here like the other tables; the settings are fixed at
//! start (a reload that changes them warns and keeps the running ones,
//! see [`crate::daemon`]'s reload).

use std::path::PathBuf;
use std::time::Duration;

use toml_edit::{Item, TableLike};

use super::error::Report;
use super::raw::{place, unknown, Reader, Sp};
use super::values::{self, at};

/// The keys of `[cluster]`, for suggestions.
const CLUSTER_KEYS: [&str; 6] = [
    "redis",
    "redis_password_file",
    "node",
    "namespace",
    "claim_ttl",
    "on_redis_down",
];

/// The `[cluster]` table as written.
#[derive(Debug, Default)]
struct RawCluster {
    redis: Sp<String>,
    redis_password_file: Sp<String>,
    node: Sp<String>,
    namespace: Sp<String>,
    claim_ttl: Sp<String>,
    on_redis_down: Sp<String>,
    /// Where the table starts, for "missing key" messages.
    at: usize,
}

/// What a node does with a due occurrence while Redis is unreachable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnRedisDown {
    /// Not run, counted as missed: never two runs of one occurrence.
    Pause,
    /// Run by every node on its own: availability over exactly-once.
    RunLocal,
}

impl OnRedisDown {
    /// The config word.
    pub fn as_str(self) -> &'static str {
        match self {
            OnRedisDown::Pause => "pause",
            OnRedisDown::RunLocal => "run-local",
        }
    }
}

/// The validated `[cluster]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterConfig {
    /// `redis://`, `rediss://` or `redis+sentinel://` URL.
    pub redis: String,
    /// A file holding the Redis password (first line), if any.
    pub redis_password_file: Option<PathBuf>,
    /// This node's name, unique in the fleet.
    pub node: String,
    /// The prefix of every key.
    pub namespace: String,
    /// How long a claim, and a node's heartbeat, lives.
    pub claim_ttl: Duration,
    /// See [`OnRedisDown`].
    pub on_redis_down: OnRedisDown,
}

/// The shortest `claim_ttl`: a node beats every quarter of it.
pub const MIN_CLAIM_TTL: Duration = Duration::from_secs(1);
/// The longest `claim_ttl`.
pub const MAX_CLAIM_TTL: Duration = Duration::from_secs(24 * 3600);

/// Both stages for the `[cluster]` item the file's reading kept: `None`
/// if a key is wrong (reported in `r`).
pub(super) fn check(r: &mut Report<'_>, item: &Item, at: usize) -> Option<ClusterConfig> {
    let table = item.as_table_like()?;
    let raw = {
        let mut rd = Reader { r, bad: Vec::new() };
        read(&mut rd, table, at)
    };
    validate(r, raw)
}

/// Stage one: the table's keys.
fn read(rd: &mut Reader<'_, '_>, table: &dyn TableLike, table_at: usize) -> RawCluster {
    let mut c = RawCluster {
        at: table_at,
        ..RawCluster::default()
    };
    for (name, item) in table.iter() {
        let at = place(table, name, item, table_at);
        let key = format!("cluster.{name}");
        let k = key.as_str();
        match name {
            "redis" => c.redis = rd.string("redis", item, at, k),
            "redis_password_file" => {
                c.redis_password_file = rd.string("redis_password_file", item, at, k);
            }
            "node" => c.node = rd.string("node", item, at, k),
            "namespace" => c.namespace = rd.string("namespace", item, at, k),
            "claim_ttl" => c.claim_ttl = rd.string("claim_ttl", item, at, k),
            "on_redis_down" => c.on_redis_down = rd.string("on_redis_down", item, at, k),
            _ => rd.r.error(at, k, unknown(name, CLUSTER_KEYS)),
        }
    }
    c
}

/// Stage two: checks the table; `None` if a key is wrong (reported in `r`).
fn validate(r: &mut Report<'_>, c: RawCluster) -> Option<ClusterConfig> {
    let before = r.error_count();
    let redis = match &c.redis {
        None => {
            r.error(
                c.at,
                "cluster.redis",
                "missing: the Redis URL, e.g. \"redis://127.0.0.1:6379/0\"",
            );
            String::new()
        }
        Some(v) => {
            let url = v.get_ref().trim().to_string();
            if let Err(why) = check_url(&url) {
                r.error(at(v), "cluster.redis", why);
            }
            url
        }
    };
    let redis_password_file = c.redis_password_file.as_ref().map(|v| {
        let path = PathBuf::from(v.get_ref());
        if !path.is_absolute() {
            r.error(
                at(v),
                "cluster.redis_password_file",
                "must be an absolute path",
            );
        }
        path
    });
    let node = match &c.node {
        Some(v) => {
            let name = v.get_ref().trim().to_string();
            if let Err(why) = check_word(&name, 64) {
                r.error(at(v), "cluster.node", why);
            }
            name
        }
        None => host_name(),
    };
    let namespace = match &c.namespace {
        Some(v) => {
            let ns = v.get_ref().trim().to_string();
            if let Err(why) = check_word(&ns, 64) {
                r.error(at(v), "cluster.namespace", why);
            }
            ns
        }
        None => "tickd".to_string(),
    };
    let claim_ttl = values::duration(
        r,
        c.claim_ttl.as_ref(),
        "cluster.claim_ttl",
        Duration::from_secs(60),
        true,
    );
    if let Some(v) = &c.claim_ttl {
        if claim_ttl < MIN_CLAIM_TTL || claim_ttl > MAX_CLAIM_TTL {
            r.error(
                at(v),
                "cluster.claim_ttl",
                "must be between 1s and 24h (nodes beat every quarter of it)",
            );
        }
    }
    let on_redis_down = match values::choice(
        r,
        c.on_redis_down.as_ref(),
        "cluster.on_redis_down",
        &["pause", "run-local"],
        "pause",
    ) {
        "run-local" => OnRedisDown::RunLocal,
        _ => OnRedisDown::Pause,
    };
    (r.error_count() == before).then_some(ClusterConfig {
        redis,
        redis_password_file,
        node,
        namespace,
        claim_ttl,
        on_redis_down,
    })
}

/// The schemes tickd connects with.
fn check_url(url: &str) -> Result<(), String> {
    let scheme = url.split_once("://").map(|(s, _)| s);
    match scheme {
        Some("redis" | "rediss" | "redis+sentinel" | "rediss+sentinel") => {}
        _ => {
            return Err(format!(
                "\"{url}\" is not a Redis URL: expected redis://HOST[:PORT][/DB], \
                 rediss:// (TLS) or redis+sentinel://HOST[:PORT]/SERVICE[/DB]"
            ))
        }
    }
    let rest = &url[url.find("://").map_or(0, |i| i + 3)..];
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    if host.is_empty() || host.starts_with('/') {
        return Err(format!("\"{url}\" names no host"));
    }
    Ok(())
}

/// A node name or namespace: 1..=max characters of `[A-Za-z0-9_.-]`
/// (they go into key names and metrics labels).
fn check_word(word: &str, max: usize) -> Result<(), String> {
    let ok = !word.is_empty()
        && word.len() <= max
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{word}\": use 1 to {max} characters of A-Z a-z 0-9 _ . -"
        ))
    }
}

/// The machine's host name (the default node name), cut to a valid word.
fn host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        .take(64)
        .collect();
    if name.is_empty() {
        "node".to_string()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_by_scheme() {
        assert!(check_url("redis://127.0.0.1:6379/0").is_ok());
        assert!(check_url("rediss://user:pw@redis.example:6380").is_ok());
        assert!(check_url("redis+sentinel://10.0.0.1:26379/mymaster").is_ok());
        assert!(check_url("http://x").is_err());
        assert!(check_url("127.0.0.1:6379").is_err());
        assert!(check_url("redis://").is_err());
    }

    #[test]
    fn words() {
        assert!(check_word("web-1", 64).is_ok());
        assert!(check_word("", 64).is_err());
        assert!(check_word("a b", 64).is_err());
        assert!(check_word("a:b", 64).is_err());
        assert!(!host_name().is_empty());
    }
}
