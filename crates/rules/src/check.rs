//! Checking specs: every semantic problem of one spec (`validate`) and of specs given
//! together ([`check_together`]), each with its key path.
//!
//! Besides names, numbers and PromQL, the checks enforce GEP-0041's two tiers: shoot-tier
//! queries must not use labels a shoot Prometheus only adds on the way out, and every series a
//! runtime rule reads must be able to reach the SLO Prometheus ([`crate::sources`]).
//!
//! Checks need the parsed spec ([`crate::spec`]) and its resolution ([`crate::model`]); the
//! loader ([`crate::load`]) runs them on every spec it parses.

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::{self, Groupable};
use crate::duration::PromDuration;
use crate::model::{self, Slo};
use crate::promql;
use crate::render::prometheus::{window_threshold, DEFAULT_INTERVAL};
use crate::sources;
use crate::spec::diagnostics::{Diagnostic, Finding, Level, Locator, SpecError};
use crate::spec::{
    global_sections, AlertmanagerSpec, Globals, LoadedSpec, SliSpec, Spec, GLOBAL_SECTIONS,
};
use crate::types::{default_windows, Severity, Sli, SLOTH_VERSION};

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

/// Every semantic problem of one spec, with its key path.
pub(crate) fn validate(spec: &Spec) -> Vec<Finding> {
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
    let unreleased = catalog::unreleased_metrics();
    for (i, m) in spec.available_metrics.iter().enumerate() {
        if !unreleased.contains(&m.as_str()) {
            err(
                format!("available_metrics[{i}]"),
                format!(
                    "{m:?} is no metric a catalog SLI waits for; known: {}",
                    unreleased.join(", ")
                ),
            );
        }
    }
    if let Err((i, e)) = sources::local_regexes(&spec.local_metrics) {
        err(format!("local_metrics[{i}]"), format!("invalid regex: {e}"));
    }
    let sloth = spec.version == SLOTH_VERSION;
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
        let sli = SliCheck {
            grouping,
            path: format!("{p}.sli"),
            // Sloth's specs aggregate as they like (they have no grouping labels).
            exact: !sloth,
        };
        sli.check(&slo.sli, spec, &mut err);
        for (key, meta) in [
            ("page", &slo.alerting.page),
            ("ticket", &slo.alerting.ticket),
        ] {
            if meta.min_outage.is_some_and(|d| d.as_secs() < 2) {
                err(
                    format!("{p}.alerting.{key}.min_outage"),
                    "must be at least 2s".into(),
                );
            }
        }
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
    check_globals(spec, &mut err);
    // Reachability and warnings need a valid spec; only look when there are no errors.
    if out.is_empty() {
        let reach = reachability(spec);
        let level = if sloth {
            // Sloth specs come from single-Prometheus setups: say it, do not refuse them.
            Level::Warning
        } else {
            Level::Error
        };
        out.extend(reach.into_iter().map(|(p, m)| (p, level, m)));
        out.extend(never_firing(spec));
    }
    out
}

/// Warnings for alerts whose threshold is ≥ 1 (an error ratio never exceeds 1), and for page
/// alerts of SLIs counted once per evaluation that one bad evaluation fires.
fn never_firing(spec: &Spec) -> Vec<Finding> {
    let mut out = Vec::new();
    let interval = spec
        .runtime_tier
        .as_ref()
        .and_then(|t| t.interval)
        .unwrap_or(DEFAULT_INTERVAL);
    for (i, slo) in spec.slos.iter().enumerate() {
        if !slo.alerting.enabled {
            continue;
        }
        let windows = slo.alerting.windows.clone().unwrap_or_else(default_windows);
        let once_per_evaluation = matches!(&slo.sli, SliSpec::BoolGauge(_))
            || matches!(&slo.sli, SliSpec::Catalog(c) if c == "apiserver-availability");
        for w in &windows {
            let factor = w.burn_factor(slo.window);
            let budget = 1.0 - slo.objective / 100.0;
            let meta = match w.severity {
                Severity::Page => &slo.alerting.page,
                Severity::Ticket => &slo.alerting.ticket,
            };
            let threshold =
                |win| window_threshold(factor, budget, meta.min_outage, win, interval).1;
            let one_bad = |win: PromDuration| interval.as_secs() as f64 / win.as_secs() as f64;
            if once_per_evaluation
                && meta.enabled
                && w.severity == Severity::Page
                && threshold(w.long) < one_bad(w.long)
                && threshold(w.short) < one_bad(w.short)
            {
                out.push((
                    format!("slos[{i}].alerting.page"),
                    Level::Warning,
                    format!(
                        "the page alert on {}/{} fires on a single bad evaluation: its threshold {} is below one {interval} evaluation of the {} window; set `min_outage` (e.g. 3m) to page on sustained outages only",
                        w.long,
                        w.short,
                        round(threshold(w.long)),
                        w.long
                    ),
                ));
            }
            let never = [w.long, w.short]
                .into_iter()
                .find(|win| threshold(*win) >= 1.0);
            if let Some(win) = never {
                out.push((
                    format!("slos[{i}].objective"),
                    Level::Warning,
                    if factor * budget < 1.0 {
                        format!(
                            "the {} alert on {}/{} can never fire: min_outage {} fills its {win} window",
                            w.severity.as_str(),
                            w.long,
                            w.short,
                            meta.min_outage.map(|d| d.to_string()).unwrap_or_default(),
                        )
                    } else {
                        format!(
                            "the {} alert on {}/{} can never fire: burn-rate factor {} × error budget {} = {} ≥ 1",
                            w.severity.as_str(),
                            w.long,
                            w.short,
                            round(factor),
                            round(budget),
                            round(factor * budget)
                        )
                    },
                ));
            }
        }
    }
    out
}

/// Every runtime input of `spec` that cannot reach the SLO Prometheus, as `(path, message)`.
fn reachability(spec: &Spec) -> Vec<(String, String)> {
    let Ok(local) = sources::local_regexes(&spec.local_metrics) else {
        return Vec::new();
    };
    let globals = Globals::from_specs([spec]);
    let slos = model::resolve(spec, globals.shoot_tier.range);
    let mut out = Vec::new();
    for (i, (slo, slo_spec)) in slos.iter().zip(&spec.slos).enumerate() {
        let path = format!("slos[{i}].sli.{}", slo_spec.sli.key());
        // selector → (metric, rules reading it)
        let mut read: BTreeMap<String, (Option<String>, Vec<String>)> = BTreeMap::new();
        for (rule, query) in slo.runtime_inputs() {
            let Ok(expr) = promql::parse(&query) else {
                continue;
            };
            for selector in promql::selectors(&expr) {
                let entry = read
                    .entry(selector.text)
                    .or_insert_with(|| (selector.metric, Vec::new()));
                if !entry.1.contains(&rule) {
                    entry.1.push(rule.clone());
                }
            }
        }
        for (selector, (metric, rules)) in read {
            let rules = rules
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let problem = match metric {
                Some(m) if crate::state::is_state(&m) => continue,
                None => format!(
                    "runtime rule {rules} of SLO {:?} reads `{selector}`, which names no metric: name it (`metric{{…}}`) so that its way into the SLO Prometheus can be checked",
                    slo.id
                ),
                Some(m) if sources::classify(&m, &local).is_none() => format!(
                    "runtime rule {rules} of SLO {:?} reads `{selector}`, which cannot reach the SLO Prometheus ({}). Compute it in every shoot's Prometheus (`shoot_events`), or list it in `local_metrics` if the SLO Prometheus scrapes it itself",
                    slo.id,
                    sources::reachable_summary()
                ),
                Some(_) => continue,
            };
            out.push((path.clone(), problem));
        }
    }
    out
}

fn check_globals(spec: &Spec, err: &mut impl FnMut(String, String)) {
    if let Some(am) = &spec.alertmanager {
        check_receivers(am, err);
    }
    if let Some(s) = &spec.seed_silent {
        if s.lookback <= s.threshold {
            err(
                "seed_silent.lookback".into(),
                format!(
                    "must be longer than the threshold {}: a seed is remembered only this long",
                    s.threshold
                ),
            );
        }
        if s.reporting_within.as_secs() == 0 || s.reporting_within.as_secs() >= 300 {
            err(
                "seed_silent.reporting_within".into(),
                "must be between 0s and 5m: a stopped agent's series stay visible for 5m (Prometheus' lookback) after their last sample, and its shoots' minutes must be unknown before that".into(),
            );
        }
    }
    if let Some(k) = &spec.seed_clock_skew {
        if k.threshold.as_secs() == 0 {
            err(
                "seed_clock_skew.threshold".into(),
                "must be longer than 0s".into(),
            );
        }
    }
    if let Some(u) = &spec.seed_unreachable {
        if u.enabled && u.jobs.is_empty() {
            err(
                "seed_unreachable.jobs".into(),
                "at least one scrape job is required (or `enabled: false`)".into(),
            );
        }
        for (i, j) in u.jobs.iter().enumerate() {
            if j.is_empty() || j.contains('"') || j.contains('\\') {
                err(
                    format!("seed_unreachable.jobs[{i}]"),
                    format!("{j:?} is not a usable job name"),
                );
            }
        }
    }
    let rule_labels = [
        (
            "shoot_tier",
            spec.shoot_tier.as_ref().map(|t| t.rule_meta()),
        ),
        (
            "runtime_tier",
            spec.runtime_tier.as_ref().map(|t| t.rule_meta()),
        ),
    ];
    for (key, meta) in rule_labels {
        let Some(meta) = meta else { continue };
        if meta.name.is_empty() {
            err(
                format!("{key}.prometheus_rule_name"),
                "must not be empty".into(),
            );
        }
        if meta.namespace.is_some_and(str::is_empty) {
            err(
                format!("{key}.prometheus_rule_namespace"),
                "must not be empty (use null for none)".into(),
            );
        }
        for (k, v) in meta.labels {
            if k.is_empty() || v.len() > 63 {
                err(
                    format!("{key}.prometheus_rule_labels.{k}"),
                    "not a Kubernetes label (empty key or value longer than 63)".into(),
                );
            }
        }
    }
    if let Some(d) = &spec.dashboards {
        if d.datasource.as_deref().is_some_and(str::is_empty) {
            err(
                "dashboards.datasource".into(),
                "must not be empty (leave it out for the default datasource)".into(),
            );
        }
    }
}

/// Checks the specs given together: SLO ids unique across files, each output-wide section set
/// at most once, shoot-tier series names unambiguous. Returns warnings about the combination
/// (windows shorter than `shoot_tier.range`).
pub fn check_together(specs: &[LoadedSpec]) -> Result<Vec<Diagnostic>, SpecError> {
    let mut errors = Vec::new();
    // id → (index of the spec, its file); duplicates within one spec are reported by validate.
    let mut seen: BTreeMap<String, (usize, &str)> = BTreeMap::new();
    for (n, s) in specs.iter().enumerate() {
        for (i, slo) in s.spec.slos.iter().enumerate() {
            let id = format!("{}-{}", s.spec.service, slo.name);
            if let Some((first_n, first)) = seen.insert(id.clone(), (n, &s.file)) {
                if first_n != n {
                    errors.push(s.locator.diag(
                        &format!("slos[{i}].name"),
                        Level::Error,
                        format!("SLO id {id:?} is already defined in {first}"),
                    ));
                }
            }
        }
    }
    // Sections that configure the whole output: only one file may carry each.
    for k in 0..GLOBAL_SECTIONS {
        let mut setters = specs.iter().filter(|s| global_sections(&s.spec)[k].1);
        let first = setters.next();
        for s in setters {
            let key = global_sections(&s.spec)[k].0;
            let first = first.map_or("", |f| f.file.as_str());
            errors.push(s.locator.diag(key, Level::Error,
                format!("`{key}` is already set in {first}: only one of the spec files given together may set it")));
        }
    }
    let globals = Globals::from_specs(specs.iter().map(|s| &s.spec));
    let range = globals.shoot_tier.range;
    // One expression per shoot-tier series name (catalog entries share theirs).
    let mut records: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut warnings = Vec::new();
    for s in specs {
        for (i, slo) in model::resolve(&s.spec, range).iter().enumerate() {
            let path = format!("slos[{i}].sli");
            for r in slo.shoot_rules() {
                match records.get(&r.record) {
                    Some((expr, owner)) if *expr != r.expr => errors.push(s.locator.diag(
                        &path,
                        Level::Error,
                        format!(
                            "records `{}` for the shoot tier, as SLO {owner:?} does with another query: rename the service or SLO",
                            r.record
                        ),
                    )),
                    Some(_) => {}
                    None => {
                        records.insert(r.record.clone(), (r.expr.clone(), slo.id.clone()));
                    }
                }
            }
            warnings.extend(short_window_warnings(slo, range, &s.locator, i));
        }
    }
    if errors.is_empty() {
        Ok(warnings)
    } else {
        Err(SpecError::Invalid(errors))
    }
}

/// Windows shorter than the range the inputs are recorded with only reflect the range.
fn short_window_warnings(
    slo: &Slo,
    range: PromDuration,
    locator: &Locator,
    i: usize,
) -> Vec<Diagnostic> {
    if !matches!(slo.sli, Sli::Counted(_)) {
        return Vec::new();
    }
    slo.sli_windows()
        .into_iter()
        .filter(|w| *w < range)
        .map(|w| {
            locator.diag(
                &format!("slos[{i}].alerting.windows"),
                Level::Warning,
                format!(
                    "the {w} window is shorter than shoot_tier.range {range}: its SLI reflects the last {range}"
                ),
            )
        })
        .collect()
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
        if !is_label_name(l) {
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
        if !is_label_name(k) {
            err(
                format!("{path}.{k}"),
                format!("{k:?} is not a valid label name"),
            );
        }
    }
}

/// Checks of one SLI.
struct SliCheck<'a> {
    grouping: &'a [String],
    path: String,
    /// Event queries must aggregate by exactly the grouping labels.
    exact: bool,
}

impl SliCheck<'_> {
    fn check(&self, sli: &SliSpec, spec: &Spec, err: &mut impl FnMut(String, String)) {
        match sli {
            SliSpec::Events(e) => {
                self.runtime_query(&e.error_query, "events.error_query", err);
                self.runtime_query(&e.total_query, "events.total_query", err);
            }
            SliSpec::ShootEvents(e) => {
                self.shoot_query(&e.error_query, "shoot_events.error_query", err);
                self.shoot_query(&e.total_query, "shoot_events.total_query", err);
            }
            SliSpec::Raw(r) => {
                self.runtime_query(&r.error_ratio_query, "raw.error_ratio_query", err)
            }
            SliSpec::BoolGauge(b) => {
                let p = format!("{}.bool_gauge.expr", self.path);
                match promql::template_vars(&b.expr) {
                    Err(e) => err(p, e),
                    Ok(vars) if vars.iter().any(|v| v == promql::WINDOW_VAR) => err(
                        p,
                        "a bool_gauge expression is instant: drop `{{.window}}`, the window is applied for you".into(),
                    ),
                    Ok(_) => {
                        if let Err(e) = promql::parse(&promql::expand(&b.expr, "5m", self.grouping)) {
                            err(p, format!("invalid PromQL: {}", e.trim()));
                        }
                    }
                }
            }
            SliSpec::Catalog(name) => self.catalog(name, spec, err),
        }
    }

    fn catalog(&self, name: &str, spec: &Spec, err: &mut impl FnMut(String, String)) {
        let p = format!("{}.catalog", self.path);
        let Some(entry) = catalog::lookup(name) else {
            return err(
                p,
                format!(
                    "unknown catalog SLI {name:?}; known: {}",
                    catalog::names().collect::<Vec<_>>().join(", ")
                ),
            );
        };
        if let Some(metric) = entry.requires {
            if !spec.available_metrics.iter().any(|m| m == metric) {
                err(p.clone(), format!(
                    "`{name}` needs `{metric}`, which Gardener does not expose yet; if this landscape has it, list it under `available_metrics`"
                ));
            }
        }
        if entry.groupable == Groupable::SeedOnly {
            if let Some(l) = self.grouping.iter().find(|l| *l != "seed") {
                err(p, format!(
                    "`{name}` can only be grouped by `seed` (its input has no per-shoot series), not by `{l}`: set `grouping: [seed]` on this SLO"
                ));
            }
        }
    }

    /// Parses a `{{.window}}` query after the common template checks.
    fn windowed(
        &self,
        q: &str,
        key: &str,
        by: &[String],
        err: &mut impl FnMut(String, String),
    ) -> Option<(String, promql_parser::parser::Expr)> {
        let p = format!("{}.{key}", self.path);
        match promql::template_vars(q) {
            Err(e) => {
                err(p, e);
                return None;
            }
            Ok(vars) if !vars.iter().any(|v| v == promql::WINDOW_VAR) => {
                err(
                    p,
                    "query must contain `{{.window}}` (e.g. `rate(x[{{.window}}])`)".into(),
                );
                return None;
            }
            Ok(_) => {}
        }
        match promql::parse(&promql::expand(q, "5m", by)) {
            Err(e) => {
                err(p, format!("invalid PromQL: {}", e.trim()));
                None
            }
            Ok(expr) => Some((p, expr)),
        }
    }

    fn runtime_query(&self, q: &str, key: &str, err: &mut impl FnMut(String, String)) {
        let Some((p, expr)) = self.windowed(q, key, self.grouping, err) else {
            return;
        };
        if !self.exact && self.grouping.is_empty() {
            return;
        }
        if let Err(e) = promql::check_aggregates_by(&expr, self.grouping, self.exact) {
            err(p, e);
        }
    }

    fn shoot_query(&self, q: &str, key: &str, err: &mut impl FnMut(String, String)) {
        if promql::template_vars(q).is_ok_and(|v| v.iter().any(|v| v == promql::BY_VAR)) {
            return err(
                format!("{}.{key}", self.path),
                "a shoot_events query runs in one shoot's Prometheus: aggregate away every label instead of `by ({{.by}})`; the SLO Prometheus groups by the grouping labels".into(),
            );
        }
        let Some((p, expr)) = self.windowed(q, key, &[], err) else {
            return;
        };
        let mut absent: Vec<String> = self.grouping.to_vec();
        absent.extend(["cluster".to_owned(), "seed".to_owned()]);
        if let Err(e) = promql::check_shoot_tier(&expr, &absent) {
            err(p, e);
        }
    }
}
