#!/usr/bin/env bash
# The whole test suite, as CI runs it. Run as root on Debian/Ubuntu:
#   sudo scripts/test.sh
# Installs what the tests need (Debian packages), starts the registry harness,
# runs formatting, lint and every test, fuzzes layer application for a bounded
# time (BASIC_DOCKER_FUZZ_SECONDS, default 60), and stops the harness again.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "scripts/test.sh: run as root (the tests start registries, mount filesystems and create namespaces)" >&2
    exit 2
fi
if ! command -v cargo >/dev/null; then
    echo "scripts/test.sh: cargo not found: install Rust 1.89 or newer (https://rustup.rs)" >&2
    exit 2
fi

scripts/install-deps.sh
scripts/harness.sh start
trap 'scripts/harness.sh stop' EXIT
eval "$(scripts/harness.sh env)"

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo doc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
step "cargo test"
results=$(mktemp)
trap 'scripts/harness.sh stop; rm -f "$results"' EXIT
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$results"
step "fuzz layer application (${BASIC_DOCKER_FUZZ_SECONDS:-60}s)"
scripts/fuzz.sh "${BASIC_DOCKER_FUZZ_SECONDS:-60}"

# One closing line for the whole suite (the fuzzer's statistics come last otherwise).
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "%d passed, %d failed, %d ignored\n", p, f, s }' "$results"
