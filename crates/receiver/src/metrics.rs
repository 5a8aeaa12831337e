//! The receiver's own metrics, per seed: [`ReceiverMetrics`] registers them once; a connection
//! resolves its seed's series once into [`SeedHandles`], which count and log each request.

use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::http::StatusCode;
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

    /// How many values there are.
    pub const COUNT: usize = Refusal::ALL.len() + 4;

    /// Position in [`RejectReason::all`] (`0..COUNT`).
    pub fn index(self) -> usize {
        match self {
            RejectReason::Data(refusal) => {
                Refusal::ALL.iter().position(|&r| r == refusal).unwrap_or(0)
            }
            RejectReason::RateLimited => Refusal::ALL.len(),
            RejectReason::SeriesLimit => Refusal::ALL.len() + 1,
            RejectReason::UpstreamRefused => Refusal::ALL.len() + 2,
            RejectReason::UpstreamUnavailable => Refusal::ALL.len() + 3,
        }
    }

    /// Which way the timestamps of samples refused for this reason lie outside the accepted
    /// window, if that is why they were refused.
    pub const fn skew(self) -> Option<SkewDirection> {
        match self {
            RejectReason::Data(Refusal::TooOld) => Some(SkewDirection::Past),
            RejectReason::Data(Refusal::TooFarInFuture) => Some(SkewDirection::Future),
            _ => None,
        }
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
    /// Which way a refused sample's timestamp lay outside the accepted window: `direction` of
    /// `skewed_samples_total`.
    pub enum SkewDirection {
        /// Older than `limits.max_sample_age` (reason `too_old`).
        Past => "past",
        /// Later than now plus `limits.future_grace` (reason `too_far_in_future`).
        Future => "future",
    }
}

/// Labels: seed and direction.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SeedDirection {
    /// Seed identity.
    pub seed: String,
    /// Which way the timestamps were off.
    pub direction: SkewDirection,
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
    /// Unix time of the last push per seed that carried samples, stored or refused (the "seed
    /// silent" alert reads this).
    pub last_push_timestamp: Family<SeedLabel, Gauge<f64, AtomicU64>>,
    /// The receiver's clock minus the agent's at the last request that said when it was sent,
    /// seconds (positive: the agent's clock is behind).
    pub clock_skew: Family<SeedLabel, Gauge<f64, AtomicU64>>,
    /// Samples refused because their timestamps lie outside the accepted window, by direction.
    pub skewed_samples: Family<SeedDirection, Counter>,
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
            clock_skew: Family::default(),
            skewed_samples: Family::default(),
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
            "Unix time of the last push per seed that carried samples, stored or refused",
            metrics.last_push_timestamp.clone(),
        );
        r.register(
            "clock_skew_seconds",
            "Receiver clock minus the agent's send time of the seed's last request (positive: the agent is behind)",
            metrics.clock_skew.clone(),
        );
        r.register(
            "skewed_samples",
            "Samples refused for timestamps outside the accepted window, by direction (past: too_old, future: too_far_in_future)",
            metrics.skewed_samples.clone(),
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

    /// Counts a connection failure and logs it with `peer` and `error`: a failed handshake at
    /// info (scanners and misconfigured clients are routine), a certificate that names no seed
    /// at warn (a client of the right CA that cannot write).
    pub fn connection_failure(
        &self,
        reason: ConnectionFailure,
        peer: SocketAddr,
        error: Option<&dyn Display>,
    ) {
        self.connection_failures
            .get_or_create(&Reason { reason })
            .inc();
        let error = error.map(tracing::field::display);
        match reason {
            ConnectionFailure::Handshake => {
                tracing::info!(%peer, error, "TLS handshake failed");
            }
            ConnectionFailure::HandshakeTimeout => {
                tracing::info!(%peer, error, "TLS handshake timed out");
            }
            ConnectionFailure::Identity => {
                tracing::warn!(%peer, error, "client certificate names no seed");
            }
        }
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

/// The status codes the write endpoint answers with; each gets its request counter resolved once
/// per connection.
const ANSWERED: [StatusCode; 7] = [
    StatusCode::NO_CONTENT,
    StatusCode::BAD_REQUEST,
    StatusCode::FORBIDDEN,
    StatusCode::PAYLOAD_TOO_LARGE,
    StatusCode::UNSUPPORTED_MEDIA_TYPE,
    StatusCode::TOO_MANY_REQUESTS,
    StatusCode::SERVICE_UNAVAILABLE,
];

/// One seed's series of every per-seed metric, for one connection: the seed is fixed by the
/// client certificate, so each series is looked up (and its label set allocated) at most once
/// per connection instead of once per request. A series is created on first use, as before, so
/// no series appears before it has a value (a `last_push_timestamp_seconds` of 0 would make the
/// seed look silent).
#[derive(Debug)]
pub struct SeedHandles {
    seed: String,
    metrics: ReceiverMetrics,
    requests: [OnceLock<Counter>; ANSWERED.len()],
    samples_accepted: OnceLock<Counter>,
    samples_rejected: [OnceLock<Counter>; RejectReason::COUNT],
    skewed_samples: [OnceLock<Counter>; 2],
    last_push: OnceLock<Gauge<f64, AtomicU64>>,
    clock_skew: OnceLock<Gauge<f64, AtomicU64>>,
    active_series: OnceLock<Gauge>,
}

impl SeedHandles {
    /// Handles of `seed` ("" for a connection without one) in `metrics`.
    pub fn new(seed: &str, metrics: &ReceiverMetrics) -> Self {
        Self {
            seed: seed.to_string(),
            metrics: metrics.clone(),
            requests: Default::default(),
            samples_accepted: OnceLock::new(),
            samples_rejected: Default::default(),
            skewed_samples: Default::default(),
            last_push: OnceLock::new(),
            clock_skew: OnceLock::new(),
            active_series: OnceLock::new(),
        }
    }

    /// The seed ("" when the connection has none).
    pub fn seed(&self) -> &str {
        &self.seed
    }

    fn seed_label(&self) -> SeedLabel {
        SeedLabel {
            seed: self.seed.clone(),
        }
    }

    /// Counts a request answered with `status` and, when it failed, logs why: at warn when the
    /// receiver or the SLO Prometheus is at fault (5xx), at info when the request was (4xx).
    pub fn answered(&self, status: StatusCode, error: Option<&dyn Display>) {
        let counter = match ANSWERED.iter().position(|&s| s == status) {
            Some(i) => self.requests[i].get_or_init(|| self.request_counter(status)),
            None => &self.request_counter(status),
        };
        counter.inc();
        if let Some(error) = error {
            let seed = &self.seed;
            if status.is_server_error() {
                tracing::warn!(%seed, %error, "write refused");
            } else {
                tracing::info!(%seed, %error, "write refused");
            }
        }
    }

    fn request_counter(&self, status: StatusCode) -> Counter {
        self.metrics
            .requests
            .get_or_create(&SeedCode {
                seed: self.seed.clone(),
                code: status.as_u16(),
            })
            .clone()
    }

    /// Counts `samples` refused with `reason`, and as skewed when their timestamps were why.
    pub fn reject(&self, reason: RejectReason, samples: u64) {
        self.samples_rejected[reason.index()]
            .get_or_init(|| {
                self.metrics
                    .samples_rejected
                    .get_or_create(&SeedReason {
                        seed: self.seed.clone(),
                        reason,
                    })
                    .clone()
            })
            .inc_by(samples);
        if let Some(direction) = reason.skew() {
            self.skewed_samples[direction as usize]
                .get_or_init(|| {
                    self.metrics
                        .skewed_samples
                        .get_or_create(&SeedDirection {
                            seed: self.seed.clone(),
                            direction,
                        })
                        .clone()
                })
                .inc_by(samples);
        }
    }

    /// Counts `samples` the SLO Prometheus stored.
    pub fn accepted(&self, samples: u64) {
        self.samples_accepted
            .get_or_init(|| {
                self.metrics
                    .samples_accepted
                    .get_or_create(&self.seed_label())
                    .clone()
            })
            .inc_by(samples);
    }

    /// Records a push that carried samples, at `unix_ms`.
    pub fn pushed(&self, unix_ms: i64) {
        self.last_push
            .get_or_init(|| {
                self.metrics
                    .last_push_timestamp
                    .get_or_create(&self.seed_label())
                    .clone()
            })
            .set(unix_ms as f64 / 1000.0);
    }

    /// Records the clock skew of a request, seconds (positive: the agent is behind).
    pub fn clock_skew(&self, seconds: f64) {
        self.clock_skew
            .get_or_init(|| {
                self.metrics
                    .clock_skew
                    .get_or_create(&self.seed_label())
                    .clone()
            })
            .set(seconds);
    }

    /// Sets the seed's active series.
    pub fn active_series(&self, active: usize) {
        self.active_series
            .get_or_init(|| {
                self.metrics
                    .active_series
                    .get_or_create(&self.seed_label())
                    .clone()
            })
            .set(i64::try_from(active).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_reason_indexes_are_its_positions() {
        let indexes: Vec<usize> = RejectReason::all().map(RejectReason::index).collect();
        assert_eq!(indexes, (0..RejectReason::COUNT).collect::<Vec<_>>());
    }

    #[test]
    fn handles_count_into_the_registered_series_and_skew_by_direction() {
        let mut registry = Registry::default();
        let metrics = ReceiverMetrics::register(&mut registry);
        let handles = SeedHandles::new("aws-1", &metrics);
        let again = SeedHandles::new("aws-1", &metrics);
        handles.reject(RejectReason::Data(Refusal::TooFarInFuture), 3);
        again.reject(RejectReason::Data(Refusal::TooFarInFuture), 2);
        handles.reject(RejectReason::Data(Refusal::TooOld), 4);
        handles.reject(RejectReason::SeriesLimit, 5);
        handles.answered(StatusCode::BAD_REQUEST, None);
        again.answered(StatusCode::BAD_REQUEST, None);
        handles.answered(StatusCode::IM_A_TEAPOT, None);
        handles.pushed(1_700_000_000_500);
        handles.clock_skew(-1200.25);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            r#"slo_gateway_receiver_samples_rejected_total{seed="aws-1",reason="too_far_in_future"} 5"#,
            r#"slo_gateway_receiver_skewed_samples_total{seed="aws-1",direction="future"} 5"#,
            r#"slo_gateway_receiver_skewed_samples_total{seed="aws-1",direction="past"} 4"#,
            r#"slo_gateway_receiver_samples_rejected_total{seed="aws-1",reason="series_limit"} 5"#,
            r#"slo_gateway_receiver_requests_total{seed="aws-1",code="400"} 2"#,
            r#"slo_gateway_receiver_requests_total{seed="aws-1",code="418"} 1"#,
            r#"slo_gateway_receiver_last_push_timestamp_seconds{seed="aws-1"} 1700000000.5"#,
            r#"slo_gateway_receiver_clock_skew_seconds{seed="aws-1"} -1200.25"#,
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        // Nothing is created before it has a value.
        assert!(!text.contains("samples_accepted_total{"), "{text}");
        assert!(!text.contains("active_series{"), "{text}");
    }

    #[test]
    fn every_reject_reason_has_its_own_label_value() {
        let texts: std::collections::BTreeSet<&str> =
            RejectReason::all().map(RejectReason::as_str).collect();
        assert_eq!(texts.len(), RejectReason::all().count());
        assert!(texts.contains("too_old") && texts.contains("series_limit"));
    }
}
