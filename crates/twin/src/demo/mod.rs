//! `slo-gateway demo`: SLOs on a landscape twin when Prometheus and Alertmanager are installed
//! ([`twin`]), otherwise (or with `--simulated`) the pipeline alone, nothing else needed:
//!
//! ```text
//!  simulated seed /federate ──► agent (seed A) ─┐ mTLS            ┌─► in-process sink
//!  simulated seed /federate ──► agent (seed B) ─┴─► receiver ─────┤   (or --forward-url:
//!                                                                  └─►  a real Prometheus)
//! ```
//! Certificates are generated into a temporary directory; progress is printed per seed.

pub mod seed_sim;
pub mod sink;
pub mod twin;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use anyhow::Context;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use agent::config::AgentConfig;
use agent::Agent;
use receiver::config::ReceiverConfig;
use receiver::Receiver;

/// Options of `slo-gateway demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Stop after this long (e.g. `30s`); default: run until Ctrl-C.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Forward to this remote-write URL (a Prometheus started with
    /// `--web.enable-remote-write-receiver`) instead of the in-process sink (simulated pipeline;
    /// implies `--simulated`).
    #[arg(long)]
    pub forward_url: Option<String>,
    /// Number of simulated seeds (each with its own agent and client certificate).
    #[arg(long, default_value_t = 2)]
    pub seeds: usize,
    /// Shoots per simulated seed.
    #[arg(long, default_value_t = 5)]
    pub shoots: usize,
    /// Scrape interval of the agents (simulated pipeline).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Run the simulated pipeline (in-process seeds and sink) even when Prometheus is installed.
    #[arg(long)]
    pub simulated: bool,
    /// Landscape twin: take this shoot's kube-apiserver down (name such as `shop`, or
    /// `shoot--<project>--<name>`).
    #[arg(long, value_name = "SHOOT")]
    pub outage: Option<String>,
    /// Landscape twin: when the outage starts, counted from the twin being up.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub outage_after: Duration,
}

/// What a demo run did, per seed: (seed, samples the agent sent, bytes on the wire).
#[derive(Debug, Clone, Default)]
pub struct DemoSummary {
    /// Per seed: name, samples sent, compressed bytes sent.
    pub seeds: Vec<(String, u64, u64)>,
    /// Per seed, what the in-process sink received (empty with `--forward-url`).
    pub sink: std::collections::BTreeMap<String, sink::SeedTotals>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// What the landscape twin showed last (twin mode only).
    pub twin: Option<twin::TwinSummary>,
}

async fn bind() -> anyhow::Result<TcpListener> {
    TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a loopback port")
}

fn spawn_server(listener: TcpListener, app: axum::Router, stop: CancellationToken) {
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    });
}

/// Runs the demo until Ctrl-C or `args.duration`, printing progress to stdout: the landscape
/// twin when Prometheus and Alertmanager are installed (unless `--simulated`), the simulated
/// pipeline otherwise.
pub async fn run(args: DemoArgs) -> anyhow::Result<DemoSummary> {
    if !args.simulated && args.forward_url.is_none() {
        if crate::landscape::available() {
            let started = Instant::now();
            let twin = twin::run(&args).await?;
            return Ok(DemoSummary {
                elapsed: started.elapsed(),
                twin: Some(twin),
                ..DemoSummary::default()
            });
        }
        println!(
            "Prometheus and Alertmanager are not installed, so the SLOs cannot be shown on the \
             landscape twin ({}).\nRunning the pipeline alone instead.",
            crate::landscape::INSTALL_HINT
        );
        if args.outage.is_some() {
            println!("(--outage needs the landscape twin; ignored)");
        }
    }
    run_simulated(args).await
}

/// The simulated pipeline: in-process seeds, agents, receiver and sink.
async fn run_simulated(args: DemoArgs) -> anyhow::Result<DemoSummary> {
    // Removed when the demo ends.
    let dir = tempfile::Builder::new()
        .prefix("slo-gateway-demo-")
        .tempdir()
        .context("creating the demo's temporary directory")?;
    let seeds: Vec<String> = ["aws-eu1", "gcp-us1", "azure-we1", "ali-cn1"]
        .iter()
        .cycle()
        .take(args.seeds.max(1))
        .enumerate()
        .map(|(i, s)| {
            if i < 4 {
                s.to_string()
            } else {
                format!("{s}-{i}")
            }
        })
        .collect();
    let pki = certs::write_dev_pki(dir.path(), &seeds)?;
    // Agents stop first, then the servers they scrape and push to: no errors at exit.
    // Agents stop first, so their last pushes still reach the receiver and the sink.
    let stop = CancellationToken::new();
    let stop_agents = CancellationToken::new();

    // The sink, unless forwarding to a real Prometheus.
    let sink = sink::Sink::default();
    let forward_url = match &args.forward_url {
        Some(url) => url.clone(),
        None => {
            let listener = bind().await?;
            let url = format!("http://{}/api/v1/write", listener.local_addr()?);
            spawn_server(listener, sink.app(), stop.clone());
            url
        }
    };

    // The receiver.
    let receiver_listener = bind().await?;
    let receiver_addr = receiver_listener.local_addr()?;
    let receiver_config: ReceiverConfig = from_yaml(&format!(
        "listen: {receiver_addr}\nadmin_listen: 127.0.0.1:1\n\
         tls: {{cert_file: '{}', key_file: '{}', client_ca_file: '{}'}}\nforward: {{url: '{forward_url}'}}\n",
        pki.server_cert.display(),
        pki.server_key.display(),
        pki.ca.display(),
    ))?;
    let mut receiver_registry = Registry::default();
    let receiver = Receiver::new(&receiver_config, dir.path(), &mut receiver_registry)?;
    tokio::spawn(receiver.run(receiver_listener, stop.clone().cancelled_owned()));

    // One simulated seed and one agent per seed.
    let mut agents = Vec::new();
    for (i, (seed, cert, key)) in pki.seeds.iter().enumerate() {
        let simulation = Arc::new(Mutex::new(seed_sim::SeedSimulation::new(
            seed,
            args.shoots,
            i as u64,
        )));
        let listener = bind().await?;
        let federate = format!("http://{}/federate", listener.local_addr()?);
        spawn_server(listener, seed_sim::app(simulation), stop.clone());
        let interval = humantime::format_duration(args.interval);
        let agent_config: AgentConfig = from_yaml(&format!(
            r#"listen: 127.0.0.1:0
scrape:
  interval: {interval}
  timeout: {interval}
  targets:
    - url: {federate}
      match: ['{{__name__=~"shoot:.+"}}', '{{__name__=~"apiserver_request_(total|terminations_total)"}}']
remote_write:
  url: https://{receiver_addr}/api/v1/write
  tls: {{ca_file: '{ca}', cert_file: '{cert}', key_file: '{key}'}}
buffer:
  path: '{buffer}'
"#,
            ca = pki.ca.display(),
            cert = cert.display(),
            key = key.display(),
            buffer = dir.path().join(format!("buffer-{seed}")).display(),
        ))?;
        let mut registry = Registry::default();
        let agent = Agent::new(agent_config, dir.path(), &mut registry)
            .with_context(|| format!("starting the agent of seed {seed}"))?;
        let metrics = agent.metrics();
        let handle = tokio::spawn(agent.run(stop_agents.clone().cancelled_owned()));
        agents.push((seed.clone(), metrics, handle));
    }

    println!(
        "slo-gateway demo: {} seeds × {} shoots, scrape every {}, forwarding to {}",
        seeds.len(),
        args.shoots,
        humantime::format_duration(args.interval),
        args.forward_url.as_deref().unwrap_or("the in-process sink"),
    );
    println!("certificates in {}; Ctrl-C to stop", dir.path().display());

    let started = Instant::now();
    let deadline = args.duration.map(|d| Instant::now() + d);
    let mut ticker = tokio::time::interval(Duration::from_secs(2));
    let mut previous: Vec<u64> = vec![0; agents.len()];
    let mut last_tick = Instant::now();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = common::telemetry::shutdown_signal() => break,
            () = sleep_until(deadline) => break,
        }
        let elapsed = last_tick.elapsed().as_secs_f64().max(0.001);
        last_tick = Instant::now();
        let totals = sink.totals();
        for (i, (seed, metrics, _)) in agents.iter().enumerate() {
            let sent = metrics.samples_sent();
            let rate = (sent - previous[i].min(sent)) as f64 / elapsed;
            previous[i] = sent;
            let last = metrics.last_successful_send_unix();
            let last_push = if last > 0.0 {
                format!(
                    "{:.1}s ago",
                    (common::telemetry::now_unix_ms() as f64 / 1000.0 - last).max(0.0)
                )
            } else {
                "never".into()
            };
            let arrived = totals
                .get(seed)
                .map(|t| format!(", {} series at the sink", t.series))
                .unwrap_or_default();
            println!(
                "{seed:>10}: {rate:8.0} samples/s, {sent:>9} sent, {:>10} bytes on wire, last push {last_push}{arrived}",
                metrics.bytes_sent(),
            );
        }
    }

    stop_agents.cancel();
    let mut summary = DemoSummary {
        elapsed: started.elapsed(),
        ..DemoSummary::default()
    };
    for (seed, metrics, handle) in agents {
        match tokio::time::timeout(Duration::from_secs(10), handle).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::warn!(%seed, %error, "agent ended with an error"),
            Ok(Err(error)) => tracing::warn!(%seed, %error, "agent task failed"),
            Err(_) => tracing::warn!(%seed, "agent did not stop within 10 s"),
        }
        summary
            .seeds
            .push((seed, metrics.samples_sent(), metrics.bytes_sent()));
    }
    stop.cancel();
    summary.sink = sink.totals();
    let total: u64 = summary.seeds.iter().map(|(_, s, _)| s).sum();
    println!(
        "stopped after {:.1}s: {total} samples sent ({:.0} samples/s)",
        summary.elapsed.as_secs_f64(),
        total as f64 / summary.elapsed.as_secs_f64().max(0.001)
    );
    Ok(summary)
}

pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn from_yaml<T: serde::de::DeserializeOwned>(text: &str) -> anyhow::Result<T> {
    serde_yaml_ng::from_str(text).with_context(|| format!("demo config:\n{text}"))
}
