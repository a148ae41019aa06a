//! The persona password derivation, shared by auth-internal (which sets it when
//! it upserts the catalogue) and persona-runner (which logs in with it).
//!
//! HMAC-SHA256 keyed with the seed secret (UTF-8) over the exact email; the
//! digest in standard base64; every character outside `[A-Za-z0-9]` removed;
//! the first 32 characters kept.

use aws_lc_rs::hmac;
use base64::Engine;

/// The development seed secret: the fallback of auth-internal and persona-runner when
/// none is configured (auth-internal refuses it in production).
pub const DEV_SEED_SECRET: &str = "dev-persona-seed-secret-rotate-in-prod";

/// The persona email for a catalogue slug.
pub fn persona_email(slug: &str) -> String {
    format!("persona.{slug}@mana.test")
}

/// Derive a persona's password from the seed secret and its email.
pub fn persona_password(seed_secret: &str, email: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, seed_secret.as_bytes());
    let tag = hmac::sign(&key, email.as_bytes());
    base64::engine::general_purpose::STANDARD
        .encode(tag.as_ref())
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_derivation() {
        // Reference value computed with Node: crypto.createHmac('sha256', 'dev-persona-seed-secret-rotate-in-prod')
        // .update('persona.anna@mana.test').digest('base64').replace(/[^A-Za-z0-9]/g,'').slice(0,32)
        let p = persona_password(
            "dev-persona-seed-secret-rotate-in-prod",
            "persona.anna@mana.test",
        );
        assert_eq!(p, "1FJ7w8KbjK5CWVa8NqfobexAFNuQKxiA");
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(p, persona_password("other", "persona.anna@mana.test"));
        assert_ne!(
            p,
            persona_password(
                "dev-persona-seed-secret-rotate-in-prod",
                "Persona.anna@mana.test"
            )
        );
    }
}
