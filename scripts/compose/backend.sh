#!/bin/bash
# A demo backend that registers itself: `xdscp backend` answers HTTP on :$PORT with its name,
# `xdscp register` keeps SERVICE -> this container's IP:$PORT in etcd under a lease (metadata
# backend=NAME). On SIGTERM/SIGINT the registration is revoked first, then the backend stops.
#
# Runs as the container's PID 1, so it supervises both: the signal handler is installed before
# either starts (a signal during start-up is handled, and said, like any other), and every
# ending is one line naming its cause — a signal (and which), or a child that exited (and
# its status). bash, not sh: Debian's dash was seen to lose a trapped SIGTERM that arrived
# while it started the background jobs (the trap never ran: 3 of 8 tries; bash: 0 of 10). `xdscp register` ending by itself with status 0 (its key deleted by someone
# else: `xdscp deregister`) leaves the backend answering, unregistered; any other ending of
# either stops the container with that child's status, so `docker inspect` shows it.
set -u
: "${BACKEND_NAME:?}" "${XDSCP_ETCD:?}"
service=${SERVICE:-web}
port=${PORT:-8080}
backend="" registration="" signalled="" backend_stopped=""

say() { echo "backend.sh $BACKEND_NAME: $*"; }

# The trap: revoke the registration (waiting for its drain), then stop the backend.
on_signal() {
  signalled=$1
  say "got $1: stopping (registration first)"
  if [ -n "$registration" ] && kill -TERM "$registration" 2>/dev/null; then
    wait "$registration"
    say "xdscp register exited with status $?"
  fi
  registration=""
  [ -n "$backend" ] && kill -TERM "$backend" 2>/dev/null && backend_stopped=1
}
trap 'on_signal SIGTERM' TERM
trap 'on_signal SIGINT' INT

ip=$(python3 -c 'import socket; print(socket.gethostbyname(socket.gethostname()))')
say "starting on $ip:$port (etcd $XDSCP_ETCD)"
xdscp backend --name "$BACKEND_NAME" --host 0.0.0.0 --http-port "$port" --grpc-port -1 &
backend=$!
if [ -z "$signalled" ]; then
  xdscp register "$service" "$ip:$port" --weight "${WEIGHT:-1}" --ttl 5 \
    --metadata "backend=$BACKEND_NAME" &
  registration=$!
fi
# A signal that came before a child's pid was known: stop what has started since.
if [ -n "$signalled" ] && { [ -n "$registration" ] || [ -z "$backend_stopped" ]; }; then
  on_signal "$signalled"
fi

# Supervise (a signal ends the container through the trap, which stops both children).
while kill -0 "$backend" 2>/dev/null; do
  if [ -n "$registration" ] && ! kill -0 "$registration" 2>/dev/null; then
    wait "$registration"
    status=$?
    registration=""
    if [ "$status" -ne 0 ] && [ -z "$signalled" ]; then
      say "xdscp register exited with status $status: stopping the backend"
      kill -TERM "$backend" 2>/dev/null
      wait "$backend"
      exit "$status"
    fi
    [ -z "$signalled" ] && say "xdscp register ended (status 0): the backend answers, unregistered"
  fi
  sleep 0.2
done
wait "$backend"
status=$?
if [ -n "$signalled" ]; then
  wait "$backend" 2>/dev/null  # a signal may have cut the first wait short: let it finish
  say "stopped by $signalled"
  exit 0
fi
say "xdscp backend exited by itself with status $status"
[ -n "$registration" ] && kill -TERM "$registration" 2>/dev/null && wait "$registration"
exit "$status"
