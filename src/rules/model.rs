//! The resolved SLO model every renderer works from: catalog names replaced by queries,
//! defaults applied, ids and windows computed.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::catalog;
use super::duration::PromDuration;
use super::promql;
use super::spec::{AlertSeveritySpec, AlertWindowSpec, SliSpec, Spec};

/// Alert severity of a multiwindow multi-burn-rate alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Wake someone up.
    Page,
    /// Look at it during working hours.
    Ticket,
}

impl Severity {
    /// `page` or `ticket`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Page => "page",
            Self::Ticket => "ticket",
        }
    }
}

/// The SRE-workbook window set (Sloth's `google-30d`/`google-28d`): budget share, long, short.
pub fn default_windows() -> Vec<AlertWindowSpec> {
    const M: u64 = 60;
    const H: u64 = 3600;
    [
        (Severity::Page, 2.0, H, 5 * M),
        (Severity::Page, 5.0, 6 * H, 30 * M),
        (Severity::Ticket, 10.0, 24 * H, 2 * H),
        (Severity::Ticket, 10.0, 72 * H, 6 * H),
    ]
    .into_iter()
    .map(|(severity, budget_percent, long, short)| AlertWindowSpec {
        severity,
        budget_percent,
        long: PromDuration::from_secs(long),
        short: PromDuration::from_secs(short),
    })
    .collect()
}

/// A resolved SLI; queries still hold `{{.window}}`.
#[derive(Debug, Clone, PartialEq)]
pub enum Sli {
    /// Bad events / all events.
    Events {
        /// Bad-event rate query.
        error_query: String,
        /// All-event rate query.
        total_query: String,
    },
    /// Error-ratio query.
    Raw {
        /// The query.
        error_ratio_query: String,
    },
    /// 0/1 instant expression (1 = good).
    BoolGauge {
        /// The expression.
        expr: String,
    },
}

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
    /// Alerts; None when alerting is disabled.
    pub alerting: Option<Alerting>,
    /// Alert windows (also decide which SLI windows are recorded).
    pub windows: Vec<AlertWindowSpec>,
    /// Source format, the `sloth_spec` info label.
    pub spec_version: String,
}

impl Slo {
    /// Resolves the SLOs of a spec (catalog names must be valid: [`super::spec`] checks them).
    pub fn resolve(spec: &Spec) -> Vec<Slo> {
        spec.slos
            .iter()
            .map(|s| {
                let grouping = s.grouping.clone().unwrap_or_else(|| spec.grouping.clone());
                let sli = match &s.sli {
                    SliSpec::Events(e) => Sli::Events {
                        error_query: e.error_query.clone(),
                        total_query: e.total_query.clone(),
                    },
                    SliSpec::Raw(r) => Sli::Raw {
                        error_ratio_query: r.error_ratio_query.clone(),
                    },
                    SliSpec::BoolGauge(b) => Sli::BoolGauge {
                        expr: b.expr.clone(),
                    },
                    // Validation rejects unknown names; an unchecked spec gets an SLI that
                    // promtool rejects rather than a panic.
                    SliSpec::Catalog(name) => catalog::lookup(name).map_or_else(
                        || Sli::Raw {
                            error_ratio_query: format!("unknown_catalog_sli_{name}"),
                        },
                        |c| (c.sli)(&grouping),
                    ),
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
                    alerting,
                    windows: a.windows.clone().unwrap_or_else(default_windows),
                    spec_version: spec.version.clone(),
                }
            })
            .collect()
    }

    /// Burn-rate factor of a window pair for an SLO period: the speed at which
    /// `budget_percent` of the budget is spent within the long window
    /// (budget% × period_hours / 100 / long_hours; Sloth computes it in this order too).
    pub fn burn_factor(w: &AlertWindowSpec, period: PromDuration) -> f64 {
        w.budget_percent * period.hours() / 100.0 / w.long.hours()
    }

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

    /// The shortest recorded window: source of the period rule and the current burn rate.
    pub fn shortest_window(&self) -> PromDuration {
        self.sli_windows()
            .first()
            .copied()
            .unwrap_or(PromDuration::from_secs(300))
    }

    /// The error-ratio expression over `window`.
    pub fn error_ratio_expr(&self, window: PromDuration) -> String {
        let w = window.to_string();
        let by = &self.grouping;
        match &self.sli {
            // Sloth's shapes, so that imported Sloth specs give Sloth's expressions.
            Sli::Events {
                error_query,
                total_query,
            } => format!(
                "({})\n/\n({})\n",
                promql::expand(error_query, &w, by),
                promql::expand(total_query, &w, by)
            ),
            Sli::Raw { error_ratio_query } => {
                format!("({})", promql::expand(error_ratio_query, &w, by))
            }
            Sli::BoolGauge { expr } => {
                let e = promql::expand(expr, &w, by);
                let series = if promql::is_selector(&e) {
                    format!("{e}[{w}]")
                } else {
                    // Subquery: any 0/1 expression, sampled every minute.
                    format!("({e})[{w}:1m]")
                };
                format!("1 - avg by ({}) (avg_over_time({series}))", by.join(", "))
            }
        }
    }
}

/// `node-availability` → `NodeAvailability`.
fn camel(s: &str) -> String {
    s.split(['-', '_'])
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn factors(days: u64) -> Vec<f64> {
        default_windows()
            .iter()
            .map(|w| Slo::burn_factor(w, PromDuration::from_secs(days * 86400)))
            .collect()
    }

    #[test]
    fn workbook_factors() {
        assert_eq!(factors(30), vec![14.4, 6.0, 3.0, 1.0]);
        let f28 = factors(28);
        for (got, want) in f28.iter().zip([13.44, 5.6, 2.8, 0.9333333333333333]) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
    }

    #[test]
    fn camel_case() {
        assert_eq!(camel("node-availability"), "NodeAvailability");
    }
}
