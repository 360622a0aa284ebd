#!/usr/bin/env bash
# Sets up the machine, builds medledger and runs the main job. Today that is a local channel: keys
# and genesis, a synthetic certified chain in an SQLite store, queried and verified from genesis.
# (`medledger devnet`, the full local network over Mosquitto, takes this place once it lands.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product medledger
bin=.build/release/medledger
dir=${1:-.devnet}
rm -rf "$dir" && mkdir -p "$dir"
"$bin" channel init --dir "$dir/channel" --channel ward-7 --validators 4 --managers 2
"$bin" sample-chain --dir "$dir/channel" --db "$dir/ledger.sqlite" --blocks 50 --readings 1000 --devices 200
"$bin" verify --db "$dir/ledger.sqlite"
