//! `slo-gateway receiver` configuration (see `config/receiver.yaml` for a commented example).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use remote_write::validate::{is_valid_label_name, ValidationLimits};
use yaml_config::{
    check_file_exists, check_positive, check_url, default_reload_interval, Problem, Validate,
};

/// Top level of the receiver config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// mTLS listener for agents. Default `0.0.0.0:8443`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Plain-HTTP listener for `/metrics`, `/healthz`, `/readyz`. Default `0.0.0.0:9465`.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    /// Server certificate and the CA that signs seed client certificates.
    pub tls: ServerTlsConfig,
    /// How the seed identity is read and enforced.
    #[serde(default)]
    pub identity: IdentityConfig,
    /// The SLO Prometheus.
    pub forward: ForwardConfig,
    /// Input limits.
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// Server side of mTLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// PEM server certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key of `cert_file`.
    pub key_file: PathBuf,
    /// PEM CA bundle that client certificates must chain to. A client certificate is required.
    pub client_ca_file: PathBuf,
    /// Most time for a TLS handshake. Default `10s`.
    #[serde(default = "default_handshake_timeout", with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// How often the files are checked for replacement (cert-manager rotation). Default `10s`.
    #[serde(default = "default_reload_interval", with = "humantime_serde")]
    pub reload_interval: Duration,
}

/// Where in the client certificate the seed name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IdentitySource {
    /// Gardener: O `gardener.cloud:system:seeds`, CN `gardener.cloud:system:seed:<name>`.
    #[default]
    Gardener,
    /// The first DNS SAN, optionally with `san_suffix` removed.
    SanDns,
    /// The first URI SAN, optionally with `san_prefix` removed.
    SanUri,
}

/// What to do with a series whose identity label differs from the certificate's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IdentityMode {
    /// Replace the label with the certificate identity.
    #[default]
    Overwrite,
    /// Refuse the request with 403.
    Reject,
}

/// Seed identity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Label that carries the identity on every forwarded series. Default `seed`.
    #[serde(default = "default_identity_label")]
    pub label: String,
    /// Where the identity comes from. Default `gardener`.
    #[serde(default)]
    pub source: IdentitySource,
    /// `overwrite` (default) or `reject` a mismatching label.
    #[serde(default)]
    pub mode: IdentityMode,
    /// For `san_dns`: suffix removed from the DNS name (e.g. `.seeds.example.com`). Default none.
    #[serde(default)]
    pub san_suffix: Option<String>,
    /// For `san_uri`: prefix removed from the URI (e.g. `spiffe://gardener/seed/`). Default none.
    #[serde(default)]
    pub san_prefix: Option<String>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            label: default_identity_label(),
            source: IdentitySource::default(),
            mode: IdentityMode::default(),
            san_suffix: None,
            san_prefix: None,
        }
    }
}

/// The upstream SLO Prometheus.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// Remote-write URL, e.g. `http://prometheus-slo:9090/api/v1/write`.
    pub url: String,
    /// Timeout of one forwarded request. Default `30s`.
    #[serde(default = "default_forward_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// PEM CA bundle for an `https` upstream. Default: the system's roots are not used; set this.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// Input limits, after Mimir's per-tenant defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest compressed request body, bytes. Default 8 MiB.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Largest decoded (decompressed) request, bytes; checked from the snappy header before
    /// decompressing (413). Also the decode-cost budget of one request: every element read is
    /// charged its re-encoded size, at least 16 bytes, and decoding stops with 413 past it.
    /// Default 32 MiB.
    #[serde(default = "default_max_decoded_bytes")]
    pub max_decoded_bytes: usize,
    /// Decode work in flight over all requests, bytes: a request holds twice its declared
    /// decoded size (the decompressed body and its re-encoded copy) from before decompressing
    /// until it was forwarded; others wait (at most 10 s, then 503). Default
    /// 2 × `max_decoded_bytes` (64 MiB): one request of the largest size at a time, or about 80
    /// agent-sized ones (2000 samples) at once.
    #[serde(default)]
    pub max_inflight_decoded_bytes: Option<usize>,
    /// Most time to receive a request body once its headers arrived; slower gets 503 (retry).
    /// Default `60s`.
    #[serde(default = "default_body_read_timeout", with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// Most series in one request. Default 50000.
    #[serde(default = "default_max_series_per_request")]
    pub max_series_per_request: usize,
    /// Most labels on a series. Default 30.
    #[serde(default = "default_max_labels")]
    pub max_labels_per_series: usize,
    /// Longest label name, bytes. Default 1024.
    #[serde(default = "default_max_label_name_bytes")]
    pub max_label_name_bytes: usize,
    /// Longest label value, bytes. Default 2048.
    #[serde(default = "default_max_label_value_bytes")]
    pub max_label_value_bytes: usize,
    /// How far in the future a sample may be. Default `10m`.
    #[serde(default = "default_future_grace", with = "humantime_serde")]
    pub future_grace: Duration,
    /// Oldest sample accepted, as an age before now; older samples are refused before
    /// forwarding (400, reason `too_old`) and the rest of the request is forwarded. Set it to the
    /// SLO Prometheus' `out_of_order_time_window`, beyond which Prometheus refuses the whole
    /// request. `0s` disables the check. Default `2h`.
    #[serde(default = "default_max_sample_age", with = "humantime_serde")]
    pub max_sample_age: Duration,
    /// Most active series per seed, counted by each receiver replica on its own; a new series
    /// beyond it is refused (400, reason `series_limit`) while known ones are still accepted.
    /// Costs 20–40 bytes per active series. 0 disables. Default 100000.
    #[serde(default = "default_max_series_per_seed")]
    pub max_series_per_seed: usize,
    /// A series not pushed for this long stops counting as active. Default `1h`.
    #[serde(default = "default_series_idle_timeout", with = "humantime_serde")]
    pub series_idle_timeout: Duration,
    /// Per-seed sustained samples per second; 0 disables the limit. Default 0.
    #[serde(default)]
    pub samples_per_second_per_seed: u64,
    /// Per-seed burst, samples. Default 10 × `samples_per_second_per_seed`.
    #[serde(default)]
    pub burst_samples_per_seed: Option<u64>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: default_max_body_bytes(),
            max_decoded_bytes: default_max_decoded_bytes(),
            max_inflight_decoded_bytes: None,
            body_read_timeout: default_body_read_timeout(),
            max_series_per_request: default_max_series_per_request(),
            max_labels_per_series: default_max_labels(),
            max_label_name_bytes: default_max_label_name_bytes(),
            max_label_value_bytes: default_max_label_value_bytes(),
            future_grace: default_future_grace(),
            max_sample_age: default_max_sample_age(),
            max_series_per_seed: default_max_series_per_seed(),
            series_idle_timeout: default_series_idle_timeout(),
            samples_per_second_per_seed: 0,
            burst_samples_per_seed: None,
        }
    }
}

impl LimitsConfig {
    /// The per-series part of the limits.
    pub fn validation(&self) -> ValidationLimits {
        ValidationLimits {
            max_labels_per_series: self.max_labels_per_series,
            max_label_name_bytes: self.max_label_name_bytes,
            max_label_value_bytes: self.max_label_value_bytes,
            future_grace_ms: i64::try_from(self.future_grace.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// The decode-capacity budget in bytes (`max_inflight_decoded_bytes` or its default).
    pub fn inflight_decoded_bytes(&self) -> usize {
        self.max_inflight_decoded_bytes
            .unwrap_or(self.max_decoded_bytes.saturating_mul(2))
    }

    /// The oldest timestamp (ms) accepted at `now_ms`; `i64::MIN` when the age check is off.
    pub fn oldest_timestamp_ms(&self, now_ms: i64) -> i64 {
        if self.max_sample_age.is_zero() {
            return i64::MIN;
        }
        let age = i64::try_from(self.max_sample_age.as_millis()).unwrap_or(i64::MAX);
        now_ms.saturating_sub(age)
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8443))
}
fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 9465))
}
fn default_handshake_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_identity_label() -> String {
    "seed".into()
}
fn default_forward_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_max_body_bytes() -> usize {
    8 << 20
}
fn default_max_decoded_bytes() -> usize {
    32 << 20
}
fn default_body_read_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_max_series_per_request() -> usize {
    50_000
}
fn default_max_labels() -> usize {
    30
}
fn default_max_label_name_bytes() -> usize {
    1024
}
fn default_max_label_value_bytes() -> usize {
    2048
}
fn default_future_grace() -> Duration {
    Duration::from_secs(600)
}
fn default_max_sample_age() -> Duration {
    Duration::from_secs(2 * 3600)
}
fn default_max_series_per_seed() -> usize {
    // The agent's default `scrape.max_series` too: it refuses a larger spike before sending it.
    common::DEFAULT_MAX_SERIES_PER_SEED
}
fn default_series_idle_timeout() -> Duration {
    Duration::from_secs(3600)
}

impl Validate for ReceiverConfig {
    fn problems(&self, base_dir: &Path) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.listen == self.admin_listen {
            problems.push(Problem::new("admin_listen", "must differ from listen"));
        }
        check_file_exists(
            &mut problems,
            base_dir,
            "tls.cert_file",
            &self.tls.cert_file,
        );
        check_file_exists(&mut problems, base_dir, "tls.key_file", &self.tls.key_file);
        check_file_exists(
            &mut problems,
            base_dir,
            "tls.client_ca_file",
            &self.tls.client_ca_file,
        );
        if !is_valid_label_name(&self.identity.label) {
            problems.push(Problem::new("identity.label", "invalid label name"));
        }
        if self.identity.label == "__name__" {
            problems.push(Problem::new("identity.label", "cannot be __name__"));
        }
        check_url(
            &mut problems,
            "forward.url",
            &self.forward.url,
            &["http", "https"],
        );
        if let Some(ca) = &self.forward.ca_file {
            check_file_exists(&mut problems, base_dir, "forward.ca_file", ca);
        }
        check_positive(
            &mut problems,
            "tls.handshake_timeout",
            self.tls.handshake_timeout,
        );
        check_positive(
            &mut problems,
            "tls.reload_interval",
            self.tls.reload_interval,
        );
        check_positive(&mut problems, "forward.timeout", self.forward.timeout);
        check_positive(
            &mut problems,
            "limits.body_read_timeout",
            self.limits.body_read_timeout,
        );
        match self.identity.source {
            IdentitySource::Gardener
                if self.identity.san_suffix.is_some() || self.identity.san_prefix.is_some() =>
            {
                problems.push(Problem::new(
                    "identity.source",
                    "san_suffix/san_prefix have no effect with source gardener",
                ));
            }
            IdentitySource::SanDns if self.identity.san_prefix.is_some() => {
                problems.push(Problem::new(
                    "identity.san_prefix",
                    "has no effect with source san_dns (use san_suffix)",
                ));
            }
            IdentitySource::SanUri if self.identity.san_suffix.is_some() => {
                problems.push(Problem::new(
                    "identity.san_suffix",
                    "has no effect with source san_uri (use san_prefix)",
                ));
            }
            _ => {}
        }
        let limits = &self.limits;
        if limits.max_series_per_request == 0 {
            problems.push(Problem::new(
                "limits.max_series_per_request",
                "must be greater than 0",
            ));
        }
        if limits.max_labels_per_series < 2 {
            problems.push(Problem::new(
                "limits.max_labels_per_series",
                "must be at least 2 (__name__ and the identity label)",
            ));
        }
        if limits.burst_samples_per_seed.is_some() && limits.samples_per_second_per_seed == 0 {
            problems.push(Problem::new(
                "limits.burst_samples_per_seed",
                "has no effect while samples_per_second_per_seed is 0",
            ));
        }
        if limits.max_body_bytes == 0 || limits.max_body_bytes > limits.max_decoded_bytes {
            problems.push(Problem::new(
                "limits.max_body_bytes",
                "must be greater than 0 and at most limits.max_decoded_bytes",
            ));
        }
        if limits.max_series_per_seed > 0 && limits.series_idle_timeout.is_zero() {
            problems.push(Problem::new(
                "limits.series_idle_timeout",
                "must be greater than 0 while limits.max_series_per_seed is set",
            ));
        }
        if limits.inflight_decoded_bytes() < limits.max_decoded_bytes {
            problems.push(Problem::new(
                "limits.max_inflight_decoded_bytes",
                "must be at least limits.max_decoded_bytes",
            ));
        }
        if limits.max_decoded_bytes > 1 << 30 {
            problems.push(Problem::new(
                "limits.max_decoded_bytes",
                "must be at most 1 GiB",
            ));
        }
        problems
    }
}
