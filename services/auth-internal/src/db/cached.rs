//! Prepared-statement caching for hand-written SQL.
//!
//! diesel never caches a `sql_query` (it marks it unsafe to cache), so each
//! one costs a Parse/Describe round trip and a fresh plan before it runs.
//! [`Cached`] wraps a query whose SQL text is a constant and lets the
//! connection's statement cache keep it as a named prepared statement: later
//! runs on the same connection are one round trip with no parsing.
//!
//! Rules:
//! - Wrap only queries whose SQL text is fixed (a `const` or a `LazyLock`
//!   string): the cache is keyed by the text and bind types, so a text built
//!   from data would grow it without bound.

use diesel::{
    pg::Pg,
    query_builder::{AstPass, Query, QueryFragment, QueryId},
    result::QueryResult,
};

/// A query the statement cache may keep (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Cached<Q>(pub Q);

/// `.cached()` on any query.
pub trait CachedExt: Sized {
    fn cached(self) -> Cached<Self> {
        Cached(self)
    }
}

impl<Q: QueryFragment<Pg>> CachedExt for Q {}

impl<Q: Query> Query for Cached<Q> {
    type SqlType = Q::SqlType;
}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Cached<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q> QueryId for Cached<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

#[cfg(test)]
mod tests {

    use diesel::sql_types::Integer;
    use diesel::{QueryableByName, connection::CacheSize};
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

    use super::*;

    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = Integer)]
        n: i32,
    }

    async fn prepared_count(conn: &mut AsyncPgConnection) -> i64 {
        #[derive(QueryableByName)]
        struct C {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            c: i64,
        }
        diesel::sql_query("SELECT count(*) AS c FROM pg_prepared_statements")
            .get_result::<C>(conn)
            .await
            .unwrap()
            .c
    }

    #[tokio::test]
    async fn a_cached_sql_query_is_prepared_once_per_connection() {
        let mut conn = AsyncPgConnection::establish(&test_support::admin_url())
            .await
            .unwrap();
        conn.set_prepared_statement_cache_size(CacheSize::Unbounded);
        let before = prepared_count(&mut conn).await;
        for i in 0..3 {
            let row: N = diesel::sql_query("SELECT $1 + 1 AS n")
                .bind::<Integer, _>(i)
                .cached()
                .get_result(&mut conn)
                .await
                .unwrap();
            assert_eq!(row.n, i + 1);
        }
        assert_eq!(prepared_count(&mut conn).await, before + 1);
        // The plain `sql_query` leaves no named statement behind.
        let _: N = diesel::sql_query("SELECT $1 + 2 AS n")
            .bind::<Integer, _>(1)
            .get_result(&mut conn)
            .await
            .unwrap();
        assert_eq!(prepared_count(&mut conn).await, before + 1);
    }
}
