#!/bin/sh
# A demo backend that registers itself: `xdscp backend` answers HTTP on :$PORT with its name,
# `xdscp register` keeps SERVICE -> this container's IP:$PORT in etcd under a lease (metadata
# backend=NAME). On SIGTERM the registration is revoked first, then the backend stops.
set -u
: "${BACKEND_NAME:?}" "${XDSCP_ETCD:?}"
service=${SERVICE:-web}
port=${PORT:-8080}
ip=$(python3 -c 'import socket; print(socket.gethostbyname(socket.gethostname()))')
xdscp backend --name "$BACKEND_NAME" --host 0.0.0.0 --http-port "$port" --grpc-port -1 &
backend=$!
xdscp register "$service" "$ip:$port" --weight "${WEIGHT:-1}" --ttl 5 \
  --metadata "backend=$BACKEND_NAME" &
registration=$!
trap 'kill -TERM "$registration"; wait "$registration"; kill -TERM "$backend"' TERM INT
wait "$backend"
