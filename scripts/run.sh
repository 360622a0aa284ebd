#!/usr/bin/env bash
# Sets up the machine, builds medledger and runs the main job: `medledger devnet`, the local
# network (a Mosquitto broker, 4 validators and 2 managers as their own processes, a fleet of
# simulated devices) with one status line. Ctrl-C stops it, prints a summary and verifies every
# replica. Arguments go to `medledger devnet` (e.g. --devices 1000 --rate 0.5, --fresh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product medledger
exec .build/release/medledger devnet --dir .devnet "$@"
