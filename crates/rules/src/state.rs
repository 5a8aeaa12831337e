//! What every per-shoot SLO needs to know besides its own input: which shoots are meant to
//! serve, which seeds deliver data, and what Gardener's own health check says where the shoot
//! tier is silent. Recorded once per evaluation, first in the events group, so that every SLO's
//! events of that evaluation read the state of the same instant (rules of one group run in
//! order and see what earlier rules recorded).
//!
//! Unknown is not down. A minute of a shoot is
//! - **left out** of every per-shoot SLI while the garden says its API server is not meant to
//!   serve ([`EXCLUDED`]: hibernated; being created; being deleted; control plane migrating to
//!   another seed),
//! - **unknown**, and left out, while its seed delivers no data ([`REPORTING`] is 0: every
//!   federation target of a reachable seed down, a pushing seed's last push older than
//!   `seed_silent.reporting_within`, or, for a seed that reaches the SLO Prometheus another way
//!   (through prometheus-garden's federation), its newest shoot-tier sample older than that):
//!   during a seed incident Gardener's own conditions may be
//!   stale or fail for the same reason, so neither source can page a shoot, and the seed alert
//!   is the one page,
//! - **filled from Gardener's health check** ([`GARDEN_AVAILABLE`], from
//!   `garden_shoot_condition{condition="APIServerAvailable"}`, which Gardener's own long-term SLA
//!   rule reads) where its seed delivers but the shoot tier has nothing for the shoot: its shoot
//!   Prometheus is restarting or absent (`purpose: testing`, shoot monitoring off), or
//!   hibernation was requested and gardenlet already stopped it (the care controller reports
//!   every condition True from then on). True and Progressing count as up, False as down,
//!   Unknown leaves the minute unknown,
//! - **measured** otherwise: what the shoot tier recorded, where missing probe data already
//!   counts as failure.
//!
//! A seed whose data has not reached the SLO Prometheus by any path within
//! `seed_silent.lookback` has no [`REPORTING`] series: its shoots are filled and measured as
//! above, and `SLOGatewaySeedUncovered` names the seed when the garden lists shoots on it that
//! should report ([`EXPECTED`] with `source="shoot"`).
//! [`EXPECTED`] and [`UNKNOWN`] say, per shoot, what should report and what is unknown now
//! (dashboards, runbooks); the SLOs read [`EXCLUDED`], [`REPORTING`] and [`GARDEN_AVAILABLE`].
//!
//! Series: [`EXPECTED`] one per serving shoot, [`GARDEN_AVAILABLE`] one per shoot with a known
//! condition, [`EXCLUDED`] and [`UNKNOWN`] one per shoot only while it is excluded or unknown,
//! [`REPORTING`] one per seed; shared by all SLOs.

use std::collections::BTreeMap;

use crate::duration::PromDuration;
use crate::model::Slo;
use crate::render::prometheus::{record, Rule, SeedStateQueries, FRESHNESS_METRIC, LAST_PUSH};
use crate::spec::Globals;

/// Per shoot (`cluster`, `phase`), 1 while the garden says its API server is not meant to serve:
/// `phase` is `hibernated`, `creating`, `deleting` or `migrating`.
pub const EXCLUDED: &str = "slo:shoot_lifecycle:excluded";
/// Per seed, 1 while its data reaches the SLO Prometheus, 0 while it does not; no series for a
/// seed that neither path knows.
pub const REPORTING: &str = "slo:seed:reporting";
/// Per seed, the time of the newest shoot-tier sample of any of its shoots, whatever path
/// brought it (pushed, federated directly, or through prometheus-garden).
pub const LAST_SAMPLE: &str = "slo:seed_last_sample:timestamp_seconds";
/// Per serving shoot (`cluster`, `seed`, `source`): 1. `source` is `shoot` (its shoot
/// Prometheus reports) or `garden` (`purpose: testing`: no shoot Prometheus, Gardener's health
/// check only).
pub const EXPECTED: &str = "slo:shoot:expected";
/// Per serving shoot of a seed that is not known to be silent (`cluster`, `seed`): 1 while
/// Gardener's `APIServerAvailable` condition is True or Progressing, 0 while False; no series
/// while Unknown.
pub const GARDEN_AVAILABLE: &str = "slo:shoot_apiserver_available:garden";
/// Per serving shoot (`cluster`, `seed`, `reason`), 1 while nothing is known about it:
/// `reason` is `seed_not_reporting` or `no_data` (no shoot-tier series and no condition).
pub const UNKNOWN: &str = "slo:shoot:unknown";

/// Every series the state records.
pub const NAMES: &[&str] = &[
    EXCLUDED,
    LAST_SAMPLE,
    REPORTING,
    EXPECTED,
    GARDEN_AVAILABLE,
    UNKNOWN,
];

/// Whether `name` is a series the state records (it reaches no SLO Prometheus from outside).
pub fn is_state(name: &str) -> bool {
    NAMES.contains(&name)
}

/// `X unless on (cluster) <excluded>`: planned-down shoots left out.
pub fn unless_excluded() -> String {
    format!("unless on (cluster) {EXCLUDED}")
}

/// `X unless on (seed) (<reporting> == 0)`: minutes of seeds known to be silent left out.
pub fn unless_silent_seed() -> String {
    format!("unless on (seed) ({REPORTING} == 0)")
}

/// A garden series (`project`, `name`, optionally `technical_id`) with the `cluster` label the
/// shoot's own series carry: `technical_id` (the control-plane namespace) when the exporter
/// sets it, else `shoot--<project>--<name>`.
pub fn with_cluster(series: &str) -> String {
    format!(
        "label_replace(label_replace(label_join({series}, \"cluster\", \"--\", \"project\", \"name\"), \
         \"cluster\", \"shoot--$1\", \"cluster\", \"(.+)\"), \"cluster\", \"$1\", \"technical_id\", \"(.+)\")"
    )
}

/// Where the state comes from, from the output-wide settings and the SLOs.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Scrape jobs of the SLO Prometheus that federate seeds (`seed_unreachable.jobs`; empty
    /// when that alert is off).
    pub jobs: Vec<String>,
    /// `seed_silent.reporting_within`.
    pub reporting_within: PromDuration,
    /// `seed_silent.lookback` when [`LAST_PUSH`] is recorded (the seed alerts are on): a
    /// receiver restart then does not make a silent seed's state unknown.
    pub remembered: Option<PromDuration>,
    /// The shoot-tier series (`shoot:…:total`) the SLOs read: a shoot with none of them has no
    /// shoot-tier data.
    pub shoot_totals: Vec<String>,
    /// Record [`GARDEN_AVAILABLE`] (some SLO fills from it).
    pub fill: bool,
}

impl Settings {
    /// The settings for `slos` under `globals`; None when no SLO reads the state.
    pub fn of(slos: &[Slo], globals: &Globals) -> Option<Self> {
        let reads = |name: &str| {
            slos.iter()
                .flat_map(Slo::runtime_inputs)
                .any(|(_, q)| q.contains(name))
        };
        if !NAMES.iter().any(|n| reads(n)) {
            return None;
        }
        let mut shoot_totals: Vec<String> = slos
            .iter()
            .flat_map(Slo::shoot_rules)
            .map(|r| r.record.clone())
            .filter(|r| r.ends_with(":total"))
            .collect();
        shoot_totals.sort();
        shoot_totals.dedup();
        let unreachable = &globals.seed_unreachable;
        let silent = &globals.seed_silent;
        Some(Self {
            jobs: if unreachable.enabled {
                unreachable.jobs.clone()
            } else {
                Vec::new()
            },
            reporting_within: silent.reporting_within,
            remembered: silent.enabled.then_some(silent.lookback),
            shoot_totals,
            fill: reads(GARDEN_AVAILABLE),
        })
    }
}

/// `label_replace(x, "<label>", "<value>", "", ".*")`: sets a constant label.
fn with_label(x: &str, label: &str, value: &str) -> String {
    format!("label_replace({x}, \"{label}\", \"{value}\", \"\", \".*\")")
}

/// The state's rules, in the order they must run (later ones read earlier ones).
pub fn rules(s: &Settings) -> Vec<Rule> {
    let none = BTreeMap::new;
    let mut out = Vec::new();
    // gardener-metrics-exporter: operation states 1 succeeded, 2 processing … 6 failed, 0 for
    // every operation but the last. Before the first operation there are none, and no
    // conditions either: such a shoot is not expected and has no data, so nothing counts.
    let ops = "garden_shoot_operation_states";
    let phases = [
        ("hibernated", "garden_shoot_hibernated == 1".to_owned()),
        ("creating", format!(r#"{ops}{{operation="Create"}} > 1"#)),
        ("deleting", format!(r#"{ops}{{operation="Delete"}} > 0"#)),
        (
            "migrating",
            format!(r#"{ops}{{operation="Migrate"}} > 0 or {ops}{{operation="Restore"}} > 1"#),
        ),
    ];
    let excluded: Vec<String> = phases
        .iter()
        .map(|(phase, x)| format!("  {}", with_label(&with_cluster(x), "phase", phase)))
        .collect();
    out.push(record(
        EXCLUDED.to_owned(),
        format!(
            "group by (cluster, phase) (\n{}\n)",
            excluded.join("\n  or\n")
        ),
        none(),
    ));

    // Seeds that reach the SLO Prometheus through prometheus-garden have neither a federation
    // `up` of their own nor a last push: the age of their newest shoot-tier sample says whether
    // they deliver (`timestamp` is the SLO Prometheus' scrape time, so it grows from the moment
    // the series stop, stale or not). Remembered like the last push.
    if !s.shoot_totals.is_empty() {
        out.push(record(
            LAST_SAMPLE.to_owned(),
            format!("max by (seed) (timestamp({}))", s.shoot_totals.join(" or ")),
            none(),
        ));
    }
    let mut reporting = Vec::new();
    if !s.jobs.is_empty() {
        let jobs = s.jobs.join("|");
        reporting.push(format!(r#"max by (seed) (up{{job=~"{jobs}"}})"#));
    }
    let remembered = |fresh: &str, kept: &str| match s.remembered {
        Some(lookback) => format!("{fresh} or max_over_time({kept}[{lookback}])"),
        None => fresh.to_owned(),
    };
    reporting.push(format!(
        "time() - max by (seed) ({}) < bool {}",
        remembered(FRESHNESS_METRIC, LAST_PUSH),
        s.reporting_within.as_secs()
    ));
    if !s.shoot_totals.is_empty() {
        reporting.push(format!(
            "time() - max by (seed) ({}) < bool {}",
            remembered(LAST_SAMPLE, LAST_SAMPLE),
            s.reporting_within.as_secs()
        ));
    }
    out.push(record(
        REPORTING.to_owned(),
        reporting.join("\nor\n"),
        none(),
    ));

    // The shoots the garden lists with a last operation (the exporter has their conditions
    // only then), on a seed; `purpose: testing` gets no shoot Prometheus.
    let listed = format!(
        "group by (cluster, seed, purpose) ({})",
        with_cluster(r#"garden_shoot_condition{condition="APIServerAvailable", seed!=""}"#)
    );
    let source = format!(
        r#"label_replace(label_replace({listed}, "source", "garden", "purpose", "testing"), "source", "shoot", "source", "")"#
    );
    out.push(record(
        EXPECTED.to_owned(),
        format!(
            "group by (cluster, seed, source) (\n  {source}\n)\n{}",
            unless_excluded()
        ),
        none(),
    ));

    if s.fill {
        out.push(record(
            GARDEN_AVAILABLE.to_owned(),
            format!(
                "(max by (cluster, seed) ({}) >= bool 1)\nand on (cluster) {EXPECTED}\n{}",
                with_cluster(r#"garden_shoot_condition{condition="APIServerAvailable"} >= 0"#),
                unless_silent_seed()
            ),
            none(),
        ));
    }

    let mut unknown = vec![with_label(
        &format!("{EXPECTED} and on (seed) ({REPORTING} == 0)"),
        "reason",
        "seed_not_reporting",
    )];
    let mut no_data = format!("{EXPECTED} {}", unless_silent_seed());
    if !s.shoot_totals.is_empty() {
        no_data.push_str(&format!(
            " unless on (cluster) ({})",
            s.shoot_totals.join(" or ")
        ));
    }
    if s.fill {
        no_data.push_str(&format!(" unless on (cluster) {GARDEN_AVAILABLE}"));
    }
    if !s.shoot_totals.is_empty() || s.fill {
        unknown.push(with_label(&no_data, "reason", "no_data"));
    }
    out.push(record(UNKNOWN.to_owned(), unknown.join("\nor\n"), none()));
    out
}

/// What the seed alerts read from the state: seeds federated through prometheus-garden whose
/// data stopped ([`REPORTING`] 0 from their last sample alone: no federation `up` of their own,
/// no push), and seeds the garden lists with shoots that should report but no path has ever
/// delivered within the lookback (no [`REPORTING`] at all).
pub fn seed_queries(s: &Settings) -> SeedStateQueries {
    let mut known_elsewhere = Vec::new();
    if !s.jobs.is_empty() {
        known_elsewhere.push(format!(r#"up{{job=~"{}"}}"#, s.jobs.join("|")));
    }
    known_elsewhere.push(match s.remembered {
        Some(lookback) => format!("{FRESHNESS_METRIC} or max_over_time({LAST_PUSH}[{lookback}])"),
        None => FRESHNESS_METRIC.to_owned(),
    });
    let stopped_elsewhere = (!s.shoot_totals.is_empty()).then(|| {
        format!(
            "({REPORTING} == 0){}",
            known_elsewhere
                .iter()
                .map(|k| format!(" unless on (seed) ({k})"))
                .collect::<String>()
        )
    });
    SeedStateQueries {
        stopped_elsewhere,
        uncovered: format!(
            r#"group by (seed) ({EXPECTED}{{source="shoot"}}) unless on (seed) {REPORTING}"#
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql;

    #[test]
    fn rules_parse_and_come_in_order() {
        let s = Settings {
            jobs: vec!["prometheus-aggregate".into()],
            reporting_within: PromDuration::from_secs(120),
            remembered: Some(PromDuration::from_secs(7 * 86400)),
            shoot_totals: vec!["shoot:slo_a:total".into(), "shoot:slo_b:total".into()],
            fill: true,
        };
        let rules = rules(&s);
        let names: Vec<&str> = rules.iter().filter_map(|r| r.record.as_deref()).collect();
        assert_eq!(names, NAMES);
        for (i, r) in rules.iter().enumerate() {
            let expr = promql::parse(&r.expr).unwrap_or_else(|e| panic!("{e}\n{}", r.expr));
            // Every state series a rule reads is recorded before it.
            for sel in promql::selectors(&expr) {
                if let Some(m) = sel.metric.as_deref().filter(|m| is_state(m)) {
                    assert!(
                        names[..i].contains(&m),
                        "{} reads {m} before it is recorded",
                        names[i]
                    );
                }
            }
        }
        let reporting = &rules[2].expr;
        assert!(reporting.contains(r#"up{job=~"prometheus-aggregate"}"#));
        assert!(reporting.contains("< bool 120"));
        // A seed federated through prometheus-garden: the age of its newest shoot-tier sample,
        // remembered over the lookback, after the federation and push paths.
        assert!(rules[1]
            .expr
            .contains("timestamp(shoot:slo_a:total or shoot:slo_b:total)"));
        let terms: Vec<&str> = reporting.split("\nor\n").collect();
        assert_eq!(terms.len(), 3, "{reporting}");
        assert!(terms[2].contains(&format!("max_over_time({LAST_SAMPLE}[1w])")));
    }

    #[test]
    fn without_jobs_pushes_or_fill() {
        let s = Settings {
            jobs: Vec::new(),
            reporting_within: PromDuration::from_secs(60),
            remembered: None,
            shoot_totals: Vec::new(),
            fill: false,
        };
        let rules = rules(&s);
        assert_eq!(rules.len(), 4);
        assert!(!rules[1].expr.contains("up{"));
        assert!(!rules[1].expr.contains(LAST_PUSH));
        assert!(!rules[3].expr.contains("no_data"));
        for r in &rules {
            promql::parse(&r.expr).unwrap_or_else(|e| panic!("{e}\n{}", r.expr));
        }
    }
}
