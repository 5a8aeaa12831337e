//! The agent in process and a `/federate` source for it to scrape.
//!
//! - [`FederateSource`]: a `/federate` stub serving Gardener-shaped series, switchable to 503.
//! - [`AgentSetup`]: an in-process `Agent` with its admin endpoints (`/metrics`, `/status`)
//!   scraping a source and writing over mTLS with a client certificate of a [`TestPki`].

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use agent::config::AgentConfig;
use agent::{Agent, AgentMetrics};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use yaml_config as config;

use crate::TestPki;

/// A `/federate` stub on 127.0.0.1 serving `series` series of `shoot:availability` in Gardener's
/// shape (seed `aws-eu1`, an empty `instance`), or 503 (a failed scrape: no samples, no stale
/// markers) while switched off.
#[derive(Debug, Clone)]
pub struct FederateSource {
    /// Where it listens.
    pub addr: SocketAddr,
    serving: Arc<AtomicBool>,
}

impl FederateSource {
    /// Starts the stub, serving.
    pub async fn start(series: usize) -> Self {
        let mut body = String::from("# TYPE shoot:availability gauge\n");
        for i in 0..series {
            let _ = writeln!(
                body,
                "shoot:availability{{kind=\"vpn\",instance=\"\",cluster=\"shoot--garden-project-{}--cluster-{i}\",seed=\"aws-eu1\"}} 1",
                i % 9
            );
        }
        let body = Arc::new(body);
        let serving = Arc::new(AtomicBool::new(true));
        let switch = serving.clone();
        let app = Router::new().route(
            "/federate",
            get(move || {
                let body = body.clone();
                let serving = switch.load(Ordering::SeqCst);
                async move {
                    if serving {
                        (StatusCode::OK, body.as_str().to_owned())
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, String::new())
                    }
                }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, serving }
    }

    /// Serve the series (`true`) or answer 503 (`false`) from the next scrape on.
    pub fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Ordering::SeqCst);
    }

    /// `http://127.0.0.1:<port>/federate`.
    pub fn url(&self) -> String {
        format!("http://{}/federate", self.addr)
    }
}

/// Builds an in-process agent: scrapes a [`FederateSource`] every 200 ms (`match` on `shoot:…`),
/// writes to a URL with the seed `aws-eu1`'s client certificate, buffers under a directory.
#[derive(Debug, Clone)]
pub struct AgentSetup {
    protocol: String,
}

impl Default for AgentSetup {
    fn default() -> Self {
        Self {
            protocol: "auto".into(),
        }
    }
}

impl AgentSetup {
    /// `remote_write.protocol: auto`.
    pub fn new() -> Self {
        Self::default()
    }

    /// `remote_write.protocol` (`auto`, `v1`, `v2`).
    pub fn protocol(mut self, protocol: &str) -> Self {
        self.protocol = protocol.into();
        self
    }

    /// Starts the agent and its admin endpoints; `dir` holds its config and buffer.
    pub async fn start(
        self,
        pki: &TestPki,
        dir: &Path,
        source: &FederateSource,
        write_url: &str,
    ) -> RunningAgent {
        let client = pki.seed_client("aws-eu1");
        let text = format!(
            "scrape:\n  interval: 200ms\n  timeout: 200ms\n  targets: [{{url: '{source}', match: ['{{__name__=~\"shoot:.+\"}}']}}]\n\
             remote_write:\n  url: {write_url}\n  protocol: {protocol}\n  tls: {{ca_file: {}, cert_file: {}, key_file: {}}}\n\
             buffer: {{path: {}}}\n",
            client.ca.display(),
            client.cert.display(),
            client.key.display(),
            dir.join("buffer").display(),
            source = source.url(),
            protocol = self.protocol,
        );
        let config: AgentConfig = config::parse(&dir.join("agent.yaml"), &text).unwrap();
        let mut registry = Registry::default();
        let agent = Agent::new(config, dir, &mut registry).unwrap();
        let metrics = agent.metrics();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let token = tokio_util::sync::CancellationToken::new();
        tokio::spawn(common::telemetry::serve_admin_with_routes(
            listener,
            Arc::new(registry),
            agent.readiness(),
            agent.status_router(),
            token.clone().cancelled_owned(),
        ));
        let done = tokio::spawn(async move {
            let result = agent
                .run(async move {
                    let _ = stopped.await;
                })
                .await;
            token.cancel();
            result
        });
        RunningAgent {
            metrics,
            admin,
            stop,
            done,
        }
    }
}

/// A running in-process agent with its admin endpoints (incl. `/status`).
#[derive(Debug)]
pub struct RunningAgent {
    /// Its metrics.
    pub metrics: AgentMetrics,
    /// Where its admin endpoints listen.
    pub admin: SocketAddr,
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningAgent {
    /// Stops the agent, waits for `run` to return `Ok` and returns its metrics.
    pub async fn stop(self) -> AgentMetrics {
        let _ = self.stop.send(());
        self.done.await.unwrap().unwrap();
        self.metrics
    }
}
