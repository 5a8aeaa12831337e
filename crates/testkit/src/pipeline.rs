//! The whole pipeline as real processes: target → source Prometheus (`/federate`) → agent →
//! mTLS → receiver → SLO Prometheus. Each part can be stopped and restarted on its port.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::processes::{
    dev_pki, http, prometheus_available, slo_gateway_bin, wait_http_ok, MetricsTarget, Process,
    Prometheus,
};
use crate::{eventually, free_port};

/// The seed every pipeline's client certificate names.
pub const SEED: &str = "aws-eu1";

/// SLO Prometheus config: accepts backfill up to 2 h old (match `buffer.max_age`).
pub const SLO_CONFIG: &str =
    "global:\n  scrape_interval: 1m\nstorage:\n  tsdb:\n    out_of_order_time_window: 2h\n";

/// Source Prometheus: scrapes the target every second; claims to be another seed through its
/// external label, which the receiver must overwrite with the certificate identity.
fn source_config(target: std::net::SocketAddr) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  external_labels:\n    seed: claimed-by-aggregate\n\
         scrape_configs:\n  - job_name: shoots\n    honor_labels: true\n    \
         static_configs:\n      - targets: ['{target}']\n"
    )
}

/// Knobs of a pipeline.
#[derive(Debug, Clone)]
pub struct Options {
    /// What the target serves.
    pub target_body: String,
    /// `match[]` selectors of the agent.
    pub selectors: Vec<String>,
    /// Extra YAML appended under the agent's `buffer:` key (indented by the caller).
    pub buffer_yaml: String,
    /// Extra YAML appended under the agent's `remote_write:` key.
    pub remote_write_yaml: String,
    /// Extra YAML for the receiver's `limits:` key (flow style, e.g. `{max_series_per_seed: 5}`).
    pub receiver_limits_yaml: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            target_body: String::new(),
            selectors: vec![
                r#"{__name__=~"shoot:.+"}"#.into(),
                r#"{__name__="apiserver_request_total"}"#.into(),
            ],
            buffer_yaml: String::new(),
            remote_write_yaml: String::new(),
            receiver_limits_yaml: "{}".into(),
        }
    }
}

/// A running pipeline.
#[derive(Debug)]
pub struct Pipeline {
    pub dir: tempfile::TempDir,
    pub target: MetricsTarget,
    pub source: Prometheus,
    pub slo: Prometheus,
    pub receiver: Process,
    pub agent: Process,
    pub agent_admin: u16,
    pub receiver_admin: u16,
    /// The receiver's mTLS port.
    pub receiver_port: u16,
    /// The dev PKI (CA, receiver certificate, the seed's client certificate).
    pub pki: certs::DevPki,
    receiver_config: PathBuf,
    agent_config: PathBuf,
}

impl Pipeline {
    /// Starts every part and returns once both Prometheus servers are ready.
    pub async fn start(options: Options) -> Self {
        assert!(
            prometheus_available(),
            "the prometheus binary is required (apt-get install prometheus); .ci/run installs it"
        );
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let pki = dev_pki(&root, &[SEED]);
        let target = MetricsTarget::start(&options.target_body).await;
        let source = Prometheus::start("source", &root, &source_config(target.addr), &[])
            .await
            .unwrap();
        let slo = Prometheus::start(
            "slo",
            &root,
            SLO_CONFIG,
            &["--web.enable-remote-write-receiver"],
        )
        .await
        .unwrap();

        let (rx_port, receiver_admin, agent_admin) = (free_port(), free_port(), free_port());
        let receiver_config = write_receiver_config(
            &root,
            "receiver",
            &pki,
            (rx_port, receiver_admin),
            &format!("{}/api/v1/write", slo.url()),
            &options.receiver_limits_yaml,
        );
        let (_, seed_cert, seed_key) = &pki.seeds[0];
        let selectors: Vec<String> = options.selectors.iter().map(|s| format!("'{s}'")).collect();
        let agent_config = root.join("agent.yaml");
        std::fs::write(
            &agent_config,
            format!(
                "listen: 127.0.0.1:{agent_admin}\nexternal_labels: {{landscape: dev}}\n\
                 scrape:\n  interval: 1s\n  timeout: 1s\n  targets:\n    - url: {source}/federate\n      match: [{selectors}]\n\
                 remote_write:\n  url: https://127.0.0.1:{rx_port}/api/v1/write\n  \
                 tls: {{ca_file: {ca}, cert_file: {cert}, key_file: {key}}}\n  \
                 retry: {{min_backoff: 100ms, max_backoff: 2s}}\n{rw_extra}\
                 buffer:\n  path: {buffer}\n{buffer_extra}",
                source = source.url(),
                selectors = selectors.join(", "),
                ca = pki.ca.display(),
                cert = seed_cert.display(),
                key = seed_key.display(),
                buffer = root.join("buffer").display(),
                rw_extra = options.remote_write_yaml,
                buffer_extra = options.buffer_yaml,
            ),
        )
        .unwrap();
        let receiver = spawn_component(&root, "receiver", &receiver_config);
        let agent = spawn_component(&root, "agent", &agent_config);
        Self {
            dir,
            target,
            source,
            slo,
            receiver,
            agent,
            agent_admin,
            receiver_admin,
            receiver_port: rx_port,
            pki,
            receiver_config,
            agent_config,
        }
    }

    /// The receiver's `https://…/api/v1/write`.
    pub fn receiver_write_url(&self) -> String {
        format!("https://127.0.0.1:{}/api/v1/write", self.receiver_port)
    }

    /// Starts the receiver again after it was stopped.
    pub fn restart_receiver(&mut self) {
        self.receiver = spawn_component(self.dir.path(), "receiver", &self.receiver_config);
    }

    /// Starts the agent again after it was stopped.
    pub fn restart_agent(&mut self) {
        self.agent = spawn_component(self.dir.path(), "agent", &self.agent_config);
    }

    /// The agent's and receiver's logs, for assertion messages.
    pub fn logs(&self) -> String {
        format!(
            "--- agent log\n{}\n--- receiver log\n{}",
            tail(&self.agent.log_text()),
            tail(&self.receiver.log_text())
        )
    }

    /// One sample of the agent's own metrics (summed over label sets matching `labels`), or
    /// None when the agent does not answer.
    pub async fn agent_metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        metric(self.agent_admin, name, labels).await
    }

    /// Waits until the agent's metric satisfies `pred`, returning its value.
    pub async fn wait_agent_metric(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        timeout: Duration,
        pred: impl Fn(f64) -> bool,
    ) -> f64 {
        wait_metric(
            self.agent_admin,
            name,
            labels,
            timeout,
            &format!("agent metric {name}{labels:?}\n{}", self.logs()),
            pred,
        )
        .await
    }

    /// Samples stored in the SLO Prometheus for this seed over the last 30 minutes.
    pub async fn slo_sample_count(&self) -> f64 {
        self.slo
            .query_value(&format!("sum(count_over_time({{seed=\"{SEED}\"}}[30m]))"))
            .await
            .unwrap()
            .unwrap_or(0.0)
    }

    /// Stops the source Prometheus so the agent scrapes nothing more, and returns the agent's
    /// final scraped-sample count once a scrape has failed.
    pub async fn stop_scraping(&mut self) -> f64 {
        assert!(self.source.process.terminate(Duration::from_secs(30)));
        let failed = self
            .agent_metric("slo_gateway_agent_scrapes_total", &[("result", "error")])
            .await
            .unwrap_or(0.0);
        self.wait_agent_metric(
            "slo_gateway_agent_scrapes_total",
            &[("result", "error")],
            Duration::from_secs(30),
            |v| v > failed,
        )
        .await;
        self.agent_metric("slo_gateway_agent_samples_scraped_total", &[])
            .await
            .unwrap()
    }

    /// Waits until the agent's queue is empty and the SLO Prometheus holds `expected` samples.
    pub async fn wait_delivered(&self, expected: f64, timeout: Duration) {
        self.wait_agent_metric("slo_gateway_agent_queue_records", &[], timeout, |v| {
            v == 0.0
        })
        .await;
        let last = std::cell::Cell::new(0.0);
        let waited = eventually(
            "the SLO Prometheus to hold every scraped sample",
            || async {
                last.set(self.slo_sample_count().await);
                last.get() >= expected
            },
        )
        .within(timeout)
        .every(Duration::from_millis(500))
        .try_wait()
        .await;
        let found = last.get();
        assert!(
            waited.is_ok(),
            "lost samples: the agent scraped {expected}, the SLO Prometheus holds {found}\n{}",
            self.logs()
        );
        assert_eq!(
            found, expected,
            "SLO Prometheus holds more samples than the agent scraped"
        );
    }
}

/// Writes `<root>/<name>.yaml`: a receiver on 127.0.0.1 `ports` (listen, admin) with `pki`'s
/// server certificate and CA, forwarding to `forward_url`, with `limits` (YAML flow mapping).
fn write_receiver_config(
    root: &std::path::Path,
    name: &str,
    pki: &certs::DevPki,
    (listen, admin): (u16, u16),
    forward_url: &str,
    limits: &str,
) -> PathBuf {
    let path = root.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "listen: 127.0.0.1:{listen}\nadmin_listen: 127.0.0.1:{admin}\n\
             tls: {{cert_file: {}, key_file: {}, client_ca_file: {}}}\n\
             identity: {{label: seed}}\nforward: {{url: '{forward_url}'}}\nlimits: {limits}\n",
            pki.server_cert.display(),
            pki.server_key.display(),
            pki.ca.display(),
        ),
    )
    .unwrap();
    path
}

fn spawn_component(root: &std::path::Path, role: &str, config: &std::path::Path) -> Process {
    spawn_named(root, role, role, config)
}

/// Spawns `slo-gateway <role> --config <config>` as process `name` (log `<root>/<name>.log`).
pub fn spawn_named(
    root: &std::path::Path,
    name: &str,
    role: &str,
    config: &std::path::Path,
) -> Process {
    Process::spawn(
        name,
        root,
        std::path::Path::new(&slo_gateway_bin()),
        &[
            role.to_string(),
            "--config".into(),
            config.display().to_string(),
        ],
    )
    .unwrap()
}

/// A `slo-gateway receiver` process on its own, for tests that push to it directly.
#[derive(Debug)]
pub struct ReceiverProcess {
    pub process: Process,
    /// The mTLS port.
    pub port: u16,
    /// The admin port (`/metrics`, `/status`).
    pub admin_port: u16,
}

impl ReceiverProcess {
    /// Starts receiver `name` with `pki` forwarding to `forward_url` under `limits` (YAML flow
    /// mapping) and waits until its admin port answers.
    pub async fn start(
        root: &std::path::Path,
        name: &str,
        pki: &certs::DevPki,
        forward_url: &str,
        limits: &str,
    ) -> Self {
        let (port, admin_port) = (free_port(), free_port());
        let config =
            write_receiver_config(root, name, pki, (port, admin_port), forward_url, limits);
        let process = spawn_named(root, name, "receiver", &config);
        let receiver = Self {
            process,
            port,
            admin_port,
        };
        let what = format!(
            "receiver {name} ready (log {})",
            receiver.process.log.display()
        );
        let url = format!("http://127.0.0.1:{admin_port}/readyz");
        wait_http_ok(&what, &url, Duration::from_secs(30)).await;
        receiver
    }

    /// `https://127.0.0.1:<port>/api/v1/write`.
    pub fn write_url(&self) -> String {
        format!("https://127.0.0.1:{}/api/v1/write", self.port)
    }

    /// One sample of its metrics summed over label sets matching `labels` (0 when absent).
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric(self.admin_port, name, labels).await.unwrap_or(0.0)
    }
}

/// mTLS client files for seed `index` of `pki`.
pub fn seed_client_files(pki: &certs::DevPki, index: usize) -> common::tls::ClientFiles {
    let (_, cert, key) = &pki.seeds[index];
    common::tls::ClientFiles {
        ca: pki.ca.clone(),
        cert: cert.clone(),
        key: key.clone(),
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Waits until [`metric`] of `port` satisfies `pred`, returning its value; panics with `what`
/// after `timeout`.
pub async fn wait_metric(
    port: u16,
    name: &str,
    labels: &[(&str, &str)],
    timeout: Duration,
    what: &str,
    pred: impl Fn(f64) -> bool,
) -> f64 {
    eventually(what, || async {
        metric(port, name, labels).await.filter(|v| pred(*v))
    })
    .within(timeout)
    .every(Duration::from_millis(200))
    .await
}

/// Reads `/metrics` on `port` and sums the samples named `name` whose labels include `labels`.
pub async fn metric(port: u16, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let text = http()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let mut total = None;
    for sample in exposition::parse_samples(&text).flatten() {
        if sample.name != name {
            continue;
        }
        let have: BTreeMap<&str, &str> = sample
            .labels
            .iter()
            .map(|l| (l.name, l.value.as_ref()))
            .collect();
        if labels.iter().all(|(k, v)| have.get(k) == Some(v)) {
            *total.get_or_insert(0.0) += sample.value;
        }
    }
    Some(total.unwrap_or(0.0))
}
