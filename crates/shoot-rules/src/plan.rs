//! What the controller should do, decided without I/O: the desired PrometheusRule, the shoot
//! namespaces and the rules it manages today go in, a list of applies and deletes comes out.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

/// Label that marks the PrometheusRules this controller owns (and may delete).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`] on owned rules.
pub const MANAGED_BY: &str = "slo-gateway-shoot-rules";
/// Annotation holding the hash of what was applied, so unchanged rules are not re-applied.
pub const HASH_ANNOTATION: &str = "slo-gateway.gardener.cloud/content-hash";

/// Why a rule file is not usable.
#[derive(Debug, thiserror::Error)]
pub enum RuleFileError {
    /// Not YAML, or not a mapping.
    #[error("not a YAML mapping: {0}")]
    Yaml(String),
    /// Not a `monitoring.coreos.com/v1` `PrometheusRule`.
    #[error(
        "not a monitoring.coreos.com/v1 PrometheusRule (apiVersion {api_version:?}, kind {kind:?})"
    )]
    NotAPrometheusRule {
        /// The document's apiVersion.
        api_version: String,
        /// The document's kind.
        kind: String,
    },
    /// `metadata.name` missing or not a DNS subdomain.
    #[error("metadata.name {0:?} is not a valid object name")]
    Name(String),
    /// `spec.groups` missing.
    #[error("spec.groups is missing or not a list")]
    Groups,
}

/// The PrometheusRule to keep in every shoot namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredRule {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels` of the file, with [`MANAGED_BY_LABEL`] set to [`MANAGED_BY`].
    pub labels: BTreeMap<String, String>,
    /// `spec`, as written in the file.
    pub spec: Value,
    /// FNV-1a 64 of labels and spec (hex), stored in [`HASH_ANNOTATION`].
    pub hash: String,
}

impl DesiredRule {
    /// Parses a PrometheusRule file (what `slo-gateway rules` writes as the shoot tier). Its
    /// namespace, if any, is ignored: the controller puts a copy into each shoot namespace.
    pub fn parse(text: &str) -> Result<Self, RuleFileError> {
        let doc: Value =
            serde_yaml_ng::from_str(text).map_err(|e| RuleFileError::Yaml(e.to_string()))?;
        if !doc.is_object() {
            return Err(RuleFileError::Yaml("the document is not a mapping".into()));
        }
        let text_of = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let (api_version, kind) = (text_of(&doc["apiVersion"]), text_of(&doc["kind"]));
        if api_version != "monitoring.coreos.com/v1" || kind != "PrometheusRule" {
            return Err(RuleFileError::NotAPrometheusRule { api_version, kind });
        }
        let name = text_of(&doc["metadata"]["name"]);
        if !is_dns_subdomain(&name) {
            return Err(RuleFileError::Name(name));
        }
        if !doc["spec"]["groups"].is_array() {
            return Err(RuleFileError::Groups);
        }
        let mut labels: BTreeMap<String, String> = doc["metadata"]["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_string),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
        let spec = doc["spec"].clone();
        // serde_json's map is ordered by key, so this text is canonical.
        let hash = format!(
            "{:016x}",
            fnv1a64(
                json!({"labels": labels, "spec": spec})
                    .to_string()
                    .as_bytes()
            )
        );
        Ok(Self {
            name,
            labels,
            spec,
            hash,
        })
    }

    /// The object to server-side apply in `namespace`.
    pub fn manifest(&self, namespace: &str) -> Value {
        json!({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {
                "name": self.name,
                "namespace": namespace,
                "labels": self.labels,
                "annotations": {HASH_ANNOTATION: self.hash},
            },
            "spec": self.spec,
        })
    }
}

/// A namespace as listed by the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// Its name.
    pub name: String,
    /// It has a deletionTimestamp: its objects go with it, nothing to write there.
    pub terminating: bool,
}

/// A PrometheusRule carrying [`MANAGED_BY_LABEL`] = [`MANAGED_BY`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedRule {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its [`HASH_ANNOTATION`], if present.
    pub hash: Option<String>,
}

/// One change to make.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Server-side apply the desired rule in this namespace.
    Apply {
        /// Target namespace.
        namespace: String,
    },
    /// Delete a managed rule that should not exist (its namespace is no shoot namespace any more,
    /// or the rule was renamed).
    Delete {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

/// The actions that bring the managed rules to the desired state: one desired rule, current, in
/// every live shoot namespace; no other managed rule anywhere (terminating namespaces are left to
/// their deletion). Sorted, so the order is stable.
pub fn plan(desired: &DesiredRule, shoots: &[Namespace], managed: &[ManagedRule]) -> Vec<Action> {
    let live: BTreeSet<&str> = shoots
        .iter()
        .filter(|n| !n.terminating)
        .map(|n| n.name.as_str())
        .collect();
    let terminating: BTreeSet<&str> = shoots
        .iter()
        .filter(|n| n.terminating)
        .map(|n| n.name.as_str())
        .collect();
    let mut actions = Vec::new();
    for namespace in &live {
        let current = managed.iter().any(|r| {
            r.namespace == *namespace
                && r.name == desired.name
                && r.hash.as_deref() == Some(desired.hash.as_str())
        });
        if !current {
            actions.push(Action::Apply {
                namespace: (*namespace).to_string(),
            });
        }
    }
    for rule in managed {
        let wanted = live.contains(rule.namespace.as_str()) && rule.name == desired.name;
        if !wanted && !terminating.contains(rule.namespace.as_str()) {
            actions.push(Action::Delete {
                namespace: rule.namespace.clone(),
                name: rule.name.clone(),
            });
        }
    }
    actions.sort();
    actions
}

/// RFC 1123 subdomain: what Kubernetes accepts as an object name.
fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// FNV-1a, 64 bit: a stable content hash (the value is stored in the cluster and must not change
/// between builds, as std's hasher may).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = r#"
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: slo-gateway-shoot-slis
  namespace: ignored
  labels:
    prometheus: shoot
    app.kubernetes.io/managed-by: slo-gateway
spec:
  groups:
    - name: shoot-slis
      rules:
        - record: shoot:apiserver_request_errors:ratio_rate5m
          expr: sum(rate(apiserver_request_total{code=~"5.."}[5m])) / sum(rate(apiserver_request_total[5m]))
"#;

    fn desired() -> DesiredRule {
        DesiredRule::parse(RULE).unwrap()
    }

    fn ns(name: &str) -> Namespace {
        Namespace {
            name: name.into(),
            terminating: false,
        }
    }

    fn managed(namespace: &str, name: &str, hash: Option<&str>) -> ManagedRule {
        ManagedRule {
            namespace: namespace.into(),
            name: name.into(),
            hash: hash.map(str::to_string),
        }
    }

    fn apply(namespace: &str) -> Action {
        Action::Apply {
            namespace: namespace.into(),
        }
    }

    #[test]
    fn parse_keeps_labels_marks_ownership_and_hashes() {
        let rule = desired();
        assert_eq!(rule.name, "slo-gateway-shoot-slis");
        assert_eq!(rule.labels["prometheus"], "shoot");
        assert_eq!(rule.labels[MANAGED_BY_LABEL], MANAGED_BY);
        assert_eq!(rule.hash.len(), 16);
        // The same content gives the same hash; another spec another one.
        assert_eq!(DesiredRule::parse(RULE).unwrap().hash, rule.hash);
        let changed = DesiredRule::parse(&RULE.replace("[5m]", "[10m]")).unwrap();
        assert_ne!(changed.hash, rule.hash);
        let relabelled =
            DesiredRule::parse(&RULE.replace("prometheus: shoot", "prometheus: seed")).unwrap();
        assert_ne!(relabelled.hash, rule.hash);
    }

    #[test]
    fn the_hash_is_stable_across_builds() {
        // Stored in the cluster: a change of the algorithm would re-apply every rule once.
        assert_eq!(format!("{:016x}", fnv1a64(b"")), "cbf29ce484222325");
        assert_eq!(format!("{:016x}", fnv1a64(b"a")), "af63dc4c8601ec8c");
    }

    #[test]
    fn parse_refuses_what_is_no_prometheus_rule() {
        let err = DesiredRule::parse("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
            .unwrap_err();
        assert!(
            matches!(err, RuleFileError::NotAPrometheusRule { .. }),
            "{err}"
        );
        let err =
            DesiredRule::parse(&RULE.replace("slo-gateway-shoot-slis", "Not_A_Name")).unwrap_err();
        assert!(matches!(err, RuleFileError::Name(_)), "{err}");
        let err = DesiredRule::parse(&RULE.replace("groups:", "grupos:")).unwrap_err();
        assert!(matches!(err, RuleFileError::Groups), "{err}");
        assert!(matches!(
            DesiredRule::parse("- a\n- b\n").unwrap_err(),
            RuleFileError::Yaml(_)
        ));
        assert!(matches!(
            DesiredRule::parse("{{{").unwrap_err(),
            RuleFileError::Yaml(_)
        ));
    }

    #[test]
    fn manifest_targets_the_namespace_with_labels_and_hash() {
        let rule = desired();
        let manifest = rule.manifest("shoot--dev--a");
        assert_eq!(manifest["metadata"]["namespace"], "shoot--dev--a");
        assert_eq!(manifest["metadata"]["name"], "slo-gateway-shoot-slis");
        assert_eq!(manifest["metadata"]["labels"]["prometheus"], "shoot");
        assert_eq!(manifest["metadata"]["labels"][MANAGED_BY_LABEL], MANAGED_BY);
        assert_eq!(
            manifest["metadata"]["annotations"][HASH_ANNOTATION],
            rule.hash.as_str()
        );
        assert_eq!(manifest["spec"]["groups"][0]["name"], "shoot-slis");
    }

    #[test]
    fn new_shoots_get_the_rule() {
        let actions = plan(&desired(), &[ns("shoot--p--b"), ns("shoot--p--a")], &[]);
        assert_eq!(actions, vec![apply("shoot--p--a"), apply("shoot--p--b")]);
    }

    #[test]
    fn current_rules_are_left_alone_and_stale_ones_reapplied() {
        let rule = desired();
        let shoots = [ns("shoot--p--a"), ns("shoot--p--b"), ns("shoot--p--c")];
        let existing = [
            managed("shoot--p--a", &rule.name, Some(&rule.hash)),
            managed("shoot--p--b", &rule.name, Some("0000000000000000")),
            managed("shoot--p--c", &rule.name, None),
        ];
        assert_eq!(
            plan(&rule, &shoots, &existing),
            vec![apply("shoot--p--b"), apply("shoot--p--c")]
        );
    }

    #[test]
    fn rules_follow_shoots_that_go() {
        let rule = desired();
        let existing = [
            managed("shoot--p--gone", &rule.name, Some(&rule.hash)),
            managed("shoot--p--a", &rule.name, Some(&rule.hash)),
        ];
        assert_eq!(
            plan(&rule, &[ns("shoot--p--a")], &existing),
            vec![Action::Delete {
                namespace: "shoot--p--gone".into(),
                name: rule.name.clone()
            }]
        );
    }

    #[test]
    fn terminating_namespaces_are_neither_written_nor_cleaned() {
        let rule = desired();
        let shoots = [Namespace {
            name: "shoot--p--dying".into(),
            terminating: true,
        }];
        assert!(plan(&rule, &shoots, &[]).is_empty());
        let existing = [managed("shoot--p--dying", &rule.name, Some("old"))];
        assert!(plan(&rule, &shoots, &existing).is_empty());
    }

    #[test]
    fn a_renamed_rule_replaces_the_old_one() {
        let rule = desired();
        let existing = [managed(
            "shoot--p--a",
            "slo-gateway-shoot-old",
            Some(&rule.hash),
        )];
        assert_eq!(
            plan(&rule, &[ns("shoot--p--a")], &existing),
            vec![
                apply("shoot--p--a"),
                Action::Delete {
                    namespace: "shoot--p--a".into(),
                    name: "slo-gateway-shoot-old".into()
                }
            ]
        );
    }

    #[test]
    fn dns_subdomain_names() {
        assert!(is_dns_subdomain("slo-gateway.shoot-slis"));
        for bad in ["", "-a", "a-", "A", "a_b", "a..b", &"a".repeat(254)] {
            assert!(!is_dns_subdomain(bad), "{bad}");
        }
    }
}
