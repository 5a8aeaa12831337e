//! The agent's status page (`/status` on its admin port): its targets and its queue, as plain
//! HTML without external assets, refreshing itself every few seconds.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::metrics::{AgentMetrics, DropReason, ScrapeResult};
use common::telemetry::html_escape as escape;

/// Seconds between automatic reloads of the page.
const REFRESH_SECONDS: u32 = 5;

/// What the page shows of one target.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TargetStatus {
    /// The federate URL.
    pub url: String,
    /// Start of the last scrape, Unix ms; `None` before the first.
    pub last_scrape_unix_ms: Option<i64>,
    /// Result of the last scrape; `None` before the first.
    pub last_result: Option<ScrapeResult>,
    /// Why the last scrape failed.
    pub last_error: Option<String>,
    /// How long the last scrape took.
    pub last_duration: Duration,
    /// Sample lines of the last scrape that was not refused.
    pub series: usize,
    /// Scrapes refused for `scrape.max_series` since the start.
    pub refused: u64,
}

/// Per-target status, updated by the scrape loop and read by the page.
#[derive(Debug, Clone, Default)]
pub(crate) struct StatusBoard(Arc<Mutex<Vec<TargetStatus>>>);

impl StatusBoard {
    /// A board for the targets at `urls`.
    pub fn new<'a>(urls: impl IntoIterator<Item = &'a str>) -> Self {
        let targets = urls
            .into_iter()
            .map(|url| TargetStatus {
                url: url.to_string(),
                ..TargetStatus::default()
            })
            .collect();
        Self(Arc::new(Mutex::new(targets)))
    }

    /// Changes target `index`'s status.
    pub fn update(&self, index: usize, f: impl FnOnce(&mut TargetStatus)) {
        let mut targets = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(target) = targets.get_mut(index) {
            f(target);
        }
    }

    fn snapshot(&self) -> Vec<TargetStatus> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The route of the page.
pub(crate) fn router(board: StatusBoard, metrics: AgentMetrics) -> Router {
    Router::new()
        .route("/status", get(page))
        .with_state((board, metrics))
}

async fn page(State((board, metrics)): State<(StatusBoard, AgentMetrics)>) -> impl IntoResponse {
    let html = render(
        &board.snapshot(),
        &metrics,
        common::telemetry::now_unix_ms(),
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html)
}

/// The page for `targets` and the queue figures in `metrics`, as of `now_unix_ms`.
pub(crate) fn render(targets: &[TargetStatus], metrics: &AgentMetrics, now_unix_ms: i64) -> String {
    let mut h = String::with_capacity(4096);
    // `write!` into a String cannot fail.
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <title>slo-gateway agent status</title><style>\
         body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse;margin-bottom:1.5em}}\
         th,td{{border:1px solid #999;padding:.3em .6em;text-align:left}}td.n{{text-align:right}}\
         .bad{{color:#b00;font-weight:bold}}</style></head><body>\
         <h1>slo-gateway agent</h1><p>Refreshes every {REFRESH_SECONDS} s.</p>\
         <h2>Targets</h2><table id=\"targets\"><tr><th>URL</th><th>Last scrape</th><th>Result</th>\
         <th>Duration</th><th>Series</th><th>Refused scrapes</th></tr>"
    );
    for t in targets {
        let when = t
            .last_scrape_unix_ms
            .map_or_else(|| "never".to_string(), |ms| ago(now_unix_ms, ms));
        let result = match (&t.last_error, t.last_result) {
            (_, None) => "-".to_string(),
            (Some(error), Some(result)) => {
                format!("<span class=\"bad\">{result}</span>: {}", escape(error))
            }
            (None, Some(result @ (ScrapeResult::Refused | ScrapeResult::Truncated))) => {
                format!("<span class=\"bad\">{result}</span>")
            }
            (None, Some(result)) => result.to_string(),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{when}</td><td>{result}</td><td class=\"n\">{:.3} s</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&t.url),
            t.last_duration.as_secs_f64(),
            t.series,
            t.refused,
        );
    }
    let memory = metrics.queue_memory_mode();
    let mode = if memory {
        "<span class=\"bad\">memory (disk writes fail; not durable)</span>"
    } else {
        "disk"
    };
    let _ = write!(
        h,
        "</table><h2>Queue</h2><table id=\"queue\">\
         <tr><th>Backlog records</th><td class=\"n\">{}</td></tr>\
         <tr><th>Backlog bytes</th><td class=\"n\">{}</td></tr>\
         <tr><th>Oldest record age</th><td class=\"n\">{:.0} s</td></tr>\
         <tr><th>Mode</th><td>{mode}</td></tr></table>\
         <h2>Drops</h2><table id=\"drops\"><tr><th>Reason</th><th>Requests</th><th>Samples</th></tr>",
        metrics.queue_records(),
        metrics.queue_bytes(),
        metrics.queue_oldest_age_seconds(),
    );
    for &reason in DropReason::ALL {
        let (records, samples) = (
            metrics.records_dropped(reason),
            metrics.samples_dropped(reason),
        );
        let _ = write!(
            h,
            "<tr><td>{reason}</td><td class=\"n\">{records}</td><td class=\"n\">{samples}</td></tr>"
        );
    }
    let _ = writeln!(
        h,
        "</table><p>Samples sent: {}; series active: {}.</p></body></html>",
        metrics.samples_sent(),
        metrics.series_active()
    );
    h
}

/// `12s ago`, `3m 4s ago`, or `in 2s` for a clock ahead.
fn ago(now_ms: i64, then_ms: i64) -> String {
    let secs = now_ms.saturating_sub(then_ms) / 1000;
    match secs {
        s if s < 0 => format!("in {}s", -s),
        s if s < 60 => format!("{s}s ago"),
        s => format!("{}m {}s ago", s / 60, s % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_targets_queue_and_drops_without_external_assets() {
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = AgentMetrics::register(&mut registry);
        metrics.set_queue(7, 4096, 42.4, true);
        metrics.dropped_records(DropReason::MaxAge, 2);
        metrics.dropped_samples(DropReason::MaxAge, 300);
        let board = StatusBoard::new([
            "http://prom:9090/federate?match[]=<x>",
            "http://other:9090/federate",
        ]);
        board.update(0, |t| {
            t.last_scrape_unix_ms = Some(1_000_000);
            t.last_result = Some(ScrapeResult::Refused);
            t.last_duration = Duration::from_millis(1500);
            t.series = 36_000;
            t.refused = 3;
        });
        board.update(1, |t| {
            t.last_scrape_unix_ms = Some(1_000_000);
            t.last_result = Some(ScrapeResult::Error);
            t.last_error = Some("connection refused".into());
        });
        let html = render(&board.snapshot(), &metrics, 1_075_000);
        assert!(
            html.contains("<meta http-equiv=\"refresh\" content=\"5\">"),
            "{html}"
        );
        assert!(
            html.contains("federate?match[]=&lt;x&gt;"),
            "escaped: {html}"
        );
        assert!(html.contains("1m 15s ago"), "{html}");
        assert!(
            html.contains("<span class=\"bad\">refused</span>"),
            "{html}"
        );
        assert!(
            html.contains("<td class=\"n\">36000</td><td class=\"n\">3</td>"),
            "{html}"
        );
        assert!(
            html.contains("<span class=\"bad\">error</span>: connection refused"),
            "{html}"
        );
        assert!(
            html.contains("<th>Backlog records</th><td class=\"n\">7</td>"),
            "{html}"
        );
        assert!(
            html.contains("<th>Oldest record age</th><td class=\"n\">42 s</td>"),
            "{html}"
        );
        assert!(html.contains("memory (disk writes fail"), "{html}");
        assert!(
            html.contains("<td>max_age</td><td class=\"n\">2</td><td class=\"n\">300</td>"),
            "{html}"
        );
        // Self-contained: no scripts, stylesheets or images from anywhere.
        for external in ["<script", "<link", "<img", "src=", "href="] {
            assert!(!html.contains(external), "{external} in {html}");
        }
        assert_eq!(ago(0, 2000), "in 2s");
    }
}
