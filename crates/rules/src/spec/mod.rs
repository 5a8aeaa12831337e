//! Our SLO spec format (`slo-gateway/v1`): the types here, [`parse`] (serde, first structural
//! error with its line) and [`diagnostics`] (findings located by key path). It is the bottom
//! of the crate's layers (besides [`types`](super::types) and [`duration`](super::duration)):
//! resolving specs and checking them build on it, never the other way round.
//!
//! A spec file describes one service and its SLOs. Sections that configure the whole output
//! (`alertmanager`, `seed_silent`, `seed_unreachable`, `seed_uncovered`, `seed_clock_skew`,
//! `shoot_tier`, `runtime_tier`, `dashboards`) may be set in at most one of the files given together; [`Globals`] collects
//! them with their defaults.

pub mod diagnostics;
pub mod parse;

use std::collections::BTreeMap;

use serde::Deserialize;

use super::duration::PromDuration;
use super::types::{AlertWindow, Severity};

pub use diagnostics::{Diagnostic, Level, SpecError};
pub use parse::LoadedSpec;

/// The `version` our spec files carry.
pub const SPEC_VERSION: &str = "slo-gateway/v1";

/// One spec file: a service and its SLOs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Format version: `slo-gateway/v1` in files. Importers put their source format here
    /// (`prometheus/v1` for Sloth, `openslo/v1`); it becomes the `sloth_spec` info label.
    pub version: String,
    /// Service name, the `sloth_service` label. Letters, digits, `-` and `_`.
    pub service: String,
    /// Labels added to every recording rule of this service (and so to its alerts). Default: none.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Labels every SLI aggregates by in the SLO Prometheus, so each combination (e.g. each
    /// shoot) gets its own SLO series and alerts. Default: `[cluster, seed]`.
    #[serde(default = "default_grouping")]
    pub grouping: Vec<String>,
    /// The SLOs of the service (at least one).
    pub slos: Vec<SloSpec>,
    /// Metrics this landscape has although Gardener does not expose them yet; catalog SLIs that
    /// need one (e.g. `garden_shoot_operation_duration_minutes_bucket`) are refused unless it
    /// is listed. Default: none.
    #[serde(default)]
    pub available_metrics: Vec<String>,
    /// Metric names (regexes, fully anchored) the SLO Prometheus scrapes itself, which runtime
    /// SLIs may read besides what prometheus-aggregate and prometheus-garden provide. The
    /// receiver's `slo_gateway_receiver_*` are always allowed. Default: none.
    #[serde(default)]
    pub local_metrics: Vec<String>,
    /// Alertmanager routing (global). Default: receivers `slo-page`, `slo-ticket`,
    /// `slo-default` without integrations.
    #[serde(default)]
    pub alertmanager: Option<AlertmanagerSpec>,
    /// The "seed silent" alert for seeds that push through the receiver (global).
    /// Default: enabled, threshold 5m, severity page.
    #[serde(default)]
    pub seed_silent: Option<SeedSilentSpec>,
    /// The "seed unreachable" alert for seeds the SLO Prometheus federates (global).
    /// Default: enabled, job `prometheus-aggregate`, after 5m, severity page.
    #[serde(default)]
    pub seed_unreachable: Option<SeedUnreachableSpec>,
    /// The "seed uncovered" alert for seeds the garden lists with shoots but whose data no path
    /// delivers (global). Default: enabled, after 75m, severity page.
    #[serde(default)]
    pub seed_uncovered: Option<SeedUncoveredSpec>,
    /// The "seed clock skew" alert for seeds that push through the receiver (global).
    /// Default: enabled, threshold 1m for 10m, severity ticket.
    #[serde(default)]
    pub seed_clock_skew: Option<SeedClockSkewSpec>,
    /// Rules for every shoot's own Prometheus (global). Default: see [`ShootTierSpec`].
    #[serde(default)]
    pub shoot_tier: Option<ShootTierSpec>,
    /// Rules for the SLO Prometheus (global). Default: see [`RuntimeTierSpec`].
    #[serde(default)]
    pub runtime_tier: Option<RuntimeTierSpec>,
    /// Perses dashboards (global). Default: see [`DashboardsSpec`].
    #[serde(default)]
    pub dashboards: Option<DashboardsSpec>,
}

impl Spec {
    /// A spec of `version` with nothing set, for importers to fill in.
    pub fn empty(version: &str) -> Self {
        Self {
            version: version.to_owned(),
            service: String::new(),
            labels: BTreeMap::new(),
            grouping: Vec::new(),
            slos: Vec::new(),
            available_metrics: Vec::new(),
            local_metrics: Vec::new(),
            alertmanager: None,
            seed_silent: None,
            seed_unreachable: None,
            seed_uncovered: None,
            seed_clock_skew: None,
            shoot_tier: None,
            runtime_tier: None,
            dashboards: None,
        }
    }
}

fn default_grouping() -> Vec<String> {
    vec!["cluster".to_owned(), "seed".to_owned()]
}

/// One SLO.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    /// Name, unique within the service; the `sloth_slo` label. Letters, digits, `-` and `_`.
    pub name: String,
    /// Free text for dashboards. Default: empty.
    #[serde(default)]
    pub description: String,
    /// Objective in percent, strictly between 0 and 100 (e.g. `99.9`).
    pub objective: f64,
    /// SLO period. Default: `28d` (GEP-0041). Short periods (e.g. `1h`) work too.
    #[serde(default = "default_window")]
    pub window: PromDuration,
    /// Overrides the service's grouping labels for this SLO. Default: the service's.
    #[serde(default)]
    pub grouping: Option<Vec<String>>,
    /// Labels added to this SLO's recording rules (and so to its alerts). Default: none.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// How good and bad are measured.
    pub sli: SliSpec,
    /// Burn-rate alerts. Default: page and ticket alerts with the SRE-workbook windows.
    #[serde(default)]
    pub alerting: AlertingSpec,
}

fn default_window() -> PromDuration {
    PromDuration::from_secs(28 * 24 * 3600)
}

/// The SLI: exactly one of the kinds, written as a one-key mapping (`sli: {events: …}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "SliKeys")]
pub enum SliSpec {
    /// Bad events over all events, computed in the SLO Prometheus; both queries contain
    /// `{{.window}}` (Sloth's `events`).
    Events(EventsSli),
    /// Bad events over all events, computed in every shoot's own Prometheus (for series only
    /// it has, e.g. `apiserver_request_total`); queries aggregate away every label.
    ShootEvents(EventsSli),
    /// A query returning the error ratio over `{{.window}}` (Sloth's `raw`).
    Raw(RawSli),
    /// A 0/1 series (1 = good) such as a probe.
    BoolGauge(BoolGaugeSli),
    /// A built-in SLI from the [catalog](super::catalog), by name.
    Catalog(String),
}

impl SliSpec {
    /// The key naming the kind (`events`, `shoot_events`, …).
    pub fn key(&self) -> &'static str {
        match self {
            Self::Events(_) => "events",
            Self::ShootEvents(_) => "shoot_events",
            Self::Raw(_) => "raw",
            Self::BoolGauge(_) => "bool_gauge",
            Self::Catalog(_) => "catalog",
        }
    }
}

/// The mapping form of [`SliSpec`] (serde_yaml_ng wants YAML tags for enums).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SliKeys {
    events: Option<EventsSli>,
    shoot_events: Option<EventsSli>,
    raw: Option<RawSli>,
    bool_gauge: Option<BoolGaugeSli>,
    catalog: Option<String>,
}

impl TryFrom<SliKeys> for SliSpec {
    type Error = String;

    fn try_from(k: SliKeys) -> Result<Self, String> {
        let mut kinds = Vec::new();
        if let Some(e) = k.events {
            kinds.push(Self::Events(e));
        }
        if let Some(e) = k.shoot_events {
            kinds.push(Self::ShootEvents(e));
        }
        if let Some(r) = k.raw {
            kinds.push(Self::Raw(r));
        }
        if let Some(b) = k.bool_gauge {
            kinds.push(Self::BoolGauge(b));
        }
        if let Some(c) = k.catalog {
            kinds.push(Self::Catalog(c));
        }
        match (kinds.pop(), kinds.is_empty()) {
            (Some(kind), true) => Ok(kind),
            _ => Err(
                "exactly one of `events`, `shoot_events`, `raw`, `bool_gauge`, `catalog` is required"
                    .to_owned(),
            ),
        }
    }
}

/// Event-based SLI.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsSli {
    /// Rate of bad events over `{{.window}}`.
    pub error_query: String,
    /// Rate of all events over `{{.window}}`.
    pub total_query: String,
}

/// Ratio SLI.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSli {
    /// Error ratio (0–1) over `{{.window}}`, aggregated `by ({{.by}})`.
    pub error_ratio_query: String,
}

/// 0/1 gauge SLI.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoolGaugeSli {
    /// Instant expression, one 0/1 series per probed thing (1 = good), without `{{.window}}`,
    /// carrying the grouping labels.
    pub expr: String,
}

/// Alerting of one SLO.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingSpec {
    /// Generate alerts at all. Default: true.
    pub enabled: bool,
    /// Alert name, shared by page and ticket alert (told apart by `sloth_severity`).
    /// Default: the service and SLO names in CamelCase + `ErrorBudgetBurn`.
    pub name: Option<String>,
    /// Labels of both alerts. Default: none.
    pub labels: BTreeMap<String, String>,
    /// Annotations of both alerts. Default: none.
    pub annotations: BTreeMap<String, String>,
    /// Page alert settings.
    pub page: AlertSeveritySpec,
    /// Ticket alert settings.
    pub ticket: AlertSeveritySpec,
    /// Add `severity: page|ticket` to the alerts for routing (unless set in `labels`).
    /// Default: true. The Sloth importer turns it off to reproduce Sloth's output exactly.
    pub severity_label: bool,
    /// Multiwindow multi-burn-rate windows. Default: SRE workbook (page 1h/5m at 2 % of the
    /// budget, 6h/30m at 5 %, ticket 1d/2h and 3d/6h at 10 %).
    pub windows: Option<Vec<AlertWindow>>,
}

impl Default for AlertingSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            name: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            page: AlertSeveritySpec::default(),
            ticket: AlertSeveritySpec::default(),
            severity_label: true,
            windows: None,
        }
    }
}

/// Settings of the page or the ticket alert.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertSeveritySpec {
    /// Generate this alert. Default: true.
    pub enabled: bool,
    /// Extra labels. Default: none.
    pub labels: BTreeMap<String, String>,
    /// Extra annotations. Default: none.
    pub annotations: BTreeMap<String, String>,
    /// Full outage each window of a pair of this severity must hold before it fires: both
    /// windows' thresholds are raised to at least this share of their length, so an SLI counted
    /// once a minute needs that many bad minutes within the short window (read exactly from the
    /// events) rather than one. Default: none (the burn-rate thresholds alone).
    pub min_outage: Option<PromDuration>,
}

impl Default for AlertSeveritySpec {
    fn default() -> Self {
        Self {
            enabled: true,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            min_outage: None,
        }
    }
}

/// Alertmanager routing settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertmanagerSpec {
    /// Receiver name for page alerts. Default: `slo-page`.
    pub page_receiver: String,
    /// Receiver name for ticket alerts. Default: `slo-ticket`.
    pub ticket_receiver: String,
    /// Receiver for everything else. Default: `slo-default`.
    pub default_receiver: String,
    /// Alertmanager `receivers` entries, copied verbatim. Default: the three names above
    /// without integrations.
    pub receivers: Vec<serde_yaml_ng::Value>,
    /// `group_wait`. Default: 30s.
    pub group_wait: PromDuration,
    /// `group_interval`. Default: 5m.
    pub group_interval: PromDuration,
    /// `repeat_interval`. Default: 4h.
    pub repeat_interval: PromDuration,
}

impl Default for AlertmanagerSpec {
    fn default() -> Self {
        Self {
            page_receiver: "slo-page".to_owned(),
            ticket_receiver: "slo-ticket".to_owned(),
            default_receiver: "slo-default".to_owned(),
            receivers: Vec::new(),
            group_wait: PromDuration::from_secs(30),
            group_interval: PromDuration::from_secs(300),
            repeat_interval: PromDuration::from_secs(4 * 3600),
        }
    }
}

/// `SLOGatewaySeedSilent`: a seed that pushes through the receiver has not pushed for
/// `threshold`. Survives receiver restarts (the receiver's per-seed gauge vanishes then): the
/// last push is remembered for `lookback`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeedSilentSpec {
    /// Generate the alert. Default: true.
    pub enabled: bool,
    /// Age of the last push that fires the alert. Default: 5m.
    pub threshold: PromDuration,
    /// How long a seed's last push is remembered; a seed silent for longer is forgotten (and
    /// its alert resolves). Default: 7d.
    pub lookback: PromDuration,
    /// `page` or `ticket`. Default: page (it inhibits the seed's per-shoot pages, so a seed
    /// outage is one page).
    pub severity: Severity,
    /// Keep firing this long after the seed is back, so that its shoots' burn-rate alerts the
    /// outage caused stay inhibited until they clear. Default: the longest short window of any
    /// page alert.
    pub keep_firing_for: Option<PromDuration>,
    /// A pushing seed counts as reporting while its last push is younger than this; after it,
    /// its shoots' minutes are unknown (left out of every per-shoot SLI) until it pushes again.
    /// Must be under 5m, Prometheus' lookback: a stopped agent's series stay visible that long
    /// after their last sample, which with `honor_timestamps` is older than the push. Default: 2m.
    pub reporting_within: PromDuration,
}

impl Default for SeedSilentSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold: PromDuration::from_secs(300),
            lookback: PromDuration::from_secs(7 * 86400),
            severity: Severity::Page,
            keep_firing_for: None,
            reporting_within: PromDuration::from_secs(120),
        }
    }
}

/// `SLOGatewaySeedClockSkew`: the clock of a seed's agent and the receiver's differ (the
/// receivers' `slo_gateway_receiver_clock_skew_seconds`), or the receivers count samples from
/// the future (`slo_gateway_receiver_skewed_samples_total{direction="future"}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeedClockSkewSpec {
    /// Generate the alert. Default: true.
    pub enabled: bool,
    /// Skew (either direction) that fires it. Default: 1m.
    pub threshold: PromDuration,
    /// How long the skew must last (a catch-up after an outage is not a skew). Default: 10m.
    #[serde(rename = "for")]
    pub for_: PromDuration,
    /// `page` or `ticket`. Default: ticket (the seed's data is late or refused, nothing is down).
    pub severity: Severity,
}

impl Default for SeedClockSkewSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold: PromDuration::from_secs(60),
            for_: PromDuration::from_secs(600),
            severity: Severity::Ticket,
        }
    }
}

/// `SLOGatewaySeedUnreachable`: the SLO Prometheus cannot federate a reachable seed's
/// prometheus-aggregate (`up == 0` of every target of the seed).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeedUnreachableSpec {
    /// Generate the alert. Default: true.
    pub enabled: bool,
    /// Scrape jobs of the SLO Prometheus that federate the seeds' prometheus-aggregate; each
    /// target must carry the label `seed: <seed name>`. Default: `[prometheus-aggregate]`.
    pub jobs: Vec<String>,
    /// How long the federation must fail before the alert fires. Default: 5m.
    pub threshold: PromDuration,
    /// `page` or `ticket`. Default: page.
    pub severity: Severity,
    /// As for `seed_silent`. Default: the longest short window of any page alert.
    pub keep_firing_for: Option<PromDuration>,
}

impl Default for SeedUnreachableSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            jobs: vec!["prometheus-aggregate".to_owned()],
            threshold: PromDuration::from_secs(300),
            severity: Severity::Page,
            keep_firing_for: None,
        }
    }
}

/// `SLOGatewaySeedUncovered`: the garden lists shoots on a seed that should have a shoot
/// Prometheus (`slo:shoot:expected{source="shoot"}`), but no path has delivered the seed's data
/// within `seed_silent.lookback`: no agent pushes for it and neither the SLO Prometheus nor
/// prometheus-garden federates it. A new seed is covered without a hand edit when it is either
/// labelled `seed.gardener.cloud/network=private` (the agent registration installs the agent)
/// or has an ingress (gardener-operator adds it to prometheus-garden's federation, which the SLO
/// Prometheus reads); this alert names the seeds that are neither.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeedUncoveredSpec {
    /// Generate the alert (needs a per-shoot SLO, which records the shared state). Default: true.
    pub enabled: bool,
    /// How long a seed must stay uncovered. Longer than gardener-operator's Garden sync period
    /// (1h by default), after which prometheus-garden federates a new reachable seed. Default: 75m.
    pub threshold: PromDuration,
    /// `page` or `ticket`. Default: page (it inhibits the seed's SLO alerts, like the other seed
    /// alerts).
    pub severity: Severity,
}

impl Default for SeedUncoveredSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold: PromDuration::from_secs(75 * 60),
            severity: Severity::Page,
        }
    }
}

/// Metadata of a generated `PrometheusRule`.
#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusRuleMeta<'a> {
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.namespace`, if any.
    pub namespace: Option<&'a str>,
    /// `metadata.labels` (the Prometheus' `ruleSelector`), without the managed-by label.
    pub labels: &'a BTreeMap<String, String>,
}

/// Rules for every shoot's Prometheus (GEP-0041's shoot tier).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShootTierSpec {
    /// Range of the `rate`s every event input is recorded with (shoot tier, and runtime
    /// `events` and garden SLIs). At least 4 × the slowest scrape interval on the way; windows
    /// shorter than it reflect its length. Default: 5m.
    pub range: PromDuration,
    /// `interval` of the rule group. Default: none (the Prometheus' evaluation interval).
    pub interval: Option<PromDuration>,
    /// `metadata.name` of the `PrometheusRule`. Default: `shoot-slo-gateway-slis`.
    pub prometheus_rule_name: String,
    /// `metadata.namespace`. Default: none: apply it to every `shoot--<project>--<name>`
    /// namespace.
    pub prometheus_rule_namespace: Option<String>,
    /// `metadata.labels`: what the shoot Prometheus' `ruleSelector` selects
    /// (`app.kubernetes.io/managed-by: slo-gateway` is always added). Default: `prometheus: shoot`,
    /// the label Gardener gives every config object of its shoot Prometheus.
    pub prometheus_rule_labels: BTreeMap<String, String>,
}

impl Default for ShootTierSpec {
    fn default() -> Self {
        Self {
            range: PromDuration::from_secs(300),
            interval: None,
            prometheus_rule_name: "shoot-slo-gateway-slis".to_owned(),
            prometheus_rule_namespace: None,
            prometheus_rule_labels: BTreeMap::from([("prometheus".to_owned(), "shoot".to_owned())]),
        }
    }
}

impl ShootTierSpec {
    /// The `PrometheusRule` metadata.
    pub fn rule_meta(&self) -> PrometheusRuleMeta<'_> {
        PrometheusRuleMeta {
            name: &self.prometheus_rule_name,
            namespace: self.prometheus_rule_namespace.as_deref(),
            labels: &self.prometheus_rule_labels,
        }
    }
}

/// Rules for the SLO Prometheus (GEP-0041's runtime tier).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeTierSpec {
    /// `interval` of the rule groups. Default: none (the Prometheus' evaluation interval).
    pub interval: Option<PromDuration>,
    /// `metadata.name` of the `PrometheusRule`. Default: `slo-gateway-slos`.
    pub prometheus_rule_name: String,
    /// `metadata.namespace` (`null`: none). Default: `slo-prometheus`, as
    /// `deploy/slo-prometheus/prometheus-operator.yaml`.
    pub prometheus_rule_namespace: Option<String>,
    /// `metadata.labels` (`app.kubernetes.io/managed-by: slo-gateway` is always added).
    /// Default: `prometheus: slo`, what the shipped SLO Prometheus' `ruleSelector` selects.
    pub prometheus_rule_labels: BTreeMap<String, String>,
    /// Also record every alert window's `slo:sli_error:ratio_rate<w>` and Sloth's per-group
    /// `slo:current_burn_rate:ratio`, `slo:period_burn_rate:ratio` and
    /// `slo:period_error_budget_remaining:ratio` for counted SLIs (11 more series per shoot
    /// and SLO with the default windows; for small landscapes and Sloth dashboards). Alerts and
    /// the generated dashboards compute the windows themselves either way. Default: false (per
    /// shoot and SLO: events, rollups and the period's error ratio only).
    pub record_windows: bool,
}

impl Default for RuntimeTierSpec {
    fn default() -> Self {
        Self {
            interval: None,
            prometheus_rule_name: "slo-gateway-slos".to_owned(),
            prometheus_rule_namespace: Some("slo-prometheus".to_owned()),
            prometheus_rule_labels: BTreeMap::from([("prometheus".to_owned(), "slo".to_owned())]),
            record_windows: false,
        }
    }
}

impl RuntimeTierSpec {
    /// The `PrometheusRule` metadata.
    pub fn rule_meta(&self) -> PrometheusRuleMeta<'_> {
        PrometheusRuleMeta {
            name: &self.prometheus_rule_name,
            namespace: self.prometheus_rule_namespace.as_deref(),
            labels: &self.prometheus_rule_labels,
        }
    }
}

/// Perses dashboards.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardsSpec {
    /// Name of the Perses `PrometheusDatasource` the queries use. Default: none (the project's
    /// default datasource).
    pub datasource: Option<String>,
    /// `metadata.namespace` of the `PersesDashboard`s. Default: none.
    pub namespace: Option<String>,
}

/// The output-wide sections, each from the one spec that sets it, else its default.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Globals {
    /// `alertmanager`.
    pub alertmanager: AlertmanagerSpec,
    /// `seed_silent`.
    pub seed_silent: SeedSilentSpec,
    /// `seed_unreachable`.
    pub seed_unreachable: SeedUnreachableSpec,
    /// `seed_uncovered`.
    pub seed_uncovered: SeedUncoveredSpec,
    /// `seed_clock_skew`.
    pub seed_clock_skew: SeedClockSkewSpec,
    /// `shoot_tier`.
    pub shoot_tier: ShootTierSpec,
    /// `runtime_tier`.
    pub runtime_tier: RuntimeTierSpec,
    /// `dashboards`.
    pub dashboards: DashboardsSpec,
}

impl Globals {
    /// Collects the sections from `specs` (the first that sets each; checking specs given
    /// together makes sure at most one does).
    pub fn from_specs<'a>(specs: impl IntoIterator<Item = &'a Spec> + Clone) -> Self {
        fn first<'a, T: Clone + Default>(
            specs: impl IntoIterator<Item = &'a Spec>,
            get: impl Fn(&Spec) -> &Option<T>,
        ) -> T {
            specs
                .into_iter()
                .find_map(|s| get(s).clone())
                .unwrap_or_default()
        }
        Self {
            alertmanager: first(specs.clone(), |s| &s.alertmanager),
            seed_silent: first(specs.clone(), |s| &s.seed_silent),
            seed_unreachable: first(specs.clone(), |s| &s.seed_unreachable),
            seed_uncovered: first(specs.clone(), |s| &s.seed_uncovered),
            seed_clock_skew: first(specs.clone(), |s| &s.seed_clock_skew),
            shoot_tier: first(specs.clone(), |s| &s.shoot_tier),
            runtime_tier: first(specs.clone(), |s| &s.runtime_tier),
            dashboards: first(specs, |s| &s.dashboards),
        }
    }
}

/// How many output-wide sections there are.
pub(crate) const GLOBAL_SECTIONS: usize = 8;

/// `(key, is set)` of every output-wide section, for the at-most-once check.
pub(crate) fn global_sections(spec: &Spec) -> [(&'static str, bool); GLOBAL_SECTIONS] {
    [
        ("alertmanager", spec.alertmanager.is_some()),
        ("seed_silent", spec.seed_silent.is_some()),
        ("seed_unreachable", spec.seed_unreachable.is_some()),
        ("seed_uncovered", spec.seed_uncovered.is_some()),
        ("seed_clock_skew", spec.seed_clock_skew.is_some()),
        ("shoot_tier", spec.shoot_tier.is_some()),
        ("runtime_tier", spec.runtime_tier.is_some()),
        ("dashboards", spec.dashboards.is_some()),
    ]
}
