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
need passt        # basic-network: pasta, the user-mode network of rootless containers (default network, -p, DNS)
need containerd       # basic-oci-runtime's tests: containerd's runc shim drives the runtime binary
need protobuf-compiler  # protoc: k8s-cri (the CRI client of basic-oci-runtime's tests) compiles the CRI protos when it builds
# The Docker Engine API's tests drive our service with docker's own clients. Installing
# docker.io must not start its daemon (its tests compare with one they start themselves,
# on a private socket): policy-rc.d tells the package scripts not to start services.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
need docker.io        # docker's CLI (20.10, API 1.41)
need buildah          # scripts/bench-build.sh compares `build` with `buildah bud`
need docker-compose   # compose 1.29
need python3-docker   # docker-py 5
need systemd          # systemd-socket-activate: the service's socket-activation test
