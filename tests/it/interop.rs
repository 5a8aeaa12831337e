//! Interoperability with the Remote Write implementations a landscape runs beside ours, as real
//! processes on 127.0.0.1 with mTLS certificates made at test time ([`TestPki`]):
//!
//! - into the receiver: Prometheus 2.42 in agent mode and vmagent (Debian's 1.79) scrape a
//!   target and push; every series arrives upstream with `seed` set to the certificate's
//!   identity whatever the sender claimed, and a receiver restart loses no sample;
//! - from the agent: into Prometheus 2.42 (`--web.enable-remote-write-receiver`) and into
//!   single-node VictoriaMetrics, each terminating TLS itself; both speak Remote Write 1.0 only,
//!   so `protocol: auto` falls back, and every scraped sample is stored across a sink restart;
//! - past one Prometheus: the generated runtime-tier rules, unchanged, on vmalert over
//!   VictoriaMetrics with a real Alertmanager: every group loads, every expression evaluates,
//!   and a shoot that fails pages while a healthy one does not.
//!
//! Every process is killed when its handle drops; the process tests hold a [`heavy`] slot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use serde_json::Value;
use slo_gateway::agent::metrics::ScrapeResult;
use slo_gateway::landscape::process::{
    alertmanager_program, installed, AlertState, AlertmanagerServer,
};
use slo_gateway::remote_write::{Label, Sample, TimeSeries};

use common::agent::{AgentSetup, FederateSource};
use common::processes::{http, slo_gateway_bin, Process};
use common::{
    eventually, free_port, heavy, https_client, now_ms, post_write, receiver_config,
    start_receiver_at, write_body, Load, ReceiverSetup, RecordingUpstream, TestPki,
};

/// The identity of the client certificate every sender here presents.
const SEED: &str = "aws-eu1";

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// Panics unless `program` is installed, naming the Debian package that brings it.
fn require(program: &str, package: &str) {
    assert!(
        installed(program),
        "{program} is required (apt-get install {package}); .ci/run installs it"
    );
}

/// A server process on a fixed port of 127.0.0.1 that can be stopped and started again on the
/// same port and data: the sink of an outage.
struct Daemon {
    process: Process,
    dir: PathBuf,
    program: &'static str,
    args: Vec<String>,
    /// `http(s)://127.0.0.1:<port>`.
    base: String,
    ready_path: &'static str,
    client: reqwest::Client,
}

impl Daemon {
    /// Starts `program args` (logging to `<dir>/<name>.log`) and waits until `GET base +
    /// ready_path` answers 2xx through `client`.
    async fn start(
        name: &str,
        dir: &Path,
        program: &'static str,
        args: Vec<String>,
        base: String,
        ready_path: &'static str,
        client: reqwest::Client,
    ) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let process = Process::spawn(name, dir, Path::new(program), &args).unwrap();
        let daemon = Self {
            process,
            dir: dir.to_path_buf(),
            program,
            args,
            base,
            ready_path,
            client,
        };
        daemon.wait_ready().await;
        daemon
    }

    async fn wait_ready(&self) {
        let url = format!("{}{}", self.base, self.ready_path);
        eventually(
            format!(
                "{} ready at {url} (log {})",
                self.process.name,
                self.process.log.display()
            ),
            || async {
                let response = self.client.get(&url).send().await.ok()?;
                response.status().is_success().then_some(())
            },
        )
        .within(Duration::from_secs(30))
        .every(Duration::from_millis(100))
        .await;
    }

    /// SIGTERM, and the exit awaited: a clean stop, as a rollout does it.
    fn stop(&mut self) {
        assert!(
            self.process.terminate(Duration::from_secs(30)),
            "{} did not stop on SIGTERM",
            self.process.name
        );
    }

    /// Starts the stopped process again with the same arguments (port, data).
    async fn restart(&mut self) {
        let name = self.process.name.clone();
        self.process =
            Process::spawn(&name, &self.dir, Path::new(self.program), &self.args).unwrap();
        self.wait_ready().await;
    }

    /// `GET base + path` with `query`, as JSON.
    async fn get_json(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let text = self
            .client
            .get(format!("{}{path}", self.base))
            .query(query)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
    }

    /// An instant query through the Prometheus query API: `Err` with the answer when the
    /// engine refuses it, else the results.
    async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let answer = self.get_json("/api/v1/query", &[("query", expr)]).await;
        if answer["status"] != "success" {
            return Err(answer.to_string());
        }
        Ok(answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The value of the first result of `expr` (0 when there is none).
    async fn query_value(&self, expr: &str) -> f64 {
        let results = self.query(expr).await.unwrap();
        results
            .first()
            .and_then(|r| r["value"][1].as_str())
            .map_or(0.0, |v| v.parse().unwrap())
    }
}

/// Single-node VictoriaMetrics on `dir`. Queries see the newest samples at once
/// (`-search.latencyOffset=0s`, no result cache): the default 30 s offset would delay every
/// step of a test by half a minute. `tls`: terminate TLS with the PKI's server certificate.
async fn victoria_metrics(dir: &Path, tls: Option<&TestPki>) -> Daemon {
    require("victoria-metrics", "victoria-metrics");
    let port = free_port();
    let mut args = vec![
        format!("-httpListenAddr=127.0.0.1:{port}"),
        format!("-storageDataPath={}", dir.join("data").display()),
        "-search.latencyOffset=0s".into(),
        "-search.disableCache".into(),
        // A batch re-sent after a restart counts once, as in Prometheus' TSDB.
        "-dedup.minScrapeInterval=1ms".into(),
        "-loggerLevel=WARN".into(),
    ];
    let (base, client) = match tls {
        Some(pki) => {
            args.extend([
                "-tls".into(),
                format!("-tlsCertFile={}", pki.server_cert.display()),
                format!("-tlsKeyFile={}", pki.server_key.display()),
            ]);
            (
                format!("https://127.0.0.1:{port}"),
                https_client(&pki.seed_client("query")),
            )
        }
        None => (format!("http://127.0.0.1:{port}"), http()),
    };
    Daemon::start(
        "victoria-metrics",
        dir,
        "victoria-metrics",
        args,
        base,
        "/health",
        client,
    )
    .await
}

/// Prometheus 2.42 with `--web.enable-remote-write-receiver` that terminates mTLS itself
/// (`--web.config.file`, client certificates of the test CA required).
async fn tls_prometheus(pki: &TestPki, dir: &Path) -> Daemon {
    require("prometheus", "prometheus");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(
        dir.join("prometheus.yml"),
        "global:\n  scrape_interval: 1m\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  \
             client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n",
            pki.server_cert.display(),
            pki.server_key.display(),
            pki.client_ca_file.display(),
        ),
    )
    .unwrap();
    let port = free_port();
    let args = vec![
        format!("--config.file={}", dir.join("prometheus.yml").display()),
        format!("--storage.tsdb.path={}", dir.join("data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        format!("--web.config.file={}", dir.join("web.yml").display()),
        "--web.enable-remote-write-receiver".into(),
        "--log.level=warn".into(),
    ];
    Daemon::start(
        "prometheus",
        dir,
        "prometheus",
        args,
        format!("https://127.0.0.1:{port}"),
        "/-/ready",
        https_client(&pki.seed_client("query")),
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Senders into the receiver
// ---------------------------------------------------------------------------------------------

/// The counter every scrape of a [`CountingTarget`] serves.
const SCRAPES: &str = "interop_scrapes_total";
/// The `seed` every sender claims (target label, external label): the receiver replaces it.
const CLAIMED: &str = "claimed-by-the-sender";

/// A `/metrics` target whose counter [`SCRAPES`] counts its own scrapes (1, 2, 3, …), so the
/// values that arrive upstream show any sample lost on the way; plus two `shoot:availability`
/// series. Every series claims `seed="claimed-by-the-sender"`.
struct CountingTarget {
    addr: SocketAddr,
    served: Arc<AtomicU64>,
}

impl CountingTarget {
    async fn start() -> Self {
        let served = Arc::new(AtomicU64::new(0));
        let counter = served.clone();
        let app = Router::new().route(
            "/metrics",
            get(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    format!(
                        "# TYPE {SCRAPES} counter\n{SCRAPES}{{seed=\"{CLAIMED}\"}} {n}\n\
                         # TYPE shoot:availability gauge\n\
                         shoot:availability{{cluster=\"shoot--p--a\",seed=\"{CLAIMED}\"}} 1\n\
                         shoot:availability{{cluster=\"shoot--p--b\",seed=\"{CLAIMED}\"}} 0\n"
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, served }
    }

    /// How many scrapes it answered.
    fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }

    /// The `scrape_configs` section of a sender that scrapes it, the target's labels kept.
    fn scrape_config(&self) -> String {
        format!(
            "scrape_configs:\n  - job_name: interop\n    honor_labels: true\n    \
             static_configs: [{{targets: ['{}']}}]\n",
            self.addr
        )
    }
}

/// What arrived upstream: the [`SCRAPES`] values, every series' `seed` labels, the names, and
/// how many scrapes the sender reported failed (`up` 0: a scrape the target answered but the
/// sender gave up on leaves a gap that is not a loss).
#[derive(Debug, Default)]
struct Arrived {
    scrapes: BTreeSet<u64>,
    seeds: BTreeSet<Vec<String>>,
    names: BTreeSet<String>,
    failed_scrapes: usize,
}

impl Arrived {
    fn of(upstream: &RecordingUpstream) -> Self {
        let mut arrived = Self::default();
        for series in upstream
            .write_requests()
            .into_iter()
            .flat_map(|r| r.timeseries)
        {
            let value = |name: &str| {
                series
                    .labels
                    .iter()
                    .filter(|l| l.name == name)
                    .map(|l| l.value.clone())
                    .collect::<Vec<_>>()
            };
            arrived.seeds.insert(value("seed"));
            arrived.names.extend(value("__name__"));
            // Stale markers are NaN; every other value of SCRAPES is a scrape's number.
            let values = series
                .samples
                .iter()
                .map(|s| s.value)
                .filter(|v| v.is_finite());
            if value("__name__") == [SCRAPES] {
                arrived.scrapes.extend(values.map(|v| v as u64));
            } else if value("__name__") == ["up"] {
                arrived.failed_scrapes += values.filter(|v| *v == 0.0).count();
            }
        }
        arrived
    }

    /// Whether the scrape numbers run from the first that arrived to `last` or beyond, without
    /// a gap that failed scrapes do not explain.
    fn unbroken_through(&self, last: u64) -> Result<(), String> {
        let (Some(first), Some(max)) = (self.scrapes.first(), self.scrapes.last()) else {
            return Err("no scrape arrived".into());
        };
        let missing: Vec<u64> = (*first..=*max)
            .filter(|n| !self.scrapes.contains(n))
            .collect();
        if missing.len() > self.failed_scrapes {
            return Err(format!(
                "scrapes {missing:?} lost between {first} and {max} ({} failed)",
                self.failed_scrapes
            ));
        }
        if *max < last {
            return Err(format!("scrapes {first}..={max} arrived, not yet {last}"));
        }
        Ok(())
    }
}

/// A sender scraping a [`CountingTarget`] pushes into the receiver (in process, mTLS), the
/// receiver is shut down while the target is scraped on, and started again on its address.
/// Returns what arrived upstream once every scrape up to the restart has.
async fn push_through_a_receiver_restart(
    start_sender: impl AsyncFnOnce(&TestPki, &Path, &CountingTarget, &str) -> Daemon,
) -> Arrived {
    let (pki, upstream, receiver) = ReceiverSetup::new().start().await;
    let dir = tempfile::tempdir().unwrap();
    let target = CountingTarget::start().await;
    let sender = start_sender(&pki, dir.path(), &target, &receiver.write_url()).await;
    let logs = || format!("sender log {}", sender.process.log.display());

    eventually(
        format!("the first scrapes upstream ({})", logs()),
        || async { Arrived::of(&upstream).scrapes.len() >= 2 },
    )
    .within(Duration::from_secs(30))
    .every(Duration::from_millis(100))
    .await;

    // The receiver goes away while the sender scrapes on, then comes back on its address.
    let addr = receiver.addr;
    receiver
        .shutdown(Duration::from_secs(10))
        .await
        .expect("the receiver did not stop");
    let down_at = target.served();
    eventually("three scrapes while the receiver is down", || async {
        target.served() >= down_at + 3
    })
    .within(Duration::from_secs(30))
    .every(Duration::from_millis(100))
    .await;
    let _receiver = start_receiver_at(
        &receiver_config(&pki, &upstream.url()),
        pki.dir.path(),
        addr,
    )
    .await;
    let up_at = target.served();

    let unbroken = eventually("every scrape upstream", || async {
        let arrived = Arrived::of(&upstream);
        arrived.unbroken_through(up_at).map(|()| arrived)
    })
    .within(Duration::from_secs(30))
    .every(Duration::from_millis(200))
    .try_wait()
    .await;
    let arrived = unbroken.unwrap_or_else(|e| panic!("{e} ({})", logs()));
    assert!(
        *arrived.scrapes.first().unwrap() <= down_at,
        "nothing from before the outage arrived: {:?}",
        arrived.scrapes
    );
    arrived
}

/// The series of a [`CountingTarget`] and the sender's own (`up`, `scrape_*`) arrive, each
/// with exactly one `seed`: the certificate's.
fn assert_seed_forced(arrived: &Arrived) {
    assert_eq!(
        arrived.seeds,
        BTreeSet::from([vec![SEED.to_owned()]]),
        "every series must carry seed={SEED} once, the sender's claims replaced"
    );
    for name in [SCRAPES, "shoot:availability", "up"] {
        assert!(
            arrived.names.contains(name),
            "{name} missing: {:?}",
            arrived.names
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_2_42_in_agent_mode_pushes_into_the_receiver_and_loses_nothing_across_its_restart(
) {
    let _heavy = heavy(Load::Processes).await;
    require("prometheus", "prometheus");
    let arrived = push_through_a_receiver_restart(
        async |pki: &TestPki, dir: &Path, target: &CountingTarget, url: &str| {
            let client = pki.seed_client(SEED);
            let config = dir.join("prometheus-agent.yml");
            std::fs::write(
                &config,
                format!(
                    "global:\n  scrape_interval: 500ms\n  external_labels: {{seed: {CLAIMED}}}\n\
                     {scrape}\
                     remote_write:\n  - url: {url}\n    \
                     tls_config: {{ca_file: {ca}, cert_file: {cert}, key_file: {key}}}\n    \
                     queue_config: {{batch_send_deadline: 200ms, min_backoff: 50ms, max_backoff: 500ms}}\n",
                    scrape = target.scrape_config(),
                    ca = client.ca.display(),
                    cert = client.cert.display(),
                    key = client.key.display(),
                ),
            )
            .unwrap();
            let port = free_port();
            let args = vec![
                "--enable-feature=agent".into(),
                format!("--config.file={}", config.display()),
                format!("--storage.agent.path={}", dir.join("agent-wal").display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
                "--log.level=warn".into(),
            ];
            Daemon::start(
                "prometheus-agent",
                dir,
                "prometheus",
                args,
                format!("http://127.0.0.1:{port}"),
                "/-/ready",
                http(),
            )
            .await
        },
    )
    .await;
    assert_seed_forced(&arrived);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vmagent_pushes_into_the_receiver_and_loses_nothing_across_its_restart() {
    let _heavy = heavy(Load::Processes).await;
    require("vmagent", "victoria-metrics");
    let arrived = push_through_a_receiver_restart(
        async |pki: &TestPki, dir: &Path, target: &CountingTarget, url: &str| {
            let client = pki.seed_client(SEED);
            let config = dir.join("vmagent-scrape.yml");
            std::fs::write(
                &config,
                format!(
                    "global:\n  scrape_interval: 500ms\n{}",
                    target.scrape_config()
                ),
            )
            .unwrap();
            let port = free_port();
            let args = vec![
                format!("-promscrape.config={}", config.display()),
                format!("-remoteWrite.url={url}"),
                format!("-remoteWrite.tlsCAFile={}", client.ca.display()),
                format!("-remoteWrite.tlsCertFile={}", client.cert.display()),
                format!("-remoteWrite.tlsKeyFile={}", client.key.display()),
                format!("-remoteWrite.label=seed={CLAIMED}"),
                "-remoteWrite.flushInterval=200ms".into(),
                format!(
                    "-remoteWrite.tmpDataPath={}",
                    dir.join("vmagent-queue").display()
                ),
                format!("-httpListenAddr=127.0.0.1:{port}"),
                "-loggerLevel=WARN".into(),
            ];
            Daemon::start(
                "vmagent",
                dir,
                "vmagent",
                args,
                format!("http://127.0.0.1:{port}"),
                "/health",
                http(),
            )
            .await
        },
    )
    .await;
    assert_seed_forced(&arrived);
}

// ---------------------------------------------------------------------------------------------
// The agent into other receivers
// ---------------------------------------------------------------------------------------------

/// Series the federate source serves.
const SERIES: usize = 3;

/// The agent (in process, `protocol: auto`) writes into `sink`, which stops and starts again
/// while the agent scrapes on; then the source fails, the queue drains, and every scraped
/// sample must be stored in the sink, once.
async fn agent_through_a_sink_restart(
    pki: &TestPki,
    dir: &Path,
    mut sink: Daemon,
    flush: Option<&str>,
) {
    let federate = FederateSource::start(SERIES).await;
    let write_url = format!("{}/api/v1/write", sink.base);
    let agent = AgentSetup::new()
        .start(pki, dir, &federate, &write_url)
        .await;
    let stored_query = "sum(count_over_time({__name__=\"shoot:availability\"}[1h]))";
    // VictoriaMetrics shows a new series only after its index is flushed (some seconds).
    let stored = async |sink: &Daemon| {
        if let Some(path) = flush {
            sink.client
                .get(format!("{}{path}", sink.base))
                .send()
                .await
                .unwrap();
        }
        sink.query_value(stored_query).await
    };
    eventually(
        format!("samples in the sink (log {})", sink.process.log.display()),
        || async { stored(&sink).await > 0.0 },
    )
    .within(Duration::from_secs(30))
    .every(Duration::from_millis(200))
    .await;

    // The sink goes away; the agent buffers what it scrapes meanwhile.
    sink.stop();
    let down_at = agent.metrics.samples_scraped();
    eventually("five scrapes buffered while the sink is down", || async {
        agent.metrics.samples_scraped() >= down_at + 5 * SERIES as u64
            && agent.metrics.queue_records() > 0
    })
    .within(Duration::from_secs(30))
    .await;
    sink.restart().await;

    // The source fails (no samples, no stale markers) and the queue drains.
    federate.set_serving(false);
    let drained = eventually("failed scrapes and an empty queue", || async {
        let m = &agent.metrics;
        m.scrapes(ScrapeResult::Error) >= 2 && m.queue_records() == 0
    })
    .within(Duration::from_secs(30))
    .try_wait()
    .await;
    let scraped = agent.metrics.samples_scraped();
    let metrics = agent.stop().await;
    drained.unwrap_or_else(|e| panic!("{e}: {} records queued", metrics.queue_records()));

    // `auto` starts with 2.0 and falls back for good on the first 2xx without a written count
    // (neither sink speaks 2.0), sending that batch again as 1.0.
    assert!(!metrics.sends_v2(), "still on Remote Write 2.0");
    assert_eq!(metrics.samples_sent(), scraped);
    assert_eq!(metrics.stale_markers(), 0);
    let found = eventually("every scraped sample stored", || async {
        let found = stored(&sink).await;
        (found >= scraped as f64).then_some(found)
    })
    .within(Duration::from_secs(30))
    .every(Duration::from_millis(200))
    .try_wait()
    .await;
    assert_eq!(
        found,
        Ok(scraped as f64),
        "the sink stores {} of {scraped} scraped samples (log {})",
        stored(&sink).await,
        sink.process.log.display()
    );
    let series = sink
        .query_value("count(last_over_time({__name__=\"shoot:availability\"}[1h]))")
        .await;
    assert_eq!(series, SERIES as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_falls_back_to_1_0_into_prometheus_2_42_and_loses_nothing_across_its_restart() {
    let _heavy = heavy(Load::Processes).await;
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let sink = tls_prometheus(&pki, &dir.path().join("prometheus")).await;
    agent_through_a_sink_restart(&pki, dir.path(), sink, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_falls_back_to_1_0_into_victoriametrics_and_loses_nothing_across_its_restart() {
    let _heavy = heavy(Load::Processes).await;
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let sink = victoria_metrics(&dir.path().join("victoria-metrics"), Some(&pki)).await;
    agent_through_a_sink_restart(&pki, dir.path(), sink, Some("/internal/force_flush")).await;
}

// ---------------------------------------------------------------------------------------------
// Past one Prometheus: the runtime-tier rules on vmalert over VictoriaMetrics
// ---------------------------------------------------------------------------------------------

/// A small spec in the twin's shape: two catalog SLIs, a one-day period (so the 5-minute and
/// hourly rollup groups exist), pages on 5m/1m. The seed alerts are off: they carry
/// `keep_firing_for`, which vmalert reads from 1.92 on only (Debian ships 1.79).
const SPLIT_SPEC: &str = "\
version: slo-gateway/v1
service: split
slos:
  - name: apiserver-availability
    objective: 99
    window: 1d
    sli: {catalog: apiserver-availability}
    alerting:
      windows:
        - {severity: page, budget_percent: 10, long: 5m, short: 1m}
        - {severity: ticket, budget_percent: 50, long: 2h, short: 30m}
  - name: apiserver-errors
    objective: 99
    window: 1d
    sli: {catalog: apiserver-errors}
    alerting:
      windows:
        - {severity: page, budget_percent: 10, long: 5m, short: 1m}
        - {severity: ticket, budget_percent: 50, long: 2h, short: 30m}
alertmanager: {group_wait: 1s, group_interval: 1s, repeat_interval: 1h}
seed_silent: {enabled: false}
seed_unreachable: {enabled: false}
seed_uncovered: {enabled: false}
shoot_tier: {range: 1m}
";

/// `slo-gateway rules --spec <spec> --out <dir>/out`, as an operator runs it; the output dir.
fn generate_rules(dir: &Path, spec: &str) -> PathBuf {
    let spec_file = dir.join("slos.yaml");
    std::fs::write(&spec_file, spec).unwrap();
    let out = dir.join("out");
    let run = std::process::Command::new(slo_gateway_bin())
        .args(["rules", "--spec"])
        .arg(&spec_file)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "slo-gateway rules failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    out
}

/// The groups of a rule file: name → the rules' expressions.
fn rule_groups(file: &Path) -> BTreeMap<String, Vec<String>> {
    let rules: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|g| {
            let exprs = g["rules"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|r| r["expr"].as_str().unwrap().to_owned())
                .collect();
            (g["name"].as_str().unwrap().to_owned(), exprs)
        })
        .collect()
}

/// Every `shoot:slo_…:bad|total` series the runtime tier reads from the shoot tier, for one
/// shoot: all events bad (`failing`) or none.
fn shoot_tier_input(shoot_rules: &Path, cluster: &str, failing: bool) -> Vec<TimeSeries> {
    let rules: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(shoot_rules).unwrap()).unwrap();
    let now = now_ms();
    rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().iter())
        .map(|r| r["record"].as_str().unwrap().to_owned())
        .map(|name| {
            let value = if name.ends_with(":bad") && !failing {
                0.0
            } else {
                1.0
            };
            TimeSeries {
                labels: [
                    ("__name__", name.as_str()),
                    ("cluster", cluster),
                    ("seed", SEED),
                ]
                .iter()
                .map(|(name, value)| Label {
                    name: (*name).into(),
                    value: (*value).into(),
                })
                .collect(),
                samples: vec![Sample {
                    value,
                    timestamp: now,
                }],
                exemplars: Vec::new(),
            }
        })
        .collect()
}

const FAILING: &str = "shoot--split--down";
const HEALTHY: &str = "shoot--split--up";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_rules_run_unchanged_on_vmalert_over_victoriametrics_and_page_the_failing_shoot_only(
) {
    let _heavy = heavy(Load::Processes).await;
    require("vmalert", "victoria-metrics");
    assert!(
        alertmanager_program().is_some(),
        "Alertmanager is required (apt-get install prometheus-alertmanager); .ci/run installs it"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = generate_rules(dir.path(), SPLIT_SPEC);
    let rule_file = out.join("prometheus-rules.yaml");
    let groups = rule_groups(&rule_file);

    let vm = victoria_metrics(&dir.path().join("victoria-metrics"), None).await;
    let alertmanager = AlertmanagerServer::start(
        "alertmanager",
        dir.path(),
        &std::fs::read_to_string(out.join("alertmanager.yaml")).unwrap(),
    )
    .await
    .unwrap();
    let port = free_port();
    let vmalert = Daemon::start(
        "vmalert",
        &dir.path().join("vmalert"),
        "vmalert",
        vec![
            format!("-rule={}", rule_file.display()),
            format!("-datasource.url={}", vm.base),
            format!("-remoteWrite.url={}", vm.base),
            format!("-remoteRead.url={}", vm.base),
            format!("-notifier.url={}", alertmanager.url()),
            // The groups without an interval of their own (the rollups have 5m and 1h).
            "-evaluationInterval=1s".into(),
            "-remoteWrite.flushInterval=200ms".into(),
            format!("-httpListenAddr=127.0.0.1:{port}"),
            "-loggerLevel=WARN".into(),
        ],
        format!("http://127.0.0.1:{port}"),
        "/health",
        http(),
    )
    .await;

    // The shoot tier's output for two shoots, every second, as the receiver would forward it.
    let shoot_rules = out.join("shoot/prometheus-rules.yaml");
    let write_url = format!("{}/api/v1/write", vm.base);
    let flush_url = format!("{}/internal/force_flush", vm.base);
    let writer = tokio::spawn(async move {
        let client = http();
        loop {
            let mut input = shoot_tier_input(&shoot_rules, FAILING, true);
            input.extend(shoot_tier_input(&shoot_rules, HEALTHY, false));
            let (status, _, body) = post_write(&client, &write_url, write_body(input)).await;
            assert!((200..300).contains(&status), "{status} {body}");
            // VictoriaMetrics shows a new series once its index is flushed, within about ten
            // seconds; flushing here spares the test that wait at each level of the rule chain
            // (vmalert's recordings are new series too).
            client.get(&flush_url).send().await.unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });

    // The failing shoot pages, for each SLO.
    let pages = |alerts: &[AlertState]| {
        alerts
            .iter()
            .filter(|a| a.label("severity") == "page" && a.label("cluster") == FAILING)
            .map(|a| a.label("sloth_slo").to_owned())
            .collect::<BTreeSet<_>>()
    };
    let paged = eventually(
        format!(
            "a page per SLO for {FAILING} in Alertmanager (vmalert log {})",
            vmalert.process.log.display()
        ),
        || async {
            let alerts = alertmanager.alerts().await.ok()?;
            (pages(&alerts).len() == 2).then_some(alerts)
        },
    )
    .within(Duration::from_secs(60))
    .every(Duration::from_millis(250))
    .try_wait()
    .await;
    assert!(
        !writer.is_finished(),
        "the input stopped: {:?}",
        writer.await
    );
    let alerts = paged.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        pages(&alerts),
        BTreeSet::from(["apiserver-availability".into(), "apiserver-errors".into()])
    );
    assert!(
        alerts.iter().all(|a| a.label("cluster") == FAILING),
        "only {FAILING} may alert: {alerts:?}"
    );
    // The healthy shoot was evaluated (its bad events are recorded, at 0), not merely absent.
    let healthy = vm
        .query(&format!("slo:sli_events:bad{{cluster=\"{HEALTHY}\"}}"))
        .await
        .unwrap();
    assert_eq!(healthy.len(), 2, "{healthy:?}");
    assert!(healthy.iter().all(|r| r["value"][1] == "0"), "{healthy:?}");
    writer.abort();

    // vmalert loaded every group unchanged and none of its rules failed.
    let loaded = vmalert.get_json("/api/v1/rules", &[]).await;
    let loaded = loaded["data"]["groups"].as_array().unwrap();
    let names: BTreeSet<&str> = loaded.iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(names, groups.keys().map(String::as_str).collect());
    for group in loaded {
        let name = group["name"].as_str().unwrap();
        let rules = group["rules"].as_array().unwrap();
        assert_eq!(rules.len(), groups[name].len(), "{name}");
        for rule in rules {
            assert_eq!(rule["health"], "ok", "{name}: {rule}");
            assert_eq!(rule["lastError"], "", "{name}: {rule}");
        }
    }
    // vmalert 1.79 first evaluates a group with its own interval (the rollups) somewhere in
    // that interval, so the test asks VictoriaMetrics for every expression itself.
    for (name, exprs) in &groups {
        for expr in exprs {
            if let Err(e) = vm.query(expr).await {
                panic!("{name}: VictoriaMetrics refuses\n{expr}\n{e}");
            }
        }
    }
}

/// vmalert's own check (`-dryRun`) of the rules of `config/slos.yaml`: it accepts every group
/// but the seed group, whose `keep_firing_for` vmalert reads from 1.92 on only. Taking that
/// field out, it accepts all; a newer vmalert accepts the file as it is.
#[test]
fn vmalert_accepts_every_group_of_the_default_rules_but_keep_firing_for() {
    require("vmalert", "victoria-metrics");
    let dir = tempfile::tempdir().unwrap();
    let out = generate_rules(
        dir.path(),
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/slos.yaml"))
            .unwrap(),
    );
    let dry_run = |file: &Path| {
        let run = std::process::Command::new("vmalert")
            .arg("-dryRun")
            .arg(format!("-rule={}", file.display()))
            .output()
            .unwrap();
        (
            run.status.success(),
            String::from_utf8_lossy(&run.stderr).into_owned()
                + &String::from_utf8_lossy(&run.stdout),
        )
    };
    let rules = out.join("prometheus-rules.yaml");
    let text = std::fs::read_to_string(&rules).unwrap();
    assert!(
        text.contains("keep_firing_for:"),
        "the seed alerts keep firing"
    );
    let (accepted, log) = dry_run(&rules);
    if !accepted {
        let error = log
            .lines()
            .find(|l| l.contains("failed to parse"))
            .unwrap_or_else(|| panic!("{log}"));
        assert!(
            error.contains("errors(1)")
                && error.contains("invalid group \"slo-gateway-seeds\"")
                && error.contains("unknown fields in rule: keep_firing_for"),
            "vmalert refuses more than keep_firing_for: {error}"
        );
        let without: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("keep_firing_for:"))
            .map(|l| format!("{l}\n"))
            .collect();
        let stripped = dir.path().join("without-keep-firing-for.yaml");
        std::fs::write(&stripped, without).unwrap();
        let (accepted, log) = dry_run(&stripped);
        assert!(accepted, "{log}");
    }
}
