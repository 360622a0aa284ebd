#!/usr/bin/env bash
# Builds the Benchmarks package in release, measures the project's three promised figures
# (ledger-figures) and runs the ordo-one/benchmark suite.
#
#   scripts/bench.sh [--figures-only | --suite-only] [-- BENCHMARK-PLUGIN-ARGS...]
#
# Writes the figures as JSON to Benchmarks/.build/ledger-figures.json (or $FIGURES_JSON).
# Needs the project's apt packages (libzstd-dev libsqlite3-dev libssl-dev); the benchmark
# package's malloc statistics come from its MallocInterposer trait, so no jemalloc.
# Exits non-zero when a figure misses its target (after running everything asked).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
package="$root/Benchmarks"
figures=1
suite=1
plugin_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --figures-only) suite=0 ;;
        --suite-only) figures=0 ;;
        --) shift; plugin_args=("$@"); break ;;
        *) echo "usage: $0 [--figures-only | --suite-only] [-- BENCHMARK-PLUGIN-ARGS...]" >&2; exit 2 ;;
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
if [ "$suite" -eq 1 ]; then
    echo "== benchmark suite"
    # The plugin builds the benchmark targets in release itself and runs each in its own process.
    (cd "$package" && swift package --disable-sandbox benchmark --no-progress "${plugin_args[@]}")
fi
exit "$status"
