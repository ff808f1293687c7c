#!/usr/bin/env bash
# Time `basic-docker build` of a multi-stage fixture (two stages, RUN and COPY steps, a
# COPY --from) against docker's classic builder (DOCKER_BUILDKIT=0, on a dockerd this
# script starts on a private socket and data root, stopped after) and `buildah bud
# --layers`, base image from the harness's registry:
#   * cold: a fresh store (basic-docker, buildah: a new root per round; docker: its
#     build cache and every image but the base removed) with the base already pulled
#     (untimed), so the build runs every step;
#   * cached: the same build again on that store, every step from the cache.
# Contenders alternate which goes first; medians and the medians of per-round ratios
# are printed, with `uptime` (the machine is shared).
#
# usage: scripts/bench-build.sh [ROUNDS]    (default 5)
# env:   BD (default target/release/basic-docker), registry from
#        `eval "$(scripts/harness.sh env)"` (default 127.0.0.1:5100).
set -euo pipefail

ROUNDS=${1:-5}
REGISTRY=${BASIC_DOCKER_TEST_REGISTRY_OPEN:-127.0.0.1:5100}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BD=${BD:-$ROOT/target/release/basic-docker}
BASE="$REGISTRY/fixtures/busybox:latest"
WORK=$(mktemp -d /tmp/bench-build.XXXXXX)

need() { command -v "$1" >/dev/null || { echo "missing $1: scripts/install-deps.sh" >&2; exit 1; }; }
need dockerd; need docker; need buildah; need bc
[ -x "$BD" ] || { echo "no $BD: cargo build --release -p basic-docker" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
curl -fsS "http://$REGISTRY/v2/" >/dev/null || { echo "no registry at $REGISTRY: scripts/harness.sh start" >&2; exit 1; }

DOCKERD_PID=
cleanup() {
  if [ -n "$DOCKERD_PID" ]; then
    kill "$DOCKERD_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  umount -R "$WORK"/buildah-* 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The fixture: a builder stage that makes an artifact, a final stage that copies the
# context and the artifact.
CTX="$WORK/ctx"
mkdir -p "$CTX/app"
for i in $(seq 1 20); do head -c 4096 /dev/urandom | base64 > "$CTX/app/file$i.txt"; done
echo '#!/bin/sh' > "$CTX/tool.sh"; echo 'echo tool' >> "$CTX/tool.sh"
cat > "$CTX/Dockerfile" <<EOF
FROM $BASE AS builder
RUN mkdir -p /out && for i in 1 2 3 4 5; do echo "artifact \$i" >> /out/artifact; done
COPY app/ /src/
RUN cat /src/*.txt | wc -c > /out/size

FROM $BASE
ENV APP=/srv/app
WORKDIR /srv/app
COPY app/ ./
COPY tool.sh /usr/local/bin/tool
COPY --from=builder /out/ ./out/
RUN ls -l > listing.txt
CMD ["cat", "listing.txt"]
EOF

# docker's daemon, ours.
D="$WORK/dockerd"; mkdir -p "$D/config"
dockerd --data-root "$D/data" --exec-root "$D/exec" -H "unix://$D/docker.sock" --pidfile "$D/pid" \
  --iptables=false --ip-masq=false --bridge=none --insecure-registry "$REGISTRY" >"$D/log" 2>&1 &
DOCKERD_PID=$!
dk() { DOCKER_HOST="unix://$D/docker.sock" DOCKER_BUILDKIT=0 DOCKER_CONFIG="$D/config" docker "$@"; }
for _ in $(seq 1 200); do dk version >/dev/null 2>&1 && break; sleep 0.3; done
dk version >/dev/null || { cat "$D/log" >&2; exit 1; }
dk pull -q "$BASE" >/dev/null

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
timed() { local t0; t0=$(now); "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }; echo "$(now) - $t0" | bc; }

bd_build() { BASIC_DOCKER_ROOT="$WORK/bd-$1" BASIC_DOCKER_STATE="$WORK/bd-state-$1" "$BD" build -q --network none -t bench:app "$CTX"; }
dk_build() { dk build -q --network none -t bench:app "$CTX"; }
bh() { buildah --root "$WORK/buildah-$1/root" --runroot "$WORK/buildah-$1/run" --storage-driver overlay "${@:2}"; }
bh_build() { bh "$1" bud -q --layers --runtime runc --isolation oci --network none --tls-verify=false -t bench:app "$CTX"; }

declare -A cold cached
for c in bd dk bh; do cold[$c]=""; cached[$c]=""; done
order=(bd dk bh)
for round in $(seq 1 "$ROUNDS"); do
  # Fresh stores, base present (untimed).
  BASIC_DOCKER_ROOT="$WORK/bd-$round" BASIC_DOCKER_STATE="$WORK/bd-state-$round" "$BD" pull -q "$BASE" >/dev/null
  bh "$round" pull -q --tls-verify=false "$BASE" >/dev/null
  dk rmi -f bench:app >/dev/null 2>&1 || true
  dk image prune -af >/dev/null 2>&1 || true
  dk pull -q "$BASE" >/dev/null
  sync
  for c in "${order[@]}"; do
    case $c in
      bd) t=$(timed bd_build "$round"); t2=$(timed bd_build "$round") ;;
      dk) t=$(timed dk_build); t2=$(timed dk_build) ;;
      bh) t=$(timed bh_build "$round"); t2=$(timed bh_build "$round") ;;
    esac
    cold[$c]+="$t "; cached[$c]+="$t2 "
    printf 'round %d %s: cold %.3fs, cached %.3fs\n' "$round" "$c" "$t" "$t2" >&2
  done
  order=("${order[@]:1}" "${order[0]}")
  rm -rf "$WORK/bd-$round" "$WORK/bd-state-$round"
  umount -R "$WORK/buildah-$round" 2>/dev/null || true
  bh "$round" rm -a >/dev/null 2>&1 || true
  bh "$round" rmi -af >/dev/null 2>&1 || true
  rm -rf "$WORK/buildah-$round" 2>/dev/null || true
done

med() { tr ' ' '\n' <<<"$1" | grep . | median; }
ratio_med() {
  local a=($1) b=($2) i out=""
  for i in "${!a[@]}"; do out+="$(echo "${a[$i]} / ${b[$i]}" | bc -l) "; done
  med "$out"
}
echo
echo "multi-stage fixture, $ROUNDS rounds (medians):"
printf '  %-28s %10s %10s\n' "" cold cached
printf '  %-28s %9.3fs %9.3fs\n' "basic-docker build" "$(med "${cold[bd]}")" "$(med "${cached[bd]}")"
printf '  %-28s %9.3fs %9.3fs\n' "docker build (classic)" "$(med "${cold[dk]}")" "$(med "${cached[dk]}")"
printf '  %-28s %9.3fs %9.3fs\n' "buildah bud --layers" "$(med "${cold[bh]}")" "$(med "${cached[bh]}")"
printf '  basic-docker / docker:  cold %.2f, cached %.2f\n' "$(ratio_med "${cold[bd]}" "${cold[dk]}")" "$(ratio_med "${cached[bd]}" "${cached[dk]}")"
printf '  basic-docker / buildah: cold %.2f, cached %.2f\n' "$(ratio_med "${cold[bd]}" "${cold[bh]}")" "$(ratio_med "${cached[bd]}" "${cached[bh]}")"
echo "load: $(uptime)"
