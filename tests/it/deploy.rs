//! The deployment manifests agree with the binary: the configs embedded in the kustomize bases
//! (`deploy/kustomize/*`, rendered from the Helm charts with their default values; CI keeps them
//! equal) pass the config validation, every path they name is mounted, the workloads are hardened
//! and probed, and the SLO Prometheus accepts what the agents backfill. The full manifest checks
//! (Helm rendering, Kubernetes and CRD schemas, network policies, Gardener registration) are
//! `.ci/deploy-check.sh`, which needs Python packages; these run with `cargo test` alone.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_yaml_ng::Value;
use slo_gateway::config::check_file;

const EXAMPLE_SEED: &str = "aws-eu1";

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Every YAML document of a file (multi-document files included).
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|doc| !doc.is_null())
        .collect()
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            // Chart templates are Go templates, not YAML.
            if path.file_name().is_some_and(|n| n != "templates") {
                yaml_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// The objects of a kustomize base (`seed` or `runtime`).
fn base(name: &str) -> Vec<Value> {
    let dir = repo_file(&format!("deploy/kustomize/{name}"));
    let mut files = Vec::new();
    yaml_files(&dir, &mut files);
    files.sort();
    files
        .iter()
        // configMapGenerator inputs (configmaps/<name>/<key>) are file contents, not objects.
        .filter(|f| {
            !f.strip_prefix(&dir)
                .is_ok_and(|r| r.starts_with("configmaps"))
        })
        .filter(|f| f.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .flat_map(|f| documents(f))
        .collect()
}

fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name}"))
}

/// The `config.yaml` of a kustomize base's generated ConfigMap, as text and parsed.
fn embedded_config(base: &str, configmap: &str) -> (String, Value) {
    let text = std::fs::read_to_string(repo_file(&format!(
        "deploy/kustomize/{base}/configmaps/{configmap}/config.yaml"
    )))
    .unwrap();
    let parsed = serde_yaml_ng::from_str(&text).unwrap();
    (text, parsed)
}

/// Writes `config` with `/etc/slo-gateway/` and `/var/lib/slo-gateway/` under `root`, where a dev
/// PKI is laid out as the Secret and ConfigMap mounts would present it.
fn config_with_pki(root: &Path, config: &str, files: &[(&str, &str)]) -> PathBuf {
    let pki = root.join("pki");
    slo_gateway::certs::write_dev_pki(&pki, &[EXAMPLE_SEED.to_string()]).unwrap();
    for (target, source) in files {
        let target = root.join(target);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(pki.join(source), target).unwrap();
    }
    let prefix = format!("{}/", root.display());
    let text = config
        .replace("/etc/slo-gateway/", &prefix)
        .replace("/var/lib/slo-gateway/", &prefix);
    let file = root.join("config.yaml");
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn every_deploy_yaml_parses() {
    let mut files = Vec::new();
    yaml_files(&repo_file("deploy"), &mut files);
    assert!(files.len() >= 25, "{files:?}");
    for file in &files {
        let docs = documents(file);
        assert!(!docs.is_empty(), "{} is empty", file.display());
        // Chart.yaml has an apiVersion (v2) but is no Kubernetes object.
        let is_chart = file.file_name().is_some_and(|n| n == "Chart.yaml");
        for doc in docs
            .iter()
            .filter(|d| d.get("apiVersion").is_some() && !is_chart)
        {
            assert!(doc["kind"].is_string(), "{}: without kind", file.display());
            assert!(
                doc["metadata"]["name"].is_string() || doc["kind"] == "Kustomization",
                "{}: without metadata.name",
                file.display()
            );
        }
    }
}

#[test]
fn embedded_agent_config_is_valid() {
    let (text, _) = embedded_config("seed", "slo-gateway-agent");
    let dir = tempfile::tempdir().unwrap();
    let seed_cert = format!("seed-{EXAMPLE_SEED}.pem");
    let seed_key = format!("seed-{EXAMPLE_SEED}-key.pem");
    let file = config_with_pki(
        dir.path(),
        &text,
        &[
            ("tls/tls.crt", &seed_cert),
            ("tls/tls.key", &seed_key),
            ("receiver-ca/ca.crt", "ca.pem"),
        ],
    );
    assert_eq!(check_file(&file).map_err(|e| e.to_string()), Ok("agent"));
}

#[test]
fn embedded_receiver_config_is_valid() {
    let (text, _) = embedded_config("runtime", "slo-gateway-receiver");
    let dir = tempfile::tempdir().unwrap();
    let file = config_with_pki(
        dir.path(),
        &text,
        &[
            ("tls/tls.crt", "server.pem"),
            ("tls/tls.key", "server-key.pem"),
            ("client-ca/ca.crt", "ca.pem"),
        ],
    );
    assert_eq!(check_file(&file).map_err(|e| e.to_string()), Ok("receiver"));
}

/// Hardening, probes and the config flag of the first container of `deploy`.
fn assert_hardened_with_probes(deploy: &Value, role: &str) {
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(security["capabilities"]["drop"][0].as_str(), Some("ALL"));
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert!(container["resources"]["requests"]["cpu"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args.first(), Some(&role));
}

/// Every absolute path in the config lies under a volume mount, and a file projected from an
/// `items` list is one of its items.
fn assert_config_paths_are_mounted(config: &str, deploy: &Value) {
    let pod = &deploy["spec"]["template"]["spec"];
    let mounts = pod["containers"][0]["volumeMounts"].as_sequence().unwrap();
    let volumes = pod["volumes"].as_sequence().unwrap();
    let paths: Vec<&str> = config
        .lines()
        .filter_map(|l| l.split_once(": /").map(|(_, p)| p))
        .collect();
    assert!(paths.len() >= 3, "{paths:?}");
    for path in paths {
        let path = format!("/{}", path.trim());
        let mount = mounts
            .iter()
            .find(|m| path.starts_with(&format!("{}/", m["mountPath"].as_str().unwrap())))
            .unwrap_or_else(|| panic!("{path} is on no volume mount"));
        let volume = volumes.iter().find(|v| v["name"] == mount["name"]).unwrap();
        let projected = if volume["secret"].is_mapping() {
            &volume["secret"]["items"]
        } else {
            &volume["configMap"]["items"]
        };
        if let Some(items) = projected.as_sequence() {
            let file = path.rsplit('/').next().unwrap();
            assert!(
                items.iter().any(|i| i["path"].as_str() == Some(file)),
                "{path} is not an item of volume {:?}",
                volume["name"]
            );
        }
    }
}

#[test]
fn agent_manifests_fit_the_agent() {
    let objects = base("seed");
    let deploy = object(&objects, "Deployment", "slo-gateway-agent");
    // The agent holds an exclusive lock on its queue directory: one pod at a time.
    assert_eq!(deploy["spec"]["replicas"].as_u64(), Some(1));
    // The lean binary: no rule generator, twin or demo in every seed.
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["command"][0].as_str(),
        Some("/slo-gateway-agent")
    );
    assert_eq!(
        deploy["spec"]["strategy"]["type"].as_str(),
        Some("Recreate")
    );
    assert_hardened_with_probes(deploy, "agent");
    let (text, _) = embedded_config("seed", "slo-gateway-agent");
    assert_config_paths_are_mounted(&text, deploy);
}

#[test]
fn receiver_manifests_fit_the_receiver() {
    let objects = base("runtime");
    let deploy = object(&objects, "Deployment", "slo-gateway-receiver");
    // Scaled by its HorizontalPodAutoscaler: a rendered replicas would reset it on every apply.
    assert!(deploy["spec"].get("replicas").is_none(), "{deploy:?}");
    object(&objects, "HorizontalPodAutoscaler", "slo-gateway-receiver");
    assert_hardened_with_probes(deploy, "receiver");
    let (text, _) = embedded_config("runtime", "slo-gateway-receiver");
    assert_config_paths_are_mounted(&text, deploy);
    // The preStop hook runs the image's own binary (no shell; the `sleep` action needs k8s 1.30).
    let command: Vec<&str> = deploy["spec"]["template"]["spec"]["containers"][0]["lifecycle"]
        ["preStop"]["exec"]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(&command[..2], ["/slo-gateway", "sleep"]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_slo-gateway"))
        .args(&command[1..])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

fn prometheus_duration(text: &str) -> Duration {
    humantime::parse_duration(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// After an outage the agents backfill up to `buffer.max_age`; the SLO Prometheus refuses (400,
/// whole request) samples older than its out-of-order window, so the window must be longer, with
/// a margin for the last retries of the oldest samples.
#[test]
fn out_of_order_window_exceeds_the_agents_max_age() {
    let (_, agent) = embedded_config("seed", "slo-gateway-agent");
    let max_age = prometheus_duration(agent["buffer"]["max_age"].as_str().unwrap());
    let runtime = base("runtime");
    let prometheus = object(&runtime, "Prometheus", "slo");
    let window = prometheus_duration(
        prometheus["spec"]["tsdb"]["outOfOrderTimeWindow"]
            .as_str()
            .unwrap(),
    );
    assert!(
        window >= max_age + Duration::from_secs(15 * 60),
        "window {window:?}, max_age {max_age:?}"
    );
    assert_eq!(
        prometheus["spec"]["enableRemoteWriteReceiver"].as_bool(),
        Some(true)
    );
}
