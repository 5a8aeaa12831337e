//! Snappy-block + protobuf encoding of Remote Write requests, and decoding under a size cap.

use prost::Message;

use super::proto::v1::WriteRequest;

/// Why a request body could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The snappy block declares more decoded bytes than allowed.
    #[error("snappy block declares {declared} decoded bytes, above the limit of {limit}")]
    TooLarge {
        /// Length the block declares.
        declared: u64,
        /// The cap in force.
        limit: usize,
    },
    /// The body is not a valid snappy block.
    #[error("invalid snappy block: {0}")]
    Snappy(String),
    /// The decompressed bytes are not a `prometheus.WriteRequest`.
    #[error("invalid protobuf WriteRequest: {0}")]
    Protobuf(String),
}

/// Encodes `request` as protobuf and compresses it with the snappy block format.
pub fn encode_write_request(request: &WriteRequest) -> Vec<u8> {
    let raw = request.encode_to_vec();
    compress(&raw)
}

/// Snappy block compression of an encoded message.
pub fn compress(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let written = compress_into(raw, &mut out);
    out.truncate(written);
    out
}

/// [`compress`] into `buffer`, reusing its allocation (grown, never cleared, so a reused buffer
/// is not zeroed again): the block is `buffer[..n]` for the returned `n`.
pub fn compress_into(raw: &[u8], buffer: &mut Vec<u8>) -> usize {
    let bound = snap::raw::max_compress_len(raw.len());
    if buffer.len() < bound {
        buffer.resize(bound, 0);
    }
    // Compressing into a buffer of max_compress_len bytes cannot fail.
    snap::raw::Encoder::new()
        .compress(raw, &mut buffer[..bound])
        .unwrap_or_default()
}

/// The decoded length a snappy block declares in its header, checked against `max_decoded_bytes`
/// before anything is allocated: a 50-byte body can declare gigabytes.
///
/// The header is a varint; the snappy format caps it at 2^32 − 1, but a larger one is still a
/// declared size above the cap (413), not garbage.
pub fn declared_decoded_len(body: &[u8], max_decoded_bytes: usize) -> Result<usize, DecodeError> {
    let mut declared: u64 = 0;
    for (i, &byte) in body.iter().take(10).enumerate() {
        declared |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return match usize::try_from(declared) {
                Ok(len) if len <= max_decoded_bytes => Ok(len),
                _ => Err(DecodeError::TooLarge {
                    declared,
                    limit: max_decoded_bytes,
                }),
            };
        }
    }
    Err(DecodeError::Snappy(
        "no valid length header (empty body or varint longer than 10 bytes)".into(),
    ))
}

/// Decompresses a snappy block of at most `max_decoded_bytes` decoded bytes
/// ([`declared_decoded_len`] is checked first).
pub fn decompress_capped(body: &[u8], max_decoded_bytes: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let len = decompress_capped_into(body, max_decoded_bytes, &mut out)?;
    out.truncate(len);
    Ok(out)
}

/// [`decompress_capped`] into `buffer`, reusing its allocation: the decoded bytes are
/// `buffer[..n]` for the returned `n` (the buffer is only grown, never cleared, so a reused one
/// is not zeroed again).
pub fn decompress_capped_into(
    body: &[u8],
    max_decoded_bytes: usize,
    buffer: &mut Vec<u8>,
) -> Result<usize, DecodeError> {
    let declared = declared_decoded_len(body, max_decoded_bytes)?;
    if buffer.len() < declared {
        buffer.resize(declared, 0);
    }
    snap::raw::Decoder::new()
        .decompress(body, &mut buffer[..declared])
        .map_err(|e| DecodeError::Snappy(e.to_string()))
}

/// Decodes a snappy-compressed `prometheus.WriteRequest` of at most `max_decoded_bytes`.
pub fn decode_write_request(
    body: &[u8],
    max_decoded_bytes: usize,
) -> Result<WriteRequest, DecodeError> {
    let raw = decompress_capped(body, max_decoded_bytes)?;
    WriteRequest::decode(raw.as_slice()).map_err(|e| DecodeError::Protobuf(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v2;
    use crate::test_series as series;
    use proptest::prelude::*;

    #[test]
    fn wire_bytes_match_the_proto_field_numbers() {
        let request = WriteRequest {
            timeseries: vec![series(&[("a", "b")], &[(1.0, 2)])],
            metadata: vec![],
        };
        // TimeSeries(1, len) { Label(1, len) { name(1)="a", value(2)="b" }, Sample(2, len) { double(1)=1.0, int64(2)=2 } }
        let expected: Vec<u8> = vec![
            0x0a, 21, // field 1, length-delimited, 21 bytes
            0x0a, 6, 0x0a, 1, b'a', 0x12, 1, b'b', // label
            0x12, 11, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 2, // sample
        ];
        assert_eq!(request.encode_to_vec(), expected);
    }

    #[test]
    fn v2_request_uses_fields_4_and_5() {
        let request = v2::Request {
            symbols: vec![String::new(), "x".into()],
            timeseries: vec![v2::TimeSeries {
                labels_refs: vec![1, 1],
                samples: vec![],
            }],
        };
        let bytes = request.encode_to_vec();
        assert_eq!(bytes[0], (4 << 3) | 2);
        assert!(bytes.contains(&((5 << 3) | 2)));
        // An RW 2.0 body read as 1.0 has no series: why 2.0 must never reach a 1.0-only receiver.
        assert!(WriteRequest::decode(bytes.as_slice())
            .unwrap()
            .timeseries
            .is_empty());
    }

    #[test]
    fn declared_length_above_cap_is_refused_before_decompressing() {
        // A 6-byte snappy block whose header claims 4 GiB - 1 of output.
        let bomb = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        let err = decode_write_request(&bomb, 1 << 20).unwrap_err();
        assert_eq!(
            err,
            DecodeError::TooLarge {
                declared: u64::from(u32::MAX),
                limit: 1 << 20
            }
        );
        // Exactly 4 GiB, beyond what snappy itself can declare: still "too large", not garbage.
        let four_gib = [0x80, 0x80, 0x80, 0x80, 0x10, 0x00];
        assert_eq!(
            decode_write_request(&four_gib, 1 << 20).unwrap_err(),
            DecodeError::TooLarge {
                declared: 1 << 32,
                limit: 1 << 20
            }
        );
        assert!(matches!(
            declared_decoded_len(&[], 1),
            Err(DecodeError::Snappy(_))
        ));
        assert!(matches!(
            declared_decoded_len(&[0xff; 11], 1),
            Err(DecodeError::Snappy(_))
        ));
    }

    #[test]
    fn framed_snappy_and_garbage_are_rejected() {
        let mut framed = snap::write::FrameEncoder::new(Vec::new());
        std::io::Write::write_all(&mut framed, b"hello").unwrap();
        let framed = framed.into_inner().unwrap();
        assert!(decode_write_request(&framed, 1 << 20).is_err());
        assert!(matches!(
            decode_write_request(&compress(b"\xff\xff\xff"), 1 << 20),
            Err(DecodeError::Protobuf(_))
        ));
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(
            names in proptest::collection::vec("[a-z_][a-z0-9_]{0,8}", 1..4),
            values in proptest::collection::vec(any::<f64>().prop_filter("nan", |v| !v.is_nan()), 1..5),
        ) {
            let labels: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
            let samples: Vec<(f64, i64)> = values.iter().enumerate().map(|(i, v)| (*v, i as i64)).collect();
            let request = WriteRequest { timeseries: vec![series(&labels, &samples)], metadata: vec![] };
            let decoded = decode_write_request(&encode_write_request(&request), 1 << 20).unwrap();
            prop_assert_eq!(decoded, request);
        }
    }
}
