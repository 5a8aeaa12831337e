#!/usr/bin/env bash
# Side-by-side run: the slo-gateway agent (+ receiver) against Prometheus 2.42 in agent mode,
# doing the same job: federate one source Prometheus with the same match[] selectors and
# remote-write the same series into a sink Prometheus. Real processes, all on 127.0.0.1.
#
#   target (python, SERIES series, values move) ◄── source Prometheus (scrape every INTERVAL)
#       source /federate ◄── slo-gateway agent ──mTLS──► slo-gateway receiver ──► sink Prometheus A
#       source /federate ◄── prometheus --enable-feature=agent ──── plain http ────► sink Prometheus B
#
# The contenders run one after the other (never at the same time, so they do not share the two
# cores); each gets a fresh sink. Per contender: WARMUP seconds, then DURATION seconds measured:
# every second VmRSS from /proc/<pid>/status, CPU (utime+stime) from /proc/<pid>/stat at the start
# and end, the wire-byte counters at the start and end, and the samples the sink holds with a
# timestamp inside the window (sum(count_over_time(...)) at the window's end, queried after a
# drain of 2 intervals).
#
# Usage: scripts/side-by-side.sh
#   SERIES (20000)  INTERVAL (5, seconds)  WARMUP (30)  DURATION (120)
#   ORDER ("slo-gateway prometheus-agent prometheus-agent-2000")   which contenders, in which order;
#        prometheus-agent runs with Prometheus' remote-write defaults (max_samples_per_send 500),
#        prometheus-agent-2000 with max_samples_per_send 2000 like the slo-gateway agent's requests
#   SLO_GATEWAY_BIN (${CARGO_TARGET_DIR:-target}/release/slo-gateway; build it with
#                    cargo build --release --bin slo-gateway)
#   PROMETHEUS (prometheus from PATH; 2.42 from Debian: apt-get install prometheus)
#   OUT (${CARGO_TARGET_DIR:-target}/side-by-side): configs, logs, results.jsonl, report.md are
#        kept there; the TSDB and queue directories are removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

SERIES="${SERIES:-20000}"
INTERVAL="${INTERVAL:-5}"
WARMUP="${WARMUP:-30}"
DURATION="${DURATION:-120}"
ORDER="${ORDER:-slo-gateway prometheus-agent prometheus-agent-2000}"
BIN="${SLO_GATEWAY_BIN:-${CARGO_TARGET_DIR:-target}/release/slo-gateway}"
PROMETHEUS="${PROMETHEUS:-prometheus}"
OUT="${OUT:-${CARGO_TARGET_DIR:-target}/side-by-side}"
HELPER="$PWD/scripts/side_by_side.py"
SCRAPE_TIMEOUT=$(( INTERVAL > 1 ? INTERVAL - 1 : 1 ))

[ -x "$BIN" ] || { echo "no slo-gateway binary at $BIN (cargo build --release --bin slo-gateway, or set SLO_GATEWAY_BIN)" >&2; exit 2; }
command -v "$PROMETHEUS" >/dev/null || { echo "prometheus not found (apt-get install prometheus)" >&2; exit 2; }
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"

rm -rf "$OUT"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
DATA="$(mktemp -d /tmp/side-by-side.XXXXXX)"   # TSDBs, WAL, queue: removed at exit

PIDS=()
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# start NAME CMD...: runs CMD in the background, output to $OUT/NAME.log; sets LAST_PID.
start() {
    local name="$1"; shift
    RUST_LOG="${RUST_LOG:-info}" "$@" >"$OUT/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# stop PID...: SIGTERM, up to 15 s, then SIGKILL.
stop() {
    local pid i
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        for ((i = 0; i < 150; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

cleanup() {
    local code=$?
    trap - EXIT INT TERM
    local alive=()
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    [ "${#alive[@]}" -gt 0 ] && stop "${alive[@]}"
    rm -rf "$DATA"
    [ "$code" -ne 0 ] && log "failed (exit $code); logs in $OUT"
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port() { python3 "$HELPER" port; }
wait_url() { python3 "$HELPER" wait "$1" "${2:-60}"; }

SELECTORS=('{__name__=~"shoot:.+"}' 'apiserver_request_total' 'apiserver_request_terminations_total' 'probe_success{job="blackbox-apiserver"}')
yaml_list() { local s out=""; for s in "${SELECTORS[@]}"; do out+="${out:+, }'$s'"; done; echo "[$out]"; }

start_prometheus() { # NAME CONFIG_TEXT [extra flags...]: starts a server Prometheus; sets PROM_PORT, PROM_PID
    local name="$1" config="$2"; shift 2
    PROM_PORT=$(port)
    mkdir -p "$DATA/$name"
    printf '%s' "$config" >"$OUT/$name.yml"
    start "$name" "$PROMETHEUS" --config.file="$OUT/$name.yml" --storage.tsdb.path="$DATA/$name" \
        --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn "$@"
    PROM_PID=$LAST_PID
    wait_url "http://127.0.0.1:$PROM_PORT/-/ready" 60
}

log "slo-gateway $("$BIN" --version 2>&1 | head -1); $("$PROMETHEUS" --version 2>&1 | head -1)"
log "$(nproc) cores; $SERIES series every ${INTERVAL}s; warm-up ${WARMUP}s, measured ${DURATION}s per contender; output in $OUT"

# ---- shared: certificates, target, source Prometheus
"$BIN" certs --out "$OUT/certs" --seeds bench >/dev/null
TARGET_PORT=$(port)
start target python3 "$HELPER" serve "$TARGET_PORT" "$SERIES"
wait_url "http://127.0.0.1:$TARGET_PORT/metrics" 30
start_prometheus source "global:
  scrape_interval: ${INTERVAL}s
  scrape_timeout: ${SCRAPE_TIMEOUT}s
scrape_configs:
  - job_name: aggregate
    honor_labels: true
    static_configs:
      - targets: ['127.0.0.1:$TARGET_PORT']
"
SOURCE="127.0.0.1:$PROM_PORT"
log "source Prometheus on $SOURCE; waiting for its first scrapes"
sleep $(( 2 * INTERVAL + 2 ))

SINK_CONFIG="global:
  scrape_interval: 1m
storage:
  tsdb:
    out_of_order_time_window: 2h
"
EXPECTED=$(( SERIES / 20 * 20 * DURATION / INTERVAL ))
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"

# measure CONTENDER WIRE_PROCESS NAME=PID... -- --counter ...: warm-up, sample, count, append a result line.
measure() {
    local contender="$1" wire_process="$2"; shift 2
    log "$contender: warm-up ${WARMUP}s"
    sleep "$WARMUP"
    local warm
    warm=$(python3 "$HELPER" count "http://$SINK" '{seed="bench"}' "$(date +%s)" 60)
    log "$contender: sink holds $warm samples from the last 60 s; measuring ${DURATION}s"
    python3 "$HELPER" sample "$OUT/$contender.sample.json" "$DURATION" "$@"
    log "$contender: draining $(( 2 * INTERVAL ))s before counting"
    sleep $(( 2 * INTERVAL ))
    local t1 delivered wire
    t1=$(python3 -c "import json; print(json.load(open('$OUT/$contender.sample.json'))['t1'])")
    delivered=$(python3 "$HELPER" count "http://$SINK" '{seed="bench",job=~"aggregate|blackbox-apiserver"}' "$t1" "$DURATION")
    wire=$(python3 -c "import json; v = json.load(open('$OUT/$contender.sample.json'))['counters'].get('wire_bytes'); print('null' if v is None else v)")
    log "$contender: $delivered samples delivered (expected $EXPECTED), $wire bytes on the wire"
    printf '{"contender": "%s", "series": %d, "interval": %d, "warmup": %d, "duration": %d, "expected": %d, "delivered": %d, "wire_bytes": %s, "wire_process": "%s", "sampled": %s}\n' \
        "$contender" "$SERIES" "$INTERVAL" "$WARMUP" "$DURATION" "$EXPECTED" "$delivered" "$wire" "$wire_process" \
        "$(tr -d '\n' <"$OUT/$contender.sample.json")" >>"$RESULTS"
}

run_slo_gateway() {
    start_prometheus sink-slo-gateway "$SINK_CONFIG" --web.enable-remote-write-receiver
    SINK="127.0.0.1:$PROM_PORT"; local sink_pid=$PROM_PID
    local rx admin_rx admin_agent
    rx=$(port); admin_rx=$(port); admin_agent=$(port)
    cat >"$OUT/receiver.yaml" <<EOF
listen: 127.0.0.1:$rx
admin_listen: 127.0.0.1:$admin_rx
tls: {cert_file: certs/server.pem, key_file: certs/server-key.pem, client_ca_file: certs/ca.pem}
identity: {label: seed}
forward: {url: 'http://$SINK/api/v1/write'}
EOF
    cat >"$OUT/agent.yaml" <<EOF
listen: 127.0.0.1:$admin_agent
scrape:
  interval: ${INTERVAL}s
  timeout: ${SCRAPE_TIMEOUT}s
  targets:
    - url: http://$SOURCE/federate
      match: $(yaml_list)
remote_write:
  url: https://127.0.0.1:$rx/api/v1/write
  tls: {ca_file: certs/ca.pem, cert_file: certs/seed-bench.pem, key_file: certs/seed-bench-key.pem}
buffer:
  path: $DATA/agent-buffer
EOF
    "$BIN" check-config "$OUT/receiver.yaml" >/dev/null
    "$BIN" check-config "$OUT/agent.yaml" >/dev/null
    start receiver "$BIN" receiver --config "$OUT/receiver.yaml"; local rx_pid=$LAST_PID
    wait_url "http://127.0.0.1:$admin_rx/readyz" 30
    start agent "$BIN" agent --config "$OUT/agent.yaml"; local agent_pid=$LAST_PID
    wait_url "http://127.0.0.1:$admin_agent/healthz" 30
    measure slo-gateway agent "agent=$agent_pid" "receiver=$rx_pid" "sink=$sink_pid" \
        --counter "wire_bytes=http://127.0.0.1:$admin_agent/metrics=slo_gateway_agent_bytes_sent_total" \
        --counter "samples_sent=http://127.0.0.1:$admin_agent/metrics=slo_gateway_agent_samples_sent_total" \
        --counter "samples_scraped=http://127.0.0.1:$admin_agent/metrics=slo_gateway_agent_samples_scraped_total" \
        --counter "receiver_accepted=http://127.0.0.1:$admin_rx/metrics=slo_gateway_receiver_samples_accepted_total"
    stop "$agent_pid" "$rx_pid" "$sink_pid"
}

run_prometheus_agent() { # NAME [max_samples_per_send]
    local name="$1" queue_config=""
    [ -n "${2:-}" ] && queue_config="    queue_config: {max_samples_per_send: $2}"
    start_prometheus "sink-$name" "$SINK_CONFIG" --web.enable-remote-write-receiver
    SINK="127.0.0.1:$PROM_PORT"; local sink_pid=$PROM_PID
    local port_agent
    port_agent=$(port)
    cat >"$OUT/$name.yml" <<EOF
global:
  scrape_interval: ${INTERVAL}s
  scrape_timeout: ${SCRAPE_TIMEOUT}s
  external_labels: {seed: bench}
scrape_configs:
  - job_name: federate
    honor_labels: true
    # Like the slo-gateway agent's default (scrape.honor_timestamps: false): scrape time.
    honor_timestamps: false
    metrics_path: /federate
    params:
      'match[]': $(yaml_list)
    static_configs:
      - targets: ['$SOURCE']
remote_write:
  - url: http://$SINK/api/v1/write
    # up, scrape_duration_seconds, ... of the federate job itself: the slo-gateway agent does not
    # send such series, so they are not sent here either.
    write_relabel_configs:
      - {source_labels: [job], regex: federate, action: drop}
$queue_config
EOF
    mkdir -p "$DATA/$name"
    start "$name" "$PROMETHEUS" --enable-feature=agent --config.file="$OUT/$name.yml" \
        --storage.agent.path="$DATA/$name" --web.listen-address="127.0.0.1:$port_agent" --log.level=info
    local agent_pid=$LAST_PID
    wait_url "http://127.0.0.1:$port_agent/-/ready" 60
    measure "$name" prometheus-agent "prometheus-agent=$agent_pid" "sink=$sink_pid" \
        --counter "wire_bytes=http://127.0.0.1:$port_agent/metrics=prometheus_remote_storage_bytes_total" \
        --counter "metadata_bytes=http://127.0.0.1:$port_agent/metrics=prometheus_remote_storage_metadata_bytes_total" \
        --counter "samples_sent=http://127.0.0.1:$port_agent/metrics=prometheus_remote_storage_samples_total" \
        --counter "samples_failed=http://127.0.0.1:$port_agent/metrics=prometheus_remote_storage_samples_failed_total" \
        --counter "samples_scraped=http://127.0.0.1:$port_agent/metrics=prometheus_agent_samples_appended_total"
    stop "$agent_pid" "$sink_pid"
}

for contender in $ORDER; do
    case "$contender" in
        slo-gateway) run_slo_gateway ;;
        prometheus-agent) run_prometheus_agent prometheus-agent ;;
        prometheus-agent-2000) run_prometheus_agent prometheus-agent-2000 2000 ;;
        *) echo "unknown contender $contender" >&2; exit 2 ;;
    esac
done

python3 "$HELPER" report "$RESULTS" | tee "$OUT/report.md"
echo
for f in agent receiver $ORDER; do
    [ -f "$OUT/$f.log" ] || continue
    n=$(grep -iE '(^| )(WARN|ERROR|level=warn|level=error)( |$)' "$OUT/$f.log" | grep -cv 'SIGTERM' || true)
    echo "$f log: $n warning/error lines ($OUT/$f.log)"
done
