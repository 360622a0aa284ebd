#!/usr/bin/env bash
# Builds the access contracts in contracts/ (the shipped ones in src/, the test ones in tests/)
# into WebAssembly modules, reproducibly: the same sources and toolchain give the same bytes.
#
#   scripts/build-contracts.sh [--out DIR] [--check]
#
# Writes DIR/<name>.wasm (default contracts/build) and DIR/SHA256SUMS, from src/*.c, tests/*.c
# (test-<name>.wasm) and src/*.wat. With --check it builds
# into a temporary directory and compares with contracts/build: exit 1 when a module differs.
# Uses the toolchain's clang (CLANG overrides it; default /opt/swift/usr/bin/clang, else clang on
# PATH) with wasm-ld. The flags leave no path, time or build id in the output: -nostdlib
# -ffreestanding, MVP features only, no debug info, every custom section (name, producers)
# stripped, and each file compiled from inside contracts/ under a relative name. A source may add
# link flags on a line "link: FLAGS" of its leading comment (the test contracts' memory sizes).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/contracts/build"
check=0
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift ;;
        --check) check=1 ;;
        *) echo "usage: $0 [--out DIR] [--check]" >&2; exit 2 ;;
    esac
    shift
done
if [ "$check" -eq 1 ]; then
    out="$(mktemp -d)"
    trap 'rm -rf "$out"' EXIT
fi

# MEDLEDGER as given may be relative to where the script was started.
[ -n "${MEDLEDGER:-}" ] && MEDLEDGER="$(realpath "$MEDLEDGER")"
clang="${CLANG:-/opt/swift/usr/bin/clang}"
[ -x "$clang" ] || clang="$(command -v clang || true)"
[ -n "$clang" ] || { echo "build-contracts: no clang (set CLANG)" >&2; exit 1; }

flags=(
    --target=wasm32 -mcpu=mvp -nostdlib -ffreestanding -O2 -std=c11
    -Wall -Wextra -Werror -g0 -fno-ident -Iinclude
    -Wl,--no-entry -Wl,--strip-all -Wl,--gc-sections
    -Wl,-z,stack-size=16384 -Wl,--initial-memory=131072 -Wl,--max-memory=1048576
)

mkdir -p "$out"
cd "$root/contracts"
for source in src/*.c tests/*.c; do
    name="$(basename "$source" .c)"
    [ "${source%%/*}" = tests ] && name="test-$name"
    # A source may add link flags on a line "link: FLAGS" in its leading comment (later flags win).
    read -r -a extra <<< "$(sed -n 's/^ *\*\{0,1\} *link: //p' "$source" | head -n 1)"
    "$clang" "${flags[@]}" "${extra[@]}" -o "$out/$name.wasm" "$source"
done
# Contracts in WebAssembly text, compiled by `medledger contract compile` (WasmKit's parser; no
# name or other custom section). MEDLEDGER names the tool; by default it is built here.
wat_sources=(src/*.wat)
if [ -e "${wat_sources[0]}" ]; then
    medledger="${MEDLEDGER:-}"
    if [ -z "$medledger" ]; then
        (cd "$root" && swift build --product medledger >&2)
        medledger="$(cd "$root" && swift build --show-bin-path)/medledger"
    fi
    for source in "${wat_sources[@]}"; do
        "$medledger" contract compile "$source" --out "$out/$(basename "$source" .wat).wasm" > /dev/null
    done
fi
(cd "$out" && sha256sum -- *.wasm > SHA256SUMS)
"$clang" --version | head -n 1 > "$out/TOOLCHAIN"

if [ "$check" -eq 1 ]; then
    if diff -u "$root/contracts/build/SHA256SUMS" "$out/SHA256SUMS"; then
        echo "build-contracts: the committed modules are reproduced exactly"
    else
        echo "build-contracts: the committed modules differ from a fresh build" >&2
        exit 1
    fi
else
    echo "build-contracts: wrote $(ls "$out"/*.wasm | wc -l) modules to $out"
    cat "$out/SHA256SUMS"
fi
