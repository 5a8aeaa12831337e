#!/usr/bin/env bash
# The chaos suite on the landscape twin (docs/chaos.md): scripted scenarios of a moving
# landscape (hibernation, testing shoots, shoot Prometheus / aggregate / agent / receiver / SLO
# Prometheus outages, migration, clock skew, real API server outages, a failing probe source)
# run side by side on one twin of real Prometheus 2.42 and Alertmanager processes; prints the
# table of pages expected and seen, and fails on a false page, a real outage not paged within
# 5 minutes, or more than one page for a seed outage. About 30 minutes: not part of CI.
#
#   scripts/chaos.sh [--out FILE] [--only SCENARIO]… [--settle-minutes N]
#
# Needs prometheus and prometheus-alertmanager (Debian) and libfaketime (Debian `faketime`: the
# clock-skew scenario runs the agent with a shifted clock); installs the latter when missing
# and running as root. Builds in release mode. The twin's directory (configs, logs) goes to
# $CHAOS_DIR (default the system's temp dir) and is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

if ! ls /usr/lib/*/faketime/libfaketimeMT.so.1 /usr/lib/faketime/libfaketimeMT.so.1 >/dev/null 2>&1 \
    && [ -z "${FAKETIME_LIB:-}" ]; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends faketime >/dev/null
  else
    echo "chaos: libfaketime missing (apt-get install faketime)" >&2
    exit 2
  fi
fi

cargo build --locked --release --bin slo-gateway -p slo-gateway --bin chaos -p slo-gateway-twin
if [ -n "${CHAOS_DIR:-}" ]; then
  mkdir -p "$CHAOS_DIR"
  export TMPDIR="$CHAOS_DIR"
fi
exec "$CARGO_TARGET_DIR/release/chaos" --binary "$CARGO_TARGET_DIR/release/slo-gateway" "$@"
