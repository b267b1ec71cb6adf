//! What an exec run keeps of its output, and what it reads from it.
//!
//! A job may print gigabytes; a run object keeps only the last
//! [`OUTPUT_TAIL_BYTES`] of stdout and stderr merged ([`OutputTail`]).
//! Separately, each stream is scanned line by line for progress reports
//! (`tickd-progress: 0.4`, see [`ProgressScanner`]). Both use memory bounded
//! by a constant, whatever the child writes.

use std::collections::VecDeque;

/// How much output a run keeps: the last 64 KiB (CONTRACT §5, `output`).
pub const OUTPUT_TAIL_BYTES: usize = 64 * 1024;

/// The prefix of a progress line, as printed by a job.
pub const PROGRESS_PREFIX: &str = "tickd-progress:";

/// The longest line the progress scanner buffers. A progress line is a few
/// dozen bytes; anything longer cannot be one and is skipped unbuffered.
pub const MAX_SCANNED_LINE: usize = 256;

/// The last `capacity` bytes written, plus whether anything was dropped.
#[derive(Debug, Clone)]
pub struct OutputTail {
    buf: VecDeque<u8>,
    capacity: usize,
    truncated: bool,
}

impl Default for OutputTail {
    fn default() -> Self {
        Self::new(OUTPUT_TAIL_BYTES)
    }
}

impl OutputTail {
    /// An empty tail keeping at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self {
            buf: VecDeque::with_capacity(capacity.min(OUTPUT_TAIL_BYTES)),
            capacity,
            truncated: false,
        }
    }

    /// Appends `bytes`, dropping the oldest bytes beyond the capacity.
    pub fn push(&mut self, bytes: &[u8]) {
        if bytes.len() >= self.capacity {
            self.truncated |= !self.buf.is_empty() || bytes.len() > self.capacity;
            self.buf.clear();
            self.buf.extend(&bytes[bytes.len() - self.capacity..]);
            return;
        }
        let overflow = (self.buf.len() + bytes.len()).saturating_sub(self.capacity);
        if overflow > 0 {
            self.buf.drain(..overflow);
            self.truncated = true;
        }
        self.buf.extend(bytes);
    }

    /// Number of bytes held.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing has been kept.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Whether older output was dropped to stay within the capacity.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// The bytes held, oldest first.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.buf.iter().copied().collect()
    }

    /// The tail as text, invalid UTF-8 replaced by U+FFFD.
    ///
    /// When the tail was truncated, its first bytes may be the end of a
    /// multi-byte character whose start was dropped; those (at most three)
    /// continuation bytes are skipped rather than shown as a replacement
    /// character.
    pub fn to_string_lossy(&self) -> String {
        let bytes = self.to_bytes();
        let start = if self.truncated {
            bytes
                .iter()
                .take(3)
                .take_while(|b| (**b & 0xC0) == 0x80)
                .count()
        } else {
            0
        };
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }
}

/// Finds `tickd-progress: X` lines in one output stream.
///
/// Lines are assembled across reads; only the current partial line is
/// buffered, and only up to [`MAX_SCANNED_LINE`] bytes — a longer line is
/// skipped up to its newline without being stored. Use one scanner per
/// stream so that stdout and stderr lines do not interleave.
#[derive(Debug, Default)]
pub struct ProgressScanner {
    partial: Vec<u8>,
    overlong: bool,
}

impl ProgressScanner {
    /// A scanner at the start of a line.
    pub fn new() -> Self {
        Self::default()
    }

    /// Scans `bytes`, calling `on_progress` for each complete progress line.
    pub fn feed(&mut self, bytes: &[u8], mut on_progress: impl FnMut(f64)) {
        let mut rest = bytes;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            let (segment, after) = (&rest[..pos], &rest[pos + 1..]);
            if !self.overlong {
                let value = if self.partial.is_empty() {
                    parse_progress(segment)
                } else {
                    self.append(segment);
                    parse_progress(&self.partial)
                };
                if let Some(v) = value {
                    on_progress(v);
                }
            }
            self.partial.clear();
            self.overlong = false;
            rest = after;
        }
        self.append(rest);
    }

    /// Ends the stream: a last line without a newline still counts.
    pub fn finish(&mut self, on_progress: impl FnMut(f64)) {
        if !self.partial.is_empty() || self.overlong {
            self.feed(b"\n", on_progress);
        }
    }

    /// Bytes currently buffered for an incomplete line (never more than
    /// [`MAX_SCANNED_LINE`]).
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    fn append(&mut self, bytes: &[u8]) {
        if self.overlong {
            return;
        }
        if self.partial.len() + bytes.len() > MAX_SCANNED_LINE {
            self.partial.clear();
            self.overlong = true;
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }
}

/// Parses one line (without its `\n`) as a progress report.
///
/// Accepts `tickd-progress: X` with optional surrounding whitespace (and a
/// trailing `\r`); X is a finite decimal number, clamped to `0.0..=1.0`.
/// Anything else is not a progress line and gives `None`.
pub fn parse_progress(line: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(line).ok()?.trim();
    let value = text.strip_prefix(PROGRESS_PREFIX)?.trim();
    let v: f64 = value.parse().ok()?;
    v.is_finite().then(|| v.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(chunks: &[&[u8]]) -> Vec<f64> {
        let mut seen = Vec::new();
        let mut s = ProgressScanner::new();
        for c in chunks {
            s.feed(c, |v| seen.push(v));
        }
        s.finish(|v| seen.push(v));
        seen
    }

    #[test]
    fn tail_keeps_last_bytes() {
        let mut t = OutputTail::new(8);
        t.push(b"abc");
        assert!(!t.is_truncated());
        t.push(b"defgh");
        assert_eq!(t.to_bytes(), b"abcdefgh");
        assert!(!t.is_truncated());
        t.push(b"ij");
        assert_eq!(t.to_bytes(), b"cdefghij");
        assert!(t.is_truncated());
        t.push(b"0123456789");
        assert_eq!(t.to_bytes(), b"23456789");
        assert_eq!(t.len(), 8);
    }

    #[test]
    fn exact_fit_is_not_truncated() {
        let mut t = OutputTail::new(4);
        t.push(b"abcd");
        assert!(!t.is_truncated());
        t.push(b"");
        assert!(!t.is_truncated());
    }

    #[test]
    fn lossy_skips_cut_character() {
        let mut t = OutputTail::new(4);
        t.push("xé".as_bytes()); // x, 0xC3, 0xA9
        t.push(b"abc"); // drops x and 0xC3, keeps 0xA9
        assert_eq!(t.to_bytes(), b"\xA9abc");
        assert_eq!(t.to_string_lossy(), "abc");
        let mut u = OutputTail::new(8);
        u.push(b"ok\xFF");
        assert_eq!(u.to_string_lossy(), "ok\u{FFFD}");
    }

    #[test]
    fn parses_progress_values() {
        assert_eq!(parse_progress(b"tickd-progress: 0.4"), Some(0.4));
        assert_eq!(parse_progress(b"  tickd-progress:1\r"), Some(1.0));
        assert_eq!(parse_progress(b"tickd-progress: 7"), Some(1.0));
        assert_eq!(parse_progress(b"tickd-progress: -2"), Some(0.0));
        assert_eq!(parse_progress(b"tickd-progress: NaN"), None);
        assert_eq!(parse_progress(b"tickd-progress: inf"), None);
        assert_eq!(parse_progress(b"tickd-progress: half"), None);
        assert_eq!(parse_progress(b"tickd-progress:"), None);
        assert_eq!(parse_progress(b"progress: 0.5"), None);
        assert_eq!(parse_progress(b"say tickd-progress: 0.5"), None);
        assert_eq!(parse_progress(b"tickd-progress: \xFF"), None);
    }

    #[test]
    fn lines_assembled_across_reads() {
        assert_eq!(
            scan(&[
                b"tick",
                b"d-progress: 0.",
                b"25\nnoise\ntickd-progress: 0.5"
            ]),
            vec![0.25, 0.5]
        );
    }

    #[test]
    fn huge_line_is_not_buffered() {
        let mut s = ProgressScanner::new();
        let mut seen = Vec::new();
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..160 {
            // 10 MiB without a newline
            s.feed(&chunk, |v| seen.push(v));
            assert!(s.buffered() <= MAX_SCANNED_LINE);
        }
        // The overlong line ends; the next line is scanned normally.
        s.feed(b"tickd-progress: 0.3\ntickd-progress: 0.9\n", |v| {
            seen.push(v)
        });
        assert_eq!(seen, vec![0.9]);
    }
}
