//! The queue as the async tasks share it, and its housekeeping: every call runs the synchronous
//! [`DiskQueue`] on the blocking pool; once a second old records are expired and the queue
//! gauges, drop counters and readiness detail refreshed.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::batch::Batch;
use super::metrics::{AgentMetrics, DropReason};
use super::queue::{DiskQueue, DropCounts, QueueError, RecordId};
use common::telemetry::Readiness;

/// How often old records are expired and the queue gauges refreshed; also the idle poll.
pub(crate) const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// The queue shared by the scrape loop (append) and the sender (take, ack, requeue).
///
/// Every call runs on the blocking pool: [`DiskQueue`] does synchronous file I/O.
#[derive(Debug, Clone)]
pub(crate) struct QueueHandle {
    inner: Arc<Mutex<DiskQueue>>,
    /// Notified after every append (the dispatcher waits on it when the queue is empty).
    pub(crate) appended: Arc<Notify>,
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

    /// Whether each of `ids` is still to be delivered (see [`DiskQueue::is_live`]).
    pub(crate) async fn live(&self, ids: Vec<RecordId>) -> Vec<bool> {
        self.with(move |q| ids.iter().map(|&id| q.is_live(id)).collect())
            .await
    }

    pub(crate) async fn ack(&self, id: RecordId) {
        if let Err(error) = self.with(move |q| q.ack(id)).await {
            tracing::warn!(%error, "queue ack could not be persisted (the record may be resent)");
        }
    }

    pub(crate) async fn requeue(&self, ids: Vec<RecordId>) {
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

/// Every [`HOUSEKEEPING`] until `cancel`: expires records older than `buffer.max_age` and
/// publishes the queue gauges and drop counters. A task of its own, so the gauges stay current
/// while the dispatcher waits on a lane stuck in an outage. Returns the drop counts published.
pub(crate) async fn housekeeping_loop(
    queue: QueueHandle,
    metrics: AgentMetrics,
    readiness: Readiness,
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
        // Still ready (scraping and sending go on), but no longer durable: say so.
        readiness.set_detail(if metrics.queue_memory_mode() {
            "queue: memory mode (disk writes fail; queued data is lost on a crash)"
        } else {
            ""
        });
    }
    drops
}

/// Expires old records and publishes queue gauges and drop counters. Returns the drop counts.
pub(crate) async fn housekeeping(
    queue: &QueueHandle,
    metrics: &AgentMetrics,
    last: DropCounts,
) -> DropCounts {
    let now = common::telemetry::now_unix_ms();
    let (expired, records, bytes, oldest, memory, drops) = queue
        .with(move |q| {
            let expired = q.expire(now);
            if let Err(error) = q.refill_reserve() {
                tracing::debug!(%error, "the queue's disk reserve is still short");
            }
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
    metrics.dropped_records(
        DropReason::MaxBytes,
        drops.max_bytes.saturating_sub(last.max_bytes),
    );
    metrics.dropped_records(
        DropReason::MaxAge,
        drops.max_age.saturating_sub(last.max_age),
    );
    metrics.dropped_records(
        DropReason::Corrupt,
        drops.corrupt.saturating_sub(last.corrupt),
    );
    metrics.dropped_records(
        DropReason::Missing,
        drops.missing.saturating_sub(last.missing),
    );
    metrics.corrupt_bytes(drops.corrupt_bytes.saturating_sub(last.corrupt_bytes));
    drops
}
