//! Our exposition parser next to published crates, on the same 10k-series federate-like body.
//!
//! Setup checks correctness side by side (series returned, `:` names kept, escaped label value
//! unescaped) and prints one line per parser. Published crates that reject or drop the real body
//! are also timed on a "sanitized" copy they can read (`:` → `_`, `untyped` → `gauge`), and ours is
//! timed on the same copy, so every ratio compares equal input.
//!
//! Run: `cargo bench --bench parser_comparison -- --warm-up-time 1 --measurement-time 3`.

#![allow(clippy::unwrap_used)]

use std::borrow::Cow;
use std::hint::black_box;
use std::io;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use slo_gateway::exposition::{parse_samples, write_sample, Label, Sample};

const SERIES: usize = 10_000;
const FAMILIES: [(&str, &[&str]); 5] = [
    ("shoot:availability", &["kind"]),
    ("shoot:apiserver_latency:percentage", &[]),
    ("apiserver_request_total", &["code", "verb", "resource"]),
    ("probe_success", &["job"]),
    ("garden_shoot_condition", &["condition", "operation"]),
];
const ESCAPED: &str = "weird \"quoted\"\\path";

/// Same body as `benches/exposition.rs`: TYPE lines, recording-rule names with colons, 5–8
/// labels including `instance=""`, scrape timestamps, some escapes and NaN.
fn federate_body() -> String {
    let per_family = SERIES / FAMILIES.len();
    let mut out = String::new();
    for (f, (name, extra)) in FAMILIES.iter().enumerate() {
        out.push_str("# TYPE ");
        out.push_str(name);
        out.push_str(" untyped\n");
        for i in 0..per_family {
            let cluster = format!("shoot--project-{}--cluster-{}", i % 97, i);
            let extra_values: Vec<String> = extra
                .iter()
                .enumerate()
                .map(|(k, _)| match (f, k) {
                    (2, 2) if i % 50 == 0 => ESCAPED.to_owned(),
                    _ => format!("v{}", (i + k) % 7),
                })
                .collect();
            let mut labels = vec![
                Label {
                    name: "cluster",
                    value: Cow::Borrowed(cluster.as_str()),
                },
                Label {
                    name: "instance",
                    value: Cow::Borrowed(""),
                },
                Label {
                    name: "job",
                    value: Cow::Borrowed("shoot-prometheus"),
                },
                Label {
                    name: "project",
                    value: Cow::Borrowed("project"),
                },
                Label {
                    name: "seed",
                    value: Cow::Borrowed("aws-eu1"),
                },
            ];
            labels.extend(
                extra
                    .iter()
                    .zip(&extra_values)
                    .filter(|(n, _)| **n != "job")
                    .map(|(n, v)| Label {
                        name: n,
                        value: Cow::Borrowed(v.as_str()),
                    }),
            );
            let value = match f {
                0 | 3 => (i % 2) as f64,
                1 if i % 100 == 0 => f64::NAN,
                1 => (i as f64) / 1234.5,
                _ => (i * 7919) as f64,
            };
            write_sample(
                &mut out,
                &Sample {
                    name,
                    labels,
                    value,
                    timestamp_ms: Some(1_700_000_000_000 + i as i64),
                },
            );
        }
    }
    out
}

/// A copy the published crates can read: no `:` in names, no `untyped` TYPE lines.
/// (No label value contains `:`, so a global replace only touches names.)
fn sanitized(body: &str) -> String {
    body.replace(':', "_").replace(" untyped\n", " gauge\n")
}

fn colon_names() -> usize {
    FAMILIES.iter().filter(|(n, _)| n.contains(':')).count() * (SERIES / FAMILIES.len())
}

// --- the parsers, each producing its own owned or borrowed result for the whole body ---

fn ours(body: &str) -> Vec<Sample<'_>> {
    parse_samples(body).filter_map(Result::ok).collect()
}

fn prometheus_parse(body: &str) -> prometheus_parse::Scrape {
    // Its API takes owned lines (and calls `Utc::now()` once per parse for lines without a
    // timestamp).
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok::<_, io::Error>(l.to_owned()))).unwrap()
}

fn openmetrics_parser(
    body: &str,
) -> Result<
    openmetrics_parser::MetricsExposition<
        openmetrics_parser::PrometheusType,
        openmetrics_parser::PrometheusValue,
    >,
    openmetrics_parser::ParseError,
> {
    openmetrics_parser::prometheus::parse_prometheus(body)
}

// --- correctness, side by side ---

fn check(body: &str, what: &str) -> Vec<String> {
    let mut notes = Vec::new();
    let colon = if what == "federate" { colon_names() } else { 0 };

    let s = ours(body);
    let kept = s.iter().filter(|s| s.name.contains(':')).count();
    let esc = s
        .iter()
        .any(|s| s.labels.iter().any(|l| l.value == ESCAPED));
    assert_eq!(s.len(), SERIES);
    assert_eq!(kept, colon);
    assert!(esc);
    notes.push(format!(
        "[{what}] slo_gateway::exposition: {} series, {kept}/{colon} `:` names kept, escaped value unescaped: {esc}",
        s.len()
    ));

    let p = prometheus_parse(body);
    let kept = p.samples.iter().filter(|s| s.metric.contains(':')).count();
    let esc = p
        .samples
        .iter()
        .any(|s| s.labels.values().any(|v| v == ESCAPED));
    let raw = p
        .samples
        .iter()
        .find_map(|s| s.labels.get("resource").filter(|v| v.contains('\\')))
        .map(str::to_owned);
    notes.push(format!(
        "[{what}] prometheus-parse 0.2: {} series{}, {kept}/{colon} `:` names kept, escaped value unescaped: {esc}{}",
        p.samples.len(),
        if p.samples.len() < SERIES { " (DROPS lines it cannot match)" } else { "" },
        raw.map(|r| format!(" (returns {r:?})")).unwrap_or_default(),
    ));

    match openmetrics_parser(body) {
        Ok(e) => {
            let samples: Vec<_> = e
                .families
                .values()
                .flat_map(|f| f.iter_samples().map(move |s| (f, s)))
                .collect();
            let kept = e
                .families
                .values()
                .filter(|f| f.family_name.contains(':'))
                .map(|f| f.iter_samples().count())
                .sum::<usize>();
            let esc = samples.iter().any(|(_, s)| {
                s.get_labelset()
                    .is_ok_and(|l| l.iter_values().any(|v| v == ESCAPED))
            });
            let raw = samples.iter().find_map(|(_, s)| {
                s.get_labelset()
                    .ok()?
                    .iter_values()
                    .find(|v| v.contains('\\'))
                    .cloned()
            });
            notes.push(format!(
                "[{what}] openmetrics-parser 0.4: {} series, {kept}/{colon} `:` names kept, escaped value unescaped: {esc}{}",
                samples.len(),
                raw.map(|r| format!(" (returns {r:?})")).unwrap_or_default(),
            ));
        }
        Err(e) => {
            // Which of the two features is refused: `:` names, or the `untyped` TYPE lines?
            let colons_only = openmetrics_parser(&body.replace(" untyped\n", " gauge\n")).is_ok();
            let untyped_only = openmetrics_parser(&body.replace(':', "_")).is_ok();
            notes.push(format!(
                "[{what}] openmetrics-parser 0.4: REJECTS the whole body ({}); \
                 with `:` names alone it {}, with `untyped` alone it {}",
                e.to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
                if colons_only { "parses" } else { "fails" },
                if untyped_only { "parses" } else { "fails" },
            ));
        }
    }
    notes
}

fn bench(c: &mut Criterion) {
    let body = federate_body();
    let clean = sanitized(&body);
    for note in check(&body, "federate")
        .into_iter()
        .chain(check(&clean, "sanitized"))
    {
        println!("parser_comparison: {note}");
    }
    let om_reads_federate = openmetrics_parser(&body).is_ok();

    let mut group = c.benchmark_group("parser_comparison");
    // The slowest parser takes tens of ms per body: flat sampling keeps runs short.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    for (input, text) in [("federate", &body), ("sanitized", &clean)] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::new("slo_gateway", input), text, |b, t| {
            b.iter(|| ours(black_box(t)).len())
        });
        group.bench_with_input(BenchmarkId::new("prometheus_parse", input), text, |b, t| {
            b.iter(|| prometheus_parse(black_box(t)).samples.len())
        });
        if input == "sanitized" || om_reads_federate {
            group.bench_with_input(
                BenchmarkId::new("openmetrics_parser", input),
                text,
                |b, t| b.iter(|| openmetrics_parser(black_box(t)).map(|e| e.families.len())),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
