//! Prometheus Remote Write: wire types, snappy encoding, capped decoding and validation.
//!
//! Follows the Remote Write 1.0 specification
//! (<https://prometheus.io/docs/specs/remote_write_spec/>): a protobuf `prometheus.WriteRequest`
//! compressed with the snappy **block** format, sent with the headers in [`headers`]. The 2.0
//! messages (`io.prometheus.write.v2`) are in [`proto::v2`] for the agent↔receiver link.
//!
//! Decoding never trusts a declared size: [`decode_write_request`] reads the length a snappy block
//! declares and refuses it above the caller's cap before allocating anything.

pub mod codec;
pub mod proto;
pub mod validate;

pub use codec::{decode_write_request, encode_write_request, DecodeError};
pub use proto::v1::{Label, Sample, TimeSeries, WriteRequest};
pub use validate::{validate_series, SeriesError, ValidationLimits};

/// Bit pattern of Prometheus' stale marker, a NaN that ends a series at its timestamp.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The stale marker as a float; compare with [`is_stale_marker`], never with `==`.
pub fn stale_marker() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// True when `value` is exactly Prometheus' stale marker (an ordinary NaN is not).
pub fn is_stale_marker(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

/// HTTP header names and values of Remote Write 1.0.
pub mod headers {
    /// `Content-Encoding` value.
    pub const CONTENT_ENCODING: &str = "snappy";
    /// `Content-Type` value for 1.0.
    pub const CONTENT_TYPE: &str = "application/x-protobuf";
    /// Name of the version header.
    pub const VERSION_HEADER: &str = "X-Prometheus-Remote-Write-Version";
    /// Version header value for 1.0.
    pub const VERSION: &str = "0.1.0";
    /// `User-Agent` of everything slo-gateway sends.
    pub const USER_AGENT: &str = concat!("slo-gateway/", env!("CARGO_PKG_VERSION"));

    /// A POST of a snappy-compressed RW 1.0 `body` to `url` with the protocol's headers.
    pub fn post(
        client: &reqwest::Client,
        url: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::RequestBuilder {
        client
            .post(url)
            .header(reqwest::header::CONTENT_ENCODING, CONTENT_ENCODING)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .header(VERSION_HEADER, VERSION)
            .body(body)
    }
}

/// A series with `labels` in the given order (tests send unsorted ones on purpose) and
/// `samples` as (value, timestamp ms).
#[cfg(test)]
pub(crate) fn test_series(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> TimeSeries {
    TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(value, timestamp)| Sample { value, timestamp })
            .collect(),
        exemplars: vec![],
    }
}
