//! Operators (users of kind `operator`) and their console sessions.
//!
//! Rules:
//! - An operator is a row of `users` with `kind = 'operator'`; creating one for
//!   an email that belongs to a human or persona account is refused, never a
//!   silent promotion.
//! - A session is stored by the SHA-256 of its id only; the id itself lives in
//!   the browser's cookie and nowhere else. A lookup never returns an expired
//!   session, whatever the sweeping has done.
//! - `now` is always a parameter, so tests move time freely.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{
    schema::{console_sessions, users},
    users as db_users,
};

/// The kind of a console operator in `users.kind`.
pub const OPERATOR_KIND: &str = "operator";

/// What [`upsert_operator`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorUpsert {
    Created(Uuid),
    /// The operator existed; its password was replaced.
    PasswordChanged(Uuid),
    /// The email belongs to an account of another kind.
    OtherKind,
}

/// Create the operator `email`, or set a new password when it exists.
pub async fn upsert_operator(
    conn: &mut AsyncPgConnection,
    email: &str,
    password_hash: &str,
) -> QueryResult<OperatorUpsert> {
    match db_users::find_by_email(conn, email).await? {
        Some(u) if u.kind != OPERATOR_KIND => Ok(OperatorUpsert::OtherKind),
        Some(u) => {
            diesel::update(users::table.find(u.id))
                .set(users::password_hash.eq(password_hash))
                .execute(conn)
                .await?;
            // A new password ends every existing session of that operator.
            diesel::delete(console_sessions::table.filter(console_sessions::user_id.eq(u.id)))
                .execute(conn)
                .await?;
            Ok(OperatorUpsert::PasswordChanged(u.id))
        }
        None => {
            let u = db_users::insert(
                conn,
                &db_users::NewUser {
                    email,
                    password_hash,
                    kind: OPERATOR_KIND,
                    display_name: None,
                },
            )
            .await?;
            Ok(OperatorUpsert::Created(u.id))
        }
    }
}

/// A live session joined with its user.
#[derive(Debug, Clone, Queryable)]
pub struct SessionRow {
    pub user_id: Uuid,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
    pub email: String,
    pub kind: String,
}

/// Store a new session; also drops this user's expired sessions, so the
/// table stays bounded by live sessions without a sweeper.
pub async fn create_session(
    conn: &mut AsyncPgConnection,
    id_hash: &[u8],
    user_id: Uuid,
    csrf_token: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::delete(
        console_sessions::table
            .filter(console_sessions::user_id.eq(user_id))
            .filter(console_sessions::expires_at.le(now)),
    )
    .execute(conn)
    .await?;
    diesel::insert_into(console_sessions::table)
        .values((
            console_sessions::id_hash.eq(id_hash),
            console_sessions::user_id.eq(user_id),
            console_sessions::csrf_token.eq(csrf_token),
            console_sessions::created_at.eq(now),
            console_sessions::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The unexpired session with this id hash, with its user.
pub async fn find_session(
    conn: &mut AsyncPgConnection,
    id_hash: &[u8],
    now: DateTime<Utc>,
) -> QueryResult<Option<SessionRow>> {
    console_sessions::table
        .inner_join(users::table)
        .filter(console_sessions::id_hash.eq(id_hash))
        .filter(console_sessions::expires_at.gt(now))
        .select((
            console_sessions::user_id,
            console_sessions::csrf_token,
            console_sessions::expires_at,
            users::email,
            users::kind,
        ))
        .first(conn)
        .await
        .optional()
}

/// End a session (logout, or rotation on login). Returns whether it existed.
pub async fn delete_session(conn: &mut AsyncPgConnection, id_hash: &[u8]) -> QueryResult<bool> {
    let n = diesel::delete(console_sessions::table.find(id_hash))
        .execute(conn)
        .await?;
    Ok(n > 0)
}

/// Drop up to `batch` expired sessions; returns how many went.
pub async fn sweep_expired_sessions(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    batch: i64,
) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM console_sessions WHERE id_hash IN \
         (SELECT id_hash FROM console_sessions WHERE expires_at <= $1 LIMIT $2)",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(now)
    .bind::<diesel::sql_types::BigInt, _>(batch)
    .execute(conn)
    .await
}

#[derive(QueryableByName)]
struct FailureCounts {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    by_ip: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    by_email: i64,
}

/// Failed console sign-ins since `since`: `(from this address, for this email)`.
/// Served by `console_login_failures_ip_idx` and `…_email_idx` (a `BitmapOr`).
pub async fn count_login_failures(
    conn: &mut AsyncPgConnection,
    ip: &str,
    email: &str,
    since: DateTime<Utc>,
) -> QueryResult<(i64, i64)> {
    let c: FailureCounts = diesel::sql_query(
        "SELECT count(*) FILTER (WHERE ip = $1) AS by_ip, \
                count(*) FILTER (WHERE email = $2) AS by_email \
         FROM console_login_failures WHERE (ip = $1 OR email = $2) AND at >= $3",
    )
    .bind::<diesel::sql_types::Text, _>(ip)
    .bind::<diesel::sql_types::Text, _>(email)
    .bind::<diesel::sql_types::Timestamptz, _>(since)
    .get_result(conn)
    .await?;
    Ok((c.by_ip, c.by_email))
}

/// Record a failed sign-in; failures older than `forget_before` go in the same
/// statement, so the table holds one window's failures and no sweeper is needed.
pub async fn record_login_failure(
    conn: &mut AsyncPgConnection,
    ip: &str,
    email: &str,
    now: DateTime<Utc>,
    forget_before: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::sql_query(
        "WITH gone AS (DELETE FROM console_login_failures WHERE at < $4) \
         INSERT INTO console_login_failures (ip, email, at) VALUES ($1, $2, $3)",
    )
    .bind::<diesel::sql_types::Text, _>(ip)
    .bind::<diesel::sql_types::Text, _>(email)
    .bind::<diesel::sql_types::Timestamptz, _>(now)
    .bind::<diesel::sql_types::Timestamptz, _>(forget_before)
    .execute(conn)
    .await?;
    Ok(())
}

/// A successful sign-in forgets the failures of its email (not of its address).
pub async fn clear_login_failures(conn: &mut AsyncPgConnection, email: &str) -> QueryResult<()> {
    diesel::sql_query("DELETE FROM console_login_failures WHERE email = $1")
        .bind::<diesel::sql_types::Text, _>(email)
        .execute(conn)
        .await?;
    Ok(())
}
