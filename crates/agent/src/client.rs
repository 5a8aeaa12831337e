//! The remote-write HTTP client: built from the current TLS config (rebuilt when certificates
//! change), and one POST with its outcome for the retry policy.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use rustls::ClientConfig;

use super::metrics::AgentMetrics;
use super::retry::Outcome;
use crate::config::RemoteWriteProtocol;
use remote_write::headers::{self, Protocol};

/// Bytes of an error response kept for the log.
const ERROR_BODY_BYTES: usize = 512;

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

/// Where and how the agent reaches the receiver (everything of the client but its TLS config,
/// which reloads).
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// Where to POST (host replaced by `server_name` when configured).
    pub url: reqwest::Url,
    /// `server_name` and the addresses of the URL's real host, when `server_name` is set.
    pub server_name: Option<(String, String, u16)>,
    /// `remote_write.proxy_url`.
    pub proxy_url: Option<String>,
    /// Request timeout.
    pub timeout: Duration,
}

/// The remote-write client for the current TLS config.
pub(crate) async fn build_client(
    tls: &ClientConfig,
    shared: &Endpoint,
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

/// What a POST came back with.
#[derive(Debug)]
pub(crate) struct Posted {
    /// For the retry policy.
    pub outcome: Outcome,
    /// For an error status: the response body's first line.
    pub detail: Option<String>,
    /// A 2xx answer carried `X-Prometheus-Remote-Write-Samples-Written` (a Remote Write 2.0
    /// receiver that understood the request).
    pub written_header: bool,
}

/// One POST. Returns the outcome and, for an error status, the response body's first line.
pub(crate) async fn post(
    client: &reqwest::Client,
    url: &reqwest::Url,
    protocol: Protocol,
    metrics: &AgentMetrics,
    body: Bytes,
) -> Posted {
    let started = Instant::now();
    let bytes = body.len() as u64;
    // Stamped per attempt, not per batch: a retried or replayed batch still shows the clock.
    let result = common::http_client::post_remote_write(client, url.as_str(), protocol, body)
        .header(headers::SENT_AT, common::telemetry::now_unix_ms())
        .send()
        .await;
    let mut written_header = false;
    let (outcome, code, detail) = match result {
        Ok(response) => {
            let status = response.status();
            written_header = response.headers().contains_key(headers::SAMPLES_WRITTEN);
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
    metrics.request(code, bytes, started.elapsed().as_secs_f64());
    Posted {
        outcome,
        detail,
        written_header,
    }
}

/// The Remote Write protocol of one endpoint, negotiated per the 2.0 spec: with `auto` the
/// sender starts with 2.0 and falls back to 1.0 for good when the receiver answers 415, or a
/// 2xx without `X-Prometheus-Remote-Write-Samples-Written` (a 1.0 receiver such as Prometheus
/// 2.42 answers 2.0 bodies with 204 and stores nothing): that batch is sent again as 1.0.
#[derive(Debug)]
pub(crate) struct Negotiation {
    mode: RemoteWriteProtocol,
    fell_back: std::sync::atomic::AtomicBool,
}

impl Negotiation {
    pub fn new(mode: RemoteWriteProtocol) -> Self {
        Self {
            mode,
            fell_back: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The protocol of the next request.
    pub fn current(&self) -> Protocol {
        match self.mode {
            RemoteWriteProtocol::V1 => Protocol::V1,
            RemoteWriteProtocol::V2 => Protocol::V2,
            RemoteWriteProtocol::Auto
                if self.fell_back.load(std::sync::atomic::Ordering::Relaxed) =>
            {
                Protocol::V1
            }
            RemoteWriteProtocol::Auto => Protocol::V2,
        }
    }

    /// Whether `posted`, the answer to a `protocol` request, says the receiver does not speak
    /// it; then stays on 1.0 from now on (auto) and returns true: send the batch again as 1.0.
    pub fn falls_back(&self, protocol: Protocol, posted: &Posted) -> bool {
        if protocol != Protocol::V2 || self.mode != RemoteWriteProtocol::Auto {
            return false;
        }
        let not_understood = match posted.outcome {
            Outcome::Status { code: 415, .. } => true,
            Outcome::Status { code, .. } => (200..300).contains(&code) && !posted.written_header,
            _ => false,
        };
        if not_understood {
            self.fell_back
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        not_understood
    }
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
