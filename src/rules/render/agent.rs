//! The agent's `match[]` selectors: every series a generated SLI rule reads.

use std::collections::BTreeSet;

use crate::rules::model::Slo;
use crate::rules::promql;
use crate::rules::spec::Spec;

/// The deduplicated, sorted `match[]` selectors the agent must federate so that every SLI rule
/// of `specs` has its inputs. Derived by walking the parsed PromQL of each SLI; a bare metric
/// selector subsumes narrower selectors of the same metric.
pub fn agent_match_selectors(specs: &[Spec]) -> Vec<String> {
    let slos: Vec<Slo> = specs.iter().flat_map(Slo::resolve).collect();
    selectors_of(&slos)
}

/// [`agent_match_selectors`] for resolved SLOs.
pub fn selectors_of(slos: &[Slo]) -> Vec<String> {
    let mut out = BTreeSet::new();
    for slo in slos {
        // Selectors do not depend on the window: one window is enough.
        if let Ok(expr) = promql::parse(&slo.error_ratio_expr(slo.shortest_window())) {
            promql::collect_selectors(&expr, &mut out);
        }
    }
    promql::minimise_selectors(out)
}
