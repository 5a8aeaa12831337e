//! Remote Write encode (1.0 with prost, 2.0 with the symbol-table builder), the receiver's
//! per-request path without network (1.0 and 2.0 input), and the refusal of decode bombs.
//!
//! The request is shaped like what an agent sends from a Gardener seed: 2000 series × 1 sample,
//! ~8 labels each (recording-rule names with `:`, `cluster=shoot--<project>--<name>`, `seed`,
//! `instance=""` as `/federate` emits it, …), labels sorted by name.
//!
//! Run: `cargo bench --bench remote_write -- --warm-up-time 1 --measurement-time 3`.
//! Throughput is in samples (= series, one sample each); requests/s = samples/s ÷ 2000.

#![allow(clippy::unwrap_used)]

mod support;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use slo_gateway::remote_write::codec::{
    compress, compress_into, decompress_capped, decompress_capped_into,
};
use slo_gateway::remote_write::headers::Protocol;
use slo_gateway::remote_write::rewrite::{
    rewrite, rewrite_into, RewriteError, RewriteSettings, Rewritten,
};
use slo_gateway::remote_write::v2::{encode_v2_request, RequestBuilder};
use slo_gateway::remote_write::{
    decode_write_request, encode_write_request, DecodeError, ValidationLimits, WriteRequest,
};

const SERIES: usize = 2000;
const NOW_MS: i64 = 1_700_000_000_000;
/// The receiver's default `max_decoded_bytes` (32 MiB).
const MAX_DECODED: usize = 32 << 20;
const SEED: &str = "aws-eu1";

fn gardener_request() -> WriteRequest {
    support::write_request::gardener_request(SERIES, NOW_MS, SEED, 0)
}

fn settings(protocol: Protocol) -> RewriteSettings<'static> {
    RewriteSettings {
        protocol,
        limits: ValidationLimits::default(),
        max_series: 50_000,
        max_cost: MAX_DECODED,
        oldest_timestamp_ms: NOW_MS - 2 * 3_600_000,
        now_ms: NOW_MS,
        identity_label: "seed",
        identity_value: SEED,
        reject_other_identity: false,
    }
}

/// What the receiver does with one request body before forwarding (see `receiver::api`):
/// decompress, decode + validate + pin + re-encode in one pass, compress for the upstream. The
/// buffers are reused across requests as the receiver's pool does; the compressed body is copied
/// out of its scratch buffer (it is handed to the HTTP client).
fn receiver_path(body: &[u8], settings: &RewriteSettings<'_>, buffers: &mut Buffers) -> Vec<u8> {
    let len = decompress_capped_into(body, MAX_DECODED, &mut buffers.0).unwrap();
    rewrite_into(&buffers.0[..len], settings, &mut buffers.1).unwrap();
    assert_eq!(buffers.1.series.len(), SERIES);
    let written = compress_into(&buffers.1.body, &mut buffers.2);
    buffers.2[..written].to_vec()
}

/// The receiver's reusable buffers: decompressed, rewritten, compressed.
#[derive(Default)]
struct Buffers(Vec<u8>, Rewritten, Vec<u8>);

fn bench(c: &mut Criterion) {
    let request = gardener_request();
    let body = encode_write_request(&request);
    let raw_len = prost::Message::encoded_len(&request);
    let labels: usize = request.timeseries.iter().map(|s| s.labels.len()).sum();
    println!(
        "remote_write: {SERIES} series x 1 sample, {:.1} labels/series, {raw_len} B protobuf, \
         {} B snappy ({:.1} B/sample compressed, ratio {:.2})",
        labels as f64 / SERIES as f64,
        body.len(),
        body.len() as f64 / SERIES as f64,
        raw_len as f64 / body.len() as f64,
    );
    let body_v2 = encode_v2_request(&request);
    println!(
        "remote_write: the same request as Remote Write 2.0: {} B snappy ({:.1} B/sample)",
        body_v2.len(),
        body_v2.len() as f64 / SERIES as f64,
    );
    let v1 = settings(Protocol::V1);
    let v2 = settings(Protocol::V2);
    let decoded_v1 = decompress_capped(&body, MAX_DECODED).unwrap();

    let mut group = c.benchmark_group("remote_write");
    group.throughput(Throughput::Elements(SERIES as u64));
    group.bench_function("encode_2000_series", |b| {
        b.iter(|| encode_write_request(black_box(&request)))
    });
    let mut builder = RequestBuilder::new();
    group.bench_function("encode_v2_2000_series", |b| {
        b.iter(|| {
            builder.clear();
            for series in &request.timeseries {
                builder.push_series(
                    series
                        .labels
                        .iter()
                        .filter(|l| !l.value.is_empty())
                        .map(|l| (l.name.as_str(), l.value.as_str())),
                    &series.samples,
                );
            }
            builder.to_body()
        })
    });
    // prost decode into owned structs, for comparison with the zero-copy rewrite.
    group.bench_function("decode_2000_series", |b| {
        b.iter(|| decode_write_request(black_box(&body), MAX_DECODED).unwrap())
    });
    let mut out = Rewritten::default();
    group.bench_function("rewrite_2000_series", |b| {
        b.iter(|| rewrite_into(black_box(&decoded_v1), &v1, &mut out).unwrap())
    });
    let mut buffers = Buffers::default();
    group.bench_function("receiver_path_2000_series", |b| {
        b.iter(|| receiver_path(black_box(&body), &v1, &mut buffers))
    });
    group.bench_function("receiver_path_v2_2000_series", |b| {
        b.iter(|| receiver_path(black_box(&body_v2), &v2, &mut buffers))
    });

    // The amplification case: 31 MiB of empty TimeSeries in a ~1.5 MB body.
    let empty_series = compress(&[0x0a_u8, 0x00].repeat(31 << 19));
    println!(
        "remote_write: empty-series amplification body: {} B declaring 31 MiB",
        empty_series.len()
    );
    group.throughput(Throughput::Elements(1));
    group.bench_function("refuse_empty_series_amplification", |b| {
        b.iter(|| {
            let decoded = decompress_capped(black_box(&empty_series), MAX_DECODED).unwrap();
            assert!(matches!(
                rewrite(&decoded, &v1),
                Err(RewriteError::TooManySeries { .. })
            ));
        })
    });

    // A real bomb: 64 MiB of zeros compresses to ~3 MiB and declares 64 MiB, above the cap.
    let bomb = compress(&vec![0u8; 64 << 20]);
    assert!(matches!(
        decompress_capped(&bomb, MAX_DECODED),
        Err(DecodeError::TooLarge { .. })
    ));
    println!(
        "remote_write: snappy bomb of {} B declares 64 MiB; cap {MAX_DECODED} B",
        bomb.len()
    );
    group.bench_function("decompress_capped_refuses_bomb", |b| {
        b.iter(|| decompress_capped(black_box(&bomb), MAX_DECODED).is_err())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
