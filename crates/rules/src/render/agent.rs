//! The `match[]` selectors of what the runtime tier reads: from the seeds' prometheus-aggregate
//! (what the agent must federate, and what the SLO Prometheus federates from reachable seeds)
//! and from prometheus-garden.

use std::collections::BTreeSet;

use crate::model::{resolve_all, Slo};
use crate::promql;
use crate::sources::{self, Source};
use crate::spec::{Globals, Spec};
use crate::state;

/// The runtime tier's inputs by where they come from, as `match[]` selectors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchSelectors {
    /// From prometheus-aggregate (`agent-match.yaml`).
    pub aggregate: Vec<String>,
    /// From prometheus-garden (`garden-match.yaml`).
    pub garden: Vec<String>,
}

/// The deduplicated, sorted `match[]` selectors the agent must federate so that every runtime
/// rule of `specs` has its inputs. Derived by walking the parsed PromQL of each runtime input;
/// a bare metric selector subsumes narrower selectors of the same metric.
pub fn agent_match_selectors(specs: &[Spec]) -> Vec<String> {
    selectors_of(&resolve_all(specs), &Globals::from_specs(specs)).aggregate
}

/// The selectors the SLO Prometheus must federate from prometheus-garden for `specs`.
pub fn garden_match_selectors(specs: &[Spec]) -> Vec<String> {
    selectors_of(&resolve_all(specs), &Globals::from_specs(specs)).garden
}

/// [`MatchSelectors`] for resolved SLOs (and the shared state they read) under `globals`.
pub fn selectors_of(slos: &[Slo], globals: &Globals) -> MatchSelectors {
    let mut aggregate = BTreeSet::new();
    let mut garden = BTreeSet::new();
    let state: Vec<String> = state::Settings::of(slos, globals)
        .map(|s| state::rules(&s).into_iter().map(|r| r.expr).collect())
        .unwrap_or_default();
    let queries = slos
        .iter()
        .flat_map(|slo| slo.runtime_inputs().into_iter().map(|(_, q)| q))
        .chain(state);
    for query in queries {
        let Ok(expr) = promql::parse(&query) else {
            continue;
        };
        for s in promql::selectors(&expr) {
            match s.metric.as_deref().and_then(|m| sources::classify(m, &[])) {
                Some(Source::Aggregate) => aggregate.insert(s.text),
                Some(Source::Garden) => garden.insert(s.text),
                // The SLO Prometheus' own scrapes and recordings; unreachable ones fail
                // `rules check`.
                Some(Source::Local) | None => false,
            };
        }
    }
    MatchSelectors {
        aggregate: promql::minimise_selectors(aggregate),
        garden: promql::minimise_selectors(garden),
    }
}
