//! The shoot-rules controller against an in-process fake of the Kubernetes API endpoints it uses
//! (namespaces list, PrometheusRule list, server-side apply, delete), on loopback. No Kubernetes
//! API server can be installed where these tests run, so the fake stands in for it: it answers as
//! the API server does (label selectors, apply creates or replaces, 404 on a missing object) and
//! records every request, so the tests also assert the wire format the real server requires
//! (bearer token, apply content type, field manager, force).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use axum::Router;
use serde_json::{json, Value};
use slo_gateway::shootrules::kube::{KubeClient, KubeTarget};
use slo_gateway::shootrules::plan::{DesiredRule, HASH_ANNOTATION, MANAGED_BY, MANAGED_BY_LABEL};
use slo_gateway::shootrules::{reconcile_once, serve, ShootRulesArgs};

use crate::common;

const TOKEN: &str = "test-token";

#[derive(Debug, Default)]
struct Cluster {
    /// name -> labels, terminating
    namespaces: BTreeMap<String, (BTreeMap<String, String>, bool)>,
    /// (namespace, name) -> object
    rules: BTreeMap<(String, String), Value>,
    /// method, path, query, content type of every request
    requests: Vec<(String, String, String, String)>,
    /// namespaces whose apply is answered with 403
    forbidden: Vec<String>,
}

type Shared = Arc<Mutex<Cluster>>;

/// A JSON answer, as the API server sends it.
fn reply(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A list answer.
fn listed(kind: &str, items: &[Value]) -> Response {
    reply(
        StatusCode::OK,
        &json!({"kind": kind, "metadata": {}, "items": items}),
    )
}

/// Whether `labels` match the request's `labelSelector` (equality terms only, as the controller
/// sends).
fn selector_matches(query: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    let selector = query.get("labelSelector").map_or("", String::as_str);
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (key, value) = term.split_once('=').unwrap();
        labels.get(key).map(String::as_str) == Some(value)
    })
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

fn record(
    cluster: &Shared,
    method: &str,
    path: String,
    query: &BTreeMap<String, String>,
    headers: &HeaderMap,
) {
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    cluster
        .lock()
        .unwrap()
        .requests
        .push((method.into(), path, query, content_type));
}

async fn list_namespaces(
    State(cluster): State<Shared>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    record(
        &cluster,
        "GET",
        "/api/v1/namespaces".into(),
        &query,
        &headers,
    );
    if !authorized(&headers) {
        return reply(
            StatusCode::UNAUTHORIZED,
            &json!({"kind": "Status", "message": "Unauthorized"}),
        );
    }
    let c = cluster.lock().unwrap();
    let items: Vec<Value> = c
        .namespaces
        .iter()
        .filter(|(_, (labels, _))| selector_matches(&query, labels))
        .map(|(name, (labels, terminating))| {
            let mut meta = json!({"name": name, "labels": labels});
            if *terminating {
                meta["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            }
            json!({"metadata": meta, "status": {"phase": if *terminating {"Terminating"} else {"Active"}}})
        })
        .collect();
    listed("NamespaceList", &items)
}

async fn list_rules(
    State(cluster): State<Shared>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    record(
        &cluster,
        "GET",
        "/apis/monitoring.coreos.com/v1/prometheusrules".into(),
        &query,
        &headers,
    );
    let c = cluster.lock().unwrap();
    let items: Vec<Value> = c
        .rules
        .values()
        .filter(|rule| {
            let labels: BTreeMap<String, String> =
                serde_json::from_value(rule["metadata"]["labels"].clone()).unwrap_or_default();
            selector_matches(&query, &labels)
        })
        .cloned()
        .collect();
    listed("PrometheusRuleList", &items)
}

async fn apply_rule(
    State(cluster): State<Shared>,
    Path((namespace, name)): Path<(String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path =
        format!("/apis/monitoring.coreos.com/v1/namespaces/{namespace}/prometheusrules/{name}");
    record(&cluster, "PATCH", path, &query, &headers);
    let mut c = cluster.lock().unwrap();
    if c.forbidden.contains(&namespace) {
        return reply(
            StatusCode::FORBIDDEN,
            &json!({"kind": "Status", "message": "forbidden: no"}),
        );
    }
    if !c.namespaces.contains_key(&namespace) {
        return reply(
            StatusCode::NOT_FOUND,
            &json!({"kind": "Status", "message": "namespace not found"}),
        );
    }
    let object: Value = serde_json::from_slice(&body).unwrap();
    if object["metadata"]["name"] != name.as_str()
        || object["metadata"]["namespace"] != namespace.as_str()
    {
        return reply(
            StatusCode::BAD_REQUEST,
            &json!({"kind": "Status", "message": "name/namespace mismatch"}),
        );
    }
    c.rules.insert((namespace, name), object.clone());
    reply(StatusCode::OK, &object)
}

async fn delete_rule(
    State(cluster): State<Shared>,
    Path((namespace, name)): Path<(String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> StatusCode {
    let path =
        format!("/apis/monitoring.coreos.com/v1/namespaces/{namespace}/prometheusrules/{name}");
    record(&cluster, "DELETE", path, &query, &headers);
    match cluster.lock().unwrap().rules.remove(&(namespace, name)) {
        Some(_) => StatusCode::OK,
        None => StatusCode::NOT_FOUND,
    }
}

/// The fake API server and what a controller needs to talk to it.
struct FakeApi {
    cluster: Shared,
    client: KubeClient,
    url: String,
    token: std::path::PathBuf,
    dir: tempfile::TempDir,
}

/// Starts the fake API server on 127.0.0.1 (it stops with the test's runtime).
async fn fake_api_server() -> FakeApi {
    let cluster: Shared = Arc::default();
    let app = Router::new()
        .route("/api/v1/namespaces", get(list_namespaces))
        .route(
            "/apis/monitoring.coreos.com/v1/prometheusrules",
            get(list_rules),
        )
        .route(
            "/apis/monitoring.coreos.com/v1/namespaces/{namespace}/prometheusrules/{name}",
            patch(apply_rule).delete(delete_rule),
        )
        .with_state(cluster.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let target = KubeTarget::in_cluster(Some(&url), None, Some(&token)).unwrap();
    let client = KubeClient::new(target, Duration::from_secs(5)).unwrap();
    FakeApi {
        cluster,
        client,
        url,
        token,
        dir,
    }
}

fn add_namespace(cluster: &Shared, name: &str, role: &str) {
    let labels = BTreeMap::from([("gardener.cloud/role".to_string(), role.to_string())]);
    cluster
        .lock()
        .unwrap()
        .namespaces
        .insert(name.into(), (labels, false));
}

const RULE: &str = "apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: slo-gateway-shoot-slis
  labels:
    prometheus: shoot
spec:
  groups:
    - name: shoot-slis
      rules:
        - record: shoot:apiserver_request_errors:ratio_rate5m
          expr: sum(rate(apiserver_request_total{code=~\"5..\"}[5m])) / sum(rate(apiserver_request_total[5m]))
";

fn rule_namespaces(cluster: &Shared) -> Vec<String> {
    cluster
        .lock()
        .unwrap()
        .rules
        .keys()
        .map(|(ns, _)| ns.clone())
        .collect()
}

#[tokio::test]
async fn rules_follow_shoots_as_they_come_and_go() {
    let api = fake_api_server().await;
    let (cluster, client) = (&api.cluster, &api.client);
    add_namespace(cluster, "shoot--dev--a", "shoot");
    add_namespace(cluster, "shoot--dev--b", "shoot");
    add_namespace(cluster, "garden", "seed");
    let desired = DesiredRule::parse(RULE).unwrap();
    let selector = "gardener.cloud/role=shoot";

    let outcome = reconcile_once(client, &desired, selector).await.unwrap();
    assert_eq!(
        (outcome.shoot_namespaces, outcome.applied, outcome.deleted),
        (2, 2, 0)
    );
    assert_eq!(rule_namespaces(cluster), ["shoot--dev--a", "shoot--dev--b"]);
    {
        let c = cluster.lock().unwrap();
        let rule = &c.rules[&(
            "shoot--dev--a".to_string(),
            "slo-gateway-shoot-slis".to_string(),
        )];
        // What the shoot Prometheus selects, plus ownership and the content hash.
        assert_eq!(rule["metadata"]["labels"]["prometheus"], "shoot");
        assert_eq!(rule["metadata"]["labels"][MANAGED_BY_LABEL], MANAGED_BY);
        assert_eq!(
            rule["metadata"]["annotations"][HASH_ANNOTATION],
            desired.hash.as_str()
        );
        assert_eq!(
            rule["spec"]["groups"][0]["rules"][0]["record"],
            "shoot:apiserver_request_errors:ratio_rate5m"
        );
        // The wire format of a server-side apply.
        let apply = c.requests.iter().find(|r| r.0 == "PATCH").unwrap();
        assert_eq!(apply.2, "fieldManager=slo-gateway-shoot-rules&force=true");
        assert_eq!(apply.3, "application/apply-patch+yaml");
        let list = c
            .requests
            .iter()
            .find(|r| r.1 == "/api/v1/namespaces")
            .unwrap();
        assert_eq!(list.2, "labelSelector=gardener.cloud/role=shoot");
    }

    // Nothing changed: no writes.
    let before = cluster.lock().unwrap().requests.len();
    let outcome = reconcile_once(client, &desired, selector).await.unwrap();
    assert_eq!((outcome.applied, outcome.deleted), (0, 0));
    let writes = cluster.lock().unwrap().requests[before..]
        .iter()
        .filter(|r| r.0 != "GET")
        .count();
    assert_eq!(writes, 0);

    // A shoot comes, another goes (its namespace loses the role, as in a control-plane migration
    // away from this seed), a third is being deleted.
    add_namespace(cluster, "shoot--dev--c", "shoot");
    cluster
        .lock()
        .unwrap()
        .namespaces
        .get_mut("shoot--dev--a")
        .unwrap()
        .0
        .clear();
    add_namespace(cluster, "shoot--dev--d", "shoot");
    reconcile_once(client, &desired, selector).await.unwrap();
    cluster
        .lock()
        .unwrap()
        .namespaces
        .get_mut("shoot--dev--d")
        .unwrap()
        .1 = true;
    let outcome = reconcile_once(client, &desired, selector).await.unwrap();
    assert_eq!(outcome.shoot_namespaces, 2);
    assert_eq!(
        rule_namespaces(cluster),
        ["shoot--dev--b", "shoot--dev--c", "shoot--dev--d"]
    );

    // A new rule file version reaches every shoot.
    let changed = DesiredRule::parse(&RULE.replace("[5m]", "[10m]")).unwrap();
    let outcome = reconcile_once(client, &changed, selector).await.unwrap();
    assert_eq!(
        outcome.applied, 2,
        "live shoots b and c, not the terminating d"
    );
    let c = cluster.lock().unwrap();
    let rule = &c.rules[&(
        "shoot--dev--c".to_string(),
        "slo-gateway-shoot-slis".to_string(),
    )];
    assert_eq!(
        rule["metadata"]["annotations"][HASH_ANNOTATION],
        changed.hash.as_str()
    );
    assert!(c
        .requests
        .iter()
        .all(|r| r.0 != "DELETE" || r.1.contains("shoot--dev--a")));
}

#[tokio::test]
async fn one_refused_namespace_does_not_stop_the_others() {
    let api = fake_api_server().await;
    let (cluster, client) = (&api.cluster, &api.client);
    add_namespace(cluster, "shoot--dev--a", "shoot");
    add_namespace(cluster, "shoot--dev--b", "shoot");
    cluster
        .lock()
        .unwrap()
        .forbidden
        .push("shoot--dev--a".into());
    let desired = DesiredRule::parse(RULE).unwrap();
    let outcome = reconcile_once(client, &desired, "gardener.cloud/role=shoot")
        .await
        .unwrap();
    assert_eq!(outcome.applied, 1);
    assert_eq!(outcome.failures.len(), 1);
    assert!(
        outcome.failures[0].contains("403") && outcome.failures[0].contains("forbidden: no"),
        "{:?}",
        outcome.failures
    );
    assert_eq!(rule_namespaces(cluster), ["shoot--dev--b"]);
}

#[tokio::test]
async fn a_wrong_token_fails_the_pass_with_the_api_servers_message() {
    let api = fake_api_server().await;
    std::fs::write(&api.token, "rotated-away").unwrap();
    let client = &api.client;
    let desired = DesiredRule::parse(RULE).unwrap();
    let error = reconcile_once(client, &desired, "gardener.cloud/role=shoot")
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("401") && message.contains("Unauthorized"),
        "{message}"
    );
}

#[tokio::test]
async fn the_controller_loop_reconciles_reports_and_stops() {
    let api = fake_api_server().await;
    add_namespace(&api.cluster, "shoot--dev--a", "shoot");
    let rule_file = api.dir.path().join("prometheusrule.yaml");
    std::fs::write(&rule_file, RULE).unwrap();
    let listen: std::net::SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let args = ShootRulesArgs {
        rule_file: rule_file.clone(),
        namespace_selector: "gardener.cloud/role=shoot".into(),
        interval: Duration::from_millis(100),
        request_timeout: Duration::from_secs(5),
        listen,
        api_server: Some(api.url.clone()),
        ca_file: None,
        token_file: Some(api.token.clone()),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(serve(args, async move {
        let _ = stopped.await;
    }));
    slo_gateway::tls::install_default_crypto_provider();
    let http = reqwest::Client::new();
    let metric = |name: &'static str, labels: &'static [(&'static str, &'static str)]| {
        common::pipeline::metric(listen.port(), name, labels)
    };

    // Ready after the first clean pass; the rule is in place and counted.
    let ready = common::eventually("/readyz", || async {
        let status = http
            .get(format!("http://{listen}/readyz"))
            .send()
            .await
            .ok()?
            .status();
        status.is_success().then_some(())
    })
    .within(Duration::from_secs(10))
    .every(Duration::from_millis(20))
    .try_wait()
    .await
    .ok();
    assert!(ready.is_some(), "never ready");
    assert_eq!(rule_namespaces(&api.cluster), ["shoot--dev--a"]);
    assert_eq!(
        metric("slo_gateway_shoot_rules_applied_total", &[]).await,
        Some(1.0)
    );
    assert_eq!(
        metric("slo_gateway_shoot_rules_shoot_namespaces", &[]).await,
        Some(1.0)
    );
    let ok = metric(
        "slo_gateway_shoot_rules_reconciles_total",
        &[("result", "ok")],
    )
    .await;
    assert!(ok >= Some(1.0), "{ok:?}");
    let last = metric(
        "slo_gateway_shoot_rules_last_success_timestamp_seconds",
        &[],
    )
    .await;
    assert!(last > Some(1.0e9), "{last:?}");

    // A new shoot is picked up by a later pass; an edited rule file is re-read and rolled out.
    add_namespace(&api.cluster, "shoot--dev--b", "shoot");
    std::fs::write(&rule_file, RULE.replace("[5m]", "[10m]")).unwrap();
    let changed = DesiredRule::parse(&RULE.replace("[5m]", "[10m]")).unwrap();
    let rolled_out = common::eventually("the edited rule in both namespaces", || {
        let c = api.cluster.lock().unwrap();
        std::future::ready(
            c.rules.len() == 2
                && c.rules.values().all(|r| {
                    r["metadata"]["annotations"][HASH_ANNOTATION] == changed.hash.as_str()
                }),
        )
    })
    .within(Duration::from_secs(10))
    .try_wait()
    .await
    .is_ok();
    assert!(rolled_out, "{:?}", rule_namespaces(&api.cluster));

    // A broken rule file fails the passes (counted) and leaves the rules alone.
    std::fs::write(&rule_file, "kind: ConfigMap\n").unwrap();
    let failing = common::eventually("a failed pass counted", || async {
        let errors = metric(
            "slo_gateway_shoot_rules_reconciles_total",
            &[("result", "error")],
        )
        .await?;
        (errors >= 1.0).then_some(())
    })
    .within(Duration::from_secs(10))
    .every(Duration::from_millis(20))
    .try_wait()
    .await
    .ok();
    assert!(
        failing.is_some(),
        "a broken rule file was not counted as a failed pass"
    );
    assert_eq!(api.cluster.lock().unwrap().rules.len(), 2);

    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), controller).await;
    assert!(matches!(result, Ok(Ok(Ok(())))), "{result:?}");
}
