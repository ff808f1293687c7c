#!/usr/bin/env bash
# Test harness for basic-docker: three real registries (CNCF distribution 2.8),
# a Docker-token issuer, and fixture images built from real files.
#
#   harness.sh install   install the Debian packages it needs (idempotent, fast when done)
#   harness.sh start     start everything (idempotent) and push fixtures once per state dir
#   harness.sh stop      stop what start started (by recorded PID only)
#   harness.sh status    what runs, what is pushed
#   harness.sh env       `export VAR=value` lines for the tests
#   harness.sh check     self-test a started harness with curl + skopeo (scripts/harness/selftest.sh)
#   harness.sh clean     stop, then delete the state dir
#
# State dir: ${BASIC_DOCKER_HARNESS_DIR:-/tmp/basic-docker-harness}. See scripts/harness/README.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=$(realpath -m "${BASIC_DOCKER_HARNESS_DIR:-/tmp/basic-docker-harness}")
HOST=127.0.0.1
PORT_OPEN=${BASIC_DOCKER_HARNESS_PORT_OPEN:-5100}
PORT_BASIC=${BASIC_DOCKER_HARNESS_PORT_BASIC:-5101}
PORT_TOKEN=${BASIC_DOCKER_HARNESS_PORT_TOKEN:-5102}
PORT_ISSUER=${BASIC_DOCKER_HARNESS_PORT_ISSUER:-5103}
REG_OPEN=$HOST:$PORT_OPEN
REG_BASIC=$HOST:$PORT_BASIC
REG_TOKEN=$HOST:$PORT_TOKEN
ISSUER_URL=http://$HOST:$PORT_ISSUER
BASIC_USER=basicuser
BASIC_PASS=basicpass
TOKEN_USER=tokenuser
TOKEN_PASS=tokenpass
# Names the registry and the issuer must agree on (aud and iss claims).
TOKEN_SERVICE="basic-docker-harness-registry"
TOKEN_ISSUER_NAME="basic-docker-harness-token-issuer"
# Debian's python has python3-jwt/cryptography; the `python3` on PATH may not.
PY=/usr/bin/python3

PACKAGES=(docker-registry skopeo umoci busybox-static apache2-utils python3-jwt
          python3-cryptography openssl curl jq zstd)
SERVICES=(open basic token issuer)
# Bumped when the fixture set changes, so an old state dir gets rebuilt fixtures.
FIXTURE_VERSION=1
MARKER=.basic-docker-harness   # proves a directory is ours before `clean` deletes it

OCI_INDEX=application/vnd.oci.image.index.v1+json
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
DOCKER_LIST=application/vnd.docker.distribution.manifest.list.v2+json
DOCKER_MANIFEST=application/vnd.docker.distribution.manifest.v2+json
ZSTD_LAYER=application/vnd.oci.image.layer.v1.tar+zstd

log() { printf 'harness: %s\n' "$*" >&2; }
die() { printf 'harness: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- install

cmd_install() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "all packages already installed"
    return 0
  fi
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  # Install the whole list, not just the missing ones: apt keeps the others as they are.
  apt-get install -y --no-install-recommends "${PACKAGES[@]}"
}

require_tools() {
  local t missing=()
  for t in docker-registry skopeo umoci busybox htpasswd openssl curl jq zstd flock setsid; do
    command -v "$t" >/dev/null || missing+=("$t")
  done
  [ -x "$PY" ] && "$PY" -c 'import jwt, cryptography' 2>/dev/null || missing+=("python3-jwt/python3-cryptography for $PY")
  [ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]} (run: $0 install)"
}

# ---------------------------------------------------------------- processes

port_of() {
  case $1 in open) echo "$PORT_OPEN" ;; basic) echo "$PORT_BASIC" ;;
             token) echo "$PORT_TOKEN" ;; issuer) echo "$PORT_ISSUER" ;; esac
}

# PID of a service we started, or nothing. A PID file alone is not proof: the
# PID may have been reused by an unrelated process since, so the process's
# command line must also mention this service's directory in this state dir.
our_pid() {
  local pidfile=$STATE/$1/pid pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile" 2>/dev/null) || return 0
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  [ -r "/proc/$pid/cmdline" ] || return 0
  if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$STATE/$1/"; then echo "$pid"; fi
}

# HTTP status of the service's health endpoint (000 when nothing answers).
health_code() {
  local url
  if [ "$1" = issuer ]; then url=$ISSUER_URL/healthz; else url=http://$HOST:$(port_of "$1")/v2/; fi
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true
}

healthy() {
  case $(health_code "$1") in
    200) return 0 ;;
    401) [ "$1" != issuer ] && [ "$1" != open ] ;;   # /v2/ of an auth registry is 401
    *) return 1 ;;
  esac
}

write_registry_config() {
  local svc=$1 dir=$STATE/$1
  mkdir -p "$dir/data"
  {
    cat <<EOF
# Written by scripts/harness.sh; rewritten at every start.
version: 0.1
log:
  level: info
  formatter: text
  fields:
    service: harness-$svc
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $HOST:$(port_of "$svc")
  # Fixed so upload state survives a restart (else a random one is generated, with a warning).
  secret: basic-docker-harness-$svc
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: false
EOF
    case $svc in
      basic) cat <<EOF
auth:
  htpasswd:
    realm: basic-docker-harness
    path: $dir/htpasswd
EOF
      ;;
      token) cat <<EOF
auth:
  token:
    realm: $ISSUER_URL/token
    service: $TOKEN_SERVICE
    issuer: $TOKEN_ISSUER_NAME
    rootcertbundle: $STATE/issuer/cert.pem
EOF
      ;;
    esac
  } >"$dir/config.yml"
}

prepare_credentials() {
  mkdir -p "$STATE/basic" "$STATE/issuer"
  # distribution's htpasswd backend accepts bcrypt only, hence -B.
  if [ ! -s "$STATE/basic/htpasswd" ]; then
    htpasswd -Bbn "$BASIC_USER" "$BASIC_PASS" >"$STATE/basic/htpasswd"
  fi
  # One self-signed EC key/cert per state dir: the issuer signs with it and
  # sends it as x5c; the registry trusts it as its root bundle.
  if [ ! -s "$STATE/issuer/key.pem" ] || [ ! -s "$STATE/issuer/cert.pem" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout "$STATE/issuer/key.pem" -out "$STATE/issuer/cert.pem" \
      -days 3650 -subj "/CN=$TOKEN_ISSUER_NAME" 2>/dev/null
  fi
}

# Sets CMD (an array: paths may contain spaces).
service_command() {
  local dir=$STATE/$1
  if [ "$1" = issuer ]; then
    CMD=("$PY" "$HERE/harness/token_issuer.py" --listen "$HOST:$PORT_ISSUER" \
      --key "$dir/key.pem" --cert "$dir/cert.pem" --issuer "$TOKEN_ISSUER_NAME" \
      --service "$TOKEN_SERVICE" --user "$TOKEN_USER" --password "$TOKEN_PASS" --expires-in 300)
  else
    CMD=(docker-registry serve "$dir/config.yml")
  fi
}

launch() {
  local svc=$1 dir=$STATE/$1
  service_command "$svc"
  rm -f "$dir/pid"
  printf '\n=== %s start %s\n' "$(date -Is)" "${CMD[*]}" >>"$dir/log"
  # setsid: the daemons must outlive the caller and its process group (a test
  # runner killed with ^C must not take them down mid-push).
  # env -i: REGISTRY_* variables in the caller's environment would override
  # the config file, so the daemons get a clean environment.
  # The child writes its own PID just before exec, so the PID file names the
  # daemon itself whatever setsid decides about forking.
  # fd 9 is the harness lock; a daemon must not hold it forever.
  # shellcheck disable=SC2016  # $$, $0 and $@ belong to the inner shell
  setsid env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$dir" \
    /bin/bash -c 'echo $$ >"$0"; exec "$@"' "$dir/pid" "${CMD[@]}" \
    </dev/null >>"$dir/log" 2>&1 9>&- &
  disown 2>/dev/null || true
}

start_services() {
  local svc pid
  for svc in "${SERVICES[@]}"; do
    [ "$svc" = issuer ] || write_registry_config "$svc"
    if [ -n "$(our_pid "$svc")" ]; then
      continue   # already running; health is checked below
    fi
    log "starting $svc on $HOST:$(port_of "$svc")"
    launch "$svc"
  done
  # They start in parallel; each gets up to 10 s from now. A process that is
  # gone (port taken, bad config) fails at once instead of at the deadline.
  local tries
  for svc in "${SERVICES[@]}"; do
    tries=0
    until healthy "$svc"; do
      tries=$((tries + 1))
      pid=$(our_pid "$svc")
      if [ $tries -ge 100 ] || { [ -z "$pid" ] && [ $tries -ge 10 ]; }; then
        if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
        rm -f "$STATE/$svc/pid"
        printf 'harness: error: %s did not answer on %s:%s within 10 s (%s; last HTTP status %s). Log tail (%s):\n' \
          "$svc" "$HOST" "$(port_of "$svc")" "${pid:+still running, killed}${pid:-process exited}" \
          "$(health_code "$svc")" "$STATE/$svc/log" >&2
        # Only this run's part of the log (launch() writes a "=== ... start" line).
        awk '/^=== .* start /{n=NR} {l[NR]=$0} END{for(i=(n>NR-25?n:NR-25);i<=NR;i++) if(i>0) print l[i]}' \
          "$STATE/$svc/log" >&2 || true
        exit 1
      fi
      sleep 0.1
    done
  done
}

# Running, as opposed to gone or a zombie. Our daemons are reparented to PID 1
# (setsid), and not every PID 1 reaps promptly (on the dev machines it takes
# ~2 s), so a zombie counts as stopped: it holds no ports any more.
alive() {
  local st
  st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

stop_service() {
  local svc=$1 pid i
  pid=$(our_pid "$svc")
  if [ -z "$pid" ]; then
    [ -f "$STATE/$svc/pid" ] && log "$svc: stale PID file removed (process gone or not ours)"
    rm -f "$STATE/$svc/pid"
    return 0
  fi
  log "stopping $svc (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    log "$svc did not exit on TERM; sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$STATE/$svc/pid"
}

# ---------------------------------------------------------------- env

env_lines() {
  cat <<EOF
export BASIC_DOCKER_TEST_REGISTRY_OPEN=$REG_OPEN
export BASIC_DOCKER_TEST_REGISTRY_BASIC=$REG_BASIC
export BASIC_DOCKER_TEST_BASIC_USER=$BASIC_USER
export BASIC_DOCKER_TEST_BASIC_PASS=$BASIC_PASS
export BASIC_DOCKER_TEST_REGISTRY_TOKEN=$REG_TOKEN
export BASIC_DOCKER_TEST_TOKEN_ISSUER=$ISSUER_URL
export BASIC_DOCKER_TEST_TOKEN_REALM=$ISSUER_URL/token
export BASIC_DOCKER_TEST_TOKEN_SERVICE=$TOKEN_SERVICE
export BASIC_DOCKER_TEST_TOKEN_USER=$TOKEN_USER
export BASIC_DOCKER_TEST_TOKEN_PASS=$TOKEN_PASS
export BASIC_DOCKER_TEST_FIXTURES=$STATE/fixtures
EOF
}

write_env() {
  env_lines >"$STATE/env.tmp"
  mv "$STATE/env.tmp" "$STATE/env"
}

cmd_env() {
  if [ -f "$STATE/env" ]; then cat "$STATE/env"; return; fi
  env_lines   # not started yet: what start would write
}

# ---------------------------------------------------------------- fixtures

# skopeo, without depending on policy.json, and with its own blob-info cache.
#
# Why the cache matters: c/image keeps a cache of "blob X is known to exist at
# registry R" in /var/lib/containers/cache (shared by every skopeo run as
# root). skopeo 1.9.3 consults it even when asked to recompress: the zstd
# fixture came out with the busybox *gzip* layer "reused" from the same
# registry. It would also carry knowledge over from earlier (deleted) state
# dirs. So each skopeo call runs in a private mount namespace with
# $SK_CACHE bind-mounted over that directory. When namespaces are not
# available, skopeo runs as is (verify_zstd then reports if it went wrong).
SK_CACHE=
sk() {
  if [ -n "$SK_CACHE" ] && unshare -m true 2>/dev/null; then
    mkdir -p "$SK_CACHE" /var/lib/containers/cache
    # shellcheck disable=SC2016  # $0 and $@ belong to the inner shell
    unshare -m --propagation private \
      sh -c 'mount --bind "$0" /var/lib/containers/cache && exec "$@"' \
      "$SK_CACHE" skopeo --insecure-policy "$@"
  else
    skopeo --insecure-policy "$@"
  fi
}
sk_copy() { sk copy --quiet --src-tls-verify=false --dest-tls-verify=false "$@"; }

host_arch() {
  # GOARCH spelling, as image configs use it.
  case $(dpkg --print-architecture) in
    amd64) echo amd64 ;; arm64) echo arm64 ;; armhf) echo arm ;; i386) echo 386 ;;
    ppc64el) echo ppc64le ;; s390x) echo s390x ;; riscv64) echo riscv64 ;;
    *) uname -m ;;
  esac
}

# Write stdin as a blob into layout $1; print "digest size".
put_blob() {
  local layout=$1 tmp hex size
  tmp=$(mktemp "$layout/blob.XXXXXX")
  cat >"$tmp"
  hex=$(sha256sum "$tmp" | cut -d' ' -f1)
  size=$(stat -c %s "$tmp")
  mv "$tmp" "$layout/blobs/sha256/$hex"
  chmod 0644 "$layout/blobs/sha256/$hex"
  echo "sha256:$hex $size"
}

tag_descriptor() {  # layout tag -> the index.json descriptor for that tag
  jq -ce --arg t "$2" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t)' \
    "$1/index.json"
}

blob_path() { echo "$1/blobs/sha256/${2#sha256:}"; }

# Apply a jq filter to the config of layout:tag and re-hash config, manifest
# and the index.json entry. umoci 0.4.7 cannot set `variant` (it speaks
# image-spec 1.0), so the multi-arch fixture patches it here.
patch_config() {
  local layout=$1 tag=$2 filter=$3 mdig cdig cfg csize man msize
  mdig=$(tag_descriptor "$layout" "$tag" | jq -r .digest)
  cdig=$(jq -r .config.digest "$(blob_path "$layout" "$mdig")")
  read -r cfg csize < <(jq -c "$filter" "$(blob_path "$layout" "$cdig")" | tr -d '\n' | put_blob "$layout")
  read -r man msize < <(jq -c --arg d "$cfg" --argjson s "$csize" '.config.digest = $d | .config.size = $s' \
    "$(blob_path "$layout" "$mdig")" | tr -d '\n' | put_blob "$layout")
  jq -c --arg t "$tag" --arg d "$man" --argjson s "$msize" \
    '(.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t)) |= (.digest = $d | .size = $s)' \
    "$layout/index.json" >"$layout/index.json.tmp"
  mv "$layout/index.json.tmp" "$layout/index.json"
}

populate_busybox() {
  local root=$1 p
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,home,root,tmp,var,dev}
  chmod 1777 "$root/tmp"
  chmod 0700 "$root/root"
  install -m 0755 "$(command -v busybox)" "$root/bin/busybox"
  # Absolute symlinks, as `busybox --install -s` makes them: extraction must
  # not follow them out of the rootfs.
  busybox --list-full | while read -r p; do
    [ "$p" = bin/busybox ] && continue
    mkdir -p "$root/$(dirname "$p")"
    ln -sf /bin/busybox "$root/$p"
  done
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' \
    'fixture:x:1234:5678:fixture user:/srv/fixture:/bin/sh' >"$root/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' 'fixture:x:5678:' >"$root/etc/group"
}

build_images() {
  local L=$1 B=$2 arch=$3 p a v
  umoci init --layout "$L"

  # busybox: one layer.
  umoci new --image "$L:busybox"
  umoci unpack --image "$L:busybox" "$B/busybox"
  populate_busybox "$B/busybox/rootfs"
  umoci repack --image "$L:busybox" --history.created_by "harness: busybox-static + applet symlinks" "$B/busybox"
  umoci config --image "$L:busybox" --os linux --architecture "$arch" \
    --config.cmd sh --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

  # multilayer: shares busybox's layer (same chain ID), then three more.
  umoci tag --image "$L:busybox" multilayer
  # Layer 2: real Debian files, ownership, modes, a hardlink, things to delete later.
  umoci unpack --image "$L:multilayer" "$B/ml2"
  local r=$B/ml2/rootfs
  mkdir -p "$r/usr/lib" "$r/usr/share/doc" "$r/srv/fixture" "$r/usr/share/fixture-dir-delete" \
           "$r/usr/share/fixture-opaque" "$r/usr/share/fixture-hardlink"
  cp -a /usr/lib/os-release "$r/usr/lib/os-release"
  ln -s ../usr/lib/os-release "$r/etc/os-release"     # as Debian has it
  cp -a /etc/debian_version "$r/etc/debian_version"
  cp -a /usr/share/doc/busybox-static /usr/share/doc/base-files "$r/usr/share/doc/"
  echo "layer2" >"$r/etc/fixture-layer"
  echo "deleted in layer 3" >"$r/etc/fixture-delete-me"
  echo a >"$r/usr/share/fixture-dir-delete/a"
  echo b >"$r/usr/share/fixture-dir-delete/b"
  echo old1 >"$r/usr/share/fixture-opaque/old1"
  echo old2 >"$r/usr/share/fixture-opaque/old2"
  echo "hardlinked" >"$r/usr/share/fixture-hardlink/a"
  ln "$r/usr/share/fixture-hardlink/a" "$r/usr/share/fixture-hardlink/b"
  echo "secret" >"$r/etc/fixture-secret"; chmod 0600 "$r/etc/fixture-secret"
  echo "hello from the fixture workdir" >"$r/srv/fixture/hello.txt"
  chown -R 1234:5678 "$r/srv/fixture"; chmod 0750 "$r/srv/fixture"
  umoci repack --image "$L:multilayer" --history.created_by "harness: debian files" "$B/ml2"
  # Layer 3: modify and delete things from lower layers -> whiteouts.
  umoci unpack --image "$L:multilayer" "$B/ml3"
  r=$B/ml3/rootfs
  echo "layer3" >"$r/etc/fixture-layer"
  rm "$r/etc/fixture-delete-me"            # file from layer 2
  rm -r "$r/usr/share/fixture-dir-delete"  # directory from layer 2
  rm "$r/bin/vi"                           # symlink from layer 1
  echo "layer3" >"$r/etc/fixture-layer3"
  umoci repack --image "$L:multilayer" --history.created_by "harness: modify + delete" "$B/ml3"
  # Layer 4: an opaque directory (.wh..wh..opq): old1/old2 disappear, new1 appears.
  mkdir -p "$B/opaque-src"; echo new1 >"$B/opaque-src/new1"
  umoci insert --image "$L:multilayer" --opaque --history.created_by "harness: opaque dir" \
    "$B/opaque-src" /usr/share/fixture-opaque
  umoci config --image "$L:multilayer" \
    --config.entrypoint /bin/echo --config.entrypoint fixture-entrypoint \
    --config.cmd fixture-cmd --config.workingdir /srv/fixture --config.user 1234:5678 \
    --config.env FIXTURE_VAR=multilayer --config.label org.basic-docker.fixture=multilayer \
    --config.exposedports 8080/tcp

  # multiarch: per platform, busybox's layer + a layer naming the platform.
  # (The busybox binary is the host's in every one of them: only the host
  # platform is meant to be run.)
  local manifests=()
  for p in amd64: arm64:v8 arm:v7; do
    a=${p%%:*} v=${p#*:}
    umoci tag --image "$L:busybox" "multiarch-$a"
    umoci unpack --image "$L:multiarch-$a" "$B/ma-$a"
    echo "linux/$a${v:+/$v}" >"$B/ma-$a/rootfs/etc/fixture-platform"
    umoci repack --image "$L:multiarch-$a" --history.created_by "harness: platform file" "$B/ma-$a"
    umoci config --image "$L:multiarch-$a" --os linux --architecture "$a"
    if [ -n "$v" ]; then patch_config "$L" "multiarch-$a" ".variant = \"$v\""; fi
    manifests+=("$(tag_descriptor "$L" "multiarch-$a" | jq -c --arg a "$a" --arg v "$v" \
      'del(.annotations) | .platform = ({architecture: $a, os: "linux"} + (if $v != "" then {variant: $v} else {} end))')")
  done
  local idx isize
  read -r idx isize < <(printf '%s\n' "${manifests[@]}" | jq -sc --arg mt "$OCI_INDEX" \
    '{schemaVersion: 2, mediaType: $mt, manifests: .}' | tr -d '\n' | put_blob "$L")
  jq -c --arg d "$idx" --argjson s "$isize" --arg mt "$OCI_INDEX" \
    '.manifests += [{mediaType: $mt, digest: $d, size: $s, annotations: {"org.opencontainers.image.ref.name": "multiarch"}}]' \
    "$L/index.json" >"$L/index.json.tmp"
  mv "$L/index.json.tmp" "$L/index.json"
  umoci gc --layout "$L"
}

push_images() {
  local L=$1 basic=(--dest-creds "$BASIC_USER:$BASIC_PASS") tok=(--dest-creds "$TOKEN_USER:$TOKEN_PASS")
  sk_copy "oci:$L:busybox" "docker://$REG_OPEN/fixtures/busybox:latest"
  sk_copy --format v2s2 "oci:$L:busybox" "docker://$REG_OPEN/fixtures/busybox:docker"
  sk_copy "oci:$L:multilayer" "docker://$REG_OPEN/fixtures/multilayer:latest"
  sk_copy --all "oci:$L:multiarch" "docker://$REG_OPEN/fixtures/multiarch:latest"
  # skopeo 1.9.3 converts the index and every instance to Docker schema2.
  sk_copy --all --format v2s2 "oci:$L:multiarch" "docker://$REG_OPEN/fixtures/multiarch:docker"
  # A fresh, empty blob-info cache: see sk().
  SK_CACHE=$STATE/skopeo-cache-zstd sk_copy --format oci --dest-compress --dest-compress-format zstd \
    "oci:$L:busybox" "docker://$REG_OPEN/fixtures/zstd:latest"
  # Copies from the open registry: same manifest bytes, so the same digests.
  sk_copy "${basic[@]}" "docker://$REG_OPEN/fixtures/busybox:latest" "docker://$REG_BASIC/fixtures/busybox:latest"
  sk_copy "${tok[@]}" "docker://$REG_OPEN/fixtures/busybox:latest" "docker://$REG_TOKEN/public/busybox:latest"
  sk_copy "${tok[@]}" "docker://$REG_OPEN/fixtures/busybox:latest" "docker://$REG_TOKEN/private/busybox:latest"
  sk_copy --all "${tok[@]}" "docker://$REG_OPEN/fixtures/multiarch:latest" "docker://$REG_TOKEN/public/multiarch:latest"
}

# curl against registry $1 for repository $2 with whatever auth that registry needs.
reg_curl() {
  local reg=$1 repo=$2; shift 2
  local auth=()
  if [ "$reg" = "$REG_BASIC" ]; then
    auth=(-u "$BASIC_USER:$BASIC_PASS")
  elif [ "$reg" = "$REG_TOKEN" ]; then
    local t
    t=$(curl -fsS -u "$TOKEN_USER:$TOKEN_PASS" \
      "$ISSUER_URL/token?service=$TOKEN_SERVICE&scope=repository:$repo:pull" | jq -r .token)
    auth=(-H "Authorization: Bearer $t")
  fi
  curl -fsS "${auth[@]}" "$@"
}

ACCEPT="Accept: $OCI_INDEX, $OCI_MANIFEST, $DOCKER_LIST, $DOCKER_MANIFEST"

# Fetch manifest reg/repo:ref as served; print a JSON description of it (and,
# for an index, of every instance). Digests are computed from the bytes
# served and must equal the registry's Docker-Content-Digest.
describe_manifest() {
  local reg=$1 repo=$2 ref=$3 out=$4 hdr body digest served mt size cfgfile
  hdr=$out.headers body=$out.manifest
  reg_curl "$reg" "$repo" -H "$ACCEPT" -D "$hdr" -o "$body" "http://$reg/v2/$repo/manifests/$ref"
  digest=sha256:$(sha256sum "$body" | cut -d' ' -f1)
  size=$(stat -c %s "$body")
  served=$(tr -d '\r' <"$hdr" | awk -F': ' 'tolower($1) == "docker-content-digest" {print $2}')
  mt=$(tr -d '\r' <"$hdr" | awk -F': ' 'tolower($1) == "content-type" {print $2}')
  [ "$served" = "$digest" ] || die "$reg/$repo:$ref: Docker-Content-Digest $served != sha256 of body $digest"
  if jq -e 'has("manifests")' "$body" >/dev/null; then
    local d i=0 parts=()
    for d in $(jq -r '.manifests[].digest' "$body"); do
      describe_manifest "$reg" "$repo" "$d" "$out.$i" >"$out.$i.json"
      parts+=("$out.$i.json"); i=$((i + 1))
    done
    jq -n --arg digest "$digest" --argjson size "$size" --arg mt "$mt" --slurpfile m "$body" \
      '[inputs] as $inst | {digest: $digest, size: $size, media_type: $mt,
        manifests: [range(0; $m[0].manifests | length) as $k
          | $m[0].manifests[$k] as $d
          | {digest: $d.digest, size: $d.size, media_type: $d.mediaType, platform: $d.platform}
            + ($inst[$k] | {config, layers, diff_ids, image_config, config_platform: .platform})]}' \
      "${parts[@]}"
  else
    cfgfile=$out.config
    local cdig
    cdig=$(jq -r .config.digest "$body")
    reg_curl "$reg" "$repo" -o "$cfgfile" "http://$reg/v2/$repo/blobs/$cdig"
    [ "sha256:$(sha256sum "$cfgfile" | cut -d' ' -f1)" = "$cdig" ] || die "$reg/$repo: config blob does not match $cdig"
    jq -n --arg digest "$digest" --argjson size "$size" --arg mt "$mt" \
      --slurpfile m "$body" --slurpfile c "$cfgfile" \
      '$m[0] as $m | $c[0] as $c | {digest: $digest, size: $size, media_type: $mt,
        config: {digest: $m.config.digest, size: $m.config.size, media_type: $m.config.mediaType},
        layers: [$m.layers[] | {digest, size, media_type: .mediaType}],
        diff_ids: $c.rootfs.diff_ids,
        platform: ({os: $c.os, architecture: $c.architecture} + (if $c.variant then {variant: $c.variant} else {} end)),
        image_config: $c.config}'
  fi
}

write_fixture_meta() {
  local name=$1 reg=$2 repo=$3 tag=$4 dir=$STATE/fixtures
  mkdir -p "$dir/raw"
  describe_manifest "$reg" "$repo" "$tag" "$dir/raw/$name" \
    | jq --arg name "$name" --arg reg "$reg" --arg repo "$repo" --arg tag "$tag" \
      '{name: $name, reference: "\($reg)/\($repo):\($tag)", registry: $reg, repository: $repo, tag: $tag} + .' \
      >"$dir/$name.json"
  rm -f "$dir/raw/$name".*headers "$dir/raw/$name".*.json
}

verify_zstd() {
  local raw bad
  raw=$(sk inspect --raw --tls-verify=false "docker://$REG_OPEN/fixtures/zstd:latest")
  bad=$(jq -r --arg z "$ZSTD_LAYER" '[.layers[] | select(.mediaType != $z)] | length' <<<"$raw")
  [ "$bad" = 0 ] || die "fixtures/zstd:latest has non-zstd layers (skopeo reused a gzip blob?): $raw"
  # And the blob itself starts with the zstd frame magic 28 b5 2f fd.
  local l0 magic blob=$STATE/zstd-layer.tmp
  l0=$(jq -r '.layers[0].digest' <<<"$raw")
  curl -fsS -o "$blob" "http://$REG_OPEN/v2/fixtures/zstd/blobs/$l0"
  magic=$(od -An -tx1 -N4 "$blob" | tr -d ' \n')
  zstd -tq "$blob" || die "fixtures/zstd:latest layer $l0 does not decompress with zstd"
  rm -f "$blob"
  [ "$magic" = 28b52ffd ] || die "fixtures/zstd:latest layer $l0 is not zstd data (magic $magic)"
}

# The open registry doubles as a Docker Hub mirror: it serves busybox under Hub's
# name, library/busybox (what a mirror is asked for `busybox`). Copied from
# fixtures/busybox:latest (same bytes, same digests). Added apart from the fixture
# set (no FIXTURE_VERSION bump), so a harness already running gains it at its next
# `start` without rebuilding what other tests are using.
ensure_mirror_fixture() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -I -H "Accept: $OCI_MANIFEST" \
    "http://$REG_OPEN/v2/library/busybox/manifests/latest")
  if [ "$code" != 200 ] || [ ! -f "$STATE/fixtures/mirror_busybox_latest.json" ]; then
    log "serving library/busybox:latest on $REG_OPEN (the Docker Hub mirror fixture)"
    SK_CACHE=$STATE/skopeo-cache sk_copy "docker://$REG_OPEN/fixtures/busybox:latest" "docker://$REG_OPEN/library/busybox:latest"
    write_fixture_meta mirror_busybox_latest "$REG_OPEN" library/busybox latest
  fi
}

fixtures_present() {
  [ "$(cat "$STATE/fixtures/.complete" 2>/dev/null)" = "$FIXTURE_VERSION" ] || return 1
  # The marker could outlive the registry data (someone deleted a data dir):
  # check the open registry still serves the first fixture.
  [ "$(curl -s -o /dev/null -w '%{http_code}' -I -H "Accept: $OCI_MANIFEST" \
      "http://$REG_OPEN/v2/fixtures/busybox/manifests/latest")" = 200 ]
}

build_fixtures() {
  local L=$STATE/oci B=$STATE/build t0=$SECONDS
  log "building fixture images"
  rm -rf "$L" "$B" "$STATE/fixtures" "$STATE"/skopeo-cache*
  mkdir -p "$B" "$STATE/fixtures"
  SK_CACHE=$STATE/skopeo-cache
  build_images "$L" "$B" "$(host_arch)"
  log "pushing fixtures"
  push_images "$L"
  verify_zstd
  log "writing fixture metadata"
  write_fixture_meta busybox_latest "$REG_OPEN" fixtures/busybox latest
  write_fixture_meta busybox_docker "$REG_OPEN" fixtures/busybox docker
  write_fixture_meta multilayer_latest "$REG_OPEN" fixtures/multilayer latest
  write_fixture_meta multiarch_latest "$REG_OPEN" fixtures/multiarch latest
  write_fixture_meta multiarch_docker "$REG_OPEN" fixtures/multiarch docker
  write_fixture_meta zstd_latest "$REG_OPEN" fixtures/zstd latest
  write_fixture_meta basic_busybox_latest "$REG_BASIC" fixtures/busybox latest
  write_fixture_meta token_public_busybox_latest "$REG_TOKEN" public/busybox latest
  write_fixture_meta token_private_busybox_latest "$REG_TOKEN" private/busybox latest
  write_fixture_meta token_public_multiarch_latest "$REG_TOKEN" public/multiarch latest
  rm -rf "$B"   # unpacked bundles; the OCI layout stays for debugging
  echo "$FIXTURE_VERSION" >"$STATE/fixtures/.complete"
  log "fixtures ready in $((SECONDS - t0)) s: $STATE/fixtures"
}

# ---------------------------------------------------------------- commands

lock_state() {
  mkdir -p "$STATE"
  touch "$STATE/$MARKER"
  exec 9>"$STATE/.lock"
  flock 9
}

cmd_start() {
  require_tools
  lock_state
  prepare_credentials
  start_services
  write_env
  if fixtures_present; then
    log "fixtures already pushed (state dir $STATE)"
  else
    build_fixtures
  fi
  ensure_mirror_fixture
  log "running; env: $STATE/env"
}

cmd_stop() {
  [ -d "$STATE" ] || return 0
  lock_state
  local i
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do stop_service "${SERVICES[i]}"; done
}

cmd_status() {
  local svc pid rc=0
  for svc in "${SERVICES[@]}"; do
    pid=
    if [ -d "$STATE" ]; then pid=$(our_pid "$svc"); fi
    if [ -n "$pid" ]; then
      printf '%-7s running  pid %-7s %s:%-5s http %s\n' "$svc" "$pid" "$HOST" "$(port_of "$svc")" "$(health_code "$svc")"
    else
      printf '%-7s stopped\n' "$svc"; rc=3
    fi
  done
  if [ -f "$STATE/fixtures/.complete" ]; then
    printf 'fixtures: %s\n' "$(cd "$STATE/fixtures" && for f in *.json; do printf '%s ' "${f%.json}"; done)"
  else
    printf 'fixtures: not built\n'
  fi
  return $rc
}

cmd_clean() {
  cmd_stop
  [ -d "$STATE" ] || return 0
  [ -f "$STATE/$MARKER" ] || die "$STATE does not look like a harness state dir; not deleting it"
  rm -rf "$STATE"
  log "removed $STATE"
}

usage() {
  sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

case ${1:-} in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  check) exec "$HERE/harness/selftest.sh" ;;
  clean) cmd_clean ;;
  *) usage ;;
esac
