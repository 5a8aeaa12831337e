//! Recording and alerting rules in Sloth's shapes.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::rules::model::{Severity, Slo};
use crate::rules::spec::SeedSilentSpec;

/// Label Sloth puts the SLO id into.
pub const ID_LABEL: &str = "sloth_id";
/// Label for the service.
pub const SERVICE_LABEL: &str = "sloth_service";
/// Label for the SLO name.
pub const SLO_LABEL: &str = "sloth_slo";
/// Label for the SLI window.
pub const WINDOW_LABEL: &str = "sloth_window";
/// Label for the alert severity.
pub const SEVERITY_LABEL: &str = "sloth_severity";
/// The receiver's per-seed freshness gauge (unix seconds of the last accepted push).
pub const FRESHNESS_METRIC: &str = "slo_gateway_receiver_last_push_timestamp_seconds";

/// One Prometheus rule group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleGroup {
    /// Group name.
    pub name: String,
    /// Rules in evaluation order.
    pub rules: Vec<Rule>,
}

/// A recording or alerting rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// Recorded metric name (recording rules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// Alert name (alerting rules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// PromQL.
    pub expr: String,
    /// Labels added to the result.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Alert annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

fn record(name: String, expr: String, labels: BTreeMap<String, String>) -> Rule {
    Rule {
        record: Some(name),
        alert: None,
        expr,
        labels,
        annotations: BTreeMap::new(),
    }
}

/// `slo:sli_error:ratio_rate<w>`.
pub fn sli_metric(window: impl std::fmt::Display) -> String {
    format!("slo:sli_error:ratio_rate{window}")
}

/// `{sloth_id="…", sloth_service="…", sloth_slo="…"}`.
pub fn id_filter(slo: &Slo) -> String {
    format!(
        "{{{ID_LABEL}=\"{}\", {SERVICE_LABEL}=\"{}\", {SLO_LABEL}=\"{}\"}}",
        slo.id, slo.service, slo.name
    )
}

fn id_labels(slo: &Slo) -> BTreeMap<String, String> {
    BTreeMap::from([
        (ID_LABEL.to_owned(), slo.id.clone()),
        (SERVICE_LABEL.to_owned(), slo.service.clone()),
        (SLO_LABEL.to_owned(), slo.name.clone()),
    ])
}

fn merged(maps: &[&BTreeMap<String, String>]) -> BTreeMap<String, String> {
    maps.iter()
        .flat_map(|m| m.iter())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The three Sloth groups of one SLO: SLI recordings, meta recordings, alerts.
pub fn slo_groups(slo: &Slo) -> Vec<RuleGroup> {
    let mut groups = vec![
        RuleGroup {
            name: format!("sloth-slo-sli-recordings-{}", slo.id),
            rules: sli_rules(slo),
        },
        RuleGroup {
            name: format!("sloth-slo-meta-recordings-{}", slo.id),
            rules: meta_rules(slo),
        },
    ];
    let alerts = alert_rules(slo);
    if !alerts.is_empty() {
        groups.push(RuleGroup {
            name: format!("sloth-slo-alerts-{}", slo.id),
            rules: alerts,
        });
    }
    groups
}

fn sli_rules(slo: &Slo) -> Vec<Rule> {
    let base = merged(&[&id_labels(slo), &slo.labels]);
    let mut rules: Vec<Rule> = slo
        .sli_windows()
        .into_iter()
        .map(|w| {
            let mut labels = base.clone();
            labels.insert(WINDOW_LABEL.to_owned(), w.to_string());
            record(sli_metric(w), slo.error_ratio_expr(w), labels)
        })
        .collect();
    // The period from the shortest window's rule, as Sloth does: a mean of ratios weighted
    // equally per evaluation — cheap, and only informative (no alert uses it).
    let short = sli_metric(slo.shortest_window());
    let filter = id_filter(slo);
    let period = slo.window;
    rules.push(record(
        sli_metric(period),
        format!(
            "sum_over_time({short}{filter}[{period}])\n/ ignoring ({WINDOW_LABEL})\ncount_over_time({short}{filter}[{period}])\n"
        ),
        // Sloth sets only sloth_window here (the rest comes from the source series); we also
        // set the id labels, to the values they already have, because promtool's lint rejects
        // same-named rules with identical labels in one file.
        merged(&[
            &id_labels(slo),
            &BTreeMap::from([(WINDOW_LABEL.to_owned(), period.to_string())]),
        ]),
    ));
    rules
}

fn burn_rate_expr(sli: &str, filter: &str) -> String {
    format!(
        "{sli}{filter}\n/ on({ID_LABEL}, {SLO_LABEL}, {SERVICE_LABEL}) group_left\nslo:error_budget:ratio{filter}\n"
    )
}

fn meta_rules(slo: &Slo) -> Vec<Rule> {
    let labels = merged(&[&id_labels(slo), &slo.labels]);
    let filter = id_filter(slo);
    let objective = slo.objective / 100.0;
    let mut info = labels.clone();
    info.extend([
        (
            "sloth_version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
        ("sloth_mode".to_owned(), "cli-gen-prom".to_owned()),
        ("sloth_spec".to_owned(), slo.spec_version.clone()),
        ("sloth_objective".to_owned(), slo.objective.to_string()),
    ]);
    vec![
        record(
            "slo:objective:ratio".into(),
            format!("vector({objective})"),
            labels.clone(),
        ),
        record(
            "slo:error_budget:ratio".into(),
            format!("vector(1-{objective})"),
            labels.clone(),
        ),
        record(
            "slo:time_period:days".into(),
            format!("vector({})", slo.window.days()),
            labels.clone(),
        ),
        record(
            "slo:current_burn_rate:ratio".into(),
            burn_rate_expr(&sli_metric(slo.shortest_window()), &filter),
            labels.clone(),
        ),
        record(
            "slo:period_burn_rate:ratio".into(),
            burn_rate_expr(&sli_metric(slo.window), &filter),
            labels.clone(),
        ),
        record(
            "slo:period_error_budget_remaining:ratio".into(),
            format!("1 - slo:period_burn_rate:ratio{filter}"),
            labels,
        ),
        record("sloth_slo_info".into(), "vector(1)".into(), info),
    ]
}

fn alert_rules(slo: &Slo) -> Vec<Rule> {
    let Some(alerting) = &slo.alerting else {
        return Vec::new();
    };
    let filter = id_filter(slo);
    let budget = slo.error_budget_ratio();
    [(Severity::Page, &alerting.page), (Severity::Ticket, &alerting.ticket)]
        .into_iter()
        .filter_map(|(severity, meta)| meta.as_ref().map(|m| (severity, m)))
        .filter_map(|(severity, meta)| {
            let pairs: Vec<String> = slo
                .windows
                .iter()
                .filter(|w| w.severity == severity)
                .map(|w| {
                    let factor = Slo::burn_factor(w, slo.window);
                    let cond = |win| {
                        format!(
                            "    max({}{filter} > ({factor} * {budget})) without ({WINDOW_LABEL})",
                            sli_metric(win)
                        )
                    };
                    format!("(\n{}\n    and\n{}\n)", cond(w.short), cond(w.long))
                })
                .collect();
            if pairs.is_empty() {
                return None;
            }
            let sev = severity.as_str();
            let mut labels = BTreeMap::from([(SEVERITY_LABEL.to_owned(), sev.to_owned())]);
            labels.extend(merged(&[&alerting.labels, &meta.labels]));
            if alerting.severity_label {
                labels.entry("severity".to_owned()).or_insert_with(|| sev.to_owned());
            }
            let mut annotations = BTreeMap::from([
                (
                    "title".to_owned(),
                    format!("({sev}) {{{{$labels.{SERVICE_LABEL}}}}} {{{{$labels.{SLO_LABEL}}}}} SLO error budget burn rate is too fast."),
                ),
                (
                    "summary".to_owned(),
                    format!("{{{{$labels.{SERVICE_LABEL}}}}} {{{{$labels.{SLO_LABEL}}}}} SLO error budget burn rate is over expected."),
                ),
            ]);
            annotations.extend(merged(&[&alerting.annotations, &meta.annotations]));
            Some(Rule {
                record: None,
                alert: Some(alerting.name.clone()),
                expr: format!("{}\n", pairs.join("\nor\n")),
                labels,
                annotations,
            })
        })
        .collect()
}

/// The "seed silent" group: one alert per seed whose last push is older than the threshold.
pub fn seed_silent_group(s: &SeedSilentSpec) -> RuleGroup {
    let secs = s.threshold.as_secs();
    RuleGroup {
        name: "slo-gateway-receiver".to_owned(),
        rules: vec![Rule {
            record: None,
            alert: Some("SLOGatewaySeedSilent".to_owned()),
            // max over receiver replicas: the freshest push counts.
            expr: format!("time() - max by (seed) ({FRESHNESS_METRIC}) > {secs}"),
            labels: BTreeMap::from([("severity".to_owned(), s.severity.as_str().to_owned())]),
            annotations: BTreeMap::from([
                (
                    "summary".to_owned(),
                    format!("Seed {{{{$labels.seed}}}} has not pushed SLO series for more than {}.", s.threshold),
                ),
                (
                    "description".to_owned(),
                    "SLIs of this seed's shoots go stale: check the seed's slo-gateway agent and its network path to the receiver.".to_owned(),
                ),
            ]),
        }],
    }
}
