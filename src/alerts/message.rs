//! A message about one ended run, and its renderings: a webhook's body
//! (the sink's template, or the Slack-compatible default), a JSON line, a
//! mail for `sendmail -t`.
//!
//! A message is built on the loop thread from the run's final record
//! (cheap: a few short strings and the output's last
//! [`OUTPUT_TAIL_BYTES`]), and rendered on the delivery thread. It holds
//! every field a template may name ([`crate::config::NOTIFY_FIELDS`])
//! except `link`, which depends on the sink's `link_base`.

use serde_json::{Map, Value};

use super::policy::Event;
use crate::config::{NotifySink, Template, NOTIFY_FIELDS};
use crate::state::run::Run;

/// The most output a message carries (its last bytes).
pub const OUTPUT_TAIL_BYTES: usize = 2048;

/// A message about one ended run.
#[derive(Clone, Debug)]
pub struct Message {
    /// The job's name.
    pub job: String,
    /// The run's id.
    pub run_id: String,
    /// Why it is sent.
    pub event: Event,
    /// Every field but `link`.
    fields: Map<String, Value>,
}

impl Message {
    /// The message for `run` (of job `job`), sent because of `event`.
    pub fn new(job: &str, run: &Run, event: Event) -> Message {
        let view = run.to_json();
        let duration_ms = run.duration_ms();
        let duration = duration_ms
            .map(|ms| humantime::format_duration(std::time::Duration::from_millis(ms)).to_string());
        let mut fields = Map::new();
        let text = summary(job, run, event, duration.as_deref());
        fields.insert("text".into(), text.into());
        fields.insert("event".into(), event.as_str().into());
        fields.insert("job".into(), job.into());
        fields.insert("run_id".into(), run.id.to_string().into());
        fields.insert("state".into(), run.state.as_str().into());
        fields.insert("trigger".into(), run.trigger.as_str().into());
        fields.insert("attempt".into(), run.attempt.into());
        fields.insert("error".into(), run.error.clone().into());
        fields.insert("exit_code".into(), run.exit_code.into());
        fields.insert("duration_ms".into(), duration_ms.into());
        fields.insert("duration".into(), duration.into());
        fields.insert("started_at".into(), view["started_at"].clone());
        fields.insert("finished_at".into(), view["finished_at"].clone());
        fields.insert("output".into(), tail(&run.output).into());
        fields.insert("node".into(), node().into());
        Message {
            job: job.to_string(),
            run_id: run.id.to_string(),
            event,
            fields,
        }
    }

    /// The value of `field` for `sink`.
    pub fn value(&self, field: &str, sink: &NotifySink) -> Value {
        if field == "link" {
            return self.link(sink).map_or(Value::Null, Value::String);
        }
        self.fields.get(field).cloned().unwrap_or(Value::Null)
    }

    /// `{link_base}/runs/{run_id}`, when the sink has a `link_base`.
    fn link(&self, sink: &NotifySink) -> Option<String> {
        let base = sink.link_base.as_deref()?;
        Some(format!("{base}/runs/{}", self.run_id))
    }

    /// Every field, in [`NOTIFY_FIELDS`] order, as one JSON object.
    pub fn object(&self, sink: &NotifySink) -> Value {
        let all: Map<String, Value> = NOTIFY_FIELDS
            .iter()
            .map(|f| (f.to_string(), self.value(f, sink)))
            .collect();
        Value::Object(all)
    }

    /// A webhook's body: `template` filled in, or the Slack-compatible
    /// default (`{"text": ...}` and every field).
    pub fn webhook_body(&self, sink: &NotifySink, template: Option<&Template>) -> String {
        match template {
            Some(t) => t.render(|f| self.value(f, sink)),
            None => self.object(sink).to_string(),
        }
    }

    /// The message as one JSON line (an exec sink's `format = "json"`).
    pub fn json_line(&self, sink: &NotifySink) -> Vec<u8> {
        let mut out = self.object(sink).to_string().into_bytes();
        out.push(b'\n');
        out
    }

    /// The message as a mail with its headers, for `sendmail -t`.
    pub fn mail(&self, sink: &NotifySink, to: &[String], from: Option<&str>) -> Vec<u8> {
        let text = |f: &str| match self.value(f, sink) {
            Value::Null => "-".to_string(),
            Value::String(s) => s,
            other => other.to_string(),
        };
        let mut out = String::new();
        if let Some(from) = from {
            out.push_str(&format!("From: {from}\n"));
        }
        out.push_str(&format!("To: {}\n", to.join(", ")));
        // A job name is [A-Za-z0-9_.-]: safe in a header.
        out.push_str(&format!(
            "Subject: [tickd] job {} {} (run {})\n",
            self.job,
            self.event.as_str(),
            self.run_id
        ));
        out.push_str("Content-Type: text/plain; charset=utf-8\n");
        out.push_str("Auto-Submitted: auto-generated\n\n");
        out.push_str(&text("text"));
        out.push_str("\n\n");
        let rows = [
            ("Job", "job"),
            ("Run", "run_id"),
            ("State", "state"),
            ("Trigger", "trigger"),
            ("Attempt", "attempt"),
            ("Error", "error"),
            ("Exit code", "exit_code"),
            ("Duration", "duration"),
            ("Started", "started_at"),
            ("Finished", "finished_at"),
            ("Node", "node"),
            ("Link", "link"),
        ];
        for (label, field) in rows {
            out.push_str(&format!("{:<10} {}\n", format!("{label}:"), text(field)));
        }
        let output = text("output");
        if output != "-" && !output.is_empty() {
            out.push_str(&format!(
                "\nOutput (at most its last {OUTPUT_TAIL_BYTES} bytes):\n"
            ));
            out.push_str(&output);
            if !output.ends_with('\n') {
                out.push('\n');
            }
        }
        out.into_bytes()
    }
}

/// One line saying what happened, e.g. `tickd: job backup failed (run 42,
/// exit code 1, after 3s): ...`.
fn summary(job: &str, run: &Run, event: Event, duration: Option<&str>) -> String {
    let mut facts = vec![format!("run {}", run.id)];
    if event == Event::Recovered {
        facts.push("succeeded".to_string());
    } else if event == Event::Ended {
        facts.push(run.state.as_str().to_string());
    }
    if let Some(code) = run.exit_code.filter(|c| *c != 0) {
        facts.push(format!("exit code {code}"));
    }
    if let Some(d) = duration {
        facts.push(format!("after {d}"));
    }
    let mut line = format!("tickd: job {job} {} ({})", event.as_str(), facts.join(", "));
    if let Some(node) = node() {
        line.push_str(&format!(" on {node}"));
    }
    if let Some(error) = run.error.as_deref().filter(|_| run.state.is_failure()) {
        line.push_str(": ");
        line.push_str(error);
    }
    line
}

/// The last [`OUTPUT_TAIL_BYTES`] of `output`, cut at a character boundary.
fn tail(output: &str) -> &str {
    let mut start = output.len().saturating_sub(OUTPUT_TAIL_BYTES);
    while !output.is_char_boundary(start) {
        start += 1;
    }
    &output[start..]
}

/// This node's name: the cluster's, or the host's.
fn node() -> Option<&'static str> {
    static HOST: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    crate::state::run::node_name().or_else(|| {
        HOST.get_or_init(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .or_else(|_| std::fs::read_to_string("/etc/hostname"))
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .as_deref()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SinkKind;
    use crate::state::run::{RunState, Trigger};

    fn sink(link_base: Option<&str>) -> NotifySink {
        NotifySink {
            name: "ops".into(),
            kind: SinkKind::Webhook {
                url: "http://127.0.0.1:1/".into(),
                headers: Default::default(),
                body: None,
            },
            link_base: link_base.map(str::to_string),
            timeout: std::time::Duration::from_secs(1),
        }
    }

    fn failed_run() -> Run {
        let mut run = Run::queued(42, Some("backup".into()), Trigger::Schedule, 1);
        run.state = RunState::Failed;
        run.exit_code = Some(3);
        run.error = Some("exit status 3".into());
        run.output = "é".repeat(OUTPUT_TAIL_BYTES);
        run
    }

    #[test]
    fn every_template_field_is_in_the_message() {
        let m = Message::new("backup", &failed_run(), Event::Failed);
        let object = m.object(&sink(Some("https://tickd.example")));
        for field in NOTIFY_FIELDS {
            assert!(object.get(field).is_some(), "{field}");
        }
        assert_eq!(object["link"], "https://tickd.example/runs/42");
        assert_eq!(object["exit_code"], 3);
        let output = object["output"].as_str().expect("output");
        assert!(output.len() <= OUTPUT_TAIL_BYTES && output.starts_with('é'));
        let text = object["text"].as_str().expect("text");
        assert!(
            text.starts_with("tickd: job backup failed (run 42, exit code 3")
                && text.ends_with(": exit status 3"),
            "{text}"
        );
    }

    #[test]
    fn a_mail_has_its_headers_then_the_facts() {
        let m = Message::new("backup", &failed_run(), Event::Failed);
        let mail = m.mail(&sink(None), &["ops@example.com".into()], Some("tickd@h"));
        let mail = String::from_utf8(mail).expect("utf-8");
        assert!(mail.starts_with(
            "From: tickd@h\nTo: ops@example.com\nSubject: [tickd] job backup failed (run 42)\n"
        ));
        assert!(mail.contains("\n\ntickd: job backup failed"), "{mail}");
        assert!(mail.contains("Exit code: 3\n"), "{mail}");
    }
}
