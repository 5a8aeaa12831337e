//! Default SLIs for Gardener shoots from the customer's perspective.
//!
//! Each is built only from series that exist in a seed's `prometheus-aggregate` or the garden
//! (see the field notes): nothing here invents a metric. Every SLI aggregates `by` the SLO's
//! grouping labels (default `cluster, seed`), so each shoot gets its own SLO series.
//!
//! | name | kind | definition |
//! | --- | --- | --- |
//! | `apiserver-availability` | bool_gauge | `shoot:availability{kind="shoot"}` — the blackbox probe of the shoot's API server |
//! | `apiserver-errors` | events | (5xx responses + terminated requests) / all requests, from `apiserver_request_total` and `apiserver_request_terminations_total` |
//! | `apiserver-latency` | events | requests slower than 1 s / all, for mutating verbs and single-object reads |
//! | `node-availability` | bool_gauge | machines `Running` (`mcm_machine_current_status_phase == 1`) that have a node (`mcm_machine_info{node_name!=""}`) |
//! | `shoot-availability` | bool_gauge | all customer-facing `garden_shoot_condition`s true, hibernated shoots excluded |
//!
//! Approximations, stated once here:
//! - **API latency.** SIG-scalability's SLO is "p99 ≤ 1 s per cluster-day" for mutating calls
//!   and resource-scope reads (≤ 30 s for namespace/cluster-scope LISTs). A percentile is no
//!   error ratio, so we count requests above the 1 s bucket (`le="1"`) as bad: "99 % of these
//!   requests within 1 s" is then a 99 % objective on this SLI. Mutating means
//!   `POST|PUT|PATCH|DELETE`; resource-scope reads are `GET` (single objects). LISTs (the
//!   30 s class) and long-running `WATCH`/`CONNECT` are left out.
//! - **Errors.** Series for 5xx codes or terminations only exist once such a request happened;
//!   each term falls back to `0 * total` so healthy clusters still get an SLI of 0.
//! - **Node and shoot availability** average the 0/1 state of every machine (shoot) in the
//!   group over the window through a 1m subquery; a machine present for part of the window
//!   counts with the part it was present.
//! - **Shoot availability** comes from the garden (`garden_shoot_*` carry `project` and `name`,
//!   not `cluster`/`seed`). We derive `cluster="shoot--<project>--<name>"`, the shoot
//!   Prometheus' external label, so the series line up with the other SLIs; no `seed` label.
//!   Conditions: `APIServerAvailable`, `ControlPlaneHealthy`, `EveryNodeReady`,
//!   `SystemComponentsHealthy`; `Progressing` (2) and unknown (−1) count as bad.
//!
//! Landscapes override the objective, window and alerting per SLO, or replace an SLI entirely
//! with a custom `events`/`raw`/`bool_gauge` one.

use super::model::Sli;

/// A catalog SLI.
#[derive(Debug)]
pub struct CatalogEntry {
    /// Name used in specs (`sli: {catalog: <name>}`).
    pub name: &'static str,
    /// One line for docs and dashboards.
    pub description: &'static str,
    /// Builds the SLI for the given grouping labels.
    pub sli: fn(&[String]) -> Sli,
}

const CATALOG: &[CatalogEntry] = &[
    CatalogEntry {
        name: "apiserver-availability",
        description: "kube-apiserver reachable by the blackbox probe (shoot:availability)",
        sli: apiserver_availability,
    },
    CatalogEntry {
        name: "apiserver-errors",
        description: "kube-apiserver requests answered with 5xx or terminated",
        sli: apiserver_errors,
    },
    CatalogEntry {
        name: "apiserver-latency",
        description: "mutating and single-object read requests slower than 1 s",
        sli: apiserver_latency,
    },
    CatalogEntry {
        name: "node-availability",
        description: "machines Running with a node",
        sli: node_availability,
    },
    CatalogEntry {
        name: "shoot-availability",
        description: "shoot conditions all true (hibernated shoots excluded)",
        sli: shoot_availability,
    },
];

/// The entry called `name`.
pub fn lookup(name: &str) -> Option<&'static CatalogEntry> {
    CATALOG.iter().find(|e| e.name == name)
}

/// All names, in catalog order.
pub fn names() -> impl Iterator<Item = &'static str> {
    CATALOG.iter().map(|e| e.name)
}

/// `sum by (<grouping>) (rate(<selector>[{{.window}}]))`.
fn sum_rate(by: &str, selector: &str) -> String {
    format!("sum by ({by}) (rate({selector}[{{{{.window}}}}]))")
}

fn apiserver_availability(_grouping: &[String]) -> Sli {
    Sli::BoolGauge {
        expr: r#"shoot:availability{kind="shoot"}"#.to_owned(),
    }
}

fn apiserver_errors(grouping: &[String]) -> Sli {
    let by = grouping.join(", ");
    let total = sum_rate(&by, "apiserver_request_total");
    let or_zero = |q: String| format!("({q} or 0 * {total})");
    Sli::Events {
        error_query: format!(
            "{}\n+\n{}",
            or_zero(sum_rate(&by, r#"apiserver_request_total{code=~"5.."}"#)),
            or_zero(sum_rate(&by, "apiserver_request_terminations_total"))
        ),
        total_query: total.clone(),
    }
}

fn apiserver_latency(grouping: &[String]) -> Sli {
    let by = grouping.join(", ");
    const VERBS: &str = r#"verb=~"DELETE|GET|PATCH|POST|PUT""#;
    let bucket = |le: &str| {
        sum_rate(
            &by,
            &format!(r#"apiserver_request_duration_seconds_bucket{{{VERBS},le="{le}"}}"#),
        )
    };
    Sli::Events {
        error_query: format!("{}\n-\n{}", bucket("+Inf"), bucket("1")),
        total_query: bucket("+Inf"),
    }
}

fn node_availability(grouping: &[String]) -> Sli {
    let on: String = ["namespace", "name"]
        .into_iter()
        .map(str::to_owned)
        .chain(grouping.iter().cloned())
        .collect::<Vec<_>>()
        .join(", ");
    Sli::BoolGauge {
        expr: format!(
            "(mcm_machine_current_status_phase == bool 1)\n* on ({on}) group_left ()\n\
             ((count by ({on}) (mcm_machine_info{{node_name!=\"\"}}) > bool 0)\n\
             or on ({on}) (0 * count by ({on}) (mcm_machine_info)))"
        ),
    }
}

fn shoot_availability(_grouping: &[String]) -> Sli {
    Sli::BoolGauge {
        expr: concat!(
            "label_replace(\n",
            "  label_join(\n",
            "    min by (project, name) (garden_shoot_condition{condition=~\"APIServerAvailable|ControlPlaneHealthy|EveryNodeReady|SystemComponentsHealthy\"} == bool 1)\n",
            "    unless on (project, name) (garden_shoot_hibernated == 1),\n",
            "    \"cluster\", \"--\", \"project\", \"name\"),\n",
            "  \"cluster\", \"shoot--$1\", \"cluster\", \"(.+)\")"
        )
        .to_owned(),
    }
}
