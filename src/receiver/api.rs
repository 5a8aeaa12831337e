//! The HTTP edge: `POST /api/v1/write`, and the one mapping from errors to status codes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use super::enforce::{enforce_identity, IdentityMismatch};
use super::forward::{Forwarder, UpstreamOutcome};
use super::identity::{IdentityError, SeedIdentity};
use super::limits::SeedRateLimiter;
use super::metrics::{ReceiverMetrics, SeedCode, SeedLabel};
use super::server::ConnectionIdentity;
use crate::config::receiver::{IdentityConfig, LimitsConfig};
use crate::remote_write::validate::strip_empty_labels;
use crate::remote_write::{
    decode_write_request, encode_write_request, headers as rw, validate_series, DecodeError,
    WriteRequest,
};
use crate::telemetry::now_unix_ms;

/// Everything a request can end in other than success, and its status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the data is bad; the sender must not retry it.
    #[error("{0}")]
    BadData(String),
    /// 403: the certificate does not name a seed, or the payload claims another seed.
    #[error("{0}")]
    Forbidden(String),
    /// 413: body or decoded request above the limits.
    #[error("{0}")]
    TooLarge(String),
    /// 415: not snappy-compressed Remote Write 1.0.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429: the seed's rate limit; retry after the given time.
    #[error("seed {seed} is over its rate limit of samples per second")]
    RateLimited {
        /// The seed.
        seed: String,
        /// When to retry.
        retry_after: Duration,
    },
    /// 503: the SLO Prometheus is unavailable; retry.
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    /// The status code senders act on (see FIELD-NOTES: 400 no retry, 429/503 retry).
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadData(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, format!("{self}\n")).into_response();
        let retry_after = match &self {
            // Rounded up: a sender that waits the truncated time would be refused again.
            Self::RateLimited { retry_after, .. } => {
                Some((retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)).max(1))
            }
            Self::Unavailable(_) => Some(5),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<DecodeError> for ApiError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::TooLarge { .. } => Self::TooLarge(e.to_string()),
            DecodeError::Snappy(_) | DecodeError::Protobuf(_) => Self::BadData(e.to_string()),
        }
    }
}

impl From<IdentityMismatch> for ApiError {
    fn from(e: IdentityMismatch) -> Self {
        Self::Forbidden(e.to_string())
    }
}

/// Shared state of the write endpoint.
#[derive(Debug)]
pub struct WriteState {
    /// Input limits.
    pub limits: LimitsConfig,
    /// Identity label and mode.
    pub identity: IdentityConfig,
    /// Upstream client.
    pub forwarder: Forwarder,
    /// Per-seed rate limiting.
    pub rate_limiter: SeedRateLimiter,
    /// Metrics.
    pub metrics: ReceiverMetrics,
}

impl WriteState {
    /// State from the receiver's config parts.
    pub fn new(
        limits: LimitsConfig,
        identity: IdentityConfig,
        forwarder: Forwarder,
        metrics: ReceiverMetrics,
    ) -> Self {
        let rate = limits.samples_per_second_per_seed;
        let burst = limits
            .burst_samples_per_seed
            .unwrap_or(rate.saturating_mul(10));
        Self {
            rate_limiter: SeedRateLimiter::new(rate, burst),
            limits,
            identity,
            forwarder,
            metrics,
        }
    }
}

/// The receiver's router. The per-connection [`ConnectionIdentity`] arrives as a request extension,
/// inserted by the TLS server after the handshake (tests insert it directly).
pub fn app(state: Arc<WriteState>) -> Router {
    Router::new()
        .route("/api/v1/write", post(write))
        .with_state(state)
}

async fn write(
    State(state): State<Arc<WriteState>>,
    identity: Option<Extension<ConnectionIdentity>>,
    request_headers: HeaderMap,
    body: Body,
) -> Response {
    let identity = match identity {
        Some(Extension(ConnectionIdentity(identity))) => identity,
        None => Err(IdentityError::NoCertificate),
    };
    let seed = identity.as_ref().map(|s| s.0.clone()).unwrap_or_default();
    let result = match identity {
        Ok(identity) => handle_write(&state, &identity, &request_headers, body).await,
        Err(error) => Err(ApiError::Forbidden(error.to_string())),
    };
    let response = match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => {
            if error.status().is_server_error() {
                tracing::warn!(%seed, %error, "write refused");
            } else {
                tracing::info!(%seed, %error, "write refused");
            }
            error.into_response()
        }
    };
    state
        .metrics
        .requests
        .get_or_create(&SeedCode {
            seed,
            code: response.status().as_u16(),
        })
        .inc();
    response
}

fn check_headers(request_headers: &HeaderMap) -> Result<(), ApiError> {
    let value = |name: header::HeaderName| {
        request_headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let encoding = value(header::CONTENT_ENCODING);
    if encoding != rw::CONTENT_ENCODING {
        return Err(ApiError::UnsupportedMediaType(format!(
            "Content-Encoding must be snappy, got {encoding:?}"
        )));
    }
    let content_type = value(header::CONTENT_TYPE);
    let proto = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("proto="));
    if !content_type.starts_with(rw::CONTENT_TYPE)
        || proto.is_some_and(|p| p != "prometheus.writerequest")
    {
        return Err(ApiError::UnsupportedMediaType(format!(
            "only Remote Write 1.0 (application/x-protobuf, prometheus.WriteRequest) is accepted, got {content_type:?}"
        )));
    }
    Ok(())
}

async fn handle_write(
    state: &WriteState,
    identity: &SeedIdentity,
    request_headers: &HeaderMap,
    body: Body,
) -> Result<(), ApiError> {
    let seed = identity.0.as_str();
    check_headers(request_headers)?;
    let limit = state.limits.max_body_bytes;
    let timeout = state.limits.body_read_timeout;
    let body: Bytes = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| {
            // Not the data's fault: a slow link. 503 makes the agent retry instead of dropping.
            ApiError::Unavailable(format!(
                "request body not received within {}",
                humantime::format_duration(timeout)
            ))
        })?
        .map_err(|_| {
            ApiError::TooLarge(format!("request body above the limit of {limit} bytes"))
        })?;
    let mut request = decode_write_request(&body, state.limits.max_decoded_bytes)?;
    drop(body);
    if request.timeseries.len() > state.limits.max_series_per_request {
        return Err(ApiError::TooLarge(format!(
            "{} series in one request, limit {}",
            request.timeseries.len(),
            state.limits.max_series_per_request
        )));
    }
    let total_samples: usize = request.timeseries.iter().map(|s| s.samples.len()).sum();
    state
        .rate_limiter
        .check(seed, total_samples, Instant::now())
        .map_err(|retry_after| {
            state
                .metrics
                .reject(seed, "rate_limited", total_samples as u64);
            ApiError::RateLimited {
                seed: seed.to_string(),
                retry_after,
            }
        })?;

    // Like Mimir: forward the valid series, report the first invalid one with 400 so the
    // sender does not retry data that can never be accepted.
    let limits = state.limits.validation();
    let now = now_unix_ms();
    let mut first_invalid = None;
    let mut valid = Vec::with_capacity(request.timeseries.len());
    for mut series in std::mem::take(&mut request.timeseries) {
        strip_empty_labels(&mut series);
        series.exemplars.clear();
        // Pin first, so the label limits count the identity label the series is stored with.
        // On unsorted input the insertion point is arbitrary, but validation refuses it anyway.
        enforce_identity(
            &mut series,
            &state.identity.label,
            seed,
            state.identity.mode,
        )?;
        if let Err(error) = validate_series(&series, &limits, now) {
            state
                .metrics
                .reject(seed, error.reason(), series.samples.len() as u64);
            first_invalid.get_or_insert(error);
            continue;
        }
        valid.push(series);
    }
    let accepted: u64 = valid.iter().map(|s| s.samples.len() as u64).sum();
    if !valid.is_empty() {
        let encoded = encode_write_request(&WriteRequest {
            timeseries: valid,
            metadata: Vec::new(),
        });
        let started = Instant::now();
        let outcome = state.forwarder.send(encoded).await;
        state
            .metrics
            .forward_duration
            .observe(started.elapsed().as_secs_f64());
        match outcome {
            UpstreamOutcome::Stored => {
                let label = SeedLabel {
                    seed: seed.to_string(),
                };
                state
                    .metrics
                    .samples_accepted
                    .get_or_create(&label)
                    .inc_by(accepted);
                state
                    .metrics
                    .last_push_timestamp
                    .get_or_create(&label)
                    .set(now as f64 / 1000.0);
            }
            UpstreamOutcome::Refused(message) => {
                state.metrics.reject(seed, "upstream_refused", accepted);
                return Err(ApiError::BadData(message));
            }
            UpstreamOutcome::Unavailable(message) => {
                state.metrics.reject(seed, "upstream_unavailable", accepted);
                return Err(ApiError::Unavailable(message));
            }
        }
    }
    match first_invalid {
        Some(error) => Err(ApiError::BadData(format!("invalid series: {error}"))),
        None => Ok(()),
    }
}
