#!/usr/bin/env bash
# Times starting `true` in a busybox rootfs: basic-runtime's run_bundle example vs runc vs
# crun, on the same OCI bundle, and the whole `basic-docker run --rm busybox true` (store
# lookup, overlay snapshot, spec, cgroup, run, cleanup) on the same busybox, in one hyperfine
# run. The image comes from the registry harness (scripts/harness.sh). Needs root, busybox-static, runc, crun,
# hyperfine (apt-get install busybox-static runc crun hyperfine).
#
# crun 1.8 refuses the hybrid cgroup layout of our CI machines; it runs under a private mount
# namespace with /sys/fs/cgroup/unified unmounted (that wrapper costs ~1-2 ms of its time).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-100}

# OURS=/path/to/run_bundle skips the build (e.g. when the workspace does not build).
if [ -z "${OURS:-}" ]; then
  cargo build --release -q -p basic-runtime --example run_bundle
  OURS=$PWD/target/release/examples/run_bundle
fi
if [ -z "${CLI:-}" ]; then
  cargo build --release -q -p basic-docker
  CLI=$PWD/target/release/basic-docker
fi
scripts/harness.sh start >/dev/null
eval "$(scripts/harness.sh env)"

WORK=$(mktemp -d /tmp/bench-runtime.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
ROOTFS=$WORK/bundle/rootfs
mkdir -p "$ROOTFS"/{bin,proc,dev,sys,tmp,etc}
cp /bin/busybox "$ROOTFS/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$ROOTFS/bin/$applet"
done
(cd "$WORK/bundle" && runc spec)
/usr/bin/python3 - "$WORK/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["root"]["readonly"] = False
json.dump(c, open(p, "w"), indent=2)
PY

STORE=$WORK/store
IMAGE=$BASIC_DOCKER_TEST_REGISTRY_OPEN/fixtures/busybox
"$CLI" --root "$STORE" pull -q "$IMAGE" >/dev/null

B=$WORK/bundle
hyperfine -N --warmup 10 --runs "$RUNS" --export-markdown "$WORK/result.md" --export-json "$WORK/result.json" \
  -n basic-runtime "$OURS $B bench-ours" \
  -n "basic-docker run --rm (no network)" "$CLI --root $STORE run --rm --network none $IMAGE /bin/true" \
  -n "basic-docker run --rm (bridge)" "$CLI --root $STORE run --rm $IMAGE /bin/true" \
  -n runc "runc run -b $B bench-runc" \
  -n crun "unshare -m sh -c 'umount /sys/fs/cgroup/unified && exec crun run -b $B bench-crun'"
echo
cat "$WORK/result.md"
echo
echo "medians (ms):"
/usr/bin/python3 -c '
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print("  %-24s %7.1f" % (r["command"], r["median"] * 1000))
' "$WORK/result.json"
