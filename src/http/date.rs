//! The `Date` header every HTTP response carries (RFC 9110 section 6.6.1:
//! an origin server with a clock must send it).
//!
//! The value is an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, written
//! by [`crate::time::text::imf_fixdate`]) of the daemon's wall clock
//! ([`crate::time::now`], the clock run timestamps come from). It changes
//! once a second, so each thread that writes responses
//! (the event loop, the request workers) keeps the whole header line of the
//! current second and formats it again only when the second changes: the
//! cost per response is one clock read and a copy of 37 bytes, with no lock.

use crate::time::{self, text};
use std::cell::RefCell;

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
    let now = time::now();
    let second = time::unix_second(&now);
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.second != second {
            cache.line.clear();
            cache.line.push_str("Date: ");
            cache.line.push_str(&text::imf_fixdate(&now));
            cache.line.push_str("\r\n");
            cache.second = second;
        }
        out.extend_from_slice(cache.line.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The IMF-fixdate itself is written by `time::text::imf_fixdate`
    /// (tested there against chrono's output, which this header used).
    #[test]
    fn formats_the_rfc_example() {
        let t = time::from_unix(784_111_777, 0).expect("valid");
        assert_eq!(text::imf_fixdate(&t), "Sun, 06 Nov 1994 08:49:37 GMT");
        let t = time::from_unix(1_772_323_205, 0).expect("valid");
        assert_eq!(text::imf_fixdate(&t), "Sun, 01 Mar 2026 00:00:05 GMT");
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
            jiff::civil::DateTime::strptime("%a, %d %b %Y %H:%M:%S GMT", value).is_ok(),
            "{value:?}"
        );
        let mut b = Vec::new();
        push_header(&mut b);
        assert_eq!(b.len(), a.len());
    }
}
