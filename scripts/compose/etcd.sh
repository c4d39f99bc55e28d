#!/bin/bash
# One member of the compose stack's three-member etcd cluster: `etcd ARGS...` on this
# container's data directory. The e2e runner kills it the way `docker kill` would (SIGKILL, no
# clean shutdown) by creating the file $XDSCP_KILL_FILE on the shared /control volume; once the
# runner removes the file, etcd starts again on the same data directory and rejoins the
# cluster. The container itself stays up throughout, so the runner needs no Docker socket.
# (The variable is not ETCD_*: etcd would read that as one of its own flags.)
set -u
kill_file=${XDSCP_KILL_FILE:-}
[ -n "$kill_file" ] && rm -f "$kill_file"   # a file left by an earlier run kills nothing
pid=""
start() {
  etcd "$@" &
  pid=$!
  echo "etcd-member: etcd started (pid $pid)"
}
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid"; exit 0' TERM INT
start "$@"
while :; do
  if [ -n "$kill_file" ] && [ -e "$kill_file" ]; then
    echo "etcd-member: $kill_file exists: killing etcd (SIGKILL)"
    kill -KILL "$pid" 2>/dev/null
    wait "$pid"
    while [ -e "$kill_file" ]; do sleep 0.1; done
    echo "etcd-member: $kill_file removed: starting etcd again on its data directory"
    start "$@"
  elif ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid"
    status=$?
    echo "etcd-member: etcd exited by itself with status $status"
    exit "$status"
  fi
  sleep 0.1
done
