//! OAuth clients, grants, authorization codes and refresh tokens.
//!
//! Rules:
//! - Secrets arrive here already hashed (`crate::oauth::secret_digest`).
//! - Code and refresh-token exchanges lock their row (`FOR UPDATE`) inside the
//!   caller's transaction, so two concurrent exchanges of one secret cannot
//!   both succeed: the second sees `used_at`/`rotated_at` set.
//! - `now` is a parameter everywhere (the injected clock).

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::{oauth_clients, oauth_codes, oauth_grants, oauth_refresh_tokens};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_clients, check_for_backend(diesel::pg::Pg))]
pub struct Client {
    pub id: String,
    pub client_name: String,
    pub redirect_uris: Vec<String>,
    pub client_uri: Option<String>,
    pub registered_ip: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_grants, check_for_backend(diesel::pg::Pg))]
pub struct Grant {
    pub id: Uuid,
    pub user_id: Uuid,
    pub client_id: String,
    pub scope: String,
    pub resource: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_reason: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_codes, check_for_backend(diesel::pg::Pg))]
pub struct Code {
    pub code_hash: Vec<u8>,
    pub client_id: String,
    pub user_id: Uuid,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub scope: String,
    pub resource: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub grant_id: Option<Uuid>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_refresh_tokens, check_for_backend(diesel::pg::Pg))]
pub struct RefreshToken {
    pub token_hash: Vec<u8>,
    pub grant_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
}

pub async fn insert_client(conn: &mut AsyncPgConnection, client: &Client) -> QueryResult<()> {
    diesel::insert_into(oauth_clients::table)
        .values(client)
        .execute(conn)
        .await
        .map(|_| ())
}

/// The first key of the registration limit's advisory locks (the second is the
/// address's `hashtext`); the two-key space never meets the one-key locks.
const REGISTRATION_LOCK: i32 = 7_423_001;

/// Serialise registrations from `ip` until the end of the transaction, so the
/// count of [`count_registrations_since`] and the insert that follows it act
/// as one step (two replicas or two requests can never both take the last
/// place). Other addresses are not blocked (barring a hash collision, which
/// only costs a short wait).
pub async fn lock_registrations_of(conn: &mut AsyncPgConnection, ip: &str) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind::<diesel::sql_types::Integer, _>(REGISTRATION_LOCK)
        .bind::<diesel::sql_types::Text, _>(ip)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Registrations from `ip` at or after `since` (the rate limit's window).
pub async fn count_registrations_since(
    conn: &mut AsyncPgConnection,
    ip: &str,
    since: DateTime<Utc>,
) -> QueryResult<i64> {
    oauth_clients::table
        .filter(oauth_clients::registered_ip.eq(ip))
        .filter(oauth_clients::created_at.ge(since))
        .count()
        .get_result(conn)
        .await
}

pub async fn find_client(conn: &mut AsyncPgConnection, id: &str) -> QueryResult<Option<Client>> {
    oauth_clients::table
        .find(id)
        .select(Client::as_select())
        .first(conn)
        .await
        .optional()
}

/// Insert a code, sweeping codes expired for over a day (a used or expired
/// code is kept that long so a late replay is still recognised).
pub async fn insert_code(conn: &mut AsyncPgConnection, code: &Code) -> QueryResult<()> {
    diesel::delete(
        oauth_codes::table.filter(oauth_codes::expires_at.lt(code.created_at - Duration::days(1))),
    )
    .execute(conn)
    .await?;
    diesel::insert_into(oauth_codes::table)
        .values(code)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Lock and read a code (inside a transaction).
pub async fn lock_code(conn: &mut AsyncPgConnection, hash: &[u8]) -> QueryResult<Option<Code>> {
    oauth_codes::table
        .find(hash)
        .select(Code::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Mark a code used; `grant_id` is what its exchange created (if anything).
pub async fn mark_code_used(
    conn: &mut AsyncPgConnection,
    hash: &[u8],
    now: DateTime<Utc>,
    grant_id: Option<Uuid>,
) -> QueryResult<()> {
    diesel::update(oauth_codes::table.find(hash))
        .set((
            oauth_codes::used_at.eq(now),
            oauth_codes::grant_id.eq(grant_id),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

pub async fn insert_grant(conn: &mut AsyncPgConnection, grant: &Grant) -> QueryResult<()> {
    diesel::insert_into(oauth_grants::table)
        .values(grant)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Revoke a grant (idempotent; the first reason stays). True if it was live.
pub async fn revoke_grant(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    now: DateTime<Utc>,
    reason: &str,
) -> QueryResult<bool> {
    let n = diesel::update(
        oauth_grants::table
            .find(id)
            .filter(oauth_grants::revoked_at.is_null()),
    )
    .set((
        oauth_grants::revoked_at.eq(now),
        oauth_grants::revoked_reason.eq(reason),
    ))
    .execute(conn)
    .await?;
    // The refresh chain is dead with its grant; drop it so nothing is kept
    // that could ever be exchanged.
    if n > 0 {
        diesel::delete(oauth_refresh_tokens::table.filter(oauth_refresh_tokens::grant_id.eq(id)))
            .execute(conn)
            .await?;
    }
    Ok(n > 0)
}

/// Revoke one of `user_id`'s grants; false if it is not theirs or not live.
pub async fn revoke_user_grant(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    let owned: Option<Uuid> = oauth_grants::table
        .find(id)
        .filter(oauth_grants::user_id.eq(user_id))
        .filter(oauth_grants::revoked_at.is_null())
        .select(oauth_grants::id)
        .first(conn)
        .await
        .optional()?;
    match owned {
        Some(id) => revoke_grant(conn, id, now, "disconnected").await,
        None => Ok(false),
    }
}

/// A live (not revoked) grant by id: the per-request check of `/mcp`.
pub async fn live_grant(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Grant>> {
    oauth_grants::table
        .find(id)
        .filter(oauth_grants::revoked_at.is_null())
        .select(Grant::as_select())
        .first(conn)
        .await
        .optional()
}

/// Bump `last_used_at`, at most once a minute per grant (no write per request).
pub async fn touch_grant(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(
        oauth_grants::table.find(id).filter(
            oauth_grants::last_used_at
                .is_null()
                .or(oauth_grants::last_used_at.lt(now - Duration::seconds(60))),
        ),
    )
    .set(oauth_grants::last_used_at.eq(now))
    .execute(conn)
    .await
    .map(|_| ())
}

/// `user_id`'s live grants with their client's name, newest first.
pub async fn list_user_grants(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
) -> QueryResult<Vec<(Grant, String)>> {
    oauth_grants::table
        .inner_join(oauth_clients::table)
        .filter(oauth_grants::user_id.eq(user_id))
        .filter(oauth_grants::revoked_at.is_null())
        .order(oauth_grants::created_at.desc())
        .select((Grant::as_select(), oauth_clients::client_name))
        .load(conn)
        .await
}

pub async fn insert_refresh(conn: &mut AsyncPgConnection, token: &RefreshToken) -> QueryResult<()> {
    diesel::insert_into(oauth_refresh_tokens::table)
        .values(token)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Lock and read a refresh token with its grant (inside a transaction).
pub async fn lock_refresh(
    conn: &mut AsyncPgConnection,
    hash: &[u8],
) -> QueryResult<Option<(RefreshToken, Grant)>> {
    oauth_refresh_tokens::table
        .inner_join(oauth_grants::table)
        .filter(oauth_refresh_tokens::token_hash.eq(hash))
        .select((RefreshToken::as_select(), Grant::as_select()))
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Mark a refresh token rotated. Rotated tokens stay (for reuse detection)
/// until they expire; expired ones of the same grant are swept here.
pub async fn mark_refresh_rotated(
    conn: &mut AsyncPgConnection,
    hash: &[u8],
    grant_id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(oauth_refresh_tokens::table.find(hash))
        .set(oauth_refresh_tokens::rotated_at.eq(now))
        .execute(conn)
        .await?;
    diesel::delete(
        oauth_refresh_tokens::table
            .filter(oauth_refresh_tokens::grant_id.eq(grant_id))
            .filter(oauth_refresh_tokens::expires_at.lt(now)),
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// The grant behind a refresh token, whatever its state (RFC 7009 revocation).
pub async fn grant_of_refresh(
    conn: &mut AsyncPgConnection,
    hash: &[u8],
) -> QueryResult<Option<Grant>> {
    oauth_refresh_tokens::table
        .inner_join(oauth_grants::table)
        .filter(oauth_refresh_tokens::token_hash.eq(hash))
        .select(Grant::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn find_grant(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Grant>> {
    oauth_grants::table
        .find(id)
        .select(Grant::as_select())
        .first(conn)
        .await
        .optional()
}
