//! Text bounds shared by every crate that cuts text for a prompt, an error or a stored
//! note.
//!
//! Rules: cuts count chars (never bytes) and land on a char boundary; a cut is marked
//! with `…` so a reader sees the text was longer; nothing here panics.

/// At most `max` chars of `s`, with `…` appended when cut.
pub fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((idx, _)) => format!("{}…", &s[..idx]),
        None => s.to_owned(),
    }
}

/// The first `max` chars of `s`, borrowed, without a marker (for bounding work, not
/// for display).
pub fn head_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((idx, _)) => &s[..idx],
        None => s,
    }
}

/// `s` on one line (runs of whitespace, newlines included, become one space), cut to
/// `max` chars. Titles and summaries go through it so they cannot open a new prompt
/// section.
pub fn one_line(s: &str, max: usize) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate_chars(&joined, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_chars("äöü", 2), "äö…");
        assert_eq!(truncate_chars("abc", 3), "abc");
        assert_eq!(truncate_chars("", 0), "");
        assert_eq!(truncate_chars("ab", 0), "…");
        assert_eq!(head_chars("äöü", 2), "äö");
        assert_eq!(head_chars("äöü", 9), "äöü");
    }

    #[test]
    fn one_line_collapses_whitespace() {
        assert_eq!(one_line("  a\n\n# b\tc ", 100), "a # b c");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }
}
