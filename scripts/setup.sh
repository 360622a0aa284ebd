#!/usr/bin/env bash
# Installs what MedLedger needs on Debian 12 (when missing): the C libraries it links, the
# Mosquitto broker and clients its tests and devnet run, OpenSSL and SQLite's CLI for tests, a
# C compiler and make for the C reference device (firmware-sim/c), and Chromium (headless, with a
# font) and Python 3 for the test that renders a node's web page and checks its screenshot;
# faketime for the test of a manager whose clock runs a year ahead.
# Swift 6.3 itself must already be installed.
set -euo pipefail

packages=(mosquitto mosquitto-clients libmosquitto-dev libzstd-dev libsqlite3-dev sqlite3 libssl-dev openssl pkg-config
    gcc make libc6-dev chromium fonts-dejavu-core python3 python3-venv faketime)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian package starts a system broker on port 1883; MedLedger starts its own brokers on free
# loopback ports and never needs that one.
command -v swift >/dev/null || { echo "setup: swift is not on PATH (Swift 6.3 is required)" >&2; exit 1; }
# The tests validate the FHIR export with the fhir.resources package from PyPI, in a virtual
# environment under .build (scripts/python-tools.sh).
"$(dirname "$0")/python-tools.sh" >/dev/null
echo "setup: ready ($(swift --version 2>/dev/null | head -n 1))"
