//! The shoot tier's rules: one group for every shoot's own Prometheus with the per-shoot SLI
//! inputs, each recorded once even when several SLOs use it.
//!
//! The rules aggregate away every label: in a shoot Prometheus all series are that shoot's, and
//! its identity (`cluster`, `project`, `name`, …) is added by its external labels when
//! prometheus-aggregate federates the results, `seed` by the aggregate. Rules cannot see
//! external labels, so grouping by them here would group by nothing.

use std::collections::BTreeSet;

use super::prometheus::{record, RuleGroup};
use crate::duration::PromDuration;
use crate::model::Slo;

/// Name of the shoot tier's rule group.
pub const GROUP: &str = "slo-gateway-shoot-slis";

/// The shoot tier's groups (none when no SLO needs the shoot tier).
pub fn groups(slos: &[Slo], interval: Option<PromDuration>) -> Vec<RuleGroup> {
    let mut seen = BTreeSet::new();
    let rules: Vec<_> = slos
        .iter()
        .flat_map(Slo::shoot_rules)
        .filter(|r| seen.insert(r.record.clone()))
        .map(|r| record(r.record.clone(), r.expr.clone(), Default::default()))
        .collect();
    if rules.is_empty() {
        return Vec::new();
    }
    vec![RuleGroup {
        name: GROUP.to_owned(),
        interval: interval.map(|i| i.to_string()),
        rules,
    }]
}
