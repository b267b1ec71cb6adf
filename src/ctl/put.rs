//! `tickd ctl put FILE.toml`: defines (or replaces) a job through
//! `jobs.put` from a TOML file holding one `[[jobs]]` table, written as in
//! the config file. The table becomes the `job` object as it is; the daemon
//! checks it by the config file's rules.

use serde_json::{Map, Number, Value};
use std::path::Path;

/// The `jobs.put` params for the job in the file at `path`.
pub fn params_from_file(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let job = job_from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut params = Map::new();
    params.insert("job".into(), job);
    Ok(Value::Object(params))
}

/// The one `[[jobs]]` table of `text` as a JSON object.
fn job_from_toml(text: &str) -> Result<Value, String> {
    let mut doc: toml::Table = toml::from_str(text).map_err(|e| e.message().to_string())?;
    if let Some(other) = doc.keys().find(|k| *k != "jobs") {
        return Err(format!(
            "`{other}` is not allowed here: put takes a file holding one [[jobs]] table and nothing else"
        ));
    }
    let jobs = match doc.remove("jobs") {
        Some(toml::Value::Array(jobs)) => jobs,
        Some(_) => return Err("`jobs` must be a [[jobs]] table".into()),
        None => return Err("holds no [[jobs]] table; put takes a file with exactly one".into()),
    };
    let count = jobs.len();
    let mut jobs = jobs.into_iter();
    match (jobs.next(), count) {
        (Some(table @ toml::Value::Table(_)), 1) => to_json(table, "job"),
        (Some(_), 1) => Err("`jobs` must be a [[jobs]] table".into()),
        _ => Err(format!(
            "holds {count} [[jobs]] tables; put takes a file with exactly one"
        )),
    }
}

/// A TOML value as JSON; `at` names it in messages (`job.env.HOME`).
fn to_json(value: toml::Value, at: &str) -> Result<Value, String> {
    Ok(match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| format!("{at}: {f} is not a number JSON can carry"))?,
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => {
            return Err(format!(
                "{at}: {d} is a TOML date-time, which no job key takes (durations and times are strings)"
            ))
        }
        toml::Value::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| to_json(v, &format!("{at}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(table) => Value::Object(
            table
                .into_iter()
                .map(|(k, v)| {
                    let value = to_json(v, &format!("{at}.{k}"))?;
                    Ok((k, value))
                })
                .collect::<Result<_, String>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_jobs_table_becomes_the_job_object() {
        let job = job_from_toml(
            "[[jobs]]\nname = \"nightly\"\ncommand = [\"sh\", \"-c\", \"echo hi\"]\n\
             cron = \"0 3 * * *\"\nretries = 2\nenv = { A = \"b\" }\n",
        )
        .expect("valid");
        assert_eq!(
            job,
            json!({"name": "nightly", "command": ["sh", "-c", "echo hi"], "cron": "0 3 * * *",
                   "retries": 2, "env": {"A": "b"}})
        );
    }

    #[test]
    fn anything_but_one_jobs_table_is_refused() {
        let err = |text: &str| job_from_toml(text).expect_err("refused");
        assert!(err("").contains("holds no [[jobs]]"));
        assert!(err("[[jobs]]\nname = \"a\"\n[[jobs]]\nname = \"b\"\n").contains("holds 2"));
        assert!(err("[daemon]\nworkers = 1\n[[jobs]]\nname = \"a\"\n").contains("`daemon`"));
        assert!(err("jobs = 3\n").contains("must be a [[jobs]] table"));
        assert!(err("[[jobs]]\nname = \"a\"\nat = 1979-05-27T07:32:00Z\n").contains("job.at"));
        assert!(!err("[[jobs]\n").is_empty(), "a syntax error");
    }
}
