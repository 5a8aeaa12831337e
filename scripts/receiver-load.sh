#!/usr/bin/env bash
# Receiver end to end over mTLS (issue 18): the release `slo-gateway receiver` as its own process,
# fed over mTLS by the load generator of benches/receiver_load.rs (client certificates of a few
# seeds, pre-built Gardener-shaped Remote Write 1.0 and 2.0 requests of 2000 samples), forwarding
# to a counting sink inside the generator. Prints samples/s accepted (the receiver's own counter,
# cross-checked with the sink and the answers), receiver and generator CPU from /proc, and
# samples/s per receiver core; the table also goes to target/receiver-load/report.md.
#
#   scripts/receiver-load.sh              # RW 1.0 and 2.0 at 2, 4, 8, 16 connections, 30 s each (~5 min)
#   scripts/receiver-load.sh --check      # 3 s per protocol; fails unless every sample sent was
#                                         # accepted, forwarded and pinned to its certificate's seed
#   scripts/receiver-load.sh --help       # every option (--concurrency, --duration, --protocol, ...)
#
# Builds first (nice'd), then measures. On a shared machine set BENCH_LOCK to a lock file that every
# measurement takes (`flock`); the build does not hold it. Method and figures: BENCHMARKS.md,
# "Receiver end to end over mTLS (issue 18)".
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
nice -n 10 cargo build --release --locked --bin slo-gateway >&2
nice -n 10 cargo bench --locked --bench receiver_load --no-run >&2
export RECEIVER_LOAD_BIN="${RECEIVER_LOAD_BIN:-$target/release/slo-gateway}"
export RECEIVER_LOAD_OUT="${RECEIVER_LOAD_OUT:-$target/receiver-load}"
run=(cargo bench --locked --quiet --bench receiver_load -- "$@")
if [[ -n "${BENCH_LOCK:-}" ]]; then
    exec flock "$BENCH_LOCK" "${run[@]}"
fi
exec "${run[@]}"
