//! Registration and login: the bodies of `POST /api/v1/auth/register` and
//! `POST /api/v1/auth/login` and their shared answer. auth-internal serves them;
//! persona-runner logs personas in with them.
//!
//! Rules: request bodies refuse unknown fields (a typo is a 400, not a silent
//! default); the token answer is the same for register and login.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Body of `POST /api/v1/auth/register`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    pub email: String,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// Body of `POST /api/v1/auth/login`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// The account a token was issued for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TokenUser {
    pub id: Uuid,
    pub email: String,
    pub kind: String,
}

/// Answer of register and login: an EdDSA-signed JWT.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    /// The JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
    pub user: TokenUser,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_round_trips_refuses_unknown_fields_and_hides_secrets() {
        let req: LoginRequest =
            serde_json::from_str(r#"{"email":"a@b.test","password":"pw-secret"}"#).unwrap();
        assert_eq!(req.email, "a@b.test");
        assert!(!format!("{req:?}").contains("pw-secret"));
        assert!(
            serde_json::from_str::<LoginRequest>(r#"{"email":"a","password":"b","x":1}"#).is_err()
        );
        let token = TokenResponse {
            access_token: "jwt-secret".into(),
            token_type: "Bearer".into(),
            expires_in: 900,
            user: TokenUser {
                id: Uuid::nil(),
                email: "a@b.test".into(),
                kind: "persona".into(),
            },
        };
        let json = serde_json::to_value(&token).unwrap();
        assert_eq!(json["accessToken"], "jwt-secret");
        assert_eq!(json["tokenType"], "Bearer");
        assert_eq!(json["expiresIn"], 900);
        assert_eq!(json["user"]["kind"], "persona");
        assert_eq!(
            serde_json::from_value::<TokenResponse>(json).unwrap(),
            token
        );
        assert!(!format!("{token:?}").contains("jwt-secret"));
    }
}
