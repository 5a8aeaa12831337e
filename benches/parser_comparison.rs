//! Our exposition parser next to published crates, on the same 10k-series federate-like body.
//!
//! Setup checks correctness side by side (series returned, `:` names kept, escaped label value
//! unescaped) and prints one line per parser. Published crates that reject or drop the real body
//! are also timed on a "sanitized" copy they can read (`:` → `_`, `untyped` → `gauge`), and ours is
//! timed on the same copy, so every ratio compares equal input.
//!
//! Run: `cargo bench --bench parser_comparison -- --warm-up-time 1 --measurement-time 3`.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::io;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use slo_gateway::exposition::{parse_samples, Sample};

#[path = "support/mod.rs"]
mod support;
use support::{federate_body, ESCAPED, FAMILIES, SERIES};

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
