//! The runtime tier's rules (the SLO Prometheus), in Sloth's names: per SLO the SLI recordings,
//! the meta recordings and the burn-rate alerts; and the seed alerts.
//!
//! Counted SLIs record, per evaluation and group, the bad and all events
//! ([`BAD_EVENTS`], [`TOTAL_EVENTS`]); every window's error ratio is then
//! `Σ bad / Σ total` over the window (0, not NaN, when the window saw no events), so the period
//! SLI and budget are weighted by traffic. Imported Sloth specs keep Sloth's shapes.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::duration::PromDuration;
use crate::model::{Slo, BAD_EVENTS, TOTAL_EVENTS};
use crate::spec::{SeedSilentSpec, SeedUnreachableSpec};
use crate::types::{Severity, Sli};

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
/// Recorded per seed: the receivers' freshest last-push timestamp.
pub const LAST_PUSH: &str = "slo:seed_last_push:timestamp_seconds";
/// Alert: a pushing seed went silent.
pub const SEED_SILENT_ALERT: &str = "SLOGatewaySeedSilent";
/// Alert: the SLO Prometheus cannot federate a reachable seed.
pub const SEED_UNREACHABLE_ALERT: &str = "SLOGatewaySeedUnreachable";

/// One Prometheus rule group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleGroup {
    /// Group name.
    pub name: String,
    /// Evaluation interval; None: the Prometheus' global one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
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
    /// How long an alert's condition must hold before it fires.
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    /// How long an alert keeps firing after its condition cleared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_firing_for: Option<String>,
    /// Labels added to the result.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Alert annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A recording rule.
pub fn record(name: String, expr: String, labels: BTreeMap<String, String>) -> Rule {
    Rule {
        record: Some(name),
        alert: None,
        expr,
        for_: None,
        keep_firing_for: None,
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
pub fn slo_groups(slo: &Slo, interval: Option<PromDuration>) -> Vec<RuleGroup> {
    let interval = interval.map(|i| i.to_string());
    let group = |kind: &str, rules: Vec<Rule>| RuleGroup {
        name: format!("sloth-slo-{kind}-{}", slo.id),
        interval: interval.clone(),
        rules,
    };
    let sli = match slo.sli {
        Sli::Counted(_) => counted_sli_rules(slo),
        Sli::Sloth(_) => sloth_sli_rules(slo),
    };
    let mut groups = vec![
        group("sli-recordings", sli),
        group("meta-recordings", meta_rules(slo)),
    ];
    let alerts = alert_rules(slo);
    if !alerts.is_empty() {
        groups.push(group("alerts", alerts));
    }
    groups
}

/// Counted SLIs: all and bad events per evaluation, then every window as Σ bad / Σ total.
fn counted_sli_rules(slo: &Slo) -> Vec<Rule> {
    let Sli::Counted(sli) = &slo.sli else {
        return Vec::new();
    };
    let base = merged(&[&id_labels(slo), &slo.labels]);
    let f = id_filter(slo);
    let by = slo.grouping.join(", ");
    let mut rules = vec![
        record(TOTAL_EVENTS.to_owned(), sli.total.clone(), base.clone()),
        // Groups with events but no bad-event series (nothing went wrong) have 0 bad events.
        record(
            BAD_EVENTS.to_owned(),
            format!("({})\nor on ({by})\n(0 * {TOTAL_EVENTS}{f})\n", sli.bad),
            base.clone(),
        ),
    ];
    for w in slo.sli_windows().into_iter().chain([slo.window]) {
        let mut labels = base.clone();
        labels.insert(WINDOW_LABEL.to_owned(), w.to_string());
        // A window without events burns nothing: 0, not 0/0 = NaN.
        rules.push(record(
            sli_metric(w),
            format!(
                "(\n  sum_over_time({BAD_EVENTS}{f}[{w}])\n  /\n  (sum_over_time({TOTAL_EVENTS}{f}[{w}]) > 0)\n)\nor\n(0 * sum_over_time({TOTAL_EVENTS}{f}[{w}]))\n"
            ),
            labels,
        ));
    }
    rules
}

/// Imported Sloth SLIs: Sloth's expressions.
fn sloth_sli_rules(slo: &Slo) -> Vec<Rule> {
    let base = merged(&[&id_labels(slo), &slo.labels]);
    let mut rules: Vec<Rule> = slo
        .sli_windows()
        .into_iter()
        .map(|w| {
            let mut labels = base.clone();
            labels.insert(WINDOW_LABEL.to_owned(), w.to_string());
            record(
                sli_metric(w),
                slo.sloth_error_ratio_expr(w).unwrap_or_default(),
                labels,
            )
        })
        .collect();
    // The period from the shortest window's rule, as Sloth does: a mean of ratios weighted
    // equally per evaluation, not by traffic (our own SLIs are counted instead).
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
                    let factor = w.burn_factor(slo.window);
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
                for_: None,
                keep_firing_for: None,
                labels,
                annotations,
            })
        })
        .collect()
}

/// The seed alerts: `SLOGatewaySeedSilent` for seeds that push through the receiver,
/// `SLOGatewaySeedUnreachable` for seeds the SLO Prometheus federates. Both carry `seed`; the
/// Alertmanager config lets them inhibit the SLO alerts of their seed, so one seed outage is
/// one page. `keep_firing_for` keeps that inhibition until the outage's burn alerts cleared.
pub fn seed_group(
    silent: &SeedSilentSpec,
    unreachable: &SeedUnreachableSpec,
    default_keep_firing: Option<PromDuration>,
    interval: Option<PromDuration>,
) -> Option<RuleGroup> {
    let mut rules = Vec::new();
    let alert = |name: &str,
                 expr: String,
                 severity: Severity,
                 for_: Option<PromDuration>,
                 keep: Option<PromDuration>,
                 summary: String,
                 description: &str| Rule {
        record: None,
        alert: Some(name.to_owned()),
        expr,
        for_: for_.map(|d| d.to_string()),
        keep_firing_for: keep.or(default_keep_firing).map(|d| d.to_string()),
        labels: BTreeMap::from([("severity".to_owned(), severity.as_str().to_owned())]),
        annotations: BTreeMap::from([
            ("summary".to_owned(), summary),
            ("description".to_owned(), description.to_owned()),
        ]),
    };
    if silent.enabled {
        // The receivers' gauge vanishes when a receiver restarts: remember the freshest push
        // per seed (max over replicas) and look back over `lookback`.
        rules.push(record(
            LAST_PUSH.to_owned(),
            format!("max by (seed) ({FRESHNESS_METRIC})"),
            BTreeMap::new(),
        ));
        rules.push(alert(
            SEED_SILENT_ALERT,
            format!(
                "time() - max by (seed) (max_over_time({LAST_PUSH}[{}])) > {}",
                silent.lookback,
                silent.threshold.as_secs()
            ),
            silent.severity,
            None,
            silent.keep_firing_for,
            format!("Seed {{{{$labels.seed}}}} has not pushed SLO series for more than {}.", silent.threshold),
            "SLIs of this seed's shoots get no data (API server availability counts them as down): check the seed's slo-gateway agent and its network path to the receiver. The seed's SLO alerts are inhibited meanwhile.",
        ));
    }
    if unreachable.enabled && !unreachable.jobs.is_empty() {
        let up: Vec<String> = unreachable
            .jobs
            .iter()
            .map(|j| format!("up{{job=\"{j}\"}}"))
            .collect();
        rules.push(alert(
            SEED_UNREACHABLE_ALERT,
            // Every target of the seed (aggregate replicas) down.
            format!("max by (seed) ({}) == 0", up.join(" or ")),
            unreachable.severity,
            Some(unreachable.threshold),
            unreachable.keep_firing_for,
            format!("The SLO Prometheus cannot federate seed {{{{$labels.seed}}}}'s prometheus-aggregate for {}.", unreachable.threshold),
            "SLIs of this seed's shoots get no data (API server availability counts them as down): the seed or the network path to it is down. The seed's SLO alerts are inhibited meanwhile.",
        ));
    }
    (!rules.is_empty()).then(|| RuleGroup {
        name: "slo-gateway-seeds".to_owned(),
        interval: interval.map(|i| i.to_string()),
        rules,
    })
}
