#!/usr/bin/env bash
# Debian packages the tests and the demo need, installed idempotently (root).
set -euo pipefail
cd "$(dirname "$0")/.."
# The registry harness knows its own packages.
scripts/harness.sh install
# One line per package: installed only when dpkg does not list it yet.
need() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed' || { [ -n "${apt_updated:-}" ] || { apt-get update; apt_updated=1; }; DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$1"; }; }
need libseccomp-dev   # basic-runtime enforces seccomp profiles with libseccomp
need gcc              # attack tests build small static C programs (basic-test-support::programs)
need libc6-dev
need podman           # basic-oci-runtime's tests: podman (with conmon) drives the runtime binary
need containernetworking-plugins  # basic-network: CNI plugins (bridge, host-local, portmap, firewall, loopback); pulls iptables
need iproute2    # basic-network deletes bridges with `ip link`; its tests use `ip` in namespaces
need containerd       # basic-oci-runtime's tests: containerd's runc shim drives the runtime binary
