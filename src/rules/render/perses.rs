//! Perses dashboards (`perses.dev/v1alpha2` `PersesDashboard`, dashboard under `spec.config`).

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::prometheus::{sli_metric, ID_LABEL, SERVICE_LABEL};
use crate::rules::model::Slo;

/// One dashboard for the SLOs of `service`: per SLO a row with the SLI, the error budget
/// remaining and the burn rates, filtered by one variable per grouping label.
pub fn dashboard(service: &str, slos: &[&Slo]) -> Value {
    let grouping: BTreeSet<&str> = slos
        .iter()
        .flat_map(|s| s.grouping.iter().map(String::as_str))
        .collect();
    let variables: Vec<Value> = grouping
        .iter()
        .map(|label| {
            json!({
                "kind": "ListVariable",
                "spec": {
                    "name": label,
                    "display": {"name": label},
                    "allowAllValue": true,
                    "allowMultiple": true,
                    "customAllValue": ".*",
                    "plugin": {
                        "kind": "PrometheusLabelValuesVariable",
                        "spec": {
                            "labelName": label,
                            "matchers": [format!("slo:objective:ratio{{{SERVICE_LABEL}=\"{service}\"}}")],
                        },
                    },
                },
            })
        })
        .collect();
    let legend: String = grouping
        .iter()
        .map(|l| format!("{{{{{l}}}}}"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut panels = Map::new();
    let mut layouts = Vec::new();
    for slo in slos {
        let var_filter: String = grouping
            .iter()
            .map(|l| format!(", {l}=~\"${l}\""))
            .collect();
        let f = format!("{{{ID_LABEL}=\"{}\"{var_filter}}}", slo.id);
        let key = |suffix: &str| format!("{}_{suffix}", slo.name.replace('-', "_"));
        let burn = |w: &str| {
            format!(
                "{}{f}\n/ on({ID_LABEL}) group_left\nslo:error_budget:ratio{{{ID_LABEL}=\"{}\"}}",
                sli_metric(w),
                slo.id
            )
        };
        let burn_windows: Vec<String> = slo.sli_windows().iter().map(ToString::to_string).collect();
        let content = [
            (
                key("sli"),
                format!("{} — SLI (objective {} %)", slo.name, slo.objective),
                vec![
                    format!("1 - {}{f}", sli_metric(slo.shortest_window())),
                    format!("1 - {}{f}", sli_metric(slo.window)),
                ],
            ),
            (
                key("budget"),
                format!("{} — error budget remaining ({})", slo.name, slo.window),
                vec![format!("slo:period_error_budget_remaining:ratio{f}")],
            ),
            (
                key("burn"),
                format!("{} — burn rate", slo.name),
                burn_windows.iter().map(|w| burn(w)).collect(),
            ),
        ];
        let mut items = Vec::new();
        for (i, (k, title, queries)) in content.into_iter().enumerate() {
            let queries: Vec<Value> = queries
                .into_iter()
                .map(|q| {
                    json!({
                        "kind": "TimeSeriesQuery",
                        "spec": {"plugin": {"kind": "PrometheusTimeSeriesQuery", "spec": {
                            "query": q,
                            "seriesNameFormat": legend,
                        }}},
                    })
                })
                .collect();
            items.push(json!({
                "x": 8 * i, "y": 0, "width": 8, "height": 8,
                "content": {"$ref": format!("#/spec/panels/{k}")},
            }));
            panels.insert(
                k,
                json!({
                    "kind": "Panel",
                    "spec": {
                        "display": {"name": title},
                        "plugin": {"kind": "TimeSeriesChart", "spec": {}},
                        "queries": queries,
                    },
                }),
            );
        }
        layouts.push(json!({
            "kind": "Grid",
            "spec": {
                "display": {"title": slo.name, "collapse": {"open": true}},
                "items": items,
            },
        }));
    }
    json!({
        "apiVersion": "perses.dev/v1alpha2",
        "kind": "PersesDashboard",
        "metadata": {
            "name": format!("slo-{service}"),
            "labels": {"app.kubernetes.io/managed-by": "slo-gateway"},
        },
        "spec": {"config": {
            "display": {"name": format!("SLOs: {service}")},
            "duration": "7d",
            "refreshInterval": "1m",
            "variables": variables,
            "panels": panels,
            "layouts": layouts,
        }},
    })
}
