use std::borrow::Cow;

use proptest::prelude::*;

use super::*;

/// The example from "Exposition formats" / "Text format details" in the Prometheus docs, verbatim.
const SPEC_EXAMPLE: &str = r#"# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000

# Escaping in label values:
msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9

# Minimalistic line:
metric_without_timestamp_and_labels 12.47

# A weird metric from before the epoch:
something_weird{problem="division by zero"} +Inf -3982045

# A histogram, which has a pretty complex representation in the text format:
# HELP http_request_duration_seconds A histogram of the request duration.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.05"} 24054
http_request_duration_seconds_bucket{le="0.1"} 33444
http_request_duration_seconds_bucket{le="0.2"} 100392
http_request_duration_seconds_bucket{le="0.5"} 129389
http_request_duration_seconds_bucket{le="1"} 133988
http_request_duration_seconds_bucket{le="+Inf"} 144320
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320

# Finally a summary, which has a complex representation, too:
# HELP telemetry_requests_metrics_latency_microseconds A summary of the response latency.
# TYPE telemetry_requests_metrics_latency_microseconds summary
telemetry_requests_metrics_latency_microseconds{quantile="0.01"} 3102
telemetry_requests_metrics_latency_microseconds{quantile="0.05"} 3272
telemetry_requests_metrics_latency_microseconds{quantile="0.5"} 4773
telemetry_requests_metrics_latency_microseconds{quantile="0.9"} 9001
telemetry_requests_metrics_latency_microseconds{quantile="0.99"} 76656
telemetry_requests_metrics_latency_microseconds_sum 1.7560473e+07
telemetry_requests_metrics_latency_microseconds_count 2693
"#;

fn sample(line: &str) -> Sample<'_> {
    match parse_line(line) {
        Ok(Entry::Sample(s)) => s,
        other => panic!("expected a sample from {line:?}, got {other:?}"),
    }
}

fn labels<'a>(s: &'a Sample<'_>) -> Vec<(&'a str, &'a str)> {
    s.labels
        .iter()
        .map(|l| (l.name, l.value.as_ref()))
        .collect()
}

fn err(line: &str) -> ParseError {
    match parse_line(line) {
        Err(e) => e,
        Ok(entry) => panic!("expected an error from {line:?}, got {entry:?}"),
    }
}

#[test]
fn spec_example_samples() {
    let samples: Vec<_> = parse_samples(SPEC_EXAMPLE).map(Result::unwrap).collect();
    assert_eq!(samples.len(), 20);

    let s = &samples[0];
    assert_eq!(s.name, "http_requests_total");
    assert_eq!(labels(s), [("method", "post"), ("code", "200")]);
    assert_eq!(s.value, 1027.0);
    assert_eq!(s.timestamp_ms, Some(1395066363000));
    assert_eq!(samples[1].value, 3.0);

    let s = &samples[2];
    assert_eq!(s.name, "msdos_file_access_time_seconds");
    assert_eq!(
        labels(s),
        [
            ("path", r"C:\DIR\FILE.TXT"),
            ("error", "Cannot find file:\n\"FILE.TXT\"")
        ]
    );
    assert!(matches!(s.labels[0].value, Cow::Owned(_)));
    assert_eq!(s.value, 1.458255915e9);
    assert_eq!(s.timestamp_ms, None);

    let s = &samples[3];
    assert_eq!(s.name, "metric_without_timestamp_and_labels");
    assert!(s.labels.is_empty());
    assert_eq!(s.value, 12.47);

    let s = &samples[4];
    assert_eq!(labels(s), [("problem", "division by zero")]);
    assert!(matches!(s.labels[0].value, Cow::Borrowed(_)));
    assert_eq!(s.value, f64::INFINITY);
    assert_eq!(s.timestamp_ms, Some(-3982045));

    assert_eq!(labels(&samples[10]), [("le", "+Inf")]);
    assert_eq!(samples[11].name, "http_request_duration_seconds_sum");
    assert_eq!(samples[11].value, 53423.0);
    assert_eq!(samples[18].value, 1.7560473e7);
    assert_eq!(samples[19].value, 2693.0);
}

#[test]
fn spec_example_entries() {
    let entries: Vec<_> = SPEC_EXAMPLE
        .lines()
        .map(|l| parse_line(l).unwrap())
        .collect();
    assert_eq!(
        entries[0],
        Entry::Help {
            metric: "http_requests_total",
            text: Cow::Borrowed("The total number of HTTP requests.")
        }
    );
    assert_eq!(
        entries[1],
        Entry::Type {
            metric: "http_requests_total",
            kind: MetricType::Counter
        }
    );
    assert_eq!(entries[4], Entry::Blank);
    assert_eq!(entries[5], Entry::Comment);
    let types: Vec<_> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Type { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect();
    assert_eq!(
        types,
        [
            MetricType::Counter,
            MetricType::Histogram,
            MetricType::Summary
        ]
    );
}

#[test]
fn federate_shoot_availability() {
    let body = "# TYPE shoot:availability untyped\n\
        shoot:availability{cluster=\"shoot--p--a\",instance=\"\",kind=\"seed\",seed=\"aws-1\"} 1 1700000000000\n";
    let mut entries = body.lines().map(|l| parse_line(l).unwrap());
    assert_eq!(
        entries.next().unwrap(),
        Entry::Type {
            metric: "shoot:availability",
            kind: MetricType::Untyped
        }
    );
    let Some(Entry::Sample(s)) = entries.next() else {
        panic!("no sample")
    };
    assert_eq!(s.name, "shoot:availability");
    assert_eq!(
        labels(&s),
        [
            ("cluster", "shoot--p--a"),
            ("instance", ""),
            ("kind", "seed"),
            ("seed", "aws-1")
        ]
    );
    assert_eq!(s.value, 1.0);
    assert_eq!(s.timestamp_ms, Some(1_700_000_000_000));
}

#[test]
fn names_with_colons_and_nan() {
    let s = sample("shoot:apiserver_latency:percentage{cluster=\"x\"} NaN 17");
    assert_eq!(s.name, "shoot:apiserver_latency:percentage");
    assert!(s.value.is_nan());
    assert_eq!(s.timestamp_ms, Some(17));
    let s = sample(":leading:colon 0");
    assert_eq!(s.name, ":leading:colon");
    assert_eq!(
        sample("ALERTS{alertname=\"A\",alertstate=\"firing\"} 1").name,
        "ALERTS"
    );
}

#[test]
fn float_forms() {
    let cases: &[(&str, f64)] = &[
        ("0", 0.0),
        ("1e+06", 1e6),
        ("1E6", 1e6),
        ("1.5E-3", 1.5e-3),
        ("-1.5e-3", -1.5e-3),
        ("+12.5", 12.5),
        (".5", 0.5),
        ("5.", 5.0),
        ("1.458255915e9", 1.458255915e9),
        ("123456789012345678901234567890", 1.2345678901234568e29),
        ("4.9e-324", 5e-324),
        ("1.7976931348623157e308", f64::MAX),
        ("+Inf", f64::INFINITY),
        ("-Inf", f64::NEG_INFINITY),
        ("Inf", f64::INFINITY),
        ("inf", f64::INFINITY),
        ("+infinity", f64::INFINITY),
        ("-Infinity", f64::NEG_INFINITY),
    ];
    for &(text, want) in cases {
        let s = sample(&format!("m {text}")).value;
        assert_eq!(s.to_bits(), want.to_bits(), "{text}");
    }
    let z = sample("m -0").value;
    assert!(z == 0.0 && z.is_sign_negative());
    for nan in ["NaN", "nan", "NAN"] {
        assert!(sample(&format!("m {nan}")).value.is_nan());
    }
    for bad in [
        "0x1p-2", "0x10", "1_000", "1e", "e5", "-NaN", "+NaN", "--1", "1.2.3", "one", "1e5x",
    ] {
        assert_eq!(
            err(&format!("m {bad}")),
            ParseError {
                column: 3,
                kind: ParseErrorKind::InvalidValue
            },
            "{bad}"
        );
    }
    assert_eq!(err("m 1e400").kind, ParseErrorKind::ValueOutOfRange);
    assert_eq!(err("m -1e400").kind, ParseErrorKind::ValueOutOfRange);
}

#[test]
fn timestamps() {
    assert_eq!(sample("m 1 -5").timestamp_ms, Some(-5));
    assert_eq!(sample("m 1 +5").timestamp_ms, Some(5));
    assert_eq!(
        sample("m 1 9223372036854775807").timestamp_ms,
        Some(i64::MAX)
    );
    assert_eq!(
        err("m 1 9223372036854775808"),
        ParseError {
            column: 5,
            kind: ParseErrorKind::TimestampOutOfRange
        }
    );
    assert_eq!(err("m 1 1.5").kind, ParseErrorKind::InvalidTimestamp);
    assert_eq!(err("m 1 1e3").kind, ParseErrorKind::InvalidTimestamp);
    assert_eq!(
        err("m 1 2 3"),
        ParseError {
            column: 7,
            kind: ParseErrorKind::TrailingCharacters
        }
    );
}

#[test]
fn whitespace_and_label_set_forms() {
    let s = sample("  \tm {  a = \"1\" ,\tb=\"2\" , }\t 3   4 \t\r");
    assert_eq!(s.name, "m");
    assert_eq!(labels(&s), [("a", "1"), ("b", "2")]);
    assert_eq!(s.value, 3.0);
    assert_eq!(s.timestamp_ms, Some(4));
    let s = sample("m{} 1");
    assert!(s.labels.is_empty());
    let s = sample("m{a=\"b\",} 1\r\n");
    assert_eq!(labels(&s), [("a", "b")]);
    // No blank needed between '}' and the value.
    assert_eq!(sample("m{a=\"b\"}7").value, 7.0);
    assert_eq!(parse_line(""), Ok(Entry::Blank));
    assert_eq!(parse_line(" \t \r"), Ok(Entry::Blank));
}

#[test]
fn label_values() {
    let s = sample(r#"m{a="",b="π ünïcödé",c="x\\y",d="q\"q",e="l\nl",f="{}=,#"} 1"#);
    assert_eq!(
        labels(&s),
        [
            ("a", ""),
            ("b", "π ünïcödé"),
            ("c", "x\\y"),
            ("d", "q\"q"),
            ("e", "l\nl"),
            ("f", "{}=,#")
        ]
    );
    assert!(matches!(s.labels[1].value, Cow::Borrowed(_)));
    assert!(matches!(s.labels[2].value, Cow::Owned(_)));
    // An escaped backslash right before the closing quote.
    assert_eq!(labels(&sample(r#"m{a="\\"} 1"#)), [("a", "\\")]);
}

#[test]
fn comments_help_and_type() {
    assert_eq!(parse_line("#"), Ok(Entry::Comment));
    assert_eq!(parse_line("# just a comment"), Ok(Entry::Comment));
    assert_eq!(parse_line("#HELP m text"), Ok(Entry::Comment));
    assert_eq!(parse_line("# HELPER m text"), Ok(Entry::Comment));
    assert_eq!(
        err("  # TYPE"),
        ParseError {
            column: 9,
            kind: ParseErrorKind::ExpectedMetricName
        }
    );
    assert_eq!(
        parse_line("# HELP m"),
        Ok(Entry::Help {
            metric: "m",
            text: Cow::Borrowed("")
        })
    );
    assert_eq!(
        parse_line("#\tHELP  a:b   line one\\nline \\\\two\\x  \r"),
        Ok(Entry::Help {
            metric: "a:b",
            text: Cow::Owned("line one\nline \\two\\x".to_owned())
        })
    );
    for (kw, kind) in [
        ("counter", MetricType::Counter),
        ("gauge", MetricType::Gauge),
        ("histogram", MetricType::Histogram),
        ("summary", MetricType::Summary),
        ("untyped", MetricType::Untyped),
    ] {
        assert_eq!(
            parse_line(&format!("# TYPE m {kw} ")),
            Ok(Entry::Type { metric: "m", kind })
        );
        assert_eq!(kind.to_string(), kw);
    }
    assert_eq!(
        err("# TYPE m"),
        ParseError {
            column: 9,
            kind: ParseErrorKind::ExpectedMetricType
        }
    );
    assert_eq!(
        err("# TYPE m Counter"),
        ParseError {
            column: 10,
            kind: ParseErrorKind::UnknownMetricType
        }
    );
    assert_eq!(
        err("# TYPE m gauge extra"),
        ParseError {
            column: 16,
            kind: ParseErrorKind::TrailingCharacters
        }
    );
    assert_eq!(
        err("# HELP 1m text"),
        ParseError {
            column: 8,
            kind: ParseErrorKind::ExpectedMetricName
        }
    );
    assert_eq!(
        err("# HELP m-x text").kind,
        ParseErrorKind::UnexpectedAfterName('-')
    );
}

#[test]
fn error_reasons_and_columns() {
    use ParseErrorKind::*;
    let cases: &[(&str, usize, ParseErrorKind)] = &[
        ("1m 1", 1, ExpectedMetricName),
        ("{a=\"b\"} 1", 1, ExpectedMetricName),
        ("m-x 1", 2, UnexpectedAfterName('-')),
        ("m", 2, ExpectedValue),
        ("m{a=\"b\"}", 9, ExpectedValue),
        ("m{a=\"b\"}  ", 9, ExpectedValue),
        ("m{a:b=\"c\"} 1", 4, ExpectedEquals),
        ("m{a \"c\"} 1", 5, ExpectedEquals),
        ("m{1a=\"c\"} 1", 3, ExpectedLabelName),
        ("m{,} 1", 3, ExpectedLabelName),
        ("m{a=\"b\",,} 1", 9, ExpectedLabelName),
        ("m{a=\"b\"", 8, ExpectedCommaOrBrace),
        ("m{a=b} 1", 5, ExpectedLabelValue),
        ("m{a=\"b} 1", 5, UnterminatedLabelValue),
        ("m{a=\"b\\\"} 1", 5, UnterminatedLabelValue),
        ("m{a=\"b\\", 5, UnterminatedLabelValue),
        ("m{a=\"b\\t\"} 1", 7, InvalidEscape('t')),
        ("m{a=\"é\\é\"} 1", 7, InvalidEscape('é')),
        ("m{a=\"b\" c=\"d\"} 1", 9, ExpectedCommaOrBrace),
        ("m{a=\"b\",a=\"c\"} 1", 9, DuplicateLabelName),
        ("m{a=\"b\"} x", 10, InvalidValue),
        ("m 1 x", 5, InvalidTimestamp),
    ];
    for &(line, column, kind) in cases {
        assert_eq!(err(line), ParseError { column, kind }, "{line:?}");
    }
    assert_eq!(
        err("m{a=\"b\"").to_string(),
        "column 8: expected ',' or '}' after label value"
    );
    assert_eq!(
        err("m{a \"c\"} 1").to_string(),
        "column 5: expected '=' after label name"
    );
}

#[test]
fn bad_lines_do_not_stop_the_scrape() {
    let body = "# TYPE a gauge\na 1\nb{x=\"1\" 2\nc 3\r\nd{x=\"1\"} one\n\ne 5";
    let results: Vec<_> = parse_samples(body).collect();
    assert_eq!(results.len(), 5);
    assert_eq!(results[0].as_ref().unwrap().name, "a");
    let e = results[1].as_ref().unwrap_err();
    assert_eq!(e.line, 3);
    assert_eq!(e.error.kind, ParseErrorKind::ExpectedCommaOrBrace);
    assert_eq!(
        e.to_string(),
        "line 3, column 9: expected ',' or '}' after label value"
    );
    assert_eq!(results[2].as_ref().unwrap().name, "c");
    assert_eq!(results[3].as_ref().unwrap_err().line, 5);
    let last = results[4].as_ref().unwrap();
    assert_eq!((last.name, last.value), ("e", 5.0));
}

/// Runs a splitter over `chunks` and returns what it reported, owned.
fn split_all(max: usize, chunks: &[&[u8]]) -> Vec<(usize, Result<String, LineError>)> {
    let mut out = Vec::new();
    let mut s = LineSplitter::new(max);
    for chunk in chunks {
        s.push(chunk, |n, l| out.push((n, l.map(str::to_owned))));
        assert!(s.buffered() <= max + 1);
    }
    s.finish(|n, l| out.push((n, l.map(str::to_owned))));
    out
}

#[test]
fn splitter_every_split_point() {
    let text = "# TYPE a gauge\r\na{x=\"é\"} 1\n\nb 2\r\n\r\nc{y=\"\\n\"} 3 4";
    let bytes = text.as_bytes();
    let whole = split_all(1024, &[bytes]);
    let expected: Vec<_> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_owned())
        .enumerate()
        .map(|(i, l)| (i + 1, Ok(l)))
        .collect();
    assert_eq!(whole, expected);
    for i in 0..=bytes.len() {
        assert_eq!(
            split_all(1024, &[&bytes[..i], &bytes[i..]]),
            expected,
            "split at {i}"
        );
        for j in i..=bytes.len() {
            assert_eq!(
                split_all(1024, &[&bytes[..i], &bytes[i..j], &bytes[j..]]),
                expected,
                "split at {i}, {j}"
            );
        }
    }
    let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(split_all(1024, &one_by_one), expected);
}

#[test]
fn splitter_trailing_newline_and_reuse() {
    let mut s = LineSplitter::new(64);
    let mut out = Vec::new();
    s.push(b"a 1\nb 2\n", |n, l| out.push((n, l.unwrap().to_owned())));
    s.finish(|n, l| out.push((n, l.unwrap().to_owned())));
    assert_eq!(out, [(1, "a 1".to_owned()), (2, "b 2".to_owned())]);
    out.clear();
    s.push(b"c 3", |n, l| out.push((n, l.unwrap().to_owned())));
    s.finish(|n, l| out.push((n, l.unwrap().to_owned())));
    assert_eq!(out, [(1, "c 3".to_owned())]);
}

#[test]
fn splitter_overlong_lines() {
    let long = "x".repeat(40);
    let text = format!("a 1\n{long}\nb 2\n{long}\r\nc 3\n{long}");
    let bytes = text.as_bytes();
    let too_long = |line| LineError {
        line,
        error: ParseError {
            column: 17,
            kind: ParseErrorKind::LineTooLong { max: 16 },
        },
    };
    let expected = vec![
        (1, Ok("a 1".to_owned())),
        (2, Err(too_long(2))),
        (3, Ok("b 2".to_owned())),
        (4, Err(too_long(4))),
        (5, Ok("c 3".to_owned())),
        (6, Err(too_long(6))),
    ];
    for i in 0..=bytes.len() {
        assert_eq!(
            split_all(16, &[&bytes[..i], &bytes[i..]]),
            expected,
            "split at {i}"
        );
    }
    let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(split_all(16, &one_by_one), expected);
    // Exactly at the limit is fine, with or without "\r\n" split across chunks.
    let at_limit = "y".repeat(16);
    for text in [format!("{at_limit}\n"), format!("{at_limit}\r\n")] {
        let b = text.as_bytes();
        for i in 0..=b.len() {
            assert_eq!(
                split_all(16, &[&b[..i], &b[i..]]),
                vec![(1, Ok(at_limit.clone()))]
            );
        }
    }
}

#[test]
fn splitter_invalid_utf8() {
    let out = split_all(64, &[b"a 1\nb{x=\"\xff\xfe\"} 2\nc 3\n"]);
    assert_eq!(out[0], (1, Ok("a 1".to_owned())));
    assert_eq!(
        out[1],
        (
            2,
            Err(LineError {
                line: 2,
                error: ParseError {
                    column: 6,
                    kind: ParseErrorKind::InvalidUtf8
                }
            })
        )
    );
    assert_eq!(out[2], (3, Ok("c 3".to_owned())));
}

#[test]
fn write_sample_format() {
    let mut out = String::new();
    write_sample(
        &mut out,
        &Sample {
            name: "shoot:availability",
            labels: vec![
                Label {
                    name: "a",
                    value: Cow::Borrowed("x\\y\"z\nw"),
                },
                Label {
                    name: "instance",
                    value: Cow::Borrowed(""),
                },
            ],
            value: 1.0,
            timestamp_ms: Some(1_700_000_000_000),
        },
    );
    assert_eq!(
        out,
        "shoot:availability{a=\"x\\\\y\\\"z\\nw\",instance=\"\"} 1 1700000000000\n"
    );
    let v = |value: f64| {
        let mut out = String::new();
        write_sample(
            &mut out,
            &Sample {
                name: "m",
                labels: Vec::new(),
                value,
                timestamp_ms: None,
            },
        );
        out
    };
    assert_eq!(v(f64::NAN), "m NaN\n");
    assert_eq!(v(f64::INFINITY), "m +Inf\n");
    assert_eq!(v(f64::NEG_INFINITY), "m -Inf\n");
    assert_eq!(v(-0.0), "m -0\n");
    assert_eq!(v(0.25), "m 0.25\n");
    assert_eq!(v(1e300), "m 1e300\n");
    assert_eq!(v(5e-324), "m 5e-324\n");
}

fn assert_same(a: &Sample<'_>, b: &Sample<'_>) {
    assert_eq!(a.name, b.name);
    assert_eq!(a.labels, b.labels);
    assert_eq!(a.timestamp_ms, b.timestamp_ms);
    if a.value.is_nan() {
        assert!(b.value.is_nan());
    } else {
        assert_eq!(a.value.to_bits(), b.value.to_bits());
    }
}

fn value_strategy() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        (1u64..(1 << 52)).prop_map(f64::from_bits),
        (0u32..1_000_000).prop_map(f64::from),
    ]
}

fn samples_strategy() -> impl Strategy<Value = (String, Vec<(String, String)>, f64, Option<i64>)> {
    (
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,20}",
        prop::collection::btree_map(
            "[a-zA-Z_][a-zA-Z0-9_]{0,12}",
            prop_oneof![any::<String>(), "[\\\\\"\n a-z]{0,10}", "[ä€😀\\\\\"]{0,5}"],
            0..6,
        ),
        value_strategy(),
        prop::option::of(any::<i64>()),
    )
        .prop_map(|(name, labels, value, ts)| (name, labels.into_iter().collect(), value, ts))
}

proptest! {
    #[test]
    fn round_trip((name, label_pairs, value, timestamp_ms) in samples_strategy()) {
        let original = Sample {
            name: &name,
            labels: label_pairs
                .iter()
                .map(|(n, v)| Label { name: n, value: Cow::Borrowed(v.as_str()) })
                .collect(),
            value,
            timestamp_ms,
        };
        let mut text = String::new();
        write_sample(&mut text, &original);
        let parsed = match parse_line(&text) {
            Ok(Entry::Sample(s)) => s,
            other => panic!("{text:?} parsed as {other:?}"),
        };
        assert_same(&original, &parsed);
        // Also through the body parser and the splitter.
        let via_body: Vec<_> = parse_samples(&text).collect();
        prop_assert_eq!(via_body.len(), 1);
        assert_same(&original, via_body[0].as_ref().unwrap());
    }

    #[test]
    fn arbitrary_lines_never_panic(line in any::<String>()) {
        let _ = parse_line(&line);
    }

    #[test]
    fn arbitrary_bytes_through_splitter(data in prop::collection::vec(any::<u8>(), 0..300), cut in 0usize..300) {
        // Same checks as the fuzz target.
        let cut = cut.min(data.len());
        let mut s = LineSplitter::new(128);
        let mut check = |_n: usize, line: Result<&str, LineError>| {
            if let Ok(line) = line {
                if let Ok(Entry::Sample(sample)) = parse_line(line) {
                    let mut out = String::new();
                    write_sample(&mut out, &sample);
                    match parse_line(&out) {
                        Ok(Entry::Sample(again)) => assert_same(&sample, &again),
                        other => panic!("{out:?} parsed as {other:?}"),
                    }
                }
            }
        };
        s.push(&data[..cut], &mut check);
        s.push(&data[cut..], &mut check);
        s.finish(&mut check);
    }
}

proptest! {
    /// The eight-bytes-a-step scan of label values finds what a byte-by-byte scan finds, wherever
    /// the special byte sits in a word and whatever surrounds it.
    #[test]
    fn label_value_scan_matches_a_byte_scan(
        bytes in proptest::collection::vec(
            prop_oneof![Just(b'"'), Just(b'\\'), Just(b'\n'), Just(0u8), Just(0x80u8), Just(0xffu8), any::<u8>()],
            0..40,
        ),
        from in 0usize..40,
    ) {
        let from = from.min(bytes.len());
        let expected = bytes[from..]
            .iter()
            .position(|b| matches!(b, b'"' | b'\\' | b'\n'))
            .map_or(bytes.len(), |p| from + p);
        prop_assert_eq!(scan::first_of(&bytes, from, [b'"', b'\\', b'\n']), expected);
    }
}
