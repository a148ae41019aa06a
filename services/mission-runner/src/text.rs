//! Small text helpers shared by the prompt, the parser and the planner.
//!
//! Rules: every cut is on a char boundary and marked with `…`; nothing here panics.

/// At most `max` chars of `s`, with `…` appended when cut.
pub fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((idx, _)) => format!("{}…", &s[..idx]),
        None => s.to_string(),
    }
}

/// `s` on one line (runs of whitespace, newlines included, become one space), cut to
/// `max` chars. Used for titles and summaries so they cannot open a new prompt section.
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
    }

    #[test]
    fn one_line_collapses_whitespace() {
        assert_eq!(one_line("  a\n\n# b\tc ", 100), "a # b c");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }
}
