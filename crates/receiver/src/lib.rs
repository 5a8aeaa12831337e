//! The receiver: terminates mTLS from agents, pins the seed label to the client certificate's
//! identity, validates and limits the input, re-encodes it and forwards it to the SLO Prometheus.
//!
//! Stateless: backpressure (429, 503) goes back to the agents, whose disk queues hold the data.
//!
//! - [`server`]: TLS accept loop, handshake per connection task, identity per connection.
//! - [`identity`]: seed name as a pure function of the certificate.
//! - [`api`]: `POST /api/v1/write` (Remote Write 1.0 and 2.0), decode capacity, and the single
//!   error → status mapping. Decoding, validation, identity pinning and re-encoding are one pass
//!   in [`remote_write::rewrite`].
//! - [`forward`]: the upstream client and the isolation of series it refuses.
//! - [`seeds`]: per-seed active series (`limits.max_series_per_seed`) and status figures;
//!   [`status`]: the `/status` page on the admin port.
//! - [`limits`] (per-seed rate), [`metrics`].

pub mod api;
pub mod config;
pub mod forward;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod seeds;
pub mod server;
pub mod status;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus_client::registry::Registry;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::ReceiverConfig;
pub use api::{app, ApiError, WriteState};
use common::telemetry::{self, Readiness};
pub use metrics::ReceiverMetrics;
use yaml_config::resolve;

/// A configured receiver, ready to serve.
#[derive(Debug)]
pub struct Receiver {
    state: Arc<WriteState>,
    tls: watch::Receiver<Arc<ServerConfig>>,
    settings: server::ServerSettings,
    metrics: ReceiverMetrics,
}

impl Receiver {
    /// Loads certificates (and starts watching them), builds the upstream client and registers
    /// metrics. Relative paths resolve against `base_dir`. Needs a Tokio runtime.
    pub fn new(
        config: &ReceiverConfig,
        base_dir: &Path,
        registry: &mut Registry,
    ) -> anyhow::Result<Self> {
        let metrics = ReceiverMetrics::register(registry);
        let files = common::tls::ServerFiles {
            cert: resolve(base_dir, &config.tls.cert_file),
            key: resolve(base_dir, &config.tls.key_file),
            client_ca: resolve(base_dir, &config.tls.client_ca_file),
        };
        let reload_metrics = metrics.clone();
        let tls = common::tls::watch_files(
            vec![
                files.cert.clone(),
                files.key.clone(),
                files.client_ca.clone(),
            ],
            config.tls.reload_interval,
            move || common::tls::server_config(&files),
            move |ok| reload_metrics.tls_reload(ok),
        )
        .context("loading the receiver's TLS material")?;
        let forwarder = forward::Forwarder::new(
            &config.forward.url,
            config.forward.timeout,
            config
                .forward
                .ca_file
                .as_ref()
                .map(|f| resolve(base_dir, f))
                .as_deref(),
        )
        .context("building the upstream client")?;
        let state = Arc::new(WriteState::new(
            config.limits.clone(),
            config.identity.clone(),
            forwarder,
            metrics.clone(),
        ));
        Ok(Self {
            state,
            tls,
            settings: server::ServerSettings {
                handshake_timeout: config.tls.handshake_timeout,
                identity: Arc::new(config.identity.clone()),
                shutdown_grace: Duration::from_secs(10),
            },
            metrics,
        })
    }

    /// The receiver's metrics (the demo reads them).
    pub fn metrics(&self) -> ReceiverMetrics {
        self.metrics.clone()
    }

    /// Routes for the admin port: `/status`.
    pub fn admin_routes(&self) -> axum::Router {
        status::router(self.state.clone())
    }

    /// Serves agents on `listener` until `shutdown` completes.
    pub async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        server::run(
            listener,
            self.tls,
            app(self.state),
            self.settings,
            self.metrics,
            shutdown,
        )
        .await;
    }
}

/// `slo-gateway receiver --config FILE`: runs until SIGTERM/SIGINT.
pub async fn run_from_config(path: &Path) -> anyhow::Result<()> {
    let config: ReceiverConfig = yaml_config::load(path)?;
    let base_dir = path.parent().unwrap_or(Path::new("."));
    let mut registry = Registry::default();
    let receiver = Receiver::new(&config, base_dir, &mut registry)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding listen address {}", config.listen))?;
    let admin = TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("binding admin_listen address {}", config.admin_listen))?;
    tracing::info!(listen = %config.listen, admin = %config.admin_listen, forward = %config.forward.url, "receiver started");
    let readiness = Readiness::default();
    readiness.set(true);
    let stop_admin = CancellationToken::new();
    let admin_task = tokio::spawn(telemetry::serve_admin_with_routes(
        admin,
        Arc::new(registry),
        readiness.clone(),
        receiver.admin_routes(),
        stop_admin.clone().cancelled_owned(),
    ));
    receiver
        .run(listener, async move {
            telemetry::shutdown_signal().await;
            readiness.set(false);
        })
        .await;
    stop_admin.cancel();
    admin_task.await.context("admin server task")??;
    tracing::info!("receiver stopped");
    Ok(())
}
