#!/usr/bin/env bash
# Measures what access decisions cost: times `medledger verify` (which replays every block and
# re-decides every access request) on a local store whose last block carries N requests to one
# contract, and on the same store without that block.
#
#   N=50 scripts/contract-cost.sh contracts/build/test-loop-forever.wasm
#
# Uses the release build (swift build -c release --product medledger; M overrides the binary).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
M=${M:-$root/.build/release/medledger}
N=${N:-50}
W="$(cd "$(dirname "${1:?usage: $0 MODULE.wasm}")" && pwd)/$(basename "$1")"
dir=$(mktemp -d)
cd "$dir"
$M channel init --dir ch --channel ward-7 --validators 4 >/dev/null
SC="--dir ch --db l.sqlite --devices 4 --readings 20"
$M sample-chain $SC --blocks 1 >/dev/null
$M keygen --out r.key > r.pub
S="--genesis ch/genesis.json --key ch/keys/registrar-1.key --submitter registrar-1 --db l.sqlite"
$M professional register --id r-1 --role researcher --public-key r.pub $S --out t1.tx >/dev/null
$M contract deploy --force --wasm "$W" --name c $S --seq 6 --out t2.tx > deploy.txt
$M consent record --patient patient-0 --study s1 $S --seq 7 --out t3.tx >/dev/null
$M sample-chain $SC --blocks 0 --transaction t1.tx --transaction t2.tx --transaction t3.tx >/dev/null
CID=$(grep -o '[0-9a-f]\{64\}' deploy.txt | head -1)
cp l.sqlite base.sqlite
args=()
for i in $(seq 1 "$N"); do
  $M access request --contract $CID --kinds 8480-6,8462-4 --from 0 --to 1 --purpose p --study s1 \
     --genesis ch/genesis.json --key r.key --submitter r-1 --seq $i --out r$i.tx >/dev/null
  args+=(--transaction r$i.tx)
done
$M sample-chain $SC --blocks 0 "${args[@]}" >/dev/null
echo "decisions: $($M access status --db l.sqlite | grep -o '"outcome" : "[a-z]*"\|"code" : "[a-z-]*"' \
    | sort | uniq -c | tr -s ' ' | paste -sd ',' -)"
for f in base.sqlite l.sqlite; do
  start=$(date +%s.%N); $M verify --db $f >/dev/null; end=$(date +%s.%N)
  echo "$f: verify $(awk "BEGIN {printf \"%.3f\", $end - $start}") s"
done
rm -rf "$dir"
