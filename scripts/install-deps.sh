#!/usr/bin/env bash
# Debian packages the tests and the demo need, installed idempotently (root).
set -euo pipefail
cd "$(dirname "$0")/.."
# The registry harness knows its own packages.
scripts/harness.sh install
