//! Importer for Sloth `prometheus/v1` specs.
//!
//! A Sloth SLO maps 1:1 onto ours with no grouping labels, `severity_label: false` and the
//! period given on the command line (Sloth's `--default-slo-period`, 30d by default), so the
//! generated rules have Sloth's names, labels and expressions.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::duration::PromDuration;
use super::spec::{
    self, AlertSeveritySpec, AlertingSpec, EventsSli, LoadedSpec, RawSli, SliSpec, SloSpec, Spec,
    SpecError,
};

pub use super::types::SLOTH_VERSION;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlothSpec {
    version: String,
    service: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    slos: Vec<SlothSlo>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlothSlo {
    name: String,
    #[serde(default)]
    description: String,
    objective: f64,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    sli: SlothSli,
    #[serde(default)]
    alerting: SlothAlerting,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlothSli {
    events: Option<EventsSli>,
    raw: Option<RawSli>,
    plugin: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SlothAlerting {
    name: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    page_alert: SlothAlertMeta,
    ticket_alert: SlothAlertMeta,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SlothAlertMeta {
    disable: bool,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

impl From<SlothAlertMeta> for AlertSeveritySpec {
    fn from(m: SlothAlertMeta) -> Self {
        Self {
            enabled: !m.disable,
            labels: m.labels,
            annotations: m.annotations,
            min_outage: None,
        }
    }
}

/// Reads a Sloth spec file.
pub fn load_file(path: &Path, window: PromDuration) -> Result<LoadedSpec, SpecError> {
    let (file, text) = spec::parse::read(path)?;
    parse_str(&file, &text, window)
}

/// Parses a Sloth spec given as text.
pub fn parse_str(file: &str, text: &str, window: PromDuration) -> Result<LoadedSpec, SpecError> {
    let s: SlothSpec = spec::parse::from_yaml(file, text)?;
    let mut problems = Vec::new();
    if s.version != SLOTH_VERSION {
        problems.push(("version".to_owned(), format!("expected {SLOTH_VERSION:?}")));
    }
    let mut slos = Vec::new();
    for (i, slo) in s.slos.into_iter().enumerate() {
        let sli = match (slo.sli.events, slo.sli.raw, slo.sli.plugin) {
            (Some(e), None, None) => SliSpec::Events(e),
            (None, Some(r), None) => SliSpec::Raw(r),
            (None, None, Some(_)) => {
                problems.push((
                    format!("slos[{i}].sli.plugin"),
                    "Sloth SLI plugins are not supported".into(),
                ));
                continue;
            }
            _ => {
                problems.push((
                    format!("slos[{i}].sli"),
                    "exactly one of events, raw, plugin is required".into(),
                ));
                continue;
            }
        };
        let a = slo.alerting;
        let page: AlertSeveritySpec = a.page_alert.into();
        let ticket: AlertSeveritySpec = a.ticket_alert.into();
        if a.name.is_empty() && (page.enabled || ticket.enabled) {
            problems.push((
                format!("slos[{i}].alerting.name"),
                "alert name is required".into(),
            ));
        }
        slos.push(SloSpec {
            name: slo.name,
            description: slo.description,
            objective: slo.objective,
            window,
            grouping: None,
            labels: slo.labels,
            sli,
            alerting: AlertingSpec {
                enabled: page.enabled || ticket.enabled,
                name: Some(a.name),
                labels: a.labels,
                annotations: a.annotations,
                page,
                ticket,
                severity_label: false,
                windows: None,
            },
        });
    }
    if !problems.is_empty() {
        return Err(spec::parse::located_errors(file, text, 0, problems));
    }
    let spec = Spec {
        service: s.service,
        labels: s.labels,
        grouping: Vec::new(),
        slos,
        ..Spec::empty(SLOTH_VERSION)
    };
    LoadedSpec::from_spec(file, text, spec)
}
