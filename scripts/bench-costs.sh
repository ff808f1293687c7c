#!/usr/bin/env bash
# What a container costs, side by side (issue 17), in one run:
#   1. the supervisor of a running `sleep` container: basic-docker's against podman's
#      conmon and containerd's shim (RSS, PSS, threads; scripts/bench-supervisor.sh);
#   2. `basic-docker run --rm IMG true` on the default bridge network against `runc run`
#      of `true` alone on the same rootfs (the image's, exported), runs alternated;
#   3. `basic-docker pull` of the big 4-layer image (scripts/bench-pull.sh's) into a fresh
#      root on ext4 against `docker pull` into a fresh dockerd data root on ext4 (Debian's
#      dockerd 20.10, overlay2), runs alternated;
#   4. `basic-docker run --rm --network none IMG true` against
#      `docker run --rm --network none IMG true` (dockerd, containerd, runc), alternated.
# Prints each pair's medians and the median of the per-run ratios, with the load average
# before and after each part (the machine is shared: read the ratios, and the load).
#
#   scripts/bench-costs.sh                      # RUNS=21 pairs for 2 and 4, PULLS=5
#   RUNS=41 PULLS=7 BASIC_DOCKER=target/release/basic-docker scripts/bench-costs.sh
#   SKIP=1,3 scripts/bench-costs.sh             # leave parts out
#
# Installs what it needs the way scripts/install-deps.sh does (docker.io, podman, runc,
# containerd, the CNI plugins, the harness's tools), starts the registry harness, and
# starts dockerds of its own (`--iptables=false --bridge=none`, private sockets, data and
# exec roots under one temporary directory on ext4); they are stopped and everything is
# deleted at the end. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-21}
PULLS=${PULLS:-5}
SKIP=${SKIP:-}
[ "$(id -u)" = 0 ] || { echo "bench-costs: run as root" >&2; exit 1; }

# ---- what it needs ------------------------------------------------------------------
scripts/install-deps.sh >/dev/null
need() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed' || DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$1" >/dev/null; }
need runc
need pigz
if [ -z "${BASIC_DOCKER:-}" ]; then
  cargo build -q --release -p basic-docker
  BASIC_DOCKER=$PWD/target/release/basic-docker
fi
BASIC_DOCKER=$(realpath "$BASIC_DOCKER")
scripts/harness.sh start >/dev/null
eval "$(scripts/harness.sh env)"
IMAGE=$BASIC_DOCKER_TEST_REGISTRY_OPEN/fixtures/busybox:latest
BIG=$BASIC_DOCKER_TEST_REGISTRY_OPEN/bench/usr-layers:latest
DOCKER=/usr/bin/docker

# On ext4 (the root disk), not tmpfs: the pull is measured on disk.
WORK=$(mktemp -d /var/tmp/bench-costs.XXXXXX)
DAEMONS=()
cleanup() {
  local pid
  for pid in "${DAEMONS[@]}"; do
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  # Our stores' pools of prepared namespaces, then whatever is still mounted in $WORK.
  for r in "$WORK"/bd-*; do
    [ -d "$r" ] && "$BASIC_DOCKER" --root "$r/root" --state "$r/state" network prune -f >/dev/null 2>&1 || true
  done
  awk -v w="$WORK/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

load() { echo "  load: $(cut -d' ' -f1-3 /proc/loadavg)   ($(uptime))"; }
skip() { [[ ",$SKIP," == *",$1,"* ]]; }

# Starts a dockerd of its own under $WORK/$1; sets DOCKER_HOST for the callers.
start_dockerd() {
  local d=$WORK/$1
  mkdir -p "$d"
  dockerd --iptables=false --bridge=none --ip-masq=false \
    -H "unix://$d/docker.sock" --data-root "$d/data" --exec-root "$d/exec" \
    --pidfile "$d/pid" --containerd-namespace "bench-costs-$1" \
    --containerd-plugins-namespace "bench-costs-$1-plugins" >"$d/log" 2>&1 &
  DAEMONS+=($!)
  for _ in $(seq 300); do
    DOCKER_HOST=unix://$d/docker.sock $DOCKER version >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "bench-costs: dockerd $1 did not answer; its log:" >&2
  tail -5 "$d/log" >&2
  exit 1
}

stop_dockerd() { # the last one started
  local pid=${DAEMONS[-1]}
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  unset 'DAEMONS[-1]'
}

# Runs "NAME_A" CMD_A "NAME_B" CMD_B alternately RUNS times (A first on odd runs, B first
# on even ones), one warm-up each, output discarded; prints medians and the median of the
# per-pair ratios A/B.
alternate() {
  /usr/bin/python3 - "$RUNS" "$@" <<'EOF'
import statistics, subprocess, sys, time
runs = int(sys.argv[1]); name_a, cmd_a, name_b, cmd_b = sys.argv[2:6]
# Timed until the command exits. Its output is read to the end afterwards, untimed: work
# a command leaves in the background holding its output (basic-docker's network teardown)
# is over before the other contender starts, so neither runs beside the other's leftovers.
def once(cmd):
    t = time.perf_counter()
    p = subprocess.Popen(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    code = p.wait()
    ms = (time.perf_counter() - t) * 1000
    _, err = p.communicate()
    if code != 0:
        sys.exit(f"failed ({code}): {cmd}\n{err.decode()[-500:]}")
    return ms
once(cmd_a); once(cmd_b)
a, b = [], []
for i in range(runs):
    pair = [(a, cmd_a), (b, cmd_b)] if i % 2 == 0 else [(b, cmd_b), (a, cmd_a)]
    for into, cmd in pair:
        into.append(once(cmd))
ratios = [x / y for x, y in zip(a, b)]
print(f"  {name_a:<44} median {statistics.median(a):7.1f} ms  (quartiles {statistics.quantiles(a)[0]:.1f}-{statistics.quantiles(a)[2]:.1f})")
print(f"  {name_b:<44} median {statistics.median(b):7.1f} ms  (quartiles {statistics.quantiles(b)[0]:.1f}-{statistics.quantiles(b)[2]:.1f})")
print(f"  median of {runs} per-run ratios: {statistics.median(ratios):.3f}")
EOF
}

echo "bench-costs: $(nproc) cores, $(uname -r), basic-docker $BASIC_DOCKER"

# ---- 1. supervisor --------------------------------------------------------------------
if ! skip 1; then
  echo
  echo "1. supervisor of a running sleep container (median of N=${N:-20}; target: RSS <= 2.5 MB, 1 thread)"
  load
  out=$(BASIC_DOCKER=$BASIC_DOCKER scripts/bench-supervisor.sh)
  echo "$out" | sed 's/^/  /'
  echo "$out" | awk '
    /^basic-docker/ {ours = $2; ours_t = $5}
    /^podman/ {conmon = $3}
    /^containerd/ {shim = $3}
    END {
      if (conmon) printf "  RSS ratio ours/conmon: %.2f\n", ours / conmon
      if (shim) printf "  RSS ratio ours/containerd-shim: %.2f\n", ours / shim
      printf "  ours: %.2f MB, %d thread(s): %s\n", ours, ours_t, (ours <= 2.5 && ours_t == 1) ? "target met" : "target NOT met"
    }'
  load
fi

# ---- 2. default network run --rm vs runc run -------------------------------------------
if ! skip 2; then
  echo
  echo "2. run --rm IMG true on the default bridge network vs runc run of true on the same rootfs ($RUNS pairs; target: ratio <= 1)"
  R=$WORK/bd-run
  BD="$BASIC_DOCKER --root $R/root --state $R/state"
  $BD pull -q "$IMAGE" >/dev/null
  B=$WORK/bundle
  mkdir -p "$B/rootfs"
  cid=$($BD create "$IMAGE" true)
  $BD export "$cid" | tar -C "$B/rootfs" -xf -
  $BD rm "$cid" >/dev/null
  (cd "$B" && runc spec)
  /usr/bin/python3 - "$B/config.json" <<'EOF'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["true"]
c["root"]["readonly"] = False
json.dump(c, open(p, "w"), indent=2)
EOF
  load
  alternate "basic-docker run --rm (bridge network)" "$BD run --rm $IMAGE true" \
    "runc run (new netns, no interface)" "runc --root $WORK/runc-state run -b $B bench-costs-runc"
  echo "  for reference, the same pairs without the prepared namespaces:"
  alternate "basic-docker run --rm (bridge, no pool)" "BASIC_DOCKER_NETNS_POOL=0 $BD run --rm $IMAGE true" \
    "runc run" "runc --root $WORK/runc-state run -b $B bench-costs-runc"
  load
fi

# ---- 3. pull of the big image on ext4 vs docker pull -----------------------------------
if ! skip 3; then
  echo
  echo "3. pull of $BIG onto ext4 ($PULLS alternated pairs, each into a fresh root / data root; target: ratio <= 0.4)"
  PREPARE_ONLY=1 BASIC_DOCKER=$BASIC_DOCKER scripts/bench-pull.sh >/dev/null
  load
  ours=(); theirs=()
  ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
  for i in $(seq "$PULLS"); do
    for who in $( ((i % 2)) && echo "ours docker" || echo "docker ours"); do
      if [ "$who" = ours ]; then
        t=$(date +%s%N)
        "$BASIC_DOCKER" --root "$WORK/bd-pull-$i/root" --state "$WORK/bd-pull-$i/state" pull -q "$BIG" >/dev/null
        ours+=("$(ms "$t")")
      else
        start_dockerd "pull-$i"
        t=$(date +%s%N)
        DOCKER_HOST=unix://$WORK/pull-$i/docker.sock $DOCKER pull -q "$BIG" >/dev/null
        theirs+=("$(ms "$t")")
        stop_dockerd
      fi
    done
    echo "  run $i: basic-docker ${ours[-1]} ms, docker ${theirs[-1]} ms"
  done
  /usr/bin/python3 - "${ours[*]}" "${theirs[*]}" <<'EOF'
import statistics, sys
a = [float(x) for x in sys.argv[1].split()]; b = [float(x) for x in sys.argv[2].split()]
print(f"  basic-docker pull  median {statistics.median(a):7.0f} ms")
print(f"  docker pull        median {statistics.median(b):7.0f} ms")
print(f"  median of {len(a)} per-run ratios: {statistics.median([x / y for x, y in zip(a, b)]):.3f}")
EOF
  load
fi

# ---- 4. run --rm --network none vs docker run ------------------------------------------
if ! skip 4; then
  echo
  echo "4. run --rm --network none IMG true vs docker run --rm --network none ($RUNS pairs; target: ratio <= 0.1)"
  R=$WORK/bd-none
  BD="$BASIC_DOCKER --root $R/root --state $R/state"
  $BD pull -q "$IMAGE" >/dev/null
  start_dockerd run
  D="env DOCKER_HOST=unix://$WORK/run/docker.sock DOCKER_CONFIG=$WORK/run/config $DOCKER"
  $D pull -q "$IMAGE" >/dev/null
  load
  alternate "basic-docker run --rm --network none" "$BD run --rm --network none $IMAGE true" \
    "docker run --rm --network none" "$D run --rm --network none $IMAGE true"
  load
  stop_dockerd
fi
