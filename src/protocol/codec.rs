//! Cutting a connection's byte stream into request lines.
//!
//! A line ends at `\n`, with an optional `\r` before it. A line (or an
//! unfinished line still waiting for its `\n`) longer than the limit is a
//! protocol error: the framing can no longer be trusted and the server closes
//! the connection after saying why. Blank lines are skipped, so a person can
//! press Enter in netcat without getting an error back.
//!
//! The framer only borrows the bytes: the server frames lines straight out
//! of its read buffer and copies only an unfinished last line.

/// What the framer found next in the buffered bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete, non-blank line without its terminator.
    Line(&'a [u8]),
    /// No complete line yet; keep the bytes and read more.
    Incomplete,
    /// The line is longer than the limit; the connection must be closed.
    TooLong,
}

/// Splits buffered input into lines, remembering how far it has consumed so
/// the caller can compact its buffer once per read instead of once per line.
#[derive(Debug)]
pub struct LineFramer {
    max_line: usize,
    consumed: usize,
}

impl LineFramer {
    /// A framer that refuses lines longer than `max_line` bytes (terminator excluded).
    pub fn new(max_line: usize) -> Self {
        LineFramer {
            max_line,
            consumed: 0,
        }
    }

    /// Changes the limit for the lines still to come (raised once a
    /// client has authenticated).
    pub fn set_max_line(&mut self, max_line: usize) {
        self.max_line = max_line;
    }

    /// The next frame in `buf`, skipping blank lines. `buf` must be the same
    /// buffer between calls; [`LineFramer::consumed`] then says how much of
    /// it the returned lines covered.
    pub fn next_frame<'a>(&mut self, buf: &'a [u8]) -> Frame<'a> {
        loop {
            let rest = &buf[self.consumed.min(buf.len())..];
            let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                return if rest.len() > self.max_line {
                    Frame::TooLong
                } else {
                    Frame::Incomplete
                };
            };
            self.consumed += nl + 1;
            let mut line = &rest[..nl];
            if let [head @ .., b'\r'] = line {
                line = head;
            }
            if line.len() > self.max_line {
                return Frame::TooLong;
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Frame::Line(line);
        }
    }

    /// How many bytes of the buffer the frames returned so far cover.
    pub fn consumed(&self) -> usize {
        self.consumed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8], max: usize) -> Vec<Result<Vec<u8>, &'static str>> {
        let mut f = LineFramer::new(max);
        let mut out = Vec::new();
        loop {
            match f.next_frame(input) {
                Frame::Line(l) => out.push(Ok(l.to_vec())),
                Frame::Incomplete => return out,
                Frame::TooLong => {
                    out.push(Err("too long"));
                    return out;
                }
            }
        }
    }

    #[test]
    fn splits_lines_and_strips_cr() {
        let got = frames(b"a\r\nbb\n\n  \r\nccc", 10);
        assert_eq!(got, vec![Ok(b"a".to_vec()), Ok(b"bb".to_vec())]);
    }

    #[test]
    fn unterminated_line_over_limit_is_too_long() {
        assert_eq!(frames(b"0123456789x", 10), vec![Err("too long")]);
        assert_eq!(frames(b"0123456789", 10), vec![]);
    }

    #[test]
    fn terminated_line_over_limit_is_too_long() {
        assert_eq!(
            frames(b"ok\n0123456789x\nlater\n", 10),
            vec![Ok(b"ok".to_vec()), Err("too long")]
        );
    }

    #[test]
    fn cr_does_not_count_against_limit() {
        assert_eq!(
            frames(b"0123456789\r\n", 10),
            vec![Ok(b"0123456789".to_vec())]
        );
    }

    #[test]
    fn consumed_covers_lines_but_not_the_unfinished_tail() {
        let buf = b"one\n\ntw";
        let mut f = LineFramer::new(100);
        assert_eq!(f.next_frame(buf), Frame::Line(b"one"));
        assert_eq!(f.next_frame(buf), Frame::Incomplete);
        assert_eq!(&buf[f.consumed()..], b"tw");
    }
}
