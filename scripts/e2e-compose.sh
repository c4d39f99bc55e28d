#!/usr/bin/env bash
# `make e2e-compose`: the docker-compose end-to-end suite, on a machine with no image registry.
#
# Installs the Docker engine and Compose from Debian if missing, starts a private dockerd when
# no engine answers, builds a local base image with debootstrap if absent (docs: containers.md
# recipe), builds the xdscp image, runs docker-compose.yml until the test-runner exits,
# collects its exit code, logs and figures into build/e2e-compose/, and tears everything down
# (always, via trap). Then the quick-start stack (deploy/quickstart, see run_quickstart). Exits
# 0 with a SKIP line only when no Docker engine can be started.
#
# Environment: XDSCP_BASE (base image; default: the local debootstrap image below),
# XDSCP_E2E_STATE (private engine's socket and run dir), XDSCP_E2E_DATA (its data root: kept
# between runs so the base image and build cache survive), XDSCP_E2E_TIMEOUT (seconds),
# XDSCP_RUNTIME_IMAGE (the runtime image's tag), XDSCP_E2E_QUICKSTART=0 (skip the quick start).
set -euo pipefail
cd "$(dirname "$0")/.."

STATE=${XDSCP_E2E_STATE:-/tmp/xdscp-e2e}
DATA=${XDSCP_E2E_DATA:-/var/lib/xdscp-e2e/docker}
LOCAL_BASE=xdscp-base:bookworm
IMAGE=${XDSCP_IMAGE:-xdscp-e2e:local}
OUT=build/e2e-compose
TIMEOUT=${XDSCP_E2E_TIMEOUT:-900}
export COMPOSE_PROJECT_NAME=xdscp-e2e XDSCP_IMAGE=$IMAGE
COMPOSE=(docker-compose -f docker-compose.yml)
RUNTIME_IMAGE=${XDSCP_RUNTIME_IMAGE:-xdscp:local}
# The quick-start stack on the runtime image; every TRY_*_PORT empty: free loopback ports.
QS=(env XDSCP_IMAGE="$RUNTIME_IMAGE" TRY_ENVOY_PORT= TRY_ENVOY_ADMIN_PORT= TRY_XDSCP_ADMIN_PORT=
  TRY_ETCD_PORT= TRY_PROMETHEUS_PORT= TRY_GRAFANA_PORT=
  docker-compose -p xdscp-quickstart -f deploy/quickstart/docker-compose.yml)
QUICKSTART_RC=0
STARTED_PID=""
EVENTS_PID=""
PHASE_START=$(date +%s.%N)

log() { echo "e2e-compose: $*"; }
skip() { echo "SKIP e2e-compose: $* (no Docker engine could be started)"; exit 0; }
# Print the wall time of the phase that just ended and start timing the next one.
phase() {
  local now took
  now=$(date +%s.%N)
  took=$(awk -v a="$PHASE_START" -v b="$now" 'BEGIN { printf "%.1f", b - a }')
  printf 'e2e-compose: phase %-8s %6s s\n' "$1" "$took"
  echo "$1 $took" >>"$OUT/phases.txt"
  PHASE_START=$now
}

teardown() {
  local rc=$?
  [[ -z "$EVENTS_PID" ]] || kill "$EVENTS_PID" 2>/dev/null || true
  if [[ -n "${DOCKER_HOST:-}" ]] && docker info >/dev/null 2>&1; then
    "${COMPOSE[@]}" down --volumes --remove-orphans --timeout 5 >/dev/null 2>&1 || true
    docker rm --force xdscp-quickstart-test >/dev/null 2>&1 || true
    "${QS[@]}" down --volumes --remove-orphans --timeout 1 >/dev/null 2>&1 || true
  fi
  if [[ -n "$STARTED_PID" ]]; then
    kill "$STARTED_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$STARTED_PID" 2>/dev/null || break; sleep 0.2; done
    log "private dockerd (pid $STARTED_PID) stopped"
  fi
  exit "$rc"
}

install_packages() {
  local missing=()
  { command -v dockerd && command -v docker; } >/dev/null || missing+=(docker.io)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  [[ ${#missing[@]} -eq 0 ]] && return 0
  command -v apt-get >/dev/null || skip "missing ${missing[*]} and no apt-get to install them"
  [[ $(id -u) -eq 0 ]] || skip "missing ${missing[*]}; installing needs root"
  log "installing ${missing[*]}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") \
    >"$STATE/apt.log" 2>&1 || skip "apt-get install ${missing[*]} failed (see $STATE/apt.log)"
}

# Use an engine that already answers (DOCKER_HOST or the default socket), else start our own.
start_engine() {
  if docker info >/dev/null 2>&1; then
    log "using the running engine ${DOCKER_HOST:-(default socket)}"
    return 0
  fi
  command -v dockerd >/dev/null || skip "dockerd is not installed"
  [[ $(id -u) -eq 0 ]] || skip "no engine answers and starting dockerd needs root"
  mkdir -p "$DATA" "$STATE/exec"
  export DOCKER_HOST="unix://$STATE/docker.sock"
  dockerd --host "$DOCKER_HOST" --data-root "$DATA" --exec-root "$STATE/exec" \
    --pidfile "$STATE/dockerd.pid" >"$STATE/dockerd.log" 2>&1 &
  STARTED_PID=$!
  for _ in $(seq 150); do
    docker info >/dev/null 2>&1 && { log "private dockerd pid $STARTED_PID on $DOCKER_HOST"; return 0; }
    kill -0 "$STARTED_PID" 2>/dev/null || break
    sleep 0.2
  done
  local why
  why=$(tail -n 3 "$STATE/dockerd.log" 2>/dev/null | tr '\n' ' ')
  kill "$STARTED_PID" 2>/dev/null || true
  STARTED_PID=""
  skip "dockerd did not start (exited or not ready within 30 s): $why"
}

# The containers.md recipe: Debian bookworm minbase with Python, imported as an image.
build_local_base() {
  if docker image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
    log "base image $LOCAL_BASE present"
    return 0
  fi
  local mirror rootfs="$STATE/rootfs"
  mirror=$(grep -rhs '^URIs:' /etc/apt/sources.list.d/ | awk '{print $2}' | grep -m1 '/debian$' || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  log "building $LOCAL_BASE with debootstrap from $mirror"
  local attempt
  for attempt in 1 2; do  # a mirror hiccup should not fail the run: one retry
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      bookworm "$rootfs" "$mirror" >"$STATE/debootstrap.log" 2>&1 && break
    tail -n 20 "$STATE/debootstrap.log"
    [[ $attempt -eq 2 ]] && return 1
    log "debootstrap failed; retrying once"
  done
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "$LOCAL_BASE" >/dev/null
  rm -rf "$rootfs"
}

build_image() {
  local base=${XDSCP_BASE:-$LOCAL_BASE}
  # pip inside the build trusts the host's CA bundle (the file PIP_CERT names, if any).
  if [[ -n "${PIP_CERT:-}" && -f "$PIP_CERT" ]]; then cp "$PIP_CERT" .docker/ca.pem; fi
  local attempt
  for attempt in 1 2; do  # a package-index hiccup should not fail the run: one retry
    DOCKER_BUILDKIT=0 docker build --quiet --network host --build-arg "BASE=$base" \
      -t "$IMAGE" . >"$OUT/build.log" 2>&1 && break
    tail -n 30 "$OUT/build.log"
    [[ $attempt -eq 2 ]] && return 1
    log "image build failed; retrying once"
  done
  # Earlier builds of the images (the label of the Dockerfile's final stages): the untagged
  # images of its other stages (the package wheel) stay, or the next build could not reuse them.
  docker image prune --force --filter label=io.xdscp.image >/dev/null
}

# The stack's containers, every one (running or not).
stack_containers() {
  docker ps --all --quiet --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME"
}

# Each container's exit state into $OUT/containers.txt: how it ended (exit code, OOM kill,
# the engine's error), when, its health, and its restarts.
record_states() {
  local ids
  ids=$(stack_containers)
  [[ -n "$ids" ]] || { echo "(no container)" >"$OUT/containers.txt"; return 0; }
  local format='{{.Name}} status={{.State.Status}} exit={{.State.ExitCode}}'
  format+=' oom_killed={{.State.OOMKilled}} error="{{.State.Error}}"'
  format+=' started={{.State.StartedAt}} finished={{.State.FinishedAt}}'
  format+=' health={{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}}'
  format+=' restarts={{.RestartCount}}'
  # shellcheck disable=SC2086  # one argument per container id
  docker inspect --format "$format" $ids >"$OUT/containers.txt" 2>&1 || true
}

# When the stack did not come up or the suite failed: every container's exit state, its last
# log lines, and the engine's kill/stop/die/oom events (who signalled what, and when).
diagnose() {
  log "diagnosis: each container's exit state ($OUT/containers.txt)"
  cat "$OUT/containers.txt"
  local id name
  for id in $(stack_containers); do
    name=$(docker inspect --format '{{.Name}}' "$id" 2>/dev/null || echo "$id")
    log "diagnosis: last log lines of ${name#/}"
    docker logs --timestamps --tail 15 "$id" 2>&1 | sed 's/^/    /' || true
  done
  log "diagnosis: the engine's kill, stop, die and oom events ($OUT/events.log)"
  grep -E ' (kill|stop|die|oom) ' "$OUT/events.log" || echo "    (none)"
}

# The engine's container events for the stack, from before `up` until the suite ends: a
# container that received a signal shows who sent it (a kill event from the API) or not.
watch_events() {
  docker events --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
    --filter type=container --filter event=create --filter event=start --filter event=kill \
    --filter event=stop --filter event=die --filter event=oom --filter event=health_status \
    --format '{{.TimeNano}} {{.Action}} {{index .Actor.Attributes "name"}} signal={{index .Actor.Attributes "signal"}} exit={{index .Actor.Attributes "exitCode"}}' \
    >"$OUT/events.log" 2>&1 &
  EVENTS_PID=$!
}

# compose up (detached) on fresh containers and volumes — whatever a killed earlier run left
# behind (a stack, its etcd data, its registrations) is removed first — and wait for the runner
# alone (with a timeout): the run ends when the suite does, whatever another service does.
run_stack() {
  local stale
  stale=$(stack_containers | wc -l)
  if [[ $stale -gt 0 ]]; then
    log "removing $stale container(s) an earlier run left behind"
  fi
  "${COMPOSE[@]}" down --volumes --remove-orphans --timeout 1 >/dev/null 2>&1 || true
  watch_events
  "${COMPOSE[@]}" up --detach --no-build --force-recreate --renew-anon-volumes \
    >"$OUT/up.log" 2>&1 || { cat "$OUT/up.log"; record_states; diagnose; return 1; }
  phase up
  # Every service was started (and the backends registered: see docker-compose.yml); one that
  # exited meanwhile fails the run now, with the diagnosis, not the suite's setup later.
  if [[ -n $(docker ps --all --quiet --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
    --filter status=exited) ]]; then
    log "a container exited while the stack started"
    record_states; diagnose; return 1
  fi
  local runner
  runner=$("${COMPOSE[@]}" ps -q test-runner)
  RUNNER_RC=$(timeout "$TIMEOUT" docker wait "$runner" || echo 124)
  phase suite
  record_states
  kill "$EVENTS_PID" 2>/dev/null || true
  docker logs "$runner" >"$OUT/runner.log" 2>&1 || true
  "${COMPOSE[@]}" logs --no-color --timestamps >"$OUT/compose.log" 2>&1 || true
  docker cp "$runner:/results/." "$OUT/" >/dev/null 2>&1 || true
  [[ $RUNNER_RC -eq 0 ]] || diagnose
}

# The quick-start stack (deploy/quickstart): its whole file validated (the observability
# profile included) and its Prometheus config linted; the runtime image built (from the cache
# the test image left) and checked: no development tool, not root (the check must fail on the
# test image); the stack up without the profile (Prometheus and Grafana cannot be pulled here);
# then tests/unit/deploy and tests/quickstart from the test image on the host's network,
# against the ports the stack published on 127.0.0.1. Output: $OUT/quickstart.log.
# A quick-start service's container, and the 127.0.0.1 address its container port is published
# on (one `docker` call each: docker-compose's own start-up takes longer).
qs_container() {
  docker ps --quiet --filter label=com.docker.compose.project=xdscp-quickstart \
    --filter "label=com.docker.compose.service=$1"
}
qs_port() {
  docker port "$(qs_container "$1")" "$2/tcp" | grep -m1 '^127\.0\.0\.1:'
}

run_quickstart() {
  local qlog=$OUT/quickstart.log check=scripts/compose/check-runtime-image.py
  "${QS[@]}" --profile observability config --quiet >"$qlog" 2>&1 || { cat "$qlog"; return 1; }
  if command -v promtool >/dev/null; then
    promtool check config deploy/quickstart/prometheus/prometheus.yml >>"$qlog" 2>&1 \
      || { cat "$qlog"; return 1; }
  else
    log "promtool is not installed: the Prometheus config is not linted"
  fi
  phase qs-lint
  DOCKER_BUILDKIT=0 docker build --quiet --network host --target runtime \
    --build-arg "BASE=${XDSCP_BASE:-$LOCAL_BASE}" -t "$RUNTIME_IMAGE" . >>"$qlog" 2>&1 \
    || { tail -n 30 "$qlog"; return 1; }
  docker image prune --force --filter label=io.xdscp.image >/dev/null
  docker run --rm -i --entrypoint python3 "$RUNTIME_IMAGE" - <"$check" || return 1
  if docker run --rm -i --entrypoint python3 "$IMAGE" - <"$check" >>"$qlog" 2>&1; then
    log "$check passes the test image too: it cannot tell a runtime image"; return 1
  fi
  phase qs-image
  "${QS[@]}" up --detach --no-build >>"$qlog" 2>&1 || { tail -n 30 "$qlog"; return 1; }
  phase qs-up
  # Prometheus' scrape, as it would make it: the config's target, from the stack's network.
  local target
  target=$(grep -o '"[a-z0-9.-]*:[0-9]*"' deploy/quickstart/prometheus/prometheus.yml | tr -d '"')
  docker exec "$(qs_container backend-a)" python3 -c 'import sys, urllib.request as u
body = u.urlopen(f"http://{sys.argv[1]}/metrics", timeout=10).read()
assert b"xdscp_connected_streams" in body, body[:200]
print(f"scraped http://{sys.argv[1]}/metrics: {len(body)} bytes")' "$target" >>"$qlog" 2>&1 \
    || { log "Prometheus' target $target/metrics does not answer"; tail -n 5 "$qlog"; return 1; }
  local envoy admin xdscp etcd
  envoy=$(qs_port envoy 10000) && admin=$(qs_port envoy 9901) \
    && xdscp=$(qs_port xdscp 18001) && etcd=$(qs_port etcd 2379) \
    || { log "the quick-start stack did not publish its ports on 127.0.0.1"; return 1; }
  log "quick start: Envoy $envoy, its admin $admin, serve's admin $xdscp, etcd $etcd"
  local rc=0
  timeout "$TIMEOUT" docker run --rm --name xdscp-quickstart-test --network host \
    --user "$(id -u):$(id -g)" \
    -v "$PWD/$OUT:/results" --entrypoint python \
    -e XDSCP_QUICKSTART=1 -e XDSCP_E2E_COMPOSE=1 -e XDSCP_E2E_ENVOY="$envoy" \
    -e XDSCP_E2E_ENVOY_ADMIN="$admin" -e XDSCP_E2E_REPLICAS="xdscp=$xdscp" \
    -e XDSCP_ETCD="http://$etcd" -e XDSCP_E2E_ENVOY_NODE=quickstart-envoy \
    -e XDSCP_E2E_BACKENDS="a=backend-a:8080,b=backend-b:8080" \
    -e XDSCP_E2E_RESULTS=/results/quickstart-figures.jsonl \
    "$IMAGE" -m pytest -p no:cacheprovider -v -rA tests/unit/deploy tests/quickstart \
    >>"$qlog" 2>&1 || rc=$?
  phase qs-test
  "${QS[@]}" logs --no-color >"$OUT/quickstart-compose.log" 2>&1 || true
  "${QS[@]}" down --volumes --remove-orphans --timeout 1 >/dev/null 2>&1 || true
  return "$rc"
}

report_quickstart() {
  sed -n '/short test summary/,$p' "$OUT/quickstart.log" | grep -v '^PASSED' \
    || tail -n 40 "$OUT/quickstart.log"
  [[ -f "$OUT/quickstart-figures.jsonl" ]] && cat "$OUT/quickstart-figures.jsonl"
  log "quick start: exit code $QUICKSTART_RC (logs: $OUT/quickstart.log," \
    "$OUT/quickstart-compose.log)"
}

report() {
  sed -n '/short test summary/,$p' "$OUT/runner.log" | grep -v '^PASSED' || tail -n 40 "$OUT/runner.log"
  [[ -f "$OUT/figures.jsonl" ]] && { echo "e2e-compose: figures"; cat "$OUT/figures.jsonl"; }
  log "logs: $OUT/runner.log (suite), $OUT/compose.log (every service), $OUT/phases.txt," \
    "$OUT/containers.txt (exit states), $OUT/events.log (the engine's events)"
  log "test-runner exit code $RUNNER_RC"
}

main() {
  mkdir -p "$STATE" "$OUT"
  # One run at a time per machine: runs share the private engine's socket and project name.
  if command -v flock >/dev/null; then
    exec 9>"$STATE/lock"
    flock -w "$TIMEOUT" 9 || { log "another e2e-compose run holds $STATE/lock"; return 1; }
  fi
  rm -f "$OUT"/*.log "$OUT/phases.txt" "$OUT/figures.jsonl" "$OUT/junit.xml" \
    "$OUT/quickstart-figures.jsonl" "$OUT/containers.txt"
  trap teardown EXIT
  install_packages
  phase install
  start_engine
  phase engine
  [[ -n "${XDSCP_BASE:-}" ]] || build_local_base
  phase base
  build_image
  phase build
  RUNNER_RC=1
  run_stack
  "${COMPOSE[@]}" down --volumes --remove-orphans --timeout 5 >/dev/null 2>&1 || true
  phase down
  if [[ ${XDSCP_E2E_QUICKSTART:-1} != 0 ]]; then
    run_quickstart || QUICKSTART_RC=$?
    phase qs-down
  fi
  report
  [[ ${XDSCP_E2E_QUICKSTART:-1} != 0 ]] && report_quickstart
  [[ $RUNNER_RC -ne 0 ]] && return "$RUNNER_RC"
  return "$QUICKSTART_RC"
}

main "$@"
