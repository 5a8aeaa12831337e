#!/usr/bin/env bash
# Landscape-scale rule-cost benchmark of the SLO Prometheus (BENCHMARKS.md, "Rule cost").
#
#   scripts/rule-cost.sh [--check] [--shapes "new old pyrra"] [--run SECONDS] [--quiet SECONDS] SHOOTSxDAYS…
#   scripts/rule-cost.sh 1000x7 1000x28 2000x7 2000x28
#   scripts/rule-cost.sh --check 20x1        # CI: the harness works (nothing timed; rules
#                                            # every 5 s, about a minute)
#
# Per point: scripts/rule_cost_gen.rs writes what an SLO Prometheus holds after DAYS days of the
# runtime rules of one SLO (apiserver-availability) for SHOOTS shoots (events every minute,
# their 5-minute and hourly rollups) plus one scrape of the live inputs (shoot:slo_* with the
# labels prometheus-aggregate adds, garden_shoot_*); `promtool tsdb create-blocks-from
# openmetrics` backfills it in 54h blocks (what a 35-day retention compacts to); then for each
# rule shape (new = this generator, old = the Sloth shape generated before issue 16, pyrra =
# Pyrra's shape) a real Prometheus with GOMAXPROCS=1 runs the rules on a hard-linked copy for
# --run seconds (inputs scraped from a static file every minute) and rule_cost.py prints per rule
# group the samples read and the query time of one evaluation (query API, stats=all), the
# share of one core at the group's interval, and the running Prometheus' rule-group
# durations, missed iterations, CPU and RSS (over --quiet seconds, default 60; 300 covers the
# 5-minute groups).
# Needs promtool/prometheus 2.42 (Debian), rustc, python3 with PyYAML. Work dir:
# $RULE_COST_DIR (default a fresh temp dir, removed at the end unless RULE_COST_KEEP=1).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

check=0; run=150; eval=60; quiet=60; shapes="new old pyrra"; points=()
while (($#)); do
  case "$1" in
    --check) check=1; run=15; eval=5; quiet=0 ;;
    --run) run="$2"; shift ;;
    --quiet) quiet="$2"; shift ;;
    --shapes) shapes="$2"; shift ;;
    *) points+=("$1") ;;
  esac
  shift
done
((${#points[@]})) || points=(20x1)

work="${RULE_COST_DIR:-$(mktemp -d)}"
mkdir -p "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  [[ -n "${RULE_COST_DIR:-}" || "${RULE_COST_KEEP:-0}" == 1 ]] || rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "rule-cost: FAIL: $*" >&2; exit 1; }

# Rules: the runtime tier of one catalog SLO of config/slos.yaml, in the three shapes.
[[ -n "${SLO_GATEWAY:-}" ]] || { cargo build --quiet --locked --bin slo-gateway; SLO_GATEWAY="$CARGO_TARGET_DIR/debug/slo-gateway"; }
cat >"$work/spec.yaml" <<'SPEC'
version: slo-gateway/v1
service: gardener-shoots
labels: {owner: gardener-sre}
grouping: [cluster, seed]
slos:
  - name: apiserver-availability
    objective: 99.95
    sli: {catalog: apiserver-availability}
seed_silent: {enabled: false}
seed_unreachable: {enabled: false}
SPEC
"$SLO_GATEWAY" rules --spec "$work/spec.yaml" --out "$work/gen" >/dev/null
python3 scripts/rule_cost.py shapes "$work/gen/prometheus-rules.yaml" "$work"
for s in $shapes; do promtool check rules "$work/$s.yaml" >/dev/null || fail "$s rules invalid"; done
rustc -O --edition 2021 -o "$work/gen-tsdb" scripts/rule_cost_gen.rs

free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  fail "no free port"
}

block=$((54 * 3600))
for point in "${points[@]}"; do
  shoots="${point%x*}"; days="${point#*x}"
  dir="$work/$point"; rm -rf "$dir"; mkdir -p "$dir/om"
  end=$(( $(date +%s) / 60 * 60 ))
  t0=$(date +%s)
  part=0
  while "$work/gen-tsdb" "$dir/om" "$shoots" "$days" "$end" 60 "$block" "$part"; do
    f="$(printf '%s/om/part-%03d.om' "$dir" "$part")"
    GOMAXPROCS=1 promtool tsdb create-blocks-from openmetrics --max-block-duration=54h "$f" "$dir/blocks" >/dev/null
    rm -f "$f"
    part=$((part + 1))
  done
  ((part > 0)) || fail "the generator wrote nothing for $point"
  echo "== $shoots shoots × $days days: backfilled in $(( $(date +%s) - t0 )) s, $(du -sh "$dir/blocks" | cut -f1)"
  mkdir -p "$dir/inputs" && mv "$dir/om/inputs.prom" "$dir/inputs/metrics"
  for shape in $shapes; do
    data="$dir/data-$shape"; rm -rf "$data"; cp -al "$dir/blocks" "$data"
    iport=$(free_port)
    (cd "$dir/inputs" && exec python3 -m http.server "$iport" --bind 127.0.0.1 >/dev/null 2>&1) &
    ipid=$!; pids+=("$ipid")
    cat >"$dir/prometheus-$shape.yml" <<CFG
global: {scrape_interval: ${eval}s, evaluation_interval: ${eval}s}
rule_files: [$work/$shape.yaml]
scrape_configs:
  - job_name: prometheus-aggregate
    honor_labels: true
    static_configs: [{targets: ["127.0.0.1:$iport"]}]
CFG
    port=$(free_port)
    GOMAXPROCS=1 prometheus --config.file="$dir/prometheus-$shape.yml" --storage.tsdb.path="$data" \
      --storage.tsdb.retention.time=35d --web.listen-address="127.0.0.1:$port" \
      --query.max-samples=2000000000 --query.timeout=10m --log.level=warn >"$dir/prometheus-$shape.log" 2>&1 &
    ppid=$!; pids+=("$ppid")
    url="http://127.0.0.1:$port"
    for _ in $(seq 600); do curl -sf "$url/-/ready" >/dev/null && break; sleep 0.5; done
    curl -sf "$url/-/ready" >/dev/null || { tail "$dir/prometheus-$shape.log"; fail "Prometheus not ready"; }
    sleep "$run"
    echo "-- $point $shape"
    python3 scripts/rule_cost.py measure "$url" "$work/$shape.yaml" "$eval" "$quiet" | tee "$dir/$shape.txt"
    if [[ "$shape" == new ]]; then python3 scripts/rule_cost.py accuracy "$url" "$work/$shape.yaml" | tee -a "$dir/$shape.txt"; fi
    if ((check)); then
      grep -q '"failures": 0.0' "$dir/$shape.txt" || fail "$shape: rule evaluation failures"
      n=$(curl -sf "$url/api/v1/query" --data-urlencode 'query=count(slo:sli_events:total)' | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)')
      [[ "$n" == "$shoots" ]] || fail "$shape: slo:sli_events:total for $n shoots, want $shoots"
    fi
    kill "$ppid" "$ipid"; wait "$ppid" 2>/dev/null || true; wait "$ipid" 2>/dev/null || true
    pids=()
    rm -rf "$data"
  done
  rm -rf "$dir/blocks"
done
echo "rule-cost: OK"
