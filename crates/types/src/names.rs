//! The one name rule of the wire: tool names, module names, app ids and table names
//! match `^[a-zA-Z0-9_-]{1,64}$` (the LLM vendors' pattern for tool names; the record
//! store uses it for app ids and tables, so every such name is also a valid tool part).
//!
//! Rules: ASCII only, 1 to [`MAX_NAME_LEN`] bytes; callers that need a stricter rule
//! (a lower-case slug) check that on top of [`is_valid_name`], never instead of it.

/// The pattern, as the vendors and our error messages write it.
pub const NAME_PATTERN: &str = "^[a-zA-Z0-9_-]{1,64}$";
/// Longest valid name.
pub const MAX_NAME_LEN: usize = 64;

/// Whether `name` matches [`NAME_PATTERN`].
pub fn is_valid_name(name: &str) -> bool {
    is_valid_name_up_to(name, MAX_NAME_LEN)
}

/// Whether `name` matches `^[a-zA-Z0-9_-]{1,max}$` (`max` is capped at
/// [`MAX_NAME_LEN`]).
pub fn is_valid_name_up_to(name: &str, max: usize) -> bool {
    (1..=max.min(MAX_NAME_LEN)).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `name` made valid: every other character becomes `_`, cut to [`MAX_NAME_LEN`];
/// an empty name becomes `_`. For names a model invented that must still be stored.
pub fn sanitize_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(MAX_NAME_LEN)
        .collect();
    if s.is_empty() { "_".to_owned() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_holds() {
        for ok in ["a", "todo_create", "A-9_z", &"x".repeat(64)] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "todo.create", "a b", "ä", "a/b", &"x".repeat(65)] {
            assert!(!is_valid_name(bad), "{bad}");
        }
        assert!(is_valid_name_up_to("abc", 3));
        assert!(!is_valid_name_up_to("abcd", 3));
        assert!(!is_valid_name_up_to(&"x".repeat(65), 100));
    }

    #[test]
    fn sanitized_names_are_valid() {
        assert_eq!(sanitize_name("mcp.todo create"), "mcp_todo_create");
        assert_eq!(sanitize_name(""), "_");
        assert_eq!(sanitize_name(&"ä".repeat(100)).len(), 64);
        for s in ["", "a.b", "äöü", "ok", &"x y".repeat(40)] {
            assert!(is_valid_name(&sanitize_name(s)), "{s}");
        }
    }
}
