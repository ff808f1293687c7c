#!/usr/bin/env bash
# The OCI runtime-tools validation suite against basic-runtime, runc and crun, with pass
# counts per runtime; then this project's own probes of the runtime-spec points of issue 12
# (scripts/oci-probes.py) against the same three. Root only. The suite's code stays outside
# the repository: it is built and run in a scratch directory (OCI_VALIDATION_WORK, default
# a new /var/tmp/oci-validation.XXXX).
#
# Where the suite comes from, offline (only Debian's archive and crates.io are reachable):
#   1. Debian's golang-github-opencontainers-runtime-tools-dev, if it carries validation/
#      (bookworm's 0.9.0+git20220423 does not: it ships the library packages only, and the
#      archive's source tarball for it is not served by the mirror, only its .dsc);
#   2. otherwise RUNTIME_TOOLS_SRC=/path/to/a runtime-tools checkout (with its vendor/
#      directory, so it builds offline with GOFLAGS=-mod=vendor; the issue measured commit
#      408c51e). Without either, the script says so, runs the probes and exits 3.
#
# crun 1.8 refuses this machine's hybrid cgroup layout: it runs in a mount namespace of its
# own where the cgroup2 mount is gone (MACHINE-NOTES).
#
# Usage: scripts/oci-validation.sh [TEST ...]   (default: every test of the suite)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

[ "$(id -u)" = 0 ] || { echo "oci-validation.sh: run as root" >&2; exit 1; }

# --- what the suite and the runtimes need, from Debian ------------------------------------
# apt's download sandbox (user _apt) cannot write to a /tmp that is not world-writable.
export TMPDIR=/var/tmp
need() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed' && return
  [ -n "${apt_updated:-}" ] || { apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1"
}
for p in golang-go golang-github-opencontainers-runtime-tools-dev runc crun busybox-static \
         util-linux; do
  need "$p"
done

cargo build -q -p basic-oci-runtime
ours="$repo/target/debug/basic-runtime"

work=${OCI_VALIDATION_WORK:-$(mktemp -d /var/tmp/oci-validation.XXXXXX)}
mkdir -p "$work/bin"
# crun in a mount namespace without the hybrid layout's cgroup2 mount.
cat > "$work/bin/crun-hybrid" <<'EOF'
#!/bin/sh
exec unshare -m sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec crun "$@"' crun "$@"
EOF
chmod 755 "$work/bin/crun-hybrid"
runtimes=("basic-runtime=$ours" "runc=$(command -v runc)" "crun=$work/bin/crun-hybrid")

# --- the suite ---------------------------------------------------------------------------
debian_src=/usr/share/gocode/src/github.com/opencontainers/runtime-tools
src=${RUNTIME_TOOLS_SRC:-$debian_src}
suite_status=0
if [ ! -d "$src/validation" ]; then
  cat >&2 <<EOF
oci-validation.sh: the validation suite cannot be built offline here:
  - $debian_src (Debian's golang-github-opencontainers-runtime-tools-dev
    $(dpkg-query -W -f='${Version}' golang-github-opencontainers-runtime-tools-dev 2>/dev/null))
    has no validation/ directory: Debian packages runtime-tools' library only;
  - its source package cannot stand in: the mirror serves the .dsc but not the
    .orig.tar.xz (HTTP 404), and the suite also needs github.com/mndrix/tap-go, which
    Debian does not package;
  - no RUNTIME_TOOLS_SRC was given (a runtime-tools checkout with vendor/).
Running this project's probes of the same spec points instead.
EOF
  suite_status=3
else
  echo "== building the validation suite from $src"
  out="$work/tests"
  mkdir -p "$out" "$work/gocache"
  export GOCACHE="$work/gocache" GOFLAGS=-mod=vendor GOPROXY=off
  if [ ! -d "$src/vendor" ]; then
    # Debian's GOPATH layout: every dependency must be a -dev package under /usr/share/gocode.
    export GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS=
  fi
  built=0
  ( cd "$src"
    for d in validation/*/; do
      name=$(basename "$d")
      [ "$name" = util ] && continue
      ls "$d"*.go >/dev/null 2>&1 || continue
      if go build -o "$out/$name.t" "./$d" 2>"$out/$name.build.log"; then :; else
        echo "   $name: does not build (see $out/$name.build.log)"
      fi
    done
    # The older layout: one file per test directly in validation/.
    for f in validation/*.go; do
      [ -e "$f" ] || continue
      name=$(basename "$f" .go)
      [ -e "$out/$name.t" ] && continue
      grep -q '^package main' "$f" || continue
      go build -o "$out/$name.t" "$f" 2>"$out/$name.build.log" \
        || echo "   $name: does not build (see $out/$name.build.log)"
    done )
  built=$(ls "$out"/*.t 2>/dev/null | wc -l)
  echo "   $built test programs built"

  # The suite's bundles unpack rootfs-<arch>.tar.gz from the working directory.
  run_dir="$work/run"
  mkdir -p "$run_dir"
  if [ -e "$src/rootfs-amd64.tar.gz" ]; then
    cp "$src/rootfs-amd64.tar.gz" "$run_dir/"
  else
    rootfs="$work/rootfs"
    mkdir -p "$rootfs"/{bin,dev,proc,sys,tmp,etc}
    cp /bin/busybox "$rootfs/bin/"
    for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$rootfs/bin/$a"; done
    tar -C "$rootfs" -czf "$run_dir/rootfs-amd64.tar.gz" .
  fi

  selected=("$@")
  declare -A pass_of
  results="$work/results.tsv"
  : > "$results"
  for entry in "${runtimes[@]}"; do
    rt=${entry%%=*}
    bin=${entry#*=}
    pass=0; total=0
    for t in "$out"/*.t; do
      name=$(basename "$t" .t)
      if [ ${#selected[@]} -gt 0 ] && [[ ! " ${selected[*]} " =~ " $name " ]]; then continue; fi
      total=$((total + 1))
      log="$work/logs/$rt/$name.tap"
      mkdir -p "$(dirname "$log")"
      if (cd "$run_dir" && RUNTIME="$bin" timeout 180 "$t" >"$log" 2>&1) \
         && ! grep -q '^not ok' "$log"; then
        pass=$((pass + 1)); printf '%s\t%s\tpass\n' "$rt" "$name" >> "$results"
      else
        printf '%s\t%s\tfail\n' "$rt" "$name" >> "$results"
      fi
    done
    pass_of[$rt]="$pass of $total"
  done
  # Tests no runtime passes here fail for reasons of this host (no blkio weight files, no
  # v1 hugetlb or net_cls, no AppArmor...): counted apart, as the issue does.
  nobody=$(awk -F'\t' '$3=="pass"{p[$2]=1} {all[$2]=1} END{n=0; for (t in all) if (!p[t]) n++; print n}' "$results")
  echo "== validation suite (logs under $work/logs)"
  for entry in "${runtimes[@]}"; do
    rt=${entry%%=*}
    read -r pass _ total <<<"${pass_of[$rt]}"
    echo "   $rt: $pass of $total test files pass; $pass of $((total - nobody)) without the" \
         "$nobody that fail for every runtime on this host"
  done
  echo "   per test: $results"
fi

# --- the project's own probes ---------------------------------------------------------------
echo "== runtime-spec probes (scripts/oci-probes.py)"
/usr/bin/python3 scripts/oci-probes.py "${runtimes[@]}"
exit "$suite_status"
