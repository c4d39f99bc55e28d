#!/bin/sh
# Throwaway certificates for trying xDS over TLS with examples/xdscp.yaml (never for
# production): a CA, a server certificate for 127.0.0.1 and localhost, and a client
# certificate for mutual TLS, written to examples/certs/ (or the folder given).
#
#   examples/make-certs.sh            then remove the `#:` of xds.tls in examples/xdscp.yaml
#   xdscp bootstrap envoy --node-id edge-1 --xds 127.0.0.1:18000 --tls-ca examples/certs/ca.pem \
#       --tls-cert examples/certs/client.pem --tls-key examples/certs/client-key.pem > envoy.json
set -eu
out=${1:-$(dirname "$0")/certs}
mkdir -p "$out"
cd "$out"
days=30
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
    -subj "/CN=xdscp example CA" -keyout ca-key.pem -out ca.pem 2>/dev/null
leaf() {  # name, subject, extensions
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" \
        -keyout "$1-key.pem" -out "$1.csr" 2>/dev/null
    printf '%s\n' "$3" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days "$days" \
        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
leaf xds 127.0.0.1 "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth"
leaf client edge-1 "extendedKeyUsage=clientAuth"
chmod 600 ./*-key.pem
echo "wrote $(pwd): ca.pem, xds.pem, xds-key.pem, client.pem, client-key.pem"
