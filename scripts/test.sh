#!/usr/bin/env bash
# Sets up the machine and runs every test: the README's test command.
#
#   scripts/test.sh           every test (what CI runs)
#   scripts/test.sh --fast    only the tests not marked .network, for the inner loop
#                             (MEDLEDGER_TESTS=fast; the simulation runs 128 seeds, not 2048)
#   scripts/test.sh --load    every test, with two busy loops beside the run: the load of a shared
#                             CI machine, which every test must survive
# Further arguments go to `swift test` (e.g. --filter FleetNetworkTests).
#
# The output is kept whole in .build/test-output.txt; what is printed is the failing tests'
# issues, the tests' other output, the ten slowest tests and the closing lines. No failed test
# is ever run again to make it pass.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=full
arguments=()
for argument in "$@"; do
    case "$argument" in
        --fast) mode=fast ;;
        --load) mode=load ;;
        *) arguments+=("$argument") ;;
    esac
done
scripts/setup.sh
if [ "$mode" != fast ]; then
    scripts/build-device.sh --test
fi
swift build --build-tests
mkdir -p .build
output=.build/test-output.txt
loops=()
stop_loops() {
    for pid in "${loops[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap stop_loops EXIT
if [ "$mode" = load ]; then
    for _ in 1 2; do
        (while :; do :; done) &
        loops+=($!)
    done
    echo "test: two busy loops beside the run (pids ${loops[*]})"
fi
[ "$mode" = fast ] && export MEDLEDGER_TESTS=fast
started=$(date +%s)
set +e
swift test --skip-build "${arguments[@]}" > "$output" 2>&1
status=$?
set -e
stop_loops
echo "test: $mode run, status $status, $(($(date +%s) - started)) s (all output in $output)"
# The closing lines come last, so that whoever reads the end sees the totals.
python3 scripts/test-summary.py "$output"
exit "$status"
