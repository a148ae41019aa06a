//! The input hash of a tool call: the first 16 hex characters of SHA-256 over
//! the compact JSON of its arguments. The MCP endpoint logs it and the persona
//! runner stores it on each action row, so the two can be matched.

use aws_lc_rs::digest;

/// First 16 hex characters of SHA-256 of `input`'s compact JSON.
pub fn input_hash(input: &serde_json::Value) -> String {
    let d = digest::digest(&digest::SHA256, input.to_string().as_bytes());
    d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_the_sha256_prefix_of_the_compact_json() {
        // sha256(`{"title":"x"}`), first 16 hex characters.
        let expected = {
            let d = digest::digest(&digest::SHA256, br#"{"title":"x"}"#);
            d.as_ref()[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let h = input_hash(&serde_json::json!({"title": "x"}));
        assert_eq!(h.len(), 16);
        assert_eq!(h, expected);
        assert_ne!(h, input_hash(&serde_json::json!({"title": "y"})));
    }
}
