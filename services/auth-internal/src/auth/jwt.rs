//! Access tokens: EdDSA (Ed25519) JWTs with a `kid`, `sub` = user id, `aud`,
//! `iss`, `iat` and `exp`; the public keys are published as a JWKS.
//!
//! The signing key comes from settings (PKCS#8 PEM). Without one (development
//! only) an ephemeral key is generated and tokens die with the process.

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
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid("unexpected algorithm".into()));
        }
        if header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(TokenError::Invalid("unknown key id".into()));
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(audiences);
        validation.set_issuer(&[&self.issuer]);
        // Expiry is checked below against the injected clock, not the system clock.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "sub", "aud", "iss"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        if data.claims.exp + 30 < now.timestamp() {
            return Err(TokenError::Expired);
        }
        Ok(data.claims)
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
