//! Deciding whether one response line is an error.
//!
//! JSON-RPC answers carry a top-level `"error"` key when they fail; other
//! line protocols have no common error form, so for those the caller may
//! name a substring every good answer contains (`--expect +PONG`).

/// How response lines are judged.
#[derive(Debug, Clone)]
pub enum Check {
    /// A JSON-RPC answer: an object whose first top-level `result` or
    /// `error` member decides (`"error": null` counts as no error).
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

/// Judges a JSON-RPC answer by its top-level members only, reading no
/// further than it must: a response carries either `result` or `error`
/// (JSON-RPC 2.0 §5), so the first of the two decides, and the members
/// before it (`jsonrpc`, `id`) are skipped without being parsed. tickd puts
/// `result` third, so a 2 KiB `jobs.list` answer costs the client a few
/// dozen bytes of scanning instead of a full parse: the measuring client
/// must not be what limits the measured throughput. `"error": null` counts
/// as no error. A line that is not a JSON object, or breaks off before
/// either member, is an error.
fn json_ok(line: &[u8]) -> bool {
    let mut scan = Scanner { s: line, i: 0 };
    if scan.next_non_ws() != Some(b'{') {
        return false;
    }
    loop {
        match scan.next_non_ws() {
            Some(b'"') => {}
            // `}`: the object ended without `result` or `error`.
            _ => return false,
        }
        let Some(key) = scan.string_body() else {
            return false;
        };
        if scan.next_non_ws() != Some(b':') {
            return false;
        }
        match key {
            b"result" => return true,
            b"error" => {
                scan.skip_ws();
                return scan.rest().starts_with(b"null");
            }
            _ => {
                if !scan.skip_value() {
                    return false;
                }
            }
        }
        match scan.next_non_ws() {
            Some(b',') => continue,
            _ => return false,
        }
    }
}

/// A cursor over one response line, for [`json_ok`]. It checks structure
/// only as far as it needs to find the top-level members.
struct Scanner<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn rest(&self) -> &'a [u8] {
        self.s.get(self.i..).unwrap_or_default()
    }

    fn skip_ws(&mut self) {
        while matches!(self.s.get(self.i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    /// The next byte after any whitespace, consumed.
    fn next_non_ws(&mut self) -> Option<u8> {
        self.skip_ws();
        let b = *self.s.get(self.i)?;
        self.i += 1;
        Some(b)
    }

    /// After an opening quote: the string's raw bytes (escapes left as
    /// they are), with the cursor past the closing quote.
    fn string_body(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        while let Some(&b) = self.s.get(self.i) {
            self.i += 1;
            match b {
                b'"' => return self.s.get(start..self.i - 1),
                b'\\' => self.i += 1,
                _ => {}
            }
        }
        None
    }

    /// Skips one value of any kind; false if the line ends inside it.
    fn skip_value(&mut self) -> bool {
        self.skip_ws();
        let mut depth = 0usize;
        while let Some(&b) = self.s.get(self.i) {
            match b {
                b'"' => {
                    self.i += 1;
                    if self.string_body().is_none() {
                        return false;
                    }
                    if depth == 0 {
                        return true;
                    }
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    if depth == 0 {
                        // The end of the enclosing object: a scalar ended.
                        return true;
                    }
                    depth -= 1;
                    if depth == 0 {
                        self.i += 1;
                        return true;
                    }
                }
                b',' if depth == 0 => return true,
                _ => {}
            }
            self.i += 1;
        }
        false
    }
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
    fn json_rpc_scan_looks_at_top_level_members_only() {
        let c = Check::JsonRpc;
        // `result` after members of every kind, nested `error` keys ignored.
        assert!(c.is_ok(
            br#"{"id":{"error":[1,{"x":"}"}]},"n":-1.5e3,"t":true,"s":"a\"error\"","result":null}"#
        ));
        assert!(c.is_ok(br#" { "jsonrpc" : "2.0" , "id" : 7 , "result" : [ ] } "#));
        assert!(c.is_ok(br#"{"id":1,"error":null,"result":1}"#));
        assert!(!c.is_ok(br#"{"id":[{"result":1}],"error":{"code":-32600}}"#));
        assert!(!c.is_ok(br#"{"jsonrpc":"2.0","id":1}"#), "neither member");
        assert!(!c.is_ok(br#"{"id":"unterminated"#));
        assert!(!c.is_ok(br#"{"id":[1,2"#));
        assert!(!c.is_ok(br#"{"id" 1,"result":1}"#));
        assert!(!c.is_ok(b""));
        assert!(!c.is_ok(b"[1]"));
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
