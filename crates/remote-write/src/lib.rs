//! Prometheus Remote Write: wire types, snappy encoding, capped decoding, validation, and the
//! receiver's zero-copy rewrite of a request.
//!
//! Follows the Remote Write 1.0 specification: a protobuf `prometheus.WriteRequest`
//! compressed with the snappy **block** format, sent with the headers in [`headers`]. And the
//! Remote Write 2.0 specification (2.0-rc.4) for the agent↔receiver link:
//! `io.prometheus.write.v2.Request` ([`proto::v2`], built by [`v2::RequestBuilder`]) with
//! interned strings, identified by `Content-Type: application/x-protobuf;proto=io.prometheus.write.v2.Request`
//! and `X-Prometheus-Remote-Write-Version: 2.0.0`; a receiver that wrote it answers with the
//! `X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written` headers, and 415 for a
//! content type it does not support ([`headers::Protocol::from_content_type`]).
//!
//! Decoding never trusts a declared size: [`codec::declared_decoded_len`] reads the length a
//! snappy block declares and refuses it above the caller's cap before allocating anything, and
//! [`rewrite`] charges every element it reads against a cost budget.
//!
//! This module has no network code; the HTTP POST lives in `crate::http_client`.

pub mod codec;
pub mod proto;
pub mod rewrite;
pub mod v2;
pub mod validate;
pub mod wire;

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

/// HTTP header names and values of Remote Write 1.0 and 2.0, and content negotiation.
pub mod headers {
    /// `Content-Encoding` value (the only one either version defines).
    pub const CONTENT_ENCODING: &str = "snappy";
    /// `Content-Type` value for 1.0.
    pub const CONTENT_TYPE: &str = "application/x-protobuf";
    /// `Content-Type` value for 2.0.
    pub const CONTENT_TYPE_V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";
    /// Name of the version header.
    pub const VERSION_HEADER: &str = "X-Prometheus-Remote-Write-Version";
    /// Version header value for 1.0.
    pub const VERSION: &str = "0.1.0";
    /// Version header value for 2.0.
    pub const VERSION_V2: &str = "2.0.0";
    /// Response header: float samples written.
    pub const SAMPLES_WRITTEN: &str = "X-Prometheus-Remote-Write-Samples-Written";
    /// Response header: histogram samples written.
    pub const HISTOGRAMS_WRITTEN: &str = "X-Prometheus-Remote-Write-Histograms-Written";
    /// Response header: exemplars written.
    pub const EXEMPLARS_WRITTEN: &str = "X-Prometheus-Remote-Write-Exemplars-Written";
    /// Request header of slo-gateway's own agent: its wall clock when it sent the request, Unix
    /// milliseconds. The receiver compares it with its own clock to show clock skew per seed;
    /// other receivers ignore it.
    pub const SENT_AT: &str = "X-SLO-Gateway-Sent-At";
    /// `User-Agent` of everything slo-gateway sends.
    pub const USER_AGENT: &str = concat!("slo-gateway/", env!("CARGO_PKG_VERSION"));

    /// Which protobuf message a request body carries.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Protocol {
        /// `prometheus.WriteRequest` (Remote Write 1.0).
        V1,
        /// `io.prometheus.write.v2.Request` (Remote Write 2.0).
        V2,
    }

    impl Protocol {
        /// The `Content-Type` a sender uses.
        pub fn content_type(self) -> &'static str {
            match self {
                Self::V1 => CONTENT_TYPE,
                Self::V2 => CONTENT_TYPE_V2,
            }
        }

        /// The `X-Prometheus-Remote-Write-Version` a sender uses.
        pub fn version(self) -> &'static str {
            match self {
                Self::V1 => VERSION,
                Self::V2 => VERSION_V2,
            }
        }

        /// The message a `Content-Type` names, per the 2.0 spec: `application/x-protobuf` alone
        /// or with `proto=prometheus.WriteRequest` is 1.0, with
        /// `proto=io.prometheus.write.v2.Request` it is 2.0 (media type and parameter name are
        /// case-insensitive, the parameter value is not; whitespace around `;` is allowed).
        /// `None` for anything else: the receiver answers 415.
        pub fn from_content_type(content_type: &str) -> Option<Self> {
            let mut parts = content_type.split(';').map(str::trim);
            let media_type = parts.next()?;
            if !media_type.eq_ignore_ascii_case(CONTENT_TYPE) {
                return None;
            }
            let mut protocol = Self::V1;
            for parameter in parts.filter(|p| !p.is_empty()) {
                let (name, value) = parameter.split_once('=')?;
                if !name.trim().eq_ignore_ascii_case("proto") {
                    continue;
                }
                protocol = match value.trim().trim_matches('"') {
                    "prometheus.WriteRequest" => Self::V1,
                    "io.prometheus.write.v2.Request" => Self::V2,
                    _ => return None,
                };
            }
            Some(protocol)
        }
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

#[cfg(test)]
mod tests {
    use super::headers::Protocol;

    #[test]
    fn content_type_negotiation_follows_the_2_0_spec() {
        let cases = [
            ("application/x-protobuf", Some(Protocol::V1)),
            ("Application/X-Protobuf", Some(Protocol::V1)),
            (
                "application/x-protobuf;proto=prometheus.WriteRequest",
                Some(Protocol::V1),
            ),
            (
                "application/x-protobuf; proto=prometheus.WriteRequest",
                Some(Protocol::V1),
            ),
            (
                "application/x-protobuf;proto=io.prometheus.write.v2.Request",
                Some(Protocol::V2),
            ),
            (
                "application/x-protobuf ; PROTO=\"io.prometheus.write.v2.Request\"",
                Some(Protocol::V2),
            ),
            ("application/x-protobuf;charset=utf-8", Some(Protocol::V1)),
            (
                "application/x-protobuf;proto=io.prometheus.write.v3.Request",
                None,
            ),
            (
                "application/x-protobuf;proto=io.prometheus.write.v2.request",
                None,
            ),
            ("application/x-protobuf;garbage", None),
            ("application/json", None),
            ("", None),
        ];
        for (content_type, want) in cases {
            assert_eq!(
                Protocol::from_content_type(content_type),
                want,
                "{content_type:?}"
            );
        }
        for protocol in [Protocol::V1, Protocol::V2] {
            assert_eq!(
                Protocol::from_content_type(protocol.content_type()),
                Some(protocol)
            );
        }
    }
}
