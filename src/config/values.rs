//! Readers for single config values: integers in a range, durations, names,
//! choices, paths. Each takes an optional spanned raw value, records an
//! error in the [`Report`] when it is bad, and returns the value to use (the
//! default when the key is absent or bad; a config with errors is discarded
//! anyway, so the fallback never reaches the daemon).

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::error::Report;

/// Whether `name: value` can be sent as an HTTP header: the name a token
/// (RFC 9110 section 5.1), the value free of CR, LF and NUL (which would
/// let a config inject headers or split the request).
pub(crate) fn is_header(name: &str, value: &str) -> bool {
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    name_ok && !value.contains(['\r', '\n', '\0'])
}

/// Where a value starts in the file.
pub(crate) fn at<T>(value: &Spanned<T>) -> usize {
    value.span().start
}

/// An integer within `range`, or `default` when absent.
pub(crate) fn int_in(
    r: &mut Report<'_>,
    value: Option<&Spanned<i64>>,
    key: impl std::fmt::Display + Copy,
    range: RangeInclusive<i64>,
    default: i64,
) -> i64 {
    match value {
        None => default,
        Some(v) if range.contains(v.get_ref()) => *v.get_ref(),
        Some(v) => {
            let message = format!(
                "{} is out of range; expected {}..={}",
                v.get_ref(),
                range.start(),
                range.end()
            );
            r.error(at(v), key, message);
            default
        }
    }
}

/// Converts a range-checked integer to `usize`/`u32`; the range checks done
/// by [`int_in`] guarantee it fits, and 0 is only a theoretical fallback.
pub(crate) fn to<T: TryFrom<i64> + Default>(n: i64) -> T {
    T::try_from(n).unwrap_or_default()
}

/// A humantime duration (`"250ms"`, `"1m 30s"`), or `default` when absent.
/// `positive` rejects zero.
pub(crate) fn duration(
    r: &mut Report<'_>,
    value: Option<&Spanned<String>>,
    key: impl std::fmt::Display + Copy,
    default: Duration,
    positive: bool,
) -> Duration {
    let Some(v) = value else { return default };
    match humantime::parse_duration(v.get_ref().trim()) {
        Ok(d) if positive && d.is_zero() => {
            r.error(at(v), key, "must be greater than zero");
            default
        }
        Ok(d) => d,
        Err(e) => {
            let message = format!(
                "invalid duration \"{}\": {e} (examples: \"250ms\", \"5s\", \"1m 30s\")",
                v.get_ref()
            );
            r.error(at(v), key, message);
            default
        }
    }
}

/// One of `choices`, or `default` when absent.
pub(crate) fn choice(
    r: &mut Report<'_>,
    value: Option<&Spanned<String>>,
    key: impl std::fmt::Display + Copy,
    choices: &[&'static str],
    default: &'static str,
) -> &'static str {
    let Some(v) = value else { return default };
    match choices.iter().find(|c| **c == v.get_ref().as_str()) {
        Some(found) => found,
        None => {
            let message = format!("\"{}\" is not one of: {}", v.get_ref(), choices.join(", "));
            r.error(at(v), key, message);
            default
        }
    }
}

/// A string where `""` means "not set". Rejects NUL bytes, which no path,
/// user name or token can hold.
pub(crate) fn optional_text(
    r: &mut Report<'_>,
    value: Option<&Spanned<String>>,
    key: impl std::fmt::Display + Copy,
) -> Option<String> {
    let v = value?;
    if v.get_ref().contains('\0') {
        r.error(at(v), key, "must not contain a NUL byte");
        return None;
    }
    Some(v.get_ref().clone()).filter(|s| !s.is_empty())
}

/// A path where `""` means "not set".
pub(crate) fn optional_path(
    r: &mut Report<'_>,
    value: Option<&Spanned<String>>,
    key: impl std::fmt::Display + Copy,
) -> Option<PathBuf> {
    optional_text(r, value, key).map(PathBuf::from)
}

/// Whether `name` is a valid job name: 1..=64 chars of `[A-Za-z0-9_.-]`.
pub(crate) fn is_job_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Whether `name` looks like a Unix user or group name (or a numeric id).
pub(crate) fn is_account_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Parses a listen address: `host:port` with an IP literal (`[::1]:7070`
/// for IPv6) or `localhost` as host. Returns a message when invalid.
pub(crate) fn check_listen(text: &str) -> Result<(), String> {
    if text.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let hint = "expected HOST:PORT with an IP address or localhost, e.g. \"127.0.0.1:7070\", \
                or \"\" to disable";
    match text.rsplit_once(':') {
        Some(("localhost", port)) => match port.parse::<u16>() {
            Ok(_) => Ok(()),
            Err(_) => Err(format!("invalid port \"{port}\" in \"{text}\"")),
        },
        _ => Err(format!("invalid listen address \"{text}\"; {hint}")),
    }
}

/// Parses a Unix file mode written in octal (`"0600"`, `"660"`).
pub(crate) fn parse_mode(text: &str) -> Result<u32, String> {
    let valid = (3..=4).contains(&text.len()) && text.bytes().all(|b| (b'0'..=b'7').contains(&b));
    match u32::from_str_radix(text, 8) {
        Ok(mode) if valid && mode <= 0o777 => Ok(mode),
        _ => Err(format!(
            "\"{text}\" is not a file mode; expected 3 or 4 octal digits such as \"0600\""
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        for ok in ["127.0.0.1:7070", "0.0.0.0:0", "[::1]:80", "localhost:7070"] {
            assert_eq!(check_listen(ok), Ok(()), "{ok}");
        }
        for bad in [
            "7070",
            "localhost",
            "example.com:80",
            "127.0.0.1:99999",
            "::1:80",
        ] {
            assert!(check_listen(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0600"), Ok(0o600));
        assert_eq!(parse_mode("755"), Ok(0o755));
        for bad in ["600a", "0800", "7", "01777", "+600"] {
            assert!(parse_mode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn job_names() {
        assert!(is_job_name("heartbeat"));
        assert!(is_job_name("db.backup-2_x"));
        assert!(!is_job_name(""));
        assert!(!is_job_name("has space"));
        assert!(!is_job_name(&"a".repeat(65)));
        assert!(is_job_name(&"a".repeat(64)));
    }
}
