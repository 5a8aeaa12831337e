//! Which series can reach the SLO Prometheus, and by which path.
//!
//! GEP-0041's runtime tier sees only:
//! - what every seed's `prometheus-aggregate` federates from the shoot Prometheis (pulled for
//!   reachable seeds, pushed by our agent for firewalled ones), i.e. the series matching
//!   aggregate's own `match[]` list ([`AGGREGATE_MATCH`], from Gardener's
//!   `pkg/component/observability/monitoring/prometheus/aggregate/servicemonitors.go`);
//! - garden metrics (`garden_*`, gardener-metrics-exporter) federated from `prometheus-garden`
//!   in the runtime cluster;
//! - what the SLO Prometheus scrapes itself: the receivers' `slo_gateway_receiver_*` metrics and
//!   whatever a spec declares in `local_metrics`.
//!
//! Raw series such as `apiserver_request_total` or `probe_success` exist only in each shoot's
//! own Prometheus; an SLI on them must be computed in the shoot tier.

use regex::Regex;

/// prometheus-aggregate's `match[]` for the shoot Prometheis, as Gardener configures it.
pub const AGGREGATE_MATCH: &[&str] = &[
    r#"{__name__="shoot:availability"}"#,
    r#"{__name__=~"shoot:(.+):(.+)",__name__!="shoot:apiserver_latency_seconds:quantile"}"#,
    r#"{__name__="ALERTS"}"#,
    r#"{__name__="prometheus_tsdb_lowest_timestamp"}"#,
    r#"{__name__="prometheus_tsdb_storage_blocks_bytes"}"#,
    r#"{__name__="kubeproxy_network_latency:quantile"}"#,
    r#"{__name__="kubeproxy_sync_proxy:quantile"}"#,
    r#"{__name__="kube_customresource_verticalpodautoscaler_status_recommendation_containerrecommendations_target_cpu"}"#,
    r#"{__name__="container_cpu_usage_seconds_total"}"#,
];

/// Metric-name prefix of the garden metrics the SLO Prometheus federates from prometheus-garden.
pub const GARDEN_PREFIX: &str = "garden_";

/// Metric-name prefix of the receiver's own metrics (scraped by the SLO Prometheus).
pub const RECEIVER_PREFIX: &str = "slo_gateway_receiver_";

/// How a series reaches the SLO Prometheus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// Federated from a seed's prometheus-aggregate (or pushed by the agent).
    Aggregate,
    /// Federated from prometheus-garden.
    Garden,
    /// Scraped by the SLO Prometheus itself.
    Local,
}

/// Whether prometheus-aggregate's federation carries the metric `name`.
pub fn aggregate_carries(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "shoot:availability",
        "ALERTS",
        "prometheus_tsdb_lowest_timestamp",
        "prometheus_tsdb_storage_blocks_bytes",
        "kubeproxy_network_latency:quantile",
        "kubeproxy_sync_proxy:quantile",
        "kube_customresource_verticalpodautoscaler_status_recommendation_containerrecommendations_target_cpu",
        "container_cpu_usage_seconds_total",
    ];
    if EXACT.contains(&name) {
        return true;
    }
    // `shoot:(.+):(.+)`, fully anchored: some `:` after `shoot:` with text on both sides.
    let Some(rest) = name.strip_prefix("shoot:") else {
        return false;
    };
    let splits = rest
        .char_indices()
        .any(|(i, c)| c == ':' && i > 0 && i + 1 < rest.len());
    splits && name != "shoot:apiserver_latency_seconds:quantile"
}

/// How the metric `name` reaches the SLO Prometheus; None when it cannot.
/// `local` are anchored regexes of metrics the SLO Prometheus scrapes itself.
pub fn classify(name: &str, local: &[Regex]) -> Option<Source> {
    if aggregate_carries(name) {
        Some(Source::Aggregate)
    } else if name.len() > GARDEN_PREFIX.len() && name.starts_with(GARDEN_PREFIX) {
        Some(Source::Garden)
    } else if name.starts_with(RECEIVER_PREFIX) || local.iter().any(|r| r.is_match(name)) {
        Some(Source::Local)
    } else {
        None
    }
}

/// Compiles `local_metrics` entries as fully anchored regexes (as Prometheus anchors them).
pub fn local_regexes(patterns: &[String]) -> Result<Vec<Regex>, (usize, String)> {
    patterns
        .iter()
        .enumerate()
        .map(|(i, p)| Regex::new(&format!("^(?:{p})$")).map_err(|e| (i, e.to_string())))
        .collect()
}

/// One line for messages: what reaches the SLO Prometheus.
pub fn reachable_summary() -> String {
    "prometheus-aggregate federates only shoot:availability, shoot:<name>:<suffix> recording \
     rules, ALERTS and a few Prometheus/kube-proxy/VPA series; prometheus-garden provides garden_* \
     metrics; the SLO Prometheus scrapes slo_gateway_receiver_* and what `local_metrics` declares"
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregate_list() {
        for yes in [
            "shoot:availability",
            "shoot:apiserver_latency:percentage",
            "shoot:slo_apiserver_availability:bad",
            "shoot:a:b:c",
            "ALERTS",
        ] {
            assert!(aggregate_carries(yes), "{yes}");
        }
        for no in [
            "shoot:apiserver_latency_seconds:quantile",
            "shoot:x",
            "shoot::x",
            "shoot:x:",
            "apiserver_request_total",
            "probe_success",
            "ALERTS_FOR_STATE",
        ] {
            assert!(!aggregate_carries(no), "{no}");
        }
    }

    #[test]
    fn classification() {
        let local = local_regexes(&["up|my_.*".to_owned()]).unwrap();
        assert_eq!(classify("garden_shoot_info", &local), Some(Source::Garden));
        assert_eq!(classify("garden_", &local), None);
        assert_eq!(
            classify("slo_gateway_receiver_last_push_timestamp_seconds", &local),
            Some(Source::Local)
        );
        assert_eq!(classify("up", &local), Some(Source::Local));
        assert_eq!(classify("my_metric", &local), Some(Source::Local));
        assert_eq!(classify("upx", &local), None, "anchored");
        assert_eq!(classify("kube_node_created", &local), None);
        assert!(local_regexes(&["(".to_owned()]).is_err());
    }
}
