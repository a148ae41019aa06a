//! `/console` (the modules scoreboard) and `/console/modules/{module}`.
//!
//! Rules:
//! - The scoreboard is `db::reports::modules` as the JSON report returns it
//!   (worst first); the previous period's intervals come from the same
//!   function over the previous period, and a delta is marked significant only
//!   when the two 95 % intervals do not overlap.
//! - The 8-week sparkline of a module is `db::reports::module_trend` by week
//!   over the 8 weeks ending at the period's end.
//! - The module page shows the trend and per-persona breakdown of
//!   `module_trend`, the newest notes (each linked to its run) and per-tool
//!   error rates.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, http::StatusCode, web};
use chrono::{DateTime, Datelike, NaiveTime, TimeDelta, Utc};
use maud::{Markup, html};
use types::reports::{Bucket, ModuleScore, TrendBucket};

use super::{auth::Operator, error::ConsoleError, fmt, period};
use crate::{
    db::{
        console as console_db,
        reports::{self as db, ModulesFilter, Period, TrendFilter},
    },
    state::AppState,
    web::{
        charts::{self, TrendPoint},
        html_response, page,
    },
};

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModulesQuery {
    from: Option<String>,
    to: Option<String>,
    app_version: Option<String>,
}

/// Whether two intervals are disjoint.
pub fn disjoint(a: Option<[f64; 2]>, b: Option<[f64; 2]>) -> bool {
    match (a, b) {
        (Some([a_lo, a_hi]), Some([b_lo, b_hi])) => a_hi < b_lo || b_hi < a_lo,
        _ => false,
    }
}

fn mean_cell(mean: Option<f64>, ci: Option<[f64; 2]>) -> Markup {
    html! {
        @match mean {
            Some(m) => {
                strong { (format!("{m:.2}")) }
                @if let Some([lo, hi]) = ci {
                    " " span.interval { (format!("[{lo:.2}, {hi:.2}]")) }
                }
            },
            None => span.muted { "—" },
        }
    }
}

fn delta_cell(s: &ModuleScore, previous_ci: Option<[f64; 2]>) -> Markup {
    let significant = disjoint(s.ci95, previous_ci);
    html! {
        @match s.delta {
            Some(d) => {
                @let class = if d > 0.0 { "delta-up" } else if d < 0.0 { "delta-down" } else { "" };
                span class=(format!("{class}{}", if significant { " significant" } else { "" }))
                    title=(format!("previous period: n = {}, mean {}", s.previous.n,
                        s.previous.mean.map_or("—".to_owned(), |m| format!("{m:.2}")))) {
                    (format!("{d:+.2}"))
                    @if significant { " " span.badge.warn title="the 95 % intervals do not overlap" { "significant" } }
                }
            },
            None => span.muted { "—" },
        }
    }
}

async fn sparkline_values(
    conn: &mut diesel_async::AsyncPgConnection,
    module: &str,
    end: DateTime<Utc>,
) -> Result<Vec<Option<f64>>, ConsoleError> {
    let trend = db::module_trend(
        conn,
        &TrendFilter {
            module: module.to_owned(),
            period: Period {
                from: end - TimeDelta::weeks(8),
                to: end,
            },
            bucket: Bucket::Week,
        },
    )
    .await?;
    Ok(
        fill_buckets(&trend.buckets, end - TimeDelta::weeks(8), end, Bucket::Week)
            .into_iter()
            .map(|(_, b)| b.and_then(|b| b.mean))
            .collect(),
    )
}

/// The start of the UTC day or (Monday-based) week holding `t`.
pub fn bucket_start(t: DateTime<Utc>, bucket: Bucket) -> DateTime<Utc> {
    let day = t.date_naive();
    let day = match bucket {
        Bucket::Day => day,
        Bucket::Week => day - TimeDelta::days(i64::from(day.weekday().num_days_from_monday())),
    };
    day.and_time(NaiveTime::MIN).and_utc()
}

/// Every bucket of `[from, to)` in order, with the report's bucket where it has one
/// (the report lists only buckets with data; a chart needs the gaps).
pub fn fill_buckets(
    buckets: &[TrendBucket],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket: Bucket,
) -> Vec<(DateTime<Utc>, Option<&TrendBucket>)> {
    let step = match bucket {
        Bucket::Day => TimeDelta::days(1),
        Bucket::Week => TimeDelta::weeks(1),
    };
    let mut out = Vec::new();
    let mut at = bucket_start(from, bucket);
    while at < to && out.len() < 500 {
        out.push((at, buckets.iter().find(|b| b.start == at)));
        at += step;
    }
    out
}

/// `GET /console?from&to&appVersion`: the scoreboard.
pub async fn scoreboard(
    state: web::Data<AppState>,
    op: Operator,
    query: web::Query<ModulesQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let now = state.clock.now();
    let p = period::parse(query.from.as_deref(), query.to.as_deref(), now)?;
    let app_version = query.app_version.clone().filter(|v| !v.is_empty());
    let mut conn = state.pool.get().await?;
    let report = db::modules(
        &mut conn,
        &ModulesFilter {
            period: p,
            app_version: app_version.clone(),
        },
    )
    .await?;
    let previous = db::modules(
        &mut conn,
        &ModulesFilter {
            period: p.previous(),
            app_version: app_version.clone(),
        },
    )
    .await?;
    let previous_ci: BTreeMap<&str, Option<[f64; 2]>> = previous
        .modules
        .iter()
        .map(|m| (m.module.as_str(), m.ci95))
        .collect();
    let mut sparks = BTreeMap::new();
    for m in &report.modules {
        sparks.insert(
            m.module.clone(),
            sparkline_values(&mut conn, &m.module, p.to).await?,
        );
    }
    let versions = console_db::app_versions(&mut conn, p.previous().from, p.to).await?;
    let (from, to) = period::link_params(&p);
    let version_select = html! {
        label { "App version"
            select name="appVersion" {
                option value="" selected[app_version.is_none()] { "all versions" }
                @for v in &versions {
                    option value=(v) selected[app_version.as_deref() == Some(v.as_str())] { (v) }
                }
                @if let Some(v) = &app_version {
                    @if !versions.contains(v) { option value=(v) selected { (v) } }
                }
            }
        }
    };
    let body = html! {
        h1 { "Modules" }
        p.muted {
            "Ratings (1–5) from " (fmt::timestamp(p.from)) " to " (fmt::timestamp(p.to))
            @if let Some(v) = &app_version { ", app version " code { (v) } }
            ". Worst first; the interval is the 95 % confidence interval of the mean."
        }
        (period::picker("/console", &p, now, version_select))
        @if report.modules.is_empty() {
            p.empty.panel { "No ratings or tool calls in this period." }
        } @else {
            table id="scoreboard" {
                thead { tr {
                    th { "Module" } th { "Mean [95 % CI]" } th.num { "n" }
                    th { "Δ vs previous" } th { "8 weeks" } th.num { "Error share" }
                } }
                tbody {
                    @for m in &report.modules {
                        tr data-module=(m.module) {
                            td { a href=(format!("/console/modules/{}{}", m.module,
                                    period::query(&[("from", Some(&from)), ("to", Some(&to))]))) { strong { (m.module) } } }
                            td { (mean_cell(m.mean, m.ci95)) }
                            td.num { (fmt::count(i64::try_from(m.n).unwrap_or(i64::MAX))) }
                            td { (delta_cell(m, previous_ci.get(m.module.as_str()).copied().flatten())) }
                            td { (charts::sparkline(sparks.get(&m.module).map_or(&[][..], Vec::as_slice),
                                    &format!("{}: weekly mean, 8 weeks", m.module))) }
                            td.num {
                                @match m.error_share {
                                    Some(s) => { (fmt::percent(s)) br; span.muted { "of " (m.tool_calls) " calls" } },
                                    None => span.muted { "—" },
                                }
                            }
                        }
                    }
                }
            }
        }
        @if report.parse_failures > 0 {
            p.flash role="status" {
                (report.parse_failures) " rating replies could not be parsed in this period (not averaged). "
                a href=(format!("/console/modules/__parse{}", period::query(&[("from", Some(&from)), ("to", Some(&to))]))) { "See them" }
            }
        }
        @let low: Vec<_> = report.modules.iter().flat_map(|m| m.low_notes.iter().map(move |n| (m, n))).collect();
        @if !low.is_empty() {
            h2 { "Recent low ratings" }
            table {
                thead { tr { th { "Module" } th.num { "Rating" } th { "Note" } th { "When" } } }
                tbody {
                    @for (m, n) in low {
                        tr {
                            td { (m.module) }
                            td.num { span.badge.bad { (n.rating) } }
                            td { a href=(format!("/console/runs/{}", super::error::encode_query_value(&n.run_id))) {
                                (n.notes.as_deref().unwrap_or("(no note)")) } }
                            td { (fmt::relative(n.at, now)) }
                        }
                    }
                }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        page("Modules", Some(&op.nav("modules")), body),
    ))
}

#[derive(Debug, serde::Deserialize)]
pub struct ModuleQuery {
    from: Option<String>,
    to: Option<String>,
    bucket: Option<String>,
}

/// `GET /console/modules/{module}?from&to&bucket`.
pub async fn module_page(
    state: web::Data<AppState>,
    op: Operator,
    path: web::Path<String>,
    query: web::Query<ModuleQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let module = path.into_inner();
    let now = state.clock.now();
    let filter = crate::routes::reports::trend_filter(
        &module,
        &crate::routes::reports::TrendQuery {
            bucket: query.bucket.clone().filter(|b| !b.is_empty()),
            from: query.from.clone().filter(|b| !b.is_empty()),
            to: query.to.clone().filter(|b| !b.is_empty()),
        },
        now,
    )?;
    let p = filter.period;
    let bucket = filter.bucket;
    let mut conn = state.pool.get().await?;
    let trend = db::module_trend(&mut conn, &filter).await?;
    let notes = console_db::module_notes(&mut conn, &module, p.from, p.to, 50).await?;
    let tools = console_db::module_tool_errors(&mut conn, &module, p.from, p.to).await?;
    let label_format = match bucket {
        Bucket::Day => "%m-%d",
        Bucket::Week => "wk %V",
    };
    let points: Vec<TrendPoint> = fill_buckets(&trend.buckets, p.from, p.to, bucket)
        .into_iter()
        .map(|(start, b)| TrendPoint {
            label: start.format(label_format).to_string(),
            n: b.map_or(0, |b| i64::try_from(b.n).unwrap_or(i64::MAX)),
            mean: b.and_then(|b| b.mean),
            ci95: b.and_then(|b| b.ci95).map(|[lo, hi]| (lo, hi)),
        })
        .collect();
    let bucket_select = html! {
        label { "Bucket"
            select name="bucket" {
                @for b in [Bucket::Day, Bucket::Week] {
                    option value=(b.as_str()) selected[b == bucket] { (b.as_str()) }
                }
            }
        }
    };
    let action = format!("/console/modules/{module}");
    let body = html! {
        p.muted { a href="/console" { "Modules" } " / " (module) }
        h1 { "Module " code { (module) } }
        (period::picker(&action, &p, now, bucket_select))
        h2 { "Trend (mean per " (bucket.as_str()) ", 95 % interval shaded)" }
        (charts::trend(&points, &format!("{module}: mean rating per {}", bucket.as_str())))
        div.grid2 {
            section {
                h2 { "Per persona" }
                @if trend.personas.is_empty() {
                    p.empty.panel { "No ratings in this period." }
                } @else {
                    table id="per-persona" {
                        thead { tr { th { "Persona" } th { "Mean [95 % CI]" } th.num { "n" } } }
                        tbody {
                            @for b in &trend.personas {
                                tr {
                                    td { (b.slug) }
                                    td { (mean_cell(b.mean, b.ci95)) }
                                    td.num { (b.n) }
                                }
                            }
                        }
                    }
                }
            }
            section {
                h2 { "Tool error rates" }
                @if tools.is_empty() {
                    p.empty.panel { "No tool calls in this period." }
                } @else {
                    table id="tool-errors" {
                        thead { tr { th { "Tool" } th.num { "Calls" } th.num { "Errors" } th.num { "Share" } } }
                        tbody {
                            @for t in &tools {
                                tr {
                                    td { code { (t.tool_name) }
                                        @if let Some(e) = &t.last_error { br; span.muted title=(e) { (truncate(e, 80)) } } }
                                    td.num { (t.calls) }
                                    td.num { (t.errors) }
                                    td.num {
                                        @let share = share(t.errors, t.calls);
                                        @if t.errors > 0 { span.badge.bad { (fmt::percent(share)) } } @else { (fmt::percent(share)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Notes, newest first" }
        @if notes.is_empty() {
            p.empty.panel { "No notes in this period." }
        } @else {
            table id="notes" {
                thead { tr { th { "When" } th { "Persona" } th.num { "Rating" } th { "Note" } } }
                tbody {
                    @for n in &notes {
                        tr {
                            td { time datetime=(n.created_at.to_rfc3339()) { (fmt::timestamp(n.created_at)) } }
                            td { (n.slug) }
                            td.num {
                                @match n.rating {
                                    Some(r) if r <= 2 => span.badge.bad { (r) },
                                    Some(r) => span.badge { (r) },
                                    None => span.badge.neutral title="the rating reply could not be parsed" { "unparsed" },
                                }
                            }
                            td { a href=(format!("/console/runs/{}", super::error::encode_query_value(&n.run_id))) {
                                (n.notes.as_deref().unwrap_or_default()) } }
                        }
                    }
                }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        page(&format!("Module {module}"), Some(&op.nav("modules")), body),
    ))
}

/// `errors / calls` (0 without calls).
pub fn share(errors: i64, calls: i64) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    if calls > 0 {
        errors as f64 / calls as f64
    } else {
        0.0
    }
}

/// At most `max` characters, with an ellipsis when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_disjoint_intervals_are_significant() {
        assert!(disjoint(Some([1.0, 2.0]), Some([2.5, 3.0])));
        assert!(disjoint(Some([3.0, 4.0]), Some([1.0, 2.9])));
        assert!(!disjoint(Some([1.0, 2.5]), Some([2.5, 3.0])));
        assert!(!disjoint(Some([1.0, 2.0]), None));
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
    }

    #[test]
    fn buckets_are_filled_on_a_utc_grid() {
        use chrono::TimeZone;
        let wed = Utc.with_ymd_and_hms(2026, 11, 18, 12, 0, 0).unwrap();
        let monday = Utc.with_ymd_and_hms(2026, 11, 16, 0, 0, 0).unwrap();
        assert_eq!(bucket_start(wed, Bucket::Week), monday);
        let data = [TrendBucket {
            start: monday,
            n: 2,
            mean: Some(3.0),
            ci95: None,
        }];
        let grid = fill_buckets(&data, wed - TimeDelta::weeks(8), wed, Bucket::Week);
        assert_eq!(
            grid.len(),
            9,
            "8 weeks back from a Wednesday touch 9 Monday weeks"
        );
        assert!(grid.last().unwrap().1.is_some());
        assert!(grid[..8].iter().all(|(_, b)| b.is_none()));
        let days = fill_buckets(&data, wed - TimeDelta::days(7), wed, Bucket::Day);
        assert_eq!(days.len(), 8);
    }
}
