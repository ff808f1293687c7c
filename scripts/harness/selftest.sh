#!/usr/bin/env bash
# Checks that a started harness behaves as the tests expect (`harness.sh check`).
# Talks to the registries only with curl and skopeo, never with our own code,
# so a failure here is a harness problem, not a basic-docker one.
set -euo pipefail

STATE=${BASIC_DOCKER_HARNESS_DIR:-/tmp/basic-docker-harness}
[ -f "$STATE/env" ] || { echo "selftest: $STATE/env missing; run harness.sh start" >&2; exit 1; }
# shellcheck disable=SC1091
. "$STATE/env"
FIX=$BASIC_DOCKER_TEST_FIXTURES
OPEN=$BASIC_DOCKER_TEST_REGISTRY_OPEN
BASIC=$BASIC_DOCKER_TEST_REGISTRY_BASIC
TOKEN=$BASIC_DOCKER_TEST_REGISTRY_TOKEN
ISSUER=$BASIC_DOCKER_TEST_TOKEN_ISSUER
SERVICE=$BASIC_DOCKER_TEST_TOKEN_SERVICE
ACCEPT="Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"

fails=0
ok() { printf 'ok    %s\n' "$*"; }
bad() { printf 'FAIL  %s\n' "$*"; fails=$((fails + 1)); }
expect() {  # description expected actual
  if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: expected '$2', got '$3'"; fi
}
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
sk() { skopeo --insecure-policy "$@"; }

# --- every fixture pulls completely (all blobs, digests verified by skopeo)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for meta in "$FIX"/*.json; do
  name=$(jq -r .name "$meta"); ref=$(jq -r .reference "$meta"); reg=$(jq -r .registry "$meta")
  creds=()
  [ "$reg" = "$BASIC" ] && creds=(--src-creds "$BASIC_DOCKER_TEST_BASIC_USER:$BASIC_DOCKER_TEST_BASIC_PASS")
  [ "$reg" = "$TOKEN" ] && creds=(--src-creds "$BASIC_DOCKER_TEST_TOKEN_USER:$BASIC_DOCKER_TEST_TOKEN_PASS")
  all=(); jq -e 'has("manifests")' "$meta" >/dev/null && all=(--all)
  # dir: keeps the manifest bytes as served (oci: would convert Docker types).
  if sk copy --quiet --src-tls-verify=false "${creds[@]}" "${all[@]}" "docker://$ref" "dir:$tmp/$name" >/dev/null 2>"$tmp/err"; then
    got=sha256:$(sha256sum "$tmp/$name/manifest.json" | cut -d' ' -f1)
    expect "pull $ref (manifest digest as recorded)" "$(jq -r .digest "$meta")" "$got"
  else
    bad "pull $ref: $(cat "$tmp/err")"
  fi
done
zstd_mt=$(sk inspect --raw --tls-verify=false "docker://$OPEN/fixtures/zstd:latest" | jq -r '.layers[0].mediaType')
expect "zstd fixture layer media type" application/vnd.oci.image.layer.v1.tar+zstd "$zstd_mt"

# --- open registry needs nothing
expect "open /v2/ anonymous" 200 "$(code "http://$OPEN/v2/")"

# --- Basic registry
expect "basic /v2/ anonymous" 401 "$(code "http://$BASIC/v2/")"
expect "basic /v2/ wrong password" 401 "$(code -u "$BASIC_DOCKER_TEST_BASIC_USER:wrong" "http://$BASIC/v2/")"
expect "basic /v2/ right password" 200 "$(code -u "$BASIC_DOCKER_TEST_BASIC_USER:$BASIC_DOCKER_TEST_BASIC_PASS" "http://$BASIC/v2/")"
challenge=$(curl -s -D - -o /dev/null "http://$BASIC/v2/" | tr -d '\r' | awk -F': ' 'tolower($1) == "www-authenticate" {print $2}')
expect "basic challenge" 'Basic realm="basic-docker-harness"' "$challenge"
if sk inspect --raw --tls-verify=false --creds "$BASIC_DOCKER_TEST_BASIC_USER:wrong" "docker://$BASIC/fixtures/busybox:latest" >/dev/null 2>&1; then
  bad "skopeo with a wrong Basic password must fail"
else
  ok "skopeo with a wrong Basic password fails"
fi

# --- Token registry: challenge
challenge=$(curl -s -D - -o /dev/null -H "$ACCEPT" "http://$TOKEN/v2/private/busybox/manifests/latest" | tr -d '\r' |
  awk -F': ' 'tolower($1) == "www-authenticate" {print $2}')
expect "token challenge" "Bearer realm=\"$ISSUER/token\",service=\"$SERVICE\",scope=\"repository:private/busybox:pull\"" "$challenge"
challenge=$(curl -s -D - -o /dev/null "http://$TOKEN/v2/" | tr -d '\r' | awk -F': ' 'tolower($1) == "www-authenticate" {print $2}')
expect "token /v2/ challenge" "Bearer realm=\"$ISSUER/token\",service=\"$SERVICE\"" "$challenge"

token() {  # scope [user:pass]
  curl -fsS ${2:+-u "$2"} "$ISSUER/token?service=$SERVICE&scope=$1" | jq -r .token
}
jwt_payload() {  # JWT on stdin -> its claims JSON (base64url without padding)
  local p; p=$(cut -d. -f2 | tr '_-' '/+')
  while [ $((${#p} % 4)) -ne 0 ]; do p=$p=; done
  base64 -d <<<"$p"
}
manifest_code() {  # repo token
  code -H "$ACCEPT" -H "Authorization: Bearer $2" "http://$TOKEN/v2/$1/manifests/latest"
}
curl -fsS -X POST "$ISSUER/reset-stats" >/dev/null
anon_pub=$(token repository:public/busybox:pull)
anon_priv=$(token repository:private/busybox:pull)
user_priv=$(token repository:private/busybox:pull "$BASIC_DOCKER_TEST_TOKEN_USER:$BASIC_DOCKER_TEST_TOKEN_PASS")
expect "anonymous token: public/busybox manifest" 200 "$(manifest_code public/busybox "$anon_pub")"
expect "anonymous token: private/busybox manifest" 401 "$(manifest_code private/busybox "$anon_priv")"
expect "tokenuser token: private/busybox manifest" 200 "$(manifest_code private/busybox "$user_priv")"
expect "public token does not open private/busybox" 401 "$(manifest_code private/busybox "$anon_pub")"
challenge=$(curl -s -D - -o /dev/null -H "$ACCEPT" -H "Authorization: Bearer $anon_priv" "http://$TOKEN/v2/private/busybox/manifests/latest" |
  tr -d '\r' | awk -F': ' 'tolower($1) == "www-authenticate" {print $2}')
expect "challenge with an insufficient token" "Bearer realm=\"$ISSUER/token\",service=\"$SERVICE\",scope=\"repository:private/busybox:pull\",error=\"insufficient_scope\"" "$challenge"
expect "anonymous /v2/ with a token" 200 "$(code -H "Authorization: Bearer $anon_priv" "http://$TOKEN/v2/")"
expect "wrong token password" 401 "$(code -u "$BASIC_DOCKER_TEST_TOKEN_USER:nope" "$ISSUER/token?service=$SERVICE&scope=repository:private/busybox:pull")"
expect "wrong token password body" "incorrect username or password" \
  "$(curl -s -u "$BASIC_DOCKER_TEST_TOKEN_USER:nope" "$ISSUER/token?service=$SERVICE" | jq -r .details)"
expect "anonymous push scope: access list" '[{"type":"repository","name":"public/x","actions":["pull"]}]' \
  "$(token repository:public/x:pull,push | jwt_payload | jq -c .access)"
expect "anonymous private scope: empty access" '[]' \
  "$(token repository:private/busybox:pull,push | jwt_payload | jq -c .access)"
multi=$(curl -fsS -u "$BASIC_DOCKER_TEST_TOKEN_USER:$BASIC_DOCKER_TEST_TOKEN_PASS" \
  "$ISSUER/token?service=$SERVICE&scope=repository:a/b:pull&scope=repository:c/d:pull,push")
expect "two scope parameters" '["a/b","c/d"]' \
  "$(jq -r .token <<<"$multi" | jwt_payload | jq -c '[.access[].name]')"
expect "response fields" 'true 300 true' "$(jq -r '"\(.token == .access_token) \(.expires_in) \(.issued_at != null)"' <<<"$multi")"
expect "stats count (failed requests issue nothing)" 6 "$(curl -fsS "$ISSUER/stats" | jq .tokens_issued)"
expect "stats records anonymous as null" null "$(curl -fsS "$ISSUER/stats" | jq -c '.requests[0].user')"
if sk inspect --raw --tls-verify=false --creds "$BASIC_DOCKER_TEST_TOKEN_USER:$BASIC_DOCKER_TEST_TOKEN_PASS" "docker://$TOKEN/private/busybox:latest" >/dev/null &&
   sk inspect --raw --tls-verify=false "docker://$TOKEN/public/busybox:latest" >/dev/null &&
   ! sk inspect --raw --tls-verify=false "docker://$TOKEN/private/busybox:latest" >/dev/null 2>&1; then
  ok "skopeo: tokenuser reads private/, anonymous reads public/ but not private/"
else
  bad "skopeo token access"
fi

if [ $fails -eq 0 ]; then echo "selftest: all passed"; else echo "selftest: $fails failed"; exit 1; fi
