//! Zero-copy parser for the Prometheus text exposition format, version 0.0.4 — what a Prometheus
//! server's `/federate` endpoint returns.
//!
//! # Format
//!
//! Prometheus' text exposition format: a body is a sequence of `\n`-terminated lines, each one of:
//!
//! - a blank line (ignored);
//! - `# HELP <metric> <docstring>` (`\\` and `\n` escapes in the docstring);
//! - `# TYPE <metric> counter|gauge|histogram|summary|untyped`;
//! - any other line starting with `#` (a comment, ignored);
//! - a sample, in the spec's EBNF:
//!   `metric_name [ "{" label_name "=" '"' label_value '"' { "," label_name "=" '"' label_value '"' } [ "," ] "}" ] value [ timestamp ]`.
//!
//! Supported here:
//!
//! - metric names `[a-zA-Z_:][a-zA-Z0-9_:]*` (Gardener's recording rules are named like
//!   `shoot:availability`), label names `[a-zA-Z_][a-zA-Z0-9_]*`;
//! - label values with the escapes `\\`, `\"` and `\n`; any other escape is an error, as in
//!   `prometheus/common/expfmt`. Values are borrowed from the input and only copied (a
//!   [`Cow::Owned`](std::borrow::Cow)) when they contain an escape;
//! - values as Go's `strconv.ParseFloat` reads them, restricted as Prometheus restricts them
//!   (decimal only: no hex floats, no `_`): `1027`, `-0`, `1e+06`, `1.5E-3`, `.5`, and case-insensitive
//!   `NaN`, `Inf`, `+Inf`, `-Inf`, `Infinity`. Out-of-range values such as `1e400` are errors,
//!   as with `ParseFloat`'s `ErrRange`;
//! - an optional timestamp, a signed 64-bit integer of milliseconds since the epoch;
//! - blanks (spaces and tabs) between tokens, leading and trailing blanks, `\r\n` line endings,
//!   `{}`, and a trailing comma in a label set;
//! - duplicate label names in one sample are rejected: remote write forbids them, so a later stage
//!   would have to drop the sample anyway.
//!
//! Not supported: OpenMetrics (`# EOF`, exemplars, `_created`, float timestamps), native
//! histograms, and the quoted UTF-8 metric and label names of Prometheus 3 — `/federate` in text
//! format 0.0.4 with the default name validation emits none of them.
//!
//! # Errors
//!
//! Every error carries a 1-based column (in characters) and a precise [`ParseErrorKind`]. Errors are
//! per line: [`parse_samples`] yields `Err(LineError)` for a bad line and goes on with the next one,
//! so one malformed series does not cost the whole scrape.
//!
//! # Why hand-written
//!
//! The published crates the project evaluated either drop the `:` that recording-rule names contain
//! or were 20–130× slower (allocating per token); a federate body of tens of thousands of series is
//! parsed on every scrape. This parser does about 800 MiB/s, ~5 million series/s, on the bench's
//! federate-like body (`benches/exposition.rs`). The grammar is small and line-oriented, so a byte-level scanner without
//! dependencies is short, fast, and easy to fuzz.
//!
//! # Streaming
//!
//! [`LineSplitter`] cuts a body arriving in chunks into lines without buffering more than one
//! (bounded) partial line; feed each line to [`parse_line`].

use std::borrow::Cow;

mod parse;
mod scan;
mod split;
mod write;

#[cfg(test)]
mod tests;

pub use parse::{parse_line, parse_line_reusing, parse_samples};
pub use split::LineSplitter;
pub use write::write_sample;

/// Empties a sample's label vector and hands its allocation on for the next line (which borrows
/// from another buffer): with [`parse_line_reusing`], parsing allocates nothing per line.
pub fn recycle_labels<'b>(mut labels: Vec<Label<'_>>) -> Vec<Label<'b>> {
    labels.clear();
    // Same layout, so the standard library collects in place: no new allocation.
    labels.into_iter().map(|_| unreachable_label()).collect()
}

/// Never called: `recycle_labels` maps an empty vector.
fn unreachable_label<'b>() -> Label<'b> {
    Label {
        name: "",
        value: std::borrow::Cow::Borrowed(""),
    }
}

/// One label of a sample: a name and its (unescaped) value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label<'a> {
    /// Label name, borrowed from the input.
    pub name: &'a str,
    /// Label value with escapes resolved; borrowed unless it contained an escape.
    pub value: Cow<'a, str>,
}

/// One sample line: `name{labels} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// Metric name, borrowed from the input (may contain `:`).
    pub name: &'a str,
    /// Labels in input order; empty if the line had no label set or `{}`.
    pub labels: Vec<Label<'a>>,
    /// Sample value; may be NaN or ±Inf.
    pub value: f64,
    /// Optional timestamp in milliseconds since the Unix epoch.
    pub timestamp_ms: Option<i64>,
}

/// Metric type declared by a `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// `counter`
    Counter,
    /// `gauge`
    Gauge,
    /// `histogram`
    Histogram,
    /// `summary`
    Summary,
    /// `untyped`
    Untyped,
}

impl MetricType {
    /// The keyword used for this type in a `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Summary => "summary",
            MetricType::Untyped => "untyped",
        }
    }
}

impl std::fmt::Display for MetricType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one line of an exposition body contains.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'a> {
    /// A sample line.
    Sample(Sample<'a>),
    /// `# HELP metric text`, with `\\` and `\n` escapes of the text resolved.
    Help {
        /// Metric name the docstring belongs to.
        metric: &'a str,
        /// Docstring; borrowed unless it contained an escape.
        text: Cow<'a, str>,
    },
    /// `# TYPE metric kind`.
    Type {
        /// Metric name the type belongs to.
        metric: &'a str,
        /// Declared type.
        kind: MetricType,
    },
    /// Any other line starting with `#`.
    Comment,
    /// An empty or all-blank line.
    Blank,
}

/// Why a line could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The line (or a HELP/TYPE line after the keyword) does not start with a valid metric name.
    #[error("expected metric name")]
    ExpectedMetricName,
    /// A metric name is followed by a character that can neither continue it nor separate it.
    #[error("unexpected character {0:?} after metric name")]
    UnexpectedAfterName(char),
    /// Inside `{...}`: neither a label name nor `}` where one was required.
    #[error("expected label name or '}}'")]
    ExpectedLabelName,
    /// A label name is not followed by `=`.
    #[error("expected '=' after label name")]
    ExpectedEquals,
    /// `=` is not followed by an opening `"`.
    #[error("expected '\"' to start label value")]
    ExpectedLabelValue,
    /// A label value has no closing `"` on this line.
    #[error("unterminated label value (missing closing '\"')")]
    UnterminatedLabelValue,
    /// A label value contains a backslash escape other than `\\`, `\"` or `\n`.
    #[error("invalid escape sequence '\\{0}' in label value (allowed: \\\\, \\\", \\n)")]
    InvalidEscape(char),
    /// A label value is followed by something other than `,` or `}`.
    #[error("expected ',' or '}}' after label value")]
    ExpectedCommaOrBrace,
    /// The same label name appears twice in one sample.
    #[error("duplicate label name")]
    DuplicateLabelName,
    /// The metric name or label set is not followed by a value.
    #[error("expected sample value")]
    ExpectedValue,
    /// The value token is not a float in the accepted syntax.
    #[error("invalid sample value (expected a float, NaN, +Inf or -Inf)")]
    InvalidValue,
    /// The value is syntactically a float but outside the `f64` range (like `1e400`).
    #[error("sample value out of float64 range")]
    ValueOutOfRange,
    /// The token after the value is not an integer.
    #[error("invalid timestamp (expected integer milliseconds)")]
    InvalidTimestamp,
    /// The timestamp does not fit an `i64`.
    #[error("timestamp out of int64 range")]
    TimestampOutOfRange,
    /// Something follows the last token a line may have.
    #[error("unexpected trailing characters")]
    TrailingCharacters,
    /// A `# TYPE` line has no type after the metric name.
    #[error("expected metric type after metric name")]
    ExpectedMetricType,
    /// A `# TYPE` line names a type other than the five known ones.
    #[error("unknown metric type (expected counter, gauge, histogram, summary or untyped)")]
    UnknownMetricType,
    /// The line is not valid UTF-8 (reported by [`LineSplitter`]).
    #[error("line is not valid UTF-8")]
    InvalidUtf8,
    /// The line is longer than the splitter's limit (reported by [`LineSplitter`]); it was skipped.
    #[error("line longer than {max} bytes")]
    LineTooLong {
        /// The configured limit in bytes.
        max: usize,
    },
}

/// A parse error within one line: where (1-based column, in characters) and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {kind}")]
pub struct ParseError {
    /// 1-based column (counted in Unicode scalar values) of the offending character.
    pub column: usize,
    /// The reason.
    pub kind: ParseErrorKind,
}

/// A [`ParseError`] together with the 1-based number of the line it occurred on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {}: {}", .error.column, .error.kind)]
pub struct LineError {
    /// 1-based line number within the body.
    pub line: usize,
    /// The error within that line.
    pub error: ParseError,
}
