#!/usr/bin/env bash
# What a supervisor process of its own costs a foreground `run --rm`: times
# `basic-docker run --rm --network none …/fixtures/busybox true` with two builds of
# basic-docker, BEFORE (the command line was the supervisor) and AFTER (it attaches to a
# supervisor process it starts), runs alternated one by one, medians and the median of the
# per-pair ratios. Prints the load average before and after, to record beside the figures.
#
#   scripts/bench-run-supervision.sh                    # builds both (debug), 40 pairs
#   BEFORE_REV=44a65b3 RUNS=40 PROFILE=release scripts/bench-run-supervision.sh
#   BEFORE=/path/old-basic-docker AFTER=/path/new-basic-docker scripts/bench-run-supervision.sh
#
# BEFORE_REV (default: the commit before the supervision change) is built from `git archive`
# in a temporary directory, sharing this worktree's target directory (only the workspace's
# crates compile again). Needs root and the registry harness (scripts/harness.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-40}
PROFILE=${PROFILE:-dev}
BEFORE_REV=${BEFORE_REV:-44a65b3}
TARGET=$PWD/target
OUT=$TARGET/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")

WORK=$(mktemp -d /tmp/bench-run-supervision.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

if [ -z "${AFTER:-}" ]; then
  cargo build -q --profile "$PROFILE" -p basic-docker
  cp "$OUT/basic-docker" "$WORK/after"
  AFTER=$WORK/after
fi
if [ -z "${BEFORE:-}" ]; then
  mkdir "$WORK/src"
  git archive "$BEFORE_REV" | tar -x -C "$WORK/src"
  (cd "$WORK/src" && CARGO_TARGET_DIR=$TARGET cargo build -q --profile "$PROFILE" -p basic-docker)
  cp "$OUT/basic-docker" "$WORK/before"
  BEFORE=$WORK/before
  # The shared target directory's binary is the old one now: put this tree's back.
  cargo build -q --profile "$PROFILE" -p basic-docker 2>/dev/null || true
fi

scripts/harness.sh start >/dev/null
eval "$(scripts/harness.sh env)"
IMAGE=$BASIC_DOCKER_TEST_REGISTRY_OPEN/fixtures/busybox:latest
ROOT=$WORK/root
"$AFTER" --root "$ROOT" --state "$WORK/state" pull -q "$IMAGE" >/dev/null

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$BEFORE" "$AFTER" "$ROOT" "$WORK/state" "$IMAGE" "$RUNS" <<'PY'
import statistics, subprocess, sys, time
before, after, root, state, image, runs = sys.argv[1:7]
runs = int(runs)

def once(binary):
    cmd = [binary, "--root", root, "--state", state, "run", "--rm", "--network", "none", image, "true"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000

for _ in range(5):  # warm-up: page cache, the seccomp program cache
    once(before); once(after)
b, a = [], []
for i in range(runs):
    # Alternate which goes first, so neither always follows the other's cleanup.
    if i % 2:
        a.append(once(after)); b.append(once(before))
    else:
        b.append(once(before)); a.append(once(after))
ratios = [y / x for x, y in zip(b, a)]
q = lambda v: statistics.quantiles(v, n=4)
print(f"pairs: {runs}")
print(f"before (run is the supervisor):        median {statistics.median(b):6.1f} ms  (quartiles {q(b)[0]:.1f}-{q(b)[2]:.1f})")
print(f"after  (run attaches to a supervisor): median {statistics.median(a):6.1f} ms  (quartiles {q(a)[0]:.1f}-{q(a)[2]:.1f})")
print(f"median of after/before ratios: {statistics.median(ratios):.2f}")
PY
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
