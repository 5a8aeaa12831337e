//! Alertmanager routing for the generated alerts.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::prometheus::{ID_LABEL, SEVERITY_LABEL};
use crate::model::Slo;
use crate::spec::AlertmanagerSpec;

/// The Alertmanager configuration as a JSON value (rendered to YAML by the caller).
///
/// Routing: SLO alerts by `sloth_severity` (set on every SLO alert, also on imported Sloth
/// specs), then any other alert by `severity` (the seed alerts). Notifications are grouped by
/// `seed`: one page (one ticket) per seed, listing its shoots. A page inhibits the ticket of
/// the same SLO and group; a firing seed alert (`seed_alerts`) inhibits every SLO alert of its
/// seed, so a seed outage is one page, not one per shoot.
pub fn config(slos: &[Slo], spec: &AlertmanagerSpec, seed_alerts: &[&str]) -> Value {
    let grouping: BTreeSet<&str> = slos
        .iter()
        .flat_map(|s| s.grouping.iter().map(String::as_str))
        .chain(["seed"])
        .collect();
    let equal: Vec<&str> = [ID_LABEL]
        .into_iter()
        .chain(grouping.iter().copied())
        .collect();
    let route = |label: &str, value: &str, receiver: &str| json!({"receiver": receiver, "matchers": [format!("{label}=\"{value}\"")]});
    let receivers: Vec<Value> = if spec.receivers.is_empty() {
        let names: BTreeSet<&str> = [
            spec.default_receiver.as_str(),
            spec.page_receiver.as_str(),
            spec.ticket_receiver.as_str(),
        ]
        .into_iter()
        .collect();
        names.into_iter().map(|n| json!({ "name": n })).collect()
    } else {
        // Validation made sure these are mappings with string keys, which convert losslessly.
        spec.receivers
            .iter()
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect()
    };
    let mut inhibit_rules = vec![json!({
        "source_matchers": [format!("{SEVERITY_LABEL}=\"page\"")],
        "target_matchers": [format!("{SEVERITY_LABEL}=\"ticket\"")],
        "equal": equal,
    })];
    if !seed_alerts.is_empty() {
        inhibit_rules.push(json!({
            "source_matchers": [format!("alertname=~\"{}\"", seed_alerts.join("|"))],
            "target_matchers": [format!("{SEVERITY_LABEL}=~\"page|ticket\"")],
            "equal": ["seed"],
        }));
    }
    json!({
        "route": {
            "receiver": spec.default_receiver,
            "group_by": ["seed"],
            "group_wait": spec.group_wait.to_string(),
            "group_interval": spec.group_interval.to_string(),
            "repeat_interval": spec.repeat_interval.to_string(),
            "routes": [
                route(SEVERITY_LABEL, "page", &spec.page_receiver),
                route(SEVERITY_LABEL, "ticket", &spec.ticket_receiver),
                route("severity", "page", &spec.page_receiver),
                route("severity", "ticket", &spec.ticket_receiver),
            ],
        },
        "inhibit_rules": inhibit_rules,
        "receivers": receivers,
    })
}
