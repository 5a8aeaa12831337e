//! Rule generator tests: golden files, PromQL validity, determinism, spec errors, importers,
//! Perses schema. `UPDATE_GOLDEN=1 cargo test --test it rules::` rewrites the golden files.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use slo_gateway::rules::check::check_together;
use slo_gateway::rules::load::{load_file, parse_str};
use slo_gateway::rules::render::{render_all, Files};
use slo_gateway::rules::spec::{Level, LoadedSpec, SpecError};
use slo_gateway::rules::{agent_match_selectors, openslo, sloth};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(path: &str) -> LoadedSpec {
    load_file(&root().join(path)).unwrap()
}

fn render(paths: &[&str]) -> Files {
    let specs: Vec<LoadedSpec> = paths.iter().map(|p| load(p)).collect();
    check_together(&specs).unwrap();
    render_all(&specs).unwrap()
}

/// Compares `content` with the golden file, or rewrites it under UPDATE_GOLDEN=1.
fn golden(path: &Path, content: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        return;
    }
    let want = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    assert!(
        want == content,
        "{} differs from the generated output (run with UPDATE_GOLDEN=1 to refresh)",
        path.display()
    );
}

/// Spec files under tests/rules/specs/; burn-rate, catalog, lifecycle, rollups, traffic and twin are inputs
/// of the promtool unit tests (tests/rules/promtool/).
const CASES: &[&str] = &[
    "catalog",
    "events",
    "raw",
    "bool_gauge",
    "burn-rate",
    "shoot_events",
    "traffic",
    "twin",
    "rollups",
    "lifecycle",
];

#[test]
fn golden_files() {
    for case in CASES {
        let files = render(&[&format!("tests/rules/specs/{case}.yaml")]);
        for (name, content) in &files {
            golden(
                &root().join("tests/rules/golden").join(case).join(name),
                content,
            );
        }
    }
}

fn all_outputs() -> Vec<Files> {
    let mut out: Vec<Files> = CASES
        .iter()
        .map(|c| render(&[&format!("tests/rules/specs/{c}.yaml")]))
        .collect();
    out.push(render(&["config/slos.yaml"]));
    out
}

/// Every rule of a rule file.
fn rules_of(files: &Files, file: &str) -> Vec<Value> {
    let rules: Value = serde_yaml_ng::from_str(&files[file]).unwrap();
    rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter().cloned())
        .collect()
}

/// Runtime-tier expressions.
fn rule_exprs(files: &Files) -> Vec<String> {
    rules_of(files, "prometheus-rules.yaml")
        .iter()
        .map(|r| r["expr"].as_str().unwrap().to_owned())
        .collect()
}

/// Shoot-tier rules as (record, expr).
fn shoot_rules(files: &Files) -> Vec<(String, String)> {
    rules_of(files, "shoot/prometheus-rules.yaml")
        .iter()
        .map(|r| {
            (
                r["record"].as_str().unwrap().to_owned(),
                r["expr"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn every_expression_parses() {
    let mut n = 0;
    let variable = regex::Regex::new(r"\$\w+").unwrap();
    for files in all_outputs() {
        let shoot = shoot_rules(&files).into_iter().map(|(_, e)| e);
        for e in rule_exprs(&files).into_iter().chain(shoot) {
            promql_parser::parser::parse(&e).unwrap_or_else(|err| panic!("{err}\n{e}"));
            n += 1;
        }
        let dash: Value = serde_yaml_ng::from_str(
            files
                .iter()
                .find(|(k, _)| k.starts_with("dashboards/"))
                .unwrap()
                .1,
        )
        .unwrap();
        for panel in dash["spec"]["config"]["panels"]
            .as_object()
            .unwrap()
            .values()
        {
            for q in panel["spec"]["queries"].as_array().unwrap() {
                let q = q["spec"]["plugin"]["spec"]["query"].as_str().unwrap();
                // Perses variables are interpolated before Prometheus sees the query.
                let q = variable.replace_all(q, ".*");
                promql_parser::parser::parse(&q).unwrap_or_else(|err| panic!("{err}\n{q}"));
                n += 1;
            }
        }
    }
    assert!(n > 400, "only {n} expressions");
}

#[test]
fn output_is_deterministic() {
    let a = render(&["config/slos.yaml", "tests/rules/specs/events.yaml"]);
    for _ in 0..3 {
        assert_eq!(
            a,
            render(&["config/slos.yaml", "tests/rules/specs/events.yaml"])
        );
    }
}

#[test]
fn config_example_is_valid_and_uses_every_kind() {
    let s = load("config/slos.yaml");
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    let text = std::fs::read_to_string(root().join("config/slos.yaml")).unwrap();
    for kind in [
        "catalog:",
        " events:",
        "shoot_events:",
        "raw:",
        "bool_gauge:",
        "available_metrics:",
        "local_metrics:",
        "seed_silent:",
        "seed_unreachable:",
        "seed_uncovered:",
        "seed_clock_skew:",
        "min_outage:",
        "shoot_tier:",
        "runtime_tier:",
        "dashboards:",
    ] {
        assert!(text.contains(kind), "{kind}");
    }
}

/// The single error of an invalid spec, as `line: message`.
fn error_of(text: &str) -> (usize, String) {
    let mut errors = errors_of(text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors.remove(0)
}

/// A valid spec (its metrics are garden metrics, which reach the SLO Prometheus).
const VALID: &str = "version: slo-gateway/v1
service: s
slos:
  - name: a
    objective: 99.9
    sli:
      events:
        error_query: sum by (cluster, seed) (rate(garden_e[{{.window}}]))
        total_query: sum by (cluster, seed) (rate(garden_t[{{.window}}]))
";

#[test]
fn valid_base_spec() {
    let s = parse_str("t.yaml", VALID).unwrap();
    assert!(s.warnings.is_empty());
}

#[test]
fn unknown_key_is_located() {
    let (line, msg) = error_of(&VALID.replace(
        "    objective: 99.9\n",
        "    objective: 99.9\n    objectiv: 1\n",
    ));
    assert_eq!(line, 6);
    assert!(
        msg.starts_with("slos[0]: unknown field `objectiv`, expected one of"),
        "{msg}"
    );
}

#[test]
fn objective_of_100_is_rejected() {
    let (line, msg) = error_of(&VALID.replace("99.9", "100"));
    assert_eq!(line, 5);
    assert_eq!(
        msg,
        "slos[0].objective: objective 100 must be a percentage strictly between 0 and 100"
    );
}

#[test]
fn missing_window_placeholder_is_rejected() {
    let (line, msg) = error_of(&VALID.replace("rate(garden_t[{{.window}}])", "rate(garden_t[5m])"));
    assert_eq!(line, 9);
    assert_eq!(
        msg,
        "slos[0].sli.events.total_query: query must contain `{{.window}}` (e.g. `rate(x[{{.window}}])`)"
    );
}

#[test]
fn duplicate_slo_names_are_rejected() {
    let text =
        format!("{VALID}  - name: a\n    objective: 99\n    sli: {{catalog: apiserver-errors}}\n");
    let (line, msg) = error_of(&text);
    assert_eq!(line, 10);
    assert_eq!(msg, "slos[1].name: duplicate SLO name \"a\"");
}

#[test]
fn unknown_catalog_name_is_rejected() {
    let text = "version: slo-gateway/v1\nservice: s\nslos:\n  - name: a\n    objective: 99\n    sli:\n      catalog: nope\n";
    let (line, msg) = error_of(text);
    assert_eq!(line, 7);
    assert_eq!(
        msg,
        "slos[0].sli.catalog: unknown catalog SLI \"nope\"; known: apiserver-availability, \
         apiserver-latency, apiserver-errors, machine-creation-latency, \
         machine-creation-latency-histogram, node-availability, shoot-availability, shoot-creation-latency, shoot-reconcile-latency"
    );
}

#[test]
fn unaggregated_custom_sli_is_rejected() {
    let (line, msg) =
        error_of(&VALID.replace("sum by (cluster, seed) (rate(garden_e", "sum(rate(garden_e"));
    assert_eq!(line, 8);
    assert!(msg.contains("drops grouping label `cluster`"), "{msg}");
}

#[test]
fn every_error_is_reported() {
    let text = "version: slo-gateway/v1\nservice: s\nslos:\n  - name: a\n    objective: 100\n    sli: {catalog: nope}\n  - name: a\n    objective: 0\n    sli: {catalog: apiserver-errors}\n";
    let Err(SpecError::Invalid(d)) = parse_str("t.yaml", text) else {
        panic!("accepted")
    };
    let lines: Vec<String> = d.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(lines[0].starts_with("t.yaml:5: error: slos[0].objective"));
    assert!(lines[1].starts_with("t.yaml:6: error: slos[0].sli.catalog"));
    assert!(lines[2].starts_with("t.yaml:7: error: slos[1].name: duplicate"));
    assert!(lines[3].starts_with("t.yaml:8: error: slos[1].objective"));
}

#[test]
fn alert_that_can_never_fire_is_warned_about() {
    let s = parse_str(
        "t.yaml",
        &VALID
            .replace("99.9", "80")
            .replace("    sli:", "    window: 30d\n    sli:"),
    )
    .unwrap();
    let w: Vec<String> = s.warnings.iter().map(ToString::to_string).collect();
    // 14.4 × 0.2 and 6 × 0.2 are ≥ 1; 3 × 0.2 and 1 × 0.2 are not.
    assert_eq!(w.len(), 2, "{w:#?}");
    assert!(w[0].starts_with("t.yaml:5: warning: slos[0].objective: the page alert on 1h/5m can never fire: burn-rate factor 14.4 × error budget 0.2 = 2.88 ≥ 1"), "{}", w[0]);
}

#[test]
fn receivers_must_exist() {
    let text = format!("{VALID}alertmanager:\n  page_receiver: p\n  receivers:\n    - name: slo-ticket\n    - name: slo-default\n");
    let (line, msg) = error_of(&text);
    assert_eq!(line, 11);
    assert_eq!(
        msg,
        "alertmanager.page_receiver: receiver \"p\" is not in `receivers`"
    );
}

#[test]
fn prometheusrule_holds_the_same_groups() {
    let files = render(&["config/slos.yaml"]);
    let plain: Value = serde_yaml_ng::from_str(&files["prometheus-rules.yaml"]).unwrap();
    let crd: Value = serde_yaml_ng::from_str(&files["prometheusrule.yaml"]).unwrap();
    assert_eq!(crd["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(crd["kind"], "PrometheusRule");
    assert_eq!(crd["spec"]["groups"], plain["groups"]);
}

#[test]
fn agent_match_from_spec_files() {
    let got =
        slo_gateway::rules::agent_match_selectors_from_files(&[root().join("config/slos.yaml")])
            .unwrap();
    let files = render(&["config/slos.yaml"]);
    let yaml: Value = serde_yaml_ng::from_str(&files["agent-match.yaml"]).unwrap();
    let listed: Vec<String> = serde_json::from_value(yaml["match"].clone()).unwrap();
    assert_eq!(got, listed);
    assert_eq!(
        got,
        [
            "shoot:apiserver_latency:percentage",
            r#"shoot:availability{kind="seed"}"#,
            "shoot:slo_apiserver_availability:bad",
            "shoot:slo_apiserver_availability:total",
            "shoot:slo_apiserver_errors:bad",
            "shoot:slo_apiserver_errors:total",
            "shoot:slo_apiserver_latency:bad",
            "shoot:slo_apiserver_latency:total",
            "shoot:slo_custom_gardener_shoots_apiserver_read_errors:bad",
            "shoot:slo_custom_gardener_shoots_apiserver_read_errors:total",
            "shoot:slo_machine_creation_latency:bad",
            "shoot:slo_machine_creation_latency:total",
            "shoot:slo_node_availability:bad",
            "shoot:slo_node_availability:total",
        ]
    );
    let garden: Value = serde_yaml_ng::from_str(&files["garden-match.yaml"]).unwrap();
    assert_eq!(
        garden["match"],
        serde_json::json!([
            r#"garden_shoot_condition{condition="APIServerAvailable"}"#,
            r#"garden_shoot_condition{condition=~"APIServerAvailable|ControlPlaneHealthy|EveryNodeReady|SystemComponentsHealthy"}"#,
            "garden_shoot_hibernated",
            r#"garden_shoot_operation_states{operation="Create"}"#,
            r#"garden_shoot_operation_states{operation="Delete"}"#,
            r#"garden_shoot_operation_states{operation="Migrate"}"#,
            r#"garden_shoot_operation_states{operation="Restore"}"#,
        ])
    );
}

#[test]
fn specs_given_together_need_unique_ids() {
    let a = parse_str("a.yaml", VALID).unwrap();
    let b = parse_str("b.yaml", VALID).unwrap();
    let Err(SpecError::Invalid(d)) = check_together(&[a, b]) else {
        panic!("accepted")
    };
    assert_eq!(
        d[0].to_string(),
        "b.yaml:4: error: slos[0].name: SLO id \"s-a\" is already defined in a.yaml"
    );
}

#[test]
fn agent_match_covers_the_catalog() {
    let s = load("tests/rules/specs/catalog.yaml");
    let specs = [s.spec];
    let shoot = |n: &str| [format!("shoot:slo_{n}:bad"), format!("shoot:slo_{n}:total")];
    let want: Vec<String> = [
        "apiserver_availability",
        "apiserver_errors",
        "apiserver_latency",
        "machine_creation_latency",
        "machine_creation_latency_histogram",
        "node_availability",
    ]
    .iter()
    .flat_map(|n| shoot(n))
    .collect();
    assert_eq!(agent_match_selectors(&specs), want);
    assert_eq!(
        slo_gateway::rules::garden_match_selectors(&specs),
        vec![
            r#"garden_shoot_condition{condition="APIServerAvailable"}"#,
            r#"garden_shoot_condition{condition=~"APIServerAvailable|ControlPlaneHealthy|EveryNodeReady|SystemComponentsHealthy"}"#,
            "garden_shoot_hibernated",
            r#"garden_shoot_operation_duration_minutes_bucket{le="+Inf",operation="Create"}"#,
            r#"garden_shoot_operation_duration_minutes_bucket{le="+Inf",operation="Reconcile"}"#,
            r#"garden_shoot_operation_duration_minutes_bucket{le=~"30|30.0",operation="Create"}"#,
            r#"garden_shoot_operation_duration_minutes_bucket{le=~"30|30.0",operation="Reconcile"}"#,
            r#"garden_shoot_operation_states{operation="Create"}"#,
            r#"garden_shoot_operation_states{operation="Delete"}"#,
            r#"garden_shoot_operation_states{operation="Migrate"}"#,
            r#"garden_shoot_operation_states{operation="Restore"}"#,
        ]
    );
}

// ---- Sloth importer -------------------------------------------------------------------------

/// A Sloth spec and, below, the rules Sloth generates for it (taken from Sloth's documented
/// shapes: SLI, meta and alert groups; `max(...) without (sloth_window)` alerts).
const SLOTH_SPEC: &str = r##"version: "prometheus/v1"
service: "myservice"
labels:
  owner: "myteam"
slos:
  - name: "requests-availability"
    objective: 99.9
    description: "Common SLO based on availability for HTTP request responses."
    sli:
      events:
        error_query: sum(rate(http_request_duration_seconds_count{job="myservice",code=~"(5..|429)"}[{{.window}}]))
        total_query: sum(rate(http_request_duration_seconds_count{job="myservice"}[{{.window}}]))
    alerting:
      name: MyServiceHighErrorRate
      labels:
        category: "availability"
      annotations:
        summary: "High error rate on 'myservice' requests responses"
      page_alert:
        labels:
          severity: pageteam
          routing_key: myteam
      ticket_alert:
        labels:
          severity: "slack"
          slack_channel: "#alerts-myteam"
"##;

/// Rules as Sloth writes them for SLOTH_SPEC at 30d (one SLI window shown per shape).
fn sloth_expected() -> BTreeMap<(String, String), (String, BTreeMap<String, String>)> {
    let f = r#"{sloth_id="myservice-requests-availability", sloth_service="myservice", sloth_slo="requests-availability"}"#;
    let ids = [
        ("owner", "myteam"),
        ("sloth_id", "myservice-requests-availability"),
        ("sloth_service", "myservice"),
        ("sloth_slo", "requests-availability"),
    ];
    let l = |extra: &[(&str, &str)]| -> BTreeMap<String, String> {
        ids.iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let alert = |short1: &str, long1: &str, f1: &str, short2: &str, long2: &str, f2: &str| {
        format!(
            "(max(slo:sli_error:ratio_rate{short1}{f} > ({f1} * 0.0009999999999999432)) without (sloth_window) and max(slo:sli_error:ratio_rate{long1}{f} > ({f1} * 0.0009999999999999432)) without (sloth_window)) or (max(slo:sli_error:ratio_rate{short2}{f} > ({f2} * 0.0009999999999999432)) without (sloth_window) and max(slo:sli_error:ratio_rate{long2}{f} > ({f2} * 0.0009999999999999432)) without (sloth_window))"
        )
    };
    let mut m = BTreeMap::new();
    let mut put = |kind: &str, name: &str, expr: String, labels: BTreeMap<String, String>| {
        m.insert((kind.to_owned(), name.to_owned()), (expr, labels));
    };
    put(
        "record",
        "slo:sli_error:ratio_rate5m",
        r#"(sum(rate(http_request_duration_seconds_count{job="myservice",code=~"(5..|429)"}[5m])))
/
(sum(rate(http_request_duration_seconds_count{job="myservice"}[5m])))"#
            .into(),
        l(&[("sloth_window", "5m")]),
    );
    put("record", "slo:sli_error:ratio_rate30d",
        format!("sum_over_time(slo:sli_error:ratio_rate5m{f}[30d]) / ignoring (sloth_window) count_over_time(slo:sli_error:ratio_rate5m{f}[30d])"),
        // Sloth sets only sloth_window here; we add the id labels (same values) for promtool's lint.
        l(&[("sloth_window", "30d")]).into_iter().filter(|(k, _)| k != "owner").collect());
    put(
        "record",
        "slo:objective:ratio",
        "vector(0.9990000000000001)".into(),
        l(&[]),
    );
    put(
        "record",
        "slo:error_budget:ratio",
        "vector(1-0.9990000000000001)".into(),
        l(&[]),
    );
    put(
        "record",
        "slo:time_period:days",
        "vector(30)".into(),
        l(&[]),
    );
    put("record", "slo:current_burn_rate:ratio",
        format!("slo:sli_error:ratio_rate5m{f} / on(sloth_id, sloth_slo, sloth_service) group_left slo:error_budget:ratio{f}"), l(&[]));
    put("record", "slo:period_burn_rate:ratio",
        format!("slo:sli_error:ratio_rate30d{f} / on(sloth_id, sloth_slo, sloth_service) group_left slo:error_budget:ratio{f}"), l(&[]));
    put(
        "record",
        "slo:period_error_budget_remaining:ratio",
        format!("1 - slo:period_burn_rate:ratio{f}"),
        l(&[]),
    );
    put(
        "alert",
        "page",
        alert("5m", "1h", "14.4", "30m", "6h", "6"),
        [
            ("category", "availability"),
            ("severity", "pageteam"),
            ("routing_key", "myteam"),
            ("sloth_severity", "page"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    );
    put(
        "alert",
        "ticket",
        alert("2h", "1d", "3", "6h", "3d", "1"),
        [
            ("category", "availability"),
            ("severity", "slack"),
            ("slack_channel", "#alerts-myteam"),
            ("sloth_severity", "ticket"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    );
    m
}

/// Canonical form of a PromQL expression: its parsed AST printed back.
fn canon(expr: &str) -> String {
    promql_parser::parser::parse(expr)
        .unwrap_or_else(|e| panic!("{e}: {expr}"))
        .to_string()
}

#[test]
fn sloth_import_is_semantically_equal_to_sloth() {
    let s = sloth::parse_str("sloth.yaml", SLOTH_SPEC, "30d".parse().unwrap()).unwrap();
    let files = render_all(&[s]).unwrap();
    let rules: Value = serde_yaml_ng::from_str(&files["prometheus-rules.yaml"]).unwrap();
    let groups = rules["groups"].as_array().unwrap();
    let names: Vec<&str> = groups.iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(
        &names[..3],
        [
            "sloth-slo-sli-recordings-myservice-requests-availability",
            "sloth-slo-meta-recordings-myservice-requests-availability",
            "sloth-slo-alerts-myservice-requests-availability"
        ]
    );
    let mut got = BTreeMap::new();
    let sloth_groups = groups
        .iter()
        .filter(|g| g["name"].as_str().unwrap().starts_with("sloth-"));
    for r in sloth_groups.flat_map(|g| g["rules"].as_array().unwrap()) {
        let labels: BTreeMap<String, String> =
            serde_json::from_value(r.get("labels").cloned().unwrap_or(Value::Null))
                .unwrap_or_default();
        let key = match (r.get("record"), r.get("alert")) {
            (Some(n), _) => ("record".to_owned(), n.as_str().unwrap().to_owned()),
            (None, Some(n)) => {
                assert_eq!(n, "MyServiceHighErrorRate");
                ("alert".to_owned(), labels["sloth_severity"].clone())
            }
            _ => unreachable!(),
        };
        got.insert(
            key,
            (
                r["expr"].as_str().unwrap().to_owned(),
                labels,
                r.get("annotations").cloned(),
            ),
        );
    }
    for ((kind, name), (expr, labels)) in sloth_expected() {
        let (g_expr, g_labels, annotations) = got
            .get(&(kind.clone(), name.clone()))
            .unwrap_or_else(|| panic!("{kind} {name} missing"));
        assert_eq!(canon(g_expr), canon(&expr), "{kind} {name}");
        assert_eq!(g_labels, &labels, "{kind} {name}");
        if kind == "alert" {
            let a = annotations.as_ref().unwrap();
            assert_eq!(
                a["summary"],
                "High error rate on 'myservice' requests responses"
            );
            assert_eq!(a["title"], format!("({name}) {{{{$labels.sloth_service}}}} {{{{$labels.sloth_slo}}}} SLO error budget burn rate is too fast."));
        }
    }
    // Every Sloth SLI window is recorded.
    for w in ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"] {
        assert!(
            got.contains_key(&("record".to_owned(), format!("slo:sli_error:ratio_rate{w}"))),
            "{w}"
        );
    }
    let info = &got[&("record".to_owned(), "sloth_slo_info".to_owned())].1;
    assert_eq!(info["sloth_spec"], "prometheus/v1");
    assert_eq!(info["sloth_objective"], "99.9");
}

#[test]
fn sloth_import_errors_are_located() {
    let text = SLOTH_SPEC.replace(
        "    objective: 99.9\n",
        "    objective: 99.9\n    bogus: 1\n",
    );
    let Err(SpecError::Invalid(d)) = sloth::parse_str("s.yaml", &text, "30d".parse().unwrap())
    else {
        panic!("accepted")
    };
    assert_eq!(d[0].line, 8, "{d:?}");
    assert!(d[0].message.contains("unknown field `bogus`"), "{d:?}");
}

// ---- OpenSLO importer -----------------------------------------------------------------------

const OPENSLO: &str = r#"apiVersion: openslo/v1
kind: SLO
metadata:
  name: api-errors
spec:
  service: shoot-api
  description: 5xx over all requests
  budgetingMethod: Occurrences
  timeWindow:
    - duration: 28d
      isRolling: true
  objectives:
    - displayName: good
      target: 0.995
  indicator:
    metadata:
      name: api-errors
    spec:
      ratioMetric:
        counter: true
        bad:
          metricSource:
            type: Prometheus
            spec:
              query: apiserver_request_total{code=~"5.."}
        total:
          metricSource:
            type: Prometheus
            spec:
              query: apiserver_request_total
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: api-good
spec:
  service: shoot-api-good
  timeWindow:
    - duration: 30d
      isRolling: true
  objectives:
    - target: 0.99
  indicator:
    metadata:
      name: api-good
    spec:
      ratioMetric:
        counter: true
        good:
          metricSource:
            type: Prometheus
            spec:
              query: apiserver_request_total{code!~"5.."}
        total:
          metricSource:
            type: Prometheus
            spec:
              query: apiserver_request_total
"#;

#[test]
fn openslo_ratio_metric_imports_into_the_shoot_tier() {
    let specs = openslo::parse_str("o.yaml", OPENSLO).unwrap();
    assert_eq!(specs.len(), 2);
    let files = render_all(&specs).unwrap();
    let shoot: BTreeMap<String, String> = shoot_rules(&files)
        .into_iter()
        .map(|(r, e)| (r, canon(&e)))
        .collect();
    let total = "sum(rate(apiserver_request_total[5m]))";
    assert_eq!(
        shoot["shoot:slo_custom_shoot_api_api_errors:bad"],
        canon(&format!(
            r#"(sum(rate(apiserver_request_total{{code=~"5.."}}[5m]))) or (0 * ({total}))"#
        ))
    );
    assert_eq!(
        shoot["shoot:slo_custom_shoot_api_api_errors:total"],
        canon(total)
    );
    assert_eq!(
        shoot["shoot:slo_custom_shoot_api_good_api_good:bad"],
        canon(&format!(
            r#"({total} - sum(rate(apiserver_request_total{{code!~"5.."}}[5m]))) or (0 * ({total}))"#
        ))
    );
    let exprs = rule_exprs(&files);
    let runtime_total = canon(
        "sum by (cluster, seed) (shoot:slo_custom_shoot_api_api_errors:total unless on (cluster) slo:shoot_lifecycle:excluded unless on (seed) (slo:seed:reporting == 0))",
    );
    assert!(
        exprs.iter().any(|e| canon(e) == runtime_total),
        "{exprs:#?}"
    );
    assert!(exprs.contains(&"vector(0.995)".to_owned()), "{exprs:#?}");
    assert!(exprs.contains(&"vector(28)".to_owned()));
}

#[test]
fn openslo_errors_are_located_in_their_document() {
    let text = OPENSLO.replace("  objectives:\n    - target: 0.99\n", "  objectives: []\n");
    let Err(SpecError::Invalid(d)) = openslo::parse_str("o.yaml", &text) else {
        panic!("accepted")
    };
    // `spec.objectives` of the second document (line 41), not of the first (line 12).
    assert_eq!(d[0].line, 41, "{d:?}");
    assert!(d[0].message.starts_with("spec.objectives:"), "{d:?}");
}

#[test]
fn openslo_without_ratio_metric_is_rejected() {
    let text = OPENSLO
        .split("---")
        .next()
        .unwrap()
        .replace("ratioMetric:", "thresholdMetric:");
    let Err(SpecError::Invalid(d)) = openslo::parse_str("o.yaml", &text) else {
        panic!("accepted")
    };
    assert_eq!(d[0].line, 15, "{d:?}");
    assert!(d[0].message.contains("ratioMetric is required"), "{d:?}");
}

// ---- Perses ---------------------------------------------------------------------------------

/// Checks `v` against the OpenAPI subset CRDs use. Properties not in the schema (and not kept
/// by `x-kubernetes-preserve-unknown-fields`) are errors: the API server would prune them.
fn validate(schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        && schema.get("type").is_none()
    {
        return;
    }
    let ok = match schema["type"].as_str() {
        Some("object") => v.is_object(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("boolean") => v.is_boolean(),
        Some(t) => panic!("type {t} unsupported"),
        None => true,
    };
    if !ok {
        errors.push(format!("{path}: expected {}", schema["type"]));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(v) {
            errors.push(format!("{path}: {v} not in {allowed:?}"));
        }
    }
    if let (Some(p), Some(s)) = (schema.get("pattern").and_then(Value::as_str), v.as_str()) {
        if !regex::Regex::new(p).unwrap().is_match(s) {
            errors.push(format!("{path}: {s:?} does not match {p}"));
        }
    }
    if let Some(obj) = v.as_object() {
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !obj.contains_key(r.as_str().unwrap()) {
                errors.push(format!("{path}: missing required {r}"));
            }
        }
        let preserve =
            schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        for (k, val) in obj {
            let p = format!("{path}.{k}");
            match (
                schema.get("properties").and_then(|ps| ps.get(k)),
                schema.get("additionalProperties"),
            ) {
                (Some(s), _) => validate(s, val, &p, errors),
                (None, Some(s)) => validate(s, val, &p, errors),
                (None, None) if preserve => {}
                (None, None) => errors.push(format!("{p}: unknown field (would be pruned)")),
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, val) in arr.iter().enumerate() {
            validate(items, val, &format!("{path}[{i}]"), errors);
        }
    }
}

#[test]
fn perses_dashboards_match_the_crd_schema() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/rules/perses-dashboard-crd.json")).unwrap(),
    )
    .unwrap();
    let mut checked = 0;
    for files in all_outputs() {
        for (name, content) in files.iter().filter(|(k, _)| k.starts_with("dashboards/")) {
            let dash: Value = serde_yaml_ng::from_str(content).unwrap();
            let mut errors = Vec::new();
            validate(&schema, &dash, name, &mut errors);
            assert!(errors.is_empty(), "{errors:#?}");
            // Every layout item points at an existing panel.
            let config = &dash["spec"]["config"];
            for l in config["layouts"].as_array().unwrap() {
                for item in l["spec"]["items"].as_array().unwrap() {
                    let r = item["content"]["$ref"].as_str().unwrap();
                    let key = r.strip_prefix("#/spec/panels/").unwrap();
                    assert!(config["panels"].get(key).is_some(), "{r}");
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, all_outputs().len());
    // The validator does catch mistakes.
    let mut errors = Vec::new();
    validate(
        &schema,
        &serde_json::json!({"apiVersion": "perses.dev/v1alpha2", "kind": "PersesDashboard", "metadata": {}, "spec": {"config": {"duration": "1x", "panels": {}, "layouts": [], "bogus": 1}}}),
        "x",
        &mut errors,
    );
    assert_eq!(errors.len(), 2, "{errors:#?}");
}

// ---- CLI ------------------------------------------------------------------------------------

#[test]
fn cli_generates_and_checks() {
    use clap::Parser;
    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: slo_gateway::rules::RulesArgs,
    }
    let dir = tempfile::tempdir().unwrap();
    let spec = root().join("config/slos.yaml");
    let args = Cli::try_parse_from([
        "x",
        "--spec",
        spec.to_str().unwrap(),
        "--out",
        dir.path().to_str().unwrap(),
    ])
    .unwrap()
    .args;
    slo_gateway::rules::run_cli(args).unwrap();
    for f in [
        "prometheus-rules.yaml",
        "prometheusrule.yaml",
        "alertmanager.yaml",
        "agent-match.yaml",
        "garden-match.yaml",
        "shoot/prometheus-rules.yaml",
        "shoot/prometheusrule.yaml",
        "dashboards/gardener-shoots.yaml",
    ] {
        assert!(dir.path().join(f).is_file(), "{f}");
    }
    let check = Cli::try_parse_from(["x", "check", "--spec", spec.to_str().unwrap()])
        .unwrap()
        .args;
    slo_gateway::rules::run_cli(check).unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "version: slo-gateway/v1\nservice: s\nslos: []\n").unwrap();
    let check = Cli::try_parse_from(["x", "check", "--spec", bad.to_str().unwrap()])
        .unwrap()
        .args;
    assert!(slo_gateway::rules::run_cli(check).is_err());
    assert!(
        Cli::try_parse_from(["x", "--spec", "a.yaml"]).is_err(),
        "--out is required"
    );
    let catalog = Cli::try_parse_from(["x", "catalog"]).unwrap().args;
    slo_gateway::rules::run_cli(catalog).unwrap();
}

// ---- Two tiers -----------------------------------------------------------------------------

/// All errors of an invalid spec, as `line: message`.
fn errors_of(text: &str) -> Vec<(usize, String)> {
    match parse_str("t.yaml", text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(SpecError::Invalid(d)) => d
            .iter()
            .filter(|d| d.level == Level::Error)
            .map(|d| (d.line, d.message.clone()))
            .collect(),
        Err(e) => panic!("{e}"),
    }
}

/// [`VALID`] on raw API server series, which exist only in each shoot's Prometheus.
fn runtime_on_raw() -> String {
    VALID
        .replace("garden_e", "apiserver_request_terminations_total")
        .replace("garden_t", "apiserver_request_total")
}

#[test]
fn runtime_sli_on_a_series_that_cannot_reach_the_slo_prometheus_is_rejected() {
    let runtime_on_raw = runtime_on_raw();
    let errors = errors_of(&runtime_on_raw);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    let (line, msg) = &errors[1];
    assert_eq!(*line, 7);
    assert!(
        msg.starts_with(
            "slos[0].sli.events: runtime rule `slo:sli_events:total` of SLO \"s-a\" reads \
             `apiserver_request_total`, which cannot reach the SLO Prometheus"
        ),
        "{msg}"
    );
    assert!(msg.contains("`shoot_events`"), "{msg}");
    assert!(errors[0].1.contains(
        "`slo:sli_events:bad` of SLO \"s-a\" reads `apiserver_request_terminations_total`"
    ));
    // The same SLI in the shoot tier is fine.
    let shoot = runtime_on_raw
        .replace("events:", "shoot_events:")
        .replace("sum by (cluster, seed) (", "sum(");
    parse_str("t.yaml", &shoot).unwrap();
    // So is the runtime SLI when the SLO Prometheus scrapes the metrics itself.
    let local = runtime_on_raw.replace(
        "slos:",
        "local_metrics: ['apiserver_request_(terminations_)?total']\nslos:",
    );
    parse_str("t.yaml", &local).unwrap();
    // A selector without a metric name cannot be checked.
    let unnamed = runtime_on_raw.replace(
        "rate(apiserver_request_total[",
        "rate({__name__=~\"garden_.+\"}[",
    );
    assert!(errors_of(&unnamed)
        .iter()
        .any(|(_, m)| m.contains("which names no metric")));
}

#[test]
fn sloth_specs_on_unreachable_series_only_warn() {
    let s = sloth::parse_str("sloth.yaml", SLOTH_SPEC, "30d".parse().unwrap()).unwrap();
    assert!(
        s.warnings.iter().any(
            |w| w.message.contains("http_request_duration_seconds_count")
                && w.message.contains("cannot reach the SLO Prometheus")
        ),
        "{:#?}",
        s.warnings
    );
}

#[test]
fn shoot_tier_queries_cannot_group_by_labels_added_on_the_way_out() {
    let base = "version: slo-gateway/v1\nservice: s\nslos:\n  - name: a\n    objective: 99\n    sli:\n      shoot_events:\n        error_query: ERR\n        total_query: sum(rate(apiserver_request_total[{{.window}}]))\n";
    let err = |q: &str| errors_of(&base.replace("ERR", q));
    let e = err("sum by (cluster) (rate(apiserver_request_terminations_total[{{.window}}]))");
    assert_eq!(e[0].0, 8);
    assert!(
        e[0].1
            .contains("uses `cluster`, which the shoot Prometheus does not have"),
        "{e:?}"
    );
    let e = err("sum by ({{.by}}) (rate(apiserver_request_terminations_total[{{.window}}]))");
    assert!(e[0].1.contains("aggregate away every label"), "{e:?}");
    let e = err("rate(apiserver_request_terminations_total[{{.window}}])");
    assert!(e[0].1.contains("is not aggregated"), "{e:?}");
    let e = err("sum(rate(x[{{.window}}])) / on (seed) sum(rate(y[{{.window}}]))");
    assert!(e[0].1.contains("uses `seed`"), "{e:?}");
}

#[test]
fn catalog_entries_without_a_gardener_metric_are_off_until_declared() {
    let base = "version: slo-gateway/v1\nservice: s\nslos:\n  - name: a\n    objective: 99\n    grouping: [seed]\n    sli: {catalog: shoot-creation-latency}\n";
    let e = errors_of(base);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].0, 7);
    assert_eq!(
        e[0].1,
        "slos[0].sli.catalog: `shoot-creation-latency` needs \
         `garden_shoot_operation_duration_minutes_bucket`, which Gardener does not expose yet; \
         if this landscape has it, list it under `available_metrics`"
    );
    let on = format!("{base}available_metrics: [garden_shoot_operation_duration_minutes_bucket]\n");
    parse_str("t.yaml", &on).unwrap();
    // Only by seed: the histogram has no per-shoot series.
    let e = errors_of(&on.replace("grouping: [seed]", "grouping: [cluster, seed]"));
    assert!(e[0].1.contains("can only be grouped by `seed`"), "{e:?}");
    // A typo in available_metrics is no silent no-op.
    let e = errors_of(&format!(
        "{base}available_metrics: [garden_shoot_operation_duration]\n"
    ));
    assert!(
        e.iter()
            .any(|(l, m)| *l == 8 && m.contains("is no metric a catalog SLI waits for")),
        "{e:?}"
    );
}

/// Metric names of every selector in `expr`.
fn metrics_of(expr: &str) -> Vec<String> {
    let parsed = slo_gateway::rules::promql::parse(expr).unwrap();
    slo_gateway::rules::promql::selectors(&parsed)
        .into_iter()
        .map(|s| {
            s.metric
                .unwrap_or_else(|| panic!("unnamed selector {}", s.text))
        })
        .collect()
}

#[test]
fn shoot_tier_records_federated_label_free_series() {
    let mut records = 0;
    for files in all_outputs() {
        for (record, expr) in shoot_rules(&files) {
            assert!(
                slo_gateway::rules::sources::aggregate_carries(&record),
                "{record} would not be federated by prometheus-aggregate"
            );
            // Neither the identity labels nor anything the SLO Prometheus records.
            for forbidden in ["cluster", "seed", "slo:"] {
                assert!(!expr.contains(forbidden), "{record}: {expr}");
            }
            records += 1;
        }
    }
    assert!(records >= 14, "{records}");
}

#[test]
fn runtime_rules_read_only_what_reaches_the_slo_prometheus() {
    let local = slo_gateway::rules::sources::local_regexes(&[
        "http_requests_total|http_errors_total".to_owned(),
    ])
    .unwrap();
    for files in all_outputs() {
        let rules = rules_of(&files, "prometheus-rules.yaml");
        let recorded: Vec<&str> = rules.iter().filter_map(|r| r["record"].as_str()).collect();
        for r in &rules {
            for m in metrics_of(r["expr"].as_str().unwrap()) {
                let ok = recorded.contains(&m.as_str())
                    || m == "up" // the seed-unreachable alert: the SLO Prometheus' own scrape
                    || slo_gateway::rules::sources::classify(&m, &local).is_some();
                assert!(ok, "{m} in {}", r["expr"]);
            }
        }
    }
}

#[test]
fn prometheusrule_metadata_follows_the_spec() {
    let meta = |files: &Files, file: &str| -> Value {
        serde_yaml_ng::from_str::<Value>(&files[file]).unwrap()["metadata"].clone()
    };
    let defaults = render(&["config/slos.yaml"]);
    assert_eq!(
        meta(&defaults, "prometheusrule.yaml"),
        serde_json::json!({"name": "slo-gateway-slos", "namespace": "slo-prometheus",
            "labels": {"prometheus": "slo", "app.kubernetes.io/managed-by": "slo-gateway"}})
    );
    assert_eq!(
        meta(&defaults, "shoot/prometheusrule.yaml"),
        serde_json::json!({"name": "shoot-slo-gateway-slis",
            "labels": {"prometheus": "shoot", "app.kubernetes.io/managed-by": "slo-gateway"}})
    );
    let twin = render(&["tests/rules/specs/twin.yaml"]);
    assert_eq!(
        meta(&twin, "prometheusrule.yaml"),
        serde_json::json!({"name": "twin-slos",
            "labels": {"role": "slo-rules", "app.kubernetes.io/managed-by": "slo-gateway"}})
    );
    assert_eq!(
        meta(&twin, "shoot/prometheusrule.yaml"),
        serde_json::json!({"name": "twin-shoot-slis", "namespace": "shoot--twin--a",
            "labels": {"prometheus": "shoot", "twin": "true", "app.kubernetes.io/managed-by": "slo-gateway"}})
    );
    // Rule group intervals and the input range follow the spec too.
    let groups: Value = serde_yaml_ng::from_str(&twin["shoot/prometheus-rules.yaml"]).unwrap();
    assert_eq!(groups["groups"][0]["interval"], "15s");
    assert!(shoot_rules(&twin).iter().any(|(_, e)| e.contains("[1m]")));
    assert!(!twin["shoot/prometheus-rules.yaml"].contains("[5m]"));
}

#[test]
fn output_wide_sections_may_be_set_once() {
    let a = parse_str("a.yaml", &format!("{VALID}shoot_tier: {{range: 1m}}\n")).unwrap();
    let b = parse_str(
        "b.yaml",
        &format!(
            "{}shoot_tier: {{range: 2m}}\n",
            VALID.replace("service: s", "service: t")
        ),
    )
    .unwrap();
    let Err(SpecError::Invalid(d)) = check_together(&[a, b]) else {
        panic!("accepted")
    };
    assert_eq!(
        d[0].to_string(),
        "b.yaml:10: error: shoot_tier: `shoot_tier` is already set in a.yaml: only one of the spec files given together may set it"
    );
}

#[test]
fn shoot_tier_series_names_must_be_unambiguous() {
    let spec = |service: &str, slo: &str| {
        format!("version: slo-gateway/v1\nservice: {service}\nslos:\n  - name: {slo}\n    objective: 99\n    sli:\n      shoot_events:\n        error_query: sum(rate(x{{s=\"{service}\"}}[{{{{.window}}}}]))\n        total_query: sum(rate(y[{{{{.window}}}}]))\n")
    };
    let a = parse_str("a.yaml", &spec("a-b", "c")).unwrap();
    let b = parse_str("b.yaml", &spec("a", "b_c")).unwrap();
    let Err(SpecError::Invalid(d)) = check_together(&[a, b]) else {
        panic!("accepted")
    };
    assert!(
        d[0].message.contains(
            "records `shoot:slo_custom_a_b_c:bad` for the shoot tier, as SLO \"a-b-c\" does"
        ),
        "{d:?}"
    );
}

#[test]
fn windows_shorter_than_the_input_range_are_warned_about() {
    let text = format!(
        "{VALID}    alerting:\n      windows:\n        - {{severity: page, budget_percent: 2, long: 1h, short: 1m}}\nshoot_tier: {{range: 2m}}\n"
    );
    let s = parse_str("t.yaml", &text).unwrap();
    let w = check_together(&[s]).unwrap();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0]
        .message
        .contains("the 1m window is shorter than shoot_tier.range 2m"));
}

#[test]
fn alertmanager_groups_by_seed_and_seed_alerts_inhibit_their_seed() {
    let files = render(&["config/slos.yaml"]);
    let am: Value = serde_yaml_ng::from_str(&files["alertmanager.yaml"]).unwrap();
    assert_eq!(am["route"]["group_by"], serde_json::json!(["seed"]));
    assert_eq!(
        am["inhibit_rules"][1],
        serde_json::json!({
            "source_matchers": ["alertname=~\"SLOGatewaySeedSilent|SLOGatewaySeedUnreachable|SLOGatewaySeedUncovered\""],
            "target_matchers": ["sloth_severity=~\"page|ticket\""],
            "equal": ["seed"],
        })
    );
    // The seed alerts carry `seed` (by construction of their expressions) and page.
    let rules = rules_of(&files, "prometheus-rules.yaml");
    for name in [
        "SLOGatewaySeedSilent",
        "SLOGatewaySeedUnreachable",
        "SLOGatewaySeedUncovered",
    ] {
        let r = rules.iter().find(|r| r["alert"] == name).unwrap();
        assert!(
            r["expr"]
                .as_str()
                .unwrap()
                .starts_with("time() - max by (seed)")
                || r["expr"].as_str().unwrap().starts_with("max by (seed)")
                || r["expr"].as_str().unwrap().starts_with("group by (seed)")
        );
        assert_eq!(r["labels"]["severity"], "page");
        assert_eq!(r["keep_firing_for"], "30m", "the longest page short window");
    }
    // Without seed alerts there is nothing to inhibit with.
    let raw = render(&["tests/rules/specs/raw.yaml"]);
    let am: Value = serde_yaml_ng::from_str(&raw["alertmanager.yaml"]).unwrap();
    let seed_rule = am["inhibit_rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["equal"] == serde_json::json!(["seed"]));
    assert!(
        seed_rule,
        "raw.yaml disables only seed_silent; unreachable stays"
    );
    let bool_gauge = render(&["tests/rules/specs/bool_gauge.yaml"]);
    let am: Value = serde_yaml_ng::from_str(&bool_gauge["alertmanager.yaml"]).unwrap();
    assert_eq!(
        am["inhibit_rules"][1]["source_matchers"],
        serde_json::json!(["alertname=~\"SLOGatewaySeedSilent|SLOGatewaySeedUncovered\""])
    );
}

// ---- Dashboards -----------------------------------------------------------------------------

/// Fields of Perses plugin specs (perses/plugins and perses/shared CUE schemas); anything else
/// would be refused by Perses' validation.
fn perses_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "TimeSeriesChart" => &[
            "legend",
            "tooltip",
            "yAxis",
            "thresholds",
            "visual",
            "querySettings",
        ],
        "StatChart" => &[
            "calculation",
            "metricLabel",
            "format",
            "thresholds",
            "sparkline",
            "valueFontSize",
            "colorMode",
            "legendMode",
            "mappings",
        ],
        "Table" => &[
            "density",
            "defaultColumnWidth",
            "defaultColumnHeight",
            "defaultColumnHidden",
            "pagination",
            "enableFiltering",
            "enableSorting",
            "columnSettings",
            "cellSettings",
            "transforms",
            "selection",
            "actions",
        ],
        "PrometheusTimeSeriesQuery" => &[
            "datasource",
            "query",
            "seriesNameFormat",
            "minStep",
            "resolution",
            "instant",
        ],
        "PrometheusLabelValuesVariable" => &["datasource", "labelName", "matchers"],
        other => panic!("unexpected plugin {other}"),
    }
}

fn check_plugin(plugin: &Value, datasource: Option<&str>) {
    let kind = plugin["kind"].as_str().unwrap();
    let spec = plugin["spec"].as_object().unwrap();
    for k in spec.keys() {
        assert!(perses_fields(kind).contains(&k.as_str()), "{kind}.{k}");
    }
    if let Some(format) = spec
        .get("format")
        .or_else(|| spec.get("yAxis").and_then(|y| y.get("format")))
    {
        let unit = format["unit"].as_str().unwrap();
        assert!(["percent-decimal", "decimal"].contains(&unit), "{unit}");
    }
    if kind.starts_with("Prometheus") {
        match datasource {
            Some(ds) => assert_eq!(
                spec["datasource"],
                serde_json::json!({"kind": "PrometheusDatasource", "name": ds})
            ),
            None => assert!(!spec.contains_key("datasource")),
        }
    }
}

#[test]
fn dashboards_show_slos_per_seed_and_shoot() {
    for (path, service, datasource) in [
        ("config/slos.yaml", "gardener-shoots", None),
        (
            "tests/rules/specs/twin.yaml",
            "twin",
            Some("twin-slo-prometheus"),
        ),
    ] {
        let files = render(&[path]);
        let dash: Value =
            serde_yaml_ng::from_str(&files[&format!("dashboards/{service}.yaml")]).unwrap();
        let config = &dash["spec"]["config"];
        // Variables: seed, then cluster narrowed by seed, read from series carrying both.
        let vars = config["variables"].as_array().unwrap();
        let names: Vec<&str> = vars
            .iter()
            .map(|v| v["spec"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["seed", "cluster"]);
        assert_eq!(
            vars[1]["spec"]["plugin"]["spec"]["matchers"][0],
            format!("{{__name__=~\"slo:sli_error:ratio_rate.+\", sloth_service=\"{service}\", seed=~\"$seed\"}}")
        );
        for v in vars {
            check_plugin(&v["spec"]["plugin"], datasource);
        }
        // The period's ratio (variables, SLI and budget panels) is recorded per group from the
        // events or their rollups, so it carries the grouping labels.
        let period = rules_of(&files, "prometheus-rules.yaml")
            .into_iter()
            .find(|r| {
                r["record"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("slo:sli_error:ratio_rate"))
                    && r["labels"]["sloth_service"] == service
            })
            .unwrap();
        assert!(period["expr"].as_str().unwrap().contains("slo:sli_events"));
        let panels = config["panels"].as_object().unwrap();
        let mut kinds = BTreeMap::new();
        for (key, panel) in panels {
            let plugin = &panel["spec"]["plugin"];
            check_plugin(plugin, None);
            *kinds
                .entry(plugin["kind"].as_str().unwrap().to_owned())
                .or_insert(0) += 1;
            for q in panel["spec"]["queries"].as_array().unwrap() {
                let qp = &q["spec"]["plugin"];
                check_plugin(qp, datasource);
                let legend = qp["spec"]["seriesNameFormat"].as_str().unwrap();
                if key.ends_with("_sli") || key.ends_with("_burn") {
                    // Legends name the group and the window.
                    assert!(
                        legend.contains("{{seed}}") && legend.ends_with(')'),
                        "{legend}"
                    );
                }
            }
            if key.ends_with("_sli") {
                let steps = &plugin["spec"]["thresholds"]["steps"];
                assert!(
                    steps[0]["name"].as_str().unwrap().starts_with("objective"),
                    "{steps}"
                );
            }
        }
        let slos = load(path).spec.slos.len();
        assert_eq!(kinds["StatChart"], slos, "a budget stat per SLO");
        assert_eq!(kinds["Table"], slos, "a worst-shoots table per SLO");
        assert_eq!(
            kinds["TimeSeriesChart"],
            2 * slos,
            "SLI and burn rate per SLO"
        );
    }
    // The twin's page threshold is its burn factor: 10 % × 1 h / 100 / 5m = 1.2.
    let twin = render(&["tests/rules/specs/twin.yaml"]);
    let dash: Value = serde_yaml_ng::from_str(&twin["dashboards/twin.yaml"]).unwrap();
    let burn = &dash["spec"]["config"]["panels"]["twin_apiserver_availability_burn"];
    let steps = burn["spec"]["plugin"]["spec"]["thresholds"]["steps"]
        .as_array()
        .unwrap();
    let values: Vec<f64> = steps.iter().map(|s| s["value"].as_f64().unwrap()).collect();
    assert!(
        (values[0] - 1.2).abs() < 1e-9 && (values[1] - 1.0).abs() < 1e-9,
        "{values:?}"
    );
    assert_eq!(dash["metadata"]["namespace"], "twin");
    assert_eq!(dash["spec"]["config"]["duration"], "1h");
}

#[test]
fn the_readme_lists_the_catalog() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.contains(&slo_gateway::rules::catalog::markdown_table()),
        "README.md's catalog table differs from `slo-gateway rules catalog`"
    );
}

/// Counted SLIs: no window is recorded by default, every alert computes its windows from the
/// events and rollups; a page pair on a window the 5-minute group reads is evaluated there,
/// told apart by `windows`, while the fast-burn pair stays at the global interval.
#[test]
fn alerts_compute_their_windows_and_split_by_cadence() {
    let spec = parse_str(
        "split.yaml",
        "version: slo-gateway/v1
service: split
slos:
  - name: apiserver-errors
    objective: 99.9
    sli: {catalog: apiserver-errors}
    alerting:
      windows:
        - {severity: page, budget_percent: 2, long: 1h, short: 5m}
        - {severity: page, budget_percent: 10, long: 1d, short: 2h}
        - {severity: ticket, budget_percent: 10, long: 3d, short: 6h}
",
    )
    .unwrap();
    let files = render_all(&[spec]).unwrap();
    let doc: Value = serde_yaml_ng::from_str(&files["prometheus-rules.yaml"]).unwrap();
    let groups = doc["groups"].as_array().unwrap();
    let records: Vec<&str> = groups
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .filter_map(|r| r["record"].as_str())
        .filter(|n| n.starts_with("slo:sli_error:ratio_rate") || n.contains("burn_rate"))
        .collect();
    assert_eq!(
        records,
        ["slo:sli_error:ratio_rate4w"],
        "only the period is recorded"
    );
    let alerts_in = |group: &str| -> Vec<Value> {
        groups
            .iter()
            .filter(|g| g["name"].as_str().unwrap().starts_with(group))
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .filter(|r| r.get("alert").is_some())
            .collect()
    };
    let fast = alerts_in("sloth-slo-alerts-");
    let five = alerts_in("slo-gateway-rollup-5m-");
    assert_eq!(fast.len(), 1, "{fast:?}");
    assert_eq!(fast[0]["labels"]["sloth_severity"], "page");
    assert!(fast[0]["labels"].get("windows").is_none());
    let fast_expr = fast[0]["expr"].as_str().unwrap();
    assert!(fast_expr.contains("slo:sli_events:bad") && !fast_expr.contains("slo:sli_events_1h"));
    let labels: Vec<(&str, Option<&str>)> = five
        .iter()
        .map(|r| {
            (
                r["labels"]["sloth_severity"].as_str().unwrap(),
                r["labels"]["windows"].as_str(),
            )
        })
        .collect();
    assert_eq!(labels, [("page", Some("1d/2h")), ("ticket", None)]);
    assert!(five[0]["expr"]
        .as_str()
        .unwrap()
        .contains("slo:sli_events_1h:bad"));
}
