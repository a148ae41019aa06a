//! The period picker every report page shares: `from`/`to` in the query
//! string, preset links, and the hidden fields that keep other filters.
//!
//! Rules: the same parsing as the JSON reports (`routes::reports::period_of`:
//! RFC 3339 or `YYYY-MM-DD`, default the last 7 days, at most 400 days), so a
//! console link and an API call with the same query mean the same period.

use chrono::{DateTime, TimeDelta, Utc};
use maud::{Markup, html};

use super::error::{ConsoleError, encode_query_value};
use crate::{
    db::reports::Period,
    routes::reports::{QueryParams, period_of},
};

/// Parse `from`/`to` like the JSON reports do.
pub fn parse(
    from: Option<&str>,
    to: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Period, ConsoleError> {
    let from = from.filter(|s| !s.is_empty());
    let to = to.filter(|s| !s.is_empty());
    Ok(period_of(&QueryParams { from, to }, now)?)
}

/// `YYYY-MM-DD` of a period bound, as the date inputs show it.
pub fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// A query string `k=v&…` with empty values left out.
pub fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (k, v)))
        .map(|(k, v)| format!("{k}={}", encode_query_value(v)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// The `from`/`to` of the period as link parameters (RFC 3339, exact).
pub fn link_params(p: &Period) -> (String, String) {
    (p.from.to_rfc3339(), p.to.to_rfc3339())
}

/// The picker: date inputs, presets (7, 28, 90 days up to now), and `extra`
/// (other inputs of the same GET form, e.g. the app version select).
pub fn picker(action: &str, p: &Period, now: DateTime<Utc>, extra: Markup) -> Markup {
    let presets = [(7, "7 days"), (28, "4 weeks"), (90, "90 days")];
    html! {
        form.filters method="get" action=(action) {
            label { "From" input type="date" name="from" value=(day(p.from)); }
            label { "To (exclusive)" input type="date" name="to" value=(day(p.to)); }
            (extra)
            button.secondary type="submit" { "Apply" }
            span.muted { "Last: " }
            @for (days, label) in presets {
                @let from = (now - TimeDelta::days(days)).to_rfc3339();
                a href=(format!("{action}{}", query(&[("from", Some(&from))]))) { (label) }
            }
        }
    }
}
