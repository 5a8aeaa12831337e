#!/usr/bin/env python3
"""Vendors the CRD schemas the charts are validated against (deploy/crds/*.yaml).

Reads each CRD from a local git clone of its upstream repository at a pinned ref, removes the
`description` strings of the openAPIV3Schema (documentation only: validation ignores them, and they
make up most of the bytes) and the `status` subtree schema, and writes it with a header naming
repository, ref, commit, path and the sha256 of the upstream file. Nothing else is changed.

    python3 deploy/crds/vendor.py --gardener ~/src/gardener --cert-manager ~/src/cert-manager

The versions are those a Gardener landscape runs: prometheus-operator, perses-operator and VPA
CRDs as Gardener vendors them (example/seed-crds/), cert-manager from its own repository.
"""

from __future__ import annotations

import argparse
import hashlib
import pathlib
import subprocess
import sys

import yaml

HERE = pathlib.Path(__file__).resolve().parent

# (source key, ref, upstream path, vendored file name, what upstream version the file is)
SOURCES = [
    ("gardener", "example/seed-crds/10-crd-monitoring.coreos.com_prometheuses.yaml", "monitoring.coreos.com_prometheuses.yaml", "prometheus-operator v0.93.1"),
    ("gardener", "example/seed-crds/10-crd-monitoring.coreos.com_servicemonitors.yaml", "monitoring.coreos.com_servicemonitors.yaml", "prometheus-operator v0.93.1"),
    ("gardener", "example/seed-crds/10-crd-monitoring.coreos.com_prometheusrules.yaml", "monitoring.coreos.com_prometheusrules.yaml", "prometheus-operator v0.93.1"),
    ("gardener", "example/seed-crds/10-crd-monitoring.coreos.com_alertmanagers.yaml", "monitoring.coreos.com_alertmanagers.yaml", "prometheus-operator v0.93.1"),
    ("gardener", "example/seed-crds/10-crd-monitoring.coreos.com_scrapeconfigs.yaml", "monitoring.coreos.com_scrapeconfigs.yaml", "prometheus-operator v0.93.1"),
    ("gardener", "example/seed-crds/10-crd-perses.dev_perses.yaml", "perses.dev_perses.yaml", "perses-operator v0.5.0"),
    ("gardener", "example/seed-crds/10-crd-perses.dev_persesdashboards.yaml", "perses.dev_persesdashboards.yaml", "perses-operator v0.5.0"),
    ("gardener", "example/seed-crds/10-crd-perses.dev_persesdatasources.yaml", "perses.dev_persesdatasources.yaml", "perses-operator v0.5.0"),
    ("gardener", "example/seed-crds/10-crd-autoscaling.k8s.io_verticalpodautoscalers.yaml", "autoscaling.k8s.io_verticalpodautoscalers.yaml", "vertical-pod-autoscaler v1.7.1"),
    ("cert-manager", "deploy/crds/cert-manager.io_certificates.yaml", "cert-manager.io_certificates.yaml", "cert-manager v1.21.1"),
    ("cert-manager", "deploy/crds/cert-manager.io_issuers.yaml", "cert-manager.io_issuers.yaml", "cert-manager v1.21.1"),
]

REPOS = {
    "gardener": ("github.com/gardener/gardener", "b312835d1784c3628983205c05452b2eaa95b645"),
    "cert-manager": ("github.com/cert-manager/cert-manager", "v1.21.1"),
}


def strip_descriptions(node):
    """Drops schema `description` strings; a property *named* description is a mapping and stays."""
    if isinstance(node, dict):
        return {k: strip_descriptions(v) for k, v in node.items() if not (k == "description" and isinstance(v, str))}
    if isinstance(node, list):
        return [strip_descriptions(v) for v in node]
    return node


def git(repo: pathlib.Path, *args: str) -> bytes:
    return subprocess.check_output(["git", "-C", str(repo), *args])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gardener", type=pathlib.Path, required=True, help="git clone of gardener/gardener")
    parser.add_argument("--cert-manager", type=pathlib.Path, required=True, help="git clone of cert-manager/cert-manager")
    args = parser.parse_args()
    clones = {"gardener": args.gardener, "cert-manager": args.cert_manager}
    for key, path, name, version in SOURCES:
        repo_url, ref = REPOS[key]
        raw = git(clones[key], "show", f"{ref}:{path}")
        commit = git(clones[key], "rev-parse", f"{ref}^{{commit}}").decode().strip()
        crd = yaml.safe_load(raw)
        for served in crd["spec"]["versions"]:
            schema = served["schema"]["openAPIV3Schema"]
            schema.get("properties", {}).pop("status", None)
            served["schema"]["openAPIV3Schema"] = strip_descriptions(schema)
        header = (
            f"# {crd['metadata']['name']} ({version})\n"
            f"# Source: {repo_url} {path} at {ref} (commit {commit}),\n"
            f"# upstream sha256 {hashlib.sha256(raw).hexdigest()}.\n"
            "# Vendored by deploy/crds/vendor.py: schema descriptions and the status schema removed, nothing else.\n"
        )
        text = header + yaml.safe_dump(crd, sort_keys=False, width=120)
        (HERE / name).write_text(text)
        print(f"{name}: {len(raw)} -> {len(text)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
