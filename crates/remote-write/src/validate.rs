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

/// Why the receiver refuses part of a request: the `reason` its refusal counter and status page
/// use. Every value, in declaration order, is in [`Refusal::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Refusal {
    /// [`SeriesError::MissingName`].
    MissingName,
    /// [`SeriesError::InvalidLabelName`].
    InvalidLabelName,
    /// [`SeriesError::InvalidMetricName`].
    InvalidMetricName,
    /// [`SeriesError::UnsortedLabels`].
    UnsortedLabels,
    /// [`SeriesError::TooManyLabels`].
    TooManyLabels,
    /// [`SeriesError::LabelTooLong`].
    LabelTooLong,
    /// [`SeriesError::OutOfOrder`].
    OutOfOrder,
    /// [`SeriesError::TooFarInFuture`].
    TooFarInFuture,
    /// [`SeriesError::NoSamples`].
    NoSamples,
    /// [`SeriesError::ReservedLabel`].
    ReservedLabel,
    /// [`SeriesError::InvalidUtf8`].
    InvalidUtf8,
    /// Samples older than the acceptance window.
    TooOld,
    /// Native histogram samples (not forwarded).
    NativeHistogram,
    /// Exemplars (not forwarded).
    Exemplar,
}

impl Refusal {
    /// Every value, in declaration order.
    pub const ALL: &'static [Refusal] = &[
        Refusal::MissingName,
        Refusal::InvalidLabelName,
        Refusal::InvalidMetricName,
        Refusal::UnsortedLabels,
        Refusal::TooManyLabels,
        Refusal::LabelTooLong,
        Refusal::OutOfOrder,
        Refusal::TooFarInFuture,
        Refusal::NoSamples,
        Refusal::ReservedLabel,
        Refusal::InvalidUtf8,
        Refusal::TooOld,
        Refusal::NativeHistogram,
        Refusal::Exemplar,
    ];

    /// Short, stable text for metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MissingName => "missing_name",
            Self::InvalidLabelName => "invalid_label_name",
            Self::InvalidMetricName => "invalid_metric_name",
            Self::UnsortedLabels => "unsorted_labels",
            Self::TooManyLabels => "too_many_labels",
            Self::LabelTooLong => "label_too_long",
            Self::OutOfOrder => "out_of_order",
            Self::TooFarInFuture => "too_far_in_future",
            Self::NoSamples => "no_samples",
            Self::ReservedLabel => "reserved_label",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::TooOld => "too_old",
            Self::NativeHistogram => "native_histogram",
            Self::Exemplar => "exemplar",
        }
    }
}

impl SeriesError {
    /// The refusal this error counts as.
    pub fn reason(&self) -> Refusal {
        match self {
            Self::MissingName => Refusal::MissingName,
            Self::InvalidLabelName(_) => Refusal::InvalidLabelName,
            Self::InvalidMetricName(_) => Refusal::InvalidMetricName,
            Self::UnsortedLabels(_) => Refusal::UnsortedLabels,
            Self::TooManyLabels { .. } => Refusal::TooManyLabels,
            Self::LabelTooLong { .. } => Refusal::LabelTooLong,
            Self::OutOfOrder(_) => Refusal::OutOfOrder,
            Self::TooFarInFuture { .. } => Refusal::TooFarInFuture,
            Self::NoSamples(_) => Refusal::NoSamples,
            Self::ReservedLabel(_) => Refusal::ReservedLabel,
            Self::InvalidUtf8 => Refusal::InvalidUtf8,
        }
    }
}

/// True for a legacy Prometheus label name.
pub fn is_valid_label_name(name: &str) -> bool {
    is_label_name(name.as_bytes())
}

/// True for a legacy Prometheus metric name (label name rules plus `:`).
pub fn is_valid_metric_name(name: &str) -> bool {
    is_metric_name(name.as_bytes())
}

/// Per byte: bit 0 a letter or `_` (may start a label name), bit 1 also a digit (may continue
/// one), bit 2 `:` (may start or continue a metric name). One load per byte in the hot path.
const NAME_CHARS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphabetic() || c == b'_' {
            table[b] = 0b011;
        } else if c.is_ascii_digit() {
            table[b] = 0b010;
        } else if c == b':' {
            table[b] = 0b100;
        }
        b += 1;
    }
    table
};

/// Whether `name` starts with a byte of class `first` and continues with bytes of class `rest`.
#[inline]
fn is_name(name: &[u8], first: u8, rest: u8) -> bool {
    match name.split_first() {
        Some((&head, tail)) => {
            NAME_CHARS[usize::from(head)] & first != 0
                && tail.iter().all(|&b| NAME_CHARS[usize::from(b)] & rest != 0)
        }
        None => false,
    }
}

/// [`is_valid_label_name`] on bytes (a valid name is ASCII).
#[inline]
fn is_label_name(name: &[u8]) -> bool {
    is_name(name, 0b001, 0b011)
}

/// [`is_valid_metric_name`] on bytes.
#[inline]
fn is_metric_name(name: &[u8]) -> bool {
    is_name(name, 0b101, 0b111)
}

/// Byte-wise order of two short strings, inlined (label names are a few bytes: a `memcmp` call
/// costs more than the comparison).
#[inline]
pub fn compare_bytes(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Removes labels with empty values: Prometheus treats them as absent, and `/federate` emits
/// `instance=""`. Keeps the order of the rest.
pub fn strip_empty_labels(series: &mut TimeSeries) {
    series.labels.retain(|l| !l.value.is_empty());
}

/// Checks a series' labels as raw bytes (empty values already removed, the identity label
/// already pinned) against `limits`; returns the metric name. Values must already be known to be
/// UTF-8 (a `String` is; `rewrite` checks each value as it reads it); names are checked here
/// (a valid name is ASCII).
pub fn validate_labels<'l>(
    labels: &[(&'l [u8], &'l [u8])],
    limits: &ValidationLimits,
) -> Result<&'l [u8], SeriesError> {
    if labels.len() > limits.max_labels_per_series {
        return Err(SeriesError::TooManyLabels {
            count: labels.len(),
            limit: limits.max_labels_per_series,
        });
    }
    let mut metric_name = None;
    let mut previous: &[u8] = &[];
    for &(name, value) in labels {
        if name.len() > limits.max_label_name_bytes {
            return Err(SeriesError::LabelTooLong {
                name: text(name).chars().take(64).collect(),
                limit: limits.max_label_name_bytes,
            });
        }
        if value.len() > limits.max_label_value_bytes {
            return Err(SeriesError::LabelTooLong {
                name: text(name),
                limit: limits.max_label_value_bytes,
            });
        }
        if !is_label_name(name) {
            return Err(SeriesError::InvalidLabelName(text(name)));
        }
        // Valid names are never empty, so "" sorts before the first.
        if compare_bytes(previous, name) != std::cmp::Ordering::Less {
            return Err(SeriesError::UnsortedLabels(text(name)));
        }
        previous = name;
        if name.starts_with(b"__") {
            if name != b"__name__" {
                // Prometheus reserves `__` names for itself (relabelling drops them; a stored
                // one would shadow internal meaning such as a tenant).
                return Err(SeriesError::ReservedLabel(text(name)));
            }
            if !is_metric_name(value) {
                return Err(SeriesError::InvalidMetricName(text(value)));
            }
            metric_name = Some(value);
        }
    }
    metric_name.ok_or(SeriesError::MissingName)
}

/// Checks the sample timestamps of series `name`: at least one, strictly increasing, the last
/// at most `limits.future_grace_ms` after `now_ms`.
pub fn validate_timestamps(
    name: &[u8],
    timestamps: impl IntoIterator<Item = i64>,
    limits: &ValidationLimits,
    now_ms: i64,
) -> Result<(), SeriesError> {
    let mut last_ts = None;
    for timestamp in timestamps {
        if last_ts.is_some_and(|last| timestamp <= last) {
            return Err(SeriesError::OutOfOrder(text(name)));
        }
        last_ts = Some(timestamp);
    }
    let last_ts = last_ts.ok_or_else(|| SeriesError::NoSamples(text(name)))?;
    if last_ts > now_ms.saturating_add(limits.future_grace_ms) {
        return Err(SeriesError::TooFarInFuture {
            series: text(name),
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
    let labels: Vec<(&[u8], &[u8])> = series
        .labels
        .iter()
        .map(|l| (l.name.as_bytes(), l.value.as_bytes()))
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
mod tests {
    use super::*;
    use crate::test_series;

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
            assert_eq!(
                got.as_ref().map(|e| e.reason().as_str()),
                want,
                "{series:?}"
            );
        }
        let many: Vec<(String, String)> =
            (0..31).map(|i| (format!("l{i:02}"), "v".into())).collect();
        let mut labels: Vec<(&str, &str)> = vec![("__name__", "up")];
        labels.extend(many.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        assert_eq!(
            validate_series(&ts(&labels, &[now]), &limits, now)
                .unwrap_err()
                .reason()
                .as_str(),
            "too_many_labels"
        );
    }

    proptest::proptest! {
        #[test]
        fn name_classes_match_the_prometheus_grammar(name in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..6)) {
            // [a-zA-Z_][a-zA-Z0-9_]* and [a-zA-Z_:][a-zA-Z0-9_:]*
            let first = |b: u8, colon: bool| b.is_ascii_alphabetic() || b == b'_' || (colon && b == b':');
            let rest = |b: u8, colon: bool| first(b, colon) || b.is_ascii_digit();
            let grammar = |colon: bool| {
                name.first().is_some_and(|&b| first(b, colon)) && name.iter().skip(1).all(|&b| rest(b, colon))
            };
            proptest::prop_assert_eq!(is_label_name(&name), grammar(false));
            proptest::prop_assert_eq!(is_metric_name(&name), grammar(true));
        }

        #[test]
        fn byte_order_is_slice_order(a in proptest::collection::vec(0u8..4, 0..5), b in proptest::collection::vec(0u8..4, 0..5)) {
            proptest::prop_assert_eq!(compare_bytes(&a, &b), a.cmp(&b));
        }
    }

    #[test]
    fn empty_valued_labels_are_stripped() {
        let mut series = ts(&[("__name__", "up"), ("instance", ""), ("job", "x")], &[1]);
        strip_empty_labels(&mut series);
        let names: Vec<_> = series.labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["__name__", "job"]);
    }
}
