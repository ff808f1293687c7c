#!/usr/bin/env bash
# Time `basic-docker pull` (download + verify + extract + record) of a
# several-hundred-MB multi-layer gzip image from the harness's open registry,
# in one run, against:
#   * skopeo copy docker://… oci:DIR:tag  +  umoci unpack
#   * skopeo copy docker://… oci:DIR:tag  +  sequential `tar -I pigz -xf` of the layers
# each on tmpfs (/dev/shm) and on disk (/var/tmp), alternating the contenders'
# order run by run, every run into a fresh directory; medians are reported
# (and medians of the per-run ratios, which is what the targets are about).
# Also: a second pull of an image already present, and peak RSS of a pull
# (one big layer vs. busybox's one small layer: memory must not grow with
# layer size).
#
# The image: the same 4 gzip layers from this machine's /usr as
# scripts/bench-extract.sh (~350 MB, ~14k entries), built once as an OCI
# layout and cached in $CACHE (delete it to rebuild), pushed with skopeo.
#
# usage: scripts/bench-pull.sh [RUNS]      (default 5)
# env:   BASIC_DOCKER (a built binary: no build), PREPARE_ONLY=1 (build and push the
#        images, measure nothing), CACHE (default /tmp/basic-pull-bench), registry from
#        `eval "$(scripts/harness.sh env)"` (default 127.0.0.1:5100).
set -euo pipefail

RUNS=${1:-5}
CACHE=${CACHE:-/tmp/basic-pull-bench}
REGISTRY=${BASIC_DOCKER_TEST_REGISTRY_OPEN:-127.0.0.1:5100}
REF="$REGISTRY/bench/usr-layers:latest"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMPFS=/dev/shm/basic-pull-bench
DISK=/var/tmp/basic-pull-bench

need() { command -v "$1" >/dev/null || { echo "missing $1: apt-get install -y $2" >&2; exit 1; }; }
need skopeo skopeo
need umoci umoci
need pigz pigz
need jq jq
need /usr/bin/time time
[ "$(id -u)" = 0 ] || { echo "run as root (extraction keeps ownership)" >&2; exit 1; }

# BASIC_DOCKER=/path/to/basic-docker skips the build.
BD=${BASIC_DOCKER:-}
if [ -z "$BD" ]; then
  echo "building basic-docker (release)..." >&2
  cargo build -q --release -p basic-docker --manifest-path "$ROOT/Cargo.toml"
  BD="$ROOT/target/release/basic-docker"
fi

# ---- the image, built once -------------------------------------------------
LAYERS=(
  "usr/share/doc usr/share/mime"
  "usr/lib/python3 usr/lib/git-core"
  "usr/share/vim usr/share/zoneinfo"
  "usr/lib/gcc usr/sbin usr/share/i18n"
)
if [ ! -f "$CACHE/oci/index.json" ]; then
  echo "building ${#LAYERS[@]} gzip layers from /usr into $CACHE/oci ..." >&2
  rm -rf "$CACHE"; mkdir -p "$CACHE/oci/blobs/sha256" "$CACHE/work"
  descs=(); diff_ids=(); entries=0
  for i in "${!LAYERS[@]}"; do
    paths=(); for p in ${LAYERS[$i]}; do [ -e "/$p" ] && paths+=("$p"); done
    tar -C / --numeric-owner -cf "$CACHE/work/$i.tar" "${paths[@]}"
    entries=$((entries + $(tar -tf "$CACHE/work/$i.tar" | wc -l)))
    diff_ids+=("\"sha256:$(sha256sum "$CACHE/work/$i.tar" | cut -d' ' -f1)\"")
    pigz -6 -c "$CACHE/work/$i.tar" > "$CACHE/work/$i.tar.gz"; rm "$CACHE/work/$i.tar"
    d=$(sha256sum "$CACHE/work/$i.tar.gz" | cut -d' ' -f1)
    mv "$CACHE/work/$i.tar.gz" "$CACHE/oci/blobs/sha256/$d"
    descs+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$d\",\"size\":$(stat -c %s "$CACHE/oci/blobs/sha256/$d")}")
  done
  join() { local IFS=,; echo "$*"; }
  config="{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Cmd\":[\"/bin/sh\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[$(join "${diff_ids[@]}")]}}"
  printf '%s' "$config" > "$CACHE/work/config"
  cfg=$(sha256sum "$CACHE/work/config" | cut -d' ' -f1); mv "$CACHE/work/config" "$CACHE/oci/blobs/sha256/$cfg"
  manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$cfg\",\"size\":${#config}},\"layers\":[$(join "${descs[@]}")]}"
  printf '%s' "$manifest" > "$CACHE/work/manifest"
  md=$(sha256sum "$CACHE/work/manifest" | cut -d' ' -f1); mv "$CACHE/work/manifest" "$CACHE/oci/blobs/sha256/$md"
  printf '{"imageLayoutVersion":"1.0.0"}' > "$CACHE/oci/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' \
    "$md" "${#manifest}" > "$CACHE/oci/index.json"
  echo "$entries" > "$CACHE/entries"
  rmdir "$CACHE/work"
fi
manifest_digest=$(jq -r '.manifests[0].digest' "$CACHE/oci/index.json")
gz_bytes=$(jq '[.layers[].size] | add' "$CACHE/oci/blobs/sha256/${manifest_digest#sha256:}")
max_layer=$(jq '[.layers[].size] | max' "$CACHE/oci/blobs/sha256/${manifest_digest#sha256:}")

# A one-layer image of the largest layer, for peak RSS against busybox's one
# small layer: same shape, ~60x the bytes.
ONE_REF="$REGISTRY/bench/usr-one-layer:latest"
if [ ! -f "$CACHE/one/index.json" ]; then
  mf="$CACHE/oci/blobs/sha256/${manifest_digest#sha256:}"
  k=$(jq '[.layers[].size] | to_entries | max_by(.value) | .key' "$mf")
  cfg_old=$(jq -r '.config.digest' "$mf")
  mkdir -p "$CACHE/one/blobs/sha256"
  layer=$(jq -c ".layers[$k]" "$mf")
  ln -f "$CACHE/oci/blobs/sha256/$(jq -r '.digest' <<<"$layer" | cut -d: -f2)" "$CACHE/one/blobs/sha256/"
  jq -cj ".rootfs.diff_ids = [.rootfs.diff_ids[$k]]" "$CACHE/oci/blobs/sha256/${cfg_old#sha256:}" > "$CACHE/one/config"
  c=$(sha256sum "$CACHE/one/config" | cut -d' ' -f1)
  jq -cj --arg c "sha256:$c" --argjson s "$(stat -c %s "$CACHE/one/config")" --argjson l "$layer" \
    '.config.digest = $c | .config.size = $s | .layers = [$l]' "$mf" > "$CACHE/one/manifest"
  mv "$CACHE/one/config" "$CACHE/one/blobs/sha256/$c"
  m=$(sha256sum "$CACHE/one/manifest" | cut -d' ' -f1)
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' \
    "$m" "$(stat -c %s "$CACHE/one/manifest")" > "$CACHE/one/index.json"
  mv "$CACHE/one/manifest" "$CACHE/one/blobs/sha256/$m"
  printf '{"imageLayoutVersion":"1.0.0"}' > "$CACHE/one/oci-layout"
fi

# A one-layer image ~2.5x bigger again (464 MB tar, ~156 MB gzip): if memory
# followed layer size, this is where it would show.
BIG_REF="$REGISTRY/bench/usr-big-layer:latest"
if [ ! -f "$CACHE/big/index.json" ]; then
  echo "building one big gzip layer into $CACHE/big ..." >&2
  W="$CACHE/big"; rm -rf "$W"; mkdir -p "$W/blobs/sha256"
  paths=(); for p in usr/share/locale usr/include usr/share/man usr/lib/gcc; do [ -e "/$p" ] && paths+=("$p"); done
  tar -C / --numeric-owner -cf "$W/l.tar" "${paths[@]}"
  diff=$(sha256sum "$W/l.tar" | cut -d' ' -f1)
  pigz -6 -c "$W/l.tar" > "$W/l.gz"; rm "$W/l.tar"
  d=$(sha256sum "$W/l.gz" | cut -d' ' -f1); sz=$(stat -c %s "$W/l.gz"); mv "$W/l.gz" "$W/blobs/sha256/$d"
  cfg="{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$diff\"]}}"
  printf '%s' "$cfg" > "$W/c"; c=$(sha256sum "$W/c" | cut -d' ' -f1); mv "$W/c" "$W/blobs/sha256/$c"
  man="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$c\",\"size\":${#cfg}},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$d\",\"size\":$sz}]}"
  printf '%s' "$man" > "$W/m"; m=$(sha256sum "$W/m" | cut -d' ' -f1); mv "$W/m" "$W/blobs/sha256/$m"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' \
    "$m" "${#man}" > "$W/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' > "$W/oci-layout"
fi

echo "pushing to $REF, $ONE_REF and $BIG_REF ..." >&2
skopeo copy -q --dest-tls-verify=false "oci:$CACHE/big:latest" "docker://$BIG_REF" >&2
skopeo copy -q --dest-tls-verify=false "oci:$CACHE/oci:latest" "docker://$REF" >&2
skopeo copy -q --dest-tls-verify=false "oci:$CACHE/one:latest" "docker://$ONE_REF" >&2
# PREPARE_ONLY=1: the images are built and pushed, nothing is measured (for other scripts).
[ -n "${PREPARE_ONLY:-}" ] && exit 0

# ---- contenders -------------------------------------------------------------
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

ours() { # DIR
  local t; t=$(date +%s%N)
  "$BD" --root "$1" pull -q "$REF" >/dev/null
  ms "$t"
}
skopeo_copy() { # DIR
  skopeo copy -q --src-tls-verify=false "docker://$REF" "oci:$1/oci:latest" >/dev/null
}
skopeo_umoci() { # DIR
  local t; t=$(date +%s%N)
  skopeo_copy "$1"
  umoci unpack --image "$1/oci:latest" "$1/bundle" >/dev/null
  ms "$t"
}
skopeo_pigz() { # DIR
  local t m; t=$(date +%s%N)
  skopeo_copy "$1"
  mkdir -p "$1/rootfs"
  m=$(jq -r '.manifests[0].digest' "$1/oci/index.json")
  for l in $(jq -r '.layers[].digest' "$1/oci/blobs/sha256/${m#sha256:}"); do
    tar -I pigz -xf "$1/oci/blobs/sha256/${l#sha256:}" -C "$1/rootfs" --numeric-owner
  done
  ms "$t"
}

rm -rf "$TMPFS" "$DISK"; mkdir -p "$TMPFS" "$DISK"
trap 'rm -rf "$TMPFS" "$DISK"' EXIT
NAMES=(ours_tmpfs ours_disk umoci_tmpfs umoci_disk pigz_tmpfs pigz_disk)
declare -A T
for r in $(seq 1 "$RUNS"); do
  order=("${NAMES[@]}")
  # Alternate: odd runs in order, even runs reversed, so neither side always
  # follows the other (page cache, ext4's freed-inode effects).
  if (( r % 2 == 0 )); then order=(pigz_disk pigz_tmpfs umoci_disk umoci_tmpfs ours_disk ours_tmpfs); fi
  for n in "${order[@]}"; do
    case $n in
      *_tmpfs) base=$TMPFS ;;
      *_disk) base=$DISK ;;
    esac
    dir="$base/$n-$r"; mkdir -p "$dir"
    case $n in
      ours_*) v=$(ours "$dir") ;;
      umoci_*) v=$(skopeo_umoci "$dir") ;;
      pigz_*) v=$(skopeo_pigz "$dir") ;;
    esac
    T[$n]="${T[$n]:-} $v"
    # tmpfs trees are dropped at once (no inode-reuse effect there); disk trees
    # stay until the end so no run extracts where one was just deleted.
    [ "$base" = "$TMPFS" ] && rm -rf "$dir"
    echo "run $r $n: $v ms" >&2
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; print m}'; }
ratios() { # A B: per-run A/B
  paste <(echo ${T[$1]} | tr ' ' '\n') <(echo ${T[$2]} | tr ' ' '\n') | awk '{printf "%.3f ", $1/$2}'
}

# ---- second pull, peak RSS ----------------------------------------------------
present="$DISK/present"; "$BD" --root "$present" pull -q "$REF" >/dev/null
second=""
for _ in 1 2 3 4 5 6 7; do second="$second $(ours "$present")"; done
rss() { # ROOT REF -> KiB
  /usr/bin/time -v "$BD" --root "$1" pull -q "$2" 2>&1 >/dev/null | awk -F': ' '/Maximum resident/ {print $2}'
}
rss_big=$(rss "$TMPFS/rss-big" "$REF"); rm -rf "$TMPFS/rss-big"
small_ref="$REGISTRY/fixtures/busybox:latest"
rss_small=$(rss "$TMPFS/rss-small" "$small_ref" || echo "?"); rm -rf "$TMPFS/rss-small"
rss_one=$(rss "$TMPFS/rss-one" "$ONE_REF"); rm -rf "$TMPFS/rss-one"
rss_huge=$(rss "$TMPFS/rss-huge" "$BIG_REF"); rm -rf "$TMPFS/rss-huge"

# ---- report -------------------------------------------------------------------
echo
echo "image: $REF, ${#LAYERS[@]} gzip layers, $((gz_bytes / 1000000)) MB compressed (largest layer $((max_layer / 1000000)) MB), $(cat "$CACHE/entries") entries; $RUNS runs; $(nproc) cores"
printf '%-34s %10s   %s\n' "contender" "median ms" "runs"
for n in "${NAMES[@]}"; do
  printf '%-34s %10s   %s\n' "$n" "$(echo ${T[$n]} | median)" "${T[$n]}"
done
for fs in tmpfs disk; do
  echo "ours/(skopeo+umoci) on $fs: median ratio $(ratios ours_$fs umoci_$fs | median)   (target <= 0.3)"
  echo "ours/(skopeo+pigz tar) on $fs: median ratio $(ratios ours_$fs pigz_$fs | median)   (target <= 1.0)"
done
echo "second pull of a present image: median $(echo $second | median) ms   (runs:$second; target < 100)"
echo "peak RSS of a pull: this image (4 layers, 3 at a time) ${rss_big} KiB; one layer of $((max_layer / 1000000)) MB ${rss_one} KiB; one layer of $(( $(jq '.layers[0].size' "$CACHE/big/blobs/sha256/$(jq -r '.manifests[0].digest' "$CACHE/big/index.json" | cut -d: -f2)") / 1000000 )) MB ${rss_huge} KiB; busybox (one ~1 MB layer) ${rss_small} KiB"
