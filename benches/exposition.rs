//! Parser throughput on a federate-like body of 10k series.
//!
//! Run: `cargo bench --bench exposition -- --warm-up-time 1 --measurement-time 3`.

use std::borrow::Cow;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use slo_gateway::exposition::{
    parse_line, parse_samples, write_sample, Entry, Label, LineSplitter, Sample,
};

const SERIES: usize = 10_000;

/// A body shaped like the seed aggregate Prometheus' `/federate` answer: TYPE lines, recording-rule
/// names with colons, 5–8 labels including `instance=""`, scrape timestamps, some escapes and NaN.
fn federate_body() -> String {
    let families = [
        ("shoot:availability", &["kind"][..]),
        ("shoot:apiserver_latency:percentage", &[][..]),
        ("apiserver_request_total", &["code", "verb", "resource"][..]),
        ("probe_success", &["job"][..]),
        ("garden_shoot_condition", &["condition", "operation"][..]),
    ];
    let per_family = SERIES / families.len();
    let mut out = String::new();
    for (f, (name, extra)) in families.iter().enumerate() {
        out.push_str("# TYPE ");
        out.push_str(name);
        out.push_str(" untyped\n");
        for i in 0..per_family {
            let cluster = format!("shoot--project-{}--cluster-{}", i % 97, i);
            let extra_values: Vec<String> = extra
                .iter()
                .enumerate()
                .map(|(k, _)| match (f, k) {
                    (2, 2) if i % 50 == 0 => "weird \"quoted\"\\path".to_owned(),
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

fn bench(c: &mut Criterion) {
    let body = federate_body();
    assert_eq!(parse_samples(&body).filter(|r| r.is_ok()).count(), SERIES);
    let mut group = c.benchmark_group("exposition");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("parse_samples_10k_series", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for s in parse_samples(black_box(&body)) {
                n += s.map_or(0, |s| s.labels.len());
            }
            n
        })
    });
    group.bench_function("splitter_64k_chunks_10k_series", |b| {
        let mut splitter = LineSplitter::new(64 * 1024);
        b.iter(|| {
            let mut n = 0usize;
            for chunk in black_box(body.as_bytes()).chunks(64 * 1024) {
                splitter.push(chunk, |_, line| {
                    if let Ok(Ok(Entry::Sample(s))) = line.map(parse_line) {
                        n += s.labels.len();
                    }
                });
            }
            splitter.finish(|_, _| {});
            n
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
