//! The reports over HTTP (service key): modules scoreboard, a module's trend, failures
//! and tokens. The queries live in `db::reports`; these handlers parse and map.
//!
//! Rules:
//! - `from`/`to` are RFC 3339 times or `YYYY-MM-DD` dates (UTC midnight); the defaults
//!   are `to` = now and `from` = `to` − 7 days; `from < to` and at most 400 days apart.
//! - Every invalid parameter is 400 `bad_request` naming it; nothing is silently dropped.

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use diesel_async::AsyncPgConnection;
use types::{
    ApiError,
    reports::{Bucket, FailuresReport, ModuleTrend, ModulesReport, TokensReport},
};
use utoipa::IntoParams;

use super::responses::{InternalErrors, QueryErrors};
use crate::{
    db::reports::{self as db, ModulesFilter, Period, TokensFilter, TrendFilter},
    error::AppError,
    state::AppState,
};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig<'_>) {
    cfg.service(modules_report)
        .service(module_trend_report)
        .service(failures_report)
        .service(tokens_report);
}

/// Default period length.
pub const DEFAULT_DAYS: i64 = 7;
/// Longest period a report covers.
pub const MAX_DAYS: i64 = 400;

/// A 400 naming the query parameter.
pub fn bad_param(name: &str, why: &str) -> AppError {
    AppError::BadRequest(format!("query parameter `{name}` {why}"))
}

/// The raw period parameters.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueryParams<'a> {
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
}

fn parse_time(name: &str, v: &str) -> Result<DateTime<Utc>, AppError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| bad_param(name, "must be an RFC 3339 time or a YYYY-MM-DD date"))
}

/// The period of a report (see the module rules).
pub fn period_of(q: &QueryParams<'_>, now: DateTime<Utc>) -> Result<Period, AppError> {
    let to =
        q.to.map(|t| parse_time("to", t))
            .transpose()?
            .unwrap_or(now);
    let from = q
        .from
        .map(|f| parse_time("from", f))
        .transpose()?
        .unwrap_or(to - TimeDelta::days(DEFAULT_DAYS));
    if from >= to {
        return Err(bad_param("from", "must be before `to`"));
    }
    if to - from > TimeDelta::days(MAX_DAYS) {
        return Err(bad_param(
            "from",
            &format!("must be at most {MAX_DAYS} days before `to`"),
        ));
    }
    Ok(Period { from, to })
}

/// A query with the period parameters `from` and `to`.
pub trait PeriodParams {
    fn period_params(&self) -> QueryParams<'_>;

    /// The period (see the module rules).
    fn period(&self, now: DateTime<Utc>) -> Result<Period, AppError> {
        period_of(&self.period_params(), now)
    }
}

/// Implements [`PeriodParams`] for query structs with `from` and `to` fields.
macro_rules! period_params {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::routes::reports::PeriodParams for $t {
            fn period_params(&self) -> $crate::routes::reports::QueryParams<'_> {
                $crate::routes::reports::QueryParams {
                    from: self.from.as_deref(),
                    to: self.to.as_deref(),
                }
            }
        }
    )*};
}
pub(crate) use period_params;

/// An optional parameter through `parse`; what it rejects is a 400 naming it.
pub fn parse_param<T>(
    name: &str,
    value: Option<&str>,
    why: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<Option<T>, AppError> {
    value
        .map(|v| parse(v).ok_or_else(|| bad_param(name, why)))
        .transpose()
}

/// A text parameter of at most `max` characters.
pub fn check_chars(name: &str, value: Option<&str>, max: usize) -> Result<(), AppError> {
    if value.is_some_and(|v| v.chars().count() > max) {
        return Err(bad_param(
            name,
            &format!("must be at most {max} characters"),
        ));
    }
    Ok(())
}

/// Reads on a pooled connection and answers with the result as JSON.
pub async fn json_of<T: serde::Serialize>(
    state: &AppState,
    read: impl AsyncFnOnce(&mut AsyncPgConnection) -> diesel::QueryResult<T>,
) -> Result<HttpResponse, AppError> {
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(read(&mut conn).await?))
}

fn bucket_of(v: Option<&str>) -> Result<Bucket, AppError> {
    Ok(parse_param("bucket", v, "must be day or week", Bucket::parse)?.unwrap_or(Bucket::Day))
}

/// A module name as the registry spells them (or `__parse`).
fn valid_module(m: &str) -> bool {
    !m.is_empty()
        && m.len() <= 64
        && m.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Query of `GET …/reports/modules`.
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct ModulesQuery {
    /// Start (RFC 3339 or `YYYY-MM-DD`, UTC); default `to` − 7 days.
    pub from: Option<String>,
    /// End, exclusive; default now.
    pub to: Option<String>,
    /// Only ratings and tool calls of runs of this app version.
    pub app_version: Option<String>,
}

/// Parses the scoreboard's query.
pub fn modules_filter(q: &ModulesQuery, now: DateTime<Utc>) -> Result<ModulesFilter, AppError> {
    check_chars("appVersion", q.app_version.as_deref(), 100)?;
    Ok(ModulesFilter {
        period: q.period(now)?,
        app_version: q.app_version.clone(),
    })
}

/// `GET /api/v1/internal/reports/modules`: the scoreboard, worst first.
#[utoipa::path(
    tag = "internal-reports",
    security(("serviceKey" = [])),
    params(ModulesQuery),
    responses(
        (status = 200, description = "Per module: ratings' n, mean, 95 % t-interval, previous period and delta, error share, recent low notes; worst first", body = ModulesReport),
        QueryErrors, InternalErrors,
    ),
)]
#[get("/reports/modules")]
pub async fn modules_report(
    state: web::Data<AppState>,
    query: web::Query<ModulesQuery>,
) -> Result<HttpResponse, AppError> {
    let filter = modules_filter(&query, state.clock.now())?;
    json_of(&state, async |c| db::modules(c, &filter).await).await
}

/// Query of a module's trend and of the tokens report.
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct BucketQuery {
    /// `day` (default) or `week` (Monday-based), UTC.
    pub bucket: Option<String>,
    /// Start (RFC 3339 or `YYYY-MM-DD`, UTC); default `to` − 7 days.
    pub from: Option<String>,
    /// End, exclusive; default now.
    pub to: Option<String>,
}

/// Query of `GET …/reports/modules/{module}/trend`.
pub type TrendQuery = BucketQuery;
/// Query of `GET …/reports/tokens`.
pub type TokensQuery = BucketQuery;

period_params!(ModulesQuery, BucketQuery, PeriodQuery);

/// Parses a trend query.
pub fn trend_filter(
    module: &str,
    q: &TrendQuery,
    now: DateTime<Utc>,
) -> Result<TrendFilter, AppError> {
    if !valid_module(module) {
        return Err(AppError::NotFound(format!("no module {module}")));
    }
    Ok(TrendFilter {
        module: module.to_owned(),
        period: q.period(now)?,
        bucket: bucket_of(q.bucket.as_deref())?,
    })
}

/// `GET /api/v1/internal/reports/modules/{module}/trend`.
#[utoipa::path(
    tag = "internal-reports",
    security(("serviceKey" = [])),
    params(("module" = String, Path, description = "A module name, e.g. `todo`"), TrendQuery),
    responses(
        (status = 200, description = "Buckets with ratings (oldest first) and the per-persona breakdown (worst first)", body = ModuleTrend),
        (status = 404, description = "Not a module name (`not_found`)", body = ApiError),
        QueryErrors, InternalErrors,
    ),
)]
#[get("/reports/modules/{module}/trend")]
pub async fn module_trend_report(
    state: web::Data<AppState>,
    module: web::Path<String>,
    query: web::Query<TrendQuery>,
) -> Result<HttpResponse, AppError> {
    let filter = trend_filter(&module, &query, state.clock.now())?;
    json_of(&state, async |c| db::module_trend(c, &filter).await).await
}

/// Query of the failures report.
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeriodQuery {
    /// Start (RFC 3339 or `YYYY-MM-DD`, UTC); default `to` − 7 days.
    pub from: Option<String>,
    /// End, exclusive; default now.
    pub to: Option<String>,
}

/// `GET /api/v1/internal/reports/failures`.
#[utoipa::path(
    tag = "internal-reports",
    security(("serviceKey" = [])),
    params(PeriodQuery),
    responses(
        (status = 200, description = "Failed and simulator-failed runs by error class and persona: count, first and last seen, newest example", body = FailuresReport),
        QueryErrors, InternalErrors,
    ),
)]
#[get("/reports/failures")]
pub async fn failures_report(
    state: web::Data<AppState>,
    query: web::Query<PeriodQuery>,
) -> Result<HttpResponse, AppError> {
    let period = query.period(state.clock.now())?;
    json_of(&state, async |c| db::failures(c, period).await).await
}

/// Parses the tokens report's query.
pub fn tokens_filter(q: &TokensQuery, now: DateTime<Utc>) -> Result<TokensFilter, AppError> {
    Ok(TokensFilter {
        period: q.period(now)?,
        bucket: bucket_of(q.bucket.as_deref())?,
    })
}

/// `GET /api/v1/internal/reports/tokens`.
#[utoipa::path(
    tag = "internal-reports",
    security(("serviceKey" = [])),
    params(TokensQuery),
    responses(
        (status = 200, description = "Tokens by bucket, provider, model and kind (input, output, cacheRead, cacheWrite)", body = TokensReport),
        QueryErrors, InternalErrors,
    ),
)]
#[get("/reports/tokens")]
pub async fn tokens_report(
    state: web::Data<AppState>,
    query: web::Query<TokensQuery>,
) -> Result<HttpResponse, AppError> {
    let filter = tokens_filter(&query, state.clock.now())?;
    json_of(&state, async |c| db::tokens(c, filter).await).await
}

#[cfg(test)]
mod tests {

    use chrono::TimeZone;

    use super::*;

    #[test]
    fn periods_default_to_the_last_seven_days_and_name_bad_params() {
        let now = Utc.with_ymd_and_hms(2026, 11, 18, 12, 0, 0).unwrap();
        let p = period_of(&QueryParams::default(), now).unwrap();
        assert_eq!((p.from, p.to), (now - TimeDelta::days(7), now));
        let p = period_of(
            &QueryParams {
                from: Some("2026-11-01"),
                to: Some("2026-11-02T06:00:00+02:00"),
            },
            now,
        )
        .unwrap();
        assert_eq!(p.from, Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap());
        assert_eq!(p.to, Utc.with_ymd_and_hms(2026, 11, 2, 4, 0, 0).unwrap());
        for (from, to, name) in [
            (Some("yesterday"), None, "`from`"),
            (None, Some("2026-13-01"), "`to`"),
            (Some("2026-11-10"), Some("2026-11-09"), "`from`"),
            (Some("2024-01-01"), Some("2026-01-01"), "`from`"),
        ] {
            let err = period_of(&QueryParams { from, to }, now).unwrap_err();
            assert!(
                matches!(&err, AppError::BadRequest(m) if m.contains(name)),
                "{err:?}"
            );
        }
        assert!(bucket_of(Some("month")).is_err());
        assert_eq!(bucket_of(Some("week")).unwrap(), Bucket::Week);
    }
}
