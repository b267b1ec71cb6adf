//! Response framing: bytes in, complete lines out.
//!
//! Every protocol this tool drives answers one `\n`-terminated line per
//! request (a trailing `\r` is stripped, so redis' `+PONG\r\n` works). Reads
//! arrive in arbitrary pieces; this buffer keeps the unfinished tail of one
//! read until the next completes it.

/// Longest response line accepted; a server that sends more without a
/// newline is not speaking a line protocol, and the connection is dropped.
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// The unfinished tail of a connection's input.
#[derive(Debug, Default)]
pub struct LineBuf {
    partial: Vec<u8>,
}

/// A response line longer than [`MAX_LINE`].
#[derive(Debug)]
pub struct TooLong;

impl LineBuf {
    /// Feeds `data` and calls `on_line` for each line it completes, without
    /// its terminator. Returns how many lines were completed.
    pub fn push(
        &mut self,
        mut data: &[u8],
        mut on_line: impl FnMut(&[u8]),
    ) -> Result<usize, TooLong> {
        let mut n = 0;
        while let Some(i) = data.iter().position(|&b| b == b'\n') {
            let (head, rest) = (&data[..i], &data[i + 1..]);
            if self.partial.is_empty() {
                on_line(strip_cr(head));
            } else {
                self.partial.extend_from_slice(head);
                on_line(strip_cr(&self.partial));
                self.partial.clear();
            }
            n += 1;
            data = rest;
        }
        if self.partial.len() + data.len() > MAX_LINE {
            return Err(TooLong);
        }
        self.partial.extend_from_slice(data);
        Ok(n)
    }
}

/// Drops one trailing `\r`, if any.
fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(buf: &mut LineBuf, data: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        buf.push(data, |l| out.push(String::from_utf8_lossy(l).into_owned()))
            .expect("line fits");
        out
    }

    #[test]
    fn whole_and_split_lines() {
        let mut b = LineBuf::default();
        assert_eq!(feed(&mut b, b"+PONG\r\n+PO"), ["+PONG"]);
        assert_eq!(feed(&mut b, b"NG\r"), Vec::<String>::new());
        assert_eq!(feed(&mut b, b"\n{\"a\":1}\n\n"), ["+PONG", "{\"a\":1}", ""]);
    }

    #[test]
    fn endless_line_is_refused() {
        let mut b = LineBuf::default();
        let chunk = vec![b'x'; 1024 * 1024];
        let mut failed = false;
        for _ in 0..20 {
            if b.push(&chunk, |_| {}).is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed);
    }
}
