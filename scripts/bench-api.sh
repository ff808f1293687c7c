#!/usr/bin/env bash
# `docker run --rm busybox true` through the Docker Engine API: docker's own CLI
# (Debian's docker.io 20.10) against `basic-docker system service` and against dockerd
# (Debian's docker.io 20.10 with containerd and runc), on the same machine, in one run,
# runs alternated one by one. Both use `--network none` (dockerd runs here without its
# bridge, so as not to touch the host's firewall). Prints the medians, the means, the
# median of the per-pair ratios and the load average, to record in docs/performance.md.
#
#   BASIC_DOCKER=target/release/basic-docker RUNS=30 scripts/bench-api.sh
#
# Needs root, the registry harness (scripts/harness.sh start) and scripts/install-deps.sh.
# dockerd gets a private socket, data root and exec root under a temporary directory, and
# is stopped at the end; nothing of the host's docker is used.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-30}
BASIC_DOCKER=${BASIC_DOCKER:-target/release/basic-docker}
DOCKER=/usr/bin/docker
eval "$(scripts/harness.sh env)"
IMAGE=$BASIC_DOCKER_TEST_REGISTRY_OPEN/fixtures/busybox:latest

WORK=$(mktemp -d /tmp/bench-api.XXXXXX)
SERVICE_PID=
DOCKERD_PID=
cleanup() {
  [ -n "$SERVICE_PID" ] && kill "$SERVICE_PID" 2>/dev/null || true
  if [ -n "$DOCKERD_PID" ]; then
    kill "$DOCKERD_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  umount -R "$WORK"/dockerd 2>/dev/null || true
  rm -rf "$WORK" 2>/dev/null || true
}
trap cleanup EXIT

wait_for_socket() {
  for _ in $(seq 300); do
    [ -S "$1" ] && DOCKER_HOST=unix://$1 $DOCKER version >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "bench-api: nothing answered on $1" >&2
  exit 1
}

"$BASIC_DOCKER" --root "$WORK/basic/root" --state "$WORK/basic/state" \
  system service --time 0 "unix://$WORK/basic.sock" 2>"$WORK/basic.log" &
SERVICE_PID=$!
dockerd --iptables=false --bridge=none --ip-masq=false \
  -H "unix://$WORK/dockerd.sock" --data-root "$WORK/dockerd/data" \
  --exec-root "$WORK/dockerd/exec" --pidfile "$WORK/dockerd/pid" \
  --containerd-namespace bench-api --containerd-plugins-namespace bench-api-plugins \
  >"$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
wait_for_socket "$WORK/basic.sock"
wait_for_socket "$WORK/dockerd.sock"

for sock in basic dockerd; do
  DOCKER_HOST=unix://$WORK/$sock.sock DOCKER_CONFIG=$WORK/config $DOCKER pull -q "$IMAGE" >/dev/null
  # One run each first: caches warm on both sides.
  DOCKER_HOST=unix://$WORK/$sock.sock DOCKER_CONFIG=$WORK/config \
    $DOCKER run --rm --network none "$IMAGE" true
done

time_run() {
  local start end
  start=$(date +%s%N)
  DOCKER_HOST=unix://$WORK/$1.sock DOCKER_CONFIG=$WORK/config \
    $DOCKER run --rm --network none "$IMAGE" true
  end=$(date +%s%N)
  echo $(((end - start) / 1000))
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$WORK/pairs"
for _ in $(seq "$RUNS"); do
  b=$(time_run basic)
  d=$(time_run dockerd)
  echo "$b $d" >>"$WORK/pairs"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$WORK/pairs" <<'EOF'
import statistics, sys
pairs = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
b = [p[0] / 1000 for p in pairs]
d = [p[1] / 1000 for p in pairs]
ratios = [p[0] / p[1] for p in pairs]
print(f"runs: {len(pairs)} pairs")
print(f"basic-docker service: median {statistics.median(b):.1f} ms, mean {statistics.mean(b):.1f} ms")
print(f"dockerd:              median {statistics.median(d):.1f} ms, mean {statistics.mean(d):.1f} ms")
print(f"median per-pair ratio (ours / dockerd): {statistics.median(ratios):.3f}")
EOF
