//! Feeds arbitrary bytes to the receiver's decode path as `receiver::api` runs it: capped snappy
//! decode, protobuf decode, empty-label stripping, identity pinning (both modes) and validation.
//! Nothing may panic, nothing may allocate beyond the cap, an accepted series carries exactly the
//! pinned identity, and the accepted series re-encode and decode to themselves.

#![no_main]

use libfuzzer_sys::fuzz_target;
use slo_gateway::config::receiver::IdentityMode;
use slo_gateway::receiver::enforce::enforce_identity;
use slo_gateway::remote_write::validate::strip_empty_labels;
use slo_gateway::remote_write::{
    decode_write_request, encode_write_request, validate_series, TimeSeries, ValidationLimits,
    WriteRequest,
};

/// Small cap so that a declared length beyond it is refused before allocating.
const CAP: usize = 1 << 20;
const LABEL: &str = "seed";
const SEED: &str = "fuzz";

/// Pins the identity in `mode` and validates; `Some` with the series the receiver would forward.
fn admit(mut series: TimeSeries, mode: IdentityMode) -> Option<TimeSeries> {
    enforce_identity(&mut series, LABEL, SEED, mode).ok()?;
    validate_series(&series, &ValidationLimits::default(), i64::MAX / 2).ok()?;
    Some(series)
}

fn same_series(a: &TimeSeries, b: &TimeSeries) -> bool {
    a.labels == b.labels
        && a.samples.len() == b.samples.len()
        && a.samples.iter().zip(&b.samples).all(|(x, y)| {
            x.timestamp == y.timestamp && x.value.to_bits() == y.value.to_bits()
        })
}

fuzz_target!(|data: &[u8]| {
    let Ok(request) = decode_write_request(data, CAP) else {
        return;
    };
    let mut accepted = Vec::new();
    for mut series in request.timeseries {
        strip_empty_labels(&mut series);
        series.exemplars.clear();
        let claimed: Vec<String> = series
            .labels
            .iter()
            .filter(|l| l.name == LABEL)
            .map(|l| l.value.clone())
            .collect();
        let rejected = admit(series.clone(), IdentityMode::Reject);
        let Some(series) = admit(series, IdentityMode::Overwrite) else {
            assert!(rejected.is_none(), "Reject admitted what Overwrite refused");
            continue;
        };
        let pinned: Vec<_> = series.labels.iter().filter(|l| l.name == LABEL).collect();
        assert_eq!(pinned.len(), 1);
        assert_eq!(pinned[0].value, SEED);
        // Reject mode admits exactly the series that claimed no other seed, unchanged otherwise.
        match rejected {
            Some(r) => {
                assert!(claimed.iter().all(|c| c == SEED), "Reject admitted {claimed:?}");
                assert!(same_series(&r, &series));
            }
            None => assert!(claimed.iter().any(|c| c != SEED)),
        }
        accepted.push(series);
    }
    let request = WriteRequest {
        timeseries: accepted,
        metadata: Vec::new(),
    };
    let decoded = decode_write_request(&encode_write_request(&request), usize::MAX).unwrap();
    assert_eq!(decoded.timeseries.len(), request.timeseries.len());
    assert!(decoded
        .timeseries
        .iter()
        .zip(&request.timeseries)
        .all(|(a, b)| same_series(a, b)));
});
