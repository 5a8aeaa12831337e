//! SLO specs → GEP-0041's two tiers of rules (every shoot's Prometheus and the SLO Prometheus),
//! burn-rate and seed alerts, Alertmanager routing, Perses dashboards and the `match[]`
//! selectors for the agent and the garden federation.
//!
//! Uses no network crates: everything here is text in, text out.
//!
//! # Layout
//!
//! [`types`] (severities, alert windows, tiers, SLI shapes) is used by everything else;
//! [`spec`] is the format ([`spec::parse`], [`spec::diagnostics`]);
//! [`catalog`] the GEP's initial SLOs; [`sources`] what can reach the SLO Prometheus;
//! [`state`] the shoot and seed state every per-shoot SLO reads (unknown is not down);
//! [`model`] resolves specs; [`check`] finds every semantic problem of a spec (and of specs
//! given together), which needs both; [`load`] parses then checks, the one way to a
//! [`LoadedSpec`]; [`render`] writes the files; [`sloth`] and [`openslo`] import.
//! Dependencies point one way: `spec` → `model` → `check` → `load` → importers, CLI.
//!
//! # Spec (`slo-gateway/v1`, see `config/slos.yaml` for a commented example)
//!
//! A file describes one service: `service`, `labels`, `grouping` (labels every runtime SLI
//! aggregates by, default `cluster, seed`, so each shoot has its own SLO series and alerts),
//! `available_metrics`, `local_metrics` and `slos`. An SLO has a `name`, an `objective` in
//! percent, a `window` (period, default `28d` as in GEP-0041), an `sli` and `alerting`. SLI kinds:
//! - `catalog: <name>`: a GEP-0041 SLI, see [`catalog`];
//! - `shoot_events`: `error_query` / `total_query` with `{{.window}}`, evaluated in every
//!   shoot's Prometheus (for series only it has), aggregated to no labels;
//! - `events`: `error_query` / `total_query` with `{{.window}}`, evaluated in the SLO
//!   Prometheus, aggregated `by ({{.by}})`;
//! - `raw`: `error_ratio_query` with `{{.window}}` (SLO Prometheus; averaged over time);
//! - `bool_gauge`: an instant 0/1 expression (1 = good), one series per thing.
//!
//! Output-wide sections (`alertmanager`, `seed_silent`, `seed_unreachable`, `seed_uncovered`,
//! `seed_clock_skew`, `shoot_tier`, `runtime_tier`, `dashboards`) may be set in one of the files given together. See [`spec`] for
//! every field. Checks beyond syntax: shoot-tier queries must not use labels a shoot
//! Prometheus only adds on the way out (`cluster`, …, `seed`); every series a runtime rule
//! reads must reach the SLO Prometheus ([`sources`]), else `rules check` names rule and
//! series; catalog entries whose metric Gardener lacks need it in `available_metrics`.
//!
//! # Counting
//!
//! Every SLI resolves to bad and total events per evaluation and group (`slo:sli_events:bad`,
//! `slo:sli_events:total`); each window's error ratio is Σ bad / Σ total over the window, so
//! the period SLI and the budget weigh by traffic (not an average of ratios), and a window
//! without events is 0, not NaN. Shoot-tier inputs are rates over `shoot_tier.range` recorded
//! as `shoot:slo_<entry>:bad|total` (custom: `shoot:slo_custom_<service>_<slo>:bad|total`).
//! Imported Sloth specs keep Sloth's expressions.
//!
//! # Output (`slo-gateway rules --spec F… --out DIR`)
//!
//! - `prometheus-rules.yaml` and `prometheusrule.yaml` (SLO Prometheus; `PrometheusRule` name,
//!   namespace and labels from `runtime_tier`, default `slo-gateway-slos` in `slo-prometheus`
//!   with `prometheus: slo`). Per SLO, in Sloth's naming: `slo:sli_error:ratio_rate<P>` for
//!   the period (`4w` for 28 days), labelled `sloth_id`, `sloth_service`, `sloth_slo`,
//!   `sloth_window`, from the events and their rollups (`slo:sli_events[_5m|_1h]:bad|total`);
//!   `slo:objective:ratio`, `slo:error_budget:ratio`, `slo:time_period:days`, `sloth_slo_info`;
//!   with `runtime_tier.record_windows` also `slo:sli_error:ratio_rate<w>` for every alert
//!   window, `slo:current_burn_rate:ratio`, `slo:period_burn_rate:ratio` and
//!   `slo:period_error_budget_remaining:ratio` (the alerts and dashboards compute the windows
//!   either way);
//!   a page and a ticket multiwindow multi-burn-rate alert (Google SRE workbook: page 1h/5m at
//!   2 % of the budget and 6h/30m at 5 %, ticket 1d/2h and 3d/6h at 10 %; factor = budget % ×
//!   period hours / 100 / long-window hours, so 14.4/6/3/1 for 30d and 13.44/5.6/2.8/0.933 for
//!   28d). An alert fires when both windows exceed factor × (1 − objective); a window whose
//!   threshold is ≥ 1 can never fire and is warned about. Alerts carry `sloth_severity` and,
//!   unless turned off, `severity` (`page`/`ticket`) for routing. Plus the seed group:
//!   `slo:seed_last_push:timestamp_seconds`, `SLOGatewaySeedSilent` (from the receivers'
//!   `slo_gateway_receiver_last_push_timestamp_seconds`, remembered over `seed_silent.lookback`
//!   so a receiver restart does not hide a silent seed), `SLOGatewaySeedUnreachable` (the
//!   SLO Prometheus' federation `up` per `seed`, or, for seeds federated through
//!   prometheus-garden, the age of their newest shoot-tier sample), `SLOGatewaySeedUncovered`
//!   (the garden lists shoots on a seed whose data no path delivers) and `SLOGatewaySeedClockSkew` (the receivers'
//!   `slo_gateway_receiver_clock_skew_seconds` and `…_skewed_samples_total`). The first group,
//!   `slo-gateway-events`, records the shared shoot and seed state ([`state`]) and then every
//!   counted SLO's events.
//! - `shoot/prometheus-rules.yaml` and `shoot/prometheusrule.yaml` (every shoot's Prometheus;
//!   default `shoot-slo-gateway-slis` with `prometheus: shoot`, no namespace).
//! - `alertmanager.yaml`: page/ticket receivers, notifications grouped by `seed`; a page
//!   inhibits the ticket of the same SLO and group, a seed alert every SLO alert of its seed.
//! - `dashboards/<service>.yaml`: `PersesDashboard` (`perses.dev/v1alpha2`).
//! - `agent-match.yaml` ([`agent_match_selectors`]) and `garden-match.yaml`
//!   ([`garden_match_selectors`]): the `match[]` selectors of what the runtime tier reads from
//!   prometheus-aggregate and from prometheus-garden.
//!
//! Output is deterministic: same input, byte-identical files.

pub mod catalog;
pub mod check;
pub mod cli;
pub mod duration;
pub mod load;
pub mod model;
pub mod openslo;
pub mod promql;
pub mod render;
pub mod sloth;
pub mod sources;
pub mod spec;
pub mod state;
pub mod types;

pub use cli::{run_cli, RulesArgs};
pub use load::agent_match_selectors_from_files;
pub use render::agent::{agent_match_selectors, garden_match_selectors};
pub use spec::{LoadedSpec, Spec};
