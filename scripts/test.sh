#!/usr/bin/env bash
# Sets up the machine and runs every test: the README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build-device.sh --test
swift build --build-tests
mkdir -p .build
set +e
swift test > .build/test-output.txt 2>&1
status=$?
set -e
# Failures and issues in full; passing tests in one line each.
grep -vE '^(\[[0-9]+/[0-9]+\]|Test Case .* (started|passed)|◇ Test .* started)' .build/test-output.txt \
    | grep -vE 'Test run with|Executed [0-9]+ tests' || true
# The closing lines last, so that whoever reads the end sees the totals.
grep -E 'Executed [0-9]+ tests' .build/test-output.txt | tail -n 1 || true
grep -E 'Test run with' .build/test-output.txt | tail -n 1 || true
exit "$status"
