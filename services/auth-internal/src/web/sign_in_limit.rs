//! The limit on failed password sign-ins, shared by every password form: the
//! console's sign-in, OAuth's sign-in + consent (`/oauth/authorize`) and the
//! connected-apps sign-in (`/oauth/connections/sign-in`).
//!
//! Rules:
//! - Failures are counted per client address and per email (as typed,
//!   lower-cased, whether or not an account has it) over
//!   `console.login_failure_window_secs`, in one table
//!   (`console_login_failures`), so every replica and every form agree: a
//!   password storm against one form also closes the others.
//! - At `console.login_failures_per_ip` or `…_per_email` failures the form
//!   answers 429 `rate_limited` with `Retry-After` (the window) before any
//!   password is checked.
//! - A successful sign-in forgets the failures of its email, not of its address.
//! - Time comes from the injected clock.

use actix_web::HttpRequest;
use chrono::{DateTime, TimeDelta, Utc};
use diesel::QueryResult;
use diesel_async::AsyncPgConnection;

use crate::{db::operators, state::AppState};

/// The stable code of a refused sign-in (as OAuth's registration limit).
pub const RATE_LIMITED: &str = "rate_limited";

/// What a refusal tells the user.
pub fn refusal_message(retry_after_secs: u64) -> String {
    format!(
        "too many failed sign-ins; try again in {} minutes",
        retry_after_secs.div_ceil(60)
    )
}

/// One sign-in attempt: who tries, for which email, when.
#[derive(Debug, Clone)]
pub struct SignInAttempt {
    /// The peer address.
    pub ip: String,
    email_key: String,
    now: DateTime<Utc>,
    since: DateTime<Utc>,
    per_ip: i64,
    per_email: i64,
    window_secs: u64,
}

impl SignInAttempt {
    /// The attempt of this request for `email` (as typed).
    pub fn new(req: &HttpRequest, state: &AppState, email: &str) -> Self {
        let limits = &state.settings.console;
        let window = i64::try_from(limits.login_failure_window_secs).unwrap_or(i64::MAX / 4);
        let now = state.clock.now();
        Self {
            ip: req
                .peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_else(|| "unknown".into()),
            email_key: email.trim().to_lowercase(),
            now,
            since: now - TimeDelta::seconds(window),
            per_ip: i64::from(limits.login_failures_per_ip),
            per_email: i64::from(limits.login_failures_per_email),
            window_secs: limits.login_failure_window_secs,
        }
    }

    /// `Some(retry_after_secs)` when this address or email is over its limit.
    pub async fn refused(&self, conn: &mut AsyncPgConnection) -> QueryResult<Option<u64>> {
        let (by_ip, by_email) =
            operators::count_login_failures(conn, &self.ip, &self.email_key, self.since).await?;
        if by_ip >= self.per_ip || by_email >= self.per_email {
            tracing::warn!(client.ip = %self.ip, failures.ip = by_ip, failures.email = by_email, "sign-in refused: too many failures");
            return Ok(Some(self.window_secs));
        }
        Ok(None)
    }

    /// Count a wrong email or password.
    pub async fn failed(&self, conn: &mut AsyncPgConnection) -> QueryResult<()> {
        operators::record_login_failure(conn, &self.ip, &self.email_key, self.now, self.since).await
    }

    /// Forget the email's failures after a successful sign-in.
    pub async fn succeeded(&self, conn: &mut AsyncPgConnection) -> QueryResult<()> {
        operators::clear_login_failures(conn, &self.email_key).await
    }
}
