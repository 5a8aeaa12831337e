//! `slo-gateway agent` configuration (see `config/agent.yaml` for a commented example).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use remote_write::validate::{is_valid_label_name, is_valid_metric_name};
use yaml_config::{
    check_file_exists, check_positive, check_url, default_reload_interval, Problem, Validate,
};

/// Top level of the agent config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Address of the agent's own `/metrics`, `/healthz`, `/readyz`. Default `127.0.0.1:9464`.
    #[serde(default = "default_agent_listen")]
    pub listen: SocketAddr,
    /// Labels added to every series (a series' own label of the same name wins, as with
    /// Prometheus' external labels). Default none. The receiver overwrites the identity label.
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    /// What to scrape.
    pub scrape: ScrapeConfig,
    /// Where to send.
    pub remote_write: RemoteWriteConfig,
    /// The on-disk queue between scraping and sending.
    #[serde(default)]
    pub buffer: BufferConfig,
}

/// Scraping of the seed Prometheus' `/federate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// Time between scrapes. Default `15s`.
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Timeout of one scrape, at most `interval`. Default `10s`.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// `false` stamps every sample with the scrape time, as Gardener federates (avoids out-of-order
    /// samples from multi-replica sources); `true` keeps the source's timestamps. Default `false`.
    #[serde(default)]
    pub honor_timestamps: bool,
    /// Largest scrape body accepted, bytes; a larger one is cut off and counted. Default 256 MiB.
    #[serde(default = "default_max_scrape_bytes")]
    pub max_body_bytes: u64,
    /// Most series (sample lines) one target's scrape may return. A scrape above it is refused
    /// whole (counted in `slo_gateway_agent_scrapes_total{result="refused"}` and logged): the
    /// previous state is kept and no stale markers are sent, so a cardinality explosion at the
    /// source neither floods the SLO Prometheus nor the agent's memory (about 1 KiB per
    /// series). Default 100000, the receiver's default `limits.max_series_per_seed`: above
    /// that the receiver would refuse the spike's new series for up to its
    /// `series_idle_timeout`, so the agent refuses it first. Keep the sum over all targets
    /// within the receiver's limit.
    #[serde(default = "default_max_series")]
    pub max_series: usize,
    /// PEM CA bundle that verifies `https` targets. Default none: only `http` targets work
    /// (the aggregate Prometheus is usually reached in-cluster over plain HTTP).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The federate endpoints.
    pub targets: Vec<TargetConfig>,
}

/// One `/federate` endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Full URL of `/federate`, e.g. `http://prometheus-aggregate:9090/federate`.
    pub url: String,
    /// `match[]` selectors, sent as given. Default none; with `match_from_specs` both are sent.
    #[serde(default, rename = "match")]
    pub match_selectors: Vec<String>,
    /// SLO spec files (as for `slo-gateway rules`, relative to this config's directory) whose
    /// inputs this target must federate: the selectors `rules` writes to `agent-match.yaml`,
    /// derived at startup so the filter never drifts from the SLOs. Default none.
    #[serde(default)]
    pub match_from_specs: Vec<PathBuf>,
}

/// Derives `match[]` selectors from SLO spec files, as `slo-gateway rules` writes them to
/// `agent-match.yaml`. The full `slo-gateway` binary passes the rule generator's; the lean
/// `slo-gateway-agent` links no rule generator and has none.
pub type DeriveSelectors = fn(&[PathBuf]) -> Result<Vec<String>, String>;

impl TargetConfig {
    /// `match` as written, then the selectors `derive` finds in `match_from_specs` that it lacks.
    pub fn resolved_selectors(
        &self,
        base_dir: &Path,
        derive: Option<DeriveSelectors>,
    ) -> Result<Vec<String>, String> {
        let mut selectors = self.match_selectors.clone();
        if self.match_from_specs.is_empty() {
            return Ok(selectors);
        }
        let Some(derive) = derive else {
            return Err(
                "match_from_specs needs the rule generator of the full `slo-gateway` binary; \
                        with `slo-gateway-agent`, list the selectors of `slo-gateway rules`' \
                        agent-match.yaml under `match` instead"
                    .into(),
            );
        };
        let specs: Vec<PathBuf> = self
            .match_from_specs
            .iter()
            .map(|p| yaml_config::resolve(base_dir, p))
            .collect();
        for selector in derive(&specs)? {
            if !selectors.contains(&selector) {
                selectors.push(selector);
            }
        }
        Ok(selectors)
    }
}

/// Remote-write destination (the receiver).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// Receiver URL, `https://…/api/v1/write`.
    pub url: String,
    /// Client certificate and the CA that signed the receiver's certificate.
    pub tls: ClientTlsConfig,
    /// HTTP proxy for egress (`http://host:port`). Default: `HTTPS_PROXY`/`NO_PROXY` from the
    /// environment, else direct.
    #[serde(default)]
    pub proxy_url: Option<String>,
    /// Timeout of one request. Default `30s`.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Most samples in one request. Default 2000 (Prometheus' `max_samples_per_send`).
    #[serde(default = "default_max_samples_per_request")]
    pub max_samples_per_request: usize,
    /// Remote Write protocol: `auto` sends 2.0 (symbol table, about half the bytes) and falls
    /// back to 1.0 for good when the receiver answers 415 or a 2xx without
    /// `X-Prometheus-Remote-Write-Samples-Written` (that batch is sent again as 1.0); `v1` and
    /// `v2` fix the protocol (`v2` never falls back). Default `auto`.
    #[serde(default)]
    pub protocol: RemoteWriteProtocol,
    /// Most samples in one request when catching up: records of a lane waiting to be sent
    /// (a backlog after an outage or a slow receiver) are merged into requests of up to this
    /// many samples, so a backlog drains in fewer, larger requests. At least
    /// `max_samples_per_request`; keep it within the receiver's `limits.max_series_per_request`.
    /// Default 10000.
    #[serde(default = "default_max_samples_per_backlog_request")]
    pub max_samples_per_backlog_request: usize,
    /// Lanes series are hashed into; each lane is sent strictly in order. Default 4.
    #[serde(default = "default_shards")]
    pub shards: usize,
    /// Retry and backoff.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Most backlog requests (queued more than two scrape intervals ago) sent per second, over all
    /// lanes, when catching up after an outage; fresh requests are never held back by it.
    /// Default none (as fast as the receiver acknowledges).
    #[serde(default)]
    pub max_catchup_requests_per_second: Option<f64>,
    /// On shutdown, how long a request already in flight may still take; whatever is not
    /// acknowledged by then stays queued for the next start. Keep it below the pod's
    /// `terminationGracePeriodSeconds`. Default `5s`.
    #[serde(default = "default_shutdown_grace", with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

/// `remote_write.protocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteWriteProtocol {
    /// 2.0, falling back to 1.0 when the receiver does not understand it.
    #[default]
    Auto,
    /// Always 1.0.
    V1,
    /// Always 2.0.
    V2,
}

/// Client side of mTLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsConfig {
    /// PEM CA bundle that verifies the receiver's certificate.
    pub ca_file: PathBuf,
    /// PEM client certificate (chain), the seed identity.
    pub cert_file: PathBuf,
    /// PEM private key of `cert_file`.
    pub key_file: PathBuf,
    /// Name to verify in the server certificate. Default: the URL's host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// How often the files are checked for replacement. Default `10s`.
    #[serde(default = "default_reload_interval", with = "humantime_serde")]
    pub reload_interval: Duration,
}

/// Retry behaviour of the sender.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// First backoff. Default `500ms`.
    #[serde(default = "default_min_backoff", with = "humantime_serde")]
    pub min_backoff: Duration,
    /// Backoff cap. Default `30s`.
    #[serde(default = "default_max_backoff", with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Retry on 429 Too Many Requests (our receiver's rate limit). Default `true`.
    #[serde(default = "default_true")]
    pub retry_on_429: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            min_backoff: default_min_backoff(),
            max_backoff: default_max_backoff(),
            retry_on_429: true,
        }
    }
}

/// The durable queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// Directory of the queue, relative to the config file's directory unless absolute.
    /// Default `slo-gateway-buffer`.
    #[serde(default = "default_buffer_path")]
    pub path: PathBuf,
    /// Most bytes on disk; the oldest data is dropped beyond. Default 1 GiB.
    #[serde(default = "default_buffer_max_bytes")]
    pub max_bytes: u64,
    /// Data older than this is dropped: match the SLO Prometheus'
    /// `storage.tsdb.out_of_order_time_window`, older samples would be refused anyway. Default `2h`.
    #[serde(default = "default_buffer_max_age", with = "humantime_serde")]
    pub max_age: Duration,
    /// fsync every append. Default `false` (the page cache survives an agent crash; a node crash
    /// loses at most the last seconds).
    #[serde(default)]
    pub fsync: bool,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            path: default_buffer_path(),
            max_bytes: default_buffer_max_bytes(),
            max_age: default_buffer_max_age(),
            fsync: false,
        }
    }
}

fn default_agent_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}
fn default_interval() -> Duration {
    Duration::from_secs(15)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_scrape_bytes() -> u64 {
    256 << 20
}
fn default_max_series() -> usize {
    common::DEFAULT_MAX_SERIES_PER_SEED
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_shutdown_grace() -> Duration {
    Duration::from_secs(5)
}
fn default_max_samples_per_request() -> usize {
    2000
}
fn default_max_samples_per_backlog_request() -> usize {
    10_000
}
fn default_shards() -> usize {
    4
}
fn default_min_backoff() -> Duration {
    Duration::from_millis(500)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(30)
}
fn default_true() -> bool {
    true
}
fn default_buffer_path() -> PathBuf {
    PathBuf::from("slo-gateway-buffer")
}
fn default_buffer_max_bytes() -> u64 {
    1 << 30
}
fn default_buffer_max_age() -> Duration {
    Duration::from_secs(2 * 3600)
}

impl Validate for AgentConfig {
    fn problems(&self, base_dir: &Path) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (name, value) in &self.external_labels {
            if !is_valid_label_name(name) {
                problems.push(Problem::new(
                    format!("external_labels.{name}"),
                    "invalid label name (must match [a-zA-Z_][a-zA-Z0-9_]*)",
                ));
            }
            if value.is_empty() {
                problems.push(Problem::new(
                    format!("external_labels.{name}"),
                    "empty value (an empty label is the same as no label)",
                ));
            }
        }
        let scrape = &self.scrape;
        if scrape.interval.is_zero() {
            problems.push(Problem::new("scrape.interval", "must be greater than 0"));
        }
        if scrape.timeout.is_zero() || scrape.timeout > scrape.interval {
            problems.push(Problem::new(
                "scrape.timeout",
                format!(
                    "must be greater than 0 and at most scrape.interval ({})",
                    humantime::format_duration(scrape.interval)
                ),
            ));
        }
        if scrape.targets.is_empty() {
            problems.push(Problem::new(
                "scrape.targets",
                "at least one target is required",
            ));
        }
        for (i, target) in scrape.targets.iter().enumerate() {
            check_url(
                &mut problems,
                &format!("scrape.targets[{i}].url"),
                &target.url,
                &["http", "https"],
            );
            if target.match_selectors.is_empty() && target.match_from_specs.is_empty() {
                problems.push(Problem::new(
                    format!("scrape.targets[{i}].match"),
                    "at least one match[] selector (or match_from_specs) is required (/federate returns nothing without one)",
                ));
            }
            for (j, spec) in target.match_from_specs.iter().enumerate() {
                check_file_exists(
                    &mut problems,
                    base_dir,
                    &format!("scrape.targets[{i}].match_from_specs[{j}]"),
                    spec,
                );
            }
            for (j, selector) in target.match_selectors.iter().enumerate() {
                if let Err(message) = check_selector(selector) {
                    problems.push(Problem::new(
                        format!("scrape.targets[{i}].match[{j}]"),
                        message,
                    ));
                }
            }
        }
        if let Some(ca) = &scrape.ca_file {
            check_file_exists(&mut problems, base_dir, "scrape.ca_file", ca);
        }
        let rw = &self.remote_write;
        check_url(&mut problems, "remote_write.url", &rw.url, &["https"]);
        if rw
            .max_catchup_requests_per_second
            .is_some_and(|r| !(r.is_finite() && r > 0.0))
        {
            problems.push(Problem::new(
                "remote_write.max_catchup_requests_per_second",
                "must be a positive number",
            ));
        }
        if let Some(proxy) = &rw.proxy_url {
            check_url(
                &mut problems,
                "remote_write.proxy_url",
                proxy,
                &["http", "https"],
            );
        }
        check_file_exists(
            &mut problems,
            base_dir,
            "remote_write.tls.ca_file",
            &rw.tls.ca_file,
        );
        check_file_exists(
            &mut problems,
            base_dir,
            "remote_write.tls.cert_file",
            &rw.tls.cert_file,
        );
        check_file_exists(
            &mut problems,
            base_dir,
            "remote_write.tls.key_file",
            &rw.tls.key_file,
        );
        if rw.max_samples_per_request == 0 {
            problems.push(Problem::new(
                "remote_write.max_samples_per_request",
                "must be at least 1",
            ));
        }
        if rw.max_samples_per_backlog_request < rw.max_samples_per_request {
            problems.push(Problem::new(
                "remote_write.max_samples_per_backlog_request",
                "must be at least max_samples_per_request",
            ));
        }
        if !(1..=64).contains(&rw.shards) {
            problems.push(Problem::new(
                "remote_write.shards",
                "must be between 1 and 64",
            ));
        }
        if rw.retry.min_backoff.is_zero() || rw.retry.min_backoff > rw.retry.max_backoff {
            problems.push(Problem::new(
                "remote_write.retry.min_backoff",
                "must be greater than 0 and at most max_backoff",
            ));
        }
        check_positive(&mut problems, "remote_write.timeout", rw.timeout);
        check_positive(
            &mut problems,
            "remote_write.tls.reload_interval",
            rw.tls.reload_interval,
        );
        check_positive(&mut problems, "buffer.max_age", self.buffer.max_age);
        if scrape.max_series == 0 {
            problems.push(Problem::new("scrape.max_series", "must be at least 1"));
        }
        if scrape.max_body_bytes == 0 {
            problems.push(Problem::new(
                "scrape.max_body_bytes",
                "must be greater than 0",
            ));
        }
        if self.buffer.max_bytes < 1 << 20 {
            problems.push(Problem::new(
                "buffer.max_bytes",
                "must be at least 1 MiB (1048576)",
            ));
        }
        problems
    }
}

/// Light syntax check of a `match[]` selector: `metric{...}` or `{...}` with balanced braces and a
/// valid metric name. Prometheus has the final word; this catches typos before the first scrape.
fn check_selector(selector: &str) -> Result<(), String> {
    let selector = selector.trim();
    let (name, rest) = match selector.find('{') {
        Some(i) => (&selector[..i], &selector[i..]),
        None => (selector, ""),
    };
    if name.is_empty() && rest.is_empty() {
        return Err("empty selector".into());
    }
    if !name.is_empty() && !is_valid_metric_name(name) {
        return Err(format!("invalid metric name {name:?} in selector"));
    }
    if !rest.is_empty() && !rest.ends_with('}') {
        return Err("selector must end with '}'".into());
    }
    if name.is_empty()
        && rest
            .trim_start_matches('{')
            .trim_end_matches('}')
            .trim()
            .is_empty()
    {
        return Err("selector {} matches nothing; name a metric or a label matcher".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use yaml_config::{parse, ConfigError};

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.yaml");
        let text = r#"
scrape:
  interval: 15s
  timeout: 20s
  targets:
    - url: "not a url"
      match: ['{__name__=~"shoot:.+"}', 'bad-name{']
remote_write:
  url: http://127.0.0.1:8443/api/v1/write
  tls: {ca_file: ca.pem, cert_file: seed.pem, key_file: seed-key.pem}
"#;
        let err = parse::<AgentConfig>(&file, text).unwrap_err();
        let ConfigError::Invalid { problems, .. } = &err else {
            panic!("{err}")
        };
        let at: Vec<(usize, &str)> = problems
            .iter()
            .map(|(l, _, p)| (*l, p.path.as_str()))
            .collect();
        assert!(at.contains(&(4, "scrape.timeout")), "{at:?}");
        assert!(at.contains(&(6, "scrape.targets[0].url")), "{at:?}");
        assert!(at.contains(&(7, "scrape.targets[0].match[1]")), "{at:?}");
        assert!(at.contains(&(9, "remote_write.url")), "{at:?}");
        assert!(at.contains(&(10, "remote_write.tls.ca_file")), "{at:?}");
        assert!(
            err.to_string().contains("agent.yaml:4:3: scrape.timeout"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_position() {
        let err =
            parse::<AgentConfig>(Path::new("a.yaml"), "scrape:\n  intervall: 1s\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("a.yaml:2:"), "{text}");
        assert!(text.contains("unknown field `intervall`"), "{text}");
    }

    #[test]
    fn defaults_follow_gardener() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["ca.pem", "seed.pem", "seed-key.pem"] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        let text = "scrape:\n  targets: [{url: 'http://127.0.0.1:9090/federate', match: ['{__name__=~\"shoot:.+\"}']}]\nremote_write:\n  url: https://127.0.0.1:8443/api/v1/write\n  tls: {ca_file: ca.pem, cert_file: seed.pem, key_file: seed-key.pem}\n";
        let config: AgentConfig = parse(&dir.path().join("agent.yaml"), text).unwrap();
        assert!(!config.scrape.honor_timestamps);
        assert_eq!(config.scrape.interval, Duration::from_secs(15));
        assert!(config.remote_write.retry.retry_on_429);
        assert_eq!(
            config.scrape.max_series,
            common::DEFAULT_MAX_SERIES_PER_SEED
        );
    }
}
