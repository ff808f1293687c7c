#!/usr/bin/env bash
# What one running container's supervisor costs: starts N `sleep` containers with
# basic-docker (its supervisor is basic-docker-supervise while the container runs), with
# `podman run -d --runtime runc` (conmon) and, when containerd is installed, with
# `ctr run -d` (containerd-shim-runc-v2), and prints the median RSS, PSS, private memory
# and thread count of their supervisors side by side, with the machine's load.
#
#   scripts/bench-supervisor.sh                 # N=20, release build of this tree
#   N=50 BASIC_DOCKER=/path/basic-docker scripts/bench-supervisor.sh
#   SKIP_PODMAN=1 SKIP_CONTAINERD=1 scripts/bench-supervisor.sh
#
# The supervisor of a container is the parent of its init. Everything runs on private
# roots, state directories and sockets under one temporary directory; only the containers
# this script started are stopped and removed, and the directory deleted. Needs root and
# the registry harness (scripts/harness.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20}
if [ -z "${BASIC_DOCKER:-}" ]; then
  cargo build -q --release -p basic-docker
  BASIC_DOCKER=$PWD/target/release/basic-docker
fi
scripts/harness.sh start >/dev/null
eval "$(scripts/harness.sh env)"
IMAGE=$BASIC_DOCKER_TEST_REGISTRY_OPEN/fixtures/busybox:latest

WORK=$(mktemp -d /tmp/bench-supervisor.XXXXXX)
CLEANUP=()
cleanup() {
  local i
  for ((i = ${#CLEANUP[@]} - 1; i >= 0; i--)); do eval "${CLEANUP[$i]}" >/dev/null 2>&1 || true; done
  # podman keeps its storage's overlay directory mounted on itself: only mounts under
  # this script's directory, deepest first.
  awk -v w="$WORK/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# "RSS_KB PSS_KB PRIVATE_KB THREADS" of process $1.
measure() {
  local pid=$1 rss pss priv threads
  rss=$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status")
  threads=$(awk '/^Threads:/{print $2}' "/proc/$pid/status")
  pss=$(awk '/^Pss:/{print $2}' "/proc/$pid/smaps_rollup")
  priv=$(awk '/^Private_(Clean|Dirty):/{s+=$2} END{print s}' "/proc/$pid/smaps_rollup")
  echo "$rss $pss $priv $threads"
}

parent_of() { awk '/^PPid:/{print $2}' "/proc/$1/status"; }

# Prints "NAME median-rss median-pss median-private median-threads (n) [exe]" from
# "RSS PSS PRIV THREADS" lines on stdin.
summarise() {
  /usr/bin/python3 -c '
import statistics, sys
name, exe = sys.argv[1], sys.argv[2]
rows = [list(map(int, l.split())) for l in sys.stdin if l.strip()]
if not rows:
    print(f"{name:<34} (no supervisors measured)"); sys.exit()
med = lambda i: statistics.median(r[i] for r in rows)
print(f"{name:<34} {med(0)/1024:8.2f} {med(1)/1024:8.2f} {med(2)/1024:8.2f} {med(3):7.0f} {len(rows):4d}  {exe}")
' "$1" "$2"
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-34s %8s %8s %8s %7s %4s  %s\n' "supervisor (median of N)" "RSS MB" "PSS MB" "priv MB" threads n exe

# --- basic-docker
BD=("$BASIC_DOCKER" --root "$WORK/bd/root" --state "$WORK/bd/state")
"${BD[@]}" pull -q "$IMAGE" >/dev/null
ids=()
CLEANUP+=('"${BD[@]}" rm -f "${ids[@]}"')
for i in $(seq "$N"); do
  ids+=("$("${BD[@]}" run -d --network none "$IMAGE" sleep 100000)")
done
sleep 1
bd_out=$WORK/bd.txt
exe=
for id in "${ids[@]}"; do
  init=$("${BD[@]}" inspect -f '{{.State.Pid}}' "$id")
  sup=$(parent_of "$init")
  exe=$(tr '\0' ' ' <"/proc/$sup/cmdline" | cut -c1-40)
  measure "$sup" >>"$bd_out"
done
summarise "basic-docker" "$exe" <"$bd_out"
"${BD[@]}" rm -f "${ids[@]}" >/dev/null
ids=()

# --- podman + conmon (runc: crun refuses this machine's hybrid cgroups)
if [ -z "${SKIP_PODMAN:-}" ] && command -v podman >/dev/null; then
  PM=(env -u DOCKER_CONFIG podman --root "$WORK/pm/root" --runroot "$WORK/pm/run"
      --cgroup-manager cgroupfs --events-backend file --storage-driver overlay)
  pm_ids=()
  CLEANUP+=('"${PM[@]}" rm -f -t 0 "${pm_ids[@]}"')
  if "${PM[@]}" pull -q --tls-verify=false "$IMAGE" >/dev/null 2>"$WORK/pm.err"; then
    for i in $(seq "$N"); do
      pm_ids+=("$("${PM[@]}" run -d --runtime runc --network none \
        --ulimit nofile=20000:20000 --ulimit nproc=4096:4096 "$IMAGE" sleep 100000)")
    done
    sleep 1
    exe=
    for id in "${pm_ids[@]}"; do
      init=$("${PM[@]}" inspect -f '{{.State.Pid}}' "$id")
      sup=$(parent_of "$init")
      exe=$(tr '\0' ' ' <"/proc/$sup/cmdline" | cut -c1-40)
      measure "$sup" >>"$WORK/pm.txt"
    done
    summarise "podman (conmon)" "$exe" <"$WORK/pm.txt"
    "${PM[@]}" rm -f -t 0 "${pm_ids[@]}" >/dev/null
    pm_ids=()
  else
    echo "podman: pull failed: $(tail -1 "$WORK/pm.err")"
  fi
fi

# --- containerd + containerd-shim-runc-v2, on a containerd of its own
if [ -z "${SKIP_CONTAINERD:-}" ] && command -v containerd >/dev/null && command -v ctr >/dev/null; then
  C=$WORK/ctrd
  mkdir -p "$C"
  cat >"$C/config.toml" <<TOML
version = 2
root = "$C/root"
state = "$C/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$C/containerd.sock"
[ttrpc]
  address = "$C/containerd.sock.ttrpc"
TOML
  containerd --config "$C/config.toml" >"$C/log" 2>&1 &
  CTRD=$!
  CLEANUP+=("kill $CTRD; wait $CTRD")
  CTR=(ctr --address "$C/containerd.sock" --namespace bench-supervisor)
  for _ in $(seq 100); do "${CTR[@]}" version >/dev/null 2>&1 && break; sleep 0.1; done
  if "${CTR[@]}" images pull --plain-http "$IMAGE" >/dev/null 2>"$C/pull.err"; then
    names=()
    CLEANUP+=('for n in "${names[@]}"; do "${CTR[@]}" task kill -s KILL "$n"; sleep 0.2; "${CTR[@]}" task delete -f "$n"; "${CTR[@]}" container delete "$n"; done')
    for i in $(seq "$N"); do
      names+=("bench-$i")
      "${CTR[@]}" run -d --null-io "$IMAGE" "bench-$i" sleep 100000 >/dev/null
    done
    sleep 1
    exe=
    for n in "${names[@]}"; do
      init=$("${CTR[@]}" task ls | awk -v n="$n" '$1 == n {print $2}')
      sup=$(parent_of "$init")
      exe=$(tr '\0' ' ' <"/proc/$sup/cmdline" | cut -c1-40)
      measure "$sup" >>"$C/ctrd.txt"
    done
    summarise "containerd (containerd-shim-runc-v2)" "$exe" <"$C/ctrd.txt"
  else
    echo "containerd: pull failed: $(tail -1 "$C/pull.err")"
  fi
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
