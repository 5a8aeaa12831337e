//! Feeds arbitrary bytes to the receiver's decode path: capped snappy decode, protobuf decode,
//! validation and identity pinning. Nothing may panic, nothing may allocate beyond the cap, and
//! every accepted series must re-encode and decode to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use slo_gateway::config::receiver::IdentityMode;
use slo_gateway::receiver::enforce::enforce_identity;
use slo_gateway::remote_write::validate::strip_empty_labels;
use slo_gateway::remote_write::{
    decode_write_request, encode_write_request, validate_series, ValidationLimits, WriteRequest,
};

/// Small cap so that a declared length beyond it is refused before allocating.
const CAP: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = decode_write_request(data, CAP) else {
        return;
    };
    let limits = ValidationLimits::default();
    let mut accepted = Vec::new();
    for mut series in request.timeseries {
        strip_empty_labels(&mut series);
        series.exemplars.clear();
        if enforce_identity(&mut series, "seed", "fuzz", IdentityMode::Overwrite).is_err() {
            continue;
        }
        if validate_series(&series, &limits, i64::MAX / 2).is_ok() {
            assert!(series.labels.iter().any(|l| l.name == "seed" && l.value == "fuzz"));
            accepted.push(series);
        }
    }
    let request = WriteRequest { timeseries: accepted, metadata: Vec::new() };
    let decoded = decode_write_request(&encode_write_request(&request), usize::MAX).unwrap();
    assert_eq!(decoded.timeseries.len(), request.timeseries.len());
});
