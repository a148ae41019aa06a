//! Personal access tokens.
//!
//! Rules:
//! - Only the SHA-256 digest of a token is stored; lookups are by the unique
//!   digest index.
//! - Every query that names a token id also names its owner, so another user's
//!   id behaves exactly like an unknown one.
//! - `now` is a parameter (the injected clock).

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::personal_access_tokens as pat;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = pat, check_for_backend(diesel::pg::Pg))]
pub struct PersonalAccessToken {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub scope: String,
    pub token_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

pub async fn insert(conn: &mut AsyncPgConnection, token: &PersonalAccessToken) -> QueryResult<()> {
    diesel::insert_into(pat::table)
        .values(token)
        .execute(conn)
        .await
        .map(|_| ())
}

/// `user_id`'s tokens, newest first (expired ones included, so the user sees them).
pub async fn list_for_user(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
) -> QueryResult<Vec<PersonalAccessToken>> {
    pat::table
        .filter(pat::user_id.eq(user_id))
        .order((pat::created_at.desc(), pat::id))
        .select(PersonalAccessToken::as_select())
        .load(conn)
        .await
}

/// Delete one of `user_id`'s tokens; false if there is none with this id.
pub async fn delete_for_user(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
) -> QueryResult<bool> {
    let n = diesel::delete(pat::table.find(id).filter(pat::user_id.eq(user_id)))
        .execute(conn)
        .await?;
    Ok(n > 0)
}

/// The unexpired token with this digest.
pub async fn find_live(
    conn: &mut AsyncPgConnection,
    hash: &[u8],
    now: DateTime<Utc>,
) -> QueryResult<Option<PersonalAccessToken>> {
    pat::table
        .filter(pat::token_hash.eq(hash))
        .filter(pat::expires_at.gt(now))
        .select(PersonalAccessToken::as_select())
        .first(conn)
        .await
        .optional()
}

/// Bump `last_used_at`, at most once a minute per token (no write per request).
pub async fn touch(conn: &mut AsyncPgConnection, id: Uuid, now: DateTime<Utc>) -> QueryResult<()> {
    diesel::update(
        pat::table.find(id).filter(
            pat::last_used_at
                .is_null()
                .or(pat::last_used_at.lt(now - Duration::seconds(60))),
        ),
    )
    .set(pat::last_used_at.eq(now))
    .execute(conn)
    .await
    .map(|_| ())
}
