//! CSRF protection for HTML forms.
//!
//! Rules:
//! - Signed-in forms use the synchronizer token of the server-side session
//!   (one random token per session, stored with it, rotated with it).
//! - The sign-in form, which has no session yet, uses a double-submit token:
//!   the same random value in a `SameSite=Strict` cookie and in the form.
//! - Tokens are 256 random bits, base64url; they are compared in constant
//!   time, and an empty or missing token never matches.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use maud::{Markup, html};
use subtle::ConstantTimeEq;

/// The name of the hidden form field that carries the token.
pub const FIELD: &str = "csrf_token";

/// Why a random token could not be made (the system RNG failed).
#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RandomError;

/// 32 random bytes, base64url without padding (43 characters).
pub fn random_token() -> Result<String, RandomError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| RandomError)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `presented` equals `expected`, in constant time; empty never matches.
pub fn matches(expected: &str, presented: Option<&str>) -> bool {
    match presented {
        Some(p) if !p.is_empty() && !expected.is_empty() => {
            bool::from(expected.as_bytes().ct_eq(p.as_bytes()))
        }
        _ => false,
    }
}

/// The hidden field every state-changing form includes.
pub fn hidden_field(token: &str) -> Markup {
    html! { input type="hidden" name=(FIELD) value=(token); }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_compare_exactly() {
        let a = random_token().unwrap();
        let b = random_token().unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(matches(&a, Some(&a)));
        assert!(!matches(&a, Some(&b)));
        assert!(!matches(&a, Some(&a[..42])));
        assert!(!matches(&a, None));
        assert!(!matches("", Some("")));
    }

    #[test]
    fn the_hidden_field_names_the_token() {
        let html = hidden_field("abc").into_string();
        assert_eq!(
            html,
            r#"<input type="hidden" name="csrf_token" value="abc">"#
        );
    }
}
