//! OAuth 2.1 authorization server for `/mcp` (the MCP authorization spec) and
//! the bearer check of `/mcp` (login JWTs, OAuth access tokens, personal access
//! tokens).
//!
//! Rules:
//! - Public clients only (RFC 7591 registration without a secret); PKCE S256 is
//!   required on every authorization, `plain` is refused (RFC 7636, OAuth 2.1).
//! - The issuer is this service's public base URL (`mcp.public_url`, else the
//!   request's scheme and host); the one protected resource is `{issuer}/mcp`
//!   (RFC 8707): it is every OAuth access token's `aud`, and a `resource`
//!   naming anything else is `invalid_target`.
//! - Codes, refresh tokens and personal access tokens are 256-bit random values
//!   stored only as SHA-256 digests (high entropy: a slow hash adds nothing).
//! - Codes are single use, bound to client, redirect URI, PKCE challenge and
//!   resource, and expire after `oauth.code_ttl_secs` (≤ 60). A replayed code
//!   revokes the grant its first exchange created.
//! - Refresh tokens rotate on every use; presenting a rotated one is a replay
//!   and revokes the whole grant (every token of the chain).
//! - Access tokens are our EdDSA JWTs (`aud` = the MCP resource, `gid` = the
//!   grant, TTL `oauth.access_ttl_secs`); `/mcp` looks the grant up by primary
//!   key on every request, so revocation takes effect at once.
//! - Only `human` users get grants or personal access tokens; personas keep
//!   logging in as they do today.
//! - Errors of the OAuth endpoints use the RFCs' shape
//!   (`{"error","error_description"}`, RFC 6749 §5.2, RFC 7591 §3.2.2) because
//!   OAuth clients parse it; every other route keeps the house envelope.
//! - Time comes from the injected clock, so expiry is tested without sleeps.

pub mod authorize;
pub mod bearer;
pub mod connections;
pub mod error;
pub mod metadata;
pub mod page;
pub mod register;
pub mod token;

use aws_lc_rs::{
    digest,
    rand::{SecureRandom, SystemRandom},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::{error::AppError, state::AppState};

/// The OAuth endpoints and pages (absolute paths, mounted at the top level
/// of `routes::table`).
pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig<'_>) {
    cfg.service(metadata::authorization_server_metadata)
        .service(register::register_client)
        .service(authorize::authorize_page)
        .service(authorize::authorize_submit)
        .service(token::exchange_token)
        .service(token::revoke)
        .service(connections::connections_page)
        .service(connections::connections_sign_in)
        .service(connections::connections_disconnect);
}

/// The one scope: use the MCP tools as the signed-in user.
pub const SCOPE_MCP: &str = "mcp";
/// Prefix of personal access tokens (recognisable in logs and secret scanners).
pub const PAT_PREFIX: &str = "mana_pat_";
/// Prefix of refresh tokens.
pub const REFRESH_PREFIX: &str = "mana_rt_";

/// `oauth.*` settings.
#[derive(Debug, Clone, Deserialize)]
pub struct OAuthSettings {
    /// Lifetime of OAuth access tokens (`MANA_OAUTH__ACCESS_TTL_SECS`, default 600).
    pub access_ttl_secs: u64,
    /// Lifetime of authorization codes, at most 60 (`MANA_OAUTH__CODE_TTL_SECS`).
    pub code_ttl_secs: u64,
    /// Lifetime of a refresh token (each rotation starts a new one).
    pub refresh_ttl_days: u64,
    /// Dynamic client registrations accepted per IP address per hour.
    pub registrations_per_ip_per_hour: u32,
    /// Default and maximum lifetime of personal access tokens.
    pub pat_default_days: u32,
    pub pat_max_days: u32,
}

impl OAuthSettings {
    /// Check the ranges; the error names the setting.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(60..=3600).contains(&self.access_ttl_secs) {
            return Err(("oauth.access_ttl_secs", "must be 60 to 3600".into()));
        }
        if !(1..=60).contains(&self.code_ttl_secs) {
            return Err(("oauth.code_ttl_secs", "must be 1 to 60".into()));
        }
        if !(1..=365).contains(&self.refresh_ttl_days) {
            return Err(("oauth.refresh_ttl_days", "must be 1 to 365".into()));
        }
        if self.registrations_per_ip_per_hour == 0 {
            return Err((
                "oauth.registrations_per_ip_per_hour",
                "must be at least 1".into(),
            ));
        }
        if self.pat_max_days == 0 || !(1..=self.pat_max_days).contains(&self.pat_default_days) {
            return Err((
                "oauth.pat_default_days",
                "must be 1 to oauth.pat_max_days".into(),
            ));
        }
        Ok(())
    }
}

/// A fresh 256-bit random secret, base64url, behind `prefix`.
pub fn random_secret(prefix: &str) -> Result<String, AppError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AppError::internal("the system random generator failed"))?;
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// SHA-256 of a secret: what the database stores.
pub fn secret_digest(secret: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, secret.as_bytes())
        .as_ref()
        .to_vec()
}

/// RFC 7636 §4.2: `BASE64URL(SHA256(ASCII(code_verifier)))`.
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

/// RFC 7636 §4.1: 43–128 characters of `[A-Za-z0-9-._~]`.
pub fn valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// An S256 challenge is the base64url (no padding) of 32 bytes: 43 characters.
pub fn valid_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// Whether `verifier` proves `challenge` (constant-time compare).
pub fn verify_pkce(verifier: &str, challenge: &str) -> bool {
    valid_verifier(verifier)
        && bool::from(
            s256_challenge(verifier)
                .as_bytes()
                .ct_eq(challenge.as_bytes()),
        )
}

/// The issuer: this service's public base URL.
pub fn issuer(req: &actix_web::HttpRequest, state: &AppState) -> String {
    crate::mcp::base_url(req, state)
}

/// The protected resource (RFC 8707 / RFC 9728): the MCP endpoint's URL.
pub fn mcp_resource(req: &actix_web::HttpRequest, state: &AppState) -> String {
    format!("{}/mcp", crate::mcp::base_url(req, state))
}

/// Whether a requested resource names our MCP endpoint (a trailing slash is
/// tolerated, as some clients normalise URLs that way).
pub fn is_our_resource(requested: &str, ours: &str) -> bool {
    requested == ours || requested.strip_suffix('/') == Some(ours)
}

/// Whether every space-separated scope in `requested` is one we grant.
pub fn valid_scope(requested: &str) -> bool {
    requested.split(' ').filter(|s| !s.is_empty()).count() > 0
        && requested
            .split(' ')
            .filter(|s| !s.is_empty())
            .all(|s| s == SCOPE_MCP)
}

#[cfg(test)]
mod tests {

    use super::*;

    /// RFC 7636 Appendix B.
    #[test]
    fn pkce_s256_matches_the_rfc_7636_appendix_b_vector() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(s256_challenge(verifier), challenge);
        assert!(verify_pkce(verifier, challenge));
        assert!(valid_challenge(challenge));
        assert!(!verify_pkce(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK",
            challenge
        ));
    }

    #[test]
    fn verifier_and_challenge_shapes() {
        assert!(!valid_verifier("short"));
        assert!(!valid_verifier(&"a".repeat(129)));
        assert!(valid_verifier(&"a~._-".repeat(9)));
        assert!(!valid_verifier(&format!("{}+", "a".repeat(43))));
        // `plain` would send the verifier itself: 43+ chars but maybe not base64url.
        assert!(!valid_challenge(&"a".repeat(44)));
        assert!(!valid_challenge(&format!("{}=", "a".repeat(42))));
    }

    #[test]
    fn scopes_and_resources() {
        assert!(valid_scope("mcp"));
        assert!(valid_scope("mcp mcp"));
        assert!(!valid_scope(""));
        assert!(!valid_scope("mcp admin"));
        assert!(is_our_resource("http://h/mcp", "http://h/mcp"));
        assert!(is_our_resource("http://h/mcp/", "http://h/mcp"));
        assert!(!is_our_resource("http://other/mcp", "http://h/mcp"));
    }

    #[test]
    fn secrets_are_random_and_prefixed() {
        let a = random_secret(PAT_PREFIX).unwrap();
        let b = random_secret(PAT_PREFIX).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(PAT_PREFIX));
        assert_eq!(a.len(), PAT_PREFIX.len() + 43);
        assert_eq!(secret_digest(&a).len(), 32);
    }

    fn load(pairs: &[(&str, &str)]) -> Result<crate::config::Settings, crate::config::ConfigError> {
        let mut env: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        env.insert("MANA_CONFIG".into(), String::new());
        crate::config::Settings::load_from(&env)
    }

    #[test]
    fn settings_come_from_mana_oauth_variables_and_are_range_checked() {
        let s = load(&[]).unwrap();
        assert_eq!(s.oauth.code_ttl_secs, 60);
        assert_eq!(s.oauth.pat_default_days, 90);
        let s = load(&[
            ("MANA_OAUTH__ACCESS_TTL_SECS", "120"),
            ("MANA_OAUTH__CODE_TTL_SECS", "30"),
        ])
        .unwrap();
        assert_eq!((s.oauth.access_ttl_secs, s.oauth.code_ttl_secs), (120, 30));
        for (var, value, named) in [
            ("MANA_OAUTH__CODE_TTL_SECS", "61", "oauth.code_ttl_secs"),
            ("MANA_OAUTH__ACCESS_TTL_SECS", "5", "oauth.access_ttl_secs"),
            (
                "MANA_OAUTH__PAT_DEFAULT_DAYS",
                "400",
                "oauth.pat_default_days",
            ),
            (
                "MANA_OAUTH__REGISTRATIONS_PER_IP_PER_HOUR",
                "0",
                "oauth.registrations_per_ip_per_hour",
            ),
        ] {
            let err = load(&[(var, value)]).unwrap_err();
            assert!(err.to_string().contains(named), "{var}: {err}");
        }
    }
}
