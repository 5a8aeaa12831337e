//! Scraping `/federate`: one streamed GET per target, parsed line by line as the body arrives.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rustls::ClientConfig;

use super::metrics::AgentMetrics;
use super::series::ScrapeBuf;
use crate::metrics::ScrapeResult;
use exposition::LineSplitter;
use remote_write::Label;

/// `Accept` of a federate scrape: the text format, which `/federate` serves.
const ACCEPT: &str = "text/plain;version=0.0.4";
/// Longest line accepted; a federate line is a few hundred bytes.
const MAX_LINE_BYTES: usize = 1 << 20;
/// Parse errors of one scrape logged at `warn`; the rest go to `debug` (one summary at `warn`).
const LOGGED_PARSE_ERRORS: usize = 3;

/// Why a scrape failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScrapeError {
    /// Connect, timeout or body transfer error.
    #[error("request failed")]
    Http(#[from] reqwest::Error),
    /// Not 200.
    #[error("HTTP status {0}")]
    Status(reqwest::StatusCode),
}

/// How one target's scrape went (its samples are in the [`ScrapeBuf`] it was given).
#[derive(Debug, Default)]
pub(crate) struct Scraped {
    /// Samples parsed (also those before a failure or the size cut).
    pub samples: usize,
    /// The whole body was read: only then may vanished series be declared stale.
    pub complete: bool,
    /// The body was cut off at `max_body_bytes`.
    pub truncated: bool,
    /// More than `max_series` sample lines: the scrape is refused (samples cleared).
    pub refused: bool,
    /// Why the scrape failed, if it did.
    pub error: Option<ScrapeError>,
    /// How long it took.
    pub duration: Duration,
}

impl Scraped {
    /// `error`, `refused`, `truncated` or `success` (the `result` label of the scrape metric).
    pub fn result(&self) -> ScrapeResult {
        match (&self.error, self.truncated, self.refused) {
            (Some(_), _, _) => ScrapeResult::Error,
            (None, _, true) => ScrapeResult::Refused,
            (None, true, false) => ScrapeResult::Truncated,
            (None, false, false) => ScrapeResult::Success,
        }
    }
}

/// One `/federate` endpoint as the agent scrapes it: its selectors are the config's `match` plus
/// those derived from `match_from_specs`, fixed at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeTarget {
    /// Full URL of `/federate`.
    pub url: String,
    /// The `match[]` selectors sent.
    pub selectors: Vec<String>,
}

/// Scrapes targets with a shared HTTP client.
#[derive(Debug, Clone)]
pub(crate) struct Scraper {
    client: reqwest::Client,
    timeout: Duration,
    max_body_bytes: u64,
    max_series: usize,
    external_labels: Arc<[Label]>,
    metrics: AgentMetrics,
}

impl Scraper {
    /// A scraper with its own client; `tls` is used for `https` targets.
    pub fn new(
        tls: ClientConfig,
        timeout: Duration,
        max_body_bytes: u64,
        max_series: usize,
        external_labels: Arc<[Label]>,
        metrics: AgentMetrics,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .user_agent(remote_write::headers::USER_AGENT)
            // The seed Prometheus is reached directly; HTTPS_PROXY is meant for the egress link.
            .no_proxy()
            .build()?;
        Ok(Self {
            client,
            timeout,
            max_body_bytes,
            max_series,
            external_labels,
            metrics,
        })
    }

    /// Scrapes `target` (number `index`, for logs). Never fails as a whole: a failure is in
    /// [`Scraped::error`] next to what was parsed before it.
    pub async fn scrape(
        &self,
        index: usize,
        target: &ScrapeTarget,
        buf: &mut ScrapeBuf,
    ) -> Scraped {
        let started = Instant::now();
        let mut scraped = Scraped::default();
        buf.clear();
        if let Err(error) = self.fetch(target, &mut scraped, buf).await {
            scraped.error = Some(error);
        }
        if scraped.refused {
            // Nothing of a refused scrape is used.
            buf.clear();
        }
        scraped.samples = buf.len();
        scraped.duration = started.elapsed();
        self.report(index, target, &scraped);
        scraped
    }

    /// Counts a scrape by result and logs the failed, refused and truncated ones.
    fn report(&self, index: usize, target: &ScrapeTarget, scraped: &Scraped) {
        self.metrics
            .scrape(scraped.result(), scraped.duration.as_secs_f64());
        self.metrics.scraped(scraped.samples as u64);
        match &scraped.error {
            Some(error) => tracing::warn!(
                target = index,
                url = %target.url,
                error = super::error_chain(error),
                samples = scraped.samples,
                "scrape failed"
            ),
            None if scraped.refused => tracing::warn!(
                target = index,
                url = %target.url,
                max_series = self.max_series,
                "scrape refused: more series than scrape.max_series; the previous state is kept"
            ),
            None if scraped.truncated => tracing::warn!(
                target = index,
                url = %target.url,
                max_body_bytes = self.max_body_bytes,
                samples = scraped.samples,
                "scrape body cut off at max_body_bytes"
            ),
            None => tracing::debug!(target = index, samples = scraped.samples, "scraped"),
        }
    }

    async fn fetch(
        &self,
        target: &ScrapeTarget,
        out: &mut Scraped,
        buf: &mut ScrapeBuf,
    ) -> Result<(), ScrapeError> {
        let query: Vec<(&str, &str)> = target
            .selectors
            .iter()
            .map(|m| ("match[]", m.as_str()))
            .collect();
        let response = self
            .client
            .get(&target.url)
            .query(&query)
            .header(reqwest::header::ACCEPT, ACCEPT)
            .timeout(self.timeout)
            .send()
            .await?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(ScrapeError::Status(response.status()));
        }
        let mut splitter = LineSplitter::new(MAX_LINE_BYTES);
        let mut errors = 0usize;
        let mut read: u64 = 0;
        let mut body = response.bytes_stream();
        // Set by the line callback, read between chunks.
        let over_limit = std::sync::atomic::AtomicBool::new(false);
        let mut on_line = |number: usize, line: Result<&str, exposition::LineError>| {
            if over_limit.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            let error = match line {
                Ok(text) => match buf.push_line(text, &self.external_labels) {
                    Ok(_) => {
                        if buf.len() > self.max_series {
                            over_limit.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                        return;
                    }
                    Err(error) => format!("{error} in {:?}", truncate(text, 200)),
                },
                Err(error) => error.to_string(),
            };
            errors += 1;
            self.metrics.parse_error();
            if errors <= LOGGED_PARSE_ERRORS {
                tracing::warn!(url = %target.url, line = number, %error, "unparsable line skipped");
            } else {
                tracing::debug!(url = %target.url, line = number, %error, "unparsable line skipped");
            }
        };
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            let room = self.max_body_bytes.saturating_sub(read);
            if chunk.len() as u64 > room {
                // The partial last line stays in the splitter and is discarded: a cut-off line
                // could parse as a wrong value ("12" of "123").
                let room = usize::try_from(room).unwrap_or(usize::MAX);
                splitter.push(&chunk[..room], &mut on_line);
                out.truncated = true;
                break;
            }
            read += chunk.len() as u64;
            splitter.push(&chunk, &mut on_line);
            if over_limit.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
        }
        out.refused = over_limit.load(std::sync::atomic::Ordering::Relaxed);
        if !out.refused && !out.truncated {
            splitter.finish(&mut on_line);
            out.complete = true;
        }
        if errors > LOGGED_PARSE_ERRORS {
            tracing::warn!(url = %target.url, errors, "scrape had unparsable lines (details at debug level)");
        }
        Ok(())
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
