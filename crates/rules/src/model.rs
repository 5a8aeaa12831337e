//! The resolved SLO model every renderer works from: catalog names replaced by queries,
//! defaults applied, ids, windows and both tiers' inputs computed.

use std::collections::{BTreeMap, BTreeSet};

use super::catalog;
use super::duration::PromDuration;
use super::promql;
use super::sources;
use super::spec::{AlertSeveritySpec, Globals, SliSpec, Spec};
use super::state;
use super::types::{
    camel, default_windows, snake, AlertWindow, CountedSli, ShootRule, Sli, SlothSli, SLOTH_VERSION,
};

/// Recorded per evaluation and group: bad events of a counted SLI.
pub const BAD_EVENTS: &str = "slo:sli_events:bad";
/// Recorded per evaluation and group: all events of a counted SLI.
pub const TOTAL_EVENTS: &str = "slo:sli_events:total";

/// Alert settings of one resolved SLO.
#[derive(Debug, Clone, PartialEq)]
pub struct Alerting {
    /// Alert name.
    pub name: String,
    /// Labels of both alerts.
    pub labels: BTreeMap<String, String>,
    /// Annotations of both alerts.
    pub annotations: BTreeMap<String, String>,
    /// Page alert settings; None when disabled.
    pub page: Option<AlertSeveritySpec>,
    /// Ticket alert settings; None when disabled.
    pub ticket: Option<AlertSeveritySpec>,
    /// Add a `severity` label.
    pub severity_label: bool,
}

/// One SLO ready for rendering.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// `<service>-<name>`, the `sloth_id` label.
    pub id: String,
    /// The `sloth_service` label.
    pub service: String,
    /// The `sloth_slo` label.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Objective in percent.
    pub objective: f64,
    /// SLO period.
    pub window: PromDuration,
    /// Labels the SLI aggregates by.
    pub grouping: Vec<String>,
    /// Service and SLO labels merged (SLO wins).
    pub labels: BTreeMap<String, String>,
    /// The SLI.
    pub sli: Sli,
    /// The catalog entry, for catalog SLIs.
    pub catalog: Option<&'static str>,
    /// Alerts; None when alerting is disabled.
    pub alerting: Option<Alerting>,
    /// Alert windows (also decide which SLI windows are recorded).
    pub windows: Vec<AlertWindow>,
    /// Source format, the `sloth_spec` info label.
    pub spec_version: String,
}

/// Resolves the SLOs of specs given together (catalog names must be valid: the checks make sure).
pub fn resolve_all<'a>(specs: impl IntoIterator<Item = &'a Spec> + Clone) -> Vec<Slo> {
    let globals = Globals::from_specs(specs.clone());
    specs
        .into_iter()
        .flat_map(|s| resolve(s, globals.shoot_tier.range))
        .collect()
}

/// Resolves the SLOs of one spec; `range` is `shoot_tier.range`.
pub fn resolve(spec: &Spec, range: PromDuration) -> Vec<Slo> {
    let sloth = spec.version == SLOTH_VERSION;
    spec.slos
        .iter()
        .map(|s| {
            let grouping = s.grouping.clone().unwrap_or_else(|| spec.grouping.clone());
            let expand = |q: &str, by: &[String]| promql::expand(q, &range.to_string(), by);
            let by = grouping.join(", ");
            let sli = match &s.sli {
                SliSpec::Events(e) if sloth => Sli::Sloth(SlothSli::Events {
                    error_query: e.error_query.clone(),
                    total_query: e.total_query.clone(),
                }),
                SliSpec::Raw(r) if sloth => Sli::Sloth(SlothSli::Raw {
                    error_ratio_query: r.error_ratio_query.clone(),
                }),
                SliSpec::Events(e) => Sli::Counted(runtime_state(
                    CountedSli {
                        bad: expand(&e.error_query, &grouping),
                        total: expand(&e.total_query, &grouping),
                        shoot_rules: Vec::new(),
                    },
                    &grouping,
                )),
                SliSpec::ShootEvents(e) => {
                    let series = |suffix: &str| custom_shoot_series(&spec.service, &s.name, suffix);
                    let total = expand(&e.total_query, &[]);
                    let sum = |suffix: &str| {
                        format!(
                            "sum by ({by}) (\n  {}\n)",
                            catalog::counted_shoot_series(&series(suffix))
                        )
                    };
                    Sli::Counted(CountedSli {
                        bad: sum("bad"),
                        total: sum("total"),
                        shoot_rules: vec![
                            ShootRule {
                                record: series("bad"),
                                // No bad-event series yet (nothing went wrong) is 0 bad events.
                                expr: format!(
                                    "({})\nor\n(0 * ({total}))",
                                    expand(&e.error_query, &[])
                                ),
                            },
                            ShootRule {
                                record: series("total"),
                                expr: total,
                            },
                        ],
                    })
                }
                SliSpec::Raw(r) => {
                    // One event per evaluation, as bad as the ratio (NaN ratios are dropped).
                    let ratio = format!("({}) >= 0", expand(&r.error_ratio_query, &grouping));
                    Sli::Counted(runtime_state(
                        CountedSli {
                            total: format!("count by ({by}) ({ratio})"),
                            bad: ratio,
                            shoot_rules: Vec::new(),
                        },
                        &grouping,
                    ))
                }
                SliSpec::BoolGauge(b) => {
                    // One event per thing and evaluation, bad when the gauge is 0.
                    let expr = expand(&b.expr, &grouping);
                    Sli::Counted(runtime_state(
                        CountedSli {
                            bad: format!("sum by ({by}) (1 - ({expr}))"),
                            total: format!("count by ({by}) ({expr})"),
                            shoot_rules: Vec::new(),
                        },
                        &grouping,
                    ))
                }
                // Validation rejects unknown names; an unchecked spec gets an SLI that promtool
                // rejects rather than a panic.
                SliSpec::Catalog(name) => match catalog::lookup(name) {
                    Some(entry) => Sli::Counted(entry.sli(&catalog::Context {
                        grouping: &grouping,
                        range,
                    })),
                    None => Sli::Counted(CountedSli {
                        bad: format!("unknown_catalog_sli_{}", snake(name)),
                        total: format!("unknown_catalog_sli_{}", snake(name)),
                        shoot_rules: Vec::new(),
                    }),
                },
            };
            let mut labels = spec.labels.clone();
            labels.extend(s.labels.clone());
            let a = &s.alerting;
            let alerting = a.enabled.then(|| Alerting {
                name: a.name.clone().unwrap_or_else(|| {
                    format!("{}{}ErrorBudgetBurn", camel(&spec.service), camel(&s.name))
                }),
                labels: a.labels.clone(),
                annotations: a.annotations.clone(),
                page: a.page.enabled.then(|| a.page.clone()),
                ticket: a.ticket.enabled.then(|| a.ticket.clone()),
                severity_label: a.severity_label,
            });
            Slo {
                id: format!("{}-{}", spec.service, s.name),
                service: spec.service.clone(),
                name: s.name.clone(),
                description: s.description.clone(),
                objective: s.objective,
                window: s.window,
                grouping,
                labels,
                sli,
                catalog: match &s.sli {
                    SliSpec::Catalog(name) => catalog::lookup(name).map(|e| e.name),
                    _ => None,
                },
                alerting,
                windows: a.windows.clone().unwrap_or_else(default_windows),
                spec_version: spec.version.clone(),
            }
        })
        .collect()
}

/// A runtime SLI (our `events`, `raw`, `bool_gauge`) with the shared state applied where its
/// groups allow: grouped by `cluster`, planned-down shoots are left out; grouped by `seed` and
/// reading series that come through prometheus-aggregate, minutes of silent seeds too (see
/// [`crate::state`]). Other SLIs (the receivers' own metrics, garden aggregates) stay as written.
fn runtime_state(mut sli: CountedSli, grouping: &[String]) -> CountedSli {
    let has = |l: &str| grouping.iter().any(|g| g == l);
    let via_aggregate = [&sli.bad, &sli.total].iter().any(|q| {
        promql::parse(q).is_ok_and(|e| {
            promql::selectors(&e)
                .iter()
                .any(|s| s.metric.as_deref().is_some_and(sources::aggregate_carries))
        })
    });
    let mut tail = String::new();
    if has("cluster") {
        tail.push_str(&format!("\n{}", state::unless_excluded()));
    }
    if has("seed") && via_aggregate {
        tail.push_str(&format!("\n{}", state::unless_silent_seed()));
    }
    if !tail.is_empty() {
        for q in [&mut sli.bad, &mut sli.total] {
            *q = format!("(\n  {q}\n){tail}");
        }
    }
    sli
}

/// `shoot:slo_custom_<service>_<slo>:<suffix>`, where a `shoot_events` SLI is recorded.
pub fn custom_shoot_series(service: &str, slo: &str, suffix: &str) -> String {
    format!(
        "shoot:slo_custom_{}_{}:{suffix}",
        snake(service),
        snake(slo)
    )
}

impl Slo {
    /// Error budget as a ratio, computed as Sloth does: `(100 − objective) / 100`.
    pub fn error_budget_ratio(&self) -> f64 {
        (100.0 - self.objective) / 100.0
    }

    /// Windows to record `slo:sli_error:ratio_rate<w>` for, ascending (the period excluded).
    pub fn sli_windows(&self) -> Vec<PromDuration> {
        let set: BTreeSet<PromDuration> = self
            .windows
            .iter()
            .flat_map(|w| [w.short, w.long])
            .filter(|w| *w != self.window)
            .collect();
        set.into_iter().collect()
    }

    /// The shortest recorded window: the current burn rate (and Sloth's period rule) use it.
    pub fn shortest_window(&self) -> PromDuration {
        self.sli_windows()
            .first()
            .copied()
            .unwrap_or(PromDuration::from_secs(300))
    }

    /// The rules the shoot tier needs for this SLO.
    pub fn shoot_rules(&self) -> &[ShootRule] {
        match &self.sli {
            Sli::Counted(c) => &c.shoot_rules,
            Sli::Sloth(_) => &[],
        }
    }

    /// What the runtime tier reads from outside the SLO Prometheus' own recordings: `(rule,
    /// PromQL)` for each input rule.
    pub fn runtime_inputs(&self) -> Vec<(String, String)> {
        match &self.sli {
            Sli::Counted(c) => vec![
                (BAD_EVENTS.to_owned(), c.bad.clone()),
                (TOTAL_EVENTS.to_owned(), c.total.clone()),
            ],
            Sli::Sloth(_) => {
                let w = self.shortest_window();
                vec![(
                    format!("slo:sli_error:ratio_rate{w}"),
                    self.sloth_error_ratio_expr(w).unwrap_or_default(),
                )]
            }
        }
    }

    /// Sloth's error-ratio expression over `window` (imported Sloth SLIs only).
    pub fn sloth_error_ratio_expr(&self, window: PromDuration) -> Option<String> {
        let w = window.to_string();
        let by = &self.grouping;
        match &self.sli {
            Sli::Sloth(SlothSli::Events {
                error_query,
                total_query,
            }) => Some(format!(
                "({})\n/\n({})\n",
                promql::expand(error_query, &w, by),
                promql::expand(total_query, &w, by)
            )),
            Sli::Sloth(SlothSli::Raw { error_ratio_query }) => {
                Some(format!("({})", promql::expand(error_ratio_query, &w, by)))
            }
            Sli::Counted(_) => None,
        }
    }

    /// The longest short window of the page alerts (how long after an outage they may fire).
    pub fn longest_page_short_window(&self) -> Option<PromDuration> {
        self.alerting.as_ref()?.page.as_ref()?;
        self.windows
            .iter()
            .filter(|w| w.severity == super::types::Severity::Page)
            .map(|w| w.short)
            .max()
    }
}
