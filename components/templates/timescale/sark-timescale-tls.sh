#!/bin/bash
# TLS for the TimescaleDB server: a CA made once and kept with the cluster (on the data volume,
# so a replacement host keeps it), and a server certificate for this host's address signed by it.
# Clients verify the server with sslmode=verify-full against the CA, which the host publishes
# to SSM (sark-timescale-password publish); the CA key never leaves this directory.
#   sark-timescale-tls <tls-dir> <private-ip>
set -euo pipefail
dir=$1 ip=$2
umask 077
if [ ! -s "${dir}/ca.crt" ] || [ ! -s "${dir}/ca.key" ]; then
  openssl req -x509 -newkey rsa:3072 -sha256 -nodes -days 3650 -subj "/CN=SARK TimescaleDB CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "${dir}/ca.key" -out "${dir}/ca.crt" 2>/dev/null
fi
printf 'subjectAltName=IP:%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
  "${ip}" > "${dir}/server.ext"
openssl req -new -newkey rsa:3072 -sha256 -nodes -subj "/CN=${ip}" -keyout "${dir}/server.key" \
  -out "${dir}/server.csr" 2>/dev/null
openssl x509 -req -sha256 -days 825 -in "${dir}/server.csr" -CA "${dir}/ca.crt" -CAkey "${dir}/ca.key" \
  -CAcreateserial -extfile "${dir}/server.ext" -out "${dir}/server.crt" 2>/dev/null
chmod 0644 "${dir}/ca.crt" "${dir}/server.crt"
chown postgres:postgres "${dir}"/*
