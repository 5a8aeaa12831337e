//! GEP-0041's initial SLOs for Gardener shoots, from the customer's perspective.
//!
//! Each entry says what is good, which tier computes the per-shoot inputs and from which
//! metrics. Shoot-tier entries record `shoot:slo_<entry>:bad` and `shoot:slo_<entry>:total` in
//! every shoot's Prometheus (names prometheus-aggregate's federation already carries); the SLO
//! Prometheus sums them per group. Garden entries are computed in the SLO Prometheus from
//! `garden_*` metrics. Every window's SLI is Σ bad / Σ total over the window (traffic-weighted),
//! see [`super::types::CountedSli`].
//!
//! Entries whose input metric Gardener does not expose yet are off: a spec must list that
//! metric under `available_metrics` to use them, and `rules check` names it otherwise.
//!
//! Where we deviate from the GEP, and why:
//! - **API server latency.** The GEP reads `shoot:apiserver_latency:percentage`, a 1 h ratio.
//!   We record the same selection (`le="1.0"`, no WATCH/LIST/CONNECT, no log/exec/portforward/
//!   proxy/attach) as `rate`s over `shoot_tier.range`: a 1 h ratio cannot be weighted by
//!   traffic, and it would make every alert window at least 1 h long. `le` matches both `"1"`
//!   (Prometheus 2) and `"1.0"` (Prometheus 3).
//! - **API server availability** reads `probe_success` of Gardener's two probes (`blackbox-apiserver`,
//!   from the seed; `blackbox-exporter-k8s-service-check`, from inside the shoot) directly, as
//!   the GEP's query does, rather than the `shoot:availability` recording rules; sampled every
//!   rule evaluation instead of the GEP's 5m subquery. "Missing data is failure" holds inside
//!   the shoot Prometheus (`or vector(0)`: it runs, but no probe answers). A shoot with no
//!   shoot-tier data at all is not down but unknown: its minutes come from Gardener's own
//!   `APIServerAvailable` condition while its seed delivers, and are left out while its seed is
//!   silent or the garden says the API server is not meant to serve (hibernated, being created
//!   or deleted, migrating); see [`crate::state`].
//! - **Machine creation latency** uses the phase series MCM exports today
//!   (`mcm_machine_current_status_phase`) like the GEP's query, judged per machine and minute:
//!   every evaluation looks at the machines that were Pending (0) or CrashLoopBackOff (−2) 20
//!   minutes earlier and counts each good when it has been Running (1) since, bad otherwise.
//!   A machine created in 3 minutes is 3 good events, one stuck for good is bad every minute
//!   from its 20th on, one that took 25 minutes is 20 good and 5 bad; a machine deleted before
//!   it ran counts as not created. The GEP's instant ratio would count every machine still in
//!   a normal creation as bad. MCM exports other phases (InPlaceUpdating, …) as 0 too: a machine
//!   in such a phase is judged like one in creation. The histogram the GEP asks for
//!   (`mcm_machine_creation_duration_minutes_bucket`, bucket `le="20"`) is the opt-in
//!   `machine-creation-latency-histogram`.
//! - **Node availability** follows the GEP's query and additionally leaves out terminating
//!   machines (phase −4), as the GEP's text says. It assumes MCM's current phase values
//!   (Running = 1, Terminating = −4) and `mcm_machine_info{node_name}`.
//! - **Shoot availability** leaves out Unknown (−1) conditions (gardener-controller-manager sets
//!   them when gardenlet stops reporting: nobody checked) where the GEP counts them as bad.
//! - **Shoot creation/reconcile latency** need `garden_shoot_operation_duration_minutes_bucket`
//!   (with `operation`, `le` and `seed` labels, a bucket at 30) and can only be grouped by
//!   `seed`: an operation is no per-shoot event stream.
//! - **API server errors** count terminated requests over all requests, as the GEP's query;
//!   5xx answers are not counted (a custom `shoot_events` SLI can, see `config/slos.yaml`).

use super::duration::PromDuration;
use super::state;
use super::types::{CountedSli, ShootRule, Tier};

/// What an entry needs to build its SLI.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The SLO's grouping labels (runtime tier).
    pub grouping: &'a [String],
    /// Range of the rates the inputs are recorded with (`shoot_tier.range`).
    pub range: PromDuration,
}

/// Which grouping labels an entry supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Groupable {
    /// Any labels the per-shoot series carry (`cluster`, `seed`, `project`, …).
    PerShoot,
    /// Only `seed` (or nothing): the input has no per-shoot series.
    SeedOnly,
}

/// A catalog SLI.
#[derive(Debug)]
pub struct CatalogEntry {
    /// Name used in specs (`sli: {catalog: <name>}`).
    pub name: &'static str,
    /// GEP-0041's name for it.
    pub gep: &'static str,
    /// What counts as good, one line for docs and dashboards.
    pub meaning: &'static str,
    /// The metrics it is computed from (Markdown).
    pub source: &'static str,
    /// Where the per-shoot inputs are computed.
    pub tier: Tier,
    /// A metric Gardener does not expose yet: the entry is off unless a spec lists it under
    /// `available_metrics`.
    pub requires: Option<&'static str>,
    /// Grouping labels it supports.
    pub groupable: Groupable,
    build: fn(&Context<'_>) -> CountedSli,
}

impl CatalogEntry {
    /// The SLI for `ctx`.
    pub fn sli(&self, ctx: &Context<'_>) -> CountedSli {
        (self.build)(ctx)
    }
}

const CATALOG: &[CatalogEntry] = &[
    CatalogEntry {
        name: "apiserver-availability",
        gep: "kube-apiserver general availability",
        meaning: "the shoot's kube-apiserver answers at least one of the seed-side and shoot-side probes (missing probes count as down); minutes without shoot-tier data from Gardener's `APIServerAvailable`; planned-down shoots and silent seeds left out (see Life cycle)",
        source: "`probe_success{job=~\"blackbox-apiserver|blackbox-exporter-k8s-service-check\"}` (shoot Prometheus); `garden_shoot_condition`, `garden_shoot_hibernated`, `garden_shoot_operation_states` (prometheus-garden)",
        tier: Tier::Shoot,
        requires: None,
        groupable: Groupable::PerShoot,
        build: apiserver_availability,
    },
    CatalogEntry {
        name: "apiserver-latency",
        gep: "kube-apiserver latency",
        meaning: "requests answered within 1 s (WATCH, LIST, CONNECT, log/exec/portforward/proxy/attach excluded), as `shoot:apiserver_latency:percentage` selects them",
        source: "`apiserver_request_duration_seconds_bucket`/`_count` (shoot Prometheus)",
        tier: Tier::Shoot,
        requires: None,
        groupable: Groupable::PerShoot,
        build: apiserver_latency,
    },
    CatalogEntry {
        name: "apiserver-errors",
        gep: "kube-apiserver error rate",
        meaning: "requests not terminated by the API server (terminations / all requests)",
        source: "`apiserver_request_terminations_total`, `apiserver_request_total` (shoot Prometheus)",
        tier: Tier::Shoot,
        requires: None,
        groupable: Groupable::PerShoot,
        build: apiserver_errors,
    },
    CatalogEntry {
        name: "machine-creation-latency",
        gep: "Machine creation latency",
        meaning: "machines in creation (Pending or CrashLoopBackOff) that are Running 20 min later, per machine and minute in creation",
        source: "`mcm_machine_current_status_phase` (shoot Prometheus)",
        tier: Tier::Shoot,
        requires: None,
        groupable: Groupable::PerShoot,
        build: machine_creation_latency,
    },
    CatalogEntry {
        name: "machine-creation-latency-histogram",
        gep: "Machine creation latency",
        meaning: "machines created (Pending → Running) within 20 min, from the histogram the GEP asks MCM for",
        source: "`mcm_machine_creation_duration_minutes_bucket` (shoot Prometheus; not in MCM yet)",
        tier: Tier::Shoot,
        requires: Some("mcm_machine_creation_duration_minutes_bucket"),
        groupable: Groupable::PerShoot,
        build: machine_creation_latency_histogram,
    },
    CatalogEntry {
        name: "node-availability",
        gep: "Node general availability",
        meaning: "machines Running with their node, of all machines with a node older than 10 min, terminating ones excluded",
        source: "`mcm_machine_current_status_phase`, `mcm_machine_info`, `kube_node_created` (shoot Prometheus)",
        tier: Tier::Shoot,
        requires: None,
        groupable: Groupable::PerShoot,
        build: node_availability,
    },
    CatalogEntry {
        name: "shoot-availability",
        gep: "Shoot general availability",
        meaning: "conditions APIServerAvailable, ControlPlaneHealthy, EveryNodeReady, SystemComponentsHealthy healthy or progressing (≥ 1); Unknown conditions, planned-down shoots and silent seeds left out",
        source: "`garden_shoot_condition`, `garden_shoot_hibernated`, `garden_shoot_operation_states` (prometheus-garden)",
        tier: Tier::Runtime,
        requires: None,
        groupable: Groupable::PerShoot,
        build: shoot_availability,
    },
    CatalogEntry {
        name: "shoot-creation-latency",
        gep: "Shoot creation latency",
        meaning: "shoot creations finished within 30 min",
        source: "`garden_shoot_operation_duration_minutes_bucket{operation=\"Create\"}` (prometheus-garden; not in Gardener yet)",
        tier: Tier::Runtime,
        requires: Some("garden_shoot_operation_duration_minutes_bucket"),
        groupable: Groupable::SeedOnly,
        build: shoot_creation_latency,
    },
    CatalogEntry {
        name: "shoot-reconcile-latency",
        gep: "Shoot reconcile latency",
        meaning: "shoot reconciliations finished within 30 min",
        source: "`garden_shoot_operation_duration_minutes_bucket{operation=\"Reconcile\"}` (prometheus-garden; not in Gardener yet)",
        tier: Tier::Runtime,
        requires: Some("garden_shoot_operation_duration_minutes_bucket"),
        groupable: Groupable::SeedOnly,
        build: shoot_reconcile_latency,
    },
];

/// The entry called `name`.
pub fn lookup(name: &str) -> Option<&'static CatalogEntry> {
    CATALOG.iter().find(|e| e.name == name)
}

/// All entries, in catalog order.
pub fn entries() -> &'static [CatalogEntry] {
    CATALOG
}

/// All names, in catalog order.
pub fn names() -> impl Iterator<Item = &'static str> {
    CATALOG.iter().map(|e| e.name)
}

/// Metrics some entry requires that Gardener does not expose yet.
pub fn unreleased_metrics() -> Vec<&'static str> {
    let mut v: Vec<&str> = CATALOG.iter().filter_map(|e| e.requires).collect();
    v.dedup();
    v
}

/// The catalog as a Markdown table (README, `slo-gateway rules catalog`).
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| catalog name | GEP-0041 SLO | good when | computed in | source metrics | default |\n\
         | --- | --- | --- | --- | --- | --- |\n",
    );
    for e in CATALOG {
        let tier = match e.tier {
            Tier::Shoot => "shoot Prometheus → SLO Prometheus",
            Tier::Runtime => "SLO Prometheus",
        };
        let default = match e.requires {
            Some(m) => format!("off: needs `{m}` in `available_metrics`"),
            None => "on".to_owned(),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {tier} | {} | {default} |\n",
            e.name, e.gep, e.meaning, e.source
        ));
    }
    out
}

/// `shoot:slo_<entry>:<suffix>`, the name an entry's shoot-tier input is recorded under.
pub fn shoot_series(entry: &str, suffix: &str) -> String {
    format!("shoot:slo_{}:{suffix}", super::types::snake(entry))
}

/// A shoot-tier series as the SLO Prometheus counts it: planned-down shoots and minutes of
/// silent seeds left out (see [`crate::state`]).
pub fn counted_shoot_series(series: &str) -> String {
    format!(
        "{series} {} {}",
        state::unless_excluded(),
        state::unless_silent_seed()
    )
}

/// bad/total recorded in the shoot tier, summed per group in the runtime tier.
fn shoot_tier_sli(entry: &str, ctx: &Context<'_>, bad: String, total: String) -> CountedSli {
    let by = ctx.grouping.join(", ");
    let sum = |suffix: &str| {
        format!(
            "sum by ({by}) (\n  {}\n)",
            counted_shoot_series(&shoot_series(entry, suffix))
        )
    };
    CountedSli {
        bad: sum("bad"),
        total: sum("total"),
        shoot_rules: vec![
            ShootRule {
                record: shoot_series(entry, "bad"),
                expr: bad,
            },
            ShootRule {
                record: shoot_series(entry, "total"),
                expr: total,
            },
        ],
    }
}

fn apiserver_availability(ctx: &Context<'_>) -> CountedSli {
    const NAME: &str = "apiserver-availability";
    let by = ctx.grouping.join(", ");
    // Per shoot and evaluation one event: measured by the shoot tier (averaged over the
    // aggregate's replicas), else filled from Gardener's health check; neither for planned-down
    // shoots and silent seeds (unknown, left out).
    let per_shoot = |suffix: &str, fill: &str| {
        format!(
            "sum by ({by}) (\n  (\n    avg by (cluster, seed) ({})\n    {}\n    {}\n  )\n  or on (cluster)\n  ({fill})\n)",
            shoot_series(NAME, suffix),
            state::unless_excluded(),
            state::unless_silent_seed(),
        )
    };
    let mut sli = shoot_tier_sli(
        NAME,
        ctx,
        r#"1 - (max(probe_success{job=~"blackbox-apiserver|blackbox-exporter-k8s-service-check"}) or vector(0))"#.to_owned(),
        "vector(1)".to_owned(),
    );
    sli.bad = per_shoot("bad", &format!("1 - {}", state::GARDEN_AVAILABLE));
    sli.total = per_shoot("total", &format!("0 * {} + 1", state::GARDEN_AVAILABLE));
    sli
}

/// Rate of `selector` over the context's range, summed (shoot tier: no labels).
fn rate(ctx: &Context<'_>, selector: &str) -> String {
    format!("sum(rate({selector}[{}]))", ctx.range)
}

fn apiserver_latency(ctx: &Context<'_>) -> CountedSli {
    const SELECTION: &str =
        r#"subresource!~"log|portforward|exec|proxy|attach",verb!~"CONNECT|LIST|WATCH""#;
    let total = rate(
        ctx,
        &format!("apiserver_request_duration_seconds_count{{{SELECTION}}}"),
    );
    let fast = rate(
        ctx,
        &format!(r#"apiserver_request_duration_seconds_bucket{{{SELECTION},le=~"1|1.0"}}"#),
    );
    shoot_tier_sli(
        "apiserver-latency",
        ctx,
        format!("{total}\n-\n{fast}"),
        total,
    )
}

fn apiserver_errors(ctx: &Context<'_>) -> CountedSli {
    shoot_tier_sli(
        "apiserver-errors",
        ctx,
        // The terminations counter exists only after the first termination.
        format!(
            "{} or vector(0)",
            rate(ctx, "apiserver_request_terminations_total")
        ),
        rate(ctx, "apiserver_request_total"),
    )
}

/// How long a machine may take from Pending to Running (GEP-0041).
pub const MACHINE_CREATION_DEADLINE: &str = "20m";

fn machine_creation_latency(ctx: &Context<'_>) -> CountedSli {
    // Every evaluation judges the machines that were in creation (Pending 0 or
    // CrashLoopBackOff −2) one deadline ago: good when Running since, bad otherwise.
    let d = MACHINE_CREATION_DEADLINE;
    let judged =
        format!("(max by (name) (mcm_machine_current_status_phase offset {d}) <= 0 >= -2 != -1)");
    shoot_tier_sli(
        "machine-creation-latency",
        ctx,
        format!(
            "count(\n  {judged}\n  unless on (name)\n  (max by (name) (max_over_time(mcm_machine_current_status_phase[{d}])) == 1)\n) or vector(0)"
        ),
        format!("count(\n  {judged}\n) or vector(0)"),
    )
}

fn machine_creation_latency_histogram(ctx: &Context<'_>) -> CountedSli {
    let bucket = |le: &str| {
        rate(
            ctx,
            &format!("mcm_machine_creation_duration_minutes_bucket{{le{le}}}"),
        )
    };
    let total = bucket(r#"="+Inf""#);
    shoot_tier_sli(
        "machine-creation-latency-histogram",
        ctx,
        format!("{total}\n-\n{}", bucket(r#"=~"20|20.0""#)),
        total,
    )
}

fn node_availability(ctx: &Context<'_>) -> CountedSli {
    // Machines (phase filtered) with their node, whose node is older than 10 minutes.
    let machines = |phase: &str| {
        format!(
            "count(\n  (mcm_machine_current_status_phase {phase})\n  * on (name) group_left (node_name)\n  max by (name, node_name) (mcm_machine_info{{node_name!=\"\"}})\n  and on (node_name)\n  (time() - max by (node_name) (label_replace(kube_node_created, \"node_name\", \"$1\", \"node\", \"(.+)\")) > 600)\n) or vector(0)"
        )
    };
    // Phases: Running 1, Pending 0, Unknown −1, CrashLoopBackOff −2, Failed −3, Terminating −4.
    shoot_tier_sli(
        "node-availability",
        ctx,
        machines("> -4 < 1"),
        machines("!= -4"),
    )
}

fn shoot_availability(ctx: &Context<'_>) -> CountedSli {
    let by = ctx.grouping.join(", ");
    // Unknown (−1) conditions are left out with planned-down shoots and silent seeds.
    let conditions = format!(
        "(\n  {}\n  {}\n  {}\n)",
        state::with_cluster(
            r#"garden_shoot_condition{condition=~"APIServerAvailable|ControlPlaneHealthy|EveryNodeReady|SystemComponentsHealthy"} >= 0"#
        ),
        state::unless_excluded(),
        state::unless_silent_seed()
    );
    CountedSli {
        // False (0) is bad; True (1) and Progressing (2) are good.
        bad: format!("sum by ({by}) ({conditions} < bool 1)"),
        total: format!("count by ({by}) {conditions}"),
        shoot_rules: Vec::new(),
    }
}

fn operation_latency(ctx: &Context<'_>, operation: &str) -> CountedSli {
    let by = ctx.grouping.join(", ");
    let bucket = |le: &str| {
        format!(
            "sum by ({by}) (rate(garden_shoot_operation_duration_minutes_bucket{{operation=\"{operation}\",le{le}}}[{}]))",
            ctx.range
        )
    };
    let total = bucket(r#"="+Inf""#);
    CountedSli {
        bad: format!("{total}\n-\n{}", bucket(r#"=~"30|30.0""#)),
        total,
        shoot_rules: Vec::new(),
    }
}

fn shoot_creation_latency(ctx: &Context<'_>) -> CountedSli {
    operation_latency(ctx, "Create")
}

fn shoot_reconcile_latency(ctx: &Context<'_>) -> CountedSli {
    operation_latency(ctx, "Reconcile")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql;

    fn ctx(grouping: &[&str]) -> (Vec<String>, PromDuration) {
        (
            grouping.iter().map(|s| (*s).to_owned()).collect(),
            PromDuration::from_secs(300),
        )
    }

    #[test]
    fn every_entry_parses_in_both_tiers() {
        for grouping in [&["cluster", "seed"][..], &["seed"][..], &[][..]] {
            let (g, range) = ctx(grouping);
            let c = Context {
                grouping: &g,
                range,
            };
            for e in entries() {
                let sli = e.sli(&c);
                for q in [&sli.bad, &sli.total] {
                    let expr =
                        promql::parse(q).unwrap_or_else(|err| panic!("{}: {err}\n{q}", e.name));
                    promql::check_aggregates_by(&expr, &g, true)
                        .unwrap_or_else(|err| panic!("{}: {err}", e.name));
                }
                assert_eq!(
                    sli.shoot_rules.is_empty(),
                    e.tier == Tier::Runtime,
                    "{}",
                    e.name
                );
                for r in &sli.shoot_rules {
                    assert!(crate::sources::aggregate_carries(&r.record), "{}", r.record);
                    let expr = promql::parse(&r.expr).unwrap();
                    promql::check_shoot_tier(&expr, &["cluster".into(), "seed".into()])
                        .unwrap_or_else(|err| panic!("{}: {err}", e.name));
                }
            }
        }
    }

    #[test]
    fn table_lists_every_entry() {
        let t = markdown_table();
        for n in names() {
            assert!(t.contains(&format!("| `{n}` |")), "{n}");
        }
        assert_eq!(
            unreleased_metrics(),
            vec![
                "mcm_machine_creation_duration_minutes_bucket",
                "garden_shoot_operation_duration_minutes_bucket"
            ]
        );
    }
}
