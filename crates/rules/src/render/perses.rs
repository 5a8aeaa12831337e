//! Perses dashboards (`perses.dev/v1alpha2` `PersesDashboard`, dashboard under `spec.config`).
//!
//! One dashboard per service. Variables (one per grouping label, `seed` first) read the
//! per-group budget series, which carry the grouping labels. Per SLO a row: the SLI over the
//! shortest window and the period against the objective, the worst error budget left in the
//! selection, the burn rates against the alert thresholds, and the shoots with the least budget
//! left. Percentages use Perses' `percent-decimal` unit; legends name the window.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::prometheus::{window_ratio_query, ID_LABEL, SERVICE_LABEL};
use crate::duration::PromDuration;
use crate::model::Slo;
use crate::spec::DashboardsSpec;

/// Matches the per-group series the variables read: every SLO records its period's error ratio.
const RATIO_NAMES: &str = "__name__=~\"slo:sli_error:ratio_rate.+\"";

/// Builds Perses plugin specs with the configured datasource.
struct Builder<'a> {
    settings: &'a DashboardsSpec,
}

impl Builder<'_> {
    /// `spec` with the datasource selector added when one is configured.
    fn with_datasource(&self, mut spec: Value) -> Value {
        if let (Some(ds), Some(obj)) = (&self.settings.datasource, spec.as_object_mut()) {
            obj.insert(
                "datasource".to_owned(),
                json!({"kind": "PrometheusDatasource", "name": ds}),
            );
        }
        spec
    }

    fn query(&self, query: &str, legend: &str, instant: bool) -> Value {
        let mut spec = json!({"query": query, "seriesNameFormat": legend});
        if instant {
            spec["instant"] = Value::Bool(true);
        }
        json!({
            "kind": "TimeSeriesQuery",
            "spec": {"plugin": {"kind": "PrometheusTimeSeriesQuery", "spec": self.with_datasource(spec)}},
        })
    }
}

/// Grouping labels of the SLOs, `seed` first (the coarser one), then in order of appearance.
fn variable_labels(slos: &[&Slo]) -> Vec<String> {
    let mut labels: Vec<String> = Vec::new();
    for l in slos.iter().flat_map(|s| s.grouping.iter()) {
        if !labels.contains(l) {
            labels.push(l.clone());
        }
    }
    labels.sort_by_key(|l| l != "seed");
    labels
}

/// One dashboard for the SLOs of `service`.
/// `record_windows`: the runtime tier records every window (else counted SLIs' windows are
/// computed in the queries).
pub fn dashboard(
    service: &str,
    slos: &[&Slo],
    settings: &DashboardsSpec,
    record_windows: bool,
) -> Value {
    let b = Builder { settings };
    let labels = variable_labels(slos);
    let variables: Vec<Value> = labels
        .iter()
        .enumerate()
        .map(|(i, label)| {
            // Each variable's values narrowed by the variables before it.
            let narrowed: String = labels[..i]
                .iter()
                .map(|l| format!(", {l}=~\"${l}\""))
                .collect();
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
                        "spec": b.with_datasource(json!({
                            "labelName": label,
                            "matchers": [format!("{{{RATIO_NAMES}, {SERVICE_LABEL}=\"{service}\"{narrowed}}}")],
                        })),
                    },
                },
            })
        })
        .collect();
    let mut panels = Map::new();
    let mut layouts = Vec::new();
    for slo in slos {
        let (row_panels, items) = slo_row(&b, slo, &labels, record_windows);
        panels.extend(row_panels);
        layouts.push(json!({
            "kind": "Grid",
            "spec": {
                "display": {"title": format!("{} — {} % over {}", slo.name, slo.objective, slo.window), "collapse": {"open": true}},
                "items": items,
            },
        }));
    }
    let longest = slos
        .iter()
        .map(|s| s.window)
        .max()
        .unwrap_or(PromDuration::from_secs(86400));
    let duration = longest.min(PromDuration::from_secs(7 * 86400));
    let mut metadata = json!({
        "name": format!("slo-{service}"),
        "labels": {"app.kubernetes.io/managed-by": "slo-gateway"},
    });
    if let Some(ns) = &settings.namespace {
        metadata["namespace"] = Value::String(ns.clone());
    }
    json!({
        "apiVersion": "perses.dev/v1alpha2",
        "kind": "PersesDashboard",
        "metadata": metadata,
        "spec": {"config": {
            "display": {"name": format!("SLOs: {service}")},
            "duration": duration.to_string(),
            "refreshInterval": "1m",
            "variables": variables,
            "panels": panels,
            "layouts": layouts,
        }},
    })
}

/// The panels of one SLO and their layout items.
fn slo_row(
    b: &Builder<'_>,
    slo: &Slo,
    labels: &[String],
    record_windows: bool,
) -> (Map<String, Value>, Vec<Value>) {
    let var_filter: String = labels
        .iter()
        .filter(|l| slo.grouping.contains(l))
        .map(|l| format!(", {l}=~\"${l}\""))
        .collect();
    let f = format!("{{{ID_LABEL}=\"{}\"{var_filter}}}", slo.id);
    let group_legend: String = slo
        .grouping
        .iter()
        .map(|l| format!("{{{{{l}}}}}"))
        .collect::<Vec<_>>()
        .join(" ");
    let legend = |window: &str| {
        if group_legend.is_empty() {
            window.to_owned()
        } else {
            format!("{group_legend} ({window})")
        }
    };
    let key = |suffix: &str| format!("{}_{suffix}", slo.id.replace('-', "_"));
    let percent = json!({"unit": "percent-decimal", "decimalPlaces": 3});
    let objective = slo.objective / 100.0;
    let short = slo.shortest_window();
    let period = slo.window;
    let ratio = |w: PromDuration| window_ratio_query(slo, w, record_windows, &f);
    // An error ratio as a burn rate: over the SLO's budget.
    let burn_rate = |ratio: &str| {
        format!(
            "{ratio}\n/ on({ID_LABEL}) group_left\nslo:error_budget:ratio{{{ID_LABEL}=\"{}\"}}",
            slo.id
        )
    };
    // Budget left over the period, per group, from the period's ratio (always recorded).
    let budget_left = format!("1 - {}", burn_rate(&ratio(period)));

    let sli = json!({
        "display": {"name": format!("{} — SLI ({short} and {period})", slo.name)},
        "plugin": {"kind": "TimeSeriesChart", "spec": {
            "yAxis": {"format": percent},
            "thresholds": {"mode": "absolute", "steps": [
                {"value": objective, "color": "#e02f44", "name": format!("objective {} %", slo.objective)},
            ]},
            "legend": {"position": "bottom", "mode": "table", "values": ["last"]},
        }},
        "queries": [
            b.query(&format!("1 - {}", ratio(short)), &legend(&short.to_string()), false),
            b.query(&format!("1 - {}", ratio(period)), &legend(&period.to_string()), false),
        ],
    });
    let budget = json!({
        "display": {"name": format!("{} — error budget left ({period}, worst of selection)", slo.name)},
        "plugin": {"kind": "StatChart", "spec": {
            "calculation": "last",
            "format": percent,
            "thresholds": {"mode": "absolute", "defaultColor": "#e02f44", "steps": [
                {"value": 0, "color": "#ff9830", "name": "budget left"},
                {"value": 0.25, "color": "#56a64b", "name": "a quarter left"},
            ]},
        }},
        "queries": [b.query(&format!("min(\n{budget_left}\n)"), "budget left", false)],
    });
    // One threshold per alert window pair: the burn rate at which it fires.
    let mut seen = BTreeSet::new();
    let steps: Vec<Value> = slo
        .windows
        .iter()
        .filter(|w| seen.insert((w.severity, w.long, w.short)))
        .map(|w| {
            let factor = w.burn_factor(slo.window);
            json!({
                "value": factor,
                "color": if w.severity == crate::types::Severity::Page { "#e02f44" } else { "#ff9830" },
                "name": format!("{} {}/{} ×{}", w.severity.as_str(), w.long, w.short, (factor * 1000.0).round() / 1000.0),
            })
        })
        .collect();
    let burn = json!({
        "display": {"name": format!("{} — burn rate (1 = budget spent exactly over {period})", slo.name)},
        "plugin": {"kind": "TimeSeriesChart", "spec": {
            "yAxis": {"format": {"unit": "decimal", "decimalPlaces": 2}},
            "thresholds": {"mode": "absolute", "steps": steps},
        }},
        "queries": slo.sli_windows().iter().map(|w| b.query(
            &burn_rate(&ratio(*w)),
            &legend(&w.to_string()),
            false,
        )).collect::<Vec<_>>(),
    });
    let mut columns: Vec<Value> = slo
        .grouping
        .iter()
        .map(|l| json!({"name": l, "header": l, "hide": false}))
        .collect();
    columns.push(json!({
        "name": "value",
        "header": format!("budget left ({period})"),
        "format": percent,
        "sort": "asc",
        "hide": false,
    }));
    let worst = json!({
        "display": {"name": format!("{} — least budget left", slo.name)},
        "plugin": {"kind": "Table", "spec": {
            "density": "compact",
            "enableSorting": true,
            "defaultColumnHidden": true,
            "columnSettings": columns,
        }},
        "queries": [b.query(&format!("bottomk(10,\n{budget_left}\n)"), "", true)],
    });
    let mut panels = Map::new();
    let mut items = Vec::new();
    let mut x = 0;
    for (suffix, width, spec) in [
        ("sli", 8, sli),
        ("budget", 4, budget),
        ("burn", 6, burn),
        ("worst", 6, worst),
    ] {
        let k = key(suffix);
        items.push(json!({
            "x": x, "y": 0, "width": width, "height": 8,
            "content": {"$ref": format!("#/spec/panels/{k}")},
        }));
        x += width;
        panels.insert(k, json!({"kind": "Panel", "spec": spec}));
    }
    (panels, items)
}
