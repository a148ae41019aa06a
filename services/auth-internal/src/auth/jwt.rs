//! Access tokens: EdDSA (Ed25519) JWTs with a `kid`, `sub` = user id, `aud`,
//! `iss`, `iat` and `exp`; the public keys are published as a JWKS.
//!
//! The signing key comes from settings (PKCS#8 PEM). Without one (development
//! only) an ephemeral key is generated and tokens die with the process.
//!
//! A token whose signature checked out is remembered (the whole token string
//! is the key, so a changed byte is a miss), up to [`VERIFIED_CAP`] tokens: the
//! Ed25519 check is the dearest step of a request (an MCP client sends the same
//! token with every call). Issuer, audience and expiry are checked on every use.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use aws_lc_rs::{
    digest,
    rand::SystemRandom,
    signature::{Ed25519KeyPair, KeyPair},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{config::JwtSettings, error::AppError};

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
    pub email: String,
    pub kind: String,
    /// OAuth access tokens only: the grant they belong to (checked on `/mcp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<Uuid>,
    /// OAuth access tokens only: a unique id and the granted scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// How many verified tokens [`Keys`] remembers; when full, the expired ones
/// go, and if none has expired, all (a bound on memory, not a policy).
pub const VERIFIED_CAP: usize = 4096;

/// The signing key and everything derived from it.
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    x: String,
    issuer: String,
    audience: String,
    ttl_secs: u64,
    pub ephemeral: bool,
    /// Tokens whose signature, algorithm and `kid` checked out, with their claims.
    verified: Mutex<HashMap<String, Claims>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("{0}")]
    Invalid(String),
}

fn pem_to_der(pem: &str) -> Result<Vec<u8>, AppError> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| AppError::Internal(format!("jwt private key is not valid PEM: {e}")))
}

impl Keys {
    pub fn from_settings(s: &JwtSettings) -> Result<Self, AppError> {
        let pem = match (&s.private_key_pem, &s.private_key_file) {
            (Some(pem), _) => Some(pem.expose_secret().to_owned()),
            (None, Some(path)) => Some(std::fs::read_to_string(path).map_err(|e| {
                AppError::Internal(format!("cannot read jwt.private_key_file {path}: {e}"))
            })?),
            (None, None) => None,
        };
        let (der, ephemeral) = match pem {
            Some(pem) => (pem_to_der(&pem)?, false),
            None => {
                let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                    .map_err(|e| AppError::Internal(format!("key generation failed: {e}")))?;
                (doc.as_ref().to_vec(), true)
            }
        };
        Self::from_pkcs8(&der, s, ephemeral)
    }

    fn from_pkcs8(der: &[u8], s: &JwtSettings, ephemeral: bool) -> Result<Self, AppError> {
        let pair = Ed25519KeyPair::from_pkcs8(der).map_err(|e| {
            AppError::Internal(format!("jwt private key is not Ed25519 PKCS#8: {e}"))
        })?;
        let public = pair.public_key().as_ref().to_vec();
        let x = URL_SAFE_NO_PAD.encode(&public);
        let kid = URL_SAFE_NO_PAD.encode(&digest::digest(&digest::SHA256, &public).as_ref()[..12]);
        let decoding = DecodingKey::from_ed_components(&x)
            .map_err(|e| AppError::Internal(format!("jwt public key: {e}")))?;
        Ok(Self {
            encoding: EncodingKey::from_ed_der(der),
            decoding,
            kid,
            x,
            issuer: s.issuer.clone(),
            audience: s.audience.clone(),
            ttl_secs: s.access_ttl_secs,
            ephemeral,
            verified: Mutex::new(HashMap::new()),
        })
    }

    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Issue an access token valid for the configured TTL from `now`.
    pub fn issue(
        &self,
        user_id: Uuid,
        email: &str,
        kind: &str,
        now: DateTime<Utc>,
    ) -> Result<String, AppError> {
        let claims = Claims {
            sub: user_id,
            aud: self.audience.clone(),
            iss: self.issuer.clone(),
            iat: now.timestamp(),
            exp: now.timestamp() + i64::try_from(self.ttl_secs).unwrap_or(i64::MAX / 2),
            email: email.to_owned(),
            kind: kind.to_owned(),
            gid: None,
            jti: None,
            scope: None,
        };
        self.sign(&claims)
    }

    /// The configured `iss` of every token.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Sign arbitrary claims (the OAuth module sets its own `aud`, TTL and grant).
    pub fn sign(&self, claims: &Claims) -> Result<String, AppError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(AppError::internal)
    }

    /// Verify signature, algorithm, `kid`, issuer, audience and expiry (at `now`, 30 s leeway).
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, TokenError> {
        self.verify_for(token, now, &[self.audience.as_str()])
    }

    /// As [`Keys::verify`], accepting any of `audiences` as `aud`.
    pub fn verify_for(
        &self,
        token: &str,
        now: DateTime<Utc>,
        audiences: &[&str],
    ) -> Result<Claims, TokenError> {
        let claims = match self.remembered(token) {
            Some(claims) => claims,
            None => {
                let claims = self.verify_signature(token)?;
                self.remember(token, &claims, now);
                claims
            }
        };
        if claims.iss != self.issuer {
            return Err(TokenError::Invalid("InvalidIssuer".into()));
        }
        if !audiences.contains(&claims.aud.as_str()) {
            return Err(TokenError::Invalid("InvalidAudience".into()));
        }
        if claims.exp + 30 < now.timestamp() {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// Signature, algorithm, `kid` and the required claims; the rest is
    /// [`Keys::verify_for`]'s, on every use.
    fn verify_signature(&self, token: &str) -> Result<Claims, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid("unexpected algorithm".into()));
        }
        if header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(TokenError::Invalid("unknown key id".into()));
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        // Audience, issuer and expiry are checked by the caller against the
        // injected clock, on every use of a remembered token too.
        validation.validate_aud = false;
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "sub", "aud", "iss"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    fn remembered(&self, token: &str) -> Option<Claims> {
        self.verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned()
    }

    fn remember(&self, token: &str, claims: &Claims, now: DateTime<Utc>) {
        let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if verified.len() >= VERIFIED_CAP {
            let now = now.timestamp();
            verified.retain(|_, c| c.exp + 30 >= now);
            if verified.len() >= VERIFIED_CAP {
                verified.clear();
            }
        }
        verified.insert(token.to_owned(), claims.clone());
    }

    /// The JWKS document.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({
            "keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "alg": "EdDSA",
                "use": "sig",
                "kid": self.kid,
                "x": self.x,
            }]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::from_settings(&JwtSettings {
            issuer: "https://auth.test".into(),
            audience: "mana".into(),
            access_ttl_secs: 600,
            private_key_pem: None,
            private_key_file: None,
        })
        .unwrap()
    }

    /// `token` with one character of its payload segment changed.
    fn tampered(token: &str) -> String {
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let payload = &mut parts[1];
        let last = payload.pop().unwrap();
        payload.push(if last == 'A' { 'B' } else { 'A' });
        parts.join(".")
    }

    #[test]
    fn a_remembered_token_is_still_checked_for_audience_issuer_and_expiry() {
        let keys = keys();
        let now = Utc::now();
        let token = keys
            .issue(Uuid::new_v4(), "a@example.com", "human", now)
            .unwrap();
        keys.verify(&token, now).unwrap();
        assert!(keys.remembered(&token).is_some());
        // The same, remembered token: other audience, and after its expiry.
        assert!(matches!(
            keys.verify_for(&token, now, &["other"]),
            Err(TokenError::Invalid(m)) if m == "InvalidAudience"
        ));
        assert!(matches!(
            keys.verify(&token, now + chrono::TimeDelta::seconds(700)),
            Err(TokenError::Expired)
        ));
        // A token of this key with a foreign issuer is refused, remembered or not.
        let mut claims = keys.verify(&token, now).unwrap();
        claims.iss = "https://elsewhere.test".into();
        let foreign = keys.sign(&claims).unwrap();
        for _ in 0..2 {
            assert!(keys.verify(&foreign, now).is_err());
        }
    }

    #[test]
    fn a_changed_byte_is_never_taken_for_a_remembered_token() {
        let keys = keys();
        let now = Utc::now();
        let token = keys
            .issue(Uuid::new_v4(), "a@example.com", "human", now)
            .unwrap();
        keys.verify(&token, now).unwrap();
        let forged = tampered(&token);
        assert!(keys.verify(&forged, now).is_err());
        assert!(keys.remembered(&forged).is_none());
    }

    #[test]
    fn the_memory_of_verified_tokens_is_bounded() {
        let keys = keys();
        let now = Utc::now();
        for _ in 0..VERIFIED_CAP + 10 {
            let token = keys
                .issue(Uuid::new_v4(), "a@example.com", "human", now)
                .unwrap();
            keys.verify(&token, now).unwrap();
        }
        let held = keys.verified.lock().unwrap().len();
        assert!((1..=VERIFIED_CAP).contains(&held), "{held}");
    }
}
