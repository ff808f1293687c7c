#!/usr/bin/env bash
# Fuzz basic-rootfs layer application for a bounded time.
#
# usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  total fuzzing time, split across the targets (default 60);
#            building comes on top.
#   TARGET   apply_entries (structured members with hostile names) and/or
#            apply_layer (raw bytes); default both.
#
# Only stable Rust is installed: cargo-fuzz needs nightly flags
# (-Zsanitizer, -Cpasses=sancov), which RUSTC_BOOTSTRAP=1 unlocks on stable.
# Needs root (the targets chown and mknod, as layer application does).
# Crashes land in fuzz/artifacts/<target>/; the corpus in fuzz/corpus/<target>/.
set -euo pipefail

TOTAL=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(apply_entries apply_layer)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1

per=$((TOTAL / ${#targets[@]}))
[ "$per" -ge 1 ] || per=1
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  if [ -d "fuzz/seeds/$t" ]; then cp -n fuzz/seeds/"$t"/* "fuzz/corpus/$t/" 2>/dev/null || true; fi
  cargo fuzz build "$t"
  echo "fuzzing $t for ${per}s" >&2
  cargo fuzz run "$t" "fuzz/corpus/$t" -- -max_total_time="$per" -max_len=65536 -len_control=0 -rss_limit_mb=4096 -timeout=30
done
