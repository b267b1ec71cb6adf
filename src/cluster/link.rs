//! Connections to Redis: from the `[cluster] redis` URL (redis://,
//! rediss://, redis+sentinel://), with the password file, and with
//! timeouts on connect, reads and writes so that a Redis that stops
//! answering costs a thread at most [`IO_TIMEOUT`] per command, never the
//! event loop (which never touches Redis).

use crate::config::ClusterConfig;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Client, Connection, IntoConnectionInfo, RedisResult};
use std::time::Duration;

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one command may wait for its answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Where connections come from.
pub enum Source {
    /// A Redis server (redis:// or rediss://).
    Direct(Client),
    /// The primary that Sentinel names for a service (redis+sentinel://):
    /// asked again at each connect, so a failover is followed.
    Sentinel(parking_lot::Mutex<SentinelClient>),
}

impl Source {
    /// Reads the URL and the password file; checked at start, so a wrong
    /// one stops the daemon with a message instead of retrying forever.
    pub fn new(c: &ClusterConfig) -> Result<Source, String> {
        let password = match &c.redis_password_file {
            Some(path) => Some(read_password(path)?),
            None => None,
        };
        if let Some(rest) = c
            .redis
            .strip_prefix("redis+sentinel://")
            .or_else(|| c.redis.strip_prefix("rediss+sentinel://"))
        {
            let tls = c.redis.starts_with("rediss+");
            return sentinel(rest, tls, password).map(|s| Source::Sentinel(s.into()));
        }
        let mut info = c
            .redis
            .as_str()
            .into_connection_info()
            .map_err(|e| format!("cluster.redis: {e}"))?;
        if let Some(pw) = password {
            let settings = info.redis_settings().clone().set_password(pw);
            info = info.set_redis_settings(settings);
        }
        Client::open(info)
            .map(Source::Direct)
            .map_err(|e| format!("cluster.redis: {e}"))
    }

    /// A new connection with [`IO_TIMEOUT`] on reads and writes.
    pub fn connect(&self) -> RedisResult<Connection> {
        let con = match self {
            Source::Direct(client) => client.get_connection_with_timeout(CONNECT_TIMEOUT)?,
            Source::Sentinel(s) => {
                let client = s.lock().get_client()?;
                client.get_connection_with_timeout(CONNECT_TIMEOUT)?
            }
        };
        con.set_read_timeout(Some(IO_TIMEOUT))?;
        con.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(con)
    }
}

/// The URL without its password, for `status` and logs.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((auth, host)) => {
            let user = auth.split_once(':').map_or("", |(u, _)| u);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_string(),
    }
}

fn read_password(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cluster.redis_password_file {}: {e}", path.display()))?;
    let pw = text.lines().next().unwrap_or("").trim_end().to_string();
    if pw.is_empty() {
        return Err(format!(
            "cluster.redis_password_file {}: the file is empty",
            path.display()
        ));
    }
    Ok(pw)
}

/// `HOST:PORT[,HOST:PORT...]/SERVICE[/DB]`, optionally `user:pw@` first
/// (the password of the Redis primary; Sentinel itself without one).
fn sentinel(rest: &str, tls: bool, password: Option<String>) -> Result<SentinelClient, String> {
    let bad = |why: &str| {
        format!("cluster.redis: {why} (redis+sentinel://HOST:PORT[,HOST:PORT]/SERVICE[/DB])")
    };
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((auth, rest)) => (Some(auth), rest),
        None => (None, rest),
    };
    let (hosts, path) = rest.split_once('/').ok_or_else(|| bad("no service name"))?;
    let mut parts = path.split('/');
    let service = parts
        .next()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("no service name"))?;
    let db: i64 = match parts.next() {
        Some(d) if !d.is_empty() => d.parse().map_err(|_| bad("the database is not a number"))?,
        _ => 0,
    };
    let sentinels: Vec<String> = hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|h| {
            if h.contains(':') {
                format!("redis://{h}")
            } else {
                format!("redis://{h}:26379")
            }
        })
        .collect();
    if sentinels.is_empty() {
        return Err(bad("no Sentinel address"));
    }
    let mut settings = redis::RedisConnectionInfo::default().set_db(db);
    let url_pw = auth.and_then(|a| a.split_once(':').map(|(_, p)| p.to_string()));
    if let Some(pw) = password.or(url_pw) {
        settings = settings.set_password(pw);
    }
    let mut node = SentinelNodeConnectionInfo::default().set_redis_connection_info(settings);
    if tls {
        node = node.set_tls_mode(redis::TlsMode::Secure);
    }
    SentinelClient::build(sentinels, service, Some(node), SentinelServerType::Master)
        .map_err(|e| format!("cluster.redis: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(redacted("redis://:secret@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redacted("redis://u:secret@h"), "redis://u:***@h");
        assert_eq!(redacted("redis://h:1/0"), "redis://h:1/0");
    }

    #[test]
    fn sentinel_urls() {
        assert!(sentinel("10.0.0.1:26379,10.0.0.2/mymaster/2", false, None).is_ok());
        assert!(sentinel("10.0.0.1:26379", false, None).is_err());
        assert!(sentinel("10.0.0.1:26379/", false, None).is_err());
        assert!(sentinel("10.0.0.1:26379/m/x", false, None).is_err());
    }
}
