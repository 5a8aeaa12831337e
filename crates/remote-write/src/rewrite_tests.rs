//! The rewrite against a reference built from prost-decoded requests, for 1.0 and 2.0 input, and
//! the cost model against amplifying inputs.

use std::collections::BTreeMap;

use proptest::prelude::*;
use prost::Message;

use super::*;
use crate::proto::v1::{Label, Sample, TimeSeries, WriteRequest};
use crate::v2::RequestBuilder;
use crate::validate::strip_empty_labels;

const NOW: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

fn settings(protocol: Protocol) -> RewriteSettings<'static> {
    RewriteSettings {
        protocol,
        limits: ValidationLimits {
            max_labels_per_series: 4,
            ..ValidationLimits::default()
        },
        max_series: 1000,
        max_cost: 1 << 20,
        oldest_timestamp_ms: NOW - 2 * HOUR,
        now_ms: NOW,
        identity_label: "seed",
        identity_value: "aws-1",
        reject_other_identity: false,
    }
}

fn series(labels: &[(&str, &str)], timestamps: &[i64]) -> TimeSeries {
    let samples: Vec<(f64, i64)> = timestamps.iter().map(|&t| (1.5, t)).collect();
    crate::test_series(labels, &samples)
}

fn v1_bytes(timeseries: Vec<TimeSeries>) -> Vec<u8> {
    WriteRequest {
        timeseries,
        metadata: vec![],
    }
    .encode_to_vec()
}

fn v2_bytes(request: &WriteRequest) -> Vec<u8> {
    let mut builder = RequestBuilder::new();
    for s in &request.timeseries {
        builder.push_series(
            s.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())),
            &s.samples,
        );
    }
    let mut raw = Vec::new();
    builder.encode_into(&mut raw);
    raw
}

fn decoded(rewritten: &Rewritten) -> Vec<TimeSeries> {
    WriteRequest::decode(rewritten.body.as_slice())
        .unwrap()
        .timeseries
}

/// The same rules spelled out on prost types: strip, validate, pin, drop old samples.
fn reference(
    request: &WriteRequest,
    s: &RewriteSettings<'_>,
) -> Result<(Vec<TimeSeries>, BTreeMap<Refusal, u64>), RewriteError> {
    let mut admitted = Vec::new();
    let mut refused: BTreeMap<Refusal, u64> = BTreeMap::new();
    for series in &request.timeseries {
        let mut series = series.clone();
        strip_empty_labels(&mut series);
        let n = series.samples.len() as u64;
        let pairs: Vec<(&[u8], &[u8])> = series
            .labels
            .iter()
            .map(|l| (l.name.as_bytes(), l.value.as_bytes()))
            .collect();
        let checked = validate_labels(&pairs, &s.limits).and_then(|name| {
            validate_timestamps(
                name,
                series.samples.iter().map(|x| x.timestamp),
                &s.limits,
                s.now_ms,
            )
        });
        if let Err(e) = checked {
            *refused.entry(e.reason()).or_default() += n;
            continue;
        }
        match series
            .labels
            .binary_search_by(|l| l.name.as_str().cmp(s.identity_label))
        {
            Ok(i) if series.labels[i].value != s.identity_value => {
                if s.reject_other_identity {
                    return Err(RewriteError::OtherIdentity {
                        label: s.identity_label.into(),
                        claimed: series.labels[i].value.clone(),
                        actual: s.identity_value.into(),
                    });
                }
                series.labels[i].value = s.identity_value.into();
            }
            Ok(_) => {}
            Err(i) => {
                if series.labels.len() >= s.limits.max_labels_per_series {
                    *refused.entry(Refusal::TooManyLabels).or_default() += n;
                    continue;
                }
                series.labels.insert(
                    i,
                    Label {
                        name: s.identity_label.into(),
                        value: s.identity_value.into(),
                    },
                );
            }
        }
        let old = series
            .samples
            .iter()
            .filter(|x| x.timestamp < s.oldest_timestamp_ms)
            .count();
        if old > 0 {
            *refused.entry(Refusal::TooOld).or_default() += old as u64;
        }
        series.samples.drain(..old);
        if !series.samples.is_empty() {
            admitted.push(series);
        }
    }
    Ok((admitted, refused))
}

fn refusals(rewritten: &Rewritten) -> BTreeMap<Refusal, u64> {
    rewritten.refused.by_reason.iter().copied().collect()
}

fn same_series(a: &[TimeSeries], b: &[TimeSeries]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.labels == y.labels
                && x.samples.len() == y.samples.len()
                && x.samples.iter().zip(&y.samples).all(|(p, q)| {
                    p.timestamp == q.timestamp && p.value.to_bits() == q.value.to_bits()
                })
        })
}

fn arbitrary_series() -> impl Strategy<Value = TimeSeries> {
    let name = prop::sample::select(vec![
        "__name__",
        "__name__",
        "job",
        "seed",
        "a",
        "zone",
        "__tenant__",
        "1bad",
    ]);
    let value = prop::sample::select(vec!["up", "x", "", "aws-1", "other", "bad-name"]);
    let timestamp = prop::sample::select(vec![
        NOW - 3 * HOUR,
        NOW - 2 * HOUR - 1,
        NOW - 2 * HOUR,
        NOW - HOUR,
        NOW,
        NOW + 20 * 60_000,
        0,
    ]);
    (
        prop::collection::vec((name, value), 0..6),
        any::<bool>(),
        prop::collection::vec((timestamp, any::<f64>()), 0..4),
        any::<bool>(),
    )
        .prop_map(|(mut labels, sort, mut samples, sort_samples)| {
            if sort {
                labels.sort();
                labels.dedup_by_key(|l| l.0);
            }
            if sort_samples {
                samples.sort_by_key(|s| s.0);
                samples.dedup_by_key(|s| s.0);
            }
            TimeSeries {
                labels: labels
                    .into_iter()
                    .map(|(n, v)| Label {
                        name: n.into(),
                        value: v.into(),
                    })
                    .collect(),
                samples: samples
                    .into_iter()
                    // prost drops a -0.0 value on encode (it compares with 0.0): keep inputs
                    // that survive a 1.0 encoding unchanged.
                    .map(|(timestamp, value)| Sample {
                        value: if value == 0.0 { 0.0 } else { value },
                        timestamp,
                    })
                    .collect(),
                exemplars: vec![],
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn v1_and_v2_rewrites_match_the_reference(
        timeseries in prop::collection::vec(arbitrary_series(), 0..8),
        reject in any::<bool>(),
    ) {
        let request = WriteRequest { timeseries, metadata: vec![] };
        let mut s = settings(Protocol::V1);
        s.reject_other_identity = reject;
        let want = reference(&request, &s);
        let v1 = rewrite(&request.encode_to_vec(), &s);
        s.protocol = Protocol::V2;
        let v2 = rewrite(&v2_bytes(&request), &s);
        match want {
            Err(e) => {
                prop_assert_eq!(v1, Err(e.clone()));
                prop_assert_eq!(v2, Err(e));
            }
            Ok((admitted, refused)) => {
                let v1 = v1.unwrap();
                prop_assert!(same_series(&decoded(&v1), &admitted), "{:?}\n!=\n{:?}", decoded(&v1), admitted);
                prop_assert_eq!(refusals(&v1), refused);
                prop_assert_eq!(v1.admitted_samples, admitted.iter().map(|s| s.samples.len() as u64).sum::<u64>());
                prop_assert_eq!(v1.series.len(), admitted.len());
                // 2.0 input gives the same 1.0 output, byte for byte.
                let v2 = v2.unwrap();
                prop_assert_eq!(&v2.body, &v1.body);
                prop_assert_eq!(&v2.series, &v1.series);
                prop_assert_eq!(&v2.refused, &v1.refused);
                // Spans tile the body and hold what they say.
                let mut at = 0;
                for (span, series) in v1.series.iter().zip(&admitted) {
                    prop_assert_eq!(span.start, at);
                    at = span.end;
                    let one = WriteRequest::decode(&v1.body[span.start..span.end]).unwrap();
                    prop_assert_eq!(&one.timeseries[0].labels, &series.labels);
                    prop_assert_eq!(span.samples as usize, series.samples.len());
                }
                prop_assert_eq!(at, v1.body.len());
                prop_assert!(v1.body.len() <= s.max_cost);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_within_the_cost(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        for protocol in [Protocol::V1, Protocol::V2] {
            let mut s = settings(protocol);
            s.max_cost = 256;
            if let Ok(out) = rewrite(&bytes, &s) {
                prop_assert!(out.body.len() <= 256);
            }
        }
    }
}

#[test]
fn removing_series_compacts_the_body() {
    let request = WriteRequest {
        timeseries: vec![
            series(&[("__name__", "a")], &[NOW]),
            series(&[("__name__", "b")], &[NOW - 1, NOW]),
            series(&[("__name__", "c")], &[NOW]),
        ],
        metadata: vec![],
    };
    let mut out = rewrite(&request.encode_to_vec(), &settings(Protocol::V1)).unwrap();
    assert_eq!(out.remove_series(&[1]), 2);
    let names: Vec<String> = decoded(&out)
        .iter()
        .map(|s| s.labels[0].value.clone())
        .collect();
    assert_eq!(names, ["a", "c"]);
    assert_eq!(out.admitted_samples, 2);
    assert_eq!(out.series[1].end, out.body.len());
    let labels = TimeSeries::decode(out.series[1].label_bytes(&out.body)).unwrap();
    assert_eq!(labels.labels[0].value, "c");
    assert_eq!(labels.labels[1].value, "aws-1");
    assert!(labels.samples.is_empty());
}

#[test]
fn pinning_overwrites_inserts_or_refuses_the_request() {
    let body = v1_bytes(vec![
        series(
            &[("__name__", "up"), ("job", "x"), ("seed", "other")],
            &[NOW],
        ),
        series(&[("__name__", "up"), ("zone", "a")], &[NOW]),
    ]);
    let out = rewrite(&body, &settings(Protocol::V1)).unwrap();
    let labels: Vec<Vec<(String, String)>> = decoded(&out)
        .iter()
        .map(|s| {
            s.labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect()
        })
        .collect();
    let pair = |n: &str, v: &str| (n.to_string(), v.to_string());
    assert_eq!(
        labels,
        [
            vec![
                pair("__name__", "up"),
                pair("job", "x"),
                pair("seed", "aws-1")
            ],
            vec![
                pair("__name__", "up"),
                pair("seed", "aws-1"),
                pair("zone", "a")
            ],
        ]
    );
    let mut s = settings(Protocol::V1);
    s.reject_other_identity = true;
    assert_eq!(
        rewrite(&body, &s).unwrap_err(),
        RewriteError::OtherIdentity {
            label: "seed".into(),
            claimed: "other".into(),
            actual: "aws-1".into()
        }
    );
}

#[test]
fn old_samples_are_dropped_and_the_rest_of_the_series_kept() {
    let body = v1_bytes(vec![
        series(&[("__name__", "up")], &[0, NOW - 3 * HOUR, NOW - HOUR, NOW]),
        series(&[("__name__", "gone")], &[NOW - 3 * HOUR]),
    ]);
    let out = rewrite(&body, &settings(Protocol::V1)).unwrap();
    let kept = decoded(&out);
    assert_eq!(kept.len(), 1);
    let stamps: Vec<i64> = kept[0].samples.iter().map(|s| s.timestamp).collect();
    assert_eq!(stamps, [NOW - HOUR, NOW]);
    assert_eq!(refusals(&out), BTreeMap::from([(Refusal::TooOld, 3)]));
    let first = out.refused.first.unwrap();
    assert!(
        first.contains("2 sample(s) of up at 0..") && first.contains("max_sample_age"),
        "{first}"
    );
    // Off: everything is forwarded.
    let mut s = settings(Protocol::V1);
    s.oldest_timestamp_ms = i64::MIN;
    assert_eq!(rewrite(&body, &s).unwrap().admitted_samples, 5);
}

#[test]
fn histograms_exemplars_metadata_and_unknown_fields_are_counted_not_forwarded() {
    // TimeSeries { label __name__=up, sample, exemplar (3), histogram (4), unknown field 9 }
    let mut ts = series(&[("__name__", "up")], &[NOW]).encode_to_vec();
    ts.extend_from_slice(&[0x1a, 0x00, 0x22, 0x00, 0x22, 0x00, 0x48, 0x01]);
    let mut body = vec![0x0a];
    crate::wire::put_varint(&mut body, ts.len() as u64);
    body.extend_from_slice(&ts);
    // Metadata (3) and an unknown top-level field.
    body.extend_from_slice(&[0x1a, 0x00, 0x78, 0x05]);
    let out = rewrite(&body, &settings(Protocol::V1)).unwrap();
    assert_eq!(out.admitted_samples, 1);
    assert_eq!(
        refusals(&out),
        BTreeMap::from([(Refusal::Exemplar, 1), (Refusal::NativeHistogram, 2)])
    );
    assert_eq!(decoded(&out)[0].exemplars, vec![]);
}

#[test]
fn malformed_messages_are_request_errors() {
    let good = v1_bytes(vec![series(&[("__name__", "up")], &[NOW])]);
    for cut in 1..good.len() {
        let result = rewrite(&good[..cut], &settings(Protocol::V1));
        assert!(
            matches!(result, Err(RewriteError::Malformed { .. })),
            "cut at {cut}: {result:?}"
        );
    }
    // A 2.0 request whose first symbol is not "", or a reference past the table.
    let bad_first = v2::Request {
        symbols: vec!["x".into()],
        timeseries: vec![],
    };
    let past = v2::Request {
        symbols: vec!["".into(), "__name__".into()],
        timeseries: vec![v2::TimeSeries {
            labels_refs: vec![1, 9],
            samples: vec![],
        }],
    };
    for request in [bad_first, past] {
        let result = rewrite(&request.encode_to_vec(), &settings(Protocol::V2));
        assert!(
            matches!(result, Err(RewriteError::Malformed { .. })),
            "{result:?}"
        );
    }
}

use crate::proto::v2;

/// The decode-amplification case: 1.5 MB of snappy expanding to 31 MiB of empty
/// `TimeSeries` (2 bytes each).
#[test]
fn empty_series_are_charged_and_refused_early() {
    let empty_series = [0x0a_u8, 0x00].repeat(31 << 19);
    let mut s = settings(Protocol::V1);
    s.max_series = 50_000;
    s.max_cost = 32 << 20;
    assert_eq!(
        rewrite(&empty_series, &s).unwrap_err(),
        RewriteError::TooManySeries { limit: 50_000 }
    );
    // Without a series limit, the cost stops it: at most 32 MiB / 16 B elements are read.
    s.max_series = usize::MAX;
    assert_eq!(
        rewrite(&empty_series, &s).unwrap_err(),
        RewriteError::TooCostly { limit: 32 << 20 }
    );
}

#[test]
fn empty_samples_and_labels_are_charged_too() {
    // One series with a million empty samples (2 bytes on the wire, 16+ in the output).
    let mut ts = vec![0x0a, 0x0c, 0x0a, 0x08];
    ts.extend_from_slice(b"__name__");
    ts.extend_from_slice(&[0x12, 0x00]);
    ts.extend_from_slice(&[0x12, 0x00].repeat(1 << 20));
    let mut body = vec![0x0a];
    crate::wire::put_varint(&mut body, ts.len() as u64);
    body.extend_from_slice(&ts);
    let mut s = settings(Protocol::V1);
    s.max_cost = 1 << 20;
    assert_eq!(
        rewrite(&body, &s).unwrap_err(),
        RewriteError::TooCostly { limit: 1 << 20 }
    );
}

#[test]
fn a_long_symbol_referenced_many_times_is_charged_per_reference() {
    let long = "v".repeat(2000);
    let mut builder = RequestBuilder::new();
    for _ in 0..1000 {
        builder.push_series(
            [("__name__", "up"), ("a", long.as_str())],
            &[Sample {
                value: 1.0,
                timestamp: NOW,
            }],
        );
    }
    let mut raw = Vec::new();
    builder.encode_into(&mut raw);
    assert!(raw.len() < 40_000, "the input is small: {}", raw.len());
    let mut s = settings(Protocol::V2);
    s.max_cost = 1 << 20;
    // The output would be ~2 MB.
    assert_eq!(
        rewrite(&raw, &s).unwrap_err(),
        RewriteError::TooCostly { limit: 1 << 20 }
    );
    s.max_cost = 4 << 20;
    assert_eq!(rewrite(&raw, &s).unwrap().series.len(), 1000);
}

#[test]
fn labels_in_any_field_order_or_with_long_varints_read_the_same() {
    // name=a value=b, written four ways: canonical, value first, a two-byte length, an unknown
    // field in between.
    let encodings: [&[u8]; 4] = [
        &[0x0a, 1, b'a', 0x12, 1, b'b'],
        &[0x12, 1, b'b', 0x0a, 1, b'a'],
        &[0x0a, 0x81, 0x00, b'a', 0x12, 1, b'b'],
        &[0x0a, 1, b'a', 0x18, 7, 0x12, 1, b'b'],
    ];
    for (i, label) in encodings.into_iter().enumerate() {
        // Only the first is copied as sent.
        assert_eq!(
            v1_label(label).unwrap(),
            (&b"a"[..], &b"b"[..], i == 0),
            "{label:?}"
        );
    }
}

#[test]
fn labels_copied_as_sent_and_rewritten_ones_give_the_same_output() {
    // One series whose labels are encoded in every way (canonical, value first, a two-byte
    // length, an empty value that is dropped, the identity label to replace), and the same series
    // as prost encodes it: the outputs are byte-identical.
    let field = |label: &[u8]| {
        let mut out = vec![0x0a, label.len() as u8];
        out.extend_from_slice(label);
        out
    };
    let mut message = Vec::new();
    message.extend(field(b"\x0a\x08__name__\x12\x02up"));
    message.extend(field(b"\x0a\x01a\x12\x01x"));
    message.extend(field(b"\x12\x01y\x0a\x01b"));
    message.extend(field(b"\x0a\x01c\x12\x00"));
    message.extend([0x0a, 0x86, 0x00]); // a label field with a two-byte length
    message.extend(b"\x0a\x01d\x12\x01z");
    message.extend(field(b"\x0a\x04seed\x12\x05other"));
    message.extend(field(b"\x0a\x04zone\x12\x01q"));
    let sample = Sample {
        value: 1.5,
        timestamp: NOW,
    }
    .encode_to_vec();
    message.extend([0x12, sample.len() as u8]);
    message.extend(sample);
    let mut body = vec![0x0a, message.len() as u8];
    body.extend(&message);
    let canonical = v1_bytes(vec![series(
        &[
            ("__name__", "up"),
            ("a", "x"),
            ("b", "y"),
            ("c", ""),
            ("d", "z"),
            ("seed", "other"),
            ("zone", "q"),
        ],
        &[NOW],
    )]);
    let mut s = settings(Protocol::V1);
    s.limits.max_labels_per_series = 30;
    let sent = rewrite(&body, &s).unwrap();
    assert_eq!(sent.admitted_samples, 1, "{:?}", sent.refused);
    let mut canonical_sample = rewrite(&canonical, &s).unwrap();
    // The canonical copy's sample value is 1.5 (the test helper); compare labels only.
    canonical_sample
        .body
        .truncate(canonical_sample.series[0].samples_start);
    assert_eq!(
        sent.series[0].label_bytes(&sent.body),
        canonical_sample.series[0].label_bytes(&canonical_sample.body)
    );
    let labels: Vec<(String, String)> = decoded(&sent)[0]
        .labels
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect();
    let want: Vec<(String, String)> = [
        ("__name__", "up"),
        ("a", "x"),
        ("b", "y"),
        ("d", "z"),
        ("seed", "aws-1"),
        ("zone", "q"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    assert_eq!(labels, want);
}

#[test]
fn the_fuzz_seed_corpus_reads_as_its_generator_meant() {
    // fuzz/seeds/gen_remote_write.py encodes by hand, independently of this crate.
    let read = |name: &str, protocol: Protocol| {
        let path = format!(
            "{}/../../fuzz/seeds/remote_write/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let body = std::fs::read(path).unwrap();
        let decoded = crate::codec::decompress_capped(&body, 1 << 20).unwrap();
        let mut s = settings(protocol);
        s.limits.max_labels_per_series = 30;
        s.oldest_timestamp_ms = i64::MIN;
        s.now_ms = 1_732_500_000_000;
        rewrite(&decoded, &s).unwrap()
    };
    let v1 = read("agent_batch_3_shoots", Protocol::V1);
    let v2 = read("agent_batch_v2", Protocol::V2);
    assert_eq!(v1.series.len(), 18);
    assert_eq!(v2.body, v1.body);
    let mixed = read("v2_mixed", Protocol::V2);
    assert_eq!(mixed.series.len(), 1);
    assert_eq!(
        refusals(&mixed),
        BTreeMap::from([(Refusal::UnsortedLabels, 1), (Refusal::ReservedLabel, 1)])
    );
}
