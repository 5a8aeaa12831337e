//! `slo-gateway shoot-rules`: keeps the shoot-tier PrometheusRule in every shoot control-plane
//! namespace of a seed.
//!
//! GEP-0041 computes shoot SLIs as recording rules in each shoot's own Prometheus. Gardener's shoot
//! Prometheus (`shoot--<project>--<name>` namespace) selects only PrometheusRules labelled
//! `prometheus: shoot` **in its own namespace** (it is deployed with `RestrictToNamespace`, so its
//! `ruleNamespaceSelector` is empty); one rule in the seed's `garden` namespace reaches none of
//! them. So a copy must live in every shoot namespace and follow shoots as they are created,
//! migrated to the seed, or deleted.
//!
//! Gardener's native vehicle would be an `Extension` resource per shoot, reconciled by a
//! controller that implements the extension contract (status, operation annotations, migration),
//! and whose failure would hold up every shoot reconciliation. This controller is simpler and
//! cannot block Gardener: every `--interval` it lists the namespaces labelled
//! `gardener.cloud/role=shoot` and the PrometheusRules it manages (label
//! `app.kubernetes.io/managed-by=slo-gateway-shoot-rules`), then server-side applies the rule where
//! it is missing or outdated (a content hash in an annotation) and deletes managed rules whose
//! namespace is no shoot namespace any more (a deleted namespace takes its rule with it anyway).
//! It is level-based and idempotent: a restart, a missed event or a second replica changes nothing.
//!
//! The planning ([`plan`]) is pure and unit-tested; the API calls ([`kube`]) are exercised
//! against an in-process fake of the API server's endpoints (no Kubernetes API server can run
//! in CI here).

pub mod kube;
pub mod plan;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use common::telemetry::{self, Readiness};
use kube::{KubeClient, KubeTarget};
use plan::{Action, DesiredRule};

/// Command-line arguments of `slo-gateway shoot-rules`.
#[derive(Debug, clap::Args)]
pub struct ShootRulesArgs {
    /// The PrometheusRule to copy into every shoot namespace (`slo-gateway rules` writes it as
    /// `shoot/prometheusrule.yaml`); re-read every interval.
    #[arg(long)]
    pub rule_file: PathBuf,
    /// Label selector of the shoot control-plane namespaces.
    #[arg(long, default_value = "gardener.cloud/role=shoot")]
    pub namespace_selector: String,
    /// Time between reconciliations (new shoots get the rule within this).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Timeout of each API request.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// `/metrics`, `/healthz`, `/readyz`.
    #[arg(long, default_value = "127.0.0.1:9466")]
    pub listen: SocketAddr,
    /// API server URL; default: in-cluster (`KUBERNETES_SERVICE_HOST`).
    #[arg(long)]
    pub api_server: Option<String>,
    /// CA bundle of the API server; default: the service account's `ca.crt`.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Bearer token file; default: the service account's `token`.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

/// The controller's own metrics (`slo_gateway_shoot_rules_*`).
#[derive(Debug, Clone, Default)]
pub struct ShootRulesMetrics {
    reconciles: Family<Vec<(String, String)>, Counter>,
    applied: Counter,
    deleted: Counter,
    failed: Counter,
    shoot_namespaces: Gauge,
    last_success: Gauge<f64, AtomicU64>,
}

impl ShootRulesMetrics {
    /// Registers the metrics in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let sub = registry.sub_registry_with_prefix("slo_gateway_shoot_rules");
        sub.register(
            "reconciles",
            "Reconciliations by result (ok, error)",
            metrics.reconciles.clone(),
        );
        sub.register(
            "applied",
            "PrometheusRules applied (created or updated)",
            metrics.applied.clone(),
        );
        sub.register(
            "deleted",
            "PrometheusRules deleted (namespace no longer a shoot)",
            metrics.deleted.clone(),
        );
        sub.register(
            "failed",
            "Applies and deletes that failed (retried next interval)",
            metrics.failed.clone(),
        );
        sub.register(
            "shoot_namespaces",
            "Shoot namespaces seen in the last reconciliation",
            metrics.shoot_namespaces.clone(),
        );
        sub.register(
            "last_success_timestamp_seconds",
            "Unix time of the last reconciliation without errors",
            metrics.last_success.clone(),
        );
        metrics
    }
}

/// What one reconciliation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Live shoot namespaces.
    pub shoot_namespaces: usize,
    /// Rules applied.
    pub applied: usize,
    /// Rules deleted.
    pub deleted: usize,
    /// Failed actions, as messages.
    pub failures: Vec<String>,
}

/// Lists, plans and acts once. A failed list fails the whole pass; a failed apply or delete is
/// reported in [`Outcome::failures`] and the other namespaces still get theirs.
pub async fn reconcile_once(
    client: &KubeClient,
    desired: &DesiredRule,
    namespace_selector: &str,
) -> Result<Outcome, kube::KubeError> {
    let shoots = client.namespaces(namespace_selector).await?;
    let managed = client.managed_rules().await?;
    let mut outcome = Outcome {
        shoot_namespaces: shoots.iter().filter(|n| !n.terminating).count(),
        ..Outcome::default()
    };
    for action in plan::plan(desired, &shoots, &managed) {
        let result = match &action {
            Action::Apply { namespace } => client
                .apply_rule(namespace, &desired.name, &desired.manifest(namespace))
                .await
                .map(|()| outcome.applied += 1),
            Action::Delete { namespace, name } => client
                .delete_rule(namespace, name)
                .await
                .map(|()| outcome.deleted += 1),
        };
        if let Err(error) = result {
            outcome.failures.push(error.to_string());
        }
    }
    Ok(outcome)
}

fn read_rule(path: &Path) -> anyhow::Result<DesiredRule> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    DesiredRule::parse(&text).with_context(|| format!("{}", path.display()))
}

/// Runs the controller until SIGTERM or Ctrl-C.
pub async fn run(args: ShootRulesArgs) -> anyhow::Result<()> {
    serve(args, telemetry::shutdown_signal()).await
}

/// [`run`] until `shutdown` completes.
pub async fn serve(
    args: ShootRulesArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Refuse a broken rule file at start, not only in the log of the first pass.
    read_rule(&args.rule_file)?;
    let target = KubeTarget::in_cluster(
        args.api_server.as_deref(),
        args.ca_file.as_deref(),
        args.token_file.as_deref(),
    )?;
    let client = KubeClient::new(target, args.request_timeout)?;
    let mut registry = Registry::default();
    let metrics = ShootRulesMetrics::register(&mut registry);
    let readiness = Readiness::default();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(listen = %args.listen, selector = %args.namespace_selector, "shoot-rules controller started");
    let stop = tokio_util::sync::CancellationToken::new();
    let admin = tokio::spawn(telemetry::serve_admin(
        listener,
        Arc::new(registry),
        readiness.clone(),
        stop.clone().cancelled_owned(),
    ));
    let mut ticker = tokio::time::interval(args.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = ticker.tick() => {}
        }
        let pass = async {
            let desired = read_rule(&args.rule_file)?;
            reconcile_once(&client, &desired, &args.namespace_selector)
                .await
                .map_err(anyhow::Error::from)
        };
        match pass.await {
            Ok(outcome) => {
                metrics.applied.inc_by(outcome.applied as u64);
                metrics.deleted.inc_by(outcome.deleted as u64);
                metrics.failed.inc_by(outcome.failures.len() as u64);
                metrics
                    .shoot_namespaces
                    .set(i64::try_from(outcome.shoot_namespaces).unwrap_or(i64::MAX));
                for failure in &outcome.failures {
                    tracing::warn!(%failure, "shoot rule not reconciled; retrying next interval");
                }
                let result = if outcome.failures.is_empty() {
                    "ok"
                } else {
                    "error"
                };
                metrics
                    .reconciles
                    .get_or_create(&vec![("result".into(), result.into())])
                    .inc();
                if outcome.failures.is_empty() {
                    metrics
                        .last_success
                        .set(telemetry::now_unix_ms() as f64 / 1000.0);
                    readiness.set(true);
                }
                if outcome.applied + outcome.deleted > 0 {
                    tracing::info!(
                        shoots = outcome.shoot_namespaces,
                        applied = outcome.applied,
                        deleted = outcome.deleted,
                        "shoot rules reconciled"
                    );
                }
            }
            Err(error) => {
                metrics
                    .reconciles
                    .get_or_create(&vec![("result".into(), "error".into())])
                    .inc();
                tracing::warn!(
                    error = format!("{error:#}"),
                    "shoot rules reconciliation failed"
                );
            }
        }
    }
    stop.cancel();
    match tokio::time::timeout(Duration::from_secs(5), admin).await {
        Ok(Ok(Err(error))) => tracing::warn!(%error, "admin server failed"),
        Ok(_) => {}
        Err(_) => tracing::warn!("admin server did not stop in time"),
    }
    Ok(())
}
