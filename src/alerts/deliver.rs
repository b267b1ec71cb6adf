//! The delivery thread (`tickd-notify`): takes messages off the queue and
//! sends them, a webhook by HTTP POST (a blocking `ureq` agent as http
//! runs use, bounded by the sink's `timeout`, following no redirect), an exec sink by running its
//! command with the message on stdin (as exec jobs run: no shell, a
//! scrubbed environment, killed at the `timeout`).
//!
//! A failed attempt is tried again after [`BACKOFF`] (1 s, 5 s, 30 s: four
//! attempts in all), as a retry on the queue, so other messages go on
//! meanwhile. Failures are logged at most once a minute per sink, naming
//! the sink and the URL's scheme and host only: a webhook URL (Slack's)
//! and the headers often hold secrets.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::queue::{Fate, Item, Queue, LOG_EVERY};
use crate::config::{Format, NotifySink, SinkKind};
use crate::jobs::cancel::CancelToken;
use crate::jobs::exec::{run_exec, ExecRequest};

/// The waits before the 2nd, 3rd and 4th attempts.
pub const BACKOFF: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
];

/// The thread's body: until the queue closes and is empty.
pub(super) fn run(queue: &Queue, cancel: &CancelToken) {
    let mut logs = LogLimit::default();
    while let Some(mut item) = queue.take() {
        let sink = &item.sink.name;
        // A bug in a rendering must not end the thread (and with it every
        // later message): it is a failed attempt like any other.
        let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| send(&item, cancel)))
            .unwrap_or_else(|_| Err("internal error while sending (see the log)".into()));
        match sent {
            Ok(()) => {
                log::debug!(
                    "notify {sink}: run {} of job {} sent (attempt {})",
                    item.message.run_id,
                    item.message.job,
                    item.attempt
                );
                queue.counters.add(sink, Fate::Sent);
            }
            Err(why) => {
                let retry = BACKOFF.get(item.attempt as usize - 1).copied();
                match retry.filter(|_| !queue.closing()) {
                    Some(wait) => {
                        logs.warn(sink, || {
                            format!(
                                "notify {sink} ({}): attempt {} for run {} of job {} failed: {why}; \
                                 trying again in {}",
                                where_to(&item.sink),
                                item.attempt,
                                item.message.run_id,
                                item.message.job,
                                humantime::format_duration(wait)
                            )
                        });
                        item.attempt += 1;
                        item.due = Instant::now() + wait;
                        queue.retry(item);
                    }
                    None => {
                        logs.warn(sink, || {
                            format!(
                                "notify {sink} ({}): run {} of job {} not delivered after {} \
                                 attempt(s): {why}",
                                where_to(&item.sink),
                                item.message.run_id,
                                item.message.job,
                                item.attempt
                            )
                        });
                        queue.counters.add(sink, Fate::Failed);
                    }
                }
            }
        }
    }
}

/// One attempt.
fn send(item: &Item, cancel: &CancelToken) -> Result<(), String> {
    let sink = &*item.sink;
    let m = &item.message;
    match &sink.kind {
        SinkKind::Webhook { url, headers, body } => {
            post(sink, url, headers, m.webhook_body(sink, body.as_ref()))
        }
        SinkKind::Exec {
            command,
            format,
            to,
            from,
        } => {
            let stdin = match format {
                Format::Json => m.json_line(sink),
                Format::Mail => m.mail(sink, to, from.as_deref()),
            };
            let req = ExecRequest {
                argv: command,
                env: &BTreeMap::new(),
                cwd: None,
                extra_env: vec![
                    ("TICKD_SINK".into(), sink.name.clone()),
                    ("TICKD_JOB".into(), m.job.clone()),
                    ("TICKD_RUN_ID".into(), m.run_id.clone()),
                    ("TICKD_EVENT".into(), m.event.as_str().into()),
                ],
                stdin: Some(stdin),
                timeout: Some(sink.timeout),
                kill_grace: Duration::from_secs(1),
                run_as: None,
                limits: Default::default(),
            };
            let outcome = run_exec(&req, cancel, &mut ());
            if outcome.succeeded() {
                return Ok(());
            }
            let mut why = outcome.error.unwrap_or_else(|| "failed".into());
            let said = outcome.output.trim();
            if !said.is_empty() {
                let start = said.len().saturating_sub(200);
                let start = (start..=said.len())
                    .find(|i| said.is_char_boundary(*i))
                    .unwrap_or(said.len());
                why.push_str(&format!(" (output: {})", &said[start..]));
            }
            Err(why)
        }
    }
}

/// POSTs `body` as JSON; any 2xx status is a delivery.
fn post(
    sink: &NotifySink,
    url: &str,
    headers: &BTreeMap<String, String>,
    body: String,
) -> Result<(), String> {
    let agent = crate::jobs::webhook_agent(sink.timeout);
    let mut builder = ureq::http::Request::builder().method("POST").uri(url);
    if !headers
        .keys()
        .any(|h| h.eq_ignore_ascii_case("content-type"))
    {
        builder = builder.header("Content-Type", "application/json");
    }
    for (name, value) in headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let request = builder
        .body(body)
        .map_err(|e| hide(&format!("invalid request: {e}"), url))?;
    match agent.run(request) {
        Ok(response) => {
            let status = response.status().as_u16();
            if (200..300).contains(&status) {
                Ok(())
            } else {
                Err(format!("answered HTTP {status}"))
            }
        }
        Err(ureq::Error::Timeout(_)) => Err(format!(
            "no answer within {}",
            humantime::format_duration(sink.timeout)
        )),
        Err(e) => Err(hide(&e.to_string(), url)),
    }
}

/// `text` with the URL (and its path and query, which may hold a
/// secret) left out.
fn hide(text: &str, url: &str) -> String {
    text.replace(url, "<url>")
}

/// What the log may say of where a sink sends: `exec PROGRAM`, or the
/// URL's scheme and host.
fn where_to(sink: &NotifySink) -> String {
    match &sink.kind {
        SinkKind::Webhook { url, .. } => {
            let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            // Credentials in the authority are not shown either.
            let host = host.rsplit('@').next().unwrap_or(host);
            format!("webhook {scheme}://{host}")
        }
        SinkKind::Exec { command, .. } => {
            format!("exec {}", command.first().map_or("", String::as_str))
        }
    }
}

/// At most one warning per sink per [`LOG_EVERY`]; the ones held back are
/// counted in the next.
#[derive(Default)]
struct LogLimit {
    by_sink: HashMap<String, (Instant, u64)>,
}

impl LogLimit {
    fn warn(&mut self, sink: &str, line: impl FnOnce() -> String) {
        let now = Instant::now();
        match self.by_sink.get_mut(sink) {
            Some((last, held)) if now < *last + LOG_EVERY => *held += 1,
            Some((last, held)) => {
                log::warn!("{} ({held} similar line(s) held back)", line());
                *last = now;
                *held = 0;
            }
            None => {
                log::warn!("{}", line());
                self.by_sink.insert(sink.to_string(), (now, 0));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_never_show_a_webhook_path_or_credentials() {
        let sink = NotifySink {
            name: "slack".into(),
            kind: SinkKind::Webhook {
                url: "https://user:pw@hooks.slack.com/services/T0/B0/SECRET?x=1".into(),
                headers: BTreeMap::new(),
                body: None,
            },
            link_base: None,
            timeout: Duration::from_secs(1),
        };
        assert_eq!(where_to(&sink), "webhook https://hooks.slack.com");
        let url = "http://h/SECRET";
        assert_eq!(hide("bad uri http://h/SECRET", url), "bad uri <url>");
    }
}
