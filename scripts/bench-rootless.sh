#!/usr/bin/env bash
# A rootless start, side by side (issue 16): as an ordinary user, in one run,
#   1. `basic-docker run --rm --network none IMG true` against
#      `podman run --rm --network none IMG true`;
#   2. the same on each engine's default rootless network: basic-docker without
#      `--network` (pasta) against podman without `--network` (Debian's podman 4.3 uses
#      slirp4netns; the script prints which one it saw);
# each pair alternated run by run after a warm-up of each (the first command of a user
# makes basic-docker's namespace holder and podman's pause process), then, for reference,
# all four once more in one hyperfine run (not alternated). Prints each pair's medians, the
# median of the per-run ratios basic-docker / podman (target: <= 0.25), and the load average
# before and after each part (the machine is shared: read the ratios, and the load).
#
#   scripts/bench-rootless.sh                   # RUNS=21 pairs each, HYPERFINE_RUNS=10
#   RUNS=41 BASIC_DOCKER=target/release/basic-docker scripts/bench-rootless.sh
#   SKIP=2,3 scripts/bench-rootless.sh          # leave parts out
#   RUNTIME_DIR=disk scripts/bench-rootless.sh  # $XDG_RUNTIME_DIR on /tmp's disk, not a tmpfs
#
# Both engines run as the user `basic-docker-rootless` (the rootless tests' user, created
# with a 65536-id subordinate range if the machine does not have it), each with the same
# private $HOME and XDG directories under one temporary directory in /tmp (ext4 here), made
# by root and given to the user; $XDG_RUNTIME_DIR is a tmpfs mounted for the user, as logind
# makes /run/user/UID (RUNTIME_DIR=disk: a directory on /tmp's disk). Both use native
# overlayfs (kernel >= 5.13 allows it in a user namespace) and the same busybox image from
# the registry harness. Podman runs as
#   podman --runtime runc --cgroup-manager cgroupfs --events-backend file \
#          --storage-driver overlay run --rm --ulimit nofile=20000:20000 \
#          --ulimit nproc=4096:4096 [--network none] IMG true
# (crun 1.8, podman's default, refuses the hybrid cgroup layout of these machines; there
# is no systemd user session, so cgroupfs and a file for events; the hard limits here are
# 20000 files, below what podman asks for by default; without --storage-driver this podman
# picks vfs for a rootless store (no fuse-overlayfs here); on cgroup v1 a rootless podman makes
# no cgroup, so `--cgroups disabled` changes nothing and is not passed).
#
# Rootless user-mode networking (slirp4netns, pasta) opens /dev/net/tun as the user. Where
# the device is not open to the user (mode 0600 on some machines; distributions make it
# 0666), the script grants the user alone access with an ACL for the run and takes it
# back at the end. Everything the user's engines leave running for this run's directory
# (the namespace holder, the pause process) is stopped and the directory deleted at the
# end. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-21}
HYPERFINE_RUNS=${HYPERFINE_RUNS:-10}
SKIP=${SKIP:-}
RUNTIME_DIR=${RUNTIME_DIR:-tmpfs}
BENCH_USER=basic-docker-rootless
[ "$(id -u)" = 0 ] || { echo "bench-rootless: run as root" >&2; exit 1; }

# ---- what it needs ------------------------------------------------------------------
need() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed' || { [ -n "${apt_updated:-}" ] || { apt-get update >/dev/null; apt_updated=1; }; DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$1" >/dev/null; }; }
need podman
need runc
need uidmap       # newuidmap/newgidmap: both engines map the user's subordinate ids
need slirp4netns  # podman 4.3's default rootless network
need passt        # pasta: basic-docker's default rootless network
need hyperfine
need acl          # setfacl: /dev/net/tun for the user alone, if it is not open to users
if [ -z "${BASIC_DOCKER:-}" ]; then
  cargo build -q --release -p basic-docker
  BASIC_DOCKER=$PWD/target/release/basic-docker
fi
BASIC_DOCKER=$(realpath "$BASIC_DOCKER")
SUPERVISE=$(dirname "$BASIC_DOCKER")/basic-docker-supervise
[ -x "$SUPERVISE" ] || { echo "bench-rootless: no $SUPERVISE beside $BASIC_DOCKER (build the basic-docker package)" >&2; exit 1; }
scripts/harness.sh start >/dev/null
eval "$(scripts/harness.sh env)"
REGISTRY=$BASIC_DOCKER_TEST_REGISTRY_OPEN
IMAGE=$REGISTRY/fixtures/busybox:latest

# ---- the user -------------------------------------------------------------------------
if ! id -u "$BENCH_USER" >/dev/null 2>&1; then
  useradd --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --user-group "$BENCH_USER"
fi
if ! grep -q "^$BENCH_USER:" /etc/subuid 2>/dev/null || ! grep -q "^$BENCH_USER:" /etc/subgid 2>/dev/null; then
  # Above every range already given out, as useradd would pick.
  start=$(cat /etc/subuid /etc/subgid 2>/dev/null | awk -F: 'BEGIN {e = 100000} NF == 3 && $2 + $3 > e {e = $2 + $3} END {print e}')
  usermod --add-subuids "$start-$((start + 65535))" --add-subgids "$start-$((start + 65535))" "$BENCH_USER"
fi
UID_=$(id -u "$BENCH_USER")
GID_=$(id -g "$BENCH_USER")

# /tmp is mode 1711 on some machines: root makes the directories and gives them away.
WORK=$(mktemp -d /tmp/bench-rootless.XXXXXX)
chmod 711 "$WORK"
for sub in home data config run bin; do
  mkdir "$WORK/$sub"
  chown "$UID_:$GID_" "$WORK/$sub"
  chmod 700 "$WORK/$sub"
done
chown root:root "$WORK/bin"
chmod 755 "$WORK/bin"
# $XDG_RUNTIME_DIR is a tmpfs of the user's own where logind makes it (/run/user/UID):
# both engines keep their run-time state there. RUNTIME_DIR=disk leaves it on /tmp's disk.
if [ "$RUNTIME_DIR" = tmpfs ]; then
  mount -t tmpfs -o "size=64m,mode=700,uid=$UID_,gid=$GID_" bench-rootless-run "$WORK/run"
fi
# A build tree under /root or /work may not be readable by the user: copies it can run.
install -m 755 "$BASIC_DOCKER" "$SUPERVISE" "$WORK/bin/"
BD_USER=$WORK/bin/basic-docker

TUN_ACL=
cleanup() {
  # Whatever the user's engines keep running for this directory names it in its
  # environment (namespace holder, pause process, a network helper): ours only, by pid.
  local pids=() p
  for p in /proc/[0-9]*; do
    [ "$(stat -c %u "$p" 2>/dev/null)" = "$UID_" ] || continue
    { tr "\0" "\n" <"$p/environ" | grep -qF "$WORK"; } 2>/dev/null && pids+=("${p#/proc/}")
  done
  [ ${#pids[@]} -eq 0 ] || kill -KILL "${pids[@]}" 2>/dev/null || true
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  ! mountpoint -q "$WORK/run" || umount "$WORK/run" || umount -l "$WORK/run"
  rm -rf "$WORK"
  case "$TUN_ACL" in
    only) setfacl -b /dev/net/tun || true ;;   # the device had no ACL before: none again
    added) setfacl -x "u:$BENCH_USER" /dev/net/tun || true ;;
  esac
}
trap cleanup EXIT

# The user's commands: a clean environment naming the private directories, the user's ids,
# no supplementary groups, run from the user's $HOME.
AS_USER="setpriv --reuid=$UID_ --regid=$GID_ --clear-groups env -i HOME=$WORK/home USER=$BENCH_USER LOGNAME=$BENCH_USER XDG_DATA_HOME=$WORK/data XDG_RUNTIME_DIR=$WORK/run XDG_CONFIG_HOME=$WORK/config PATH=/usr/local/bin:/usr/bin:/bin"
as_user() { (cd "$WORK/home" && $AS_USER "$@"); }
if ! as_user sh -c 'exec 3<>/dev/net/tun' 2>/dev/null; then
  if [ -z "$(getfacl --skip-base -p /dev/net/tun 2>/dev/null)" ]; then TUN_ACL=only; else TUN_ACL=added; fi
  echo "bench-rootless: /dev/net/tun is $(stat -c '%a %U:%G' /dev/net/tun); giving $BENCH_USER alone access (ACL) for this run"
  setfacl -m "u:$BENCH_USER:rw" /dev/net/tun
fi
# The timed commands (strings run by a shell in the user's $HOME), and the same programs for
# the untimed steps (through as_user).
PODMAN="podman --runtime runc --cgroup-manager cgroupfs --events-backend file --storage-driver overlay"
PODMAN_RUN="$PODMAN run --rm --ulimit nofile=20000:20000 --ulimit nproc=4096:4096"
BD="$AS_USER $BD_USER"
POD_RUN="$AS_USER $PODMAN_RUN"

load() { echo "  load: $(cut -d' ' -f1-3 /proc/loadavg)   ($(uptime))"; }
skip() { [[ ",$SKIP," == *",$1,"* ]]; }

# Runs "NAME_A" CMD_A "NAME_B" CMD_B alternately RUNS times (A first on odd runs, B first
# on even ones), in the user's $HOME, one warm-up each, output discarded; prints medians
# and the median of the per-pair ratios A/B.
alternate() {
  (cd "$WORK/home" && /usr/bin/python3 - "$RUNS" "$@" <<'EOF'
import statistics, subprocess, sys, time
runs = int(sys.argv[1]); name_a, cmd_a, name_b, cmd_b = sys.argv[2:6]
# Timed until the command exits; its output is read to the end afterwards, untimed, so
# that work a command leaves in the background holding its output is over before the
# other contender starts.
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
q = statistics.quantiles
print(f"  {name_a:<46} median {statistics.median(a):7.1f} ms  (quartiles {q(a)[0]:.1f}-{q(a)[2]:.1f})")
print(f"  {name_b:<46} median {statistics.median(b):7.1f} ms  (quartiles {q(b)[0]:.1f}-{q(b)[2]:.1f})")
r = statistics.median(ratios)
print(f"  median of {runs} per-run ratios: {r:.3f}  (target <= 0.25: {'met' if r <= 0.25 else 'NOT met'})")
EOF
  )
}

echo "bench-rootless: $(nproc) cores, $(uname -r), as $BENCH_USER (uid $UID_), basic-docker $BASIC_DOCKER, $(podman --version)"
echo "  work directory $WORK ($(stat -f -c %T "$WORK")); \$XDG_RUNTIME_DIR on $(stat -f -c %T "$WORK/run")"

# ---- warm-up: the image in both stores; the holder and the pause process made -------------
as_user "$BD_USER" --insecure-registry "$REGISTRY" pull -q "$IMAGE" >/dev/null
as_user $PODMAN pull -q --tls-verify=false "$IMAGE" >/dev/null
as_user "$BD_USER" run --rm --network none "$IMAGE" true
as_user $PODMAN_RUN --network none "$IMAGE" true
echo "  podman: $(as_user $PODMAN info --format 'graph driver {{.Store.GraphDriverName}} (native overlay diff: {{index .Store.GraphStatus "Native Overlay Diff"}}), runtime {{.Host.OCIRuntime.Name}}, cgroups {{.Host.CgroupsVersion}} / {{.Host.CgroupManager}}')"
echo "  basic-docker: $(as_user "$BD_USER" info 2>/dev/null | grep -iE 'storage driver|rootless|network' | tr -s ' ' | paste -sd';' || true)"

# ---- 1. --network none ----------------------------------------------------------------
if ! skip 1; then
  echo
  echo "1. rootless run --rm --network none IMG true: basic-docker vs podman ($RUNS pairs; target: ratio <= 0.25)"
  load
  alternate "basic-docker run --rm --network none" "$BD run --rm --network none $IMAGE true" \
    "podman run --rm --network none" "$POD_RUN --network none $IMAGE true"
  load
fi

# ---- 2. each engine's default rootless network ---------------------------------------------
BD_DEFAULT_OK=
if ! skip 2 || ! skip 3; then
  if out=$(as_user "$BD_USER" run --rm "$IMAGE" true 2>&1); then
    BD_DEFAULT_OK=1
  else
    echo
    echo "basic-docker's default rootless network does not run in this build: $out"
  fi
fi
if ! skip 2; then
  echo
  podman_net=$(as_user $PODMAN_RUN "$IMAGE" sh -c 'ls /sys/class/net' | tr '\n' ' ')
  case "$podman_net" in
    *tap0*) podman_net="slirp4netns (interfaces: $podman_net)" ;;
    *) podman_net="not slirp4netns (interfaces: $podman_net)" ;;
  esac
  echo "2. rootless run --rm IMG true on the default network: basic-docker vs podman ($RUNS pairs; target: ratio <= 0.25)"
  echo "  podman's default rootless network here: $podman_net"
  if [ -n "$BD_DEFAULT_OK" ]; then
    echo "  basic-docker's: interfaces $(as_user "$BD_USER" run --rm "$IMAGE" sh -c 'ls /sys/class/net' | tr '\n' ' ')"
    load
    alternate "basic-docker run --rm (default network)" "$BD run --rm $IMAGE true" \
      "podman run --rm (default network)" "$POD_RUN $IMAGE true"
    load
  else
    echo "  skipped: basic-docker has no default rootless network in this build (above)"
  fi
fi

# ---- 3. all four in one hyperfine run, for reference ------------------------------------
if ! skip 3; then
  echo
  echo "3. the same commands in one hyperfine run (each command's runs in a row, not alternated; $HYPERFINE_RUNS runs, 2 warm-up)"
  load
  cmds=(-n "basic-docker --network none" "$BD run --rm --network none $IMAGE true"
        -n "podman --network none" "$POD_RUN --network none $IMAGE true")
  if [ -n "$BD_DEFAULT_OK" ]; then
    cmds+=(-n "basic-docker default network" "$BD run --rm $IMAGE true")
  fi
  cmds+=(-n "podman default network" "$POD_RUN $IMAGE true")
  (cd "$WORK/home" && hyperfine -N --style basic --warmup 2 --runs "$HYPERFINE_RUNS" \
    --export-json "$WORK/hyperfine.json" "${cmds[@]}" >/dev/null)
  /usr/bin/python3 -c '
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print("  %-30s median %7.1f ms  (min %.1f, max %.1f)" % (r["command"], r["median"] * 1000, r["min"] * 1000, r["max"] * 1000))
' "$WORK/hyperfine.json"
  load
fi
