#!/bin/bash
# One xdscp replica of the compose stack: `xdscp ARGS...`, stopped with SIGTERM (as
# `docker stop` would) once the file $XDSCP_STOP_FILE appears on the shared /control volume.
# The e2e runner stops a replica that way, so it needs no Docker socket and no host help.
# After such a requested stop the container stays up, idle with xdscp gone (its ports closed),
# so that `docker compose up --exit-code-from test-runner` does not end the whole run.
set -u
stop_file=${XDSCP_STOP_FILE:-}
[ -n "$stop_file" ] && rm -f "$stop_file"   # a file left by an earlier run stops nothing
xdscp "$@" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' TERM INT
while kill -0 "$pid" 2>/dev/null; do
  if [ -n "$stop_file" ] && [ -e "$stop_file" ]; then
    echo "replica: $stop_file exists: stopping xdscp (SIGTERM)"
    kill -TERM "$pid"
    break
  fi
  sleep 0.1
done
wait "$pid"
status=$?
echo "replica: xdscp exited with status $status"
if [ -n "$stop_file" ] && [ -e "$stop_file" ]; then
  trap 'exit "$status"' TERM INT
  while :; do sleep 1; done
fi
exit "$status"
