#!/usr/bin/env bash
# Time `basic-docker push` of the big multi-layer image (scripts/bench-pull.sh's
# ~350 MB, 4 gzip layers from this machine's /usr) to the harness's open
# registry, against `skopeo copy` of the same image from an OCI layout to the
# same registry. Every round pushes to fresh repositories, and both contenders
# send every byte:
#   * basic-docker pushes from a store that loaded the image from an OCI archive
#     (made fresh for the round, untimed), so it knows of no repository to mount from;
#   * skopeo runs with an empty blob-info cache of its own (bind-mounted over
#     /var/lib/containers/cache in a private mount namespace), so it does not mount
#     or skip blobs it saw other runs push.
# The contenders alternate which goes first; medians of the times and of the
# per-round ratios are printed.
#
# usage: scripts/bench-push.sh [ROUNDS]    (default 5)
# env:   CACHE (default /tmp/basic-pull-bench, shared with bench-pull.sh), registry
#        from `eval "$(scripts/harness.sh env)"` (default 127.0.0.1:5100).
set -euo pipefail

ROUNDS=${1:-5}
CACHE=${CACHE:-/tmp/basic-pull-bench}
REGISTRY=${BASIC_DOCKER_TEST_REGISTRY_OPEN:-127.0.0.1:5100}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=/dev/shm/basic-push-bench

need() { command -v "$1" >/dev/null || { echo "missing $1: apt-get install -y $2" >&2; exit 1; }; }
need skopeo skopeo
need jq jq
need unshare util-linux
[ "$(id -u)" = 0 ] || { echo "run as root (load extracts layers with their owners)" >&2; exit 1; }
curl -fsS "http://$REGISTRY/v2/" >/dev/null || { echo "no registry at $REGISTRY: scripts/harness.sh start" >&2; exit 1; }

if [ ! -f "$CACHE/oci/index.json" ]; then
  echo "building the image: scripts/bench-pull.sh makes it in $CACHE (run it once, or set CACHE)" >&2
  exit 1
fi

echo "building basic-docker (release)..." >&2
cargo build -q --release -p basic-docker --manifest-path "$ROOT/Cargo.toml"
BD="$ROOT/target/release/basic-docker"

rm -rf "$WORK"; mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT
tar -C "$CACHE/oci" -cf "$WORK/image.tar" oci-layout index.json blobs
manifest_digest=$(jq -r '.manifests[0].digest' "$CACHE/oci/index.json")
gz_bytes=$(jq '[.layers[].size] | add' "$CACHE/oci/blobs/sha256/${manifest_digest#sha256:}")
layers=$(jq '.layers | length' "$CACHE/oci/blobs/sha256/${manifest_digest#sha256:}")

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

tag=$(date +%s)-$$
bd_times=(); sk_times=(); ratios=()
for round in $(seq 1 "$ROUNDS"); do
  store="$WORK/store-$round"
  BASIC_DOCKER_ROOT="$store" BASIC_DOCKER_STATE="$WORK/state-$round" \
    "$BD" load -q -i "$WORK/image.tar" >/dev/null
  id=$(BASIC_DOCKER_ROOT="$store" "$BD" images -q | head -1)
  bd_ref="$REGISTRY/bench-push/bd-$tag-$round:latest"
  BASIC_DOCKER_ROOT="$store" BASIC_DOCKER_STATE="$WORK/state-$round" "$BD" tag "$id" "$bd_ref"
  sk_cache="$WORK/skopeo-cache-$round"; mkdir -p "$sk_cache" /var/lib/containers/cache
  sk_ref="$REGISTRY/bench-push/skopeo-$tag-$round:latest"

  run_bd() {
    local t0; t0=$(now)
    BASIC_DOCKER_ROOT="$store" BASIC_DOCKER_STATE="$WORK/state-$round" "$BD" push -q "$bd_ref" >/dev/null
    echo "$(now) - $t0" | bc
  }
  run_sk() {
    local t0; t0=$(now)
    unshare -m --propagation private sh -c 'mount --bind "$0" /var/lib/containers/cache && exec "$@"' \
      "$sk_cache" skopeo copy -q --dest-tls-verify=false "oci:$CACHE/oci:latest" "docker://$sk_ref" >/dev/null
    echo "$(now) - $t0" | bc
  }
  if [ $((round % 2)) = 1 ]; then bd=$(run_bd); sk=$(run_sk); else sk=$(run_sk); bd=$(run_bd); fi
  bd_times+=("$bd"); sk_times+=("$sk"); ratios+=("$(echo "$bd / $sk" | bc -l)")
  printf 'round %d: basic-docker push %.2fs, skopeo copy %.2fs\n' "$round" "$bd" "$sk" >&2
  rm -rf "$store" "$WORK/state-$round" "$sk_cache"
done

bd_med=$(printf '%s\n' "${bd_times[@]}" | median)
sk_med=$(printf '%s\n' "${sk_times[@]}" | median)
ratio_med=$(printf '%s\n' "${ratios[@]}" | median)
echo "image: $layers gzip layers, $((gz_bytes / 1000000)) MB compressed; $ROUNDS rounds; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
printf 'push to %s: basic-docker push median %.2fs, skopeo copy median %.2fs, median ratio (basic-docker / skopeo) %.2f\n' \
  "$REGISTRY" "$bd_med" "$sk_med" "$ratio_med"
