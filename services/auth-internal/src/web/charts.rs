//! Inline SVG charts drawn on the server: a sparkline and a trend with its
//! confidence band.
//!
//! Rules:
//! - Pure functions from numbers to markup; no script, no inline `style`
//!   (the Content-Security-Policy forbids it): presentation attributes and
//!   classes from the stylesheet only.
//! - Gaps (a bucket without data) break the line instead of being drawn as 0.
//! - The value axis of ratings is fixed (1–5), so charts compare at a glance.

use maud::{Markup, PreEscaped, html};

/// Lowest and highest rating.
pub const RATING_MIN: f64 = 1.0;
pub const RATING_MAX: f64 = 5.0;

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

/// Split points into runs without gaps, as SVG path data ("M x y L x y …").
fn path_data(points: &[Option<(f64, f64)>]) -> String {
    let mut d = String::new();
    let mut pen_down = false;
    for p in points {
        match p {
            Some((x, y)) => {
                d.push_str(if pen_down { " L" } else { " M" });
                d.push_str(&format!("{} {}", fmt(*x), fmt(*y)));
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    d.trim_start().to_owned()
}

fn scale_y(v: f64, min: f64, max: f64, top: f64, bottom: f64) -> f64 {
    let t = if max > min {
        ((v - min) / (max - min)).clamp(0.0, 1.0)
    } else {
        0.5
    };
    bottom - t * (bottom - top)
}

/// A small line of `values` (oldest first) on the rating scale; `label` is its accessible name.
pub fn sparkline(values: &[Option<f64>], label: &str) -> Markup {
    let (w, h, pad) = (120.0_f64, 28.0_f64, 3.0_f64);
    let n = values.len().max(2);
    let step = (w - 2.0 * pad) / (n - 1) as f64;
    let points: Vec<Option<(f64, f64)>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.map(|v| {
                (
                    pad + i as f64 * step,
                    scale_y(v, RATING_MIN, RATING_MAX, pad, h - pad),
                )
            })
        })
        .collect();
    let last = points.iter().rev().flatten().next().copied();
    html! {
        svg.sparkline xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {w} {h}"))
            width=(w) height=(h) role="img" aria-label=(label) {
            title { (label) }
            line.mid x1=(fmt(pad)) x2=(fmt(w - pad))
                y1=(fmt(scale_y(3.0, RATING_MIN, RATING_MAX, pad, h - pad)))
                y2=(fmt(scale_y(3.0, RATING_MIN, RATING_MAX, pad, h - pad))) {}
            path.line d=(path_data(&points)) fill="none" {}
            @if let Some((x, y)) = last {
                circle.dot cx=(fmt(x)) cy=(fmt(y)) r="2.5" {}
            }
        }
    }
}

/// One bucket of a trend: label, count, mean and its 95 % interval.
#[derive(Debug, Clone)]
pub struct TrendPoint {
    pub label: String,
    pub n: i64,
    pub mean: Option<f64>,
    pub ci95: Option<(f64, f64)>,
}

/// A trend chart: the mean per bucket as a line over its shaded 95 % interval.
pub fn trend(points: &[TrendPoint], label: &str) -> Markup {
    let (w, h) = (720.0_f64, 240.0_f64);
    let (left, right, top, bottom) = (36.0, 12.0, 12.0, h - 28.0);
    let n = points.len().max(2);
    let step = (w - left - right) / (n - 1) as f64;
    let x = |i: usize| left + i as f64 * step;
    let y = |v: f64| scale_y(v, RATING_MIN, RATING_MAX, top, bottom);
    let line: Vec<Option<(f64, f64)>> = points
        .iter()
        .enumerate()
        .map(|(i, p)| p.mean.map(|m| (x(i), y(m))))
        .collect();
    // The band: upper edge left to right, lower edge back, per gap-free run.
    let mut bands = Vec::new();
    let mut run: Vec<(f64, f64, f64)> = Vec::new();
    for (i, p) in points.iter().enumerate() {
        match p.ci95 {
            Some((lo, hi)) => run.push((x(i), y(hi), y(lo))),
            None => {
                if !run.is_empty() {
                    bands.push(std::mem::take(&mut run));
                }
            }
        }
    }
    if !run.is_empty() {
        bands.push(run);
    }
    let band_paths: Vec<String> = bands
        .iter()
        .map(|r| {
            let mut d = String::new();
            for (i, (px, hi, _)) in r.iter().enumerate() {
                d.push_str(if i == 0 { "M" } else { " L" });
                d.push_str(&format!("{} {}", fmt(*px), fmt(*hi)));
            }
            for (px, _, lo) in r.iter().rev() {
                d.push_str(&format!(" L{} {}", fmt(*px), fmt(*lo)));
            }
            if r.len() == 1 {
                // A lone bucket: a thin vertical bar instead of a zero-width polygon.
                let (px, hi, lo) = r[0];
                d = format!(
                    "M{} {} L{} {} L{} {} L{} {} Z",
                    fmt(px - 2.0),
                    fmt(hi),
                    fmt(px + 2.0),
                    fmt(hi),
                    fmt(px + 2.0),
                    fmt(lo),
                    fmt(px - 2.0),
                    fmt(lo)
                );
            } else {
                d.push_str(" Z");
            }
            d
        })
        .collect();
    let label_every = points.len().div_ceil(8).max(1);
    html! {
        svg.trend xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {w} {h}"))
            role="img" aria-label=(label) {
            title { (label) }
            @for r in [1.0_f64, 2.0, 3.0, 4.0, 5.0] {
                line.grid x1=(fmt(left)) x2=(fmt(w - right)) y1=(fmt(y(r))) y2=(fmt(y(r))) {}
                text.axis x=(fmt(left - 8.0)) y=(fmt(y(r) + 4.0)) text-anchor="end" { (r) }
            }
            @for d in &band_paths {
                path.band d=(d) {}
            }
            path.line d=(path_data(&line)) fill="none" {}
            @for (i, p) in points.iter().enumerate() {
                @if let Some(m) = p.mean {
                    circle.dot cx=(fmt(x(i))) cy=(fmt(y(m))) r="3" {
                        title { (p.label) ": " (format!("{m:.2}")) " (n = " (p.n) ")" }
                    }
                }
                @if i % label_every == 0 {
                    text.axis x=(fmt(x(i))) y=(fmt(h - 8.0)) text-anchor="middle" { (p.label) }
                }
            }
            @if points.iter().all(|p| p.mean.is_none()) {
                text.axis x=(fmt(w / 2.0)) y=(fmt(h / 2.0)) text-anchor="middle" {
                    (PreEscaped("no ratings in this period"))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_break_the_line() {
        assert_eq!(
            path_data(&[Some((0.0, 1.0)), Some((1.0, 2.0)), None, Some((3.0, 4.0))]),
            "M0.0 1.0 L1.0 2.0 M3.0 4.0"
        );
    }

    #[test]
    fn ratings_map_onto_the_fixed_axis() {
        assert_eq!(scale_y(5.0, 1.0, 5.0, 0.0, 100.0), 0.0);
        assert_eq!(scale_y(1.0, 1.0, 5.0, 0.0, 100.0), 100.0);
        assert_eq!(scale_y(9.0, 1.0, 5.0, 0.0, 100.0), 0.0);
        let svg = sparkline(&[Some(1.0), None, Some(5.0)], "todo").into_string();
        assert!(svg.contains("M3.0 25.0 M117.0 3.0"), "{svg}");
    }

    #[test]
    fn the_trend_draws_a_band_per_run_and_no_inline_style() {
        let p = |m: Option<f64>| TrendPoint {
            label: "d".into(),
            n: 3,
            mean: m,
            ci95: m.map(|m| (m - 0.5, m + 0.5)),
        };
        let svg = trend(&[p(Some(3.0)), p(Some(4.0)), p(None), p(Some(2.0))], "t").into_string();
        assert_eq!(svg.matches(r#"class="band""#).count(), 2, "{svg}");
        assert!(!svg.contains("style="));
    }
}
