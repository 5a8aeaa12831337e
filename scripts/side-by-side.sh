#!/usr/bin/env bash
# Side-by-side run: the slo-gateway agent (+ receiver) against vmagent and Prometheus 2.42 in agent
# mode, all federating the same source Prometheus and remote-writing into a sink Prometheus 2.42.
# Real processes on 127.0.0.1; the run stops by itself and removes its temporary data.
#
#   cargo build --release --locked          # the slo-gateway binary, runs the receiver (or pass --bin)
#   cargo build --profile agent --locked -p slo-gateway-agent   # the lean agent (or --agent-bin)
#   scripts/side-by-side.sh --quick         # checks the harness end to end, about 5 minutes
#   scripts/side-by-side.sh                 # 100, 36,000 and 360,000 series every 15 s, about 35 minutes
#   scripts/side-by-side.sh --help          # every option (--points, --interval, --warmup, --duration,
#                                           # --contenders, --out, --bin, --vmagent-flag, --note)
#
# Needs python3 (standard library only), prometheus 2.42 (Debian `prometheus`) and vmagent (Debian
# `victoria-metrics`). The table goes to stdout and to target/side-by-side/report.md, next to
# results.jsonl, the configs and every process' log. Method: BENCHMARKS.md, "Side-by-side".
#
# The orchestration is in scripts/side_by_side.py: it owns every process it starts and stops them on
# exit, failure, Ctrl-C, SIGTERM and SIGHUP; exec hands it this shell's signals directly.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHONDONTWRITEBYTECODE=1 exec python3 scripts/side_by_side.py run "$@"
