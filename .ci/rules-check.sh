#!/usr/bin/env bash
# Checks the SLO rule generator's output with the real tools:
#   promtool check rules (both tiers), promtool test rules, amtool check-config,
#   amtool config routes test, inhibition in a real Alertmanager, and the rule-cost benchmark
#   harness (scripts/rule-cost.sh --check 20x1: backfill, real Prometheus, all three rule shapes).
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
am_pid=""
cleanup() {
  if [[ -n "$am_pid" ]]; then kill "$am_pid" 2>/dev/null || true; wait "$am_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# The binary under test: $SLO_GATEWAY_BIN when set (.ci/run passes the one `cargo test --no-run`
# built, so the checks add no build with other features), else a debug build.
if [[ -z "${SLO_GATEWAY_BIN:-}" ]]; then
  cargo build --quiet --locked --bin slo-gateway
  SLO_GATEWAY_BIN="$CARGO_TARGET_DIR/debug/slo-gateway"
fi
rules() { "$SLO_GATEWAY_BIN" rules "$@"; }

fail() { echo "rules-check: FAIL: $*" >&2; exit 1; }
# Each step names the seconds since the start, so a slow one shows in the log.
step() { echo "== [${SECONDS}s] $*"; }

step "rules check config/slos.yaml"
rules check --spec config/slos.yaml

step "an invalid spec is rejected with file:line"
printf 'version: slo-gateway/v1\nservice: s\nslos:\n  - name: a\n    objective: 100\n    sli: {catalog: nope}\n' >"$tmp/bad.yaml"
if rules check --spec "$tmp/bad.yaml" 2>"$tmp/bad.err"; then
  fail "invalid spec accepted"
fi
grep -q "bad.yaml:5: error: slos\[0\].objective" "$tmp/bad.err" || { cat "$tmp/bad.err"; fail "objective error not located"; }
grep -q "bad.yaml:6: error: slos\[0\].sli.catalog: unknown catalog SLI" "$tmp/bad.err" || { cat "$tmp/bad.err"; fail "catalog error not located"; }

step "a runtime SLI on a series that never reaches the SLO Prometheus is rejected"
printf 'version: slo-gateway/v1\nservice: s\nslos:\n  - name: a\n    objective: 99\n    sli:\n      events:\n        error_query: sum by ({{.by}}) (rate(apiserver_request_total{code=~"5.."}[{{.window}}]))\n        total_query: sum by ({{.by}}) (rate(apiserver_request_total[{{.window}}]))\n' >"$tmp/unreachable.yaml"
if rules check --spec "$tmp/unreachable.yaml" 2>"$tmp/unreachable.err"; then
  fail "runtime SLI on apiserver_request_total accepted"
fi
grep -q 'unreachable.yaml:7: error: slos\[0\].sli.events: runtime rule `slo:sli_events:bad` of SLO "s-a" reads `apiserver_request_total{code=~"5.."}`, which cannot reach the SLO Prometheus' "$tmp/unreachable.err" \
  || { cat "$tmp/unreachable.err"; fail "unreachable series not named"; }

step "a catalog SLI whose metric Gardener lacks is off unless declared"
printf 'version: slo-gateway/v1\nservice: s\nslos:\n  - name: a\n    objective: 99\n    grouping: [seed]\n    sli: {catalog: shoot-creation-latency}\n' >"$tmp/off.yaml"
if rules check --spec "$tmp/off.yaml" 2>"$tmp/off.err"; then
  fail "shoot-creation-latency accepted without available_metrics"
fi
grep -q 'needs `garden_shoot_operation_duration_minutes_bucket`' "$tmp/off.err" || { cat "$tmp/off.err"; fail "missing metric not named"; }
printf 'available_metrics: [garden_shoot_operation_duration_minutes_bucket]\n' >>"$tmp/off.yaml"
rules check --spec "$tmp/off.yaml"

step "generate"
rules --spec config/slos.yaml --out "$tmp/out"
for spec in tests/rules/specs/*.yaml; do
  case="$(basename "$spec" .yaml)"
  rules --spec "$spec" --out "$tmp/golden/$case"
done
rules --spec config/slos.yaml --out "$tmp/again"
diff -r "$tmp/out" "$tmp/again" || fail "output differs between two runs"
for f in prometheus-rules.yaml prometheusrule.yaml shoot/prometheus-rules.yaml shoot/prometheusrule.yaml \
         alertmanager.yaml agent-match.yaml garden-match.yaml dashboards/gardener-shoots.yaml; do
  [[ -s "$tmp/out/$f" ]] || fail "$f not generated"
done

step "golden files are what the generator writes (promtool tests run on them)"
diff -ru tests/rules/golden "$tmp/golden" \
  || fail "golden files are stale: UPDATE_GOLDEN=1 cargo test --test it rules::"

step "promtool check rules (runtime and shoot tier)"
promtool check rules "$tmp/out/prometheus-rules.yaml" "$tmp/out/shoot/prometheus-rules.yaml" \
  "$tmp"/golden/*/prometheus-rules.yaml "$tmp"/golden/*/shoot/prometheus-rules.yaml

step "promtool test rules, groups evaluated first to last and last to first"
# Prometheus evaluates rule groups independently, so a rule reading another group's output may
# lag one interval behind it, and promtool runs groups in a random order. Each test runs in both
# fixed orders: an assertion that holds only for some orders fails here on every run, not now
# and then.
mkdir -p "$tmp/promtool"
for test in tests/rules/promtool/*.yaml; do
  name="$(basename "$test" .yaml)"
  rule_file="$(sed -n 's/^rule_files: \[\(.*\)\]$/\1/p' "$test")"
  [[ -n "$rule_file" && "$rule_file" != *,* ]] || fail "$test: want one rule file as 'rule_files: [path]'"
  groups="$(sed -n 's/^- name: //p' "tests/rules/promtool/$rule_file")"
  [[ -n "$groups" ]] || fail "$test: no rule groups in $rule_file"
  forward="$(paste -sd, <<<"$groups")"
  reverse="$(tac <<<"$groups" | paste -sd,)"
  # Copies sit in $tmp/promtool so that ../golden resolves to the generated (and compared) files.
  sed "s/^rule_files: .*/&\ngroup_eval_order: [$forward]/" "$test" >"$tmp/promtool/$name.first-to-last.yaml"
  sed "s/^rule_files: .*/&\ngroup_eval_order: [$reverse]/" "$test" >"$tmp/promtool/$name.last-to-first.yaml"
done
# Two at a time (the runner has two cores); the slowest files first.
ls -S "$tmp"/promtool/*.yaml | xargs -P2 -n1 sh -c 'promtool test rules "$0" >"$0.log" 2>&1 || { cat "$0.log"; exit 1; }' \
  || fail "promtool test rules failed in a fixed group order (logs above)"
grep -h -A1 '^Unit Testing' "$tmp"/promtool/*.log

step "amtool check-config"
amtool check-config "$tmp/out/alertmanager.yaml" "$tmp"/golden/*/alertmanager.yaml

step "amtool config routes test"
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
route sre-pager alertname=SLOGatewaySeedSilent seed=aws-eu1 severity=page
route sre-pager alertname=SLOGatewaySeedUnreachable seed=aws-eu2 severity=page
route sre-pager alertname=SLOGatewaySeedUncovered seed=aws-eu3 severity=page
route sre-tickets alertname=SLOGatewaySeedClockSkew seed=aws-eu2 severity=ticket
route sre-default alertname=Unrelated

step "inhibition in a real Alertmanager (golden/twin: group_wait 5s)"
am_port=""
for _ in $(seq 20); do
  candidate=$((20000 + RANDOM % 30000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then am_port="$candidate"; break; fi
done
[[ -n "$am_port" ]] || fail "no free port for Alertmanager"
# Debian names the binary prometheus-alertmanager.
am_bin="$(command -v prometheus-alertmanager || command -v alertmanager)" || fail "alertmanager not found"
"$am_bin" --config.file="$tmp/golden/twin/alertmanager.yaml" --storage.path="$tmp/am" \
  --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address= --log.level=warn &
am_pid=$!
am() { amtool --alertmanager.url="http://127.0.0.1:$am_port" "$@"; }
for _ in $(seq 50); do am config show >/dev/null 2>&1 && break; sleep 0.2; done
slo_alert() { # severity cluster seed
  am alert add TwinApiserverAvailabilityErrorBudgetBurn sloth_id=twin-apiserver-availability \
    sloth_service=twin sloth_slo=apiserver-availability sloth_severity="$1" severity="$1" cluster="$2" seed="$3"
}
am alert add SLOGatewaySeedSilent seed=s1 severity=page
am alert add SLOGatewaySeedUncovered seed=s3 severity=page
slo_alert page shoot--p--a s1     # the silent seed's shoot: inhibited by the seed alert
slo_alert page shoot--p--c s3     # the uncovered seed's shoot: inhibited by the seed alert
slo_alert page shoot--p--b s2     # another seed's shoot: pages
slo_alert ticket shoot--p--b s2   # its ticket: inhibited by its page
inhibited=""
for _ in $(seq 40); do  # until the groups are flushed (group_wait 5s)
  inhibited="$(am alert query --inhibited -o extended)"
  grep -q 'shoot--p--a' <<<"$inhibited" && grep -q 'shoot--p--c' <<<"$inhibited" && grep -q 'sloth_severity="ticket"' <<<"$inhibited" && break
  sleep 0.5
done
grep -q 'cluster="shoot--p--a".*sloth_severity="page"\|sloth_severity="page".*cluster="shoot--p--a"' <<<"$inhibited" \
  || { echo "$inhibited"; fail "the silent seed's per-shoot page is not inhibited"; }
grep -q 'cluster="shoot--p--c".*sloth_severity="page"\|sloth_severity="page".*cluster="shoot--p--c"' <<<"$inhibited" \
  || { echo "$inhibited"; fail "the uncovered seed's per-shoot page is not inhibited"; }
grep -q 'sloth_severity="ticket"' <<<"$inhibited" || { echo "$inhibited"; fail "the ticket is not inhibited by its page"; }
if grep 'sloth_severity="page"' <<<"$inhibited" | grep -q 'shoot--p--b'; then
  echo "$inhibited"; fail "the page of a shoot in another seed is inhibited"
fi
echo "  inhibited: seed s1's page (by SLOGatewaySeedSilent), seed s3's (by SLOGatewaySeedUncovered), shoot--p--b's ticket (by its page)"

step "rule-cost benchmark harness on a tiny landscape (20 shoots × 1 day; a check, not timed)"
SLO_GATEWAY="$SLO_GATEWAY_BIN" RULE_COST_DIR="$tmp/rule-cost" scripts/rule-cost.sh --check 20x1 >"$tmp/rule-cost.log" 2>&1 \
  || { cat "$tmp/rule-cost.log"; fail "scripts/rule-cost.sh --check 20x1"; }
grep -E '^(--|SUMMARY)' "$tmp/rule-cost.log" | sed 's/^/  /'

echo "rules-check: OK"
