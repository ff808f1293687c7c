#!/usr/bin/env bash
# The main job, offline: start a local registry holding a busybox image built from
# Debian's busybox-static, then pull and run it with basic-docker as a user would
# from Docker Hub. Images go to /var/lib/basic-docker (or $BASIC_DOCKER_ROOT). Run as root on Debian/Ubuntu:  sudo scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "scripts/demo.sh: run as root (it installs packages and starts local registries)" >&2
    exit 2
fi
command -v cargo >/dev/null || { echo "scripts/demo.sh: install Rust 1.89+ first (https://rustup.rs)" >&2; exit 2; }

scripts/install-deps.sh
scripts/harness.sh start
eval "$(scripts/harness.sh env)"
cargo build --release --locked -q -p basic-docker
bd=target/release/basic-docker
config=$(mktemp -d)
trap 'rm -rf "$config"' EXIT

say() { printf '\n$ %s\n' "$*"; "$@"; }

image="$BASIC_DOCKER_TEST_REGISTRY_OPEN/fixtures/busybox"
# What `basic-docker run busybox echo hello` does against Docker Hub: pull, then run.
say "$bd" run --rm "$image" echo hello
say "$bd" images
say "$bd" run --rm --hostname demo -m 64m "$image" sh -c 'echo "pid $$ on $(hostname)"; ps'
# A detached web server on the default bridge network, its port published on 127.0.0.1.
"$bd" rm -f demo-web >/dev/null 2>&1 || true   # left by an interrupted earlier demo
www=$(mktemp -d)
echo "hello from a detached container" > "$www/index.html"
say "$bd" run -d --name demo-web -p 18081:80 -v "$www:/www:ro" "$image" httpd -f -p 80 -h /www
say "$bd" ps
sleep 0.3
say curl -s http://127.0.0.1:18081/
say "$bd" logs demo-web
say "$bd" rm -f demo-web
rm -rf "$www"
say "$bd" manifest inspect "$image"
say "$bd" manifest inspect --platform linux/arm64 "$BASIC_DOCKER_TEST_REGISTRY_OPEN/fixtures/multiarch"

# A private image behind Bearer-token auth, as on Docker Hub, GHCR or Quay.
private="$BASIC_DOCKER_TEST_REGISTRY_TOKEN/private/busybox"
printf '%s' "$BASIC_DOCKER_TEST_TOKEN_PASS" |
    say "$bd" --config "$config" login -u "$BASIC_DOCKER_TEST_TOKEN_USER" --password-stdin "$BASIC_DOCKER_TEST_REGISTRY_TOKEN"
say "$bd" --config "$config" manifest inspect "$private" | head -5
say "$bd" --config "$config" logout "$BASIC_DOCKER_TEST_REGISTRY_TOKEN"

echo
echo "The registries keep running; stop them with: scripts/harness.sh stop"
