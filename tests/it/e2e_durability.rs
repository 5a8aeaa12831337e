//! Durable delivery with real processes: outages of the receiver and of the SLO
//! Prometheus, `kill -9` of the agent in the middle of a backlog, and a queue too small to hold
//! the backlog. Each test compares the agent's own count of scraped samples with the samples the
//! SLO Prometheus stores (`count_over_time` through its HTTP API).
#![allow(clippy::unwrap_used)]

use crate::common;

use std::fmt::Write as _;
use std::time::Duration;

use common::pipeline::{Options, Pipeline};
use common::processes::http;
use common::{heavy, Load};

/// Outage length the issue asks for.
const OUTAGE: Duration = Duration::from_secs(120);
const DRAIN: Duration = Duration::from_secs(180);

/// `n` Gardener-shaped series.
fn target_body(shoots: usize) -> String {
    let mut body = String::from("# TYPE shoot:availability gauge\n");
    for i in 0..shoots {
        for kind in ["seed", "shoot", "vpn"] {
            writeln!(
                body,
                "shoot:availability{{cluster=\"shoot--p{}--s{i}\",kind=\"{kind}\"}} 1",
                i % 7
            )
            .unwrap();
        }
        writeln!(
            body,
            "apiserver_request_total{{cluster=\"shoot--p{}--s{i}\",code=\"200\",verb=\"GET\"}} {}",
            i % 7,
            i * 10
        )
        .unwrap();
    }
    body
}

fn report(test: &str, scraped: f64, stored: f64) {
    // Shown with --nocapture; the CI log keeps the figures the issue asks for.
    println!("{test}: agent scraped {scraped} samples, SLO Prometheus stores {stored}");
}

async fn wait_some_sent(p: &Pipeline) {
    p.wait_agent_metric(
        "slo_gateway_agent_samples_sent_total",
        &[],
        Duration::from_secs(60),
        |v| v > 0.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_outage_loses_nothing() {
    let _heavy = heavy(Load::Processes).await;
    let mut p = Pipeline::start(Options {
        target_body: target_body(10),
        ..Options::default()
    })
    .await;
    wait_some_sent(&p).await;
    p.receiver.kill9();
    tokio::time::sleep(OUTAGE).await;
    let queued = p
        .agent_metric("slo_gateway_agent_queue_records", &[])
        .await
        .unwrap();
    assert!(
        queued > 0.0,
        "the outage should have built a backlog\n{}",
        p.logs()
    );
    p.restart_receiver();
    let scraped = p.stop_scraping().await;
    p.wait_delivered(scraped, DRAIN).await;
    report(
        "receiver stopped 2 min",
        scraped,
        p.slo_sample_count().await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slo_prometheus_outage_loses_nothing() {
    let _heavy = heavy(Load::Processes).await;
    let mut p = Pipeline::start(Options {
        target_body: target_body(10),
        ..Options::default()
    })
    .await;
    wait_some_sent(&p).await;
    assert!(p.slo.process.terminate(Duration::from_secs(30)));
    // The receiver answers 503 meanwhile; the agent keeps the data.
    p.wait_agent_metric(
        "slo_gateway_agent_requests_total",
        &[("code", "503")],
        Duration::from_secs(30),
        |v| v > 0.0,
    )
    .await;
    tokio::time::sleep(OUTAGE).await;
    p.slo.restart().await.unwrap();
    let scraped = p.stop_scraping().await;
    p.wait_delivered(scraped, DRAIN).await;
    report(
        "SLO Prometheus stopped 2 min",
        scraped,
        p.slo_sample_count().await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_kill_9_in_a_backlog_loses_nothing() {
    let _heavy = heavy(Load::Processes).await;
    let mut p = Pipeline::start(Options {
        target_body: target_body(10),
        // Slow catch-up so the agent is killed while it is still draining.
        remote_write_yaml: "  max_catchup_requests_per_second: 2\n".into(),
        ..Options::default()
    })
    .await;
    wait_some_sent(&p).await;
    p.receiver.kill9();
    tokio::time::sleep(Duration::from_secs(40)).await;
    let scraped = p.stop_scraping().await;
    p.restart_receiver();
    // Killed after it has resumed sending, with records still queued.
    let sent = p
        .agent_metric("slo_gateway_agent_samples_sent_total", &[])
        .await
        .unwrap();
    p.wait_agent_metric(
        "slo_gateway_agent_samples_sent_total",
        &[],
        Duration::from_secs(60),
        |v| v > sent,
    )
    .await;
    let queued = p
        .agent_metric("slo_gateway_agent_queue_records", &[])
        .await
        .unwrap();
    p.agent.kill9();
    assert!(
        queued > 0.0,
        "the agent should have been killed with a backlog\n{}",
        p.logs()
    );
    p.restart_agent();
    let replayed = p
        .wait_agent_metric(
            "slo_gateway_agent_queue_replayed_records_total",
            &[],
            Duration::from_secs(30),
            |v| v > 0.0,
        )
        .await;
    assert!(replayed > 0.0);
    p.wait_delivered(scraped, DRAIN).await;
    report(
        "agent kill -9 during backlog",
        scraped,
        p.slo_sample_count().await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_buffer_drops_oldest_and_stays_healthy() {
    let _heavy = heavy(Load::Processes).await;
    let mut p = Pipeline::start(Options {
        // ~2000 series per scrape: the 1 MiB queue overflows within the outage.
        target_body: target_body(500),
        buffer_yaml: "  max_bytes: 1048576\n".into(),
        ..Options::default()
    })
    .await;
    wait_some_sent(&p).await;
    p.receiver.kill9();
    let dropped = p
        .wait_agent_metric(
            "slo_gateway_agent_queue_records_dropped_total",
            &[("reason", "max_bytes")],
            Duration::from_secs(120),
            |v| v > 0.0,
        )
        .await;
    let queue_bytes = p
        .agent_metric("slo_gateway_agent_queue_bytes", &[])
        .await
        .unwrap();
    assert!(
        queue_bytes <= 1_048_576.0,
        "queue holds {queue_bytes} bytes"
    );
    let health = http()
        .get(format!("http://127.0.0.1:{}/healthz", p.agent_admin))
        .send()
        .await
        .unwrap();
    assert!(
        health.status().is_success(),
        "agent unhealthy after dropping"
    );
    p.restart_receiver();
    let scraped = p.stop_scraping().await;
    p.wait_agent_metric("slo_gateway_agent_queue_records", &[], DRAIN, |v| v == 0.0)
        .await;
    let stored = p.slo_sample_count().await;
    assert!(
        stored > 0.0 && stored < scraped,
        "stored {stored} of {scraped}: the oldest should be gone, the newest kept"
    );
    // The newest data survived: the last scrape's values are queryable now.
    assert_eq!(
        p.slo
            .query_value(r#"count(last_over_time(shoot:availability{seed="aws-eu1"}[10m]))"#)
            .await
            .unwrap(),
        Some(1500.0)
    );
    println!("tiny buffer: agent scraped {scraped}, SLO Prometheus stores {stored}, {dropped} records dropped (max_bytes)");
}
