#!/usr/bin/env bash
# Runs every criterion bench once with short settings and prints a summary table.
#
# Usage: scripts/bench.sh [criterion filter...]
#   BENCH_WARMUP (default 1) and BENCH_MEASURE (default 3) are criterion's seconds;
#   BENCH_LOG (default target/bench.log) keeps the full output.
# Meant for a look on a small machine, not for publication-grade numbers: one short run each.
set -euo pipefail
cd "$(dirname "$0")/.."

warmup="${BENCH_WARMUP:-1}"
measure="${BENCH_MEASURE:-3}"
log="${BENCH_LOG:-${CARGO_TARGET_DIR:-target}/bench.log}"
mkdir -p "$(dirname "$log")"

echo "bench: $(nproc) cores, $(uname -m), rustc $(rustc --version | cut -d' ' -f2); full log in $log" >&2
# `--bench '*'` runs only the bench targets (the lib's libtest harness would refuse criterion's flags).
cargo bench --bench '*' -- --warm-up-time "$warmup" --measurement-time "$measure" "$@" 2>&1 | tee "$log" >&2

echo
echo "== notes printed by the benches"
grep -E '^(remote_write|parser_comparison): ' "$log" || true
echo
echo "== summary (median estimate of one short run)"
awk '
function ns(v, u) { return u == "ps" ? v / 1000 : u == "ns" ? v : (u == "µs" || u == "us") ? v * 1e3 : u == "ms" ? v * 1e6 : v * 1e9 }
/^Benchmarking / || /^Found / || /^Warning/ || /^ +[0-9]+ \(/ { next }
/time: +\[/ {
    line = $0
    pre = line; sub(/ *time:.*/, "", pre)
    if (pre != "") name = pre
    sub(/.*time: +\[/, "", line); split(line, t, " ")
    if (t[4] !~ /^(ps|ns|µs|us|ms|s)$/) next  # the "change:" block of a rerun
    if (!(name in times)) order[++n] = name
    times[name] = ns(t[3], t[4]); disp[name] = t[3] " " t[4]
    next
}
/thrpt: +\[/ {
    line = $0; sub(/.*thrpt: +\[/, "", line); split(line, t, " ")
    if (t[3] ~ /%/) next
    thr[name] = t[3] " " t[4]
    next
}
/^[a-z_]+\/[^ ]+$/ { name = $1 }
END {
    printf "%-52s %14s %18s %8s\n", "bench", "time", "throughput", "vs ours"
    for (i = 1; i <= n; i++) {
        b = order[i]; ratio = ""
        if (split(b, p, "/") == 3 && p[1] == "parser_comparison" && p[2] != "slo_gateway") {
            base = "parser_comparison/slo_gateway/" p[3]
            if (base in times && times[base] > 0) ratio = sprintf("%.1fx", times[b] / times[base])
        }
        printf "%-52s %14s %18s %8s\n", b, disp[b], thr[b], ratio
    }
}' "$log"
