//! The agent: runs in a seed, scrapes the aggregate Prometheus' `/federate`, and delivers the
//! series over mTLS Remote Write (2.0 where the receiver speaks it, else 1.0) without loss
//! across outages and restarts.
//!
//! ```text
//!  every scrape.interval                                    one task per lane, in order
//!  GET /federate ─► LineSplitter ─► parse_line ─► SeriesState ─► lanes ─► DiskQueue ─► dispatch ─► POST
//!   (streamed)       (scrape.rs)                 (series.rs)   (batch.rs)  (queue/)  (sender.rs)  (retry.rs)
//! ```
//!
//! - [`scrape`]: one streamed GET per target with its `match[]` selectors; bad lines are counted
//!   and skipped, the rest of the body is kept.
//! - [`series`]: labels normalised (empty values dropped, external labels added, sorted) into
//!   their protobuf block ([`labels`]), known series found without allocating; per series only
//!   samples strictly newer than the last sent go out; vanished series get one stale marker; a
//!   scrape above `scrape.max_series` is refused whole.
//! - [`batch`]: series hashed into `remote_write.shards` lanes, requests of at most
//!   `max_samples_per_request` samples, one queue record each (payload format documented there).
//! - [`queue`]: the durable on-disk queue; a record is removed only once acknowledged (2xx) or
//!   dropped for a non-retryable status.
//! - [`sender`]: oldest first, each lane strictly in order; [`client`] builds the HTTP client
//!   (certificates hot-reloaded) and POSTs; [`queue_handle`] runs the queue on the blocking pool
//!   and does its housekeeping (expiry, gauges).
//! - [`retry`]: the retry policy, a pure function.
//! - [`status`]: the `/status` page.
//!
//! Readiness (`/readyz`) turns true after the first successful scrape of any target: before that
//! the agent has nothing to send, and a seed whose agent never becomes ready is easy to spot.

pub mod batch;
mod client;
pub mod config;
mod hot_path;
mod labels;
pub mod metrics;
pub mod queue;
mod queue_handle;
pub mod retry;
pub mod scrape;
pub mod sender;
pub mod series;
mod status;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use hot_path::HotPath;
pub use metrics::AgentMetrics;

use crate::config::{AgentConfig, DeriveSelectors};
use crate::metrics::DropReason;
use common::telemetry::{self, Readiness};
use common::tls::{self, ClientFiles};
use queue::{DiskQueue, QueueOptions};
use queue_handle::QueueHandle;
use remote_write::Label;
use scrape::{ScrapeTarget, Scraper};
use sender::SenderShared;
use series::{ScrapeBuf, SeriesState};
use status::StatusBoard;
use yaml_config::resolve;

/// Most disk space the queue holds back (file `reserve` in `buffer.path`) so that the records
/// it keeps in memory while the disk is full are written at shutdown instead of lost.
const MAX_RESERVE_BYTES: u64 = 64 << 20;

/// The queue's reserve and memory fallback for `buffer.max_bytes`: the reserve a sixteenth of it
/// (at most [`MAX_RESERVE_BYTES`]), the memory fallback a sixteenth smaller than the reserve, so
/// that everything held in memory fits the reserve with its segment headers and partly used file
/// system blocks.
fn reserve_and_fallback(max_bytes: u64) -> (u64, u64) {
    let reserve = (max_bytes / 16).min(MAX_RESERVE_BYTES);
    (reserve, reserve - reserve / 16)
}

/// A configured agent, ready to [`run`](Agent::run).
#[derive(Debug)]
pub struct Agent {
    /// The validated config, as loaded: never changed.
    config: AgentConfig,
    /// `scrape.targets` with their selectors resolved.
    targets: Vec<ScrapeTarget>,
    tls_files: ClientFiles,
    scraper: Scraper,
    queue: QueueHandle,
    metrics: AgentMetrics,
    readiness: Readiness,
    status: StatusBoard,
}

impl Agent {
    /// Builds the agent: resolves the config's relative paths against `base_dir`, checks the TLS
    /// material, opens (and replays) the queue and registers the metrics in `registry`.
    pub fn new(
        config: AgentConfig,
        base_dir: &Path,
        registry: &mut Registry,
    ) -> anyhow::Result<Agent> {
        Self::with_spec_selectors(config, base_dir, registry, None)
    }

    /// [`Agent::new`], with `derive` turning each target's `match_from_specs` into selectors.
    pub fn with_spec_selectors(
        config: AgentConfig,
        base_dir: &Path,
        registry: &mut Registry,
        derive: Option<DeriveSelectors>,
    ) -> anyhow::Result<Agent> {
        let rw_tls = &config.remote_write.tls;
        let tls_files = ClientFiles {
            ca: resolve(base_dir, &rw_tls.ca_file),
            cert: resolve(base_dir, &rw_tls.cert_file),
            key: resolve(base_dir, &rw_tls.key_file),
        };
        // Fail at startup, not at the first send, when the certificates are unusable.
        tls::client_config(&tls_files).context("remote_write.tls")?;
        let buffer_path = resolve(base_dir, &config.buffer.path);
        // Selectors derived from SLO specs join the hand-written ones once, at startup.
        let targets = config
            .scrape
            .targets
            .iter()
            .enumerate()
            .map(|(i, target)| {
                let selectors = target
                    .resolved_selectors(base_dir, derive)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("scrape.targets[{i}].match_from_specs"))?;
                Ok(ScrapeTarget {
                    url: target.url.clone(),
                    selectors,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let scrape_ca = config.scrape.ca_file.as_ref().map(|p| resolve(base_dir, p));

        let metrics = AgentMetrics::register(registry);
        let external: Arc<[Label]> = config
            .external_labels
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(name, value)| Label {
                name: name.clone(),
                value: value.clone(),
            })
            .collect();
        let scraper = Scraper::new(
            tls::server_auth_client_config(scrape_ca.as_deref()).context("scrape.ca_file")?,
            config.scrape.timeout,
            config.scrape.max_body_bytes,
            config.scrape.max_series,
            external,
            metrics.clone(),
        )
        .context("building the scrape HTTP client")?;

        let buffer = &config.buffer;
        let (reserve_bytes, memory_fallback_bytes) = reserve_and_fallback(buffer.max_bytes);
        let options = QueueOptions {
            max_bytes: buffer.max_bytes,
            max_age: buffer.max_age,
            segment_bytes: (buffer.max_bytes / 4).clamp(64 << 10, 8 << 20),
            fsync: buffer.fsync,
            memory_fallback_bytes,
            reserve_bytes,
        };
        std::fs::create_dir_all(&buffer_path)
            .with_context(|| format!("creating buffer.path {}", buffer_path.display()))?;
        let (queue, report) = DiskQueue::open(&buffer_path, options)
            .with_context(|| format!("opening the queue in {}", buffer_path.display()))?;
        metrics.replayed(report.replayable_records);
        if report.replayable_records > 0 {
            tracing::info!(
                records = report.replayable_records,
                bytes = report.replayable_bytes,
                "queue opened with unsent records; replaying them first"
            );
        }
        if report.corrupt_records + report.missing_records + report.lost_bytes > 0 {
            tracing::warn!(
                corrupt_records = report.corrupt_records,
                missing_records = report.missing_records,
                lost_bytes = report.lost_bytes,
                "queue damage found at startup (details logged per segment above)"
            );
        }
        let status = StatusBoard::new(targets.iter().map(|t| t.url.as_str()));
        Ok(Agent {
            config,
            targets,
            tls_files,
            scraper,
            queue: QueueHandle::new(queue),
            metrics,
            readiness: Readiness::default(),
            status,
        })
    }

    /// The agent's metrics (shared handles; read counters from it while it runs).
    pub fn metrics(&self) -> AgentMetrics {
        self.metrics.clone()
    }

    /// Readiness for `/readyz`: true after the first successful scrape; its detail names a
    /// queue in memory mode.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// The `/status` page's route, to serve next to the admin endpoints.
    pub fn status_router(&self) -> axum::Router {
        status::router(self.status.clone(), self.metrics.clone())
    }

    /// Scrapes and sends until `shutdown` completes; then stops scraping, gives a request in
    /// flight up to `remote_write.shutdown_grace` to finish, leaves the rest in the queue and returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let cancel = cancelled_by(shutdown);
        let result = self.run_until(cancel.clone()).await;
        // Also ends the shutdown watcher when we stop on an error.
        cancel.cancel();
        result
    }

    async fn run_until(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let rw = &self.config.remote_write;
        let metrics = self.metrics.clone();
        let files = self.tls_files.clone();
        let tls_rx = tls::watch_files(
            vec![files.ca.clone(), files.cert.clone(), files.key.clone()],
            rw.tls.reload_interval,
            move || tls::client_config(&files),
            move |ok| metrics.tls_reload(ok),
        )
        .context("remote_write.tls")?;

        let shared = Arc::new(sender_shared(&self.config, &self.metrics, &self.queue)?);
        let mut tasks = tokio::task::JoinSet::new();
        let mut lanes = Vec::with_capacity(rw.shards);
        for index in 0..rw.shards.max(1) {
            let (tx, rx) = mpsc::channel(sender::LANE_BUFFER);
            lanes.push(tx);
            tasks.spawn(sender::lane(
                index,
                rx,
                tls_rx.clone(),
                shared.clone(),
                cancel.clone(),
            ));
        }
        let catch_up = rw.max_catchup_requests_per_second.map(|rate| {
            // Validated positive; a day per request bounds absurdly small rates.
            let day = Duration::from_secs(86_400);
            let step = Duration::try_from_secs_f64(1.0 / rate).map_or(day, |s| s.min(day));
            (step, self.config.scrape.interval * 2)
        });
        let housekeeping = tokio::spawn(queue_handle::housekeeping_loop(
            self.queue.clone(),
            self.metrics.clone(),
            self.readiness.clone(),
            cancel.clone(),
        ));
        tasks.spawn(sender::dispatch(
            self.queue.clone(),
            lanes,
            self.metrics.clone(),
            catch_up,
            cancel.clone(),
        ));

        let queue = self.queue.clone();
        scrape_loop(&self, cancel.clone()).await;
        while tasks.join_next().await.is_some() {}
        // After the lanes' last acks: publish the final queue figures.
        let drops = housekeeping.await.unwrap_or_default();
        queue_handle::housekeeping(&queue, &self.metrics, drops).await;
        let (flushed, unwritten, queued) = queue
            .with(|q| {
                let flushed = q.flush();
                let unwritten = if flushed.is_err() {
                    q.unwritten()
                } else {
                    Vec::new()
                };
                (flushed, unwritten, q.len_records())
            })
            .await;
        match flushed {
            Ok(()) => {
                tracing::info!(
                    records = queued,
                    "agent stopped; unsent records stay queued"
                );
                Ok(())
            }
            // Written already: at worst some acknowledged records are sent again.
            Err(error) if unwritten.is_empty() => {
                Err(error).context("flushing the queue at shutdown (records are on disk)")
            }
            Err(error) => Err(self.count_unwritten(&unwritten, &error)),
        }
    }

    /// Counts and logs the records that were only in memory at shutdown and could not be
    /// written even with the reserve released; returns the error to exit with.
    fn count_unwritten(
        &self,
        unwritten: &[bytes::Bytes],
        error: &queue::QueueError,
    ) -> anyhow::Error {
        let records = unwritten.len() as u64;
        let samples: u64 = unwritten
            .iter()
            .map(|payload| batch::decode_header(payload).map_or(0, |h| u64::from(h.samples)))
            .sum();
        self.metrics.dropped_records(DropReason::Unwritten, records);
        self.metrics.dropped_samples(DropReason::Unwritten, samples);
        tracing::error!(
            records,
            samples,
            %error,
            "agent stopped; queued records held in memory (the disk is full or failing) could not be written and are lost"
        );
        anyhow::anyhow!(
            "{records} queued records ({samples} samples) held in memory could not be written at shutdown and are lost: {error}"
        )
    }
}

/// Settings of the sender derived from the config.
fn sender_shared(
    config: &AgentConfig,
    metrics: &AgentMetrics,
    queue: &QueueHandle,
) -> anyhow::Result<SenderShared> {
    let rw = &config.remote_write;
    let mut url = reqwest::Url::parse(&rw.url).context("remote_write.url")?;
    let server_name = match &rw.tls.server_name {
        Some(name) => {
            let host = url
                .host_str()
                .context("remote_write.url has no host")?
                // An IPv6 literal comes bracketed; the resolver wants it bare.
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = url.port_or_known_default().unwrap_or(443);
            url.set_host(Some(name))
                .context("remote_write.tls.server_name")?;
            Some((name.clone(), host, port))
        }
        None => None,
    };
    metrics.set_protocol(client::Negotiation::new(rw.protocol).current());
    Ok(SenderShared {
        endpoint: client::Endpoint {
            url,
            server_name,
            proxy_url: rw.proxy_url.clone(),
            timeout: rw.timeout,
        },
        retry: rw.retry.clone(),
        shutdown_grace: rw.shutdown_grace,
        max_age: config.buffer.max_age,
        protocol: client::Negotiation::new(rw.protocol),
        max_samples_per_request: rw.max_samples_per_request,
        max_samples_per_backlog_request: rw.max_samples_per_backlog_request,
        metrics: metrics.clone(),
        queue: queue.clone(),
    })
}

/// Scrapes all targets every interval until `cancel`; a round in progress is abandoned, a round
/// being queued is finished.
async fn scrape_loop(agent: &Agent, cancel: CancellationToken) {
    let config = &agent.config;
    let targets = &agent.targets;
    let mut state = SeriesState::new(
        targets.len(),
        config.scrape.honor_timestamps,
        config.buffer.max_age,
    );
    // One reused buffer per target: a known series costs no allocation (see `labels`).
    let mut bufs: Vec<ScrapeBuf> = targets.iter().map(|_| ScrapeBuf::default()).collect();
    let mut ticker = tokio::time::interval(config.scrape.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = cancel.cancelled() => return,
        }
        let scrape_ts = telemetry::now_unix_ms();
        let round_started = tokio::time::Instant::now();
        let round = futures_util::future::join_all(
            targets
                .iter()
                .zip(bufs.iter_mut())
                .enumerate()
                .map(|(i, (t, buf))| agent.scraper.scrape(i, t, buf)),
        );
        let results = tokio::select! {
            results = round => results,
            () = cancel.cancelled() => return,
        };
        let mut samples = Vec::new();
        for (target, scraped) in results.into_iter().enumerate() {
            agent.status.update(target, |t| {
                t.last_scrape_unix_ms = Some(scrape_ts);
                t.last_result = Some(scraped.result());
                t.last_error = scraped.error.as_ref().map(|e| error_chain(e));
                t.last_duration = scraped.duration;
                if scraped.refused {
                    t.refused += 1;
                } else {
                    t.series = scraped.samples;
                }
            });
            if scraped.refused {
                // Refused whole: no samples, no stale markers, the old state stays.
                continue;
            }
            if scraped.error.is_none() && !scraped.truncated {
                agent.readiness.set(true);
            }
            let buf = &mut bufs[target];
            let applied = state.apply(target, scrape_ts, buf, scraped.complete, &mut samples);
            buf.shrink();
            agent.metrics.stale(applied.stale_markers);
            agent
                .metrics
                .dropped_samples(DropReason::NotNewer, applied.not_newer);
            agent
                .metrics
                .dropped_samples(DropReason::HashCollision, applied.collisions);
            agent
                .metrics
                .dropped_samples(DropReason::TooOld, applied.too_old);
        }
        agent.metrics.set_series_active(state.active());
        if samples.is_empty() {
            continue;
        }
        let (lanes, max) = (
            config.remote_write.shards,
            config.remote_write.max_samples_per_request,
        );
        // Protobuf + snappy of a large federate body is CPU work: keep it off the async workers.
        let encode = move || batch::build_batches(&samples, lanes, max);
        let batches = match tokio::task::spawn_blocking(encode).await {
            Ok(batches) => batches,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        if let Some(failure) = agent.queue.append_all(scrape_ts, batches).await {
            agent.metrics.record_drop(
                DropReason::QueueError,
                failure.samples,
                failure.records,
                &format_args!(
                    "queueing requests failed; their samples are lost: {}",
                    failure.first
                ),
            );
        }
        report_overrun(agent, round_started.elapsed());
    }
}

/// A round longer than the interval delays the next ones (`MissedTickBehavior::Delay`): say
/// so, or a seed too large for its interval silently gets coarser data than configured.
fn report_overrun(agent: &Agent, round: Duration) {
    let interval = agent.config.scrape.interval;
    if round > interval {
        agent.metrics.overrun();
        tracing::warn!(
            ?round,
            ?interval,
            "a scrape round (scrape, parse, queue) took longer than scrape.interval; later rounds are delayed"
        );
    }
}

/// A token cancelled when `shutdown` completes; cancelling it early ends the watcher task too.
fn cancelled_by(shutdown: impl Future<Output = ()> + Send + 'static) -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown => trigger.cancel(),
            () = trigger.cancelled() => {}
        }
    });
    token
}

/// An error with its sources: reqwest's own message ("error sending request") hides the connect
/// or TLS cause that an operator needs.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// The runtime the agent runs on. Queue operations hold one mutex on the blocking pool, so more
/// than a few blocking threads would only wait for it (and each idle one keeps its stack and
/// allocator cache resident).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(4)
        .build()
}

/// Runs the agent from a config file until SIGTERM or Ctrl-C, serving `/metrics`, `/healthz`,
/// `/readyz` and `/status` on `listen`.
/// `derive` turns `match_from_specs` into selectors (none in the lean agent binary).
pub async fn run_from_config(path: &Path, derive: Option<DeriveSelectors>) -> anyhow::Result<()> {
    serve_from_config(path, derive, telemetry::shutdown_signal()).await
}

/// [`run_from_config`] until `shutdown` completes.
async fn serve_from_config(
    path: &Path,
    derive: Option<DeriveSelectors>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config: AgentConfig = yaml_config::load(path)?;
    let base_dir = path.parent().unwrap_or(Path::new("."));
    let listen = config.listen;
    let mut registry = Registry::default();
    let agent = Agent::with_spec_selectors(config, base_dir, &mut registry, derive)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding listen address {listen}"))?;
    tracing::info!(%listen, "agent admin endpoints listening");
    let stop = cancelled_by(shutdown);
    let admin = tokio::spawn(telemetry::serve_admin_with_routes(
        listener,
        Arc::new(registry),
        agent.readiness(),
        agent.status_router(),
        stop.clone().cancelled_owned(),
    ));
    let result = agent.run(stop.clone().cancelled_owned()).await;
    stop.cancel();
    match tokio::time::timeout(Duration::from_secs(5), admin).await {
        Ok(Ok(Err(error))) => tracing::warn!(%error, "admin server failed"),
        Ok(_) => {}
        Err(_) => tracing::warn!("admin server did not stop in time"),
    }
    result
}
