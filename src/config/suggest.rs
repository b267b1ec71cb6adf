//! "Did you mean ...?": the nearest known word to a misspelt one.
//!
//! Used for unknown keys (`comand` → `command`) and time zone names
//! (`America/NewYork` → `America/New_York`). The distance is the optimal
//! string alignment distance (Levenshtein plus swapping two neighbours, the
//! commonest typo), ignoring ASCII case; a word is only suggested when it
//! is close enough that the typo is plausible, so a word with no relative
//! in the list gets no suggestion rather than a random one.

/// The candidate nearest to `word`, if one is close enough: at most one
/// edit for words up to 4 characters, then one more per 4 characters, and
/// at most 3. Ties go to the first candidate.
pub(crate) fn nearest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 4).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The nearest IANA zone name to `name` in jiff's zone database (the one
/// `tz` is looked up in). A name without `/` is also compared with the
/// last part of each zone name, so `Paris` finds `Europe/Paris`.
pub(crate) fn zone(name: &str) -> Option<String> {
    let names: Vec<String> = jiff::tz::db()
        .available()
        .map(|n| n.as_str().to_string())
        .collect();
    let short = !name.contains('/');
    let limit = (name.chars().count() / 4).clamp(1, 3);
    names
        .iter()
        .map(|full| {
            let tail = full.rsplit('/').next().unwrap_or(full);
            let d = distance(name, full);
            let d = if short {
                d.min(distance(name, tail))
            } else {
                d
            };
            (d, full)
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, full)| full.clone())
}

/// Optimal string alignment distance between `a` and `b`, ignoring ASCII
/// case.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    // Three rows of the DP table: two back (for transpositions), one back, current.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut current = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        before = std::mem::replace(&mut previous, current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("comand", "command"), 1);
        assert_eq!(distance("comamnd", "command"), 1, "a swap is one edit");
        assert_eq!(distance("Workers", "workers"), 0);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn nearest_keys() {
        let keys = ["name", "command", "every", "cron", "catch_up", "timeout"];
        assert_eq!(nearest("comand", keys), Some("command"));
        assert_eq!(nearest("catchup", keys), Some("catch_up"));
        assert_eq!(nearest("timout", keys), Some("timeout"));
        assert_eq!(nearest("bogus", keys), None);
        assert_eq!(nearest("x", keys), None);
    }

    #[test]
    fn nearest_zones() {
        assert_eq!(zone("America/NewYork").as_deref(), Some("America/New_York"));
        assert_eq!(zone("europe/pariss").as_deref(), Some("Europe/Paris"));
        assert_eq!(zone("Paris").as_deref(), Some("Europe/Paris"));
        assert_eq!(zone("Mars/Olympus"), None);
    }
}
