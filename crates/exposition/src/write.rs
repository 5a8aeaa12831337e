//! Text-format writer for single samples.

use std::fmt::Write as _;

use super::Sample;

/// Writes one sample in text format (used by the round-trip test and by the demo's simulated seed).
///
/// Appends `name{label="value",...} value [timestamp]\n` to `out`, escaping `\`, `"` and newlines in
/// label values. Values are written as Go's Prometheus writes them where it matters to readers: `NaN`,
/// `+Inf`, `-Inf`, integers without a fractional part; other floats in the shortest form that parses
/// back to the same bits. An empty label set is omitted. Labels are written in the given order and
/// not validated: writing an invalid name produces a line [`parse_line`](super::parse_line) rejects.
pub fn write_sample(out: &mut String, sample: &Sample<'_>) {
    out.push_str(sample.name);
    if !sample.labels.is_empty() {
        out.push('{');
        for (i, label) in sample.labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(label.name);
            out.push_str("=\"");
            escape_label_value(out, &label.value);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    write_value(out, sample.value);
    if let Some(ts) = sample.timestamp_ms {
        // Writing to a String cannot fail.
        let _ = write!(out, " {ts}");
    }
    out.push('\n');
}

fn escape_label_value(out: &mut String, value: &str) {
    let mut chunk = 0;
    for (i, b) in value.bytes().enumerate() {
        let escaped = match b {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            b'\n' => "\\n",
            _ => continue,
        };
        out.push_str(&value[chunk..i]);
        out.push_str(escaped);
        chunk = i + 1;
    }
    out.push_str(&value[chunk..]);
}

fn write_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        // `{:?}` is the shortest round-trip representation and switches to exponent notation for
        // very large and small magnitudes (`{}` would print 1e300 with 301 digits).
        let start = out.len();
        let _ = write!(out, "{v:?}");
        // Go prints whole numbers without ".0" ("1027", not "1027.0").
        if out[start..].ends_with(".0") {
            out.truncate(out.len() - 2);
        }
    }
}
