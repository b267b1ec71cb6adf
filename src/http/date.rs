//! The `Date` header every HTTP response carries (RFC 9110 section 6.6.1:
//! an origin server with a clock must send it).
//!
//! The value is an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) of the
//! daemon's wall clock ([`crate::time::now`], the clock run timestamps come
//! from). It changes once a second, so each thread that writes responses
//! (the event loop, the request workers) keeps the whole header line of the
//! current second and formats it again only when the second changes: the
//! cost per response is one clock read and a copy of 37 bytes, with no lock.

use crate::time::Timestamp;
use std::cell::RefCell;
use std::fmt::Write;

/// The header line of one second, as last formatted on this thread.
struct Cached {
    /// Unix seconds the line was formatted for.
    second: i64,
    /// `Date: ...\r\n`.
    line: String,
}

thread_local! {
    static CACHE: RefCell<Cached> = const {
        RefCell::new(Cached {
            second: i64::MIN,
            line: String::new(),
        })
    };
}

/// Appends `Date: <now as IMF-fixdate>\r\n`.
pub fn push_header(out: &mut Vec<u8>) {
    let now = crate::time::now();
    let second = now.timestamp();
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.second != second {
            cache.line.clear();
            let _ = write!(cache.line, "Date: {}\r\n", imf_fixdate(&now));
            cache.second = second;
        }
        out.extend_from_slice(cache.line.as_bytes());
    });
}

/// Formats `t` as an IMF-fixdate (RFC 9110 section 5.6.7), the only form
/// of HTTP date a sender may generate. chrono's names of days and months
/// are the English ones the format requires, whatever the locale.
pub fn imf_fixdate(t: &Timestamp) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats_the_rfc_example() {
        let t = chrono::Utc
            .with_ymd_and_hms(1994, 11, 6, 8, 49, 37)
            .single()
            .expect("valid");
        assert_eq!(imf_fixdate(&t), "Sun, 06 Nov 1994 08:49:37 GMT");
        let t = chrono::Utc
            .with_ymd_and_hms(2026, 3, 1, 0, 0, 5)
            .single()
            .expect("valid");
        assert_eq!(imf_fixdate(&t), "Sun, 01 Mar 2026 00:00:05 GMT");
    }

    #[test]
    fn the_header_line_is_well_formed_and_reused() {
        let mut a = Vec::new();
        push_header(&mut a);
        let text = String::from_utf8(a.clone()).expect("ascii");
        let value = text
            .strip_prefix("Date: ")
            .and_then(|v| v.strip_suffix("\r\n"))
            .expect("one header line");
        assert_eq!(value.len(), 29, "{value:?}");
        assert!(value.ends_with(" GMT"), "{value:?}");
        assert!(
            chrono::NaiveDateTime::parse_from_str(value, "%a, %d %b %Y %H:%M:%S GMT").is_ok(),
            "{value:?}"
        );
        let mut b = Vec::new();
        push_header(&mut b);
        assert_eq!(b.len(), a.len());
    }
}
