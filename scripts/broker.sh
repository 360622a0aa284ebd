#!/usr/bin/env bash
# Runs a Mosquitto broker from a MedLedger configuration on a loopback port until Ctrl-C or SIGTERM
# (through `medledger broker run`, MedLedger's broker harness).
#
#   scripts/broker.sh [CONFIG] [MEDLEDGER-BROKER-RUN-OPTIONS...]     e.g. scripts/broker.sh broker-config/dev.conf --port 1883
#
# CONFIG defaults to broker-config/dev.conf. Prints HOST:PORT (one line per listener) on standard
# output once the broker accepts connections; its log and persistence go to --state-dir (default: a
# new temporary directory, named on standard error). Raises the open-file limit for large fleets.
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-broker-config/dev.conf}"
shift || true
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
swift build --product medledger >&2
exec .build/debug/medledger broker run --config "$config" "$@"
