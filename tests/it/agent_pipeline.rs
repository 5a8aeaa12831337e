//! The agent against our real receiver (in process, mTLS on 127.0.0.1, forwarding to a recording
//! upstream): Remote Write 2.0 negotiated end to end, and the agent's `/status` page as headless
//! Chromium renders it. Also the agent straight against a real Prometheus 2.42 that terminates
//! mTLS itself: `protocol: auto` falls back to 1.0 and loses nothing.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::path::Path;
use std::time::Duration;

use slo_gateway::agent::metrics::ScrapeResult;
use slo_gateway::agent::AgentMetrics;

use common::agent::{AgentSetup, FederateSource};
use common::processes::{prometheus_available, Process};
use common::{
    browser, eventually, free_port, heavy, https_client, start_default, Load, RecordingUpstream,
    TestPki,
};

const SERIES: usize = 200;

fn upstream_samples(upstream: &RecordingUpstream) -> usize {
    upstream
        .write_requests()
        .iter()
        .flat_map(|r| r.timeseries.iter())
        .map(|t| t.samples.len())
        .sum()
}

/// Runs the agent with `protocol` until `samples` samples reached the upstream; returns the
/// agent's metrics and the upstream's requests.
async fn deliver(protocol: &str, samples: usize) -> (AgentMetrics, RecordingUpstream) {
    let (pki, upstream, receiver) = start_default().await;
    let dir = tempfile::tempdir().unwrap();
    let federate = FederateSource::start(SERIES).await;
    let agent = AgentSetup::new()
        .protocol(protocol)
        .start(&pki, dir.path(), &federate, &receiver.write_url())
        .await;
    let delivered = eventually("the samples upstream", || async {
        upstream_samples(&upstream) >= samples
    })
    .within(Duration::from_secs(60))
    .try_wait()
    .await
    .is_ok();
    let metrics = agent.stop().await;
    assert!(
        delivered,
        "{protocol}: {} samples upstream",
        upstream_samples(&upstream)
    );
    (metrics, upstream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_2_0_to_our_receiver_delivers_everything_and_1_0_stays_available() {
    let (v2, upstream) = deliver("auto", 5 * SERIES).await;
    // Negotiated 2.0 and stayed on it: our receiver answers with the written counts.
    assert!(v2.sends_v2(), "fell back to 1.0");
    assert_eq!(v2.requests("415"), 0);
    // Every sample the agent counted as sent reached the upstream, each series in order.
    assert_eq!(upstream_samples(&upstream) as u64, v2.samples_sent());
    let mut last = std::collections::HashMap::new();
    for request in upstream.write_requests() {
        for series in &request.timeseries {
            assert!(series
                .labels
                .iter()
                .any(|l| l.name == "seed" && l.value == "aws-eu1"));
            for s in &series.samples {
                if let Some(prev) = last.insert(series.labels.clone(), s.timestamp) {
                    assert!(prev < s.timestamp);
                }
            }
        }
    }
    assert_eq!(last.len(), SERIES);

    let (v1, _) = deliver("v1", 5 * SERIES).await;
    assert!(!v1.sends_v2());
    assert_eq!(v1.requests("415"), 0);
    // The wire size is a benchmark figure (BENCHMARKS.md), not asserted: with one sample per
    // series per request, 2.0's symbol table saves little over 1.0 that snappy compressed.
    let per_sample = |m: &AgentMetrics| m.bytes_sent() as f64 / m.samples_sent() as f64;
    println!(
        "wire bytes per sample: 2.0 {:.2}, 1.0 {:.2}",
        per_sample(&v2),
        per_sample(&v1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_renders_targets_and_queue_in_chromium() {
    let _heavy = heavy(Load::Processes).await;
    let (pki, upstream, receiver) = start_default().await;
    let dir = tempfile::tempdir().unwrap();
    let federate = FederateSource::start(SERIES).await;
    let agent = AgentSetup::new()
        .start(&pki, dir.path(), &federate, &receiver.write_url())
        .await;
    assert!(
        eventually("a scrape upstream", || async {
            upstream_samples(&upstream) >= SERIES
        })
        .within(Duration::from_secs(60))
        .try_wait()
        .await
        .is_ok(),
        "nothing delivered"
    );
    let url = format!("http://{}/status", agent.admin);
    let dom = tokio::task::spawn_blocking(move || browser::dump_dom(&url))
        .await
        .unwrap();
    agent.stop().await;
    assert!(dom.contains(&federate.url()), "{dom}");
    // The target's row: last result and the series of its last scrape.
    let row = &dom[dom.find("<table id=\"targets\"").unwrap()..];
    let row = &row[..row.find("</table>").unwrap()];
    assert!(row.contains(">success<"), "{row}");
    assert!(row.contains(&format!(">{SERIES}<")), "{row}");
    let queue = &dom[dom.find("<table id=\"queue\"").unwrap()..];
    assert!(queue.contains("<th>Mode</th><td>disk</td>"), "{queue}");
    assert!(dom.contains("http-equiv=\"refresh\""), "{dom}");
}

/// A real Prometheus 2.42 with `--web.enable-remote-write-receiver` that terminates mTLS itself
/// (`--web.config.file`, client certificates of the test CA required), so the agent writes to it
/// directly as it would to any other Remote Write 1.0 receiver.
struct TlsPrometheus {
    process: Process,
    base: String,
    client: reqwest::Client,
}

impl TlsPrometheus {
    async fn start(pki: &TestPki, dir: &Path) -> Self {
        let root = dir.join("prometheus");
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::write(
            root.join("prometheus.yml"),
            "global:\n  scrape_interval: 1m\n",
        )
        .unwrap();
        std::fs::write(
            root.join("web.yml"),
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
        let args = [
            format!("--config.file={}", root.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", root.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--web.config.file={}", root.join("web.yml").display()),
            "--web.enable-remote-write-receiver".into(),
            "--log.level=warn".into(),
        ];
        let process = Process::spawn("prometheus", &root, Path::new("prometheus"), &args).unwrap();
        let prometheus = Self {
            process,
            base: format!("https://127.0.0.1:{port}"),
            client: https_client(&pki.seed_client("query")),
        };
        let ready = format!("{}/-/ready", prometheus.base);
        eventually(
            format!(
                "Prometheus ready at {ready} (log {})",
                prometheus.process.log.display()
            ),
            || async {
                let resp = prometheus.client.get(&ready).send().await.ok()?;
                resp.status().is_success().then_some(())
            },
        )
        .within(Duration::from_secs(60))
        .every(Duration::from_millis(200))
        .await;
        prometheus
    }

    /// The value of an instant query's first result (0 when empty).
    async fn query_value(&self, promql: &str) -> f64 {
        let text = self
            .client
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", promql)])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let resp: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(resp["status"], "success", "{resp}");
        resp["data"]["result"][0]["value"][1]
            .as_str()
            .map_or(0.0, |v| v.parse().unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_to_1_0_against_a_real_prometheus_2_42_and_every_sample_arrives() {
    let _heavy = heavy(Load::Processes).await;
    assert!(
        prometheus_available(),
        "the prometheus binary is required (apt-get install prometheus); .ci/run installs it"
    );
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let prometheus = TlsPrometheus::start(&pki, dir.path()).await;
    let federate = FederateSource::start(SERIES).await;
    let write_url = format!("{}/api/v1/write", prometheus.base);
    let agent = AgentSetup::new()
        .start(&pki, dir.path(), &federate, &write_url)
        .await;

    // Some scrapes' worth, then the source fails (no samples, no stale markers) and the queue
    // drains.
    let scraped_enough = eventually("ten scrapes", || async {
        agent.metrics.samples_scraped() >= 10 * SERIES as u64
    })
    .within(Duration::from_secs(60))
    .try_wait()
    .await
    .is_ok();
    federate.set_serving(false);
    assert!(scraped_enough, "the agent did not scrape");
    let drained = eventually("failed scrapes and an empty queue", || async {
        let m = &agent.metrics;
        m.scrapes(ScrapeResult::Error) >= 2 && m.queue_records() == 0
    })
    .within(Duration::from_secs(60))
    .try_wait()
    .await
    .is_ok();
    let scraped = agent.metrics.samples_scraped();
    let metrics = agent.stop().await;
    assert!(
        drained,
        "queue not drained: {} records",
        metrics.queue_records()
    );
    assert_eq!(
        metrics.samples_scraped(),
        scraped,
        "scraped after the source failed"
    );

    // `auto` starts with 2.0 and leaves it only on a 415 or a 2xx without a written count:
    // Prometheus 2.42 answered the first 2.0 request(s) with 204 and no count, the agent
    // switched to 1.0 for good and sent those batches again.
    assert!(!metrics.sends_v2(), "still on Remote Write 2.0");
    assert_eq!(metrics.requests("415"), 0);
    assert_eq!(metrics.samples_sent(), scraped);
    assert_eq!(metrics.stale_markers(), 0);
    // Every scraped sample is stored, those of the first scrape (sent as 2.0 first) included.
    let query = "sum(count_over_time({__name__=\"shoot:availability\"}[1h]))";
    // A bounded wait: an acknowledged write is queryable at once, but not under every load.
    let stored = eventually("every scraped sample stored", || async {
        let stored = prometheus.query_value(query).await;
        (stored >= scraped as f64).then_some(stored)
    })
    .within(Duration::from_secs(10))
    .every(Duration::from_millis(200))
    .try_wait()
    .await
    .ok();
    assert_eq!(
        stored,
        Some(scraped as f64),
        "Prometheus 2.42 stores {} of {scraped} scraped samples (log {})",
        prometheus.query_value(query).await,
        prometheus.process.log.display()
    );
    let series = prometheus
        .query_value("count(last_over_time({__name__=\"shoot:availability\"}[1h]))")
        .await;
    assert_eq!(series, SERIES as f64);
}
