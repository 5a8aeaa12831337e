//! Forwarding re-encoded requests to the SLO Prometheus, and what its answer means for the agent.

use std::time::Duration;

use crate::remote_write::headers;

/// What the SLO Prometheus made of a forwarded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamOutcome {
    /// 2xx: stored.
    Stored,
    /// 4xx: the data is bad; retrying cannot help. Carries Prometheus' message.
    Refused(String),
    /// 5xx, timeout or unreachable: retrying later can help.
    Unavailable(String),
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
    Tls(#[from] crate::tls::TlsError),
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
        let config = crate::tls::server_auth_client_config(ca_file)?;
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
        let response = headers::post(&self.client, &self.url, body).send().await;
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
}

/// Maps an upstream non-2xx status to an outcome: 4xx means bad data (Prometheus answers 400 for
/// out-of-order or out-of-bounds samples and rolls back the whole request), everything else is
/// transient.
pub fn classify(status: u16, message: &str) -> UpstreamOutcome {
    match status {
        200..=299 => UpstreamOutcome::Stored,
        // 429 upstream is overload, not bad data: let the agent retry.
        429 => UpstreamOutcome::Unavailable(format!("SLO Prometheus answered 429: {message}")),
        400..=499 => {
            UpstreamOutcome::Refused(format!("SLO Prometheus answered {status}: {message}"))
        }
        _ => UpstreamOutcome::Unavailable(format!("SLO Prometheus answered {status}: {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        let cases = [
            (204, "stored"),
            (400, "refused"),
            (404, "refused"),
            (413, "refused"),
            (429, "unavailable"),
            (500, "unavailable"),
            (503, "unavailable"),
        ];
        for (status, want) in cases {
            let got = match classify(status, "") {
                UpstreamOutcome::Stored => "stored",
                UpstreamOutcome::Refused(_) => "refused",
                UpstreamOutcome::Unavailable(_) => "unavailable",
            };
            assert_eq!(got, want, "status {status}");
        }
    }
}
