//! Measurement helpers shared by the subcommands: duration and rate
//! parsing for the CLI, latency histograms summarised as JSON, and a tally
//! of error kinds (so a run with 10 000 identical failures prints one line).

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Parses `5s`, `500ms`, `1.5s`, `2m`, `100us`, `1h`. A unit is required:
/// a bare `5` is ambiguous (HAProxy would read milliseconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("'{s}' has no unit; write e.g. {s}s or {s}ms"))?;
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{s}' does not start with a number"))?;
    let seconds_per_unit = match unit {
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "unknown unit '{unit}' in '{s}' (use us, ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(value * seconds_per_unit).map_err(|e| format!("'{s}': {e}"))
}

/// Parses a rate: `100`, `100/s` or `6000/m` → connections per second.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let (number, per) = match s.split_once('/') {
        Some((n, unit)) => (n, unit),
        None => (s, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{s}' is not a rate (e.g. 100/s)"))?;
    let per_second = match per {
        "s" => value,
        "m" => value / 60.0,
        _ => return Err(format!("unknown rate unit '/{per}' (use /s or /m)")),
    };
    if per_second.is_finite() && per_second >= 0.0 {
        Ok(per_second)
    } else {
        Err(format!("'{s}' is not a usable rate"))
    }
}

/// A histogram of microseconds, 1 µs to 10 minutes, 3 significant digits.
pub fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 600_000_000, 3)
        .map_err(|e| anyhow::anyhow!("cannot create a latency histogram: {e}"))
}

/// Records `d` in µs, saturating at the histogram's bound.
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
    h.saturating_record(us);
}

/// `{count, min, mean, p50, p90, p99, p99_9, max}` in microseconds.
pub fn summary(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({ "count": 0 });
    }
    json!({
        "count": h.len(),
        "min": h.min(),
        "mean": (h.mean() * 10.0).round() / 10.0,
        "p50": h.value_at_quantile(0.50),
        "p90": h.value_at_quantile(0.90),
        "p99": h.value_at_quantile(0.99),
        "p99_9": h.value_at_quantile(0.999),
        "max": h.max(),
    })
}

/// Error kinds and how often each happened.
#[derive(Debug, Default)]
pub struct Errors {
    kinds: BTreeMap<String, u64>,
}

impl Errors {
    pub fn add(&mut self, kind: impl Into<String>) {
        *self.kinds.entry(kind.into()).or_insert(0) += 1;
    }

    pub fn merge(&mut self, other: Errors) {
        for (k, n) in other.kinds {
            *self.kinds.entry(k).or_insert(0) += n;
        }
    }

    pub fn total(&self) -> u64 {
        self.kinds.values().sum()
    }

    pub fn to_json(&self) -> Value {
        json!(self.kinds)
    }
}

/// Rounds to 3 decimals for readable JSON.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("100"), Ok(100.0));
        assert_eq!(parse_rate("100/s"), Ok(100.0));
        assert_eq!(parse_rate("120/m"), Ok(2.0));
        assert!(parse_rate("-1").is_err());
        assert!(parse_rate("1/d").is_err());
    }

    #[test]
    fn summary_has_percentiles() {
        let mut h = new_histogram().unwrap();
        for us in 1..=1000 {
            record(&mut h, Duration::from_micros(us));
        }
        let s = summary(&h);
        assert_eq!(s["count"], 1000);
        assert!(s["p50"].as_u64().is_some_and(|v| (495..=505).contains(&v)));
        assert!(s["p99_9"].as_u64().is_some_and(|v| v >= 990));
    }
}
