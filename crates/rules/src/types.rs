//! Types shared by the spec format, the catalog, the resolved model and the renderers: alert
//! severities and windows, the tiers, and the shapes an SLI resolves to.
//!
//! Everything else in `rules` depends on this module; it depends on nothing but durations.

use serde::Deserialize;

use super::duration::PromDuration;

/// The `version` of Sloth specs (`prometheus/v1`): specs imported from Sloth are rendered in
/// Sloth's shapes.
pub const SLOTH_VERSION: &str = "prometheus/v1";

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

/// One window pair of a multiwindow multi-burn-rate alert.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertWindow {
    /// `page` or `ticket`.
    pub severity: Severity,
    /// Share of the period's error budget (percent) that, spent within `long`, fires the alert.
    pub budget_percent: f64,
    /// Long window.
    pub long: PromDuration,
    /// Short window (the alert resets quickly once the problem is gone); usually `long / 12`.
    pub short: PromDuration,
}

impl AlertWindow {
    /// Burn-rate factor of this window pair for an SLO period: the speed at which
    /// `budget_percent` of the budget is spent within the long window
    /// (budget% × period_hours / 100 / long_hours; Sloth computes it in this order too).
    pub fn burn_factor(&self, period: PromDuration) -> f64 {
        self.budget_percent * period.hours() / 100.0 / self.long.hours()
    }
}

/// The SRE-workbook window set (Sloth's `google-30d`/`google-28d`): budget share, long, short.
pub fn default_windows() -> Vec<AlertWindow> {
    const M: u64 = 60;
    const H: u64 = 3600;
    [
        (Severity::Page, 2.0, H, 5 * M),
        (Severity::Page, 5.0, 6 * H, 30 * M),
        (Severity::Ticket, 10.0, 24 * H, 2 * H),
        (Severity::Ticket, 10.0, 72 * H, 6 * H),
    ]
    .into_iter()
    .map(|(severity, budget_percent, long, short)| AlertWindow {
        severity,
        budget_percent,
        long: PromDuration::from_secs(long),
        short: PromDuration::from_secs(short),
    })
    .collect()
}

/// Where an SLI's per-shoot inputs are computed (GEP-0041's two tiers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// In every shoot's own Prometheus, from series only it has; recorded as
    /// `shoot:<name>:<suffix>` so that prometheus-aggregate's federation carries them.
    Shoot,
    /// In the SLO Prometheus, from what reaches it (aggregate federation, garden metrics).
    Runtime,
}

impl Tier {
    /// `shoot` or `runtime`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shoot => "shoot",
            Self::Runtime => "runtime",
        }
    }
}

/// A recording rule for every shoot's Prometheus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShootRule {
    /// Recorded name, `shoot:<name>:<suffix>`.
    pub record: String,
    /// PromQL over the shoot Prometheus' own series, aggregated to no labels: the shoot's
    /// identity (`cluster`, …, `seed`) is added on the way out by external labels.
    pub expr: String,
}

/// An SLI as the SLO Prometheus computes it: per evaluation, the bad and all events of each
/// group. Every window's error ratio is Σ bad / Σ total over the window, so busy and quiet
/// times weigh by their traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct CountedSli {
    /// Instant PromQL: bad events per group (a rate, or a count per evaluation).
    pub bad: String,
    /// Instant PromQL: all events per group, in the unit of `bad`.
    pub total: String,
    /// Rules the shoot tier needs for `bad` and `total` to have inputs.
    pub shoot_rules: Vec<ShootRule>,
}

/// An imported Sloth SLI, rendered in Sloth's own shapes; queries still hold `{{.window}}`.
#[derive(Debug, Clone, PartialEq)]
pub enum SlothSli {
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
}

/// A resolved SLI.
#[derive(Debug, Clone, PartialEq)]
pub enum Sli {
    /// Traffic-weighted (our spec format, OpenSLO).
    Counted(CountedSli),
    /// Sloth's shapes, so imported Sloth specs give Sloth's expressions.
    Sloth(SlothSli),
}

/// `node-availability` → `node_availability` (metric names allow no `-`).
pub fn snake(s: &str) -> String {
    s.replace('-', "_")
}

/// `node-availability` → `NodeAvailability`.
pub fn camel(s: &str) -> String {
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
mod tests {
    use super::*;

    fn factors(days: u64) -> Vec<f64> {
        default_windows()
            .iter()
            .map(|w| w.burn_factor(PromDuration::from_secs(days * 86400)))
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
    fn names() {
        assert_eq!(camel("node-availability"), "NodeAvailability");
        assert_eq!(snake("node-availability"), "node_availability");
    }
}
