//! The receiver's own metrics, per seed.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use common::telemetry::{EncodeLabelValue, LabelValueEncoder, ReloadResult};
use remote_write::validate::Refusal;

/// Labels: seed and HTTP status code.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SeedCode {
    /// Seed identity ("" when the connection had none).
    pub seed: String,
    /// Status code answered.
    pub code: u16,
}

/// Labels: seed.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SeedLabel {
    /// Seed identity.
    pub seed: String,
}

/// Why samples were refused: `reason` of `samples_rejected_total` and the status page's column.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub enum RejectReason {
    /// Refused by the rewrite: invalid series, too old, histograms, exemplars.
    Data(Refusal),
    /// Above the seed's `samples_per_second_per_seed` (429).
    RateLimited,
    /// New series above `max_series_per_seed`.
    SeriesLimit,
    /// The SLO Prometheus refused them as data errors.
    UpstreamRefused,
    /// The SLO Prometheus could not be reached or failed (503, the agent retries).
    UpstreamUnavailable,
}

impl RejectReason {
    /// Every value: the rewrite's refusals, then the receiver's own.
    pub fn all() -> impl Iterator<Item = RejectReason> {
        Refusal::ALL.iter().map(|&r| RejectReason::Data(r)).chain([
            RejectReason::RateLimited,
            RejectReason::SeriesLimit,
            RejectReason::UpstreamRefused,
            RejectReason::UpstreamUnavailable,
        ])
    }

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::Data(refusal) => refusal.as_str(),
            RejectReason::RateLimited => "rate_limited",
            RejectReason::SeriesLimit => "series_limit",
            RejectReason::UpstreamRefused => "upstream_refused",
            RejectReason::UpstreamUnavailable => "upstream_unavailable",
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl EncodeLabelValue for RejectReason {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

/// Labels: seed and reason.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SeedReason {
    /// Seed identity.
    pub seed: String,
    /// Why samples were refused.
    pub reason: RejectReason,
}

common::label_values! {
    /// Why a connection failed before its first request.
    pub enum ConnectionFailure {
        /// The TLS handshake failed (no or an untrusted client certificate, protocol error).
        Handshake => "handshake",
        /// The handshake did not finish within `tls.handshake_timeout`.
        HandshakeTimeout => "handshake_timeout",
        /// The client certificate names no seed, or more than one.
        Identity => "identity",
    }
}

/// Labels: reason.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// Why.
    pub reason: ConnectionFailure,
}

/// Labels: result of a certificate reload.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// `success` or `failure`, as in every component.
    pub result: ReloadResult,
}

/// Receiver metrics (prefix `slo_gateway_receiver_`).
#[derive(Debug, Clone)]
pub struct ReceiverMetrics {
    /// Write requests by seed and answered status.
    pub requests: Family<SeedCode, Counter>,
    /// Samples forwarded and acknowledged upstream.
    pub samples_accepted: Family<SeedLabel, Counter>,
    /// Samples refused, by reason.
    pub samples_rejected: Family<SeedReason, Counter>,
    /// Unix time of the last accepted push per seed (the "seed silent" alert reads this).
    pub last_push_timestamp: Family<SeedLabel, Gauge<f64, AtomicU64>>,
    /// Connections that failed before a request, by reason (handshake, timeout, identity).
    pub connection_failures: Family<Reason, Counter>,
    /// Upstream request latency.
    pub forward_duration: Histogram,
    /// Certificate reloads by result.
    pub tls_reloads: Family<Outcome, Counter>,
    /// Active series per seed (as counted for `limits.max_series_per_seed`).
    pub active_series: Family<SeedLabel, Gauge>,
    /// Decode capacity in use, bytes (of `limits.max_inflight_decoded_bytes`).
    pub decode_bytes_in_flight: Gauge,
}

impl ReceiverMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            samples_accepted: Family::default(),
            samples_rejected: Family::default(),
            last_push_timestamp: Family::default(),
            connection_failures: Family::default(),
            forward_duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            tls_reloads: Family::default(),
            active_series: Family::default(),
            decode_bytes_in_flight: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("slo_gateway_receiver");
        r.register(
            "requests",
            "Remote-write requests by seed and status code",
            metrics.requests.clone(),
        );
        r.register(
            "samples_accepted",
            "Samples forwarded to and acknowledged by the SLO Prometheus",
            metrics.samples_accepted.clone(),
        );
        r.register(
            "samples_rejected",
            "Samples refused, by reason",
            metrics.samples_rejected.clone(),
        );
        r.register(
            "last_push_timestamp_seconds",
            "Unix time of the last accepted push per seed",
            metrics.last_push_timestamp.clone(),
        );
        r.register(
            "connection_failures",
            "Connections that failed before a request, by reason",
            metrics.connection_failures.clone(),
        );
        r.register(
            "forward_duration_seconds",
            "Latency of requests to the SLO Prometheus",
            metrics.forward_duration.clone(),
        );
        r.register(
            "tls_reloads",
            "Server certificate reloads by result",
            metrics.tls_reloads.clone(),
        );
        r.register(
            "active_series",
            "Active series per seed, as counted for limits.max_series_per_seed",
            metrics.active_series.clone(),
        );
        r.register(
            "decode_bytes_in_flight",
            "Decode capacity in use, bytes (limits.max_inflight_decoded_bytes)",
            metrics.decode_bytes_in_flight.clone(),
        );
        metrics
    }

    /// Counts `samples` refused for `seed` with `reason`.
    pub fn reject(&self, seed: &str, reason: RejectReason, samples: u64) {
        self.samples_rejected
            .get_or_create(&SeedReason {
                seed: seed.to_string(),
                reason,
            })
            .inc_by(samples);
    }

    /// Counts a connection failure.
    pub fn connection_failure(&self, reason: ConnectionFailure) {
        self.connection_failures
            .get_or_create(&Reason { reason })
            .inc();
    }

    /// Counts a certificate reload.
    pub fn tls_reload(&self, ok: bool) {
        self.tls_reloads
            .get_or_create(&Outcome {
                result: ReloadResult::of(ok),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reject_reason_has_its_own_label_value() {
        let texts: std::collections::BTreeSet<&str> =
            RejectReason::all().map(RejectReason::as_str).collect();
        assert_eq!(texts.len(), RejectReason::all().count());
        assert!(texts.contains("too_old") && texts.contains("series_limit"));
    }
}
