//! Cutting samples into lanes and Remote Write requests, and the queue record payload format.
//!
//! # Record payload
//!
//! Each encoded request becomes one queue record whose payload is
//!
//! ```text
//! payload := lane:u8 samples:u32 (little-endian) body
//! ```
//!
//! where `body` is the snappy-block-compressed `prometheus.WriteRequest` exactly as POSTed, `lane`
//! the lane (shard) it was cut for and `samples` the number of samples in it (for metrics, and for
//! counting drops without decoding). A replayed record keeps its lane (modulo the current number
//! of lanes), so a series stays on one in-order lane across restarts as long as `shards` is
//! unchanged.

use std::collections::HashMap;

use super::labels::{put_varint, varint_len};
use super::series::OutSample;

/// Bytes in front of the body.
pub(crate) const HEADER_LEN: usize = 5;

/// A record payload's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// Lane the record was cut for.
    pub lane: u8,
    /// Samples in the body.
    pub samples: u32,
}

/// A payload shorter than its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("queue record payload of {0} bytes is shorter than its {HEADER_LEN}-byte header")]
pub(crate) struct ShortPayload(pub usize);

/// Prepends the header to `body`.
pub(crate) fn encode_payload(header: Header, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.push(header.lane);
    out.extend_from_slice(&header.samples.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// Reads the header of a payload; the body is `&payload[HEADER_LEN..]`.
pub(crate) fn decode_header(payload: &[u8]) -> Result<Header, ShortPayload> {
    match payload {
        [lane, a, b, c, d, ..] => Ok(Header {
            lane: *lane,
            samples: u32::from_le_bytes([*a, *b, *c, *d]),
        }),
        _ => Err(ShortPayload(payload.len())),
    }
}

/// Lane of a series. Mixes the hash first: FNV's low bits alone spread poorly over few lanes.
pub(crate) fn lane_of(hash: u64, lanes: usize) -> usize {
    let mixed = hash.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
    // Lanes are at most 64 (validated), so both conversions are lossless.
    (mixed % lanes.max(1) as u64) as usize
}

/// One encoded request, ready to be queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Batch {
    /// Its header.
    pub header: Header,
    /// `header` + snappy body.
    pub payload: Vec<u8>,
}

/// Splits `samples` into lanes and, per lane in input order, into requests of at most
/// `max_samples` samples. Within a request each series appears once, its samples in timestamp
/// order; series keep the order of their first sample. Lanes come out in lane order.
///
/// The request is written straight from the series' label blocks (a copy each) and the samples'
/// values and timestamps; allocations are per request, not per sample.
pub(crate) fn build_batches(samples: &[OutSample], lanes: usize, max_samples: usize) -> Vec<Batch> {
    let lanes = lanes.clamp(1, usize::from(u8::MAX) + 1);
    // Sized up front: allocations per call and per request, not per sample.
    let per_lane_guess = samples.len() / lanes + samples.len() / (4 * lanes) + 16;
    let mut per_lane: Vec<Vec<&OutSample>> = (0..lanes)
        .map(|_| Vec::with_capacity(per_lane_guess))
        .collect();
    for s in samples {
        per_lane[lane_of(s.hash, lanes)].push(s);
    }
    let chunk = max_samples.clamp(1, samples.len().max(1));
    let mut out = Vec::with_capacity(samples.len() / chunk + lanes);
    let mut raw = Vec::new();
    let mut order = Vec::with_capacity(chunk);
    let mut first_seen: HashMap<u64, usize> = HashMap::with_capacity(chunk);
    let mut encoder = snap::raw::Encoder::new();
    for (lane, lane_samples) in per_lane.iter().enumerate() {
        for chunk in lane_samples.chunks(max_samples.max(1)) {
            encode_request(chunk, &mut raw, &mut order, &mut first_seen);
            let header = Header {
                lane: u8::try_from(lane).unwrap_or(u8::MAX),
                samples: u32::try_from(chunk.len()).unwrap_or(u32::MAX),
            };
            let mut payload =
                Vec::with_capacity(HEADER_LEN + snap::raw::max_compress_len(raw.len()));
            payload.push(header.lane);
            payload.extend_from_slice(&header.samples.to_le_bytes());
            payload.resize(HEADER_LEN + snap::raw::max_compress_len(raw.len()), 0);
            let body = &mut payload[HEADER_LEN..];
            // Only fails for inputs above 4 GiB; a request is a few MB at most.
            let n = encoder.compress(&raw, body).unwrap_or(0);
            payload.truncate(HEADER_LEN + n);
            out.push(Batch { header, payload });
        }
    }
    out
}

/// Encodes `samples` as a `prometheus.WriteRequest` into `raw` (uncompressed): one
/// `TimeSeries` per series (label block, then its samples by timestamp), series in the order
/// of their first sample. `order` and `first_seen` are scratch space.
fn encode_request(
    samples: &[&OutSample],
    raw: &mut Vec<u8>,
    order: &mut Vec<usize>,
    first_seen: &mut HashMap<u64, usize>,
) {
    raw.clear();
    order.clear();
    first_seen.clear();
    // Every series' block plus at most 22 bytes per sample and 10 per series.
    let estimate: usize = samples.iter().map(|s| s.block.len() + 32).sum();
    raw.reserve(estimate);
    // Group by series (first appearance), then timestamp; stable for equal keys.
    for (i, s) in samples.iter().enumerate() {
        first_seen.entry(s.hash).or_insert(i);
    }
    order.extend(0..samples.len());
    order.sort_by_key(|&i| (first_seen[&samples[i].hash], samples[i].timestamp_ms));
    let mut run = 0;
    while run < order.len() {
        let series = samples[order[run]];
        let mut end = run + 1;
        while end < order.len() && samples[order[end]].hash == series.hash {
            end += 1;
        }
        let points = order[run..end].iter().map(|&i| samples[i]);
        let inner = series.block.len()
            + points
                .clone()
                .map(|p| 1 + 1 + sample_len(p.timestamp_ms))
                .sum::<usize>();
        raw.push(0x0a); // WriteRequest.timeseries
        put_varint(raw, inner as u64);
        raw.extend_from_slice(&series.block);
        for p in points {
            raw.push(0x12); // TimeSeries.samples
            put_varint(raw, sample_len(p.timestamp_ms) as u64);
            raw.push(0x09); // Sample.value, fixed64
            raw.extend_from_slice(&p.value.to_le_bytes());
            raw.push(0x10); // Sample.timestamp, varint
            put_varint(raw, p.timestamp_ms as u64);
        }
        run = end;
    }
}

/// Bytes of a `Sample` message body.
fn sample_len(timestamp_ms: i64) -> usize {
    1 + 8 + 1 + varint_len(timestamp_ms as u64)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::labels::{encode_block, series_hash};
    use remote_write::{decode_write_request, Label, WriteRequest};

    fn out(name: &str, ts: i64, value: f64) -> OutSample {
        let labels = vec![Label {
            name: "__name__".into(),
            value: name.into(),
        }];
        OutSample {
            hash: series_hash(&labels),
            block: Arc::from(encode_block(&labels)),
            timestamp_ms: ts,
            value,
        }
    }

    fn decode(batch: &Batch) -> WriteRequest {
        decode_write_request(&batch.payload[HEADER_LEN..], 1 << 24).unwrap()
    }

    #[test]
    fn payload_header_round_trips() {
        let h = Header {
            lane: 3,
            samples: 70_000,
        };
        let p = encode_payload(h, b"body");
        assert_eq!(p.len(), HEADER_LEN + 4);
        assert_eq!(decode_header(&p).unwrap(), h);
        assert_eq!(&p[HEADER_LEN..], b"body");
        assert_eq!(decode_header(&p[..4]), Err(ShortPayload(4)));
    }

    #[test]
    fn lanes_are_stable_and_spread() {
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            let s = out(&format!("m{i}"), 0, 0.0);
            let lane = lane_of(s.hash, 4);
            assert_eq!(lane, lane_of(s.hash, 4));
            counts[lane] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
        // Pinned: changing the mapping reorders replayed data after an upgrade.
        assert_eq!(lane_of(0, 4), 0);
        assert_eq!(
            lane_of(series_hash(&[]), 7),
            lane_of(0xcbf2_9ce4_8422_2325, 7)
        );
        assert_eq!(lane_of(u64::MAX, 1), 0);
    }

    #[test]
    fn requests_are_bounded_and_keep_per_series_order() {
        let mut samples = Vec::new();
        for ts in 0..10 {
            for i in 0..25 {
                samples.push(out(&format!("m{i}"), 1000 + ts, f64::from(i)));
            }
        }
        let batches = build_batches(&samples, 3, 7);
        let total: u32 = batches.iter().map(|b| b.header.samples).sum();
        assert_eq!(total, 250);
        let mut last_ts: HashMap<String, i64> = HashMap::new();
        let mut prev_lane = 0;
        for b in &batches {
            assert!(b.header.samples <= 7);
            assert!(b.header.lane >= prev_lane, "lanes in order");
            prev_lane = b.header.lane;
            let request = decode(b);
            let n: usize = request.timeseries.iter().map(|t| t.samples.len()).sum();
            assert_eq!(n as u32, b.header.samples);
            for series in &request.timeseries {
                let name = series.labels[0].value.clone();
                let hash = series_hash(&series.labels);
                assert_eq!(lane_of(hash, 3), usize::from(b.header.lane));
                // One entry per series per request.
                assert_eq!(
                    request
                        .timeseries
                        .iter()
                        .filter(|t| t.labels == series.labels)
                        .count(),
                    1
                );
                for s in &series.samples {
                    let prev = last_ts.insert(name.clone(), s.timestamp);
                    assert!(prev.is_none_or(|p| p < s.timestamp), "{name} out of order");
                }
            }
        }
        assert_eq!(last_ts.len(), 25);
    }

    #[test]
    fn samples_of_a_series_are_sorted_within_a_request() {
        let samples = vec![out("a", 20, 2.0), out("b", 5, 0.0), out("a", 10, 1.0)];
        let batches = build_batches(&samples, 1, 100);
        assert_eq!(batches.len(), 1);
        let request = decode(&batches[0]);
        assert_eq!(request.timeseries[0].labels[0].value, "a");
        let ts: Vec<i64> = request.timeseries[0]
            .samples
            .iter()
            .map(|s| s.timestamp)
            .collect();
        assert_eq!(ts, [10, 20]);
        assert!(build_batches(&[], 4, 10).is_empty());
    }
}
