#!/usr/bin/env bash
# Time layer extraction on this machine, in one run, into fresh directories
# on tmpfs: basic-rootfs (crates/rootfs/examples/extract.rs) against
# `umoci unpack` and against sequential `tar -I pigz -x` of the same layers.
#
# The image: 4 gzip layers built from real files of this machine's /usr
# (~350 MB, ~14k entries), written as an OCI image layout for umoci.
#
# usage: scripts/bench-extract.sh [RUNS]     (default 5; medians are reported)
# env:   BENCH_DIR (default /dev/shm/basic-rootfs-bench), KEEP=1 keeps it.
set -euo pipefail

RUNS=${1:-5}
BENCH_DIR=${BENCH_DIR:-/dev/shm/basic-rootfs-bench}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

need() { command -v "$1" >/dev/null || { echo "missing $1: apt-get install -y $2" >&2; exit 1; }; }
need umoci umoci
need pigz pigz
need sha256sum coreutils
need bc bc

echo "building the extract example (release)..." >&2
cargo build -q --release -p basic-rootfs --example extract --manifest-path "$ROOT/Cargo.toml"
EXTRACT="$ROOT/target/release/examples/extract"

rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR/layers" "$BENCH_DIR/oci/blobs/sha256" "$BENCH_DIR/out"
cd "$BENCH_DIR"

# Layer contents: paths relative to /. Missing ones are skipped.
LAYERS=(
  "usr/share/doc usr/share/mime"
  "usr/lib/python3 usr/lib/git-core"
  "usr/share/vim usr/share/zoneinfo"
  "usr/lib/gcc usr/sbin usr/share/i18n"
)
echo "building ${#LAYERS[@]} gzip layers from /usr..." >&2
layer_files=()
diff_ids=()
layer_descs=()
entries=0
for i in "${!LAYERS[@]}"; do
  paths=()
  for p in ${LAYERS[$i]}; do [ -e "/$p" ] && paths+=("$p"); done
  tar -C / --numeric-owner -cf "layers/$i.tar" "${paths[@]}"
  entries=$((entries + $(tar -tf "layers/$i.tar" | wc -l)))
  diff_ids+=("\"sha256:$(sha256sum "layers/$i.tar" | cut -d' ' -f1)\"")
  pigz -6 -c "layers/$i.tar" > "layers/$i.tar.gz"
  rm "layers/$i.tar"
  d=$(sha256sum "layers/$i.tar.gz" | cut -d' ' -f1)
  cp "layers/$i.tar.gz" "oci/blobs/sha256/$d"
  layer_descs+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$d\",\"size\":$(stat -c %s "layers/$i.tar.gz")}")
  layer_files+=("$BENCH_DIR/layers/$i.tar.gz")
done
join() { local IFS=,; echo "$*"; }
config="{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[$(join "${diff_ids[@]}")]}}"
printf '%s' "$config" > config.json
cd_=$(sha256sum config.json | cut -d' ' -f1); mv config.json "oci/blobs/sha256/$cd_"
manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$cd_\",\"size\":${#config}},\"layers\":[$(join "${layer_descs[@]}")]}"
printf '%s' "$manifest" > manifest.json
md=$(sha256sum manifest.json | cut -d' ' -f1); mv manifest.json "oci/blobs/sha256/$md"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"bench"}}]}' "$md" "${#manifest}" > oci/index.json
printf '{"imageLayoutVersion":"1.0.0"}' > oci/oci-layout
compressed=$(du -cb layers/*.tar.gz | tail -1 | cut -f1)
uncompressed=0
for f in "${layer_files[@]}"; do uncompressed=$((uncompressed + $(pigz -dc "$f" | wc -c))); done
echo "image: ${#LAYERS[@]} layers, $entries entries, $((uncompressed / 1048576)) MiB tar, $((compressed / 1048576)) MiB gzip" >&2

now() { date +%s.%N; }
n=0
run() { # name command... ; prints seconds
  local name=$1; shift
  n=$((n + 1))
  local dir="$BENCH_DIR/out/$name-$n"
  local start end
  start=$(now)
  "$@" "$dir" >/dev/null
  end=$(now)
  rm -rf "$dir"
  echo "$end - $start" | bc -l
}
ours_overlay() { mkdir -p "$1"; "$EXTRACT" "$1" "${layer_files[@]}"; }
ours_flatten() { mkdir -p "$1"; "$EXTRACT" --flatten "$1" "${layer_files[@]}"; }
ours_lowers() { mkdir -p "$1"; "$EXTRACT" --with-lowers "$1" "${layer_files[@]}"; }
umoci_unpack() { umoci unpack --image "$BENCH_DIR/oci:bench" "$1"; }
tar_pigz() { mkdir -p "$1"; for f in "${layer_files[@]}"; do tar -I pigz -xf "$f" -C "$1"; done; }

contenders=(ours_overlay ours_flatten ours_lowers umoci_unpack tar_pigz)
declare -A times
for r in $(seq 1 "$RUNS"); do
  # Alternate the order run by run.
  if (( r % 2 )); then order=("${contenders[@]}"); else order=(tar_pigz umoci_unpack ours_lowers ours_flatten ours_overlay); fi
  line="run $r:"
  for c in "${order[@]}"; do
    t=$(run "$c" "$c")
    times[$c]="${times[$c]:-} $t"
    line="$line $c=$(printf %.3f "$t")"
  done
  echo "$line" >&2
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
ratios() { # a b -> per-run a/b
  local -a A=(${times[$1]}) B=(${times[$2]})
  for k in "${!A[@]}"; do echo "${A[$k]} / ${B[$k]}" | bc -l; done | tr '\n' ' '
}
echo
echo "image: ${#LAYERS[@]} gzip layers, $entries entries, $((uncompressed / 1048576)) MiB uncompressed, $((compressed / 1048576)) MiB compressed; target tmpfs; $RUNS runs; $(nproc) CPUs"
printf '%-40s %s\n' "contender" "median seconds"
for c in "${contenders[@]}"; do printf '%-40s %.3f\n' "$c" "$(echo "${times[$c]}" | median)"; done
printf '%-40s %.3f\n' "ours_overlay / umoci_unpack (median ratio)" "$(ratios ours_overlay umoci_unpack | median)"
printf '%-40s %.3f\n' "ours_overlay / tar_pigz (median ratio)" "$(ratios ours_overlay tar_pigz | median)"
printf '%-40s %.3f\n' "ours_flatten / umoci_unpack (median ratio)" "$(ratios ours_flatten umoci_unpack | median)"
printf '%-40s %.3f\n' "ours_flatten / tar_pigz (median ratio)" "$(ratios ours_flatten tar_pigz | median)"
printf '%-40s %.3f\n' "ours_lowers / umoci_unpack (median ratio)" "$(ratios ours_lowers umoci_unpack | median)"
printf '%-40s %.3f\n' "ours_lowers / tar_pigz (median ratio)" "$(ratios ours_lowers tar_pigz | median)"

[ "${KEEP:-0}" = 1 ] || rm -rf "$BENCH_DIR"
