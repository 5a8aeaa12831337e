//! `slo-gateway demo` in both modes: the simulated pipeline (in-process, and as the fallback of
//! the real binary when Prometheus is missing) and the landscape twin (the real binary with
//! Prometheus and Alertmanager), each stopping by itself after `--duration`.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use slo_gateway::demo::{run, DemoArgs};

use crate::common;

fn demo_args() -> DemoArgs {
    DemoArgs {
        duration: Some(Duration::from_secs(4)),
        forward_url: None,
        seeds: 2,
        shoots: 3,
        interval: Duration::from_millis(500),
        simulated: true,
        outage: None,
        outage_after: Duration::from_secs(60),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_pushes_every_seed_through_the_receiver() {
    slo_gateway::tls::install_default_crypto_provider();
    let summary = tokio::time::timeout(Duration::from_secs(60), run(demo_args()))
        .await
        .expect("the demo stops after --duration")
        .unwrap();
    assert_eq!(summary.seeds.len(), 2);
    for (seed, sent, bytes) in &summary.seeds {
        assert!(*sent > 0 && *bytes > 0, "{seed} sent nothing");
        let at_sink = summary
            .sink
            .get(seed)
            .unwrap_or_else(|| panic!("nothing at the sink for {seed}: {:?}", summary.sink));
        // 3 shoots × 7 series, each labelled with its own seed by the receiver.
        assert_eq!(at_sink.series, 21, "{seed}");
        assert_eq!(at_sink.samples, *sent, "{seed}: sink and agent disagree");
    }
    assert_eq!(
        summary.sink.len(),
        2,
        "no series under any other seed label: {:?}",
        summary.sink.keys()
    );
}

/// Runs the real binary's `demo` with `args` and returns (success, stdout).
fn demo_binary(args: &[&str], path: Option<&std::path::Path>) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_slo-gateway"));
    command.arg("demo").args(args);
    if let Some(path) = path {
        command.env("PATH", path);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "demo failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    (output.status.success(), stdout)
}

#[test]
fn demo_without_prometheus_says_what_to_install_and_runs_the_pipeline() {
    // A PATH without prometheus or alertmanager.
    let empty = tempfile::tempdir().unwrap();
    let (_, stdout) = demo_binary(
        &[
            "--duration",
            "3s",
            "--interval",
            "500ms",
            "--outage",
            "shop",
        ],
        Some(empty.path()),
    );
    assert!(
        stdout.contains("apt-get install prometheus prometheus-alertmanager"),
        "{stdout}"
    );
    assert!(
        stdout.contains("--outage needs the landscape twin"),
        "{stdout}"
    );
    assert!(
        stdout.contains("samples sent"),
        "the pipeline demo ran:\n{stdout}"
    );
}

#[test]
fn demo_on_the_twin_shows_slos_and_pages_the_outaged_shoot() {
    let _heavy = common::heavy_blocking(common::Load::Processes);
    let (_, stdout) = demo_binary(
        &[
            "--duration",
            "150s",
            "--outage",
            "shop",
            "--outage-after",
            "5s",
        ],
        None,
    );
    for needle in [
        "SLO Prometheus",
        "Alertmanager",
        "prometheus-aggregate gcp-us1",
    ] {
        assert!(stdout.contains(needle), "{needle} missing:\n{stdout}");
    }
    assert!(
        stdout.contains(">>> shoot--prod--shop: kube-apiserver down"),
        "{stdout}"
    );
    let last_line_of = |shoot: &str| {
        stdout
            .lines()
            .rev()
            .find(|l| l.contains(shoot) && l.contains(" SLI "))
            .unwrap_or_else(|| panic!("no status line for {shoot}:\n{stdout}"))
            .to_owned()
    };
    let shop = last_line_of("shoot--prod--shop");
    assert!(
        shop.contains("(page"),
        "the outaged shoot pages: {shop}\n{stdout}"
    );
    let healthy = last_line_of("shoot--dev--web");
    let sli = healthy
        .split(" SLI ")
        .nth(1)
        .unwrap_or_default()
        .trim_start();
    assert!(
        healthy.contains("no alerts") && sli.starts_with(|c: char| c.is_ascii_digit()),
        "a healthy shoot has an SLI and no alerts: {healthy}\n{stdout}"
    );
}
