#!/usr/bin/env bash
# Builds the C reference device (firmware-sim/c) into firmware-sim/c/build/medledger-device.
#
#   scripts/build-device.sh            build the device and its unit-test program
#   scripts/build-device.sh --test     and run the unit tests against firmware-sim/vectors
#   scripts/build-device.sh --sanitize build and test again under AddressSanitizer and UBSan
#                                      (into firmware-sim/c/build/asan/)
#
# Needs a C compiler, make, pkg-config, libmosquitto-dev and libssl-dev (scripts/setup.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "${1:-}" in
    "") exec make -C "$root/firmware-sim/c" --no-print-directory ;;
    --test) exec make -C "$root/firmware-sim/c" --no-print-directory test ;;
    --sanitize) exec make -C "$root/firmware-sim/c" --no-print-directory sanitize ;;
    *) echo "usage: $0 [--test | --sanitize]" >&2; exit 2 ;;
esac
