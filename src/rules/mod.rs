//! SLO specs → Prometheus recording rules, burn-rate alerts, Alertmanager routing, Perses
//! dashboards and the agent's `match[]` filter (GEP-0041's dedicated SLO Prometheus).
//!
//! Uses no network crates: everything here is text in, text out.
//!
//! # Spec (`slo-gateway/v1`, see `config/slos.yaml` for a commented example)
//!
//! A file describes one service: `service`, `labels`, `grouping` (labels every SLI aggregates
//! by, default `cluster, seed`, so each shoot has its own SLO series and alerts) and `slos`.
//! An SLO has a `name`, an `objective` in percent, a `window` (period, default `28d` as in
//! GEP-0041), an `sli` and `alerting`. SLI kinds:
//! - `events`: `error_query` / `total_query`, both containing `{{.window}}`;
//! - `raw`: `error_ratio_query` containing `{{.window}}`;
//! - `bool_gauge`: an instant 0/1 expression (probes); error ratio over w = 1 − mean over w;
//! - `catalog: <name>`: a built-in Gardener SLI, see [`catalog`].
//!
//! `{{.by}}` expands to the grouping labels. Custom SLIs must aggregate so that exactly the
//! grouping labels survive (checked on the parsed PromQL). See [`spec`] for every field.
//! [`sloth`] and [`openslo`] import Sloth `prometheus/v1` and OpenSLO v1 `SLO` documents.
//!
//! # Output (`slo-gateway rules --spec F… --out DIR`)
//!
//! - `prometheus-rules.yaml` (rule groups) and `prometheusrule.yaml` (the same as a
//!   prometheus-operator `PrometheusRule`). Per SLO, in Sloth's naming so existing dashboards
//!   and tooling work (<https://sloth.dev>): `slo:sli_error:ratio_rate<w>` for every alert
//!   window and the period (`4w` for 28 days), labelled `sloth_id`, `sloth_service`,
//!   `sloth_slo`, `sloth_window`; `slo:objective:ratio`, `slo:error_budget:ratio`,
//!   `slo:time_period:days`, `slo:current_burn_rate:ratio`, `slo:period_burn_rate:ratio`,
//!   `slo:period_error_budget_remaining:ratio`, `sloth_slo_info`; a page and a ticket
//!   multiwindow multi-burn-rate alert (Google SRE workbook, "Alerting on SLOs": page 1h/5m at
//!   2 % of the budget and 6h/30m at 5 %, ticket 1d/2h and 3d/6h at 10 %; factor = budget % ×
//!   period hours / 100 / long-window hours, so 14.4/6/3/1 for 30d and 13.44/5.6/2.8/0.933 for
//!   28d). An alert fires when both windows exceed factor × (1 − objective); a window whose
//!   threshold is ≥ 1 can never fire and is warned about. Plus `SLOGatewaySeedSilent` on the
//!   receiver's `slo_gateway_receiver_last_push_timestamp_seconds{seed}`.
//!   One deliberate difference from Sloth: the period rule (`…ratio_rate30d`/`4w`) also sets
//!   the id labels (to the values its input already has), because `promtool check rules`
//!   rejects same-named rules with identical labels in one file. Alerts carry `sloth_severity`
//!   and, unless turned off, `severity` (`page`/`ticket`) for routing.
//! - `alertmanager.yaml`: page/ticket receivers, grouping per SLO and grouping labels, page
//!   inhibits ticket of the same SLO and shoot.
//! - `dashboards/<service>.yaml`: `PersesDashboard` (`perses.dev/v1alpha2`).
//! - `agent-match.yaml`: the `match[]` selectors the agent must federate
//!   ([`agent_match_selectors`]).
//!
//! Output is deterministic: same input, byte-identical files.

pub mod catalog;
pub mod cli;
pub mod duration;
pub mod model;
pub mod openslo;
mod promql;
pub mod render;
pub mod sloth;
pub mod sources;
pub mod spec;
pub mod types;

pub use cli::{run_cli, RulesArgs};
pub use render::agent::{
    agent_match_selectors, agent_match_selectors_from_files, garden_match_selectors,
};
pub use spec::{LoadedSpec, Spec};
