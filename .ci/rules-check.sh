#!/usr/bin/env bash
# Checks the SLO rule generator's output with the real tools:
#   promtool check rules, promtool test rules, amtool check-config, amtool config routes test.
# Needs promtool (Prometheus 2.42) and amtool (Alertmanager 0.25) on PATH (Debian packages
# prometheus and prometheus-alertmanager). Exits non-zero on any failure.
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

# A fresh CI machine may lack the tools: install the Debian packages when we can.
if ! command -v promtool >/dev/null || ! command -v amtool >/dev/null; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus prometheus-alertmanager >/dev/null
  fi
fi
for tool in promtool amtool; do
  command -v "$tool" >/dev/null || { echo "rules-check: $tool not found (Debian: prometheus, prometheus-alertmanager)" >&2; exit 1; }
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cargo build --quiet --locked --bin slo-gateway
rules() { "$CARGO_TARGET_DIR/debug/slo-gateway" rules "$@"; }

fail() { echo "rules-check: FAIL: $*" >&2; exit 1; }

echo "== rules check config/slos.yaml"
rules check --spec config/slos.yaml

echo "== an invalid spec is rejected with file:line"
printf 'version: slo-gateway/v1\nservice: s\nslos:\n  - name: a\n    objective: 100\n    sli: {catalog: nope}\n' >"$tmp/bad.yaml"
if rules check --spec "$tmp/bad.yaml" 2>"$tmp/bad.err"; then
  fail "invalid spec accepted"
fi
grep -q "bad.yaml:5: error: slos\[0\].objective" "$tmp/bad.err" || { cat "$tmp/bad.err"; fail "objective error not located"; }
grep -q "bad.yaml:6: error: slos\[0\].sli.catalog: unknown catalog SLI" "$tmp/bad.err" || { cat "$tmp/bad.err"; fail "catalog error not located"; }

echo "== generate"
rules --spec config/slos.yaml --out "$tmp/out"
for spec in tests/rules/specs/*.yaml; do
  case="$(basename "$spec" .yaml)"
  rules --spec "$spec" --out "$tmp/golden/$case"
done
rules --spec config/slos.yaml --out "$tmp/again"
diff -r "$tmp/out" "$tmp/again" || fail "output differs between two runs"
for f in prometheus-rules.yaml prometheusrule.yaml alertmanager.yaml agent-match.yaml dashboards/gardener-shoots.yaml; do
  [[ -s "$tmp/out/$f" ]] || fail "$f not generated"
done

echo "== golden files are what the generator writes (promtool tests run on them)"
diff -ru tests/rules/golden "$tmp/golden" \
  || fail "golden files are stale: UPDATE_GOLDEN=1 cargo test --test rules"

echo "== promtool check rules"
promtool check rules "$tmp/out/prometheus-rules.yaml" "$tmp"/golden/*/prometheus-rules.yaml

echo "== promtool test rules"
promtool test rules tests/rules/promtool/*.yaml

echo "== amtool check-config"
amtool check-config "$tmp/out/alertmanager.yaml" "$tmp"/golden/*/alertmanager.yaml

echo "== amtool config routes test"
route() { # expected receiver, labels…
  local want="$1"; shift
  local got
  got="$(amtool config routes test --config.file="$tmp/out/alertmanager.yaml" "$@")"
  [[ "$got" == "$want" ]] || fail "labels $* routed to '$got', want '$want'"
  echo "  $* -> $got"
}
slo=(alertname=GardenerShootsApiserverAvailabilityErrorBudgetBurn sloth_id=gardener-shoots-apiserver-availability
     sloth_service=gardener-shoots sloth_slo=apiserver-availability cluster=shoot--p--s seed=aws-eu1)
route sre-pager "${slo[@]}" sloth_severity=page severity=page
route sre-tickets "${slo[@]}" sloth_severity=ticket severity=ticket
# Imported Sloth alerts carry their own severity values; sloth_severity decides.
route sre-pager "${slo[@]}" sloth_severity=page severity=pageteam
route sre-tickets alertname=SLOGatewaySeedSilent seed=aws-eu1 severity=ticket
route sre-default alertname=Unrelated

echo "rules-check: OK"
