//! Deciding whether one response line is an error.
//!
//! JSON-RPC answers carry a top-level `"error"` key when they fail; other
//! line protocols have no common error form, so for those the caller may
//! name a substring every good answer contains (`--expect +PONG`).

/// How response lines are judged.
#[derive(Debug, Clone)]
pub enum Check {
    /// A JSON-RPC answer: an object without a top-level `error` key.
    JsonRpc,
    /// Any line; when a substring is given, it must occur in the line.
    Raw {
        /// Text every good answer contains.
        expect: Option<Vec<u8>>,
    },
}

impl Check {
    /// True when `line` is a good answer.
    pub fn is_ok(&self, line: &[u8]) -> bool {
        match self {
            Check::JsonRpc => json_ok(line),
            Check::Raw { expect: None } => true,
            Check::Raw {
                expect: Some(needle),
            } => contains(line, needle),
        }
    }
}

/// Cheap on the common path: only a line that mentions `"error"` somewhere
/// is parsed, to tell a top-level error from a nested field of a result.
fn json_ok(line: &[u8]) -> bool {
    if line.first() != Some(&b'{') {
        return false;
    }
    if !contains(line, b"\"error\"") {
        return true;
    }
    // Only the top-level member matters; `IgnoredAny` skims the rest of the
    // line without building anything, so large answers whose runs carry
    // `"error": null` (jobs.list) do not make the client the bottleneck.
    match serde_json::from_slice::<TopLevel>(line) {
        Ok(top) => top.error.is_none(),
        Err(_) => false,
    }
}

/// The one member of a response the check looks at.
#[derive(serde::Deserialize)]
struct TopLevel {
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

/// Naive substring search; response lines are short.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_rpc_errors() {
        let c = Check::JsonRpc;
        assert!(c.is_ok(br#"{"jsonrpc":"2.0","id":null,"result":"pong"}"#));
        assert!(c.is_ok(br#"{"id":1,"result":{"error":"timed out","state":"x"}}"#));
        assert!(!c.is_ok(br#"{"id":1,"error":{"code":-32601,"message":"no"}}"#));
        assert!(!c.is_ok(b"+PONG"));
        assert!(!c.is_ok(br#"{"error" broken"#));
    }

    #[test]
    fn raw_expect() {
        let any = Check::Raw { expect: None };
        assert!(any.is_ok(b"-ERR whatever"));
        let pong = Check::Raw {
            expect: Some(b"PONG".to_vec()),
        };
        assert!(pong.is_ok(b"+PONG"));
        assert!(!pong.is_ok(b"-ERR unknown command"));
    }
}
