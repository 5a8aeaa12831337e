//! Per-series validation of incoming Remote Write data.
//!
//! The checks make a series safe to append in Prometheus 2.42: label names valid, sorted and unique,
//! `__name__` a valid metric name, no other reserved `__` name, samples in timestamp order and not
//! too far in the future, and sizes bounded (defaults after Mimir's per-tenant limits).

use super::proto::v1::TimeSeries;

/// Size limits applied to each series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationLimits {
    /// Most label names on one series (Mimir: 30).
    pub max_labels_per_series: usize,
    /// Longest label name, bytes (Mimir: 1024).
    pub max_label_name_bytes: usize,
    /// Longest label value, bytes (Mimir: 2048).
    pub max_label_value_bytes: usize,
    /// How far a sample may lie in the future, ms (Mimir: 10 min).
    pub future_grace_ms: i64,
}

impl Default for ValidationLimits {
    fn default() -> Self {
        Self {
            max_labels_per_series: 30,
            max_label_name_bytes: 1024,
            max_label_value_bytes: 2048,
            future_grace_ms: 10 * 60 * 1000,
        }
    }
}

/// Why one series was refused. `reason()` is the metric label value.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum SeriesError {
    /// No `__name__` label.
    #[error("series has no __name__ label")]
    MissingName,
    /// A label name is not `[a-zA-Z_][a-zA-Z0-9_]*`.
    #[error("invalid label name {0:?}")]
    InvalidLabelName(String),
    /// `__name__` is not `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    #[error("invalid metric name {0:?}")]
    InvalidMetricName(String),
    /// Labels not strictly sorted by name (also catches duplicates).
    #[error("labels not sorted or duplicate label name {0:?}")]
    UnsortedLabels(String),
    /// Too many labels.
    #[error("series has {count} labels, limit {limit}")]
    TooManyLabels {
        /// Labels on the series.
        count: usize,
        /// Limit in force.
        limit: usize,
    },
    /// A label name or value is too long.
    #[error("label {name:?} is longer than the limit of {limit} bytes")]
    LabelTooLong {
        /// The (possibly truncated) label name.
        name: String,
        /// Limit in force.
        limit: usize,
    },
    /// Samples not in increasing timestamp order.
    #[error("samples of {0} are not in timestamp order")]
    OutOfOrder(String),
    /// A sample lies too far in the future.
    #[error("sample of {series} at {timestamp_ms} ms is more than {grace_ms} ms in the future")]
    TooFarInFuture {
        /// Series name.
        series: String,
        /// The sample's timestamp.
        timestamp_ms: i64,
        /// Grace in force.
        grace_ms: i64,
    },
    /// The series has no samples.
    #[error("series {0} has no samples")]
    NoSamples(String),
    /// A label name starts with `__` and is not `__name__`.
    #[error("label name {0:?} is reserved (names starting with __ other than __name__)")]
    ReservedLabel(String),
    /// A label name or value is not UTF-8.
    #[error("a label name or value is not valid UTF-8")]
    InvalidUtf8,
}

impl SeriesError {
    /// Short, stable reason for metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingName => "missing_name",
            Self::InvalidLabelName(_) => "invalid_label_name",
            Self::InvalidMetricName(_) => "invalid_metric_name",
            Self::UnsortedLabels(_) => "unsorted_labels",
            Self::TooManyLabels { .. } => "too_many_labels",
            Self::LabelTooLong { .. } => "label_too_long",
            Self::OutOfOrder(_) => "out_of_order",
            Self::TooFarInFuture { .. } => "too_far_in_future",
            Self::NoSamples(_) => "no_samples",
            Self::ReservedLabel(_) => "reserved_label",
            Self::InvalidUtf8 => "invalid_utf8",
        }
    }
}

/// True for a legacy Prometheus label name.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// True for a legacy Prometheus metric name (label name rules plus `:`).
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_' | b':'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// Removes labels with empty values: Prometheus treats them as absent, and `/federate` emits
/// `instance=""`. Keeps the order of the rest.
pub fn strip_empty_labels(series: &mut TimeSeries) {
    series.labels.retain(|l| !l.value.is_empty());
}

/// Checks a series' labels (empty values already removed, the identity label already pinned)
/// against `limits`; returns the metric name.
pub fn validate_labels<'l>(
    labels: &[(&'l str, &'l str)],
    limits: &ValidationLimits,
) -> Result<&'l str, SeriesError> {
    if labels.len() > limits.max_labels_per_series {
        return Err(SeriesError::TooManyLabels {
            count: labels.len(),
            limit: limits.max_labels_per_series,
        });
    }
    let mut metric_name = None;
    let mut previous: Option<&str> = None;
    for &(name, value) in labels {
        if name.len() > limits.max_label_name_bytes {
            return Err(SeriesError::LabelTooLong {
                name: name.chars().take(64).collect(),
                limit: limits.max_label_name_bytes,
            });
        }
        if value.len() > limits.max_label_value_bytes {
            return Err(SeriesError::LabelTooLong {
                name: name.to_string(),
                limit: limits.max_label_value_bytes,
            });
        }
        if !is_valid_label_name(name) {
            return Err(SeriesError::InvalidLabelName(name.to_string()));
        }
        if previous.is_some_and(|p| p >= name) {
            return Err(SeriesError::UnsortedLabels(name.to_string()));
        }
        previous = Some(name);
        if name == "__name__" {
            if !is_valid_metric_name(value) {
                return Err(SeriesError::InvalidMetricName(value.to_string()));
            }
            metric_name = Some(value);
        } else if name.starts_with("__") {
            // Prometheus reserves `__` names for itself (relabelling drops them; a stored one
            // would shadow internal meaning such as a tenant).
            return Err(SeriesError::ReservedLabel(name.to_string()));
        }
    }
    metric_name.ok_or(SeriesError::MissingName)
}

/// Checks the sample timestamps of series `name`: at least one, strictly increasing, the last
/// at most `limits.future_grace_ms` after `now_ms`.
pub fn validate_timestamps(
    name: &str,
    timestamps: impl IntoIterator<Item = i64>,
    limits: &ValidationLimits,
    now_ms: i64,
) -> Result<(), SeriesError> {
    let mut last_ts = None;
    for timestamp in timestamps {
        if last_ts.is_some_and(|last| timestamp <= last) {
            return Err(SeriesError::OutOfOrder(name.to_string()));
        }
        last_ts = Some(timestamp);
    }
    let last_ts = last_ts.ok_or_else(|| SeriesError::NoSamples(name.to_string()))?;
    if last_ts > now_ms.saturating_add(limits.future_grace_ms) {
        return Err(SeriesError::TooFarInFuture {
            series: name.to_string(),
            timestamp_ms: last_ts,
            grace_ms: limits.future_grace_ms,
        });
    }
    Ok(())
}

/// Checks one decoded series (after [`strip_empty_labels`]) against `limits` at time `now_ms`:
/// [`validate_labels`] then [`validate_timestamps`]. The receiver's own path validates borrowed
/// labels while decoding (`rewrite`); this form serves tests and the fuzz target's reference.
pub fn validate_series(
    series: &TimeSeries,
    limits: &ValidationLimits,
    now_ms: i64,
) -> Result<(), SeriesError> {
    let labels: Vec<(&str, &str)> = series
        .labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    let name = validate_labels(&labels, limits)?;
    validate_timestamps(
        name,
        series.samples.iter().map(|s| s.timestamp),
        limits,
        now_ms,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::remote_write::test_series;

    fn ts(labels: &[(&str, &str)], stamps: &[i64]) -> TimeSeries {
        let samples: Vec<(f64, i64)> = stamps.iter().map(|&t| (1.0, t)).collect();
        test_series(labels, &samples)
    }

    #[test]
    fn validation_table() {
        let limits = ValidationLimits::default();
        let now = 1_700_000_000_000;
        let long = "x".repeat(2049);
        let cases: Vec<(TimeSeries, Option<&str>)> = vec![
            (
                ts(
                    &[("__name__", "shoot:availability"), ("kind", "seed")],
                    &[now],
                ),
                None,
            ),
            (ts(&[("kind", "seed")], &[now]), Some("missing_name")),
            (
                ts(&[("__name__", "up"), ("1bad", "x")], &[now]),
                Some("invalid_label_name"),
            ),
            (
                ts(&[("__name__", "bad-name")], &[now]),
                Some("invalid_metric_name"),
            ),
            (
                ts(&[("__name__", "up"), ("b", "1"), ("a", "2")], &[now]),
                Some("unsorted_labels"),
            ),
            (
                ts(&[("__name__", "up"), ("a", "1"), ("a", "2")], &[now]),
                Some("unsorted_labels"),
            ),
            (
                ts(&[("__name__", "up"), ("a", &long)], &[now]),
                Some("label_too_long"),
            ),
            (ts(&[("__name__", "up")], &[now, now]), Some("out_of_order")),
            (
                ts(&[("__name__", "up")], &[now + 11 * 60 * 1000]),
                Some("too_far_in_future"),
            ),
            (ts(&[("__name__", "up")], &[]), Some("no_samples")),
            (
                ts(&[("__name__", "up"), ("__tenant__", "x")], &[now]),
                Some("reserved_label"),
            ),
            (
                ts(&[("__meta_x", "x"), ("__name__", "up")], &[now]),
                Some("reserved_label"),
            ),
        ];
        for (series, want) in cases {
            let got = validate_series(&series, &limits, now).err();
            assert_eq!(got.as_ref().map(SeriesError::reason), want, "{series:?}");
        }
        let many: Vec<(String, String)> =
            (0..31).map(|i| (format!("l{i:02}"), "v".into())).collect();
        let mut labels: Vec<(&str, &str)> = vec![("__name__", "up")];
        labels.extend(many.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        assert_eq!(
            validate_series(&ts(&labels, &[now]), &limits, now)
                .unwrap_err()
                .reason(),
            "too_many_labels"
        );
    }

    #[test]
    fn empty_valued_labels_are_stripped() {
        let mut series = ts(&[("__name__", "up"), ("instance", ""), ("job", "x")], &[1]);
        strip_empty_labels(&mut series);
        let names: Vec<_> = series.labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["__name__", "job"]);
    }
}
