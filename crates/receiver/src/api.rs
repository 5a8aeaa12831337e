//! The HTTP edge: `POST /api/v1/write`, and the one mapping from errors to status codes.
//!
//! A request goes: identity (403) → content negotiation (415; Remote Write 1.0 or 2.0) → body
//! (413, 503 when too slow) → declared decoded size (413) → decode capacity (503 after 10 s) →
//! decode, validate, pin, re-encode under the cost budget ([`remote_write::rewrite`]; 400,
//! 403, 413) → per-seed rate (429) → per-seed active series (new ones past the limit refused) →
//! forward, isolating series the SLO Prometheus refuses ([`Forwarder::forward`]; 503 when it is
//! unavailable). Whatever was refused for the data's sake is counted per seed and reason, the
//! rest is forwarded, and the answer is 400 naming the first refusal (never retried), or 204.
//! After negotiation every answer carries the Remote Write 2.0 `X-Prometheus-Remote-Write-*-Written`
//! headers with what the SLO Prometheus stored.
//!
//! A decoded push that carried samples counts as the seed's last push whether or not its samples
//! were stored: a seed whose clock runs ahead has every sample refused, and still must not look
//! silent. The agent's `X-SLO-Gateway-Sent-At` header gives the seed's clock skew
//! ([`clock_skew_seconds`]). Each request is counted, and its failure logged, once
//! ([`SeedHandles::answered`]), on the series its connection resolved once
//! ([`Connection`]).
//!
//! The rate limit answers 429 only to our own agent (told by its `User-Agent`), which retries
//! 429 by default. Other senders get 503 with the same `Retry-After`: Prometheus drops a batch
//! answered 429 unless its `queue_config.retry_on_http_429` is set, while every Remote Write
//! sender retries a 5xx.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::forward::Forwarder;
use super::identity::IdentityError;
use super::limits::SeedRateLimiter;
use super::metrics::{ReceiverMetrics, RejectReason, SeedHandles};
use super::seeds::SeedBook;
use super::server::{Connection, ConnectionIdentity};
use crate::config::{IdentityConfig, IdentityMode, LimitsConfig};
use common::telemetry::now_unix_ms;
use remote_write::codec::{declared_decoded_len, decompress_capped_into};
use remote_write::headers::{self as rw, Protocol};
use remote_write::rewrite::{rewrite_into, RewriteError, RewriteSettings, Rewritten};
use remote_write::DecodeError;

/// Longest wait for decode capacity before answering 503.
pub const DECODE_CAPACITY_WAIT: Duration = Duration::from_secs(10);

/// Everything a request can end in other than success, and its status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the data is bad; the sender must not retry it.
    #[error("{0}")]
    BadData(String),
    /// 403: the certificate does not name exactly one seed, or the payload claims another seed.
    #[error("{0}")]
    Forbidden(String),
    /// 413: body or decoded request above the limits.
    #[error("{0}")]
    TooLarge(String),
    /// 415: not snappy-compressed Remote Write 1.0 or 2.0.
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
    /// 503: the SLO Prometheus is unavailable, or the receiver is busy; retry.
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    /// The status code senders act on (400: senders drop the request; 429 and 503: they retry it).
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

impl From<RewriteError> for ApiError {
    fn from(e: RewriteError) -> Self {
        match e {
            RewriteError::Malformed { .. } => Self::BadData(e.to_string()),
            RewriteError::TooManySeries { .. } | RewriteError::TooCostly { .. } => {
                Self::TooLarge(e.to_string())
            }
            RewriteError::OtherIdentity { .. } => Self::Forbidden(e.to_string()),
        }
    }
}

/// Bounds the decode work in flight: a request holds twice its declared decoded size (the
/// decompressed body and its re-encoded copy) while decoding, and its re-encoded size until it
/// was forwarded. Counted in KiB so that any budget fits the semaphore's `u32` requests.
#[derive(Debug)]
pub struct DecodeCapacity {
    semaphore: Arc<Semaphore>,
    total_kib: usize,
    metrics: ReceiverMetrics,
}

/// Decode capacity held by one request; given back when dropped.
#[derive(Debug)]
pub struct DecodePermit {
    permit: OwnedSemaphorePermit,
    capacity_total_kib: usize,
    semaphore: Arc<Semaphore>,
    metrics: ReceiverMetrics,
}

impl DecodeCapacity {
    /// Capacity for `bytes` of decode work at once.
    pub fn new(bytes: usize, metrics: ReceiverMetrics) -> Self {
        let total_kib = bytes.div_ceil(1024).clamp(1, Semaphore::MAX_PERMITS);
        Self {
            semaphore: Arc::new(Semaphore::new(total_kib)),
            total_kib,
            metrics,
        }
    }

    /// Waits (at most `wait`) for `bytes` of capacity, or all of it when `bytes` is more.
    pub async fn acquire(&self, bytes: usize, wait: Duration) -> Result<DecodePermit, ApiError> {
        let kib = bytes.div_ceil(1024).clamp(1, self.total_kib);
        let kib = u32::try_from(kib).unwrap_or(u32::MAX);
        let permit = tokio::time::timeout(wait, self.semaphore.clone().acquire_many_owned(kib))
            .await
            .map_err(|_| {
                ApiError::Unavailable(format!(
                    "receiver busy: no decode capacity within {}",
                    humantime::format_duration(wait)
                ))
            })?
            .map_err(|_| ApiError::Unavailable("receiver shutting down".into()))?;
        let permit = DecodePermit {
            permit,
            capacity_total_kib: self.total_kib,
            semaphore: self.semaphore.clone(),
            metrics: self.metrics.clone(),
        };
        permit.report();
        Ok(permit)
    }
}

impl DecodePermit {
    /// Gives back `bytes` of the capacity held (what was freed, e.g. the decompressed body).
    pub fn release(&mut self, bytes: usize) {
        let kib = bytes
            .div_ceil(1024)
            .min(self.permit.num_permits().saturating_sub(1));
        drop(self.permit.split(kib));
        self.report();
    }

    fn report(&self) {
        let in_use = self
            .capacity_total_kib
            .saturating_sub(self.semaphore.available_permits());
        self.metrics
            .decode_bytes_in_flight
            .set(i64::try_from(in_use.saturating_mul(1024)).unwrap_or(i64::MAX));
    }
}

impl Drop for DecodePermit {
    fn drop(&mut self) {
        // The permit itself is given back right after this; count it as gone.
        let in_use = self
            .capacity_total_kib
            .saturating_sub(self.semaphore.available_permits() + self.permit.num_permits());
        self.metrics
            .decode_bytes_in_flight
            .set(i64::try_from(in_use.saturating_mul(1024)).unwrap_or(i64::MAX));
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
    /// Per-seed active series and status figures.
    pub seeds: SeedBook,
    /// Decode work in flight.
    pub decode_capacity: DecodeCapacity,
    /// Decode buffers kept between requests.
    pub buffers: BufferPool,
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
            seeds: SeedBook::new(limits.max_series_per_seed, limits.series_idle_timeout),
            decode_capacity: DecodeCapacity::new(limits.inflight_decoded_bytes(), metrics.clone()),
            buffers: BufferPool::default(),
            limits,
            identity,
            forwarder,
            metrics,
        }
    }

    /// Counts `count` samples (histograms, exemplars) of `seed` refused with `reason`: in the
    /// metrics and on the status page.
    fn refuse(&self, seed: &SeedHandles, reason: RejectReason, count: u64) {
        if count > 0 {
            seed.reject(reason, count);
            self.seeds.record_refusal(seed.seed(), reason, count);
        }
    }
}

/// The receiver's clock minus the agent's send time, seconds (positive: the agent's clock is
/// behind), from the agent's `X-SLO-Gateway-Sent-At` header (Unix milliseconds). `None` without
/// the header (another sender) or when it is not a number. Includes the request's time on the
/// wire, normally milliseconds.
pub fn clock_skew_seconds(receiver_now_ms: i64, sent_at: Option<&HeaderValue>) -> Option<f64> {
    let sent_at_ms: i64 = sent_at?.to_str().ok()?.trim().parse().ok()?;
    Some(receiver_now_ms.saturating_sub(sent_at_ms) as f64 / 1000.0)
}

/// The receiver's router. The per-connection `Arc<`[`Connection`]`>` arrives as a request
/// extension, inserted by the TLS server after the handshake; tests may insert a bare
/// [`ConnectionIdentity`] instead.
pub fn app(state: Arc<WriteState>) -> Router {
    Router::new()
        .route("/api/v1/write", post(write))
        .with_state(state)
}

async fn write(
    State(state): State<Arc<WriteState>>,
    connection: Option<Extension<Arc<Connection>>>,
    identity: Option<Extension<ConnectionIdentity>>,
    request_headers: HeaderMap,
    body: Body,
) -> Response {
    let received_ms = now_unix_ms();
    let connection = match (connection, identity) {
        (Some(Extension(connection)), _) => connection,
        (None, identity) => {
            let identity = identity.map_or_else(
                || ConnectionIdentity::refused(IdentityError::NoCertificate),
                |Extension(identity)| identity,
            );
            Arc::new(Connection::new(identity, &state.metrics))
        }
    };
    let handles = &connection.handles;
    let (written, result) = match &connection.identity.seed {
        Ok(_) => {
            if let Some(skew) = clock_skew_seconds(received_ms, request_headers.get(rw::SENT_AT)) {
                handles.clock_skew(skew);
                state.seeds.record_clock_skew(handles.seed(), skew);
            }
            match negotiate(&request_headers) {
                Ok(protocol) => {
                    let mut written = 0;
                    let result =
                        handle_write(&state, &connection, protocol, body, &mut written).await;
                    (Some(written), result)
                }
                Err(error) => (None, Err(error)),
            }
        }
        Err(error) => (None, Err(ApiError::Forbidden(error.to_string()))),
    };
    let mut response = match result {
        Ok(()) => {
            handles.answered(StatusCode::NO_CONTENT, None);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => {
            let retry_as_503 =
                matches!(error, ApiError::RateLimited { .. }) && !from_our_agent(&request_headers);
            let status = if retry_as_503 {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                error.status()
            };
            handles.answered(status, Some(&error));
            let mut response = error.into_response();
            *response.status_mut() = status;
            response
        }
    };
    if let Some(samples) = written {
        // Histograms and exemplars are never forwarded (see `rewrite`).
        let headers = response.headers_mut();
        headers.insert(rw::SAMPLES_WRITTEN, HeaderValue::from(samples));
        headers.insert(rw::HISTOGRAMS_WRITTEN, HeaderValue::from(0));
        headers.insert(rw::EXEMPLARS_WRITTEN, HeaderValue::from(0));
    }
    response
}

/// Whether the request comes from slo-gateway's own agent (`User-Agent: slo-gateway/<version>`),
/// which retries 429; see the module docs for what other senders get.
fn from_our_agent(request_headers: &HeaderMap) -> bool {
    let product = rw::USER_AGENT.split('/').next().unwrap_or(rw::USER_AGENT);
    request_headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|agent| agent.split('/').next())
        .is_some_and(|name| name == product)
}

/// The protocol of the request from its headers (RW 2.0 spec: 415 for what is not supported).
fn negotiate(request_headers: &HeaderMap) -> Result<Protocol, ApiError> {
    let value = |name: header::HeaderName| {
        request_headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let encoding = value(header::CONTENT_ENCODING);
    if !encoding.trim().eq_ignore_ascii_case(rw::CONTENT_ENCODING) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "Content-Encoding must be snappy, got {encoding:?}"
        )));
    }
    let content_type = value(header::CONTENT_TYPE);
    Protocol::from_content_type(content_type).ok_or_else(|| {
        ApiError::UnsupportedMediaType(format!(
            "Content-Type must be {} (Remote Write 1.0) or {} (Remote Write 2.0), got {content_type:?}",
            rw::CONTENT_TYPE,
            rw::CONTENT_TYPE_V2
        ))
    })
}

async fn read_body(state: &WriteState, body: Body) -> Result<Bytes, ApiError> {
    let limit = state.limits.max_body_bytes;
    let timeout = state.limits.body_read_timeout;
    tokio::time::timeout(timeout, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| {
            // Not the data's fault: a slow link. 503 makes the agent retry instead of dropping.
            ApiError::Unavailable(format!(
                "request body not received within {}",
                humantime::format_duration(timeout)
            ))
        })?
        .map_err(|_| ApiError::TooLarge(format!("request body above the limit of {limit} bytes")))
}

/// Most decode buffer sets kept between requests.
pub const POOLED_BUFFER_SETS: usize = 4;
/// Largest buffer kept between requests, bytes (an agent's 2000-sample request needs ~0.5 MB).
pub const POOLED_BUFFER_BYTES: usize = 2 << 20;

/// The buffers one request decodes into: the decompressed body, its rewritten form, and the
/// scratch it is compressed in for the upstream.
#[derive(Debug, Default)]
pub struct DecodeBuffers {
    decoded: Vec<u8>,
    rewritten: Rewritten,
    compressed: Vec<u8>,
}

/// Decode buffers kept between requests: a fresh half-megabyte buffer per request costs page
/// faults and zeroing (about 15 % of the receiver's CPU per request in the bench). At most
/// [`POOLED_BUFFER_SETS`] sets of buffers under [`POOLED_BUFFER_BYTES`] are kept, so the memory
/// held is bounded and an unusually large request's buffers are freed.
#[derive(Debug, Default)]
pub struct BufferPool {
    sets: std::sync::Mutex<Vec<DecodeBuffers>>,
}

impl BufferPool {
    fn take(&self) -> Pooled<'_> {
        let buffers = self
            .sets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        Pooled {
            pool: self,
            buffers: Some(buffers),
        }
    }
}

/// Buffers taken from a [`BufferPool`], given back when dropped.
#[derive(Debug)]
struct Pooled<'p> {
    pool: &'p BufferPool,
    buffers: Option<DecodeBuffers>,
}

impl Pooled<'_> {
    fn get(&mut self) -> &mut DecodeBuffers {
        self.buffers.get_or_insert_with(DecodeBuffers::default)
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let Some(buffers) = self.buffers.take() else {
            return;
        };
        let small = buffers.decoded.capacity() <= POOLED_BUFFER_BYTES
            && buffers.rewritten.body.capacity() <= POOLED_BUFFER_BYTES
            && buffers.compressed.capacity() <= POOLED_BUFFER_BYTES;
        let mut sets = self
            .pool
            .sets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if small && sets.len() < POOLED_BUFFER_SETS {
            sets.push(buffers);
        }
    }
}

/// Decompresses and rewrites `body` into `buffers.rewritten`. Runs on the calling worker thread:
/// it takes well under a millisecond for an agent's 2000-sample request and tens of ms for the
/// largest body, and the decode capacity lets only a few of those run at once. (On the blocking
/// pool every new thread could keep its own malloc arena with a decompressed body's worth of
/// pages resident.)
fn decode(
    state: &WriteState,
    seed: &str,
    protocol: Protocol,
    body: &[u8],
    now_ms: i64,
    buffers: &mut DecodeBuffers,
) -> Result<(), ApiError> {
    let limits = &state.limits;
    let len = decompress_capped_into(body, limits.max_decoded_bytes, &mut buffers.decoded)?;
    let settings = RewriteSettings {
        protocol,
        limits: limits.validation(),
        max_series: limits.max_series_per_request,
        max_cost: limits.max_decoded_bytes,
        oldest_timestamp_ms: limits.oldest_timestamp_ms(now_ms),
        now_ms,
        identity_label: &state.identity.label,
        identity_value: seed,
        reject_other_identity: state.identity.mode == IdentityMode::Reject,
    };
    Ok(rewrite_into(
        &buffers.decoded[..len],
        &settings,
        &mut buffers.rewritten,
    )?)
}

async fn handle_write(
    state: &WriteState,
    connection: &Connection,
    protocol: Protocol,
    body: Body,
    written: &mut u64,
) -> Result<(), ApiError> {
    if connection.identity.seed.is_err() {
        return Err(ApiError::Forbidden("no seed identity".into()));
    }
    let handles = &connection.handles;
    let seed = handles.seed();
    let body = read_body(state, body).await?;
    let declared = declared_decoded_len(&body, state.limits.max_decoded_bytes)?;
    let mut permit = state
        .decode_capacity
        .acquire(declared.saturating_mul(2), DECODE_CAPACITY_WAIT)
        .await?;
    let now = now_unix_ms();
    let mut pooled = state.buffers.take();
    let buffers = pooled.get();
    decode(state, seed, protocol, &body, now, buffers)?;
    drop(body);
    // The decompressed body is no longer needed; the re-encoded one stays until forwarded.
    permit.release(declared);
    let DecodeBuffers {
        rewritten: request,
        compressed,
        ..
    } = buffers;
    if request.received_samples > 0 {
        // The seed is pushing, whatever becomes of its samples below.
        handles.pushed(now);
        state
            .seeds
            .record_push(seed, now, connection.identity.cert_not_after_unix_s);
    }

    state
        .rate_limiter
        .check(seed, request.received_samples as usize, Instant::now())
        .map_err(|retry_after| {
            state.refuse(handles, RejectReason::RateLimited, request.received_samples);
            ApiError::RateLimited {
                seed: seed.to_string(),
                retry_after,
            }
        })?;
    for &(reason, count) in &request.refused.by_reason {
        state.refuse(handles, RejectReason::Data(reason), count);
    }
    let mut first_refusal = request.refused.first.take();

    let hashes: Vec<u64> = request
        .series
        .iter()
        .map(|span| state.seeds.series_hash(span.label_bytes(&request.body)))
        .collect();
    let (new_refused, active) = state.seeds.admit(seed, &hashes, Instant::now());
    if state.seeds.max_series() > 0 {
        handles.active_series(active);
    }
    if !new_refused.is_empty() {
        let samples = request.remove_series(&new_refused);
        state.refuse(handles, RejectReason::SeriesLimit, samples);
        first_refusal.get_or_insert_with(|| {
            format!(
                "{} new series refused: seed {seed} is at its limit of {} active series \
                 (limits.max_series_per_seed); known series are still accepted",
                new_refused.len(),
                state.seeds.max_series()
            )
        });
    }

    let started = Instant::now();
    let report = state
        .forwarder
        .forward(&request.body, &request.series, compressed)
        .await;
    state
        .metrics
        .forward_duration
        .observe(started.elapsed().as_secs_f64());
    drop(permit);
    *written = report.stored_samples;
    if report.stored_samples > 0 {
        handles.accepted(report.stored_samples);
        state
            .seeds
            .record_stored(seed, report.stored_samples, Instant::now());
    }
    if !report.refused.is_empty() {
        let samples: u64 = report
            .refused
            .iter()
            .map(|&i| u64::from(request.series[i].samples))
            .sum();
        state.refuse(handles, RejectReason::UpstreamRefused, samples);
        first_refusal.get_or_insert_with(|| {
            format!(
                "the SLO Prometheus refused {} series ({samples} samples), the rest was stored: {}",
                report.refused.len(),
                report.refused_message.as_deref().unwrap_or("")
            )
        });
    }
    if let Some(message) = report.unavailable {
        let refused: u64 = report
            .refused
            .iter()
            .map(|&i| u64::from(request.series[i].samples))
            .sum();
        let unsent = request
            .admitted_samples
            .saturating_sub(report.stored_samples + refused);
        state.refuse(handles, RejectReason::UpstreamUnavailable, unsent);
        return Err(ApiError::Unavailable(message));
    }
    match first_refusal {
        Some(message) => Err(ApiError::BadData(message)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_skew_is_the_receiver_clock_minus_the_send_time() {
        let now = 1_700_000_000_000;
        let header = |v: &str| HeaderValue::from_str(v).unwrap();
        // The agent's clock 20 minutes behind: its data lands 20 minutes in the past.
        let behind = header(&(now - 20 * 60_000).to_string());
        assert_eq!(clock_skew_seconds(now, Some(&behind)), Some(1200.0));
        // 20 minutes ahead: every sample beyond the future grace is refused.
        let ahead = header(&(now + 20 * 60_000 + 500).to_string());
        assert_eq!(clock_skew_seconds(now, Some(&ahead)), Some(-1200.5));
        assert_eq!(
            clock_skew_seconds(now, Some(&header(" 1700000000250 "))),
            Some(-0.25)
        );
        // Another sender, or a header that is no number: no figure rather than a wrong one.
        assert_eq!(clock_skew_seconds(now, None), None);
        assert_eq!(clock_skew_seconds(now, Some(&header("soon"))), None);
        assert_eq!(clock_skew_seconds(now, Some(&header("1.7e12"))), None);
    }
}
