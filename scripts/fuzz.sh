#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ and runs each for RUNS inputs (default 1,000,000).
#
#   scripts/fuzz.sh [RUNS] [TARGET...]
#
# Targets: fuzz-reading fuzz-header fuzz-body fuzz-certificate fuzz-transaction fuzz-intake
# (default: all). The first five feed one decoder each; fuzz-intake signs its input's payload
# validly as a registered device (the first two bytes choose the device, kid, alg and options)
# and runs it through intake, assemble, the validator's check, apply and the committed block's
# round trip, trapping when an invariant breaks (e.g. a block assembled from accepted readings
# that the validator refuses). Each target starts from a seed corpus it writes itself (valid
# readings, headers, bodies, certificates, transactions, intake inputs) into
# fuzz/corpus-TARGET/, which keeps what the fuzzer finds.
# A crashing input is saved as fuzz/crash-TARGET-crash-<sha1>; the script then exits non-zero.
# Environment: FUZZ_CONFIG=release|debug (default release: -O keeps every Swift trap, runs
# faster), FUZZ_JOBS (default 1), FUZZ_MAX_TOTAL_TIME (seconds per target, default none).
# Not run in CI.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${1:-1000000}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(fuzz-reading fuzz-header fuzz-body fuzz-certificate fuzz-transaction fuzz-intake)
fi
config="${FUZZ_CONFIG:-release}"
scratch="$root/fuzz/.build-$config"

declare -A max_len=(
    [fuzz-reading]=1100 [fuzz-header]=512 [fuzz-body]=16384 [fuzz-certificate]=1024 [fuzz-transaction]=2048
    [fuzz-intake]=1100
)

echo "== building fuzz targets ($config, -sanitize=fuzzer,address)"
swift build --package-path "$root/fuzz" --scratch-path "$scratch" -c "$config" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -g
bin="$(swift build --package-path "$root/fuzz" --scratch-path "$scratch" -c "$config" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library --show-bin-path)"

export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}"
status=0
summary=()
for target in "${targets[@]}"; do
    if [ -z "${max_len[$target]:-}" ]; then
        echo "unknown target $target" >&2
        exit 2
    fi
    corpus="$root/fuzz/corpus-$target"
    mkdir -p "$corpus"
    MEDLEDGER_FUZZ_SEEDS="$corpus" "$bin/$target"
    log="$(mktemp)"
    echo "== $target: $runs runs, corpus $(find "$corpus" -type f | wc -l) files"
    extra=()
    if [ -n "${FUZZ_MAX_TOTAL_TIME:-}" ]; then extra+=("-max_total_time=$FUZZ_MAX_TOTAL_TIME"); fi
    # With -jobs, libFuzzer's workers write fuzz-J.log into the working directory: a scratch one.
    work="$(mktemp -d)"
    set +e
    (cd "$work" && exec "$bin/$target" "$corpus" -runs="$runs" -max_len="${max_len[$target]}" \
        -jobs="${FUZZ_JOBS:-1}" -detect_leaks=0 -print_final_stats=1 \
        -artifact_prefix="$root/fuzz/crash-$target-" "${extra[@]}") \
        2>&1 | tee "$log" | grep -E --line-buffered "DONE|pulse|NEW_FUNC|ERROR|Fatal|panic|SUMMARY|artifact|stat::" \
        | grep -v "NEW_FUNC"
    # The fuzzer's status, read before anything else runs (`|| true` would replace PIPESTATUS).
    rc=${PIPESTATUS[0]}
    set -e
    execs="$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1 || true)"
    if [ "$rc" -ne 0 ]; then
        status=1
        artifact="$(grep -Eo "Test unit written to [^ ]+" "$log" | tail -1 | sed 's/Test unit written to //' || true)"
        echo "!! $target crashed (exit $rc); input saved as ${artifact:-?}; log: $log (workers' logs: $work)"
        grep -E -A40 "Fatal error|ERROR: AddressSanitizer|ERROR: libFuzzer|deadly signal" "$log" | head -80 || true
        summary+=("$target: CRASH after ${execs:-?} execs, input ${artifact:-?}")
    else
        rm -f "$log"
        rm -rf "$work"
        summary+=("$target: ${execs:-?} execs, no crash")
    fi
done
echo "== summary"
printf '%s\n' "${summary[@]}"
exit "$status"
