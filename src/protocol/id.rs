//! A request's `id`, echoed in its answer exactly as the client wrote it.
//!
//! Decoding an id into a number and encoding it again changes it: 2^64
//! would come back as `1.8446744073709552e19`, `1e2` as `100.0`. JSON-RPC
//! clients match answers to requests by id, so the id's original text is
//! kept (a string's escapes included) and written back as it came.

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use std::fmt;

/// A request's id: absent, or the text of a JSON string, number or `null`.
#[derive(Clone, Default)]
pub enum Id {
    /// The request had no `id` member (a notification, in JSON-RPC terms).
    #[default]
    Absent,
    /// The `id` member's text, checked to be a string, a number or `null`.
    Given(Box<RawValue>),
}

impl Id {
    /// The id of `raw`, or `None` when it is not a string, a number or
    /// null. A number must also be one a JSON reader can hold (not `1e400`,
    /// which most would refuse to read back, serde_json included).
    pub fn from_raw(raw: &RawValue) -> Option<Id> {
        match raw.get().as_bytes().first() {
            Some(b'"' | b'n') => Some(Id::Given(raw.to_owned())),
            Some(b'-' | b'0'..=b'9') => serde_json::from_str::<serde_json::Number>(raw.get())
                .is_ok()
                .then(|| Id::Given(raw.to_owned())),
            _ => None,
        }
    }

    /// An id written as `text` (a JSON string, number or null), for tests
    /// and callers that make up their own.
    pub fn parse(text: &str) -> Option<Id> {
        let raw: &RawValue = serde_json::from_str(text).ok()?;
        Id::from_raw(raw)
    }

    /// Whether the request had no `id` member.
    pub fn is_absent(&self) -> bool {
        matches!(self, Id::Absent)
    }

    /// The text written in answers: `null` when absent.
    pub fn text(&self) -> &str {
        match self {
            Id::Absent => "null",
            Id::Given(raw) => raw.get(),
        }
    }
}

impl PartialEq for Id {
    fn eq(&self, other: &Id) -> bool {
        self.is_absent() == other.is_absent() && self.text() == other.text()
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Absent => f.write_str("Id::Absent"),
            Id::Given(raw) => write!(f, "Id({})", raw.get()),
        }
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Id::Absent => s.serialize_unit(),
            Id::Given(raw) => raw.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_their_text() {
        for text in [
            "18446744073709551616",
            "1.0",
            "1e2",
            "-0",
            r#""x""#,
            r#""\u0041""#,
            "null",
        ] {
            let id = Id::parse(text).expect(text);
            assert_eq!(serde_json::to_string(&id).expect("encodes"), text);
        }
        assert_eq!(serde_json::to_string(&Id::Absent).expect("encodes"), "null");
        for bad in ["true", "[1]", "{}", "1e400", "-1e400"] {
            assert!(Id::parse(bad).is_none(), "{bad}");
        }
        assert_ne!(Id::Absent, Id::parse("null").expect("null"));
    }
}
