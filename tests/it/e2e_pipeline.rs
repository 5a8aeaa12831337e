//! End to end with real processes: a real Prometheus 2.42 scrapes a local target and serves
//! `/federate`; the `slo-gateway agent` federates it and pushes over mTLS to the
//! `slo-gateway receiver`, which forwards into a second real Prometheus started with
//! `--web.enable-remote-write-receiver` (the SLO Prometheus). Assertions go through the
//! Prometheus HTTP API.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::pipeline::{Options, Pipeline, SEED};
use common::processes::{http, Prometheus};
use common::{eventually, heavy, Load};

const TARGET_V1: &str = r#"# HELP shoot:availability Availability of the shoot's API server.
# TYPE shoot:availability gauge
shoot:availability{cluster="shoot--p1--a",kind="seed"} 1
shoot:availability{cluster="shoot--p1--a",kind="shoot"} 1
shoot:availability{cluster="shoot--p2--b",kind="vpn"} 0
shoot:apiserver_latency:percentage{cluster="shoot--p1--a"} 0.25
# TYPE apiserver_request_total counter
apiserver_request_total{cluster="shoot--p1--a",code="200",verb="GET"} 1234
apiserver_request_total{cluster="shoot--p1--a",code="503",verb="LIST"} 7
# A series the agent's match[] does not select.
node_cpu_seconds_total{cpu="0"} 42
"#;

async fn metrics_text(port: u16) -> String {
    http()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Every series the agent's selectors pick in the source, as the SLO Prometheus must show it:
/// the source's labels plus the agent's external label, `seed` set to the certificate identity.
async fn expected_series(source: &Prometheus) -> BTreeMap<BTreeMap<String, String>, f64> {
    source
        .query(r#"{__name__=~"shoot:.+"} or apiserver_request_total"#)
        .await
        .unwrap()
        .into_iter()
        .map(|(mut labels, value)| {
            labels.insert("seed".into(), SEED.into());
            labels.insert("landscape".into(), "dev".into());
            (labels, value)
        })
        .collect()
}

async fn slo_series(slo: &Prometheus) -> BTreeMap<BTreeMap<String, String>, f64> {
    slo.query(r#"{__name__=~".+"}"#)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federated_series_arrive_with_the_certificate_identity() {
    let _heavy = heavy(Load::Processes).await;
    let mut p = Pipeline::start(Options {
        target_body: TARGET_V1.into(),
        ..Options::default()
    })
    .await;
    let expected = eventually("the source to scrape the target", || async {
        let e = expected_series(&p.source).await;
        (e.len() == 6).then_some(e)
    })
    .within(Duration::from_secs(30))
    .every(Duration::from_millis(200))
    .await;

    // Every federated series arrives, with seed = the certificate identity, and current values.
    eventually(
        &format!("all series in the SLO Prometheus\n{}", p.logs()),
        || async { (slo_series(&p.slo).await == expected).then_some(()) },
    )
    .within(Duration::from_secs(60))
    .every(Duration::from_millis(200))
    .await;
    assert!(p
        .slo
        .query(r#"{seed="claimed-by-aggregate"}"#)
        .await
        .unwrap()
        .is_empty());
    assert!(
        p.slo
            .query("node_cpu_seconds_total")
            .await
            .unwrap()
            .is_empty(),
        "only match[]ed series travel"
    );

    // Values keep flowing: a change at the target shows up in the SLO Prometheus.
    p.target
        .set(&TARGET_V1.replace(r#"kind="vpn"} 0"#, r#"kind="vpn"} 1"#));
    eventually("the new value in the SLO Prometheus", || async {
        (p.slo
            .query_value(r#"shoot:availability{kind="vpn",seed="aws-eu1"}"#)
            .await
            .unwrap()
            == Some(1.0))
        .then_some(())
    })
    .within(Duration::from_secs(60))
    .every(Duration::from_millis(200))
    .await;

    // A series that vanishes at the source ends promptly (stale marker), not after 5 minutes.
    p.target.set(&TARGET_V1.replace(
        "shoot:availability{cluster=\"shoot--p2--b\",kind=\"vpn\"} 0\n",
        "",
    ));
    eventually("the vanished series to be marked stale", || async {
        p.slo
            .query(r#"shoot:availability{kind="vpn"}"#)
            .await
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .within(Duration::from_secs(60))
    .every(Duration::from_millis(200))
    .await;

    // Both components account for what they did.
    let agent_metrics = metrics_text(p.agent_admin).await;
    assert!(
        agent_metrics.contains("slo_gateway_agent_samples_sent_total"),
        "{agent_metrics}"
    );
    let receiver_metrics = metrics_text(p.receiver_admin).await;
    assert!(
        receiver_metrics.contains(&format!(
            "slo_gateway_receiver_samples_accepted_total{{seed=\"{SEED}\"}}"
        )),
        "{receiver_metrics}"
    );
    assert!(receiver_metrics.contains(&format!(
        "slo_gateway_receiver_last_push_timestamp_seconds{{seed=\"{SEED}\"}}"
    )));

    // SIGTERM: both binaries shut down gracefully, well within a pod's termination grace period.
    let started = std::time::Instant::now();
    assert!(
        p.agent.terminate(Duration::from_secs(15)),
        "agent ignored SIGTERM\n{}",
        p.logs()
    );
    assert!(
        p.receiver.terminate(Duration::from_secs(15)),
        "receiver ignored SIGTERM\n{}",
        p.logs()
    );
    let (agent_log, receiver_log) = (p.agent.log_text(), p.receiver.log_text());
    assert!(
        agent_log.contains("SIGTERM received") && agent_log.contains("agent stopped"),
        "{}",
        p.logs()
    );
    assert!(receiver_log.contains("receiver stopped"), "{}", p.logs());
    println!(
        "agent and receiver stopped on SIGTERM in {:?}",
        started.elapsed()
    );
}
