//! Our SLO spec format (`slo-gateway/v1`): types, parsing and validation with file:line errors.
//!
//! Parsing has two stages. serde rejects what is structurally wrong (unknown keys, wrong types,
//! bad durations) with the line serde_yaml_ng reports; that stops at the first such error. A
//! structurally valid spec is then checked as a whole, and every semantic error is reported,
//! each located by looking up its key path in a small index of the YAML text.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;

use super::catalog;
use super::duration::PromDuration;
use super::model::{default_windows, Severity, Slo};
use super::promql;

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
    /// Labels every SLI aggregates by, so each combination (e.g. each shoot) gets its own SLO
    /// series and alerts. Default: `[cluster, seed]`.
    #[serde(default = "default_grouping")]
    pub grouping: Vec<String>,
    /// The SLOs of the service (at least one).
    pub slos: Vec<SloSpec>,
    /// Alertmanager routing. At most one of the spec files given together may set it.
    /// Default: the receivers `slo-page`, `slo-ticket`, `slo-default` without integrations.
    #[serde(default)]
    pub alertmanager: Option<AlertmanagerSpec>,
    /// The "seed silent" alert on the receiver's freshness metric. At most one of the spec
    /// files given together may set it. Default: enabled, threshold 5m, severity ticket.
    #[serde(default)]
    pub seed_silent: Option<SeedSilentSpec>,
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
    /// SLO period. Default: `28d` (GEP-0041).
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
    /// Bad events over all events; both queries contain `{{.window}}` (Sloth's `events`).
    Events(EventsSli),
    /// A query returning the error ratio over `{{.window}}` (Sloth's `raw`).
    Raw(RawSli),
    /// A 0/1 series (1 = good) such as a probe: error ratio over w is `1 − avg_over_time(x[w])`.
    BoolGauge(BoolGaugeSli),
    /// A built-in SLI from the [catalog](super::catalog), by name.
    Catalog(String),
}

/// The mapping form of [`SliSpec`] (serde_yaml_ng wants YAML tags for enums).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SliKeys {
    events: Option<EventsSli>,
    raw: Option<RawSli>,
    bool_gauge: Option<BoolGaugeSli>,
    catalog: Option<String>,
}

impl TryFrom<SliKeys> for SliSpec {
    type Error = String;

    fn try_from(k: SliKeys) -> Result<Self, String> {
        match (k.events, k.raw, k.bool_gauge, k.catalog) {
            (Some(e), None, None, None) => Ok(Self::Events(e)),
            (None, Some(r), None, None) => Ok(Self::Raw(r)),
            (None, None, Some(b), None) => Ok(Self::BoolGauge(b)),
            (None, None, None, Some(c)) => Ok(Self::Catalog(c)),
            _ => Err(
                "exactly one of `events`, `raw`, `bool_gauge`, `catalog` is required".to_owned(),
            ),
        }
    }
}

/// Event-based SLI.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsSli {
    /// Rate of bad events over `{{.window}}`, aggregated `by ({{.by}})`.
    pub error_query: String,
    /// Rate of all events over `{{.window}}`, aggregated `by ({{.by}})`.
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
    /// Instant expression, one 0/1 series per probed thing (1 = good), without `{{.window}}`.
    /// A bare selector is averaged with `avg_over_time(x[w])`; any other expression through a
    /// subquery with 1m resolution.
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
    pub windows: Option<Vec<AlertWindowSpec>>,
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
}

impl Default for AlertSeveritySpec {
    fn default() -> Self {
        Self {
            enabled: true,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }
    }
}

/// One window pair of a multiwindow multi-burn-rate alert.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertWindowSpec {
    /// `page` or `ticket`.
    pub severity: Severity,
    /// Share of the period's error budget (percent) that, spent within `long`, fires the alert.
    pub budget_percent: f64,
    /// Long window.
    pub long: PromDuration,
    /// Short window (the alert resets quickly once the problem is gone); usually `long / 12`.
    pub short: PromDuration,
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

/// The "seed silent" alert: fires when a seed has not pushed for `threshold`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeedSilentSpec {
    /// Generate the alert. Default: true.
    pub enabled: bool,
    /// Age of the last push (from `slo_gateway_receiver_last_push_timestamp_seconds`) that
    /// fires the alert. Default: 5m.
    pub threshold: PromDuration,
    /// `page` or `ticket`. Default: ticket.
    pub severity: Severity,
}

impl Default for SeedSilentSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold: PromDuration::from_secs(300),
            severity: Severity::Ticket,
        }
    }
}

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// The spec is unusable.
    Error,
    /// The spec works but probably not as intended.
    Warning,
}

/// A finding in a spec file, with its place.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// File name as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// Error or warning.
    pub level: Level,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        write!(f, "{}:{}: {level}: {}", self.file, self.line, self.message)
    }
}

/// Why specs could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// File name as given.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// One or more errors in the specs (warnings are included for context).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
}

/// A parsed, valid spec with the warnings found and what is needed to locate findings later.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    /// File name as given.
    pub file: String,
    /// The spec.
    pub spec: Spec,
    /// Warnings (e.g. alerts that can never fire).
    pub warnings: Vec<Diagnostic>,
    lines: BTreeMap<String, usize>,
}

impl LoadedSpec {
    /// Validates a spec built by an importer from `text`; findings are located by their key
    /// path in `text` (which works where the source format uses the same keys).
    pub fn from_spec(file: &str, text: &str, spec: Spec) -> Result<Self, SpecError> {
        finish(file, spec, line_index(text))
    }
}

/// Deserialises YAML, turning a serde error into a located [`Diagnostic`].
pub(crate) fn from_yaml<T: serde::de::DeserializeOwned>(
    file: &str,
    text: &str,
) -> Result<T, SpecError> {
    serde_yaml_ng::from_str(text).map_err(|e| yaml_error(file, &e))
}

/// A serde_yaml_ng error as a located [`SpecError`].
pub(crate) fn yaml_error(file: &str, e: &serde_yaml_ng::Error) -> SpecError {
    let line = e.location().map_or(1, |l| l.line());
    let msg = e.to_string();
    // serde_yaml_ng appends " at line L column C"; we print the line in front already.
    let message = match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg,
    };
    SpecError::Invalid(vec![Diagnostic {
        file: file.to_owned(),
        line,
        level: Level::Error,
        message,
    }])
}

/// Errors given by key path, located in `text`.
pub(crate) fn located_errors(file: &str, text: &str, problems: Vec<(String, String)>) -> SpecError {
    let lines = line_index(text);
    SpecError::Invalid(
        problems
            .into_iter()
            .map(|(path, msg)| diag(file, &lines, &path, Level::Error, msg))
            .collect(),
    )
}

/// Reads and validates one spec file.
pub fn load_file(path: &std::path::Path) -> Result<LoadedSpec, SpecError> {
    let (file, text) = read(path)?;
    parse_str(&file, &text)
}

/// A file's name for messages and its text.
pub(crate) fn read(path: &std::path::Path) -> Result<(String, String), SpecError> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((file, text)),
        Err(source) => Err(SpecError::Read { file, source }),
    }
}

/// Parses and validates a spec given as text; `file` is used in messages.
pub fn parse_str(file: &str, text: &str) -> Result<LoadedSpec, SpecError> {
    let spec: Spec = from_yaml(file, text)?;
    let lines = line_index(text);
    if spec.version != SPEC_VERSION {
        let d = diag(
            file,
            &lines,
            "version",
            Level::Error,
            format!(
                "unsupported version {:?}: expected {SPEC_VERSION:?}",
                spec.version
            ),
        );
        return Err(SpecError::Invalid(vec![d]));
    }
    finish(file, spec, lines)
}

fn finish(file: &str, spec: Spec, lines: BTreeMap<String, usize>) -> Result<LoadedSpec, SpecError> {
    let findings = validate(&spec);
    let (errors, warnings): (Vec<_>, Vec<_>) = findings
        .into_iter()
        .map(|(path, level, msg)| diag(file, &lines, &path, level, msg))
        .partition(|d| d.level == Level::Error);
    if !errors.is_empty() {
        return Err(SpecError::Invalid(
            errors.into_iter().chain(warnings).collect(),
        ));
    }
    Ok(LoadedSpec {
        file: file.to_owned(),
        spec,
        warnings,
        lines,
    })
}

/// Checks the specs given together: SLO ids unique across files, at most one `alertmanager`
/// and one `seed_silent` section.
pub fn check_together(specs: &[LoadedSpec]) -> Result<(), SpecError> {
    let mut errors = Vec::new();
    // id → (index of the spec, its file); duplicates within one spec are reported by validate.
    let mut seen: BTreeMap<String, (usize, &str)> = BTreeMap::new();
    for (n, s) in specs.iter().enumerate() {
        for (i, slo) in s.spec.slos.iter().enumerate() {
            let id = format!("{}-{}", s.spec.service, slo.name);
            if let Some((first_n, first)) = seen.insert(id.clone(), (n, &s.file)) {
                if first_n != n {
                    errors.push(diag(
                        &s.file,
                        &s.lines,
                        &format!("slos[{i}].name"),
                        Level::Error,
                        format!("SLO id {id:?} is already defined in {first}"),
                    ));
                }
            }
        }
    }
    // Sections that configure the whole output: only one file may carry each.
    type IsSet = fn(&Spec) -> bool;
    let global: [(&str, IsSet); 2] = [
        ("alertmanager", |s| s.alertmanager.is_some()),
        ("seed_silent", |s| s.seed_silent.is_some()),
    ];
    for (key, is_set) in global {
        let mut setters = specs.iter().filter(|s| is_set(&s.spec));
        let first = setters.next();
        for s in setters {
            let first = first.map_or("", |f| f.file.as_str());
            errors.push(diag(&s.file, &s.lines, key, Level::Error,
                format!("`{key}` is already set in {first}: only one of the spec files given together may set it")));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(SpecError::Invalid(errors))
    }
}

fn diag(
    file: &str,
    lines: &BTreeMap<String, usize>,
    path: &str,
    level: Level,
    message: impl Into<String>,
) -> Diagnostic {
    Diagnostic {
        file: file.to_owned(),
        line: locate(lines, path),
        level,
        message: format!("{path}: {}", message.into()),
    }
}

/// The line of `path`, or of its nearest ancestor that is in the index.
fn locate(lines: &BTreeMap<String, usize>, path: &str) -> usize {
    let mut p = path;
    loop {
        if let Some(l) = lines.get(p) {
            return *l;
        }
        match p.rfind(['.', '[']) {
            Some(i) => p = &p[..i],
            None => return 1,
        }
    }
}

type Finding = (String, Level, String);

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Every semantic problem of one spec, with its key path.
fn validate(spec: &Spec) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    let mut err = |path: String, msg: String| out.push((path, Level::Error, msg));
    if !is_name(&spec.service) {
        err(
            "service".into(),
            format!("{:?} must be letters, digits, `-` or `_`", spec.service),
        );
    }
    if spec.slos.is_empty() {
        err("slos".into(), "at least one SLO is required".into());
    }
    check_labels(&spec.grouping, "grouping", &mut err);
    check_label_map(&spec.labels, "labels", &mut err);
    let mut names = BTreeSet::new();
    for (i, slo) in spec.slos.iter().enumerate() {
        let p = format!("slos[{i}]");
        if !is_name(&slo.name) {
            err(
                format!("{p}.name"),
                format!("{:?} must be letters, digits, `-` or `_`", slo.name),
            );
        } else if !names.insert(slo.name.as_str()) {
            err(
                format!("{p}.name"),
                format!("duplicate SLO name {:?}", slo.name),
            );
        }
        if !(slo.objective > 0.0 && slo.objective < 100.0) {
            err(
                format!("{p}.objective"),
                format!(
                    "objective {} must be a percentage strictly between 0 and 100",
                    slo.objective
                ),
            );
        }
        check_label_map(&slo.labels, &format!("{p}.labels"), &mut err);
        let grouping = slo.grouping.as_ref().unwrap_or(&spec.grouping);
        if let Some(g) = &slo.grouping {
            check_labels(g, &format!("{p}.grouping"), &mut err);
        }
        check_sli(&slo.sli, grouping, &format!("{p}.sli"), &mut err);
        if let Some(ws) = &slo.alerting.windows {
            for (j, w) in ws.iter().enumerate() {
                let wp = format!("{p}.alerting.windows[{j}]");
                if w.short >= w.long {
                    err(
                        format!("{wp}.short"),
                        "short window must be shorter than the long one".into(),
                    );
                }
                if !(w.budget_percent > 0.0 && w.budget_percent <= 100.0) {
                    err(format!("{wp}.budget_percent"), "must be in (0, 100]".into());
                }
                if w.long > slo.window {
                    err(
                        format!("{wp}.long"),
                        "long window exceeds the SLO window".into(),
                    );
                }
            }
        }
    }
    if let Some(am) = &spec.alertmanager {
        check_receivers(am, &mut err);
    }
    // Warnings need valid numbers; only look when there are no errors.
    if out.is_empty() {
        for (i, slo) in spec.slos.iter().enumerate() {
            let windows = slo.alerting.windows.clone().unwrap_or_else(default_windows);
            if !slo.alerting.enabled {
                continue;
            }
            for w in &windows {
                let factor = Slo::burn_factor(w, slo.window);
                let threshold = factor * (1.0 - slo.objective / 100.0);
                if threshold >= 1.0 {
                    out.push((format!("slos[{i}].objective"), Level::Warning, format!(
                        "the {} alert on {}/{} can never fire: burn-rate factor {} × error budget {} = {} ≥ 1",
                        w.severity.as_str(), w.long, w.short, round(factor), round(1.0 - slo.objective / 100.0), round(threshold))));
                }
            }
        }
    }
    out
}

fn check_receivers(am: &AlertmanagerSpec, err: &mut impl FnMut(String, String)) {
    if am.receivers.is_empty() {
        return;
    }
    let mut names = BTreeSet::new();
    for (i, r) in am.receivers.iter().enumerate() {
        let name = r
            .as_mapping()
            .filter(|m| m.keys().all(|k| k.is_string()))
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str());
        match name {
            Some(n) => {
                names.insert(n);
            }
            None => err(
                format!("alertmanager.receivers[{i}]"),
                "a receiver is a mapping with string keys and a `name`".into(),
            ),
        }
    }
    for (key, name) in [
        ("page_receiver", &am.page_receiver),
        ("ticket_receiver", &am.ticket_receiver),
        ("default_receiver", &am.default_receiver),
    ] {
        if !names.contains(name.as_str()) {
            err(
                format!("alertmanager.{key}"),
                format!("receiver {name:?} is not in `receivers`"),
            );
        }
    }
}

/// For messages: 6 significant decimals, no float noise (0.09999999999999998 → 0.1).
fn round(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn check_labels(labels: &[String], path: &str, err: &mut impl FnMut(String, String)) {
    for (i, l) in labels.iter().enumerate() {
        if !is_label_name(l) || l.starts_with("__") {
            err(
                format!("{path}[{i}]"),
                format!("{l:?} is not a valid label name"),
            );
        }
    }
}

fn check_label_map(
    labels: &BTreeMap<String, String>,
    path: &str,
    err: &mut impl FnMut(String, String),
) {
    for k in labels.keys() {
        if !is_label_name(k) || k.starts_with("__") {
            err(
                format!("{path}.{k}"),
                format!("{k:?} is not a valid label name"),
            );
        }
    }
}

fn check_sli(sli: &SliSpec, grouping: &[String], path: &str, err: &mut impl FnMut(String, String)) {
    let windowed = |q: &str, key: &str, err: &mut dyn FnMut(String, String)| {
        let p = format!("{path}.{key}");
        match promql::template_vars(q) {
            Err(e) => return err(p, e),
            Ok(vars) if !vars.iter().any(|v| v == promql::WINDOW_VAR) => {
                return err(
                    p,
                    "query must contain `{{.window}}` (e.g. `rate(x[{{.window}}])`)".into(),
                )
            }
            Ok(_) => {}
        }
        match promql::parse(&promql::expand(q, "5m", grouping)) {
            Err(e) => err(p, format!("invalid PromQL: {}", e.trim())),
            Ok(expr) => {
                // Without grouping labels anything goes (Sloth specs, landscape-wide SLIs).
                if grouping.is_empty() {
                    return;
                }
                if let Err(e) = promql::check_aggregates_by(&expr, grouping) {
                    err(p, e);
                }
            }
        }
    };
    match sli {
        SliSpec::Events(e) => {
            windowed(&e.error_query, "events.error_query", err);
            windowed(&e.total_query, "events.total_query", err);
        }
        SliSpec::Raw(r) => windowed(&r.error_ratio_query, "raw.error_ratio_query", err),
        SliSpec::BoolGauge(b) => {
            let p = format!("{path}.bool_gauge.expr");
            match promql::template_vars(&b.expr) {
                Err(e) => err(p, e),
                Ok(vars) if vars.iter().any(|v| v == promql::WINDOW_VAR) => err(
                    p,
                    "a bool_gauge expression is instant: drop `{{.window}}`, the window is applied for you".into(),
                ),
                Ok(_) => {
                    if let Err(e) = promql::parse(&promql::expand(&b.expr, "5m", grouping)) {
                        err(p, format!("invalid PromQL: {}", e.trim()));
                    }
                }
            }
        }
        SliSpec::Catalog(name) => {
            if catalog::lookup(name).is_none() {
                err(
                    format!("{path}.catalog"),
                    format!(
                        "unknown catalog SLI {name:?}; known: {}",
                        catalog::names().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        }
    }
}

/// Maps key paths (`slos[1].sli.events.error_query`) to 1-based lines, for block-style YAML.
///
/// Enough for locating findings: flow collections and multi-line scalars are not descended
/// into, and anything not found falls back to its nearest indexed ancestor.
fn line_index(text: &str) -> BTreeMap<String, usize> {
    struct Frame {
        indent: usize,
        path: String,
        is_item: bool,
        items: usize,
    }
    let mut index = BTreeMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    // Lines indented deeper than this belong to a scalar value, not to keys.
    let mut scalar_above: Option<usize> = None;
    for (n, raw) in text.lines().enumerate() {
        let line_no = n + 1;
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
            continue;
        }
        let indent = raw.len() - trimmed.len();
        if let Some(limit) = scalar_above {
            if indent > limit {
                continue;
            }
            scalar_above = None;
        }
        let mut col = indent;
        let mut rest = trimmed;
        if rest == "-" || rest.starts_with("- ") {
            while stack
                .last()
                .is_some_and(|f| f.indent > col || (f.indent == col && f.is_item))
            {
                stack.pop();
            }
            let (parent, idx) = match stack.last_mut() {
                Some(f) => {
                    f.items += 1;
                    (f.path.clone(), f.items - 1)
                }
                None => (String::new(), 0),
            };
            let path = format!("{parent}[{idx}]");
            index.insert(path.clone(), line_no);
            stack.push(Frame {
                indent: col,
                path,
                is_item: true,
                items: 0,
            });
            let after = rest[1..].trim_start();
            col += rest.len() - after.len();
            rest = after;
            if rest.is_empty() {
                continue;
            }
        } else {
            while stack.last().is_some_and(|f| f.indent >= col) {
                stack.pop();
            }
        }
        let Some((key, value)) = split_key(rest) else {
            scalar_above = Some(col.saturating_sub(1));
            continue;
        };
        let parent = stack.last().map_or("", |f| f.path.as_str());
        let path = if parent.is_empty() {
            key.to_owned()
        } else {
            format!("{parent}.{key}")
        };
        index.insert(path.clone(), line_no);
        stack.push(Frame {
            indent: col,
            path,
            is_item: false,
            items: 0,
        });
        let value = value.trim();
        if !value.is_empty() && !value.starts_with('#') {
            scalar_above = Some(col);
        }
    }
    index
}

/// `key: value` → (key without quotes, value); None when the line is no mapping entry.
fn split_key(s: &str) -> Option<(&str, &str)> {
    let (key, rest) = if let Some(q) = s.strip_prefix('"').or_else(|| s.strip_prefix('\'')) {
        let end = q.find(['"', '\''])?;
        (&q[..end], q[end + 1..].strip_prefix(':')?)
    } else {
        let i = s
            .find(": ")
            .or_else(|| s.strip_suffix(':').map(|k| k.len()))?;
        (&s[..i], &s[i + 1..])
    };
    if key.is_empty() || key.starts_with(['{', '[']) {
        return None;
    }
    Some((key, rest))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn index_finds_nested_keys() {
        let text = "version: v\nslos:\n- name: a\n  sli:\n    events:\n      error_query: |\n        x: y\n      total_query: z\n- name: b\n  objective: 3\n";
        let idx = line_index(text);
        assert_eq!(idx.get("slos[0].name"), Some(&3));
        assert_eq!(idx.get("slos[0].sli.events.error_query"), Some(&6));
        assert_eq!(idx.get("slos[0].sli.events.total_query"), Some(&8));
        assert_eq!(idx.get("slos[1].objective"), Some(&10));
        assert_eq!(locate(&idx, "slos[1].sli.catalog"), 9);
    }
}
