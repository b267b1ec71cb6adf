//! Byte offsets → line numbers and key names, for error messages.
//!
//! Stage one hands out byte spans (from `toml::Spanned` and from
//! `toml::de::Error::span`); users want `FILE:LINE: KEY`. A TOML syntax or
//! type error only carries a span, so [`Source::key_at`] recovers the key
//! from the text itself: the last table header before the offset, plus the
//! key on the offset's line.

/// The config text with a line index.
pub(crate) struct Source<'a> {
    text: &'a str,
    /// Byte offset of the first byte of each line.
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    /// Indexes `text`.
    pub(crate) fn new(text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Source { text, line_starts }
    }

    /// The 1-based line holding byte `offset` (the last line if past the end).
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        self.line_starts
            .partition_point(|start| *start <= offset)
            .max(1)
    }

    /// The dotted key (`daemon.workers`, `jobs[1].every`) whose line holds
    /// `offset`, or the table (`daemon`, `jobs[1]`) for a header line.
    /// `None` when the line holds neither (e.g. inside a multi-line value).
    pub(crate) fn key_at(&self, offset: usize) -> Option<String> {
        let target = self.line_of(offset);
        let mut table: Option<String> = None;
        let mut jobs_seen = 0usize;
        for (number, line) in self.text.lines().enumerate().take(target) {
            let line = line.trim();
            let header = if let Some(rest) = line.strip_prefix("[[") {
                rest.split("]]").next().map(|name| {
                    let name = name.trim();
                    if name == "jobs" {
                        jobs_seen += 1;
                        format!("jobs[{}]", jobs_seen - 1)
                    } else {
                        name.to_string()
                    }
                })
            } else if let Some(rest) = line.strip_prefix('[') {
                rest.split(']').next().map(|name| name.trim().to_string())
            } else {
                None
            };
            if let Some(header) = header {
                table = Some(header);
                if number + 1 == target {
                    return table;
                }
                continue;
            }
            if number + 1 == target {
                let key = line
                    .split('=')
                    .next()
                    .map(str::trim)
                    .filter(|k| !k.is_empty() && line.contains('=') && !k.starts_with('#'))?;
                let key = key.trim_matches('"');
                return Some(match table {
                    Some(table) => format!("{table}.{key}"),
                    None => key.to_string(),
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_keys() {
        let text =
            "a = 1\n[daemon]\nworkers = 4\n\n[[jobs]]\nname = \"x\"\n[[jobs]]\nevery = \"5s\"\n";
        let src = Source::new(text);
        assert_eq!(src.line_of(0), 1);
        assert_eq!(src.line_of(5), 1);
        assert_eq!(src.line_of(6), 2);
        assert_eq!(src.line_of(text.len()), 9);
        let at = |needle: &str| text.find(needle).expect("needle");
        assert_eq!(src.key_at(at("a =")).as_deref(), Some("a"));
        assert_eq!(src.key_at(at("4")).as_deref(), Some("daemon.workers"));
        assert_eq!(src.key_at(at("[daemon]")).as_deref(), Some("daemon"));
        assert_eq!(src.key_at(at("\"x\"")).as_deref(), Some("jobs[0].name"));
        assert_eq!(src.key_at(at("\"5s\"")).as_deref(), Some("jobs[1].every"));
        assert_eq!(src.key_at(at("\n\n") + 1), None);
    }
}
