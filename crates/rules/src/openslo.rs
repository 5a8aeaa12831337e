//! Importer for OpenSLO v1 `SLO` documents with an inline `ratioMetric` indicator.
//!
//! Each document becomes one SLO of service `spec.service`, named `metadata.name`, grouped by
//! `cluster, seed`. Counter queries (`counter: true`, Prometheus metric source) are selectors or
//! expressions without a window over a shoot's own metrics; they become a `shoot_events` SLI,
//! computed in every shoot's Prometheus as `sum(rate(<query>[{{.window}}]))` (a `good` query as
//! `total − good`). The first `timeWindow` is the period (default 28d) and
//! `objectives[0].target` (a ratio) the objective.

use std::path::Path;

use serde::Deserialize;

use super::duration::PromDuration;
use super::spec::{self, AlertingSpec, EventsSli, LoadedSpec, SliSpec, SloSpec, Spec, SpecError};

/// The `apiVersion` we read.
pub const OPENSLO_VERSION: &str = "openslo/v1";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Doc {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: SloDoc,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SloDoc {
    service: String,
    #[serde(default)]
    description: String,
    indicator: Option<Indicator>,
    #[serde(default)]
    time_window: Vec<TimeWindow>,
    #[serde(default)]
    objectives: Vec<Objective>,
}

#[derive(Debug, Deserialize)]
struct Indicator {
    spec: IndicatorSpec,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndicatorSpec {
    ratio_metric: Option<RatioMetric>,
}

#[derive(Debug, Deserialize)]
struct RatioMetric {
    #[serde(default)]
    counter: bool,
    good: Option<Source>,
    bad: Option<Source>,
    total: Source,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Source {
    metric_source: MetricSource,
}

#[derive(Debug, Deserialize)]
struct MetricSource {
    #[serde(rename = "type")]
    kind: String,
    spec: QuerySpec,
}

#[derive(Debug, Deserialize)]
struct QuerySpec {
    query: String,
}

#[derive(Debug, Deserialize)]
struct TimeWindow {
    duration: PromDuration,
}

#[derive(Debug, Deserialize)]
struct Objective {
    target: f64,
}

/// Reads a file of one or more OpenSLO documents (`---`-separated).
pub fn load_file(path: &Path) -> Result<Vec<LoadedSpec>, SpecError> {
    let (file, text) = spec::parse::read(path)?;
    parse_str(&file, &text)
}

/// Parses OpenSLO documents given as text; one spec per document.
pub fn parse_str(file: &str, text: &str) -> Result<Vec<LoadedSpec>, SpecError> {
    let grouping = vec!["cluster".to_owned(), "seed".to_owned()];
    let mut out = Vec::new();
    for (document, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let doc = Doc::deserialize(de).map_err(|e| spec::diagnostics::yaml_error(file, &e))?;
        let fail = |path: &str, msg: &str| {
            spec::parse::located_errors(
                file,
                text,
                document,
                vec![(path.to_owned(), msg.to_owned())],
            )
        };
        if doc.api_version != OPENSLO_VERSION || doc.kind != "SLO" {
            return Err(fail(
                "apiVersion",
                "expected apiVersion openslo/v1 and kind SLO",
            ));
        }
        let ratio = doc
            .spec
            .indicator
            .and_then(|i| i.spec.ratio_metric)
            .ok_or_else(|| {
                fail(
                    "spec.indicator",
                    "an inline indicator with ratioMetric is required",
                )
            })?;
        if !ratio.counter {
            return Err(fail(
                "spec.indicator.spec.ratioMetric.counter",
                "only counter ratio metrics are supported",
            ));
        }
        let query = |s: &Source| -> Result<String, SpecError> {
            if s.metric_source.kind != "Prometheus" {
                return Err(fail(
                    "spec.indicator.spec.ratioMetric",
                    "only Prometheus metric sources are supported",
                ));
            }
            Ok(format!(
                "sum(rate({}[{{{{.window}}}}]))",
                s.metric_source.spec.query.trim()
            ))
        };
        let total = query(&ratio.total)?;
        let error_query = match (&ratio.good, &ratio.bad) {
            (None, Some(bad)) => query(bad)?,
            (Some(good), None) => format!("{total}\n-\n{}", query(good)?),
            _ => {
                return Err(fail(
                    "spec.indicator.spec.ratioMetric",
                    "exactly one of good and bad is required",
                ))
            }
        };
        let objective = doc
            .spec
            .objectives
            .first()
            .map(|o| o.target * 100.0)
            .ok_or_else(|| fail("spec.objectives", "an objective with target is required"))?;
        let window = doc
            .spec
            .time_window
            .first()
            .map_or(PromDuration::from_secs(28 * 86400), |w| w.duration);
        let s = Spec {
            service: doc.spec.service,
            grouping: grouping.clone(),
            slos: vec![SloSpec {
                name: doc.metadata.name,
                description: doc.spec.description,
                objective,
                window,
                grouping: None,
                labels: Default::default(),
                sli: SliSpec::ShootEvents(EventsSli {
                    error_query,
                    total_query: total,
                }),
                alerting: AlertingSpec::default(),
            }],
            ..Spec::empty(OPENSLO_VERSION)
        };
        out.push(LoadedSpec::from_spec_in_document(file, text, document, s)?);
    }
    Ok(out)
}
