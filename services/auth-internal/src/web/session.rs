//! Server-side browser sessions: the cookie, the stored hash, the lookup.
//!
//! Rules:
//! - The cookie holds a 256-bit random id and nothing else; the database holds
//!   only its SHA-256 (`console_sessions.id_hash`), the user, the session's
//!   CSRF token and the expiry. A new id is issued at every sign-in (rotation)
//!   and the previous session, if any, is deleted.
//! - Cookies are `HttpOnly`, `SameSite=Strict`, `Path=/`, carry `Max-Age`
//!   (the session's lifetime) and are `Secure` outside development.
//! - A lookup checks the expiry against the injected clock, so an expired
//!   session is never used whether or not it has been swept yet.

use actix_web::{HttpRequest, http::header};
use aws_lc_rs::digest;
use cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use serde::Deserialize;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "mana_console_session";
/// The sign-in form's double-submit CSRF cookie.
pub const LOGIN_CSRF_COOKIE: &str = "mana_console_login";

/// Console settings (`MANA_CONSOLE__*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ConsoleSettings {
    /// Lifetime of a console session from sign-in (default 12 h).
    pub session_ttl_secs: u64,
    /// Failed sign-ins one client address may make per window before it gets 429.
    pub login_failures_per_ip: u32,
    /// Failed sign-ins per email (typed, any account or none) per window before 429.
    pub login_failures_per_email: u32,
    /// The window of those counts, and the `Retry-After` of a refusal (default 15 min).
    pub login_failure_window_secs: u64,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            session_ttl_secs: 12 * 3600,
            login_failures_per_ip: 20,
            login_failures_per_email: 5,
            login_failure_window_secs: 15 * 60,
        }
    }
}

/// The stored form of a session id.
pub fn hash_id(id: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, id.as_bytes())
        .as_ref()
        .to_vec()
}

/// A cookie with the console's attributes; `max_age_secs = 0` deletes it.
pub fn cookie(name: &str, value: &str, max_age_secs: u64, secure: bool) -> String {
    let max_age = i64::try_from(max_age_secs).unwrap_or(i64::MAX / 2);
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(CookieDuration::seconds(max_age))
        .build()
        .to_string()
}

/// The value of cookie `name` in the request, if present and non-empty.
pub fn read_cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn cookies_carry_the_protective_attributes() {
        let dev = cookie(SESSION_COOKIE, "abc", 60, false);
        assert!(dev.starts_with("mana_console_session=abc"));
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=60"] {
            assert!(dev.contains(attr), "{dev}");
        }
        assert!(!dev.contains("Secure"), "{dev}");
        assert!(cookie(SESSION_COOKIE, "abc", 60, true).contains("Secure"));
    }

    #[test]
    fn a_cookie_is_found_among_others_and_the_hash_is_sha256() {
        let req = TestRequest::default()
            .insert_header((header::COOKIE, "a=1; mana_console_session=xyz; b=2"))
            .to_http_request();
        assert_eq!(read_cookie(&req, SESSION_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(read_cookie(&req, "missing"), None);
        assert_eq!(hash_id("xyz").len(), 32);
        assert_ne!(hash_id("xyz"), hash_id("xyz "));
    }
}
