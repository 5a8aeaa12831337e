//! Parser throughput on a federate-like body of 10k series.
//!
//! Run: `cargo bench --bench exposition -- --warm-up-time 1 --measurement-time 3`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use slo_gateway::exposition::{
    parse_line, parse_line_reusing, parse_samples, recycle_labels, Entry, LineSplitter,
};

#[path = "support/mod.rs"]
mod support;
use support::{federate_body, SERIES};

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
    // The agent's own path (crates/agent/src/series.rs): one label vector handed from line to
    // line, so parsing allocates nothing.
    group.bench_function("parse_line_reusing_10k_series", |b| {
        b.iter(|| {
            let mut n = 0usize;
            let mut labels = Vec::new();
            for line in black_box(&body).split('\n') {
                if let Ok(Entry::Sample(s)) = parse_line_reusing(line, recycle_labels(labels)) {
                    n += s.labels.len();
                    labels = recycle_labels(s.labels);
                } else {
                    labels = Vec::new();
                }
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
