#!/usr/bin/env bash
# Copies what `slo-gateway rules --spec config/slos.yaml` generates into the charts' files/, then
# regenerates the kustomize bases from the charts.
#
#   deploy/sync-generated.sh            update deploy/charts/*/files and deploy/kustomize
#   deploy/sync-generated.sh --check    exit 1 if a chart file differs from the generator's output
#
# Generator output -> chart file:
#   prometheusrule.yaml (runtime tier)  -> slo-gateway-runtime/files/prometheusrule.yaml
#   alertmanager.yaml                   -> slo-gateway-runtime/files/alertmanager.yaml
#   dashboards/*.yaml                   -> slo-gateway-runtime/files/dashboards/
#   agent-match.yaml                    -> slo-gateway-runtime/files/agent-match.yaml (reachable seeds)
#                                          slo-gateway-seed/files/agent-match.yaml (the agent)
#   garden-match.yaml                   -> slo-gateway-runtime/files/garden-match.yaml
#   shoot/prometheusrule.yaml           -> slo-gateway-seed/files/shoot-prometheusrule.yaml
# A file the generator does not write (yet) keeps the chart's committed placeholder, and is named.
#
# SLO_GATEWAY_BIN: the binary to use (default: cargo build, target/debug/slo-gateway).
# SLO_SPECS: spec files (default config/slos.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."

check=false
[[ "${1:-}" == "--check" ]] && check=true

bin="${SLO_GATEWAY_BIN:-}"
if [[ -z "$bin" ]]; then
  cargo build --quiet --locked --bin slo-gateway
  bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/slo-gateway"
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
spec_args=()
for spec in ${SLO_SPECS:-config/slos.yaml}; do spec_args+=(--spec "$spec"); done
"$bin" rules "${spec_args[@]}" --out "$tmp/out" >/dev/null

runtime=deploy/charts/slo-gateway-runtime/files
seed=deploy/charts/slo-gateway-seed/files
pairs=(
  "prometheusrule.yaml:$runtime/prometheusrule.yaml"
  "alertmanager.yaml:$runtime/alertmanager.yaml"
  "agent-match.yaml:$runtime/agent-match.yaml"
  "agent-match.yaml:$seed/agent-match.yaml"
  "garden-match.yaml:$runtime/garden-match.yaml"
  "shoot/prometheusrule.yaml:$seed/shoot-prometheusrule.yaml"
)
stale=0
for pair in "${pairs[@]}"; do
  from="$tmp/out/${pair%%:*}"
  to="${pair#*:}"
  if [[ ! -f "$from" ]]; then
    echo "sync-generated: the generator writes no ${pair%%:*}; $to stays a placeholder"
    continue
  fi
  if ! cmp -s "$from" "$to"; then
    if $check; then echo "sync-generated: $to differs from the generator's ${pair%%:*}"; stale=1; else cp "$from" "$to"; echo "updated $to"; fi
  fi
done

# Dashboards: the directory mirrors the generator's.
if $check; then
  diff -r "$tmp/out/dashboards" "$runtime/dashboards" >/dev/null || { echo "sync-generated: $runtime/dashboards differs from the generator's dashboards/"; stale=1; }
else
  rm -f "$runtime"/dashboards/*.yaml
  cp "$tmp/out/dashboards/"*.yaml "$runtime/dashboards/"
fi

if $check; then
  [[ $stale == 0 ]] && echo "sync-generated: chart files are current"
  exit $stale
fi

# The kustomize bases are rendered from the charts (needs the Python packages of .ci/deploy-check.sh).
if python3 -c 'import helm_python' 2>/dev/null; then
  python3 .ci/deploy_check.py write-kustomize
else
  echo "sync-generated: helm_python not importable; run: bash .ci/deploy-check.sh --write-kustomize"
fi
