//! argon2id password hashing, run off the async workers.
//!
//! Login with an unknown email verifies against a dummy hash made with the same
//! parameters, so it costs the same time as a wrong password.

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash},
};

use crate::{config::PasswordSettings, error::AppError};

#[derive(Clone)]
pub struct Hasher {
    params: Params,
    dummy_hash: String,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher").finish_non_exhaustive()
    }
}

impl Hasher {
    pub fn new(settings: &PasswordSettings) -> Result<Self, AppError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(AppError::internal)?;
        let mut hasher = Self {
            params,
            dummy_hash: String::new(),
        };
        hasher.dummy_hash = hasher.hash_blocking("not-a-real-password")?;
        Ok(hasher)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    fn hash_blocking(&self, password: &str) -> Result<String, AppError> {
        self.argon2()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(AppError::internal)
    }

    /// Hash a password (argon2id, random salt).
    pub async fn hash(&self, password: String) -> Result<String, AppError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.hash_blocking(&password))
            .await
            .map_err(AppError::internal)?
    }

    /// Verify `password` against `stored`, or against the dummy hash when there
    /// is no user, so both paths take the same time. Returns false for `None`.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, AppError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let known = stored.is_some();
            let hash = stored.unwrap_or_else(|| this.dummy_hash.clone());
            let parsed = PasswordHash::new(&hash).map_err(AppError::internal)?;
            let ok = this
                .argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            Ok(known && ok)
        })
        .await
        .map_err(AppError::internal)?
    }
}
