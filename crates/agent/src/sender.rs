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

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustls::ClientConfig;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::batch::{decode_header, encode_payload, Header, HEADER_LEN};
use super::client::{build_client, post, Endpoint, Negotiation};
use super::metrics::AgentMetrics;
use super::queue::{Record, RecordId};
use super::queue_handle::{QueueHandle, HOUSEKEEPING};
use super::retry::{decide, Decision, Outcome};
use crate::config::RetryConfig;
use crate::metrics::DropReason;
use remote_write::codec::decompress_capped;
use remote_write::headers::Protocol;

/// Records buffered per lane between dispatcher and lane: what a lane can merge into one
/// request when catching up.
pub(crate) const LANE_BUFFER: usize = 8;

/// Everything a lane needs besides its records.
#[derive(Debug)]
pub(crate) struct SenderShared {
    /// The receiver and how to reach it.
    pub endpoint: Endpoint,
    /// Retry policy.
    pub retry: RetryConfig,
    /// How long a request in flight may still take after shutdown was requested.
    pub shutdown_grace: Duration,
    /// `buffer.max_age`: a record older than this is dropped instead of sent again.
    pub max_age: Duration,
    /// `remote_write.protocol` and what was negotiated.
    pub protocol: Negotiation,
    /// `remote_write.max_samples_per_request`.
    pub max_samples_per_request: usize,
    /// `remote_write.max_samples_per_backlog_request`: what waiting records of a lane may be
    /// merged into.
    pub max_samples_per_backlog_request: usize,
    /// Metrics.
    pub metrics: AgentMetrics,
    /// The queue.
    pub queue: QueueHandle,
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
                    metrics.record_drop(
                        DropReason::Corrupt,
                        0,
                        1,
                        &format_args!("dropping unreadable queue record {}: {error}", record.id.0),
                    );
                    queue.ack(record.id).await;
                    continue;
                }
            };
            if let Some((step, backlog_age)) = catch_up {
                let age_ms =
                    common::telemetry::now_unix_ms().saturating_sub(record.created_unix_ms);
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
        // Catching up: more records of this lane are waiting; send them as one larger request.
        let mut batch = vec![record];
        let mut samples = samples_of(&batch[0]);
        while samples + shared.max_samples_per_request <= shared.max_samples_per_backlog_request {
            match records.try_recv() {
                Ok(next) => {
                    samples += samples_of(&next);
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        if !send_batch(index, &batch, &mut client, &mut tls, &shared, &cancel).await {
            shared
                .queue
                .requeue(batch.iter().map(|r| r.id).collect())
                .await;
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

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// Delivered or dropped; its records are acknowledged.
    Done,
    /// A merged request was refused; its records are not acknowledged.
    Refused,
    /// Shutdown; its records are not acknowledged.
    Shutdown,
}

/// Samples in a record (0 when its header is unreadable).
fn samples_of(record: &Record) -> usize {
    decode_header(&record.payload).map_or(0, |h| h.samples as usize)
}

/// Sends `batch` (records of one lane, in order): merged into one request when there are
/// several, record by record when that one is refused. False on shutdown.
async fn send_batch(
    lane: usize,
    batch: &[Record],
    client: &mut Option<reqwest::Client>,
    tls: &mut watch::Receiver<Arc<ClientConfig>>,
    shared: &SenderShared,
    cancel: &CancellationToken,
) -> bool {
    if batch.len() > 1 {
        if let Some(merged) = merge(batch) {
            let ids: Vec<RecordId> = batch.iter().map(|r| r.id).collect();
            match send_record(lane, &merged, &ids, client, tls, shared, cancel).await {
                Sent::Done => return true,
                Sent::Shutdown => return false,
                Sent::Refused => {}
            }
        }
    }
    for record in batch {
        if send_record(lane, record, &[record.id], client, tls, shared, cancel).await
            == Sent::Shutdown
        {
            return false;
        }
    }
    true
}

/// One record holding the requests of `batch` as one: their `WriteRequest`s concatenated
/// (protobuf merges repeated fields, and the records are in order, so every series' samples stay
/// in timestamp order), compressed again. `None` if a body does not decompress.
/// Largest decoded record [`merge`] reads; the batcher writes records far below it.
const MAX_RECORD_DECODED_BYTES: usize = 256 << 20;

fn merge(batch: &[Record]) -> Option<Record> {
    let mut raw = Vec::new();
    let mut samples: u32 = 0;
    for record in batch {
        let header = decode_header(&record.payload).ok()?;
        samples = samples.saturating_add(header.samples);
        let body = record.payload.get(HEADER_LEN..)?;
        // Capped like any decode: a damaged length header must not allocate what it claims.
        raw.extend_from_slice(&decompress_capped(body, MAX_RECORD_DECODED_BYTES).ok()?);
    }
    let first = batch.first()?;
    let header = Header {
        lane: decode_header(&first.payload).ok()?.lane,
        samples,
    };
    let body = snap::raw::Encoder::new().compress_vec(&raw).ok()?;
    Some(Record {
        id: first.id,
        created_unix_ms: batch.iter().map(|r| r.created_unix_ms).min()?,
        payload: encode_payload(header, &body).into(),
    })
}

/// Sends one record until it is delivered or dropped (then acks `ids`, the records it is made
/// of), or until shutdown (they stay unacknowledged). A merged record that is refused (4xx, or
/// older than `buffer.max_age`) is not dropped but handed back, to be sent record by record.
async fn send_record(
    lane: usize,
    record: &Record,
    ids: &[RecordId],
    client: &mut Option<reqwest::Client>,
    tls: &mut watch::Receiver<Arc<ClientConfig>>,
    shared: &SenderShared,
    cancel: &CancellationToken,
) -> Sent {
    let merged = ids.len() > 1;
    let samples = decode_header(&record.payload).map_or(0, |h| u64::from(h.samples));
    let body = record.payload.slice(HEADER_LEN.min(record.payload.len())..);
    // The queue holds 1.0 bodies; 2.0 is made on the way out (once per record).
    let mut v2_body: Option<Bytes> = None;
    let mut attempt: u32 = 0;
    loop {
        // Dropped meanwhile (the queue overflowed, or expired) while this lane held it: it is
        // counted as dropped, so it must not arrive after all.
        let live = shared.queue.live(ids.to_vec()).await;
        if !live.iter().all(|&l| l) {
            if merged {
                return Sent::Refused;
            }
            tracing::debug!(
                lane,
                id = record.id.0,
                "record dropped from the queue while held; not sent"
            );
            return Sent::Done;
        }
        // A record the upstream can no longer accept (its samples are older than its
        // out-of-order window) must not hold the lane: give it up, however it failed so far.
        if past_max_age(record, shared.max_age) {
            if merged {
                // Some of the merged records may still be fresh: decide one by one.
                return Sent::Refused;
            }
            shared.metrics.record_drop(
                DropReason::MaxAge,
                samples,
                1,
                &format_args!(
                    "lane {lane}: dropping a request older than buffer.max_age ({:?}) that was \
                     not delivered (attempt {attempt})",
                    shared.max_age
                ),
            );
            shared.queue.ack(record.id).await;
            return Sent::Done;
        }
        // Rebuild the client when the certificates changed: new connections use them.
        if client.is_none() || tls.has_changed().unwrap_or(false) {
            let config = tls.borrow_and_update().clone();
            match build_client(&config, &shared.endpoint).await {
                Ok(c) => *client = Some(c),
                Err(error) => {
                    tracing::warn!(lane, %error, "cannot build the remote-write client");
                    if client.is_none() {
                        if !backoff(Outcome::Network, &mut attempt, shared, cancel).await {
                            return Sent::Shutdown;
                        }
                        continue;
                    }
                }
            }
        }
        let Some(c) = client.as_ref() else {
            return Sent::Shutdown;
        };
        let mut protocol = shared.protocol.current();
        let wire = match protocol {
            Protocol::V1 => body.clone(),
            Protocol::V2 => match v2_body.get_or_insert_with(|| to_v2(&body)) {
                v2 if v2.is_empty() => {
                    protocol = Protocol::V1;
                    body.clone()
                }
                v2 => v2.clone(),
            },
        };
        let post = post(c, &shared.endpoint.url, protocol, &shared.metrics, wire);
        tokio::pin!(post);
        let posted = tokio::select! {
            result = &mut post => result,
            () = cancel.cancelled() => match tokio::time::timeout(shared.shutdown_grace, &mut post).await {
                Ok(result) => result,
                Err(_) => return Sent::Shutdown,
            },
        };
        if shared.protocol.falls_back(protocol, &posted) {
            tracing::warn!(
                lane,
                outcome = ?posted.outcome,
                "the receiver does not speak Remote Write 2.0 (415, or 2xx without a written \
                 count); sending this batch again, and everything from now on, as 1.0"
            );
            shared.metrics.set_protocol(Protocol::V1);
            continue;
        }
        let (outcome, detail) = (posted.outcome, posted.detail);
        match decide(outcome, attempt, &shared.retry, fastrand::f64()) {
            Decision::Delivered => {
                shared.metrics.sent(samples);
                for id in ids {
                    shared.queue.ack(*id).await;
                }
                return Sent::Done;
            }
            Decision::Drop { .. } if merged => {
                tracing::warn!(
                    lane,
                    ?outcome,
                    response = detail.as_deref().unwrap_or(""),
                    records = ids.len(),
                    "remote write refused a merged backlog request; sending its records one by one"
                );
                return Sent::Refused;
            }
            Decision::Drop { reason } => {
                shared.metrics.record_drop(
                    reason.reason(),
                    samples,
                    1,
                    &format_args!(
                        "lane {lane}: remote write refused the request ({outcome:?}: {}); \
                         dropping it",
                        detail.as_deref().unwrap_or("")
                    ),
                );
                shared.queue.ack(record.id).await;
                return Sent::Done;
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
                    return Sent::Shutdown;
                }
                tokio::select! {
                    () = tokio::time::sleep(after) => {}
                    () = cancel.cancelled() => return Sent::Shutdown,
                }
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

/// A 1.0 body as a 2.0 body; empty if it does not decode (then it is sent as 1.0).
fn to_v2(v1_body: &[u8]) -> Bytes {
    match remote_write::v2::transcode_v1_body(v1_body, 256 << 20) {
        Ok(body) => body.into(),
        Err(error) => {
            tracing::warn!(%error, "cannot convert a queued request to Remote Write 2.0");
            Bytes::new()
        }
    }
}

/// Whether `record` was created more than `max_age` ago.
fn past_max_age(record: &Record, max_age: Duration) -> bool {
    let age_ms = common::telemetry::now_unix_ms().saturating_sub(record.created_unix_ms);
    u128::try_from(age_ms).is_ok_and(|age| age > max_age.as_millis())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{encode_payload, Header};
    use crate::queue::{DiskQueue, QueueOptions};

    /// A queue in a tempdir with `old` records from an hour ago, then `fresh` ones from now.
    fn queue_with(dir: &Path, old: u8, fresh: u8) -> QueueHandle {
        let (mut q, _) = DiskQueue::open(dir, QueueOptions::default()).unwrap();
        let now = common::telemetry::now_unix_ms();
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

    #[test]
    fn merged_records_hold_every_series_in_order() {
        use crate::labels::encode_block;
        use crate::series::OutSample;
        use remote_write::{decode_write_request, Label};
        let labels = vec![Label {
            name: "__name__".into(),
            value: "up".into(),
        }];
        let block: std::sync::Arc<[u8]> = encode_block(&labels).into();
        let record = |id: u64, ts: i64| {
            let sample = OutSample {
                hash: 7,
                block: block.clone(),
                timestamp_ms: ts,
                value: 1.0,
            };
            let batch = crate::batch::build_batches(&[sample], 1, 10).remove(0);
            Record {
                id: RecordId(id),
                created_unix_ms: ts,
                payload: batch.payload.into(),
            }
        };
        let merged = merge(&[record(1, 10), record(2, 20), record(3, 30)]).unwrap();
        assert_eq!(merged.id, RecordId(1));
        assert_eq!(merged.created_unix_ms, 10);
        assert_eq!(decode_header(&merged.payload).unwrap().samples, 3);
        let request = decode_write_request(&merged.payload[HEADER_LEN..], 1 << 20).unwrap();
        let ts: Vec<i64> = request
            .timeseries
            .iter()
            .flat_map(|t| t.samples.iter().map(|s| s.timestamp))
            .collect();
        assert_eq!(ts, [10, 20, 30]);
        assert!(request.timeseries.iter().all(|t| t.labels == labels));
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
