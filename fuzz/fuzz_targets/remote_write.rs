//! Feeds arbitrary bytes to the receiver's decode path as `receiver::api` runs it: capped snappy
//! decode, then the one-pass rewrite (decode, strip empty labels, validate, pin the identity in
//! both modes, drop old samples, re-encode) reading the bytes as Remote Write 1.0 and as 2.0.
//!
//! Nothing may panic; an admitted request re-encodes into at most `max_cost` bytes of valid 1.0
//! protobuf whose series all validate and carry exactly the pinned identity; `reject` mode admits
//! a request only when `overwrite` mode gives the same output; and when prost can decode the
//! input as 1.0, re-encoding that as 2.0 and rewriting it gives the same output as the 1.0
//! rewrite (the two readers agree).

#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use remote_write::codec::decompress_capped;
use remote_write::headers::Protocol;
use remote_write::rewrite::{rewrite, RewriteSettings, Rewritten};
use remote_write::v2::RequestBuilder;
use remote_write::{validate_series, ValidationLimits, WriteRequest};

/// Small cap so that a declared length beyond it is refused before allocating.
const CAP: usize = 1 << 20;
/// Cost budget of the readings of the input (output and allocations stay below
/// `-malloc_limit_mb=64`).
const MAX_COST: usize = 16 << 20;
/// Budget of the 2.0 re-encoding: it costs at most the 1.0 reading plus 16 bytes per symbol.
const MAX_COST_V2: usize = 2 * MAX_COST;
const LABEL: &str = "seed";
const SEED: &str = "fuzz";
const NOW: i64 = 1_700_000_000_000;

fn settings(protocol: Protocol, reject: bool, max_cost: usize) -> RewriteSettings<'static> {
    RewriteSettings {
        protocol,
        limits: ValidationLimits::default(),
        max_series: 50_000,
        max_cost,
        oldest_timestamp_ms: NOW - 2 * 3_600_000,
        now_ms: NOW,
        identity_label: LABEL,
        identity_value: SEED,
        reject_other_identity: reject,
    }
}

/// Checks what an admitted rewrite must hold.
fn check(out: &Rewritten) {
    assert!(out.body.len() <= MAX_COST);
    let request = WriteRequest::decode(out.body.as_slice()).expect("output is valid protobuf");
    assert_eq!(request.timeseries.len(), out.series.len());
    for series in &request.timeseries {
        validate_series(series, &ValidationLimits::default(), NOW).expect("output validates");
        let pinned: Vec<_> = series.labels.iter().filter(|l| l.name == LABEL).collect();
        assert_eq!(pinned.len(), 1);
        assert_eq!(pinned[0].value, SEED);
        assert!(series.samples.iter().all(|s| s.timestamp >= NOW - 2 * 3_600_000));
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(decoded) = decompress_capped(data, CAP) else {
        return;
    };
    for protocol in [Protocol::V1, Protocol::V2] {
        let overwrite = rewrite(&decoded, &settings(protocol, false, MAX_COST));
        if let Ok(out) = &overwrite {
            check(out);
        }
        if let Ok(out) = rewrite(&decoded, &settings(protocol, true, MAX_COST)) {
            assert_eq!(Some(&out), overwrite.as_ref().ok(), "reject admitted what overwrite did not");
        }
    }
    let (Ok(request), Ok(v1)) = (
        WriteRequest::decode(decoded.as_slice()),
        rewrite(&decoded, &settings(Protocol::V1, false, MAX_COST)),
    ) else {
        return;
    };
    let mut builder = RequestBuilder::new();
    for series in &request.timeseries {
        builder.push_series(
            series.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())),
            &series.samples,
        );
    }
    let mut v2_bytes = Vec::new();
    builder.encode_into(&mut v2_bytes);
    let v2 = rewrite(&v2_bytes, &settings(Protocol::V2, false, MAX_COST_V2))
        .expect("2.0 re-encoding admitted");
    assert_eq!(v2.body, v1.body, "1.0 and 2.0 readings disagree");
});
