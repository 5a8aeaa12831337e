//! The agent's `match[]` selectors: every series a generated SLI rule reads.

use std::collections::BTreeSet;

use crate::rules::model::Slo;
use crate::rules::promql;
use crate::rules::spec::{self, Spec, SpecError};

/// The deduplicated, sorted `match[]` selectors the agent must federate so that every SLI rule
/// of `specs` has its inputs. Derived by walking the parsed PromQL of each SLI; a bare metric
/// selector subsumes narrower selectors of the same metric.
pub fn agent_match_selectors(specs: &[Spec]) -> Vec<String> {
    let slos: Vec<Slo> = specs.iter().flat_map(Slo::resolve).collect();
    selectors_of(&slos)
}

/// [`agent_match_selectors`] for spec files (what the agent config can reference instead of a
/// hand-written list); the files are validated as `rules check` does.
pub fn agent_match_selectors_from_files(
    paths: &[std::path::PathBuf],
) -> Result<Vec<String>, SpecError> {
    let loaded = paths
        .iter()
        .map(|p| spec::load_file(p))
        .collect::<Result<Vec<_>, _>>()?;
    spec::check_together(&loaded)?;
    let specs: Vec<Spec> = loaded.into_iter().map(|l| l.spec).collect();
    Ok(agent_match_selectors(&specs))
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
