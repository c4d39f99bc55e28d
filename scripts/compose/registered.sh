#!/bin/bash
# The compose backends' healthcheck: healthy once this backend's registration is visible in
# etcd (a key under the service holding metadata backend=$BACKEND_NAME), read from any member.
set -u
etcdctl --endpoints="$XDSCP_ETCD" --dial-timeout=2s --command-timeout=4s get --prefix \
  "/xdscp/services/${SERVICE:-web}/" --print-value-only | grep -qF "\"backend\":\"$BACKEND_NAME\""
