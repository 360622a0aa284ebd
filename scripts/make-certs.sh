#!/usr/bin/env bash
# Makes a test certificate authority and certificates with openssl for MedLedger's brokers,
# bridges and clients (not for production: keys are unencrypted and the CA key sits beside them).
#
#   scripts/make-certs.sh DIR [--ca-name NAME] [--server NAME]... [--days N] IDENTITY...
#
# Writes, in DIR (made if missing):
#   ca.crt, ca.key               the CA (kept and reused if DIR already holds one)
#   NAME.crt, NAME.key           for each --server NAME: a broker certificate (serverAuth) for
#                                DNS:NAME, DNS:localhost and IP:127.0.0.1
#   IDENTITY.crt, IDENTITY.key   for each IDENTITY (a device id, node id or bridge identity): a
#                                client certificate (clientAuth) whose common name is IDENTITY,
#                                which a hospital broker with use_identity_as_username takes as
#                                the MQTT username
# Keys are EC P-256 (PKCS#8 PEM, mode 0600). Prints nothing but errors.
set -euo pipefail

usage() { echo "usage: $0 DIR [--ca-name NAME] [--server NAME]... [--days N] IDENTITY..." >&2; exit 2; }
[ $# -ge 1 ] || usage
dir="$1"; shift
ca_name="MedLedger test CA"
days=825
servers=()
identities=()
while [ $# -gt 0 ]; do
    case "$1" in
        --ca-name) [ $# -ge 2 ] || usage; ca_name="$2"; shift ;;
        --server) [ $# -ge 2 ] || usage; servers+=("$2"); shift ;;
        --days) [ $# -ge 2 ] || usage; days="$2"; shift ;;
        -h|--help) usage ;;
        -*) echo "unknown option $1" >&2; usage ;;
        *) identities+=("$1") ;;
    esac
    shift
done
for name in "${servers[@]}" "${identities[@]}"; do
    [[ "$name" =~ ^[A-Za-z0-9._-]{1,64}$ ]] || { echo "'$name' is not [A-Za-z0-9._-]{1,64}" >&2; exit 2; }
done
command -v openssl >/dev/null || { echo "openssl is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
mkdir -p "$dir"
umask 077
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; chmod 600 "$1"; }

if [ ! -f "$dir/ca.crt" ] || [ ! -f "$dir/ca.key" ]; then
    key "$dir/ca.key"
    openssl req -new -x509 -sha256 -days $((days * 2)) -key "$dir/ca.key" -subj "/CN=$ca_name" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$dir/ca.crt"
    chmod 644 "$dir/ca.crt"
fi

sign() { # name extensions-file
    local name="$1" ext="$2"
    key "$dir/$name.key"
    openssl req -new -sha256 -key "$dir/$name.key" -subj "/CN=$name" -out "$work/$name.csr"
    openssl x509 -req -sha256 -days "$days" -in "$work/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" -extfile "$ext" -out "$dir/$name.crt" 2>/dev/null
    chmod 644 "$dir/$name.crt"
}

for name in "${servers[@]}"; do
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth" "subjectAltName=DNS:$name,DNS:localhost,IP:127.0.0.1" > "$work/server.ext"
    sign "$name" "$work/server.ext"
done
printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=clientAuth" > "$work/client.ext"
for name in "${identities[@]}"; do
    sign "$name" "$work/client.ext"
done
