//! The agent's own metrics (`slo_gateway_agent_*`).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use common::telemetry::ReloadResult;

common::label_values! {
    /// Why samples or queued requests were given up: `reason` of both drop counters.
    pub enum DropReason {
        /// The receiver refused the request for good (4xx other than 429).
        Rejected4xx => "rejected_4xx",
        /// The receiver answered a status the retry policy does not know.
        UnexpectedStatus => "unexpected_status",
        /// Queued longer than `buffer.max_age`.
        MaxAge => "max_age",
        /// A sample older than `buffer.max_age` when scraped (`honor_timestamps`).
        TooOld => "too_old",
        /// The oldest records, pushed out by `buffer.max_bytes`.
        MaxBytes => "max_bytes",
        /// A damaged queue record.
        Corrupt => "corrupt",
        /// A queue segment that vanished.
        Missing => "missing",
        /// The queue refused the write (disk and memory fallback full).
        QueueError => "queue_error",
        /// Held in memory (the disk full or failing) when the agent stopped, and not writable
        /// even into the queue's reserve.
        Unwritten => "unwritten_at_shutdown",
        /// Not newer than the last sample sent for its series.
        NotNewer => "not_newer",
        /// Two series with one hash in one scrape.
        HashCollision => "hash_collision",
    }
}

common::label_values! {
    /// `result` of a scrape.
    pub enum ScrapeResult {
        /// The body was read whole.
        Success => "success",
        /// The body was cut at `scrape.max_body_bytes`.
        Truncated => "truncated",
        /// More series than `scrape.max_series`: refused whole.
        Refused => "refused",
        /// The request or the body failed.
        Error => "error",
        /// A redirect to another origin (scheme, host, port): refused, never followed.
        RedirectRefused => "redirect_refused",
        /// A body the agent cannot read (an unrequested `Content-Encoding`, binary bytes, or not
        /// one parsable sample line): a failed scrape, no series goes stale.
        Unreadable => "unreadable",
    }
}

common::label_values! {
    /// `protocol` the agent sends.
    pub enum ProtocolVersion {
        /// Remote Write 1.0.
        V1 => "1.0",
        /// Remote Write 2.0.
        V2 => "2.0",
    }
}

/// `reason` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: DropReason,
}

/// `protocol` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabel {
    protocol: ProtocolVersion,
}

/// `result` label of scrapes.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScrapeResultLabel {
    result: ScrapeResult,
}

/// `result` label of certificate reloads.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabel {
    result: ReloadResult,
}

/// `code` label of requests: the HTTP status, or `network` / `timeout`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Code {
    code: String,
}

/// Handles to every agent metric; cheap to clone (all share the registered values).
#[derive(Debug, Clone)]
pub struct AgentMetrics {
    samples_scraped: Counter,
    samples_sent: Counter,
    samples_dropped: Family<Reason, Counter>,
    records_dropped: Family<Reason, Counter>,
    stale_markers: Counter,
    scrape_overruns: Counter,
    parse_errors: Counter,
    scrapes: Family<ScrapeResultLabel, Counter>,
    scrape_duration: Histogram,
    send_duration: Histogram,
    requests: Family<Code, Counter>,
    bytes_sent: Counter,
    last_successful_send: Gauge<f64, AtomicU64>,
    series_active: Gauge,
    queue_bytes: Gauge,
    queue_records: Gauge,
    queue_oldest_age: Gauge<f64, AtomicU64>,
    queue_memory_fallback: Gauge,
    queue_corrupt_bytes: Counter,
    protocol: Family<ProtocolLabel, Gauge>,
    replayed_records: Counter,
    tls_reloads: Family<ReloadLabel, Counter>,
}

impl AgentMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            samples_scraped: Counter::default(),
            samples_sent: Counter::default(),
            samples_dropped: Family::default(),
            records_dropped: Family::default(),
            stale_markers: Counter::default(),
            scrape_overruns: Counter::default(),
            parse_errors: Counter::default(),
            scrapes: Family::default(),
            scrape_duration: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            send_duration: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            requests: Family::default(),
            bytes_sent: Counter::default(),
            last_successful_send: Gauge::default(),
            series_active: Gauge::default(),
            queue_bytes: Gauge::default(),
            queue_records: Gauge::default(),
            queue_oldest_age: Gauge::default(),
            queue_memory_fallback: Gauge::default(),
            queue_corrupt_bytes: Counter::default(),
            protocol: Family::default(),
            replayed_records: Counter::default(),
            tls_reloads: Family::default(),
        };
        let r = registry;
        let p = |name: &str| format!("slo_gateway_agent_{name}");
        r.register(
            p("samples_scraped"),
            "Samples parsed from /federate",
            m.samples_scraped.clone(),
        );
        r.register(
            p("samples_sent"),
            "Samples (including stale markers) acknowledged by the receiver",
            m.samples_sent.clone(),
        );
        r.register(
            p("samples_dropped"),
            "Samples given up, by reason (not_newer: not newer than the last sent for its series)",
            m.samples_dropped.clone(),
        );
        r.register(
            p("queue_records_dropped"),
            "Queued requests given up, by reason (max_bytes, max_age, corrupt, missing, rejected_4xx, unwritten_at_shutdown, ...)",
            m.records_dropped.clone(),
        );
        r.register(
            p("stale_markers"),
            "Stale markers emitted for vanished series",
            m.stale_markers.clone(),
        );
        r.register(
            p("scrape_overruns"),
            "Scrape rounds (scrape, parse, queue) that took longer than scrape.interval, delaying the next",
            m.scrape_overruns.clone(),
        );
        r.register(
            p("parse_errors"),
            "Lines of scrape bodies that could not be parsed",
            m.parse_errors.clone(),
        );
        r.register(
            p("scrapes"),
            "Scrapes by result (success, truncated, refused, error, redirect_refused, unreadable)",
            m.scrapes.clone(),
        );
        r.register(
            p("scrape_duration_seconds"),
            "Duration of one target's scrape",
            m.scrape_duration.clone(),
        );
        r.register(
            p("send_duration_seconds"),
            "Duration of one remote-write request",
            m.send_duration.clone(),
        );
        r.register(
            p("requests"),
            "Remote-write requests by HTTP status code, network or timeout",
            m.requests.clone(),
        );
        r.register(
            p("bytes_sent"),
            "Compressed request bytes put on the wire (every attempt)",
            m.bytes_sent.clone(),
        );
        r.register(
            p("last_successful_send_timestamp_seconds"),
            "Unix time of the last acknowledged request",
            m.last_successful_send.clone(),
        );
        r.register(
            p("series_active"),
            "Series tracked (seen and not ended by a stale marker)",
            m.series_active.clone(),
        );
        r.register(
            p("queue_bytes"),
            "Bytes of unacknowledged records in the queue",
            m.queue_bytes.clone(),
        );
        r.register(
            p("queue_records"),
            "Unacknowledged records in the queue",
            m.queue_records.clone(),
        );
        r.register(
            p("queue_oldest_record_age_seconds"),
            "Age of the oldest unacknowledged record (0 when empty)",
            m.queue_oldest_age.clone(),
        );
        r.register(
            p("queue_memory_fallback"),
            "1 while records are held in memory because disk writes fail",
            m.queue_memory_fallback.clone(),
        );
        r.register(
            p("queue_corrupt_bytes"),
            "Bytes of queue segment files found damaged (at startup or when read back)",
            m.queue_corrupt_bytes.clone(),
        );
        r.register(
            p("remote_write_protocol"),
            "1 for the Remote Write protocol the agent sends with (negotiated with remote_write.protocol: auto)",
            m.protocol.clone(),
        );
        r.register(
            p("queue_replayed_records"),
            "Records found in the queue at startup and replayed",
            m.replayed_records.clone(),
        );
        r.register(
            p("tls_reloads"),
            "Client certificate reloads by result",
            m.tls_reloads.clone(),
        );
        m
    }

    /// Samples parsed from scrapes so far.
    pub fn samples_scraped(&self) -> u64 {
        self.samples_scraped.get()
    }
    /// Samples (including stale markers) acknowledged by the receiver so far.
    pub fn samples_sent(&self) -> u64 {
        self.samples_sent.get()
    }
    /// Samples dropped for `reason`.
    pub fn samples_dropped(&self, reason: DropReason) -> u64 {
        self.samples_dropped.get_or_create(&Reason { reason }).get()
    }
    /// Queue records dropped for `reason`.
    pub fn records_dropped(&self, reason: DropReason) -> u64 {
        self.records_dropped.get_or_create(&Reason { reason }).get()
    }
    /// Stale markers emitted so far.
    pub fn stale_markers(&self) -> u64 {
        self.stale_markers.get()
    }
    /// Unparsable lines so far.
    pub fn parse_errors(&self) -> u64 {
        self.parse_errors.get()
    }
    /// Scrapes with `result`.
    pub fn scrapes(&self, result: ScrapeResult) -> u64 {
        self.scrapes
            .get_or_create(&ScrapeResultLabel { result })
            .get()
    }
    /// Requests answered with `code` (`"204"`, `"503"`, `"network"`, `"timeout"`).
    pub fn requests(&self, code: &str) -> u64 {
        self.requests
            .get_or_create(&Code {
                code: code.to_string(),
            })
            .get()
    }
    /// Compressed bytes put on the wire so far (every attempt).
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent.get()
    }
    /// Unix time (seconds) of the last acknowledged request; 0 before the first.
    pub fn last_successful_send_unix(&self) -> f64 {
        self.last_successful_send.get()
    }
    /// Series currently tracked.
    pub fn series_active(&self) -> i64 {
        self.series_active.get()
    }
    /// Unacknowledged records in the queue (as of the last update, about once per second).
    pub fn queue_records(&self) -> i64 {
        self.queue_records.get()
    }
    /// Bytes of unacknowledged records in the queue (as of the last update).
    pub fn queue_bytes(&self) -> i64 {
        self.queue_bytes.get()
    }
    /// Age of the oldest unacknowledged record, seconds (as of the last update).
    pub fn queue_oldest_age_seconds(&self) -> f64 {
        self.queue_oldest_age.get()
    }
    /// Whether records are held in memory because disk writes fail (as of the last update).
    pub fn queue_memory_mode(&self) -> bool {
        self.queue_memory_fallback.get() != 0
    }

    pub(crate) fn scraped(&self, n: u64) {
        self.samples_scraped.inc_by(n);
    }
    pub(crate) fn sent(&self, samples: u64) {
        self.samples_sent.inc_by(samples);
        self.last_successful_send
            .set(common::telemetry::now_unix_ms() as f64 / 1000.0);
    }
    pub(crate) fn dropped_samples(&self, reason: DropReason, n: u64) {
        if n > 0 {
            self.samples_dropped
                .get_or_create(&Reason { reason })
                .inc_by(n);
        }
    }
    /// Gives up `samples` in `records` queued requests for `reason` and logs it with `detail`
    /// (what was given up and why) at error level: a drop loses data for good. Routine drops
    /// (`not_newer`, `hash_collision`, `too_old`) are counted without a log line instead.
    pub(crate) fn record_drop(
        &self,
        reason: DropReason,
        samples: u64,
        records: u64,
        detail: &dyn std::fmt::Display,
    ) {
        tracing::error!(%reason, samples, records, "{detail}");
        self.dropped_samples(reason, samples);
        self.dropped_records(reason, records);
    }
    pub(crate) fn dropped_records(&self, reason: DropReason, n: u64) {
        if n > 0 {
            self.records_dropped
                .get_or_create(&Reason { reason })
                .inc_by(n);
        }
    }
    pub(crate) fn stale(&self, n: u64) {
        self.stale_markers.inc_by(n);
    }
    pub(crate) fn overrun(&self) {
        self.scrape_overruns.inc();
    }
    pub(crate) fn parse_error(&self) {
        self.parse_errors.inc();
    }
    pub(crate) fn scrape(&self, result: ScrapeResult, seconds: f64) {
        self.scrapes
            .get_or_create(&ScrapeResultLabel { result })
            .inc();
        self.scrape_duration.observe(seconds);
    }
    pub(crate) fn request(&self, code: String, bytes: u64, seconds: f64) {
        self.requests.get_or_create(&Code { code }).inc();
        self.bytes_sent.inc_by(bytes);
        self.send_duration.observe(seconds);
    }
    pub(crate) fn set_series_active(&self, n: usize) {
        self.series_active.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    pub(crate) fn set_queue(
        &self,
        records: u64,
        bytes: u64,
        oldest_age_seconds: f64,
        memory: bool,
    ) {
        self.queue_records
            .set(i64::try_from(records).unwrap_or(i64::MAX));
        self.queue_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.queue_oldest_age.set(oldest_age_seconds);
        self.queue_memory_fallback.set(i64::from(memory));
    }
    pub(crate) fn set_protocol(&self, protocol: remote_write::headers::Protocol) {
        let sending = match protocol {
            remote_write::headers::Protocol::V1 => ProtocolVersion::V1,
            remote_write::headers::Protocol::V2 => ProtocolVersion::V2,
        };
        for &version in ProtocolVersion::ALL {
            self.protocol
                .get_or_create(&ProtocolLabel { protocol: version })
                .set(i64::from(version == sending));
        }
    }
    /// Whether the agent currently sends Remote Write 2.0.
    pub fn sends_v2(&self) -> bool {
        self.protocol
            .get_or_create(&ProtocolLabel {
                protocol: ProtocolVersion::V2,
            })
            .get()
            == 1
    }
    pub(crate) fn corrupt_bytes(&self, n: u64) {
        self.queue_corrupt_bytes.inc_by(n);
    }
    pub(crate) fn replayed(&self, n: u64) {
        self.replayed_records.inc_by(n);
    }
    pub(crate) fn tls_reload(&self, ok: bool) {
        self.tls_reloads
            .get_or_create(&ReloadLabel {
                result: ReloadResult::of(ok),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_drop_counts_samples_and_records_of_its_reason() {
        let m = AgentMetrics::register(&mut Registry::default());
        m.record_drop(DropReason::MaxAge, 300, 2, &"too old");
        m.record_drop(DropReason::Corrupt, 0, 1, &"unreadable");
        assert_eq!(
            (
                m.samples_dropped(DropReason::MaxAge),
                m.records_dropped(DropReason::MaxAge)
            ),
            (300, 2)
        );
        assert_eq!(
            (
                m.samples_dropped(DropReason::Corrupt),
                m.records_dropped(DropReason::Corrupt)
            ),
            (0, 1)
        );
    }

    #[test]
    fn exposes_the_documented_names() {
        let mut registry = Registry::default();
        let m = AgentMetrics::register(&mut registry);
        m.scraped(3);
        m.sent(2);
        m.dropped_samples(DropReason::Rejected4xx, 1);
        m.dropped_records(DropReason::MaxAge, 1);
        m.scrape(ScrapeResult::Success, 0.1);
        m.request("204".into(), 10, 0.1);
        m.set_queue(1, 2, 3.0, false);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for name in [
            "slo_gateway_agent_samples_scraped_total 3",
            "slo_gateway_agent_samples_sent_total 2",
            "slo_gateway_agent_samples_dropped_total{reason=\"rejected_4xx\"} 1",
            "slo_gateway_agent_queue_records_dropped_total{reason=\"max_age\"} 1",
            "slo_gateway_agent_scrapes_total{result=\"success\"} 1",
            "slo_gateway_agent_scrape_duration_seconds_count 1",
            "slo_gateway_agent_send_duration_seconds_count 1",
            "slo_gateway_agent_requests_total{code=\"204\"} 1",
            "slo_gateway_agent_bytes_sent_total 10",
            "slo_gateway_agent_last_successful_send_timestamp_seconds ",
            "slo_gateway_agent_series_active 0",
            "slo_gateway_agent_queue_records 1",
            "slo_gateway_agent_queue_bytes 2",
            "slo_gateway_agent_queue_oldest_record_age_seconds 3",
            "slo_gateway_agent_stale_markers_total 0",
            "slo_gateway_agent_scrape_overruns_total 0",
            "slo_gateway_agent_parse_errors_total 0",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
        assert_eq!(
            (m.samples_scraped(), m.samples_sent(), m.bytes_sent()),
            (3, 2, 10)
        );
    }
}
