//! Fuzz target: the config loader (TOML text to a validated `Config`) and
//! the ad-hoc job validator of `submit` (a JSON object). Any input must be
//! accepted or refused with an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match tickd::config::parse(text, Path::new("fuzz.toml")) {
        Ok(config) => {
            // A config that loads must describe its jobs without panicking.
            for job in &config.jobs {
                let _ = job.name.len();
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if let Ok(serde_json::Value::Object(job)) = serde_json::from_str(text) {
        let _ = tickd::config::parse_adhoc_job(&job);
    }
});
