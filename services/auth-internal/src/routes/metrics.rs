//! `GET /metrics`: the registry's text exposition, with the database gauges
//! (pool size/available/waiting, dead tuples of the lease tables) refreshed
//! at scrape time.

use std::time::Duration;

use actix_web::{HttpResponse, get, web};
use diesel::{
    QueryableByName,
    sql_types::{BigInt, Text},
};
use diesel_async::RunQueryDsl;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{family::Family, gauge::Gauge},
};

use crate::state::AppState;

/// `/metrics`, at the top level.
pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig<'_>) {
    cfg.service(serve_metrics);
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabel {
    pub table: String,
}

/// Database gauges, registered once at start-up.
#[derive(Clone)]
pub struct DbGauges {
    pool_size: Gauge,
    pool_available: Gauge,
    pool_waiting: Gauge,
    dead_tuples: Family<TableLabel, Gauge>,
}

impl DbGauges {
    pub fn register(metrics: &service_kit::metrics::Metrics) -> Self {
        let g = Self {
            pool_size: Gauge::default(),
            pool_available: Gauge::default(),
            pool_waiting: Gauge::default(),
            dead_tuples: Family::default(),
        };
        metrics.register(
            "db_pool_size",
            "Connections in the pool",
            g.pool_size.clone(),
        );
        metrics.register(
            "db_pool_available",
            "Idle connections in the pool",
            g.pool_available.clone(),
        );
        metrics.register(
            "db_pool_waiting",
            "Requests waiting for a connection",
            g.pool_waiting.clone(),
        );
        metrics.register(
            "db_dead_tuples",
            "Dead tuples of the lease and log tables (autovacuum pressure)",
            g.dead_tuples.clone(),
        );
        g
    }
}

#[derive(QueryableByName)]
struct Dead {
    #[diesel(sql_type = Text)]
    relname: String,
    #[diesel(sql_type = BigInt)]
    n_dead_tup: i64,
}

/// Prometheus/OpenMetrics exposition of the service's metrics.
#[utoipa::path(
    operation_id = "metrics",
    tag = "ops",
    responses(
        (
            status = 200,
            description = "OpenMetrics text: HTTP requests and latency by route and status, MCP tool calls, DB pool and dead-tuple gauges",
            body = String,
            content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"
        ),
    ),
)]
#[get("/metrics")]
pub async fn serve_metrics(
    state: web::Data<AppState>,
    gauges: web::Data<DbGauges>,
) -> HttpResponse {
    let status = state.pool.status();
    gauges
        .pool_size
        .set(i64::try_from(status.size).unwrap_or(i64::MAX));
    gauges
        .pool_available
        .set(i64::try_from(status.available).unwrap_or(i64::MAX));
    gauges
        .pool_waiting
        .set(i64::try_from(status.waiting).unwrap_or(i64::MAX));
    let query = async {
        let mut conn = state.pool.get().await.ok()?;
        diesel::sql_query(
            "SELECT relname::text AS relname, n_dead_tup FROM pg_stat_user_tables \
             WHERE relname IN ('personas', 'mission_schedule', 'records', 'sync_changes')",
        )
        .load::<Dead>(&mut conn)
        .await
        .ok()
    };
    if let Ok(Some(rows)) = tokio::time::timeout(Duration::from_secs(1), query).await {
        for r in rows {
            gauges
                .dead_tuples
                .get_or_create(&TableLabel { table: r.relname })
                .set(r.n_dead_tup);
        }
    }
    service_kit::metrics::metrics_handler(web::Data::new(state.metrics.clone())).await
}
