//! The `X-Service-Key` guard of internal routes.
//!
//! Several keys may be configured at once (rotation: deploy the new key next to
//! the old one, move the callers, drop the old key). Every configured key is
//! compared in constant time, and all of them are always compared, so timing
//! reveals neither which key matched nor how much of one did.

use actix_web::{
    Error,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
    web,
};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::errors::ErrorResponse;

/// Header carrying the service key.
pub const HEADER: &str = "x-service-key";

/// The accepted service keys.
#[derive(Clone, Default)]
pub struct ServiceKeys(Vec<SecretString>);

impl std::fmt::Debug for ServiceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServiceKeys({} configured)", self.0.len())
    }
}

impl ServiceKeys {
    /// Parse a comma-separated list; blanks are ignored.
    pub fn parse(list: &str) -> Self {
        Self(
            list.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(|k| SecretString::from(k.to_owned()))
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The first key: what a client of another service sends.
    pub fn primary(&self) -> Option<&str> {
        self.0.first().map(|k| k.expose_secret())
    }

    /// Constant-time check of a presented key against every configured key.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let mut ok = subtle::Choice::from(0);
        for key in &self.0 {
            ok |= key.expose_secret().as_bytes().ct_eq(presented);
        }
        !self.0.is_empty() && bool::from(ok)
    }
}

/// `from_fn` middleware: 401 unless `X-Service-Key` matches a configured key.
/// Expects `web::Data<ServiceKeys>` in app data.
pub async fn require_service_key(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let accepted = match (
        req.app_data::<web::Data<ServiceKeys>>(),
        req.headers().get(HEADER),
    ) {
        (Some(keys), Some(presented)) => keys.accepts(presented.as_bytes()),
        _ => false,
    };
    if !accepted {
        return Err(ErrorResponse::unauthorized("missing or invalid X-Service-Key").into());
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_any_configured_key_and_nothing_else() {
        let keys = ServiceKeys::parse(" old-key , new-key ,,");
        assert_eq!(keys.len(), 2);
        assert!(keys.accepts(b"old-key"));
        assert!(keys.accepts(b"new-key"));
        assert!(!keys.accepts(b"new-ke"));
        assert!(!keys.accepts(b""));
        assert!(!ServiceKeys::parse("").accepts(b""));
        assert_eq!(keys.primary(), Some("old-key"));
        assert!(!format!("{keys:?}").contains("old-key"));
    }
}
