//! Statistics and the machine-readable summary shared by the benches.
//!
//! Rules:
//! - Percentiles are nearest-rank over the samples ([`percentile`]); every
//!   bench uses [`Summary::of`] so figures are comparable across benches.
//! - Every bench records its figures with [`record`]: entries are merged
//!   into one JSON file keyed by `metric` (a re-run replaces its own entries
//!   and keeps the others), so a full `just bench` yields one file,
//!   `$CARGO_TARGET_DIR/bench/summary.json` (else `target/bench/summary.json`
//!   at the workspace root).
//! - An entry compared with a baseline (a raw INSERT, an in-process call)
//!   carries it and `ratio = value / baseline.value`, so a run can be judged
//!   on its own on a noisy machine.
//! - With `BENCH_BASELINE_SUMMARY=<path>` set (the summary of another build,
//!   e.g. the commit before a change, run in the same minutes), an entry with
//!   no in-run baseline is compared with the same metric of that file
//!   (`baseline.metric` = `"<path>:<metric>"`).
//! - [`section`] lets a run leave out the parts of a bench that are not
//!   wanted (`<NAME>=0`), e.g. to repeat the timed parts quickly.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

/// Milliseconds of a duration.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `a / b`, NaN when `b` is not positive.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::NAN }
}

/// Nearest-rank percentile `p` (0..=1) of ascending `sorted` samples; 0 when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Count / p50 / p90 / p99 / mean / max of samples (milliseconds, usually).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub mean: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(mut v: Vec<f64>) -> Self {
        if v.is_empty() {
            return Self::default();
        }
        v.sort_by(f64::total_cmp);
        Self {
            n: v.len(),
            p50: percentile(&v, 0.50),
            p90: percentile(&v, 0.90),
            p99: percentile(&v, 0.99),
            mean: v.iter().sum::<f64>() / v.len() as f64,
            max: v[v.len() - 1],
        }
    }

    /// One report line of millisecond samples.
    pub fn line(&self) -> String {
        format!(
            "n={:<5} p50 {:>7.2} ms  p99 {:>7.2} ms  mean {:>7.2} ms",
            self.n, self.p50, self.p99, self.mean
        )
    }
}

/// Items done in an elapsed time.
#[derive(Debug, Default, Clone, Copy)]
pub struct Rate {
    pub items: usize,
    pub secs: f64,
}

impl Rate {
    pub fn new(items: usize, d: Duration) -> Self {
        Self {
            items,
            secs: d.as_secs_f64(),
        }
    }

    pub fn per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            self.items as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// The figure an entry is compared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub metric: String,
    pub value: f64,
}

/// One figure of the summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub metric: String,
    pub value: f64,
    pub unit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
}

impl Entry {
    pub fn new(metric: impl Into<String>, value: f64, unit: impl Into<String>) -> Self {
        Self {
            metric: metric.into(),
            value,
            unit: unit.into(),
            baseline: None,
            ratio: None,
        }
    }

    /// Compared with `baseline` (same unit): sets `ratio = value / baseline`.
    pub fn against(mut self, metric: impl Into<String>, value: f64) -> Self {
        let r = ratio(self.value, value);
        self.baseline = Some(Baseline {
            metric: metric.into(),
            value,
        });
        self.ratio = r.is_finite().then_some(r);
        self
    }
}

/// Where [`record`] writes: `$CARGO_TARGET_DIR/bench/summary.json`, else
/// `<workspace>/target/bench/summary.json`.
pub fn summary_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("bench").join("summary.json")
}

/// Whether the bench section behind env variable `name` runs: it does unless
/// the variable is `0` (or `false`, `no`, `off`).
pub fn section(name: &str) -> bool {
    !std::env::var(name).is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "0" | "false" | "no" | "off"
        )
    })
}

/// Merge `entries` into the summary at [`summary_path`] (keyed by metric);
/// entries without a baseline are compared with `BENCH_BASELINE_SUMMARY`'s.
pub fn record(entries: &[Entry]) -> std::io::Result<PathBuf> {
    let path = summary_path();
    let entries = match std::env::var_os("BENCH_BASELINE_SUMMARY").filter(|v| !v.is_empty()) {
        Some(base) => against_file(Path::new(&base), entries)?,
        None => entries.to_vec(),
    };
    record_at(&path, &entries)?;
    Ok(path)
}

/// `entries`, each one without a baseline compared with the same metric of
/// the summary at `base` when it has one.
pub fn against_file(base: &Path, entries: &[Entry]) -> std::io::Result<Vec<Entry>> {
    let bytes = std::fs::read(base)?;
    let old: BTreeMap<String, f64> = serde_json::from_slice::<Vec<Entry>>(&bytes)
        .map_err(std::io::Error::other)?
        .into_iter()
        .map(|e| (e.metric, e.value))
        .collect();
    Ok(entries
        .iter()
        .map(|e| match (&e.baseline, old.get(&e.metric)) {
            (None, Some(v)) => e
                .clone()
                .against(format!("{}:{}", base.display(), e.metric), *v),
            _ => e.clone(),
        })
        .collect())
}

/// Merge `entries` into the summary file at `path`: same metric replaced,
/// others kept, written sorted by metric (atomically, via a rename).
pub fn record_at(path: &Path, entries: &[Entry]) -> std::io::Result<()> {
    let mut all: BTreeMap<String, Entry> = match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<Vec<Entry>>(&bytes)
            .map_err(std::io::Error::other)?
            .into_iter()
            .map(|e| (e.metric.clone(), e))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(e),
    };
    for e in entries {
        all.insert(e.metric.clone(), e.clone());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let list: Vec<&Entry> = all.values().collect();
    let json = serde_json::to_vec_pretty(&list).map_err(std::io::Error::other)?;
    let tmp = path.with_extension(format!("json.{}", std::process::id()));
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s = Summary::of((1..=100).rev().map(f64::from).collect());
        assert_eq!(
            (s.n, s.p50, s.p90, s.p99, s.max),
            (100, 50.0, 90.0, 99.0, 100.0)
        );
        assert!((s.mean - 50.5).abs() < 1e-9);
        assert_eq!(Summary::of(vec![7.0]).p99, 7.0);
        assert_eq!(Summary::of(Vec::new()), Summary::default());
    }

    #[test]
    fn entries_merge_by_metric_and_carry_ratios() {
        let dir = std::env::temp_dir().join(format!("bench-summary-{}", uuid::Uuid::new_v4()));
        let path = dir.join("summary.json");
        record_at(
            &path,
            &[
                Entry::new("push.changes_per_s", 100.0, "1/s").against("raw_insert", 400.0),
                Entry::new("claim.p50_ms", 6.0, "ms"),
            ],
        )
        .unwrap();
        record_at(&path, &[Entry::new("claim.p50_ms", 4.0, "ms")]).unwrap();
        let back: Vec<Entry> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].metric, "claim.p50_ms");
        assert_eq!(back[0].value, 4.0);
        assert_eq!(back[0].ratio, None);
        assert_eq!(back[1].ratio, Some(0.25));
        assert_eq!(back[1].baseline.as_ref().unwrap().value, 400.0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn entries_without_a_baseline_take_the_same_metric_of_another_summary() {
        let dir = std::env::temp_dir().join(format!("bench-base-{}", uuid::Uuid::new_v4()));
        let base = dir.join("base.json");
        record_at(
            &base,
            &[
                Entry::new("claim.p50_ms", 8.0, "ms"),
                Entry::new("push.p50_ms", 900.0, "ms"),
            ],
        )
        .unwrap();
        let out = against_file(
            &base,
            &[
                Entry::new("claim.p50_ms", 4.0, "ms"),
                Entry::new("push.p50_ms", 40.0, "ms").against("raw_insert", 20.0),
                Entry::new("new.metric", 1.0, "ms"),
            ],
        )
        .unwrap();
        assert_eq!(out[0].ratio, Some(0.5));
        assert!(
            out[0]
                .baseline
                .as_ref()
                .unwrap()
                .metric
                .ends_with(":claim.p50_ms")
        );
        assert_eq!(out[1].baseline.as_ref().unwrap().metric, "raw_insert");
        assert_eq!(out[2].baseline, None);
        assert!(section("BENCH_SECTION_THAT_IS_NEVER_SET"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
