//! Scraping `/federate`: one streamed GET per target, parsed line by line as the body arrives.
//!
//! A scrape that cannot be trusted fails instead of declaring every series vanished:
//!
//! - A redirect is followed only to the same origin (scheme, host and port, as a route prefix
//!   moves `/federate`), at most [`MAX_REDIRECTS`] times. A redirect elsewhere is refused
//!   (`result="redirect_refused"`): `honor_labels`-style federation would store another
//!   server's series under this seed.
//! - A body the agent cannot read is `result="unreadable"`: any `Content-Encoding` but
//!   `identity` (the agent requests none and decodes none), a body starting with the gzip magic
//!   or holding a NUL byte in its first chunk (binary, not the text format), or a body of which
//!   not one line parsed. Its lines are not logged one by one; the scrape's one warning names
//!   the reason.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

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
/// Same-origin redirects followed per scrape.
pub(crate) const MAX_REDIRECTS: usize = 3;
/// First bytes of a gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Why a scrape failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScrapeError {
    /// Connect, timeout or body transfer error.
    #[error("request failed")]
    Http(#[from] reqwest::Error),
    /// Not 200.
    #[error("HTTP status {0}")]
    Status(reqwest::StatusCode),
    /// A redirect to another origin: refused, never followed.
    #[error("redirect to another origin refused (Location: {location:?})")]
    Redirect {
        /// Where the target pointed.
        location: String,
    },
    /// A body that is not the text format the agent reads.
    #[error("unreadable body: {0}")]
    Unreadable(String),
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
    /// The `result` label of the scrape metric.
    pub fn result(&self) -> ScrapeResult {
        match (&self.error, self.truncated, self.refused) {
            (Some(ScrapeError::Redirect { .. }), _, _) => ScrapeResult::RedirectRefused,
            (Some(ScrapeError::Unreadable(_)), _, _) => ScrapeResult::Unreadable,
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
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let same = attempt
                    .previous()
                    .first()
                    .is_some_and(|first| same_origin(first, attempt.url()));
                if !same {
                    // Handed back as the 3xx response: refused and counted by `fetch`.
                    attempt.stop()
                } else if attempt.previous().len() > MAX_REDIRECTS {
                    attempt.error("too many redirects")
                } else {
                    attempt.follow()
                }
            }))
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
        if scraped.refused || matches!(scraped.error, Some(ScrapeError::Unreadable(_))) {
            // Nothing of a refused or unreadable scrape is used.
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
        if response.status().is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default();
            return Err(ScrapeError::Redirect { location });
        }
        if response.status() != reqwest::StatusCode::OK {
            return Err(ScrapeError::Status(response.status()));
        }
        if let Some(encoding) = response.headers().get(reqwest::header::CONTENT_ENCODING) {
            let encoding = String::from_utf8_lossy(encoding.as_bytes());
            let encoding = encoding.trim();
            if !encoding.is_empty() && !encoding.eq_ignore_ascii_case("identity") {
                return Err(ScrapeError::Unreadable(format!(
                    "Content-Encoding {encoding:?}, which the agent neither requests nor decodes"
                )));
            }
        }
        let mut splitter = LineSplitter::new(MAX_LINE_BYTES);
        let mut errors = 0usize;
        // The first parse errors, logged once the body turned out readable at all.
        let mut first_errors: Vec<(usize, String)> = Vec::new();
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
            if first_errors.len() < LOGGED_PARSE_ERRORS {
                first_errors.push((number, error));
            } else {
                tracing::debug!(url = %target.url, line = number, %error, "unparsable line skipped");
            }
        };
        let mut first = true;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            if first && !chunk.is_empty() {
                first = false;
                if let Some(reason) = binary_body(&chunk) {
                    return Err(ScrapeError::Unreadable(reason.into()));
                }
            }
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
            if buf.len() == 0 && errors > 0 {
                // Not one series: an error page or another format, not a source whose series
                // all vanished.
                let (line, first) = first_errors.first().cloned().unwrap_or_default();
                return Err(ScrapeError::Unreadable(format!(
                    "none of its {errors} unparsable lines is a sample (line {line}: {first})"
                )));
            }
            out.complete = true;
        }
        for (line, error) in &first_errors {
            tracing::warn!(url = %target.url, line, %error, "unparsable line skipped");
        }
        if errors > LOGGED_PARSE_ERRORS {
            tracing::warn!(url = %target.url, errors, "scrape had unparsable lines (details at debug level)");
        }
        Ok(())
    }
}

/// Why `first_chunk` is no text exposition, if it is not: compressed or binary bytes.
fn binary_body(first_chunk: &[u8]) -> Option<&'static str> {
    if first_chunk.starts_with(&GZIP_MAGIC) {
        Some("a gzip-compressed body without Content-Encoding")
    } else if first_chunk.contains(&0) {
        Some("a binary body (a NUL byte in its first bytes), not the text format")
    } else {
        None
    }
}

/// Whether `a` and `b` have the same scheme, host and port.
fn same_origin(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
