//! The agent's per-scrape hot path, per sample: split the federate body into lines, parse,
//! normalise, look the series up in the state, cut lanes and requests, encode protobuf + snappy.
//! The body is the 10k-series federate body of `benches/exposition.rs`, scraped again and again
//! (every series known, every sample newer: the steady state of a seed).
//!
//! Run: `cargo bench --bench agent -- --warm-up-time 1 --measurement-time 5`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use slo_gateway::agent::HotPath;

#[path = "support/mod.rs"]
mod support;
use support::{federate_body, SERIES};

fn bench(c: &mut Criterion) {
    let body = federate_body();
    let mut group = c.benchmark_group("agent_hot_path");
    group.throughput(Throughput::Elements(SERIES as u64));
    let mut hot = HotPath::new(&[("landscape", "live")]);
    let mut ts = 1_700_000_000_000i64;
    assert_eq!(hot.scrape(body.as_bytes(), ts), SERIES);
    group.bench_function("scrape_parse_state_10k_series", |b| {
        b.iter(|| {
            ts += 15_000;
            black_box(hot.scrape(black_box(body.as_bytes()), ts))
        })
    });
    group.bench_function("scrape_parse_state_batch_encode_10k_series", |b| {
        b.iter(|| {
            ts += 15_000;
            hot.scrape(black_box(body.as_bytes()), ts);
            black_box(hot.encode(4, 2_000))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
