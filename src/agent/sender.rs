//! Sending queued requests: a dispatcher that takes records from the queue oldest first, and one
//! task per lane that POSTs its records strictly in order.
//!
//! # Ordering and fairness
//!
//! Records leave the queue in append order, and each goes to the lane it was cut for. A lane sends
//! its next record only after the previous one was acknowledged or dropped, so every series (which
//! always hashes to the same lane) reaches the receiver in timestamp order, while the lanes run in
//! parallel. After an outage the backlog is sent oldest first; data scraped meanwhile is appended
//! behind it and waits for it (sending a series' new samples before its old ones would make
//! Prometheus reject the old ones as out of order). Lanes interleave, so a backlog in one lane does
//! not hold the others back beyond the small dispatch buffer. With
//! `remote_write.max_catchup_requests_per_second` the dispatcher paces backlog records (created
//! more than two scrape intervals ago) so that a long outage is not replayed as a burst against
//! the receiver; fresh records are never paced.
//!
//! Concurrency follows the backlog: each lane has at most one request in flight, so with little
//! data only the lanes that have records are busy, and with a backlog all `remote_write.shards`
//! lanes send in parallel (the cap). A lane stuck retrying one record fills its small dispatch
//! buffer and then holds the dispatcher, and with it the other lanes: records leave the queue in
//! one order, and passing the stuck lane's records would need unbounded memory. In practice a
//! request that keeps failing with 5xx is an outage of the whole receiver anyway.
//!
//! # Shutdown
//!
//! On shutdown the dispatcher stops, a request in flight may finish for up to
//! `remote_write.shutdown_grace`, and everything not acknowledged stays in the queue for the next
//! start. A request cut off by the grace may still have arrived: it is sent again after the
//! restart, a duplicate that Prometheus accepts silently, never a loss.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls::ClientConfig;
use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;

use super::batch::{decode_header, Batch, HEADER_LEN};
use super::metrics::AgentMetrics;
use super::queue::{DiskQueue, DropCounts, QueueError, Record, RecordId};
use super::retry::{decide, Decision, Outcome};
use crate::config::agent::RetryConfig;
use crate::remote_write::headers;

/// Records buffered per lane between dispatcher and lane.
pub(crate) const LANE_BUFFER: usize = 2;
/// How often old records are expired and the queue gauges refreshed; also the idle poll.
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// Bytes of an error response kept for the log.
const ERROR_BODY_BYTES: usize = 512;

/// The queue shared by the scrape loop (append) and the sender (take, ack, requeue).
///
/// Every call runs on the blocking pool: [`DiskQueue`] does synchronous file I/O.
#[derive(Debug, Clone)]
pub(crate) struct QueueHandle {
    inner: Arc<Mutex<DiskQueue>>,
    appended: Arc<Notify>,
}

impl QueueHandle {
    /// Wraps an open queue.
    pub fn new(queue: DiskQueue) -> Self {
        Self {
            inner: Arc::new(Mutex::new(queue)),
            appended: Arc::new(Notify::new()),
        }
    }

    /// Runs `f` on the queue on the blocking pool.
    pub async fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DiskQueue) -> R + Send + 'static,
    ) -> R {
        let inner = self.inner.clone();
        let run = move || f(&mut inner.lock().unwrap_or_else(PoisonError::into_inner));
        match tokio::task::spawn_blocking(run).await {
            Ok(r) => r,
            // Only a panic inside `f` gets here; surface it where it happened.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Appends `batches` created at `created_unix_ms` and wakes the dispatcher. Appends what it
    /// can; reports the rest.
    pub async fn append_all(
        &self,
        created_unix_ms: i64,
        batches: Vec<Batch>,
    ) -> Option<AppendFailure> {
        let result = self
            .with(move |q| {
                let mut failure: Option<AppendFailure> = None;
                for batch in &batches {
                    if let Err(error) = q.append(created_unix_ms, &batch.payload) {
                        let f = failure.get_or_insert(AppendFailure {
                            records: 0,
                            samples: 0,
                            first: error,
                        });
                        f.records += 1;
                        f.samples += u64::from(batch.header.samples);
                    }
                }
                failure
            })
            .await;
        self.appended.notify_one();
        result
    }

    async fn ack(&self, id: RecordId) {
        if let Err(error) = self.with(move |q| q.ack(id)).await {
            tracing::warn!(%error, "queue ack could not be persisted (the record may be resent)");
        }
    }

    async fn requeue(&self, ids: Vec<RecordId>) {
        if !ids.is_empty() {
            self.with(move |q| q.requeue(&ids)).await;
        }
    }
}

/// Records that could not be queued (their samples are lost).
#[derive(Debug)]
pub(crate) struct AppendFailure {
    /// Records not appended.
    pub records: u64,
    /// Samples in them.
    pub samples: u64,
    /// The first error.
    pub first: QueueError,
}

/// Everything a lane needs besides its records.
#[derive(Debug)]
pub(crate) struct SenderShared {
    /// Where to POST (host replaced by `server_name` when configured).
    pub url: reqwest::Url,
    /// `server_name` and the addresses of the URL's real host, when `server_name` is set.
    pub server_name: Option<(String, String, u16)>,
    /// `remote_write.proxy_url`.
    pub proxy_url: Option<String>,
    /// Request timeout.
    pub timeout: Duration,
    /// Retry policy.
    pub retry: RetryConfig,
    /// How long a request in flight may still take after shutdown was requested.
    pub shutdown_grace: Duration,
    /// Metrics.
    pub metrics: AgentMetrics,
    /// The queue.
    pub queue: QueueHandle,
}

/// Why the remote-write client could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// reqwest refused the settings (e.g. a bad proxy URL).
    #[error("building the remote-write HTTP client: {0}")]
    Build(#[from] reqwest::Error),
    /// The URL's host did not resolve (needed to verify `server_name` instead).
    #[error("resolving {host}:{port}: {message}")]
    Resolve {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// Why.
        message: String,
    },
}

/// The remote-write client for the current TLS config.
pub(crate) async fn build_client(
    tls: &ClientConfig,
    shared: &SenderShared,
) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls(tls.clone())
        .user_agent(headers::USER_AGENT)
        .timeout(shared.timeout)
        // A redirect would resend the body elsewhere; a redirecting URL is a misconfiguration.
        .redirect(reqwest::redirect::Policy::none());
    // Without proxy_url, reqwest's default applies: HTTPS_PROXY / ALL_PROXY / NO_PROXY.
    if let Some(proxy) = &shared.proxy_url {
        builder = builder.proxy(reqwest::Proxy::all(proxy)?);
    }
    if let Some((name, host, port)) = &shared.server_name {
        // Connect to the configured host but verify (and send SNI for) `server_name`.
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), *port))
            .await
            .map_err(|e| ClientError::Resolve {
                host: host.clone(),
                port: *port,
                message: e.to_string(),
            })?
            .collect();
        builder = builder.resolve_to_addrs(name, &addrs);
    }
    Ok(builder.build()?)
}

/// Takes records oldest first and hands each to its lane, until `cancel`. With
/// `catch_up = Some((step, backlog_age))`, records older than `backlog_age` leave at most one per
/// `step`.
pub(crate) async fn dispatch(
    queue: QueueHandle,
    lanes: Vec<mpsc::Sender<Record>>,
    metrics: AgentMetrics,
    catch_up: Option<(Duration, Duration)>,
    cancel: CancellationToken,
) {
    let mut next_catch_up = tokio::time::Instant::now();
    while !cancel.is_cancelled() {
        let take = lanes.len() * LANE_BUFFER;
        let records = match queue.with(move |q| q.take(take)).await {
            Ok(records) => records,
            Err(error) => {
                tracing::warn!(%error, "reading the queue failed; retrying");
                Vec::new()
            }
        };
        if records.is_empty() {
            tokio::select! {
                () = queue.appended.notified() => {}
                () = tokio::time::sleep(HOUSEKEEPING) => {}
                () = cancel.cancelled() => {}
            }
            continue;
        }
        let mut pending = records.into_iter();
        while let Some(record) = pending.next() {
            let header = match decode_header(&record.payload) {
                Ok(header) => header,
                Err(error) => {
                    tracing::warn!(%error, id = record.id.0, "dropping unreadable queue record");
                    metrics.dropped_records("corrupt", 1);
                    queue.ack(record.id).await;
                    continue;
                }
            };
            if let Some((step, backlog_age)) = catch_up {
                let age_ms = crate::telemetry::now_unix_ms().saturating_sub(record.created_unix_ms);
                if u128::try_from(age_ms).unwrap_or(0) > backlog_age.as_millis() {
                    next_catch_up = next_catch_up.max(tokio::time::Instant::now());
                    let wait = tokio::time::sleep_until(next_catch_up);
                    next_catch_up += step;
                    tokio::select! {
                        () = wait => {}
                        () = cancel.cancelled() => {
                            give_back(&queue, record, pending).await;
                            return;
                        }
                    }
                }
            }
            let lane = &lanes[usize::from(header.lane) % lanes.len()];
            // Reserve first: a cancelled `send` would drop the record it owns without requeueing.
            let permit = tokio::select! {
                permit = lane.reserve() => permit.ok(),
                () = cancel.cancelled() => None,
            };
            match permit {
                Some(permit) => permit.send(record),
                None => {
                    // Shutdown (or the lane ended with it).
                    give_back(&queue, record, pending).await;
                    return;
                }
            }
        }
    }
}

/// Requeues `record` and the rest of a take that will not be dispatched.
async fn give_back(queue: &QueueHandle, record: Record, rest: std::vec::IntoIter<Record>) {
    let ids = std::iter::once(record.id).chain(rest.map(|r| r.id));
    queue.requeue(ids.collect()).await;
}

/// Every [`HOUSEKEEPING`] until `cancel`: expires records older than `buffer.max_age` and
/// publishes the queue gauges and drop counters. A task of its own, so the gauges stay current
/// while the dispatcher waits on a lane stuck in an outage. Returns the drop counts published.
pub(crate) async fn housekeeping_loop(
    queue: QueueHandle,
    metrics: AgentMetrics,
    cancel: CancellationToken,
) -> DropCounts {
    let mut drops = Default::default();
    let mut ticker = tokio::time::interval(HOUSEKEEPING);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = cancel.cancelled() => break,
        }
        drops = housekeeping(&queue, &metrics, drops).await;
    }
    drops
}

/// Expires old records and publishes queue gauges and drop counters. Returns the drop counts.
pub(crate) async fn housekeeping(
    queue: &QueueHandle,
    metrics: &AgentMetrics,
    last: DropCounts,
) -> DropCounts {
    let now = crate::telemetry::now_unix_ms();
    let (expired, records, bytes, oldest, memory, drops) = queue
        .with(move |q| {
            let expired = q.expire(now);
            (
                expired,
                q.len_records(),
                q.len_bytes(),
                q.oldest_created_unix_ms(),
                q.memory_fallback_active(),
                q.drops(),
            )
        })
        .await;
    if let Err(error) = expired {
        tracing::warn!(%error, "expiring old queue records failed");
    }
    let age = oldest.map_or(0.0, |t| now.saturating_sub(t).max(0) as f64 / 1000.0);
    metrics.set_queue(records, bytes, age, memory);
    metrics.dropped_records("max_bytes", drops.max_bytes.saturating_sub(last.max_bytes));
    metrics.dropped_records("max_age", drops.max_age.saturating_sub(last.max_age));
    metrics.dropped_records("corrupt", drops.corrupt.saturating_sub(last.corrupt));
    drops
}

/// One lane: POSTs its records in order, retrying each until delivered or dropped.
pub(crate) async fn lane(
    index: usize,
    mut records: mpsc::Receiver<Record>,
    mut tls: watch::Receiver<Arc<ClientConfig>>,
    shared: Arc<SenderShared>,
    cancel: CancellationToken,
) {
    let mut client: Option<reqwest::Client> = None;
    loop {
        let record = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            record = records.recv() => match record {
                Some(record) => record,
                None => break,
            },
        };
        if !send_record(index, &record, &mut client, &mut tls, &shared, &cancel).await {
            shared.queue.requeue(vec![record.id]).await;
            break;
        }
    }
    // Records handed to this lane but not sent go back for the next start (or run).
    records.close();
    let mut left = Vec::new();
    while let Ok(record) = records.try_recv() {
        left.push(record.id);
    }
    shared.queue.requeue(left).await;
}

/// Sends one record until it is delivered or dropped (then acks it and returns true), or until
/// shutdown (returns false, the record stays unacknowledged).
async fn send_record(
    lane: usize,
    record: &Record,
    client: &mut Option<reqwest::Client>,
    tls: &mut watch::Receiver<Arc<ClientConfig>>,
    shared: &SenderShared,
    cancel: &CancellationToken,
) -> bool {
    let samples = decode_header(&record.payload).map_or(0, |h| u64::from(h.samples));
    let body = record.payload.slice(HEADER_LEN.min(record.payload.len())..);
    let mut attempt: u32 = 0;
    loop {
        // Rebuild the client when the certificates changed: new connections use them.
        if client.is_none() || tls.has_changed().unwrap_or(false) {
            let config = tls.borrow_and_update().clone();
            match build_client(&config, shared).await {
                Ok(c) => *client = Some(c),
                Err(error) => {
                    tracing::warn!(lane, %error, "cannot build the remote-write client");
                    if client.is_none() {
                        if !backoff(Outcome::Network, &mut attempt, shared, cancel).await {
                            return false;
                        }
                        continue;
                    }
                }
            }
        }
        let Some(c) = client.as_ref() else {
            return false;
        };
        let post = post(c, shared, body.clone());
        tokio::pin!(post);
        let (outcome, detail) = tokio::select! {
            result = &mut post => result,
            () = cancel.cancelled() => match tokio::time::timeout(shared.shutdown_grace, &mut post).await {
                Ok(result) => result,
                Err(_) => return false,
            },
        };
        match decide(outcome, attempt, &shared.retry, fastrand::f64()) {
            Decision::Delivered => {
                shared.metrics.sent(samples);
                shared.queue.ack(record.id).await;
                return true;
            }
            Decision::Drop { reason } => {
                tracing::error!(
                    lane,
                    ?outcome,
                    response = detail.as_deref().unwrap_or(""),
                    samples,
                    "remote write refused the request; dropping it"
                );
                shared.metrics.dropped_samples(reason.label(), samples);
                shared.metrics.dropped_records(reason.label(), 1);
                shared.queue.ack(record.id).await;
                return true;
            }
            Decision::Retry { after } => {
                tracing::warn!(
                    lane,
                    ?outcome,
                    response = detail.as_deref().unwrap_or(""),
                    attempt,
                    retry_in = ?after,
                    "remote write failed; retrying"
                );
                if cancel.is_cancelled() {
                    return false;
                }
                tokio::select! {
                    () = tokio::time::sleep(after) => {}
                    () = cancel.cancelled() => return false,
                }
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

/// Waits the backoff of a failed client build. False on shutdown.
async fn backoff(
    outcome: Outcome,
    attempt: &mut u32,
    shared: &SenderShared,
    cancel: &CancellationToken,
) -> bool {
    let after = match decide(outcome, *attempt, &shared.retry, fastrand::f64()) {
        Decision::Retry { after } => after,
        _ => shared.retry.max_backoff,
    };
    *attempt = attempt.saturating_add(1);
    tokio::select! {
        () = tokio::time::sleep(after) => true,
        () = cancel.cancelled() => false,
    }
}

/// One POST. Returns the outcome and, for an error status, the response body's first line.
async fn post(
    client: &reqwest::Client,
    shared: &SenderShared,
    body: Bytes,
) -> (Outcome, Option<String>) {
    let started = Instant::now();
    let bytes = body.len() as u64;
    let result = crate::http_client::post_remote_write(
        client,
        shared.url.as_str(),
        headers::Protocol::V1,
        body,
    )
    .send()
    .await;
    let (outcome, code, detail) = match result {
        Ok(response) => {
            let status = response.status();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let detail = if status.is_success() {
                None
            } else {
                Some(first_line(response).await)
            };
            let outcome = Outcome::Status {
                code: status.as_u16(),
                retry_after,
            };
            (outcome, status.as_u16().to_string(), detail)
        }
        Err(error) if error.is_timeout() => {
            (Outcome::Timeout, "timeout".into(), Some(error.to_string()))
        }
        Err(error) => (
            Outcome::Network,
            "network".into(),
            Some(super::error_chain(&error)),
        ),
    };
    shared
        .metrics
        .request(code, bytes, started.elapsed().as_secs_f64());
    (outcome, detail)
}

/// First line of an error response (at most [`ERROR_BODY_BYTES`] read).
async fn first_line(mut response: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while buf.len() < ERROR_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            _ => break,
        }
    }
    buf.truncate(ERROR_BODY_BYTES);
    let text = String::from_utf8_lossy(&buf);
    text.lines().next().unwrap_or("").trim().to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::agent::batch::{encode_payload, Header};
    use crate::agent::queue::QueueOptions;

    /// A queue in a tempdir with `old` records from an hour ago, then `fresh` ones from now.
    fn queue_with(dir: &Path, old: u8, fresh: u8) -> QueueHandle {
        let (mut q, _) = DiskQueue::open(dir, QueueOptions::default()).unwrap();
        let now = crate::telemetry::now_unix_ms();
        for i in 0..old + fresh {
            let created = if i < old { now - 3_600_000 } else { now };
            let header = Header {
                lane: i % 2,
                samples: 1,
            };
            q.append(created, &encode_payload(header, &[i])).unwrap();
        }
        QueueHandle::new(q)
    }

    use std::path::Path;

    #[tokio::test(start_paused = true)]
    async fn backlog_is_paced_fresh_data_is_not_and_order_holds_per_lane() {
        let dir = tempfile::tempdir().unwrap();
        let queue = queue_with(dir.path(), 6, 4);
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = AgentMetrics::register(&mut registry);
        let (tx0, mut rx0) = mpsc::channel(16);
        let (tx1, mut rx1) = mpsc::channel(16);
        let cancel = CancellationToken::new();
        let step = Duration::from_secs(1);
        let started = tokio::time::Instant::now();
        let task = tokio::spawn(dispatch(
            queue.clone(),
            vec![tx0, tx1],
            metrics,
            Some((step, Duration::from_secs(60))),
            cancel.clone(),
        ));
        // (body byte, virtual time of arrival) per lane.
        let mut got: Vec<(u8, Duration)> = Vec::new();
        while got.len() < 10 {
            let record = tokio::select! {
                Some(r) = rx0.recv() => r,
                Some(r) = rx1.recv() => r,
            };
            let lane = decode_header(&record.payload).unwrap().lane;
            let body = record.payload[HEADER_LEN];
            assert_eq!(lane, body % 2, "record on its own lane");
            got.push((body, started.elapsed()));
        }
        cancel.cancel();
        task.await.unwrap();
        got.sort_by_key(|g| g.0);
        // Six backlog records at most one per second: the sixth no earlier than 5 s in.
        assert!(got[5].1 >= step * 5, "{got:?}");
        // Fresh records right behind the backlog, not paced among themselves.
        assert!(got[9].1 < got[5].1 + step, "{got:?}");
        // Dispatch order is queue order.
        let mut by_time = got.clone();
        by_time.sort_by_key(|g| (g.1, g.0));
        assert_eq!(
            by_time.iter().map(|g| g.0).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn records_held_at_shutdown_are_handed_out_again() {
        let dir = tempfile::tempdir().unwrap();
        let queue = queue_with(dir.path(), 0, 6);
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = AgentMetrics::register(&mut registry);
        // A lane that never receives: the dispatcher blocks on it with records in hand.
        let (tx, rx) = mpsc::channel(1);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(dispatch(
            queue.clone(),
            vec![tx],
            metrics,
            None,
            cancel.clone(),
        ));
        // Let it take and fill the lane buffer.
        while rx.capacity() > 0 {
            tokio::task::yield_now().await;
        }
        cancel.cancel();
        task.await.unwrap();
        drop(rx);
        // All but the one in the (dropped) lane buffer are back; the lane requeues its own.
        let again = queue.with(|q| q.take(10)).await.unwrap();
        assert_eq!(again.len(), 5, "{again:?}");
    }
}
