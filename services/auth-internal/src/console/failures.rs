//! `/console/failures` and `/console/tokens`: the failures and tokens reports.
//!
//! Rules: each page is its report function (`db::reports::failures`,
//! `db::reports::tokens`) with the period (and bucket) from the query string;
//! failures link to the newest example run and to the persona's runs.

use actix_web::{HttpResponse, http::StatusCode, web};
use maud::html;
use types::reports::Bucket;

use super::{auth::Operator, error::ConsoleError, fmt, modules::truncate, period};
use crate::{
    db::reports::{self as db, TokensFilter},
    state::AppState,
    web::{html_response, page},
};

#[derive(Debug, serde::Deserialize)]
pub struct FailuresQuery {
    from: Option<String>,
    to: Option<String>,
}

fn n(v: u64) -> String {
    fmt::count(i64::try_from(v).unwrap_or(i64::MAX))
}

/// `GET /console/failures?from&to`.
pub async fn failures_page(
    state: web::Data<AppState>,
    op: Operator,
    query: web::Query<FailuresQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let now = state.clock.now();
    let p = period::parse(query.from.as_deref(), query.to.as_deref(), now)?;
    let mut conn = state.pool.get().await?;
    let report = db::failures(&mut conn, p).await?;
    let body = html! {
        h1 { "Failures" }
        p.muted { (n(report.total)) " failed runs from " (fmt::timestamp(p.from)) " to " (fmt::timestamp(p.to))
            ", by error class and persona (simulator failures are the simulated user's, not the product's)." }
        (period::picker("/console/failures", &p, now, html! {}))
        @if report.groups.is_empty() {
            p.empty.panel { "No failed runs in this period." }
        } @else {
            table id="failures" {
                thead { tr {
                    th { "Error class" } th { "Persona" } th.num { "Runs" }
                    th { "First seen" } th { "Last seen" } th { "Newest example" }
                } }
                tbody {
                    @for g in &report.groups {
                        tr {
                            td { span.badge.bad { (g.error_class) } }
                            td { (g.slug) }
                            td.num { (n(g.count)) }
                            td { (fmt::timestamp(g.first_seen)) }
                            td { (fmt::timestamp(g.last_seen)) }
                            td {
                                a href=(format!("/console/runs/{}", super::error::encode_query_value(&g.example.run_id))) {
                                    code { (g.example.run_id) }
                                }
                                @if let Some(e) = &g.example.error { br; span title=(e) { (truncate(e, 160)) } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        page("Failures", Some(&op.nav("failures")), body),
    ))
}

#[derive(Debug, serde::Deserialize)]
pub struct TokensQuery {
    from: Option<String>,
    to: Option<String>,
    bucket: Option<String>,
}

/// `GET /console/tokens?bucket&from&to`.
pub async fn tokens_page(
    state: web::Data<AppState>,
    op: Operator,
    query: web::Query<TokensQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let now = state.clock.now();
    let filter = crate::routes::reports::tokens_filter(
        &crate::routes::reports::TokensQuery {
            bucket: query.bucket.clone().filter(|b| !b.is_empty()),
            from: query.from.clone().filter(|b| !b.is_empty()),
            to: query.to.clone().filter(|b| !b.is_empty()),
        },
        now,
    )?;
    let TokensFilter { period: p, bucket } = filter;
    let mut conn = state.pool.get().await?;
    let report = db::tokens(&mut conn, filter).await?;
    let bucket_select = html! {
        label { "Bucket"
            select name="bucket" {
                @for b in [Bucket::Day, Bucket::Week] {
                    option value=(b.as_str()) selected[b == bucket] { (b.as_str()) }
                }
            }
        }
    };
    let t = &report.total;
    let body = html! {
        h1 { "Tokens" }
        (period::picker("/console/tokens", &p, now, bucket_select))
        section.panel id="token-total" {
            strong { "Total: " }
            (n(t.input)) " input · " (n(t.output)) " output · "
            (n(t.cache_read)) " cache read · " (n(t.cache_write)) " cache write"
        }
        h2 { "By " (bucket.as_str()) ", provider and model" }
        @if report.rows.is_empty() {
            p.empty.panel { "No runs in this period." }
        } @else {
            table id="tokens" {
                thead { tr {
                    th { "Start" } th { "Provider" } th { "Model" } th.num { "Runs" }
                    th.num { "Input" } th.num { "Output" } th.num { "Cache read" } th.num { "Cache write" }
                } }
                tbody {
                    @for r in &report.rows {
                        tr {
                            td { (r.start.format("%Y-%m-%d")) }
                            td { (r.provider) }
                            td { code { (r.model) } }
                            td.num { (n(r.runs)) }
                            td.num { (n(r.tokens.input)) }
                            td.num { (n(r.tokens.output)) }
                            td.num { (n(r.tokens.cache_read)) }
                            td.num { (n(r.tokens.cache_write)) }
                        }
                    }
                }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        page("Tokens", Some(&op.nav("tokens")), body),
    ))
}
