//! Line parser: one `&str` line in, one [`Entry`] out, borrowing from the line.

use std::borrow::Cow;

use super::scan::first_of;
use super::{Entry, Label, LineError, MetricType, ParseError, ParseErrorKind, Sample};

/// Labels most federated series carry fit without regrowing (Gardener's have 4–8).
const LABELS_CAPACITY: usize = 8;

/// Parses one line of a text-format body.
///
/// `line` should not contain the line terminator, but a trailing `\r`, `\n` or `\r\n` is tolerated
/// (like any trailing blanks), so the output of [`write_sample`](super::write_sample) can be fed back
/// directly. Leading blanks are ignored.
///
/// # Errors
///
/// A [`ParseError`] with the 1-based column and reason of the first problem found.
pub fn parse_line(line: &str) -> Result<Entry<'_>, ParseError> {
    parse_line_reusing(line, Vec::new())
}

/// [`parse_line`] that puts a sample's labels into `labels` (cleared first) instead of a new
/// vector: a caller that hands the vector of the previous sample back (see
/// [`recycle_labels`](super::recycle_labels)) parses without allocating.
///
/// # Errors
///
/// As [`parse_line`].
pub fn parse_line_reusing<'a>(
    line: &'a str,
    labels: Vec<super::Label<'a>>,
) -> Result<Entry<'a>, ParseError> {
    let bytes = line.as_bytes();
    // Trailing whitespace is insignificant; trimming once up front lets every later step treat
    // "end of input" as "end of line".
    let mut end = bytes.len();
    while end > 0 && matches!(bytes[end - 1], b' ' | b'\t' | b'\r' | b'\n') {
        end -= 1;
    }
    let p = Parser {
        line,
        b: &bytes[..end],
    };
    let start = p.skip_blanks(0);
    match p.b.get(start) {
        None => Ok(Entry::Blank),
        Some(b'#') => p.meta(start + 1),
        Some(_) => p.sample(start, labels).map(Entry::Sample),
    }
}

/// Parses a whole body and yields its samples, skipping HELP, TYPE, comment and blank lines.
///
/// A bad line yields `Err(LineError)` with its 1-based line number; iteration continues with the next
/// line. Lines end at `\n`; a `\r` before it is ignored; a last line without `\n` is parsed too.
pub fn parse_samples(text: &str) -> impl Iterator<Item = Result<Sample<'_>, LineError>> {
    text.split('\n')
        .enumerate()
        .filter_map(|(idx, line)| match parse_line(line) {
            Ok(Entry::Sample(sample)) => Some(Ok(sample)),
            Ok(_) => None,
            Err(error) => Some(Err(LineError {
                line: idx + 1,
                error,
            })),
        })
}

/// Scanner state for one line: the full line (for slicing and columns) and its bytes with trailing
/// whitespace removed.
struct Parser<'a> {
    line: &'a str,
    b: &'a [u8],
}

fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// Byte classes of names, one table lookup per byte instead of a chain of range checks.
const METRIC_START: u8 = 1;
const METRIC_CHAR: u8 = 2;
const LABEL_START: u8 = 4;
const LABEL_CHAR: u8 = 8;

const CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut c = 0usize;
    while c < 256 {
        let b = c as u8;
        let alpha = b.is_ascii_alphabetic() || b == b'_';
        let digit = b.is_ascii_digit();
        let mut class = 0;
        if alpha || b == b':' {
            class |= METRIC_START | METRIC_CHAR;
        }
        if digit {
            class |= METRIC_CHAR | LABEL_CHAR;
        }
        if alpha {
            class |= LABEL_START | LABEL_CHAR;
        }
        table[c] = class;
        c += 1;
    }
    table
};

fn is_metric_start(c: u8) -> bool {
    CLASSES[usize::from(c)] & METRIC_START != 0
}

fn is_metric_char(c: u8) -> bool {
    CLASSES[usize::from(c)] & METRIC_CHAR != 0
}

fn is_label_start(c: u8) -> bool {
    CLASSES[usize::from(c)] & LABEL_START != 0
}

fn is_label_char(c: u8) -> bool {
    CLASSES[usize::from(c)] & LABEL_CHAR != 0
}

impl<'a> Parser<'a> {
    /// Builds an error at byte offset `at`, converting it to a 1-based character column. Only runs on
    /// the error path, so the character count costs nothing on good input.
    fn err(&self, at: usize, kind: ParseErrorKind) -> ParseError {
        let at = at.min(self.line.len());
        // `at` is always a char boundary: the scanner only stops on ASCII bytes or at the end.
        let column = self.line.get(..at).map_or(at, |s| s.chars().count()) + 1;
        ParseError { column, kind }
    }

    /// The character at byte offset `at` (for error messages).
    fn char_at(&self, at: usize) -> char {
        self.line
            .get(at..)
            .and_then(|s| s.chars().next())
            .unwrap_or('\u{FFFD}')
    }

    fn skip_blanks(&self, mut i: usize) -> usize {
        while i < self.b.len() && is_blank(self.b[i]) {
            i += 1;
        }
        i
    }

    /// End of the token (run of non-blank bytes) starting at `i`.
    fn token_end(&self, mut i: usize) -> usize {
        while i < self.b.len() && !is_blank(self.b[i]) {
            i += 1;
        }
        i
    }

    /// End of a metric name starting at `i`, or `i` if there is none.
    fn metric_name_end(&self, i: usize) -> usize {
        if i >= self.b.len() || !is_metric_start(self.b[i]) {
            return i;
        }
        let mut j = i + 1;
        while j < self.b.len() && is_metric_char(self.b[j]) {
            j += 1;
        }
        j
    }

    /// `# ...` lines: HELP, TYPE, or a plain comment. `i` is just after the `#`.
    fn meta(&self, i: usize) -> Result<Entry<'a>, ParseError> {
        // As in Prometheus' lexer, `#HELP` (no blank after `#`) is an ordinary comment.
        if i >= self.b.len() || !is_blank(self.b[i]) {
            return Ok(Entry::Comment);
        }
        let kw_start = self.skip_blanks(i);
        let kw_end = self.token_end(kw_start);
        let is_help = match &self.b[kw_start..kw_end] {
            b"HELP" => true,
            b"TYPE" => false,
            _ => return Ok(Entry::Comment),
        };
        let name_start = self.skip_blanks(kw_end);
        let name_end = self.metric_name_end(name_start);
        if name_end == name_start {
            return Err(self.err(name_start, ParseErrorKind::ExpectedMetricName));
        }
        if name_end < self.b.len() && !is_blank(self.b[name_end]) {
            return Err(self.err(
                name_end,
                ParseErrorKind::UnexpectedAfterName(self.char_at(name_end)),
            ));
        }
        let metric = &self.line[name_start..name_end];
        let rest = self.skip_blanks(name_end);
        if is_help {
            let text = &self.line[rest..self.b.len()];
            return Ok(Entry::Help {
                metric,
                text: unescape_help(text),
            });
        }
        if rest >= self.b.len() {
            return Err(self.err(rest, ParseErrorKind::ExpectedMetricType));
        }
        let kind_end = self.token_end(rest);
        let kind = match &self.b[rest..kind_end] {
            b"counter" => MetricType::Counter,
            b"gauge" => MetricType::Gauge,
            b"histogram" => MetricType::Histogram,
            b"summary" => MetricType::Summary,
            b"untyped" => MetricType::Untyped,
            _ => return Err(self.err(rest, ParseErrorKind::UnknownMetricType)),
        };
        let after = self.skip_blanks(kind_end);
        if after < self.b.len() {
            return Err(self.err(after, ParseErrorKind::TrailingCharacters));
        }
        Ok(Entry::Type { metric, kind })
    }

    /// A sample line starting at byte `i` (first non-blank).
    fn sample(&self, i: usize, mut labels: Vec<Label<'a>>) -> Result<Sample<'a>, ParseError> {
        labels.clear();
        let name_end = self.metric_name_end(i);
        if name_end == i {
            return Err(self.err(i, ParseErrorKind::ExpectedMetricName));
        }
        let name = &self.line[i..name_end];
        let mut pos = self.skip_blanks(name_end);
        if self.b.get(pos) == Some(&b'{') {
            if labels.capacity() == 0 {
                labels.reserve_exact(LABELS_CAPACITY);
            }
            self.labels(pos + 1, &mut pos, &mut labels)?;
            pos = self.skip_blanks(pos);
        } else if pos == name_end && pos < self.b.len() {
            return Err(self.err(pos, ParseErrorKind::UnexpectedAfterName(self.char_at(pos))));
        }
        if pos >= self.b.len() {
            return Err(self.err(pos, ParseErrorKind::ExpectedValue));
        }
        let value_end = self.token_end(pos);
        let value = parse_value(&self.line[pos..value_end]).map_err(|kind| self.err(pos, kind))?;
        let ts_start = self.skip_blanks(value_end);
        let timestamp_ms = if ts_start < self.b.len() {
            let ts_end = self.token_end(ts_start);
            let ts = parse_timestamp(&self.line[ts_start..ts_end])
                .map_err(|kind| self.err(ts_start, kind))?;
            let after = self.skip_blanks(ts_end);
            if after < self.b.len() {
                return Err(self.err(after, ParseErrorKind::TrailingCharacters));
            }
            Some(ts)
        } else {
            None
        };
        Ok(Sample {
            name,
            labels,
            value,
            timestamp_ms,
        })
    }

    /// The label set after `{` (at `i`); sets `end` to just past the closing `}`.
    fn labels(
        &self,
        mut i: usize,
        end: &mut usize,
        labels: &mut Vec<Label<'a>>,
    ) -> Result<(), ParseError> {
        loop {
            i = self.skip_blanks(i);
            if self.b.get(i) == Some(&b'}') {
                *end = i + 1;
                return Ok(());
            }
            // Label name.
            if i >= self.b.len() || !is_label_start(self.b[i]) {
                return Err(self.err(i, ParseErrorKind::ExpectedLabelName));
            }
            let name_start = i;
            i += 1;
            while i < self.b.len() && is_label_char(self.b[i]) {
                i += 1;
            }
            let name = &self.line[name_start..i];
            i = self.skip_blanks(i);
            if self.b.get(i) != Some(&b'=') {
                return Err(self.err(i, ParseErrorKind::ExpectedEquals));
            }
            i = self.skip_blanks(i + 1);
            if self.b.get(i) != Some(&b'"') {
                return Err(self.err(i, ParseErrorKind::ExpectedLabelValue));
            }
            let (value, after) = self.label_value(i)?;
            // Quadratic, but label sets are small and this avoids any allocation.
            if labels.iter().any(|l| l.name == name) {
                return Err(self.err(name_start, ParseErrorKind::DuplicateLabelName));
            }
            labels.push(Label { name, value });
            i = self.skip_blanks(after);
            match self.b.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => {
                    *end = i + 1;
                    return Ok(());
                }
                _ => return Err(self.err(i, ParseErrorKind::ExpectedCommaOrBrace)),
            }
        }
    }

    /// A quoted label value whose opening `"` is at `open`. Returns the value and the offset after
    /// the closing quote. Borrows unless an escape forces a copy.
    fn label_value(&self, open: usize) -> Result<(Cow<'a, str>, usize), ParseError> {
        let start = open + 1;
        // Fast path: scan for the closing quote; most values contain no backslash.
        let mut i = first_of(self.b, start, [b'"', b'\\', b'\n']);
        match self.b.get(i) {
            Some(b'"') => return Ok((Cow::Borrowed(&self.line[start..i]), i + 1)),
            Some(b'\\') => {}
            _ => return Err(self.err(open, ParseErrorKind::UnterminatedLabelValue)),
        }
        // Slow path: at least one escape. Copy chunks between escapes.
        let mut out = String::with_capacity(i - start + 16);
        let mut chunk = start;
        while i < self.b.len() {
            match self.b[i] {
                b'"' => {
                    out.push_str(&self.line[chunk..i]);
                    return Ok((Cow::Owned(out), i + 1));
                }
                b'\\' => {
                    out.push_str(&self.line[chunk..i]);
                    let replacement = match self.b.get(i + 1) {
                        Some(b'\\') => '\\',
                        Some(b'"') => '"',
                        Some(b'n') => '\n',
                        Some(_) => {
                            return Err(
                                self.err(i, ParseErrorKind::InvalidEscape(self.char_at(i + 1)))
                            )
                        }
                        None => break,
                    };
                    out.push(replacement);
                    i += 2;
                    chunk = i;
                }
                b'\n' => break,
                _ => i += 1,
            }
        }
        Err(self.err(open, ParseErrorKind::UnterminatedLabelValue))
    }
}

/// Resolves `\\` and `\n` in HELP text. Other escapes are kept verbatim, as Prometheus does: HELP is
/// informational and not worth an error.
fn unescape_help(text: &str) -> Cow<'_, str> {
    if !text.as_bytes().contains(&b'\\') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

/// The value of `b` when it is 1 to `max_digits` (at most 19) ASCII digits and nothing else: the
/// fast path of values and timestamps, which skips the general parsers for plain integers.
fn unsigned_decimal(b: &[u8], max_digits: usize) -> Option<u64> {
    debug_assert!(max_digits <= 19, "20 digits may overflow a u64");
    if b.is_empty() || b.len() > max_digits || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        b.iter()
            .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0')),
    )
}

/// Parses a sample value the way Prometheus does: Go's `strconv.ParseFloat` minus hex floats and
/// `_` (Rust's grammar lacks those too), with signed NaN and out-of-range values rejected as Go does.
fn parse_value(s: &str) -> Result<f64, ParseErrorKind> {
    let b = s.as_bytes();
    // Fast path for the common small integers (counters, 0/1 gauges): exact in f64 up to 15 digits.
    if let Some(n) = unsigned_decimal(b, 15) {
        return Ok(n as f64);
    }
    let v: f64 = s.parse().map_err(|_| ParseErrorKind::InvalidValue)?;
    let unsigned = s.strip_prefix(['+', '-']);
    if v.is_nan() && unsigned.is_some() {
        // Go accepts "NaN" but not "+NaN"/"-NaN".
        return Err(ParseErrorKind::InvalidValue);
    }
    if v.is_infinite() {
        let body = unsigned.unwrap_or(s);
        if !body.starts_with(['i', 'I']) {
            // A finite literal that overflowed, like 1e400: Go reports ErrRange.
            return Err(ParseErrorKind::ValueOutOfRange);
        }
    }
    Ok(v)
}

/// Parses an `int64` millisecond timestamp (optional sign, decimal digits).
fn parse_timestamp(s: &str) -> Result<i64, ParseErrorKind> {
    use std::num::IntErrorKind;
    // Fast path for what every federate line carries: an unsigned 13-digit millisecond time (18
    // digits never overflow an i64).
    if let Some(n) = unsigned_decimal(s.as_bytes(), 18) {
        return Ok(n as i64);
    }
    s.parse::<i64>().map_err(|e| match e.kind() {
        IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => {
            ParseErrorKind::TimestampOutOfRange
        }
        _ => ParseErrorKind::InvalidTimestamp,
    })
}
