//! Configuration files of the twin's processes, shaped like Gardener's (sources in
//! gardener/gardener: `pkg/gardenlet/operation/botanist/monitoring.go` for the shoot
//! Prometheus' external labels, `pkg/component/observability/monitoring/prometheus/aggregate/
//! servicemonitors.go` for the aggregate's federation, `pkg/component/observability/monitoring/
//! blackboxexporter/shoot/{cluster,controlplane}` for the probe jobs,
//! `pkg/component/kubernetes/apiserver/prometheusrule.go` for the API server's rules).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};

use super::control_plane::ShootId;
use super::LandscapeError;

/// What `prometheus-aggregate` federates from every shoot Prometheus, verbatim from Gardener
/// (one list for the rules' reachability check and the twin).
pub use rules::sources::AGGREGATE_MATCH;

/// Gardener's own recording rules in every shoot Prometheus that the SLOs build on: the
/// blackbox probes' `shoot:availability{kind}` and the API server's latency share
/// `shoot:apiserver_latency:percentage` (a 1 h ratio over regular requests, `le="1.0"`), with
/// their neighbours from the same rule groups.
pub const GARDENER_SHOOT_RULES: &str = r#"# Gardener's recording rules for prometheus-shoot (reproduced from gardener/gardener).
groups:
  - name: apiserver-connectivity-check.rules
    rules:
      - record: shoot:availability
        expr: probe_success{job="blackbox-exporter-k8s-service-check"} == bool 1
        labels:
          kind: shoot
      - record: shoot:availability
        expr: probe_success{job="blackbox-apiserver"} == bool 1
        labels:
          kind: seed
      - record: shoot:availability
        expr: probe_success{job="tunnel-probe-apiserver-proxy"} == bool 1
        labels:
          kind: vpn
  - name: kube-apiserver.rules
    rules:
      - record: shoot:apiserver_latency_seconds:quantile
        expr: histogram_quantile(0.99, sum without (instance, pod) (rate(apiserver_request_duration_seconds_bucket[5m])))
        labels:
          quantile: "0.99"
      - record: shoot:apiserver_latency_seconds:quantile
        expr: histogram_quantile(0.9, sum without (instance, pod) (rate(apiserver_request_duration_seconds_bucket[5m])))
        labels:
          quantile: "0.9"
      - record: shoot:apiserver_latency_seconds:quantile
        expr: histogram_quantile(0.5, sum without (instance, pod) (rate(apiserver_request_duration_seconds_bucket[5m])))
        labels:
          quantile: "0.5"
      - record: shoot:apiserver_latency:percentage
        expr: 1 - sum(rate(apiserver_request_duration_seconds_bucket{le="1.0",subresource!~"log|portforward|exec|proxy|attach",verb!~"CONNECT|LIST|WATCH"}[1h])) / sum(rate(apiserver_request_duration_seconds_count{subresource!~"log|portforward|exec|proxy|attach",verb!~"CONNECT|LIST|WATCH"}[1h]))
      - record: shoot:kube_apiserver:sum_by_pod
        expr: sum(up{job="kube-apiserver"}) by (pod)
"#;

/// The SLO Prometheus' job federating reachable seeds' aggregates (the twin spec's
/// `seed_unreachable.jobs`).
pub const AGGREGATE_JOB: &str = "prometheus-aggregate";

/// Intervals of the twin's Prometheus servers.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    /// Scrape and rule-evaluation interval everywhere.
    pub scrape: Duration,
}

impl Intervals {
    fn global(&self, external_labels: &Value) -> Value {
        let interval = humantime::format_duration(self.scrape).to_string();
        json!({
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": interval,
            "external_labels": external_labels,
        })
    }
}

/// Serialises a config value to YAML.
pub fn to_yaml(value: &Value) -> Result<String, LandscapeError> {
    serde_yaml_ng::to_string(value).map_err(|e| LandscapeError::Config(e.to_string()))
}

/// A static scrape job.
fn job(name: &str, target: &str, path: &str) -> Value {
    json!({
        "job_name": name,
        "metrics_path": path,
        "static_configs": [{"targets": [target]}],
    })
}

/// A shoot's `prometheus-shoot`: Gardener's external labels, the scrape jobs Gardener's SLIs
/// read, Gardener's rules and the generated shoot-tier rules (`rule_files`).
pub fn shoot_prometheus(
    shoot: &ShootId,
    exporter: SocketAddr,
    intervals: Intervals,
    rule_files: &[String],
) -> Result<String, LandscapeError> {
    let ns = shoot.namespace();
    let target = exporter.to_string();
    let external_labels = json!({
        "cluster": ns,
        "project": shoot.project,
        "shoot_name": shoot.name,
        "name": shoot.name,
        "seed_api": format!("https://api.{}.twin.local", shoot.seed),
        "seed_region": "local",
        "seed_provider": "local",
        "shoot_infra": "local",
        "ignoreAlerts": "false",
    });
    // The seed-side probe: the blackbox exporter in the seed probes the external endpoint.
    let mut seed_probe = job(
        "blackbox-apiserver",
        &format!(
            "https://api.{}.{}.internal.twin.local/healthz",
            shoot.name, shoot.project
        ),
        &format!("/{ns}/blackbox-exporter/probe"),
    );
    seed_probe["params"] = json!({"module": ["http_apiserver"]});
    seed_probe["relabel_configs"] = json!([
        {"target_label": "type", "replacement": "seed"},
        {"source_labels": ["__address__"], "target_label": "__param_target", "action": "replace"},
        {"source_labels": ["__param_target"], "target_label": "instance", "action": "replace"},
        {"target_label": "__address__", "replacement": target, "action": "replace"},
    ]);
    // The shoot-side probe is scraped through the API server's service proxy.
    let mut shoot_probe = job(
        "blackbox-exporter-k8s-service-check",
        &target,
        &format!("/{ns}/kube-apiserver/proxy/blackbox-exporter/probe"),
    );
    shoot_probe["params"] = json!({
        "module": ["http_kubernetes_service"],
        "target": ["https://kubernetes.default.svc.cluster.local/healthz"],
    });
    shoot_probe["relabel_configs"] = json!([
        {"target_label": "type", "replacement": "shoot"},
        {"source_labels": ["__param_target"], "target_label": "instance", "action": "replace"},
    ]);
    let config = json!({
        "global": intervals.global(&external_labels),
        "rule_files": rule_files,
        "scrape_configs": [
            job("kube-apiserver", &target, &format!("/{ns}/kube-apiserver/metrics")),
            seed_probe,
            shoot_probe,
            job("tunnel-probe-apiserver-proxy", &target, &format!("/{ns}/tunnel-probe/probe")),
            job("machine-controller-manager", &target, &format!("/{ns}/machine-controller-manager/metrics")),
            job("kube-state-metrics", &target, &format!("/{ns}/kube-state-metrics/metrics")),
        ],
    });
    to_yaml(&config)
}

/// A federation job: `/federate` of `targets` with `match[]` = `selectors`, labels honoured and
/// timestamps not (as Gardener federates).
fn federate(name: &str, targets: &[String], selectors: &[String]) -> Value {
    json!({
        "job_name": name,
        "metrics_path": "/federate",
        "honor_labels": true,
        "honor_timestamps": false,
        "params": {"match[]": selectors},
        "static_configs": [{"targets": targets}],
    })
}

/// A seed's `prometheus-aggregate`: federates every shoot Prometheus with Gardener's list.
pub fn aggregate_prometheus(
    seed: &str,
    shoot_prometheus: &[String],
    intervals: Intervals,
) -> Result<String, LandscapeError> {
    let selectors: Vec<String> = AGGREGATE_MATCH.iter().map(|s| s.to_string()).collect();
    to_yaml(&json!({
        "global": intervals.global(&json!({"seed": seed})),
        "scrape_configs": [federate("shoot-prometheus", shoot_prometheus, &selectors)],
    }))
}

/// `prometheus-garden`, scraping the garden exporter.
pub fn garden_prometheus(
    exporter: SocketAddr,
    intervals: Intervals,
) -> Result<String, LandscapeError> {
    to_yaml(&json!({
        "global": intervals.global(&json!({})),
        "scrape_configs": [job("gardener-metrics-exporter", &exporter.to_string(), "/metrics")],
    }))
}

/// Everything the SLO Prometheus needs to know about its neighbours.
#[derive(Debug, Clone)]
pub struct SloSources {
    /// Per reachable seed: (seed, aggregate `host:port`).
    pub reachable_aggregates: Vec<(String, String)>,
    /// Selectors for the aggregates (`agent-match.yaml`).
    pub aggregate_match: Vec<String>,
    /// The garden Prometheus `host:port`.
    pub garden: String,
    /// Selectors for the garden Prometheus (`garden-match.yaml`).
    pub garden_match: Vec<String>,
    /// The receiver's admin `host:port` (its `/metrics` feed the seed-silent alert).
    pub receiver_admin: String,
    /// Alertmanager `host:port`.
    pub alertmanager: String,
    /// Runtime-tier rule files.
    pub rule_files: Vec<String>,
}

/// The runtime cluster's SLO Prometheus: federates reachable aggregates and the garden,
/// receives remote write (flag), accepts out-of-order backlog, alerts to Alertmanager.
pub fn slo_prometheus(
    sources: &SloSources,
    intervals: Intervals,
) -> Result<String, LandscapeError> {
    // One job for every reachable seed's aggregate, each target labelled with its seed (what
    // the seed-unreachable alert reads from `up`).
    let mut aggregates = federate(AGGREGATE_JOB, &[], &sources.aggregate_match);
    aggregates["static_configs"] = sources
        .reachable_aggregates
        .iter()
        .map(|(seed, target)| json!({"targets": [target], "labels": {"seed": seed}}))
        .collect();
    let mut jobs = vec![aggregates];
    jobs.push(federate(
        "prometheus-garden",
        std::slice::from_ref(&sources.garden),
        &sources.garden_match,
    ));
    jobs.push(job(
        "slo-gateway-receiver",
        &sources.receiver_admin,
        "/metrics",
    ));
    to_yaml(&json!({
        "global": intervals.global(&json!({})),
        "storage": {"tsdb": {"out_of_order_time_window": "2h"}},
        "rule_files": sources.rule_files,
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [sources.alertmanager]}]}]},
        "scrape_configs": jobs,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shoot_prometheus_carries_gardener_labels_and_jobs() {
        let shoot = ShootId {
            seed: "aws-eu1".into(),
            project: "dev".into(),
            name: "web".into(),
        };
        let text = shoot_prometheus(
            &shoot,
            "127.0.0.1:9".parse().unwrap(),
            Intervals {
                scrape: Duration::from_secs(5),
            },
            &["rules.yaml".into()],
        )
        .unwrap();
        for needle in [
            "cluster: shoot--dev--web",
            "shoot_name: web",
            "job_name: blackbox-apiserver",
            "job_name: blackbox-exporter-k8s-service-check",
            "job_name: kube-apiserver",
            "scrape_interval: 5s",
        ] {
            assert!(text.contains(needle), "{needle} missing in\n{text}");
        }
    }

    #[test]
    fn aggregate_federates_with_gardeners_exact_list() {
        let text = aggregate_prometheus(
            "aws-eu1",
            &["127.0.0.1:1".into()],
            Intervals {
                scrape: Duration::from_secs(5),
            },
        )
        .unwrap();
        let value: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        let job = &value["scrape_configs"][0];
        assert_eq!(job["honor_labels"], true);
        assert_eq!(job["honor_timestamps"], false);
        assert_eq!(
            job["params"]["match[]"].as_array().unwrap().len(),
            AGGREGATE_MATCH.len()
        );
        assert_eq!(value["global"]["external_labels"]["seed"], "aws-eu1");
    }
}
