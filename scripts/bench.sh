#!/usr/bin/env bash
# Builds the Benchmarks package in release, measures the project's promised figures (ledger-figures,
# then mqtt-figures) and runs the ordo-one/benchmark suite.
#
#   scripts/bench.sh [--figures-only | --suite-only | --mqtt-only] [-- BENCHMARK-PLUGIN-ARGS...]
#
# Writes the figures as JSON to Benchmarks/.build/ledger-figures.json (or $FIGURES_JSON) and
# Benchmarks/.build/mqtt-figures.json (or $MQTT_FIGURES_JSON). mqtt-figures starts its own Mosquitto
# brokers on free loopback ports; it compares the Swift MQTT client with mqtt-bare (plain
# libmosquitto, C) at QoS 1 and 0 in the same run, and measures the memory of mqtt-fleet holding
# 10,000 device connections. The open-file limit is raised first (10,000 connections need as many
# descriptors in the fleet's process and in the broker's). MQTT_FIGURES_ARGS passes more options,
# e.g. "--rounds 5".
# Needs the project's apt packages (libzstd-dev libsqlite3-dev libssl-dev); the benchmark
# package's malloc statistics come from its MallocInterposer trait, so no jemalloc.
# Exits non-zero when a figure misses its target (after running everything asked).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
package="$root/Benchmarks"
figures=1
suite=1
mqtt=1
plugin_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --figures-only) suite=0 ;;
        --suite-only) figures=0; mqtt=0 ;;
        --mqtt-only) figures=0; suite=0 ;;
        --) shift; plugin_args=("$@"); break ;;
        *) echo "usage: $0 [--figures-only | --suite-only | --mqtt-only] [-- BENCHMARK-PLUGIN-ARGS...]" >&2; exit 2 ;;
    esac
    shift
done

echo "== machine"
echo "cores: $(nproc)"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //' || uname -m)"
echo "memory: $(free -h 2>/dev/null | awk '/^Mem:/ {print $2}')"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || true)"
swift --version 2>&1 | head -1

echo "== building Benchmarks (release)"
swift build --package-path "$package" -c release

status=0
if [ "$figures" -eq 1 ]; then
    echo "== ledger-figures"
    json="${FIGURES_JSON:-$package/.build/ledger-figures.json}"
    "$(swift build --package-path "$package" -c release --show-bin-path)/ledger-figures" --json "$json" --strict \
        || status=$?
fi
if [ "$mqtt" -eq 1 ]; then
    echo "== mqtt-figures"
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    echo "open-file limit: $(ulimit -n)"
    json="${MQTT_FIGURES_JSON:-$package/.build/mqtt-figures.json}"
    # shellcheck disable=SC2086
    "$(swift build --package-path "$package" -c release --show-bin-path)/mqtt-figures" --json "$json" --strict \
        ${MQTT_FIGURES_ARGS:-} || status=$?
fi
if [ "$suite" -eq 1 ]; then
    echo "== benchmark suite"
    # The plugin builds the benchmark targets in release itself and runs each in its own process.
    (cd "$package" && swift package --disable-sandbox benchmark --no-progress "${plugin_args[@]}")
fi
exit "$status"
