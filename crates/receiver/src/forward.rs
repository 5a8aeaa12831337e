//! Forwarding re-encoded requests to the SLO Prometheus, what its answer means for the agent, and
//! isolating the series it refuses so that they never block the others.
//!
//! Prometheus 2.42 rolls a whole request back when one sample cannot be appended. Measured with
//! the Debian package (`--web.enable-remote-write-receiver`): with `out_of_order_time_window: 2h`
//! a sample older than the window gets **500** `too old sample`; without a window an old sample
//! gets 400 `out of bounds` and an earlier one 400 `out of order sample`; a different value for a
//! stored timestamp gets 400 `duplicate sample for timestamp`. Exact duplicates are accepted
//! (so resending what was stored is harmless). Those answers are data errors, whatever their
//! status: [`Forwarder::forward`] splits the request in halves until the refused series are
//! alone, drops those and stores the rest.

use std::ops::Range;
use std::time::Duration;

use remote_write::codec::compress_into;
use remote_write::headers::{self, Protocol};
use remote_write::rewrite::{subset_body, SeriesSpan};

/// Most upstream requests spent on one incoming request while isolating refused series; past
/// it the series not yet stored are dropped as refused. One bad series among 2000 takes 23.
pub const MAX_ISOLATION_REQUESTS: u32 = 64;

/// What the SLO Prometheus made of a forwarded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamOutcome {
    /// 2xx: stored.
    Stored,
    /// A data error: these samples can never be stored. Carries Prometheus' message.
    Refused(String),
    /// 5xx, timeout, unreachable or a misconfigured upstream: retrying later can help.
    Unavailable(String),
}

/// The result of forwarding one incoming request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardReport {
    /// Samples stored.
    pub stored_samples: u64,
    /// Positions (in the spans given) of the series refused as data errors.
    pub refused: Vec<usize>,
    /// Prometheus' answer to the first refused request.
    pub refused_message: Option<String>,
    /// Set when the upstream was unavailable; what was not stored yet was not sent.
    pub unavailable: Option<String>,
    /// Upstream requests made.
    pub requests: u32,
}

/// HTTP client for the upstream.
#[derive(Debug, Clone)]
pub struct Forwarder {
    client: reqwest::Client,
    url: String,
}

/// Why the forwarder could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// TLS material for an https upstream.
    #[error(transparent)]
    Tls(#[from] common::tls::TlsError),
    /// reqwest refused the configuration.
    #[error("building HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl Forwarder {
    /// A forwarder to `url`; `ca_file` is the trust bundle for an https upstream.
    pub fn new(
        url: &str,
        timeout: Duration,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Self, ForwardError> {
        let config = common::tls::server_auth_client_config(ca_file)?;
        let builder = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(headers::USER_AGENT)
            .pool_max_idle_per_host(32)
            .use_preconfigured_tls(config);
        Ok(Self {
            client: builder.build()?,
            url: url.to_string(),
        })
    }

    /// POSTs a snappy-compressed RW 1.0 body.
    pub async fn send(&self, body: Vec<u8>) -> UpstreamOutcome {
        let response =
            common::http_client::post_remote_write(&self.client, &self.url, Protocol::V1, body)
                .send()
                .await;
        match response {
            Err(e) => UpstreamOutcome::Unavailable(format!("SLO Prometheus unreachable: {e}")),
            Ok(resp) => {
                let status = resp.status();
                if status.is_success() {
                    return UpstreamOutcome::Stored;
                }
                let text = resp.text().await.unwrap_or_default();
                let text = text.trim().chars().take(512).collect::<String>();
                classify(status.as_u16(), &text)
            }
        }
    }

    /// Forwards the uncompressed request `body`, made of exactly the series `spans` in order (as
    /// [`remote_write::rewrite::rewrite`] returns them). When the upstream refuses
    /// a part as a data error, that part is split in halves and each half sent on its own, down
    /// to single series, which are then dropped (at most [`MAX_ISOLATION_REQUESTS`] requests).
    /// Stops at the first unavailable answer. `scratch` is reused for compressing.
    pub async fn forward(
        &self,
        body: &[u8],
        spans: &[SeriesSpan],
        scratch: &mut Vec<u8>,
    ) -> ForwardReport {
        let mut report = ForwardReport::default();
        debug_assert_eq!(spans.last().map_or(0, |s| s.end), body.len());
        if spans.is_empty() {
            return report;
        }
        let samples = |range: &Range<usize>| -> u64 {
            spans[range.clone()]
                .iter()
                .map(|s| u64::from(s.samples))
                .sum()
        };
        // Ranges still to send, last first: halves are pushed second half first.
        let mut pending: Vec<Range<usize>> = Vec::with_capacity(16);
        pending.push(0..spans.len());
        while let Some(range) = pending.pop() {
            if report.requests >= MAX_ISOLATION_REQUESTS {
                report.refused.extend(range);
                for rest in pending.drain(..) {
                    report.refused.extend(rest);
                }
                let note = format!(
                    "gave up isolating the refused series after {MAX_ISOLATION_REQUESTS} requests"
                );
                report.refused_message = Some(match report.refused_message.take() {
                    Some(first) => format!("{first} ({note})"),
                    None => note,
                });
                break;
            }
            let written = if range == (0..spans.len()) {
                compress_into(body, scratch)
            } else {
                compress_into(&subset_body(body, &spans[range.clone()]), scratch)
            };
            // The HTTP client takes ownership: copy out the (small) compressed block.
            let compressed = scratch[..written].to_vec();
            report.requests += 1;
            match self.send(compressed).await {
                UpstreamOutcome::Stored => report.stored_samples += samples(&range),
                UpstreamOutcome::Refused(message) => {
                    report.refused_message.get_or_insert(message);
                    if range.len() == 1 {
                        report.refused.push(range.start);
                    } else {
                        let middle = range.start + range.len() / 2;
                        pending.push(middle..range.end);
                        pending.push(range.start..middle);
                    }
                }
                UpstreamOutcome::Unavailable(message) => {
                    report.unavailable = Some(message);
                    break;
                }
            }
        }
        report.refused.sort_unstable();
        report
    }
}

/// TSDB append errors that Prometheus 2.42 may answer with 500 although the data is at fault
/// (`storage.ErrTooOldSample` is not in its list of 400 errors).
const DATA_ERRORS: [&str; 4] = [
    "too old sample",
    "out of bounds",
    "out of order sample",
    "duplicate sample for timestamp",
];

/// Maps an upstream non-2xx answer to an outcome. Data errors: 400, 413 (too large: halves may
/// fit) and 422, and a 5xx whose message is a TSDB data error. Everything else (5xx, 429, and
/// 401/403/404/405: an upstream that refuses everything is misconfigured, not fed bad data) is
/// unavailable, so the agents keep their data and retry.
pub fn classify(status: u16, message: &str) -> UpstreamOutcome {
    let text = format!("SLO Prometheus answered {status}: {message}");
    let data_error = match status {
        200..=299 => return UpstreamOutcome::Stored,
        400 | 413 | 422 => true,
        500..=599 => DATA_ERRORS.iter().any(|e| message.contains(e)),
        _ => false,
    };
    if data_error {
        UpstreamOutcome::Refused(text)
    } else {
        UpstreamOutcome::Unavailable(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        let cases = [
            (204, "", "stored"),
            (400, "out of order sample", "refused"),
            (400, "duplicate sample for timestamp", "refused"),
            (413, "", "refused"),
            (500, "too old sample", "refused"),
            (500, "out of bounds", "refused"),
            (500, "tsdb append failed: disk full", "unavailable"),
            (503, "", "unavailable"),
            (429, "", "unavailable"),
            (
                404,
                "remote write receiver needs to be enabled",
                "unavailable",
            ),
            (401, "", "unavailable"),
        ];
        for (status, message, want) in cases {
            let got = match classify(status, message) {
                UpstreamOutcome::Stored => "stored",
                UpstreamOutcome::Refused(_) => "refused",
                UpstreamOutcome::Unavailable(_) => "unavailable",
            };
            assert_eq!(got, want, "status {status} {message:?}");
        }
    }
}
