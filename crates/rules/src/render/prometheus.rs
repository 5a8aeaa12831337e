//! The runtime tier's rules (the SLO Prometheus), in Sloth's names: per SLO the SLI recordings,
//! the meta recordings and the burn-rate alerts; and the seed alerts.
//!
//! Counted SLIs record, per evaluation and group, the bad and all events
//! ([`BAD_EVENTS`], [`TOTAL_EVENTS`]); every window's error ratio is then
//! `Σ bad / Σ total` over the window (0, not NaN, when the window saw no events), so the period
//! SLI and budget are weighted by traffic. Imported Sloth specs keep Sloth's shapes.
//!
//! # Rollups: cost independent of the period
//!
//! Reading a 28-day window of per-evaluation samples for every shoot costs ~45 ns per sample
//! and grows with the period; one SLO for 1,000 shoots read 98–280 M samples per evaluation.
//! So the events are rolled up twice and each window is read from the coarsest level that
//! keeps it exact enough ([`level`]):
//!
//! | level | series (bad, total) | recorded by | every | windows read from it |
//! | --- | --- | --- | --- | --- |
//! | events | `slo:sli_events:*` | `slo-gateway-events` (all SLOs, after the shared state) | global interval *I* | w ≤ 30m; the last 5m of page windows 30m < w < 1d |
//! | 5-minute | `slo:sli_events_5m:*` = Σ events over 5m | `slo-gateway-rollup-5m-<id>` | 5m | 30m < w < 1d; the last hour of w ≥ 1d |
//! | hourly | `slo:sli_events_1h:*` = Σ 5-minute rollups over 1h | `slo-gateway-rollup-1h-<id>` | 1h | the rest of w ≥ 1d; the period |
//!
//! Groups ([`in_five_minute_group`]): one events group for all SLOs, the shared state
//! ([`crate::state`]) first so every SLO's events read the state of the same evaluation (*I*);
//! per SLO the 5-minute group: its rollups, then the period SLI
//! (`slo:sli_error:ratio_rate<P>`, from the hourly rollups, recorded every 5 minutes so instant
//! queries always find it), then the alerts that read a window of 2h, 1d or more (tickets); the
//! hourly group: its rollups; meta (*I*: objective, budget, period, info per SLO) and the page
//! alerts (*I*).
//!
//! **Nothing per window is recorded.** Alerts compute each window's Σ bad / Σ total in their
//! expression ([`window_ratio`]), the dashboards likewise ([`window_ratio_query`]): a recorded
//! window would cost a series per shoot and SLO (the landscape's memory) and an append per
//! evaluation, for values only the alert reads. `runtime_tier.record_windows` records them
//! too (Sloth's `slo:sli_error:ratio_rate<w>`, current and period burn rate, budget left), for
//! small landscapes and Sloth's own dashboards. Periods up to 1h (the twin's) are read from the
//! events at *I*; other periods shorter than 1d like other windows.
//!
//! Sums (Σ over a window w): level events `sum_over_time(events[w])`; level 5-minute at *I*
//! `(w − 5m)/5m × avg_over_time(5m rollups[w − 5m]) + sum_over_time(events[5m])`, in the
//! 5-minute group (right after its rollups) `w/5m × avg_over_time(5m rollups[w])`; level hourly
//! `(w − 1h)/1h × avg_over_time(hourly[w − 1h]) + 12 × avg_over_time(5m rollups[1h])`; the
//! period `avg_over_time(hourly bad[P − 1m]) / avg_over_time(hourly total[P − 1m])`. Bodies are
//! averages × slots rather than sums, so a window means the same whatever the cadence its
//! rollups were recorded at (promtool evaluates every group at one interval) and whether a range
//! includes its left edge (Prometheus 2 does, 3 does not). Every ratio is
//! `Σ bad / clamp_min(Σ total, 1e-300)`: 0 without events, and `total` is read once. A series
//! gets its rollup-based windows with its first rollups (≤ 5m, ≤ 1h for w ≥ 1d).
//!
//! ## Error bounds (real Prometheus, groups at their own phases)
//!
//! Let φ be the age of the newest sample of a body's rollup (φ < 5m for the 5-minute level,
//! under 1h plus 5m for the hourly one). A window then weighs its events with mass exactly w:
//! its oldest (r − φ) are dropped and its newest (r − φ) counted twice, r being the body's
//! rollup size.
//!
//! - w ≤ 30m: exact, as before.
//! - 1h, 6h (page windows, at *I*): at most 5m of mass moved from the oldest to the newest
//!   events (8 %, 1.4 % of the window); 2h (5-minute group): a window ending ≤ *I* ago,
//!   recomputed every 5m. A constant error ratio is exact; a burst that started inside the
//!   window weighs at least as much as in the exact window. **Fast-burn pages are never later**:
//!   a full outage's first bad events are in the 5m window and the 1h window's head at the next
//!   evaluation of the fast group (≤ 2 × *I* after the shoot tier records it; promtool test
//!   `tests/rules/promtool/rollups.yaml`: silent one minute before, paging within 5).
//! - 1d, 3d: at most 1h moved (4.2 %, 1.4 %), recomputed every 5m: tickets may fire up to
//!   5m later than with per-evaluation windows (the moved mass makes a rising burn fire earlier;
//!   promtool `burn-rate.yaml`: the ticket 28 minutes before the exact onset).
//! - The period P (≥ 1d): at an evaluation after the hourly rollup of τ it is Σ bad / Σ total
//!   over the events of (τ − P − δ, τ − δ], δ < 5m + *I*: the same traffic-weighted ratio over a
//!   window shifted by at most 5m + *I*; it changes when the next hourly rollup arrives (t − τ
//!   < 1h + 5m). With ρ the ratio of peak to mean traffic, `|R' − R| ≤ 2 (t − τ + δ) / P × ρ`,
//!   i.e. ≤ 0.34 % × ρ for 28 days: the period SLI `1 − R` is within 1 % (relative) of the exact
//!   one for any error pattern while ρ ≤ 2.9 (benchmark: ≤ 0.26 %). A history shorter than P
//!   counts as what it is (a ratio of averages). R is exact for a steady error ratio and within
//!   1 % in the promtool test's changing traffic with outages; but a shoot's first outage of the
//!   period enters R (and the budget) only with the next hourly rollup, so R alone can be up to
//!   100 % off for up to an hour (BENCHMARKS.md "Rule cost"): what the fast windows and alerts
//!   are for.
//!
//! Recorded series per shoot and SLO: 2 events, 2 + 2 rollups and the period = **7** (18 before
//! issue 16's second step, 13 before the rollups); with `record_windows` 7 windows and 3 burn-rate
//! and budget series more. Objective, budget, period and info are per SLO; the shared state
//! adds about 2 per shoot for all SLOs together.
//!
//! # Pages of once-a-minute SLIs
//!
//! `min_outage` raises both windows' thresholds of a pair to (outage − 1s) / (window + *I*): a
//! window holds window/*I* + 1 evaluations in Prometheus 2 and window/*I* in Prometheus 3, so
//! outage/*I* bad evaluations exceed it in both and one fewer in neither. The short windows are
//! read exactly from the events, so a page needs that many bad evaluations within its short
//! window. Samples read per shoot and SLO and minute at *I* = 1m: about 570 at 28 days
//! (measured; the period's 2 × 671 every 5 minutes are 270 of them), growing by 27 per week of
//! period (the Sloth shape read about 140,000 for 28 days, 2 per sample of the period's length
//! per window).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::duration::PromDuration;
use crate::model::{Slo, BAD_EVENTS, TOTAL_EVENTS};
use crate::spec::{SeedClockSkewSpec, SeedSilentSpec, SeedUncoveredSpec, SeedUnreachableSpec};
use crate::types::{AlertWindow, Severity, Sli};

/// Label Sloth puts the SLO id into.
pub const ID_LABEL: &str = "sloth_id";
/// Label for the service.
pub const SERVICE_LABEL: &str = "sloth_service";
/// Label for the SLO name.
pub const SLO_LABEL: &str = "sloth_slo";
/// Label for the SLI window.
pub const WINDOW_LABEL: &str = "sloth_window";
/// Label on the alert rule of a severity's pairs evaluated every 5 minutes when its other pairs
/// are evaluated at the global interval (e.g. `1d/2h` for a page pair on a day-long window).
pub const WINDOWS_LABEL: &str = "windows";
/// Label for the alert severity.
pub const SEVERITY_LABEL: &str = "sloth_severity";
/// The receiver's per-seed freshness gauge (unix seconds of the last accepted push).
pub const FRESHNESS_METRIC: &str = "slo_gateway_receiver_last_push_timestamp_seconds";
/// Recorded per seed: the receivers' freshest last-push timestamp.
pub const LAST_PUSH: &str = "slo:seed_last_push:timestamp_seconds";
/// Alert: a pushing seed went silent.
pub const SEED_SILENT_ALERT: &str = "SLOGatewaySeedSilent";
/// Alert: the SLO Prometheus cannot federate a reachable seed.
pub const SEED_UNREACHABLE_ALERT: &str = "SLOGatewaySeedUnreachable";
/// Alert: the garden lists shoots on a seed whose data no path delivers.
pub const SEED_UNCOVERED_ALERT: &str = "SLOGatewaySeedUncovered";
/// Alert: a pushing seed's clock differs from the receiver's.
pub const SEED_CLOCK_SKEW_ALERT: &str = "SLOGatewaySeedClockSkew";
/// The receivers' per-seed clock skew gauge (receiver clock minus the agent's send time).
pub const SKEW_METRIC: &str = "slo_gateway_receiver_clock_skew_seconds";
/// The receivers' per-seed count of samples with skewed timestamps (`direction` past/future).
pub const SKEWED_SAMPLES_METRIC: &str = "slo_gateway_receiver_skewed_samples_total";

/// One Prometheus rule group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleGroup {
    /// Group name.
    pub name: String,
    /// Evaluation interval; None: the Prometheus' global one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Rules in evaluation order.
    pub rules: Vec<Rule>,
}

/// A recording or alerting rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// Recorded metric name (recording rules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// Alert name (alerting rules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// PromQL.
    pub expr: String,
    /// How long an alert's condition must hold before it fires.
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    /// How long an alert keeps firing after its condition cleared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_firing_for: Option<String>,
    /// Labels added to the result.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Alert annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A recording rule.
pub fn record(name: String, expr: String, labels: BTreeMap<String, String>) -> Rule {
    Rule {
        record: Some(name),
        alert: None,
        expr,
        for_: None,
        keep_firing_for: None,
        labels,
        annotations: BTreeMap::new(),
    }
}

/// `slo:sli_error:ratio_rate<w>`.
pub fn sli_metric(window: impl std::fmt::Display) -> String {
    format!("slo:sli_error:ratio_rate{window}")
}

/// `{sloth_id="…", sloth_service="…", sloth_slo="…"}`.
pub fn id_filter(slo: &Slo) -> String {
    format!(
        "{{{ID_LABEL}=\"{}\", {SERVICE_LABEL}=\"{}\", {SLO_LABEL}=\"{}\"}}",
        slo.id, slo.service, slo.name
    )
}

fn id_labels(slo: &Slo) -> BTreeMap<String, String> {
    BTreeMap::from([
        (ID_LABEL.to_owned(), slo.id.clone()),
        (SERVICE_LABEL.to_owned(), slo.service.clone()),
        (SLO_LABEL.to_owned(), slo.name.clone()),
    ])
}

fn merged(maps: &[&BTreeMap<String, String>]) -> BTreeMap<String, String> {
    maps.iter()
        .flat_map(|m| m.iter())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Name of the group recording the shared state and every counted SLO's events.
pub const EVENTS_GROUP: &str = "slo-gateway-events";

/// The events group: the shared state ([`crate::state`]) first, then per counted SLO its bad
/// and all events, so that each SLO's events read the state of the same evaluation. None
/// without counted SLOs.
pub fn events_group(
    slos: &[Slo],
    state: Vec<Rule>,
    interval: Option<PromDuration>,
) -> Option<RuleGroup> {
    let mut rules = state;
    rules.extend(slos.iter().flat_map(event_rules));
    (!rules.is_empty()).then(|| RuleGroup {
        name: EVENTS_GROUP.to_owned(),
        interval: interval.map(|i| i.to_string()),
        rules,
    })
}

/// The groups of one SLO besides its events (in [`events_group`]). Counted SLIs: the 5-minute
/// group (rollups, the period SLI, the alerts whose windows it can read fresh: tickets), the
/// hourly rollups, meta recordings and the page alerts; with `record_windows` also every
/// window's ratio and the per-group burn-rate and budget series (see the module doc).
/// Imported Sloth SLIs: Sloth's three groups (SLI recordings, meta recordings, alerts).
pub fn slo_groups(
    slo: &Slo,
    interval: Option<PromDuration>,
    record_windows: bool,
) -> Vec<RuleGroup> {
    let fast = interval.map(|i| i.to_string());
    let group = |kind: &str, interval: Option<String>, rules: Vec<Rule>| RuleGroup {
        name: format!("sloth-slo-{kind}-{}", slo.id),
        interval,
        rules,
    };
    let mut groups = Vec::new();
    let alerts = alert_rules(slo, interval.unwrap_or(DEFAULT_INTERVAL));
    let (five_alerts, fast_alerts): (Vec<_>, Vec<_>) =
        alerts.into_iter().partition(|(in_five, _)| *in_five);
    match slo.sli {
        Sli::Counted(_) => {
            let c = counted_rules(slo, record_windows);
            if !c.fast.is_empty() {
                groups.push(group("sli-recordings", fast.clone(), c.fast));
            }
            let mut meta = meta_rules(slo, record_windows);
            let mut five = c.five;
            if c.period_in_five && record_windows {
                // The period's burn rate and budget move with the period SLI.
                // (meta ends with period burn rate, budget remaining, info.)
                let info = meta.pop();
                five.extend(meta.split_off(meta.len() - 2));
                meta.extend(info);
            }
            five.extend(five_alerts.into_iter().map(|(_, r)| r));
            if !five.is_empty() {
                groups.push(RuleGroup {
                    name: format!("slo-gateway-rollup-5m-{}", slo.id),
                    interval: Some(ROLLUP_5M.to_string()),
                    rules: five,
                });
            }
            if !c.hour.is_empty() {
                groups.push(RuleGroup {
                    name: format!("slo-gateway-rollup-1h-{}", slo.id),
                    interval: Some(ROLLUP_1H.to_string()),
                    rules: c.hour,
                });
            }
            groups.push(group("meta-recordings", fast.clone(), meta));
        }
        Sli::Sloth(_) => {
            groups.push(group("sli-recordings", fast.clone(), sloth_sli_rules(slo)));
            groups.push(group(
                "meta-recordings",
                fast.clone(),
                meta_rules(slo, true),
            ));
        }
    }
    if !fast_alerts.is_empty() {
        groups.push(group(
            "alerts",
            fast,
            fast_alerts.into_iter().map(|(_, r)| r).collect(),
        ));
    }
    groups
}

/// Size and evaluation interval of the first rollup level.
pub const ROLLUP_5M: PromDuration = PromDuration::from_secs(300);
/// Size and evaluation interval of the second rollup level.
pub const ROLLUP_1H: PromDuration = PromDuration::from_secs(3600);
/// Windows up to this length are read from the per-evaluation events.
pub const RAW_MAX: PromDuration = PromDuration::from_secs(1800);
/// Windows from this length on are read from the hourly rollups.
pub const HOURLY_MIN: PromDuration = PromDuration::from_secs(86400);
/// Recorded every 5 minutes: bad events of the last 5 minutes.
pub const BAD_5M: &str = "slo:sli_events_5m:bad";
/// Recorded every 5 minutes: all events of the last 5 minutes.
pub const TOTAL_5M: &str = "slo:sli_events_5m:total";
/// Recorded hourly: bad events of the last hour.
pub const BAD_1H: &str = "slo:sli_events_1h:bad";
/// Recorded hourly: all events of the last hour.
pub const TOTAL_1H: &str = "slo:sli_events_1h:total";
/// Denominator floor: a window without events has the ratio 0 / floor = 0, not NaN, and the
/// denominator is read once.
const FLOOR: &str = "1e-300";

/// Which level of the hierarchy a window is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `sum_over_time` of the per-evaluation events (windows ≤ 30m).
    Events,
    /// 5-minute rollups for the body plus the last 5 minutes of events (30m < w < 1d).
    FiveMinutes,
    /// Hourly rollups for the body plus the last hour of 5-minute rollups (w ≥ 1d); the period
    /// from the hourly rollups alone, hourly.
    Hourly,
}

/// The level a window of length `w` is read from.
pub fn level(w: PromDuration) -> Level {
    if w <= RAW_MAX {
        Level::Events
    } else if w < HOURLY_MIN {
        Level::FiveMinutes
    } else {
        Level::Hourly
    }
}

/// `text` with every line prefixed by `pad`.
fn indent(text: &str, pad: &str) -> String {
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

/// `n` without a trailing `.0` for whole numbers.
fn num(n: f64) -> String {
    format!("{n}")
}

/// Σ of the events (`ev`: the per-evaluation series, `r5`/`r1`: its rollups) over the window
/// `w`, for the window's level; `in_five`: evaluated in the 5-minute group, right after the
/// 5-minute rollups (so they need no fresher head). Bodies are `avg_over_time × slots`, not
/// `sum_over_time`, so the result does not depend on how often the rollups were recorded
/// (promtool evaluates every group at its one interval) nor on whether a range includes its
/// left edge (Prometheus 2 does, 3 does not).
fn window_sum(ev: &str, r5: &str, r1: &str, f: &str, w: PromDuration, in_five: bool) -> String {
    let five = ROLLUP_5M.as_secs();
    let hour = ROLLUP_1H.as_secs();
    match level(w) {
        Level::Events => format!("sum_over_time({ev}{f}[{w}])"),
        Level::FiveMinutes if in_five => {
            let k = num(w.as_secs() as f64 / five as f64);
            format!("{k} * avg_over_time({r5}{f}[{w}])")
        }
        Level::FiveMinutes => {
            let body = PromDuration::from_secs(w.as_secs() - five);
            let k = num(body.as_secs() as f64 / five as f64);
            format!(
                "{k} * avg_over_time({r5}{f}[{body}])
  + sum_over_time({ev}{f}[{ROLLUP_5M}])"
            )
        }
        Level::Hourly => {
            let body = PromDuration::from_secs(w.as_secs() - hour);
            let k = num(body.as_secs() as f64 / hour as f64);
            format!(
                "{k} * avg_over_time({r1}{f}[{body}])
  + {} * avg_over_time({r5}{f}[{ROLLUP_1H}])",
                hour / five
            )
        }
    }
}

/// Whether an alert window pair of a counted SLI is evaluated in the 5-minute group (after its
/// rollups) rather than at the global interval: pairs with a window the 5-minute group would
/// record (2h, 1d, 3d, …: the tickets). Page windows stay at the global interval.
pub fn pair_in_five_minute_group(slo: &Slo, pair: &AlertWindow) -> bool {
    in_five_minute_group(slo, pair.short) || in_five_minute_group(slo, pair.long)
}

/// Whether window `w` of `slo` is recorded by the 5-minute group rather than at the global
/// interval: windows of 1d and more, and the 5-minute level's windows no page alert reads.
pub fn in_five_minute_group(slo: &Slo, w: PromDuration) -> bool {
    let pages = slo
        .windows
        .iter()
        .filter(|a| a.severity == Severity::Page)
        .any(|a| a.short == w || a.long == w);
    match level(w) {
        Level::Events => false,
        Level::FiveMinutes => !pages,
        Level::Hourly => true,
    }
}

/// The rules of a counted SLI, by group (its events are in [`events_group`]).
struct CountedRules {
    fast: Vec<Rule>,
    five: Vec<Rule>,
    hour: Vec<Rule>,
    /// The period SLI is recorded by the 5-minute group (hourly ones re-recorded there).
    period_in_five: bool,
}

/// `Σ bad / Σ total` over window `w` of a counted SLI (`f`: its series filter), read as
/// [`window_sum`] reads it; `in_five`: in the 5-minute group, after its rollups.
pub fn window_ratio(f: &str, w: PromDuration, in_five: bool) -> String {
    ratio(
        &window_sum(BAD_EVENTS, BAD_5M, BAD_1H, f, w, in_five),
        &window_sum(TOTAL_EVENTS, TOTAL_5M, TOTAL_1H, f, w, in_five),
    )
}

/// `bad / total`, 0 rather than NaN without events ([`FLOOR`]).
fn ratio(bad: &str, total: &str) -> String {
    format!("(\n  {bad}\n)\n/\nclamp_min(\n  {total}\n, {FLOOR})\n")
}

/// The error ratio of `slo` over window `w` for a query outside the rules (dashboards): the
/// recorded series where there is one (the period; every window of Sloth SLIs or with
/// `record_windows`), else [`window_ratio`], valid at any time. `f`: the selector's filter.
pub fn window_ratio_query(slo: &Slo, w: PromDuration, record_windows: bool, f: &str) -> String {
    if record_windows || w == slo.window || !matches!(slo.sli, Sli::Counted(_)) {
        format!("{}{f}", sli_metric(w))
    } else {
        format!("({})", window_ratio(f, w, false).trim_end())
    }
}

/// Counted SLIs: the rollups of the events, the period SLI and, with `record_windows`, every
/// window as Σ bad / Σ total.
fn counted_rules(slo: &Slo, record_windows: bool) -> CountedRules {
    let mut out = CountedRules {
        fast: Vec::new(),
        five: Vec::new(),
        hour: Vec::new(),
        period_in_five: false,
    };
    if !matches!(slo.sli, Sli::Counted(_)) {
        return out;
    }
    let base = merged(&[&id_labels(slo), &slo.labels]);
    let f = id_filter(slo);
    let windowed = |w: PromDuration| {
        let mut labels = base.clone();
        labels.insert(WINDOW_LABEL.to_owned(), w.to_string());
        labels
    };
    // Every window the alerts read, recorded or not, decides which rollups exist.
    let windows: Vec<PromDuration> = slo.sli_windows().into_iter().chain([slo.window]).collect();
    let levels: Vec<Level> = windows
        .iter()
        .map(|w| {
            if *w == slo.window && *w <= ROLLUP_1H {
                Level::Events
            } else {
                level(*w)
            }
        })
        .collect();
    if levels.iter().any(|l| *l != Level::Events) {
        for (name, ev) in [(BAD_5M, BAD_EVENTS), (TOTAL_5M, TOTAL_EVENTS)] {
            out.five.push(record(
                name.to_owned(),
                format!("sum_over_time({ev}{f}[{ROLLUP_5M}])"),
                base.clone(),
            ));
        }
    }
    if levels.contains(&Level::Hourly) {
        let slots = ROLLUP_1H.as_secs() / ROLLUP_5M.as_secs();
        for (name, r5) in [(BAD_1H, BAD_5M), (TOTAL_1H, TOTAL_5M)] {
            out.hour.push(record(
                name.to_owned(),
                format!("{slots} * avg_over_time({r5}{f}[{ROLLUP_1H}])"),
                base.clone(),
            ));
        }
    }
    for w in windows {
        let is_period = w == slo.window;
        if !is_period && !record_windows {
            continue;
        }
        if is_period && w <= ROLLUP_1H {
            // Short periods (the twin's 1h) from the events, so the budget is there from the
            // first evaluation on.
            let sum = |ev: &str| format!("sum_over_time({ev}{f}[{w}])");
            out.fast.push(record(
                sli_metric(w),
                ratio(&sum(BAD_EVENTS), &sum(TOTAL_EVENTS)),
                windowed(w),
            ));
        } else if is_period && level(w) == Level::Hourly {
            // Σ bad / Σ total of the hourly rollups, recorded every 5 minutes so instant
            // queries always find it. A ratio of averages, so a history shorter than the period
            // counts as what it is; a range one minute short of the period holds period/1h
            // hourly samples in Prometheus 2 and 3 alike.
            let range = PromDuration::from_secs(w.as_secs() - 60);
            out.five.push(record(
                sli_metric(w),
                format!(
                    "avg_over_time({BAD_1H}{f}[{range}])\n/\nclamp_min(avg_over_time({TOTAL_1H}{f}[{range}]), {FLOOR})\n"
                ),
                windowed(w),
            ));
            out.period_in_five = true;
        } else if is_period || in_five_minute_group(slo, w) {
            out.five.push(record(
                sli_metric(w),
                window_ratio(&f, w, true),
                windowed(w),
            ));
            out.period_in_five |= is_period;
        } else {
            out.fast.push(record(
                sli_metric(w),
                window_ratio(&f, w, false),
                windowed(w),
            ));
        }
    }
    out
}

/// A counted SLO's bad and all events per evaluation and group; none for Sloth SLIs.
fn event_rules(slo: &Slo) -> Vec<Rule> {
    let Sli::Counted(sli) = &slo.sli else {
        return Vec::new();
    };
    let base = merged(&[&id_labels(slo), &slo.labels]);
    let f = id_filter(slo);
    let by = slo.grouping.join(", ");
    vec![
        record(TOTAL_EVENTS.to_owned(), sli.total.clone(), base.clone()),
        // Groups with events but no bad-event series (nothing went wrong) have 0 bad events.
        record(
            BAD_EVENTS.to_owned(),
            format!("({})\nor on ({by})\n(0 * {TOTAL_EVENTS}{f})\n", sli.bad),
            base,
        ),
    ]
}

/// Imported Sloth SLIs: Sloth's expressions.
fn sloth_sli_rules(slo: &Slo) -> Vec<Rule> {
    let base = merged(&[&id_labels(slo), &slo.labels]);
    let mut rules: Vec<Rule> = slo
        .sli_windows()
        .into_iter()
        .map(|w| {
            let mut labels = base.clone();
            labels.insert(WINDOW_LABEL.to_owned(), w.to_string());
            record(
                sli_metric(w),
                slo.sloth_error_ratio_expr(w).unwrap_or_default(),
                labels,
            )
        })
        .collect();
    // The period from the shortest window's rule, as Sloth does: a mean of ratios weighted
    // equally per evaluation, not by traffic (our own SLIs are counted instead).
    let short = sli_metric(slo.shortest_window());
    let filter = id_filter(slo);
    let period = slo.window;
    rules.push(record(
        sli_metric(period),
        format!(
            "sum_over_time({short}{filter}[{period}])\n/ ignoring ({WINDOW_LABEL})\ncount_over_time({short}{filter}[{period}])\n"
        ),
        // Sloth sets only sloth_window here (the rest comes from the source series); we also
        // set the id labels, to the values they already have, because promtool's lint rejects
        // same-named rules with identical labels in one file.
        merged(&[
            &id_labels(slo),
            &BTreeMap::from([(WINDOW_LABEL.to_owned(), period.to_string())]),
        ]),
    ));
    rules
}

fn burn_rate_expr(sli: &str, filter: &str) -> String {
    format!(
        "{sli}{filter}\n/ on({ID_LABEL}, {SLO_LABEL}, {SERVICE_LABEL}) group_left\nslo:error_budget:ratio{filter}\n"
    )
}

/// Sloth's meta recordings: objective, budget, period and info per SLO; with `per_group` also
/// the current and period burn rate and the budget left per group (they read recorded
/// windows).
fn meta_rules(slo: &Slo, per_group: bool) -> Vec<Rule> {
    let labels = merged(&[&id_labels(slo), &slo.labels]);
    let filter = id_filter(slo);
    let objective = slo.objective / 100.0;
    let mut info = labels.clone();
    info.extend([
        (
            "sloth_version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
        ("sloth_mode".to_owned(), "cli-gen-prom".to_owned()),
        ("sloth_spec".to_owned(), slo.spec_version.clone()),
        ("sloth_objective".to_owned(), slo.objective.to_string()),
    ]);
    let mut rules = vec![
        record(
            "slo:objective:ratio".into(),
            format!("vector({objective})"),
            labels.clone(),
        ),
        record(
            "slo:error_budget:ratio".into(),
            format!("vector(1-{objective})"),
            labels.clone(),
        ),
        record(
            "slo:time_period:days".into(),
            format!("vector({})", slo.window.days()),
            labels.clone(),
        ),
    ];
    if per_group {
        rules.extend([
            record(
                "slo:current_burn_rate:ratio".into(),
                burn_rate_expr(&sli_metric(slo.shortest_window()), &filter),
                labels.clone(),
            ),
            record(
                "slo:period_burn_rate:ratio".into(),
                burn_rate_expr(&sli_metric(slo.window), &filter),
                labels.clone(),
            ),
            record(
                "slo:period_error_budget_remaining:ratio".into(),
                format!("1 - slo:period_burn_rate:ratio{filter}"),
                labels,
            ),
        ]);
    }
    rules.push(record("sloth_slo_info".into(), "vector(1)".into(), info));
    rules
}

/// The evaluation interval thresholds assume when the runtime tier sets none (the chart's).
pub const DEFAULT_INTERVAL: PromDuration = PromDuration::from_secs(60);

/// `min_outage` as the error ratio of a window `window` evaluated every `interval`:
/// (outage − 1s) / (window + interval). A window holds window/interval + 1 evaluations in
/// Prometheus 2 (its left edge included) and window/interval in Prometheus 3, so outage/interval
/// bad evaluations (and not one fewer) exceed it in both; the second spared absorbs float noise.
pub fn outage_floor(
    min_outage: Option<PromDuration>,
    window: PromDuration,
    interval: PromDuration,
) -> Option<(u64, u64)> {
    let outage = min_outage?.as_secs().checked_sub(1)?;
    Some((outage, window.as_secs() + interval.as_secs()))
}

/// The error ratio above which window `window` of a pair with burn-rate `factor` fires, as
/// PromQL and as a number: `factor × budget`, or the `min_outage` floor where that is higher.
pub fn window_threshold(
    factor: f64,
    budget: f64,
    min_outage: Option<PromDuration>,
    window: PromDuration,
    interval: PromDuration,
) -> (String, f64) {
    match outage_floor(min_outage, window, interval) {
        Some((outage, w)) if outage as f64 / w as f64 > factor * budget => {
            (format!("({outage} / {w})"), outage as f64 / w as f64)
        }
        _ => (format!("({factor} * {budget})"), factor * budget),
    }
}

/// The burn-rate alerts (page, ticket), each with whether it belongs in the 5-minute group:
/// counted SLIs compute their windows in the alert expression (nothing per window is recorded
/// unless `record_windows`), and an alert reading a window the 5-minute group would record
/// (tickets: 2h, 1d, 3d) is evaluated there, after the rollups, every 5 minutes. Sloth SLIs
/// read their recorded windows at the global interval.
fn alert_rules(slo: &Slo, interval: PromDuration) -> Vec<(bool, Rule)> {
    let Some(alerting) = &slo.alerting else {
        return Vec::new();
    };
    let filter = id_filter(slo);
    let budget = slo.error_budget_ratio();
    let counted = matches!(slo.sli, Sli::Counted(_));
    [(Severity::Page, &alerting.page), (Severity::Ticket, &alerting.ticket)]
        .into_iter()
        .filter_map(|(severity, meta)| meta.as_ref().map(|m| (severity, m)))
        .flat_map(|(severity, meta)| {
            let of_severity: Vec<&AlertWindow> =
                slo.windows.iter().filter(|w| w.severity == severity).collect();
            let (five, fast): (Vec<&AlertWindow>, Vec<&AlertWindow>) = of_severity
                .into_iter()
                .partition(|w| counted && pair_in_five_minute_group(slo, w));
            // A severity split over both groups: the 5-minute part is told apart by a label, so
            // the two rules never write the same alert.
            let split = !five.is_empty() && !fast.is_empty();
            [(false, fast), (true, five)]
                .into_iter()
                .filter(|(_, pairs)| !pairs.is_empty())
                .map(move |(in_five, pairs)| {
                    let label = (split && in_five).then(|| {
                        pairs.iter().map(|w| format!("{}/{}", w.long, w.short)).collect::<Vec<_>>().join(",")
                    });
                    (in_five, severity, meta, pairs, label)
                })
                .collect::<Vec<_>>()
        })
        .map(|(in_five, severity, meta, pairs, windows_label)| {
            let pairs: Vec<String> = pairs
                .iter()
                .map(|w| {
                    let factor = w.burn_factor(slo.window);
                    let cond = |win: PromDuration| {
                        let (threshold, _) =
                            window_threshold(factor, budget, meta.min_outage, win, interval);
                        if counted {
                            let ratio = window_ratio(&filter, win, in_five);
                            format!("  (\n{}  ) > {threshold}", indent(&ratio, "    "))
                        } else {
                            format!(
                                "    max({}{filter} > {threshold}) without ({WINDOW_LABEL})",
                                sli_metric(win)
                            )
                        }
                    };
                    format!("(\n{}\n    and\n{}\n)", cond(w.short), cond(w.long))
                })
                .collect();
            let sev = severity.as_str();
            let mut labels = BTreeMap::from([(SEVERITY_LABEL.to_owned(), sev.to_owned())]);
            if let Some(windows) = windows_label {
                labels.insert(WINDOWS_LABEL.to_owned(), windows);
            }
            labels.extend(merged(&[&alerting.labels, &meta.labels]));
            if alerting.severity_label {
                labels.entry("severity".to_owned()).or_insert_with(|| sev.to_owned());
            }
            let mut annotations = BTreeMap::from([
                (
                    "title".to_owned(),
                    format!("({sev}) {{{{$labels.{SERVICE_LABEL}}}}} {{{{$labels.{SLO_LABEL}}}}} SLO error budget burn rate is too fast."),
                ),
                (
                    "summary".to_owned(),
                    format!("{{{{$labels.{SERVICE_LABEL}}}}} {{{{$labels.{SLO_LABEL}}}}} SLO error budget burn rate is over expected."),
                ),
            ]);
            annotations.extend(merged(&[&alerting.annotations, &meta.annotations]));
            (in_five, Rule {
                record: None,
                alert: Some(alerting.name.clone()),
                expr: format!("{}\n", pairs.join("\nor\n")),
                for_: None,
                keep_firing_for: None,
                labels,
                annotations,
            })
        })
        .collect()
}

/// What the seed alerts read from the shared state ([`crate::state::seed_queries`]), when it
/// is recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedStateQueries {
    /// Seeds whose data came neither by a federation job of their own nor by push (through
    /// prometheus-garden) and stopped: part of `SLOGatewaySeedUnreachable`.
    pub stopped_elsewhere: Option<String>,
    /// Seeds the garden lists with shoots that should report, whose data never arrived:
    /// `SLOGatewaySeedUncovered`.
    pub uncovered: String,
}

/// The seed alerts: `SLOGatewaySeedSilent` for seeds that push through the receiver,
/// `SLOGatewaySeedUnreachable` for seeds the SLO Prometheus federates (itself, or through
/// prometheus-garden), `SLOGatewaySeedUncovered` for seeds of the garden that no path covers,
/// all carrying `seed`:
/// the Alertmanager config lets them inhibit the SLO alerts of their seed, and `keep_firing_for`
/// keeps that inhibition until the outage's burn alerts cleared (their shoots' minutes are
/// unknown meanwhile, so those rarely fire at all). And `SLOGatewaySeedClockSkew` (a ticket,
/// inhibiting nothing) for pushing seeds whose agent's clock is off.
pub fn seed_group(
    silent: &SeedSilentSpec,
    unreachable: &SeedUnreachableSpec,
    uncovered: &SeedUncoveredSpec,
    skew: &SeedClockSkewSpec,
    state: Option<&SeedStateQueries>,
    default_keep_firing: Option<PromDuration>,
    interval: Option<PromDuration>,
) -> Option<RuleGroup> {
    let mut rules = Vec::new();
    let alert = |name: &str,
                 expr: String,
                 severity: Severity,
                 for_: Option<PromDuration>,
                 keep: Option<PromDuration>,
                 summary: String,
                 description: &str| Rule {
        record: None,
        alert: Some(name.to_owned()),
        expr,
        for_: for_.map(|d| d.to_string()),
        keep_firing_for: keep.or(default_keep_firing).map(|d| d.to_string()),
        labels: BTreeMap::from([("severity".to_owned(), severity.as_str().to_owned())]),
        annotations: BTreeMap::from([
            ("summary".to_owned(), summary),
            ("description".to_owned(), description.to_owned()),
        ]),
    };
    if silent.enabled {
        // The receivers' gauge vanishes when a receiver restarts: remember the freshest push
        // per seed (max over replicas) and look back over `lookback`.
        rules.push(record(
            LAST_PUSH.to_owned(),
            format!("max by (seed) ({FRESHNESS_METRIC})"),
            BTreeMap::new(),
        ));
        rules.push(alert(
            SEED_SILENT_ALERT,
            format!(
                "time() - max by (seed) (max_over_time({LAST_PUSH}[{}])) > {}",
                silent.lookback,
                silent.threshold.as_secs()
            ),
            silent.severity,
            None,
            silent.keep_firing_for,
            format!("Seed {{{{$labels.seed}}}} has not pushed SLO series for more than {}.", silent.threshold),
            "This seed's shoots deliver no data: their minutes are unknown and left out of their SLIs. Check the seed's slo-gateway agent and its network path to the receiver. The seed's SLO alerts are inhibited meanwhile.",
        ));
    }
    let elsewhere = state.and_then(|s| s.stopped_elsewhere.clone());
    if unreachable.enabled && (!unreachable.jobs.is_empty() || elsewhere.is_some()) {
        let mut exprs = Vec::new();
        if !unreachable.jobs.is_empty() {
            let up: Vec<String> = unreachable
                .jobs
                .iter()
                .map(|j| format!("up{{job=\"{j}\"}}"))
                .collect();
            // Every target of the seed (aggregate replicas) down.
            exprs.push(format!("max by (seed) ({}) == 0", up.join(" or ")));
        }
        exprs.extend(elsewhere);
        rules.push(alert(
            SEED_UNREACHABLE_ALERT,
            exprs.join("\nor\n"),
            unreachable.severity,
            Some(unreachable.threshold),
            unreachable.keep_firing_for,
            format!("The SLO Prometheus cannot federate seed {{{{$labels.seed}}}}'s prometheus-aggregate for {}.", unreachable.threshold),
            "This seed's shoots deliver no data: their minutes are unknown and left out of their SLIs. The seed or the network path to it is down. The seed's SLO alerts are inhibited meanwhile.",
        ));
    }
    if let Some(state) = state.filter(|_| uncovered.enabled) {
        rules.push(alert(
            SEED_UNCOVERED_ALERT,
            state.uncovered.clone(),
            uncovered.severity,
            Some(uncovered.threshold),
            None,
            format!("The garden lists shoots on seed {{{{$labels.seed}}}}, but none of its SLO data has arrived for {}.", uncovered.threshold),
            "No path delivers this seed's shoot-tier series: no agent pushes for it (a firewalled seed must be labelled seed.gardener.cloud/network=private, which installs the agent), and neither the SLO Prometheus nor prometheus-garden federates it (a reachable seed needs an ingress, which gardener-operator adds to prometheus-garden's federation). Its shoots have SLOs from Gardener's health check only. The seed's SLO alerts are inhibited meanwhile.",
        ));
    }
    if skew.enabled {
        rules.push(Rule {
            keep_firing_for: None,
            ..alert(
                SEED_CLOCK_SKEW_ALERT,
                // The skew in either direction, or samples refused as from the future (an agent
                // far ahead); samples from the past can also be a backlog, so they alone do not
                // fire it.
                format!(
                    "max by (seed) (abs({SKEW_METRIC})) > {}\nor\nsum by (seed) (increase({SKEWED_SAMPLES_METRIC}{{direction=\"future\"}}[5m])) > 0",
                    skew.threshold.as_secs()
                ),
                skew.severity,
                Some(skew.for_),
                None,
                format!(
                    "The clock of seed {{{{$labels.seed}}}}'s slo-gateway agent is more than {} off the receiver's.",
                    skew.threshold
                ),
                "The agent stamps samples with its own clock: behind, its data lands in the past and instant queries miss it (its shoots' minutes are then filled from Gardener's health check); ahead, the receiver refuses it. Fix the seed's time synchronisation (NTP).",
            )
        });
    }
    (!rules.is_empty()).then(|| RuleGroup {
        name: "slo-gateway-seeds".to_owned(),
        interval: interval.map(|i| i.to_string()),
        rules,
    })
}
